//! Apply and rollback: journaled, verified, undone in reverse on failure.
//!
//! Every step follows the same order: check the resource still holds its recorded
//! before-value (for all steps, before the first mutation), journal the intent (fsync),
//! mutate, read back and compare with the after-value, journal `done`. On any failure
//! the completed steps are undone in reverse order, each undo journaled the same way,
//! and the original error is returned together with the outcome of the undo.
//!
//! Exit 1 must mean that nothing changed, so an error is returned (rather than a
//! [`Report`]) only before the first mutation. After it, every failure, including a
//! journal that can no longer be written (a full disk), ends in an undo from the
//! in-memory record: undo steps are journaled where the journal still takes them and
//! performed anyway where it does not, and the report lists each resource that still
//! holds a changed value.
//!
//! Executors are per resource kind ([`sysctl`], [`net`], [`envfile`]); [`Executor`]
//! is the seam where tests plug in. Rollback ([`rollback()`]) is the same machinery run
//! with each change's inverse.

pub mod configfile;
pub mod confirm;
pub mod envfile;
mod fault;
pub mod journal;
pub mod net;
pub mod probe;
mod rollback;
pub mod sysctl;
mod trust;

pub use rollback::{rollback, rollback_target};

use anyhow::{Result, anyhow, bail};

use crate::plan::{Change, Mutation};
use fault::Point;
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
            Mutation::RxRing { link, ifindex, .. } => net::read_rx_ring(link, *ifindex),
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
            Mutation::RxRing {
                link,
                ifindex,
                after,
                ..
            } => net::write_rx_ring(link, *ifindex, *after),
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
    /// After a failure: each resource that still does not hold its before-value.
    pub still_changed: Vec<String>,
    /// Skipped journals, events the journal could not take, and the like.
    pub warnings: Vec<String>,
}

impl Report {
    fn new(transaction: u64, status: Status, warnings: Vec<String>) -> Report {
        Report {
            transaction,
            steps: Vec::new(),
            status,
            error: None,
            undo_errors: Vec::new(),
            still_changed: Vec::new(),
            warnings,
        }
    }
}

/// Test hook: `TUNE_FAULT_CRASH_AFTER_STEP=N` kills the process right after step N
/// (0-based) was mutated and before it is journaled as done, as a power cut would.
/// The other hooks are in [`fault`].
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
/// checked privileges. `Err` means nothing was changed.
pub fn apply(
    state: &StateDir,
    exec: &mut dyn Executor,
    hostname: &str,
    netns: Option<&crate::kernel::netns::NetnsRecord>,
    changes: &[Change],
) -> Result<Report> {
    let lock = state.lock()?;
    state.remove_stale_temp(&lock);
    let journals = state.transactions()?;
    journals.refuse_untrusted()?;
    if let Some(t) = journals.transactions.iter().find(|t| {
        matches!(
            t.status(),
            Status::Interrupted | Status::NeedsAttention | Status::PendingConfirmation
        )
    }) {
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
    let mut journal = state.begin(&lock, journals.next_id, hostname, netns, changes)?;
    let mut report = Report::new(journal.id, Status::Applied, journals.warnings());
    let crash_after: Option<usize> = std::env::var(CRASH_HOOK).ok().and_then(|v| v.parse().ok());
    for (step, change) in changes.iter().enumerate() {
        let m = &change.mutation;
        let result = run_step(
            &mut journal,
            exec,
            step,
            m,
            Direction::Forward,
            crash_after,
            &mut report.warnings,
        );
        match result {
            Ok(()) => report.steps.push(format!(
                "applied {}: {} → {}",
                m.resource(),
                m.before_label(),
                m.after_label()
            )),
            Err(StepError { mutated, error }) => {
                if step == 0 && !mutated {
                    // Its intent could not be journaled: nothing was touched.
                    state.discard(journal);
                    return Err(error.context(format!(
                        "{}: not applied; nothing was changed",
                        m.resource()
                    )));
                }
                let touched = if mutated { step + 1 } else { step };
                let error = format!("{}: {error:#}", m.resource());
                fail(&mut journal, exec, changes, touched, error, &mut report);
                return Ok(report);
            }
        }
    }
    if let Err(e) = journal.append(&Event::Applied {
        at: crate::facts::now_unix(),
    }) {
        // Every value is set, but the journal cannot say so: undo rather than leave
        // changes that history does not show as applied.
        let error = format!("every step was applied but the journal could not record it: {e:#}");
        fail(
            &mut journal,
            exec,
            changes,
            changes.len(),
            error,
            &mut report,
        );
    }
    Ok(report)
}

/// Apply failed after steps `0..touched` may have changed something: undoes them in
/// reverse and records the outcome in the report (and, if it can, in the journal).
fn fail(
    journal: &mut Journal,
    exec: &mut dyn Executor,
    changes: &[Change],
    touched: usize,
    error: String,
    report: &mut Report,
) {
    report.steps.push(format!("FAILED {error}"));
    report.error = Some(error);
    let undo: Vec<usize> = (0..touched).rev().collect();
    report.undo_errors = undo_steps(
        journal,
        exec,
        changes,
        &undo,
        &mut report.steps,
        &mut report.warnings,
    );
    report.still_changed = still_changed(exec, changes, &undo);
    let ok = report.undo_errors.is_empty() && report.still_changed.is_empty();
    if let Err(e) = journal.append(&Event::AutoRollback {
        ok,
        at: crate::facts::now_unix(),
    }) {
        report.warnings.push(format!(
            "{e:#}: `tune history` shows transaction {} as interrupted until `tune rollback {}` (which finds the values already restored)",
            journal.id, journal.id
        ));
    }
    report.status = if ok {
        Status::FailedRolledBack
    } else {
        Status::NeedsAttention
    };
}

/// Each resource of `steps` that does not hold its before-value now.
pub(crate) fn still_changed(
    exec: &mut dyn Executor,
    changes: &[Change],
    steps: &[usize],
) -> Vec<String> {
    let mut out = Vec::new();
    for &step in steps {
        let Some(change) = changes.get(step) else {
            continue;
        };
        let m = &change.mutation;
        match exec.read(m) {
            Ok(now) if now == m.before() => {}
            Ok(now) if now == m.after() => {
                out.push(format!("{} is still {}", m.resource(), m.after_label()));
            }
            Ok(now) => out.push(format!(
                "{} holds {now:?}, neither its before- nor its after-value",
                m.resource()
            )),
            Err(e) => out.push(format!("{} cannot be read: {e:#}", m.resource())),
        }
    }
    out
}

/// Why a step failed, and whether its mutation was attempted.
struct StepError {
    mutated: bool,
    error: anyhow::Error,
}

/// Journals, performs and verifies one step. Forward, the intent must be on disk
/// before the mutation; backward (an undo), a journal that cannot be written does not
/// stop the undo, it adds a warning.
fn run_step(
    journal: &mut Journal,
    exec: &mut dyn Executor,
    step: usize,
    m: &Mutation,
    direction: Direction,
    crash_after: Option<usize>,
    warnings: &mut Vec<String>,
) -> Result<(), StepError> {
    let forward = direction == Direction::Forward;
    let mut journaled = |journal: &mut Journal, event: &Event| -> Result<(), StepError> {
        match journal.append(event) {
            Ok(()) => Ok(()),
            Err(error) if forward => Err(StepError {
                mutated: !matches!(event, Event::Intent { .. }),
                error,
            }),
            Err(e) => {
                warnings.push(format!("{e:#} (undo of {} done anyway)", m.resource()));
                Ok(())
            }
        }
    };
    journaled(journal, &Event::Intent { step, direction })?;
    let written = match fault::at(Point::Mutation) {
        fault::Fault::None => exec.write(m),
        fault::Fault::Crash => fault::crash(),
        fault::Fault::Fail => Err(anyhow!(
            "injected I/O error (TUNE_FAULT_FAIL_AT) writing {}",
            m.resource()
        )),
    };
    let outcome = written.and_then(|()| {
        if crash_after == Some(step) && forward {
            eprintln!("{CRASH_HOOK}: aborting after step {step}");
            fault::crash();
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
        Ok(()) => journaled(journal, &Event::Done { step, direction }),
        Err(error) => {
            // The failure itself is in the report; the journal's copy is best effort.
            let _ = journal.append(&Event::Failed {
                step,
                direction,
                error: format!("{error:#}"),
            });
            Err(StepError {
                mutated: true,
                error,
            })
        }
    }
}

/// Undoes the given steps in the order given. A step whose resource already holds its
/// before-value is left alone. Returns the errors; keeps going after one, and after a
/// journal write that fails (noted in `warnings`).
pub(crate) fn undo_steps(
    journal: &mut Journal,
    exec: &mut dyn Executor,
    changes: &[Change],
    steps: &[usize],
    log: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Vec<String> {
    let mut errors = Vec::new();
    for &step in steps {
        let Some(change) = changes.get(step) else {
            continue;
        };
        let m = &change.mutation;
        let inverse = m.inverse();
        match exec.read(m) {
            Ok(now) if now == m.before() => continue,
            Ok(_) => {}
            Err(e) => {
                errors.push(format!("{}: cannot read: {e:#}", m.resource()));
                continue;
            }
        }
        match run_step(
            journal,
            exec,
            step,
            &inverse,
            Direction::Backward,
            None,
            warnings,
        ) {
            Ok(()) => log.push(format!("restored {}: {}", m.resource(), m.before_label())),
            Err(StepError { error, .. }) => {
                let msg = format!("{}: {error:#}", m.resource());
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
