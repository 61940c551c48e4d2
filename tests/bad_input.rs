//! Bad input: every malformed playbook, facts file or plan file gets a clear error with
//! its location, exit 1, no panic — and nothing on the system changes (checked by
//! running `apply --yes` with the bad input inside a throwaway namespace, where root is
//! available, and comparing the namespace's sysctls and the state dir before/after).

mod support;

use std::path::Path;

use support::{Netns, text, tune};

/// (file name, contents, text the error must contain)
fn cases() -> Vec<(&'static str, String, &'static str)> {
    let deep = format!(
        "name: t\ndescription: d\nrules:\n  - id: r\n    description: d\n    detect: {}{{sysctl: {{key: a.b, equals: 1}}}}{}\n",
        "{not: ".repeat(3000),
        "}".repeat(3000)
    );
    // A billion-laughs document made of valid conditions, so typing alone cannot stop it.
    let mut bomb = String::from(
        "name: t\ndescription: d\nrules:\n  - id: r\n    description: d\n    detect:\n      all:\n        - &c0 {sysctl: {key: a.b, equals: 1}}\n",
    );
    for i in 1..10 {
        let refs = vec![format!("*c{}", i - 1); 10].join(", ");
        bomb.push_str(&format!("        - &c{i} {{all: [{refs}]}}\n"));
    }
    let ok_rule = |detect: &str, fix: &str| {
        format!(
            "name: t\ndescription: d\nrules:\n  - id: r\n    description: d\n    detect:\n{detect}\n    fix:\n{fix}\n"
        )
    };
    let plain_fix = "      - set_sysctl: {key: net.core.somaxconn, at_least: 4096}";
    vec![
        ("malformed.yml", "name: t\nrules: [\n  - id: x\n".into(), "malformed.yml:"),
        ("empty.yml", String::new(), "empty playbook"),
        ("comments-only.yml", "# nothing\n---\n".into(), "empty playbook"),
        (
            "unknown-field.yml",
            "name: t\ndescription: d\nrules:\n  - id: r\n    description: d\n    detct: {}\n".into(),
            "unknown-field.yml:6:5: rules[0]: unknown field `detct`",
        ),
        (
            "wrong-type.yml",
            "name: t\ndescription: d\nrules: 5\n".into(),
            "wrong-type.yml:3:8: rules: invalid type: integer `5`, expected a sequence",
        ),
        (
            "dotdot-key.yml",
            ok_rule("      sysctl: {key: ../../etc/passwd, equals: 1}", plain_fix),
            "dotdot-key.yml:7:",
        ),
        (
            "slash-dotdot-key.yml",
            ok_rule("      sysctl: {key: net/../../../etc/shadow, equals: 1}", plain_fix),
            "has an empty, `.` or `..` component",
        ),
        (
            "two-keys.yml",
            ok_rule(
                "      sysctl: {key: net.core.somaxconn, below: 1}\n      counter: {name: TcpExt.ListenOverflows, above: 0}",
                plain_fix,
            ),
            "takes exactly one key, found sysctl, counter",
        ),
        (
            "no-comparison.yml",
            ok_rule("      sysctl: {key: net.core.somaxconn}", plain_fix),
            "needs a comparison",
        ),
        (
            "undefined-var.yml",
            ok_rule("      sysctl: {key: net.core.somaxconn, below: \"${nope}\"}", plain_fix),
            "undefined variable `nope`",
        ),
        (
            "bad-regex.yml",
            ok_rule("      kernel_log: {pattern: \"table (full\", within: 1h}", plain_fix),
            "invalid pattern",
        ),
        (
            // Patterns match bytes with ASCII classes (/dev/kmsg is ASCII): a Unicode
            // class is refused at check time, not silently never matched.
            "unicode-class.yml",
            ok_rule("      kernel_log: {pattern: '\\p{Greek}+ full', within: 1h}", plain_fix),
            "invalid pattern",
        ),
        (
            "bad-window.yml",
            ok_rule("      kernel_log: {pattern: full, within: forever}", plain_fix),
            "is not a duration",
        ),
        (
            "two-modes.yml",
            ok_rule(
                "      sysctl: {key: net.core.somaxconn, below: 1}",
                "      - set_sysctl: {key: net.core.somaxconn, at_least: 1, value: 2}",
            ),
            "takes only one of",
        ),
        (
            "bad-range.yml",
            ok_rule(
                "      sysctl: {key: net.core.somaxconn, below: 1}",
                "      - set_sysctl: {key: net.ipv4.ip_local_port_range, widen_to: \"65535 1\"}",
            ),
            "needs a `low high` range",
        ),
        (
            "to-path-without-mismatch.yml",
            ok_rule(
                "      link: {name: '*', below: 1500}",
                "      - set_mtu: {to_path: true}",
            ),
            "needs `path_mismatch: true`",
        ),
        (
            "mtu-two-modes.yml",
            ok_rule(
                "      link: {name: '*', path_mismatch: true}",
                "      - set_mtu: {value: 1500, to_path: true}",
            ),
            "exactly one of `value` and `to_path: true`",
        ),
        (
            "duplicate-ids.yml",
            "name: t\ndescription: d\nrules:\n  - id: r\n    description: d\n    detect: {sysctl: {key: a.b, equals: 1}}\n  - id: r\n    description: d\n    detect: {sysctl: {key: a.b, equals: 1}}\n".into(),
            "duplicate-ids.yml:7:5: duplicate rule id \"r\"",
        ),
        ("deep.yml", deep, "deep.yml:6:379: nested 65 levels deep here; a playbook may nest at most 64 levels"),
        ("alias-bomb.yml", bomb, "repetition limit exceeded"),
        ("huge.yml", format!("# {}\n", "x".repeat(2 * 1024 * 1024)), "the limit is 1048576"),
    ]
}

fn write_case(dir: &Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write case");
    path.display().to_string()
}

fn check_output(out: &std::process::Output, want: &str, what: &str) {
    let t = text(out);
    assert_eq!(out.status.code(), Some(1), "{what}: {t}");
    assert!(t.contains(want), "{what}: expected {want:?} in:\n{t}");
    assert!(!t.contains("panicked"), "{what} panicked: {t}");
}

#[test]
fn bad_playbooks_get_located_errors_from_validate_and_plan() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, contents, want) in cases() {
        let path = write_case(dir.path(), name, &contents);
        let validate = tune(dir.path())
            .args(["validate", &path])
            .output()
            .expect("run");
        check_output(&validate, want, &format!("validate {name}"));
        let plan = tune(dir.path())
            .args(["plan", "-p", &path])
            .output()
            .expect("run");
        check_output(&plan, want, &format!("plan {name}"));
    }
}

#[test]
fn non_utf8_and_missing_paths_are_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("latin1.yml");
    std::fs::write(&path, b"name: caf\xe9\n").expect("write");
    let out = tune(dir.path())
        .args(["validate"])
        .arg(&path)
        .output()
        .expect("run");
    check_output(&out, "not UTF-8 text", "latin1");
    let out = tune(dir.path())
        .args(["plan", "-p", "/nonexistent/playbooks"])
        .output()
        .expect("run");
    check_output(
        &out,
        "/nonexistent/playbooks: no such file or directory",
        "missing path",
    );
    let out = tune(dir.path())
        .args(["plan", "-p"])
        .arg(dir.path().join("nope.yml"))
        .output()
        .expect("run");
    check_output(&out, "nope.yml: no such file or directory", "missing file");
    let out = tune(dir.path())
        .args(["plan", "--var", "no_such_var=1"])
        .output()
        .expect("run");
    check_output(
        &out,
        "no loaded playbook declares a variable named \"no_such_var\"",
        "unknown var",
    );
    let out = tune(dir.path())
        .args(["plan", "--var", "=1"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("expected NAME=VALUE"), "{}", text(&out));
}

#[test]
fn bad_facts_and_plan_files_are_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let junk = write_case(dir.path(), "junk.json", "{\"format\": 1, \"sysctls\": 5}");
    let out = tune(dir.path())
        .args(["plan", "--facts", &junk])
        .output()
        .expect("run");
    check_output(&out, "not a tune facts file", "facts");
    // A link's MAC is six hex pairs: anything else is named, with where it is.
    let golden = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/at-least-rules-compose/facts.json");
    let mut facts: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(golden).expect("golden facts"))
            .expect("golden facts parse");
    for (mac, ok) in [
        ("02:AB:00:01:02:03", true),
        ("02:ab:zz:01:02:03", false),
        ("02:ab:00:01:02", false),
    ] {
        facts["links"]["value"][1]["mac"] = mac.into();
        let file = write_case(dir.path(), "mac.json", &facts.to_string());
        let out = tune(dir.path())
            .args(["plan", "--facts", &file])
            .output()
            .expect("run");
        if ok {
            assert_eq!(out.status.code(), Some(0), "{mac}: {}", text(&out));
        } else {
            check_output(
                &out,
                &format!("{mac:?} is not a MAC address (six hex pairs with colons)"),
                mac,
            );
        }
    }
    let future = write_case(
        dir.path(),
        "future.json",
        "{\"format\": 99, \"collected_at\": 0.0, \"hostname\": \"h\"}",
    );
    let out = tune(dir.path())
        .args(["plan", "--facts", &future])
        .output()
        .expect("run");
    check_output(
        &out,
        "facts format 99 is not supported (expected 1)",
        "future facts",
    );
    let out = tune(dir.path())
        .args(["apply", &junk])
        .output()
        .expect("run");
    // As non-root the privilege check comes first; as root the file is parsed.
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("not a tune plan file") || t.contains("needs root"),
        "{t}"
    );
}

#[test]
fn bad_playbooks_change_nothing_on_apply() {
    if !support::require_netns() {
        return;
    }
    let ns = Netns::new("bad");
    let dir = tempfile::tempdir().expect("tempdir");
    ns.set_sysctl("net.core.somaxconn", "16");
    let keys = [
        "net.core.somaxconn",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_tw_reuse",
    ];
    let snapshot = || keys.map(|k| ns.sysctl(k));
    let before = snapshot();
    for (name, contents, want) in cases() {
        let path = write_case(dir.path(), name, &contents);
        let out = ns.tune(dir.path(), &["apply", "--yes", "-p", &path]);
        check_output(&out, want, &format!("apply {name}"));
    }
    assert_eq!(snapshot(), before);
    let journals = dir.path().join("transactions");
    assert!(
        !journals.exists(),
        "no transaction may be started for bad input"
    );
}

#[test]
fn apply_as_non_root_refuses_before_touching_anything() {
    if !support::require(
        support::is_root() && support::have("setpriv"),
        "needs root and setpriv to drop to uid 65534",
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(support::tune_bin())
        .args(["--state-dir"])
        .arg(dir.path().join("state"))
        .args(["apply", "--yes"])
        .output()
        .expect("run");
    check_output(&out, "tune apply needs root", "non-root apply");
    assert!(
        !dir.path().join("state").exists(),
        "state dir must not be created"
    );
    // plan works as any user; facts it cannot read are unknown, not guessed.
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(support::tune_bin())
        .args(["plan", "--format", "json"])
        .env("NO_COLOR", "1")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn a_plan_made_on_another_host_is_refused() {
    if !support::require(support::is_root(), "apply needs root") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = serde_json::json!({
        "format": 1, "created_at": 0.0, "hostname": "some-other-host",
        "findings": [], "errors": [],
        "changes": [{"rules": ["t/r"], "evidence": [],
            "mutation": {"kind": "sysctl", "key": "net.core.somaxconn", "before": "1", "after": "2"}}]
    });
    let path = write_case(dir.path(), "plan.json", &plan.to_string());
    let out = tune(&dir.path().join("state"))
        .args(["apply", &path])
        .output()
        .expect("run");
    check_output(&out, "was made on host \"some-other-host\"", "foreign plan");
    assert!(!dir.path().join("state").exists(), "nothing written");
}

#[test]
fn bad_var_overrides_are_located_errors_not_undecided_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (var, want) in [
        (
            "min_somaxconn=abc",
            "sysctl comparison `<` needs a number, got \"abc\"",
        ),
        (
            "wide_range=banana",
            "needs a `low high` range, got \"banana\"",
        ),
        ("log_window=forever", "`within: forever` is not a duration"),
    ] {
        let out = tune(dir.path())
            .args(["plan", "--var", var])
            .output()
            .expect("run");
        check_output(&out, want, var);
        assert!(
            text(&out).contains("bundled:"),
            "{var}: located in the playbook: {}",
            text(&out)
        );
    }
}

#[test]
fn bad_targets_and_empty_places_are_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let cases: [(Vec<String>, &str); 4] = [
        (
            vec!["plan".into(), "--netns-pid".into(), "999999999".into()],
            "no process 999999999, so no network namespace to enter",
        ),
        (
            vec!["plan".into(), "--netns".into(), "../etc".into()],
            "a namespace name is a file name under /run/netns",
        ),
        (
            vec![
                "plan".into(),
                "--netns".into(),
                "tune-no-such-namespace".into(),
            ],
            "network namespace \"tune-no-such-namespace\" does not exist",
        ),
        (
            vec!["validate".into(), empty.display().to_string()],
            "directory holds no *.yml or *.yaml playbooks",
        ),
    ];
    for (args, want) in cases {
        let out = tune(dir.path()).args(&args).output().expect("run");
        check_output(&out, want, &args.join(" "));
    }
    // Nothing to roll back: said plainly (as root), or refused for want of root.
    let out = tune(&dir.path().join("state"))
        .args(["rollback", "3"])
        .output()
        .expect("run");
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("nothing to roll back") || t.contains("needs root"),
        "{t}"
    );
    assert!(
        !dir.path().join("state").exists(),
        "rollback created no state dir"
    );
}
