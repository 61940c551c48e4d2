#!/usr/bin/env bash
# Benchmark: `tune plan --all-netns` (the mtu and netem playbooks) with 10 and then 100
# network namespaces of a few veths each, side by side in one hyperfine run per size
# with:
#   - its floor, `plan-floor allns` (benches/floor/plan-floor.c): the namespaces found
#     as tune finds them (its own, /run/netns, each /proc/PID/ns/net by inode), then in
#     each one setns, the link dump and the qdisc dump, with raw system calls;
#   - what an operator would type to look at the same links and qdiscs:
#       for ns in $(ip netns list); do ip -n "$ns" -j link; tc -n "$ns" -j qdisc; done
#   - with TUNE_STATIC set (benches/floors.sh sets it), the static build.
# Prints each ratio to the floor and to the loop, the growth per 10x, and tune's peak
# RSS. tune and its floor visit *every* namespace on the host (also those the script
# did not create), so the script prints how many tune saw; the loop visits the
# benchmark's own only.
#
# Usage: bash benches/all-netns.sh [--runs N]
# Needs root, hyperfine, iproute2, python3, gcc, GNU time and a build
# (TUNE=target/release/tune by default). Creates namespaces named
# tune-bench-alln-<pid>-<n> and deletes them on exit; changes nothing else (tune plan
# is read-only).
set -euo pipefail
cd "$(dirname "$0")/.."
runs="--runs 10"
[ "${1:-}" = "--runs" ] && runs="--runs $2"
TUNE=${TUNE:-$PWD/target/release/tune}
SIZES=${SIZES:-"10 100"}
VETHS=${VETHS:-3}
PLAYBOOKS="-p playbooks/netem.yml -p playbooks/mtu.yml"
static=${TUNE_STATIC:-}
[ -x "$TUNE" ] || { echo "build first: cargo build --release (or TUNE=target/debug/tune)" >&2; exit 1; }
[ -z "$static" ] || [ -x "$static" ] || { echo "TUNE_STATIC=$static is not a program" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces)" >&2; exit 1; }

tmp=$(mktemp -d)
namespaces=()
cleanup() {
  for ns in "${namespaces[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
export NO_COLOR=1 TUNE_STATE_DIR=$tmp/state
cc -O2 -static -o "$tmp/plan-floor" benches/floor/plan-floor.c
floor=$tmp/plan-floor

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

declare -A tune_ms floor_ms
echo "machine: $(nproc) CPUs, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
for n in $SIZES; do
  make_namespaces "$n"
  seen=$("$TUNE" plan --all-netns $PLAYBOOKS --format json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
  printf 'for ns in %s; do ip -n $ns -j link; tc -n $ns -j qdisc; done >/dev/null\n' "${namespaces[*]}" >"$tmp/loop.sh"
  extra=()
  [ -z "$static" ] || extra=(--command-name tune-static "$static plan --all-netns $PLAYBOOKS")
  hyperfine -N --warmup 2 $runs --export-json "$tmp/$n.json" \
    --command-name tune "$TUNE plan --all-netns $PLAYBOOKS" "${extra[@]}" \
    --command-name floor "$floor allns" \
    --command-name "ip+tc loop" "bash $tmp/loop.sh" >/dev/null 2>&1
  read -r t f l s < <(python3 - "$tmp/$n.json" <<'PY'
import json, sys
r = {x["command"]: x["mean"] * 1e3 for x in json.load(open(sys.argv[1]))["results"]}
print(r["tune"], r["floor"], r["ip+tc loop"], r.get("tune-static", 0))
PY
  )
  tune_ms[$n]=$t
  floor_ms[$n]=$f
  rss=$(/usr/bin/time -f %M "$TUNE" plan --all-netns $PLAYBOOKS 2>&1 >/dev/null | tail -1)
  st=""
  if [ -n "$static" ]; then
    srss=$(/usr/bin/time -f %M "$static" plan --all-netns $PLAYBOOKS 2>&1 >/dev/null | tail -1)
    st=$(printf '  static %7.2f ms %5.2fx (RSS %s KiB)' "$s" "$(echo "$s / $f" | bc -l)" "$srss")
  fi
  printf '%4d namespaces (tune saw %d), %d veth pairs each: tune %7.2f ms, floor %7.2f ms, ratio %5.2fx%s; ip+tc loop %7.2f ms (tune / loop %.3f); tune RSS %s KiB\n' \
    "$n" "$seen" "$VETHS" "$t" "$f" "$(echo "$t / $f" | bc -l)" "$st" "$l" "$(echo "$t / $l" | bc -l)" "$rss"
done
set -- $SIZES
if [ $# -ge 2 ]; then
  printf 'growth %s -> %s namespaces: tune %.1fx, floor %.1fx\n' "$1" "$2" \
    "$(echo "${tune_ms[$2]} / ${tune_ms[$1]}" | bc -l)" "$(echo "${floor_ms[$2]} / ${floor_ms[$1]}" | bc -l)"
fi
