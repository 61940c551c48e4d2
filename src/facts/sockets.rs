//! TCP socket counts by state, through NETLINK_SOCK_DIAG (the interface `ss` uses).
//!
//! One dump per address family asks the kernel only for the states wanted
//! (`idiag_states` bitmask), so counting 10,000 TIME_WAIT sockets is one round of
//! messages, not a scan of /proc/net/tcp. The socket is created in the calling
//! thread's network namespace and keeps it.
//!
//! The dumps go through [`crate::kernel::rtdump::exchange_on`]: one receive buffer
//! for the whole dump, each `struct inet_diag_msg` read in place (no allocation per
//! message).
//!
//! [`listeners`] reads every TCP LISTEN socket with its accept queue (length and limit)
//! and finds the processes that hold the ones `listen_queue` names by their inodes in
//! /proc/PID/fd.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Fact, procfs};
use crate::playbook::{SetSysctl, TcpState};

/// The ephemeral port range that `widen_to` may widen over listening ports.
pub const PORT_RANGE: &str = "net.ipv4.ip_local_port_range";
/// The ports the kernel never hands out as ephemeral ports (a list of ports and
/// ranges, `8080,9000-9100`); the plan adds the listening ports a widening covers.
pub const RESERVED_PORTS: &str = "net.ipv4.ip_local_reserved_ports";
/// The cap on every listen(2) backlog, which `listen_queue` compares backlogs with.
pub const SOMAXCONN: &str = "net.core.somaxconn";

/// Whether a fix widens the ephemeral port range (and so needs the listening ports).
pub fn widens_port_range(s: &SetSysctl) -> bool {
    s.widen_to.is_some() && crate::kernel::sysctl::same_key(&s.key, PORT_RANGE)
}

/// The ports of every TCP LISTEN socket (IPv4 and IPv6), sorted and deduplicated.
pub fn listen_ports() -> Fact<Vec<u16>> {
    let read = || -> Result<Vec<u16>, String> {
        let mut ports = BTreeSet::new();
        for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
            let mask = 1 << TcpState::Listen.kernel_number();
            dump_each(family, mask, |msg| {
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

/// A TCP LISTEN socket and its accept queue, as sock_diag reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Listener {
    /// The local address (`0.0.0.0`, `::`, `127.0.0.1`, ...).
    pub address: String,
    pub port: u16,
    /// Connections in the accept queue now (`idiag_rqueue`).
    pub queued: u32,
    /// The accept-queue limit (`idiag_wqueue`, the kernel's `sk_max_ack_backlog`):
    /// min(the listen(2) backlog, net.core.somaxconn) when listen() was called.
    pub backlog: u32,
    /// The socket's inode (`socket:[INODE]` in /proc/PID/fd).
    pub inode: u64,
    /// The process holding the socket, when /proc could tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<SocketOwner>,
}

/// A process holding a socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SocketOwner {
    pub pid: u32,
    /// /proc/PID/comm.
    pub comm: String,
}

impl Listener {
    /// `:80` for a wildcard address, else `127.0.0.1:80` or `[::1]:80`.
    pub fn endpoint(&self) -> String {
        match self.address.as_str() {
            "0.0.0.0" | "::" => format!(":{}", self.port),
            a if a.contains(':') => format!("[{a}]:{}", self.port),
            a => format!("{a}:{}", self.port),
        }
    }

    /// Whether the accept queue is full now: the kernel drops the next handshake when
    /// the queue holds more than the backlog, so at the backlog it is (about to be) full.
    pub fn full(&self) -> bool {
        self.queued >= self.backlog
    }
}

/// Every TCP LISTEN socket (IPv4 and IPv6) with its accept queue, sorted by port and
/// address, and the owners of the ones `listen_queue` names: the full ones when any
/// is full, else all (see [`named_by_listen_queue`]).
pub fn listeners() -> Fact<Vec<Listener>> {
    let read = || -> Result<Vec<Listener>, String> {
        let mut found = Vec::new();
        for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
            let mask = 1 << TcpState::Listen.kernel_number();
            dump_each(family, mask, |msg| {
                if let Some(l) = parse_listener(msg) {
                    found.push(l);
                }
            })?;
        }
        Ok(found)
    };
    match read() {
        Ok(mut found) => {
            let inodes: BTreeSet<u64> = named_by_listen_queue(&found)
                .map(|l| l.inode)
                .filter(|&i| i != 0)
                .collect();
            let owners = socket_owners(std::path::Path::new("/proc"), &inodes);
            for l in &mut found {
                l.owner = owners.get(&l.inode).cloned();
            }
            found.sort_by(|a, b| (a.port, &a.address).cmp(&(b.port, &b.address)));
            Fact::Value(found)
        }
        Err(e) => Fact::Unknown(format!("sock_diag: {e}")),
    }
}

/// The listeners whose owners the `listen_queue` evidence names: the ones whose
/// accept queue is full now, or every listener when none is.
pub fn named_by_listen_queue(all: &[Listener]) -> impl Iterator<Item = &Listener> {
    let any_full = all.iter().any(Listener::full);
    all.iter().filter(move |l| !any_full || l.full())
}

/// Reads one `struct inet_diag_msg`: family, state, timer, retrans (4 bytes), the
/// 48-byte `inet_diag_sockid` (sport, dport, `src[16]`, `dst[16]`, if, `cookie[8]`), then
/// expires, rqueue, wqueue, uid, inode (4 bytes each). Short messages are skipped.
pub fn parse_listener(msg: &[u8]) -> Option<Listener> {
    let u32_at = |at: usize| -> Option<u32> {
        let b: [u8; 4] = msg.get(at..at + 4)?.try_into().ok()?;
        Some(u32::from_ne_bytes(b))
    };
    let family = *msg.first()?;
    let port = u16::from_be_bytes([*msg.get(4)?, *msg.get(5)?]);
    let src = msg.get(8..24)?;
    let address = if family == libc::AF_INET as u8 {
        let b: [u8; 4] = src[..4].try_into().ok()?;
        std::net::Ipv4Addr::from(b).to_string()
    } else {
        let b: [u8; 16] = src.try_into().ok()?;
        std::net::Ipv6Addr::from(b).to_string()
    };
    Some(Listener {
        address,
        port,
        queued: u32_at(56)?,
        backlog: u32_at(60)?,
        inode: u64::from(u32_at(68)?),
        owner: None,
    })
}

/// The processes holding the given socket inodes: one pass over /proc/PID/fd links,
/// opened relative to one /proc directory fd, stopping once every inode is found. A
/// process or fd that cannot be read (gone, another user's without privilege) is
/// skipped: its sockets stay without an owner.
pub fn socket_owners(proc: &std::path::Path, inodes: &BTreeSet<u64>) -> BTreeMap<u64, SocketOwner> {
    let mut owners = BTreeMap::new();
    if inodes.is_empty() {
        return owners;
    }
    let Ok(dir) = procfs::Dir::open(proc) else {
        return owners;
    };
    let mut pids = Vec::new();
    if dir
        .entries(|name| pids.extend(procfs::pid_of(name)))
        .is_err()
    {
        return owners;
    }
    let mut link = [0u8; 64];
    for pid in pids {
        let Ok(fds) = dir.dir_at(&procfs::pid_path(pid, "fd")) else {
            continue;
        };
        let mut held = Vec::new();
        let _ = fds.entries(|fd| {
            if let Ok(target) = fds.read_link(fd, &mut link)
                && let Some(inode) = socket_inode(target)
                && inodes.contains(&inode)
                && !owners.contains_key(&inode)
            {
                held.push(inode);
            }
        });
        if held.is_empty() {
            continue;
        }
        let mut buf = [0u8; 128];
        let comm = dir
            .read_small(&procfs::pid_path(pid, "comm"), &mut buf)
            .map(|c| String::from_utf8_lossy(c).trim_end().to_owned())
            .unwrap_or_default();
        for inode in held {
            owners.entry(inode).or_insert_with(|| SocketOwner {
                pid,
                comm: comm.clone(),
            });
        }
        if owners.len() == inodes.len() {
            break;
        }
    }
    owners
}

/// The inode of a `socket:[INODE]` link target.
fn socket_inode(target: &[u8]) -> Option<u64> {
    std::str::from_utf8(target.strip_prefix(b"socket:[")?.strip_suffix(b"]")?)
        .ok()?
        .parse()
        .ok()
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
    let mut total = 0;
    for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
        dump_each(family, 1 << state.kernel_number(), |_| total += 1)?;
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

/// `NLM_F_DUMP` (NLM_F_ROOT | NLM_F_MATCH) from linux/netlink.h.
const NLM_F_DUMP: u16 = 0x300;

/// Dumps the sockets of one family in the states of `state_mask`, handing each
/// `struct inet_diag_msg` to `each`, on a fresh NETLINK_SOCK_DIAG socket in the
/// calling thread's namespace.
fn dump_each(family: u8, state_mask: u32, mut each: impl FnMut(&[u8])) -> Result<(), String> {
    crate::kernel::rtdump::exchange_on(
        libc::NETLINK_SOCK_DIAG,
        SOCK_DIAG_BY_FAMILY,
        NLM_F_DUMP,
        &inet_diag_request(family, state_mask),
        &[],
        |kind, msg| {
            if kind == SOCK_DIAG_BY_FAMILY {
                each(msg);
            }
            Ok(())
        },
    )
    .map(|_interrupted| ())
    .map_err(|e| e.to_string())
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

    #[test]
    fn listener_fields_at_their_offsets() {
        let mut msg = vec![0u8; 72];
        msg[0] = libc::AF_INET as u8;
        msg[1] = 10;
        msg[4..6].copy_from_slice(&80u16.to_be_bytes());
        msg[8..12].copy_from_slice(&[127, 0, 0, 1]);
        msg[56..60].copy_from_slice(&9u32.to_ne_bytes());
        msg[60..64].copy_from_slice(&8u32.to_ne_bytes());
        msg[68..72].copy_from_slice(&4242u32.to_ne_bytes());
        let l = parse_listener(&msg).expect("parsed");
        assert_eq!((l.address.as_str(), l.port), ("127.0.0.1", 80));
        assert_eq!((l.queued, l.backlog, l.inode), (9, 8, 4242));
        assert!(l.full());
        assert_eq!(l.endpoint(), "127.0.0.1:80");
        assert!(parse_listener(&msg[..70]).is_none(), "short message");
        msg[0] = libc::AF_INET6 as u8;
        msg[8..24].copy_from_slice(&[0; 16]);
        assert_eq!(parse_listener(&msg).expect("v6").endpoint(), ":80");
    }

    #[test]
    fn owners_found_by_socket_inode_and_unreadable_skipped() {
        let proc = tempfile::tempdir().expect("tempdir");
        let fd = proc.path().join("1234/fd");
        std::fs::create_dir_all(&fd).expect("mkdir");
        std::fs::write(proc.path().join("1234/comm"), "nginx\n").expect("comm");
        std::os::unix::fs::symlink("socket:[77]", fd.join("3")).expect("link");
        std::os::unix::fs::symlink("/dev/null", fd.join("0")).expect("link");
        std::fs::create_dir_all(proc.path().join("99")).expect("no fd dir");
        std::fs::create_dir_all(proc.path().join("self")).expect("not a pid");
        let owners = socket_owners(proc.path(), &BTreeSet::from([77, 78]));
        assert_eq!(
            owners.get(&77),
            Some(&SocketOwner {
                pid: 1234,
                comm: "nginx".into()
            })
        );
        assert!(!owners.contains_key(&78));
    }
}
