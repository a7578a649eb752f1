%% dist_bench.erl: the Erlang side of bench/dist_bench.c, which starts
%% the nodes (on loopback, with its own epmd) and runs this module in two
%% roles:
%%
%%   serve                a node that answers {hello, From} with the pids
%%                        of its sink and echo processes, and stays up
%%                        until its parent halts it
%%   main ServerNode Runs System [quick]  runs the workloads against ServerNode's sink
%%                        and echo and prints BENCH lines (the system is
%%                        the argument after Runs: "erlang" for a pair of
%%                        Erlang nodes)
%%
%% The workloads, the same on every pair:
%%   dist_send_small   N small messages ({msg, I}) one way to the sink,
%%                     which reports when it has the N-th: messages/s
%%   dist_roundtrip    one message to echo and its answer, N times in a
%%                     row: round trips/s
%%   dist_bandwidth_1m N 1 MiB binaries one way: MB/s (10^6 bytes)
-module(dist_bench).
-export([main/1, serve/0]).

main([ServerNode, Runs, System | Quick]) ->
    client(list_to_atom(ServerNode), list_to_integer(Runs), System,
           Quick =:= ["quick"]),
    halt(0).

serve() ->
    spawn(fun() ->
              register(dist_bench, self()),
              Sink = spawn(fun sink/0),
              Echo = spawn(fun echo/0),
              serve_loop(Sink, Echo)
          end),
    ok.

serve_loop(Sink, Echo) ->
    receive
        {hello, From} -> From ! {servers, Sink, Echo};
        _ -> ok
    end,
    serve_loop(Sink, Echo).

%% {start, From, N}, then N messages of any kind, then {done, N} to From.
sink() ->
    process_flag(message_queue_data, off_heap),
    receive
        {start, From, N} ->
            count(N),
            From ! {done, N}
    end,
    sink().

count(0) -> ok;
count(N) -> receive _ -> count(N - 1) end.

echo() ->
    receive
        {From, X} -> From ! X
    end,
    echo().

%% ---- the client ----------------------------------------------------------

%% A node answers pings before its dist_bench process is registered, and a
%% send to a name not yet there is dropped: say hello until answered.
hello(_Server, 0) -> exit(no_server);
hello(Server, N) ->
    {dist_bench, Server} ! {hello, self()},
    receive {servers, S, E} -> flush_servers(), {S, E}
    after 100 -> hello(Server, N - 1)
    end.

flush_servers() ->
    receive {servers, _, _} -> flush_servers()
    after 100 -> ok
    end.

client(Server, Runs, System, Quick) ->
    true = net_kernel:connect_node(Server),
    {Sink, Echo} = hello(Server, 100),
    {NSmall, NRound, NBig} = case Quick of
                                 true -> {100000, 5000, 100};
                                 false -> {500000, 20000, 500}
                             end,
    Bin = binary:copy(<<7>>, 1 bsl 20),
    report("dist_send_small", System, "msg/s",
           best(Runs, fun() -> rate(NSmall, fun() -> oneway(Sink, NSmall) end) end)),
    report("dist_roundtrip", System, "ops/s",
           best(Runs, fun() -> rate(NRound, fun() -> roundtrip(Echo, NRound) end) end)),
    report("dist_bandwidth_1m", System, "MB/s",
           best(Runs, fun() ->
                          rate(NBig * byte_size(Bin) / 1.0e6,
                               fun() -> big(Sink, Bin, NBig) end)
                      end)).

report(W, System, Unit, V) ->
    io:format("BENCH ~s ~s ~.1f ~s~n", [W, System, V, Unit]).

best(Runs, F) -> lists:max([F() || _ <- lists:seq(1, Runs)]).

rate(Count, F) ->
    T0 = erlang:monotonic_time(),
    F(),
    T1 = erlang:monotonic_time(),
    Count / (erlang:convert_time_unit(T1 - T0, native, nanosecond) / 1.0e9).

oneway(Sink, N) ->
    Sink ! {start, self(), N},
    send_small(Sink, 1, N),
    receive {done, N} -> ok end.

send_small(_, I, N) when I > N -> ok;
send_small(Sink, I, N) -> Sink ! {msg, I}, send_small(Sink, I + 1, N).

roundtrip(_, 0) -> ok;
roundtrip(Echo, N) ->
    Echo ! {self(), N},
    receive N -> roundtrip(Echo, N - 1) end.

big(Sink, Bin, N) ->
    Sink ! {start, self(), N},
    [Sink ! {bin, Bin} || _ <- lists:seq(1, N)],
    receive {done, N} -> ok end.
