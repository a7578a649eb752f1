/*
 * hot_counter.h: the state of the example module hot_counter in its two
 * versions (hot_counter_v1.c, hot_counter_v2.c), so that each version's
 * code_change can read the other's. docs/code.md walks through them.
 */
#ifndef HOT_COUNTER_H
#define HOT_COUNTER_H

#include <otpc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Version 1: the value and how it grows. */
typedef struct hc_v1 {
  int64_t value;
  int64_t step;
  int64_t tick_ms;
} hc_v1_t;

/* Version 2 keeps the ticks it counted and where it took over. */
typedef struct hc_v2 {
  int64_t value;
  int64_t step;
  int64_t tick_ms;
  int64_t ticks;       /* ticks since this version took over */
  int64_t upgraded_at; /* the value then */
} hc_v2_t;

/* The state lives in the process's memory (otpc_palloc), which is freed
 * when the process ends however it ends (a purge kills without calling
 * terminate). */
static inline void *hc_zalloc(size_t n) {
  void *p = otpc_palloc(n);
  if (p != NULL) memset(p, 0, n);
  return p;
}

/* An integer from the application's environment, or dflt. */
static inline int64_t hc_env(const char *key, int64_t dflt) {
  otpc_buf_t *v = NULL;
  int64_t n = dflt;
  if (otpc_app_get_env(otpc_atom("hot_counter"), otpc_atom(key), &v) == 1)
    otpc_term_get_int64(otpc_buf_term(v), &n);
  otpc_buf_unref(v);
  return n;
}

/* The next tick, a message to the server itself. */
static inline void hc_tick_later(int64_t ms) {
  otpc_buf_t *tick = otpc_term_fmt("tick");
  otpc_send_after(ms, otpc_self(), tick, NULL);
  otpc_buf_unref(tick);
}

/* The application: a supervisor over the server, which it starts through
 * the code layer (otpc_code_child), so that a restart after an upgrade
 * starts the current version. The same in both versions. */
static inline int hc_app_start(otpc_app_start_type_t type, void *arg,
                               otpc_pid_t *top, void **state,
                               otpc_buf_t **reason) {
  otpc_child_spec_t child = {
      .id = "hot_counter",
      .start = otpc_code_start_child,
      .arg = otpc_code_child("hot_counter", "hot_counter", false,
                             otpc_atom("hot_counter"), NULL),
      .restart = OTPC_PERMANENT};
  otpc_sup_spec_t sup = {.strategy = OTPC_ONE_FOR_ONE,
                         .intensity = 3,
                         .period_ms = 5000,
                         .children = &child,
                         .nchildren = 1};
  return otpc_supervisor_start(&sup, otpc_atom("hot_counter_sup"), top, reason);
}

/* rpc hot_counter:value(): the server's answer to `value`. */
static inline otpc_buf_t *hc_rpc_value(otpc_term_t args, otpc_buf_t **reason) {
  otpc_buf_t *req = otpc_term_fmt("value"), *reply = NULL;
  int rc =
      otpc_gen_server_call_name(otpc_atom("hot_counter"), req, 5000, &reply);
  otpc_buf_unref(req);
  if (rc != 0) *reason = otpc_term_fmt("~a", otpc_err_name(rc));
  return rc == 0 ? reply : NULL;
}

#endif
