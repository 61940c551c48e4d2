#!/bin/sh
# Bolt/Puppet task for tune: the parameters arrive as one JSON object on stdin (see
# init.json). Because init.json declares "supports_noop", `bolt task run --noop` adds
# "_noop": true, which `tune ansible` treats as check mode: plan only, nothing changed.
# Prints one JSON object (changed, diff, findings, plan, msg); exit 1 on failure.
set -eu
args=$(mktemp)
trap 'rm -f "$args"' EXIT
cat > "$args"
"${TUNE_BIN:-tune}" ansible "$args"
