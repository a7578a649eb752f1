/*
 * ping_pong.c: a few processes talking. A handler process (no stack while
 * idle) answers pings; a sequential process plays a rally against it,
 * monitors it, and stops it at the end. Build and run:
 *
 *   cc ping_pong.c $(pkg-config --cflags --libs otpc) && ./a.out
 */
#include <otpc.h>
#include <stdio.h>

/* The server: one callback per message. */
static int pong_handle(void *state, otpc_buf_t *msg) {
  static otpc_pattern_t *ping;
  if (ping == NULL && otpc_pattern_compile("{ping, ~p, ~i}", &ping, NULL) != 0)
    return OTPC_STOP;
  otpc_pid_t from;
  int n;
  if (otpc_match(ping, otpc_buf_term(msg), &from, &n) != 1)
    return OTPC_STOP; /* anything else: stop, reason normal */
  otpc_sendf(from, "{pong, ~i}", n);
  return OTPC_CONTINUE;
}

static const otpc_handler_t pong_server = {NULL, pong_handle, NULL};

/* The player: a plain C function that blocks in receive. */
static void player(void *arg) {
  otpc_pid_t server, me = otpc_self();
  otpc_spawn_handler(&pong_server, NULL, NULL, &server);
  otpc_register(otpc_atom("pong"), server);
  otpc_ref_t mon;
  otpc_monitor(server, &mon);

  otpc_pattern_t *pong, *down;
  otpc_pattern_compile("{pong, ~i}", &pong, NULL);
  otpc_pattern_compile("{'DOWN', _, process, _, ~t}", &down, NULL);

  int64_t start = otpc_now_ms();
  int rallies = 100000;
  for (int i = 0; i < rallies; i++) {
    otpc_sendf(server, "{ping, ~p, ~i}", &me, i);
    otpc_buf_t *reply;
    int n;
    if (otpc_receive(pong, 1000, &reply, &n) != 0 || n != i) {
      printf("lost the rally at %d\n", i);
      otpc_exit_atom(otpc_atom("lost"));
    }
    otpc_buf_unref(reply);
  }
  int64_t ms = otpc_now_ms() - start;
  printf("%d ping-pong round trips in %lld ms\n", rallies, (long long)ms);

  otpc_buf_t *stop = otpc_term_fmt("stop");
  otpc_send_name(otpc_atom("pong"), stop);
  otpc_buf_unref(stop);
  otpc_buf_t *msg;
  otpc_term_t reason;
  if (otpc_receive(down, 1000, &msg, &reason) == 0) {
    printf("server went down: ");
    otpc_term_fprint(stdout, reason);
    printf("\n");
    otpc_buf_unref(msg);
  }
  otpc_pattern_free(pong);
  otpc_pattern_free(down);
}

int main(void) { return otpc_main(NULL, player, NULL); }
