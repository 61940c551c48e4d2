//! The state directory: transaction journals and the apply lock.
//!
//! ```text
//! STATE_DIR/              mode 0700, root's alone (see `trust.rs`)
//!   lock                  held (flock) for the whole of an apply or a rollback
//!   transactions/
//!     000001.jsonl        one transaction: a `begin` event, then one event per line
//! ```
//!
//! A journal is append-only JSON lines, fsynced after every event. The event that
//! announces a mutation (`intent`) is on disk before the mutation happens, so after a
//! crash the journal says which resources may have changed.
//!
//! Crash safety:
//! - a journal either does not exist or starts with a complete, fsynced `begin`: it is
//!   written to `.NNNNNN.jsonl.tmp`, fsynced, renamed into place (never over another
//!   journal), and the directory is fsynced;
//! - only lines ending in a newline count: bytes after the last newline are a torn
//!   write, ignored by readers and cut off before anything is appended;
//! - a journal that cannot be read, is empty, or does not start with `begin` is
//!   skipped with a warning, so one damaged journal never blocks the others; a
//!   damaged line in the middle is skipped too, and rollback then treats every step of
//!   that transaction as possibly applied;
//! - space for the events of an apply is reserved (`fallocate`) together with the
//!   `begin`, so a full disk is found before anything changes.
//!
//! New event kinds are new [`Event`] variants; [`Transaction::status`] says how each
//! one moves a transaction's status.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::fault::{self, Point};
use super::trust::{self, Refused};
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
    /// Lines that could not be read (damage in the middle of the journal).
    pub damage: Vec<String>,
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
    /// In a damaged journal a lost line may have been an intent: every step counts.
    pub fn attempted_steps(&self) -> Vec<usize> {
        if !self.damage.is_empty() {
            return (0..self.changes.len()).collect();
        }
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

/// A journal file that was not read.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
    /// Foreign-owned, writable by others or a symlink: apply and rollback refuse to
    /// run until it is removed.
    pub untrusted: bool,
}

/// Every journal of a state directory.
#[derive(Debug, Clone, Default)]
pub struct Journals {
    /// The transactions that could be read, oldest first.
    pub transactions: Vec<Transaction>,
    pub skipped: Vec<Skipped>,
    /// The id the next apply takes: above every journal's, read or not.
    pub next_id: u64,
}

impl Journals {
    /// One line per skipped journal and per damaged line.
    pub fn warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .skipped
            .iter()
            .map(|s| format!("{}: {}; skipped", s.path.display(), s.reason))
            .collect();
        for t in &self.transactions {
            for d in &t.damage {
                out.push(format!(
                    "{}: {d}; rollback treats every step of transaction {} as possibly applied",
                    t.path.display(),
                    t.id
                ));
            }
        }
        out
    }

    /// Refuses when someone other than root could have written a journal: root would
    /// act on what it says.
    pub fn refuse_untrusted(&self) -> Result<()> {
        if let Some(s) = self.skipped.iter().find(|s| s.untrusted) {
            bail!(
                "refusing to act on the state directory: {}; remove it after checking what it is. Nothing was changed",
                s.reason
            );
        }
        Ok(())
    }

    /// The transaction with this id, or why there is none.
    pub fn get(&self, id: u64) -> Result<&Transaction> {
        if let Some(t) = self.transactions.iter().find(|t| t.id == id) {
            return Ok(t);
        }
        if let Some(s) = self
            .skipped
            .iter()
            .find(|s| journal_id(&s.path) == Some(id))
        {
            bail!("transaction {id} cannot be used: {}", s.reason);
        }
        bail!("no transaction {id}")
    }
}

/// The state directory.
pub struct StateDir {
    pub path: PathBuf,
}

/// Held for the whole of an apply or rollback; released on drop. Functions that need
/// the lock held take a `&Lock`.
pub struct Lock {
    _file: File,
}

/// Bytes reserved with the `begin` for the events that follow: per step an intent, a
/// done, a failure and the same backwards, then the closing events and one error text.
fn reserve_bytes(steps: usize) -> u64 {
    4096 + 512 * steps as u64
}

fn journal_name(id: u64) -> String {
    format!("{id:06}.jsonl")
}

/// The id in a journal's file name (`000042.jsonl` → 42).
fn journal_id(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(".jsonl")?;
    if stem.is_empty() || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

fn refused(path: &Path, what: &str, r: Refused) -> anyhow::Error {
    match r {
        Refused::Untrusted(why) => anyhow::anyhow!("refusing {what}: {why}; nothing was changed"),
        Refused::Io(e) => anyhow::Error::new(e).context(format!("cannot open {}", path.display())),
    }
}

fn fsync_dir(path: &Path) -> std::io::Result<()> {
    fault::journal_op(Point::DirFsync)?;
    File::open(path)?.sync_all()
}

impl StateDir {
    /// Opens the directory, creating it (mode 0700) when missing; refuses one that
    /// someone other than root could write (see `trust.rs`).
    pub fn open(path: &Path) -> Result<StateDir> {
        trust::check_ancestors(path)?;
        for dir in [path.to_path_buf(), path.join("transactions")] {
            match std::fs::symlink_metadata(&dir) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(&dir)
                        .with_context(|| {
                            format!("cannot create state directory {}", dir.display())
                        })?;
                    if let Some(parent) = dir.parent() {
                        let _ = File::open(parent).and_then(|d| d.sync_all());
                    }
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot examine {}", dir.display()));
                }
            }
            trust::check_dir(&dir)?;
            let mode = std::fs::symlink_metadata(&dir)?.permissions().mode();
            if mode & 0o077 != 0 {
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                    .with_context(|| format!("cannot set mode 0700 on {}", dir.display()))?;
            }
        }
        Ok(StateDir {
            path: path.to_path_buf(),
        })
    }

    /// Opens the directory for reading only; `None` when it (or `transactions/`) does
    /// not exist. Refuses an untrusted one like [`StateDir::open`].
    pub fn existing(path: &Path) -> Result<Option<StateDir>> {
        for dir in [path.to_path_buf(), path.join("transactions")] {
            match std::fs::symlink_metadata(&dir) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot examine {}", dir.display()));
                }
            }
            if dir == path {
                trust::check_ancestors(path)?;
            }
            trust::check_dir(&dir)?;
        }
        Ok(Some(StateDir {
            path: path.to_path_buf(),
        }))
    }

    /// Takes the lock, or fails at once if another apply or rollback holds it.
    pub fn lock(&self) -> Result<Lock> {
        let path = self.path.join("lock");
        let file = trust::open_file(
            &path,
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o600),
        )
        .map_err(|r| refused(&path, "the lock file", r))?;
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

    /// Every journal: the transactions that could be read, oldest first, and the
    /// journals that were skipped, with why. Fails only when the directory itself
    /// cannot be listed.
    /// One transaction by id (a convenience over [`StateDir::transactions`]).
    pub fn transaction(&self, id: u64) -> Result<Transaction> {
        Ok(self.transactions()?.get(id)?.clone())
    }

    pub fn transactions(&self) -> Result<Journals> {
        let dir = self.transactions_dir();
        let mut out = Journals::default();
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?;
        let mut max_id = 0;
        for entry in entries {
            let path = match entry {
                Ok(e) => e.path(),
                Err(e) => {
                    out.skipped.push(Skipped {
                        path: dir.clone(),
                        reason: format!("cannot list an entry: {e}"),
                        untrusted: false,
                    });
                    continue;
                }
            };
            let Some(id) = journal_id(&path) else {
                continue;
            };
            max_id = max_id.max(id);
            match read_journal(&path, id) {
                Ok(t) => out.transactions.push(t),
                Err(s) => out.skipped.push(s),
            }
        }
        out.transactions.sort_by_key(|t| t.id);
        out.skipped.sort_by(|a, b| a.path.cmp(&b.path));
        out.next_id = max_id.saturating_add(1);
        Ok(out)
    }

    /// Removes the temporary files of journals whose creation a crash interrupted
    /// (nothing was mutated under them). Best effort; the caller holds the lock.
    pub fn remove_stale_temp(&self, _lock: &Lock) {
        let Ok(entries) = std::fs::read_dir(self.transactions_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.ends_with(".jsonl.tmp") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Creates the journal of transaction `id` with its `begin` event and the space
    /// for the events to come, atomically: after a crash the journal either does not
    /// exist or starts with the complete `begin`. The caller holds the lock and read
    /// the journals to pick `id`; an existing journal of that id is never replaced.
    pub fn begin(
        &self,
        _lock: &Lock,
        id: u64,
        hostname: &str,
        netns: Option<&NetnsRecord>,
        changes: &[Change],
    ) -> Result<Journal> {
        let dir = self.transactions_dir();
        let path = dir.join(journal_name(id));
        let tmp = dir.join(format!(".{}.tmp", journal_name(id)));
        let begin = Event::Begin {
            id,
            at: crate::facts::now_unix(),
            hostname: hostname.to_owned(),
            changes: changes.to_vec(),
            netns: netns.cloned(),
        };
        let mut renamed = false;
        let created = (|| -> Result<Journal> {
            fault::journal_op(Point::JournalCreate)?;
            let file = OpenOptions::new()
                .create_new(true)
                .read(true)
                .append(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&tmp)?;
            let mut journal = Journal {
                id,
                file,
                path: tmp.clone(),
                len: 0,
                torn: false,
            };
            journal.append(&begin)?;
            // Where the file system cannot reserve, the events are written unreserved.
            journal.reserve(reserve_bytes(changes.len()))?;
            fault::journal_op(Point::JournalFsync)?;
            journal.file.sync_all()?;
            fault::journal_op(Point::JournalRename)?;
            rename_noreplace(&tmp, &path)?;
            renamed = true;
            journal.path = path.clone();
            fsync_dir(&dir)?;
            Ok(journal)
        })();
        created.map_err(|e| {
            // Nothing was mutated under this journal: it may go.
            let _ = std::fs::remove_file(if renamed { &path } else { &tmp });
            e.context(format!(
                "cannot create journal {} (nothing was changed)",
                path.display()
            ))
        })
    }

    /// Removes the journal of a transaction that changed nothing (its first intent
    /// could not be written). Best effort.
    pub fn discard(&self, journal: Journal) {
        let path = journal.path.clone();
        drop(journal);
        if std::fs::remove_file(&path).is_ok() {
            let _ = fsync_dir(&self.transactions_dir());
        }
    }

    /// Reopens an existing journal to append (rollback); a torn last line is cut off
    /// first, so the next event starts on a line of its own.
    pub fn reopen(&self, _lock: &Lock, t: &Transaction) -> Result<Journal> {
        let mut file = trust::open_file(&t.path, OpenOptions::new().read(true).append(true))
            .map_err(|r| refused(&t.path, "the journal", r))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .with_context(|| format!("cannot read journal {}", t.path.display()))?;
        let len = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let mut journal = Journal {
            id: t.id,
            file,
            path: t.path.clone(),
            len: len as u64,
            torn: len < bytes.len(),
        };
        journal
            .cut_torn_tail()
            .with_context(|| format!("cannot repair journal {}", t.path.display()))?;
        // Best effort: rollback goes ahead even where space cannot be reserved.
        let _ = journal.reserve(reserve_bytes(t.changes.len()));
        Ok(journal)
    }
}

/// `rename(2)` that refuses to replace `to` (renameat2 RENAME_NOREPLACE, or link and
/// unlink where the file system lacks it).
fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))
    };
    let (cf, ct) = (c(from)?, c(to)?);
    // SAFETY: two valid NUL-terminated paths; AT_FDCWD resolves them as given.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            cf.as_ptr(),
            libc::AT_FDCWD,
            ct.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::EINVAL) {
        return Err(e);
    }
    std::fs::hard_link(from, to)?;
    std::fs::remove_file(from)
}

/// An open journal.
pub struct Journal {
    pub id: u64,
    file: File,
    pub path: PathBuf,
    /// Bytes of complete, newline-terminated lines.
    len: u64,
    /// Bytes past `len` may be on disk (a failed or partial write).
    torn: bool,
}

impl Journal {
    /// Appends one event and fsyncs it. After a failed append, the next one first cuts
    /// off whatever part of the failed line reached the file.
    pub fn append(&mut self, event: &Event) -> Result<()> {
        let mut line = serde_json::to_string(event)?;
        line.push('\n');
        self.write_line(line.as_bytes())
            .with_context(|| format!("cannot write journal {}", self.path.display()))
    }

    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        self.cut_torn_tail()?;
        match fault::at(Point::JournalWrite) {
            fault::Fault::None => {}
            fault::Fault::Crash => {
                let _ = self.file.write_all(&line[..line.len() / 2]);
                fault::crash()
            }
            fault::Fault::Fail => return Err(fault::enospc()),
        }
        self.torn = true;
        self.file.write_all(line)?;
        fault::journal_op(Point::JournalFsync)?;
        self.file.sync_data()?;
        self.len += line.len() as u64;
        self.torn = false;
        Ok(())
    }

    /// Cuts the file back to its last complete line, if a write may have left more.
    fn cut_torn_tail(&mut self) -> std::io::Result<()> {
        if !self.torn && self.file.metadata()?.len() == self.len {
            return Ok(());
        }
        fault::journal_op(Point::JournalTruncate)?;
        self.file.set_len(self.len)?;
        self.file.sync_data()?;
        self.torn = false;
        Ok(())
    }

    /// Reserves `bytes` past the end for the events to come, without changing the
    /// file's length. `Ok(false)`: the file system cannot reserve; `Err`: no space.
    fn reserve(&mut self, bytes: u64) -> std::io::Result<bool> {
        fault::journal_op(Point::JournalReserve)?;
        let (Ok(offset), Ok(len)) = (i64::try_from(self.len), i64::try_from(bytes)) else {
            return Ok(false);
        };
        // SAFETY: a valid open descriptor; KEEP_SIZE only allocates blocks.
        let rc = unsafe {
            libc::fallocate(
                self.file.as_raw_fd(),
                libc::FALLOC_FL_KEEP_SIZE,
                offset,
                len,
            )
        };
        if rc == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => Ok(false),
            _ => Err(e),
        }
    }
}

/// Reads one journal; `Err` says why it was skipped.
fn read_journal(path: &Path, id: u64) -> std::result::Result<Transaction, Skipped> {
    let skip = |reason: String, untrusted: bool| Skipped {
        path: path.to_path_buf(),
        reason,
        untrusted,
    };
    let mut file = trust::open_file(path, OpenOptions::new().read(true)).map_err(|r| match r {
        Refused::Untrusted(why) => skip(format!("untrusted journal: {why}"), true),
        Refused::Io(e) => skip(format!("cannot open: {e}"), false),
    })?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| skip(format!("cannot read: {e}"), false))?;
    // Only newline-terminated lines were ever fsynced as complete events.
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let bytes = &bytes[..complete];
    if bytes.is_empty() {
        let reason = if complete == 0 && file.metadata().is_ok_and(|m| m.len() > 0) {
            "no complete line (a crash while its first event was written)"
        } else {
            "empty journal (a crash before its first event was written)"
        };
        return Err(skip(reason.into(), false));
    }
    let mut events = Vec::new();
    let mut damage = Vec::new();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if i > 0 && line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Event>(line) {
            Ok(e) => events.push(e),
            Err(_) if i == 0 => {
                return Err(skip(
                    "journal does not start with a begin event".into(),
                    false,
                ));
            }
            Err(e) => damage.push(format!("line {}: corrupt journal line ({e})", i + 1)),
        }
    }
    let Some(Event::Begin {
        id: begin_id,
        at,
        hostname,
        changes,
        netns,
    }) = events.first().cloned()
    else {
        return Err(skip(
            "journal does not start with a begin event".into(),
            false,
        ));
    };
    if begin_id != id {
        return Err(skip(
            format!("its begin event names transaction {begin_id}, its file name {id}"),
            false,
        ));
    }
    Ok(Transaction {
        id,
        at,
        hostname,
        changes,
        events,
        path: path.to_path_buf(),
        netns,
        damage,
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

    fn read(state: &StateDir, id: u64) -> Transaction {
        state.transactions().unwrap().get(id).unwrap().clone()
    }

    #[test]
    fn statuses_follow_the_events() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let lock = state.lock().unwrap();
        let mut j = state.begin(&lock, 1, "h", None, &[change()]).unwrap();
        let status = |state: &StateDir| read(state, 1).status();
        assert_eq!(status(&state), Status::Interrupted);
        j.append(&Event::Intent {
            step: 0,
            direction: Direction::Forward,
        })
        .unwrap();
        assert_eq!(read(&state, 1).attempted_steps(), vec![0]);
        j.append(&Event::Done {
            step: 0,
            direction: Direction::Forward,
        })
        .unwrap();
        j.append(&Event::Applied { at: 1.0 }).unwrap();
        assert_eq!(status(&state), Status::Applied);
        j.append(&Event::RollbackBegin {
            at: 2.0,
            forced: false,
        })
        .unwrap();
        assert_eq!(status(&state), Status::Interrupted);
        j.append(&Event::RollbackEnd { ok: true, at: 3.0 }).unwrap();
        assert_eq!(status(&state), Status::RolledBack);
        let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        // The journal was made through a temp file that is gone now.
        let names: Vec<String> = std::fs::read_dir(dir.path().join("transactions"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["000001.jsonl".to_string()]);
    }

    #[test]
    fn a_torn_tail_is_ignored_and_cut_before_the_next_event() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let lock = state.lock().unwrap();
        let j = state.begin(&lock, 1, "h", None, &[change()]).unwrap();
        let path = j.path.clone();
        drop(j);
        let good = std::fs::read_to_string(&path).unwrap();
        // A complete event without its newline was never fsynced as complete either.
        for torn in [
            "{\"event\":\"intent\",\"st",
            "{\"event\":\"applied\",\"at\":1.0}",
        ] {
            std::fs::write(&path, format!("{good}{torn}")).unwrap();
            let t = read(&state, 1);
            assert_eq!(t.events.len(), 1, "{torn}");
            assert_eq!(t.status(), Status::Interrupted);
            let mut j = state.reopen(&lock, &t).unwrap();
            j.append(&Event::Applied { at: 2.0 }).unwrap();
            let text = std::fs::read_to_string(&path).unwrap();
            assert_eq!(
                text,
                format!("{good}{{\"event\":\"applied\",\"at\":2.0}}\n")
            );
        }
    }

    #[test]
    fn an_empty_a_beginless_or_a_damaged_journal_blocks_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let lock = state.lock().unwrap();
        let j = state.begin(&lock, 2, "h", None, &[change()]).unwrap();
        let good = std::fs::read_to_string(&j.path).unwrap();
        let tdir = dir.path().join("transactions");
        std::fs::write(tdir.join("000001.jsonl"), "").unwrap();
        std::fs::write(
            tdir.join("000003.jsonl"),
            "{\"event\":\"applied\",\"at\":1.0}\n",
        )
        .unwrap();
        std::fs::write(
            tdir.join("000004.jsonl"),
            format!("{}garbage\n", good.replace("\"id\":2", "\"id\":4")),
        )
        .unwrap();
        let journals = state.transactions().unwrap();
        let ids: Vec<u64> = journals.transactions.iter().map(|t| t.id).collect();
        assert_eq!(ids, vec![2, 4]);
        assert_eq!(journals.next_id, 5);
        let warnings = journals.warnings().join("\n");
        assert!(
            warnings.contains("000001.jsonl: empty journal"),
            "{warnings}"
        );
        assert!(
            warnings.contains("000003.jsonl: journal does not start with a begin"),
            "{warnings}"
        );
        assert!(
            warnings.contains("000004.jsonl: line 2: corrupt journal line"),
            "{warnings}"
        );
        // A lost line may have been an intent: every step counts as attempted.
        assert_eq!(journals.get(4).unwrap().attempted_steps(), vec![0]);
        assert!(journals.refuse_untrusted().is_ok());
        let err = journals.get(1).unwrap_err().to_string();
        assert!(err.contains("empty journal"), "{err}");
    }

    #[test]
    fn untrusted_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let tdir = dir.path().join("transactions");
        std::os::unix::fs::symlink("/etc/hostname", tdir.join("000001.jsonl")).unwrap();
        let journals = state.transactions().unwrap();
        assert!(journals.skipped[0].untrusted);
        let err = journals.refuse_untrusted().unwrap_err().to_string();
        assert!(err.contains("is a symlink"), "{err}");
        std::os::unix::fs::symlink("/nonexistent-tune-lock", dir.path().join("lock")).unwrap();
        let err = format!("{:#}", state.lock().err().unwrap());
        assert!(err.contains("is a symlink"), "{err}");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o770)).unwrap();
        let err = format!("{:#}", StateDir::open(dir.path()).err().unwrap());
        assert!(err.contains("writable by group or others"), "{err}");
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
