/*
 * base_int.h: internal helpers every layer uses: allocation through the
 * hook in base.h, and small utilities.
 */
#ifndef OTPC_BASE_INT_H
#define OTPC_BASE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "otpc/base.h"

void *otpc__malloc(size_t size);
void *otpc__calloc(size_t n, size_t size);
void *otpc__realloc(void *ptr, size_t size);
void otpc__free(void *ptr);
/* Whether the hook is libc's own (no test allocator is set): private
 * pools may then serve small blocks without going through it. */
extern bool otpc__alloc_default;
static inline bool otpc__allocator_is_default(void) {
  return otpc__alloc_default;
}

#define OTPC_UNUSED(x) ((void)(x))
#define OTPC_LIKELY(x) __builtin_expect(!!(x), 1)
#define OTPC_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* memcpy for the few bytes a message's parts take (a node's name, a
 * call's tag, a small term): up to 64 bytes as two overlapping moves of
 * the size that covers them, inline, instead of a call into the C
 * library's memcpy for each (a gen_server call makes nine such copies).
 * Longer ones are memcpy's. The regions must not overlap, as for memcpy. */
static inline void otpc__copy_small(void *dst, const void *src, size_t n) {
  unsigned char *d = dst;
  const unsigned char *s = src;
  if (n > 64) {
    memcpy(d, s, n);
  } else if (n > 32) {
    __builtin_memcpy(d, s, 32);
    __builtin_memcpy(d + n - 32, s + n - 32, 32);
  } else if (n >= 16) {
    __builtin_memcpy(d, s, 16);
    __builtin_memcpy(d + n - 16, s + n - 16, 16);
  } else if (n >= 8) {
    __builtin_memcpy(d, s, 8);
    __builtin_memcpy(d + n - 8, s + n - 8, 8);
  } else if (n >= 4) {
    __builtin_memcpy(d, s, 4);
    __builtin_memcpy(d + n - 4, s + n - 4, 4);
  } else if (n > 0) {
    d[0] = s[0];
    d[n / 2] = s[n / 2];
    d[n - 1] = s[n - 1];
  }
}

#endif /* OTPC_BASE_INT_H */
