/*
 * slab.c: memory for the runtime's own fixed-size objects, the process
 * control blocks, signal nodes and message nodes, which are made and freed at the rate
 * processes spawn and messages flow.
 *
 * General-purpose malloc pays for that rate twice: per call, and in heap
 * growth (a thread's arena grows by small mprotect steps, and bulk frees
 * consolidate and trim it). Here each kind of object has a pool:
 *
 *   - memory comes from the system in chunks of CHUNK bytes and is carved
 *     into blocks, a batch of BATCH blocks at a time;
 *   - each scheduler keeps two magazines per pool (lists of up to BATCH
 *     free blocks): allocation and freeing touch only those, with no
 *     atomic operation; a full or empty pair trades one whole batch with
 *     the pool's shared stack, under its lock;
 *   - other threads (a program calling otpc_send from main, the timer
 *     thread) take and give single blocks under the lock.
 *
 * A block freed on another scheduler than the one that made it simply
 * joins that scheduler's magazines. Freed blocks are kept for reuse while
 * the node runs (the pool never shrinks below its peak, as with Erlang's
 * allocators keeping carriers); node stop gives every chunk back.
 *
 * Under AddressSanitizer the pools hand out malloc'd blocks instead, so
 * that use after free is still caught; the counts are kept the same way.
 */
#include <sys/mman.h>

#include "rt_int.h"

#ifdef OTPC__SLAB_PLAIN_MALLOC /* rt_int.h */
#define SLAB_PLAIN_MALLOC 1
#endif

#define CHUNK ((size_t)2 << 20) /* a huge page */
#define BATCH OTPC__SLAB_BATCH

typedef struct otpc__free_block free_block_t;

typedef struct chunk {
  struct chunk *next;
} chunk_t;

typedef struct pool {
  size_t size;               /* block size, a multiple of 8 */
  pthread_mutex_t lock;
  free_block_t *batches;     /* full batches of BATCH blocks */
  free_block_t *singles;     /* blocks given back one at a time */
  char *carve, *carve_end;   /* the chunk being cut up */
  chunk_t *chunks;           /* every chunk, for node stop */
  _Atomic int64_t shared_allocs, shared_frees; /* by non-schedulers */
} pool_t;

static pool_t pools[OTPC__SLAB_N];

static size_t sizes[OTPC__SLAB_N] = {
    [OTPC__SLAB_PROC] = sizeof(otpc__proc_t),
    [OTPC__SLAB_SIG] = sizeof(otpc__sig_t),
    [OTPC__SLAB_MSG] = OTPC__SIG_MSG_SIZE,
    [OTPC__SLAB_EXT] = sizeof(otpc__proc_ext_t),
};

void otpc__slab_init(void) {
  sizes[OTPC__SLAB_MONS] = otpc__mon_small_bytes();
  for (int i = 0; i < OTPC__SLAB_N; i++) {
    pool_t *p = &pools[i];
    memset(p, 0, sizeof *p);
    /* The structs need 8-byte alignment; a free block is two pointers. */
    p->size = (sizes[i] + 7) & ~(size_t)7;
    if (p->size < sizeof(free_block_t)) p->size = sizeof(free_block_t);
    pthread_mutex_init(&p->lock, NULL);
  }
}

void otpc__slab_destroy(void) {
  for (int i = 0; i < OTPC__SLAB_N; i++) {
    pool_t *p = &pools[i];
    for (chunk_t *c = p->chunks; c != NULL;) {
      chunk_t *next = c->next;
      munmap(c, CHUNK);
      c = next;
    }
    pthread_mutex_destroy(&p->lock);
    memset(p, 0, sizeof *p);
  }
}

#define bump otpc__slab_bump

#ifndef SLAB_PLAIN_MALLOC
/* A chunk aligned to its size, so that the kernel can back it with one
 * huge page (one fault instead of 512) where it allows that. */
static void *chunk_map(void) {
  char *m = mmap(NULL, 2 * CHUNK, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return NULL;
  char *aligned = (char *)(((uintptr_t)m + CHUNK - 1) & ~(uintptr_t)(CHUNK - 1));
  if (aligned > m) munmap(m, (size_t)(aligned - m));
  size_t tail = (size_t)(m + 2 * CHUNK - (aligned + CHUNK));
  if (tail > 0) munmap(aligned + CHUNK, tail);
#ifdef MADV_HUGEPAGE
  madvise(aligned, CHUNK, MADV_HUGEPAGE);
#endif
  return aligned;
}

/* Cuts n blocks off the current chunk (a new one if it is used up) into a
 * list. With the lock held. NULL if the system has no memory. */
static free_block_t *carve(pool_t *p, unsigned n) {
  free_block_t *list = NULL;
  while (n-- > 0) {
    if (p->carve == NULL || (size_t)(p->carve_end - p->carve) < p->size) {
      void *m = chunk_map();
      if (m == NULL) break;
      chunk_t *c = m;
      c->next = p->chunks;
      p->chunks = c;
      p->carve = (char *)m + ((sizeof *c + 15) & ~(size_t)15);
      p->carve_end = (char *)m + CHUNK;
    }
    free_block_t *b = (free_block_t *)p->carve;
    p->carve += p->size;
    b->next = list;
    list = b;
  }
  return list;
}

static unsigned list_len(const free_block_t *b) {
  unsigned n = 0;
  for (; b != NULL; b = b->next) n++;
  return n;
}
#endif

void *otpc__slab_alloc_any(otpc__slab_id_t id) {
  pool_t *p = &pools[id];
  otpc__sched_t *s = otpc__self_sched;
#ifdef SLAB_PLAIN_MALLOC
  void *b = otpc__malloc(p->size);
#else
  if (s != NULL) {
    otpc__slab_cache_t *c = &s->slab[id];
    if (c->cur_n == 0) {
      if (c->spare != NULL) {
        c->cur = c->spare;
        c->cur_n = BATCH;
        c->spare = NULL;
      } else {
        pthread_mutex_lock(&p->lock);
        free_block_t *got = p->batches;
        if (got != NULL) {
          p->batches = got->next_batch;
          c->cur_n = BATCH;
        } else {
          got = carve(p, BATCH);
          c->cur_n = list_len(got);
        }
        pthread_mutex_unlock(&p->lock);
        c->cur = got;
        if (got == NULL) return NULL;
      }
    }
    free_block_t *b = c->cur;
    c->cur = b->next;
    c->cur_n--;
    bump(&c->allocs);
    return b;
  }
  pthread_mutex_lock(&p->lock);
  if (p->singles == NULL && p->batches != NULL) { /* reuse before carving */
    p->singles = p->batches;
    p->batches = p->batches->next_batch;
  }
  free_block_t *b = p->singles;
  if (b != NULL)
    p->singles = b->next;
  else
    b = carve(p, 1);
  pthread_mutex_unlock(&p->lock);
#endif
  if (b != NULL) {
    if (s != NULL)
      bump(&s->slab[id].allocs);
    else
      atomic_fetch_add_explicit(&p->shared_allocs, 1, memory_order_relaxed);
  }
  return b;
}

void otpc__slab_free_any(otpc__slab_id_t id, void *ptr) {
  if (ptr == NULL) return;
  pool_t *p = &pools[id];
  otpc__sched_t *s = otpc__self_sched;
  if (s != NULL)
    bump(&s->slab[id].frees);
  else
    atomic_fetch_add_explicit(&p->shared_frees, 1, memory_order_relaxed);
#ifdef SLAB_PLAIN_MALLOC
  otpc__free(ptr);
#else
  free_block_t *b = ptr;
  if (s != NULL) {
    otpc__slab_cache_t *c = &s->slab[id];
    if (c->cur_n == BATCH) {
      if (c->spare != NULL) {
        free_block_t *full = c->spare;
        pthread_mutex_lock(&p->lock);
        full->next_batch = p->batches;
        p->batches = full;
        pthread_mutex_unlock(&p->lock);
      }
      c->spare = c->cur;
      c->cur = NULL;
      c->cur_n = 0;
    }
    b->next = c->cur;
    c->cur = b;
    c->cur_n++;
    return;
  }
  pthread_mutex_lock(&p->lock);
  b->next = p->singles;
  p->singles = b;
  pthread_mutex_unlock(&p->lock);
#endif
}

/* A scheduler stopping gives its magazines back to the pools. */
void otpc__slab_flush(otpc__sched_t *s) {
  for (int id = 0; id < OTPC__SLAB_N; id++) {
    otpc__slab_cache_t *c = &s->slab[id];
#ifndef SLAB_PLAIN_MALLOC
    pool_t *p = &pools[id];
    pthread_mutex_lock(&p->lock);
    free_block_t *lists[2] = {c->cur, c->spare};
    for (int i = 0; i < 2; i++) {
      for (free_block_t *b = lists[i]; b != NULL;) {
        free_block_t *next = b->next;
        b->next = p->singles;
        p->singles = b;
        b = next;
      }
    }
    pthread_mutex_unlock(&p->lock);
#endif
    c->cur = c->spare = NULL;
    c->cur_n = 0;
  }
}

int64_t otpc__slab_in_use(otpc__slab_id_t id) {
  pool_t *p = &pools[id];
  int64_t n = atomic_load_explicit(&p->shared_allocs, memory_order_relaxed) -
              atomic_load_explicit(&p->shared_frees, memory_order_relaxed);
  for (unsigned i = 0; otpc__rt.scheds != NULL && i < otpc__rt.nsched; i++) {
    otpc__slab_cache_t *c = &otpc__rt.scheds[i].slab[id];
    n += atomic_load_explicit(&c->allocs, memory_order_relaxed) -
         atomic_load_explicit(&c->frees, memory_order_relaxed);
  }
  return n;
}
