/*
 * harness.h: the harness that rt_bench.c and otp_bench.c share. A program
 * gives bench_main its table of workloads; bench_main runs every workload
 * in a forked child with a fresh node, each throughput 3 times (QUICK=1:
 * once) in passes over all the workloads, keeps the best run, and prints
 * the lines bench/run.sh reads:
 *
 *   DESC / GOAL <result> <text>              first, for every result
 *   BENCH <result> otpc <value> <unit>       (value "failed"/"timeout" too)
 *   NOTE  <result> otpc <text>
 *
 * The child reports through the bench_ functions below, which write to an
 * area shared with the parent (harness.c). Names are bench_: they are the
 * benchmark programs' own, not the library's (otpc_).
 */
#ifndef OTPC_BENCH_HARNESS_H
#define OTPC_BENCH_HARNESS_H

#include <stddef.h>

#define BENCH_MAX_RESULTS 4

/* A workload: run() in a fresh child reports its figures with
 * bench_result() and returns, or gives up with bench_fail(). */
typedef struct bench_workload {
  const char *name; /* to select it on the command line */
  void (*run)(void);
  const char *results[BENCH_MAX_RESULTS]; /* the names it reports, in order */
  int repeat;       /* a throughput or a time: best of 3 runs (QUICK: 1) */
  int full_only;    /* skipped with QUICK=1 */
  double timeout_s; /* the parent kills it after this (QUICK: 60 at most) */
  const char *desc[BENCH_MAX_RESULTS];
  const char *goal[BENCH_MAX_RESULTS];
} bench_workload_t;

/* A program: its name (the prefix of its lines on stderr) and its table. */
typedef struct bench_prog {
  const char *name;
  const bench_workload_t *workloads;
  size_t nworkloads;
  int counts_processes; /* failure notes say how many processes had started
                           (bench_progress) */
} bench_prog_t;

/* QUICK=1 (anything but empty or "0"): short runs. Set by bench_main
 * before any workload runs, read-only after. */
extern int bench_quick;

/* Runs the workloads named in argv (all without any); returns main's
 * exit status. */
int bench_main(const bench_prog_t *prog, int argc, char **argv);

/* ---- for the workloads, in the child ----------------------------------- */

void bench_result(const char *name, double value, const char *unit,
                  int lower_better);
/* What the child is doing, for the note if it fails or hangs. */
__attribute__((format(printf, 1, 2))) void bench_stage(const char *fmt, ...);
/* Anything worth telling: the NOTE of the best run. */
__attribute__((format(printf, 1, 2))) void bench_note(const char *fmt, ...);
/* Gives up: the parent reports the workload as failed, with why. */
__attribute__((format(printf, 1, 2))) _Noreturn void bench_fail(const char *fmt,
                                                                ...);
/* Processes started so far, and the last RSS (bytes) and mapping count
 * seen: what a failure note says of a child that died or hung. */
void bench_progress(long started);
void bench_seen(long rss, long maps);

/* A node with BENCH_SCHEDULERS schedulers (else the online cores);
 * max_processes 0 for the default. Either fails the workload on error. */
void bench_node_start(size_t max_processes);
void bench_node_stop(void);

/* The main thread waits (bench_wait_done, failing after timeout_s) for
 * the workload's processes to say they are done (bench_signal_done). */
void bench_signal_done(void);
void bench_wait_done(double timeout_s);

double bench_now(void);     /* monotonic clock, seconds */
long bench_rss_bytes(void); /* this process's resident set */

#endif
