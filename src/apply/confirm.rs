//! Commit-confirmed applies: a transaction that undoes itself unless it is confirmed.
//!
//! `tune apply --confirm-within D` applies as usual, then journals `confirm_pending`
//! with the deadline and the probes. A watchdog process ([`watch`], started by the CLI
//! in its own session) re-runs the probes every interval and rolls the transaction
//! back when one fails or when the deadline passes; `tune confirm` ([`confirm`])
//! journals `confirmed` before the deadline and the watchdog then exits. Every
//! decision is journaled before the rollback it causes (`not_confirmed`,
//! `probe_failed`), so a crash in between leaves a transaction that says a rollback is
//! due ([`rollback_due`]), and the next `tune` run finishes it.
//!
//! Decisions are taken under the state directory's lock, after re-reading the
//! journal: a confirm and a deadline that race are decided by who takes the lock first.
//!
//! Transaction states (see [`Status`]): applied → pending confirmation → confirmed,
//! or → (not_confirmed | probe_failed) → rolled back: not confirmed | probe failed.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::journal::{Event, Lock, StateDir, Status, Transaction};
use super::probe::{self, Probe};
use super::{Executor, Report, SystemExecutor};
use crate::kernel::netns::{self, NetnsRecord};

/// How long a confirm or a rollback waits for another tune process to release the lock.
const LOCK_WAIT: Duration = Duration::from_secs(15);
/// How often the watchdog looks at the journal (for a confirm) and the clock.
const POLL: Duration = Duration::from_millis(100);

/// What `confirm_pending` recorded.
#[derive(Debug, Clone)]
pub struct Pending {
    pub deadline: f64,
    pub probes: Vec<Probe>,
    pub probe_netns: Option<NetnsRecord>,
    pub probe_interval: f64,
    /// Set by [`mark_pending`]: the inode of the namespace the apply ran in.
    pub own_netns: Option<u64>,
}

/// The last `confirm_pending` of a transaction, whatever happened after it.
pub fn pending(t: &Transaction) -> Option<Pending> {
    t.events.iter().rev().find_map(|e| match e {
        Event::ConfirmPending {
            deadline,
            probes,
            probe_netns,
            probe_interval,
            own_netns,
            ..
        } => Some(Pending {
            deadline: *deadline,
            probes: probes.clone(),
            probe_netns: probe_netns.clone(),
            probe_interval: *probe_interval,
            own_netns: *own_netns,
        }),
        _ => None,
    })
}

/// The watchdog's pid, as journaled.
pub fn watchdog_pid(t: &Transaction) -> Option<u32> {
    t.events.iter().rev().find_map(|e| match e {
        Event::Watchdog { pid, .. } => Some(*pid),
        _ => None,
    })
}

/// Why a commit-confirmed transaction is rolled back.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    NotConfirmed,
    ProbeFailed { probe: String, output: String },
}

impl Reason {
    fn event(&self) -> Event {
        let at = crate::facts::now_unix();
        match self {
            Reason::NotConfirmed => Event::NotConfirmed { at },
            Reason::ProbeFailed { probe, output } => Event::ProbeFailed {
                at,
                probe: probe.clone(),
                output: output.clone(),
            },
        }
    }
}

/// The recorded reason of a rollback that is due or done (the last one journaled).
fn recorded_reason(events: &[Event]) -> Option<Reason> {
    events.iter().rev().find_map(|e| match e {
        Event::NotConfirmed { .. } => Some(Reason::NotConfirmed),
        Event::ProbeFailed { probe, output, .. } => Some(Reason::ProbeFailed {
            probe: probe.clone(),
            output: output.clone(),
        }),
        _ => None,
    })
}

/// Refines a plain "rolled back" with the reason journaled before it.
pub(super) fn why_rolled_back(events: &[Event], status: Status) -> Status {
    if status != Status::RolledBack {
        return status;
    }
    match recorded_reason(events) {
        Some(Reason::NotConfirmed) => Status::RolledBackNotConfirmed,
        Some(Reason::ProbeFailed { .. }) => Status::RolledBackProbeFailed,
        None => status,
    }
}

/// Whether a rollback of `t` is due at unix time `now`: pending past its deadline, or
/// a journaled decision whose rollback never finished (a crash, a killed watchdog).
pub fn rollback_due(t: &Transaction, now: f64) -> Option<Reason> {
    match t.status() {
        Status::PendingConfirmation => pending(t)
            .filter(|p| now >= p.deadline)
            .map(|_| Reason::NotConfirmed),
        Status::Interrupted => recorded_reason(&t.events),
        _ => None,
    }
}

/// The transactions whose rollback is due now.
pub fn overdue(state: &StateDir) -> Result<Vec<(Transaction, Reason)>> {
    let now = crate::facts::now_unix();
    Ok(state
        .transactions()?
        .transactions
        .into_iter()
        .filter_map(|t| rollback_due(&t, now).map(|r| (t, r)))
        .collect())
}

/// Takes the lock, waiting (up to `wait`) while another tune process holds it.
pub fn lock_patiently(state: &StateDir, wait: Duration) -> Result<Lock> {
    let start = Instant::now();
    loop {
        match state.lock() {
            Ok(lock) => return Ok(lock),
            Err(e) if start.elapsed() >= wait => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Journals that transaction `id` (just applied) is pending confirmation.
pub fn mark_pending(state: &StateDir, id: u64, pending: &Pending) -> Result<()> {
    let lock = lock_patiently(state, LOCK_WAIT)?;
    let t = state.transaction(id)?;
    if t.status() != Status::Applied {
        bail!(
            "transaction {id} is {}, not applied: it cannot wait for a confirm",
            t.status().describe()
        );
    }
    state.reopen(&lock, &t)?.append(&Event::ConfirmPending {
        at: crate::facts::now_unix(),
        deadline: pending.deadline,
        probes: pending.probes.clone(),
        probe_netns: pending.probe_netns.clone(),
        probe_interval: pending.probe_interval,
        own_netns: own_netns(),
    })
}

/// The inode of the calling thread's network namespace.
fn own_netns() -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/thread-self/ns/net")
        .ok()
        .map(|m| m.ino())
}

/// Why `t` cannot be rolled back from here: it was applied in tune's own namespace,
/// and that was another one than the caller's (`ip netns exec` shares a state dir).
pub fn foreign(t: &Transaction) -> Option<String> {
    let then = match &t.netns {
        // Named (`--netns`) or held by a process (`--netns-pid`): rollback enters it.
        Some(r) if r.name.is_some() || r.pid.is_some() => return None,
        // The namespace tune ran in, recorded by its inode.
        Some(r) => r.inode,
        None => pending(t)?.own_netns?,
    };
    let now = own_netns();
    (now != Some(then)).then(|| {
        format!(
            "transaction {} was applied in another network namespace (inode {then}); run tune there (e.g. with `ip netns exec`)",
            t.id
        )
    })
}

/// Journals the watchdog's pid.
pub fn record_watchdog(state: &StateDir, id: u64, pid: u32) -> Result<()> {
    let lock = lock_patiently(state, LOCK_WAIT)?;
    let t = state.transaction(id)?;
    state.reopen(&lock, &t)?.append(&Event::Watchdog {
        pid,
        at: crate::facts::now_unix(),
    })
}

/// The outcome of `tune confirm`.
#[derive(Debug)]
pub enum Confirmation {
    /// Journaled; the changes are kept.
    Confirmed { id: u64 },
    /// The deadline had passed: the caller rolls the transaction back.
    TooLate { id: u64, deadline: f64 },
}

/// Confirms transaction `id`, or the pending one.
pub fn confirm(state: &StateDir, id: Option<u64>) -> Result<Confirmation> {
    let lock = lock_patiently(state, LOCK_WAIT)?;
    let t = match id {
        Some(id) => state.transaction(id)?,
        None => match state
            .transactions()?
            .transactions
            .into_iter()
            .rev()
            .find(|t| t.status() == Status::PendingConfirmation)
        {
            Some(t) => t,
            None => bail!("no transaction is pending confirmation"),
        },
    };
    if t.status() != Status::PendingConfirmation {
        bail!(
            "transaction {} is {}, not pending confirmation; nothing was changed",
            t.id,
            t.status().describe()
        );
    }
    let Some(p) = pending(&t) else {
        bail!("transaction {} has no confirmation deadline", t.id);
    };
    if crate::facts::now_unix() >= p.deadline {
        return Ok(Confirmation::TooLate {
            id: t.id,
            deadline: p.deadline,
        });
    }
    state.reopen(&lock, &t)?.append(&Event::Confirmed {
        at: crate::facts::now_unix(),
    })?;
    on_confirmed(state, &t)?;
    Ok(Confirmation::Confirmed { id: t.id })
}

/// Runs once a transaction is confirmed and its changes are kept for good.
///
/// HOOK for the persistence issue: the persisted configuration files of a
/// commit-confirmed transaction (sysctl.d, networkd, …) are to be written here and
/// only here, never at apply time, so that a reboot before the confirm comes back to
/// the old state. Nothing is persisted yet.
fn on_confirmed(_state: &StateDir, _t: &Transaction) -> Result<()> {
    Ok(())
}

/// Journals `reason` (unless already journaled) and rolls transaction `id` back.
/// Safe to race with another process doing the same: the journal is re-read under the
/// lock, and a rollback someone else finished is reported as such.
pub fn roll_back(
    state: &StateDir,
    exec: &mut dyn Executor,
    id: u64,
    reason: &Reason,
) -> Result<Report> {
    let lock = lock_patiently(state, LOCK_WAIT)?;
    let journals = state.transactions()?;
    journals.refuse_untrusted()?;
    let t = journals.get(id)?.clone();
    let status = t.status();
    match status {
        Status::PendingConfirmation => state.reopen(&lock, &t)?.append(&reason.event())?,
        // A probe run right after a plain apply (no --confirm-within).
        Status::Applied if matches!(reason, Reason::ProbeFailed { .. }) => {
            state.reopen(&lock, &t)?.append(&reason.event())?
        }
        Status::Interrupted if recorded_reason(&t.events).is_some() => {}
        Status::RolledBack
        | Status::RolledBackNotConfirmed
        | Status::RolledBackProbeFailed
        | Status::NeedsAttention => {
            return Ok(Report {
                transaction: id,
                steps: vec![format!(
                    "another tune process already ended it: {}",
                    status.describe()
                )],
                status: if status == Status::NeedsAttention {
                    status
                } else {
                    Status::RolledBack
                },
                error: None,
                undo_errors: Vec::new(),
                still_changed: Vec::new(),
                warnings: journals.warnings(),
            });
        }
        _ => bail!(
            "transaction {id} is {}: not rolling it back",
            status.describe()
        ),
    }
    // The decision is journaled; the rollback runs under the same lock, so no other
    // process can slip in between.
    let t = state.transaction(id)?;
    super::rollback(state, &lock, exec, &t, false, journals.warnings())
}

/// [`roll_back`] inside the namespace the transaction was applied in.
pub fn roll_back_in_netns(state: &StateDir, t: &Transaction, reason: &Reason) -> Result<Report> {
    if let Some(why) = foreign(t) {
        bail!("{why}");
    }
    let id = t.id;
    netns::run_in(t.netns.as_ref(), || {
        roll_back(state, &mut SystemExecutor, id, reason)
    })
}

/// Runs the probes in their namespace: the first failure as `(probe, output)`.
pub fn run_probes(probes: &[Probe], probe_netns: Option<&NetnsRecord>) -> Result<probe::Probed> {
    netns::run_in(probe_netns, || Ok(probe::run_all(probes)))
}

/// How the watchdog ended.
#[derive(Debug)]
pub enum Watched {
    /// Confirmed, or rolled back by someone else: nothing for the watchdog to do.
    Ended(Status),
    /// The watchdog rolled it back.
    RolledBack(Reason, Report),
}

/// The watchdog: until the deadline, re-runs the probes every interval (the apply ran
/// the first round) and watches the journal; rolls back on a failed probe or at the
/// deadline. `log` receives one line per event.
pub fn watch(state: &StateDir, id: u64, log: &mut dyn FnMut(&str)) -> Result<Watched> {
    let t = state.transaction(id)?;
    let Some(p) = pending(&t) else {
        bail!("transaction {id} is not pending confirmation");
    };
    let interval = Duration::try_from_secs_f64(p.probe_interval).unwrap_or(Duration::from_secs(5));
    let mut next_probe = Instant::now() + interval;
    loop {
        let t = state.transaction(id)?;
        let status = t.status();
        if status != Status::PendingConfirmation {
            return Ok(Watched::Ended(status));
        }
        let now = crate::facts::now_unix();
        if now >= p.deadline {
            log(&format!(
                "transaction {id}: deadline passed, not confirmed: rolling back"
            ));
            let reason = Reason::NotConfirmed;
            let report = roll_back_in_netns(state, &t, &reason)?;
            return Ok(Watched::RolledBack(reason, report));
        }
        if !p.probes.is_empty() && Instant::now() >= next_probe {
            match run_probes(&p.probes, p.probe_netns.as_ref())? {
                Ok(_) => next_probe = Instant::now() + interval,
                Err((probe, output)) => {
                    log(&format!(
                        "transaction {id}: probe {probe} failed: {output}: rolling back"
                    ));
                    let reason = Reason::ProbeFailed { probe, output };
                    let report = roll_back_in_netns(state, &t, &reason)?;
                    return Ok(Watched::RolledBack(reason, report));
                }
            }
            continue;
        }
        let left = Duration::try_from_secs_f64(p.deadline - now).unwrap_or_default();
        std::thread::sleep(POLL.min(left).max(Duration::from_millis(10)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Change, Mutation};

    fn applied(state: &StateDir) -> Transaction {
        let change = Change {
            rules: vec!["p/r".into()],
            mutation: Mutation::Sysctl {
                key: "net.core.somaxconn".into(),
                before: "128".into(),
                after: "4096".into(),
            },
            evidence: vec![],
        };
        {
            let lock = state.lock().unwrap();
            let mut j = state.begin(&lock, 1, "h", None, &[change]).unwrap();
            j.append(&Event::Applied { at: 1.0 }).unwrap();
        }
        state.transaction(1).unwrap()
    }

    fn pending_at(deadline: f64) -> Pending {
        Pending {
            deadline,
            probes: vec![],
            probe_netns: None,
            probe_interval: 5.0,
            own_netns: None,
        }
    }

    #[test]
    fn pending_confirmed_and_overdue_states() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        applied(&state);
        let now = crate::facts::now_unix();
        mark_pending(&state, 1, &pending_at(now + 60.0)).unwrap();
        let t = state.transaction(1).unwrap();
        assert_eq!(t.status(), Status::PendingConfirmation);
        assert_eq!(rollback_due(&t, now), None);
        assert_eq!(rollback_due(&t, now + 61.0), Some(Reason::NotConfirmed));
        assert!(matches!(
            confirm(&state, None).unwrap(),
            Confirmation::Confirmed { id: 1 }
        ));
        let t = state.transaction(1).unwrap();
        assert_eq!(t.status(), Status::Confirmed);
        assert_eq!(rollback_due(&t, now + 61.0), None);
        let err = confirm(&state, Some(1)).unwrap_err().to_string();
        assert!(err.contains("is confirmed, not pending"), "{err}");
    }

    #[test]
    fn a_late_confirm_is_refused_and_a_decided_rollback_is_due() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        applied(&state);
        mark_pending(&state, 1, &pending_at(1.0)).unwrap();
        assert!(matches!(
            confirm(&state, None).unwrap(),
            Confirmation::TooLate { id: 1, .. }
        ));
        let t = state.transaction(1).unwrap();
        let lock = state.lock().unwrap();
        state
            .reopen(&lock, &t)
            .unwrap()
            .append(&Reason::NotConfirmed.event())
            .unwrap();
        let t = state.transaction(1).unwrap();
        assert_eq!(t.status(), Status::Interrupted);
        assert_eq!(rollback_due(&t, 0.0), Some(Reason::NotConfirmed));
        let mut j = state.reopen(&lock, &t).unwrap();
        j.append(&Event::RollbackBegin {
            at: 2.0,
            forced: false,
        })
        .unwrap();
        j.append(&Event::RollbackEnd { ok: true, at: 3.0 }).unwrap();
        let t = state.transaction(1).unwrap();
        assert_eq!(t.status(), Status::RolledBackNotConfirmed);
        assert_eq!(t.status().describe(), "rolled back: not confirmed");
        assert_eq!(rollback_due(&t, 10.0), None);
    }
}
