//! `tune validate` for pull-request review, run as CI runs it: GitHub workflow
//! commands and JUnit XML, warnings (never-firing rules, fixes that conflict with a
//! bundled playbook, descriptions without a symptom) and `--strict`.

mod support;

use std::path::Path;

use support::{text, tune};

const WARNED: &str = "name: p\ndescription: Raise it.\nrules:\n  - id: r\n    description: d\n    detect:\n      sysctl: {key: net.core.somaxconn, below: 10, above: 20}\n    fix:\n      - set_sysctl: {key: net.core.somaxconn, value: 1024}\n";

fn validate(dir: &Path, file: &str, body: &str, args: &[&str]) -> (Option<i32>, String) {
    let path = dir.join(file);
    std::fs::write(&path, body).expect("write");
    let out = tune(dir)
        .current_dir(dir)
        .arg("validate")
        .arg(file)
        .args(args)
        .output()
        .expect("run");
    (out.status.code(), text(&out))
}

#[test]
fn github_format_puts_errors_and_warnings_on_diff_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, out) = validate(dir.path(), "p.yml", WARNED, &["--format", "github"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        out,
        "::warning file=p.yml,line=2,col=1,title=tune validate (warning)::the description does not say which symptom this playbook answers; start it with `Symptom: ...` (what an operator sees), as the bundled playbooks do\n\
         ::warning file=p.yml,line=6,col=5,title=tune validate (warning)::rule r: can never fire: no value of sysctl net.core.somaxconn is < 10 and > 20\n\
         ::warning file=p.yml,line=8,col=5,title=tune validate (warning)::rule r: its fix conflicts with rule listen-backlog/listen-queue-overflow (bundled:listen-backlog.yml): net.core.somaxconn: set to 1024 and raised to at least 4096 cannot both hold\n\
         ok: 1 playbook(s), 1 rule(s), 3 warning(s)\n"
    );
    let (code, out) = validate(dir.path(), "p.yml", WARNED, &["--strict"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.ends_with("failed: 0 error(s), 3 warning(s)\n"), "{out}");

    // An error whose message holds a newline and a `%`: escaped, one line per command.
    let bad = "name: p\ndescription: \"Symptom: x.\"\nrules:\n  - id: r\n    description: d\n    detect:\n      kernel_log: {pattern: \"100%(\", within: 1h}\n";
    let (code, out) = validate(dir.path(), "bad,1.yml", bad, &["--format", "github"]);
    assert_eq!(code, Some(1), "{out}");
    let first = out.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("::error file=bad%2C1.yml,line=7,col=")
            && first.contains("title=tune validate::rule r: ")
            && first.contains("100%25("),
        "{out}"
    );
    assert!(
        out.lines()
            .all(|l| l.starts_with("::") || l.starts_with("failed:")),
        "{out}"
    );
}

#[test]
fn junit_format_has_one_case_per_playbook() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = "name: p\ndescription: \"Symptom: <x>.\"\nrules:\n  - id: r\n    description: d\n    detect:\n      sysctl: {key: net.core.somaxconn, below: lots}\n";
    let (code, out) = validate(dir.path(), "p.yml", bad, &["--format", "junit"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"tune validate\" tests=\"1\" failures=\"1\">"), "{out}");
    assert!(
        out.contains("<testcase classname=\"tune validate\" name=\"p.yml\">\n      <failure message=\"p.yml:7:")
            && out.contains("needs a number, got &quot;lots&quot;"),
        "{out}"
    );
    // Warnings fail a case only with --strict.
    let (code, out) = validate(dir.path(), "p.yml", WARNED, &["--format", "junit"]);
    assert!(code == Some(0) && out.contains("failures=\"0\""), "{out}");
    let (code, out) = validate(
        dir.path(),
        "p.yml",
        WARNED,
        &["--format", "junit", "--strict"],
    );
    assert!(code == Some(1) && out.contains("failures=\"1\""), "{out}");
}

#[test]
fn bundled_playbooks_pass_strict_validation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = tune(dir.path())
        .arg("validate")
        .arg("--strict")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let t = text(&out);
    assert!(t.starts_with("ok: ") && !t.contains("warning"), "{t}");
}
