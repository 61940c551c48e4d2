//! `tune test`, run as a playbook author runs it: the bundled playbooks' own cases
//! (`playbooks/tests/<case>/`: facts.json + expect.yml) all pass and cover the fault,
//! the already-fixed state and a healthy host for every bundled playbook; a case that
//! fails shows a diff (text, GitHub workflow commands, JUnit); `--bless` writes the
//! expectation; a broken case is a clear failure, not a panic.

mod support;

use std::path::{Path, PathBuf};

use support::{text, tune};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = tune(dir)
        .current_dir(dir)
        .arg("test")
        .args(args)
        .output()
        .expect("run tune test");
    (out.status.code(), text(&out))
}

/// The rules a case expects in one outcome list.
fn listed(expect: &serde_yaml::Value, list: &str) -> Vec<String> {
    expect[list]
        .as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn bundled_cases_pass_and_cover_every_playbook() {
    let (code, out) = run(root(), &["playbooks"]);
    assert_eq!(code, Some(0), "{out}");
    let cases: Vec<&str> = out.lines().filter(|l| l.starts_with("ok ")).collect();
    assert!(cases.len() >= 21, "{out}");
    assert!(
        out.ends_with(&format!("PASS: {0}/{0}\n", cases.len())),
        "{out}"
    );
    for entry in std::fs::read_dir(root().join("playbooks")).expect("playbooks/") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "yml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("yaml");
        let name = doc["name"].as_str().expect("name").to_owned();
        let rules: Vec<String> = doc["rules"]
            .as_sequence()
            .expect("rules")
            .iter()
            .map(|r| format!("{name}/{}", r["id"].as_str().unwrap_or_default()))
            .collect();
        let report_only = doc["rules"]
            .as_sequence()
            .expect("rules")
            .iter()
            .all(|r| r["fix"].as_sequence().is_none_or(Vec::is_empty));
        let expect = |kind: &str| -> serde_yaml::Value {
            let file = root().join(format!("playbooks/tests/{name}-{kind}/expect.yml"));
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{name} has no {kind} case ({}: {e})", file.display()));
            serde_yaml::from_str(&text).expect("expect.yml")
        };
        // The fault: one of the playbook's rules fires and plans a change.
        let fault = expect("fault");
        assert!(
            (rules.iter().any(|r| listed(&fault, "fires").contains(r))
                && !listed(&fault, "changes").is_empty())
                // A report-only playbook (no fix actions): its rule is reported.
                || (report_only && rules.iter().any(|r| listed(&fault, "reported").contains(r))),
            "{name}-fault: {fault:?}"
        );
        // Already fixed: nothing of this playbook left to change.
        let fixed = expect("fixed");
        assert!(
            rules
                .iter()
                .all(|r| listed(&fixed, "quiet").contains(r) || listed(&fixed, "fixed").contains(r)),
            "{name}-fixed: {fixed:?}"
        );
        assert!(listed(&fixed, "changes").is_empty(), "{name}-fixed");
        // Healthy: every rule of the playbook stays quiet.
        let healthy = expect("healthy");
        assert!(
            rules.iter().all(|r| listed(&healthy, "quiet").contains(r)),
            "{name}-healthy: {healthy:?}"
        );
    }
}

/// A playbook directory in a temp dir: the bundled playbooks and one bundled case.
fn workspace(case: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let playbooks = dir.path().join("playbooks");
    std::fs::create_dir_all(playbooks.join("tests").join(case)).expect("mkdir");
    for entry in std::fs::read_dir(root().join("playbooks")).expect("playbooks/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yml") {
            std::fs::copy(&path, playbooks.join(path.file_name().expect("name"))).expect("copy");
        }
    }
    let case_dir = playbooks.join("tests").join(case);
    for file in ["facts.json", "expect.yml"] {
        std::fs::copy(
            root().join("playbooks/tests").join(case).join(file),
            case_dir.join(file),
        )
        .expect("copy");
    }
    (dir, case_dir)
}

#[test]
fn failing_case_exits_1_with_a_readable_diff() {
    let (dir, case) = workspace("ephemeral-ports-fault");
    let expect = case.join("expect.yml");
    let text = std::fs::read_to_string(&expect).expect("read");
    // The author claims a different target range; the annotation points at that line.
    let line = text
        .lines()
        .position(|l| l.contains("→ 10000 65535"))
        .expect("the change is listed")
        + 1;
    std::fs::write(&expect, text.replace("→ 10000 65535", "→ 20000 65535")).expect("write");
    let (code, out) = run(dir.path(), &["playbooks"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.starts_with("FAIL    playbooks/tests/ephemeral-ports-fault\n")
            && out.contains(
                "    -- 'sysctl:net.ipv4.ip_local_port_range: 20000 20050 → 20000 65535'\n"
            )
            && out.contains(
                "    +- 'sysctl:net.ipv4.ip_local_port_range: 20000 20050 → 10000 65535'\n"
            )
            && out.ends_with("FAIL: 1/1 case(s) failed\n"),
        "{out}"
    );

    let (code, out) = run(dir.path(), &["playbooks", "--format", "github"]);
    assert_eq!(code, Some(1), "{out}");
    let first = out.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!(
            "::error file=playbooks/tests/ephemeral-ports-fault/expect.yml,line={line},title=tune test%3A playbooks/tests/ephemeral-ports-fault::--- expect.yml%0A+++ outcome%0A"
        )) && first.contains("%0A+- 'sysctl:net.ipv4.ip_local_port_range: 20000 20050 → 10000 65535'"),
        "{out}"
    );

    let (code, out) = run(dir.path(), &["playbooks", "--format", "junit"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("<testsuites name=\"tune test\" tests=\"1\" failures=\"1\">")
            && out.contains("name=\"playbooks/tests/ephemeral-ports-fault\">"),
        "{out}"
    );

    // One case directory can be run on its own.
    let (code, out) = run(dir.path(), &["playbooks/tests/ephemeral-ports-fault"]);
    assert_eq!(code, Some(1), "{out}");
}

#[test]
fn bless_writes_the_expectation_and_keeps_description_and_vars() {
    let (dir, case) = workspace("jvm-heap-fault");
    let expect = case.join("expect.yml");
    let original = std::fs::read_to_string(&expect).expect("read");
    // Keep only what the author writes by hand.
    let head: String = original
        .lines()
        .take_while(|l| !l.starts_with("fires:"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        head.contains("vars:") && head.contains("env_file"),
        "{head}"
    );
    std::fs::write(&expect, &head).expect("write");
    let (code, out) = run(dir.path(), &["playbooks"]);
    assert_eq!(code, Some(1), "{out}");
    let (code, out) = run(dir.path(), &["playbooks", "--bless"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.starts_with("blessed playbooks/tests/jvm-heap-fault\n"),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(&expect).expect("read"), original);
    let (code, out) = run(dir.path(), &["playbooks"]);
    assert_eq!(code, Some(0), "{out}");

    // Without expect.yml at all: a failure that says how to write it.
    std::fs::remove_file(&expect).expect("rm");
    let (code, out) = run(dir.path(), &["playbooks"]);
    assert!(
        code == Some(1) && out.contains("no expect.yml (write it with `tune test --bless`)"),
        "{out}"
    );
}

#[test]
fn broken_cases_fail_clearly() {
    let (dir, case) = workspace("netem-fault");
    std::fs::write(case.join("facts.json"), "{ not json").expect("write");
    let (code, out) = run(dir.path(), &["playbooks"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("cannot run: ") && out.contains("not a tune facts file"),
        "{out}"
    );
    assert!(!out.contains("panicked"), "{out}");

    let (dir, case) = workspace("netem-fault");
    std::fs::write(case.join("expect.yml"), "fires: [a]\nbogus: 1\n").expect("write");
    let (code, out) = run(dir.path(), &["playbooks"]);
    assert!(
        code == Some(1) && out.contains("unknown field `bogus`"),
        "{out}"
    );

    let (dir, case) = workspace("netem-fault");
    std::fs::write(case.join("expect.yml"), "vars: {nope: 1}\n").expect("write");
    let (code, out) = run(dir.path(), &["playbooks"]);
    assert!(
        code == Some(1) && out.contains("declares \"nope\""),
        "{out}"
    );

    // A directory without cases is an error, not a pass.
    let empty = tempfile::tempdir().expect("tempdir");
    let (code, out) = run(empty.path(), &["."]);
    assert!(code == Some(1) && out.contains("no test cases"), "{out}");
}

#[test]
fn a_case_may_bring_its_own_playbooks_and_expect_their_errors() {
    // The golden case of two playbooks that set one sysctl to 0 and to 1, as a case.
    let dir = tempfile::tempdir().expect("tempdir");
    let case = dir.path().join("tests/conflicting-exact-values");
    std::fs::create_dir_all(case.join("playbooks")).expect("mkdir");
    let golden = root().join("tests/golden/conflicting-exact-values");
    std::fs::copy(golden.join("facts.json"), case.join("facts.json")).expect("copy");
    for entry in std::fs::read_dir(golden.join("playbooks")).expect("playbooks") {
        let path = entry.expect("entry").path();
        std::fs::copy(
            &path,
            case.join("playbooks").join(path.file_name().expect("name")),
        )
        .expect("copy");
    }
    std::fs::write(
        case.join("expect.yml"),
        "errors:\n- 'b.yml:9:27: rule reuse-off/off sets net.ipv4.tcp_tw_reuse to \"0\" but rule reuse-on/on sets it to \"1\"'\n",
    )
    .expect("write");
    let (code, out) = run(dir.path(), &["."]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out, "ok      ./tests/conflicting-exact-values\nPASS: 1/1\n");
}

#[test]
fn a_wrong_snapshot_fails_with_a_diff_and_bless_rewrites_it() {
    // A golden case (bundled playbooks, vars, snapshots) copied to a temp dir, with a
    // deliberately wrong exit code and change in its text snapshot.
    let dir = tempfile::tempdir().expect("tempdir");
    let golden = root().join("tests/golden/listen-overflow-var-override");
    let case = dir.path().join("cases/listen-overflow-var-override");
    std::fs::create_dir_all(&case).expect("mkdir");
    for file in ["facts.json", "expect.yml", "expected.txt", "expected.json"] {
        std::fs::copy(golden.join(file), case.join(file)).expect("copy");
    }
    let right = std::fs::read_to_string(case.join("expected.txt")).expect("read");
    assert!(
        right.starts_with("exit: 2\n") && right.contains("16384"),
        "{right}"
    );
    let wrong = right
        .replacen("exit: 2", "exit: 0", 1)
        .replace("16384", "8192");
    std::fs::write(case.join("expected.txt"), &wrong).expect("write");

    let (code, out) = run(dir.path(), &["cases"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.starts_with("FAIL    cases/listen-overflow-var-override\n")
            && out.contains("    --- expected.txt\n    +++ tune plan\n")
            && out.contains("    -exit: 0\n    +exit: 2\n")
            && out.ends_with("FAIL: 1/1 case(s) failed\n"),
        "{out}"
    );
    let (code, out) = run(dir.path(), &["cases", "--format", "github"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.starts_with("::error file=cases/listen-overflow-var-override/expect.yml,")
            && out.contains("--- expected.txt%0A+++ tune plan%0A"),
        "{out}"
    );
    let (code, out) = run(dir.path(), &["cases", "--format", "junit"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("tests=\"1\" failures=\"1\"") && out.contains("-exit: 0"),
        "{out}"
    );

    let (code, out) = run(dir.path(), &["cases", "--bless"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        std::fs::read_to_string(case.join("expected.txt")).expect("read"),
        right
    );
    let (code, out) = run(dir.path(), &["cases/listen-overflow-var-override"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        out,
        "ok      cases/listen-overflow-var-override\nPASS: 1/1\n"
    );
}
