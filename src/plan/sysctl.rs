//! Planning of `set_sysctl`: the value a sysctl should have, from the value measured
//! (or the one an earlier change in the plan leaves) and the action's mode.
//!
//! Pure: no I/O. `at_least` never lowers, `at_most` never raises, `widen_to` never
//! narrows; two different exact values for one key are an error.

use crate::facts::{Fact, Facts};
use crate::playbook::{SetMode, SetSysctl, Vars, scalar_text};

use super::mutation::{Earlier, Mutation};

/// The sysctl change a `set_sysctl` asks for, or `None` when it is already in effect.
pub fn plan_set_sysctl<'a>(
    s: &SetSysctl,
    vars: &Vars,
    facts: &Facts,
    earlier: &dyn Fn(&str) -> Option<Earlier<'a>>,
) -> Result<Option<Mutation>, String> {
    let measured = match facts.sysctl(&s.key) {
        Fact::Value(v) => crate::kernel::sysctl::normalize(v),
        Fact::Unknown(why) => {
            return Err(format!(
                "cannot plan {}: current value unknown ({why})",
                s.key
            ));
        }
    };
    let resource = format!("sysctl:{}", s.key);
    // An earlier rule may already plan this key: build on its after-value, and refuse
    // to overwrite an exact value with a different exact value.
    let earlier = earlier(&resource);
    let current = earlier.map_or(measured.clone(), |c| c.mutation.after());
    let (mode, operand) = s.mode()?;
    let operand = crate::kernel::sysctl::normalize(&scalar_text(operand, vars)?);
    let target = match mode {
        SetMode::Value => operand,
        SetMode::AtLeast | SetMode::AtMost => {
            let want: i64 = operand
                .parse()
                .map_err(|_| format!("{}: {operand:?} is not an integer", s.key))?;
            let have: i64 = current.parse().map_err(|_| {
                format!(
                    "{}: at_least/at_most need a single-number value, the value is {current:?}",
                    s.key
                )
            })?;
            let keep = if mode == SetMode::AtLeast {
                have >= want
            } else {
                have <= want
            };
            if keep {
                current.clone()
            } else {
                want.to_string()
            }
        }
        SetMode::WidenTo => {
            let (lo, hi) = crate::kernel::sysctl::parse_range(&operand)
                .ok_or_else(|| format!("{}: widen_to {operand:?} is not a range", s.key))?;
            let (clo, chi) = crate::kernel::sysctl::parse_range(&current).ok_or_else(|| {
                format!("{}: the value {current:?} is not a `low high` range", s.key)
            })?;
            format!("{} {}", clo.min(lo), chi.max(hi))
        }
    };
    if let Some(earlier) = earlier
        && mode == SetMode::Value
        && target != current
    {
        return Err(format!(
            "{} is set to {current:?} by {} and to {target:?} by this rule",
            s.key,
            earlier.rules.join(", ")
        ));
    }
    if target == current {
        return Ok(None);
    }
    Ok(Some(Mutation::Sysctl {
        key: s.key.clone(),
        before: measured,
        after: target,
    }))
}
