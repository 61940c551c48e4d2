//! Sizing the heap for `heap_percent_of_limit`: the memory limits a rule's detection
//! saw, and the `-Xmx` that fits the smallest of them.
//!
//! Pure: no I/O.

use std::collections::BTreeMap;

use crate::detect::jvm::{Assessment, assessments, recent_kills};
use crate::domain::jvm::{HeapFlags, MIB, human, launcher_options, split_options};
use crate::facts::Facts;
use crate::playbook::{Condition, Vars};

/// The memory limits a rule's detection saw (processes over their limit, recent OOM
/// kills) and the largest `jvm_heap` headroom it uses (0 without one).
pub fn limits_seen(detect: &Condition, vars: &Vars, facts: &Facts) -> (Vec<u64>, u64) {
    let mut limits = Vec::new();
    let mut most_headroom = 0;
    detect.walk(&mut |c| match c {
        Condition::JvmHeap(j) => {
            if let Ok(h) = j.headroom_bytes(vars) {
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

/// The pids of the java processes the rule's `jvm_heap` conditions found over their
/// limit.
pub fn pids_over_limit(detect: &Condition, vars: &Vars, facts: &Facts) -> Vec<u32> {
    let mut pids = Vec::new();
    detect.walk(&mut |c| {
        if let Condition::JvmHeap(j) = c {
            for a in assessments(j, vars, facts).unwrap_or_default() {
                if let Assessment::Exceeds(b) = a
                    && !pids.contains(&b.pid)
                {
                    pids.push(b.pid);
                }
            }
        }
    });
    pids
}

/// Where a process's effective max-heap flag comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeapSource {
    /// An options variable: `JAVA_TOOL_OPTIONS`, `JDK_JAVA_OPTIONS`, `_JAVA_OPTIONS`,
    /// or one whose value a start script put on the command line (`JAVA_OPTS`).
    Variable(String),
    /// A flag on the command line that no variable of the environment holds.
    Literal(String),
    /// No heap flag: ergonomics decide.
    Ergonomic,
}

/// Which variable to set so the JVM sees a new heap: the one the winning `-Xmx` /
/// `-XX:MaxHeapSize=` came from. For a flag on the command line, that is the variable
/// whose value appears there as a run of arguments covering the flag (catalina.sh
/// expands `$JAVA_OPTS` and `$CATALINA_OPTS` onto `java`'s command line); setting
/// `JAVA_TOOL_OPTIONS` instead would lose to it.
pub fn heap_source(cmdline: &[String], env: &BTreeMap<String, String>) -> HeapSource {
    let flags = HeapFlags::of_process(cmdline, env);
    let Some(max) = flags.max_heap else {
        return HeapSource::Ergonomic;
    };
    if max.source != "command line" {
        return HeapSource::Variable(max.source.to_owned());
    }
    let options = launcher_options(cmdline);
    let Some(at) = options.iter().rposition(|o| *o == max.flag) else {
        return HeapSource::Literal(max.flag);
    };
    for (name, value) in env.iter().rev() {
        let words: Vec<String> = split_options(value).into_iter().map(|(w, _)| w).collect();
        if words.is_empty() || !words.contains(&max.flag) {
            continue;
        }
        let start_min = (at + 1).saturating_sub(words.len());
        let covers = (start_min..=at).any(|start| {
            options
                .get(start..start + words.len())
                .is_some_and(|run| run == words.as_slice())
        });
        if covers {
            return HeapSource::Variable(name.clone());
        }
    }
    HeapSource::Literal(max.flag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn the_variable_that_wins_is_targeted() {
        let env = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        let catalina =
            args("java -Dz=1 -Xmx1g -Dq=2 -Dc=3 org.apache.catalina.startup.Bootstrap start");
        let e = env(&[
            ("JAVA_OPTS", "-Xmx1g -Dq=2"),
            ("JAVA_TOOL_OPTIONS", "-Xmx2g"),
        ]);
        assert_eq!(
            heap_source(&catalina, &e),
            HeapSource::Variable("JAVA_OPTS".into())
        );
        let e = env(&[("JAVA_OPTS", "-Dq=2"), ("CATALINA_OPTS", "-Xmx1g")]);
        assert_eq!(
            heap_source(&catalina, &e),
            HeapSource::Variable("CATALINA_OPTS".into())
        );
        assert_eq!(
            heap_source(&catalina, &env(&[])),
            HeapSource::Literal("-Xmx1g".into())
        );
        let plain = args("java Main");
        assert_eq!(
            heap_source(&plain, &env(&[("JAVA_TOOL_OPTIONS", "-Xmx1g")])),
            HeapSource::Variable("JAVA_TOOL_OPTIONS".into())
        );
        assert_eq!(
            heap_source(&catalina, &env(&[("_JAVA_OPTIONS", "-Xmx3g")])),
            HeapSource::Variable("_JAVA_OPTIONS".into())
        );
        assert_eq!(heap_source(&plain, &env(&[])), HeapSource::Ergonomic);
    }
}
