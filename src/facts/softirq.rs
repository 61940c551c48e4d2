//! Softirq CPU time per CPU: the `softirq` column of each `cpuN` line of /proc/stat
//! against the CPU's total, NET_RX of /proc/softirqs, and the pid of the CPU's
//! `ksoftirqd/N` thread (from /proc/PID/comm), for the `perf record` an operator runs
//! next. Host-wide (not per network namespace). The file is read twice, a window apart
//! ([`super::cpu_tables`]), and the share compared is the one over the window
//! ([`over_window`]): a CPU busy in softirqs months ago says nothing about now.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Fact, describe_io_error};

/// One CPU's softirq time, since boot (one reading).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SoftirqCpu {
    pub cpu: u32,
    /// Clock ticks spent in softirqs (column 7 of the `cpuN` line).
    pub softirq_ticks: u64,
    /// Clock ticks in every state (user through steal; guest time is already in user).
    pub total_ticks: u64,
    /// NET_RX softirqs run on this CPU (/proc/softirqs), when the file lists it.
    #[serde(default)]
    pub net_rx: Option<u64>,
    /// The pid of this CPU's ksoftirqd thread, when found.
    #[serde(default)]
    pub ksoftirqd_pid: Option<u32>,
}

/// One CPU between two readings.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuWindow {
    pub cpu: u32,
    /// Softirq ticks during the window.
    pub softirq_ticks: u64,
    /// Ticks in every state during the window.
    pub total_ticks: u64,
    /// NET_RX softirqs run during the window (a 32-bit count, wraps at 2^32).
    pub net_rx: Option<u64>,
    /// From the second reading.
    pub ksoftirqd_pid: Option<u32>,
}

impl CpuWindow {
    /// The share of the window the CPU spent in softirqs, 0 to 1; `None` when no tick
    /// was counted (never divides by zero).
    pub fn share(&self) -> Option<f64> {
        (self.total_ticks > 0).then(|| self.softirq_ticks as f64 / self.total_ticks as f64)
    }
}

/// The CPUs of both readings, with what each counted during the window, and notes on
/// the CPUs left out: in only one reading (brought on- or offline), or with ticks that
/// went down.
pub fn over_window(first: &[SoftirqCpu], second: &[SoftirqCpu]) -> (Vec<CpuWindow>, Vec<String>) {
    let (pairs, alone) = super::window::paired(first, second, |c| c.cpu);
    let mut notes: Vec<String> = super::window::left_out(&alone).into_iter().collect();
    let mut cpus = Vec::new();
    for (a, b) in pairs {
        let (Some(softirq_ticks), Some(total_ticks)) = (
            b.softirq_ticks.checked_sub(a.softirq_ticks),
            b.total_ticks.checked_sub(a.total_ticks),
        ) else {
            notes.push(format!(
                "cpu{}: ticks went down between the readings, left out",
                b.cpu
            ));
            continue;
        };
        let net_rx = match (a.net_rx, b.net_rx) {
            (Some(x), Some(y)) => super::window::u32_growth(x, y),
            _ => None,
        };
        cpus.push(CpuWindow {
            cpu: b.cpu,
            softirq_ticks: softirq_ticks.min(total_ticks),
            total_ticks,
            net_rx,
            ksoftirqd_pid: b.ksoftirqd_pid,
        });
    }
    (cpus, notes)
}

/// A reading with each CPU's ksoftirqd pid (the second reading of a window: only its
/// pids are shown).
pub fn read() -> Fact<Vec<SoftirqCpu>> {
    read_with(true)
}

/// A reading without the ksoftirqd pids (the first reading of a window).
pub fn read_first() -> Fact<Vec<SoftirqCpu>> {
    read_with(false)
}

fn read_with(with_pids: bool) -> Fact<Vec<SoftirqCpu>> {
    let stat = match super::procfs::read_text("/proc/stat") {
        Ok(text) => text,
        Err(e) => return Fact::Unknown(format!("/proc/stat: {}", describe_io_error(&e))),
    };
    let mut cpus = match parse_stat(&stat) {
        Ok(cpus) => cpus,
        Err(e) => return Fact::Unknown(format!("/proc/stat: {e}")),
    };
    // NET_RX and the thread pids only add evidence: an unreadable file leaves them out.
    let net_rx = super::procfs::read_text("/proc/softirqs")
        .map(|t| parse_net_rx(&t))
        .unwrap_or_default();
    let pids = if with_pids {
        ksoftirqd_pids(&cpus.iter().map(|c| c.cpu).collect::<Vec<_>>())
    } else {
        BTreeMap::new()
    };
    for c in &mut cpus {
        c.net_rx = net_rx.get(&c.cpu).copied();
        c.ksoftirqd_pid = pids.get(&c.cpu).copied();
    }
    Fact::Value(cpus)
}

/// The `cpuN` lines (not the `cpu` total).
pub fn parse_stat(text: &str) -> Result<Vec<SoftirqCpu>, String> {
    let mut cpus = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(cpu) = fields
            .next()
            .and_then(|f| f.strip_prefix("cpu"))
            .filter(|n| !n.is_empty())
        else {
            continue;
        };
        let cpu: u32 = cpu
            .parse()
            .map_err(|_| format!("bad CPU name in {line:?}"))?;
        let ticks = fields
            .take(8)
            .map(str::parse::<u64>)
            .collect::<Result<Vec<u64>, _>>()
            .map_err(|e| format!("cpu{cpu}: {e}"))?;
        let Some(&softirq) = ticks.get(6) else {
            return Err(format!("cpu{cpu}: fewer than 7 columns"));
        };
        cpus.push(SoftirqCpu {
            cpu,
            softirq_ticks: softirq,
            total_ticks: ticks.iter().sum(),
            net_rx: None,
            ksoftirqd_pid: None,
        });
    }
    if cpus.is_empty() {
        return Err("no cpuN lines".into());
    }
    Ok(cpus)
}

/// NET_RX per CPU number, from the `CPU0 CPU1 ...` header and the `NET_RX:` row.
pub fn parse_net_rx(text: &str) -> BTreeMap<u32, u64> {
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return BTreeMap::new();
    };
    let cpus: Vec<Option<u32>> = header
        .split_whitespace()
        .map(|c| c.strip_prefix("CPU").and_then(|n| n.parse().ok()))
        .collect();
    let Some(row) = lines.find_map(|l| l.trim_start().strip_prefix("NET_RX:")) else {
        return BTreeMap::new();
    };
    cpus.into_iter()
        .zip(row.split_whitespace())
        .filter_map(|(cpu, v)| Some((cpu?, v.parse().ok()?)))
        .collect()
}

/// CPU number → pid of `ksoftirqd/N` for the `cpus` asked for, from /proc/PID/comm in
/// pid order. The walk stops once every one is found: the kernel starts these threads
/// at boot, so on a host with thousands of processes only the first hundred or so
/// pids are read (a CPU brought online later has a later pid, found further on).
fn ksoftirqd_pids(cpus: &[u32]) -> BTreeMap<u32, u32> {
    ksoftirqd_pids_in(std::path::Path::new("/proc"), cpus)
}

fn ksoftirqd_pids_in(proc_root: &std::path::Path, cpus: &[u32]) -> BTreeMap<u32, u32> {
    let mut found = BTreeMap::new();
    let Ok(dir) = super::procfs::Dir::open(proc_root) else {
        return found;
    };
    let _ = super::procfs::comms(&dir, |pid, comm| {
        if let Some(cpu) = comm
            .strip_prefix(b"ksoftirqd/")
            .and_then(|n| std::str::from_utf8(n).ok()?.parse::<u32>().ok())
            .filter(|cpu| cpus.contains(cpu))
        {
            found.insert(cpu, pid);
        }
        if found.len() == cpus.len() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ksoftirqd_pids_are_found_in_pid_order_and_the_walk_stops_when_all_are() {
        let tmp = tempfile::tempdir().expect("tempdir");
        for (pid, comm) in [
            (1, "systemd"),
            (12, "ksoftirqd/0"),
            (9, "ksoftirqd/7"),
            (20, "ksoftirqd/1"),
            (21, "ksoftirqd/x"),
            // Past the point where cpus 0 and 1 are both found: never read.
            (40, "ksoftirqd/1"),
        ] {
            std::fs::create_dir(tmp.path().join(pid.to_string())).expect("mkdir");
            std::fs::write(tmp.path().join(format!("{pid}/comm")), format!("{comm}\n"))
                .expect("comm");
        }
        std::fs::create_dir(tmp.path().join("self")).expect("mkdir");
        let pids = ksoftirqd_pids_in(tmp.path(), &[0, 1]);
        assert_eq!(pids, BTreeMap::from([(0, 12), (1, 20)]));
        // A CPU with no thread: the whole walk, the last thread of a CPU kept.
        let pids = ksoftirqd_pids_in(tmp.path(), &[1, 3]);
        assert_eq!(pids, BTreeMap::from([(1, 40)]));
        assert_eq!(
            ksoftirqd_pids_in(&tmp.path().join("none"), &[0]),
            BTreeMap::new()
        );
    }

    #[test]
    fn parses_cpu_lines_and_net_rx() {
        let stat = "cpu  450255 41072 94721 123606 3924 0 1140 14047 0 0\ncpu0 100 0 100 700 0 0 100 0 0 0\ncpu1 10 0 10 970 0 0 10 0 0 0\nintr 1\n";
        let cpus = parse_stat(stat).expect("parse");
        assert_eq!(cpus.len(), 2);
        assert_eq!((cpus[0].softirq_ticks, cpus[0].total_ticks), (100, 1000));
        let softirqs = "                    CPU0       CPU1       \n          HI:          0          0\n      NET_RX:      48446      81216\n";
        let rx = parse_net_rx(softirqs);
        assert_eq!(rx.get(&1), Some(&81216));
    }

    fn cpu(cpu: u32, softirq_ticks: u64, total_ticks: u64, net_rx: Option<u64>) -> SoftirqCpu {
        SoftirqCpu {
            cpu,
            softirq_ticks,
            total_ticks,
            net_rx,
            ksoftirqd_pid: None,
        }
    }

    #[test]
    fn shares_are_over_the_window() {
        // cpu0 spent 90% of its boot in softirqs but 1% of the window; cpu1 the reverse.
        let first = [
            cpu(0, 900, 1000, Some(10)),
            cpu(1, 10, 1000, Some(0xffff_fffe)),
        ];
        let second = [cpu(0, 901, 1100, Some(15)), cpu(1, 60, 1100, Some(3))];
        let (cpus, notes) = over_window(&first, &second);
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(cpus[0].share(), Some(0.01));
        assert_eq!(cpus[1].share(), Some(0.5));
        assert_eq!((cpus[0].net_rx, cpus[1].net_rx), (Some(5), Some(5)));
    }

    #[test]
    fn idle_vanished_and_rewound_cpus_are_left_out() {
        let first = [
            cpu(0, 5, 100, None),
            cpu(1, 5, 100, None),
            cpu(2, 5, 100, None),
        ];
        let second = [
            cpu(0, 5, 100, None),
            cpu(1, 4, 90, None),
            cpu(3, 1, 2, None),
        ];
        let (cpus, notes) = over_window(&first, &second);
        assert_eq!(cpus.len(), 1);
        assert_eq!(
            cpus[0].share(),
            None,
            "no ticks: no share, no division by zero"
        );
        assert_eq!(cpus[0].net_rx, None);
        assert!(notes[0].starts_with("cpu2, cpu3 in only one"), "{notes:?}");
        assert!(notes[1].starts_with("cpu1: ticks went down"), "{notes:?}");
    }

    #[test]
    fn bad_stat_is_an_error() {
        assert!(parse_stat("intr 1\n").is_err());
        assert!(parse_stat("cpu0 1 2 x\n").is_err());
        assert!(parse_stat("cpu0 1 2 3\n").unwrap_err().contains("fewer"));
    }

    #[test]
    fn this_host_reads() {
        match read() {
            Fact::Value(cpus) => assert!(!cpus.is_empty()),
            Fact::Unknown(why) => panic!("/proc/stat unreadable: {why}"),
        }
    }
}
