#!/bin/busybox sh
# /init of the persistence VMs of tests/lab_persist.rs (busybox sh). /lab/mode says
# which boot this is:
#   persist  boot 1: a conntrack table that is full (nf_conntrack_max=32 and ICMP flows
#            through an nftables ct rule), `tune apply --persist --root /persist`, then
#            the files it wrote, base64 between LAB-FILE-BEGIN/LAB-FILE-END;
#   boot     boots 2 and 3: what a distribution's boot does with the files tests/lab_persist.rs
#            put under /etc: load each module named in /etc/modules-load.d/*.conf (as
#            systemd-modules-load does, which runs before systemd-sysctl), then procps
#            `sysctl --system`; then the value, `sysctl -p` of tune's file (which, unlike
#            --system, reports a missing key), and the value once nf_conntrack is loaded.
# Console lines: `LAB KEY VALUE...` for the test to read, `LAB-LOG ...` for the record,
# `LAB-DONE` at the end.
/bin/busybox --install -s /bin
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu
export HOME=/root NO_COLOR=1
mkdir -p /proc /sys /dev /tmp /run /root /var/lib
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
ln -sf /run /var/run
ip link set lo up
hostname lab
# On a line of its own: the firmware's escape codes end the console's first line.
echo
echo "LAB-BOOTED uptime=$(cut -d' ' -f1 /proc/uptime)"
max=/proc/sys/net/netfilter/nf_conntrack_max

# load NAME: insmod NAME and what it depends on, in order (/lab/modules/NAME.deps);
# there is no modprobe in the initramfs.
load() {
    [ -f "/lab/modules/$1.deps" ] || { echo "LAB-LOG no module $1 in the lab"; return 1; }
    for m in $(cat "/lab/modules/$1.deps"); do
        grep -q "^$m " /proc/modules || insmod "/lab/modules/$m.ko" || echo "LAB-LOG FAIL: insmod $m"
    done
}

# run CMD...: runs CMD, its output as LAB-LOG lines, its exit status as `LAB rc-NAME`.
run() {
    name=$1
    shift
    echo "LAB-LOG \$ $*"
    "$@" >/tmp/out 2>&1
    rc=$?
    sed 's/^/LAB-LOG | /' /tmp/out
    echo "LAB rc-$name $rc"
}

value() {
    if [ -e "$max" ]; then cat "$max"; else echo absent; fi
}

case $(cat /lab/mode) in
persist)
    load nf_tables
    load nft_ct
    echo "LAB default $(value)"
    nft add table inet lab &&
        nft add chain inet lab input '{ type filter hook input priority 0; policy accept; }' &&
        nft add rule inet lab input ct state new counter ||
        echo "LAB-LOG FAIL: cannot install the nftables ct rule"
    echo 32 >"$max"
    # 48 ICMP flows (one echo id each) against a table of 32.
    i=0
    while [ "$i" -lt 48 ]; do
        ping -c 1 -W 1 127.0.0.1 >/dev/null 2>&1 &
        i=$((i + 1))
    done
    wait
    echo "LAB count $(cat /proc/sys/net/netfilter/nf_conntrack_count)"
    echo "LAB table-full $(dmesg | grep -c 'nf_conntrack: table full')"
    export TUNE_STATE_DIR=/tmp/state
    mkdir -p "$TUNE_STATE_DIR" /persist && chmod 700 "$TUNE_STATE_DIR"
    run plan tune plan --detailed-exitcode --persist --root /persist -p /lab/playbooks/conntrack.yml
    run apply tune apply --yes --persist --root /persist -p /lab/playbooks/conntrack.yml
    echo "LAB applied $(value)"
    for f in etc/sysctl.d/90-tune.conf etc/modules-load.d/90-tune.conf; do
        if [ -f "/persist/$f" ]; then
            echo "LAB-FILE-BEGIN $f"
            base64 "/persist/$f"
            echo "LAB-FILE-END $f"
        fi
    done
    ;;
boot)
    for f in /etc/modules-load.d/*.conf; do
        [ -f "$f" ] || continue
        while read -r module rest; do
            case $module in '' | '#'* | ';'*) continue ;; esac
            load "$module" && echo "LAB loaded $module"
        done <"$f"
    done
    echo "LAB before-sysctl $(value)"
    run sysctl /usr/sbin/sysctl --system
    echo "LAB after-sysctl $(value)"
    # --system skips keys that do not exist without a word (procps sets IgnoreError
    # for it); -p on the same file names them.
    echo "LAB-LOG -p:"
    run sysctl-p /usr/sbin/sysctl -p /etc/sysctl.d/90-tune.conf
    load nf_conntrack
    echo "LAB after-load $(value)"
    ;;
esac
echo "LAB-DONE uptime=$(cut -d' ' -f1 /proc/uptime)"
poweroff -f
echo o >/proc/sysrq-trigger
