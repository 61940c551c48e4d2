#!/usr/bin/env bash
# Benchmark: `tune plan --all-netns` over 100 network namespaces with a few veths each,
# next to what an operator would type to look at the same links and qdiscs:
#   for ns in $(ip netns list); do ip -n "$ns" -j link; tc -n "$ns" -j qdisc; done
# and the ratio. Also times half as many namespaces, to show the cost grows linearly.
# tune plans *every* namespace on the host (also those it did not create), so the
# script prints how many it saw; the shell loop visits the benchmark's own only.
#
# Needs root, iproute2 and a build (TUNE=target/release/tune by default). Creates
# namespaces named tune-bench-alln-<pid>-<n> and deletes them on exit; changes nothing
# else (tune plan is read-only).
set -euo pipefail
cd "$(dirname "$0")/.."
TUNE=${TUNE:-target/release/tune}
RUNS=${RUNS:-5}
COUNT=${COUNT:-100}
VETHS=${VETHS:-3}
PLAYBOOKS=(-p playbooks/netem.yml -p playbooks/mtu.yml)
[ -x "$TUNE" ] || { echo "build first: cargo build --release (or TUNE=target/debug/tune)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces)" >&2; exit 1; }

namespaces=()
cleanup() { for ns in "${namespaces[@]}"; do ip netns del "$ns" 2>/dev/null || true; done; }
trap cleanup EXIT

make_namespaces() {
  local n=$1 ns
  while ((${#namespaces[@]} < n)); do
    ns=tune-bench-alln-$$-${#namespaces[@]}
    ip netns add "$ns"
    namespaces+=("$ns")
    for v in $(seq "$VETHS"); do
      ip -n "$ns" link add "va$v" type veth peer name "vb$v"
    done
    ip -n "$ns" link set lo up
  done
}

# Mean wall time in ms of RUNS runs of a bash snippet (after one warm-up run).
mean_ms() {
  local start end
  bash -c "$1" >/dev/null 2>&1
  start=$(date +%s%N)
  for _ in $(seq "$RUNS"); do bash -c "$1" >/dev/null 2>&1; done
  end=$(date +%s%N)
  echo $(( (end - start) / 1000000 / RUNS ))
}

report() {
  local n=$1 seen shell_ms tune_ms
  make_namespaces "$n"
  seen=$("$TUNE" plan --all-netns "${PLAYBOOKS[@]}" --format json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
  local list="${namespaces[*]}"
  shell_ms=$(mean_ms "for ns in $list; do ip -n \$ns -j link; tc -n \$ns -j qdisc; done")
  tune_ms=$(mean_ms "$TUNE plan --all-netns ${PLAYBOOKS[*]} --format json")
  printf '%4d namespaces (tune saw %d), %d veth pairs each: tune %5d ms, ip+tc loop %5d ms, ratio %s\n' \
    "$n" "$seen" "$VETHS" "$tune_ms" "$shell_ms" "$(python3 -c "print(round($tune_ms / max($shell_ms, 1), 2))")"
}

report $((COUNT / 2))
report "$COUNT"
