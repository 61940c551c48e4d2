//! The link and qdisc executor: MTU and root qdiscs through rtnetlink (RX rings
//! through ethtool netlink), in the
//! calling thread's network namespace (one connection per thread for changes, see
//! [`crate::kernel::rtnl`]; a fresh socket per read, see [`crate::kernel::rtdump`]).
//!
//! Every read and write first checks that the interface index still carries the
//! recorded name, so a link that vanished or was renamed since the plan is a clear
//! error rather than a change to whatever now has that index.

use anyhow::{Result, anyhow, bail};

use crate::domain::qdisc::{NONE, QdiscSpec};
use crate::facts::net::{link_from_record, root_qdisc_from_record};
use crate::kernel::ethtool::{self, Rings};
use crate::kernel::rtdump;
use crate::kernel::rtnl::{NlError, with_session};

/// Checks that `ifindex` is still the link called `name`.
fn check_identity(name: &str, ifindex: u32) -> Result<crate::facts::net::Link> {
    let found = rtdump::link(ifindex, link_from_record)
        .map_err(|e| anyhow!("cannot read link {name}: {e}"))?;
    let Some(link) = found else {
        bail!("link {name} (index {ifindex}) no longer exists");
    };
    if link.name != name {
        bail!(
            "link index {ifindex} is now named {:?}, not {name:?}: it was renamed or replaced since the plan was made",
            link.name
        );
    }
    Ok(link)
}

pub fn read_mtu(name: &str, ifindex: u32) -> Result<String> {
    Ok(format!("mtu {}", check_identity(name, ifindex)?.mtu))
}

pub fn write_mtu(name: &str, ifindex: u32, mtu: u32) -> Result<()> {
    check_identity(name, ifindex)?;
    with_session(|s| s.set_mtu(ifindex, mtu))
        .map_err(|e| anyhow!("the kernel refused MTU {mtu} on {name}: {e}"))
}

/// The link's RX ring as `rx N` (ethtool netlink).
pub fn read_rx_ring(name: &str, ifindex: u32) -> Result<String> {
    check_identity(name, ifindex)?;
    match ethtool::rings(ifindex).map_err(|e| anyhow!("cannot read the rings of {name}: {e}"))? {
        Rings::Sizes(s) => Ok(format!("rx {}", s.rx)),
        Rings::Unsupported(why) => bail!("{name} has no ring parameters: {why}"),
    }
}

/// Sets the link's RX ring; the apply reads it back and compares with the target.
pub fn write_rx_ring(name: &str, ifindex: u32, rx: u32) -> Result<()> {
    check_identity(name, ifindex)?;
    ethtool::set_rx_ring(ifindex, rx)
        .map_err(|e| anyhow!("the kernel refused RX ring {rx} on {name}: {e}"))
}

/// The canonical text of the link's root qdisc, or `(none)` for the kernel's default.
pub fn read_root_qdisc(name: &str, ifindex: u32) -> Result<String> {
    let link = check_identity(name, ifindex)?;
    let roots = rtdump::qdiscs(|r| {
        if r.ifindex == ifindex as i32 {
            root_qdisc_from_record(r, |_| Some(&link.name))
        } else {
            None
        }
    })
    .map_err(|e| anyhow!("cannot dump qdiscs: {e}"))?;
    let root = roots.into_iter().next();
    Ok(match root {
        Some(q) if !q.is_default() => q.spec.canonical(),
        _ => NONE.to_owned(),
    })
}

fn gone(e: &NlError) -> bool {
    matches!(e.errno, libc::ENOENT | libc::EINVAL)
}

pub fn write_root_qdisc(
    name: &str,
    ifindex: u32,
    before: Option<&QdiscSpec>,
    after: Option<&QdiscSpec>,
) -> Result<()> {
    check_identity(name, ifindex)?;
    if let Some(old) = before {
        with_session(|s| s.delete_root_qdisc(ifindex, old)).map_err(|e| {
            if gone(&e) {
                anyhow!(
                    "the root qdisc {} {} of {name} is already gone or was replaced: {e}",
                    old.kind,
                    crate::domain::qdisc::format_handle(old.handle)
                )
            } else {
                anyhow!("cannot delete the root qdisc {} of {name}: {e}", old.kind)
            }
        })?;
    }
    if let Some(new) = after {
        with_session(|s| s.create_root_qdisc(ifindex, new)).map_err(|e| {
            anyhow!(
                "cannot re-create the root qdisc {} {} on {name}: {e}",
                new.kind,
                crate::domain::qdisc::format_handle(new.handle)
            )
        })?;
    }
    Ok(())
}
