//! Text rendering of plans, facts, reports and history.
//!
//! Styles are ANSI codes from anstyle; the stream wrapper from anstream strips them
//! when stdout is not a terminal or `NO_COLOR` is set, so this module writes them
//! unconditionally.

use std::fmt::Write;

use anstyle::{AnsiColor, Style};

use crate::apply::Report;
use crate::apply::journal::{Status, Transaction};
use crate::detect::{Evidence, FindingStatus};
use crate::facts::{Fact, Facts};
use crate::plan::{FixStatus, Plan};

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
            let _ = writeln!(
                out,
                "  {}. {} {}  {} → {}",
                i + 1,
                paint(CYAN, "~"),
                paint(BOLD, &m.resource()),
                paint(RED, &m.before()),
                paint(GREEN, &m.after())
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

pub fn facts(facts: &Facts) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "host {}", facts.hostname);
    let show = |v: Fact<String>| match v {
        Fact::Value(v) => v,
        Fact::Unknown(why) => paint(YELLOW, &format!("unknown ({why})")),
    };
    for (k, v) in &facts.sysctls {
        let _ = writeln!(out, "sysctl   {k} = {}", show(v.clone()));
    }
    for (k, v) in &facts.counters {
        let v = match v {
            Fact::Value(n) => Fact::Value(n.to_string()),
            Fact::Unknown(w) => Fact::Unknown(w.clone()),
        };
        let _ = writeln!(out, "counter  {k} = {}", show(v));
    }
    for (k, v) in &facts.sockets {
        let v = match v {
            Fact::Value(n) => Fact::Value(n.to_string()),
            Fact::Unknown(w) => Fact::Unknown(w.clone()),
        };
        let _ = writeln!(out, "sockets  TCP {k} = {}", show(v));
    }
    for (k, v) in &facts.kernel_log {
        let v = match v {
            Fact::Value(lines) => Fact::Value(format!("{} matching line(s)", lines.len())),
            Fact::Unknown(w) => Fact::Unknown(w.clone()),
        };
        let _ = writeln!(out, "kmsg     /{k}/ = {}", show(v));
    }
    net_facts(&mut out, facts);
    out
}

fn gathered<T>(f: &Fact<T>) -> bool {
    !matches!(f, Fact::Unknown(w) if w == "not gathered")
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
                let _ = writeln!(
                    out,
                    "link     {}",
                    paint(YELLOW, &format!("unknown ({why})"))
                );
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
                let _ = writeln!(
                    out,
                    "qdisc    {}",
                    paint(YELLOW, &format!("unknown ({why})"))
                );
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

fn time(t: f64) -> String {
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
            t.status().describe(),
            t.changes
                .iter()
                .map(|c| format!(
                    "{} {} → {}",
                    c.mutation.resource(),
                    c.mutation.before(),
                    c.mutation.after()
                ))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    out
}

pub fn history_json(transactions: &[Transaction]) -> serde_json::Result<String> {
    let items: Vec<serde_json::Value> = transactions
        .iter()
        .map(|t| {
            serde_json::json!({
                "id": t.id,
                "at": t.at,
                "hostname": t.hostname,
                "netns": t.netns,
                "status": t.status(),
                "changes": t.changes,
            })
        })
        .collect();
    serde_json::to_string_pretty(&items)
}
