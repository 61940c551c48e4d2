//! Configuration files under `--root`: what boot and the service managers will read.
//!
//! `--root DIR` (as in systemd's and dpkg's tools) makes every configuration path
//! resolve under DIR; runtime values still come from the namespace being worked on.
//! Paths recorded here are the ones the system itself names (`/etc/sysctl.d/x.conf`);
//! [`ConfigFacts::host_path`] is where that file is under the root.
//!
//! Files in `*.d` directories are listed the way systemd's `conf_files_list` does: a
//! file in an earlier directory masks the same name in a later one, a symlink to
//! `/dev/null` masks without content, and the rest are sorted by file name whatever
//! their directory. Symlinks inside the root are resolved inside the root.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Fact, describe_io_error};

/// Largest configuration file read.
pub const MAX_CONF_BYTES: u64 = 1024 * 1024;

/// The systemd search path for `NAME.d` directories, earliest first.
pub const CONF_DIRS: [&str; 4] = ["/etc", "/run", "/usr/local/lib", "/usr/lib"];

/// One configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConfFile {
    /// The path as the system names it (not under `--root`).
    pub path: String,
    pub content: String,
}

/// The configuration files the loaded fixes may persist to or must respect.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConfigFacts {
    /// The `--root` everything was read under (`/` for the host).
    pub root: String,
    /// sysctl.d files, in the order systemd-sysctl reads them, and /etc/sysctl.conf.
    #[serde(default)]
    pub sysctl: Fact<super::sysctl_d::SysctlBoot>,
    /// modules-load.d files (and Debian's /etc/modules), in reading order.
    #[serde(default)]
    pub modules_load: Fact<Vec<ConfFile>>,
    /// What configures each link at boot, by link name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub link_owners: BTreeMap<String, Fact<super::networkd::LinkOwner>>,
    /// The systemd services the java processes run in, by unit name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub units: BTreeMap<String, Fact<super::units::UnitFiles>>,
}

impl ConfigFacts {
    /// Where the system's `path` is under the root.
    pub fn host_path(&self, path: &str) -> String {
        under(Path::new(&self.root), path)
            .to_string_lossy()
            .into_owned()
    }
}

/// `path` (absolute, as the system names it) under `root`.
pub fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// What a directory entry is, symlinks followed inside the root.
enum Entry {
    Masked,
    File(PathBuf),
    Other,
}

fn chase(root: &Path, path: &Path) -> std::io::Result<Entry> {
    let mut path = path.to_path_buf();
    for _ in 0..16 {
        let meta = std::fs::symlink_metadata(&path)?;
        if !meta.file_type().is_symlink() {
            return Ok(if meta.is_file() {
                Entry::File(path)
            } else {
                Entry::Other
            });
        }
        let target = std::fs::read_link(&path)?;
        if target == Path::new("/dev/null") {
            return Ok(Entry::Masked);
        }
        path = if target.is_absolute() {
            under(root, &target.to_string_lossy())
        } else {
            path.parent().unwrap_or(root).join(target)
        };
    }
    Err(std::io::Error::other("too many levels of symbolic links"))
}

/// Reads one file (following symlinks inside the root); `None` when absent or masked.
pub fn read_file(root: &Path, path: &str) -> Result<Option<String>, String> {
    let full = under(root, path);
    let entry = match chase(root, &full) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{path}: {}", describe_io_error(&e))),
    };
    match entry {
        Entry::Masked => Ok(None),
        Entry::Other => Err(format!("{path} is not a regular file")),
        Entry::File(p) => read_bounded(&p)
            .map(Some)
            .map_err(|e| format!("{path}: {e}")),
    }
}

fn read_bounded(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| describe_io_error(&e))?;
    if meta.len() > MAX_CONF_BYTES {
        return Err(format!("larger than {MAX_CONF_BYTES} bytes"));
    }
    let bytes = std::fs::read(path).map_err(|e| describe_io_error(&e))?;
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned())
}

/// The files `DIR/sub/*suffix` of every directory in `dirs` (earliest first), masked
/// by name and sorted by name.
pub fn list_dropins(
    root: &Path,
    dirs: &[&str],
    sub: &str,
    suffix: &str,
) -> Result<Vec<ConfFile>, String> {
    let mut by_name: BTreeMap<String, Option<ConfFile>> = BTreeMap::new();
    for dir in dirs {
        let sys_dir = format!("{}/{sub}", dir.trim_end_matches('/'));
        let entries = match std::fs::read_dir(under(root, &sys_dir)) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("{sys_dir}: {}", describe_io_error(&e))),
        };
        for entry in entries {
            let entry = entry.map_err(|e| format!("{sys_dir}: {}", describe_io_error(&e)))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with(suffix) || name.starts_with('.') || by_name.contains_key(&name) {
                continue;
            }
            let path = format!("{sys_dir}/{name}");
            let file = match chase(root, &entry.path()) {
                Ok(Entry::File(p)) => Some(ConfFile {
                    content: read_bounded(&p).map_err(|e| format!("{path}: {e}"))?,
                    path,
                }),
                Ok(Entry::Masked) => None,
                // A dangling link or a directory: systemd skips it too.
                Ok(Entry::Other) | Err(_) => continue,
            };
            by_name.insert(name, file);
        }
    }
    Ok(by_name.into_values().flatten().collect())
}

fn fact<T>(r: Result<T, String>) -> Fact<T> {
    match r {
        Ok(v) => Fact::Value(v),
        Err(e) => Fact::Unknown(e),
    }
}

/// Adds what configures each of `links` at boot (their MAC address and kind decide
/// networkd's `[Match] MACAddress=` and `Type=`).
pub fn add_link_owners(config: &mut ConfigFacts, links: &[super::networkd::LinkId]) {
    if links.is_empty() {
        return;
    }
    // The managers' files once, not once a link.
    let root = PathBuf::from(&config.root);
    let files = super::networkd::OwnerFiles::new(&root);
    for l in links {
        config
            .link_owners
            .insert(l.name.clone(), fact(files.owner(l)));
    }
}

/// Reads everything the persistence planner, the drift report and the JVM fix need
/// (the units of `services`).
pub fn gather(root: &Path, services: &[String]) -> ConfigFacts {
    let mut modules = list_dropins(root, &CONF_DIRS, "modules-load.d", ".conf");
    if let Ok(files) = &mut modules
        && let Ok(Some(content)) = read_file(root, "/etc/modules")
    {
        files.push(ConfFile {
            path: "/etc/modules".to_owned(),
            content,
        });
    }
    ConfigFacts {
        root: root.to_string_lossy().into_owned(),
        sysctl: fact(super::sysctl_d::read(root)),
        modules_load: fact(modules),
        link_owners: BTreeMap::new(),
        units: services
            .iter()
            .map(|u| (u.clone(), fact(super::units::read(root, u))))
            .collect(),
    }
}
