//! Saved plans you can trust (`tune apply PLAN_FILE`), as root in throwaway network
//! namespaces: a plan edited in any way — an extra sysctl, an env-file change to an
//! unrelated path, unknown fields, a resource twice, a changed variable, an edited
//! playbook — or applied in another namespace than the one it was made in is refused,
//! and nothing changes (the namespace's values are compared, and no file appears).
//! Also: env files under a symlinked directory, temp files left by a crash, times out
//! of range.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};
use support::{Netns, require_netns, text};

/// Widens the port range and raises somaxconn to `${min_somaxconn}`.
const PLAYBOOK: &str = "name: t
description: Two per-namespace sysctls, for plan-file checks.
variables:
  min_somaxconn:
    default: 4096
    description: The least somaxconn.
rules:
  - id: ports
    description: The port range is narrow.
    detect:
      sysctl: {key: net.ipv4.ip_local_port_range, measure: range_width, below: 10000}
    fix:
      - set_sysctl: {key: net.ipv4.ip_local_port_range, widen_to: \"10000 65535\"}
  - id: backlog
    description: somaxconn is small.
    detect:
      sysctl: {key: net.core.somaxconn, below: \"${min_somaxconn}\"}
    fix:
      - set_sysctl: {key: net.core.somaxconn, at_least: \"${min_somaxconn}\"}
";

const KEYS: [&str; 3] = [
    "net.ipv4.ip_local_port_range",
    "net.core.somaxconn",
    "net.ipv4.tcp_tw_reuse",
];

struct Case {
    ns: Netns,
    dir: tempfile::TempDir,
    plan: Value,
}

impl Case {
    /// A namespace with a narrow port range and a small somaxconn, and a saved plan.
    fn new(tag: &str) -> Case {
        let ns = Netns::new(tag);
        ns.set_sysctl("net.ipv4.ip_local_port_range", "20000 20050");
        ns.set_sysctl("net.core.somaxconn", "128");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("t.yml"), PLAYBOOK).expect("write playbook");
        let case = Case {
            ns,
            dir,
            plan: Value::Null,
        };
        let out = case.tune(&[
            "plan",
            "-p",
            &case.path("t.yml"),
            "-o",
            &case.path("plan.json"),
        ]);
        assert_eq!(out.status.code(), Some(0), "plan -o: {}", text(&out));
        let plan = std::fs::read_to_string(case.dir.path().join("plan.json")).expect("plan");
        let plan: Value = serde_json::from_str(&plan).expect("plan json");
        assert_eq!(plan["changes"].as_array().map(Vec::len), Some(2), "{plan}");
        Case { plan, ..case }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn tune(&self, args: &[&str]) -> Output {
        self.ns.tune(&self.dir.path().join("state"), args)
    }

    fn values(&self) -> Vec<String> {
        KEYS.iter().map(|k| self.ns.sysctl(k)).collect()
    }

    /// Writes `plan` as a plan file and applies it with --yes; it must be refused with
    /// a message holding `expect`, and nothing may change.
    fn refused(&self, what: &str, plan: &Value, expect: &str) -> String {
        let file = self.dir.path().join(format!("{what}.json"));
        std::fs::write(&file, serde_json::to_string_pretty(plan).expect("json")).expect("write");
        self.refused_file(what, &file, expect)
    }

    fn refused_file(&self, what: &str, file: &Path, expect: &str) -> String {
        let before = self.values();
        let out = self.tune(&["apply", "--yes", file.to_str().expect("utf8")]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{what}: {t}");
        assert!(t.contains(expect), "{what}: wanted {expect:?} in:\n{t}");
        assert!(
            t.contains("nothing was changed") || t.contains("Nothing was changed"),
            "{what}: {t}"
        );
        assert_eq!(
            self.values(),
            before,
            "{what}: the namespace's values changed"
        );
        let history = text(&self.tune(&["history"]));
        assert!(history.contains("No transactions"), "{what}: {history}");
        t
    }
}

fn prerequisites() -> bool {
    require_netns()
}

#[test]
fn an_untampered_plan_is_shown_and_applied_exactly() {
    if !prerequisites() {
        return;
    }
    let case = Case::new("ok");
    let plan = case.path("plan.json");
    // Non-interactive without --yes: refused, nothing changed.
    let before = case.values();
    let out = case.tune(&["apply", &plan]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not a terminal"), "{}", text(&out));
    assert_eq!(case.values(), before);
    // The made_from record: playbook digest (as sha256sum prints it), vars, namespace.
    let made = &case.plan["made_from"];
    assert_eq!(made["playbooks"][0]["content"], PLAYBOOK);
    assert_eq!(
        made["playbooks"][0]["sha256"].as_str().map(str::len),
        Some(64)
    );
    let sha = std::process::Command::new("sha256sum")
        .arg(case.path("t.yml"))
        .output()
        .expect("sha256sum");
    assert!(
        String::from_utf8_lossy(&sha.stdout)
            .starts_with(made["playbooks"][0]["sha256"].as_str().unwrap_or("-")),
        "digest differs from sha256sum"
    );
    assert_eq!(made["vars"], json!({}));
    let ns_inode = std::fs::metadata(format!("/run/netns/{}", case.ns.name))
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .expect("nsfs");
    assert_eq!(made["netns"]["inode"].as_u64(), Some(ns_inode));

    let out = case.tune(&["apply", "--yes", &plan]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("Changes, in order:"),
        "the plan is printed first: {t}"
    );
    assert_eq!(
        case.ns.sysctl("net.ipv4.ip_local_port_range"),
        "10000 65535"
    );
    assert_eq!(case.ns.sysctl("net.core.somaxconn"), "4096");
    assert_eq!(case.tune(&["rollback"]).status.code(), Some(0));
    assert_eq!(case.values(), before);
}

#[test]
fn extra_changes_are_refused_as_edits_not_as_drift() {
    if !prerequisites() {
        return;
    }
    let case = Case::new("extra");
    // Another sysctl credited to a real rule.
    let mut plan = case.plan.clone();
    let reuse = case.ns.sysctl("net.ipv4.tcp_tw_reuse");
    plan["changes"].as_array_mut().expect("changes").push(json!({
        "rules": ["t/ports"], "evidence": [],
        "mutation": {"kind": "sysctl", "key": "net.ipv4.tcp_tw_reuse", "before": reuse, "after": "1"}
    }));
    let t = case.refused(
        "extra-sysctl",
        &plan,
        "rule t/ports has no fix that changes it",
    );
    assert!(t.contains("the plan file was edited"), "{t}");
    assert!(
        !t.contains("the system changed"),
        "an edit is not drift: {t}"
    );

    // A global sysctl credited to a rule that does not exist. Its after-value is its
    // current value, so even a broken check could not change the host.
    let mut plan = case.plan.clone();
    let core = std::fs::read_to_string("/proc/sys/kernel/core_pattern").expect("core_pattern");
    let core = core.trim();
    plan["changes"].as_array_mut().expect("changes").insert(0, json!({
        "rules": ["evil/x"], "evidence": [],
        "mutation": {"kind": "sysctl", "key": "kernel.core_pattern", "before": core, "after": core}
    }));
    let t = case.refused("core-pattern", &plan, "its playbooks have no rule evil/x");
    assert!(!t.contains("the system changed"), "{t}");

    // An env file at an unrelated path (a cron entry), credited to a real rule.
    let cron = case.dir.path().join("cron.d");
    std::fs::create_dir(&cron).expect("mkdir");
    let target = cron.join("evil");
    let mut plan = case.plan.clone();
    plan["changes"]
        .as_array_mut()
        .expect("changes")
        .push(json!({
            "rules": ["t/backlog"], "evidence": [],
            "mutation": {"kind": "env_file", "path": target.display().to_string(), "keys": ["X"],
                         "before": null, "after": "* * * * * root touch /tmp/pwned\n"}
        }));
    let t = case.refused("cron", &plan, "rule t/backlog has no fix that changes it");
    assert!(!target.exists(), "no file appeared");
    assert_eq!(std::fs::read_dir(&cron).expect("cron.d").count(), 0);
    assert!(!t.contains("the system changed"), "{t}");

    // A change with its after-value edited.
    let mut plan = case.plan.clone();
    plan["changes"][1]["mutation"]["after"] = json!("65535");
    case.refused(
        "edited-after",
        &plan,
        "the plan sets 65535, but its playbooks and variables give 4096",
    );

    // A change removed.
    let mut plan = case.plan.clone();
    plan["changes"].as_array_mut().expect("changes").remove(0);
    case.refused("removed", &plan, "its playbooks now also change it");
}

#[test]
fn unknown_fields_duplicates_and_bad_times_are_refused() {
    if !prerequisites() {
        return;
    }
    let case = Case::new("strict");
    type Edit = fn(&mut Value);
    let edits: [(&str, Edit); 5] = [
        ("top", |p| p["run_as"] = json!("root")),
        ("change", |p| p["changes"][0]["mode"] = json!("0777")),
        ("mutation", |p| {
            p["changes"][0]["mutation"]["force"] = json!(true)
        }),
        ("finding", |p| p["findings"][0]["hidden"] = json!(1)),
        ("playbook", |p| {
            p["made_from"]["playbooks"][0]["trusted"] = json!(true)
        }),
    ];
    for (what, edit) in edits {
        let mut plan = case.plan.clone();
        edit(&mut plan);
        case.refused(what, &plan, "unknown field");
    }
    let mut plan = case.plan.clone();
    let first = plan["changes"][0].clone();
    plan["changes"].as_array_mut().expect("changes").push(first);
    case.refused("duplicate", &plan, "is changed twice");

    // A duplicated JSON key.
    let raw = std::fs::read_to_string(case.path("plan.json")).expect("plan");
    let doubled = raw.replacen("\"format\": 1,", "\"format\": 1,\n  \"format\": 1,", 1);
    let file = case.dir.path().join("dupkey.json");
    std::fs::write(&file, doubled).expect("write");
    case.refused_file("duplicate key", &file, "duplicate field");

    for t in [1e12, -5.0] {
        let mut plan = case.plan.clone();
        plan["created_at"] = json!(t);
        case.refused("time", &plan, "is not a time between 1970 and 9999");
    }
    let mut plan = case.plan.clone();
    plan.as_object_mut().expect("object").remove("made_from");
    case.refused("no made_from", &plan, "does not record the playbooks");
}

#[test]
fn changed_variables_and_playbooks_are_refused() {
    if !prerequisites() {
        return;
    }
    let case = Case::new("vars");
    let mut plan = case.plan.clone();
    plan["made_from"]["vars"] = json!({"min_somaxconn": "8192"});
    case.refused(
        "var",
        &plan,
        "the plan sets 4096, but its playbooks and variables give 8192",
    );
    let mut plan = case.plan.clone();
    plan["made_from"]["vars"] = json!({"nope": "1"});
    case.refused(
        "undeclared var",
        &plan,
        "no loaded playbook declares a variable named \"nope\"",
    );

    // Playbook text edited (to ask for the extra change) without its digest.
    let evil = PLAYBOOK.replace("widen_to: \"10000 65535\"", "widen_to: \"1024 65535\"");
    let mut plan = case.plan.clone();
    plan["made_from"]["playbooks"][0]["content"] = json!(evil);
    case.refused("content", &plan, "but its content has");
    // ... and with its digest recomputed: the file it came from still says otherwise.
    let digest = sha256(&evil);
    plan["made_from"]["playbooks"][0]["sha256"] = json!(digest);
    case.refused("content+digest", &plan, "changed since the plan was made");
    // A bundled playbook that is not this binary's.
    let mut plan = case.plan.clone();
    plan["made_from"]["playbooks"][0]["source"] = json!("bundled:ephemeral-ports.yml");
    case.refused("bundled", &plan, "is not the one bundled in this tune");
}

fn sha256(text: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("x");
    std::fs::write(&file, text).expect("write");
    let out = std::process::Command::new("sha256sum")
        .arg(&file)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn a_plan_made_in_one_namespace_is_refused_in_another() {
    if !prerequisites() {
        return;
    }
    let case = Case::new("here");
    let other = Netns::new("there");
    other.set_sysctl("net.ipv4.ip_local_port_range", "20000 20050");
    other.set_sysctl("net.core.somaxconn", "128");
    let other_before: Vec<String> = KEYS.iter().map(|k| other.sysctl(k)).collect();
    let before = case.values();
    let out = other.tune(
        &case.dir.path().join("state"),
        &["apply", "--yes", &case.path("plan.json")],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("but tune runs in the one with inode"), "{t}");
    assert!(t.contains("nothing was changed"), "{t}");
    let other_after: Vec<String> = KEYS.iter().map(|k| other.sysctl(k)).collect();
    assert_eq!(
        other_after, other_before,
        "the other namespace is untouched"
    );
    assert_eq!(case.values(), before, "the plan's namespace is untouched");

    // Named with --netns for a namespace other than the recorded one: refused too.
    let out = case.tune(&[
        "apply",
        "--yes",
        "--netns",
        &other.name,
        &case.path("plan.json"),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("belongs to"), "{}", text(&out));
    assert_eq!(
        KEYS.iter().map(|k| other.sysctl(k)).collect::<Vec<_>>(),
        other_before
    );
}

/// Always fires; sets A=1 in `${env_file}`.
const ENV_PLAYBOOK: &str = "name: env
description: Sets A=1 in an environment file.
variables:
  env_file:
    default: /nonexistent/env
    description: The file.
rules:
  - id: set-a
    description: Always.
    detect:
      sysctl: {key: net.core.somaxconn, above: 0}
    fix:
      - set_env: {file: \"${env_file}\", key: A, value: \"1\"}
";

#[test]
fn env_files_under_a_symlinked_directory_are_refused() {
    if !prerequisites() {
        return;
    }
    let ns = Netns::new("envdir");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = std::fs::canonicalize(tmp.path()).expect("canonical");
    let playbook = dir.join("env.yml");
    std::fs::write(&playbook, ENV_PLAYBOOK).expect("write");
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir(&elsewhere).expect("mkdir");
    std::os::unix::fs::symlink(&elsewhere, dir.join("default")).expect("symlink");
    let state = dir.join("state");
    let var = format!("env_file={}", dir.join("default/app").display());
    let pb = playbook.to_str().expect("utf8");
    let out = ns.tune(&state, &["apply", "--yes", "-p", pb, "--var", &var]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("is a symlink"), "{t}");
    assert_eq!(
        std::fs::read_dir(&elsewhere).expect("dir").count(),
        0,
        "no file appeared"
    );

    // In a real directory: applied; a temp file left by an earlier crash is removed.
    let real = dir.join("real");
    std::fs::create_dir(&real).expect("mkdir");
    std::fs::write(real.join(".app.tune-AbC123"), "half-written").expect("write");
    let var = format!("env_file={}", real.join("app").display());
    let out = ns.tune(&state, &["apply", "--yes", "-p", pb, "--var", &var]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(real.join("app")).expect("app"),
        "A=1\n"
    );
    assert!(
        !real.join(".app.tune-AbC123").exists(),
        "stale temp file removed"
    );
    assert_eq!(ns.tune(&state, &["rollback"]).status.code(), Some(0));
    assert!(!real.join("app").exists());
}

#[test]
fn facts_snapshots_with_times_out_of_range_do_not_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    // Golden snapshots with a kernel-log line and an OOM kill, times replaced.
    let facts = |collected_at: f64, log_time: f64| -> PathBuf {
        let mut merged = serde_json::Map::new();
        for case in ["conntrack-table-full-logged", "jvm-tomcat-oom-killed"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/golden")
                .join(case)
                .join("facts.json");
            let v: Value =
                serde_json::from_str(&std::fs::read_to_string(path).expect("golden facts"))
                    .expect("json");
            for (k, v) in v.as_object().expect("object") {
                merged.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        let mut snapshot = Value::Object(merged);
        set_times(&mut snapshot, log_time);
        snapshot["collected_at"] = json!(collected_at);
        let path = dir.path().join(format!(
            "facts-{:x}-{:x}.json",
            collected_at.to_bits(),
            log_time.to_bits()
        ));
        std::fs::write(&path, snapshot.to_string()).expect("write");
        path
    };
    // A huge collection time is an error.
    let out = support::tune(&state)
        .args(["plan", "--facts"])
        .arg(facts(1e12, 1.0))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("collected_at 1000000000000 is not a time"),
        "{}",
        text(&out)
    );
    // Huge or negative times of log lines and kills are shown, not panicked on.
    for t in [1e12, 1e300, -1e9] {
        let out = support::tune(&state)
            .args(["plan", "--facts"])
            .arg(facts(1.7e9, t))
            .output()
            .expect("run");
        let code = out.status.code();
        assert!(
            matches!(code, Some(0 | 2)),
            "time {t}: {code:?} {}",
            text(&out)
        );
        assert!(!text(&out).contains("panicked"), "time {t}: {}", text(&out));
    }
}

/// Sets every `time` field in `v` to `t`.
fn set_times(v: &mut Value, t: f64) {
    match v {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if k == "time" {
                    *v = json!(t);
                } else {
                    set_times(v, t);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| set_times(v, t)),
        _ => {}
    }
}
