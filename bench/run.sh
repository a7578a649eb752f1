#!/bin/sh
# bench/run.sh: runs otpc's benchmark programs and their Erlang twins in the
# same run, then (re)writes docs/benchmarks.md with a table of the results,
# the ratios to otpc, and the machine they came from.
#
#   bench/run.sh [BUILD_DIR]      (make bench calls it with its build dir)
#
# Environment: QUICK=1 runs each workload briefly (numbers less stable);
# BENCH_REPORT=path writes the report elsewhere (default docs/benchmarks.md).
#
# Protocol: a benchmark program is any command that prints lines
#   BENCH <workload> <system> <value> <unit>   a throughput; higher is better
#   DESC  <workload> <text...>                 what the workload is
#   INFO  <key> <system> <text...>             a fact to show (e.g. sizes)
# and exits 0. The report groups BENCH lines by workload, one column per
# system (otpc first), and one ratio column otpc/<system> for every other
# system. To add a benchmark, add its command to the list in programs().
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
REPORT=${BENCH_REPORT:-$ROOT/docs/benchmarks.md}

# One command per line; each prints BENCH/DESC/INFO lines.
programs() {
  cat <<EOF
$BUILD/bench/term_bench
escript $ROOT/bench/term_bench.escript
EOF
}

die() {
  echo "bench/run.sh: $*" >&2
  exit 1
}

[ -x "$BUILD/bench/term_bench" ] ||
  die "$BUILD/bench/term_bench not found; build with -DOTPC_BENCH=ON (make bench)"
command -v escript >/dev/null 2>&1 ||
  die "escript not found; install Debian's erlang-nox (make bench does)"

RESULTS=$(mktemp)
trap 'rm -f "$RESULTS" "$RESULTS.md"' EXIT INT TERM

programs | while IFS= read -r cmd; do
  [ -n "$cmd" ] || continue
  echo "== $cmd" >&2
  # shellcheck disable=SC2086  # the command line is split on purpose
  if ! $cmd >"$RESULTS.one"; then
    cat "$RESULTS.one" >&2
    rm -f "$RESULTS.one"
    die "benchmark failed: $cmd"
  fi
  cat "$RESULTS.one" >&2
  cat "$RESULTS.one" >>"$RESULTS"
  rm -f "$RESULTS.one"
done

# ---- the machine ---------------------------------------------------------
cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo 2>/dev/null |
  head -n 1)
[ -n "$cpu" ] || cpu=$(uname -m)
ncpu=$(nproc 2>/dev/null || echo "?")
kernel=$(uname -sr)
otp=$(erl -noshell -eval '
  R = erlang:system_info(otp_release),
  F = filename:join([code:root_dir(), "releases", R, "OTP_VERSION"]),
  V = case file:read_file(F) of {ok, B} -> string:trim(B); _ -> R end,
  io:format("~s (erts ~s, ~s emulator)",
            [V, erlang:system_info(version), erlang:system_info(emu_flavor)]),
  halt().' 2>/dev/null || echo "unknown")
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

Every figure is a throughput, operations per second on one thread (higher
is better), measured in the same run on the same machine. The ratio
columns are otpc's throughput divided by the other system's: above 1
means otpc is faster.
EOF
  if [ -n "$quick" ]; then
    printf '\n**This was a QUICK run: each workload ran only briefly, so the\n'
    printf 'figures are rough.**\n'
  fi
  cat <<EOF

## Machine

| | |
|---|---|
| CPU | $cpu |
| cores (nproc) | $ncpu |
| kernel | $kernel |
| Erlang/OTP | $otp |
| C compiler | $cc, CMake build type ${build_type:-unknown} |
| date | $date |

## Results

EOF
  awk -f - "$RESULTS" <<'AWK'
# Units of throughput and their factor to the family's base unit.
function factor(u) {
  if (u == "ops/s") return 1; if (u == "kops/s") return 1e3
  if (u == "Mops/s") return 1e6; if (u == "Gops/s") return 1e9
  if (u == "B/s") return 1; if (u == "kB/s") return 1e3
  if (u == "MB/s") return 1e6; if (u == "GB/s") return 1e9
  return 0
}
function family(u) { return (u ~ /ops\/s$/) ? "ops" : (u ~ /B\/s$/) ? "bytes" : u }
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
$1 == "INFO" && NF >= 4 {
  k = $2; s = $3
  if (!(k in seen_k)) { seen_k[k] = 1; keys[++nk] = k }
  if (!(s in seen_is)) { seen_is[s] = 1; isys[++nis] = s }
  t = $0; sub(/^INFO[ \t]+[^ \t]+[ \t]+[^ \t]+[ \t]+/, "", t); info[k, s] = t
  next
}
END {
  head = "| workload | otpc"; rule = "|---|---:"
  for (i = 1; i <= ns; i++) { head = head " | " others[i]; rule = rule "|---:" }
  for (i = 1; i <= ns; i++) { head = head " | otpc/" others[i]; rule = rule "|---:" }
  print head " |"; print rule "|"
  for (j = 1; j <= nw; j++) {
    w = works[j]
    line = "| " w " | " (((w, "otpc") in have) ? val[w, "otpc"] " " unit[w, "otpc"] : "-")
    for (i = 1; i <= ns; i++) {
      s = others[i]
      line = line " | " (((w, s) in have) ? val[w, s] " " unit[w, s] : "-")
    }
    for (i = 1; i <= ns; i++) {
      s = others[i]; r = "-"
      if (((w, s) in have) && ((w, "otpc") in have)) {
        uo = unit[w, "otpc"]; us = unit[w, s]
        fo = factor(uo); fs = factor(us)
        if (fo && fs && family(uo) == family(us) && val[w, s] + 0 > 0)
          r = sprintf("%.2f", (val[w, "otpc"] * fo) / (val[w, s] * fs))
        else
          r = "n/a"
      }
      line = line " | " r
    }
    print line " |"
  }
  if (nw == 0) print "| (no results) |"
  print ""
  print "### Workloads"
  print ""
  for (j = 1; j <= nw; j++) {
    w = works[j]
    print "- `" w "`: " ((w in desc) ? desc[w] : "(no description)")
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

- **Method.** Each workload runs in batches of doubling size until one
  batch takes at least 0.17 s, then three more batches of that size; the
  figure is the best of the three, in operations per second (the best, to
  show the code rather than whatever else the machine was doing). otpc runs as a C program built by CMake (the build type above);
  Erlang runs as an escript in compiled mode (the emulator flavour is in
  the table above; default VM flags), in one process. Both run in the same `make bench`, one after the
  other; the script does not check that the machine is otherwise idle.
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
EOF
} >"$RESULTS.md"

mkdir -p "$(dirname "$REPORT")"
mv "$RESULTS.md" "$REPORT"
echo "bench/run.sh: wrote $REPORT" >&2
