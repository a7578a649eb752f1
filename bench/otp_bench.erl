%% otp_bench.erl: Erlang's side of the OTP behaviour benchmark
%% (otp_bench.c is otpc's). Same workloads, same sizes, same workload
%% names; see otp_bench.c for the list.
%%
%% bench/run.sh compiles it with erlc and runs
%%   erl +S N:N +P 4194304 -noshell -pa DIR -run otp_bench main
%% with N = otpc's scheduler count. QUICK=1 in the environment: smaller
%% sizes and one run per workload (otherwise the best of three). Prints
%%   BENCH <workload> erlang <value> <unit>
%%   NOTE  <workload> erlang <text>
%% Extra arguments (-run otp_bench main otp_call_1) select workloads.
%%
%% The module is its own gen_server (init/1 with any argument but
%% {sup, ...}: the server that replies Request + 1) and its own
%% supervisor callback (init({sup, Flags, Children})).
-module(otp_bench).
-export([main/0, main/1]).
-export([init/1, handle_call/3, handle_cast/2]).

-define(PAIRS, 100).
-define(WARMUP_CALLS, 1000).
-define(RESTART_ROUND, 100).
-define(WORKER, otp_bench_worker).

main() -> main([]).

main(Args) ->
    Quick = case os:getenv("QUICK") of
                Q when Q =:= false; Q =:= ""; Q =:= "0" -> false;
                _ -> true
            end,
    %% As otpc's: supervisor reports pass one level check and go nowhere.
    ok = logger:set_primary_config(level, none),
    Sel = [list_to_atom(A) || A <- Args],
    Want = fun(W) -> Sel =:= [] orelse lists:member(W, Sel) end,
    Reps = case Quick of true -> 1; false -> 3 end,
    Call1N = case Quick of true -> 100000; false -> 1000000 end,
    PairCalls = case Quick of true -> 2000; false -> 10000 end,
    Rounds = case Quick of true -> 5; false -> 20 end,
    IdleN = case Quick of true -> 10000; false -> 1000000 end,
    %% Memory first, while the VM is fresh.
    case Want(otp_idle_gen_server) of
        true -> in_process(fun() -> idle(IdleN) end);
        false -> ok
    end,
    %% The runs go in passes over the workloads, not one workload's runs
    %% in a row, as otpc's side does (otp_bench.c): a slow spell of the
    %% machine then costs one run of several workloads.
    Loads = [{otp_call_1, fun() -> call_1(Call1N) end},
             {otp_call_100x100, fun() -> call_pairs(?PAIRS, PairCalls) end},
             {otp_restart_latency, fun() -> restart_run(Rounds) end}],
    Chosen = [L || {Name, _} = L <- Loads, Want(Name)],
    Passes = [[{Name, in_process(Fun)} || {Name, Fun} <- Chosen]
              || _ <- lists:seq(1, Reps)],
    Runs = fun(Name) -> [V || Pass <- Passes, {N, V} <- Pass, N =:= Name] end,
    case Want(otp_call_1) of
        true ->
            S1 = lists:min(Runs(otp_call_1)),
            bench(otp_call_1, Call1N / S1 / 1.0e6, "Mops/s");
        false -> ok
    end,
    case Want(otp_call_100x100) of
        true ->
            S2 = lists:min(Runs(otp_call_100x100)),
            bench(otp_call_100x100, ?PAIRS * PairCalls / S2 / 1.0e6,
                  "Mops/s");
        false -> ok
    end,
    case Want(otp_restart_latency) of
        true -> restart(Runs(otp_restart_latency), Rounds);
        false -> ok
    end,
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

note(Name, Fmt, Args) ->
    io:format("NOTE ~s erlang ~s~n", [Name, io_lib:format(Fmt, Args)]).

fmt(V) when V >= 100 -> integer_to_list(round(V));
fmt(V) when V >= 10 -> float_to_list(float(V), [{decimals, 1}]);
fmt(V) when V >= 1 -> float_to_list(float(V), [{decimals, 2}]);
fmt(V) -> float_to_list(float(V), [{decimals, 3}]).

now_s() -> erlang:monotonic_time(nanosecond) / 1.0e9.

rss() ->
    {ok, B} = file:read_file("/proc/self/statm"),
    [_, Rss | _] = string:lexemes(binary_to_list(B), " \n"),
    list_to_integer(Rss) * 4096.

%% Until the run queues are empty.
wait_quiet() ->
    case erlang:statistics(total_run_queue_lengths_all) of
        0 -> ok;
        _ -> timer:sleep(5), wait_quiet()
    end.

%% ---- the server: replies Request + 1 -------------------------------------

init({sup, Flags, Children}) -> {ok, {Flags, Children}};
init(State) -> {ok, State}.

handle_call(V, _From, S) -> {reply, V + 1, S}.

handle_cast(_, S) -> {noreply, S}.

start_server() ->
    {ok, Pid} = gen_server:start(?MODULE, [], []),
    Pid.

%% N calls, each sending V and checking that V + 1 comes back.
call_loop(S, N) -> call_loop(S, 0, N).

call_loop(_, _, 0) -> ok;
call_loop(S, V, N) ->
    case gen_server:call(S, V, infinity) of
        R when R =:= V + 1 -> call_loop(S, R, N - 1)
    end.

%% ---- calls: one pair, and 100 pairs -----------------------------------------

call_1(N) ->
    S = start_server(),
    call_loop(S, ?WARMUP_CALLS),
    T0 = now_s(),
    call_loop(S, N),
    now_s() - T0.

call_pairs(Pairs, Calls) ->
    Main = self(),
    Client = fun(S) ->
                     call_loop(S, ?WARMUP_CALLS div 10),
                     Main ! ready,
                     receive go -> ok end,
                     call_loop(S, Calls),
                     Main ! done
             end,
    Clients = [begin S = start_server(), spawn(fun() -> Client(S) end) end
               || _ <- lists:seq(1, Pairs)],
    [receive ready -> ok end || _ <- Clients],
    T0 = now_s(),
    [C ! go || C <- Clients],
    [receive done -> ok end || _ <- Clients],
    now_s() - T0.

%% ---- restart latency ----------------------------------------------------------

%% Runs: the results of restart_run/1, one per pass.
restart(Runs, Rounds) ->
    Medians = [M || {M, _, _} <- Runs],
    P99s = [P || {_, P, _} <- Runs],
    {_, _, Sorted} = hd([R || {M, _, _} = R <- Runs,
                              M =:= lists:min(Medians)]),
    bench(otp_restart_latency, lists:min(Medians), "us"),
    bench(otp_restart_latency_p99, lists:min(P99s), "us"),
    note(otp_restart_latency, "~w restarts (~w supervisors); min ~.1f us, "
         "max ~.1f us; logger primary level none "
         "(logger:set_primary_config(level, none)), so the supervisor's "
         "child_terminated reports are not formatted or printed",
         [length(Sorted), Rounds, hd(Sorted), lists:last(Sorted)]).

%% {Median, P99, Sorted samples} in microseconds.
restart_run(Rounds) ->
    Spec = #{id => worker,
             start => {gen_server, start_link,
                       [{local, ?WORKER}, ?MODULE, [], []]},
             restart => permanent, shutdown => brutal_kill, type => worker},
    %% Never gives up: a round makes ?RESTART_ROUND restarts. A supervisor
    %% per round keeps its list of recent restarts short, as in otpc.
    Flags = #{strategy => one_for_one, intensity => ?RESTART_ROUND + 10,
              period => 5},
    Samples = lists:append(
                [begin
                     {ok, Sup} = supervisor:start_link(
                                   ?MODULE, {sup, Flags, [Spec]}),
                     Round = [restart_once() || _ <- lists:seq(1, ?RESTART_ROUND)],
                     ok = gen_server:stop(Sup),
                     Round
                 end || _ <- lists:seq(1, Rounds)]),
    Sorted = lists:sort(Samples),
    N = length(Sorted),
    {lists:nth(N div 2 + 1, Sorted),
     lists:nth((N * 99 + 99) div 100, Sorted), Sorted}.

restart_once() ->
    Old = whereis(?WORKER),
    true = is_pid(Old),
    T0 = erlang:monotonic_time(nanosecond),
    exit(Old, kill),
    wait_replacement(Old),
    (erlang:monotonic_time(nanosecond) - T0) / 1000.

%% Polls until the name gives a pid other than Old that answers a call.
wait_replacement(Old) ->
    case whereis(?WORKER) of
        P when is_pid(P), P =/= Old -> 1 = gen_server:call(P, 0, infinity);
        _ -> erlang:yield(), wait_replacement(Old)
    end.

%% ---- idle servers ----------------------------------------------------------------

idle(N) ->
    erlang:garbage_collect(),
    wait_quiet(),
    Before = erlang:processes(),
    M0 = erlang:memory(total),
    P0 = erlang:memory(processes),
    R0 = rss(),
    T0 = now_s(),
    start_n(N),
    T1 = now_s(),
    wait_quiet(),
    timer:sleep(100),
    M1 = erlang:memory(total),
    P1 = erlang:memory(processes),
    R1 = rss(),
    %% What one call each adds.
    Servers = erlang:processes() -- Before,
    {memory, Mem0} = process_info(hd(Servers), memory),
    [call_loop(S, 1) || S <- Servers],
    timer:sleep(100),
    R2 = rss(),
    {memory, Mem1} = process_info(hd(Servers), memory),
    bench(otp_idle_gen_server, (R1 - R0) / N, "B"),
    note(otp_idle_gen_server, "~w servers started in ~w ms; RSS +~.1f MiB; "
         "erlang:memory(total) +~w B each, erlang:memory(processes) +~w B "
         "each; process_info memory ~w B; after one call to each: ~w B "
         "each by RSS, process_info memory ~w B",
         [N, round((T1 - T0) * 1000), (R1 - R0) / 1048576,
          round((M1 - M0) / N), round((P1 - P0) / N), Mem0,
          round((R2 - R0) / N), Mem1]).

start_n(0) -> ok;
start_n(N) -> start_server(), start_n(N - 1).
