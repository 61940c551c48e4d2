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
