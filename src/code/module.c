/*
 * module.c: the module table, and the life of a version: load, soft
 * purge, purge.
 *
 * Loading, step by step; any failure before step 5 leaves everything as
 * it was (steps 1 to 3 run on the dirty pool when called from a process,
 * as dlclose does, so no scheduler blocks on the disk or the loader):
 *
 *   1. the file is read and must start with the ELF magic;
 *   2. it is copied to a private temporary file, which is dlopen'ed
 *      (RTLD_NOW | RTLD_LOCAL) and unlinked at once: the loader keeps
 *      its mapping, and a second load of the same path (rebuilt) is a
 *      new object, never the loader's cached old one;
 *   3. the descriptor `otpc_module` is looked up and checked: the ABI,
 *      the name (an atom), the vsn (term text), the tables' names;
 *   4. under the module's lock: no old version may be loaded
 *      (OTPC_ENOTPURGED, as Erlang's not_purged); the applications'
 *      names are checked;
 *   5. the loaded version becomes old, the new one current (one atomic
 *      store, which bound processes see at their next dispatch); then
 *      the rpc exports and the applications are pointed at the module.
 *
 * A version is unloaded only when it is old and nothing uses it: no
 * bound process and no rpc call in it (ver_t.users).
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "code_int.h"

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static mod_t *table; /* every module ever loaded; under table_lock */

int otpc__code_fail(otpc_code_error_t *err, int rc, const char *fmt, ...) {
  if (err != NULL) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
  }
  return rc;
}

static char *copy_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *c = otpc__malloc(n);
  if (c != NULL) memcpy(c, s, n);
  return c;
}

mod_t *otpc__code_mod(const char *name, bool create) {
  pthread_mutex_lock(&table_lock);
  mod_t *m;
  for (m = table; m != NULL; m = m->next)
    if (strcmp(m->name, name) == 0) break;
  if (m == NULL && create) {
    m = otpc__calloc(1, sizeof *m);
    if (m != NULL && (m->name = copy_str(name)) == NULL) {
      otpc__free(m);
      m = NULL;
    }
    if (m != NULL) {
      m->atom = otpc_atom(name);
      pthread_mutex_init(&m->lock, NULL);
      m->next = table;
      table = m;
    }
  }
  pthread_mutex_unlock(&table_lock);
  return m;
}

void otpc__code_lock(mod_t *m) {
  pthread_mutex_lock(&m->lock);
}
void otpc__code_unlock(mod_t *m) {
  pthread_mutex_unlock(&m->lock);
}
void otpc__code_unuse(ver_t *v) {
  v->users--;
}

/* ------------------------------------------------------------------------
 * Opening a shared object
 * ------------------------------------------------------------------------ */

/* Copies path to a new private temporary file; its name into tmp. */
static int copy_private(const char *path, char *tmp, size_t tmpsz,
                        otpc_code_error_t *err) {
  int in = open(path, O_RDONLY | O_CLOEXEC);
  if (in < 0)
    return otpc__code_fail(err, OTPC_EIO, "%s: %s", path, strerror(errno));
  unsigned char magic[4] = {0};
  ssize_t got = read(in, magic, sizeof magic);
  if (got != 4 || memcmp(magic, "\177ELF", 4) != 0) {
    close(in);
    return otpc__code_fail(err, OTPC_EBADMODULE,
                           "%s: not a shared object (no ELF header)", path);
  }
  const char *dir = getenv("TMPDIR");
  snprintf(tmp, tmpsz, "%s/otpc-module-XXXXXX.so",
           dir != NULL && *dir != '\0' ? dir : "/tmp");
  int out = mkstemps(tmp, 3);
  if (out < 0) {
    int e = errno;
    close(in);
    errno = e;
    return otpc__code_fail(err, OTPC_EIO, "%s: %s", tmp, strerror(e));
  }
  int rc = 0;
  char buf[65536];
  memcpy(buf, magic, 4);
  ssize_t n = 4;
  while (n > 0) {
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(out, buf + off, (size_t)(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        rc = otpc__code_fail(err, OTPC_EIO, "%s: %s", tmp, strerror(errno));
        goto done;
      }
      off += w;
    }
    do n = read(in, buf, sizeof buf);
    while (n < 0 && errno == EINTR);
    if (n < 0)
      rc = otpc__code_fail(err, OTPC_EIO, "%s: %s", path, strerror(errno));
  }
done:
  close(in);
  if (close(out) != 0 && rc == 0)
    rc = otpc__code_fail(err, OTPC_EIO, "%s: %s", tmp, strerror(errno));
  if (rc != 0) unlink(tmp);
  return rc;
}

/* Step 3: the descriptor's fields. */
static int check_desc(const otpc_module_t *d, const char *path,
                      otpc_code_error_t *err) {
  if (d->abi != OTPC_MODULE_ABI)
    return otpc__code_fail(err, OTPC_EBADMODULE,
                           "%s: module ABI %u, this node loads ABI %u", path,
                           (unsigned)d->abi, (unsigned)OTPC_MODULE_ABI);
  if (d->name == NULL || d->name[0] == '\0' ||
      strlen(d->name) > OTPC_ATOM_MAX_CHARS ||
      otpc_atom(d->name) == OTPC_ATOM_NONE)
    return otpc__code_fail(err, OTPC_EBADMODULE,
                           "%s: the module has no valid name", path);
  for (size_t i = 0; d->gen_servers != NULL && d->gen_servers[i] != NULL; i++)
    if (d->gen_servers[i]->name == NULL || d->gen_servers[i]->init == NULL)
      return otpc__code_fail(err, OTPC_EBADMODULE,
                             "%s: gen_server %zu has no name or no init", path,
                             i);
  for (size_t i = 0; d->gen_statems != NULL && d->gen_statems[i] != NULL; i++)
    if (d->gen_statems[i]->name == NULL || d->gen_statems[i]->init == NULL)
      return otpc__code_fail(err, OTPC_EBADMODULE,
                             "%s: gen_statem %zu has no name or no init", path,
                             i);
  for (size_t i = 0; d->apps != NULL && d->apps[i] != NULL; i++)
    if (d->apps[i]->name == NULL)
      return otpc__code_fail(err, OTPC_EBADMODULE,
                             "%s: application %zu has no name", path, i);
  for (size_t i = 0; d->exports != NULL && d->exports[i].name != NULL; i++)
    if (d->exports[i].fn == NULL)
      return otpc__code_fail(err, OTPC_EBADMODULE,
                             "%s: export %s has no function", path,
                             d->exports[i].name);
  return 0;
}

static intptr_t dlclose_work(void *handle) {
  return dlclose(handle);
}

/* Unloads a version. dlclose runs the object's destructors and unmaps
 * it: from a process, on the dirty pool, so no scheduler waits for it. */
static void ver_free(ver_t *v) {
  if (v == NULL) return;
  if (v->handle != NULL) {
    if (otpc__current() != NULL)
      otpc_dirty(dlclose_work, v->handle);
    else
      dlclose(v->handle);
  }
  otpc_buf_unref(v->vsn);
  otpc__free(v);
}

/* Steps 1 to 3: a new version, not yet in any module. */
static int open_version(const char *path, ver_t **out, otpc_code_error_t *err) {
  char tmp[4096];
  int rc = copy_private(path, tmp, sizeof tmp, err);
  if (rc != 0) return rc;
  ver_t *v = otpc__calloc(1, sizeof *v);
  if (v == NULL) {
    unlink(tmp);
    return otpc__code_fail(err, OTPC_ENOMEM, "out of memory");
  }
  v->handle = dlopen(tmp, RTLD_NOW | RTLD_LOCAL);
  unlink(tmp); /* the mapping stays; nothing is left on disk */
  if (v->handle == NULL) {
    const char *why = dlerror();
    otpc__free(v);
    return otpc__code_fail(err, OTPC_EBADMODULE, "%s: %s", path,
                           why ? why : "dlopen failed");
  }
  dlerror();
  v->desc = dlsym(v->handle, OTPC_MODULE_SYMBOL);
  if (v->desc == NULL) {
    ver_free(v);
    return otpc__code_fail(err, OTPC_EBADMODULE,
                           "%s: no descriptor (symbol %s); define it with "
                           "OTPC_MODULE()",
                           path, OTPC_MODULE_SYMBOL);
  }
  rc = check_desc(v->desc, path, err);
  const char *vsn = v->desc->vsn != NULL ? v->desc->vsn : "undefined";
  size_t errpos = 0;
  if (rc == 0 && otpc_term_parse(vsn, strlen(vsn), &v->vsn, &errpos) != 0)
    rc = otpc__code_fail(err, OTPC_EBADMODULE,
                         "%s: vsn \"%s\" is not term text (at %zu)", path, vsn,
                         errpos);
  if (rc != 0) {
    ver_free(v);
    return rc;
  }
  snprintf(v->vsn_text, sizeof v->vsn_text, "%s", vsn);
  *out = v;
  return 0;
}

typedef struct open_job {
  const char *path;
  ver_t **out;
  otpc_code_error_t *err;
  int rc;
} open_job_t;

static intptr_t open_work(void *arg) {
  open_job_t *j = arg;
  j->rc = open_version(j->path, j->out, j->err);
  return 0;
}

/* ------------------------------------------------------------------------
 * Load, purge
 * ------------------------------------------------------------------------ */

static ver_t *detach_old(mod_t *m, ver_t *expect);

static int load(const char *path, int mode, otpc_code_error_t *err) {
  if (err != NULL) err->message[0] = '\0';
  if (path == NULL) return otpc__code_fail(err, OTPC_EINVAL, "no path");
  ver_t *v;
  int rc;
  if (otpc__current() != NULL) { /* file copy, dlopen: blocking work */
    open_job_t job = {path, &v, err, 0};
    otpc_dirty(open_work, &job);
    rc = job.rc;
  } else {
    rc = open_version(path, &v, err);
  }
  if (rc != 0) return rc;
  mod_t *m = otpc__code_mod(v->desc->name, true);
  if (m == NULL) {
    ver_free(v);
    return otpc__code_fail(err, OTPC_ENOMEM, "out of memory");
  }
  if (mode == OTPC__LOAD_PURGE && otpc_code_purge(m->name) < 0) {
    ver_free(v);
    return otpc__code_fail(err, OTPC_ENOTPURGED,
                           "module %s: its old code could not be purged",
                           m->name);
  }
  otpc__code_lock(m);
  ver_t *purged = mode != OTPC__LOAD_STRICT ? detach_old(m, m->old) : NULL;
  if (m->old != NULL) {
    otpc__code_unlock(m);
    ver_free(v);
    return otpc__code_fail(err, OTPC_ENOTPURGED,
                           "module %s: old code (vsn %s) is still loaded; "
                           "purge it first",
                           m->name, m->old->vsn_text);
  }
  rc = otpc__code_apps_check(m, v->desc, err);
  if (rc != 0) {
    otpc__code_unlock(m);
    ver_free(purged); /* it was unused old code: gone all the same */
    ver_free(v);
    return rc;
  }
  v->mod = m;
  m->old = atomic_load_explicit(&m->current, memory_order_relaxed);
  atomic_store_explicit(&m->current, v, memory_order_release);
  m->loads++;
  otpc__code_unlock(m);
  ver_free(purged);
  rc = otpc__code_publish(m, v->desc);
  if (rc != 0)
    return otpc__code_fail(err, rc,
                           "module %s loaded, but registering its "
                           "applications or exports failed: %s",
                           m->name, otpc_strerror(rc));
  return 0;
}

int otpc_code_load(const char *path, otpc_code_error_t *err) {
  return load(path, OTPC__LOAD_STRICT, err);
}

int otpc__code_load_mode(const char *path, int mode, otpc_code_error_t *err) {
  return load(path, mode, err);
}

/* Takes m's old version out if it has no users; returns it (to unload
 * with no lock held) or NULL. m->lock held. */
static ver_t *detach_old(mod_t *m, ver_t *expect) {
  ver_t *old = m->old;
  if (old == NULL || old != expect || old->users > 0) return NULL;
  m->old = NULL;
  return old;
}

/* The module of that name if a version of it was ever loaded (a record
 * can exist before: otpc_code_child makes one), else NULL. */
static mod_t *loaded_mod(const char *name) {
  mod_t *m = name != NULL ? otpc__code_mod(name, false) : NULL;
  if (m == NULL) return NULL;
  otpc__code_lock(m);
  bool loaded = m->loads > 0;
  otpc__code_unlock(m);
  return loaded ? m : NULL;
}

int otpc_code_soft_purge(const char *module) {
  mod_t *m = loaded_mod(module);
  if (m == NULL) return OTPC_ENOMODULE;
  otpc__code_lock(m);
  ver_t *old = m->old;
  int rc = old != NULL && old->users > 0 ? OTPC_EINUSE : 0;
  old = rc == 0 ? detach_old(m, old) : NULL;
  otpc__code_unlock(m);
  ver_free(old);
  return rc;
}

static void pause_ms(int ms) {
  if (otpc__current() != NULL) {
    otpc_sleep(ms);
  } else {
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
  }
}

#define PURGE_BATCH 256
#define PURGE_WAIT_MS 5000

int otpc_code_purge(const char *module) {
  mod_t *m = loaded_mod(module);
  if (m == NULL) return OTPC_ENOMODULE;
  otpc_buf_t *kill = otpc__atom_buf(OTPC_ATOM_KILL);
  if (kill == NULL) return OTPC_ENOMEM;
  int killed = 0;
  otpc_pid_t pids[PURGE_BATCH];
  otpc__code_lock(m);
  ver_t *old = m->old;
  /* Kill whoever runs it, again each round (a process may attach late),
   * until nothing uses it. */
  for (int waited = 0; old != NULL && old->users > 0; waited++) {
    size_t n = otpc__code_bound_pids(old, pids, PURGE_BATCH);
    if (waited == 0) killed = (int)n;     /* later rounds: the same ones */
    if (n > PURGE_BATCH) n = PURGE_BATCH; /* the rest in later rounds */
    otpc__code_unlock(m);
    for (size_t i = 0; i < n; i++)
      otpc_exit_signal(pids[i], otpc_buf_term(kill));
    if (waited >= PURGE_WAIT_MS) {
      otpc_buf_unref(kill);
      return OTPC_ETIMEDOUT;
    }
    pause_ms(1);
    otpc__code_lock(m);
    if (m->old != old) break; /* someone else purged it */
  }
  old = m->old == old ? detach_old(m, old) : NULL;
  otpc__code_unlock(m);
  ver_free(old);
  otpc_buf_unref(kill);
  return killed;
}

/* ------------------------------------------------------------------------
 * What is loaded
 * ------------------------------------------------------------------------ */

int otpc_code_info(const char *module, otpc_code_info_t *info) {
  mod_t *m = loaded_mod(module);
  if (m == NULL) return OTPC_ENOMODULE;
  if (info == NULL) return OTPC_EINVAL;
  memset(info, 0, sizeof *info);
  otpc__code_lock(m);
  ver_t *cur = atomic_load_explicit(&m->current, memory_order_relaxed);
  if (cur != NULL) {
    info->loaded = true;
    info->current_users = cur->users;
    snprintf(info->vsn, sizeof info->vsn, "%s", cur->vsn_text);
  }
  if (m->old != NULL) {
    info->has_old = true;
    info->old_users = m->old->users;
    snprintf(info->old_vsn, sizeof info->old_vsn, "%s", m->old->vsn_text);
  }
  info->loads = m->loads;
  otpc__code_unlock(m);
  return 0;
}

size_t otpc_code_modules(const char **names, size_t max) {
  size_t n = 0;
  pthread_mutex_lock(&table_lock);
  for (mod_t *m = table; m != NULL; m = m->next) {
    otpc__code_lock(m); /* the table's lock, then a module's */
    bool loaded = m->loads > 0;
    otpc__code_unlock(m);
    if (!loaded) continue;
    if (names != NULL && n < max) names[n] = m->name;
    n++;
  }
  pthread_mutex_unlock(&table_lock);
  return n;
}
