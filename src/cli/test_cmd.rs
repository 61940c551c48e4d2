//! `tune test [PATH...]`: playbook tests, run the way `opa test` runs policy tests.
//!
//! A playbook directory may hold test cases next to its playbooks:
//!
//! ```text
//! playbooks/
//!   conntrack.yml ...
//!   tests/
//!     conntrack-fault/
//!       facts.json     a facts snapshot (`tune facts --format json`), replayed as `plan --facts`
//!       expect.yml     the expected outcome
//! ```
//!
//! Each case plans with every playbook of the directory against its facts and compares
//! the outcome with `expect.yml`:
//!
//! ```yaml
//! description: what the case shows      # optional, kept by --bless
//! vars: {conntrack_max: 2097152}        # optional --var overrides, kept by --bless
//! kernel_log: kern.log                   # optional saved kernel log in the case folder,
//!                                        # replayed over facts.json (`--kernel-log`)
//! fires: [conntrack/conntrack-near-full]   # fired, changes planned
//! fixed: []                              # fired, fix already in effect
//! reported: []                           # fired, report-only rule
//! undecided: []                          # facts unknown
//! blocked: []                            # fired, fix could not be planned
//! needs_input: []                        # fired, fix needs input (e.g. a --var)
//! quiet: [ephemeral-ports/narrow-port-range, ...]   # did not fire
//! changes:                               # the exact changes, in order
//!   - "sysctl:net.netfilter.nf_conntrack_max: 262144 → 1048576"
//! errors: []                             # plan errors
//! ```
//!
//! A case may also hold `expected.txt` / `expected.json`: the whole output of `tune plan
//! --detailed-exitcode` (its exit code first, the case path as `CASE`, `made_from` left
//! out), compared with a diff and rewritten by `--bless`. Cases outside a playbook
//! directory (tests/golden) run with the bundled playbooks.
//!
//! A case folder may hold its own `playbooks/`, used instead of the directory's (for
//! cases about how playbooks combine). When the playbooks are refused (`check`), the
//! outcome is only those `errors`.
//!
//! Every rule of the directory is in exactly one list, so a new rule that fires where
//! it should not fails every case that does not expect it. `--bless` writes the
//! outcome. A PATH is a playbook directory (all its cases) or one case directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::annotate::{self, Annotation, Case, ReportFormat, Severity};
use super::{exit, print_out, read_facts_file};
use crate::plan::mutation::Mutation;
use crate::plan::{self, FixStatus, Plan};
use crate::playbook::{self, LoadedPlaybook};

/// What a case expects (the file `expect.yml`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Expect {
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    vars: BTreeMap<String, String>,
    /// A saved kernel log (relative to the case) replayed over the snapshot, as
    /// `plan --facts facts.json --kernel-log FILE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    kernel_log: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    fires: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    fixed: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    reported: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    undecided: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    blocked: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    needs_input: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    quiet: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    changes: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<String>,
}

impl Expect {
    /// The outcome part (what `--bless` rewrites), as YAML for comparing and diffing.
    fn outcome_yaml(&self) -> String {
        let outcome = Expect {
            description: None,
            vars: BTreeMap::new(),
            kernel_log: None,
            ..self.clone()
        };
        serde_yaml::to_string(&outcome).unwrap_or_default()
    }
}

/// The outcome of a plan, in the words of `expect.yml`.
fn outcome(playbooks: &[LoadedPlaybook], plan: &Plan) -> Expect {
    let mut out = Expect::default();
    for pf in &plan.findings {
        let id = format!("{}/{}", pf.finding.playbook, pf.finding.rule);
        let list = match pf.fix {
            FixStatus::Planned => &mut out.fires,
            FixStatus::InEffect => &mut out.fixed,
            FixStatus::ReportOnly => &mut out.reported,
            FixStatus::Undecided => &mut out.undecided,
            FixStatus::Blocked => &mut out.blocked,
            FixStatus::NeedsInput => &mut out.needs_input,
        };
        list.push(id);
    }
    for pb in playbooks {
        for rule in &pb.playbook.rules {
            let id = format!("{}/{}", pb.playbook.name, rule.id);
            let seen = plan
                .findings
                .iter()
                .any(|f| f.finding.playbook == pb.playbook.name && f.finding.rule == rule.id);
            if !seen {
                out.quiet.push(id);
            }
        }
    }
    for list in [
        &mut out.fires,
        &mut out.fixed,
        &mut out.reported,
        &mut out.undecided,
        &mut out.blocked,
        &mut out.needs_input,
        &mut out.quiet,
    ] {
        list.sort();
    }
    out.changes = plan
        .changes
        .iter()
        .map(|c| change_line(&c.mutation))
        .collect();
    out.errors.clone_from(&plan.errors);
    out
}

/// A change as one exact line: `resource: before → after`; for an environment file,
/// the lines it removes and adds (the rest of the file is kept byte for byte).
fn change_line(m: &Mutation) -> String {
    if let Mutation::File { before, after, .. } = m {
        let (old, new) = (
            before.as_deref().unwrap_or(""),
            after.as_deref().unwrap_or(""),
        );
        let diff = similar::TextDiff::from_lines(old, new);
        let side = |tag: similar::ChangeTag| {
            let lines: Vec<String> = diff
                .iter_all_changes()
                .filter(|c| c.tag() == tag)
                .map(|c| c.value().trim_end_matches(['\r', '\n']).to_owned())
                .collect();
            if lines.is_empty() {
                "(nothing)".to_owned()
            } else {
                lines.join(" / ")
            }
        };
        let (removed, added) = (
            side(similar::ChangeTag::Delete),
            side(similar::ChangeTag::Insert),
        );
        return format!("{}: {removed} → {added}", m.resource());
    }
    format!(
        "{}: {} → {}",
        m.resource(),
        m.before_label(),
        m.after_label()
    )
}

/// One case directory and the playbook directory it belongs to (`None`: the bundled
/// playbooks).
struct CaseDir {
    playbooks: Option<PathBuf>,
    dir: PathBuf,
}

impl CaseDir {
    fn name(&self) -> String {
        self.dir.display().to_string()
    }

    fn playbooks_name(&self) -> String {
        self.playbooks.as_ref().map_or_else(
            || "the bundled playbooks".to_owned(),
            |p| p.display().to_string(),
        )
    }
}

/// A case's own `playbooks/` folder, which replaces the directory's playbooks.
fn own_playbooks(case: &Path) -> Option<PathBuf> {
    let own = case.join("playbooks");
    own.is_dir().then_some(own)
}

/// Whether `dir` holds playbook files itself.
fn has_playbooks(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.filter_map(Result::ok).any(|e| {
            let p = e.path();
            p.is_file() && matches!(p.extension().and_then(|x| x.to_str()), Some("yml" | "yaml"))
        })
    })
}

fn cases_of(path: &Path) -> Result<Vec<CaseDir>> {
    if path.join("expect.yml").is_file() || path.join("facts.json").is_file() {
        // A case in `DIR/tests/` belongs to DIR; a case anywhere else (tests/golden)
        // to the bundled playbooks.
        let parent = path
            .parent()
            .filter(|p| p.file_name() == Some("tests".as_ref()));
        let playbooks = parent
            .and_then(Path::parent)
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .map(Path::to_path_buf);
        return Ok(vec![CaseDir {
            playbooks: own_playbooks(path).or(playbooks),
            dir: path.to_path_buf(),
        }]);
    }
    if !path.is_dir() {
        bail!(
            "{}: not a playbook directory (tune test takes directories holding playbooks and a tests/ folder, or one case directory)",
            path.display()
        );
    }
    let tests = path.join("tests");
    // A directory of cases without playbooks (tests/golden): they run with the
    // bundled playbooks, or each with its own `playbooks/`.
    let bundled = !tests.is_dir() && !has_playbooks(path);
    let tests = if bundled { path.to_path_buf() } else { tests };
    let entries = std::fs::read_dir(&tests).with_context(|| {
        format!(
            "{}: no test cases (expected {})",
            path.display(),
            tests.display()
        )
    })?;
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("facts.json").is_file())
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        bail!(
            "{}: no test cases (no folder with a facts.json)",
            tests.display()
        );
    }
    Ok(dirs
        .into_iter()
        .map(|dir| CaseDir {
            playbooks: own_playbooks(&dir).or_else(|| (!bundled).then(|| path.to_path_buf())),
            dir,
        })
        .collect())
}

/// Plans a case and returns (expected, got); `Err` when the case cannot run.
fn run_case(case: &CaseDir, playbooks: &[LoadedPlaybook]) -> Result<(Option<Expect>, Expect)> {
    let expect_path = case.dir.join("expect.yml");
    let expect: Option<Expect> = match std::fs::read_to_string(&expect_path) {
        Ok(text) => {
            Some(serde_yaml::from_str(&text).with_context(|| {
                format!("{}: not a test case expectation", expect_path.display())
            })?)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", expect_path.display())),
    };
    let vars = expect.as_ref().map(|e| e.vars.clone()).unwrap_or_default();
    for name in vars.keys() {
        if !playbooks
            .iter()
            .any(|pb| pb.playbook.variables.contains_key(name))
        {
            bail!(
                "vars: no playbook of {} declares {name:?}",
                case.playbooks_name()
            );
        }
    }
    let (resolved, problems) = playbook::check_set(playbooks, &vars);
    if !problems.is_empty() {
        // A case may expect the playbooks to be refused (what `plan` would say), with
        // paths relative to the playbook directory so the case does not depend on
        // where it runs.
        let prefix = format!("{}/", case.playbooks_name());
        let errors = problems
            .iter()
            .map(|d| d.to_string().replacen(&prefix, "", 1))
            .collect();
        return Ok((
            expect,
            Expect {
                errors,
                ..Expect::default()
            },
        ));
    }
    let pairs: Vec<_> = playbooks
        .iter()
        .filter_map(|pb| resolved.get(&pb.playbook.name).map(|v| (pb, v)))
        .collect();
    let mut facts = read_facts_file(&case.dir.join("facts.json"))?;
    if let Some(log) = expect.as_ref().and_then(|e| e.kernel_log.as_deref()) {
        let path = case.dir.join(log);
        let saved = crate::facts::kmsg_file::open(&path).map_err(|e| anyhow::anyhow!(e))?;
        let options = crate::facts::GatherOptions {
            kernel_log: Some((path.display().to_string(), saved)),
            ..Default::default()
        };
        crate::facts::replay_kernel_log(
            &mut facts,
            &crate::facts::FactRequest::for_playbooks(&pairs),
            &options,
        );
    }
    let plan = plan::plan_from_facts(&pairs, &facts);
    Ok((expect, outcome(playbooks, &plan)))
}

fn diff(want: &str, got: &str) -> String {
    similar::TextDiff::from_lines(want, got)
        .unified_diff()
        .header("expect.yml", "outcome")
        .to_string()
}

/// The 1-based line of the written `expect.yml` where the outcome first differs from
/// it (the file as `--bless` would write it, compared line by line), for annotations.
fn first_difference(written: &str, expect: &Expect, got: Expect) -> usize {
    let blessed = Expect {
        description: expect.description.clone(),
        vars: expect.vars.clone(),
        kernel_log: expect.kernel_log.clone(),
        ..got
    };
    let blessed = serde_yaml::to_string(&blessed).unwrap_or_default();
    let diff = similar::TextDiff::from_lines(written, &blessed);
    diff.ops()
        .iter()
        .find_map(|op| match *op {
            similar::DiffOp::Equal { .. } => None,
            similar::DiffOp::Delete { old_index, .. }
            | similar::DiffOp::Replace { old_index, .. } => Some(old_index + 1),
            // Lines missing after line `old_index`.
            similar::DiffOp::Insert { old_index, .. } => Some(old_index.max(1)),
        })
        .unwrap_or(1)
}

/// The result of one case: `None` when it passed, else what to show.
struct Ran {
    name: String,
    failure: Option<String>,
    file: String,
    /// Where in `file` the outcome first differs.
    line: usize,
}

pub fn run(paths: &[PathBuf], bless: bool, format: ReportFormat) -> Result<i32> {
    let paths = if paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        paths.to_vec()
    };
    let mut cases = Vec::new();
    for path in &paths {
        cases.extend(cases_of(path)?);
    }
    let mut loaded: BTreeMap<Option<PathBuf>, Result<Vec<LoadedPlaybook>, String>> =
        BTreeMap::new();
    let mut ran = Vec::new();
    let mut text = String::new();
    for case in &cases {
        let playbooks = loaded.entry(case.playbooks.clone()).or_insert_with(|| {
            match &case.playbooks {
                Some(dir) => playbook::load_paths(std::slice::from_ref(dir)),
                None => playbook::load_bundled(),
            }
            .map_err(|d| d.to_string())
        });
        let result = match playbooks {
            Ok(playbooks) => run_case(case, playbooks).map_err(|e| format!("{e:#}")),
            Err(e) => Err(e.clone()),
        };
        // The full-output snapshots, when the case has them.
        let snapshots = match &result {
            Ok((expect, _)) => snapshots(case, expect.as_ref(), bless),
            Err(_) => Ok(None),
        };
        let file = case.dir.join("expect.yml").display().to_string();
        let mut line = 1;
        let failure = match result {
            Err(e) => Some(format!("cannot run: {e}")),
            Ok((expect, got)) if bless => {
                let blessed = Expect {
                    description: expect.as_ref().and_then(|e| e.description.clone()),
                    kernel_log: expect.as_ref().and_then(|e| e.kernel_log.clone()),
                    vars: expect.map(|e| e.vars).unwrap_or_default(),
                    ..got
                };
                let yaml = serde_yaml::to_string(&blessed)?;
                std::fs::write(&file, yaml).with_context(|| format!("cannot write {file}"))?;
                None
            }
            Ok((None, _)) => Some("no expect.yml (write it with `tune test --bless`)".to_owned()),
            Ok((Some(expect), got)) => {
                let (want_yaml, got_yaml) = (expect.outcome_yaml(), got.outcome_yaml());
                if want_yaml != got_yaml {
                    let written = std::fs::read_to_string(&file).unwrap_or_default();
                    line = first_difference(&written, &expect, got);
                }
                (want_yaml != got_yaml).then(|| diff(&want_yaml, &got_yaml))
            }
        };
        let failure = match (failure, snapshots) {
            (f, Ok(None)) => f,
            (None, Ok(Some(d)) | Err(d)) => Some(d),
            (Some(f), Ok(Some(d)) | Err(d)) => Some(format!("{f}\n{d}")),
        };
        let verdict = match (&failure, bless) {
            (None, true) => "blessed",
            (None, false) => "ok",
            (Some(_), _) => "FAIL",
        };
        if format == ReportFormat::Text {
            text.push_str(&format!("{verdict:<7} {}\n", case.name()));
            if let Some(f) = &failure {
                for line in f.lines() {
                    text.push_str(&format!("    {line}\n"));
                }
            }
        }
        ran.push(Ran {
            name: case.name(),
            failure,
            file,
            line,
        });
    }
    let failed = ran.iter().filter(|r| r.failure.is_some()).count();
    let summary = if failed == 0 {
        format!("PASS: {}/{}\n", ran.len(), ran.len())
    } else {
        format!("FAIL: {failed}/{} case(s) failed\n", ran.len())
    };
    match format {
        ReportFormat::Text => text.push_str(&summary),
        ReportFormat::Github => {
            for r in &ran {
                if let Some(f) = &r.failure {
                    text.push_str(&annotate::github(&Annotation {
                        severity: Severity::Error,
                        file: r.file.clone(),
                        line: r.line,
                        column: 0,
                        title: Some(format!("tune test: {}", r.name)),
                        message: f.clone(),
                    }));
                }
            }
            text.push_str(&summary);
        }
        ReportFormat::Junit => {
            let cases: Vec<Case> = ran
                .iter()
                .map(|r| Case {
                    name: r.name.clone(),
                    failures: r.failure.iter().cloned().collect(),
                })
                .collect();
            text = annotate::junit("tune test", &cases);
        }
    }
    print_out(&text)?;
    Ok(if failed == 0 { exit::OK } else { exit::ERROR })
}

/// The snapshots a case may hold: the whole output of `tune plan --detailed-exitcode`
/// (its exit code on the first line) in each format.
const SNAPSHOTS: [(&str, &str); 2] = [("text", "expected.txt"), ("json", "expected.json")];

/// Compares (or with `bless` rewrites) the snapshots the case holds; `Ok(None)` when
/// they match or there are none, `Ok(Some(diff))` when one differs.
fn snapshots(
    case: &CaseDir,
    expect: Option<&Expect>,
    bless: bool,
) -> Result<Option<String>, String> {
    let mut diffs = String::new();
    for (format, file) in SNAPSHOTS {
        let path = case.dir.join(file);
        if !path.is_file() {
            continue;
        }
        let got = plan_output(case, expect, format)?;
        if bless {
            std::fs::write(&path, &got)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            continue;
        }
        let want = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if want != got {
            diffs.push_str(
                &similar::TextDiff::from_lines(&want, &got)
                    .unified_diff()
                    .header(file, "tune plan")
                    .to_string(),
            );
        }
    }
    Ok((!diffs.is_empty()).then_some(diffs))
}

/// `tune plan --detailed-exitcode --facts CASE/facts.json` with the case's playbooks and
/// vars, run as its own process exactly as a user runs it, as `exit: N` and the output
/// (stdout then stderr), with the case's path shown as `CASE` and without `made_from`.
fn plan_output(case: &CaseDir, expect: Option<&Expect>, format: &str) -> Result<String, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find tune itself: {e}"))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["plan", "--detailed-exitcode", "--facts"])
        .arg(case.dir.join("facts.json"));
    if let Some(dir) = &case.playbooks {
        cmd.arg("-p").arg(dir);
    }
    for (k, v) in expect.map(|e| &e.vars).into_iter().flatten() {
        cmd.arg("--var").arg(format!("{k}={v}"));
    }
    if let Some(log) = expect.and_then(|e| e.kernel_log.as_deref()) {
        cmd.arg("--kernel-log").arg(case.dir.join(log));
    }
    cmd.args(["--format", format])
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null());
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run tune plan: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .replace(&case.dir.display().to_string(), "CASE");
    Ok(format!(
        "exit: {}\n{}",
        out.status.code().unwrap_or(-1),
        without_made_from(&text)
    ))
}

/// The plan without its last field, `made_from` (the playbooks' text and digests and the
/// namespace's inode): they are this host's and the bundled files', not the case's.
fn without_made_from(text: &str) -> String {
    let Some(start) = text.find(",\n  \"made_from\": ") else {
        return text.to_owned();
    };
    match text[start..].find("\n}\n") {
        Some(len) => format!("{}{}", &text[..start], &text[start + len..]),
        None => text.to_owned(),
    }
}
