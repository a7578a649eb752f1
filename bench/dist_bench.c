/*
 * dist_bench.c: the distribution on loopback, three pairs of nodes in one
 * run, each pair a sending node and a serving node:
 *
 *   otpc         otpc to otpc (the serving node a forked child)
 *   otpc-erlang  otpc to Erlang (bench/dist_bench.erl's `serve` in erl)
 *   erlang       Erlang to Erlang (dist_bench.erl's client in a second erl)
 *
 * The workloads (see dist_bench.erl, which runs the same ones):
 * dist_send_small (small messages one way), dist_roundtrip (a message and
 * its answer, one at a time), dist_bandwidth_1m (1 MiB binaries one way).
 *
 *   dist_bench [BEAM_DIR]   BEAM_DIR holds dist_bench.beam (default: this
 *                           program's directory); QUICK=1 for short runs;
 *                           DIST_BENCH_PAIRS=otpc,otpc-erlang,erlang and
 *                           DIST_BENCH_ONLY=small|round|big (otpc's side)
 *                           run a part, for profiling;
 *                           DIST_BENCH_TLS=DIR runs the otpc pair over TLS
 *
 * This node runs the embedded epmd on a port of its own, which every other
 * node of the run uses (ERL_EPMD_PORT), so nothing touches the host's
 * epmd. Prints bench/run.sh's BENCH/DESC/GOAL/NOTE lines; a pair that
 * cannot run prints "failed" for its workloads.
 */
#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "otpc.h"

#define BIG_BYTES ((size_t)1 << 20)

/* DIST_BENCH_TLS=DIR: the otpc nodes speak TLS distribution with
 * DIR/node.pem, node.key and ca.pem (tests/dist/tls_certs.sh makes them);
 * for the otpc pair only (the Erlang nodes of the run speak TCP). */
static const otpc_dist_tls_t *bench_tls(void) {
  static char cert[512], key[512], ca[512];
  static otpc_dist_tls_t tls;
  const char *dir = getenv("DIST_BENCH_TLS");
  if (dir == NULL || *dir == 0) return NULL;
  snprintf(cert, sizeof cert, "%s/node.pem", dir);
  snprintf(key, sizeof key, "%s/node.key", dir);
  snprintf(ca, sizeof ca, "%s/ca.pem", dir);
  tls = (otpc_dist_tls_t){.certfile = cert, .keyfile = key, .cafile = ca};
  return &tls;
}

static int runs = 3;
static bool quick;
static size_t n_small = 500000, n_round = 20000, n_big = 500;
static char beam_dir[1024];
static char cookie[] = "dist_bench_cookie";
static uint16_t epmd_port;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------------
 * The serving side, as otpc (the same protocol as dist_bench.erl's serve)
 * ------------------------------------------------------------------------ */

static void sink(void *arg) {
  otpc_pattern_t *start;
  otpc_pattern_compile("{start, ~p, ~l}", &start, NULL);
  for (;;) {
    otpc_buf_t *m;
    otpc_pid_t from;
    int64_t n;
    if (otpc_receive(start, OTPC_INFINITY, &m, &from, &n) != 0) return;
    otpc_buf_unref(m);
    for (int64_t i = 0; i < n; i++) {
      if (otpc_receive(NULL, OTPC_INFINITY, &m) != 0) return;
      otpc_buf_unref(m);
    }
    otpc_sendf(from, "{done, ~l}", n);
  }
}

static void echo(void *arg) {
  for (;;) {
    otpc_buf_t *m;
    if (otpc_receive(NULL, OTPC_INFINITY, &m) != 0) return;
    otpc_term_t t = otpc_buf_term(m);
    otpc_pid_t from;
    size_t arity;
    otpc_term_t e;
    if (otpc_term_get_tuple(t, &arity, &e) == 0 && arity == 2 &&
        otpc_term_get_pid(e, &from) == 0) {
      otpc_builder_t b;
      otpc_builder_init(&b);
      otpc_build_term(&b, otpc_term_next(e));
      otpc_buf_t *x = otpc_builder_finish(&b, NULL);
      if (x) otpc_send(from, x);
      otpc_buf_unref(x);
    }
    otpc_buf_unref(m);
  }
}

static void serve(void *arg) {
  otpc_register(otpc_atom("dist_bench"), otpc_self());
  otpc_pid_t s, e;
  otpc_spawn(sink, NULL, NULL, &s);
  otpc_spawn(echo, NULL, NULL, &e);
  otpc_pattern_t *hello;
  otpc_pattern_compile("{hello, ~p}", &hello, NULL);
  for (;;) {
    otpc_buf_t *m;
    otpc_pid_t from;
    if (otpc_receive(hello, OTPC_INFINITY, &m, &from) != 0) return;
    otpc_buf_unref(m);
    otpc_sendf(from, "{servers, ~p, ~p}", &s, &e);
  }
}

/* The otpc serving node, in a child forked before this process starts
 * its own node; it starts when the parent writes to `go` (the parent's
 * epmd is up then) and lives until killed. */
static pid_t otpc_server(const char *name, int *go_fd) {
  int go[2];
  if (pipe(go) != 0) return -1;
  fflush(stdout);
  pid_t pid = fork();
  if (pid != 0) {
    close(go[0]);
    if (pid < 0) {
      close(go[1]);
      return -1;
    }
    *go_fd = go[1];
    return pid;
  }
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  close(go[1]);
  char c;
  if (read(go[0], &c, 1) != 1) _exit(0);
  const char *sch = getenv("BENCH_SCHEDULERS");
  otpc_node_opts_t n = {.name = name,
                        .cookie = cookie,
                        .schedulers = sch ? (unsigned)atoi(sch) : 0};
  if (otpc_node_start(&n) != 0) _exit(3);
  otpc_dist_opts_t d = {
      .epmd_port = epmd_port, .listen_addr = "127.0.0.1", .tls = bench_tls()};
  if (otpc_dist_start(&d) != 0) _exit(4);
  otpc_spawn(serve, NULL, NULL, NULL);
  for (;;) pause();
}

/* ------------------------------------------------------------------------
 * The sending side, as otpc
 * ------------------------------------------------------------------------ */

typedef struct client {
  otpc_atom_t server;
  const char *system;
  double small, round, big; /* best rates; 0: failed */
} client_t;

static bool wait_done(int64_t n) {
  otpc_pattern_t *done;
  otpc_pattern_compile("{done, ~l}", &done, NULL);
  otpc_buf_t *m;
  int64_t got = -1;
  int rc = otpc_receive(done, 120000, &m, &got);
  otpc_pattern_free(done);
  if (rc == 0) otpc_buf_unref(m);
  return rc == 0 && got == n;
}

static double oneway_small(otpc_pid_t sink) {
  otpc_pid_t self = otpc_self();
  double t0 = now_s();
  otpc_sendf(sink, "{start, ~p, ~l}", &self, (int64_t)n_small);
  otpc_atom_t msg = otpc_atom("msg");
  for (size_t i = 1; i <= n_small; i++) {
    otpc_builder_t b;
    otpc_builder_init(&b);
    otpc_build_tuple(&b, 2);
    otpc_build_atom_id(&b, msg);
    otpc_build_int(&b, (int64_t)i);
    otpc_buf_t *m = otpc_builder_finish(&b, NULL);
    otpc_send(sink, m);
    otpc_buf_unref(m);
  }
  if (!wait_done((int64_t)n_small)) return 0;
  return (double)n_small / (now_s() - t0);
}

static double roundtrip(otpc_pid_t echo) {
  otpc_pid_t self = otpc_self();
  double t0 = now_s();
  for (size_t i = n_round; i > 0; i--) {
    otpc_sendf(echo, "{~p, ~l}", &self, (int64_t)i);
    otpc_buf_t *m;
    int64_t v;
    if (otpc_receive(NULL, 10000, &m) != 0) return 0;
    bool ok = otpc_term_get_int64(otpc_buf_term(m), &v) == 0 && v == (int64_t)i;
    otpc_buf_unref(m);
    if (!ok) return 0;
  }
  return (double)n_round / (now_s() - t0);
}

static double bandwidth(otpc_pid_t sink) {
  uint8_t *bytes = malloc(BIG_BYTES);
  if (bytes == NULL) return 0;
  memset(bytes, 7, BIG_BYTES);
  otpc_builder_t b;
  otpc_builder_init(&b);
  otpc_build_tuple(&b, 2);
  otpc_build_atom(&b, "bin");
  otpc_build_binary(&b, bytes, BIG_BYTES);
  otpc_buf_t *m = otpc_builder_finish(&b, NULL);
  free(bytes);
  if (m == NULL) return 0;
  otpc_pid_t self = otpc_self();
  double t0 = now_s();
  otpc_sendf(sink, "{start, ~p, ~l}", &self, (int64_t)n_big);
  for (size_t i = 0; i < n_big; i++) otpc_send(sink, m);
  otpc_buf_unref(m);
  if (!wait_done((int64_t)n_big)) return 0;
  return (double)(n_big * BIG_BYTES) / 1e6 / (now_s() - t0);
}

static void client(void *arg) {
  client_t *c = arg;
  for (int i = 0; i < 100 && otpc_net_ping(c->server, 2000) != 1; i++)
    otpc_sleep(100); /* the server starts */
  otpc_pid_t self = otpc_self(), s, e;
  otpc_buf_t *hello = otpc_term_fmt("{hello, ~p}", &self);
  otpc_pattern_t *servers;
  otpc_pattern_compile("{servers, ~p, ~p}", &servers, NULL);
  otpc_buf_t *m;
  /* A node answers pings before its dist_bench process is registered, and
   * a send to a name not yet there is dropped: say hello until answered
   * (the extra answers are flushed). */
  int rc = OTPC_ETIMEDOUT;
  for (int i = 0; i < 100 && rc != 0; i++) {
    otpc_send_remote(otpc_atom("dist_bench"), c->server, hello);
    rc = otpc_receive(servers, 100, &m, &s, &e);
  }
  otpc_buf_unref(hello);
  if (rc != 0) {
    otpc_pattern_free(servers);
    return;
  }
  otpc_buf_unref(m);
  otpc_pid_t s2, e2;
  while (otpc_receive(servers, 100, &m, &s2, &e2) == 0) otpc_buf_unref(m);
  otpc_pattern_free(servers);
  const char *only = getenv("DIST_BENCH_ONLY"); /* small, round or big */
  for (int r = 0; r < runs && (!only || strcmp(only, "small") == 0); r++) {
    double v = oneway_small(s);
    if (v > c->small) c->small = v;
  }
  for (int r = 0; r < runs && (!only || strcmp(only, "round") == 0); r++) {
    double v = roundtrip(e);
    if (v > c->round) c->round = v;
  }
  for (int r = 0; r < runs && (!only || strcmp(only, "big") == 0); r++) {
    double v = bandwidth(s);
    if (v > c->big) c->big = v;
  }
}

static void report(const char *w, const char *system, double v,
                   const char *unit) {
  if (v > 0)
    printf("BENCH %s %s %.1f %s\n", w, system, v, unit);
  else
    printf("BENCH %s %s failed %s\n", w, system, unit);
  fflush(stdout);
}

/* DIST_BENCH_PAIRS (e.g. "otpc,erlang") runs only those pairs. */
static bool wanted(const char *system) {
  const char *w = getenv("DIST_BENCH_PAIRS");
  if (w == NULL || *w == 0) return true;
  size_t n = strlen(system);
  for (const char *p = w; (p = strstr(p, system)) != NULL; p += n)
    if ((p == w || p[-1] == ',') && (p[n] == 0 || p[n] == ',')) return true;
  return false;
}

static void run_client(const char *server, const char *system) {
  if (!wanted(system)) return;
  client_t c = {otpc_atom(server), system, 0, 0, 0};
  otpc_pid_t p;
  if (otpc_spawn(client, &c, NULL, &p) == 0)
    while (otpc_is_alive(p)) usleep(10000);
  report("dist_send_small", system, c.small, "msg/s");
  report("dist_roundtrip", system, c.round, "ops/s");
  report("dist_bandwidth_1m", system, c.big, "MB/s");
}

/* ------------------------------------------------------------------------
 * Erlang nodes
 * ------------------------------------------------------------------------ */

/* erl -sname name ... -run dist_bench ARGS..., stdout to ours (the
 * client's BENCH lines), stderr to ours. */
static pid_t start_erl(const char *name, const char *const *args) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid != 0) return pid;
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  char port[16];
  snprintf(port, sizeof port, "%u", epmd_port);
  setenv("ERL_EPMD_PORT", port, 1);
  const char *sch = getenv("BENCH_SCHEDULERS");
  char s[32];
  snprintf(s, sizeof s, "%s:%s", sch ? sch : "2", sch ? sch : "2");
  const char *argv[32];
  int n = 0;
  argv[n++] = "erl";
  argv[n++] = "-noshell";
  argv[n++] = "+S";
  argv[n++] = s;
  argv[n++] = "-sname";
  argv[n++] = name;
  argv[n++] = "-setcookie";
  argv[n++] = cookie;
  argv[n++] = "-start_epmd";
  argv[n++] = "false";
  argv[n++] = "-pa";
  argv[n++] = beam_dir;
  argv[n++] = "-run";
  argv[n++] = "dist_bench";
  for (int i = 0; args[i] && n < 31; i++) argv[n++] = args[i];
  argv[n] = NULL;
  execvp("erl", (char *const *)argv);
  _exit(127);
}

static void stop_child(pid_t pid) {
  if (pid <= 0) return;
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

static void describe(void) {
  printf(
      "DESC dist_send_small %zu messages {msg, I} one way from a process "
      "to a process on the other node, until the receiver has the last "
      "one; messages per second\n",
      n_small);
  printf(
      "DESC dist_roundtrip a message {Pid, I} to an echo process on the "
      "other node and its answer, %zu times one after the other; round "
      "trips per second\n",
      n_round);
  printf(
      "DESC dist_bandwidth_1m %zu messages {bin, Binary} of 1 MiB one way, "
      "until the receiver has the last one; MB (10^6 bytes) per second\n",
      n_big);
  printf(
      "GOAL dist_send_small otpc to otpc >= 5x Erlang to Erlang; otpc to "
      "Erlang >= Erlang to Erlang\n");
  printf("GOAL dist_roundtrip otpc to Erlang >= Erlang to Erlang\n");
  printf(
      "GOAL dist_bandwidth_1m otpc to otpc >= Erlang to Erlang; otpc to "
      "Erlang >= Erlang to Erlang\n");
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  const char *q = getenv("QUICK");
  quick = q && *q && strcmp(q, "0") != 0;
  if (quick) {
    runs = 1;
    n_small = 100000;
    n_round = 5000;
    n_big = 100;
  }
  if (argc > 1) {
    snprintf(beam_dir, sizeof beam_dir, "%s", argv[1]);
  } else {
    char self[1024];
    snprintf(self, sizeof self, "%s", argv[0]);
    snprintf(beam_dir, sizeof beam_dir, "%s", dirname(self));
  }
  epmd_port = (uint16_t)(30000 + getpid() % 20000);
  describe();
  char a[64], b[64], e1[64], e2[64];
  int id = (int)getpid();
  snprintf(a, sizeof a, "distbench_a%d@localhost", id);
  snprintf(b, sizeof b, "distbench_b%d@localhost", id);
  snprintf(e1, sizeof e1, "distbench_e%d@localhost", id);
  snprintf(e2, sizeof e2, "distbench_c%d", id);
  int go = -1;
  pid_t ob = otpc_server(b, &go);
  const char *sch = getenv("BENCH_SCHEDULERS");
  otpc_node_opts_t n = {
      .name = a, .cookie = cookie, .schedulers = sch ? (unsigned)atoi(sch) : 0};
  otpc_dist_opts_t d = {
      .epmd_port = epmd_port, .listen_addr = "127.0.0.1", .tls = bench_tls()};
  if (otpc_node_start(&n) != 0 || otpc_dist_start(&d) != 0) {
    fprintf(stderr, "dist_bench: cannot start a node\n");
    return 1;
  }
  /* the first pings of a server still starting are refused: no notices */
  otpc_logger_set_primary_level(OTPC_LEVEL_WARNING);
  if (go >= 0 && write(go, "g", 1) == 1)
    run_client(b, "otpc");
  else
    run_client(b, "otpc"); /* reports failed */
  stop_child(ob);

  /* One Erlang server for both pairs that send to Erlang. */
  const char *serve[] = {"serve", NULL};
  pid_t es =
      wanted("otpc-erlang") || wanted("erlang") ? start_erl(e1, serve) : -1;
  run_client(e1, "otpc-erlang");
  char nruns[8];
  snprintf(nruns, sizeof nruns, "%d", runs);
  const char *cl[] = {"main", e1, nruns, "erlang", quick ? "quick" : NULL,
                      NULL};
  pid_t ec = wanted("erlang") ? start_erl(e2, cl) : -1;
  int st = 0;
  if (ec > 0) waitpid(ec, &st, 0);
  if (ec > 0 && (!WIFEXITED(st) || WEXITSTATUS(st) != 0)) {
    report("dist_send_small", "erlang", 0, "msg/s");
    report("dist_roundtrip", "erlang", 0, "ops/s");
    report("dist_bandwidth_1m", "erlang", 0, "MB/s");
  }
  stop_child(es);
  otpc_dist_stop();
  otpc_node_stop();
  return 0;
}
