/*
 * proc.c: the process table, control blocks, and delivering signals.
 *
 * A pid's id is an index into the table and its serial is the slot's
 * generation, so finding a process and telling a stale pid from a live one
 * are O(1): slots[id] holds the control block, whose serial must match.
 * The table is one big MAP_NORESERVE array: only the pages of slots in use
 * cost memory.
 *
 * Free indexes are reused last-in first-out under `index_lock`; each
 * scheduler keeps a small batch of them so that spawning rarely takes the
 * lock. A slot is cleared when its process dies; the control block itself
 * lives on until reclaim.c says no thread can still be reading it.
 */
#include <sys/mman.h>

#include "rt_int.h"

#define INDEX_BATCH 64

static pthread_mutex_t index_lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t *free_index; /* stack of free indexes */
static size_t free_count, free_cap;
static uint32_t next_fresh; /* indexes never used yet start here */

typedef struct index_cache {
  uint32_t n;
  uint32_t idx[INDEX_BATCH];
} index_cache_t;
static __thread index_cache_t cache;

/* Control blocks freed on a scheduler thread are kept there for the next
 * spawn (as signal nodes are, see queue.c). */
int otpc__proc_table_init(size_t max) {
  size_t bytes = max * sizeof(otpc__proc_t *);
  void *slots = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (slots == MAP_FAILED) return OTPC_ENOMEM;
  void *serials = mmap(NULL, max * sizeof(uint32_t), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (serials == MAP_FAILED) {
    munmap(slots, bytes);
    return OTPC_ENOMEM;
  }
  otpc__rt.slots = slots;
  otpc__rt.serials = serials;
  otpc__rt.max_procs = max;
  next_fresh = 0;
  free_count = 0;
  return 0;
}

/* One past the highest index ever handed out: no live process is above. */
size_t otpc__proc_high_water(void) {
  pthread_mutex_lock(&index_lock);
  size_t n = next_fresh;
  pthread_mutex_unlock(&index_lock);
  return n;
}

void otpc__proc_table_free(void) {
  munmap((void *)otpc__rt.slots, otpc__rt.max_procs * sizeof(void *));
  munmap((void *)otpc__rt.serials, otpc__rt.max_procs * sizeof(uint32_t));
  otpc__free(free_index);
  free_index = NULL;
  free_count = free_cap = 0;
  cache.n = 0;
}

/* Fills the calling thread's cache; OTPC_ESYSLIMIT when the table is
 * full (Erlang's system_limit). */
static __attribute__((noinline)) int refill(void) {
  pthread_mutex_lock(&index_lock);
  while (cache.n < INDEX_BATCH / 2) {
    if (free_count > 0)
      cache.idx[cache.n++] = free_index[--free_count];
    else if (next_fresh < otpc__rt.max_procs)
      cache.idx[cache.n++] = next_fresh++;
    else
      break;
  }
  pthread_mutex_unlock(&index_lock);
  return cache.n > 0 ? 0 : OTPC_ESYSLIMIT;
}

static void release_index(uint32_t idx) {
  if (cache.n < INDEX_BATCH) {
    cache.idx[cache.n++] = idx;
    return;
  }
  pthread_mutex_lock(&index_lock);
  /* Hand half the cache back along with this one. */
  size_t need = free_count + INDEX_BATCH / 2 + 1;
  if (need > free_cap) {
    size_t cap = free_cap ? free_cap * 2 : 1024;
    while (cap < need) cap *= 2;
    uint32_t *bigger = otpc__realloc(free_index, cap * sizeof *bigger);
    if (bigger == NULL) { /* keep it cached; it is not lost */
      pthread_mutex_unlock(&index_lock);
      cache.idx[INDEX_BATCH - 1] = idx;
      return;
    }
    free_index = bigger;
    free_cap = cap;
  }
  while (cache.n > INDEX_BATCH / 2) free_index[free_count++] = cache.idx[--cache.n];
  free_index[free_count++] = idx;
  pthread_mutex_unlock(&index_lock);
}

/* A scheduler thread stopping hands its index cache back. */
void otpc__proc_cache_flush(void) {
  pthread_mutex_lock(&index_lock);
  while (cache.n > 0 && free_count < free_cap) free_index[free_count++] = cache.idx[--cache.n];
  cache.n = 0;
  pthread_mutex_unlock(&index_lock);
}

static otpc__proc_t *proc_alloc(void) {
  return otpc__slab_alloc(OTPC__SLAB_PROC);
}

void otpc__proc_dealloc(otpc__proc_t *p) { otpc__slab_free(OTPC__SLAB_PROC, p); }

int otpc__proc_new(otpc__proc_t **out, const otpc_spawn_opts_t *opts) {
  if (cache.n == 0) {
    int rc = refill();
    if (rc != 0) return rc;
  }
  otpc__proc_t *p = proc_alloc();
  if (p == NULL) return OTPC_ENOMEM;
  memset(p, 0, sizeof *p);
  uint32_t idx = cache.idx[--cache.n];
  otpc__mpsc_init(&p->inbox);
  /* Queued from birth (its inbox not marked idle): spawn_common queues
   * it once published, and a sender that finds it before that does not. */
  p->index = idx;
  /* The slot's index is this thread's alone until released (the index
   * lock orders one holder after the other): no read-modify-write. */
  uint32_t serial =
      atomic_load_explicit(&otpc__rt.serials[idx], memory_order_relaxed);
  atomic_store_explicit(&otpc__rt.serials[idx], serial + 1,
                        memory_order_relaxed);
  p->serial = serial & 0x7fffffffu;
  p->home = -1;
  p->mq_last = &p->mq_first;
  p->mq_save = &p->mq_first;
  p->priority = opts ? (uint8_t)opts->priority : OTPC_PRIO_NORMAL;
  p->name_hint = opts ? opts->name : NULL;
  atomic_fetch_add(&otpc__rt.nprocs, 1);
  *out = p;
  return 0;
}

/* A process made by otpc__proc_new that could not start: gone without a
 * trace (never published, so nobody can hold it). */
void otpc__proc_undo(otpc__proc_t *p) {
  otpc__ext_free(p->ext);
  release_index(p->index);
  otpc__proc_dealloc(p);
  atomic_fetch_sub(&otpc__rt.nprocs, 1);
}

void otpc__proc_publish(otpc__proc_t *p) {
  atomic_store_explicit(&otpc__rt.slots[p->index], p, memory_order_release);
}

otpc__proc_ext_t *otpc__proc_ext(otpc__proc_t *p) {
  if (p->ext == NULL) {
    otpc__proc_ext_t *x = otpc__slab_alloc(OTPC__SLAB_EXT);
    if (x == NULL) return NULL;
    memset(x, 0, sizeof *x);
    x->owner = p;
    __atomic_store_n(&p->ext, x, __ATOMIC_RELEASE); /* process_info reads it */
  }
  return p->ext;
}


/* The process has died: its pid stops resolving at once; its block is
 * freed after the grace period. */
void otpc__proc_retire(otpc__proc_t *p) {
  atomic_store_explicit(&otpc__rt.slots[p->index], NULL, memory_order_release);
  release_index(p->index); /* the slot is empty already (finish_exit) */
  otpc__reclaim_retire(p);
  if (atomic_fetch_sub(&otpc__rt.nprocs, 1) == 1) {
    pthread_mutex_lock(&otpc__rt.wait_lock);
    pthread_cond_broadcast(&otpc__rt.wait_cond);
    pthread_mutex_unlock(&otpc__rt.wait_lock);
  }
}


void otpc__proc_free(otpc__proc_t *p) {
  otpc__qlink_t *l;
  while ((l = otpc__mpsc_pop(&p->inbox)) != NULL)
    otpc__answer_noproc((otpc__sig_t *)l, otpc__proc_pid(p));
  if (p->ext != NULL) {
    otpc__alias_free_all(p);
    otpc__ext_free(p->ext);
  }
  otpc__proc_dealloc(p);
}

/* Pushes sig; true if p was idle and is now the caller's to queue. */
static inline bool deliver_push(otpc__proc_t *p, otpc__sig_t *sig) {
  /* sig is not ours once pushed */
  bool urgent = sig->kind == SIG_EXIT || sig->kind == SIG_INFO ||
                sig->kind == SIG_WAKE;
  bool idle = otpc__inbox_push(&p->inbox, &sig->link);
  /* A handler takes its inbox in a few hundred messages at a time; an
   * exit, a wake-up or a question from process_info has it take all at
   * its next look, so that it is acted on without waiting for the
   * messages before it to be handled (sched.c, handler_run). The other
   * signals (links, monitors, DOWNs) only keep books, in their place
   * among the messages: they wait their turn, and a gen_server call's
   * demonitor does not cost the server a locked exchange. After the push:
   * the owner that sees the flag finds the signal. */
  if (urgent && atomic_load_explicit(&p->urgent, memory_order_relaxed) == 0)
    atomic_store_explicit(&p->urgent, 1, memory_order_release);
  /* The push swapped out a tail marked idle: p is ours to queue. Else
   * it runs, or is queued, and its go_idle finds the push. */
  return idle;
}

void otpc__deliver(otpc__proc_t *p, otpc__sig_t *sig) {
  if (deliver_push(p, sig)) otpc__make_runnable(p);
}

_Atomic(otpc__route_fn) otpc__remote_route;
_Atomic(otpc__alias_route_fn) otpc__alias_route;

/* otpc__deliver_pid and otpc__deliver_call: woken is NULL for the first. */
static inline uint32_t deliver_pid_at(otpc_pid_t to, otpc__sig_t *sig,
                                      otpc__proc_t **woken) {
  if (!otpc__pid_is_local(to)) { /* dist: another node's pid */
    otpc__route_fn route = atomic_load_explicit(&otpc__remote_route,
                                                memory_order_acquire);
    if (route != NULL) {
      route(to, sig);
      return 0;
    }
  }
  uint32_t len = 0;
  otpc__reclaim_enter();
  otpc__proc_t *p = otpc__proc_lookup(to);
  if (p != NULL) {
    len = __atomic_load_n(&p->backlog, __ATOMIC_RELAXED);
    if (deliver_push(p, sig)) {
      if (woken != NULL && otpc__may_run_called(p))
        *woken = p; /* ours to run: nobody else queues or frees it */
      else
        otpc__make_runnable(p);
    }
  }
  otpc__reclaim_exit();
  if (p == NULL) otpc__answer_noproc(sig, to);
  return len;
}

uint32_t otpc__deliver_pid(otpc_pid_t to, otpc__sig_t *sig) {
  return deliver_pid_at(to, sig, NULL);
}

uint32_t otpc__deliver_call(otpc_pid_t to, otpc__sig_t *sig,
                            otpc__proc_t **woken) {
  *woken = NULL;
  return deliver_pid_at(to, sig, woken);
}
