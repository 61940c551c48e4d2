#!/usr/bin/env bash
# Runs every fuzz target for FUZZ_SECONDS (default 12) seconds and prints the
# executions per target. Exits non-zero if any target crashes (panic, overflow,
# failed assertion, timeout or out-of-memory); the input is kept in
# fuzz/artifacts/TARGET/ and its log tail is printed.
#
# Only stable Rust is needed: RUSTC_BOOTSTRAP=1 lets rustc accept the -Z flags
# cargo-fuzz passes, and --sanitizer none skips ASan (these parsers are safe Rust;
# libFuzzer still catches panics, and debug assertions catch arithmetic overflow).
set -euo pipefail
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-12}
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo fuzz build --sanitizer none

# Seeds from the repository: real playbooks, facts snapshots and plans.
seed() {
  local target=$1
  shift
  mkdir -p "corpus/$target"
  local f
  for f in "$@"; do
    [ -f "$f" ] && cp "$f" "corpus/$target/seed-$(basename "$(dirname "$f")")-$(basename "$f")"
  done
  return 0
}
seed playbook ../playbooks/*.yml ../tests/golden/*/playbooks/*.yml
seed facts_json ../tests/golden/*/facts.json
mkdir -p corpus/plan_json
for f in ../tests/golden/*/expected.json; do
  tail -n +2 "$f" > "corpus/plan_json/seed-$(basename "$(dirname "$f")").json"
done
mkdir -p corpus/envfile
printf 'A=1\n# c\nexport B="x y"\r\nC=\x27q\x27\0B\0new value' > corpus/envfile/seed-1
printf 'JAVA_TOOL_OPTIONS=-Xmx1g\0JAVA_TOOL_OPTIONS\0-Xmx256m -Da=b' > corpus/envfile/seed-2
mkdir -p corpus/kmsg corpus/oom
printf '6,1234,5678901,-;nf_conntrack: table full, dropping packet\n' > corpus/kmsg/seed-1
printf '<4>[ 1234.567890] Memory cgroup out of memory: Killed process 27281 (java) total-vm:1kB, anon-rss:537484kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:1kB oom_score_adj:0\n' > corpus/kmsg/seed-2
cp corpus/kmsg/seed-2 corpus/oom/seed-1
printf 'oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/docker/0f2b,task_memcg=/docker/0f2b,task=java,pid=27281,uid=0\nMemory cgroup out of memory: Killed process 27281 (java) total-vm:4005196kB, anon-rss:537484kB\n' > corpus/oom/seed-2

# Inputs that crashed a target once (fuzz/regressions/TARGET/) are run first, always.
for dir in regressions/*/; do
  target=$(basename "$dir")
  mkdir -p "corpus/$target"
  cp "$dir"* "corpus/$target/"
done

status=0
printf '%-12s %12s %8s  %s\n' target execs seconds result
for target in $(cargo fuzz list); do
  log=$(mktemp)
  if cargo fuzz run --sanitizer none "$target" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 >"$log" 2>&1; then
    result=ok
  else
    result=CRASH
    status=1
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  printf '%-12s %12s %8s  %s\n' "$target" "${execs:-?}" "$seconds" "$result"
  if [ "$result" != ok ]; then
    tail -40 "$log"
  fi
  rm -f "$log"
done
exit $status
