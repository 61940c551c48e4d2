//! Facts: what the engine knows about the system, gathered by probes.
//!
//! A [`Facts`] snapshot is plain data (serde), so `tune facts --format json` can save
//! it and `tune plan --facts FILE` can replay it offline. Only the facts that the loaded
//! rules reference are gathered: the playbooks are walked into a [`FactRequest`] first.
//! A probe that cannot read something (no privilege, no module loaded) records
//! [`Fact::Unknown`] with the reason; it never guesses.
//!
//! This module is one of the two that touch the system (the other is `apply`).

pub mod kmsg;
pub mod netlink;
pub mod procfs;
pub mod sockdiag;

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::playbook::{Action, Condition, LoadedPlaybook, TcpState, Vars, expand};
use crate::sysctl::SysctlKey;

/// Version of the facts file format.
pub const FACTS_FORMAT: u32 = 1;

/// A measured value, or why it is not known.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Fact<T> {
    Value(T),
    Unknown(String),
}

impl<T> Fact<T> {
    pub fn as_ref(&self) -> Fact<&T> {
        match self {
            Fact::Value(v) => Fact::Value(v),
            Fact::Unknown(r) => Fact::Unknown(r.clone()),
        }
    }

    pub fn from_io(result: std::io::Result<T>) -> Fact<T> {
        match result {
            Ok(v) => Fact::Value(v),
            Err(e) => Fact::Unknown(describe_io_error(&e)),
        }
    }
}

/// A fact nobody asked for.
impl<T> Default for Fact<T> {
    fn default() -> Self {
        Fact::Unknown("not gathered".to_owned())
    }
}

/// A short reason for an unreadable fact.
pub fn describe_io_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "not present on this system".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied (run as root)".to_owned(),
        _ => e.to_string(),
    }
}

/// A line of the kernel log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LogLine {
    /// Wall-clock time, seconds since the Unix epoch (mapped from the boot-relative stamp).
    pub time: f64,
    pub message: String,
}

/// A snapshot of the facts the loaded rules need.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Facts {
    /// Facts file format version.
    pub format: u32,
    /// When the snapshot was taken, seconds since the Unix epoch.
    pub collected_at: f64,
    pub hostname: String,
    /// Sysctl values (normalized whitespace), keyed as the playbooks write them.
    #[serde(default)]
    pub sysctls: BTreeMap<String, Fact<String>>,
    /// Counters of /proc/net/netstat and /proc/net/snmp, keyed `Section.Name`.
    #[serde(default)]
    pub counters: BTreeMap<String, Fact<u64>>,
    /// TCP sockets per state (IPv4 + IPv6), keyed by state name.
    #[serde(default)]
    pub sockets: BTreeMap<String, Fact<u64>>,
    /// Kernel log lines matching each requested pattern, within the longest window asked.
    #[serde(default)]
    pub kernel_log: BTreeMap<String, Fact<Vec<LogLine>>>,
    /// Network interfaces (one rtnetlink dump), when a rule looks at links.
    #[serde(default)]
    pub links: Fact<Vec<netlink::Link>>,
    /// Root qdiscs of every link (one rtnetlink dump), when a rule looks at qdiscs.
    #[serde(default)]
    pub qdiscs: Fact<Vec<netlink::Qdisc>>,
}

impl Facts {
    pub fn sysctl(&self, key: &str) -> Fact<&String> {
        lookup(&self.sysctls, key)
    }
    pub fn counter(&self, name: &str) -> Fact<&u64> {
        lookup(&self.counters, name)
    }
    pub fn sockets_in(&self, state: TcpState) -> Fact<&u64> {
        lookup(&self.sockets, state.name())
    }
    pub fn kernel_log_matches(&self, pattern: &str) -> Fact<&Vec<LogLine>> {
        lookup(&self.kernel_log, pattern)
    }
}

fn lookup<'a, T>(map: &'a BTreeMap<String, Fact<T>>, key: &str) -> Fact<&'a T> {
    match map.get(key) {
        Some(f) => f.as_ref(),
        None => Fact::Unknown("not gathered".to_owned()),
    }
}

/// What the loaded rules reference.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FactRequest {
    pub sysctls: BTreeSet<String>,
    pub counters: BTreeSet<String>,
    pub socket_states: BTreeSet<TcpState>,
    /// Pattern → longest window in seconds.
    pub kernel_log: BTreeMap<String, u64>,
    /// Links are needed (link conditions, `set_mtu`, and qdiscs, which name links).
    pub links: bool,
    /// Root qdiscs are needed.
    pub qdiscs: bool,
}

impl FactRequest {
    /// Walks every rule of every playbook. Keys that do not parse are left out here;
    /// validation has already reported them.
    pub fn for_playbooks(playbooks: &[(&LoadedPlaybook, &Vars)]) -> FactRequest {
        let mut req = FactRequest::default();
        for (pb, vars) in playbooks {
            for rule in &pb.playbook.rules {
                rule.detect.walk(&mut |c| req.add_condition(c, vars));
                for action in &rule.fix {
                    match action {
                        Action::SetSysctl(s) => {
                            req.sysctls.insert(s.key.clone());
                        }
                        Action::SetMtu(_) => req.links = true,
                        Action::DeleteRootQdisc(_) => {
                            req.links = true;
                            req.qdiscs = true;
                        }
                    }
                }
            }
        }
        req
    }

    fn add_condition(&mut self, c: &Condition, vars: &Vars) {
        match c {
            Condition::Sysctl(s) => {
                self.sysctls.insert(s.key.clone());
                if let Some(other) = &s.ratio_of {
                    self.sysctls.insert(other.clone());
                }
            }
            Condition::Counter(cnt) => {
                self.counters.insert(cnt.name.clone());
            }
            Condition::Sockets(s) => {
                self.socket_states.insert(s.state);
            }
            Condition::KernelLog(k) => {
                let secs = expand(&k.within, vars)
                    .ok()
                    .and_then(|w| humantime::parse_duration(&w).ok())
                    .map_or(0, |d| d.as_secs());
                let entry = self.kernel_log.entry(k.pattern.clone()).or_insert(0);
                *entry = (*entry).max(secs);
            }
            Condition::Link(_) => self.links = true,
            Condition::Qdisc(_) => {
                self.links = true;
                self.qdiscs = true;
            }
            Condition::All(_) | Condition::Any(_) | Condition::Not(_) => {}
        }
    }
}

/// Gathers the requested facts from the running system, in the calling thread's
/// network namespace.
pub fn gather(request: &FactRequest) -> Facts {
    let collected_at = now_unix();
    let mut facts = Facts {
        format: FACTS_FORMAT,
        collected_at,
        hostname: hostname(),
        ..Facts::default()
    };
    for key in &request.sysctls {
        let fact = match SysctlKey::parse(key) {
            Ok(k) => Fact::from_io(crate::sysctl::read(&k)),
            Err(e) => Fact::Unknown(e),
        };
        facts.sysctls.insert(key.clone(), fact);
    }
    if !request.counters.is_empty() {
        facts.counters = procfs::read_counters(&request.counters);
    }
    if !request.socket_states.is_empty() {
        facts.sockets = sockdiag::count_tcp_states(&request.socket_states);
    }
    if !request.kernel_log.is_empty() {
        facts.kernel_log = kmsg::gather(&request.kernel_log, collected_at);
    }
    if request.links || request.qdiscs {
        (facts.links, facts.qdiscs) = netlink::gather(request.qdiscs);
    }
    facts
}

pub fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}
