//! Saved plans you can trust: `tune apply PLAN_FILE` reads the file strictly and
//! applies it only if it is exactly what its recorded playbooks and `--var`s give
//! against the system as it is now, in the namespace it was made in.
//!
//! A plan file is data someone may have edited (a pull request, a shared drive), and
//! apply runs as root, so nothing in it is taken on trust:
//!
//! - the JSON is read strictly: unknown fields anywhere, duplicate fields, a
//!   resource changed twice, a time that is not a finite date, are refused;
//! - every recorded playbook must match its SHA-256 digest; a bundled one must be the
//!   one in this binary, and one loaded from a path that still exists must still have
//!   the recorded digest there;
//! - the namespace the plan was made in (its inode) must be the one apply runs in;
//! - a change that none of the rules it credits can make (another sysctl, another
//!   file) is refused as an edited plan, never reported as "the system changed";
//! - every before-value is checked on the live system (drift);
//! - the plan is made again from those playbooks, variables and the facts gathered now
//!   (or, for a plan made with `--facts`, the recorded snapshot), and every change must
//!   be identical (resource, before, after, rules, order). Each difference is named
//!   with its likely cause.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};

use super::PlaybookSet;
use crate::apply::{self, SystemExecutor};
use crate::domain::time::MAX_UNIX_TIME;
use crate::kernel::netns::{self, NetnsRecord};
use crate::plan::mutation::FileRole;
use crate::plan::{self, Change, MadeFrom, Mutation, Plan, sha256_hex};
use crate::playbook::{self, Action, Diagnostics, LoadedPlaybook, Vars, expand};

/// Largest plan file read (it holds the text of its playbooks, each at most 1 MiB).
pub const MAX_PLAN_BYTES: u64 = 64 * 1024 * 1024;

/// Checks that a time read from a file is a date `tune` can work with.
pub fn check_time(path: &Path, field: &str, t: f64) -> Result<()> {
    if !t.is_finite() || !(0.0..=MAX_UNIX_TIME).contains(&t) {
        bail!(
            "{}: {field} {t} is not a time between 1970 and 9999 (seconds since the Unix epoch)",
            path.display()
        );
    }
    Ok(())
}

/// Reads a plan file: strictly typed, no unknown or duplicate fields, no resource
/// twice, times in range.
pub fn read_plan_file(path: &Path) -> Result<Plan> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read plan file {}", path.display()))?;
    let mut text = String::new();
    file.take(MAX_PLAN_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read plan file {}", path.display()))?;
    if text.len() as u64 > MAX_PLAN_BYTES {
        bail!(
            "{}: larger than {MAX_PLAN_BYTES} bytes; not a tune plan file",
            path.display()
        );
    }
    // Typed first: serde rejects duplicate fields of a struct and unknown fields of
    // every type that denies them, with a line and column.
    let plan: Plan = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a tune plan file", path.display()))?;
    if plan.format != plan::PLAN_FORMAT {
        bail!(
            "{}: plan format {} is not supported (expected {})",
            path.display(),
            plan.format,
            plan::PLAN_FORMAT
        );
    }
    // Then untyped, for what `deny_unknown_fields` cannot see (flattened findings):
    // every field of the file must survive a round trip through the types.
    let raw: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a tune plan file", path.display()))?;
    let typed = serde_json::to_value(&plan)?;
    if let Some(field) = unknown_field(&raw, &typed, "") {
        bail!(
            "{}: unknown field {field}; a plan file holds only what `tune plan -o` writes",
            path.display()
        );
    }
    check_time(path, "created_at", plan.created_at)?;
    let mut seen = BTreeSet::new();
    for change in &plan.changes {
        let resource = change.mutation.resource();
        if !seen.insert(resource.clone()) {
            bail!(
                "{}: {resource} is changed twice; a plan changes each resource once",
                path.display()
            );
        }
    }
    Ok(plan)
}

/// The JSON path of the first field of `raw` that `typed` does not have.
fn unknown_field(raw: &serde_json::Value, typed: &serde_json::Value, at: &str) -> Option<String> {
    use serde_json::Value;
    match (raw, typed) {
        (Value::Object(r), Value::Object(t)) => r.iter().find_map(|(k, v)| match t.get(k) {
            None => Some(format!("{at}.{k}")),
            Some(tv) => unknown_field(v, tv, &format!("{at}.{k}")),
        }),
        (Value::Array(r), Value::Array(t)) => r
            .iter()
            .zip(t)
            .enumerate()
            .find_map(|(i, (rv, tv))| unknown_field(rv, tv, &format!("{at}[{i}]"))),
        _ => None,
    }
}

/// The playbooks, variables and namespace of a saved plan, checked.
pub struct Recorded {
    pub set: PlaybookSet,
    /// One line per playbook: source, digest, and how it was checked.
    pub provenance: Vec<String>,
    /// Where to read facts and apply: the recorded namespace.
    pub netns: NetnsRecord,
    /// `--persist` and `--root` as the plan was made with.
    pub config: super::persist::ConfigArgs,
}

/// Checks what the plan says it was made from and loads it.
pub fn recorded(path: &Path, plan: &Plan) -> Result<Recorded> {
    let Some(made_from) = &plan.made_from else {
        bail!(
            "{}: the plan does not record the playbooks, variables and namespace it was made from (made by an older tune?); make it again with `tune plan -o FILE`",
            path.display()
        );
    };
    let MadeFrom {
        netns: ns,
        playbooks,
        vars,
        facts,
        persist: _,
        root: _,
        counter_samples: _,
        listeners: _,
        cpu_tables: _,
        rx_drops: _,
    } = made_from;
    if let Some(facts) = facts {
        if facts.format != crate::facts::FACTS_FORMAT {
            bail!(
                "{}: the recorded facts have format {}, not {}",
                path.display(),
                facts.format,
                crate::facts::FACTS_FORMAT
            );
        }
        check_time(path, "made_from.facts.collected_at", facts.collected_at)?;
    }
    // The namespace to enter and the one recorded must agree: a plan made with
    // --netns enters it; one made without runs where tune runs.
    let consistent = match &plan.netns {
        Some(target) => target == ns,
        None => ns.name.is_none() && ns.pid.is_none(),
    };
    if !consistent {
        bail!(
            "{}: the plan's namespace ({}) and the one its facts were read in ({ns}) disagree; the plan file was edited",
            path.display(),
            plan.netns
                .as_ref()
                .map_or_else(|| "none named".to_owned(), ToString::to_string)
        );
    }
    check_namespace(ns)?;
    let mut loaded = Vec::new();
    let mut provenance = Vec::new();
    for pb in playbooks {
        let digest = sha256_hex(pb.content.as_bytes());
        if digest != pb.sha256 {
            bail!(
                "{}: playbook {} is recorded with SHA-256 {} but its content has {digest}; the plan file was edited",
                path.display(),
                pb.source,
                pb.sha256
            );
        }
        if let Some(name) = pb.source.strip_prefix("bundled:") {
            let ours = playbook::BUNDLED
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, text)| sha256_hex(text.as_bytes()));
            if ours.as_deref() != Some(digest.as_str()) {
                bail!(
                    "{}: playbook {} (SHA-256 {digest}) is not the one bundled in this tune{}; make the plan again with this tune",
                    path.display(),
                    pb.source,
                    ours.map_or_else(
                        || " (it has none by that name)".to_owned(),
                        |d| format!(" ({d})")
                    )
                );
            }
            provenance.push(format!(
                "{}  sha256:{digest}  (bundled in this tune)",
                pb.source
            ));
        } else if let Some(now) = file_digest(Path::new(&pb.source))
            .with_context(|| format!("{}: playbook {}", path.display(), pb.source))?
        {
            if now != digest {
                bail!(
                    "{}: playbook {} changed since the plan was made (SHA-256 {digest} in the plan, {now} now); make the plan again",
                    path.display(),
                    pb.source
                );
            }
            provenance.push(format!(
                "{}  sha256:{digest}  (same as that file)",
                pb.source
            ));
        } else {
            provenance.push(format!(
                "{}  sha256:{digest}  (not on this host: only the plan file's copy, review it)",
                pb.source
            ));
        }
        let parsed = playbook::parse(&pb.source, &pb.content).map_err(|d| Diagnostics(vec![d]))?;
        loaded.push(parsed);
    }
    let set = super::resolve_set(loaded, vars)
        .with_context(|| format!("{}: the recorded playbooks and variables", path.display()))?;
    Ok(Recorded {
        set,
        provenance,
        netns: ns.clone(),
        config: super::persist::ConfigArgs::new(
            made_from
                .root
                .clone()
                .unwrap_or_else(|| "/".to_owned())
                .into(),
            made_from.persist,
        ),
    })
}

/// The SHA-256 of the playbook file at `path`, `None` when there is none. Not
/// followed into anything but a regular file of at most the playbook size limit: the
/// path comes from the plan file.
fn file_digest(path: &Path) -> Result<Option<String>> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).context("cannot look at it"),
    };
    if !meta.is_file() || meta.len() > playbook::MAX_PLAYBOOK_BYTES {
        bail!(
            "not a regular file of at most {} bytes",
            playbook::MAX_PLAYBOOK_BYTES
        );
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(playbook::MAX_PLAYBOOK_BYTES).read_to_end(&mut bytes))
        .context("cannot read it")?;
    Ok(Some(sha256_hex(&bytes)))
}

/// Refuses to go on unless the recorded namespace is the one apply will work in: the
/// one named (same inode as then), or the one tune runs in now.
fn check_namespace(ns: &NetnsRecord) -> Result<()> {
    let now = ns.target()?.resolve()?;
    if now.inode != ns.inode {
        match (&ns.name, ns.pid) {
            (None, None) => bail!(
                "the plan was made in the network namespace with inode {}, but tune runs in the one with inode {} now (the plan was made under `ip netns exec` or in a container?); run it in that namespace",
                ns.inode,
                now.inode
            ),
            _ => bail!(
                "the plan was made in {ns}, which is not the same namespace any more (inode {} then, {} now: deleted and re-created, or the process was replaced)",
                ns.inode,
                now.inode
            ),
        }
    }
    Ok(())
}

/// Makes the plan again from what it records and the current facts (in its
/// namespace) and refuses, naming every difference, unless the changes are identical.
pub fn rederive(
    path: &Path,
    saved: &Plan,
    recorded: &Recorded,
    options: &crate::facts::GatherOptions,
) -> Result<()> {
    let pairs = recorded.set.pairs();
    // First what no system state explains: changes none of the credited rules can make.
    let edited: Vec<String> = saved
        .changes
        .iter()
        .filter_map(|c| {
            unreachable_by_rules(
                c,
                &pairs,
                saved.made_from.as_ref().is_some_and(|m| m.persist),
            )
            .map(|why| {
                format!(
                    "{}: the plan changes it ({} → {}), but {why}",
                    c.mutation.resource(),
                    c.mutation.before_label(),
                    c.mutation.after_label()
                )
            })
        })
        .collect();
    if !edited.is_empty() {
        bail!(
            "{}: the plan file was edited: it holds changes its own playbooks do not ask for:\n  - {}",
            path.display(),
            edited.join("\n  - ")
        );
    }
    let (drift, derived) = netns::run_in(Some(&recorded.netns), || {
        let drift = apply::drifted(&mut SystemExecutor, &saved.changes);
        let snapshot = saved.made_from.as_ref().and_then(|m| m.facts.as_ref());
        Ok((
            drift,
            super::make_plan(
                &recorded.set,
                snapshot,
                options,
                &recorded.config,
                &Default::default(),
            )?,
        ))
    })
    .with_context(|| format!("{}: cannot check the plan", path.display()))?;
    if !drift.is_empty() {
        bail!(
            "the system changed since the plan was made:\n{}",
            apply::describe_drift(&drift)
        );
    }
    if !derived.errors.is_empty() {
        bail!(
            "{}: its playbooks cannot be planned now:\n  {}",
            path.display(),
            derived.errors.join("\n  ")
        );
    }
    let problems = differences(&saved.changes, &derived.changes, &pairs);
    if !problems.is_empty() {
        bail!(
            "{} is not what its playbooks and variables give on this system now:\n  - {}",
            path.display(),
            problems.join("\n  - ")
        );
    }
    Ok(())
}

/// Every way `saved` differs from `derived`, each with its likely cause.
pub fn differences(
    saved: &[Change],
    derived: &[Change],
    playbooks: &[(&LoadedPlaybook, &Vars)],
) -> Vec<String> {
    let now: BTreeMap<String, &Change> =
        derived.iter().map(|c| (c.mutation.resource(), c)).collect();
    let was: BTreeSet<String> = saved.iter().map(|c| c.mutation.resource()).collect();
    let mut out = Vec::new();
    for change in saved {
        let resource = change.mutation.resource();
        let m = &change.mutation;
        let Some(unreachable) = unreachable_by_rules(change, playbooks, true) else {
            match now.get(&resource) {
                None => out.push(format!(
                    "{resource}: the plan changes it ({} → {}), its rules no longer do: the system changed since the plan was made (the rule no longer fires, or its fix is in effect)",
                    m.before_label(),
                    m.after_label()
                )),
                Some(d) if d.mutation.before() != m.before() => out.push(format!(
                    "{resource}: the system changed since the plan was made: expected {:?}, found {:?}",
                    m.before_label(),
                    d.mutation.before_label()
                )),
                Some(d) if d.mutation != *m => out.push(format!(
                    "{resource}: the plan sets {}, but its playbooks and variables give {}: the plan file was edited, or facts it depends on changed",
                    m.after_label(),
                    d.mutation.after_label()
                )),
                Some(d) if d.rules != change.rules => out.push(format!(
                    "{resource}: the plan credits {}, its playbooks give {}: the plan file was edited",
                    change.rules.join(", "),
                    d.rules.join(", ")
                )),
                Some(_) => {}
            }
            continue;
        };
        out.push(format!(
            "{resource}: the plan changes it ({} → {}), but {unreachable}: the plan file was edited",
            m.before_label(),
            m.after_label()
        ));
    }
    for change in derived {
        let resource = change.mutation.resource();
        if !was.contains(&resource) {
            out.push(format!(
                "{resource}: its playbooks now also change it ({} → {}), the plan does not: the plan file was edited, or the system changed since",
                change.mutation.before_label(),
                change.mutation.after_label()
            ));
        }
    }
    if out.is_empty() {
        let order = |cs: &[Change]| cs.iter().map(|c| c.mutation.resource()).collect::<Vec<_>>();
        if order(saved) != order(derived) {
            out.push(format!(
                "the changes are in another order than its playbooks give ({}): the plan file was edited",
                order(derived).join(", ")
            ));
        }
    }
    out
}

/// `None` when some rule the change credits has a fix that can make it; otherwise why
/// not. This is what tells an edited plan from a changed system.
fn unreachable_by_rules(
    change: &Change,
    playbooks: &[(&LoadedPlaybook, &Vars)],
    persist: bool,
) -> Option<String> {
    if change.rules.is_empty() {
        return Some("no rule asks for it".into());
    }
    let mut why = Vec::new();
    for who in &change.rules {
        let rule = playbooks.iter().find_map(|(pb, vars)| {
            pb.playbook
                .rules
                .iter()
                .find(|r| format!("{}/{}", pb.playbook.name, r.id) == *who)
                .map(|r| (r, *vars))
        });
        let Some((rule, vars)) = rule else {
            why.push(format!("its playbooks have no rule {who}"));
            continue;
        };
        let can = rule
            .fix
            .iter()
            .any(|action| match (action, &change.mutation) {
                (Action::SetSysctl(s), Mutation::Sysctl { key, .. }) => {
                    s.key == *key || expand(&s.key, vars).is_ok_and(|k| k == *key)
                }
                // The file given, or (none given) the service's drop-in or
                // EnvironmentFile= found from the process; re-derivation checks which.
                (
                    Action::SetEnv(e),
                    Mutation::File {
                        path,
                        role: FileRole::Env | FileRole::UnitDropIn,
                        ..
                    },
                ) => expand(&e.file, vars).is_ok_and(|f| f == *path || f.is_empty()),
                // Persistence (`--persist`) of a sysctl or MTU fix: only with --persist.
                (
                    Action::SetSysctl(_),
                    Mutation::File {
                        role: FileRole::SysctlD | FileRole::ModulesLoad,
                        ..
                    },
                )
                | (
                    Action::SetMtu(_),
                    Mutation::File {
                        role: FileRole::NetworkDropIn,
                        ..
                    },
                ) => persist,
                (Action::SetMtu(_), Mutation::LinkMtu { .. }) => true,
                (Action::DeleteRootQdisc(_), Mutation::RootQdisc { .. }) => true,
                (Action::SetRxRing(_), Mutation::RxRing { .. }) => true,
                _ => false,
            });
        if can {
            return None;
        }
        why.push(format!("rule {who} has no fix that changes it"));
    }
    Some(why.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_found_at_any_depth() {
        let typed = json!({"a": 1, "b": [{"c": 2}, {"c": 3}], "d": {"e": null}});
        assert_eq!(unknown_field(&typed, &typed, ""), None);
        let cases = [
            (json!({"a": 1, "x": 0}), ".x"),
            (json!({"b": [{"c": 2}, {"c": 3, "y": 1}]}), ".b[1].y"),
            (json!({"d": {"e": null, "z": true}}), ".d.z"),
        ];
        for (raw, at) in cases {
            assert_eq!(
                unknown_field(&raw, &typed, "").as_deref(),
                Some(at),
                "{raw}"
            );
        }
    }

    #[test]
    fn times_outside_1970_to_9999_are_refused() {
        let p = Path::new("f.json");
        assert!(check_time(p, "t", 1.7e9).is_ok());
        for bad in [f64::NAN, f64::INFINITY, -1.0, 1e12] {
            assert!(check_time(p, "t", bad).is_err(), "{bad}");
        }
    }
}
