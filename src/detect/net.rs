//! The `link` and `qdisc` conditions: which links and root qdiscs a condition
//! matches, with the tests each passed.
//!
//! Pure: no I/O. `plan::net` uses the same matching ([`link_matches`],
//! [`qdisc_matches`], [`target_conditions`]) to choose the links its actions change.

use glob::Pattern;

use crate::facts::net::{Link, Qdisc};
use crate::facts::{Fact, Facts};
use crate::finding::Evidence;
use crate::playbook::{
    CompareOp, Condition, LinkCondition, QdiscCondition, Scalar, Vars, scalar_text,
};

/// Whether a condition holds, with its evidence; `Err` is why it cannot be decided.
pub type Decided = Result<(bool, Vec<Evidence>), String>;

fn number(s: &Scalar, vars: &Vars) -> Result<f64, String> {
    let text = scalar_text(s, vars)?;
    text.trim()
        .parse::<f64>()
        .map_err(|_| format!("{text:?} is not a number"))
}

pub fn pattern(glob: &str, vars: &Vars) -> Result<Pattern, String> {
    let glob = crate::playbook::expand(glob, vars)?;
    Pattern::new(&glob).map_err(|e| format!("bad glob {glob:?}: {e}"))
}

pub fn links(facts: &Facts) -> Result<&Vec<Link>, String> {
    match &facts.links {
        Fact::Value(v) => Ok(v),
        Fact::Unknown(why) => Err(format!("links: {why}")),
    }
}

pub fn qdiscs(facts: &Facts) -> Result<&Vec<Qdisc>, String> {
    match &facts.qdiscs {
        Fact::Value(v) => Ok(v),
        Fact::Unknown(why) => Err(format!("qdiscs: {why}")),
    }
}

/// The tests a link passes, or `None` when it does not match.
pub fn link_matches(
    c: &LinkCondition,
    glob: &Pattern,
    link: &Link,
    vars: &Vars,
) -> Result<Option<String>, String> {
    if !glob.matches(&link.name) || !(c.kind.is_empty() || c.kind.contains(&link.kind)) {
        return Ok(None);
    }
    let mut tests = Vec::new();
    for (op, operand) in c.compare().operators() {
        let want = number(operand, vars)?;
        let mtu = f64::from(link.mtu);
        let holds = match op {
            CompareOp::Equals => mtu == want,
            CompareOp::NotEquals => mtu != want,
            CompareOp::Below => mtu < want,
            CompareOp::Above => mtu > want,
            CompareOp::AtLeast => mtu >= want,
            CompareOp::AtMost => mtu <= want,
        };
        if !holds {
            return Ok(None);
        }
        tests.push(format!("mtu {} {} {want}", link.mtu, op.symbol()));
    }
    if let Some(min) = &c.max_mtu_at_least {
        let want = number(min, vars)?;
        match link.max_mtu {
            // 0: the driver sets no maximum.
            Some(0) | None => tests.push("no maximum MTU reported".to_owned()),
            Some(max) if f64::from(max) >= want => tests.push(format!("max mtu {max} >= {want}")),
            Some(_) => return Ok(None),
        }
    }
    Ok(Some(tests.join(", ")))
}

fn selector(c: &LinkCondition) -> String {
    let mut s = format!("links named {:?}", c.name);
    if !c.kind.is_empty() {
        s.push_str(&format!(" of kind {}", c.kind.join("/")));
    }
    s
}

/// Evaluates a `link` condition.
pub fn eval_link(c: &LinkCondition, facts: &Facts, vars: &Vars) -> Decided {
    let all = links(facts)?;
    let glob = pattern(&c.name, vars)?;
    let mut evidence = Vec::new();
    for link in all {
        if let Some(test) = link_matches(c, &glob, link, vars)? {
            evidence.push(Evidence {
                fact: format!("link {} ({})", link.name, link.kind),
                observed: format!("mtu {}", link.mtu),
                test,
            });
        }
    }
    if evidence.is_empty() {
        let eligible = all
            .iter()
            .filter(|l| glob.matches(&l.name) && (c.kind.is_empty() || c.kind.contains(&l.kind)))
            .count();
        return Ok((
            false,
            vec![Evidence {
                fact: selector(c),
                observed: format!("{eligible} of {} link(s) selected", all.len()),
                test: "none matches".to_owned(),
            }],
        ));
    }
    Ok((true, evidence))
}

pub fn qdisc_matches(
    c: &QdiscCondition,
    glob: &Pattern,
    q: &Qdisc,
    vars: &Vars,
) -> Result<Option<String>, String> {
    if q.is_default()
        || !glob.matches(&q.link)
        || c.kind.as_ref().is_some_and(|k| *k != q.spec.kind)
    {
        return Ok(None);
    }
    let thresholds = [
        ("loss", &c.loss_above, "%"),
        ("delay", &c.delay_above_ms, "ms"),
        ("jitter", &c.jitter_above_ms, "ms"),
        ("duplicate", &c.duplicate_above, "%"),
        ("corrupt", &c.corrupt_above, "%"),
        ("reorder", &c.reorder_above, "%"),
    ];
    // Facts from `tune facts` carry the parsed options; a hand-written snapshot may
    // carry only the raw bytes, which are parsed here (pure) the same way.
    let parsed = match &q.netem {
        Some(n) => Some(n.clone()),
        None if q.spec.kind == "netem" => {
            crate::domain::qdisc::parse_netem(&q.spec.option_bytes()).ok()
        }
        None => None,
    };
    let mut tests = Vec::new();
    for (name, threshold, unit) in thresholds {
        let Some(threshold) = threshold else { continue };
        let want = number(threshold, vars)?;
        let Some(n) = &parsed else {
            if q.spec.kind == "netem" {
                return Err(format!("netem options of {} could not be parsed", q.link));
            }
            return Ok(None);
        };
        let have = match name {
            "loss" => n.loss_percent,
            "delay" => n.delay_us / 1000.0,
            "jitter" => n.jitter_us / 1000.0,
            "duplicate" => n.duplicate_percent,
            "corrupt" => n.corrupt_percent,
            _ => n.reorder_percent,
        };
        if have <= want {
            return Ok(None);
        }
        tests.push(format!("{name} {have}{unit} > {want}{unit}"));
    }
    if tests.is_empty() {
        tests.push(format!("root qdisc is {}", q.spec.kind));
    }
    Ok(Some(tests.join(", ")))
}

fn describe_qdisc(q: &Qdisc) -> String {
    let summary = crate::domain::qdisc::summary(&q.spec.kind, &q.spec.option_bytes());
    format!("{} {}", q.spec.kind, summary).trim_end().to_owned()
}

/// Evaluates a `qdisc` condition.
pub fn eval_qdisc(c: &QdiscCondition, facts: &Facts, vars: &Vars) -> Decided {
    let all = qdiscs(facts)?;
    let glob = pattern(&c.link, vars)?;
    let mut evidence = Vec::new();
    for q in all {
        if let Some(test) = qdisc_matches(c, &glob, q, vars)? {
            evidence.push(Evidence {
                fact: format!("qdisc {} root", q.link),
                observed: describe_qdisc(q),
                test,
            });
        }
    }
    if evidence.is_empty() {
        let added = all.iter().filter(|q| !q.is_default()).count();
        return Ok((
            false,
            vec![Evidence {
                fact: format!(
                    "root qdiscs{} on links {:?}",
                    c.kind
                        .as_ref()
                        .map(|k| format!(" of kind {k}"))
                        .unwrap_or_default(),
                    c.link
                ),
                observed: format!("{added} non-default root qdisc(s)"),
                test: "none matches".to_owned(),
            }],
        ));
    }
    Ok((true, evidence))
}

/// The conditions of a rule that choose targets: those reachable without `not`.
pub fn target_conditions<'a>(c: &'a Condition, out: &mut Vec<&'a Condition>) {
    match c {
        Condition::All(list) | Condition::Any(list) => {
            for c in list {
                target_conditions(c, out);
            }
        }
        Condition::Not(_) => {}
        other => out.push(other),
    }
}
