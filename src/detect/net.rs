//! The `link` and `qdisc` conditions: which links and root qdiscs a condition
//! matches, with the tests each passed.
//!
//! Pure: no I/O. `plan::net` uses the same matching ([`link_matches`],
//! [`qdisc_matches`], [`target_conditions`]) to choose the links its actions change.

use glob::Pattern;

pub use crate::facts::net::LinkIndex;
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

/// What a link matched: the tests it passed and, for `path_mismatch`, the MTU its
/// path asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkMatch {
    pub tests: String,
    pub path: Option<PathMtu>,
}

/// The MTU a link's path asks for, from a mismatch the host can see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathMtu {
    /// The MTU to set: the larger end, capped by what the link's path carries, or (a
    /// VLAN/VXLAN too large for its lower device) what the lower device carries.
    pub want: u32,
    /// Why the link cannot be brought to the larger end, when a cap stops it.
    pub blocked: Option<String>,
}

/// The encapsulation an upper device of this kind adds on its lower device, in bytes,
/// or `None` when the kind is not carried by a lower device (IFLA_LINK of a veth names
/// its peer, not a lower device).
fn overhead(upper: &Link) -> Option<u32> {
    match &*upper.kind {
        // The 802.1Q tag is outside the MTU, as are macvlan/ipvlan frames.
        "vlan" | "macvlan" | "macvtap" | "ipvlan" | "ipvtap" => Some(0),
        // Outer IP + UDP + VXLAN + inner Ethernet: 20 + 8 + 8 + 14, or 40 + ... for IPv6.
        "vxlan" if upper.vxlan_ipv6 => Some(70),
        "vxlan" => Some(50),
        _ => None,
    }
}

/// Another end of a link, as the evidence names it.
struct End {
    what: String,
    mtu: u32,
}

/// How the error of a veth peer that could not be read begins: such a link is
/// undecided, while other links may still decide the condition.
const PEER_UNKNOWN: &str = "veth peer of ";

/// The veth peer of a link: in this namespace, or read in its own (`Err` when that
/// could not be read).
fn veth_peer<'a>(
    link: &Link,
    by_index: &dyn Fn(u32) -> Option<&'a Link>,
) -> Result<Option<End>, String> {
    let Some(index) = link.link.get().filter(|_| link.kind == "veth") else {
        return Ok(None);
    };
    let Some(nsid) = link.link_netnsid.get() else {
        return Ok(by_index(index).map(|peer| End {
            what: format!("its veth peer {}", peer.name),
            mtu: peer.mtu,
        }));
    };
    match link.link_remote() {
        Some(Fact::Value(r)) => Ok(Some(End {
            what: format!("its veth peer {} in netns id {nsid}", r.name),
            mtu: r.mtu,
        })),
        Some(Fact::Unknown(why)) => Err(format!("{PEER_UNKNOWN}{}: {why}", link.name)),
        None => Err(format!("{PEER_UNKNOWN}{}: not read", link.name)),
    }
}

/// What the lower device of an upper link (VLAN, macvlan, VXLAN) carries for it.
fn lower_capacity<'a>(link: &Link, by_index: &dyn Fn(u32) -> Option<&'a Link>) -> Option<End> {
    let extra = overhead(link)?;
    let lower = by_index(link.link.get().filter(|_| link.link_netnsid.is_none())?)?;
    let what = if extra > 0 {
        let ip = if link.vxlan_ipv6 { 6 } else { 4 };
        format!(
            "its lower device {} (mtu {}, less {extra} bytes of {} over IPv{ip})",
            lower.name, lower.mtu, link.kind
        )
    } else {
        format!("its lower device {} (mtu {})", lower.name, lower.mtu)
    };
    Some(End {
        what,
        mtu: lower.mtu.saturating_sub(extra),
    })
}

fn master<'a>(link: &Link, by_index: &dyn Fn(u32) -> Option<&'a Link>) -> Option<End> {
    let m = by_index(link.master.get()?)?;
    Some(End {
        what: format!("its master {} ({})", m.name, m.kind),
        mtu: m.mtu,
    })
}

/// The MTU a link's path asks for and the evidence, or `None` when the link agrees
/// with every link it is attached to. `Err` when its veth peer could not be read.
pub fn path_mtu(link: &Link, links: &LinkIndex) -> Result<Option<(PathMtu, String)>, String> {
    let by_index = |i: u32| links.get(i);
    // Too large for its lower device: the lower device's own path is not visible
    // from here, so the upper device comes down to what the lower one carries.
    if let Some(lower) = lower_capacity(link, &by_index)
        && link.mtu > lower.mtu
    {
        let test = format!("mtu {} > {} allowed by {}", link.mtu, lower.mtu, lower.what);
        return Ok(Some((
            PathMtu {
                want: lower.mtu,
                blocked: None,
            },
            test,
        )));
    }
    let peer = veth_peer(link, &by_index)?;
    let master = master(link, &by_index);
    let larger: Vec<&End> = [&peer, &master]
        .into_iter()
        .flatten()
        .filter(|end| end.mtu > link.mtu)
        .collect();
    let Some(widest) = larger.iter().max_by_key(|end| end.mtu) else {
        return Ok(None);
    };
    let test = larger
        .iter()
        .map(|end| format!("mtu {} < {} of {}", link.mtu, end.mtu, end.what))
        .collect::<Vec<_>>()
        .join(", ");
    // Never above any end of the path: the peer, the master, the lower device.
    let lower = lower_capacity(link, &by_index);
    let cap = [&peer, &master, &lower]
        .into_iter()
        .flatten()
        .min_by_key(|end| end.mtu);
    let path = match cap {
        Some(cap) if cap.mtu < widest.mtu => PathMtu {
            want: widest.mtu,
            blocked: Some(format!(
                "cannot raise the MTU of {} to the {} of {}: {} allows only {}",
                link.name, widest.mtu, widest.what, cap.what, cap.mtu
            )),
        },
        _ => PathMtu {
            want: widest.mtu,
            blocked: None,
        },
    };
    Ok(Some((path, test)))
}

/// The largest MTU the ends of a link's path allow (its peer, master and lower
/// device), leaving out the links named in `raised`, which the plan raises too.
pub fn path_cap(
    link: &Link,
    links: &LinkIndex,
    raised: &dyn Fn(&Link) -> bool,
) -> Result<Option<(u32, String)>, String> {
    let by_index = |i: u32| links.get(i).filter(|l| !raised(l));
    let ends = [
        veth_peer(link, &by_index)?,
        master(link, &by_index),
        lower_capacity(link, &|i| links.get(i)),
    ];
    Ok(ends
        .into_iter()
        .flatten()
        .min_by_key(|end| end.mtu)
        .map(|end| (end.mtu, end.what)))
}

/// How a link matches, or `None` when it does not.
pub fn link_matches(
    c: &LinkCondition,
    glob: &Pattern,
    link: &Link,
    links: &LinkIndex,
    vars: &Vars,
) -> Result<Option<LinkMatch>, String> {
    if !glob.matches(&link.name) || !(c.kind.is_empty() || c.kind.iter().any(|k| *k == link.kind)) {
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
        match link.max_mtu.get() {
            // 0: the driver sets no maximum.
            Some(0) | None => tests.push("no maximum MTU reported".to_owned()),
            Some(max) if f64::from(max) >= want => tests.push(format!("max mtu {max} >= {want}")),
            Some(_) => return Ok(None),
        }
    }
    let mut path = None;
    if c.path_mismatch {
        let Some((found, test)) = path_mtu(link, links)? else {
            return Ok(None);
        };
        tests.push(test);
        path = Some(found);
    }
    Ok(Some(LinkMatch {
        tests: tests.join(", "),
        path,
    }))
}

fn selector(c: &LinkCondition) -> String {
    let mut s = format!("links named {:?}", c.name);
    if !c.kind.is_empty() {
        s.push_str(&format!(" of kind {}", c.kind.join("/")));
    }
    if c.path_mismatch {
        s.push_str(" with an MTU mismatch");
    }
    s
}

/// Evaluates a `link` condition: true when a link matches; else unknown when a link's
/// other end could not be read; else false.
pub fn eval_link(c: &LinkCondition, facts: &Facts, vars: &Vars) -> Decided {
    let all = links(facts)?;
    let glob = pattern(&c.name, vars)?;
    let mut evidence = Vec::new();
    let mut unknown = Vec::new();
    let index = LinkIndex::new(all);
    for link in all {
        match link_matches(c, &glob, link, &index, vars) {
            Ok(Some(m)) => evidence.push(Evidence {
                fact: format!("link {} ({})", link.name, link.kind),
                observed: format!("mtu {}", link.mtu),
                test: m.tests,
            }),
            Ok(None) => {}
            Err(e) if c.path_mismatch && e.starts_with(PEER_UNKNOWN) => unknown.push(e),
            Err(e) => return Err(e),
        }
    }
    if !evidence.is_empty() {
        return Ok((true, evidence));
    }
    if let Some(first) = unknown.first() {
        return Err(match unknown.len() {
            1 => first.clone(),
            n => format!("{first} (and {} more)", n - 1),
        });
    }
    let eligible = all
        .iter()
        .filter(|l| {
            glob.matches(&l.name) && (c.kind.is_empty() || c.kind.iter().any(|k| *k == l.kind))
        })
        .count();
    Ok((
        false,
        vec![Evidence {
            fact: selector(c),
            observed: format!("{eligible} of {} link(s) selected", all.len()),
            test: "none matches".to_owned(),
        }],
    ))
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
