//! The CLI as users run it: schemas are current, bundled playbooks validate, validate
//! flags unknown keys with a suggestion, facts replay gives the same plan, exit codes.

mod support;

use std::path::Path;

use support::{QUIET_KERNEL_LOG, text, tune};

fn check_schema(kind: &str, file: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = tune(dir.path())
        .args(["schema", kind])
        .output()
        .expect("run");
    assert!(out.status.success());
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    if std::env::var("TUNE_BLESS").is_ok() {
        std::fs::write(&path, &out.stdout).expect("bless");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == out.stdout,
        "{file} is stale: run `TUNE_BLESS=1 cargo test --test cli` (or `tune schema {kind} > {file}`)"
    );
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
}

#[test]
fn committed_schemas_are_current() {
    check_schema("playbook", "schemas/playbook.schema.json");
    check_schema("plan", "schemas/plan.schema.json");
    check_schema("facts", "schemas/facts.schema.json");
}

#[test]
fn bundled_playbooks_validate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let playbooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks");
    let out = tune(dir.path())
        .arg("validate")
        .arg(&playbooks)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).starts_with("ok: "), "{}", text(&out));
}

#[test]
fn validate_flags_unknown_sysctl_keys_with_a_suggestion() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("typo.yml");
    std::fs::write(
        &path,
        "name: typo\ndescription: d\nrules:\n  - id: r\n    description: d\n    detect:\n      sysctl: {key: net.ipv4.tcp_tw_resue, equals: 0}\n    fix:\n      - set_sysctl: {key: net.ipv4.tcp_tw_resue, value: 1}\n",
    )
    .expect("write");
    let out = tune(dir.path())
        .arg("validate")
        .arg(&path)
        .output()
        .expect("run");
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("typo.yml:7:21: rule r: unknown sysctl key net.ipv4.tcp_tw_resue")
            && t.contains("typo.yml:9:27: rule r: unknown sysctl key net.ipv4.tcp_tw_resue")
            && t.contains("did you mean net.ipv4.tcp_tw_reuse?"),
        "{t}"
    );
}

#[test]
fn facts_snapshot_replays_to_the_same_plan() {
    let dir = tempfile::tempdir().expect("tempdir");
    let facts = tune(dir.path())
        .args([
            "facts",
            "--format",
            "json",
            "--kernel-log",
            QUIET_KERNEL_LOG,
        ])
        .output()
        .expect("run");
    assert!(facts.status.success(), "{}", text(&facts));
    let path = dir.path().join("facts.json");
    std::fs::write(&path, &facts.stdout).expect("write");
    let replay = tune(dir.path())
        .args(["plan", "--format", "json", "--facts"])
        .arg(&path)
        .output()
        .expect("run");
    assert!(replay.status.success(), "{}", text(&replay));
    let plan: serde_json::Value = serde_json::from_slice(&replay.stdout).expect("plan json");
    let facts: serde_json::Value = serde_json::from_slice(&facts.stdout).expect("facts json");
    assert_eq!(plan["created_at"], facts["collected_at"]);
    assert_eq!(plan["format"], 1);
    // The replay decides like a live plan of this host: same rules, same changes.
    let live = tune(dir.path())
        .args(["plan", "--format", "json", "--kernel-log", QUIET_KERNEL_LOG])
        .output()
        .expect("run");
    let live: serde_json::Value = serde_json::from_slice(&live.stdout).expect("plan json");
    let decisions = |p: &serde_json::Value| {
        let findings: Vec<String> = p["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .map(|f| {
                format!(
                    "{} {} {} {}",
                    f["playbook"], f["rule"], f["status"], f["fix"]
                )
            })
            .collect();
        let changes: Vec<String> = p["changes"]
            .as_array()
            .expect("changes")
            .iter()
            .map(|c| c["mutation"].to_string())
            .collect();
        (findings, changes)
    };
    assert_eq!(decisions(&plan), decisions(&live));
}

#[test]
fn history_without_state_and_help_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = tune(&dir.path().join("none"))
        .arg("history")
        .output()
        .expect("run");
    assert!(out.status.success());
    assert_eq!(text(&out), "No transactions.\n");
    let out = tune(dir.path()).arg("--help").output().expect("run");
    assert!(out.status.success());
    for cmd in [
        "plan", "apply", "rollback", "history", "validate", "schema", "facts",
    ] {
        assert!(text(&out).contains(cmd), "--help lists {cmd}");
    }
}

#[test]
fn plan_output_file_is_the_json_plan() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("plan.json");
    let out = tune(dir.path())
        .args(["plan", "--kernel-log", QUIET_KERNEL_LOG, "-o"])
        .arg(&file)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", text(&out));
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("plan file")).expect("json");
    assert!(plan["changes"].is_array() && plan["findings"].is_array());
    // What it was made from is recorded in the file and in JSON output (the text
    // report, which does not show it, does not compute it).
    assert!(
        plan["made_from"]["playbooks"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
    );
    let out = tune(dir.path())
        .args(["plan", "--kernel-log", QUIET_KERNEL_LOG, "--format", "json"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        json["made_from"]["playbooks"],
        plan["made_from"]["playbooks"]
    );
}

#[test]
fn colour_on_a_terminal_unless_no_color() {
    if !support::require(
        support::have("script"),
        "needs `script` (util-linux) for a pty",
    ) {
        return;
    }
    let facts = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/ports-narrow/facts.json");
    let command = format!(
        "{} plan --facts {}",
        support::tune_bin().display(),
        facts.display()
    );
    let run = |no_color: bool| {
        let mut cmd = std::process::Command::new("script");
        cmd.args(["-qec", &command, "/dev/null"])
            .env_remove("NO_COLOR");
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        let out = cmd.output().expect("run script");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let coloured = run(false);
    assert!(
        coloured.contains("\x1b[") && coloured.contains("10000 65535"),
        "{coloured:?}"
    );
    let plain = run(true);
    assert!(
        !plain.contains("\x1b[") && plain.contains("10000 65535"),
        "{plain:?}"
    );
    // Not a terminal: no colour either.
    let dir = tempfile::tempdir().expect("tempdir");
    let piped = std::process::Command::new(support::tune_bin())
        .args(["plan", "--facts"])
        .arg(&facts)
        .env_remove("NO_COLOR")
        .env("TUNE_STATE_DIR", dir.path())
        .output()
        .expect("run");
    assert!(!String::from_utf8_lossy(&piped.stdout).contains("\x1b["));
}

/// `--all-netns` refuses the flags it would otherwise ignore, before anything is read
/// or changed: a commit-confirmed apply must not run without its watchdog.
#[test]
fn all_netns_refuses_the_flags_it_cannot_honour() {
    let dir = tempfile::tempdir().expect("tempdir");
    for args in [
        &["plan", "--all-netns", "--persist"][..],
        &["plan", "--all-netns", "--kernel-log", "/dev/null"],
        &["plan", "--all-netns", "--sample-window", "1s"],
        &["apply", "--all-netns", "--persist"],
        &["apply", "--all-netns", "--confirm-within", "60s"],
        &["apply", "--all-netns", "--probe", "tcp:127.0.0.1:1"],
        &["apply", "--all-netns", "--probe-cmd", "true"],
        &["apply", "--all-netns", "--probe-netns", "x"],
    ] {
        let out = tune(&dir.path().join("state"))
            .args(args)
            .args(["-p", "playbooks/netem.yml"])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains("'--all-netns' cannot be used with"),
            "{args:?}: {}",
            text(&out)
        );
        assert!(!dir.path().join("state").exists(), "{args:?} made state");
    }
}

/// A `plan` of the sysctl playbooks, as the speed benchmark runs it.
fn sysctl_plan(state: &Path) -> std::process::Command {
    let mut cmd = tune(state);
    cmd.current_dir(env!("CARGO_MANIFEST_DIR")).args([
        "plan",
        "-p",
        "playbooks/conntrack.yml",
        "-p",
        "playbooks/time-wait.yml",
        "--kernel-log",
        QUIET_KERNEL_LOG,
    ]);
    cmd
}

/// Runs `tune plan` with the softirq playbook, which samples over a 2 s window, and
/// polls `look` with the live process's pid until it returns `Some` (or 1.5 s pass);
/// returns what it last saw and the output.
fn while_sampling<T>(
    state: &Path,
    setup: impl FnOnce(&mut std::process::Command),
    mut look: impl FnMut(u32) -> Option<T>,
) -> (Option<T>, std::process::Output) {
    let mut cmd = tune(state);
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "plan",
            "-p",
            "playbooks/softirq.yml",
            "--sample-window",
            "2s",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    setup(&mut cmd);
    let child = cmd.spawn().expect("spawn");
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(1500);
    let mut seen = None;
    while seen.is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
        seen = look(child.id());
    }
    (seen, child.wait_with_output().expect("wait"))
}

/// tune starts from the C `main` (src/main.rs), so it reopens closed standard streams
/// on /dev/null itself: otherwise the next file it opens (a playbook, a lock, a
/// configuration file being written) takes the number, and what tune prints goes into
/// it. fds 0 and 1 of the live process are looked at while it samples.
#[test]
fn closed_standard_streams_are_reopened_on_dev_null() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let fd = |pid: u32, n: u32| std::fs::read_link(format!("/proc/{pid}/fd/{n}")).ok();
    let (seen, out) = while_sampling(
        dir.path(),
        |cmd| {
            // SAFETY: close(2) is async-signal-safe, and fds 0 and 1 belong to no one here.
            unsafe {
                cmd.pre_exec(|| {
                    libc::close(0);
                    libc::close(1);
                    Ok(())
                });
            }
        },
        // Until the sanitising has run (a few ms in), the fds are closed.
        |pid| fd(pid, 0).zip(fd(pid, 1)),
    );
    let null = std::path::PathBuf::from("/dev/null");
    assert_eq!(
        seen,
        Some((null.clone(), null)),
        "fds 0 and 1 while tune ran"
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(out.stderr.is_empty(), "{}", text(&out));
}

/// build.rs links the binary's unwinder statically: a run maps libc and not
/// libgcc_s.so.1, whose load and constructor (CPUID instructions, each an exit to the
/// hypervisor on a VM) were a sixth of a plan on the development VM.
#[test]
fn a_run_does_not_load_libgcc_s() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (maps, out) = while_sampling(
        dir.path(),
        |_| {},
        // Once the process runs tune's code, libc is mapped.
        |pid| {
            std::fs::read_to_string(format!("/proc/{pid}/maps"))
                .ok()
                .filter(|maps| maps.contains("libc.so"))
        },
    );
    let maps = maps.expect("libc.so mapped while tune ran");
    assert!(!maps.contains("libgcc_s"), "{maps}");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// `SIGPIPE` stays ignored (src/main.rs does what the Rust runtime did): a reader that
/// has gone away is an EPIPE that tune ends on quietly with exit 0, not a signal that
/// kills it between two writes.
#[test]
fn a_reader_that_went_away_does_not_kill_tune() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = sysctl_plan(dir.path())
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run");
    assert_eq!(out.status.signal(), None, "{}", text(&out));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(out.stderr.is_empty(), "{}", text(&out));
}

/// Every subcommand builds its arguments only when parsed (`Lazy`, clap's
/// `Command::defer`): its help keeps the subcommand's own first line, not the doc of a
/// flattened group, and lists its options.
#[test]
fn deferred_subcommands_keep_their_help() {
    let listed = std::process::Command::new(env!("CARGO_BIN_EXE_tune"))
        .arg("--help")
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    for (sub, about, option) in [
        (
            "plan",
            "Show what would change, with evidence.",
            "--kernel-log",
        ),
        (
            "apply",
            "Apply a saved plan, or plan and apply",
            "--confirm-within",
        ),
        (
            "facts",
            "Print the facts the loaded playbooks need",
            "--format",
        ),
        ("rollback", "Undo the last applied transaction", "--netns"),
        ("confirm", "Keep a transaction applied", "[ID]"),
        ("history", "List applied transactions", "--format"),
        ("validate", "Check playbooks: schema, meaning", "--strict"),
        ("test", "Run the playbook test cases", "--bless"),
        ("schema", "Print a JSON Schema", "[KIND]"),
        ("ansible", "Run as an Ansible binary module", "[ARGS_FILE]"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tune"))
            .args([sub, "--help"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{sub}: {text}");
        assert!(text.starts_with(about), "{sub}: {text}");
        assert!(text.contains(option), "{sub}: {text}");
        assert!(listed.contains(about), "tune --help lists {sub}");
    }
}
