//! Detection: evaluates each rule's condition over a facts snapshot.
//!
//! Pure: no I/O. Logic is three-valued (Kleene): a condition over an unknown fact is
//! unknown, `any` is true if one branch is true even when others are unknown, `all` is
//! false if one branch is false. A rule whose condition is true yields a *finding*
//! carrying its *evidence* — the measured values that made it fire; a rule whose
//! condition is unknown yields a finding with status `unknown` and the reasons.

pub mod net;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::facts::{Fact, Facts};
use crate::playbook::{
    Compare, CompareOp, Condition, LoadedPlaybook, Measure, Scalar, Vars, scalar_text,
};

/// A measured value that took part in a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Evidence {
    /// What was measured, e.g. `sysctl net.core.somaxconn`.
    pub fact: String,
    /// The value seen.
    pub observed: String,
    /// The test it was put to, e.g. `width 51 < 10000`.
    pub test: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FindingStatus {
    /// The rule's condition holds.
    Fired,
    /// The condition could not be decided: a fact it needs is unknown.
    Unknown,
}

/// A rule that fired, or could not be decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Finding {
    pub playbook: String,
    pub rule: String,
    pub description: String,
    pub status: FindingStatus,
    pub evidence: Vec<Evidence>,
    /// Why facts were unknown (status `unknown`), e.g. `sysctl ...: permission denied`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Truth {
    True,
    False,
    Unknown,
}

#[derive(Debug, Default)]
struct Outcome {
    evidence: Vec<Evidence>,
    unknown: Vec<String>,
}

/// Evaluates every rule of every playbook; returns the fired and undecided ones.
pub fn detect(playbooks: &[(&LoadedPlaybook, &Vars)], facts: &Facts) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (pb, vars) in playbooks {
        for rule in &pb.playbook.rules {
            let mut outcome = Outcome::default();
            let truth = eval(&rule.detect, vars, facts, &mut outcome);
            let status = match truth {
                Truth::True => FindingStatus::Fired,
                Truth::Unknown => FindingStatus::Unknown,
                Truth::False => continue,
            };
            findings.push(Finding {
                playbook: pb.playbook.name.clone(),
                rule: rule.id.clone(),
                description: rule.description.clone(),
                status,
                evidence: outcome.evidence,
                unknown: outcome.unknown,
            });
        }
    }
    findings
}

fn eval(c: &Condition, vars: &Vars, facts: &Facts, out: &mut Outcome) -> Truth {
    match c {
        Condition::All(list) => {
            let mut sub = Outcome::default();
            let mut result = Truth::True;
            for c in list {
                match eval(c, vars, facts, &mut sub) {
                    Truth::False => {
                        result = Truth::False;
                        break;
                    }
                    Truth::Unknown => result = Truth::Unknown,
                    Truth::True => {}
                }
            }
            out.unknown.extend(sub.unknown);
            if result == Truth::True {
                out.evidence.extend(sub.evidence);
            }
            result
        }
        Condition::Any(list) => {
            let mut result = Truth::False;
            for c in list {
                let mut sub = Outcome::default();
                match eval(c, vars, facts, &mut sub) {
                    Truth::True => {
                        result = Truth::True;
                        out.evidence.extend(sub.evidence);
                    }
                    Truth::Unknown => {
                        if result == Truth::False {
                            result = Truth::Unknown;
                        }
                        out.unknown.extend(sub.unknown);
                    }
                    Truth::False => {}
                }
            }
            if result == Truth::True {
                out.unknown.clear();
            }
            result
        }
        Condition::Not(inner) => {
            let mut sub = Outcome::default();
            let truth = eval(inner, vars, facts, &mut sub);
            out.unknown.extend(sub.unknown);
            match truth {
                Truth::True => Truth::False,
                Truth::Unknown => Truth::Unknown,
                Truth::False => {
                    // The inner condition's failing tests are what made `not` hold.
                    out.evidence.extend(sub.evidence.into_iter().map(|mut e| {
                        e.test = format!("not ({})", e.test);
                        e
                    }));
                    Truth::True
                }
            }
        }
        Condition::Sysctl(s) => {
            let fact_name = format!("sysctl {}", s.key);
            let value = match facts.sysctl(&s.key) {
                Fact::Value(v) => v.clone(),
                Fact::Unknown(why) => return unknown(out, &fact_name, &why),
            };
            let (measured, label) = match (&s.ratio_of, s.measure) {
                (Some(other), _) => {
                    let denom = match facts.sysctl(other) {
                        Fact::Value(v) => v.clone(),
                        Fact::Unknown(why) => {
                            return unknown(out, &format!("sysctl {other}"), &why);
                        }
                    };
                    match (value.parse::<f64>(), denom.parse::<f64>()) {
                        (Ok(n), Ok(d)) if d > 0.0 => (
                            Measured::Number(n / d),
                            format!("{value} / {denom} ({other}) = {:.3}", n / d),
                        ),
                        _ => {
                            return unknown(
                                out,
                                &fact_name,
                                &format!("cannot divide {value:?} by {other} = {denom:?}"),
                            );
                        }
                    }
                }
                (None, Measure::RangeWidth) => match crate::kernel::sysctl::parse_range(&value) {
                    Some((lo, hi)) => {
                        let width = hi - lo + 1;
                        (Measured::Number(width as f64), format!("width {width}"))
                    }
                    None => {
                        return unknown(
                            out,
                            &fact_name,
                            &format!("{value:?} is not a `low high` range"),
                        );
                    }
                },
                (None, Measure::Value) => (Measured::from_text(&value), value.clone()),
            };
            compare(
                &fact_name,
                &value,
                &measured,
                &label,
                &s.compare(),
                vars,
                out,
            )
        }
        Condition::Counter(cnt) => count(
            &format!("counter {}", cnt.name),
            facts.counter(&cnt.name),
            &cnt.compare(),
            vars,
            out,
        ),
        Condition::Sockets(s) => count(
            &format!("TCP sockets in {}", s.state.name()),
            facts.sockets_in(s.state),
            &s.compare(),
            vars,
            out,
        ),
        Condition::JvmHeap(j) => verdict(crate::domain::jvm::heap_verdict(j, vars, facts), out),
        Condition::OomKill(k) => verdict(crate::domain::jvm::oom_verdict(k, vars, facts), out),
        Condition::Link(l) => decided(out, "links", crate::detect::net::eval_link(l, facts, vars)),
        Condition::Qdisc(q) => decided(
            out,
            "qdiscs",
            crate::detect::net::eval_qdisc(q, facts, vars),
        ),
        Condition::KernelLog(k) => {
            let fact_name = format!("kernel log /{}/", k.pattern);
            let lines = match facts.kernel_log_matches(&k.pattern) {
                Fact::Value(lines) => lines,
                Fact::Unknown(why) => return unknown(out, &fact_name, &why),
            };
            let within = crate::playbook::expand(&k.within, vars).unwrap_or_default();
            let Ok(window) = humantime::parse_duration(&within) else {
                return unknown(out, &fact_name, &format!("bad window {:?}", k.within));
            };
            let since = facts.collected_at - window.as_secs_f64();
            let recent: Vec<_> = lines.iter().filter(|l| l.time >= since).collect();
            let count = recent.len() as u64;
            let observed = match recent.last() {
                Some(last) => format!("{count} line(s), last: {:?}", last.message),
                None => "0 lines".to_owned(),
            };
            let holds = count >= k.at_least;
            let evidence = Evidence {
                fact: fact_name,
                observed,
                test: format!("{count} >= {} within {within}", k.at_least),
            };
            if holds {
                out.evidence.push(evidence);
                Truth::True
            } else {
                out.evidence.push(Evidence {
                    test: format!("{count} < {} within {within}", k.at_least),
                    ..evidence
                });
                Truth::False
            }
        }
    }
}

/// Compares a counted fact (a counter, a number of sockets).
fn count(fact: &str, value: Fact<&u64>, cmp: &Compare, vars: &Vars, out: &mut Outcome) -> Truth {
    match value {
        Fact::Value(v) => {
            let text = v.to_string();
            compare(
                fact,
                &text,
                &Measured::Number(*v as f64),
                &text,
                cmp,
                vars,
                out,
            )
        }
        Fact::Unknown(why) => unknown(out, fact, &why),
    }
}

/// Takes over a verdict computed elsewhere (the JVM conditions live in `jvm`).
fn verdict(v: crate::domain::jvm::Verdict, out: &mut Outcome) -> Truth {
    out.unknown.extend(v.unknown);
    out.evidence.extend(v.evidence);
    match v.holds {
        Some(true) => Truth::True,
        Some(false) => Truth::False,
        None => Truth::Unknown,
    }
}

fn decided(out: &mut Outcome, fact: &str, result: crate::detect::net::Decided) -> Truth {
    match result {
        Ok((holds, evidence)) => {
            out.evidence.extend(evidence);
            if holds { Truth::True } else { Truth::False }
        }
        Err(why) => unknown(out, fact, &why),
    }
}

fn unknown(out: &mut Outcome, fact: &str, why: &str) -> Truth {
    out.unknown.push(format!("{fact}: {why}"));
    Truth::Unknown
}

enum Measured {
    Number(f64),
    Text(String),
}

impl Measured {
    fn from_text(s: &str) -> Measured {
        match s.trim().parse::<f64>() {
            Ok(n) => Measured::Number(n),
            Err(_) => Measured::Text(crate::kernel::sysctl::normalize(s)),
        }
    }
}

/// Applies every comparison; all must hold. Records the evidence either way (callers
/// above decide whether it is kept).
fn compare(
    fact: &str,
    observed: &str,
    measured: &Measured,
    label: &str,
    cmp: &Compare,
    vars: &Vars,
    out: &mut Outcome,
) -> Truth {
    let mut tests = Vec::new();
    let mut all_hold = true;
    for (op, operand) in cmp.operators() {
        let Some(holds) = compare_one(measured, op, operand, vars) else {
            return unknown(
                out,
                fact,
                &format!("cannot compare {observed:?} {} {operand}", op.symbol()),
            );
        };
        let shown = scalar_text(operand, vars).unwrap_or_else(|_| operand.to_string());
        let symbol = if holds { op.symbol() } else { negate(op) };
        tests.push(format!("{label} {symbol} {shown}"));
        all_hold &= holds;
    }
    out.evidence.push(Evidence {
        fact: fact.to_owned(),
        observed: observed.to_owned(),
        test: tests.join(", "),
    });
    if all_hold { Truth::True } else { Truth::False }
}

fn negate(op: CompareOp) -> &'static str {
    match op {
        CompareOp::Equals => "!=",
        CompareOp::NotEquals => "==",
        CompareOp::Below => ">=",
        CompareOp::Above => "<=",
        CompareOp::AtLeast => "<",
        CompareOp::AtMost => ">",
    }
}

fn compare_one(measured: &Measured, op: CompareOp, operand: &Scalar, vars: &Vars) -> Option<bool> {
    let text = scalar_text(operand, vars).ok()?;
    let number = text.trim().parse::<f64>().ok();
    match (measured, number) {
        (Measured::Number(m), Some(n)) => Some(match op {
            CompareOp::Equals => *m == n,
            CompareOp::NotEquals => *m != n,
            CompareOp::Below => *m < n,
            CompareOp::Above => *m > n,
            CompareOp::AtLeast => *m >= n,
            CompareOp::AtMost => *m <= n,
        }),
        (Measured::Text(t), _) => {
            let other = crate::kernel::sysctl::normalize(&text);
            match op {
                CompareOp::Equals => Some(*t == other),
                CompareOp::NotEquals => Some(*t != other),
                _ => None,
            }
        }
        (Measured::Number(_), None) => match op {
            CompareOp::Equals => Some(false),
            CompareOp::NotEquals => Some(true),
            _ => None,
        },
    }
}
