#!/usr/bin/env bash
# Benchmark: the kernel-log path of `tune plan` against its floor (the `kmsg` mode of
# benches/floor/plan-floor.c: read the file, memmem the patterns the bundled playbooks
# look for), side by side in one hyperfine run per log, and tune's peak RSS.
#
# Logs (synthetic, given with --kernel-log, read by the conntrack and jvm-heap
# playbooks): raw `dmesg` and syslog (`kern.log`) forms, 1 and 8 MiB, routine lines
# with one conntrack line per 10,000 (old, outside the windows, so nothing fires).
# benches/floors.sh runs the 8 MiB dmesg case among its other paths; this one is the
# narrower run to measure the log path alone (issue target: <= 1.3x, RSS <= 8 MiB).
#
# Usage: bash benches/kernel-log.sh [--runs N] [--no-build]
# Needs: hyperfine, GNU time and a C compiler (apt-get install hyperfine time gcc).
# Read-only: it changes nothing on the host (state in a temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."
runs="--min-runs 30" build=1
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs="--runs $2"; shift 2 ;;
    --no-build) build=0; shift ;;
    *) echo "usage: $0 [--runs N] [--no-build]" >&2; exit 2 ;;
  esac
done
for tool in hyperfine /usr/bin/time cc; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install hyperfine time gcc" >&2; exit 1; }
done
[ $build = 1 ] && cargo build --release --quiet
tune=$PWD/target/release/tune
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export NO_COLOR=1 TUNE_STATE_DIR=$tmp/state
cc -O2 -static -o "$tmp/plan-floor" benches/floor/plan-floor.c
floor=$tmp/plan-floor

# LINES FORM: routine lines, one conntrack line per 10,000 (the same lines as floors.sh).
gen() {
  awk -v n="$1" -v form="$2" 'BEGIN { for (i = 0; i < n; i++) {
    t = i / 100.0
    if (i % 10000 == 5) msg = "nf_conntrack: nf_conntrack: table full, dropping packet"
    else msg = sprintf("eth0: renamed from veth%05d; link becomes ready, carrier on", i)
    if (form == "dmesg") printf "[%12.6f] %s\n", t, msg
    else printf "Jan %2d %02d:%02d:%02d host kernel: [%12.6f] %s\n", 1 + int(t / 86400) % 28, int(t / 3600) % 24, int(t / 60) % 60, int(t) % 60, t, msg } }'
}
gen 110000 dmesg >"$tmp/dmesg-8M.log"
gen 13750 dmesg >"$tmp/dmesg-1M.log"
gen 75000 syslog >"$tmp/syslog-8M.log"

books="-p playbooks/conntrack.yml -p playbooks/jvm-heap.yml"
echo "machine: $(nproc) CPUs, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
results=$tmp/results
for log in dmesg-1M dmesg-8M syslog-8M; do
  f=$tmp/$log.log json=$tmp/$log.json
  hyperfine -N --warmup 5 $runs --export-json "$json" \
    --command-name tune "$tune plan $books --kernel-log $f" \
    --command-name floor "$floor kmsg $f" >&2
  rss=$(/usr/bin/time -f %M "$tune" plan $books --kernel-log "$f" 2>&1 >/dev/null | tail -1)
  python3 - "$log" "$json" "$(stat -c %s "$f")" "$rss" <<'PY' >>"$results"
import json, sys
name, path, size, rss = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
r = {x["command"]: x for x in json.load(open(path))["results"]}
t, f = r["tune"]["mean"] * 1e3, r["floor"]["mean"] * 1e3
print(f"{name:<10} {size / 2**20:4.1f} MiB  tune {t:7.2f} ms   floor {f:7.2f} ms   ratio {t / f:5.2f}x   tune peak RSS {rss / 1024:5.1f} MiB")
PY
done
cat "$results"
