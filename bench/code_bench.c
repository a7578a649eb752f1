/*
 * code_bench.c: the pause a client sees while a module is upgraded under
 * load (code_bench.erl is Erlang's side, with the same workload names).
 *
 * A gen_server of the module code_bench (code_bench_mod.c, built as
 * code_bench_v1.so and code_bench_v2.so) serves CLIENTS clients that call
 * it back to back (request N, reply N + 1, checked). Each call's latency
 * is recorded with its start time. Three phases, each with fresh clients:
 *
 *   steady    no upgrade: the latency without one
 *   auto      50 upgrades (QUICK: 10), v1 -> v2 -> v1 ..., each
 *             otpc_code_load, then a call of the upgrader's own that the
 *             server answers once it has moved (at its next dispatch,
 *             through code_change), then a soft purge; the default path
 *   sys       the same with the explicit path, as Erlang's release
 *             handler does it: sys:suspend, load, sys:change_code,
 *             sys:resume
 *
 * An upgrade's window runs from the start of the load (or the suspend) to
 * the server's move (or the resume); the calls that overlap a window are
 * the ones "during an upgrade". Printed, for bench/run.sh:
 *
 *   BENCH code_call_p99 / code_call_max                  steady phase
 *   BENCH code_call_p99_upgrade / _max_upgrade           calls during auto
 *   BENCH code_call_p99_upgrade_sys / _max_upgrade_sys   calls during sys
 *   BENCH code_upgrade_time / code_upgrade_time_sys      median window
 *
 * QUICK=1: shorter phases, fewer upgrades. One run (a maximum is not a
 * figure to take the best of).
 */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "otpc.h"

#define CLIENTS 4
#define MAX_SAMPLES ((size_t)1 << 20) /* per client and phase */
#define MAX_WINDOWS 256

typedef struct sample {
  int64_t start, dur; /* ns */
} sample_t;

typedef struct window {
  int64_t start, end; /* ns */
} window_t;

static bool quick;
static otpc_pid_t server;
static _Atomic bool stop_clients;
static _Atomic int clients_done, bad_replies;
static sample_t *samples[CLIENTS];
static size_t nsamples[CLIENTS];
static window_t windows[MAX_WINDOWS];
static int nwindows;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void client(void *arg) {
  int id = (int)(intptr_t)arg;
  int64_t n = 0;
  while (!atomic_load_explicit(&stop_clients, memory_order_relaxed)) {
    otpc_buf_t *req = otpc_term_fmt("~l", (long long)n), *reply = NULL;
    int64_t t0 = now_ns();
    int rc = otpc_gen_server_call(server, req, OTPC_INFINITY, &reply);
    int64_t t1 = now_ns();
    int64_t got = -1;
    if (rc == 0) otpc_term_get_int64(otpc_buf_term(reply), &got);
    if (got != n + 1) atomic_fetch_add(&bad_replies, 1);
    otpc_buf_unref(req);
    otpc_buf_unref(reply);
    if (nsamples[id] < MAX_SAMPLES)
      samples[id][nsamples[id]++] = (sample_t){t0, t1 - t0};
    n++;
  }
  atomic_fetch_add(&clients_done, 1);
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static bool in_window(const sample_t *s) {
  for (int i = 0; i < nwindows; i++)
    if (s->start <= windows[i].end && s->start + s->dur >= windows[i].start)
      return true;
  return false;
}

/* p99 and max (us) of the samples, all of them or those in a window. */
static size_t stats(bool windowed, double *p99, double *max) {
  size_t n = 0, total = 0;
  *p99 = *max = 0;
  for (int c = 0; c < CLIENTS; c++) total += nsamples[c];
  int64_t *d = malloc((total ? total : 1) * sizeof *d);
  if (d == NULL) return 0;
  for (int c = 0; c < CLIENTS; c++)
    for (size_t i = 0; i < nsamples[c]; i++)
      if (!windowed || in_window(&samples[c][i])) d[n++] = samples[c][i].dur;
  if (n > 0) {
    qsort(d, n, sizeof *d, cmp_i64);
    *p99 = d[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] / 1e3;
    *max = d[n - 1] / 1e3;
  }
  free(d);
  return n;
}

static double median_window_us(void) {
  int64_t w[MAX_WINDOWS];
  for (int i = 0; i < nwindows; i++) w[i] = windows[i].end - windows[i].start;
  qsort(w, (size_t)nwindows, sizeof *w, cmp_i64);
  return nwindows ? w[nwindows / 2] / 1e3 : 0;
}

static void start_clients(void) {
  atomic_store(&stop_clients, false);
  atomic_store(&clients_done, 0);
  for (int c = 0; c < CLIENTS; c++) {
    nsamples[c] = 0;
    otpc_pid_t p;
    if (otpc_spawn(client, (void *)(intptr_t)c, NULL, &p) != 0) exit(1);
  }
}

static void stop_and_wait(void) {
  atomic_store(&stop_clients, true);
  while (atomic_load(&clients_done) < CLIENTS) otpc_sleep(1);
}

static const char *version_path(int i) {
  return i % 2 ? CODE_BENCH_DIR "/code_bench_v2.so"
               : CODE_BENCH_DIR "/code_bench_v1.so";
}

static void load_or_die(const char *path) {
  otpc_code_error_t err;
  int rc = otpc_code_load(path, &err);
  if (rc != 0) {
    fprintf(stderr, "code_bench: load %s: %s\n", path, err.message);
    exit(1);
  }
}

/* One upgrade the default way: load; the server moves at its next
 * dispatch, at the latest when it takes this call of ours, so its reply
 * ends the window (polling the code server instead would contend for the
 * module's lock with the move itself). */
static void upgrade_auto(int i) {
  otpc_buf_t *req = otpc_term_fmt("0"), *reply = NULL;
  window_t *w = &windows[nwindows++];
  w->start = now_ns();
  load_or_die(version_path(i));
  if (otpc_gen_server_call(server, req, OTPC_INFINITY, &reply) != 0) exit(1);
  w->end = now_ns();
  otpc_buf_unref(req);
  otpc_buf_unref(reply);
  if (otpc_code_soft_purge("code_bench") != 0) {
    fprintf(stderr, "code_bench: the server did not move\n");
    exit(1);
  }
}

/* One upgrade as the release handler does it. */
static void upgrade_sys(int i) {
  otpc_term_t none = {NULL, 0, 0};
  otpc_buf_t *old = otpc_term_fmt("~i", i % 2 ? 1 : 2), *why = NULL;
  window_t *w = &windows[nwindows++];
  w->start = now_ns();
  if (otpc_sys_suspend(server, 5000) != 0) exit(1);
  load_or_die(version_path(i));
  if (otpc_sys_change_code(server, "code_bench", otpc_buf_term(old), none, 5000,
                           &why) != 0)
    exit(1);
  if (otpc_sys_resume(server, 5000) != 0) exit(1);
  w->end = now_ns();
  otpc_buf_unref(old);
  if (otpc_code_soft_purge("code_bench") != 0) exit(1);
}

static void print_us(const char *name, double v) {
  int prec = v >= 100 ? 0 : v >= 10 ? 1 : 2;
  printf("BENCH %s otpc %.*f us\n", name, prec, v);
}

static int upgrades_done;

static void upgrade_phase(void (*upgrade)(int), const char *p99_name,
                          const char *max_name, const char *time_name) {
  int n = quick ? 10 : 50;
  nwindows = 0;
  start_clients();
  otpc_sleep(20);
  for (int i = 0; i < n; i++) {
    upgrade(++upgrades_done);
    otpc_sleep(10);
  }
  stop_and_wait();
  double p99, max;
  size_t k = stats(true, &p99, &max);
  print_us(p99_name, p99);
  print_us(max_name, max);
  print_us(time_name, median_window_us());
  printf("NOTE %s otpc %d upgrades, %zu calls overlapped one\n", p99_name, n,
         k);
}

static void bench(void *arg) {
  for (int c = 0; c < CLIENTS; c++)
    if ((samples[c] = malloc(MAX_SAMPLES * sizeof(sample_t))) == NULL) exit(1);
  load_or_die(version_path(0));
  if (otpc_code_start_gen_server("code_bench", "code_bench_srv", NULL, NULL,
                                 &server, NULL) != 0)
    exit(1);

  start_clients();
  otpc_sleep(quick ? 200 : 1000);
  stop_and_wait();
  double p99, max;
  size_t n = stats(false, &p99, &max);
  print_us("code_call_p99", p99);
  print_us("code_call_max", max);
  printf("NOTE code_call_p99 otpc %d clients, %zu calls\n", CLIENTS, n);

  upgrade_phase(upgrade_auto, "code_call_p99_upgrade", "code_call_max_upgrade",
                "code_upgrade_time");
  upgrade_phase(upgrade_sys, "code_call_p99_upgrade_sys",
                "code_call_max_upgrade_sys", "code_upgrade_time_sys");
  if (atomic_load(&bad_replies) != 0) {
    fprintf(stderr, "code_bench: %d calls failed or got a wrong reply\n",
            atomic_load(&bad_replies));
    exit(1);
  }
  otpc_gen_server_stop(server, NULL, 5000);
  for (int c = 0; c < CLIENTS; c++) free(samples[c]);
}

int main(void) {
  const char *q = getenv("QUICK");
  quick = q != NULL && *q != '\0' && strcmp(q, "0") != 0;
  const char *s = getenv("BENCH_SCHEDULERS");
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  unsigned nsched =
      s && atoi(s) > 0 ? (unsigned)atoi(s) : (unsigned)(cores > 0 ? cores : 1);
  static const char *const desc[][2] = {
      {"code_call_p99",
       "a gen_server of a loaded module, 4 clients calling "
       "back to back, no upgrade: 99th percentile call "
       "latency"},
      {"code_call_max", "the same: the longest call"},
      {"code_call_p99_upgrade",
       "the same while the module is upgraded v1 -> v2 -> v1 ... (load, the "
       "server moves at its next dispatch through code_change): p99 of the "
       "calls that overlapped an upgrade"},
      {"code_call_max_upgrade", "the same: the longest such call"},
      {"code_upgrade_time",
       "median time from the start of a load until the server has moved"},
      {"code_call_p99_upgrade_sys",
       "upgraded as the release handler does it: sys:suspend, load, "
       "sys:change_code, sys:resume (Erlang: code:load_binary): p99 of the "
       "calls that overlapped an upgrade"},
      {"code_call_max_upgrade_sys", "the same: the longest such call"},
      {"code_upgrade_time_sys", "median time from suspend to resume"}};
  for (size_t i = 0; i < sizeof desc / sizeof desc[0]; i++)
    printf("DESC %s %s\n", desc[i][0], desc[i][1]);
  fflush(stdout);
  otpc_node_opts_t o = {.schedulers = nsched};
  int rc = otpc_main(&o, bench, NULL);
  fflush(stdout);
  return rc;
}
