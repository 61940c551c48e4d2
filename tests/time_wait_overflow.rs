//! Real-kernel test of the `time-wait-overflow` playbook: a throwaway network namespace
//! with `net.ipv4.tcp_max_tw_buckets = 100` takes 1,000 short connections, so the
//! kernel destroys closing sockets instead of keeping them in TIME_WAIT and
//! `TcpExt.TCPTimeWaitOverflow` grows. The plan fires, apply raises the ceiling, the
//! same load no longer overflows, and rollback restores exactly 100. Needs root and
//! iproute2 (skips elsewhere, fails in CI).
//!
//! The kernel also prints "TCP: time wait bucket table overflow" (rate-limited) to the
//! host-wide kernel log; the rule fires on the namespace's counter either way, so the
//! host's log cannot change the outcome.

mod support;

use std::path::PathBuf;
use std::process::Output;

use support::{Netns, require_netns, short_connections, text};

fn playbook() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("playbooks/time-wait-overflow.yml")
        .display()
        .to_string()
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn assert_code(out: &Output, want: i32, what: &str) {
    assert_eq!(code(out), want, "{what}: {}", text(out));
}

/// TcpExt.TCPTimeWaitOverflow of the namespace, read from /proc/net/netstat there.
/// Short connections until `stop` is set: the TIME_WAIT table stays full and keeps
/// overflowing while a plan samples the counter.
fn short_connections_until(stop: &std::sync::atomic::AtomicBool) {
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        short_connections(50);
    }
}

fn tw_overflows(ns: &Netns) -> u64 {
    ns.tcp_ext("TCPTimeWaitOverflow")
}

#[test]
fn time_wait_overflow_detected_fixed_and_rolled_back() {
    if !require_netns() {
        return;
    }
    let ns = Netns::new("twov");
    let state = tempfile::tempdir().expect("tempdir");
    let pb = playbook();
    ns.set_sysctl("net.ipv4.tcp_max_tw_buckets", "100");

    let before = tw_overflows(&ns);
    ns.run(|| short_connections(1000));
    let grown = tw_overflows(&ns) - before;
    let in_time_wait = ns.sh("ss -Htan state time-wait | wc -l");
    eprintln!(
        "tcp_max_tw_buckets=100, 1000 connections: TCPTimeWaitOverflow +{grown}, TIME_WAIT sockets {}",
        in_time_wait.trim()
    );
    assert!(grown >= 800, "TCPTimeWaitOverflow grew by only {grown}");

    // The rule fires on growth during its sample, so the overflow must go on while
    // the plan samples: connections keep coming on a second thread.
    let plan_file = state.path().join("plan.json").display().to_string();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let plan = std::thread::scope(|scope| {
        let flag = stop.clone();
        let load = scope.spawn(|| ns.run(move || short_connections_until(&flag)));
        let plan = ns.tune(
            state.path(),
            &["plan", "--detailed-exitcode", "-p", &pb, "-o", &plan_file],
        );
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        load.join().expect("load thread");
        plan
    });
    assert_code(&plan, 2, "plan with TIME_WAIT overflow");
    let shown = text(&plan);
    assert!(
        shown.contains("time-wait-overflow/time-wait-bucket-overflow  fired")
            && shown.contains("counter TcpExt.TCPTimeWaitOverflow growth = +")
            && shown.contains("sysctl:net.ipv4.tcp_max_tw_buckets  100 → 262144"),
        "{shown}"
    );
    assert!(!shown.contains("tcp_tw_recycle"), "{shown}");

    // The reviewed plan: apply re-derives it with the counter readings the plan
    // recorded (the overflow has stopped by now, and must not make it refuse).
    assert_code(
        &ns.tune(state.path(), &["apply", "--yes", &plan_file]),
        0,
        "apply",
    );
    assert_eq!(ns.sysctl("net.ipv4.tcp_max_tw_buckets"), "262144");
    // The sockets of the first round still hold at most 100 buckets: the same load
    // again fits below the new ceiling.
    let before = tw_overflows(&ns);
    ns.run(|| short_connections(1000));
    let after = tw_overflows(&ns) - before;
    eprintln!("after apply, 1000 more connections: TCPTimeWaitOverflow +{after}");
    assert_eq!(after, 0, "overflow continued after the fix");
    assert_code(
        &ns.tune(state.path(), &["plan", "--detailed-exitcode", "-p", &pb]),
        0,
        "plan after apply (fix in effect)",
    );

    assert_code(&ns.tune(state.path(), &["rollback"]), 0, "rollback");
    assert_eq!(ns.sysctl("net.ipv4.tcp_max_tw_buckets"), "100");
}
