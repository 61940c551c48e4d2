//! Planning of `set_env` fixes: the new content of an environment file, computed
//! from the content in the facts and, for `heap_percent_of_limit`, from the memory
//! limits the rule's detection saw.
//!
//! Pure: no I/O. The before-content is the file as gathered (or as an earlier change
//! in the same plan leaves it, so two rules editing one file compose); a fix whose
//! value is already in the file plans nothing.

use std::collections::BTreeMap;

use crate::facts::{Fact, Facts};
use crate::plan::{Change, Mutation};
use crate::playbook::{Condition, EnvMode, SetEnv, Vars, expand, scalar_text};

/// The file change a `set_env` asks for, or `None` when it is already in effect.
pub fn plan_set_env(
    e: &SetEnv,
    detect: &Condition,
    vars: &Vars,
    facts: &Facts,
    changes: &[Change],
    projected: &BTreeMap<String, usize>,
) -> Result<Option<Mutation>, String> {
    let file = expand(&e.file, vars)?;
    if file.is_empty() {
        return Err(
            "set_env: no environment file given; pass --var env_file=PATH (the file the service's JVM reads its environment from, e.g. /etc/default/tomcat9)".to_owned(),
        );
    }
    let key = expand(&e.key, vars)?;
    let measured = match facts.env_file(&file) {
        Fact::Value(content) => content.clone(),
        Fact::Unknown(why) => return Err(format!("cannot plan {file}: {why}")),
    };
    let earlier = projected
        .get(&format!("envfile:{file}"))
        .and_then(|&i| changes.get(i));
    let current = match earlier.map(|c| &c.mutation) {
        Some(Mutation::EnvFile { after, .. }) => after.clone(),
        _ => measured.clone(),
    };
    let content = current.clone().unwrap_or_default();
    let old_value = crate::envfile::get(&content, &key).map_err(|err| format!("{file}: {err}"))?;
    let (mode, operand) = e.mode()?;
    let operand = scalar_text(operand, vars)?;
    let old_options = old_value.as_deref().unwrap_or("");
    let new_value = match mode {
        EnvMode::Value => operand,
        EnvMode::JvmHeapFlags => crate::jvm::replace_heap_flags(old_options, operand.trim()),
        EnvMode::HeapPercentOfLimit => {
            let percent: f64 = operand
                .trim()
                .parse()
                .map_err(|_| format!("heap_percent_of_limit {operand:?} is not a number"))?;
            let (limits, headroom) = crate::jvm::limits_seen(detect, vars, facts);
            let xmx = crate::jvm::xmx_for(&limits, headroom, percent)?;
            crate::jvm::replace_heap_flags(old_options, &xmx)
        }
    };
    if old_value.as_deref() == Some(new_value.as_str()) {
        return Ok(None);
    }
    let after =
        crate::envfile::set(&content, &key, &new_value).map_err(|err| format!("{file}: {err}"))?;
    Ok(Some(Mutation::EnvFile {
        path: file,
        keys: vec![key],
        before: measured,
        after: Some(after),
    }))
}

/// A file's state in one short line: `(absent)` or its size.
pub fn label(content: Option<&str>) -> String {
    match content {
        None => "(absent)".to_owned(),
        Some(c) => format!("{} line(s), {} bytes", c.lines().count(), c.len()),
    }
}
