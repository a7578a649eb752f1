#!/usr/bin/env escript
%% -*- erlang -*-
%%
%% term_bench.escript: Erlang's side of the term benchmark (term_bench.c is
%% otpc's). It encodes with term_to_binary/2 and decodes with
%% binary_to_term/1 the same messages as term_bench.c. It asks for
%% {minor_version, 2} (UTF-8 atoms, OTP 26's default) so that both sides
%% write the very same bytes:
%%
%%   small_tuple  {call, Pid, Ref, {get, key42}}
%%   map_1k       a map of 30 atom keys to ints, 48-byte binaries and atoms
%%   binary_1m    a 1 MiB binary
%%   list_10k     a list of 10,000 integers
%%
%% Prints "BENCH <workload> erlang <value> <unit>" lines for bench/run.sh.
%% Each workload runs about 1 s (QUICK=1 in the environment: 0.1 s).
-mode(compile).

-define(OPTS, [{minor_version, 2}]).

main(_) ->
    Target = case os:getenv("QUICK") of
                 Q when Q =:= false; Q =:= ""; Q =:= "0" -> 0.5;
                 _ -> 0.05
             end,
    Loads = [{small_tuple, small_tuple(), true},
             {small_tuple_fmt, small_tuple(), false},
             {map_1k, map_1k(), true},
             {binary_1m, binary_1m(), true},
             {list_10k, list_10k(), true}],
    lists:foreach(fun({Name, T, Decode}) -> run(Name, T, Decode, Target) end,
                  Loads).

small_tuple() -> {call, self(), make_ref(), {get, key42}}.

map_1k() ->
    maps:from_list([{list_to_atom(lists:flatten(io_lib:format("field_~2..0w", [I]))), value(I)}
                    || I <- lists:seq(1, 30)]).

%% The same values as map_value() in term_bench.c (I there is I - 1 here).
value(I) ->
    case (I - 1) rem 3 of
        0 -> I * 12345;
        1 -> list_to_binary([$a + (I - 1 + J) rem 26 || J <- lists:seq(0, 47)]);
        2 -> list_to_atom(lists:flatten(io_lib:format("value_~2..0w", [I])))
    end.

binary_1m() ->
    list_to_binary([(I * 7 + 3) band 255 || I <- lists:seq(0, 1048575)]).

list_10k() -> [I * 1000 || I <- lists:seq(0, 9999)].

run(Name, T, Decode, Target) ->
    Bin = term_to_binary(T, ?OPTS),
    io:format("INFO ~w erlang ~w bytes~n", [Name, byte_size(Bin)]),
    report(encode, Name, rate(fun(N) -> encode_loop(N, T, 0) end, Target)),
    case Decode of
        true -> report(decode, Name,
                       rate(fun(N) -> decode_loop(N, Bin, 0) end, Target));
        false -> ok
    end.

encode_loop(0, _, Acc) -> Acc;
encode_loop(N, T, Acc) ->
    encode_loop(N - 1, T, Acc + byte_size(term_to_binary(T, ?OPTS))).

decode_loop(0, _, Acc) -> Acc;
decode_loop(N, B, Acc) ->
    decode_loop(N - 1, B, Acc + used(binary_to_term(B))).

%% Uses the decoded term so that the call cannot be dropped.
used(T) when is_tuple(T) -> 1;
used(_) -> 2.

%% Batches of doubling size until one takes a third of Target seconds, then
%% three more of that size: the best of the three, in operations per second
%% (the same method as term_bench.c).
rate(Fun, Target) ->
    N = calibrate(Fun, Target / 3, 1),
    lists:max([N / seconds(Fun, N) || _ <- [1, 2, 3]]).

calibrate(Fun, Min, N) ->
    case seconds(Fun, N) >= Min of
        true -> N;
        false -> calibrate(Fun, Min, N * 2)
    end.

seconds(Fun, N) ->
    T0 = erlang:monotonic_time(),
    _ = Fun(N),
    erlang:convert_time_unit(erlang:monotonic_time() - T0, native,
                             nanosecond) / 1.0e9.

report(Op, Name, Rate) when Rate >= 1.0e6 ->
    io:format("BENCH term_~w_~w erlang ~.3f Mops/s~n", [Op, Name, Rate / 1.0e6]);
report(Op, Name, Rate) ->
    io:format("BENCH term_~w_~w erlang ~.3f kops/s~n", [Op, Name, Rate / 1.0e3]).
