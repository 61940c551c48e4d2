//! `tune plan --format openmetrics`, read back by real parsers: prometheus_client's
//! OpenMetrics parser and its Prometheus text-format parser (the format node_exporter's
//! textfile collector reads), from PyPI in the venv `.ci/run` makes. Skips without
//! them, fails in CI.

mod support;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use support::{Netns, require, require_netns, text, tune};

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden");

/// Parses with both parsers; prints `[{name, type, help, samples: [{name, labels, value}]}]`
/// from the OpenMetrics one, after checking that the text-format parser sees the same
/// samples and that no two samples share a name and label set.
const PARSE: &str = r##"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om
from prometheus_client.parser import text_string_to_metric_families as prom
text = sys.stdin.read()
fams = list(om(text))
def samples(fs):
    return sorted((s.name, tuple(sorted(s.labels.items())), s.value) for f in fs for s in f.samples)
assert samples(fams) == samples(prom(text)), "the two parsers disagree"
# The parser keeps one of two samples with the same label set: count them ourselves.
lines = [l for l in text.splitlines() if l and not l.startswith("#")]
keys = {(s[0], s[1]) for s in samples(fams)}
assert len(lines) == len(keys), "a duplicate or unparsed sample"
print(json.dumps([{"name": f.name, "type": f.type, "help": f.documentation,
    "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples]}
    for f in fams]))
"##;

fn python() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("TUNE_PYTHON").map(PathBuf::from),
        Some(PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/target/ci-venv/bin/python"
        ))),
        Some(PathBuf::from("python3")),
    ];
    candidates.into_iter().flatten().find(|py| {
        Command::new(py)
            .args(["-c", "import prometheus_client"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn parse(py: &PathBuf, metrics: &[u8]) -> Vec<serde_json::Value> {
    let mut child = Command::new(py)
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(metrics)
        .expect("write");
    let out = child.wait_with_output().expect("python");
    assert!(
        out.status.success(),
        "the parser refused:\n{}\n{}",
        String::from_utf8_lossy(metrics),
        text(&out)
    );
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .expect("parser output")
        .as_array()
        .expect("families")
        .clone()
}

fn family<'a>(fams: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    fams.iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no family {name}: {fams:#?}"))
}

fn samples(fams: &[serde_json::Value], name: &str) -> Vec<serde_json::Value> {
    family(fams, name)["samples"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn plan_metrics(args: &[&str]) -> Vec<u8> {
    let state = tempfile::tempdir().expect("tempdir");
    let out = tune(state.path())
        .args(["plan", "--format", "openmetrics"])
        .args(args)
        .output()
        .expect("run tune");
    assert!(out.status.success(), "{}", text(&out));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.ends_with("# EOF\n"), "{s}");
    out.stdout
}

/// A golden case's facts with the listen-backlog facts added (nginx full at
/// `backlog`), written to a file in `dir`.
fn golden_facts(dir: &std::path::Path, case: &str, backlog: u64) -> String {
    let text = std::fs::read_to_string(format!("{GOLDEN}/{case}/facts.json")).expect("golden");
    let mut facts: serde_json::Value = serde_json::from_str(&text).expect("json");
    support::add_listen_facts(&mut facts, backlog);
    let path = dir.join(format!("{case}.json"));
    std::fs::write(&path, facts.to_string()).expect("write");
    path.display().to_string()
}

#[test]
fn findings_changes_and_timestamp_parse_as_openmetrics() {
    let Some(py) = python() else {
        require(
            false,
            "prometheus_client (PyPI; .ci/run installs it in target/ci-venv)",
        );
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let facts = golden_facts(dir.path(), "everything-at-once", 128);
    let fams = parse(&py, &plan_metrics(&["--facts", &facts]));
    for name in [
        "tune_finding",
        "tune_pending_changes",
        "tune_plan_errors",
        "tune_plan_timestamp_seconds",
    ] {
        let f = family(&fams, name);
        assert_eq!(f["type"], "gauge", "{f}");
        assert!(!f["help"].as_str().unwrap_or("").is_empty(), "{f}");
    }
    let findings = samples(&fams, "tune_finding");
    let mut rules: Vec<String> = findings
        .iter()
        .map(|s| {
            assert_eq!(s["labels"]["status"], "planned", "{s}");
            assert_eq!(s["value"], 1.0);
            format!(
                "{}/{}",
                s["labels"]["playbook"].as_str().unwrap_or(""),
                s["labels"]["rule"].as_str().unwrap_or("")
            )
        })
        .collect();
    rules.sort();
    assert_eq!(
        rules,
        [
            "conntrack/table-near-full",
            "ephemeral-ports/narrow-port-range",
            "listen-backlog/listen-queue-overflow",
            "time-wait/time-wait-pileup",
        ]
    );
    assert_eq!(samples(&fams, "tune_pending_changes")[0]["value"], 4.0);
    assert_eq!(samples(&fams, "tune_plan_errors")[0]["value"], 0.0);
    let ts = &samples(&fams, "tune_plan_timestamp_seconds")[0];
    assert_eq!(ts["value"], 1_790_000_000.0, "{ts}");
    assert!(
        ts["labels"].as_object().is_some_and(|l| l.is_empty()),
        "{ts}"
    );

    let fams = parse(
        &py,
        &plan_metrics(&["--facts", &golden_facts(dir.path(), "healthy", 4096)]),
    );
    assert!(samples(&fams, "tune_finding").is_empty());
    assert_eq!(samples(&fams, "tune_pending_changes")[0]["value"], 0.0);
}

#[test]
fn namespaces_become_labels() {
    if !require_netns() {
        return;
    }
    let Some(py) = python() else {
        require(
            false,
            "prometheus_client (PyPI; .ci/run installs it in target/ci-venv)",
        );
        return;
    };
    let ns = Netns::new("om");
    ns.set_sysctl("net.ipv4.ip_local_port_range", "20000 20050");
    let ports = concat!(env!("CARGO_MANIFEST_DIR"), "/playbooks/ephemeral-ports.yml");
    let fams = parse(&py, &plan_metrics(&["-p", ports, "--netns", &ns.name]));
    let f = &samples(&fams, "tune_finding")[0];
    assert_eq!(f["labels"]["netns"], ns.name.as_str(), "{f}");
    assert_eq!(f["labels"]["rule"], "narrow-port-range");
    // Every namespace on the host at once: a valid exposition (no clashing label sets),
    // ours among them.
    let fams = parse(&py, &plan_metrics(&["-p", ports, "--all-netns"]));
    let pending = samples(&fams, "tune_pending_changes");
    let ours = pending
        .iter()
        .find(|s| s["labels"]["netns"] == ns.name.as_str())
        .unwrap_or_else(|| panic!("{pending:#?}"));
    assert_eq!(ours["value"], 1.0);
    assert!(
        pending.iter().all(|s| s["labels"]["netns"].is_string()),
        "{pending:#?}"
    );
}
