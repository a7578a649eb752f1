/*
 * registry.c: registered names (register/2, unregister/1, whereis/1,
 * registered/0).
 *
 * One open-addressing table from atom to pid under `lock`. A process that
 * has a name remembers it (reg_name), so dying frees the name without a
 * search. Names are few and change rarely; lookups are one probe.
 */
#include "rt_int.h"

typedef struct entry {
  otpc_atom_t name; /* 0: empty; TOMBSTONE: deleted */
  otpc_pid_t pid;
} entry_t;

#define TOMBSTONE UINT32_MAX

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static entry_t *table;
static size_t cap, used, live;

static size_t slot_of(otpc_atom_t a) { return (a * 2654435761u) & (cap - 1); }

static entry_t *find(otpc_atom_t name) {
  if (cap == 0) return NULL;
  for (size_t i = slot_of(name);; i = (i + 1) & (cap - 1)) {
    if (table[i].name == name) return &table[i];
    if (table[i].name == 0) return NULL;
  }
}

static int grow(void) {
  size_t ncap = cap ? cap * 2 : 64;
  entry_t *fresh = otpc__calloc(ncap, sizeof *fresh);
  if (fresh == NULL) return OTPC_ENOMEM;
  entry_t *old = table;
  size_t ocap = cap;
  table = fresh;
  cap = ncap;
  used = live;
  for (size_t i = 0; i < ocap; i++) {
    if (old[i].name == 0 || old[i].name == TOMBSTONE) continue;
    size_t j = slot_of(old[i].name);
    while (table[j].name != 0) j = (j + 1) & (cap - 1);
    table[j] = old[i];
  }
  otpc__free(old);
  return 0;
}

int otpc_register(otpc_atom_t name, otpc_pid_t pid) {
  if (name == OTPC_ATOM_NONE || name == OTPC_ATOM_UNDEFINED) return OTPC_EINVAL;
  int rc = 0;
  pthread_mutex_lock(&lock);
  otpc__reclaim_enter();
  otpc__proc_t *p = otpc__proc_lookup(pid);
  if (p == NULL) {
    rc = OTPC_ENOPROC;
  } else if (find(name) != NULL) {
    rc = OTPC_EEXIST;
  } else if (p->reg_name != 0) {
    rc = OTPC_EEXIST; /* a process has at most one name */
  } else if ((used + 1) * 2 > cap && (rc = grow()) != 0) {
  } else {
    size_t i = slot_of(name);
    while (table[i].name != 0 && table[i].name != TOMBSTONE) i = (i + 1) & (cap - 1);
    if (table[i].name == 0) used++;
    table[i].name = name;
    table[i].pid = pid;
    live++;
    /* Only the owner reads reg_name without the lock, and only to know
     * whether to drop it; it is written under the lock. */
    __atomic_store_n(&p->reg_name, name, __ATOMIC_RELEASE);
  }
  otpc__reclaim_exit();
  pthread_mutex_unlock(&lock);
  return rc;
}

static void remove_entry(entry_t *e) {
  e->name = TOMBSTONE;
  live--;
}

int otpc_unregister(otpc_atom_t name) {
  int rc = 0;
  pthread_mutex_lock(&lock);
  entry_t *e = find(name);
  if (e == NULL) {
    rc = OTPC_ENONAME;
  } else {
    otpc__reclaim_enter();
    otpc__proc_t *p = otpc__proc_lookup(e->pid);
    if (p != NULL) __atomic_store_n(&p->reg_name, 0, __ATOMIC_RELEASE);
    otpc__reclaim_exit();
    remove_entry(e);
  }
  pthread_mutex_unlock(&lock);
  return rc;
}

int otpc_whereis(otpc_atom_t name, otpc_pid_t *pid) {
  int rc = OTPC_ENONAME;
  pthread_mutex_lock(&lock);
  entry_t *e = find(name);
  if (e != NULL) {
    *pid = e->pid;
    rc = 0;
  }
  pthread_mutex_unlock(&lock);
  return rc;
}

size_t otpc_registered(otpc_atom_t *names, size_t max) {
  size_t n = 0;
  pthread_mutex_lock(&lock);
  for (size_t i = 0; i < cap; i++) {
    if (table[i].name == 0 || table[i].name == TOMBSTONE) continue;
    if (n < max) names[n] = table[i].name;
    n++;
  }
  pthread_mutex_unlock(&lock);
  return n;
}

int otpc_send_name(otpc_atom_t name, otpc_buf_t *msg) {
  otpc_pid_t pid;
  if (otpc_whereis(name, &pid) != 0) return OTPC_ENONAME;
  return otpc_send(pid, msg);
}

void otpc__registry_drop(otpc__proc_t *p) {
  if (__atomic_load_n(&p->reg_name, __ATOMIC_ACQUIRE) == 0) return;
  pthread_mutex_lock(&lock);
  entry_t *e = find(__atomic_load_n(&p->reg_name, __ATOMIC_RELAXED));
  if (e != NULL && e->pid.id == p->index && e->pid.serial == p->serial)
    remove_entry(e);
  __atomic_store_n(&p->reg_name, 0, __ATOMIC_RELAXED);
  pthread_mutex_unlock(&lock);
}

void otpc__registry_clear(void) {
  pthread_mutex_lock(&lock);
  otpc__free(table);
  table = NULL;
  cap = used = live = 0;
  pthread_mutex_unlock(&lock);
}
