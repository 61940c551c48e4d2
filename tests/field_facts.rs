//! Real-kernel tests of the per-CPU fact sources read inside a throwaway network
//! namespace: /proc/net/softnet_stat is host-wide (the namespace sees the host's rows),
//! /proc/net/stat/nf_conntrack is the namespace's own (a fresh namespace has no drops,
//! so `conntrack-sizing` does not fire there, and the table is not read twice);
//! softirq ticks come with each CPU's ksoftirqd pid. Each table is read twice, a
//! sampling window apart: the assertions hold whatever the host's counts are (a second
//! reading never below the first, a window at least as long as asked). Needs root and
//! iproute2 (skips elsewhere, fails in CI); the conntrack part needs the nf_conntrack
//! module loaded.

mod support;

use std::path::PathBuf;

use support::{Netns, require, require_netns, text};

fn playbook(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("playbooks")
        .join(name)
        .display()
        .to_string()
}

fn facts_in(ns: &Netns, playbook_file: &str) -> serde_json::Value {
    let state = tempfile::tempdir().expect("tempdir");
    let out = ns.tune(
        state.path(),
        &[
            "facts",
            "--format",
            "json",
            "--sample-window",
            "200ms",
            "-p",
            playbook_file,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).expect("facts json")
}

/// The two readings of a sampled table: first rows, second rows (`None`: not
/// sampled), window.
fn readings(
    fact: &serde_json::Value,
) -> (
    &Vec<serde_json::Value>,
    Option<&Vec<serde_json::Value>>,
    f64,
) {
    let value = &fact["value"];
    let first = value["first"].as_array().expect("first reading");
    let second = value
        .get("second")
        .map(|s| s.as_array().expect("second reading"));
    let window = value["window"].as_f64().expect("window");
    (first, second, window)
}

#[test]
fn softnet_rows_in_a_namespace_are_the_hosts() {
    if !require_netns() {
        return;
    }
    let host = std::fs::read_to_string("/proc/net/softnet_stat").expect("softnet_stat");
    let ns = Netns::new("softnet");
    let facts = facts_in(&ns, &playbook("softnet.yml"));
    let (rows, second, window) = readings(&facts["softnet"]);
    assert_eq!(rows.len(), host.lines().count(), "{facts}");
    match second {
        // Sampled: the same CPUs, counts that only grew, the window asked for.
        Some(second) => {
            assert!(window >= 0.2, "{facts}");
            assert!(!rows.is_empty(), "{facts}");
            assert_eq!(second.len(), rows.len(), "{facts}");
            for (a, b) in rows.iter().zip(second) {
                assert_eq!(a["cpu"], b["cpu"]);
                for column in ["processed", "dropped", "time_squeeze"] {
                    assert!(b[column].as_u64() >= a[column].as_u64(), "{a} {b}");
                }
            }
        }
        // Not sampled only when nothing the rules ask about was ever counted.
        None => {
            assert_eq!(window, 0.0, "{facts}");
            for r in rows {
                assert_eq!(r["dropped"].as_u64(), Some(0), "{facts}");
                assert_eq!(r["time_squeeze"].as_u64(), Some(0), "{facts}");
            }
        }
    }
    for (row, line) in rows.iter().zip(host.lines()) {
        let cols: Vec<u64> = line
            .split_whitespace()
            .map(|c| u64::from_str_radix(c, 16).expect("hex"))
            .collect();
        if let Some(cpu) = cols.get(12) {
            assert_eq!(row["cpu"].as_u64(), Some(*cpu));
        }
        // Counters only grow between the host read and the namespace read.
        assert!(row["processed"].as_u64().expect("processed") >= cols[0]);
        assert!(row["dropped"].as_u64().expect("dropped") >= cols[1]);
        assert!(row["time_squeeze"].as_u64().expect("time_squeeze") >= cols[2]);
    }
}

#[test]
fn conntrack_stat_in_a_fresh_namespace_is_its_own() {
    if !require_netns()
        || !require(
            std::path::Path::new("/proc/net/stat/nf_conntrack").exists(),
            "needs the nf_conntrack module loaded on the host",
        )
    {
        return;
    }
    let ns = Netns::new("ctstat");
    let inside = ns.sh("cat /proc/net/stat/nf_conntrack");
    let facts = facts_in(&ns, &playbook("conntrack-sizing.yml"));
    let (rows, second, window) = readings(&facts["conntrack_stat"]);
    // Nothing dropped since the namespace was made: no second reading, no wait.
    assert_eq!((second, window), (None, 0.0), "{facts}");
    assert_eq!(rows.len(), inside.lines().count() - 1, "{facts}");
    for (cpu, row) in rows.iter().enumerate() {
        assert_eq!(row["cpu"].as_u64(), Some(cpu as u64));
        for column in ["drop", "early_drop", "insert_failed"] {
            assert_eq!(row["counters"][column].as_u64(), Some(0), "{row}");
        }
    }
    let state = tempfile::tempdir().expect("tempdir");
    let plan = ns.tune(
        state.path(),
        &[
            "plan",
            "--detailed-exitcode",
            "-p",
            &playbook("conntrack-sizing.yml"),
        ],
    );
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
}

/// A condition no since-boot value can rule out (`at_least: 0`) reads the namespace's
/// table twice, the window apart (`--sample-window` over the condition's `window`);
/// the plan's evidence gives the growth per CPU and the condition's window.
#[test]
fn conntrack_stat_is_sampled_over_the_window_in_a_namespace() {
    if !require_netns()
        || !require(
            std::path::Path::new("/proc/net/stat/nf_conntrack").exists(),
            "needs the nf_conntrack module loaded on the host",
        )
    {
        return;
    }
    let ns = Netns::new("ctgrow");
    let dir = tempfile::tempdir().expect("tempdir");
    let pb = dir.path().join("ct.yml");
    std::fs::write(
        &pb,
        "name: ctgrow\ndescription: 'Symptom: test. Safe: reports only.'\nrules:\n  - id: entries\n    description: tracked entries\n    detect:\n      conntrack_stat: {name: entries, at_least: 0, window: 300ms}\n    fix: []\n",
    )
    .expect("playbook");
    let pb = pb.display().to_string();
    let facts = facts_in(&ns, &pb);
    let (rows, second, window) = readings(&facts["conntrack_stat"]);
    let second = second.expect("sampled: at_least 0 cannot be ruled out");
    // --sample-window 200ms overrides the condition's 300ms.
    assert!((0.2..5.0).contains(&window), "{facts}");
    assert_eq!(rows.len(), second.len());
    let state = tempfile::tempdir().expect("tempdir");
    let plan = ns.tune(state.path(), &["plan", "--detailed-exitcode", "-p", &pb]);
    let out = text(&plan);
    // Report only: fired, nothing to change.
    assert_eq!(plan.status.code(), Some(0), "{out}");
    assert!(
        out.contains("ctgrow/entries  fired, report only")
            && out.contains("conntrack entries growth (/proc/net/stat/nf_conntrack, all CPUs) = +")
            && out.contains(" in 0.3s (cpu0 +"),
        "{out}"
    );
}

/// `plan -o` records both readings of /proc/stat, and every CPU's ticks only grew.
#[test]
fn softirq_readings_are_recorded_in_the_plan() {
    if !require_netns() {
        return;
    }
    let ns = Netns::new("sirqplan");
    let state = tempfile::tempdir().expect("tempdir");
    let file = state.path().join("plan.json");
    let file_arg = file.display().to_string();
    let plan = ns.tune(
        state.path(),
        &[
            "plan",
            "--sample-window",
            "200ms",
            "-o",
            &file_arg,
            "-p",
            &playbook("softirq.yml"),
        ],
    );
    assert!(
        plan.status.success() || plan.status.code() == Some(2),
        "{}",
        text(&plan)
    );
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).expect("plan file")).expect("plan json");
    let recorded = &saved["made_from"]["cpu_tables"]["softirq_cpus"];
    let (first, second, window) = readings(recorded);
    let second = second.expect("always sampled");
    assert!(window >= 0.2, "{recorded}");
    // Every CPU in both readings: a zip over nothing would check nothing.
    assert!(!first.is_empty(), "{recorded}");
    assert_eq!(first.len(), second.len(), "{recorded}");
    for (a, b) in first.iter().zip(second) {
        assert_eq!(a["cpu"], b["cpu"]);
        assert!(
            b["total_ticks"].as_u64() >= a["total_ticks"].as_u64(),
            "{a} {b}"
        );
        assert!(
            b["softirq_ticks"].as_u64() >= a["softirq_ticks"].as_u64(),
            "{a} {b}"
        );
    }
    // Apply re-derives the plan from those readings (nothing to change: report only).
    let apply = ns.tune(state.path(), &["apply", "--yes", &file_arg]);
    assert!(apply.status.success(), "{}", text(&apply));
}

#[test]
fn softirq_cpus_name_each_cpus_ksoftirqd() {
    if !require_netns() {
        return;
    }
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    let host_cpus = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .count();
    let ns = Netns::new("softirq");
    let facts = facts_in(&ns, &playbook("softirq.yml"));
    let (first, second, _) = readings(&facts["softirq_cpus"]);
    // Only the second reading's pids are shown, so only it looks them up.
    assert!(
        first.iter().all(|c| c["ksoftirqd_pid"].is_null()),
        "{facts}"
    );
    let cpus = second.expect("a second reading");
    assert_eq!(cpus.len(), host_cpus, "{facts}");
    for c in cpus {
        let cpu = c["cpu"].as_u64().expect("cpu");
        let pid = c["ksoftirqd_pid"].as_u64().expect("ksoftirqd pid");
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).expect("comm");
        assert_eq!(comm.trim(), format!("ksoftirqd/{cpu}"));
        assert!(
            c["softirq_ticks"].as_u64() <= c["total_ticks"].as_u64(),
            "{c}"
        );
        assert!(c["net_rx"].as_u64().is_some(), "{c}");
    }
}
