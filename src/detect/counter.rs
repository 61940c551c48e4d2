//! The `counter` condition: a counter of /proc/net/netstat or snmp since boot, or its
//! growth over a sampling window (`measure: growth`).
//!
//! Pure: no I/O (the readings were taken by `facts::counters`). The evidence of a
//! growth condition shows the since-boot value and the increase in the window, so a
//! reader sees both the history and what is happening now.

use crate::facts::{Fact, Facts};
use crate::finding::{Evidence, Truth};
use crate::playbook::{CounterCondition, CounterMeasure, Vars};

use super::compare::{Measured, Outcome, compare, count, unknown};

/// Evaluates a `counter` condition.
pub fn eval(cnt: &CounterCondition, vars: &Vars, facts: &Facts, out: &mut Outcome) -> Truth {
    let fact = format!("counter {}", cnt.name);
    if cnt.measure == CounterMeasure::SinceBoot {
        return count(&fact, facts.counter(&cnt.name), &cnt.compare(), vars, out);
    }
    let fact = format!("{fact} growth");
    let sample = match facts.counter_sample(&cnt.name) {
        Fact::Value(s) => s,
        Fact::Unknown(why) => {
            return unknown(out, &fact, &format!("not sampled ({why})"));
        }
    };
    let Some(second) = sample.second else {
        // Not sampled: the since-boot value is below the smallest growth that could
        // make a rule fire, so the counter never grew that much in the whole uptime.
        out.evidence.push(Evidence {
            fact,
            observed: format!("{} since boot, not sampled", sample.first),
            test: format!(
                "{} since boot < {} needed to fire",
                sample.first, sample.min_growth
            ),
        });
        return Truth::False;
    };
    let Some(growth) = second.checked_sub(sample.first) else {
        return unknown(
            out,
            &fact,
            &format!(
                "the counter went down ({} → {second}) during the window: reset or namespace re-created",
                sample.first
            ),
        );
    };
    let observed = format!(
        "+{growth} in {:.1}s ({} → {second} since boot)",
        sample.window, sample.first
    );
    let label = format!("+{growth}");
    let mut sub = Outcome::default();
    let truth = compare(
        &fact,
        &observed,
        &Measured::Number(growth as f64),
        &label,
        &cnt.compare(),
        vars,
        &mut sub,
    );
    out.unknown.extend(sub.unknown);
    out.evidence.extend(sub.evidence);
    truth
}
