# Kernel-lab scenarios, sourced by /init inside the disposable VM (busybox sh).
#
# Each scenario creates its fault for real, measures the symptom, runs
# `tune plan --detailed-exitcode` (2, with evidence), `tune apply --yes`, measures the
# symptom gone, `tune plan` (0), `tune rollback`, and checks the exact fault is back.
# Console protocol read by tests/lab.rs:
#   LAB-BEGIN name=S                         a scenario starts
#   LAB name=S LABEL free text               a measurement (LABEL: fault, before, after, ...)
#   LAB-LOG name=S text                      commands and their output, for the record
#   LAB-FX file=F line                       one line of a fixture file F
#   LAB-RESULT name=S status=pass|fail|pending reason=...
# Scenarios needing features from other branches (netem/MTU, JVM, --netns) still create
# and measure their faults, then report `pending` until `tune` knows the feature.

# Debian's static busybox runs its own (much smaller) ip and tc applets in preference
# to PATH; these functions make the shell use the real iproute2 tools.
ip() { /usr/sbin/ip "$@"; }
tc() { /usr/sbin/tc "$@"; }

S=init
FAILS=""
PENDING=""

begin() {
    S=$1
    FAILS=""
    PENDING=""
    RUN=""
    MEASURE_HOOK=""
    APPLY_HOOK=""
    ROLLBACK_HOOK=""
    export TUNE_STATE_DIR="/tmp/state-$S"
    mkdir -p "$TUNE_STATE_DIR" && chmod 700 "$TUNE_STATE_DIR"
    echo "LAB-BEGIN name=$S"
}

rec() {
    label=$1
    shift
    echo "LAB name=$S $label $*"
}

fail() {
    FAILS="$FAILS; $*"
    echo "LAB-LOG name=$S FAIL: $*"
}

pending() {
    PENDING="pending: feature not in this build ($*)"
    echo "LAB-LOG name=$S $PENDING"
}

finish() {
    if [ -n "$FAILS" ]; then
        status=fail
    elif [ -n "$PENDING" ]; then
        status=pending
    else
        status=pass
    fi
    echo "LAB-RESULT name=$S status=$status reason=${FAILS#; }${PENDING}"
}

# expect_exit CODE CMD...: runs CMD, logs its output (kept in $OUT), checks its status.
expect_exit() {
    want=$1
    shift
    echo "LAB-LOG name=$S \$ $*"
    OUT=$("$@" 2>&1)
    rc=$?
    printf '%s\n' "$OUT" | sed "s/^/LAB-LOG name=$S | /"
    [ "$rc" = "$want" ] || fail "'$*' exited $rc, want $want"
}

# plan_json CODE FILE CMD...: like expect_exit, with stdout (only) saved in FILE.
plan_json() {
    want=$1
    file=$2
    shift 2
    echo "LAB-LOG name=$S \$ $* >$file"
    "$@" >"$file" 2>/tmp/stderr
    rc=$?
    sed "s/^/LAB-LOG name=$S | /" "$file" /tmp/stderr
    [ "$rc" = "$want" ] || fail "'$*' exited $rc, want $want"
}

# expect_output TEXT: the last expect_exit output mentions TEXT (the evidence).
expect_output() {
    printf '%s' "$OUT" | grep -qF -- "$1" || fail "output lacks '$1'"
}

# field KEY "k=v k=v ...": the value of KEY.
field() {
    printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n1
}

# check DESCRIPTION TEST...: records a failure unless the test holds.
check() {
    what=$1
    shift
    "$@" 2>/dev/null || fail "$what"
}

fixture() {
    sed "s|^|LAB-FX file=$1 |"
}

# has_feature NAME: whether this tune build knows the feature (gates pending scenarios).
has_feature() {
    case $1 in
    netem) tune schema | grep -qi qdisc ;;
    mtu) tune schema | grep -qi mtu ;;
    jvm) tune schema | grep -qiE 'java|env_file|oom' ;;
    netns) tune plan --help | grep -q -- --netns ;;
    *) return 1 ;;
    esac
}

# kmsg: the kernel log in /dev/kmsg's own record format ("prio,seq,usec,flags;text"),
# which is what tune's kernel-log probe parses. Reading blocks at the end: stop it.
kmsg() {
    timeout 1 cat /dev/kmsg
}

# veth_pair N: namespaces labNa and labNb joined by a veth vNa (10.N.0.1/24) <->
# vNb (10.N.0.2/24), both up.
veth_pair() {
    ip netns add "lab$1a" && ip netns add "lab$1b" &&
        ip link add "v$1a" netns "lab$1a" type veth peer name "v$1b" netns "lab$1b" ||
        fail "cannot create the veth pair"
    for side in a:1 b:2; do
        ns="ip netns exec lab$1${side%:*}"
        $ns ip addr add "10.$1.0.${side#*:}/24" dev "v$1${side%:*}"
        $ns ip link set "v$1${side%:*}" up
        $ns ip link set lo up
    done
}

sysctl_path() {
    echo "/proc/sys/$(echo "$1" | tr . /)"
}

# ---------------------------------------------------------------------------------
# sysctl_cycle KEY FAULT SYMPTOM PORT COUNT TIMEOUT_MS EVIDENCE: the common course of
# the sysctl scenarios, run through $RUN (a namespace's `ip netns exec`, or empty for
# the VM's own namespace) once the scenario has set KEY to FAULT. A burst of COUNT
# concurrent connects shows SYMPTOM (a `labhelper burst` field) above 0; plan exits 2
# naming KEY and EVIDENCE; apply; the same burst shows no SYMPTOM and every connect
# succeeds; plan exits 0; rollback restores FAULT exactly and the symptom is back.
# $MEASURE_HOOK, when set, runs after the first burst to record more of the symptom;
# $APPLY_HOOK right after the apply (its output in $OUT), $ROLLBACK_HOOK after the
# rollback, to check the other keys a plan changes.
# $DURING, when set, is a symptom that tune must see happen (a counter's growth): once
# the first burst is over, plan exits 0 (history alone does not fire); then $DURING
# runs in a loop while tune plans and applies. With $DURING_CALM_RULE, the calm plan
# is only checked not to fire that rule (other rules may fire on the history, such as
# a kernel-log line of the last hour).
sysctl_cycle() {
    key=$1 fault=$2 symptom=$3 port=$4 count=$5 timeout=$6 evidence=$7
    path=$(sysctl_path "$key")
    rec fault "$key=$(sysctl_value)"
    before=$($RUN labhelper burst "$port" "$count" 4096 "$timeout")
    rec before "$count concurrent connects: $before"
    check "no $symptom before apply" [ "$(field "$symptom" "$before")" -gt 0 ]
    [ -z "$MEASURE_HOOK" ] || $MEASURE_HOOK

    if [ -n "$DURING" ] && [ -n "$DURING_CALM_RULE" ]; then
        expect_exit 2 $RUN tune plan --detailed-exitcode
        if printf '%s' "$OUT" | grep -qF -- "$DURING_CALM_RULE  fired"; then
            fail "$DURING_CALM_RULE fired on history alone"
        fi
    elif [ -n "$DURING" ]; then
        expect_exit 0 $RUN tune plan --detailed-exitcode
    fi
    if [ -n "$DURING" ]; then
        rm -f /tmp/during.stop
        (while [ ! -e /tmp/during.stop ]; do $RUN $DURING >/dev/null 2>&1; done) &
        during_pid=$!
        sleep 1
    fi
    expect_exit 2 $RUN tune plan --detailed-exitcode
    expect_output "$key"
    expect_output "$evidence"
    expect_exit 0 $RUN tune apply --yes
    [ -z "$APPLY_HOOK" ] || $APPLY_HOOK
    if [ -n "$DURING" ]; then
        touch /tmp/during.stop
        wait "$during_pid"
        rm -f /tmp/during.stop
    fi
    rec applied "$key=$(sysctl_value)"
    # A fresh listener: listen(2) reads somaxconn when it is called.
    after=$($RUN labhelper burst "$((port + 1))" "$count" 4096 "$timeout")
    rec after "$count concurrent connects: $after"
    check "$symptom after apply" [ "$(field "$symptom" "$after")" -eq 0 ]
    check "not all connected after apply" [ "$(field ok "$after")" -eq "$count" ]
    expect_exit 0 $RUN tune plan --detailed-exitcode

    expect_exit 0 $RUN tune rollback
    back=$(sysctl_value)
    rec rollback "$key=$back"
    check "rollback left '$back', want '$fault'" [ "$back" = "$fault" ]
    [ -z "$ROLLBACK_HOOK" ] || $ROLLBACK_HOOK
    again=$($RUN labhelper burst "$((port + 2))" "$count" 4096 "$timeout")
    rec rollback-symptom "$again"
    check "symptom not back after rollback" [ "$(field "$symptom" "$again")" -gt 0 ]
}

sysctl_value() {
    $RUN cat "$path" | tr '\t' ' '
}

# 3: ephemeral ports exhausted by a 40-port ip_local_port_range (per network namespace).
scenario_ports() {
    begin 3-ephemeral-ports
    RUN="ip netns exec lab3"
    ip netns add lab3 && $RUN ip link set lo up
    $RUN sh -c "echo '40000 40039' > $(sysctl_path net.ipv4.ip_local_port_range)"
    sysctl_cycle net.ipv4.ip_local_port_range "40000 40039" eaddrnotavail 5000 100 2000 40039
    ip netns del lab3
    finish
}

# 5: accept-queue overflow behind somaxconn=8 (per network namespace). The burst's
# listener asks for a backlog of 4096; listen(2) caps it at somaxconn. The rule reads
# ListenOverflows as a rate: it fires while bursts keep overflowing, not on history.
scenario_backlog() {
    begin 5-listen-overflow
    RUN="ip netns exec lab5"
    ip netns add lab5 && $RUN ip link set lo up
    $RUN sh -c "echo 8 > $(sysctl_path net.core.somaxconn)"
    # A server that stays up (backlog 4096, capped at 8 by listen(2)): the bursts'
    # listeners come and go, and a plan that read the listeners between two bursts
    # would find none at the cap (the lab's flake before this listener).
    $RUN labhelper hold 5980 4096 &
    hold_pid=$!
    DURING="labhelper burst 5990 64 4096 1500"
    sysctl_cycle net.core.somaxconn 8 overflows 6000 64 1500 ListenOverflows
    DURING=
    kill "$hold_pid"
    wait "$hold_pid" 2>/dev/null
    ip netns del lab5
    finish
}

# 2: conntrack in use (an nftables `ct state` rule) and nf_conntrack_max=32 (global:
# fine inside the VM). Run after the namespace scenarios: its kernel-log line stays.
# The full table also counts `drop` in /proc/net/stat/nf_conntrack (growing while
# connects go on), so the conntrack-sizing playbook raises nf_conntrack_buckets (writable here, in the initial
# namespace) with the max; rollback restores both exactly.
scenario_conntrack() {
    begin 2-conntrack
    nft add table inet lab &&
        nft add chain inet lab input '{ type filter hook input priority 0; policy accept; }' &&
        nft add rule inet lab input ct state new counter ||
        fail "cannot install the nftables ct rule"
    rec rule "nft: ct state new counter (inet lab input)"
    original=$(cat "$(sysctl_path net.netfilter.nf_conntrack_max)")
    buckets=$(cat "$(sysctl_path net.netfilter.nf_conntrack_buckets)")
    rec buckets "net.netfilter.nf_conntrack_buckets=$buckets"
    echo 32 >"$(sysctl_path net.netfilter.nf_conntrack_max)"
    MEASURE_HOOK=conntrack_log
    APPLY_HOOK=conntrack_buckets_applied
    ROLLBACK_HOOK=conntrack_buckets_back
    # conntrack-sizing reads `drop` as growth over the window: it must not fire on the
    # first burst's history (the conntrack playbook still does, on the log line), and
    # fires while connects keep hitting the full table.
    # Short bursts (300 ms), so that SYNs hit the full table in every sampling window.
    DURING="labhelper burst 6990 64 4096 300"
    DURING_CALM_RULE=conntrack-sizing/conntrack-insert-drops
    sysctl_cycle net.netfilter.nf_conntrack_max 32 timeout 7000 64 1500 "table full"
    DURING=
    DURING_CALM_RULE=
    nft delete table inet lab
    echo "$original" >"$(sysctl_path net.netfilter.nf_conntrack_max)"
    echo "$buckets" >"$(sysctl_path net.netfilter.nf_conntrack_buckets)"
    finish
}

# After the apply: the per-CPU `drop` counter was the evidence, and the buckets rose
# with the max (the kernel's default ratio, 1:1 since 5.15).
conntrack_buckets_applied() {
    expect_output "conntrack-sizing/conntrack-insert-drops"
    expect_output "net.netfilter.nf_conntrack_buckets"
    now=$(cat "$(sysctl_path net.netfilter.nf_conntrack_buckets)")
    max_now=$(cat "$(sysctl_path net.netfilter.nf_conntrack_max)")
    rec applied-buckets "net.netfilter.nf_conntrack_buckets=$now (was $buckets), nf_conntrack_max=$max_now"
    check "buckets not raised: $now (was $buckets)" [ "$now" -gt "$buckets" ]
    check "buckets $now and max $max_now not in the default ratio" [ "$now" = "$max_now" ]
    head -n 3 /proc/net/stat/nf_conntrack | sed "s/^/LAB-LOG name=$S stat | /"
}

conntrack_buckets_back() {
    back_buckets=$(cat "$(sysctl_path net.netfilter.nf_conntrack_buckets)")
    rec rollback-buckets "net.netfilter.nf_conntrack_buckets=$back_buckets"
    check "rollback left buckets $back_buckets, want $buckets" [ "$back_buckets" = "$buckets" ]
}

conntrack_log() {
    full=$(dmesg | grep -c 'nf_conntrack: table full, dropping packet')
    rec kernel-log "'table full' lines: $full; nf_conntrack_count=$(cat "$(sysctl_path net.netfilter.nf_conntrack_count)")"
    check "no 'table full' line in the kernel log" [ "$full" -gt 0 ]
    dmesg | grep 'nf_conntrack' | fixture conntrack-table-full.dmesg.txt
    kmsg | grep 'nf_conntrack' | fixture conntrack-table-full.kmsg.txt
}

# 1: netem loss 30% as the root qdisc of a veth between two namespaces.
scenario_netem() {
    begin 1-netem
    veth_pair 1
    a="ip netns exec lab1a"
    b="ip netns exec lab1b"
    $b labhelper udp-echo 10.1.0.2:9000 &
    echo_pid=$!
    sleep 1
    rec baseline "$($a labhelper udp-probe 10.1.0.2:9000 200)"

    # Raw option bytes of a few netem variants, for the netlink parser's tests.
    for opts in "loss 30%" "delay 100ms 10ms" \
        "delay 50ms loss 30% duplicate 1% corrupt 0.5% reorder 10% rate 1mbit limit 500" \
        "loss 30%"; do
        # Delete first: `replace` on a netem qdisc keeps options the new line omits.
        $a tc qdisc del dev v1a root 2>/dev/null
        $a tc qdisc add dev v1a root netem $opts
        {
            echo "# tc qdisc add dev v1a root netem $opts (previous root qdisc deleted)"
            echo "tc qdisc show: $($a tc qdisc show dev v1a)"
            echo "tc -j qdisc show: $($a tc -j qdisc show dev v1a)"
            echo "rtnetlink: $($a labhelper qdisc-hex v1a)"
        } | fixture netem-qdisc.txt
    done
    fault_show=$($a tc qdisc show dev v1a)
    fault_hex=$($a labhelper qdisc-hex v1a)
    rec fault "$fault_show"
    rec fault-raw "$fault_hex"
    before=$($a labhelper udp-probe 10.1.0.2:9000 200)
    rec before "$before"
    check "no loss measured with netem loss 30%" [ "$(field loss_pct "$before")" -ge 10 ]

    if has_feature netem; then
        expect_exit 2 $a tune plan --detailed-exitcode
        expect_output netem
        expect_exit 0 $a tune apply --yes
        rec applied "$($a tc qdisc show dev v1a)"
        after=$($a labhelper udp-probe 10.1.0.2:9000 200)
        rec after "$after"
        check "loss after apply" [ "$(field loss_pct "$after")" -le 2 ]
        expect_exit 0 $a tune plan --detailed-exitcode
        expect_exit 0 $a tune rollback
        back_show=$($a tc qdisc show dev v1a)
        back_hex=$($a labhelper qdisc-hex v1a)
        rec rollback "$back_show"
        rec rollback-raw "$back_hex"
        check "qdisc after rollback differs: '$back_show'" [ "$back_show" = "$fault_show" ]
        check "raw options after rollback differ" [ "$back_hex" = "$fault_hex" ]
    else
        pending "no qdisc condition in 'tune schema'"
    fi
    kill "$echo_pid"
    ip netns del lab1a
    ip netns del lab1b
    finish
}

# 4: MTU mismatch across a veth: 576 on one side, 1500 on the other.
scenario_mtu() {
    begin 4-mtu
    veth_pair 4
    a="ip netns exec lab4a"
    b="ip netns exec lab4b"
    $a ip link set v4a mtu 576
    rec fault "$($a ip -o link show v4a | sed 's/.*\(mtu [0-9]*\).*/v4a \1/') vs $($b ip -o link show v4b | sed 's/.*\(mtu [0-9]*\).*/v4b \1/')"
    probe() {
        small=$($b ping -c 3 -w 3 -s 100 10.4.0.1 2>&1 | sed -n 's/.* \([0-9]*\) packets received.*/\1/p')
        large=$($b ping -c 3 -w 3 -s 1400 10.4.0.1 2>&1 | sed -n 's/.* \([0-9]*\) packets received.*/\1/p')
        echo "small_ping_replies=${small:-0}/3 large_ping_replies=${large:-0}/3"
    }
    before=$(probe)
    rec before "$before"
    check "large pings pass with the MTU mismatch" [ "$(field large_ping_replies "$before")" = 0/3 ]
    check "small pings fail" [ "$(field small_ping_replies "$before")" != 0/3 ]
    if has_feature mtu; then
        expect_exit 2 $a tune plan --detailed-exitcode
        expect_output v4a
        expect_exit 0 $a tune apply --yes
        after=$(probe)
        rec after "$after"
        check "large pings still fail after apply" [ "$(field large_ping_replies "$after")" != 0/3 ]
        expect_exit 0 $a tune plan --detailed-exitcode
        expect_exit 0 $a tune rollback
        back=$($a cat /sys/class/net/v4a/mtu)
        rec rollback "v4a mtu $back"
        check "rollback left mtu $back, want 576" [ "$back" = 576 ]
    else
        pending "no mtu condition in 'tune schema'"
    fi
    ip netns del lab4a
    ip netns del lab4b
    finish
}

# 7: `--netns NAME` gives the same plan as running inside the namespace.
scenario_netns() {
    begin 7-netns
    ip netns add lab7 && ip netns exec lab7 ip link set lo up
    ip netns exec lab7 sh -c "echo '40000 40039' > $(sysctl_path net.ipv4.ip_local_port_range)"
    # JSON on stdout only: a warning on stderr must not spoil the comparison.
    plan_json 2 /tmp/lab7-inside.json ip netns exec lab7 tune plan --detailed-exitcode --format json
    rec fault "lab7 ip_local_port_range=40000 40039; plan from inside: exit $rc, $(labhelper same-plan /tmp/lab7-inside.json /tmp/lab7-inside.json | sed 's/same=yes //')"
    if has_feature netns; then
        plan_json 2 /tmp/lab7-outside.json tune plan --detailed-exitcode --format json --netns lab7
        same=$(labhelper same-plan /tmp/lab7-inside.json /tmp/lab7-outside.json)
        rec after "plan via --netns vs inside: $same"
        check "plan via --netns differs from the plan inside" [ "$(field same "$same")" = yes ]
        check "the plans change nothing" [ "$(field changes "$same")" -gt 0 ]
    else
        pending "no --netns in 'tune plan --help'"
    fi
    ip netns del lab7
    finish
}

# 6: a memcg OOM kill of a process named java in a cgroup v2 with memory.max=64M.
scenario_oom() {
    begin 6-memcg-oom
    cg=/sys/fs/cgroup/lab6
    echo +memory >/sys/fs/cgroup/cgroup.subtree_control
    mkdir -p "$cg" && echo 64M >"$cg/memory.max" || fail "cannot create the memory cgroup"
    rec fault "cgroup $cg memory.max=$(cat "$cg/memory.max")"
    mark=$(dmesg | wc -l)
    sh -c "echo \$\$ > $cg/cgroup.procs && exec java hog 256" >/tmp/hog.out 2>&1
    rc=$?
    pid=$(sed -n 's/^hog pid=\([0-9]*\).*/\1/p' /tmp/hog.out)
    kills=$(dmesg | tail -n +"$((mark + 1))")
    printf '%s\n' "$kills" | fixture memcg-oom-kill.dmesg.txt
    kmsg | sed -n '/invoked oom-killer/,$p' | fixture memcg-oom-kill.kmsg.txt
    rec before "java pid=$pid exit=$rc oom_kill=$(grep '^oom_kill ' "$cg/memory.events" | cut -d' ' -f2)"
    check "java was not killed (exit $rc)" [ "$rc" = 137 ]
    check "no OOM kill of pid $pid in the kernel log" \
        sh -c "printf '%s\n' \"\$1\" | grep -q 'Killed process $pid (java)'" _ "$kills"
    if has_feature jvm; then
        # Only the JVM playbook: the conntrack scenario's "table full" lines are still
        # in the kernel log, and nf_conntrack_max is back at its default.
        jvm=$(ls /lab/playbooks/*jvm*.yml 2>/dev/null | head -n1)
        check "no JVM playbook in /lab/playbooks" [ -n "$jvm" ]
        env_file=/tmp/lab6.env
        # A 64 MiB cgroup holds no heap after the default 128 MiB non-heap headroom
        # (tune says so and refuses); a small JVM needs less.
        set -- --var "env_file=$env_file" --var headroom=16MiB
        printf '# tomcat\nJAVA_OPTS="-Dfoo=1"\n' >"$env_file"
        cp "$env_file" /tmp/lab6.env.orig
        expect_exit 2 tune plan --detailed-exitcode -p "$jvm" "$@"
        expect_output "$pid"
        # The limit, however the rule words it: kB as the kernel log, bytes, or MiB.
        check "plan lacks the 64 MiB limit" \
            sh -c "printf '%s' \"\$1\" | grep -qE '65536 ?kB|67108864|64 ?MiB|64M'" _ "$OUT"
        expect_exit 0 tune apply --yes -p "$jvm" "$@"
        rec after "$(tr '\n' ' ' <"$env_file")"
        expect_exit 0 tune plan --detailed-exitcode -p "$jvm" "$@"
        expect_exit 0 tune rollback
        check "env file not restored byte for byte" cmp -s "$env_file" /tmp/lab6.env.orig
    else
        pending "no java/oom condition in 'tune schema'"
    fi
    rmdir "$cg"
    finish
}

# 8: a virtio-net NIC's RX ring, read through tune's ethtool netlink code, raised to
# its maximum with ETHTOOL_MSG_RINGS_SET, read back, and set back to the exact old
# size. The fault is made with labhelper set-rx (tune::kernel::ethtool); the raise is
# `tune apply` of the bundled nic-ring playbook (RxRing mutation) and the restore
# `tune rollback`.
scenario_ring() {
    begin 8-nic-ring
    nic=""
    for dev in /sys/class/net/*; do
        case "$(readlink "$dev/device/driver" 2>/dev/null)" in
        */virtio_net) nic=${dev##*/} ;;
        esac
    done
    if [ -z "$nic" ]; then
        fail "no virtio-net link: $(ls /sys/class/net | tr '\n' ' ')"
        finish
        return
    fi
    ip link set "$nic" up
    # virtio_net's maximum is the virtqueue size and a new device starts there: the
    # fault (a small RX ring) is made with the same RINGS_SET, to a quarter of it.
    boot=$(labhelper rings "$nic" 2>&1)
    rec fault "$nic at boot: $boot; set rx $(($(field rx_max "$boot") / 4)):" \
        "$(labhelper set-rx "$nic" $(($(field rx_max "$boot") / 4)) 2>&1)"
    before=$(labhelper rings "$nic" 2>&1)
    rec before "$nic $before"
    rx=$(field rx "$before")
    max=$(field rx_max "$before")
    if [ -z "$rx" ] || [ -z "$max" ]; then
        fail "rings of $nic unreadable: $before"
        finish
        return
    fi
    check "RX ring $rx is already at its maximum $max" [ "$rx" -lt "$max" ]
    # The bundled nic-ring playbook, as shipped: with a small ring but no ring drops it
    # proposes nothing (virtio_net counts no rx_missed_errors or rx_fifo_errors at all,
    # so ring drops cannot be provoked in the VM).
    pb=/lab/playbooks/nic-ring.yml
    expect_exit 0 tune plan --detailed-exitcode -p "$pb" --var "link=$nic"
    expect_output "No rule fired"
    # drops_above=-1: any growth, even none, counts as drops, so the rule goes through
    # the real sampling, ring facts and set_rx_ring targeting of the bundled playbook.
    expect_exit 2 tune plan --detailed-exitcode -p "$pb" --var "link=$nic" --var drops_above=-1
    expect_output "ring:$nic"
    expect_output "rx $rx → rx $max"
    expect_output "rx_missed_errors grew by 0"
    expect_exit 0 tune apply --yes -p "$pb" --var "link=$nic" --var drops_above=-1
    after=$(labhelper rings "$nic" 2>&1)
    rec after "$nic $after"
    check "RX ring not raised to $max: $after" [ "$(field rx "$after")" = "$max" ]
    # At its maximum: the same growth is reported only, with no change.
    expect_exit 0 tune plan --detailed-exitcode -p "$pb" --var "link=$nic" --var drops_above=-1
    expect_output "rx-ring-overrun-at-max"
    expect_exit 0 tune rollback
    restored=$(labhelper rings "$nic" 2>&1)
    rec restored "$nic $restored"
    check "RX ring not restored: $restored, was $before" [ "$restored" = "$before" ]
    finish
}

# 9: softnet backlog drops, with net.core.netdev_max_backlog=1 (global: fine inside the
# VM). RPS steers a veth's receive to CPU 1 while the sender is pinned to CPU 0, so
# datagrams queue on CPU 1's input backlog faster than its softirq drains them:
# /proc/net/softnet_stat's `dropped` column grows. The bundled softnet playbook must
# see the drops happen (the flood runs while tune plans and applies), raise the
# backlog, and roll back to 1 exactly. The budget rule is kept out with its variables.
softnet_dropped() {
    total=0
    for d in $(cut -d' ' -f2 /proc/net/softnet_stat); do
        total=$((total + 0x$d))
    done
    echo "$total"
}

softnet_flood() { # SECONDS: prints the drops during a flood of that long
    d0=$(softnet_dropped)
    sent=$(ip netns exec lab9a labhelper udp-flood 10.9.0.2:9 "$1" 0 2>&1)
    echo "$sent dropped=$(($(softnet_dropped) - d0))"
}

scenario_softnet() {
    begin 9-softnet
    key=net.core.netdev_max_backlog
    path=$(sysctl_path $key)
    original=$(cat "$path")
    veth_pair 9
    ip netns exec lab9b sh -c 'echo 2 > /sys/class/net/v9b/queues/rx-0/rps_cpus' ||
        fail "cannot set rps_cpus on v9b"
    rec rps "v9b rx-0 rps_cpus=$(ip netns exec lab9b cat /sys/class/net/v9b/queues/rx-0/rps_cpus)"
    echo 1 >"$path"
    rec fault "$key=$(cat "$path")"
    before=$(softnet_flood 2)
    rec before "2 s flood: $before"
    check "no softnet drops with $key=1: $before" [ "$(field dropped "$before")" -gt 0 ]
    pb="-p /lab/playbooks/softnet.yml --var min_budget=0 --var min_budget_usecs=0"
    # History alone (the drops just measured) does not fire: the rule reads a rate.
    expect_exit 0 tune plan --detailed-exitcode $pb
    rm -f /tmp/flood.stop
    (while [ ! -e /tmp/flood.stop ]; do softnet_flood 1 >/dev/null; done) &
    flood_pid=$!
    sleep 1
    expect_exit 2 tune plan --detailed-exitcode $pb
    expect_output "softnet/backlog-drops"
    expect_output "$key"
    expect_exit 0 tune apply --yes $pb
    touch /tmp/flood.stop
    wait "$flood_pid"
    rm -f /tmp/flood.stop
    rec applied "$key=$(cat "$path")"
    after=$(softnet_flood 2)
    rec after "2 s flood: $after"
    check "drops after apply not below a tenth of before: $after vs $before" \
        [ "$(field dropped "$after")" -le "$(($(field dropped "$before") / 10))" ]
    expect_exit 0 tune plan --detailed-exitcode $pb
    expect_exit 0 tune rollback
    back=$(cat "$path")
    rec rollback "$key=$back"
    check "rollback left $back, want 1" [ "$back" = 1 ]
    again=$(softnet_flood 2)
    rec rollback-symptom "2 s flood: $again"
    check "drops not back after rollback: $again" [ "$(field dropped "$again")" -gt 0 ]
    echo "$original" >"$path"
    ip netns del lab9a
    ip netns del lab9b
    finish
}

run_all() {
    # Order matters: the namespace scenarios first, then the ones that leave lines in
    # the (global) kernel log which later bundled-playbook plans would see.
    scenario_ports
    scenario_backlog
    scenario_netem
    scenario_mtu
    scenario_netns
    scenario_conntrack
    scenario_oom
    scenario_ring
    scenario_softnet
}
