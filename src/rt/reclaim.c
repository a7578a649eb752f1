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

/* A list of retired blocks, oldest first, linked through the dead
 * blocks themselves (p->u.retired). */
typedef struct rlist {
  otpc__proc_t *head, *tail;
} rlist_t;

static _Atomic uint64_t global_epoch = 1;
static _Atomic uint64_t external[MAX_EXTERNAL]; /* epoch or OFFLINE */
static _Atomic unsigned next_external;
static __thread int my_external = -1;
static __thread unsigned external_depth;

/* Retired blocks: one list per scheduler, touched by its thread only,
 * plus one shared list for other threads. */
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static rlist_t shared_list; /* under shared_lock; .head also read as a
                             * hint without it: always __atomic */
static __thread rlist_t local_list;

static void rlist_append(rlist_t *l, otpc__proc_t *p) {
  p->u.retired.next = NULL;
  if (l->tail) l->tail->u.retired.next = p;
  else __atomic_store_n(&l->head, p, __ATOMIC_RELAXED);
  l->tail = p;
}

/* Frees from the head while blocks are older than `before`: the list is
 * in retirement order, so this stops at the first one still in grace. */
static void free_older(rlist_t *l, uint64_t before) {
  otpc__proc_t *p;
  while ((p = l->head) != NULL && p->u.retired.epoch < before) {
    __atomic_store_n(&l->head, p->u.retired.next, __ATOMIC_RELAXED);
    if (l->head == NULL) l->tail = NULL;
    otpc__proc_free(p);
  }
}

void otpc__reclaim_init(void) {
  for (unsigned i = 0; i < MAX_EXTERNAL; i++)
    atomic_store(&external[i], OFFLINE);
}

void otpc__reclaim_enter_ext(void) {
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

void otpc__reclaim_exit_ext(void) {
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


/* Between two process runs: announce the epoch (only when it moved: the
 * store is a write to a line others read), and every TRY_EVERY such
 * points, or when asked, try to move the epoch on and free what is old
 * enough. Trying costs a look at every thread's epoch and a
 * compare-and-swap on the global one, lines that move between cores:
 * done after every process, that was a few cache misses per spawn. */
#define TRY_EVERY 64

static __thread unsigned ticks;

static void quiescent(otpc__sched_t *s, bool try_now) {
  uint64_t g = atomic_load(&global_epoch);
  if (atomic_load_explicit(&s->epoch, memory_order_relaxed) != g)
    atomic_store(&s->epoch, g);
  if (local_list.head == NULL &&
      __atomic_load_n(&shared_list.head, __ATOMIC_RELAXED) == NULL)
    return;
  if (!try_now && ++ticks % TRY_EVERY != 0) return;
  uint64_t m = min_epoch();
  if (m >= g) atomic_compare_exchange_strong(&global_epoch, &g, g + 1);
  free_older(&local_list, m);
  if (__atomic_load_n(&shared_list.head, __ATOMIC_RELAXED) != NULL &&
      pthread_mutex_trylock(&shared_lock) == 0) {
    free_older(&shared_list, m);
    pthread_mutex_unlock(&shared_lock);
  }
}

void otpc__reclaim_quiescent(otpc__sched_t *s) { quiescent(s, true); }

void otpc__reclaim_between_runs(otpc__sched_t *s) { quiescent(s, false); }

bool otpc__reclaim_pending(void) {
  return local_list.head != NULL ||
         __atomic_load_n(&shared_list.head, __ATOMIC_RELAXED) != NULL;
}

void otpc__reclaim_offline(otpc__sched_t *s) {
  atomic_store(&s->epoch, OFFLINE);
}

void otpc__reclaim_retire(otpc__proc_t *p) {
  p->u.retired.epoch = atomic_load(&global_epoch);
  if (otpc__self_sched != NULL) {
    rlist_append(&local_list, p);
  } else {
    pthread_mutex_lock(&shared_lock);
    rlist_append(&shared_list, p);
    pthread_mutex_unlock(&shared_lock);
  }
}

void otpc__reclaim_drain(void) {
  /* Every scheduler has stopped: nothing reads any more. Per-thread lists
   * were handed over to the shared one as the schedulers stopped. */
  pthread_mutex_lock(&shared_lock);
  free_older(&shared_list, OFFLINE);
  pthread_mutex_unlock(&shared_lock);
}

void otpc__reclaim_thread_done(void) {
  if (local_list.head == NULL) return;
  pthread_mutex_lock(&shared_lock);
  /* Epochs only grow, so appending keeps the shared list nearly in order;
   * a block that waits a little longer behind a newer one is harmless. */
  if (shared_list.tail) shared_list.tail->u.retired.next = local_list.head;
  else __atomic_store_n(&shared_list.head, local_list.head, __ATOMIC_RELAXED);
  shared_list.tail = local_list.tail;
  local_list.head = local_list.tail = NULL;
  pthread_mutex_unlock(&shared_lock);
}
