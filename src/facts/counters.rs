//! Counters of /proc/net/netstat and /proc/net/snmp.
//!
//! Both files hold pairs of lines: a header (`TcpExt: SyncookiesSent ListenOverflows ...`)
//! and the values (`TcpExt: 0 12 ...`). They are read through /proc/thread-self/net so
//! that a thread that entered another network namespace sees that namespace's counters
//! (/proc/self/net follows the thread-group leader instead).
//!
//! A counter asked for as *growth* (`measure: growth`) is read twice, a window apart
//! ([`start_sampling`], [`finish_sampling`]); both readings are kept in the facts, so a
//! saved snapshot replays the decision without waiting. A counter whose first reading
//! is below the smallest growth that could make its rule fire (0 since boot, for
//! `above: 0`) is not sampled: a healthy host does not wait.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Fact, describe_io_error};
use crate::playbook::{Compare, CompareOp, Vars, scalar_text};

/// The sampling window when a playbook names none.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(1);

/// What the growth conditions on one counter need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sampling {
    /// How long to wait between the readings (the longest any condition asks).
    pub window: Duration,
    /// The smallest growth that could make a condition hold; a first reading below it
    /// is not sampled. 0: always sample.
    pub min_growth: u64,
}

impl Sampling {
    /// Two conditions on one counter: the longer window, the smaller threshold.
    pub fn merge(self, other: Sampling) -> Sampling {
        Sampling {
            window: self.window.max(other.window),
            min_growth: self.min_growth.min(other.min_growth),
        }
    }
}

/// The smallest growth that can satisfy these comparisons, when all of them are
/// `above` / `at_least` with numbers; 0 (always sample) otherwise.
pub fn min_growth(cmp: &Compare, vars: &Vars) -> u64 {
    let mut least = 0u64;
    for (op, operand) in cmp.operators() {
        let Some(n) = scalar_text(operand, vars)
            .ok()
            .and_then(|t| t.trim().parse::<f64>().ok())
        else {
            return 0;
        };
        let needed = match op {
            CompareOp::Above if n >= 0.0 => n.floor() + 1.0,
            CompareOp::AtLeast if n >= 0.0 => n.ceil(),
            _ => return 0,
        };
        least = least.max(needed.min(u64::MAX as f64) as u64);
    }
    least
}

/// Two readings of a counter, a window apart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CounterSample {
    /// The value at the first reading (since boot, or since the namespace was made).
    pub first: u64,
    /// The value at the second reading; absent when the counter was not sampled
    /// because its first reading was below `min_growth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second: Option<u64>,
    /// Seconds between the readings (0 when not sampled).
    pub window: f64,
    /// The smallest growth that could have made a rule fire.
    pub min_growth: u64,
}

/// The first readings, waiting for the second.
#[derive(Debug)]
pub struct PendingSamples {
    first: BTreeMap<String, Fact<u64>>,
    wanted: BTreeMap<String, Sampling>,
    window: Duration,
    started: Instant,
}

/// Counter readings from one read of the counter files, and when it was made.
#[derive(Debug, Clone)]
pub struct Readings {
    pub values: BTreeMap<String, Fact<u64>>,
    pub taken: Instant,
}

impl Readings {
    /// Reads `names` (nothing when there are none).
    pub fn read(names: &BTreeSet<String>) -> Readings {
        let taken = Instant::now();
        let values = if names.is_empty() {
            BTreeMap::new()
        } else {
            read_counters(names)
        };
        Readings { values, taken }
    }

    /// Whether these readings hold all of `names`.
    pub fn has_all<'a>(&self, mut names: impl Iterator<Item = &'a String>) -> bool {
        names.all(|n| self.values.contains_key(n))
    }

    /// Only the readings of `names`.
    pub fn only(&self, names: &BTreeSet<String>) -> Readings {
        Readings {
            values: self
                .values
                .iter()
                .filter(|(n, _)| names.contains(*n))
                .map(|(n, f)| (n.clone(), f.clone()))
                .collect(),
            taken: self.taken,
        }
    }
}

/// The names of `extra` held by the files that `names` already needs: reading them
/// along costs no read of a file.
pub fn in_same_files(names: &BTreeSet<String>, extra: &BTreeSet<String>) -> BTreeSet<String> {
    let files = files_for(names);
    extra
        .iter()
        .filter(|n| files.contains(&file_of(n)))
        .cloned()
        .collect()
}

/// Takes the first readings from `first` (a [`Readings`] that may also have served
/// the plain counters, so the files are read once); the window starts when they were
/// taken. Names of `wanted` missing from `first` count as not read. `window` overrides
/// the playbooks' windows.
pub fn start_sampling(
    wanted: &BTreeMap<String, Sampling>,
    first: &Readings,
    window: Option<Duration>,
) -> PendingSamples {
    let started = first.taken;
    let first: BTreeMap<String, Fact<u64>> = wanted
        .keys()
        .filter_map(|name| Some((name.clone(), first.values.get(name)?.clone())))
        .collect();
    let window = window.unwrap_or_else(|| {
        wanted
            .iter()
            .filter(|(name, s)| needs_second(first.get(*name), s))
            .map(|(_, s)| s.window)
            .max()
            .unwrap_or(Duration::ZERO)
    });
    PendingSamples {
        first,
        wanted: wanted.clone(),
        window,
        started,
    }
}

fn needs_second(first: Option<&Fact<u64>>, s: &Sampling) -> bool {
    matches!(first, Some(Fact::Value(v)) if *v >= s.min_growth)
}

/// Waits out what is left of the window (other facts were gathered meanwhile) and
/// takes the second readings of the counters that need one.
pub fn finish_sampling(pending: PendingSamples) -> BTreeMap<String, Fact<CounterSample>> {
    let to_sample: BTreeSet<String> = pending
        .wanted
        .iter()
        .filter(|(name, s)| needs_second(pending.first.get(*name), s))
        .map(|(name, _)| name.clone())
        .collect();
    let second = if to_sample.is_empty() {
        BTreeMap::new()
    } else {
        super::window::wait_out(pending.started, pending.window);
        read_counters(&to_sample)
    };
    let waited = pending.started.elapsed().as_secs_f64();
    pending
        .wanted
        .iter()
        .map(|(name, s)| {
            let fact = match (pending.first.get(name), second.get(name)) {
                (Some(Fact::Value(first)), Some(Fact::Value(second))) => {
                    Fact::Value(CounterSample {
                        first: *first,
                        second: Some(*second),
                        window: waited,
                        min_growth: s.min_growth,
                    })
                }
                (Some(Fact::Value(first)), None) => Fact::Value(CounterSample {
                    first: *first,
                    second: None,
                    window: 0.0,
                    min_growth: s.min_growth,
                }),
                (_, Some(Fact::Unknown(why))) | (Some(Fact::Unknown(why)), _) => {
                    Fact::Unknown(why.clone())
                }
                (None, _) => Fact::Unknown(format!("counter {name} was not read")),
            };
            (name.clone(), fact)
        })
        .collect()
}

const NETSTAT: &str = "/proc/thread-self/net/netstat";
const SNMP: &str = "/proc/thread-self/net/snmp";

/// The sections of /proc/net/snmp; every other section (TcpExt, IpExt, MPTcpExt) is in
/// /proc/net/netstat.
const SNMP_SECTIONS: [&str; 6] = ["Ip", "Icmp", "IcmpMsg", "Tcp", "Udp", "UdpLite"];

/// The counter file that holds `name`'s section.
fn file_of(name: &str) -> &'static str {
    let section = name.split_once('.').map_or(name, |(s, _)| s);
    if SNMP_SECTIONS.contains(&section) {
        SNMP
    } else {
        NETSTAT
    }
}

/// The counter files that hold the sections of `names`: only the ones needed.
fn files_for(names: &BTreeSet<String>) -> Vec<&'static str> {
    let mut files = Vec::new();
    for file in [NETSTAT, SNMP] {
        if names.iter().any(|n| file_of(n) == file) {
            files.push(file);
        }
    }
    files
}

/// Reads the requested `Section.Name` counters, from the files that hold them.
pub fn read_counters(names: &BTreeSet<String>) -> BTreeMap<String, Fact<u64>> {
    let mut all = BTreeMap::new();
    let mut errors = Vec::new();
    for file in files_for(names) {
        match super::procfs::read_text(file) {
            Ok(text) => all.extend(pick_counters(&text, names)),
            Err(e) => errors.push(format!("{file}: {}", describe_io_error(&e))),
        }
    }
    names
        .iter()
        .map(|name| {
            let fact = match all.get(name.as_str()) {
                Some(v) => Fact::Value(*v),
                None if errors.is_empty() => Fact::Unknown(format!(
                    "no counter {name} in /proc/net/netstat or /proc/net/snmp"
                )),
                None => Fact::Unknown(errors.join("; ")),
            };
            (name.clone(), fact)
        })
        .collect()
}

/// The counters of `names` in one file's header/value line pairs (`TcpExt: SyncookiesSent
/// ListenOverflows ...` then `TcpExt: 0 12 ...`). Lines that do not pair up, and values
/// that are not unsigned numbers (snmp's `Tcp: ... MaxConn -1`), are skipped.
fn pick_counters<'n>(text: &str, names: &'n BTreeSet<String>) -> BTreeMap<&'n str, u64> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines();
    while let (Some(header), Some(values)) = (lines.next(), lines.next()) {
        let (Some((section, heads)), Some((section2, nums))) =
            (header.split_once(':'), values.split_once(':'))
        else {
            continue;
        };
        if section != section2 {
            continue;
        }
        let wanted: Vec<(&str, &'n str)> = names
            .iter()
            .filter_map(|n| {
                let (s, name) = n.split_once('.')?;
                (s == section).then_some((name, n.as_str()))
            })
            .collect();
        if wanted.is_empty() {
            continue;
        }
        // A section names each counter once: the scan stops at the last one wanted.
        let mut left = wanted.len();
        for (head, num) in heads
            .split_ascii_whitespace()
            .zip(nums.split_ascii_whitespace())
        {
            let Some((_, full)) = wanted.iter().find(|(n, _)| *n == head) else {
                continue;
            };
            if let Ok(v) = num.parse::<u64>() {
                out.insert(*full, v);
            }
            left -= 1;
            if left == 0 {
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_growth_of_thresholds() {
        let vars = Vars::default();
        let cmp = |above: Option<i64>, at_least: Option<i64>, below: Option<i64>| Compare {
            above: above.map(crate::playbook::Scalar::Integer),
            at_least: at_least.map(crate::playbook::Scalar::Integer),
            below: below.map(crate::playbook::Scalar::Integer),
            ..Compare::default()
        };
        assert_eq!(min_growth(&cmp(Some(0), None, None), &vars), 1);
        assert_eq!(min_growth(&cmp(Some(10), Some(5), None), &vars), 11);
        assert_eq!(min_growth(&cmp(None, Some(5), None), &vars), 5);
        assert_eq!(min_growth(&cmp(Some(10), None, Some(20)), &vars), 0);
    }

    #[test]
    fn unsampled_counters_do_not_wait() {
        let wanted = BTreeMap::from([(
            "TcpExt.NoSuchCounterAnywhere".to_owned(),
            Sampling {
                window: Duration::from_secs(30),
                min_growth: 1,
            },
        )]);
        let started = Instant::now();
        let read = Readings::read(&wanted.keys().cloned().collect());
        let got = finish_sampling(start_sampling(&wanted, &read, None));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(matches!(
            got["TcpExt.NoSuchCounterAnywhere"],
            Fact::Unknown(_)
        ));
    }

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn parses_netstat_pairs() {
        let text = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 0 17 17\nIpExt: InNoRoutes\nIpExt: 3\n";
        let wanted = names(&[
            "TcpExt.ListenOverflows",
            "IpExt.InNoRoutes",
            "TcpExt.SyncookiesSent",
            "IpExt.Other",
        ]);
        let c = pick_counters(text, &wanted);
        assert_eq!(c.get("TcpExt.ListenOverflows"), Some(&17));
        assert_eq!(c.get("IpExt.InNoRoutes"), Some(&3));
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn skips_negative_and_unpaired_values() {
        let text = "Tcp: RtoAlgorithm MaxConn ActiveOpens\nTcp: 1 -1 5\nUdp: InDatagrams\n";
        let wanted = names(&["Tcp.MaxConn", "Tcp.ActiveOpens", "Udp.InDatagrams"]);
        let c = pick_counters(text, &wanted);
        assert_eq!(c.get("Tcp.MaxConn"), None);
        assert_eq!(c.get("Tcp.ActiveOpens"), Some(&5));
        assert_eq!(c.get("Udp.InDatagrams"), None);
    }

    #[test]
    fn picks_only_the_requested_counters_from_the_files_that_hold_them() {
        let text = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 0 17 17\nTcp: MaxConn ActiveOpens\nTcp: -1 5\n";
        let wanted = names(&["TcpExt.ListenDrops", "Tcp.ActiveOpens", "Tcp.MaxConn"]);
        let got = pick_counters(text, &wanted);
        assert_eq!(
            got,
            BTreeMap::from([("TcpExt.ListenDrops", 17), ("Tcp.ActiveOpens", 5)])
        );
        let only = |n: &str| files_for(&names(&[n]));
        assert_eq!(only("TcpExt.ListenOverflows"), [NETSTAT]);
        assert_eq!(only("Tcp.RetransSegs"), [SNMP]);
        assert_eq!(only("NoSection"), [NETSTAT]);
        assert!(files_for(&BTreeSet::new()).is_empty());
    }

    #[test]
    fn reads_along_only_what_sits_in_files_already_read() {
        let extra = names(&["TcpExt.ListenDrops", "Tcp.RetransSegs", "IpExt.InNoRoutes"]);
        assert_eq!(
            in_same_files(&names(&["TcpExt.ListenOverflows"]), &extra),
            names(&["TcpExt.ListenDrops", "IpExt.InNoRoutes"])
        );
        assert_eq!(
            in_same_files(&names(&["Tcp.ActiveOpens"]), &extra),
            names(&["Tcp.RetransSegs"])
        );
        // No plain counters: no file is read, so nothing is read along.
        assert!(in_same_files(&BTreeSet::new(), &extra).is_empty());
    }

    #[test]
    fn sampling_takes_its_first_readings_and_start_from_the_readings_given() {
        // A counter every kernel has; its value does not matter, only that the second
        // reading is real.
        let name = "TcpExt.ListenOverflows".to_owned();
        let wanted = BTreeMap::from([(
            name.clone(),
            Sampling {
                window: Duration::from_secs(30),
                min_growth: 1,
            },
        )]);
        let taken = Instant::now() - Duration::from_secs(5);
        let first = Readings {
            values: BTreeMap::from([(name.clone(), Fact::Value(7))]),
            taken,
        };
        let started = Instant::now();
        let pending = start_sampling(&wanted, &first, Some(Duration::from_secs(3)));
        let got = finish_sampling(pending);
        // The 3 s window started at the readings, 5 s ago: nothing is left to wait.
        assert!(started.elapsed() < Duration::from_secs(2));
        let Fact::Value(sample) = &got[&name] else {
            panic!("expected a sample, got {:?}", got[&name]);
        };
        assert_eq!(sample.first, 7);
        assert!(sample.second.is_some());
        assert!(sample.window >= 5.0, "{}", sample.window);
    }
}
