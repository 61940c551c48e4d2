//! `--root` and `--persist`: where configuration files are read and written, and
//! whether a plan also writes the files that make its changes survive a reboot.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use anyhow::{Result, bail};
use clap::Args;

use crate::facts::Facts;
use crate::facts::config::ConfigFacts;
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
    /// The root once checked (`--all-netns` makes a plan per namespace).
    #[arg(skip)]
    checked: OnceLock<PathBuf>,
}

impl Default for ConfigArgs {
    /// `--root /`, no `--persist`: what the command line gives when neither is passed.
    fn default() -> ConfigArgs {
        ConfigArgs::new(PathBuf::from("/"), false)
    }
}

impl ConfigArgs {
    pub fn new(root: PathBuf, persist: bool) -> ConfigArgs {
        ConfigArgs {
            root,
            persist,
            checked: OnceLock::new(),
        }
    }

    /// The root, checked: an existing directory, made absolute. Checked once.
    pub fn root(&self) -> Result<PathBuf> {
        if let Some(root) = self.checked.get() {
            return Ok(root.clone());
        }
        let root = std::path::absolute(&self.root)?;
        if !root.is_dir() {
            bail!("--root {}: not a directory", self.root.display());
        }
        Ok(self.checked.get_or_init(|| root).clone())
    }
}

/// Reads the configuration under the root that planning needs: sysctl.d,
/// modules-load.d, and the units of the java processes in the facts; from `once` when
/// an earlier plan of this run read it already.
pub fn gather(facts: &mut Facts, root: &Path, once: &ConfigOnce) {
    let services = match &facts.processes {
        Some(crate::facts::Fact::Value(p)) => crate::facts::units::services_of(p),
        _ => Vec::new(),
    };
    let mut kept = once.0.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((r, s, config)) = kept.as_ref()
        && r == root
        && *s == services
    {
        facts.config = Some(config.clone());
        return;
    }
    let config = crate::facts::config::gather(root, &services);
    *kept = Some((root.to_owned(), services, config.clone()));
    facts.config = Some(config);
}

/// The configuration read once for the many plans of one run (`--all-netns`). It is
/// the mount namespace's files, the same from every network namespace (setns moves
/// only the network one), so it is read again only under another root or for
/// another set of java services, whose units it holds.
#[derive(Default)]
pub struct ConfigOnce(Mutex<Option<(PathBuf, Vec<String>, ConfigFacts)>>);

/// For `tune facts`: the configuration, with the managers of every link, so that
/// `plan --facts` can replay persistence too.
pub fn gather_for_snapshot(facts: &mut Facts, root: &Path) {
    gather(facts, root, &ConfigOnce::default());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Fact;

    fn sysctl_conf(facts: &Facts) -> Option<String> {
        match &facts.config.as_ref()?.sysctl {
            Fact::Value(boot) => boot.sysctl_conf.clone(),
            Fact::Unknown(_) => None,
        }
    }

    /// The configuration is read once for the plans of one run, and again under
    /// another root.
    #[test]
    fn config_once_reads_a_root_once() {
        let roots = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        for (i, root) in roots.iter().enumerate() {
            std::fs::create_dir_all(root.path().join("etc")).unwrap();
            std::fs::write(root.path().join("etc/sysctl.conf"), format!("# root {i}\n")).unwrap();
        }
        let once = ConfigOnce::default();
        let mut facts = Facts::default();
        gather(&mut facts, roots[0].path(), &once);
        assert_eq!(sysctl_conf(&facts).as_deref(), Some("# root 0\n"));
        // Changed on disk: a second plan of the same run sees what the first one read.
        std::fs::write(roots[0].path().join("etc/sysctl.conf"), "# edited\n").unwrap();
        let mut again = Facts::default();
        gather(&mut again, roots[0].path(), &once);
        assert_eq!(sysctl_conf(&again).as_deref(), Some("# root 0\n"));
        let mut other = Facts::default();
        gather(&mut other, roots[1].path(), &once);
        assert_eq!(sysctl_conf(&other).as_deref(), Some("# root 1\n"));
        // A new run reads the files again.
        let mut fresh = Facts::default();
        gather(&mut fresh, roots[0].path(), &ConfigOnce::default());
        assert_eq!(sysctl_conf(&fresh).as_deref(), Some("# edited\n"));
    }
}
