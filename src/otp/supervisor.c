/*
 * supervisor.c: the supervisor behaviour, as a gen_server.
 *
 * The server's state is a sup_t: the strategy, the restart intensity, the
 * children in start order (kids[0] started first, stopped last) and the
 * times of recent restarts. It lives in process memory (otpc_palloc), so
 * a supervisor that is killed leaks nothing.
 *
 * The supervisor traps exits and is linked to every running child. A
 * child's {'EXIT', Pid, Reason} comes to handle_info: the child is
 * reported (unless it ended normal or shutdown), then restarted by its
 * restart type and the strategy, each restart counted. More than
 * `intensity` restarts within `period` stop the server with reason
 * shutdown; its terminate then stops every child, in reverse order.
 *
 * Stopping a child is OTP's shutdown procedure: monitor it, unlink (and
 * take an EXIT that came already: it was dead), exit(Child, shutdown) and
 * wait for the DOWN, exit(Child, kill) when the shutdown time is over, or
 * kill at once for brutal_kill. Those waits block the supervisor, as they
 * block Erlang's; other messages wait in its mailbox.
 *
 * The API calls are gen_server calls whose requests carry C pointers (as
 * integers) to the caller's data: the caller waits without a timeout
 * while the supervisor reads them, so they are valid while in use.
 */
#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#include "otp_int.h"
#include "otpc/logger.h"
#include "otpc/supervisor.h"

#define DEFAULT_PERIOD_MS 5000
#define DEFAULT_WORKER_SHUTDOWN_MS 5000

typedef struct kid {
  char id[OTPC_SUP_ID_MAX]; /* "" for a dynamic child */
  otpc_child_spec_t spec;   /* spec.id is not used: see id */
  otpc_pid_t pid;           /* valid while running */
  bool running;
  bool gone;      /* to be removed from the list */
  bool waiting;   /* being stopped: its DOWN (mon) is awaited */
  otpc_ref_t mon; /* the monitor of the shutdown procedure */
} kid_t;

typedef struct sup {
  otpc_sup_strategy_t strategy;
  int intensity;
  int64_t period;
  kid_t *kids; /* in start order */
  size_t n, cap;
  kid_t tmpl;        /* simple_one_for_one: the template */
  int64_t *restarts; /* times of the recent restarts, oldest first */
  size_t nrestarts;  /* at most intensity + 1 */
} sup_t;

/* ------------------------------------------------------------------------
 * Children list
 * ------------------------------------------------------------------------ */

static int kid_find(const sup_t *s, const char *id) {
  for (size_t i = 0; i < s->n; i++)
    if (s->kids[i].id[0] != '\0' && strcmp(s->kids[i].id, id) == 0)
      return (int)i;
  return -1;
}

static int kid_find_pid(const sup_t *s, otpc_pid_t pid) {
  for (size_t i = 0; i < s->n; i++)
    if (s->kids[i].running && otpc_pid_eq(s->kids[i].pid, pid)) return (int)i;
  return -1;
}

static kid_t *kid_append(sup_t *s, const otpc_child_spec_t *spec,
                         const char *id) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 8;
    kid_t *k = otpc_palloc(cap * sizeof *k);
    if (k == NULL) return NULL;
    if (s->n) memcpy(k, s->kids, s->n * sizeof *k);
    if (s->kids) otpc_pfree(s->kids);
    s->kids = k;
    s->cap = cap;
  }
  kid_t *k = &s->kids[s->n++];
  memset(k, 0, sizeof *k);
  k->spec = *spec;
  k->spec.id = NULL;
  if (id) strcpy(k->id, id); /* length checked by the caller */
  return k;
}

/* Drops the children marked gone, keeping the order. */
static void kids_compact(sup_t *s) {
  size_t j = 0;
  for (size_t i = 0; i < s->n; i++)
    if (!s->kids[i].gone) s->kids[j++] = s->kids[i];
  s->n = j;
}

static bool id_ok(const char *id) {
  return id != NULL && id[0] != '\0' && strlen(id) < OTPC_SUP_ID_MAX;
}

static bool spec_ok(const otpc_child_spec_t *c) {
  return c != NULL && c->start != NULL && c->restart >= OTPC_PERMANENT &&
         c->restart <= OTPC_TEMPORARY &&
         c->shutdown >= OTPC_SHUTDOWN_BRUTAL_KILL;
}

/* ------------------------------------------------------------------------
 * Reports
 * ------------------------------------------------------------------------ */

/* normal, shutdown and {shutdown, _}: no crash, and no restart for a
 * transient child. */
static const char *restart_name(otpc_restart_t r) {
  return r == OTPC_PERMANENT   ? "permanent"
         : r == OTPC_TRANSIENT ? "transient"
                               : "temporary";
}

static int64_t shutdown_ms(const kid_t *k) {
  if (k->spec.shutdown != OTPC_SHUTDOWN_DEFAULT) return k->spec.shutdown;
  return k->spec.type == OTPC_SUPERVISOR ? OTPC_SHUTDOWN_INFINITY
                                         : DEFAULT_WORKER_SHUTDOWN_MS;
}

/* A supervisor report, as SASL writes it: context is child_terminated,
 * start_error, shutdown_error or shutdown (intensity reached). */
static void report(const kid_t *k, const char *context, otpc_term_t reason) {
  if (!otpc_logger_allow(OTPC_LEVEL_ERROR)) return;
  otpc_pid_t self = otpc_self();
  otpc_buf_t *pid = k && k->running ? otpc_term_fmt("~p", &k->pid)
                                    : otpc_term_fmt("undefined");
  int64_t ms = k ? shutdown_ms(k) : 0;
  otpc_buf_t *shutdown =
      ms == OTPC_SHUTDOWN_INFINITY     ? otpc_term_fmt("infinity")
      : ms == OTPC_SHUTDOWN_BRUTAL_KILL ? otpc_term_fmt("brutal_kill")
                                        : otpc_term_fmt("~l", ms);
  if (pid == NULL || shutdown == NULL) {
    otpc_buf_unref(pid);
    otpc_buf_unref(shutdown);
    return;
  }
  otpc_buf_t *rep = otpc_term_fmt(
      "[{label, {supervisor, ~a}}, {supervisor, ~p}, {errorContext, ~a}, "
      "{reason, ~t}, {offender, [{pid, ~t}, {id, ~a}, {restart_type, ~a}, "
      "{shutdown, ~t}, {child_type, ~a}]}]",
      context, &self, context, reason, otpc_buf_term(pid),
      k && k->id[0] ? k->id : "undefined",
      k ? restart_name(k->spec.restart) : "undefined", otpc_buf_term(shutdown),
      k && k->spec.type == OTPC_SUPERVISOR ? "supervisor" : "worker");
  otpc_buf_unref(pid);
  otpc_buf_unref(shutdown);
  if (rep == NULL) return;
  OTPC_LOG_REPORT(OTPC_LEVEL_ERROR, otpc_buf_term(rep), NULL);
  otpc_buf_unref(rep);
}

/* ------------------------------------------------------------------------
 * Starting and stopping children
 * ------------------------------------------------------------------------ */

/* 0 (started, or ignored: not running) or the start function's error;
 * then *why, if given, gets the reason (the start function's, or the
 * error code's name). */
static int kid_start(kid_t *k, otpc_buf_t **why) {
  otpc_pid_t pid;
  otpc_buf_t *reason = NULL;
  int rc = k->spec.start(k->spec.arg, &pid, &reason);
  if (rc == OTPC_EIGNORED) {
    otpc_buf_unref(reason);
    k->running = false;
    return 0;
  }
  if (rc < 0) {
    k->running = false;
    if (reason == NULL) reason = otpc_term_fmt("~a", otpc_err_name(rc));
    if (reason != NULL) report(k, "start_error", otpc_buf_term(reason));
    if (why != NULL)
      *why = reason;
    else
      otpc_buf_unref(reason);
    return rc;
  }
  otpc_buf_unref(reason);
  k->pid = pid;
  k->running = true;
  return 0;
}

typedef struct waiting {
  otpc_pid_t pid;
  otpc_ref_t mon;
} waiting_t;

static bool is_exit_from(otpc_term_t msg, void *ctx) {
  waiting_t *w = ctx;
  size_t arity;
  otpc_term_t e;
  otpc_pid_t pid;
  return otpc_term_get_tuple(msg, &arity, &e) == 0 && arity == 3 &&
         otpc_term_atom_eq(e, "EXIT", 4) &&
         otpc_term_get_pid(otpc_term_next(e), &pid) == 0 &&
         otpc_pid_eq(pid, w->pid);
}

static bool is_down(otpc_term_t msg, void *ctx) {
  waiting_t *w = ctx;
  size_t arity;
  otpc_term_t e;
  otpc_ref_t ref;
  return otpc_term_get_tuple(msg, &arity, &e) == 0 && arity == 5 &&
         otpc_term_is_atom(e, OTPC_ATOM_DOWN) &&
         otpc_term_get_ref(otpc_term_next(e), &ref) == 0 &&
         otpc_ref_eq(&ref, &w->mon);
}

/* Waits for the monitor's DOWN; 0 and its reason, or OTPC_ETIMEDOUT. */
static int wait_down(waiting_t *w, int64_t timeout, otpc_buf_t **msg) {
  return otpc_receive_fn(is_down, w, timeout, msg);
}

static void signal_atom(otpc_pid_t pid, otpc_atom_t reason) {
  otpc_buf_t *b = otpc_term_fmt("~A", reason);
  if (b == NULL) return;
  otpc_exit_signal(pid, otpc_buf_term(b));
  otpc_buf_unref(b);
}

/* OTP's shutdown procedure (see the top) in two halves, so that
 * simple_one_for_one children can all be told at once and then waited
 * for. stop_begin: false if the child had ended already (it is then
 * done); true if it was sent its exit signal and its DOWN is to come. */
static bool stop_begin(kid_t *k) {
  if (!k->running) return false;
  waiting_t w = {.pid = k->pid};
  otpc_buf_t *m = NULL;
  if (otpc_monitor(k->pid, &w.mon) != 0) { /* cannot happen for a local pid */
    signal_atom(k->pid, OTPC_ATOM_KILL);
    k->running = false;
    return false;
  }
  k->mon = w.mon;
  otpc_unlink(k->pid);
  if (otpc_receive_fn(is_exit_from, &w, 0, &m) == 0) {
    /* It had ended already: report it as it ended. */
    otpc_term_t reason = otpc_term_tuple_elem(otpc_buf_term(m), 2);
    if (otpc__is_crash(reason)) report(k, "child_terminated", reason);
    otpc_buf_unref(m);
    otpc_demonitor(&w.mon, OTPC_DEMONITOR_FLUSH);
    k->running = false;
    return false;
  }
  bool brutal = shutdown_ms(k) == OTPC_SHUTDOWN_BRUTAL_KILL;
  signal_atom(k->pid, brutal ? OTPC_ATOM_KILL : OTPC_ATOM_SHUTDOWN);
  return true;
}

/* Waits for the DOWN of a child stop_begin signalled, until deadline (ms
 * of otpc_now_ms; < 0: none), then kills it and waits. */
static void stop_finish(kid_t *k, int64_t deadline) {
  waiting_t w = {.pid = k->pid, .mon = k->mon};
  otpc_buf_t *m = NULL;
  int64_t left = OTPC_INFINITY;
  if (deadline >= 0) {
    left = deadline - otpc_now_ms();
    if (left < 0) left = 0;
  }
  if (wait_down(&w, left, &m) != 0) {
    signal_atom(k->pid, OTPC_ATOM_KILL); /* a straggler */
    wait_down(&w, OTPC_INFINITY, &m);
  }
  bool brutal = shutdown_ms(k) == OTPC_SHUTDOWN_BRUTAL_KILL;
  otpc_term_t reason = otpc_term_tuple_elem(otpc_buf_term(m), 4);
  if (!otpc_term_is_atom(reason,
                         brutal ? OTPC_ATOM_KILLED : OTPC_ATOM_SHUTDOWN))
    report(k, "shutdown_error", reason);
  otpc_buf_unref(m);
  k->running = false;
}

static int64_t deadline_for(const kid_t *k, int64_t start) {
  int64_t ms = shutdown_ms(k);
  return ms < 0 ? -1 : start + ms;
}

static void kid_stop(kid_t *k) {
  int64_t start = otpc_now_ms();
  if (stop_begin(k)) stop_finish(k, deadline_for(k, start));
}

/* simple_one_for_one: every child is told at once, then each is waited
 * for within the template's shutdown from that moment, as OTP does. */
static void kids_stop_all_at_once(sup_t *s) {
  int64_t start = otpc_now_ms();
  for (size_t i = 0; i < s->n; i++) {
    kid_t *k = &s->kids[i];
    k->gone = true;
    k->waiting = stop_begin(k);
  }
  for (size_t i = 0; i < s->n; i++)
    if (s->kids[i].waiting)
      stop_finish(&s->kids[i], deadline_for(&s->kids[i], start));
}

/* Stops kids [from, n) in reverse order; temporary ones are forgotten. */
static void kids_stop_from(sup_t *s, size_t from) {
  if (s->strategy == OTPC_SIMPLE_ONE_FOR_ONE && from == 0) {
    kids_stop_all_at_once(s);
    return;
  }
  for (size_t i = s->n; i > from; i--) {
    kid_t *k = &s->kids[i - 1];
    kid_stop(k);
    if (k->spec.restart == OTPC_TEMPORARY ||
        s->strategy == OTPC_SIMPLE_ONE_FOR_ONE)
      k->gone = true;
  }
}

/* Starts kids [from, n) in order; on a failure stops the ones it started
 * and returns the error. */
static int kids_start_from(sup_t *s, size_t from, size_t *failed,
                           otpc_buf_t **why) {
  for (size_t i = from; i < s->n; i++) {
    int rc = kid_start(&s->kids[i], why);
    if (rc != 0) {
      for (size_t j = i; j > from; j--) kid_stop(&s->kids[j - 1]);
      if (failed) *failed = i;
      return rc;
    }
  }
  return 0;
}

/* ------------------------------------------------------------------------
 * Restarts
 * ------------------------------------------------------------------------ */

/* Counts a restart; false when that makes more than intensity restarts
 * within the period. */
static bool add_restart(sup_t *s) {
  int64_t now = otpc_now_ms();
  size_t keep = 0;
  for (size_t i = 0; i < s->nrestarts; i++)
    if (s->restarts[i] > now - s->period) s->restarts[keep++] = s->restarts[i];
  s->nrestarts = keep;
  if (s->nrestarts >= (size_t)s->intensity) return false; /* one too many */
  s->restarts[s->nrestarts++] = now;
  return true;
}

/* The restart of k was one too many: the report names it, as OTP's. */
static void give_up(const kid_t *k, otpc_gs_result_t *r) {
  otpc_buf_t *why = otpc_term_fmt("reached_max_restart_intensity");
  if (why) report(k, "shutdown", otpc_buf_term(why));
  otpc_buf_unref(why);
  otpc_gs_stop(r, otpc_term_fmt("shutdown"));
}

/* Restarts after kids[idx] ended, by the strategy, until it works or the
 * intensity is reached (each failed attempt counts as a restart). */
static void restart(sup_t *s, size_t idx, otpc_gs_result_t *r) {
  for (;;) {
    if (!add_restart(s)) {
      give_up(&s->kids[idx], r);
      return;
    }
    int rc;
    if (s->strategy == OTPC_ONE_FOR_ONE ||
        s->strategy == OTPC_SIMPLE_ONE_FOR_ONE) {
      rc = kid_start(&s->kids[idx], NULL);
    } else {
      size_t from = s->strategy == OTPC_ONE_FOR_ALL ? 0 : idx;
      kids_stop_from(s, from);
      kids_compact(s); /* only after idx: idx stays valid for rest_for_one */
      rc = kids_start_from(s, from, NULL, NULL);
    }
    if (rc == 0) return;
  }
}

static void child_exited(sup_t *s, otpc_pid_t pid, otpc_term_t reason,
                    otpc_gs_result_t *r) {
  int i = kid_find_pid(s, pid);
  if (i < 0) return; /* not a child (any more) */
  kid_t *k = &s->kids[i];
  if (otpc__is_crash(reason)) report(k, "child_terminated", reason);
  k->running = false;
  bool again = k->spec.restart == OTPC_PERMANENT ||
               (k->spec.restart == OTPC_TRANSIENT && otpc__is_crash(reason));
  if (!again) {
    if (k->spec.restart == OTPC_TEMPORARY ||
        s->strategy == OTPC_SIMPLE_ONE_FOR_ONE) {
      k->gone = true;
      kids_compact(s);
    }
    return;
  }
  restart(s, (size_t)i, r);
  /* simple_one_for_one children that failed to restart are forgotten */
  if (s->strategy == OTPC_SIMPLE_ONE_FOR_ONE && !s->kids[i].running &&
      r->action != OTPC_GS_STOP) {
    s->kids[i].gone = true;
    kids_compact(s);
  }
}

/* ------------------------------------------------------------------------
 * The server's callbacks
 * ------------------------------------------------------------------------ */

static void stop_with(otpc_gs_result_t *r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  otpc_gs_stop(r, otpc_term_vfmt(fmt, ap, NULL));
  va_end(ap);
}

static void sup_init(void *arg, void **state, otpc_gs_result_t *r) {
  const otpc_sup_spec_t *spec = arg;
  otpc_trap_exit(true);
  sup_t *s = otpc_palloc(sizeof *s);
  int64_t *times = otpc_palloc(((size_t)spec->intensity + 1) * sizeof *times);
  if (s == NULL || times == NULL) {
    stop_with(r, "enomem");
    return;
  }
  memset(s, 0, sizeof *s);
  s->strategy = spec->strategy;
  s->intensity = spec->intensity;
  s->period = spec->period_ms > 0 ? spec->period_ms : DEFAULT_PERIOD_MS;
  s->restarts = times;
  *state = s;
  if (s->strategy == OTPC_SIMPLE_ONE_FOR_ONE) {
    s->tmpl.spec = spec->children[0];
    s->tmpl.spec.id = NULL;
    strcpy(s->tmpl.id, spec->children[0].id);
    return;
  }
  for (size_t i = 0; i < spec->nchildren; i++)
    if (kid_append(s, &spec->children[i], spec->children[i].id) == NULL) {
      stop_with(r, "enomem");
      return;
    }
  size_t failed = 0;
  otpc_buf_t *why = NULL;
  int rc = kids_start_from(s, 0, &failed, &why);
  if (rc != 0 && why != NULL)
    stop_with(r, "{shutdown, {failed_to_start_child, ~a, ~t}}",
              s->kids[failed].id, otpc_buf_term(why));
  else if (rc != 0)
    stop_with(r, "{shutdown, {failed_to_start_child, ~a, ~a}}",
              s->kids[failed].id, otpc_err_name(rc));
  otpc_buf_unref(why);
}

static void reply_rc(otpc_gs_result_t *r, int rc, const otpc_pid_t *pid) {
  if (rc != 0)
    otpc_gs_replyf(r, "{error, ~i}", rc);
  else if (pid)
    otpc_gs_replyf(r, "{ok, ~p}", pid);
  else
    otpc_gs_replyf(r, "ok");
}

/* start_child and start_dynamic: adds k (last) and starts it. */
static void call_start(sup_t *s, const otpc_child_spec_t *spec, const char *id,
                       otpc_gs_result_t *r) {
  kid_t *k = kid_append(s, spec, id);
  if (k == NULL) {
    reply_rc(r, OTPC_ENOMEM, NULL);
    return;
  }
  int rc = kid_start(k, NULL);
  if (rc == 0 && !k->running) rc = OTPC_EIGNORED;
  if (rc != 0 && !(rc == OTPC_EIGNORED && id != NULL))
    s->n--; /* failed, or a dynamic child that ignored: nothing kept */
  reply_rc(r, rc, rc == 0 ? &k->pid : NULL);
}

static void call_by_id(sup_t *s, const char *op, const char *id,
                       otpc_gs_result_t *r) {
  int i = kid_find(s, id);
  if (s->strategy == OTPC_SIMPLE_ONE_FOR_ONE) {
    reply_rc(r, OTPC_EINVAL, NULL);
    return;
  }
  if (i < 0) {
    reply_rc(r, OTPC_ENOPROC, NULL);
    return;
  }
  kid_t *k = &s->kids[i];
  if (strcmp(op, "terminate_child") == 0) {
    kid_stop(k);
    if (k->spec.restart == OTPC_TEMPORARY) {
      k->gone = true;
      kids_compact(s);
    }
    reply_rc(r, 0, NULL);
  } else if (k->running) {
    reply_rc(r, OTPC_EEXIST, NULL);
  } else if (strcmp(op, "restart_child") == 0) {
    int rc = kid_start(k, NULL);
    if (rc == 0 && !k->running) rc = OTPC_EIGNORED;
    reply_rc(r, rc, rc == 0 ? &k->pid : NULL);
  } else { /* delete_child */
    k->gone = true;
    kids_compact(s);
    reply_rc(r, 0, NULL);
  }
}

static void call_terminate_pid(sup_t *s, otpc_pid_t pid, otpc_gs_result_t *r) {
  int i = kid_find_pid(s, pid);
  if (s->strategy != OTPC_SIMPLE_ONE_FOR_ONE) {
    reply_rc(r, OTPC_EINVAL, NULL);
    return;
  }
  if (i < 0) {
    reply_rc(r, OTPC_ENOPROC, NULL);
    return;
  }
  kid_stop(&s->kids[i]);
  s->kids[i].gone = true;
  kids_compact(s);
  reply_rc(r, 0, NULL);
}

static void call_which(sup_t *s, otpc_gs_result_t *r) {
  otpc_builder_t b;
  otpc_builder_init(&b);
  if (s->n > 0) otpc_build_list(&b, s->n);
  for (size_t i = 0; i < s->n; i++) {
    const kid_t *k = &s->kids[i];
    otpc_build_tuple(&b, 4);
    otpc_build_binary(&b, k->id, strlen(k->id));
    if (k->running)
      otpc_build_pid(&b, &k->pid);
    else
      otpc_build_atom(&b, "undefined");
    otpc_build_bool(&b, k->running);
    otpc_build_int(&b, k->spec.type);
  }
  otpc_build_nil(&b);
  otpc_buf_t *reply = otpc_builder_finish(&b, NULL);
  if (reply == NULL)
    reply_rc(r, OTPC_ENOMEM, NULL);
  else
    otpc_gs_reply(r, reply);
}

static void call_count(sup_t *s, otpc_gs_result_t *r) {
  size_t active = 0, sups = 0;
  for (size_t i = 0; i < s->n; i++) {
    active += s->kids[i].running;
    sups += s->kids[i].spec.type == OTPC_SUPERVISOR;
  }
  otpc_gs_replyf(r, "{~u, ~u, ~u, ~u}", (uint64_t)s->n, (uint64_t)active,
                 (uint64_t)sups, (uint64_t)(s->n - sups));
}

static void *term_ptr(otpc_term_t t) {
  uint64_t v = 0;
  otpc_term_get_uint64(t, &v);
  return (void *)(uintptr_t)v;
}

static void sup_call(void **state, otpc_term_t req, const otpc_from_t *from,
                     otpc_gs_result_t *r) {
  (void)from;
  sup_t *s = *state;
  otpc_term_t op = req, a = req;
  size_t arity = 0;
  if (otpc_term_get_tuple(req, &arity, &op) == 0 && arity == 2)
    a = otpc_term_next(op);
  if (otpc_term_atom_eq(op, "which_children", 14)) {
    call_which(s, r);
  } else if (otpc_term_atom_eq(op, "count_children", 14)) {
    call_count(s, r);
  } else if (arity == 2 && otpc_term_atom_eq(op, "start_child", 11)) {
    const otpc_child_spec_t *spec = term_ptr(a);
    if (s->strategy == OTPC_SIMPLE_ONE_FOR_ONE)
      reply_rc(r, OTPC_EINVAL, NULL);
    else if (kid_find(s, spec->id) >= 0)
      reply_rc(r, OTPC_EEXIST, NULL);
    else
      call_start(s, spec, spec->id, r);
  } else if (arity == 2 && otpc_term_atom_eq(op, "start_dynamic", 13)) {
    otpc_child_spec_t spec = s->tmpl.spec;
    void *arg = term_ptr(a);
    if (arg != NULL) spec.arg = arg;
    if (s->strategy != OTPC_SIMPLE_ONE_FOR_ONE)
      reply_rc(r, OTPC_EINVAL, NULL);
    else
      call_start(s, &spec, NULL, r);
  } else if (arity == 2 && otpc_term_atom_eq(op, "terminate_pid", 13)) {
    otpc_pid_t pid;
    otpc_term_get_pid(a, &pid);
    call_terminate_pid(s, pid, r);
  } else if (arity == 2) { /* terminate_child, restart_child, delete_child */
    static const char *const ops[] = {"terminate_child", "restart_child",
                                      "delete_child"};
    const char *name = NULL;
    for (size_t i = 0; i < 3; i++)
      if (otpc_term_atom_eq(op, ops[i], strlen(ops[i]))) name = ops[i];
    if (name)
      call_by_id(s, name, term_ptr(a), r);
    else
      reply_rc(r, OTPC_EINVAL, NULL);
  } else {
    reply_rc(r, OTPC_EINVAL, NULL);
  }
}

static void sup_info(void **state, otpc_term_t msg, otpc_gs_result_t *r) {
  size_t arity;
  otpc_term_t e;
  otpc_pid_t pid;
  if (otpc_term_get_tuple(msg, &arity, &e) == 0 && arity == 3 &&
      otpc_term_atom_eq(e, "EXIT", 4) &&
      otpc_term_get_pid(otpc_term_next(e), &pid) == 0)
    child_exited(*state, pid, otpc_term_next(otpc_term_next(e)), r);
}

static void sup_terminate(void **state, otpc_term_t reason) {
  (void)reason;
  sup_t *s = *state;
  if (s != NULL) kids_stop_from(s, 0); /* s is process memory: no free */
}

static const otpc_gen_server_t sup_cb = {
    .name = "supervisor",
    .init = sup_init,
    .handle_call = sup_call,
    .handle_info = sup_info,
    .terminate = sup_terminate,
};

/* ------------------------------------------------------------------------
 * API
 * ------------------------------------------------------------------------ */

static bool sup_spec_ok(const otpc_sup_spec_t *spec) {
  if (spec == NULL || spec->strategy < OTPC_ONE_FOR_ONE ||
      spec->strategy > OTPC_SIMPLE_ONE_FOR_ONE || spec->intensity < 0 ||
      spec->period_ms < 0 || (spec->nchildren > 0 && spec->children == NULL))
    return false;
  if (spec->strategy == OTPC_SIMPLE_ONE_FOR_ONE && spec->nchildren != 1)
    return false;
  for (size_t i = 0; i < spec->nchildren; i++) {
    const otpc_child_spec_t *c = &spec->children[i];
    if (!spec_ok(c) || !id_ok(c->id)) return false;
    for (size_t j = 0; j < i; j++)
      if (strcmp(spec->children[j].id, c->id) == 0) return false;
  }
  return true;
}

int otpc_supervisor_start(const otpc_sup_spec_t *spec, otpc_atom_t name,
                          otpc_pid_t *pid, otpc_buf_t **reason) {
  if (reason) *reason = NULL;
  if (!sup_spec_ok(spec)) return OTPC_EINVAL;
  otpc_gs_opts_t o = {.name = name, .link = true};
  return otpc_gen_server_start(&sup_cb, (void *)spec, &o, pid, reason);
}

/* Calls the supervisor; reads {ok, Pid}, ok or {error, Code}. */
static int sup_request(otpc_pid_t sup, otpc_buf_t *req, otpc_pid_t *pid) {
  if (req == NULL) return OTPC_ENOMEM;
  otpc_buf_t *reply = NULL;
  int rc = otpc_gen_server_call(sup, req, OTPC_INFINITY, &reply);
  otpc_buf_unref(req);
  if (rc != 0) {
    otpc_buf_unref(reply);
    return rc;
  }
  otpc_term_t t = otpc_buf_term(reply), e;
  size_t arity;
  if (otpc_term_get_tuple(t, &arity, &e) == 0 && arity == 2) {
    if (otpc_term_is_atom(e, OTPC_ATOM_OK)) {
      otpc_pid_t got;
      if (pid && otpc_term_get_pid(otpc_term_next(e), &got) == 0) *pid = got;
    } else {
      int code = OTPC_EINVAL;
      otpc_term_get_int(otpc_term_next(e), &code);
      rc = code;
    }
  }
  otpc_buf_unref(reply);
  return rc;
}

int otpc_supervisor_start_child(otpc_pid_t sup, const otpc_child_spec_t *spec,
                                otpc_pid_t *pid) {
  if (!spec_ok(spec) || !id_ok(spec->id)) return OTPC_EINVAL;
  return sup_request(
      sup, otpc_term_fmt("{start_child, ~u}", (uint64_t)(uintptr_t)spec), pid);
}

int otpc_supervisor_start_dynamic(otpc_pid_t sup, void *arg, otpc_pid_t *pid) {
  return sup_request(
      sup, otpc_term_fmt("{start_dynamic, ~u}", (uint64_t)(uintptr_t)arg), pid);
}

static int by_id(otpc_pid_t sup, const char *op, const char *id,
                 otpc_pid_t *pid) {
  if (!id_ok(id)) return OTPC_EINVAL;
  return sup_request(
      sup, otpc_term_fmt("{~a, ~u}", op, (uint64_t)(uintptr_t)id), pid);
}

int otpc_supervisor_terminate_child(otpc_pid_t sup, const char *id) {
  return by_id(sup, "terminate_child", id, NULL);
}

int otpc_supervisor_restart_child(otpc_pid_t sup, const char *id,
                                  otpc_pid_t *pid) {
  return by_id(sup, "restart_child", id, pid);
}

int otpc_supervisor_delete_child(otpc_pid_t sup, const char *id) {
  return by_id(sup, "delete_child", id, NULL);
}

int otpc_supervisor_terminate_pid(otpc_pid_t sup, otpc_pid_t pid) {
  return sup_request(sup, otpc_term_fmt("{terminate_pid, ~p}", &pid), NULL);
}

static int sup_query(otpc_pid_t sup, const char *what, otpc_buf_t **reply) {
  otpc_buf_t *req = otpc_term_fmt("~a", what);
  if (req == NULL) return OTPC_ENOMEM;
  int rc = otpc_gen_server_call(sup, req, OTPC_INFINITY, reply);
  otpc_buf_unref(req);
  return rc;
}

static void info_from(otpc_term_t t, otpc_sup_child_info_t *out) {
  otpc_term_t id = otpc_term_tuple_elem(t, 0);
  const uint8_t *data;
  size_t len = 0;
  memset(out, 0, sizeof *out);
  if (otpc_term_get_binary(id, &data, &len, &(unsigned){0}) == 0 &&
      len < OTPC_SUP_ID_MAX)
    memcpy(out->id, data, len);
  otpc_term_get_pid(otpc_term_tuple_elem(t, 1), &out->pid);
  otpc_term_get_bool(otpc_term_tuple_elem(t, 2), &out->running);
  int type = 0;
  otpc_term_get_int(otpc_term_tuple_elem(t, 3), &type);
  out->type = type == OTPC_SUPERVISOR ? OTPC_SUPERVISOR : OTPC_WORKER;
}

int otpc_supervisor_which_children(otpc_pid_t sup, otpc_sup_child_info_t *out,
                                   size_t max) {
  otpc_buf_t *reply = NULL;
  int rc = sup_query(sup, "which_children", &reply);
  if (rc != 0) {
    otpc_buf_unref(reply);
    return rc;
  }
  otpc_list_iter_t it;
  otpc_term_t elem;
  size_t n = 0;
  if (otpc_term_list_iter(otpc_buf_term(reply), &it) == 0)
    while (otpc_list_next(&it, &elem)) {
      if (n < max && out != NULL) info_from(elem, &out[n]);
      n++;
    }
  otpc_buf_unref(reply);
  return (int)n;
}

int otpc_supervisor_count_children(otpc_pid_t sup, otpc_sup_counts_t *counts) {
  if (counts == NULL) return OTPC_EINVAL;
  otpc_buf_t *reply = NULL;
  int rc = sup_query(sup, "count_children", &reply);
  if (rc != 0) {
    otpc_buf_unref(reply);
    return rc;
  }
  uint64_t v[4] = {0};
  for (size_t i = 0; i < 4; i++)
    otpc_term_get_uint64(otpc_term_tuple_elem(otpc_buf_term(reply), i), &v[i]);
  counts->specs = v[0];
  counts->active = v[1];
  counts->supervisors = v[2];
  counts->workers = v[3];
  otpc_buf_unref(reply);
  return 0;
}

int otpc_sup_start_gen_server(void *arg, otpc_pid_t *pid, otpc_buf_t **reason) {
  const otpc_sup_gs_child_t *c = arg;
  if (c == NULL || c->cb == NULL) return OTPC_EINVAL;
  otpc_gs_opts_t o = {.name = c->name, .link = true};
  int rc = otpc_gen_server_start(c->cb, c->arg, &o, pid, reason);
  if (rc == OTPC_EEXIST && reason != NULL) /* *pid: who has the name */
    *reason = otpc_term_fmt("{already_started, ~p}", pid);
  return rc;
}

int otpc_sup_start_supervisor(void *arg, otpc_pid_t *pid, otpc_buf_t **reason) {
  return otpc_supervisor_start(arg, OTPC_ATOM_NONE, pid, reason);
}
