//! Real-kernel tests of the per-namespace sysctl fixes. Each test makes a throwaway
//! network namespace, creates the fault for real in it (a narrow port range that makes
//! connect() fail, 1,000+ real TIME_WAIT sockets, a listen queue overflowing while tune
//! samples its counter), and
//! runs the built binary inside it: plan detects (exit 2), apply fixes, plan is clean
//! (exit 0), rollback restores the exact earlier value. Also: a failure in the middle
//! of an apply, a crash in the middle of an apply, drift, the lock, sysctl files opened
//! where openat2 is refused (strace-injected ENOSYS and EPERM), and a
//! non-interactive apply without --yes. Needs root and iproute2 (skips elsewhere,
//! fails in CI).

mod support;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Output;
use std::time::Duration;

use support::{Netns, require_netns, text};

// Each test names the playbook of the fault it makes: the bundled set also reads the
// host's kernel log and java processes, which a namespace test must not depend on.
const PORTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/playbooks/ephemeral-ports.yml");
const TIME_WAIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/playbooks/time-wait.yml");
const LISTEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/playbooks/listen-backlog.yml");

/// Runs `f` on a new thread that has entered the namespace: sockets it creates live
/// there.
fn in_netns<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{}", ns.name);
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

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn assert_code(out: &Output, want: i32, what: &str) {
    assert_eq!(code(out), want, "{what}: {}", text(out));
}

/// Opens `n` concurrent connections to a local listener; returns (ok, EADDRNOTAVAIL).
fn concurrent_connects(n: usize) -> (usize, usize) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let addr = listener.local_addr().expect("addr");
    let mut streams = Vec::new();
    let mut addr_not_avail = 0;
    for _ in 0..n {
        match TcpStream::connect(addr) {
            Ok(s) => streams.push(s),
            Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => addr_not_avail += 1,
            Err(e) => panic!("unexpected connect error: {e}"),
        }
    }
    (streams.len(), addr_not_avail)
}

#[test]
fn narrow_port_range_detected_fixed_and_rolled_back() {
    if !require_netns() {
        return;
    }
    let ns = Netns::new("ports");
    let state = tempfile::tempdir().expect("tempdir");
    ns.set_sysctl("net.ipv4.ip_local_port_range", "20000 20050");

    let (ok, failed) = in_netns(&ns, || concurrent_connects(120));
    eprintln!("symptom before: {ok} connections succeeded, {failed} failed with EADDRNOTAVAIL");
    assert!(
        failed > 0 && ok <= 51,
        "the narrow range must make connect() fail"
    );

    let plan = ns.tune(state.path(), &["plan", "--detailed-exitcode", "-p", PORTS]);
    assert_code(&plan, 2, "plan on a narrow range");
    assert!(text(&plan).contains("width 51 < 10000"), "{}", text(&plan));

    let state_dir = state.path().join("state");
    let apply = ns.tune(&state_dir, &["apply", "--yes", "-p", PORTS]);
    assert_code(&apply, 0, "apply");
    assert_eq!(ns.sysctl("net.ipv4.ip_local_port_range"), "10000 65535");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&state_dir)
            .expect("state dir")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o700, "state dir mode");
    let (ok, failed) = in_netns(&ns, || concurrent_connects(120));
    eprintln!("symptom after: {ok} connections succeeded, {failed} failed");
    assert_eq!((ok, failed), (120, 0));

    assert_code(
        &ns.tune(&state_dir, &["plan", "--detailed-exitcode", "-p", PORTS]),
        0,
        "plan after apply",
    );
    assert_code(&ns.tune(&state_dir, &["rollback"]), 0, "rollback");
    assert_eq!(ns.sysctl("net.ipv4.ip_local_port_range"), "20000 20050");
    let history = ns.tune(&state_dir, &["history"]);
    assert!(text(&history).contains("rolled back"), "{}", text(&history));
}

#[test]
fn widening_over_a_listening_port_reserves_it_and_it_can_still_be_bound() {
    if !require_netns() {
        return;
    }
    let ns = Netns::new("reserve");
    let state = tempfile::tempdir().expect("tempdir");
    ns.set_sysctl("net.ipv4.ip_local_port_range", "20000 20050");
    ns.set_sysctl("net.ipv4.ip_local_reserved_ports", "30000-30002");
    // 12345 and 40000 are newly inside 10000-65535; 20010 was already in the range.
    let listeners = in_netns(&ns, || {
        ["0.0.0.0:12345", "[::]:40000", "127.0.0.1:20010"]
            .map(|a| TcpListener::bind(a).expect("listen"))
    });
    let playbook = concat!(env!("CARGO_MANIFEST_DIR"), "/playbooks/ephemeral-ports.yml");
    let plan = ns.tune(
        state.path(),
        &["plan", "-p", playbook, "--detailed-exitcode"],
    );
    assert_code(&plan, 2, "plan on a narrow range with listeners");
    let shown = text(&plan);
    let reserve = "sysctl:net.ipv4.ip_local_reserved_ports  30000-30002 → 12345,30000-30002,40000";
    let widen = "sysctl:net.ipv4.ip_local_port_range  20000 20050 → 10000 65535";
    let (r, w) = (shown.find(reserve), shown.find(widen));
    assert!(
        r.is_some() && w.is_some() && r < w,
        "reserve, then widen: {shown}"
    );

    assert_code(
        &ns.tune(state.path(), &["apply", "--yes", "-p", playbook]),
        0,
        "apply",
    );
    assert_eq!(
        ns.sysctl("net.ipv4.ip_local_reserved_ports"),
        "12345,30000-30002,40000"
    );
    assert_eq!(ns.sysctl("net.ipv4.ip_local_port_range"), "10000 65535");
    // The services restart: their ports are still free to bind.
    drop(listeners);
    in_netns(&ns, || {
        let again = TcpListener::bind("0.0.0.0:12345").expect("12345 can be bound again");
        let v6 = TcpListener::bind("[::]:40000").expect("40000 can be bound again");
        drop((again, v6));
    });
    assert_code(
        &ns.tune(
            state.path(),
            &["plan", "-p", playbook, "--detailed-exitcode"],
        ),
        0,
        "plan after apply",
    );
    assert_code(&ns.tune(state.path(), &["rollback"]), 0, "rollback");
    assert_eq!(ns.sysctl("net.ipv4.ip_local_port_range"), "20000 20050");
    assert_eq!(ns.sysctl("net.ipv4.ip_local_reserved_ports"), "30000-30002");
}

#[test]
fn time_wait_pileup_detected_fixed_and_rolled_back() {
    if !require_netns() {
        return;
    }
    let ns = Netns::new("tw");
    let state = tempfile::tempdir().expect("tempdir");
    ns.set_sysctl("net.ipv4.tcp_tw_reuse", "0");
    in_netns(&ns, || support::short_connections(1100));
    let ss = ns.sh("ss -Htan state time-wait | wc -l");
    eprintln!("TIME_WAIT sockets per ss: {}", ss.trim());

    let facts = ns.tune(
        state.path(),
        &["facts", "--format", "json", "-p", TIME_WAIT],
    );
    let json: serde_json::Value = serde_json::from_slice(&facts.stdout).expect("facts json");
    let counted = json["sockets"]["TIME_WAIT"]["value"]
        .as_u64()
        .expect("count");
    assert!(counted >= 1100, "sock_diag counted {counted}");
    assert_eq!(counted.to_string(), ss.trim(), "tune and ss agree");

    let plan = ns.tune(
        state.path(),
        &["plan", "--detailed-exitcode", "-p", TIME_WAIT],
    );
    assert_code(&plan, 2, "plan with TIME_WAIT pile-up");
    assert!(
        text(&plan).contains("TCP sockets in TIME_WAIT"),
        "{}",
        text(&plan)
    );
    assert_code(
        &ns.tune(state.path(), &["apply", "--yes", "-p", TIME_WAIT]),
        0,
        "apply",
    );
    assert_eq!(ns.sysctl("net.ipv4.tcp_tw_reuse"), "1");
    assert_code(
        &ns.tune(
            state.path(),
            &["plan", "--detailed-exitcode", "-p", TIME_WAIT],
        ),
        0,
        "plan after",
    );
    assert_code(&ns.tune(state.path(), &["rollback"]), 0, "rollback");
    assert_eq!(ns.sysctl("net.ipv4.tcp_tw_reuse"), "0");
}

/// Connects `n` times to a listener that never accepts; returns how many timed out.
fn burst_against(listener: &TcpListener, n: usize) -> usize {
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let mut kept = Vec::new();
    let mut timeouts = 0;
    for _ in 0..n {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(150)) {
            Ok(s) => kept.push(s),
            Err(_) => timeouts += 1,
        }
    }
    timeouts
}

fn listen_overflows(ns: &Netns) -> u64 {
    let out = ns.sh("cat /proc/net/netstat");
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("TcpExt:")).collect();
    let names: Vec<&str> = lines[0].split_whitespace().collect();
    let values: Vec<&str> = lines[1].split_whitespace().collect();
    let i = names
        .iter()
        .position(|n| *n == "ListenOverflows")
        .expect("ListenOverflows column");
    values[i].parse().expect("number")
}

fn listener_with_backlog(backlog: i32) -> TcpListener {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    // std listens with 128; ask for more so that somaxconn is the cap.
    // SAFETY: a valid listening socket fd.
    let rc = unsafe { libc::listen(listener.as_raw_fd(), backlog) };
    assert_eq!(rc, 0);
    listener
}

/// Keeps a listener's accept queue overflowing until `stop` is set: connections that
/// are never accepted fill the queue, and every SYN after that is an overflow.
fn overflow_until(
    ns: &Netns,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    let path = format!("/run/netns/{}", ns.name);
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("open netns");
        // SAFETY: a valid namespace fd; setns affects only this thread.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        let listener = listener_with_backlog(1024);
        let mut timeouts = 0;
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            timeouts += burst_against(&listener, 5);
        }
        timeouts
    })
}

#[test]
fn listen_overflow_fires_on_growth_during_the_sample_not_on_history() {
    if !require_netns() {
        return;
    }
    let ns = Netns::new("backlog");
    let state = tempfile::tempdir().expect("tempdir");
    let plan_file = state.path().join("plan.json");
    let plan_arg = plan_file.to_str().expect("utf8");
    ns.set_sysctl("net.core.somaxconn", "8");

    // A namespace that never overflowed is not even sampled: no wait.
    let started = std::time::Instant::now();
    let quiet = ns.tune(
        state.path(),
        &[
            "plan",
            "--detailed-exitcode",
            "-p",
            LISTEN,
            "--sample-window",
            "10s",
        ],
    );
    assert_code(&quiet, 0, "plan of a namespace that never overflowed");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "it waited for a sample"
    );

    // Overflowing while tune samples: the rule fires on the growth.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let burst = overflow_until(&ns, stop.clone());
    std::thread::sleep(Duration::from_millis(500));
    let plan = ns.tune(
        state.path(),
        &[
            "plan",
            "--detailed-exitcode",
            "-p",
            LISTEN,
            "--sample-window",
            "2s",
            "-o",
            plan_arg,
        ],
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let timeouts = burst.join().expect("burst thread");
    eprintln!("during the sample: {timeouts} connects timed out");
    assert_code(&plan, 2, "plan while the queue overflows");
    let shown = text(&plan);
    assert!(shown.contains("net.core.somaxconn  8 → 4096"), "{shown}");
    assert!(
        shown.contains("counter TcpExt.ListenOverflows growth = +")
            && shown.contains("since boot)"),
        "{shown}"
    );

    // The burst is over: the counter stays above 0 since the namespace was made, but it
    // no longer grows, so nothing fires.
    let history = listen_overflows(&ns);
    assert!(history > 0);
    let after_burst = ns.tune(
        state.path(),
        &[
            "plan",
            "--detailed-exitcode",
            "-p",
            LISTEN,
            "--sample-window",
            "1s",
        ],
    );
    assert_code(&after_burst, 0, "plan once the burst is over");
    let facts = ns.tune(
        state.path(),
        &[
            "facts",
            "--format",
            "json",
            "-p",
            LISTEN,
            "--sample-window",
            "500ms",
        ],
    );
    let json: serde_json::Value = serde_json::from_slice(&facts.stdout).expect("facts json");
    let sample = &json["counter_samples"]["TcpExt.ListenOverflows"]["value"];
    assert_eq!(sample["first"], sample["second"], "{json:#}");
    assert!(sample["first"].as_u64().is_some_and(|v| v >= history));
    assert!(sample["window"].as_f64().is_some_and(|w| w >= 0.5));

    // The plan made during the burst applies, and cures the symptom.
    assert_code(
        &ns.tune(state.path(), &["apply", "--yes", plan_arg]),
        0,
        "apply",
    );
    assert_eq!(ns.sysctl("net.core.somaxconn"), "4096");
    let before = listen_overflows(&ns);
    let timeouts = in_netns(&ns, || burst_against(&listener_with_backlog(1024), 30));
    let overflows = listen_overflows(&ns) - before;
    eprintln!("symptom after: burst of 30 → {timeouts} timed out, ListenOverflows +{overflows}");
    assert_eq!((timeouts, overflows), (0, 0));
    assert_code(&ns.tune(state.path(), &["rollback"]), 0, "rollback");
    assert_eq!(ns.sysctl("net.core.somaxconn"), "8");
}

/// The two values the two-step plans touch.
fn two_values(ns: &Netns) -> (String, String) {
    (
        ns.sysctl("net.core.somaxconn"),
        ns.sysctl("net.ipv4.ip_local_port_range"),
    )
}

/// A plan file with two changes whose second one the kernel refuses
/// (ip_local_port_range may not start below ip_unprivileged_port_start = 1024).
/// A playbook whose rules set net.core.somaxconn to 5000, then ip_local_port_range
/// to `second_after`.
fn two_step_playbook(dir: &std::path::Path, second_after: &str) -> std::path::PathBuf {
    let path = dir.join("two-steps.yml");
    let text = format!(
        "name: test
description: Two sysctl changes, for the apply machinery.
rules:
  - id: first
    description: somaxconn is not 5000.
    detect:
      sysctl: {{key: net.core.somaxconn, not_equals: 5000}}
    fix:
      - set_sysctl: {{key: net.core.somaxconn, value: 5000}}
  - id: second
    description: the port range is not the one asked for.
    detect:
      sysctl: {{key: net.ipv4.ip_local_port_range, not_equals: \"{second_after}\"}}
    fix:
      - set_sysctl: {{key: net.ipv4.ip_local_port_range, value: \"{second_after}\"}}
"
    );
    std::fs::write(&path, text).expect("write playbook");
    path
}

/// A saved plan of the two steps of [`two_step_playbook`], made in the namespace.
fn two_step_plan(ns: &Netns, dir: &std::path::Path, second_after: &str) -> std::path::PathBuf {
    let playbook = two_step_playbook(dir, second_after);
    let plan = dir.join("plan.json");
    let out = ns.tune(
        dir,
        &[
            "plan",
            "-p",
            playbook.to_str().expect("utf8"),
            "-o",
            plan.to_str().expect("utf8"),
        ],
    );
    assert_code(&out, 0, "plan -o");
    plan
}

#[test]
fn kernel_refusal_mid_apply_rolls_back_earlier_steps() {
    if !require_netns() {
        return;
    }
    let ns = Netns::new("refuse");
    let state = tempfile::tempdir().expect("tempdir");
    let before = two_values(&ns);
    let plan_file = two_step_plan(&ns, state.path(), "1000 2000");
    let out = ns.tune(
        state.path(),
        &["apply", "--yes", plan_file.to_str().expect("utf8")],
    );
    assert_code(&out, 3, "apply with a refused value");
    let t = text(&out);
    assert!(t.contains("the kernel refused \"1000 2000\""), "{t}");
    assert!(t.contains("restored sysctl:net.core.somaxconn"), "{t}");
    let after = two_values(&ns);
    assert_eq!(before, after, "every value as it was");
    let history = text(&ns.tune(state.path(), &["history"]));
    assert!(history.contains("failed, rolled back"), "{history}");
}

#[test]
fn crash_mid_apply_is_recovered_by_rollback() {
    if !require_netns() {
        return;
    }
    let ns = Netns::new("crash");
    let state = tempfile::tempdir().expect("tempdir");
    let before = two_values(&ns);
    let plan_file = two_step_plan(&ns, state.path(), "10000 65535");
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(support::tune_bin())
        .args(["apply", "--yes", plan_file.to_str().expect("utf8")])
        .env("TUNE_STATE_DIR", state.path())
        .env("TUNE_FAULT_CRASH_AFTER_STEP", "0")
        .output()
        .expect("run");
    assert!(!out.status.success(), "the process must have aborted");
    assert_eq!(ns.sysctl("net.core.somaxconn"), "5000", "step 0 happened");
    let history = text(&ns.tune(state.path(), &["history"]));
    assert!(history.contains("interrupted"), "{history}");
    // A new apply is refused until the interrupted one is dealt with.
    let playbook = two_step_playbook(state.path(), "10000 65535");
    let again = ns.tune(
        state.path(),
        &["apply", "--yes", "-p", playbook.to_str().expect("utf8")],
    );
    assert_code(&again, 1, "apply after a crash");
    assert!(text(&again).contains("is interrupted"), "{}", text(&again));
    assert_code(&ns.tune(state.path(), &["rollback"]), 0, "rollback");
    let after = two_values(&ns);
    assert_eq!(before, after);
}

#[test]
fn drift_refuses_apply_and_rollback_unless_forced() {
    if !require_netns() {
        return;
    }
    let ns = Netns::new("drift");
    let state = tempfile::tempdir().expect("tempdir");
    let plan_file = state.path().join("plan.json");
    let plan_arg = plan_file.to_str().expect("utf8");
    ns.set_sysctl("net.ipv4.ip_local_port_range", "20000 20050");
    assert_code(
        &ns.tune(state.path(), &["plan", "-o", plan_arg, "-p", PORTS]),
        0,
        "plan -o",
    );
    ns.set_sysctl("net.ipv4.ip_local_port_range", "20000 20100");
    let out = ns.tune(state.path(), &["apply", "--yes", plan_arg]);
    assert_code(&out, 1, "apply of a stale plan");
    assert!(
        text(&out).contains(
            "sysctl:net.ipv4.ip_local_port_range: expected \"20000 20050\", found \"20000 20100\""
        ),
        "{}",
        text(&out)
    );
    assert_eq!(ns.sysctl("net.ipv4.ip_local_port_range"), "20000 20100");

    assert_code(
        &ns.tune(state.path(), &["apply", "--yes", "-p", PORTS]),
        0,
        "apply",
    );
    ns.set_sysctl("net.ipv4.ip_local_port_range", "30000 60000");
    let out = ns.tune(state.path(), &["rollback"]);
    assert_code(&out, 1, "rollback after drift");
    assert!(text(&out).contains("use --force"), "{}", text(&out));
    assert_eq!(ns.sysctl("net.ipv4.ip_local_port_range"), "30000 60000");
    assert_code(
        &ns.tune(state.path(), &["rollback", "--force"]),
        0,
        "forced rollback",
    );
    assert_eq!(ns.sysctl("net.ipv4.ip_local_port_range"), "20000 20100");
}

#[test]
fn lock_and_confirmation_guard_apply() {
    if !require_netns() {
        return;
    }
    let ns = Netns::new("lock");
    let state = tempfile::tempdir().expect("tempdir");
    ns.set_sysctl("net.ipv4.ip_local_port_range", "20000 20050");

    // No terminal and no --yes: refused, nothing changed.
    let out = ns.tune(state.path(), &["apply", "-p", PORTS]);
    assert_code(&out, 1, "apply without --yes on a non-terminal");
    assert!(text(&out).contains("pass --yes"), "{}", text(&out));
    assert_eq!(ns.sysctl("net.ipv4.ip_local_port_range"), "20000 20050");

    // Another apply holds the lock.
    std::fs::create_dir_all(state.path().join("transactions")).expect("mkdir");
    let mut lock = std::fs::File::create(state.path().join("lock")).expect("lock file");
    lock.lock().expect("take lock");
    let out = ns.tune(state.path(), &["apply", "--yes", "-p", PORTS]);
    assert_code(&out, 1, "apply while locked");
    assert!(
        text(&out).contains("another tune apply or rollback is running"),
        "{}",
        text(&out)
    );
    assert_eq!(ns.sysctl("net.ipv4.ip_local_port_range"), "20000 20050");
    lock.unlock().expect("unlock");
    let _ = lock.flush();
    assert_code(
        &ns.tune(state.path(), &["apply", "--yes", "-p", PORTS]),
        0,
        "apply once unlocked",
    );
}

#[test]
fn a_global_sysctl_refused_inside_a_namespace_rolls_back() {
    if !require_netns() {
        return;
    }
    let ns = Netns::new("eperm");
    if !support::require(
        std::path::Path::new("/proc/sys/net/netfilter/nf_conntrack_max").exists(),
        "needs the nf_conntrack module loaded on the host",
    ) {
        return;
    }
    let state = tempfile::tempdir().expect("tempdir");
    let somaxconn = ns.sysctl("net.core.somaxconn");
    let max = ns.sysctl("net.netfilter.nf_conntrack_max");
    let doubled = max.parse::<u64>().expect("number") * 2;
    let playbook = state.path().join("global.yml");
    let yaml = format!(
        "name: t
description: A per-namespace sysctl, then a global one.
rules:
  - id: a
    description: somaxconn is not 5000.
    detect:
      sysctl: {{key: net.core.somaxconn, not_equals: 5000}}
    fix:
      - set_sysctl: {{key: net.core.somaxconn, value: 5000}}
  - id: b
    description: the conntrack table could be larger.
    detect:
      sysctl: {{key: net.netfilter.nf_conntrack_max, below: {doubled}}}
    fix:
      - set_sysctl: {{key: net.netfilter.nf_conntrack_max, at_least: {doubled}}}
"
    );
    std::fs::write(&playbook, yaml).expect("write playbook");
    let file = state.path().join("plan.json");
    let file_arg = file.to_str().expect("utf8");
    let planned = ns.tune(
        state.path(),
        &[
            "plan",
            "-p",
            playbook.to_str().expect("utf8"),
            "-o",
            file_arg,
        ],
    );
    assert_code(&planned, 0, "plan -o");
    let out = ns.tune(state.path(), &["apply", "--yes", file_arg]);
    assert_code(&out, 3, "apply of a global sysctl inside a namespace");
    assert!(
        text(&out).contains("global sysctls are writable only from the initial network namespace"),
        "{}",
        text(&out)
    );
    assert_eq!(
        ns.sysctl("net.core.somaxconn"),
        somaxconn,
        "first step undone"
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_max")
            .expect("host value")
            .trim(),
        max,
        "the host's global value is untouched"
    );
}

#[test]
fn apply_on_a_terminal_asks_first() {
    if !require_netns() || !support::require(support::have("script"), "needs `script` for a pty") {
        return;
    }
    let ns = Netns::new("ask");
    let state = tempfile::tempdir().expect("tempdir");
    ns.set_sysctl("net.ipv4.ip_local_port_range", "20000 20050");
    let ask = |answer: &str| {
        let command = format!(
            "ip netns exec {} {} --state-dir {} apply -p {PORTS}",
            ns.name,
            support::tune_bin().display(),
            state.path().display()
        );
        let mut child = std::process::Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run script");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(answer.as_bytes()).expect("answer");
        drop(stdin);
        let out = child.wait_with_output().expect("wait");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let declined = ask("n\n");
    assert!(
        declined.contains("Apply 1 change(s)? [y/N]") && declined.contains("Not applied."),
        "{declined}"
    );
    assert_eq!(ns.sysctl("net.ipv4.ip_local_port_range"), "20000 20050");
    let accepted = ask("y\n");
    assert!(accepted.contains("transaction 1 applied"), "{accepted}");
    assert_eq!(ns.sysctl("net.ipv4.ip_local_port_range"), "10000 65535");
}

/// Where openat2(2) is missing (Linux before 5.6) or refused by a seccomp filter
/// (ENOSYS, or EPERM from older container runtimes), sysctls are still read and
/// written, through the resolved-path check: strace makes the kernel's openat2 fail.
#[test]
fn sysctls_are_read_and_written_where_openat2_is_refused() {
    if !require_netns() || !support::require(support::have("strace"), "needs strace") {
        return;
    }
    let ns = Netns::new("openat2");
    ns.set_sysctl("net.ipv4.ip_local_port_range", "20000 20050");
    for errno in ["ENOSYS", "EPERM"] {
        let state = tempfile::tempdir().expect("tempdir");
        let under_strace = |args: &[&str]| {
            let inject = format!("inject=openat2:error={errno}");
            let mut all = vec!["-f", "-qq", "-o", "/dev/null", "-e", "trace=openat2", "-e"];
            all.push(&inject);
            let bin = support::tune_bin();
            all.push(bin.to_str().expect("utf-8 path"));
            all.extend_from_slice(args);
            let out = std::process::Command::new("ip")
                .args(["netns", "exec", &ns.name, "strace"])
                .args(&all)
                .env("NO_COLOR", "1")
                .env("TUNE_STATE_DIR", state.path())
                .stdin(std::process::Stdio::null())
                .output()
                .expect("run strace");
            (out, inject)
        };
        let (plan, what) = under_strace(&["plan", "--detailed-exitcode", "-p", PORTS]);
        assert_code(&plan, 2, &what);
        assert!(
            text(&plan).contains("width 51 < 10000"),
            "{what}: {}",
            text(&plan)
        );
        let (apply, what) = under_strace(&["apply", "--yes", "-p", PORTS]);
        assert_code(&apply, 0, &what);
        assert_eq!(
            ns.sysctl("net.ipv4.ip_local_port_range"),
            "10000 65535",
            "{what}"
        );
        let (rollback, what) = under_strace(&["rollback"]);
        assert_code(&rollback, 0, &what);
        assert_eq!(
            ns.sysctl("net.ipv4.ip_local_port_range"),
            "20000 20050",
            "{what}"
        );
    }
}
