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
 * The harness (harness.c) runs every workload in a forked child with a
 * fresh node (schedulers = BENCH_SCHEDULERS, else the online cores), so
 * that a crash or a hang of one is reported ("failed" / "timeout") rather
 * than ending the run, and memory figures start from a clean process.
 * Throughput workloads run 3 times (QUICK=1: once), in passes over all
 * the workloads, and the best run is reported.
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
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "harness.h"
#include "otpc/rt.h"

/* ------------------------------------------------------------------------
 * Parameters
 * ------------------------------------------------------------------------ */

static long idle_n(void) { return bench_quick ? 200000 : 1000000; }
#define SEQ_IDLE_N 1000000L
#define SEQ_IDLE_SMALL_N 20000L
#define IDLE_10M_N 10000000L
static long spawn_n(void) { return bench_quick ? 200000 : 1000000; }
#define RING_N 10000L
#define RING_ROUNDS 100L
static long pingpong_n(void) { return bench_quick ? 200000 : 1000000; }
#define SKYNET_SIZE 1000000L
#define M2O_SENDERS 20L
static long m2o_msgs(void) { return bench_quick ? 100000 : 1000000; }

/* ------------------------------------------------------------------------
 * Plumbing: counters for failure notes, messages
 * ------------------------------------------------------------------------ */

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

/* Counts processes that have started (run init, or entered their
 * function); the main thread waits for a number of them. */
static _Atomic long started;

static void wait_started(long n, double timeout_s, int count_maps) {
  double t0 = bench_now(), last_maps = 0;
  for (;;) {
    long s = atomic_load_explicit(&started, memory_order_relaxed);
    bench_progress(s);
    if (s >= n) return;
    double t = bench_now();
    if (count_maps && t - last_maps > 0.25) {
      bench_seen(bench_rss_bytes(), map_count());
      last_maps = t;
    }
    if (t - t0 > timeout_s)
      bench_fail("only %ld of %ld processes started after %.0f s", s, n,
                 timeout_s);
    usleep(1000);
  }
}

static otpc_buf_t *atom_buf(const char *name) {
  otpc_buf_t *b = otpc_term_fmt(name);
  if (b == NULL) bench_fail("otpc_term_fmt(%s) failed", name);
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
  long rss0 = bench_rss_bytes();
  double t0 = bench_now();
  bench_stage("spawning %ld idle %s processes", n,
              seq ? "sequential" : "handler");
  for (long i = 0; i < n; i++) {
    int rc = seq ? otpc_spawn(idle_seq, NULL, NULL, NULL)
                 : otpc_spawn_handler(&idle_handler, NULL, NULL, NULL);
    if (rc != 0)
      bench_fail("%s returned %s after %ld processes",
                 seq ? "otpc_spawn" : "otpc_spawn_handler", otpc_strerror(rc),
                 i);
    if ((i & 4095) == 0) bench_progress(atomic_load(&started));
    if (seq && (i & 32767) == 0) bench_seen(bench_rss_bytes(), map_count());
  }
  bench_stage("waiting for %ld idle %s processes to start", n,
              seq ? "sequential" : "handler");
  wait_started(n, bench_quick ? 30 : 240, seq);
  *secs = bench_now() - t0;
  usleep(100000); /* let the schedulers settle (pools, caches) */
  *rss_growth = bench_rss_bytes() - rss0;
}

static void w_idle_handler(void) {
  long n = idle_n(), growth;
  double secs;
  bench_node_start(0);
  spawn_idle(n, 0, &growth, &secs);
  bench_result("idle_memory_handler", (double)growth / (double)n, "B", 1);
  bench_note("%ld processes spawned and idle in %.0f ms; RSS +%.1f MiB", n,
             secs * 1e3, growth / 1048576.0);
  bench_node_stop();
}

static void w_idle_seq_1m(void) {
  long n = SEQ_IDLE_N, growth;
  double secs;
  bench_node_start(0);
  spawn_idle(n, 1, &growth, &secs);
  bench_result("idle_memory_seq", (double)growth / (double)n, "B", 1);
  bench_result("seq_1m_idle_time", secs * 1e3, "ms", 1);
  bench_result("seq_1m_idle_memory", (double)bench_rss_bytes() / 1048576.0,
               "MiB", 1);
  bench_note("%ld processes idle in %.0f ms; RSS +%.1f MiB; %ld mappings", n,
             secs * 1e3, growth / 1048576.0, map_count());
  bench_node_stop();
}

static void w_idle_seq_small(void) {
  long n = SEQ_IDLE_SMALL_N, growth;
  double secs;
  bench_node_start(0);
  spawn_idle(n, 1, &growth, &secs);
  bench_result("idle_memory_seq_20k", (double)growth / (double)n, "B", 1);
  bench_note("%ld processes idle in %.0f ms; RSS +%.1f MiB; %ld mappings", n,
             secs * 1e3, growth / 1048576.0, map_count());
  bench_node_stop();
}

static void w_idle_10m(void) {
  long n = IDLE_10M_N, growth;
  double secs;
  bench_node_start((size_t)n + 100000);
  long rss0 = bench_rss_bytes();
  spawn_idle(n, 0, &growth, &secs);
  long total = bench_rss_bytes();
  bench_result("idle_10m_handler", (double)total / 1073741824.0, "GiB", 1);
  bench_note(
      "%ld handler processes idle in %.1f s; RSS %.2f GiB in all "
      "(%.2f GiB before spawning), %.0f bytes each",
      n, secs, total / 1073741824.0, rss0 / 1073741824.0,
      (double)growth / (double)n);
  bench_node_stop();
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
  double t0 = bench_now();
  for (long i = 0; i < n; i++) {
    int rc = seq ? otpc_spawn(sx_child_seq, NULL, NULL, NULL)
                 : otpc_spawn_handler(&sx_handler, NULL, NULL, NULL);
    if (rc != 0)
      bench_fail("spawn returned %s after %ld", otpc_strerror(rc), i);
  }
  for (long i = 0; i < n; i++) {
    otpc_buf_t *msg;
    int rc = otpc_receive(NULL, OTPC_INFINITY, &msg);
    if (rc != 0) bench_fail("otpc_receive: %s after %ld", otpc_strerror(rc), i);
    otpc_buf_unref(msg);
  }
  sx_secs = bench_now() - t0;
  bench_signal_done();
}

static void run_spawn_exit(int seq) {
  bench_node_start(0);
  sx_msg = atom_buf("done");
  bench_stage("spawn_exit_msg%s: %ld children", seq ? "_seq" : "", spawn_n());
  long cs0 = ctx_switches();
  int rc = otpc_spawn(sx_driver, seq ? (void *)1 : NULL, NULL, NULL);
  if (rc != 0) bench_fail("otpc_spawn: %s", otpc_strerror(rc));
  bench_wait_done(bench_quick ? 30 : 120);
  bench_note("%ld context switches during the run", ctx_switches() - cs0);
  bench_result(seq ? "spawn_exit_msg_seq" : "spawn_exit_msg",
               (double)spawn_n() / sx_secs / 1e6, "Mops/s", 0);
  bench_node_stop();
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
    bench_signal_done();
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
      bench_signal_done();
    else
      otpc_send(n->next, msg);
    otpc_buf_unref(msg);
  }
}

/* n processes in a ring, the token goes `rounds` times around: returns
 * the seconds the n * rounds hops took. */
static double run_ring(long n, long rounds, int seq) {
  ring_node_t *nodes = calloc((size_t)n, sizeof *nodes);
  if (nodes == NULL) bench_fail("out of memory");
  ring_rounds = rounds;
  atomic_store(&started, 0);
  bench_stage("ring: spawning %ld %s processes", n,
              seq ? "sequential" : "handler");
  otpc_pid_t *pids = calloc((size_t)n, sizeof *pids);
  if (pids == NULL) bench_fail("out of memory");
  for (long i = 0; i < n; i++) {
    nodes[i].first = i == 0;
    int rc = seq ? otpc_spawn(ring_seq, &nodes[i], NULL, &pids[i])
                 : otpc_spawn_handler(&ring_handler, &nodes[i], NULL, &pids[i]);
    if (rc != 0) bench_fail("spawn: %s after %ld", otpc_strerror(rc), i);
  }
  for (long i = 0; i < n; i++) nodes[i].next = pids[(i + 1) % n];
  wait_started(n, 60, 0);
  otpc_buf_t *token = atom_buf("token");
  bench_stage("ring: %ld processes, %ld rounds, %s", n, rounds,
              seq ? "sequential" : "handlers");
  long cs0 = ctx_switches();
  double t0 = bench_now();
  otpc_send(pids[0], token); /* the first node takes it, then R rounds */
  bench_wait_done(bench_quick ? 30 : 120);
  double secs = bench_now() - t0;
  bench_note("%ld context switches during the timed part",
             ctx_switches() - cs0);
  otpc_buf_unref(token);
  free(pids);
  /* nodes stay allocated: the processes live until bench_node_stop. */
  return secs;
}

static void w_ring(void) {
  bench_node_start(0);
  double s = run_ring(RING_N, RING_ROUNDS, 0);
  bench_result("ring", (double)(RING_N * RING_ROUNDS) / s / 1e6, "Mmsg/s", 0);
  bench_node_stop();
}

static void w_ring_seq(void) {
  bench_node_start(0);
  double s = run_ring(RING_N, RING_ROUNDS, 1);
  bench_result("ring_seq", (double)(RING_N * RING_ROUNDS) / s / 1e6, "Mmsg/s",
               0);
  bench_node_stop();
}

static void w_pingpong(void) {
  bench_node_start(0);
  double s = run_ring(2, pingpong_n(), 0);
  bench_result("pingpong", (double)pingpong_n() / s / 1e6, "Mops/s", 0);
  bench_node_stop();
}

static void w_pingpong_seq(void) {
  bench_node_start(0);
  double s = run_ring(2, pingpong_n(), 1);
  bench_result("pingpong_seq", (double)pingpong_n() / s / 1e6, "Mops/s", 0);
  bench_node_stop();
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
    if (rc != 0) bench_fail("otpc_spawn_handler: %s", otpc_strerror(rc));
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
    bench_signal_done();
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
  bench_node_start(0);
  bench_stage("skynet: %ld leaves", SKYNET_SIZE);
  sky_t *root = calloc(1, sizeof *root);
  if (root == NULL) bench_fail("out of memory");
  root->size = SKYNET_SIZE;
  root->root = 1;
  long cs0 = ctx_switches();
  double t0 = bench_now();
  int rc = otpc_spawn_handler(&sky_handler, root, NULL, NULL);
  if (rc != 0) bench_fail("otpc_spawn_handler: %s", otpc_strerror(rc));
  bench_wait_done(bench_quick ? 30 : 120);
  double secs = bench_now() - t0;
  bench_note("%ld context switches during the run", ctx_switches() - cs0);
  int64_t want = SKYNET_SIZE * (SKYNET_SIZE - 1) / 2;
  if (atomic_load(&sky_result) != want)
    bench_fail("wrong sum %lld, want %lld", (long long)atomic_load(&sky_result),
               (long long)want);
  bench_result("skynet_1m", secs * 1e3, "ms", 1);
  bench_node_stop();
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
  if (++m2o_count == m2o_total) bench_signal_done();
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
  bench_node_start(0);
  m2o_total = M2O_SENDERS * m2o_msgs();
  m2o_count = 0;
  int rc = otpc_spawn_handler(&m2o_handler, NULL, NULL, &m2o_receiver);
  if (rc != 0) bench_fail("otpc_spawn_handler: %s", otpc_strerror(rc));
  bench_stage("many_to_one: %ld senders x %ld messages", M2O_SENDERS,
              m2o_msgs());
  long rss0 = bench_rss_bytes(), cs0 = ctx_switches();
  double t0 = bench_now();
  for (long i = 0; i < M2O_SENDERS; i++) {
    rc = otpc_spawn(m2o_sender, (void *)(intptr_t)i, NULL, NULL);
    if (rc != 0) bench_fail("otpc_spawn: %s", otpc_strerror(rc));
  }
  bench_wait_done(bench_quick ? 30 : 120);
  double secs = bench_now() - t0;
  bench_result("many_to_one", (double)m2o_total / secs / 1e6, "Mmsg/s", 0);
  bench_note(
      "RSS grew %.0f MiB during the run (messages waiting in the mailbox); "
      "%ld context switches",
      (bench_rss_bytes() - rss0) / 1048576.0, ctx_switches() - cs0);
  bench_node_stop();
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
  if (m == MAP_FAILED) bench_fail("mmap: %s", strerror(errno));
  char *a = (char *)(((uintptr_t)m + align - 1) & ~(uintptr_t)(align - 1));
  madvise(a, len, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
  double t0 = bench_now();
  for (size_t i = 0; i < len; i += 4096) a[i] = 1;
  double us = (bench_now() - t0) * 1e6 / 256.0;
  munmap(m, len + align);
  return us;
}

static void w_machine(void) {
  bench_stage("xcore_line: two threads on cpus 0 and 1");
  if (sysconf(_SC_NPROCESSORS_ONLN) < 2) bench_fail("needs two cores");
  atomic_store(&xc_line, 0);
  pthread_t t;
  if (pin_to(0) != 0 || pthread_create(&t, NULL, xc_echo, NULL) != 0)
    bench_fail("cannot pin two threads");
  double best = 1e9;
  for (long b = 0; b < XCORE_BATCHES; b++) {
    double t0 = bench_now();
    for (long i = b * XCORE_BATCH; i < (b + 1) * XCORE_BATCH; i++) {
      atomic_store_explicit(&xc_line, 2 * i + 1, memory_order_release);
      while (atomic_load_explicit(&xc_line, memory_order_acquire) != 2 * i + 2)
        ;
    }
    double secs = bench_now() - t0;
    if (secs < best) best = secs;
  }
  pthread_join(t, NULL);
  /* A round trip moves the line there and back. */
  bench_result("xcore_line", best * 1e9 / (double)XCORE_BATCH / 2.0, "ns", 1);
  bench_stage("fresh_memory: first touch of 256 MiB");
  bench_result("fresh_memory_4k", fresh_touch_us(0), "us", 1);
  bench_result("fresh_memory_2m", fresh_touch_us(1), "us", 1);
}

/* ------------------------------------------------------------------------
 * The table of workloads
 * ------------------------------------------------------------------------ */

static const bench_workload_t workloads[] = {
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

int main(int argc, char **argv) {
  static const bench_prog_t prog = {"rt_bench", workloads,
                                    sizeof workloads / sizeof workloads[0], 1};
  return bench_main(&prog, argc, argv);
}
