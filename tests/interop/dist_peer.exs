# dist_peer.exs: the Elixir half of the distribution interop test
# (dist_interop.c --elixir). Run as
#
#   elixir --sname ex_N@localhost --cookie C dist_peer.exs OtpcNode
#
# against an otpc node that has a registered `echo` process, a gen_server
# registered as `calc` ({double, N} -> {doubled, 2N}), a process `control`
# that calls an Elixir GenServer by pid and by {Name, Node} when asked,
# and exports otpc_math:add/2. Prints one line per check and halts with 0
# when all passed.
defmodule DistPeer.Gs do
  use GenServer
  def init(n), do: {:ok, n}
  def handle_call(req, _from, n), do: {:reply, {:elixir_says, req, n}, n + 1}
end

defmodule DistPeer do
  def check(name, ok) do
    IO.puts("#{if ok, do: "ok  ", else: "FAIL"} elixir_#{name}")
    ok
  end

  def ping(node, 0), do: Node.ping(node)

  def ping(node, n) do
    case Node.ping(node) do
      :pong -> :pong
      :pang -> Process.sleep(100); ping(node, n - 1)
    end
  end

  def echo(node) do
    msg = {self(), :from_elixir, %{a: [1, 2]}, "bin", 1.5}
    send({:echo, node}, msg)
    receive do
      ^msg -> true
    after
      5000 -> false
    end
  end

  def erpc_undef(node) do
    try do
      :erpc.call(node, :nope, :f, [])
      false
    rescue
      _ -> true
    end
  end

  def monitor_missing(node) do
    ref = Process.monitor({:nobody, node})
    receive do
      {:DOWN, ^ref, :process, {:nobody, ^node}, :noproc} -> true
    after
      5000 -> false
    end
  end

  # otpc calls an Elixir GenServer by pid, then by {:ex_gs, Node}.
  def otpc_calls_us(node) do
    {:ok, pid} = GenServer.start(DistPeer.Gs, 0, name: :ex_gs)
    send({:control, node}, {:call_me, self(), pid})

    receive do
      {:otpc_called, by_pid, by_name} ->
        by_pid == {:elixir_says, :by_pid, 0} and
          by_name == {:elixir_says, :by_name, 1}
    after
      10000 -> false
    end
  end

  def call_noproc(node) do
    try do
      GenServer.call({:nobody, node}, :x, 5000)
      false
    catch
      :exit, {:noproc, _} -> true
    end
  end

  def main([otpc | _]) do
    node = String.to_atom(otpc)
    results = [
      check("ping", ping(node, 50) == :pong),
      check("nodes", node in Node.list()),
      check("echo", echo(node)),
      check("rpc", :rpc.call(node, :otpc_math, :add, [20, 22]) == 42),
      check("erpc_undef", erpc_undef(node)),
      check("monitor_missing_name", monitor_missing(node)),
      check("calls_otpc_gen_server",
        GenServer.call({:calc, node}, {:double, 21}) == {:doubled, 42}),
      check("call_missing_otpc_name_noproc", call_noproc(node)),
      check("otpc_calls_elixir_gen_server", otpc_calls_us(node))
    ]
    System.halt(if Enum.all?(results), do: 0, else: 1)
  end
end

DistPeer.main(System.argv())
