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
 * As in rt_bench.c, every workload runs in a forked child with a fresh
 * node (BENCH_SCHEDULERS schedulers, else the online cores), and the
 * workloads that measure a throughput or a time run 3 times (QUICK=1:
 * once), in passes over all the workloads; the best run is reported.
 * Output for bench/run.sh:
 *
 *   BENCH <workload> otpc <value> <unit>     (value "failed"/"timeout" too)
 *   DESC / GOAL <workload> <text>
 *   NOTE  <workload> otpc <text>
 *
 *   otp_bench [workload...]   runs only the named workloads
 */
#define _GNU_SOURCE
#include <errno.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "otpc/logger.h"
#include "otpc/otp.h"
#include "otpc/supervisor.h"

/* ------------------------------------------------------------------------
 * Parameters (otp_bench.erl uses the same)
 * ------------------------------------------------------------------------ */

static int quick;
static unsigned nsched;

static long call1_n(void) { return quick ? 100000 : 1000000; }
#define PAIRS 100
static long pair_calls(void) { return quick ? 2000 : 10000; }
#define WARMUP_CALLS 1000
#define RESTART_ROUND 100 /* restarts per supervisor */
static int restart_rounds(void) { return quick ? 5 : 20; }
static long idle_gs_n(void) { return quick ? 10000 : 1000000; }
static int reps(void) { return quick ? 1 : 3; }

/* ------------------------------------------------------------------------
 * Plumbing: time, memory, results shared with the parent
 * ------------------------------------------------------------------------ */

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static long rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long size = 0, rss = 0;
  if (f == NULL) return 0;
  if (fscanf(f, "%ld %ld", &size, &rss) != 2) rss = 0;
  fclose(f);
  return rss * sysconf(_SC_PAGESIZE);
}

#define MAX_RESULTS 2

typedef struct result {
  char name[48];
  char unit[16];
  double value;
  int lower_better;
} result_t;

/* Written by the child, read by the parent after the child ends. */
typedef struct shared {
  int nres;
  result_t res[MAX_RESULTS];
  char stage[200]; /* what the child was doing */
  char note[400];  /* anything worth telling */
  double others;   /* parent: share of the CPUs others used, 0..1 */
} shared_t;

static shared_t *sh;

static void result(const char *name, double value, const char *unit,
                   int lower_better) {
  if (sh->nres >= MAX_RESULTS) return;
  result_t *r = &sh->res[sh->nres++];
  snprintf(r->name, sizeof r->name, "%s", name);
  snprintf(r->unit, sizeof r->unit, "%s", unit);
  r->value = value;
  r->lower_better = lower_better;
}

__attribute__((format(printf, 1, 2))) static void stage(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sh->stage, sizeof sh->stage, fmt, ap);
  va_end(ap);
}

__attribute__((format(printf, 1, 2))) static void note(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sh->note, sizeof sh->note, fmt, ap);
  va_end(ap);
}

/* A child gives up: the parent reports the workload as failed. */
__attribute__((format(printf, 1, 2))) _Noreturn static void fail(
    const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sh->note, sizeof sh->note, fmt, ap);
  va_end(ap);
  fprintf(stderr, "otp_bench: %s (%s)\n", sh->note, sh->stage);
  _exit(3);
}

/* The main thread starts a node and a driver process, and waits for the
 * driver to say it is done. */
static sem_t done_sem;

static void run_driver(void (*driver)(void *), double timeout_s) {
  otpc_node_opts_t o = {0};
  o.schedulers = nsched;
  int rc = otpc_node_start(&o);
  if (rc != 0) fail("otpc_node_start: %s", otpc_strerror(rc));
  /* Crash reports are built only to be dropped: see the top. */
  otpc_logger_set_primary_level(OTPC_LEVEL_NONE);
  rc = otpc_spawn(driver, NULL, NULL, NULL);
  if (rc != 0) fail("otpc_spawn: %s", otpc_strerror(rc));
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += (time_t)timeout_s;
  while (sem_timedwait(&done_sem, &ts) != 0) {
    if (errno == EINTR) continue;
    fail("no answer after %.0f s", timeout_s);
  }
  stage("otpc_node_stop");
  rc = otpc_node_stop();
  if (rc != 0) fail("otpc_node_stop: %s", otpc_strerror(rc));
}

static void driver_done(void) { sem_post(&done_sem); }

static otpc_buf_t *int_buf(int64_t v) {
  otpc_builder_t b;
  otpc_builder_init(&b);
  otpc_build_int(&b, v);
  otpc_buf_t *buf = otpc_builder_finish(&b, NULL);
  if (buf == NULL) fail("out of memory building an integer");
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
  if (rc != 0) fail("otpc_gen_server_start: %s", otpc_strerror(rc));
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
      fail("call %ld: %s, %lld for %lld", i, otpc_strerror(rc),
           (long long)got, (long long)v);
    otpc_buf_unref(rep);
    v = got;
  }
}

static otpc_buf_t *receive_any(void) {
  otpc_buf_t *msg;
  int rc = otpc_receive(NULL, OTPC_INFINITY, &msg);
  if (rc != 0) fail("otpc_receive: %s", otpc_strerror(rc));
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
  stage("otp_call_1: %ld calls", call1_n());
  double t0 = now();
  call_loop(server, call1_n());
  drv_secs = now() - t0;
  driver_done();
}

static void w_call_1(void) {
  run_driver(call1_driver, quick ? 30 : 120);
  result("otp_call_1", (double)call1_n() / drv_secs / 1e6, "Mops/s", 0);
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
  stage("otp_call_100x100: starting %d servers and clients", PAIRS);
  for (intptr_t i = 0; i < PAIRS; i++) {
    pair_server[i] = start_server();
    int rc = otpc_spawn(pair_client, (void *)i, NULL, &client[i]);
    if (rc != 0) fail("otpc_spawn: %s", otpc_strerror(rc));
  }
  for (int i = 0; i < PAIRS; i++) otpc_buf_unref(receive_any()); /* ready */
  stage("otp_call_100x100: %d x %ld calls", PAIRS, pair_calls());
  double t0 = now();
  for (int i = 0; i < PAIRS; i++) otpc_sendf(client[i], "go");
  for (int i = 0; i < PAIRS; i++) otpc_buf_unref(receive_any()); /* done */
  drv_secs = now() - t0;
  driver_done();
}

static void w_call_100x100(void) {
  run_driver(pairs_driver, quick ? 30 : 120);
  result("otp_call_100x100",
         (double)PAIRS * (double)pair_calls() / drv_secs / 1e6, "Mops/s", 0);
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
    stage("otp_restart_latency: round %d", round);
    otpc_pid_t sp;
    int rc = otpc_supervisor_start(&sup, OTPC_ATOM_NONE, &sp, NULL);
    if (rc != 0) fail("otpc_supervisor_start: %s", otpc_strerror(rc));
    for (int i = 0; i < RESTART_ROUND; i++) {
      otpc_pid_t old;
      if (otpc_whereis(worker_name, &old) != 0) fail("no worker");
      double t0 = now();
      otpc_exit_signal(old, otpc_buf_term(kill));
      wait_replacement(old, ping);
      restart_us[k++] = (now() - t0) * 1e6;
    }
    rc = otpc_gen_server_stop(sp, NULL, OTPC_INFINITY);
    if (rc != 0) fail("otpc_gen_server_stop: %s", otpc_strerror(rc));
  }
  otpc_buf_unref(kill);
  otpc_buf_unref(ping);
  driver_done();
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void w_restart(void) {
  long n = (long)restart_rounds() * RESTART_ROUND;
  restart_us = calloc((size_t)n, sizeof *restart_us);
  if (restart_us == NULL) fail("out of memory");
  worker_name = otpc_atom("otp_bench_worker");
  run_driver(restart_driver, quick ? 30 : 120);
  qsort(restart_us, (size_t)n, sizeof *restart_us, cmp_double);
  result("otp_restart_latency", restart_us[n / 2], "us", 1);
  result("otp_restart_latency_p99", restart_us[(n * 99 + 99) / 100 - 1], "us",
         1);
  note("%ld restarts (%d supervisors); min %.1f us, max %.1f us; logger "
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
  if (pids == NULL) fail("out of memory");
  memset(pids, 0, (size_t)n * sizeof *pids); /* paged in before we count */
  otpc_sleep(100);
  stage("otp_idle_gen_server: starting %ld servers", n);
  long rss0 = rss_bytes();
  double t0 = now();
  for (long i = 0; i < n; i++) pids[i] = start_server();
  double secs = now() - t0;
  otpc_sleep(100); /* let the schedulers settle (pools, caches) */
  long rss1 = rss_bytes();
  otpc_proc_info_t info = {0};
  otpc_process_info(pids[0], &info);
  size_t mem0 = info.memory;
  /* What one call each adds: the call's monitor leaves its mark. */
  stage("otp_idle_gen_server: one call to each of %ld servers", n);
  for (long i = 0; i < n; i++) call_loop(pids[i], 1);
  otpc_sleep(100);
  long rss2 = rss_bytes();
  otpc_process_info(pids[0], &info);
  result("otp_idle_gen_server", (double)(rss1 - rss0) / (double)n, "B", 1);
  note("%ld servers started in %.0f ms; RSS +%.1f MiB; process_info memory "
       "%zu B; after one call to each: %.0f B each by RSS, process_info "
       "memory %zu B",
       n, secs * 1e3, (rss1 - rss0) / 1048576.0, mem0,
       (double)(rss2 - rss0) / (double)n, info.memory);
  free(pids);
  driver_done();
}

static void w_idle(void) { run_driver(idle_driver, quick ? 30 : 120); }

/* ------------------------------------------------------------------------
 * The table of workloads, and the parent that runs them
 * ------------------------------------------------------------------------ */

typedef struct workload {
  const char *name; /* to select it on the command line */
  void (*run)(void);
  const char *results[MAX_RESULTS]; /* the names it reports, in order */
  int repeat;                       /* best of reps() runs */
  double timeout_s;                 /* the parent kills it after this */
  const char *desc[MAX_RESULTS];
  const char *goal[MAX_RESULTS];
} workload_t;

static const workload_t workloads[] = {
    {"otp_call_1", w_call_1, {"otp_call_1"}, 1, 150,
     {"one client calls one gen_server 1M times (QUICK: 100k): the request "
      "is an integer, the reply the integer plus one; millions of calls per "
      "second. Timeout infinity on both sides"},
     {">= 3x Erlang"}},
    {"otp_call_100x100", w_call_100x100, {"otp_call_100x100"}, 1, 150,
     {"100 clients, each calling its own gen_server (100 servers) 10,000 "
      "times (QUICK: 2,000), all at once: millions of calls per second in "
      "all"},
     {">= 3x Erlang"}},
    {"otp_restart_latency", w_restart,
     {"otp_restart_latency", "otp_restart_latency_p99"}, 1, 150,
     {"a one_for_one supervisor with one registered gen_server child: kill "
      "the child, then time until whereis(Name) gives a new pid that "
      "answers a call (polling, yielding between polls); median of 2,000 "
      "restarts (QUICK: 500), 100 per supervisor, in microseconds. The "
      "logger's primary level is none on both sides",
      "the 99th percentile of the same restarts"},
     {"none set (compare with Erlang)", "none set (compare with Erlang)"}},
    {"otp_idle_gen_server", w_idle, {"otp_idle_gen_server"}, 0, 150,
     {"1M idle gen_servers (QUICK: 10k) started one by one (not linked, "
      "no name): RSS growth per server, bytes"},
     {"<= 256 B"}},
};
#define NWORKLOADS (sizeof workloads / sizeof workloads[0])

/* CPU time the whole machine has spent busy, in clock ticks. */
static long long busy_ticks(void) {
  FILE *f = fopen("/proc/stat", "r");
  long long v[8] = {0};
  if (f == NULL) return 0;
  if (fscanf(f, "cpu %lld %lld %lld %lld %lld %lld %lld %lld", &v[0], &v[1],
             &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) != 8)
    v[0] = v[1] = v[2] = v[5] = v[6] = v[7] = 0;
  fclose(f);
  return v[0] + v[1] + v[2] + v[5] + v[6] + v[7]; /* all but idle, iowait */
}

/* Runs one workload once in a child. 0 and *out filled; otherwise -1 with
 * why (and *timed_out set if it was killed for taking too long). */
static int run_once(const workload_t *w, shared_t *out, char *why,
                    size_t whylen, int *timed_out) {
  memset(sh, 0, sizeof *sh);
  fflush(stdout);
  fflush(stderr);
  long long busy0 = busy_ticks();
  pid_t pid = fork();
  if (pid < 0) {
    snprintf(why, whylen, "fork: %s", strerror(errno));
    return -1;
  }
  if (pid == 0) {
    sem_init(&done_sem, 0, 0);
    snprintf(sh->stage, sizeof sh->stage, "starting");
    w->run();
    _exit(0);
  }
  double t0 = now(), limit = quick && w->timeout_s > 60 ? 60 : w->timeout_s;
  int status = 0;
  struct rusage ru;
  memset(&ru, 0, sizeof ru);
  *timed_out = 0;
  for (;;) {
    pid_t r = wait4(pid, &status, WNOHANG, &ru);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) {
      snprintf(why, whylen, "waitpid: %s", strerror(errno));
      return -1;
    }
    if (now() - t0 > limit) {
      kill(pid, SIGKILL);
      wait4(pid, &status, 0, &ru);
      *timed_out = 1;
      break;
    }
    usleep(2000);
  }
  *out = *sh;
  double wall = now() - t0;
  double mine = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 +
                (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
  double busy = (double)(busy_ticks() - busy0) / (double)sysconf(_SC_CLK_TCK);
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  out->others = wall > 0 && ncpu > 0 ? (busy - mine) / (wall * (double)ncpu) : 0;
  if (out->others < 0 || busy - mine < 0.2) out->others = 0; /* tick noise */
  if (*timed_out) {
    snprintf(why, whylen, "killed after %.0f s while %s", limit, sh->stage);
    return -1;
  }
  if (WIFSIGNALED(status)) {
    snprintf(why, whylen, "died of signal %d while %s%s%s", WTERMSIG(status),
             sh->stage, sh->note[0] ? "; " : "", sh->note);
    return -1;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    snprintf(why, whylen, "exited with status %d: %s (while %s)",
             WEXITSTATUS(status), sh->note, sh->stage);
    return -1;
  }
  return 0;
}

static void print_value(const result_t *r) {
  double v = r->value;
  int prec = v >= 100 ? 0 : v >= 10 ? 1 : v >= 1 ? 2 : 3;
  printf("BENCH %s otpc %.*f %s\n", r->name, prec, v, r->unit);
}

/* What the runs of one workload gave so far. */
typedef struct wstate {
  result_t best[MAX_RESULTS];
  int have, failures, runs, timed_out;
  char why[700], bestnote[600];
} wstate_t;

static void workload_begin(const workload_t *w) {
  for (int i = 0; i < MAX_RESULTS && w->results[i]; i++) {
    if (w->desc[i]) printf("DESC %s %s\n", w->results[i], w->desc[i]);
    if (w->goal[i]) printf("GOAL %s %s\n", w->results[i], w->goal[i]);
  }
  fflush(stdout);
}

/* One run of w in a fresh child, kept if it is the best so far. */
static void workload_run(const workload_t *w, wstate_t *st) {
  shared_t got;
  int to = 0;
  fprintf(stderr, "otp_bench: %s (run %d) ...\n", w->name, st->runs + 1);
  st->runs++;
  if (run_once(w, &got, st->why, sizeof st->why, &to) != 0) {
    st->failures++;
    st->timed_out = to;
    fprintf(stderr, "otp_bench: %s: %s\n", w->name, st->why);
    return;
  }
  for (int i = 0; i < got.nres; i++) {
    double a = got.res[i].value, b = st->have ? st->best[i].value : 0;
    if (st->have && (got.res[i].lower_better ? a >= b : a <= b)) continue;
    st->best[i] = got.res[i];
    if (i == 0) /* the note of the run shown */
      snprintf(st->bestnote, sizeof st->bestnote, "%s%s%s", got.note,
               got.note[0] && got.others > 0.1 ? "; " : "",
               got.others > 0.1 ? "other processes kept the CPUs busy "
                                  "during this run"
                                : "");
  }
  if (!st->have) st->have = got.nres;
}

static void workload_report(const workload_t *w, const wstate_t *st) {
  for (int i = 0; i < MAX_RESULTS && w->results[i]; i++) {
    if (i < st->have)
      print_value(&st->best[i]);
    else
      printf("BENCH %s otpc %s -\n", w->results[i],
             st->timed_out ? "timeout" : "failed");
    if (st->failures)
      printf("NOTE %s otpc %d of %d runs failed: %s\n", w->results[i],
             st->failures, st->runs, st->why);
    else if (st->bestnote[0] && i == 0)
      printf("NOTE %s otpc %s\n", w->results[i], st->bestnote);
  }
  fflush(stdout);
}

int main(int argc, char **argv) {
  const char *q = getenv("QUICK");
  quick = q != NULL && *q != '\0' && strcmp(q, "0") != 0;
  const char *s = getenv("BENCH_SCHEDULERS");
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  nsched = s && atoi(s) > 0 ? (unsigned)atoi(s)
                            : (unsigned)(cores > 0 ? cores : 1);
  sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE,
            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (sh == MAP_FAILED) {
    perror("otp_bench: mmap");
    return 1;
  }
  bool want[NWORKLOADS];
  static wstate_t st[NWORKLOADS];
  for (size_t i = 0; i < NWORKLOADS; i++) {
    want[i] = argc <= 1;
    for (int a = 1; a < argc; a++)
      if (strcmp(argv[a], workloads[i].name) == 0) want[i] = true;
    if (want[i]) workload_begin(&workloads[i]);
  }
  /* In passes over all the workloads, as rt_bench.c's. */
  for (int pass = 0; pass < reps(); pass++)
    for (size_t i = 0; i < NWORKLOADS; i++)
      if (want[i] && (pass == 0 || workloads[i].repeat))
        workload_run(&workloads[i], &st[i]);
  for (size_t i = 0; i < NWORKLOADS; i++)
    if (want[i]) workload_report(&workloads[i], &st[i]);
  return 0;
}
