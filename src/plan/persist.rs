//! Persistence (`--persist`): the configuration-file changes that make a plan's
//! runtime changes survive a reboot, and the notes that say when they cannot.
//!
//! Pure: no I/O; reads the configuration files gathered under `--root`
//! (`facts::config`).
//!
//! - **Sysctls** go to one file owned by tune, `/etc/sysctl.d/90-tune.conf`. A key
//!   that a file read *after* it sets to another value (a sysctl.d file sorting later,
//!   or `/etc/sysctl.conf`, which procps reads last) is refused with that file and
//!   line: the value would be lost at boot. tune does not write under a later name to
//!   win: that overrides an administrator's explicit setting silently, starts a
//!   naming race with other writers (Salt's and Chef's `99-*`), and still cannot beat
//!   procps reading `/etc/sysctl.conf` last. The operator resolves the conflict.
//! - **Module-provided keys** (`net.netfilter.nf_conntrack_*`, `net.bridge.*`) also get
//!   their module in `/etc/modules-load.d/90-tune.conf` unless a modules-load.d file
//!   already lists it: systemd-sysctl runs before the module would otherwise load.
//! - **MTU** is persisted only for links systemd-networkd configures, with the drop-in
//!   `/etc/systemd/network/FILE.network.d/90-tune-mtu.conf`; for links of netplan,
//!   NetworkManager or ifupdown (or of no manager) the plan says the change is
//!   runtime-only and under whose control the link is.
//!
//! Without `--persist`, [`drift_notes`] reports live values that boot would not set
//! again, as notes that change neither the plan's changes nor the exit code.

use std::collections::BTreeMap;

use crate::domain::sysctl_conf::{self, Setting, effective};
use crate::facts::config::ConfigFacts;
use crate::facts::networkd::Manager;
use crate::facts::sysctl_d::{OWNED_FILE, SYSCTL_CONF, SysctlBoot};
use crate::facts::{Fact, Facts};
use crate::kernel::sysctl::normalize;

use super::mutation::{FileRole, Mutation};
use super::{Change, FixStatus, Plan};
use crate::playbook::{Action, LoadedPlaybook, Vars};

/// The modules-load.d file tune owns.
pub const OWNED_MODULES_FILE: &str = "/etc/modules-load.d/90-tune.conf";

/// The name of tune's networkd drop-in.
pub const MTU_DROPIN: &str = "90-tune-mtu.conf";

/// What persistence adds to a plan.
#[derive(Debug, Default)]
pub struct Persistence {
    pub changes: Vec<Change>,
    pub errors: Vec<String>,
    pub notes: Vec<String>,
}

/// Adds the persistence changes (`persist`) or the runtime-only notes to `plan`, and
/// the drift notes. With `persist`, sysctl fixes already in effect at runtime (a
/// previous `tune apply` without `--persist`) are persisted too, at their live value.
pub fn finish(
    plan: &mut Plan,
    playbooks: &[(&LoadedPlaybook, &Vars)],
    facts: &Facts,
    persist: bool,
) {
    let Some(config) = &facts.config else {
        if persist {
            plan.errors.push(
                "--persist: the configuration files were not read (a facts snapshot without them?)"
                    .to_owned(),
            );
        }
        return;
    };
    let p = if persist {
        let mut wanted = plan.changes.clone();
        wanted.extend(in_effect_sysctls(plan, playbooks, facts));
        persistence(&wanted, config)
    } else {
        Persistence {
            notes: runtime_only_notes(&plan.changes, config),
            ..Persistence::default()
        }
    };
    plan.changes.extend(p.changes);
    plan.errors.extend(p.errors);
    plan.notes.extend(p.notes);
    plan.notes.extend(drift_notes(facts, config));
}

/// The sysctls of fixes already in effect (and not changed by the plan), as changes
/// from their live value to itself: persisting them keeps what is live.
fn in_effect_sysctls(
    plan: &Plan,
    playbooks: &[(&LoadedPlaybook, &Vars)],
    facts: &Facts,
) -> Vec<Change> {
    let mut out: Vec<Change> = Vec::new();
    for pf in plan
        .findings
        .iter()
        .filter(|f| f.fix == FixStatus::InEffect)
    {
        let who = format!("{}/{}", pf.finding.playbook, pf.finding.rule);
        let rule = playbooks
            .iter()
            .filter(|(pb, _)| pb.playbook.name == pf.finding.playbook)
            .flat_map(|(pb, _)| pb.playbook.rules.iter())
            .find(|r| r.id == pf.finding.rule);
        for action in rule.map(|r| r.fix.as_slice()).unwrap_or_default() {
            let Action::SetSysctl(s) = action else {
                continue;
            };
            let planned =
                |c: &Change| matches!(&c.mutation, Mutation::Sysctl { key, .. } if *key == s.key);
            if plan.changes.iter().any(planned) || out.iter().any(planned) {
                continue;
            }
            if let Fact::Value(live) = facts.sysctl(&s.key) {
                out.push(Change {
                    rules: vec![who.clone()],
                    mutation: Mutation::Sysctl {
                        key: s.key.clone(),
                        before: normalize(live),
                        after: normalize(live),
                    },
                    evidence: Vec::new(),
                });
            }
        }
    }
    out
}

/// The file changes that persist `changes`.
pub fn persistence(changes: &[Change], config: &ConfigFacts) -> Persistence {
    let mut out = Persistence::default();
    sysctls(changes, config, &mut out);
    for c in changes {
        if let Mutation::LinkMtu { link, after, .. } = &c.mutation {
            mtu(c, link, *after, config, &mut out);
        }
    }
    out
}

fn boot(config: &ConfigFacts) -> Result<&SysctlBoot, String> {
    match &config.sysctl {
        Fact::Value(b) => Ok(b),
        Fact::Unknown(why) => Err(format!(
            "--persist: cannot read the sysctl configuration under {}: {why}",
            config.root
        )),
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// A later reader's assignment that would undo `value` at boot.
fn overridden_by(boot: &SysctlBoot, key: &str, value: &str) -> Option<(Setting, &'static str)> {
    let ours = file_name(OWNED_FILE);
    let later: Vec<_> = boot
        .systemd()
        .into_iter()
        .filter(|f| f.path != OWNED_FILE && file_name(f.path) > ours)
        .collect();
    if let Some(s) = effective(&later).remove(key)
        && normalize(&s.value) != value
    {
        return Some((s, "systemd-sysctl and `sysctl --system` read it after"));
    }
    if let Some(conf) = &boot.sysctl_conf {
        let files = [sysctl_conf::BootFile {
            path: SYSCTL_CONF,
            content: conf,
        }];
        if let Some(s) = effective(&files).remove(key)
            && normalize(&s.value) != value
        {
            return Some((s, "procps `sysctl --system` reads it last, after"));
        }
    }
    None
}

fn sysctls(changes: &[Change], config: &ConfigFacts, out: &mut Persistence) {
    let wanted: Vec<(&Change, &str, &str)> = changes
        .iter()
        .filter_map(|c| match &c.mutation {
            Mutation::Sysctl { key, after, .. } => Some((c, key.as_str(), after.as_str())),
            _ => None,
        })
        .collect();
    if wanted.is_empty() {
        return;
    }
    let boot = match boot(config) {
        Ok(b) => b,
        Err(e) => {
            out.errors.push(e);
            return;
        }
    };
    let mut settings = Vec::new();
    let mut rules = Vec::new();
    let mut modules: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (change, key, after) in wanted {
        let key_n = sysctl_conf::normalize_key(key);
        let value = normalize(after);
        if let Some((s, why)) = overridden_by(boot, &key_n, &value) {
            out.errors.push(format!(
                "{}: cannot persist sysctl:{key} = {value}: {} sets it to {:?} and {why} {OWNED_FILE}, so the value would be lost at boot; change or remove that line and plan again",
                change.rules.join(", "),
                s.place(),
                s.value
            ));
            continue;
        }
        settings.push((key.to_owned(), value));
        for r in &change.rules {
            if !rules.contains(r) {
                rules.push(r.clone());
            }
        }
        if let Some(m) = sysctl_conf::module_for(key) {
            modules.entry(m).or_default().extend(change.rules.clone());
        }
    }
    if settings.is_empty() {
        return;
    }
    let before = boot.owned().map(str::to_owned);
    let after = sysctl_conf::with_settings(before.as_deref(), &settings);
    if before.as_deref() != Some(after.as_str()) {
        out.changes.push(Change {
            rules,
            mutation: Mutation::File {
                path: config.host_path(OWNED_FILE),
                role: FileRole::SysctlD,
                keys: settings.into_iter().map(|(k, _)| k).collect(),
                before,
                after: Some(after),
                effect: None,
            },
            evidence: Vec::new(),
        });
    }
    module_loads(modules, config, out);
}

fn module_loads(modules: BTreeMap<&str, Vec<String>>, config: &ConfigFacts, out: &mut Persistence) {
    if modules.is_empty() {
        return;
    }
    let files = match &config.modules_load {
        Fact::Value(f) => f,
        Fact::Unknown(why) => {
            out.errors.push(format!(
                "--persist: cannot read modules-load.d under {}: {why}",
                config.root
            ));
            return;
        }
    };
    let before = files
        .iter()
        .find(|f| f.path == OWNED_MODULES_FILE)
        .map(|f| f.content.clone());
    let mut after = before.clone().unwrap_or_else(|| {
        "# Written by tune (tune apply --persist): modules whose sysctl keys tune persists.\n"
            .to_owned()
    });
    let mut keys = Vec::new();
    let mut rules = Vec::new();
    for (module, by) in modules {
        if files
            .iter()
            .any(|f| sysctl_conf::lists_module(&f.content, module))
        {
            continue;
        }
        if !after.ends_with('\n') {
            after.push('\n');
        }
        after.push_str(module);
        after.push('\n');
        keys.push(module.to_owned());
        rules.extend(by);
    }
    if keys.is_empty() {
        return;
    }
    rules.dedup();
    out.changes.push(Change {
        rules,
        mutation: Mutation::File {
            path: config.host_path(OWNED_MODULES_FILE),
            role: FileRole::ModulesLoad,
            effect: Some(format!(
                "loads {} at boot (systemd-modules-load runs before systemd-sysctl), so the persisted keys exist when sysctl.d is applied",
                keys.join(", ")
            )),
            keys,
            before,
            after: Some(after),
        },
        evidence: Vec::new(),
    });
}

fn mtu(change: &Change, link: &str, mtu: u32, config: &ConfigFacts, out: &mut Persistence) {
    let who = change.rules.join(", ");
    let owner = match config.link_owners.get(link) {
        Some(Fact::Value(o)) => o,
        Some(Fact::Unknown(why)) => {
            out.errors.push(format!(
                "{who}: --persist: cannot tell which manager configures {link}: {why}"
            ));
            return;
        }
        None => {
            out.errors.push(format!(
                "{who}: --persist: the network configuration of {link} was not read"
            ));
            return;
        }
    };
    let (Some(Manager::Networkd), Some(file), None) =
        (owner.manager, &owner.file, &owner.cannot_tell)
    else {
        out.notes.push(runtime_only_mtu(link, owner));
        return;
    };
    let name = file_name(file);
    let path = format!("/etc/systemd/network/{name}.d/{MTU_DROPIN}");
    for d in &owner.dropins {
        if d.path != path
            && file_name(&d.path) > MTU_DROPIN
            && let Some(line) = mtu_line(&d.content)
        {
            out.errors.push(format!(
                "{who}: cannot persist the MTU of {link}: {}:{line} sets MTUBytes= and is read after {path}, so the value would be lost when networkd configures {link}; change that line and plan again",
                d.path
            ));
            return;
        }
    }
    let before = owner
        .dropins
        .iter()
        .find(|d| d.path == path)
        .map(|d| d.content.clone());
    let after = format!(
        "# Written by tune (tune apply --persist); `tune rollback` removes it.\n[Link]\nMTUBytes={mtu}\n"
    );
    if before.as_deref() == Some(after.as_str()) {
        return;
    }
    out.changes.push(Change {
        rules: change.rules.clone(),
        mutation: Mutation::File {
            path: config.host_path(&path),
            role: FileRole::NetworkDropIn,
            keys: vec!["MTUBytes".to_owned()],
            before,
            after: Some(after),
            effect: Some(format!(
                "systemd-networkd configures {link} from {file}; this drop-in makes it keep mtu {mtu} on its next reconfiguration and at boot"
            )),
        },
        evidence: Vec::new(),
    });
}

/// The line number of an `MTUBytes=` in a `[Link]` section.
fn mtu_line(content: &str) -> Option<usize> {
    let mut in_link = false;
    for (i, line) in content.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('[') {
            in_link = line == "[Link]";
        } else if in_link && line.split('=').next().map(str::trim) == Some("MTUBytes") {
            return Some(i + 1);
        }
    }
    None
}

fn runtime_only_mtu(link: &str, owner: &crate::facts::networkd::LinkOwner) -> String {
    if let (Some(why), Some(file)) = (&owner.cannot_tell, &owner.file) {
        return format!(
            "link:{link}: the MTU change is runtime-only: cannot tell whether {file} applies to {link} ({why}), so tune does not know which manager sets its MTU at boot and writes no drop-in"
        );
    }
    match (owner.manager, &owner.file) {
        (Some(m), Some(file)) => format!(
            "link:{link}: the MTU change is runtime-only: {link} is under {}'s control ({file}), whose files tune does not edit; set the MTU there or it is lost when {} reconfigures the link or at boot",
            m.name(),
            m.name()
        ),
        _ => format!(
            "link:{link}: the MTU change is runtime-only: no network manager's configuration names {link}, so nothing sets it again at boot"
        ),
    }
}

/// Without `--persist`: which changes last only until the next reboot.
fn runtime_only_notes(changes: &[Change], config: &ConfigFacts) -> Vec<String> {
    let mut notes = Vec::new();
    // What boot sets, parsed only when a sysctl changes.
    let sysctl_changes = changes
        .iter()
        .any(|c| matches!(c.mutation, Mutation::Sysctl { .. }));
    let boot_values = match &config.sysctl {
        Fact::Value(b) if sysctl_changes => effective(&b.systemd()),
        _ => BTreeMap::new(),
    };
    for c in changes {
        match &c.mutation {
            Mutation::Sysctl { key, after, .. } => {
                let at_boot = match boot_values.get(&sysctl_conf::normalize_key(key)) {
                    Some(s) if normalize(&s.value) == normalize(after) => continue,
                    Some(s) => format!("boot sets {:?} ({})", s.value, s.place()),
                    None => "no sysctl.d file sets it".to_owned(),
                };
                notes.push(format!(
                    "sysctl:{key}: the change is runtime-only and lost at reboot ({at_boot}); plan with --persist to keep it"
                ));
            }
            Mutation::LinkMtu { link, .. } => match config.link_owners.get(link) {
                Some(Fact::Value(o))
                    if o.manager == Some(Manager::Networkd) && o.cannot_tell.is_none() =>
                {
                    notes.push(format!(
                    "link:{link}: the MTU change is runtime-only; plan with --persist to add a systemd-networkd drop-in"
                ))
                }
                Some(Fact::Value(o)) => notes.push(runtime_only_mtu(link, o)),
                _ => {}
            },
            Mutation::RxRing { link, .. } => notes.push(format!(
                "ring:{link}: the RX ring change is runtime-only and lost at reboot or a driver reload; --persist does not write it (a systemd .link file's RxBufferSize= keeps it)"
            )),
            _ => {}
        }
    }
    notes
}

/// Live sysctl values that differ from what boot would set, and keys the two boot
/// readers disagree on.
pub fn drift_notes(facts: &Facts, config: &ConfigFacts) -> Vec<String> {
    let Fact::Value(boot) = &config.sysctl else {
        return Vec::new();
    };
    // Nothing to compare (playbooks that read no sysctl: each namespace of an
    // `--all-netns` plan of the link playbooks), so nothing to parse.
    if facts.sysctls.is_empty() {
        return Vec::new();
    }
    let systemd = effective(&boot.systemd());
    // `sysctl --system` reads the same files, then /etc/sysctl.conf: systemd's
    // settings with that file's on top, each file parsed once.
    let mut procps = systemd.clone();
    procps.extend(effective(&boot.procps()[boot.files.len()..]));
    let mut notes = Vec::new();
    for (key, live) in &facts.sysctls {
        let Fact::Value(live) = live else { continue };
        let key_n = sysctl_conf::normalize_key(key);
        if let Some(s) = systemd.get(&key_n)
            && normalize(&s.value) != normalize(live)
        {
            notes.push(format!(
                "persistence drift: sysctl:{key} is {:?} now, but boot sets {:?} ({}); the live value is lost at reboot",
                normalize(live),
                s.value,
                s.place()
            ));
        }
        if let (Some(s), Some(p)) = (systemd.get(&key_n), procps.get(&key_n))
            && normalize(&s.value) != normalize(&p.value)
        {
            notes.push(format!(
                "sysctl:{key}: systemd-sysctl sets {:?} ({}) but `sysctl --system` sets {:?} ({}); the value after boot depends on which one runs",
                s.value,
                s.place(),
                p.value,
                p.place()
            ));
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::config::ConfFile;

    fn config(modules: Vec<ConfFile>) -> ConfigFacts {
        ConfigFacts {
            root: "/r".into(),
            sysctl: Fact::Value(SysctlBoot::default()),
            modules_load: Fact::Value(modules),
            link_owners: BTreeMap::new(),
            units: BTreeMap::new(),
        }
    }

    #[test]
    fn drift_notes_read_boot_as_both_readers_do_and_only_for_live_sysctls() {
        let mut config = config(Vec::new());
        config.sysctl = Fact::Value(SysctlBoot {
            files: vec![ConfFile {
                path: "/etc/sysctl.d/50-site.conf".into(),
                content: "net.core.somaxconn = 1024\nnet.ipv4.tcp_tw_reuse = 2\n".into(),
            }],
            sysctl_conf: Some("# site\nnet.core.somaxconn=4096\n".into()),
        });
        let mut facts = Facts::default();
        assert_eq!(drift_notes(&facts, &config), Vec::<String>::new());
        facts.sysctls = BTreeMap::from([
            ("net.core.somaxconn".into(), Fact::Value("4096".into())),
            ("net.ipv4.tcp_tw_reuse".into(), Fact::Value("2".into())),
        ]);
        assert_eq!(
            drift_notes(&facts, &config),
            [
                "persistence drift: sysctl:net.core.somaxconn is \"4096\" now, but boot sets \"1024\" (/etc/sysctl.d/50-site.conf:1); the live value is lost at reboot",
                "sysctl:net.core.somaxconn: systemd-sysctl sets \"1024\" (/etc/sysctl.d/50-site.conf:1) but `sysctl --system` sets \"4096\" (/etc/sysctl.conf:2); the value after boot depends on which one runs",
            ]
        );
    }

    fn change(key: &str, after: &str) -> Change {
        Change {
            rules: vec!["conntrack/full".into()],
            mutation: Mutation::Sysctl {
                key: key.into(),
                before: "1".into(),
                after: after.into(),
            },
            evidence: Vec::new(),
        }
    }

    #[test]
    fn module_keys_also_persist_the_module_load() {
        let p = persistence(
            &[change("net.netfilter.nf_conntrack_max", "262144")],
            &config(vec![]),
        );
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        let files: Vec<_> = p
            .changes
            .iter()
            .map(|c| (c.mutation.resource(), c.mutation.after()))
            .collect();
        assert_eq!(files.len(), 2, "{files:?}");
        assert_eq!(files[0].0, "file:/r/etc/sysctl.d/90-tune.conf");
        assert!(
            files[0]
                .1
                .ends_with("net.netfilter.nf_conntrack_max = 262144\n")
        );
        assert_eq!(files[1].0, "file:/r/etc/modules-load.d/90-tune.conf");
        assert!(files[1].1.ends_with("\nnf_conntrack\n"));

        // Already loaded at boot by another file: only the sysctl file.
        let listed = config(vec![ConfFile {
            path: "/etc/modules".into(),
            content: "# /etc/modules\nnf-conntrack\n".into(),
        }]);
        let p = persistence(
            &[change("net.netfilter.nf_conntrack_max", "262144")],
            &listed,
        );
        assert_eq!(p.changes.len(), 1);
        let p = persistence(&[change("net.core.somaxconn", "4096")], &config(vec![]));
        assert_eq!(p.changes.len(), 1);
    }

    #[test]
    fn unreadable_configuration_blocks_persistence() {
        let mut c = config(vec![]);
        c.sysctl = Fact::Unknown("permission denied".into());
        let p = persistence(&[change("net.core.somaxconn", "4096")], &c);
        assert!(p.changes.is_empty());
        assert!(p.errors[0].contains("permission denied"), "{:?}", p.errors);
    }
}
