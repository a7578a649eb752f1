#!/usr/bin/env bash
# `otpc node` and `otpc load` against real Erlang: a running node takes an
# upgrade from outside (otpc load over distribution) and an Erlang node's
# rpc:call reaches the new version's export; a bad file or a wrong cookie
# gives a clear error and the node goes on; SIGINT stops it with exit 0.
set -uo pipefail
otpc=${1:?path to otpc}
build=${2:?build directory}
command -v erl >/dev/null || { echo "erl not found: skipped"; exit 77; }
node=nodecli_$$@localhost
cookie=nodecli_cookie_$$
tmp=$(mktemp -d)
trap '[ -n "${pid:-}" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
fail=0
pass=0
check() { if [ "$1" = "$2" ]; then pass=$((pass + 1)); else
  echo "FAIL: $3"; echo "  want: $1"; echo "  got:  $2"; fail=$((fail + 1)); fi; }

"$otpc" node --name "$node" --cookie "$cookie" \
  --config "$(dirname "$0")/../../examples/hot_counter.config" \
  --load "$build/examples/hot_counter.so" --app hot_counter > "$tmp/log" 2>&1 &
pid=$!
for _ in $(seq 1 200); do grep -qs "up (os pid" "$tmp/log" && break; sleep 0.05; done
check 1 "$(grep -c 'up (os pid' "$tmp/log")" "the node came up"

# An Erlang node calls an export of the module: version 1 answers.
erl_rpc() {
  erl -noshell -sname "probe_$$_$1@localhost" -setcookie "$cookie" -eval "
    R = rpc:call('$node', $2, $3, [$4]),
    io:format(\"~p\", [R]), halt()." 2>&1
}
got=$(erl_rpc a hot_counter value '')
check 1 "$(echo "$got" | sed -n 's/^{[0-9]*,\([0-9]\)}$/\1/p')" "rpc before the upgrade: $got"

# otpc load over distribution: the module is upgraded on the node.
"$otpc" load "$node" "$build/examples/hot_counter_v2.so" --cookie "$cookie" \
  > "$tmp/out" 2>&1
check 0 $? "otpc load v2: $(cat "$tmp/out")"
got=$(erl_rpc b hot_counter value '')
check 2 "$(echo "$got" | sed -n 's/^{[0-9]*,\([0-9]\)}$/\1/p')" "rpc after the upgrade: $got"
got=$(erl_rpc c otpc_code which 'hot_counter')
check '{"2","1"}' "$got" "otpc_code:which after the upgrade"

# Erlang's sys module drives the otpc server with its own system
# messages: suspend, change_code (the server runs the current version, so
# its own code_change runs), resume.
got=$(erl -noshell -sname "probe_$$_s@localhost" -setcookie "$cookie" -eval "
  S = {hot_counter, '$node'},
  R = [sys:suspend(S), sys:change_code(S, hot_counter, 2, []), sys:resume(S),
       element(2, rpc:call('$node', hot_counter, value, []))],
  io:format(\"~p\", [R]), halt()." 2>&1)
check '[ok,ok,ok,2]' "$got" "sys:suspend/change_code/resume from erl"

# A file that is no module: a clear error, exit 1, nothing changes.
echo "not a module" > "$tmp/bad.so"
"$otpc" load "$node" "$tmp/bad.so" --cookie "$cookie" > "$tmp/out" 2>&1
check 1 $? "otpc load of a bad file fails"
check 1 "$(grep -c 'not a shared object' "$tmp/out")" "its message: $(cat "$tmp/out")"
# A wrong cookie: no connection, exit 1.
"$otpc" load "$node" "$build/examples/hot_counter.so" --cookie wrong > "$tmp/out" 2>&1
check 1 $? "otpc load with a wrong cookie fails"
check 1 "$(grep -c 'cannot connect' "$tmp/out")" "its message: $(cat "$tmp/out")"
got=$(erl_rpc d hot_counter value '')
check 2 "$(echo "$got" | sed -n 's/^{[0-9]*,\([0-9]\)}$/\1/p')" "still version 2: $got"

# SIGINT (Ctrl-C) stops the applications and exits 0.
kill -INT "$pid"
wait "$pid"
check 0 $? "exit status after SIGINT"
pid=
check 1 "$(grep -c 'exited: stopped' "$tmp/log")" "the application was stopped"
# A node whose module does not load does not start: exit 1, and why.
echo "not a module" > "$tmp/bad.so"
"$otpc" node --name "bad_$node" --cookie "$cookie" --load "$tmp/bad.so" \
  > "$tmp/out" 2>&1
check 1 $? "otpc node with a bad module exits 1"
check 1 "$(grep -c 'not a shared object' "$tmp/out")" "its message: $(cat "$tmp/out")"
"$otpc" node --cookie "$cookie" > "$tmp/out" 2>&1
check 2 $? "otpc node without --name is a usage error"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
