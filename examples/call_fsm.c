/*
 * call_fsm.c: a telephone call as a gen_statem, one process per call, and
 * a switch full of them: 100,000 concurrent calls (or the count given as
 * the first argument) driven by a few driver processes.
 *
 *   idle --dial--> dialing --route--> ringing --answer--> connected
 *                     |                  |              hold |  ^ resume
 *                dial timeout       ring timeout             v  |
 *                     |                  |               on_hold (hold limit:
 *                     v                  v                back to connected)
 *                   ended <--------------+------ hangup, max duration
 *
 * Timeouts: dial and ring are state timeouts (a state change cancels
 * them), the hold limit is a state timeout that moves the call back to
 * connected, the call's maximum duration is a generic timeout that lives
 * across connected and on_hold. A hold asked for while still ringing is
 * postponed until the call is connected. Entering 'ended' reports the
 * outcome and stops the process.
 *
 * The drivers take every call through the phases together, so that all
 * calls are alive at once: dial; route and answer (every 10th call is put
 * on hold before it is answered, which it postpones; every 50th call is
 * never answered: its caller lets it ring briefly, and it ends by its ring
 * timeout); hold; a sweep; resume; hang up. At the sweep, the peak, every
 * answered call is on hold with two timeouts armed (the hold limit and
 * the maximum duration); each driver asks each of its calls for its
 * state, which also makes sure each has caught up with what was sent. The
 * resident memory then, less the memory before the calls started, is the
 * memory per call.
 *
 *   ./example_call_fsm [calls] [drivers]     (CALL_FSM_PHASES=1: timings)
 */
#include <otpc.h>
#include <otpc/gen_statem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DIAL_MS 10000
#define RING_MS 30000      /* how long a caller lets it ring, normally */
#define SHORT_RING_MS 100  /* ...and the impatient callers nobody answers */
#define HOLD_LIMIT_MS 60000
#define MAX_CALL_MS 3600000
#define UNANSWERED_EVERY 50

/* ------------------------------------------------------------------------
 * One call
 * ------------------------------------------------------------------------ */

typedef struct call {
  otpc_pid_t notify;   /* told when the call ends */
  uint32_t id;
  uint32_t ring_ms;    /* the caller's: how long to let it ring */
  uint32_t holds;      /* times put on hold */
  const char *outcome; /* why it ended (an atom's name) */
} call_t;

static void end_call(call_t *c, otpc_sm_result_t *r, const char *outcome) {
  c->outcome = outcome;
  otpc_sm_next_state(r, "ended");
}

static bool is(otpc_term_t t, const char *atom) {
  return otpc_term_atom_eq(t, atom, strlen(atom));
}

/* What every state does with what it does not handle itself: answers a
 * status call with the state, drops the rest. */
static void common(const otpc_sm_event_t *ev, otpc_sm_result_t *r) {
  if (ev->type == OTPC_SM_CALL) otpc_sm_replyf(r, ev->from, "~t", ev->state);
}

/* {dial, Number, RingMs} */
static void idle(const otpc_sm_event_t *ev, void **data, otpc_sm_result_t *r) {
  call_t *c = *data;
  int ring_ms;
  if (ev->type == OTPC_SM_CAST && is(otpc_term_tuple_elem(ev->content, 0), "dial") &&
      otpc_term_get_int(otpc_term_tuple_elem(ev->content, 2), &ring_ms) == 0 &&
      ring_ms >= 0) {
    c->ring_ms = (uint32_t)ring_ms;
    otpc_sm_next_state(r, "dialing");
  } else {
    common(ev, r);
  }
}

static void dialing(const otpc_sm_event_t *ev, void **data,
                    otpc_sm_result_t *r) {
  if (ev->type == OTPC_SM_ENTER)
    otpc_sm_state_timeout(r, DIAL_MS, NULL);
  else if (ev->type == OTPC_SM_CAST && is(ev->content, "route"))
    otpc_sm_next_state(r, "ringing");
  else if (ev->type == OTPC_SM_STATE_TIMEOUT)
    end_call(*data, r, "dial_timeout");
  else
    common(ev, r);
}

static void ringing(const otpc_sm_event_t *ev, void **data,
                    otpc_sm_result_t *r) {
  call_t *c = *data;
  if (ev->type == OTPC_SM_ENTER)
    otpc_sm_state_timeout(r, c->ring_ms, NULL);
  else if (ev->type == OTPC_SM_CAST && is(ev->content, "answer"))
    otpc_sm_next_state(r, "connected");
  else if (ev->type == OTPC_SM_CAST && is(ev->content, "hold"))
    otpc_sm_postpone(r); /* once connected */
  else if (ev->type == OTPC_SM_CAST && is(ev->content, "hangup"))
    end_call(*data, r, "abandoned");
  else if (ev->type == OTPC_SM_STATE_TIMEOUT)
    end_call(*data, r, "no_answer");
  else
    common(ev, r);
}

static void connected(const otpc_sm_event_t *ev, void **data,
                      otpc_sm_result_t *r) {
  call_t *c = *data;
  if (ev->type == OTPC_SM_ENTER) {
    if (is(ev->content, "ringing")) /* the call starts: limit it */
      otpc_sm_generic_timeout(r, "max_duration", MAX_CALL_MS, NULL);
  } else if (ev->type == OTPC_SM_CAST && is(ev->content, "hold")) {
    c->holds++;
    otpc_sm_next_state(r, "on_hold");
  } else if (ev->type == OTPC_SM_CAST && is(ev->content, "hangup")) {
    end_call(c, r, "hangup");
  } else if (ev->type == OTPC_SM_GENERIC_TIMEOUT) {
    end_call(c, r, "max_duration");
  } else {
    common(ev, r);
  }
}

static void on_hold(const otpc_sm_event_t *ev, void **data,
                    otpc_sm_result_t *r) {
  if (ev->type == OTPC_SM_ENTER)
    otpc_sm_state_timeout(r, HOLD_LIMIT_MS, NULL);
  else if (ev->type == OTPC_SM_CAST && is(ev->content, "resume"))
    otpc_sm_next_state(r, "connected");
  else if (ev->type == OTPC_SM_STATE_TIMEOUT) /* the hold limit */
    otpc_sm_next_state(r, "connected");
  else if (ev->type == OTPC_SM_CAST && is(ev->content, "hangup"))
    end_call(*data, r, "hangup");
  else if (ev->type == OTPC_SM_GENERIC_TIMEOUT)
    end_call(*data, r, "max_duration");
  else
    common(ev, r);
}

static void ended(const otpc_sm_event_t *ev, void **data, otpc_sm_result_t *r) {
  call_t *c = *data;
  if (ev->type == OTPC_SM_ENTER) {
    otpc_sendf(c->notify, "{ended, ~u, ~a}", (uint64_t)c->id, c->outcome);
    otpc_sm_stop(r, NULL); /* normal: no report */
  }
}

static void call_init(void *arg, void **data, otpc_sm_result_t *r) {
  const call_t *proto = arg;
  /* Process memory: freed when the call's process ends, however. */
  call_t *c = otpc_palloc(sizeof *c);
  if (c == NULL) {
    otpc_sm_stop(r, otpc_term_fmt("enomem"));
    return;
  }
  *c = *proto;
  *data = c;
  otpc_sm_next_state(r, "idle");
}

static const otpc_sm_state_t call_states[] = {
    {"idle", idle},           {"dialing", dialing}, {"ringing", ringing},
    {"connected", connected}, {"on_hold", on_hold}, {"ended", ended}};

static const otpc_gen_statem_t call_fsm = {
    .name = "call_fsm",
    .callback_mode = OTPC_SM_STATE_FUNCTIONS,
    .state_enter = true,
    .init = call_init,
    .states = call_states,
    .nstates = sizeof call_states / sizeof call_states[0]};

/* ------------------------------------------------------------------------
 * Drivers: each owns a slice of the calls and takes it through the phases
 * the main process announces. The calls tell a collector, not the driver,
 * when they end: the driver makes calls to them, and a mailbox full of
 * notices would make each of its receives look through them.
 * ------------------------------------------------------------------------ */

enum { START, DIAL, CONNECT, HOLD, SWEEP, RESUME, HANGUP, NPHASES };
#define EARLY_HOLD_EVERY 10

typedef struct driver {
  otpc_pid_t main, collector;
  uint32_t first, count;
  otpc_pid_t *calls;
} driver_t;

static int start_calls(driver_t *d) {
  for (uint32_t i = 0; i < d->count; i++) {
    call_t proto = {.notify = d->collector, .id = d->first + i};
    otpc_sm_opts_t o = {.link = true};
    int rc = otpc_gen_statem_start(&call_fsm, &proto, &o, &d->calls[i], NULL);
    if (rc != 0) return rc;
  }
  return 0;
}

/* The casts of one phase, to each call of the driver. */
static void cast_all(driver_t *d, int phase) {
  otpc_buf_t *dial = otpc_term_fmt("{dial, <<\"5551234\">>, ~i}", RING_MS);
  otpc_buf_t *dial_short = otpc_term_fmt("{dial, <<\"5551234\">>, ~i}", SHORT_RING_MS);
  otpc_buf_t *route = otpc_term_fmt("route"), *answer = otpc_term_fmt("answer");
  otpc_buf_t *hold = otpc_term_fmt("hold"), *resume = otpc_term_fmt("resume");
  otpc_buf_t *hangup = otpc_term_fmt("hangup");
  for (uint32_t i = 0; i < d->count; i++) {
    otpc_pid_t c = d->calls[i];
    bool early = (d->first + i) % EARLY_HOLD_EVERY == 0;
    bool unanswered = (d->first + i) % UNANSWERED_EVERY == 0;
    switch (phase) {
      case DIAL: otpc_gen_statem_cast(c, unanswered ? dial_short : dial); break;
      case CONNECT:
        otpc_gen_statem_cast(c, route);
        if (early) otpc_gen_statem_cast(c, hold); /* postponed: ringing */
        if (!unanswered) otpc_gen_statem_cast(c, answer);
        break;
      case HOLD:
        if (!early) otpc_gen_statem_cast(c, hold);
        break;
      case RESUME: otpc_gen_statem_cast(c, resume); break;
      case HANGUP: otpc_gen_statem_cast(c, hangup); break;
    }
  }
  otpc_buf_unref(dial);
  otpc_buf_unref(dial_short);
  otpc_buf_unref(route);
  otpc_buf_unref(answer);
  otpc_buf_unref(hold);
  otpc_buf_unref(resume);
  otpc_buf_unref(hangup);
}

/* Asks every call for its state: counts those on hold. */
static uint64_t sweep(driver_t *d) {
  otpc_buf_t *status = otpc_term_fmt("status"), *reply;
  uint64_t on_hold = 0;
  for (uint32_t i = 0; i < d->count; i++) {
    if (otpc_gen_statem_call(d->calls[i], status, 10000, &reply) != 0) continue;
    if (is(otpc_buf_term(reply), "on_hold")) on_hold++;
    otpc_buf_unref(reply);
  }
  otpc_buf_unref(status);
  return on_hold;
}

/* How calls end; the index in the counts. */
static const char *const outcomes[] = {"hangup", "no_answer", "dial_timeout",
                                       "abandoned", "max_duration"};
#define NOUTCOMES 5

/* The collector of a driver's calls: waits until every call has ended,
 * then tells the main process how many ended how, and when the last
 * hangup came. */
static void collector(void *arg) {
  driver_t *d = arg;
  otpc_pattern_t *p;
  otpc_pattern_compile("{ended, _, ~a}", &p, NULL);
  uint64_t count[NOUTCOMES] = {0};
  int64_t last_hangup = 0;
  for (uint32_t n = 0; n < d->count; n++) {
    otpc_buf_t *m;
    otpc_atom_t outcome;
    if (otpc_receive(p, 120000, &m, &outcome) != 0) break;
    otpc_buf_unref(m);
    for (int k = 0; k < NOUTCOMES; k++)
      if (outcome == otpc_atom(outcomes[k])) count[k]++;
    if (outcome == otpc_atom("hangup")) last_hangup = otpc_now_ms();
  }
  otpc_pattern_free(p);
  otpc_sendf(d->main, "{finished, [~u, ~u, ~u, ~u, ~u], ~l}", count[0],
             count[1], count[2], count[3], count[4], last_hangup);
}

static void driver(void *arg) {
  driver_t *d = arg;
  otpc_pattern_t *p;
  otpc_pattern_compile("{phase, ~i}", &p, NULL);
  for (;;) {
    otpc_buf_t *m;
    int phase;
    if (otpc_receive(p, OTPC_INFINITY, &m, &phase) != 0) break;
    otpc_buf_unref(m);
    uint64_t result = 0;
    if (phase == START && start_calls(d) != 0) otpc_exit_atom(otpc_atom("start_failed"));
    if (phase >= DIAL && phase <= HANGUP && phase != SWEEP) cast_all(d, phase);
    if (phase == SWEEP) result = sweep(d);
    otpc_sendf(d->main, "{phase_done, ~i, ~u}", phase, result);
    if (phase == HANGUP) break;
  }
  otpc_pattern_free(p);
}

/* ------------------------------------------------------------------------
 * The switch
 * ------------------------------------------------------------------------ */

typedef struct config {
  uint32_t calls, drivers;
  int failed;
} config_t;

static size_t rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long pages = 0, resident = 0;
  if (f != NULL) {
    if (fscanf(f, "%lu %lu", &pages, &resident) != 2) resident = 0;
    fclose(f);
  }
  return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* What a run measured. */
typedef struct results {
  int64_t t_phase[NPHASES]; /* when each phase began */
  size_t rss0, rss_idle, rss_peak, procs, control_block;
  uint64_t on_hold, ended, count[NOUTCOMES];
  int64_t last_hangup, t_end;
} results_t;

/* Announces each phase to every driver and waits until all have done it;
 * samples memory when every call is idle and at the peak. */
static bool run_phases(driver_t *ds, const otpc_pid_t *drivers, uint32_t nd,
                       results_t *res) {
  otpc_pattern_t *done;
  otpc_pattern_compile("{phase_done, ~i, ~u}", &done, NULL);
  bool ok = true;
  for (int k = START; k < NPHASES && ok; k++) {
    res->t_phase[k] = otpc_now_ms();
    for (uint32_t i = 0; i < nd; i++) otpc_sendf(drivers[i], "{phase, ~i}", k);
    for (uint32_t i = 0; i < nd && ok; i++) {
      otpc_buf_t *m;
      int got;
      uint64_t result;
      ok = otpc_receive(done, 240000, &m, &got, &result) == 0;
      if (!ok) break;
      otpc_buf_unref(m);
      if (k == SWEEP) res->on_hold += result;
    }
    if (k == START) res->rss_idle = rss_bytes(); /* every call idle, no timer */
    if (k == SWEEP) { /* every call set up and caught up: the peak */
      otpc_proc_info_t pi = {0};
      res->rss_peak = rss_bytes();
      res->procs = otpc_process_count();
      otpc_process_info(ds[0].calls[1], &pi); /* an answered call */
      res->control_block = pi.memory;
    }
    if (getenv("CALL_FSM_PHASES"))
      printf("phase %d: %lld ms\n", k,
             (long long)(otpc_now_ms() - res->t_phase[k]));
  }
  otpc_pattern_free(done);
  return ok;
}

/* Waits for every collector's counts. */
static bool await_collectors(uint32_t nd, results_t *res) {
  otpc_pattern_t *finished;
  otpc_pattern_compile("{finished, [~u, ~u, ~u, ~u, ~u], ~l}", &finished, NULL);
  bool ok = true;
  for (uint32_t i = 0; i < nd && ok; i++) {
    otpc_buf_t *m;
    uint64_t c[NOUTCOMES];
    int64_t last;
    ok = otpc_receive(finished, 240000, &m, &c[0], &c[1], &c[2], &c[3], &c[4],
                      &last) == 0;
    if (!ok) break;
    otpc_buf_unref(m);
    for (int k = 0; k < NOUTCOMES; k++) {
      res->count[k] += c[k];
      res->ended += c[k];
    }
    if (last > res->last_hangup) res->last_hangup = last;
  }
  res->t_end = otpc_now_ms();
  otpc_pattern_free(finished);
  return ok;
}

/* Throughput: the set-up of the machines, then their lifecycle up to the
 * last hangup, less the time the sweep (a call to each) took. */
static void print_results(const results_t *res, uint32_t n, uint32_t nd) {
  int64_t start_ms = res->t_phase[DIAL] - res->t_phase[START];
  int64_t sweep_ms = res->t_phase[RESUME] - res->t_phase[SWEEP];
  int64_t life_ms = res->last_hangup - res->t_phase[DIAL] - sweep_ms;
  uint64_t hangups = res->count[0];
  if (start_ms < 1) start_ms = 1;
  if (life_ms < 1) life_ms = 1;
  printf("%u concurrent calls, %u drivers, %zu processes at the peak\n", n, nd,
         res->procs);
  printf("started: %u machines in %lld ms (%.0f starts/s)\n", n,
         (long long)start_ms, n * 1000.0 / start_ms);
  printf("lifecycle: %llu calls answered and hung up in %lld ms "
         "(%.0f calls/s, %.0f events/s)\n",
         (unsigned long long)hangups, (long long)life_ms,
         hangups * 1000.0 / life_ms, hangups * 7 * 1000.0 / life_ms);
  printf("on hold at the peak: %llu; ends:", (unsigned long long)res->on_hold);
  for (int k = 0; k < NOUTCOMES; k++)
    printf(" %s %llu", outcomes[k], (unsigned long long)res->count[k]);
  printf("\nmemory: %.0f bytes per idle call; %.0f per call on hold with two "
         "timeouts armed (resident); control block %zu bytes\n",
         (double)(res->rss_idle > res->rss0 ? res->rss_idle - res->rss0 : 0) / n,
         (double)(res->rss_peak > res->rss0 ? res->rss_peak - res->rss0 : 0) / n,
         res->control_block);
  printf("total %lld ms\n", (long long)(res->t_end - res->t_phase[START]));
}

static void switchboard(void *arg) {
  config_t *cfg = arg;
  uint32_t n = cfg->calls, nd = cfg->drivers;
  driver_t *ds = calloc(nd, sizeof *ds);
  otpc_pid_t *drivers = calloc(nd, sizeof *drivers);
  results_t *res = calloc(1, sizeof *res);
  res->rss0 = rss_bytes();
  for (uint32_t i = 0; i < nd; i++) {
    ds[i].main = otpc_self();
    ds[i].first = (uint32_t)((uint64_t)n * i / nd);
    ds[i].count = (uint32_t)((uint64_t)n * (i + 1) / nd) - ds[i].first;
    ds[i].calls = calloc(ds[i].count, sizeof(otpc_pid_t));
    otpc_spawn_opts_t co = {.link = true, .name = "collector"};
    otpc_spawn(collector, &ds[i], &co, &ds[i].collector);
    otpc_spawn_opts_t so = {.link = true, .name = "driver"};
    otpc_spawn(driver, &ds[i], &so, &drivers[i]);
  }
  if (!run_phases(ds, drivers, nd, res) || !await_collectors(nd, res) ||
      res->ended != n) {
    printf("not every call ended: %llu of %u\n",
           (unsigned long long)res->ended, n);
    cfg->failed = 1;
  }
  print_results(res, n, nd);
  for (uint32_t i = 0; i < nd; i++) free(ds[i].calls);
  free(ds);
  free(drivers);
  free(res);
}

int main(int argc, char **argv) {
  config_t cfg = {.calls = 100000, .drivers = 4};
  if (argc > 1) cfg.calls = (uint32_t)strtoul(argv[1], NULL, 10);
  if (argc > 2) cfg.drivers = (uint32_t)strtoul(argv[2], NULL, 10);
  if (cfg.calls < cfg.drivers || cfg.drivers == 0) {
    fprintf(stderr, "usage: %s [calls >= drivers] [drivers > 0]\n", argv[0]);
    return 2;
  }
  int rc = otpc_main(NULL, switchboard, &cfg);
  return rc != 0 || cfg.failed ? 1 : 0;
}
