#!/usr/bin/env bash
# `otpc heart` with real processes: a node that hangs on purpose is killed
# and its restart command runs; a node killed with -9 is restarted (the
# command starts a new watched node, Erlang's model); a node that stops
# cleanly is not restarted; otpc_heart_set_cmd replaces the command; bad
# input gets a clear error. Restart commands leave marker files, which is
# what the checks read. Timeouts are 2 s; the only time bounds are the
# generous ones that end a run that went wrong (`timeout 60`).
set -uo pipefail
# A TSan build sleeps 1 s at exit by default, which a short timeout takes
# for a hang.
export TSAN_OPTIONS="atexit_sleep_ms=0${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
otpc=${1:?path to otpc}
# The watchdog's timeout in these tests: short, yet long enough that a
# healthy node on a loaded machine (sanitizer builds, parallel jobs) does
# not miss it.
T=2
node=${2:?path to heart_node}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
check() { if [ "$1" = "$2" ]; then ok; else bad "$3: want '$1', got '$2'"; fi; }
has() { if grep -q -- "$2" "$1"; then ok; else bad "$3: no '$2' in $(cat "$1")"; fi; }
# Waits for a file, at most 60 s (a bound for a broken run, not a check).
await() { for _ in $(seq 600); do [ -e "$1" ] && return 0; sleep 0.1; done; return 1; }
fresh() { rm -rf "$tmp/$1"; mkdir -p "$tmp/$1"; echo "$tmp/$1"; }

# 1. A node that hangs (a process spins without yielding on its only
# scheduler) is killed with SIGKILL and the restart command runs. It first
# outlives a timeout and a half by beating (the alive file).
d=$(fresh hang)
timeout 60 "$otpc" heart --timeout $T --cmd "echo \$OTPC_HEART_REASON \$OTPC_HEART_NODE_PID > $d/marker" \
  -- "$node" hang "$d" 2> "$d/err"
check 3 $? "hung node: exit status"
check "hung $(cat "$d/pid" 2>/dev/null)" "$(cat "$d/marker" 2>/dev/null)" "hung node: restart command ran"
check yes "$(cat "$d/alive" 2>/dev/null)" "hung node: beat before it hung"
has "$d/err" "sent no beat for $T s: killed it with SIGKILL" "hung node: message"
pid=$(cat "$d/pid" 2>/dev/null)
if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then ok; else bad "hung node still runs"; fi

# 1b. HEART_KILL_SIGNAL=SIGABRT (for a core dump; none is written here)
# and HEART_NO_KILL=TRUE (the command kills it), as in Erlang.
ulimit -c 0
d=$(fresh abort)
HEART_KILL_SIGNAL=SIGABRT timeout 60 "$otpc" heart --timeout $T --cmd "touch $d/marker" \
  -- "$node" hang "$d" 2> "$d/err"
check 3 $? "SIGABRT: exit status"
has "$d/err" "killed it with SIGABRT" "SIGABRT: message"
[ -e "$d/marker" ] && ok || bad "SIGABRT: restart command did not run"
d=$(fresh nokill)
HEART_NO_KILL=TRUE timeout 60 "$otpc" heart --timeout $T \
  --cmd "kill -0 \$OTPC_HEART_NODE_PID && echo running > $d/marker; kill -9 \$OTPC_HEART_NODE_PID" \
  -- "$node" hang "$d" 2> "$d/err"
check 3 $? "HEART_NO_KILL: exit status"
check running "$(cat "$d/marker" 2>/dev/null)" "HEART_NO_KILL: the command found the node running"
has "$d/err" "left running (HEART_NO_KILL)" "HEART_NO_KILL: message"

# 2. kill -9: the node dies; the command starts a new node under its own
# watchdog (as Erlang's HEART_COMMAND does), which stops cleanly.
d=$(fresh kill9)
mkdir -p "$d/second"
timeout 60 "$otpc" heart --timeout $T \
  --cmd "echo \$OTPC_HEART_REASON > $d/marker; exec '$otpc' heart --timeout $T -- '$node' stop '$d/second'" \
  -- "$node" run "$d" 2> "$d/err" &
watchdog=$!
if await "$d/pid"; then
  kill -9 "$(cat "$d/pid")"
else
  bad "kill -9: the node never started"
fi
wait "$watchdog"
check 4 $? "killed node: exit status"
check died "$(cat "$d/marker" 2>/dev/null)" "killed node: restart command ran"
check yes "$(cat "$d/second/alive" 2>/dev/null)" "killed node: the new node ran"
has "$d/err" "was killed by signal 9" "killed node: message"

# 3. A node that stops cleanly (otpc_node_stop, then exit 0) is not
# restarted.
d=$(fresh stop)
timeout 60 "$otpc" heart --timeout $T --cmd "touch $d/marker" -- "$node" stop "$d" 2> "$d/err"
check 0 $? "clean stop: exit status"
check yes "$(cat "$d/alive" 2>/dev/null)" "clean stop: ran past the timeout"
[ -e "$d/marker" ] && bad "clean stop: restart command ran" || ok

# 4. Exiting without stopping the node counts as died, whatever the status.
d=$(fresh exit)
timeout 60 "$otpc" heart --timeout $T --cmd "touch $d/marker" -- "$node" exit "$d" 2> "$d/err"
check 4 $? "exit without stop: exit status"
[ -e "$d/marker" ] && ok || bad "exit without stop: restart command did not run"
has "$d/err" "exited with status 0 without stopping its node" "exit without stop: message"

# 4b. A node that stops but exits with a failure (otpc_main's first
# process crashed) died too, as an Erlang node whose permanent
# application ends is restarted.
d=$(fresh crash)
timeout 60 "$otpc" heart --timeout $T --cmd "touch $d/marker" -- "$node" crash "$d" 2> "$d/err"
check 4 $? "failed after stop: exit status"
[ -e "$d/marker" ] && ok || bad "failed after stop: restart command did not run"
has "$d/err" "exited with status 1 after stopping its node" "failed after stop: message"

# 5. set_cmd, get_cmd, clear_cmd: the node's command replaces --cmd.
d=$(fresh setcmd)
timeout 60 "$otpc" heart --timeout $T --cmd "touch $d/wrong" \
  -- "$node" setcmd "$d" "echo \$OTPC_HEART_REASON > $d/marker" 2> "$d/err"
check 4 $? "set_cmd: exit status"
check "echo \$OTPC_HEART_REASON > $d/marker" "$(cat "$d/got" 2>/dev/null)" "set_cmd: get_cmd"
check died "$(cat "$d/marker" 2>/dev/null)" "set_cmd: the node's command ran"
[ -e "$d/wrong" ] && bad "set_cmd: --cmd ran instead" || ok
grep -q "^heart_node:" "$d/err" && bad "set_cmd: $(cat "$d/err")" || ok

# 5b. Requests from 64 processes and 2 threads at once.
d=$(fresh many)
timeout 60 "$otpc" heart --timeout $T --cmd "touch $d/wrong" \
  -- "$node" many "$d" "echo \$OTPC_HEART_REASON > $d/marker" 2> "$d/err"
check 4 $? "many requesters: exit status"
check died "$(cat "$d/marker" 2>/dev/null)" "many requesters: the last command ran"
grep -q "^heart_node:" "$d/err" && bad "many requesters: $(cat "$d/err")" || ok

# 6. No restart command: nothing restarts, the status says what happened.
d=$(fresh nocmd)
env -u HEART_COMMAND timeout 60 "$otpc" heart --timeout $T -- "$node" exit "$d" 2> "$d/err"
check 4 $? "no command: exit status"
has "$d/err" "no restart command" "no command: message"

# 7. A program that never starts a node never beats: it is hung.
d=$(fresh sleeper)
timeout 60 "$otpc" heart --timeout 0.5 --cmd "touch $d/marker" -- sleep 30 2> "$d/err"
check 3 $? "never beats: exit status"
[ -e "$d/marker" ] && ok || bad "never beats: restart command did not run"

# 8. SIGTERM to the watchdog goes to the node, and then nothing restarts.
d=$(fresh term)
# --foreground: a plain timeout passes the SIGTERM it gets to its whole
# process group, so the node would get it straight, not through the watchdog.
timeout --foreground 60 "$otpc" heart --timeout $T --cmd "touch $d/marker" \
  -- "$node" run "$d" 2> "$d/err" &
watchdog=$!
await "$d/pid" || bad "SIGTERM: the node never started"
kill -TERM "$watchdog"
wait "$watchdog"
check 143 $? "SIGTERM: exit status (the node's, killed by SIGTERM)"
[ -e "$d/marker" ] && bad "SIGTERM: restart command ran" || ok

# 9. A failing restart command is reported.
d=$(fresh cmdfail)
timeout 60 "$otpc" heart --timeout $T --cmd "exit 9" -- "$node" exit "$d" 2> "$d/err"
check 5 $? "failing command: exit status"
has "$d/err" "restart command exited with status 9" "failing command: message"

# 10. A failing health check (heart:set_callback) stops the beats of a
# node that is otherwise well: it is taken as hung.
d=$(fresh check)
timeout 60 "$otpc" heart --timeout $T --cmd "echo \$OTPC_HEART_REASON > $d/marker" -- "$node" check "$d" 2> "$d/err"
check 3 $? "failing check: exit status"
check yes "$(cat "$d/sick" 2>/dev/null)" "failing check: the check failed"
check hung "$(cat "$d/marker" 2>/dev/null)" "failing check: restart command ran"

# 11. Bad input: usage errors, a program that does not exist, a stale
# channel variable in a program not run by heart.
"$otpc" heart > /dev/null 2>&1; check 2 $? "no program"
"$otpc" heart --timeout 0 -- true > /dev/null 2>&1; check 2 $? "zero timeout"
"$otpc" heart --timeout abc -- true > /dev/null 2>&1; check 2 $? "bad timeout"
"$otpc" heart --bogus -- true > /dev/null 2>&1; check 2 $? "unknown option"
HEART_BEAT_TIMEOUT=x "$otpc" heart -- true > /dev/null 2>&1; check 2 $? "bad HEART_BEAT_TIMEOUT"
"$otpc" heart -- "$tmp/no-such-program" 2> "$tmp/err"; check 1 $? "missing program"
has "$tmp/err" "cannot run" "missing program: message"
out=$(OTPC_HEART_FD=0 OTPC_HEART_PID=1 "$node" plain "$tmp" 2> "$tmp/err")
check "enabled=0 set_cmd=ENOPROC set_check=ENOPROC" "$out" "stale OTPC_HEART_FD"
has "$tmp/err" "not a socket" "stale OTPC_HEART_FD: message"
out=$("$node" plain "$tmp" 2>&1)
check "enabled=0 set_cmd=ENOPROC set_check=ENOPROC" "$out" "no heart"

# Under ASan or TSan builds: no sanitizer report in any run's stderr.
if grep -l "Sanitizer" "$tmp"/*/err "$tmp/err" 2>/dev/null; then
  bad "sanitizer reports (files above)"
else
  ok
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
