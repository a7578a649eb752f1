/*
 * stack.c: execution stacks and the switch between them.
 *
 * An execution stack is one mapping: a guard (PROT_NONE, GUARD_BYTES) and
 * above it `stack_size` bytes that the kernel backs with memory only where
 * touched. A scheduler keeps returned stacks in a free list for reuse and
 * unmaps what is beyond POOL_KEEP, so the number of mappings stays bounded
 * by what is in use at once, never by the number of processes (see
 * docs/internals/stacks.md). A fault in the guard is a stack overflow,
 * which ends only the process on the stack (fault.c).
 *
 * otpc__switch() is the only place that changes stacks. It tells the
 * sanitizers which stack it goes to: ASan needs the bounds to keep its
 * fake frames apart; TSan keeps a shadow call stack per fiber, and a stack
 * gets a fresh fiber whenever a new context is made on it.
 */
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "rt_int.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define OTPC_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define OTPC_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define OTPC_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define OTPC_TSAN 1
#endif

#ifdef OTPC_ASAN
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom,
                                    size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save,
                                     const void **bottom_old,
                                     size_t *size_old);
#endif
#ifdef OTPC_TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#endif
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define OTPC_VALGRIND 1
#endif

#define POOL_KEEP 64
/* The guard under each stack. More than a page, so that a function with
 * a large frame (a big local array) that overflows still lands in it and
 * is caught as a stack overflow (fault.c) rather than writing into
 * whatever is mapped below. It costs address space only. */
#define GUARD_BYTES (64 * 1024)
/* Stacks a scheduler makes for processes before it starts evicting. Each
 * is two mappings; the default limit is 65,530 per OS process. */
#define STACK_CAP 256

/* The thread's own stack, for switches back to it (ASan wants bounds). */
static __thread const void *native_bottom;
static __thread size_t native_size;
#ifdef OTPC_TSAN
static __thread void *native_fiber;
#endif

static otpc__xstack_t *xstack_new(void) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t size = (otpc__rt.stack_size + page - 1) & ~(page - 1);
  size_t guard = GUARD_BYTES > page ? GUARD_BYTES : page;
  size_t map_size = size + guard;
  uint8_t *map = mmap(NULL, map_size, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
                      -1, 0);
  if (map == MAP_FAILED) return NULL;
  if (mprotect(map, guard, PROT_NONE) != 0) {
    munmap(map, map_size);
    return NULL;
  }
  otpc__xstack_t *x = otpc__calloc(1, sizeof *x);
  if (x == NULL) {
    munmap(map, map_size);
    return NULL;
  }
  x->map = map;
  x->map_size = map_size;
  x->base = map + guard;
  x->size = size;
#ifdef OTPC_VALGRIND
  x->valgrind_id = VALGRIND_STACK_REGISTER(x->base, x->base + size);
#endif
  return x;
}

static void xstack_destroy(otpc__sched_t *s, otpc__xstack_t *x) {
  if (x->all_prev) x->all_prev->all_next = x->all_next;
  else s->all_stacks = x->all_next;
  if (x->all_next) x->all_next->all_prev = x->all_prev;
  s->nstacks--;
#ifdef OTPC_VALGRIND
  VALGRIND_STACK_DEREGISTER(x->valgrind_id);
#endif
#ifdef OTPC_TSAN
  if (x->tsan_fiber) __tsan_destroy_fiber(x->tsan_fiber);
#endif
  munmap(x->map, x->map_size);
  otpc__free(x);
}

/* The node cannot go on: say why before stopping. */
static _Noreturn void fatal(const char *what) {
  fprintf(stderr, "otpc: fatal: %s\n", what);
  abort();
}

/* A clean stack from the pool or a new mapping; NULL if none can be
 * mapped (out of memory or out of mappings). */
static otpc__xstack_t *xstack_take(otpc__sched_t *s) {
  otpc__xstack_t *x = s->free_stacks;
  if (x != NULL) {
    s->free_stacks = x->next;
  } else {
    x = xstack_new();
    if (x == NULL) return NULL;
    s->nstacks++;
    x->all_prev = NULL;
    x->all_next = s->all_stacks;
    if (s->all_stacks) s->all_stacks->all_prev = x;
    s->all_stacks = x;
  }
  x->next = NULL;
  x->occupant = NULL;
  x->waiters = 0;
#ifdef OTPC_ASAN
  /* A new context: the shadow still marks the frames of whoever ran here
   * last, which would look like overflows to the new code. */
  __asan_unpoison_memory_region(x->base, x->size);
#endif
#ifdef OTPC_TSAN
  /* A new context on this stack: a new fiber, its old shadow stack gone. */
  if (x->tsan_fiber) __tsan_destroy_fiber(x->tsan_fiber);
  x->tsan_fiber = __tsan_create_fiber(0);
#endif
  return x;
}

otpc__xstack_t *otpc__xstack_try(otpc__sched_t *s) { return xstack_take(s); }

void otpc__xstack_renew(otpc__xstack_t *x) {
#ifdef OTPC_ASAN
  __asan_unpoison_memory_region(x->base, x->size); /* as in xstack_take */
#endif
#ifdef OTPC_TSAN
  if (x->tsan_fiber) __tsan_destroy_fiber(x->tsan_fiber);
  x->tsan_fiber = __tsan_create_fiber(0);
#endif
  (void)x;
}

otpc__xstack_t *otpc__xstack_get(otpc__sched_t *s) {
  otpc__xstack_t *x = xstack_take(s);
  /* A scheduler loop must have a stack to run on. */
  if (x == NULL) fatal("cannot map a stack for a scheduler loop");
  return x;
}

/* ------------------------------------------------------------------------
 * Eviction: processes share stacks by copying their frames out and in
 * ------------------------------------------------------------------------ */

static void park_unlink(otpc__sched_t *s, otpc__proc_ext_t *x) {
  if (!x->parked) return;
  if (x->park_prev) x->park_prev->ext->park_next = x->park_next;
  else s->parked_first = x->park_next;
  if (x->park_next) x->park_next->ext->park_prev = x->park_prev;
  else s->parked_last = x->park_prev;
  x->park_prev = x->park_next = NULL;
  x->parked = false;
}

void otpc__stack_park(otpc__sched_t *s, otpc__proc_t *p) {
  otpc__proc_ext_t *x = otpc__proc_ext(p);
  if (x == NULL || x->parked) return; /* no memory: simply not evictable */
  x->park_prev = s->parked_last;
  x->park_next = NULL;
  if (s->parked_last) s->parked_last->ext->park_next = p;
  else s->parked_first = p;
  s->parked_last = p;
  x->parked = true;
}

/* Copies q's frames (its saved stack pointer to the top) to the heap and
 * leaves its stack free for another occupant. false without memory. */
static bool evict(otpc__sched_t *s, otpc__proc_t *q) {
  otpc__xstack_t *st = q->stack;
  uint8_t *sp = q->ctx, *top = st->base + st->size;
  size_t len = (size_t)(top - sp);
  void *copy = otpc__malloc(len);
  if (copy == NULL) return false;
#ifdef OTPC_ASAN
  /* Its redzones would look like reads of poisoned memory. */
  __asan_unpoison_memory_region(sp, len);
#endif
  memcpy(copy, sp, len);
  park_unlink(s, q->ext);
  q->ext->saved = copy;
  q->ext->saved_len = len;
#ifdef OTPC_TSAN
  q->ext->tsan_fiber = st->tsan_fiber; /* the fiber goes with the frames */
  st->tsan_fiber = NULL;
#endif
  st->occupant = NULL;
  st->waiters++;
  return true;
}

otpc__xstack_t *otpc__xstack_for_proc(otpc__sched_t *s, otpc__proc_t *p) {
  otpc__xstack_t *x = NULL;
  if (s->free_stacks == NULL && s->nstacks >= STACK_CAP) {
    for (otpc__proc_t *q = s->parked_first; q != NULL; q = q->ext->park_next) {
      otpc__xstack_t *st = q->stack;
      if (evict(s, q)) {
        x = st;
        break;
      }
    }
  }
  if (x == NULL) {
    x = xstack_take(s);
    if (x == NULL) return NULL; /* the process fails with system_limit */
  } else {
#ifdef OTPC_ASAN
    __asan_unpoison_memory_region(x->base, x->size); /* as in xstack_take */
#endif
#ifdef OTPC_TSAN
    x->tsan_fiber = __tsan_create_fiber(0);
#endif
  }
  x->occupant = p;
  return x;
}

void otpc__stack_enter(otpc__sched_t *s, otpc__proc_t *p) {
  otpc__xstack_t *st = p->stack;
  otpc__proc_ext_t *x = p->ext;
  if (x != NULL) park_unlink(s, x);
  if (x == NULL || x->saved == NULL) {
    st->occupant = p;
    return;
  }
  if (st->occupant != NULL && st->occupant != p && !evict(s, st->occupant))
    fatal("no memory to move a process's stack aside");
#ifdef OTPC_ASAN
  __asan_unpoison_memory_region(p->ctx, x->saved_len);
#endif
  memcpy(p->ctx, x->saved, x->saved_len);
  otpc__free(x->saved);
  x->saved = NULL;
  x->saved_len = 0;
#ifdef OTPC_TSAN
  if (st->tsan_fiber) __tsan_destroy_fiber(st->tsan_fiber);
  st->tsan_fiber = x->tsan_fiber;
  x->tsan_fiber = NULL;
#endif
  st->waiters--;
  st->occupant = p;
}

void otpc__stack_release(otpc__sched_t *s, otpc__proc_t *p) {
  otpc__xstack_t *st = p->stack;
  if (st == NULL) return;
  p->stack = NULL;
  otpc__proc_ext_t *x = p->ext;
  if (x != NULL) park_unlink(s, x);
  if (x != NULL && x->saved != NULL) {
    otpc__free(x->saved);
    x->saved = NULL;
#ifdef OTPC_TSAN
    if (x->tsan_fiber) __tsan_destroy_fiber(x->tsan_fiber);
    x->tsan_fiber = NULL;
#endif
    st->waiters--;
  } else if (st->occupant == p) {
    st->occupant = NULL;
  }
  if (st->occupant == NULL && st->waiters == 0) otpc__xstack_put(s, st);
}

void otpc__xstack_put(otpc__sched_t *s, otpc__xstack_t *x) {
  unsigned pooled = 0;
  for (otpc__xstack_t *y = s->free_stacks; y && pooled < POOL_KEEP; y = y->next)
    pooled++;
  if (pooled >= POOL_KEEP) {
    xstack_destroy(s, x);
    return;
  }
  x->next = s->free_stacks;
  s->free_stacks = x;
}

void otpc__xstack_free_all(otpc__sched_t *s) {
  while (s->all_stacks != NULL) xstack_destroy(s, s->all_stacks);
  s->free_stacks = NULL;
}

void otpc__stack_thread_init(void) {
  pthread_attr_t attr;
  void *addr = NULL;
  size_t size = 0;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    pthread_attr_getstack(&attr, &addr, &size);
    pthread_attr_destroy(&attr);
  }
  native_bottom = addr;
  native_size = size;
#ifdef OTPC_TSAN
  native_fiber = __tsan_get_current_fiber();
#endif
}

void otpc__switch(otpc__ctx_t *from, otpc__ctx_t to, otpc__xstack_t *x) {
#ifdef OTPC_TSAN
  __tsan_switch_to_fiber(x ? x->tsan_fiber : native_fiber, 0);
#endif
#ifdef OTPC_ASAN
  void *fake = NULL;
  /* A NULL `from` means the current stack is abandoned for good. */
  __sanitizer_start_switch_fiber(from ? &fake : NULL,
                                 x ? (const void *)x->base : native_bottom,
                                 x ? x->size : native_size);
#endif
  otpc__ctx_t dummy;
  otpc__ctx_switch(from ? from : &dummy, to);
#ifdef OTPC_ASAN
  __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
}

/* The call onto another stack (sched.c, a call's server run by its
 * caller), told to the sanitizers as two switches: there, and back when
 * fn returns (otpc__call_leave, its last call) or when its frames switch
 * to *from (otpc__switch). */
void otpc__call_on(otpc__ctx_t *from, otpc__xstack_t *x, otpc__xstack_t *back,
                   void (*fn)(void *), void *arg) {
#ifdef OTPC_TSAN
  __tsan_switch_to_fiber(x->tsan_fiber, 0);
#endif
#ifdef OTPC_ASAN
  void *fake = NULL;
  __sanitizer_start_switch_fiber(&fake, x->base, x->size);
#endif
  otpc__ctx_call(arg, fn, x->base + x->size, from);
#ifdef OTPC_ASAN
  __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
#ifdef OTPC_TSAN
  __tsan_switch_to_fiber(back->tsan_fiber, 0);
#endif
  (void)back;
}

void otpc__call_leave(otpc__xstack_t *back) {
#ifdef OTPC_ASAN
  __sanitizer_start_switch_fiber(NULL, back->base, back->size);
#endif
  (void)back;
}

/* Called first thing on a fresh context, to finish the switch into it. */
void otpc__switch_arrived(void) {
#ifdef OTPC_ASAN
  __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
}
