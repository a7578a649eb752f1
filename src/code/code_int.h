/*
 * code_int.h: the code layer's records and the contracts between its
 * files.
 *
 *   module.c   the module table, loading (copy, dlopen, check), soft
 *              purge and purge, info
 *   bind.c     bindings: which version each behaviour process runs, the
 *              operations gen_server and gen_statem call (otp_int.h),
 *              starting behaviours of a module, supervisor children
 *   export.c   what the rest of the node keeps of a module, by way of the
 *              code layer: rpc exports and application specs that reach
 *              the current version when called; the otpc_code rpc server
 *   sys.c      the client side of sys: suspend, resume, change_code
 *
 * Records and who may touch what:
 *
 *   mod_t   one per module name, created on its first load and never
 *           freed (as Erlang's module table keeps its entries), so other
 *           records may point to it for good. `current` is written under
 *           `lock` and read without it (an acquire load) at each dispatch
 *           of a bound process; everything else under `lock`.
 *   ver_t   one loaded version. Its users (bindings plus rpc calls in
 *           flight) and its list of bindings are under the module's lock.
 *           A version is unloaded (dlclose, freed) only when it is old
 *           and has no users, by soft_purge or purge.
 *   bind_t  one per behaviour process of a module; see bind.c.
 *
 * Lock order: the module table lock, then a module's lock. No lock is
 * held while user code runs (code_change, init, rpc functions).
 */
#ifndef OTPC_CODE_INT_H
#define OTPC_CODE_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "../otp/otp_int.h"
#include "otpc/code.h"
#include "otpc/dist.h"
#include "otpc/logger.h"

typedef struct mod mod_t;
typedef struct ver ver_t;
typedef struct bind bind_t;
typedef struct export_rec export_rec_t;
typedef struct app_rec app_rec_t;

struct ver {
  mod_t *mod;
  void *handle;              /* dlopen's */
  const otpc_module_t *desc; /* in the shared object */
  otpc_buf_t *vsn;           /* the vsn, parsed */
  char vsn_text[64];         /* as written, cut to fit */
  size_t users;              /* bindings and rpc calls in it; mod->lock */
  bind_t *binds;             /* the processes running it; mod->lock */
};

struct mod {
  mod_t *next; /* in the module table */
  char *name;
  otpc_atom_t atom;
  pthread_mutex_t lock;
  _Atomic(ver_t *) current; /* written under lock */
  ver_t *old;
  uint64_t loads;
  export_rec_t *exports; /* every function any version exported */
  app_rec_t *apps;       /* every application any version defined */
};

/* The module of that name, or NULL (create: make it). module.c. */
mod_t *otpc__code_mod(const char *name, bool create);
/* Locks a module's lock (and unlocks it). */
void otpc__code_lock(mod_t *m);
void otpc__code_unlock(mod_t *m);

/* otpc_code_load (STRICT), with a soft purge first of an old version
 * that nobody runs (SOFT: what otpc_code:load/1 does), or with a purge
 * first (PURGE: otpc_code:load(Path, purge)). */
enum { OTPC__LOAD_STRICT, OTPC__LOAD_SOFT, OTPC__LOAD_PURGE };
int otpc__code_load_mode(const char *path, int mode, otpc_code_error_t *err);

/* Drops one user of v (m->lock held). */
void otpc__code_unuse(ver_t *v);

/* export.c: after a version became current (no lock held): points the
 * module's rpc exports and application specs at the module. May fail
 * with OTPC_EEXIST for an application name taken by another. Checked
 * before the switch by otpc__code_apps_check. */
int otpc__code_apps_check(mod_t *m, const otpc_module_t *desc,
                          otpc_code_error_t *err);
int otpc__code_publish(mod_t *m, const otpc_module_t *desc);

/* bind.c: the pids of the processes that run v (m->lock held), up to
 * max; returns how many there are. */
size_t otpc__code_bound_pids(ver_t *v, otpc_pid_t *pids, size_t max);

/* Fills err with a message (printf format); returns rc. */
int otpc__code_fail(otpc_code_error_t *err, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* OTPC_CODE_INT_H */
