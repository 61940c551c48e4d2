//! Planning: from findings to the concrete changes that would fix them.
//!
//! Pure: no I/O. A *change* is one resource going from a *before* value (as measured in
//! the facts) to an *after* value, with the evidence of the rule(s) that asked for it.
//! A fix already in effect (e.g. `at_least: 4096` where the value is 8192) yields no
//! change, so planning right after applying finds nothing to do. Two rules touching the
//! same resource are merged: later fixes see the values earlier ones planned, so
//! `at_least` requests compose to the largest, and conflicting exact values are an error.

pub mod envfile;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::detect::{Evidence, Finding, FindingStatus};
use crate::domain::qdisc::QdiscSpec;
use crate::facts::{Fact, Facts};
use crate::playbook::{Action, LoadedPlaybook, SetMode, SetSysctl, Vars, scalar_text};

/// Version of the plan file format.
pub const PLAN_FORMAT: u32 = 1;

/// A plan: what was found, and what applying would change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "tune plan")]
pub struct Plan {
    /// Plan file format version.
    pub format: u32,
    /// When the facts behind the plan were collected, seconds since the Unix epoch.
    pub created_at: f64,
    pub hostname: String,
    /// Rules that fired or could not be decided.
    pub findings: Vec<PlannedFinding>,
    /// Changes in the order they will be applied.
    pub changes: Vec<Change>,
    /// Fixes that could not be planned; a plan with errors cannot be applied.
    #[serde(default)]
    pub errors: Vec<String>,
    /// The network namespace the facts were read in and the changes apply to
    /// (absent: the namespace `tune` runs in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<crate::kernel::netns::NetnsRecord>,
}

/// A finding and what its fix amounts to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlannedFinding {
    #[serde(flatten)]
    pub finding: Finding,
    pub fix: FixStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FixStatus {
    /// Changes are planned.
    Planned,
    /// The rule fired but its fix is already in effect.
    InEffect,
    /// The rule has no fix actions.
    ReportOnly,
    /// The rule could not be decided, so nothing is planned.
    Undecided,
    /// The fix could not be planned (see the plan's errors).
    Blocked,
}

/// One resource changing from before to after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Change {
    /// `playbook/rule` of every rule that asked for this change.
    pub rules: Vec<String>,
    pub mutation: Mutation,
    /// The evidence of those rules.
    pub evidence: Vec<Evidence>,
}

/// What changes, with the exact before and after values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Mutation {
    Sysctl {
        key: String,
        before: String,
        after: String,
    },
    /// A `KEY=VALUE` environment file: its exact content before and after (`null`:
    /// the file does not exist). Takes effect when the program reading it restarts.
    EnvFile {
        /// The file as the playbook names it (symlinks resolved at apply time).
        path: String,
        /// The variables this change sets.
        keys: Vec<String>,
        before: Option<String>,
        after: Option<String>,
    },
    /// A link's MTU. The link is identified by index and name; a link that vanished
    /// or was renamed since the plan is an error, not a change to some other link.
    LinkMtu {
        link: String,
        ifindex: u32,
        before: u32,
        after: u32,
    },
    /// A link's root qdisc: `None` is the kernel's default root qdisc. Deleting
    /// keeps the whole qdisc (kind, handle, parent, raw options) as `before`, so the
    /// inverse re-creates it exactly.
    RootQdisc {
        link: String,
        ifindex: u32,
        before: Option<QdiscSpec>,
        after: Option<QdiscSpec>,
    },
}

fn qdisc_label(spec: &Option<QdiscSpec>) -> String {
    spec.as_ref()
        .map_or_else(|| crate::domain::qdisc::NONE.to_owned(), QdiscSpec::short)
}

fn qdisc_text(spec: &Option<QdiscSpec>) -> String {
    spec.as_ref().map_or_else(
        || crate::domain::qdisc::NONE.to_owned(),
        QdiscSpec::canonical,
    )
}

/// The canonical form of "the file does not exist" in [`Mutation::before`] /
/// [`Mutation::after`]. Files holding NUL bytes are refused, so no content equals it.
pub const ABSENT: &str = "\u{0}(absent)";

fn file_state(content: &Option<String>) -> String {
    content.clone().unwrap_or_else(|| ABSENT.to_owned())
}

impl Mutation {
    /// A stable name for the resource, e.g. `sysctl:net.core.somaxconn`.
    pub fn resource(&self) -> String {
        match self {
            Mutation::Sysctl { key, .. } => format!("sysctl:{key}"),
            Mutation::EnvFile { path, .. } => format!("envfile:{path}"),
            Mutation::LinkMtu { link, .. } => format!("link:{link}"),
            Mutation::RootQdisc { link, .. } => format!("qdisc:{link} root"),
        }
    }

    /// The state before, as shown to people and compared when checking for drift.
    pub fn before(&self) -> String {
        match self {
            Mutation::Sysctl { before, .. } => before.clone(),
            Mutation::EnvFile { before, .. } => file_state(before),
            Mutation::LinkMtu { before, .. } => format!("mtu {before}"),
            Mutation::RootQdisc { before, .. } => qdisc_text(before),
        }
    }

    pub fn after(&self) -> String {
        match self {
            Mutation::Sysctl { after, .. } => after.clone(),
            Mutation::LinkMtu { after, .. } => format!("mtu {after}"),
            Mutation::RootQdisc { after, .. } => qdisc_text(after),
            Mutation::EnvFile { after, .. } => file_state(after),
        }
    }

    /// [`Mutation::before`] as one short line for logs and history.
    pub fn before_label(&self) -> String {
        match self {
            Mutation::EnvFile { before, .. } => crate::plan::envfile::label(before.as_deref()),
            Mutation::RootQdisc { before, .. } => qdisc_label(before),
            _ => self.before(),
        }
    }

    /// [`Mutation::after`] as one short line for logs and history.
    pub fn after_label(&self) -> String {
        match self {
            Mutation::EnvFile { after, .. } => crate::plan::envfile::label(after.as_deref()),
            Mutation::RootQdisc { after, .. } => qdisc_label(after),
            _ => self.after(),
        }
    }

    /// The mutation that undoes this one.
    pub fn inverse(&self) -> Mutation {
        match self {
            Mutation::Sysctl { key, before, after } => Mutation::Sysctl {
                key: key.clone(),
                before: after.clone(),
                after: before.clone(),
            },
            Mutation::EnvFile {
                path,
                keys,
                before,
                after,
            } => Mutation::EnvFile {
                path: path.clone(),
                keys: keys.clone(),
                before: after.clone(),
                after: before.clone(),
            },
            Mutation::LinkMtu {
                link,
                ifindex,
                before,
                after,
            } => Mutation::LinkMtu {
                link: link.clone(),
                ifindex: *ifindex,
                before: *after,
                after: *before,
            },
            Mutation::RootQdisc {
                link,
                ifindex,
                before,
                after,
            } => Mutation::RootQdisc {
                link: link.clone(),
                ifindex: *ifindex,
                before: after.clone(),
                after: before.clone(),
            },
        }
    }
}

/// Builds the plan from the findings of [`crate::detect::detect`].
pub fn plan(playbooks: &[(&LoadedPlaybook, &Vars)], facts: &Facts, findings: Vec<Finding>) -> Plan {
    let mut changes: Vec<Change> = Vec::new();
    let mut errors = Vec::new();
    let mut planned = Vec::new();
    // What earlier changes in this plan will have set, by resource.
    let mut projected: BTreeMap<String, usize> = BTreeMap::new();
    for finding in findings {
        let who = format!("{}/{}", finding.playbook, finding.rule);
        let rule = playbooks
            .iter()
            .find(|(pb, _)| pb.playbook.name == finding.playbook)
            .and_then(|(pb, vars)| {
                pb.playbook
                    .rules
                    .iter()
                    .find(|r| r.id == finding.rule)
                    .map(|r| (r, *vars))
            });
        let fix = match (finding.status, rule) {
            (FindingStatus::Unknown, _) => FixStatus::Undecided,
            (_, None) => FixStatus::ReportOnly,
            (_, Some((rule, _))) if rule.fix.is_empty() => FixStatus::ReportOnly,
            (FindingStatus::Fired, Some((rule, vars))) => {
                let mut status = FixStatus::InEffect;
                for action in &rule.fix {
                    let outcomes = match action {
                        Action::SetSysctl(s) => {
                            vec![plan_sysctl(s, vars, facts, &changes, &projected)]
                        }
                        Action::SetMtu(a) => {
                            crate::detect::net::plan_set_mtu(&rule.detect, a, vars, facts)
                        }
                        Action::DeleteRootQdisc(a) => {
                            crate::detect::net::plan_delete_root_qdisc(&rule.detect, a, vars, facts)
                        }
                        Action::SetEnv(e) => vec![crate::plan::envfile::plan_set_env(
                            e,
                            &rule.detect,
                            vars,
                            facts,
                            &changes,
                            &projected,
                        )],
                    };
                    for outcome in outcomes {
                        match outcome {
                            Ok(None) => {}
                            Ok(Some(mutation)) => {
                                status = FixStatus::Planned;
                                let resource = mutation.resource();
                                match projected.get(&resource) {
                                    Some(&i) => {
                                        let existing = &mut changes[i];
                                        existing.mutation = merge(&existing.mutation, mutation);
                                        if !existing.rules.contains(&who) {
                                            existing.rules.push(who.clone());
                                            existing.evidence.extend(finding.evidence.clone());
                                        }
                                    }
                                    None => {
                                        projected.insert(resource, changes.len());
                                        let evidence = crate::detect::net::evidence_for(
                                            &mutation,
                                            &finding.evidence,
                                        );
                                        changes.push(Change {
                                            rules: vec![who.clone()],
                                            mutation,
                                            evidence,
                                        });
                                    }
                                }
                            }
                            Err(e) => {
                                status = FixStatus::Blocked;
                                errors.push(format!("{who}: {e}"));
                            }
                        }
                    }
                }
                status
            }
        };
        planned.push(PlannedFinding { finding, fix });
    }
    Plan {
        format: PLAN_FORMAT,
        created_at: facts.collected_at,
        hostname: facts.hostname.clone(),
        findings: planned,
        changes,
        errors,
        netns: None,
    }
}

/// Keeps the first before-value (what the system has now) and the latest after-value.
fn merge(existing: &Mutation, newer: Mutation) -> Mutation {
    match (existing, newer) {
        (Mutation::Sysctl { key, before, .. }, Mutation::Sysctl { after, .. }) => {
            Mutation::Sysctl {
                key: key.clone(),
                before: before.clone(),
                after,
            }
        }
        (
            Mutation::EnvFile {
                path, keys, before, ..
            },
            Mutation::EnvFile {
                keys: more, after, ..
            },
        ) => {
            let mut keys = keys.clone();
            keys.extend(
                more.into_iter()
                    .filter(|k| !keys.contains(k))
                    .collect::<Vec<_>>(),
            );
            Mutation::EnvFile {
                path: path.clone(),
                keys,
                before: before.clone(),
                after,
            }
        }
        (
            Mutation::LinkMtu {
                link,
                ifindex,
                before,
                ..
            },
            Mutation::LinkMtu { after, .. },
        ) => Mutation::LinkMtu {
            link: link.clone(),
            ifindex: *ifindex,
            before: *before,
            after,
        },
        // Deleting the same qdisc twice is deleting it once.
        (existing @ Mutation::RootQdisc { .. }, _) => existing.clone(),
        // Different kinds never share a resource name.
        (_, newer) => newer,
    }
}

/// The sysctl change a `set_sysctl` asks for, or `None` when it is already in effect.
fn plan_sysctl(
    s: &SetSysctl,
    vars: &Vars,
    facts: &Facts,
    changes: &[Change],
    projected: &BTreeMap<String, usize>,
) -> Result<Option<Mutation>, String> {
    let measured = match facts.sysctl(&s.key) {
        Fact::Value(v) => crate::kernel::sysctl::normalize(v),
        Fact::Unknown(why) => {
            return Err(format!(
                "cannot plan {}: current value unknown ({why})",
                s.key
            ));
        }
    };
    let resource = format!("sysctl:{}", s.key);
    // An earlier rule may already plan this key: build on its after-value, and refuse
    // to overwrite an exact value with a different exact value.
    let earlier = projected.get(&resource).map(|&i| &changes[i]);
    let current = earlier.map_or(measured.clone(), |c| c.mutation.after());
    let (mode, operand) = s.mode()?;
    let operand = crate::kernel::sysctl::normalize(&scalar_text(operand, vars)?);
    let target = match mode {
        SetMode::Value => operand,
        SetMode::AtLeast | SetMode::AtMost => {
            let want: i64 = operand
                .parse()
                .map_err(|_| format!("{}: {operand:?} is not an integer", s.key))?;
            let have: i64 = current.parse().map_err(|_| {
                format!(
                    "{}: at_least/at_most need a single-number value, the value is {current:?}",
                    s.key
                )
            })?;
            let keep = if mode == SetMode::AtLeast {
                have >= want
            } else {
                have <= want
            };
            if keep {
                current.clone()
            } else {
                want.to_string()
            }
        }
        SetMode::WidenTo => {
            let (lo, hi) = crate::kernel::sysctl::parse_range(&operand)
                .ok_or_else(|| format!("{}: widen_to {operand:?} is not a range", s.key))?;
            let (clo, chi) = crate::kernel::sysctl::parse_range(&current).ok_or_else(|| {
                format!("{}: the value {current:?} is not a `low high` range", s.key)
            })?;
            format!("{} {}", clo.min(lo), chi.max(hi))
        }
    };
    if let Some(earlier) = earlier
        && mode == SetMode::Value
        && target != current
    {
        return Err(format!(
            "{} is set to {current:?} by {} and to {target:?} by this rule",
            s.key,
            earlier.rules.join(", ")
        ));
    }
    if target == current {
        return Ok(None);
    }
    Ok(Some(Mutation::Sysctl {
        key: s.key.clone(),
        before: measured,
        after: target,
    }))
}

/// Detection then planning, for callers that do not need the steps apart.
pub fn plan_from_facts(playbooks: &[(&LoadedPlaybook, &Vars)], facts: &Facts) -> Plan {
    let findings = crate::detect::detect(playbooks, facts);
    plan(playbooks, facts, findings)
}
