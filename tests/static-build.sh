#!/usr/bin/env bash
# The static build (README "Static build"), checked: builds tune linked statically into
# target/static, then fails unless
#   - it is static (no PT_INTERP header naming a dynamic loader);
#   - it carries none of glibc's NSS resolver (getaddrinfo, which in a static binary
#     would load the host's libnss_*.so, built against another libc; the probes ask
#     `getent ahosts` instead);
#   - it passes the bundled playbooks' tests (`tune test playbooks`) and plans with the
#     bundled playbooks (exit 0, or 2 for pending changes: the host decides which);
#   - as root (required when CI=true): an apply in a namespace it creates, gated by a
#     TCP probe to `localhost` (resolved through getent, connected to a listener of its
#     own), widens a narrow port range there, and a probe to a name that does not
#     resolve refuses the apply (exit 1) with the range unchanged.
# Usage: bash tests/static-build.sh (run by .ci/run). Prints the binary's path last.
# Read-only: state and logs in a temp dir.
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "static build: FAILED: $*" >&2; exit 1; }
for tool in readelf strings getent; do
  command -v "$tool" >/dev/null || fail "missing $tool (binutils, libc-bin)"
done
host=$(rustc -vV | sed -n 's/^host: //p')
# The explicit --target keeps +crt-static off build scripts and proc-macros, which
# cannot be linked statically.
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --release --quiet --target "$host" --target-dir target/static
bin=$PWD/target/static/$host/release/tune
tmp=$(mktemp -d)
ns=tune-static-$$
listener=
cleanup() {
  [ -z "$listener" ] || kill "$listener" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

readelf -l "$bin" >"$tmp/headers"
! grep -q INTERP "$tmp/headers" || fail "$bin names a dynamic loader"
strings "$bin" >"$tmp/strings"
! grep -qE 'libnss_|getaddrinfo' "$tmp/strings" || fail "$bin carries glibc's NSS resolver"

export TUNE_STATE_DIR=$tmp/state NO_COLOR=1
"$bin" test playbooks >"$tmp/test.out" 2>&1 || { cat "$tmp/test.out"; fail "tune test playbooks"; }
: >"$tmp/empty.log"
plan_rc=0
"$bin" plan --detailed-exitcode --kernel-log "$tmp/empty.log" --sample-window 1ms >"$tmp/plan.out" 2>&1 || plan_rc=$?
[ "$plan_rc" = 0 ] || [ "$plan_rc" = 2 ] || { cat "$tmp/plan.out"; fail "tune plan exited $plan_rc"; }
grep -q '^tune plan on ' "$tmp/plan.out" || { cat "$tmp/plan.out"; fail "tune plan printed no plan"; }
if [ "$(id -u)" = 0 ]; then
  command -v ip >/dev/null || fail "missing ip (iproute2)"
  ip netns add "$ns"
  ip netns exec "$ns" sh -c 'echo "20000 20050" >/proc/sys/net/ipv4/ip_local_port_range'
  python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept(); c.close()' >"$tmp/port" &
  listener=$!
  for _ in $(seq 50); do [ -s "$tmp/port" ] && break; sleep 0.1; done
  port=$(cat "$tmp/port")
  range() { ip netns exec "$ns" cat /proc/sys/net/ipv4/ip_local_port_range | tr -s ' \t' ' '; }
  apply=("$bin" apply --yes --netns "$ns" -p playbooks/ephemeral-ports.yml --kernel-log "$tmp/empty.log")
  rc=0
  "${apply[@]}" --probe "tcp:absent.invalid:$port" >"$tmp/refused.out" 2>&1 || rc=$?
  [ "$rc" = 1 ] || { cat "$tmp/refused.out"; fail "apply with an unresolvable probe exited $rc, not 1"; }
  grep -q 'cannot resolve absent.invalid: no address (getent ahosts' "$tmp/refused.out" ||
    { cat "$tmp/refused.out"; fail "no getent resolution error"; }
  [ "$(range)" = "20000 20050" ] || fail "the refused apply changed the range to $(range)"
  "${apply[@]}" --probe "tcp:localhost:$port" >"$tmp/applied.out" 2>&1 ||
    { cat "$tmp/applied.out"; fail "apply with a probe to localhost:$port"; }
  grep -q "preflight: tcp:localhost:$port ok: 127.0.0.1:$port: connected" "$tmp/applied.out" ||
    { cat "$tmp/applied.out"; fail "localhost did not resolve to 127.0.0.1"; }
  [ "$(range)" = "10000 65535" ] || fail "the apply left the range at $(range)"
  echo "static build: probes resolve through getent (localhost -> 127.0.0.1:$port; absent.invalid refused, exit 1)"
elif [ "${CI:-}" = true ]; then
  fail "not root: the probe check needs namespaces"
else
  echo "static build: not root: probe check skipped" >&2
fi
echo "static build: ok: $(wc -c <"$bin") bytes, tune test playbooks and tune plan (exit $plan_rc) pass"
echo "$bin"
