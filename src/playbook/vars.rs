//! Playbook variables: defaults declared in the playbook, overridden by `--var`, and
//! expanded where a value says `${name}`.

use std::collections::BTreeMap;

use super::{Playbook, Scalar};

/// The resolved variables of one playbook.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars(pub BTreeMap<String, String>);

impl Vars {
    pub fn defaults(p: &Playbook) -> Vars {
        Vars(
            p.variables
                .iter()
                .map(|(k, v)| (k.clone(), v.default.to_string()))
                .collect(),
        )
    }

    /// Defaults with the overrides that this playbook declares applied.
    pub fn with_overrides(p: &Playbook, overrides: &BTreeMap<String, String>) -> Vars {
        let mut vars = Vars::defaults(p);
        for (k, v) in overrides {
            if let Some(slot) = vars.0.get_mut(k) {
                slot.clone_from(v);
            }
        }
        vars
    }
}

/// Expands `${name}` references. An undefined name or an unclosed `${` is an error.
pub fn expand(text: &str, vars: &Vars) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed `${{` in {text:?}"))?;
        let name = &after[..end];
        let value = vars.0.get(name).ok_or_else(|| {
            format!("undefined variable `{name}` (declare it under `variables:`)")
        })?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A scalar as text, with variables expanded.
pub fn scalar_text(s: &Scalar, vars: &Vars) -> Result<String, String> {
    match s {
        Scalar::Text(t) => expand(t, vars),
        other => Ok(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars(BTreeMap::from([("max".to_owned(), "1048576".to_owned())]))
    }

    #[test]
    fn expands_references() {
        assert_eq!(expand("${max}", &vars()).unwrap(), "1048576");
        assert_eq!(expand("10000 ${max}", &vars()).unwrap(), "10000 1048576");
        assert_eq!(expand("plain", &vars()).unwrap(), "plain");
    }

    #[test]
    fn undefined_and_unclosed_references_are_errors() {
        assert!(
            expand("${nope}", &vars())
                .unwrap_err()
                .contains("undefined variable `nope`")
        );
        assert!(expand("${max", &vars()).unwrap_err().contains("unclosed"));
    }
}
