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
//!
//! Only the lines the facts need become [`LogLine`]s: [`Wanted`] searches the raw
//! bytes for the `kernel_log` patterns and the OOM markers first, and the rest of the
//! log is checked (the syslog(2) text must be timestamped throughout) but never copied.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;

use aho_corasick::{AhoCorasick, AhoCorasickKind, Input, MatchKind, Span, packed};

use super::{Fact, FactRequest, LogLine, describe_io_error};
use crate::domain::log_pattern::{compile, is_plain_text};

/// Which lines of the kernel log the facts need: those whose raw bytes hold one of the
/// needles, the `kernel_log` patterns (when all are plain text) and the OOM markers of
/// [`super::oom::MARKERS`]. A line of a message that matches is one that holds the
/// needle, so nothing is missed; the matches are decided on the parsed message as
/// before. A pattern that is a real regex needs every line.
#[derive(Debug, Clone)]
pub struct Wanted {
    /// `None`: every line.
    needles: Option<Needles>,
}

/// The needles' searcher: aho-corasick's packed (SIMD, Teddy) searcher on its own
/// where the CPU and the needles allow it, which is what the automaton searched with
/// anyway (its prefilter reports the matches itself), without building the automaton
/// (7.5% of a plan's instructions on the sysctl path); else the automaton.
#[derive(Debug, Clone)]
enum Needles {
    Packed(packed::Searcher),
    Automaton(AhoCorasick),
}

impl Needles {
    /// The automaton, for where the packed searcher cannot be built: leftmost-first as
    /// the packed searcher is, and a contiguous NFA, not the default DFA for a few
    /// needles, since its prefilter does the searching either way and building the
    /// DFA cost 6% of a plan on an empty log.
    fn automaton<'a>(needles: impl IntoIterator<Item = &'a str>) -> Option<Needles> {
        AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .kind(Some(AhoCorasickKind::ContiguousNFA))
            .build(needles)
            .ok()
            .map(Needles::Automaton)
    }

    /// Where the first needle in `buf[at..]` starts.
    fn find_from(&self, buf: &[u8], at: usize) -> Option<usize> {
        match self {
            Needles::Packed(s) => s.find_in(buf, Span::from(at..buf.len())),
            Needles::Automaton(a) => a.find(Input::new(buf).range(at..)),
        }
        .map(|m| m.start())
    }
}

impl Wanted {
    /// Every line (a full parse).
    pub fn every_line() -> Wanted {
        Wanted { needles: None }
    }

    /// The lines these `kernel_log` patterns and, if `oom_kills`, the OOM parse need.
    pub fn new<'a>(patterns: impl IntoIterator<Item = &'a str>, oom_kills: bool) -> Wanted {
        let mut needles = Vec::new();
        for pattern in patterns {
            if !is_plain_text(pattern) {
                return Wanted::every_line();
            }
            needles.push(pattern);
        }
        if oom_kills {
            needles.extend(super::oom::MARKERS);
        }
        // The packed searcher (leftmost-first, its default) where it can be built,
        // else the automaton; with neither, every line.
        let needles = packed::Searcher::new(&needles)
            .map(Needles::Packed)
            .or_else(|| Needles::automaton(needles));
        Wanted { needles }
    }

    /// The lines the facts of `request` need.
    pub fn of(request: &FactRequest) -> Wanted {
        Wanted::new(
            request.kernel_log.keys().map(String::as_str),
            request.oom_kills,
        )
    }

    /// Whether these raw bytes hold a needle.
    pub fn holds(&self, raw: &[u8]) -> bool {
        self.needles
            .as_ref()
            .is_none_or(|n| n.find_from(raw, 0).is_some())
    }

    /// Calls `each` with every line of `buf` that holds a needle (without its `\n`), in
    /// order; the rest of `buf` is searched, not split into lines.
    pub fn each_line<'b>(&self, buf: &'b [u8], mut each: impl FnMut(&'b [u8])) {
        let Some(needles) = &self.needles else {
            buf.split(|b| *b == b'\n').for_each(each);
            return;
        };
        let mut at = 0;
        while at < buf.len() {
            let Some(found) = needles.find_from(buf, at) else {
                return;
            };
            let (start, end) = line_around(buf, found);
            each(&buf[start..end]);
            at = end + 1;
        }
    }

    /// Calls `each` with every line of `buf` and whether it holds a needle.
    pub fn mark_lines<'b>(&self, buf: &'b [u8], mut each: impl FnMut(&'b [u8], bool)) {
        let Some(needles) = &self.needles else {
            buf.split(|b| *b == b'\n').for_each(|line| each(line, true));
            return;
        };
        // The next needle's position, found ahead of the lines and kept until reached.
        let mut next = needles.find_from(buf, 0);
        let mut start = 0;
        while start <= buf.len() {
            let end = memchr::memchr(b'\n', &buf[start..]).map_or(buf.len(), |i| start + i);
            let wanted = next.is_some_and(|n| n <= end);
            if wanted {
                next = needles.find_from(buf, (end + 1).min(buf.len()));
            }
            each(&buf[start..end], wanted);
            start = end + 1;
        }
    }
}

/// Start and end (its `\n` or the end of `buf`) of the line holding byte `at`.
fn line_around(buf: &[u8], at: usize) -> (usize, usize) {
    let start = memchr::memrchr(b'\n', &buf[..at]).map_or(0, |i| i + 1);
    let end = memchr::memchr(b'\n', &buf[at..]).map_or(buf.len(), |i| at + i);
    (start, end)
}

/// A raw line as text: the `\r` of a CRLF line dropped, invalid UTF-8 replaced.
pub fn line_text(raw: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(raw.strip_suffix(b"\r").unwrap_or(raw))
}

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
    read_records(&Wanted::every_line())
}

/// Reads the records currently in the kernel's ring buffer that hold a wanted needle.
fn read_records(wanted: &Wanted) -> std::io::Result<Vec<Record>> {
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
                if !wanted.holds(&buf[..n]) {
                    continue;
                }
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

/// The wanted lines of the kernel log with their wall-clock times, or why it cannot be
/// read.
pub fn read_lines(wanted: &Wanted) -> Result<Vec<LogLine>, String> {
    let boot = boot_time();
    if let Some(buf) = read_syslog_bytes()
        && let Some(lines) = parse_syslog_wanted(&buf, boot, wanted)
    {
        return Ok(lines);
    }
    kmsg_lines(boot, wanted)
}

/// The kernel log from /dev/kmsg, one record per `read(2)`.
pub fn read_lines_from_kmsg(boot: f64) -> Result<Vec<LogLine>, String> {
    kmsg_lines(boot, &Wanted::every_line())
}

fn kmsg_lines(boot: f64, wanted: &Wanted) -> Result<Vec<LogLine>, String> {
    let records =
        read_records(wanted).map_err(|e| format!("/dev/kmsg: {}", describe_io_error(&e)))?;
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
    read_syslog_bytes().map(|buf| String::from_utf8_lossy(&buf).into_owned())
}

/// The ring buffer's bytes, through syslog(2); `None` when not permitted or empty.
fn read_syslog_bytes() -> Option<Vec<u8>> {
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
    Some(buf)
}

/// Parses `<PRIO>[SECONDS.MICROS] MESSAGE` lines (a `[CALLER]` field after the time,
/// from CONFIG_PRINTK_CALLER, is skipped). `None` if any line lacks a timestamp, so
/// the caller falls back to /dev/kmsg rather than guess times.
pub fn parse_syslog(text: &str, boot: f64) -> Option<Vec<LogLine>> {
    parse_syslog_wanted(text.as_bytes(), boot, &Wanted::every_line())
}

/// [`parse_syslog`] of raw bytes, keeping only the wanted lines (every line is still
/// checked for its timestamp).
pub fn parse_syslog_wanted(buf: &[u8], boot: f64, wanted: &Wanted) -> Option<Vec<LogLine>> {
    let mut out = Vec::new();
    let mut timestamped = true;
    wanted.mark_lines(buf, |raw, keep| {
        if !timestamped {
            return;
        }
        let line = line_text(raw);
        if line.is_empty() {
            return;
        }
        match syslog_line(&line) {
            Some((secs, micros, message)) if keep => out.push(LogLine {
                time: boot + secs as f64 + micros as f64 / 1e6,
                message: message.to_owned(),
            }),
            Some(_) => {}
            None => timestamped = false,
        }
    });
    timestamped.then_some(out)
}

/// Seconds and microseconds since boot and the message of one
/// `<PRIO>[SECONDS.MICROS] MESSAGE` line.
fn syslog_line(line: &str) -> Option<(u64, u64, &str)> {
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
    Some((secs, micros, message))
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
        // A plain-text pattern matches where it is a substring: no regex to compile
        // (that compile was 2.5% of a sysctl-playbook plan).
        let matcher = if is_plain_text(pattern) {
            Ok(None)
        } else {
            compile(pattern).map(Some)
        };
        let fact = match matcher {
            Ok(re) => {
                // `now` is infinite when the lines have no wall time: keep them all.
                let since = if now.is_finite() {
                    now - *window as f64
                } else {
                    f64::NEG_INFINITY
                };
                let matching = lines
                    .iter()
                    .filter(|l| {
                        l.time >= since
                            && re.as_ref().map_or_else(
                                || l.message.contains(pattern.as_str()),
                                |re| re.is_match(l.message.as_bytes()),
                            )
                    })
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
    fn plain_text_patterns_are_needles_and_regexes_need_every_line() {
        assert!(is_plain_text("nf_conntrack: table full, dropping packet"));
        assert!(is_plain_text("Possible SYN flooding on port"));
        for regex in [
            "",
            "table (full|empty)",
            "^eth0",
            "a.b",
            "(?i)full",
            "x\u{FFFD}",
        ] {
            assert!(!is_plain_text(regex), "{regex:?}");
        }
        assert!(Wanted::new(["a", "b|c"], false).needles.is_none());
        assert!(Wanted::new(["a"], false).holds(b"xay"));
        assert!(!Wanted::new(["a"], false).holds(b"xyz"));
        assert!(!Wanted::new([], false).holds(b"anything"), "nothing wanted");
        assert!(Wanted::new([], true).holds(b"[1.0] java invoked oom-killer: gfp"));
    }

    #[test]
    fn wanted_lines_are_found_anywhere_in_the_buffer() {
        let packed = Wanted::new(["full", "oops"], false);
        // On x86_64 (SSSE3) the packed searcher is the one used; the automaton is the
        // fallback for other CPUs and needle sets, and must find the same lines.
        #[cfg(target_arch = "x86_64")]
        assert!(matches!(packed.needles, Some(Needles::Packed(_))));
        let automaton = Wanted {
            needles: Needles::automaton(["full", "oops"]),
        };
        assert!(matches!(automaton.needles, Some(Needles::Automaton(_))));
        let long = format!("{}full\n{}\noops", "x".repeat(200), "no ".repeat(100));
        for (buf, wanted) in [
            &b"full\nno\nfull full\r\nno\nno oops\nfull"[..],
            b"\nfull\n\nno\nfull full\r\nno oops\n\nfull\n",
            long.as_bytes(),
        ]
        .into_iter()
        .flat_map(|buf| [(buf, &packed), (buf, &automaton)])
        {
            let mut found = Vec::new();
            wanted.each_line(buf, |l| found.push(String::from_utf8_lossy(l).into_owned()));
            let mut marked = Vec::new();
            wanted.mark_lines(buf, |l, keep| {
                if keep {
                    marked.push(String::from_utf8_lossy(l).into_owned());
                }
            });
            let expected: Vec<_> = buf
                .split(|b| *b == b'\n')
                .map(|l| String::from_utf8_lossy(l).into_owned())
                .filter(|l| l.contains("full") || l.contains("oops"))
                .collect();
            assert_eq!(found, expected);
            assert_eq!(marked, expected);
        }
    }

    #[test]
    fn the_syslog_text_is_checked_whole_but_only_wanted_lines_are_kept() {
        let text = "<6>[    0.000000] Linux version 6.1.0\r\n<4>[ 7000.250000] nf_conntrack: table full, dropping packet\n<4>[   12.000001][    T1] bad \u{FFFD} table full\n";
        let wanted = Wanted::new(["table full"], false);
        let some = parse_syslog_wanted(text.as_bytes(), 100.0, &wanted).unwrap();
        let all = parse_syslog(text, 100.0).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].message, "Linux version 6.1.0");
        assert_eq!(some, all[1..]);
        let mut raw = b"<6>[    1.000000] \xff\xfe table full\n".to_vec();
        let lines = parse_syslog_wanted(&raw, 0.0, &wanted).unwrap();
        assert_eq!(lines[0].message, "\u{FFFD}\u{FFFD} table full");
        raw.extend(b"<6>an unwanted line without a time\n");
        assert_eq!(parse_syslog_wanted(&raw, 0.0, &wanted), None);
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

    #[test]
    fn plain_text_patterns_match_as_their_regex_does() {
        let line = |message: &str| LogLine {
            time: 1.0,
            message: message.to_owned(),
        };
        let log = vec![
            line("nf_conntrack: table full, dropping packet"),
            line("Table Full"),
            line("possible SYN flooding on port 80. Sending cookies."),
            line("eth0: link up"),
        ];
        for pattern in ["table full", "Table", "port 80", "link up", "absent"] {
            assert!(is_plain_text(pattern), "{pattern}");
            let patterns = BTreeMap::from([(pattern.to_owned(), 3600)]);
            let Fact::Value(got) = &select(&log, &patterns, 2.0)[pattern] else {
                panic!("unknown")
            };
            let re = compile(pattern).unwrap();
            let want: Vec<&LogLine> = log
                .iter()
                .filter(|l| re.is_match(l.message.as_bytes()))
                .collect();
            assert_eq!(got.iter().collect::<Vec<_>>(), want, "{pattern}");
        }
        // A real regex still compiles and matches as one.
        let patterns = BTreeMap::from([("port [0-9]+\\.".to_owned(), 3600)]);
        let Fact::Value(got) = &select(&log, &patterns, 2.0)["port [0-9]+\\."] else {
            panic!("unknown")
        };
        assert_eq!(got.len(), 1);
        let patterns = BTreeMap::from([("(".to_owned(), 3600)]);
        assert!(matches!(
            select(&log, &patterns, 2.0)["("],
            Fact::Unknown(_)
        ));
    }
}
