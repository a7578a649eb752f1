/*
 * term_int.h: what the files of the term layer share and nobody else sees:
 * the ETF tags, big-endian readers, the growable string used by the printer
 * and the parser, and the internal entry points between files.
 *
 * Invariant for everything here: a view (otpc_term_t of kind TERM_ENCODED)
 * points into bytes that otpc_term_validate() accepted, so walking it needs
 * no bounds checks.
 */
#ifndef OTPC_TERM_INT_H
#define OTPC_TERM_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "../base/base_int.h"
#include "otpc/term.h"

/* ETF tags (erts "External Term Format"). */
enum {
  ETF_VERSION = 131,
  ETF_COMPRESSED = 80,
  ETF_NEW_FLOAT = 70,
  ETF_BIT_BINARY = 77,
  ETF_ATOM_CACHE_REF = 82,
  ETF_NEW_PID = 88,
  ETF_NEW_PORT = 89,
  ETF_NEWER_REFERENCE = 90,
  ETF_SMALL_INTEGER = 97,
  ETF_INTEGER = 98,
  ETF_FLOAT = 99, /* old: 31 bytes of "%.20e" text */
  ETF_ATOM = 100, /* Latin-1, 2-byte length */
  ETF_REFERENCE = 101,
  ETF_PORT = 102,
  ETF_PID = 103,
  ETF_SMALL_TUPLE = 104,
  ETF_LARGE_TUPLE = 105,
  ETF_NIL = 106,
  ETF_STRING = 107,
  ETF_LIST = 108,
  ETF_BINARY = 109,
  ETF_SMALL_BIG = 110,
  ETF_LARGE_BIG = 111,
  ETF_NEW_FUN = 112,
  ETF_EXPORT = 113,
  ETF_NEW_REFERENCE = 114,
  ETF_SMALL_ATOM = 115, /* Latin-1, 1-byte length */
  ETF_MAP = 116,
  ETF_FUN = 117, /* old, removed in OTP 23; rejected */
  ETF_ATOM_UTF8 = 118,
  ETF_SMALL_ATOM_UTF8 = 119,
  ETF_V4_PORT = 120,
  ETF_LOCAL = 121 /* only inside a node; rejected */
};

/* View kinds (otpc_term_t.kind). */
enum { TERM_NONE = 0, TERM_ENCODED = 1, TERM_CHAR = 2 };

static inline otpc_term_t term_at(const uint8_t *p) {
  otpc_term_t t = {p, 0, TERM_ENCODED};
  return t;
}
static inline otpc_term_t term_char(uint32_t c) {
  otpc_term_t t = {NULL, c, TERM_CHAR};
  return t;
}
static inline otpc_term_t term_none(void) {
  otpc_term_t t = {NULL, 0, TERM_NONE};
  return t;
}

static inline uint16_t get_be16(const uint8_t *p) {
  return (uint16_t)((p[0] << 8) | p[1]);
}
static inline uint32_t get_be32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
         ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t get_be64(const uint8_t *p) {
  return ((uint64_t)get_be32(p) << 32) | get_be32(p + 4);
}
static inline void put_be16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static inline void put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}
static inline void put_be64(uint8_t *p, uint64_t v) {
  put_be32(p, (uint32_t)(v >> 32));
  put_be32(p + 4, (uint32_t)v);
}

/* Skips one checked term: returns the byte after it. (view.c) */
const uint8_t *otpc__term_skip(const uint8_t *p);

/* Distribution: checks ETF that may hold ATOM_CACHE_REF entries, each an
 * index below ncache into cache (the atoms named by one message's
 * distribution header); otherwise as otpc_term_validate() with default
 * limits. *nrefs (may be NULL) gets how many refs were seen. (decode.c) */
long otpc__term_validate_cached(const void *data, size_t len,
                                const otpc_atom_t *cache, uint32_t ncache,
                                size_t *nrefs, otpc_decode_error_t *err);
/* A new buffer: the version byte, then the term at data (len bytes,
 * checked by otpc__term_validate_cached with the same cache) with every
 * cache ref replaced by its atom. NULL and *err when out of memory. */
otpc_buf_t *otpc__term_uncache(const uint8_t *data, size_t len,
                               const otpc_atom_t *cache, int *err);

/* Atom text of a checked atom term, however encoded. latin1 is set for the
 * Latin-1 encodings (ATOM_EXT, SMALL_ATOM_EXT), whose bytes are code
 * points. Returns false if t is no atom. (view.c) */
bool otpc__term_atom_raw(otpc_term_t t, const uint8_t **text, size_t *len,
                         bool *latin1);

/* Integer of a checked term as sign and little-endian magnitude without
 * high zeros. scratch gets small values. (view.c) */
bool otpc__term_int_parts(otpc_term_t t, bool *neg, const uint8_t **mag,
                          size_t *n, uint8_t scratch[8]);

/* Reads the 31 text bytes of an old FLOAT_EXT, strictly and in the C
 * locale. (view.c) */
int otpc__float_text(const uint8_t *text31, double *out);

/* Whether the keys of a checked map are distinct under =:= (1 and 1.0
 * differ; Latin-1 and UTF-8 forms of an atom do not): 0, or OTPC_EBADARG
 * for a duplicate; never fails otherwise. Sorted maps cost n - 1 key
 * comparisons, others a hash of each key, O(n log n) comparisons at
 * worst; no recursion. May allocate past 64 keys out of order, and
 * without memory compares every pair instead. (compare.c) */
int otpc__map_check_keys(otpc_term_t map);
/* The same for the n keys of a map given by their positions (the array
 * may be reordered). Allocates only for a hash table past 128 keys that
 * are not in order, and does without it. (compare.c) */
int otpc__map_check_key_array(const uint8_t **keys, size_t n);
/* Two checked map keys in Erlang's map-key order (term order, but every
 * integer before every float): < 0, 0, > 0. (compare.c) */
int otpc__term_cmp_mapkey(const uint8_t *a, const uint8_t *b);

/* Intern text that is known to be valid (UTF-8, or Latin-1 when latin1). */
int otpc__atom_intern(const uint8_t *text, size_t len, bool latin1,
                      otpc_atom_t *out);

/* Validate UTF-8; returns the number of code points or -1. (atom.c) */
long otpc__utf8_count(const uint8_t *s, size_t len);

/* Buffers grown in place by the builder (buf.c). The data pointer a
 * builder holds is otpc_buf_data() of a private, unshared buffer. */
otpc_buf_t *otpc__buf_of_data(uint8_t *data);
otpc_buf_t *otpc__buf_resize(otpc_buf_t *buf, size_t size);
otpc_buf_t *otpc__buf_shrink(otpc_buf_t *buf, size_t size);
/* A buffer holding the term sub of buf (a term inside it), taking over
 * the caller's reference to buf: buf itself, narrowed to sub, when the
 * caller holds its only reference; else a copy, and buf is released.
 * NULL when out of memory (buf released). (buf.c) */
otpc_buf_t *otpc__buf_take_sub(otpc_buf_t *buf, otpc_term_t sub);
/* Direct writers, for the hot messages whose shape is fixed (gen_server's
 * calls and replies): size the parts, take a buffer of exactly that size,
 * write them one after the other. *_bytes is 0 for what cannot be written
 * (an atom that does not exist, a ref of a bad length); put_* writes what
 * *_bytes sized and returns the byte after it. (build.c) */
size_t otpc__atom_bytes(otpc_atom_t a);
uint8_t *otpc__put_atom(uint8_t *p, otpc_atom_t a);
/* The same for an atom's text already looked up (otpc_atom_name). */
size_t otpc__atom_text_bytes(size_t len);
uint8_t *otpc__put_atom_text(uint8_t *p, const char *name, size_t len);
size_t otpc__pid_bytes(const otpc_pid_t *pid);
uint8_t *otpc__put_pid(uint8_t *p, const otpc_pid_t *pid);
size_t otpc__ref_bytes(const otpc_ref_t *ref);
uint8_t *otpc__put_ref(uint8_t *p, const otpc_ref_t *ref);
/* Small buffers come from pools (buf.c): how many are alive now. */
int64_t otpc__buf_pool_in_use(void);

/* Local node and its creation, for printing and parsing (print.c). */
otpc_atom_t otpc__local_node(void);
uint32_t otpc__local_creation(void);
/* The local node's name as ETF writes it (SMALL_ATOM_UTF8, its length,
 * its text), for writing and recognising this node's pids and refs by
 * copying and comparing bytes. NULL while there is none (a name longer
 * than 255 bytes, or too many names in a row). A record never changes. */
typedef struct otpc__node_ext {
  otpc_atom_t atom;
  uint32_t n;          /* bytes used: 2 + the name's length */
  uint8_t bytes[2 + 255];
} otpc__node_ext_t;
const otpc__node_ext_t *otpc__local_node_ext(void);

/* ------------------------------------------------------------------------
 * Growable byte string (printer, parser, errors)
 * ------------------------------------------------------------------------ */

typedef struct otpc__sbuf {
  char *data;
  size_t len;
  size_t cap;
  int err; /* sticky OTPC_ENOMEM */
} otpc__sbuf_t;

void otpc__sbuf_init(otpc__sbuf_t *s);
void otpc__sbuf_free(otpc__sbuf_t *s);
int otpc__sbuf_reserve(otpc__sbuf_t *s, size_t more);
void otpc__sbuf_put(otpc__sbuf_t *s, const void *data, size_t len);
void otpc__sbuf_putc(otpc__sbuf_t *s, char c);
void otpc__sbuf_puts(otpc__sbuf_t *s, const char *str);
void otpc__sbuf_printf(otpc__sbuf_t *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------------------
 * Big integers as little-endian byte magnitudes (bigint.c)
 * ------------------------------------------------------------------------ */

/* Appends the decimal digits of the magnitude to s. */
void otpc__big_to_decimal(const uint8_t *mag, size_t n, otpc__sbuf_t *s);
/* mag = mag * mul + add, in place; n is the used length, cap the room.
 * Returns the new length or -1 if cap is too small. */
long otpc__big_muladd(uint8_t *mag, size_t n, size_t cap, uint32_t mul,
                      uint32_t add);

#endif /* OTPC_TERM_INT_H */
