/*
 * otp_bench.c: otpc's side of the OTP behaviour benchmark (otp_bench.erl
 * is Erlang's; both run the same workloads with the same sizes and print
 * the same workload names).
 *
 *   otp_call_1             one client calls one gen_server: the request is
 *                          an integer, the reply that integer plus one.
 *                          Calls per second.
 *   otp_call_100x100       100 clients, each calling its own server (100
 *                          servers), all at once: total calls per second
 *   otp_restart_latency    a one_for_one supervisor with one registered
 *                          gen_server child; the child is killed and the
 *                          time until whereis gives a new pid that answers
 *                          a call is measured, many times: the median, and
 *                          the 99th percentile as otp_restart_latency_p99
 *   otp_idle_gen_server    1M idle gen_servers (QUICK: 10k): RSS growth
 *                          per server (a million, as rt_bench's idle
 *                          rows: with 100k, the few MiB of chunks that
 *                          the buffer pools map once showed as 40 B more
 *                          per server)
 *
 * Calls use an infinite timeout on both sides (gen_server:call/3 with
 * infinity), so neither arms a timer per call. The logger's primary level
 * is none on both sides, so the supervisor's child_terminated reports cost
 * one level check and print nothing.
 *
 * As in rt_bench.c, the harness (harness.c) runs every workload in a
 * forked child with a fresh node (BENCH_SCHEDULERS schedulers, else the
 * online cores), and the workloads that measure a throughput or a time
 * run 3 times (QUICK=1: once), in passes over all the workloads; the best
 * run is reported.
 * Output for bench/run.sh:
 *
 *   BENCH <workload> otpc <value> <unit>     (value "failed"/"timeout" too)
 *   DESC / GOAL <workload> <text>
 *   NOTE  <workload> otpc <text>
 *
 *   otp_bench [workload...]   runs only the named workloads
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "otpc/logger.h"
#include "otpc/otp.h"
#include "otpc/supervisor.h"

/* ------------------------------------------------------------------------
 * Parameters (otp_bench.erl uses the same)
 * ------------------------------------------------------------------------ */

static long call1_n(void) { return bench_quick ? 100000 : 1000000; }
#define PAIRS 100
static long pair_calls(void) { return bench_quick ? 2000 : 10000; }
#define WARMUP_CALLS 1000
#define RESTART_ROUND 100 /* restarts per supervisor */
static int restart_rounds(void) { return bench_quick ? 5 : 20; }
static long idle_gs_n(void) { return bench_quick ? 10000 : 1000000; }

/* ------------------------------------------------------------------------
 * Plumbing: a node, a driver, messages
 * ------------------------------------------------------------------------ */

/* The main thread starts a node and a driver process, and waits for the
 * driver to say it is done (bench_signal_done). */
static void run_driver(void (*driver)(void *), double timeout_s) {
  bench_node_start(0);
  /* Crash reports are built only to be dropped: see the top. */
  otpc_logger_set_primary_level(OTPC_LEVEL_NONE);
  int rc = otpc_spawn(driver, NULL, NULL, NULL);
  if (rc != 0) bench_fail("otpc_spawn: %s", otpc_strerror(rc));
  bench_wait_done(timeout_s);
  bench_node_stop();
}

static otpc_buf_t *int_buf(int64_t v) {
  otpc_builder_t b;
  otpc_builder_init(&b);
  otpc_build_int(&b, v);
  otpc_buf_t *buf = otpc_builder_finish(&b, NULL);
  if (buf == NULL) bench_fail("out of memory building an integer");
  return buf;
}

/* ------------------------------------------------------------------------
 * The server: replies Request + 1
 * ------------------------------------------------------------------------ */

static void inc_init(void *arg, void **state, otpc_gs_result_t *r) {
  (void)r;
  *state = arg;
}

static void inc_call(void **state, otpc_term_t req, const otpc_from_t *from,
                     otpc_gs_result_t *r) {
  (void)state;
  (void)from;
  int64_t v = 0;
  otpc_term_get_int64(req, &v);
  otpc_gs_reply(r, int_buf(v + 1));
}

static const otpc_gen_server_t inc_server = {
    .name = "otp_bench_inc", .init = inc_init, .handle_call = inc_call};

static otpc_pid_t start_server(void) {
  otpc_pid_t pid;
  int rc = otpc_gen_server_start(&inc_server, NULL, NULL, &pid, NULL);
  if (rc != 0) bench_fail("otpc_gen_server_start: %s", otpc_strerror(rc));
  return pid;
}

/* n calls, each sending v and checking that v + 1 comes back. */
static void call_loop(otpc_pid_t server, long n) {
  int64_t v = 0;
  for (long i = 0; i < n; i++) {
    otpc_buf_t *req = int_buf(v), *rep = NULL;
    int rc = otpc_gen_server_call(server, req, OTPC_INFINITY, &rep);
    otpc_buf_unref(req);
    int64_t got = -1;
    if (rc != 0 || otpc_term_get_int64(otpc_buf_term(rep), &got) != 0 ||
        got != v + 1)
      bench_fail("call %ld: %s, %lld for %lld", i, otpc_strerror(rc),
                 (long long)got, (long long)v);
    otpc_buf_unref(rep);
    v = got;
  }
}

static otpc_buf_t *receive_any(void) {
  otpc_buf_t *msg;
  int rc = otpc_receive(NULL, OTPC_INFINITY, &msg);
  if (rc != 0) bench_fail("otpc_receive: %s", otpc_strerror(rc));
  return msg;
}

/* ------------------------------------------------------------------------
 * Calls: one pair, and 100 pairs
 * ------------------------------------------------------------------------ */

static double drv_secs;

static void call1_driver(void *arg) {
  (void)arg;
  otpc_pid_t server = start_server();
  call_loop(server, WARMUP_CALLS);
  bench_stage("otp_call_1: %ld calls", call1_n());
  double t0 = bench_now();
  call_loop(server, call1_n());
  drv_secs = bench_now() - t0;
  bench_signal_done();
}

static void w_call_1(void) {
  run_driver(call1_driver, bench_quick ? 30 : 120);
  bench_result("otp_call_1", (double)call1_n() / drv_secs / 1e6, "Mops/s", 0);
}

static otpc_pid_t drv_pid;
static otpc_pid_t pair_server[PAIRS];

/* Warms up, says ready, waits for go, calls, says done. */
static void pair_client(void *arg) {
  otpc_pid_t server = pair_server[(intptr_t)arg];
  call_loop(server, WARMUP_CALLS / 10);
  otpc_sendf(drv_pid, "ready");
  otpc_buf_unref(receive_any());
  call_loop(server, pair_calls());
  otpc_sendf(drv_pid, "done");
}

static void pairs_driver(void *arg) {
  (void)arg;
  otpc_pid_t client[PAIRS];
  drv_pid = otpc_self();
  bench_stage("otp_call_100x100: starting %d servers and clients", PAIRS);
  for (intptr_t i = 0; i < PAIRS; i++) {
    pair_server[i] = start_server();
    int rc = otpc_spawn(pair_client, (void *)i, NULL, &client[i]);
    if (rc != 0) bench_fail("otpc_spawn: %s", otpc_strerror(rc));
  }
  for (int i = 0; i < PAIRS; i++) otpc_buf_unref(receive_any()); /* ready */
  bench_stage("otp_call_100x100: %d x %ld calls", PAIRS, pair_calls());
  double t0 = bench_now();
  for (int i = 0; i < PAIRS; i++) otpc_sendf(client[i], "go");
  for (int i = 0; i < PAIRS; i++) otpc_buf_unref(receive_any()); /* done */
  drv_secs = bench_now() - t0;
  bench_signal_done();
}

static void w_call_100x100(void) {
  run_driver(pairs_driver, bench_quick ? 30 : 120);
  bench_result("otp_call_100x100",
               (double)PAIRS * (double)pair_calls() / drv_secs / 1e6, "Mops/s",
               0);
}

/* ------------------------------------------------------------------------
 * Restart latency
 * ------------------------------------------------------------------------ */

static double *restart_us; /* one sample per restart */
static otpc_atom_t worker_name;

/* Polls until the name gives a pid other than old that answers a call. */
static void wait_replacement(otpc_pid_t old, otpc_buf_t *ping) {
  for (;;) {
    otpc_pid_t p;
    otpc_buf_t *rep = NULL;
    if (otpc_whereis(worker_name, &p) == 0 && !otpc_pid_eq(p, old) &&
        otpc_gen_server_call(p, ping, OTPC_INFINITY, &rep) == 0) {
      otpc_buf_unref(rep);
      return;
    }
    otpc_buf_unref(rep);
    otpc_yield();
  }
}

static void restart_driver(void *arg) {
  (void)arg;
  otpc_sup_gs_child_t child = {&inc_server, NULL, worker_name};
  otpc_child_spec_t spec = {.id = "worker",
                            .start = otpc_sup_start_gen_server,
                            .arg = &child,
                            .restart = OTPC_PERMANENT,
                            .shutdown = OTPC_SHUTDOWN_BRUTAL_KILL,
                            .type = OTPC_WORKER};
  /* Never gives up: a round makes RESTART_ROUND restarts. A supervisor
   * per round keeps its list of recent restarts (scanned at each restart,
   * in both systems) short. */
  otpc_sup_spec_t sup = {.strategy = OTPC_ONE_FOR_ONE,
                         .intensity = RESTART_ROUND + 10,
                         .period_ms = 5000,
                         .children = &spec,
                         .nchildren = 1};
  otpc_buf_t *kill = otpc_term_fmt("kill"), *ping = int_buf(0);
  long k = 0;
  for (int round = 0; round < restart_rounds(); round++) {
    bench_stage("otp_restart_latency: round %d", round);
    otpc_pid_t sp;
    int rc = otpc_supervisor_start(&sup, OTPC_ATOM_NONE, &sp, NULL);
    if (rc != 0) bench_fail("otpc_supervisor_start: %s", otpc_strerror(rc));
    for (int i = 0; i < RESTART_ROUND; i++) {
      otpc_pid_t old;
      if (otpc_whereis(worker_name, &old) != 0) bench_fail("no worker");
      double t0 = bench_now();
      otpc_exit_signal(old, otpc_buf_term(kill));
      wait_replacement(old, ping);
      restart_us[k++] = (bench_now() - t0) * 1e6;
    }
    rc = otpc_gen_server_stop(sp, NULL, OTPC_INFINITY);
    if (rc != 0) bench_fail("otpc_gen_server_stop: %s", otpc_strerror(rc));
  }
  otpc_buf_unref(kill);
  otpc_buf_unref(ping);
  bench_signal_done();
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void w_restart(void) {
  long n = (long)restart_rounds() * RESTART_ROUND;
  restart_us = calloc((size_t)n, sizeof *restart_us);
  if (restart_us == NULL) bench_fail("out of memory");
  worker_name = otpc_atom("otp_bench_worker");
  run_driver(restart_driver, bench_quick ? 30 : 120);
  qsort(restart_us, (size_t)n, sizeof *restart_us, cmp_double);
  bench_result("otp_restart_latency", restart_us[n / 2], "us", 1);
  bench_result("otp_restart_latency_p99", restart_us[(n * 99 + 99) / 100 - 1],
               "us", 1);
  bench_note(
      "%ld restarts (%d supervisors); min %.1f us, max %.1f us; logger "
      "primary level none (otpc_logger_set_primary_level), so the "
      "child_terminated reports are neither built nor printed",
      n, restart_rounds(), restart_us[0], restart_us[n - 1]);
}

/* ------------------------------------------------------------------------
 * Idle servers
 * ------------------------------------------------------------------------ */

static void idle_driver(void *arg) {
  (void)arg;
  long n = idle_gs_n();
  otpc_pid_t *pids = calloc((size_t)n, sizeof *pids);
  if (pids == NULL) bench_fail("out of memory");
  memset(pids, 0, (size_t)n * sizeof *pids); /* paged in before we count */
  otpc_sleep(100);
  bench_stage("otp_idle_gen_server: starting %ld servers", n);
  long rss0 = bench_rss_bytes();
  double t0 = bench_now();
  for (long i = 0; i < n; i++) pids[i] = start_server();
  double secs = bench_now() - t0;
  otpc_sleep(100); /* let the schedulers settle (pools, caches) */
  long rss1 = bench_rss_bytes();
  otpc_proc_info_t info = {0};
  otpc_process_info(pids[0], &info);
  size_t mem0 = info.memory;
  /* What one call each adds: the call's monitor leaves its mark. */
  bench_stage("otp_idle_gen_server: one call to each of %ld servers", n);
  for (long i = 0; i < n; i++) call_loop(pids[i], 1);
  otpc_sleep(100);
  long rss2 = bench_rss_bytes();
  otpc_process_info(pids[0], &info);
  bench_result("otp_idle_gen_server", (double)(rss1 - rss0) / (double)n, "B",
               1);
  bench_note(
      "%ld servers started in %.0f ms; RSS +%.1f MiB; process_info memory "
      "%zu B; after one call to each: %.0f B each by RSS, process_info "
      "memory %zu B",
      n, secs * 1e3, (rss1 - rss0) / 1048576.0, mem0,
      (double)(rss2 - rss0) / (double)n, info.memory);
  free(pids);
  bench_signal_done();
}

static void w_idle(void) { run_driver(idle_driver, bench_quick ? 30 : 120); }

/* ------------------------------------------------------------------------
 * The table of workloads
 * ------------------------------------------------------------------------ */

static const bench_workload_t workloads[] = {
    {"otp_call_1", w_call_1, {"otp_call_1"}, 1, 0, 150,
     {"one client calls one gen_server 1M times (QUICK: 100k): the request "
      "is an integer, the reply the integer plus one; millions of calls per "
      "second. Timeout infinity on both sides"},
     {">= 3x Erlang"}},
    {"otp_call_100x100", w_call_100x100, {"otp_call_100x100"}, 1, 0, 150,
     {"100 clients, each calling its own gen_server (100 servers) 10,000 "
      "times (QUICK: 2,000), all at once: millions of calls per second in "
      "all"},
     {">= 3x Erlang"}},
    {"otp_restart_latency", w_restart,
     {"otp_restart_latency", "otp_restart_latency_p99"}, 1, 0, 150,
     {"a one_for_one supervisor with one registered gen_server child: kill "
      "the child, then time until whereis(Name) gives a new pid that "
      "answers a call (polling, yielding between polls); median of 2,000 "
      "restarts (QUICK: 500), 100 per supervisor, in microseconds. The "
      "logger's primary level is none on both sides",
      "the 99th percentile of the same restarts"},
     {"none set (compare with Erlang)", "none set (compare with Erlang)"}},
    {"otp_idle_gen_server", w_idle, {"otp_idle_gen_server"}, 0, 0, 150,
     {"1M idle gen_servers (QUICK: 10k) started one by one (not linked, "
      "no name): RSS growth per server, bytes"},
     {"<= 256 B"}},
};

int main(int argc, char **argv) {
  static const bench_prog_t prog = {"otp_bench", workloads,
                                    sizeof workloads / sizeof workloads[0], 0};
  return bench_main(&prog, argc, argv);
}
