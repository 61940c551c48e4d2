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

const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * KIB;
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

/// The JVM options of a `java` command line: from after `argv[0]` up to the main
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
