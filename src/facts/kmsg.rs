//! The kernel log, read from /dev/kmsg.
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

/// Every record of the kernel log as wall-clock lines, or why it cannot be read.
pub fn read_lines() -> Result<Vec<LogLine>, String> {
    let records = read_all().map_err(|e| format!("/dev/kmsg: {}", describe_io_error(&e)))?;
    let boot = boot_time();
    Ok(records
        .into_iter()
        .map(|r| LogLine {
            time: boot + r.usec as f64 / 1e6,
            message: r.message,
        })
        .collect())
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
                let since = now - *window as f64;
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
