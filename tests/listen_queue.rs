//! Real-kernel test of the `listen-backlog` playbook, per listener: in a throwaway
//! network namespace a listener that never accepts takes a burst of 50 connections,
//! so its accept queue fills and `TcpExt.ListenOverflows` grows. The plan names the
//! listener (this test process, its address and port) with its backlog and gives the
//! advice that fits which limit caps it:
//!
//! - listen(2) backlog 8 under the namespace's default somaxconn (4096): the
//!   application's own backlog is the limit, a report-only finding, no change;
//! - somaxconn 4 and listen(2) backlog 128: the kernel capped the backlog at 4, so
//!   raising net.core.somaxconn is proposed.
//!
//! The saved plan of the second applies (re-derived from the counter readings and
//! listeners it recorded) and rolls back to 4. Never tcp_max_syn_backlog (syncookies are on in a fresh namespace). The connects
//! are non-blocking and kept open, so the kernel keeps retransmitting their SYNs into
//! the full queue, and a second thread keeps adding connections while the plan
//! samples the counters. The kernel log is an empty file (`--kernel-log`), so the
//! host's log cannot change the outcome. Needs root and iproute2 (skips elsewhere,
//! fails in CI).

mod support;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use support::{Netns, require_netns, text};

fn playbook() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("playbooks/listen-backlog.yml")
        .display()
        .to_string()
}

/// A listener on 127.0.0.1 with this listen(2) backlog that never accepts, made in the
/// namespace (the socket keeps it).
fn listener(ns: &Netns, backlog: i32) -> TcpListener {
    ns.run(move || {
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        s.bind(&addr.into()).expect("bind");
        s.listen(backlog).expect("listen");
        TcpListener::from(s)
    })
}

/// `n` non-blocking connects to `addr`, kept open (their SYNs are retransmitted).
fn connects(addr: SocketAddr, n: usize) -> Vec<Socket> {
    (0..n)
        .map(|_| {
            let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
            s.set_nonblocking(true).expect("nonblocking");
            let _ = s.connect(&addr.into()); // EINPROGRESS
            s
        })
        .collect()
}

/// Fills `listener`'s accept queue with a burst of 50 connections, checks that
/// ListenOverflows grew, then runs `tune plan` (2 s sampling) while more connections
/// keep coming on a second thread.
fn overflow_and_plan(ns: &Netns, listener: &TcpListener, state: &Path, extra: &[&str]) -> Output {
    let addr = listener.local_addr().expect("local addr");
    let before = ns.tcp_ext("ListenOverflows");
    let burst = ns.run(move || connects(addr, 50));
    std::thread::sleep(Duration::from_millis(300));
    let grown = ns.tcp_ext("ListenOverflows") - before;
    eprintln!("burst of 50 connects to {addr}: ListenOverflows +{grown}");
    assert!(grown > 0, "ListenOverflows did not grow");

    let log = state.join("kernel.log");
    std::fs::write(&log, "").expect("empty kernel log");
    let log = log.display().to_string();
    let pb = playbook();
    let stop = Arc::new(AtomicBool::new(false));
    let plan = std::thread::scope(|scope| {
        let flag = stop.clone();
        let load = scope.spawn(|| {
            ns.run(move || {
                let mut held = Vec::new();
                while !flag.load(Ordering::SeqCst) {
                    held.extend(connects(addr, 5));
                    std::thread::sleep(Duration::from_millis(100));
                }
                held.len()
            })
        });
        let mut args = vec![
            "plan",
            "--detailed-exitcode",
            "-p",
            &pb,
            "--kernel-log",
            &log,
            "--sample-window",
            "2s",
        ];
        args.extend_from_slice(extra);
        let plan = ns.tune(state, &args);
        stop.store(true, Ordering::SeqCst);
        load.join().expect("load thread");
        plan
    });
    drop(burst);
    plan
}

#[test]
fn own_backlog_of_8_is_reported_not_changed() {
    if !require_netns() {
        return;
    }
    let ns = Netns::new("lq8");
    let state = tempfile::tempdir().expect("tempdir");
    assert_eq!(
        ns.sysctl("net.core.somaxconn"),
        "4096",
        "fresh namespace default"
    );
    let l = listener(&ns, 8);
    let port = l.local_addr().expect("addr").port();
    let plan = overflow_and_plan(&ns, &l, state.path(), &[]);
    let shown = text(&plan);
    eprintln!("{shown}");
    let pid = std::process::id();
    assert!(
        shown.contains("listen-backlog/listen-backlog-own-limit  fired, report only")
            && shown.contains("counter TcpExt.ListenOverflows growth = +")
            && shown.contains(&format!(
                "(pid {pid}) listens on 127.0.0.1:{port} with backlog 8 (its own limit; somaxconn 4096)"
            ))
            && shown.contains("accept queue 9 of 8: full now"),
        "{shown}"
    );
    assert!(
        !shown.contains("listen-queue-overflow") && !shown.contains("sysctl:net.core.somaxconn"),
        "somaxconn is not the limit: {shown}"
    );
    assert!(!shown.contains("tcp_max_syn_backlog"), "{shown}");
    assert!(!shown.contains("syncookies-off"), "{shown}");
    assert_eq!(
        plan.status.code(),
        Some(0),
        "a report-only finding changes nothing: {shown}"
    );
    assert_eq!(ns.sysctl("net.core.somaxconn"), "4096");
    drop(l);
}

#[test]
fn backlog_capped_by_somaxconn_4_proposes_the_raise() {
    if !require_netns() {
        return;
    }
    let ns = Netns::new("lq4");
    let state = tempfile::tempdir().expect("tempdir");
    ns.set_sysctl("net.core.somaxconn", "4");
    let l = listener(&ns, 128);
    let port = l.local_addr().expect("addr").port();
    let plan_file = state.path().join("plan.json").display().to_string();
    let plan = overflow_and_plan(&ns, &l, state.path(), &["-o", &plan_file]);
    let shown = text(&plan);
    eprintln!("{shown}");
    let pid = std::process::id();
    assert_eq!(plan.status.code(), Some(2), "changes pending: {shown}");
    assert!(
        shown.contains("listen-backlog/listen-queue-overflow  fired")
            && shown.contains("counter TcpExt.ListenOverflows growth = +")
            && shown.contains("accept queue 5 of 4: full now")
            && shown.contains(&format!(
                "(pid {pid}) listens on 127.0.0.1:{port} with backlog 4, capped by somaxconn 4"
            ))
            && shown.contains("sysctl:net.core.somaxconn  4 → 4096"),
        "{shown}"
    );
    assert!(!shown.contains("listen-backlog-own-limit"), "{shown}");
    assert!(!shown.contains("tcp_max_syn_backlog"), "{shown}");

    // The saved plan applies: apply re-derives it from the counter readings and the
    // listeners it recorded (the burst is over and the listener closed by now).
    drop(l);
    let apply = ns.tune(state.path(), &["apply", "--yes", &plan_file]);
    assert_eq!(apply.status.code(), Some(0), "apply: {}", text(&apply));
    assert_eq!(ns.sysctl("net.core.somaxconn"), "4096");
    let rollback = ns.tune(state.path(), &["rollback"]);
    assert_eq!(
        rollback.status.code(),
        Some(0),
        "rollback: {}",
        text(&rollback)
    );
    assert_eq!(ns.sysctl("net.core.somaxconn"), "4");
}
