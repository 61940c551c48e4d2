//! `set_env` without a file: the fix goes where the JVM's service reads its
//! environment, found from the process the detection flagged.
//!
//! Pure: no I/O; reads the unit files gathered under `--root` (`facts::units`).
//!
//! 1. The process's cgroup names its systemd service (`…/tomcat9.service`); a
//!    container's cgroup (`docker-ID.scope`, `/docker/ID`, kubepods) is not a host
//!    file's business and needs input.
//! 2. The variable is the one the winning heap flag came from
//!    ([`super::jvm::heap_source`]): `JAVA_OPTS` when catalina.sh put its value on the
//!    command line, since a command-line `-Xmx` beats `JAVA_TOOL_OPTIONS`. A flag
//!    written literally in `ExecStart=` needs input: no variable can override it.
//! 3. If an `EnvironmentFile=` of the unit sets that variable, that file is edited
//!    (it overrides `Environment=`); otherwise a drop-in
//!    `/etc/systemd/system/UNIT.d/90-tune-jvm-heap.conf` sets it with `Environment=`,
//!    refused when a drop-in read after it sets the same variable.
//!
//! Either takes effect when the service restarts; `tune plan` then sees the new JVM.

use crate::domain::env_dialect::Dialect;
use crate::domain::unit::{ServiceEnv, container_of, environment_line, service_env, service_of};
use crate::facts::config::ConfigFacts;
use crate::facts::units::UnitFiles;
use crate::facts::{Fact, Facts, ProcessInfo};
use crate::playbook::{Condition, SetEnv, Vars, expand};

use super::Unplanned;
use super::envfile::{edit_env_file, new_value};
use super::jvm::{HeapSource, heap_source, pids_over_limit};
use super::mutation::{Earlier, FileRole, Mutation};

/// The name of tune's drop-in.
pub const JVM_DROPIN: &str = "90-tune-jvm-heap.conf";

/// Without a file and without a process to find it from.
pub const NO_FILE: &str = "set_env: no environment file given and no java process over its limit to find it from; pass --var env_file=PATH (the file the service's JVM reads its environment from, e.g. /etc/default/tomcat9)";

/// The changes for every service whose java process is over its limit.
pub fn plan_service_env<'a>(
    e: &SetEnv,
    detect: &Condition,
    vars: &Vars,
    facts: &Facts,
    earlier: &dyn Fn(&str) -> Option<Earlier<'a>>,
) -> Vec<Result<Option<Mutation>, Unplanned>> {
    let pids = pids_over_limit(detect, vars, facts);
    let Fact::Value(processes) = facts.processes() else {
        return vec![Err(Unplanned::NeedsInput(NO_FILE.to_owned()))];
    };
    if pids.is_empty() {
        return vec![Err(Unplanned::NeedsInput(NO_FILE.to_owned()))];
    }
    let mut out = Vec::new();
    let mut units_done: Vec<String> = Vec::new();
    for pid in pids {
        let Some(p) = processes.iter().find(|p| p.pid == pid) else {
            continue;
        };
        let unit = match unit_of(p) {
            Ok(u) => u,
            Err(e) => {
                out.push(Err(e));
                continue;
            }
        };
        if units_done.contains(&unit) {
            continue;
        }
        units_done.push(unit.clone());
        out.push(plan_for(e, p, &unit, (detect, vars, facts), earlier));
    }
    out
}

fn unit_of(p: &ProcessInfo) -> Result<String, Unplanned> {
    let cgroup = match &p.memory_cgroup {
        Fact::Value(c) => &c.path,
        Fact::Unknown(why) => {
            return Err(Unplanned::Error(format!(
                "set_env: cannot tell which service runs java pid {}: cgroup: {why}",
                p.pid
            )));
        }
    };
    if let Some(id) = container_of(cgroup) {
        // Needs input: the container's environment is not a host file.
        return Err(Unplanned::NeedsInput(format!(
            "set_env: java pid {} runs in container {id} (cgroup {cgroup}): its environment is not a host file tune can edit; pass --var env_file=PATH if the container reads one (docker run --env-file), or set the heap in the container's definition",
            p.pid
        )));
    }
    service_of(cgroup).ok_or_else(|| {
        // Needs input: no service to find the environment from.
        Unplanned::NeedsInput(format!(
            "set_env: java pid {} (cgroup {cgroup}) is not in a systemd service, so tune cannot tell where its environment comes from; pass --var env_file=PATH (the file the JVM's start script reads)",
            p.pid
        ))
    })
}

fn plan_for<'a>(
    e: &SetEnv,
    p: &ProcessInfo,
    unit: &str,
    ctx: (&Condition, &Vars, &Facts),
    earlier: &dyn Fn(&str) -> Option<Earlier<'a>>,
) -> Result<Option<Mutation>, Unplanned> {
    let (_, vars, facts) = ctx;
    let config = facts
        .config
        .as_ref()
        .ok_or_else(|| format!("set_env: the unit files of {unit} were not read"))?;
    let files = match config.units.get(unit) {
        Some(Fact::Value(f)) => f,
        Some(Fact::Unknown(why)) => return Err(format!("set_env: {unit}: {why}").into()),
        None => return Err(format!("set_env: the unit files of {unit} were not read").into()),
    };
    let Some(fragment) = &files.fragment else {
        // Needs input: the unit file is not where systemd would look (under --root).
        return Err(Unplanned::NeedsInput(format!(
            "set_env: java pid {} runs in {unit}, but no unit file for it is under {} (/etc/systemd/system, /run/systemd/system, /usr/local/lib/systemd/system, /usr/lib/systemd/system); pass --root or --var env_file=PATH",
            p.pid, config.root
        )));
    };
    let env = match &p.env {
        Fact::Value(env) => env,
        Fact::Unknown(why) => {
            return Err(format!(
                "set_env: the environment of java pid {} is unknown ({why})",
                p.pid
            )
            .into());
        }
    };
    let service = service_env(files.files());
    let key = match heap_source(&p.cmdline, env) {
        HeapSource::Variable(v) => v,
        HeapSource::Ergonomic => expand(&e.key, vars)?,
        HeapSource::Literal(flag) => {
            // Needs input: a heap flag no variable carries cannot be overridden.
            return Err(Unplanned::NeedsInput(
                match service.exec_start.iter().find(|s| s.value.contains(&flag)) {
                    Some(s) => format!(
                        "set_env: {flag} is literal in ExecStart= of {unit} ({}:{}); no variable carries it, so no environment change can override it: edit ExecStart= (or make it take $JAVA_OPTS) and plan again",
                        s.path, s.line
                    ),
                    None => format!(
                        "set_env: {flag} on the command line of java pid {} comes from no variable of its environment and not from ExecStart= of {unit} ({}); find the start script that adds it and pass --var env_file=PATH --var env_var=NAME for the variable it reads",
                        p.pid, fragment.path
                    ),
                },
            ));
        }
    };
    let effect = format!("takes effect when {unit} restarts (after `systemctl daemon-reload`)");
    if let Some((path, content)) = env_file_setting(files, &service, &key)? {
        return edit_env_file(
            e,
            (&config.host_path(&path), &key, Dialect::Systemd),
            Some(content),
            ctx,
            earlier,
            Some(effect),
        )
        .map_err(Into::into);
    }
    dropin(
        e,
        unit,
        &key,
        (files, &service, config),
        env.get(&key),
        ctx,
        earlier,
        effect,
    )
    .map_err(Into::into)
}

/// The last `EnvironmentFile=` of the unit that sets `key`: (path, content).
fn env_file_setting(
    files: &UnitFiles,
    service: &ServiceEnv,
    key: &str,
) -> Result<Option<(String, String)>, String> {
    let mut found = None;
    for (path, _) in &service.env_files {
        match files.env_files.get(path) {
            Some(Fact::Value(Some(content))) => {
                if let Ok(Some(_)) =
                    crate::domain::env_dialect::get_in(Dialect::Systemd, content, key)
                {
                    found = Some((path.clone(), content.clone()));
                }
            }
            Some(Fact::Value(None)) | None => {}
            Some(Fact::Unknown(why)) => {
                return Err(format!("set_env: EnvironmentFile={path}: {why}"));
            }
        }
    }
    Ok(found)
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

#[allow(
    clippy::too_many_arguments,
    reason = "one call site; the pieces come from different facts"
)]
fn dropin<'a>(
    e: &SetEnv,
    unit: &str,
    key: &str,
    (files, service, config): (&UnitFiles, &ServiceEnv, &ConfigFacts),
    process_value: Option<&String>,
    (detect, vars, facts): (&Condition, &Vars, &Facts),
    earlier: &dyn Fn(&str) -> Option<Earlier<'a>>,
    effect: String,
) -> Result<Option<Mutation>, String> {
    let path = format!("/etc/systemd/system/{unit}.d/{JVM_DROPIN}");
    for d in &files.dropins {
        if d.path != path
            && file_name(&d.path) > JVM_DROPIN
            && let Some(s) = service_env([(d.path.as_str(), d.content.as_str())]).variable(key)
        {
            return Err(format!(
                "set_env: cannot set {key} for {unit}: {}:{} sets it and is read after {path}; change that drop-in and plan again",
                s.path, s.line
            ));
        }
    }
    let host = config.host_path(&path);
    let measured = files
        .dropins
        .iter()
        .find(|d| d.path == path)
        .map(|d| d.content.clone());
    let current = match earlier(&format!("file:{host}")).map(|c| c.mutation) {
        Some(Mutation::File { after, .. }) => after.clone(),
        _ => measured.clone(),
    };
    // What the service gets today: the unit's own setting, else what the process has.
    let old = service
        .variable(key)
        .map(|s| s.value.clone())
        .or_else(|| process_value.cloned())
        .unwrap_or_default();
    let value = new_value(e, &old, detect, vars, facts)?;
    if old == value {
        return Ok(None);
    }
    let mut vars_set: Vec<(String, String)> = current
        .as_deref()
        .map(|c| service_env([(path.as_str(), c)]).environment)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.value))
        .filter(|(k, _)| k != key)
        .collect();
    vars_set.push((key.to_owned(), value));
    let mut after = String::from(
        "# Written by tune (tune apply); `tune rollback` restores or removes it.\n[Service]\n",
    );
    for (k, v) in &vars_set {
        after.push_str(&environment_line(k, v));
        after.push('\n');
    }
    if current.as_deref() == Some(after.as_str()) {
        return Ok(None);
    }
    Ok(Some(Mutation::File {
        path: host,
        role: FileRole::UnitDropIn,
        keys: vec![key.to_owned()],
        before: measured,
        after: Some(after),
        effect: Some(effect),
    }))
}
