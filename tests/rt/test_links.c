/*
 * test_links.c: a process's link and monitor tables against a model.
 * Tables of 32 entries and more carry a hash index (signal.c); random
 * keys make its probe chains collide, and a long run of adds and removes
 * must agree, step by step, with a plain array kept beside it.
 */
#include <stdlib.h>

#include "rt/rt_int.h"
#include "test.h"

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint32_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)rng;
}

TEST(link_table_agrees_with_a_model) {
  enum { POOL = 3000, STEPS = 300000 };
  static otpc_pid_t pool[POOL];
  static bool linked[POOL];
  for (int i = 0; i < POOL; i++) { /* distinct random pids */
    bool dup;
    do {
      pool[i] = (otpc_pid_t){OTPC_ATOM_NONODE, next() % 100000, next() % 4, 0};
      dup = false;
      for (int j = 0; j < i && !dup; j++) dup = otpc_pid_eq(pool[i], pool[j]);
    } while (dup);
  }
  otpc__slab_init(); /* the extension comes from a pool: no node here */
  otpc__proc_t *p = calloc(1, sizeof *p);
  size_t n = 0;
  for (int step = 0; step < STEPS; step++) {
    /* Grow towards the whole pool, then shrink, then grow again. */
    int phase = (step / 50000) % 2;
    int i = (int)(next() % POOL);
    bool add = (next() % 100) < (phase == 0 ? 70u : 30u);
    if (add) {
      CHECK_INT_EQ(otpc__link_add(p, pool[i]), 0);
      if (!linked[i]) n++;
      linked[i] = true;
    } else {
      CHECK_INT_EQ(otpc__link_remove(p, pool[i]), linked[i]);
      if (linked[i]) n--;
      linked[i] = false;
    }
    if (step % 1000 == 0) CHECK_INT_EQ(otpc__link_count(p), n);
  }
  /* Every pid is where the model says. */
  for (int i = 0; i < POOL; i++) CHECK_INT_EQ(otpc__link_remove(p, pool[i]), linked[i]);
  CHECK_INT_EQ(otpc__link_count(p), 0);
  free(p->ext->links);
  otpc__ext_free(p->ext);
  free(p);
  otpc__slab_destroy();
}

TEST(monitor_table_agrees_with_a_model) {
  enum { POOL = 3000, STEPS = 300000 };
  static otpc_ref_t pool[POOL];
  static bool held[POOL];
  for (int i = 0; i < POOL; i++) /* distinct: the first word is i */
    pool[i] = (otpc_ref_t){OTPC_ATOM_NONODE, 0, 3, {(uint32_t)i, next(), next() % 7}};
  otpc__slab_init(); /* the extension and a small table come from pools */
  otpc__proc_t *p = calloc(1, sizeof *p);
  otpc_pid_t other = {OTPC_ATOM_NONODE, 1, 0, 0};
  size_t n = 0;
  for (int step = 0; step < STEPS; step++) {
    int phase = (step / 50000) % 2;
    int i = (int)(next() % POOL);
    bool add = (next() % 100) < (phase == 0 ? 70u : 30u);
    if (add && !held[i]) { /* a ref is added once, as monitors are */
      CHECK_INT_EQ(otpc__mon_add(p, &pool[i], other, MON_WATCHING, NULL), 0);
      held[i] = true;
      n++;
    } else if (!add) {
      otpc_pid_t target;
      CHECK_INT_EQ(otpc__mon_remove_watching(p, &pool[i], &target), held[i]);
      if (held[i]) n--;
      held[i] = false;
    }
    if (step % 1000 == 0) CHECK_INT_EQ(otpc__mon_count(p, MON_WATCHING), n);
  }
  for (int i = 0; i < POOL; i++) {
    otpc_pid_t target;
    CHECK_INT_EQ(otpc__mon_remove_watching(p, &pool[i], &target), held[i]);
  }
  CHECK_INT_EQ(otpc__mon_count(p, MON_WATCHING), 0);
  otpc__mon_table_free(p->ext->monitors);
  otpc__ext_free(p->ext);
  free(p);
  otpc__slab_destroy();
}
