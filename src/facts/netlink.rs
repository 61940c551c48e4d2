//! Link and root-qdisc facts, read through rtnetlink: one link dump and one qdisc
//! dump per namespace, whatever the number of interfaces.
//!
//! A link's *kind* is the rtnetlink `IFLA_INFO_KIND` (`veth`, `bridge`, `ipip`,
//! `wireguard`, ...) when the driver reports one; otherwise it is derived from the
//! link-layer type: `loopback`, `ethernet` (a physical NIC: an Ethernet device with no
//! software kind), or the lowercased ARPHRD name (`none`, `tunnel`, ...).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use rtnetlink::packet_route::link::{LinkAttribute, LinkInfo, LinkLayerType, LinkMessage};
use rtnetlink::packet_route::tc::{TcAttribute, TcMessage};

use super::Fact;
use crate::tc::{NetemOptions, QdiscSpec, TC_H_ROOT};

/// A network interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `veth`, `bridge`, `ethernet`, `loopback`, `ipip`, ...
    pub kind: String,
    pub mtu: u32,
    /// Smallest MTU the driver accepts, when the kernel reports it.
    #[serde(default)]
    pub min_mtu: Option<u32>,
    /// Largest MTU the driver accepts, when the kernel reports it (0 = no limit).
    #[serde(default)]
    pub max_mtu: Option<u32>,
    /// Operational state: `up`, `down`, `lowerlayerdown`, `unknown`, ...
    pub state: String,
}

/// A link's root qdisc.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Qdisc {
    /// The link's name.
    pub link: String,
    pub ifindex: u32,
    /// Kind, handle, parent and raw options.
    pub spec: QdiscSpec,
    /// Parsed options, for `netem`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netem: Option<NetemOptions>,
}

impl Qdisc {
    /// A default qdisc the kernel attached by itself has handle 0; anything a person
    /// or a tool added has a non-zero handle.
    pub fn is_default(&self) -> bool {
        self.spec.handle == 0
    }
}

/// The link as plain data.
pub fn link_from_message(m: &LinkMessage) -> Link {
    let mut link = Link {
        index: m.header.index,
        name: String::new(),
        kind: String::new(),
        mtu: 0,
        min_mtu: None,
        max_mtu: None,
        state: "unknown".to_owned(),
    };
    for attr in &m.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name.clone_from(n),
            LinkAttribute::Mtu(v) => link.mtu = *v,
            LinkAttribute::MinMtu(v) => link.min_mtu = Some(*v),
            LinkAttribute::MaxMtu(v) => link.max_mtu = Some(*v),
            LinkAttribute::OperState(s) => link.state = format!("{s:?}").to_lowercase(),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(k) = info {
                        link.kind = k.to_string();
                    }
                }
            }
            _ => {}
        }
    }
    if link.kind.is_empty() {
        link.kind = match m.header.link_layer_type {
            LinkLayerType::Loopback => "loopback".to_owned(),
            LinkLayerType::Ether => "ethernet".to_owned(),
            other => other.to_string().to_lowercase(),
        };
    }
    link
}

/// The qdisc as plain data, if it is a root qdisc.
pub fn root_qdisc_from_message(m: &TcMessage, links: &[Link]) -> Option<Qdisc> {
    let parent: u32 = m.header.parent.into();
    if parent != TC_H_ROOT {
        return None;
    }
    let ifindex = u32::try_from(m.header.index).ok()?;
    let kind = m.attributes.iter().find_map(|a| match a {
        TcAttribute::Kind(k) => Some(k.clone()),
        _ => None,
    })?;
    let bytes = crate::rtnl::raw_options(&m.attributes);
    let netem = if kind == "netem" {
        crate::tc::parse_netem(&bytes).ok()
    } else {
        None
    };
    let link = links
        .iter()
        .find(|l| l.index == ifindex)
        .map_or_else(|| format!("if{ifindex}"), |l| l.name.clone());
    Some(Qdisc {
        link,
        ifindex,
        spec: QdiscSpec {
            kind,
            handle: m.header.handle.into(),
            parent,
            options: crate::tc::to_hex(&bytes),
        },
        netem,
    })
}

/// Gathers links (and root qdiscs, when asked) in the calling thread's namespace.
pub fn gather(qdiscs: bool) -> (Fact<Vec<Link>>, Fact<Vec<Qdisc>>) {
    let reason = |e: crate::rtnl::NlError| format!("rtnetlink: {e}");
    let links = match crate::rtnl::with_session(|s| s.links(link_from_message)) {
        Ok(links) => links,
        Err(e) => {
            let why = reason(e);
            let roots = if qdiscs {
                Fact::Unknown(why.clone())
            } else {
                Fact::default()
            };
            return (Fact::Unknown(why), roots);
        }
    };
    let roots = if qdiscs {
        match crate::rtnl::with_session(|s| s.qdiscs(|m| root_qdisc_from_message(m, &links))) {
            Ok(roots) => Fact::Value(roots),
            Err(e) => Fact::Unknown(reason(e)),
        }
    } else {
        Fact::default()
    };
    (Fact::Value(links), roots)
}
