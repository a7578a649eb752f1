/*
 * stack.c: execution stacks and the switch between them.
 *
 * An execution stack is one mapping: a guard page (PROT_NONE) and above it
 * `stack_size` bytes that the kernel backs with memory only where touched.
 * A scheduler keeps returned stacks in a free list for reuse and unmaps
 * what is beyond POOL_KEEP, so the number of mappings stays bounded by
 * what is in use at once, never by the number of processes (see
 * docs/internals/stacks.md).
 *
 * otpc__switch() is the only place that changes stacks. It tells the
 * sanitizers which stack it goes to: ASan needs the bounds to keep its
 * fake frames apart; TSan keeps a shadow call stack per fiber, and a stack
 * gets a fresh fiber whenever a new context is made on it.
 */
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

/* The thread's own stack, for switches back to it (ASan wants bounds). */
static __thread const void *native_bottom;
static __thread size_t native_size;
#ifdef OTPC_TSAN
static __thread void *native_fiber;
#endif

static otpc__xstack_t *xstack_new(void) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t size = (otpc__rt.stack_size + page - 1) & ~(page - 1);
  size_t map_size = size + page;
  uint8_t *map = mmap(NULL, map_size, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
                      -1, 0);
  if (map == MAP_FAILED) return NULL;
  if (mprotect(map, page, PROT_NONE) != 0) {
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
  x->base = map + page;
  x->size = size;
#ifdef OTPC_VALGRIND
  x->valgrind_id = VALGRIND_STACK_REGISTER(x->base, x->base + size);
#endif
  return x;
}

static void xstack_destroy(otpc__xstack_t *x) {
#ifdef OTPC_VALGRIND
  VALGRIND_STACK_DEREGISTER(x->valgrind_id);
#endif
#ifdef OTPC_TSAN
  if (x->tsan_fiber) __tsan_destroy_fiber(x->tsan_fiber);
#endif
  munmap(x->map, x->map_size);
  otpc__free(x);
}

otpc__xstack_t *otpc__xstack_get(otpc__sched_t *s) {
  otpc__xstack_t *x = s->free_stacks;
  if (x != NULL) {
    s->free_stacks = x->next;
  } else {
    x = xstack_new();
    if (x == NULL) abort(); /* no memory for a stack: nothing can run */
    s->nstacks++;
  }
  x->next = NULL;
#ifdef OTPC_TSAN
  /* A new context on this stack: a new fiber, its old shadow stack gone. */
  if (x->tsan_fiber) __tsan_destroy_fiber(x->tsan_fiber);
  x->tsan_fiber = __tsan_create_fiber(0);
#endif
  return x;
}

void otpc__xstack_put(otpc__sched_t *s, otpc__xstack_t *x) {
  unsigned pooled = 0;
  for (otpc__xstack_t *y = s->free_stacks; y && pooled < POOL_KEEP; y = y->next)
    pooled++;
  if (pooled >= POOL_KEEP) {
    xstack_destroy(x);
    s->nstacks--;
    return;
  }
  x->next = s->free_stacks;
  s->free_stacks = x;
}

void otpc__xstack_free_all(otpc__sched_t *s) {
  while (s->free_stacks != NULL) {
    otpc__xstack_t *x = s->free_stacks;
    s->free_stacks = x->next;
    xstack_destroy(x);
  }
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

/* Called first thing on a fresh context, to finish the switch into it. */
void otpc__switch_arrived(void) {
#ifdef OTPC_ASAN
  __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
}
