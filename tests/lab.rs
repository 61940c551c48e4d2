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
//! default 480), `TUNE_LAB_WRITE_FIXTURES=1` (refresh tests/lab/fixtures from the VM),
//! `CI`.

mod support;

#[path = "lab/helper.rs"]
mod helper;
#[path = "lab/vm.rs"]
mod vm;
use vm::{Config, Image, boot, resolve_modules, which};

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

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
    "9-softnet",
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

use vm::Result;

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

fn build_initramfs(config: &Config, out: &Path) -> Result<()> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut image = Image::base(&config.busybox, &manifest.join("tests/lab/init.sh"))?;
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

    image.write_gz(out)
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
