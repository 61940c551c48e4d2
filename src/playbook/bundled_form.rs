// @generated from playbooks/*.yml by `TUNE_BLESS=1 cargo test --lib bundled_form`
// (src/playbook/const_form.rs); do not edit. The bundled playbooks as code that
// builds their model, so that they are not parsed at run time.

use std::collections::BTreeMap;

use super::model::*;

/// Each bundled playbook's file name, the FNV-1a digest of the YAML this code was
/// made from, and the function that builds it.
pub(super) const FORMS: &[(&str, u64, super::Build)] = &[
    ("conntrack.yml", 0x7361d9ab40f703a0, conntrack_yml),
    ("ephemeral-ports.yml", 0x3d6dbb4158803ec5, ephemeral_ports_yml),
    ("time-wait.yml", 0x4acb09689b68adb2, time_wait_yml),
    ("listen-backlog.yml", 0x9a9716d00f1f40ce, listen_backlog_yml),
    ("jvm-heap.yml", 0xc59c3a01ae5e5651, jvm_heap_yml),
    ("netem.yml", 0x3e52e7b9e5d29639, netem_yml),
    ("mtu.yml", 0x125211a03e80c9dd, mtu_yml),
    ("time-wait-overflow.yml", 0x5eb2aa6904719872, time_wait_overflow_yml),
    ("softnet.yml", 0x892059e76c969efd, softnet_yml),
    ("conntrack-sizing.yml", 0x85e092163ec7bf2f, conntrack_sizing_yml),
    ("softirq.yml", 0xde5f7258595b0179, softirq_yml),
    ("nic-ring.yml", 0x4f1cf653c6eb6f1f, nic_ring_yml),
];

fn conntrack_yml() -> Playbook {
    Playbook {
        name: String::from("conntrack"),
        description: String::from("Symptom: new connections fail or stall and the kernel log says \"nf_conntrack: table full, dropping packet\". The connection-tracking table has nf_conntrack_max entries; when it is full every new flow is dropped. Fix: raise net.netfilter.nf_conntrack_max. Safe because it only raises a ceiling (never lowers it); each entry costs about 300 bytes of kernel memory, so 1048576 entries is about 300 MiB at worst, and only when that many flows really exist.\n"),
        variables: BTreeMap::from([
            (String::from("conntrack_max"), Variable {
                default: Scalar::Integer(1048576),
                description: String::from("The table size to raise nf_conntrack_max to (never lowered)."),
            }),
            (String::from("fill_ratio"), Variable {
                default: Scalar::Float(0.8),
                description: String::from("Fire when nf_conntrack_count reaches this fraction of nf_conntrack_max."),
            }),
            (String::from("log_window"), Variable {
                default: Scalar::Text(String::from("1h")),
                description: String::from("How far back to look for \"table full\" in the kernel log."),
            }),
        ]),
        rules: vec![
            Rule {
                id: String::from("table-near-full"),
                description: String::from("The conntrack table is nearly full, or the kernel recently dropped packets because it was."),
                detect: Condition::Any(vec![
                    Condition::Sysctl(SysctlCondition {
                        key: String::from("net.netfilter.nf_conntrack_count"),
                        measure: Measure::Value,
                        ratio_of: Some(String::from("net.netfilter.nf_conntrack_max")),
                        equals: None,
                        not_equals: None,
                        below: None,
                        above: None,
                        at_least: Some(Scalar::Text(String::from("${fill_ratio}"))),
                        at_most: None,
                    }),
                    Condition::KernelLog(KernelLogCondition {
                        pattern: String::from("nf_conntrack: table full, dropping packet"),
                        within: String::from("${log_window}"),
                        at_least: 1,
                    }),
                ]),
                fix: vec![
                    Action::SetSysctl(SetSysctl {
                        key: String::from("net.netfilter.nf_conntrack_max"),
                        value: None,
                        at_least: Some(Scalar::Text(String::from("${conntrack_max}"))),
                        at_most: None,
                        widen_to: None,
                    }),
                ],
            },
        ],
    }
}

fn ephemeral_ports_yml() -> Playbook {
    Playbook {
        name: String::from("ephemeral-ports"),
        description: String::from("Symptom: outgoing connections fail with \"Cannot assign requested address\" (EADDRNOTAVAIL) under load, because net.ipv4.ip_local_port_range is narrow (seen in the field: \"20000 20050\", 51 ports). Fix: widen the range so it covers at least 10000-65535. Safe because it only widens (never narrows), keeps ports below 10000 free for listening services, and first reserves (net.ipv4.ip_local_reserved_ports, merged with what is there) every port that a LISTEN socket holds inside the newly covered part of the range, so a service restarting later still finds its port free; when the listening ports cannot be read it refuses. Per network namespace.\n"),
        variables: BTreeMap::from([
            (String::from("min_ports"), Variable {
                default: Scalar::Integer(10000),
                description: String::from("Fire when the range spans fewer ports than this."),
            }),
            (String::from("wide_range"), Variable {
                default: Scalar::Text(String::from("10000 65535")),
                description: String::from("The range to widen to (the current range is kept where it is wider)."),
            }),
        ]),
        rules: vec![
            Rule {
                id: String::from("narrow-port-range"),
                description: String::from("The ephemeral port range is too narrow for many concurrent outgoing connections."),
                detect: Condition::Sysctl(SysctlCondition {
                    key: String::from("net.ipv4.ip_local_port_range"),
                    measure: Measure::RangeWidth,
                    ratio_of: None,
                    equals: None,
                    not_equals: None,
                    below: Some(Scalar::Text(String::from("${min_ports}"))),
                    above: None,
                    at_least: None,
                    at_most: None,
                }),
                fix: vec![
                    Action::SetSysctl(SetSysctl {
                        key: String::from("net.ipv4.ip_local_port_range"),
                        value: None,
                        at_least: None,
                        at_most: None,
                        widen_to: Some(Scalar::Text(String::from("${wide_range}"))),
                    }),
                ],
            },
        ],
    }
}

fn time_wait_yml() -> Playbook {
    Playbook {
        name: String::from("time-wait"),
        description: String::from("Symptom: a client that opens many short connections runs out of local ports while thousands of sockets sit in TIME_WAIT holding them. Fix: net.ipv4.tcp_tw_reuse = 1 lets new outgoing connections reuse a TIME_WAIT port when TCP timestamps prove it safe. Safe because it affects only outgoing connections (unlike the removed tcp_tw_recycle it does not break clients behind NAT); it is per network namespace.\n"),
        variables: BTreeMap::from([
            (String::from("time_wait_threshold"), Variable {
                default: Scalar::Integer(1000),
                description: String::from("Fire when at least this many TCP sockets are in TIME_WAIT."),
            }),
        ]),
        rules: vec![
            Rule {
                id: String::from("time-wait-pileup"),
                description: String::from("Many sockets in TIME_WAIT while tcp_tw_reuse is off."),
                detect: Condition::All(vec![
                    Condition::Sysctl(SysctlCondition {
                        key: String::from("net.ipv4.tcp_tw_reuse"),
                        measure: Measure::Value,
                        ratio_of: None,
                        equals: Some(Scalar::Integer(0)),
                        not_equals: None,
                        below: None,
                        above: None,
                        at_least: None,
                        at_most: None,
                    }),
                    Condition::Sockets(SocketsCondition {
                        state: TcpState::TimeWait,
                        equals: None,
                        not_equals: None,
                        below: None,
                        above: None,
                        at_least: Some(Scalar::Text(String::from("${time_wait_threshold}"))),
                        at_most: None,
                    }),
                ]),
                fix: vec![
                    Action::SetSysctl(SetSysctl {
                        key: String::from("net.ipv4.tcp_tw_reuse"),
                        value: Some(Scalar::Integer(1)),
                        at_least: None,
                        at_most: None,
                        widen_to: None,
                    }),
                ],
            },
        ],
    }
}

fn listen_backlog_yml() -> Playbook {
    Playbook {
        name: String::from("listen-backlog"),
        description: String::from("Symptom: clients see connection timeouts or resets under bursts while the server is idle, `TcpExt: ListenOverflows`, `ListenDrops`, `TCPReqQFullDrop` or `TCPReqQFullDoCookies` keep growing, or the kernel logs \"Possible SYN flooding on port N\": a listener's accept queue overflows now. The counters count since boot, so one burst months ago would keep them above 0 forever: the rules read them twice, a window apart (as `nstat` does), and fire only when one grew in between. Each TCP listener is then named with its owner, port and backlog (sock_diag's idiag_wqueue, which the kernel sets to min(the listen(2) backlog, net.core.somaxconn); the requested value itself is not kept), looking at the listeners whose queue is full now; when none is, at the listeners on the ports the kernel's SYN-flood lines name (`port 80`, or `port 0.0.0.0:80` since Linux 5.10), or at every listener when no line names one that still listens. Fix: when a listener's backlog equals somaxconn (the kernel cut the application's request down to the cap), raise net.core.somaxconn to at least 4096; when a listener's own backlog is below the cap, report it by process and port and change nothing (no sysctl raises it; the application's backlog setting, e.g. nginx's `listen ... backlog=`, does). Keep net.ipv4.tcp_syncookies on, and set it to 1 only where it is 0. Never net.ipv4.tcp_max_syn_backlog while syncookies are on: since Linux 4.4 the SYN queue is bounded by the listen backlog, so it changes nothing. Safe because it only raises a cap (never lowers it) and costs memory only for connections actually queued; a listener gets the new cap when it calls listen(2) again (a restart or reload). Everything here is per network namespace; the log line is host-wide.\n"),
        variables: BTreeMap::from([
            (String::from("log_window"), Variable {
                default: Scalar::Text(String::from("1h")),
                description: String::from("How far back to look for \"Possible SYN flooding\" in the kernel log."),
            }),
            (String::from("min_somaxconn"), Variable {
                default: Scalar::Integer(4096),
                description: String::from("The accept-queue cap to raise net.core.somaxconn to."),
            }),
            (String::from("sample_window"), Variable {
                default: Scalar::Text(String::from("2s")),
                description: String::from("How long to watch the listen-queue counters grow (`tune plan --sample-window` overrides it).\n"),
            }),
        ]),
        rules: vec![
            Rule {
                id: String::from("listen-queue-overflow"),
                description: String::from("Listen queues are overflowing now and a listener is capped by a small somaxconn.\n"),
                detect: Condition::All(vec![
                    Condition::Any(vec![
                        Condition::Counter(CounterCondition {
                            name: String::from("TcpExt.ListenOverflows"),
                            measure: CounterMeasure::Growth,
                            window: Some(String::from("${sample_window}")),
                            equals: None,
                            not_equals: None,
                            below: None,
                            above: Some(Scalar::Integer(0)),
                            at_least: None,
                            at_most: None,
                        }),
                        Condition::Counter(CounterCondition {
                            name: String::from("TcpExt.ListenDrops"),
                            measure: CounterMeasure::Growth,
                            window: Some(String::from("${sample_window}")),
                            equals: None,
                            not_equals: None,
                            below: None,
                            above: Some(Scalar::Integer(0)),
                            at_least: None,
                            at_most: None,
                        }),
                        Condition::Counter(CounterCondition {
                            name: String::from("TcpExt.TCPReqQFullDrop"),
                            measure: CounterMeasure::Growth,
                            window: Some(String::from("${sample_window}")),
                            equals: None,
                            not_equals: None,
                            below: None,
                            above: Some(Scalar::Integer(0)),
                            at_least: None,
                            at_most: None,
                        }),
                        Condition::Counter(CounterCondition {
                            name: String::from("TcpExt.TCPReqQFullDoCookies"),
                            measure: CounterMeasure::Growth,
                            window: Some(String::from("${sample_window}")),
                            equals: None,
                            not_equals: None,
                            below: None,
                            above: Some(Scalar::Integer(0)),
                            at_least: None,
                            at_most: None,
                        }),
                        Condition::KernelLog(KernelLogCondition {
                            pattern: String::from("Possible SYN flooding on port"),
                            within: String::from("${log_window}"),
                            at_least: 1,
                        }),
                    ]),
                    Condition::ListenQueue(ListenQueueCondition {
                        limit: ListenLimit::Somaxconn,
                    }),
                    Condition::Sysctl(SysctlCondition {
                        key: String::from("net.core.somaxconn"),
                        measure: Measure::Value,
                        ratio_of: None,
                        equals: None,
                        not_equals: None,
                        below: Some(Scalar::Text(String::from("${min_somaxconn}"))),
                        above: None,
                        at_least: None,
                        at_most: None,
                    }),
                ]),
                fix: vec![
                    Action::SetSysctl(SetSysctl {
                        key: String::from("net.core.somaxconn"),
                        value: None,
                        at_least: Some(Scalar::Text(String::from("${min_somaxconn}"))),
                        at_most: None,
                        widen_to: None,
                    }),
                ],
            },
            Rule {
                id: String::from("listen-backlog-own-limit"),
                description: String::from("Listen queues are overflowing now and a listener's own backlog, below somaxconn, is the limit (report only: the application's backlog setting is the fix; a listener that started before somaxconn was raised keeps its old cap until it calls listen(2) again, on a restart or reload).\n"),
                detect: Condition::All(vec![
                    Condition::Any(vec![
                        Condition::Counter(CounterCondition {
                            name: String::from("TcpExt.ListenOverflows"),
                            measure: CounterMeasure::Growth,
                            window: Some(String::from("${sample_window}")),
                            equals: None,
                            not_equals: None,
                            below: None,
                            above: Some(Scalar::Integer(0)),
                            at_least: None,
                            at_most: None,
                        }),
                        Condition::Counter(CounterCondition {
                            name: String::from("TcpExt.ListenDrops"),
                            measure: CounterMeasure::Growth,
                            window: Some(String::from("${sample_window}")),
                            equals: None,
                            not_equals: None,
                            below: None,
                            above: Some(Scalar::Integer(0)),
                            at_least: None,
                            at_most: None,
                        }),
                        Condition::Counter(CounterCondition {
                            name: String::from("TcpExt.TCPReqQFullDrop"),
                            measure: CounterMeasure::Growth,
                            window: Some(String::from("${sample_window}")),
                            equals: None,
                            not_equals: None,
                            below: None,
                            above: Some(Scalar::Integer(0)),
                            at_least: None,
                            at_most: None,
                        }),
                        Condition::Counter(CounterCondition {
                            name: String::from("TcpExt.TCPReqQFullDoCookies"),
                            measure: CounterMeasure::Growth,
                            window: Some(String::from("${sample_window}")),
                            equals: None,
                            not_equals: None,
                            below: None,
                            above: Some(Scalar::Integer(0)),
                            at_least: None,
                            at_most: None,
                        }),
                        Condition::KernelLog(KernelLogCondition {
                            pattern: String::from("Possible SYN flooding on port"),
                            within: String::from("${log_window}"),
                            at_least: 1,
                        }),
                    ]),
                    Condition::ListenQueue(ListenQueueCondition {
                        limit: ListenLimit::OwnBacklog,
                    }),
                ]),
                fix: Vec::new(),
            },
            Rule {
                id: String::from("syncookies-off"),
                description: String::from("Listen queues are overflowing now and SYN cookies are off."),
                detect: Condition::All(vec![
                    Condition::Any(vec![
                        Condition::Counter(CounterCondition {
                            name: String::from("TcpExt.ListenOverflows"),
                            measure: CounterMeasure::Growth,
                            window: Some(String::from("${sample_window}")),
                            equals: None,
                            not_equals: None,
                            below: None,
                            above: Some(Scalar::Integer(0)),
                            at_least: None,
                            at_most: None,
                        }),
                        Condition::Counter(CounterCondition {
                            name: String::from("TcpExt.ListenDrops"),
                            measure: CounterMeasure::Growth,
                            window: Some(String::from("${sample_window}")),
                            equals: None,
                            not_equals: None,
                            below: None,
                            above: Some(Scalar::Integer(0)),
                            at_least: None,
                            at_most: None,
                        }),
                        Condition::Counter(CounterCondition {
                            name: String::from("TcpExt.TCPReqQFullDrop"),
                            measure: CounterMeasure::Growth,
                            window: Some(String::from("${sample_window}")),
                            equals: None,
                            not_equals: None,
                            below: None,
                            above: Some(Scalar::Integer(0)),
                            at_least: None,
                            at_most: None,
                        }),
                        Condition::Counter(CounterCondition {
                            name: String::from("TcpExt.TCPReqQFullDoCookies"),
                            measure: CounterMeasure::Growth,
                            window: Some(String::from("${sample_window}")),
                            equals: None,
                            not_equals: None,
                            below: None,
                            above: Some(Scalar::Integer(0)),
                            at_least: None,
                            at_most: None,
                        }),
                        Condition::KernelLog(KernelLogCondition {
                            pattern: String::from("Possible SYN flooding on port"),
                            within: String::from("${log_window}"),
                            at_least: 1,
                        }),
                    ]),
                    Condition::Sysctl(SysctlCondition {
                        key: String::from("net.ipv4.tcp_syncookies"),
                        measure: Measure::Value,
                        ratio_of: None,
                        equals: Some(Scalar::Integer(0)),
                        not_equals: None,
                        below: None,
                        above: None,
                        at_least: None,
                        at_most: None,
                    }),
                ]),
                fix: vec![
                    Action::SetSysctl(SetSysctl {
                        key: String::from("net.ipv4.tcp_syncookies"),
                        value: Some(Scalar::Integer(1)),
                        at_least: None,
                        at_most: None,
                        widen_to: None,
                    }),
                ],
            },
        ],
    }
}

fn jvm_heap_yml() -> Playbook {
    Playbook {
        name: String::from("jvm-heap"),
        description: String::from("Symptom: a Java service in a container or under a systemd MemoryMax/MemoryLimit restarts or resets connections, and the kernel log says \"Memory cgroup out of memory: Kill process N (java)\" (newer kernels: \"oom-kill:constraint=CONSTRAINT_MEMCG ... task=java\"). The JVM's heap is allowed to grow past what the cgroup limit holds once its non-heap memory is counted, so the kernel kills it. Fires when a running java process's maximum heap (-Xmx, or MaxRAMPercentage of the limit, or of host memory with -XX:-UseContainerSupport) plus a headroom for non-heap memory exceeds its cgroup limit, or when a java process was OOM-killed in its cgroup recently. Fix: cap the heap where the JVM reads it: -Xmx becomes heap_percent of the smallest limit seen, and never more than the limit minus the headroom. Without --var env_file, the service is found from the process's cgroup (…/tomcat9.service) and the variable from where the winning heap flag came from (JAVA_OPTS when catalina.sh put it on the command line, where it beats JAVA_TOOL_OPTIONS); the change is a drop-in /etc/systemd/system/UNIT.d/90-tune-jvm-heap.conf with Environment=, or an edit of the unit's EnvironmentFile= when that file sets the variable. A JVM in a container, or a heap flag written literally in ExecStart=, needs input. With --var env_file=PATH, that file is edited. Only heap flags in that variable are replaced; other options, comments and keys are kept. Safe because nothing running is touched: the change takes effect when the service restarts, and rollback restores the file byte for byte (or removes it).\n"),
        variables: BTreeMap::from([
            (String::from("env_dialect"), Variable {
                default: Scalar::Text(String::from("")),
                description: String::from("Who reads env_file, whose quoting rules the edit follows: systemd, shell, docker or unknown. Empty: shell for /etc/default and /etc/sysconfig files, else unknown (only lines systemd, sh and docker read alike are edited).\n"),
            }),
            (String::from("env_file"), Variable {
                default: Scalar::Text(String::from("")),
                description: String::from("The KEY=VALUE environment file the JVM's service reads, e.g. /etc/default/tomcat9; empty: found from the process's systemd unit.\n"),
            }),
            (String::from("env_var"), Variable {
                default: Scalar::Text(String::from("JAVA_TOOL_OPTIONS")),
                description: String::from("The variable holding the JVM options, when the variable cannot be worked out from the process (with env_file given, or when no heap flag is set). JAVA_TOOL_OPTIONS is read by every JVM, but an -Xmx on the command line overrides it; use JAVA_OPTS or CATALINA_OPTS where the start script passes those on the command line.\n"),
            }),
            (String::from("headroom"), Variable {
                default: Scalar::Text(String::from("128MiB")),
                description: String::from("Memory the JVM needs besides the heap (metaspace, code cache, threads, buffers)."),
            }),
            (String::from("heap_percent"), Variable {
                default: Scalar::Integer(75),
                description: String::from("The heap cap, as a percentage of the cgroup memory limit."),
            }),
            (String::from("oom_window"), Variable {
                default: Scalar::Text(String::from("24h")),
                description: String::from("How far back to look for memcg OOM kills of java in the kernel log."),
            }),
        ]),
        rules: vec![
            Rule {
                id: String::from("heap-over-cgroup-limit"),
                description: String::from("A java process may grow its heap past its cgroup memory limit, or was OOM-killed in its cgroup."),
                detect: Condition::Any(vec![
                    Condition::JvmHeap(JvmHeapCondition {
                        headroom: Scalar::Text(String::from("${headroom}")),
                    }),
                    Condition::OomKill(OomKillCondition {
                        comm: String::from("java"),
                        within: String::from("${oom_window}"),
                    }),
                ]),
                fix: vec![
                    Action::SetEnv(SetEnv {
                        file: String::from("${env_file}"),
                        key: String::from("${env_var}"),
                        value: None,
                        jvm_heap_flags: None,
                        heap_percent_of_limit: Some(Scalar::Text(String::from("${heap_percent}"))),
                        dialect: Some(String::from("${env_dialect}")),
                    }),
                ],
            },
        ],
    }
}

fn netem_yml() -> Playbook {
    Playbook {
        name: String::from("netem"),
        description: String::from("Symptom: steady packet loss, latency or retransmissions on a host whose links and peers are healthy, e.g. hping3 showing 30% loss to a healthy nginx; `tc -s qdisc show` reveals a `netem` root qdisc (`qdisc netem 800d: root ... loss 30%`) left behind by a fault-injection test. netem exists only to impair traffic, so a root netem qdisc with loss, delay, duplication or corruption on a production link is a leftover. Fix: delete that root qdisc; the link falls back to its default qdisc. Safe because the plan shows every option that will be removed, and rollback re-creates the qdisc exactly (same kind, handle, parent and option bytes).\n"),
        variables: BTreeMap::from([
            (String::from("links"), Variable {
                default: Scalar::Text(String::from("*")),
                description: String::from("Glob of the link names to look at."),
            }),
        ]),
        rules: vec![
            Rule {
                id: String::from("leftover-netem"),
                description: String::from("A root netem qdisc impairs traffic (loss, delay, duplication or corruption)."),
                detect: Condition::Any(vec![
                    Condition::Qdisc(QdiscCondition {
                        kind: Some(String::from("netem")),
                        link: String::from("${links}"),
                        loss_above: Some(Scalar::Integer(0)),
                        delay_above_ms: None,
                        jitter_above_ms: None,
                        duplicate_above: None,
                        corrupt_above: None,
                        reorder_above: None,
                    }),
                    Condition::Qdisc(QdiscCondition {
                        kind: Some(String::from("netem")),
                        link: String::from("${links}"),
                        loss_above: None,
                        delay_above_ms: Some(Scalar::Integer(0)),
                        jitter_above_ms: None,
                        duplicate_above: None,
                        corrupt_above: None,
                        reorder_above: None,
                    }),
                    Condition::Qdisc(QdiscCondition {
                        kind: Some(String::from("netem")),
                        link: String::from("${links}"),
                        loss_above: None,
                        delay_above_ms: None,
                        jitter_above_ms: None,
                        duplicate_above: Some(Scalar::Integer(0)),
                        corrupt_above: None,
                        reorder_above: None,
                    }),
                    Condition::Qdisc(QdiscCondition {
                        kind: Some(String::from("netem")),
                        link: String::from("${links}"),
                        loss_above: None,
                        delay_above_ms: None,
                        jitter_above_ms: None,
                        duplicate_above: None,
                        corrupt_above: Some(Scalar::Integer(0)),
                        reorder_above: None,
                    }),
                ]),
                fix: vec![
                    Action::DeleteRootQdisc(DeleteRootQdisc {
                        kind: String::from("netem"),
                    }),
                ],
            },
        ],
    }
}

fn mtu_yml() -> Playbook {
    Playbook {
        name: String::from("mtu"),
        description: String::from("Symptom: connections open but then hang. SYN-only probes (TCP health checks, `nc -z`, hping3 -S) pass and small requests answer, while full-size requests (a GET that returns more than a few hundred bytes, a TLS handshake with a certificate chain) stall until they time out. The cause is an MTU mismatch along the path, e.g. 576 on one end of a veth pair whose other end uses 1500: SYNs and small packets fit, full-size frames from the 1500-byte side are dropped at the small-MTU interface without any ICMP error, so path-MTU discovery cannot help. Fires only on a mismatch the host can see, never on a number alone (clouds and overlays run below 1500 on purpose: 1460 on GCE, 1450 under VXLAN, 1400, 8951/9001 jumbo): a veth below its peer (in any namespace), a bridge or bond port below its master, a VLAN, macvlan or VXLAN above what its lower device carries (VXLAN needs 50 bytes over IPv4, 70 over IPv6). Fix: raise the lower end to the larger end's MTU, never above its peer, master, lower device or maximum MTU; a VLAN or VXLAN too large for its lower device comes down to what that device carries, since the lower device's own path (the physical network) is not visible from the host. Rollback restores the previous MTU. Opt-in: set `expected_mtu_links` to a glob (and `expected_mtu`) to also raise links the operator knows should carry that MTU.\n"),
        variables: BTreeMap::from([
            (String::from("expected_mtu"), Variable {
                default: Scalar::Integer(1500),
                description: String::from("The MTU that the links named by `expected_mtu_links` must carry."),
            }),
            (String::from("expected_mtu_links"), Variable {
                default: Scalar::Text(String::from("")),
                description: String::from("Glob of the links that must carry `expected_mtu`; empty (the default) names no link, so a lone NIC below 1500 is left alone.\n"),
            }),
            (String::from("links"), Variable {
                default: Scalar::Text(String::from("*")),
                description: String::from("Glob of the link names to look at for mismatches."),
            }),
        ]),
        rules: vec![
            Rule {
                id: String::from("mtu-path-mismatch"),
                description: String::from("A link's MTU disagrees with its veth peer, its bridge or bond, or its lower device."),
                detect: Condition::Link(LinkCondition {
                    name: String::from("${links}"),
                    kind: Vec::new(),
                    max_mtu_at_least: None,
                    path_mismatch: true,
                    equals: None,
                    not_equals: None,
                    below: None,
                    above: None,
                    at_least: None,
                    at_most: None,
                }),
                fix: vec![
                    Action::SetMtu(SetMtu {
                        value: None,
                        to_path: true,
                    }),
                ],
            },
            Rule {
                id: String::from("mtu-below-expected"),
                description: String::from("A link the operator named has an MTU below the one they declared for it."),
                detect: Condition::Link(LinkCondition {
                    name: String::from("${expected_mtu_links}"),
                    kind: Vec::new(),
                    max_mtu_at_least: Some(Scalar::Text(String::from("${expected_mtu}"))),
                    path_mismatch: false,
                    equals: None,
                    not_equals: None,
                    below: Some(Scalar::Text(String::from("${expected_mtu}"))),
                    above: None,
                    at_least: None,
                    at_most: None,
                }),
                fix: vec![
                    Action::SetMtu(SetMtu {
                        value: Some(Scalar::Text(String::from("${expected_mtu}"))),
                        to_path: false,
                    }),
                ],
            },
        ],
    }
}

fn time_wait_overflow_yml() -> Playbook {
    Playbook {
        name: String::from("time-wait-overflow"),
        description: String::from("Symptom: a busy server or proxy logs \"TCP: time wait bucket table overflow\" and `TcpExt: TCPTimeWaitOverflow` grows: the namespace already holds net.ipv4.tcp_max_tw_buckets sockets in TIME_WAIT, so the kernel destroys closing sockets at once instead of keeping them in TIME_WAIT, and a delayed segment of the old connection can then corrupt a new one on the same ports. Fix: raise net.ipv4.tcp_max_tw_buckets (per network namespace) to at least 262144. Safe because it only raises a ceiling (never lowers it): a TIME_WAIT socket is a 256-byte slab object (tw_sock_TCP in /proc/slabinfo), so 262144 of them cost 64 MiB at worst, and only when that many connections really closed in the last minute. Never tcp_tw_recycle: it broke clients behind NAT and was removed in Linux 4.12. The kernel-log line (which not every kernel prints; the counter always counts) is host-wide and names no namespace; the counter is the namespace's own.\n"),
        variables: BTreeMap::from([
            (String::from("log_window"), Variable {
                default: Scalar::Text(String::from("1h")),
                description: String::from("How far back to look for the overflow line in the kernel log."),
            }),
            (String::from("max_tw_buckets"), Variable {
                default: Scalar::Integer(262144),
                description: String::from("The TIME_WAIT ceiling to raise net.ipv4.tcp_max_tw_buckets to (never lowered)."),
            }),
            (String::from("sample_window"), Variable {
                default: Scalar::Text(String::from("2s")),
                description: String::from("How long to watch TCPTimeWaitOverflow grow (`tune plan --sample-window` overrides it).\n"),
            }),
        ]),
        rules: vec![
            Rule {
                id: String::from("time-wait-bucket-overflow"),
                description: String::from("The kernel destroyed closing sockets because the TIME_WAIT table was full."),
                detect: Condition::Any(vec![
                    Condition::Counter(CounterCondition {
                        name: String::from("TcpExt.TCPTimeWaitOverflow"),
                        measure: CounterMeasure::Growth,
                        window: Some(String::from("${sample_window}")),
                        equals: None,
                        not_equals: None,
                        below: None,
                        above: Some(Scalar::Integer(0)),
                        at_least: None,
                        at_most: None,
                    }),
                    Condition::KernelLog(KernelLogCondition {
                        pattern: String::from("TCP: time wait bucket table overflow"),
                        within: String::from("${log_window}"),
                        at_least: 1,
                    }),
                ]),
                fix: vec![
                    Action::SetSysctl(SetSysctl {
                        key: String::from("net.ipv4.tcp_max_tw_buckets"),
                        value: None,
                        at_least: Some(Scalar::Text(String::from("${max_tw_buckets}"))),
                        at_most: None,
                        widen_to: None,
                    }),
                ],
            },
        ],
    }
}

fn softnet_yml() -> Playbook {
    Playbook {
        name: String::from("softnet"),
        description: String::from("Symptom: receive-heavy hosts drop packets with no NIC error and a ksoftirqd thread eats a CPU; /proc/net/softnet_stat shows, per CPU, `dropped` (column 2: the input backlog already held net.core.netdev_max_backlog packets) or `time_squeeze` (column 3: the receive softirq stopped with packets left because it used up net.core.netdev_budget packets or netdev_budget_usecs) growing now: the file is read twice, a sampling window apart (1s, or --sample-window), and only growth over the window fires; counts since boot (drops months ago) never do. Fix: raise netdev_max_backlog on drops, netdev_budget and netdev_budget_usecs on squeezes. Safe because each only raises a ceiling (never lowers one): a longer backlog costs memory only for packets really queued, and a larger budget lets one softirq run process more packets before yielding, which is what bpftune's net_buffer tuner does in the same cases (it grows netdev_max_backlog by a quarter when drops in the last minute reach 1/32 of the backlog, and netdev_budget when time_squeeze grows). Here any drop or squeeze within the window fires (the threshold depends on the current backlog, which a condition cannot scale by); the window is much shorter than bpftune's minute, so a drop in it is a drop happening now. These keys and the file are host-wide, not per network namespace: inside one the keys do not exist and the rules stay undecided; run it from the initial namespace.\n"),
        variables: BTreeMap::from([
            (String::from("min_backlog"), Variable {
                default: Scalar::Integer(4096),
                description: String::from("The per-CPU input backlog to raise net.core.netdev_max_backlog to."),
            }),
            (String::from("min_budget"), Variable {
                default: Scalar::Integer(600),
                description: String::from("The packets per receive softirq run to raise net.core.netdev_budget to."),
            }),
            (String::from("min_budget_usecs"), Variable {
                default: Scalar::Integer(8000),
                description: String::from("The microseconds per receive softirq run to raise net.core.netdev_budget_usecs to."),
            }),
        ]),
        rules: vec![
            Rule {
                id: String::from("backlog-drops"),
                description: String::from("Packets are being dropped because a CPU's input backlog is full."),
                detect: Condition::All(vec![
                    Condition::Softnet(SoftnetCondition {
                        stat: SoftnetStat::Dropped,
                        window: None,
                        equals: None,
                        not_equals: None,
                        below: None,
                        above: Some(Scalar::Integer(0)),
                        at_least: None,
                        at_most: None,
                    }),
                    Condition::Sysctl(SysctlCondition {
                        key: String::from("net.core.netdev_max_backlog"),
                        measure: Measure::Value,
                        ratio_of: None,
                        equals: None,
                        not_equals: None,
                        below: Some(Scalar::Text(String::from("${min_backlog}"))),
                        above: None,
                        at_least: None,
                        at_most: None,
                    }),
                ]),
                fix: vec![
                    Action::SetSysctl(SetSysctl {
                        key: String::from("net.core.netdev_max_backlog"),
                        value: None,
                        at_least: Some(Scalar::Text(String::from("${min_backlog}"))),
                        at_most: None,
                        widen_to: None,
                    }),
                ],
            },
            Rule {
                id: String::from("budget-squeeze"),
                description: String::from("The receive softirq is running out of budget with packets left."),
                detect: Condition::All(vec![
                    Condition::Softnet(SoftnetCondition {
                        stat: SoftnetStat::TimeSqueeze,
                        window: None,
                        equals: None,
                        not_equals: None,
                        below: None,
                        above: Some(Scalar::Integer(0)),
                        at_least: None,
                        at_most: None,
                    }),
                    Condition::Any(vec![
                        Condition::Sysctl(SysctlCondition {
                            key: String::from("net.core.netdev_budget"),
                            measure: Measure::Value,
                            ratio_of: None,
                            equals: None,
                            not_equals: None,
                            below: Some(Scalar::Text(String::from("${min_budget}"))),
                            above: None,
                            at_least: None,
                            at_most: None,
                        }),
                        Condition::Sysctl(SysctlCondition {
                            key: String::from("net.core.netdev_budget_usecs"),
                            measure: Measure::Value,
                            ratio_of: None,
                            equals: None,
                            not_equals: None,
                            below: Some(Scalar::Text(String::from("${min_budget_usecs}"))),
                            above: None,
                            at_least: None,
                            at_most: None,
                        }),
                    ]),
                ]),
                fix: vec![
                    Action::SetSysctl(SetSysctl {
                        key: String::from("net.core.netdev_budget"),
                        value: None,
                        at_least: Some(Scalar::Text(String::from("${min_budget}"))),
                        at_most: None,
                        widen_to: None,
                    }),
                    Action::SetSysctl(SetSysctl {
                        key: String::from("net.core.netdev_budget_usecs"),
                        value: None,
                        at_least: Some(Scalar::Text(String::from("${min_budget_usecs}"))),
                        at_most: None,
                        widen_to: None,
                    }),
                ],
            },
        ],
    }
}

fn conntrack_sizing_yml() -> Playbook {
    Playbook {
        name: String::from("conntrack-sizing"),
        description: String::from("Symptom: new flows are dropped or stall under load although nf_conntrack_count may look fine now, and /proc/net/stat/nf_conntrack shows `drop` (no entry could be made: the table was full), `early_drop` (entries evicted to make room) or `insert_failed` (a hash chain grew too long or an insertion lost a race) growing on some CPU: the file is read twice, a sampling window apart (1s, or --sample-window), and only growth over the window fires, never counts since the module loaded. Fix: raise net.netfilter.nf_conntrack_buckets together with nf_conntrack_max, keeping the kernel's default ratio: since Linux 5.15 (commit d532bcd0b269, \"netfilter: conntrack: sanitize table size default settings\") the default max equals the number of buckets, so both go to 1048576. Safe because both only rise (never lower): the hash table costs 8 bytes per bucket (8 MiB for 1048576, allocated at once), entries about 300 bytes each and only for flows that really exist, and the kernel resizes the table in place. nf_conntrack_buckets is writable only in the initial network namespace (elsewhere it is read-only and apply fails and rolls back); there, or at boot, set the module parameter instead: /sys/module/nf_conntrack/parameters/hashsize, or `options nf_conntrack hashsize=N` in /etc/modprobe.d.\n"),
        variables: BTreeMap::from([
            (String::from("conntrack_buckets"), Variable {
                default: Scalar::Integer(1048576),
                description: String::from("The hash table size to raise net.netfilter.nf_conntrack_buckets to (never lowered)."),
            }),
            (String::from("conntrack_max"), Variable {
                default: Scalar::Integer(1048576),
                description: String::from("The table size to raise net.netfilter.nf_conntrack_max to (never lowered); keep it equal to conntrack_buckets (the kernel's default ratio)."),
            }),
        ]),
        rules: vec![
            Rule {
                id: String::from("conntrack-insert-drops"),
                description: String::from("Connection tracking is dropping, evicting or failing to insert entries. nf_conntrack_buckets is writable only in the initial network namespace; where it is read-only, set the nf_conntrack module parameter hashsize instead."),
                detect: Condition::Any(vec![
                    Condition::ConntrackStat(ConntrackStatCondition {
                        name: String::from("drop"),
                        window: None,
                        equals: None,
                        not_equals: None,
                        below: None,
                        above: Some(Scalar::Integer(0)),
                        at_least: None,
                        at_most: None,
                    }),
                    Condition::ConntrackStat(ConntrackStatCondition {
                        name: String::from("early_drop"),
                        window: None,
                        equals: None,
                        not_equals: None,
                        below: None,
                        above: Some(Scalar::Integer(0)),
                        at_least: None,
                        at_most: None,
                    }),
                    Condition::ConntrackStat(ConntrackStatCondition {
                        name: String::from("insert_failed"),
                        window: None,
                        equals: None,
                        not_equals: None,
                        below: None,
                        above: Some(Scalar::Integer(0)),
                        at_least: None,
                        at_most: None,
                    }),
                ]),
                fix: vec![
                    Action::SetSysctl(SetSysctl {
                        key: String::from("net.netfilter.nf_conntrack_buckets"),
                        value: None,
                        at_least: Some(Scalar::Text(String::from("${conntrack_buckets}"))),
                        at_most: None,
                        widen_to: None,
                    }),
                    Action::SetSysctl(SetSysctl {
                        key: String::from("net.netfilter.nf_conntrack_max"),
                        value: None,
                        at_least: Some(Scalar::Text(String::from("${conntrack_max}"))),
                        at_most: None,
                        widen_to: None,
                    }),
                ],
            },
        ],
    }
}

fn softirq_yml() -> Playbook {
    Playbook {
        name: String::from("softirq"),
        description: String::from("Symptom: one CPU sits at 100% in `si` (top) or a ksoftirqd/N thread eats a CPU while applications on it slow down. Report only: it names the busiest CPU with its softirq share, every CPU's share and NET_RX count, and the next step from the field notes, a profile of that CPU's ksoftirqd thread (`perf record -a -g -p PID -- sleep 30`, then `perf report` or a flame graph), and the signals that usually explain it: softnet backlog drops and budget squeezes, connection-tracking drops, NIC receive drops. It changes nothing, so it is safe anywhere. The shares are over a sampling window (/proc/stat read twice, 1s apart or --sample-window), not since boot, so a CPU that was busy once does not fire. The numbers are host-wide, not per network namespace.\n"),
        variables: BTreeMap::from([
            (String::from("softirq_share"), Variable {
                default: Scalar::Float(0.2),
                description: String::from("Fire when some CPU spent at least this share of the sampling window in softirqs."),
            }),
        ]),
        rules: vec![
            Rule {
                id: String::from("softirq-cpu-hot"),
                description: String::from("A CPU spends a large share of its time in softirqs (report only)."),
                detect: Condition::SoftirqCpu(SoftirqCpuCondition {
                    window: None,
                    equals: None,
                    not_equals: None,
                    below: None,
                    above: None,
                    at_least: Some(Scalar::Text(String::from("${softirq_share}"))),
                    at_most: None,
                }),
                fix: Vec::new(),
            },
        ],
    }
}

fn nic_ring_yml() -> Playbook {
    Playbook {
        name: String::from("nic-ring"),
        description: String::from("Symptom: a busy NIC drops packets before the kernel sees them; `netstat -i` or `ip -s link` shows RX-OVR / \"missed\" growing, `ethtool -S` rx_missed or rx_fifo_errors, and TCP retransmits and timeouts follow. The NIC found no free descriptor in its RX ring (rx_missed_errors) or its receive FIFO overran (rx_fifo_errors) because the ring was emptied too slowly for a burst. Only the growth of these counters over the sampling window counts, never their value since the device was created: a NIC that dropped once, months ago, is quiet. rx_dropped (RX-DRP) is left out on purpose: it counts drops in the stack after the ring (unknown protocols, an inactive bond port, no memory, a full softnet backlog, which the softnet playbook answers), and a larger ring cures none of them. Fix: raise the link's RX ring to the maximum its driver reports (ethtool netlink RINGS_SET, as `ethtool -G LINK rx MAX`), only on a link whose ring is below that maximum. Safe because the driver's own maximum is never exceeded; the cost is memory, a receive buffer pinned per descriptor and queue (a few MiB per queue at 4096 descriptors); the new size is read back and verified, and rollback sets the exact size before. Be aware that some drivers reset the link to resize the ring: expect a short carrier drop on those (virtio-net and many Intel NICs reallocate the queues). When the ring is already at its maximum the drops are reported, with no change: spread the load instead (more queues or RSS, interrupt affinity, coalescing). Links without ring parameters (veth, loopback, bridges) are never changed.\n"),
        variables: BTreeMap::from([
            (String::from("drops_above"), Variable {
                default: Scalar::Integer(0),
                description: String::from("Fire when rx_missed_errors or rx_fifo_errors grow by more than this over the sampling window."),
            }),
            (String::from("link"), Variable {
                default: Scalar::Text(String::from("*")),
                description: String::from("Glob of the links whose ring drops are watched and whose RX ring is raised."),
            }),
        ]),
        rules: vec![
            Rule {
                id: String::from("rx-ring-overrun"),
                description: String::from("The NIC ran out of RX ring descriptors during the window, and its RX ring is below the driver's maximum."),
                detect: Condition::RxDrops(RxDropsCondition {
                    link: String::from("${link}"),
                    stat: RxDropStat::Ring,
                    ring: Some(RingState::BelowMax),
                    window: None,
                    equals: None,
                    not_equals: None,
                    below: None,
                    above: Some(Scalar::Text(String::from("${drops_above}"))),
                    at_least: None,
                    at_most: None,
                }),
                fix: vec![
                    Action::SetRxRing(SetRxRing {
                        link: String::from("${link}"),
                        to: RingTarget::Max,
                    }),
                ],
            },
            Rule {
                id: String::from("rx-ring-overrun-at-max"),
                description: String::from("The NIC ran out of RX ring descriptors during the window though its RX ring is at the driver's maximum; a larger ring is no remedy (report only)."),
                detect: Condition::RxDrops(RxDropsCondition {
                    link: String::from("${link}"),
                    stat: RxDropStat::Ring,
                    ring: Some(RingState::AtMax),
                    window: None,
                    equals: None,
                    not_equals: None,
                    below: None,
                    above: Some(Scalar::Text(String::from("${drops_above}"))),
                    at_least: None,
                    at_most: None,
                }),
                fix: Vec::new(),
            },
        ],
    }
}
