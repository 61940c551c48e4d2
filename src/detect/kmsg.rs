//! The `kernel_log` condition: lines of the kernel log matching a pattern within a
//! window.
//!
//! Pure: no I/O (the lines were read by `facts::kmsg`). The kernel log is the host's:
//! read for a network namespace, its evidence says so ([`scope`]). Lines of a saved
//! log without wall times cannot be placed in a window: such a condition is unknown
//! unless no line matches at all.

use crate::facts::{Fact, Facts};
use crate::finding::{Evidence, Truth};
use crate::playbook::{KernelLogCondition, Vars};

use super::compare::{Outcome, unknown};

/// Evaluates a `kernel_log` condition.
pub fn eval(k: &KernelLogCondition, vars: &Vars, facts: &Facts, out: &mut Outcome) -> Truth {
    let fact_name = format!("kernel log{} /{}/", scope(facts), k.pattern);
    let lines = match facts.kernel_log_matches(&k.pattern) {
        Fact::Value(lines) => lines,
        Fact::Unknown(why) => return unknown(out, &fact_name, &why),
    };
    if let Some(why) = clock_unknown(facts)
        && !lines.is_empty()
    {
        let why = format!("{} matching line(s), but {why}", lines.len());
        return unknown(out, &fact_name, &why);
    }
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

/// How kernel-log evidence is labelled: ` (host-wide)` when the other facts come
/// from a network namespace, with the memory cgroup OOM kills were limited to.
pub fn scope(facts: &Facts) -> String {
    let Some(origin) = &facts.kernel_log_origin else {
        return String::new();
    };
    match (&origin.host_wide_for, &origin.memcg) {
        (Some(_), Some(memcg)) => format!(" (host-wide; OOM kills in cgroup {memcg} only)"),
        (Some(_), None) => " (host-wide)".to_owned(),
        (None, Some(memcg)) => format!(" (OOM kills in cgroup {memcg} only)"),
        (None, None) => String::new(),
    }
}

/// Why the kernel log's lines have no wall time, when they have none.
pub fn clock_unknown(facts: &Facts) -> Option<&str> {
    facts
        .kernel_log_origin
        .as_ref()
        .and_then(|o| o.clock_unknown.as_deref())
}
