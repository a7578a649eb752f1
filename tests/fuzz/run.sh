#!/usr/bin/env bash
# Runs every fuzzer in BUILD_DIR (fuzz_etf, fuzz_text, fuzz_handshake, fuzz_epmd,
# fuzz_dist_frame: each fuzz_* built there) for SECONDS each, starting from its seed
# corpus in tests/fuzz/corpus/<name>. New inputs go to a scratch corpus so
# the repository stays clean; a crash fails the run and leaves its input in
# tests/fuzz/ (ignored by git) to reproduce with: BUILD_DIR/fuzz_NAME FILE
set -euo pipefail
build=${1:?build dir}
seconds=${2:-20}
here=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for bin in "$build"/tests/fuzz/fuzz_*; do
  name=${bin##*/fuzz_}
  mkdir -p "$scratch/$name"
  echo "fuzz $name: ${seconds}s"
  "$bin" -max_total_time="$seconds" -max_len=4096 -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=0 -artifact_prefix="$here/" \
    "$scratch/$name" "$here/corpus/$name" 2>"$scratch/$name.log" || {
    tail -50 "$scratch/$name.log"
    echo "fuzz $name: FAILED"
    exit 1
  }
  grep -E '^#[0-9]+.*DONE' "$scratch/$name.log" | tail -1 || true
done
echo "fuzzers: all passed"
