//! `set_rx_ring`: the RX ring changes a fix asks for, from the ring sizes in the facts.
//!
//! Pure: no I/O. When the rule has `rx_drops` conditions (reachable without `not`),
//! only the links they matched are raised (and only those the action's glob names);
//! otherwise every link the glob names.

use std::collections::BTreeSet;

use crate::detect::net::{links, pattern, target_conditions};
use crate::detect::rx_drops::matched_links;
use crate::facts::{Fact, Facts};
use crate::playbook::{Condition, RingTarget, SetRxRing, Vars};

use super::mutation::Mutation;
use super::net::Planned;

/// The links (ifindex, name) the rule's `rx_drops` conditions matched, or `None` when
/// it has none.
fn chosen(
    detect: &Condition,
    vars: &Vars,
    facts: &Facts,
) -> Result<Option<BTreeSet<(u32, String)>>, String> {
    let mut conds = Vec::new();
    target_conditions(detect, &mut conds);
    let mut out: Option<BTreeSet<(u32, String)>> = None;
    for c in conds {
        if let Condition::RxDrops(d) = c {
            out.get_or_insert_with(BTreeSet::new)
                .extend(matched_links(d, facts, vars)?);
        }
    }
    Ok(out)
}

/// One change per target link whose RX ring is below the target; links already there
/// and links whose driver has no ring parameters need none.
pub fn plan_set_rx_ring(detect: &Condition, a: &SetRxRing, vars: &Vars, facts: &Facts) -> Planned {
    let result = (|| {
        let glob = pattern(&a.link, vars)?;
        let chosen = chosen(detect, vars, facts)?;
        let mut out = Vec::new();
        for link in links(facts)?.iter().filter(|l| glob.matches(&l.name)) {
            if let Some(chosen) = &chosen
                && !chosen.iter().any(|(_, name)| *name == link.name)
            {
                continue;
            }
            if let Some(chosen) = &chosen
                && !chosen.contains(&(link.index, link.name.to_string()))
            {
                out.push(Err(format!(
                    "{} has another ifindex ({}) than when its drops were sampled: it was re-created; plan again",
                    link.name, link.index
                )));
                continue;
            }
            out.push(match facts.rings.get(link.name.as_str()) {
                None => Err(format!("rings of {}: not gathered", link.name)),
                Some(Fact::Unknown(why)) => Err(format!("rings of {}: {why}", link.name)),
                Some(Fact::Value(None)) => Ok(None),
                Some(Fact::Value(Some(r))) => {
                    let target = match a.to {
                        RingTarget::Max => r.rx_max,
                    };
                    if target <= r.rx {
                        Ok(None)
                    } else {
                        Ok(Some(Mutation::RxRing {
                            link: link.name.to_string(),
                            ifindex: link.index,
                            before: r.rx,
                            after: target,
                        }))
                    }
                }
            });
        }
        Ok(out)
    })();
    result.unwrap_or_else(|e: String| vec![Err(e)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::net::{Link, Word};
    use crate::facts::ring::RingSizes;

    fn link(index: u32, name: &str) -> Link {
        Link {
            index,
            name: name.into(),
            kind: Word::new("ethernet").expect("a word"),
            mtu: 1500,
            state: Word::new("up").expect("a word"),
            ..Link::default()
        }
    }

    /// A detection with no `rx_drops` condition: every link the glob names.
    fn always() -> Condition {
        serde_yaml::from_str("link: {}").unwrap()
    }

    fn sizes(rx: u32, rx_max: u32) -> Fact<Option<RingSizes>> {
        Fact::Value(Some(RingSizes {
            rx,
            rx_max,
            tx: None,
            tx_max: None,
        }))
    }

    #[test]
    fn raises_below_max_only_and_skips_ringless_links() {
        let mut facts = Facts {
            links: Fact::Value(vec![
                link(2, "eth0"),
                link(3, "eth1"),
                link(4, "eth2"),
                link(5, "lo"),
            ]),
            ..Facts::default()
        };
        facts.rings.insert("eth0".into(), sizes(256, 4096));
        facts.rings.insert("eth1".into(), sizes(4096, 4096));
        facts.rings.insert("eth2".into(), Fact::Value(None));
        let a = SetRxRing {
            link: "eth*".into(),
            to: RingTarget::Max,
        };
        let out = plan_set_rx_ring(&always(), &a, &Vars::default(), &facts);
        assert_eq!(
            out,
            vec![
                Ok(Some(Mutation::RxRing {
                    link: "eth0".into(),
                    ifindex: 2,
                    before: 256,
                    after: 4096,
                })),
                Ok(None),
                Ok(None),
            ]
        );
        let m = out[0].clone().unwrap().unwrap();
        assert_eq!((m.before(), m.after()), ("rx 256".into(), "rx 4096".into()));
        assert_eq!(m.inverse().after(), "rx 256");
    }

    #[test]
    fn unreadable_rings_are_an_error_not_a_change() {
        let mut facts = Facts {
            links: Fact::Value(vec![link(2, "eth0")]),
            ..Facts::default()
        };
        facts
            .rings
            .insert("eth0".into(), Fact::Unknown("EPERM".into()));
        let a = SetRxRing {
            link: "eth0".into(),
            to: RingTarget::Max,
        };
        let out = plan_set_rx_ring(&always(), &a, &Vars::default(), &facts);
        assert_eq!(out, vec![Err("rings of eth0: EPERM".into())]);
    }

    #[test]
    fn an_rx_drops_condition_chooses_the_links_and_a_recreated_link_is_an_error() {
        use crate::facts::net::RxDrops;
        use crate::facts::rx_drops::{LinkDropSample, RxDropSamples};
        let grew = |index: u32, name: &str| LinkDropSample {
            index,
            name: name.into(),
            first: RxDrops::default(),
            second: Some(RxDrops {
                rx_missed_errors: 50,
                ..RxDrops::default()
            }),
        };
        let quiet = LinkDropSample {
            second: Some(RxDrops::default()),
            ..grew(3, "eth1")
        };
        let mut facts = Facts {
            links: Fact::Value(vec![link(2, "eth0"), link(3, "eth1"), link(4, "eth2")]),
            rx_drop_samples: Some(Fact::Value(RxDropSamples {
                window: 1.0,
                sampled: true,
                // eth2 was re-created after the sample (index 9 then, 4 now).
                links: vec![grew(2, "eth0"), quiet, grew(9, "eth2")],
            })),
            ..Facts::default()
        };
        facts.rings.insert("eth0".into(), sizes(256, 4096));
        facts.rings.insert("eth1".into(), sizes(256, 4096));
        facts.rings.insert("eth2".into(), sizes(256, 4096));
        let detect: Condition =
            serde_yaml::from_str("rx_drops: {link: 'eth*', stat: ring, above: 0, ring: below_max}")
                .unwrap();
        let a = SetRxRing {
            link: "eth*".into(),
            to: RingTarget::Max,
        };
        let out = plan_set_rx_ring(&detect, &a, &Vars::default(), &facts);
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(matches!(&out[0], Ok(Some(Mutation::RxRing { link, .. })) if link == "eth0"));
        assert!(
            matches!(&out[1], Err(e) if e.contains("re-created")),
            "{out:?}"
        );
    }
}
