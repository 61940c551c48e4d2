//! Link and qdisc rules: which links a `link` / `qdisc` condition matches, and the
//! per-link changes that `set_mtu` and `delete_root_qdisc` plan for them.
//!
//! Pure: no I/O, used by `detect` and `plan`. A link action acts on the links that
//! the rule's own conditions matched (walking `all` / `any`, not `not`), so each
//! matched link becomes its own resource in the plan. Planning never asks for an MTU
//! outside the range the kernel reports for a link (min/max MTU): that is a plan
//! error, not a failed apply.

use glob::Pattern;

use crate::detect::Evidence;
use crate::facts::netlink::{Link, Qdisc};
use crate::facts::{Fact, Facts};
use crate::plan::Mutation;
use crate::playbook::{
    CompareOp, Condition, DeleteRootQdisc, LinkCondition, QdiscCondition, Scalar, SetMtu, Vars,
    scalar_text,
};

/// Whether a condition holds, with its evidence; `Err` is why it cannot be decided.
pub type Decided = Result<(bool, Vec<Evidence>), String>;

fn number(s: &Scalar, vars: &Vars) -> Result<f64, String> {
    let text = scalar_text(s, vars)?;
    text.trim()
        .parse::<f64>()
        .map_err(|_| format!("{text:?} is not a number"))
}

fn pattern(glob: &str, vars: &Vars) -> Result<Pattern, String> {
    let glob = crate::playbook::expand(glob, vars)?;
    Pattern::new(&glob).map_err(|e| format!("bad glob {glob:?}: {e}"))
}

fn links(facts: &Facts) -> Result<&Vec<Link>, String> {
    match &facts.links {
        Fact::Value(v) => Ok(v),
        Fact::Unknown(why) => Err(format!("links: {why}")),
    }
}

fn qdiscs(facts: &Facts) -> Result<&Vec<Qdisc>, String> {
    match &facts.qdiscs {
        Fact::Value(v) => Ok(v),
        Fact::Unknown(why) => Err(format!("qdiscs: {why}")),
    }
}

/// The tests a link passes, or `None` when it does not match.
fn link_matches(
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

fn qdisc_matches(
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
fn target_conditions<'a>(c: &'a Condition, out: &mut Vec<&'a Condition>) {
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

/// Outcomes of one action: one per target link (`Ok(None)` when already in effect).
pub type Planned = Vec<Result<Option<Mutation>, String>>;

/// The MTU changes a `set_mtu` asks for on the links the rule matched.
pub fn plan_set_mtu(detect: &Condition, a: &SetMtu, vars: &Vars, facts: &Facts) -> Planned {
    let mut conds = Vec::new();
    target_conditions(detect, &mut conds);
    let result = (|| {
        let text = scalar_text(&a.value, vars)?;
        let target: u32 = text
            .trim()
            .parse()
            .map_err(|_| format!("set_mtu: {text:?} is not an MTU"))?;
        let mut selectors = Vec::new();
        for c in conds {
            if let Condition::Link(l) = c {
                selectors.push((l, pattern(&l.name, vars)?));
            }
        }
        if selectors.is_empty() {
            return Err("set_mtu needs a `link` condition in the rule to choose links".into());
        }
        let mut out = Vec::new();
        for link in links(facts)? {
            let mut matched = false;
            for (l, glob) in &selectors {
                if link_matches(l, glob, link, vars)?.is_some() {
                    matched = true;
                    break;
                }
            }
            if matched {
                out.push(plan_one_mtu(link, target));
            }
        }
        Ok(out)
    })();
    result.unwrap_or_else(|e| vec![Err(e)])
}

fn plan_one_mtu(link: &Link, target: u32) -> Result<Option<Mutation>, String> {
    if link.mtu == target {
        return Ok(None);
    }
    if let Some(max) = link.max_mtu
        && max > 0
        && target > max
    {
        return Err(format!(
            "cannot set the MTU of {} to {target}: its maximum MTU is {max}",
            link.name
        ));
    }
    if let Some(min) = link.min_mtu
        && target < min
    {
        return Err(format!(
            "cannot set the MTU of {} to {target}: its minimum MTU is {min}",
            link.name
        ));
    }
    Ok(Some(Mutation::LinkMtu {
        link: link.name.clone(),
        ifindex: link.index,
        before: link.mtu,
        after: target,
    }))
}

/// The deletions a `delete_root_qdisc` asks for on the qdiscs the rule matched.
pub fn plan_delete_root_qdisc(
    detect: &Condition,
    a: &DeleteRootQdisc,
    vars: &Vars,
    facts: &Facts,
) -> Planned {
    let mut conds = Vec::new();
    target_conditions(detect, &mut conds);
    let result = (|| {
        let mut selectors = Vec::new();
        for c in conds {
            if let Condition::Qdisc(q) = c {
                selectors.push((q, pattern(&q.link, vars)?));
            }
        }
        if selectors.is_empty() {
            return Err(
                "delete_root_qdisc needs a `qdisc` condition in the rule to choose qdiscs".into(),
            );
        }
        let mut out = Vec::new();
        for q in qdiscs(facts)? {
            if q.spec.kind != a.kind {
                continue;
            }
            let mut matched = false;
            for (c, glob) in &selectors {
                if qdisc_matches(c, glob, q, vars)?.is_some() {
                    matched = true;
                    break;
                }
            }
            if matched {
                out.push(Ok(Some(Mutation::RootQdisc {
                    link: q.link.clone(),
                    ifindex: q.ifindex,
                    before: Some(q.spec.clone()),
                    after: None,
                })));
            }
        }
        Ok(out)
    })();
    result.unwrap_or_else(|e| vec![Err(e)])
}

/// The evidence that concerns a change: for a link or qdisc change, only the
/// evidence about that link (plus any evidence not about links at all), so a rule
/// matching 1,000 links does not copy 1,000 lines of evidence into every change.
pub fn evidence_for(m: &Mutation, evidence: &[Evidence]) -> Vec<Evidence> {
    let name = match m {
        Mutation::LinkMtu { link, .. } | Mutation::RootQdisc { link, .. } => link,
        _ => return evidence.to_vec(),
    };
    let mine_link = format!("link {name} (");
    let mine_qdisc = format!("qdisc {name} root");
    evidence
        .iter()
        .filter(|e| {
            let about_link = e.fact.starts_with("link ") || e.fact.starts_with("qdisc ");
            !about_link || e.fact.starts_with(&mine_link) || e.fact == mine_qdisc
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::qdisc::{QdiscSpec, TC_H_ROOT};

    fn link(index: u32, name: &str, kind: &str, mtu: u32, max: u32) -> Link {
        Link {
            index,
            name: name.into(),
            kind: kind.into(),
            mtu,
            min_mtu: Some(68),
            max_mtu: Some(max),
            state: "up".into(),
        }
    }

    fn facts(links: Vec<Link>, qdiscs: Vec<Qdisc>) -> Facts {
        Facts {
            links: Fact::Value(links),
            qdiscs: Fact::Value(qdiscs),
            ..Facts::default()
        }
    }

    fn cond(yaml: &str) -> Condition {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn mtu_rule_picks_low_veth_and_ethernet_links_only() {
        let f = facts(
            vec![
                link(1, "lo", "loopback", 65536, 0),
                link(2, "eth0", "ethernet", 576, 9000),
                link(3, "v0", "veth", 1500, 65535),
                link(4, "tun0", "ipip", 1480, 65515),
                link(5, "old0", "ethernet", 576, 1000),
            ],
            vec![],
        );
        let detect =
            cond("link: {name: '*', kind: [veth, ethernet], below: 1500, max_mtu_at_least: 1500}");
        let Condition::Link(l) = &detect else {
            panic!()
        };
        let (holds, ev) = eval_link(l, &f, &Vars::default()).unwrap();
        assert!(holds);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].fact, "link eth0 (ethernet)");
        assert_eq!(ev[0].test, "mtu 576 < 1500, max mtu 9000 >= 1500");
        let planned = plan_set_mtu(
            &detect,
            &SetMtu {
                value: Scalar::Integer(1500),
            },
            &Vars::default(),
            &f,
        );
        assert_eq!(
            planned,
            vec![Ok(Some(Mutation::LinkMtu {
                link: "eth0".into(),
                ifindex: 2,
                before: 576,
                after: 1500
            }))]
        );
    }

    #[test]
    fn mtu_above_maximum_or_below_minimum_is_a_plan_error() {
        let f = facts(vec![link(2, "eth0", "ethernet", 576, 1000)], vec![]);
        let detect = cond("link: {below: 1500}");
        let set = |v| SetMtu {
            value: Scalar::Integer(v),
        };
        let err = plan_set_mtu(&detect, &set(1500), &Vars::default(), &f);
        assert!(
            matches!(&err[0], Err(e) if e.contains("maximum MTU is 1000")),
            "{err:?}"
        );
        let err = plan_set_mtu(&detect, &set(60), &Vars::default(), &f);
        assert!(
            matches!(&err[0], Err(e) if e.contains("minimum MTU is 68")),
            "{err:?}"
        );
        let err = plan_set_mtu(
            &cond("not: {link: {below: 1}}"),
            &set(1500),
            &Vars::default(),
            &f,
        );
        assert!(matches!(&err[0], Err(e) if e.contains("needs a `link` condition")));
    }

    fn netem_qdisc(link: &str, ifindex: u32, loss: f64) -> Qdisc {
        let mut b = Vec::new();
        let p = (loss / 100.0 * f64::from(u32::MAX)) as u32;
        for v in [0u32, 1000, p, 0, 0, 0] {
            b.extend_from_slice(&v.to_ne_bytes());
        }
        let spec = QdiscSpec {
            kind: "netem".into(),
            handle: 0x800d_0000,
            parent: TC_H_ROOT,
            options: crate::domain::qdisc::to_hex(&b),
        };
        Qdisc {
            link: link.into(),
            ifindex,
            netem: crate::domain::qdisc::parse_netem(&b).ok(),
            spec,
        }
    }

    #[test]
    fn netem_with_loss_is_deleted_and_default_qdiscs_are_left_alone() {
        let mut default = netem_qdisc("eth1", 3, 0.0);
        default.spec = QdiscSpec {
            kind: "noqueue".into(),
            handle: 0,
            parent: TC_H_ROOT,
            options: String::new(),
        };
        default.netem = None;
        let f = facts(
            vec![],
            vec![
                netem_qdisc("eth0", 2, 30.0),
                netem_qdisc("eth2", 4, 0.0),
                default,
            ],
        );
        let detect = cond("any: [{qdisc: {kind: netem, loss_above: 0}}, {qdisc: {kind: noqueue}}]");
        let Condition::Any(list) = &detect else {
            panic!()
        };
        let Condition::Qdisc(q) = &list[0] else {
            panic!()
        };
        let (holds, ev) = eval_qdisc(q, &f, &Vars::default()).unwrap();
        assert!(holds);
        assert_eq!(ev[0].observed, "netem limit 1000 loss 30%");
        let planned = plan_delete_root_qdisc(
            &detect,
            &DeleteRootQdisc {
                kind: "netem".into(),
            },
            &Vars::default(),
            &f,
        );
        assert_eq!(planned.len(), 1);
        let Ok(Some(m)) = &planned[0] else { panic!() };
        assert_eq!(m.resource(), "qdisc:eth0 root");
        assert_eq!(m.after(), "(none)");
        assert!(m.before().contains("loss 30%"), "{}", m.before());
        assert_eq!(m.inverse().after(), m.before());
    }

    #[test]
    fn unknown_links_leave_the_condition_undecided() {
        let f = Facts::default();
        let Condition::Link(l) = cond("link: {below: 1500}") else {
            panic!()
        };
        assert!(
            eval_link(&l, &f, &Vars::default())
                .unwrap_err()
                .contains("not gathered")
        );
    }

    #[test]
    fn change_evidence_is_only_about_its_own_link() {
        let ev = |fact: &str| Evidence {
            fact: fact.into(),
            observed: String::new(),
            test: String::new(),
        };
        let all = vec![ev("link a (veth)"), ev("link ab (veth)"), ev("sysctl x")];
        let m = Mutation::LinkMtu {
            link: "a".into(),
            ifindex: 1,
            before: 1,
            after: 2,
        };
        let kept: Vec<String> = evidence_for(&m, &all).into_iter().map(|e| e.fact).collect();
        assert_eq!(kept, vec!["link a (veth)", "sysctl x"]);
    }
}
