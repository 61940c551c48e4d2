//! The `conntrack_stat` condition: the growth of a column of /proc/net/stat/nf_conntrack
//! over the sampling window, summed over every CPU, compared like a counter, with each
//! CPU's growth and the window in the evidence (never the value since the module
//! loaded).
//!
//! Pure: no I/O.

use crate::facts::{Fact, Facts};
use crate::finding::Truth;
use crate::playbook::{ConntrackStatCondition, Vars};

use super::compare::{Outcome, per_cpu_growth, unknown};

pub fn eval(c: &ConntrackStatCondition, vars: &Vars, facts: &Facts, out: &mut Outcome) -> Truth {
    let fact = format!(
        "conntrack {} growth (/proc/net/stat/nf_conntrack, all CPUs)",
        c.name
    );
    let readings = match facts.conntrack_stat() {
        Fact::Value(r) => r,
        Fact::Unknown(why) => return unknown(out, &fact, &why),
    };
    let missing = format!("no column {:?} in /proc/net/stat/nf_conntrack", c.name);
    per_cpu_growth(
        &fact,
        readings,
        |r| r.cpu,
        |r| r.counters.get(&c.name).copied(),
        &missing,
        &c.compare(),
        vars,
        out,
    )
}
