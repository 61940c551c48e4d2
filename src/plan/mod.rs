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
pub mod ring;
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
    /// What the plan was made from, so `tune apply PLAN_FILE` can re-derive it and
    /// refuse a plan file whose changes do not follow from it. Filled in by the
    /// command line (planning itself reads nothing); a plan file without it is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub made_from: Option<MadeFrom>,
}

/// The inputs of a plan besides the facts: the namespace, playbooks and `--var`s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MadeFrom {
    /// The network namespace the facts were read in (always recorded, also when none
    /// was named: `ip netns exec`, a container); apply refuses to run in another one.
    pub netns: crate::kernel::netns::NetnsRecord,
    /// Every playbook loaded, in load order.
    pub playbooks: Vec<PlanPlaybook>,
    /// The `--var NAME=VALUE` overrides given.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// The facts snapshot planned against (`plan --facts FILE`): apply re-derives the
    /// plan from it, and still checks every before-value on the live system. Absent
    /// for a plan of the live system, which apply re-derives from facts gathered then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts: Option<Facts>,
    /// The counters sampled over a window when the plan was made (`measure: growth`):
    /// a rate is part of what was reviewed, so apply re-derives the plan with these
    /// readings instead of sampling again (everything else is read live).
    /// `--persist` and `--root` as given: apply re-derives the configuration files too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub persist: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counter_samples:
        BTreeMap<String, crate::facts::Fact<crate::facts::counters::CounterSample>>,
    /// The TCP listeners (accept queues, owners) read while those counters were
    /// sampled: which limit caps an overflowing queue is part of what was reviewed, so
    /// apply re-derives the plan with them too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listeners: Option<crate::facts::Fact<Vec<crate::facts::sockets::Listener>>>,
    /// The per-CPU tables (softnet_stat, the conntrack statistics, softirq time) read
    /// twice over the window when the plan was made: growth is part of what was
    /// reviewed, so apply re-derives the plan with these readings too.
    #[serde(
        default,
        skip_serializing_if = "crate::facts::cpu_tables::Recorded::is_empty"
    )]
    pub cpu_tables: crate::facts::cpu_tables::Recorded,
    /// The link drop counters read twice when the plan was made (`rx_drops`): apply
    /// re-derives the plan with these readings too (ring sizes and links are read live).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rx_drops: Option<crate::facts::Fact<crate::facts::rx_drops::RxDropSamples>>,
}

/// One playbook a plan was made from: where it came from, its digest and its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanPlaybook {
    /// A path, or `bundled:NAME` for one embedded in the binary.
    pub source: String,
    /// SHA-256 of `content`, lowercase hex: compare it with `sha256sum FILE`.
    pub sha256: String,
    /// The playbook's text, exactly as loaded.
    pub content: String,
}

impl PlanPlaybook {
    pub fn of(source: &str, content: &str) -> Self {
        PlanPlaybook {
            source: source.to_owned(),
            sha256: sha256_hex(content.as_bytes()),
            content: content.to_owned(),
        }
    }
}

/// SHA-256 of `bytes` as lowercase hex, as `sha256sum` prints it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    use std::fmt::Write;
    sha2::Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// A finding and what its fix amounts to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlannedFinding {
    #[serde(flatten)]
    pub finding: Finding,
    pub fix: FixStatus,
    /// What to pass so the fix can be planned (status `needs_input`), e.g.
    /// `pass --var env_file=PATH`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs_input: Vec<String>,
}

/// Why an action planned no change: its planners return this as their error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unplanned {
    /// The fix is broken (a bad value, an unreadable resource): the plan has an error
    /// and cannot be applied.
    Error(String),
    /// The fix needs something the engine cannot find by itself; the text says what to
    /// pass. Pending work, not an error: `--detailed-exitcode` exits 2.
    NeedsInput(String),
}

impl From<String> for Unplanned {
    fn from(e: String) -> Unplanned {
        Unplanned::Error(e)
    }
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
    /// The fix needs input the engine cannot find (see the finding's `needs_input`).
    NeedsInput,
}

/// One resource changing from before to after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
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
        let mut needs_input = Vec::new();
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
                            errors_of(sysctl::plan_set_sysctl_reserving(s, vars, facts, &earlier))
                        }
                        Action::SetMtu(a) => {
                            errors_of(net::plan_set_mtu(&rule.detect, a, vars, facts))
                        }
                        Action::DeleteRootQdisc(a) => {
                            errors_of(net::plan_delete_root_qdisc(&rule.detect, a, vars, facts))
                        }
                        Action::SetRxRing(a) => {
                            errors_of(ring::plan_set_rx_ring(&rule.detect, a, vars, facts))
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
                                        let mut evidence =
                                            net::evidence_for(&mutation, &finding.evidence);
                                        evidence.extend(sysctl::reserved_ports_evidence(&mutation));
                                        changes.push(Change {
                                            rules: vec![who.clone()],
                                            mutation,
                                            evidence,
                                        });
                                    }
                                }
                            }
                            Err(Unplanned::Error(e)) => {
                                status = FixStatus::Blocked;
                                errors.push(format!("{who}: {e}"));
                            }
                            Err(Unplanned::NeedsInput(what)) => {
                                if status != FixStatus::Blocked {
                                    status = FixStatus::NeedsInput;
                                }
                                needs_input.push(what);
                            }
                        }
                    }
                }
                status
            }
        };
        planned.push(PlannedFinding {
            finding,
            fix,
            needs_input,
        });
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
        made_from: None,
    }
}

/// Planners that only ever fail with an error.
fn errors_of(
    outcomes: Vec<Result<Option<Mutation>, String>>,
) -> Vec<Result<Option<Mutation>, Unplanned>> {
    outcomes
        .into_iter()
        .map(|o| o.map_err(Unplanned::Error))
        .collect()
}

impl Plan {
    /// Whether some finding waits for input (`needs_input`).
    pub fn needs_input(&self) -> bool {
        self.findings.iter().any(|f| f.fix == FixStatus::NeedsInput)
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
        (
            Mutation::RxRing {
                link,
                ifindex,
                before,
                ..
            },
            Mutation::RxRing { after, .. },
        ) => Mutation::RxRing {
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
