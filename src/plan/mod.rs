//! Planning: from findings to the concrete changes that would fix them.
//!
//! Pure: no I/O. A *change* is one resource going from a *before* value (as measured in
//! the facts) to an *after* value, with the evidence of the rule(s) that asked for it.
//! A fix already in effect (e.g. `at_least: 4096` where the value is 8192) yields no
//! change, so planning right after applying finds nothing to do. Two rules touching the
//! same resource are merged: later fixes see the values earlier ones planned, so
//! `at_least` requests compose to the largest, and conflicting exact values are an error.
//!
//! This file holds the plan, its changes and their merging; [`mutation`] the
//! mutations (labels, inverses); each action kind has its own planner: `sysctl`
//! (`set_sysctl`), `net` (`set_mtu`, `delete_root_qdisc`), `envfile` (`set_env`), with
//! `jvm` sizing heaps for it.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::facts::Facts;
use crate::finding::{Evidence, Finding, FindingStatus};
use crate::playbook::{Action, LoadedPlaybook, Vars};

pub mod envfile;
pub mod jvm;
pub mod mutation;
pub mod net;
pub mod persist;
pub mod sysctl;
pub mod unit;

pub use mutation::{ABSENT, Earlier, FileRole, Mutation};

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
    /// Things worth knowing that change nothing (runtime-only changes, persistence
    /// drift); they never affect the exit code.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
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
                    let earlier = |resource: &str| {
                        projected.get(resource).map(|&i| Earlier {
                            mutation: &changes[i].mutation,
                            rules: &changes[i].rules,
                        })
                    };
                    let outcomes = match action {
                        Action::SetSysctl(s) => {
                            vec![sysctl::plan_set_sysctl(s, vars, facts, &earlier)]
                        }
                        Action::SetMtu(a) => net::plan_set_mtu(&rule.detect, a, vars, facts),
                        Action::DeleteRootQdisc(a) => {
                            net::plan_delete_root_qdisc(&rule.detect, a, vars, facts)
                        }
                        Action::SetEnv(e) => {
                            envfile::plan_set_env(e, &rule.detect, vars, facts, &earlier)
                        }
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
                                        let evidence =
                                            net::evidence_for(&mutation, &finding.evidence);
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
        notes: Vec::new(),
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
            Mutation::File {
                path,
                role,
                keys,
                before,
                effect,
                ..
            },
            Mutation::File {
                keys: more, after, ..
            },
        ) => {
            let mut keys = keys.clone();
            keys.extend(
                more.into_iter()
                    .filter(|k| !keys.contains(k))
                    .collect::<Vec<_>>(),
            );
            Mutation::File {
                path: path.clone(),
                role: *role,
                keys,
                before: before.clone(),
                after,
                effect: effect.clone(),
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

/// Detection then planning, for callers that do not need the steps apart.
pub fn plan_from_facts(playbooks: &[(&LoadedPlaybook, &Vars)], facts: &Facts) -> Plan {
    let findings = crate::detect::detect(playbooks, facts);
    plan(playbooks, facts, findings)
}
