//! Playbooks: the model ([`model`]), loading with line/column errors, variables, and
//! semantic validation.
//!
//! Loading parses in two stages, as ripgrep does with its flags: serde reads the text
//! into the typed model (syntax, unknown keys and wrong types fail here, with the
//! location serde_yaml reports), then [`check`] looks at meaning (duplicate ids,
//! undefined variables, bad sysctl keys, regexes, durations). Nothing here touches the
//! system except reading the playbook files, and `check_host` (used by
//! `tune validate` only) which looks whether sysctl keys exist on this host.

// Generated from playbooks/*.yml by const_form's test; rustfmt leaves it as written.
#[cfg(not(tune_regenerate))]
#[rustfmt::skip]
mod bundled_form;
// A model change can leave the generated file unable to compile, and so unable to be
// regenerated: `RUSTFLAGS='--cfg tune_regenerate' TUNE_BLESS=1 cargo test --lib
// bundled_form_is_what` builds without it (every bundled playbook parsed) and rewrites it.
#[cfg(tune_regenerate)]
mod bundled_form {
    pub(super) const FORMS: &[(&str, u64, super::Build)] = &[];
}
mod check_jvm;
#[cfg(test)]
mod const_form;
pub mod depth;
pub mod lint;
pub mod model;
pub mod schema_hints;
pub mod vars;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use model::*;

use crate::kernel::sysctl::SysctlKey;
pub use vars::{Vars, expand, scalar_text};

/// Largest playbook file read, in bytes; anything larger is refused before parsing.
pub const MAX_PLAYBOOK_BYTES: u64 = 1024 * 1024;

/// The playbooks shipped inside the binary.
pub const BUNDLED: &[(&str, &str)] = &[
    (
        "conntrack.yml",
        include_str!("../../playbooks/conntrack.yml"),
    ),
    (
        "ephemeral-ports.yml",
        include_str!("../../playbooks/ephemeral-ports.yml"),
    ),
    (
        "time-wait.yml",
        include_str!("../../playbooks/time-wait.yml"),
    ),
    (
        "listen-backlog.yml",
        include_str!("../../playbooks/listen-backlog.yml"),
    ),
    ("jvm-heap.yml", include_str!("../../playbooks/jvm-heap.yml")),
    ("netem.yml", include_str!("../../playbooks/netem.yml")),
    ("mtu.yml", include_str!("../../playbooks/mtu.yml")),
    (
        "time-wait-overflow.yml",
        include_str!("../../playbooks/time-wait-overflow.yml"),
    ),
    ("softnet.yml", include_str!("../../playbooks/softnet.yml")),
    (
        "conntrack-sizing.yml",
        include_str!("../../playbooks/conntrack-sizing.yml"),
    ),
    ("softirq.yml", include_str!("../../playbooks/softirq.yml")),
    ("nic-ring.yml", include_str!("../../playbooks/nic-ring.yml")),
];

/// For each of [`BUNDLED`], the function that builds its model without parsing
/// (`bundled_form.rs`, generated from the YAML), when that code was generated from the
/// YAML bundled now: decided at compile time by the FNV-1a digest of the text. A stale
/// form is `None`, and that playbook is parsed (a test fails until it is regenerated).
pub(crate) const BUILT: [Option<Build>; BUNDLED.len()] = built_forms();

/// Builds one bundled playbook's model (a function of `bundled_form.rs`).
type Build = fn() -> Playbook;

const fn built_forms() -> [Option<Build>; BUNDLED.len()] {
    let mut out: [Option<Build>; BUNDLED.len()] = [None; BUNDLED.len()];
    let mut i = 0;
    while i < BUNDLED.len() {
        // The digest of the whole text names the form: the file name is in FORMS
        // for readers only.
        let digest = fnv1a(BUNDLED[i].1);
        let mut j = 0;
        while j < bundled_form::FORMS.len() {
            let (_, form_digest, build) = bundled_form::FORMS[j];
            if form_digest == digest {
                out[i] = Some(build);
            }
            j += 1;
        }
        i += 1;
    }
    out
}

/// FNV-1a, 64 bits: a compile-time digest telling a generated form's YAML from another.
const fn fnv1a(text: &str) -> u64 {
    let bytes = text.as_bytes();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

/// Loads a playbook's text: the built model when the text is exactly a bundled
/// playbook's and its form is current (a copy such as `-p playbooks/conntrack.yml`
/// included: the same bytes give the same model), else parsed.
fn load_text(source: String, text: String) -> Result<LoadedPlaybook, Diagnostic> {
    let built = BUNDLED
        .iter()
        .zip(BUILT)
        .find(|((_, bundled), _)| *bundled == text)
        .and_then(|(_, build)| build);
    match built {
        Some(build) => Ok(LoadedPlaybook {
            source,
            text,
            playbook: build(),
        }),
        None => parse(&source, &text),
    }
}

/// A playbook with where it came from and its text (for locating errors).
#[derive(Debug, Clone)]
pub struct LoadedPlaybook {
    /// A path, or `bundled:NAME` for the embedded ones.
    pub source: String,
    pub text: String,
    pub playbook: Playbook,
}

/// A problem in a playbook, at a place in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub source: String,
    /// 1-based; 0 when the problem is the file as a whole.
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.source, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.source, self.line, self.column, self.message
            )
        }
    }
}

/// Errors of a load or a check, printed one per line.
#[derive(Debug, Clone)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

impl std::error::Error for Diagnostics {}

/// Parses one playbook's text.
pub fn parse(source: &str, text: &str) -> Result<LoadedPlaybook, Diagnostic> {
    let whole = |message: String| Diagnostic {
        source: source.to_owned(),
        line: 0,
        column: 0,
        message,
    };
    if text.len() as u64 > MAX_PLAYBOOK_BYTES {
        return Err(whole(format!(
            "playbook is {} bytes; the limit is {MAX_PLAYBOOK_BYTES}",
            text.len()
        )));
    }
    let has_content = text
        .lines()
        .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#') && l.trim() != "---");
    if !has_content {
        return Err(whole(
            "empty playbook: expected a mapping with `name`, `description` and `rules`".into(),
        ));
    }
    if let Some((line, column, depth)) = depth::too_deep(text) {
        return Err(Diagnostic {
            source: source.to_owned(),
            line,
            column,
            message: format!(
                "nested {depth} levels deep here; a playbook may nest at most {} levels",
                depth::MAX_DEPTH
            ),
        });
    }
    match serde_yaml::from_str::<Playbook>(text) {
        Ok(playbook) => Ok(LoadedPlaybook {
            source: source.to_owned(),
            text: text.to_owned(),
            playbook,
        }),
        Err(e) => {
            let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            // serde_yaml appends " at line N column M" to some messages; the location
            // is printed in front already.
            let mut message = e.to_string();
            if let Some(idx) = message.find(" at line ") {
                message.truncate(idx);
            }
            Err(Diagnostic {
                source: source.to_owned(),
                line,
                column,
                message,
            })
        }
    }
}

/// The bundled playbooks (they are tested to parse and check cleanly).
pub fn load_bundled() -> Result<Vec<LoadedPlaybook>, Diagnostics> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (name, text) in BUNDLED {
        match load_text(format!("bundled:{name}"), (*text).to_owned()) {
            Ok(pb) => out.push(pb),
            Err(d) => errors.push(d),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(Diagnostics(errors))
    }
}

/// Loads files and directories (their `*.yml` / `*.yaml` files, sorted, not recursive).
/// Every file is read and parsed so that all errors are reported at once.
pub fn load_paths(paths: &[PathBuf]) -> Result<Vec<LoadedPlaybook>, Diagnostics> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match expand_path(path) {
            Ok(files) => {
                for file in files {
                    match read_one(&file) {
                        Ok(pb) => out.push(pb),
                        Err(d) => errors.push(d),
                    }
                }
            }
            Err(d) => errors.push(d),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(Diagnostics(errors))
    }
}

fn expand_path(path: &Path) -> Result<Vec<PathBuf>, Diagnostic> {
    let err = |message: String| Diagnostic {
        source: path.display().to_string(),
        line: 0,
        column: 0,
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(io_message(&e)))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| err(io_message(&e)))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(err("directory holds no *.yml or *.yaml playbooks".into()));
    }
    Ok(files)
}

fn read_one(path: &Path) -> Result<LoadedPlaybook, Diagnostic> {
    let source = path.display().to_string();
    let err = |message: String| Diagnostic {
        source: source.clone(),
        line: 0,
        column: 0,
        message,
    };
    // One open: the size is checked on the file that is read, and the read stops one
    // byte past the limit, so a file that grows after the check cannot get in whole.
    let file = std::fs::File::open(path).map_err(|e| err(io_message(&e)))?;
    let len = file.metadata().map_err(|e| err(io_message(&e)))?.len();
    if len > MAX_PLAYBOOK_BYTES {
        return Err(err(format!(
            "playbook is {len} bytes; the limit is {MAX_PLAYBOOK_BYTES}"
        )));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, MAX_PLAYBOOK_BYTES + 1),
        &mut bytes,
    )
    .map_err(|e| err(io_message(&e)))?;
    if bytes.len() as u64 > MAX_PLAYBOOK_BYTES {
        return Err(err(format!(
            "playbook grew past the limit of {MAX_PLAYBOOK_BYTES} bytes while it was read"
        )));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        err(format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })?;
    load_text(source, text)
}

fn io_message(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Finds where things are in a playbook's text, for semantic errors (serde does not
/// keep spans once the model is built). Positions are those of the rule's `id:` line,
/// or of the first line after it that mentions the offending text.
struct Locator<'a> {
    source: &'a str,
    text: &'a str,
}

impl Locator<'_> {
    fn at(&self, offset: Option<usize>, message: String) -> Diagnostic {
        let (line, column) = match offset {
            Some(off) => {
                let before = &self.text[..off];
                let line = before.matches('\n').count() + 1;
                let column = off - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                (line, column)
            }
            None => (0, 0),
        };
        Diagnostic {
            source: self.source.to_owned(),
            line,
            column,
            message,
        }
    }

    /// Offset of the `id:` of a rule.
    fn rule(&self, id: &str) -> Option<usize> {
        self.rule_occurrence(id, 0)
    }

    /// Offset of the `nth` (0-based) rule with this id (duplicates are reported at the
    /// second one).
    fn rule_occurrence(&self, id: &str, nth: usize) -> Option<usize> {
        let mut seen = 0;
        let mut offset = 0;
        for line in self.text.split_inclusive('\n') {
            let trimmed = line.trim_start().trim_start_matches("- ").trim_start();
            if let Some(rest) = trimmed.strip_prefix("id:") {
                let value = rest.trim().trim_matches(|c| c == '"' || c == '\'');
                if value == id {
                    if seen == nth {
                        return line.find("id:").map(|i| offset + i);
                    }
                    seen += 1;
                }
            }
            offset += line.len();
        }
        None
    }

    /// Offset of `needle` at or after `from` (or anywhere, if not found after it).
    fn find(&self, from: Option<usize>, needle: &str) -> Option<usize> {
        let start = from.unwrap_or(0);
        self.text[start..]
            .find(needle)
            .map(|i| i + start)
            .or_else(|| self.text.find(needle))
            .or(from)
    }

    /// Offset of a top-level key such as `variables:`.
    fn top_key(&self, key: &str) -> Option<usize> {
        let mut offset = 0;
        for line in self.text.split_inclusive('\n') {
            if line.starts_with(&format!("{key}:")) {
                return Some(offset);
            }
            offset += line.len();
        }
        None
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Semantic checks of one playbook, with its variables as resolved (defaults, then
/// `--var` overrides), so that a bad override is an error here rather than an
/// undecided rule later. Returns every problem.
pub fn check(pb: &LoadedPlaybook, vars: &Vars) -> Vec<Diagnostic> {
    let loc = Locator {
        source: &pb.source,
        text: &pb.text,
    };
    let mut out = Vec::new();
    let p = &pb.playbook;
    if !valid_name(&p.name) {
        out.push(loc.at(
            loc.top_key("name"),
            format!(
                "playbook name {:?} must be 1-64 letters, digits, `-` or `_`",
                p.name
            ),
        ));
    }
    for name in p.variables.keys() {
        if !valid_name(name) {
            out.push(loc.at(
                loc.find(loc.top_key("variables"), name),
                format!("variable name {name:?} must be 1-64 letters, digits, `-` or `_`"),
            ));
        }
    }
    if p.rules.is_empty() {
        out.push(loc.at(loc.top_key("rules"), "playbook has no rules".into()));
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for rule in &p.rules {
        let occurrence = seen.entry(rule.id.as_str()).or_insert(0);
        let nth = *occurrence;
        *occurrence += 1;
        // Found in the text only for a problem to report (a scan of the whole text per
        // rule was 3% of a plan with four playbooks).
        let at = || loc.rule_occurrence(&rule.id, nth);
        if !valid_name(&rule.id) {
            out.push(loc.at(
                at().or(loc.top_key("rules")),
                format!(
                    "rule id {:?} must be 1-64 letters, digits, `-` or `_`",
                    rule.id
                ),
            ));
        }
        if seen[rule.id.as_str()] > 1 {
            out.push(loc.at(at(), format!("duplicate rule id {:?}", rule.id)));
        }
        let mut problems = Vec::new();
        check_condition(&rule.detect, vars, &mut problems);
        for action in &rule.fix {
            check_action(action, vars, &mut problems);
        }
        check_targets(rule, &mut problems);
        for (needle, message) in problems {
            let pos = if needle.is_empty() {
                at()
            } else {
                loc.find(at(), &needle)
            };
            out.push(loc.at(pos, format!("rule {}: {message}", rule.id)));
        }
    }
    out
}

/// (text to locate, message)
type Problem = (String, String);

fn check_key(key: &str, out: &mut Vec<Problem>) {
    if let Err(e) = SysctlKey::parse(key) {
        out.push((key.to_owned(), e));
    }
}

fn check_scalar(s: &Scalar, vars: &Vars, out: &mut Vec<Problem>) -> Option<String> {
    match scalar_text(s, vars) {
        Ok(v) => Some(v),
        Err(e) => {
            out.push((s.to_string(), e));
            None
        }
    }
}

fn check_compare(cmp: &Compare, what: &str, vars: &Vars, out: &mut Vec<Problem>) {
    let ops = cmp.operators();
    if ops.is_empty() {
        out.push((
            String::new(),
            format!(
                "{what} condition needs a comparison: equals, not_equals, below, above, at_least or at_most"
            ),
        ));
    }
    for (op, value) in ops {
        if let Some(text) = check_scalar(value, vars, out)
            && !matches!(op, CompareOp::Equals | CompareOp::NotEquals)
            && text.trim().parse::<f64>().is_err()
        {
            out.push((
                value.to_string(),
                format!(
                    "{what} comparison `{}` needs a number, got {text:?}",
                    op.symbol()
                ),
            ));
        }
    }
}

fn check_condition(c: &Condition, vars: &Vars, out: &mut Vec<Problem>) {
    match c {
        Condition::All(list) | Condition::Any(list) => {
            if list.is_empty() {
                out.push((
                    String::new(),
                    "`all` / `any` needs at least one condition".into(),
                ));
            }
            for c in list {
                check_condition(c, vars, out);
            }
        }
        Condition::Not(inner) => check_condition(inner, vars, out),
        Condition::Sysctl(s) => {
            check_key(&s.key, out);
            if let Some(other) = &s.ratio_of {
                check_key(other, out);
                if s.measure == Measure::RangeWidth {
                    out.push((
                        other.clone(),
                        "`ratio_of` cannot be combined with `measure: range_width`".into(),
                    ));
                }
            }
            check_compare(&s.compare(), "sysctl", vars, out);
        }
        Condition::Counter(cnt) => {
            let ok = cnt
                .name
                .split_once('.')
                .is_some_and(|(a, b)| valid_name(a) && valid_name(b));
            if !ok {
                out.push((
                    cnt.name.clone(),
                    format!(
                        "counter {:?} must be `Section.Name`, e.g. `TcpExt.ListenOverflows`",
                        cnt.name
                    ),
                ));
            }
            check_compare(&cnt.compare(), "counter", vars, out);
            check_counter_window(cnt, vars, out);
        }
        Condition::Sockets(s) => check_compare(&s.compare(), "sockets", vars, out),
        Condition::Softnet(s) => {
            check_compare(&s.compare(), "softnet", vars, out);
            check_sample_window(s.window.as_ref(), "softnet", vars, out);
        }
        Condition::SoftirqCpu(s) => {
            check_compare(&s.compare(), "softirq_cpu", vars, out);
            check_sample_window(s.window.as_ref(), "softirq_cpu", vars, out);
        }
        Condition::ListenQueue(_) => {}
        Condition::RxDrops(d) => {
            check_glob(&d.link, vars, out);
            check_compare(&d.compare(), "rx_drops", vars, out);
            check_sample_window(d.window.as_ref(), "rx_drops", vars, out);
        }
        Condition::ConntrackStat(c) => {
            if !valid_name(&c.name) {
                out.push((
                    c.name.clone(),
                    format!(
                        "conntrack_stat {:?} must be a column of /proc/net/stat/nf_conntrack, e.g. `drop`",
                        c.name
                    ),
                ));
            }
            check_compare(&c.compare(), "conntrack_stat", vars, out);
            check_sample_window(c.window.as_ref(), "conntrack_stat", vars, out);
        }
        Condition::Link(l) => {
            check_glob(&l.name, vars, out);
            for (op, value) in l.compare().operators() {
                check_number(value, &format!("link mtu `{}`", op.symbol()), vars, out);
            }
            if let Some(v) = &l.max_mtu_at_least {
                check_number(v, "link max_mtu_at_least", vars, out);
            }
        }
        Condition::Qdisc(q) => {
            check_glob(&q.link, vars, out);
            let thresholds = [
                ("loss_above", &q.loss_above),
                ("delay_above_ms", &q.delay_above_ms),
                ("jitter_above_ms", &q.jitter_above_ms),
                ("duplicate_above", &q.duplicate_above),
                ("corrupt_above", &q.corrupt_above),
                ("reorder_above", &q.reorder_above),
            ];
            for (name, value) in thresholds {
                let Some(value) = value else { continue };
                check_number(value, &format!("qdisc {name}"), vars, out);
                if q.kind.as_deref() != Some("netem") {
                    out.push((
                        name.to_owned(),
                        format!("qdisc `{name}` is a netem option: add `kind: netem`"),
                    ));
                }
            }
        }
        Condition::KernelLog(k) => {
            // A short plain-text pattern (most are) always compiles, well under the size
            // limit: compiling it here only to drop it cost 7% of a sysctl-playbook plan.
            let literal =
                k.pattern.len() <= 1024 && crate::domain::log_pattern::is_plain_text(&k.pattern);
            if !literal && let Err(e) = crate::domain::log_pattern::compile(&k.pattern) {
                out.push((k.pattern.clone(), format!("invalid pattern: {e}")));
            }
            check_window(&k.within, vars, out);
        }
        Condition::JvmHeap(j) => check_jvm::jvm_heap(j, vars, out),
        Condition::OomKill(k) => check_jvm::oom_kill(k, vars, out),
    }
}

/// A counter's sampling `window`: only with `measure: growth`, a duration up to 60s.
fn check_counter_window(cnt: &CounterCondition, vars: &Vars, out: &mut Vec<Problem>) {
    let Some(window) = &cnt.window else { return };
    if cnt.measure != CounterMeasure::Growth {
        out.push((
            window.clone(),
            "counter `window` needs `measure: growth` (a since-boot value has no window)".into(),
        ));
        return;
    }
    check_sample_window(Some(window), "counter", vars, out);
}

/// A sampling `window`: a duration above 0 and up to 60s.
fn check_sample_window(window: Option<&String>, what: &str, vars: &Vars, out: &mut Vec<Problem>) {
    let Some(window) = window else { return };
    match vars::expand(window, vars).map(|w| (humantime::parse_duration(&w), w)) {
        Err(e) => out.push((window.to_owned(), e)),
        Ok((Ok(d), _)) if !d.is_zero() && d.as_secs() <= 60 => {}
        Ok((Ok(_), w)) => out.push((
            window.clone(),
            format!("{what} `window: {w}` must be above 0 and at most 60s"),
        )),
        Ok((Err(e), w)) => out.push((
            window.clone(),
            format!("{what} `window: {w}` is not a duration ({e}); write e.g. 2s, 500ms"),
        )),
    }
}

/// A `within` window: a duration of at least one second.
fn check_window(within: &str, vars: &Vars, out: &mut Vec<Problem>) {
    match vars::expand(within, vars).map(|w| (humantime::parse_duration(&w), w)) {
        Err(e) => out.push((within.to_owned(), e)),
        Ok((Ok(d), _)) if d.as_secs() > 0 => {}
        Ok((Ok(_), _)) => {
            out.push((within.to_owned(), "`within` must be at least 1s".into()));
        }
        Ok((Err(e), w)) => out.push((
            within.to_owned(),
            format!("`within: {w}` is not a duration ({e}); write e.g. 1h, 30m"),
        )),
    }
}

fn check_glob(glob: &str, vars: &Vars, out: &mut Vec<Problem>) {
    match vars::expand(glob, vars) {
        Err(e) => out.push((glob.to_owned(), e)),
        Ok(text) => {
            if let Err(e) = glob::Pattern::new(&text) {
                out.push((glob.to_owned(), format!("bad glob {text:?}: {e}")));
            }
        }
    }
}

fn check_number(value: &Scalar, what: &str, vars: &Vars, out: &mut Vec<Problem>) {
    if let Some(text) = check_scalar(value, vars, out)
        && text.trim().parse::<f64>().is_err()
    {
        out.push((
            value.to_string(),
            format!("{what} needs a number, got {text:?}"),
        ));
    }
}

/// Whether a rule's detect has a condition of this kind outside `not` (link actions
/// act on what those conditions matched).
fn has_target(c: &Condition, want: fn(&Condition) -> bool) -> bool {
    match c {
        Condition::All(list) | Condition::Any(list) => list.iter().any(|c| has_target(c, want)),
        Condition::Not(_) => false,
        other => want(other),
    }
}

/// Checks of actions that need the rule's detect condition to choose their targets.
fn check_targets(rule: &Rule, out: &mut Vec<Problem>) {
    for action in &rule.fix {
        match action {
            Action::SetMtu(_) if !has_target(&rule.detect, |c| matches!(c, Condition::Link(_))) => {
                out.push((
                    "set_mtu".to_owned(),
                    "set_mtu acts on the links the rule's `link` conditions match; add one to `detect` (outside `not`)".to_owned(),
                ));
            }
            Action::SetMtu(m)
                if m.to_path
                    && !has_target(
                        &rule.detect,
                        |c| matches!(c, Condition::Link(l) if l.path_mismatch),
                    ) =>
            {
                out.push((
                    "to_path".to_owned(),
                    "set_mtu `to_path` sets the MTU a mismatch asks for; the rule's `link` condition needs `path_mismatch: true`".to_owned(),
                ));
            }
            Action::DeleteRootQdisc(_)
                if !has_target(&rule.detect, |c| matches!(c, Condition::Qdisc(_))) =>
            {
                out.push((
                    "delete_root_qdisc".to_owned(),
                    "delete_root_qdisc acts on the qdiscs the rule's `qdisc` conditions match; add one to `detect` (outside `not`)".to_owned(),
                ));
            }
            _ => {}
        }
    }
}

fn check_action(a: &Action, vars: &Vars, out: &mut Vec<Problem>) {
    match a {
        Action::SetEnv(e) => check_jvm::set_env(e, vars, out),
        Action::SetMtu(m) => match (&m.value, m.to_path) {
            (Some(value), false) => {
                if let Some(text) = check_scalar(value, vars, out) {
                    match text.trim().parse::<u32>() {
                        Ok(v) if v >= 68 => {}
                        _ => out.push((
                            value.to_string(),
                            format!("set_mtu needs an MTU of at least 68 bytes, got {text:?}"),
                        )),
                    }
                }
            }
            (None, true) => {}
            _ => out.push((
                "set_mtu".to_owned(),
                "set_mtu takes exactly one of `value` and `to_path: true`".to_owned(),
            )),
        },
        Action::SetRxRing(r) => check_glob(&r.link, vars, out),
        Action::DeleteRootQdisc(d) => {
            let ok = !d.kind.is_empty()
                && d.kind.len() <= 16
                && d.kind
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                out.push((d.kind.clone(), format!("{:?} is not a qdisc kind", d.kind)));
            }
        }
        Action::SetSysctl(s) => {
            check_key(&s.key, out);
            match s.mode() {
                Err(e) => out.push((s.key.clone(), e)),
                Ok((mode, value)) => {
                    if let Some(text) = check_scalar(value, vars, out) {
                        let ok = match mode {
                            SetMode::Value => true,
                            SetMode::AtLeast | SetMode::AtMost => {
                                text.trim().parse::<i64>().is_ok()
                            }
                            SetMode::WidenTo => crate::kernel::sysctl::parse_range(&text)
                                .is_some_and(|(lo, hi)| lo <= hi),
                        };
                        if !ok {
                            let need = if mode == SetMode::WidenTo {
                                "a `low high` range"
                            } else {
                                "an integer"
                            };
                            out.push((value.to_string(), format!("needs {need}, got {text:?}")));
                        }
                    }
                }
            }
        }
    }
}

/// Resolves every playbook's variables (defaults, then the `--var` overrides that the
/// playbook declares) and runs every check that needs no host: per playbook, then
/// across them. Empty when all is well.
pub fn check_set(
    playbooks: &[LoadedPlaybook],
    overrides: &BTreeMap<String, String>,
) -> (BTreeMap<String, Vars>, Vec<Diagnostic>) {
    let vars: BTreeMap<String, Vars> = playbooks
        .iter()
        .map(|pb| {
            (
                pb.playbook.name.clone(),
                Vars::with_overrides(&pb.playbook, overrides),
            )
        })
        .collect();
    let mut problems = Vec::new();
    for pb in playbooks {
        // A bundled playbook's exact text with its default variables checks cleanly
        // (`bundled_playbooks_parse_and_check_cleanly`): checking it again was 6% of a
        // sysctl-path plan's instructions. Overridden variables are checked.
        let untouched = overrides
            .keys()
            .all(|k| !pb.playbook.variables.contains_key(k));
        if untouched && BUNDLED.iter().any(|(_, text)| *text == pb.text) {
            continue;
        }
        if let Some(v) = vars.get(&pb.playbook.name) {
            problems.extend(check(pb, v));
        }
    }
    problems.extend(check_all(playbooks, &vars));
    (vars, problems)
}

/// Checks across all loaded playbooks: duplicate playbook names and two rules that set
/// the same sysctl to conflicting exact values.
pub fn check_all(playbooks: &[LoadedPlaybook], vars: &BTreeMap<String, Vars>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut names: BTreeMap<&str, &str> = BTreeMap::new();
    // key → (playbook/rule, exact value, source, rule id)
    let mut exact: BTreeMap<String, (String, String)> = BTreeMap::new();
    for pb in playbooks {
        let loc = Locator {
            source: &pb.source,
            text: &pb.text,
        };
        if let Some(first) = names.insert(&pb.playbook.name, &pb.source) {
            out.push(loc.at(
                loc.top_key("name"),
                format!(
                    "playbook name {:?} is also used by {first}",
                    pb.playbook.name
                ),
            ));
        }
        let Some(vars) = vars.get(&pb.playbook.name) else {
            continue;
        };
        for rule in &pb.playbook.rules {
            for action in &rule.fix {
                let Action::SetSysctl(s) = action else {
                    continue;
                };
                let Ok((SetMode::Value, v)) = s.mode() else {
                    continue;
                };
                let Ok(value) = scalar_text(v, vars) else {
                    continue;
                };
                let value = crate::kernel::sysctl::normalize(&value);
                let who = format!("{}/{}", pb.playbook.name, rule.id);
                match exact.get(&s.key) {
                    Some((other, other_value)) if *other_value != value => {
                        out.push(loc.at(
                            loc.find(loc.find(loc.rule(&rule.id), "fix:"), &s.key),
                            format!(
                                "rule {who} sets {} to {value:?} but rule {other} sets it to {other_value:?}",
                                s.key
                            ),
                        ));
                    }
                    Some(_) => {}
                    None => {
                        exact.insert(s.key.clone(), (who, value));
                    }
                }
            }
        }
    }
    out
}

/// Sysctl prefixes provided by modules that may simply not be loaded on the machine
/// that validates (a CI runner): keys below them are not flagged as unknown.
const MODULE_PREFIXES: &[&str] = &["net/netfilter/", "net/bridge/", "net/nf_conntrack_max"];

/// Host checks for `tune validate`: sysctl keys that do not exist on this host (with a
/// suggestion when one is close).
pub fn check_host(pb: &LoadedPlaybook) -> Vec<Diagnostic> {
    let loc = Locator {
        source: &pb.source,
        text: &pb.text,
    };
    let mut out = Vec::new();
    for rule in &pb.playbook.rules {
        let mut keys = Vec::new();
        rule.detect.walk(&mut |c| {
            if let Condition::Sysctl(s) = c {
                keys.push((s.key.clone(), false));
                keys.extend(s.ratio_of.clone().map(|k| (k, false)));
            }
        });
        for action in &rule.fix {
            if let Action::SetSysctl(s) = action {
                keys.push((s.key.clone(), true));
            }
        }
        for (key, in_fix) in keys {
            let Ok(parsed) = SysctlKey::parse(&key) else {
                continue;
            };
            let rel = parsed
                .path()
                .strip_prefix(crate::kernel::sysctl::PROC_SYS)
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            if crate::kernel::sysctl::exists(&parsed)
                || MODULE_PREFIXES.iter().any(|p| rel.starts_with(p))
            {
                continue;
            }
            let hint = suggest(&parsed)
                .map(|s| format!(" (did you mean {s}?)"))
                .unwrap_or_default();
            let section = if in_fix {
                loc.find(loc.rule(&rule.id), "fix:")
            } else {
                loc.rule(&rule.id)
            };
            out.push(loc.at(
                loc.find(section, &key),
                format!(
                    "rule {}: unknown sysctl key {key}: no {} on this host{hint}",
                    rule.id,
                    parsed.path().display()
                ),
            ));
        }
    }
    out
}

/// The closest existing sibling of a missing key, by edit distance.
fn suggest(key: &SysctlKey) -> Option<String> {
    let path = key.path();
    let dir = path.parent()?;
    let name = path.file_name()?.to_str()?;
    let mut best: Option<(usize, String)> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let candidate = entry.file_name().to_string_lossy().into_owned();
        let d = edit_distance(name, &candidate);
        if d <= 3 && best.as_ref().is_none_or(|(bd, _)| d < *bd) {
            best = Some((d, candidate));
        }
    }
    let (_, candidate) = best?;
    let sep = if key.as_str().contains('/') { '/' } else { '.' };
    let text = key.as_str();
    let stem = &text[..text.rfind(sep)?];
    Some(format!("{stem}{sep}{candidate}"))
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_whose_size_says_nothing_is_read_only_up_to_the_limit() {
        // A FIFO reports size 0, as a file that grows after the size check would:
        // the read stops one byte past the limit, however much the writer has.
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("endless.yml");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let writer_path = fifo.clone();
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            let mut w = std::fs::OpenOptions::new()
                .write(true)
                .open(writer_path)
                .unwrap();
            let chunk = vec![b'#'; 64 << 10];
            let mut written = 0u64;
            // Stops when the reader closes its end (EPIPE) or after 4 MiB.
            while written < 4 << 20 && w.write_all(&chunk).is_ok() {
                written += chunk.len() as u64;
            }
            written
        });
        let err = match read_one(&fifo) {
            Ok(_) => panic!("an over-limit FIFO loaded"),
            Err(d) => d,
        };
        assert!(
            err.message.contains("grew past the limit of 1048576 bytes"),
            "{}",
            err.message
        );
        assert!(
            writer.join().unwrap() < 4 << 20,
            "the reader read everything"
        );
    }

    /// check_set skips the per-playbook check only for a bundled text with its default
    /// variables: an override is checked, and so is an edited copy.
    #[test]
    fn check_set_checks_bundled_playbooks_with_overrides() {
        let pbs = load_bundled().expect("bundled playbooks parse");
        let conntrack: Vec<LoadedPlaybook> = pbs
            .into_iter()
            .filter(|pb| pb.playbook.name == "conntrack")
            .collect();
        assert_eq!(conntrack.len(), 1);
        let (_, clean) = check_set(&conntrack, &BTreeMap::new());
        assert_eq!(clean, vec![]);
        let bad = BTreeMap::from([("conntrack_max".to_owned(), "abc".to_owned())]);
        let (_, problems) = check_set(&conntrack, &bad);
        assert!(
            problems
                .iter()
                .any(|p| p.message.contains("needs an integer")),
            "{problems:?}"
        );
        let mut edited = conntrack[0].clone();
        edited.text.push_str("# edited\n");
        edited.playbook.rules[0].id = "Bad Id!".to_owned();
        let (_, problems) = check_set(&[edited], &BTreeMap::new());
        assert!(!problems.is_empty(), "an edited copy is checked");
    }

    #[test]
    fn bundled_playbooks_parse_and_check_cleanly() {
        let pbs = load_bundled().expect("bundled playbooks parse");
        for pb in &pbs {
            assert_eq!(
                check(pb, &Vars::defaults(&pb.playbook)),
                vec![],
                "{}",
                pb.source
            );
        }
        assert_eq!(pbs.len(), BUNDLED.len());
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("tcp_tw_resue", "tcp_tw_reuse"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
