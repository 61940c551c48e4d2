//! NIC ring sizes per link (ethtool netlink, [`crate::kernel::ethtool`]), read only for
//! the links a `set_rx_ring` fix names, or (for `rx_drops`) whose receive-drop
//! counters grew over the sampling window ([`super::rx_drops`]).

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Fact;
use super::net::Link;
use crate::kernel::ethtool::{self, Rings};

/// A link's ring sizes; `null` in the snapshot when the driver has none (veth,
/// loopback, bridges).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RingSizes {
    pub rx: u32,
    pub rx_max: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_max: Option<u32>,
}

/// Link name glob patterns whose links' rings are read.
pub type Wanted = BTreeSet<String>;

fn wanted(link: &Link, globs: &Wanted) -> bool {
    globs.iter().any(|g| {
        glob::Pattern::new(g)
            .map(|p| p.matches(&link.name))
            .unwrap_or(false)
    })
}

/// The rings of every link in `links` that one of `globs` matches.
pub fn gather(
    links: &Fact<Vec<Link>>,
    globs: &Wanted,
) -> BTreeMap<String, Fact<Option<RingSizes>>> {
    let Fact::Value(links) = links else {
        return BTreeMap::new();
    };
    links
        .iter()
        .filter(|l| wanted(l, globs))
        .map(|l| (l.name.to_string(), read(l.index)))
        .collect()
}

/// The rings of these links (ifindex, name).
pub fn gather_links(links: &[(u32, String)]) -> BTreeMap<String, Fact<Option<RingSizes>>> {
    links
        .iter()
        .map(|(index, name)| (name.clone(), read(*index)))
        .collect()
}

fn read(index: u32) -> Fact<Option<RingSizes>> {
    match ethtool::rings(index) {
        Ok(Rings::Sizes(s)) => Fact::Value(Some(RingSizes {
            rx: s.rx,
            rx_max: s.rx_max,
            tx: s.tx,
            tx_max: s.tx_max,
        })),
        Ok(Rings::Unsupported(_)) => Fact::Value(None),
        Err(e) => Fact::Unknown(format!("ethtool rings: {e}")),
    }
}
