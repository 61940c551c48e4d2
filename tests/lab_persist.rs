//! The kernel lab's persistence test: `tune apply --persist` survives a reboot, and the
//! modules-load.d entry is what makes it survive.
//!
//! Three VMs under qemu TCG (tests/lab/vm.rs), each running tests/lab/persist.sh:
//! 1. a full conntrack table (nf_conntrack_max=32, ICMP flows through an nftables ct
//!    rule); `tune apply --yes --persist --root /persist -p conntrack.yml` writes
//!    /persist/etc/sysctl.d/90-tune.conf and /persist/etc/modules-load.d/90-tune.conf,
//!    which the VM prints base64 on its console;
//! 2. a fresh VM with both files at /etc: its init loads every module named in
//!    /etc/modules-load.d/*.conf (what systemd-modules-load does before
//!    systemd-sysctl), then runs procps `sysctl --system`: nf_conntrack_max is the
//!    persisted value;
//! 3. the same without the modules-load.d file: `sysctl --system` cannot set the key
//!    (nf_conntrack is not loaded yet) and says nothing (exit 0; `sysctl -p` of the file
//!    names the missing key), and loading the module afterwards gives the kernel's
//!    default, not the persisted value.
//!
//! Prerequisites as for tests/lab.rs (`bash tests/lab/provision.sh`), plus procps
//! `sysctl` on the host (copied into the initramfs with its libraries, as ip and tc
//! are). `TUNE_LAB_TIMEOUT` bounds each boot.

mod support;
use support::require;

#[allow(dead_code)]
#[path = "lab/vm.rs"]
mod vm;
use vm::{Config, Image, Result, boot, resolve_modules, which};

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const SYSCTL_FILE: &str = "etc/sysctl.d/90-tune.conf";
const MODULES_FILE: &str = "etc/modules-load.d/90-tune.conf";

/// What a boot printed: `LAB KEY VALUE` lines, the log, and the files between markers.
#[derive(Default, Debug)]
struct Console {
    values: BTreeMap<String, String>,
    log: Vec<String>,
    files: BTreeMap<String, Vec<u8>>,
}

impl Console {
    fn parse(lines: &[String]) -> Result<Console> {
        let mut out = Console::default();
        let mut file: Option<(String, String)> = None;
        for line in lines {
            if let Some(name) = line.strip_prefix("LAB-FILE-BEGIN ") {
                file = Some((name.to_owned(), String::new()));
            } else if let Some(name) = line.strip_prefix("LAB-FILE-END ") {
                let (begun, text) = file.take().ok_or(format!("{line} without a begin"))?;
                if begun != name {
                    return Err(format!("file {begun} ended as {name}"));
                }
                out.files.insert(name.to_owned(), base64_decode(&text)?);
            } else if let Some((_, text)) = file.as_mut() {
                text.push_str(line.trim());
            } else if let Some(rest) = line.strip_prefix("LAB-LOG ") {
                out.log.push(rest.to_owned());
            } else if let Some(rest) = line.strip_prefix("LAB ") {
                let (key, value) = rest.split_once(' ').unwrap_or((rest, ""));
                out.values.insert(key.to_owned(), value.trim().to_owned());
            }
        }
        Ok(out)
    }

    fn get(&self, key: &str) -> &str {
        self.values
            .get(key)
            .map(String::as_str)
            .unwrap_or("missing")
    }
}

fn base64_decode(text: &str) -> Result<Vec<u8>> {
    let value = |c: u8| -> Result<u32> {
        Ok(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return Err(format!("bad base64 byte {c:#x}")),
        }
        .into())
    };
    let bytes: Vec<u8> = text.bytes().filter(|&b| b != b'=').collect();
    let mut out = Vec::new();
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for &c in chunk {
            acc = acc << 6 | value(c)?;
        }
        let bits = chunk.len() * 6;
        acc <<= 24 - bits;
        for i in 0..(bits / 8) {
            out.push((acc >> (16 - 8 * i)) as u8);
        }
    }
    Ok(out)
}

/// The initramfs of one boot: `mode` for persist.sh, and files to place at `etc/...`.
fn build(config: &Config, out: &Path, mode: &str, etc: &BTreeMap<String, Vec<u8>>) -> Result<()> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut image = Image::base(&config.busybox, &manifest.join("tests/lab/persist.sh"))?;
    image.file("lab/mode", mode.as_bytes().to_vec(), 0o644);
    image.program("usr/bin/tune", Path::new(env!("CARGO_BIN_EXE_tune")), "")?;
    let ip = which("ip").ok_or("no ip on the host")?;
    image.program("usr/sbin/ip", &ip, "")?;
    let sysctl = procps_sysctl().ok_or("no procps sysctl on the host")?;
    image.program("usr/sbin/sysctl", &sysctl, "")?;
    let userland_libs = format!(
        "{0}/usr/lib/x86_64-linux-gnu:{0}/lib/x86_64-linux-gnu",
        config.userland.display()
    );
    image.program(
        "usr/sbin/nft",
        &config.userland.join("usr/sbin/nft"),
        &userland_libs,
    )?;
    image.copy(
        "lab/playbooks/conntrack.yml",
        &manifest.join("playbooks/conntrack.yml"),
        0o644,
    )?;
    // Each loadable module with its dependency order, for persist.sh's `load NAME`.
    for name in ["nf_conntrack", "nf_tables", "nft_ct"] {
        let ordered = resolve_modules(&config.modules, &[name])?;
        let deps: Vec<&str> = ordered.iter().map(|(n, _)| n.as_str()).collect();
        image.file(
            &format!("lab/modules/{name}.deps"),
            deps.join("\n").into_bytes(),
            0o644,
        );
        for (module, data) in ordered {
            image.file(&format!("lab/modules/{module}.ko"), data, 0o644);
        }
    }
    for (path, data) in etc {
        image.file(path, data.clone(), 0o644);
    }
    image.write_gz(out)
}

/// The host's procps sysctl (not busybox's applet, which has no `--system`).
fn procps_sysctl() -> Option<std::path::PathBuf> {
    let path = which("sysctl")?;
    let out = Command::new(&path).arg("--version").output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .contains("procps")
        .then_some(path)
}

fn run_boot(
    config: &Config,
    work: &Path,
    name: &str,
    mode: &str,
    etc: &BTreeMap<String, Vec<u8>>,
) -> Result<Console> {
    let initrd = work.join(format!("{name}.gz"));
    build(config, &initrd, mode, etc)?;
    println!("lab-persist: booting {name}");
    let lines = boot(config, &initrd, &work.join(format!("{name}.stderr")))?;
    let console = Console::parse(&lines)?;
    println!("lab-persist: {name}: {:?}", console.values);
    Ok(console)
}

/// `key = value` of a sysctl.d file.
fn conf_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        (k.trim() == key).then(|| v.trim().to_owned())
    })
}

#[test]
fn persisted_conntrack_max_survives_reboot_only_with_its_module_entry() {
    let Some(config) = Config::find() else {
        return;
    };
    if !require(
        procps_sysctl().is_some(),
        "the persistence lab needs procps `sysctl` on the host",
    ) {
        return;
    }
    let work = tempfile::Builder::new()
        .prefix("tune-lab-persist-")
        .tempdir()
        .unwrap();

    // Boot 1: fault, apply --persist, the files.
    let first = run_boot(&config, work.path(), "boot1", "persist", &BTreeMap::new()).unwrap();
    let default = first.get("default").to_owned();
    assert!(
        default.parse::<u64>().is_ok(),
        "boot 1: no default nf_conntrack_max: {first:?}"
    );
    assert!(
        first.get("table-full").parse::<u64>().unwrap_or(0) > 0,
        "boot 1: the table did not fill: {first:?}"
    );
    assert_eq!(first.get("rc-plan"), "2", "boot 1: plan: {:#?}", first.log);
    assert_eq!(
        first.get("rc-apply"),
        "0",
        "boot 1: apply: {:#?}",
        first.log
    );
    let sysctl_conf = String::from_utf8(
        first
            .files
            .get(SYSCTL_FILE)
            .unwrap_or_else(|| panic!("boot 1 wrote no {SYSCTL_FILE}: {:#?}", first.log))
            .clone(),
    )
    .unwrap();
    let modules_conf = String::from_utf8(
        first
            .files
            .get(MODULES_FILE)
            .unwrap_or_else(|| panic!("boot 1 wrote no {MODULES_FILE}: {:#?}", first.log))
            .clone(),
    )
    .unwrap();
    println!("lab-persist: {SYSCTL_FILE}:\n{sysctl_conf}{MODULES_FILE}:\n{modules_conf}");
    let persisted = conf_value(&sysctl_conf, "net.netfilter.nf_conntrack_max")
        .expect("nf_conntrack_max in the persisted sysctl file");
    assert_eq!(first.get("applied"), persisted, "boot 1: live value");
    assert_ne!(
        persisted, default,
        "the persisted value is the kernel default"
    );
    assert!(
        modules_conf
            .lines()
            .any(|line| line.trim() == "nf_conntrack"),
        "no nf_conntrack line in {MODULES_FILE}: {modules_conf}"
    );

    // Boot 2: both files; modules-load.d, then sysctl --system.
    let both = BTreeMap::from([
        (SYSCTL_FILE.to_owned(), sysctl_conf.clone().into_bytes()),
        (MODULES_FILE.to_owned(), modules_conf.into_bytes()),
    ]);
    let second = run_boot(&config, work.path(), "boot2", "boot", &both).unwrap();
    assert_eq!(second.get("loaded"), "nf_conntrack", "boot 2: {second:?}");
    assert_eq!(
        second.get("rc-sysctl"),
        "0",
        "boot 2: sysctl --system: {:#?}",
        second.log
    );
    assert_eq!(
        second.get("after-sysctl"),
        persisted,
        "boot 2: the persisted value after sysctl --system"
    );

    // Boot 3: the sysctl file alone.
    let alone = BTreeMap::from([(SYSCTL_FILE.to_owned(), sysctl_conf.into_bytes())]);
    let third = run_boot(&config, work.path(), "boot3", "boot", &alone).unwrap();
    assert_eq!(third.get("before-sysctl"), "absent", "boot 3: {third:?}");
    assert_eq!(third.get("after-sysctl"), "absent", "boot 3: {third:?}");
    // procps `sysctl --system` skips a key that does not exist silently (exit 0, it
    // sets IgnoreError for --system); `sysctl -p` of the same file names it.
    assert!(
        third
            .log
            .iter()
            .any(|line| line.contains("Applying /etc/sysctl.d/90-tune.conf")),
        "boot 3: sysctl --system did not read tune's file: {:#?}",
        third.log
    );
    let after_p = third
        .log
        .iter()
        .position(|line| line == "-p:")
        .expect("boot 3: no sysctl -p");
    assert!(
        third.log[after_p..]
            .iter()
            .any(|line| line.contains("nf_conntrack_max") && line.contains("No such file")),
        "boot 3: sysctl -p does not report the missing key: {:#?}",
        third.log
    );
    assert_ne!(third.get("rc-sysctl-p"), "0", "boot 3: sysctl -p exit");
    assert_eq!(
        third.get("after-load"),
        default,
        "boot 3: loading nf_conntrack later gives the kernel default, not {persisted}"
    );
}
