//! Fault-injection hooks for the crash and error tests. They do nothing unless their
//! environment variable is set.
//!
//! Every journal operation (create, write, fsync, rename, directory fsync, space
//! reservation, truncation) and every mutation is a numbered *fault point*, counted
//! from 1 in the order the process reaches them:
//!
//! - `TUNE_FAULT_TRACE=1` prints `tune-fault: point N: KIND` on stderr at each point;
//! - `TUNE_FAULT_CRASH_AT=N` kills the process (SIGKILL) at point N, as a power cut
//!   would (at a journal write, after writing half of the line: a torn write);
//! - `TUNE_FAULT_FAIL_AT=N[,M...]` makes those points fail: a journal operation with
//!   ENOSPC, a mutation with EIO;
//! - `TUNE_FAULT_FULL_FROM=N` makes every journal operation from point N on fail with
//!   ENOSPC, as a disk that filled up would.
//!
//! `TUNE_FAULT_CRASH_AFTER_STEP=N` (in `apply/mod.rs`) kills it right after step N was
//! mutated and before it is journaled as done.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Where a fault can strike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Point {
    JournalCreate,
    JournalWrite,
    JournalFsync,
    JournalReserve,
    JournalRename,
    JournalTruncate,
    DirFsync,
    Mutation,
}

impl Point {
    fn name(self) -> &'static str {
        match self {
            Point::JournalCreate => "journal-create",
            Point::JournalWrite => "journal-write",
            Point::JournalFsync => "journal-fsync",
            Point::JournalReserve => "journal-reserve",
            Point::JournalRename => "journal-rename",
            Point::JournalTruncate => "journal-truncate",
            Point::DirFsync => "dir-fsync",
            Point::Mutation => "mutation",
        }
    }
}

/// What the caller must do at a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    None,
    /// Abort the process (a journal write first writes half of its line).
    Crash,
    /// Fail the operation with an injected error.
    Fail,
}

struct Config {
    trace: bool,
    crash_at: Option<usize>,
    fail_at: Vec<usize>,
    full_from: Option<usize>,
}

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| Config {
        trace: std::env::var_os("TUNE_FAULT_TRACE").is_some(),
        crash_at: std::env::var("TUNE_FAULT_CRASH_AT")
            .ok()
            .and_then(|v| v.trim().parse().ok()),
        fail_at: std::env::var("TUNE_FAULT_FAIL_AT")
            .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
            .unwrap_or_default(),
        full_from: std::env::var("TUNE_FAULT_FULL_FROM")
            .ok()
            .and_then(|v| v.trim().parse().ok()),
    })
}

/// Counts a point and says whether a fault strikes there.
pub(crate) fn at(point: Point) -> Fault {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let config = config();
    let off = config.crash_at.is_none() && config.fail_at.is_empty() && config.full_from.is_none();
    if !config.trace && off {
        return Fault::None;
    }
    let n = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
    if config.trace {
        eprintln!("tune-fault: point {n}: {}", point.name());
    }
    if config.crash_at == Some(n) {
        Fault::Crash
    } else if config.fail_at.contains(&n)
        || (point != Point::Mutation && config.full_from.is_some_and(|from| n >= from))
    {
        Fault::Fail
    } else {
        Fault::None
    }
}

/// Kills the process at once (SIGKILL, as `kill -9` or a power cut would): no
/// destructor runs, nothing more is written, no core is dumped.
pub(crate) fn crash() -> ! {
    eprintln!("tune-fault: crashing here");
    // SAFETY: kill(2) on our own pid; SIGKILL cannot be caught.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    std::process::abort()
}

/// The error an injected journal failure returns.
pub(crate) fn enospc() -> std::io::Error {
    std::io::Error::from_raw_os_error(libc::ENOSPC)
}

/// Runs the point check for a journal operation: crashes, or fails with ENOSPC.
pub(crate) fn journal_op(point: Point) -> std::io::Result<()> {
    match at(point) {
        Fault::None => Ok(()),
        Fault::Crash => crash(),
        Fault::Fail => Err(enospc()),
    }
}
