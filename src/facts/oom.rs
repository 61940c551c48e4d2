//! Memory-cgroup OOM kills, parsed out of kernel log lines into [`OomKill`] records.
//!
//! The kernel reports one kill over several records, and the wording changed in
//! 4.19/5.x. Older kernels:
//!
//! ```text
//! Task in /docker/0f2b… killed as a result of limit of /docker/0f2b…
//! memory: usage 524288kB, limit 524288kB, failcnt 77
//! Memory cgroup out of memory: Kill process 27281 (java) score 1027 or sacrifice child
//! Killed process 27281 (java) total-vm:4613208kB, anon-rss:517316kB, file-rss:20168kB, shmem-rss:0kB
//! ```
//!
//! Newer kernels:
//!
//! ```text
//! memory: usage 262144kB, limit 262144kB, failcnt 40
//! oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/x,task_memcg=/x,task=java,pid=4242,uid=0
//! Memory cgroup out of memory: Killed process 4242 (java) total-vm:…kB, anon-rss:…kB, file-rss:…kB, shmem-rss:…kB, UID:0 …
//! ```
//!
//! Both become the same record. On 2.6–4.x kernels the process announced ("Kill
//! process A … or sacrifice child") is often not the one killed: the kernel hands
//! the kill to a child, and the `Killed process B` line that follows names the real
//! victim, so pid, command and rss come from that line. Kills by the global OOM
//! killer (`Out of memory: …`, `constraint=CONSTRAINT_NONE`) are not memcg kills and
//! are left out. The parse is a single pass that carries the `memory:` limit and the
//! cgroup forward to the kill they belong to, and forgets them when a new OOM event
//! (`invoked oom-killer`) starts. `tests/fixtures/oom/` holds real excerpts from
//! public issue trackers, one per kernel generation and log format.
//!
//! Pure: no I/O.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::LogLine;

/// One process killed because its memory cgroup hit its limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OomKill {
    /// When, seconds since the Unix epoch (the time of the first line naming the kill).
    pub time: f64,
    pub pid: u32,
    /// The killed task's command name, e.g. `java`.
    pub comm: String,
    /// The killed task's memory cgroup, as the kernel names it.
    #[serde(default)]
    pub cgroup: Option<String>,
    /// The limit that was hit, in bytes.
    #[serde(default)]
    pub limit: Option<u64>,
    /// Resident memory of the task when killed (anon + file + shmem), in bytes.
    #[serde(default)]
    pub rss: Option<u64>,
}

/// The digits (ASCII, as the kernel prints them) at the start of `text`, and the rest.
fn digits(text: &str) -> Option<(&str, &str)> {
    let end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    (end > 0).then(|| text.split_at(end))
}

/// `memory: usage NkB, limit NkB…` → the limit's digits.
fn memory_line(msg: &str) -> Option<&str> {
    let (_, rest) = digits(msg.strip_prefix("memory: usage ")?)?;
    let (limit, rest) = digits(rest.strip_prefix("kB, limit ")?)?;
    rest.starts_with("kB").then_some(limit)
}

/// `Task in CGROUP killed as a result of limit of…` → the cgroup.
fn task_in(msg: &str) -> Option<&str> {
    let rest = msg.strip_prefix("Task in ")?;
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let (cgroup, rest) = rest.split_at(end);
    (!cgroup.is_empty() && rest.starts_with(" killed as a result of limit of")).then_some(cgroup)
}

/// The announcement of 2.6–4.x kernels, `(Memory cgroup out of memory|Out of memory):
/// Kill process PID (COMM) score…` → whether it is a memcg's, the pid's digits and
/// the command (up to the last `) score`).
fn old_kill(msg: &str) -> Option<(bool, &str, &str)> {
    let (memcg, rest) = match msg.strip_prefix("Memory cgroup out of memory") {
        Some(rest) => (true, rest),
        None => (false, msg.strip_prefix("Out of memory")?),
    };
    let (pid, rest) = digits(rest.strip_prefix(": Kill process ")?)?;
    let rest = rest.strip_prefix(" (")?;
    let end = rest.rfind(") score")?;
    Some((memcg, pid, &rest[..end]))
}

/// The victim, on every kernel: `Killed process PID (COMM) total-vm:…`, on RHEL 7
/// `Killed process PID (COMM), UID 0, total-vm:…`, and since 4.19 with the reason
/// first (`Memory cgroup out of memory: ` or `Out of memory: `) → the reason, the
/// pid's digits, the command (up to the first `)` that ends the line or is followed by
/// a space or `, `) and the fields after it.
struct Killed<'a> {
    reason: Option<&'a str>,
    pid: &'a str,
    comm: &'a str,
    fields: Option<&'a str>,
}

fn killed(msg: &str) -> Option<Killed<'_>> {
    let (reason, rest) = ["Memory cgroup out of memory: ", "Out of memory: "]
        .into_iter()
        .find_map(|r| msg.strip_prefix(r).map(|rest| (Some(r), rest)))
        .unwrap_or((None, msg));
    let (pid, rest) = digits(rest.strip_prefix("Killed process ")?)?;
    let rest = rest.strip_prefix(',').unwrap_or(rest);
    let mut rest = rest.strip_prefix(' ')?;
    if let Some((_, after)) = rest.strip_prefix("UID ").and_then(digits)
        && let Some(after) = after.strip_prefix(", ")
    {
        rest = after;
    }
    let inner = rest.strip_prefix('(')?;
    for (i, _) in inner.match_indices(')') {
        let after = &inner[i + 1..];
        let fields = if after.is_empty() {
            None
        } else if let Some(f) = after.strip_prefix(", ").or_else(|| after.strip_prefix(' ')) {
            Some(f)
        } else {
            continue;
        };
        return Some(Killed {
            reason,
            pid,
            comm: &inner[..i],
            fields,
        });
    }
    None
}

/// Sum of the `anon-rss`, `file-rss` and `shmem-rss` fields, in bytes.
fn rss(fields: &str) -> Option<u64> {
    let mut total = None;
    for part in fields.split(',') {
        let part = part.trim();
        for name in ["anon-rss:", "file-rss:", "shmem-rss:"] {
            if let Some(kb) = part
                .strip_prefix(name)
                .and_then(|v| v.strip_suffix("kB"))
                .and_then(|v| v.parse::<u64>().ok())
            {
                // Saturating: the numbers come from a log anyone with a crafted file controls.
                total = Some(
                    total
                        .unwrap_or(0u64)
                        .saturating_add(kb.saturating_mul(1024)),
                );
            }
        }
    }
    total
}

/// What the lines of an OOM event start with (the parsers above read the rest).
const PREFIXES: [&str; 6] = [
    "memory: usage ",
    "Task in ",
    "Memory cgroup out of memory: ",
    "Out of memory: ",
    "oom-kill:",
    "Killed process ",
];

/// What marks the start of an OOM event.
const INVOKED: &str = " invoked oom-killer:";

/// Every string that a line [`parse`] reads holds: the kernel log is searched for
/// these before any line is parsed (`facts::kmsg::Wanted`).
pub const MARKERS: [&str; 7] = [
    INVOKED,
    PREFIXES[0],
    PREFIXES[1],
    PREFIXES[2],
    PREFIXES[3],
    PREFIXES[4],
    PREFIXES[5],
];

/// A cheap test that a line may be one of those parsed above.
fn might_be_oom_line(msg: &str) -> bool {
    PREFIXES.iter().any(|p| msg.starts_with(p))
}

/// What the lines of one OOM event said before its victim was named.
#[derive(Default)]
struct Event {
    limit: Option<u64>,
    cgroup: Option<String>,
    /// The event is a memory cgroup's (`Task in … killed as a result of limit`, a
    /// `Memory cgroup` announcement, `CONSTRAINT_MEMCG`), not the global OOM killer's.
    memcg: bool,
    /// The kill the kernel announced, not yet confirmed by its `Killed process` line.
    announced: Option<OomKill>,
}

/// The memcg OOM kills in these lines (oldest first, as the log holds them).
///
/// The victim (pid, command, rss) is the one the `Killed process` line names: on
/// 2.6–4.x kernels the announced process ("Kill process A … or sacrifice child") may
/// hand the kill to a child, and the child is who dies. The time, memory cgroup and
/// limit are the announcing event's.
pub fn parse(lines: &[LogLine]) -> Vec<OomKill> {
    let mut out = Vec::new();
    let mut event = Event::default();
    for line in lines {
        let msg = line.message.trim_end();
        if msg.contains(INVOKED) {
            out.extend(event.announced.take());
            event = Event::default();
        } else if !might_be_oom_line(msg) {
            // Most of the log: skip the parsers for it.
            continue;
        } else if let Some(limit) = memory_line(msg) {
            event.limit = limit.parse::<u64>().ok().map(|kb| kb.saturating_mul(1024));
        } else if let Some(cgroup) = task_in(msg) {
            event.cgroup = Some(cgroup.to_owned());
            event.memcg = true;
        } else if let Some((memcg, pid, comm)) = old_kill(msg) {
            out.extend(event.announced.take());
            event.memcg = memcg;
            if event.memcg {
                event.announced = pid.parse().ok().map(|pid| OomKill {
                    time: line.time,
                    pid,
                    comm: comm.to_owned(),
                    cgroup: event.cgroup.clone(),
                    limit: event.limit,
                    rss: None,
                });
            }
        } else if let Some(fields) = msg.strip_prefix("oom-kill:") {
            let fields: Vec<(&str, &str)> = fields
                .split(',')
                .filter_map(|f| f.split_once('='))
                .collect();
            let get = |k: &str| fields.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
            out.extend(event.announced.take());
            event.memcg = get("constraint") == Some("CONSTRAINT_MEMCG");
            if event.memcg {
                if let Some(memcg) = get("task_memcg") {
                    event.cgroup = Some(memcg.to_owned());
                }
                event.announced = get("pid").and_then(|p| p.parse().ok()).map(|pid| OomKill {
                    time: line.time,
                    pid,
                    comm: get("task").unwrap_or_default().to_owned(),
                    cgroup: event.cgroup.clone(),
                    limit: event.limit,
                    rss: None,
                });
            }
        } else if let Some(k) = killed(msg) {
            let Ok(pid) = k.pid.parse::<u32>() else {
                continue;
            };
            let rss = k.fields.and_then(rss);
            let global = k.reason.is_some_and(|r| r.starts_with("Out of"));
            let memcg = k.reason.is_some_and(|r| r.starts_with("Memory"));
            match event.announced.take() {
                // The victim is who this line names, whoever was announced.
                Some(announced) => out.push(OomKill {
                    pid,
                    comm: k.comm.to_owned(),
                    rss,
                    ..announced
                }),
                // A memcg event whose announcement is missing (rotated, or a kernel
                // that prints only this line).
                None if memcg || (event.memcg && !global) => out.push(OomKill {
                    time: line.time,
                    pid,
                    comm: k.comm.to_owned(),
                    cgroup: event.cgroup.clone(),
                    limit: event.limit,
                    rss,
                }),
                None => {}
            }
            event = Event::default();
        }
    }
    out.extend(event.announced);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `dmesg` output (`[seconds] message`) as log lines, boot at t=0.
    fn dmesg(text: &str) -> Vec<LogLine> {
        text.lines()
            .filter_map(|l| {
                let (stamp, msg) = l.trim_start().strip_prefix('[')?.split_once("] ")?;
                Some(LogLine {
                    time: stamp.trim().parse().ok()?,
                    message: msg.to_owned(),
                })
            })
            .collect()
    }

    /// The field case (kernel 4.15), lines as `dmesg` printed them.
    const OLD: &str = "\
[193038.106393] java invoked oom-killer: gfp_mask=0x14000c0(GFP_KERNEL), nodemask=(null), order=0, oom_score_adj=0
[193038.106396] java cpuset=0f2b3fcdd2578165ea77266cdc7b1ad43e75877b0ac1889ecda30a78cb78bd53 mems_allowed=0
[193038.106429]  mem_cgroup_out_of_memory+0x4b/0x80
[193038.106468] Task in /docker/0f2b3fcdd2578165ea77266cdc7b1ad43e75877b0ac1889ecda30a78cb78bd53 killed as a result of limit of /docker/0f2b3fcdd2578165ea77266cdc7b1ad43e75877b0ac1889ecda30a78cb78bd53
[193038.106478] memory: usage 524288kB, limit 524288kB, failcnt 77
[193038.106480] memory+swap: usage 0kB, limit 9007199254740988kB, failcnt 0
[193038.106481] kmem: usage 3708kB, limit 9007199254740988kB, failcnt 0
[193038.106571] [27281]     0 27281  1153302   134371  1466368        0             0 java
[193038.106574] Memory cgroup out of memory: Kill process 27281 (java) score 1027 or sacrifice child
[193038.148334] Killed process 27281 (java) total-vm:4613208kB, anon-rss:517316kB, file-rss:20168kB, shmem-rss:0kB
[193039.607503] oom_reaper: reaped process 27281 (java), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB
";

    /// The same kill as a 5.x/6.x kernel reports it.
    const NEW: &str = "\
[193038.106393] java invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0
[193038.106478] memory: usage 524288kB, limit 524288kB, failcnt 77
[193038.106481] swap: usage 0kB, limit 9007199254740988kB, failcnt 0
[193038.106574] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/docker/0f2b3fcdd2578165ea77266cdc7b1ad43e75877b0ac1889ecda30a78cb78bd53,task_memcg=/docker/0f2b3fcdd2578165ea77266cdc7b1ad43e75877b0ac1889ecda30a78cb78bd53,task=java,pid=27281,uid=0
[193038.148334] Memory cgroup out of memory: Killed process 27281 (java) total-vm:4613208kB, anon-rss:517316kB, file-rss:20168kB, shmem-rss:0kB, UID:0 pgtables:1432kB oom_score_adj:0
[193039.607503] oom_reaper: reaped process 27281 (java), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB
";

    fn field_case() -> OomKill {
        OomKill {
            time: 193038.106574,
            pid: 27281,
            comm: "java".into(),
            cgroup: Some(
                "/docker/0f2b3fcdd2578165ea77266cdc7b1ad43e75877b0ac1889ecda30a78cb78bd53".into(),
            ),
            limit: Some(524288 * 1024),
            rss: Some((517316 + 20168) * 1024),
        }
    }

    #[test]
    fn both_formats_give_the_same_record() {
        assert_eq!(parse(&dmesg(OLD)), vec![field_case()]);
        assert_eq!(parse(&dmesg(NEW)), vec![field_case()]);
    }

    #[test]
    fn absurd_sizes_saturate_instead_of_overflowing() {
        // Found by fuzz/ (regression input fuzz/regressions/kmsg/): kB * 1024 overflowed.
        let text = "\
[1.0] java invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0
[1.1] memory: usage 18446744073709551615kB, limit 18446744073709551615kB, failcnt 1
[1.2] Memory cgroup out of memory: Killed process 7 (java) total-vm:1kB, anon-rss:18446744073709551615kB, file-rss:18446744073709551615kB, shmem-rss:0kB
";
        let kills = parse(&dmesg(text));
        assert!(
            kills.iter().all(|k| k.rss.is_none_or(|r| r == u64::MAX)),
            "{kills:?}"
        );
    }

    #[test]
    fn the_prefix_parsers_read_what_the_regexes_did() {
        assert_eq!(
            memory_line("memory: usage 5kB, limit 7kB, failcnt 1"),
            Some("7")
        );
        assert_eq!(memory_line("memory: usage kB, limit 7kB"), None);
        assert_eq!(memory_line("memory: usage 5kB, limit 7"), None);
        assert_eq!(
            task_in("Task in /a/b killed as a result of limit of /a"),
            Some("/a/b")
        );
        assert_eq!(
            task_in("Task in /a b killed as a result of limit of /a"),
            None
        );
        assert_eq!(
            old_kill(
                "Memory cgroup out of memory: Kill process 9 (a) score) score 1 or sacrifice child"
            ),
            Some((true, "9", "a) score"))
        );
        assert_eq!(
            old_kill("Out of memory: Kill process 9 (a) score 1"),
            Some((false, "9", "a"))
        );
        assert_eq!(old_kill("Out of memory: Kill process x (a) score 1"), None);
        let k = killed("Killed process 27281 (java), UID 0, total-vm:1kB, anon-rss:2kB").unwrap();
        assert_eq!((k.reason, k.pid, k.comm), (None, "27281", "java"));
        assert_eq!(k.fields, Some("UID 0, total-vm:1kB, anon-rss:2kB"));
        let k = killed("Killed process 7, UID 0, (java) total-vm:1kB").unwrap();
        assert_eq!((k.comm, k.fields), ("java", Some("total-vm:1kB")));
        let k = killed("Out of memory: Killed process 7 (a (b)c) d)").unwrap();
        assert_eq!(
            (k.reason, k.comm, k.fields),
            (Some("Out of memory: "), "a (b)c", Some("d)"))
        );
        let k = killed("Killed process 7 (a) b)").unwrap();
        assert_eq!((k.comm, k.fields), ("a", Some("b)")));
        assert_eq!(killed("Killed process 7 (a)b)").unwrap().comm, "a)b");
        assert!(killed("Killed process 7 (java").is_none());
        assert!(killed("Killed process (java) x").is_none());
    }

    /// The parsers agree with the regexes they replaced, on every line of the OOM
    /// fixtures and on crafted ones.
    #[test]
    fn the_prefix_parsers_agree_with_the_old_regexes() {
        // tune's regex has no Unicode tables: byte regexes, ASCII classes, as
        // `kernel_log` patterns are compiled (the lines here are ASCII).
        let re = |p: &str| crate::domain::log_pattern::compile(p).unwrap();
        let memory = re(r"^memory: usage (\d+)kB, limit (\d+)kB");
        let task = re(r"^Task in (\S+) killed as a result of limit of");
        let old =
            re(r"^(Memory cgroup out of memory|Out of memory): Kill process (\d+) \((.*)\) score");
        let kill = re(
            r"^(Memory cgroup out of memory: |Out of memory: )?Killed process (\d+),? (?:UID \d+, )?\((.*?)\)(?:,? (.*))?$",
        );
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/oom");
        let mut lines: Vec<String> = [
            "Killed process 1 (a) b) c",
            "Killed process 1 (a),b",
            "Killed process 1, (a), x",
            "Killed process 1 UID 2, (a)",
            "Killed process 1 (UID 2, (a)",
            "Out of memory: Kill process 1 (a) score",
            "Out of memory: Kill process 1 (a)) scores) score 9",
            "memory: usage 1kB, limit 2kBx",
            "Task in  killed as a result of limit of",
        ]
        .map(str::to_owned)
        .to_vec();
        for entry in std::fs::read_dir(root).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for line in text.lines() {
                let msg = line.split_once("] ").map_or(line, |(_, m)| m);
                let msg = msg.split_once("kernel: ").map_or(msg, |(_, m)| m);
                lines.push(msg.trim_end().to_owned());
            }
        }
        fn text(m: regex::bytes::Match<'_>) -> &str {
            std::str::from_utf8(m.as_bytes()).unwrap()
        }
        let mut parsed = 0;
        for msg in &lines {
            let msg = msg.as_str();
            let bytes = msg.as_bytes();
            let m = memory.captures(bytes).map(|c| text(c.get(2).unwrap()));
            assert_eq!(memory_line(msg), m, "{msg:?}");
            let t = task.captures(bytes).map(|c| text(c.get(1).unwrap()));
            assert_eq!(task_in(msg), t, "{msg:?}");
            let o = old.captures(bytes).map(|c| {
                (
                    c[1].starts_with(b"Memory cgroup"),
                    text(c.get(2).unwrap()),
                    text(c.get(3).unwrap()),
                )
            });
            assert_eq!(old_kill(msg), o, "{msg:?}");
            let k = kill.captures(bytes).map(|c| {
                let s = |i| c.get(i).map(text);
                (s(1), s(2).unwrap(), s(3).unwrap(), s(4))
            });
            let mine = killed(msg).map(|k| (k.reason, k.pid, k.comm, k.fields));
            assert_eq!(mine, k, "{msg:?}");
            parsed += usize::from(m.is_some() || t.is_some() || o.is_some() || k.is_some());
        }
        assert!(parsed > 20, "only {parsed} lines parsed");
    }

    #[test]
    fn global_oom_kills_are_not_memcg_kills() {
        let global = "\
[10.0] stress invoked oom-killer: gfp_mask=0x100cca(GFP_HIGHUSER_MOVABLE), order=0
[10.1] Out of memory: Kill process 99 (stress) score 900 or sacrifice child
[10.2] Killed process 99 (stress) total-vm:100kB, anon-rss:50kB, file-rss:0kB, shmem-rss:0kB
[11.0] oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/,task=stress,pid=100,uid=0
[11.1] Out of memory: Killed process 100 (stress) total-vm:100kB, anon-rss:50kB, file-rss:0kB, shmem-rss:0kB, UID:0
";
        assert_eq!(parse(&dmesg(global)), vec![]);
    }

    #[test]
    fn several_kills_keep_their_own_limits() {
        let text = "\
[1.0] a invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0
[1.1] memory: usage 262144kB, limit 262144kB, failcnt 1
[1.2] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/a,task_memcg=/a/b,task=java,pid=1,uid=0
[1.3] Memory cgroup out of memory: Killed process 1 (java) total-vm:10kB, anon-rss:4kB, file-rss:4kB, shmem-rss:0kB, UID:0 pgtables:1kB oom_score_adj:0
[2.0] b invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0
[2.2] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/c,task_memcg=/c,task=python3,pid=2,uid=0
";
        let kills = parse(&dmesg(text));
        assert_eq!(kills.len(), 2);
        assert_eq!(kills[0].limit, Some(256 * 1024 * 1024));
        assert_eq!(kills[0].cgroup.as_deref(), Some("/a/b"));
        assert_eq!(kills[0].rss, Some(8 * 1024));
        assert_eq!(kills[1].comm, "python3");
        assert_eq!(
            kills[1].limit, None,
            "the earlier event's limit is not carried over"
        );
        assert_eq!(kills[1].rss, None, "no Killed line (log rotated)");
    }

    #[test]
    fn a_lone_memcg_killed_line_is_a_record_and_garbage_is_ignored() {
        let text = "\
[5.0] Memory cgroup out of memory: Killed process 7 (java (x)) total-vm:1kB, anon-rss:1kB, file-rss:1kB, shmem-rss:1kB
[6.0] Killed process notanumber (java) total-vm:1kB
[6.1] oom-kill:garbage
[6.2] memory: usage 1kB, limit lots
";
        let kills = parse(&dmesg(text));
        assert_eq!(kills.len(), 1);
        assert_eq!(kills[0].comm, "java (x)");
        assert_eq!(kills[0].rss, Some(3 * 1024));
    }
}
