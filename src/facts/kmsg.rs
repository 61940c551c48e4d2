//! The kernel log: read whole with one syslog(2) call, or record by record from
//! /dev/kmsg when that is not possible.
//!
//! `SYSLOG_ACTION_READ_ALL` copies the whole ring buffer in one system call as text
//! lines `<PRIO>[SECONDS.MICROS] MESSAGE` (a record of several lines repeats the prefix
//! on each). That needs printk timestamps (`printk.time`); without them, or if the
//! text does not parse, the log is read from /dev/kmsg instead, which costs one
//! `read(2)` per record (thousands on a busy host). Both need the same privilege
//! (CAP_SYSLOG when `kernel.dmesg_restrict` is 1).
//!
//! Each `read(2)` of /dev/kmsg returns one record, `PRIO,SEQ,USEC,FLAGS;MESSAGE`
//! followed by optional continuation lines that start with a space. `USEC` counts
//! microseconds of the kernel's monotonic clock since boot; it is mapped to wall-clock
//! time as `(realtime now - monotonic now) + USEC` (time spent suspended is not counted
//! by that clock, so on a laptop that slept, old lines look more recent than they are).

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;

use regex::Regex;

use super::{Fact, LogLine, describe_io_error};

/// One parsed record: microseconds since boot and the message.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub usec: u64,
    pub message: String,
}

/// Parses one /dev/kmsg record; `None` for anything that does not look like one.
pub fn parse_record(raw: &str) -> Option<Record> {
    let first_line = raw.lines().next()?;
    let (header, message) = first_line.split_once(';')?;
    let mut fields = header.split(',');
    let _prio = fields.next()?;
    let _seq = fields.next()?;
    let usec = fields.next()?.parse().ok()?;
    Some(Record {
        usec,
        message: message.to_owned(),
    })
}

/// Reads every record currently in the kernel's ring buffer.
pub fn read_all() -> std::io::Result<Vec<Record>> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")?;
    let mut records = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if let Some(r) = parse_record(&String::from_utf8_lossy(&buf[..n])) {
                    records.push(r);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            // EPIPE: the record we were about to read was overwritten; go on.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(records)
}

/// Wall-clock time of boot, in seconds since the epoch.
pub fn boot_time() -> f64 {
    clock(libc::CLOCK_REALTIME) - clock(libc::CLOCK_MONOTONIC)
}

fn clock(id: libc::clockid_t) -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime only writes to it.
    let rc = unsafe { libc::clock_gettime(id, &mut ts) };
    if rc != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// Every line of the kernel log with its wall-clock time, or why it cannot be read.
pub fn read_lines() -> Result<Vec<LogLine>, String> {
    let boot = boot_time();
    if let Some(text) = read_syslog_buffer()
        && let Some(lines) = parse_syslog(&text, boot)
    {
        return Ok(lines);
    }
    read_lines_from_kmsg(boot)
}

/// The kernel log from /dev/kmsg, one record per `read(2)`.
pub fn read_lines_from_kmsg(boot: f64) -> Result<Vec<LogLine>, String> {
    let records = read_all().map_err(|e| format!("/dev/kmsg: {}", describe_io_error(&e)))?;
    Ok(records
        .into_iter()
        .map(|r| LogLine {
            time: boot + r.usec as f64 / 1e6,
            message: r.message,
        })
        .collect())
}

/// The ring buffer as text, through syslog(2); `None` when not permitted or empty.
pub fn read_syslog_buffer() -> Option<String> {
    const SYSLOG_ACTION_READ_ALL: libc::c_int = 3;
    const SYSLOG_ACTION_SIZE_BUFFER: libc::c_int = 10;
    // SAFETY: SIZE_BUFFER takes no buffer and only returns a number.
    let size = unsafe { libc::klogctl(SYSLOG_ACTION_SIZE_BUFFER, std::ptr::null_mut(), 0) };
    let size = usize::try_from(size).ok().filter(|s| *s > 0)?;
    let mut buf = vec![0u8; size];
    let len = libc::c_int::try_from(size).ok()?;
    // SAFETY: `buf` is valid and writable for `len` bytes; the kernel writes at most that.
    let n = unsafe { libc::klogctl(SYSLOG_ACTION_READ_ALL, buf.as_mut_ptr().cast(), len) };
    let n = usize::try_from(n).ok().filter(|n| *n > 0)?;
    buf.truncate(n);
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// Parses `<PRIO>[SECONDS.MICROS] MESSAGE` lines (a `[CALLER]` field after the time,
/// from CONFIG_PRINTK_CALLER, is skipped). `None` if any line lacks a timestamp, so
/// the caller falls back to /dev/kmsg rather than guess times.
pub fn parse_syslog(text: &str, boot: f64) -> Option<Vec<LogLine>> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        let rest = line.strip_prefix('<')?;
        let (_prio, rest) = rest.split_once('>')?;
        let rest = rest.strip_prefix('[')?;
        let (stamp, rest) = rest.split_once(']')?;
        let (secs, micros) = stamp.trim().split_once('.')?;
        let secs: u64 = secs.parse().ok()?;
        let micros: u64 = micros.parse().ok()?;
        let rest = match rest.strip_prefix('[') {
            Some(caller) => caller.split_once(']')?.1,
            None => rest,
        };
        let message = rest.strip_prefix(' ').unwrap_or(rest);
        out.push(LogLine {
            time: boot + secs as f64 + micros as f64 / 1e6,
            message: message.to_owned(),
        });
    }
    Some(out)
}

/// The `kernel_log` facts: lines matching each pattern within its window before `now`.
pub fn select_facts(
    log: &Result<Vec<LogLine>, String>,
    patterns: &BTreeMap<String, u64>,
    now: f64,
) -> BTreeMap<String, Fact<Vec<LogLine>>> {
    match log {
        Ok(lines) => select(lines, patterns, now),
        Err(why) => patterns
            .keys()
            .map(|p| (p.clone(), Fact::Unknown(why.clone())))
            .collect(),
    }
}

/// Filters lines by pattern and window.
pub fn select(
    lines: &[LogLine],
    patterns: &BTreeMap<String, u64>,
    now: f64,
) -> BTreeMap<String, Fact<Vec<LogLine>>> {
    let mut out = BTreeMap::new();
    for (pattern, window) in patterns {
        let fact = match Regex::new(pattern) {
            Ok(re) => {
                // `now` is infinite when the lines have no wall time: keep them all.
                let since = if now.is_finite() {
                    now - *window as f64
                } else {
                    f64::NEG_INFINITY
                };
                let matching = lines
                    .iter()
                    .filter(|l| l.time >= since && re.is_match(&l.message))
                    .cloned()
                    .collect();
                Fact::Value(matching)
            }
            Err(e) => Fact::Unknown(format!("invalid pattern: {e}")),
        };
        out.insert(pattern.clone(), fact);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_records_with_continuation_lines() {
        let r = parse_record(
            "4,1234,5000000,-;nf_conntrack: table full, dropping packet\n SUBSYSTEM=net\n",
        )
        .unwrap();
        assert_eq!(r.usec, 5_000_000);
        assert_eq!(r.message, "nf_conntrack: table full, dropping packet");
        assert_eq!(parse_record("garbage"), None);
        assert_eq!(parse_record("4,1,notanumber,-;x"), None);
    }

    #[test]
    fn parses_syslog_text_and_refuses_lines_without_time() {
        let text = "<6>[    0.000000] Linux version 6.1.0\n<4>[ 7000.250000] nf_conntrack: table full, dropping packet\n<4>[   12.000001][    T1] with caller\n";
        let lines = parse_syslog(text, 100.0).unwrap();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[1].message,
            "nf_conntrack: table full, dropping packet"
        );
        assert_eq!(lines[1].time, 100.0 + 7000.25);
        assert_eq!(lines[2].message, "with caller");
        assert_eq!(parse_syslog("<6>no timestamp here\n", 0.0), None);
        assert_eq!(parse_syslog("plain\n", 0.0), None);
    }

    #[test]
    fn selects_by_pattern_and_window() {
        let boot = 1_000_000.0;
        let line = |secs: f64, message: &str| LogLine {
            time: boot + secs,
            message: message.into(),
        };
        let log = vec![
            line(1.0, "nf_conntrack: table full, dropping packet"),
            line(7000.0, "nf_conntrack: table full, dropping packet"),
            line(7100.0, "eth0: link up"),
        ];
        let now = boot + 7_200.0;
        let patterns = BTreeMap::from([("table full".to_owned(), 3600)]);
        let got = select(&log, &patterns, now);
        let Fact::Value(lines) = &got["table full"] else {
            panic!("unknown")
        };
        assert_eq!(lines.len(), 1, "the line from boot is older than an hour");
        assert_eq!(lines[0].time, boot + 7000.0);
    }
}
