/*
 * phash2.c: erlang:phash2/1,2 computed on encoded terms, bit for bit as
 * OTP 25 computes it (make_hash2() in erts), so that a C node and an
 * Erlang node shard data the same way.
 *
 * The hash walks the term in the order the bytes are laid out, which is
 * also the order erts hashes in, with one running 32-bit state. Terms are
 * values, not bytes: every encoding of a value hashes the same (a SMALL_BIG
 * that fits 27 bits hashes as a small integer, STRING_EXT as the list of
 * its bytes, a list split over several LIST_EXT segments as one list, a
 * Latin-1 atom as its UTF-8 twin).
 *
 * The facts of the algorithm, as erts has them:
 *   - mixing is Bob Jenkins' lookup2 mix() of (k + x, k + y, hash), where
 *     k is a multiple of the golden ratio 0x9e3779b9 chosen per type;
 *   - integers in [-2^27, 2^27) mix their 32-bit value (negative ones
 *     mix their absolute value first); larger ones mix their magnitude in
 *     64-bit digits, low word then high word, with a sign constant;
 *   - an atom's value is hashpjw of its text (atom.c); an atom met while
 *     the state is zero becomes the state unmixed, and [] then becomes a
 *     fixed value;
 *   - lists mix runs of byte elements (0..255) four at a time, then each
 *     other element, then the tail ([] for a proper list);
 *   - maps hash each key-value pair from a zero state and mix the xor of
 *     those, so the order of the pairs does not matter;
 *   - binaries use lookup2's block hash seeded with the state;
 *   - pids mix only their number, ports their 64-bit number, references
 *     only their first word: node names and creations do not count.
 *
 * Nesting is walked with an explicit stack, never with recursion on the
 * term: 32 frames live on the C stack and deeper terms grow it on the
 * heap. If the heap cannot grow, the container is hashed by a nested call
 * with a fresh on-stack frame array (about 600 bytes of C stack per 32
 * levels), so the result is always right and nothing aborts; only a term
 * nested very deeply while memory is exhausted costs C stack.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "term_int.h"

/* The golden ratio times k, mod 2^32: erts' HCONST_k. */
#define HC(k) ((uint32_t)(0x9e3779b9u * (uint32_t)(k)))

/* erts' tag value for [] (NIL_DEF), mixed in when [] is not first. */
#define NIL_DEF 2u
/* The hash of [] when it starts the hash (erts uses a fixed value). */
#define NIL_FIRST 3468870702u

/* ------------------------------------------------------------------------
 * Mixing (Bob Jenkins' lookup2, public domain)
 * ------------------------------------------------------------------------ */

// clang-format off
#define MIX(a, b, c)                                                          \
  do {                                                                        \
    a -= b; a -= c; a ^= (c >> 13);                                           \
    b -= c; b -= a; b ^= (a << 8);                                            \
    c -= a; c -= b; c ^= (b >> 13);                                           \
    a -= b; a -= c; a ^= (c >> 12);                                           \
    b -= c; b -= a; b ^= (a << 16);                                           \
    c -= a; c -= b; c ^= (b >> 5);                                            \
    a -= b; a -= c; a ^= (c >> 3);                                            \
    b -= c; b -= a; b ^= (a << 10);                                           \
    c -= a; c -= b; c ^= (b >> 15);                                           \
  } while (0)
// clang-format on

static inline uint32_t mix2(uint32_t h, uint32_t x, uint32_t y, uint32_t k) {
  uint32_t a = k + x, b = k + y;
  MIX(a, b, h);
  return h;
}

static inline uint32_t mix1(uint32_t h, uint32_t x, uint32_t k) {
  return mix2(h, x, 0, k);
}

static inline uint32_t le32(const uint8_t *k) {
  return k[0] | ((uint32_t)k[1] << 8) | ((uint32_t)k[2] << 16) |
         ((uint32_t)k[3] << 24);
}

/* lookup2's hash of a byte block, seeded with initval. */
static uint32_t block_hash(const uint8_t *k, size_t length, uint32_t initval) {
  uint32_t a = HC(1), b = HC(1), c = initval;
  size_t len = length;

  while (len >= 12) {
    a += le32(k);
    b += le32(k + 4);
    c += le32(k + 8);
    MIX(a, b, c);
    k += 12;
    len -= 12;
  }
  c += (uint32_t)length;
  // clang-format off
  switch (len) { /* every case falls through */
  case 11: c += (uint32_t)k[10] << 24; /* fall through */
  case 10: c += (uint32_t)k[9] << 16;  /* fall through */
  case 9: c += (uint32_t)k[8] << 8;    /* fall through */
  case 8: b += (uint32_t)k[7] << 24;   /* fall through */
  case 7: b += (uint32_t)k[6] << 16;   /* fall through */
  case 6: b += (uint32_t)k[5] << 8;    /* fall through */
  case 5: b += k[4];                   /* fall through */
  case 4: a += (uint32_t)k[3] << 24;   /* fall through */
  case 3: a += (uint32_t)k[2] << 16;   /* fall through */
  case 2: a += (uint32_t)k[1] << 8;    /* fall through */
  case 1: a += k[0];                   /* fall through */
  default: break;
  }
  // clang-format on
  MIX(a, b, c);
  return c;
}

/* ------------------------------------------------------------------------
 * Scalars
 * ------------------------------------------------------------------------ */

/* hashpjw over the atom's characters, as erts' atom table computes it on
 * the UTF-8 text: a two-byte sequence for U+0080..U+00FF counts as the one
 * Latin-1 byte, everything else byte by byte. Latin-1 text therefore
 * hashes its bytes as they are. */
static uint32_t atom_hvalue(const uint8_t *s, size_t len, bool latin1) {
  uint32_t h = 0, g;
  for (size_t i = 0; i < len; i++) {
    uint8_t v = s[i];
    if (!latin1 && i + 1 < len && (v & 0xFE) == 0xC2 &&
        (s[i + 1] & 0xC0) == 0x80) {
      v = (uint8_t)((v << 6) | (s[i + 1] & 0x3F));
      i++;
    }
    h = (h << 4) + v;
    if ((g = h & 0xf0000000u) != 0) {
      h ^= g >> 24;
      h ^= g;
    }
  }
  return h;
}

/* Atom at p: its hvalue, and the byte after it. */
static uint32_t atom_at(const uint8_t *p, const uint8_t **end) {
  size_t len;
  const uint8_t *s;
  bool latin1;
  switch (p[0]) {
    case ETF_ATOM:
      len = get_be16(p + 1);
      s = p + 3;
      latin1 = true;
      break;
    case ETF_ATOM_UTF8:
      len = get_be16(p + 1);
      s = p + 3;
      latin1 = false;
      break;
    case ETF_SMALL_ATOM:
      len = p[1];
      s = p + 2;
      latin1 = true;
      break;
    case ETF_SMALL_ATOM_UTF8:
      len = p[1];
      s = p + 2;
      latin1 = false;
      break;
    default: { /* cannot happen in checked terms; stay well-defined */
      const uint8_t *t;
      if (!otpc__term_atom_raw(term_at(p), &t, &len, &latin1)) {
        *end = otpc__term_skip(p);
        return 0;
      }
      *end = otpc__term_skip(p);
      return atom_hvalue(t, len, latin1);
    }
  }
  *end = s + len;
  return atom_hvalue(s, len, latin1);
}

static inline const uint8_t *skip_atom(const uint8_t *p) {
  switch (p[0]) {
    case ETF_ATOM:
    case ETF_ATOM_UTF8: return p + 3 + get_be16(p + 1);
    case ETF_SMALL_ATOM:
    case ETF_SMALL_ATOM_UTF8: return p + 2 + p[1];
    default: return otpc__term_skip(p);
  }
}

static inline uint32_t hash_atom_value(uint32_t hash, uint32_t hv) {
  return hash == 0 ? hv : mix1(hash, hv, HC(3));
}

static inline uint32_t hash_nil(uint32_t hash) {
  return hash == 0 ? NIL_FIRST : mix1(hash, NIL_DEF, HC(2));
}

static inline uint32_t hash_small(uint32_t hash, int32_t v) {
  if (v < 0) hash = mix1(hash, (uint32_t)0 - (uint32_t)v, HC(1));
  return mix1(hash, (uint32_t)v, HC(1));
}

/* Integer as sign and little-endian magnitude (high zero bytes allowed). */
static uint32_t hash_int_mag(uint32_t hash, bool neg, const uint8_t *mag,
                             size_t n) {
  while (n > 0 && mag[n - 1] == 0) n--;
  if (n <= 4) {
    uint32_t m = 0;
    for (size_t i = n; i-- > 0;) m = (m << 8) | mag[i];
    /* [-2^27, 2^27) hashes as a 32-bit value */
    if (m < (1u << 27) || (neg && m == (1u << 27)))
      return hash_small(hash, neg ? (int32_t)(0u - m) : (int32_t)m);
  }
  uint32_t con = neg ? HC(10) : HC(11);
  for (size_t i = 0; i < n; i += 8) {
    uint32_t w[2] = {0, 0};
    for (size_t j = 0; j < 8 && i + j < n; j++)
      w[j / 4] |= (uint32_t)mag[i + j] << (8 * (j % 4));
    hash = mix2(hash, w[0], w[1], con);
  }
  return hash;
}

static inline uint32_t hash_int64(uint32_t hash, int64_t v) {
  if (v >= -(1 << 27) && v < (1 << 27)) return hash_small(hash, (int32_t)v);
  uint64_t m = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  return mix2(hash, (uint32_t)m, (uint32_t)(m >> 32), v < 0 ? HC(10) : HC(11));
}

static uint32_t hash_double(uint32_t hash, double d) {
  uint64_t bits;
  if (d == 0.0) d = 0.0; /* -0.0 hashes as 0.0 */
  memcpy(&bits, &d, sizeof bits);
  return mix2(hash, (uint32_t)(bits >> 32), (uint32_t)bits, HC(12));
}

/* A binary of nbytes whole bytes followed by tail_bits (0..7) bits taken
 * from the high end of data[nbytes]. */
static uint32_t hash_bits(uint32_t hash, const uint8_t *data, size_t nbytes,
                          unsigned tail_bits) {
  uint32_t con = HC(13) + hash;
  uint32_t sz = (uint32_t)nbytes; /* erts truncates the count to 32 bits */
  if (sz == 0 && tail_bits == 0) return con;
  hash = block_hash(data, sz, con);
  if (tail_bits > 0)
    hash = mix2(hash, tail_bits, (uint32_t)data[sz] >> (8 - tail_bits), HC(15));
  return hash;
}

/* If the term at p is an integer in 0..255 (however encoded), its value
 * in *v and its size in *size. */
static bool byte_elem(const uint8_t *p, uint32_t *v, size_t *size) {
  switch (p[0]) {
    case ETF_SMALL_INTEGER:
      *v = p[1];
      *size = 2;
      return true;
    case ETF_INTEGER: {
      uint32_t x = get_be32(p + 1);
      *v = x;
      *size = 5;
      return x <= 255;
    }
    case ETF_SMALL_BIG:
    case ETF_LARGE_BIG: {
      bool small = p[0] == ETF_SMALL_BIG;
      size_t n = small ? p[1] : get_be32(p + 1);
      const uint8_t *m = p + (small ? 3 : 6);
      bool neg = m[-1] != 0;
      size_t used = n;
      while (used > 0 && m[used - 1] == 0) used--;
      *size = (size_t)(m - p) + n;
      *v = used ? m[0] : 0;
      return used == 0 || (used == 1 && !neg);
    }
    default: return false;
  }
}

/* Mixes one byte element into a list run (sh holds up to four bytes). */
static inline uint32_t run_byte(uint32_t hash, uint32_t *sh, uint8_t *c,
                                uint32_t v) {
  *sh = (*sh << 8) + v;
  if (*c == 3) {
    hash = mix1(hash, *sh, HC(4));
    *c = 0;
    *sh = 0;
  } else {
    (*c)++;
  }
  return hash;
}

static inline uint32_t run_flush(uint32_t hash, uint32_t *sh, uint8_t *c) {
  if (*c > 0) hash = mix1(hash, *sh, HC(4));
  *c = 0;
  *sh = 0;
  return hash;
}

/* ------------------------------------------------------------------------
 * The walk
 * ------------------------------------------------------------------------ */

enum { F_SEQ, F_LIST, F_MAP };

/* One open container. */
typedef struct hframe {
  uint32_t left; /* SEQ: elements after the current one; LIST: elements of
                    this segment still to come; MAP: pairs still to hash */
  uint8_t kind;  /* F_SEQ, F_LIST or F_MAP */
  uint8_t c;     /* LIST: bytes in the run; MAP: 1 once the key is done */
  uint32_t a;    /* LIST: the run; MAP: the hash before the map */
  uint32_t b;    /* MAP: the xor of the enclosing map's pairs */
} hframe_t;

#define HSTACK_INLINE 32

typedef struct hstack {
  hframe_t *f;
  uint32_t n, cap;
  hframe_t inl[HSTACK_INLINE];
} hstack_t;

static void hstack_init(hstack_t *s) {
  s->f = s->inl;
  s->n = 0;
  s->cap = HSTACK_INLINE;
}

static void hstack_free(hstack_t *s) {
  if (s->f != s->inl) otpc__free(s->f);
}

/* Room for one more frame; false if the heap would not give it. */
static bool hstack_room(hstack_t *s) {
  if (OTPC_LIKELY(s->n < s->cap)) return true;
  if (s->cap > UINT32_MAX / 2 / sizeof(hframe_t)) return false;
  uint32_t cap = s->cap * 2;
  hframe_t *f;
  if (s->f == s->inl) {
    f = otpc__malloc(cap * sizeof *f);
    if (f) memcpy(f, s->inl, sizeof s->inl);
  } else {
    f = otpc__realloc(s->f, cap * sizeof *f);
  }
  if (!f) return false;
  s->f = f;
  s->cap = cap;
  return true;
}

/* Hashes the term at p starting from state hash; *endp gets the byte
 * after it. */
static uint32_t hash_term(const uint8_t *p, uint32_t hash,
                          const uint8_t **endp) {
  hstack_t st;
  hframe_t *f;
  uint32_t xr = 0; /* xor of the pairs of the innermost open map */

  hstack_init(&st);

next_term:
  switch (p[0]) {
    case ETF_SMALL_INTEGER:
      hash = hash_small(hash, p[1]);
      p += 2;
      break;
    case ETF_INTEGER:
      hash = hash_int64(hash, (int32_t)get_be32(p + 1));
      p += 5;
      break;
    case ETF_SMALL_BIG:
      hash = hash_int_mag(hash, p[2] != 0, p + 3, p[1]);
      p += 3 + p[1];
      break;
    case ETF_LARGE_BIG: {
      uint32_t n = get_be32(p + 1);
      hash = hash_int_mag(hash, p[5] != 0, p + 6, n);
      p += 6 + (size_t)n;
      break;
    }
    case ETF_NEW_FLOAT: {
      uint64_t bits = get_be64(p + 1);
      double d;
      memcpy(&d, &bits, sizeof d);
      hash = hash_double(hash, d);
      p += 9;
      break;
    }
    case ETF_FLOAT: {
      double d = 0.0;
      otpc_term_get_double(term_at(p), &d);
      hash = hash_double(hash, d);
      p += 32;
      break;
    }
    case ETF_ATOM:
    case ETF_SMALL_ATOM:
    case ETF_ATOM_UTF8:
    case ETF_SMALL_ATOM_UTF8: {
      uint32_t hv = atom_at(p, &p);
      hash = hash_atom_value(hash, hv);
      break;
    }
    case ETF_NIL:
      hash = hash_nil(hash);
      p += 1;
      break;
    case ETF_BINARY: {
      uint32_t n = get_be32(p + 1);
      hash = hash_bits(hash, p + 5, n, 0);
      p += 5 + (size_t)n;
      break;
    }
    case ETF_BIT_BINARY: {
      uint32_t n = get_be32(p + 1);
      unsigned bits = p[5];
      if (n == 0) /* no bytes: an empty bit string whatever bits says */
        hash = hash_bits(hash, p + 6, 0, 0);
      else if (bits >= 8 || bits == 0)
        hash = hash_bits(hash, p + 6, n, 0);
      else
        hash = hash_bits(hash, p + 6, n - 1, bits);
      p += 6 + (size_t)n;
      break;
    }
    case ETF_PID:
    case ETF_NEW_PID: {
      const uint8_t *q = skip_atom(p + 1);
      hash = mix1(hash, get_be32(q), HC(5));
      p = q + (p[0] == ETF_PID ? 9 : 12);
      break;
    }
    case ETF_PORT:
    case ETF_NEW_PORT: {
      const uint8_t *q = skip_atom(p + 1);
      hash = mix2(hash, get_be32(q), 0, HC(6));
      p = q + (p[0] == ETF_PORT ? 5 : 8);
      break;
    }
    case ETF_V4_PORT: {
      const uint8_t *q = skip_atom(p + 1);
      uint64_t id = get_be64(q);
      hash = mix2(hash, (uint32_t)id, (uint32_t)(id >> 32), HC(6));
      p = q + 12;
      break;
    }
    case ETF_REFERENCE: {
      const uint8_t *q = skip_atom(p + 1);
      hash = mix1(hash, get_be32(q), HC(7));
      p = q + 5;
      break;
    }
    case ETF_NEW_REFERENCE:
    case ETF_NEWER_REFERENCE: {
      uint32_t words = get_be16(p + 1);
      const uint8_t *q = skip_atom(p + 3);
      q += p[0] == ETF_NEW_REFERENCE ? 1 : 4;
      hash = mix1(hash, words ? get_be32(q) : 0, HC(7));
      p = q + 4 * (size_t)words;
      break;
    }
    case ETF_EXPORT: {
      const uint8_t *q;
      uint32_t hm = atom_at(p + 1, &q);
      uint32_t hf = atom_at(q, &q);
      uint32_t arity = q[0] == ETF_SMALL_INTEGER ? q[1] : get_be32(q + 1);
      hash = mix2(hash, arity, hm, HC(1));
      hash = mix1(hash, hf, HC(14));
      p = q + (q[0] == ETF_SMALL_INTEGER ? 2 : 5);
      break;
    }
    case ETF_NEW_FUN: {
      /* Size, Arity, Uniq[16], Index, NumFree, Module, OldIndex, OldUniq,
       * Pid, free variables */
      uint32_t index = get_be32(p + 22);
      uint32_t num_free = get_be32(p + 26);
      const uint8_t *q;
      uint32_t hm = atom_at(p + 30, &q);
      q = otpc__term_skip(q); /* OldIndex */
      uint32_t old_uniq = q[0] == ETF_SMALL_INTEGER ? q[1] : get_be32(q + 1);
      q = otpc__term_skip(q);
      q = otpc__term_skip(q); /* Pid */
      hash = mix2(hash, num_free, hm, HC(1));
      hash = mix2(hash, index, old_uniq, HC(1));
      if (num_free == 0) {
        p = q;
        break;
      }
      if (num_free > 1) {
        if (OTPC_UNLIKELY(!hstack_room(&st))) { /* nest, see the top */
          for (uint32_t i = 0; i < num_free; i++) hash = hash_term(q, hash, &q);
          p = q;
          break;
        }
        st.f[st.n++] = (hframe_t){num_free - 1, F_SEQ, 0, 0, 0};
      }
      p = q;
      goto next_term;
    }
    case ETF_SMALL_TUPLE:
    case ETF_LARGE_TUPLE: {
      bool small = p[0] == ETF_SMALL_TUPLE;
      uint32_t arity = small ? p[1] : get_be32(p + 1);
      if (arity > 1) {
        if (OTPC_UNLIKELY(!hstack_room(&st))) {
          hash = hash_term(p, hash, &p);
          break;
        }
        st.f[st.n++] = (hframe_t){arity - 1, F_SEQ, 0, 0, 0};
      }
      hash = mix1(hash, arity, HC(9));
      p += small ? 2 : 5;
      if (arity == 0) break;
      goto next_term;
    }
    case ETF_MAP: {
      uint32_t pairs = get_be32(p + 1);
      if (pairs > 0 && OTPC_UNLIKELY(!hstack_room(&st))) {
        hash = hash_term(p, hash, &p);
        break;
      }
      hash = mix1(hash, pairs, HC(16));
      p += 5;
      if (pairs == 0) break;
      st.f[st.n++] = (hframe_t){pairs, F_MAP, 0, hash, xr};
      hash = 0;
      xr = 0;
      goto next_term;
    }
    case ETF_LIST:
      if (OTPC_UNLIKELY(!hstack_room(&st))) {
        hash = hash_term(p, hash, &p);
        break;
      }
      st.f[st.n++] = (hframe_t){0, F_LIST, 0, 0, 0};
      goto list_resume; /* the list is the tail of an empty segment */
    case ETF_STRING: {
      uint32_t n = get_be16(p + 1), sh = 0;
      uint8_t c = 0;
      for (uint32_t i = 0; i < n; i++) hash = run_byte(hash, &sh, &c, p[3 + i]);
      hash = run_flush(hash, &sh, &c);
      hash = hash_nil(hash);
      p += 3 + (size_t)n;
      break;
    }
    default: /* not in checked terms (ATOM_CACHE_REF, LOCAL, old FUN) */
      p = otpc__term_skip(p);
      break;
  }

  /* The term before p is done: go back to the innermost open container. */
done:
  while (st.n > 0) {
    f = &st.f[st.n - 1];
    switch (f->kind) {
      case F_SEQ:
        if (--f->left == 0) st.n--; /* the next element is the last */
        goto next_term;
      case F_MAP:
        if (f->c == 0) { /* key done, now its value */
          f->c = 1;
          goto next_term;
        }
        xr ^= hash;
        hash = 0;
        if (--f->left > 0) {
          f->c = 0;
          goto next_term;
        }
        hash = mix1(f->a, xr, HC(19));
        xr = f->b;
        st.n--;
        continue;
      case F_LIST: goto list_resume;
    }
  }
  hstack_free(&st);
  *endp = p;
  return hash;

  /* The innermost frame is a list and p is at its next element or, once
   * the segment is used up, at its tail. */
list_resume:
  f = &st.f[st.n - 1];
  for (;;) {
    while (f->left > 0) {
      uint32_t v;
      size_t size;
      f->left--;
      if (byte_elem(p, &v, &size)) {
        hash = run_byte(hash, &f->a, &f->c, v);
        p += size;
        continue;
      }
      hash = run_flush(hash, &f->a, &f->c);
      goto next_term; /* hash the element, then come back here */
    }
    if (p[0] == ETF_LIST) { /* the tail is another segment: same list */
      f->left = get_be32(p + 1);
      p += 5;
      continue;
    }
    if (p[0] == ETF_STRING) { /* last segment, its tail is [] */
      uint32_t n = get_be16(p + 1);
      for (uint32_t i = 0; i < n; i++)
        hash = run_byte(hash, &f->a, &f->c, p[3 + i]);
      hash = run_flush(hash, &f->a, &f->c);
      hash = hash_nil(hash);
      p += 3 + (size_t)n;
      st.n--;
      goto done;
    }
    hash = run_flush(hash, &f->a, &f->c);
    st.n--;
    goto next_term; /* the tail, [] or improper */
  }
}

/* ------------------------------------------------------------------------
 * Public
 * ------------------------------------------------------------------------ */

static uint32_t phash2_full(otpc_term_t t) {
  const uint8_t *end;
  switch (t.kind) {
    case TERM_ENCODED: return hash_term(t.p, 0, &end);
    case TERM_CHAR: return hash_int64(0, t.chr);
    default: return 0;
  }
}

uint32_t otpc_phash2(otpc_term_t t) {
  return phash2_full(t) & ((1u << 27) - 1);
}

uint32_t otpc_phash2_range(otpc_term_t t, uint64_t range) {
  uint32_t h = phash2_full(t);
  if (range == 0) return 0;
  if (range > UINT32_MAX) return h;
  return (uint32_t)(h % range);
}
