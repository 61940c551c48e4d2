#!/usr/bin/env bash
# Writes link/hot-functions.txt and link/hot-functions-static.txt: the functions that
# the benchmarked plans execute, as mangled symbol names, of the default build and of
# the static one (README, Static build), which build.rs hands to lld as its
# --symbol-ordering-file so that they come first in .text (README, Benchmark).
#
# Builds each as its users build it (`cargo build --release`, and the static build as
# tests/static-build.sh does), since the names differ between them: cargo hashes the
# profile and an explicit --target into them (the release profile keeps symbols for
# this). Runs each command below under callgrind and keeps the names callgrind saw
# that are functions of that binary.
# Run it after a toolchain or dependency update (the names carry crate hashes that
# change then) or a large change to what a plan runs; a stale list only costs speed.
# Prints how many of each old list's names the build still has.
# Usage: bash link/regenerate.sh    Needs: valgrind, binutils (nm).
# Writes only target/ and link/: state and logs in a temp dir.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
for tool in valgrind nm; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install valgrind binutils" >&2; exit 1; }
done
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
record() { # BINARY LIST
  local bin=$1 list=$2 i=0 rc args
  rm -f "$tmp"/run*.out
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
  if [ -f "$list" ]; then
    echo "the previous $list: $(comm -12 <(sort -u "$list") "$tmp/functions" | wc -l) of $(grep -c . "$list") names still in the build"
  fi
  # callgrind names each function once as `fn=(id) name` (or cfn=, for a callee).
  sed -n 's/^c\{0,1\}fn=([0-9]*) \(.*\)$/\1/p' "$tmp"/run*.out | sort -u >"$tmp/executed"
  comm -12 "$tmp/executed" "$tmp/functions" >"$list"
  echo "$list: $(grep -c . "$list") functions"
}

cargo build --release --quiet
record "$PWD/target/release/tune" link/hot-functions.txt
host=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --release --quiet --target "$host" --target-dir target/static
record "$PWD/target/static/$host/release/tune" link/hot-functions-static.txt
