//! The receive-drop counters of every link (IFLA_STATS64 of the link dump) read
//! twice, a window apart, for the `rx_drops` condition: a NIC that dropped once,
//! months ago, has large counters but no growth, and must not fire.
//!
//! The first reading is taken when gathering starts and the window runs while the
//! other facts are read (as [`super::counters`] does); both readings are kept in the
//! facts, so a snapshot (`plan --facts`) and a saved plan (`made_from`) replay the
//! decision without waiting. When no selected link's counter since the device was
//! created reaches the smallest growth that could make a condition hold (0 for
//! `above: 0`), the second reading is skipped: a healthy host does not wait. A link
//! is compared only with itself: the same ifindex and name in both readings (a link
//! re-created in between has a new ifindex).
//!
//! The ring sizes of the links whose counters grew enough are read afterwards (ethtool
//! netlink, [`super::ring`]), for the evidence and for `ring: below_max`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::net::RxDrops;
use super::{Fact, Facts, GatherOptions};
use crate::kernel::rtdump;
use crate::playbook::{Condition, RxDropStat, RxDropsCondition, Vars, expand};

/// What one `rx_drops` condition needs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Want {
    /// The link glob, variables expanded.
    pub glob: String,
    pub stat: RxDropStat,
    /// The smallest growth that could make the condition hold (0: always sample).
    pub min_growth: u64,
    pub window: Duration,
}

/// The `rx_drops` conditions of the loaded rules.
pub type Wanted = BTreeSet<Want>;

/// What an `rx_drops` condition asks for, with its variables expanded.
pub fn want(c: &RxDropsCondition, vars: &Vars) -> Want {
    Want {
        glob: expand(&c.link, vars).unwrap_or_else(|_| c.link.clone()),
        stat: c.stat,
        min_growth: super::counters::min_growth(&c.compare(), vars),
        window: super::sample_window(c.window.as_ref(), vars),
    }
}

/// Whether a rule's `rx_drops` conditions choose the links its `set_rx_ring` changes
/// (one is reachable without `not`).
pub fn chooses_targets(c: &Condition) -> bool {
    match c {
        Condition::All(list) | Condition::Any(list) => list.iter().any(chooses_targets),
        Condition::RxDrops(_) => true,
        _ => false,
    }
}

/// Both readings of every link's receive-drop counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RxDropSamples {
    /// Seconds between the readings (0 when the second was not taken).
    pub window: f64,
    /// The second reading was taken. It is not when no selected link had dropped
    /// enough since it was created to make a condition hold.
    pub sampled: bool,
    /// Every link with IFLA_STATS64 at the first reading.
    pub links: Vec<LinkDropSample>,
}

/// One link's counters at both readings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkDropSample {
    pub index: u32,
    pub name: String,
    /// At the first reading, since the device was created.
    pub first: RxDrops,
    /// At the second reading; absent when it was not taken, or when no link of this
    /// index and name was there any more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second: Option<RxDrops>,
}

/// A counter's value; for `ring`, the larger of `rx_missed_errors` and
/// `rx_fifo_errors`.
pub fn value(d: &RxDrops, stat: RxDropStat) -> u64 {
    match stat {
        RxDropStat::Missed => d.rx_missed_errors,
        RxDropStat::Fifo => d.rx_fifo_errors,
        RxDropStat::Ring => d.rx_missed_errors.max(d.rx_fifo_errors),
        RxDropStat::Dropped => d.rx_dropped,
    }
}

/// How much a counter grew between two readings (for `ring`, the larger growth of
/// the two counters); `None` when one went down (a driver reset its statistics).
pub fn growth(first: &RxDrops, second: &RxDrops, stat: RxDropStat) -> Option<u64> {
    let grew = |a: u64, b: u64| b.checked_sub(a);
    match stat {
        RxDropStat::Ring => Some(
            grew(first.rx_missed_errors, second.rx_missed_errors)?
                .max(grew(first.rx_fifo_errors, second.rx_fifo_errors)?),
        ),
        _ => grew(value(first, stat), value(second, stat)),
    }
}

fn matches(glob: &str, name: &str) -> bool {
    glob::Pattern::new(glob).is_ok_and(|p| p.matches(name))
}

/// The first reading, waiting for the second.
#[derive(Debug)]
pub struct Pending {
    first: Result<Vec<LinkDropSample>, String>,
    window: Option<Duration>,
    started: Instant,
}

fn read() -> Result<Vec<LinkDropSample>, String> {
    let links = rtdump::links(|r| {
        r.rx_drops.map(|d| LinkDropSample {
            index: r.index,
            name: r
                .name
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .unwrap_or_default(),
            first: RxDrops {
                rx_dropped: d.rx_dropped,
                rx_fifo_errors: d.rx_fifo_errors,
                rx_missed_errors: d.rx_missed_errors,
            },
            second: None,
        })
    })
    .map_err(|e| format!("rtnetlink: {e}"))?;
    Ok(links.into_iter().flatten().collect())
}

/// The window to wait (the longest of the conditions a link could satisfy, or
/// `window` when given), or `None` when no link could satisfy any condition.
fn window_needed(
    links: &[LinkDropSample],
    wanted: &Wanted,
    window: Option<Duration>,
) -> Option<Duration> {
    let needed = wanted
        .iter()
        .filter(|w| {
            links
                .iter()
                .any(|l| matches(&w.glob, &l.name) && value(&l.first, w.stat) >= w.min_growth)
        })
        .map(|w| w.window)
        .max()?;
    Some(window.unwrap_or(needed))
}

/// Takes the first reading. `window` overrides the conditions' windows.
pub fn start(wanted: &Wanted, window: Option<Duration>) -> Pending {
    let first = read();
    let window = first
        .as_ref()
        .ok()
        .and_then(|links| window_needed(links, wanted, window));
    Pending {
        first,
        window,
        started: Instant::now(),
    }
}

/// Waits out what is left of the window and takes the second reading, if needed.
pub fn finish(pending: Pending) -> Fact<RxDropSamples> {
    let mut links = match pending.first {
        Ok(links) => links,
        Err(why) => return Fact::Unknown(why),
    };
    let Some(window) = pending.window else {
        return Fact::Value(RxDropSamples {
            window: 0.0,
            sampled: false,
            links,
        });
    };
    super::window::wait_out(pending.started, window);
    let second = match read() {
        Ok(second) => second,
        Err(why) => return Fact::Unknown(why),
    };
    let waited = pending.started.elapsed().as_secs_f64();
    let by_index: BTreeMap<u32, &LinkDropSample> = second.iter().map(|l| (l.index, l)).collect();
    for link in &mut links {
        link.second = by_index
            .get(&link.index)
            .filter(|l| l.name == link.name)
            .map(|l| l.first);
    }
    Fact::Value(RxDropSamples {
        window: waited,
        sampled: true,
        links,
    })
}

/// The links whose counters grew enough to make a condition hold, by (ifindex, name):
/// their ring sizes are read.
pub fn grown(samples: &RxDropSamples, wanted: &Wanted) -> Vec<(u32, String)> {
    samples
        .links
        .iter()
        .filter(|l| {
            let Some(second) = &l.second else {
                return false;
            };
            wanted.iter().any(|w| {
                matches(&w.glob, &l.name)
                    && growth(&l.first, second, w.stat).is_some_and(|g| g >= w.min_growth)
            })
        })
        .map(|l| (l.index, l.name.clone()))
        .collect()
}

/// Ends the sampling started by [`start`] (or takes the readings a saved plan
/// recorded) and reads the rings of the links whose counters grew.
pub fn finish_into(
    facts: &mut Facts,
    pending: Option<Pending>,
    wanted: &Wanted,
    options: &GatherOptions,
) {
    let samples = match (pending, &options.recorded_rx_drops) {
        (Some(pending), _) => finish(pending),
        (None, Some(recorded)) => recorded.clone(),
        (None, None) => return,
    };
    if let Fact::Value(s) = &samples {
        let grown = grown(s, wanted);
        facts.rings.extend(super::ring::gather_links(&grown));
    }
    facts.rx_drop_samples = Some(samples);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drops(dropped: u64, fifo: u64, missed: u64) -> RxDrops {
        RxDrops {
            rx_dropped: dropped,
            rx_fifo_errors: fifo,
            rx_missed_errors: missed,
        }
    }

    fn sample(index: u32, name: &str, first: RxDrops, second: Option<RxDrops>) -> LinkDropSample {
        LinkDropSample {
            index,
            name: name.into(),
            first,
            second,
        }
    }

    fn want(glob: &str, stat: RxDropStat, min_growth: u64) -> Want {
        Want {
            glob: glob.into(),
            stat,
            min_growth,
            window: Duration::from_secs(1),
        }
    }

    #[test]
    fn ring_growth_is_the_larger_of_missed_and_fifo_and_a_reset_is_none() {
        let (a, b) = (drops(5, 10, 100), drops(9, 30, 150));
        assert_eq!(growth(&a, &b, RxDropStat::Ring), Some(50));
        assert_eq!(growth(&a, &b, RxDropStat::Fifo), Some(20));
        assert_eq!(growth(&a, &b, RxDropStat::Dropped), Some(4));
        assert_eq!(growth(&b, &a, RxDropStat::Missed), None);
        assert_eq!(growth(&a, &drops(5, 9, 200), RxDropStat::Ring), None);
        assert_eq!(value(&a, RxDropStat::Ring), 100);
    }

    #[test]
    fn no_wait_unless_a_selected_link_could_have_grown_enough() {
        let links = [
            sample(1, "lo", drops(0, 0, 0), None),
            sample(2, "eth0", drops(7, 0, 0), None),
        ];
        let ring = Wanted::from([want("*", RxDropStat::Ring, 1)]);
        assert_eq!(window_needed(&links, &ring, None), None);
        let dropped = Wanted::from([want("eth*", RxDropStat::Dropped, 1)]);
        assert_eq!(
            window_needed(&links, &dropped, None),
            Some(Duration::from_secs(1))
        );
        let other = Wanted::from([want("wlan*", RxDropStat::Dropped, 1)]);
        assert_eq!(window_needed(&links, &other, None), None);
        let always = Wanted::from([want("lo", RxDropStat::Ring, 0)]);
        let short = Some(Duration::from_millis(10));
        assert_eq!(window_needed(&links, &always, short), short);
    }

    #[test]
    fn rings_are_read_for_grown_links_only() {
        let samples = RxDropSamples {
            window: 1.0,
            sampled: true,
            links: vec![
                sample(2, "eth0", drops(0, 0, 10), Some(drops(0, 0, 1210))),
                sample(3, "eth1", drops(0, 0, 10), Some(drops(0, 0, 10))),
                sample(4, "eth2", drops(0, 0, 10), None),
            ],
        };
        let wanted = Wanted::from([want("eth*", RxDropStat::Ring, 1)]);
        assert_eq!(grown(&samples, &wanted), vec![(2, "eth0".to_owned())]);
    }
}
