/*
 * echo_node.c: a small otpc node for Erlang and Elixir shells (and the
 * tests) to talk to. It owns nothing but what it shows:
 *
 *   - `echo`, a registered gen_server: every call is answered with the
 *     request itself (gen_server:call({echo, Node}, X) =:= X), and every
 *     {Pid, Msg} message is answered by sending Msg to Pid;
 *   - echo:reverse/1 for rpc:call: a list or a binary, reversed
 *     (anything else fails with badarg).
 *
 *   echo_node --name echo@localhost --cookie secret [--hidden]
 *             [--ticktime SECONDS]
 *
 * A name without '@' gets this host's short name, as `erl -sname` does;
 * without --cookie it is ~/.erlang.cookie. The node registers with the
 * host's epmd ($ERL_EPMD_PORT, else 4369), or runs an embedded one;
 * --ticktime is its net_ticktime (default 60, as Erlang's). It
 * prints "echo_node: NAME up" once it can be reached and runs until
 * SIGTERM or SIGINT, then stops distribution and the node and exits 0.
 */
#include <otpc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the echo server ------------------------------------------------- */

static void echo_init(void *arg, void **state, otpc_gs_result_t *r) {}

static void echo_call(void **state, otpc_term_t req, const otpc_from_t *from,
                      otpc_gs_result_t *r) {
  otpc_gs_replyf(r, "~t", req);
}

/* {Pid, Msg}: Msg goes back to Pid. Anything else is ignored. */
static void echo_info(void **state, otpc_term_t msg, otpc_gs_result_t *r) {
  size_t arity;
  otpc_term_t first;
  otpc_pid_t to;
  if (otpc_term_get_tuple(msg, &arity, &first) != 0 || arity != 2 ||
      otpc_term_get_pid(first, &to) != 0)
    return;
  otpc_buf_t *back = otpc_term_fmt("~t", otpc_term_next(first));
  if (back == NULL) return;
  otpc_send(to, back);
  otpc_buf_unref(back);
}

static const otpc_gen_server_t echo_server = {
    .name = "echo",
    .init = echo_init,
    .handle_call = echo_call,
    .handle_info = echo_info,
};

/* ---- echo:reverse/1 -------------------------------------------------- */

static otpc_buf_t *reverse_list(otpc_term_t list, size_t n) {
  otpc_term_t *elems = malloc((n ? n : 1) * sizeof *elems);
  if (elems == NULL) return NULL;
  otpc_list_iter_t it;
  otpc_term_list_iter(list, &it);
  for (size_t i = 0; i < n; i++) otpc_list_next(&it, &elems[i]);
  otpc_builder_t b;
  otpc_builder_init(&b);
  if (n > 0) otpc_build_list(&b, n);
  for (size_t i = n; i-- > 0;) otpc_build_term(&b, elems[i]);
  otpc_build_nil(&b);
  free(elems);
  return otpc_builder_finish(&b, NULL);
}

static otpc_buf_t *reverse_binary(const uint8_t *d, size_t n) {
  uint8_t *out = malloc(n ? n : 1);
  if (out == NULL) return NULL;
  for (size_t i = 0; i < n; i++) out[i] = d[n - 1 - i];
  otpc_buf_t *res = otpc_term_fmt("~b", out, n);
  free(out);
  return res;
}

static otpc_buf_t *echo_reverse(otpc_term_t args, void *ctx,
                                otpc_buf_t **reason) {
  otpc_list_iter_t it;
  otpc_term_t x, more;
  size_t n;
  const uint8_t *d;
  unsigned bits;
  if (otpc_term_list_iter(args, &it) == 0 && otpc_list_next(&it, &x) &&
      !otpc_list_next(&it, &more)) {
    if (otpc_term_list_length(x, &n) == 0) return reverse_list(x, n);
    if (otpc_term_get_binary(x, &d, &n, &bits) == 0 && bits == 8)
      return reverse_binary(d, n);
  }
  *reason = otpc_term_fmt("badarg");
  return NULL;
}

/* ---- main ------------------------------------------------------------ */

static int start_rc = -1;
static otpc_pid_t echo_pid;

static void starter(void *arg) {
  otpc_gs_opts_t o = {.name = otpc_atom("echo")};
  start_rc = otpc_gen_server_start(&echo_server, NULL, &o, &echo_pid, NULL);
}

static void stopper(void *arg) {
  otpc_gen_server_stop(echo_pid, NULL, 5000);
}

/* Runs fn in a process and waits until it has ended. */
static int run_proc(void (*fn)(void *)) {
  otpc_pid_t p;
  int rc = otpc_spawn(fn, NULL, NULL, &p);
  while (rc == 0 && otpc_is_alive(p)) usleep(1000);
  return rc;
}

static int usage(void) {
  fprintf(stderr,
          "usage: echo_node --name NAME [--cookie COOKIE] [--hidden]\n"
          "                 [--ticktime SECONDS]\n"
          "                 [--tls-cert PEM [--tls-key PEM] [--tls-ca PEM]]\n");
  return 2;
}

int main(int argc, char **argv) {
  const char *name = NULL, *cookie = NULL;
  bool hidden = false;
  unsigned ticktime = 0;
  otpc_dist_tls_t tls = {0};
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
      name = argv[++i];
    else if (strcmp(argv[i], "--cookie") == 0 && i + 1 < argc)
      cookie = argv[++i];
    else if (strcmp(argv[i], "--hidden") == 0)
      hidden = true;
    else if (strcmp(argv[i], "--ticktime") == 0 && i + 1 < argc &&
             atoi(argv[i + 1]) > 0)
      ticktime = (unsigned)atoi(argv[++i]);
    else if (strcmp(argv[i], "--tls-cert") == 0 && i + 1 < argc)
      tls.certfile = argv[++i];
    else if (strcmp(argv[i], "--tls-key") == 0 && i + 1 < argc)
      tls.keyfile = argv[++i];
    else if (strcmp(argv[i], "--tls-ca") == 0 && i + 1 < argc)
      tls.cafile = argv[++i];
    else
      return usage();
  }
  if (name == NULL || ((tls.keyfile || tls.cafile) && !tls.certfile))
    return usage();
  char full[256];
  if (strchr(name, '@') == NULL) {
    char host[200] = "localhost";
    gethostname(host, sizeof host - 1);
    host[strcspn(host, ".")] = '\0';
    snprintf(full, sizeof full, "%s@%s", name, host);
    name = full;
  }
  /* The threads the node starts inherit this mask: the signals wait for
   * sigwait() below. */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);

  otpc_node_opts_t no = {.name = name, .cookie = cookie};
  int rc = otpc_node_start(&no);
  if (rc != 0) {
    fprintf(stderr, "echo_node: node start: %s\n", otpc_strerror(rc));
    return 1;
  }
  otpc_rpc_export("echo", "reverse", echo_reverse, NULL);
  otpc_dist_opts_t d = {.hidden = hidden,
                        .net_ticktime = ticktime,
                        .tls = tls.certfile ? &tls : NULL};
  rc = otpc_dist_start(&d);
  if (rc == 0) rc = run_proc(starter);
  if (rc != 0 || start_rc != 0) {
    fprintf(stderr, "echo_node: %s: %s\n", rc ? "distribution" : "echo",
            otpc_strerror(rc ? rc : start_rc));
    otpc_dist_stop();
    otpc_node_stop();
    return 1;
  }
  printf("echo_node: %s up (port %u)\n", name, otpc_dist_port());
  fflush(stdout);
  int sig;
  sigwait(&stop, &sig);
  printf("echo_node: %s, stopping\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  fflush(stdout);
  run_proc(stopper); /* terminate runs, as in an orderly shutdown */
  otpc_dist_stop();
  otpc_node_stop();
  return 0;
}
