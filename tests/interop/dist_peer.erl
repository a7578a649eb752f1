%% dist_peer.erl: the Erlang half of the distribution interop test
%% (dist_interop.c). Started as
%%
%%   erl -sname erl_N@localhost -setcookie C -run dist_peer main OtpcNode
%%
%% it pings the otpc node, tells the otpc process registered as `control`
%% that it is ready, and then does what control asks, answering each
%% request. With a second argument "wrong" (started with another cookie)
%% it only pings, waits a little for otpc to ping it, and halts with 0 if
%% its own ping got pang.
-module(dist_peer).
-behaviour(gen_server).
-export([main/1]).
-export([init/1, handle_call/3, handle_cast/2]).

%% A gen_server for otpc to call.
init([]) -> {ok, 0}.
handle_call({sleep, Ms}, _From, N) -> timer:sleep(Ms), {reply, slept, N};
handle_call(Req, _From, N) -> {reply, {erl_says, Req, N}, N + 1}.
handle_cast(_, N) -> {noreply, N}.

main([N, "wrong"]) ->
    R = net_adm:ping(list_to_atom(N)),
    timer:sleep(4000),
    halt(case R of pang -> 0; pong -> 1 end);
main([N, "hidden"]) ->
    %% started with -hidden: as below
    main([N]);
main([N]) ->
    Node = list_to_atom(N),
    pong = wait_ping(Node, 100),
    register(peer, self()),
    {control, Node} ! {ready, self()},
    loop(Node).

node_events(Node, Acc) when length(Acc) < 2 ->
    receive
        {nodeup, Node} -> node_events(Node, [nodeup | Acc]);
        {nodedown, Node} -> node_events(Node, [nodedown | Acc]);
        {nodeup, _} -> node_events(Node, Acc);
        {nodedown, _} -> node_events(Node, Acc)
    after 20000 -> node_events(Node, [timeout | Acc])
    end;
node_events(_Node, Acc) ->
    receive {F, events} -> F ! {events, lists:reverse(Acc)} end.

wait_ping(_, 0) -> pang;
wait_ping(Node, K) ->
    case net_adm:ping(Node) of
        pong -> pong;
        pang -> timer:sleep(100), wait_ping(Node, K - 1)
    end.

loop(Node) ->
    receive
        {From, echo, X} ->
            From ! {echoed, X};
        {From, big, Bin} ->
            From ! {big_ok, byte_size(Bin), erlang:md5(Bin)};
        {From, send_big, Size} ->
            Bin = binary:copy(<<"0123456789abcdef">>, Size div 16),
            From ! {big_md5, erlang:md5(Bin)},
            spawn(fun() -> From ! {big_from_erl, Bin} end),
            spawn(fun() -> [From ! {small, I} || I <- lists:seq(1, 20)] end);
        {From, start_gs} ->
            {ok, Gs} = gen_server:start({local, erl_gs}, ?MODULE, [], []),
            From ! {gs, Gs};
        {From, call_otpc, Name, Req} ->
            From ! {call_result, catch gen_server:call({Name, Node}, Req, 5000)};
        {From, call_otpc_late, Name, Req, Timeout, Wait} ->
            %% The reply comes after the call gave up: it must not land
            %% in this mailbox (OTP 24 calls wait on an alias).
            R = (catch gen_server:call({Name, Node}, Req, Timeout)),
            timer:sleep(Wait),
            Stray = receive Any -> {stray, Any} after 0 -> none end,
            From ! {late_result, R, Stray};
        {From, rpc_tests} ->
            From ! {rpc_results,
                    rpc:call(Node, otpc_math, add, [2, 3]),
                    rpc:call(Node, otpc_math, add, [x], 5000),
                    rpc:call(Node, nope, f, [1]),
                    erpc:call(Node, otpc_math, add, [40, 2])};
        {From, ping_back} ->
            From ! {ping_back, net_adm:ping(Node)};
        {From, named_victim} ->
            V = spawn(fun Loop() ->
                              receive
                                  {F, monitored_by} ->
                                      {monitored_by, M} =
                                          process_info(self(), monitored_by),
                                      F ! {monitored_by, length(M)},
                                      Loop();
                                  die -> exit(bye)
                              end
                      end),
            register(victim2, V),
            From ! victim_ready;
        {From, names} ->
            From ! {names, net_adm:names()};
        {From, nodes} ->
            From ! {nodes, nodes()};
        {From, nodes_hidden} ->
            From ! {nodes, nodes(), nodes(hidden)};
        {From, link_me} ->
            %% link to From, then exit with a reason when told
            P = spawn(fun() ->
                              link(From),
                              From ! {linked, self()},
                              receive die -> exit(erl_says_bye) end
                      end),
            P;
        {From, monitor_me} ->
            Ref = erlang:monitor(process, From),
            receive {'DOWN', Ref, process, _, Reason} ->
                    {control, Node} ! {down_seen, Reason}
            after 10000 -> {control, Node} ! {down_seen, timeout}
            end;
        {From, os_pid} ->
            From ! {os_pid, list_to_integer(os:getpid())};
        {From, subscribe} ->
            %% net_kernel:monitor_nodes/1: keeps Node's nodeup/nodedown
            %% events until asked for two of them.
            S = spawn(fun() ->
                              ok = net_kernel:monitor_nodes(true),
                              From ! {subscribed, self()},
                              node_events(Node, [])
                      end),
            S;
        {From, unlink_peer} ->
            %% E answers with its links, and dies when told.
            E = spawn(fun Loop() ->
                              receive
                                  {F, links} ->
                                      {links, L} = process_info(self(), links),
                                      F ! {links, L},
                                      Loop();
                                  die -> exit(erl_gone)
                              end
                      end),
            From ! {unlink_peer, E};
        {From, kill_and_wait, E} ->
            Ref = erlang:monitor(process, E),
            E ! die,
            receive {'DOWN', Ref, _, _, _} -> ok end,
            From ! e_dead;
        {From, link_then_exit, P, Unlink} ->
            %% links P (an otpc process), unlinks it if asked, exits with
            %% erl_gone2; P is told once that exit has gone out.
            E = spawn(fun() ->
                              link(P),
                              Unlink andalso unlink(P),
                              P ! linked_done,
                              exit(erl_gone2)
                      end),
            Ref = erlang:monitor(process, E),
            receive {'DOWN', Ref, _, _, _} -> ok end,
            P ! e2_dead,
            From ! {link_then_exit, done};
        {From, trapper} ->
            %% traps exits and reports the first EXIT (or its own death).
            T = spawn(fun() ->
                              process_flag(trap_exit, true),
                              From ! {trapper, self()},
                              receive {'EXIT', P, R} -> From ! {trapped, P, R} end
                      end),
            T;
        {From, watch_kill, T} ->
            %% says `watching` once its monitor is set, then the reason
            spawn(fun() ->
                          Ref = erlang:monitor(process, T),
                          From ! watching,
                          receive {'DOWN', Ref, _, _, R} -> From ! {watched, R}
                          after 10000 -> From ! {watched, timeout}
                          end
                  end);
        {From, exit2, P, Reason} ->
            exit(P, Reason),
            From ! exit2_sent;
        {From, monitor_name, Name} ->
            R1 = erlang:monitor(process, {Name, Node}),
            R2 = erlang:monitor(process, {nobody_otpc, Node}),
            Missing = receive {'DOWN', R2, process, O2, W2} -> {O2, W2}
                      after 10000 -> none end,
            From ! monitors_set,
            Named = receive {'DOWN', R1, process, O1, W1} -> {O1, W1}
                    after 10000 -> none end,
            From ! {name_downs, Named, Missing};
        {From, to_otpc_alias, A, N} ->
            %% A is an otpc process's alias: ALIAS_SEND, then a plain
            %% send from this same process (so it comes after).
            A ! {via_otpc_alias, N},
            From ! {sent, N};
        {From, to_otpc_alias_tt, A, N} ->
            %% The same with a seq_trace token: ALIAS_SEND_TT.
            seq_trace:set_token(label, 17),
            A ! {via_otpc_alias, N},
            seq_trace:set_token([]),
            From ! {sent, N};
        {From, alias_test} ->
            A = alias(),
            From ! {alias, A},
            First = receive {via_alias, 1} -> got after 10000 -> none end,
            unalias(A),
            From ! unaliased,
            %% the barrier comes after the second alias send, from the
            %% same sender: anything sent to the alias is here by then
            receive {_, alias_barrier} -> ok after 10000 -> ok end,
            Stray = receive {via_alias, 2} -> stray after 0 -> none end,
            From ! {alias_result, First, Stray};
        {From, cut_prep, X} ->
            %% W watches X (monitor and link) across the connection that
            %% is cut next, and reports what it saw when asked.
            W = spawn(fun() ->
                              process_flag(trap_exit, true),
                              Ref = erlang:monitor(process, X),
                              link(X),
                              From ! {w, self()},
                              D = receive {'DOWN', Ref, _, _, R1} -> R1
                                  after 30000 -> none end,
                              E = receive {'EXIT', X, R2} -> R2
                                  after 30000 -> none end,
                              receive {F, report} -> F ! {w_saw, D, E} end
                      end),
            W;
        {_From, cut_now} ->
            true = erlang:disconnect_node(Node);
        {From, stop} ->
            From ! stopped,
            timer:sleep(200),
            halt(0)
    after 120000 ->
            halt(2)
    end,
    loop(Node).
