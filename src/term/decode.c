/*
 * decode.c: checking outside input, and compressed terms.
 *
 * otpc_term_validate() is the only code that reads untrusted ETF. It walks
 * the bytes once, without recursion: a stack of open containers records how
 * many terms each still owes (and, for a fun's free variables, where the fun
 * must end). Each length is checked against the bytes that remain before
 * anything is read, so absurd lengths fail at once, and every container
 * child takes at least one byte, so the walk is linear in the input size.
 * What passes here may be read by view.c without further checks.
 *
 * Maps must not hold two =:= keys (binary_to_term's badarg). While a map
 * of two pairs or more is open, the position of each of its keys goes on
 * a second stack; when the map closes, compare.c checks those keys (n - 1
 * comparisons when they come sorted; else hashed, or at worst sorted), so
 * nothing is walked twice to find them. Should that stack fail to grow,
 * the map's keys are found by walking it when it closes: slower, but the
 * check never fails for want of memory.
 *
 * Rejected on purpose: ATOM_CACHE_REF (only meaningful inside a
 * distribution connection), the old FUN_EXT (gone since OTP 23), LOCAL_EXT,
 * LIST_EXT of length 0 (nothing writes it), floats that are NaN or
 * infinite (no Erlang term has them).
 */
#include <math.h>
#include <limits.h>
#include <stdlib.h>
#include <zlib.h>

#include "term_int.h"

/* F_MAP: a map of two pairs or more, its keys on the key stack; F_WALK:
 * the same when the key stack could not grow (its keys are found by
 * walking the map when it closes). */
enum { F_PLAIN, F_FUN, F_MAP, F_WALK };

typedef struct frame {
  uint64_t left; /* terms this container still owes */
  size_t aux;    /* F_FUN: the offset the fun must end at; F_MAP and
                    F_WALK: the offset of the map's tag */
  uint8_t kind;  /* F_*; maps of fewer than two pairs are F_PLAIN */
} frame_t;

typedef struct vstate {
  const uint8_t *data;
  size_t len;
  size_t pos;
  int err;
  size_t err_pos;
  frame_t *stack;
  size_t depth, cap, max_depth;
  const uint8_t **keys; /* keys of the open F_MAP maps, innermost last */
  size_t nkeys, kcap;
  const otpc_atom_t *cache; /* distribution: ATOM_CACHE_REF targets */
  uint32_t ncache;
  size_t ncached;           /* cache refs seen */
  frame_t small[32];
  const uint8_t *small_keys[64];
} vstate_t;

static int fail(vstate_t *s, int code, size_t at) {
  if (s->err == 0) {
    s->err = code;
    s->err_pos = at;
  }
  return code;
}

static inline bool have(const vstate_t *s, size_t n) {
  return s->len - s->pos >= n;
}

/* Checks the atom at s->pos and moves past it. */
static int check_atom(vstate_t *s) {
  size_t at = s->pos;
  if (!have(s, 2)) return fail(s, OTPC_ETRUNC, at);
  uint8_t tag = s->data[at];
  size_t n, head;
  if (tag == ETF_ATOM_CACHE_REF && s->cache != NULL) {
    if (s->data[at + 1] >= s->ncache) return fail(s, OTPC_EBADARG, at);
    s->ncached++;
    s->pos = at + 2;
    return 0;
  }
  if (tag == ETF_SMALL_ATOM || tag == ETF_SMALL_ATOM_UTF8) {
    n = s->data[at + 1];
    head = 2;
  } else if (tag == ETF_ATOM || tag == ETF_ATOM_UTF8) {
    if (!have(s, 3)) return fail(s, OTPC_ETRUNC, at);
    n = get_be16(s->data + at + 1);
    head = 3;
  } else {
    return fail(s, OTPC_EBADTAG, at);
  }
  if (!have(s, head + n)) return fail(s, OTPC_ETRUNC, at);
  const uint8_t *text = s->data + at + head;
  if (tag == ETF_SMALL_ATOM || tag == ETF_ATOM) {
    if (n > OTPC_ATOM_MAX_CHARS) return fail(s, OTPC_EATOM, at);
  } else {
    long chars = otpc__utf8_count(text, n);
    if (chars < 0) return fail(s, OTPC_EUTF8, at);
    if (chars > OTPC_ATOM_MAX_CHARS) return fail(s, OTPC_EATOM, at);
  }
  s->pos = at + head + n;
  return 0;
}

/* Fixed-size fields after a node atom. */
static int check_node_then(vstate_t *s, size_t after) {
  int rc = check_atom(s);
  if (rc != 0) return rc;
  if (!have(s, after)) return fail(s, OTPC_ETRUNC, s->pos);
  s->pos += after;
  return 0;
}

static int push(vstate_t *s, uint64_t children, uint8_t kind, size_t aux) {
  if (s->depth == s->max_depth) return fail(s, OTPC_EDEPTH, s->pos);
  if (s->depth == s->cap) {
    size_t cap = s->cap * 2;
    frame_t *bigger;
    if (s->stack == s->small) {
      bigger = otpc__malloc(cap * sizeof *bigger);
      if (bigger) memcpy(bigger, s->small, sizeof s->small);
    } else {
      bigger = otpc__realloc(s->stack, cap * sizeof *bigger);
    }
    if (bigger == NULL) return fail(s, OTPC_ENOMEM, s->pos);
    s->stack = bigger;
    s->cap = cap;
  }
  s->stack[s->depth].left = children;
  s->stack[s->depth].aux = aux;
  s->stack[s->depth].kind = kind;
  s->depth++;
  return 0;
}

/* Notes that a key of the map f (the innermost container) starts at
 * s->pos. Without memory the map is checked by walking it instead. */
static void push_key(vstate_t *s, frame_t *f) {
  if (OTPC_UNLIKELY(s->nkeys == s->kcap)) {
    size_t cap = s->kcap * 2;
    const uint8_t **bigger;
    if (s->keys == s->small_keys) {
      bigger = otpc__malloc(cap * sizeof *bigger);
      if (bigger) memcpy(bigger, s->small_keys, sizeof s->small_keys);
    } else {
      bigger = cap <= SIZE_MAX / sizeof *bigger
                   ? otpc__realloc(s->keys, cap * sizeof *bigger)
                   : NULL;
    }
    if (bigger == NULL) {
      /* drop the keys noted so far: all the map's keys before this one */
      uint64_t pairs = get_be32(s->data + f->aux + 1);
      s->nkeys -= (size_t)((2 * pairs - f->left + 1) / 2 - 1);
      f->kind = F_WALK;
      return;
    }
    s->keys = bigger;
    s->kcap = cap;
  }
  s->keys[s->nkeys++] = s->data + s->pos;
}

/* The innermost container has all its children: checks what is left to
 * check and closes it. */
static void close_container(vstate_t *s) {
  frame_t *f = &s->stack[s->depth - 1];
  if (f->kind == F_FUN) {
    if (s->pos != f->aux) fail(s, OTPC_ELENGTH, s->pos);
  } else if (f->kind == F_MAP) {
    size_t n = get_be32(s->data + f->aux + 1);
    s->nkeys -= n;
    int rc = otpc__map_check_key_array(s->keys + s->nkeys, n);
    if (rc != 0) fail(s, rc, f->aux);
  } else if (f->kind == F_WALK) {
    int rc = otpc__map_check_keys(term_at(s->data + f->aux));
    if (rc != 0) fail(s, rc, f->aux);
  }
  s->depth--;
}

/* A container of n children whose header is hdr bytes long. */
static int open_container(vstate_t *s, size_t hdr, uint64_t n, uint8_t kind) {
  size_t at = s->pos;
  s->pos += hdr;
  /* Every child takes at least one byte. */
  if (n > s->len - s->pos) return fail(s, OTPC_ELENGTH, at);
  return n ? push(s, n, kind, at) : 0;
}

/* The integer fields of a fun must be small or 32-bit integers. */
static int check_int_field(vstate_t *s) {
  size_t at = s->pos;
  if (!have(s, 2)) return fail(s, OTPC_ETRUNC, at);
  if (s->data[at] == ETF_SMALL_INTEGER) {
    s->pos += 2;
    return 0;
  }
  if (s->data[at] != ETF_INTEGER) return fail(s, OTPC_EBADTAG, at);
  if (!have(s, 5)) return fail(s, OTPC_ETRUNC, at);
  s->pos += 5;
  return 0;
}

static int check_new_fun(vstate_t *s) {
  size_t at = s->pos;
  /* Tag, Size 4, Arity 1, Uniq 16, Index 4, NumFree 4. */
  if (!have(s, 30)) return fail(s, OTPC_ETRUNC, at);
  uint32_t size = get_be32(s->data + at + 1);
  uint32_t nfree = get_be32(s->data + at + 26);
  if (size < 29 || size > s->len - at - 1) return fail(s, OTPC_ELENGTH, at);
  size_t end = at + 1 + size;
  s->pos = at + 30;
  int rc = check_atom(s); /* Module */
  if (rc == 0) rc = check_int_field(s); /* OldIndex */
  if (rc == 0) rc = check_int_field(s); /* OldUniq */
  if (rc != 0) return rc;
  if (!have(s, 1)) return fail(s, OTPC_ETRUNC, s->pos);
  uint8_t pid_tag = s->data[s->pos];
  if (pid_tag != ETF_PID && pid_tag != ETF_NEW_PID)
    return fail(s, OTPC_EBADTAG, s->pos);
  s->pos++;
  rc = check_node_then(s, pid_tag == ETF_PID ? 9 : 12);
  if (rc != 0) return rc;
  if (nfree > end - s->pos || s->pos > end) return fail(s, OTPC_ELENGTH, at);
  if (nfree == 0) {
    if (s->pos != end) return fail(s, OTPC_ELENGTH, at);
    return 0;
  }
  return push(s, nfree, F_FUN, end);
}

static int check_export(vstate_t *s) {
  s->pos++;
  int rc = check_atom(s);
  if (rc == 0) rc = check_atom(s);
  if (rc != 0) return rc;
  if (!have(s, 2)) return fail(s, OTPC_ETRUNC, s->pos);
  if (s->data[s->pos] != ETF_SMALL_INTEGER)
    return fail(s, OTPC_EBADTAG, s->pos);
  s->pos += 2;
  return 0;
}

static int check_float_text(vstate_t *s) {
  size_t at = s->pos;
  double d;
  if (!have(s, 32)) return fail(s, OTPC_ETRUNC, at);
  int rc = otpc__float_text(s->data + at + 1, &d);
  if (rc != 0) return fail(s, rc, at);
  s->pos += 32;
  return 0;
}

static int check_new_float(vstate_t *s) {
  size_t at = s->pos;
  if (!have(s, 9)) return fail(s, OTPC_ETRUNC, at);
  uint64_t bits = get_be64(s->data + at + 1);
  double d;
  memcpy(&d, &bits, sizeof d);
  if (!isfinite(d)) return fail(s, OTPC_EBADARG, at);
  s->pos += 9;
  return 0;
}

/* Bytes follow a length field: tag, len (lbytes), extra, then len bytes. */
static int check_blob(vstate_t *s, size_t lbytes, size_t extra) {
  size_t at = s->pos;
  if (!have(s, 1 + lbytes + extra)) return fail(s, OTPC_ETRUNC, at);
  size_t n = lbytes == 1   ? s->data[at + 1]
             : lbytes == 2 ? get_be16(s->data + at + 1)
                           : get_be32(s->data + at + 1);
  if (n > s->len - at - 1 - lbytes - extra)
    return fail(s, lbytes == 4 ? OTPC_ELENGTH : OTPC_ETRUNC, at);
  s->pos = at + 1 + lbytes + extra + n;
  return 0;
}

static int check_bit_binary(vstate_t *s) {
  size_t at = s->pos;
  int rc = check_blob(s, 4, 1);
  if (rc != 0) return rc;
  uint32_t n = get_be32(s->data + at + 1);
  uint8_t bits = s->data[at + 5];
  if (n == 0 ? bits != 0 && bits != 8 : bits < 1 || bits > 8)
    return fail(s, OTPC_EBADARG, at);
  return 0;
}

static int check_big(vstate_t *s, size_t lbytes) {
  size_t at = s->pos;
  int rc = check_blob(s, lbytes, 1);
  if (rc != 0) return rc;
  if (s->data[at + 1 + lbytes] > 1) return fail(s, OTPC_EBADARG, at);
  return 0;
}

static int check_ref(vstate_t *s, size_t creation_bytes) {
  size_t at = s->pos;
  if (!have(s, 3)) return fail(s, OTPC_ETRUNC, at);
  uint16_t n = get_be16(s->data + at + 1);
  if (n < 1 || n > OTPC_REF_MAX_WORDS) return fail(s, OTPC_EBADARG, at);
  s->pos += 3;
  return check_node_then(s, creation_bytes + 4 * (size_t)n);
}

/* Checks the term at s->pos (its header only, for containers). */
static int check_one(vstate_t *s) {
  size_t at = s->pos;
  const uint8_t *p = s->data + at;
  switch (p[0]) {
    case ETF_SMALL_INTEGER:
      if (!have(s, 2)) return fail(s, OTPC_ETRUNC, at);
      s->pos += 2;
      return 0;
    case ETF_INTEGER:
      if (!have(s, 5)) return fail(s, OTPC_ETRUNC, at);
      s->pos += 5;
      return 0;
    case ETF_FLOAT: return check_float_text(s);
    case ETF_NEW_FLOAT: return check_new_float(s);
    case ETF_ATOM:
    case ETF_SMALL_ATOM:
    case ETF_ATOM_UTF8:
    case ETF_SMALL_ATOM_UTF8:
    case ETF_ATOM_CACHE_REF: return check_atom(s); /* refs: with a cache */
    case ETF_PID: s->pos++; return check_node_then(s, 9);
    case ETF_NEW_PID: s->pos++; return check_node_then(s, 12);
    case ETF_PORT: s->pos++; return check_node_then(s, 5);
    case ETF_NEW_PORT: s->pos++; return check_node_then(s, 8);
    case ETF_V4_PORT: s->pos++; return check_node_then(s, 12);
    case ETF_REFERENCE: s->pos++; return check_node_then(s, 5);
    case ETF_NEW_REFERENCE: return check_ref(s, 1);
    case ETF_NEWER_REFERENCE: return check_ref(s, 4);
    case ETF_SMALL_TUPLE:
      if (!have(s, 2)) return fail(s, OTPC_ETRUNC, at);
      return open_container(s, 2, p[1], F_PLAIN);
    case ETF_LARGE_TUPLE:
      if (!have(s, 5)) return fail(s, OTPC_ETRUNC, at);
      return open_container(s, 5, get_be32(p + 1), F_PLAIN);
    case ETF_MAP:
      if (!have(s, 5)) return fail(s, OTPC_ETRUNC, at);
      return open_container(s, 5, 2 * (uint64_t)get_be32(p + 1),
                            get_be32(p + 1) > 1 ? F_MAP : F_PLAIN);
    case ETF_NIL: s->pos++; return 0;
    case ETF_STRING: return check_blob(s, 2, 0);
    case ETF_LIST:
      if (!have(s, 5)) return fail(s, OTPC_ETRUNC, at);
      if (get_be32(p + 1) == 0) return fail(s, OTPC_EBADARG, at);
      return open_container(s, 5, (uint64_t)get_be32(p + 1) + 1, F_PLAIN);
    case ETF_BINARY: return check_blob(s, 4, 0);
    case ETF_BIT_BINARY: return check_bit_binary(s);
    case ETF_SMALL_BIG: return check_big(s, 1);
    case ETF_LARGE_BIG: return check_big(s, 4);
    case ETF_NEW_FUN: return check_new_fun(s);
    case ETF_EXPORT: return check_export(s);
    default: return fail(s, OTPC_EBADTAG, at);
  }
}

static long validate(const void *data, size_t len,
                     const otpc_decode_opts_t *opts, const otpc_atom_t *cache,
                     uint32_t ncache, size_t *nrefs,
                     otpc_decode_error_t *err) {
  vstate_t s;
  s.cache = cache;
  s.ncache = ncache;
  s.ncached = 0;
  s.data = data;
  s.len = len;
  s.pos = 0;
  s.err = 0;
  s.err_pos = 0;
  s.stack = s.small;
  s.cap = sizeof s.small / sizeof s.small[0];
  s.depth = 0;
  s.keys = s.small_keys;
  s.nkeys = 0;
  s.kcap = sizeof s.small_keys / sizeof s.small_keys[0];
  s.max_depth = opts && opts->max_depth ? opts->max_depth
                                        : OTPC_TERM_DEFAULT_MAX_DEPTH;
  if (data == NULL && len != 0) {
    fail(&s, OTPC_EINVAL, 0);
  } else if (len > (size_t)LONG_MAX) {
    fail(&s, OTPC_ELENGTH, 0);
  } else {
    uint64_t top = 1; /* the one term we were asked for */
    while (s.err == 0) {
      /* Close containers that have all their children. */
      while (s.err == 0 && s.depth > 0 && s.stack[s.depth - 1].left == 0)
        close_container(&s); /* stops at an error: keys must be checked */
      if (s.err != 0) break;
      if (s.depth == 0) {
        if (top == 0) break;
        top--;
      } else {
        frame_t *f = &s.stack[s.depth - 1];
        /* A run of integers in a list or tuple (not a map, whose keys are
         * tracked) in one tight loop: each needs only its length. */
        if (f->kind != F_MAP) {
          while (f->left > 1 && s.len - s.pos >= 5) {
            uint8_t tag = s.data[s.pos];
            if (tag == ETF_SMALL_INTEGER)
              s.pos += 2;
            else if (tag == ETF_INTEGER)
              s.pos += 5;
            else
              break;
            f->left--;
          }
        }
        f->left--;
        /* a map's children alternate key, value: left is odd at a key */
        if (f->kind == F_MAP && (f->left & 1)) push_key(&s, f);
      }
      if (!have(&s, 1)) {
        fail(&s, OTPC_ETRUNC, s.pos);
        break;
      }
      check_one(&s);
    }
  }
  if (s.stack != s.small) otpc__free(s.stack);
  if (s.keys != s.small_keys) otpc__free(s.keys);
  if (s.err != 0) {
    if (err) {
      err->code = s.err;
      err->offset = s.err_pos;
    }
    return s.err;
  }
  if (nrefs) *nrefs = s.ncached;
  return (long)s.pos;
}

long otpc_term_validate(const void *data, size_t len,
                        const otpc_decode_opts_t *opts,
                        otpc_decode_error_t *err) {
  return validate(data, len, opts, NULL, 0, NULL, err);
}

long otpc__term_validate_cached(const void *data, size_t len,
                                const otpc_atom_t *cache, uint32_t ncache,
                                size_t *nrefs, otpc_decode_error_t *err) {
  static const otpc_atom_t none[1];
  return validate(data, len, NULL, cache ? cache : none, ncache, nrefs, err);
}

/* ------------------------------------------------------------------------
 * Resolving atom cache references (distribution)
 *
 * A checked term is copied token by token into a new buffer; a cache ref
 * becomes its atom written out. Only a fun's Size field counts bytes of
 * what follows it, so each open fun remembers where it ends in the input
 * and where it starts in the output, and gets its size patched when the
 * walk reaches its end.
 * ------------------------------------------------------------------------ */

typedef struct ubuf {
  otpc_buf_t *buf;
  size_t len, cap;
  int err;
} ubuf_t;

static uint8_t *uroom(ubuf_t *u, size_t n) {
  if (u->err) return NULL;
  if (n > u->cap - u->len) {
    size_t cap = u->cap;
    while (n > cap - u->len) cap = cap < ((size_t)1 << 20) ? cap * 2 : cap + cap / 2;
    otpc_buf_t *b = otpc__buf_resize(u->buf, cap);
    if (b == NULL) {
      u->err = OTPC_ENOMEM;
      return NULL;
    }
    u->buf = b;
    u->cap = cap;
  }
  uint8_t *at = otpc_buf_mutable_data(u->buf) + u->len;
  u->len += n;
  return at;
}

static void uput(ubuf_t *u, const uint8_t *p, size_t n) {
  uint8_t *at = uroom(u, n);
  if (at) memcpy(at, p, n);
}

/* Copies the atom at *pp (or resolves its cache ref) and moves past it. */
static void uatom(ubuf_t *u, const uint8_t **pp, const otpc_atom_t *cache) {
  const uint8_t *p = *pp;
  if (p[0] != ETF_ATOM_CACHE_REF) {
    const uint8_t *end = otpc__term_skip(p);
    uput(u, p, (size_t)(end - p));
    *pp = end;
    return;
  }
  size_t n;
  const char *text = otpc_atom_name(cache[p[1]], &n);
  uint8_t *at = uroom(u, n + 3);
  if (at != NULL) {
    if (n < 256) {
      at[0] = ETF_SMALL_ATOM_UTF8;
      at[1] = (uint8_t)n;
      memcpy(at + 2, text, n);
      u->len--;
    } else {
      at[0] = ETF_ATOM_UTF8;
      put_be16(at + 1, (uint16_t)n);
      memcpy(at + 3, text, n);
    }
  }
  *pp = p + 2;
}

typedef struct ufun {
  const uint8_t *in_end;
  size_t out_start;
} ufun_t;

otpc_buf_t *otpc__term_uncache(const uint8_t *data, size_t len,
                               const otpc_atom_t *cache, int *err) {
  ubuf_t u = {NULL, 0, 0, 0};
  ufun_t *funs = NULL;
  size_t nfun = 0, capfun = 0;
  size_t first = len + len / 8 + 16;
  u.buf = otpc__buf_resize(NULL, first);
  if (u.buf == NULL) u.err = OTPC_ENOMEM;
  u.cap = first;
  uint8_t v = ETF_VERSION;
  uput(&u, &v, 1);
  const uint8_t *p = data, *end = data + len;
  while (p < end && u.err == 0) {
    const uint8_t *q;
    switch (p[0]) {
      case ETF_ATOM_CACHE_REF: uatom(&u, &p, cache); break;
      case ETF_PID: case ETF_NEW_PID: case ETF_PORT: case ETF_NEW_PORT:
      case ETF_V4_PORT: case ETF_REFERENCE: {
        static const uint8_t tail[256] = {
            [ETF_PID] = 9, [ETF_NEW_PID] = 12, [ETF_PORT] = 5,
            [ETF_NEW_PORT] = 8, [ETF_V4_PORT] = 12, [ETF_REFERENCE] = 5};
        size_t t = tail[p[0]];
        uput(&u, p, 1);
        p++;
        uatom(&u, &p, cache);
        uput(&u, p, t);
        p += t;
        break;
      }
      case ETF_NEW_REFERENCE: case ETF_NEWER_REFERENCE: {
        size_t t = (p[0] == ETF_NEW_REFERENCE ? 1 : 4) + 4 * (size_t)get_be16(p + 1);
        uput(&u, p, 3);
        p += 3;
        uatom(&u, &p, cache);
        uput(&u, p, t);
        p += t;
        break;
      }
      case ETF_SMALL_TUPLE: uput(&u, p, 2); p += 2; break;
      case ETF_LARGE_TUPLE: case ETF_MAP: case ETF_LIST:
        uput(&u, p, 5);
        p += 5;
        break;
      case ETF_EXPORT:
        uput(&u, p, 1);
        p++;
        uatom(&u, &p, cache);
        uatom(&u, &p, cache);
        uput(&u, p, 2);
        p += 2;
        break;
      case ETF_NEW_FUN: {
        if (nfun == capfun) {
          capfun = capfun ? capfun * 2 : 8;
          ufun_t *bigger = otpc__realloc(funs, capfun * sizeof *funs);
          if (bigger == NULL) {
            u.err = OTPC_ENOMEM;
            break;
          }
          funs = bigger;
        }
        funs[nfun].in_end = p + 1 + get_be32(p + 1);
        funs[nfun].out_start = u.len;
        nfun++;
        uput(&u, p, 30);
        p += 30;
        uatom(&u, &p, cache); /* Module */
        for (int i = 0; i < 2; i++) { /* OldIndex, OldUniq */
          size_t n = p[0] == ETF_SMALL_INTEGER ? 2 : 5;
          uput(&u, p, n);
          p += n;
        }
        size_t t = p[0] == ETF_PID ? 9 : 12;
        uput(&u, p, 1);
        p++;
        uatom(&u, &p, cache);
        uput(&u, p, t);
        p += t;
        break;
      }
      default:
        q = otpc__term_skip(p);
        uput(&u, p, (size_t)(q - p));
        p = q;
        break;
    }
    while (u.err == 0 && nfun > 0 && funs[nfun - 1].in_end == p) {
      size_t at = funs[--nfun].out_start;
      put_be32(otpc_buf_mutable_data(u.buf) + at + 1, (uint32_t)(u.len - at - 1));
    }
  }
  otpc__free(funs);
  if (u.err != 0) {
    otpc_buf_unref(u.buf);
    if (err) *err = u.err;
    return NULL;
  }
  return otpc__buf_shrink(u.buf, u.len);
}

/* Inflates a compressed term (data at the 80 tag) into a new buffer that
 * starts with the version byte. */
static int inflate_term(const uint8_t *data, size_t len, size_t max,
                        otpc_buf_t **out, otpc_decode_error_t *err) {
  if (len < 5) {
    err->code = OTPC_ETRUNC;
    err->offset = 1;
    return OTPC_ETRUNC;
  }
  size_t size = get_be32(data + 1);
  if (size > max || size == 0) {
    err->code = OTPC_ELENGTH;
    err->offset = 2;
    return OTPC_ELENGTH;
  }
  otpc_buf_t *buf = otpc_buf_new(NULL, size + 1);
  if (buf == NULL) {
    err->code = OTPC_ENOMEM;
    err->offset = 0;
    return OTPC_ENOMEM;
  }
  uint8_t *dst = otpc_buf_mutable_data(buf);
  dst[0] = ETF_VERSION;
  z_stream z;
  memset(&z, 0, sizeof z);
  int rc = inflateInit(&z);
  if (rc == Z_OK) {
    z.next_in = (Bytef *)(data + 5);
    z.avail_in = (uInt)(len - 5 > UINT32_MAX ? UINT32_MAX : len - 5);
    z.next_out = dst + 1;
    z.avail_out = (uInt)size;
    rc = inflate(&z, Z_FINISH);
    inflateEnd(&z);
  }
  /* The stream must end exactly at the stated size and the input's end. */
  if (rc != Z_STREAM_END || z.avail_out != 0 || z.avail_in != 0 ||
      len - 5 > UINT32_MAX) {
    otpc_buf_unref(buf);
    err->code = rc == Z_STREAM_END && z.avail_in != 0 ? OTPC_ETRAIL
                                                      : OTPC_EZLIB;
    err->offset = 5;
    return err->code;
  }
  *out = buf;
  return 0;
}

int otpc_term_decode(const void *data, size_t len,
                     const otpc_decode_opts_t *opts, otpc_term_t *term,
                     otpc_buf_t **owned, otpc_decode_error_t *err) {
  otpc_decode_error_t local;
  if (err == NULL) err = &local;
  *owned = NULL;
  const uint8_t *p = data;
  if (p == NULL || len < 1) {
    err->code = p == NULL ? OTPC_EINVAL : OTPC_ETRUNC;
    err->offset = 0;
    return err->code;
  }
  if (p[0] != ETF_VERSION) {
    err->code = OTPC_EVERSION;
    err->offset = 0;
    return OTPC_EVERSION;
  }
  otpc_buf_t *buf = NULL;
  if (len >= 2 && p[1] == ETF_COMPRESSED) {
    size_t max = opts && opts->max_inflate ? opts->max_inflate
                                           : OTPC_TERM_DEFAULT_MAX_INFLATE;
    int rc = inflate_term(p + 1, len - 1, max, &buf, err);
    if (rc != 0) return rc;
    p = otpc_buf_data(buf);
    len = otpc_buf_size(buf);
  }
  long used = otpc_term_validate(p + 1, len - 1, opts, err);
  if (used >= 0 && (size_t)used != len - 1) {
    err->code = OTPC_ETRAIL;
    err->offset = (size_t)used + 1;
    used = OTPC_ETRAIL;
  } else if (used < 0) {
    err->offset += 1;
  }
  if (used < 0) {
    otpc_buf_unref(buf);
    return (int)used;
  }
  *term = term_at(p + 1);
  *owned = buf;
  return 0;
}

int otpc_buf_decode(const void *data, size_t len,
                    const otpc_decode_opts_t *opts, otpc_buf_t **out,
                    otpc_decode_error_t *err) {
  otpc_term_t t;
  otpc_buf_t *owned;
  int rc = otpc_term_decode(data, len, opts, &t, &owned, err);
  if (rc != 0) return rc;
  if (owned == NULL) {
    owned = otpc_buf_new(data, len);
    if (owned == NULL) {
      if (err) {
        err->code = OTPC_ENOMEM;
        err->offset = 0;
      }
      return OTPC_ENOMEM;
    }
  }
  *out = owned;
  return 0;
}

int otpc_term_compress(otpc_term_t t, int level, otpc_buf_t **out) {
  if (t.kind == TERM_NONE || level < -1 || level > 9) return OTPC_EINVAL;
  otpc_builder_t b;
  otpc_builder_init(&b);
  otpc_build_term(&b, t);
  int rc;
  otpc_buf_t *plain = otpc_builder_finish(&b, &rc);
  if (plain == NULL) return rc;
  const uint8_t *src = otpc_buf_data(plain) + 1;
  size_t n = otpc_buf_size(plain) - 1;
  uLong bound = compressBound((uLong)n);
  otpc_buf_t *z = n <= UINT32_MAX ? otpc_buf_new(NULL, 6 + bound) : NULL;
  if (z == NULL) {
    otpc_buf_unref(plain);
    return n <= UINT32_MAX ? OTPC_ENOMEM : OTPC_ELENGTH;
  }
  uint8_t *dst = otpc_buf_mutable_data(z);
  uLongf zlen = bound;
  rc = compress2(dst + 6, &zlen, src, (uLong)n, level);
  /* As term_to_binary does: keep the plain form unless compressing won. */
  if (rc != Z_OK || 6 + zlen >= n + 1) {
    otpc_buf_unref(z);
    *out = plain;
    return rc == Z_OK ? 0 : OTPC_ENOMEM;
  }
  dst[0] = ETF_VERSION;
  dst[1] = ETF_COMPRESSED;
  put_be32(dst + 2, (uint32_t)n);
  otpc_buf_unref(plain);
  *out = otpc__buf_shrink(z, 6 + zlen);
  return 0;
}
