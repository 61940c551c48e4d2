//! `tune plan --all-netns` (and `tune apply --all-netns`): every distinct network
//! namespace on the host.
//!
//! The namespaces come from [`netns::enumerate`] (tune's own, /run/netns, and each
//! unique /proc/*/ns/net inode, named by their container cgroup when they have one).
//! They are planned on a few namespace threads (one for fewer than 16 namespaces, at
//! most one a CPU), each entering its share in turn ([`netns::run_each`]), and the
//! configuration files are read once for all
//! (`persist::ConfigOnce`), so the cost is linear in the number of namespaces. A
//! namespace that vanishes between the scan and its turn (its process exited, it was
//! deleted) is reported in its section and in the
//! exit code's place of an error it does not take: it is not fatal.

use std::path::Path;

use anyhow::{Result, bail};
use serde::Serialize;

use super::{
    ApplyArgs, PlanArgs, PlanFormat, confirm, exit, load, make_plan, openmetrics, print_out,
    render, require_root,
};
use crate::apply::journal::{StateDir, Status};
use crate::apply::{self, SystemExecutor};
use crate::kernel::netns::{self, FoundNetns};
use crate::plan::Plan;

/// One namespace's section: its plan, or why it could not be planned.
#[derive(Debug, Serialize)]
pub struct Section {
    pub netns: FoundNetns,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Plans each namespace on the namespace threads of [`netns::run_each`]; a failure to
/// enter one is recorded in its section. The sections keep the order of `found`.
pub fn plan_each(
    found: Vec<FoundNetns>,
    plan: impl Fn() -> Result<Plan> + Sync,
) -> Result<Vec<Section>> {
    let targets: Vec<_> = found.iter().map(|ns| ns.record.as_ref()).collect();
    let plans = netns::run_each(&targets, plan)?;
    Ok(found
        .into_iter()
        .zip(plans)
        .map(|(ns, planned)| match planned {
            Ok(mut p) => {
                p.netns = ns.record.clone();
                Section {
                    netns: ns,
                    plan: Some(p),
                    error: None,
                }
            }
            Err(e) => Section {
                netns: ns,
                plan: None,
                error: Some(format!(
                    "not planned (it vanished or cannot be entered): {e:#}"
                )),
            },
        })
        .collect())
}

/// The text output: one section per namespace, under its identity.
fn text_sections(sections: &[Section], playbooks: usize) -> String {
    let mut out = String::new();
    for s in sections {
        out.push_str(&header(&s.netns));
        match (&s.plan, &s.error) {
            (Some(plan), _) => out.push_str(&render::plan(plan, playbooks)),
            (None, Some(e)) => out.push_str(&format!("{e}\n")),
            (None, None) => {}
        }
        out.push('\n');
    }
    out
}

fn header(ns: &FoundNetns) -> String {
    format!(
        "=== network namespace {} (inode {}) ===\n",
        ns.identity, ns.inode
    )
}

pub fn cmd_plan(args: &PlanArgs) -> Result<i32> {
    if args.out.is_some() {
        bail!(
            "--all-netns plans many namespaces; -o writes one plan: use --netns NAME or --netns-pid PID with -o"
        );
    }
    let set = load(&args.sources)?;
    // The configuration files are read once, for every namespace.
    let configs = super::persist::ConfigOnce::default();
    let sections = plan_each(netns::enumerate()?, || {
        make_plan(
            &set,
            None,
            &Default::default(),
            &args.sources.config,
            &configs,
        )
    })?;
    let text = match args.format {
        PlanFormat::Json => serde_json::to_string_pretty(&sections)? + "\n",
        PlanFormat::Text => text_sections(&sections, set.playbooks.len()),
        PlanFormat::OpenMetrics => {
            let planned: Vec<openmetrics::Planned> = sections
                .iter()
                .filter_map(|s| {
                    s.plan.as_ref().map(|plan| openmetrics::Planned {
                        netns: Some(&s.netns.identity),
                        plan,
                    })
                })
                .collect();
            let failed: Vec<&str> = sections
                .iter()
                .filter(|s| s.plan.is_none())
                .map(|s| s.netns.identity.as_str())
                .collect();
            openmetrics::render(&planned, &failed)
        }
    };
    print_out(&text)?;
    let plans = sections.iter().filter_map(|s| s.plan.as_ref());
    let errors = plans.clone().any(|p| !p.errors.is_empty());
    let changes = plans.clone().any(|p| !p.changes.is_empty());
    Ok(if errors {
        exit::ERROR
    } else if args.detailed_exitcode && changes {
        exit::CHANGES
    } else {
        exit::OK
    })
}

/// `tune apply --all-netns`: plans every namespace, shows the plans, asks once (unless
/// `--yes`), then applies namespace by namespace, one transaction each (so `tune
/// history` and `tune rollback ID` work per namespace). A namespace whose apply fails
/// is left as it was (rolled back, or untouched when refused); the others keep their
/// changes. Exit: 0 all applied, 3 some namespace failed and was left as it was, 4 some
/// step could not be undone.
pub fn cmd_apply(state_dir: &Path, args: &ApplyArgs) -> Result<i32> {
    require_root("apply")?;
    let set = load(&args.sources)?;
    // The configuration files are read once, for every namespace.
    let configs = super::persist::ConfigOnce::default();
    let sections = plan_each(netns::enumerate()?, || {
        make_plan(
            &set,
            None,
            &Default::default(),
            &args.sources.config,
            &configs,
        )
    })?;
    print_out(&text_sections(&sections, set.playbooks.len()))?;
    let broken: Vec<&str> = sections
        .iter()
        .filter(|s| s.plan.as_ref().is_some_and(|p| !p.errors.is_empty()))
        .map(|s| s.netns.identity.as_str())
        .collect();
    if !broken.is_empty() {
        bail!(
            "the plans of {} have errors and cannot be applied; nothing was changed",
            broken.join(", ")
        );
    }
    let todo: Vec<(&FoundNetns, &Plan)> = sections
        .iter()
        .filter_map(|s| s.plan.as_ref().map(|p| (&s.netns, p)))
        .filter(|(_, p)| !p.changes.is_empty())
        .collect();
    let n: usize = todo.iter().map(|(_, p)| p.changes.len()).sum();
    if n == 0 {
        print_out("Nothing to apply.\n")?;
        return Ok(exit::OK);
    }
    if !args.yes && !confirm(n)? {
        print_out("Not applied.\n")?;
        return Ok(exit::OK);
    }
    let state = StateDir::open(state_dir)?;
    let mut code = exit::OK;
    for (found, plan) in todo {
        // tune's own namespace has no name or pid: record it by its inode, as `tune
        // apply` does, so a rollback from another namespace is refused.
        let outcome = netns::identity(plan.netns.as_ref()).and_then(|recorded| {
            netns::run_in(Some(&recorded), || {
                apply::apply(
                    &state,
                    &mut SystemExecutor,
                    &plan.hostname,
                    Some(&recorded),
                    &plan.changes,
                )
            })
        });
        let text = match outcome {
            Ok(report) => {
                code = code.max(match report.status {
                    Status::Applied => exit::OK,
                    Status::FailedRolledBack => exit::ROLLED_BACK,
                    _ => exit::NEEDS_ATTENTION,
                });
                render::report("apply", &report)
            }
            Err(e) => {
                code = code.max(exit::ROLLED_BACK);
                format!("not applied: {e:#}\n")
            }
        };
        print_out(&format!("{}{text}", header(found)))?;
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::netns::NetnsRecord;

    #[test]
    fn a_namespace_that_vanished_is_reported_not_fatal() {
        let gone = FoundNetns {
            identity: "gone".into(),
            inode: 1,
            pid: Some(u32::MAX - 1),
            cgroup: None,
            record: Some(NetnsRecord {
                name: None,
                pid: Some(u32::MAX - 1),
                inode: 1,
            }),
        };
        let here = FoundNetns {
            identity: "host".into(),
            inode: 2,
            pid: None,
            cgroup: None,
            record: None,
        };
        let empty = || {
            let facts: crate::facts::Facts =
                serde_json::from_str(include_str!("../../tests/golden/healthy/facts.json"))?;
            Ok(crate::plan::plan_from_facts(&[], &facts))
        };
        let sections = plan_each(vec![gone, here], empty).expect("the namespace thread starts");
        assert_eq!(sections.len(), 2);
        assert!(sections[0].plan.is_none());
        let error = sections[0].error.as_deref().unwrap_or("");
        assert!(error.contains("no process"), "{error}");
        assert!(sections[1].plan.is_some());
    }
}
