#!/usr/bin/env bash
# Benchmark: `tune plan` on the bundled playbooks against a shell pipeline that
# gathers the same facts the way an operator would (sysctl, ss -s, grep on
# /proc/net/netstat, dmesg, and for the netlink and JVM playbooks ip -j link,
# tc -j qdisc show, pgrep java), side by side in one hyperfine run. Prints both times,
# the ratio (target: tune <= 0.2x the pipeline) and tune's peak RSS (target < 8 MiB).
# The softirq and softnet playbooks sample rates over a window (1 s by default) that
# the pipeline does not measure at all, so tune runs with `--sample-window 1ms`: the
# comparison is of the work, not of that wait.
#
# Usage: bash benches/plan-vs-shell.sh [--runs N]
# Needs: hyperfine and GNU time (apt-get install hyperfine time). Read-only: it
# changes nothing on the host. Run as root so that both sides can read /dev/kmsg.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-}
[ "$runs" = "--runs" ] && runs="--runs $2" || runs="--min-runs 30"

for tool in hyperfine /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install hyperfine time" >&2; exit 1; }
done
cargo build --release --quiet
tune=$PWD/target/release/tune
export NO_COLOR=1 TUNE_STATE_DIR=$(mktemp -d)
trap 'rm -rf "$TUNE_STATE_DIR" "$out"' EXIT
out=$(mktemp)

shell_pipeline='sysctl net.netfilter.nf_conntrack_count net.netfilter.nf_conntrack_max net.ipv4.ip_local_port_range net.ipv4.tcp_tw_reuse net.core.somaxconn; ss -s; ss -Htan state time-wait | wc -l; grep -A1 "^TcpExt:" /proc/net/netstat; dmesg | grep -c "nf_conntrack: table full, dropping packet"; ip -j link; tc -j qdisc show; pgrep -a java; dmesg | grep -c "Memory cgroup out of memory"; true'

hyperfine --warmup 5 $runs -N --export-json "$out" \
  --command-name "tune plan" "$tune plan --sample-window 1ms" \
  --command-name "shell pipeline" "bash -c '$shell_pipeline'" >&2

python3 - "$out" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
t, s = r["tune plan"]["mean"], r["shell pipeline"]["mean"]
print(f"tune plan:      {t*1000:8.2f} ms ± {r['tune plan']['stddev']*1000:.2f}")
print(f"shell pipeline: {s*1000:8.2f} ms ± {r['shell pipeline']['stddev']*1000:.2f}")
print(f"ratio tune/shell: {t/s:.3f}x (target <= 0.2x)")
PY
rss_kib=$(/usr/bin/time -f %M "$tune" plan --sample-window 1ms 2>&1 >/dev/null | tail -n1)
echo "tune plan peak RSS: ${rss_kib} KiB ($(( rss_kib / 1024 )) MiB; target < 8 MiB)"
