//! Golden cases for detection and planning, run by `tune test` (one mechanism for every
//! case): each folder under tests/golden is a `tune test` case with the facts the engine
//! sees (`facts.json`), its `expect.yml` (optional `vars`, the outcome of every rule) and
//! the whole output of `tune plan --detailed-exitcode` as snapshots (`expected.txt`,
//! `expected.json`, exit code first), run with the bundled playbooks or the case's own
//! `playbooks/`. The bundled playbooks' cases (`playbooks/tests/`) run in the same call.
//! `tune test playbooks tests/golden --bless` (or `TUNE_BLESS=1 cargo test --test
//! golden`) rewrites the expectations.

mod support;

use std::path::Path;

#[test]
fn golden_and_bundled_cases_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let state = tempfile::tempdir().expect("tempdir");
    let mut cmd = support::tune(state.path());
    cmd.current_dir(root)
        .args(["test", "playbooks", "tests/golden"]);
    if std::env::var_os("TUNE_BLESS").is_some() {
        cmd.arg("--bless");
    }
    let out = cmd.output().expect("run tune test");
    let text = support::text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let verdict = if std::env::var_os("TUNE_BLESS").is_some() {
        "blessed"
    } else {
        "ok"
    };
    let lines: Vec<&str> = text.lines().collect();
    let (cases, summary) = lines.split_at(lines.len() - 1);
    for line in cases {
        assert!(
            line.starts_with(&format!("{verdict:<7} ")),
            "{line}\n{text}"
        );
    }
    let golden = cases
        .iter()
        .filter(|l| l.contains(" tests/golden/"))
        .count();
    let bundled = cases
        .iter()
        .filter(|l| l.contains(" playbooks/tests/"))
        .count();
    assert!(golden >= 50, "golden cases went missing: {golden}\n{text}");
    assert!(
        bundled >= 33,
        "bundled cases went missing: {bundled}\n{text}"
    );
    assert_eq!(golden + bundled, cases.len(), "{text}");
    assert_eq!(summary[0], format!("PASS: {0}/{0}", cases.len()), "{text}");
    // Every golden case is a full-output case: both snapshots are there and compared.
    for entry in std::fs::read_dir(root.join("tests/golden")).expect("tests/golden") {
        let dir = entry.expect("entry").path();
        for file in ["facts.json", "expect.yml", "expected.txt", "expected.json"] {
            assert!(dir.join(file).is_file(), "{} has no {file}", dir.display());
        }
    }
}
