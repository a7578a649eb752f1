/*
 * buf.c: immutable, reference-counted byte buffers, the storage of a
 * message. The header and the bytes are one allocation. The count is
 * atomic: a buffer may be shared between schedulers. The bytes must not
 * change once the buffer has been shared (a second reference exists).
 */
#include <stdatomic.h>

#include "term_int.h"

struct otpc_buf {
  atomic_size_t refs;
  size_t size;
  _Alignas(16) uint8_t data[];
};

otpc_buf_t *otpc_buf_new(const void *data, size_t size) {
  if (size > SIZE_MAX - sizeof(otpc_buf_t)) return NULL;
  otpc_buf_t *b = otpc__malloc(sizeof *b + size);
  if (b == NULL) return NULL;
  atomic_init(&b->refs, 1);
  b->size = size;
  if (data != NULL && size != 0) memcpy(b->data, data, size);
  return b;
}

otpc_buf_t *otpc_buf_ref(otpc_buf_t *buf) {
  atomic_fetch_add_explicit(&buf->refs, 1, memory_order_relaxed);
  return buf;
}

void otpc_buf_unref(otpc_buf_t *buf) {
  if (buf == NULL) return;
  /* Release so our reads happen before the free; acquire for the last. */
  if (atomic_fetch_sub_explicit(&buf->refs, 1, memory_order_acq_rel) == 1)
    otpc__free(buf);
}

const uint8_t *otpc_buf_data(const otpc_buf_t *buf) { return buf->data; }
uint8_t *otpc_buf_mutable_data(otpc_buf_t *buf) { return buf->data; }
size_t otpc_buf_size(const otpc_buf_t *buf) { return buf->size; }

otpc_term_t otpc_buf_term(const otpc_buf_t *buf) {
  if (buf == NULL || buf->size < 2 || buf->data[0] != ETF_VERSION)
    return term_none();
  return term_at(buf->data + 1);
}

/* ---- for the builder and the compressor ---------------------------------- */

otpc_buf_t *otpc__buf_of_data(uint8_t *data) {
  return (otpc_buf_t *)(data - offsetof(otpc_buf_t, data));
}

otpc_buf_t *otpc__buf_resize(otpc_buf_t *buf, size_t size) {
  if (size > SIZE_MAX - sizeof(otpc_buf_t)) return NULL;
  otpc_buf_t *b = otpc__realloc(buf, sizeof *b + size);
  if (b == NULL) return NULL;
  if (buf == NULL) atomic_init(&b->refs, 1);
  b->size = size;
  return b;
}

otpc_buf_t *otpc__buf_shrink(otpc_buf_t *buf, size_t size) {
  size_t waste = buf->size - size;
  buf->size = size;
  /* Shrinking moves or remaps the block: worth it only for real waste. */
  if (waste > 65536 && waste > size / 2) {
    otpc_buf_t *b = otpc__realloc(buf, sizeof *b + size);
    if (b != NULL) buf = b; /* keeping the larger block is harmless */
  }
  return buf;
}
