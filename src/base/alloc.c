/*
 * alloc.c: the allocation hook. Every allocation in otpc goes through
 * otpc__malloc and friends so that tests can swap in an allocator that
 * fails on purpose. The hook is set once, before threads start; reading it
 * needs no synchronisation after that.
 */
#include <stdlib.h>
#include <string.h>

#include "base_int.h"

static otpc_allocator_t current = {malloc, realloc, free};
bool otpc__alloc_default = true;

void otpc_set_allocator(const otpc_allocator_t *allocator) {
  if (allocator == NULL) {
    current.malloc = malloc;
    current.realloc = realloc;
    current.free = free;
  } else {
    current = *allocator;
  }
  otpc__alloc_default = current.malloc == malloc && current.free == free;
}

void *otpc__malloc(size_t size) { return current.malloc(size ? size : 1); }

void *otpc__calloc(size_t n, size_t size) {
  if (size != 0 && n > (size_t)-1 / size) return NULL;
  size_t total = n * size;
  void *p = current.malloc(total != 0 ? total : 1);
  if (p != NULL) memset(p, 0, total);
  return p;
}

void *otpc__realloc(void *ptr, size_t size) {
  return current.realloc(ptr, size ? size : 1);
}

void otpc__free(void *ptr) {
  if (ptr != NULL) current.free(ptr);
}
