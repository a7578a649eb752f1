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
handle_call(Req, _From, N) -> {reply, {erl_says, Req, N}, N + 1}.
handle_cast(_, N) -> {noreply, N}.

main([N, "wrong"]) ->
    R = net_adm:ping(list_to_atom(N)),
    timer:sleep(4000),
    halt(case R of pang -> 0; pong -> 1 end);
main([N]) ->
    Node = list_to_atom(N),
    pong = wait_ping(Node, 100),
    register(peer, self()),
    {control, Node} ! {ready, self()},
    loop(Node).

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
            {ok, Gs} = gen_server:start(?MODULE, [], []),
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
        {From, stop} ->
            From ! stopped,
            timer:sleep(200),
            halt(0)
    after 120000 ->
            halt(2)
    end,
    loop(Node).
