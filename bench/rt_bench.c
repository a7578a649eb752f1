/*
 * rt_bench.c: otpc's side of the process-runtime benchmark (rt_bench.erl
 * is Erlang's, rt_bench.go is Go's; all three run the same workloads with
 * the same sizes and print the same workload names).
 *
 *   idle_memory_handler  N idle handler processes (waiting for a message):
 *                        RSS growth / N, bytes each
 *   idle_memory_seq      N idle sequential processes blocked in
 *                        otpc_receive(): RSS growth / N (N = 1M; the same
 *                        run gives seq_1m_idle_time and seq_1m_idle_memory)
 *   idle_memory_seq_20k  the same with 20,000 processes
 *   spawn_exit_msg       a process spawns N children; each sends one message
 *                        to the parent and exits; the parent receives all N.
 *                        Children are handlers whose init sends and exits;
 *                        spawn_exit_msg_seq: sequential children
 *   ring, ring_seq       10,000 processes in a ring, a token passed 100 times
 *                        around it: messages per second
 *   pingpong, pingpong_seq  two processes, a token back and forth: round
 *                        trips per second
 *   skynet_1m            the skynet tree: 10 children per node down to 1M
 *                        leaves, each leaf sends its number up, each node
 *                        sums: milliseconds
 *   many_to_one          20 sequential senders x 1M messages each to one
 *                        handler: messages per second
 *   idle_10m_handler     10M idle handler processes: total RSS (GiB)
 *   xcore_line           the machine, not otpc: ns to move a cache line
 *                        from one core to the other (two pinned threads
 *                        pass a counter); and fresh_memory_4k/_2m, us to
 *                        touch a MiB of memory never touched before, in
 *                        4 KiB and in 2 MiB (huge) pages. The limits that
 *                        docs/internals/performance.md works from.
 *
 * Every workload runs in a forked child with a fresh node (schedulers =
 * BENCH_SCHEDULERS, else the online cores), so that a crash or a hang of
 * one is reported ("failed" / "timeout") rather than ending the run, and
 * memory figures start from a clean process. Throughput workloads run 3
 * times (QUICK=1: once), in passes over all the workloads, and the best
 * run is reported.
 *
 * Output for bench/run.sh:
 *   BENCH <workload> otpc <value> <unit>     (value "failed"/"timeout" too)
 *   DESC  <workload> <text>
 *   GOAL  <workload> <text>                  the goal from issue 3
 *   NOTE  <workload> otpc <text>             what happened, for the report
 *
 *   rt_bench [workload...]   runs only the named workloads
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "otpc/rt.h"

/* ------------------------------------------------------------------------
 * Parameters
 * ------------------------------------------------------------------------ */

static int quick;
static unsigned nsched;

static long idle_n(void) { return quick ? 200000 : 1000000; }
#define SEQ_IDLE_N 1000000L
#define SEQ_IDLE_SMALL_N 20000L
#define IDLE_10M_N 10000000L
static long spawn_n(void) { return quick ? 200000 : 1000000; }
#define RING_N 10000L
#define RING_ROUNDS 100L
static long pingpong_n(void) { return quick ? 200000 : 1000000; }
#define SKYNET_SIZE 1000000L
#define M2O_SENDERS 20L
static long m2o_msgs(void) { return quick ? 100000 : 1000000; }
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

/* Context switches of the whole process so far (all threads). Many
 * voluntary ones mean schedulers went to sleep on their futex. */
static long ctx_switches(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  return ru.ru_nvcsw + ru.ru_nivcsw;
}

static long map_count(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  if (f == NULL) return -1;
  long n = 0;
  int c;
  while ((c = getc_unlocked(f)) != EOF)
    if (c == '\n') n++;
  fclose(f);
  return n;
}

#define MAX_RESULTS 4

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
  _Atomic long progress; /* processes started so far, for failure notes */
  _Atomic long rss;      /* last RSS seen, bytes */
  _Atomic long maps;     /* last mapping count seen */
  char stage[200];       /* what the child was doing */
  char note[400];        /* anything worth telling */
  double others;         /* parent: share of the CPUs others used, 0..1 */
} shared_t;

static shared_t *sh;

static void result(const char *name, double value, const char *unit,
                   int lower_better) {
  if (sh->nres >= MAX_RESULTS) return;
  result_t *r = &sh->res[sh->nres];
  snprintf(r->name, sizeof r->name, "%s", name);
  snprintf(r->unit, sizeof r->unit, "%s", unit);
  r->value = value;
  r->lower_better = lower_better;
  sh->nres++;
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
  fprintf(stderr, "rt_bench: %s (%s)\n", sh->note, sh->stage);
  _exit(3);
}

static void node_start(size_t max_processes) {
  otpc_node_opts_t o = {0};
  o.schedulers = nsched;
  o.max_processes = max_processes;
  int rc = otpc_node_start(&o);
  if (rc != 0) fail("otpc_node_start: %s", otpc_strerror(rc));
}

static void node_stop(void) {
  stage("otpc_node_stop");
  int rc = otpc_node_stop();
  if (rc != 0) fail("otpc_node_stop: %s", otpc_strerror(rc));
}

/* The main thread waits for the workload's processes to say "done". */
static sem_t done_sem;

static void signal_done(void) { sem_post(&done_sem); }

static void wait_done(double timeout_s) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  long long ns = ts.tv_nsec + (long long)((timeout_s - (long)timeout_s) * 1e9);
  ts.tv_sec += (time_t)timeout_s + (time_t)(ns / 1000000000);
  ts.tv_nsec = (long)(ns % 1000000000);
  while (sem_timedwait(&done_sem, &ts) != 0) {
    if (errno == EINTR) continue;
    fail("no answer after %.0f s", timeout_s);
  }
}

/* Counts processes that have started (run init, or entered their
 * function); the main thread waits for a number of them. */
static _Atomic long started;

static void wait_started(long n, double timeout_s, int count_maps) {
  double t0 = now(), last_maps = 0;
  for (;;) {
    long s = atomic_load_explicit(&started, memory_order_relaxed);
    atomic_store(&sh->progress, s);
    if (s >= n) return;
    double t = now();
    if (count_maps && t - last_maps > 0.25) {
      atomic_store(&sh->rss, rss_bytes());
      atomic_store(&sh->maps, map_count());
      last_maps = t;
    }
    if (t - t0 > timeout_s)
      fail("only %ld of %ld processes started after %.0f s", s, n, timeout_s);
    usleep(1000);
  }
}

static otpc_buf_t *atom_buf(const char *name) {
  otpc_buf_t *b = otpc_term_fmt(name);
  if (b == NULL) fail("otpc_term_fmt(%s) failed", name);
  return b;
}

static otpc_buf_t *int_buf(int64_t v) {
  otpc_builder_t b;
  int rc;
  otpc_builder_init(&b);
  otpc_build_int(&b, v);
  otpc_buf_t *buf = otpc_builder_finish(&b, &rc);
  if (buf == NULL) abort();
  return buf;
}

/* ------------------------------------------------------------------------
 * Idle processes
 * ------------------------------------------------------------------------ */

static int idle_init(void *arg, void **state) {
  (void)arg;
  *state = NULL;
  atomic_fetch_add_explicit(&started, 1, memory_order_relaxed);
  return OTPC_CONTINUE;
}

static int idle_handle(void *state, otpc_buf_t *msg) { return OTPC_STOP; }

static const otpc_handler_t idle_handler = {idle_init, idle_handle, NULL};

static void idle_seq(void *arg) {
  (void)arg;
  atomic_fetch_add_explicit(&started, 1, memory_order_relaxed);
  otpc_buf_t *msg;
  if (otpc_receive(NULL, OTPC_INFINITY, &msg) == 0) otpc_buf_unref(msg);
}

/* Spawns n idle processes from the main thread and waits until each has
 * started; fills RSS growth and the time taken. */
static void spawn_idle(long n, int seq, long *rss_growth, double *secs) {
  long rss0 = rss_bytes();
  double t0 = now();
  stage("spawning %ld idle %s processes", n, seq ? "sequential" : "handler");
  for (long i = 0; i < n; i++) {
    int rc = seq ? otpc_spawn(idle_seq, NULL, NULL, NULL)
                 : otpc_spawn_handler(&idle_handler, NULL, NULL, NULL);
    if (rc != 0)
      fail("%s returned %s after %ld processes",
           seq ? "otpc_spawn" : "otpc_spawn_handler", otpc_strerror(rc), i);
    if ((i & 4095) == 0)
      atomic_store(&sh->progress, atomic_load(&started));
    if (seq && (i & 32767) == 0) {
      atomic_store(&sh->rss, rss_bytes());
      atomic_store(&sh->maps, map_count());
    }
  }
  stage("waiting for %ld idle %s processes to start", n,
        seq ? "sequential" : "handler");
  wait_started(n, quick ? 30 : 240, seq);
  *secs = now() - t0;
  usleep(100000); /* let the schedulers settle (pools, caches) */
  *rss_growth = rss_bytes() - rss0;
}

static void w_idle_handler(void) {
  long n = idle_n(), growth;
  double secs;
  node_start(0);
  spawn_idle(n, 0, &growth, &secs);
  result("idle_memory_handler", (double)growth / (double)n, "B", 1);
  note("%ld processes spawned and idle in %.0f ms; RSS +%.1f MiB", n,
       secs * 1e3, growth / 1048576.0);
  node_stop();
}

static void w_idle_seq_1m(void) {
  long n = SEQ_IDLE_N, growth;
  double secs;
  node_start(0);
  spawn_idle(n, 1, &growth, &secs);
  result("idle_memory_seq", (double)growth / (double)n, "B", 1);
  result("seq_1m_idle_time", secs * 1e3, "ms", 1);
  result("seq_1m_idle_memory", (double)rss_bytes() / 1048576.0, "MiB", 1);
  note("%ld processes idle in %.0f ms; RSS +%.1f MiB; %ld mappings", n,
       secs * 1e3, growth / 1048576.0, map_count());
  node_stop();
}

static void w_idle_seq_small(void) {
  long n = SEQ_IDLE_SMALL_N, growth;
  double secs;
  node_start(0);
  spawn_idle(n, 1, &growth, &secs);
  result("idle_memory_seq_20k", (double)growth / (double)n, "B", 1);
  note("%ld processes idle in %.0f ms; RSS +%.1f MiB; %ld mappings", n,
       secs * 1e3, growth / 1048576.0, map_count());
  node_stop();
}

static void w_idle_10m(void) {
  long n = IDLE_10M_N, growth;
  double secs;
  node_start((size_t)n + 100000);
  long rss0 = rss_bytes();
  spawn_idle(n, 0, &growth, &secs);
  long total = rss_bytes();
  result("idle_10m_handler", (double)total / 1073741824.0, "GiB", 1);
  note("%ld handler processes idle in %.1f s; RSS %.2f GiB in all "
       "(%.2f GiB before spawning), %.0f bytes each",
       n, secs, total / 1073741824.0, rss0 / 1073741824.0,
       (double)growth / (double)n);
  node_stop();
}

/* ------------------------------------------------------------------------
 * spawn + exit + one message
 * ------------------------------------------------------------------------ */

static otpc_pid_t sx_parent;
static otpc_buf_t *sx_msg;
static double sx_secs;

static int sx_init(void *arg, void **state) {
  (void)arg;
  otpc_send(sx_parent, sx_msg);
  /* init cannot ask to stop normally: exit is the way. */
  otpc_exit_atom(OTPC_ATOM_NORMAL);
}

static int sx_handle(void *state, otpc_buf_t *msg) { return OTPC_STOP; }

static const otpc_handler_t sx_handler = {sx_init, sx_handle, NULL};

static void sx_child_seq(void *arg) {
  (void)arg;
  otpc_send(sx_parent, sx_msg);
}

static void sx_driver(void *arg) {
  int seq = arg != NULL;
  long n = spawn_n();
  sx_parent = otpc_self();
  double t0 = now();
  for (long i = 0; i < n; i++) {
    int rc = seq ? otpc_spawn(sx_child_seq, NULL, NULL, NULL)
                 : otpc_spawn_handler(&sx_handler, NULL, NULL, NULL);
    if (rc != 0) fail("spawn returned %s after %ld", otpc_strerror(rc), i);
  }
  for (long i = 0; i < n; i++) {
    otpc_buf_t *msg;
    int rc = otpc_receive(NULL, OTPC_INFINITY, &msg);
    if (rc != 0) fail("otpc_receive: %s after %ld", otpc_strerror(rc), i);
    otpc_buf_unref(msg);
  }
  sx_secs = now() - t0;
  signal_done();
}

static void run_spawn_exit(int seq) {
  node_start(0);
  sx_msg = atom_buf("done");
  stage("spawn_exit_msg%s: %ld children", seq ? "_seq" : "", spawn_n());
  long cs0 = ctx_switches();
  int rc = otpc_spawn(sx_driver, seq ? (void *)1 : NULL, NULL, NULL);
  if (rc != 0) fail("otpc_spawn: %s", otpc_strerror(rc));
  wait_done(quick ? 30 : 120);
  note("%ld context switches during the run", ctx_switches() - cs0);
  result(seq ? "spawn_exit_msg_seq" : "spawn_exit_msg",
         (double)spawn_n() / sx_secs / 1e6, "Mops/s", 0);
  node_stop();
  otpc_buf_unref(sx_msg);
}

static void w_spawn_exit(void) { run_spawn_exit(0); }
static void w_spawn_exit_seq(void) { run_spawn_exit(1); }

/* ------------------------------------------------------------------------
 * Ring and ping-pong (a ring of two)
 * ------------------------------------------------------------------------ */

typedef struct ring_node {
  otpc_pid_t next;
  long seen; /* the first node: times the token came by */
  int first;
  char pad[64 - sizeof(otpc_pid_t) - sizeof(long) - sizeof(int)];
} ring_node_t;

static long ring_rounds;

static int ring_init(void *arg, void **state) {
  *state = arg;
  atomic_fetch_add_explicit(&started, 1, memory_order_relaxed);
  return OTPC_CONTINUE;
}

static int ring_handle(void *state, otpc_buf_t *msg) {
  ring_node_t *n = state;
  if (n->first && ++n->seen > ring_rounds) {
    signal_done();
    return OTPC_CONTINUE;
  }
  otpc_send(n->next, msg);
  return OTPC_CONTINUE;
}

static const otpc_handler_t ring_handler = {ring_init, ring_handle, NULL};

static void ring_seq(void *arg) {
  ring_node_t *n = arg;
  atomic_fetch_add_explicit(&started, 1, memory_order_relaxed);
  for (;;) {
    otpc_buf_t *msg;
    if (otpc_receive(NULL, OTPC_INFINITY, &msg) != 0) return;
    if (n->first && ++n->seen > ring_rounds)
      signal_done();
    else
      otpc_send(n->next, msg);
    otpc_buf_unref(msg);
  }
}

/* n processes in a ring, the token goes `rounds` times around: returns
 * the seconds the n * rounds hops took. */
static double run_ring(long n, long rounds, int seq) {
  ring_node_t *nodes = calloc((size_t)n, sizeof *nodes);
  if (nodes == NULL) fail("out of memory");
  ring_rounds = rounds;
  atomic_store(&started, 0);
  stage("ring: spawning %ld %s processes", n, seq ? "sequential" : "handler");
  otpc_pid_t *pids = calloc((size_t)n, sizeof *pids);
  if (pids == NULL) fail("out of memory");
  for (long i = 0; i < n; i++) {
    nodes[i].first = i == 0;
    int rc = seq ? otpc_spawn(ring_seq, &nodes[i], NULL, &pids[i])
                 : otpc_spawn_handler(&ring_handler, &nodes[i], NULL, &pids[i]);
    if (rc != 0) fail("spawn: %s after %ld", otpc_strerror(rc), i);
  }
  for (long i = 0; i < n; i++) nodes[i].next = pids[(i + 1) % n];
  wait_started(n, 60, 0);
  otpc_buf_t *token = atom_buf("token");
  stage("ring: %ld processes, %ld rounds, %s", n, rounds,
        seq ? "sequential" : "handlers");
  long cs0 = ctx_switches();
  double t0 = now();
  otpc_send(pids[0], token); /* the first node takes it, then R rounds */
  wait_done(quick ? 30 : 120);
  double secs = now() - t0;
  note("%ld context switches during the timed part", ctx_switches() - cs0);
  otpc_buf_unref(token);
  free(pids);
  /* nodes stay allocated: the processes live until node_stop. */
  return secs;
}

static void w_ring(void) {
  node_start(0);
  double s = run_ring(RING_N, RING_ROUNDS, 0);
  result("ring", (double)(RING_N * RING_ROUNDS) / s / 1e6, "Mmsg/s", 0);
  node_stop();
}

static void w_ring_seq(void) {
  node_start(0);
  double s = run_ring(RING_N, RING_ROUNDS, 1);
  result("ring_seq", (double)(RING_N * RING_ROUNDS) / s / 1e6, "Mmsg/s", 0);
  node_stop();
}

static void w_pingpong(void) {
  node_start(0);
  double s = run_ring(2, pingpong_n(), 0);
  result("pingpong", (double)pingpong_n() / s / 1e6, "Mops/s", 0);
  node_stop();
}

static void w_pingpong_seq(void) {
  node_start(0);
  double s = run_ring(2, pingpong_n(), 1);
  result("pingpong_seq", (double)pingpong_n() / s / 1e6, "Mops/s", 0);
  node_stop();
}

/* ------------------------------------------------------------------------
 * Skynet
 * ------------------------------------------------------------------------ */

typedef struct sky {
  otpc_pid_t parent;
  int64_t num;
  int64_t size;
  int64_t sum;
  int left;
  int root;
} sky_t;

static _Atomic int64_t sky_result;

static const otpc_handler_t sky_handler;

static int sky_init(void *arg, void **state) {
  sky_t *a = arg;
  if (a->size == 1) {
    otpc_buf_t *b = int_buf(a->num);
    otpc_send(a->parent, b);
    otpc_buf_unref(b);
    free(a);
    otpc_exit_atom(OTPC_ATOM_NORMAL);
  }
  otpc_pid_t self = otpc_self();
  int64_t sub = a->size / 10;
  for (int i = 0; i < 10; i++) {
    sky_t *c = malloc(sizeof *c);
    if (c == NULL) abort();
    c->parent = self;
    c->num = a->num + i * sub;
    c->size = sub;
    c->root = 0;
    int rc = otpc_spawn_handler(&sky_handler, c, NULL, NULL);
    if (rc != 0) fail("otpc_spawn_handler: %s", otpc_strerror(rc));
  }
  a->left = 10;
  a->sum = 0;
  *state = a;
  return OTPC_CONTINUE;
}

static int sky_handle(void *state, otpc_buf_t *msg) {
  sky_t *a = state;
  int64_t v = 0;
  otpc_term_get_int64(otpc_buf_term(msg), &v);
  a->sum += v;
  if (--a->left > 0) return OTPC_CONTINUE;
  if (a->root) {
    atomic_store(&sky_result, a->sum);
    signal_done();
  } else {
    otpc_buf_t *b = int_buf(a->sum);
    otpc_send(a->parent, b);
    otpc_buf_unref(b);
  }
  free(a);
  return OTPC_STOP;
}

static const otpc_handler_t sky_handler = {sky_init, sky_handle, NULL};

static void w_skynet(void) {
  node_start(0);
  stage("skynet: %ld leaves", SKYNET_SIZE);
  sky_t *root = calloc(1, sizeof *root);
  if (root == NULL) fail("out of memory");
  root->size = SKYNET_SIZE;
  root->root = 1;
  long cs0 = ctx_switches();
  double t0 = now();
  int rc = otpc_spawn_handler(&sky_handler, root, NULL, NULL);
  if (rc != 0) fail("otpc_spawn_handler: %s", otpc_strerror(rc));
  wait_done(quick ? 30 : 120);
  double secs = now() - t0;
  note("%ld context switches during the run", ctx_switches() - cs0);
  int64_t want = SKYNET_SIZE * (SKYNET_SIZE - 1) / 2;
  if (atomic_load(&sky_result) != want)
    fail("wrong sum %lld, want %lld", (long long)atomic_load(&sky_result),
         (long long)want);
  result("skynet_1m", secs * 1e3, "ms", 1);
  node_stop();
}

/* ------------------------------------------------------------------------
 * Many senders, one receiver
 * ------------------------------------------------------------------------ */

static otpc_pid_t m2o_receiver;
static long m2o_total, m2o_count;

static int m2o_init(void *arg, void **state) {
  *state = NULL;
  return OTPC_CONTINUE;
}

static int m2o_handle(void *state, otpc_buf_t *msg) {
  if (++m2o_count == m2o_total) signal_done();
  return OTPC_CONTINUE;
}

static const otpc_handler_t m2o_handler = {m2o_init, m2o_handle, NULL};

static void m2o_sender(void *arg) {
  long idx = (long)(intptr_t)arg, n = m2o_msgs();
  otpc_buf_t *msg = otpc_term_fmt("{msg, ~l}", (int64_t)idx);
  if (msg == NULL) abort();
  for (long i = 0; i < n; i++) otpc_send(m2o_receiver, msg);
  otpc_buf_unref(msg);
}

static void w_many_to_one(void) {
  node_start(0);
  m2o_total = M2O_SENDERS * m2o_msgs();
  m2o_count = 0;
  int rc = otpc_spawn_handler(&m2o_handler, NULL, NULL, &m2o_receiver);
  if (rc != 0) fail("otpc_spawn_handler: %s", otpc_strerror(rc));
  stage("many_to_one: %ld senders x %ld messages", M2O_SENDERS, m2o_msgs());
  long rss0 = rss_bytes(), cs0 = ctx_switches();
  double t0 = now();
  for (long i = 0; i < M2O_SENDERS; i++) {
    rc = otpc_spawn(m2o_sender, (void *)(intptr_t)i, NULL, NULL);
    if (rc != 0) fail("otpc_spawn: %s", otpc_strerror(rc));
  }
  wait_done(quick ? 30 : 120);
  double secs = now() - t0;
  result("many_to_one", (double)m2o_total / secs / 1e6, "Mmsg/s", 0);
  note("RSS grew %.0f MiB during the run (messages waiting in the mailbox); "
       "%ld context switches",
       (rss_bytes() - rss0) / 1048576.0, ctx_switches() - cs0);
  node_stop();
}

/* ------------------------------------------------------------------------
 * The machine: what a cache line and fresh memory cost
 * ------------------------------------------------------------------------ */

/* Round trips in batches; the fastest batch counts, so that a thread
 * preempted by other load on the machine does not. */
#define XCORE_BATCH 5000L
#define XCORE_BATCHES 400L
#define XCORE_ROUNDS (XCORE_BATCH * XCORE_BATCHES)

static _Alignas(64) _Atomic long xc_line;

static int pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

/* The other side: waits for each odd value and answers with the next. */
static void *xc_echo(void *arg) {
  pin_to(1);
  for (long i = 0; i < XCORE_ROUNDS; i++) {
    while (atomic_load_explicit(&xc_line, memory_order_acquire) != 2 * i + 1)
      ;
    atomic_store_explicit(&xc_line, 2 * i + 2, memory_order_release);
  }
  return arg;
}

/* Microseconds to touch one MiB never touched before (256 MiB, page by
 * page), with or without transparent huge pages. */
static double fresh_touch_us(int huge) {
  size_t len = (size_t)256 << 20, align = (size_t)2 << 20;
  char *m = mmap(NULL, len + align, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) fail("mmap: %s", strerror(errno));
  char *a = (char *)(((uintptr_t)m + align - 1) & ~(uintptr_t)(align - 1));
  madvise(a, len, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
  double t0 = now();
  for (size_t i = 0; i < len; i += 4096) a[i] = 1;
  double us = (now() - t0) * 1e6 / 256.0;
  munmap(m, len + align);
  return us;
}

static void w_machine(void) {
  stage("xcore_line: two threads on cpus 0 and 1");
  if (sysconf(_SC_NPROCESSORS_ONLN) < 2) fail("needs two cores");
  atomic_store(&xc_line, 0);
  pthread_t t;
  if (pin_to(0) != 0 || pthread_create(&t, NULL, xc_echo, NULL) != 0)
    fail("cannot pin two threads");
  double best = 1e9;
  for (long b = 0; b < XCORE_BATCHES; b++) {
    double t0 = now();
    for (long i = b * XCORE_BATCH; i < (b + 1) * XCORE_BATCH; i++) {
      atomic_store_explicit(&xc_line, 2 * i + 1, memory_order_release);
      while (atomic_load_explicit(&xc_line, memory_order_acquire) != 2 * i + 2)
        ;
    }
    double secs = now() - t0;
    if (secs < best) best = secs;
  }
  pthread_join(t, NULL);
  /* A round trip moves the line there and back. */
  result("xcore_line", best * 1e9 / (double)XCORE_BATCH / 2.0, "ns", 1);
  stage("fresh_memory: first touch of 256 MiB");
  result("fresh_memory_4k", fresh_touch_us(0), "us", 1);
  result("fresh_memory_2m", fresh_touch_us(1), "us", 1);
}

/* ------------------------------------------------------------------------
 * The table of workloads, and the parent that runs them
 * ------------------------------------------------------------------------ */

typedef struct workload {
  const char *name;      /* to select it on the command line */
  void (*run)(void);
  const char *results[MAX_RESULTS]; /* the names it reports, in order */
  int repeat;            /* a throughput: best of reps() runs */
  int full_only;         /* skipped with QUICK=1 */
  double timeout_s;      /* the parent kills it after this */
  const char *desc[MAX_RESULTS];
  const char *goal[MAX_RESULTS];
} workload_t;

static const workload_t workloads[] = {
    {"idle_memory_handler", w_idle_handler, {"idle_memory_handler"}, 0, 0,
     300,
     {"N idle processes (1M; QUICK: 200k), bytes of RSS each. otpc: handler "
      "processes waiting for a message; Erlang: processes blocked in receive; "
      "Go: goroutines blocked on a channel"},
     {"<= 256 B"}},
    {"idle_memory_seq", w_idle_seq_1m,
     {"idle_memory_seq", "seq_1m_idle_time", "seq_1m_idle_memory"}, 0, 0, 300,
     {"1M idle processes, bytes of RSS each. otpc: sequential processes "
      "blocked in otpc_receive(); Erlang and Go as in idle_memory_handler "
      "(the same measurement)",
      "otpc: time to spawn 1M sequential processes and have each block in "
      "receive, without changing sysctls",
      "otpc: the whole RSS with 1M idle sequential processes"},
     {"<= 4500 B", "runs without changing sysctls",
      "runs without changing sysctls"}},
    {"idle_memory_seq_20k", w_idle_seq_small, {"idle_memory_seq_20k"}, 0, 0,
     120,
     {"otpc: 20,000 idle sequential processes blocked in otpc_receive(), "
      "bytes of RSS each (few enough for the default vm.max_map_count even "
      "if every process kept an execution stack of its own)"},
     {"<= 4500 B"}},
    {"spawn_exit_msg", w_spawn_exit, {"spawn_exit_msg"}, 1, 0, 300,
     {"a process spawns N children (1M; QUICK: 200k), each sends one message "
      "to it and exits; it receives the N messages. Millions of children per "
      "second. otpc: handler children whose init sends and calls "
      "otpc_exit_atom(normal)"},
     {">= 7 M/s"}},
    {"spawn_exit_msg_seq", w_spawn_exit_seq, {"spawn_exit_msg_seq"}, 1, 0, 300,
     {"spawn_exit_msg with otpc sequential children (a function that sends "
      "and returns); Erlang and Go as in spawn_exit_msg"},
     {">= 7 M/s"}},
    {"ring", w_ring, {"ring"}, 1, 0, 300,
     {"10,000 processes in a ring, a token passed 100 times around: millions "
      "of messages per second (spawning not timed). otpc: handler processes"},
     {">= 16 M/s"}},
    {"ring_seq", w_ring_seq, {"ring_seq"}, 1, 0, 300,
     {"ring with otpc sequential processes (each loops on otpc_receive)"},
     {">= 16 M/s"}},
    {"pingpong", w_pingpong, {"pingpong"}, 1, 0, 300,
     {"two processes that know each other's pid pass a token back and forth: "
      "millions of round trips per second (1M; QUICK: 200k). otpc: handlers"},
     {">= 7 M/s"}},
    {"pingpong_seq", w_pingpong_seq, {"pingpong_seq"}, 1, 0, 300,
     {"pingpong with otpc sequential processes"},
     {">= 7 M/s"}},
    {"skynet_1m", w_skynet, {"skynet_1m"}, 1, 0, 300,
     {"skynet: a tree of processes, 10 children per node down to 1M leaves "
      "(1,111,111 processes); each leaf sends its number to its parent, each "
      "node sums and sends up: milliseconds (lower is better). otpc: handlers; "
      "a leaf's init sends and exits"},
     {"<= 200 ms"}},
    {"many_to_one", w_many_to_one, {"many_to_one"}, 1, 0, 300,
     {"20 senders x 1M messages each (QUICK: 100k) to one receiver: millions "
      "of messages per second. otpc: sequential senders, handler receiver; "
      "Go: a channel with a 1024-message buffer"},
     {">= 3x Erlang"}},
    {"idle_10m_handler", w_idle_10m, {"idle_10m_handler"}, 0, 1, 900,
     {"otpc: 10M idle handler processes (max_processes 10.1M), the whole "
      "RSS in GiB (skipped in QUICK mode)"},
     {"fits, < 4 GiB"}},
    {"xcore_line", w_machine,
     {"xcore_line", "fresh_memory_4k", "fresh_memory_2m"}, 1, 0, 120,
     {"the machine, not otpc: nanoseconds to move a cache line from one core "
      "to the other (two pinned threads pass a counter back and forth)",
      "the machine: microseconds to touch one MiB of memory never touched "
      "before, in 4 KiB pages (the kernel zeroes each; in a VM the host may "
      "have to back it too)",
      "the same in 2 MiB (transparent huge) pages"},
     {"a limit, see docs/internals/performance.md", "a limit",
      "a limit"}},
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

static const char *signame(int sig) {
  switch (sig) {
    case SIGABRT: return "SIGABRT";
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGKILL: return "SIGKILL";
    case SIGILL: return "SIGILL";
    case SIGFPE: return "SIGFPE";
    default: return "a signal";
  }
}

/* Runs one workload once in a child. Returns 0 and fills *out on success;
 * otherwise -1 with why in `why` (and `timeout` set if it was killed for
 * taking too long). */
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
  double t0 = now(), limit = quick ? (w->timeout_s < 60 ? w->timeout_s : 60)
                                   : w->timeout_s;
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
  /* Whatever else ran on the machine meanwhile skews the figures: the
   * busy time of all CPUs minus the child's own. */
  double wall = now() - t0;
  double mine = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 +
                (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
  double busy = (double)(busy_ticks() - busy0) / (double)sysconf(_SC_CLK_TCK);
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  out->others = wall > 0 && ncpu > 0 ? (busy - mine) / (wall * (double)ncpu) : 0;
  /* /proc/stat counts in ticks (10 ms): ignore what could be rounding,
   * and this parent's own polling. */
  if (out->others < 0 || busy - mine < 0.2) out->others = 0;
  long rss = atomic_load(&sh->rss), maps = atomic_load(&sh->maps);
  char extra[200] = "";
  if (maps > 0)
    snprintf(extra, sizeof extra, "; last seen: RSS %.0f MiB, %ld mappings",
             rss / 1048576.0, maps);
  if (*timed_out) {
    snprintf(why, whylen, "killed after %.0f s while %s; %ld processes had "
             "started%s", limit, sh->stage, atomic_load(&sh->progress), extra);
    return -1;
  }
  if (WIFSIGNALED(status)) {
    snprintf(why, whylen, "died of %s (%d) while %s; %ld processes had "
             "started%s%s%s", signame(WTERMSIG(status)), WTERMSIG(status),
             sh->stage, atomic_load(&sh->progress), extra,
             sh->note[0] ? "; " : "", sh->note);
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
  char num[64];
  snprintf(num, sizeof num, "%.*f", prec, v);
  printf("BENCH %s otpc %s %s\n", r->name, num, r->unit);
}

/* What the runs of one workload gave so far. */
typedef struct wstate {
  result_t best[MAX_RESULTS];
  int have, failures, runs, timed_out;
  char why[900], bestnote[600];
  double worst_others;
} wstate_t;

static bool skipped(const workload_t *w) { return w->full_only && quick; }

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
  fprintf(stderr, "rt_bench: %s (run %d) ...\n", w->name, st->runs + 1);
  st->runs++;
  if (run_once(w, &got, st->why, sizeof st->why, &to) != 0) {
    st->failures++;
    st->timed_out = to;
    fprintf(stderr, "rt_bench: %s: %s\n", w->name, st->why);
    return;
  }
  if (got.others > st->worst_others) st->worst_others = got.others;
  for (int i = 0; i < got.nres; i++) {
    int better = !st->have;
    if (st->have) {
      double a = got.res[i].value, b = st->best[i].value;
      better = got.res[i].lower_better ? a < b : a > b;
    }
    if (!better) continue;
    st->best[i] = got.res[i];
    if (i == 0) /* the note of the run shown */
      snprintf(st->bestnote, sizeof st->bestnote, "%s%s%s", got.note,
               got.note[0] && got.others > 0.1 ? "; " : "",
               got.others > 0.1 ? "other processes kept the CPUs busy "
                                  "during this run" : "");
    if (i == 0 && got.others > 0.1) {
      size_t l = strlen(st->bestnote);
      snprintf(st->bestnote + l, sizeof st->bestnote - l, " (%.0f%%)",
               got.others * 100);
    }
  }
  if (!st->have) st->have = got.nres;
}

static void workload_report(const workload_t *w, const wstate_t *st) {
  if (skipped(w)) {
    for (int i = 0; i < MAX_RESULTS && w->results[i]; i++)
      printf("NOTE %s otpc skipped in QUICK mode\n", w->results[i]);
    fflush(stdout);
    return;
  }
  for (int i = 0; i < MAX_RESULTS && w->results[i]; i++) {
    int found = 0;
    for (int j = 0; j < st->have; j++) {
      if (strcmp(st->best[j].name, w->results[i]) == 0) {
        print_value(&st->best[j]);
        found = 1;
      }
    }
    if (!found)
      printf("BENCH %s otpc %s -\n", w->results[i],
             st->timed_out ? "timeout" : "failed");
    if (st->failures)
      printf("NOTE %s otpc %d of %d runs failed: %s\n", w->results[i],
             st->failures, st->runs, st->why);
    else if (st->bestnote[0] && i == 0)
      printf("NOTE %s otpc %s\n", w->results[i], st->bestnote);
  }
  if (st->worst_others > 0.1)
    fprintf(stderr, "rt_bench: %s: other processes used up to %.0f%% of the "
            "CPUs during a run\n", w->name, st->worst_others * 100);
  fflush(stdout);
}

int main(int argc, char **argv) {
  const char *q = getenv("QUICK");
  quick = q != NULL && *q != '\0' && strcmp(q, "0") != 0;
  const char *s = getenv("BENCH_SCHEDULERS");
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  nsched = s && atoi(s) > 0 ? (unsigned)atoi(s) : (unsigned)(cores > 0 ? cores : 1);
  sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
            -1, 0);
  if (sh == MAP_FAILED) {
    perror("rt_bench: mmap");
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
  /* The runs go in passes over all the workloads, not one workload's
   * runs in a row: a slow spell of the machine (docs/internals/
   * performance.md) then costs one run of several workloads, not every
   * run of one. The Erlang and Go sides do the same. */
  for (int pass = 0; pass < reps(); pass++)
    for (size_t i = 0; i < NWORKLOADS; i++)
      if (want[i] && !skipped(&workloads[i]) &&
          (pass == 0 || workloads[i].repeat))
        workload_run(&workloads[i], &st[i]);
  for (size_t i = 0; i < NWORKLOADS; i++)
    if (want[i]) workload_report(&workloads[i], &st[i]);
  return 0;
}
