//! Trust in the state directory. Root acts on what the journals say (rollback writes
//! /proc/sys and files), so everything in the state directory must be root's alone:
//!
//! - the state directory, `transactions/`, every journal and `lock` must be owned by
//!   root or the running user, and not writable by group or others;
//! - the state directory may not be a symlink, and every directory above it must be
//!   owned by root (or the running user) and not writable by others unless it is
//!   sticky (as /tmp is), so nobody else can swap a component;
//! - every file in it is opened with `O_NOFOLLOW` and checked on the open descriptor.

use std::fs::{File, Metadata, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn trusted_owner(uid: u32) -> bool {
    uid == 0 || uid == euid()
}

/// Why `meta` (of `path`, a state file or directory) cannot be trusted, if it cannot.
pub(crate) fn distrust(path: &Path, meta: &Metadata) -> Option<String> {
    if meta.file_type().is_symlink() {
        return Some(format!("{} is a symlink", path.display()));
    }
    if !trusted_owner(meta.uid()) {
        return Some(format!(
            "{} is owned by uid {}, not by root",
            path.display(),
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Some(format!(
            "{} is writable by group or others (mode {:o})",
            path.display(),
            meta.mode() & 0o7777
        ));
    }
    None
}

/// Refuses a state directory (or `transactions/`) that is a symlink, foreign-owned or
/// writable by others.
pub(crate) fn check_dir(path: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(path)
        .with_context(|| format!("cannot examine state directory {}", path.display()))?;
    if let Some(why) = distrust(path, &meta) {
        bail!("refusing the state directory: {why}; nothing was changed");
    }
    if !meta.is_dir() {
        bail!(
            "refusing the state directory: {} is not a directory; nothing was changed",
            path.display()
        );
    }
    Ok(())
}

/// Refuses a state directory whose ancestors someone else could rename or replace:
/// each one, as written and as resolved, must be owned by root (or the running user)
/// and not writable by group or others unless sticky.
pub(crate) fn check_ancestors(path: &Path) -> Result<()> {
    let absolute =
        std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))?;
    let Some(parent) = absolute.parent() else {
        return Ok(());
    };
    let mut chains = vec![prefixes(parent)];
    // The same names again when no ancestor is a symlink: not examined twice.
    if let Ok(real) = std::fs::canonicalize(parent)
        && real != parent
    {
        chains.push(prefixes(&real));
    }
    for dir in chains.iter().flatten() {
        let meta = match std::fs::symlink_metadata(dir) {
            Ok(m) => m,
            // Created later, under an ancestor that was checked.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("cannot examine {}", dir.display()));
            }
        };
        if !trusted_owner(meta.uid()) {
            bail!(
                "refusing the state directory {}: {} is owned by uid {}, who could replace it; nothing was changed",
                path.display(),
                dir.display(),
                meta.uid()
            );
        }
        let sticky = meta.mode() & 0o1000 != 0;
        if !meta.file_type().is_symlink() && meta.mode() & 0o022 != 0 && !sticky {
            bail!(
                "refusing the state directory {}: {} is writable by group or others (mode {:o}); nothing was changed",
                path.display(),
                dir.display(),
                meta.mode() & 0o7777
            );
        }
    }
    Ok(())
}

/// `/a/b/c` → `/`, `/a`, `/a/b`, `/a/b/c`.
fn prefixes(path: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut acc = PathBuf::new();
    for c in path.components() {
        if matches!(c, Component::CurDir) {
            continue;
        }
        acc.push(c);
        out.push(acc.clone());
    }
    out
}

/// Why a state file was not opened.
#[derive(Debug)]
pub(crate) enum Refused {
    /// A symlink, foreign-owned, writable by others, or not a regular file.
    Untrusted(String),
    Io(std::io::Error),
}

/// Opens a file of the state directory without following a symlink, and checks the
/// opened file: a regular file, owned by root (or the running user), not writable by
/// group or others. `options` says how (read, append, create).
pub(crate) fn open_file(path: &Path, options: &mut OpenOptions) -> Result<File, Refused> {
    let file = options
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                Refused::Untrusted(format!(
                    "{} is a symlink, which tune never follows in its state directory",
                    path.display()
                ))
            } else {
                Refused::Io(e)
            }
        })?;
    let meta = file.metadata().map_err(Refused::Io)?;
    if let Some(why) = distrust(path, &meta) {
        return Err(Refused::Untrusted(why));
    }
    if !meta.is_file() {
        return Err(Refused::Untrusted(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    Ok(file)
}
