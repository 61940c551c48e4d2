//! The playbook model: plain serde types, `deny_unknown_fields` everywhere.
//!
//! A *playbook* is a named file of *rules*; a rule pairs a `detect` condition with a
//! `fix` list of actions. Conditions and actions are written as single-key maps
//! (`sysctl: {...}`, `all: [...]`, `set_sysctl: {...}`). serde_yaml 0.9 only reads
//! externally tagged enums as YAML tags (`!sysctl`), so each enum is read through a
//! "raw" struct with one optional field per variant and converted with `TryFrom`; the
//! JSON Schema is derived from the enums themselves, which gives the `oneOf` of
//! single-key objects that the YAML actually uses.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

/// One playbook file.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "tune playbook")]
pub struct Playbook {
    /// Short, unique name (letters, digits, `-`, `_`).
    pub name: String,
    /// Which symptom this playbook answers, and why its fix is safe.
    pub description: String,
    /// Variables with defaults; reference them as `${name}` in values, override them
    /// with `tune plan --var name=value`.
    #[serde(default)]
    pub variables: BTreeMap<String, Variable>,
    /// The detect/fix pairs.
    pub rules: Vec<Rule>,
}

/// A playbook variable.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Variable {
    /// The value used unless `--var` overrides it.
    pub default: Scalar,
    /// What the variable means.
    #[serde(default)]
    pub description: String,
}

/// One detect/fix pair.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Identifier, unique within the playbook.
    pub id: String,
    /// What the rule looks for.
    pub description: String,
    /// When the rule fires.
    pub detect: Condition,
    /// What to change when it fires. An empty list makes a report-only rule.
    #[serde(default)]
    pub fix: Vec<Action>,
}

/// A number or a string; strings may reference variables as `${name}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Scalar {
    Integer(i64),
    Float(f64),
    Text(String),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Integer(i) => write!(f, "{i}"),
            Scalar::Float(x) => write!(f, "{x}"),
            Scalar::Text(s) => f.write_str(s),
        }
    }
}

/// Comparisons shared by every measured condition. All that are given must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Compare {
    pub equals: Option<Scalar>,
    pub not_equals: Option<Scalar>,
    pub below: Option<Scalar>,
    pub above: Option<Scalar>,
    pub at_least: Option<Scalar>,
    pub at_most: Option<Scalar>,
}

impl Compare {
    /// The comparisons that are set, with their operator names.
    pub fn operators(&self) -> Vec<(CompareOp, &Scalar)> {
        let mut out = Vec::new();
        let all = [
            (CompareOp::Equals, &self.equals),
            (CompareOp::NotEquals, &self.not_equals),
            (CompareOp::Below, &self.below),
            (CompareOp::Above, &self.above),
            (CompareOp::AtLeast, &self.at_least),
            (CompareOp::AtMost, &self.at_most),
        ];
        for (op, value) in all {
            if let Some(value) = value {
                out.push((op, value));
            }
        }
        out
    }
}

/// A comparison operator of [`Compare`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Equals,
    NotEquals,
    Below,
    Above,
    AtLeast,
    AtMost,
}

impl CompareOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CompareOp::Equals => "==",
            CompareOp::NotEquals => "!=",
            CompareOp::Below => "<",
            CompareOp::Above => ">",
            CompareOp::AtLeast => ">=",
            CompareOp::AtMost => "<=",
        }
    }
}

/// Declares a condition struct whose fields are the given ones plus the six
/// comparison fields of [`Compare`] (serde's `flatten` cannot be combined with
/// `deny_unknown_fields`, so the fields are spelled out by this macro instead).
macro_rules! measured_condition {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
            /// Fires when the measured value equals this.
            #[serde(default)]
            pub equals: Option<Scalar>,
            /// Fires when the measured value differs from this.
            #[serde(default)]
            pub not_equals: Option<Scalar>,
            /// Fires when the measured value is strictly below this.
            #[serde(default)]
            #[schemars(with = "Option<super::schema_hints::NumberOrVar>")]
            pub below: Option<Scalar>,
            /// Fires when the measured value is strictly above this.
            #[serde(default)]
            #[schemars(with = "Option<super::schema_hints::NumberOrVar>")]
            pub above: Option<Scalar>,
            /// Fires when the measured value is this or more.
            #[serde(default)]
            #[schemars(with = "Option<super::schema_hints::NumberOrVar>")]
            pub at_least: Option<Scalar>,
            /// Fires when the measured value is this or less.
            #[serde(default)]
            #[schemars(with = "Option<super::schema_hints::NumberOrVar>")]
            pub at_most: Option<Scalar>,
        }

        impl $name {
            pub fn compare(&self) -> Compare {
                Compare {
                    equals: self.equals.clone(),
                    not_equals: self.not_equals.clone(),
                    below: self.below.clone(),
                    above: self.above.clone(),
                    at_least: self.at_least.clone(),
                    at_most: self.at_most.clone(),
                }
            }
        }
    };
}

measured_condition! {
    /// Compares a sysctl's value (or its range width, or its ratio to another sysctl).
    SysctlCondition {
        /// The sysctl, dotted (`net.core.somaxconn`) or as a path below /proc/sys
        /// (`net/ipv4/conf/eth0.100/rp_filter`).
        key: String,
        /// What to measure: the value itself, or the width of a two-number range.
        #[serde(default)]
        measure: Measure,
        /// Divide the value by this other sysctl's value before comparing.
        #[serde(default)]
        ratio_of: Option<String>,
    }
}

measured_condition! {
    /// Compares a counter of /proc/net/netstat or /proc/net/snmp, e.g. `TcpExt.ListenOverflows`.
    CounterCondition {
        /// `Section.Name` as the files spell them: `TcpExt.ListenOverflows`, `Tcp.AttemptFails`.
        name: String,
        /// What to compare: the value since boot (default), or its growth over a short
        /// sampling window (read, wait, read again), as `nstat` or `netstat -s` twice do.
        #[serde(default)]
        measure: CounterMeasure,
        /// With `measure: growth`: how long to sample, e.g. `2s` (default 1s, at most
        /// 60s); `tune plan --sample-window` overrides it.
        #[serde(default)]
        window: Option<String>,
    }
}

/// What a counter condition measures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CounterMeasure {
    /// The value since boot (or since the network namespace was made).
    #[default]
    SinceBoot,
    /// The increase over the sampling `window`. The counter is sampled only when its
    /// since-boot value could make the comparison hold (a counter at 0 since boot
    /// cannot have grown above 0), so a healthy host does not wait.
    Growth,
}

measured_condition! {
    /// Counts TCP sockets (IPv4 and IPv6) in one state, read through sock_diag.
    SocketsCondition {
        /// The TCP state to count.
        state: TcpState,
    }
}

measured_condition! {
    /// Compares the growth of a column of /proc/net/softnet_stat over a sampling
    /// window, summed over every CPU (never the since-boot value). The file is
    /// host-wide: the same in every network namespace.
    SoftnetCondition {
        /// The column: `dropped` (the per-CPU input backlog was full) or
        /// `time_squeeze` (a receive softirq ran out of budget with work left).
        stat: SoftnetStat,
        /// How long to sample: the table is read, and read again this long after
        /// (default 1s, at most 60s); `tune plan --sample-window` overrides it.
        #[serde(default)]
        window: Option<String>,
    }
}

measured_condition! {
    /// Compares the growth of a column of /proc/net/stat/nf_conntrack (the
    /// namespace's connection tracking events) over a sampling window, summed over
    /// every CPU (never the value since the module loaded).
    ConntrackStatCondition {
        /// The column as the file's header names it: `drop`, `early_drop`,
        /// `insert_failed`, ...
        name: String,
        /// How long to sample: the table is read, and read again this long after
        /// (default 1s, at most 60s); `tune plan --sample-window` overrides it.
        #[serde(default)]
        window: Option<String>,
    }
}

measured_condition! {
    /// Compares the largest share (0 to 1) of a CPU's time spent in softirqs over a
    /// sampling window, from two readings of /proc/stat (host-wide). For report-only
    /// rules.
    SoftirqCpuCondition {
        /// How long to sample: the table is read, and read again this long after
        /// (default 1s, at most 60s); `tune plan --sample-window` overrides it.
        #[serde(default)]
        window: Option<String>,
    }
}

/// Holds when the accept queue of a TCP listener (IPv4 or IPv6, read through
/// sock_diag) is capped by the given limit. The listeners looked at are those whose
/// accept queue is full now (`idiag_rqueue` at least `idiag_wqueue`); when none is,
/// every listener. The evidence names each one: address, port, backlog (the kernel's
/// `sk_max_ack_backlog`, which is min(the application's listen(2) backlog,
/// net.core.somaxconn)), queue length and owning process.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenQueueCondition {
    /// Which limit must cap some listener's accept queue.
    pub limit: ListenLimit,
}

/// What caps a listener's accept queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ListenLimit {
    /// The backlog equals net.core.somaxconn: the kernel cut the application's request
    /// down to the cap (it asked for at least that much; the kernel does not keep the
    /// requested value).
    Somaxconn,
    /// The backlog is below net.core.somaxconn: the application's own listen(2)
    /// backlog is the limit, and no sysctl raises it.
    OwnBacklog,
}

/// A column of /proc/net/softnet_stat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SoftnetStat {
    /// Column 2: packets dropped because the CPU's input backlog held
    /// net.core.netdev_max_backlog packets.
    Dropped,
    /// Column 3: times the receive softirq stopped with packets left, its
    /// net.core.netdev_budget packets or netdev_budget_usecs used up.
    TimeSqueeze,
}

impl SoftnetStat {
    pub fn name(self) -> &'static str {
        match self {
            SoftnetStat::Dropped => "dropped",
            SoftnetStat::TimeSqueeze => "time_squeeze",
        }
    }
}

/// What a sysctl condition measures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// The value as a number (or a string for `equals`/`not_equals`).
    #[default]
    Value,
    /// For two-number values such as `ip_local_port_range`: high - low + 1.
    RangeWidth,
}

/// TCP states, as the kernel numbers them.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TcpState {
    Established,
    SynSent,
    SynRecv,
    FinWait1,
    FinWait2,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    Closing,
}

impl TcpState {
    /// The kernel's number for this state (include/net/tcp_states.h).
    pub fn kernel_number(self) -> u32 {
        match self {
            TcpState::Established => 1,
            TcpState::SynSent => 2,
            TcpState::SynRecv => 3,
            TcpState::FinWait1 => 4,
            TcpState::FinWait2 => 5,
            TcpState::TimeWait => 6,
            TcpState::Close => 7,
            TcpState::CloseWait => 8,
            TcpState::LastAck => 9,
            TcpState::Listen => 10,
            TcpState::Closing => 11,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait1 => "FIN_WAIT1",
            TcpState::FinWait2 => "FIN_WAIT2",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::Closing => "CLOSING",
        }
    }
}

measured_condition! {
    /// Network interfaces selected by name and kind, compared by MTU (the six
    /// comparisons apply to the MTU; none means any MTU). Fires when at least one link
    /// matches; every matching link is a target of the rule's `set_mtu`.
    LinkCondition {
        /// Glob on the interface name (`eth*`, `veth?`); default `*`.
        #[serde(default = "any_name")]
        name: String,
        /// Link kinds to consider (`veth`, `ethernet`, `bridge`, `loopback`, `ipip`,
        /// `wireguard`, ...); empty means any kind.
        #[serde(default)]
        kind: Vec<String>,
        /// Only links that accept an MTU of at least this much (their maximum MTU, when
        /// the kernel reports one, is this or more).
        #[serde(default)]
        #[schemars(with = "Option<super::schema_hints::NumberOrVar>")]
        max_mtu_at_least: Option<Scalar>,
        /// Only links whose MTU disagrees with a link they are attached to, as the host
        /// sees it: a veth below its peer (in any namespace), a port below its bridge or
        /// bond, a VLAN, macvlan or VXLAN above what its lower device carries. A link
        /// with no such relation never matches, whatever its MTU.
        #[serde(default)]
        path_mismatch: bool,
    }
}

fn any_name() -> String {
    "*".to_owned()
}

/// A link's root qdisc, selected by kind and link name, with thresholds on `netem`
/// options. Every threshold given must hold; fires when at least one qdisc matches.
/// Default root qdiscs the kernel attached itself (handle 0) never match.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QdiscCondition {
    /// The qdisc kind (`netem`, `tbf`, `htb`, ...); any kind when absent.
    #[serde(default)]
    pub kind: Option<String>,
    /// Glob on the link name; default `*`.
    #[serde(default = "any_name")]
    pub link: String,
    /// netem: random loss above this percentage.
    #[serde(default)]
    #[schemars(with = "Option<super::schema_hints::NumberOrVar>")]
    pub loss_above: Option<Scalar>,
    /// netem: added delay above this many milliseconds.
    #[serde(default)]
    #[schemars(with = "Option<super::schema_hints::NumberOrVar>")]
    pub delay_above_ms: Option<Scalar>,
    /// netem: jitter above this many milliseconds.
    #[serde(default)]
    #[schemars(with = "Option<super::schema_hints::NumberOrVar>")]
    pub jitter_above_ms: Option<Scalar>,
    /// netem: duplication above this percentage.
    #[serde(default)]
    #[schemars(with = "Option<super::schema_hints::NumberOrVar>")]
    pub duplicate_above: Option<Scalar>,
    /// netem: corruption above this percentage.
    #[serde(default)]
    #[schemars(with = "Option<super::schema_hints::NumberOrVar>")]
    pub corrupt_above: Option<Scalar>,
    /// netem: reordering above this percentage.
    #[serde(default)]
    #[schemars(with = "Option<super::schema_hints::NumberOrVar>")]
    pub reorder_above: Option<Scalar>,
}

measured_condition! {
    /// The growth of a link's receive-drop counters (IFLA_STATS64 of the link dump)
    /// over a sampling window: the counters are read twice, a window apart, and only
    /// the increase is compared (never the value since the device was created). The
    /// comparisons apply to that increase. Fires when at least one link matches; every
    /// matching link is a target of the rule's `set_rx_ring`. When no selected link has
    /// dropped enough since it was created to make the comparison hold, the second
    /// reading is skipped: a healthy host does not wait.
    RxDropsCondition {
        /// Glob on the interface name (`eth*`, `${link}`); default `*`.
        #[serde(default = "any_name")]
        link: String,
        /// Which counter grows.
        stat: RxDropStat,
        /// Only links whose RX ring (ethtool netlink) is in this state; links whose
        /// driver has no ring parameters (veth, loopback, bridges) then never match.
        #[serde(default)]
        ring: Option<RingState>,
        /// How long to sample, e.g. `2s` (default 1s, at most 60s); `tune plan
        /// --sample-window` overrides it.
        #[serde(default)]
        window: Option<String>,
    }
}

/// A receive-drop counter of `struct rtnl_link_stats64`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RxDropStat {
    /// `rx_missed_errors`: the NIC found no free descriptor in its RX ring (ethtool -S
    /// rx_missed, netstat's RX-OVR).
    Missed,
    /// `rx_fifo_errors`: the NIC's receive FIFO overran (the host did not empty the
    /// ring fast enough).
    Fifo,
    /// `missed` or `fifo`, whichever grew more (some drivers count one overrun in
    /// both): the drops a larger RX ring can prevent.
    Ring,
    /// `rx_dropped` (netstat's RX-DRP): mostly drops in the stack after the ring
    /// (unknown protocol, an inactive bond port, no memory, a full backlog), which a
    /// larger ring does not prevent.
    Dropped,
}

impl RxDropStat {
    pub fn name(self) -> &'static str {
        match self {
            RxDropStat::Missed => "rx_missed_errors",
            RxDropStat::Fifo => "rx_fifo_errors",
            RxDropStat::Ring => "rx_missed_errors/rx_fifo_errors",
            RxDropStat::Dropped => "rx_dropped",
        }
    }
}

/// A link's RX ring against the maximum its driver reports.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RingState {
    /// The RX ring is smaller than its maximum: it can be raised.
    BelowMax,
    /// The RX ring is at its maximum: raising it is no longer a remedy.
    AtMax,
}

/// Sets the MTU of every link that the rule's `link` conditions matched. Exactly one
/// of `value` and `to_path`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetMtu {
    /// The MTU, in bytes (68 or more; never above a link's maximum MTU, nor above the
    /// MTU of a peer, bridge or lower device that this plan does not raise too).
    #[serde(default)]
    #[schemars(with = "Option<super::schema_hints::NumberOrVar>")]
    pub value: Option<Scalar>,
    /// The MTU the link's path asks for, per link, as `path_mismatch` found it: a veth
    /// or port is raised to its peer's or master's MTU (never above its peer, master,
    /// lower device or maximum MTU); a VLAN or VXLAN is lowered to what its lower
    /// device carries.
    #[serde(default)]
    pub to_path: bool,
}

/// Deletes the root qdisc of this kind on every link that the rule's `qdisc`
/// conditions matched. Rollback re-creates it with the same handle and options.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteRootQdisc {
    /// The qdisc kind to delete, e.g. `netem`.
    pub kind: String,
}

/// Raises the RX ring (ethtool netlink, ETHTOOL_MSG_RINGS_SET) of every link whose
/// name matches `link`. Links whose driver has no ring parameters (veth, loopback,
/// bridges) and links already at the target are left alone; the new size is read back
/// and must equal the target; rollback restores the exact size before.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRxRing {
    /// A glob over link names, e.g. `eth*` or `${link}`.
    pub link: String,
    /// The RX ring size to set.
    pub to: RingTarget,
}

/// Which RX ring size `set_rx_ring` sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RingTarget {
    /// The maximum the driver reports (ETHTOOL_A_RINGS_RX_MAX).
    Max,
}

/// Lines of the kernel log (/dev/kmsg) that match a pattern within a time window.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KernelLogCondition {
    /// A regular expression (Rust `regex` syntax) matched against each message's bytes:
    /// `.`, `\w`, `\d`, `\s` and `(?i)` are ASCII, `\p{..}` is refused.
    pub pattern: String,
    /// How far back to look, e.g. `1h`, `30m`, `2h 30m`.
    #[schemars(with = "super::schema_hints::Duration")]
    pub within: String,
    /// How many matching lines make the condition fire.
    #[serde(default = "one")]
    pub at_least: u64,
}

fn one() -> u64 {
    1
}

/// A running `java` process whose maximum heap plus `headroom` exceeds the memory
/// limit of its cgroup (the smallest limit from its cgroup up to the root). The
/// maximum heap is worked out as HotSpot does: `-Xmx` / `-XX:MaxHeapSize`, else
/// `MaxRAMPercentage` (default 25) of the cgroup limit (`-XX:MaxRAM` when given; host
/// memory with `-XX:-UseContainerSupport`), reading `JAVA_TOOL_OPTIONS`,
/// `JDK_JAVA_OPTIONS`, the command line and `_JAVA_OPTIONS` in that order.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JvmHeapCondition {
    /// Memory the JVM uses besides the heap (metaspace, code cache, thread stacks,
    /// direct buffers, GC structures): a size such as `128MiB`, `1G` or bytes.
    pub headroom: Scalar,
}

/// A process killed by the kernel because its memory cgroup hit its limit (a memcg
/// OOM kill in the kernel log), within a time window.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OomKillCondition {
    /// The command name of the killed process.
    #[serde(default = "java_comm")]
    pub comm: String,
    /// How far back to look, e.g. `24h`, `30m`.
    #[schemars(with = "super::schema_hints::Duration")]
    pub within: String,
}

fn java_comm() -> String {
    "java".to_owned()
}

/// Sets a variable in a `KEY=VALUE` environment file (systemd `EnvironmentFile=`,
/// `docker --env-file`, /etc/default). Comments, order, quoting, line endings and
/// every other key are kept. Exactly one of `value`, `jvm_heap_flags`,
/// `heap_percent_of_limit`. The change takes effect when the program reading the
/// file restarts.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [{"required": ["value"]}, {"required": ["jvm_heap_flags"]}, {"required": ["heap_percent_of_limit"]}]))]
pub struct SetEnv {
    /// Absolute path of the file; usually `${env_file}`. Created if missing. A symlink
    /// is followed only to a file in the same directory.
    pub file: String,
    /// The variable, e.g. `JAVA_TOOL_OPTIONS`.
    pub key: String,
    /// Set the variable to exactly this value.
    #[serde(default)]
    pub value: Option<Scalar>,
    /// Treat the variable as JVM options: drop its heap-size flags (`-Xmx`,
    /// `-XX:MaxHeapSize`, `-XX:MaxRAMPercentage`, `-XX:MaxRAM`, `-XX:MaxRAMFraction`,
    /// `-XX:MinRAMPercentage`, `-XX:MinRAMFraction`), put these in their place, keep
    /// every other option. E.g. `-XX:MaxRAMPercentage=75.0`.
    #[serde(default)]
    pub jvm_heap_flags: Option<Scalar>,
    /// Like `jvm_heap_flags` with `-Xmx<N>m`, N being this percentage of the smallest
    /// cgroup memory limit the rule's detection saw (running processes and OOM kill
    /// records), and never more than that limit minus the `jvm_heap` headroom.
    #[serde(default)]
    #[schemars(with = "Option<super::schema_hints::NumberOrVar>")]
    pub heap_percent_of_limit: Option<Scalar>,
    /// Who reads the file, whose quoting rules the edit follows: `systemd`
    /// (EnvironmentFile=), `shell` (sourced by a script), `docker` (--env-file) or
    /// `unknown`. Empty or absent: `shell` under /etc/default and /etc/sysconfig,
    /// else `unknown` (only lines all three read alike are edited). A file found
    /// from a unit's EnvironmentFile= is always `systemd`.
    #[serde(default)]
    pub dialect: Option<String>,
}

/// How a [`SetEnv`] computes the new value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvMode {
    Value,
    JvmHeapFlags,
    HeapPercentOfLimit,
}

impl SetEnv {
    /// The single mode and operand; `Err` names what is wrong.
    pub fn mode(&self) -> Result<(EnvMode, &Scalar), String> {
        let set: Vec<(EnvMode, &Scalar)> = [
            (EnvMode::Value, &self.value),
            (EnvMode::JvmHeapFlags, &self.jvm_heap_flags),
            (EnvMode::HeapPercentOfLimit, &self.heap_percent_of_limit),
        ]
        .into_iter()
        .filter_map(|(mode, v)| v.as_ref().map(|v| (mode, v)))
        .collect();
        match set.as_slice() {
            [one] => Ok(*one),
            _ => Err(
                "set_env takes exactly one of `value`, `jvm_heap_flags`, `heap_percent_of_limit`"
                    .into(),
            ),
        }
    }
}

/// A detection condition: exactly one key per map.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Every listed condition holds.
    All(Vec<Condition>),
    /// At least one listed condition holds.
    Any(Vec<Condition>),
    /// The condition does not hold.
    Not(Box<Condition>),
    Sysctl(SysctlCondition),
    Counter(CounterCondition),
    Sockets(SocketsCondition),
    KernelLog(KernelLogCondition),
    JvmHeap(JvmHeapCondition),
    OomKill(OomKillCondition),
    Link(LinkCondition),
    Qdisc(QdiscCondition),
    Softnet(SoftnetCondition),
    ConntrackStat(ConntrackStatCondition),
    SoftirqCpu(SoftirqCpuCondition),
    ListenQueue(ListenQueueCondition),
    RxDrops(RxDropsCondition),
}

/// A fix action: exactly one key per map.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    SetSysctl(SetSysctl),
    SetEnv(SetEnv),
    SetMtu(SetMtu),
    DeleteRootQdisc(DeleteRootQdisc),
    SetRxRing(SetRxRing),
}

/// Sets a sysctl. Exactly one of `value`, `at_least`, `at_most`, `widen_to`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [{"required": ["value"]}, {"required": ["at_least"]}, {"required": ["at_most"]}, {"required": ["widen_to"]}]))]
pub struct SetSysctl {
    /// The sysctl, dotted or as a path below /proc/sys.
    pub key: String,
    /// Set exactly this value.
    #[serde(default)]
    pub value: Option<Scalar>,
    /// Raise to this value; never lowers a value that is already higher.
    #[serde(default)]
    #[schemars(with = "Option<super::schema_hints::NumberOrVar>")]
    pub at_least: Option<Scalar>,
    /// Lower to this value; never raises a value that is already lower.
    #[serde(default)]
    #[schemars(with = "Option<super::schema_hints::NumberOrVar>")]
    pub at_most: Option<Scalar>,
    /// Widen a `low high` range so it covers this one; never narrows it.
    #[serde(default)]
    #[schemars(with = "Option<super::schema_hints::Range>")]
    pub widen_to: Option<Scalar>,
}

/// How a [`SetSysctl`] computes its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetMode {
    Value,
    AtLeast,
    AtMost,
    WidenTo,
}

impl SetSysctl {
    /// The single mode and operand; `Err` names what is wrong.
    pub fn mode(&self) -> Result<(SetMode, &Scalar), String> {
        let set: Vec<(SetMode, &Scalar)> = [
            (SetMode::Value, &self.value),
            (SetMode::AtLeast, &self.at_least),
            (SetMode::AtMost, &self.at_most),
            (SetMode::WidenTo, &self.widen_to),
        ]
        .into_iter()
        .filter_map(|(mode, v)| v.as_ref().map(|v| (mode, v)))
        .collect();
        match set.as_slice() {
            [one] => Ok(*one),
            [] => Err("set_sysctl needs one of `value`, `at_least`, `at_most`, `widen_to`".into()),
            _ => Err(
                "set_sysctl takes only one of `value`, `at_least`, `at_most`, `widen_to`".into(),
            ),
        }
    }
}

/// Implements `Deserialize` for a single-key enum through a raw struct with one
/// optional field per variant, so that unknown keys, missing keys and two keys in one
/// map are all errors that serde_yaml reports with a location.
macro_rules! single_key_enum {
    ($enum:ident, $raw:ident, $what:literal, { $($key:ident => $variant:ident($ty:ty),)* }) => {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $raw {
            $(#[serde(default)] $key: Option<$ty>,)*
        }

        impl<'de> Deserialize<'de> for $enum {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = $raw::deserialize(deserializer)?;
                let mut found = Vec::new();
                $(if let Some(v) = raw.$key { found.push((stringify!($key), $enum::$variant(v))); })*
                let keys = [$(stringify!($key)),*].join(", ");
                match found.len() {
                    1 => Ok(found.pop().map(|(_, v)| v).expect("one element")),
                    0 => Err(serde::de::Error::custom(format!(
                        concat!("a ", $what, " needs exactly one of: {}"), keys
                    ))),
                    _ => {
                        let names: Vec<&str> = found.iter().map(|(k, _)| *k).collect();
                        Err(serde::de::Error::custom(format!(
                            concat!("a ", $what, " takes exactly one key, found {}; write each as its own list item"),
                            names.join(", ")
                        )))
                    }
                }
            }
        }
    };
}

single_key_enum!(Condition, RawCondition, "condition", {
    all => All(Vec<Condition>),
    any => Any(Vec<Condition>),
    not => Not(Box<Condition>),
    sysctl => Sysctl(SysctlCondition),
    counter => Counter(CounterCondition),
    sockets => Sockets(SocketsCondition),
    kernel_log => KernelLog(KernelLogCondition),
    jvm_heap => JvmHeap(JvmHeapCondition),
    oom_kill => OomKill(OomKillCondition),
    link => Link(LinkCondition),
    qdisc => Qdisc(QdiscCondition),
    softnet => Softnet(SoftnetCondition),
    conntrack_stat => ConntrackStat(ConntrackStatCondition),
    softirq_cpu => SoftirqCpu(SoftirqCpuCondition),
    listen_queue => ListenQueue(ListenQueueCondition),
    rx_drops => RxDrops(RxDropsCondition),
});

single_key_enum!(Action, RawAction, "fix action", {
    set_sysctl => SetSysctl(SetSysctl),
    set_env => SetEnv(SetEnv),
    set_mtu => SetMtu(SetMtu),
    delete_root_qdisc => DeleteRootQdisc(DeleteRootQdisc),
    set_rx_ring => SetRxRing(SetRxRing),
});

impl Condition {
    /// Calls `visit` on this condition and every nested one, depth first.
    pub fn walk<'a>(&'a self, visit: &mut dyn FnMut(&'a Condition)) {
        visit(self);
        match self {
            Condition::All(list) | Condition::Any(list) => {
                for c in list {
                    c.walk(visit);
                }
            }
            Condition::Not(inner) => inner.walk(visit),
            _ => {}
        }
    }
}
