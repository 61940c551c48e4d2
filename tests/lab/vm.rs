//! The kernel lab's VM, shared by tests/lab.rs and tests/lab_persist.rs: where the
//! provisioned pieces are (`Config`), the initramfs (`Image`, the kernel modules with
//! their dependencies), and booting it under qemu TCG (`boot`; a guest kernel that
//! locks up and stops making progress is stopped and booted again, once).

use crate::support::require;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub type Result<T> = std::result::Result<T, String>;

/// Where the provisioned pieces are: lab.env from tests/lab/provision.sh, each key
/// overridable by the environment variable of the same name.
pub struct Config {
    pub kernel: PathBuf,
    pub modules: PathBuf,
    pub userland: PathBuf,
    pub qemu: PathBuf,
    pub busybox: PathBuf,
    pub timeout: Duration,
}

impl Config {
    pub fn find() -> Option<Config> {
        let cache =
            std::env::var("TUNE_LAB_CACHE").unwrap_or_else(|_| "/var/cache/tune-lab".into());
        let env_file = Path::new(&cache).join("lab.env");
        let mut values = BTreeMap::new();
        if let Ok(text) = std::fs::read_to_string(&env_file) {
            for line in text.lines() {
                if let Some((key, value)) = line.split_once('=') {
                    values.insert(key.trim().to_owned(), value.trim().to_owned());
                }
            }
        }
        let get = |key: &str| {
            std::env::var(key)
                .ok()
                .or_else(|| values.get(key).cloned())
                .map(PathBuf::from)
                .unwrap_or_default()
        };
        let config = Config {
            kernel: get("TUNE_LAB_KERNEL"),
            modules: get("TUNE_LAB_MODULES"),
            userland: get("TUNE_LAB_USERLAND"),
            qemu: get("TUNE_LAB_QEMU"),
            busybox: get("TUNE_LAB_BUSYBOX"),
            timeout: Duration::from_secs(
                std::env::var("TUNE_LAB_TIMEOUT")
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(480),
            ),
        };
        let hint = format!(
            "kernel lab not provisioned (no usable {}): run `bash tests/lab/provision.sh` as root",
            env_file.display()
        );
        let checks = [
            (
                config.kernel.is_file(),
                "the Debian cloud kernel (TUNE_LAB_KERNEL)",
            ),
            (
                config.modules.join("kernel").is_dir(),
                "its modules (TUNE_LAB_MODULES)",
            ),
            (
                config.userland.join("usr/sbin/nft").is_file(),
                "nft (TUNE_LAB_USERLAND)",
            ),
            (config.qemu.is_file(), "qemu-system-x86_64 (TUNE_LAB_QEMU)"),
            (
                config.busybox.is_file(),
                "a static busybox (TUNE_LAB_BUSYBOX)",
            ),
        ];
        for (present, what) in checks {
            if !require(present, &format!("{hint}; missing {what}")) {
                return None;
            }
        }
        for tool in ["ip", "tc", "ldd", "gzip"] {
            if !require(
                which(tool).is_some(),
                &format!("kernel lab needs `{tool}` on the host"),
            ) {
                return None;
            }
        }
        Some(config)
    }
}

pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|dir| Path::new(dir).join(tool))
        .find(|candidate| candidate.is_file())
}

// ---------------------------------------------------------------------------------
// The initramfs.

enum Entry {
    Dir,
    File { data: Vec<u8>, mode: u32 },
    Symlink(String),
}

/// An initramfs being assembled: paths (without leading `/`) to entries. A BTreeMap
/// keeps every directory before its contents, as the kernel's unpacker needs.
#[derive(Default)]
pub struct Image {
    entries: BTreeMap<String, Entry>,
}

impl Image {
    fn add_parents(&mut self, path: &str) {
        let mut prefix = String::new();
        let parts: Vec<&str> = path.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            self.entries.entry(prefix.clone()).or_insert(Entry::Dir);
        }
    }

    /// The base every lab VM boots: the pseudo-filesystem mount points, a static
    /// busybox as /bin/sh, and `init` as /init.
    pub fn base(busybox: &Path, init: &Path) -> Result<Image> {
        let mut image = Image::default();
        for dir in ["proc", "sys", "dev", "tmp", "run", "root", "etc", "var/lib"] {
            image.dir(dir);
        }
        image.copy("bin/busybox", busybox, 0o755)?;
        image.symlink("bin/sh", "busybox");
        image.copy("init", init, 0o755)?;
        Ok(image)
    }

    pub fn dir(&mut self, path: &str) {
        self.add_parents(path);
        self.entries.insert(path.to_owned(), Entry::Dir);
    }

    pub fn file(&mut self, path: &str, data: Vec<u8>, mode: u32) {
        self.add_parents(path);
        self.entries
            .insert(path.to_owned(), Entry::File { data, mode });
    }

    pub fn copy(&mut self, path: &str, source: &Path, mode: u32) -> Result<()> {
        let data = std::fs::read(source).map_err(|e| format!("read {}: {e}", source.display()))?;
        self.file(path, data, mode);
        Ok(())
    }

    pub fn symlink(&mut self, path: &str, target: &str) {
        self.add_parents(path);
        self.entries
            .insert(path.to_owned(), Entry::Symlink(target.to_owned()));
    }

    /// Copies a dynamically linked program and every library `ldd` resolves for it
    /// (searching `library_path` first), the loader at its own path and the libraries
    /// in lib/x86_64-linux-gnu, which init puts on LD_LIBRARY_PATH.
    pub fn program(&mut self, path: &str, source: &Path, library_path: &str) -> Result<()> {
        self.copy(path, source, 0o755)?;
        let output = Command::new("ldd")
            .arg(source)
            .env("LD_LIBRARY_PATH", library_path)
            .output()
            .map_err(|e| format!("ldd: {e}"))?;
        let text = String::from_utf8_lossy(&output.stdout);
        for line in text.lines().map(str::trim) {
            if line.contains("not found") {
                return Err(format!("{}: library {line}", source.display()));
            }
            if let Some((_, resolved)) = line.split_once("=> ") {
                let lib = resolved.split(" (").next().unwrap_or_default();
                if let Some(name) = Path::new(lib).file_name().filter(|_| lib.starts_with('/')) {
                    let dest = format!("lib/x86_64-linux-gnu/{}", name.to_string_lossy());
                    if !self.entries.contains_key(&dest) {
                        self.copy(&dest, Path::new(lib), 0o755)?;
                    }
                }
            } else if line.starts_with('/') {
                let loader = line.split(' ').next().unwrap_or_default();
                self.copy(loader.trim_start_matches('/'), Path::new(loader), 0o755)?;
            }
        }
        Ok(())
    }

    /// Writes the cpio "newc" archive.
    fn write_cpio(&self, out: &mut impl Write) -> std::io::Result<()> {
        let mut ino = 1;
        let mut write_entry = |out: &mut dyn Write, name: &str, mode: u32, data: &[u8]| {
            ino += 1;
            let header = format!(
                "070701{ino:08x}{mode:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
                0,
                0,
                if mode & 0o170000 == 0o040000 { 2 } else { 1 },
                0,
                data.len(),
                0,
                0,
                0,
                0,
                name.len() + 1,
                0
            );
            out.write_all(header.as_bytes())?;
            out.write_all(name.as_bytes())?;
            out.write_all(&[0])?;
            out.write_all(&vec![0; pad4(110 + name.len() + 1)])?;
            out.write_all(data)?;
            out.write_all(&vec![0; pad4(data.len())])
        };
        for (path, entry) in &self.entries {
            match entry {
                Entry::Dir => write_entry(out, path, 0o040755, &[])?,
                Entry::File { data, mode } => write_entry(out, path, 0o100000 | mode, data)?,
                Entry::Symlink(target) => write_entry(out, path, 0o120777, target.as_bytes())?,
            }
        }
        write_entry(out, "TRAILER!!!", 0, &[])
    }

    /// Writes the archive gzip-compressed to `out`.
    pub fn write_gz(&self, out: &Path) -> Result<()> {
        let mut gzip = Command::new("gzip")
            .args(["-1", "-n", "-c"])
            .stdin(Stdio::piped())
            .stdout(std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?)
            .spawn()
            .map_err(|e| format!("gzip: {e}"))?;
        let mut stdin = std::io::BufWriter::new(gzip.stdin.take().ok_or("gzip stdin")?);
        self.write_cpio(&mut stdin)
            .map_err(|e| format!("writing cpio: {e}"))?;
        drop(
            stdin
                .into_inner()
                .map_err(|e| format!("writing cpio: {e}"))?,
        );
        let status = gzip.wait().map_err(|e| format!("gzip: {e}"))?;
        if !status.success() {
            return Err(format!("gzip failed: {status}"));
        }
        Ok(())
    }
}

fn pad4(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// The modules to load, dependencies first, read from the kernel's module tree. The
/// Debian package ships no modules.dep (depmod runs at install time), so dependencies
/// come from each module's own `.modinfo` `depends=` string.
pub fn resolve_modules(dir: &Path, wanted: &[&str]) -> Result<Vec<(String, Vec<u8>)>> {
    let mut index = BTreeMap::new();
    let mut stack = vec![dir.join("kernel")];
    while let Some(current) = stack.pop() {
        let entries =
            std::fs::read_dir(&current).map_err(|e| format!("{}: {e}", current.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Some((stem, _)) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.split_once(".ko"))
            {
                index.insert(stem.replace('-', "_"), path);
            }
        }
    }
    let builtin: BTreeSet<String> = std::fs::read_to_string(dir.join("modules.builtin"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            Path::new(line)
                .file_name()?
                .to_str()?
                .split_once(".ko")
                .map(|(s, _)| s.replace('-', "_"))
        })
        .collect();
    let mut ordered = Vec::new();
    let mut seen = BTreeSet::new();
    fn visit(
        name: &str,
        index: &BTreeMap<String, PathBuf>,
        builtin: &BTreeSet<String>,
        seen: &mut BTreeSet<String>,
        ordered: &mut Vec<(String, Vec<u8>)>,
    ) -> Result<()> {
        if builtin.contains(name) || !seen.insert(name.to_owned()) {
            return Ok(());
        }
        let path = index
            .get(name)
            .ok_or(format!("kernel module {name} not found"))?;
        let data = read_module(path)?;
        for dep in modinfo_depends(&data) {
            visit(&dep, index, builtin, seen, ordered)?;
        }
        ordered.push((name.to_owned(), data));
        Ok(())
    }
    for name in wanted {
        visit(name, &index, &builtin, &mut seen, &mut ordered)?;
    }
    Ok(ordered)
}

/// Reads a module, decompressing .ko.xz / .ko.zst / .ko.gz (newer Debian kernels
/// compress them; busybox insmod wants plain ELF).
fn read_module(path: &Path) -> Result<Vec<u8>> {
    let name = path.to_string_lossy();
    let tool = [(".xz", "xz"), (".zst", "zstd"), (".gz", "gzip")]
        .into_iter()
        .find(|(suffix, _)| name.ends_with(suffix));
    match tool {
        None => std::fs::read(path).map_err(|e| format!("{name}: {e}")),
        Some((_, tool)) => {
            let output = Command::new(tool)
                .args(["-d", "-c"])
                .arg(path)
                .output()
                .map_err(|e| format!("{tool} -d {name}: {e}"))?;
            if !output.status.success() {
                return Err(format!("{tool} -d {name} failed"));
            }
            Ok(output.stdout)
        }
    }
}

fn modinfo_depends(module: &[u8]) -> Vec<String> {
    let key = b"\0depends=";
    let Some(at) = module.windows(key.len()).position(|w| w == key) else {
        return Vec::new();
    };
    let value = &module[at + key.len()..];
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    String::from_utf8_lossy(&value[..end])
        .split(',')
        .filter(|dep| !dep.is_empty())
        .map(|dep| dep.replace('-', "_"))
        .collect()
}

// ---------------------------------------------------------------------------------
// The VM.

/// How long the scenarios may go without a `LAB-` line once the guest kernel has
/// reported a soft lockup, before the boot counts as hung (a scenario's own lines come
/// every few seconds; the longest scenario takes about 30 s).
const HUNG_AFTER_LOCKUP: Duration = Duration::from_secs(90);

/// What [`boot`] failed with when the guest kernel locked up (a vCPU stuck in the
/// kernel, as the emulated guest did once in about ten lab runs, in the conntrack
/// burst, and never when run again): the VM is stopped and booted again once.
const GUEST_HUNG: &str = "the guest kernel hung";

/// Boots the VM and returns its console output, echoing it as it arrives. A guest
/// kernel that reports a soft lockup and then makes no progress for
/// [`HUNG_AFTER_LOCKUP`] is stopped, and the whole run is booted again once, with a
/// message saying so: the scenarios' checks all run again, nothing is counted twice,
/// and a second hang fails the lab.
pub fn boot(config: &Config, initrd: &Path, stderr_file: &Path) -> Result<Vec<String>> {
    match boot_once(config, initrd, stderr_file) {
        Err(e) if e.starts_with(GUEST_HUNG) => {
            println!("lab: {e}; booting the VM again, once (every scenario runs again)");
            boot_once(config, initrd, stderr_file)
        }
        other => other,
    }
}

fn boot_once(config: &Config, initrd: &Path, stderr_file: &Path) -> Result<Vec<String>> {
    // A file, not a pipe nobody reads while the VM runs: qemu must never block on it.
    let stderr = std::fs::File::create(stderr_file)
        .map_err(|e| format!("{}: {e}", stderr_file.display()))?;
    let mut child = Command::new(&config.qemu)
        .args([
            "-accel",
            "tcg",
            "-m",
            "1024",
            "-smp",
            "2",
            "-nographic",
            "-no-reboot",
        ])
        // One virtio-net NIC for the 8-nic-ring scenario: the virtqueue size (1024) is
        // the ring maximum virtio_net reports; queue_reset lets the driver resize it.
        .args([
            "-netdev",
            "user,id=n0,restrict=on",
            "-device",
            "virtio-net-pci,netdev=n0,rx_queue_size=1024,queue_reset=on",
            "-kernel",
        ])
        .arg(&config.kernel)
        .arg("-initrd")
        .arg(initrd)
        .args([
            "-append",
            "console=ttyS0 panic=-1 loglevel=1 mitigations=off",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("{}: {e}", config.qemu.display()))?;
    let (sender, receiver) = mpsc::channel();
    let stdout = child.stdout.take().ok_or("qemu stdout")?;
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout)
            .split(b'\n')
            .map_while(|line| line.ok())
        {
            let line = String::from_utf8_lossy(&line)
                .trim_end_matches('\r')
                .to_owned();
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + config.timeout;
    let mut console = Vec::new();
    let mut timed_out = false;
    // Since when the guest has reported a soft lockup with no scenario line after it.
    let mut locked_up: Option<Instant> = None;
    let mut hung = false;
    loop {
        let mut until = deadline;
        if let Some(since) = locked_up {
            until = until.min(since + HUNG_AFTER_LOCKUP);
        }
        match receiver.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                println!("vm| {line}");
                if line.contains("soft lockup") {
                    locked_up.get_or_insert_with(Instant::now);
                } else if line.starts_with("LAB-") {
                    locked_up = None;
                }
                console.push(line);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                hung = locked_up.is_some() && Instant::now() < deadline;
                timed_out = !hung;
                break;
            }
        }
    }
    if timed_out || hung {
        // Ours to end: the qemu process this function started.
        let _ = child.kill();
    }
    let status = child.wait().map_err(|e| format!("qemu: {e}"))?;
    let _ = reader.join();
    if hung {
        let last = console
            .iter()
            .rev()
            .find(|line| line.starts_with("LAB-"))
            .map_or("none", String::as_str);
        return Err(format!(
            "{GUEST_HUNG}: a soft lockup, then no scenario line for {}s (last: {last})",
            HUNG_AFTER_LOCKUP.as_secs()
        ));
    }
    if timed_out {
        return Err(format!(
            "the VM did not finish within {}s",
            config.timeout.as_secs()
        ));
    }
    if !console.iter().any(|line| line.starts_with("LAB-DONE")) {
        let stderr = std::fs::read_to_string(stderr_file).unwrap_or_default();
        return Err(format!(
            "the VM stopped ({status}) before LAB-DONE; qemu stderr: {stderr}"
        ));
    }
    Ok(console)
}
