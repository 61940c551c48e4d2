#!/usr/bin/env bash
# Benchmark: `tune plan` on the link/qdisc playbooks against a network namespace holding
# 1,000 and 10,000 veth interfaces, side by side in one run with what an operator
# would type (`ip -j link` + `tc -j qdisc show`, which read the same two dumps).
# Checks that tune's time grows linearly with the interface count and that 10,000
# interfaces take under 50 ms.
#
# Needs root, iproute2 and a release build (`cargo build --release`); uses hyperfine
# when installed (apt-get install -y hyperfine), a `date +%s%N` loop otherwise, and
# GNU time (/usr/bin/time) for tune's peak RSS when installed.
# Creates namespaces named tune-bench-<pid>-<n> and deletes them on exit.
# LINKS_UP=1 brings every interface up first, so each has a root qdisc (noqueue) in
# the qdisc dump too; the kernel then walks its device list again for every 32 KiB of
# that dump, so expect slower and less linear times on both sides.
set -euo pipefail
cd "$(dirname "$0")/.."
TUNE=${TUNE:-target/release/tune}
RUNS=${RUNS:-20}
SIZES=${SIZES:-"1000 10000"}
TARGET_MS=${TARGET_MS:-50}
LINKS_UP=${LINKS_UP:-0}
[ -x "$TUNE" ] || { echo "build first: cargo build --release" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces)" >&2; exit 1; }

namespaces=()
cleanup() { for ns in "${namespaces[@]}"; do ip netns del "$ns" 2>/dev/null || true; done; }
trap cleanup EXIT

# Mean wall time of a command in ms.
mean_ms() {
  if command -v hyperfine >/dev/null; then
    local json; json=$(mktemp)
    hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$json" "$1" >/dev/null 2>&1 \
      || hyperfine --shell=bash --warmup 3 --runs "$RUNS" --export-json "$json" "$1" >/dev/null
    python3 -c 'import json,sys; print("%.2f" % (json.load(open(sys.argv[1]))["results"][0]["mean"]*1000))' "$json"
    rm -f "$json"
  else
    local start end
    for _ in 1 2 3; do bash -c "$1" >/dev/null 2>&1; done
    start=$(date +%s%N)
    for _ in $(seq "$RUNS"); do bash -c "$1" >/dev/null 2>&1; done
    end=$(date +%s%N)
    echo "scale=2; ($end - $start) / 1000000 / $RUNS" | bc
  fi
}

# Peak resident set size of one run, in MB.
peak_rss_mb() {
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f %M -o /dev/stdout $1 2>/dev/null | tail -1 | awk '{printf "%.1f", $1 / 1024}'
  else
    echo -
  fi
}

declare -A tune_ms shell_ms tune_rss
for n in $SIZES; do
  ns="tune-bench-$$-$n"
  namespaces+=("$ns")
  ip netns add "$ns"
  batch=$(mktemp)
  for i in $(seq 1 $((n / 2))); do echo "link add va$i type veth peer name vb$i"; done >"$batch"
  if [ "$LINKS_UP" = 1 ]; then
    # Without IPv6 the links come up quietly (no DAD or router solicitations keeping
    # the kernel busy while timing); the namespace's own sysctls, nothing global.
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    for i in $(seq 1 $((n / 2))); do echo "link set va$i up"; echo "link set vb$i up"; done >>"$batch"
  fi
  ip -n "$ns" -batch "$batch"
  rm -f "$batch"
  count=$(ip -n "$ns" -o link | wc -l)
  echo "namespace $ns: $count interfaces, $(tc -n "$ns" qdisc show | wc -l) qdiscs shown" >&2
  # Let the kernel's work for new (and newly up) links settle before timing.
  sleep 2
  # Same facts both ways: one link dump and one qdisc dump, JSON out.
  tune_ms[$n]=$(mean_ms "$TUNE plan -p playbooks/mtu.yml -p playbooks/netem.yml --netns $ns")
  tune_rss[$n]=$(peak_rss_mb "$TUNE plan -p playbooks/mtu.yml -p playbooks/netem.yml --netns $ns")
  shell_ms[$n]=$(mean_ms "bash -c 'ip -n $ns -j link show >/dev/null; tc -n $ns -j qdisc show >/dev/null'")
done

printf '%-12s %14s %22s %8s %16s\n' interfaces "tune plan ms" "ip -j link + tc -j ms" ratio "tune peak RSS MB"
for n in $SIZES; do
  printf '%-12s %14s %22s %8s %16s\n' "$n" "${tune_ms[$n]}" "${shell_ms[$n]}" \
    "$(echo "scale=3; ${tune_ms[$n]} / ${shell_ms[$n]}" | bc)" "${tune_rss[$n]}"
done

set -- $SIZES
small=$1; large=${!#}
growth=$(echo "scale=2; ${tune_ms[$large]} / ${tune_ms[$small]}" | bc)
expected=$(echo "scale=2; $large / $small" | bc)
echo "tune growth ${small}→${large} interfaces: ×$growth (linear would be ×$expected at most)"
status=0
if [ "$(echo "$growth > $expected * 1.3" | bc)" = 1 ]; then
  echo "FAIL: growth is worse than linear" >&2; status=1
fi
if [ "$(echo "${tune_ms[$large]} > $TARGET_MS" | bc)" = 1 ]; then
  echo "FAIL: ${tune_ms[$large]} ms for $large interfaces (target < $TARGET_MS ms)" >&2; status=1
else
  echo "ok: ${tune_ms[$large]} ms for $large interfaces (target < $TARGET_MS ms)"
fi
exit $status
