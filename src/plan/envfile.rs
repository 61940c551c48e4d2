//! Planning of `set_env` fixes: the new content of an environment file, computed
//! from the content in the facts and, for `heap_percent_of_limit`, from the memory
//! limits the rule's detection saw.
//!
//! Pure: no I/O. The before-content is the file as gathered (or as an earlier change
//! in the same plan leaves it, so two rules editing one file compose); a fix whose
//! value is already in the file plans nothing.

use crate::domain::env_dialect::{Dialect, get_in, set_in};
use crate::domain::jvm::replace_heap_flags;
use crate::facts::{Fact, Facts};
use crate::playbook::{Condition, EnvMode, SetEnv, Vars, expand, scalar_text};

use super::Unplanned;
use super::jvm::{limits_seen, xmx_for};
use super::mutation::{Earlier, FileRole, Mutation};

/// The file changes a `set_env` asks for (none when already in effect). With a file
/// given, that file is edited; without one, the file is found from the java processes
/// the detection flagged ([`super::unit`]): a drop-in of their systemd service, or the
/// `EnvironmentFile=` that sets the variable.
pub fn plan_set_env<'a>(
    e: &SetEnv,
    detect: &Condition,
    vars: &Vars,
    facts: &Facts,
    earlier: &dyn Fn(&str) -> Option<Earlier<'a>>,
) -> Vec<Result<Option<Mutation>, Unplanned>> {
    let file = match expand(&e.file, vars) {
        Ok(f) => f,
        Err(err) => return vec![Err(err.into())],
    };
    if file.is_empty() {
        return super::unit::plan_service_env(e, detect, vars, facts, earlier);
    }
    vec![plan_env_file(e, &file, detect, vars, facts, earlier).map_err(Into::into)]
}

/// The value `e` gives its variable, from the variable's current options.
pub fn new_value(
    e: &SetEnv,
    old_options: &str,
    detect: &Condition,
    vars: &Vars,
    facts: &Facts,
) -> Result<String, String> {
    let (mode, operand) = e.mode()?;
    let operand = scalar_text(operand, vars)?;
    Ok(match mode {
        EnvMode::Value => operand,
        EnvMode::JvmHeapFlags => replace_heap_flags(old_options, operand.trim()),
        EnvMode::HeapPercentOfLimit => {
            let percent: f64 = operand
                .trim()
                .parse()
                .map_err(|_| format!("heap_percent_of_limit {operand:?} is not a number"))?;
            let (limits, headroom) = limits_seen(detect, vars, facts);
            let xmx = xmx_for(&limits, headroom, percent)?;
            replace_heap_flags(old_options, &xmx)
        }
    })
}

/// Sets `key` in the environment file `file` whose current content is `measured`
/// (or what an earlier change leaves); `None` when the value is already there.
pub fn edit_env_file<'a>(
    e: &SetEnv,
    (file, key, dialect): (&str, &str, Dialect),
    measured: Option<String>,
    (detect, vars, facts): (&Condition, &Vars, &Facts),
    earlier: &dyn Fn(&str) -> Option<Earlier<'a>>,
    effect: Option<String>,
) -> Result<Option<Mutation>, String> {
    let current = match earlier(&format!("envfile:{file}")).map(|c| c.mutation) {
        Some(Mutation::File { after, .. }) => after.clone(),
        _ => measured.clone(),
    };
    let content = current.clone().unwrap_or_default();
    let old_value = get_in(dialect, &content, key).map_err(|err| format!("{file}: {err}"))?;
    let new_value = new_value(e, old_value.as_deref().unwrap_or(""), detect, vars, facts)?;
    if old_value.as_deref() == Some(new_value.as_str()) {
        return Ok(None);
    }
    let after =
        set_in(dialect, &content, key, &new_value).map_err(|err| format!("{file}: {err}"))?;
    Ok(Some(Mutation::File {
        path: file.to_owned(),
        role: FileRole::Env,
        keys: vec![key.to_owned()],
        before: measured,
        after: Some(after),
        effect,
    }))
}

fn plan_env_file<'a>(
    e: &SetEnv,
    file: &str,
    detect: &Condition,
    vars: &Vars,
    facts: &Facts,
    earlier: &dyn Fn(&str) -> Option<Earlier<'a>>,
) -> Result<Option<Mutation>, String> {
    let key = expand(&e.key, vars)?;
    let measured = match facts.env_file(file) {
        Fact::Value(content) => content.clone(),
        Fact::Unknown(why) => return Err(format!("cannot plan {file}: {why}")),
    };
    let dialect = match e.dialect.as_deref().map(|d| expand(d, vars)).transpose()? {
        Some(d) if !d.is_empty() => Dialect::parse(&d)?,
        _ => Dialect::for_path(file),
    };
    // The file as the system names it is what the facts and the dialect go by; the
    // change writes it under `--root`.
    let host = match &facts.config {
        Some(config) => config.host_path(file),
        None => file.to_owned(),
    };
    edit_env_file(
        e,
        (&host, &key, dialect),
        measured,
        (detect, vars, facts),
        earlier,
        None,
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::facts::{MemoryCgroup, OomKill, ProcessInfo};
    use crate::finding::FindingStatus;
    use crate::plan::mutation::label;
    use crate::plan::{FixStatus, Plan, plan_from_facts};
    use crate::playbook::{LoadedPlaybook, parse};

    const MIB: u64 = 1024 * 1024;

    fn playbook(fix: &str) -> LoadedPlaybook {
        let text = format!(
            "name: t\ndescription: d\nvariables:\n  env_file: {{default: /etc/default/app}}\nrules:\n  - id: heap\n    description: d\n    detect:\n      any:\n        - jvm_heap: {{headroom: 128MiB}}\n        - oom_kill: {{within: 1h}}\n    fix:\n{fix}"
        );
        let pb = parse("test", &text).expect("parses");
        assert_eq!(
            crate::playbook::check(&pb, &Vars::defaults(&pb.playbook)),
            vec![]
        );
        pb
    }

    fn java(
        pid: u32,
        cmdline: &str,
        env: Fact<BTreeMap<String, String>>,
        limit: Option<u64>,
    ) -> ProcessInfo {
        ProcessInfo {
            pid,
            comm: "java".into(),
            cmdline: cmdline.split_whitespace().map(str::to_owned).collect(),
            env,
            memory_cgroup: Fact::Value(MemoryCgroup {
                path: "/svc".into(),
                version: 2,
                limit,
                limit_from: limit.map(|_| "/svc".into()),
                usage: Some(100 * MIB),
            }),
        }
    }

    fn facts(procs: Vec<ProcessInfo>, kills: Vec<OomKill>, file: Option<&str>) -> Facts {
        Facts {
            collected_at: 10_000.0,
            processes: Some(Fact::Value(procs)),
            mem_total: Some(Fact::Value(16 * 1024 * MIB)),
            oom_kills: Some(Fact::Value(kills)),
            env_files: BTreeMap::from([(
                "/etc/default/app".to_owned(),
                Fact::Value(file.map(str::to_owned)),
            )]),
            ..Facts::default()
        }
    }

    fn run(fix: &str, facts: &Facts) -> Plan {
        let pb = playbook(fix);
        let vars = Vars::defaults(&pb.playbook);
        plan_from_facts(&[(&pb, &vars)], facts)
    }

    const PERCENT: &str = "      - set_env: {file: \"${env_file}\", key: JAVA_TOOL_OPTIONS, heap_percent_of_limit: 75}\n";

    fn after(plan: &Plan) -> Option<String> {
        match &plan.changes.first()?.mutation {
            Mutation::File { after, .. } => after.clone(),
            _ => None,
        }
    }

    #[test]
    fn sizes_the_heap_from_the_smallest_limit_seen() {
        let env = Fact::Value(BTreeMap::new());
        let procs = vec![
            java(10, "java -Xmx4g -jar a.jar", env.clone(), Some(2048 * MIB)),
            java(11, "java -jar b.jar", env.clone(), None),
            java(12, "java -Xmx1g Main", env, Some(1024 * MIB)),
        ];
        let f = facts(
            procs.clone(),
            vec![],
            Some("# app\nJAVA_TOOL_OPTIONS=\"-Dx=1 -Xmx4g\"\n"),
        );
        let plan = run(PERCENT, &f);
        assert_eq!(plan.errors, Vec::<String>::new());
        assert_eq!(plan.findings[0].finding.status, FindingStatus::Fired);
        assert_eq!(plan.findings[0].finding.evidence.len(), 2, "pids 10 and 12");
        // 75% of the 1 GiB limit.
        assert_eq!(
            after(&plan).as_deref(),
            Some("# app\nJAVA_TOOL_OPTIONS=\"-Dx=1 -Xmx768m\"\n")
        );
        // Once the file says so, the fix is in effect.
        let fixed = facts(
            procs,
            vec![],
            Some("# app\nJAVA_TOOL_OPTIONS=\"-Dx=1 -Xmx768m\"\n"),
        );
        let plan = run(PERCENT, &fixed);
        assert!(plan.changes.is_empty());
        assert_eq!(plan.findings[0].fix, FixStatus::InEffect);
    }

    #[test]
    fn unreadable_environment_is_undecided_and_unlimited_is_not_a_breach() {
        let f = facts(
            vec![
                java(
                    10,
                    "java -jar a.jar",
                    Fact::Unknown("permission denied".into()),
                    Some(512 * MIB),
                ),
                java(
                    11,
                    "java -Xmx8g -jar b.jar",
                    Fact::Value(BTreeMap::new()),
                    None,
                ),
            ],
            vec![],
            None,
        );
        let plan = run(PERCENT, &f);
        assert_eq!(plan.findings[0].finding.status, FindingStatus::Unknown);
        assert!(
            plan.findings[0].finding.unknown[0].contains("pid 10: environment: permission denied")
        );
        assert!(plan.changes.is_empty() && plan.errors.is_empty());
    }

    #[test]
    fn an_oom_kill_alone_fires_and_sizes_the_heap_from_its_limit() {
        let kill = |time: f64| OomKill {
            time,
            pid: 7,
            comm: "java".into(),
            cgroup: Some("/docker/x".into()),
            limit: Some(512 * MIB),
            rss: Some(530 * MIB),
        };
        let plan = run(PERCENT, &facts(vec![], vec![kill(9_000.0)], None));
        assert_eq!(
            after(&plan).as_deref(),
            Some("JAVA_TOOL_OPTIONS=-Xmx384m\n")
        );
        let ev = &plan.findings[0].finding.evidence[0];
        assert!(ev.observed.contains("pid 7 (java) killed at"), "{ev:?}");
        // Outside the window: nothing fires.
        let plan = run(PERCENT, &facts(vec![], vec![kill(1_000.0)], None));
        assert!(plan.findings.is_empty());
    }

    #[test]
    fn two_fixes_on_one_file_compose() {
        let fix = "      - set_env: {file: \"${env_file}\", key: JAVA_TOOL_OPTIONS, jvm_heap_flags: \"-XX:MaxRAMPercentage=75.0\"}\n      - set_env: {file: \"${env_file}\", key: MALLOC_ARENA_MAX, value: 2}\n";
        let f = facts(
            vec![java(
                10,
                "java -Xmx1g M",
                Fact::Value(BTreeMap::new()),
                Some(512 * MIB),
            )],
            vec![],
            Some("JAVA_TOOL_OPTIONS=-XX:+UseG1GC\r\n"),
        );
        let plan = run(fix, &f);
        assert_eq!(plan.changes.len(), 1);
        assert_eq!(
            after(&plan).as_deref(),
            Some(
                "JAVA_TOOL_OPTIONS=\"-XX:+UseG1GC -XX:MaxRAMPercentage=75.0\"\r\nMALLOC_ARENA_MAX=2\r\n"
            )
        );
        let Mutation::File { keys, before, .. } = &plan.changes[0].mutation else {
            panic!()
        };
        assert_eq!(keys, &["JAVA_TOOL_OPTIONS", "MALLOC_ARENA_MAX"]);
        assert_eq!(
            before.as_deref(),
            Some("JAVA_TOOL_OPTIONS=-XX:+UseG1GC\r\n")
        );
        let inverse = plan.changes[0].mutation.inverse();
        assert_eq!(inverse.after(), "JAVA_TOOL_OPTIONS=-XX:+UseG1GC\r\n");
    }

    #[test]
    fn errors_name_what_is_missing() {
        let f = facts(
            vec![java(
                10,
                "java -Xmx1g M",
                Fact::Value(BTreeMap::new()),
                Some(512 * MIB),
            )],
            vec![],
            Some("JAVA_TOOL_OPTIONS=\"-Xmx1g\n-Dx\"\n"),
        );
        let plan = run(PERCENT, &f);
        assert!(
            plan.errors[0].contains("continues on the next line"),
            "{:?}",
            plan.errors
        );
        let mut f = f;
        f.env_files.insert(
            "/etc/default/app".into(),
            Fact::Unknown("permission denied".into()),
        );
        let plan = run(PERCENT, &f);
        assert!(plan.errors[0].contains("cannot plan /etc/default/app: permission denied"));
        let no_file = "      - set_env: {file: \"\", key: K, value: x}\n";
        let plan = run(no_file, &f);
        assert!(plan.errors.is_empty(), "{:?}", plan.errors);
        assert_eq!(plan.findings[0].fix, FixStatus::NeedsInput);
        assert!(plan.findings[0].needs_input[0].contains("--var env_file="));
        assert!(xmx_for(&[], 0, 75.0).is_err());
        assert!(
            xmx_for(&[100 * MIB], 128 * MIB, 75.0)
                .unwrap_err()
                .contains("no room")
        );
        assert_eq!(
            xmx_for(&[4096 * MIB], 128 * MIB, 75.0).unwrap(),
            "-Xmx3072m"
        );
        assert_eq!(label(None), "(absent)");
        assert_eq!(
            Mutation::File {
                path: "/x".into(),
                role: FileRole::Env,
                keys: vec![],
                before: None,
                after: None,
                effect: None,
            }
            .before(),
            crate::plan::ABSENT
        );
    }
}
