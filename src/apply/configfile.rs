//! The configuration-file executor: every [`FileRole`] other than environment files
//! (sysctl.d, modules-load.d, unit and networkd drop-ins) goes through the same atomic,
//! mode- and owner-keeping replacement as `envfile`, after creating the file's
//! directory when it is missing (a drop-in directory such as `tomcat9.service.d`
//! usually is). A directory created this way is left in place on rollback: an empty
//! `*.d` directory changes nothing for its reader.

use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use anyhow::{Context, Result, anyhow};

use crate::plan::{ABSENT, FileRole};

/// Mode of a directory that did not exist before.
const NEW_DIR_MODE: u32 = 0o755;

/// The file's content, or [`ABSENT`] (also when its directory does not exist yet).
pub fn read(path: &str, role: FileRole) -> Result<String> {
    if role != FileRole::Env && !parent_exists(path) {
        return Ok(ABSENT.to_owned());
    }
    super::envfile::read(path)
}

/// Brings the file to `after`: that content, or no file at all.
pub fn write(path: &str, role: FileRole, after: Option<&str>) -> Result<()> {
    if role != FileRole::Env && after.is_some() && !parent_exists(path) {
        let dir = Path::new(path)
            .parent()
            .ok_or_else(|| anyhow!("{path} has no directory"))?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(NEW_DIR_MODE)
            .create(dir)
            .with_context(|| format!("cannot create directory {}", dir.display()))?;
    }
    if role != FileRole::Env && after.is_none() && !parent_exists(path) {
        return Ok(());
    }
    super::envfile::write(path, after)
}

fn parent_exists(path: &str) -> bool {
    Path::new(path).parent().is_some_and(Path::is_dir)
}
