/*
 * buf.c: immutable, reference-counted byte buffers, the storage of a
 * message. The header and the bytes are one allocation. The count is
 * atomic: a buffer may be shared between schedulers. The bytes must not
 * change once the buffer has been shared (a second reference exists).
 *
 * Small buffers (most messages: a tuple of a few atoms and integers) come
 * from pools of fixed-size blocks instead of malloc. They are made on one
 * thread and freed on another at the rate messages flow, which costs
 * malloc hundreds of instructions a pair once many are alive at once
 * (skynet: 30% of all its instructions went to malloc and free). Each
 * thread keeps a magazine of free blocks per size class and trades whole
 * batches with a shared depot under a lock; a block freed on another
 * thread simply joins that thread's magazine. A thread's magazines go back
 * to the depot when it exits. The depot keeps its memory (2 MiB chunks)
 * for reuse until the OS process ends, as the runtime's pools keep theirs
 * while a node runs. Under AddressSanitizer, and whenever a test
 * allocator is set (otpc_set_allocator), every buffer comes from the
 * allocation hook as before.
 *
 * Big buffers (256 KiB to 16 MiB: distribution messages with binaries in
 * them) are malloc's, but a few freed ones are kept for the next big
 * buffer, up to 64 MiB in all. glibc gives such blocks back to the kernel
 * when they are freed (munmap, or a trim of the heap top), so every new
 * one was fresh memory: a page fault per 4 KiB, which held a node's
 * receiving of 1 MiB messages to under half of what it reaches from
 * memory already touched (docs/distribution.md). Erlang's allocators keep
 * their carriers in a cache for the same reason.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>

#include "term_int.h"

struct otpc_buf {
  _Atomic uint32_t refs; /* a reference per holder: far below 2^32 */
  uint16_t cls;          /* size class + 1 if from a pool, BIG_CLS if a
                            big block of malloc's (may be kept), else 0 */
  uint16_t skip;         /* the bytes start at data + skip (a buffer
                            narrowed to a term inside it, otpc__buf_take_sub) */
  size_t size;           /* from data + skip */
  _Alignas(16) uint8_t data[];
};

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BUF_PLAIN_MALLOC 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define BUF_PLAIN_MALLOC 1
#endif

#ifndef BUF_PLAIN_MALLOC
/* Block sizes, header included: data up to 16, 48 and 112 bytes
 * (buf_alloc picks among the three). */
#define NCLS 3
static const size_t cls_size[NCLS] = {32, 64, 128};
#define BATCH 64
#define CHUNK ((size_t)2 << 20)

typedef struct fblock {
  struct fblock *next;       /* in a magazine or batch */
  struct fblock *next_batch; /* first block of a batch in the depot: */
  unsigned n;                /* the next batch, and its length */
} fblock_t;

typedef struct depot {
  pthread_mutex_t lock;
  fblock_t *batches; /* batches of up to BATCH blocks */
  char *carve, *carve_end;
} depot_t;

static depot_t depots[NCLS] = {{PTHREAD_MUTEX_INITIALIZER, NULL, NULL, NULL},
                               {PTHREAD_MUTEX_INITIALIZER, NULL, NULL, NULL},
                               {PTHREAD_MUTEX_INITIALIZER, NULL, NULL, NULL}};

/* A thread's magazines, in a list of all threads' for the count. */
typedef struct mags {
  fblock_t *head[NCLS];
  unsigned n[NCLS];
  _Atomic int64_t out; /* pool buffers made minus freed on this thread */
  bool registered;
  struct mags *prev, *next;
} mags_t;

static __thread mags_t mine;
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static mags_t *threads;       /* under reg_lock */
static int64_t out_of_exited; /* under reg_lock */
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

static void give_back(depot_t *d, fblock_t *first, unsigned n) {
  first->n = n;
  pthread_mutex_lock(&d->lock);
  first->next_batch = d->batches;
  d->batches = first;
  pthread_mutex_unlock(&d->lock);
}

/* A thread ends: its free blocks go back, its count joins the exited. */
static void thread_exit(void *arg) {
  mags_t *m = arg;
  for (int c = 0; c < NCLS; c++) {
    if (m->head[c] != NULL) give_back(&depots[c], m->head[c], m->n[c]);
    m->head[c] = NULL;
    m->n[c] = 0;
  }
  pthread_mutex_lock(&reg_lock);
  if (m->prev)
    m->prev->next = m->next;
  else
    threads = m->next;
  if (m->next) m->next->prev = m->prev;
  out_of_exited += atomic_load_explicit(&m->out, memory_order_relaxed);
  atomic_store_explicit(&m->out, 0, memory_order_relaxed);
  m->registered = false;
  pthread_mutex_unlock(&reg_lock);
}

static void make_key(void) {
  pthread_key_create(&exit_key, thread_exit);
}

static mags_t *my_mags(void) {
  mags_t *m = &mine;
  if (OTPC_UNLIKELY(!m->registered)) {
    pthread_once(&exit_once, make_key);
    pthread_mutex_lock(&reg_lock);
    m->registered = true;
    m->prev = NULL;
    m->next = threads;
    if (threads) threads->prev = m;
    threads = m;
    pthread_mutex_unlock(&reg_lock);
    pthread_setspecific(exit_key, m); /* thread_exit runs when it ends */
  }
  return m;
}

/* A chunk aligned to its size, so that the kernel may back it with one
 * huge page (one fault instead of 512), as the runtime's pools do. */
static char *chunk_map(void) {
  char *m = mmap(NULL, 2 * CHUNK, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return NULL;
  char *a = (char *)(((uintptr_t)m + CHUNK - 1) & ~(uintptr_t)(CHUNK - 1));
  if (a > m) munmap(m, (size_t)(a - m));
  size_t tail = (size_t)(m + 2 * CHUNK - (a + CHUNK));
  if (tail > 0) munmap(a + CHUNK, tail);
#ifdef MADV_HUGEPAGE
  madvise(a, CHUNK, MADV_HUGEPAGE);
#endif
  return a;
}

/* A batch from the depot, or BATCH new blocks; NULL without memory. */
__attribute__((noinline)) static fblock_t *take(int c, unsigned *n) {
  depot_t *d = &depots[c];
  fblock_t *list = NULL;
  *n = 0;
  pthread_mutex_lock(&d->lock);
  if (d->batches != NULL) {
    list = d->batches;
    d->batches = list->next_batch;
    *n = list->n;
  } else {
    for (unsigned i = 0; i < BATCH; i++) {
      if (d->carve == NULL || (size_t)(d->carve_end - d->carve) < cls_size[c]) {
        char *m = chunk_map();
        if (m == NULL) break;
        d->carve = m;
        d->carve_end = m + CHUNK;
      }
      fblock_t *b = (fblock_t *)d->carve;
      d->carve += cls_size[c];
      b->next = list;
      list = b;
      (*n)++;
    }
  }
  pthread_mutex_unlock(&d->lock);
  return list;
}

static void count_out(mags_t *m, int64_t d) {
  atomic_store_explicit(&m->out,
                        atomic_load_explicit(&m->out, memory_order_relaxed) + d,
                        memory_order_relaxed);
}

/* The common cases are small enough to need no saved registers: a block
 * from the magazine, a block back into it (a buffer is made and freed per
 * message, four times per gen_server call). The rest is out of line. */
static inline otpc_buf_t *pool_pop(mags_t *m, int c) {
  fblock_t *b = m->head[c];
  m->head[c] = b->next;
  m->n[c]--;
  count_out(m, 1);
  otpc_buf_t *buf = (otpc_buf_t *)b;
  buf->cls = (uint16_t)(c + 1);
  return buf;
}

/* An empty magazine (or a thread's first buffer): a batch first. */
__attribute__((noinline)) static otpc_buf_t *pool_alloc_slow(int c) {
  mags_t *m = my_mags();
  if (m->n[c] == 0) {
    m->head[c] = take(c, &m->n[c]);
    if (m->head[c] == NULL) return NULL;
  }
  return pool_pop(m, c);
}

static inline otpc_buf_t *pool_alloc(int c) {
  mags_t *m = &mine;
  /* Blocks in it: the thread registered when it took them. */
  if (OTPC_LIKELY(m->n[c] > 0)) return pool_pop(m, c);
  return pool_alloc_slow(c);
}

/* A full magazine (or a thread's first free): a batch back first. It
 * pushes the block itself, as pool_free does: with a call in the middle
 * of pool_free's path, that path would keep its values in saved
 * registers (20 instructions more a gen_server call, measured). */
__attribute__((noinline)) static void pool_free_slow(otpc_buf_t *buf) {
  int c = (int)buf->cls - 1;
  mags_t *m = my_mags();
  if (m->n[c] >= 2 * BATCH) { /* hand a full batch back */
    fblock_t *first = m->head[c], *last = first;
    for (unsigned i = 1; i < BATCH; i++) last = last->next;
    m->head[c] = last->next;
    m->n[c] -= BATCH;
    last->next = NULL;
    give_back(&depots[c], first, BATCH);
  }
  fblock_t *b = (fblock_t *)buf;
  b->next = m->head[c];
  m->head[c] = b;
  m->n[c]++;
  count_out(m, -1);
}

static inline void pool_free(otpc_buf_t *buf) {
  int c = (int)buf->cls - 1;
  mags_t *m = &mine;
  if (OTPC_UNLIKELY(!m->registered || m->n[c] >= 2 * BATCH)) {
    pool_free_slow(buf);
    return;
  }
  fblock_t *b = (fblock_t *)buf;
  b->next = m->head[c];
  m->head[c] = b;
  m->n[c]++;
  count_out(m, -1);
}

/* Pool buffers alive now, over all threads (exact when none is making
 * or freeing buffers; tests check that it comes back). */
int64_t otpc__buf_pool_in_use(void) {
  pthread_mutex_lock(&reg_lock);
  int64_t n = out_of_exited;
  for (mags_t *m = threads; m != NULL; m = m->next)
    n += atomic_load_explicit(&m->out, memory_order_relaxed);
  pthread_mutex_unlock(&reg_lock);
  return n;
}
#else
int64_t otpc__buf_pool_in_use(void) {
  return 0;
}
#endif

/* ---- big blocks kept for reuse ------------------------------------------- */

#define BIG_CLS UINT16_MAX
#ifndef BUF_PLAIN_MALLOC
#define BIG_MIN ((size_t)256 << 10)  /* smaller ones malloc keeps anyway */
#define BIG_MAX ((size_t)16 << 20)   /* bigger ones are rare: not kept */
#define BIG_KEEP 8                   /* blocks kept at most */
#define BIG_KEEP_BYTES ((size_t)64 << 20)

static pthread_mutex_t big_lock = PTHREAD_MUTEX_INITIALIZER;
static otpc_buf_t *big[BIG_KEEP]; /* under big_lock */
static size_t big_n, big_bytes;   /* under big_lock */

/* A kept block with room for `need` bytes and not more than twice that,
 * the smallest such, or NULL. */
static otpc_buf_t *big_take(size_t need) {
  otpc_buf_t *b = NULL;
  size_t best = 0, at = 0;
  pthread_mutex_lock(&big_lock);
  for (size_t i = 0; i < big_n; i++) {
    size_t cap = malloc_usable_size(big[i]);
    if (cap >= need && cap / 2 <= need && (b == NULL || cap < best)) {
      b = big[i];
      best = cap;
      at = i;
    }
  }
  if (b != NULL) {
    big[at] = big[--big_n];
    big_bytes -= best;
  }
  pthread_mutex_unlock(&big_lock);
  return b;
}

/* Keeps b for reuse if there is room: true if kept. */
static bool big_keep(otpc_buf_t *b) {
  size_t cap = malloc_usable_size(b);
  bool kept = false;
  if (cap > BIG_MAX) return false;
  pthread_mutex_lock(&big_lock);
  if (big_n < BIG_KEEP && big_bytes + cap <= BIG_KEEP_BYTES) {
    big[big_n++] = b;
    big_bytes += cap;
    kept = true;
  }
  pthread_mutex_unlock(&big_lock);
  return kept;
}
#endif

static void buf_init(otpc_buf_t *b, size_t size) {
  atomic_init(&b->refs, 1);
  b->skip = 0;
  b->size = size;
}

/* buf_alloc past the pools: a big block kept for reuse, or malloc's. */
__attribute__((noinline)) static otpc_buf_t *buf_alloc_big(size_t size) {
  if (size > SIZE_MAX - sizeof(otpc_buf_t)) return NULL;
  otpc_buf_t *b = NULL;
  bool kept = false;
#ifndef BUF_PLAIN_MALLOC
  /* Only blocks of the default allocator are kept (and sized with
   * malloc_usable_size). */
  if (size >= BIG_MIN && size <= BIG_MAX && otpc__allocator_is_default()) {
    kept = true;
    b = big_take(sizeof *b + size);
  }
#endif
  if (b == NULL) {
    b = otpc__malloc(sizeof *b + size);
    if (b == NULL) return NULL;
    b->cls = kept ? BIG_CLS : 0; /* a kept block is BIG_CLS already */
  }
  buf_init(b, size);
  return b;
}

/* A header with room for size bytes, refs 1 (NULL without memory). */
static otpc_buf_t *buf_alloc(size_t size) {
#ifndef BUF_PLAIN_MALLOC
  size_t need = sizeof(otpc_buf_t) + size;
  if (OTPC_LIKELY(size <= cls_size[NCLS - 1] - sizeof(otpc_buf_t)) &&
      otpc__allocator_is_default()) {
    otpc_buf_t *b =
        pool_alloc(need <= cls_size[0] ? 0 : need <= cls_size[1] ? 1 : 2);
    if (OTPC_LIKELY(b != NULL)) {
      buf_init(b, size);
      return b;
    }
  }
#endif
  return buf_alloc_big(size);
}

static void buf_free(otpc_buf_t *b) {
#ifndef BUF_PLAIN_MALLOC
  if (b->cls == BIG_CLS) {
    if (big_keep(b)) return;
  } else if (b->cls != 0) {
    pool_free(b);
    return;
  }
#endif
  otpc__free(b);
}

otpc_buf_t *otpc_buf_new(const void *data, size_t size) {
  otpc_buf_t *b = buf_alloc(size);
  if (b == NULL) return NULL;
  if (data != NULL && size != 0) otpc__copy_small(b->data, data, size);
  return b;
}

otpc_buf_t *otpc_buf_ref(otpc_buf_t *buf) {
  atomic_fetch_add_explicit(&buf->refs, 1, memory_order_relaxed);
  return buf;
}

void otpc_buf_unref(otpc_buf_t *buf) {
  if (buf == NULL) return;
  /* The only holder (most messages are freed by their one receiver) can
   * free at once: nobody else holds a reference to take another with.
   * The acquire orders the other holders' reads before the free. Else:
   * release so our reads happen before the free; acquire for the last. */
  if (atomic_load_explicit(&buf->refs, memory_order_acquire) == 1 ||
      atomic_fetch_sub_explicit(&buf->refs, 1, memory_order_acq_rel) == 1)
    buf_free(buf);
}

const uint8_t *otpc_buf_data(const otpc_buf_t *buf) {
  return buf->data + buf->skip;
}
uint8_t *otpc_buf_mutable_data(otpc_buf_t *buf) {
  return buf->data + buf->skip;
}
size_t otpc_buf_size(const otpc_buf_t *buf) {
  return buf->size;
}

otpc_term_t otpc_buf_term(const otpc_buf_t *buf) {
  if (buf == NULL || buf->size < 2 || buf->data[buf->skip] != ETF_VERSION)
    return term_none();
  return term_at(buf->data + buf->skip + 1);
}

otpc_buf_t *otpc__buf_take_sub(otpc_buf_t *buf, otpc_term_t sub) {
  const uint8_t *base = buf->data + buf->skip;
  size_t n =
      sub.kind == TERM_ENCODED && sub.p != NULL ? otpc_term_size(sub) : 0;
  /* The only holder may change the bytes: the one before the term
   * becomes its version byte (a byte of the term around it). */
  if (n > 0 && sub.p > base && sub.p + n <= base + buf->size &&
      (size_t)(sub.p - 1 - buf->data) <= UINT16_MAX &&
      atomic_load_explicit(&buf->refs, memory_order_acquire) == 1) {
    uint8_t *v = buf->data + (sub.p - 1 - buf->data);
    *v = ETF_VERSION;
    buf->skip = (uint16_t)(v - buf->data);
    buf->size = n + 1;
    return buf;
  }
  otpc_builder_t b;
  otpc_builder_init(&b);
  otpc_build_term(&b, sub);
  otpc_buf_t *copy = otpc_builder_finish(&b, NULL);
  otpc_buf_unref(buf);
  return copy;
}

/* ---- for the builder and the compressor ---------------------------------- */

otpc_buf_t *otpc__buf_of_data(uint8_t *data) {
  return (otpc_buf_t *)(data - offsetof(otpc_buf_t, data));
}

/* Room for `size` bytes; the contents (up to the smaller size) kept. */
otpc_buf_t *otpc__buf_resize(otpc_buf_t *buf, size_t size) {
  if (size > SIZE_MAX - sizeof(otpc_buf_t)) return NULL;
  if (buf == NULL) return buf_alloc(size);
#ifndef BUF_PLAIN_MALLOC
  if (buf->cls != 0 && buf->cls != BIG_CLS) { /* a pool block: grow out of
                                                 it into malloc */
    if (sizeof *buf + size <= cls_size[buf->cls - 1]) {
      buf->size = size;
      return buf;
    }
    otpc_buf_t *b = otpc__malloc(sizeof *b + size);
    if (b == NULL) return NULL;
    memcpy(b, buf, sizeof *b + buf->size);
    b->cls = 0;
    b->size = size;
    pool_free(buf);
    return b;
  }
#endif
  otpc_buf_t *b = otpc__realloc(buf, sizeof *b + size);
  if (b == NULL) return NULL;
  b->size = size;
  return b;
}

otpc_buf_t *otpc__buf_shrink(otpc_buf_t *buf, size_t size) {
  size_t waste = buf->size - size;
  buf->size = size;
  /* Shrinking moves or remaps the block: worth it only for real waste. */
  if ((buf->cls == 0 || buf->cls == BIG_CLS) && waste > 65536 &&
      waste > size / 2) {
    otpc_buf_t *b = otpc__realloc(buf, sizeof *b + size);
    if (b != NULL) buf = b; /* keeping the larger block is harmless */
  }
  return buf;
}
