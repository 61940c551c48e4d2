//! Where the kernel log comes from and what it applies to.
//!
//! The kernel log is the whole host's: a network namespace has no log of its own. So
//! facts read with `--netns` / `--netns-pid` record that the log is host-wide (and
//! detection labels its evidence so), and for `--netns-pid` of a container only the OOM
//! kills in that process's memory cgroup (or below it) are kept. The log may also be
//! a saved file (`--kernel-log`), whose times may not be wall-clock times.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::kmsg::Wanted;
use super::kmsg_file::LogFile;
use std::collections::BTreeMap;

use super::{Fact, LogLine, OomKill, describe_io_error};

/// How to gather, beyond what the rules ask for.
#[derive(Debug, Clone, Default)]
pub struct GatherOptions {
    /// A saved kernel log to read instead of the live one.
    pub kernel_log: Option<(String, LogFile)>,
    /// Overrides the playbooks' counter sampling windows.
    pub sample_window: Option<Duration>,
    /// The facts are read in this network namespace (its description), not tune's own.
    pub netns: Option<String>,
    /// Keep only OOM kills in this memory cgroup or below (a container's, for
    /// `--netns-pid`).
    pub memcg: Option<String>,
    /// Counter samples to use instead of sampling (a saved plan re-derived at apply).
    pub recorded_samples: Option<BTreeMap<String, Fact<super::counters::CounterSample>>>,
    /// `--root`: configuration files named by the playbooks (env files) are read under
    /// it (`None`: the host's `/`).
    pub root: Option<std::path::PathBuf>,
    /// The TCP listeners seen while those counters were sampled, to use instead of
    /// reading them again (a saved plan re-derived at apply).
    pub recorded_listeners: Option<Fact<Vec<super::sockets::Listener>>>,
    /// The per-CPU tables read over the window, to use instead of reading them again
    /// (a saved plan re-derived at apply).
    pub recorded_tables: Option<super::cpu_tables::Recorded>,
    /// The link drop counters read twice when the plan was made, to use instead of
    /// sampling again (a saved plan re-derived at apply).
    pub recorded_rx_drops: Option<Fact<super::rx_drops::RxDropSamples>>,
}

/// Where the kernel-log facts come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KernelLogOrigin {
    /// `live` (this host's ring buffer), or the saved file and its format.
    pub source: String,
    /// Why the lines' times are not wall-clock times; conditions with a window are
    /// then unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_unknown: Option<String>,
    /// The other facts were read in this network namespace; the kernel log is the
    /// whole host's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_wide_for: Option<String>,
    /// Only OOM kills in this memory cgroup (or below it) were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memcg: Option<String>,
}

impl GatherOptions {
    /// The kernel log's wanted lines and where they come from.
    pub fn read_log(&self, wanted: &Wanted) -> (Result<Vec<LogLine>, String>, KernelLogOrigin) {
        let (lines, source, clock_unknown) = match &self.kernel_log {
            Some((path, saved)) => (
                saved.lines(wanted),
                format!("{path} ({})", saved.format),
                saved.clock_unknown.clone(),
            ),
            None => (super::kmsg::read_lines(wanted), "live".to_owned(), None),
        };
        let origin = KernelLogOrigin {
            source,
            clock_unknown,
            host_wide_for: self.netns.clone(),
            memcg: self.memcg.clone(),
        };
        (lines, origin)
    }
}

/// The kills in `memcg` or below it (all of them when `memcg` is `None` or `/`).
pub fn kills_in(kills: Vec<OomKill>, memcg: Option<&str>) -> Vec<OomKill> {
    let Some(memcg) = memcg
        .map(|m| m.trim_end_matches('/'))
        .filter(|m| !m.is_empty())
    else {
        return kills;
    };
    kills
        .into_iter()
        .filter(|k| {
            k.cgroup.as_deref().is_some_and(|c| {
                c == memcg || c.strip_prefix(memcg).is_some_and(|r| r.starts_with('/'))
            })
        })
        .collect()
}

/// The memory cgroup of a process, from `/proc/PID/cgroup` (the v1 `memory`
/// controller's path, else the v2 path).
pub fn memcg_of_pid(pid: u32) -> Result<String, String> {
    let path = format!("/proc/{pid}/cgroup");
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("{path}: {}", describe_io_error(&e)))?;
    let (v1, v2) = super::processes::parse_proc_cgroup(&text);
    v1.or(v2)
        .ok_or_else(|| format!("{path} names no memory cgroup"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kill(pid: u32, cgroup: Option<&str>) -> OomKill {
        OomKill {
            time: 0.0,
            pid,
            comm: "java".into(),
            cgroup: cgroup.map(str::to_owned),
            limit: None,
            rss: None,
        }
    }

    #[test]
    fn keeps_kills_in_the_cgroup_and_below() {
        let kills = vec![
            kill(1, Some("/docker/abc")),
            kill(2, Some("/docker/abc/child")),
            kill(3, Some("/docker/abcdef")),
            kill(4, None),
        ];
        let pids = |m: Option<&str>| -> Vec<u32> {
            kills_in(kills.clone(), m).iter().map(|k| k.pid).collect()
        };
        assert_eq!(pids(Some("/docker/abc")), vec![1, 2]);
        assert_eq!(pids(Some("/docker/abc/")), vec![1, 2]);
        assert_eq!(pids(Some("/")), vec![1, 2, 3, 4]);
        assert_eq!(pids(None), vec![1, 2, 3, 4]);
    }

    #[test]
    fn reads_own_memcg() {
        let mine = memcg_of_pid(std::process::id());
        assert!(mine.is_ok_and(|m| m.starts_with('/')));
        assert!(memcg_of_pid(u32::MAX - 1).is_err());
    }
}
