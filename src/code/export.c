/*
 * export.c: what the rest of the node keeps of a module, kept in the code
 * layer so that it never points into a shared object that a purge may
 * unload:
 *
 *   - rpc exports: each Module:Function is registered once with the
 *     dist layer with a trampoline and a record of this file; a call
 *     finds the function in the module's current version, counts itself
 *     a user of that version while it runs (a purge waits for it), and
 *     calls it. A function the current version no longer has fails the
 *     call with reason undef, as in Erlang.
 *   - applications: each is registered with the application controller
 *     once, as a copy of its spec whose strings are the code layer's and
 *     whose start, prep_stop and stop are trampolines to the current
 *     version's spec of the same name.
 *   - the otpc_code rpc server (otpc_code_serve_rpc): load, purge,
 *     soft_purge, which, so that `otpc load` can upgrade a node.
 *
 * Records are never freed (a module is never forgotten).
 */
#include "code_int.h"

struct export_rec {
  export_rec_t *next;
  mod_t *mod;
  char *name;
};

struct app_rec {
  app_rec_t *next;
  mod_t *mod;
  otpc_app_spec_t spec; /* the copy registered; start_arg is this record */
};

static char *dup_str(const char *s) {
  if (s == NULL) return NULL;
  size_t n = strlen(s) + 1;
  char *c = otpc__malloc(n);
  if (c != NULL) memcpy(c, s, n);
  return c;
}

/* ------------------------------------------------------------------------
 * rpc exports
 * ------------------------------------------------------------------------ */

static otpc_buf_t *rpc_trampoline(otpc_term_t args, void *ctx,
                                  otpc_buf_t **reason) {
  export_rec_t *e = ctx;
  mod_t *m = e->mod;
  otpc__code_lock(m);
  ver_t *v = atomic_load_explicit(&m->current, memory_order_relaxed);
  otpc_buf_t *(*fn)(otpc_term_t, otpc_buf_t **) = NULL;
  for (size_t i = 0; v != NULL && v->desc->exports != NULL &&
                     v->desc->exports[i].name != NULL;
       i++)
    if (strcmp(v->desc->exports[i].name, e->name) == 0)
      fn = v->desc->exports[i].fn;
  if (fn != NULL) v->users++; /* a purge waits for this call */
  otpc__code_unlock(m);
  if (fn == NULL) {
    *reason = otpc_term_fmt("{undef, [{~a, ~a}]}", m->name, e->name);
    return NULL;
  }
  otpc_buf_t *result = fn(args, reason);
  otpc__code_lock(m);
  otpc__code_unuse(v);
  otpc__code_unlock(m);
  return result;
}

static int publish_exports(mod_t *m, const otpc_module_t *d) {
  for (size_t i = 0; d->exports != NULL && d->exports[i].name != NULL; i++) {
    otpc__code_lock(m);
    export_rec_t *e;
    for (e = m->exports; e != NULL; e = e->next)
      if (strcmp(e->name, d->exports[i].name) == 0) break;
    bool fresh = e == NULL;
    if (fresh && (e = otpc__calloc(1, sizeof *e)) != NULL) {
      e->mod = m;
      e->name = dup_str(d->exports[i].name);
      if (e->name == NULL) {
        otpc__free(e);
        e = NULL;
      } else {
        e->next = m->exports;
        m->exports = e;
      }
    }
    otpc__code_unlock(m);
    if (e == NULL) return OTPC_ENOMEM;
    if (fresh) {
      int rc = otpc_rpc_export(m->name, e->name, rpc_trampoline, e);
      if (rc != 0) return rc;
    }
  }
  return 0;
}

/* ------------------------------------------------------------------------
 * Applications
 * ------------------------------------------------------------------------ */

/* The state an application's trampolines keep: the user's state. */
typedef struct app_state {
  app_rec_t *rec;
  void *inner;
} app_state_t;

/* The current version's spec of rec's name; pins the version (unpin with
 * app_unpin). NULL if it has none. */
static const otpc_app_spec_t *app_current(app_rec_t *rec, ver_t **pinned) {
  mod_t *m = rec->mod;
  const otpc_app_spec_t *found = NULL;
  otpc__code_lock(m);
  ver_t *v = atomic_load_explicit(&m->current, memory_order_relaxed);
  for (size_t i = 0; v != NULL && v->desc->apps != NULL && v->desc->apps[i];
       i++)
    if (strcmp(v->desc->apps[i]->name, rec->spec.name) == 0)
      found = v->desc->apps[i];
  if (found != NULL) v->users++;
  *pinned = found != NULL ? v : NULL;
  otpc__code_unlock(m);
  return found;
}

static void app_unpin(mod_t *m, ver_t *v) {
  if (v == NULL) return;
  otpc__code_lock(m);
  otpc__code_unuse(v);
  otpc__code_unlock(m);
}

static int app_start(otpc_app_start_type_t type, void *arg, otpc_pid_t *top,
                     void **state, otpc_buf_t **reason) {
  app_rec_t *rec = arg;
  ver_t *v;
  const otpc_app_spec_t *spec = app_current(rec, &v);
  if (spec == NULL || spec->start == NULL) {
    app_unpin(rec->mod, v);
    *reason =
        otpc_term_fmt("{no_start, ~a, ~a}", rec->mod->name, rec->spec.name);
    return OTPC_ENOAPP;
  }
  app_state_t *s = otpc__calloc(1, sizeof *s);
  if (s == NULL) {
    app_unpin(rec->mod, v);
    return OTPC_ENOMEM;
  }
  s->rec = rec;
  int rc = spec->start(type, spec->start_arg, top, &s->inner, reason);
  app_unpin(rec->mod, v);
  if (rc != 0) {
    otpc__free(s);
    return rc;
  }
  *state = s;
  return 0;
}

static void *app_prep_stop(void *state) {
  app_state_t *s = state;
  if (s == NULL) return NULL;
  ver_t *v;
  const otpc_app_spec_t *spec = app_current(s->rec, &v);
  if (spec != NULL && spec->prep_stop != NULL)
    s->inner = spec->prep_stop(s->inner);
  app_unpin(s->rec->mod, v);
  return s;
}

static void app_stop(void *state) {
  app_state_t *s = state;
  if (s == NULL) return;
  ver_t *v;
  const otpc_app_spec_t *spec = app_current(s->rec, &v);
  if (spec != NULL && spec->stop != NULL) spec->stop(s->inner);
  app_unpin(s->rec->mod, v);
  otpc__free(s);
}

static void free_strv(const char *const *v) {
  for (size_t i = 0; v != NULL && v[i] != NULL; i++) otpc__free((void *)v[i]);
  otpc__free((void *)v);
}

/* A NULL-terminated copy of a NULL-terminated string array; *ok false if
 * memory ran out. */
static const char *const *dup_strv(const char *const *v, bool *ok) {
  if (v == NULL) return NULL;
  size_t n = 0;
  while (v[n] != NULL) n++;
  const char **c = otpc__calloc(n + 1, sizeof *c);
  for (size_t i = 0; c != NULL && i < n; i++)
    if ((c[i] = dup_str(v[i])) == NULL) {
      free_strv(c);
      c = NULL;
    }
  if (c == NULL) *ok = false;
  return c;
}

static void app_rec_free(app_rec_t *r) {
  if (r == NULL) return;
  otpc__free((void *)r->spec.name);
  otpc__free((void *)r->spec.description);
  otpc__free((void *)r->spec.vsn);
  otpc__free((void *)r->spec.env);
  free_strv(r->spec.applications);
  free_strv(r->spec.registered);
  otpc__free(r);
}

/* A copy of spec s whose callbacks are the trampolines; NULL if out of
 * memory. */
static app_rec_t *app_rec_new(mod_t *m, const otpc_app_spec_t *s) {
  app_rec_t *r = otpc__calloc(1, sizeof *r);
  if (r == NULL) return NULL;
  r->mod = m;
  otpc_app_spec_t *c = &r->spec;
  bool ok = true;
  c->name = dup_str(s->name);
  c->description = dup_str(s->description);
  c->vsn = dup_str(s->vsn);
  c->applications = dup_strv(s->applications, &ok);
  c->env = dup_str(s->env);
  c->registered = dup_strv(s->registered, &ok);
  if (!ok || c->name == NULL || (s->description && !c->description) ||
      (s->vsn && !c->vsn) || (s->env && !c->env)) {
    app_rec_free(r);
    return NULL;
  }
  c->start = s->start != NULL ? app_start : NULL;
  c->start_arg = r;
  c->prep_stop = app_prep_stop;
  c->stop = app_stop;
  return r;
}

static app_rec_t *app_find(mod_t *m, const char *name) {
  for (app_rec_t *r = m->apps; r != NULL; r = r->next)
    if (strcmp(r->spec.name, name) == 0) return r;
  return NULL;
}

int otpc__code_apps_check(mod_t *m, const otpc_module_t *d,
                          otpc_code_error_t *err) {
  /* A name this module registered before is its own; any other must be
   * free. The controller has no query, so a fresh name is tried when it
   * is registered (publish); this catches a clash between modules. */
  for (size_t i = 0; d->apps != NULL && d->apps[i] != NULL; i++) {
    if (app_find(m, d->apps[i]->name) != NULL) continue;
    for (size_t j = 0; j < i; j++)
      if (strcmp(d->apps[j]->name, d->apps[i]->name) == 0)
        return otpc__code_fail(err, OTPC_EBADMODULE,
                               "module %s defines application %s twice",
                               m->name, d->apps[i]->name);
  }
  return 0;
}

static int publish_apps(mod_t *m, const otpc_module_t *d) {
  for (size_t i = 0; d->apps != NULL && d->apps[i] != NULL; i++) {
    otpc__code_lock(m);
    app_rec_t *r = app_find(m, d->apps[i]->name);
    otpc__code_unlock(m);
    if (r != NULL) continue; /* registered; its trampolines find this one */
    r = app_rec_new(m, d->apps[i]);
    if (r == NULL) return OTPC_ENOMEM;
    int rc = otpc_app_register(&r->spec);
    if (rc != 0) { /* the controller did not keep it */
      app_rec_free(r);
      return rc;
    }
    otpc__code_lock(m);
    r->next = m->apps;
    m->apps = r;
    otpc__code_unlock(m);
  }
  return 0;
}

int otpc__code_publish(mod_t *m, const otpc_module_t *d) {
  int rc = publish_exports(m, d);
  return rc != 0 ? rc : publish_apps(m, d);
}

/* ------------------------------------------------------------------------
 * The otpc_code rpc server
 * ------------------------------------------------------------------------ */

/* The one argument of an rpc call as a C string (a string, a binary or
 * an atom) into buf; false if it is none of those or too long. */
static bool arg_string(otpc_term_t args, char *buf, size_t size) {
  otpc_list_iter_t it;
  otpc_term_t a, c;
  if (otpc_term_list_iter(args, &it) != 0 || !otpc_list_next(&it, &a))
    return false;
  otpc_atom_t atom;
  const uint8_t *bin;
  size_t len = 0;
  unsigned bits;
  if (otpc_term_get_atom(a, &atom) == 0) {
    const char *name = otpc_atom_name(atom, &len);
    if (len >= size) return false;
    memcpy(buf, name, len);
  } else if (otpc_term_get_binary(a, &bin, &len, &bits) == 0) {
    if (len >= size || bits != 8 || memchr(bin, 0, len) != NULL) return false;
    memcpy(buf, bin, len);
  } else if (otpc_term_list_iter(a, &it) == 0) { /* a string: bytes */
    int ch;
    while (otpc_list_next(&it, &c)) {
      if (otpc_term_get_int(c, &ch) != 0 || ch <= 0 || ch > 255 ||
          len + 1 >= size)
        return false;
      buf[len++] = (char)ch;
    }
  } else {
    return false;
  }
  buf[len] = '\0';
  return len > 0;
}

static const char *error_atom(int rc) {
  switch (rc) {
    case OTPC_ENOTPURGED: return "not_purged";
    case OTPC_EINUSE: return "in_use";
    case OTPC_ENOMODULE: return "nofile";
    case OTPC_EBADMODULE: return "badfile";
    case OTPC_EIO: return "enoent";
    case OTPC_ETIMEDOUT: return "timeout";
    default: return "failed";
  }
}

static otpc_buf_t *rpc_load(otpc_term_t args, void *ctx, otpc_buf_t **reason) {
  char path[4096];
  if (!arg_string(args, path, sizeof path)) {
    *reason = otpc_term_fmt("badarg");
    return NULL;
  }
  otpc_code_error_t err;
  err.message[0] = '\0';
  /* As c:l does, but soft: an old version nobody runs goes first;
   * with purge, as c:l: processes that run it are killed. */
  otpc_list_iter_t it;
  otpc_term_t first, second;
  bool purge = otpc_term_list_iter(args, &it) == 0 &&
               otpc_list_next(&it, &first) && otpc_list_next(&it, &second) &&
               otpc_term_atom_eq(second, "purge", 5);
  int rc = otpc__code_load_mode(
      path, purge ? OTPC__LOAD_PURGE : OTPC__LOAD_SOFT, &err);
  if (rc == 0) return otpc__atom_buf(OTPC_ATOM_OK);
  return otpc_term_fmt("{error, ~a, ~s}", error_atom(rc), err.message);
}

static otpc_buf_t *rpc_purge(otpc_term_t args, void *ctx, otpc_buf_t **reason) {
  char name[256];
  if (!arg_string(args, name, sizeof name)) {
    *reason = otpc_term_fmt("badarg");
    return NULL;
  }
  bool soft = ctx != NULL;
  int rc = soft ? otpc_code_soft_purge(name) : otpc_code_purge(name);
  if (soft) return otpc__atom_buf(rc == 0 ? OTPC_ATOM_TRUE : OTPC_ATOM_FALSE);
  if (rc >= 0) return otpc_term_fmt("{ok, ~i}", rc);
  return otpc_term_fmt("{error, ~a}", error_atom(rc));
}

static otpc_buf_t *rpc_which(otpc_term_t args, void *ctx, otpc_buf_t **reason) {
  char name[256];
  if (!arg_string(args, name, sizeof name)) {
    *reason = otpc_term_fmt("badarg");
    return NULL;
  }
  otpc_code_info_t info;
  if (otpc_code_info(name, &info) != 0 || !info.loaded)
    return otpc_term_fmt("non_existing");
  return otpc_term_fmt("{~s, ~s}", info.vsn,
                       info.has_old ? info.old_vsn : "none");
}

int otpc_code_serve_rpc(void) {
  static char soft; /* any non-NULL ctx: soft purge */
  int rc = otpc_rpc_export("otpc_code", "load", rpc_load, NULL);
  if (rc == 0) rc = otpc_rpc_export("otpc_code", "purge", rpc_purge, NULL);
  if (rc == 0)
    rc = otpc_rpc_export("otpc_code", "soft_purge", rpc_purge, &soft);
  if (rc == 0) rc = otpc_rpc_export("otpc_code", "which", rpc_which, NULL);
  return rc;
}
