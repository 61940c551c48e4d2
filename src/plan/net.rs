//! Planning of `set_mtu` and `delete_root_qdisc`: one change per link the rule's own
//! conditions matched.
//!
//! Pure: no I/O. A link action acts on the links that the rule's own conditions
//! matched (walking `all` / `any`, not `not`; see [`crate::detect::net`]), so each
//! matched link becomes its own resource in the plan. Planning never asks for an MTU
//! outside the range the kernel reports for a link (min/max MTU): that is a plan
//! error, not a failed apply.

use std::collections::HashSet;

use crate::detect::net::{
    LinkIndex, PathMtu, link_matches, links, path_cap, pattern, qdisc_matches, qdiscs,
    target_conditions,
};
use crate::facts::Facts;
use crate::facts::net::Link;
use crate::finding::Evidence;
use crate::playbook::{Condition, DeleteRootQdisc, SetMtu, Vars, scalar_text};

use super::mutation::Mutation;

/// Outcomes of one action: one per target link (`Ok(None)` when already in effect).
pub type Planned = Vec<Result<Option<Mutation>, String>>;

/// The MTU changes a `set_mtu` asks for on the links the rule matched.
pub fn plan_set_mtu(detect: &Condition, a: &SetMtu, vars: &Vars, facts: &Facts) -> Planned {
    let mut conds = Vec::new();
    target_conditions(detect, &mut conds);
    let result = (|| {
        let value = match (&a.value, a.to_path) {
            (Some(v), false) => {
                let text = scalar_text(v, vars)?;
                Some(
                    text.trim()
                        .parse::<u32>()
                        .map_err(|_| format!("set_mtu: {text:?} is not an MTU"))?,
                )
            }
            (None, true) => None,
            _ => return Err("set_mtu takes exactly one of `value` and `to_path`".into()),
        };
        let mut selectors = Vec::new();
        for c in conds {
            if let Condition::Link(l) = c {
                selectors.push((l, pattern(&l.name, vars)?));
            }
        }
        if selectors.is_empty() {
            return Err("set_mtu needs a `link` condition in the rule to choose links".into());
        }
        let all = links(facts)?;
        let index = LinkIndex::new(all);
        let mut matched = Vec::new();
        for link in all {
            for (l, glob) in &selectors {
                if let Some(m) = link_matches(l, glob, link, &index, vars)? {
                    matched.push((link, m));
                    break;
                }
            }
        }
        let targets: HashSet<u32> = matched.iter().map(|(l, _)| l.index).collect();
        let mut out = Vec::new();
        for (link, m) in &matched {
            out.push(match value {
                Some(target) => {
                    let raised =
                        |other: &Link| target > other.mtu && targets.contains(&other.index);
                    capped_by_path(link, target, &index, &raised)
                        .and_then(|()| plan_one_mtu(link, target))
                }
                None => match &m.path {
                    Some(PathMtu {
                        blocked: Some(why), ..
                    }) => Err(why.clone()),
                    Some(PathMtu { want, .. }) => plan_one_mtu(link, *want),
                    None => Err(format!(
                        "set_mtu to_path needs `path_mismatch: true` on the `link` condition that matched {}",
                        link.name
                    )),
                },
            });
        }
        Ok(out)
    })();
    result.unwrap_or_else(|e| vec![Err(e)])
}

/// An exact MTU never goes above what the link's path carries: its peer, master or
/// lower device, unless this plan raises that one as well.
fn capped_by_path(
    link: &Link,
    target: u32,
    links: &LinkIndex,
    raised: &dyn Fn(&Link) -> bool,
) -> Result<(), String> {
    if target <= link.mtu {
        return Ok(());
    }
    match path_cap(link, links, raised)? {
        Some((cap, what)) if target > cap => Err(format!(
            "cannot set the MTU of {} to {target}: {what} allows only {cap}",
            link.name
        )),
        _ => Ok(()),
    }
}

fn plan_one_mtu(link: &Link, target: u32) -> Result<Option<Mutation>, String> {
    if link.mtu == target {
        return Ok(None);
    }
    if let Some(max) = link.max_mtu.get()
        && max > 0
        && target > max
    {
        return Err(format!(
            "cannot set the MTU of {} to {target}: its maximum MTU is {max}",
            link.name
        ));
    }
    if let Some(min) = link.min_mtu.get()
        && target < min
    {
        return Err(format!(
            "cannot set the MTU of {} to {target}: its minimum MTU is {min}",
            link.name
        ));
    }
    Ok(Some(Mutation::LinkMtu {
        link: link.name.to_string(),
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
    use crate::detect::net::{eval_link, eval_qdisc};
    use crate::domain::qdisc::{QdiscSpec, TC_H_ROOT};
    use crate::facts::Fact;
    use crate::facts::net::Qdisc;
    use crate::facts::net::Word;
    use crate::playbook::Scalar;

    fn link(index: u32, name: &str, kind: &str, mtu: u32, max: u32) -> Link {
        Link {
            index,
            name: name.into(),
            kind: Word::new(kind).expect("a word"),
            mtu,
            min_mtu: Some(68).into(),
            max_mtu: Some(max).into(),
            state: Word::new("up").expect("a word"),
            ..Link::default()
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
                value: Some(Scalar::Integer(1500)),
                to_path: false,
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
    fn to_path_raises_to_the_larger_end_and_never_past_another_end() {
        let mut port = link(5, "p0", "veth", 1400, 65535);
        port.link = Some(6).into();
        port.master = Some(3).into();
        let mut peer = link(6, "p1", "veth", 1400, 65535);
        peer.link = Some(5).into();
        let bridge = link(3, "br0", "bridge", 1500, 65535);
        let detect = cond("link: {path_mismatch: true}");
        let to_path = SetMtu {
            value: None,
            to_path: true,
        };
        let planned = plan_set_mtu(
            &detect,
            &to_path,
            &Vars::default(),
            &facts(vec![port.clone(), peer.clone(), bridge.clone()], vec![]),
        );
        assert!(
            matches!(&planned[..], [Err(e)] if e == "cannot raise the MTU of p0 to the 1500 of its master br0 (bridge): its veth peer p1 allows only 1400"),
            "{planned:?}"
        );
        peer.mtu = 1500;
        let planned = plan_set_mtu(
            &detect,
            &to_path,
            &Vars::default(),
            &facts(vec![port, peer, bridge], vec![]),
        );
        assert_eq!(
            planned,
            vec![Ok(Some(Mutation::LinkMtu {
                link: "p0".into(),
                ifindex: 5,
                before: 1400,
                after: 1500
            }))]
        );
    }

    #[test]
    fn mtu_above_maximum_or_below_minimum_is_a_plan_error() {
        let f = facts(vec![link(2, "eth0", "ethernet", 576, 1000)], vec![]);
        let detect = cond("link: {below: 1500}");
        let set = |v| SetMtu {
            value: Some(Scalar::Integer(v)),
            to_path: false,
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
