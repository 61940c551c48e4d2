#!/usr/bin/env bash
# Writes link/hot-functions.txt: the binary's functions that the benchmarked plans
# execute, as mangled symbol names, which build.rs hands to lld as its
# --symbol-ordering-file so that they come first in .text (README, Benchmark).
#
# Builds tune as `cargo build --release` does (the release profile keeps symbols, and
# another profile's names would differ: cargo hashes the profile into them), runs each
# command below under callgrind, and keeps the names callgrind saw that are functions
# of the binary.
# Run it after a toolchain or dependency update (the names carry crate hashes that
# change then) or a large change to what a plan runs; a stale list only costs speed.
# Prints how many of the old list's names the build still has.
# Usage: bash link/regenerate.sh    Needs: valgrind, binutils (nm).
# Writes only target/release and link/hot-functions.txt: state and logs in a temp dir.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
for tool in valgrind nm; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install valgrind binutils" >&2; exit 1; }
done
cargo build --release --quiet
bin=$PWD/target/release/tune
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export NO_COLOR=1 TUNE_STATE_DIR=$tmp/state
: >"$tmp/empty.log"
# A short log with a line for each kind the bundled playbooks parse, recent or not.
cat >"$tmp/kern.log" <<'LOG'
[    1.000000] eth0: renamed from veth0123
[    2.000000] nf_conntrack: nf_conntrack: table full, dropping packet
[    3.000000] TCP: request_sock_TCP: Possible SYN flooding on port 80. Sending cookies.
[    4.000000] java invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0
[    4.000001] memory: usage 524288kB, limit 524288kB, failcnt 1
[    4.000002] Memory cgroup out of memory: Killed process 4242 (java) total-vm:1000kB, anon-rss:900kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:100kB oom_score_adj:0
LOG
sysctl_books="-p playbooks/conntrack.yml -p playbooks/ephemeral-ports.yml -p playbooks/listen-backlog.yml -p playbooks/time-wait.yml"
runs=(
  "--version"
  "plan $sysctl_books --kernel-log $tmp/empty.log"
  "plan --kernel-log $tmp/empty.log --sample-window 1ms"
  "plan --kernel-log $tmp/kern.log --sample-window 1ms --format json"
  "plan -p playbooks/conntrack.yml -p playbooks/jvm-heap.yml --kernel-log $tmp/kern.log"
)
i=0
for args in "${runs[@]}"; do
  i=$((i + 1))
  # Exit 2 (changes pending) is a plan too; anything else is a failure.
  rc=0
  # shellcheck disable=SC2086 # the arguments are words
  valgrind --tool=callgrind --demangle=no --callgrind-out-file="$tmp/run$i.out" \
    "$bin" $args >/dev/null 2>"$tmp/run$i.err" || rc=$?
  [ "$rc" = 0 ] || [ "$rc" = 2 ] || { cat "$tmp/run$i.err" >&2; echo "tune $args exited $rc" >&2; exit 1; }
done
nm --defined-only "$bin" | awk '$2 ~ /^[tTwW]$/ { print $3 }' | sort -u >"$tmp/functions"
old=link/hot-functions.txt
if [ -f "$old" ]; then
  echo "the previous list: $(comm -12 <(sort -u "$old") "$tmp/functions" | wc -l) of $(grep -c . "$old") names still in the build"
fi
# callgrind names each function once as `fn=(id) name` (or cfn=, for a callee).
sed -n 's/^c\{0,1\}fn=([0-9]*) \(.*\)$/\1/p' "$tmp"/run*.out | sort -u >"$tmp/executed"
comm -12 "$tmp/executed" "$tmp/functions" >"$old"
echo "link/hot-functions.txt: $(grep -c . "$old") functions"
