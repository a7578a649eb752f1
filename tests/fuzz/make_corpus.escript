#!/usr/bin/env escript
%% Writes the fuzzers' seed corpora: ETF written by this Erlang/OTP and the
%% same terms as text. Run from tests/fuzz/: ./make_corpus.escript
main(_) ->
    Terms = [0, 255, 256, -1, 1 bsl 31, -(1 bsl 63), 1 bsl 300, 3.14, -0.0,
             1.0e300, ok, 'Quoted atom', 'ünï', '', [], "abc", [1, 2 | 3],
             [a, [b, [c]]], {}, {a, b, c}, list_to_tuple(lists:seq(1, 300)),
             <<>>, <<1, 2, 3>>, <<1, 2:3>>, #{}, #{a => 1, <<"b">> => [2]},
             maps:from_list([{I, I} || I <- lists:seq(1, 40)]),
             self(), make_ref(), hd(erlang:ports()), fun lists:map/2,
             fun(X) -> X + 1 end,
             {call, self(), make_ref(), {get, key42}},
             [{K, atom_to_binary(K)} || K <- [alpha, beta, gamma]]],
    ok = filelib:ensure_dir("corpus/etf/x"),
    ok = filelib:ensure_dir("corpus/text/x"),
    lists:foldl(
      fun(T, I) ->
              N = integer_to_list(I),
              ok = file:write_file("corpus/etf/seed" ++ N,
                                   term_to_binary(T, [{minor_version, 2}])),
              ok = file:write_file("corpus/etf/seed" ++ N ++ "v1",
                                   term_to_binary(T, [{minor_version, 1}])),
              ok = file:write_file("corpus/etf/seed" ++ N ++ "z",
                                   term_to_binary(T, [compressed])),
              ok = file:write_file("corpus/text/seed" ++ N,
                                   io_lib:format("~w.", [T])),
              I + 1
      end, 1, Terms),
    ok = file:write_file("corpus/text/fmt1", "{get, ~p, _}"),
    ok = file:write_file("corpus/text/esc", "'a\\n\\'b' \"x\\x{41}\\^C\" $\\t 16#ff 2#101"),
    ok.
