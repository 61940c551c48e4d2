//! Review aids for `tune validate`: warnings about playbooks that load and check
//! cleanly but are probably not what their author meant.
//!
//! - A rule that can never fire: comparisons on one measured value that no value
//!   satisfies (`below: 10, above: 20` in one condition, or spread over the branches of
//!   an `all`), or a dead branch of an `any`. Variables take their default values.
//! - A fix that conflicts with a fix of another rule, in a given playbook or a bundled
//!   one: one sets a sysctl to 1000 while another raises it to at least 4096, two MTUs
//!   for overlapping links, two values for one environment variable.
//! - A fix that raises net.ipv4.tcp_max_syn_backlog in a rule that does not require
//!   net.ipv4.tcp_syncookies to be 0: with syncookies on, Linux 4.4 and later bound
//!   the SYN queue by the listen backlog, so the raise changes nothing.
//! - A playbook whose description does not say which symptom it answers (the bundled
//!   ones start with `Symptom:`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{
    Action, Compare, CompareOp, Condition, Diagnostic, LoadedPlaybook, Locator, SetMode, Vars,
    scalar_text,
};
use crate::kernel::sysctl::SysctlKey;

/// Warnings for the `given` playbooks; `others` (the bundled ones not given) count
/// only as the other side of a conflict.
pub fn lint(given: &[LoadedPlaybook], others: &[LoadedPlaybook]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for pb in given {
        let loc = locator(pb);
        if !pb.playbook.description.to_lowercase().contains("symptom:") {
            out.push(loc.at(
                loc.top_key("description"),
                "the description does not say which symptom this playbook answers; start it with `Symptom: ...` (what an operator sees), as the bundled playbooks do".into(),
            ));
        }
        let vars = Vars::defaults(&pb.playbook);
        for rule in &pb.playbook.rules {
            let at = loc.find(loc.rule(&rule.id), "detect:");
            for problem in never_fires(&rule.detect, &vars) {
                out.push(loc.at(at, format!("rule {}: {problem}", rule.id)));
            }
            if let Some(problem) = syn_backlog_with_cookies(rule, &vars) {
                out.push(loc.at(loc.rule(&rule.id), format!("rule {}: {problem}", rule.id)));
            }
        }
    }
    out.extend(conflicts(given, others));
    out
}

fn locator(pb: &LoadedPlaybook) -> Locator<'_> {
    Locator {
        source: &pb.source,
        text: &pb.text,
    }
}

/// What the comparisons on one measured value allow.
#[derive(Debug, Default)]
struct Bounds {
    /// Lowest allowed value and whether it is allowed itself.
    low: Option<(f64, bool)>,
    high: Option<(f64, bool)>,
    equals: Vec<String>,
    not_equals: Vec<String>,
    /// The comparisons, as written, for the message.
    written: Vec<String>,
}

impl Bounds {
    fn add(&mut self, op: CompareOp, text: &str) {
        self.written.push(format!("{} {text}", op.symbol()));
        let number = text.trim().parse::<f64>().ok();
        let tighter_low = |old: Option<(f64, bool)>, new: (f64, bool)| match old {
            Some(o) if o.0 > new.0 || (o.0 == new.0 && !o.1) => Some(o),
            _ => Some(new),
        };
        let tighter_high = |old: Option<(f64, bool)>, new: (f64, bool)| match old {
            Some(o) if o.0 < new.0 || (o.0 == new.0 && !o.1) => Some(o),
            _ => Some(new),
        };
        match (op, number) {
            (CompareOp::Equals, _) => self.equals.push(text.trim().to_owned()),
            (CompareOp::NotEquals, _) => self.not_equals.push(text.trim().to_owned()),
            (CompareOp::Below, Some(n)) => self.high = tighter_high(self.high, (n, false)),
            (CompareOp::AtMost, Some(n)) => self.high = tighter_high(self.high, (n, true)),
            (CompareOp::Above, Some(n)) => self.low = tighter_low(self.low, (n, false)),
            (CompareOp::AtLeast, Some(n)) => self.low = tighter_low(self.low, (n, true)),
            // Not a number: `check` reports it.
            _ => {}
        }
    }

    fn allows(&self, n: f64) -> bool {
        self.low.is_none_or(|(l, incl)| n > l || (incl && n == l))
            && self.high.is_none_or(|(h, incl)| n < h || (incl && n == h))
    }

    /// Whether no value satisfies every comparison.
    fn empty(&self) -> bool {
        let same = |a: &str, b: &str| match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(x), Ok(y)) => x == y,
            _ => a == b,
        };
        if let Some(first) = self.equals.first() {
            if self.equals.iter().any(|e| !same(e, first)) {
                return true;
            }
            if self.not_equals.iter().any(|n| same(n, first)) {
                return true;
            }
            if let Ok(n) = first.parse::<f64>() {
                return !self.allows(n);
            }
            return false;
        }
        match (self.low, self.high) {
            (Some((l, li)), Some((h, hi))) => l > h || (l == h && !(li && hi)),
            _ => false,
        }
    }
}

/// The measured value a condition compares, when two conditions can be compared: the
/// same sysctl (and measure, and ratio), counter or socket state. Links are not: two
/// `link` conditions may each hold for a different link.
fn measured(c: &Condition) -> Option<(String, Compare)> {
    match c {
        Condition::Sysctl(s) => {
            let key = SysctlKey::parse(&s.key).map_or_else(|_| PathBuf::from(&s.key), |k| k.path());
            Some((
                format!(
                    "sysctl {}{}{}",
                    s.key,
                    match s.measure {
                        super::Measure::Value => String::new(),
                        super::Measure::RangeWidth => " (range width)".into(),
                    },
                    s.ratio_of
                        .as_ref()
                        .map(|r| format!(" / {r}"))
                        .unwrap_or_default()
                ) + &format!("\0{}", key.display()),
                s.compare(),
            ))
        }
        Condition::Counter(k) => Some((format!("counter {}", k.name), k.compare())),
        Condition::Sockets(k) => Some((format!("sockets in {}", k.state.name()), k.compare())),
        _ => None,
    }
}

fn bounds_of(compare: &Compare, vars: &Vars, into: &mut Bounds) {
    for (op, value) in compare.operators() {
        if let Ok(text) = scalar_text(value, vars) {
            into.add(op, &text);
        }
    }
}

const SYN_BACKLOG: &str = "net.ipv4.tcp_max_syn_backlog";
const SYNCOOKIES: &str = "net.ipv4.tcp_syncookies";

/// A rule that sets tcp_max_syn_backlog without requiring `tcp_syncookies` to equal 0.
fn syn_backlog_with_cookies(rule: &super::Rule, vars: &Vars) -> Option<String> {
    let same = |a: &str, b: &str| crate::kernel::sysctl::same_key(a, b);
    let sets = rule
        .fix
        .iter()
        .any(|a| matches!(a, Action::SetSysctl(s) if same(&s.key, SYN_BACKLOG)));
    if !sets {
        return None;
    }
    let mut must = Vec::new();
    conjuncts(&rule.detect, &mut must);
    let cookies_off = must.iter().any(|c| {
        matches!(c, Condition::Sysctl(s) if same(&s.key, SYNCOOKIES)
            && s.equals.as_ref().and_then(|v| scalar_text(v, vars).ok()).as_deref() == Some("0"))
    });
    (!cookies_off).then(|| {
        format!(
            "it sets {SYN_BACKLOG} without requiring `{SYNCOOKIES}` equals 0: with syncookies on, Linux 4.4 and later bound the SYN queue by the listen backlog, so the raise does nothing (raise net.core.somaxconn or the application's backlog instead)"
        )
    })
}

/// The conditions that must all hold for `c` to hold (`all` flattened).
fn conjuncts<'a>(c: &'a Condition, out: &mut Vec<&'a Condition>) {
    match c {
        Condition::All(list) => list.iter().for_each(|c| conjuncts(c, out)),
        other => out.push(other),
    }
}

fn display_name(key: &str) -> &str {
    key.split('\0').next().unwrap_or(key)
}

/// For conditions that must all hold: each measured value that no value satisfies.
fn unsatisfiable(must: &[&Condition], vars: &Vars) -> Vec<String> {
    let mut groups: BTreeMap<String, Bounds> = BTreeMap::new();
    for c in must {
        if let Some((key, compare)) = measured(c) {
            bounds_of(&compare, vars, groups.entry(key).or_default());
        }
    }
    groups
        .iter()
        .filter(|(_, bounds)| bounds.empty())
        .map(|(key, bounds)| {
            format!(
                "no value of {} is {}",
                display_name(key),
                bounds.written.join(" and ")
            )
        })
        .collect()
}

/// Why a rule with this detection can never fire, or which of its `any` branches never
/// hold.
fn never_fires(detect: &Condition, vars: &Vars) -> Vec<String> {
    let mut out = Vec::new();
    let mut must = Vec::new();
    conjuncts(detect, &mut must);
    for why in unsatisfiable(&must, vars) {
        out.push(format!("can never fire: {why}"));
    }
    for c in &must {
        dead_branches(c, vars, &mut out);
    }
    out
}

/// Dead branches of `any` (branches under `not` are left alone: a condition that never
/// holds makes its `not` always hold, which is odd but not dead).
fn dead_branches(c: &Condition, vars: &Vars, out: &mut Vec<String>) {
    let Condition::Any(list) = c else {
        if let Condition::All(list) = c {
            list.iter().for_each(|c| dead_branches(c, vars, out));
        }
        return;
    };
    for branch in list {
        let mut must = Vec::new();
        conjuncts(branch, &mut must);
        for why in unsatisfiable(&must, vars) {
            out.push(format!("a branch of `any` never holds: {why}"));
        }
        for c in &must {
            dead_branches(c, vars, out);
        }
    }
}

/// What a fix asks of one resource, with variables at their defaults.
#[derive(Debug)]
enum Claim {
    Sysctl {
        key: PathBuf,
        shown: String,
        mode: SetMode,
        value: String,
    },
    Mtu {
        links: Vec<String>,
        value: String,
    },
    Env {
        file: String,
        key: String,
        value: String,
    },
}

struct Claimant<'a> {
    pb: &'a LoadedPlaybook,
    rule: &'a str,
    given: bool,
    claim: Claim,
}

fn claims<'a>(pb: &'a LoadedPlaybook, given: bool, out: &mut Vec<Claimant<'a>>) {
    let vars = Vars::defaults(&pb.playbook);
    let text = |s: &super::Scalar| scalar_text(s, &vars).ok().map(|t| t.trim().to_owned());
    for rule in &pb.playbook.rules {
        let mut links = Vec::new();
        rule.detect.walk(&mut |c| {
            if let Condition::Link(l) = c {
                links.push(super::expand(&l.name, &vars).unwrap_or_else(|_| l.name.clone()));
            }
        });
        for action in &rule.fix {
            let claim = match action {
                Action::SetSysctl(s) => {
                    let Ok((mode, v)) = s.mode() else { continue };
                    let (Some(value), Ok(key)) = (text(v), SysctlKey::parse(&s.key)) else {
                        continue;
                    };
                    Claim::Sysctl {
                        key: key.path(),
                        shown: s.key.clone(),
                        mode,
                        value,
                    }
                }
                Action::SetMtu(m) => {
                    // `to_path` MTUs depend on each link's path: no fixed value to compare.
                    let Some(value) = m.value.as_ref().and_then(text) else {
                        continue;
                    };
                    Claim::Mtu {
                        links: links.clone(),
                        value,
                    }
                }
                Action::SetEnv(e) => {
                    let Ok((mode, v)) = e.mode() else { continue };
                    let Some(value) = text(v) else { continue };
                    Claim::Env {
                        file: super::expand(&e.file, &vars).unwrap_or_else(|_| e.file.clone()),
                        key: e.key.clone(),
                        value: format!("{mode:?} {value}"),
                    }
                }
                Action::DeleteRootQdisc(_) | Action::SetRxRing(_) => continue,
            };
            out.push(Claimant {
                pb,
                rule: &rule.id,
                given,
                claim,
            });
        }
    }
}

fn number(s: &str) -> Option<f64> {
    s.parse().ok()
}

/// Why two claims cannot both be met, if they cannot.
fn conflict(a: &Claim, b: &Claim, both_given: bool) -> Option<String> {
    match (a, b) {
        (
            Claim::Sysctl {
                key,
                shown,
                mode: ma,
                value: va,
            },
            Claim::Sysctl {
                key: kb,
                mode: mb,
                value: vb,
                ..
            },
        ) if key == kb => {
            let (x, y) = (number(va), number(vb));
            let clash = match (ma, mb) {
                // Two exact values among given playbooks are an error of `check_all`.
                (SetMode::Value, SetMode::Value) => {
                    !both_given
                        && crate::kernel::sysctl::normalize(va)
                            != crate::kernel::sysctl::normalize(vb)
                }
                (SetMode::Value, SetMode::AtLeast) | (SetMode::AtMost, SetMode::AtLeast) => {
                    matches!((x, y), (Some(x), Some(y)) if x < y)
                }
                (SetMode::AtLeast, SetMode::Value) | (SetMode::AtLeast, SetMode::AtMost) => {
                    matches!((x, y), (Some(x), Some(y)) if x > y)
                }
                (SetMode::Value, SetMode::AtMost) => {
                    matches!((x, y), (Some(x), Some(y)) if x > y)
                }
                (SetMode::AtMost, SetMode::Value) => {
                    matches!((x, y), (Some(x), Some(y)) if x < y)
                }
                _ => false,
            };
            clash.then(|| {
                format!(
                    "{shown}: {} {va} and {} {vb} cannot both hold",
                    mode_word(*ma),
                    mode_word(*mb)
                )
            })
        }
        (
            Claim::Mtu {
                links: la,
                value: va,
            },
            Claim::Mtu {
                links: lb,
                value: vb,
            },
        ) if number(va) != number(vb) && overlap(la, lb) => {
            Some(format!("the MTU of the same links set to {va} and to {vb}"))
        }
        (
            Claim::Env {
                file,
                key,
                value: va,
            },
            Claim::Env {
                file: fb,
                key: kb,
                value: vb,
            },
        ) if file == fb && key == kb && va != vb => {
            Some(format!("{key} in {file} set two different ways"))
        }
        _ => None,
    }
}

fn mode_word(mode: SetMode) -> &'static str {
    match mode {
        SetMode::Value => "set to",
        SetMode::AtLeast => "raised to at least",
        SetMode::AtMost => "lowered to at most",
        SetMode::WidenTo => "widened to",
    }
}

/// Whether two sets of link globs may select a common link (an exact comparison, and
/// `*` overlaps everything).
fn overlap(a: &[String], b: &[String]) -> bool {
    let any = |l: &[String]| l.is_empty() || l.iter().any(|g| g == "*");
    any(a) || any(b) || a.iter().any(|g| b.contains(g))
}

fn conflicts(given: &[LoadedPlaybook], others: &[LoadedPlaybook]) -> Vec<Diagnostic> {
    let mut all = Vec::new();
    given.iter().for_each(|pb| claims(pb, true, &mut all));
    others.iter().for_each(|pb| claims(pb, false, &mut all));
    let mut out = Vec::new();
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            if !(a.given || b.given) || (a.pb.source == b.pb.source && a.rule == b.rule) {
                continue;
            }
            let Some(why) = conflict(&a.claim, &b.claim, a.given && b.given) else {
                continue;
            };
            // Reported on the given side (the later one when both are given).
            let (here, there) = if b.given { (b, a) } else { (a, b) };
            let loc = locator(here.pb);
            let at = loc.find(loc.rule(here.rule), "fix:");
            out.push(loc.at(
                at,
                format!(
                    "rule {}: its fix conflicts with rule {}/{} ({}): {why}",
                    here.rule, there.pb.playbook.name, there.rule, there.pb.source
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pb(source: &str, text: &str) -> LoadedPlaybook {
        super::super::parse(source, text).expect("parses")
    }

    const HEAD: &str = "name: p\ndescription: \"Symptom: x.\"\nrules:\n  - id: r\n    description: d\n    detect:\n";

    fn warnings(detect: &str) -> Vec<String> {
        let text = format!("{HEAD}{detect}");
        lint(&[pb("p.yml", &text)], &[])
            .into_iter()
            .map(|d| d.to_string())
            .collect()
    }

    #[test]
    fn syn_backlog_only_where_syncookies_are_required_off() {
        let fix =
            "    fix:\n      - set_sysctl: {key: net.ipv4.tcp_max_syn_backlog, at_least: 4096}\n";
        let w = warnings(&format!(
            "      counter: {{name: TcpExt.ListenDrops, above: 0}}\n{fix}"
        ));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("rule r: it sets net.ipv4.tcp_max_syn_backlog without requiring `net.ipv4.tcp_syncookies` equals 0"), "{w:?}");
        let w = warnings(&format!(
            "      all:\n        - counter: {{name: TcpExt.ListenDrops, above: 0}}\n        - sysctl: {{key: net.ipv4.tcp_syncookies, equals: 0}}\n{fix}"
        ));
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn bundled_playbooks_never_raise_syn_backlog_with_cookies_on() {
        let bundled: Vec<LoadedPlaybook> = super::super::BUNDLED
            .iter()
            .map(|(name, text)| pb(name, text))
            .collect();
        let w: Vec<String> = lint(&bundled, &[])
            .into_iter()
            .map(|d| d.to_string())
            .filter(|d| d.contains("tcp_max_syn_backlog"))
            .collect();
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn contradictory_comparisons_in_one_condition_or_across_all() {
        let w = warnings("      sysctl: {key: net.core.somaxconn, below: 10, above: 20}\n");
        assert_eq!(
            w,
            [
                "p.yml:6:5: rule r: can never fire: no value of sysctl net.core.somaxconn is < 10 and > 20"
            ]
        );
        let w = warnings(
            "      all:\n        - counter: {name: TcpExt.ListenOverflows, at_most: 5}\n        - counter: {name: TcpExt.ListenOverflows, above: 5}\n",
        );
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("counter TcpExt.ListenOverflows is <= 5 and > 5"),
            "{w:?}"
        );
        let w = warnings("      sysctl: {key: a.b, equals: 3, above: 5}\n");
        assert_eq!(w.len(), 1, "{w:?}");
        let w = warnings(
            "      any:\n        - sysctl: {key: a.b, equals: 1}\n        - sysctl: {key: a.b, equals: 1, not_equals: 1}\n",
        );
        assert!(
            w.len() == 1 && w[0].contains("a branch of `any` never holds"),
            "{w:?}"
        );
    }

    #[test]
    fn satisfiable_comparisons_and_not_are_quiet() {
        for ok in [
            "      sysctl: {key: a.b, above: 10, below: 20}\n",
            "      sysctl: {key: a.b, at_least: 5, at_most: 5}\n",
            "      all:\n        - sysctl: {key: a.b, below: 10}\n        - sysctl: {key: a.c, above: 20}\n",
            "      any:\n        - sysctl: {key: a.b, below: 10}\n        - sysctl: {key: a.b, above: 20}\n",
            "      not:\n        sysctl: {key: a.b, below: 10, above: 20}\n",
            "      sysctl: {key: a.b, measure: range_width, below: 10}\n",
        ] {
            assert_eq!(warnings(ok), Vec::<String>::new(), "{ok}");
        }
    }

    #[test]
    fn conflicting_fixes_with_another_playbook() {
        let mine = pb(
            "mine.yml",
            "name: mine\ndescription: \"Symptom: x.\"\nrules:\n  - id: low\n    description: d\n    detect:\n      sysctl: {key: net.core.somaxconn, below: 10}\n    fix:\n      - set_sysctl: {key: net.core.somaxconn, value: 1024}\n",
        );
        let bundled = super::super::load_bundled().expect("bundled");
        let w: Vec<String> = lint(std::slice::from_ref(&mine), &bundled)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("mine.yml:8:5: rule low: its fix conflicts with rule listen-backlog/")
                && w[0].ends_with(
                    "net.core.somaxconn: set to 1024 and raised to at least 4096 cannot both hold"
                ),
            "{w:?}"
        );
        // The bundled playbooks agree with each other.
        assert_eq!(lint(&bundled, &[]), Vec::new());
    }

    #[test]
    fn description_must_name_the_symptom() {
        let text = "name: p\ndescription: Raises a value.\nrules:\n  - id: r\n    description: d\n    detect:\n      sysctl: {key: a.b, below: 1}\n";
        let w = lint(&[pb("p.yml", text)], &[]);
        assert_eq!(w.len(), 1);
        assert!(
            w[0].to_string()
                .starts_with("p.yml:2:1: the description does not say which symptom")
        );
    }
}
