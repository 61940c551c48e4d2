//! Text rendering of plans, facts, reports and history.
//!
//! Styles are ANSI codes from anstyle; the stream wrapper from anstream strips them
//! when stdout is not a terminal or `NO_COLOR` is set, so this module writes them
//! unconditionally.

use std::fmt::Write;

use anstyle::{AnsiColor, Style};

use crate::apply::Report;
use crate::apply::journal::{Status, Transaction};
use crate::facts::{Fact, Facts};
use crate::finding::{Evidence, FindingStatus};
use crate::plan::{FixStatus, Mutation, Plan};

const BOLD: Style = Style::new().bold();
const DIM: Style = Style::new().dimmed();
const RED: Style = AnsiColor::Red.on_default().bold();
const GREEN: Style = AnsiColor::Green.on_default();
const YELLOW: Style = AnsiColor::Yellow.on_default().bold();
const CYAN: Style = AnsiColor::Cyan.on_default();

fn paint(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

fn evidence_lines(out: &mut String, evidence: &[Evidence], indent: &str) {
    for e in evidence {
        let _ = writeln!(
            out,
            "{indent}{} {} = {}  {}",
            paint(DIM, "evidence:"),
            e.fact,
            e.observed,
            paint(DIM, &format!("({})", e.test))
        );
    }
}

pub fn plan(plan: &Plan, playbooks: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} on {} ({playbooks} playbook(s))",
        paint(BOLD, "tune plan"),
        plan.hostname
    );
    if plan.findings.is_empty() {
        let _ = writeln!(out, "\nNo rule fired. Nothing to change.");
        return out;
    }
    for pf in &plan.findings {
        let f = &pf.finding;
        let name = format!("{}/{}", f.playbook, f.rule);
        let (mark, state) = match (f.status, pf.fix) {
            (FindingStatus::Unknown, _) => ("?", paint(YELLOW, "undecided")),
            (_, FixStatus::Planned) => ("●", paint(RED, "fired")),
            (_, FixStatus::InEffect) => ("●", paint(GREEN, "fired, fix already in effect")),
            (_, FixStatus::ReportOnly) => ("●", paint(YELLOW, "fired, report only")),
            (_, FixStatus::Blocked) => ("●", paint(RED, "fired, fix cannot be planned")),
            (_, FixStatus::Undecided) => ("?", paint(YELLOW, "undecided")),
        };
        let _ = writeln!(out, "\n{mark} {}  {state}", paint(BOLD, &name));
        let _ = writeln!(out, "    {}", f.description);
        evidence_lines(&mut out, &f.evidence, "    ");
        for u in &f.unknown {
            let _ = writeln!(out, "    {} {u}", paint(YELLOW, "unknown:"));
        }
    }
    if !plan.changes.is_empty() {
        let _ = writeln!(out, "\n{}", paint(BOLD, "Changes, in order:"));
        for (i, c) in plan.changes.iter().enumerate() {
            let m = &c.mutation;
            if let Mutation::EnvFile {
                path,
                keys,
                before,
                after,
            } = m
            {
                env_file_change(&mut out, i + 1, path, keys, before, after);
                let _ = writeln!(out, "     {} {}", paint(DIM, "by"), c.rules.join(", "));
                continue;
            }
            let _ = writeln!(
                out,
                "  {}. {} {}  {} → {}",
                i + 1,
                paint(CYAN, "~"),
                paint(BOLD, &m.resource()),
                paint(RED, &m.before_label()),
                paint(GREEN, &m.after_label())
            );
            let _ = writeln!(out, "     {} {}", paint(DIM, "by"), c.rules.join(", "));
        }
    }
    for e in &plan.errors {
        let _ = writeln!(out, "\n{} {e}", paint(RED, "error:"));
    }
    let in_effect = plan
        .findings
        .iter()
        .filter(|f| f.fix == FixStatus::InEffect)
        .count();
    let undecided = plan
        .findings
        .iter()
        .filter(|f| f.finding.status == FindingStatus::Unknown)
        .count();
    let _ = writeln!(
        out,
        "\nPlan: {} change(s), {in_effect} finding(s) already fixed, {undecided} undecided, {} error(s).",
        plan.changes.len(),
        plan.errors.len()
    );
    out
}

/// An environment-file change: its unified diff, coloured by line.
fn env_file_change(
    out: &mut String,
    n: usize,
    path: &str,
    keys: &[String],
    before: &Option<String>,
    after: &Option<String>,
) {
    let what = if before.is_none() { "create" } else { "edit" };
    let _ = writeln!(
        out,
        "  {n}. {} {}  {what}, set {}",
        paint(CYAN, "~"),
        paint(BOLD, &format!("envfile:{path}")),
        keys.join(", ")
    );
    let diff = crate::domain::envfile::unified_diff(path, before.as_deref(), after.as_deref());
    for line in diff.lines() {
        let style = match line.as_bytes().first() {
            Some(b'+') if !line.starts_with("+++") => GREEN,
            Some(b'-') if !line.starts_with("---") => RED,
            Some(b'@') => CYAN,
            _ => DIM,
        };
        let _ = writeln!(out, "       {}", paint(style, line));
    }
    let _ = writeln!(
        out,
        "     {} takes effect when the JVM (the service reading this file) restarts",
        paint(YELLOW, "note:")
    );
}

/// A fact's value as text, or why it is unknown (highlighted).
fn shown<T>(fact: &Fact<T>, text: impl Fn(&T) -> String) -> String {
    match fact {
        Fact::Value(v) => text(v),
        Fact::Unknown(why) => unknown(why),
    }
}

fn unknown(why: &str) -> String {
    paint(YELLOW, &format!("unknown ({why})"))
}

pub fn facts(facts: &Facts) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "host {}", facts.hostname);
    for (k, v) in &facts.sysctls {
        let _ = writeln!(out, "sysctl   {k} = {}", shown(v, String::clone));
    }
    for (k, v) in &facts.counters {
        let _ = writeln!(out, "counter  {k} = {}", shown(v, u64::to_string));
    }
    for (k, v) in &facts.sockets {
        let _ = writeln!(out, "sockets  TCP {k} = {}", shown(v, u64::to_string));
    }
    for (k, v) in &facts.kernel_log {
        let count = |lines: &Vec<_>| format!("{} matching line(s)", lines.len());
        let _ = writeln!(out, "kmsg     /{k}/ = {}", shown(v, count));
    }
    jvm_facts(&mut out, facts);
    net_facts(&mut out, facts);
    softnet_facts(&mut out, facts);
    out
}

/// One line per CPU of /proc/net/softnet_stat, /proc/net/stat/nf_conntrack and /proc/stat.
fn softnet_facts(out: &mut String, facts: &Facts) {
    match &facts.softnet {
        Some(Fact::Value(rows)) => {
            for r in rows {
                let _ = writeln!(
                    out,
                    "softnet  cpu{} processed {} dropped {} time_squeeze {} (host-wide)",
                    r.cpu, r.processed, r.dropped, r.time_squeeze
                );
            }
        }
        Some(Fact::Unknown(why)) => {
            let _ = writeln!(out, "softnet  {}", unknown(why));
        }
        None => {}
    }
    match &facts.conntrack_stat {
        Some(Fact::Value(rows)) => {
            for r in rows {
                let shown: Vec<String> = ["drop", "early_drop", "insert_failed"]
                    .iter()
                    .filter_map(|k| r.counters.get(*k).map(|v| format!("{k} {v}")))
                    .collect();
                let _ = writeln!(out, "conntrack cpu{} {}", r.cpu, shown.join(" "));
            }
        }
        Some(Fact::Unknown(why)) => {
            let _ = writeln!(out, "conntrack {}", unknown(why));
        }
        None => {}
    }
    match &facts.softirq_cpus {
        Some(Fact::Value(cpus)) => {
            for c in cpus {
                let _ = writeln!(
                    out,
                    "softirq  cpu{} {:.1}% of {} ticks, NET_RX {}, ksoftirqd pid {} (since boot, host-wide)",
                    c.cpu,
                    c.share() * 100.0,
                    c.total_ticks,
                    c.net_rx.map_or("?".to_owned(), |n| n.to_string()),
                    c.ksoftirqd_pid.map_or("?".to_owned(), |p| p.to_string())
                );
            }
        }
        Some(Fact::Unknown(why)) => {
            let _ = writeln!(out, "softirq  {}", unknown(why));
        }
        None => {}
    }
}

/// Processes, host memory, OOM kills and environment files.
fn jvm_facts(out: &mut String, facts: &Facts) {
    if let Some(Fact::Value(total)) = &facts.mem_total {
        let _ = writeln!(
            out,
            "memory   MemTotal = {}",
            crate::domain::jvm::human(*total)
        );
    } else if let Some(Fact::Unknown(why)) = &facts.mem_total {
        let _ = writeln!(out, "memory   MemTotal = {}", unknown(why));
    }
    match &facts.processes {
        Some(Fact::Value(list)) => {
            let _ = writeln!(out, "process  {} matching", list.len());
            for p in list {
                let cgroup = match &p.memory_cgroup {
                    Fact::Value(c) => format!(
                        "cgroup v{} {} limit {}",
                        c.version,
                        c.path,
                        c.limit.map_or("none".to_owned(), crate::domain::jvm::human)
                    ),
                    Fact::Unknown(why) => format!("cgroup {}", unknown(why)),
                };
                let env = match &p.env {
                    Fact::Value(env) => format!("{env:?}"),
                    Fact::Unknown(why) => unknown(why),
                };
                let _ = writeln!(
                    out,
                    "process  {} {} {cgroup}; env {env}; {}",
                    p.pid,
                    p.comm,
                    p.cmdline.join(" ")
                );
            }
        }
        Some(Fact::Unknown(why)) => {
            let _ = writeln!(out, "process  {}", unknown(why));
        }
        None => {}
    }
    match &facts.oom_kills {
        Some(Fact::Value(kills)) => {
            let _ = writeln!(
                out,
                "oomkill  {} memcg OOM kill(s) in the kernel log",
                kills.len()
            );
            for k in kills {
                let _ = writeln!(out, "oomkill  {}", k.describe());
            }
        }
        Some(Fact::Unknown(why)) => {
            let _ = writeln!(out, "oomkill  {}", unknown(why));
        }
        None => {}
    }
    for (path, v) in &facts.env_files {
        let state = match v {
            Fact::Value(c) => crate::plan::mutation::label(c.as_deref()),
            Fact::Unknown(why) => unknown(why),
        };
        let _ = writeln!(out, "envfile  {path} = {state}");
    }
}

fn gathered<T>(f: &Fact<T>) -> bool {
    !matches!(f, Fact::Unknown(w) if w == crate::facts::NOT_GATHERED)
}

fn net_facts(out: &mut String, facts: &Facts) {
    if gathered(&facts.links) {
        match &facts.links {
            Fact::Value(links) => {
                for l in links {
                    let range = match (l.min_mtu, l.max_mtu) {
                        (Some(lo), Some(hi)) => format!(" (min {lo}, max {hi})"),
                        _ => String::new(),
                    };
                    let _ = writeln!(
                        out,
                        "link     {} #{} {} mtu {}{range} {}",
                        l.name, l.index, l.kind, l.mtu, l.state
                    );
                }
            }
            Fact::Unknown(why) => {
                let _ = writeln!(out, "link     {}", unknown(why));
            }
        }
    }
    if gathered(&facts.qdiscs) {
        match &facts.qdiscs {
            Fact::Value(qdiscs) => {
                for q in qdiscs {
                    let _ = writeln!(out, "qdisc    {} {}", q.link, q.spec.canonical());
                }
            }
            Fact::Unknown(why) => {
                let _ = writeln!(out, "qdisc    {}", unknown(why));
            }
        }
    }
}

pub fn report(what: &str, report: &Report) -> String {
    let mut out = String::new();
    for s in &report.steps {
        let _ = writeln!(out, "  {s}");
    }
    let summary = match report.status {
        Status::Applied => paint(
            GREEN,
            &format!("{what}: transaction {} applied", report.transaction),
        ),
        Status::RolledBack => paint(
            GREEN,
            &format!("{what}: transaction {} rolled back", report.transaction),
        ),
        Status::FailedRolledBack => paint(
            RED,
            &format!(
                "{what} failed: {}; every completed step was rolled back (transaction {})",
                report.error.as_deref().unwrap_or("unknown error"),
                report.transaction
            ),
        ),
        _ => paint(
            RED,
            &format!(
                "{what} failed and could not undo everything (transaction {}): {}{}",
                report.transaction,
                report
                    .error
                    .as_deref()
                    .map(|e| format!("{e}; "))
                    .unwrap_or_default(),
                report.undo_errors.join("; ")
            ),
        ),
    };
    let _ = writeln!(out, "{summary}");
    out
}

pub fn time(t: f64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0.0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

pub fn history(transactions: &[Transaction]) -> String {
    if transactions.is_empty() {
        return "No transactions.\n".into();
    }
    let mut out = String::new();
    for t in transactions {
        let _ = writeln!(
            out,
            "{:>4}  {}  {:<12}  {}",
            t.id,
            time(t.at),
            status_label(t),
            t.changes
                .iter()
                .map(|c| format!(
                    "{} {} → {}",
                    c.mutation.resource(),
                    c.mutation.before_label(),
                    c.mutation.after_label()
                ))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    out
}

/// A transaction's status for history: a pending one shows its deadline.
fn status_label(t: &Transaction) -> String {
    match (t.status(), crate::apply::confirm::pending(t)) {
        (Status::PendingConfirmation, Some(p)) => {
            format!("pending confirmation (deadline {})", time(p.deadline))
        }
        (status, _) => status.describe().to_owned(),
    }
}

pub fn history_json(transactions: &[Transaction]) -> serde_json::Result<String> {
    let items: Vec<serde_json::Value> = transactions
        .iter()
        .map(|t| {
            let mut item = serde_json::json!({
                "id": t.id,
                "at": t.at,
                "hostname": t.hostname,
                "netns": t.netns,
                "status": t.status(),
                "changes": t.changes,
            });
            if let Some(p) = crate::apply::confirm::pending(t) {
                item["deadline"] = p.deadline.into();
            }
            item
        })
        .collect();
    serde_json::to_string_pretty(&items)
}
