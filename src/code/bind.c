/*
 * bind.c: bindings, the record of which version of its module a behaviour
 * process runs, and starting behaviours of a module.
 *
 * A binding is made by the starter, under the module's lock, on the
 * current version (which it then counts as a user), before the process
 * exists. Two parties hold it: the starter until its start call returns,
 * and the process from attach to release. Its states:
 *
 *   NEW        made; the process has not attached yet
 *   ATTACHED   the process attached (first thing it did); the process
 *              releases it when it ends, however it ends
 *   ABANDONED  the start returned before the process attached (the spawn
 *              failed, or it was killed before it ran): the starter took
 *              it off the version; a late attach fails
 *
 * `refs` counts the two holders; the last to let go frees it. All fields
 * except `ver` and `refused` are under the module's lock; those two are
 * written by the process itself under the lock and read by it without
 * (stale() is its lock-free check).
 */
#include "code_int.h"

enum { B_NEW, B_ATTACHED, B_ABANDONED };
enum { K_SERVER, K_STATEM };

struct bind {
  otpc__code_bind_t base; /* ops: first, as otp_int.h requires */
  mod_t *mod;
  ver_t *ver;          /* the version it runs (a user of it) */
  ver_t *pending;      /* begin..finish: the one it moves to (a user) */
  ver_t *refused;      /* a version whose code_change failed: not retried */
  const char *bname;   /* the behaviour's name, in ver's tables */
  const char *pname;   /* begin..finish: the name in pending's */
  bind_t *prev, *next; /* in ver->binds */
  otpc_pid_t pid;      /* once attached */
  uint8_t kind;        /* K_* */
  uint8_t state;       /* B_* */
  uint8_t refs;
};

static void link_into(bind_t *b, ver_t *v) {
  b->ver = v;
  b->prev = NULL;
  b->next = v->binds;
  if (v->binds != NULL) v->binds->prev = b;
  v->binds = b;
}

/* Takes b off its version, which loses a user. */
static void unlink_from(bind_t *b) {
  ver_t *v = b->ver;
  if (b->prev != NULL)
    b->prev->next = b->next;
  else
    v->binds = b->next;
  if (b->next != NULL) b->next->prev = b->prev;
  b->prev = b->next = NULL;
  otpc__code_unuse(v);
}

/* One holder lets go (lock held). */
static void drop(bind_t *b) {
  if (--b->refs == 0) otpc__free(b);
}

size_t otpc__code_bound_pids(ver_t *v, otpc_pid_t *pids, size_t max) {
  size_t n = 0;
  for (bind_t *b = v->binds; b != NULL; b = b->next) {
    if (b->state != B_ATTACHED) continue;
    if (n < max) pids[n] = b->pid;
    n++;
  }
  return n;
}

/* The table of the behaviour named name in a version, or NULL. */
static const void *find_table(const otpc_module_t *d, uint8_t kind,
                              const char *name, const char **found) {
  if (kind == K_SERVER) {
    for (size_t i = 0; d->gen_servers != NULL && d->gen_servers[i]; i++)
      if (strcmp(d->gen_servers[i]->name, name) == 0) {
        *found = d->gen_servers[i]->name;
        return d->gen_servers[i];
      }
  } else {
    for (size_t i = 0; d->gen_statems != NULL && d->gen_statems[i]; i++)
      if (strcmp(d->gen_statems[i]->name, name) == 0) {
        *found = d->gen_statems[i]->name;
        return d->gen_statems[i];
      }
  }
  return NULL;
}

/* ------------------------------------------------------------------------
 * The operations gen_server and gen_statem call (otp_int.h)
 * ------------------------------------------------------------------------ */

static bool op_attach(otpc__code_bind_t *base, otpc_pid_t self) {
  bind_t *b = (bind_t *)base;
  mod_t *m = b->mod;
  otpc__code_lock(m);
  bool ok = b->state == B_NEW;
  if (ok) {
    b->state = B_ATTACHED;
    b->pid = self;
  } else {
    drop(b); /* abandoned: the process lets go at once */
  }
  otpc__code_unlock(m);
  return ok;
}

static bool op_stale(const otpc__code_bind_t *base) {
  const bind_t *b = (const bind_t *)base;
  ver_t *cur = atomic_load_explicit(&b->mod->current, memory_order_acquire);
  return cur != b->ver && cur != b->refused;
}

static int op_begin(otpc__code_bind_t *base, const void **cb,
                    otpc_buf_t **old_vsn) {
  bind_t *b = (bind_t *)base;
  mod_t *m = b->mod;
  otpc__code_lock(m);
  ver_t *cur = atomic_load_explicit(&m->current, memory_order_relaxed);
  if (cur == b->ver) {
    otpc__code_unlock(m);
    return 1;
  }
  const void *t = find_table(cur->desc, b->kind, b->bname, &b->pname);
  if (t == NULL) {
    b->refused = cur;
    otpc__code_unlock(m);
    otpc_log_at(OTPC_LEVEL_WARNING, "code", __FILE__, __LINE__, __func__, NULL,
                "module %s vsn %s has no %s %s: the process stays on vsn %s",
                m->name, cur->vsn_text,
                b->kind == K_SERVER ? "gen_server" : "gen_statem", b->bname,
                b->ver->vsn_text);
    return OTPC_ENONAME;
  }
  cur->users++;
  b->pending = cur;
  *cb = t;
  *old_vsn = otpc_buf_ref(b->ver->vsn);
  otpc__code_unlock(m);
  return 0;
}

static void op_finish(otpc__code_bind_t *base, bool moved) {
  bind_t *b = (bind_t *)base;
  mod_t *m = b->mod;
  otpc__code_lock(m);
  ver_t *next = b->pending;
  b->pending = NULL;
  if (moved) {
    unlink_from(b);
    link_into(b, next); /* counted as its user by begin */
    b->bname = b->pname;
    b->refused = NULL;
  } else {
    otpc__code_unuse(next);
    b->refused = next;
  }
  otpc__code_unlock(m);
  if (!moved)
    otpc_log_at(OTPC_LEVEL_WARNING, "code", __FILE__, __LINE__, __func__, NULL,
                "module %s: code_change of %s failed; the process stays on "
                "vsn %s",
                m->name, b->bname, b->ver->vsn_text);
}

static void op_release(otpc__code_bind_t *base) {
  bind_t *b = (bind_t *)base;
  mod_t *m = b->mod;
  otpc__code_lock(m);
  if (b->pending != NULL) otpc__code_unuse(b->pending); /* died moving */
  b->pending = NULL;
  if (b->state == B_ATTACHED) unlink_from(b);
  b->state = B_ABANDONED;
  drop(b);
  otpc__code_unlock(m);
}

static otpc_atom_t op_module(const otpc__code_bind_t *base) {
  return ((const bind_t *)base)->mod->atom;
}

static const otpc__code_ops_t bind_ops = {op_attach, op_stale,   op_begin,
                                          op_finish, op_release, op_module};

/* ------------------------------------------------------------------------
 * Starting a behaviour of a module
 * ------------------------------------------------------------------------ */

/* A binding on the current version of module, for its behaviour name;
 * *table gets the behaviour's callbacks. */
static int bind_new(const char *module, uint8_t kind, const char *name,
                    bind_t **out, const void **table) {
  if (module == NULL || name == NULL) return OTPC_EINVAL;
  mod_t *m = otpc__code_mod(module, false);
  if (m == NULL) return OTPC_ENOMODULE;
  bind_t *b = otpc__calloc(1, sizeof *b);
  if (b == NULL) return OTPC_ENOMEM;
  otpc__code_lock(m);
  ver_t *cur = atomic_load_explicit(&m->current, memory_order_relaxed);
  const void *t =
      cur != NULL ? find_table(cur->desc, kind, name, &b->bname) : NULL;
  if (t == NULL) {
    otpc__code_unlock(m);
    otpc__free(b);
    return cur == NULL ? OTPC_ENOMODULE : OTPC_ENONAME;
  }
  b->base.ops = &bind_ops;
  b->mod = m;
  b->kind = kind;
  b->state = B_NEW;
  b->refs = 2; /* the starter and the process */
  cur->users++;
  link_into(b, cur);
  otpc__code_unlock(m);
  *out = b;
  *table = t;
  return 0;
}

/* The starter lets go once its start call returned rc. A process that
 * has not attached by then never will, unless the start timed out (it
 * was killed, but may still run its first steps): then it lets go of
 * its own reference in attach; otherwise the starter drops it too. */
static void bind_done(bind_t *b, int rc) {
  mod_t *m = b->mod;
  otpc__code_lock(m);
  if (b->state == B_NEW) {
    b->state = B_ABANDONED; /* off the version: it runs nothing */
    unlink_from(b);
    if (rc != OTPC_ETIMEDOUT) drop(b);
  }
  drop(b);
  otpc__code_unlock(m);
}

int otpc_code_start_gen_server(const char *module, const char *server,
                               void *arg, const otpc_gs_opts_t *opts,
                               otpc_pid_t *pid, otpc_buf_t **reason) {
  if (reason) *reason = NULL;
  if (otpc__current() == NULL) return OTPC_ENOTPROC;
  bind_t *b;
  const void *t;
  int rc = bind_new(module, K_SERVER, server, &b, &t);
  if (rc != 0) return rc;
  rc = otpc__gen_server_start_bound(t, &b->base, arg, opts, pid, reason);
  bind_done(b, rc);
  return rc;
}

int otpc_code_start_gen_statem(const char *module, const char *statem,
                               void *arg, const otpc_sm_opts_t *opts,
                               otpc_pid_t *pid, otpc_buf_t **reason) {
  if (reason) *reason = NULL;
  if (otpc__current() == NULL) return OTPC_ENOTPROC;
  bind_t *b;
  const void *t;
  int rc = bind_new(module, K_STATEM, statem, &b, &t);
  if (rc != 0) return rc;
  rc = otpc__gen_statem_start_bound(t, &b->base, arg, opts, pid, reason);
  bind_done(b, rc);
  return rc;
}

/* ------------------------------------------------------------------------
 * Supervisor children
 * ------------------------------------------------------------------------ */

struct otpc_code_child {
  otpc_code_child_t *next;
  mod_t *mod;
  char *behaviour;
  bool is_statem;
  otpc_atom_t name;
  void *arg;
};

static pthread_mutex_t children_lock = PTHREAD_MUTEX_INITIALIZER;
static otpc_code_child_t *children; /* kept for the program's life */

otpc_code_child_t *otpc_code_child(const char *module, const char *behaviour,
                                   bool is_statem, otpc_atom_t name,
                                   void *arg) {
  if (module == NULL || behaviour == NULL) return NULL;
  mod_t *m = otpc__code_mod(module, true);
  if (m == NULL) return NULL;
  pthread_mutex_lock(&children_lock);
  otpc_code_child_t *c;
  for (c = children; c != NULL; c = c->next)
    if (c->mod == m && c->is_statem == is_statem && c->name == name &&
        c->arg == arg && strcmp(c->behaviour, behaviour) == 0)
      break;
  if (c == NULL && (c = otpc__calloc(1, sizeof *c)) != NULL) {
    size_t n = strlen(behaviour) + 1;
    c->behaviour = otpc__malloc(n);
    if (c->behaviour == NULL) {
      otpc__free(c);
      c = NULL;
    } else {
      memcpy(c->behaviour, behaviour, n);
      c->mod = m;
      c->is_statem = is_statem;
      c->name = name;
      c->arg = arg;
      c->next = children;
      children = c;
    }
  }
  pthread_mutex_unlock(&children_lock);
  return c;
}

int otpc_code_start_child(void *child, otpc_pid_t *pid, otpc_buf_t **reason) {
  otpc_code_child_t *c = child;
  if (c == NULL) return OTPC_EINVAL;
  otpc_gs_opts_t o = {.name = c->name, .link = true};
  int rc = c->is_statem ? otpc_code_start_gen_statem(c->mod->name, c->behaviour,
                                                     c->arg, &o, pid, reason)
                        : otpc_code_start_gen_server(c->mod->name, c->behaviour,
                                                     c->arg, &o, pid, reason);
  if ((rc == OTPC_ENOMODULE || rc == OTPC_ENONAME) && reason != NULL &&
      *reason == NULL)
    *reason = otpc_term_fmt("{~a, ~a, ~a}", otpc_err_name(rc), c->mod->name,
                            c->behaviour);
  return rc;
}
