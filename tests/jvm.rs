//! Real-system tests of the JVM heap playbook: real java processes in real memory
//! cgroups (a uniquely named child of the cgroup v1 memory hierarchy, removed
//! afterwards), a real memcg OOM kill read back from /dev/kmsg, and `set_env`
//! plan/apply/rollback on real files in temporary directories, all through the built
//! binary. Needs root and `java` (with jdk.compiler, for single-file source launch);
//! a missing prerequisite is a visible skip, or a failure when `CI=true`.

mod support;
use support::require;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

const MIB: u64 = 1024 * 1024;
const V1_MEMORY: &str = "/sys/fs/cgroup/memory";

/// Tests that start java or look at all java processes run one at a time, so one
/// test's JVM never shows up in another's plan.
static JAVA: Mutex<()> = Mutex::new(());
static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn have_java() -> bool {
    Command::new("java")
        .arg("--list-modules")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("jdk.compiler"))
}

/// Root, java with a compiler, and the cgroup v1 memory controller.
fn require_java_cgroups() -> bool {
    require(is_root(), "JVM cgroup tests need root")
        && require(
            have_java(),
            "JVM cgroup tests need `java` with jdk.compiler (default-jdk-headless)",
        )
        && require(
            Path::new(V1_MEMORY).join("memory.limit_in_bytes").exists(),
            "JVM cgroup tests need the cgroup v1 memory controller at /sys/fs/cgroup/memory",
        )
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

fn lock() -> std::sync::MutexGuard<'static, ()> {
    JAVA.lock().unwrap_or_else(|e| e.into_inner())
}

/// A memory cgroup this test made; its processes are killed and it is removed on drop.
struct Cgroup {
    dir: PathBuf,
    name: String,
}

impl Cgroup {
    fn new(limit: u64) -> Cgroup {
        let name = unique("tune-jvm");
        let dir = Path::new(V1_MEMORY).join(&name);
        std::fs::create_dir(&dir).expect("create cgroup");
        let cg = Cgroup { dir, name };
        std::fs::write(cg.dir.join("memory.limit_in_bytes"), limit.to_string()).expect("limit");
        cg
    }

    /// The path as /proc/PID/cgroup and the kernel log name it.
    fn path(&self) -> String {
        format!("/{}", self.name)
    }

    /// Starts `program args` inside this cgroup from its first instruction.
    fn spawn(&self, program: &str, args: &[&str], env: &[(&str, &str)]) -> Child {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(r#"echo $$ > "$0/cgroup.procs" && exec "$@""#)
            .arg(&self.dir)
            .arg(program)
            .args(args)
            .env_remove("JAVA_TOOL_OPTIONS")
            .env_remove("JDK_JAVA_OPTIONS")
            .env_remove("_JAVA_OPTIONS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.spawn().expect("spawn java")
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            let procs = std::fs::read_to_string(self.dir.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                // SAFETY: plain kill(2) of a process in the cgroup this test made.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        eprintln!("warning: could not remove {}", self.dir.display());
    }
}

/// A child killed and reaped on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A Java program that prints its flags (when asked), says `ready`, then sleeps.
fn sleeper(dir: &Path) -> String {
    let src = dir.join("Sleep.java");
    std::fs::write(
        &src,
        "public class Sleep { public static void main(String[] a) throws Exception { \
         System.out.println(\"ready\"); System.out.flush(); Thread.sleep(600_000); } }\n",
    )
    .unwrap();
    src.display().to_string()
}

/// Waits for `ready`; returns the `MaxHeapSize` that -XX:+PrintFlagsFinal printed, if any.
fn wait_ready(child: &mut Child) -> Option<u64> {
    let out = child.stdout.take().expect("stdout piped");
    let mut max_heap = None;
    for line in BufReader::new(out).lines() {
        let line = line.expect("read java stdout");
        if line.trim() == "ready" {
            return max_heap;
        }
        if line.contains(" MaxHeapSize ") {
            max_heap = line
                .split('=')
                .nth(1)
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok());
        }
    }
    panic!("java exited before it was ready: {:?}", child.wait());
}

/// The lock, a temporary directory and the sleeper's source, when java tests can run.
fn java_setup() -> Option<(
    std::sync::MutexGuard<'static, ()>,
    tempfile::TempDir,
    String,
)> {
    if !require_java_cgroups() {
        return None;
    }
    let guard = lock();
    let tmp = tempfile::tempdir().unwrap();
    let src = sleeper(tmp.path());
    Some((guard, tmp, src))
}

fn tune(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tune"))
        .args(args)
        .env("TUNE_STATE_DIR", state)
        .env("NO_COLOR", "1")
        .output()
        .expect("run tune")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", text(o)))
}

const PLAYBOOK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/playbooks/jvm-heap.yml");

fn finding<'a>(plan: &'a Value, rule: &str) -> Option<&'a Value> {
    plan["findings"]
        .as_array()?
        .iter()
        .find(|f| f["rule"] == rule)
}

fn evidence_text(f: &Value) -> String {
    f["evidence"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|e| format!("{} = {} ({})", e["fact"], e["observed"], e["test"]))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

#[test]
fn bundled_plan_works_with_nothing_firing_as_root_and_as_nobody() {
    let _guard = lock();
    let state = tempfile::tempdir().unwrap();
    let s = state.path();
    let out = tune(
        s,
        &[
            "plan",
            "--format",
            "json",
            "--kernel-log",
            support::QUIET_KERNEL_LOG,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let plan = json(&out);
    assert!(
        finding(&plan, "heap-over-cgroup-limit").is_none(),
        "no java runs here, and no java was OOM-killed: {}",
        text(&out)
    );
    if !require(is_root(), "running as nobody needs root to switch users") {
        return;
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_tune"))
        .args(["plan", "--state-dir", "/nonexistent"])
        .env("NO_COLOR", "1")
        .output()
        .expect("setpriv");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn java_heap_above_its_cgroup_limit_is_detected_with_the_right_numbers() {
    let Some((_guard, tmp, src)) = java_setup() else {
        return;
    };
    let cg = Cgroup::new(384 * MIB);
    let mut child = cg.spawn("java", &["-Xmx1g", "-XX:+PrintFlagsFinal", &src], &[]);
    let real_max_heap = wait_ready(&mut child);
    assert_eq!(real_max_heap, Some(1024 * MIB), "the JVM's own MaxHeapSize");
    let pid = child.id();
    let java = Running(child);
    let env_file = tmp.path().join("tomcat");
    let env_arg = format!("env_file={}", env_file.display());
    let state = tmp.path().join("state");
    let plan_file = tmp.path().join("plan.json");
    let plan_arg = plan_file.display().to_string();
    let out = tune(
        &state,
        &[
            "plan",
            "-p",
            PLAYBOOK,
            "--var",
            &env_arg,
            "--format",
            "json",
            "--detailed-exitcode",
            "-o",
            &plan_arg,
            "--kernel-log",
            support::QUIET_KERNEL_LOG,
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let plan = json(&out);
    let f = finding(&plan, "heap-over-cgroup-limit").expect("the rule fires");
    assert_eq!(f["status"], "fired");
    let ev = evidence_text(f);
    assert!(
        ev.contains(&format!(
            "pid {pid}: max heap 1 GiB [-Xmx1g (command line)] + headroom 128 MiB vs cgroup limit 384 MiB of {}",
            cg.path()
        )),
        "{ev}"
    );
    assert!(ev.contains("1 GiB + 128 MiB > 384 MiB"), "{ev}");
    // -Xmx: 75% of 384 MiB is 288 MiB, but the limit minus the headroom is 256 MiB.
    let change = &plan["changes"][0]["mutation"];
    assert_eq!(change["kind"], "file");
    assert_eq!(change["before"], Value::Null, "the file does not exist yet");
    assert_eq!(change["after"], "JAVA_TOOL_OPTIONS=-Xmx256m\n");

    // The text plan shows the diff and when it takes effect.
    let out = tune(
        &state,
        &[
            "plan",
            "-p",
            PLAYBOOK,
            "--var",
            &env_arg,
            "--kernel-log",
            support::QUIET_KERNEL_LOG,
        ],
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("+JAVA_TOOL_OPTIONS=-Xmx256m"), "{shown}");
    assert!(shown.contains("--- /dev/null"), "{shown}");
    assert!(shown.contains("takes effect when the JVM"), "{shown}");

    // The saved plan is re-derived from live facts (the JVM still runs) and applied.
    let out = tune(&state, &["apply", "--yes", &plan_arg]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(&env_file).unwrap(),
        "JAVA_TOOL_OPTIONS=-Xmx256m\n"
    );
    drop(java);
    // Planned again with the process gone: nothing fires, nothing errs.
    let out = tune(
        &state,
        &[
            "plan",
            "-p",
            PLAYBOOK,
            "--var",
            &env_arg,
            "--detailed-exitcode",
            "--kernel-log",
            support::QUIET_KERNEL_LOG,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // The file did not exist: rollback removes it.
    let out = tune(&state, &["rollback"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!env_file.exists());
}

/// Command-line flags, environment, expected heap (0: only compare with the JVM).
type Case = (
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
    u64,
);

#[test]
fn ergonomic_heap_and_option_precedence_match_the_jvm() {
    let Some((_guard, _tmp, src)) = java_setup() else {
        return;
    };
    let cases: [Case; 3] = [
        (
            &[],
            &[("JAVA_TOOL_OPTIONS", "-XX:MaxRAMPercentage=90")],
            512 * MIB * 9 / 10,
        ),
        (
            &["-Xmx1g"],
            &[
                ("JAVA_TOOL_OPTIONS", "-Xmx2g"),
                ("_JAVA_OPTIONS", "-Xmx768m"),
            ],
            768 * MIB,
        ),
        (&["-XX:-UseContainerSupport"], &[], 0),
    ];
    for (flags, env, expected) in cases {
        let cg = Cgroup::new(512 * MIB);
        let mut args: Vec<&str> = flags.to_vec();
        args.extend(["-XX:+PrintFlagsFinal", &src]);
        let mut child = cg.spawn("java", &args, env);
        let real = wait_ready(&mut child).expect("PrintFlagsFinal output");
        let pid = child.id();
        let _java = Running(child);
        let facts = tune::facts::gather(&tune::facts::FactRequest {
            process_comms: BTreeSet::from(["java".to_owned()]),
            mem_total: true,
            ..Default::default()
        });
        let tune::facts::Fact::Value(procs) = facts.processes().clone() else {
            panic!("processes unknown as root");
        };
        let p = procs
            .iter()
            .find(|p| p.pid == pid)
            .expect("our java is seen");
        let tune::facts::Fact::Value(cgroup) = &p.memory_cgroup else {
            panic!("cgroup unknown: {:?}", p.memory_cgroup)
        };
        assert_eq!(cgroup.limit, Some(512 * MIB));
        assert_eq!(cgroup.path, cg.path());
        let a = tune::detect::jvm::assess(p, facts.mem_total(), 128 * MIB);
        let (tune::detect::jvm::Assessment::Exceeds(b) | tune::detect::jvm::Assessment::Fits(b)) =
            a
        else {
            panic!("not assessed: {a:?}")
        };
        let ours = b.heap.bytes;
        // HotSpot aligns the heap up to a few MiB; the reasoning is what is checked.
        assert!(
            real >= ours && real - ours <= 4 * MIB,
            "flags {flags:?} env {env:?}: JVM says {real}, tune says {ours} ({})",
            b.heap.how
        );
        if expected != 0 {
            assert!(ours.abs_diff(expected) < MIB, "{ours} vs {expected}");
        }
    }
}

#[test]
fn memcg_oom_kill_of_java_is_read_from_the_kernel_log_and_fires() {
    if !require_java_cgroups() {
        return;
    }
    let _guard = lock();
    let tmp = tempfile::tempdir().unwrap();
    // A private command name, so the kill this test causes on purpose does not make
    // the bundled playbook (which watches `java`) fire on this host for a day.
    let comm = format!("tunejvm{}", std::process::id() % 100_000);
    let java = tmp.path().join(&comm);
    std::os::unix::fs::symlink(
        std::fs::canonicalize(which_java()).expect("resolve java"),
        &java,
    )
    .unwrap();
    let cg = Cgroup::new(256 * MIB);
    let mut child = cg.spawn(
        java.to_str().unwrap(),
        &["-Xmx1g", "-Xms1g", "-XX:+AlwaysPreTouch", "-version"],
        &[],
    );
    let pid = child.id();
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "the OOM killer kills it"
    );

    // The kill record, straight from /dev/kmsg.
    let records = tune::facts::kmsg::read_all().expect("read /dev/kmsg as root");
    let boot = tune::facts::kmsg::boot_time();
    let lines: Vec<tune::facts::LogLine> = records
        .into_iter()
        .map(|r| tune::facts::LogLine {
            time: boot + r.usec as f64 / 1e6,
            message: r.message,
        })
        .collect();
    let kills = tune::facts::oom::parse(&lines);
    let kill = kills
        .iter()
        .find(|k| k.pid == pid)
        .expect("kill record in /dev/kmsg");
    assert_eq!(kill.comm, comm);
    assert_eq!(kill.cgroup.as_deref(), Some(cg.path().as_str()));
    assert_eq!(kill.limit, Some(256 * MIB));
    assert!(kill.rss.is_some_and(|r| r > 200 * MIB), "{kill:?}");

    // The bundled rule, watching this command name instead of `java`.
    let playbook = std::fs::read_to_string(PLAYBOOK)
        .unwrap()
        .replace("comm: java", &format!("comm: {comm}"));
    assert!(playbook.contains(&comm));
    let pb = tmp.path().join("jvm-heap.yml");
    std::fs::write(&pb, playbook).unwrap();
    let env_file = tmp.path().join("app.env");
    std::fs::write(&env_file, "JAVA_TOOL_OPTIONS=-Dfoo=bar\n").unwrap();
    let out = tune(
        &tmp.path().join("state"),
        &[
            "plan",
            "-p",
            pb.to_str().unwrap(),
            "--var",
            &format!("env_file={}", env_file.display()),
            "--var",
            "env_dialect=shell",
            "--format",
            "json",
            "--detailed-exitcode",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let plan = json(&out);
    let f = finding(&plan, "heap-over-cgroup-limit").expect("fires");
    let ev = evidence_text(f);
    assert!(
        ev.contains(&format!("pid {pid} ({comm}) killed at")) && ev.contains("limit 256 MiB"),
        "{ev}"
    );
    // 75% of 256 MiB is 192 MiB, the limit minus 128 MiB headroom is 128 MiB.
    assert_eq!(
        plan["changes"][0]["mutation"]["after"],
        "JAVA_TOOL_OPTIONS=\"-Dfoo=bar -Xmx128m\"\n"
    );
}

fn which_java() -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("java"))
                .find(|j| j.exists())
        })
        .expect("java on PATH")
}

/// A facts snapshot of this host for the playbook, with a synthetic memcg OOM kill
/// of java (512 MiB limit) added so the rule fires: env files are real, detection
/// input is fixed.
fn facts_with_kill(tmp: &Path, env_file: &Path) -> PathBuf {
    let out = tune(
        &tmp.join("state"),
        &[
            "facts",
            "-p",
            PLAYBOOK,
            "--var",
            &format!("env_file={}", env_file.display()),
            "--format",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mut facts = json(&out);
    let now = facts["collected_at"].as_f64().unwrap();
    facts["oom_kills"] = serde_json::json!({"value": [{
        "time": now - 60.0, "pid": 27281, "comm": "java",
        "cgroup": "/docker/0f2b", "limit": 512 * MIB, "rss": 537484u64 * 1024
    }]});
    let path = tmp.join("facts.json");
    std::fs::write(&path, serde_json::to_string(&facts).unwrap()).unwrap();
    path
}

/// `tune plan` of the playbook for this env file against a facts snapshot.
fn plan_from(state: &Path, env_file: &Path, facts: &Path, extra: &[&str]) -> Output {
    let var = format!("env_file={}", env_file.display());
    // Sourced by a start script: quoted values are read by shell rules.
    let mut args = vec![
        "plan",
        "-p",
        PLAYBOOK,
        "--var",
        &var,
        "--var",
        "env_dialect=shell",
        "--facts",
    ];
    args.push(facts.to_str().unwrap());
    args.extend(extra);
    tune(state, &args)
}

/// Plans from the facts, applies, checks the file, rolls back, checks it again.
fn apply_and_roll_back(env_file: &Path, expected_after: &str) {
    // The snapshot holds this host's processes: no test's JVM may be running meanwhile.
    let _guard = lock();
    let dir = env_file.parent().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let before = std::fs::read(env_file).ok();
    let before_meta = std::fs::metadata(env_file).ok();
    let facts = facts_with_kill(tmp.path(), env_file);
    let plan_file = tmp.path().join("plan.json");
    let out = plan_from(
        &state,
        env_file,
        &facts,
        &["--detailed-exitcode", "-o", plan_file.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("takes effect when the JVM"), "{shown}");
    let out = tune(&state, &["apply", "--yes", plan_file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(env_file).unwrap(), expected_after);
    if let Some(m) = &before_meta {
        let after = std::fs::metadata(env_file).unwrap();
        assert_eq!(
            after.permissions().mode() & 0o7777,
            m.permissions().mode() & 0o7777
        );
        assert_eq!((after.uid(), after.gid()), (m.uid(), m.gid()));
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".tune-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    // Planned again from fresh facts: the rule still fires, its fix is in effect.
    let facts = facts_with_kill(tmp.path(), env_file);
    let out = plan_from(&state, env_file, &facts, &["--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("fix already in effect"),
        "{}",
        text(&out)
    );
    let out = tune(&state, &["rollback"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(std::fs::read(env_file).ok(), before, "byte for byte");
    if let Some(m) = &before_meta {
        let now = std::fs::metadata(env_file).unwrap();
        assert_eq!(
            now.permissions().mode() & 0o7777,
            m.permissions().mode() & 0o7777
        );
        assert_eq!((now.uid(), now.gid()), (m.uid(), m.gid()));
    }
}

#[test]
fn env_file_with_comments_quotes_crlf_and_no_final_newline_round_trips() {
    if !require(is_root(), "apply/rollback need root") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("tomcat9");
    let original = "# Tomcat settings\r\nJAVA_HOME=/usr/lib/jvm/default-java\r\n\r\n# heap\r\nJAVA_TOOL_OPTIONS=\"-Dfile.encoding=UTF-8 -Xmx2g -XX:+UseG1GC -XX:MaxRAMPercentage=80\"  # tuned by hand\r\nCATALINA_OPTS='-Dx=1'";
    std::fs::write(&env_file, original).unwrap();
    std::fs::set_permissions(&env_file, std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(&env_file, Some(1234), Some(5678)).unwrap();
    let expected = original.replace(
        "-Xmx2g -XX:+UseG1GC -XX:MaxRAMPercentage=80",
        "-Xmx384m -XX:+UseG1GC",
    );
    apply_and_roll_back(&env_file, &expected);
}

#[test]
fn env_file_that_does_not_exist_is_created_and_rollback_removes_it() {
    if !require(is_root(), "apply/rollback need root") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("app.env");
    apply_and_roll_back(&env_file, "JAVA_TOOL_OPTIONS=-Xmx384m\n");
    assert!(!env_file.exists());
}

#[test]
fn env_file_symlink_inside_the_directory_is_followed_and_kept() {
    if !require(is_root(), "apply/rollback need root") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("tomcat9.conf");
    std::fs::write(
        &real,
        "JAVA_OPTS=-Djava.awt.headless=true\nJAVA_TOOL_OPTIONS=\n",
    )
    .unwrap();
    let link = dir.path().join("tomcat9");
    std::os::unix::fs::symlink("tomcat9.conf", &link).unwrap();
    apply_and_roll_back(
        &link,
        "JAVA_OPTS=-Djava.awt.headless=true\nJAVA_TOOL_OPTIONS=-Xmx384m\n",
    );
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn env_file_symlink_out_of_the_directory_unreadable_file_and_drift_are_refused() {
    if !require(
        is_root(),
        "needs root (to make a file nobody else can read)",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("default");
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir(&dir).unwrap();
    std::fs::create_dir(&elsewhere).unwrap();
    let secret = elsewhere.join("shadow");
    std::fs::write(&secret, "root:x:0\n").unwrap();
    let link = dir.join("tomcat9");
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    let facts = facts_with_kill(tmp.path(), &link);
    let state = tmp.path().join("state");
    let out = plan_from(&state, &link, &facts, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("refusing to follow it"),
        "{}",
        text(&out)
    );
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "root:x:0\n");

    // Unreadable for the user running plan: unknown, so the fix cannot be planned.
    let private = dir.join("private.env");
    std::fs::write(&private, "JAVA_TOOL_OPTIONS=-Xmx2g\n").unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_tune"))
        .args([
            "facts",
            "-p",
            PLAYBOOK,
            "--var",
            &format!("env_file={}", private.display()),
        ])
        .env("NO_COLOR", "1")
        .output()
        .expect("setpriv");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("permission denied"),
        "facts as nobody: {}",
        text(&out)
    );

    // Drift: the file changes between plan and apply; apply refuses and changes nothing.
    let facts = facts_with_kill(tmp.path(), &private);
    let plan_file = tmp.path().join("plan.json");
    let out = plan_from(
        &state,
        &private,
        &facts,
        &["-o", plan_file.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    std::fs::write(&private, "JAVA_TOOL_OPTIONS=-Xmx3g\n").unwrap();
    let out = tune(&state, &["apply", "--yes", plan_file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("changed since the plan"),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&private).unwrap(),
        "JAVA_TOOL_OPTIONS=-Xmx3g\n"
    );
}

#[test]
fn firing_without_an_env_file_says_which_variable_to_pass() {
    // The snapshot holds this host's processes: no test's JVM may be running meanwhile.
    let _guard = lock();
    let tmp = tempfile::tempdir().unwrap();
    let out = tune(
        &tmp.path().join("state"),
        &["facts", "-p", PLAYBOOK, "--format", "json"],
    );
    let mut facts = json(&out);
    facts["oom_kills"] = serde_json::json!({"value": [{
        "time": facts["collected_at"], "pid": 1, "comm": "java", "limit": 512 * MIB
    }]});
    let path = tmp.path().join("facts.json");
    std::fs::write(&path, serde_json::to_string(&facts).unwrap()).unwrap();
    let out = tune(
        &tmp.path().join("state"),
        &["plan", "-p", PLAYBOOK, "--facts", path.to_str().unwrap()],
    );
    // A finding waiting for input, not an error: exit 0 without --detailed-exitcode.
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("fired, fix needs input"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("needs input: set_env: no environment file given"),
        "{}",
        text(&out)
    );
    let detailed = |extra: &[&str]| {
        let mut args = vec!["plan", "-p", PLAYBOOK, "--detailed-exitcode", "--facts"];
        args.push(path.to_str().unwrap());
        args.extend(extra);
        tune(&tmp.path().join("state"), &args)
    };
    let out = detailed(&["--format", "json"]);
    assert_eq!(out.status.code(), Some(2), "pending work: {}", text(&out));
    let plan = json(&out);
    let f = finding(&plan, "heap-over-cgroup-limit").expect("fires");
    assert_eq!(f["fix"], "needs_input");
    assert!(
        f["needs_input"][0]
            .as_str()
            .is_some_and(|m| m.contains("--var env_file="))
    );
    assert_eq!(plan["errors"], serde_json::json!([]));
    assert_eq!(plan["changes"], serde_json::json!([]));

    // A broken playbook is still an error (exit 1), --detailed-exitcode or not.
    let broken = tmp.path().join("broken.yml");
    std::fs::write(&broken, "name: b\ndescription: d\nrules:\n  - id: r\n    detect: {counter: {name: X}}\n    fix: []\n").unwrap();
    let out = tune(
        &tmp.path().join("state"),
        &[
            "plan",
            "-p",
            broken.to_str().unwrap(),
            "--detailed-exitcode",
            "--facts",
            path.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    // apply with only needs-input findings changes nothing and says why.
    if !is_root() {
        return;
    }
    let plan_file = tmp.path().join("plan.json");
    let out = detailed(&["-o", plan_file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = tune(
        &tmp.path().join("state"),
        &["apply", plan_file.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("Nothing was changed: these findings need input")
            && text(&out)
                .contains("jvm-heap/heap-over-cgroup-limit: set_env: no environment file given"),
        "{}",
        text(&out)
    );
}

#[test]
fn env_file_named_by_a_variable_is_read_and_written_under_root() {
    let Some((_guard, tmp, src)) = java_setup() else {
        return;
    };
    // The playbook names the file as the system does; --root puts it under a temp dir.
    let system_path = "/etc/default/tune-root-test-app";
    assert!(
        !Path::new(system_path).exists(),
        "{system_path} exists on this host; the test would not show where tune writes"
    );
    let root = tmp.path().join("root");
    let under_root = root.join("etc/default/tune-root-test-app");
    std::fs::create_dir_all(under_root.parent().unwrap()).unwrap();
    std::fs::write(&under_root, "JAVA_TOOL_OPTIONS=-Dfoo=bar\n").unwrap();
    let cg = Cgroup::new(384 * MIB);
    let mut child = cg.spawn("java", &["-Xmx1g", "-XX:+PrintFlagsFinal", &src], &[]);
    assert_eq!(wait_ready(&mut child), Some(1024 * MIB));
    let java = Running(child);
    let state = tmp.path().join("state");
    let env_arg = format!("env_file={system_path}");
    let root_arg = root.display().to_string();
    let args = [
        "-p",
        PLAYBOOK,
        "--var",
        &env_arg,
        "--var",
        "env_dialect=shell",
        "--root",
        &root_arg,
        "--kernel-log",
        support::QUIET_KERNEL_LOG,
    ];
    let out = tune(
        &state,
        &[
            &["plan", "--format", "json", "--detailed-exitcode"],
            &args[..],
        ]
        .concat(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let plan = json(&out);
    let change = &plan["changes"][0]["mutation"];
    assert_eq!(change["path"], under_root.display().to_string(), "{change}");
    // What was read is the file under the root (the host has none).
    assert_eq!(change["before"], "JAVA_TOOL_OPTIONS=-Dfoo=bar\n");
    assert_eq!(
        change["after"],
        "JAVA_TOOL_OPTIONS=\"-Dfoo=bar -Xmx256m\"\n"
    );

    let out = tune(&state, &[&["apply", "--yes"], &args[..]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(&under_root).unwrap(),
        "JAVA_TOOL_OPTIONS=\"-Dfoo=bar -Xmx256m\"\n"
    );
    assert!(
        !Path::new(system_path).exists(),
        "nothing written on the host"
    );
    drop(java);
    let out = tune(&state, &["rollback"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(&under_root).unwrap(),
        "JAVA_TOOL_OPTIONS=-Dfoo=bar\n"
    );
}
