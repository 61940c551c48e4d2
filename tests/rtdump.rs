//! The direct link and qdisc dump reader (`tune::kernel::rtdump`) against the real
//! kernel: dumps captured in a throwaway namespace holding several link kinds and
//! qdiscs are decoded both by tune's parser and by netlink-packet-route (the decoder
//! under rtnetlink), and the facts built from each must be identical; so must the
//! facts `gather` reads live.
//!
//! The namespace (`tune-t-rtdump-<pid>-<n>`) is deleted by a Drop guard. Needs root,
//! `ip` and `tc`; without them the test prints SKIP, or fails when CI=true.

mod support;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::{
    InfoData, InfoVxlan, LinkAttribute, LinkInfo, LinkLayerType, LinkMessage,
};
use rtnetlink::packet_route::tc::{TcAttribute, TcMessage, TcOption};
use support::{Netns, have, require, require_netns};
use tune::domain::qdisc::{QdiscSpec, TC_H_ROOT};
use tune::facts::Fact;
use tune::facts::net::{Link, Qdisc, Word, link_from_record, root_qdisc_from_record};
use tune::kernel::rtdump;

const SEQ: u32 = 4711;

/// The datagrams of a dump exactly as the kernel sends them, read by the test's own
/// socket (not tune's) until NLMSG_DONE.
fn capture(request: &[u8]) -> Vec<Vec<u8>> {
    // SAFETY: plain socket(2); checked below.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: fd was just created and is owned here.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: request is a live buffer of that length.
    let sent = unsafe { libc::send(fd.as_raw_fd(), request.as_ptr().cast(), request.len(), 0) };
    assert_eq!(sent, request.len() as isize);
    let mut out = Vec::new();
    loop {
        let mut buf = vec![0u8; 1 << 20];
        // SAFETY: buf is writable for its length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        assert!(n > 0, "recv: {}", std::io::Error::last_os_error());
        buf.truncate(n as usize);
        let mut offset = 0;
        let mut done = false;
        while offset + 16 <= buf.len() {
            let len = u32::from_ne_bytes(buf[offset..offset + 4].try_into().unwrap()) as usize;
            let kind = u16::from_ne_bytes(buf[offset + 4..offset + 6].try_into().unwrap());
            assert_ne!(kind, 2, "the kernel refused the dump");
            done |= kind == 3;
            offset += (len + 3) & !3;
        }
        out.push(buf);
        if done {
            return out;
        }
    }
}

/// Every message of the captured datagrams as netlink-packet-route decodes it.
fn decode_with_netlink_packet_route(datagrams: &[Vec<u8>]) -> Vec<RouteNetlinkMessage> {
    let mut out = Vec::new();
    for buf in datagrams {
        let mut offset = 0;
        while offset < buf.len() {
            let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[offset..])
                .expect("netlink-packet-route decodes the kernel's dump");
            offset += (m.header.length as usize + 3) & !3;
            if let NetlinkPayload::InnerMessage(inner) = m.payload {
                out.push(inner);
            }
        }
    }
    out
}

fn word(text: &str) -> Word {
    Word::new(text).expect("a word")
}

/// The reference: how tune turned rtnetlink's decoded link into a fact before the
/// dumps were read directly.
fn reference_link(m: &LinkMessage) -> Link {
    let mut link = Link {
        index: m.header.index,
        state: word("unknown"),
        ..Link::default()
    };
    let mut altnames = Vec::new();
    for attr in &m.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name = n.as_str().into(),
            LinkAttribute::Mtu(v) => link.mtu = *v,
            LinkAttribute::Address(a)
                if a.len() == 6 && m.header.link_layer_type == LinkLayerType::Ether =>
            {
                link.mac = Some(tune::facts::net::Mac(
                    a.as_slice().try_into().expect("6 bytes"),
                ));
            }
            LinkAttribute::PropList(props) => {
                for p in props {
                    if let rtnetlink::packet_route::link::Prop::AltIfName(n) = p {
                        altnames.push(n.clone());
                    }
                }
            }
            LinkAttribute::Stats64(st) => {
                link.extras.get_mut().rx_drops = Some(tune::facts::net::RxDrops {
                    rx_dropped: st.rx_dropped,
                    rx_fifo_errors: st.rx_fifo_errors,
                    rx_missed_errors: st.rx_missed_errors,
                })
            }
            LinkAttribute::MinMtu(v) => link.min_mtu = Some(*v).into(),
            LinkAttribute::MaxMtu(v) => link.max_mtu = Some(*v).into(),
            LinkAttribute::OperState(s) => link.state = word(&format!("{s:?}").to_lowercase()),
            LinkAttribute::Link(i) if *i != 0 => link.link = Some(*i).into(),
            LinkAttribute::Controller(i) => link.master = Some(*i).into(),
            LinkAttribute::LinkNetNsId(i) => link.link_netnsid = Some(*i).into(),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    match info {
                        LinkInfo::Kind(k) => link.kind = word(&k.to_string()),
                        LinkInfo::Data(InfoData::Vxlan(vxlan)) => {
                            for v in vxlan {
                                match v {
                                    InfoVxlan::Link(i) if *i != 0 => link.link = Some(*i).into(),
                                    InfoVxlan::Group6(_) | InfoVxlan::Local6(_) => {
                                        link.vxlan_ipv6 = true;
                                    }
                                    _ => {}
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if link.kind.is_empty() {
        link.kind = match m.header.link_layer_type {
            LinkLayerType::Loopback => word("loopback"),
            LinkLayerType::Ether => word("ethernet"),
            other => word(&other.to_string().to_lowercase()),
        };
    }
    if !altnames.is_empty() {
        link.extras.get_mut().altnames = altnames;
    }
    link
}

/// The reference conversion of a decoded qdisc (see [`reference_link`]).
fn reference_root_qdisc(m: &TcMessage, links: &[Link]) -> Option<Qdisc> {
    use rtnetlink::packet_core::{Emitable, Nla};
    let parent: u32 = m.header.parent.into();
    if parent != TC_H_ROOT {
        return None;
    }
    let ifindex = u32::try_from(m.header.index).ok()?;
    let kind = m.attributes.iter().find_map(|a| match a {
        TcAttribute::Kind(k) => Some(k.clone()),
        _ => None,
    })?;
    let mut bytes = Vec::new();
    for attr in &m.attributes {
        if let TcAttribute::Options(options) = attr {
            if let [TcOption::Other(nla)] = options.as_slice() {
                bytes = vec![0; nla.value_len()];
                nla.emit_value(&mut bytes);
            } else {
                bytes = vec![0; options.as_slice().buffer_len()];
                options.as_slice().emit(&mut bytes);
            }
        }
    }
    let netem = (kind == "netem")
        .then(|| tune::domain::qdisc::parse_netem(&bytes).ok())
        .flatten();
    let link = links
        .iter()
        .find(|l| l.index == ifindex)
        .map_or_else(|| format!("if{ifindex}"), |l| l.name.to_string());
    Some(Qdisc {
        link,
        ifindex,
        spec: QdiscSpec {
            kind,
            handle: m.header.handle.into(),
            parent,
            options: tune::domain::qdisc::to_hex(&bytes),
        },
        netem,
    })
}

/// The same datagrams through tune's parser.
fn decode_with_rtdump<T>(
    datagrams: &[Vec<u8>],
    mut each: impl FnMut(u16, &[u8]) -> Option<T>,
) -> Vec<T> {
    let mut out = Vec::new();
    for (i, buf) in datagrams.iter().enumerate() {
        let d = rtdump::read_datagram(buf, SEQ, |kind, payload| {
            out.extend(each(kind, payload));
            Ok(())
        })
        .expect("tune's parser reads the kernel's dump");
        assert_eq!(d.done, i + 1 == datagrams.len(), "done exactly at the end");
    }
    out
}

#[test]
fn dumps_read_directly_match_netlink_packet_route() {
    if !(require_netns() && require(have("tc"), "the dump test needs `tc` (iproute2)")) {
        return;
    }
    let ns = Netns::new("rtdump");
    // Link kinds this kernel has without loading modules, a dotted name, a low MTU,
    // links up and down; root qdiscs with option bytes, a non-root child, ingress.
    ns.sh(
        "ip link add va type veth peer name vb && ip link set va mtu 576 \
         && ip link set va address 02:00:5E:00:00:0A \
         && ip link property add dev va altname va-alternative \
         && ip link set va up && ip link set vb up \
         && ip link add br.0 type bridge && ip link set br.0 mtu 1400 \
         && ip link add vx0 type vxlan id 5 dstport 4789 \
         && ip link add vx1 type vxlan id 6 dstport 4790 dev vb \
         && ip link add vx6 type vxlan id 7 dstport 4791 local fd00::1 \
         && ip link add vc type veth peer name vd && ip link set vc master br.0 \
         && ip link add ifb0 type ifb \
         && tc qdisc add dev va root handle 1: tbf rate 1mbit burst 32kbit latency 400ms \
         && tc qdisc add dev vb root handle 5: htb default 10 r2q 7 \
         && tc class add dev vb parent 5: classid 5:1 htb rate 1mbit \
         && tc qdisc add dev vb parent 5:1 handle 10: pfifo limit 10 \
         && tc qdisc add dev vb ingress \
         && tc qdisc add dev vx0 root handle 7: bfifo limit 10000",
    );
    let link_request = rtdump::request(
        rtdump::RTM_GETLINK,
        0x300,
        SEQ,
        &[0; 16],
        &[(29, &8u32.to_ne_bytes())],
    );
    let qdisc_request = rtdump::request(rtdump::RTM_GETQDISC, 0x300, SEQ, &[0; 20], &[]);
    let (link_dump, qdisc_dump, live) = ns.run(move || {
        (
            capture(&link_request),
            capture(&qdisc_request),
            tune::facts::net::gather(true, true),
        )
    });

    let reference_links: Vec<Link> = decode_with_netlink_packet_route(&link_dump)
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(reference_link(l)),
            _ => None,
        })
        .collect();
    let links = decode_with_rtdump(&link_dump, |kind, payload| {
        (kind == rtdump::RTM_NEWLINK)
            .then(|| link_from_record(&rtdump::parse_link(payload).unwrap()))
    });
    assert_eq!(links, reference_links);
    let kinds: Vec<(&str, &str)> = links.iter().map(|l| (l.name.as_str(), &*l.kind)).collect();
    for expected in [
        ("lo", "loopback"),
        ("va", "veth"),
        ("vb", "veth"),
        ("br.0", "bridge"),
        ("vx0", "vxlan"),
        ("ifb0", "ifb"),
    ] {
        assert!(kinds.contains(&expected), "{expected:?} in {kinds:?}");
    }
    let va = links.iter().find(|l| l.name == "va").unwrap();
    assert_eq!(
        (va.mtu, va.min_mtu.get(), &*va.state),
        (576, Some(68), "up")
    );
    // What the MTU rule reads: a veth's peer, a bridge port's master, a VXLAN's lower
    // device and its address family.
    let index = |name: &str| links.iter().find(|l| l.name == name).map(|l| l.index);
    let by_name = |name: &str| links.iter().find(|l| l.name == name).unwrap();
    assert_eq!((va.link.get(), va.link_netnsid.get()), (index("vb"), None));
    assert_eq!(by_name("vc").master.get(), index("br.0"));
    assert_eq!(by_name("vx1").link.get(), index("vb"));
    assert_eq!(
        (by_name("vx0").link.get(), by_name("vx0").vxlan_ipv6),
        (None, false)
    );
    assert!(by_name("vx6").vxlan_ipv6);
    // What networkd's [Match] MACAddress= and Name= test.
    assert_eq!(
        va.mac.map(|m| m.to_string()).as_deref(),
        Some("02:00:5e:00:00:0a")
    );
    assert_eq!(va.altnames(), ["va-alternative"]);
    assert_eq!(by_name("lo").mac, None);

    let reference_qdiscs: Vec<Qdisc> = decode_with_netlink_packet_route(&qdisc_dump)
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewQueueDiscipline(q) => reference_root_qdisc(q, &links),
            _ => None,
        })
        .collect();
    let qdiscs = decode_with_rtdump(&qdisc_dump, |kind, payload| {
        if kind != rtdump::RTM_NEWQDISC {
            return None;
        }
        let record = rtdump::parse_qdisc(payload).unwrap();
        root_qdisc_from_record(&record, |i| {
            links.iter().find(|l| l.index == i).map(|l| l.name.as_str())
        })
    });
    assert_eq!(qdiscs, reference_qdiscs);
    let roots: Vec<(&str, &str, bool)> = qdiscs
        .iter()
        .map(|q| {
            (
                q.link.as_str(),
                q.spec.kind.as_str(),
                q.spec.options.is_empty(),
            )
        })
        .collect();
    for expected in [
        ("va", "tbf", false),
        ("vb", "htb", false),
        ("vx0", "bfifo", false),
    ] {
        assert!(roots.contains(&expected), "{expected:?} in {roots:?}");
    }
    assert!(
        !roots
            .iter()
            .any(|(_, kind, _)| *kind == "pfifo" || *kind == "ingress"),
        "only root qdiscs: {roots:?}"
    );

    // What `tune facts` gathers live is the same.
    assert_eq!(live.0, Fact::Value(links));
    assert_eq!(live.1, Fact::Value(qdiscs));
}

#[test]
fn a_single_link_is_read_by_index_and_a_missing_one_is_none() {
    if !require_netns() {
        return;
    }
    let ns = Netns::new("rtdump");
    ns.sh("ip link add va type veth peer name vb && ip link set vb mtu 9000");
    let (found, missing) = ns.run(|| {
        let index = rtdump::links(|r| (r.index, r.name.map(<[u8]>::to_vec)))
            .unwrap()
            .into_iter()
            .find(|(_, name)| name.as_deref() == Some(b"vb"))
            .unwrap()
            .0;
        (
            rtdump::link(index, link_from_record).unwrap(),
            rtdump::link(999_999, link_from_record).unwrap(),
        )
    });
    let vb = found.expect("vb by index");
    assert_eq!((vb.name.as_str(), &*vb.kind, vb.mtu), ("vb", "veth", 9000));
    assert_eq!(missing, None);
}
