/*
 * harness.c: runs a benchmark program's workloads (harness.h), each in a
 * forked child, and prints their results for bench/run.sh.
 *
 * The child and the parent share one area (`sh`, an anonymous shared
 * mapping): the parent clears it before each fork, the child writes it
 * (results, stage, note, progress), the parent reads it after the child
 * has ended (exited, died or been killed at its timeout). A child that
 * crashes or hangs costs that run alone: the parent reports "failed" or
 * "timeout" with what the area said the child was doing.
 *
 * The runs go in passes over all the workloads (pass 0 runs every wanted
 * workload, passes 1 and 2 the repeated ones), not one workload's runs in
 * a row: a slow spell of the machine (docs/internals/performance.md) then
 * costs one run of several workloads, not every run of one. The Erlang
 * and Go sides do the same. Each run also measures how much of the CPUs
 * other processes used meanwhile, and says so in the note if it was much.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "otpc/rt.h"

int bench_quick;

static const bench_prog_t *prog;
static unsigned nsched;

typedef struct result {
  char name[48];
  char unit[16];
  double value;
  int lower_better;
} result_t;

/* Written by the child, read by the parent after the child ends. */
typedef struct shared {
  int nres;
  result_t res[BENCH_MAX_RESULTS];
  _Atomic long progress; /* processes started so far, for failure notes */
  _Atomic long rss;      /* last RSS seen, bytes */
  _Atomic long maps;     /* last mapping count seen */
  char stage[200];       /* what the child was doing */
  char note[400];        /* anything worth telling */
  double others;         /* parent: share of the CPUs others used, 0..1 */
} shared_t;

static shared_t *sh;

/* The child's main thread waits on it for the workload's processes. */
static sem_t done_sem;

static int reps(void) {
  return bench_quick ? 1 : 3;
}

/* ------------------------------------------------------------------------
 * The child's side
 * ------------------------------------------------------------------------ */

double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

long bench_rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long size = 0, rss = 0;
  if (f == NULL) return 0;
  if (fscanf(f, "%ld %ld", &size, &rss) != 2) rss = 0;
  fclose(f);
  return rss * sysconf(_SC_PAGESIZE);
}

void bench_result(const char *name, double value, const char *unit,
                  int lower_better) {
  if (sh->nres >= BENCH_MAX_RESULTS) return;
  result_t *r = &sh->res[sh->nres++];
  snprintf(r->name, sizeof r->name, "%s", name);
  snprintf(r->unit, sizeof r->unit, "%s", unit);
  r->value = value;
  r->lower_better = lower_better;
}

void bench_stage(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sh->stage, sizeof sh->stage, fmt, ap);
  va_end(ap);
}

void bench_note(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sh->note, sizeof sh->note, fmt, ap);
  va_end(ap);
}

void bench_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sh->note, sizeof sh->note, fmt, ap);
  va_end(ap);
  fprintf(stderr, "%s: %s (%s)\n", prog->name, sh->note, sh->stage);
  _exit(3);
}

void bench_progress(long started) {
  atomic_store(&sh->progress, started);
}

void bench_seen(long rss, long maps) {
  atomic_store(&sh->rss, rss);
  atomic_store(&sh->maps, maps);
}

void bench_node_start(size_t max_processes) {
  otpc_node_opts_t o = {0};
  o.schedulers = nsched;
  o.max_processes = max_processes;
  int rc = otpc_node_start(&o);
  if (rc != 0) bench_fail("otpc_node_start: %s", otpc_strerror(rc));
}

void bench_node_stop(void) {
  bench_stage("otpc_node_stop");
  int rc = otpc_node_stop();
  if (rc != 0) bench_fail("otpc_node_stop: %s", otpc_strerror(rc));
}

void bench_signal_done(void) {
  sem_post(&done_sem);
}

void bench_wait_done(double timeout_s) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  long long ns = ts.tv_nsec + (long long)((timeout_s - (long)timeout_s) * 1e9);
  ts.tv_sec += (time_t)timeout_s + (time_t)(ns / 1000000000);
  ts.tv_nsec = (long)(ns % 1000000000);
  while (sem_timedwait(&done_sem, &ts) != 0) {
    if (errno == EINTR) continue;
    bench_fail("no answer after %.0f s", timeout_s);
  }
}

/* ------------------------------------------------------------------------
 * One run: a child, its watchdog, its share of the CPUs
 * ------------------------------------------------------------------------ */

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

/* Waits for the child, killing it after limit seconds (*timed_out set). */
static int wait_child(pid_t pid, double t0, double limit, int *status,
                      struct rusage *ru, int *timed_out, char *why,
                      size_t whylen) {
  *timed_out = 0;
  for (;;) {
    pid_t r = wait4(pid, status, WNOHANG, ru);
    if (r == pid) return 0;
    if (r < 0 && errno != EINTR) {
      snprintf(why, whylen, "waitpid: %s", strerror(errno));
      return -1;
    }
    if (bench_now() - t0 > limit) {
      kill(pid, SIGKILL);
      wait4(pid, status, 0, ru);
      *timed_out = 1;
      return 0;
    }
    usleep(2000);
  }
}

/* Whatever else ran on the machine meanwhile skews the figures: the busy
 * time of all CPUs minus the child's own, over the wall time of all. */
static double others_share(long long busy0, double t0,
                           const struct rusage *ru) {
  double wall = bench_now() - t0;
  double mine = (double)ru->ru_utime.tv_sec + ru->ru_utime.tv_usec * 1e-6 +
                (double)ru->ru_stime.tv_sec + ru->ru_stime.tv_usec * 1e-6;
  double busy = (double)(busy_ticks() - busy0) / (double)sysconf(_SC_CLK_TCK);
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  double others =
      wall > 0 && ncpu > 0 ? (busy - mine) / (wall * (double)ncpu) : 0;
  /* /proc/stat counts in ticks (10 ms): ignore what could be rounding,
   * and this parent's own polling. */
  if (others < 0 || busy - mine < 0.2) others = 0;
  return others;
}

/* Why a run failed, from its status and what it left in the area. */
static void failure(int status, int timed_out, double limit, char *why,
                    size_t whylen) {
  char started[64] = "", extra[200] = "";
  if (prog->counts_processes)
    snprintf(started, sizeof started, "; %ld processes had started",
             atomic_load(&sh->progress));
  long rss = atomic_load(&sh->rss), maps = atomic_load(&sh->maps);
  if (maps > 0)
    snprintf(extra, sizeof extra, "; last seen: RSS %.0f MiB, %ld mappings",
             rss / 1048576.0, maps);
  if (timed_out)
    snprintf(why, whylen, "killed after %.0f s while %s%s%s", limit, sh->stage,
             started, extra);
  else if (WIFSIGNALED(status))
    snprintf(why, whylen, "died of %s (%d) while %s%s%s%s%s",
             signame(WTERMSIG(status)), WTERMSIG(status), sh->stage, started,
             extra, sh->note[0] ? "; " : "", sh->note);
  else
    snprintf(why, whylen, "exited with status %d: %s (while %s)",
             WEXITSTATUS(status), sh->note, sh->stage);
}

/* Runs one workload once in a child. Returns 0 and fills *out on success;
 * otherwise -1 with why in `why` (and *timed_out set if it was killed for
 * taking too long). */
static int run_once(const bench_workload_t *w, shared_t *out, char *why,
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
  double t0 = bench_now();
  double limit = bench_quick && w->timeout_s > 60 ? 60 : w->timeout_s;
  int status = 0;
  struct rusage ru;
  memset(&ru, 0, sizeof ru);
  if (wait_child(pid, t0, limit, &status, &ru, timed_out, why, whylen) != 0)
    return -1;
  *out = *sh;
  out->others = others_share(busy0, t0, &ru);
  if (*timed_out || WIFSIGNALED(status) || !WIFEXITED(status) ||
      WEXITSTATUS(status) != 0) {
    failure(status, *timed_out, limit, why, whylen);
    return -1;
  }
  return 0;
}

/* ------------------------------------------------------------------------
 * A workload's runs: the best of them, and its lines
 * ------------------------------------------------------------------------ */

/* What the runs of one workload gave so far. */
typedef struct wstate {
  result_t best[BENCH_MAX_RESULTS];
  int have, failures, runs, timed_out;
  char why[900], bestnote[600];
  double worst_others;
} wstate_t;

static bool skipped(const bench_workload_t *w) {
  return w->full_only && bench_quick;
}

static void print_value(const result_t *r) {
  double v = r->value;
  int prec = v >= 100 ? 0 : v >= 10 ? 1 : v >= 1 ? 2 : 3;
  printf("BENCH %s otpc %.*f %s\n", r->name, prec, v, r->unit);
}

static void workload_begin(const bench_workload_t *w) {
  for (int i = 0; i < BENCH_MAX_RESULTS && w->results[i]; i++) {
    if (w->desc[i]) printf("DESC %s %s\n", w->results[i], w->desc[i]);
    if (w->goal[i]) printf("GOAL %s %s\n", w->results[i], w->goal[i]);
  }
  fflush(stdout);
}

/* The note of the run shown: its own, and whether others were busy. */
static void keep_note(wstate_t *st, const shared_t *got) {
  int busy = got->others > 0.1;
  snprintf(st->bestnote, sizeof st->bestnote, "%s%s%s", got->note,
           got->note[0] && busy ? "; " : "",
           busy ? "other processes kept the CPUs busy during this run" : "");
  if (busy) {
    size_t l = strlen(st->bestnote);
    snprintf(st->bestnote + l, sizeof st->bestnote - l, " (%.0f%%)",
             got->others * 100);
  }
}

/* One run of w in a fresh child, kept if it is the best so far. */
static void workload_run(const bench_workload_t *w, wstate_t *st) {
  shared_t got;
  int to = 0;
  fprintf(stderr, "%s: %s (run %d) ...\n", prog->name, w->name, st->runs + 1);
  st->runs++;
  if (run_once(w, &got, st->why, sizeof st->why, &to) != 0) {
    st->failures++;
    st->timed_out = to;
    fprintf(stderr, "%s: %s: %s\n", prog->name, w->name, st->why);
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
    if (i == 0) keep_note(st, &got);
  }
  if (!st->have) st->have = got.nres;
}

static void workload_report(const bench_workload_t *w, const wstate_t *st) {
  if (skipped(w)) {
    for (int i = 0; i < BENCH_MAX_RESULTS && w->results[i]; i++)
      printf("NOTE %s otpc skipped in QUICK mode\n", w->results[i]);
    fflush(stdout);
    return;
  }
  for (int i = 0; i < BENCH_MAX_RESULTS && w->results[i]; i++) {
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
    fprintf(stderr,
            "%s: %s: other processes used up to %.0f%% of the CPUs during "
            "a run\n",
            prog->name, w->name, st->worst_others * 100);
  fflush(stdout);
}

/* ------------------------------------------------------------------------
 * The program
 * ------------------------------------------------------------------------ */

static void read_env(void) {
  const char *q = getenv("QUICK");
  bench_quick = q != NULL && *q != '\0' && strcmp(q, "0") != 0;
  const char *s = getenv("BENCH_SCHEDULERS");
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  nsched =
      s && atoi(s) > 0 ? (unsigned)atoi(s) : (unsigned)(cores > 0 ? cores : 1);
}

int bench_main(const bench_prog_t *p, int argc, char **argv) {
  prog = p;
  read_env();
  sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE,
            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (sh == MAP_FAILED) {
    fprintf(stderr, "%s: mmap: %s\n", prog->name, strerror(errno));
    return 1;
  }
  size_t n = prog->nworkloads;
  bool *want = calloc(n, sizeof *want);
  wstate_t *st = calloc(n, sizeof *st);
  if (want == NULL || st == NULL) {
    fprintf(stderr, "%s: out of memory\n", prog->name);
    return 1;
  }
  for (size_t i = 0; i < n; i++) {
    want[i] = argc <= 1;
    for (int a = 1; a < argc; a++)
      if (strcmp(argv[a], prog->workloads[i].name) == 0) want[i] = true;
    if (want[i]) workload_begin(&prog->workloads[i]);
  }
  for (int pass = 0; pass < reps(); pass++)
    for (size_t i = 0; i < n; i++)
      if (want[i] && !skipped(&prog->workloads[i]) &&
          (pass == 0 || prog->workloads[i].repeat))
        workload_run(&prog->workloads[i], &st[i]);
  for (size_t i = 0; i < n; i++)
    if (want[i]) workload_report(&prog->workloads[i], &st[i]);
  free(want);
  free(st);
  return 0;
}
