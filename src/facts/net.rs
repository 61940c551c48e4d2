//! Link and root-qdisc facts, read through rtnetlink: one link dump and one qdisc
//! dump per namespace, whatever the number of interfaces (see [`crate::kernel::rtdump`] for how the
//! dumps are read).
//!
//! A link's *kind* is the rtnetlink `IFLA_INFO_KIND` (`veth`, `bridge`, `ipip`,
//! `wireguard`, ...) when the driver reports one; otherwise it is derived from the
//! link-layer type: `loopback`, `ethernet` (a physical NIC: an Ethernet device with no
//! software kind), or the lowercased ARPHRD name (`none`, `tunnel`, ...).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use rtnetlink::packet_route::link::{LinkLayerType, State};

use super::Fact;
pub use super::compact::{LinkName, Mac, PackedOption, Word};
use crate::domain::qdisc::{NetemOptions, QdiscSpec, TC_H_ROOT};
use crate::kernel::rtdump::{self, LinkRecord, QdiscRecord};

/// A network interface. Written and read as one flat object (`LinkJson`); the rare
/// parts (a remote peer, drop counters, alternative names) share one pointer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "LinkJson", into = "LinkJson")]
pub struct Link {
    pub index: u32,
    pub name: LinkName,
    /// `veth`, `bridge`, `ethernet`, `loopback`, `ipip`, ...
    pub kind: Word,
    pub mtu: u32,
    /// Smallest MTU the driver accepts, when the kernel reports it.
    pub min_mtu: PackedOption<u32>,
    /// Largest MTU the driver accepts, when the kernel reports it (0 = no limit).
    pub max_mtu: PackedOption<u32>,
    /// Operational state: `up`, `down`, `lowerlayerdown`, `unknown`, ...
    pub state: Word,
    /// The index of the link this one is attached to (IFLA_LINK): a veth's peer, the
    /// lower device of a VLAN or macvlan, or (IFLA_VXLAN_LINK) of a VXLAN.
    pub link: PackedOption<u32>,
    /// IFLA_LINK_NETNSID: `link` is in another network namespace, which this id names
    /// from here.
    pub link_netnsid: PackedOption<i32>,
    /// The index of the bridge or bond this link is a port of (IFLA_MASTER).
    pub master: PackedOption<u32>,
    /// A VXLAN over IPv6 (70 bytes of encapsulation instead of 50).
    pub vxlan_ipv6: bool,
    /// The MAC address (IFLA_ADDRESS of an Ethernet-type link), lowercase with colons.
    pub mac: Option<Mac>,
    /// What most links do not have, behind one pointer.
    pub extras: Extras,
}

/// The parts of a link most links lack.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkExtras {
    /// For a `link` in another namespace: that link as read there, or why it could not
    /// be read.
    pub link_remote: Option<Fact<RemoteLink>>,
    /// The receive-drop counters, when a loaded rule reads drop counters.
    pub rx_drops: Option<RxDrops>,
    /// Alternative names (IFLA_ALT_IFNAME).
    pub altnames: Vec<String>,
}

/// A link's [`LinkExtras`], boxed only when there are any: 8 bytes a link, where the
/// three parts unboxed took 24.
#[derive(Debug, Clone, Default)]
pub struct Extras(Option<Box<LinkExtras>>);

impl Extras {
    fn get(&self) -> Option<&LinkExtras> {
        self.0.as_deref()
    }

    /// The extras to fill in, made empty if there were none.
    pub fn get_mut(&mut self) -> &mut LinkExtras {
        self.0.get_or_insert_default()
    }

    fn from_parts(extras: LinkExtras) -> Extras {
        let empty = extras == LinkExtras::default();
        Extras((!empty).then(|| Box::new(extras)))
    }
}

/// No extras and empty extras are the same link.
impl PartialEq for Extras {
    fn eq(&self, other: &Extras) -> bool {
        let empty = LinkExtras::default();
        self.get().unwrap_or(&empty) == other.get().unwrap_or(&empty)
    }
}

impl Link {
    /// For a `link` in another namespace: that link as read there.
    pub fn link_remote(&self) -> Option<&Fact<RemoteLink>> {
        self.extras.get()?.link_remote.as_ref()
    }

    /// The receive-drop counters, when a loaded rule reads drop counters.
    pub fn rx_drops(&self) -> Option<&RxDrops> {
        self.extras.get()?.rx_drops.as_ref()
    }

    /// Alternative names (IFLA_ALT_IFNAME).
    pub fn altnames(&self) -> &[String] {
        self.extras.get().map_or(&[], |e| &e.altnames)
    }
}

impl From<LinkJson> for Link {
    fn from(j: LinkJson) -> Link {
        Link {
            index: j.index,
            name: j.name,
            kind: j.kind,
            mtu: j.mtu,
            min_mtu: j.min_mtu,
            max_mtu: j.max_mtu,
            state: j.state,
            link: j.link,
            link_netnsid: j.link_netnsid,
            master: j.master,
            vxlan_ipv6: j.vxlan_ipv6,
            mac: j.mac,
            extras: Extras::from_parts(LinkExtras {
                link_remote: j.link_remote,
                rx_drops: j.rx_drops,
                altnames: j.altnames,
            }),
        }
    }
}

impl From<Link> for LinkJson {
    fn from(l: Link) -> LinkJson {
        let extras = l.extras.0.map(|e| *e).unwrap_or_default();
        LinkJson {
            index: l.index,
            name: l.name,
            kind: l.kind,
            mtu: l.mtu,
            min_mtu: l.min_mtu,
            max_mtu: l.max_mtu,
            state: l.state,
            link: l.link,
            link_netnsid: l.link_netnsid,
            link_remote: extras.link_remote,
            master: l.master,
            vxlan_ipv6: l.vxlan_ipv6,
            rx_drops: extras.rx_drops,
            mac: l.mac,
            altnames: extras.altnames,
        }
    }
}

impl JsonSchema for Link {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        LinkJson::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        LinkJson::json_schema(generator)
    }
}

/// A network interface.
// `Link` as written and read: the same fields, flat, whatever `Link` keeps boxed.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Link")]
struct LinkJson {
    index: u32,
    name: LinkName,
    /// `veth`, `bridge`, `ethernet`, `loopback`, `ipip`, ...
    kind: Word,
    mtu: u32,
    /// Smallest MTU the driver accepts, when the kernel reports it.
    #[serde(default)]
    min_mtu: PackedOption<u32>,
    /// Largest MTU the driver accepts, when the kernel reports it (0 = no limit).
    #[serde(default)]
    max_mtu: PackedOption<u32>,
    /// Operational state: `up`, `down`, `lowerlayerdown`, `unknown`, ...
    state: Word,
    /// The index of the link this one is attached to (IFLA_LINK): a veth's peer, the
    /// lower device of a VLAN or macvlan, or (IFLA_VXLAN_LINK) of a VXLAN.
    #[serde(default, skip_serializing_if = "PackedOption::is_none")]
    link: PackedOption<u32>,
    /// IFLA_LINK_NETNSID: `link` is in another network namespace, which this id names
    /// from here.
    #[serde(default, skip_serializing_if = "PackedOption::is_none")]
    link_netnsid: PackedOption<i32>,
    /// For a `link` in another namespace: that link as read there, or why it could not
    /// be read (the kernel answers only with CAP_NET_ADMIN over that namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    link_remote: Option<Fact<RemoteLink>>,
    /// The index of the bridge or bond this link is a port of (IFLA_MASTER).
    #[serde(default, skip_serializing_if = "PackedOption::is_none")]
    master: PackedOption<u32>,
    /// A VXLAN over IPv6 (70 bytes of encapsulation instead of 50).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    vxlan_ipv6: bool,
    /// The receive-drop counters of IFLA_STATS64, from the same dump, when a loaded
    /// rule reads drop counters (absent otherwise, and in snapshots older than them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rx_drops: Option<RxDrops>,
    /// The MAC address (IFLA_ADDRESS of an Ethernet-type link), lowercase with colons
    /// (absent in older snapshots and for links with no 6-byte address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mac: Option<Mac>,
    /// Alternative names (IFLA_ALT_IFNAME), which networkd's `Name=` also matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    altnames: Vec<String>,
}

/// A link's receive-drop counters since the device was created (`struct
/// rtnl_link_stats64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RxDrops {
    /// `rx_dropped`: received, then dropped by the driver or stack (netstat's RX-DRP).
    pub rx_dropped: u64,
    /// `rx_fifo_errors`: the NIC's receive FIFO overran.
    pub rx_fifo_errors: u64,
    /// `rx_missed_errors`: no free descriptor in the RX ring (netstat's RX-OVR).
    pub rx_missed_errors: u64,
}

/// A link in another network namespace (a veth's peer), as read there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoteLink {
    pub name: String,
    pub mtu: u32,
    /// Largest MTU its driver accepts, when the kernel reports it (0 = no limit).
    #[serde(default)]
    pub max_mtu: Option<u32>,
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

/// The link as plain data, with its drop counters.
pub fn link_from_record(r: &LinkRecord) -> Link {
    link_from(r, true)
}

/// The link as plain data; `drops`: with its drop counters.
fn link_from(r: &LinkRecord, drops: bool) -> Link {
    // A kind or name the kernel sends as bytes that are not UTF-8 is decoded lossily.
    let word = |text: &str| Word::new(text).unwrap_or_default();
    let kind = match r.kind {
        Some(k) if !k.is_empty() => {
            Word::known(k).unwrap_or_else(|| word(&String::from_utf8_lossy(k)))
        }
        _ => match LinkLayerType::from(r.link_layer_type) {
            LinkLayerType::Loopback => word("loopback"),
            LinkLayerType::Ether => word("ethernet"),
            other => word(&other.to_string().to_lowercase()),
        },
    };
    Link {
        index: r.index,
        name: r
            .name
            .map(|n| LinkName::from(String::from_utf8_lossy(n)))
            .unwrap_or_default(),
        kind,
        mtu: r.mtu.unwrap_or(0),
        min_mtu: r.min_mtu.into(),
        max_mtu: r.max_mtu.into(),
        state: state_name(r.operstate.unwrap_or(0)),
        link: r.link.into(),
        link_netnsid: r.link_netnsid.into(),
        master: r.master.into(),
        vxlan_ipv6: r.vxlan_ipv6,
        mac: r
            .address
            .filter(|_| r.link_layer_type == 1)
            .and_then(|a| <[u8; 6]>::try_from(a).ok())
            .map(Mac),
        extras: Extras::from_parts(LinkExtras {
            link_remote: None,
            rx_drops: r.rx_drops.filter(|_| drops).map(|d| RxDrops {
                rx_dropped: d.rx_dropped,
                rx_fifo_errors: d.rx_fifo_errors,
                rx_missed_errors: d.rx_missed_errors,
            }),
            altnames: r
                .altnames
                .iter()
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .collect(),
        }),
    }
}

/// Reads, for every link attached to a link in another namespace, that remote link
/// (RTM_GETLINK with IFLA_TARGET_NETNSID: one request per remote link).
fn read_remote_links(route: &mut rtdump::Route, links: &mut [Link]) {
    for link in links {
        let (Some(index), Some(nsid)) = (link.link.get(), link.link_netnsid.get()) else {
            continue;
        };
        let remote = route.link_in(nsid, index, |r| RemoteLink {
            name: r
                .name
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .unwrap_or_default(),
            mtu: r.mtu.unwrap_or(0),
            max_mtu: r.max_mtu,
        });
        link.extras.get_mut().link_remote = Some(match remote {
            Ok(Some(r)) => Fact::Value(r),
            Ok(None) => Fact::Unknown(format!("no link {index} in netns id {nsid}")),
            Err(e) if e.errno == libc::EPERM || e.errno == libc::EACCES => Fact::Unknown(format!(
                "link {index} in netns id {nsid}: permission denied (run as root)"
            )),
            Err(e) => Fact::Unknown(format!("link {index} in netns id {nsid}: {e}")),
        });
    }
}

/// The lowercased name of an RFC 2863 operational state (`IF_OPER_*`), as
/// netlink-packet-route's `State` spells it (`other(7)` for codes it does not know).
fn state_name(code: u8) -> Word {
    Word::oper_state(code).unwrap_or_else(|| {
        // At most 256 of these, each stored once.
        Word::new(&format!("{:?}", State::from(code)).to_lowercase()).unwrap_or_default()
    })
}

/// Links by ifindex, to follow IFLA_LINK and IFLA_MASTER and to name a qdisc's link
/// without a scan per link (a host may have 30,000 veths). The kernel dumps links in
/// ifindex order, so this is usually a binary search over the links themselves, with
/// nothing built; links in another order (a snapshot edited by hand) get a sorted
/// table of (index, position) once, 16 bytes a link where a hash map took about 36.
pub struct LinkIndex<'a> {
    links: &'a [Link],
    order: Option<Vec<(u32, usize)>>,
}

impl<'a> LinkIndex<'a> {
    pub fn new(links: &'a [Link]) -> LinkIndex<'a> {
        let order = (!links.is_sorted_by_key(|l| l.index)).then(|| {
            let mut order: Vec<(u32, usize)> = links
                .iter()
                .enumerate()
                .map(|(at, l)| (l.index, at))
                .collect();
            order.sort_unstable();
            order
        });
        LinkIndex { links, order }
    }

    pub fn get(&self, index: u32) -> Option<&'a Link> {
        let at = match &self.order {
            None => self.links.binary_search_by_key(&index, |l| l.index).ok()?,
            Some(order) => {
                let found = order.binary_search_by_key(&index, |(i, _)| *i).ok()?;
                order[found].1
            }
        };
        self.links.get(at)
    }
}

/// The qdisc as plain data, if it is a root qdisc; `link_name` names its link.
pub fn root_qdisc_from_record<'a>(
    r: &QdiscRecord,
    link_name: impl FnOnce(u32) -> Option<&'a str>,
) -> Option<Qdisc> {
    if r.parent != TC_H_ROOT {
        return None;
    }
    let ifindex = u32::try_from(r.ifindex).ok()?;
    let kind = String::from_utf8_lossy(r.kind?).into_owned();
    let bytes = r.options.unwrap_or_default();
    let netem = if kind == "netem" {
        crate::domain::qdisc::parse_netem(bytes).ok()
    } else {
        None
    };
    let link = link_name(ifindex).map_or_else(|| format!("if{ifindex}"), str::to_owned);
    Some(Qdisc {
        link,
        ifindex,
        spec: QdiscSpec {
            kind,
            handle: r.handle,
            parent: r.parent,
            options: crate::domain::qdisc::to_hex(bytes),
        },
        netem,
    })
}

/// Gathers links (and root qdiscs, when asked) in the calling thread's namespace,
/// with the links in other namespaces that they are attached to (veth peers);
/// `drops`: with each link's drop counters.
pub fn gather(qdiscs: bool, drops: bool) -> (Fact<Vec<Link>>, Fact<Vec<Qdisc>>) {
    let failed = |e: crate::kernel::rtnl::NlError| {
        let why = format!("rtnetlink: {e}");
        let roots = if qdiscs {
            Fact::Unknown(why.clone())
        } else {
            Fact::default()
        };
        (Fact::Unknown(why), roots)
    };
    // One socket for the link dump, the peers and the qdisc dump.
    let mut route = match rtdump::Route::open() {
        Ok(route) => route,
        Err(e) => return failed(e),
    };
    let mut links = match route.links(|r| link_from(r, drops)) {
        Ok(links) => links,
        Err(e) => return failed(e),
    };
    // The dump grew the vector by doubling: up to half of it is unused.
    links.shrink_to_fit();
    read_remote_links(&mut route, &mut links);
    let roots = if qdiscs {
        let index = LinkIndex::new(&links);
        let name = |i| index.get(i).map(|l| l.name.as_str());
        match route.qdiscs(|r| root_qdisc_from_record(r, name)) {
            Ok(roots) => Fact::Value(roots),
            Err(e) => Fact::Unknown(format!("rtnetlink: {e}")),
        }
    } else {
        Fact::default()
    };
    (Fact::Value(links), roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A namespace with 30k links holds 30k of these: the name is inline, the kind and
    /// state are two-byte words, the MAC six bytes, the optional numbers five bytes
    /// each, and the rare remote peer, alternative names and drop counters (kept only
    /// when a rule reads them) share one pointer.
    #[test]
    fn a_link_stays_small() {
        let size = std::mem::size_of::<Link>();
        assert!(size <= 72, "{size}");
        let record = LinkRecord {
            name: Some(b"veth-0123456789"),
            address: Some(&[2, 0, 0, 0, 0, 1]),
            operstate: Some(6),
            rx_drops: Some(rtdump::RxDrops {
                rx_dropped: 1,
                rx_fifo_errors: 2,
                rx_missed_errors: 3,
            }),
            ..LinkRecord::default()
        };
        let link = link_from(
            &LinkRecord {
                kind: Some(b"veth"),
                ..record.clone()
            },
            false,
        );
        assert_eq!(
            (
                link.name.as_str(),
                &*link.kind,
                &*link.state,
                link.rx_drops()
            ),
            ("veth-0123456789", "veth", "up", None)
        );
        let with_drops = link_from_record(&record);
        assert_eq!(
            with_drops
                .rx_drops()
                .map(|d| (d.rx_dropped, d.rx_missed_errors)),
            Some((1, 3))
        );
        let rare = link_from_record(&LinkRecord {
            kind: Some(b"batadv"),
            ..record
        });
        assert_eq!(rare.kind, "batadv");
    }

    /// A link is written and read as one flat object, its extras among its fields,
    /// and a snapshot with a field no link has is refused.
    #[test]
    fn a_link_reads_and_writes_its_extras_as_flat_fields() {
        let plain = Link {
            index: 3,
            name: LinkName::from("eth0"),
            mtu: 1500,
            ..Link::default()
        };
        let json = serde_json::to_value(&plain).expect("serializes");
        assert_eq!(json.get("altnames"), None);
        assert_eq!(serde_json::from_value::<Link>(json).expect("parses"), plain);
        let mut rich = plain.clone();
        rich.extras.get_mut().altnames = vec!["lan".to_owned()];
        rich.extras.get_mut().rx_drops = Some(RxDrops::default());
        rich.extras.get_mut().link_remote = Some(Fact::Unknown("not read".to_owned()));
        let json = serde_json::to_value(&rich).expect("serializes");
        assert_eq!(json["altnames"], serde_json::json!(["lan"]));
        assert_eq!(json["rx_drops"]["rx_missed_errors"], 0);
        assert!(json.get("extras").is_none(), "{json}");
        let back: Link = serde_json::from_value(json.clone()).expect("parses");
        assert_eq!(
            (back.altnames(), back.rx_drops()),
            (&["lan".to_owned()][..], Some(&RxDrops::default()))
        );
        assert_eq!(back, rich);
        let mut emptied = plain.clone();
        emptied.extras.get_mut();
        assert_eq!(emptied, plain);
        let mut bad = json;
        bad["extras"] = serde_json::json!({});
        let err = serde_json::from_value::<Link>(bad).expect_err("unknown field");
        assert!(err.to_string().contains("unknown field `extras`"), "{err}");
    }

    #[test]
    fn state_names_are_the_lowercased_rtnetlink_names() {
        for code in 0..=u8::MAX {
            let expected = format!("{:?}", State::from(code)).to_lowercase();
            assert_eq!(state_name(code), expected);
        }
        assert_eq!(state_name(6), "up");
        assert_eq!(state_name(42), "other(42)");
    }

    #[test]
    fn kind_falls_back_to_the_link_layer_type() {
        let record = |link_layer_type, kind| LinkRecord {
            index: 1,
            link_layer_type,
            name: Some(b"x"),
            kind,
            ..LinkRecord::default()
        };
        assert_eq!(link_from_record(&record(1, Some(b"veth"))).kind, "veth");
        assert_eq!(link_from_record(&record(1, None)).kind, "ethernet");
        assert_eq!(link_from_record(&record(1, Some(b""))).kind, "ethernet");
        assert_eq!(link_from_record(&record(772, None)).kind, "loopback");
        assert_eq!(link_from_record(&record(768, None)).kind, "tunnel");
        assert_eq!(link_from_record(&record(1, None)).state, "unknown");
        assert_eq!(link_from_record(&record(1, None)).mac, None);
        let with_mac = LinkRecord {
            address: Some(&[0x02, 0xAB, 0, 1, 2, 3]),
            ..record(1, Some(b"veth"))
        };
        let mac = link_from_record(&with_mac).mac.expect("a mac");
        assert_eq!(mac.to_string(), "02:ab:00:01:02:03");
        assert_eq!("02:ab:00:01:02:03".parse::<Mac>(), Ok(mac));
        assert_eq!("02:AB:00:01:02:03".parse::<Mac>(), Ok(mac));
        for bad in [
            "",
            "02:ab:00:01:02",
            "02:ab:00:01:02:03:04",
            "2:ab:00:01:02:03",
            "zz:ab:00:01:02:03",
            "02-ab-00-01-02-03",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad}");
        }
        let json = serde_json::to_string(&mac).expect("serializes");
        assert_eq!(json, "\"02:ab:00:01:02:03\"");
        assert_eq!(serde_json::from_str::<Mac>(&json).ok(), Some(mac));
        assert!(serde_json::from_str::<Mac>("\"02:ab\"").is_err());
    }

    #[test]
    fn link_names_are_found_by_index_in_any_order() {
        let link = |index: u32, name: &str| Link {
            index,
            name: name.into(),
            ..Link::default()
        };
        for links in [
            vec![link(1, "lo"), link(2, "eth0"), link(7, "veth7")],
            vec![link(7, "veth7"), link(1, "lo"), link(2, "eth0")],
        ] {
            let index = LinkIndex::new(&links);
            let name = |i| index.get(i).map(|l| l.name.as_str());
            assert_eq!(name(2), Some("eth0"));
            assert_eq!(name(7), Some("veth7"));
            assert_eq!(name(1), Some("lo"));
            assert_eq!(name(3), None);
            assert_eq!(index.get(7).map(|l| l.index), Some(7));
        }
        assert!(LinkIndex::new(&[]).get(1).is_none());
    }

    #[test]
    fn only_root_qdiscs_are_kept_and_named_after_their_link_or_index() {
        let record = QdiscRecord {
            ifindex: 3,
            handle: 0x0001_0000,
            parent: TC_H_ROOT,
            kind: Some(b"tbf"),
            options: Some(&[1, 2]),
        };
        let named = root_qdisc_from_record(&record, |i| (i == 3).then_some("va")).unwrap();
        assert_eq!((named.link.as_str(), named.ifindex), ("va", 3));
        assert_eq!(named.spec.options, "0102");
        let unnamed = root_qdisc_from_record(&record, |_| None).unwrap();
        assert_eq!(unnamed.link, "if3");
        let child = QdiscRecord {
            parent: 0x0001_0001,
            ..record
        };
        assert_eq!(root_qdisc_from_record(&child, |_| None), None);
        let kindless = QdiscRecord {
            kind: None,
            ..record
        };
        assert_eq!(root_qdisc_from_record(&kindless, |_| None), None);
    }
}
