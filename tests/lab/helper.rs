//! In-VM measuring tools for the kernel lab: the lab test binary copies itself into the
//! initramfs as `/bin/labhelper` (and `/bin/java`), and `main` in tests/lab.rs hands
//! control here when it runs under one of those names.
//!
//! Busybox has no tool that opens a hundred concurrent connections, counts EADDRNOTAVAIL
//! separately from timeouts, reads `TcpExt ListenOverflows` around a burst, or dumps a
//! qdisc's raw TCA_OPTIONS bytes, so the scenarios measure their symptoms with these.
//! Each command prints one line of `key=value` pairs that tests/lab/scenarios.sh records.

use std::collections::BTreeSet;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// Runs a helper command; returns the process exit code.
pub fn run(program: &str, args: &[String]) -> i32 {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match (program, args.as_slice()) {
        // Named `java` so the kernel's OOM report and /proc/PID/comm say `java`.
        ("java", ["hog", mib]) => parse(mib).and_then(hog),
        (_, ["burst", port, count, backlog, timeout_ms]) => (|| {
            burst(
                parse(port)?,
                parse(count)?,
                parse(backlog)?,
                parse(timeout_ms)?,
            )
        })(),
        (_, ["hold", port, backlog]) => (|| hold(parse(port)?, parse(backlog)?))(),
        (_, ["udp-echo", addr]) => parse(addr).and_then(udp_echo),
        (_, ["udp-probe", addr, count]) => (|| udp_probe(parse(addr)?, parse(count)?))(),
        (_, ["qdisc-hex", ifname]) => qdisc_hex(ifname),
        (_, ["same-plan", a, b]) => same_plan(a, b),
        (_, ["rings", ifname]) => rings(ifname),
        (_, ["set-rx", ifname, rx]) => parse(rx).and_then(|rx| set_rx(ifname, rx)),
        (_, ["udp-flood", addr, secs, cpu]) => {
            (|| udp_flood(parse(addr)?, parse(secs)?, parse(cpu)?))()
        }
        _ => Err(io::Error::other(format!(
            "usage: labhelper burst PORT COUNT BACKLOG TIMEOUT_MS | hold PORT BACKLOG | udp-echo ADDR | \
             udp-probe ADDR COUNT | qdisc-hex IFNAME | same-plan A.json B.json | rings IFNAME | set-rx IFNAME N | udp-flood ADDR SECONDS CPU; java hog MIB (got {program} {args:?})"
        ))),
    };
    match result {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("labhelper: {error}");
            1
        }
    }
}

fn parse<T: std::str::FromStr>(text: &str) -> io::Result<T> {
    text.parse()
        .map_err(|_| io::Error::other(format!("bad number or address: {text}")))
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn tcp_socket(nonblocking: bool) -> io::Result<OwnedFd> {
    let flags = if nonblocking { libc::SOCK_NONBLOCK } else { 0 };
    // SAFETY: plain socket(2); the descriptor is owned from here on.
    let fd = check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | flags, 0) })?;
    // SAFETY: fd was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn loopback(port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
        },
        sin_zero: [0; 8],
    }
}

const SOCKADDR_IN_LEN: libc::socklen_t =
    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;

/// A listener on 127.0.0.1:PORT that never accepts, so its accept queue (capped by
/// `net.core.somaxconn` at listen time) is what the burst fills.
fn listener(port: u16, backlog: i32) -> io::Result<OwnedFd> {
    let fd = tcp_socket(false)?;
    let one: libc::c_int = 1;
    let addr = loopback(port);
    // SAFETY: valid fd, pointers to live locals with the right sizes.
    unsafe {
        check(libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        ))?;
        check(libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_in).cast(),
            SOCKADDR_IN_LEN,
        ))?;
        check(libc::listen(fd.as_raw_fd(), backlog))?;
    }
    Ok(fd)
}

/// `TcpExt ListenOverflows` of the current network namespace.
fn listen_overflows() -> io::Result<u64> {
    let text = std::fs::read_to_string("/proc/net/netstat")?;
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("TcpExt:")).collect();
    if let [names, values] = lines.as_slice() {
        for (name, value) in names.split_whitespace().zip(values.split_whitespace()) {
            if name == "ListenOverflows" {
                return parse(value);
            }
        }
    }
    Err(io::Error::other(
        "no TcpExt ListenOverflows in /proc/net/netstat",
    ))
}

/// Opens COUNT concurrent connections to a fresh never-accepting listener on PORT and
/// holds them all open until the end, so every one needs its own local port and its
/// own conntrack entry. Counts how each ended and how much ListenOverflows grew.
/// Listens on PORT with BACKLOG and never accepts, until killed: a server that stays
/// up between bursts, as a real one does (a burst's own listener lives only as long as
/// its burst).
fn hold(port: u16, backlog: i32) -> io::Result<()> {
    let _listener = listener(port, backlog)?;
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn burst(port: u16, count: usize, backlog: i32, timeout_ms: u64) -> io::Result<()> {
    let overflows_before = listen_overflows()?;
    let _listener = listener(port, backlog)?;
    let addr = loopback(port);
    let (mut ok, mut addrnotavail, mut other) = (0usize, 0usize, 0usize);
    let mut open = Vec::new();
    let mut pending = Vec::new();
    for _ in 0..count {
        let fd = tcp_socket(true)?;
        // SAFETY: valid fd and a sockaddr_in of the stated length.
        let ret = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_in).cast(),
                SOCKADDR_IN_LEN,
            )
        };
        if ret == 0 {
            ok += 1;
            open.push(fd);
            continue;
        }
        match io::Error::last_os_error().raw_os_error() {
            Some(libc::EINPROGRESS) => pending.push(fd),
            Some(libc::EADDRNOTAVAIL) => addrnotavail += 1,
            _ => other += 1,
        }
    }
    let deadline = Instant::now() + Duration::from_millis(timeout_ms);
    while !pending.is_empty() && Instant::now() < deadline {
        let mut polls: Vec<libc::pollfd> = pending
            .iter()
            .map(|fd: &OwnedFd| libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            })
            .collect();
        let left = deadline
            .saturating_duration_since(Instant::now())
            .as_millis();
        // SAFETY: polls is a live array of the stated length.
        let ready = unsafe {
            libc::poll(
                polls.as_mut_ptr(),
                polls.len() as libc::nfds_t,
                left.clamp(1, 100) as libc::c_int,
            )
        };
        check(ready)?;
        let mut still = Vec::new();
        for (fd, poll) in pending.into_iter().zip(&polls) {
            if poll.revents == 0 {
                still.push(fd);
                continue;
            }
            match socket_error(&fd)? {
                0 => {
                    ok += 1;
                    open.push(fd);
                }
                libc::EADDRNOTAVAIL => addrnotavail += 1,
                _ => other += 1,
            }
        }
        pending = still;
    }
    // Third ACKs that overflow the accept queue are counted on arrival; let them land.
    std::thread::sleep(Duration::from_millis(200));
    let overflows = listen_overflows()?.saturating_sub(overflows_before);
    println!(
        "ok={ok} eaddrnotavail={addrnotavail} timeout={} other={other} overflows={overflows}",
        pending.len()
    );
    Ok(())
}

fn socket_error(fd: &OwnedFd) -> io::Result<libc::c_int> {
    let mut error: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: valid fd, pointers to live locals with the right sizes.
    check(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut error as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    Ok(error)
}

/// Echoes every datagram back to its sender, forever (the scenario kills it).
fn udp_echo(addr: SocketAddr) -> io::Result<()> {
    let socket = UdpSocket::bind(addr)?;
    let mut buf = [0u8; 2048];
    loop {
        let (len, from) = socket.recv_from(&mut buf)?;
        socket.send_to(&buf[..len], from)?;
    }
}

/// Sends small datagrams to ADDR as fast as it can for SECONDS, pinned to CPU (so
/// that RPS can steer their receive to another CPU's input backlog); prints how many.
/// Refused sends (ICMP unreachable from a closed port, ENOBUFS) are counted, not fatal.
fn udp_flood(addr: SocketAddr, secs: f64, cpu: usize) -> io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and sched_setaffinity
    // only read and write it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        check(libc::sched_setaffinity(
            0,
            std::mem::size_of::<libc::cpu_set_t>(),
            &set,
        ))?;
    }
    let socket = UdpSocket::bind("0.0.0.0:0")?;
    socket.connect(addr)?;
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let (mut sent, mut refused) = (0u64, 0u64);
    let payload = [0u8; 32];
    while Instant::now() < deadline {
        for _ in 0..256 {
            match socket.send(&payload) {
                Ok(_) => sent += 1,
                Err(_) => refused += 1,
            }
        }
    }
    println!("sent={sent} refused={refused}");
    Ok(())
}

/// Sends COUNT numbered datagrams to an echo server and counts distinct replies: the
/// loss a netem qdisc on either side of the path causes.
fn udp_probe(addr: SocketAddr, count: u32) -> io::Result<()> {
    let socket = UdpSocket::bind("0.0.0.0:0")?;
    socket.connect(addr)?;
    socket.set_nonblocking(true)?;
    let mut seen = BTreeSet::new();
    let mut buf = [0u8; 64];
    let mut drain = |seen: &mut BTreeSet<u32>| {
        while let Ok(len) = socket.recv(&mut buf) {
            if let Ok(seq) = <[u8; 4]>::try_from(&buf[..len.min(4)]) {
                seen.insert(u32::from_be_bytes(seq));
            }
        }
    };
    for seq in 0..count {
        socket.send(&seq.to_be_bytes())?;
        std::thread::sleep(Duration::from_millis(2));
        drain(&mut seen);
    }
    let deadline = Instant::now() + Duration::from_millis(500);
    while Instant::now() < deadline && seen.len() < count as usize {
        std::thread::sleep(Duration::from_millis(10));
        drain(&mut seen);
    }
    let received = seen.len() as u32;
    let loss_pct = 100 * (count - received.min(count)) / count.max(1);
    println!("sent={count} received={received} loss_pct={loss_pct}");
    Ok(())
}

/// Dumps the qdiscs of IFNAME through rtnetlink and prints each one's kind and raw
/// TCA_OPTIONS bytes in hex: the exact bytes a netem rollback must re-create.
fn qdisc_hex(ifname: &str) -> io::Result<()> {
    let name = std::ffi::CString::new(ifname).map_err(io::Error::other)?;
    // SAFETY: name is a valid NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
    if ifindex == 0 {
        return Err(io::Error::other(format!("no interface {ifname}")));
    }
    // SAFETY: plain socket(2); the descriptor is owned from here on.
    let raw = check(unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    })?;
    // SAFETY: raw was just returned by socket(2).
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // nlmsghdr (16 bytes) + tcmsg (20 bytes), all fields native-endian.
    let mut request = Vec::with_capacity(36);
    request.extend_from_slice(&36u32.to_ne_bytes());
    request.extend_from_slice(&libc::RTM_GETQDISC.to_ne_bytes());
    request.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
    request.extend_from_slice(&1u32.to_ne_bytes());
    request.extend_from_slice(&0u32.to_ne_bytes());
    request.extend_from_slice(&[0u8; 20]);
    // SAFETY: valid fd, buffer of the stated length.
    check(unsafe { libc::send(fd.as_raw_fd(), request.as_ptr().cast(), request.len(), 0) } as i32)?;
    let mut buf = vec![0u8; 65536];
    loop {
        // SAFETY: valid fd, buffer of the stated length.
        let len = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        let len = check(len as i32)? as usize;
        let mut at = 0;
        while at + 16 <= len {
            let msg_len = u32_at(&buf, at) as usize;
            let msg_type = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
            if msg_len < 16 || at + msg_len > len {
                return Err(io::Error::other("truncated netlink message"));
            }
            match i32::from(msg_type) {
                libc::NLMSG_DONE => return Ok(()),
                libc::NLMSG_ERROR => return Err(io::Error::other("netlink error")),
                _ => print_qdisc(&buf[at + 16..at + msg_len], ifindex),
            }
            at += (msg_len + 3) & !3;
        }
    }
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

fn print_qdisc(body: &[u8], ifindex: i32) {
    if body.len() < 20 || u32_at(body, 4) as i32 != ifindex {
        return;
    }
    let (handle, parent) = (u32_at(body, 8), u32_at(body, 12));
    let (mut kind, mut options) = (String::new(), String::new());
    let mut at = 20;
    while at + 4 <= body.len() {
        let attr_len = usize::from(u16::from_ne_bytes([body[at], body[at + 1]]));
        let attr_type = u16::from_ne_bytes([body[at + 2], body[at + 3]]) & 0x3fff;
        if attr_len < 4 || at + attr_len > body.len() {
            break;
        }
        let payload = &body[at + 4..at + attr_len];
        match attr_type {
            1 => {
                kind = String::from_utf8_lossy(payload)
                    .trim_end_matches('\0')
                    .to_owned()
            }
            2 => options = payload.iter().map(|b| format!("{b:02x}")).collect(),
            _ => {}
        }
        at += (attr_len + 3) & !3;
    }
    println!("kind={kind} handle={handle:08x} parent={parent:08x} options={options}");
}

/// Touches MIB mebibytes, one page at a time, then waits: inside a cgroup with a lower
/// `memory.max` the kernel's memcg OOM killer kills it as `java`.
fn hog(mib: usize) -> io::Result<()> {
    println!("hog pid={} mib={mib}", std::process::id());
    let mut chunks = Vec::new();
    for _ in 0..mib {
        let mut chunk = vec![0u8; 1 << 20];
        for page in chunk.iter_mut().step_by(4096) {
            *page = 1;
        }
        chunks.push(std::hint::black_box(chunk));
    }
    std::thread::sleep(Duration::from_secs(30));
    println!("hog survived holding {} MiB", chunks.len());
    Ok(())
}

/// Compares two `tune plan --format json` outputs on what they plan (findings, changes,
/// errors), ignoring when and where they were made and which namespace they name.
fn same_plan(a: &str, b: &str) -> io::Result<()> {
    fn load(path: &str) -> io::Result<serde_json::Value> {
        let text = std::fs::read_to_string(path)?;
        let mut value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| io::Error::other(format!("{path}: not JSON: {e}")))?;
        strip_namespace(&mut value);
        let planned = ["findings", "changes", "errors"].map(|key| value.get(key).cloned());
        Ok(serde_json::json!(planned))
    }
    fn strip_namespace(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                map.retain(|key, _| !key.contains("netns") && !key.contains("namespace"));
                map.values_mut().for_each(strip_namespace);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip_namespace),
            _ => {}
        }
    }
    let (a, b) = (load(a)?, load(b)?);
    let changes = a[1].as_array().map_or(0, Vec::len);
    println!(
        "same={} changes={changes}",
        if a == b { "yes" } else { "no" }
    );
    Ok(())
}

fn ifindex(ifname: &str) -> io::Result<u32> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{ifname}/ifindex"))?;
    text.trim()
        .parse()
        .map_err(|e| io::Error::other(format!("ifindex of {ifname}: {e}")))
}

/// `rx=N rx_max=N tx=N tx_max=N` (or `unsupported=...`) through tune's ethtool
/// netlink reader.
fn rings(ifname: &str) -> io::Result<()> {
    match tune::kernel::ethtool::rings(ifindex(ifname)?).map_err(io::Error::other)? {
        tune::kernel::ethtool::Rings::Sizes(r) => println!(
            "rx={} rx_max={} tx={} tx_max={}",
            r.rx,
            r.rx_max,
            r.tx.map_or("-".into(), |t| t.to_string()),
            r.tx_max.map_or("-".into(), |t| t.to_string())
        ),
        tune::kernel::ethtool::Rings::Unsupported(why) => {
            println!("unsupported={}", why.replace(' ', "_"))
        }
    }
    Ok(())
}

/// ETHTOOL_MSG_RINGS_SET of the RX ring; prints `set=ok` or the kernel's error.
fn set_rx(ifname: &str, rx: u32) -> io::Result<()> {
    tune::kernel::ethtool::set_rx_ring(ifindex(ifname)?, rx).map_err(io::Error::other)?;
    println!("set=ok");
    Ok(())
}
