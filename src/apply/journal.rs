//! The state directory: transaction journals and the apply lock.
//!
//! ```text
//! STATE_DIR/              mode 0700
//!   lock                  held (flock) for the whole of an apply or a rollback
//!   transactions/
//!     000001.jsonl        one transaction: a `begin` event, then one event per line
//! ```
//!
//! A journal is append-only JSON lines, fsynced after every event. The event that
//! announces a mutation (`intent`) is on disk before the mutation happens, so after a
//! crash the journal says which resources may have changed; a torn last line (a crash
//! in the middle of a write) is ignored when reading.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::kernel::netns::NetnsRecord;
use crate::plan::Change;

/// Default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/tune";

/// Which way a step goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Applying the change (before → after).
    Forward,
    /// Undoing it (after → before), automatically after a failure or by `tune rollback`.
    Backward,
}

/// One line of a journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Begin {
        id: u64,
        at: f64,
        hostname: String,
        changes: Vec<Change>,
        /// The network namespace the changes were applied in (absent: tune's own).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        netns: Option<NetnsRecord>,
    },
    /// Written and fsynced before step `step` is mutated.
    Intent {
        step: usize,
        direction: Direction,
    },
    /// The step's new value was read back and verified.
    Done {
        step: usize,
        direction: Direction,
    },
    Failed {
        step: usize,
        direction: Direction,
        error: String,
    },
    /// Every step was applied and verified.
    Applied {
        at: f64,
    },
    /// Apply failed and the completed steps were undone (`ok`) or not all of them.
    AutoRollback {
        ok: bool,
        at: f64,
    },
    RollbackBegin {
        at: f64,
        forced: bool,
    },
    RollbackEnd {
        ok: bool,
        at: f64,
    },
    /// Applied with `--confirm-within`: rolled back at `deadline` (unix seconds) unless
    /// `tune confirm` comes first; the probes are re-run every `probe_interval` seconds
    /// until then (see [`super::confirm`]).
    ConfirmPending {
        at: f64,
        deadline: f64,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        probes: Vec<super::probe::Probe>,
        /// Where the probes run (absent: tune's own network namespace).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        probe_netns: Option<NetnsRecord>,
        probe_interval: f64,
        /// Inode of tune's own network namespace at apply time: a transaction without
        /// `netns` is rolled back only from that namespace.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        own_netns: Option<u64>,
    },
    /// The process that enforces the deadline.
    Watchdog {
        pid: u32,
        at: f64,
    },
    /// `tune confirm`: the changes are kept.
    Confirmed {
        at: f64,
    },
    /// The deadline passed without a confirm; a rollback follows.
    NotConfirmed {
        at: f64,
    },
    /// A probe that passed before the apply failed after it; a rollback follows.
    ProbeFailed {
        at: f64,
        probe: String,
        output: String,
    },
}

/// What a journal says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Applied,
    RolledBack,
    /// Apply failed; every completed step was undone.
    FailedRolledBack,
    /// Apply or rollback failed and some step could not be undone.
    NeedsAttention,
    /// The process stopped in the middle (crash, kill, power loss).
    Interrupted,
    /// Applied with `--confirm-within`; rolled back at the deadline unless confirmed.
    PendingConfirmation,
    /// Applied with `--confirm-within`, then confirmed.
    Confirmed,
    /// Rolled back because `tune confirm` did not come before the deadline.
    RolledBackNotConfirmed,
    /// Rolled back because a probe failed after the apply.
    RolledBackProbeFailed,
}

impl Status {
    pub fn describe(self) -> &'static str {
        match self {
            Status::Applied => "applied",
            Status::RolledBack => "rolled back",
            Status::FailedRolledBack => "failed, rolled back",
            Status::NeedsAttention => "NEEDS ATTENTION: rollback incomplete",
            Status::Interrupted => "interrupted",
            Status::PendingConfirmation => "pending confirmation",
            Status::Confirmed => "confirmed",
            Status::RolledBackNotConfirmed => "rolled back: not confirmed",
            Status::RolledBackProbeFailed => "rolled back: probe failed",
        }
    }
}

/// A transaction read back from its journal.
#[derive(Debug, Clone)]
pub struct Transaction {
    pub id: u64,
    pub at: f64,
    pub hostname: String,
    pub changes: Vec<Change>,
    pub events: Vec<Event>,
    pub path: PathBuf,
    /// Where the changes were applied; rollback goes back into it.
    pub netns: Option<NetnsRecord>,
}

impl Transaction {
    pub fn status(&self) -> Status {
        let mut status = Status::Interrupted;
        for e in &self.events {
            status = match e {
                Event::Applied { .. } => Status::Applied,
                Event::AutoRollback { ok: true, .. } => Status::FailedRolledBack,
                Event::AutoRollback { ok: false, .. } => Status::NeedsAttention,
                Event::RollbackBegin { .. } => Status::Interrupted,
                Event::RollbackEnd { ok: true, .. } => Status::RolledBack,
                Event::RollbackEnd { ok: false, .. } => Status::NeedsAttention,
                Event::ConfirmPending { .. } => Status::PendingConfirmation,
                Event::Confirmed { .. } => Status::Confirmed,
                // A rollback is due: until it ends, the transaction is unfinished.
                Event::NotConfirmed { .. } | Event::ProbeFailed { .. } => Status::Interrupted,
                _ => status,
            };
        }
        super::confirm::why_rolled_back(&self.events, status)
    }

    /// Steps that were ever started forward (and so may have changed the system).
    pub fn attempted_steps(&self) -> Vec<usize> {
        let mut steps: Vec<usize> = self
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Intent {
                    step,
                    direction: Direction::Forward,
                } => Some(*step),
                _ => None,
            })
            .filter(|s| *s < self.changes.len())
            .collect();
        steps.sort_unstable();
        steps.dedup();
        steps
    }
}

/// The state directory.
pub struct StateDir {
    pub path: PathBuf,
}

/// Held for the whole of an apply or rollback; released on drop.
pub struct Lock {
    _file: File,
}

impl StateDir {
    /// Opens the directory, creating it (mode 0700) when missing.
    pub fn open(path: &Path) -> Result<StateDir> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path.join("transactions"))
            .with_context(|| format!("cannot create state directory {}", path.display()))?;
        let meta = std::fs::metadata(path)?;
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("cannot set mode 0700 on {}", path.display()))?;
        }
        Ok(StateDir {
            path: path.to_path_buf(),
        })
    }

    /// Opens the directory for reading only; `None` when it does not exist.
    pub fn existing(path: &Path) -> Option<StateDir> {
        path.join("transactions").is_dir().then(|| StateDir {
            path: path.to_path_buf(),
        })
    }

    /// Takes the lock, or fails at once if another apply or rollback holds it.
    pub fn lock(&self) -> Result<Lock> {
        let path = self.path.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot open lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Lock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "another tune apply or rollback is running (lock {} is held); nothing was changed",
                path.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }

    fn transactions_dir(&self) -> PathBuf {
        self.path.join("transactions")
    }

    /// Every transaction, oldest first.
    pub fn transactions(&self) -> Result<Vec<Transaction>> {
        let dir = self.transactions_dir();
        let mut out = Vec::new();
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?;
        for entry in entries {
            let path = entry?.path();
            let is_journal = path.extension().is_some_and(|e| e == "jsonl");
            if is_journal {
                out.push(read_journal(&path)?);
            }
        }
        out.sort_by_key(|t| t.id);
        Ok(out)
    }

    pub fn transaction(&self, id: u64) -> Result<Transaction> {
        let path = self.transactions_dir().join(format!("{id:06}.jsonl"));
        if !path.exists() {
            bail!("no transaction {id} in {}", self.path.display());
        }
        read_journal(&path)
    }

    /// Creates the journal of transaction `id` (the caller, holding the lock, read the
    /// existing ones and picks the next number; `create_new` refuses a clash) and
    /// writes its `begin` event, with the network namespace the changes are made in.
    pub fn begin(
        &self,
        id: u64,
        hostname: &str,
        netns: Option<&NetnsRecord>,
        changes: &[Change],
    ) -> Result<Journal> {
        let path = self.transactions_dir().join(format!("{id:06}.jsonl"));
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot create journal {}", path.display()))?;
        // The new directory entry must survive a crash too.
        File::open(self.transactions_dir())?.sync_all()?;
        let mut journal = Journal { id, file, path };
        journal.append(&Event::Begin {
            id,
            at: crate::facts::now_unix(),
            hostname: hostname.to_owned(),
            changes: changes.to_vec(),
            netns: netns.cloned(),
        })?;
        Ok(journal)
    }

    /// Reopens an existing journal to append (rollback).
    pub fn reopen(&self, t: &Transaction) -> Result<Journal> {
        let file = OpenOptions::new()
            .append(true)
            .open(&t.path)
            .with_context(|| format!("cannot open journal {}", t.path.display()))?;
        Ok(Journal {
            id: t.id,
            file,
            path: t.path.clone(),
        })
    }
}

/// An open journal.
pub struct Journal {
    pub id: u64,
    file: File,
    pub path: PathBuf,
}

impl Journal {
    /// Appends one event and fsyncs it.
    pub fn append(&mut self, event: &Event) -> Result<()> {
        let mut line = serde_json::to_string(event)?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.sync_data())
            .with_context(|| format!("cannot write journal {}", self.path.display()))
    }
}

fn read_journal(path: &Path) -> Result<Transaction> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read journal {}", path.display()))?;
    let mut events = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str::<Event>(line) {
            Ok(e) => events.push(e),
            // A torn final line is what a crash mid-write leaves; anything else is damage.
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {}
            Err(e) => bail!("{}:{}: corrupt journal line: {e}", path.display(), i + 1),
        }
    }
    let Some(Event::Begin {
        id,
        at,
        hostname,
        changes,
        netns,
    }) = events.first().cloned()
    else {
        bail!(
            "{}: journal does not start with a begin event",
            path.display()
        );
    };
    Ok(Transaction {
        id,
        at,
        hostname,
        changes,
        events,
        path: path.to_path_buf(),
        netns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Mutation;

    fn change() -> Change {
        Change {
            rules: vec!["p/r".into()],
            mutation: Mutation::Sysctl {
                key: "net.core.somaxconn".into(),
                before: "128".into(),
                after: "4096".into(),
            },
            evidence: vec![],
        }
    }

    #[test]
    fn statuses_follow_the_events() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let mut j = state.begin(1, "h", None, &[change()]).unwrap();
        let read = |state: &StateDir| state.transaction(1).unwrap().status();
        assert_eq!(read(&state), Status::Interrupted);
        j.append(&Event::Intent {
            step: 0,
            direction: Direction::Forward,
        })
        .unwrap();
        assert_eq!(state.transaction(1).unwrap().attempted_steps(), vec![0]);
        j.append(&Event::Done {
            step: 0,
            direction: Direction::Forward,
        })
        .unwrap();
        j.append(&Event::Applied { at: 1.0 }).unwrap();
        assert_eq!(read(&state), Status::Applied);
        j.append(&Event::RollbackBegin {
            at: 2.0,
            forced: false,
        })
        .unwrap();
        assert_eq!(read(&state), Status::Interrupted);
        j.append(&Event::RollbackEnd { ok: true, at: 3.0 }).unwrap();
        assert_eq!(read(&state), Status::RolledBack);
        let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn a_torn_last_line_is_ignored_but_damage_elsewhere_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let j = state.begin(1, "h", None, &[change()]).unwrap();
        let mut text = std::fs::read_to_string(&j.path).unwrap();
        text.push_str("{\"event\":\"intent\",\"st");
        std::fs::write(&j.path, &text).unwrap();
        assert_eq!(state.transaction(1).unwrap().events.len(), 1);
        std::fs::write(&j.path, format!("garbage\n{text}\n")).unwrap();
        let err = state.transaction(1).unwrap_err().to_string();
        assert!(err.contains("corrupt journal line"), "{err}");
    }

    #[test]
    fn the_lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let held = state.lock().unwrap();
        let err = state.lock().err().unwrap().to_string();
        assert!(
            err.contains("another tune apply or rollback is running"),
            "{err}"
        );
        drop(held);
        assert!(state.lock().is_ok());
    }
}
