//! Rollback: restores the recorded before-values of a transaction, in reverse order,
//! through the same journaled steps as apply ([`super::undo_steps`]).
//!
//! The caller takes the lock first and only then picks the transaction
//! ([`rollback_target`]) from journals read under it, so no apply can slip in between.
//! Rollback refuses, before touching anything, when a resource holds neither the
//! recorded before- nor after-value, unless forced, and when its first journal event
//! cannot be written. After that it does not stop for a journal that fails: it
//! restores every value it can and reports the rest.

use anyhow::{Result, anyhow, bail};

use super::journal::{Event, Journals, Lock, StateDir, Status, Transaction};
use super::{Drift, Executor, Report, describe_drift, still_changed, undo_steps};

/// The transaction `tune rollback [ID]` acts on: the given one, or the last one that
/// changed something. `journals` must have been read under the lock.
pub fn rollback_target(journals: &Journals, id: Option<u64>) -> Result<Transaction> {
    match id {
        Some(id) => journals.get(id).cloned(),
        None => journals
            .transactions
            .iter()
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
            .cloned()
            .ok_or_else(|| anyhow!("no applied transaction to roll back")),
    }
}

/// Rolls back a transaction, with the lock held. `Err` means nothing was changed.
pub fn rollback(
    state: &StateDir,
    lock: &Lock,
    exec: &mut dyn Executor,
    transaction: &Transaction,
    force: bool,
    warnings: Vec<String>,
) -> Result<Report> {
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
    let mut journal = state.reopen(lock, transaction)?;
    journal
        .append(&Event::RollbackBegin {
            at: crate::facts::now_unix(),
            forced: force && !drift.is_empty(),
        })
        .map_err(|e| e.context("nothing was changed"))?;
    let mut report = Report::new(transaction.id, Status::RolledBack, warnings);
    report.undo_errors = undo_steps(
        &mut journal,
        exec,
        &transaction.changes,
        &steps,
        &mut report.steps,
        &mut report.warnings,
    );
    report.still_changed = still_changed(exec, &transaction.changes, &steps);
    let ok = report.undo_errors.is_empty() && report.still_changed.is_empty();
    if let Err(e) = journal.append(&Event::RollbackEnd {
        ok,
        at: crate::facts::now_unix(),
    }) {
        report.warnings.push(format!(
            "{e:#}: `tune history` shows transaction {} as interrupted until `tune rollback {}` completes its record",
            transaction.id, transaction.id
        ));
    }
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
