//! Real-kernel tests of the netlink fixes (MTU, root qdiscs) and of `--netns` /
//! `--netns-pid`, run through the built binary inside throwaway network namespaces.
//!
//! Faults are created with `ip` and `tc` (tests may shell out; `tune` never does) in
//! namespaces named `tune-nl-<pid>-<n>`, deleted by a Drop guard even when a test
//! fails. Nothing here touches the host's own interfaces or qdiscs. Needs root, `ip`
//! and `tc`; without them each test prints SKIP, or fails when CI=true.

mod support;
use support::require;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn prerequisites() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    require(root, "netlink tests need root (network namespaces)")
        && require(have("ip"), "netlink tests need `ip` (iproute2)")
        && require(have("tc"), "netlink tests need `tc` (iproute2)")
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A namespace deleted on drop.
struct Ns {
    name: String,
}

impl Ns {
    fn new() -> Ns {
        let name = format!(
            "tune-nl-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        run(&["ip", "netns", "add", &name]);
        let ns = Ns { name };
        ns.ip("link set lo up");
        ns
    }

    /// `ip -n NS ...`
    fn ip(&self, args: &str) {
        let mut full = vec!["ip", "-n", &self.name];
        full.extend(args.split_whitespace());
        run(&full);
    }

    /// `tc -n NS ...`
    fn tc(&self, args: &str) {
        let mut full = vec!["tc", "-n", &self.name];
        full.extend(args.split_whitespace());
        run(&full);
    }

    fn tc_show(&self) -> String {
        let out = Command::new("tc")
            .args(["-n", &self.name, "qdisc", "show"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn mtu(&self, dev: &str) -> u32 {
        let out = Command::new("ip")
            .args(["-n", &self.name, "-j", "link", "show", dev])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v[0]["mtu"].as_u64().unwrap() as u32
    }

    /// Runs `f` on a thread inside this namespace.
    fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let file = File::open(format!("/run/netns/{}", self.name)).unwrap();
        std::thread::spawn(move || {
            // SAFETY: file is an open nsfs fd; only this thread changes namespace.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn playbook(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("playbooks")
        .join(name)
}

struct Tune {
    state: tempfile::TempDir,
}

impl Tune {
    fn new() -> Tune {
        Tune {
            state: tempfile::tempdir().unwrap(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_tune"))
            .arg("--state-dir")
            .arg(self.state.path())
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        eprintln!(
            "tune {args:?} -> {:?}\n{}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn code(&self, args: &[&str]) -> i32 {
        self.run(args).status.code().unwrap_or(-1)
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Client — router — server, the router's server-side veth at MTU 576 while every
/// other interface uses 1500. The server's 1500-byte frames are dropped at that
/// interface without an ICMP error: the field symptom. (With only two namespaces the
/// small-MTU end would advertise a small MSS and TCP would quietly cope.)
struct Path3 {
    client: Ns,
    router: Ns,
    server: Ns,
}

const SERVER: &str = "10.231.2.2:8080";

impl Path3 {
    fn new() -> Path3 {
        let (client, router, server) = (Ns::new(), Ns::new(), Ns::new());
        run(&[
            "ip",
            "link",
            "add",
            "cr0",
            "netns",
            &client.name,
            "type",
            "veth",
            "peer",
            "name",
            "rc0",
            "netns",
            &router.name,
        ]);
        run(&[
            "ip",
            "link",
            "add",
            "rs0",
            "netns",
            &router.name,
            "type",
            "veth",
            "peer",
            "name",
            "sr0",
            "netns",
            &server.name,
        ]);
        client.ip("addr add 10.231.1.2/24 dev cr0");
        client.ip("link set cr0 up");
        client.ip("route add default via 10.231.1.1");
        router.ip("addr add 10.231.1.1/24 dev rc0");
        router.ip("link set rc0 up");
        router.ip("addr add 10.231.2.1/24 dev rs0");
        router.ip("link set rs0 up mtu 576");
        server.ip("addr add 10.231.2.2/24 dev sr0");
        server.ip("link set sr0 up");
        server.ip("route add default via 10.231.2.1");
        // One MTU-sized frame per send, as a NIC without segmentation offload sends
        // them (veth otherwise passes GSO super-frames regardless of MTU).
        server.ip("link set sr0 gso_max_segs 1");
        let fwd = router.spawn(|| std::fs::write("/proc/sys/net/ipv4/ip_forward", "1"));
        fwd.join().unwrap().unwrap();
        // The server answers each request line `N` with N bytes.
        let ready = server.spawn(|| {
            let listener = TcpListener::bind(SERVER).unwrap();
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    std::thread::spawn(move || serve(stream));
                }
            });
        });
        ready.join().unwrap();
        Path3 {
            client,
            router,
            server,
        }
    }

    /// Bytes received for a request of `n` bytes, within a bounded time.
    fn fetch(&self, n: usize) -> usize {
        self.client
            .spawn(move || {
                let addr: SocketAddr = SERVER.parse().unwrap();
                let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(3)) else {
                    return 0;
                };
                s.write_all(format!("{n}\n").as_bytes()).unwrap();
                s.set_read_timeout(Some(Duration::from_millis(500)))
                    .unwrap();
                let deadline = Instant::now() + Duration::from_secs(4);
                let mut got = 0;
                let mut buf = [0u8; 65536];
                while got < n && Instant::now() < deadline {
                    match s.read(&mut buf) {
                        Ok(0) => break,
                        Ok(k) => got += k,
                        Err(_) => {}
                    }
                }
                got
            })
            .join()
            .unwrap()
    }
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

#[test]
fn mtu_symptom_is_reproduced_detected_fixed_and_rolled_back() {
    if !prerequisites() {
        return;
    }
    let path = Path3::new();
    let _keep = (&path.server, &path.router);
    let tune = Tune::new();
    let mtu = playbook("mtu.yml");
    let mtu = mtu.to_str().unwrap();
    let r = path.router.name.clone();

    assert_eq!(path.fetch(100), 100, "a small request must pass");
    let stalled = path.fetch(200_000);
    assert!(
        stalled < 200_000,
        "the large transfer should stall at MTU 576, got {stalled} bytes"
    );

    let out = tune.run(&["plan", "-p", mtu, "--netns", &r, "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("link:rs0  mtu 576 → mtu 1500"),
        "{}",
        text(&out)
    );
    assert!(
        !text(&out).contains("link:rc0"),
        "only the low-MTU link is a change"
    );

    assert_eq!(tune.code(&["apply", "--yes", "-p", mtu, "--netns", &r]), 0);
    assert_eq!(path.router.mtu("rs0"), 1500);
    assert_eq!(
        path.fetch(200_000),
        200_000,
        "after the fix the large transfer passes"
    );
    assert_eq!(
        tune.code(&["plan", "-p", mtu, "--netns", &r, "--detailed-exitcode"]),
        0
    );

    let out = tune.run(&["history", "--format", "json"]);
    let history: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(history[0]["netns"]["name"], Value::String(r.clone()));

    // Rollback goes back into the recorded namespace without being told.
    assert_eq!(tune.code(&["rollback"]), 0);
    assert_eq!(path.router.mtu("rs0"), 576);
    assert_eq!(path.router.mtu("rc0"), 1500);
}

fn plan_json(out: &Output) -> Value {
    let mut v: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Where and when the plan was made differs; what it says must not.
    let obj = v.as_object_mut().unwrap();
    obj.remove("created_at");
    obj.remove("netns");
    obj.remove("made_from");
    v
}

#[test]
fn netns_and_netns_pid_plan_like_running_inside_the_namespace() {
    if !prerequisites() {
        return;
    }
    let ns = Ns::new();
    ns.ip("link add a0 type veth peer name b0");
    ns.ip("link set a0 mtu 576");
    ns.ip("link add c0 type veth peer name d0");
    ns.tc("qdisc add dev c0 root handle 1: tbf rate 1mbit burst 32kbit latency 400ms");
    let tune = Tune::new();
    let (mtu, netem) = (playbook("mtu.yml"), playbook("netem.yml"));
    let base = [
        "plan",
        "--format",
        "json",
        "-p",
        mtu.to_str().unwrap(),
        "-p",
        netem.to_str().unwrap(),
    ];
    let inside = Command::new("ip")
        .args(["netns", "exec", &ns.name, env!("CARGO_BIN_EXE_tune")])
        .args(base)
        .output()
        .unwrap();
    assert!(inside.status.success(), "{}", text(&inside));
    let by_name = tune.run(&[&base[..], &["--netns", &ns.name]].concat());
    let mut holder = Command::new("ip")
        .args(["netns", "exec", &ns.name, "sleep", "30"])
        .spawn()
        .unwrap();
    // `ip netns exec` enters the namespace before exec'ing sleep.
    let pid = holder.id().to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    let target = std::fs::metadata(format!("/run/netns/{}", ns.name)).unwrap();
    use std::os::unix::fs::MetadataExt;
    while std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .map(|m| m.ino())
        .ok()
        != Some(target.ino())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    let by_pid = tune.run(&[&base[..], &["--netns-pid", &pid]].concat());
    let _ = holder.kill();
    let _ = holder.wait();

    // All three record the same namespace, `ip netns exec` by its inode alone.
    let inode = |out: &Output| {
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["made_from"]["netns"]["inode"].as_u64()
    };
    assert_eq!(inode(&inside), Some(target.ino()));
    assert_eq!(inode(&by_name), Some(target.ino()));
    assert_eq!(inode(&by_pid), Some(target.ino()));
    let expected = plan_json(&inside);
    assert_eq!(
        expected["changes"].as_array().unwrap().len(),
        1,
        "{expected}"
    );
    assert_eq!(plan_json(&by_name), expected);
    assert_eq!(plan_json(&by_pid), expected);
    let recorded: Value = serde_json::from_slice(&by_pid.stdout).unwrap();
    assert_eq!(
        recorded["netns"]["pid"].as_u64(),
        Some(u64::from(holder.id()))
    );
}

const DELETE_TBF_HTB: &str = r#"
name: shaping
description: Deletes root tbf and htb qdiscs (a test of exact re-creation).
rules:
  - id: shaped
    description: A root tbf or htb qdisc.
    detect:
      any:
        - qdisc: {kind: tbf}
        - qdisc: {kind: htb}
    fix:
      - delete_root_qdisc: {kind: tbf}
      - delete_root_qdisc: {kind: htb}
"#;

fn qdisc_facts(tune: &Tune, pb: &str, ns: &str) -> Value {
    let out = tune.run(&["facts", "--format", "json", "-p", pb, "--netns", ns]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["qdiscs"].clone()
}

#[test]
fn tbf_and_htb_are_deleted_and_recreated_exactly() {
    if !prerequisites() {
        return;
    }
    let ns = Ns::new();
    ns.ip("link add t0 type veth peer name t1");
    ns.ip("link add h0 type veth peer name h1");
    ns.tc("qdisc add dev t0 root handle 1: tbf rate 1mbit burst 32kbit latency 400ms");
    ns.tc("qdisc add dev h0 root handle 5: htb default 10 r2q 7");
    let tune = Tune::new();
    let dir = tempfile::tempdir().unwrap();
    let pb = dir.path().join("shaping.yml");
    std::fs::write(&pb, DELETE_TBF_HTB).unwrap();
    let pb = pb.to_str().unwrap();
    let before_tc = ns.tc_show();
    let before = qdisc_facts(&tune, pb, &ns.name);

    let out = tune.run(&["plan", "-p", pb, "--netns", &ns.name, "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("qdisc:t0 root  tbf handle 1: parent root options "));
    assert!(text(&out).contains("qdisc:h0 root  htb handle 5: parent root options "));
    assert_eq!(
        tune.code(&["apply", "--yes", "-p", pb, "--netns", &ns.name]),
        0
    );
    let after_tc = ns.tc_show();
    assert!(
        !after_tc.contains("tbf") && !after_tc.contains("htb"),
        "{after_tc}"
    );
    assert_eq!(
        tune.code(&["plan", "-p", pb, "--netns", &ns.name, "--detailed-exitcode"]),
        0
    );

    assert_eq!(tune.code(&["rollback"]), 0);
    assert_eq!(ns.tc_show(), before_tc);
    assert_eq!(
        qdisc_facts(&tune, pb, &ns.name),
        before,
        "same kind, handle, parent, bytes"
    );

    // A qdisc that disappears between plan and apply: refused, nothing changed.
    let plan = dir.path().join("plan.json");
    let plan = plan.to_str().unwrap();
    assert_eq!(
        tune.code(&["plan", "-p", pb, "--netns", &ns.name, "-o", plan]),
        0
    );
    ns.tc("qdisc del dev h0 root");
    let out = tune.run(&["apply", "--yes", plan]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("qdisc:h0 root") && text(&out).contains("found \"(none)\""));
    assert!(
        ns.tc_show().contains("tbf 1: dev t0 root"),
        "tbf must be untouched"
    );
}

#[test]
fn vanished_renamed_and_refused_links_are_clear_errors() {
    if !prerequisites() {
        return;
    }
    let ns = Ns::new();
    ns.ip("link add a0 type veth peer name b0");
    ns.ip("link set a0 mtu 576");
    ns.ip("link set b0 mtu 600");
    let tune = Tune::new();
    let dir = tempfile::tempdir().unwrap();
    let mtu = playbook("mtu.yml");
    let mtu = mtu.to_str().unwrap();
    let plan_path = dir.path().join("plan.json");
    let plan = plan_path.to_str().unwrap();
    // Both ends declared at 1500, so both are raised (neither caps the other).
    let declared = [
        "--var",
        "expected_mtu_links=*0",
        "--var",
        "expected_mtu=1500",
    ];
    assert_eq!(
        tune.code(
            &[
                &["plan", "-p", mtu, "--netns", &ns.name, "-o", plan][..],
                &declared
            ]
            .concat()
        ),
        0
    );

    // An edited plan file (the second MTU changed) is refused before anything changes:
    // apply re-derives the plan from its playbooks.
    let mut edited: Value = serde_json::from_str(&std::fs::read_to_string(plan).unwrap()).unwrap();
    let changes = edited["changes"].as_array_mut().unwrap();
    assert_eq!(changes.len(), 2);
    changes[1]["mutation"]["after"] = Value::from(60);
    let refused = dir.path().join("refused.json");
    std::fs::write(&refused, edited.to_string()).unwrap();
    let out = tune.run(&["apply", "--yes", refused.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("the plan file was edited"),
        "{}",
        text(&out)
    );
    assert_eq!((ns.mtu("a0"), ns.mtu("b0")), (576, 600));

    // The kernel refuses an MTU below the device minimum on the second step: its
    // extended-ack message is reported and the first step is undone. No plan file can
    // ask for that any more, so the apply engine gets the changes directly.
    let changes: Vec<tune::plan::Change> =
        serde_json::from_value(edited["changes"].clone()).unwrap();
    let record = tune::kernel::netns::NetnsTarget::Name(ns.name.clone())
        .resolve()
        .unwrap();
    let state_dir = tempfile::tempdir().unwrap();
    let state = tune::apply::journal::StateDir::open(state_dir.path()).unwrap();
    let report = tune::kernel::netns::run_in(Some(&record), || {
        tune::apply::apply(
            &state,
            &mut tune::apply::SystemExecutor,
            "test",
            Some(&record),
            &changes,
        )
    })
    .unwrap();
    assert_eq!(
        report.status,
        tune::apply::journal::Status::FailedRolledBack,
        "{report:?}"
    );
    let error = report.error.clone().unwrap_or_default();
    assert!(error.contains("mtu less than device minimum"), "{report:?}");
    assert_eq!((ns.mtu("a0"), ns.mtu("b0")), (576, 600));

    // Renamed since the plan: refused before anything changes.
    ns.ip("link set b0 name b9");
    let out = tune.run(&["apply", "--yes", plan]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("now named \\\"b9\\\""),
        "{}",
        text(&out)
    );
    assert_eq!(ns.mtu("a0"), 576);

    // Vanished (the pair goes together).
    ns.ip("link del a0");
    let out = tune.run(&["apply", "--yes", plan]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("no longer exists"), "{}", text(&out));

    // A namespace that does not exist.
    let out = tune.run(&["plan", "-p", mtu, "--netns", "tune-nl-no-such-ns"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("does not exist"));
}

/// `ip -j link show` of one device in a namespace.
fn link_json(ns: &Ns, dev: &str) -> Value {
    let out = Command::new("ip")
        .args(["-n", &ns.name, "-j", "link", "show", dev])
        .output()
        .unwrap();
    serde_json::from_slice::<Value>(&out.stdout).unwrap()[0].clone()
}

#[test]
fn a_veth_below_its_peer_is_raised_to_it_and_rolled_back() {
    if !prerequisites() {
        return;
    }
    let ns = Ns::new();
    ns.ip("link add a0 type veth peer name b0");
    ns.ip("link set a0 mtu 1400");
    ns.ip("link set b0 mtu 1500");
    let tune = Tune::new();
    let mtu = playbook("mtu.yml");
    let mtu = mtu.to_str().unwrap();
    let plan = [
        "plan",
        "-p",
        mtu,
        "--netns",
        &ns.name,
        "--detailed-exitcode",
    ];
    let out = tune.run(&plan);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let shown = text(&out);
    assert!(shown.contains("link:a0  mtu 1400 → mtu 1500"), "{shown}");
    assert!(
        shown.contains("link a0 (veth) = mtu 1400  (mtu 1400 < 1500 of its veth peer b0)"),
        "both ends and their MTUs are the evidence: {shown}"
    );
    assert!(!shown.contains("link:b0"), "{shown}");

    assert_eq!(
        tune.code(&["apply", "--yes", "-p", mtu, "--netns", &ns.name]),
        0
    );
    assert_eq!((ns.mtu("a0"), ns.mtu("b0")), (1500, 1500));
    assert_eq!(tune.code(&plan), 0, "nothing left to do after the fix");
    assert_eq!(tune.code(&["rollback"]), 0);
    assert_eq!((ns.mtu("a0"), ns.mtu("b0")), (1400, 1500));
}

#[test]
fn a_port_below_its_bridge_is_raised_and_rolled_back() {
    if !prerequisites() {
        return;
    }
    let ns = Ns::new();
    // A bridge set to 1500 by hand with a port at 1400 (its peer at 1500).
    ns.ip("link add p0 type veth peer name q0");
    ns.ip("link add br0 type bridge");
    ns.ip("link set p0 master br0");
    ns.ip("link set p0 mtu 1400");
    ns.ip("link set br0 mtu 1500");
    let tune = Tune::new();
    let mtu = playbook("mtu.yml");
    let mtu = mtu.to_str().unwrap();
    let plan = [
        "plan",
        "-p",
        mtu,
        "--netns",
        &ns.name,
        "--detailed-exitcode",
    ];
    let out = tune.run(&plan);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let shown = text(&out);
    assert!(
        shown.contains("mtu 1400 < 1500 of its master br0 (bridge)"),
        "{shown}"
    );
    assert!(shown.contains("link:p0  mtu 1400 → mtu 1500"), "{shown}");
    assert_eq!(
        tune.code(&["apply", "--yes", "-p", mtu, "--netns", &ns.name]),
        0
    );
    assert_eq!((ns.mtu("p0"), ns.mtu("br0")), (1500, 1500));
    assert_eq!(tune.code(&plan), 0);
    assert_eq!(tune.code(&["rollback"]), 0);
    assert_eq!((ns.mtu("p0"), ns.mtu("br0")), (1400, 1500));
}

#[test]
fn a_vxlan_too_large_for_its_lower_device_comes_down_and_the_lower_device_stays() {
    if !prerequisites() {
        return;
    }
    let ns = Ns::new();
    // A VXLAN made at 1450 over a0, whose MTU was lowered to 1400 afterwards.
    ns.ip("link add a0 type veth peer name b0");
    ns.ip("link add vx0 type vxlan id 9 dstport 4789 dev a0");
    ns.ip("link set a0 mtu 1400");
    ns.ip("link set b0 mtu 1400");
    let tune = Tune::new();
    let mtu = playbook("mtu.yml");
    let mtu = mtu.to_str().unwrap();
    let plan = [
        "plan",
        "-p",
        mtu,
        "--netns",
        &ns.name,
        "--detailed-exitcode",
    ];
    let out = tune.run(&plan);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let shown = text(&out);
    assert!(
        shown.contains(
            "mtu 1450 > 1350 allowed by its lower device a0 (mtu 1400, less 50 bytes of vxlan over IPv4)"
        ),
        "{shown}"
    );
    assert!(shown.contains("link:vx0  mtu 1450 → mtu 1350"), "{shown}");
    assert!(
        !shown.contains("link:a0"),
        "the lower device is not raised: {shown}"
    );
    assert_eq!(
        tune.code(&["apply", "--yes", "-p", mtu, "--netns", &ns.name]),
        0
    );
    assert_eq!((ns.mtu("vx0"), ns.mtu("a0")), (1350, 1400));
    assert_eq!(tune.code(&plan), 0);
    // The kernel no longer accepts the old MTU above what a0 carries, so the fault
    // cannot be re-created: rollback says so (exit 4) and leaves the fix in place.
    let out = tune.run(&["rollback"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        text(&out).contains("the kernel refused MTU 1450 on vx0"),
        "{}",
        text(&out)
    );
    assert_eq!(ns.mtu("vx0"), 1350);
}

#[test]
fn a_veth_pair_at_1400_on_both_ends_is_left_alone() {
    if !prerequisites() {
        return;
    }
    let ns = Ns::new();
    ns.ip("link add a0 type veth peer name b0");
    ns.ip("link set a0 mtu 1400");
    ns.ip("link set b0 mtu 1400");
    ns.ip("link add br9 type bridge");
    ns.ip("link add c0 type veth peer name d0");
    ns.ip("link set c0 mtu 1400");
    ns.ip("link set d0 mtu 1400");
    ns.ip("link set c0 master br9");
    let tune = Tune::new();
    let mtu = playbook("mtu.yml");
    let out = tune.run(&[
        "plan",
        "-p",
        mtu.to_str().unwrap(),
        "--netns",
        &ns.name,
        "--detailed-exitcode",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("No rule fired"), "{}", text(&out));
}

#[test]
fn peers_in_two_namespaces_are_compared_from_either_side() {
    if !prerequisites() {
        return;
    }
    let (low, high) = (Ns::new(), Ns::new());
    run(&[
        "ip", "link", "add", "lo0", "netns", &low.name, "mtu", "1400", "type", "veth", "peer",
        "name", "hi0", "netns", &high.name, "mtu", "1500",
    ]);
    let tune = Tune::new();
    let mtu = playbook("mtu.yml");
    let mtu = mtu.to_str().unwrap();
    let out = tune.run(&[
        "plan",
        "-p",
        mtu,
        "--netns",
        &low.name,
        "--detailed-exitcode",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("mtu 1400 < 1500 of its veth peer hi0 in netns id"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("link:lo0  mtu 1400 → mtu 1500"));
    // From the larger end nothing is below its peer.
    let out = tune.run(&[
        "plan",
        "-p",
        mtu,
        "--netns",
        &high.name,
        "--detailed-exitcode",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // The facts record the remote end as read in its own namespace.
    let out = tune.run(&["facts", "-p", mtu, "--netns", &low.name, "--format", "json"]);
    let facts: Value = serde_json::from_slice(&out.stdout).unwrap();
    let lo0 = facts["links"]["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "lo0")
        .unwrap()
        .clone();
    assert_eq!(lo0["link_remote"]["value"]["name"], "hi0");
    assert_eq!(lo0["link_remote"]["value"]["mtu"], 1500);
    assert_eq!(lo0["link"], link_json(&high, "hi0")["ifindex"]);
    assert_eq!(
        tune.code(&["apply", "--yes", "-p", mtu, "--netns", &low.name]),
        0
    );
    assert_eq!((low.mtu("lo0"), high.mtu("hi0")), (1500, 1500));
}

#[test]
fn a_peer_elsewhere_that_an_unprivileged_user_cannot_read_leaves_the_rule_undecided() {
    if !(prerequisites() && require(have_setpriv(), "this test needs `setpriv` (util-linux)")) {
        return;
    }
    let (here, there) = (Ns::new(), Ns::new());
    run(&[
        "ip",
        "link",
        "add",
        "x0",
        "netns",
        &here.name,
        "mtu",
        "1400",
        "type",
        "veth",
        "peer",
        "name",
        "y0",
        "netns",
        &there.name,
        "mtu",
        "1500",
    ]);
    let state = tempfile::tempdir().unwrap();
    let mtu = playbook("mtu.yml");
    // Without CAP_NET_ADMIN the kernel does not answer about another namespace: the
    // rule is undecided, with the reason, rather than guessed either way.
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &here.name,
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
        ])
        .args(["--clear-groups", env!("CARGO_BIN_EXE_tune"), "plan", "-p"])
        .arg(&mtu)
        .env("TUNE_STATE_DIR", state.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let shown = text(&out);
    assert!(
        shown.contains("mtu/mtu-path-mismatch  undecided"),
        "{shown}"
    );
    assert!(shown.contains("veth peer of x0"), "{shown}");
    assert!(shown.contains("permission denied"), "{shown}");
}

fn have_setpriv() -> bool {
    Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn rollback_refuses_when_the_namespace_is_gone() {
    if !prerequisites() {
        return;
    }
    let ns = Ns::new();
    ns.ip("link add a0 type veth peer name b0");
    ns.ip("link set a0 mtu 576");
    let tune = Tune::new();
    let mtu = playbook("mtu.yml");
    let name = ns.name.clone();
    assert_eq!(
        tune.code(&[
            "apply",
            "--yes",
            "-p",
            mtu.to_str().unwrap(),
            "--netns",
            &name
        ]),
        0
    );
    let other = Ns::new();
    let out = tune.run(&["rollback", "--netns", &other.name]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("not to network namespace"),
        "{}",
        text(&out)
    );
    drop(ns);
    let out = tune.run(&["rollback"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("cannot be entered any more"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("nothing was changed"));
}
