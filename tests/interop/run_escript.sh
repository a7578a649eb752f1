#!/bin/sh
# run_escript.sh: runs an interop escript with its arguments, or exits 77
# (ctest's "skipped") with a clear message when Erlang is not installed.
if ! command -v escript >/dev/null 2>&1; then
  echo "SKIP: escript not found on PATH; install Debian's erlang-base" \
       "to run the interop tests against real Erlang"
  exit 77
fi
exec escript "$@"
