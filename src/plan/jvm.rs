//! Sizing the heap for `heap_percent_of_limit`: the memory limits a rule's detection
//! saw, and the `-Xmx` that fits the smallest of them.
//!
//! Pure: no I/O.

use crate::detect::jvm::{Assessment, assessments, recent_kills};
use crate::domain::jvm::{MIB, human};
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
