//! `--root` and `--persist`: where configuration files are read and written, and
//! whether a plan also writes the files that make its changes survive a reboot.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::Args;

use crate::facts::Facts;
use crate::facts::networkd::LinkId;
use crate::plan::{Mutation, Plan};
use crate::playbook::{LoadedPlaybook, Vars};

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Resolve every configuration path (sysctl.d, modules-load.d, systemd units and
    /// drop-ins, networkd) under DIR, as systemd's and dpkg's --root do. Runtime
    /// values still go to the namespace being worked on.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Also plan the configuration files that make the changes survive a reboot
    /// (sysctl.d, modules-load.d, a systemd-networkd drop-in for the MTU).
    #[arg(long)]
    pub persist: bool,
}

impl Default for ConfigArgs {
    /// `--root /`, no `--persist`: what the command line gives when neither is passed.
    fn default() -> ConfigArgs {
        ConfigArgs {
            root: PathBuf::from("/"),
            persist: false,
        }
    }
}

impl ConfigArgs {
    /// The root, checked: an existing directory, made absolute.
    pub fn root(&self) -> Result<PathBuf> {
        let root = std::path::absolute(&self.root)?;
        if !root.is_dir() {
            bail!("--root {}: not a directory", self.root.display());
        }
        Ok(root)
    }
}

/// Reads the configuration under the root that planning needs: sysctl.d,
/// modules-load.d, and the units of the java processes in the facts.
pub fn gather(facts: &mut Facts, root: &Path) {
    let services = match &facts.processes {
        Some(crate::facts::Fact::Value(p)) => crate::facts::units::services_of(p),
        _ => Vec::new(),
    };
    facts.config = Some(crate::facts::config::gather(root, &services));
}

/// For `tune facts`: the configuration, with the managers of every link, so that
/// `plan --facts` can replay persistence too.
pub fn gather_for_snapshot(facts: &mut Facts, root: &Path) {
    gather(facts, root);
    let links: Vec<LinkId> = match &facts.links {
        crate::facts::Fact::Value(links) => links.iter().map(LinkId::of).collect(),
        crate::facts::Fact::Unknown(_) => Vec::new(),
    };
    if let Some(config) = &mut facts.config {
        crate::facts::config::add_link_owners(config, &links);
    }
}

/// Reads what configures the links the plan changes (unless a facts snapshot brought
/// the configuration) and adds the persistence changes or notes to `plan`.
pub fn finish(
    plan: &mut Plan,
    playbooks: &[(&LoadedPlaybook, &Vars)],
    facts: &mut Facts,
    persist: bool,
    from_snapshot: bool,
) {
    if !from_snapshot {
        let known = match &facts.links {
            crate::facts::Fact::Value(links) => links.as_slice(),
            crate::facts::Fact::Unknown(_) => &[],
        };
        let links: Vec<LinkId> = plan
            .changes
            .iter()
            .filter_map(|c| match &c.mutation {
                Mutation::LinkMtu { link, .. } => Some(
                    known
                        .iter()
                        .find(|l| &l.name == link)
                        .map_or_else(|| LinkId::named(link), LinkId::of),
                ),
                _ => None,
            })
            .collect();
        if let Some(config) = &mut facts.config {
            crate::facts::config::add_link_owners(config, &links);
        }
    }
    crate::plan::persist::finish(plan, playbooks, facts, persist);
}
