/*
 * peer_util.c: the peer nodes' shared parts (peer_util.h).
 */
#include "peer_util.h"

#include <signal.h>
#include <sys/wait.h>

void dt_echo(void *arg) {
  (void)arg;
  otpc_register(otpc_atom("echo"), otpc_self());
  for (;;) {
    otpc_buf_t *m;
    if (otpc_receive(NULL, OTPC_INFINITY, &m) != 0) return;
    otpc_pid_t from, self = otpc_self();
    otpc_term_t t = otpc_buf_term(m);
    if (otpc_term_get_pid(otpc_term_tuple_elem(t, 0), &from) == 0) {
      if (otpc_term_atom_eq(otpc_term_tuple_elem(t, 1), "whoami", 6))
        otpc_sendf(from, "{iam, ~p}", &self);
      else
        otpc_send(from, m);
    }
    otpc_buf_unref(m);
  }
}

otpc_buf_t *dt_rpc_args(otpc_term_t args, void *ctx, otpc_buf_t **why) {
  (void)ctx;
  (void)why;
  return otpc_term_fmt("{got, ~t}", args);
}

void dt_stop_peer(pid_t pid) {
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}
