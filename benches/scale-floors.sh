#!/usr/bin/env bash
# Benchmark: `tune plan` against its floor (benches/floor/plan-floor.c) on the scale
# paths, side by side in one hyperfine run per size, and the growth per 10x:
#   - TIME_WAIT sockets (time-wait playbook), in a namespace with 10k and 100k of them;
#   - links (mtu and netem playbooks), in a namespace with 3k and 30k veths;
#   - processes (jvm-heap playbook), with 500 and 5k `sleep` processes in a temporary
#     cgroup (the walk reads every process on the host, these included).
# The floor makes the same kernel calls with raw system calls (setns, sock_diag or
# rtnetlink dumps, /proc/PID/comm) and nothing else.
#
# Usage: bash benches/scale-floors.sh [--runs N]   (as root; called by benches/floors.sh,
# which sets TUNE_STATIC to its static build)
# Needs: hyperfine, iproute2, python3, gcc, cgroup v2 at /sys/fs/cgroup. Creates
# namespaces tune-scale-<pid>-* and the cgroup /sys/fs/cgroup/tune-scale-<pid>, and
# removes them (and the processes in it) on exit. Changes nothing else: the sysctls it
# sets (port range, tcp_tw_reuse, tcp_max_tw_buckets) are the namespaces' own.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="--min-runs 20"
[ "${1:-}" = "--runs" ] && runs="--runs $2"
[ "$(id -u)" = 0 ] || { echo "needs root (namespaces, cgroups)" >&2; exit 1; }
TW_SIZES=${TW_SIZES:-"10000 100000"}
LINK_SIZES=${LINK_SIZES:-"3000 30000"}
PROC_SIZES=${PROC_SIZES:-"500 5000"}
tune=${TUNE:-$PWD/target/release/tune}
[ -z "${TUNE_STATIC:-}" ] || [ -x "$TUNE_STATIC" ] || { echo "TUNE_STATIC=$TUNE_STATIC is not a program" >&2; exit 1; }
[ -x "$tune" ] || { echo "build first: cargo build --release" >&2; exit 1; }
# Peak RSS of binaries read back from disk, however they came into the page cache.
python3 benches/drop-cached-pages.py "$tune" ${TUNE_STATIC:-}
tmp=$(mktemp -d)
# A cgroup v2 mount, else the v1 `pids` hierarchy: a directory whose cgroup.procs the
# kernel keeps (never a directory on a tmpfs that only looks like one).
cgroot=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
[ -n "$cgroot" ] || cgroot=$(awk '$3 == "cgroup" && $4 ~ /(^|,)pids(,|$)/ { print $2; exit }' /proc/mounts)
[ -n "$cgroot" ] || { echo "no cgroup v2 mount or v1 pids hierarchy" >&2; exit 1; }
cg=$cgroot/tune-scale-$$
namespaces=()
cleanup() {
  for ns in "${namespaces[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  if [ -d "$cg" ]; then
    # cgroup.kill (v2, Linux 5.14+), else each process listed.
    [ -f "$cg/cgroup.kill" ] && echo 1 >"$cg/cgroup.kill" 2>/dev/null
    xargs -r kill -9 <"$cg/cgroup.procs" 2>/dev/null || true
    for _ in $(seq 50); do rmdir "$cg" 2>/dev/null && break; sleep 0.1; done
  fi
  rm -rf "$tmp"
  wait 2>/dev/null || true
}
trap cleanup EXIT
export NO_COLOR=1 TUNE_STATE_DIR=$tmp/state
cc -O2 -static -o "$tmp/plan-floor" benches/floor/plan-floor.c 2>/dev/null
floor=$tmp/plan-floor
: >"$tmp/empty.log"

# NAME SIZE TUNE_CMD FLOOR_CMD RSS_CMD...: one hyperfine run (with TUNE_STATIC set, a
# statically linked tune runs TUNE_CMD too, in the same run); prints a line and records
# the means.
declare -A tune_ms floor_ms
static=${TUNE_STATIC:-}
bench() {
  local json=$tmp/$1-$2.json extra=() st="" srss
  [ -z "$static" ] || extra=(--command-name tune-static "$static${3#"$tune"}")
  hyperfine -N --warmup 3 $runs --export-json "$json" \
    --command-name tune "$3" "${extra[@]}" --command-name floor "$4" >/dev/null 2>&1
  read -r t ts f fs s < <(python3 - "$json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
s = r["tune-static"]["mean"] * 1e3 if "tune-static" in r else 0
print(r["tune"]["mean"] * 1e3, r["tune"]["stddev"] * 1e3, r["floor"]["mean"] * 1e3, r["floor"]["stddev"] * 1e3, s)
PY
  )
  tune_ms[$1-$2]=$t
  floor_ms[$1-$2]=$f
  rss=$(/usr/bin/time -f %M "${@:5}" 2>&1 >/dev/null | tail -1)
  if [ -n "$static" ]; then
    # RSS_CMD with the static binary in place of "$tune".
    srss=$(/usr/bin/time -f %M "$static" "${@:6}" 2>&1 >/dev/null | tail -1)
    st=$(printf '  static %8.2f ms %5.2fx' "$s" "$(echo "$s / $f" | bc -l)")
    rss="$rss KiB, static $srss"
  fi
  printf '%-10s %7s  tune %8.2f ms ±%5.2f  floor %8.2f ms ±%5.2f  ratio %5.2fx%s  tune RSS %s KiB\n' \
    "$1" "$2" "$t" "$ts" "$f" "$fs" "$(echo "$t / $f" | bc -l)" "$st" "$rss"
}
growth() { # NAME SMALL BIG
  printf '%-10s growth %s -> %s: tune %.1fx, floor %.1fx\n' "$1" "$2" "$3" \
    "$(echo "${tune_ms[$1-$3]} / ${tune_ms[$1-$2]}" | bc -l)" \
    "$(echo "${floor_ms[$1-$3]} / ${floor_ms[$1-$2]}" | bc -l)"
}

echo "machine: $(nproc) CPUs, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"

# TIME_WAIT: the client side closes first, so each of its sockets stays in TIME_WAIT
# for 60 s; the measurement runs within that time.
for n in $TW_SIZES; do
  ns=tune-scale-$$-tw$n
  namespaces+=("$ns")
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip netns exec "$ns" sysctl -qw net.ipv4.ip_local_port_range="1024 65535" \
    net.ipv4.tcp_max_tw_buckets=$((n * 2)) net.ipv4.tcp_tw_reuse=0
  ip netns exec "$ns" python3 - "$n" <<'PY'
import socket, sys
n = int(sys.argv[1])
# connect(2) takes even ports only (since Linux 6.1): about 32k per destination.
ports = (n + 24999) // 25000
servers = []
for i in range(ports):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 20000 + i))
    s.listen(4096)
    servers.append(s)
for i in range(n):
    c = socket.create_connection(("127.0.0.1", 20000 + i % ports))
    a, _ = servers[i % ports].accept()
    c.close()
    a.close()
PY
  got=$(ip netns exec "$ns" ss -Htan state time-wait | wc -l)
  echo "namespace $ns: $got TIME_WAIT sockets" >&2
  bench tw "$n" "$tune plan -p playbooks/time-wait.yml --netns $ns" "$floor tw $ns" \
    "$tune" plan -p playbooks/time-wait.yml --netns "$ns"
  ip netns del "$ns"
done
growth tw ${TW_SIZES}

for n in $LINK_SIZES; do
  ns=tune-scale-$$-links$n
  namespaces+=("$ns")
  ip netns add "$ns"
  for i in $(seq 1 $((n / 2))); do echo "link add va$i type veth peer name vb$i"; done >"$tmp/batch"
  ip -n "$ns" -batch "$tmp/batch"
  echo "namespace $ns: $(ip -n "$ns" -o link | wc -l) links" >&2
  sleep 2
  bench links "$n" "$tune plan -p playbooks/mtu.yml -p playbooks/netem.yml --netns $ns" "$floor links $ns" \
    "$tune" plan -p playbooks/mtu.yml -p playbooks/netem.yml --netns "$ns"
  ip netns del "$ns"
done
growth links ${LINK_SIZES}

mkdir "$cg"
[ -f "$cg/cgroup.procs" ] || { echo "$cg is not a cgroup" >&2; exit 1; }
for n in $PROC_SIZES; do
  have=$(wc -l <"$cg/cgroup.procs")
  # Each sleep joins the cgroup before exec (the subshell moves itself first).
  for _ in $(seq $((n - have))); do
    (echo "$BASHPID" >"$cg/cgroup.procs" && exec sleep 600) &
    disown
  done 2>/dev/null
  while [ "$(wc -l <"$cg/cgroup.procs")" -lt "$n" ]; do sleep 0.2; done
  echo "cgroup $cg: $(wc -l <"$cg/cgroup.procs") processes, $(ls /proc | grep -c '^[0-9]') on the host" >&2
  bench procs "$n" "$tune plan -p playbooks/jvm-heap.yml --kernel-log $tmp/empty.log" "$floor procs" \
    "$tune" plan -p playbooks/jvm-heap.yml --kernel-log "$tmp/empty.log"
done
growth procs ${PROC_SIZES}
