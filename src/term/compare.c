/*
 * compare.c: Erlang's term order and exact equality on encoded terms, as
 * OTP 25's erts_cmp() decides them.
 *
 * Values, not bytes, are compared: every encoding of a value compares
 * equal to the others (SMALL_BIG or INTEGER_EXT for a small integer,
 * STRING_EXT or LIST_EXT, a list split over several LIST_EXT segments,
 * Latin-1 or UTF-8 atoms, old or new pid, port and reference formats).
 *
 * The order, with the rules erts applies inside each type:
 *   number < atom < reference < fun < export fun < port < pid < tuple
 *   < map < [] < list < bit string
 *   - integers and floats compare by exact mathematical value (1 == 1.0;
 *     2^53+1 > 2^53 as a float), except in exact mode (=:= and map keys)
 *     where every integer is less than every float; 0.0 == -0.0 (OTP 25);
 *   - atoms by their characters (code points);
 *   - references by node name, creation, then their words from the last
 *     to the first, a shorter one padded with zero words;
 *   - local funs (NEW_FUN_EXT) by module, index, old uniq, the number of
 *     free variables, then the free variables; arity, uniq and the
 *     creator pid do not count; every local fun is less than every export;
 *   - export funs by module, function, arity;
 *   - ports by node name, creation, number;
 *   - pids by serial, then number, then node name, then creation (the
 *     same rule for local and remote pids, as erts' data-then-node);
 *   - tuples by arity, then elements; lists element by element, then the
 *     tails; bit strings bit by bit, then length;
 *   - maps by size, then their keys sorted in map-key order (exact mode),
 *     then their values in that key order.
 *
 * No recursion on the term: the walk keeps its state on an explicit
 * stack of records (a byte stack, 768 bytes on the C stack, grown on the
 * heap), so the common case allocates nothing. Map keys are sorted into
 * arrays of pointers kept on the same stack, by a merge sort whose
 * comparisons run on the same walk (O(n log n) key comparisons); maps
 * whose bytes are identical skip that, found by a look bounded by their
 * size in pairs so that nested maps are not rescanned at every level.
 *
 * When the heap cannot grow, maps fall back to selecting keys one by one
 * (O(n^2) comparisons, no memory) and other containers are compared by a
 * nested walk with a fresh on-stack buffer (about 1 KB of C stack per 3
 * nested maps or 40 nested tuples or lists): results are always right
 * and nothing aborts; only very deep terms under memory exhaustion cost
 * C stack.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "term_int.h"

/* Type classes in Erlang's order. */
enum {
  C_NUMBER = 1,
  C_ATOM,
  C_REF,
  C_FUN,
  C_EXPORT,
  C_PORT,
  C_PID,
  C_TUPLE,
  C_MAP,
  C_NIL,
  C_LIST,
  C_BITS
};

static inline int sign_of(int64_t d) {
  return (d > 0) - (d < 0);
}

static inline int cmp_u64(uint64_t a, uint64_t b) {
  return (a > b) - (a < b);
}

/* A LIST_EXT of no elements is its tail. */
static inline const uint8_t *skip_empty_lists(const uint8_t *p) {
  while (p[0] == ETF_LIST && get_be32(p + 1) == 0) p += 5;
  return p;
}

/* Class of each tag; 0 for tags checked terms do not hold. STRING_EXT
 * is a list unless it is empty, when it is []. */
static const uint8_t tag_class[256] = {
    [ETF_SMALL_INTEGER] = C_NUMBER,
    [ETF_INTEGER] = C_NUMBER,
    [ETF_SMALL_BIG] = C_NUMBER,
    [ETF_LARGE_BIG] = C_NUMBER,
    [ETF_NEW_FLOAT] = C_NUMBER,
    [ETF_FLOAT] = C_NUMBER,
    [ETF_ATOM] = C_ATOM,
    [ETF_SMALL_ATOM] = C_ATOM,
    [ETF_ATOM_UTF8] = C_ATOM,
    [ETF_SMALL_ATOM_UTF8] = C_ATOM,
    [ETF_REFERENCE] = C_REF,
    [ETF_NEW_REFERENCE] = C_REF,
    [ETF_NEWER_REFERENCE] = C_REF,
    [ETF_NEW_FUN] = C_FUN,
    [ETF_EXPORT] = C_EXPORT,
    [ETF_PORT] = C_PORT,
    [ETF_NEW_PORT] = C_PORT,
    [ETF_V4_PORT] = C_PORT,
    [ETF_PID] = C_PID,
    [ETF_NEW_PID] = C_PID,
    [ETF_SMALL_TUPLE] = C_TUPLE,
    [ETF_LARGE_TUPLE] = C_TUPLE,
    [ETF_MAP] = C_MAP,
    [ETF_NIL] = C_NIL,
    [ETF_STRING] = C_LIST,
    [ETF_LIST] = C_LIST,
    [ETF_BINARY] = C_BITS,
    [ETF_BIT_BINARY] = C_BITS,
};

static inline int class_of(const uint8_t *p) {
  if (OTPC_UNLIKELY(p[0] == ETF_STRING) && get_be16(p + 1) == 0) return C_NIL;
  return tag_class[p[0]];
}

/* ------------------------------------------------------------------------
 * Numbers
 * ------------------------------------------------------------------------ */

enum { N_SMALL, N_BIG, N_FLOAT };

typedef struct num {
  uint8_t kind;       /* N_SMALL: |v| < 2^63; N_BIG: larger; N_FLOAT */
  bool neg;           /* N_BIG */
  int64_t i;          /* N_SMALL */
  double d;           /* N_FLOAT */
  const uint8_t *mag; /* N_BIG: little-endian, no high zero bytes */
  size_t n;
} num_t;

static double read_double(const uint8_t *p) {
  double d = 0.0;
  if (p[0] == ETF_NEW_FLOAT) {
    uint64_t bits = get_be64(p + 1);
    memcpy(&d, &bits, sizeof d);
  } else {
    otpc_term_get_double(term_at(p), &d);
  }
  return d;
}

static void big_to_num(num_t *v, bool neg, const uint8_t *mag, size_t n) {
  while (n > 0 && mag[n - 1] == 0) n--;
  if (n < 8 || (n == 8 && mag[7] < 0x80)) {
    uint64_t m = 0;
    for (size_t k = n; k-- > 0;) m = (m << 8) | mag[k];
    v->kind = N_SMALL;
    v->i = neg ? -(int64_t)m : (int64_t)m;
    return;
  }
  v->kind = N_BIG;
  v->neg = neg;
  v->mag = mag;
  v->n = n;
}

/* Reads the number t (a char view or a number term); *end gets the byte
 * after it (NULL for a char view). */
static void num_read(otpc_term_t t, num_t *v, const uint8_t **end) {
  const uint8_t *p = t.p;
  if (t.kind == TERM_CHAR) {
    v->kind = N_SMALL;
    v->i = t.chr;
    *end = NULL;
    return;
  }
  switch (p[0]) {
    case ETF_SMALL_INTEGER:
      v->kind = N_SMALL;
      v->i = p[1];
      *end = p + 2;
      return;
    case ETF_INTEGER:
      v->kind = N_SMALL;
      v->i = (int32_t)get_be32(p + 1);
      *end = p + 5;
      return;
    case ETF_SMALL_BIG:
      big_to_num(v, p[2] != 0, p + 3, p[1]);
      *end = p + 3 + p[1];
      return;
    case ETF_LARGE_BIG: {
      uint32_t n = get_be32(p + 1);
      big_to_num(v, p[5] != 0, p + 6, n);
      *end = p + 6 + (size_t)n;
      return;
    }
    default:
      v->kind = N_FLOAT;
      v->d = read_double(p);
      *end = p + (p[0] == ETF_NEW_FLOAT ? 9 : 32);
      return;
  }
}

static int mag_cmp(const uint8_t *a, size_t na, const uint8_t *b, size_t nb) {
  if (na != nb) return na < nb ? -1 : 1;
  for (size_t k = na; k-- > 0;)
    if (a[k] != b[k]) return a[k] < b[k] ? -1 : 1;
  return 0;
}

static inline int float_cmp(double a, double b) {
  return a < b ? -1 : (a == b ? 0 : 1);
}

/* Bits [s, s + 64) of a magnitude, as a number. */
static uint64_t mag_bits(const uint8_t *mag, size_t n, size_t s) {
  uint64_t v = 0;
  for (size_t b = 0; b < 64; b += 8) {
    size_t bit = s + b, byte = bit / 8, sh = bit % 8;
    uint64_t x = 0;
    if (byte < n) x = mag[byte] >> sh;
    if (sh && byte + 1 < n) x |= (uint64_t)mag[byte + 1] << (8 - sh);
    v |= (x & 0xff) << b;
  }
  return v;
}

/* Whether any of the low s bits of a magnitude is set. */
static bool mag_low_set(const uint8_t *mag, size_t s) {
  for (size_t byte = 0; byte < s / 8; byte++)
    if (mag[byte]) return true;
  return s % 8 && (mag[s / 8] & ((1u << (s % 8)) - 1));
}

/* |integer| (a magnitude of n > 0 bytes) against |d| (finite, > 0),
 * exactly. */
static int mag_cmp_double(const uint8_t *mag, size_t n, double ad) {
  int ex;
  double fr = frexp(ad, &ex); /* ad = fr * 2^ex, fr in [0.5, 1) */
  if (ex <= 0) return 1;      /* ad < 1 <= |integer| */
  unsigned top = mag[n - 1], tb = 0;
  while (top) {
    tb++;
    top >>= 1;
  }
  size_t len = 8 * (n - 1) + tb; /* |integer| in [2^(len-1), 2^len) */
  if (len != (size_t)ex) return len < (size_t)ex ? -1 : 1;
  uint64_t m = (uint64_t)ldexp(fr, 53); /* ad = m * 2^(ex - 53) */
  if (ex <= 53) {
    uint64_t ip = m >> (53 - ex), u = mag_bits(mag, n, 0);
    bool frac = (m & ((UINT64_C(1) << (53 - ex)) - 1)) != 0;
    if (u != ip) return u < ip ? -1 : 1;
    return frac ? -1 : 0;
  }
  size_t s = (size_t)ex - 53;
  uint64_t hi = mag_bits(mag, n, s);
  if (hi != m) return hi < m ? -1 : 1;
  return mag_low_set(mag, s) ? 1 : 0;
}

/* An integer against a float, by exact value. */
static int int_cmp_double(const num_t *v, double d) {
  if (d != d) return -1; /* NaN is not in checked terms; keep an order */
  uint8_t buf[8];
  const uint8_t *mag;
  size_t n;
  bool neg;
  if (v->kind == N_SMALL) {
    if (v->i > -(INT64_C(1) << 53) && v->i < (INT64_C(1) << 53))
      return float_cmp((double)v->i, d);
    neg = v->i < 0;
    uint64_t m = neg ? (uint64_t)0 - (uint64_t)v->i : (uint64_t)v->i;
    for (n = 0; m; n++, m >>= 8) buf[n] = (uint8_t)m;
    mag = buf;
  } else {
    neg = v->neg;
    mag = v->mag;
    n = v->n;
  }
  /* a big integer is not zero, and neither is |i| >= 2^53 */
  if (neg != (d < 0)) return neg ? -1 : 1;
  if (d == 0) return neg ? -1 : 1;
  if (isinf(d)) return d > 0 ? -1 : 1;
  int c = mag_cmp_double(mag, n, fabs(d));
  return neg ? -c : c;
}

static int int_cmp(const num_t *a, const num_t *b) {
  if (a->kind == N_SMALL && b->kind == N_SMALL)
    return (a->i > b->i) - (a->i < b->i);
  if (a->kind == N_SMALL) return b->neg ? 1 : -1;
  if (b->kind == N_SMALL) return a->neg ? -1 : 1;
  if (a->neg != b->neg) return a->neg ? -1 : 1;
  int c = mag_cmp(a->mag, a->n, b->mag, b->n);
  return a->neg ? -c : c;
}

static int cmp_num(otpc_term_t x, otpc_term_t y, bool exact, const uint8_t **ea,
                   const uint8_t **eb) {
  num_t a, b;
  num_read(x, &a, ea);
  num_read(y, &b, eb);
  bool fa = a.kind == N_FLOAT, fb = b.kind == N_FLOAT;
  if (fa && fb) return float_cmp(a.d, b.d);
  if (!fa && !fb) return int_cmp(&a, &b);
  if (exact) return fa ? 1 : -1; /* integers before floats */
  return fa ? -int_cmp_double(&b, a.d) : int_cmp_double(&a, b.d);
}

/* ------------------------------------------------------------------------
 * Atoms and identifiers
 * ------------------------------------------------------------------------ */

typedef struct atext {
  const uint8_t *s;
  size_t len;
  bool latin1;
} atext_t;

/* The atom at p; returns the byte after it. */
static const uint8_t *atom_read(const uint8_t *p, atext_t *a) {
  switch (p[0]) {
    case ETF_ATOM:
    case ETF_ATOM_UTF8:
      a->len = get_be16(p + 1);
      a->s = p + 3;
      a->latin1 = p[0] == ETF_ATOM;
      return a->s + a->len;
    case ETF_SMALL_ATOM:
    case ETF_SMALL_ATOM_UTF8:
      a->len = p[1];
      a->s = p + 2;
      a->latin1 = p[0] == ETF_SMALL_ATOM;
      return a->s + a->len;
    default:
      if (!otpc__term_atom_raw(term_at(p), &a->s, &a->len, &a->latin1)) {
        a->s = p;
        a->len = 0;
        a->latin1 = true;
      }
      return otpc__term_skip(p);
  }
}

/* Next code point of valid UTF-8. */
static uint32_t utf8_next(const uint8_t *s, size_t *i) {
  uint32_t c = s[(*i)++];
  if (c < 0x80) return c;
  int more = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : 1;
  c &= 0x3F >> more;
  while (more--) c = (c << 6) | (s[(*i)++] & 0x3F);
  return c;
}

/* Atoms by code points. UTF-8 byte order is code point order, so text in
 * the same encoding compares bytewise. */
static int atom_cmp(const atext_t *a, const atext_t *b) {
  if (a->latin1 == b->latin1) {
    size_t m = a->len < b->len ? a->len : b->len;
    int c = m ? memcmp(a->s, b->s, m) : 0;
    if (c) return c < 0 ? -1 : 1;
    return cmp_u64(a->len, b->len);
  }
  size_t i = 0, k = 0;
  while (i < a->len && k < b->len) {
    uint32_t ca = a->latin1 ? a->s[i++] : utf8_next(a->s, &i);
    uint32_t cb = b->latin1 ? b->s[k++] : utf8_next(b->s, &k);
    if (ca != cb) return ca < cb ? -1 : 1;
  }
  return (i < a->len) - (k < b->len);
}

static int cmp_atoms_at(const uint8_t *x, const uint8_t *y, const uint8_t **ea,
                        const uint8_t **eb) {
  atext_t a, b;
  *ea = atom_read(x, &a);
  *eb = atom_read(y, &b);
  return atom_cmp(&a, &b);
}

typedef struct ident {
  atext_t node;
  uint32_t creation;
  uint32_t serial;  /* pids */
  uint64_t id;      /* pids, ports */
  uint32_t words;   /* references */
  const uint8_t *w; /* references: big-endian words */
} ident_t;

/* A pid, port or reference; returns the byte after it. */
static const uint8_t *ident_read(const uint8_t *p, ident_t *v) {
  const uint8_t *q;
  switch (p[0]) {
    case ETF_PID:
    case ETF_NEW_PID:
      q = atom_read(p + 1, &v->node);
      v->id = get_be32(q);
      v->serial = get_be32(q + 4);
      if (p[0] == ETF_PID) {
        v->creation = q[8];
        return q + 9;
      }
      v->creation = get_be32(q + 8);
      return q + 12;
    case ETF_PORT:
      q = atom_read(p + 1, &v->node);
      v->id = get_be32(q);
      v->creation = q[4];
      return q + 5;
    case ETF_NEW_PORT:
      q = atom_read(p + 1, &v->node);
      v->id = get_be32(q);
      v->creation = get_be32(q + 4);
      return q + 8;
    case ETF_V4_PORT:
      q = atom_read(p + 1, &v->node);
      v->id = get_be64(q);
      v->creation = get_be32(q + 8);
      return q + 12;
    case ETF_REFERENCE:
      q = atom_read(p + 1, &v->node);
      v->words = 1;
      v->w = q;
      v->creation = q[4];
      return q + 5;
    default: /* NEW_REFERENCE, NEWER_REFERENCE */
      v->words = get_be16(p + 1);
      q = atom_read(p + 3, &v->node);
      if (p[0] == ETF_NEW_REFERENCE) {
        v->creation = q[0];
        q += 1;
      } else {
        v->creation = get_be32(q);
        q += 4;
      }
      v->w = q;
      return q + 4 * (size_t)v->words;
  }
}

static int node_cmp(const ident_t *a, const ident_t *b) {
  int c = atom_cmp(&a->node, &b->node);
  return c ? c : cmp_u64(a->creation, b->creation);
}

static int ref_cmp(const ident_t *a, const ident_t *b) {
  int c = node_cmp(a, b);
  if (c) return c;
  uint32_t na = a->words, nb = b->words;
  for (; na > nb; na--) /* extra high words must be zero */
    if (get_be32(a->w + 4 * (na - 1))) return 1;
  for (; nb > na; nb--)
    if (get_be32(b->w + 4 * (nb - 1))) return -1;
  for (uint32_t k = na; k-- > 0;) {
    c = cmp_u64(get_be32(a->w + 4 * k), get_be32(b->w + 4 * k));
    if (c) return c;
  }
  return 0;
}

static int cmp_idents(int cls, const uint8_t *x, const uint8_t *y,
                      const uint8_t **ea, const uint8_t **eb) {
  ident_t a, b;
  int c;
  *ea = ident_read(x, &a);
  *eb = ident_read(y, &b);
  switch (cls) {
    case C_PID:
      if ((c = cmp_u64(a.serial, b.serial))) return c;
      if ((c = cmp_u64(a.id, b.id))) return c;
      return node_cmp(&a, &b);
    case C_PORT:
      if ((c = node_cmp(&a, &b))) return c;
      return cmp_u64(a.id, b.id);
    default: return ref_cmp(&a, &b);
  }
}

static inline uint32_t small_int_at(const uint8_t *q, const uint8_t **end) {
  if (q[0] == ETF_SMALL_INTEGER) {
    *end = q + 2;
    return q[1];
  }
  *end = q + 5;
  return get_be32(q + 1);
}

static int cmp_exports(const uint8_t *x, const uint8_t *y, const uint8_t **ea,
                       const uint8_t **eb) {
  atext_t ma, fa, mb, fb;
  const uint8_t *qa = atom_read(atom_read(x + 1, &ma), &fa);
  const uint8_t *qb = atom_read(atom_read(y + 1, &mb), &fb);
  uint32_t aa = small_int_at(qa, ea), ab = small_int_at(qb, eb);
  int c = atom_cmp(&ma, &mb);
  if (!c) c = atom_cmp(&fa, &fb);
  if (!c) c = cmp_u64(aa, ab);
  return c;
}

/* NEW_FUN_EXT: Size, Arity, Uniq[16], Index, NumFree, Module, OldIndex,
 * OldUniq, Pid, free variables. */
typedef struct lfun {
  atext_t module;
  uint32_t index, old_uniq, num_free;
  const uint8_t *env; /* first free variable */
  const uint8_t *end;
} lfun_t;

static void fun_read(const uint8_t *p, lfun_t *f) {
  const uint8_t *q;
  f->end = p + 1 + get_be32(p + 1);
  f->index = get_be32(p + 22);
  f->num_free = get_be32(p + 26);
  q = atom_read(p + 30, &f->module);
  q = otpc__term_skip(q); /* OldIndex */
  f->old_uniq = small_int_at(q, &q);
  f->env = otpc__term_skip(q); /* past Pid */
}

static void bits_read(const uint8_t *p, const uint8_t **data, size_t *whole,
                      unsigned *tail, const uint8_t **end) {
  uint32_t n = get_be32(p + 1);
  if (p[0] == ETF_BINARY) {
    *data = p + 5;
    *whole = n;
    *tail = 0;
    *end = p + 5 + (size_t)n;
    return;
  }
  unsigned bits = p[5];
  *data = p + 6;
  *end = p + 6 + (size_t)n;
  if (n == 0 || bits == 0 || bits >= 8) {
    *whole = n;
    *tail = 0;
  } else {
    *whole = n - 1;
    *tail = bits;
  }
}

/* Bit strings bit by bit, then by length. */
static int cmp_bits(const uint8_t *x, const uint8_t *y, const uint8_t **ea,
                    const uint8_t **eb) {
  const uint8_t *a, *b;
  size_t wa, wb;
  unsigned ta, tb;
  bits_read(x, &a, &wa, &ta, ea);
  bits_read(y, &b, &wb, &tb, eb);
  size_t m = wa < wb ? wa : wb;
  int c = m ? memcmp(a, b, m) : 0;
  if (c) return c < 0 ? -1 : 1;
  /* bits left after the common whole bytes, at most 7 on one side */
  uint64_t ra = (uint64_t)(wa - m) * 8 + ta, rb = (uint64_t)(wb - m) * 8 + tb;
  uint64_t common = ra < rb ? ra : rb;
  if (common > 0) {
    unsigned ba = a[m] >> (8 - common), bb = b[m] >> (8 - common);
    if (ba != bb) return ba < bb ? -1 : 1;
  }
  return cmp_u64(ra, rb);
}

/* The byte after a term of class C_NIL. */
static inline const uint8_t *nil_end(const uint8_t *p) {
  return p + (p[0] == ETF_NIL ? 1 : 3);
}

/* Skips the term at p walking at most *budget terms (nested ones count);
 * NULL when the budget runs out first. */
static const uint8_t *skip_within(const uint8_t *p, uint64_t *budget) {
  uint64_t todo = 1;
  while (todo > 0) {
    if (*budget == 0) return NULL;
    (*budget)--;
    todo--;
    switch (p[0]) {
      case ETF_SMALL_TUPLE:
        todo += p[1];
        p += 2;
        break;
      case ETF_LARGE_TUPLE:
        todo += get_be32(p + 1);
        p += 5;
        break;
      case ETF_LIST:
        todo += (uint64_t)get_be32(p + 1) + 1;
        p += 5;
        break;
      case ETF_MAP:
        todo += 2 * (uint64_t)get_be32(p + 1);
        p += 5;
        break;
      case ETF_EXPORT:
        todo += 3;
        p += 1;
        break;
      case ETF_SMALL_INTEGER: p += 2; break;
      case ETF_INTEGER: p += 5; break;
      case ETF_NIL: p += 1; break;
      case ETF_SMALL_ATOM_UTF8: p += 2 + p[1]; break;
      case ETF_STRING: p += 3 + get_be16(p + 1); break;
      case ETF_BINARY: p += 5 + get_be32(p + 1); break;
      default: p = otpc__term_skip(p); break; /* no nested terms to count */
    }
  }
  return p;
}

/* Whether x and y are the same bytes, found walking at most budget terms
 * of each; *ex and *ey get their ends then. */
static bool same_bytes(const uint8_t *x, const uint8_t *y, uint64_t budget,
                       const uint8_t **ex, const uint8_t **ey) {
  uint64_t bx = budget, by = budget;
  const uint8_t *a = skip_within(x, &bx), *b = a ? skip_within(y, &by) : NULL;
  if (!a || !b || a - x != b - y || memcmp(x, y, (size_t)(a - x)) != 0)
    return false;
  *ex = a;
  *ey = b;
  return true;
}

/* ------------------------------------------------------------------------
 * The explicit stack
 *
 * Records of different sizes on one byte stack; each knows the offset of
 * the one below. Records are addressed by offset because the stack moves
 * when it grows.
 * ------------------------------------------------------------------------ */

#define CST_INLINE 768
#define REC_NONE SIZE_MAX

enum { R_SEQ, R_LIST, R_MAP };

typedef struct rec {
  size_t prev;   /* offset of the record below, REC_NONE at the bottom */
  uint8_t kind;  /* R_* */
  uint8_t exact; /* compare the elements in exact mode */
  uint8_t state; /* R_MAP: M_* */
  uint8_t flag;  /* R_MAP: sorted key arrays follow the record */
} rec_t;

/* Tuple elements or a fun's free variables. */
typedef struct rseq {
  rec_t h;
  uint64_t left; /* elements after the one being compared */
} rseq_t;

/* One side of a list walk. */
typedef struct lside {
  const uint8_t *p; /* next element, or the tail when left is 0 */
  uint32_t left;    /* elements of this segment still to come */
  uint8_t str;      /* the segment is a STRING_EXT: p is at its bytes */
} lside_t;

typedef struct rlist {
  rec_t h;
  lside_t a, b;
} rlist_t;

/* Map states: which comparison the record waits for. M_SORT and M_SEL
 * get every result back; M_KEYS and M_VALUES only equal ones, since a
 * difference there decides the maps. */
enum { M_START, M_SORT, M_SEL, M_KEYS, M_VALUES };

typedef struct rmap {
  rec_t h;
  const uint8_t *ma, *mb;     /* the maps (their MAP_EXT tags) */
  const uint8_t *enda, *endb; /* the bytes after them, once known (with
                                 arrays: the furthest value end so far) */
  uint64_t n;                 /* pairs in each */
  uint64_t i;                 /* rank compared in KEYS and VALUES */
  uint8_t values;             /* comparing values (else keys) */
  /* merge sort of the arrays */
  uint8_t side, in_tmp;
  uint64_t w, lo, l, lend, r, rend, o;
  /* selection, when there are no arrays */
  uint8_t step;
  const uint8_t *prev[2], *cur[2], *cand, *scan;
  uint64_t scan_i;
} rmap_t;

typedef struct cstack {
  uint8_t *base;
  size_t top, cap, last;
  _Alignas(16) uint8_t inl[CST_INLINE];
} cstack_t;

static void cst_init(cstack_t *s) {
  s->base = s->inl;
  s->top = 0;
  s->cap = CST_INLINE;
  s->last = REC_NONE;
}

static void cst_free(cstack_t *s) {
  if (s->base != s->inl) otpc__free(s->base);
}

static bool cst_grow(cstack_t *s, size_t need) {
  size_t cap = s->cap;
  while (cap - s->top < need) {
    if (cap > SIZE_MAX / 2) return false;
    cap *= 2;
  }
  uint8_t *b;
  if (s->base == s->inl) {
    b = otpc__malloc(cap);
    if (b) memcpy(b, s->inl, s->top);
  } else {
    b = otpc__realloc(s->base, cap);
  }
  if (!b) return false;
  s->base = b;
  s->cap = cap;
  return true;
}

/* A new record of size bytes on top, or NULL if there is no memory. */
static inline rec_t *cst_push(cstack_t *s, size_t size, uint8_t kind,
                              bool exact) {
  size = (size + 15) & ~(size_t)15;
  if (OTPC_UNLIKELY(s->cap - s->top < size) && !cst_grow(s, size)) return NULL;
  rec_t *r = (rec_t *)(void *)(s->base + s->top);
  r->prev = s->last;
  r->kind = kind;
  r->exact = exact;
  r->state = 0;
  r->flag = 0;
  s->last = s->top;
  s->top += size;
  return r;
}

static inline rec_t *cst_top(cstack_t *s) {
  return (rec_t *)(void *)(s->base + s->last);
}

static inline void cst_pop(cstack_t *s) {
  rec_t *r = cst_top(s);
  s->top = s->last;
  s->last = r->prev;
}

/* ------------------------------------------------------------------------
 * Maps
 * ------------------------------------------------------------------------ */

static inline const uint8_t **map_keys(rmap_t *m, int side) {
  return (const uint8_t **)(void *)(m + 1) + (size_t)side * m->n;
}

static inline const uint8_t *skip_pair(const uint8_t *k) {
  return otpc__term_skip(otpc__term_skip(k));
}

static void merge_setup(rmap_t *m) {
  m->l = m->lo;
  m->lend = m->lo + m->w < m->n ? m->lo + m->w : m->n;
  m->r = m->lend;
  m->rend = m->lo + 2 * m->w < m->n ? m->lo + 2 * m->w : m->n;
  m->o = m->lo;
}

static void merge_begin(rmap_t *m) {
  m->w = 1;
  m->lo = 0;
  m->in_tmp = 0;
  merge_setup(m);
}

enum { MAP_CMP, MAP_DONE };

/*
 * Runs the comparison of two maps of the same size n > 0 until it needs
 * two terms compared: then it returns MAP_CMP with the pair in *x, *y and
 * the mode in *exact, and the result comes back as j on the next call,
 * with the ends of the pair in ea, eb when it was equal. MAP_DONE means
 * the maps are equal (enda and endb are set).
 *
 * With arrays: sort both key arrays (merge sort), compare the keys rank
 * by rank, then the values. A key compared equal leaves its value's
 * position in its slot, and the values' ends give the maps' ends, so
 * only the pairs before the last are ever skipped: a map nested in the
 * last value is walked once, however deep. Without arrays: select the
 * keys rank by rank, each the least key greater than the previous one.
 */
static int map_run(rmap_t *m, int j, const uint8_t *ea, const uint8_t *eb,
                   otpc_term_t *x, otpc_term_t *y, bool *exact) {
  const uint8_t **arr, **src, **dst;

  switch (m->h.state) {
    case M_START:
      if (!m->h.flag) goto sel_rank;
      for (int side = 0; side < 2; side++) {
        const uint8_t **k = map_keys(m, side);
        const uint8_t *p = (side ? m->mb : m->ma) + 5;
        for (uint64_t i = 0; i < m->n; i++) {
          k[i] = p;
          if (i + 1 < m->n) p = skip_pair(p);
        }
      }
      m->side = 0;
      merge_begin(m);
      goto merge;
    case M_SORT:
      arr = map_keys(m, m->side);
      src = m->in_tmp ? map_keys(m, 2) : arr;
      dst = m->in_tmp ? arr : map_keys(m, 2);
      if (j <= 0)
        dst[m->o++] = src[m->l++];
      else
        dst[m->o++] = src[m->r++];
      goto merge;
    case M_SEL:
      if (m->step == 1) { /* scan vs the previous rank's key */
        if (j <= 0) goto sel_next;
        goto sel_cand;
      }
      if (j < 0) m->cand = m->scan; /* scan vs the candidate */
      goto sel_next;
    case M_KEYS:
    case M_VALUES:
      if (m->h.flag && m->h.state == M_KEYS) { /* keep where the values are */
        map_keys(m, 0)[m->i] = ea;
        map_keys(m, 1)[m->i] = eb;
      } else if (m->h.flag) {
        if (ea > m->enda) m->enda = ea;
        if (eb > m->endb) m->endb = eb;
      }
      m->i++;
      if (m->h.flag) goto rank;
      m->prev[0] = m->cur[0];
      m->prev[1] = m->cur[1];
      goto sel_rank;
    default: return MAP_DONE;
  }

merge:
  for (;;) {
    arr = map_keys(m, m->side);
    src = m->in_tmp ? map_keys(m, 2) : arr;
    dst = m->in_tmp ? arr : map_keys(m, 2);
    if (m->l < m->lend && m->r < m->rend) {
      *x = term_at(src[m->l]);
      *y = term_at(src[m->r]);
      *exact = true;
      m->h.state = M_SORT;
      return MAP_CMP;
    }
    while (m->l < m->lend) dst[m->o++] = src[m->l++];
    while (m->r < m->rend) dst[m->o++] = src[m->r++];
    m->lo += 2 * m->w;
    if (m->lo < m->n) {
      merge_setup(m);
      continue;
    }
    m->in_tmp ^= 1; /* a pass is done */
    m->w *= 2;
    if (m->w < m->n) {
      m->lo = 0;
      merge_setup(m);
      continue;
    }
    if (m->in_tmp) memcpy(arr, dst, m->n * sizeof *arr);
    if (m->side == 1) break;
    m->side = 1;
    merge_begin(m);
  }
  m->values = 0;
  m->i = 0;

rank: /* arrays: compare rank i */
  if (m->i == m->n) {
    if (m->values) return MAP_DONE;
    m->values = 1;
    m->i = 0;
  }
  {
    /* a key, or once the keys are done, its value */
    const uint8_t *ka = map_keys(m, 0)[m->i], *kb = map_keys(m, 1)[m->i];
    if (m->values) {
      *x = term_at(ka);
      *y = term_at(kb);
      *exact = m->h.exact;
      m->h.state = M_VALUES;
    } else {
      *x = term_at(ka);
      *y = term_at(kb);
      *exact = true;
      m->h.state = M_KEYS;
    }
    return MAP_CMP;
  }

sel_rank: /* no arrays: select the keys of rank i, then compare them */
  if (m->i == m->n) {
    if (m->values) {
      m->enda = otpc__term_skip(m->ma);
      m->endb = otpc__term_skip(m->mb);
      return MAP_DONE;
    }
    m->values = 1;
    m->i = 0;
    m->prev[0] = m->prev[1] = NULL;
  }
  m->side = 0;
sel_begin:
  m->cand = NULL;
  m->scan = (m->side ? m->mb : m->ma) + 5;
  m->scan_i = 0;
sel_loop:
  if (m->scan_i == m->n) {
    /* no candidate only with duplicate keys, which checked maps lack */
    m->cur[m->side] = m->cand ? m->cand : m->prev[m->side];
    if (m->side == 0) {
      m->side = 1;
      goto sel_begin;
    }
    if (m->values) {
      *x = term_at(otpc__term_skip(m->cur[0]));
      *y = term_at(otpc__term_skip(m->cur[1]));
      *exact = m->h.exact;
      m->h.state = M_VALUES;
    } else {
      *x = term_at(m->cur[0]);
      *y = term_at(m->cur[1]);
      *exact = true;
      m->h.state = M_KEYS;
    }
    return MAP_CMP;
  }
  if (m->prev[m->side]) {
    m->step = 1;
    *x = term_at(m->scan);
    *y = term_at(m->prev[m->side]);
    *exact = true;
    m->h.state = M_SEL;
    return MAP_CMP;
  }
sel_cand:
  if (!m->cand) {
    m->cand = m->scan;
    goto sel_next;
  }
  m->step = 2;
  *x = term_at(m->scan);
  *y = term_at(m->cand);
  *exact = true;
  m->h.state = M_SEL;
  return MAP_CMP;
sel_next:
  m->scan = skip_pair(m->scan);
  m->scan_i++;
  goto sel_loop;
}

/* ------------------------------------------------------------------------
 * The walk
 * ------------------------------------------------------------------------ */

/* Moves a list side past exhausted segments: afterwards it has an
 * element (left > 0), or it is at its end: a string's end (str, an
 * implicit []) or a tail term at p. */
static void lside_norm(lside_t *s) {
  while (!s->str && s->left == 0) {
    if (s->p[0] == ETF_LIST) {
      s->left = get_be32(s->p + 1);
      s->p += 5;
    } else if (s->p[0] == ETF_STRING) {
      s->left = get_be16(s->p + 1);
      s->p += 3;
      s->str = 1;
    } else {
      break;
    }
  }
}

/* The class of a list side's tail. */
static inline int lside_tail_class(const lside_t *s) {
  return s->str ? C_NIL : class_of(s->p);
}

/*
 * Compares x and y (exact: =:= and map-key mode) and returns < 0, 0 or
 * > 0. *enda and *endb get the bytes after the terms when they are equal.
 *
 * The loop: "compare" looks at the pair; scalars settle at once, equal
 * containers push a record and go on with their first elements. When a
 * pair is equal, "done" asks the record on top for the next pair. A
 * difference unwinds the stack to a map that is sorting or selecting
 * keys (it wanted the answer), or ends the walk.
 */
static int cmp_walk(otpc_term_t x, otpc_term_t y, bool exact,
                    const uint8_t **enda, const uint8_t **endb) {
  cstack_t st;
  const uint8_t *ea = NULL, *eb = NULL;
  int j = 0;
  rec_t *r;

  cst_init(&st);

compare:
  if (x.kind == TERM_CHAR && y.kind == TERM_CHAR) {
    j = (x.chr > y.chr) - (x.chr < y.chr);
    ea = eb = NULL;
    goto settled;
  }
  if (x.kind == TERM_ENCODED) x.p = skip_empty_lists(x.p);
  if (y.kind == TERM_ENCODED) y.p = skip_empty_lists(y.p);
  if (x.kind == TERM_ENCODED && y.kind == TERM_ENCODED && x.p[0] == y.p[0]) {
    /* the most common scalars, encoded alike */
    switch (x.p[0]) {
      case ETF_SMALL_INTEGER:
        j = (x.p[1] > y.p[1]) - (x.p[1] < y.p[1]);
        ea = x.p + 2;
        eb = y.p + 2;
        goto settled;
      case ETF_SMALL_ATOM_UTF8: {
        size_t la = x.p[1], lb = y.p[1];
        int c = memcmp(x.p + 2, y.p + 2, la < lb ? la : lb);
        j = c ? (c < 0 ? -1 : 1) : (la > lb) - (la < lb);
        ea = x.p + 2 + la;
        eb = y.p + 2 + lb;
        goto settled;
      }
      case ETF_NIL:
        j = 0;
        ea = x.p + 1;
        eb = y.p + 1;
        goto settled;
      case ETF_INTEGER: {
        int32_t a = (int32_t)get_be32(x.p + 1), b = (int32_t)get_be32(y.p + 1);
        j = (a > b) - (a < b);
        ea = x.p + 5;
        eb = y.p + 5;
        goto settled;
      }
      case ETF_BINARY: {
        uint32_t la = get_be32(x.p + 1), lb = get_be32(y.p + 1);
        int c = memcmp(x.p + 5, y.p + 5, la < lb ? la : lb);
        j = c ? (c < 0 ? -1 : 1) : (la > lb) - (la < lb);
        ea = x.p + 5 + la;
        eb = y.p + 5 + lb;
        goto settled;
      }
      default: break;
    }
  }
  {
    int ca = x.kind == TERM_CHAR ? C_NUMBER : class_of(x.p);
    int cb = y.kind == TERM_CHAR ? C_NUMBER : class_of(y.p);
    if (ca != cb) {
      j = ca < cb ? -1 : 1;
      goto unwind;
    }
    switch (ca) {
      case C_NUMBER: j = cmp_num(x, y, exact, &ea, &eb); goto settled;
      case C_ATOM: j = cmp_atoms_at(x.p, y.p, &ea, &eb); goto settled;
      case C_REF:
      case C_PORT:
      case C_PID: j = cmp_idents(ca, x.p, y.p, &ea, &eb); goto settled;
      case C_EXPORT: j = cmp_exports(x.p, y.p, &ea, &eb); goto settled;
      case C_BITS: j = cmp_bits(x.p, y.p, &ea, &eb); goto settled;
      case C_NIL:
        j = 0;
        ea = nil_end(x.p);
        eb = nil_end(y.p);
        goto settled;
      case C_TUPLE: {
        bool sa = x.p[0] == ETF_SMALL_TUPLE, sb = y.p[0] == ETF_SMALL_TUPLE;
        uint32_t na = sa ? x.p[1] : get_be32(x.p + 1);
        uint32_t nb = sb ? y.p[1] : get_be32(y.p + 1);
        if (na != nb) {
          j = na < nb ? -1 : 1;
          goto unwind;
        }
        if (na > 1) {
          r = cst_push(&st, sizeof(rseq_t), R_SEQ, exact);
          if (!r) goto nest;
          ((rseq_t *)r)->left = na - 1;
        }
        ea = x.p + (sa ? 2 : 5);
        eb = y.p + (sb ? 2 : 5);
        if (na == 0) {
          j = 0;
          goto settled;
        }
        x = term_at(ea);
        y = term_at(eb);
        goto compare;
      }
      case C_FUN: {
        lfun_t fa, fb;
        fun_read(x.p, &fa);
        fun_read(y.p, &fb);
        j = atom_cmp(&fa.module, &fb.module);
        if (!j) j = cmp_u64(fa.index, fb.index);
        if (!j) j = cmp_u64(fa.old_uniq, fb.old_uniq);
        if (!j) j = cmp_u64(fa.num_free, fb.num_free);
        if (j) goto unwind;
        if (fa.num_free == 0) {
          ea = fa.end;
          eb = fb.end;
          goto settled;
        }
        if (fa.num_free > 1) {
          r = cst_push(&st, sizeof(rseq_t), R_SEQ, exact);
          if (!r) goto nest;
          ((rseq_t *)r)->left = fa.num_free - 1;
        }
        x = term_at(fa.env);
        y = term_at(fb.env);
        goto compare;
      }
      case C_LIST: {
        r = cst_push(&st, sizeof(rlist_t), R_LIST, exact);
        if (!r) goto nest;
        rlist_t *l = (rlist_t *)r;
        l->a = (lside_t){x.p, 0, 0};
        l->b = (lside_t){y.p, 0, 0};
        goto list_step;
      }
      case C_MAP: {
        uint64_t n = get_be32(x.p + 1), nb = get_be32(y.p + 1);
        if (n != nb) {
          j = n < nb ? -1 : 1;
          goto unwind;
        }
        if (n == 0) {
          j = 0;
          ea = x.p + 5;
          eb = y.p + 5;
          goto settled;
        }
        /* the same bytes are the same map: no need to sort. The look is
         * bounded by the pairs, so that maps nested in maps are not walked
         * again at every level. */
        if (n > 1 && same_bytes(x.p, y.p, 64 + 16 * n, &ea, &eb)) {
          j = 0;
          goto settled;
        }
        bool arrays = true;
        r = NULL;
        if (n <= (SIZE_MAX - sizeof(rmap_t)) / (3 * sizeof(void *)))
          r = cst_push(&st, sizeof(rmap_t) + 3 * n * sizeof(void *), R_MAP,
                       exact);
        if (!r) {
          arrays = false;
          r = cst_push(&st, sizeof(rmap_t), R_MAP, exact);
          if (!r) goto nest;
        }
        rmap_t *m = (rmap_t *)r;
        m->h.state = M_START;
        m->h.flag = arrays;
        m->ma = x.p;
        m->mb = y.p;
        m->enda = x.p; /* below every value end */
        m->endb = y.p;
        m->n = n;
        m->i = 0;
        m->values = 0;
        m->prev[0] = m->prev[1] = NULL;
        goto map_go;
      }
      default: /* not in checked terms */
        j = 0;
        ea = otpc__term_skip(x.p);
        eb = otpc__term_skip(y.p);
        goto settled;
    }
  }

nest: /* the stack cannot grow: compare this pair with a fresh one */
  j = cmp_walk(x, y, exact, &ea, &eb);

settled:
  if (j != 0) goto unwind;

done: /* the last pair was equal and ended at ea, eb */
  if (st.last == REC_NONE) {
    cst_free(&st);
    *enda = ea;
    *endb = eb;
    return 0;
  }
  r = cst_top(&st);
  switch (r->kind) {
    case R_SEQ:
      exact = r->exact;
      if (--((rseq_t *)r)->left == 0) cst_pop(&st); /* next is the last */
      x = term_at(ea);
      y = term_at(eb);
      goto compare;
    case R_LIST: {
      rlist_t *l = (rlist_t *)r;
      if (!l->a.str) l->a.p = ea;
      if (!l->b.str) l->b.p = eb;
      goto list_step;
    }
    default: j = 0; goto map_go;
  }

unwind: /* j != 0 */
  while (st.last != REC_NONE) {
    r = cst_top(&st);
    if (r->kind == R_MAP && (r->state == M_SORT || r->state == M_SEL))
      goto map_go;
    cst_pop(&st);
  }
  cst_free(&st);
  return j;

list_step : {
  rlist_t *l = (rlist_t *)cst_top(&st);
  lside_norm(&l->a);
  lside_norm(&l->b);
  exact = l->h.exact;
  if (l->a.str && l->b.str && l->a.left && l->b.left) {
    /* both in strings: compare the bytes at once */
    uint32_t m = l->a.left < l->b.left ? l->a.left : l->b.left;
    int c = memcmp(l->a.p, l->b.p, m);
    if (c) {
      j = c < 0 ? -1 : 1;
      goto unwind;
    }
    l->a.p += m;
    l->b.p += m;
    l->a.left -= m;
    l->b.left -= m;
    goto list_step;
  }
  if (l->a.left && l->b.left) {
    x = l->a.str ? term_char(*l->a.p++) : term_at(l->a.p);
    y = l->b.str ? term_char(*l->b.p++) : term_at(l->b.p);
    l->a.left--;
    l->b.left--;
    goto compare;
  }
  if (l->a.left || l->b.left) { /* one list goes on, the other ends */
    j = l->a.left ? sign_of(C_LIST - lside_tail_class(&l->b))
                  : sign_of(lside_tail_class(&l->a) - C_LIST);
    goto unwind;
  }
  if (l->a.str || l->b.str) { /* an implicit [] against the other tail */
    int ca = lside_tail_class(&l->a), cb = lside_tail_class(&l->b);
    if (ca != cb) {
      j = ca < cb ? -1 : 1;
      goto unwind;
    }
    ea = l->a.str ? l->a.p : nil_end(l->a.p);
    eb = l->b.str ? l->b.p : nil_end(l->b.p);
    cst_pop(&st);
    goto done;
  }
  x = term_at(l->a.p); /* both tails: compare them in place of the list */
  y = term_at(l->b.p);
  cst_pop(&st);
  goto compare;
}

map_go : {
  rmap_t *m = (rmap_t *)cst_top(&st);
  if (map_run(m, j, ea, eb, &x, &y, &exact) == MAP_CMP) goto compare;
  ea = m->enda;
  eb = m->endb;
  cst_pop(&st);
  goto done;
}
}

/* ------------------------------------------------------------------------
 * Duplicate map keys
 *
 * binary_to_term refuses a map with two keys that are =:=. Erlang writes
 * maps of up to 32 keys with the keys sorted (by term order up to OTP 25;
 * OTP 26 orders atoms by their index in the atom table, so atom keys come
 * in no useful order) and larger ones in hash order. So:
 *
 * 1. Check that each key is greater than the one before: n - 1
 *    comparisons settle sorted maps.
 * 2. Else, past KEYS_PAIRWISE_MAX keys (fewer are compared pair by
 *    pair), hash every key (=:= keys hash alike, however encoded) and put
 *    them in an open-addressing table, comparing keys only when their
 *    hashes are equal. The table lives on the C stack for up to
 *    KEYS_TABLE_MAX keys and on the heap above that.
 * 3. When that goes badly (keys whose hashes collide, as keys that only
 *    hash by their class: lists past their first elements, funs; crafted
 *    keys; or no memory for a large table), sort the keys in place:
 *    binary insertion, or heapsort above KEYS_INSERTION_MAX keys.
 *    O(n log n) comparisons at worst, and no memory.
 *
 * A comparison that finds two keys equal proves a duplicate; the table
 * compares every key with all earlier ones of the same hash; and a
 * comparison sort that is right for every input compares every pair of
 * keys that end up next to each other, so a sort that finds no equal pair
 * proves the keys distinct.
 * ------------------------------------------------------------------------ */

#define KEYS_PAIRWISE_MAX 4
#define KEYS_TABLE_MAX 128
#define KEYS_INSERTION_MAX 128

static int key_cmp_walk(const uint8_t *a, const uint8_t *b) {
  const uint8_t *ea, *eb;
  return cmp_walk(term_at(a), term_at(b), true, &ea, &eb);
}

/* Two checked keys in map-key order, the common scalars settled here. */
static inline int key_cmp(const uint8_t *a, const uint8_t *b) {
  if (a[0] == b[0]) {
    size_t la, lb, h;
    switch (a[0]) {
      case ETF_SMALL_INTEGER: return (a[1] > b[1]) - (a[1] < b[1]);
      case ETF_INTEGER: {
        int32_t x = (int32_t)get_be32(a + 1), y = (int32_t)get_be32(b + 1);
        return (x > y) - (x < y);
      }
      case ETF_SMALL_ATOM_UTF8:
      case ETF_SMALL_ATOM: /* one encoding: bytes are in code point order */
        la = a[1];
        lb = b[1];
        h = 2;
        break;
      case ETF_ATOM_UTF8:
      case ETF_ATOM:
        la = get_be16(a + 1);
        lb = get_be16(b + 1);
        h = 3;
        break;
      case ETF_BINARY:
        la = get_be32(a + 1);
        lb = get_be32(b + 1);
        h = 5;
        break;
      default: goto walk;
    }
    /* short texts mostly: eight bytes at a time, without a call */
    const uint8_t *x = a + h, *y = b + h;
    size_t m = la < lb ? la : lb, i = 0;
    for (; i + 8 <= m; i += 8) {
      uint64_t u = get_be64(x + i), v = get_be64(y + i);
      if (u != v) return u < v ? -1 : 1;
    }
    if (i < m) { /* the rest as numbers: no branch per byte */
      uint64_t u = 0, v = 0;
      for (; i < m; i++) {
        u = (u << 8) | x[i];
        v = (v << 8) | y[i];
      }
      if (u != v) return u < v ? -1 : 1;
    }
    return (la > lb) - (la < lb);
  }
walk:
  return key_cmp_walk(a, b);
}

#define HASH_K UINT64_C(0x9E3779B97F4A7C15)

static inline uint64_t mix(uint64_t h, uint64_t v) {
  return (h ^ v) * HASH_K;
}

/* Mixes in n bytes; *high gets whether one has its top bit set. */
static inline uint64_t mix_bytes(uint64_t h, const uint8_t *s, size_t n,
                                 uint64_t *high) {
  uint64_t w, any = 0;
  size_t i = 0;
  h = mix(h, n);
  for (; i + 8 <= n; i += 8) {
    memcpy(&w, s + i, 8);
    any |= w;
    h = mix(h, w);
  }
  if (i < n) {
    for (w = 0; i < n; i++) w = (w << 8) | s[i];
    any |= w;
    h = mix(h, w);
  }
  *high = any & UINT64_C(0x8080808080808080);
  return h;
}

/* Atom text, Latin-1 made UTF-8 when it is not ASCII. */
static uint64_t mix_atom(uint64_t h, const uint8_t *s, size_t len,
                         bool latin1) {
  uint64_t high;
  uint64_t r = mix_bytes(h, s, len, &high);
  if (!latin1 || !high) return r;
  uint8_t u[2 * 255];
  size_t n = 0;
  for (size_t i = 0; i < len && n + 2 <= sizeof u; i++) {
    if (s[i] < 0x80) {
      u[n++] = s[i];
    } else {
      u[n++] = (uint8_t)(0xC0 | (s[i] >> 6));
      u[n++] = (uint8_t)(0x80 | (s[i] & 0x3F));
    }
  }
  return mix_bytes(h, u, n, &high);
}

/* The hash of a term, not looking into containers: numbers by value
 * (integers apart from floats, -0.0 as 0.0), atoms by their UTF-8 text,
 * bit strings by their bits, tuples and maps by their size, pids, ports
 * and references by some of their numbers, the rest by class. The same
 * for terms that are =:=, however encoded. */
static uint64_t shallow_hash(const uint8_t *p) {
  uint64_t high;
  switch (p[0]) { /* the most common keys first */
    case ETF_SMALL_ATOM_UTF8:
      return mix_bytes(C_ATOM * HASH_K, p + 2, p[1], &high);
    case ETF_ATOM: return mix_atom(C_ATOM * HASH_K, p + 3, get_be16(p + 1), 1);
    case ETF_SMALL_INTEGER: return mix(C_NUMBER * HASH_K, p[1]);
    case ETF_INTEGER:
      return mix(C_NUMBER * HASH_K,
                 (uint64_t)(int64_t)(int32_t)get_be32(p + 1));
    case ETF_BINARY:
      return mix_bytes(C_BITS * HASH_K, p + 5, get_be32(p + 1), &high);
    default: break;
  }
  int cls = class_of(p);
  uint64_t h = (uint64_t)cls * HASH_K;
  switch (cls) {
    case C_NUMBER: {
      num_t x;
      const uint8_t *end;
      num_read(term_at(p), &x, &end);
      if (x.kind == N_SMALL) return mix(h, (uint64_t)x.i);
      if (x.kind == N_BIG)
        return mix_bytes(mix(h, 1 + x.neg), x.mag, x.n, &high);
      double d = x.d == 0 ? 0.0 : x.d; /* -0.0 =:= 0.0 (OTP 25) */
      uint64_t u;
      memcpy(&u, &d, sizeof u);
      return mix(mix(h, 2), u);
    }
    case C_ATOM: {
      atext_t t;
      atom_read(p, &t);
      return mix_atom(h, t.s, t.len, t.latin1);
    }
    case C_BITS: {
      const uint8_t *data, *end;
      size_t whole;
      unsigned tail;
      bits_read(p, &data, &whole, &tail, &end);
      h = mix_bytes(h, data, whole, &high);
      if (tail) h = mix(h, (data[whole] & (0xFF00u >> tail)) << 8 | tail);
      return h;
    }
    case C_TUPLE:
      return mix(h, p[0] == ETF_SMALL_TUPLE ? p[1] : get_be32(p + 1));
    case C_MAP: return mix(h, get_be32(p + 1));
    case C_PID:
    case C_PORT:
    case C_REF: {
      ident_t v;
      ident_read(p, &v);
      h = mix(h, v.creation);
      if (cls == C_REF) return mix(h, get_be32(v.w)); /* the low word */
      return mix(mix(h, v.id), cls == C_PID ? v.serial : 0);
    }
    default: return h;
  }
}

/* The hash of a key: shallow_hash, and for tuples and lists that of their
 * first elements too (lists element by element, however split into
 * segments or strings). */
static uint64_t key_hash(const uint8_t *p) {
  uint64_t h = shallow_hash(p);
  int cls = class_of(p);
  if (cls == C_TUPLE) {
    uint32_t n = p[0] == ETF_SMALL_TUPLE ? p[1] : get_be32(p + 1);
    const uint8_t *q = p + (p[0] == ETF_SMALL_TUPLE ? 2 : 5);
    for (uint32_t i = 0; i < n && i < 4; i++) {
      h = mix(h, shallow_hash(q));
      if (i + 1 < n && i + 1 < 4) q = otpc__term_skip(q);
    }
  } else if (cls == C_LIST) {
    lside_t s = {p, 0, 0};
    for (int i = 0; i < 4; i++) {
      lside_norm(&s);
      if (s.left == 0) break; /* the tail: not hashed */
      s.left--;
      if (s.str) {
        h = mix(h, mix(C_NUMBER * HASH_K, *s.p++));
      } else {
        h = mix(h, shallow_hash(s.p));
        if (i < 3) s.p = otpc__term_skip(s.p);
      }
    }
  }
  return h ^ (h >> 29);
}

/* Step 2: 0, OTPC_EBADARG, or 1 when the table gives up (too many probes
 * or equal hashes, or no memory). A slot holds a key's index + 1 and some
 * bits of its hash: 16 and 16 in the table on the stack, 32 and 32 in a
 * table on the heap. */
static int keys_table(const uint8_t **k, size_t n) {
  uint32_t inl[2 * KEYS_TABLE_MAX];
  unsigned bits = 1;
  while (((size_t)1 << bits) < 2 * n) bits++;
  size_t size = (size_t)1 << bits, mask = size - 1;
  uint64_t *big = NULL;
  if (n > KEYS_TABLE_MAX) {
    if (bits >= 32 || !(big = otpc__malloc(size * sizeof *big))) return 1;
    memset(big, 0, size * sizeof *big);
  } else {
    memset(inl, 0, size * sizeof *inl);
  }
  size_t budget = 2 * n + 16; /* probes past the first, in all */
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    uint64_t h = key_hash(k[i]);
    uint32_t tag = (uint32_t)h; /* the slot comes from the high bits */
    size_t j = (size_t)(h >> (64 - bits));
    for (;;) {
      size_t at;
      bool same;
      if (big) {
        at = (size_t)(big[j] >> 32);
        same = (uint32_t)big[j] == tag;
      } else {
        at = inl[j] & 0xFFFF;
        same = inl[j] >> 16 == (tag & 0xFFFF);
      }
      if (at == 0) break;
      if (same && key_cmp(k[at - 1], k[i]) == 0) {
        rc = OTPC_EBADARG;
        break;
      }
      if (budget-- == 0) {
        rc = 1;
        break;
      }
      j = (j + 1) & mask;
    }
    if (big)
      big[j] = (uint64_t)(i + 1) << 32 | tag;
    else
      inl[j] = (tag & 0xFFFF) << 16 | (uint32_t)(i + 1);
  }
  otpc__free(big);
  return rc;
}

/* Step 3, up to KEYS_INSERTION_MAX keys: binary insertion of k[i..n) into
 * the sorted, distinct k[0..i). If x equals some k[m], m stays inside
 * [lo, hi) until it is looked at. */
static int keys_insert(const uint8_t **k, size_t n, size_t i) {
  for (; i < n; i++) {
    const uint8_t *x = k[i];
    size_t lo = 0, hi = i;
    while (lo < hi) {
      size_t mid = lo + (hi - lo) / 2;
      int c = key_cmp(x, k[mid]);
      if (c == 0) return OTPC_EBADARG;
      if (c < 0)
        hi = mid;
      else
        lo = mid + 1;
    }
    memmove(k + lo + 1, k + lo, (i - lo) * sizeof *k);
    k[lo] = x;
  }
  return 0;
}

/* Puts x at root of the max-heap k[0..n) whose subtrees are heaps,
 * bottom-up: down the larger children to a leaf, then up to x's place.
 * false when two keys compare equal. */
static bool heap_sift(const uint8_t **k, size_t root, size_t n,
                      const uint8_t *x) {
  size_t j = root;
  int c;
  while (2 * j + 2 < n) {
    if ((c = key_cmp(k[2 * j + 1], k[2 * j + 2])) == 0) return false;
    j = c < 0 ? 2 * j + 2 : 2 * j + 1;
  }
  if (2 * j + 1 < n) j = 2 * j + 1;
  while (j > root) {
    if ((c = key_cmp(x, k[j])) == 0) return false;
    if (c < 0) break;
    j = (j - 1) / 2;
  }
  const uint8_t *t = x; /* x goes to j; the path above moves up a level */
  while (j > root) {
    const uint8_t *u = k[j];
    k[j] = t;
    t = u;
    j = (j - 1) / 2;
  }
  k[root] = t;
  return true;
}

/* Step 3 above KEYS_INSERTION_MAX keys. */
static int keys_heapsort(const uint8_t **k, size_t n) {
  for (size_t i = n / 2; i-- > 0;)
    if (!heap_sift(k, i, n, k[i])) return OTPC_EBADARG;
  for (size_t end = n - 1; end > 0; end--) {
    const uint8_t *x = k[end];
    k[end] = k[0];
    if (!heap_sift(k, 0, end, x)) return OTPC_EBADARG;
  }
  return 0;
}

/* Steps 2 and 3 for the n keys k[] (reordered), k[0..i) known sorted and
 * distinct; a few keys are simply compared pair by pair. */
static int keys_unsorted(const uint8_t **k, size_t n, size_t i) {
  if (n <= KEYS_PAIRWISE_MAX) {
    for (size_t x = 0; x + 1 < n; x++)
      for (size_t y = x + 1; y < n; y++)
        if (key_cmp(k[x], k[y]) == 0) return OTPC_EBADARG;
    return 0;
  }
  int rc = keys_table(k, n);
  if (rc != 1) return rc;
  if (n <= KEYS_INSERTION_MAX) return keys_insert(k, n, i);
  return keys_heapsort(k, n);
}

int otpc__map_check_key_array(const uint8_t **keys, size_t n) {
  for (size_t i = 1; i < n; i++) {
    int c = key_cmp(keys[i - 1], keys[i]);
    if (c >= 0) return c == 0 ? OTPC_EBADARG : keys_unsorted(keys, n, i);
  }
  return 0;
}

int otpc__map_check_keys(otpc_term_t map) {
  const uint8_t *p = map.p;
  size_t n = get_be32(p + 1), i;
  if (n < 2) return 0;
  const uint8_t *prev = p + 5, *k;
  for (i = 1; i < n; i++, prev = k) {
    k = skip_pair(prev);
    int c = key_cmp(prev, k);
    if (c == 0) return OTPC_EBADARG;
    if (c > 0) break;
  }
  if (i == n) return 0;
  const uint8_t *inl[64], **keys = inl;
  if (n > sizeof inl / sizeof inl[0]) {
    keys = n <= SIZE_MAX / sizeof *keys ? otpc__malloc(n * sizeof *keys) : NULL;
    if (!keys) { /* no memory: every pair, n^2 / 2 comparisons */
      const uint8_t *a = p + 5;
      for (size_t x = 0; x + 1 < n; x++, a = skip_pair(a)) {
        const uint8_t *b = a;
        for (size_t y = x + 1; y < n; y++) {
          b = skip_pair(b);
          if (key_cmp(a, b) == 0) return OTPC_EBADARG;
        }
      }
      return 0;
    }
  }
  keys[0] = k = p + 5;
  for (size_t x = 1; x < n; x++) keys[x] = k = skip_pair(k);
  int rc = keys_unsorted(keys, n, i);
  if (keys != inl) otpc__free(keys);
  return rc;
}

/* ------------------------------------------------------------------------
 * Public
 * ------------------------------------------------------------------------ */

static int compare_views(otpc_term_t a, otpc_term_t b, bool exact) {
  const uint8_t *ea, *eb;
  if (a.kind == TERM_NONE || b.kind == TERM_NONE) /* none sorts first */
    return (a.kind != TERM_NONE) - (b.kind != TERM_NONE);
  int j = cmp_walk(a, b, exact, &ea, &eb);
  return (j > 0) - (j < 0);
}

int otpc_term_compare(otpc_term_t a, otpc_term_t b) {
  return compare_views(a, b, false);
}

bool otpc_term_equal(otpc_term_t a, otpc_term_t b) {
  return compare_views(a, b, true) == 0;
}

int otpc__term_cmp_mapkey(const uint8_t *a, const uint8_t *b) {
  return key_cmp(a, b);
}
