/*
 * reclaim.c: when a dead process's control block may be freed.
 *
 * A sender looks a pid up in the process table and pushes onto the inbox
 * it found, with no lock. The process may die meanwhile, so its control
 * block must stay valid until every thread that could have looked it up
 * has moved on. Quiescent-state reclamation gives that almost for free:
 *
 *   - Scheduler threads hold pointers only while running a process. Each
 *     records the global epoch at its quiescent point between two runs
 *     (otpc__reclaim_quiescent), and records "offline" while asleep.
 *   - Other threads (a plain thread calling otpc_send) bracket their use
 *     with otpc__reclaim_enter/exit, which publishes the epoch they read.
 *   - A block retired at epoch e is freed once every scheduler and every
 *     thread inside a read section has recorded an epoch after e. The
 *     global epoch moves on when all have caught up with it.
 *
 * Freeing drains the inbox: signals that arrived after the process's last
 * look (a link or monitor request from someone who looked it up just
 * before it died) are answered then, with noproc, as Erlang answers them.
 */
#include "rt_int.h"

#define OFFLINE UINT64_MAX
#define MAX_EXTERNAL 128

typedef struct retired {
  struct retired *next;
  otpc__proc_t *proc;
  uint64_t epoch;
} retired_t;

static _Atomic uint64_t global_epoch = 1;
static _Atomic uint64_t external[MAX_EXTERNAL]; /* epoch or OFFLINE */
static _Atomic unsigned next_external;
static __thread int my_external = -1;
static __thread unsigned external_depth;

/* Retired blocks: one list per scheduler, touched by its thread only,
 * plus one shared list for other threads. */
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static retired_t *shared_list; /* written under shared_lock, read as a
                                  * hint without it: always __atomic */
static __thread retired_t *local_list;

void otpc__reclaim_init(void) {
  for (unsigned i = 0; i < MAX_EXTERNAL; i++)
    atomic_store(&external[i], OFFLINE);
}

void otpc__reclaim_enter(void) {
  if (otpc__self_sched != NULL) return; /* schedulers are always inside */
  if (external_depth++ > 0) return;
  if (my_external < 0) {
    unsigned i = atomic_fetch_add(&next_external, 1);
    if (i >= MAX_EXTERNAL) abort(); /* documented limit of sending threads */
    my_external = (int)i;
  }
  /* Publish, then re-read: the epoch we announce must not be older than
   * one a reclaimer could have seen us miss. */
  uint64_t e;
  do {
    e = atomic_load(&global_epoch);
    atomic_store(&external[my_external], e);
  } while (atomic_load(&global_epoch) != e);
}

void otpc__reclaim_exit(void) {
  if (otpc__self_sched != NULL) return;
  if (--external_depth > 0) return;
  atomic_store(&external[my_external], OFFLINE);
}

/* The oldest epoch any thread may still be reading under. */
static uint64_t min_epoch(void) {
  uint64_t m = OFFLINE;
  for (unsigned i = 0; i < otpc__rt.nsched; i++) {
    uint64_t e = atomic_load(&otpc__rt.scheds[i].epoch);
    if (e < m) m = e;
  }
  unsigned n = atomic_load(&next_external);
  for (unsigned i = 0; i < n && i < MAX_EXTERNAL; i++) {
    uint64_t e = atomic_load(&external[i]);
    if (e < m) m = e;
  }
  return m;
}


static retired_t *free_older(retired_t *list, uint64_t before) {
  retired_t **pp = &list;
  while (*pp != NULL) {
    retired_t *r = *pp;
    if (r->epoch < before) {
      *pp = r->next;
      otpc__proc_free(r->proc);
      otpc__free(r);
    } else {
      pp = &r->next;
    }
  }
  return list;
}

void otpc__reclaim_quiescent(otpc__sched_t *s) {
  uint64_t g = atomic_load(&global_epoch);
  atomic_store(&s->epoch, g);
  if (local_list == NULL && __atomic_load_n(&shared_list, __ATOMIC_RELAXED) == NULL)
    return;
  uint64_t m = min_epoch();
  if (m >= g) atomic_compare_exchange_strong(&global_epoch, &g, g + 1);
  local_list = free_older(local_list, m);
  if (__atomic_load_n(&shared_list, __ATOMIC_RELAXED) != NULL &&
      pthread_mutex_trylock(&shared_lock) == 0) {
    __atomic_store_n(&shared_list,
                     free_older(__atomic_load_n(&shared_list, __ATOMIC_RELAXED), m),
                     __ATOMIC_RELAXED);
    pthread_mutex_unlock(&shared_lock);
  }
}

bool otpc__reclaim_pending(void) {
  return local_list != NULL ||
         __atomic_load_n(&shared_list, __ATOMIC_RELAXED) != NULL;
}

void otpc__reclaim_offline(otpc__sched_t *s) {
  atomic_store(&s->epoch, OFFLINE);
}

void otpc__reclaim_retire(otpc__proc_t *p) {
  retired_t *r = otpc__malloc(sizeof *r);
  if (r == NULL) abort(); /* cannot leak a block that others may read */
  r->proc = p;
  r->epoch = atomic_load(&global_epoch);
  if (otpc__self_sched != NULL) {
    r->next = local_list;
    local_list = r;
  } else {
    pthread_mutex_lock(&shared_lock);
    r->next = __atomic_load_n(&shared_list, __ATOMIC_RELAXED);
    __atomic_store_n(&shared_list, r, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&shared_lock);
  }
}

void otpc__reclaim_drain(void) {
  /* Every scheduler has stopped: nothing reads any more. Per-thread lists
   * were handed over to the shared one as the schedulers stopped. */
  pthread_mutex_lock(&shared_lock);
  __atomic_store_n(&shared_list,
                   free_older(__atomic_load_n(&shared_list, __ATOMIC_RELAXED),
                              OFFLINE),
                   __ATOMIC_RELAXED);
  pthread_mutex_unlock(&shared_lock);
}

void otpc__reclaim_thread_done(void) {
  if (local_list == NULL) return;
  pthread_mutex_lock(&shared_lock);
  retired_t *r = local_list;
  while (r->next) r = r->next;
  r->next = __atomic_load_n(&shared_list, __ATOMIC_RELAXED);
  __atomic_store_n(&shared_list, local_list, __ATOMIC_RELAXED);
  local_list = NULL;
  pthread_mutex_unlock(&shared_lock);
}
