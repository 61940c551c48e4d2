//! Rollback: restores the recorded before-values of a transaction, in reverse order,
//! through the same journaled steps as apply ([`super::undo_steps`]).
//!
//! It refuses, before touching anything, when a resource holds neither the recorded
//! before- nor after-value, unless forced.

use anyhow::{Result, anyhow, bail};

use super::journal::{self, Event, StateDir, Status};
use super::{Drift, Executor, Report, describe_drift, undo_steps};

/// The transaction `tune rollback [ID]` acts on: the given one, or the last one that
/// changed something.
pub fn rollback_target(state: &StateDir, id: Option<u64>) -> Result<journal::Transaction> {
    match id {
        Some(id) => state.transaction(id),
        None => state
            .transactions()?
            .into_iter()
            .rev()
            .find(|t| {
                matches!(
                    t.status(),
                    Status::Applied
                        | Status::Interrupted
                        | Status::NeedsAttention
                        | Status::PendingConfirmation
                        | Status::Confirmed
                )
            })
            .ok_or_else(|| anyhow!("no applied transaction to roll back")),
    }
}

/// Rolls back a transaction (the last one that changed something when `id` is None).
pub fn rollback(
    state: &StateDir,
    exec: &mut dyn Executor,
    id: Option<u64>,
    force: bool,
) -> Result<Report> {
    let _lock = state.lock()?;
    let transaction = rollback_target(state, id)?;
    match transaction.status() {
        Status::RolledBack | Status::RolledBackNotConfirmed | Status::RolledBackProbeFailed => {
            bail!("transaction {} is already rolled back", transaction.id)
        }
        Status::FailedRolledBack => bail!(
            "transaction {} failed and was rolled back automatically; nothing to do",
            transaction.id
        ),
        _ => {}
    }
    let steps: Vec<usize> = transaction.attempted_steps().into_iter().rev().collect();
    // Refuse before touching anything if a resource holds neither value.
    let mut drift = Vec::new();
    for &step in &steps {
        let m = &transaction.changes[step].mutation;
        let now = exec
            .read(m)
            .unwrap_or_else(|e| format!("unreadable: {e:#}"));
        if now != m.after() && now != m.before() {
            drift.push(Drift {
                resource: m.resource(),
                expected: m.after(),
                found: now,
            });
        }
    }
    if !drift.is_empty() && !force {
        bail!(
            "refusing to roll back transaction {}: these values changed since it was applied (use --force to restore them anyway); nothing was changed:\n{}",
            transaction.id,
            describe_drift(&drift)
        );
    }
    let mut journal = state.reopen(&transaction)?;
    journal.append(&Event::RollbackBegin {
        at: crate::facts::now_unix(),
        forced: force && !drift.is_empty(),
    })?;
    let mut report = Report {
        transaction: transaction.id,
        steps: Vec::new(),
        status: Status::RolledBack,
        error: None,
        undo_errors: Vec::new(),
    };
    report.undo_errors = undo_steps(
        &mut journal,
        exec,
        &transaction.changes,
        &steps,
        &mut report.steps,
    );
    let ok = report.undo_errors.is_empty();
    journal.append(&Event::RollbackEnd {
        ok,
        at: crate::facts::now_unix(),
    })?;
    if !ok {
        report.status = Status::NeedsAttention;
    }
    if report.steps.is_empty() {
        report
            .steps
            .push("every value already held its recorded before-value".into());
    }
    Ok(report)
}
