//! NIC ring sizes through ethtool netlink (generic netlink family "ethtool", Linux 5.6
//! and later): ETHTOOL_MSG_RINGS_GET and ETHTOOL_MSG_RINGS_SET, on a plain
//! NETLINK_GENERIC socket driven by [`crate::kernel::rtdump`]'s exchange, so replies
//! are walked in place and errors carry the kernel's extended-ack message.
//!
//! Layout (include/uapi/linux/genetlink.h, ethtool_netlink.h): a generic netlink
//! payload is `struct genlmsghdr` (cmd, version, 2 reserved bytes) then attributes. The
//! family id of "ethtool" is dynamic: CTRL_CMD_GETFAMILY to the controller (id 0x10)
//! with CTRL_ATTR_FAMILY_NAME answers with CTRL_ATTR_FAMILY_ID. A rings request names
//! its device in the nested ETHTOOL_A_RINGS_HEADER (ETHTOOL_A_HEADER_DEV_INDEX).
//!
//! A driver without `get_ringparam` (veth, loopback, bridges) answers EOPNOTSUPP:
//! that is [`Rings::Unsupported`], not an error. The socket belongs to the calling
//! thread's network namespace (see [`crate::kernel::netns`]).

use crate::kernel::nlattr::u16_at;
use crate::kernel::rtdump::{attributes, exchange_on};
use crate::kernel::rtnl::{NlError, NlResult};

const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;

const ETHTOOL_MSG_RINGS_GET: u8 = 15;
const ETHTOOL_MSG_RINGS_SET: u8 = 16;
const ETHTOOL_GENL_VERSION: u8 = 1;

const ETHTOOL_A_RINGS_HEADER: u16 = 1;
const ETHTOOL_A_RINGS_RX_MAX: u16 = 2;
const ETHTOOL_A_RINGS_TX_MAX: u16 = 5;
const ETHTOOL_A_RINGS_RX: u16 = 6;
const ETHTOOL_A_RINGS_TX: u16 = 9;
const ETHTOOL_A_HEADER_DEV_INDEX: u16 = 1;

const NLA_F_NESTED: u16 = 0x8000;
const NLM_F_ACK: u16 = 0x04;

/// A device's ring sizes as ETHTOOL_MSG_RINGS_GET reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RingSizes {
    pub rx: u32,
    pub rx_max: u32,
    pub tx: Option<u32>,
    pub tx_max: Option<u32>,
}

/// What a device says about its rings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rings {
    Sizes(RingSizes),
    /// The driver has no ring parameters (EOPNOTSUPP), with the kernel's message.
    Unsupported(String),
}

fn genl_body(cmd: u8, version: u8) -> [u8; 4] {
    [cmd, version, 0, 0]
}

fn nested(kind: u16, inner: &[(u16, &[u8])]) -> (u16, Vec<u8>) {
    let mut value = Vec::new();
    for (k, v) in inner {
        value.extend_from_slice(&((4 + v.len()) as u16).to_ne_bytes());
        value.extend_from_slice(&k.to_ne_bytes());
        value.extend_from_slice(v);
        value.resize(value.len().div_ceil(4) * 4, 0);
    }
    (kind | NLA_F_NESTED, value)
}

fn u32_attr(value: &[u8], what: &str) -> NlResult<u32> {
    <[u8; 4]>::try_from(value)
        .map(u32::from_ne_bytes)
        .map_err(|_| {
            NlError::local(format!(
                "malformed ethtool reply: {what} is {} bytes",
                value.len()
            ))
        })
}

/// The id of the "ethtool" generic netlink family; `None` when the kernel has none
/// (built without CONFIG_ETHTOOL_NETLINK).
pub fn family() -> NlResult<Option<u16>> {
    let mut id = None;
    let result = exchange_on(
        libc::NETLINK_GENERIC,
        GENL_ID_CTRL,
        0,
        &genl_body(CTRL_CMD_GETFAMILY, 1),
        &[(CTRL_ATTR_FAMILY_NAME, b"ethtool\0")],
        |_, payload| {
            for attr in attributes(payload.get(4..).unwrap_or_default()) {
                let (kind, value) = attr?;
                if kind == CTRL_ATTR_FAMILY_ID {
                    id = u16_at(value, 0);
                }
            }
            Ok(())
        },
    );
    match result {
        Ok(_) => Ok(id),
        Err(e) if e.errno == libc::ENOENT => Ok(None),
        Err(e) => Err(e),
    }
}

fn no_family() -> NlError {
    NlError {
        errno: libc::EOPNOTSUPP,
        message: "the kernel has no ethtool netlink family (CONFIG_ETHTOOL_NETLINK)".into(),
        ext_ack: None,
    }
}

/// Parses the attributes of an ETHTOOL_MSG_RINGS_GET_REPLY payload (after the
/// generic netlink header). Pure.
pub fn parse_rings(attrs: &[u8]) -> NlResult<RingSizes> {
    let (mut rx, mut rx_max, mut tx, mut tx_max) = (None, None, None, None);
    for attr in attributes(attrs) {
        let (kind, value) = attr?;
        match kind & !NLA_F_NESTED {
            ETHTOOL_A_RINGS_RX => rx = Some(u32_attr(value, "ETHTOOL_A_RINGS_RX")?),
            ETHTOOL_A_RINGS_RX_MAX => rx_max = Some(u32_attr(value, "ETHTOOL_A_RINGS_RX_MAX")?),
            ETHTOOL_A_RINGS_TX => tx = Some(u32_attr(value, "ETHTOOL_A_RINGS_TX")?),
            ETHTOOL_A_RINGS_TX_MAX => tx_max = Some(u32_attr(value, "ETHTOOL_A_RINGS_TX_MAX")?),
            _ => {}
        }
    }
    match (rx, rx_max) {
        (Some(rx), Some(rx_max)) => Ok(RingSizes {
            rx,
            rx_max,
            tx,
            tx_max,
        }),
        _ => Err(NlError::local(
            "malformed ethtool reply: no ETHTOOL_A_RINGS_RX / RX_MAX".into(),
        )),
    }
}

/// The ring sizes of the link with `index`, in the calling thread's namespace.
pub fn rings(index: u32) -> NlResult<Rings> {
    let family = family()?.ok_or_else(no_family)?;
    let index = index.to_ne_bytes();
    let (header, header_value) = nested(
        ETHTOOL_A_RINGS_HEADER,
        &[(ETHTOOL_A_HEADER_DEV_INDEX, &index)],
    );
    let mut found = None;
    let result = exchange_on(
        libc::NETLINK_GENERIC,
        family,
        0,
        &genl_body(ETHTOOL_MSG_RINGS_GET, ETHTOOL_GENL_VERSION),
        &[(header, &header_value)],
        |kind, payload| {
            if kind == family {
                found = Some(parse_rings(payload.get(4..).unwrap_or_default())?);
            }
            Ok(())
        },
    );
    match result {
        Ok(_) => found
            .map(Rings::Sizes)
            .ok_or_else(|| NlError::local("the kernel sent no rings reply".into())),
        Err(e) if e.errno == libc::EOPNOTSUPP => Ok(Rings::Unsupported(e.to_string())),
        Err(e) => Err(e),
    }
}

/// Sets the RX ring of the link with `index` to `rx` (ETHTOOL_MSG_RINGS_SET with only
/// ETHTOOL_A_RINGS_RX, so every other ring is left as it is).
pub fn set_rx_ring(index: u32, rx: u32) -> NlResult<()> {
    let family = family()?.ok_or_else(no_family)?;
    let index = index.to_ne_bytes();
    let (header, header_value) = nested(
        ETHTOOL_A_RINGS_HEADER,
        &[(ETHTOOL_A_HEADER_DEV_INDEX, &index)],
    );
    let rx = rx.to_ne_bytes();
    exchange_on(
        libc::NETLINK_GENERIC,
        family,
        NLM_F_ACK,
        &genl_body(ETHTOOL_MSG_RINGS_SET, ETHTOOL_GENL_VERSION),
        &[(header, &header_value), (ETHTOOL_A_RINGS_RX, &rx)],
        |_, _| Ok(()),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: u16, value: u32) -> Vec<u8> {
        let mut out = 8u16.to_ne_bytes().to_vec();
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(&value.to_ne_bytes());
        out
    }

    #[test]
    fn a_rings_reply_is_read_and_bad_ones_are_errors() {
        let mut reply = attr(ETHTOOL_A_RINGS_RX_MAX, 1024);
        reply.extend(attr(ETHTOOL_A_RINGS_RX, 256));
        reply.extend(attr(ETHTOOL_A_RINGS_TX, 256));
        assert_eq!(
            parse_rings(&reply).unwrap(),
            RingSizes {
                rx: 256,
                rx_max: 1024,
                tx: Some(256),
                tx_max: None
            }
        );
        assert!(parse_rings(&reply[..8]).is_err());
        assert!(parse_rings(&reply[..10]).is_err());
        let mut short = 6u16.to_ne_bytes().to_vec();
        short.extend_from_slice(&ETHTOOL_A_RINGS_RX.to_ne_bytes());
        short.extend_from_slice(&[1, 0, 0, 0]);
        assert!(parse_rings(&short).is_err());
    }
}
