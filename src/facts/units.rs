//! systemd service units under `--root`: the fragment (first of /etc, /run,
//! /usr/local/lib, /usr/lib `systemd/system`), its drop-ins (`NAME.d/*.conf` from the
//! same directories, masked by name, in name order), and the `EnvironmentFile=` files
//! it names. Which units are read: those the java processes' cgroups name.

use std::collections::BTreeMap;
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::config::{ConfFile, list_dropins, read_file};
use super::{Fact, ProcessInfo};
use crate::domain::unit::{container_of, service_env, service_of};

/// The search path for unit files, earliest first.
pub const UNIT_DIRS: [&str; 4] = [
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
];

/// A unit's files.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UnitFiles {
    /// The unit file, `null` when none of the directories has it.
    pub fragment: Option<ConfFile>,
    /// Its drop-ins, in reading order.
    #[serde(default)]
    pub dropins: Vec<ConfFile>,
    /// The `EnvironmentFile=` files, by the path the unit names: content, `null`
    /// when absent.
    #[serde(default)]
    pub env_files: BTreeMap<String, Fact<Option<String>>>,
}

impl UnitFiles {
    /// Fragment then drop-ins, as (path, content).
    pub fn files(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fragment
            .iter()
            .chain(self.dropins.iter())
            .map(|f| (f.path.as_str(), f.content.as_str()))
    }
}

/// Reads unit `name` under `root`.
pub fn read(root: &Path, name: &str) -> Result<UnitFiles, String> {
    if name.contains('/') || name.starts_with('.') {
        return Err(format!("{name:?} is not a unit name"));
    }
    let mut fragment = None;
    for dir in UNIT_DIRS {
        let path = format!("{dir}/{name}");
        if let Some(content) = read_file(root, &path)? {
            fragment = Some(ConfFile { path, content });
            break;
        }
    }
    let bases: Vec<String> = UNIT_DIRS
        .iter()
        .map(|d| d.trim_end_matches("/system").to_owned())
        .collect();
    let bases: Vec<&str> = bases.iter().map(String::as_str).collect();
    let dropins = list_dropins(root, &bases, &format!("system/{name}.d"), ".conf")?;
    let mut unit = UnitFiles {
        fragment,
        dropins,
        env_files: BTreeMap::new(),
    };
    for (path, _) in service_env(unit.files()).env_files {
        let fact = match read_file(root, &path) {
            Ok(c) => Fact::Value(c),
            Err(e) => Fact::Unknown(e),
        };
        unit.env_files.insert(path, fact);
    }
    Ok(unit)
}

/// The services the processes' memory cgroups name (containers left out).
pub fn services_of(processes: &[ProcessInfo]) -> Vec<String> {
    let mut out: Vec<String> = processes
        .iter()
        .filter_map(|p| match &p.memory_cgroup {
            Fact::Value(c) if container_of(&c.path).is_none() => service_of(&c.path),
            _ => None,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}
