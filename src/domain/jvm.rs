//! The JVM's maximum heap, worked out from its options the way HotSpot does, and the
//! heap-flag surgery the `set_env` fix does on an options variable.
//!
//! Where options come from, in the order HotSpot reads them (a later flag overrides
//! an earlier one): `JAVA_TOOL_OPTIONS`, then `JDK_JAVA_OPTIONS` (the `java` launcher
//! inserts it before the command-line options), then the command line up to the main
//! class / `-jar FILE` / `-m MODULE` (anything after belongs to the program), then
//! `_JAVA_OPTIONS`. `JAVA_OPTS` and `CATALINA_OPTS` are read by start scripts, which
//! put them on the command line, so they are already counted there.
//!
//! Ergonomics (JDK 10+ and 8u191+, `Arguments::set_heap_size`): with no `-Xmx` /
//! `-XX:MaxHeapSize`, the heap is `MaxRAMPercentage` (default 25) of the memory the
//! JVM believes it has — the cgroup limit when container support is on (the default)
//! and the limit is below host memory, host memory otherwise, or `-XX:MaxRAM` when
//! given (else capped at 128 GiB). On small machines (`MinRAMPercentage`, default
//! 50, of memory below the built-in 124.8 MiB default) that fraction is used instead;
//! otherwise the heap is at least the built-in default. `-Xms` raises it. Heap
//! alignment (a few MiB) is ignored. JVMs older than 8u191 ignore cgroups; that is
//! not visible from /proc, so they are treated as modern ones.
//!
//! Pure: no I/O.

use std::collections::BTreeMap;

use crate::detect::Evidence;
use crate::facts::{Fact, Facts, OomKill, ProcessInfo};
use crate::playbook::{Condition, JvmHeapCondition, OomKillCondition, Vars, expand, scalar_text};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// HotSpot's built-in `MaxHeapSize` before ergonomics on 64-bit: 96 MiB * 13 / 10.
const DEFAULT_MAX_HEAP: u64 = 96 * MIB * 13 / 10;
/// HotSpot's default `MaxRAM` on x86_64 / aarch64.
const DEFAULT_MAX_RAM: u64 = 128 * GIB;

/// The environment variables that carry JVM options.
pub const JVM_ENV_VARS: &[&str] = &[
    "JAVA_TOOL_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "_JAVA_OPTIONS",
    "JAVA_OPTS",
    "CATALINA_OPTS",
];

/// Splits an options variable the way the JVM does: on whitespace, with `'` and `"`
/// grouping (and removed). Returns each option with its byte range in `text`.
pub fn split_options(text: &str) -> Vec<(String, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    let mut current: Option<(String, usize)> = None;
    let mut quote: Option<char> = None;
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => current.get_or_insert((String::new(), i)).0.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                current.get_or_insert((String::new(), i));
            }
            (None, c) if c.is_whitespace() => {
                if let Some((token, start)) = current.take() {
                    out.push((token, start..i));
                }
            }
            (None, c) => current.get_or_insert((String::new(), i)).0.push(c),
        }
    }
    if let Some((token, start)) = current {
        out.push((token, start..text.len()));
    }
    out
}

/// Launcher options that take the next argument as their value.
const LAUNCHER_OPTIONS_WITH_ARG: &[&str] = &[
    "-cp",
    "-classpath",
    "--class-path",
    "-p",
    "--module-path",
    "--upgrade-module-path",
    "--add-modules",
    "--limit-modules",
    "--add-reads",
    "--add-exports",
    "--add-opens",
    "--patch-module",
    "--source",
    "--describe-module",
    "-d",
    "--enable-native-access",
];

/// The JVM options of a `java` command line: from after argv[0] up to the main
/// class, `-jar FILE` or `-m MODULE`.
pub fn launcher_options(cmdline: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut args = cmdline.iter().skip(1);
    while let Some(arg) = args.next() {
        if !arg.starts_with('-') || matches!(arg.as_str(), "-jar" | "-m" | "--module") {
            break;
        }
        if arg.starts_with("--module=") {
            break;
        }
        out.push(arg.clone());
        if LAUNCHER_OPTIONS_WITH_ARG.contains(&arg.as_str()) {
            args.next();
        }
    }
    out
}

/// A flag that decided something, and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting<T> {
    pub value: T,
    pub flag: String,
    pub source: &'static str,
}

impl<T> Setting<T> {
    fn describe(&self) -> String {
        format!("{} ({})", self.flag, self.source)
    }
}

/// The heap-relevant flags, the last of each kind winning.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeapFlags {
    pub max_heap: Option<Setting<u64>>,
    pub initial_heap: Option<Setting<u64>>,
    pub max_ram_percentage: Option<Setting<f64>>,
    pub min_ram_percentage: Option<Setting<f64>>,
    pub max_ram: Option<Setting<u64>>,
    pub container_support: Option<Setting<bool>>,
}

/// Parses a JVM size: digits with an optional `k`, `m`, `g` or `t` (any case).
pub fn parse_jvm_size(text: &str) -> Option<u64> {
    let (digits, unit) = match text.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&text[..i], Some(c.to_ascii_lowercase())),
        _ => (text, None),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let scale = match unit {
        None => 1,
        Some('k') => KIB,
        Some('m') => MIB,
        Some('g') => GIB,
        Some('t') => 1024 * GIB,
        Some(_) => return None,
    };
    n.checked_mul(scale)
}

/// Parses a size a playbook writes: bytes, or a number with `K`/`M`/`G`/`T`, with
/// or without `i`/`iB`/`B` (all binary: 1M = 1 MiB), e.g. `128MiB`, `1G`, `512m`.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(end);
    let number: f64 = number.parse().ok()?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.trim_end_matches('b').trim_end_matches('i').to_owned();
    let scale = match unit.as_str() {
        "" => 1,
        "k" => KIB,
        "m" => MIB,
        "g" => GIB,
        "t" => 1024 * GIB,
        _ => return None,
    };
    let bytes = number * scale as f64;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// Whether an option sets (or bounds) the maximum heap; these are what the fix replaces.
pub fn is_heap_flag(option: &str) -> bool {
    option.starts_with("-Xmx")
        || [
            "-XX:MaxHeapSize=",
            "-XX:MaxRAMPercentage=",
            "-XX:MaxRAMFraction=",
            "-XX:MaxRAM=",
            "-XX:MinRAMPercentage=",
            "-XX:MinRAMFraction=",
        ]
        .iter()
        .any(|p| option.starts_with(p))
}

/// `-XX:{name}Percentage=P` as P, or the older `-XX:{name}Fraction=N` as 100 / N.
fn percentage(option: &str, name: &str) -> Option<f64> {
    let rest = option.strip_prefix("-XX:")?.strip_prefix(name)?;
    if let Some(p) = rest.strip_prefix("Percentage=") {
        return p.parse().ok();
    }
    let n: f64 = rest.strip_prefix("Fraction=")?.parse().ok()?;
    (n > 0.0).then(|| 100.0 / n)
}

impl HeapFlags {
    /// Reads options in order; later ones override earlier ones.
    pub fn read<'a>(options: impl IntoIterator<Item = (&'a str, &'static str)>) -> HeapFlags {
        let mut flags = HeapFlags::default();
        for (option, source) in options {
            let size = |prefixes: &[&str]| {
                prefixes
                    .iter()
                    .find_map(|p| option.strip_prefix(p))
                    .and_then(parse_jvm_size)
            };
            let set = |value| Setting {
                value,
                flag: option.to_owned(),
                source,
            };
            if let Some(v) = size(&["-Xmx", "-XX:MaxHeapSize="]) {
                flags.max_heap = Some(set(v));
            } else if let Some(v) = size(&["-Xms", "-XX:InitialHeapSize="]) {
                flags.initial_heap = Some(set(v));
            } else if let Some(v) = size(&["-XX:MaxRAM="]) {
                flags.max_ram = Some(set(v));
            } else if let Some(v) = percentage(option, "MaxRAM") {
                flags.max_ram_percentage = Some(Setting {
                    value: v,
                    flag: option.to_owned(),
                    source,
                });
            } else if let Some(v) = percentage(option, "MinRAM") {
                flags.min_ram_percentage = Some(Setting {
                    value: v,
                    flag: option.to_owned(),
                    source,
                });
            } else if option == "-XX:+UseContainerSupport" || option == "-XX:-UseContainerSupport" {
                flags.container_support = Some(Setting {
                    value: option.starts_with("-XX:+"),
                    flag: option.to_owned(),
                    source,
                });
            }
        }
        flags
    }

    /// The flags of a process: its options variables and command line, in JVM order.
    pub fn of_process(cmdline: &[String], env: &BTreeMap<String, String>) -> HeapFlags {
        let env_options = |name: &'static str| {
            env.get(name)
                .map(|v| {
                    split_options(v)
                        .into_iter()
                        .map(|(t, _)| t)
                        .collect::<Vec<String>>()
                })
                .unwrap_or_default()
                .into_iter()
                .map(move |t| (t, name))
        };
        let all: Vec<(String, &'static str)> = env_options("JAVA_TOOL_OPTIONS")
            .chain(env_options("JDK_JAVA_OPTIONS"))
            .chain(
                launcher_options(cmdline)
                    .into_iter()
                    .map(|t| (t, "command line")),
            )
            .chain(env_options("_JAVA_OPTIONS"))
            .collect();
        HeapFlags::read(all.iter().map(|(t, s)| (t.as_str(), *s)))
    }
}

/// The largest heap a JVM may grow to, and how that was worked out.
#[derive(Debug, Clone, PartialEq)]
pub struct ReachableHeap {
    pub bytes: u64,
    pub how: String,
}

/// Bytes as the largest binary unit that keeps one decimal, e.g. `512 MiB`, `1.5 GiB`.
pub fn human(bytes: u64) -> String {
    let units = [
        ("TiB", 1024 * GIB),
        ("GiB", GIB),
        ("MiB", MIB),
        ("KiB", KIB),
    ];
    for (name, size) in units {
        if bytes >= size {
            let v = bytes as f64 / size as f64;
            return if (v - v.round()).abs() < 0.05 {
                format!("{:.0} {name}", v.round())
            } else {
                format!("{v:.1} {name}")
            };
        }
    }
    format!("{bytes} B")
}

/// HotSpot's maximum heap for these flags, given the cgroup limit (None: unlimited)
/// and the host's memory.
pub fn reachable_heap(flags: &HeapFlags, limit: Option<u64>, host_total: u64) -> ReachableHeap {
    if let Some(s) = &flags.max_heap {
        return ReachableHeap {
            bytes: s.value,
            how: s.describe(),
        };
    }
    let container_support = flags.container_support.as_ref().is_none_or(|s| s.value);
    let (memory, memory_how) = match (&flags.max_ram, limit) {
        (Some(s), _) => (s.value, s.describe()),
        (None, Some(l)) if container_support && l < host_total => {
            (l.min(DEFAULT_MAX_RAM), format!("cgroup limit {}", human(l)))
        }
        (None, _) => {
            let why = match &flags.container_support {
                Some(s) if !s.value => {
                    format!("host memory {} ({})", human(host_total), s.describe())
                }
                _ => format!("host memory {}", human(host_total)),
            };
            (host_total.min(DEFAULT_MAX_RAM), why)
        }
    };
    let (max_pct, max_pct_how) = match &flags.max_ram_percentage {
        Some(s) => (s.value, s.describe()),
        None => (25.0, "default MaxRAMPercentage=25".to_owned()),
    };
    let min_pct = flags.min_ram_percentage.as_ref().map_or(50.0, |s| s.value);
    let small = (memory as f64 * min_pct / 100.0) as u64;
    let (mut bytes, mut how) = if small < DEFAULT_MAX_HEAP {
        (
            small,
            format!("MinRAMPercentage={min_pct} of {memory_how} (small memory)"),
        )
    } else {
        let fraction = (memory as f64 * max_pct / 100.0) as u64;
        if fraction >= DEFAULT_MAX_HEAP {
            (fraction, format!("{max_pct_how} of {memory_how}"))
        } else {
            (
                DEFAULT_MAX_HEAP,
                format!("built-in minimum (above {max_pct_how} of {memory_how})"),
            )
        }
    };
    if let Some(s) = &flags.initial_heap
        && s.value > bytes
    {
        bytes = s.value;
        how = format!("{} raises it", s.describe());
    }
    ReachableHeap { bytes, how }
}

/// `options` with its heap flags replaced by `new_flags`, every other option kept as
/// written: the first heap flag is replaced in place, later ones are dropped with
/// the space before them; with none, the new flags are appended.
pub fn replace_heap_flags(options: &str, new_flags: &str) -> String {
    let heap: Vec<std::ops::Range<usize>> = split_options(options)
        .into_iter()
        .filter(|(t, _)| is_heap_flag(t))
        .map(|(_, r)| r)
        .collect();
    let Some(first) = heap.first() else {
        let body = options.trim_end();
        let trailing = &options[body.len()..];
        return if body.trim_start().is_empty() {
            format!("{body}{new_flags}{trailing}")
        } else {
            format!("{body} {new_flags}{trailing}")
        };
    };
    let mut out = String::with_capacity(options.len() + new_flags.len());
    out.push_str(&options[..first.start]);
    out.push_str(new_flags);
    let mut pos = first.end;
    for range in &heap[1..] {
        let before = &options[pos..range.start];
        out.push_str(before.trim_end());
        pos = range.end;
    }
    out.push_str(&options[pos..]);
    out
}

/// What a process's heap amounts to under its cgroup limit.
#[derive(Debug, Clone, PartialEq)]
pub enum Assessment {
    /// Heap plus headroom exceeds the limit.
    Exceeds(Breach),
    /// It fits (the breach data, for evidence).
    Fits(Breach),
    /// No memory limit applies to the process.
    Unlimited,
    /// Something needed is unknown.
    Unknown(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Breach {
    pub pid: u32,
    pub heap: ReachableHeap,
    pub headroom: u64,
    pub limit: u64,
    /// The cgroup whose limit it is.
    pub limit_from: String,
    pub usage: Option<u64>,
}

impl Breach {
    pub fn describe(&self) -> String {
        let usage = self
            .usage
            .map(|u| format!(", using {} now", human(u)))
            .unwrap_or_default();
        format!(
            "pid {}: max heap {} [{}] + headroom {} vs cgroup limit {} of {}{usage}",
            self.pid,
            human(self.heap.bytes),
            self.heap.how,
            human(self.headroom),
            human(self.limit),
            self.limit_from
        )
    }
}

/// Whether the process's reachable heap plus `headroom` exceeds its cgroup limit.
pub fn assess(p: &ProcessInfo, host_total: Fact<&u64>, headroom: u64) -> Assessment {
    let cgroup = match &p.memory_cgroup {
        Fact::Value(c) => c,
        Fact::Unknown(why) => return Assessment::Unknown(format!("pid {}: cgroup: {why}", p.pid)),
    };
    let Some(limit) = cgroup.limit else {
        return Assessment::Unlimited;
    };
    let env = match &p.env {
        Fact::Value(env) => env,
        Fact::Unknown(why) => {
            return Assessment::Unknown(format!("pid {}: environment: {why}", p.pid));
        }
    };
    let host_total = match host_total {
        Fact::Value(v) => *v,
        Fact::Unknown(why) => return Assessment::Unknown(format!("host memory: {why}")),
    };
    let flags = HeapFlags::of_process(&p.cmdline, env);
    let heap = reachable_heap(&flags, Some(limit), host_total);
    let breach = Breach {
        pid: p.pid,
        headroom,
        limit,
        limit_from: cgroup
            .limit_from
            .clone()
            .unwrap_or_else(|| cgroup.path.clone()),
        usage: cgroup.usage,
        heap,
    };
    if breach.heap.bytes.saturating_add(headroom) > limit {
        Assessment::Exceeds(breach)
    } else {
        Assessment::Fits(breach)
    }
}

/// The outcome of a `jvm_heap` or `oom_kill` condition: holds (`Some(true)`), does
/// not, or cannot be decided (`None`, with the reasons in `unknown`).
#[derive(Debug, Default)]
pub struct Verdict {
    pub holds: Option<bool>,
    pub evidence: Vec<Evidence>,
    pub unknown: Vec<String>,
}

impl Verdict {
    fn unknown(why: String) -> Verdict {
        Verdict {
            holds: None,
            evidence: Vec::new(),
            unknown: vec![why],
        }
    }
}

/// The headroom of a `jvm_heap` condition, in bytes.
pub fn headroom(c: &JvmHeapCondition, vars: &Vars) -> Result<u64, String> {
    let text = scalar_text(&c.headroom, vars)?;
    parse_size(&text).ok_or_else(|| {
        format!("headroom {text:?} is not a size (write e.g. 128MiB, 1G or a number of bytes)")
    })
}

/// The java processes of the facts, each assessed against its limit.
fn assessments(
    c: &JvmHeapCondition,
    vars: &Vars,
    facts: &Facts,
) -> Result<Vec<Assessment>, String> {
    let headroom = headroom(c, vars)?;
    let processes = match facts.processes() {
        Fact::Value(p) => p,
        Fact::Unknown(why) => return Err(format!("java processes: {why}")),
    };
    Ok(processes
        .iter()
        .filter(|p| p.comm == "java")
        .map(|p| assess(p, facts.mem_total(), headroom))
        .collect())
}

/// Evaluates `jvm_heap`: true when some java process's heap plus headroom exceeds
/// its limit; unknown when none does but some could not be assessed.
pub fn heap_verdict(c: &JvmHeapCondition, vars: &Vars, facts: &Facts) -> Verdict {
    let all = match assessments(c, vars, facts) {
        Ok(a) => a,
        Err(why) => return Verdict::unknown(why),
    };
    let mut verdict = Verdict::default();
    let mut fits = 0;
    let mut unlimited = 0;
    for a in &all {
        match a {
            Assessment::Exceeds(b) => verdict.evidence.push(Evidence {
                fact: format!("java pid {} heap vs memory cgroup limit", b.pid),
                observed: b.describe(),
                test: format!(
                    "{} + {} > {}",
                    human(b.heap.bytes),
                    human(b.headroom),
                    human(b.limit)
                ),
            }),
            Assessment::Fits(_) => fits += 1,
            Assessment::Unlimited => unlimited += 1,
            Assessment::Unknown(why) => verdict.unknown.push(why.clone()),
        }
    }
    verdict.holds = if !verdict.evidence.is_empty() {
        verdict.unknown.clear();
        Some(true)
    } else if !verdict.unknown.is_empty() {
        None
    } else {
        verdict.evidence.push(Evidence {
            fact: "java processes".to_owned(),
            observed: format!(
                "{} running: {fits} within their limit, {unlimited} without a memory limit",
                all.len()
            ),
            test: "none whose max heap + headroom exceeds its cgroup limit".to_owned(),
        });
        Some(false)
    };
    verdict
}

fn time_text(t: f64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0.0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

impl OomKill {
    pub fn describe(&self) -> String {
        let opt = |v: Option<u64>| v.map_or_else(|| "?".to_owned(), human);
        format!(
            "pid {} ({}) killed at {} in cgroup {}: limit {}, rss {}",
            self.pid,
            self.comm,
            time_text(self.time),
            self.cgroup.as_deref().unwrap_or("?"),
            opt(self.limit),
            opt(self.rss)
        )
    }
}

/// The kills an `oom_kill` condition counts: its command, within its window.
fn recent_kills<'a>(
    c: &OomKillCondition,
    vars: &Vars,
    facts: &'a Facts,
) -> Result<(Vec<&'a OomKill>, String), String> {
    let within = expand(&c.within, vars)?;
    let window =
        humantime::parse_duration(&within).map_err(|e| format!("bad window {within:?}: {e}"))?;
    let since = facts.collected_at - window.as_secs_f64();
    match facts.oom_kills() {
        Fact::Value(kills) => Ok((
            kills
                .iter()
                .filter(|k| k.comm == c.comm && k.time >= since)
                .collect(),
            within,
        )),
        Fact::Unknown(why) => Err(format!("memcg OOM kills: {why}")),
    }
}

/// Evaluates `oom_kill`: true when the kernel log holds a memcg OOM kill of the
/// command within the window.
pub fn oom_verdict(c: &OomKillCondition, vars: &Vars, facts: &Facts) -> Verdict {
    let (kills, within) = match recent_kills(c, vars, facts) {
        Ok(k) => k,
        Err(why) => return Verdict::unknown(why),
    };
    let mut verdict = Verdict {
        holds: Some(!kills.is_empty()),
        ..Verdict::default()
    };
    if kills.is_empty() {
        verdict.evidence.push(Evidence {
            fact: format!("memcg OOM kills of {}", c.comm),
            observed: "none".to_owned(),
            test: format!("0 within {within}"),
        });
    }
    for k in kills {
        verdict.evidence.push(Evidence {
            fact: format!("memcg OOM kill of {}", c.comm),
            observed: k.describe(),
            test: format!("killed within {within}"),
        });
    }
    verdict
}

/// The memory limits a rule's detection saw (processes over their limit, recent OOM
/// kills) and the largest `jvm_heap` headroom it uses (0 without one).
pub fn limits_seen(detect: &Condition, vars: &Vars, facts: &Facts) -> (Vec<u64>, u64) {
    let mut limits = Vec::new();
    let mut most_headroom = 0;
    detect.walk(&mut |c| match c {
        Condition::JvmHeap(j) => {
            if let Ok(h) = headroom(j, vars) {
                most_headroom = most_headroom.max(h);
            }
            for a in assessments(j, vars, facts).unwrap_or_default() {
                if let Assessment::Exceeds(b) = a {
                    limits.push(b.limit);
                }
            }
        }
        Condition::OomKill(k) => {
            if let Ok((kills, _)) = recent_kills(k, vars, facts) {
                limits.extend(kills.iter().filter_map(|k| k.limit));
            }
        }
        _ => {}
    });
    (limits, most_headroom)
}

/// `-Xmx` for `heap_percent_of_limit`: `percent` of the smallest limit, at most that
/// limit minus the headroom, in whole MiB.
pub fn xmx_for(limits: &[u64], headroom: u64, percent: f64) -> Result<String, String> {
    let Some(limit) = limits.iter().min().copied() else {
        return Err(
            "no cgroup memory limit is known to size the heap from (no java process over its limit, no OOM kill record with a limit); use `jvm_heap_flags` instead".to_owned(),
        );
    };
    if !(percent > 0.0 && percent <= 100.0) {
        return Err(format!(
            "heap_percent_of_limit {percent} is not in (0, 100]"
        ));
    }
    let by_percent = (limit as f64 * percent / 100.0) as u64;
    let heap = by_percent.min(limit.saturating_sub(headroom)) / MIB;
    if heap == 0 {
        return Err(format!(
            "the cgroup limit {} leaves no room for a heap after the headroom {}",
            human(limit),
            human(headroom)
        ));
    }
    Ok(format!("-Xmx{heap}m"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    fn heap(cmdline: &str, env: &[(&str, &str)], limit: Option<u64>, host: u64) -> ReachableHeap {
        let env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        reachable_heap(&HeapFlags::of_process(&args(cmdline), &env), limit, host)
    }

    const HOST: u64 = 24 * GIB;

    #[test]
    fn explicit_heap_wins_and_later_flags_override_earlier_ones() {
        let h = heap(
            "java -Xmx2g -XX:MaxHeapSize=1g -cp x Main",
            &[],
            Some(256 * MIB),
            HOST,
        );
        assert_eq!(h.bytes, GIB);
        assert!(
            h.how.contains("-XX:MaxHeapSize=1g (command line)"),
            "{}",
            h.how
        );
        // JAVA_TOOL_OPTIONS comes first, so the command line overrides it...
        let h = heap(
            "java -Xmx1g Main",
            &[("JAVA_TOOL_OPTIONS", "-Xmx3g")],
            None,
            HOST,
        );
        assert_eq!(h.bytes, GIB);
        // ...and _JAVA_OPTIONS comes last, overriding both.
        let h = heap(
            "java -Xmx1g Main",
            &[
                ("JAVA_TOOL_OPTIONS", "-Xmx3g"),
                ("_JAVA_OPTIONS", "-Xmx512m"),
            ],
            None,
            HOST,
        );
        assert_eq!(h.bytes, 512 * MIB);
        assert!(h.how.contains("_JAVA_OPTIONS"));
        // JDK_JAVA_OPTIONS sits between JAVA_TOOL_OPTIONS and the command line.
        let h = heap(
            "java Main",
            &[
                ("JAVA_TOOL_OPTIONS", "-Xmx3g"),
                ("JDK_JAVA_OPTIONS", "-Xmx2g"),
            ],
            None,
            HOST,
        );
        assert_eq!(h.bytes, 2 * GIB);
    }

    #[test]
    fn program_arguments_are_not_jvm_options() {
        let h = heap("java -jar app.jar -Xmx10g", &[], Some(GIB), HOST);
        assert_eq!(
            h.bytes,
            256 * MIB,
            "25% of 1 GiB: -Xmx10g belongs to the app"
        );
        let h = heap("java -cp -Xmx10g Main", &[], Some(GIB), HOST);
        assert_eq!(h.bytes, 256 * MIB, "-cp takes the next argument");
        assert_eq!(
            launcher_options(&args(
                "java -Dx=1 --add-opens a/b=c -Xmx1g -m mod/Main -Xmx9g"
            )),
            args("-Dx=1 --add-opens -Xmx1g")
        );
    }

    #[test]
    fn ergonomic_heap_from_the_cgroup_limit() {
        let h = heap("java Main", &[], Some(2 * GIB), HOST);
        assert_eq!(h.bytes, 512 * MIB);
        assert!(
            h.how
                .contains("default MaxRAMPercentage=25 of cgroup limit 2 GiB"),
            "{}",
            h.how
        );
        let h = heap("java -XX:MaxRAMPercentage=90.0 Main", &[], Some(GIB), HOST);
        assert_eq!(h.bytes, (GIB as f64 * 0.9) as u64);
        let h = heap("java -XX:MaxRAMFraction=2 Main", &[], Some(GIB), HOST);
        assert_eq!(h.bytes, 512 * MIB);
        // A limit above host memory does not count: host memory is what the JVM sees.
        let h = heap("java Main", &[], Some(64 * GIB), 8 * GIB);
        assert_eq!(h.bytes, 2 * GIB);
    }

    #[test]
    fn small_memory_and_built_in_minimum() {
        // 200 MiB: 50% (MinRAMPercentage) is below 124.8 MiB, so 100 MiB.
        assert_eq!(heap("java M", &[], Some(200 * MIB), HOST).bytes, 100 * MIB);
        // 256 MiB: 25% is 64 MiB, raised to the built-in 124.8 MiB.
        assert_eq!(
            heap("java M", &[], Some(256 * MIB), HOST).bytes,
            DEFAULT_MAX_HEAP
        );
        // -Xms above the ergonomic maximum raises it.
        assert_eq!(heap("java -Xms1g M", &[], Some(GIB), HOST).bytes, GIB);
    }

    #[test]
    fn container_support_off_and_max_ram() {
        let h = heap(
            "java -XX:-UseContainerSupport M",
            &[],
            Some(512 * MIB),
            16 * GIB,
        );
        assert_eq!(h.bytes, 4 * GIB);
        assert!(
            h.how.contains("-XX:-UseContainerSupport (command line)"),
            "{}",
            h.how
        );
        let h = heap(
            "java -XX:-UseContainerSupport -XX:+UseContainerSupport M",
            &[],
            Some(512 * MIB),
            16 * GIB,
        );
        assert_eq!(
            h.bytes,
            128 * MIB,
            "turned back on: 25% of the 512 MiB limit"
        );
        let h = heap("java -XX:MaxRAM=8g M", &[], Some(512 * MIB), HOST);
        assert_eq!(h.bytes, 2 * GIB, "MaxRAM replaces the limit");
        assert_eq!(
            heap("java M", &[], None, 1024 * GIB).bytes,
            32 * GIB,
            "capped at 128 GiB"
        );
    }

    #[test]
    fn splits_options_with_quotes() {
        let got: Vec<String> = split_options(" -Da='x y'  -Xmx1g \"-Db=c d\"")
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        assert_eq!(got, ["-Da=x y", "-Xmx1g", "-Db=c d"]);
        let ranges: Vec<_> = split_options("a  bc").into_iter().map(|(_, r)| r).collect();
        assert_eq!(ranges, [0..1, 3..5]);
    }

    #[test]
    fn replaces_only_heap_flags() {
        let check = |old: &str, new: &str, want: &str| {
            assert_eq!(replace_heap_flags(old, new), want, "{old:?}");
            assert_eq!(replace_heap_flags(want, new), want, "idempotent");
        };
        check(
            "-Dfile.encoding=UTF-8 -Xmx2g -XX:+UseG1GC",
            "-Xmx384m",
            "-Dfile.encoding=UTF-8 -Xmx384m -XX:+UseG1GC",
        );
        check(
            "-XX:MaxRAMPercentage=90 -Da=1 -Xmx2g -XX:MaxRAM=4g",
            "-Xmx384m",
            "-Xmx384m -Da=1",
        );
        check("-Da=1", "-Xmx384m", "-Da=1 -Xmx384m");
        check("", "-XX:MaxRAMPercentage=75.0", "-XX:MaxRAMPercentage=75.0");
        check("-Da='x -Xmx1g'", "-Xmx384m", "-Da='x -Xmx1g' -Xmx384m");
        check(
            "-XX:MaxRAMFraction=2 -XX:MinRAMPercentage=80",
            "-Xmx1g",
            "-Xmx1g",
        );
        assert!(!is_heap_flag("-Xms1g"));
        assert!(!is_heap_flag("-XX:InitialRAMPercentage=10"));
        assert!(is_heap_flag("-XX:MaxRAM=1g"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_jvm_size("1g"), Some(GIB));
        assert_eq!(parse_jvm_size("512M"), Some(512 * MIB));
        assert_eq!(parse_jvm_size("1048576"), Some(MIB));
        assert_eq!(parse_jvm_size("1x"), None);
        assert_eq!(parse_jvm_size("g"), None);
        assert_eq!(parse_jvm_size("99999999999999999999g"), None);
        assert_eq!(parse_size("128MiB"), Some(128 * MIB));
        assert_eq!(parse_size("1.5G"), Some(GIB + 512 * MIB));
        assert_eq!(parse_size("512m"), Some(512 * MIB));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("12 parsecs"), None);
        assert_eq!(parse_size(""), None);
        assert_eq!(human(512 * MIB), "512 MiB");
        assert_eq!(human(GIB + 512 * MIB), "1.5 GiB");
    }
}
