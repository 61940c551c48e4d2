//! The `conntrack_stat` condition: a column of /proc/net/stat/nf_conntrack summed over
//! every CPU, compared like a counter, with each CPU's value in the evidence.
//!
//! Pure: no I/O.

use crate::facts::{Fact, Facts};
use crate::finding::Truth;
use crate::playbook::{ConntrackStatCondition, Vars};

use super::compare::{Outcome, per_cpu_total, unknown};

pub fn eval(c: &ConntrackStatCondition, vars: &Vars, facts: &Facts, out: &mut Outcome) -> Truth {
    let fact = format!(
        "conntrack {} (/proc/net/stat/nf_conntrack, all CPUs)",
        c.name
    );
    let rows = match facts.conntrack_stat() {
        Fact::Value(rows) => rows,
        Fact::Unknown(why) => return unknown(out, &fact, &why),
    };
    let mut values = Vec::new();
    for r in rows {
        let Some(v) = r.counters.get(&c.name) else {
            let why = format!("no column {:?} in /proc/net/stat/nf_conntrack", c.name);
            return unknown(out, &fact, &why);
        };
        values.push((r.cpu, *v));
    }
    per_cpu_total(&fact, &values, &c.compare(), vars, out)
}
