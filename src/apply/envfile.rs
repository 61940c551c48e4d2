//! The environment-file executor: atomic replacement that keeps the file's mode and
//! owner, and removal (rolling back the creation of a file).
//!
//! A write goes to a temporary file in the same directory, which is fsynced, given
//! the old file's mode and owner, renamed over the file, and then the directory is
//! fsynced, so after a crash the file holds either the old or the new content, never
//! a mix. A crash before the rename leaves the temporary file behind; the next write
//! of that file (apply or rollback) removes it. Paths are resolved by
//! `facts::envfile::resolve` every time, which refuses symlinked directories and
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
    remove_stale_temp_files(&target, dir);
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
    let mut temp = tempfile::Builder::new()
        .prefix(&temp_prefix(target))
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

/// Temporary files for `target` are named `.NAME.tune-XXXXXX` beside it.
fn temp_prefix(target: &Path) -> String {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.tune-")
}

/// Removes the temporary files a crashed apply or rollback of `target` left beside it
/// (the apply lock is held, so none is in use). Only regular files are removed, never
/// through a link; a failure to remove one is not an error.
fn remove_stale_temp_files(target: &Path, dir: &Path) {
    let prefix = temp_prefix(target);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry.file_name().to_str().is_some_and(|n| {
            n.strip_prefix(prefix.as_str()).is_some_and(|rest| {
                !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric())
            })
        });
        if stale && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot fsync directory {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_files_left_by_a_crash_are_removed_on_the_next_write() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = std::fs::canonicalize(tmp.path()).unwrap();
        let target = dir.join("app.env");
        std::fs::write(dir.join(".app.env.tune-Ab12Cd"), "half").unwrap();
        std::fs::write(dir.join(".app.env.tune-keep.me"), "not ours").unwrap();
        std::fs::write(dir.join(".other.env.tune-Ab12Cd"), "another file's").unwrap();
        write(&target.display().to_string(), Some("A=1\n")).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "A=1\n");
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [".app.env.tune-keep.me", ".other.env.tune-Ab12Cd", "app.env"]
        );
        std::fs::write(dir.join(".app.env.tune-Zz9"), "half").unwrap();
        write(&target.display().to_string(), None).unwrap();
        assert!(!dir.join(".app.env.tune-Zz9").exists());
        assert!(!target.exists());
    }
}
