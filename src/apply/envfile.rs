//! The environment-file executor: atomic replacement that keeps the file's mode and
//! owner, and removal (rolling back the creation of a file).
//!
//! A write goes to a temporary file in the same directory, which is fsynced, given
//! the old file's mode and owner, renamed over the file, and then the directory is
//! fsynced, so after a crash the file holds either the old or the new content, never
//! a mix. Paths are resolved by `facts::envfile::resolve` every time, which refuses
//! symlinks that lead out of the file's directory.

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result, anyhow};

use crate::facts::envfile::resolve;
use crate::plan::ABSENT;

/// Mode of a file that did not exist before: readable by the services that read it.
const NEW_FILE_MODE: u32 = 0o644;

/// The file's content, or [`ABSENT`].
pub fn read(path: &str) -> Result<String> {
    crate::facts::envfile::read(path)
        .map(|c| c.unwrap_or_else(|| ABSENT.to_owned()))
        .map_err(|e| anyhow!(e))
}

/// Brings the file to `after`: that content, or no file at all.
pub fn write(path: &str, after: Option<&str>) -> Result<()> {
    let target = resolve(path).map_err(|e| anyhow!(e))?;
    let dir = target
        .parent()
        .ok_or_else(|| anyhow!("{} has no directory", target.display()))?;
    match after {
        None => match std::fs::remove_file(&target) {
            Ok(()) => sync_dir(dir),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("cannot remove {}", target.display())),
        },
        Some(content) => replace(&target, dir, content.as_bytes()),
    }
}

fn replace(target: &Path, dir: &Path, content: &[u8]) -> Result<()> {
    let old = match std::fs::metadata(target) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot stat {}", target.display())),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{name}.tune-"))
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    let file: &mut File = temp.as_file_mut();
    file.write_all(content)
        .with_context(|| format!("cannot write a temporary file in {}", dir.display()))?;
    let mode = old
        .as_ref()
        .map_or(NEW_FILE_MODE, |m| m.permissions().mode() & 0o7777);
    if let Some(m) = &old {
        std::os::unix::fs::fchown(&*file, Some(m.uid()), Some(m.gid()))
            .with_context(|| format!("cannot give the new {} its owner", target.display()))?;
    }
    // After chown, which clears set-id bits.
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot give the new {} its mode", target.display()))?;
    file.sync_all()
        .with_context(|| format!("cannot fsync the new {}", target.display()))?;
    temp.persist(target).map_err(|e| {
        anyhow!(
            "cannot rename the new file onto {}: {}",
            target.display(),
            e.error
        )
    })?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot fsync directory {}", dir.display()))
}
