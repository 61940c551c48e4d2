//! Saved kernel logs and the OOM records read from them, over a corpus of real
//! excerpts from public issue trackers (`tests/fixtures/oom/`, `tests/fixtures/kernel-log/`).
//!
//! Each fixture says where it comes from and what it must give, in `# ` header lines:
//! `expect-format`, `expect-lines`, `expect-first` (the first kernel message),
//! `expect-first-time` (RFC 3339), `expect-clock` (`wall` or `unknown`), and one
//! `expect-kill: pid=… comm=… [rss_kb=…] [time=…] [cgroup=…]` per memcg OOM kill, in
//! order (or `expect-no-kills`). Local times are read as UTC here; "now" is
//! 2026-12-01T12:00:00Z, which picks the year of year-less syslog lines. The CLI tests
//! at the end run the binary with `--kernel-log`, the way a post-mortem would.

mod support;

use std::path::{Path, PathBuf};

use tune::facts::{kmsg_file, oom};

const NOW: f64 = 1_796_126_400.0;

fn fixtures(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("fixture directory")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

fn header<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter_map(|l| l.strip_prefix(key))
        .filter_map(|v| v.strip_prefix(':').or((v.is_empty()).then_some(v)))
        .map(str::trim)
        .collect()
}

fn epoch(rfc3339: &str) -> f64 {
    humantime::parse_rfc3339(rfc3339)
        .expect("an RFC 3339 time in the fixture")
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

/// Checks one fixture; returns what is wrong with it.
fn check(path: &Path) -> Vec<String> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let text = std::fs::read_to_string(path).expect("fixture");
    let mut wrong = Vec::new();
    assert!(
        !header(&text, "source").is_empty() || !header(&text, "derived from").is_empty(),
        "{name}: every fixture names its source"
    );
    let log = match kmsg_file::parse(&text, NOW, &kmsg_file::utc_epoch) {
        Ok(log) => log,
        Err(e) => return vec![format!("{name}: {e}")],
    };
    for want in header(&text, "expect-format") {
        if log.format != want {
            wrong.push(format!("{name}: format {:?}, want {want:?}", log.format));
        }
    }
    for want in header(&text, "expect-lines") {
        if log.lines.len().to_string() != want {
            wrong.push(format!("{name}: {} lines, want {want}", log.lines.len()));
        }
    }
    for want in header(&text, "expect-first") {
        if log.lines.first().map(|l| l.message.as_str()) != Some(want) {
            wrong.push(format!("{name}: first line {:?}", log.lines.first()));
        }
    }
    for want in header(&text, "expect-first-time") {
        let got = log.lines.first().map(|l| l.time);
        if got.is_none_or(|t| (t - epoch(want)).abs() > 1e-3) {
            wrong.push(format!("{name}: first time {got:?}, want {want}"));
        }
    }
    for want in header(&text, "expect-clock") {
        let got = if log.clock_unknown.is_some() {
            "unknown"
        } else {
            "wall"
        };
        if got != want {
            wrong.push(format!("{name}: clock {got}, want {want}"));
        }
    }
    let expected = header(&text, "expect-kill");
    let no_kills = !header(&text, "expect-no-kills").is_empty();
    if expected.is_empty() && !no_kills {
        return wrong;
    }
    let kills = oom::parse(&log.lines);
    if kills.len() != expected.len() {
        wrong.push(format!(
            "{name}: {} kills, want {}: {kills:?}",
            kills.len(),
            expected.len()
        ));
        return wrong;
    }
    for (kill, want) in kills.iter().zip(expected) {
        for field in want.split_whitespace() {
            let Some((key, value)) = field.split_once('=') else {
                panic!("{name}: bad expectation {field:?}");
            };
            let ok = match key {
                "pid" => kill.pid.to_string() == value,
                "comm" => kill.comm == value,
                "rss_kb" => kill.rss.map(|b| (b / 1024).to_string()).as_deref() == Some(value),
                "time" => (kill.time - epoch(value)).abs() < 1e-3,
                "cgroup" => kill.cgroup.as_deref() == Some(value),
                other => panic!("{name}: unknown expectation {other}"),
            };
            if !ok {
                wrong.push(format!("{name}: {key} != {value} in {kill:?}"));
            }
        }
        if !want.contains("rss_kb=") && kill.rss.is_some() {
            wrong.push(format!("{name}: an rss nobody logged: {kill:?}"));
        }
    }
    wrong
}

#[test]
fn oom_corpus_names_the_process_the_kernel_killed() {
    let files = fixtures("oom");
    assert!(files.len() >= 10, "the OOM corpus went missing");
    let wrong: Vec<String> = files.iter().flat_map(|f| check(f)).collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_saved_log_format_parses_with_its_clock() {
    let mut files = fixtures("kernel-log");
    files.extend(fixtures("oom"));
    let wrong: Vec<String> = files.iter().flat_map(|f| check(f)).collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let formats: std::collections::BTreeSet<&str> = files
        .iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(f).ok()?;
            kmsg_file::parse(&text, NOW, &kmsg_file::utc_epoch)
                .ok()
                .map(|l| l.format)
        })
        .collect();
    assert_eq!(
        formats.into_iter().collect::<Vec<_>>(),
        vec![
            "dmesg",
            "dmesg -T",
            "journalctl -k -o short-monotonic",
            "syslog / journalctl -k",
            "syslog / journalctl -k, ISO 8601 times",
        ],
        "a format lost its corpus"
    );
}

fn fixture(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
        .display()
        .to_string()
}

fn bundled(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("playbooks")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn facts_from_a_saved_log_carry_the_victim_and_where_the_log_came_from() {
    let state = tempfile::tempdir().expect("tempdir");
    let log = fixture("oom/k8s-56891-centos7-3.10-dmesg-T.log");
    let out = support::tune(state.path())
        .env("TZ", "UTC")
        .args(["facts", "--format", "json", "-p", &bundled("jvm-heap.yml")])
        .args(["--kernel-log", &log])
        .output()
        .expect("run tune");
    assert!(out.status.success(), "{}", support::text(&out));
    let facts: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let kills = &facts["oom_kills"]["value"];
    assert_eq!(kills[0]["pid"], 28438, "{facts:#}");
    assert_eq!(kills[0]["comm"], "java");
    assert_eq!(kills[0]["time"], 1_512_605_115.0);
    let origin = &facts["kernel_log_origin"];
    assert_eq!(origin["source"], format!("{log} (dmesg -T)"));
    assert!(origin.get("clock_unknown").is_none());
}

#[test]
fn a_boot_relative_log_makes_windowed_conditions_unknown_not_now() {
    let state = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");
    // A raw dmesg of a java memcg kill: when it happened cannot be told.
    let log = dir.path().join("dmesg.txt");
    std::fs::write(
        &log,
        "[  100.000000] Memory cgroup out of memory: Kill process 7 (java) score 1 or sacrifice child\n\
         [  100.100000] Killed process 8 (java) total-vm:10kB, anon-rss:4kB, file-rss:0kB, shmem-rss:0kB\n",
    )
    .expect("write log");
    let out = support::tune(state.path())
        .args([
            "plan",
            "--detailed-exitcode",
            "-p",
            &bundled("jvm-heap.yml"),
        ])
        .args(["--kernel-log", &log.display().to_string()])
        .output()
        .expect("run tune");
    let text = support::text(&out);
    // The heap condition needs java processes of this host; whatever it finds, the
    // OOM half is unknown, never "0 kills" and never "killed within 24h".
    assert!(
        text.contains("seconds since a boot whose wall time it does not record"),
        "{text}"
    );
    assert!(!text.contains("killed within 24h"), "{text}");

    // The same log with no java kill: nothing matches, so nothing is unknown.
    std::fs::write(&log, "[  1.0] eth0: link up\n").expect("write log");
    let out = support::tune(state.path())
        .args(["facts", "--format", "json", "-p", &bundled("conntrack.yml")])
        .args(["--kernel-log", &log.display().to_string()])
        .output()
        .expect("run tune");
    assert!(out.status.success(), "{}", support::text(&out));
    let facts: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(
        facts["kernel_log_origin"]["clock_unknown"]
            .as_str()
            .is_some_and(|w| w.contains("dmesg")),
        "{facts:#}"
    );
}

#[test]
fn a_bad_kernel_log_is_an_error_and_changes_nothing() {
    let state = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("not-a-log");
    std::fs::write(&log, "hello\nworld\n").expect("write");
    for args in [
        vec!["plan", "--kernel-log", log.to_str().unwrap_or_default()],
        vec!["facts", "--kernel-log", "/nonexistent/kern.log"],
    ] {
        let out = support::tune(state.path())
            .args(&args)
            .output()
            .expect("run tune");
        assert_eq!(out.status.code(), Some(1), "{}", support::text(&out));
        assert!(
            support::text(&out).contains("kernel log"),
            "{}",
            support::text(&out)
        );
    }
    let out = support::tune(state.path())
        .args(["plan", "--facts", "/dev/null", "--sample-window", "1s"])
        .output()
        .expect("run tune");
    assert_eq!(out.status.code(), Some(1));
    assert!(support::text(&out).contains("cannot be combined"));
    // A snapshot with a saved log that is not a kernel log: refused before planning.
    let out = support::tune(state.path())
        .args(["plan", "--facts", "/dev/null", "--kernel-log"])
        .arg(&log)
        .output()
        .expect("run tune");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        support::text(&out).contains("kernel log"),
        "{}",
        support::text(&out)
    );
}

/// A `--kernel-log` file with a memcg OOM kill of java in `memcg` and one in another
/// cgroup, stamped now (ISO 8601, as rsyslog writes kern.log).
fn two_kills(dir: &Path, memcg: &str) -> String {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    let kill = |pid: u32, cg: &str| {
        format!(
            "{now} h kernel: java invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0\n\
             {now} h kernel: oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg={cg},task_memcg={cg},task=java,pid={pid},uid=0\n\
             {now} h kernel: Memory cgroup out of memory: Killed process {pid} (java) total-vm:1000kB, anon-rss:400kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:10kB oom_score_adj:0\n"
        )
    };
    let path = dir.join("kern.log");
    let text = kill(101, memcg) + &kill(202, "/docker/someone-else");
    std::fs::write(&path, text).expect("write log");
    path.display().to_string()
}

#[test]
fn kernel_log_evidence_in_a_namespace_is_host_wide_and_a_container_counts_its_own_kills() {
    if !support::require_netns() || !support::require(support::have("unshare"), "needs unshare") {
        return;
    }
    let state = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");

    // --netns: the log is the host's; the evidence says so.
    let ns = support::Netns::new("klog");
    let log = two_kills(dir.path(), "/docker/abc");
    let out = support::tune(state.path())
        .args(["plan", "--format", "json", "-p", &bundled("jvm-heap.yml")])
        .args(["--netns", &ns.name, "--kernel-log", &log])
        .output()
        .expect("run tune");
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("plan json: {}", support::text(&out)));
    let facts: Vec<String> = plan["findings"][0]["evidence"]
        .as_array()
        .map(|e| e.iter().map(|e| e["fact"].to_string()).collect())
        .unwrap_or_default();
    assert!(
        facts
            .iter()
            .any(|f| f.contains("memcg OOM kill of java (host-wide)")),
        "{plan:#}"
    );

    // --netns-pid of a process: only the kills in its memory cgroup count.
    let mut child = std::process::Command::new("unshare")
        .args(["-n", "sleep", "30"])
        .spawn()
        .expect("unshare");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let pid = child.id();
    let own = tune::facts::scope::memcg_of_pid(pid).expect("memcg of the child");
    let log = two_kills(dir.path(), &own);
    let out = support::tune(state.path())
        .args(["facts", "--format", "json", "-p", &bundled("jvm-heap.yml")])
        .args(["--netns-pid", &pid.to_string(), "--kernel-log", &log])
        .output()
        .expect("run tune");
    let _ = child.kill();
    let _ = child.wait();
    assert!(out.status.success(), "{}", support::text(&out));
    let facts: serde_json::Value = serde_json::from_slice(&out.stdout).expect("facts json");
    let kills = facts["oom_kills"]["value"].as_array().expect("kills");
    let pids: Vec<u64> = kills.iter().filter_map(|k| k["pid"].as_u64()).collect();
    if own == "/" {
        assert_eq!(pids, vec![101, 202], "the root cgroup holds every cgroup");
    } else {
        assert_eq!(pids, vec![101], "{facts:#}");
    }
    assert_eq!(facts["kernel_log_origin"]["memcg"], own.as_str());
    assert!(
        facts["kernel_log_origin"]["host_wide_for"]
            .as_str()
            .is_some_and(|n| n.contains(&pid.to_string())),
        "{facts:#}"
    );
}
