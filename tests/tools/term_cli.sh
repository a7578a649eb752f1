#!/usr/bin/env bash
# The `otpc term` commands against real Erlang: what erl writes otpc prints
# as erl prints it; what otpc encodes erl reads back equal; bad input gives
# a message on stderr and a non-zero exit.
set -uo pipefail
otpc=${1:?path to otpc}
command -v erl >/dev/null || { echo "erl not found: skipped"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
pass=0
check() { if [ "$1" = "$2" ]; then pass=$((pass + 1)); else
  echo "FAIL: $3"; echo "  want: $1"; echo "  got:  $2"; fail=$((fail + 1)); fi; }

terms=(
  '{ok,[1,2|3],<<"hi">>,-1,70000}'
  "[a,'B',\"str\",3.5,-0.0,1.0e300,123456789012345678901234567890]"
  '#{a => 1,<<"k">> => [x,y],{t} => #{}}'
  "{'quoted atom','\\n',<<1,2:3>>,{},[]}"
)
for t in "${terms[@]}"; do
  # erl writes ETF; otpc prints it.
  erl -noshell -eval "{ok,T,_}=erl_scan:string(\"$(printf '%s' "$t" | sed 's/["\\]/\\&/g').\"), {ok,E}=erl_parse:parse_term(T), file:write_file(\"$tmp/in\", term_to_binary(E)), file:write_file(\"$tmp/want\", io_lib:format(\"~w~n\",[E])), halt()."
  got=$("$otpc" term decode < "$tmp/in")
  check "$(cat "$tmp/want")" "$got" "decode $t"
  # otpc encodes the text; erl reads it back equal.
  printf '%s.' "$(cat "$tmp/want")" | "$otpc" term encode > "$tmp/out"
  ok=$(erl -noshell -eval "{ok,A}=file:read_file(\"$tmp/in\"), {ok,B}=file:read_file(\"$tmp/out\"), io:format(\"~w\",[binary_to_term(A) =:= binary_to_term(B)]), halt().")
  check true "$ok" "encode $t"
done

# Compressed both ways.
erl -noshell -eval "file:write_file(\"$tmp/z\", term_to_binary(lists:duplicate(500, abc), [compressed])), halt()."
got=$("$otpc" term decode < "$tmp/z" | cut -c1-12)
check "[abc,abc,abc" "$got" "decode compressed"
echo '{dup, [x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x]}.' |
  "$otpc" term encode --compressed > "$tmp/zo"
ok=$(erl -noshell -eval "{ok,B}=file:read_file(\"$tmp/zo\"), <<131,80,_/binary>> = B, io:format(\"~w\",[element(2,binary_to_term(B)) =:= lists:duplicate(37,x)]), halt().")
check true "$ok" "encode compressed"

# Bad input: clear error, non-zero exit, nothing on stdout.
printf '\x83\x68\x01\x62\x00' > "$tmp/bad"
out=$("$otpc" term decode < "$tmp/bad" 2>"$tmp/err"); rc=$?
check 1 "$rc" "truncated exits 1"
check "" "$out" "truncated prints nothing"
grep -q 'ETRUNC at byte 3' "$tmp/err" && pass=$((pass + 1)) || { echo "FAIL: error text: $(cat "$tmp/err")"; fail=$((fail + 1)); }
echo '{unclosed, [1,2}.' | "$otpc" term encode > /dev/null 2>"$tmp/err"; rc=$?
check 1 "$rc" "syntax error exits 1"
grep -q 'ESYNTAX at line 1' "$tmp/err" && pass=$((pass + 1)) || { echo "FAIL: error text: $(cat "$tmp/err")"; fail=$((fail + 1)); }
"$otpc" bogus >/dev/null 2>&1; check 2 "$?" "usage error exits 2"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
