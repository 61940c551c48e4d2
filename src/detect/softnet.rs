//! The `softnet` condition: the growth of a column of /proc/net/softnet_stat over the
//! sampling window, summed over every CPU (never the since-boot value: drops months
//! ago do not fire), compared like a counter. The evidence names each CPU's growth
//! and the window, and says that the file is host-wide (not per network namespace),
//! since `--netns` does not change it.
//!
//! Pure: no I/O.

use crate::facts::Fact;
use crate::facts::Facts;
use crate::finding::Truth;
use crate::playbook::{SoftnetCondition, Vars};

use super::compare::{Outcome, per_cpu_growth, unknown};

pub fn eval(c: &SoftnetCondition, vars: &Vars, facts: &Facts, out: &mut Outcome) -> Truth {
    let fact = format!(
        "softnet {} growth (/proc/net/softnet_stat, all CPUs; host-wide, not per network namespace)",
        c.stat.name()
    );
    let readings = match facts.softnet() {
        Fact::Value(r) => r,
        Fact::Unknown(why) => return unknown(out, &fact, &why),
    };
    per_cpu_growth(
        &fact,
        readings,
        |r| r.cpu,
        |r| r.column(c.stat.name()),
        "no such column",
        &c.compare(),
        vars,
        out,
    )
}
