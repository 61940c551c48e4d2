//! Probes: small health checks run before an apply (the preflight), right after it,
//! and, under `--confirm-within`, periodically until the deadline.
//!
//! ```text
//! tcp:HOST:PORT[,timeout=DUR][,expect=BYTES][,send=TEXT]
//!     connect within the timeout; with `send`, write TEXT (`\n`, `\r`, `\t`, `\\`
//!     escapes; `send` comes last and takes the rest, commas included); with `expect`,
//!     read until that many bytes arrived, which proves full-size packets pass
//! icmp:HOST[,timeout=DUR]
//!     one ICMP echo (IPv4) through a ping socket, or a raw socket as root: no subprocess
//! --probe-cmd 'COMMAND'
//!     `sh -c COMMAND`; exit 0 within the timeout (10 s) means healthy
//! ```
//!
//! A probe returns one line of output either way; that line goes into the journal
//! and the report when the probe fails. Probes run in the calling thread's network
//! namespace (the caller enters the one `--probe-netns` names).

use std::fmt;
use std::io::{Read, Seek, Write};
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, ToSocketAddrs};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

const TCP_TIMEOUT: f64 = 3.0;
const ICMP_TIMEOUT: f64 = 2.0;
const CMD_TIMEOUT: f64 = 10.0;
/// How much of a failing command's output is kept.
const OUTPUT_LIMIT: usize = 2000;

/// One health check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Probe {
    Tcp {
        host: String,
        port: u16,
        /// Seconds for the whole probe (connect, send, receive).
        timeout: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        send: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect: Option<u64>,
    },
    Icmp {
        host: String,
        timeout: f64,
    },
    Cmd {
        command: String,
        timeout: f64,
    },
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Probe::Tcp {
                host,
                port,
                send,
                expect,
                ..
            } => {
                let host = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host.clone()
                };
                write!(f, "tcp:{host}:{port}")?;
                if let Some(n) = expect {
                    write!(f, " (expecting {n} bytes")?;
                    if let Some(s) = send {
                        write!(f, " after sending {s:?}")?;
                    }
                    write!(f, ")")?;
                }
                Ok(())
            }
            Probe::Icmp { host, .. } => write!(f, "icmp:{host}"),
            Probe::Cmd { command, .. } => write!(f, "command {command:?}"),
        }
    }
}

impl Probe {
    /// Parses a `--probe` value (`tcp:…` or `icmp:…`).
    pub fn parse(spec: &str) -> Result<Probe, String> {
        let (kind, rest) = spec
            .split_once(':')
            .ok_or_else(|| format!("{spec:?}: expected tcp:HOST:PORT or icmp:HOST"))?;
        // `send=` takes the rest of the text, commas included.
        let (head, send) = match rest.find(",send=") {
            Some(i) => (&rest[..i], Some(unescape(&rest[i + ",send=".len()..])?)),
            None => (rest, None),
        };
        let mut parts = head.split(',');
        let target = parts.next().unwrap_or_default();
        let mut timeout = None;
        let mut expect = None;
        for opt in parts {
            match opt.split_once('=') {
                Some(("timeout", v)) => timeout = Some(parse_seconds(v)?),
                Some(("expect", v)) => {
                    expect = Some(
                        v.parse::<u64>()
                            .map_err(|_| format!("expect={v:?}: not a number of bytes"))?,
                    )
                }
                _ => return Err(format!("{spec:?}: unknown probe option {opt:?}")),
            }
        }
        match kind {
            "tcp" => {
                let (host, port) = target
                    .rsplit_once(':')
                    .ok_or_else(|| format!("{spec:?}: expected tcp:HOST:PORT"))?;
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let port: u16 = port
                    .parse()
                    .map_err(|_| format!("{spec:?}: {port:?} is not a port"))?;
                if host.is_empty() {
                    return Err(format!("{spec:?}: no host"));
                }
                Ok(Probe::Tcp {
                    host: host.to_owned(),
                    port,
                    timeout: timeout.unwrap_or(TCP_TIMEOUT),
                    send,
                    expect,
                })
            }
            "icmp" => {
                if send.is_some() || expect.is_some() {
                    return Err(format!("{spec:?}: icmp takes only timeout="));
                }
                if target.is_empty() {
                    return Err(format!("{spec:?}: no host"));
                }
                Ok(Probe::Icmp {
                    host: target.to_owned(),
                    timeout: timeout.unwrap_or(ICMP_TIMEOUT),
                })
            }
            _ => Err(format!(
                "{spec:?}: unknown probe kind {kind:?} (tcp or icmp; commands go in --probe-cmd)"
            )),
        }
    }

    /// A `--probe-cmd` value.
    pub fn command(command: &str) -> Result<Probe, String> {
        if command.trim().is_empty() {
            return Err("--probe-cmd: empty command".into());
        }
        Ok(Probe::Cmd {
            command: command.to_owned(),
            timeout: CMD_TIMEOUT,
        })
    }

    /// Runs the probe: `Ok(summary)` when healthy, `Err(output)` when not.
    pub fn run(&self) -> Result<String, String> {
        match self {
            Probe::Tcp {
                host,
                port,
                timeout,
                send,
                expect,
            } => tcp(host, *port, secs(*timeout), send.as_deref(), *expect),
            Probe::Icmp { host, timeout } => icmp(host, secs(*timeout)),
            Probe::Cmd { command, timeout } => cmd(command, secs(*timeout)),
        }
    }
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::from_secs(1))
}

fn parse_seconds(v: &str) -> Result<f64, String> {
    humantime::parse_duration(v)
        .map(|d| d.as_secs_f64())
        .map_err(|e| format!("timeout={v:?}: {e}"))
}

fn unescape(text: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('\\') => out.push('\\'),
            other => {
                return Err(format!(
                    "send={text:?}: unknown escape \\{}",
                    other.unwrap_or(' ')
                ));
            }
        }
    }
    Ok(out)
}

fn remaining(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
}

/// The addresses of `host`. A literal address is parsed. A name goes to the C
/// library's resolver (getaddrinfo, which follows nsswitch.conf), except in a
/// statically linked build: there glibc's getaddrinfo would load the host's NSS
/// modules, built against another libc, into a program that carries its own copy.
/// That build asks `getent ahosts` instead, the host's own program with the host's
/// own libc and nsswitch.conf (README, "Static build").
fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    if cfg!(target_feature = "crt-static") {
        return resolve_by_getent(host, port);
    }
    (host, port)
        .to_socket_addrs()
        .map(|a| a.collect())
        .map_err(|e| format!("cannot resolve {host}: {e}"))
}

/// `getent ahosts HOST`: the stream addresses, in the order getent gives them (which
/// is getaddrinfo's, as `to_socket_addrs` returns them).
fn resolve_by_getent(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    if host.is_empty() || host.starts_with('-') || host.contains(char::is_whitespace) {
        return Err(format!("cannot resolve {host:?}: not a host name"));
    }
    let out = Command::new("getent")
        .args(["ahosts", "--", host])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("cannot resolve {host}: cannot run getent: {e}"))?;
    if !out.status.success() {
        // getent exits 2 for a name it cannot find.
        return Err(format!(
            "cannot resolve {host}: no address (getent ahosts: {})",
            out.status
        ));
    }
    let addrs = getent_stream_addrs(&String::from_utf8_lossy(&out.stdout), port);
    if addrs.is_empty() {
        return Err(format!("cannot resolve {host}: no address"));
    }
    Ok(addrs)
}

/// The `ADDRESS STREAM [NAME]` lines of `getent ahosts`, once each.
fn getent_stream_addrs(text: &str, port: u16) -> Vec<SocketAddr> {
    let mut addrs = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(addr), Some("STREAM")) = (words.next(), words.next()) else {
            continue;
        };
        if let Ok(ip) = addr.parse::<IpAddr>() {
            let sa = SocketAddr::new(ip, port);
            if !addrs.contains(&sa) {
                addrs.push(sa);
            }
        }
    }
    addrs
}

fn tcp(
    host: &str,
    port: u16,
    timeout: Duration,
    send: Option<&str>,
    expect: Option<u64>,
) -> Result<String, String> {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut last = format!("{host}:{port}: no address");
    let mut connected = None;
    for addr in resolve(host, port)? {
        let Some(left) = remaining(deadline) else {
            break;
        };
        match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => {
                connected = Some((s, addr));
                break;
            }
            Err(e) => last = format!("connect to {addr}: {e}"),
        }
    }
    let (mut stream, addr) = connected.ok_or(last)?;
    let connect_ms = start.elapsed().as_millis();
    if let Some(text) = send {
        let _ = stream.set_write_timeout(remaining(deadline));
        stream
            .write_all(text.as_bytes())
            .map_err(|e| format!("{addr}: connected in {connect_ms} ms, then send failed: {e}"))?;
    }
    let Some(want) = expect else {
        return Ok(format!("{addr}: connected in {connect_ms} ms"));
    };
    let mut got: u64 = 0;
    let mut buf = vec![0u8; 65536];
    let mut end = "timed out";
    while got < want {
        let Some(left) = remaining(deadline) else {
            break;
        };
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut buf) {
            Ok(0) => {
                end = "the peer closed the connection";
                break;
            }
            Ok(n) => got += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => {
                return Err(format!(
                    "{addr}: connected in {connect_ms} ms, received {got} of {want} bytes, then: {e}"
                ));
            }
        }
    }
    if got >= want {
        Ok(format!(
            "{addr}: connected in {connect_ms} ms, received {got} bytes in {} ms",
            start.elapsed().as_millis()
        ))
    } else {
        Err(format!(
            "{addr}: connected in {connect_ms} ms but received only {got} of {want} bytes within {:.1} s ({end})",
            timeout.as_secs_f64()
        ))
    }
}

fn icmp(host: &str, timeout: Duration) -> Result<String, String> {
    use socket2::{Domain, Protocol, Socket, Type};
    let start = Instant::now();
    let deadline = start + timeout;
    let ip: Ipv4Addr = resolve(host, 0)?
        .into_iter()
        .find_map(|a| match a {
            SocketAddr::V4(v4) => Some(*v4.ip()),
            SocketAddr::V6(_) => None,
        })
        .ok_or_else(|| format!("{host}: no IPv4 address (the icmp probe is IPv4 only)"))?;
    // A ping socket needs net.ipv4.ping_group_range to include our group; a raw socket
    // needs CAP_NET_RAW. Try the unprivileged one first.
    let (socket, raw) = match Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::ICMPV4)) {
        Ok(s) => (s, false),
        Err(dgram) => match Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)) {
            Ok(s) => (s, true),
            Err(e) => {
                return Err(format!(
                    "cannot open an ICMP socket: ping socket: {dgram}; raw socket: {e}"
                ));
            }
        },
    };
    let ident = (std::process::id() & 0xffff) as u16;
    let seq: u16 = 1;
    let mut packet = vec![8u8, 0, 0, 0];
    packet.extend_from_slice(&ident.to_be_bytes());
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(b"tune-probe-icmp!");
    let sum = checksum(&packet);
    packet[2..4].copy_from_slice(&sum.to_be_bytes());
    let to = SocketAddr::V4(SocketAddrV4::new(ip, 0)).into();
    socket
        .send_to(&packet, &to)
        .map_err(|e| format!("icmp echo to {ip}: {e}"))?;
    let mut buf = [MaybeUninit::<u8>::uninit(); 1500];
    while let Some(left) = remaining(deadline) {
        let _ = socket.set_read_timeout(Some(left));
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => return Err(format!("icmp echo to {ip}: {e}")),
        };
        // SAFETY: recv_from initialised the first n bytes.
        let bytes: Vec<u8> = buf[..n]
            .iter()
            .map(|b| unsafe { b.assume_init() })
            .collect();
        let from_ip = from.as_socket_ipv4().map(|a| *a.ip());
        if from_ip != Some(ip) {
            continue;
        }
        let icmp = if raw {
            let ihl = usize::from(bytes.first().copied().unwrap_or(0) & 0x0f) * 4;
            bytes.get(ihl..).unwrap_or_default()
        } else {
            &bytes[..]
        };
        // Echo reply (type 0) with our sequence; a raw socket also sees others' replies,
        // so it checks the identifier too (a ping socket's is chosen by the kernel).
        let is_ours = icmp.len() >= 8
            && icmp[0] == 0
            && icmp[6..8] == seq.to_be_bytes()
            && (!raw || icmp[4..6] == ident.to_be_bytes());
        if is_ours {
            return Ok(format!(
                "{ip}: echo reply in {:.1} ms ({} socket)",
                start.elapsed().as_secs_f64() * 1000.0,
                if raw { "raw" } else { "ping" }
            ));
        }
    }
    Err(format!(
        "{ip}: no echo reply within {:.1} s",
        timeout.as_secs_f64()
    ))
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], chunk.get(1).copied().unwrap_or(0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn cmd(command: &str, timeout: Duration) -> Result<String, String> {
    let start = Instant::now();
    let mut out = tempfile::tempfile().map_err(|e| format!("cannot make a temporary file: {e}"))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("cannot make a temporary file: {e}"))?;
    let spawn = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::from(
            out.try_clone()
                .map_err(|e| format!("cannot make a temporary file: {e}"))?,
        ))
        .stderr(Stdio::from(err))
        .process_group(0)
        .spawn();
    let mut child = spawn.map_err(|e| format!("cannot run sh -c {command:?}: {e}"))?;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() < timeout => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) | Err(_) => {
                // The command may have started children: end its whole process group.
                // SAFETY: kill has no memory preconditions; the group is the child's own.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.wait();
                break None;
            }
        }
    };
    let mut text = String::new();
    let _ = out.seek(std::io::SeekFrom::Start(0));
    let _ = out.take(OUTPUT_LIMIT as u64 * 4).read_to_string(&mut text);
    let text = one_line(&text);
    match status {
        Some(s) if s.success() => Ok(format!("exit 0 in {} ms", start.elapsed().as_millis())),
        Some(s) => Err(format!("{s}: {text}")),
        None => Err(format!(
            "no exit within {:.1} s (killed): {text}",
            timeout.as_secs_f64()
        )),
    }
}

/// A command's output as one bounded line.
fn one_line(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.len() <= OUTPUT_LIMIT {
        return joined;
    }
    let mut cut = OUTPUT_LIMIT;
    while !joined.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &joined[..cut])
}

/// `(probe, summary)` of every probe that passed, or `(probe, output)` of the first
/// that failed.
pub type Probed = Result<Vec<(String, String)>, (String, String)>;

/// Runs every probe in order, stopping at the first failure.
pub fn run_all(probes: &[Probe]) -> Probed {
    let mut passed = Vec::new();
    for p in probes {
        match p.run() {
            Ok(summary) => passed.push((p.to_string(), summary)),
            Err(output) => return Err((p.to_string(), output)),
        }
    }
    Ok(passed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_with_their_options() {
        let p = Probe::parse("tcp:10.0.0.2:8080,timeout=2s,expect=200000,send=200000\\n").unwrap();
        assert_eq!(
            p,
            Probe::Tcp {
                host: "10.0.0.2".into(),
                port: 8080,
                timeout: 2.0,
                send: Some("200000\n".into()),
                expect: Some(200_000),
            }
        );
        let p = Probe::parse("tcp:[::1]:22").unwrap();
        assert!(matches!(p, Probe::Tcp { ref host, port: 22, .. } if host == "::1"));
        let p = Probe::parse("tcp:h:80,send=GET / HTTP/1.0,x\\r\\n\\r\\n").unwrap();
        assert!(
            matches!(p, Probe::Tcp { send: Some(ref s), .. } if s == "GET / HTTP/1.0,x\r\n\r\n")
        );
        assert_eq!(
            Probe::parse("icmp:10.0.0.1").unwrap(),
            Probe::Icmp {
                host: "10.0.0.1".into(),
                timeout: ICMP_TIMEOUT
            }
        );
    }

    #[test]
    fn bad_specs_are_clear_errors() {
        for (bad, want) in [
            ("tcp", "expected tcp:HOST:PORT"),
            ("tcp:host", "expected tcp:HOST:PORT"),
            ("tcp:host:http", "is not a port"),
            ("tcp::80", "no host"),
            ("tcp:h:80,timeout=soon", "timeout="),
            ("tcp:h:80,expect=lots", "not a number"),
            ("tcp:h:80,bogus=1", "unknown probe option"),
            ("udp:h:53", "unknown probe kind"),
            ("icmp:h,expect=1", "only timeout"),
            ("tcp:h:80,send=\\q", "unknown escape"),
        ] {
            let err = Probe::parse(bad).unwrap_err();
            assert!(err.contains(want), "{bad}: {err}");
        }
        assert!(Probe::command("  ").is_err());
    }

    #[test]
    fn getent_lines_give_each_stream_address_once_in_order() {
        let text = "10.9.8.7        STREAM tune-probe.test\n\
                    10.9.8.7        DGRAM  \n\
                    10.9.8.7        RAW    \n\
                    fd00::7         STREAM \n\
                    fd00::7         DGRAM  \n\
                    10.9.8.7        STREAM \n\
                    garbage\n\
                    not-an-ip       STREAM x\n";
        assert_eq!(
            getent_stream_addrs(text, 8080),
            vec![
                "10.9.8.7:8080".parse::<SocketAddr>().unwrap(),
                "[fd00::7]:8080".parse().unwrap()
            ]
        );
        assert!(getent_stream_addrs("", 1).is_empty());
    }

    #[test]
    fn a_literal_address_needs_no_lookup_and_a_bad_name_no_getent() {
        assert_eq!(
            resolve("::1", 22).unwrap(),
            vec!["[::1]:22".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            resolve("10.0.0.2", 0).unwrap(),
            vec!["10.0.0.2:0".parse::<SocketAddr>().unwrap()]
        );
        for bad in ["", "-s", "a b"] {
            let e = resolve_by_getent(bad, 80).unwrap_err();
            assert!(e.contains("not a host name"), "{e}");
        }
    }

    /// The static build's lookup, against the real getent: in a mount namespace of
    /// this test's own thread, /etc/hosts and /etc/nsswitch.conf are bind-mounted from
    /// a temp dir, so the answer does not depend on the host's files (or its DNS).
    #[test]
    fn a_name_is_looked_up_by_the_hosts_getent() {
        // SAFETY: geteuid cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        let getent = Command::new("getent").arg("--help").output().is_ok();
        if !(root && getent) {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "prerequisite missing in CI: root and getent"
            );
            eprintln!("SKIP: needs root (a mount namespace) and getent");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hosts"), "10.9.8.7 tune-probe.test\n").unwrap();
        std::fs::write(dir.path().join("nsswitch.conf"), "hosts: files\n").unwrap();
        let dir_path = dir.path().to_path_buf();
        let (found, missing) = std::thread::spawn(move || {
            let c = |p: &str| std::ffi::CString::new(p).unwrap();
            let bind = |from: &std::path::Path, to: &str| {
                let (from, to) = (c(from.to_str().unwrap()), c(to));
                // SAFETY: valid C strings; a bind mount in this thread's own namespace.
                let rc = unsafe {
                    libc::mount(
                        from.as_ptr(),
                        to.as_ptr(),
                        std::ptr::null(),
                        libc::MS_BIND,
                        std::ptr::null(),
                    )
                };
                assert_eq!(rc, 0, "bind {to:?}: {}", std::io::Error::last_os_error());
            };
            // SAFETY: unshare and mount change only this thread's mount namespace
            // (unshare(CLONE_NEWNS) also unshares its CLONE_FS); nothing is mounted
            // outside it, and it goes when the thread ends.
            unsafe {
                assert_eq!(libc::unshare(libc::CLONE_NEWNS), 0);
                let root = c("/");
                let rc = libc::mount(
                    std::ptr::null(),
                    root.as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                );
                assert_eq!(rc, 0, "make / private: {}", std::io::Error::last_os_error());
            }
            bind(&dir_path.join("hosts"), "/etc/hosts");
            bind(&dir_path.join("nsswitch.conf"), "/etc/nsswitch.conf");
            (
                resolve_by_getent("tune-probe.test", 8080),
                resolve_by_getent("absent.tune-probe.test", 8080),
            )
        })
        .join()
        .unwrap();
        assert_eq!(
            found.unwrap(),
            vec!["10.9.8.7:8080".parse::<SocketAddr>().unwrap()]
        );
        let e = missing.unwrap_err();
        assert!(
            e.contains("cannot resolve absent.tune-probe.test: no address"),
            "{e}"
        );
    }

    #[test]
    fn commands_report_exit_status_and_output() {
        assert!(Probe::command("true").unwrap().run().is_ok());
        let err = Probe::command("echo no route; exit 3")
            .unwrap()
            .run()
            .unwrap_err();
        assert!(err.contains("3") && err.contains("no route"), "{err}");
        let slow = Probe::Cmd {
            command: "sleep 5".into(),
            timeout: 0.2,
        };
        let start = Instant::now();
        let err = slow.run().unwrap_err();
        assert!(err.contains("killed"), "{err}");
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn tcp_connects_sends_and_counts_bytes() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for mut s in listener.incoming().flatten() {
                let mut b = [0u8; 16];
                let _ = s.read(&mut b);
                let _ = s.write_all(&[b'x'; 1000]);
            }
        });
        let ok = tcp("127.0.0.1", port, secs(2.0), Some("go\n"), Some(1000)).unwrap();
        assert!(ok.contains("received 1000 bytes"), "{ok}");
        let short = tcp("127.0.0.1", port, secs(2.0), Some("go\n"), Some(5000)).unwrap_err();
        assert!(short.contains("only 1000 of 5000"), "{short}");
        assert_eq!(checksum(&[0x08, 0, 0, 0, 0, 1, 0, 1]), 0xf7fd);
    }
}
