//! Commit-confirmed applies and probes, against a real kernel in throwaway network
//! namespaces: the deadline rolls back, `tune confirm` keeps, a killed watchdog is
//! finished by the next `tune history`, the watchdog outlives its shell, a failing
//! preflight changes nothing, and a probe that moves 200 kB through a 3-namespace path
//! rolls back an MTU change that breaks it.
//!
//! Sysctl cases use `net.core.somaxconn` (per namespace) inside a namespace tune runs
//! in; state dirs are temp dirs. Needs root and iproute2 (fails with CI=true).

mod support;
use support::{Netns, require_netns, text, tune_bin};

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const KEY: &str = "net.core.somaxconn";

/// Raises somaxconn to 5000 (a new namespace has 4096).
const RAISE: &str = "name: raise
description: raise somaxconn
variables:
  to:
    default: 5000
    description: the new value
rules:
  - id: somaxconn
    description: somaxconn below the new value
    detect:
      sysctl:
        key: net.core.somaxconn
        below: ${to}
    fix:
      - set_sysctl:
          key: net.core.somaxconn
          at_least: ${to}
";

struct Case {
    ns: Netns,
    state: tempfile::TempDir,
    playbook: PathBuf,
}

impl Case {
    fn new(tag: &str) -> Case {
        let state = tempfile::tempdir().unwrap();
        let playbook = state.path().join("raise.yml");
        std::fs::write(&playbook, RAISE).unwrap();
        let case = Case {
            ns: Netns::new(tag),
            state,
            playbook,
        };
        assert_eq!(case.value(), "4096");
        case
    }

    fn state_dir(&self) -> PathBuf {
        self.state.path().join("state")
    }

    fn tune(&self, args: &[&str]) -> Output {
        let out = self.ns.tune(&self.state_dir(), args);
        eprintln!("tune {args:?} -> {:?}\n{}", out.status.code(), text(&out));
        out
    }

    fn apply_args<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["apply", "--yes", "-p", self.playbook.to_str().unwrap()];
        args.extend_from_slice(extra);
        args
    }

    fn apply(&self, extra: &[&str]) -> Output {
        self.tune(&self.apply_args(extra))
    }

    fn value(&self) -> String {
        self.ns.sysctl(KEY)
    }

    fn history(&self) -> String {
        let out = self.tune(&["history"]);
        assert_eq!(out.status.code(), Some(0));
        text(&out)
    }

    fn journal(&self, id: u64) -> Vec<Value> {
        let path = self
            .state_dir()
            .join("transactions")
            .join(format!("{id:06}.jsonl"));
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// The pid in apply's "(watchdog pid N)".
fn watchdog_pid_in(output: &str) -> i32 {
    output
        .split("watchdog pid ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no watchdog pid in {output}"))
}

fn watchdog_pid(out: &Output) -> i32 {
    watchdog_pid_in(&String::from_utf8_lossy(&out.stdout))
}

/// The process's state letter, process group and session, or None once it is gone
/// (a zombie counts as gone).
fn proc_stat(pid: i32) -> Option<(char, i32, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, after) = stat.rsplit_once(')')?;
    let f: Vec<&str> = after.split_whitespace().collect();
    let state = f.first()?.chars().next()?;
    let parsed = (state, f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?);
    (state != 'Z').then_some(parsed)
}

fn wait_gone(pid: i32, within: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if proc_stat(pid).is_none() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn without_a_confirm_the_deadline_rolls_back() {
    if !require_netns() {
        return;
    }
    let case = Case::new("cf-expire");
    let out = case.apply(&["--confirm-within", "3s"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("pending confirmation: run `tune confirm 1` before"));
    assert_eq!(case.value(), "5000");
    assert!(case.history().contains("pending confirmation (deadline "));
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(case.value(), "4096", "the watchdog restored the value");
    assert!(case.history().contains("rolled back: not confirmed"));
    let events = case.journal(1);
    assert!(events.iter().any(|e| e["event"] == "not_confirmed"));
    assert_eq!(events.last().unwrap()["event"], "rollback_end");
    // A confirm after the fact is refused.
    let out = case.tune(&["confirm", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("rolled back: not confirmed, not pending"));
}

#[test]
fn a_confirm_before_the_deadline_keeps_the_change() {
    if !require_netns() {
        return;
    }
    let case = Case::new("cf-keep");
    let out = case.apply(&["--confirm-within", "3s"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let pid = watchdog_pid(&out);
    // A second apply is refused while the first waits for its confirm.
    let again = case.apply(&["--var", "to=6000"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again).contains("transaction 1 is pending confirmation"));
    std::thread::sleep(Duration::from_secs(1));
    let out = case.tune(&["confirm"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out).contains("transaction 1 confirmed"));
    assert!(wait_gone(pid, Duration::from_secs(2)), "the watchdog exits");
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(case.value(), "5000", "kept after the deadline");
    let history = case.history();
    assert!(history.contains("confirmed"), "{history}");
    assert!(!history.contains("rolled back"), "{history}");
    // A confirmed transaction can still be rolled back by hand.
    assert_eq!(case.tune(&["rollback"]).status.code(), Some(0));
    assert_eq!(case.value(), "4096");
}

#[test]
fn a_killed_watchdog_is_finished_by_the_next_history() {
    if !require_netns() {
        return;
    }
    let case = Case::new("cf-kill");
    let out = case.apply(&["--confirm-within", "2s"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let pid = watchdog_pid(&out);
    // SAFETY: kill has no memory preconditions; pid is the watchdog tune just started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    assert!(wait_gone(pid, Duration::from_secs(2)));
    // Before the deadline nothing happens.
    assert!(case.history().contains("pending confirmation"));
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(case.value(), "5000", "nobody rolled it back yet");
    // From another namespace (the host's, sharing the state dir) it is left alone.
    let out = support::tune(&case.state_dir())
        .arg("history")
        .output()
        .unwrap();
    assert!(
        text(&out).contains("applied in another network namespace"),
        "{}",
        text(&out)
    );
    assert_eq!(case.value(), "5000");
    let history = case.history();
    assert!(
        history.contains("transaction 1 was not confirmed by its deadline")
            && history.contains("rolling it back first"),
        "{history}"
    );
    assert!(history.contains("rolled back: not confirmed"), "{history}");
    assert_eq!(case.value(), "4096");
}

#[test]
fn a_failing_preflight_probe_changes_nothing() {
    if !require_netns() {
        return;
    }
    let case = Case::new("cf-pre");
    for probe in [
        vec!["--probe-cmd", "echo gateway unreachable; exit 1"],
        vec!["--probe", "tcp:127.0.0.1:9,timeout=1s"],
    ] {
        let mut args = probe.clone();
        args.extend(["--confirm-within", "30s"]);
        let out = case.apply(&args);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(text(&out).contains("failed before anything changed"));
        assert_eq!(case.value(), "4096");
        assert!(case.history().contains("No transactions"));
    }
    let out = case.apply(&["--probe", "udp:1.2.3.4:53"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("unknown probe kind"));
}

#[test]
fn a_probe_failing_after_the_apply_rolls_back_with_its_output() {
    if !require_netns() {
        return;
    }
    let case = Case::new("cf-post");
    // Healthy before (4096), unhealthy after (5000); runs in the namespace tune runs in.
    let probe = "v=$(cat /proc/sys/net/core/somaxconn); echo somaxconn is $v; test $v -lt 5000";
    let out = case.apply(&["--probe-cmd", probe]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("FAILED: exit status: 1: somaxconn is 5000"));
    assert_eq!(case.value(), "4096");
    assert!(case.history().contains("rolled back: probe failed"));

    // Under --confirm-within the watchdog keeps probing: a later failure rolls back too.
    let flag = case.state.path().join("broken");
    let probe = format!("test ! -e {}", flag.display());
    let out = case.apply(&[
        "--confirm-within",
        "30s",
        "--probe-interval",
        "200ms",
        "--probe-cmd",
        &probe,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(case.value(), "5000");
    std::fs::write(&flag, "").unwrap();
    let start = Instant::now();
    while case.value() != "4096" && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(case.value(), "4096", "the watchdog's probe rolled it back");
    assert!(case.history().contains("rolled back: probe failed"));
    let log = std::fs::read_to_string(case.state_dir().join("watchdog/000002.log")).unwrap();
    assert!(log.contains("failed"), "{log}");
}

#[test]
fn the_watchdog_survives_the_shell_that_started_it() {
    if !require_netns() {
        return;
    }
    let case = Case::new("cf-shell");
    let out_file = case.state.path().join("apply.out");
    let apply: Vec<String> = case
        .apply_args(&["--confirm-within", "3s"])
        .iter()
        .map(|a| format!("'{a}'"))
        .collect();
    let script = format!(
        "ip netns exec {} {} {} > {} 2>&1; sleep 60",
        case.ns.name,
        tune_bin().display(),
        apply.join(" "),
        out_file.display()
    );
    // The shell leads its own process group, as a login shell over SSH does.
    let mut shell = Command::new("sh")
        .args(["-c", &script])
        .env("TUNE_STATE_DIR", case.state_dir())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let shell_pgid = shell.id() as i32;
    let start = Instant::now();
    let output = loop {
        let s = std::fs::read_to_string(&out_file).unwrap_or_default();
        if s.contains("watchdog pid") || start.elapsed() > Duration::from_secs(10) {
            break s;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let pid = watchdog_pid_in(&output);
    let (_, pgrp, session) = proc_stat(pid).expect("the watchdog runs");
    assert_ne!(
        pgrp, shell_pgid,
        "the watchdog is not in the shell's process group"
    );
    assert_eq!(session, pid, "the watchdog leads its own session");
    // SAFETY: kill has no memory preconditions; the group is the shell we started.
    assert_eq!(unsafe { libc::kill(-shell_pgid, libc::SIGKILL) }, 0);
    let _ = shell.wait();
    std::thread::sleep(Duration::from_millis(300));
    assert!(proc_stat(pid).is_some(), "the watchdog outlived its shell");
    assert_eq!(case.value(), "5000");
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(case.value(), "4096", "and rolled back at the deadline");
    assert!(case.history().contains("rolled back: not confirmed"));
}

// ---- the MTU case: client — router — server --------------------------------------

/// Sets the router's server-side MTU to 576: full-size frames from the server are then
/// dropped without an ICMP error (the field symptom of the MTU playbook).
const SHRINK: &str = "name: shrink
description: a wrong MTU
variables: {}
rules:
  - id: rs0
    description: the router's server-side link gets MTU 576
    detect:
      link:
        name: rs0
        kind: [veth]
        below: 9000
    fix:
      - set_mtu:
          value: 576
";

const SERVER: &str = "10.232.2.2:8080";

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(out.status.success(), "ip {args:?}: {}", text(&out));
}

fn mtu(ns: &Netns, dev: &str) -> u64 {
    let out = Command::new("ip")
        .args(["-n", &ns.name, "-j", "link", "show", dev])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0]["mtu"].as_u64().unwrap()
}

fn path3() -> (Netns, Netns, Netns) {
    let (client, router, server) = (
        Netns::new("cf-cli"),
        Netns::new("cf-rtr"),
        Netns::new("cf-srv"),
    );
    let link = |a: &str, an: &Netns, b: &str, bn: &Netns| {
        ip(&[
            "link", "add", a, "netns", &an.name, "type", "veth", "peer", "name", b, "netns",
            &bn.name,
        ])
    };
    link("cr0", &client, "rc0", &router);
    link("rs0", &router, "sr0", &server);
    for (ns, script) in [
        (
            &client,
            "ip addr add 10.232.1.2/24 dev cr0; ip link set cr0 up; ip route add default via 10.232.1.1",
        ),
        (
            &router,
            "ip addr add 10.232.1.1/24 dev rc0; ip link set rc0 up; ip addr add 10.232.2.1/24 dev rs0; ip link set rs0 up; echo 1 > /proc/sys/net/ipv4/ip_forward",
        ),
        (
            &server,
            // One MTU-sized frame per send, as a NIC without segmentation offload.
            "ip addr add 10.232.2.2/24 dev sr0; ip link set sr0 up gso_max_segs 1; ip route add default via 10.232.2.1",
        ),
    ] {
        ns.sh(&format!("set -e; {script}"));
    }
    // The server answers a request line `N` with N bytes.
    server.run(|| {
        let listener = TcpListener::bind(SERVER).unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || serve(stream));
            }
        });
    });
    (client, router, server)
}

fn serve(mut stream: TcpStream) {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while stream.read(&mut byte).is_ok_and(|k| k == 1) && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    let n: usize = String::from_utf8_lossy(&line).trim().parse().unwrap_or(0);
    let _ = stream.write_all(&vec![b'x'; n]);
}

fn at_of(events: &[Value], name: &str) -> f64 {
    events
        .iter()
        .find(|e| e["event"] == name)
        .and_then(|e| e["at"].as_f64())
        .unwrap_or_else(|| panic!("no {name} event"))
}

#[test]
fn an_mtu_change_that_breaks_a_200_kb_transfer_is_rolled_back() {
    if !require_netns() {
        return;
    }
    let (client, router, _server) = path3();
    let state = tempfile::tempdir().unwrap();
    let playbook = state.path().join("shrink.yml");
    std::fs::write(&playbook, SHRINK).unwrap();
    let state_dir = state.path().join("state");
    let probe = format!("tcp:{SERVER},timeout=2s,expect=200000,send=200000\\n");
    let gateway = "icmp:10.232.2.2";
    let out = Command::new(tune_bin())
        .env("NO_COLOR", "1")
        .args(["--state-dir", state_dir.to_str().unwrap()])
        .args(["apply", "--yes", "-p", playbook.to_str().unwrap()])
        .args(["--netns", &router.name, "--probe-netns", &client.name])
        .args([
            "--probe",
            gateway,
            "--probe",
            &probe,
            "--confirm-within",
            "1m",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let all = text(&out);
    eprintln!("{all}");
    assert_eq!(out.status.code(), Some(3), "{all}");
    assert!(all.contains("preflight: tcp:10.232.2.2:8080 (expecting 200000 bytes"));
    assert!(all.contains("preflight: icmp:10.232.2.2 ok: 10.232.2.2: echo reply"));
    assert!(all.contains("applied link:rs0: mtu 1500 → mtu 576"));
    assert!(
        all.contains("FAILED: 10.232.2.2:8080: connected in") && all.contains("of 200000 bytes"),
        "the probe's output is in the report"
    );
    assert!(all.contains("restored link:rs0: mtu 1500"));
    assert_eq!(mtu(&router, "rs0"), 1500, "the original MTU is back");
    let events: Vec<Value> = std::fs::read_to_string(state_dir.join("transactions/000001.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let failed = at_of(&events, "probe_failed");
    let restored = at_of(&events, "rollback_end");
    eprintln!(
        "rolled back {:.3} s after the failed probe",
        restored - failed
    );
    assert!(
        restored - failed < 1.0,
        "rolled back {:.3} s after the failed probe",
        restored - failed
    );
    let history = Command::new(tune_bin())
        .args(["--state-dir", state_dir.to_str().unwrap(), "history"])
        .output()
        .unwrap();
    assert!(text(&history).contains("rolled back: probe failed"));
    // The transfer passes again through the restored path.
    let got = client.run(|| {
        let mut s = TcpStream::connect(SERVER).unwrap();
        s.write_all(b"200000\n").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        buf.len()
    });
    assert_eq!(got, 200_000);
}

#[test]
fn icmp_probes_use_a_ping_socket_when_allowed_and_a_raw_one_otherwise() {
    if !require_netns() {
        return;
    }
    let case = Case::new("cf-icmp");
    // A new namespace allows ping sockets to no group, so root falls back to raw.
    assert_eq!(case.ns.sysctl("net.ipv4.ping_group_range"), "1 0");
    let out = case.apply(&["--probe", "icmp:127.0.0.1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("preflight: icmp:127.0.0.1 ok: 127.0.0.1: echo reply in"));
    assert!(text(&out).contains("(raw socket)"));
    assert_eq!(case.tune(&["rollback"]).status.code(), Some(0));
    case.ns
        .set_sysctl("net.ipv4.ping_group_range", "0 2147483647");
    let out = case.apply(&["--probe", "icmp:127.0.0.1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("(ping socket)"), "{}", text(&out));
    assert_eq!(case.tune(&["rollback"]).status.code(), Some(0));
    // No route to the host: refused before anything changes.
    let out = case.apply(&["--probe", "icmp:10.99.99.99,timeout=300ms"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("probe icmp:10.99.99.99 failed before anything changed"));
    assert_eq!(case.value(), "4096");
}
