//! The `softnet` condition: a column of /proc/net/softnet_stat summed over every CPU,
//! compared like a counter. The evidence names each CPU's value and says that the file
//! is host-wide (not per network namespace), since `--netns` does not change it.
//!
//! Pure: no I/O.

use crate::facts::Fact;
use crate::facts::Facts;
use crate::finding::Truth;
use crate::playbook::{SoftnetCondition, SoftnetStat, Vars};

use super::compare::{Outcome, per_cpu_total, unknown};

pub fn eval(c: &SoftnetCondition, vars: &Vars, facts: &Facts, out: &mut Outcome) -> Truth {
    let fact = format!(
        "softnet {} (/proc/net/softnet_stat, all CPUs; host-wide, not per network namespace)",
        c.stat.name()
    );
    let rows = match facts.softnet() {
        Fact::Value(rows) => rows,
        Fact::Unknown(why) => return unknown(out, &fact, &why),
    };
    let values: Vec<(u32, u64)> = rows
        .iter()
        .map(|r| {
            let v = match c.stat {
                SoftnetStat::Dropped => r.dropped,
                SoftnetStat::TimeSqueeze => r.time_squeeze,
            };
            (r.cpu, v)
        })
        .collect();
    per_cpu_total(&fact, &values, &c.compare(), vars, out)
}
