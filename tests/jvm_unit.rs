//! The JVM fix end to end through a systemd unit: a real JVM in a real memory cgroup
//! named like a unit (`…/tomcat-test.service`), its unit file under a temp `--root`,
//! and `JAVA_OPTS` carrying `-Xmx` onto the command line as catalina.sh does. The plan
//! proposes a drop-in setting `JAVA_OPTS` (not `JAVA_TOOL_OPTIONS`); after apply, a
//! JVM launched with the drop-in's environment has its max heap within the limit
//! (-XX:+PrintFlagsFinal); rollback removes the drop-in. Also: the unit's
//! `EnvironmentFile=` is edited when it sets the variable, and a flag literal in
//! `ExecStart=` is refused. Needs root, java and the cgroup v1 memory controller.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;
use support::{is_root, require, text};

const MIB: u64 = 1024 * 1024;
const V1_MEMORY: &str = "/sys/fs/cgroup/memory";
const PLAYBOOK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/playbooks/jvm-heap.yml");
const UNIT: &str = "tomcat-test.service";

fn ready() -> bool {
    let java = Command::new("java")
        .arg("--list-modules")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("jdk.compiler"));
    require(is_root(), "JVM cgroup tests need root")
        && require(
            java,
            "needs `java` with jdk.compiler (default-jdk-headless)",
        )
        && require(
            Path::new(V1_MEMORY).join("memory.limit_in_bytes").exists(),
            "needs the cgroup v1 memory controller at /sys/fs/cgroup/memory",
        )
}

/// The tests here start java and look at every java process: one at a time.
static JAVA: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    JAVA.lock().unwrap_or_else(|e| e.into_inner())
}

/// The change to `path` in a JSON plan. Other java processes on the machine (other
/// test binaries) may add findings and errors of their own; only ours is looked at.
fn change_to<'a>(plan: &'a Value, path: &str) -> Option<&'a Value> {
    plan["changes"]
        .as_array()?
        .iter()
        .map(|c| &c["mutation"])
        .find(|m| m["path"] == path)
}

fn errors(plan: &Value) -> String {
    plan["errors"].to_string()
}

/// `/sys/fs/cgroup/memory/tune-unit-PID-N/tomcat-test.service`, removed on drop.
struct UnitCgroup {
    parent: PathBuf,
    dir: PathBuf,
}

impl UnitCgroup {
    fn new(limit: u64) -> UnitCgroup {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let parent = Path::new(V1_MEMORY).join(format!("tune-unit-{}-{n}", std::process::id()));
        let dir = parent.join(UNIT);
        std::fs::create_dir_all(&dir).expect("create cgroup");
        std::fs::write(dir.join("memory.limit_in_bytes"), limit.to_string()).expect("limit");
        UnitCgroup { parent, dir }
    }

    /// Starts `java $JAVA_OPTS -XX:+PrintFlagsFinal Sleep.java` in the cgroup.
    fn java(&self, src: &str, java_opts: Option<&str>, literal: &[&str]) -> Running {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(r#"echo $$ > "$0/cgroup.procs" && exec java $JAVA_OPTS "$@""#)
            .arg(&self.dir)
            .args(literal)
            .args(["-XX:+PrintFlagsFinal", src])
            .env_remove("JAVA_TOOL_OPTIONS")
            .env_remove("JDK_JAVA_OPTIONS")
            .env_remove("_JAVA_OPTIONS")
            .env_remove("JAVA_OPTS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(o) = java_opts {
            cmd.env("JAVA_OPTS", o);
        }
        let mut child = cmd.spawn().expect("spawn java");
        let max_heap = wait_ready(&mut child);
        Running { child, max_heap }
    }
}

impl Drop for UnitCgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            let procs = std::fs::read_to_string(self.dir.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                // SAFETY: plain kill(2) of a process in the cgroup this test made.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            if std::fs::remove_dir(&self.dir).is_ok() {
                let _ = std::fs::remove_dir(&self.parent);
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        eprintln!("warning: could not remove {}", self.dir.display());
    }
}

struct Running {
    child: Child,
    max_heap: Option<u64>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

fn tune(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tune"))
        .args(args)
        .env("TUNE_STATE_DIR", state)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run tune")
}

fn put(root: &Path, path: &str, content: &str) {
    let p = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, content).expect("write");
}

/// The value an `Environment="NAME=…"` line of the drop-in gives NAME, unquoted the
/// way systemd does for the quoting tune writes (`\\`, `\"`, `%%`).
fn environment_value(dropin: &str, name: &str) -> Option<String> {
    let line = dropin
        .lines()
        .find_map(|l| l.strip_prefix(&format!("Environment=\"{name}=")))?;
    let body = line.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '%' => {
                chars.next();
                out.push('%');
            }
            c => out.push(c),
        }
    }
    Some(out)
}

#[test]
fn jvm_heap_fix_is_a_unit_drop_in_setting_java_opts() {
    if !ready() {
        return;
    }
    let _guard = lock();
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("Sleep.java");
    std::fs::write(
        &src,
        "public class Sleep { public static void main(String[] a) throws Exception { \
         System.out.println(\"ready\"); System.out.flush(); Thread.sleep(600_000); } }\n",
    )
    .expect("write java");
    let src = src.to_string_lossy().into_owned();
    let state = tmp.path().join("state");
    let root = tmp.path().join("root");
    let root_s = root.to_string_lossy().into_owned();
    put(
        &root,
        &format!("/usr/lib/systemd/system/{UNIT}"),
        "[Unit]\nDescription=test tomcat\n\n[Service]\nEnvironment=\"JAVA_OPTS=-Xmx1g -Dtune.test=1\"\nExecStart=/usr/share/tomcat/bin/catalina.sh run\n",
    );

    let cg = UnitCgroup::new(384 * MIB);
    let java = cg.java(&src, Some("-Xmx1g -Dtune.test=1"), &[]);
    assert_eq!(java.max_heap, Some(1024 * MIB));

    let plan_file = tmp.path().join("plan.json");
    let plan_s = plan_file.to_string_lossy().into_owned();
    let out = tune(
        &state,
        &[
            "plan", "-p", PLAYBOOK, "--root", &root_s, "--format", "json", "-o", &plan_s,
        ],
    );
    let plan: Value = serde_json::from_slice(&out.stdout).expect("json");
    let dropin = format!("/etc/systemd/system/{UNIT}.d/90-tune-jvm-heap.conf");
    let m = change_to(&plan, &format!("{root_s}{dropin}")).unwrap_or_else(|| panic!("{plan}"));
    assert!(!errors(&plan).contains(UNIT), "{plan}");
    assert_eq!(m["kind"], "file", "{plan}");
    assert_eq!(m["role"], "unit_drop_in", "{plan}");
    assert_eq!(m["path"], format!("{root_s}{dropin}"));
    assert_eq!(m["keys"], serde_json::json!(["JAVA_OPTS"]));
    assert_eq!(m["before"], Value::Null);
    let after = m["after"].as_str().expect("after");
    // 75% of 384 MiB is 288 MiB, the limit minus the 128 MiB headroom 256 MiB.
    assert_eq!(
        environment_value(after, "JAVA_OPTS").as_deref(),
        Some("-Xmx256m -Dtune.test=1"),
        "{after}"
    );
    assert!(!after.contains("JAVA_TOOL_OPTIONS"), "{after}");
    let out = tune(&state, &["plan", "-p", PLAYBOOK, "--root", &root_s]);
    assert!(
        text(&out).contains(&format!("takes effect when {UNIT} restarts")),
        "{}",
        text(&out)
    );

    // The plan file exactly as made: apply re-derives it and refuses any edit (the
    // JAVA lock keeps other tests' JVMs out of it).
    let out = tune(&state, &["apply", "--yes", &plan_s]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let written =
        std::fs::read_to_string(root.join(dropin.trim_start_matches('/'))).expect("drop-in");
    assert_eq!(written, after);

    // "Restart" the service: a new JVM with the drop-in's environment.
    drop(java);
    let opts = environment_value(&written, "JAVA_OPTS").expect("JAVA_OPTS in the drop-in");
    let java = cg.java(&src, Some(&opts), &[]);
    let heap = java.max_heap.expect("MaxHeapSize printed");
    assert_eq!(heap, 256 * MIB);
    assert!(heap + 128 * MIB <= 384 * MIB);
    // The plan sees the new JVM within its limit: fixed (no change for our unit, no
    // evidence naming our process).
    let out = tune(
        &state,
        &[
            "plan", "-p", PLAYBOOK, "--root", &root_s, "--format", "json",
        ],
    );
    let plan: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(
        change_to(&plan, &format!("{root_s}{dropin}")).is_none(),
        "{plan}"
    );
    let pid = format!("pid {}:", java.child.id());
    assert!(!plan.to_string().contains(&pid), "{plan}");
    drop(java);

    let out = tune(&state, &["rollback"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!root.join(dropin.trim_start_matches('/')).exists());
}

#[test]
fn environment_file_is_edited_and_literal_exec_start_flags_are_refused() {
    if !ready() {
        return;
    }
    let _guard = lock();
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("Sleep.java");
    std::fs::write(
        &src,
        "public class Sleep { public static void main(String[] a) throws Exception { \
         System.out.println(\"ready\"); System.out.flush(); Thread.sleep(600_000); } }\n",
    )
    .expect("write java");
    let src = src.to_string_lossy().into_owned();
    let state = tmp.path().join("state");
    let cg = UnitCgroup::new(384 * MIB);

    // EnvironmentFile= sets JAVA_OPTS: that file is the one to edit (it overrides
    // Environment=), so no drop-in.
    let root = tmp.path().join("root-envfile");
    let root_s = root.to_string_lossy().into_owned();
    put(
        &root,
        &format!("/etc/systemd/system/{UNIT}"),
        "[Service]\nEnvironment=JAVA_OPTS=-Xmx2g\nEnvironmentFile=-/etc/default/tomcat-test\nExecStart=/usr/share/tomcat/bin/catalina.sh run\n",
    );
    put(
        &root,
        "/etc/default/tomcat-test",
        "# heap\nJAVA_OPTS=\"-Xmx1g -Dtune.test=1\"\n",
    );
    let java = cg.java(&src, Some("-Xmx1g -Dtune.test=1"), &[]);
    let out = tune(
        &state,
        &[
            "plan", "-p", PLAYBOOK, "--root", &root_s, "--format", "json",
        ],
    );
    let plan: Value = serde_json::from_slice(&out.stdout).expect("json");
    let m = change_to(&plan, &format!("{root_s}/etc/default/tomcat-test"))
        .unwrap_or_else(|| panic!("{plan}"));
    assert_eq!(m["after"], "# heap\nJAVA_OPTS=\"-Xmx256m -Dtune.test=1\"\n");
    assert!(
        !plan["changes"]
            .to_string()
            .contains("90-tune-jvm-heap.conf"),
        "{plan}"
    );
    drop(java);

    // The flag is literal in ExecStart=: needs input, naming the unit and the flag.
    let root = tmp.path().join("root-literal");
    let root_s = root.to_string_lossy().into_owned();
    put(
        &root,
        &format!("/etc/systemd/system/{UNIT}"),
        "[Service]\nExecStart=/usr/bin/java -Xmx1g -jar /opt/app.jar\n",
    );
    let java = cg.java(&src, None, &["-Xmx1g"]);
    let out = tune(
        &state,
        &[
            "plan",
            "-p",
            PLAYBOOK,
            "--root",
            &root_s,
            "--detailed-exitcode",
        ],
    );
    // Needs input (pending work, exit 2), not a change and not an error.
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("fix needs input"), "{}", text(&out));
    assert!(
        !text(&out).contains("90-tune-jvm-heap.conf"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains(&format!(
            "-Xmx1g is literal in ExecStart= of {UNIT} (/etc/systemd/system/{UNIT}:2)"
        )),
        "{}",
        text(&out)
    );
    drop(java);
}
