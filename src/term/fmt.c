/*
 * fmt.c: terms from a format, Erlang term text with holes filled from the
 * arguments: otpc_build_fmt(), otpc_build_vfmt(), otpc_term_fmt().
 *
 * The format is read into the syntax tree of scan.h, each hole takes its
 * argument in the order the holes appear, and the tree is written by the
 * emitter of parse.c, so a format writes the same canonical ETF as
 * term_to_binary would for the same term: [~i, ~i] with 1 and 2 is a
 * STRING_EXT, [a | ~t] with [b] is the list [a, b].
 *
 * ~s takes the bytes of a C string, as otpc_build_string() does; a string
 * literal in the format is Erlang text, its characters are code points.
 * NULL for ~a, ~s, ~p or ~r (or for ~b with a size) is OTPC_EBADARG.
 *
 * A format of at most OTPC__TREE_INLINE nodes with nothing to decode, such
 * as "{~a, ~i}", allocates nothing beyond what the builder needs.
 *
 * Formats are usually string literals used again and again, so each thread
 * keeps the parsed trees of its last few small formats, keyed by the
 * format's address and checked against a copy of its text (so a buffer
 * reused for another format is never mistaken for the old one). A hit
 * copies the nodes into a working tree and skips the parse.
 */
#include "scan.h"

#define CACHE_SLOTS 8
#define CACHE_TEXT 192 /* longest format kept, NUL included */

typedef struct cached {
  const char *key; /* the format's address, or NULL */
  uint32_t n;      /* nodes */
  uint32_t len;    /* text length */
  char text[CACHE_TEXT];
  otpc__node_t nodes[OTPC__TREE_INLINE];
} cached_t;

static __thread cached_t cache[CACHE_SLOTS];

static cached_t *slot_for(const char *fmt) {
  return &cache[((uintptr_t)fmt >> 3) % CACHE_SLOTS];
}

/* A working tree from the cache, or false on a miss. */
static bool from_cache(otpc__tree_t *t, const char *fmt) {
  cached_t *c = slot_for(fmt);
  if (c->key != fmt || strcmp(c->text, fmt) != 0) return false;
  memcpy(t->small, c->nodes, c->n * sizeof c->nodes[0]);
  t->n = c->n;
  t->src = (const uint8_t *)c->text;
  t->len = c->len;
  return true;
}

/* Keeps a freshly parsed tree (before its holes are bound) if it is small
 * and needs nothing outside its nodes and text. */
static void to_cache(const otpc__tree_t *t, const char *fmt, size_t len) {
  if (t->n > OTPC__TREE_INLINE || t->scratch.len != 0 || len >= CACHE_TEXT)
    return;
  cached_t *c = slot_for(fmt);
  memcpy(c->text, fmt, len + 1);
  memcpy(c->nodes, t->nodes, t->n * sizeof t->nodes[0]);
  c->n = t->n;
  c->len = (uint32_t)len;
  c->key = fmt;
}

/* Takes the argument of each hole, in order. */
static int bind_hole(otpc__node_t *nd, va_list *ap) {
  switch (nd->hole) {
    case 'A': nd->v.hole.atom = va_arg(*ap, otpc_atom_t); return 0;
    case 'i': nd->v.hole.i = va_arg(*ap, int); return 0;
    case 'l': nd->v.hole.i = va_arg(*ap, int64_t); return 0;
    case 'u': nd->v.hole.u = va_arg(*ap, uint64_t); return 0;
    case 'f': nd->v.hole.f = va_arg(*ap, double); return 0;
    case 't': nd->v.hole.term = va_arg(*ap, otpc_term_t); return 0;
    case 'b':
      nd->v.hole.bin.ptr = va_arg(*ap, const void *);
      nd->v.hole.bin.len = va_arg(*ap, size_t);
      return nd->v.hole.bin.ptr || !nd->v.hole.bin.len ? 0 : OTPC_EBADARG;
    case 's':
      nd->v.hole.bin.ptr = va_arg(*ap, const char *);
      nd->v.hole.bin.len = nd->v.hole.bin.ptr ? strlen(nd->v.hole.bin.ptr) : 0;
      return nd->v.hole.bin.ptr ? 0 : OTPC_EBADARG;
    default: /* a, p, r */
      nd->v.hole.ptr = va_arg(*ap, const void *);
      return nd->v.hole.ptr ? 0 : OTPC_EBADARG;
  }
}

static int bind_holes(otpc__tree_t *t, va_list *ap) {
  int rc = 0;
  for (uint32_t i = 0; i < t->n && rc == 0; i++)
    if (t->nodes[i].kind == NODE_HOLE) rc = bind_hole(&t->nodes[i], ap);
  return rc;
}

int otpc_build_vfmt(otpc_builder_t *b, const char *fmt, va_list ap) {
  if (b->err) return b->err;
  otpc__tree_t t;
  otpc__tree_init(&t, OTPC__MODE_FMT);
  int rc = 0;
  if (fmt == NULL) {
    rc = OTPC_EINVAL;
  } else if (!from_cache(&t, fmt)) {
    size_t len = strlen(fmt);
    rc = otpc__tree_parse(&t, fmt, len, NULL);
    if (rc == OTPC_ESYNTAX) rc = OTPC_EBADFMT;
    if (rc == 0) to_cache(&t, fmt, len);
  }
  if (rc == 0) {
    va_list aq;
    va_copy(aq, ap);
    rc = bind_holes(&t, &aq);
    va_end(aq);
  }
  if (rc == 0) rc = otpc__tree_build(&t, b);
  otpc__tree_free(&t);
  if (rc < 0 && !b->err) b->err = rc; /* errors are sticky */
  return rc;
}

int otpc_build_fmt(otpc_builder_t *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = otpc_build_vfmt(b, fmt, ap);
  va_end(ap);
  return rc;
}

otpc_buf_t *otpc_term_vfmt(const char *fmt, va_list ap, int *err) {
  otpc_builder_t b;
  otpc_builder_init(&b);
  int rc = otpc_build_vfmt(&b, fmt, ap);
  otpc_buf_t *buf = NULL;
  if (rc < 0)
    otpc_builder_dispose(&b);
  else
    buf = otpc_builder_finish(&b, &rc);
  if (err) *err = rc;
  return buf;
}

otpc_buf_t *otpc_term_fmt(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  otpc_buf_t *buf = otpc_term_vfmt(fmt, ap, NULL);
  va_end(ap);
  return buf;
}
