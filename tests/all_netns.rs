//! `tune plan --all-netns` on real namespaces: five made here — three named
//! (`ip netns add`), two held only by a process (`unshare -n`), one of those inside a
//! cgroup named like a Docker container's — with a narrow port range in one and a tbf
//! qdisc on a veth in another. Other namespaces on the machine (the host's, other
//! tests') are planned too but never asserted on, and nothing is changed anywhere.
//! Needs root, iproute2, util-linux and cgroup v2 (skips elsewhere, fails in CI).

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{Netns, have, require, require_netns, text, tune};

const KEY: &str = "net.ipv4.ip_local_port_range";
const CONTAINER_ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Where the cgroup v2 hierarchy is mounted: /sys/fs/cgroup/unified on a hybrid
/// host, /sys/fs/cgroup on a pure v2 one.
fn cgroup2_root() -> Option<PathBuf> {
    ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.join("cgroup.controllers").exists())
}

fn inode(path: &str) -> u64 {
    std::fs::metadata(path).expect("stat namespace").ino()
}

/// A process in its own network namespace (`unshare -n sleep`), optionally started in
/// a cgroup this test made; killed (and the cgroup removed) on drop.
struct Holder {
    child: Child,
    cgroup: Option<PathBuf>,
}

impl Holder {
    fn start(cgroup: Option<PathBuf>) -> Holder {
        let script = match &cgroup {
            Some(dir) => format!(
                "echo $$ > '{}/cgroup.procs' && exec unshare -n sleep 300",
                dir.display()
            ),
            None => "exec unshare -n sleep 300".to_owned(),
        };
        let child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .spawn()
            .expect("start unshare");
        let holder = Holder { child, cgroup };
        let own = inode("/proc/self/ns/net");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(holder.ns_path())
            .map(|m| m.ino())
            .unwrap_or(own)
            == own
        {
            assert!(Instant::now() < deadline, "unshare -n did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        holder
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn ns_path(&self) -> String {
        format!("/proc/{}/ns/net", self.pid())
    }

    fn sh(&self, script: &str) {
        let out = Command::new("nsenter")
            .args(["-t", &self.pid().to_string(), "-n", "sh", "-c", script])
            .output()
            .expect("nsenter");
        assert!(out.status.success(), "`{script}`: {}", text(&out));
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.cgroup {
            let _ = std::fs::remove_dir(dir);
            if let Some(parent) = dir.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
    }
}

fn sections(out: &std::process::Output) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("plan --all-netns JSON: {e}: {}", text(out)));
    v.as_array().expect("a list of namespaces").clone()
}

fn section(all: &[serde_json::Value], inode: u64) -> &serde_json::Value {
    all.iter()
        .find(|s| s["netns"]["inode"] == inode)
        .unwrap_or_else(|| panic!("namespace with inode {inode} not planned: {all:#?}"))
}

fn findings(s: &serde_json::Value) -> Vec<String> {
    s["plan"]["findings"]
        .as_array()
        .map(|fs| {
            fs.iter()
                .map(|f| {
                    format!(
                        "{}/{}",
                        f["playbook"].as_str().unwrap_or(""),
                        f["rule"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_namespace_is_planned_and_named() {
    if !require_netns()
        || !require(
            have("unshare") && have("nsenter"),
            "util-linux (unshare, nsenter)",
        )
    {
        return;
    }
    let Some(cgroup2) = cgroup2_root() else {
        require(
            false,
            "a cgroup v2 hierarchy (/sys/fs/cgroup or /sys/fs/cgroup/unified)",
        );
        return;
    };
    let narrow = Netns::new("alln-ports");
    let plain = Netns::new("alln-plain");
    let peer = Netns::new("alln-peer");
    narrow.set_sysctl(KEY, "20000 20050");

    let parent = cgroup2.join(format!("tune-t-alln-{}", std::process::id()));
    let scope = parent.join(format!("docker-{CONTAINER_ID}.scope"));
    std::fs::create_dir_all(&scope).expect("create cgroup");
    let container = Holder::start(Some(scope.clone()));
    let bare = Holder::start(None);
    container.sh(&format!(
        "ip link add vt0 type veth peer name vt1 netns {} && tc qdisc add dev vt0 root tbf rate 1mbit burst 32kbit latency 400ms",
        peer.name
    ));

    let tmp = tempfile::tempdir().expect("tempdir");
    let tbf = tmp.path().join("tbf.yml");
    std::fs::write(
        &tbf,
        "name: tbf-seen\ndescription: a tbf root qdisc is seen\nrules:\n  - id: tbf-root\n    description: a tbf root qdisc\n    detect:\n      qdisc:\n        kind: tbf\n",
    )
    .expect("write playbook");
    let ports = concat!(env!("CARGO_MANIFEST_DIR"), "/playbooks/ephemeral-ports.yml");
    let out = tune(tmp.path())
        .args([
            "plan",
            "--all-netns",
            "--detailed-exitcode",
            "--format",
            "json",
            "-p",
            ports,
            "-p",
        ])
        .arg(&tbf)
        .output()
        .expect("run tune");
    // Exit 2: at least our narrow namespace has a change pending (other namespaces on
    // the machine may have theirs; none may make it an error).
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let all = sections(&out);

    let narrow_s = section(&all, inode(&format!("/run/netns/{}", narrow.name)));
    assert_eq!(narrow_s["netns"]["identity"], narrow.name.as_str());
    assert_eq!(findings(narrow_s), ["ephemeral-ports/narrow-port-range"]);
    assert_eq!(
        narrow_s["plan"]["changes"][0]["mutation"]["before"],
        "20000 20050"
    );

    let container_s = section(&all, inode(&container.ns_path()));
    assert_eq!(
        container_s["netns"]["identity"], "docker-0123456789ab",
        "{container_s:#}"
    );
    assert_eq!(container_s["netns"]["pid"], container.pid());
    assert!(
        container_s["netns"]["cgroup"]
            .as_str()
            .unwrap_or("")
            .ends_with(&format!("docker-{CONTAINER_ID}.scope")),
        "{container_s:#}"
    );
    assert_eq!(findings(container_s), ["tbf-seen/tbf-root"]);
    assert_eq!(
        container_s["plan"]["changes"].as_array().map(Vec::len),
        Some(0)
    );

    let bare_s = section(&all, inode(&bare.ns_path()));
    assert_eq!(
        bare_s["netns"]["identity"],
        format!("pid {} (sleep)", bare.pid()),
        "{bare_s:#}"
    );
    for quiet in [&plain.name, &peer.name] {
        let s = section(&all, inode(&format!("/run/netns/{quiet}")));
        assert_eq!(s["netns"]["identity"], quiet.as_str());
        assert!(findings(s).is_empty(), "{s:#}");
    }
    assert!(findings(bare_s).is_empty(), "{bare_s:#}");

    // The text output has one section per namespace, under its identity.
    let out = tune(tmp.path())
        .args(["plan", "--all-netns", "-p", ports])
        .output()
        .expect("run tune");
    let shown = text(&out);
    for name in [&narrow.name, &plain.name, &peer.name] {
        assert!(
            shown.contains(&format!("=== network namespace {name} (inode")),
            "{shown}"
        );
    }
    assert!(
        shown.contains("=== network namespace docker-0123456789ab (inode"),
        "{shown}"
    );

    // OpenMetrics: our namespaces as labels (parsed in tests/openmetrics.rs too).
    let out = tune(tmp.path())
        .args([
            "plan",
            "--all-netns",
            "--format",
            "openmetrics",
            "-p",
            ports,
        ])
        .output()
        .expect("run tune");
    let metrics = String::from_utf8_lossy(&out.stdout);
    assert!(
        metrics.contains(&format!(
            "tune_finding{{netns=\"{}\",playbook=\"ephemeral-ports\",rule=\"narrow-port-range\",status=\"planned\"}} 1",
            narrow.name
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("tune_pending_changes{netns=\"docker-0123456789ab\"} 0"),
        "{metrics}"
    );
    assert_eq!(narrow.sysctl(KEY), "20000 20050", "plan changed nothing");
}

/// `apply --all-netns` with a rule that can fire only where this test put an odd value
/// (somaxconn 3141), so no namespace the test did not make is touched.
#[test]
fn apply_all_netns_asks_then_changes_only_where_a_rule_fired() {
    if !require_netns() {
        return;
    }
    let odd = Netns::new("alln-odd");
    let other = Netns::new("alln-other");
    odd.set_sysctl("net.core.somaxconn", "3141");
    other.set_sysctl("net.core.somaxconn", "3000");
    let tmp = tempfile::tempdir().expect("tempdir");
    let playbook = tmp.path().join("odd.yml");
    std::fs::write(
        &playbook,
        "name: odd-somaxconn\ndescription: a test's odd value\nrules:\n  - id: odd\n    description: somaxconn is 3141\n    detect:\n      sysctl: {key: net.core.somaxconn, equals: 3141}\n    fix:\n      - set_sysctl: {key: net.core.somaxconn, value: 3142}\n",
    )
    .expect("write playbook");
    let state = tmp.path().join("state");
    let asked = tune(&state)
        .args(["apply", "--all-netns", "-p"])
        .arg(&playbook)
        .output()
        .expect("run tune");
    assert_eq!(asked.status.code(), Some(1), "{}", text(&asked));
    assert!(text(&asked).contains("--yes"), "{}", text(&asked));
    assert_eq!(odd.sysctl("net.core.somaxconn"), "3141");

    let applied = tune(&state)
        .args(["apply", "--all-netns", "--yes", "-p"])
        .arg(&playbook)
        .output()
        .expect("run tune");
    assert_eq!(applied.status.code(), Some(0), "{}", text(&applied));
    assert!(
        text(&applied).contains(&format!("=== network namespace {} (inode", odd.name)),
        "{}",
        text(&applied)
    );
    assert_eq!(odd.sysctl("net.core.somaxconn"), "3142");
    assert_eq!(other.sysctl("net.core.somaxconn"), "3000");

    let history = tune(&state)
        .args(["history", "--format", "json"])
        .output()
        .expect("run tune");
    let history: serde_json::Value = serde_json::from_slice(&history.stdout).expect("history");
    assert_eq!(history.as_array().map(Vec::len), Some(1), "{history:#}");
    assert_eq!(history[0]["netns"]["name"], odd.name.as_str());

    let back = tune(&state).arg("rollback").output().expect("run tune");
    assert_eq!(back.status.code(), Some(0), "{}", text(&back));
    assert_eq!(odd.sysctl("net.core.somaxconn"), "3141");
}

/// `--all-netns` plans the namespaces on namespace threads that each enter their share
/// in turn: each work runs in its own target (the caller's for `None`, also after the
/// thread was elsewhere), and a target that cannot be entered, or is no longer the one
/// recorded, gets an error and no work, never a run in the namespace the thread was in
/// before; the results keep the targets' order, on one thread or several.
#[test]
fn namespace_threads_enter_each_namespace_in_turn() {
    use tune::kernel::netns::{NetnsRecord, NetnsTarget, run_each, run_each_on};
    if !require_netns() {
        return;
    }
    let (a, b) = (Netns::new("each-a"), Netns::new("each-b"));
    let record = |ns: &Netns| NetnsTarget::Name(ns.name.clone()).resolve().unwrap();
    let (ra, rb) = (record(&a), record(&b));
    let (ia, ib) = (
        inode(&format!("/run/netns/{}", a.name)),
        inode(&format!("/run/netns/{}", b.name)),
    );
    let own = inode("/proc/thread-self/ns/net");
    let missing = NetnsRecord {
        name: Some(format!("{}-missing", a.name)),
        pid: None,
        inode: ia,
    };
    // B's name with another inode: B deleted and re-created since it was recorded.
    let replaced = NetnsRecord {
        inode: ib + 1,
        ..rb.clone()
    };
    let targets = [
        Some(&ra),
        None,
        Some(&rb),
        Some(&missing),
        Some(&replaced),
        Some(&ra),
        None,
    ];
    let here = || Ok(inode("/proc/thread-self/ns/net"));
    // run_each itself (one thread for so few), then 2, 3 and 7 threads: shares of
    // 4+3, 3+3+1 and one target each.
    for threads in [0, 2, 3, 7] {
        let runs = std::sync::atomic::AtomicUsize::new(0);
        let work = || {
            runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            here()
        };
        let results = if threads == 0 {
            run_each(&targets, work)
        } else {
            run_each_on(&targets, threads, work)
        }
        .expect("the namespace threads start");
        let got: Vec<Result<u64, String>> = results
            .into_iter()
            .map(|r| r.map_err(|e| format!("{e:#}")))
            .collect();
        assert_eq!(got[..3], [Ok(ia), Ok(own), Ok(ib)], "{threads}: {got:?}");
        let missing_error = got[3].as_ref().unwrap_err();
        assert!(missing_error.contains("does not exist"), "{missing_error}");
        let replaced_error = got[4].as_ref().unwrap_err();
        assert!(
            replaced_error.contains("no longer the namespace"),
            "{replaced_error}"
        );
        assert_eq!(got[5..], [Ok(ia), Ok(own)], "{threads}: {got:?}");
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 5);
    }
    // Many targets, as `--all-netns` on a host with containers: every result is its
    // own namespace's, in order, whatever the share of each thread.
    let many: Vec<Option<&NetnsRecord>> = (0..40)
        .map(|i| match i % 3 {
            0 => Some(&ra),
            1 => Some(&rb),
            _ => None,
        })
        .collect();
    let want: Vec<u64> = (0..40).map(|i| [ia, ib, own][i % 3]).collect();
    for threads in [1, 4, 8] {
        let seen = std::sync::Mutex::new(std::collections::HashSet::new());
        let got: Vec<u64> = run_each_on(&many, threads, || {
            seen.lock().unwrap().insert(std::thread::current().id());
            here()
        })
        .expect("the namespace threads start")
        .into_iter()
        .map(|r| r.expect("entered"))
        .collect();
        assert_eq!(got, want, "{threads} threads");
        assert_eq!(seen.lock().unwrap().len(), threads, "threads that worked");
    }
    // The calling thread never moved.
    assert_eq!(inode("/proc/thread-self/ns/net"), own);
}

/// `--root` is honoured with `--all-netns`: the boot files are read under it, so a
/// namespace whose live value differs from what they set gets the drift note naming
/// the file under the root (the host's own sysctl.d is never read).
#[test]
fn all_netns_reads_the_configuration_under_root() {
    if !require_netns() {
        return;
    }
    let narrow = Netns::new("alln-root");
    narrow.set_sysctl(KEY, "20000 20050");
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(root.path().join("etc/sysctl.d")).expect("mkdir");
    std::fs::write(
        root.path().join("etc/sysctl.d/50-tune-test-ports.conf"),
        format!("{KEY} = 30000 60999\n"),
    )
    .expect("write");
    let ports = concat!(env!("CARGO_MANIFEST_DIR"), "/playbooks/ephemeral-ports.yml");
    let out = tune(root.path())
        .args([
            "plan",
            "--all-netns",
            "--format",
            "json",
            "-p",
            ports,
            "--root",
        ])
        .arg(root.path())
        .output()
        .expect("run tune");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let all = sections(&out);
    let s = section(&all, inode(&format!("/run/netns/{}", narrow.name)));
    let notes = s["plan"]["notes"].to_string();
    assert!(
        notes.contains("persistence drift") && notes.contains("50-tune-test-ports.conf"),
        "{notes}"
    );
}
