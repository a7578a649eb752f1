%% code_bench.erl: Erlang's side of the hot code loading benchmark
%% (code_bench.c is otpc's; same workload names). A gen_server module,
%% code_bench_srv, compiled here from source text in two versions whose
%% states differ in shape, serves 4 clients calling back to back (request
%% N, reply N + 1). Printed:
%%
%%   code_call_p99 / code_call_max   no upgrade
%%   code_call_p99_upgrade_sys / code_call_max_upgrade_sys
%%       calls that overlapped an upgrade done as the release handler
%%       does it: sys:suspend, code:load_binary, sys:change_code,
%%       sys:resume (then code:soft_purge, outside the window)
%%   code_upgrade_time_sys           median suspend-to-resume time
%%
%% Erlang has no automatic move at the next dispatch (a gen_server moves
%% when the release handler tells it), so it has no code_call_*_upgrade
%% row. bench/run.sh runs
%%   erl +S N:N -noshell -pa DIR -run code_bench main
-module(code_bench).
-export([main/0]).

-define(CLIENTS, 4).

main() ->
    Quick = case os:getenv("QUICK") of
                Q when Q =:= false; Q =:= ""; Q =:= "0" -> false;
                _ -> true
            end,
    Bins = {compile_version(1), compile_version(2)},
    {module, code_bench_srv} =
        code:load_binary(code_bench_srv, "code_bench_srv.erl", element(1, Bins)),
    {ok, Server} = gen_server:start(code_bench_srv, [], []),
    Steady = phase(Server, fun() -> timer:sleep(case Quick of true -> 200; false -> 1000 end), [] end),
    {P99, Max} = stats(Steady, all),
    bench(code_call_p99, P99),
    bench(code_call_max, Max),
    N = case Quick of true -> 10; false -> 50 end,
    Upgrade = fun() -> upgrades(Server, Bins, N) end,
    {Samples, Windows} = phase_windows(Server, Upgrade),
    {UP99, UMax} = stats(Samples, Windows),
    bench(code_call_p99_upgrade_sys, UP99),
    bench(code_call_max_upgrade_sys, UMax),
    Lens = lists:sort([E - S || {S, E} <- Windows]),
    bench(code_upgrade_time_sys, lists:nth(length(Lens) div 2 + 1, Lens) / 1000),
    io:format("NOTE code_call_p99_upgrade_sys erlang ~b upgrades~n", [N]),
    halt(0).

bench(Name, Us) ->
    io:format("BENCH ~s erlang ~s us~n", [Name, fmt(Us)]).

fmt(V) when V >= 100 -> io_lib:format("~b", [round(V)]);
fmt(V) when V >= 10 -> io_lib:format("~.1f", [V]);
fmt(V) -> io_lib:format("~.2f", [V]).

%% The server module in version Vsn; its state is {v1, Calls} or
%% {v2, Upgrades, Calls}, and code_change converts either way.
compile_version(Vsn) ->
    Src = io_lib:format(
            "-module(code_bench_srv).~n"
            "-vsn(~b).~n"
            "-behaviour(gen_server).~n"
            "-export([init/1, handle_call/3, handle_cast/2, code_change/3]).~n"
            "init([]) -> {ok, ~s}.~n"
            "handle_call(N, _From, S) -> {reply, N + 1, bump(S)}.~n"
            "handle_cast(_, S) -> {noreply, S}.~n"
            "bump({v1, C}) -> {v1, C + 1};~n"
            "bump({v2, U, C}) -> {v2, U, C + 1}.~n"
            "code_change(_Old, {v1, C}, _) when ~b =:= 2 -> {ok, {v2, 1, C}};~n"
            "code_change(_Old, {v2, _, C}, _) when ~b =:= 1 -> {ok, {v1, C}};~n"
            "code_change(_Old, S, _) -> {ok, S}.~n",
            [Vsn, case Vsn of 1 -> "{v1, 0}"; 2 -> "{v2, 0, 0}" end, Vsn, Vsn]),
    Dir = filename:join(os:getenv("TMPDIR", "/tmp"),
                        "code_bench_" ++ os:getpid()),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    File = filename:join(Dir, "code_bench_srv.erl"),
    ok = file:write_file(File, Src),
    {ok, code_bench_srv, Bin} = compile:file(File, [binary]),
    file:delete(File),
    file:del_dir(Dir),
    Bin.

upgrades(Server, Bins, N) ->
    timer:sleep(20),
    lists:map(fun(I) ->
                      Bin = element(1 + I rem 2, Bins),
                      S = erlang:monotonic_time(nanosecond),
                      ok = sys:suspend(Server),
                      {module, _} = code:load_binary(code_bench_srv,
                                                     "code_bench_srv.erl", Bin),
                      ok = sys:change_code(Server, code_bench_srv,
                                           2 - I rem 2, []),
                      ok = sys:resume(Server),
                      E = erlang:monotonic_time(nanosecond),
                      true = code:soft_purge(code_bench_srv),
                      timer:sleep(10),
                      {S, E}
              end, lists:seq(1, N)).

phase(Server, Body) ->
    {Samples, _} = phase_windows(Server, Body),
    Samples.

%% Runs the clients while Body runs; returns their samples and Body's
%% windows.
phase_windows(Server, Body) ->
    Self = self(),
    Stop = atomics:new(1, []),
    Clients = [spawn_link(fun() -> client(Server, Stop, Self, 0, []) end)
               || _ <- lists:seq(1, ?CLIENTS)],
    Windows = Body(),
    atomics:put(Stop, 1, 1),
    Samples = lists:append([receive {samples, C, S} -> S end || C <- Clients]),
    {Samples, Windows}.

client(Server, Stop, Parent, N, Acc) ->
    case atomics:get(Stop, 1) of
        1 -> Parent ! {samples, self(), Acc};
        0 ->
            T0 = erlang:monotonic_time(nanosecond),
            R = gen_server:call(Server, N, infinity),
            T1 = erlang:monotonic_time(nanosecond),
            R = N + 1,
            client(Server, Stop, Parent, N + 1, [{T0, T1 - T0} | Acc])
    end.

%% p99 and max (us) of the samples, all of them or those overlapping a
%% window.
stats(Samples, Windows) ->
    Durs = lists:sort([D || {S, D} <- Samples,
                            Windows =:= all orelse overlaps(S, S + D, Windows)]),
    case Durs of
        [] -> {0, 0};
        _ ->
            Len = length(Durs),
            {lists:nth(min(Len, Len * 99 div 100 + 1), Durs) / 1000,
             lists:last(Durs) / 1000}
    end.

overlaps(S, E, Windows) ->
    lists:any(fun({WS, WE}) -> S =< WE andalso E >= WS end, Windows).
