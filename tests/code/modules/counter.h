/*
 * counter.h: the two state layouts of the test module `counter`
 * (counter_v1.c and counter_v2.c), so that each version's code_change can
 * read the other's, as a new Erlang module knows its old record.
 *
 * The server counts calls per client and in total, and casts. Version 1
 * keeps fixed arrays inline; version 2 keeps the totals in another order,
 * adds an upgrade count and holds the per-client counts in a separate
 * block. A conversion that dropped or mixed up a field would show in the
 * test's exact counts.
 */
#ifndef COUNTER_H
#define COUNTER_H

#include <otpc.h>
#include <stdlib.h>
#include <string.h>

#define COUNTER_CLIENTS 64

/* States live in the process's own memory (otpc_palloc): freed when the
 * process ends however it ends, killed by a purge included, where no
 * terminate runs. */
static inline void *pzalloc(size_t n) {
  void *p = otpc_palloc(n);
  if (p != NULL) memset(p, 0, n);
  return p;
}

typedef struct counter_v1 {
  int64_t total;
  int64_t casts;
  int64_t per_client[COUNTER_CLIENTS];
} counter_v1_t;

typedef struct counter_v2 {
  uint32_t magic; /* COUNTER_V2_MAGIC */
  int64_t upgrades;
  int64_t casts;
  int64_t total;
  size_t nclients;
  int64_t *per_client; /* nclients */
} counter_v2_t;

#define COUNTER_V2_MAGIC 0xc0de0002u

/* The statem's data, in the two versions. */
typedef struct fsm_v1 {
  int64_t toggles;
} fsm_v1_t;

typedef struct fsm_v2 {
  uint32_t magic;
  int64_t upgrades;
  int64_t toggles;
} fsm_v2_t;

/* A call's client number, from {incr, N} or {client, N}: -1 if bad. */
static inline int counter_client(otpc_term_t req) {
  int n = -1;
  otpc_term_get_int(otpc_term_tuple_elem(req, 1), &n);
  return n >= 0 && n < COUNTER_CLIENTS ? n : -1;
}

#endif
