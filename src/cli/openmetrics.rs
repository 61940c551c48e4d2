//! `tune plan --format openmetrics`: findings as metrics, for node_exporter's textfile
//! collector (write to a temp file in its directory, rename it into place).
//!
//! The metric names, HELP and TYPE lines are fixed (alerts and other `.prom` files rely
//! on them). A finding's `status` label is its fix status as the JSON plan spells it,
//! so statuses added later show up without a change here. When namespaces are named
//! (`--netns`, `--netns-pid`, `--all-netns`) every series carries a `netns` label.

use std::fmt::Write;

use crate::kernel::netns::NetnsRecord;
use crate::plan::Plan;

/// One planned namespace: its label (`None`: tune's own, unnamed) and its plan.
pub struct Planned<'a> {
    pub netns: Option<&'a str>,
    pub plan: &'a Plan,
}

/// The `netns` label of a namespace named with `--netns` or `--netns-pid`.
pub fn netns_label(ns: &NetnsRecord) -> String {
    match (&ns.name, ns.pid) {
        (Some(name), _) => name.clone(),
        (None, Some(pid)) => format!("pid {pid}"),
        (None, None) => format!("inode {}", ns.inode),
    }
}

/// Escapes a label value (OpenMetrics: backslash, double quote, line feed).
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

fn family(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
}

/// The fix status as the JSON plan spells it (`planned`, `in_effect`, …).
pub fn status_name<T: serde::Serialize>(status: &T) -> String {
    match serde_json::to_value(status) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "unknown".to_owned(),
    }
}

/// Renders the plans (one per namespace) and the labels of the namespaces that could
/// not be planned (they vanished mid-scan, or could not be entered) as one exposition.
pub fn render(planned: &[Planned], failed: &[&str]) -> String {
    let mut out = String::new();
    let ns_label = |p: &Planned<'_>| -> Vec<(&'static str, String)> {
        p.netns
            .map(|n| vec![("netns", n.to_owned())])
            .unwrap_or_default()
    };
    let sample = |out: &mut String, name: &str, pairs: &[(&str, String)], value: String| {
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let _ = writeln!(out, "{name}{} {value}", labels(&pairs));
    };

    family(
        &mut out,
        "tune_finding",
        "A rule that fired or could not be decided: 1 per finding, labelled with its fix status.",
    );
    for p in planned {
        for pf in &p.plan.findings {
            let mut pairs = ns_label(p);
            pairs.push(("playbook", pf.finding.playbook.clone()));
            pairs.push(("rule", pf.finding.rule.clone()));
            pairs.push(("status", status_name(&pf.fix)));
            sample(&mut out, "tune_finding", &pairs, "1".into());
        }
    }
    family(
        &mut out,
        "tune_pending_changes",
        "Changes the plan would apply (0 when nothing is to be done).",
    );
    for p in planned {
        let n = p.plan.changes.len().to_string();
        sample(&mut out, "tune_pending_changes", &ns_label(p), n);
    }
    family(
        &mut out,
        "tune_plan_errors",
        "Fixes that could not be planned; a plan with errors cannot be applied.",
    );
    for p in planned {
        let n = p.plan.errors.len().to_string();
        sample(&mut out, "tune_plan_errors", &ns_label(p), n);
    }
    family(
        &mut out,
        "tune_plan_timestamp_seconds",
        "When the facts behind the plan were collected, seconds since the Unix epoch.",
    );
    for p in planned {
        let t = format!("{:.3}", p.plan.created_at);
        sample(&mut out, "tune_plan_timestamp_seconds", &ns_label(p), t);
    }
    if !failed.is_empty() {
        family(
            &mut out,
            "tune_netns_scan_failed",
            "A network namespace that could not be planned (it vanished during the scan, or could not be entered).",
        );
        for netns in failed {
            let pairs = [("netns", (*netns).to_owned())];
            sample(&mut out, "tune_netns_scan_failed", &pairs, "1".into());
        }
    }
    out.push_str("# EOF\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("a\nb"), "a\\nb");
        assert_eq!(labels(&[("x", "1"), ("y", "\"")]), r#"{x="1",y="\""}"#);
    }
}
