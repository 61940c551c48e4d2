//! Saved kernel logs (`--kernel-log FILE`): the formats people save, and their clocks.
//!
//! A post-mortem starts from a support bundle or a dead host's disk, not from the live
//! ring buffer, so `tune plan` and `tune facts` read these instead:
//!
//! | format | a line | its time |
//! |---|---|---|
//! | `dmesg` | `[  193.106393] msg` (maybe `<4>` first) | seconds since an unknown boot |
//! | `dmesg -T` | `[Tue Dec  1 10:00:00 2026] msg` | local wall time |
//! | syslog, `/var/log/kern.log` | `Dec  1 10:00:00 host kernel: [  193.1] msg` | local wall time, no year |
//! | the same, RFC 3339 | `2026-12-01T10:00:00.123456+00:00 host kernel: [  193.1] msg` | exact |
//! | `journalctl -k` | `Dec 01 10:00:00 host kernel: msg` | local wall time, no year |
//! | `journalctl -k -o short-iso` | `2026-12-01T10:00:00+0000 host kernel: msg` | exact |
//! | `journalctl -k -o short-monotonic` | `[  193.106393] host kernel: msg` | seconds since an unknown boot |
//!
//! Local times are read in this host's time zone (`TZ`), the one `dmesg -T` and syslog
//! print in when run here; a missing year is the latest one that does not put the line
//! in the future. Seconds since boot cannot be placed in time honestly (the file does
//! not say when that boot was, and it may not be this one): such a log says so in
//! [`SavedLog::clock_unknown`], and the conditions with a window are then unknown
//! rather than measured from "now".
//!
//! [`open`] tells the format from the first kernel line; [`LogFile::lines`] then reads
//! the file in chunks of [`CHUNK`] bytes and parses only the lines whose raw bytes hold
//! what the facts look for ([`Wanted`]), so an 8 MiB log is neither held whole nor
//! turned into a `String` per line.
//!
//! Pure except [`open`] and [`LogFile::lines`] (the file) and [`local_to_epoch`] (the
//! time zone).

use std::io::Read;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use super::LogLine;
use super::kmsg::{Wanted, line_text};

/// How much of a saved log is read at a time (a longer line grows the buffer to hold it).
pub const CHUNK: usize = 256 * 1024;

/// A saved kernel log, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedLog {
    /// Which format it was read as, e.g. `dmesg -T`.
    pub format: &'static str,
    /// The kernel's lines, oldest first; `time` is wall time, or seconds since boot
    /// when `clock_unknown` says why it cannot be wall time.
    pub lines: Vec<LogLine>,
    pub clock_unknown: Option<String>,
    /// Lines that were not kernel lines of the format (other programs in a syslog file,
    /// journal headers, garbage).
    pub skipped: usize,
}

/// A wall-clock time without a zone: year, month (1–12), day, hour, minute, second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: f64,
}

/// A saved log file and the format its first kernel line is in; its lines are read
/// when the facts that need them are known ([`LogFile::lines`]).
#[derive(Debug, Clone, PartialEq)]
pub struct LogFile {
    pub path: PathBuf,
    /// Which format it is read as, e.g. `dmesg -T` (`empty` for a blank file).
    pub format: &'static str,
    /// Why the lines' times are not wall-clock times (see [`SavedLog::clock_unknown`]).
    pub clock_unknown: Option<String>,
    /// `None`: a blank file.
    kind: Option<Format>,
}

/// Opens a saved log and tells its format (reading up to its first kernel line); an
/// error names the file and what is wrong, e.g. that it is no kernel log.
pub fn open(path: &Path) -> Result<LogFile, String> {
    let cannot = |e: std::io::Error| format!("cannot read kernel log {}: {e}", path.display());
    let mut file = std::fs::File::open(path).map_err(cannot)?;
    let mut kind = None;
    let mut blank = true;
    each_chunk(&mut file, CHUNK, |chunk| {
        for raw in chunk.split(|b| *b == b'\n') {
            let line = line_text(raw);
            if let Some(format) = Format::detect(&line) {
                kind = Some(format);
                return ControlFlow::Break(());
            }
            blank &= line.trim().is_empty();
        }
        ControlFlow::Continue(())
    })
    .map_err(cannot)?;
    let (format, clock_unknown) =
        described(kind, blank).map_err(|e| format!("kernel log {}: {e}", path.display()))?;
    Ok(LogFile {
        path: path.to_owned(),
        format,
        clock_unknown,
        kind,
    })
}

impl LogFile {
    /// The kernel lines the facts need (the wanted ones), oldest first, read again
    /// from the file in chunks.
    pub fn lines(&self, wanted: &Wanted) -> Result<Vec<LogLine>, String> {
        self.scan(wanted, CHUNK, super::now_unix(), &local_to_epoch)
    }

    /// [`LogFile::lines`], reading `chunk` bytes at a time, with [`parse`]'s `now` and
    /// `local`.
    fn scan(
        &self,
        wanted: &Wanted,
        chunk: usize,
        now: f64,
        local: &dyn Fn(Civil) -> Option<f64>,
    ) -> Result<Vec<LogLine>, String> {
        let Some(format) = self.kind else {
            return Ok(Vec::new());
        };
        let cannot =
            |e: std::io::Error| format!("cannot read kernel log {}: {e}", self.path.display());
        let mut file = std::fs::File::open(&self.path).map_err(cannot)?;
        let mut lines = Vec::new();
        each_chunk(&mut file, chunk, |chunk| {
            wanted.each_line(chunk, |raw| {
                let line = line_text(raw);
                if let Some(line) = format.parse_line(&line, now, local) {
                    lines.push(line);
                }
            });
            ControlFlow::Continue(())
        })
        .map_err(cannot)?;
        Ok(lines)
    }
}

/// Calls `each` with the bytes of `source` in pieces of whole lines (a piece ends with
/// `\n`, but the last one may not), reading `chunk` bytes at a time into one buffer
/// (grown when a line is longer), until the end or `each` breaks.
fn each_chunk(
    source: &mut impl Read,
    chunk: usize,
    mut each: impl FnMut(&[u8]) -> ControlFlow<()>,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; chunk.max(1)];
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let n = match source.read(&mut buf[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            if filled > 0 {
                let _ = each(&buf[..filled]);
            }
            return Ok(());
        }
        let searched = filled;
        filled += n;
        if let Some(i) = memchr::memrchr(b'\n', &buf[searched..filled]) {
            let end = searched + i + 1;
            if each(&buf[..end]).is_break() {
                return Ok(());
            }
            buf.copy_within(end..filled, 0);
            filled -= end;
        }
    }
}

/// A format's name and why its times are not wall times, or the error of a file in
/// no known format (`blank`: nothing but white space, an empty log).
fn described(kind: Option<Format>, blank: bool) -> Result<(&'static str, Option<String>), String> {
    let Some(format) = kind else {
        if blank {
            return Ok(("empty", None));
        }
        return Err("not a kernel log in a known format (raw dmesg, dmesg -T, syslog or kern.log, journalctl -k in short, short-iso or short-monotonic)".to_owned());
    };
    let clock_unknown = format.boot_relative().then(|| {
        format!(
            "the saved log ({}) stamps lines in seconds since a boot whose wall time it does not record, so which lines fall within a window cannot be told",
            format.name()
        )
    });
    Ok((format.name(), clock_unknown))
}

/// Parses a saved log whole. `now` picks the year of year-less lines; `local` maps a
/// local wall time to seconds since the epoch.
pub fn parse(
    text: &str,
    now: f64,
    local: &dyn Fn(Civil) -> Option<f64>,
) -> Result<SavedLog, String> {
    let kind = text.lines().find_map(Format::detect);
    let (format, clock_unknown) = described(kind, text.trim().is_empty())?;
    let mut lines = Vec::new();
    let mut skipped = 0;
    if let Some(kind) = kind {
        for raw in text.lines() {
            if raw.trim().is_empty() {
                continue;
            }
            match kind.parse_line(raw, now, local) {
                Some(line) => lines.push(line),
                None => skipped += 1,
            }
        }
    }
    Ok(SavedLog {
        format,
        lines,
        clock_unknown,
        skipped,
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    Dmesg,
    DmesgHuman,
    /// `Mon DD HH:MM:SS host kernel: msg` (syslog, kern.log, journalctl short).
    SyslogShort,
    /// `YYYY-MM-DDTHH:MM:SS[.frac]±zone host kernel: msg`.
    SyslogIso,
    JournalMonotonic,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Dmesg => "dmesg",
            Format::DmesgHuman => "dmesg -T",
            Format::SyslogShort => "syslog / journalctl -k",
            Format::SyslogIso => "syslog / journalctl -k, ISO 8601 times",
            Format::JournalMonotonic => "journalctl -k -o short-monotonic",
        }
    }

    fn boot_relative(self) -> bool {
        matches!(self, Format::Dmesg | Format::JournalMonotonic)
    }

    /// The format of the first line that parses as a kernel line of one.
    fn detect(line: &str) -> Option<Format> {
        let probe = |_: Civil| Some(0.0);
        [
            Format::JournalMonotonic,
            Format::Dmesg,
            Format::DmesgHuman,
            Format::SyslogIso,
            Format::SyslogShort,
        ]
        .into_iter()
        .find(|f| f.parse_line(line, 0.0, &probe).is_some())
    }

    fn parse_line(
        self,
        line: &str,
        now: f64,
        local: &dyn Fn(Civil) -> Option<f64>,
    ) -> Option<LogLine> {
        let (time, message) = match self {
            Format::Dmesg => {
                let rest = strip_priority(line);
                let (secs, msg) = boot_stamp(rest)?;
                if kernel_tag(msg).is_some() {
                    return None; // that is short-monotonic
                }
                (secs, msg)
            }
            Format::JournalMonotonic => {
                let (secs, msg) = boot_stamp(line)?;
                (secs, kernel_tag(msg)?)
            }
            Format::DmesgHuman => {
                let rest = strip_priority(line).strip_prefix('[')?;
                let (stamp, msg) = rest.split_once(']')?;
                let civil = dmesg_human_time(stamp)?;
                (local(civil)?, msg.strip_prefix(' ').unwrap_or(msg))
            }
            Format::SyslogShort => {
                let (civil, rest) = short_time(line)?;
                let msg = kernel_tag(rest)?;
                (with_year(civil, now, local)?, msg)
            }
            Format::SyslogIso => {
                let (stamp, rest) = line.split_once(' ')?;
                (iso_time(stamp)?, kernel_tag(rest)?)
            }
        };
        Some(LogLine {
            time,
            message: strip_inner_stamp(message).trim_end().to_owned(),
        })
    }
}

/// `<4>` of `dmesg -r` / `dmesg -x` style output.
fn strip_priority(line: &str) -> &str {
    if let Some(rest) = line.strip_prefix('<')
        && let Some((prio, rest)) = rest.split_once('>')
        && !prio.is_empty()
        && prio.len() <= 3
        && prio.bytes().all(|b| b.is_ascii_digit())
    {
        return rest;
    }
    line
}

/// `[  193.106393] rest` → seconds and the rest (a `[  T123]` caller field skipped).
fn boot_stamp(line: &str) -> Option<(f64, &str)> {
    let rest = line.strip_prefix('[')?;
    let (stamp, rest) = rest.split_once(']')?;
    let stamp = stamp.trim();
    let (secs, frac) = stamp.split_once('.')?;
    if secs.is_empty()
        || frac.is_empty()
        || !secs.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let time: f64 = stamp.parse().ok()?;
    let rest = skip_caller(rest);
    Some((time, rest.strip_prefix(' ').unwrap_or(rest)))
}

/// A `[    T1]` / `[  C12]` field of CONFIG_PRINTK_CALLER.
fn skip_caller(rest: &str) -> &str {
    if let Some(inner) = rest.strip_prefix('[')
        && let Some((caller, after)) = inner.split_once(']')
    {
        let caller = caller.trim();
        if caller.len() > 1
            && (caller.starts_with('T') || caller.starts_with('C'))
            && caller[1..].bytes().all(|b| b.is_ascii_digit())
        {
            return after;
        }
    }
    rest
}

/// The message of `host kernel: msg` (or `kernel: msg`, when whoever pasted the log
/// removed the host name); `None` for other programs' lines.
fn kernel_tag(rest: &str) -> Option<&str> {
    let tagged = |s: &'_ str| -> Option<usize> {
        if s.starts_with("kernel: ") {
            Some("kernel: ".len())
        } else {
            (s == "kernel:").then_some(s.len())
        }
    };
    if let Some(n) = tagged(rest) {
        return Some(&rest[n..]);
    }
    let (_host, after) = rest.split_once(' ')?;
    tagged(after).map(|n| &after[n..])
}

/// Syslog's copy of the printk stamp: `[  193.106393] msg` → `msg`.
fn strip_inner_stamp(msg: &str) -> &str {
    match boot_stamp(msg) {
        Some((_, rest)) => rest,
        None => msg,
    }
}

fn month(name: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    MONTHS.iter().position(|m| *m == name).map(|i| i as u32 + 1)
}

/// `HH:MM:SS[.frac]`.
fn clock_time(text: &str) -> Option<(u32, u32, f64)> {
    let mut parts = text.splitn(3, ':');
    let hour: u32 = parts.next()?.parse().ok()?;
    let minute: u32 = parts.next()?.parse().ok()?;
    let second_text = parts.next()?;
    if !second_text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let second: f64 = second_text.parse().ok()?;
    (hour < 24 && minute < 60 && second < 61.0).then_some((hour, minute, second))
}

/// `Tue Dec  1 10:00:00 2026` (dmesg -T, ctime format).
fn dmesg_human_time(stamp: &str) -> Option<Civil> {
    let fields: Vec<&str> = stamp.split_whitespace().collect();
    let [_weekday, mon, day, time, year] = fields.as_slice() else {
        return None;
    };
    let (hour, minute, second) = clock_time(time)?;
    Some(Civil {
        year: year.parse().ok()?,
        month: month(mon)?,
        day: day.parse().ok().filter(|d| (1..=31).contains(d))?,
        hour,
        minute,
        second,
    })
}

/// `Dec  1 10:00:00[.frac] rest`, the year left 0.
fn short_time(line: &str) -> Option<(Civil, &str)> {
    let mut rest = line;
    let mut take = || {
        let trimmed = rest.trim_start_matches(' ');
        let end = trimmed.find(' ').unwrap_or(trimmed.len());
        let (field, after) = trimmed.split_at(end);
        rest = after.strip_prefix(' ').unwrap_or(after);
        field
    };
    let mon = month(take())?;
    let day: u32 = take().parse().ok().filter(|d| (1..=31).contains(d))?;
    let (hour, minute, second) = clock_time(take())?;
    Some((
        Civil {
            year: 0,
            month: mon,
            day,
            hour,
            minute,
            second,
        },
        rest,
    ))
}

/// The latest year that does not put the line more than a day after `now`.
fn with_year(civil: Civil, now: f64, local: &dyn Fn(Civil) -> Option<f64>) -> Option<f64> {
    let this_year = civil_from_days((now / 86_400.0).floor() as i64).0;
    for year in [this_year + 1, this_year, this_year - 1] {
        let t = local(Civil { year, ..civil })?;
        if t <= now + 86_400.0 {
            return Some(t);
        }
    }
    None
}

/// `2026-12-01T10:00:00[.frac](Z|±HH:MM|±HHMM)` → seconds since the epoch.
fn iso_time(stamp: &str) -> Option<f64> {
    let (date, rest) = stamp.split_once('T')?;
    let mut d = date.splitn(3, '-');
    let year: i64 = d.next()?.parse().ok()?;
    let month: u32 = d.next()?.parse().ok().filter(|m| (1..=12).contains(m))?;
    let day: u32 = d.next()?.parse().ok().filter(|d| (1..=31).contains(d))?;
    let zone_at = rest.find(['Z', '+', '-'])?;
    let (time, zone) = rest.split_at(zone_at);
    let (hour, minute, second) = clock_time(time)?;
    let offset = match zone {
        "Z" => 0,
        _ => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
            if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let hh: i64 = digits[..2].parse().ok()?;
            let mm: i64 = digits[2..].parse().ok()?;
            sign * (hh * 3600 + mm * 60)
        }
    };
    let utc = utc_epoch(Civil {
        year,
        month,
        day,
        hour,
        minute,
        second,
    })?;
    Some(utc - offset as f64)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of days since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A wall time read as UTC.
pub fn utc_epoch(c: Civil) -> Option<f64> {
    if !(1..=12).contains(&c.month) || !(1..=31).contains(&c.day) {
        return None;
    }
    let days = days_from_civil(c.year, c.month, c.day);
    Some((days * 86_400 + i64::from(c.hour) * 3600 + i64::from(c.minute) * 60) as f64 + c.second)
}

/// A wall time read in this host's time zone (mktime(3), daylight saving decided by
/// the zone's rules).
pub fn local_to_epoch(c: Civil) -> Option<f64> {
    // SAFETY: an all-zero `tm` is a valid value of this plain C struct.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = i32::try_from(c.year - 1900).ok()?;
    tm.tm_mon = i32::try_from(c.month).ok()? - 1;
    tm.tm_mday = i32::try_from(c.day).ok()?;
    tm.tm_hour = i32::try_from(c.hour).ok()?;
    tm.tm_min = i32::try_from(c.minute).ok()?;
    tm.tm_sec = c.second.floor() as i32;
    tm.tm_isdst = -1;
    // SAFETY: `tm` is a valid, writable struct tm; mktime only reads and normalizes it.
    let t = unsafe { libc::mktime(&mut tm) };
    (t != -1).then(|| t as f64 + c.second.fract())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> SavedLog {
        // 2026-12-01T12:00:00Z
        parse(text, 1_796_126_400.0, &utc_epoch).unwrap()
    }

    #[test]
    fn calendar_arithmetic() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(civil_from_days(days_from_civil(2026, 12, 1)), (2026, 12, 1));
        assert_eq!(iso_time("2026-12-01T12:00:00Z"), Some(1_796_126_400.0));
        assert_eq!(iso_time("2026-12-01T13:30:00+01:30"), Some(1_796_126_400.0));
        assert_eq!(iso_time("2026-12-01T07:00:00-0500"), Some(1_796_126_400.0));
        assert_eq!(iso_time("2026-13-01T07:00:00Z"), None);
    }

    #[test]
    fn year_less_lines_take_the_latest_year_not_in_the_future() {
        let log = utc("Dec  1 11:00:00 h kernel: a\nJan  2 00:00:00 h kernel: b\n");
        assert_eq!(log.lines[0].time, 1_796_126_400.0 - 3600.0);
        let jan_2_2026 = utc_epoch(Civil {
            year: 2026,
            month: 1,
            day: 2,
            hour: 0,
            minute: 0,
            second: 0.0,
        });
        assert_eq!(Some(log.lines[1].time), jan_2_2026);
    }

    /// The lines of `text`, as [`LogFile::scan`] reads them from a file `chunk` bytes
    /// at a time.
    fn scanned(text: &[u8], wanted: &Wanted, chunk: usize) -> Result<Vec<LogLine>, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kern.log");
        std::fs::write(&path, text).unwrap();
        open(&path)?.scan(wanted, chunk, NOW, &utc_epoch)
    }

    const NOW: f64 = 1_796_126_400.0;

    /// Every fixture of tests/fixtures read through the file scan, whole and for the
    /// bundled patterns and the OOM parse, gives what the full parse gives.
    #[test]
    fn scanning_the_file_finds_what_the_full_parse_finds() {
        use super::super::{kmsg, oom};
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let patterns = [
            "nf_conntrack: table full, dropping packet",
            "Possible SYN flooding on port",
            "TCP: time wait bucket table overflow",
            "Memory cgroup out of memory",
        ];
        let by_pattern = patterns.iter().map(|p| (p.to_string(), 1 << 40)).collect();
        let (mut checked, mut kept, mut total) = (0, 0, 0);
        for dir in ["kernel-log", "oom"] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                let text = std::fs::read(&path).unwrap();
                let full = parse(&String::from_utf8_lossy(&text), NOW, &utc_epoch).unwrap();
                let file = open(&path).unwrap();
                assert_eq!(
                    (file.format, &file.clock_unknown),
                    (full.format, &full.clock_unknown)
                );
                for chunk in [7, 100, CHUNK] {
                    let every = file.scan(&Wanted::every_line(), chunk, NOW, &utc_epoch);
                    assert_eq!(every.as_ref(), Ok(&full.lines), "{path:?}, chunk {chunk}");
                    let wanted = Wanted::new(patterns, true);
                    let some = file.scan(&wanted, chunk, NOW, &utc_epoch).unwrap();
                    assert!(some.len() <= full.lines.len(), "{path:?}");
                    if chunk == CHUNK {
                        (kept, total) = (kept + some.len(), total + full.lines.len());
                    }
                    assert_eq!(oom::parse(&some), oom::parse(&full.lines), "{path:?}");
                    let now = f64::INFINITY;
                    assert_eq!(
                        kmsg::select(&some, &by_pattern, now),
                        kmsg::select(&full.lines, &by_pattern, now),
                        "{path:?}"
                    );
                }
                checked += 1;
            }
        }
        assert!(checked >= 15, "only {checked} fixtures");
        assert!(
            kept < total,
            "{kept} of {total} lines kept: the rest were not parsed"
        );
    }

    #[test]
    fn lines_across_chunks_crlf_and_invalid_utf8_read_as_the_full_parse_reads_them() {
        let mut text =
            b"[    1.000000] first\r\n\r\n[    2.000000] bad \xff\xfe utf-8 table full\n".to_vec();
        text.extend(b"[    3.000000] ");
        text.extend(std::iter::repeat_n(b'x', 300));
        text.extend(b" table full, longer than a chunk\n[    4.000000] last, no newline\r");
        let full = parse(&String::from_utf8_lossy(&text), NOW, &utc_epoch).unwrap();
        assert_eq!(full.lines.len(), 4);
        assert_eq!(full.lines[0].message, "first");
        assert_eq!(
            full.lines[1].message,
            "bad \u{FFFD}\u{FFFD} utf-8 table full"
        );
        for chunk in [1, 2, 16, 64, 299, 300, 301, 4096] {
            let every = scanned(&text, &Wanted::every_line(), chunk).unwrap();
            assert_eq!(every, full.lines, "chunk {chunk}");
            let some = scanned(&text, &Wanted::new(["table full"], false), chunk).unwrap();
            assert_eq!(some, full.lines[1..3], "chunk {chunk}");
            let none = scanned(&text, &Wanted::new(["absent"], false), chunk).unwrap();
            assert_eq!(none, [], "chunk {chunk}");
        }
    }

    #[test]
    fn a_file_in_no_format_is_refused_and_a_blank_one_is_empty() {
        let err = scanned(b"hello\nworld\n", &Wanted::every_line(), CHUNK).unwrap_err();
        assert!(err.contains("not a kernel log"), "{err}");
        assert_eq!(
            scanned(b"\n \r\n\n", &Wanted::every_line(), CHUNK),
            Ok(vec![])
        );
        // The format is told from the first kernel line, however far into the file.
        let mut late = b"garbage\n".repeat(CHUNK / 4);
        late.extend(b"[    5.000000] kernel line\n");
        let lines = scanned(&late, &Wanted::every_line(), CHUNK).unwrap();
        assert_eq!(lines.len(), 1);
        assert!(open(std::path::Path::new("/nonexistent/kern.log")).is_err());
    }

    #[test]
    fn garbage_is_an_error_and_empty_is_an_empty_log() {
        assert!(parse("hello\nworld\n", 0.0, &utc_epoch).is_err());
        assert!(parse("\n\n", 0.0, &utc_epoch).unwrap().lines.is_empty());
    }
}
