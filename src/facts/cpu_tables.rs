//! The per-CPU tables read twice, a window apart: /proc/net/softnet_stat
//! ([`super::softnet`]), /proc/net/stat/nf_conntrack ([`super::conntrack`]) and the
//! softirq time of /proc/stat and /proc/softirqs ([`super::softirq`]).
//!
//! [`start`] takes the first readings when gathering starts, [`finish`] the second ones
//! after the window (other facts were read meanwhile), through [`super::window`]. A
//! softnet or conntrack table whose since-boot totals cannot reach what any condition
//! asks (0 dropped since boot, for `above: 0`) is not read again; /proc/stat always is
//! (a share over the window cannot be bounded by the since-boot one). A saved plan
//! re-derived at apply uses the readings it recorded ([`Recorded`]) instead.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::window::{self, Pending, Readings, Want};
use super::{Fact, FactRequest, Facts, GatherOptions, conntrack, softirq, softnet};

/// Softnet rows, two readings.
pub type SoftnetReadings = Readings<Vec<softnet::SoftnetCpu>>;
/// Connection-tracking statistics rows, two readings.
pub type ConntrackReadings = Readings<Vec<conntrack::CpuCounters>>;
/// Softirq time per CPU, two readings.
pub type SoftirqReadings = Readings<Vec<softirq::SoftirqCpu>>;

/// The readings a plan was made from (`made_from.cpu_tables`): apply re-derives the
/// plan with them rather than sampling again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Recorded {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub softnet: Option<Fact<SoftnetReadings>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conntrack_stat: Option<Fact<ConntrackReadings>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub softirq_cpus: Option<Fact<SoftirqReadings>>,
}

impl Recorded {
    pub fn is_empty(&self) -> bool {
        *self == Recorded::default()
    }

    /// The tables a snapshot holds.
    pub fn of(facts: &Facts) -> Recorded {
        Recorded {
            softnet: facts.softnet.clone(),
            conntrack_stat: facts.conntrack_stat.clone(),
            softirq_cpus: facts.softirq_cpus.clone(),
        }
    }
}

/// First readings of the tables the request asks for.
#[derive(Debug, Default)]
pub struct PendingTables {
    softnet: Option<Pending<Vec<softnet::SoftnetCpu>>>,
    conntrack_stat: Option<Pending<Vec<conntrack::CpuCounters>>>,
    softirq_cpus: Option<Pending<Vec<softirq::SoftirqCpu>>>,
}

/// Takes the first readings (nothing when the plan's recorded readings are replayed).
pub fn start(request: &FactRequest, options: &GatherOptions) -> PendingTables {
    if options.recorded_tables.is_some() {
        return PendingTables::default();
    }
    let window = |want: &Want| options.sample_window.unwrap_or(want.window);
    PendingTables {
        softnet: request.softnet.as_ref().map(|want| {
            window::start(softnet::read(), window(want), |rows| {
                want.needs_second(|column| softnet::total(rows, column))
            })
        }),
        conntrack_stat: request.conntrack_stat.as_ref().map(|want| {
            window::start(conntrack::read(), window(want), |rows| {
                want.needs_second(|column| conntrack::total(rows, column))
            })
        }),
        softirq_cpus: request
            .softirq_cpus
            .as_ref()
            .map(|want| window::start(softirq::read_first(), window(want), |_| true)),
    }
}

/// Takes the second readings (or the recorded ones) into `facts`.
pub fn finish(
    pending: PendingTables,
    request: &FactRequest,
    options: &GatherOptions,
    facts: &mut Facts,
) {
    if let Some(recorded) = &options.recorded_tables {
        facts.softnet = replay(request.softnet.is_some(), &recorded.softnet);
        facts.conntrack_stat = replay(request.conntrack_stat.is_some(), &recorded.conntrack_stat);
        facts.softirq_cpus = replay(request.softirq_cpus.is_some(), &recorded.softirq_cpus);
        return;
    }
    facts.softnet = pending.softnet.map(|p| p.finish(softnet::read));
    facts.conntrack_stat = pending.conntrack_stat.map(|p| p.finish(conntrack::read));
    facts.softirq_cpus = pending.softirq_cpus.map(|p| p.finish(softirq::read));
}

/// A recorded table, when the request asks for it.
fn replay<T: Clone>(asked: bool, fact: &Option<Fact<T>>) -> Option<Fact<T>> {
    asked.then(|| {
        fact.clone().unwrap_or_else(|| {
            Fact::Unknown("the plan does not record this table's readings".to_owned())
        })
    })
}
