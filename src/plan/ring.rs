//! `set_rx_ring`: the RX ring changes a fix asks for, from the ring sizes in the facts.

use crate::detect::net::{links, pattern};
use crate::facts::{Fact, Facts};
use crate::playbook::{RingTarget, SetRxRing, Vars};

use super::mutation::Mutation;
use super::net::Planned;

/// One change per matched link whose RX ring is below the target; links already there
/// and links whose driver has no ring parameters need none.
pub fn plan_set_rx_ring(a: &SetRxRing, vars: &Vars, facts: &Facts) -> Planned {
    let result = (|| {
        let glob = pattern(&a.link, vars)?;
        let mut out = Vec::new();
        for link in links(facts)?.iter().filter(|l| glob.matches(&l.name)) {
            out.push(match facts.rings.get(&link.name) {
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
                            link: link.name.clone(),
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
    use crate::facts::net::Link;
    use crate::facts::ring::RingSizes;

    fn link(index: u32, name: &str) -> Link {
        Link {
            index,
            name: name.into(),
            kind: "ethernet".into(),
            mtu: 1500,
            state: "up".into(),
            ..Link::default()
        }
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
        let out = plan_set_rx_ring(&a, &Vars::default(), &facts);
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
        let out = plan_set_rx_ring(&a, &Vars::default(), &facts);
        assert_eq!(out, vec![Err("rings of eth0: EPERM".into())]);
    }
}
