//! The kernel lab: the field faults end to end on a real Debian kernel in a disposable
//! VM, so that netem, `nf_conntrack_max` and memcg OOM kills can be exercised without
//! touching the host.
//!
//! `cargo test --test lab` builds an initramfs (busybox, `tune`, this binary as the
//! measuring helper, ip/tc/nft with their libraries, the kernel modules the scenarios
//! need, tests/lab/init.sh and tests/lab/scenarios.sh), boots it under
//! `qemu-system-x86_64 -accel tcg`, and reads the scenarios' results from the serial
//! console. Prerequisites come from `bash tests/lab/provision.sh` (Debian packages,
//! cached); without them the lab skips with a message, or fails when `CI=true`.
//!
//! This target has `harness = false`: the same binary, run inside the VM under the name
//! `labhelper` or `java`, is the helper in tests/lab/helper.rs.
//!
//! Environment: `TUNE_LAB_CACHE` (default /var/cache/tune-lab, holding lab.env from the
//! provisioning), `TUNE_LAB_KERNEL`, `TUNE_LAB_MODULES`, `TUNE_LAB_USERLAND`,
//! `TUNE_LAB_QEMU`, `TUNE_LAB_BUSYBOX` (override lab.env), `TUNE_LAB_TIMEOUT` (seconds,
//! default 270), `TUNE_LAB_WRITE_FIXTURES=1` (refresh tests/lab/fixtures from the VM),
//! `CI`.

mod support;
use support::require;

#[path = "lab/helper.rs"]
mod helper;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Every scenario the VM must report on; a missing one is a failure.
const SCENARIOS: &[&str] = &[
    "1-netem",
    "2-conntrack",
    "3-ephemeral-ports",
    "4-mtu",
    "5-listen-overflow",
    "6-memcg-oom",
    "7-netns",
    "8-nic-ring",
];

/// Kernel modules the scenarios load (their dependencies are added from `.modinfo`).
const MODULES: &[&str] = &[
    "veth",
    "sch_netem",
    "sch_tbf",
    "sch_htb",
    "nf_conntrack",
    "nf_tables",
    "nft_ct",
    // sock_diag for TCP (LISTEN ports for the port-range widening): a host loads it on
    // demand, the VM has no modprobe.
    "tcp_diag",
    // A virtio-net NIC (on the qemu command line) for the ring-size scenario.
    "virtio_pci",
    "virtio_net",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let program = args
        .first()
        .and_then(|arg0| Path::new(arg0).file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    if program == "labhelper" || program == "java" {
        let code = helper::run(&program, &args[1..]);
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    if args.iter().any(|arg| arg == "--list") {
        println!("lab: test");
        return ExitCode::SUCCESS;
    }
    if filtered_out(&args[1..]) {
        println!("lab: filtered out");
        return ExitCode::SUCCESS;
    }
    match lab() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("lab: FAILED: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Honours `cargo test NAME` filters and `--skip`, as libtest would for a test `lab`.
fn filtered_out(args: &[String]) -> bool {
    let mut filters = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--skip"
                if iter
                    .next()
                    .is_some_and(|skip| "lab".contains(skip.as_str())) =>
            {
                return true;
            }
            "--test-threads" | "--format" | "--color" | "-Z" | "--logfile" => {
                iter.next();
            }
            other if !other.starts_with('-') => filters.push(other),
            _ => {}
        }
    }
    !filters.is_empty() && !filters.iter().any(|filter| "lab".contains(filter))
}

type Result<T> = std::result::Result<T, String>;

fn lab() -> Result<()> {
    let started = Instant::now();
    let Some(config) = Config::find() else {
        return Ok(());
    };
    let work = tempfile::Builder::new()
        .prefix("tune-lab-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    let initrd = work.path().join("initrd.gz");
    build_initramfs(&config, &initrd)?;
    let built = started.elapsed();
    println!(
        "lab: initramfs {} KiB built in {:.1}s",
        std::fs::metadata(&initrd)
            .map(|m| m.len() / 1024)
            .unwrap_or(0),
        built.as_secs_f64()
    );
    let console = boot(&config, &initrd, &work.path().join("qemu.stderr"))?;
    let report = Report::parse(&console);
    report.print_table();
    println!(
        "lab: wall time {:.1}s (initramfs {:.1}s, VM {:.1}s)",
        started.elapsed().as_secs_f64(),
        built.as_secs_f64(),
        (started.elapsed() - built).as_secs_f64()
    );
    if std::env::var("TUNE_LAB_WRITE_FIXTURES").as_deref() == Ok("1") {
        report.write_fixtures()?;
    }
    report.verdict()
}

/// Where the provisioned pieces are: lab.env from tests/lab/provision.sh, each key
/// overridable by the environment variable of the same name.
struct Config {
    kernel: PathBuf,
    modules: PathBuf,
    userland: PathBuf,
    qemu: PathBuf,
    busybox: PathBuf,
    timeout: Duration,
}

impl Config {
    fn find() -> Option<Config> {
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
                    .unwrap_or(270),
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

fn which(tool: &str) -> Option<PathBuf> {
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
struct Image {
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

    fn dir(&mut self, path: &str) {
        self.add_parents(path);
        self.entries.insert(path.to_owned(), Entry::Dir);
    }

    fn file(&mut self, path: &str, data: Vec<u8>, mode: u32) {
        self.add_parents(path);
        self.entries
            .insert(path.to_owned(), Entry::File { data, mode });
    }

    fn copy(&mut self, path: &str, source: &Path, mode: u32) -> Result<()> {
        let data = std::fs::read(source).map_err(|e| format!("read {}: {e}", source.display()))?;
        self.file(path, data, mode);
        Ok(())
    }

    fn symlink(&mut self, path: &str, target: &str) {
        self.add_parents(path);
        self.entries
            .insert(path.to_owned(), Entry::Symlink(target.to_owned()));
    }

    /// Copies a dynamically linked program and every library `ldd` resolves for it
    /// (searching `library_path` first), the loader at its own path and the libraries
    /// in lib/x86_64-linux-gnu, which init puts on LD_LIBRARY_PATH.
    fn program(&mut self, path: &str, source: &Path, library_path: &str) -> Result<()> {
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
}

fn pad4(len: usize) -> usize {
    (4 - len % 4) % 4
}

fn build_initramfs(config: &Config, out: &Path) -> Result<()> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut image = Image::default();
    for dir in ["proc", "sys", "dev", "tmp", "run", "root", "etc", "var/lib"] {
        image.dir(dir);
    }
    image.copy("bin/busybox", &config.busybox, 0o755)?;
    image.symlink("bin/sh", "busybox");
    image.copy("init", &manifest.join("tests/lab/init.sh"), 0o755)?;
    image.copy(
        "lab/scenarios.sh",
        &manifest.join("tests/lab/scenarios.sh"),
        0o644,
    )?;

    let userland_libs = format!(
        "{0}/usr/lib/x86_64-linux-gnu:{0}/lib/x86_64-linux-gnu",
        config.userland.display()
    );
    image.program("usr/bin/tune", Path::new(env!("CARGO_BIN_EXE_tune")), "")?;
    let me = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    image.program("usr/bin/labhelper", &me, "")?;
    // Run through this name, the kernel calls the process `java` (comm).
    image.symlink("usr/bin/java", "labhelper");
    for tool in ["ip", "tc"] {
        let source = which(tool).ok_or(format!("no {tool} on the host"))?;
        image.program(&format!("usr/sbin/{tool}"), &source, "")?;
    }
    image.program(
        "usr/sbin/nft",
        &config.userland.join("usr/sbin/nft"),
        &userland_libs,
    )?;

    let playbooks = manifest.join("playbooks");
    for entry in
        std::fs::read_dir(&playbooks).map_err(|e| format!("{}: {e}", playbooks.display()))?
    {
        let path = entry.map_err(|e| e.to_string())?.path();
        if let Some(name) = path
            .file_name()
            .filter(|_| path.extension().is_some_and(|e| e == "yml"))
        {
            image.copy(
                &format!("lab/playbooks/{}", name.to_string_lossy()),
                &path,
                0o644,
            )?;
        }
    }

    let modules = resolve_modules(&config.modules, MODULES)?;
    let mut order = String::new();
    for (name, data) in modules {
        order.push_str(&name);
        order.push('\n');
        image.file(&format!("lab/modules/{name}.ko"), data, 0o644);
    }
    image.file("lab/modules.order", order.into_bytes(), 0o644);

    let mut gzip = Command::new("gzip")
        .args(["-1", "-n", "-c"])
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?)
        .spawn()
        .map_err(|e| format!("gzip: {e}"))?;
    let mut stdin = std::io::BufWriter::new(gzip.stdin.take().ok_or("gzip stdin")?);
    image
        .write_cpio(&mut stdin)
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

/// The modules to load, dependencies first, read from the kernel's module tree. The
/// Debian package ships no modules.dep (depmod runs at install time), so dependencies
/// come from each module's own `.modinfo` `depends=` string.
fn resolve_modules(dir: &Path, wanted: &[&str]) -> Result<Vec<(String, Vec<u8>)>> {
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

/// Boots the VM and returns its console output, echoing it as it arrives.
fn boot(config: &Config, initrd: &Path, stderr_file: &Path) -> Result<Vec<String>> {
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
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(left) {
            Ok(line) => {
                println!("vm| {line}");
                console.push(line);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                timed_out = true;
                break;
            }
        }
    }
    if timed_out {
        // Ours to end: the qemu process this function started.
        let _ = child.kill();
    }
    let status = child.wait().map_err(|e| format!("qemu: {e}"))?;
    let _ = reader.join();
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

// ---------------------------------------------------------------------------------
// Results.

#[derive(Default)]
struct Report {
    /// scenario → (label, text) measurements, in order.
    measurements: BTreeMap<String, Vec<(String, String)>>,
    /// scenario → (status, reason).
    results: BTreeMap<String, (String, String)>,
    /// fixture file → lines.
    fixtures: BTreeMap<String, Vec<String>>,
}

impl Report {
    fn parse(console: &[String]) -> Report {
        let mut report = Report::default();
        for line in console {
            if let Some(rest) = line.strip_prefix("LAB name=") {
                let (name, rest) = rest.split_once(' ').unwrap_or((rest, ""));
                let (label, text) = rest.split_once(' ').unwrap_or((rest, ""));
                report
                    .measurements
                    .entry(name.to_owned())
                    .or_default()
                    .push((label.to_owned(), text.to_owned()));
            } else if let Some(rest) = line.strip_prefix("LAB-RESULT name=") {
                let (name, rest) = rest.split_once(' ').unwrap_or((rest, ""));
                let (status, reason) = rest.split_once(" reason=").unwrap_or((rest, ""));
                let status = status.trim_start_matches("status=");
                report
                    .results
                    .insert(name.to_owned(), (status.to_owned(), reason.to_owned()));
            } else if let Some(rest) = line.strip_prefix("LAB-FX file=") {
                let (file, text) = rest.split_once(' ').unwrap_or((rest, ""));
                report
                    .fixtures
                    .entry(file.to_owned())
                    .or_default()
                    .push(text.to_owned());
            }
        }
        report
    }

    fn print_table(&self) {
        println!("\nlab: scenario results (symptom before -> after)");
        for scenario in SCENARIOS {
            let (status, reason) = self
                .results
                .get(*scenario)
                .cloned()
                .unwrap_or_else(|| ("missing".into(), "no LAB-RESULT".into()));
            println!("  {scenario:<20} {status:<8} {reason}");
            for (label, text) in self.measurements.get(*scenario).into_iter().flatten() {
                println!("      {label:<17} {text}");
            }
        }
        println!(
            "lab: fixtures captured: {}",
            self.fixtures.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }

    fn write_fixtures(&self) -> Result<()> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/fixtures");
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for (file, lines) in &self.fixtures {
            if file.contains('/') || file.starts_with('.') {
                return Err(format!("refusing fixture name {file}"));
            }
            let mut text = lines.join("\n");
            text.push('\n');
            std::fs::write(dir.join(file), text).map_err(|e| format!("{file}: {e}"))?;
            println!("lab: wrote tests/lab/fixtures/{file}");
        }
        Ok(())
    }

    /// Fails on any failed or missing scenario; pending ones are listed, not passed.
    fn verdict(&self) -> Result<()> {
        let mut failed = Vec::new();
        let (mut passed, mut pending) = (Vec::new(), Vec::new());
        for scenario in SCENARIOS {
            match self
                .results
                .get(*scenario)
                .map(|(status, _)| status.as_str())
            {
                Some("pass") => passed.push(*scenario),
                Some("pending") => pending.push(*scenario),
                _ => failed.push(*scenario),
            }
        }
        println!(
            "lab: passed: {}; pending (feature not in this build, not counted as passed): {}",
            passed.join(", "),
            if pending.is_empty() {
                "none".into()
            } else {
                pending.join(", ")
            }
        );
        // The libtest-style summary that CI tallies, one scenario per "test".
        println!(
            "test result: {}. {} passed; {} failed; {} ignored (kernel lab scenarios; ignored = pending)",
            if failed.is_empty() { "ok" } else { "FAILED" },
            passed.len(),
            failed.len(),
            pending.len()
        );
        if failed.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "scenarios failed or missing: {}",
                failed.join(", ")
            ))
        }
    }
}
