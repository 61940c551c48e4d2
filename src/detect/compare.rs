//! Comparisons shared by the condition families: a measured value against a
//! condition's `equals` / `below` / ... operands, recording the evidence either way.
//!
//! Pure: no I/O.

use crate::facts::Fact;
use crate::finding::{Evidence, Truth};
use crate::playbook::{Compare, CompareOp, Scalar, Vars, scalar_text};

/// The evidence and the reasons for unknown facts gathered while evaluating a condition.
#[derive(Debug, Default)]
pub struct Outcome {
    pub evidence: Vec<Evidence>,
    pub unknown: Vec<String>,
}

/// Compares a counted fact (a counter, a number of sockets).
pub fn count(
    fact: &str,
    value: Fact<&u64>,
    cmp: &Compare,
    vars: &Vars,
    out: &mut Outcome,
) -> Truth {
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

/// Compares the sum of per-CPU counters; the evidence shows each CPU's value.
pub fn per_cpu_total(
    fact: &str,
    values: &[(u32, u64)],
    cmp: &Compare,
    vars: &Vars,
    out: &mut Outcome,
) -> Truth {
    let total: u64 = values.iter().map(|(_, v)| v).sum();
    let per_cpu: Vec<String> = values
        .iter()
        .map(|(cpu, v)| format!("cpu{cpu} {v}"))
        .collect();
    let observed = format!("{total} ({})", per_cpu.join(", "));
    let label = total.to_string();
    compare(
        fact,
        &observed,
        &Measured::Number(total as f64),
        &label,
        cmp,
        vars,
        out,
    )
}

pub fn unknown(out: &mut Outcome, fact: &str, why: &str) -> Truth {
    out.unknown.push(format!("{fact}: {why}"));
    Truth::Unknown
}

pub enum Measured {
    Number(f64),
    Text(String),
}

impl Measured {
    pub fn from_text(s: &str) -> Measured {
        match s.trim().parse::<f64>() {
            Ok(n) => Measured::Number(n),
            Err(_) => Measured::Text(crate::kernel::sysctl::normalize(s)),
        }
    }
}

/// Applies every comparison; all must hold. Records the evidence either way (callers
/// above decide whether it is kept).
pub fn compare(
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
