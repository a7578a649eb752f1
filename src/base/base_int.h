/*
 * base_int.h: internal helpers every layer uses: allocation through the
 * hook in base.h, and small utilities.
 */
#ifndef OTPC_BASE_INT_H
#define OTPC_BASE_INT_H

#include <stdbool.h>
#include <stddef.h>

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

#endif /* OTPC_BASE_INT_H */
