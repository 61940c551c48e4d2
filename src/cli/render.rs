//! Text rendering of plans, facts, reports and history.
//!
//! Styles are ANSI codes from anstyle; the stream wrapper from anstream strips them
//! when stdout is not a terminal or `NO_COLOR` is set, so this module writes them
//! unconditionally.

use std::fmt::Write;

use anstyle::{AnsiColor, Style};

use crate::apply::Report;
use crate::apply::journal::{Status, Transaction};
use crate::facts::{self, Fact, Facts};
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
        notes(&mut out, plan);
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
            (_, FixStatus::NeedsInput) => ("●", paint(YELLOW, "fired, fix needs input")),
            (_, FixStatus::Undecided) => ("?", paint(YELLOW, "undecided")),
        };
        let _ = writeln!(out, "\n{mark} {}  {state}", paint(BOLD, &name));
        let _ = writeln!(out, "    {}", f.description);
        evidence_lines(&mut out, &f.evidence, "    ");
        for u in &f.unknown {
            let _ = writeln!(out, "    {} {u}", paint(YELLOW, "unknown:"));
        }
        for n in &pf.needs_input {
            let _ = writeln!(out, "    {} {n}", paint(YELLOW, "needs input:"));
        }
    }
    if !plan.changes.is_empty() {
        let _ = writeln!(out, "\n{}", paint(BOLD, "Changes, in order:"));
        for (i, c) in plan.changes.iter().enumerate() {
            let m = &c.mutation;
            if let Mutation::File {
                path,
                role,
                keys,
                before,
                after,
                effect,
            } = m
            {
                let effect = effect.as_deref().unwrap_or(role.default_effect());
                let file = (m.resource(), path.as_str());
                env_file_change(&mut out, i + 1, file, keys, (before, after), effect);
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
    notes(&mut out, plan);
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
    let needs_input = count_needing_input(plan);
    let waiting = if needs_input > 0 {
        format!("{needs_input} needing input, ")
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "\nPlan: {} change(s), {in_effect} finding(s) already fixed, {waiting}{undecided} undecided, {} error(s).",
        plan.changes.len(),
        plan.errors.len()
    );
    out
}

fn count_needing_input(plan: &Plan) -> usize {
    plan.findings
        .iter()
        .filter(|f| f.fix == FixStatus::NeedsInput)
        .count()
}

/// What `apply` says when a plan has no changes: nothing, or which findings wait for
/// input and what to pass.
pub fn nothing_to_apply(plan: &Plan) -> String {
    let mut out = String::from("Nothing to apply.\n");
    if count_needing_input(plan) == 0 {
        return out;
    }
    let _ = writeln!(
        out,
        "Nothing was changed: these findings need input before their fix can be planned:"
    );
    for pf in plan
        .findings
        .iter()
        .filter(|f| f.fix == FixStatus::NeedsInput)
    {
        for n in &pf.needs_input {
            let _ = writeln!(out, "  {}/{}: {n}", pf.finding.playbook, pf.finding.rule);
        }
    }
    out
}

fn notes(out: &mut String, plan: &Plan) {
    for n in &plan.notes {
        let _ = writeln!(out, "\n{} {n}", paint(YELLOW, "note:"));
    }
}

/// An environment-file change: its unified diff, coloured by line.
fn env_file_change(
    out: &mut String,
    n: usize,
    (resource, path): (String, &str),
    keys: &[String],
    (before, after): (&Option<String>, &Option<String>),
    effect: &str,
) {
    let what = if before.is_none() { "create" } else { "edit" };
    let _ = writeln!(
        out,
        "  {n}. {} {}  {what}, set {}",
        paint(CYAN, "~"),
        paint(BOLD, &resource),
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
    let _ = writeln!(out, "     {} {effect}", paint(YELLOW, "note:"));
}

/// A fact's value as text, or why it is unknown (highlighted).
fn shown<T>(fact: &Fact<T>, text: impl Fn(&T) -> String) -> String {
    match fact {
        Fact::Value(v) => text(v),
        Fact::Unknown(why) => unknown(why),
    }
}

/// Two readings of a counter, or why the second was not taken.
fn sample_text(s: &crate::facts::CounterSample) -> String {
    match s.second {
        Some(second) => format!(
            "+{} in {:.1}s ({} → {second})",
            second.saturating_sub(s.first),
            s.window,
            s.first
        ),
        None => format!(
            "not sampled ({} since boot, below the {} needed to fire)",
            s.first, s.min_growth
        ),
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
    for (k, v) in &facts.counter_samples {
        let _ = writeln!(out, "counter  {k} growth = {}", shown(v, sample_text));
    }
    for (k, v) in &facts.sockets {
        let _ = writeln!(out, "sockets  TCP {k} = {}", shown(v, u64::to_string));
    }
    if let Some(origin) = &facts.kernel_log_origin {
        let mut notes = Vec::new();
        if let Some(ns) = &origin.host_wide_for {
            notes.push(format!("host-wide, not {ns}'s"));
        }
        if let Some(memcg) = &origin.memcg {
            notes.push(format!("OOM kills in cgroup {memcg} only"));
        }
        if let Some(why) = &origin.clock_unknown {
            notes.push(paint(YELLOW, &format!("no wall times: {why}")));
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", notes.join("; "))
        };
        let _ = writeln!(out, "kmsg     source = {}{notes}", origin.source);
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

/// One line per CPU of /proc/net/softnet_stat, /proc/net/stat/nf_conntrack and /proc/stat,
/// with the growth over the window (or the single reading when not sampled).
fn softnet_facts(out: &mut String, facts: &Facts) {
    let softnet = |r: &facts::softnet::SoftnetCpu| {
        [
            ("processed", r.processed),
            ("dropped", r.dropped),
            ("time_squeeze", r.time_squeeze),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    };
    table_lines(
        out,
        "softnet ",
        "host-wide",
        &facts.softnet,
        |r| r.cpu,
        softnet,
    );
    let conntrack = |r: &facts::conntrack::CpuCounters| {
        ["drop", "early_drop", "insert_failed"]
            .iter()
            .filter_map(|k| r.counters.get(*k).map(|v| ((*k).to_owned(), *v)))
            .collect()
    };
    table_lines(
        out,
        "conntrack",
        "this namespace",
        &facts.conntrack_stat,
        |r| r.cpu,
        conntrack,
    );
    match facts.softirq_cpus.as_ref().map(|f| f.as_ref()) {
        Some(Fact::Value(readings)) => match readings.sampled() {
            Ok(facts::window::Sampled {
                first,
                second: Some(second),
                window,
            }) => {
                let (cpus, notes) = facts::softirq::over_window(first, second);
                for c in cpus {
                    let share = c
                        .share()
                        .map_or("no ticks".to_owned(), |s| format!("{:.1}%", s * 100.0));
                    let _ = writeln!(
                        out,
                        "softirq  cpu{} {share} of {} ticks in {window:.1}s, NET_RX +{}, ksoftirqd pid {} (host-wide)",
                        c.cpu,
                        c.total_ticks,
                        c.net_rx.map_or("?".to_owned(), |n| n.to_string()),
                        c.ksoftirqd_pid.map_or("?".to_owned(), |p| p.to_string())
                    );
                }
                for note in notes {
                    let _ = writeln!(out, "softirq  {note}");
                }
            }
            Ok(_) => {
                let _ = writeln!(out, "softirq  read once, not sampled");
            }
            Err(why) => {
                let _ = writeln!(out, "softirq  {}", unknown(why));
            }
        },
        Some(Fact::Unknown(why)) => {
            let _ = writeln!(out, "softirq  {}", unknown(&why));
        }
        None => {}
    }
    match &facts.listeners {
        Some(Fact::Value(listeners)) => {
            for l in listeners {
                let who = l.owner.as_ref().map_or("owner unknown".to_owned(), |o| {
                    format!("{} (pid {})", o.comm, o.pid)
                });
                let _ = writeln!(
                    out,
                    "listener {}  accept queue {} of backlog {}, {who}",
                    l.endpoint(),
                    l.queued,
                    l.backlog
                );
            }
        }
        Some(Fact::Unknown(why)) => {
            let _ = writeln!(out, "listeners {}", unknown(why));
        }
        None => {}
    }
}

/// A per-CPU table read twice: each CPU's columns as "first → second (+growth)" over
/// the window, or as read when it was read once.
fn table_lines<R>(
    out: &mut String,
    label: &str,
    scope: &str,
    fact: &Option<Fact<facts::window::Readings<Vec<R>>>>,
    cpu: impl Fn(&R) -> u32,
    columns: impl Fn(&R) -> Vec<(String, u64)>,
) {
    let readings = match fact {
        Some(Fact::Value(r)) => r,
        Some(Fact::Unknown(why)) => {
            let _ = writeln!(out, "{label} {}", unknown(why));
            return;
        }
        None => return,
    };
    let sampled = match readings.sampled() {
        Ok(s) => s,
        Err(why) => {
            let _ = writeln!(out, "{label} {}", unknown(why));
            return;
        }
    };
    let Some(second) = &sampled.second else {
        for r in &sampled.first {
            let shown: Vec<String> = columns(r).iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = writeln!(
                out,
                "{label} cpu{} {} since boot, not sampled ({scope})",
                cpu(r),
                shown.join(" ")
            );
        }
        return;
    };
    let (pairs, alone) = facts::window::paired(&sampled.first, second, &cpu);
    for (a, b) in pairs {
        let shown: Vec<String> = columns(a)
            .into_iter()
            .zip(columns(b))
            .map(|((k, x), (_, y))| {
                let growth =
                    facts::window::u32_growth(x, y).map_or("?".to_owned(), |g| g.to_string());
                format!("{k} {x} → {y} (+{growth})")
            })
            .collect();
        let _ = writeln!(
            out,
            "{label} cpu{} {} in {:.1}s ({scope})",
            cpu(b),
            shown.join(", "),
            sampled.window
        );
    }
    if let Some(note) = facts::window::left_out(&alone) {
        let _ = writeln!(out, "{label} {note}");
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
            let boot_relative = facts
                .kernel_log_origin
                .as_ref()
                .is_some_and(|o| o.clock_unknown.is_some());
            for k in kills {
                if boot_relative {
                    // The time is seconds since an undated boot: say so, not 1970.
                    let _ = writeln!(
                        out,
                        "oomkill  pid {} ({}) killed {:.1}s after boot in cgroup {}",
                        k.pid,
                        k.comm,
                        k.time,
                        k.cgroup.as_deref().unwrap_or("?")
                    );
                } else {
                    let _ = writeln!(out, "oomkill  {}", k.describe());
                }
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

/// What a link is attached to: ` link #6`, ` link #2 in netns id 0 (eth0 mtu 1500)`,
/// ` master #3`.
fn link_relations(l: &crate::facts::net::Link) -> String {
    let mut s = String::new();
    if let Some(index) = l.link.get() {
        s.push_str(&format!(" link #{index}"));
        if let Some(nsid) = l.link_netnsid.get() {
            s.push_str(&format!(" in netns id {nsid}"));
        }
        match l.link_remote() {
            Some(Fact::Value(r)) => s.push_str(&format!(" ({} mtu {})", r.name, r.mtu)),
            Some(Fact::Unknown(why)) => s.push_str(&format!(" ({})", unknown(why))),
            None => {}
        }
    }
    if let Some(master) = l.master.get() {
        s.push_str(&format!(" master #{master}"));
    }
    s
}

/// The links' receive-drop counters at both readings (links that never dropped are
/// summed up in one line).
fn rx_drop_facts(out: &mut String, facts: &Facts) {
    let s = match &facts.rx_drop_samples {
        Some(Fact::Value(s)) => s,
        Some(Fact::Unknown(why)) => {
            let _ = writeln!(out, "rxdrops  {}", unknown(why));
            return;
        }
        None => return,
    };
    let reading = |d: &crate::facts::net::RxDrops| {
        format!(
            "missed {} fifo {} dropped {}",
            d.rx_missed_errors, d.rx_fifo_errors, d.rx_dropped
        )
    };
    let mut clean = 0;
    for l in &s.links {
        let d = &l.first;
        if l.second.is_none_or(|second| second == *d)
            && d.rx_missed_errors + d.rx_fifo_errors + d.rx_dropped == 0
        {
            clean += 1;
            continue;
        }
        let then = match (&l.second, s.sampled) {
            (Some(second), _) => format!(" → {} after {:.1}s", reading(second), s.window),
            (None, true) => " (gone at the second reading)".to_owned(),
            (None, false) => String::new(),
        };
        let _ = writeln!(out, "rxdrops  {} #{} {}{then}", l.name, l.index, reading(d));
    }
    let sampled = if s.sampled {
        format!("sampled over {:.1}s", s.window)
    } else {
        "not sampled: none could have grown enough".to_owned()
    };
    let _ = writeln!(out, "rxdrops  {clean} link(s) never dropped; {sampled}");
}

fn net_facts(out: &mut String, facts: &Facts) {
    if gathered(&facts.links) {
        match &facts.links {
            Fact::Value(links) => {
                for l in links {
                    let range = match (l.min_mtu.get(), l.max_mtu.get()) {
                        (Some(lo), Some(hi)) => format!(" (min {lo}, max {hi})"),
                        _ => String::new(),
                    };
                    let _ = writeln!(
                        out,
                        "link     {} #{} {} mtu {}{range} {}{}",
                        l.name,
                        l.index,
                        l.kind,
                        l.mtu,
                        l.state,
                        link_relations(l)
                    );
                }
            }
            Fact::Unknown(why) => {
                let _ = writeln!(out, "link     {}", unknown(why));
            }
        }
    }
    rx_drop_facts(out, facts);
    match &facts.listen_ports {
        Some(Fact::Value(ports)) => {
            let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
            let _ = writeln!(out, "listen   TCP ports {}", ports.join(", "));
        }
        Some(Fact::Unknown(why)) => {
            let _ = writeln!(out, "listen   {}", unknown(why));
        }
        None => {}
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
    if !report.still_changed.is_empty() {
        let _ = writeln!(out, "{}", paint(RED, "still changed:"));
        for s in &report.still_changed {
            let _ = writeln!(out, "  {s}");
        }
    }
    for w in &report.warnings {
        let _ = writeln!(out, "{} {w}", paint(YELLOW, "warning:"));
    }
    out
}

pub fn time(t: f64) -> String {
    crate::domain::time::rfc3339(t)
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
