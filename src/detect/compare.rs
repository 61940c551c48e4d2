//! Comparisons shared by the condition families: a measured value against a
//! condition's `equals` / `below` / ... operands, recording the evidence either way.
//!
//! Pure: no I/O.

use crate::facts::Fact;
use crate::facts::counters::min_growth;
use crate::facts::window::{Readings, left_out, paired, u32_growth};
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

/// Compares the growth over the sampling window of a per-CPU counter that the kernel
/// keeps as 32 bits, summed over the CPUs present in both readings (a second value
/// below the first wrapped once at 2^32). The evidence shows each CPU's growth, the
/// window and the since-boot totals. `value` reads the counter from a row (`None`: the
/// row lacks it, and `missing` says so). Not sampled (the since-boot total was below
/// the smallest growth that could fire): false, with that total as the evidence. A
/// single since-boot reading decides nothing.
#[allow(clippy::too_many_arguments)]
pub fn per_cpu_growth<R>(
    fact: &str,
    readings: &Readings<Vec<R>>,
    cpu: impl Fn(&R) -> u32,
    value: impl Fn(&R) -> Option<u64>,
    missing: &str,
    cmp: &Compare,
    vars: &Vars,
    out: &mut Outcome,
) -> Truth {
    let sampled = match readings.sampled() {
        Ok(s) => s,
        Err(why) => return unknown(out, fact, why),
    };
    let column = |rows: &[R]| -> Option<Vec<(u32, u64)>> {
        rows.iter().map(|r| Some((cpu(r), value(r)?))).collect()
    };
    let Some(first) = column(&sampled.first) else {
        return unknown(out, fact, missing);
    };
    let Some(second) = &sampled.second else {
        let since_boot: u64 = first.iter().map(|(_, v)| v).sum();
        let needed = min_growth(cmp, vars);
        if needed > 0 && since_boot < needed {
            out.evidence.push(Evidence {
                fact: fact.to_owned(),
                observed: format!("{since_boot} since boot, not sampled"),
                test: format!("{since_boot} since boot < {needed} needed to fire"),
            });
            return Truth::False;
        }
        return unknown(out, fact, "read once, not sampled over a window");
    };
    let Some(second) = column(second) else {
        return unknown(out, fact, missing);
    };
    let (pairs, alone) = paired(&first, &second, |r| r.0);
    if pairs.is_empty() {
        return unknown(out, fact, "no CPU is in both readings");
    }
    let (mut growth, mut before, mut after) = (0u64, 0u64, 0u64);
    let mut per_cpu = Vec::new();
    for ((cpu, a), (_, b)) in pairs {
        let Some(g) = u32_growth(*a, *b) else {
            let why = format!("cpu{cpu} went from {a} to {b}: not a 32-bit counter's growth");
            return unknown(out, fact, &why);
        };
        growth = growth.saturating_add(g);
        before = before.saturating_add(*a);
        after = after.saturating_add(*b);
        per_cpu.push(format!("cpu{cpu} +{g}"));
    }
    let mut observed = format!(
        "+{growth} in {:.1}s ({}; {before} → {after} since boot)",
        sampled.window,
        per_cpu.join(", ")
    );
    if let Some(note) = left_out(&alone) {
        observed.push_str(&format!("; {note}"));
    }
    compare(
        fact,
        &observed,
        &Measured::Number(growth as f64),
        &format!("+{growth}"),
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

#[cfg(test)]
mod per_cpu_growth_tests {
    use super::*;
    use crate::facts::window::Sampled;

    fn above_zero() -> Compare {
        Compare {
            above: Some(Scalar::Integer(0)),
            ..Compare::default()
        }
    }

    fn eval(readings: &Readings<Vec<(u32, Option<u64>)>>) -> (Truth, Outcome) {
        let mut out = Outcome::default();
        let truth = per_cpu_growth(
            "f",
            readings,
            |r| r.0,
            |r| r.1,
            "no column",
            &above_zero(),
            &Vars::default(),
            &mut out,
        );
        (truth, out)
    }

    fn window(
        first: &[(u32, u64)],
        second: Option<&[(u32, u64)]>,
    ) -> Readings<Vec<(u32, Option<u64>)>> {
        let rows = |r: &[(u32, u64)]| r.iter().map(|&(c, v)| (c, Some(v))).collect();
        Readings::Window(Sampled {
            first: rows(first),
            second: second.map(rows),
            window: 1.0,
        })
    }

    #[test]
    fn old_counts_without_growth_do_not_fire() {
        let (truth, out) = eval(&window(&[(0, 3), (1, 0)], Some(&[(0, 3), (1, 0)])));
        assert_eq!(truth, Truth::False);
        assert_eq!(
            out.evidence[0].observed,
            "+0 in 1.0s (cpu0 +0, cpu1 +0; 3 → 3 since boot)"
        );
    }

    #[test]
    fn growth_fires_with_per_cpu_evidence_and_wraps_at_2_32() {
        let (truth, out) = eval(&window(
            &[(0, 3), (1, 0xffff_ffff)],
            Some(&[(0, 15), (1, 1)]),
        ));
        assert_eq!(truth, Truth::True);
        assert!(
            out.evidence[0]
                .observed
                .starts_with("+14 in 1.0s (cpu0 +12, cpu1 +2;"),
            "{:?}",
            out.evidence
        );
    }

    #[test]
    fn undecidable_readings_are_unknown_never_fired() {
        // A single since-boot reading from an older snapshot.
        let (truth, out) = eval(&Readings::SinceBoot(vec![(0, Some(9))]));
        assert_eq!(truth, Truth::Unknown);
        assert!(
            out.unknown[0].contains("one since-boot reading"),
            "{:?}",
            out.unknown
        );
        // Going down from above 2^32 is no 32-bit counter.
        let (truth, _) = eval(&window(&[(0, 1 << 40)], Some(&[(0, 1)])));
        assert_eq!(truth, Truth::Unknown);
        // No CPU in both readings.
        let (truth, out) = eval(&window(&[(0, 1)], Some(&[(1, 5)])));
        assert_eq!(truth, Truth::Unknown);
        assert!(
            out.unknown[0].contains("no CPU is in both"),
            "{:?}",
            out.unknown
        );
        // A missing column.
        let readings = Readings::Window(Sampled {
            first: vec![(0, None)],
            second: Some(vec![(0, None)]),
            window: 1.0,
        });
        assert_eq!(eval(&readings).0, Truth::Unknown);
    }

    #[test]
    fn unsampled_tables_decide_only_what_their_totals_prove() {
        // 0 since boot: no growth above 0 is possible.
        let (truth, out) = eval(&window(&[(0, 0), (1, 0)], None));
        assert_eq!(truth, Truth::False);
        assert_eq!(out.evidence[0].test, "0 since boot < 1 needed to fire");
        // Counts that could have grown, but no second reading: undecided.
        assert_eq!(eval(&window(&[(0, 4)], None)).0, Truth::Unknown);
    }
}
