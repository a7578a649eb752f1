#!/bin/sh
# bench/run.sh: runs otpc's benchmark programs and their Erlang and Go twins
# in the same run, then (re)writes docs/benchmarks.md with tables of the
# results, the ratios to otpc, and the machine they came from.
#
#   bench/run.sh [BUILD_DIR]      (make bench calls it with its build dir)
#
# Environment: QUICK=1 runs each workload briefly (numbers less stable);
# BENCH_REPORT=path writes the report elsewhere (default docs/benchmarks.md);
# BENCH_SCHEDULERS=n gives otpc n schedulers, Erlang +S n:n and Go
# GOMAXPROCS=n (default: nproc). Go is optional: without `go` the Go
# column is left out and the report says so (make bench installs it).
#
# Protocol: a benchmark program is any command that prints lines
#   BENCH <workload> <system> <value> <unit>   a result; the value may also
#                                              be "failed" or "timeout"
#   DESC  <workload> <text...>                 what the workload is
#   GOAL  <workload> <text...>                 the figure otpc aims at
#   NOTE  <workload> <system> <text...>        what happened, for the report
#   INFO  <key> <system> <text...>             a fact to show (e.g. sizes)
# and exits 0. Units: throughputs [k|M|G]ops/s, [k|M|G]msg/s, [k|M|G]B/s
# (higher is better); times ns, us, ms, s and sizes B, KiB, MiB, GiB (lower
# is better). The report groups BENCH lines by workload (term_* workloads
# in one table, otp_* in another, code_* in another, dist_* in another,
# the others in a fifth), one column per system (otpc first), and one
# ratio column per other system, oriented so that above 1 means otpc is
# better. The dist_* table is by pair of nodes instead: systems otpc (otpc
# to otpc), otpc-erlang (otpc to Erlang) and erlang (Erlang to Erlang),
# with the two ratios to Erlang to Erlang. To add a benchmark, add its
# command to programs().
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
REPORT=${BENCH_REPORT:-$ROOT/docs/benchmarks.md}
BENCH_SCHEDULERS=${BENCH_SCHEDULERS:-$(nproc 2>/dev/null || echo 1)}
export BENCH_SCHEDULERS
# Erlang's crash dumps, if any, go to the build dir, not the working dir.
ERL_CRASH_DUMP=$BUILD/bench/erl_crash.dump
export ERL_CRASH_DUMP
# Erlang for rt_bench: as many schedulers as otpc, and room for the
# 1.1M processes of skynet.
ERL_RT="erl +S $BENCH_SCHEDULERS:$BENCH_SCHEDULERS +P 4194304 -noshell"
HAVE_GO=""

# One command per line; each prints BENCH/DESC/GOAL/NOTE/INFO lines.
programs() {
  cat <<EOF
$BUILD/bench/term_bench
escript $ROOT/bench/term_bench.escript
$BUILD/bench/rt_bench
$ERL_RT -pa $BUILD/bench -run rt_bench main
$BUILD/bench/otp_bench
$ERL_RT -pa $BUILD/bench -run otp_bench main
$BUILD/bench/code_bench
$ERL_RT -pa $BUILD/bench -run code_bench main
$BUILD/bench/dist_bench $BUILD/bench
EOF
  if [ -n "$HAVE_GO" ]; then echo "$BUILD/bench/rt_bench_go"; fi
}

die() {
  echo "bench/run.sh: $*" >&2
  exit 1
}

for prog in term_bench rt_bench otp_bench code_bench dist_bench; do
  [ -x "$BUILD/bench/$prog" ] ||
    die "$BUILD/bench/$prog not found; build with -DOTPC_BENCH=ON (make bench)"
done
command -v escript >/dev/null 2>&1 ||
  die "escript not found; install Debian's erlang-nox (make bench does)"

# The Erlang and Go twins of rt_bench and otp_bench are compiled here,
# into the build dir.
for erl in rt_bench otp_bench code_bench dist_bench; do
  echo "== erlc bench/$erl.erl" >&2
  erlc -o "$BUILD/bench" "$ROOT/bench/$erl.erl" ||
    die "erlc failed on bench/$erl.erl"
done
GO_NOTE=""
if command -v go >/dev/null 2>&1; then
  echo "== go build bench/rt_bench.go" >&2
  if GOCACHE=${GOCACHE:-$BUILD/bench/go-cache} GO111MODULE=off \
    go build -o "$BUILD/bench/rt_bench_go" "$ROOT/bench/rt_bench.go"; then
    HAVE_GO=yes
  else
    GO_NOTE="\`go build\` failed on bench/rt_bench.go, so Go was left out of this run."
  fi
else
  GO_NOTE="\`go\` was not found, so Go was left out of this run (install golang-go)."
fi
[ -z "$GO_NOTE" ] || echo "bench/run.sh: $GO_NOTE" >&2

RESULTS=$(mktemp)
trap 'rm -f "$RESULTS" "$RESULTS.md" "$RESULTS.one" "$RESULTS.t0" "$RESULTS.t1"' EXIT INT TERM

# Other work on the machine skews the figures (otpc's sequential processes
# in particular, when a scheduler thread has to share a core): the report
# says how much of the CPUs others used meanwhile. `times` (our children's
# CPU time) must not run in a pipe or a $(...): a subshell has no children.
load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat 2>/dev/null || echo 0; }
busy0=$(busy_ticks)
wall0=$(date +%s.%N)
times >"$RESULTS.t0"

programs | while IFS= read -r cmd; do
  [ -n "$cmd" ] || continue
  echo "== $cmd" >&2
  # shellcheck disable=SC2086  # the command line is split on purpose
  if ! $cmd </dev/null >"$RESULTS.one"; then
    cat "$RESULTS.one" >&2
    rm -f "$RESULTS.one"
    die "benchmark failed: $cmd"
  fi
  cat "$RESULTS.one" >&2
  cat "$RESULTS.one" >>"$RESULTS"
  rm -f "$RESULTS.one"
done

# ---- the machine ---------------------------------------------------------
load_after=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
# The share of the CPUs that other processes used while the benchmarks
# ran: the machine's busy time minus ours, over the wall time of all CPUs.
times >"$RESULTS.t1"
others=$(awk -v b0="$busy0" -v b1="$(busy_ticks)" -v w0="$wall0" \
  -v w1="$(date +%s.%N)" -v hz="$(getconf CLK_TCK 2>/dev/null || echo 100)" \
  -v n="$(nproc 2>/dev/null || echo 1)" '
  function secs(t,   m) { m = t; sub(/m.*/, "", m); sub(/^[0-9]+m/, "", t); sub(/s$/, "", t); return m * 60 + t }
  FNR == 2 { mine[++f] = secs($1) + secs($2) }
  END {
    wall = w1 - w0; o = ((b1 - b0) / hz - (mine[2] - mine[1])) / (wall * n)
    if (o < 0) o = 0
    printf "%.0f%%", o * 100
  }' "$RESULTS.t0" "$RESULTS.t1")
cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo 2>/dev/null |
  head -n 1)
[ -n "$cpu" ] || cpu=$(uname -m)
ncpu=$(nproc 2>/dev/null || echo "?")
kernel=$(uname -sr)
mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null || true)
[ -n "$mem" ] || mem=unknown
maxmap=$(cat /proc/sys/vm/max_map_count 2>/dev/null || echo "?")
otp=$(erl -noshell -eval '
  R = erlang:system_info(otp_release),
  F = filename:join([code:root_dir(), "releases", R, "OTP_VERSION"]),
  V = case file:read_file(F) of {ok, B} -> string:trim(B); _ -> R end,
  io:format("~s (erts ~s, ~s emulator)",
            [V, erlang:system_info(version), erlang:system_info(emu_flavor)]),
  halt().' 2>/dev/null || echo "unknown")
if [ -n "$HAVE_GO" ]; then
  gov=$(go version 2>/dev/null | sed 's/^go version //')
else
  gov="not run"
fi
cc_path=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$BUILD/CMakeCache.txt" 2>/dev/null || true)
cc=$("${cc_path:-cc}" --version 2>/dev/null | head -n 1 || true)
[ -n "$cc" ] || cc=unknown
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD/CMakeCache.txt" 2>/dev/null || true)
date=$(date -u '+%Y-%m-%d %H:%M UTC')
quick=""
case ${QUICK:-0} in 0 | "") ;; *) quick=yes ;; esac

# ---- the report ----------------------------------------------------------
{
  cat <<EOF
# Benchmarks

Written by \`bench/run.sh\` (\`make bench\`) on $date. Do not edit by hand:
rerun \`make bench\` to refresh it.

Every figure was measured in the same run on the same machine. Throughputs
(per second) are better higher; times and memory are better lower. The
ratio columns say how many times better otpc did than the other system:
its throughput divided by theirs, or their time or memory divided by
otpc's. Above 1 means otpc is better.
EOF
  if [ -n "$quick" ]; then
    printf '\n**This was a QUICK run: each workload ran only briefly, so the\n'
    printf 'figures are rough.**\n'
  fi
  if [ -n "$GO_NOTE" ]; then
    printf '\n**%s**\n' "$GO_NOTE"
  fi
  cat <<EOF

## Machine

| | |
|---|---|
| CPU | $cpu |
| cores (nproc) | $ncpu |
| memory | $mem |
| kernel | $kernel (vm.max_map_count $maxmap) |
| other load | other processes used $others of the CPUs during the run; load average $load_before before, $load_after after |
| schedulers | $BENCH_SCHEDULERS (otpc \`schedulers\`, Erlang \`+S $BENCH_SCHEDULERS:$BENCH_SCHEDULERS\`, Go \`GOMAXPROCS\`) |
| Erlang/OTP | $otp |
| Go | $gov |
| C compiler | $cc, CMake build type ${build_type:-unknown} |
| date | $date |

## Results
EOF
  awk -f - "$RESULTS" <<'AWK'
# A unit's family, its factor to the family's base unit, and whether
# higher is better.
function unit_info(u,   p, b) {
  U_fam = ""; U_fac = 0; U_high = 0
  if (u ~ /^[kMG]?(ops|msg|B)\/s$/) {
    p = substr(u, 1, 1); b = u
    U_fac = 1
    if (p == "k") { U_fac = 1e3; b = substr(u, 2) }
    else if (p == "M") { U_fac = 1e6; b = substr(u, 2) }
    else if (p == "G") { U_fac = 1e9; b = substr(u, 2) }
    U_fam = b; U_high = 1
    return
  }
  if (u == "B") { U_fam = "mem"; U_fac = 1 }
  else if (u == "KiB") { U_fam = "mem"; U_fac = 1024 }
  else if (u == "MiB") { U_fam = "mem"; U_fac = 1048576 }
  else if (u == "GiB") { U_fam = "mem"; U_fac = 1073741824 }
  else if (u == "ns") { U_fam = "time"; U_fac = 1e-9 }
  else if (u == "us") { U_fam = "time"; U_fac = 1e-6 }
  else if (u == "ms") { U_fam = "time"; U_fac = 1e-3 }
  else if (u == "s") { U_fam = "time"; U_fac = 1 }
}
function numeric(v) { return v ~ /^[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$/ }
function group(w) { return (w ~ /^term_/) ? "term" : (w ~ /^otp_/) ? "otp" : (w ~ /^code_/) ? "code" : (w ~ /^dist_/) ? "dist" : "rt" }
function cell(w, s) {
  if (!((w, s) in have)) return "-"
  if (!numeric(val[w, s])) return "**" val[w, s] "**"
  return val[w, s] " " unit[w, s]
}
function ratio(w, s) { return ratio_of(w, "otpc", s) }
# How many times better system a did than system s on workload w.
function ratio_of(w, a, s,   fo, fs, ho, vo, vs, famo) {
  if (!((w, s) in have) || !((w, a) in have)) return "-"
  if (!numeric(val[w, a]) || !numeric(val[w, s])) return "-"
  unit_info(unit[w, a]); fo = U_fac; ho = U_high; famo = U_fam
  unit_info(unit[w, s]); fs = U_fac
  if (!fo || !fs || famo != U_fam) return "n/a"
  vo = val[w, a] * fo; vs = val[w, s] * fs
  if (vo <= 0 || vs <= 0) return "n/a"
  return sprintf("%.2f", ho ? vo / vs : vs / vo)
}
# The distribution: a column per pair of nodes (sender to receiver).
function dist_table(   j, w, n, line) {
  n = 0
  for (j = 1; j <= nw; j++) if (group(works[j]) == "dist") n++
  if (n == 0) return
  print ""
  print "### Distribution (pairs of nodes on loopback, sender to receiver)"
  print ""
  print "| workload | otpc to otpc | otpc to Erlang | Erlang to Erlang | otpc to otpc vs Erlang to Erlang | otpc to Erlang vs Erlang to Erlang | goal |"
  print "|---|---:|---:|---:|---:|---:|---|"
  for (j = 1; j <= nw; j++) {
    w = works[j]
    if (group(w) != "dist") continue
    line = "| " w " | " cell(w, "otpc") " | " cell(w, "otpc-erlang") " | " cell(w, "erlang")
    line = line " | " ratio_of(w, "otpc", "erlang") " | " ratio_of(w, "otpc-erlang", "erlang")
    line = line " | " ((w in goal) ? goal[w] : "")
    print line " |"
  }
}
function table(g, title,   i, j, w, s, n, sys, nsys, head, rule, line, any_goal) {
  n = 0
  for (j = 1; j <= nw; j++) if (group(works[j]) == g) n++
  if (n == 0) return
  nsys = 0
  for (i = 1; i <= ns; i++) {
    s = others[i]
    for (j = 1; j <= nw; j++)
      if (group(works[j]) == g && ((works[j], s) in have)) { sys[++nsys] = s; break }
  }
  any_goal = 0
  for (j = 1; j <= nw; j++) if (group(works[j]) == g && (works[j] in goal)) any_goal = 1
  print ""
  print "### " title
  print ""
  head = "| workload | otpc"; rule = "|---|---:"
  for (i = 1; i <= nsys; i++) { head = head " | " sys[i]; rule = rule "|---:" }
  for (i = 1; i <= nsys; i++) { head = head " | otpc vs " sys[i]; rule = rule "|---:" }
  if (any_goal) { head = head " | goal"; rule = rule "|---" }
  print head " |"; print rule "|"
  for (j = 1; j <= nw; j++) {
    w = works[j]
    if (group(w) != g) continue
    line = "| " w " | " cell(w, "otpc")
    for (i = 1; i <= nsys; i++) line = line " | " cell(w, sys[i])
    for (i = 1; i <= nsys; i++) line = line " | " ratio(w, sys[i])
    if (any_goal) line = line " | " ((w in goal) ? goal[w] : "")
    print line " |"
  }
}
$1 == "BENCH" && NF >= 5 {
  w = $2; s = $3
  if (!(w in seen_w)) { seen_w[w] = 1; works[++nw] = w }
  if (!(s in seen_s)) { seen_s[s] = 1; if (s != "otpc") others[++ns] = s }
  val[w, s] = $4; unit[w, s] = $5; have[w, s] = 1
  next
}
$1 == "DESC" && NF >= 3 {
  if (!($2 in desc)) { d = $0; sub(/^DESC[ \t]+[^ \t]+[ \t]+/, "", d); desc[$2] = d }
  next
}
$1 == "GOAL" && NF >= 3 {
  if (!($2 in goal)) { d = $0; sub(/^GOAL[ \t]+[^ \t]+[ \t]+/, "", d); goal[$2] = d }
  next
}
$1 == "NOTE" && NF >= 4 {
  t = $0; sub(/^NOTE[ \t]+[^ \t]+[ \t]+[^ \t]+[ \t]+/, "", t)
  notes[++nn] = "- `" $2 "` (" $3 "): " t
  next
}
$1 == "INFO" && NF >= 4 {
  k = $2; s = $3
  if (!(k in seen_k)) { seen_k[k] = 1; keys[++nk] = k }
  if (!(s in seen_is)) { seen_is[s] = 1; isys[++nis] = s }
  t = $0; sub(/^INFO[ \t]+[^ \t]+[ \t]+[^ \t]+[ \t]+/, "", t); info[k, s] = t
  next
}
END {
  if (nw == 0) { print ""; print "(no results)" }
  table("rt", "Processes")
  table("otp", "OTP behaviours")
  table("code", "Hot code loading")
  table("term", "Terms")
  dist_table()
  print ""
  print "### Workloads"
  print ""
  split("rt otp code term dist", groups, " ")
  for (g = 1; g <= 5; g++)
    for (j = 1; j <= nw; j++) {
      w = works[j]
      if (group(w) != groups[g]) continue
      print "- `" w "`: " ((w in desc) ? desc[w] : "(no description)")
    }
  if (nn > 0) {
    print ""
    print "### Notes from the run"
    print ""
    for (j = 1; j <= nn; j++) print notes[j]
  }
  if (nk > 0) {
    print ""
    print "### Encoded sizes"
    print ""
    head = "| message"; rule = "|---"
    for (i = 1; i <= nis; i++) { head = head " | " isys[i]; rule = rule "|---:" }
    print head " |"; print rule "|"
    for (j = 1; j <= nk; j++) {
      k = keys[j]; line = "| " k
      for (i = 1; i <= nis; i++)
        line = line " | " (((k, isys[i]) in info) ? info[k, isys[i]] : "-")
      print line " |"
    }
  }
}
AWK
  cat <<'EOF'

## What the numbers measure

### Processes

- **Method.** otpc runs as a C program built by CMake (the build type
  above): every workload runs in a forked child with a fresh node
  (`otpc_node_start` with the schedulers above, `otpc_node_stop` after),
  so a crash or a hang is reported as **failed** or **timeout** instead
  of ending the run, and memory is measured from a clean process. Erlang
  runs `bench/rt_bench.erl` compiled with erlc, in one VM started with
  `+S` as above and `+P 4194304`; each workload runs in a fresh process
  and whatever it spawned is killed afterwards. Go runs
  `bench/rt_bench.go` built with `go build`. Workloads with a throughput
  or a time run three times (QUICK: once) and the best run is shown; the
  runs go in three passes over all the workloads, on every side, rather
  than one workload's three in a row, so that a slow spell of the machine
  costs one run of several workloads, not all of one.
  Times are taken with the monotonic clock; spawning is timed only where
  the workload says so.
- **Memory** is the growth of the resident set (`/proc/self/statm`) over
  the spawning of the processes, divided by their number, for all three
  systems: control blocks, stacks, process table, allocator overhead, all
  included. Erlang's `erlang:memory(processes)` figure is in the notes.
- **Processes.** otpc's light processes are handler processes
  (`otpc_spawn_handler`: callbacks, no stack while idle), so they are the
  main rows; the `_seq` rows use sequential processes (`otpc_spawn`, a C
  function blocking in `otpc_receive`). Erlang and Go have one kind of
  process, so their `_seq` figures repeat the main row's measurement.
  Messages in otpc are immutable reference-counted buffers: forwarding a
  token sends the same buffer on, where Erlang copies the (small) term.
- **Mailboxes.** Erlang processes that collect many messages
  (`spawn_exit_msg`'s parent, `many_to_one`'s receiver) use
  `message_queue_data = off_heap`, as Erlang advises: with the default the
  garbage collector scans the whole queue and those workloads run ten
  times slower. Go's mailboxes are channels: unbuffered for the ring,
  ping-pong and skynet, buffered for the N messages of `spawn_exit_msg`
  (so children exit at once, as Erlang's do) and with 1024 slots for
  `many_to_one`, which lets the senders block where Erlang's and otpc's
  mailboxes grow without bound.

### OTP behaviours

- **Method.** As for the processes: otpc runs `bench/otp_bench.c`, each
  workload in a forked child with a fresh node; Erlang runs
  `bench/otp_bench.erl` in one VM with the same flags, each workload in a
  fresh process, whatever it spawned killed afterwards. Throughputs and
  latencies are the best of three runs (QUICK: one), in three passes
  over the workloads as above.
- **Servers and calls.** Both sides run the same server: `handle_call`
  replies the request (an integer) plus one, and the client checks it.
  Clients are otpc sequential processes (they block in
  `otpc_gen_server_call`), servers are otpc gen_servers (handler
  processes); in Erlang, plain processes calling `gen_server:call/3`.
  Calls have no timeout (`infinity`) on both sides. Servers are started
  with `otpc_gen_server_start` and `gen_server:start/3`, unlinked and
  unnamed.
- **Restarts.** A one_for_one supervisor with one registered gen_server
  child (`brutal_kill`, permanent), intensity 110 in 5 s, a new
  supervisor every 100 restarts (both keep a list of recent restarts that
  they scan at each restart; this keeps it short). The bench process
  kills the child and polls, yielding between polls, until the name gives
  a new pid that answers a call. The logger's primary level is `none` on
  both sides, so the supervisor's report of each killed child costs one
  level check and prints nothing.
- **Memory** of idle servers is the RSS growth over starting them, per
  server, as for processes; the notes add Erlang's `erlang:memory` deltas
  and, for both, what one call to each server adds afterwards.

### Hot code loading

- **Method.** otpc runs `bench/code_bench.c` with a module built twice
  from `bench/code_bench_mod.c` (`code_bench_v1.so`, `code_bench_v2.so`);
  Erlang runs `bench/code_bench.erl`, which compiles its gen_server
  module from source text in two versions. In both, the two versions keep
  their state in different shapes and `code_change` converts it. Four
  clients call the server back to back (request N, reply N + 1, checked)
  and every call's latency is recorded; one run per phase.
- **Phases.** No upgrade (`code_call_p99`, `code_call_max`); upgrades the
  default otpc way (`_upgrade`: `otpc_code_load`, and the server moves at
  its next dispatch; the window ends when a call of the upgrader's own
  returns); upgrades as the release handler does them (`_upgrade_sys`:
  `sys:suspend`, load, `sys:change_code`, `sys:resume`; Erlang loads with
  `code:load_binary`). The `_upgrade` rows count only the calls that
  overlapped an upgrade's window; `code_upgrade_time*` is the median
  window. Erlang has no move at the next dispatch, so no `_upgrade` row.

### Terms

- **Method.** Each workload runs in batches of doubling size until one
  batch takes at least 0.17 s, then three more batches of that size; the
  figure is the best of the three, in operations per second on one thread
  (the best, to show the code rather than whatever else the machine was
  doing). otpc runs as a C program built by CMake (the build type above);
  Erlang runs as an escript in compiled mode (the emulator flavour is in
  the table above; default VM flags), in one process. Both run in the same
  `make bench`, one after the other; the script does not check that the
  machine is otherwise idle.
- **Encode.** otpc: build the message from C values with `otpc_build_*`
  calls (atoms interned once beforehand, as a program keeps them) into a
  new reference-counted buffer, then release it; the `_fmt` row builds the
  same tuple from a format string parsed on every call. Erlang:
  `term_to_binary(T, [{minor_version, 2}])` of a term already on the heap
  (minor version 2, OTP 26's default, so both sides write the same bytes:
  see the sizes). The `_fmt` row's Erlang figure is the same operation as
  the plain row, measured again.
- **Decode.** otpc: `otpc_term_decode()`, which checks the whole input
  (tags, lengths, UTF-8 of atoms, nesting depth), then reading every leaf
  through the view accessors (atoms looked up in the atom table, integers,
  binaries as pointers into the buffer). otpc reads the encoded buffer in
  place and builds no copy of the term: that is its design (a message is
  the encoded buffer), and it is a real difference from Erlang, whose
  `binary_to_term/1` builds the whole term on the process heap, garbage
  collection included. Compare the decode rows with that in mind; in
  particular `term_decode_binary_1m` is constant time in otpc (check the
  length, hand out a pointer) while `binary_to_term/1` copies the 1 MiB
  into a new binary, so its ratio mostly shows that difference in design.
- Figures vary between machines and runs by several percent; tests never
  assert on them.

### Distribution

- **Method.** `bench/dist_bench.c` starts every node of the run on
  loopback, with its own embedded epmd on a port of its own (the Erlang
  nodes get it through `ERL_EPMD_PORT`): for otpc to otpc, a second otpc
  node in a forked child; for the other two pairs one `erl` node running
  `bench/dist_bench.erl`'s server, and for Erlang to Erlang a second
  `erl` running its client. Every node has the schedulers above. The
  sending and serving sides run the same protocol on every pair: a
  sink process that counts N messages and answers `{done, N}`, an echo
  process that sends back what follows the pid in `{Pid, X}`. Each
  workload is the best of three runs (QUICK: one, with fewer messages),
  timed from the first send to the receiver's answer.
- **Sending.** otpc builds each `{msg, I}` with the builder and sends it
  to the remote pid with `otpc_send` (the sender never blocks: the
  connection's queue takes it); Erlang's `Pid ! {msg, I}` (the sender is
  suspended while the connection's buffer is over its busy limit). The
  1 MiB binary is built once and the same message sent N times on both
  sides (neither copies it to send it).
EOF
} >"$RESULTS.md"

mkdir -p "$(dirname "$REPORT")"
mv "$RESULTS.md" "$REPORT"
echo "bench/run.sh: wrote $REPORT" >&2
