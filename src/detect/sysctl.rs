//! The `sysctl` condition: a sysctl's value, a `low high` range's width, or its ratio
//! to another sysctl, compared with the condition's operands.
//!
//! Pure: no I/O.

use crate::facts::{Fact, Facts};
use crate::finding::Truth;
use crate::playbook::{Measure, SysctlCondition, Vars};

use super::compare::{Measured, Outcome, compare, unknown};

/// Evaluates a `sysctl` condition.
pub fn eval(s: &SysctlCondition, vars: &Vars, facts: &Facts, out: &mut Outcome) -> Truth {
    let fact_name = format!("sysctl {}", s.key);
    let value = match facts.sysctl(&s.key) {
        Fact::Value(v) => v.clone(),
        Fact::Unknown(why) => return unknown(out, &fact_name, &why),
    };
    let (measured, label) = match (&s.ratio_of, s.measure) {
        (Some(other), _) => {
            let denom = match facts.sysctl(other) {
                Fact::Value(v) => v.clone(),
                Fact::Unknown(why) => {
                    return unknown(out, &format!("sysctl {other}"), &why);
                }
            };
            match (value.parse::<f64>(), denom.parse::<f64>()) {
                (Ok(n), Ok(d)) if d > 0.0 => (
                    Measured::Number(n / d),
                    format!("{value} / {denom} ({other}) = {:.3}", n / d),
                ),
                _ => {
                    return unknown(
                        out,
                        &fact_name,
                        &format!("cannot divide {value:?} by {other} = {denom:?}"),
                    );
                }
            }
        }
        (None, Measure::RangeWidth) => match crate::kernel::sysctl::parse_range(&value) {
            Some((lo, hi)) => {
                let width = hi - lo + 1;
                (Measured::Number(width as f64), format!("width {width}"))
            }
            None => {
                return unknown(
                    out,
                    &fact_name,
                    &format!("{value:?} is not a `low high` range"),
                );
            }
        },
        (None, Measure::Value) => (Measured::from_text(&value), value.clone()),
    };
    compare(
        &fact_name,
        &value,
        &measured,
        &label,
        &s.compare(),
        vars,
        out,
    )
}
