//! Persistence (`--persist`, `--root`): sysctl.d files checked by the real boot-time
//! readers (procps `sysctl -p` / `sysctl --system` and `systemd-sysctl`), run in
//! throwaway network and mount namespaces over a temp dir; networkd MTU drop-ins on
//! a real veth. Nothing under the host's /etc is written: every file is under a
//! temp `--root`, and the readers see the temp files through bind mounts inside a
//! private mount namespace.

mod support;

use std::path::Path;
use std::process::Command;

use support::{Netns, have, is_root, require, require_netns, text};

const PLAYBOOK: &str = "name: t
description: persistence test
rules:
  - id: low-somaxconn
    description: somaxconn below 8192
    detect:
      sysctl: {key: net.core.somaxconn, below: 8192}
    fix:
      - set_sysctl: {key: net.core.somaxconn, at_least: 8192}
";

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("root")).expect("mkdir root");
        std::fs::write(dir.path().join("pb.yml"), PLAYBOOK).expect("write playbook");
        Setup { dir }
    }
    /// A setup whose playbook raises the MTU of veths named `tp*`.
    fn mtu() -> Setup {
        let s = Setup::new();
        std::fs::write(s.dir.path().join("pb.yml"), MTU_PLAYBOOK).expect("write");
        s
    }
    fn root(&self) -> String {
        self.dir.path().join("root").to_string_lossy().into_owned()
    }
    fn pb(&self) -> String {
        self.dir
            .path()
            .join("pb.yml")
            .to_string_lossy()
            .into_owned()
    }
    fn state(&self) -> std::path::PathBuf {
        self.dir.path().join("state")
    }
    /// Writes a file under the root (path as the system names it).
    fn put(&self, path: &str, content: &str) {
        let p = Path::new(&self.root()).join(path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, content).expect("write");
    }
    fn get(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(Path::new(&self.root()).join(path.trim_start_matches('/'))).ok()
    }
    fn tune(&self, ns: &Netns, args: &[&str]) -> std::process::Output {
        let (pb, root) = (self.pb(), self.root());
        let mut all: Vec<&str> = args.to_vec();
        if args[0] != "rollback" {
            all.extend(["-p", &pb, "--root", &root]);
        }
        ns.tune(&self.state(), &all)
    }
}

fn ready() -> bool {
    require_netns()
        && require(
            have("sysctl"),
            "procps `sysctl` is needed (apt-get install procps)",
        )
}

/// Runs the real boot-time readers on the files under `root` in a fresh network
/// namespace and a private mount namespace, and returns net.core.somaxconn as each
/// leaves it: (systemd-sysctl, `sysctl --system`).
fn boot_readers(root: &str) -> (String, String) {
    let mut script = String::from("set -e\n");
    // Every directory either reader looks in gets the root's copy (an empty one when
    // the root has none), so the host's own files play no part.
    for dir in [
        "/etc/sysctl.d",
        "/run/sysctl.d",
        "/usr/local/lib/sysctl.d",
        "/usr/lib/sysctl.d",
    ] {
        let ours = format!("{root}{dir}");
        std::fs::create_dir_all(&ours).expect("mkdir");
        if Path::new(dir).is_dir() {
            script.push_str(&format!("mount --bind '{ours}' '{dir}'\n"));
        }
    }
    let conf = format!("{root}/etc/sysctl.conf");
    if !Path::new(&conf).exists() {
        std::fs::write(&conf, "").expect("write sysctl.conf");
    }
    script.push_str(&format!("mount --bind '{conf}' /etc/sysctl.conf\n"));
    script.push_str(
        "echo 17 > /proc/sys/net/core/somaxconn\n\
         /lib/systemd/systemd-sysctl\n\
         cat /proc/sys/net/core/somaxconn\n\
         echo 17 > /proc/sys/net/core/somaxconn\n\
         sysctl --system >/dev/null\n\
         cat /proc/sys/net/core/somaxconn\n",
    );
    let out = Command::new("unshare")
        .args(["-m", "-n", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("unshare");
    assert!(out.status.success(), "boot readers: {}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let v: Vec<&str> = stdout.lines().collect();
    assert_eq!(v.len(), 2, "{stdout}");
    (v[0].to_owned(), v[1].to_owned())
}

fn have_systemd_sysctl() -> bool {
    require(
        Path::new("/lib/systemd/systemd-sysctl").exists() && have("unshare"),
        "systemd-sysctl (package systemd) and unshare are needed",
    )
}

#[test]
fn persisted_file_is_what_procps_applies_and_rollback_removes_it() {
    if !ready() {
        return;
    }
    let s = Setup::new();
    let ns = Netns::new("persist");
    ns.set_sysctl("net.core.somaxconn", "128");
    s.put(
        "/usr/lib/sysctl.d/10-vendor.conf",
        "net.core.somaxconn = 128\n",
    );

    let out = s.tune(&ns, &["plan", "--persist", "--detailed-exitcode"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(
        shown.contains("sysctl:net.core.somaxconn  128 → 8192"),
        "{shown}"
    );
    let file = format!("{}/etc/sysctl.d/90-tune.conf", s.root());
    assert!(shown.contains(&format!("file:{file}  create")), "{shown}");
    assert!(shown.contains("+net.core.somaxconn = 8192"), "{shown}");

    let out = s.tune(&ns, &["apply", "--yes", "--persist"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(ns.sysctl("net.core.somaxconn"), "8192");
    let written = s.get("/etc/sysctl.d/90-tune.conf").expect("file written");
    assert!(
        written.ends_with("net.core.somaxconn = 8192\n"),
        "{written}"
    );

    // The real reader: a fresh namespace starts at the kernel default; procps
    // applies the file to it.
    let fresh = Netns::new("persist-fresh");
    assert_ne!(fresh.sysctl("net.core.somaxconn"), "8192");
    fresh.sh(&format!("sysctl -q -p '{file}'"));
    assert_eq!(fresh.sysctl("net.core.somaxconn"), "8192");

    // Planning again: nothing to do, and no drift (boot now sets the live value).
    let out = s.tune(&ns, &["plan", "--persist", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains("drift"), "{}", text(&out));

    let out = s.tune(&ns, &["rollback"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(s.get("/etc/sysctl.d/90-tune.conf"), None);
    assert_eq!(ns.sysctl("net.core.somaxconn"), "128");
}

#[test]
fn an_existing_owned_file_is_edited_in_place_and_restored_byte_for_byte() {
    if !ready() {
        return;
    }
    let s = Setup::new();
    let ns = Netns::new("persist-edit");
    ns.set_sysctl("net.core.somaxconn", "128");
    let before = "# kept\r\nnet.ipv4.tcp_tw_reuse=1\r\nnet.core.somaxconn=64\nno newline at end";
    s.put("/etc/sysctl.d/90-tune.conf", before);
    let out = s.tune(&ns, &["apply", "--yes", "--persist"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        s.get("/etc/sysctl.d/90-tune.conf").as_deref(),
        Some("# kept\r\nnet.ipv4.tcp_tw_reuse=1\r\nnet.core.somaxconn = 8192\nno newline at end\n")
    );
    let out = s.tune(&ns, &["rollback"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(s.get("/etc/sysctl.d/90-tune.conf").as_deref(), Some(before));
}

#[test]
fn conflicts_are_those_the_real_boot_readers_show() {
    if !ready() || !have_systemd_sysctl() {
        return;
    }
    let ns = Netns::new("persist-conflict");
    ns.set_sysctl("net.core.somaxconn", "128");

    // A vendor file sorting after 90-tune.conf: both readers end at its value, and
    // tune refuses, naming it.
    let s = Setup::new();
    s.put(
        "/usr/lib/sysctl.d/99-vendor.conf",
        "# x\nnet.core.somaxconn = 1024\n",
    );
    let out = s.tune(&ns, &["plan", "--persist"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("/usr/lib/sysctl.d/99-vendor.conf:2 sets it to \"1024\"")
            && shown.contains("would be lost at boot"),
        "{shown}"
    );
    s.put("/etc/sysctl.d/90-tune.conf", "net.core.somaxconn = 8192\n");
    assert_eq!(boot_readers(&s.root()), ("1024".into(), "1024".into()));

    // The same vendor file masked by /etc/sysctl.d/99-vendor.conf → /dev/null: no
    // conflict, and both readers keep tune's value.
    let s = Setup::new();
    s.put(
        "/usr/lib/sysctl.d/99-vendor.conf",
        "net.core.somaxconn = 1024\n",
    );
    s.put(
        "/usr/lib/sysctl.d/10-early.conf",
        "net.core.somaxconn = 256\n",
    );
    std::fs::create_dir_all(format!("{}/etc/sysctl.d", s.root())).expect("mkdir");
    std::os::unix::fs::symlink(
        "/dev/null",
        format!("{}/etc/sysctl.d/99-vendor.conf", s.root()),
    )
    .expect("symlink");
    let out = s.tune(&ns, &["apply", "--yes", "--persist"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(boot_readers(&s.root()), ("8192".into(), "8192".into()));
    assert_eq!(s.tune(&ns, &["rollback"]).status.code(), Some(0));

    // /etc/sysctl.conf: procps reads it last, systemd-sysctl not at all (no
    // 99-sysctl.conf link here). tune refuses and says procps is why.
    let s = Setup::new();
    s.put("/etc/sysctl.conf", "net.core.somaxconn = 512\n");
    let out = s.tune(&ns, &["plan", "--persist"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("/etc/sysctl.conf:1 sets it to \"512\"") && shown.contains("procps"),
        "{shown}"
    );
    s.put("/etc/sysctl.d/90-tune.conf", "net.core.somaxconn = 8192\n");
    assert_eq!(boot_readers(&s.root()), ("8192".into(), "512".into()));
}

#[test]
fn drift_is_reported_without_changes_or_exit_code() {
    if !ready() {
        return;
    }
    let s = Setup::new();
    let ns = Netns::new("persist-drift");
    // Healthy at runtime (the rule does not fire), but boot would set 1024.
    ns.set_sysctl("net.core.somaxconn", "16384");
    s.put("/etc/sysctl.d/50-site.conf", "net.core.somaxconn = 1024\n");
    let out = s.tune(&ns, &["plan", "--detailed-exitcode"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(
        shown.contains(
            "persistence drift: sysctl:net.core.somaxconn is \"16384\" now, but boot sets \"1024\" (/etc/sysctl.d/50-site.conf:1)"
        ),
        "{shown}"
    );
    let out = s.tune(&ns, &["plan", "--format", "json"]);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(plan["changes"].as_array().map(Vec::len), Some(0));
    assert_eq!(plan["notes"].as_array().map(Vec::len), Some(1));
}

#[test]
fn without_persist_the_plan_says_the_change_is_runtime_only() {
    if !ready() {
        return;
    }
    let s = Setup::new();
    let ns = Netns::new("persist-note");
    ns.set_sysctl("net.core.somaxconn", "128");
    let out = s.tune(&ns, &["plan"]);
    let shown = text(&out);
    assert!(
        shown.contains("sysctl:net.core.somaxconn: the change is runtime-only and lost at reboot"),
        "{shown}"
    );
    assert!(!shown.contains("90-tune.conf"), "{shown}");
}

const MTU_PLAYBOOK: &str = "name: m
description: mtu test
rules:
  - id: low-mtu
    description: mtu below 1500
    detect:
      link: {name: \"tp*\", kind: [veth], below: 1500}
    fix:
      - set_mtu: {value: 1500}
";

#[test]
fn mtu_persists_through_networkd_only() {
    if !require_netns() || !require(is_root(), "needs root") {
        return;
    }
    let s = Setup::mtu();
    let ns = Netns::new("persist-mtu");
    ns.sh("ip link add tp0 mtu 1400 type veth peer name tq0 mtu 1500");

    // networkd configures tp0 (through a glob): a drop-in for its .network file.
    s.put(
        "/usr/lib/systemd/network/20-tp.network",
        "[Match]\nName=tp*\n\n[Network]\nDHCP=no\n",
    );
    let out = s.tune(&ns, &["plan", "--persist", "--detailed-exitcode"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    let dropin = "/etc/systemd/network/20-tp.network.d/90-tune-mtu.conf";
    assert!(
        shown.contains(&format!("file:{}{dropin}  create", s.root())),
        "{shown}"
    );
    assert!(shown.contains("+MTUBytes=1500"), "{shown}");
    let out = s.tune(&ns, &["apply", "--yes", "--persist"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let written = s.get(dropin).expect("drop-in written");
    assert!(written.ends_with("[Link]\nMTUBytes=1500\n"), "{written}");
    assert!(ns.sh("ip -o link show tp0").contains("mtu 1500"));
    assert_eq!(s.tune(&ns, &["rollback"]).status.code(), Some(0));
    assert_eq!(s.get(dropin), None);
    assert!(ns.sh("ip -o link show tp0").contains("mtu 1400"));

    // netplan names it: runtime only, no file change, the manager named.
    let s2 = Setup::mtu();
    s2.put(
        "/etc/netplan/50-cloud-init.yaml",
        "network:\n  version: 2\n  ethernets:\n    tp0: {dhcp4: true}\n",
    );
    s2.put(
        "/run/systemd/network/10-netplan-tp0.network",
        "[Match]\nName=tp0\n",
    );
    let out = s2.tune(&ns, &["plan", "--persist", "--format", "json"]);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(plan["changes"].as_array().map(Vec::len), Some(1), "{plan}");
    let notes = plan["notes"].to_string();
    assert!(
        notes.contains("runtime-only")
            && notes.contains("netplan")
            && notes.contains("/etc/netplan/50-cloud-init.yaml"),
        "{notes}"
    );
}

#[test]
fn networkd_match_keys_decide_which_file_owns_the_link() {
    if !require_netns() || !require(is_root(), "needs root") {
        return;
    }
    let ns = Netns::new("persist-match");
    ns.sh("ip link add tp0 mtu 1400 address 02:00:5e:10:20:30 type veth peer name tq0 mtu 1500");

    // Matched by MACAddress= (upper case, a list), AND Type=ether; an earlier file
    // whose Name= matches but whose MACAddress= does not is passed over.
    let s = Setup::mtu();
    s.put(
        "/etc/systemd/network/10-other.network",
        "[Match]\nName=tp*\nMACAddress=02:00:5e:10:20:31\n",
    );
    s.put(
        "/etc/systemd/network/30-by-mac.network",
        "[Match]\nMACAddress=52:54:00:00:00:01 02:00:5E:10:20:30\nType=ether\nName=!en*\n",
    );
    let out = s.tune(&ns, &["apply", "--yes", "--persist"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dropin = "/etc/systemd/network/30-by-mac.network.d/90-tune-mtu.conf";
    let written = s
        .get(dropin)
        .expect("drop-in written under the MAC-matched file");
    assert!(written.ends_with("[Link]\nMTUBytes=1500\n"), "{written}");
    assert_eq!(
        s.get("/etc/systemd/network/10-other.network.d/90-tune-mtu.conf"),
        None
    );
    assert_eq!(s.tune(&ns, &["rollback"]).status.code(), Some(0));
    assert_eq!(s.get(dropin), None);

    // An earlier file that matches on Driver=: tune cannot tell whether it applies,
    // so the change is runtime-only with that reason and no drop-in is planned.
    let s2 = Setup::mtu();
    s2.put(
        "/etc/systemd/network/20-driver.network",
        "[Match]\nName=tp0\nDriver=veth\n",
    );
    s2.put(
        "/etc/systemd/network/30-by-mac.network",
        "[Match]\nMACAddress=02:00:5e:10:20:30\n",
    );
    let out = s2.tune(&ns, &["plan", "--persist", "--format", "json"]);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let changes = plan["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 1, "only the runtime MTU change: {plan}");
    assert!(
        !plan["changes"].to_string().contains("90-tune-mtu"),
        "{plan}"
    );
    let notes = plan["notes"].to_string();
    assert!(
        notes.contains("runtime-only")
            && notes.contains(
                "cannot tell whether /etc/systemd/network/20-driver.network applies to tp0 (matches on Driver=)"
            ),
        "{notes}"
    );
    let out = s2.tune(&ns, &["apply", "--yes", "--persist"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(ns.sh("ip -o link show tp0").contains("mtu 1500"));
    assert!(
        !Path::new(&s2.root())
            .join("etc/systemd/network/20-driver.network.d")
            .exists()
            && !Path::new(&s2.root())
                .join("etc/systemd/network/30-by-mac.network.d")
                .exists()
    );
    assert_eq!(s2.tune(&ns, &["rollback"]).status.code(), Some(0));

    // Name= matches an alternative name too, as in networkd.
    ns.sh("ip link property add dev tp0 altname uplink-alt");
    let s3 = Setup::mtu();
    s3.put(
        "/etc/systemd/network/40-alt.network",
        "[Match]\nName=uplink-*\n",
    );
    let out = s3.tune(&ns, &["plan", "--persist", "--detailed-exitcode"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(
        shown.contains("/etc/systemd/network/40-alt.network.d/90-tune-mtu.conf  create"),
        "{shown}"
    );
}

#[test]
fn bad_roots_and_unreadable_configuration_are_clear_errors() {
    if !ready() {
        return;
    }
    let s = Setup::new();
    let ns = Netns::new("persist-bad");
    ns.set_sysctl("net.core.somaxconn", "128");
    let out = ns.tune(
        &s.state(),
        &[
            "plan",
            "-p",
            &s.pb(),
            "--root",
            "/nonexistent/tune-root",
            "--persist",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("--root /nonexistent/tune-root: not a directory"),
        "{}",
        text(&out)
    );

    // A sysctl.d file that is not text, and a symlink loop: --persist refuses with
    // the reason; a plain plan still works (no drift can be computed, no panic).
    let dir = format!("{}/etc/sysctl.d", s.root());
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(format!("{dir}/10-bin.conf"), [0xff, 0xfe, 0x00]).expect("write");
    let out = s.tune(&ns, &["plan", "--persist"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("/etc/sysctl.d/10-bin.conf: not UTF-8 text"),
        "{}",
        text(&out)
    );
    let out = s.tune(&ns, &["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    std::fs::remove_file(format!("{dir}/10-bin.conf")).expect("rm");
    std::os::unix::fs::symlink("90-tune.conf", format!("{dir}/90-tune.conf")).expect("symlink");
    let out = s.tune(&ns, &["apply", "--yes", "--persist"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        ns.sysctl("net.core.somaxconn"),
        "128",
        "nothing was changed"
    );
}

#[test]
fn a_fix_already_in_effect_is_persisted_at_its_live_value() {
    if !ready() {
        return;
    }
    let s = Setup::new();
    // Fires whatever the value: its fix is "in effect" once applied.
    std::fs::write(
        s.dir.path().join("pb.yml"),
        PLAYBOOK.replace("below: 8192", "above: 0"),
    )
    .expect("write");
    let ns = Netns::new("persist-later");
    ns.set_sysctl("net.core.somaxconn", "128");
    let out = s.tune(&ns, &["apply", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(s.get("/etc/sysctl.d/90-tune.conf"), None, "runtime only");
    ns.set_sysctl("net.core.somaxconn", "9000");
    let out = s.tune(&ns, &["apply", "--yes", "--persist"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let written = s
        .get("/etc/sysctl.d/90-tune.conf")
        .expect("persisted later");
    assert!(
        written.ends_with("net.core.somaxconn = 9000\n"),
        "{written}"
    );
    assert!(
        !text(&out).contains("sysctl:net.core.somaxconn  "),
        "no runtime change: {}",
        text(&out)
    );
}

#[test]
fn a_facts_snapshot_replays_persistence() {
    if !ready() {
        return;
    }
    let s = Setup::new();
    let ns = Netns::new("persist-replay");
    ns.set_sysctl("net.core.somaxconn", "128");
    s.put(
        "/usr/lib/sysctl.d/99-vendor.conf",
        "net.core.somaxconn = 1024\n",
    );
    let facts = s.tune(&ns, &["facts", "--format", "json"]);
    assert_eq!(facts.status.code(), Some(0), "{}", text(&facts));
    let path = s.dir.path().join("facts.json");
    std::fs::write(&path, &facts.stdout).expect("write");
    let p = path.to_string_lossy().into_owned();
    let live = s.tune(&ns, &["plan", "--persist", "--format", "json"]);
    let replay = s.tune(
        &ns,
        &["plan", "--persist", "--format", "json", "--facts", &p],
    );
    let (live, replay): (serde_json::Value, serde_json::Value) = (
        serde_json::from_slice(&live.stdout).expect("json"),
        serde_json::from_slice(&replay.stdout).expect("json"),
    );
    assert_eq!(live["errors"], replay["errors"]);
    assert!(
        replay["errors"].to_string().contains("99-vendor.conf:1"),
        "{replay}"
    );
    assert_eq!(live["notes"], replay["notes"]);
}

#[test]
fn persisting_under_confirm_within_is_refused_and_nothing_changes() {
    if !ready() {
        return;
    }
    let s = Setup::new();
    let ns = Netns::new("persist-confirm");
    ns.set_sysctl("net.core.somaxconn", "128");
    // The files would be written before the confirm, so a reboot before it would keep
    // the change the watchdog is there to undo.
    let out = s.tune(
        &ns,
        &["apply", "--yes", "--persist", "--confirm-within", "30s"],
    );
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("--confirm-within cannot be combined with persisted configuration files"),
        "{shown}"
    );
    assert_eq!(ns.sysctl("net.core.somaxconn"), "128");
    assert_eq!(s.get("/etc/sysctl.d/90-tune.conf"), None);
}
