//! The sysctl configuration boot applies, read under `--root` as both boot-time
//! readers read it:
//!
//! - **systemd-sysctl**: `*.conf` in `/etc`, `/run`, `/usr/local/lib`, `/usr/lib`
//!   `sysctl.d`, masked by name and ordered by file name
//!   (`CONF_PATHS_NULSTR("sysctl.d")` in systemd's `src/sysctl/sysctl.c`);
//!   `/etc/sysctl.conf` only through a `99-sysctl.conf` link;
//! - **procps `sysctl --system`**: the same files, then `/etc/sysctl.conf` last.
//!
//! The parsing and "which assignment wins" live in `domain::sysctl_conf`.

use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::config::{CONF_DIRS, ConfFile, list_dropins, read_file};
use crate::domain::sysctl_conf::BootFile;

/// The owned file `tune --persist` writes.
pub const OWNED_FILE: &str = "/etc/sysctl.d/90-tune.conf";

/// The legacy file procps reads last.
pub const SYSCTL_CONF: &str = "/etc/sysctl.conf";

/// The sysctl files boot reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SysctlBoot {
    /// sysctl.d files in systemd-sysctl order (masked files left out).
    pub files: Vec<ConfFile>,
    /// /etc/sysctl.conf, `null` when absent.
    pub sysctl_conf: Option<String>,
}

/// Reads the sysctl.d files and /etc/sysctl.conf under `root`.
pub fn read(root: &Path) -> Result<SysctlBoot, String> {
    Ok(SysctlBoot {
        files: list_dropins(root, &CONF_DIRS, "sysctl.d", ".conf")?,
        sysctl_conf: read_file(root, SYSCTL_CONF)?,
    })
}

impl SysctlBoot {
    /// The files systemd-sysctl reads, in order.
    pub fn systemd(&self) -> Vec<BootFile<'_>> {
        self.files
            .iter()
            .map(|f| BootFile {
                path: &f.path,
                content: &f.content,
            })
            .collect()
    }

    /// The files `sysctl --system` reads, in order: the same, then /etc/sysctl.conf.
    pub fn procps(&self) -> Vec<BootFile<'_>> {
        let mut files = self.systemd();
        if let Some(content) = &self.sysctl_conf {
            files.push(BootFile {
                path: SYSCTL_CONF,
                content,
            });
        }
        files
    }

    /// The content of the owned file, `None` when absent.
    pub fn owned(&self) -> Option<&str> {
        self.files
            .iter()
            .find(|f| f.path == OWNED_FILE)
            .map(|f| f.content.as_str())
    }
}
