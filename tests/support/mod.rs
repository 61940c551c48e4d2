//! Shared helpers for the integration tests: running the built binary, prerequisites
//! that skip on a laptop but fail in CI, and throwaway network namespaces.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A saved kernel log of a quiet boot (no OOM kill, no conntrack or SYN-flood line),
/// for tests that run playbooks reading the kernel log against the live system: the
/// host's own log must not decide them (`--kernel-log`).
pub const QUIET_KERNEL_LOG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/kernel-log/systemd-34250-dmesg.log"
);

/// The `tune` binary cargo built for this test run.
pub fn tune_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tune"))
}

/// A `tune` command with colour off and a private state dir.
pub fn tune(state_dir: &Path) -> Command {
    let mut cmd = Command::new(tune_bin());
    cmd.env("NO_COLOR", "1")
        .env("TUNE_STATE_DIR", state_dir)
        .stdin(Stdio::null());
    cmd
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// True when the prerequisite holds. Otherwise: a failure when `CI=true`, a printed
/// skip elsewhere (the caller returns early).
pub fn require(ok: bool, why: &str) -> bool {
    if ok {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("prerequisite missing in CI: {why}");
    }
    eprintln!("SKIP: {why}");
    false
}

pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Root and `ip`: what the namespace tests need.
pub fn require_netns() -> bool {
    require(is_root(), "network namespace tests need root")
        && require(have("ip"), "network namespace tests need iproute2 (`ip`)")
}

/// A named network namespace (`ip netns add`), deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "tune-t-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let st = Command::new("ip").args(["netns", "add", &name]).status();
        assert!(st.is_ok_and(|s| s.success()), "ip netns add {name}");
        let ns = Netns { name };
        ns.sh("ip link set lo up");
        ns
    }

    /// Runs a shell command inside the namespace; panics if it fails.
    pub fn sh(&self, script: &str) -> String {
        let out = self.sh_output(script);
        assert!(out.status.success(), "`{script}` failed: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn sh_output(&self, script: &str) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name, "sh", "-c", script])
            .output()
            .expect("run ip netns exec")
    }

    /// `tune` run inside the namespace.
    pub fn tune(&self, state_dir: &Path, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .arg(tune_bin())
            .args(args)
            .env("NO_COLOR", "1")
            .env("TUNE_STATE_DIR", state_dir)
            .stdin(Stdio::null())
            .output()
            .expect("run tune in namespace")
    }

    pub fn sysctl(&self, key: &str) -> String {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        self.sh(&format!("cat {path}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs `f` on a thread inside the namespace (setns), for sockets of the test's own.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open(format!("/run/netns/{}", self.name)).unwrap();
        std::thread::spawn(move || {
            // SAFETY: file is an open nsfs fd; only this thread changes namespace.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap()
    }

    /// A `TcpExt` counter of the namespace (its /proc/net/netstat), e.g. `ListenOverflows`.
    pub fn tcp_ext(&self, name: &str) -> u64 {
        let netstat = self.sh("cat /proc/net/netstat");
        let lines: Vec<&str> = netstat
            .lines()
            .filter(|l| l.starts_with("TcpExt:"))
            .collect();
        let [names, values] = lines.as_slice() else {
            panic!("no TcpExt pair in /proc/net/netstat: {netstat}");
        };
        let at = names
            .split_whitespace()
            .position(|n| n == name)
            .unwrap_or_else(|| panic!("no {name} column"));
        values
            .split_whitespace()
            .nth(at)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} value"))
    }

    pub fn set_sysctl(&self, key: &str, value: &str) {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        self.sh(&format!("echo '{value}' > {path}"));
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Adds to a facts snapshot made before the listen-backlog playbook read them (the
/// golden cases' `facts.json`) what its rules read besides ListenOverflows: the other
/// listen-queue counters flat at 0, no "Possible SYN flooding" line, syncookies on,
/// and nginx on :80 with its accept queue full at `backlog`.
pub fn add_listen_facts(facts: &mut serde_json::Value, backlog: u64) {
    for name in ["ListenDrops", "TCPReqQFullDrop", "TCPReqQFullDoCookies"] {
        let key = format!("TcpExt.{name}");
        facts["counters"][&key] = serde_json::json!({"value": 0});
        facts["counter_samples"][&key] =
            serde_json::json!({"value": {"first": 0, "window": 0.0, "min_growth": 1}});
    }
    facts["kernel_log"]["Possible SYN flooding on port"] = serde_json::json!({"value": []});
    facts["sysctls"]["net.ipv4.tcp_syncookies"] = serde_json::json!({"value": "1"});
    facts["listeners"] = serde_json::json!({"value": [{"address": "0.0.0.0", "port": 80,
        "queued": backlog + 1, "backlog": backlog, "inode": 4711,
        "owner": {"pid": 1234, "comm": "nginx"}}]});
}

/// `n` short TCP connections on loopback where the client closes first, so each
/// leaves a TIME_WAIT socket (or, past `tcp_max_tw_buckets`, counts an overflow).
/// Run it inside a namespace ([`Netns::run`]).
pub fn short_connections(n: usize) {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let addr = listener.local_addr().expect("addr");
    for _ in 0..n {
        let client = std::net::TcpStream::connect(addr).expect("connect");
        let (mut server, _) = listener.accept().expect("accept");
        drop(client);
        let mut buf = [0u8; 1];
        let _ = server.read(&mut buf); // EOF once the client's FIN arrives
    }
}
