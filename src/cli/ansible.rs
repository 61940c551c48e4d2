//! `tune ansible ARGS_FILE`: `tune` as an Ansible binary module ("want JSON"), and the
//! same one-JSON-object protocol for Salt (`cmd.run` with `stateful: True`: `changed`
//! and `comment`) and Puppet/Bolt tasks (`_noop` is check mode).
//!
//! Ansible runs `MODULE ARGS_FILE`, where `ARGS_FILE` is a JSON object of the task's
//! options plus Ansible's own `_ansible_*` keys. This command reads it, plans (and,
//! outside check mode, applies or rolls back), and prints exactly one JSON object on
//! stdout; failures are `"failed": true` with `msg`, never only an exit code. The
//! shipped wrapper is `contrib/ansible/library/tune`, documented by its sidecar
//! `tune.yml`.
//!
//! Check mode (`_ansible_check_mode: true`) is enforced here: nothing stops a binary
//! module from writing under `--check`, so in check mode this module never opens the
//! state directory for writing nor calls apply or rollback.
//!
//! `state: rolled_back` undoes the last transaction *this module* made. The module
//! keeps their ids in `STATE_DIR/ansible-transactions.json` (a small file of its own,
//! so the journal format stays as it is); a transaction made by `tune apply` by hand is
//! never rolled back by the module.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{NetnsArgs, PlaybookSet, Sources, check_same_netns, load, make_plan};
use crate::apply::journal::{StateDir, Status};
use crate::apply::{self, Report, SystemExecutor};
use crate::kernel::netns::{self, NetnsRecord};
use crate::plan::{Change, Plan};

/// The module's file of the transactions it made, in the state directory.
const RECORD_FILE: &str = "ansible-transactions.json";

/// The task's options (documented in `contrib/ansible/library/tune.yml`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    #[serde(default)]
    playbooks: Option<OneOrMany>,
    #[serde(default)]
    vars: Option<Map<String, Value>>,
    #[serde(default)]
    netns: Option<String>,
    #[serde(default)]
    netns_pid: Option<Pid>,
    #[serde(default)]
    state: Option<State>,
    #[serde(default)]
    persist: Option<bool>,
    #[serde(default)]
    root: Option<PathBuf>,
    #[serde(default)]
    confirm_within: Option<String>,
}

/// A list option given as one string is a list of one (as Ansible's `type: list` does).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// Templated values reach a binary module as strings ("{{ pid }}" → "1234").
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Pid {
    Number(u32),
    Text(String),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum State {
    #[default]
    Applied,
    RolledBack,
    Confirmed,
}

/// The parsed arguments file.
struct Invocation {
    options: Options,
    check_mode: bool,
}

/// Runs the module and prints its one JSON result. Returns the exit code (0, or 1 when
/// the result has `failed: true`; Ansible reads the JSON, not the code).
pub fn run(state_dir: &Path, args_file: Option<&Path>) -> Result<i32> {
    let result = match args_file {
        None => Err(anyhow!(
            "no module arguments file given (usage: tune ansible ARGS_FILE)"
        )),
        Some(path) => read_invocation(path).and_then(|inv| execute(state_dir, &inv)),
    };
    let (mut value, code) = match result {
        Ok(v) => (v, super::exit::OK),
        Err(e) => (
            json!({ "failed": true, "changed": false, "msg": format!("{e:#}") }),
            super::exit::ERROR,
        ),
    };
    // Salt's `cmd.run` with `stateful: True` reads `changed` and `comment`.
    if let Some(msg) = value.get("msg").cloned() {
        value["comment"] = msg;
    }
    super::print_out(&(serde_json::to_string(&value)? + "\n"))?;
    Ok(code)
}

fn read_invocation(path: &Path) -> Result<Invocation> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read module arguments file {}", path.display()))?;
    let value: Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: module arguments are not JSON", path.display()))?;
    let Value::Object(mut map) = value else {
        bail!("{}: module arguments must be a JSON object", path.display());
    };
    // Check mode: Ansible's `_ansible_check_mode`, or `_noop` from a Puppet/Bolt task
    // (sent only when the task's metadata declares `supports_noop`).
    let mut check_mode = false;
    for key in ["_ansible_check_mode", "_noop"] {
        match map.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Bool(b)) => check_mode |= *b,
            Some(other) => bail!("{key} must be a boolean, got {other}"),
        }
    }
    // The callers' own keys (`_ansible_*`, Bolt's `_task`, `_installdir`, ...): the
    // module uses check mode only, and must accept the rest.
    map.retain(|k, _| !k.starts_with('_'));
    let options: Options = serde_json::from_value(Value::Object(map))
        .map_err(|e| anyhow!("unsupported module arguments: {e}"))?;
    Ok(Invocation {
        options,
        check_mode,
    })
}

impl Options {
    fn sources(&self) -> Result<Sources> {
        let paths = match &self.playbooks {
            None => Vec::new(),
            Some(OneOrMany::One(p)) => vec![PathBuf::from(p)],
            Some(OneOrMany::Many(ps)) => ps.iter().map(PathBuf::from).collect(),
        };
        let mut vars = Vec::new();
        for (name, value) in self.vars.iter().flatten() {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => {
                    bail!("vars.{name}: a variable is a string, number or boolean, got {other}")
                }
            };
            vars.push((name.clone(), text));
        }
        let netns_pid = match &self.netns_pid {
            None => None,
            Some(Pid::Number(n)) => Some(*n),
            Some(Pid::Text(t)) => Some(
                t.trim()
                    .parse()
                    .map_err(|_| anyhow!("netns_pid: {t:?} is not a process id"))?,
            ),
        };
        if self.netns.is_some() && netns_pid.is_some() {
            bail!("netns and netns_pid are mutually exclusive");
        }
        Ok(Sources {
            paths,
            vars,
            netns: NetnsArgs {
                netns: self.netns.clone(),
                netns_pid,
            },
            // `persist` and `root` are `tune apply --persist --root`.
            config: super::persist::ConfigArgs::new(
                self.root.clone().unwrap_or_else(|| PathBuf::from("/")),
                self.persist.unwrap_or(false),
            ),
        })
    }

    /// `confirm_within` as `tune apply --confirm-within`; with `persist` it is refused,
    /// as `tune apply` refuses it.
    fn confirm_args(&self) -> Result<Option<super::confirm::ConfirmArgs>> {
        let Some(within) = &self.confirm_within else {
            return Ok(None);
        };
        if self.persist == Some(true) {
            bail!(
                "confirm_within cannot be combined with persist: the files would be written before the confirm, so a reboot before it would keep the change; nothing was changed"
            );
        }
        let args = super::confirm::ConfirmArgs::within(within)
            .map_err(|e| anyhow!("confirm_within: {e:#}"))?;
        Ok(Some(args))
    }
}

fn execute(state_dir: &Path, inv: &Invocation) -> Result<Value> {
    let confirm = inv.options.confirm_args()?;
    let sources = inv.options.sources()?;
    match inv.options.state.unwrap_or_default() {
        State::Applied => applied(state_dir, &sources, confirm.as_ref(), inv.check_mode),
        State::RolledBack => rolled_back(state_dir, &sources.netns, inv.check_mode),
        State::Confirmed => confirmed(state_dir, inv.check_mode),
    }
}

/// One Ansible diff entry per change, so `--diff` shows each before and after.
fn diff(changes: &[Change], ns: Option<&NetnsRecord>, backward: bool) -> Vec<Value> {
    let place = ns.map(|ns| format!(" in {ns}")).unwrap_or_default();
    changes
        .iter()
        .map(|c| {
            let m = if backward {
                c.mutation.inverse()
            } else {
                c.mutation.clone()
            };
            let shown = |s: String| {
                if s == crate::plan::ABSENT {
                    String::new()
                } else if s.ends_with('\n') {
                    s
                } else {
                    s + "\n"
                }
            };
            let header = format!("{}{place}", m.resource());
            json!({
                "before_header": header,
                "after_header": header,
                "before": shown(m.before()),
                "after": shown(m.after()),
            })
        })
        .collect()
}

/// Findings whose fix is neither planned, in effect, nor report-only are warnings:
/// undecided, blocked, and any status added later (e.g. one that needs input) by the
/// name the JSON plan gives it.
// WIRE: persistence conflicts (the `--persist` feature) belong here too.
fn warnings(plan: &Plan) -> Vec<String> {
    plan.findings
        .iter()
        .filter_map(|f| {
            let status = super::openmetrics::status_name(&f.fix);
            if matches!(status.as_str(), "planned" | "in_effect" | "report_only") {
                return None;
            }
            let mut line = format!("{}/{}: {status}", f.finding.playbook, f.finding.rule);
            if !f.finding.unknown.is_empty() {
                line.push_str(&format!(" ({})", f.finding.unknown.join("; ")));
            }
            Some(line)
        })
        .collect()
}

fn plan_here(set: &PlaybookSet, sources: &Sources) -> Result<Plan> {
    let ns = sources.netns.resolve()?;
    let mut plan = netns::run_in(ns.as_ref(), || {
        make_plan(
            set,
            None,
            &Default::default(),
            &sources.config,
            &Default::default(),
        )
    })?;
    plan.netns = ns;
    Ok(plan)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn applied(
    state_dir: &Path,
    sources: &Sources,
    confirm: Option<&super::confirm::ConfirmArgs>,
    check_mode: bool,
) -> Result<Value> {
    let set = load(sources)?;
    let plan = plan_here(&set, sources)?;
    if !plan.errors.is_empty() {
        bail!(
            "the plan has errors and cannot be applied: {}",
            plan.errors.join("; ")
        );
    }
    let ns = plan.netns.as_ref();
    let mut result = json!({
        "changed": !plan.changes.is_empty(),
        "diff": diff(&plan.changes, ns, false),
        "findings": plan.findings,
        "warnings": warnings(&plan),
        "plan": plan,
    });
    let n = plan.changes.len();
    if n == 0 {
        result["msg"] = json!("nothing to change");
        return Ok(result);
    }
    if check_mode {
        result["msg"] = json!(format!("{n} change(s) would be applied (check mode)"));
        return Ok(result);
    }
    if !is_root() {
        bail!("applying needs root (become: true); nothing was changed");
    }
    let mut checks = match confirm {
        Some(args) => Some(super::confirm::preflight(args, state_dir)?),
        None => None,
    };
    let state = StateDir::open(state_dir)?;
    // The namespace the facts were read in, also when none was named (as `tune apply`
    // records it), so a rollback from another namespace is refused.
    let recorded = netns::identity(ns)?;
    let report = netns::run_in(Some(&recorded), || {
        apply::apply(
            &state,
            &mut SystemExecutor,
            &plan.hostname,
            Some(&recorded),
            &plan.changes,
        )
    })?;
    remember(&state, report.transaction)?;
    if let Some(checks) = checks.as_mut() {
        super::confirm::arm(&state, checks, &report)?;
        if let Some(deadline) = checks.deadline() {
            result["deadline"] = json!(super::render::time(deadline));
            result["deadline_unix"] = json!(deadline);
        }
    }
    result["transaction"] = json!(report.transaction);
    result["steps"] = json!(report.steps);
    match report.status {
        Status::Applied => {
            result["msg"] = json!(format!(
                "applied {n} change(s) in transaction {}",
                report.transaction
            ));
            Ok(result)
        }
        Status::FailedRolledBack => {
            result["changed"] = json!(false);
            Ok(failed(
                result,
                "apply failed; every completed step was rolled back",
                &report,
            ))
        }
        _ => Ok(failed(
            result,
            "apply failed and some steps could not be undone: look at the system",
            &report,
        )),
    }
}

fn failed(mut result: Value, what: &str, report: &Report) -> Value {
    let mut msg = format!("{what} (transaction {})", report.transaction);
    if let Some(e) = &report.error {
        msg.push_str(&format!(": {e}"));
    }
    if !report.undo_errors.is_empty() {
        msg.push_str(&format!("; not undone: {}", report.undo_errors.join("; ")));
    }
    result["failed"] = json!(true);
    result["msg"] = json!(msg);
    result
}

/// A result that changed nothing, with this message.
fn nothing(msg: String) -> Value {
    json!({ "changed": false, "diff": [], "msg": msg })
}

/// The state directory and the last transaction this module made, or the result
/// saying there is nothing to `verb`.
fn last_made(state_dir: &Path, verb: &str) -> Result<Result<(StateDir, u64), Value>> {
    let none = || {
        nothing(format!(
            "this module has applied no transaction: nothing to {verb}"
        ))
    };
    let Some(state) = StateDir::existing(state_dir)? else {
        return Ok(Err(none()));
    };
    let Some(&id) = recorded(&state)?.last() else {
        return Ok(Err(none()));
    };
    Ok(Ok((state, id)))
}

fn rolled_back(state_dir: &Path, asked: &NetnsArgs, check_mode: bool) -> Result<Value> {
    let (state, id) = match last_made(state_dir, "roll back")? {
        Ok(found) => found,
        Err(nothing) => return Ok(nothing),
    };
    let transaction = state.transaction(id)?;
    match transaction.status() {
        Status::Applied | Status::Interrupted | Status::NeedsAttention => {}
        status => {
            return Ok(nothing(format!(
                "the last transaction this module made ({id}) is {}: nothing to roll back",
                status.describe()
            )));
        }
    }
    let what = format!("transaction {id}");
    check_same_netns(asked, transaction.netns.as_ref(), &what)?;
    let ns = transaction.netns.as_ref();
    let steps: Vec<Change> = transaction
        .attempted_steps()
        .into_iter()
        .rev()
        .filter_map(|s| transaction.changes.get(s).cloned())
        .collect();
    let mut result = json!({
        "changed": true,
        "diff": diff(&steps, ns, true),
        "transaction": id,
    });
    if check_mode {
        result["msg"] = json!(format!("{what} would be rolled back (check mode)"));
        return Ok(result);
    }
    if !is_root() {
        bail!("rolling back needs root (become: true); nothing was changed");
    }
    if let Some(recorded) = ns {
        recorded.target()?.resolve().map_err(|e| {
            anyhow!("{what} was applied in {recorded}, which cannot be entered any more ({e:#}); nothing was changed")
        })?;
    }
    // Under the lock: the transaction is read again, so a concurrent apply or rollback
    // cannot slip in between the choice and the rollback.
    let lock = state.lock()?;
    let journals = state.transactions()?;
    journals.refuse_untrusted()?;
    let transaction = journals.get(id)?.clone();
    let warnings = journals.warnings();
    let report = netns::run_in(ns, || {
        apply::rollback(
            &state,
            &lock,
            &mut SystemExecutor,
            &transaction,
            false,
            warnings,
        )
    })?;
    result["steps"] = json!(report.steps);
    if report.status == Status::RolledBack {
        result["msg"] = json!(format!("{what} rolled back"));
        Ok(result)
    } else {
        Ok(failed(
            result,
            "rollback could not undo everything",
            &report,
        ))
    }
}

/// `state: confirmed`: confirms the last transaction this module made, if it is
/// pending confirmation (as `tune confirm ID`).
fn confirmed(state_dir: &Path, check_mode: bool) -> Result<Value> {
    use crate::apply::confirm::{self as confirm, Confirmation, Reason};
    let (state, id) = match last_made(state_dir, "confirm")? {
        Ok(found) => found,
        Err(nothing) => return Ok(nothing),
    };
    let status = state.transaction(id)?.status();
    if status != Status::PendingConfirmation {
        return Ok(nothing(format!(
            "the last transaction this module made ({id}) is {}: nothing to confirm",
            status.describe()
        )));
    }
    if check_mode {
        return Ok(json!({ "changed": true, "diff": [], "transaction": id,
            "msg": format!("transaction {id} would be confirmed (check mode)") }));
    }
    if !is_root() {
        bail!("confirming needs root (become: true); nothing was changed");
    }
    match confirm::confirm(&state, Some(id))? {
        Confirmation::Confirmed { id } => {
            Ok(json!({ "changed": true, "diff": [], "transaction": id,
            "msg": format!("transaction {id} confirmed: the changes are kept") }))
        }
        Confirmation::TooLate { id, deadline } => {
            let t = state.transaction(id)?;
            let report = confirm::roll_back_in_netns(&state, &t, &Reason::NotConfirmed)?;
            let result =
                json!({ "changed": true, "diff": [], "transaction": id, "steps": report.steps });
            Ok(failed(
                result,
                &format!(
                    "transaction {id} was not confirmed before its deadline ({}) and has been rolled back",
                    super::render::time(deadline)
                ),
                &report,
            ))
        }
    }
}

/// The module's record of the transactions it made.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Record {
    transactions: Vec<u64>,
}

fn recorded(state: &StateDir) -> Result<Vec<u64>> {
    let path = state.path.join(RECORD_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let record: Record = serde_json::from_str(&text)
                .with_context(|| format!("{} is damaged", path.display()))?;
            Ok(record.transactions)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Adds a transaction to the record, replacing the file atomically.
fn remember(state: &StateDir, id: u64) -> Result<()> {
    use std::io::Write;
    let mut record = Record {
        transactions: recorded(state)?,
    };
    record.transactions.push(id);
    let path = state.path.join(RECORD_FILE);
    let mut tmp = tempfile::NamedTempFile::new_in(&state.path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.write_all(serde_json::to_string(&record)?.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Invocation> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("args");
        std::fs::write(&path, text)?;
        read_invocation(&path)
    }

    #[test]
    fn ansible_keys_are_accepted_and_check_mode_is_read() {
        let inv = parse(
            r#"{"netns": "x", "_ansible_check_mode": true, "_ansible_diff": true,
                "_ansible_no_log": false, "_ansible_some_future_key": {"a": 1}}"#,
        )
        .unwrap();
        assert!(inv.check_mode);
        assert_eq!(inv.options.netns.as_deref(), Some("x"));
        let bolt = parse(r#"{"_noop": true, "_task": "tune", "_installdir": "/tmp/x"}"#).unwrap();
        assert!(bolt.check_mode);
        assert!(
            !parse(r#"{"_ansible_check_mode": false}"#)
                .unwrap()
                .check_mode
        );
    }

    #[test]
    fn unknown_options_and_bad_values_are_clear_errors() {
        let err = parse(r#"{"playbook": ["x"]}"#).err().unwrap();
        assert!(
            format!("{err:#}").contains("unknown field `playbook`"),
            "{err:#}"
        );
        let err = parse(r#"{"state": "present"}"#).err().unwrap();
        assert!(format!("{err:#}").contains("unknown variant"), "{err:#}");
        let err = parse("[1]").err().unwrap();
        assert!(format!("{err:#}").contains("JSON object"), "{err:#}");
        let inv = parse(r#"{"vars": {"x": [1]}}"#).unwrap();
        assert!(inv.options.sources().is_err());
        let inv = parse(r#"{"netns_pid": "12a"}"#).unwrap();
        assert!(inv.options.sources().is_err());
    }

    #[test]
    fn persist_root_and_confirm_within_are_read() {
        let inv = parse(r#"{"persist": true, "root": "/tmp"}"#).unwrap();
        assert!(inv.options.confirm_args().unwrap().is_none());
        let config = inv.options.sources().unwrap().config;
        assert!(config.persist);
        assert_eq!(config.root, PathBuf::from("/tmp"));
        let inv = parse(r#"{"confirm_within": "5m"}"#).unwrap();
        assert!(inv.options.confirm_args().unwrap().is_some());
        let inv = parse(r#"{"confirm_within": "soon"}"#).unwrap();
        assert!(inv.options.confirm_args().is_err());
        let inv = parse(r#"{"persist": true, "confirm_within": "5m"}"#).unwrap();
        let err = inv.options.confirm_args().unwrap_err();
        assert!(format!("{err:#}").contains("cannot be combined with persist"));
        let inv = parse(r#"{"persist": false, "confirm_within": null}"#).unwrap();
        assert!(inv.options.confirm_args().unwrap().is_none());
    }
}
