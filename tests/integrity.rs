//! The journal and the apply/rollback machinery under crashes, injected errors,
//! concurrency and a hostile state directory. Every test works on three per-namespace
//! sysctls in a throwaway network namespace, with the state directory in a temp dir,
//! and drives the built binary (`--netns`), using the fault hooks of
//! `src/apply/fault.rs` (`TUNE_FAULT_*`) or a tiny tmpfs in a private mount namespace.
//! Needs root and iproute2 (skips elsewhere, fails in CI).

mod support;

use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use support::{Netns, require, require_netns, text, tune_bin};

const PLAYBOOK: &str = r#"
name: integrity
description: Three per-namespace sysctls, for the crash, error and concurrency tests.
rules:
  - id: somaxconn
    description: A small accept-queue cap.
    detect:
      sysctl: {key: net.core.somaxconn, below: 5000}
    fix:
      - set_sysctl: {key: net.core.somaxconn, value: 5000}
  - id: tw-reuse
    description: tcp_tw_reuse is off.
    detect:
      sysctl: {key: net.ipv4.tcp_tw_reuse, equals: 0}
    fix:
      - set_sysctl: {key: net.ipv4.tcp_tw_reuse, value: 1}
  - id: port-range
    description: A narrow ephemeral port range.
    detect:
      sysctl: {key: net.ipv4.ip_local_port_range, measure: range_width, below: 10000}
    fix:
      - set_sysctl: {key: net.ipv4.ip_local_port_range, widen_to: "10000 65535"}
"#;

const KEYS: [&str; 3] = [
    "net.core.somaxconn",
    "net.ipv4.tcp_tw_reuse",
    "net.ipv4.ip_local_port_range",
];
const START: [&str; 3] = ["128", "0", "20000 20050"];
const AFTER: [&str; 3] = ["5000", "1", "10000 65535"];

/// A namespace, the playbook, and state directories in a temp dir.
struct Lab {
    ns: Netns,
    dir: tempfile::TempDir,
}

impl Lab {
    fn new(tag: &str) -> Lab {
        let lab = Lab {
            ns: Netns::new(tag),
            dir: tempfile::tempdir().expect("tempdir"),
        };
        std::fs::write(lab.playbook(), PLAYBOOK).expect("write playbook");
        lab.reset();
        lab
    }

    fn playbook(&self) -> PathBuf {
        self.dir.path().join("integrity.yml")
    }

    /// A fresh state directory path (not created).
    fn state(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `f` on a thread inside the namespace (where /proc/sys/net is its own).
    fn inside<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.ns.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("open netns");
            // SAFETY: a valid namespace fd; setns affects only this thread.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("netns thread")
    }

    fn reset(&self) {
        self.inside(|| {
            for (key, value) in KEYS.iter().zip(START) {
                let path = format!("/proc/sys/{}", key.replace('.', "/"));
                std::fs::write(&path, value).expect("set sysctl");
            }
        });
    }

    fn values(&self) -> Vec<String> {
        self.inside(|| {
            KEYS.iter()
                .map(|key| {
                    let path = format!("/proc/sys/{}", key.replace('.', "/"));
                    let v = std::fs::read_to_string(&path).expect("read sysctl");
                    v.split_whitespace().collect::<Vec<_>>().join(" ")
                })
                .collect()
        })
    }

    /// How many values differ from the start values.
    fn changed(&self) -> usize {
        self.values()
            .iter()
            .zip(START)
            .filter(|(v, s)| v.as_str() != *s)
            .count()
    }

    fn run(&self, state: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
        let mut cmd = Command::new(tune_bin());
        cmd.args(args)
            .env("NO_COLOR", "1")
            .env("TUNE_STATE_DIR", state)
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run tune")
    }

    fn apply_args(&self) -> Vec<String> {
        vec![
            "apply".into(),
            "--yes".into(),
            "-p".into(),
            self.playbook().display().to_string(),
            "--netns".into(),
            self.ns.name.clone(),
        ]
    }

    fn apply(&self, state: &Path, env: &[(&str, String)]) -> Output {
        let args = self.apply_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run(state, &args, env)
    }
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn assert_code(out: &Output, want: i32, what: &str) {
    assert_eq!(code(out), want, "{what}: {}", text(out));
}

/// The fault points a run went through, from `TUNE_FAULT_TRACE`: (number, kind).
fn points(out: &Output) -> Vec<(usize, String)> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("tune-fault: point ")?;
            let (n, kind) = rest.split_once(": ")?;
            Some((n.parse().ok()?, kind.to_owned()))
        })
        .collect()
}

fn trace() -> Vec<(&'static str, String)> {
    vec![("TUNE_FAULT_TRACE", "1".into())]
}

/// Temp files a crash left in the journal directory.
fn temp_files(state: &Path) -> Vec<String> {
    std::fs::read_dir(state.join("transactions"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".tmp"))
                .collect()
        })
        .unwrap_or_default()
}

/// After a fault: `history` must work, plain `rollback` must restore every value,
/// and the directory must take a normal apply and rollback again. Returns (values
/// lost, stuck) and notes what went wrong.
fn recover(lab: &Lab, state: &Path, label: &str, notes: &mut Vec<String>) -> (usize, bool) {
    let mut stuck = false;
    let history = lab.run(state, &["history"], &[]);
    if code(&history) != 0 {
        notes.push(format!("{label}: history failed: {}", text(&history)));
        stuck = true;
    }
    let rollback = lab.run(state, &["rollback"], &[]);
    let nothing = text(&rollback).contains("no applied transaction")
        || text(&rollback).contains("no transactions in");
    if code(&rollback) != 0 && !(code(&rollback) == 1 && nothing) {
        notes.push(format!("{label}: rollback failed: {}", text(&rollback)));
        stuck = true;
    }
    let lost = lab.changed();
    if lost > 0 {
        notes.push(format!(
            "{label}: {lost} value(s) not restored: {:?}",
            lab.values()
        ));
        lab.reset();
    }
    let again = lab.apply(state, &[]);
    if code(&again) != 0 || lab.values() != AFTER {
        notes.push(format!("{label}: the next apply failed: {}", text(&again)));
        stuck = true;
    }
    let undo = lab.run(state, &["rollback"], &[]);
    if code(&undo) != 0 || lab.changed() != 0 {
        notes.push(format!(
            "{label}: the next rollback failed: {}",
            text(&undo)
        ));
        stuck = true;
        lab.reset();
    }
    let temps = temp_files(state);
    if !temps.is_empty() {
        notes.push(format!("{label}: temp files left: {temps:?}"));
        stuck = true;
    }
    (lost, stuck)
}

#[test]
fn a_crash_at_any_journal_or_mutation_point_is_recovered() {
    if !require_netns() {
        return;
    }
    let lab = Lab::new("crash");
    // One clean apply and rollback, traced, to number the points.
    let state = lab.state("trace");
    let out = lab.apply(&state, &trace());
    assert_code(&out, 0, "traced apply");
    assert_eq!(lab.values(), AFTER);
    let apply_points = points(&out);
    let out = lab.run(&state, &["rollback"], &trace());
    assert_code(&out, 0, "traced rollback");
    assert_eq!(lab.changed(), 0);
    let rollback_points = points(&out);
    assert!(apply_points.len() >= 20, "{apply_points:?}");
    assert!(rollback_points.len() >= 15, "{rollback_points:?}");

    let (mut tried, mut lost, mut stuck, mut not_crashed) = (0, 0, 0, 0);
    let mut notes = Vec::new();
    let mut tally = |label: String, crashed: &Output, state: &Path, notes: &mut Vec<String>| {
        tried += 1;
        if crashed.status.code().is_some() {
            not_crashed += 1;
            notes.push(format!("{label}: did not crash: {}", text(crashed)));
        }
        let (l, s) = recover(&lab, state, &label, notes);
        lost += l;
        stuck += usize::from(s);
    };
    for (n, kind) in &apply_points {
        let state = lab.state(&format!("apply-{n}"));
        let out = lab.apply(&state, &[("TUNE_FAULT_CRASH_AT", n.to_string())]);
        tally(
            format!("apply, point {n} ({kind})"),
            &out,
            &state,
            &mut notes,
        );
    }
    for step in 0..3 {
        let state = lab.state(&format!("after-step-{step}"));
        let out = lab.apply(&state, &[("TUNE_FAULT_CRASH_AFTER_STEP", step.to_string())]);
        tally(
            format!("apply, after step {step}"),
            &out,
            &state,
            &mut notes,
        );
    }
    for (n, kind) in &rollback_points {
        let state = lab.state(&format!("rollback-{n}"));
        let applied = lab.apply(&state, &[]);
        assert_code(&applied, 0, "apply before a crashing rollback");
        let out = lab.run(
            &state,
            &["rollback"],
            &[("TUNE_FAULT_CRASH_AT", n.to_string())],
        );
        tally(
            format!("rollback, point {n} ({kind})"),
            &out,
            &state,
            &mut notes,
        );
    }
    println!(
        "crash matrix: {tried} points tried ({} apply, 3 after-step, {} rollback), {lost} values lost, {stuck} dirs left stuck, {not_crashed} runs that did not crash",
        apply_points.len(),
        rollback_points.len()
    );
    assert!(
        lost == 0 && stuck == 0 && not_crashed == 0,
        "{}",
        notes.join("\n")
    );
}

/// The README's exit codes, checked against the values: 1 only with nothing changed,
/// 3 only with everything restored, 4 with the output naming what is still changed.
fn check_exit(lab: &Lab, out: &Output, label: &str, notes: &mut Vec<String>) -> i32 {
    let t = text(out);
    let changed = lab.changed();
    let c = code(out);
    let ok = match c {
        1 => changed == 0,
        3 => changed == 0 && t.contains("every completed step was rolled back"),
        4 => changed > 0 && t.contains("still changed:"),
        _ => false,
    };
    if !ok {
        notes.push(format!(
            "{label}: exit {c} with {changed} value(s) changed: {t}"
        ));
    }
    c
}

#[test]
fn journal_and_sysctl_write_errors_exit_as_the_readme_says() {
    if !require_netns() {
        return;
    }
    let lab = Lab::new("errors");
    let state = lab.state("trace");
    let out = lab.apply(&state, &trace());
    assert_code(&out, 0, "traced apply");
    let apply_points = points(&out);
    assert_code(&lab.run(&state, &["rollback"], &[]), 0, "rollback");

    let mut notes = Vec::new();
    let mut codes = std::collections::BTreeMap::<i32, usize>::new();
    let mut injected = 0;
    // One failing operation at each point, and a disk that fills up at each point.
    for (n, kind) in &apply_points {
        for hook in ["TUNE_FAULT_FAIL_AT", "TUNE_FAULT_FULL_FROM"] {
            if hook == "TUNE_FAULT_FULL_FROM" && kind == "mutation" {
                continue;
            }
            let label = format!("{hook}={n} ({kind})");
            let state = lab.state(&format!("{hook}-{n}"));
            let out = lab.apply(&state, &[(hook, n.to_string())]);
            injected += 1;
            *codes
                .entry(check_exit(&lab, &out, &label, &mut notes))
                .or_default() += 1;
            let (lost, stuck) = recover(&lab, &state, &label, &mut notes);
            assert!(lost == 0 && !stuck, "{}", notes.join("\n"));
        }
    }
    // The same for a rollback: exit 1 leaves the applied values alone, 0 restores
    // everything (a journal that failed on the way is a warning), 4 names what is not.
    let state = lab.state("rollback-trace");
    assert_code(&lab.apply(&state, &[]), 0, "apply");
    let out = lab.run(&state, &["rollback"], &trace());
    assert_code(&out, 0, "traced rollback");
    let mut rollback_codes = std::collections::BTreeMap::<i32, usize>::new();
    for (n, kind) in points(&out) {
        for hook in ["TUNE_FAULT_FAIL_AT", "TUNE_FAULT_FULL_FROM"] {
            if hook == "TUNE_FAULT_FULL_FROM" && kind == "mutation" {
                continue;
            }
            let label = format!("rollback, {hook}={n} ({kind})");
            let state = lab.state(&format!("rollback-{hook}-{n}"));
            assert_code(&lab.apply(&state, &[]), 0, "apply");
            let out = lab.run(&state, &["rollback"], &[(hook, n.to_string())]);
            injected += 1;
            let t = text(&out);
            let c = code(&out);
            let ok = match c {
                0 => lab.changed() == 0,
                1 => lab.values() == AFTER && t.contains("nothing was changed"),
                4 => lab.changed() > 0 && t.contains("still changed:"),
                _ => false,
            };
            if !ok {
                notes.push(format!(
                    "{label}: exit {c} with values {:?}: {t}",
                    lab.values()
                ));
            }
            *rollback_codes.entry(c).or_default() += 1;
            let (lost, stuck) = recover(&lab, &state, &label, &mut notes);
            assert!(lost == 0 && !stuck, "{}", notes.join("\n"));
        }
    }
    println!(
        "journal errors: {injected} injected, apply exit codes {codes:?}, rollback exit codes {rollback_codes:?}"
    );
    assert!(
        rollback_codes.get(&4).is_some_and(|n| *n > 0),
        "{rollback_codes:?}"
    );
    assert!(notes.is_empty(), "{}", notes.join("\n"));
    assert!(codes.get(&3).is_some_and(|n| *n > 0), "{codes:?}");

    // The disk fills after step 1 is done, and the undo of step 1 fails too: exit 4,
    // naming what is still changed; a later rollback restores it.
    let done_1 = apply_points
        .iter()
        .filter(|(_, k)| k == "mutation")
        .nth(1)
        .map(|(n, _)| n + 1)
        .expect("a second mutation");
    let state = lab.state("exit4-trace");
    let mut env = trace();
    env.push(("TUNE_FAULT_FULL_FROM", done_1.to_string()));
    let out = lab.apply(&state, &env);
    assert_code(&out, 3, "full disk after step 1");
    let undo = points(&out)
        .into_iter()
        .find(|(n, k)| *n > done_1 && k == "mutation")
        .map(|(n, _)| n)
        .expect("an undo mutation");
    assert_code(&lab.run(&state, &["rollback"], &[]), 0, "rollback");
    let state = lab.state("exit4");
    let out = lab.apply(
        &state,
        &[
            ("TUNE_FAULT_FULL_FROM", done_1.to_string()),
            ("TUNE_FAULT_FAIL_AT", undo.to_string()),
        ],
    );
    let mut notes = Vec::new();
    assert_eq!(check_exit(&lab, &out, "exit 4", &mut notes), 4, "{notes:?}");
    let t = text(&out);
    assert!(
        t.contains("sysctl:net.ipv4.tcp_tw_reuse is still 1"),
        "names the resource: {t}"
    );
    assert!(t.contains("cannot write journal"), "{t}");
    assert_code(&lab.run(&state, &["history"], &[]), 0, "history");
    assert_code(&lab.run(&state, &["rollback"], &[]), 0, "rollback");
    assert_eq!(lab.changed(), 0);

    // A value the kernel refuses (ip_local_port_range below ip_unprivileged_port_start),
    // at the last step: exit 3, the earlier steps restored.
    let refused = lab.dir.path().join("refused.yml");
    std::fs::write(
        &refused,
        PLAYBOOK.replace("widen_to: \"10000 65535\"", "value: \"1000 2000\""),
    )
    .expect("write playbook");
    let state = lab.state("refused");
    let out = lab.run(
        &state,
        &[
            "apply",
            "--yes",
            "-p",
            refused.to_str().expect("utf8"),
            "--netns",
            &lab.ns.name,
        ],
        &[],
    );
    assert_eq!(
        check_exit(&lab, &out, "refused", &mut notes),
        3,
        "{notes:?}"
    );
    assert!(text(&out).contains("restored sysctl:net.core.somaxconn"));
    // The same, with the undo of step 0 failing: exit 4 naming somaxconn.
    let out = lab.run(
        &lab.state("refused-trace"),
        &[
            "apply",
            "--yes",
            "-p",
            refused.to_str().expect("utf8"),
            "--netns",
            &lab.ns.name,
        ],
        &trace(),
    );
    let last_undo = points(&out)
        .into_iter()
        .rev()
        .find(|(_, k)| k == "mutation")
        .map(|(n, _)| n)
        .expect("mutations");
    let state = lab.state("refused-4");
    let out = lab.run(
        &state,
        &[
            "apply",
            "--yes",
            "-p",
            refused.to_str().expect("utf8"),
            "--netns",
            &lab.ns.name,
        ],
        &[("TUNE_FAULT_FAIL_AT", last_undo.to_string())],
    );
    assert_eq!(
        check_exit(&lab, &out, "refused, undo fails", &mut notes),
        4,
        "{notes:?}"
    );
    assert!(
        text(&out).contains("sysctl:net.core.somaxconn is still 5000"),
        "{}",
        text(&out)
    );
    assert_code(&lab.run(&state, &["rollback"], &[]), 0, "rollback");
    assert_eq!(lab.changed(), 0);
}

/// Runs a shell script in a private mount namespace (`unshare -m`), so a tmpfs it
/// mounts is gone when it exits and never visible to the host.
fn in_private_mounts(script: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c", script]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run unshare")
}

#[test]
fn a_full_tmpfs_is_found_before_anything_changes_and_reserved_space_lets_rollback_finish() {
    if !require_netns() || !require(support::have("unshare"), "needs unshare (util-linux)") {
        return;
    }
    let lab = Lab::new("tmpfs");
    let mnt = lab.state("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    let tune = tune_bin().display().to_string();
    let apply = format!(
        "{tune} apply --yes -p {} --netns {}",
        lab.playbook().display(),
        lab.ns.name
    );
    // One page: the begin fits, the reservation does not.
    let script = format!(
        "mount -t tmpfs -o size=4k,mode=0700 tune-test {m} || exit 99
         TUNE_STATE_DIR={m}/state {apply}; echo \"apply=$?\"
         TUNE_STATE_DIR={m}/state {tune} history; echo \"history=$?\"
         echo \"ls:[$(ls -A {m}/state/transactions)]\"",
        m = mnt.display()
    );
    let out = in_private_mounts(&script, &[]);
    let t = text(&out);
    assert!(t.contains("apply=1"), "{t}");
    assert!(
        t.contains("No space left on device") && t.contains("nothing was changed"),
        "{t}"
    );
    assert!(t.contains("history=0"), "{t}");
    assert!(t.contains("ls:[]"), "no journal and no temp file left: {t}");
    assert_eq!(lab.changed(), 0, "nothing changed");

    // Room for the journal; then the disk fills up; rollback still completes in the
    // space reserved with the begin.
    let script = format!(
        "mount -t tmpfs -o size=64k,mode=0700 tune-test {m} || exit 99
         TUNE_STATE_DIR={m}/state {apply}; echo \"apply=$?\"
         dd if=/dev/zero of={m}/fill bs=4k 2>/dev/null; echo filled
         TUNE_STATE_DIR={m}/state {tune} rollback; echo \"rollback=$?\"
         TUNE_STATE_DIR={m}/state {tune} history; echo \"history=$?\"",
        m = mnt.display()
    );
    let out = in_private_mounts(&script, &[]);
    let t = text(&out);
    assert!(t.contains("apply=0") && t.contains("filled"), "{t}");
    assert!(t.contains("rollback=0") && t.contains("history=0"), "{t}");
    assert!(t.contains("rolled back"), "{t}");
    assert_eq!(lab.changed(), 0, "every value restored");
}

#[test]
fn concurrent_applies_and_rollbacks_proceed_one_at_a_time() {
    if !require_netns() {
        return;
    }
    let lab = Lab::new("race");
    let state = lab.state("state");
    let args = lab.apply_args();
    let spawn = |args: &[String]| {
        Command::new(tune_bin())
            .args(args)
            .env("NO_COLOR", "1")
            .env("TUNE_STATE_DIR", &state)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tune")
    };
    let history_count = || -> usize {
        let out = lab.run(&state, &["history", "--format", "json"], &[]);
        assert_code(&out, 0, "history");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("history json");
        v.as_array().map_or(0, Vec::len)
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (history_runs, history_failures) = std::thread::scope(|scope| {
        // `history` keeps running during all the applies below and must never fail.
        let watcher = scope.spawn(|| {
            let (mut runs, mut failures) = (0, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let out = lab.run(&state, &["history"], &[]);
                runs += 1;
                if code(&out) != 0 {
                    failures.push(text(&out));
                }
            }
            (runs, failures)
        });
        // Stops the watcher however this thread leaves the scope: a failed assertion
        // must fail the test, not leave the scope waiting for the watcher forever.
        struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let _stop_watcher = StopOnDrop(&stop);
        let mut transactions = 0;
        for round in 0..20 {
            let children: Vec<_> = (0..8).map(|_| spawn(&args)).collect();
            let outs: Vec<Output> = children
                .into_iter()
                .map(|c| c.wait_with_output().expect("wait"))
                .collect();
            let applied = outs
                .iter()
                .filter(|o| code(o) == 0 && text(o).contains("applied"))
                .count();
            for o in &outs {
                let t = text(o);
                let fine = (code(o) == 0
                    && (t.contains("applied") || t.contains("Nothing to apply")))
                    || (code(o) == 1
                        && (t.contains("another tune apply or rollback is running")
                            || t.contains("the system changed since the plan was made")));
                assert!(fine, "round {round}: {t}");
            }
            assert_eq!(applied, 1, "round {round}: exactly one apply proceeds");
            transactions += 1;
            assert_eq!(history_count(), transactions, "round {round}");
            assert_eq!(lab.values(), AFTER, "round {round}");

            // Rollback against another apply: whichever wins, history matches the values.
            let rollback = spawn(&["rollback".to_string()]);
            let apply = spawn(&args);
            let rb = rollback.wait_with_output().expect("wait");
            let ap = apply.wait_with_output().expect("wait");
            assert!(matches!(code(&rb), 0 | 1), "{}", text(&rb));
            assert!(matches!(code(&ap), 0 | 1), "{}", text(&ap));
            let out = lab.run(&state, &["history", "--format", "json"], &[]);
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
            let items = v.as_array().expect("array").clone();
            transactions = items.len();
            let last = items.last().expect("a transaction");
            // The apply may have planned against a half-restored system (it plans
            // before it takes the lock), so it may change fewer keys than the round's
            // first applies: the keys it changed hold its after-values, all others
            // the start values.
            let applied = match last["status"].as_str() {
                Some("applied") => true,
                Some("rolled_back") => false,
                other => panic!("round {round}: last status {other:?}"),
            };
            let mut want: Vec<String> = START.iter().map(|v| v.to_string()).collect();
            if applied {
                for change in last["changes"].as_array().expect("changes") {
                    let m = &change["mutation"];
                    let i = KEYS
                        .iter()
                        .position(|k| m["key"] == *k)
                        .expect("a key of the playbook");
                    want[i] = m["after"].as_str().expect("after").to_owned();
                }
            }
            assert_eq!(lab.values(), want, "round {round}: {last}");
            if applied {
                assert_code(&lab.run(&state, &["rollback"], &[]), 0, "rollback");
            }
            assert_eq!(lab.changed(), 0);
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        watcher.join().expect("watcher")
    });
    println!("concurrency: 20 rounds of 8 applies, {history_runs} history runs during them");
    assert!(history_runs > 0);
    assert!(history_failures.is_empty(), "{history_failures:?}");
}

/// The namespace record a journal keeps, so rollback of a hand-made journal acts in
/// the test's namespace, never on the host.
fn netns_record(ns: &Netns) -> serde_json::Value {
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata(format!("/run/netns/{}", ns.name))
        .expect("netns file")
        .ino();
    serde_json::json!({"name": ns.name, "inode": inode})
}

/// A journal with one sysctl step, as a planted one would look.
fn planted_journal(ns: &Netns, before: &str, after: &str) -> String {
    let begin = serde_json::json!({
        "event": "begin", "id": 1, "at": 0.0, "hostname": "h", "netns": netns_record(ns),
        "changes": [{"rules": ["x/y"], "evidence": [],
            "mutation": {"kind": "sysctl", "key": "net.core.somaxconn", "before": before, "after": after}}]
    });
    let intent = serde_json::json!({"event": "intent", "step": 0, "direction": "forward"});
    let applied = serde_json::json!({"event": "applied", "at": 0.0});
    format!("{begin}\n{intent}\n{applied}\n")
}

#[test]
fn a_hostile_state_directory_is_refused_and_nothing_changes() {
    if !require_netns() {
        return;
    }
    let lab = Lab::new("hostile");
    let elsewhere = lab.state("elsewhere");
    std::fs::create_dir(&elsewhere).expect("mkdir");
    // `history`: refused too (1), warns about the journal (2), or unaffected (0).
    let refused = |state: &Path, what: &str, wants: &str, history: i32| {
        for args in [
            vec!["rollback"],
            vec!["rollback", "1"],
            vec!["rollback", "--force"],
        ] {
            let out = lab.run(state, &args, &[]);
            assert_code(&out, 1, &format!("{what}: {args:?}"));
            assert!(text(&out).contains(wants), "{what}: {}", text(&out));
        }
        let out = lab.apply(state, &[]);
        assert_code(&out, 1, &format!("{what}: apply"));
        assert!(text(&out).contains(wants), "{what}: {}", text(&out));
        assert!(
            text(&out).contains("othing was changed"),
            "{what}: {}",
            text(&out)
        );
        assert_eq!(lab.changed(), 0, "{what}: nothing changed");
        let out = lab.run(state, &["history"], &[]);
        assert_code(&out, i32::from(history == 1), &format!("{what}: history"));
        if history == 2 {
            assert!(text(&out).contains("warning"), "{}", text(&out));
        }
    };
    // A valid journal that would set somaxconn to 7 on rollback.
    let make = |name: &str| {
        let state = lab.state(name);
        std::fs::create_dir_all(state.join("transactions")).expect("mkdir");
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        std::fs::write(
            state.join("transactions/000001.jsonl"),
            planted_journal(&lab.ns, "7", "128"),
        )
        .expect("write journal");
        state
    };
    let chown = |path: &Path| {
        std::os::unix::fs::chown(path, Some(65534), Some(65534)).expect("chown");
    };

    let state = make("foreign");
    chown(&state);
    refused(&state, "foreign-owned state dir", "owned by uid 65534", 1);

    let state = make("foreign-transactions");
    chown(&state.join("transactions"));
    refused(
        &state,
        "foreign-owned transactions/",
        "owned by uid 65534",
        1,
    );

    let state = make("group-writable");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o770)).expect("chmod");
    refused(
        &state,
        "group-writable state dir",
        "writable by group or others",
        1,
    );

    let state = make("symlinked-lock");
    let target = elsewhere.join("lock-target");
    std::os::unix::fs::symlink(&target, state.join("lock")).expect("symlink");
    refused(&state, "symlinked lock", "is a symlink", 0);
    assert!(!target.exists(), "the lock's target was not created");

    let real = make("real");
    let link = lab.state("symlinked");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    refused(&link, "symlinked state dir", "is a symlink", 1);

    let state = make("planted");
    chown(&state.join("transactions/000001.jsonl"));
    refused(&state, "planted journal", "untrusted journal", 2);

    let state = make("writable-journal");
    std::fs::set_permissions(
        state.join("transactions/000001.jsonl"),
        std::fs::Permissions::from_mode(0o666),
    )
    .expect("chmod");
    refused(&state, "world-writable journal", "untrusted journal", 2);

    let state = make("open-parent/state");
    let parent = lab.state("open-parent");
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    refused(
        &state,
        "world-writable parent",
        "writable by group or others",
        1,
    );
    let fresh = parent.join("fresh");
    let out = lab.apply(&fresh, &[]);
    assert_code(&out, 1, "apply into a world-writable parent");
    assert!(!fresh.exists(), "no state dir created there");

    // The parent named is a symlink (not checked for its mode) to a world-writable
    // directory: the resolved chain is checked too.
    make("open-target/state");
    std::fs::set_permissions(
        lab.state("open-target"),
        std::fs::Permissions::from_mode(0o777),
    )
    .expect("chmod");
    std::os::unix::fs::symlink(lab.state("open-target"), lab.state("via-link")).expect("symlink");
    refused(
        &lab.state("via-link/state"),
        "state dir under a symlink to a world-writable parent",
        "writable by group or others",
        1,
    );
}

#[test]
fn damaged_journals_and_huge_timestamps_are_skipped_or_shown_without_a_panic() {
    if !require_netns() {
        return;
    }
    let lab = Lab::new("damaged");
    let state = lab.state("state");
    let tdir = state.join("transactions");
    std::fs::create_dir_all(&tdir).expect("mkdir");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    // What the old code left after a crash: an empty journal, and one whose begin
    // was torn.
    std::fs::write(tdir.join("000001.jsonl"), "").expect("write");
    std::fs::write(
        tdir.join("000002.jsonl"),
        "{\"event\":\"begin\",\"id\":2,\"at\"",
    )
    .expect("write");
    // Times no calendar can show.
    let current = lab.values()[0].clone();
    let huge = planted_journal(&lab.ns, &current, &current)
        .replace("\"id\":1", "\"id\":3")
        .replacen("\"at\":0.0", "\"at\":1e12", 1)
        .replace("\"at\":0.0", "\"at\":1e300");
    std::fs::write(tdir.join("000003.jsonl"), huge).expect("write");
    for format in ["text", "json"] {
        let out = lab.run(&state, &["history", "--format", format], &[]);
        assert_code(&out, 0, "history");
        let t = text(&out);
        assert!(t.contains("000001.jsonl: empty journal"), "{t}");
        assert!(t.contains("000002.jsonl: no complete line"), "{t}");
    }
    let out = lab.run(&state, &["history"], &[]);
    assert!(
        text(&out).contains("1000000000000 (not a valid time)"),
        "{}",
        text(&out)
    );
    // Transaction 3 held its value: rollback goes through, then a new apply gets id 4.
    assert_code(&lab.run(&state, &["rollback"], &[]), 0, "rollback of 3");
    let out = lab.apply(&state, &[]);
    assert_code(&out, 0, "apply");
    assert!(
        text(&out).contains("transaction 4 applied"),
        "{}",
        text(&out)
    );
    assert_code(&lab.run(&state, &["rollback"], &[]), 0, "rollback of 4");
    assert_eq!(lab.changed(), 0);
}

/// The faults the issue reproduced with strace, injected into the real system calls
/// (not through tune's hooks): SIGKILL at the Nth fsync/fdatasync/rename; ENOSPC on
/// the Nth write to a journal or a /proc/sys file; and ENOSPC on every journal write
/// from the Nth on (a disk that fills up). `-P` limits the injection to those files.
#[test]
fn strace_injected_kills_and_write_errors_are_recovered() {
    if !require_netns() || !require(support::have("strace"), "needs strace") {
        return;
    }
    let lab = Lab::new("strace");
    let args = lab.apply_args();
    let strace = |state: &Path, paths: &[String], inject: &str| -> Output {
        let mut cmd = Command::new("strace");
        cmd.args(["-f", "-qq", "-o", "/dev/null"]);
        for p in paths {
            cmd.args(["-P", p]);
        }
        cmd.args(["-e", inject])
            .arg(tune_bin())
            .args(&args)
            .env("NO_COLOR", "1")
            .env("TUNE_STATE_DIR", state)
            .stdin(Stdio::null())
            .output()
            .expect("run strace")
    };
    let journal_paths = |state: &Path| -> Vec<String> {
        let t = state.join("transactions");
        vec![
            t.join(".000001.jsonl.tmp").display().to_string(),
            t.join("000001.jsonl").display().to_string(),
        ]
    };
    let (mut tried, mut lost, mut stuck) = (0, 0, 0);
    let mut notes = Vec::new();
    let mut tally = |label: &str, state: &Path, notes: &mut Vec<String>| {
        tried += 1;
        let (l, s) = recover(&lab, state, label, notes);
        lost += l;
        stuck += usize::from(s);
    };
    for n in 1..=40 {
        let state = lab.state(&format!("kill-{n}"));
        let inject =
            format!("inject=fsync,fdatasync,rename,renameat,renameat2:signal=KILL:when={n}");
        let out = strace(&state, &[], &inject);
        if code(&out) == 0 {
            // Fewer such calls than n: the run went through.
            assert_code(&lab.run(&state, &["rollback"], &[]), 0, "rollback");
            break;
        }
        tally(&format!("SIGKILL at sync/rename {n}"), &state, &mut notes);
    }
    let mut codes = std::collections::BTreeMap::<i32, usize>::new();
    for full in [false, true] {
        for n in 1..=40 {
            let state = lab.state(&format!("enospc-{full}-{n}"));
            let mut paths = journal_paths(&state);
            let inject = if full {
                format!("inject=write:error=ENOSPC:when={n}+")
            } else {
                paths.extend(
                    KEYS.iter()
                        .map(|k| format!("/proc/sys/{}", k.replace('.', "/"))),
                );
                format!("inject=write:error=ENOSPC:when={n}")
            };
            let out = strace(&state, &paths, &inject);
            let label = format!("{inject} on {paths:?}");
            let c = if code(&out) == 0 && lab.values() == AFTER {
                0
            } else {
                check_exit(&lab, &out, &label, &mut notes)
            };
            *codes.entry(c).or_default() += 1;
            tally(&label, &state, &mut notes);
            if c == 0 {
                break;
            }
        }
    }
    println!(
        "strace: {tried} faults injected, exit codes under ENOSPC {codes:?}, {lost} values lost, {stuck} dirs left stuck"
    );
    assert!(tried > 20, "{tried}");
    assert!(codes.get(&3).is_some_and(|n| *n > 0), "{codes:?}");
    assert!(notes.is_empty(), "{}", notes.join("\n"));
}
