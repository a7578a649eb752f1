#!/usr/bin/env bash
# node_demo.sh: what `make run` runs. Starts the example application
# hot_counter on an otpc node, upgrades its module to version 2 while it
# counts, then back to version 1, then stops the node with SIGTERM. Each
# step is checked: the value goes on across both upgrades (the state
# carried over) and the node exits 0. ctest runs it too (example_node).
#
#   examples/node_demo.sh BUILD_DIR [NODE_NAME]
#
# To run the node yourself until Ctrl-C (or kill -TERM):
#
#   BUILD_DIR/otpc node --name demo@localhost --config examples/hot_counter.config \
#       --load BUILD_DIR/examples/hot_counter.so --app hot_counter
set -uo pipefail
build=${1:?usage: node_demo.sh BUILD_DIR [NODE_NAME]}
node=${2:-demo@localhost}
here=$(cd "$(dirname "$0")" && pwd)
otpc=$build/otpc
cookie=otpc_demo_cookie
log=$(mktemp)
trap 'rm -f "$log"; [ -n "${pid:-}" ] && kill -9 "$pid" 2>/dev/null' EXIT
fail() { echo "node_demo: FAILED: $*"; exit 1; }

# Waits (bounded) until the log has a line matching $1.
wait_for() {
  for _ in $(seq 1 200); do
    grep -qs -- "$1" "$log" && return 0
    kill -0 "$pid" 2>/dev/null || fail "the node exited while waiting for '$1'"
    sleep 0.05
  done
  fail "no '$1' within 10 s"
}

# The last value a version printed.
last_value() { grep "hot_counter vsn $1: value" "$log" | tail -1 | awk '{print $5}'; }

echo "== starting $node with hot_counter version 1"
"$otpc" node --name "$node" --cookie "$cookie" \
  --config "$here/hot_counter.config" \
  --load "$build/examples/hot_counter.so" --app hot_counter \
  > >(tee "$log") 2>&1 &
pid=$!
wait_for "up (os pid"
wait_for "hot_counter vsn 1: value 110"

echo "== otpc load $node hot_counter_v2.so   (while it counts)"
"$otpc" load "$node" "$build/examples/hot_counter_v2.so" --cookie "$cookie" \
  || fail "otpc load of version 2"
wait_for "tick 2 since vsn 2"
v1=$(grep "now vsn 2, value" "$log" | awk '{print $6}')
[ -n "$v1" ] && [ "$v1" -ge 110 ] || fail "version 2 did not take over the value"

echo "== otpc load $node hot_counter.so   (back to version 1)"
"$otpc" load "$node" "$build/examples/hot_counter.so" --cookie "$cookie" \
  || fail "otpc load of version 1 again"
wait_for "now vsn 1, value"
v2=$(grep "now vsn 1, value" "$log" | awk '{print $6}')
[ "$v2" -gt "$v1" ] || fail "the value did not carry over back to version 1"
wait_for "hot_counter vsn 1: value $((v2 + 5))"

echo "== kill -TERM $pid"
kill -TERM "$pid"
wait "$pid"
status=$?
pid=
[ "$status" = 0 ] || fail "the node exited with status $status"
grep -q "stopped" "$log" || fail "no clean stop in the log"
echo "== node_demo: the node upgraded twice under way and exited 0"
