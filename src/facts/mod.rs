//! Facts: what the engine knows about the system, gathered by probes.
//!
//! A [`Facts`] snapshot is plain data (serde), so `tune facts --format json` can save
//! it and `tune plan --facts FILE` can replay it offline. Only the facts that the loaded
//! rules reference are gathered: the playbooks are walked into a [`FactRequest`] first.
//! A probe that cannot read something (no privilege, no module loaded) records
//! [`Fact::Unknown`] with the reason; it never guesses.
//!
//! This module is one of the two that touch the system (the other is `apply`).

pub mod compact;
pub mod config;
pub mod conntrack;
pub mod counters;
pub mod cpu_tables;
pub mod envfile;
pub mod kmsg;
pub mod kmsg_file;
pub mod net;
pub mod networkd;
pub mod oom;
pub mod processes;
pub mod procfs;
pub mod ring;
pub mod rx_drops;
pub mod scope;
pub mod sockets;
pub mod softirq;
pub mod softnet;
pub mod sysctl_d;
pub mod units;
pub mod window;

pub use counters::CounterSample;
pub use oom::OomKill;
pub use processes::{MemoryCgroup, ProcessInfo};
pub use scope::{GatherOptions, KernelLogOrigin};

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::kernel::sysctl::SysctlKey;
use crate::playbook::{Action, Condition, CounterMeasure, LoadedPlaybook, TcpState, Vars, expand};

/// Version of the facts file format.
pub const FACTS_FORMAT: u32 = 1;

/// The reason recorded for a fact that no loaded rule asked for.
pub const NOT_GATHERED: &str = "not gathered";

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
        Fact::Unknown(NOT_GATHERED.to_owned())
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
    /// Counters read twice, a window apart (for `measure: growth`), keyed `Section.Name`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counter_samples: BTreeMap<String, Fact<CounterSample>>,
    /// TCP sockets per state (IPv4 + IPv6), keyed by state name.
    #[serde(default)]
    pub sockets: BTreeMap<String, Fact<u64>>,
    /// Kernel log lines matching each requested pattern, within the longest window asked.
    #[serde(default)]
    pub kernel_log: BTreeMap<String, Fact<Vec<LogLine>>>,
    /// Where the kernel log was read (live or a saved file), and whether it is the
    /// host's log seen from a network namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_log_origin: Option<KernelLogOrigin>,
    /// Processes picked by command name (for `jvm_heap`: `java`), with their JVM
    /// option variables and memory cgroup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<Fact<Vec<ProcessInfo>>>,
    /// MemTotal of /proc/meminfo, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_total: Option<Fact<u64>>,
    /// Memory-cgroup OOM kills in the kernel log (all the ring buffer holds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_kills: Option<Fact<Vec<OomKill>>>,
    /// Environment files named by fixes: their exact content, `null` when absent.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env_files: BTreeMap<String, Fact<Option<String>>>,
    /// Network interfaces (one rtnetlink dump), when a rule looks at links.
    #[serde(default)]
    pub links: Fact<Vec<net::Link>>,
    /// Root qdiscs of every link (one rtnetlink dump), when a rule looks at qdiscs.
    #[serde(default)]
    pub qdiscs: Fact<Vec<net::Qdisc>>,
    /// NIC ring sizes of the links a `set_rx_ring` fix names (ethtool netlink);
    /// `null` for a link whose driver has no ring parameters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rings: BTreeMap<String, Fact<Option<ring::RingSizes>>>,
    /// Every link's receive-drop counters read twice, a window apart, when a rule
    /// looks at their growth (`rx_drops`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rx_drop_samples: Option<Fact<rx_drops::RxDropSamples>>,
    /// TCP ports with a LISTEN socket (IPv4 + IPv6, sock_diag), sorted, when a fix
    /// widens `net.ipv4.ip_local_port_range`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen_ports: Option<Fact<Vec<u16>>>,
    /// TCP LISTEN sockets with their accept queues and owners (sock_diag, /proc/PID/fd),
    /// when a rule looks at listen queues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listeners: Option<Fact<Vec<sockets::Listener>>>,
    /// Configuration files under `--root` (sysctl.d, modules-load.d, link managers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<config::ConfigFacts>,
    /// /proc/net/softnet_stat, one row per CPU (host-wide, not per namespace), read
    /// twice a window apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub softnet: Option<Fact<cpu_tables::SoftnetReadings>>,
    /// /proc/net/stat/nf_conntrack, one row per CPU (this namespace's counters), read
    /// twice a window apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conntrack_stat: Option<Fact<cpu_tables::ConntrackReadings>>,
    /// Softirq time per CPU (/proc/stat, /proc/softirqs), host-wide, read twice a
    /// window apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub softirq_cpus: Option<Fact<cpu_tables::SoftirqReadings>>,
}

impl Facts {
    pub fn sysctl(&self, key: &str) -> Fact<&String> {
        lookup(&self.sysctls, key)
    }
    pub fn counter(&self, name: &str) -> Fact<&u64> {
        lookup(&self.counters, name)
    }
    pub fn counter_sample(&self, name: &str) -> Fact<&CounterSample> {
        lookup(&self.counter_samples, name)
    }
    pub fn sockets_in(&self, state: TcpState) -> Fact<&u64> {
        lookup(&self.sockets, state.name())
    }
    pub fn kernel_log_matches(&self, pattern: &str) -> Fact<&Vec<LogLine>> {
        lookup(&self.kernel_log, pattern)
    }
}

impl Facts {
    pub fn processes(&self) -> Fact<&Vec<ProcessInfo>> {
        gathered(&self.processes)
    }
    pub fn mem_total(&self) -> Fact<&u64> {
        gathered(&self.mem_total)
    }
    pub fn oom_kills(&self) -> Fact<&Vec<OomKill>> {
        gathered(&self.oom_kills)
    }
    pub fn listeners(&self) -> Fact<&Vec<sockets::Listener>> {
        gathered(&self.listeners)
    }
    pub fn softnet(&self) -> Fact<&cpu_tables::SoftnetReadings> {
        gathered(&self.softnet)
    }
    pub fn conntrack_stat(&self) -> Fact<&cpu_tables::ConntrackReadings> {
        gathered(&self.conntrack_stat)
    }
    pub fn softirq_cpus(&self) -> Fact<&cpu_tables::SoftirqReadings> {
        gathered(&self.softirq_cpus)
    }
    pub fn env_file(&self, path: &str) -> Fact<&Option<String>> {
        lookup(&self.env_files, path)
    }
}

fn gathered<T>(fact: &Option<Fact<T>>) -> Fact<&T> {
    match fact {
        Some(f) => f.as_ref(),
        None => Fact::Unknown(NOT_GATHERED.to_owned()),
    }
}

fn lookup<'a, T>(map: &'a BTreeMap<String, Fact<T>>, key: &str) -> Fact<&'a T> {
    match map.get(key) {
        Some(f) => f.as_ref(),
        None => Fact::Unknown(NOT_GATHERED.to_owned()),
    }
}

/// What the loaded rules reference.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FactRequest {
    pub sysctls: BTreeSet<String>,
    pub counters: BTreeSet<String>,
    /// Counters to read twice (`measure: growth`).
    pub counter_growth: BTreeMap<String, counters::Sampling>,
    pub socket_states: BTreeSet<TcpState>,
    /// Pattern → longest window in seconds.
    pub kernel_log: BTreeMap<String, u64>,
    /// Command names of processes to read.
    pub process_comms: BTreeSet<String>,
    pub mem_total: bool,
    pub oom_kills: bool,
    /// Environment files named by `set_env` fixes (variables expanded).
    pub env_files: BTreeSet<String>,
    /// Links are needed (link conditions, `set_mtu`, and qdiscs, which name links).
    pub links: bool,
    /// Root qdiscs are needed.
    pub qdiscs: bool,
    /// Link name globs whose ring sizes are needed (`set_rx_ring`).
    pub rings: ring::Wanted,
    /// Link drop counters to read twice (`rx_drops`).
    pub rx_drops: rx_drops::Wanted,
    /// The ports of LISTEN sockets are needed (a fix widens the ephemeral port range).
    pub listen_ports: bool,
    /// LISTEN sockets with their accept queues and owners are needed.
    pub listeners: bool,
    /// /proc/net/softnet_stat is needed, read twice this far apart.
    pub softnet: Option<window::Want>,
    /// /proc/net/stat/nf_conntrack is needed, read twice.
    pub conntrack_stat: Option<window::Want>,
    /// Softirq time per CPU is needed, read twice.
    pub softirq_cpus: Option<window::Want>,
}

impl FactRequest {
    /// Walks every rule of every playbook. Keys that do not parse are left out here;
    /// validation has already reported them.
    pub fn for_playbooks(playbooks: &[(&LoadedPlaybook, &Vars)]) -> FactRequest {
        FactRequest::for_rules(playbooks, |_, _| true)
    }

    /// The facts of the rules `wanted(playbook name, rule id)` selects.
    pub fn for_rules(
        playbooks: &[(&LoadedPlaybook, &Vars)],
        wanted: impl Fn(&str, &str) -> bool,
    ) -> FactRequest {
        let mut req = FactRequest::default();
        for (pb, vars) in playbooks {
            for rule in &pb.playbook.rules {
                if !wanted(&pb.playbook.name, &rule.id) {
                    continue;
                }
                rule.detect.walk(&mut |c| req.add_condition(c, vars));
                for action in &rule.fix {
                    match action {
                        Action::SetSysctl(s) => {
                            req.sysctls.insert(s.key.clone());
                            if sockets::widens_port_range(s) {
                                req.listen_ports = true;
                                req.sysctls.insert(sockets::RESERVED_PORTS.to_owned());
                            }
                        }
                        Action::SetEnv(e) => {
                            if let Ok(file) = expand(&e.file, vars)
                                && !file.is_empty()
                            {
                                req.env_files.insert(file);
                            }
                        }
                        Action::SetMtu(_) => req.links = true,
                        Action::DeleteRootQdisc(_) => {
                            req.links = true;
                            req.qdiscs = true;
                        }
                        Action::SetRxRing(r) => {
                            req.links = true;
                            // With an `rx_drops` condition, the rings read are those
                            // of the links whose drops grew.
                            if !rx_drops::chooses_targets(&rule.detect)
                                && let Ok(glob) = expand(&r.link, vars)
                                && !glob.is_empty()
                            {
                                req.rings.insert(glob);
                            }
                        }
                    }
                }
            }
        }
        req
    }

    /// Splits off the facts that cost a kernel-wide walk (sock_diag dumps, the whole
    /// kernel log), so that `tune plan` can first decide what it can without them.
    pub fn split_costly(mut self) -> (FactRequest, FactRequest) {
        let costly = FactRequest {
            counter_growth: std::mem::take(&mut self.counter_growth),
            rx_drops: std::mem::take(&mut self.rx_drops),
            socket_states: std::mem::take(&mut self.socket_states),
            kernel_log: std::mem::take(&mut self.kernel_log),
            process_comms: std::mem::take(&mut self.process_comms),
            oom_kills: std::mem::take(&mut self.oom_kills),
            listen_ports: std::mem::take(&mut self.listen_ports),
            listeners: std::mem::take(&mut self.listeners),
            // Sampled over the window, like the counters: read only for rules the
            // cheap facts leave open, and their window overlaps the counters'.
            softnet: self.softnet.take(),
            conntrack_stat: self.conntrack_stat.take(),
            softirq_cpus: self.softirq_cpus.take(),
            ..FactRequest::default()
        };
        (self, costly)
    }

    /// Splits off the LISTEN sockets (a sock_diag dump, then a /proc walk for their
    /// owners): `listen_queue` only matters once a rule's overflow signals (counters
    /// that grew, kernel-log lines) are in, so `tune plan` reads them last.
    pub fn split_listeners(mut self) -> (FactRequest, FactRequest) {
        let listeners = FactRequest {
            listeners: std::mem::take(&mut self.listeners),
            ..FactRequest::default()
        };
        (self, listeners)
    }

    pub fn is_empty(&self) -> bool {
        *self == FactRequest::default()
    }

    /// The part of `self` that `other` also asks for.
    pub fn intersect(&self, other: &FactRequest) -> FactRequest {
        FactRequest {
            sysctls: self.sysctls.intersection(&other.sysctls).cloned().collect(),
            counters: self
                .counters
                .intersection(&other.counters)
                .cloned()
                .collect(),
            counter_growth: self
                .counter_growth
                .iter()
                .filter(|(k, _)| other.counter_growth.contains_key(*k))
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            socket_states: self
                .socket_states
                .intersection(&other.socket_states)
                .copied()
                .collect(),
            kernel_log: self
                .kernel_log
                .iter()
                .filter(|(k, _)| other.kernel_log.contains_key(*k))
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            process_comms: self
                .process_comms
                .intersection(&other.process_comms)
                .cloned()
                .collect(),
            mem_total: self.mem_total && other.mem_total,
            oom_kills: self.oom_kills && other.oom_kills,
            env_files: self
                .env_files
                .intersection(&other.env_files)
                .cloned()
                .collect(),
            links: self.links && other.links,
            qdiscs: self.qdiscs && other.qdiscs,
            rings: self.rings.intersection(&other.rings).cloned().collect(),
            rx_drops: self
                .rx_drops
                .intersection(&other.rx_drops)
                .cloned()
                .collect(),
            listen_ports: self.listen_ports && other.listen_ports,
            listeners: self.listeners && other.listeners,
            softnet: self.softnet.clone().filter(|_| other.softnet.is_some()),
            conntrack_stat: self
                .conntrack_stat
                .clone()
                .filter(|_| other.conntrack_stat.is_some()),
            softirq_cpus: self
                .softirq_cpus
                .clone()
                .filter(|_| other.softirq_cpus.is_some()),
        }
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
                if cnt.measure == CounterMeasure::Growth {
                    let window = sample_window(cnt.window.as_ref(), vars);
                    let wanted = counters::Sampling {
                        window,
                        min_growth: counters::min_growth(&cnt.compare(), vars),
                    };
                    self.counter_growth
                        .entry(cnt.name.clone())
                        .and_modify(|s| *s = s.merge(wanted))
                        .or_insert(wanted);
                }
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
            Condition::JvmHeap(_) => {
                self.process_comms.insert("java".to_owned());
                self.mem_total = true;
            }
            Condition::OomKill(_) => self.oom_kills = true,
            Condition::Link(_) => self.links = true,
            Condition::Qdisc(_) => {
                self.links = true;
                self.qdiscs = true;
            }
            Condition::Softnet(s) => window::Want::add(
                &mut self.softnet,
                sample_window(s.window.as_ref(), vars),
                s.stat.name(),
                counters::min_growth(&s.compare(), vars),
            ),
            Condition::ConntrackStat(c) => window::Want::add(
                &mut self.conntrack_stat,
                sample_window(c.window.as_ref(), vars),
                &c.name,
                counters::min_growth(&c.compare(), vars),
            ),
            // A share over the window is not bounded by the since-boot share: always
            // sampled (min growth 0).
            Condition::SoftirqCpu(s) => window::Want::add(
                &mut self.softirq_cpus,
                sample_window(s.window.as_ref(), vars),
                "softirq",
                0,
            ),
            Condition::RxDrops(d) => {
                self.rx_drops.insert(rx_drops::want(d, vars));
            }
            Condition::ListenQueue(_) => {
                self.listeners = true;
                self.sysctls.insert(sockets::SOMAXCONN.to_owned());
            }
            Condition::All(_) | Condition::Any(_) | Condition::Not(_) => {}
        }
    }
}

/// A condition's sampling `window` (checked when loading), or the default.
pub(super) fn sample_window(window: Option<&String>, vars: &Vars) -> std::time::Duration {
    window
        .and_then(|w| expand(w, vars).ok())
        .and_then(|w| humantime::parse_duration(&w).ok())
        .unwrap_or(counters::DEFAULT_WINDOW)
}

/// Gathers the requested facts from the running system, in the calling thread's
/// network namespace.
pub fn gather(request: &FactRequest) -> Facts {
    gather_with(request, &GatherOptions::default())
}

/// [`gather`], with a saved kernel log, a sampling window, or a namespace's scope.
pub fn gather_with(request: &FactRequest, options: &GatherOptions) -> Facts {
    gather_first(request, options, &BTreeSet::new()).0
}

/// [`gather_with`], also reading the counters of `also` that sit in the counter files
/// the request reads anyway (no extra read), for a later [`gather_more`] to take as
/// its first counter readings.
pub fn gather_first(
    request: &FactRequest,
    options: &GatherOptions,
    also: &BTreeSet<String>,
) -> (Facts, counters::Readings) {
    let (facts, readings) = gather_parts(request, options, also, None);
    let facts = Facts {
        hostname: hostname(),
        ..facts
    };
    (facts, readings)
}

/// Facts to [`Facts::merge`] into a snapshot: the host's name is not read again (it is
/// the snapshot's). The first readings of sampled counters come from `prefetched`
/// when it holds them all (the window then starts when it was read).
pub fn gather_more(
    request: &FactRequest,
    options: &GatherOptions,
    prefetched: Option<&counters::Readings>,
) -> Facts {
    gather_parts(request, options, &BTreeSet::new(), prefetched).0
}

fn gather_parts(
    request: &FactRequest,
    options: &GatherOptions,
    also: &BTreeSet<String>,
    prefetched: Option<&counters::Readings>,
) -> (Facts, counters::Readings) {
    // One read of the counter files: the plain counters, the first readings of the
    // sampled ones (unless prefetched) and `also`; the window runs while the other
    // facts are read.
    let sampled = !request.counter_growth.is_empty() && options.recorded_samples.is_none();
    let prefetched = prefetched.filter(|p| sampled && p.has_all(request.counter_growth.keys()));
    let also = counters::in_same_files(&request.counters, also);
    let mut counter_names: BTreeSet<String> = request.counters.union(&also).cloned().collect();
    if sampled && prefetched.is_none() {
        counter_names.extend(request.counter_growth.keys().cloned());
    }
    let readings = counters::Readings::read(&counter_names);
    let sampling = sampled.then(|| {
        counters::start_sampling(
            &request.counter_growth,
            prefetched.unwrap_or(&readings),
            options.sample_window,
        )
    });
    let tables = cpu_tables::start(request, options);
    let drop_sampling = (!request.rx_drops.is_empty() && options.recorded_rx_drops.is_none())
        .then(|| rx_drops::start(&request.rx_drops, options.sample_window));
    let collected_at = now_unix();
    let mut facts = Facts {
        format: FACTS_FORMAT,
        collected_at,
        ..Facts::default()
    };
    for key in &request.sysctls {
        let fact = match SysctlKey::parse(key) {
            Ok(k) => Fact::from_io(crate::kernel::sysctl::read(&k)),
            Err(e) => Fact::Unknown(e),
        };
        facts.sysctls.insert(key.clone(), fact);
    }
    facts.counters = readings.only(&request.counters).values;
    if !request.socket_states.is_empty() {
        facts.sockets = sockets::count_tcp_states(&request.socket_states);
    }
    if request.listen_ports {
        facts.listen_ports = Some(sockets::listen_ports());
    }
    if request.listeners {
        facts.listeners = Some(match &options.recorded_listeners {
            Some(recorded) => recorded.clone(),
            None => sockets::listeners(),
        });
    }
    // One read of the kernel log serves both the pattern conditions and the OOM kills.
    if !request.kernel_log.is_empty() || request.oom_kills {
        let (log, origin) = options.read_log(&kmsg::Wanted::of(request));
        log_facts(&mut facts, request, &log, &origin, options.memcg.as_deref());
    }
    gather_jvm(request, options, &mut facts);
    if request.links || request.qdiscs {
        // The drop counters only for a rule that reads them (they cost a box a link).
        (facts.links, facts.qdiscs) = net::gather(request.qdiscs, !request.rx_drops.is_empty());
    }
    if !request.rings.is_empty() {
        facts.rings = ring::gather(&facts.links, &request.rings);
    }
    if let Some(pending) = sampling {
        facts.counter_samples = counters::finish_sampling(pending);
    } else if let Some(recorded) = &options.recorded_samples {
        facts.counter_samples = recorded
            .iter()
            .filter(|(name, _)| request.counter_growth.contains_key(*name))
            .map(|(name, sample)| (name.clone(), sample.clone()))
            .collect();
    }
    cpu_tables::finish(tables, request, options, &mut facts);
    if !request.rx_drops.is_empty() {
        rx_drops::finish_into(&mut facts, drop_sampling, &request.rx_drops, options);
    }
    (facts, readings.only(&also))
}

impl Facts {
    /// Adds the facts of another snapshot (taken moments later by the same probes).
    pub fn merge(&mut self, other: Facts) {
        self.sysctls.extend(other.sysctls);
        self.counters.extend(other.counters);
        self.counter_samples.extend(other.counter_samples);
        if other.kernel_log_origin.is_some() {
            self.kernel_log_origin = other.kernel_log_origin;
        }
        self.sockets.extend(other.sockets);
        self.kernel_log.extend(other.kernel_log);
        if other.processes.is_some() {
            self.processes = other.processes;
        }
        if other.mem_total.is_some() {
            self.mem_total = other.mem_total;
        }
        if other.oom_kills.is_some() {
            self.oom_kills = other.oom_kills;
        }
        if other.listen_ports.is_some() {
            self.listen_ports = other.listen_ports;
        }
        if other.listeners.is_some() {
            self.listeners = other.listeners;
        }
        if other.softnet.is_some() {
            self.softnet = other.softnet;
        }
        if other.conntrack_stat.is_some() {
            self.conntrack_stat = other.conntrack_stat;
        }
        if other.softirq_cpus.is_some() {
            self.softirq_cpus = other.softirq_cpus;
        }
        self.env_files.extend(other.env_files);
        if !matches!(&other.links, Fact::Unknown(w) if w == NOT_GATHERED) {
            self.links = other.links;
        }
        if !matches!(&other.qdiscs, Fact::Unknown(w) if w == NOT_GATHERED) {
            self.qdiscs = other.qdiscs;
        }
        self.rings.extend(other.rings);
        if other.rx_drop_samples.is_some() {
            self.rx_drop_samples = other.rx_drop_samples;
        }
    }
}

/// Processes, host memory, OOM kills and environment files, when asked for.
fn gather_jvm(request: &FactRequest, options: &GatherOptions, facts: &mut Facts) {
    if !request.process_comms.is_empty() {
        facts.processes = Some(processes::gather(&request.process_comms));
    }
    if request.mem_total {
        facts.mem_total = Some(processes::mem_total());
    }
    for path in &request.env_files {
        let root = options.root.as_deref().unwrap_or(std::path::Path::new("/"));
        let fact = match envfile::read(&config::under(root, path).to_string_lossy()) {
            Ok(content) => Fact::Value(content),
            Err(e) => Fact::Unknown(e),
        };
        facts.env_files.insert(path.clone(), fact);
    }
}

/// The kernel-log facts the rules ask for (pattern matches, OOM kills in `memcg` or
/// below), from one read of the log. Windows end at `facts.collected_at`; lines without
/// a wall time are all kept, and detection then says what it cannot tell.
fn log_facts(
    facts: &mut Facts,
    request: &FactRequest,
    log: &Result<Vec<LogLine>, String>,
    origin: &KernelLogOrigin,
    memcg: Option<&str>,
) {
    if !request.kernel_log.is_empty() {
        let since = if origin.clock_unknown.is_some() {
            f64::INFINITY
        } else {
            facts.collected_at
        };
        facts.kernel_log = kmsg::select_facts(log, &request.kernel_log, since);
    }
    if request.oom_kills {
        facts.oom_kills = Some(match log {
            Ok(lines) => Fact::Value(scope::kills_in(oom::parse(lines), memcg)),
            Err(why) => Fact::Unknown(why.clone()),
        });
    }
    facts.kernel_log_origin = Some(origin.clone());
}

/// A snapshot replayed with a saved kernel log (`plan --facts F --kernel-log L`): the
/// log's facts replace the snapshot's, read as if at the snapshot's `collected_at`.
pub fn replay_kernel_log(facts: &mut Facts, request: &FactRequest, options: &GatherOptions) {
    if !request.kernel_log.is_empty() || request.oom_kills {
        let (log, origin) = options.read_log(&kmsg::Wanted::of(request));
        log_facts(facts, request, &log, &origin, None);
    }
}

pub fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The host's name in the process's UTS namespace, what /proc/sys/kernel/hostname
/// holds, from uname(2): one system call where reading the file took five, made once
/// a run. Entering a network namespace leaves the UTS namespace as it is, so the
/// plans of `--all-netns` share it.
pub fn hostname() -> String {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(uname_nodename).clone()
}

fn uname_nodename() -> String {
    // SAFETY: utsname is plain old data; uname fills it and NUL-terminates each field.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: a valid, writable utsname.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return String::new();
    }
    let bytes: Vec<u8> = uts
        .nodename
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_name_is_what_proc_sys_kernel_hostname_holds() {
        let file = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
        assert_eq!(hostname(), file.trim_end_matches('\n'));
        assert!(!hostname().is_empty());
    }

    #[test]
    fn a_later_round_samples_from_the_counters_read_before() {
        let name = "TcpExt.ListenOverflows".to_owned();
        let request = FactRequest {
            counter_growth: BTreeMap::from([(
                name.clone(),
                counters::Sampling {
                    window: std::time::Duration::from_millis(1),
                    min_growth: 1,
                },
            )]),
            ..FactRequest::default()
        };
        // A value no live counter holds: a first reading of it can only be the
        // prefetched one.
        let prefetched = counters::Readings {
            values: BTreeMap::from([(name.clone(), Fact::Value(u64::MAX - 1))]),
            taken: std::time::Instant::now(),
        };
        let options = GatherOptions::default();
        let sample = |facts: &Facts| match &facts.counter_samples[&name] {
            Fact::Value(s) => s.first,
            other => panic!("expected a sample, got {other:?}"),
        };
        assert_eq!(
            sample(&gather_more(&request, &options, Some(&prefetched))),
            u64::MAX - 1
        );
        assert_ne!(sample(&gather_more(&request, &options, None)), u64::MAX - 1);
        // Prefetched readings that lack a sampled counter are not used.
        let other = counters::Readings {
            values: BTreeMap::new(),
            ..prefetched
        };
        assert_ne!(
            sample(&gather_more(&request, &options, Some(&other))),
            u64::MAX - 1
        );
    }
}
