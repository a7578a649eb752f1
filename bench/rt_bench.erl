%% rt_bench.erl: Erlang's side of the process-runtime benchmark
%% (rt_bench.c is otpc's, rt_bench.go is Go's). Same workloads, same sizes,
%% same workload names; see rt_bench.c for the list.
%%
%% bench/run.sh compiles it with erlc and runs
%%   erl +S N:N +P 4194304 -noshell -pa DIR -run rt_bench main
%% with N = otpc's scheduler count, so both use as many schedulers.
%% QUICK=1 in the environment: smaller sizes and one run per workload
%% (otherwise the best of three). Prints
%%   BENCH <workload> erlang <value> <unit>
%%   NOTE  <workload> erlang <text>
%% Extra arguments (-run rt_bench main ring skynet_1m) select workloads.
-module(rt_bench).
-export([main/0, main/1]).

-define(RING_N, 10000).
-define(RING_ROUNDS, 100).
-define(SKYNET_SIZE, 1000000).
-define(M2O_SENDERS, 20).

main() -> main([]).

main(Args) ->
    Quick = case os:getenv("QUICK") of
                Q when Q =:= false; Q =:= ""; Q =:= "0" -> false;
                _ -> true
            end,
    Sel = [list_to_atom(A) || A <- Args],
    Want = fun(W) -> Sel =:= [] orelse lists:member(W, Sel) end,
    Reps = case Quick of true -> 1; false -> 3 end,
    IdleN = case Quick of true -> 200000; false -> 1000000 end,
    SpawnN = IdleN,
    PingN = IdleN,
    M2O = case Quick of true -> 100000; false -> 1000000 end,
    %% Memory first, while the VM is fresh.
    case Want(idle_memory_handler) orelse Want(idle_memory_seq) of
        true -> in_process(fun() -> idle(IdleN) end);
        false -> ok
    end,
    Loads = [{spawn_exit_msg, fun() -> spawn_exit(SpawnN) end, higher,
              "Mops/s", fun(S) -> SpawnN / S / 1.0e6 end},
             {ring, fun() -> ring(?RING_N, ?RING_ROUNDS) end, higher,
              "Mmsg/s", fun(S) -> ?RING_N * ?RING_ROUNDS / S / 1.0e6 end},
             {pingpong, fun() -> ring(2, PingN) end, higher,
              "Mops/s", fun(S) -> PingN / S / 1.0e6 end},
             {skynet_1m, fun() -> skynet_run() end, lower,
              "ms", fun(S) -> S * 1000 end},
             {many_to_one, fun() -> many_to_one(?M2O_SENDERS, M2O) end, higher,
              "Mmsg/s", fun(S) -> ?M2O_SENDERS * M2O / S / 1.0e6 end}],
    %% The runs go in passes over the workloads, not one workload's runs
    %% in a row, as otpc's side does (rt_bench.c): a slow spell of the
    %% machine then costs one run of several workloads.
    Chosen = [L || {Name, _, _, _, _} = L <- Loads, Want(Name)],
    Passes = [[{Name, Conv(in_process(Fun))}
               || {Name, Fun, _, _, Conv} <- Chosen]
              || _ <- lists:seq(1, Reps)],
    lists:foreach(
      fun({Name, _, Better, Unit, _}) ->
              Vals = [V || Pass <- Passes, {N, V} <- Pass, N =:= Name],
              Best = case Better of
                         higher -> lists:max(Vals);
                         lower -> lists:min(Vals)
                     end,
              bench(Name, Best, Unit),
              %% The sequential variants of otpc compare with the same
              %% Erlang figure.
              Twin = list_to_atom(atom_to_list(Name) ++ "_seq"),
              case lists:member(Twin, [spawn_exit_msg_seq, ring_seq,
                                       pingpong_seq]) of
                  true -> bench(Twin, Best, Unit);
                  false -> ok
              end
      end, Chosen),
    halt(0).

%% Runs Fun in a fresh process (clean mailbox and heap) and returns its
%% result; every process it left behind is killed afterwards.
in_process(Fun) ->
    Before = erlang:processes(),
    Self = self(),
    {Pid, Ref} = spawn_monitor(fun() -> Self ! {self(), Fun()} end),
    R = receive
            {Pid, Val} -> Val;
            {'DOWN', Ref, process, Pid, Why} -> exit({workload_failed, Why})
        end,
    erlang:demonitor(Ref, [flush]),
    kill_new(Before),
    R.

kill_new(Before) ->
    Old = sets:from_list(Before),
    New = [P || P <- erlang:processes(), not sets:is_element(P, Old)],
    [exit(P, kill) || P <- New],
    wait_gone(New).

wait_gone(Ps) ->
    case lists:any(fun erlang:is_process_alive/1, Ps) of
        true -> timer:sleep(10), wait_gone(Ps);
        false -> ok
    end.

bench(Name, Val, Unit) ->
    io:format("BENCH ~s erlang ~s ~s~n", [Name, fmt(Val), Unit]).

fmt(V) when V >= 100 -> integer_to_list(round(V));
fmt(V) when V >= 10 -> float_to_list(float(V), [{decimals, 1}]);
fmt(V) when V >= 1 -> float_to_list(float(V), [{decimals, 2}]);
fmt(V) -> float_to_list(float(V), [{decimals, 3}]).

now_s() -> erlang:monotonic_time(nanosecond) / 1.0e9.

rss() ->
    {ok, B} = file:read_file("/proc/self/statm"),
    [_, Rss | _] = string:lexemes(binary_to_list(B), " \n"),
    list_to_integer(Rss) * 4096.

%% ---- idle processes -----------------------------------------------------

idle(N) ->
    erlang:garbage_collect(),
    wait_quiet(),
    M0 = erlang:memory(processes),
    R0 = rss(),
    T0 = now_s(),
    spawn_idle(N),
    wait_quiet(),
    T1 = now_s(),
    timer:sleep(100),
    M1 = erlang:memory(processes),
    R1 = rss(),
    Each = (R1 - R0) / N,
    bench(idle_memory_handler, Each, "B"),
    bench(idle_memory_seq, Each, "B"),
    Note = io_lib:format("~w processes blocked in receive, spawned in ~.1f ms; "
                         "RSS +~.1f MiB; erlang:memory(processes) +~w bytes "
                         "each", [N, (T1 - T0) * 1000, (R1 - R0) / 1048576,
                                  round((M1 - M0) / N)]),
    io:format("NOTE idle_memory_handler erlang ~s~n", [Note]),
    io:format("NOTE idle_memory_seq erlang ~s~n", [Note]),
    ok.

spawn_idle(0) -> ok;
spawn_idle(N) ->
    spawn(fun() -> receive stop -> ok end end),
    spawn_idle(N - 1).

%% Until the run queues are empty: every new process has reached receive.
wait_quiet() ->
    case erlang:statistics(total_run_queue_lengths_all) of
        0 -> ok;
        _ -> timer:sleep(5), wait_quiet()
    end.

%% ---- spawn + exit + one message ------------------------------------------

%% The parent's mailbox holds up to N messages: off_heap, as Erlang advises
%% for such a process (on_heap, every garbage collection of the parent
%% scans the whole queue and the workload runs 10x slower).
spawn_exit(N) ->
    process_flag(message_queue_data, off_heap),
    Parent = self(),
    T0 = now_s(),
    spawn_children(N, Parent),
    receive_n(N),
    now_s() - T0.

spawn_children(0, _) -> ok;
spawn_children(N, Parent) ->
    spawn(fun() -> Parent ! done end),
    spawn_children(N - 1, Parent).

receive_n(0) -> ok;
receive_n(N) -> receive done -> receive_n(N - 1) end.

%% ---- ring (and ping-pong: a ring of two) ----------------------------------

%% N processes in a ring; the token goes Rounds times around. Returns the
%% seconds the N * Rounds hops took (spawning not timed).
ring(N, Rounds) ->
    Main = self(),
    First = spawn(fun() -> receive {next, Next} -> first(Next, 0, Rounds, Main) end end),
    Last = spawn_chain(N - 1, First),
    First ! {next, Last},
    wait_quiet(),
    T0 = now_s(),
    First ! token,
    receive ring_done -> ok end,
    now_s() - T0.

spawn_chain(0, Next) -> Next;
spawn_chain(K, Next) -> spawn_chain(K - 1, spawn(fun() -> forward(Next) end)).

forward(Next) ->
    receive
        token -> Next ! token, forward(Next)
    end.

first(Next, Seen, Rounds, Main) ->
    receive
        token when Seen + 1 > Rounds -> Main ! ring_done;
        token -> Next ! token, first(Next, Seen + 1, Rounds, Main)
    end.

%% ---- skynet ---------------------------------------------------------------

skynet_run() ->
    Self = self(),
    T0 = now_s(),
    spawn(fun() -> skynet(Self, 0, ?SKYNET_SIZE) end),
    Sum = receive S -> S end,
    T1 = now_s(),
    Sum = ?SKYNET_SIZE * (?SKYNET_SIZE - 1) div 2,
    T1 - T0.

skynet(Parent, Num, 1) -> Parent ! Num;
skynet(Parent, Num, Size) ->
    Self = self(),
    Sub = Size div 10,
    spawn_sky(Self, Num, Sub, 0),
    Parent ! sum_n(10, 0).

spawn_sky(_, _, _, 10) -> ok;
spawn_sky(Self, Num, Sub, I) ->
    spawn(fun() -> skynet(Self, Num + I * Sub, Sub) end),
    spawn_sky(Self, Num, Sub, I + 1).

sum_n(0, Acc) -> Acc;
sum_n(K, Acc) -> receive V -> sum_n(K - 1, Acc + V) end.

%% ---- many senders, one receiver ------------------------------------------

many_to_one(Senders, Msgs) ->
    Main = self(),
    Total = Senders * Msgs,
    Recv = spawn_opt(fun() -> count(Total), Main ! m2o_done end,
                     [{message_queue_data, off_heap}]),
    T0 = now_s(),
    [spawn(fun() -> send_n(Recv, {msg, I}, Msgs) end)
     || I <- lists:seq(1, Senders)],
    receive m2o_done -> ok end,
    now_s() - T0.

send_n(_, _, 0) -> ok;
send_n(To, M, N) -> To ! M, send_n(To, M, N - 1).

count(0) -> ok;
count(N) -> receive _ -> count(N - 1) end.
