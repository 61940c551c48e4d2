//! The read side of rtnetlink: link and qdisc dumps on a plain NETLINK_ROUTE socket,
//! read by a small parser that looks only at the fields the facts need.
//!
//! Why not rtnetlink here: decoding every attribute of a 10,000-link dump into
//! netlink-packet-route's types (statistics, address families, per-link info data)
//! costs several times the kernel's own time to build the dump, and its connection
//! task decodes ahead into an unbounded channel. A fact needs a handful of fields, so
//! the reply is read into one reusable buffer and walked in place: [`LinkRecord`] and
//! [`QdiscRecord`] borrow from it, and only what the caller keeps is allocated.
//! Mutations (MTU, qdisc deletion and re-creation) stay in [`crate::kernel::rtnl`].
//!
//! The socket is created by the calling thread, per request, so it belongs to the
//! network namespace that thread is in (see [`crate::kernel::netns`]).
//!
//! Layout (include/uapi/linux/netlink.h, rtnetlink.h, if_link.h, pkt_sched.h): a reply
//! datagram holds netlink messages, each a 16-byte `nlmsghdr` (length, type, flags,
//! sequence, port) and a payload, padded to 4 bytes. A link payload is `struct
//! ifinfomsg` (16 bytes) and a qdisc payload `struct tcmsg` (20 bytes), each followed
//! by attributes: a 4-byte header (length, type) and a value, padded to 4 bytes. A dump
//! ends with NLMSG_DONE; a failure is NLMSG_ERROR carrying a negative errno. The
//! parser ([`read_datagram`], [`parse_link`], [`parse_qdisc`]) is pure and returns an
//! error on truncated or malformed input rather than panicking.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::kernel::nlattr::{self, align4, u16_at, u32_at};
use crate::kernel::rtnl::{NlError, NlResult};

const NLMSG_HDRLEN: usize = 16;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
const NLM_F_REQUEST: u16 = 0x01;
const NLM_F_MULTI: u16 = 0x02;
const NLM_F_DUMP_INTR: u16 = 0x10;
/// On NLMSG_ERROR / NLMSG_DONE: ext-ack attributes follow.
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLM_F_DUMP: u16 = 0x300;

pub const RTM_NEWLINK: u16 = 16;
pub const RTM_GETLINK: u16 = 18;
pub const RTM_NEWQDISC: u16 = 36;
pub const RTM_GETQDISC: u16 = 38;

const IFINFOMSG_LEN: usize = 16;
const TCMSG_LEN: usize = 20;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_LINK: u16 = 5;
const IFLA_MASTER: u16 = 10;
const IFLA_OPERSTATE: u16 = 16;
const IFLA_LINKINFO: u16 = 18;
const IFLA_EXT_MASK: u16 = 29;
const IFLA_LINK_NETNSID: u16 = 37;
/// IFLA_IF_NETNSID in older headers: ask about the namespace this id names.
const IFLA_TARGET_NETNSID: u16 = 46;
const IFLA_MIN_MTU: u16 = 50;
const IFLA_PROP_LIST: u16 = 52;
const IFLA_ALT_IFNAME: u16 = 53;
const IFLA_MAX_MTU: u16 = 51;
const IFLA_STATS64: u16 = 23;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const IFLA_VXLAN_LINK: u16 = 3;
const IFLA_VXLAN_GROUP6: u16 = 16;
const IFLA_VXLAN_LOCAL6: u16 = 17;
/// Leave out the IPv6 statistics (the bulk of a link message) and VF statistics.
/// Sent on every link request: IFLA_STATS64 (and IFLA_STATS) still come back with it
/// (on 6.18 a veth's message shrinks from 1468 to 1124 bytes, both blocks kept), so
/// there is no cheaper dump for rules that need no receive-drop counters.
const RTEXT_FILTER_SKIP_STATS: u32 = 1 << 3;
const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;

/// The kernel fills at most 32 KiB per datagram of a dump unless one message needs
/// more; a megabyte leaves room for any single link message and costs only the pages
/// the kernel writes to.
const RECV_BUFFER: usize = 1 << 20;
/// Socket receive buffer to ask for; a dump is paced by our reads, so this only needs
/// to hold a few datagrams, but a roomy one costs nothing until used.
const SOCKET_RCVBUF: libc::c_int = 4 << 20;
/// A dump the kernel marks inconsistent (a link came or went meanwhile) is taken again,
/// this many times at most; the last one is kept either way, as `ip` does.
const DUMP_ATTEMPTS: usize = 3;

/// A link as dumped, borrowing from the reply buffer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LinkRecord<'a> {
    /// `ifi_index`.
    pub index: u32,
    /// `ifi_type`: the ARPHRD link-layer type.
    pub link_layer_type: u16,
    /// `ifi_flags` (IFF_UP, ...).
    pub flags: u32,
    /// IFLA_IFNAME without its NUL.
    pub name: Option<&'a [u8]>,
    /// IFLA_ADDRESS: the link-layer address (6 bytes for Ethernet).
    pub address: Option<&'a [u8]>,
    /// IFLA_PROP_LIST → IFLA_ALT_IFNAME: the link's alternative names.
    pub altnames: Vec<&'a [u8]>,
    pub mtu: Option<u32>,
    pub min_mtu: Option<u32>,
    pub max_mtu: Option<u32>,
    /// IFLA_OPERSTATE (RFC 2863 state, `IF_OPER_*`).
    pub operstate: Option<u8>,
    /// IFLA_LINKINFO → IFLA_INFO_KIND without its NUL.
    pub kind: Option<&'a [u8]>,
    /// IFLA_LINK: a veth's peer, or the lower device of a VLAN or macvlan (for a
    /// VXLAN, IFLA_VXLAN_LINK); absent when the kernel reports the link itself.
    pub link: Option<u32>,
    /// IFLA_LINK_NETNSID: `link` is in another namespace, named by this id.
    pub link_netnsid: Option<i32>,
    /// IFLA_MASTER: the bridge or bond this link is a port of.
    pub master: Option<u32>,
    /// A VXLAN with an IPv6 group or local address (IFLA_VXLAN_GROUP6/LOCAL6).
    pub vxlan_ipv6: bool,
    /// The receive-drop counters of IFLA_STATS64, which the kernel fills whatever
    /// RTEXT_FILTER_SKIP_STATS says (that skips only the per-family and VF blocks).
    pub rx_drops: Option<RxDrops>,
}

/// The receive-side drop counters of `struct rtnl_link_stats64` (if_link.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RxDrops {
    /// `rx_dropped`: received, then dropped by the stack or driver (no buffer, ...).
    pub rx_dropped: u64,
    /// `rx_fifo_errors`: the NIC's receive FIFO overran.
    pub rx_fifo_errors: u64,
    /// `rx_missed_errors`: the NIC had no descriptor in the RX ring (ethtool's
    /// rx_missed, netstat's RX-OVR).
    pub rx_missed_errors: u64,
}

/// rtnl_link_stats64 field offsets (each a u64).
const STATS64_RX_DROPPED: usize = 6 * 8;
const STATS64_RX_FIFO: usize = 14 * 8;
const STATS64_RX_MISSED: usize = 15 * 8;

fn parse_rx_drops(value: &[u8]) -> NlResult<RxDrops> {
    let at = |offset: usize| -> NlResult<u64> {
        value
            .get(offset..offset + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_ne_bytes)
            .ok_or_else(|| malformed(format!("IFLA_STATS64 of {} bytes", value.len())))
    };
    Ok(RxDrops {
        rx_dropped: at(STATS64_RX_DROPPED)?,
        rx_fifo_errors: at(STATS64_RX_FIFO)?,
        rx_missed_errors: at(STATS64_RX_MISSED)?,
    })
}

/// A qdisc as dumped, borrowing from the reply buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QdiscRecord<'a> {
    /// `tcm_ifindex`.
    pub ifindex: i32,
    pub handle: u32,
    pub parent: u32,
    /// TCA_KIND without its NUL.
    pub kind: Option<&'a [u8]>,
    /// TCA_OPTIONS exactly as dumped (the attribute's value, without its header).
    pub options: Option<&'a [u8]>,
}

/// What one reply datagram said beyond its data messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Datagram {
    /// The reply is complete (NLMSG_DONE, an acknowledgement, or the single message of
    /// a request that was not a dump).
    pub done: bool,
    /// The kernel flagged the dump as inconsistent (NLM_F_DUMP_INTR).
    pub interrupted: bool,
}

fn malformed(what: impl std::fmt::Display) -> NlError {
    NlError::local(format!("malformed netlink reply: {what}"))
}

fn kernel_error(errno: i32, ext_ack: Option<String>) -> NlError {
    NlError {
        errno,
        message: std::io::Error::from_raw_os_error(errno).to_string(),
        ext_ack,
    }
}

/// Walks the netlink messages of one datagram answering request `seq`: data messages
/// go to `each` (message type, payload); control messages end the reply or fail it.
/// Messages of other sequence numbers are skipped.
pub fn read_datagram(
    buf: &[u8],
    seq: u32,
    mut each: impl FnMut(u16, &[u8]) -> NlResult<()>,
) -> NlResult<Datagram> {
    let mut out = Datagram::default();
    let mut offset = 0;
    while offset < buf.len() {
        let rest = &buf[offset..];
        let (Some(len), Some(kind), Some(flags), Some(msg_seq)) = (
            u32_at(rest, 0),
            u16_at(rest, 4),
            u16_at(rest, 6),
            u32_at(rest, 8),
        ) else {
            return Err(malformed(format!(
                "{} trailing bytes are too short for a message header",
                rest.len()
            )));
        };
        let len = len as usize;
        if len < NLMSG_HDRLEN || len > rest.len() {
            return Err(malformed(format!(
                "message length {len} with {} bytes left",
                rest.len()
            )));
        }
        let payload = &rest[NLMSG_HDRLEN..len];
        offset += align4(len).min(rest.len());
        if msg_seq != seq {
            continue;
        }
        if flags & NLM_F_DUMP_INTR != 0 {
            out.interrupted = true;
        }
        match kind {
            NLMSG_NOOP => {}
            NLMSG_DONE => {
                // The payload is the dump's final status, then (with NETLINK_EXT_ACK)
                // ext-ack attributes.
                match u32_at(payload, 0).map(|c| c as i32) {
                    Some(code) if code < 0 => {
                        let ack = (flags & NLM_F_ACK_TLVS != 0)
                            .then(|| {
                                crate::kernel::rtnl::ext_ack_in(
                                    payload.get(4..).unwrap_or_default(),
                                )
                            })
                            .flatten();
                        return Err(kernel_error(code.saturating_neg(), ack));
                    }
                    _ => {}
                }
                out.done = true;
                return Ok(out);
            }
            NLMSG_ERROR => {
                let code = u32_at(payload, 0)
                    .ok_or_else(|| malformed("error message without an error code"))?
                    as i32;
                if code != 0 {
                    let ack = (flags & NLM_F_ACK_TLVS != 0)
                        .then(|| {
                            crate::kernel::rtnl::ext_ack_message(
                                payload.get(4..).unwrap_or_default(),
                            )
                        })
                        .flatten();
                    return Err(kernel_error(code.saturating_neg(), ack));
                }
                out.done = true;
                return Ok(out);
            }
            NLMSG_OVERRUN => return Err(malformed("the kernel reported an overrun")),
            _ => {
                each(kind, payload)?;
                if flags & NLM_F_MULTI == 0 {
                    out.done = true;
                    return Ok(out);
                }
            }
        }
    }
    Ok(out)
}

/// The attributes of a payload, with parse errors as [`NlError`]s.
pub fn attributes(bytes: &[u8]) -> impl Iterator<Item = NlResult<(u16, &[u8])>> {
    nlattr::attributes(bytes).map(|attr| attr.map_err(malformed))
}

/// A NUL-terminated string attribute's bytes, up to the first NUL.
fn c_string(value: &[u8]) -> &[u8] {
    value.split(|b| *b == 0).next().unwrap_or_default()
}

fn u32_value(value: &[u8], what: &str) -> NlResult<u32> {
    let bytes: [u8; 4] = value
        .try_into()
        .map_err(|_| malformed(format!("{what} is {} bytes, not 4", value.len())))?;
    Ok(u32::from_ne_bytes(bytes))
}

/// Reads an RTM_NEWLINK payload.
pub fn parse_link(payload: &[u8]) -> NlResult<LinkRecord<'_>> {
    let (Some(link_layer_type), Some(index), Some(flags), true) = (
        u16_at(payload, 2),
        u32_at(payload, 4),
        u32_at(payload, 8),
        payload.len() >= IFINFOMSG_LEN,
    ) else {
        return Err(malformed(format!(
            "link message of {} bytes, struct ifinfomsg needs {IFINFOMSG_LEN}",
            payload.len()
        )));
    };
    let mut link = LinkRecord {
        index,
        link_layer_type,
        flags,
        ..LinkRecord::default()
    };
    for attr in attributes(&payload[IFINFOMSG_LEN..]) {
        let (kind, value) = attr?;
        match kind {
            IFLA_IFNAME => link.name = Some(c_string(value)),
            IFLA_ADDRESS => link.address = Some(value),
            IFLA_PROP_LIST => {
                for prop in attributes(value) {
                    if let (IFLA_ALT_IFNAME, value) = prop? {
                        link.altnames.push(c_string(value));
                    }
                }
            }
            IFLA_MTU => link.mtu = Some(u32_value(value, "IFLA_MTU")?),
            IFLA_MIN_MTU => link.min_mtu = Some(u32_value(value, "IFLA_MIN_MTU")?),
            IFLA_MAX_MTU => link.max_mtu = Some(u32_value(value, "IFLA_MAX_MTU")?),
            IFLA_STATS64 => link.rx_drops = Some(parse_rx_drops(value)?),
            IFLA_LINK => link.link = Some(u32_value(value, "IFLA_LINK")?),
            IFLA_MASTER => link.master = Some(u32_value(value, "IFLA_MASTER")?),
            IFLA_LINK_NETNSID => {
                link.link_netnsid = Some(u32_value(value, "IFLA_LINK_NETNSID")? as i32);
            }
            IFLA_OPERSTATE => {
                link.operstate = Some(
                    *value
                        .first()
                        .ok_or_else(|| malformed("empty IFLA_OPERSTATE"))?,
                );
            }
            IFLA_LINKINFO => {
                let mut data = None;
                for info in attributes(value) {
                    let (kind, value) = info?;
                    match kind {
                        IFLA_INFO_KIND => link.kind = Some(c_string(value)),
                        IFLA_INFO_DATA => data = Some(value),
                        _ => {}
                    }
                }
                if let (Some(b"vxlan"), Some(data)) = (link.kind, data) {
                    for attr in attributes(data) {
                        let (kind, value) = attr?;
                        match kind {
                            IFLA_VXLAN_LINK => {
                                let lower = u32_value(value, "IFLA_VXLAN_LINK")?;
                                link.link = (lower != 0).then_some(lower);
                            }
                            IFLA_VXLAN_GROUP6 | IFLA_VXLAN_LOCAL6 => link.vxlan_ipv6 = true,
                            _ => {}
                        }
                    }
                }
            }
            _ => {}
        }
    }
    // IFLA_LINK 0 (a tunnel with no lower device) names nothing.
    if link.link == Some(0) {
        link.link = None;
    }
    Ok(link)
}

/// Reads an RTM_NEWQDISC payload.
pub fn parse_qdisc(payload: &[u8]) -> NlResult<QdiscRecord<'_>> {
    let (Some(ifindex), Some(handle), Some(parent), true) = (
        u32_at(payload, 4),
        u32_at(payload, 8),
        u32_at(payload, 12),
        payload.len() >= TCMSG_LEN,
    ) else {
        return Err(malformed(format!(
            "qdisc message of {} bytes, struct tcmsg needs {TCMSG_LEN}",
            payload.len()
        )));
    };
    let mut qdisc = QdiscRecord {
        ifindex: ifindex as i32,
        handle,
        parent,
        ..QdiscRecord::default()
    };
    for attr in attributes(&payload[TCMSG_LEN..]) {
        match attr? {
            (TCA_KIND, value) => qdisc.kind = Some(c_string(value)),
            (TCA_OPTIONS, value) => qdisc.options = Some(value),
            _ => {}
        }
    }
    Ok(qdisc)
}

/// The bytes of a request: header, fixed-size body, then attributes.
pub fn request(kind: u16, flags: u16, seq: u32, body: &[u8], attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut out = vec![0; NLMSG_HDRLEN];
    out.extend_from_slice(body);
    for (kind, value) in attrs {
        out.resize(align4(out.len()), 0);
        out.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(value);
    }
    out.resize(align4(out.len()), 0);
    let len = out.len() as u32;
    out[0..4].copy_from_slice(&len.to_ne_bytes());
    out[4..6].copy_from_slice(&kind.to_ne_bytes());
    out[6..8].copy_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
    out[8..12].copy_from_slice(&seq.to_ne_bytes());
    out
}

/// A NETLINK_ROUTE socket in the calling thread's network namespace.
struct Socket {
    fd: OwnedFd,
}

fn os_error(what: &str) -> NlError {
    let e = std::io::Error::last_os_error();
    NlError {
        errno: e.raw_os_error().unwrap_or(0),
        message: format!("{what}: {e}"),
        ext_ack: None,
    }
}

impl Socket {
    fn open(protocol: libc::c_int) -> NlResult<Socket> {
        // SAFETY: plain socket(2) call; the result is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                protocol,
            )
        };
        if fd < 0 {
            return Err(os_error("cannot open a netlink socket"));
        }
        // SAFETY: fd is a freshly created descriptor that nothing else owns.
        let socket = Socket {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        };
        // SO_RCVBUFFORCE needs CAP_NET_ADMIN; SO_RCVBUF is capped by rmem_max. Either
        // is only a comfort (see SOCKET_RCVBUF), so failures are ignored.
        if !socket.set(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, SOCKET_RCVBUF) {
            socket.set(libc::SOL_SOCKET, libc::SO_RCVBUF, SOCKET_RCVBUF);
        }
        // The kernel's explanation of a failure; without CAP_ACK its offset would
        // depend on the echoed request, so ask for both or neither.
        if socket.set(libc::SOL_NETLINK, libc::NETLINK_CAP_ACK, 1) {
            socket.set(libc::SOL_NETLINK, libc::NETLINK_EXT_ACK, 1);
        }
        Ok(socket)
    }

    fn set(&self, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> bool {
        // SAFETY: value lives across the call and its size is passed.
        unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                (&raw const value).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            ) == 0
        }
    }

    fn send(&self, request: &[u8]) -> NlResult<()> {
        loop {
            // SAFETY: request is a live buffer of the given length. An unconnected
            // netlink socket sends to the kernel (port 0).
            let n = unsafe {
                libc::send(
                    self.fd.as_raw_fd(),
                    request.as_ptr().cast(),
                    request.len(),
                    0,
                )
            };
            if n >= 0 {
                return Ok(());
            }
            if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                return Err(os_error("cannot send a netlink request"));
            }
        }
    }

    /// Receives one datagram into `buf`, replacing its contents.
    fn recv(&self, buf: &mut Vec<u8>) -> NlResult<()> {
        buf.clear();
        loop {
            // SAFETY: the kernel writes at most `capacity` bytes into the vector's
            // allocation. MSG_TRUNC makes it return the datagram's full length, so a
            // datagram larger than the buffer is detected rather than cut short.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.capacity(),
                    libc::MSG_TRUNC,
                )
            };
            if n < 0 {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(os_error("cannot read a netlink reply"));
            }
            let n = n as usize;
            if n == 0 {
                return Err(malformed("empty datagram"));
            }
            if n > buf.capacity() {
                return Err(malformed(format!(
                    "a {n}-byte datagram exceeds the {}-byte receive buffer",
                    buf.capacity()
                )));
            }
            // SAFETY: the kernel initialized the first n bytes, n <= capacity.
            unsafe { buf.set_len(n) };
            return Ok(());
        }
    }
}

static SEQUENCE: AtomicU32 = AtomicU32::new(1);

/// Sends a request on a fresh socket of netlink `protocol` (NETLINK_GENERIC for
/// [`crate::kernel::ethtool`], NETLINK_SOCK_DIAG for the socket dumps) and hands each
/// data message's payload to `each` until the reply is complete. Returns whether the
/// kernel flagged the dump as inconsistent.
pub fn exchange_on(
    protocol: libc::c_int,
    kind: u16,
    flags: u16,
    body: &[u8],
    attrs: &[(u16, &[u8])],
    each: impl FnMut(u16, &[u8]) -> NlResult<()>,
) -> NlResult<bool> {
    Session::open(protocol)?.exchange(kind, flags, body, attrs, each)
}

/// A socket with its receive buffer, for several requests in a row.
struct Session {
    socket: Socket,
    buf: Vec<u8>,
}

impl Session {
    fn open(protocol: libc::c_int) -> NlResult<Session> {
        Ok(Session {
            socket: Socket::open(protocol)?,
            buf: Vec::with_capacity(RECV_BUFFER),
        })
    }

    /// Sends one request and hands each data message's payload of its reply to `each`
    /// until the reply is complete (datagrams of earlier requests are skipped by their
    /// sequence numbers). Returns whether the kernel flagged a dump as inconsistent.
    fn exchange(
        &mut self,
        kind: u16,
        flags: u16,
        body: &[u8],
        attrs: &[(u16, &[u8])],
        mut each: impl FnMut(u16, &[u8]) -> NlResult<()>,
    ) -> NlResult<bool> {
        let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        self.socket.send(&request(kind, flags, seq, body, attrs))?;
        let mut interrupted = false;
        loop {
            self.socket.recv(&mut self.buf)?;
            let datagram = read_datagram(&self.buf, seq, &mut each)?;
            interrupted |= datagram.interrupted;
            if datagram.done {
                return Ok(interrupted);
            }
        }
    }

    /// Dumps with `kind`, converting each message of `reply_kind` with `convert`;
    /// retried when the kernel flags the dump as inconsistent.
    fn dump<T>(
        &mut self,
        kind: u16,
        reply_kind: u16,
        body: &[u8],
        attrs: &[(u16, &[u8])],
        mut convert: impl FnMut(&[u8]) -> NlResult<Option<T>>,
    ) -> NlResult<Vec<T>> {
        let mut out = Vec::new();
        for _ in 0..DUMP_ATTEMPTS {
            out.clear();
            let interrupted = self.exchange(kind, NLM_F_DUMP, body, attrs, |k, payload| {
                if k == reply_kind
                    && let Some(t) = convert(payload)?
                {
                    out.push(t);
                }
                Ok(())
            })?;
            if !interrupted {
                break;
            }
        }
        Ok(out)
    }

    fn get_link<T>(
        &mut self,
        index: u32,
        attrs: &[(u16, &[u8])],
        convert: impl FnOnce(&LinkRecord) -> T,
    ) -> NlResult<Option<T>> {
        let mut body = [0u8; IFINFOMSG_LEN];
        body[4..8].copy_from_slice(&index.to_ne_bytes());
        let mut convert = Some(convert);
        let mut found = None;
        let result = self.exchange(RTM_GETLINK, 0, &body, attrs, |kind, payload| {
            if kind == RTM_NEWLINK
                && let Some(convert) = convert.take()
            {
                found = Some(convert(&parse_link(payload)?));
            }
            Ok(())
        });
        match result {
            Ok(_) => Ok(found),
            Err(e) if e.errno == libc::ENODEV => Ok(None),
            Err(e) => Err(e),
        }
    }
}

const SKIP_STATS: [u8; 4] = RTEXT_FILTER_SKIP_STATS.to_ne_bytes();

/// One NETLINK_ROUTE socket for the several requests of one gathering (the link dump,
/// the peers, the qdisc dump), where each request opened its own: five system calls
/// and a socket's set-up and tear-down each, once per namespace with `--all-netns`.
/// A netlink socket answers for the namespace of the thread that opened it, so a
/// `Route` is used only where it was opened (it is not `Send`). After a request that
/// failed part-way through a dump, the kernel may still hold that dump (a new one
/// would be refused with EBUSY): callers stop there, as `facts::net::gather` does.
pub struct Route {
    session: Session,
    _here: std::marker::PhantomData<*const ()>,
}

impl Route {
    /// A socket in the calling thread's network namespace.
    pub fn open() -> NlResult<Route> {
        Ok(Route {
            session: Session::open(libc::NETLINK_ROUTE)?,
            _here: std::marker::PhantomData,
        })
    }

    /// Every link of the namespace, one dump without statistics, each converted by
    /// `convert` straight from the reply buffer.
    pub fn links<T>(&mut self, mut convert: impl FnMut(&LinkRecord) -> T) -> NlResult<Vec<T>> {
        self.session.dump(
            RTM_GETLINK,
            RTM_NEWLINK,
            &[0; IFINFOMSG_LEN],
            &[(IFLA_EXT_MASK, &SKIP_STATS)],
            |payload| Ok(Some(convert(&parse_link(payload)?))),
        )
    }

    /// One link by index in the namespace that `netnsid` names from this socket's
    /// namespace (IFLA_LINK_NETNSID of a veth whose peer is elsewhere), through
    /// RTM_GETLINK with IFLA_TARGET_NETNSID (Linux 4.20 and later). The kernel answers
    /// only with CAP_NET_ADMIN over that namespace; `None` when no such link exists.
    pub fn link_in<T>(
        &mut self,
        netnsid: i32,
        index: u32,
        convert: impl FnOnce(&LinkRecord) -> T,
    ) -> NlResult<Option<T>> {
        let target = netnsid.to_ne_bytes();
        self.session.get_link(
            index,
            &[(IFLA_EXT_MASK, &SKIP_STATS), (IFLA_TARGET_NETNSID, &target)],
            convert,
        )
    }

    /// Every qdisc of the namespace, one dump, each converted (or skipped) by `convert`.
    pub fn qdiscs<T>(
        &mut self,
        mut convert: impl FnMut(&QdiscRecord) -> Option<T>,
    ) -> NlResult<Vec<T>> {
        self.session.dump(
            RTM_GETQDISC,
            RTM_NEWQDISC,
            &[0; TCMSG_LEN],
            &[],
            |payload| Ok(convert(&parse_qdisc(payload)?)),
        )
    }
}

/// Every link of the namespace ([`Route::links`] on a socket of its own).
pub fn links<T>(convert: impl FnMut(&LinkRecord) -> T) -> NlResult<Vec<T>> {
    Route::open()?.links(convert)
}

/// One link by index; `None` when no such link exists.
pub fn link<T>(index: u32, convert: impl FnOnce(&LinkRecord) -> T) -> NlResult<Option<T>> {
    Session::open(libc::NETLINK_ROUTE)?.get_link(index, &[(IFLA_EXT_MASK, &SKIP_STATS)], convert)
}

/// Every qdisc of the namespace ([`Route::qdiscs`] on a socket of its own).
pub fn qdiscs<T>(convert: impl FnMut(&QdiscRecord) -> Option<T>) -> NlResult<Vec<T>> {
    Route::open()?.qdiscs(convert)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An attribute as the kernel lays it out: header, value, padding.
    fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut out = ((4 + value.len()) as u16).to_ne_bytes().to_vec();
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(value);
        out.resize(align4(out.len()), 0);
        out
    }

    fn message(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = ((NLMSG_HDRLEN + payload.len()) as u32)
            .to_ne_bytes()
            .to_vec();
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(&flags.to_ne_bytes());
        out.extend_from_slice(&seq.to_ne_bytes());
        out.extend_from_slice(&4242u32.to_ne_bytes());
        out.extend_from_slice(payload);
        out.resize(align4(out.len()), 0);
        out
    }

    /// An RTM_NEWLINK payload like rtnl_fill_ifinfo's for a veth (with attributes
    /// the parser must step over, including a nested one flagged NLA_F_NESTED).
    fn veth_payload(index: u32, name: &str, mtu: u32) -> Vec<u8> {
        let mut p = vec![0u8, 0];
        p.extend_from_slice(&1u16.to_ne_bytes()); // ARPHRD_ETHER
        p.extend_from_slice(&index.to_ne_bytes());
        p.extend_from_slice(&0x1003u32.to_ne_bytes()); // UP, BROADCAST, MULTICAST
        p.extend_from_slice(&0u32.to_ne_bytes());
        p.extend(nla(IFLA_IFNAME, format!("{name}\0").as_bytes()));
        p.extend(nla(13, &1000u32.to_ne_bytes())); // IFLA_TXQLEN
        p.extend(nla(IFLA_OPERSTATE, &[6])); // IF_OPER_UP
        p.extend(nla(17, &[0])); // IFLA_LINKMODE
        p.extend(nla(IFLA_MTU, &mtu.to_ne_bytes()));
        p.extend(nla(IFLA_MIN_MTU, &68u32.to_ne_bytes()));
        p.extend(nla(IFLA_MAX_MTU, &65535u32.to_ne_bytes()));
        p.extend(nla(IFLA_ADDRESS, &[0x72, 0x33, 0x66, 0x38, 0xdc, 0x11]));
        let mut props = nla(IFLA_ALT_IFNAME, format!("{name}-alt\0").as_bytes());
        props.extend(nla(IFLA_ALT_IFNAME, b"x\0"));
        p.extend(nla(IFLA_PROP_LIST | 0x8000, &props));
        let mut info = nla(IFLA_INFO_KIND, b"veth\0");
        info.extend(nla(2 | 0x8000, &nla(1, &7u32.to_ne_bytes()))); // INFO_DATA
        p.extend(nla(IFLA_LINKINFO, &info));
        p.extend(nla(26 | 0x8000, &nla(10, &[0; 12]))); // IFLA_AF_SPEC
        p
    }

    fn tbf_payload(ifindex: i32, options: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 4];
        p.extend_from_slice(&ifindex.to_ne_bytes());
        p.extend_from_slice(&0x0001_0000u32.to_ne_bytes());
        p.extend_from_slice(&0xFFFF_FFFFu32.to_ne_bytes());
        p.extend_from_slice(&2u32.to_ne_bytes());
        p.extend(nla(TCA_KIND, b"tbf\0"));
        p.extend(nla(TCA_OPTIONS, options));
        p.extend(nla(7, &[0; 20])); // TCA_STATS2-ish
        p
    }

    type Messages = Vec<(u16, Vec<u8>)>;

    fn collect(buf: &[u8], seq: u32) -> NlResult<(Messages, Datagram)> {
        let mut out = Vec::new();
        let d = read_datagram(buf, seq, |k, p| {
            out.push((k, p.to_vec()));
            Ok(())
        })?;
        Ok((out, d))
    }

    #[test]
    fn link_fields_are_read_and_other_attributes_skipped() {
        let payload = veth_payload(7, "va1", 576);
        let link = parse_link(&payload).unwrap();
        assert_eq!(
            link,
            LinkRecord {
                index: 7,
                link_layer_type: 1,
                flags: 0x1003,
                name: Some(b"va1"),
                address: Some(&[0x72, 0x33, 0x66, 0x38, 0xdc, 0x11]),
                altnames: vec![b"va1-alt", b"x"],
                mtu: Some(576),
                min_mtu: Some(68),
                max_mtu: Some(65535),
                operstate: Some(6),
                kind: Some(b"veth"),
                ..LinkRecord::default()
            }
        );
    }

    #[test]
    fn peer_master_netnsid_and_vxlan_lower_device_are_read() {
        let mut veth = veth_payload(7, "va1", 1400);
        veth.extend(nla(IFLA_LINK, &9u32.to_ne_bytes()));
        veth.extend(nla(IFLA_LINK_NETNSID, &3i32.to_ne_bytes()));
        veth.extend(nla(IFLA_MASTER, &3u32.to_ne_bytes()));
        let link = parse_link(&veth).unwrap();
        assert_eq!(
            (link.link, link.link_netnsid, link.master, link.vxlan_ipv6),
            (Some(9), Some(3), Some(3), false)
        );

        let vxlan = |data: Vec<u8>| {
            let mut p = vec![0u8; IFINFOMSG_LEN];
            p.extend(nla(IFLA_IFNAME, b"vx0\0"));
            let mut info = nla(IFLA_INFO_KIND, b"vxlan\0");
            info.extend(nla(IFLA_INFO_DATA | 0x8000, &data));
            p.extend(nla(IFLA_LINKINFO, &info));
            p
        };
        let mut data = nla(1, &42u32.to_ne_bytes()); // IFLA_VXLAN_ID
        data.extend(nla(IFLA_VXLAN_LINK, &2u32.to_ne_bytes()));
        data.extend(nla(IFLA_VXLAN_LOCAL6, &[0; 16]));
        let payload = vxlan(data);
        let link = parse_link(&payload).unwrap();
        assert_eq!((link.link, link.vxlan_ipv6), (Some(2), true));
        // No lower device: IFLA_VXLAN_LINK 0 names nothing.
        let payload = vxlan(nla(IFLA_VXLAN_LINK, &0u32.to_ne_bytes()));
        assert_eq!(parse_link(&payload).unwrap().link, None);
        let payload = vxlan(nla(IFLA_VXLAN_LINK, &[1, 2]));
        assert!(
            parse_link(&payload)
                .unwrap_err()
                .to_string()
                .contains("IFLA_VXLAN_LINK")
        );
    }

    #[test]
    fn a_link_without_optional_attributes_has_none() {
        let mut payload = vec![0u8; IFINFOMSG_LEN];
        payload[2..4].copy_from_slice(&772u16.to_ne_bytes()); // ARPHRD_LOOPBACK
        payload.extend(nla(IFLA_IFNAME, b"lo\0"));
        let link = parse_link(&payload).unwrap();
        assert_eq!(link.name, Some(&b"lo"[..]));
        assert_eq!(link.link_layer_type, 772);
        assert_eq!((link.mtu, link.max_mtu, link.kind), (None, None, None));
    }

    #[test]
    fn qdisc_options_are_the_raw_attribute_value() {
        let options = nla(1, &[9; 36]);
        let payload = tbf_payload(3, &options);
        let q = parse_qdisc(&payload).unwrap();
        assert_eq!(q.ifindex, 3);
        assert_eq!(q.handle, 0x0001_0000);
        assert_eq!(q.parent, 0xFFFF_FFFF);
        assert_eq!(q.kind, Some(&b"tbf"[..]));
        assert_eq!(q.options, Some(&options[..]));
    }

    #[test]
    fn a_multipart_dump_ends_at_done() {
        let mut first = message(RTM_NEWLINK, NLM_F_MULTI, 9, &veth_payload(2, "a", 1500));
        first.extend(message(
            RTM_NEWLINK,
            NLM_F_MULTI,
            9,
            &veth_payload(3, "b", 9000),
        ));
        let (msgs, d) = collect(&first, 9).unwrap();
        assert_eq!(msgs.len(), 2);
        assert!(!d.done && !d.interrupted);
        let mut last = message(RTM_NEWLINK, NLM_F_MULTI | NLM_F_DUMP_INTR, 9, &[0; 16]);
        last.extend(message(NLMSG_DONE, NLM_F_MULTI, 9, &0i32.to_ne_bytes()));
        // Anything after DONE is not part of this reply.
        last.extend(message(RTM_NEWLINK, NLM_F_MULTI, 9, &[0; 16]));
        let (msgs, d) = collect(&last, 9).unwrap();
        assert_eq!(msgs.len(), 1);
        assert!(d.done && d.interrupted);
    }

    #[test]
    fn other_sequence_numbers_are_skipped_and_single_replies_end() {
        let mut buf = message(RTM_NEWLINK, NLM_F_MULTI, 1, &veth_payload(2, "old", 1500));
        buf.extend(message(RTM_NEWLINK, 0, 2, &veth_payload(3, "new", 1500)));
        let (msgs, d) = collect(&buf, 2).unwrap();
        assert_eq!(msgs.len(), 1);
        assert_eq!(parse_link(&msgs[0].1).unwrap().name, Some(&b"new"[..]));
        assert!(d.done);
    }

    #[test]
    fn kernel_errors_carry_errno_and_ext_ack() {
        let mut payload = (-libc::ENODEV).to_ne_bytes().to_vec();
        payload.extend_from_slice(&[0; NLMSG_HDRLEN]); // the capped request header
        payload.extend(nla(1, b"no such device\0"));
        let err = collect(&message(NLMSG_ERROR, NLM_F_ACK_TLVS, 5, &payload), 5).unwrap_err();
        assert_eq!(err.errno, libc::ENODEV);
        assert_eq!(err.ext_ack.as_deref(), Some("no such device"));
        let mut done = (-libc::EINVAL).to_ne_bytes().to_vec();
        done.extend(nla(1, b"dump failed\0"));
        let flags = NLM_F_MULTI | NLM_F_ACK_TLVS;
        let err = collect(&message(NLMSG_DONE, flags, 5, &done), 5).unwrap_err();
        assert_eq!(err.errno, libc::EINVAL);
        assert_eq!(err.ext_ack.as_deref(), Some("dump failed"));
        let (_, d) = collect(&message(NLMSG_ERROR, 0, 5, &0i32.to_ne_bytes()), 5).unwrap();
        assert!(d.done, "an acknowledgement ends the reply");
    }

    #[test]
    fn truncated_and_malformed_input_is_an_error_never_a_panic() {
        let good = message(RTM_NEWLINK, NLM_F_MULTI, 1, &veth_payload(2, "va1", 1500));
        // Every truncation of a valid datagram, and of a valid payload.
        for cut in 1..good.len() {
            let _ = collect(&good[..cut], 1);
            if cut < good.len() - NLMSG_HDRLEN {
                let _ = parse_link(&good[NLMSG_HDRLEN..NLMSG_HDRLEN + cut]);
                let _ = parse_qdisc(&good[NLMSG_HDRLEN..NLMSG_HDRLEN + cut]);
            }
        }
        assert!(collect(&good[..10], 1).is_err(), "short header");
        assert!(
            collect(&good[..good.len() - 4], 1).is_err(),
            "length beyond data"
        );
        let mut zero_len = good.clone();
        zero_len[0..4].copy_from_slice(&0u32.to_ne_bytes());
        assert!(collect(&zero_len, 1).is_err(), "zero length must not loop");
        assert!(parse_link(&[0; 15]).is_err());
        assert!(parse_qdisc(&[0; 19]).is_err());
        assert!(collect(&message(NLMSG_ERROR, 0, 1, &[1, 2]), 1).is_err());
        assert!(collect(&message(NLMSG_OVERRUN, 0, 1, &[]), 1).is_err());

        let mut payload = vec![0u8; IFINFOMSG_LEN];
        payload.extend(nla(IFLA_MTU, &[1, 2])); // wrong size
        assert!(
            parse_link(&payload)
                .unwrap_err()
                .message
                .contains("IFLA_MTU")
        );
        let mut payload = vec![0u8; IFINFOMSG_LEN];
        payload.extend_from_slice(&[0xff, 0x00, 3, 0, b'x', 0, 0, 0]); // length 255
        assert!(parse_link(&payload).is_err());
        let mut payload = vec![0u8; IFINFOMSG_LEN];
        payload.extend_from_slice(&[2, 0, 3, 0]); // length below the header
        assert!(parse_link(&payload).is_err());
        let mut payload = vec![0u8; IFINFOMSG_LEN];
        payload.extend(nla(IFLA_LINKINFO, &[9, 0, 1, 0, b'v']));
        assert!(parse_link(&payload).is_err(), "broken nested attribute");
        let mut payload = vec![0u8; IFINFOMSG_LEN];
        payload.extend(nla(IFLA_OPERSTATE, &[]));
        assert!(parse_link(&payload).is_err());
    }

    #[test]
    fn requests_are_laid_out_as_the_kernel_expects() {
        let req = request(
            RTM_GETLINK,
            NLM_F_DUMP,
            77,
            &[0; IFINFOMSG_LEN],
            &[(IFLA_EXT_MASK, &SKIP_STATS)],
        );
        assert_eq!(req.len(), NLMSG_HDRLEN + IFINFOMSG_LEN + 8);
        assert_eq!(u32_at(&req, 0), Some(req.len() as u32));
        assert_eq!(u16_at(&req, 4), Some(RTM_GETLINK));
        assert_eq!(u16_at(&req, 6), Some(NLM_F_REQUEST | NLM_F_DUMP));
        assert_eq!(u32_at(&req, 8), Some(77));
        let attrs: Vec<_> = attributes(&req[NLMSG_HDRLEN + IFINFOMSG_LEN..])
            .map(Result::unwrap)
            .collect();
        assert_eq!(attrs, vec![(IFLA_EXT_MASK, &SKIP_STATS[..])]);
    }
}
