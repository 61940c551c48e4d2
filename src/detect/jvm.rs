//! The `jvm_heap` and `oom_kill` conditions: each java process's reachable heap (as
//! [`crate::domain::jvm`] works it out) against its cgroup memory limit, and memcg OOM
//! kills of a command in the kernel log.
//!
//! Pure: no I/O.

use crate::domain::jvm::{HeapFlags, ReachableHeap, human, reachable_heap};
use crate::facts::{Fact, Facts, OomKill, ProcessInfo};
use crate::finding::Evidence;
use crate::playbook::{JvmHeapCondition, OomKillCondition, Vars, expand};

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

/// The java processes of the facts, each assessed against its limit.
pub fn assessments(
    c: &JvmHeapCondition,
    vars: &Vars,
    facts: &Facts,
) -> Result<Vec<Assessment>, String> {
    let headroom = c.headroom_bytes(vars)?;
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
    crate::domain::time::rfc3339(t)
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
pub fn recent_kills<'a>(
    c: &OomKillCondition,
    vars: &Vars,
    facts: &'a Facts,
) -> Result<(Vec<&'a OomKill>, String), String> {
    let within = expand(&c.within, vars)?;
    let window =
        humantime::parse_duration(&within).map_err(|e| format!("bad window {within:?}: {e}"))?;
    let since = facts.collected_at - window.as_secs_f64();
    match facts.oom_kills() {
        Fact::Value(kills) => {
            let of_comm = kills.iter().filter(|k| k.comm == c.comm);
            if let Some(why) = super::kmsg::clock_unknown(facts)
                && of_comm.clone().next().is_some()
            {
                return Err(format!(
                    "memcg OOM kills of {}: {} in the log, but {why}",
                    c.comm,
                    of_comm.count()
                ));
            }
            Ok((of_comm.filter(|k| k.time >= since).collect(), within))
        }
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
            fact: format!("memcg OOM kills of {}{}", c.comm, super::kmsg::scope(facts)),
            observed: "none".to_owned(),
            test: format!("0 within {within}"),
        });
    }
    for k in kills {
        verdict.evidence.push(Evidence {
            fact: format!("memcg OOM kill of {}{}", c.comm, super::kmsg::scope(facts)),
            observed: k.describe(),
            test: format!("killed within {within}"),
        });
    }
    verdict
}
