#!/usr/bin/env escript
%% -*- erlang -*-
%%
%% term_interop.escript: the Erlang half of the term interop test.
%%
%% It generates random Erlang terms of every type from a fixed seed, writes
%% for each one what real Erlang says about it (its ETF bytes in several
%% encodings, its ~w text, phash2 values, its order against the next term)
%% to a data file, runs the C half (term_interop.c) on that file, then reads
%% back the terms otpc re-encoded and checks in Erlang that each one comes
%% back =:= to the original.
%%
%%   escript term_interop.escript run PROG WORKDIR    generate, run PROG, check
%%   escript term_interop.escript gen DATAFILE        only write the data file
%%   escript term_interop.escript check DATAFILE OUTFILE
%%                                                    only check otpc's output
%%
%% Environment: OTPC_SEED (default 20240501) picks the terms;
%% OTPC_INTEROP_COUNT (default 10000) how many; OTPC_INTEROP_SHOW (default
%% 5) how many failures of each check to print; OTPC_INTEROP_VERBOSE=1 has
%% the C half name each term first; OTPC_INTEROP_KEEP=1 keeps the files of
%% a passing run (those of a failing run are always kept).
%%
%% Data file (all integers big-endian; a blob is a u32 length, then bytes):
%%   "OTPCTRM1", u32 count, u32 nranges, nranges x u64 range
%%   per term: u8 flags (text not comparable: 1 holds identifiers of
%%             another node, 2 holds an export fun with a non-ASCII atom,
%%             see odd_fun/1), blob ETF (minor_version 2),
%%             u8 nalts, nalts x (u8 kind, blob ETF), blob ~w text (UTF-8),
%%             u32 phash2/1, nranges x u32 phash2/2,
%%             i8 compare with the next term (-1, 0, 1 as <, ==, >),
%%             u8 1 if =:= the next term
%%   alt kinds: 0 minor_version 0, 1 minor_version 1 (OTP 25's default),
%%              2 compressed, 3 compressed minor_version 2,
%%              4 old identifier tags (PID_EXT, PORT_EXT, NEW_REFERENCE_EXT)
%% Output file written by the C half:
%%   "OTPCOUT1", u32 count, per term three blobs (length 16#ffffffff when
%%   absent): the deep copy, the term parsed from the text, the term
%%   compressed by otpc.
-mode(compile).

-define(DEFAULT_SEED, 20240501).
-define(DEFAULT_COUNT, 10000).
-define(SHOW, env_int("OTPC_INTEROP_SHOW", 5)).
-define(ABSENT, 16#ffffffff).

main(["run", Prog, Dir]) ->
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Data = filename:join(Dir, "term_interop.dat"),
    Out = filename:join(Dir, "term_interop.out"),
    {Terms, Seed} = generate(Data),
    io:format("interop_term: seed ~w, ~w terms, data in ~ts~n",
              [Seed, length(Terms), Data]),
    CStatus = run_prog(Prog, [Data, Out]),
    EStatus = case filelib:is_regular(Out) of
                  true -> check(Terms, Out);
                  false -> io:format("erlang check: no output file ~ts~n",
                                     [Out]),
                           1
              end,
    case {CStatus, EStatus} of
        {0, 0} -> io:format("interop_term: PASS (seed ~w)~n", [Seed]),
                  case env_int("OTPC_INTEROP_KEEP", 0) of
                      0 -> ok = file:delete(Data), ok = file:delete(Out);
                      _ -> ok
                  end,
                  halt(0);
        _ -> io:format("interop_term: FAIL (C exit ~w, Erlang check ~w); "
                       "reproduce with OTPC_SEED=~w; files kept in ~ts~n",
                       [CStatus, EStatus, Seed, Dir]),
             halt(1)
    end;
main(["gen", Data]) ->
    {Terms, Seed} = generate(Data),
    io:format("seed ~w, ~w terms written to ~ts~n",
              [Seed, length(Terms), Data]);
main(["check", Data, Out]) ->
    {ok, Bin} = file:read_file(Data),
    halt(check(read_originals(Bin), Out));
main(_) ->
    io:format(standard_error,
              "usage: term_interop.escript run PROG WORKDIR | gen DATAFILE |"
              " check DATAFILE OUTFILE~n", []),
    halt(2).

%% ------------------------------------------------------------------------
%% Running the C half
%% ------------------------------------------------------------------------

run_prog(Prog, Args) ->
    Port = open_port({spawn_executable, Prog},
                     [{args, Args}, exit_status, stderr_to_stdout, binary,
                      stream]),
    relay(Port).

relay(Port) ->
    receive
        {Port, {data, D}} -> ok = file:write(standard_io, D), relay(Port);
        {Port, {exit_status, S}} -> S
    end.

%% ------------------------------------------------------------------------
%% The data file
%% ------------------------------------------------------------------------

env_int(Name, Default) ->
    case os:getenv(Name) of
        false -> Default;
        "" -> Default;
        S -> list_to_integer(S)
    end.

ranges() ->
    [1, 2, 3, 10, 1000, 65536, 1 bsl 27, 1 bsl 31, (1 bsl 32) - 1, 1 bsl 32].

generate(File) ->
    Seed = env_int("OTPC_SEED", ?DEFAULT_SEED),
    Count = env_int("OTPC_INTEROP_COUNT", ?DEFAULT_COUNT),
    _ = rand:seed(exsss, Seed),
    put(budget, 1000),
    setup_identifiers(),
    Terms = terms(Count),
    Ranges = ranges(),
    Header = [<<"OTPCTRM1", (length(Terms)):32, (length(Ranges)):32>>,
              [<<R:64>> || R <- Ranges]],
    ok = file:write_file(File, [Header | records(Terms, Ranges)]),
    {Terms, Seed}.

records([], _) -> [];
records([T], Ranges) -> [record(T, none, Ranges)];
records([T, Next | Rest], Ranges) ->
    [record(T, {Next}, Ranges) | records([Next | Rest], Ranges)].

record(T, Next, Ranges) ->
    V2 = term_to_binary(T, [{minor_version, 2}]),
    Alts = alts(T, V2),
    Text = unicode:characters_to_binary(io_lib:format("~w", [T])),
    Flags = flag(has(fun foreign/1, T), 1) bor flag(has(fun odd_fun/1, T), 2),
    {Cmp, Eq} = case Next of
                    none -> {0, 0};
                    {N} -> {cmp(T, N), case T =:= N of true -> 1; false -> 0 end}
                end,
    [<<Flags:8>>, blob(V2), <<(length(Alts)):8>>,
     [[<<K:8>>, blob(A)] || {K, A} <- Alts],
     blob(Text), <<(erlang:phash2(T)):32>>,
     [<<(erlang:phash2(T, R)):32>> || R <- Ranges],
     <<Cmp:8/signed, Eq:8>>].

blob(B) -> [<<(byte_size(B)):32>>, B].

cmp(A, B) when A < B -> -1;
cmp(A, B) when A == B -> 0;
cmp(_, _) -> 1.

%% Other encodings of the same term that otpc must decode to an equal term.
alts(T, V2) ->
    D1 = term_to_binary(T),
    D0 = term_to_binary(T, [{minor_version, 0}]),
    %% Every small term, one in eight large ones (keeps the file small).
    Plain = byte_size(V2) < 4096 orelse r(8) =:= 1,
    A1 = [{1, D1} || Plain, D1 =/= V2],
    A0 = [{0, D0} || Plain, D0 =/= D1],
    Comp = r(8) =:= 1 orelse (byte_size(V2) > 512 andalso r(3) =:= 1),
    C1 = term_to_binary(T, [compressed]),
    C2 = term_to_binary(T, [compressed, {minor_version, 2}]),
    AC = [{2, C1} || Comp, is_compressed(C1)]
        ++ [{3, C2} || Comp, is_compressed(C2)],
    AO = [{4, O} || O <- [old_encoding(T)], O =/= none],
    A1 ++ A0 ++ AC ++ AO.

is_compressed(<<131, 80, _/binary>>) -> true;
is_compressed(_) -> false.

%% PID_EXT, PORT_EXT and NEW_REFERENCE_EXT, kept when Erlang itself reads
%% them back as the same term.
old_encoding(T) when is_pid(T); is_port(T); is_reference(T) ->
    Old = case term_to_binary(T, [{minor_version, 2}]) of
              <<131, 88, Rest/binary>> ->
                  {Node, <<Id:32, Ser:32, Cr:32>>} = split_atom(Rest),
                  [<<131, 103>>, Node, <<Id:32, Ser:32, (Cr band 255):8>>];
              <<131, 89, Rest/binary>> ->
                  {Node, <<Id:32, Cr:32>>} = split_atom(Rest),
                  [<<131, 102>>, Node, <<Id:32, (Cr band 255):8>>];
              <<131, 90, Len:16, Rest/binary>> ->
                  {Node, <<_Cr:32, Ids/binary>>} = split_atom(Rest),
                  [<<131, 114, Len:16>>, Node, <<(cr_of(T)):8>>, Ids];
              _ -> none
          end,
    case Old of
        none -> none;
        _ ->
            B = iolist_to_binary(Old),
            case catch binary_to_term(B) of
                T -> B;
                _ -> none
            end
    end;
old_encoding(_) -> none.

cr_of(T) ->
    <<131, 90, _:16, Rest/binary>> = term_to_binary(T, [{minor_version, 2}]),
    {_, <<Cr:32, _/binary>>} = split_atom(Rest),
    Cr band 255.

split_atom(<<119, L:8, A:L/binary, Rest/binary>>) -> {<<119, L, A/binary>>, Rest};
split_atom(<<118, L:16, A:L/binary, Rest/binary>>) ->
    {<<118, L:16, A/binary>>, Rest}.

flag(true, Bit) -> Bit;
flag(false, _) -> 0.

%% Whether Pred holds for T or any term inside it.
has(Pred, T) ->
    Pred(T) orelse
        case T of
            _ when is_tuple(T) -> has(Pred, tuple_to_list(T));
            _ when is_map(T) -> has(Pred, maps:to_list(T));
            [H | Tl] -> has(Pred, H) orelse has(Pred, Tl);
            _ -> false
        end.

foreign(T) when is_pid(T); is_port(T); is_reference(T) -> node(T) =/= node();
foreign(_) -> false.

%% OTP 25 prints an export fun through erlang:fun_to_list/1, which gives
%% the UTF-8 bytes of its atoms as characters: ~w of fun 'é':f/0 is the
%% characters "fun Ã©:f/0", unlike ~w of the atom 'é' itself. The C half
%% does not hold otpc to that text.
odd_fun(T) when is_function(T) ->
    {module, M} = erlang:fun_info(T, module),
    {name, F} = erlang:fun_info(T, name),
    lists:any(fun(C) -> C > 127 end, atom_to_list(M) ++ atom_to_list(F));
odd_fun(_) -> false.

%% ------------------------------------------------------------------------
%% Checking what otpc wrote
%% ------------------------------------------------------------------------

read_originals(<<"OTPCTRM1", Count:32, NR:32, Rest/binary>>) ->
    <<_:NR/binary-unit:64, Recs/binary>> = Rest,
    read_recs(Count, NR, Recs).

read_recs(0, _, _) -> [];
read_recs(N, NR, <<_F:8, L:32, V2:L/binary, NA:8, Rest/binary>>) ->
    Rest1 = skip_alts(NA, Rest),
    <<TL:32, _:TL/binary, _:32, _:NR/binary-unit:32, _:16, Rest2/binary>> = Rest1,
    [binary_to_term(V2) | read_recs(N - 1, NR, Rest2)].

skip_alts(0, B) -> B;
skip_alts(N, <<_:8, L:32, _:L/binary, Rest/binary>>) -> skip_alts(N - 1, Rest).

check(Terms, OutFile) ->
    {ok, <<"OTPCOUT1", Count:32, Recs/binary>>} = file:read_file(OutFile),
    case Count =:= length(Terms) of
        true -> ok;
        false -> io:format("erlang check: ~w terms in output, ~w expected~n",
                           [Count, length(Terms)])
    end,
    Stats = check_recs(Terms, Recs, 0, #{}),
    report(Stats).

check_recs([], _, _, Stats) -> Stats;
check_recs(_, <<>>, _, Stats) -> Stats;
check_recs([T | Ts], Recs, I, Stats0) ->
    {Copy, R1} = out_blob(Recs),
    {Parsed, R2} = out_blob(R1),
    {Comp, R3} = out_blob(R2),
    S1 = check_one(copy, I, T, Copy, Stats0),
    S2 = check_one(parsed, I, T, Parsed, S1),
    S3 = check_one(compressed, I, T, Comp, S2),
    check_recs(Ts, R3, I + 1, S3).

out_blob(<<?ABSENT:32, Rest/binary>>) -> {absent, Rest};
out_blob(<<L:32, B:L/binary, Rest/binary>>) -> {B, Rest}.

check_one(_, _, _, absent, Stats) -> Stats;
check_one(What, I, T, Bytes, Stats) ->
    {Ok, Fail} = maps:get(What, Stats, {0, 0}),
    case catch binary_to_term(Bytes) of
        T2 when T2 =:= T -> Stats#{What => {Ok + 1, Fail}};
        Other ->
            case Fail < ?SHOW of
                true ->
                    io:format("erlang check FAIL (~w) term #~w:~n"
                              "  original: ~ts~n  otpc's bytes: ~w~n"
                              "  binary_to_term gave: ~ts~n",
                              [What, I, show(T), show_bytes(Bytes),
                               show(Other)]);
                false -> ok
            end,
            Stats#{What => {Ok, Fail + 1}}
    end.

show_bytes(B) when byte_size(B) > 200 ->
    <<(binary:part(B, 0, 200))/binary, "...">>;
show_bytes(B) -> B.

show(T) ->
    S = unicode:characters_to_binary(io_lib:format("~w", [T])),
    case byte_size(S) > 4000 of
        true -> <<(binary:part(S, 0, 4000))/binary, "... (truncated)">>;
        false -> S
    end.

report(Stats) ->
    Fails = lists:foldl(
              fun(What, Acc) ->
                      {Ok, Fail} = maps:get(What, Stats, {0, 0}),
                      io:format("erlang check ~-10w ~6w =:= ~6w failed~n",
                                [What, Ok, Fail]),
                      Acc + Fail
              end, 0, [copy, parsed, compressed]),
    case Fails of 0 -> 0; _ -> 1 end.

%% ------------------------------------------------------------------------
%% Identifiers the generator draws from
%% ------------------------------------------------------------------------

%% Local identifiers (this node) and foreign ones (other nodes, whose text
%% Erlang prints with a number that depends on its connection history).
setup_identifiers() ->
    Live = [spawn(fun() -> receive stop -> ok end end) || _ <- lists:seq(1, 20)],
    Dead = [spawn(fun() -> ok end) || _ <- lists:seq(1, 5)],
    Local = [list_to_pid(lists:flatten(io_lib:format("<0.~w.~w>", [N, S])))
             || {N, S} <- [{0, 0}, {1, 0}, {32767, 8191}, {12345, 17}]],
    put({pid, local}, [self() | Live ++ Dead ++ Local]),
    put({pid, foreign},
        [foreign_pid(N, C, Id, Ser) || {N, C, Id, Ser} <- foreign_ids()]),
    put({port, local},
        erlang:ports() ++ [list_to_port("#Port<0." ++ integer_to_list(N) ++ ">")
                           || N <- [0, 1, 77, 16#ffffff]]),
    put({port, foreign},
        [foreign_port(N, C, Id) || {N, C, Id, _} <- foreign_ids()]),
    Mon = [begin R = erlang:monitor(process, P), erlang:demonitor(R), R end
           || P <- lists:sublist(Live, 3)],
    put({ref, local},
        [make_ref() || _ <- lists:seq(1, 10)] ++ [alias() || _ <- [1, 2, 3]]
        ++ Mon ++ [list_to_ref("#Ref<0.1.2.3>"), list_to_ref("#Ref<0.0.0.0>")]),
    %% No 1-word refs here: OTP 25.2 cannot find a 1-word external ref used
    %% as a key of a large map (maps:is_key/2 says false), so such maps are
    %% not =:= to themselves after a round trip. edge_terms() has them.
    put({ref, foreign}, [foreign_ref(N, C, W) || {N, C, _, _} <- foreign_ids(),
                                                 W <- [2, 3, 4, 5]]),
    ok.

%% An identifier of kind pid, port or ref; one in 25 of another node.
id_term(Kind) ->
    case r(25) of
        1 -> pick(get({Kind, foreign}));
        _ -> pick(get({Kind, local}))
    end.

all_idents() ->
    [X || K <- [pid, port, ref], W <- [local, foreign], X <- get({K, W})].

foreign_ids() ->
    [{'other@host', 1, 5, 7}, {'a@b.example.com', 1234, 1, 0},
     {'n\x{e9}@h', 16#ffffffff, 16#ffffffff, 16#ffffffff},
     {'x\x{1F600}@y', 3, 100, 2}].

node_atom(N) ->
    B = atom_to_binary(N, utf8),
    <<119, (byte_size(B)):8, B/binary>>.

foreign_pid(N, C, Id, Ser) ->
    binary_to_term(<<131, 88, (node_atom(N))/binary, Id:32, Ser:32, C:32>>).

foreign_port(N, C, Id) when Id > 16#ffff ->
    binary_to_term(<<131, 120, (node_atom(N))/binary, (Id bsl 20):64, C:32>>);
foreign_port(N, C, Id) ->
    binary_to_term(<<131, 89, (node_atom(N))/binary, Id:32, C:32>>).

%% The words differ with W: OTP 25.2 crashes (C stack overflow) building a
%% map of more than 32 keys holding two external refs that differ only in
%% their number of words. Such pairs appear only in edge_terms(), never as
%% map keys.
foreign_ref(N, C, W) -> foreign_ref(N, C, W, W).
foreign_ref(N, C, W, Salt) ->
    Ids = << <<(X * 7919 + Salt):32>> || X <- lists:seq(1, W) >>,
    binary_to_term(<<131, 90, W:16, (node_atom(N))/binary, C:32, Ids/binary>>).

%% ------------------------------------------------------------------------
%% Term generation
%% ------------------------------------------------------------------------

r(N) -> rand:uniform(N).
pick(L) -> lists:nth(r(length(L)), L).

%% Fixed edge cases first, then random terms. Often the next term is a
%% small change of the previous one, so that comparisons are interesting.
%%
%% Every term is replaced by what Erlang reads back from its own encoding,
%% since that is all otpc sees: OTP 25.2 hashes a 1-word external ref inside
%% a large map key differently once decoded, so such a map built in memory
%% is not =:= to its own binary_to_term(term_to_binary(M)). A term that is
%% still not stable after that is left out (and counted).
terms(Count) ->
    Edge = [normal(T) || T <- edge_terms()],
    Terms = lists:sublist(Edge ++ random_terms(Count - length(Edge), none), Count),
    Stable = [T || T <- Terms, binary_to_term(term_to_binary(T)) =:= T],
    case length(Terms) - length(Stable) of
        0 -> ok;
        N -> io:format("note: ~w terms left out: Erlang does not read them "
                       "back =:= to themselves~n", [N])
    end,
    Stable.

normal(T) -> binary_to_term(term_to_binary(T)).

random_terms(N, _) when N =< 0 -> [];
random_terms(N, Prev) ->
    T = case Prev =/= none andalso r(5) =< 2 of
            true -> normal(mutate(element(1, Prev)));
            false -> put(budget, case r(10) of 1 -> r(400); _ -> r(60) end),
                     normal(any(4))
        end,
    [T | random_terms(N - 1, {T})].

edge_terms() ->
    Ints = lists:usort([S * (1 bsl K) + D || K <- [7, 8, 15, 16, 27, 28, 31, 32,
                                                 53, 63, 64, 127, 128, 2040,
                                                 2048],
                                          S <- [1, -1], D <- [-1, 0, 1]]),
    Floats = [0.0, neg_zero(), 1.0, -1.0, 0.1, 0.5, 1/3, 100.0, 1.0e15,
              1.0e16, 1.0e17, 1.0e-4, 1.0e-5, 123456.789, 5.0e-324,
              2.2250738585072014e-308, 2.225073858507201e-308,
              1.7976931348623157e308, -1.7976931348623157e308,
              9007199254740992.0, 9007199254740994.0, 1.0e21, 1.0e22, 1.0e23,
              3.141592653589793, 2.0e-7, 123456789012345680.0],
    Atoms = [list_to_atom(A) || A <- reserved()]
        ++ ['', true, false, ok, undefined, nonode@nohost, 'EXIT', '_', 'A',
            'a@b', 'a.b', '\'', '\\', 'a\nb', 'hello world', '\x{e9}t\x{e9}',
            '\x{df}', '\x{c9}a', '\x{105}', '\x{1F600}', 'caf\x{e9}',
            list_to_atom([0, 7, 127, 128, 159, 160, 255]),
            list_to_atom(lists:duplicate(255, $a)),
            list_to_atom(lists:duplicate(255, 16#10348))],
    Bins = [<<>>, <<0>>, <<"hello">>, <<255, 0, 255>>, rand:bytes(70000),
            rand:bytes(300000), <<1:1>>, <<255, 7:3>>, <<0:7>>,
            <<(rand:bytes(1000))/binary, 5:5>>],
    Lists = [[], "", "abc", lists:seq(0, 255), 
             [X rem 256 || X <- lists:seq(1, 65535)],
             [X rem 256 || X <- lists:seq(1, 65536)],
             [256], [-1], [1 | 2], [a, b | c], [[] | []], [1, 2 | <<3>>],
             "h\x{e9}llo", [16#10FFFF, 0], deep_list(2000),
             lists:seq(1, 10000)],
    Tuples = [{}, {{}}, {a}, list_to_tuple(lists:seq(1, 255)),
              list_to_tuple(lists:seq(1, 256)), list_to_tuple(lists:seq(1, 1000)),
              deep_tuple(1000)],
    Maps = [#{}, #{a => 1}, maps:from_list([{K, K} || K <- lists:seq(1, 32)]),
            maps:from_list([{K, K} || K <- lists:seq(1, 33)]),
            maps:from_list([{integer_to_binary(K), K} || K <- lists:seq(1, 200)]),
            #{1 => a, 1.0 => b}, #{#{} => #{[] => {}}},
            #{{a, b} => [1], <<"k">> => #{x => #{y => z}}}, deep_map(200),
            maps:from_list([{K, #{K => maps:from_list([{J, J} || J <- lists:seq(1, 40)])}}
                            || K <- lists:seq(1, 40)])],
    Ids = all_idents()
        ++ [foreign_ref('other@host', 1, W, 0) || W <- [1, 2, 3, 4, 5]],
    Funs = [fun lists:map/2, fun erlang:'+'/2, fun erlang:self/0,
            erlang:make_fun('weird mod', 'f n', 0),
            erlang:make_fun('\x{e9}', '\x{105}', 255)],
    Pairs = [1, 1.0, 1.0, 1, -0.0, 0.0, 0, neg_zero(), a, a, {1}, {1.0},
             [1], [1.0], 1 bsl 64, float(1 bsl 64), (1 bsl 64) + 1,
             float(1 bsl 64), 9007199254740993, 9007199254740992.0],
    Ints ++ Floats ++ Atoms ++ Bins ++ Lists ++ Tuples ++ Maps ++ Ids ++ Funs
        ++ Pairs.

reserved() ->
    ["after", "and", "andalso", "band", "begin", "bnot", "bor", "bsl", "bsr",
     "bxor", "case", "catch", "cond", "div", "end", "fun", "if", "let", "not",
     "of", "or", "orelse", "receive", "rem", "try", "when", "xor", "maybe",
     "else"].

neg_zero() -> <<F/float>> = <<1:1, 0:63>>, F.

deep_list(0) -> [];
deep_list(N) -> [deep_list(N - 1)].
deep_tuple(0) -> {};
deep_tuple(N) -> {N, deep_tuple(N - 1)}.
deep_map(0) -> #{};
deep_map(N) -> #{N => deep_map(N - 1), v => N}.

%% Any term, at most Depth deep. Each random term gets a budget of leaves
%% (process dictionary key budget); once spent, only leaves are made.
any(Depth) when Depth =< 0 -> leaf();
any(Depth) ->
    case get(budget) =< 0 of
        true -> leaf();
        false -> any_container(Depth)
    end.

any_container(Depth) ->
    case r(22) of
        18 -> case r(2) of 1 -> large_map(Depth); 2 -> small_map(Depth) end;
        N when N =< 10 -> leaf();
        11 -> list(Depth);
        12 -> list(Depth);
        13 -> improper(Depth);
        14 -> tuple(Depth);
        15 -> tuple(Depth);
        16 -> small_map(Depth);
        17 -> small_map(Depth);
        19 -> deep(Depth);
        20 -> string();
        21 -> big_tuple();
        22 -> list_of_one_type()
    end.

leaf() ->
    put(budget, get(budget) - 1),
    case r(16) of
        1 -> small_int();
        2 -> boundary_int();
        3 -> big_int();
        4 -> mid_int();
        5 -> float_term();
        6 -> float_term();
        7 -> atom_term();
        8 -> atom_term();
        9 -> binary_term();
        10 -> bitstring_term();
        11 -> id_term(pid);
        12 -> id_term(port);
        13 -> id_term(ref);
        14 -> fun_term();
        15 -> pick([[], {}, #{}, <<>>, "", 0]);
        16 -> string()
    end.

small_int() -> r(1 bsl 28) - (1 bsl 27) - 1.
mid_int() -> r(1 bsl 34) - (1 bsl 33).
boundary_int() ->
    B = pick([0, 1 bsl 7, 1 bsl 8, 1 bsl 15, 1 bsl 16, 1 bsl 27, 1 bsl 31,
              1 bsl 32, 1 bsl 53, 1 bsl 63, 1 bsl 64, 1 bsl 127, 1 bsl 255]),
    pick([1, -1]) * B + r(5) - 3.
big_int() ->
    N = case r(20) of 1 -> 255 + r(300); _ -> r(40) end,
    pick([1, -1]) * binary:decode_unsigned(rand:bytes(N)).

float_term() ->
    case r(7) of
        1 -> pick([0.0, neg_zero(), 1.0, -1.0, 0.1, 0.5, 1.0e15, 1.0e16,
                   5.0e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
                   1.0e-10, 1.0e100, 1.0e22, 1.0e23]);
        2 -> random_bits_float();
        3 -> random_bits_float();
        4 -> pick([1, -1]) * rand:uniform_real() * math:pow(10, r(60) - 30);
        5 -> float(small_int());
        6 -> float(r(1000)) / pick([2, 4, 8, 10, 3, 7]);
        7 -> rand:normal() * 1000
    end.

random_bits_float() ->
    case <<(binary:decode_unsigned(rand:bytes(8))):64>> of
        <<_:1, 2047:11, _:52>> -> random_bits_float(); % NaN, infinity
        <<F/float>> -> F
    end.

atom_term() ->
    case r(10) of
        8 -> case r(4) of 1 -> long_atom(); _ -> list_to_atom(ident()) end;
        1 -> list_to_atom(pick(reserved()));
        2 -> pick(['', true, false, ok, undefined, nonode@nohost, 'EXIT', '_',
                   'A', 'a@b', 'a.b', '\'', '\\', 'a\nb']);
        3 -> list_to_atom(ident());
        4 -> list_to_atom(ident());
        5 -> list_to_atom([32 + r(95) - 1 || _ <- lists:seq(1, r(16) - 1)]);
        6 -> list_to_atom([r(256) - 1 || _ <- lists:seq(1, r(10))]);
        7 -> list_to_atom([unicode_char() || _ <- lists:seq(1, r(10))]);
        9 -> pick(atom_pool());
        10 -> list_to_atom([16#df + r(32) - 1 | ident()])
    end.

long_atom() ->
    list_to_atom([case r(2) of 1 -> $a + r(26) - 1; 2 -> unicode_char() end
                  || _ <- lists:seq(1, 199 + r(56))]).

ident() ->
    First = $a + r(26) - 1,
    Chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@",
    [First | [lists:nth(r(length(Chars)), Chars) || _ <- lists:seq(1, r(20) - 1)]].

atom_pool() ->
    [a, b, c, ok, error, foo, bar, 'Foo', 'b\x{e4}r', '\x{3b1}\x{3b2}', ''].

unicode_char() ->
    case r(5) of
        1 -> 16#80 + r(16#80) - 1;
        2 -> 16#100 + r(16#700) - 1;
        3 -> 16#800 + r(16#D800 - 16#800) - 1;
        4 -> 16#E000 + r(16#FFFE - 16#E000) - 1;
        5 -> 16#10000 + r(16#100000) - 1
    end.

binary_term() ->
    case r(20) of
        1 -> <<>>;
        N when N =< 8 -> rand:bytes(r(10));
        N when N =< 12 -> list_to_binary(ident());
        N when N =< 16 -> rand:bytes(r(100));
        N when N =< 18 ->
            unicode:characters_to_binary([unicode_char() || _ <- lists:seq(1, r(8))]);
        19 -> rand:bytes(r(300));
        20 -> rand:bytes(case r(10) of 1 -> r(3000); _ -> r(30) end)
    end.

bitstring_term() ->
    Bits = r(7),
    <<(rand:bytes(r(20) - 1))/binary, (r(1 bsl Bits) - 1):Bits>>.

fun_term() ->
    case r(8) of
        N when N =< 3 -> pick([fun lists:map/2, fun erlang:'+'/2,
                               fun erlang:self/0, fun maps:get/3]);
        N when N =< 7 ->
            erlang:make_fun(list_to_atom(ident()), list_to_atom(ident()),
                            r(256) - 1);
        8 -> erlang:make_fun(atom_term(), atom_term(), r(256) - 1)
    end.

string() ->
    case r(5) of
        1 -> [r(256) - 1 || _ <- lists:seq(1, r(30))];
        2 -> [31 + r(95) || _ <- lists:seq(1, r(40))];
        3 -> [unicode_char() || _ <- lists:seq(1, r(10))];
        4 -> [r(256) - 1 || _ <- lists:seq(1, 200 + r(800))];
        5 -> [r(300) - 1 || _ <- lists:seq(1, r(10))]
    end.

list(D) -> [any(D - 1) || _ <- lists:seq(1, len())].
improper(D) ->
    Tail = pick([a, 1, 2.5, <<"t">>, {}, #{}, self(), leaf()]),
    case is_list(Tail) of
        true -> improper(D);
        false -> lists:foldr(fun(X, Acc) -> [X | Acc] end, Tail, list(D))
    end.
tuple(D) -> list_to_tuple([any(D - 1) || _ <- lists:seq(1, len() - 1)]).
big_tuple() ->
    N = 200 + r(400),
    case spend(N) of
        true -> list_to_tuple([leaf() || _ <- lists:seq(1, N)]);
        false -> tuple(2)
    end.
%% Takes N from this term's budget if it has that much.
spend(N) ->
    case get(budget) of
        B when B >= N -> put(budget, B - N), true;
        _ -> false
    end.

len() -> case r(10) of 10 -> r(40); _ -> r(6) end.

%% Keys stay shallow: OTP 25.2's maps:from_list/1 crashed the VM (C stack
%% overflow) on large maps whose keys held deeply nested maps.
key() ->
    case r(6) of
        1 -> small_int();
        2 -> atom_term();
        3 -> binary_term();
        4 -> leaf();
        5 -> list_to_tuple([leaf() || _ <- lists:seq(1, r(3))]);
        6 -> float_term()
    end.

small_map(D) -> maps:from_list([{key(), any(D - 1)} || _ <- lists:seq(1, r(33) - 1)]).
large_map(D) ->
    N = 33 + r(60),
    case spend(2 * N) of
        true ->
            M = maps:from_list([{key(), any(D - 2)} || _ <- lists:seq(1, N)]),
            case map_size(M) > 32 of true -> M; false -> large_map(D) end;
        false -> small_map(D)
    end.

deep(D) ->
    N = case spend(300) of true -> r(300); false -> r(20) end,
    case r(3) of
        1 -> wrap(N, fun(X) -> [X] end, leaf());
        2 -> wrap(N, fun(X) -> {X, leaf()} end, any(D - 1));
        3 -> wrap(min(N, 50), fun(X) -> #{key() => X} end, leaf())
    end.

wrap(0, _, X) -> X;
wrap(N, F, X) -> wrap(N - 1, F, F(X)).

list_of_one_type() ->
    F = pick([fun small_int/0, fun float_term/0, fun atom_term/0,
              fun binary_term/0, fun big_int/0]),
    [F() || _ <- lists:seq(1, r(50))].

safe_float(F, Default) ->
    try F() catch error:badarith -> Default end.

%% A term near T: equal, of the same shape with one leaf changed, or the
%% same number as another type.
mutate(T) ->
    case r(8) of
        1 -> T;
        _ -> near(T)
    end.

near(T) when is_integer(T) ->
    case r(3) of
        1 when abs(T) < 1 bsl 1000 -> float(T);
        _ -> T + r(5) - 3
    end;
near(T) when is_float(T) ->
    case r(4) of
        1 when abs(T) < 1.0e18 -> round(T);
        2 -> safe_float(fun() -> T * 1.0000001 end, T);
        _ -> safe_float(fun() -> T + r(3) - 2 end, T)
    end;
near(T) when is_atom(T) ->
    L = atom_to_list(T),
    case r(2) of
        1 when length(L) < 255 -> list_to_atom(L ++ [r(128) - 1]);
        _ when L =/= [] -> list_to_atom(lists:droplast(L));
        _ -> a
    end;
near(T) when is_binary(T) ->
    case r(3) of
        1 -> <<T/binary, (r(256) - 1)>>;
        2 when byte_size(T) > 0 -> binary:part(T, 0, byte_size(T) - 1);
        _ -> <<T/bitstring, 1:1>>
    end;
near(T) when is_bitstring(T) -> <<T/bitstring, (r(2) - 1):1>>;
near([H | Tl]) when is_list(Tl) ->
    case r(3) of
        1 -> [near(H) | Tl];
        2 -> [H | near(Tl)];
        3 -> [H]
    end;
near([H | Tl]) -> [H | near(Tl)];
near(T) when is_tuple(T), tuple_size(T) > 0 ->
    I = r(tuple_size(T)),
    setelement(I, T, near(element(I, T)));
near(T) when is_map(T), map_size(T) > 0 ->
    {K, V} = pick(maps:to_list(T)),
    case r(3) of
        1 -> T#{K => near(V)};
        2 -> maps:remove(K, T);
        3 -> T#{near(K) => V}
    end;
near(T) when is_pid(T) -> id_term(pid);
near(T) when is_port(T) -> id_term(port);
near(T) when is_reference(T) -> id_term(ref);
near(_) -> any(3).
