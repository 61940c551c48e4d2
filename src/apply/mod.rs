//! Apply and rollback: journaled, verified, undone in reverse on failure.
//!
//! Every step follows the same order: check the resource still holds its recorded
//! before-value (for all steps, before the first mutation), journal the intent (fsync),
//! mutate, read back and compare with the after-value, journal `done`. On any failure
//! the completed steps are undone in reverse order, each undo journaled the same way,
//! and the original error is returned together with the outcome of the undo.
//!
//! Executors are per resource kind ([`sysctl`], [`net`], [`envfile`]); [`Executor`]
//! is the seam where tests plug in. Rollback ([`rollback()`]) is the same machinery run
//! with each change's inverse.

pub mod configfile;
pub mod envfile;
pub mod journal;
pub mod net;
mod rollback;
pub mod sysctl;

pub use rollback::{rollback, rollback_target};

use anyhow::{Result, bail};

use crate::plan::{Change, Mutation};
use journal::{Direction, Event, Journal, StateDir, Status};

/// Reads and writes the resources that mutations name.
pub trait Executor {
    /// The resource's current state, in the form of [`Mutation::before`] / `after`.
    fn read(&mut self, mutation: &Mutation) -> Result<String>;
    /// Brings the resource to [`Mutation::after`].
    fn write(&mut self, mutation: &Mutation) -> Result<()>;
}

/// The executor that touches the running system (in the calling thread's namespaces).
#[derive(Default)]
pub struct SystemExecutor;

impl Executor for SystemExecutor {
    fn read(&mut self, mutation: &Mutation) -> Result<String> {
        match mutation {
            Mutation::Sysctl { key, .. } => sysctl::read(key),
            Mutation::File { path, role, .. } => configfile::read(path, *role),
            Mutation::LinkMtu { link, ifindex, .. } => net::read_mtu(link, *ifindex),
            Mutation::RootQdisc { link, ifindex, .. } => net::read_root_qdisc(link, *ifindex),
        }
    }

    fn write(&mut self, mutation: &Mutation) -> Result<()> {
        match mutation {
            Mutation::Sysctl { key, after, .. } => sysctl::write(key, after),
            Mutation::File {
                path, role, after, ..
            } => configfile::write(path, *role, after.as_deref()),
            Mutation::LinkMtu {
                link,
                ifindex,
                after,
                ..
            } => net::write_mtu(link, *ifindex, *after),
            Mutation::RootQdisc {
                link,
                ifindex,
                before,
                after,
            } => net::write_root_qdisc(link, *ifindex, before.as_ref(), after.as_ref()),
        }
    }
}

/// A resource whose current state is neither what a step expects nor what it sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub resource: String,
    pub expected: String,
    pub found: String,
}

/// How an apply or rollback ended.
#[derive(Debug)]
pub struct Report {
    pub transaction: u64,
    /// One line per step, in the order things happened.
    pub steps: Vec<String>,
    pub status: Status,
    /// The failure that stopped the apply, if any.
    pub error: Option<String>,
    /// Steps that could not be undone.
    pub undo_errors: Vec<String>,
}

/// Test hook: `TUNE_FAULT_CRASH_AFTER_STEP=N` aborts the process right after step N
/// (0-based) was mutated and before it is journaled as done, as a power cut would.
const CRASH_HOOK: &str = "TUNE_FAULT_CRASH_AFTER_STEP";

/// Checks every change's before-value against the system.
pub fn drifted(exec: &mut dyn Executor, changes: &[Change]) -> Vec<Drift> {
    let mut out = Vec::new();
    for c in changes {
        let expected = c.mutation.before();
        let found = exec
            .read(&c.mutation)
            .unwrap_or_else(|e| format!("unreadable: {e:#}"));
        if found != expected {
            out.push(Drift {
                resource: c.mutation.resource(),
                expected,
                found,
            });
        }
    }
    out
}

/// Applies the changes under the state dir's lock, journaling the network namespace
/// the calling thread runs in (so that rollback goes back into it). The caller has
/// checked privileges.
pub fn apply(
    state: &StateDir,
    exec: &mut dyn Executor,
    hostname: &str,
    netns: Option<&crate::kernel::netns::NetnsRecord>,
    changes: &[Change],
) -> Result<Report> {
    let _lock = state.lock()?;
    let transactions = state.transactions()?;
    if let Some(t) = transactions
        .iter()
        .find(|t| matches!(t.status(), Status::Interrupted | Status::NeedsAttention))
    {
        bail!(
            "transaction {} is {}: run `tune rollback {}` (or inspect {}) before applying anything new; nothing was changed",
            t.id,
            t.status().describe(),
            t.id,
            t.path.display()
        );
    }
    let drift = drifted(exec, changes);
    if !drift.is_empty() {
        bail!(
            "the system changed since the plan was made; nothing was changed:\n{}",
            describe_drift(&drift)
        );
    }
    let id = transactions.last().map_or(1, |t| t.id + 1);
    let mut journal = state.begin(id, hostname, netns, changes)?;
    let mut report = Report {
        transaction: journal.id,
        steps: Vec::new(),
        status: Status::Applied,
        error: None,
        undo_errors: Vec::new(),
    };
    let crash_after: Option<usize> = std::env::var(CRASH_HOOK).ok().and_then(|v| v.parse().ok());
    for (step, change) in changes.iter().enumerate() {
        let m = &change.mutation;
        let result = run_step(&mut journal, exec, step, m, Direction::Forward, crash_after);
        match result {
            Ok(()) => report.steps.push(format!(
                "applied {}: {} → {}",
                m.resource(),
                m.before_label(),
                m.after_label()
            )),
            Err(e) => {
                let error = format!("{}: {e:#}", m.resource());
                report.steps.push(format!("FAILED {error}"));
                report.error = Some(error);
                // Undo this step too if it got half-way, then the completed ones.
                let undo: Vec<usize> = (0..=step).rev().collect();
                report.undo_errors =
                    undo_steps(&mut journal, exec, changes, &undo, &mut report.steps);
                let ok = report.undo_errors.is_empty();
                journal.append(&Event::AutoRollback {
                    ok,
                    at: crate::facts::now_unix(),
                })?;
                report.status = if ok {
                    Status::FailedRolledBack
                } else {
                    Status::NeedsAttention
                };
                return Ok(report);
            }
        }
    }
    journal.append(&Event::Applied {
        at: crate::facts::now_unix(),
    })?;
    Ok(report)
}

/// Journals, performs and verifies one step.
fn run_step(
    journal: &mut Journal,
    exec: &mut dyn Executor,
    step: usize,
    m: &Mutation,
    direction: Direction,
    crash_after: Option<usize>,
) -> Result<()> {
    journal.append(&Event::Intent { step, direction })?;
    let outcome = exec.write(m).and_then(|()| {
        if crash_after == Some(step) && direction == Direction::Forward {
            eprintln!("{CRASH_HOOK}: aborting after step {step}");
            std::process::abort();
        }
        let now = exec.read(m)?;
        if now != m.after() {
            bail!(
                "read back {now:?} after writing {:?}: the kernel did not keep the value",
                m.after()
            );
        }
        Ok(())
    });
    match outcome {
        Ok(()) => journal.append(&Event::Done { step, direction }),
        Err(e) => {
            journal.append(&Event::Failed {
                step,
                direction,
                error: format!("{e:#}"),
            })?;
            Err(e)
        }
    }
}

/// Undoes the given steps in the order given. A step whose resource already holds its
/// before-value is left alone. Returns the errors; keeps going after one.
pub(crate) fn undo_steps(
    journal: &mut Journal,
    exec: &mut dyn Executor,
    changes: &[Change],
    steps: &[usize],
    log: &mut Vec<String>,
) -> Vec<String> {
    let mut errors = Vec::new();
    for &step in steps {
        let m = &changes[step].mutation;
        let inverse = m.inverse();
        match exec.read(m) {
            Ok(now) if now == m.before() => continue,
            Ok(_) => {}
            Err(e) => {
                errors.push(format!("{}: cannot read: {e:#}", m.resource()));
                continue;
            }
        }
        match run_step(journal, exec, step, &inverse, Direction::Backward, None) {
            Ok(()) => log.push(format!("restored {}: {}", m.resource(), m.before_label())),
            Err(e) => {
                let msg = format!("{}: {e:#}", m.resource());
                log.push(format!("RESTORE FAILED {msg}"));
                errors.push(msg);
            }
        }
    }
    errors
}

pub fn describe_drift(drift: &[Drift]) -> String {
    drift
        .iter()
        .map(|d| {
            format!(
                "  {}: expected {:?}, found {:?}",
                d.resource, d.expected, d.found
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
