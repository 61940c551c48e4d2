//! The command line of commit-confirmed applies: `apply --confirm-within`, the probes,
//! `tune confirm`, the hidden `tune watchdog ID` process, and the recovery of overdue
//! transactions that every `plan`, `apply`, `history` and `confirm` run does first.
//!
//! The watchdog is this same binary re-executed in its own session (setsid in the
//! child before exec, SIGHUP ignored, stdin from /dev/null, output to
//! `STATE_DIR/watchdog/ID.log`, working directory `/`): it is in neither the caller's
//! process group nor its session, so a dying SSH session, terminal or shell does not
//! take it along.
//!
//! Probes run in tune's own network namespace by default — where the operator's SSH
//! session arrives — even when `--netns` sends the changes elsewhere; `--probe-netns
//! NAME` runs them in /run/netns/NAME instead.

use std::fs::OpenOptions;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;

use super::{Command, exit, print_out, render, require_root};
use crate::apply::Report;
use crate::apply::confirm::{self as confirmed, Confirmation, Pending, Reason, Watched};
use crate::apply::journal::{StateDir, Status};
use crate::apply::probe::Probe;
use crate::kernel::netns::{NetnsRecord, NetnsTarget};

/// `tune apply` flags for commit-confirmed applies and probes.
#[derive(Debug, Args)]
pub struct ConfirmArgs {
    /// Roll the changes back unless `tune confirm` runs within DURATION (e.g. 90s, 5m).
    /// A watchdog process that outlives the terminal enforces it.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    confirm_within: Option<Duration>,
    /// A probe run before the apply (it must pass), right after it, and every
    /// --probe-interval until the deadline: tcp:HOST:PORT[,timeout=DUR][,expect=BYTES][,send=TEXT]
    /// or icmp:HOST[,timeout=DUR]. Repeatable.
    #[arg(long = "probe", value_name = "SPEC", value_parser = parse_probe)]
    probes: Vec<Probe>,
    /// A probe command, run with `sh -c`: exit 0 within 10 s means healthy. Repeatable.
    #[arg(long = "probe-cmd", value_name = "COMMAND", value_parser = parse_probe_cmd)]
    probe_cmds: Vec<Probe>,
    /// Run the probes in /run/netns/NAME (default: tune's own network namespace, the
    /// one your SSH session arrives in, whatever --netns says).
    #[arg(long, value_name = "NAME")]
    probe_netns: Option<String>,
    /// How often the watchdog re-runs the probes until the deadline.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    probe_interval: Duration,
}

impl ConfirmArgs {
    /// `--confirm-within DURATION` alone (the Ansible module's `confirm_within`).
    pub fn within(duration: &str) -> Result<ConfirmArgs> {
        Ok(ConfirmArgs {
            confirm_within: Some(parse_duration(duration).map_err(anyhow::Error::msg)?),
            probes: Vec::new(),
            probe_cmds: Vec::new(),
            probe_netns: None,
            probe_interval: Duration::from_secs(5),
        })
    }

    /// Whether `--confirm-within` was given.
    pub fn confirms(&self) -> bool {
        self.confirm_within.is_some()
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e}"))?;
    if d.is_zero() {
        return Err(format!("{s:?}: must be more than zero"));
    }
    Ok(d)
}

fn parse_probe(s: &str) -> Result<Probe, String> {
    Probe::parse(s)
}

fn parse_probe_cmd(s: &str) -> Result<Probe, String> {
    Probe::command(s)
}

/// The probes of one apply, their namespace resolved.
pub struct Checks {
    probes: Vec<Probe>,
    probe_netns: Option<NetnsRecord>,
    confirm_within: Option<Duration>,
    probe_interval: Duration,
    /// Set by [`arm`]: the deadline and the watchdog's pid.
    armed: Option<(f64, u32)>,
}

impl Checks {
    /// The deadline (Unix seconds) once [`arm`] journaled it.
    pub fn deadline(&self) -> Option<f64> {
        self.armed.map(|(deadline, _)| deadline)
    }
}

/// Before anything changes: refuses while a transaction waits for its confirm, then
/// runs every probe (all must pass).
pub fn preflight(args: &ConfirmArgs, state_dir: &Path) -> Result<Checks> {
    let probe_netns = match &args.probe_netns {
        Some(name) => Some(NetnsTarget::Name(name.clone()).resolve()?),
        None => None,
    };
    if let Some(state) = StateDir::existing(state_dir)? {
        let waiting = state
            .transactions()?
            .transactions
            .into_iter()
            .find(|t| t.status() == Status::PendingConfirmation);
        if let Some(t) = waiting {
            bail!(
                "transaction {id} is pending confirmation{deadline}: confirm it (`tune confirm {id}`) or roll it back (`tune rollback {id}`) first; nothing was changed",
                id = t.id,
                deadline = deadline_text(&t)
            );
        }
    }
    let probes: Vec<Probe> = args
        .probes
        .iter()
        .chain(&args.probe_cmds)
        .cloned()
        .collect();
    let checks = Checks {
        probes,
        probe_netns,
        confirm_within: args.confirm_within,
        probe_interval: args.probe_interval,
        armed: None,
    };
    if checks.confirm_within.is_some() {
        // The change may cut the very SSH session this runs in: a hangup must not stop
        // tune between the apply and the start of the watchdog.
        // SAFETY: signal(2) with SIG_IGN has no preconditions.
        unsafe { libc::signal(libc::SIGHUP, libc::SIG_IGN) };
    }
    if checks.probes.is_empty() {
        return Ok(checks);
    }
    match confirmed::run_probes(&checks.probes, checks.probe_netns.as_ref())? {
        Ok(passed) => {
            for (probe, summary) in passed {
                print_out(&format!("preflight: {probe} ok: {summary}\n"))?;
            }
            Ok(checks)
        }
        Err((probe, output)) => bail!(
            "preflight: probe {probe} failed before anything changed: {output}; nothing was changed"
        ),
    }
}

fn deadline_text(t: &crate::apply::journal::Transaction) -> String {
    confirmed::pending(t)
        .map(|p| format!(" (deadline {})", render::time(p.deadline)))
        .unwrap_or_default()
}

/// Right after a successful apply, before anything is printed (the terminal may be
/// gone): with `--confirm-within`, journals the deadline and starts the watchdog.
///
/// NOTE for persistence: a transaction armed here must not write persisted
/// configuration files at apply time; they are written when it is confirmed
/// (`crate::apply::confirm::on_confirmed`), so a reboot before the confirm comes back to
/// the old state.
pub fn arm(state: &StateDir, checks: &mut Checks, report: &Report) -> Result<()> {
    let Some(within) = checks.confirm_within else {
        return Ok(());
    };
    if report.status != Status::Applied {
        return Ok(());
    }
    let id = report.transaction;
    let deadline = crate::facts::now_unix() + within.as_secs_f64();
    confirmed::mark_pending(
        state,
        id,
        &Pending {
            deadline,
            probes: checks.probes.clone(),
            probe_netns: checks.probe_netns.clone(),
            probe_interval: checks.probe_interval.as_secs_f64(),
            own_netns: None,
        },
    )?;
    let pid = spawn_watchdog(state, id)?;
    confirmed::record_watchdog(state, id, pid)?;
    checks.armed = Some((deadline, pid));
    Ok(())
}

/// After a successful apply (and [`arm`]): runs the probes once and rolls back at once
/// if one fails; says how to confirm. Returns the exit code.
pub fn after_apply(state: &StateDir, checks: &Checks, id: u64) -> Result<i32> {
    if !checks.probes.is_empty() {
        match confirmed::run_probes(&checks.probes, checks.probe_netns.as_ref())? {
            Ok(passed) => {
                for (probe, summary) in passed {
                    print_out(&format!("after apply: {probe} ok: {summary}\n"))?;
                }
            }
            Err((probe, output)) => {
                // Roll back before printing: the terminal may be what the change broke.
                let reason = Reason::ProbeFailed {
                    probe: probe.clone(),
                    output: output.clone(),
                };
                let t = state.transaction(id)?;
                let report = confirmed::roll_back_in_netns(state, &t, &reason);
                print_out(&format!(
                    "after apply: probe {probe} FAILED: {output}\nrolled back transaction {id}:\n"
                ))?;
                let report = report?;
                print_out(&render::report("rollback", &report))?;
                return Ok(match report.status {
                    Status::RolledBack => exit::ROLLED_BACK,
                    _ => exit::NEEDS_ATTENTION,
                });
            }
        }
    }
    if let (Some((deadline, pid)), Some(within)) = (checks.armed, checks.confirm_within) {
        print_out(&format!(
            "transaction {id} is pending confirmation: run `tune confirm {id}` before {} (within {}), or it is rolled back (watchdog pid {pid})\n",
            render::time(deadline),
            humantime::format_duration(within)
        ))?;
    }
    Ok(exit::OK)
}

/// Starts `tune watchdog ID` in its own session; returns its pid.
fn spawn_watchdog(state: &StateDir, id: u64) -> Result<u32> {
    let exe = std::env::current_exe().context("cannot find tune's own executable")?;
    let dir = state
        .path
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", state.path.display()))?;
    let logs = dir.join("watchdog");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&logs)
        .with_context(|| format!("cannot create {}", logs.display()))?;
    let log_path = logs.join(format!("{id:06}.log"));
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--state-dir")
        .arg(&dir)
        .arg("watchdog")
        .arg(id.to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .current_dir("/")
        .env_remove("TUNE_FAULT_CRASH_AFTER_STEP");
    // SAFETY: between fork and exec only async-signal-safe calls: setsid(2) makes the
    // child leader of a new session and process group, with no controlling terminal;
    // signal(2) ignores SIGHUP (kept across exec).
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .context("cannot start the watchdog; the transaction stays pending and the next tune run rolls it back after the deadline")?;
    // Not waited for: it outlives this process and is reparented to init.
    Ok(child.id())
}

/// `tune watchdog ID` (hidden): enforces a pending transaction's deadline.
pub fn cmd_watchdog(state_dir: &Path, id: u64) -> Result<i32> {
    let state = StateDir::open(state_dir)?;
    let stamp = || render::time(crate::facts::now_unix());
    anstream::eprintln!(
        "{} watchdog {} for transaction {id}",
        stamp(),
        std::process::id()
    );
    let mut log = |line: &str| anstream::eprintln!("{} {line}", stamp());
    let outcome = confirmed::watch(&state, id, &mut log)?;
    Ok(match outcome {
        Watched::Ended(status) => {
            log(&format!("transaction {id} is {}: done", status.describe()));
            exit::OK
        }
        Watched::RolledBack(_, report) => {
            anstream::eprint!("{}", render::report("rollback", &report));
            match report.status {
                Status::RolledBack => exit::OK,
                _ => exit::NEEDS_ATTENTION,
            }
        }
    })
}

/// `tune confirm [ID]`.
pub fn cmd_confirm(state_dir: &Path, id: Option<u64>) -> Result<i32> {
    require_root("confirm")?;
    let Some(state) = StateDir::existing(state_dir)? else {
        bail!(
            "no transaction is pending confirmation (no state in {})",
            state_dir.display()
        );
    };
    match confirmed::confirm(&state, id)? {
        Confirmation::Confirmed { id } => {
            print_out(&format!(
                "transaction {id} confirmed: the changes are kept\n"
            ))?;
            Ok(exit::OK)
        }
        Confirmation::TooLate { id, deadline } => {
            let t = state.transaction(id)?;
            let report = confirmed::roll_back_in_netns(&state, &t, &Reason::NotConfirmed)?;
            print_out(&render::report("rollback", &report))?;
            if report.status != Status::RolledBack {
                return Ok(exit::NEEDS_ATTENTION);
            }
            bail!(
                "transaction {id} was not confirmed before its deadline ({}) and has been rolled back",
                render::time(deadline)
            )
        }
    }
}

/// Whether a command first rolls back overdue transactions.
pub fn settles(command: &Command) -> bool {
    matches!(
        command,
        Command::Plan(_) | Command::Apply(_) | Command::History(_) | Command::Confirm(_)
    )
}

/// Rolls back every transaction whose confirmation deadline passed without a watchdog
/// doing it (killed, power loss), before the command runs. `Some(code)` stops the
/// command: a rollback that failed needs the operator first (`history` still runs, to
/// show it).
pub fn settle_overdue(state_dir: &Path, command: &Command) -> Result<Option<i32>> {
    let stop = if matches!(command, Command::History(_)) {
        None
    } else {
        Some(exit::NEEDS_ATTENTION)
    };
    // An untrusted state directory is refused by the commands that act on it; the
    // overdue check only says so and lets the command go on.
    let state = match StateDir::existing(state_dir) {
        Ok(Some(state)) => state,
        Ok(None) => return Ok(None),
        Err(e) => {
            eprintln!("warning: not checking for overdue transactions: {e:#}");
            return Ok(None);
        }
    };
    let overdue = confirmed::overdue(&state)?;
    if overdue.is_empty() {
        return Ok(None);
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        for (t, _) in &overdue {
            anstream::eprintln!(
                "tune: warning: transaction {} is past its confirmation deadline{} and must be rolled back: run tune as root",
                t.id,
                deadline_text(t)
            );
        }
        return Ok(None);
    }
    for (t, reason) in &overdue {
        if let Some(why) = confirmed::foreign(t) {
            anstream::eprintln!("tune: warning: transaction {} is overdue: {why}", t.id);
            continue;
        }
        let why = match reason {
            Reason::NotConfirmed => {
                format!("was not confirmed by its deadline{}", deadline_text(t))
            }
            Reason::ProbeFailed { probe, .. } => format!("failed probe {probe}"),
        };
        anstream::eprintln!("tune: transaction {} {why}: rolling it back first", t.id);
        let report: Result<Report> = confirmed::roll_back_in_netns(&state, t, reason);
        match report {
            Ok(report) => {
                anstream::eprint!("{}", render::report("rollback", &report));
                if report.status != Status::RolledBack {
                    return Ok(stop);
                }
            }
            Err(e) => {
                anstream::eprintln!(
                    "tune: error: transaction {id} could not be rolled back: {e:#}\n  deal with it first (`tune rollback {id}`, with --force if you mean it)",
                    id = t.id
                );
                return Ok(stop);
            }
        }
    }
    Ok(None)
}
