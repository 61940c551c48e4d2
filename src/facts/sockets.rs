//! TCP socket counts by state, through NETLINK_SOCK_DIAG (the interface `ss` uses).
//!
//! One dump per address family asks the kernel only for the states wanted
//! (`idiag_states` bitmask), so counting 10,000 TIME_WAIT sockets is one round of
//! messages, not a scan of /proc/net/tcp. The socket is created in the calling
//! thread's network namespace and keeps it.

use std::collections::{BTreeMap, BTreeSet};

use neli::consts::nl::{NlmF, Nlmsg};
use neli::consts::socket::NlFamily;
use neli::nl::{NlPayload, Nlmsghdr, NlmsghdrBuilder};
use neli::socket::synchronous::NlSocketHandle;
use neli::types::Buffer;
use neli::utils::Groups;

use super::Fact;
use crate::playbook::{SetSysctl, TcpState};

/// The ephemeral port range that `widen_to` may widen over listening ports.
pub const PORT_RANGE: &str = "net.ipv4.ip_local_port_range";
/// The ports the kernel never hands out as ephemeral ports (a list of ports and
/// ranges, `8080,9000-9100`); the plan adds the listening ports a widening covers.
pub const RESERVED_PORTS: &str = "net.ipv4.ip_local_reserved_ports";

/// Whether a fix widens the ephemeral port range (and so needs the listening ports).
pub fn widens_port_range(s: &SetSysctl) -> bool {
    s.widen_to.is_some() && crate::kernel::sysctl::same_key(&s.key, PORT_RANGE)
}

/// The ports of every TCP LISTEN socket (IPv4 and IPv6), sorted and deduplicated.
pub fn listen_ports() -> Fact<Vec<u16>> {
    let read = || -> Result<Vec<u16>, String> {
        let socket = NlSocketHandle::connect(NlFamily::SockOrInetDiag, None, Groups::empty())
            .map_err(|e| e.to_string())?;
        let mut ports = BTreeSet::new();
        for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
            let mask = 1 << TcpState::Listen.kernel_number();
            dump_each(&socket, family, mask, |msg| {
                // struct inet_diag_msg: family, state, timer, retrans, then the
                // socket id, whose first field is the source port in network order.
                if let Some(&[hi, lo]) = msg.get(4..6) {
                    ports.insert(u16::from_be_bytes([hi, lo]));
                }
            })?;
        }
        Ok(ports.into_iter().collect())
    };
    match read() {
        Ok(ports) => Fact::Value(ports),
        Err(e) => Fact::Unknown(format!("sock_diag: {e}")),
    }
}

/// `SOCK_DIAG_BY_FAMILY` from linux/sock_diag.h.
const SOCK_DIAG_BY_FAMILY: u16 = 20;

/// Counts TCP sockets (IPv4 + IPv6) in each requested state.
pub fn count_tcp_states(states: &BTreeSet<TcpState>) -> BTreeMap<String, Fact<u64>> {
    states
        .iter()
        .map(|state| {
            let fact = match count_state(*state) {
                Ok(n) => Fact::Value(n),
                Err(e) => Fact::Unknown(format!("sock_diag: {e}")),
            };
            (state.name().to_owned(), fact)
        })
        .collect()
}

fn count_state(state: TcpState) -> Result<u64, String> {
    let socket = NlSocketHandle::connect(NlFamily::SockOrInetDiag, None, Groups::empty())
        .map_err(|e| e.to_string())?;
    let mut total = 0;
    for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
        total += dump_count(&socket, family, 1 << state.kernel_number())?;
    }
    Ok(total)
}

/// The `struct inet_diag_req_v2` request: family, protocol, extensions, pad, state
/// mask, then a zeroed 48-byte `inet_diag_sockid` (no filter).
pub fn inet_diag_request(family: u8, state_mask: u32) -> Vec<u8> {
    let mut req = vec![family, libc::IPPROTO_TCP as u8, 0, 0];
    req.extend_from_slice(&state_mask.to_ne_bytes());
    req.extend_from_slice(&[0u8; 48]);
    req
}

fn dump_count(socket: &NlSocketHandle, family: u8, state_mask: u32) -> Result<u64, String> {
    let mut count = 0;
    dump_each(socket, family, state_mask, |_| count += 1)?;
    Ok(count)
}

/// Dumps the sockets of one family in the states of `state_mask`, handing each
/// `struct inet_diag_msg` to `each`.
fn dump_each(
    socket: &NlSocketHandle,
    family: u8,
    state_mask: u32,
    mut each: impl FnMut(&[u8]),
) -> Result<(), String> {
    let msg: Nlmsghdr<u16, Buffer> = NlmsghdrBuilder::default()
        .nl_type(SOCK_DIAG_BY_FAMILY)
        .nl_flags(NlmF::REQUEST | NlmF::DUMP)
        .nl_payload(NlPayload::Payload(Buffer::from(inet_diag_request(
            family, state_mask,
        ))))
        .build()
        .map_err(|e| e.to_string())?;
    socket.send(&msg).map_err(|e| e.to_string())?;
    loop {
        let (iter, _) = socket.recv::<u16, Buffer>().map_err(|e| e.to_string())?;
        for reply in iter {
            let reply = reply.map_err(|e| e.to_string())?;
            let ty = *reply.nl_type();
            if ty == u16::from(Nlmsg::Done) {
                return Ok(());
            }
            if ty == u16::from(Nlmsg::Error) {
                return match reply.nl_payload() {
                    NlPayload::Err(e) => Err(format!("kernel error {}", e.error())),
                    _ => Err("kernel error".to_owned()),
                };
            }
            if ty == SOCK_DIAG_BY_FAMILY
                && let NlPayload::Payload(buf) = reply.nl_payload()
            {
                each(buf.as_ref());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_layout_matches_inet_diag_req_v2() {
        let req = inet_diag_request(libc::AF_INET as u8, 1 << 6);
        assert_eq!(req.len(), 56, "sizeof(struct inet_diag_req_v2)");
        assert_eq!(req[0], libc::AF_INET as u8);
        assert_eq!(req[1], 6, "IPPROTO_TCP");
        assert_eq!(u32::from_ne_bytes([req[4], req[5], req[6], req[7]]), 64);
    }
}
