//! The `kernel_log` condition: lines of the kernel log matching a pattern within a
//! window.
//!
//! Pure: no I/O (the lines were read by `facts::kmsg`).

use crate::facts::{Fact, Facts};
use crate::finding::{Evidence, Truth};
use crate::playbook::{KernelLogCondition, Vars};

use super::compare::{Outcome, unknown};

/// Evaluates a `kernel_log` condition.
pub fn eval(k: &KernelLogCondition, vars: &Vars, facts: &Facts, out: &mut Outcome) -> Truth {
    let fact_name = format!("kernel log /{}/", k.pattern);
    let lines = match facts.kernel_log_matches(&k.pattern) {
        Fact::Value(lines) => lines,
        Fact::Unknown(why) => return unknown(out, &fact_name, &why),
    };
    let within = crate::playbook::expand(&k.within, vars).unwrap_or_default();
    let Ok(window) = humantime::parse_duration(&within) else {
        return unknown(out, &fact_name, &format!("bad window {:?}", k.within));
    };
    let since = facts.collected_at - window.as_secs_f64();
    let recent: Vec<_> = lines.iter().filter(|l| l.time >= since).collect();
    let count = recent.len() as u64;
    let observed = match recent.last() {
        Some(last) => format!("{count} line(s), last: {:?}", last.message),
        None => "0 lines".to_owned(),
    };
    let holds = count >= k.at_least;
    let evidence = Evidence {
        fact: fact_name,
        observed,
        test: format!("{count} >= {} within {within}", k.at_least),
    };
    if holds {
        out.evidence.push(evidence);
        Truth::True
    } else {
        out.evidence.push(Evidence {
            test: format!("{count} < {} within {within}", k.at_least),
            ..evidence
        });
        Truth::False
    }
}
