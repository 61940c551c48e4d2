//! Real-kernel tests of the per-CPU fact sources read inside a throwaway network
//! namespace: /proc/net/softnet_stat is host-wide (the namespace sees the host's rows),
//! /proc/net/stat/nf_conntrack is the namespace's own (a fresh namespace has no drops,
//! so `conntrack-sizing` does not fire there); softirq ticks come with each CPU's
//! ksoftirqd pid. Needs root and iproute2 (skips
//! elsewhere, fails in CI); the conntrack part needs the nf_conntrack module loaded.

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
        &["facts", "--format", "json", "-p", &playbook(playbook_file)],
    );
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).expect("facts json")
}

#[test]
fn softnet_rows_in_a_namespace_are_the_hosts() {
    if !require_netns() {
        return;
    }
    let host = std::fs::read_to_string("/proc/net/softnet_stat").expect("softnet_stat");
    let ns = Netns::new("softnet");
    let facts = facts_in(&ns, "softnet.yml");
    let rows = facts["softnet"]["value"].as_array().expect("softnet rows");
    assert_eq!(rows.len(), host.lines().count(), "{facts}");
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
    let facts = facts_in(&ns, "conntrack-sizing.yml");
    let rows = facts["conntrack_stat"]["value"]
        .as_array()
        .expect("conntrack rows");
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
    let facts = facts_in(&ns, "softirq.yml");
    let cpus = facts["softirq_cpus"]["value"].as_array().expect("cpus");
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
