#!/usr/bin/env bash
# Benchmark: `tune plan` against its floor (benches/floor/plan-floor.c: a static C
# program reading the same kernel facts with raw system calls, no parsing beyond the
# decision), side by side in one hyperfine run per path. Prints each path's mean times
# and the ratio tune / floor (issue target: <= 1.3x, <= 1.5x with all bundled
# playbooks), and tune's peak RSS (target <= 8 MiB).
#
# Each path runs three commands in the one hyperfine run: tune as `cargo build
# --release` makes it (dynamically linked), tune-static (the same code linked
# statically, README "Static build", built and checked by tests/static-build.sh;
# STATIC=0 leaves it out) and the floor.
#
# Paths: the four sysctl playbooks; all bundled playbooks; an 8 MiB synthetic kernel
# log given with --kernel-log (the kernel-log path, with the conntrack and jvm-heap
# playbooks that read it).
#
# As root it then runs benches/scale-floors.sh (100k TIME_WAIT, 30k links, 5k
# processes, each with its floor) and benches/all-netns.sh (`--all-netns` over 10 and
# 100 namespaces, with its floor); SCALE=0 skips both.
#
# Usage: bash benches/floors.sh [--runs N]
# Needs: hyperfine, GNU time, a C compiler and nm (apt-get install hyperfine time gcc
# binutils).
# Read-only: it changes nothing on the host (state in a temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."
runs="--min-runs 50"
[ "${1:-}" = "--runs" ] && runs="--runs $2"
for tool in hyperfine /usr/bin/time cc nm; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install hyperfine time gcc binutils" >&2; exit 1; }
done
cargo build --release --quiet
tune=$PWD/target/release/tune
if [ "${STATIC:-1}" != 0 ]; then
  # Builds the static binary and checks it (static, no NSS resolver, plans); its path
  # is the last line.
  tune_static=$(bash tests/static-build.sh | tail -1)
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The hot-function lists only order what they name (README, How the binary starts).
for pair in "$tune link/hot-functions.txt" ${tune_static:+"$tune_static link/hot-functions-static.txt"}; do
  read -r bin list <<<"$pair"
  have=$(comm -12 <(LC_ALL=C sort -u "$list") <(nm --defined-only "$bin" | awk '{ print $3 }' | LC_ALL=C sort -u) | wc -l)
  echo "$list: $have of $(grep -c . "$list") names in ${bin#"$PWD"/} (fewer: run bash link/regenerate.sh)"
done
export NO_COLOR=1 TUNE_STATE_DIR=$tmp/state
cc -O2 -static -o "$tmp/plan-floor" benches/floor/plan-floor.c
floor=$tmp/plan-floor
empty=$tmp/empty.log
: >"$empty"

# An 8 MiB kernel log in `dmesg -T`-free raw form: routine lines, with one conntrack
# line per 10,000 (old, outside the playbooks' windows, so nothing fires).
big=$tmp/kern.log
awk 'BEGIN { for (i = 0; i < 110000; i++) {
  t = i / 100.0
  if (i % 10000 == 5) printf "[%12.6f] nf_conntrack: nf_conntrack: table full, dropping packet\n", t
  else printf "[%12.6f] eth0: renamed from veth%05d; link becomes ready, carrier on\n", t, i } }' >"$big"
size=$(stat -c %s "$big")

sysctl_books="-p playbooks/conntrack.yml -p playbooks/ephemeral-ports.yml -p playbooks/listen-backlog.yml -p playbooks/time-wait.yml"

bench() { # NAME TUNE_ARGS FLOOR_CMD
  local name=$1 json=$tmp/$1.json static=()
  [ -z "${tune_static:-}" ] || static=(--command-name tune-static "$tune_static plan $2")
  hyperfine -N --warmup 5 $runs --export-json "$json" \
    --command-name "tune" "$tune plan $2" "${static[@]}" --command-name "floor" "$3" >&2
  python3 - "$name" "$json" <<'PY'
import json, sys
name, path = sys.argv[1], sys.argv[2]
r = {x["command"]: x["mean"] * 1e3 for x in json.load(open(path))["results"]}
f = r["floor"]
line = f"{name:<14} tune {r['tune']:7.2f} ms ({r['tune'] / f:4.2f}x)"
if "tune-static" in r:
    line += f"   tune-static {r['tune-static']:7.2f} ms ({r['tune-static'] / f:4.2f}x)"
print(line + f"   floor {f:7.2f} ms")
PY
}

echo "machine: $(nproc) CPUs, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "kernel log: $size bytes"
results=$tmp/results
{
  bench sysctl "$sysctl_books --kernel-log $empty" "$floor sysctl"
  # The softirq share is a rate: tune reads /proc/stat twice, a window apart, on every
  # plan with the bundled playbooks (1 s by default). Both sides wait 1 ms here, so
  # the ratio compares the work, not the wait.
  bench all-bundled "--kernel-log $empty --sample-window 1ms" "$floor all 1"
  bench kernel-log-8M "-p playbooks/conntrack.yml -p playbooks/jvm-heap.yml --kernel-log $big" "$floor kmsg $big"
} >"$results"
cat "$results"
# Peak RSS of binaries read back from disk, however they came into the page cache.
python3 benches/drop-cached-pages.py "$tune" ${tune_static:-}
for args in "$sysctl_books --kernel-log $empty" "--kernel-log $empty --sample-window 1ms" "-p playbooks/conntrack.yml -p playbooks/jvm-heap.yml --kernel-log $big"; do
  for t in "$tune" ${tune_static:-}; do
    /usr/bin/time -f "peak RSS %M KiB: ${t#"$PWD"/} plan ${args//$tmp/TMP}" "$t" plan $args >/dev/null
  done
done
if [ "$(id -u)" = 0 ] && [ "${SCALE:-1}" != 0 ]; then
  TUNE_STATIC=${tune_static:-} bash benches/scale-floors.sh
  TUNE_STATIC=${tune_static:-} bash benches/all-netns.sh
fi
