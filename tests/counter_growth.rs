//! Counters read as rates (`measure: growth`): what `tune validate` accepts, and how a
//! facts snapshot with both readings replays (`plan --facts`) without waiting; the
//! `window` of the per-CPU table conditions (`softnet`, `conntrack_stat`,
//! `softirq_cpu`), checked the same way.

mod support;

use std::path::Path;

use support::{text, tune};

const RULE: &str = "name: g\ndescription: d\nrules:\n  - id: r\n    description: d\n    detect:\n      DETECT\n    fix: []\n";

/// `tune validate` of a one-rule playbook g.yml detecting `detect`.
fn validate_detect(dir: &Path, detect: &str) -> (i32, String) {
    let path = dir.join("g.yml");
    std::fs::write(&path, RULE.replace("DETECT", detect)).expect("write");
    let out = tune(dir).arg("validate").arg(&path).output().expect("run");
    (out.status.code().unwrap_or(-1), text(&out))
}

fn validate(dir: &Path, cond: &str) -> (i32, String) {
    validate_detect(
        dir,
        &format!("counter: {{name: TcpExt.ListenOverflows, {cond}}}"),
    )
}

/// Each `(condition, message)`: refused, with the message, located in g.yml.
fn refused(dir: &Path, cases: &[(&str, &str)], check: fn(&Path, &str) -> (i32, String)) {
    for (cond, message) in cases {
        let (code, out) = check(dir, cond);
        assert_eq!(code, 1, "{cond}: {out}");
        assert!(out.contains(message), "{cond}: {out}");
        assert!(out.contains("g.yml:"), "located: {out}");
    }
}

#[test]
fn validate_checks_the_sampling_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, out) = validate(dir.path(), "measure: growth, window: 2s, above: 0");
    assert_eq!(code, 0, "{out}");
    let (code, out) = validate(dir.path(), "measure: growth, above: 0");
    assert_eq!(code, 0, "the window has a default: {out}");
    refused(
        dir.path(),
        &[
            (
                "window: 2s, above: 0",
                "counter `window` needs `measure: growth`",
            ),
            (
                "measure: growth, window: soon, above: 0",
                "is not a duration",
            ),
            ("measure: growth, window: 5m, above: 0", "at most 60s"),
            ("measure: growth, window: 0s, above: 0", "above 0"),
            ("measure: rate, above: 0", "unknown variant `rate`"),
            (
                "measure: growth, growth_above: 0",
                "unknown field `growth_above`",
            ),
        ],
        validate,
    );
    let out = tune(dir.path())
        .args(["plan", "--sample-window", "2 days"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("at most 60s"), "{}", text(&out));
}

#[test]
fn validate_checks_the_table_conditions_windows() {
    let dir = tempfile::tempdir().expect("tempdir");
    for ok in [
        "softnet: {stat: dropped, window: 500ms, above: 0}",
        "conntrack_stat: {name: drop, window: 2s, above: 0}",
        "softirq_cpu: {window: 3s, at_least: 0.2}",
        "softnet: {stat: time_squeeze, above: 0}",
        "rx_drops: {link: 'eth*', stat: ring, window: 2s, above: 0}",
    ] {
        let (code, out) = validate_detect(dir.path(), ok);
        assert_eq!(code, 0, "{ok}: {out}");
    }
    refused(
        dir.path(),
        &[
            (
                "softnet: {stat: dropped, window: 5m, above: 0}",
                "softnet `window: 5m` must be above 0 and at most 60s",
            ),
            (
                "conntrack_stat: {name: drop, window: soon, above: 0}",
                "conntrack_stat `window: soon` is not a duration",
            ),
            (
                "softirq_cpu: {window: 0s, at_least: 0.2}",
                "softirq_cpu `window: 0s` must be above 0",
            ),
            (
                "rx_drops: {link: eth0, stat: missed, window: 2m, above: 0}",
                "rx_drops `window: 2m` must be above 0 and at most 60s",
            ),
            (
                "rx_drops: {link: 'eth[', stat: fifo, above: 0}",
                "bad glob \"eth[\"",
            ),
        ],
        validate_detect,
    );
}

/// Replays the listen-overflow golden facts with these counter readings.
fn replay(dir: &Path, since_boot: u64, sample: serde_json::Value) -> (i32, String) {
    let golden =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/listen-overflow/facts.json");
    let mut facts: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(golden).expect("golden")).expect("json");
    facts["counters"]["TcpExt.ListenOverflows"] = serde_json::json!({"value": since_boot});
    facts["counter_samples"]["TcpExt.ListenOverflows"] = sample;
    // nginx full at the somaxconn cap of the golden facts (128).
    support::add_listen_facts(&mut facts, 128);
    let path = dir.join("facts.json");
    std::fs::write(&path, facts.to_string()).expect("write");
    let pb = Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/listen-backlog.yml");
    let out = tune(dir)
        .args(["plan", "--detailed-exitcode", "-p"])
        .arg(pb)
        .arg("--facts")
        .arg(&path)
        .output()
        .expect("run");
    (out.status.code().unwrap_or(-1), text(&out))
}

#[test]
fn snapshots_replay_the_growth_decision() {
    let dir = tempfile::tempdir().expect("tempdir");
    let growing =
        serde_json::json!({"value": {"first": 40, "second": 43, "window": 2.0, "min_growth": 1}});
    let (code, out) = replay(dir.path(), 40, growing);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("growth = +3 in 2.0s (40 → 43 since boot)  (+3 > 0)"),
        "{out}"
    );

    let flat =
        serde_json::json!({"value": {"first": 40, "second": 40, "window": 2.0, "min_growth": 1}});
    let (code, out) = replay(dir.path(), 40, flat);
    assert_eq!(code, 0, "history alone does not fire: {out}");

    let never = serde_json::json!({"value": {"first": 0, "window": 0.0, "min_growth": 1}});
    let (code, out) = replay(dir.path(), 0, never);
    assert_eq!(code, 0, "{out}");

    // A counter that went down (namespace re-created mid-sample): undecided, not fired.
    let reset =
        serde_json::json!({"value": {"first": 40, "second": 2, "window": 2.0, "min_growth": 1}});
    let (code, out) = replay(dir.path(), 40, reset);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("undecided") && out.contains("went down (40 → 2)"),
        "{out}"
    );

    let unknown = serde_json::json!({"unknown": "permission denied"});
    let (code, out) = replay(dir.path(), 40, unknown);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("not sampled (permission denied)"), "{out}");
}
