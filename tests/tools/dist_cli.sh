#!/usr/bin/env bash
# echo_node and the `otpc names | ping | rpc` commands against real Erlang
# on loopback, on an epmd port of this run's own (ERL_EPMD_PORT):
#   - echo_node (its embedded epmd) from erl: ping, gen_server:call({echo,
#     Node}), {Pid, Msg} sent back, rpc echo:reverse/1 on lists, binaries
#     and bad arguments, net_adm:names() listing it;
#   - otpc names / ping / rpc against echo_node and against a real erl node
#     (lists:reverse, erlang:node, undef), wrong cookies and unknown nodes;
#   - echo_node registered with Debian's epmd, long names (-name
#     x@127.0.0.1) both ways, a hidden echo_node (nodes() vs nodes(hidden));
#   - echo_node ends cleanly (exit 0) on SIGTERM and on SIGINT;
#   - TLS: echo_node and otpc ping/rpc with --tls-cert/--tls-key/--tls-ca,
#     erl -proto_dist inet_tls, a plain ping refused (certificates made
#     for the run by tests/dist/tls_certs.sh).
# usage: dist_cli.sh OTPC ECHO_NODE
set -uo pipefail
otpc=${1:?path to otpc}
echo_node=${2:?path to echo_node}
command -v erl >/dev/null || { echo "erl not found: skipped"; exit 77; }
tmp=$(mktemp -d)
ERL_EPMD_PORT=$((30000 + ($$ * 7 + 11) % 20000))
export ERL_EPMD_PORT
cookie=cli_cookie_$$
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
fail=0
pass=0
check() { if [ "$1" = "$2" ]; then pass=$((pass + 1)); else
  echo "FAIL: $3"; echo "  want: $1"; echo "  got:  $2"; fail=$((fail + 1)); fi; }

# Starts echo_node with the given arguments in the background; waits for
# its "up" line. Sets $echo_pid.
start_echo() {
  "$echo_node" "$@" > "$tmp/echo.out" 2> "$tmp/echo.err" &
  echo_pid=$!
  pids+=("$echo_pid")
  for _ in $(seq 100); do
    grep -q ' up ' "$tmp/echo.out" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "echo_node did not come up: $(cat "$tmp/echo.err")"
  return 1
}
# Stops it with a signal and gives its exit status.
stop_echo() {
  kill -"$1" "$echo_pid"
  wait "$echo_pid"
}
# erl -eval EXPR with a node name; prints what EXPR prints.
erl_eval() {
  local mode=$1 name=$2 ck=$3 expr=$4
  shift 4
  timeout 60 erl -noshell "$mode" "$name" -setcookie "$ck" -start_epmd false \
    "$@" -eval "$expr, halt()." 2>&1
}

# ---- echo_node from erl (its embedded epmd) -------------------------------
start_echo --name "echo_$$@localhost" --cookie "$cookie" || exit 1
node="echo_$$@localhost"
out=$(erl_eval -sname "sh_$$@localhost" "$cookie" "
  N = '$node',
  io:format(\"~p~n\", [net_adm:ping(N)]),
  io:format(\"~p~n\", [gen_server:call({echo, N}, {hello, [1, 2], <<\"b\">>})]),
  {echo, N} ! {self(), {back, 42}},
  io:format(\"~p~n\", [receive M -> M after 5000 -> none end]),
  io:format(\"~p~n\", [rpc:call(N, echo, reverse, [[1, two, \"three\"]])]),
  io:format(\"~p~n\", [rpc:call(N, echo, reverse, [<<1, 2, 3>>])]),
  io:format(\"~p~n\", [rpc:call(N, echo, reverse, [atom])]),
  io:format(\"~p~n\", [erpc:call(N, echo, reverse, [[]])]),
  {ok, Names} = net_adm:names(),
  io:format(\"~p~n\", [lists:keymember(\"echo_$$\", 1, Names)]),
  io:format(\"~p~n\", [lists:member(N, nodes())])")
check "pong
{hello,[1,2],<<\"b\">>}
{back,42}
[\"three\",two,1]
<<3,2,1>>
{badrpc,{'EXIT',badarg}}
[]
true
true" "$out" "erl talks to echo_node"

# ---- otpc names / ping / rpc against echo_node -----------------------------
got=$("$otpc" names | grep -c "^name echo_$$ at port ")
check 1 "$got" "otpc names lists echo_node"
check "pong" "$("$otpc" ping --cookie "$cookie" "$node")" "otpc ping pong"
"$otpc" ping --cookie "$cookie" "$node" >/dev/null; check 0 $? "pong exits 0"
got=$("$otpc" ping --cookie wrong_one "$node" 2>"$tmp/err"); rc=$?
check "pang 1" "$got $rc" "wrong cookie: pang, exit 1"
grep -q "cookie" "$tmp/err" && pass=$((pass + 1)) ||
  { echo "FAIL: no logged reason for the wrong cookie: $(cat "$tmp/err")"; fail=$((fail + 1)); }
grep -q "wrong digest: cookies differ" "$tmp/echo.err" && pass=$((pass + 1)) ||
  { echo "FAIL: echo_node logged no reason: $(cat "$tmp/echo.err")"; fail=$((fail + 1)); }
got=$("$otpc" ping --cookie "$cookie" --timeout 3000 "nobody_$$@localhost" 2>/dev/null); rc=$?
check "pang 1" "$got $rc" "unknown node: pang"
got=$("$otpc" rpc --cookie "$cookie" "$node" echo reverse '[<<"abc">>]')
check '<<"cba">>' "$got" "otpc rpc echo:reverse binary"
got=$("$otpc" rpc --cookie "$cookie" --name "client_$$" "$node" echo reverse \
  '[[1, {a, "x"}, 2.5, #{k => v}]].')
check '[#{k => v},2.5,{a,"x"},1]' "$got" "otpc rpc echo:reverse list"
got=$("$otpc" rpc --cookie "$cookie" "$node" echo reverse '[x]'); rc=$?
check "{badrpc,{'EXIT',badarg}} 1" "$got $rc" "otpc rpc failure exits 1"
"$otpc" rpc --cookie "$cookie" "$node" echo reverse '[1,' 2>"$tmp/err" >/dev/null
check 2 $? "bad ARGS exits 2"
grep -q "syntax error" "$tmp/err" && pass=$((pass + 1)) ||
  { echo "FAIL: bad ARGS message: $(cat "$tmp/err")"; fail=$((fail + 1)); }
"$otpc" rpc --cookie "$cookie" "$node" echo reverse 'notalist' 2>/dev/null
check 2 $? "ARGS not a list exits 2"
"$otpc" ping 2>/dev/null; check 2 $? "ping without NODE exits 2"
stop_echo TERM; check 0 $? "echo_node exits 0 on SIGTERM"
grep -q "SIGTERM, stopping" "$tmp/echo.out" && pass=$((pass + 1)) ||
  { echo "FAIL: echo_node said nothing on SIGTERM"; fail=$((fail + 1)); }
"$otpc" names >/dev/null 2>&1; check 1 $? "otpc names: no epmd left, exit 1"

# ---- otpc against a real erl node (and Debian's epmd) ----------------------
if command -v epmd >/dev/null; then
  epmd -port "$ERL_EPMD_PORT" 2>/dev/null &
  pids+=($!)
  for _ in $(seq 50); do "$otpc" names >/dev/null 2>&1 && break; sleep 0.1; done
fi
erl -noshell -sname "target_$$@localhost" -setcookie "$cookie" -start_epmd false \
  -eval 'timer:sleep(60000), halt().' >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do "$otpc" names 2>/dev/null | grep -q "target_$$" && break; sleep 0.1; done
target="target_$$@localhost"
check "pong" "$("$otpc" ping --cookie "$cookie" "$target")" "otpc ping erl"
got=$("$otpc" rpc --cookie "$cookie" "$target" lists reverse '[[1, 2, 3]]')
check "[3,2,1]" "$got" "otpc rpc lists:reverse on erl"
got=$("$otpc" rpc --cookie "$cookie" "$target" erlang node '[]')
check "$target" "$got" "otpc rpc erlang:node on erl"
got=$("$otpc" rpc --cookie "$cookie" "$target" nope f '[]'); rc=$?
check "{badrpc,{'EXIT',{undef,[{nope,f,[],[]}]}}} 1" "$got $rc" "otpc rpc undef on erl"
if command -v epmd >/dev/null; then
  # echo_node with the real epmd running: it registers there.
  start_echo --name "echo_$$" --cookie "$cookie" || exit 1
  got=$(epmd -port "$ERL_EPMD_PORT" -names | grep -c "^name echo_$$ at port ")
  check 1 "$got" "echo_node registered with Debian's epmd"
  stop_echo INT; check 0 $? "echo_node exits 0 on SIGINT"
fi

# ---- long names, and a hidden node -----------------------------------------
start_echo --name "long_$$@127.0.0.1" --cookie "$cookie" --hidden || exit 1
out=$(erl_eval -name "ln_$$@127.0.0.1" "$cookie" "
  N = 'long_$$@127.0.0.1',
  io:format(\"~p~n\", [net_adm:ping(N)]),
  io:format(\"~p~n\", [gen_server:call({echo, N}, long_names)]),
  io:format(\"~p ~p~n\", [lists:member(N, nodes()), lists:member(N, nodes(hidden))])")
check "pong
long_names
false true" "$out" "long names from erl -name; hidden in nodes(hidden) only"
check "pong" "$("$otpc" ping --cookie "$cookie" "long_$$@127.0.0.1")" "otpc ping a long name"
stop_echo TERM >/dev/null
# --ticktime 8 against an erl with net_ticktime 8: 12 s idle, still
# connected (with echo_node's default of 60 erl drops it after about 8).
start_echo --name "tick_$$@localhost" --cookie "$cookie" --ticktime 8 || exit 1
out=$(erl_eval -sname "tk_$$@localhost" "$cookie" "
  N = 'tick_$$@localhost',
  pong = net_adm:ping(N), timer:sleep(12000),
  io:format(\"~p~n\", [lists:member(N, nodes())])" -kernel net_ticktime 8)
check "true" "$out" "echo_node --ticktime 8 keeps an idle link to erl (net_ticktime 8)"
stop_echo TERM >/dev/null
# otpc connects to an erl -name node (its node is named at that host).
erl -noshell -name "lt_$$@127.0.0.1" -setcookie "$cookie" -start_epmd false \
  -eval 'timer:sleep(60000), halt().' >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do "$otpc" names 2>/dev/null | grep -q "lt_$$" && break; sleep 0.1; done
got=$("$otpc" rpc --cookie "$cookie" "lt_$$@127.0.0.1" erlang node '[]')
check "'lt_$$@127.0.0.1'" "$got" "otpc rpc to erl -name"

# ---- TLS: echo_node --tls-*, otpc ping/rpc --tls-*, erl -proto_dist inet_tls
if command -v openssl >/dev/null && \
   sh "$(dirname "$0")/../dist/tls_certs.sh" "$tmp/certs"; then
  c=$tmp/certs
  tls=(--tls-cert "$c/node.pem" --tls-key "$c/node.key" --tls-ca "$c/ca.pem")
  cat > "$tmp/ssl_dist.conf" <<END
[{server, [{certfile, "$c/node.pem"}, {keyfile, "$c/node.key"},
           {cacertfile, "$c/ca.pem"}, {verify, verify_peer},
           {fail_if_no_peer_cert, true}]},
 {client, [{certfile, "$c/node.pem"}, {keyfile, "$c/node.key"},
           {cacertfile, "$c/ca.pem"}, {verify, verify_peer}]}].
END
  start_echo --name "tls_$$@localhost" --cookie "$cookie" "${tls[@]}" || exit 1
  check "pong" "$("$otpc" ping --cookie "$cookie" "${tls[@]}" "tls_$$@localhost")" \
    "otpc ping --tls-* to echo_node --tls-*"
  check '<<"cba">>' \
    "$("$otpc" rpc --cookie "$cookie" "${tls[@]}" "tls_$$@localhost" echo reverse '[<<"abc">>]')" \
    "otpc rpc --tls-* to echo_node --tls-*"
  check "pang" "$("$otpc" ping --cookie "$cookie" "tls_$$@localhost" 2>/dev/null)" \
    "plain otpc ping to a TLS echo_node"
  out=$(erl_eval -sname "tsh_$$@localhost" "$cookie" "
    N = 'tls_$$@localhost',
    io:format(\"~p~n\", [net_adm:ping(N)]),
    io:format(\"~p~n\", [gen_server:call({echo, N}, tls_hello)])" \
    -proto_dist inet_tls -ssl_dist_optfile "$tmp/ssl_dist.conf")
  check "pong
tls_hello" "$out" "erl -proto_dist inet_tls to echo_node --tls-*"
  stop_echo TERM >/dev/null
else
  echo "openssl missing or failed: TLS part skipped"
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
