/*
 * build.c: writing ETF.
 *
 * A builder appends encoded bytes to a growing array: first its own inline
 * `small` area, then a private otpc_buf_t that grows in place, so finishing
 * hands the bytes over without copying them (small terms are copied once
 * into a buffer of their exact size).
 *
 * `pending` counts the terms still owed: 1 at the start; each term written
 * pays one and a container adds what it announces (a tuple its arity, a
 * list its elements plus the tail, a map twice its pairs). Writing when
 * nothing is owed, or finishing while something is, is OTPC_ESTATE.
 *
 * Encodings are those of current OTP's term_to_binary: SMALL_INTEGER_EXT,
 * INTEGER_EXT, then SMALL_BIG_EXT; NEW_FLOAT_EXT; SMALL_ATOM_UTF8_EXT where
 * it fits; STRING_EXT for byte lists; NEW_PID_EXT, NEWER_REFERENCE_EXT;
 * NEW_PORT_EXT or V4_PORT_EXT for ids beyond 32 bits.
 */
#include <math.h>

#include "term_int.h"

void otpc_builder_init(otpc_builder_t *b) {
  b->data = b->small;
  b->cap = sizeof b->small;
  b->small[0] = ETF_VERSION;
  b->len = 1;
  b->pending = 1;
  b->err = 0;
}

static bool on_heap(const otpc_builder_t *b) { return b->data != b->small; }

void otpc_builder_dispose(otpc_builder_t *b) {
  if (on_heap(b)) otpc_buf_unref(otpc__buf_of_data(b->data));
  otpc_builder_init(b);
}

const uint8_t *otpc_builder_data(const otpc_builder_t *b, size_t *len) {
  *len = b->len;
  return b->data;
}

static int set_err(otpc_builder_t *b, int err) {
  if (b->err == 0) b->err = err;
  return b->err;
}

/* room() when the bytes do not fit: grows the array. */
__attribute__((noinline)) static uint8_t *grow(otpc_builder_t *b, size_t n) {
  if (n > SIZE_MAX / 4 - b->len) {
    set_err(b, OTPC_ELENGTH);
    return NULL;
  }
  /* Double for a stream of small writes; one large write (a big binary)
   * gets exactly what it needs, so nothing is shrunk or copied later. */
  size_t cap = b->cap * 2;
  if (cap - b->len < n) cap = b->len + n + 64;
  otpc_buf_t *old = on_heap(b) ? otpc__buf_of_data(b->data) : NULL;
  otpc_buf_t *buf = otpc__buf_resize(old, cap);
  if (buf == NULL) {
    set_err(b, OTPC_ENOMEM);
    return NULL;
  }
  uint8_t *data = otpc_buf_mutable_data(buf);
  if (old == NULL) memcpy(data, b->small, b->len);
  b->data = data;
  b->cap = cap;
  return b->data + b->len;
}

/* Room for n more bytes; returns where to write them, or NULL. */
static inline uint8_t *room(otpc_builder_t *b, size_t n) {
  if (OTPC_LIKELY(b->cap - b->len >= n)) return b->data + b->len;
  return grow(b, n);
}

/* Accounts for one term with `children` terms to follow and reserves its
 * n header bytes. */
static uint8_t *begin(otpc_builder_t *b, uint64_t children, size_t n) {
  if (b->err != 0) return NULL;
  if (b->pending == 0) {
    set_err(b, OTPC_ESTATE);
    return NULL;
  }
  uint8_t *p = room(b, n);
  if (p == NULL) return NULL;
  b->pending += children - 1;
  b->len += n;
  return p;
}

otpc_buf_t *otpc_builder_finish(otpc_builder_t *b, int *err) {
  int rc = b->err ? b->err : b->pending ? OTPC_ESTATE : 0;
  otpc_buf_t *buf = NULL;
  if (rc == 0) {
    if (on_heap(b)) {
      buf = otpc__buf_shrink(otpc__buf_of_data(b->data), b->len);
      b->data = b->small; /* handed over */
    } else {
      buf = otpc_buf_new(b->small, b->len);
      if (buf == NULL) rc = OTPC_ENOMEM;
    }
  }
  otpc_builder_dispose(b);
  if (err) *err = rc;
  return buf;
}

/* ---- numbers ------------------------------------------------------------ */

static int put_small_big(otpc_builder_t *b, bool neg, uint64_t mag) {
  uint8_t n = 0, bytes[8];
  while (mag != 0) {
    bytes[n++] = (uint8_t)mag;
    mag >>= 8;
  }
  uint8_t *p = begin(b, 0, 3 + (size_t)n);
  if (p == NULL) return b->err;
  p[0] = ETF_SMALL_BIG;
  p[1] = n;
  p[2] = neg;
  memcpy(p + 3, bytes, n);
  return 0;
}

int otpc_build_int(otpc_builder_t *b, int64_t v) {
  if (v >= 0 && v <= 255) {
    uint8_t *p = begin(b, 0, 2);
    if (p == NULL) return b->err;
    p[0] = ETF_SMALL_INTEGER;
    p[1] = (uint8_t)v;
    return 0;
  }
  if (v >= INT32_MIN && v <= INT32_MAX) {
    uint8_t *p = begin(b, 0, 5);
    if (p == NULL) return b->err;
    p[0] = ETF_INTEGER;
    put_be32(p + 1, (uint32_t)(int32_t)v);
    return 0;
  }
  return put_small_big(b, v < 0, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
}

int otpc_build_uint(otpc_builder_t *b, uint64_t v) {
  if (v <= INT32_MAX) return otpc_build_int(b, (int64_t)v);
  return put_small_big(b, false, v);
}

int otpc_build_bigint(otpc_builder_t *b, bool negative, const uint8_t *mag,
                      size_t nbytes) {
  while (nbytes > 0 && mag[nbytes - 1] == 0) nbytes--;
  if (nbytes <= 8) {
    uint64_t u = 0;
    for (size_t i = nbytes; i-- > 0;) u = (u << 8) | mag[i];
    if (!negative) return otpc_build_uint(b, u);
    if (u <= (uint64_t)INT32_MAX + 1) return otpc_build_int(b, -(int64_t)u);
    return put_small_big(b, true, u);
  }
  if (nbytes > UINT32_MAX) return set_err(b, OTPC_ELENGTH);
  bool small = nbytes <= 255;
  size_t head = small ? 3 : 6;
  uint8_t *p = begin(b, 0, head + nbytes);
  if (p == NULL) return b->err;
  if (small) {
    p[0] = ETF_SMALL_BIG;
    p[1] = (uint8_t)nbytes;
  } else {
    p[0] = ETF_LARGE_BIG;
    put_be32(p + 1, (uint32_t)nbytes);
  }
  p[head - 1] = negative;
  memcpy(p + head, mag, nbytes);
  return 0;
}

int otpc_build_double(otpc_builder_t *b, double v) {
  if (!isfinite(v)) return set_err(b, OTPC_EBADARG);
  uint8_t *p = begin(b, 0, 9);
  if (p == NULL) return b->err;
  uint64_t bits;
  memcpy(&bits, &v, sizeof bits);
  p[0] = ETF_NEW_FLOAT;
  put_be64(p + 1, bits);
  return 0;
}

/* ---- atoms -------------------------------------------------------------- */

/* otpc__put_atom_text writes an atom's text at p (SMALL_ATOM_UTF8 where
 * it fits) and returns the byte after it; otpc__atom_text_bytes says how
 * many that takes (term_int.h). */
size_t otpc__atom_text_bytes(size_t len) {
  return len <= 255 ? 2 + len : 3 + len;
}

uint8_t *otpc__put_atom_text(uint8_t *p, const char *name, size_t len) {
  if (len <= 255) {
    *p++ = ETF_SMALL_ATOM_UTF8;
    *p++ = (uint8_t)len;
  } else {
    *p++ = ETF_ATOM_UTF8;
    put_be16(p, (uint16_t)len);
    p += 2;
  }
  otpc__copy_small(p, name, len);
  return p + len;
}

/* Writes text that is known to be a valid atom. */
static int put_atom(otpc_builder_t *b, const char *text, size_t len) {
  uint8_t *p = begin(b, 0, otpc__atom_text_bytes(len));
  if (p == NULL) return b->err;
  otpc__put_atom_text(p, text, len);
  return 0;
}

int otpc_build_atom_len(otpc_builder_t *b, const char *utf8, size_t len) {
  if (utf8 == NULL && len != 0) return set_err(b, OTPC_EINVAL);
  long chars = otpc__utf8_count((const uint8_t *)utf8, len);
  if (chars < 0) return set_err(b, OTPC_EUTF8);
  if (chars > OTPC_ATOM_MAX_CHARS) return set_err(b, OTPC_EATOM);
  return put_atom(b, utf8 ? utf8 : "", len);
}

int otpc_build_atom(otpc_builder_t *b, const char *utf8) {
  if (utf8 == NULL) return set_err(b, OTPC_EINVAL);
  return otpc_build_atom_len(b, utf8, strlen(utf8));
}

int otpc_build_atom_id(otpc_builder_t *b, otpc_atom_t atom) {
  size_t len;
  const char *name = otpc_atom_name(atom, &len);
  if (name == NULL) return set_err(b, OTPC_EINVAL);
  return put_atom(b, name, len);
}

int otpc_build_bool(otpc_builder_t *b, bool v) {
  return v ? put_atom(b, "true", 4) : put_atom(b, "false", 5);
}

/* ---- binaries ----------------------------------------------------------- */

int otpc_build_binary(otpc_builder_t *b, const void *data, size_t bytes) {
  if (bytes > UINT32_MAX) return set_err(b, OTPC_ELENGTH);
  if (data == NULL && bytes != 0) return set_err(b, OTPC_EINVAL);
  uint8_t *p = begin(b, 0, 5 + bytes);
  if (p == NULL) return b->err;
  p[0] = ETF_BINARY;
  put_be32(p + 1, (uint32_t)bytes);
  if (bytes) memcpy(p + 5, data, bytes);
  return 0;
}

int otpc_build_bitstring(otpc_builder_t *b, const void *data, size_t nbits) {
  if (nbits % 8 == 0) return otpc_build_binary(b, data, nbits / 8);
  size_t bytes = nbits / 8 + 1;
  if (bytes > UINT32_MAX) return set_err(b, OTPC_ELENGTH);
  if (data == NULL) return set_err(b, OTPC_EINVAL);
  uint8_t *p = begin(b, 0, 6 + bytes);
  if (p == NULL) return b->err;
  unsigned bits = (unsigned)(nbits % 8);
  p[0] = ETF_BIT_BINARY;
  put_be32(p + 1, (uint32_t)bytes);
  p[5] = (uint8_t)bits;
  memcpy(p + 6, data, bytes);
  p[5 + bytes] &= (uint8_t)(0xFF << (8 - bits)); /* unused bits are zero */
  return 0;
}

/* ---- containers --------------------------------------------------------- */

int otpc_build_tuple(otpc_builder_t *b, size_t arity) {
  if (arity > UINT32_MAX) return set_err(b, OTPC_ELENGTH);
  if (arity <= 255) {
    uint8_t *p = begin(b, arity, 2);
    if (p == NULL) return b->err;
    p[0] = ETF_SMALL_TUPLE;
    p[1] = (uint8_t)arity;
    return 0;
  }
  uint8_t *p = begin(b, arity, 5);
  if (p == NULL) return b->err;
  p[0] = ETF_LARGE_TUPLE;
  put_be32(p + 1, (uint32_t)arity);
  return 0;
}

int otpc_build_list(otpc_builder_t *b, size_t n) {
  if (n == 0) return set_err(b, OTPC_EINVAL);
  if (n > UINT32_MAX) return set_err(b, OTPC_ELENGTH);
  uint8_t *p = begin(b, (uint64_t)n + 1, 5);
  if (p == NULL) return b->err;
  p[0] = ETF_LIST;
  put_be32(p + 1, (uint32_t)n);
  return 0;
}

int otpc_build_nil(otpc_builder_t *b) {
  uint8_t *p = begin(b, 0, 1);
  if (p == NULL) return b->err;
  p[0] = ETF_NIL;
  return 0;
}

int otpc_build_string(otpc_builder_t *b, const char *s, size_t len) {
  if (s == NULL && len != 0) return set_err(b, OTPC_EINVAL);
  if (len == 0) return otpc_build_nil(b);
  if (len <= 65535) {
    uint8_t *p = begin(b, 0, 3 + len);
    if (p == NULL) return b->err;
    p[0] = ETF_STRING;
    put_be16(p + 1, (uint16_t)len);
    memcpy(p + 3, s, len);
    return 0;
  }
  /* Longer: a list of small integers, as term_to_binary writes it. */
  int rc = otpc_build_list(b, len);
  uint8_t *p = rc == 0 ? room(b, 2 * len + 1) : NULL;
  if (p == NULL) return b->err;
  for (size_t i = 0; i < len; i++) {
    p[2 * i] = ETF_SMALL_INTEGER;
    p[2 * i + 1] = (uint8_t)s[i];
  }
  p[2 * len] = ETF_NIL;
  b->len += 2 * len + 1;
  b->pending -= len + 1;
  return 0;
}

int otpc_build_map(otpc_builder_t *b, size_t pairs) {
  if (pairs > UINT32_MAX) return set_err(b, OTPC_ELENGTH);
  uint8_t *p = begin(b, 2 * (uint64_t)pairs, 5);
  if (p == NULL) return b->err;
  p[0] = ETF_MAP;
  put_be32(p + 1, (uint32_t)pairs);
  return 0;
}

/* ---- identifiers -------------------------------------------------------- */

/* The direct writers (term_int.h): sized first, then written. */

size_t otpc__atom_bytes(otpc_atom_t a) {
  size_t len;
  return otpc_atom_name(a, &len) != NULL ? otpc__atom_text_bytes(len) : 0;
}

uint8_t *otpc__put_atom(uint8_t *p, otpc_atom_t a) {
  size_t len;
  const char *name = otpc_atom_name(a, &len);
  return otpc__put_atom_text(p, name, len);
}

/* A node's name: this node's from its ready encoding (most pids and refs
 * written are ours), another's from the atom table. */
static size_t node_bytes(otpc_atom_t node) {
  const otpc__node_ext_t *e = otpc__local_node_ext();
  return e != NULL && e->atom == node ? e->n : otpc__atom_bytes(node);
}

static uint8_t *put_node(uint8_t *p, otpc_atom_t node) {
  const otpc__node_ext_t *e = otpc__local_node_ext();
  if (e == NULL || e->atom != node) return otpc__put_atom(p, node);
  otpc__copy_small(p, e->bytes, e->n);
  return p + e->n;
}

size_t otpc__pid_bytes(const otpc_pid_t *pid) {
  size_t n = node_bytes(pid->node);
  return n != 0 ? 1 + n + 12 : 0;
}

uint8_t *otpc__put_pid(uint8_t *p, const otpc_pid_t *pid) {
  *p = ETF_NEW_PID;
  p = put_node(p + 1, pid->node);
  put_be32(p, pid->id);
  put_be32(p + 4, pid->serial);
  put_be32(p + 8, pid->creation);
  return p + 12;
}

size_t otpc__ref_bytes(const otpc_ref_t *ref) {
  size_t n = node_bytes(ref->node);
  if (n == 0 || ref->len < 1 || ref->len > OTPC_REF_MAX_WORDS) return 0;
  return 3 + n + 4 + 4 * (size_t)ref->len;
}

uint8_t *otpc__put_ref(uint8_t *p, const otpc_ref_t *ref) {
  /* NEWER_REFERENCE_EXT puts its length before the node. */
  p[0] = ETF_NEWER_REFERENCE;
  put_be16(p + 1, (uint16_t)ref->len);
  p = put_node(p + 3, ref->node);
  put_be32(p, ref->creation);
  for (uint32_t i = 0; i < ref->len; i++) put_be32(p + 4 + 4 * i, ref->id[i]);
  return p + 4 + 4 * ref->len;
}

/* Tag, node atom, then `after` bytes for the caller to fill. */
static uint8_t *begin_node(otpc_builder_t *b, uint8_t tag, otpc_atom_t node,
                           size_t after) {
  size_t len;
  const char *name = otpc_atom_name(node, &len);
  if (name == NULL) {
    set_err(b, OTPC_EINVAL);
    return NULL;
  }
  uint8_t *p = begin(b, 0, 1 + otpc__atom_text_bytes(len) + after);
  if (p == NULL) return NULL;
  p[0] = tag;
  return otpc__put_atom_text(p + 1, name, len);
}

int otpc_build_pid(otpc_builder_t *b, const otpc_pid_t *pid) {
  size_t n = otpc__pid_bytes(pid);
  if (n == 0) return set_err(b, OTPC_EINVAL);
  uint8_t *p = begin(b, 0, n);
  if (p == NULL) return b->err;
  otpc__put_pid(p, pid);
  return 0;
}

int otpc_build_port(otpc_builder_t *b, const otpc_port_t *port) {
  if (port->id > UINT32_MAX) {
    uint8_t *p = begin_node(b, ETF_V4_PORT, port->node, 12);
    if (p == NULL) return b->err;
    put_be64(p, port->id);
    put_be32(p + 8, port->creation);
    return 0;
  }
  uint8_t *p = begin_node(b, ETF_NEW_PORT, port->node, 8);
  if (p == NULL) return b->err;
  put_be32(p, (uint32_t)port->id);
  put_be32(p + 4, port->creation);
  return 0;
}

int otpc_build_ref(otpc_builder_t *b, const otpc_ref_t *ref) {
  if (ref->len < 1 || ref->len > OTPC_REF_MAX_WORDS)
    return set_err(b, OTPC_EBADARG);
  size_t n = otpc__ref_bytes(ref);
  if (n == 0) return set_err(b, OTPC_EINVAL);
  uint8_t *p = begin(b, 0, n);
  if (p == NULL) return b->err;
  otpc__put_ref(p, ref);
  return 0;
}

int otpc_build_export(otpc_builder_t *b, otpc_atom_t module,
                      otpc_atom_t function, unsigned arity) {
  if (arity > 255) return set_err(b, OTPC_EBADARG);
  uint8_t *p = begin(b, 3, 1);
  if (p == NULL) return b->err;
  p[0] = ETF_EXPORT;
  otpc_build_atom_id(b, module);
  otpc_build_atom_id(b, function);
  p = begin(b, 0, 2);
  if (p == NULL) return b->err;
  p[0] = ETF_SMALL_INTEGER;
  p[1] = (uint8_t)arity;
  return 0;
}

int otpc_build_term(otpc_builder_t *b, otpc_term_t t) {
  if (t.kind == TERM_CHAR) return otpc_build_int(b, t.chr);
  if (t.kind != TERM_ENCODED) return set_err(b, OTPC_EINVAL);
  size_t n = otpc_term_size(t);
  uint8_t *p = begin(b, 0, n);
  if (p == NULL) return b->err;
  memcpy(p, t.p, n);
  return 0;
}
