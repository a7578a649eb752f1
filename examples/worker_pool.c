/*
 * worker_pool.c: a supervised pool of gen_server workers that crash now
 * and then, and a crowd of clients that keep working through it.
 *
 *   top            rest_for_one supervisor
 *    |- pool       gen_server, registered 'pool': idle workers, waiting
 *    |             clients (answered later, when a worker comes back)
 *    '- workers    one_for_one supervisor of N permanent workers
 *
 * A worker joins the pool from its init, so a worker the supervisor
 * restarts after a crash joins again by itself; the pool monitors the
 * workers it knows and forgets the dead ones. rest_for_one at the top: if
 * the pool itself dies, the workers are restarted after it and join the
 * new pool. Every 100th job crashes its worker (stop with {bad_job, N});
 * the client sees the worker's exit reason from its call, as from
 * gen_server:call, and tries the job again on another worker.
 *
 *   example_worker_pool [JOBS [CLIENTS [WORKERS]]]   (default 100000 50 8)
 *   example_worker_pool -v ...                       (show crash reports)
 *
 * At the end it checks its own books: every job done once, one restart
 * per crash, the supervisors alive, and no process left behind; it exits
 * 1 if any of that is off.
 */
#include <otpc.h>
#include <otpc/logger.h>
#include <otpc/supervisor.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CRASH_EVERY 100

static long jobs = 100000, clients = 50, workers = 8;

/* Patterns, compiled once in main before any process runs: callbacks run
 * on several schedulers at once and must not race to compile them. */
static otpc_pattern_t *pat_job, *pat_join, *pat_checkin, *pat_down, *pat_done;

static void compile_patterns(void) {
  otpc_pattern_compile("{job, ~l}", &pat_job, NULL);
  otpc_pattern_compile("{join, ~p}", &pat_join, NULL);
  otpc_pattern_compile("{checkin, ~p}", &pat_checkin, NULL);
  otpc_pattern_compile("{'DOWN', _, process, ~p, _}", &pat_down, NULL);
  otpc_pattern_compile("client_done", &pat_done, NULL);
}
static _Atomic long next_job, jobs_done, crashes_seen, worker_starts;

/* ---- a worker ------------------------------------------------------------ */

static void w_init(void *arg, void **state, otpc_gs_result_t *r) {
  (void)arg, (void)state, (void)r;
  atomic_fetch_add(&worker_starts, 1);
  otpc_pid_t self = otpc_self();
  otpc_buf_t *join = otpc_term_fmt("{join, ~p}", &self);
  otpc_gen_server_cast_name(otpc_atom("pool"), join);
  otpc_buf_unref(join);
}

/* {job, N}: the number of Collatz steps from N to 1; crashes on every
 * CRASH_EVERY-th job. */
static void w_call(void **state, otpc_term_t req, const otpc_from_t *from,
                   otpc_gs_result_t *r) {
  (void)state, (void)from;
  int64_t n;
  if (otpc_match(pat_job, req, &n) != 1) {
    otpc_gs_replyf(r, "{error, badarg}");
    return;
  }
  if (n % CRASH_EVERY == 0) {
    otpc_gs_stop(r, otpc_term_fmt("{bad_job, ~l}", n)); /* let it crash */
    return;
  }
  int64_t steps = 0;
  for (uint64_t x = (uint64_t)n; x != 1; steps++) x = x % 2 ? 3 * x + 1 : x / 2;
  otpc_gs_replyf(r, "{ok, ~l}", steps);
}

static const otpc_gen_server_t worker = {
    .name = "worker", .init = w_init, .handle_call = w_call};

/* ---- the pool ------------------------------------------------------------ */

typedef struct pool {
  otpc_pid_t *idle;   /* a stack of idle workers */
  size_t nidle, cap;
  otpc_from_t *waiting; /* clients waiting for a worker, oldest first */
  size_t nwait, wcap, whead;
} pool_t;

static void p_init(void *arg, void **state, otpc_gs_result_t *r) {
  (void)arg, (void)r;
  *state = calloc(1, sizeof(pool_t));
  /* So that the supervisor's shutdown runs terminate (which frees the
   * state), as in OTP: an untrapped exit signal just ends the process. */
  otpc_trap_exit(true);
}

static void give(pool_t *p, otpc_pid_t w) {
  if (p->nwait > 0) { /* the longest waiting client gets it */
    otpc_from_t *from = &p->waiting[p->whead];
    p->whead = (p->whead + 1) % p->wcap;
    p->nwait--;
    otpc_buf_t *reply = otpc_term_fmt("~p", &w);
    otpc_gen_server_reply(from, reply);
    otpc_buf_unref(reply);
    return;
  }
  if (p->nidle == p->cap) {
    p->cap = p->cap ? 2 * p->cap : 16;
    p->idle = realloc(p->idle, p->cap * sizeof *p->idle);
  }
  p->idle[p->nidle++] = w;
}

static void p_call(void **state, otpc_term_t req, const otpc_from_t *from,
                   otpc_gs_result_t *r) {
  pool_t *p = *state;
  if (!otpc_term_is_atom(req, otpc_atom("checkout"))) {
    otpc_gs_replyf(r, "{error, badarg}");
    return;
  }
  if (p->nidle > 0) {
    otpc_pid_t w = p->idle[--p->nidle];
    otpc_gs_replyf(r, "~p", &w);
    return;
  }
  if (p->nwait == p->wcap) { /* grow the ring, oldest first */
    size_t cap = p->wcap ? 2 * p->wcap : 16;
    otpc_from_t *ring = malloc(cap * sizeof *ring);
    for (size_t i = 0; i < p->nwait; i++)
      ring[i] = p->waiting[(p->whead + i) % p->wcap];
    free(p->waiting);
    p->waiting = ring;
    p->wcap = cap;
    p->whead = 0;
  }
  p->waiting[(p->whead + p->nwait++) % p->wcap] = *from; /* answer later */
}

static void p_cast(void **state, otpc_term_t msg, otpc_gs_result_t *r) {
  (void)r;
  otpc_pid_t w;
  if (otpc_match(pat_join, msg, &w) == 1) {
    otpc_ref_t ref;
    otpc_monitor(w, &ref); /* a DOWN tells us it is gone */
    give(*state, w);
  } else if (otpc_match(pat_checkin, msg, &w) == 1 && otpc_is_alive(w)) {
    give(*state, w);
  }
}

/* A worker died: forget it if it was idle (a busy one is simply not
 * checked in again; its client saw the crash). */
static void p_info(void **state, otpc_term_t msg, otpc_gs_result_t *r) {
  (void)r;
  pool_t *p = *state;
  otpc_pid_t w;
  if (otpc_match(pat_down, msg, &w) != 1) return;
  for (size_t i = 0; i < p->nidle; i++)
    if (otpc_pid_eq(p->idle[i], w)) {
      p->idle[i] = p->idle[--p->nidle];
      break;
    }
}

static void p_terminate(void **state, otpc_term_t reason) {
  (void)reason;
  pool_t *p = *state;
  free(p->idle);
  free(p->waiting);
  free(p);
}

static const otpc_gen_server_t pool = {.name = "pool",
                                       .init = p_init,
                                       .handle_call = p_call,
                                       .handle_cast = p_cast,
                                       .handle_info = p_info,
                                       .terminate = p_terminate};

/* ---- clients --------------------------------------------------------------- */

static otpc_pid_t main_pid;

static void client(void *arg) {
  (void)arg;
  otpc_atom_t pool_name = otpc_atom("pool");
  otpc_buf_t *checkout = otpc_term_fmt("checkout");
  long done = 0;
  for (;;) {
    long n = atomic_fetch_add(&next_job, 1) + 1;
    if (n > jobs) break;
    otpc_buf_t *job = otpc_term_fmt("{job, ~l}", (int64_t)n);
    for (;;) { /* until a worker finishes it */
      otpc_buf_t *reply;
      if (otpc_gen_server_call_name(pool_name, checkout, OTPC_INFINITY, &reply) != 0) {
        otpc_sleep(1); /* the pool is being restarted */
        continue;
      }
      otpc_pid_t w;
      otpc_term_get_pid(otpc_buf_term(reply), &w);
      otpc_buf_unref(reply);
      int rc = otpc_gen_server_call(w, job, 5000, &reply);
      if (rc == 0) {
        otpc_buf_unref(reply);
        otpc_buf_t *in = otpc_term_fmt("{checkin, ~p}", &w);
        otpc_gen_server_cast_name(pool_name, in);
        otpc_buf_unref(in);
        done++;
        break;
      }
      if (rc == OTPC_EEXITED) { /* it crashed on this job: try another */
        otpc_buf_unref(reply);
        atomic_fetch_add(&crashes_seen, 1);
        if (n % CRASH_EVERY == 0) { /* a bad job stays bad: give up on it */
          done++;
          break;
        }
      }
    }
    otpc_buf_unref(job);
  }
  otpc_buf_unref(checkout);
  atomic_fetch_add(&jobs_done, done);
  otpc_sendf(main_pid, "client_done");
}

/* ---- the tree ---------------------------------------------------------------- */

static otpc_sup_gs_child_t pool_child = {&pool, NULL, 0};
static otpc_sup_gs_child_t worker_child = {&worker, NULL, 0};
static otpc_sup_spec_t workers_spec;

static void run(void *arg) {
  (void)arg;
  main_pid = otpc_self();
  pool_child.name = otpc_atom("pool");

  otpc_child_spec_t *w = calloc((size_t)workers, sizeof *w);
  char(*ids)[32] = calloc((size_t)workers, sizeof *ids);
  for (long i = 0; i < workers; i++) {
    snprintf(ids[i], sizeof ids[i], "worker%ld", i + 1);
    w[i] = (otpc_child_spec_t){.id = ids[i],
                               .start = otpc_sup_start_gen_server,
                               .arg = &worker_child,
                               .restart = OTPC_PERMANENT};
  }
  /* Crashes are part of the plan: allow one per job per second. */
  workers_spec = (otpc_sup_spec_t){OTPC_ONE_FOR_ONE, (int)jobs, 1000, w,
                                   (size_t)workers};
  otpc_child_spec_t top_children[] = {
      {.id = "pool", .start = otpc_sup_start_gen_server, .arg = &pool_child},
      {.id = "workers",
       .start = otpc_sup_start_supervisor,
       .arg = &workers_spec,
       .type = OTPC_SUPERVISOR}};
  otpc_sup_spec_t top_spec = {OTPC_REST_FOR_ONE, 10, 1000, top_children, 2};

  size_t base = otpc_process_count();
  otpc_pid_t top;
  otpc_buf_t *why = NULL;
  if (otpc_supervisor_start(&top_spec, otpc_atom("top"), &top, &why) != 0) {
    fprintf(stderr, "worker_pool: the tree did not start\n");
    otpc_exit_atom(otpc_atom("failed"));
  }
  int64_t t0 = otpc_now_ms();
  for (long i = 0; i < clients; i++) otpc_spawn(client, NULL, NULL, NULL);
  for (long i = 0; i < clients; i++) {
    otpc_buf_t *m;
    otpc_receive(pat_done, OTPC_INFINITY, &m);
    otpc_buf_unref(m);
  }
  double secs = (double)(otpc_now_ms() - t0) / 1000.0;
  if (secs <= 0) secs = 0.001;

  /* The books. Each crash was seen by exactly one client, and each
   * crashed worker was restarted once: wait for the last restarts. */
  long crashes = atomic_load(&crashes_seen), want_starts = workers + crashes;
  for (int i = 0; i < 1000 && atomic_load(&worker_starts) < want_starts; i++)
    otpc_sleep(1);
  otpc_sup_counts_t counts = {0};
  otpc_pid_t wsup;
  otpc_sup_child_info_t kids[2];
  int nk = otpc_supervisor_which_children(top, kids, 2);
  bool ok = nk == 2 && kids[1].running;
  if (ok) {
    wsup = kids[1].pid;
    ok = otpc_supervisor_count_children(wsup, &counts) == 0 &&
         counts.active == (size_t)workers;
  }
  long restarts = atomic_load(&worker_starts) - workers;
  printf("worker_pool: %ld jobs by %ld clients on %ld workers in %.2f s: "
         "%.0f jobs/s\n",
         atomic_load(&jobs_done), clients, workers, secs,
         (double)atomic_load(&jobs_done) / secs);
  printf("worker_pool: %ld crashes, %ld restarts, %zu workers running\n",
         crashes, restarts, counts.active);
  ok = ok && atomic_load(&jobs_done) == jobs && restarts == crashes &&
       crashes == jobs / CRASH_EVERY;

  otpc_gen_server_stop(top, NULL, 5000); /* children stop in reverse order */
  for (int i = 0; i < 1000 && otpc_process_count() > base; i++) otpc_sleep(1);
  size_t left = otpc_process_count();
  printf("worker_pool: processes before %zu, after stopping the tree %zu\n",
         base, left);
  ok = ok && left == base;
  free(w);
  free(ids);
  if (!ok) {
    printf("worker_pool: the books do not balance\n");
    otpc_exit_atom(otpc_atom("books"));
  }
}

int main(int argc, char **argv) {
  int a = 1;
  bool verbose = a < argc && strcmp(argv[a], "-v") == 0;
  if (verbose) a++;
  if (a < argc) jobs = atol(argv[a++]);
  if (a < argc) clients = atol(argv[a++]);
  if (a < argc) workers = atol(argv[a++]);
  if (jobs < 1 || clients < 1 || workers < 1) {
    fprintf(stderr, "usage: %s [-v] [JOBS [CLIENTS [WORKERS]]]\n", argv[0]);
    return 2;
  }
  /* Each crash makes a supervisor report; show them with -v. */
  if (!verbose) otpc_logger_set_primary_level(OTPC_LEVEL_CRITICAL);
  compile_patterns();
  int rc = otpc_main(NULL, run, NULL);
  otpc_pattern_t *all[] = {pat_job, pat_join, pat_checkin, pat_down, pat_done};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) otpc_pattern_free(all[i]);
  return rc;
}
