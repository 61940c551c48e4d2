//! The Ansible module (`tune ansible ARGS_FILE`, `contrib/ansible/library/tune`),
//! tested with the real client: `ansible-playbook` (ansible-core from PyPI, installed
//! by `.ci/run` in a venv) against localhost over the local connection, on a narrow
//! port range inside a throwaway namespace. Also the module protocol itself, run the
//! way Ansible runs it. Needs root and iproute2; the playbook test also needs
//! ansible-playbook (skips elsewhere, fails in CI).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{Netns, require, require_netns, text, tune};

const KEY: &str = "net.ipv4.ip_local_port_range";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// ansible-playbook from `TUNE_ANSIBLE_PLAYBOOK`, the venv `.ci/run` makes, or PATH.
fn ansible_playbook() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TUNE_ANSIBLE_PLAYBOOK") {
        return Some(PathBuf::from(p));
    }
    let venv = repo().join("target/ci-venv/bin/ansible-playbook");
    if venv.exists() {
        return Some(venv);
    }
    support::have("ansible-playbook").then(|| PathBuf::from("ansible-playbook"))
}

/// Runs `tune ansible` on these module arguments, as Ansible does; returns the one JSON
/// object it printed.
fn module(state: &Path, args: serde_json::Value) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("args");
    std::fs::write(&file, args.to_string()).expect("write args");
    let out = tune(state).arg("ansible").arg(&file).output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "exactly one JSON line on stdout: {}",
        text(&out)
    );
    serde_json::from_str(lines[0]).expect("stdout is JSON")
}

#[test]
fn module_protocol_check_mode_ignores_ansible_keys_and_changes_nothing() {
    if !require_netns() {
        return;
    }
    let ns = Netns::new("ansmod");
    ns.set_sysctl(KEY, "20000 20050");
    let state = tempfile::tempdir().expect("tempdir");
    let playbook = repo().join("playbooks/ephemeral-ports.yml");
    let result = module(
        state.path(),
        serde_json::json!({
            "playbooks": [playbook],
            "netns": ns.name,
            "_ansible_check_mode": true,
            "_ansible_diff": true,
            "_ansible_no_log": false,
            "_ansible_verbosity": 0,
            "_ansible_version": "2.99.0",
            "_ansible_tmpdir": "/nonexistent",
            "_ansible_a_key_from_the_future": {"x": [1]},
        }),
    );
    assert_eq!(result["changed"], true, "{result}");
    assert!(result.get("failed").is_none(), "{result}");
    let diff = result["diff"].as_array().expect("diff list");
    assert_eq!(diff.len(), 1, "{result}");
    assert_eq!(diff[0]["before"], "20000 20050\n");
    assert_eq!(diff[0]["after"], "10000 65535\n");
    assert!(
        diff[0]["before_header"]
            .as_str()
            .unwrap_or("")
            .contains(KEY),
        "{result}"
    );
    let evidence = &result["findings"][0]["evidence"][0];
    assert_eq!(evidence["fact"], format!("sysctl {KEY}"), "{result}");
    assert_eq!(result["plan"]["changes"].as_array().map(Vec::len), Some(1));
    assert!(result.get("transaction").is_none(), "{result}");
    // Check mode as root: still nothing written, not even the state directory.
    assert_eq!(ns.sysctl(KEY), "20000 20050");
    assert!(!state.path().join("transactions").exists());

    let persist = module(
        state.path(),
        serde_json::json!({"netns": ns.name, "confirm_within": "5m", "persist": true, "_ansible_check_mode": false}),
    );
    assert_eq!(persist["failed"], true, "{persist}");
    assert!(
        persist["msg"]
            .as_str()
            .unwrap_or("")
            .contains("cannot be combined with persist"),
        "{persist}"
    );
    let unknown = module(state.path(), serde_json::json!({"playbok": ["x"]}));
    assert_eq!(unknown["failed"], true, "{unknown}");
    assert!(
        unknown["msg"].as_str().unwrap_or("").contains("playbok"),
        "{unknown}"
    );
    // A link change has its own diff entry too.
    ns.sh("ip link add tv0 type veth peer name tv1 && ip link set tv0 mtu 576");
    let mtu = module(
        state.path(),
        serde_json::json!({
            "playbooks": [repo().join("playbooks/mtu.yml"), playbook],
            "netns": ns.name,
            "_ansible_check_mode": true,
        }),
    );
    let diff = mtu["diff"].as_array().expect("diff list");
    assert_eq!(diff.len(), 2, "{mtu}");
    let link = diff
        .iter()
        .find(|d| {
            d["before_header"]
                .as_str()
                .unwrap_or("")
                .starts_with("link:tv0")
        })
        .unwrap_or_else(|| panic!("{mtu}"));
    assert_eq!(link["before"], "mtu 576\n", "{mtu}");
    assert_eq!(link["after"], "mtu 1500\n", "{mtu}");
    assert!(ns.sh("ip link show tv0").contains("mtu 576"));

    let nothing = module(state.path(), serde_json::json!({"state": "rolled_back"}));
    assert_eq!(nothing["changed"], false, "{nothing}");
    assert_eq!(ns.sysctl(KEY), "20000 20050");
}

fn recap_changed(out: &Output) -> Option<u32> {
    let all = text(out);
    let line = all
        .lines()
        .find(|l| l.starts_with("localhost") && l.contains("changed="))?;
    let rest = line.split("changed=").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

/// Writes a one-task play of the `tune` module on ephemeral-ports.yml in namespace `ns`,
/// with these extra option lines, and `state` from `-e tune_state=...`.
fn write_play(path: &Path, ns: &str, extra_options: &str) {
    std::fs::write(
        path,
        format!(
            r#"- hosts: localhost
  gather_facts: false
  tasks:
    - name: tune
      tune:
        playbooks: ["{}"]
        netns: "{}"
{extra_options}        state: "{{{{ tune_state | default('applied') }}}}"
"#,
            repo().join("playbooks/ephemeral-ports.yml").display(),
            ns
        ),
    )
    .expect("write playbook");
}

/// Runs `ansible-playbook` on localhost (local connection) with the module library,
/// this build's `tune` on PATH and everything Ansible writes under `tmp`.
fn run_play(ansible: &Path, playbook: &Path, tmp: &Path, extra: &[&str]) -> Output {
    let tune_dir = support::tune_bin().parent().expect("bin dir").to_path_buf();
    let path = format!(
        "{}:{}",
        tune_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new(ansible)
        .args(["-i", "localhost,", "-c", "local"])
        .arg(playbook)
        .args(extra)
        .env("PATH", &path)
        .env("LC_ALL", "C.UTF-8")
        .env("ANSIBLE_HOME", tmp.join("ansible-home"))
        .env("ANSIBLE_LOCAL_TEMP", tmp.join("local-tmp"))
        .env("ANSIBLE_REMOTE_TMP", tmp.join("remote-tmp"))
        .env("ANSIBLE_LIBRARY", repo().join("contrib/ansible/library"))
        .env("ANSIBLE_NOCOLOR", "1")
        .env("TUNE_STATE_DIR", tmp.join("state"))
        .output()
        .expect("run ansible-playbook")
}

/// An ansible-core command (ansible-doc, ansible-galaxy) that keeps its files under `tmp`.
fn ansible_tool(bin: &Path, tmp: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env("LC_ALL", "C.UTF-8")
        .env("ANSIBLE_HOME", tmp.join("ansible-home"))
        .env("ANSIBLE_LOCAL_TEMP", tmp.join("local-tmp"));
    cmd
}

/// ansible-playbook, when network namespaces can be made (else `require` fails in CI).
fn netns_and_ansible() -> Option<PathBuf> {
    if !require_netns() {
        return None;
    }
    let found = ansible_playbook();
    require(
        found.is_some(),
        "ansible-playbook (ansible-core from PyPI; .ci/run installs it)",
    );
    found
}

#[test]
fn ansible_playbook_check_diff_apply_idempotent_and_rolled_back() {
    let Some(ansible) = netns_and_ansible() else {
        return;
    };
    let ns = Netns::new("ansible");
    ns.set_sysctl(KEY, "20000 20050");
    let tmp = tempfile::tempdir().expect("tempdir");
    let playbook = tmp.path().join("site.yml");
    write_play(&playbook, &ns.name, "");
    let run = |extra: &[&str]| run_play(&ansible, &playbook, tmp.path(), extra);

    let check = run(&["--check", "--diff"]);
    assert!(check.status.success(), "{}", text(&check));
    assert_eq!(recap_changed(&check), Some(1), "{}", text(&check));
    let shown = text(&check);
    assert!(shown.contains(&format!("before: sysctl:{KEY}")), "{shown}");
    assert!(
        shown.contains("-20000 20050") && shown.contains("+10000 65535"),
        "{shown}"
    );
    assert_eq!(
        ns.sysctl(KEY),
        "20000 20050",
        "--check changed the namespace"
    );

    let apply = run(&[]);
    assert!(apply.status.success(), "{}", text(&apply));
    assert_eq!(recap_changed(&apply), Some(1), "{}", text(&apply));
    assert_eq!(ns.sysctl(KEY), "10000 65535");

    let again = run(&[]);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(recap_changed(&again), Some(0), "{}", text(&again));

    let back = run(&["-e", "tune_state=rolled_back", "--diff"]);
    assert!(back.status.success(), "{}", text(&back));
    assert_eq!(recap_changed(&back), Some(1), "{}", text(&back));
    assert!(text(&back).contains("+20000 20050"), "{}", text(&back));
    assert_eq!(ns.sysctl(KEY), "20000 20050");

    let back_again = run(&["-e", "tune_state=rolled_back"]);
    assert_eq!(recap_changed(&back_again), Some(0), "{}", text(&back_again));
}

/// The sidecar documentation parses with ansible-doc and documents exactly the options
/// the module accepts (an option it does not know is refused by name).
#[test]
fn sidecar_doc_matches_the_accepted_options() {
    let Some(playbook) = ansible_playbook() else {
        require(
            false,
            "ansible-doc (ansible-core from PyPI; .ci/run installs it)",
        );
        return;
    };
    let doc_bin = playbook.with_file_name("ansible-doc");
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = ansible_tool(&doc_bin, tmp.path())
        .args(["--json", "-M"])
        .arg(repo().join("contrib/ansible/library"))
        .arg("tune")
        .output()
        .expect("run ansible-doc");
    assert!(out.status.success(), "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ansible-doc JSON");
    let options = doc["tune"]["doc"]["options"]
        .as_object()
        .unwrap_or_else(|| panic!("{doc:#}"));
    let mut names: Vec<&str> = options.keys().map(String::as_str).collect();
    names.sort_unstable();
    let accepted = [
        "confirm_within",
        "netns",
        "netns_pid",
        "persist",
        "playbooks",
        "root",
        "state",
        "vars",
    ];
    assert_eq!(names, accepted);
    let state = tempfile::tempdir().expect("tempdir");
    for name in accepted {
        // Every documented option is known to the module (null means "not given").
        let result = module(
            state.path(),
            serde_json::json!({ name: null, "_ansible_check_mode": true, "playbooks": ["/nonexistent-tune-doc-check"] }),
        );
        let msg = result["msg"].as_str().unwrap_or("");
        assert!(
            !msg.contains("unsupported module arguments"),
            "{name}: {result}"
        );
    }
}

/// The host's persisted files, which no test may write: every test passes `root:`.
const HOST_FILES: [&str; 2] = [
    "/etc/sysctl.d/90-tune.conf",
    "/etc/modules-load.d/90-tune.conf",
];

/// Fails loudly if the host already has tune's files (a test could not tell its own
/// writes from them, and must not remove them).
fn host_files_absent(when: &str) {
    for f in HOST_FILES {
        assert!(
            !Path::new(f).exists(),
            "{f} exists on the host ({when}); this test never removes it: look at who wrote it"
        );
    }
}

#[test]
fn ansible_playbook_persist_under_root_check_diff_apply_and_rolled_back() {
    let Some(ansible) = netns_and_ansible() else {
        return;
    };
    host_files_absent("before the test");
    let ns = Netns::new("anspers");
    ns.set_sysctl(KEY, "20000 20050");
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("root");
    std::fs::create_dir_all(root.join("etc/sysctl.d")).expect("mkdir");
    let conf = root.join("etc/sysctl.d/90-tune.conf");
    let playbook = tmp.path().join("site.yml");
    write_play(
        &playbook,
        &ns.name,
        &format!(
            "        persist: true\n        root: \"{}\"\n",
            root.display()
        ),
    );
    let run = |extra: &[&str]| run_play(&ansible, &playbook, tmp.path(), extra);

    let check = run(&["--check", "--diff"]);
    assert!(check.status.success(), "{}", text(&check));
    let shown = text(&check);
    assert_eq!(recap_changed(&check), Some(1), "{shown}");
    assert!(shown.contains(&format!("before: sysctl:{KEY}")), "{shown}");
    assert!(shown.contains("90-tune.conf"), "{shown}");
    assert!(shown.contains(&format!("+{KEY}")), "{shown}");
    assert_eq!(
        ns.sysctl(KEY),
        "20000 20050",
        "--check changed the namespace"
    );
    assert!(!conf.exists(), "--check wrote {}", conf.display());

    let apply = run(&[]);
    assert!(apply.status.success(), "{}", text(&apply));
    assert_eq!(recap_changed(&apply), Some(1), "{}", text(&apply));
    assert_eq!(ns.sysctl(KEY), "10000 65535");
    let written = std::fs::read_to_string(&conf).expect("persisted file under root");
    assert!(
        written.contains(KEY) && written.contains("10000 65535"),
        "{written}"
    );

    let again = run(&[]);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(recap_changed(&again), Some(0), "{}", text(&again));

    let back = run(&["-e", "tune_state=rolled_back"]);
    assert!(back.status.success(), "{}", text(&back));
    assert_eq!(recap_changed(&back), Some(1), "{}", text(&back));
    assert_eq!(ns.sysctl(KEY), "20000 20050");
    assert!(!conf.exists(), "rollback left {}", conf.display());
    host_files_absent("after the test");
}

/// `confirm_within` is `tune apply --confirm-within` (the watchdog rolls back after the
/// deadline), and a later `state: confirmed` task keeps the change.
#[test]
fn ansible_playbook_confirm_within_rolls_back_unless_confirmed() {
    let Some(ansible) = netns_and_ansible() else {
        return;
    };
    let ns = Netns::new("ansconf");
    let wait = || std::thread::sleep(std::time::Duration::from_secs(8));

    ns.set_sysctl(KEY, "20000 20050");
    let tmp = tempfile::tempdir().expect("tempdir");
    let playbook = tmp.path().join("site.yml");
    write_play(&playbook, &ns.name, "        confirm_within: 3s\n");
    let apply = run_play(&ansible, &playbook, tmp.path(), &["-v"]);
    assert!(apply.status.success(), "{}", text(&apply));
    assert_eq!(recap_changed(&apply), Some(1), "{}", text(&apply));
    assert!(text(&apply).contains("\"deadline\""), "{}", text(&apply));
    assert_eq!(ns.sysctl(KEY), "10000 65535");
    wait();
    assert_eq!(
        ns.sysctl(KEY),
        "20000 20050",
        "not rolled back after the deadline"
    );

    let tmp = tempfile::tempdir().expect("tempdir");
    let playbook = tmp.path().join("site.yml");
    write_play(&playbook, &ns.name, "        confirm_within: 3s\n");
    let mut play = std::fs::read_to_string(&playbook).expect("read play");
    play.push_str("    - name: confirm\n      tune:\n        state: confirmed\n");
    std::fs::write(&playbook, play).expect("write play");
    let kept = run_play(&ansible, &playbook, tmp.path(), &[]);
    assert!(kept.status.success(), "{}", text(&kept));
    assert_eq!(recap_changed(&kept), Some(2), "{}", text(&kept));
    wait();
    assert_eq!(
        ns.sysctl(KEY),
        "10000 65535",
        "rolled back although confirmed"
    );
}

/// The `tune.tune` collection (`contrib/ansible/collection`, whose module files are
/// symlinks to the library's) builds with ansible-galaxy, installs, and its module
/// runs by its fully qualified name (check mode: reported, nothing changed).
#[test]
fn collection_builds_installs_and_runs_by_fqcn() {
    let Some(ansible) = netns_and_ansible() else {
        return;
    };
    let galaxy = ansible.with_file_name("ansible-galaxy");
    let tmp = tempfile::tempdir().expect("tempdir");
    let galaxy_run = |args: &[&std::ffi::OsStr]| {
        let out = ansible_tool(&galaxy, tmp.path())
            .args(args)
            .output()
            .expect("run ansible-galaxy");
        assert!(out.status.success(), "{}", text(&out));
    };
    let built = tmp.path().join("built");
    galaxy_run(&[
        "collection".as_ref(),
        "build".as_ref(),
        repo()
            .join("contrib/ansible/collection/tune/tune")
            .as_os_str(),
        "--output-path".as_ref(),
        built.as_os_str(),
    ]);
    // Beside the play, where ansible-playbook looks for collections.
    galaxy_run(&[
        "collection".as_ref(),
        "install".as_ref(),
        "-p".as_ref(),
        tmp.path().join("collections").as_os_str(),
        built.join("tune-tune-0.1.0.tar.gz").as_os_str(),
    ]);
    let ns = Netns::new("anscoll");
    ns.set_sysctl(KEY, "20000 20050");
    let playbook = tmp.path().join("site.yml");
    write_play(&playbook, &ns.name, "");
    let play = std::fs::read_to_string(&playbook).expect("read play");
    std::fs::write(
        &playbook,
        play.replace("      tune:\n", "      tune.tune.tune:\n"),
    )
    .expect("write play");
    let check = run_play(&ansible, &playbook, tmp.path(), &["--check", "--diff"]);
    assert!(check.status.success(), "{}", text(&check));
    assert_eq!(recap_changed(&check), Some(1), "{}", text(&check));
    assert!(text(&check).contains("+10000 65535"), "{}", text(&check));
    assert_eq!(ns.sysctl(KEY), "20000 20050");
}
