/*
 * app_order.c: the dependency order of applications, and the calls built
 * on it: ensure_all_started (one application or a list) and stop_list.
 *
 * The order is a depth-first walk of the registered specs from the roots
 * given, in their order, each application placed after everything it
 * depends on (dependencies in the order its spec lists them). The walk
 * keeps its path, so a cycle is reported as the applications on it. It
 * runs in the calling process, from the registry alone; the starts and
 * stops are then ordinary calls to the controller, as OTP's
 * ensure_all_started is a loop of application:start calls.
 */
#include <string.h>

#include "../base/base_int.h"
#include "app_int.h"

typedef struct seen {
  otpc_atom_t app;
  bool done; /* placed in the order; else on the path */
} seen_t;

typedef struct order {
  bool strict;      /* unknown applications and cycles are errors */
  otpc_atom_t *out; /* the order */
  size_t n, cap;
  otpc_atom_t *path; /* the walk's path, for cycles */
  size_t npath, path_cap;
  seen_t *seen;
  size_t nseen, seen_cap;
  otpc_buf_t *why; /* the error's reason */
} order_t;

static bool push(void **v, size_t *n, size_t *cap, size_t size,
                 const void *elem) {
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 16;
    void *nv = otpc__realloc(*v, c * size);
    if (nv == NULL) return false;
    *v = nv;
    *cap = c;
  }
  memcpy((char *)*v + *n * size, elem, size);
  (*n)++;
  return true;
}

static void order_free(order_t *o) {
  otpc__free(o->out);
  otpc__free(o->path);
  otpc__free(o->seen);
  otpc_buf_unref(o->why);
}

static long seen_index(const order_t *o, otpc_atom_t app) {
  for (size_t i = 0; i < o->nseen; i++)
    if (o->seen[i].app == app) return (long)i;
  return -1;
}

/* {circular_dependencies, [A, B, ...]}: the path from app on. */
static int cycle(order_t *o, otpc_atom_t app) {
  size_t from = 0;
  while (from < o->npath && o->path[from] != app) from++;
  otpc_builder_t b;
  otpc_builder_init(&b);
  otpc_build_tuple(&b, 2);
  otpc_build_atom(&b, "circular_dependencies");
  otpc_build_list(&b, o->npath - from);
  for (size_t i = from; i < o->npath; i++) otpc_build_atom_id(&b, o->path[i]);
  otpc_build_nil(&b);
  o->why = otpc_builder_finish(&b, NULL);
  return OTPC_ECYCLE;
}

static int visit(order_t *o, otpc_atom_t app) {
  long s = seen_index(o, app);
  if (s >= 0) {
    if (o->seen[s].done || !o->strict) return 0;
    return cycle(o, app);
  }
  otpc__app_entry_t e;
  bool known = otpc__app_lookup(app, &e);
  if (!known && o->strict) {
    o->why = otpc_term_fmt("{~A, {unknown_application, ~A}}", app, app);
    return OTPC_ENOAPP;
  }
  seen_t mark = {app, !known};
  s = (long)o->nseen;
  if (!push((void **)&o->seen, &o->nseen, &o->seen_cap, sizeof mark, &mark))
    return OTPC_ENOMEM;
  if (!known) return 0; /* not strict: nothing to place */
  if (!push((void **)&o->path, &o->npath, &o->path_cap, sizeof app, &app))
    return OTPC_ENOMEM;
  for (size_t i = 0; i < e.ndeps; i++) {
    int rc = visit(o, e.deps[i]);
    if (rc != 0) return rc;
  }
  o->npath--;
  o->seen[s].done = true;
  if (!push((void **)&o->out, &o->n, &o->cap, sizeof app, &app))
    return OTPC_ENOMEM;
  return 0;
}

static int order_of(order_t *o, const otpc_atom_t *apps, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int rc = visit(o, apps[i]);
    if (rc != 0) return rc;
  }
  return 0;
}

static otpc_buf_t *atom_list(const otpc_atom_t *apps, size_t n) {
  otpc_builder_t b;
  otpc_builder_init(&b);
  if (n > 0) otpc_build_list(&b, n);
  for (size_t i = 0; i < n; i++) otpc_build_atom_id(&b, apps[i]);
  otpc_build_nil(&b);
  return otpc_builder_finish(&b, NULL);
}

/* Starts o's order; *started gets those this call started. */
static int start_all(const order_t *o, otpc_restart_t type, size_t *started,
                     otpc_buf_t **why) {
  for (size_t i = 0; i < o->n; i++) {
    otpc_buf_t *r = NULL;
    int rc = otpc_app_start(o->out[i], type, &r);
    if (rc == OTPC_EEXIST) {
      otpc_buf_unref(r);
      continue;
    }
    if (rc != 0) {
      *why = r ? otpc_term_fmt("{~A, ~t}", o->out[i], otpc_buf_term(r))
               : otpc_term_fmt("{~A, ~a}", o->out[i], otpc_err_name(rc));
      otpc_buf_unref(r);
      return rc;
    }
    o->out[(*started)++] = o->out[i]; /* started <= i: safe in place */
  }
  return 0;
}

int otpc_app_ensure_all_started_list(const otpc_atom_t *apps, size_t n,
                                     otpc_restart_t type, otpc_buf_t **info) {
  if (info) *info = NULL;
  if (apps == NULL && n > 0) return OTPC_EINVAL;
  order_t o = {.strict = true};
  int rc = order_of(&o, apps, n);
  size_t started = 0;
  if (rc == 0) {
    rc = start_all(&o, type, &started, &o.why);
    if (rc != 0) /* back to where we were */
      for (size_t i = started; i > 0; i--) otpc_app_stop(o.out[i - 1]);
  }
  if (info) {
    if (rc == 0) {
      *info = atom_list(o.out, started);
      if (*info == NULL) rc = OTPC_ENOMEM;
    } else {
      *info = o.why;
      o.why = NULL;
    }
  }
  order_free(&o);
  return rc;
}

int otpc_app_ensure_all_started(otpc_atom_t app, otpc_restart_t type,
                                otpc_buf_t **info) {
  return otpc_app_ensure_all_started_list(&app, 1, type, info);
}

static bool listed(const otpc_atom_t *apps, size_t n, otpc_atom_t app) {
  for (size_t i = 0; i < n; i++)
    if (apps[i] == app) return true;
  return false;
}

int otpc_app_stop_list(const otpc_atom_t *apps, size_t n) {
  if (apps == NULL && n > 0) return OTPC_EINVAL;
  order_t o = {.strict = false};
  int rc = order_of(&o, apps, n), first = 0;
  for (size_t i = o.n; rc == 0 && i > 0; i--) {
    if (!listed(apps, n, o.out[i - 1])) continue;
    int r = otpc_app_stop(o.out[i - 1]);
    if (r == OTPC_ENOPROC || r == OTPC_ENOTPROC)
      rc = r;
    else if (r != 0 && r != OTPC_ENOTSTARTED && first == 0)
      first = r;
  }
  order_free(&o);
  return rc != 0 ? rc : first;
}
