/*
 * test_timer.c: the timing wheel (src/rt/timer.c): firing order and ties,
 * cancel at every stage, past and far-future deadlines, callbacks that
 * re-arm, big jumps in time, a million timers, and a randomized run against
 * a reference model (a plain array scanned in full) checking every firing
 * and otpc__wheel_next after every operation.
 */
#include <stddef.h>
#include <time.h>
#include <unistd.h>

#include "rt/timer.h"
#include "test.h"

/* ------------------------------------------------------------------------
 * A timer with an id, and a log of firings
 * ------------------------------------------------------------------------ */

typedef struct item {
  otpc__timer_t t;
  int id;
} item_t;

static item_t *item_of(otpc__timer_t *t) {
  return (item_t *)((char *)t - offsetof(item_t, t));
}

#define LOG_MAX 256

typedef struct log {
  otpc__wheel_t *w;
  int n;
  int id[LOG_MAX];
  int64_t deadline[LOG_MAX]; /* t->deadline when fired */
  int64_t now[LOG_MAX];      /* the wheel's time during the callback */
} log_t;

static void log_fire(otpc__timer_t *t, void *arg) {
  log_t *l = arg;
  CHECK(l->n < LOG_MAX);
  CHECK(!t->armed);
  l->id[l->n] = item_of(t)->id;
  l->deadline[l->n] = t->deadline;
  l->now[l->n] = l->w->now;
  l->n++;
}

static void nop_fire(otpc__timer_t *t, void *arg) {
  (void)t;
  (void)arg;
}

/* ------------------------------------------------------------------------
 * Order, ties, cancel, past and far deadlines
 * ------------------------------------------------------------------------ */

TEST(wheel_order) {
  static const int64_t d[] = {50, 3,  7000, 3,      1, 4096,    100000, 64,
                              63, 65, 4095, 262144, 2, 1 << 30, 50};
  enum { N = sizeof d / sizeof d[0] };
  static otpc__wheel_t w;
  item_t it[N];
  log_t l = {.w = &w};
  otpc__wheel_init(&w, 0);
  CHECK_INT_EQ(otpc__wheel_next(&w), -1);
  for (int i = 0; i < N; i++) {
    otpc__timer_init(&it[i].t);
    it[i].id = i;
    otpc__wheel_add(&w, &it[i].t, d[i]);
    CHECK(it[i].t.armed);
  }
  CHECK_INT_EQ(otpc__wheel_count(&w), N);
  CHECK_INT_EQ(otpc__wheel_next(&w), 1);
  otpc__wheel_advance(&w, (int64_t)1 << 31, log_fire, &l);
  CHECK_INT_EQ(l.n, N);
  CHECK_INT_EQ(otpc__wheel_count(&w), 0);
  CHECK_INT_EQ(otpc__wheel_next(&w), -1);
  /* Expected: by deadline, ties by index (insertion order). */
  int used[N] = {0};
  for (int k = 0; k < N; k++) {
    int best = -1;
    for (int i = 0; i < N; i++)
      if (!used[i] && (best < 0 || d[i] < d[best])) best = i;
    used[best] = 1;
    CHECK_INT_EQ(l.id[k], best);
    CHECK_INT_EQ(l.deadline[k], d[best]);
    CHECK_INT_EQ(l.now[k], d[best]);
  }
  CHECK_INT_EQ(w.now, (int64_t)1 << 31);
}

TEST(wheel_ties_across_cascade) {
  static otpc__wheel_t w;
  item_t it[6];
  log_t l = {.w = &w};
  for (int i = 0; i < 6; i++) {
    otpc__timer_init(&it[i].t);
    it[i].id = i;
  }
  otpc__wheel_init(&w, 0);
  /* 5000: A and B placed high at 0, C after one cascade, D at the end. */
  otpc__wheel_add(&w, &it[0].t, 5000);
  otpc__wheel_add(&w, &it[1].t, 5000);
  otpc__wheel_advance(&w, 4990, log_fire, &l);
  CHECK_INT_EQ(l.n, 0);
  otpc__wheel_add(&w, &it[2].t, 5000);
  otpc__wheel_advance(&w, 4999, log_fire, &l);
  CHECK_INT_EQ(l.n, 0);
  CHECK_INT_EQ(otpc__wheel_next(&w), 1);
  otpc__wheel_add(&w, &it[3].t, 5000);
  otpc__wheel_advance(&w, 5000, log_fire, &l);
  CHECK_INT_EQ(l.n, 4);
  for (int i = 0; i < 4; i++) CHECK_INT_EQ(l.id[i], i);

  /* 8192 starts a level-2 slot: due at the very cascade that empties it. */
  l.n = 0;
  otpc__wheel_add(&w, &it[4].t, 8192);
  otpc__wheel_advance(&w, 8000, log_fire, &l);
  otpc__wheel_add(&w, &it[5].t, 8192);
  otpc__wheel_add(&w, &it[0].t, 8191);
  otpc__wheel_advance(&w, 8190, log_fire, &l);
  CHECK_INT_EQ(l.n, 0);
  otpc__wheel_advance(&w, 8191, log_fire, &l);
  CHECK_INT_EQ(l.n, 1);
  CHECK_INT_EQ(l.id[0], 0);
  CHECK_INT_EQ(otpc__wheel_next(&w), 1);
  otpc__wheel_advance(&w, 9000, log_fire, &l);
  CHECK_INT_EQ(l.n, 3);
  CHECK_INT_EQ(l.id[1], 4);
  CHECK_INT_EQ(l.id[2], 5);
  CHECK_INT_EQ(l.now[2], 8192);
}

typedef struct cancel_ctx {
  log_t log;
  item_t *victim;
} cancel_ctx_t;

static void cancel_fire(otpc__timer_t *t, void *arg) {
  cancel_ctx_t *c = arg;
  log_fire(t, &c->log);
  otpc__wheel_cancel(c->log.w, &c->victim->t);
  otpc__wheel_cancel(c->log.w, &c->victim->t); /* twice: a no-op */
}

TEST(wheel_cancel) {
  static otpc__wheel_t w;
  item_t a, b, c;
  log_t l = {.w = &w};
  otpc__timer_init(&a.t);
  otpc__timer_init(&b.t);
  otpc__timer_init(&c.t);
  a.id = 1;
  b.id = 2;
  c.id = 3;
  otpc__wheel_init(&w, 0);
  otpc__wheel_cancel(&w, &a.t); /* never added: a no-op */
  CHECK_INT_EQ(otpc__wheel_count(&w), 0);

  /* Before any cascade, and the slot is seen empty again. */
  otpc__wheel_add(&w, &a.t, 10000);
  otpc__wheel_cancel(&w, &a.t);
  CHECK(!a.t.armed);
  CHECK_INT_EQ(otpc__wheel_next(&w), -1);
  CHECK_INT_EQ(w.levels, 0);
  otpc__wheel_advance(&w, 20000, log_fire, &l);
  CHECK_INT_EQ(l.n, 0);

  /* After its cascade to level 0. */
  otpc__wheel_add(&w, &a.t, 30000);
  otpc__wheel_add(&w, &b.t, 30001);
  otpc__wheel_advance(&w, 29990, log_fire, &l);
  CHECK_INT_EQ(otpc__wheel_next(&w), 10);
  otpc__wheel_cancel(&w, &a.t);
  CHECK_INT_EQ(otpc__wheel_next(&w), 11);
  otpc__wheel_advance(&w, 40000, log_fire, &l);
  CHECK_INT_EQ(l.n, 1);
  CHECK_INT_EQ(l.id[0], 2);

  /* From a callback: a timer due at the same ms, later in the batch, and
   * one due later in the same advance; neither fires. */
  cancel_ctx_t cc = {.log = {.w = &w}, .victim = &b};
  otpc__wheel_add(&w, &a.t, 40005);
  otpc__wheel_add(&w, &b.t, 40005);
  otpc__wheel_advance(&w, 50000, cancel_fire, &cc);
  CHECK_INT_EQ(cc.log.n, 1);
  CHECK_INT_EQ(cc.log.id[0], 1);
  cc.log.n = 0;
  otpc__wheel_add(&w, &a.t, 50005);
  otpc__wheel_add(&w, &b.t, 50500);
  otpc__wheel_add(&w, &c.t, 50600);
  otpc__wheel_advance(&w, 60000, cancel_fire, &cc);
  CHECK_INT_EQ(cc.log.n, 2);
  CHECK_INT_EQ(cc.log.id[0], 1);
  CHECK_INT_EQ(cc.log.id[1], 3);

  /* A due timer, and re-adding an armed timer moves it. */
  otpc__wheel_add(&w, &a.t, 0);
  CHECK_INT_EQ(otpc__wheel_next(&w), 0);
  otpc__wheel_cancel(&w, &a.t);
  CHECK_INT_EQ(otpc__wheel_next(&w), -1);
  otpc__wheel_add(&w, &a.t, 70000);
  otpc__wheel_add(&w, &a.t, 60001);
  CHECK_INT_EQ(otpc__wheel_count(&w), 1);
  CHECK_INT_EQ(otpc__wheel_next(&w), 1);
  l.n = 0;
  otpc__wheel_advance(&w, 80000, log_fire, &l);
  CHECK_INT_EQ(l.n, 1);
  CHECK_INT_EQ(l.now[0], 60001);
  CHECK_INT_EQ(otpc__wheel_count(&w), 0);
}

TEST(wheel_past_deadlines) {
  static otpc__wheel_t w;
  item_t it[4];
  log_t l = {.w = &w};
  for (int i = 0; i < 4; i++) {
    otpc__timer_init(&it[i].t);
    it[i].id = i;
  }
  otpc__wheel_init(&w, 1000);
  otpc__wheel_add(&w, &it[0].t, 1001);
  otpc__wheel_add(&w, &it[1].t, 500);
  otpc__wheel_add(&w, &it[2].t, INT64_MIN);
  otpc__wheel_add(&w, &it[3].t, 1000);
  CHECK_INT_EQ(it[2].t.deadline, 1000); /* raised to the wheel's time */
  CHECK_INT_EQ(otpc__wheel_next(&w), 0);
  /* Time does not go back, but what is due fires. */
  otpc__wheel_advance(&w, 900, log_fire, &l);
  CHECK_INT_EQ(w.now, 1000);
  CHECK_INT_EQ(l.n, 3);
  CHECK_INT_EQ(l.id[0], 1);
  CHECK_INT_EQ(l.id[1], 2);
  CHECK_INT_EQ(l.id[2], 3);
  CHECK_INT_EQ(otpc__wheel_next(&w), 1);
  otpc__wheel_advance(&w, 1001, log_fire, &l);
  CHECK_INT_EQ(l.n, 4);
  CHECK_INT_EQ(l.id[3], 0);

  /* Due timers fire before anything else in the same advance. */
  l.n = 0;
  otpc__wheel_add(&w, &it[0].t, 1002);
  otpc__wheel_add(&w, &it[1].t, 3);
  otpc__wheel_advance(&w, 5000, log_fire, &l);
  CHECK_INT_EQ(l.n, 2);
  CHECK_INT_EQ(l.id[0], 1);
  CHECK_INT_EQ(l.now[0], 1001);
  CHECK_INT_EQ(l.id[1], 0);
}

TEST(wheel_far_future) {
  static const int64_t day = 24 * 3600 * 1000LL;
  static const int64_t d[] = {5 * day,          30 * day,         3 * 365 * day,
                              1000 * 365 * day, (int64_t)1 << 50, INT64_MAX};
  enum { N = sizeof d / sizeof d[0] };
  static otpc__wheel_t w;
  item_t it[N];
  log_t l = {.w = &w};
  otpc__wheel_init(&w, -123456789);
  for (int i = 0; i < N; i++) {
    otpc__timer_init(&it[i].t);
    it[i].id = i;
  }
  for (int i = N - 1; i >= 0; i--) otpc__wheel_add(&w, &it[i].t, d[i]);
  for (int i = 0; i < N; i++) {
    CHECK_INT_EQ(otpc__wheel_next(&w), d[i] - w.now);
    otpc__wheel_advance(&w, d[i] - 1, log_fire, &l);
    CHECK_INT_EQ(l.n, i);
    CHECK_INT_EQ(otpc__wheel_next(&w), 1);
    otpc__wheel_advance(&w, d[i], log_fire, &l);
    CHECK_INT_EQ(l.n, i + 1);
    CHECK_INT_EQ(l.id[i], i);
    CHECK_INT_EQ(l.now[i], d[i]);
  }
  CHECK_INT_EQ(otpc__wheel_count(&w), 0);

  /* The whole int64 range: the wait does not overflow. */
  otpc__wheel_init(&w, INT64_MIN);
  otpc__wheel_add(&w, &it[0].t, INT64_MAX);
  otpc__wheel_add(&w, &it[1].t, INT64_MIN + 1);
  CHECK_INT_EQ(otpc__wheel_next(&w), 1);
  otpc__wheel_advance(&w, -1, log_fire, &l);
  CHECK_INT_EQ(l.n, N + 1);
  CHECK_INT_EQ(otpc__wheel_next(&w), INT64_MAX);
  otpc__wheel_advance(&w, INT64_MAX - 1, log_fire, &l);
  CHECK_INT_EQ(l.n, N + 1);
  otpc__wheel_advance(&w, INT64_MAX, log_fire, &l);
  CHECK_INT_EQ(l.n, N + 2);
  CHECK_INT_EQ(l.id[N + 1], 0);
}

/* ------------------------------------------------------------------------
 * Callbacks that re-arm
 * ------------------------------------------------------------------------ */

typedef struct rearm {
  otpc__wheel_t w;
  item_t it;
  int calls;
  int64_t step; /* re-arm at deadline + step; <= 0 is in the past */
  int limit;
  int64_t at[200];
} rearm_t;

static void rearm_fire(otpc__timer_t *t, void *arg) {
  rearm_t *r = arg;
  CHECK(r->calls < 200);
  CHECK(!t->armed);
  r->at[r->calls++] = r->w.now;
  if (r->calls < r->limit) otpc__wheel_add(&r->w, t, t->deadline + r->step);
}

TEST(wheel_readd_from_fire) {
  static rearm_t r;
  otpc__wheel_init(&r.w, 0);
  otpc__timer_init(&r.it.t);
  r.step = 10;
  r.limit = 100;
  otpc__wheel_add(&r.w, &r.it.t, 10);
  otpc__wheel_advance(&r.w, 1000, rearm_fire, &r);
  CHECK_INT_EQ(r.calls, 100);
  for (int i = 0; i < 100; i++) CHECK_INT_EQ(r.at[i], 10 * (i + 1));
  CHECK_INT_EQ(otpc__wheel_count(&r.w), 0);

  /* Periodic past the advance: the rest waits for later advances. */
  r.calls = 0;
  r.step = 700;
  r.limit = 4;
  otpc__wheel_add(&r.w, &r.it.t, 1500);
  otpc__wheel_advance(&r.w, 3000, rearm_fire, &r);
  CHECK_INT_EQ(r.calls, 3);
  CHECK_INT_EQ(r.at[2], 2900);
  CHECK_INT_EQ(otpc__wheel_next(&r.w), 600);
  otpc__wheel_advance(&r.w, 3600, rearm_fire, &r);
  CHECK_INT_EQ(r.calls, 4);

  /* Re-armed in the past: due, fires once per advance, never loops. */
  r.calls = 0;
  r.step = -5;
  r.limit = 150;
  otpc__wheel_add(&r.w, &r.it.t, 4000);
  otpc__wheel_advance(&r.w, 5000, rearm_fire, &r);
  CHECK_INT_EQ(r.calls, 1);
  CHECK_INT_EQ(r.at[0], 4000);
  CHECK_INT_EQ(otpc__wheel_next(&r.w), 0);
  CHECK_INT_EQ(r.it.t.deadline, 4000);
  otpc__wheel_advance(&r.w, 5000, rearm_fire, &r);
  CHECK_INT_EQ(r.calls, 2);
  CHECK_INT_EQ(r.at[1], 5000);
  otpc__wheel_cancel(&r.w, &r.it.t);
  CHECK_INT_EQ(otpc__wheel_next(&r.w), -1);
}

/* ------------------------------------------------------------------------
 * Big jumps and many timers
 * ------------------------------------------------------------------------ */

static uint64_t rng_next(uint64_t *s) {
  /* xorshift64* */
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * UINT64_C(2685821657736338717);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

TEST(wheel_big_jumps) {
  /* Stepping per millisecond would take days here: the alarm fails it. */
  alarm(5);
  static otpc__wheel_t w;
  item_t it[3];
  log_t l = {.w = &w};
  uint64_t seed = 42;
  double t0 = now_s();
  otpc__wheel_init(&w, 0);
  for (int i = 0; i < 3; i++) {
    otpc__timer_init(&it[i].t);
    it[i].id = i;
  }
  for (int round = 0; round < 2000; round++) {
    int64_t base = w.now;
    int64_t d0 = base + ((int64_t)1 << 40) + (int64_t)(rng_next(&seed) >> 30);
    int64_t d1 = base + 3600 * 1000;
    otpc__wheel_add(&w, &it[0].t, d0);
    otpc__wheel_add(&w, &it[1].t, d1);
    /* An hour of sleep, then years. */
    l.n = 0;
    CHECK_INT_EQ(otpc__wheel_next(&w), 3600 * 1000);
    otpc__wheel_advance(&w, d1 + 17, log_fire, &l);
    CHECK_INT_EQ(l.n, 1);
    CHECK_INT_EQ(l.now[0], d1);
    otpc__wheel_advance(&w, d0 + (int64_t)(rng_next(&seed) >> 24), log_fire,
                        &l);
    CHECK_INT_EQ(l.n, 2);
    CHECK_INT_EQ(l.now[1], d0);
  }
  CHECK_INT_EQ(otpc__wheel_count(&w), 0);
  CHECK(now_s() - t0 < 0.5);
}

TEST(wheel_million) {
  enum { N = 1000000 };
  static otpc__wheel_t w;
  item_t *it = malloc(N * sizeof *it);
  CHECK(it != NULL);
  uint64_t seed = 7;
  otpc__wheel_init(&w, 1000);
  for (int i = 0; i < N; i++) {
    otpc__timer_init(&it[i].t);
    it[i].id = i;
    otpc__wheel_add(&w, &it[i].t, 1000 + (int64_t)(rng_next(&seed) % 20000000));
  }
  CHECK_INT_EQ(otpc__wheel_count(&w), N);
  /* Cancel every third; fire the rest in about 2,000 advances. */
  for (int i = 0; i < N; i += 3) otpc__wheel_cancel(&w, &it[i].t);
  size_t left = otpc__wheel_count(&w);
  CHECK_INT_EQ(left, N - (N + 2) / 3);
  int64_t last = INT64_MIN;
  size_t fired = 0;
  while (otpc__wheel_count(&w) > 0) {
    int64_t n = otpc__wheel_next(&w);
    CHECK(n >= 0);
    int64_t before = (int64_t)otpc__wheel_count(&w);
    otpc__wheel_advance(&w, w.now + n + 10000, nop_fire, NULL);
    fired += (size_t)(before - (int64_t)otpc__wheel_count(&w));
    CHECK(w.now > last);
    last = w.now;
  }
  CHECK_INT_EQ(fired, left);
  for (int i = 0; i < N; i++) CHECK(!it[i].t.armed);
  free(it);
}

/* ------------------------------------------------------------------------
 * Randomized, against a reference model
 * ------------------------------------------------------------------------ */

#define POOL 256

typedef struct model_timer {
  int armed;
  int due;   /* added at or before the time: fires at the next advance */
  int batch; /* due when the running advance began: fires first */
  int64_t deadline;
  uint64_t seq;
} model_timer_t;

static struct {
  otpc__wheel_t w;
  item_t it[POOL];
  model_timer_t m[POOL];
  int64_t now;    /* the model's time */
  int64_t target; /* of the running advance */
  uint64_t seq, rng;
  size_t count;
  int no_cancel; /* no cancel, no re-add of an armed timer: next is exact */
  long fired, inexact, sleeps, early_wakes;
} M;

static uint64_t rnd(uint64_t n) {
  return rng_next(&M.rng) % n;
}

static int64_t sat_add(int64_t a, int64_t b) {
  int64_t r;
  return __builtin_add_overflow(a, b, &r) ? (b < 0 ? INT64_MIN : INT64_MAX) : r;
}

static void m_add(int i, int64_t d) {
  model_timer_t *m = &M.m[i];
  if (m->armed) M.count--;
  m->armed = 1;
  m->due = d <= M.now;
  m->batch = 0;
  m->deadline = m->due ? M.now : d;
  m->seq = ++M.seq;
  M.count++;
  otpc__wheel_add(&M.w, &M.it[i].t, d);
  CHECK(M.it[i].t.armed);
  CHECK_INT_EQ(M.it[i].t.deadline, m->deadline);
}

static void m_cancel(int i) {
  if (M.m[i].armed) M.count--;
  M.m[i].armed = 0;
  otpc__wheel_cancel(&M.w, &M.it[i].t);
  CHECK(!M.it[i].t.armed);
}

static int64_t m_deadline(void) {
  /* INT64_MAX and the like are in wheel_far_future: here the model's time
   * must stay far from overflow. */
  uint64_t r = rnd(1000), span;
  if (r < 80) return sat_add(M.now, -(int64_t)rnd(2000)); /* past */
  if (r < 120) return M.now;
  if (r < 450) return sat_add(M.now, 1 + (int64_t)rnd(64));
  span = r < 700   ? 5000
         : r < 900 ? 10000000
         : r < 995 ? (uint64_t)1 << 40
                   : (uint64_t)1 << 50;
  return sat_add(M.now, (int64_t)rnd(span));
}

/* The timer the model fires next in the running advance, or -1. */
static int m_pick(void) {
  int best = -1;
  for (int i = 0; i < POOL; i++)
    if (M.m[i].armed && M.m[i].batch &&
        (best < 0 || M.m[i].seq < M.m[best].seq))
      best = i;
  if (best >= 0) return best;
  for (int i = 0; i < POOL; i++) {
    model_timer_t *m = &M.m[i];
    if (!m->armed || m->due || m->deadline > M.target) continue;
    if (best < 0 || m->deadline < M.m[best].deadline ||
        (m->deadline == M.m[best].deadline && m->seq < M.m[best].seq))
      best = i;
  }
  return best;
}

/* What otpc__wheel_next must answer, exactly. */
static int64_t m_next(void) {
  int64_t min = INT64_MAX;
  int any = 0;
  for (int i = 0; i < POOL; i++) {
    if (!M.m[i].armed) continue;
    if (M.m[i].due) return 0;
    if (!any || M.m[i].deadline < min) min = M.m[i].deadline;
    any = 1;
  }
  if (!any) return -1;
  uint64_t wait = (uint64_t)min - (uint64_t)M.now;
  return wait > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)wait;
}

static int m_random_timer(void) {
  int i = (int)rnd(POOL);
  if (M.no_cancel)
    for (int k = 0; k < POOL && M.m[i].armed; k++) i = (i + 1) % POOL;
  return M.no_cancel && M.m[i].armed ? -1 : i;
}

static void m_fire(otpc__timer_t *t, void *arg) {
  (void)arg;
  int i = item_of(t)->id;
  int want = m_pick();
  CHECK_INT_EQ(i, want);
  CHECK(!t->armed);
  model_timer_t *m = &M.m[i];
  CHECK_INT_EQ(t->deadline, m->deadline);
  if (!m->batch) M.now = m->deadline;
  CHECK_INT_EQ(M.w.now, M.now);
  m->armed = 0;
  M.count--;
  M.fired++;
  CHECK_INT_EQ(otpc__wheel_count(&M.w), M.count);
  /* The callback works on the wheel too; on average it adds less than one
   * timer, so every advance ends. */
  uint64_t r = rnd(100);
  if (r < 30) {
    m_add(i, m_deadline());
  } else if (r < 45) {
    int j = m_random_timer();
    if (j >= 0) m_add(j, m_deadline());
  } else if (r < 60 && !M.no_cancel) {
    m_cancel((int)rnd(POOL));
  }
}

static void m_advance(int64_t to) {
  M.target = to < M.now ? M.now : to;
  for (int i = 0; i < POOL; i++)
    if (M.m[i].armed && M.m[i].due) {
      M.m[i].due = 0;
      M.m[i].batch = 1;
    }
  otpc__wheel_advance(&M.w, to, m_fire, NULL);
  CHECK_INT_EQ(m_pick(), -1); /* nothing left that should have fired */
  for (int i = 0; i < POOL; i++) M.m[i].batch = 0;
  M.now = M.target;
  CHECK_INT_EQ(M.w.now, M.now);
}

static void m_check(void) {
  CHECK_INT_EQ(otpc__wheel_count(&M.w), M.count);
  int64_t want = m_next(), got = otpc__wheel_next(&M.w);
  if (want <= 0 || M.no_cancel) {
    CHECK_INT_EQ(got, want);
  } else {
    CHECK(got > 0 && got <= want);
    if (got != want) M.inexact++;
  }
  for (int i = 0; i < POOL; i++) {
    CHECK_INT_EQ(M.it[i].t.armed, M.m[i].armed);
    if (M.m[i].armed) CHECK_INT_EQ(M.it[i].t.deadline, M.m[i].deadline);
  }
}

/* Sleeps as a scheduler would, for next(), twice: with nothing else
 * happening, the second sleep at the latest must fire something. */
static void m_sleep(void) {
  for (int round = 0; round < 2; round++) {
    int64_t n = otpc__wheel_next(&M.w);
    if (n < 0) return;
    long before = M.fired;
    M.sleeps++;
    m_advance(sat_add(M.now, n));
    m_check();
    if (M.fired > before) return;
    M.early_wakes++;
    CHECK(!M.no_cancel);
  }
  CHECK(!"two sleeps without a firing");
}

static void model_run(uint64_t seed, long ops, int no_cancel) {
  memset(&M, 0, sizeof M);
  M.rng = seed;
  M.no_cancel = no_cancel;
  M.now = -(1 << 20) + 12345; /* crosses zero, and a top-level boundary */
  otpc__wheel_init(&M.w, M.now);
  for (int i = 0; i < POOL; i++) {
    otpc__timer_init(&M.it[i].t);
    M.it[i].id = i;
  }
  m_check();
  for (long op = 0; op < ops; op++) {
    uint64_t r = rnd(100);
    if (r < 40) {
      int i = m_random_timer();
      if (i >= 0) m_add(i, m_deadline());
    } else if (r < 55 && !no_cancel) {
      m_cancel((int)rnd(POOL));
    } else if (r < 95) {
      uint64_t k = rnd(100);
      int64_t step = k < 80   ? (int64_t)rnd(20)
                     : k < 97 ? (int64_t)rnd(100000)
                              : (int64_t)rnd((uint64_t)1 << 40);
      m_advance(sat_add(M.now, step - (k == 0))); /* now and then, backwards */
    } else {
      m_sleep();
    }
    m_check();
  }
  /* Drain what can ever fire. */
  m_advance(INT64_MAX - 2000);
  m_check();
}

TEST(wheel_model) {
  model_run(0x9e3779b97f4a7c15u, 100000, 0);
  printf(
      "  %ld fired, %ld sleeps, %ld woke early; next() a lower bound %ld "
      "times\n",
      M.fired, M.sleeps, M.early_wakes, M.inexact);
  CHECK(M.fired > 50000);
  CHECK(M.sleeps > 1000);
}

TEST(wheel_model_next_exact) {
  model_run(12345, 50000, 1);
  CHECK(M.fired > 20000);
  CHECK_INT_EQ(M.early_wakes, 0);
}
