//! The Puppet/Bolt hook, run the way Bolt runs it: the task
//! `contrib/bolt/tune/tasks/init.sh` gets its parameters as JSON on stdin, with
//! `_noop` because its metadata declares `supports_noop`, on a narrow port range in a
//! throwaway namespace. Bolt itself is not installed: the test feeds the task what Bolt
//! sends. Needs root and iproute2 (skips elsewhere, fails in CI).

mod support;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use support::{Netns, require_netns, text};

const KEY: &str = "net.ipv4.ip_local_port_range";
const REPO: &str = env!("CARGO_MANIFEST_DIR");

fn path_with_tune() -> String {
    let dir = support::tune_bin().parent().expect("bin dir").to_path_buf();
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Runs the Bolt task with `input` on stdin, as Bolt's `input_method: stdin` does.
fn bolt_task(state: &std::path::Path, input: serde_json::Value) -> serde_json::Value {
    let mut child = Command::new(PathBuf::from(REPO).join("contrib/bolt/tune/tasks/init.sh"))
        .env("PATH", path_with_tune())
        .env("TUNE_STATE_DIR", state)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run task");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.to_string().as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("task");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

#[test]
fn bolt_task_noop_plans_only_and_a_real_run_applies() {
    if !require_netns() {
        return;
    }
    let ns = Netns::new("bolt");
    ns.set_sysctl(KEY, "20000 20050");
    let state = tempfile::tempdir().expect("tempdir");
    let params = |noop: bool| {
        serde_json::json!({
            "playbooks": [format!("{REPO}/playbooks/ephemeral-ports.yml")],
            "netns": ns.name,
            "_task": "tune",
            "_noop": noop,
        })
    };
    let noop = bolt_task(state.path(), params(true));
    assert_eq!(noop["changed"], true, "{noop}");
    assert_eq!(noop["diff"][0]["after"], "10000 65535\n", "{noop}");
    assert_eq!(
        ns.sysctl(KEY),
        "20000 20050",
        "--noop changed the namespace"
    );
    let real = bolt_task(state.path(), params(false));
    assert_eq!(real["changed"], true, "{real}");
    assert!(real["transaction"].is_u64(), "{real}");
    assert_eq!(ns.sysctl(KEY), "10000 65535");
    let again = bolt_task(state.path(), params(true));
    assert_eq!(again["changed"], false, "{again}");
}
