/*
 * test_compare.c: otpc_term_compare() and otpc_term_equal() against the
 * term order and =:= of Erlang/OTP 25. Every pair of the ~500 terms of
 * term_cases.h (captured from erl by tests/interop/gen_hash_cases.erl)
 * must compare as Erlang compares them. The rest checks terms nested
 * 10000 deep, running out of memory, and views Erlang cannot give us.
 */
#include <stdlib.h>

#include "otpc.h"
#include "term/term_int.h"
#include "test.h"
#include "hex.h"

#include "term_cases.h"

#define NCASES (sizeof term_cases / sizeof term_cases[0])

static uint8_t *cases[NCASES];

static void load_cases(void) {
  for (size_t i = 0; i < NCASES; i++) {
    cases[i] = malloc(strlen(term_cases[i].etf) / 2 + 1);
    CHECK(cases[i] != NULL);
    unhex(term_cases[i].etf, cases[i]);
  }
}

static otpc_term_t case_term(size_t i) {
  return term_at(cases[i] + 1);
}

static int sign(int x) {
  return (x > 0) - (x < 0);
}

/* Compares cases i and k both ways; 1 if something is wrong. */
static int check_pair(size_t i, size_t k) {
  otpc_term_t a = case_term(i), b = case_term(k);
  int want = sign(term_cases[i].rank - term_cases[k].rank);
  bool want_eq = term_cases[i].cls == term_cases[k].cls;
  int got = otpc_term_compare(a, b);
  bool eq = otpc_term_equal(a, b);
  if (got == want && eq == want_eq) return 0;
  fprintf(stderr,
          "cases %zu and %zu: compare %d (want %d), equal %d (want %d)\n", i, k,
          got, want, eq, want_eq);
  return 1;
}

TEST(compare_matches_erlang) {
  load_cases();
  int bad = 0;
  for (size_t i = 0; i < NCASES && bad < 20; i++)
    for (size_t k = 0; k < NCASES; k++) bad += check_pair(i, k);
  CHECK_INT_EQ(bad, 0);
}

/* Some pairs named, so that a failure reads as the rule it breaks. */
static otpc_buf_t *parse(const char *text) {
  otpc_buf_t *buf = NULL;
  int rc = otpc_term_parse(text, strlen(text), &buf, NULL);
  if (rc != 0) otpc_test_fail(__FILE__, __LINE__, "parse %s: %d", text, rc);
  return buf;
}

static int cmp_text(const char *a, const char *b, bool *equal) {
  otpc_buf_t *x = parse(a), *y = parse(b);
  int c = otpc_term_compare(otpc_buf_term(x), otpc_buf_term(y));
  *equal = otpc_term_equal(otpc_buf_term(x), otpc_buf_term(y));
  otpc_buf_unref(x);
  otpc_buf_unref(y);
  return c;
}

#define CHECK_ORDER(a, b, want, want_eq)                                    \
  do {                                                                      \
    bool eq_;                                                               \
    int c_ = cmp_text(a, b, &eq_);                                          \
    if (c_ != (want) || eq_ != (want_eq))                                   \
      otpc_test_fail(__FILE__, __LINE__, "%s vs %s: %d %d", a, b, c_, eq_); \
  } while (0)

TEST(compare_rules) {
  CHECK_ORDER("1", "1.0", 0, false);
  CHECK_ORDER("0.0", "-0.0", 0, true); /* as in OTP 25 */
  CHECK_ORDER("9007199254740993", "9007199254740992.0", 1, false);
  CHECK_ORDER("9223372036854775807", "9223372036854775808.0", -1, false);
  CHECK_ORDER("-9223372036854775808", "-9223372036854775808.0", 0, false);
  CHECK_ORDER("1", "a", -1, false);
  CHECK_ORDER("zzz", "#Ref<0.1.2.3>", -1, false);
  CHECK_ORDER("{}", "[]", -1, false);
  CHECK_ORDER("#{}", "[]", -1, false);
  CHECK_ORDER("[]", "[a]", -1, false);
  CHECK_ORDER("[a]", "<<>>", -1, false);
  CHECK_ORDER("{a, b}", "{a}", 1, false);
  CHECK_ORDER("{b}", "{a, a}", -1, false);
  CHECK_ORDER("[a | b]", "[a]", -1, false); /* tail b < [] */
  CHECK_ORDER("[1 | 2]", "[1, 2]", -1, false);
  CHECK_ORDER("\"abc\"", "[97, 98, 99]", 0, true);
  CHECK_ORDER("<<1:1>>", "<<0, 0>>", 1, false);
  CHECK_ORDER("<<0:1>>", "<<0>>", -1, false);
  CHECK_ORDER("#{1 => a}", "#{1.0 => a}", -1, false); /* keys: ints first */
  CHECK_ORDER("#{2 => a}", "#{1.0 => a}", -1, false);
  CHECK_ORDER("#{1 => 1}", "#{1 => 1.0}", 0, false); /* values: by value */
  CHECK_ORDER("#{a => 2, b => 1}", "#{a => 1, b => 2}", 1, false);
  CHECK_ORDER("#{a => 1, c => 1}", "#{b => 0, c => 1}", -1, false);
  CHECK_ORDER("#{b => 1, a => 2}", "#{a => 2, b => 1}", 0, true);
  CHECK_ORDER("<0.1.2>", "<0.2.1>", 1, false); /* serial first */
  CHECK_ORDER("fun a:b/1", "fun a:c/0", -1, false);
}

/* ------------------------------------------------------------------------
 * Deep terms, written by hand (the decoder's depth limit is 10000)
 * ------------------------------------------------------------------------ */

typedef struct wbuf {
  uint8_t *p;
  size_t len, cap;
} wbuf_t;

static void put(wbuf_t *w, const void *data, size_t n) {
  if (w->len + n > w->cap) {
    w->cap = (w->len + n) * 2;
    w->p = realloc(w->p, w->cap);
    CHECK(w->p != NULL);
  }
  memcpy(w->p + w->len, data, n);
  w->len += n;
}

static void put1(wbuf_t *w, uint8_t b) {
  put(w, &b, 1);
}

static void put_be32x(wbuf_t *w, uint8_t tag, uint32_t n) {
  uint8_t b[5] = {tag, (uint8_t)(n >> 24), (uint8_t)(n >> 16),
                  (uint8_t)(n >> 8), (uint8_t)n};
  put(w, b, 5);
}

static void put_atom(wbuf_t *w, const char *s, bool latin1) {
  put1(w, latin1 ? ETF_SMALL_ATOM : ETF_SMALL_ATOM_UTF8);
  put1(w, (uint8_t)strlen(s));
  put(w, s, strlen(s));
}

/* The innermost value of a deep term, in one of several encodings. */
enum { LEAF_ONE, LEAF_ONE_INT, LEAF_ONE_BIG, LEAF_ONE_FLOAT, LEAF_TWO };

static void put_leaf(wbuf_t *w, int leaf) {
  static const uint8_t one_float[] = {
      ETF_NEW_FLOAT, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0};
  switch (leaf) {
    case LEAF_ONE:
      put1(w, ETF_SMALL_INTEGER);
      put1(w, 1);
      break;
    case LEAF_ONE_INT: put_be32x(w, ETF_INTEGER, 1); break;
    case LEAF_ONE_BIG: put(w, "\x6e\x02\x00\x01\x00", 5); break;
    case LEAF_ONE_FLOAT: put(w, one_float, sizeof one_float); break;
    default:
      put1(w, ETF_SMALL_INTEGER);
      put1(w, 2);
      break;
  }
}

#define DEPTH 10000

enum {
  SHAPE_LIST,
  SHAPE_TUPLE_FIRST,
  SHAPE_TUPLE_LAST,
  SHAPE_MAP_VALUE,
  SHAPE_MAP_KEY,
  SHAPE_LIST_MIXED,
  SHAPE_FUN_ENV,
  NSHAPES
};

/* A term nested DEPTH deep around a leaf; alt varies the encodings of
 * everything but the leaf (Latin-1 atoms, LARGE_TUPLE, INTEGER_EXT,
 * lists split in segments). */
static uint8_t *deep_term(int shape, int leaf, bool alt) {
  wbuf_t w = {NULL, 0, 0};
  put1(&w, ETF_VERSION);
  for (int i = 0; i < DEPTH; i++) {
    switch (shape) {
      case SHAPE_LIST: put_be32x(&w, ETF_LIST, 1); break;
      case SHAPE_TUPLE_FIRST:
      case SHAPE_TUPLE_LAST:
        if (alt)
          put_be32x(&w, ETF_LARGE_TUPLE, 2);
        else {
          put1(&w, ETF_SMALL_TUPLE);
          put1(&w, 2);
        }
        if (shape == SHAPE_TUPLE_LAST) put_atom(&w, "x", alt);
        break;
      case SHAPE_MAP_VALUE:
        put_be32x(&w, ETF_MAP, 1);
        put_atom(&w, "k", alt);
        break;
      case SHAPE_MAP_KEY: put_be32x(&w, ETF_MAP, 1); break;
      case SHAPE_LIST_MIXED:
        if (alt) { /* [1 | [inner, 2]] in two segments */
          put_be32x(&w, ETF_LIST, 1);
          put_be32x(&w, ETF_INTEGER, 1);
          put_be32x(&w, ETF_LIST, 2);
        } else {
          put_be32x(&w, ETF_LIST, 3);
          put1(&w, ETF_SMALL_INTEGER);
          put1(&w, 1);
        }
        break;
      case SHAPE_FUN_ENV: { /* a fun with free variables [inner, y] */
        static const uint8_t pid[] = {ETF_NEW_PID, ETF_SMALL_ATOM_UTF8,
                                      1,           'n',
                                      0,           0,
                                      0,           1,
                                      0,           0,
                                      0,           0,
                                      0,           0,
                                      0,           0};
        uint8_t head[30] = {ETF_NEW_FUN, 0, 0, 0, 0, 0};
        head[25] = 7; /* index */
        head[29] = 2; /* two free variables */
        put(&w, head, sizeof head);
        put_atom(&w, "m", alt);
        put(&w, "\x61\x00\x61\x05", 4); /* OldIndex 0, OldUniq 5 */
        put(&w, pid, sizeof pid);
        break; /* Size stays 0: the walk never reads it for funs with env */
      }
    }
  }
  put_leaf(&w, leaf);
  for (int i = 0; i < DEPTH; i++) {
    switch (shape) {
      case SHAPE_LIST: put1(&w, ETF_NIL); break;
      case SHAPE_TUPLE_FIRST: put_atom(&w, "x", alt); break;
      case SHAPE_MAP_KEY: put_atom(&w, "v", alt); break;
      case SHAPE_LIST_MIXED:
        put1(&w, ETF_SMALL_INTEGER);
        put1(&w, 2);
        put1(&w, ETF_NIL);
        break;
      case SHAPE_FUN_ENV: put_atom(&w, "y", alt); break;
      default: break;
    }
  }
  return w.p;
}

TEST(compare_deep_terms) {
  for (int shape = 0; shape < NSHAPES; shape++) {
    uint8_t *one = deep_term(shape, LEAF_ONE, false);
    uint8_t *one_alt = deep_term(shape, LEAF_ONE_INT, true);
    uint8_t *one_big = deep_term(shape, LEAF_ONE_BIG, false);
    uint8_t *one_float = deep_term(shape, LEAF_ONE_FLOAT, true);
    uint8_t *two = deep_term(shape, LEAF_TWO, false);
    otpc_term_t a = term_at(one + 1), b = term_at(one_alt + 1);
    otpc_term_t c = term_at(one_big + 1), f = term_at(one_float + 1);
    otpc_term_t t = term_at(two + 1);
    CHECK_INT_EQ(otpc_term_compare(a, b), 0);
    CHECK(otpc_term_equal(a, b));
    CHECK(otpc_term_equal(b, c));
    CHECK_INT_EQ(otpc_term_compare(a, t), -1);
    CHECK_INT_EQ(otpc_term_compare(t, b), 1);
    CHECK(!otpc_term_equal(a, t));
    /* 1 == 1.0 but 1 =/= 1.0; as a map key 1 < 1.0 */
    if (shape == SHAPE_MAP_KEY) {
      CHECK_INT_EQ(otpc_term_compare(a, f), -1);
    } else {
      CHECK_INT_EQ(otpc_term_compare(a, f), 0);
    }
    CHECK(!otpc_term_equal(a, f));
    /* and the same hash, however encoded */
    CHECK_INT_EQ(otpc_phash2(a), otpc_phash2(b));
    CHECK_INT_EQ(otpc_phash2(a), otpc_phash2(c));
    free(one);
    free(one_alt);
    free(one_big);
    free(one_float);
    free(two);
  }
}

/* ------------------------------------------------------------------------
 * Out of memory: maps fall back to selecting keys, deep terms nest
 * ------------------------------------------------------------------------ */

static void *no_malloc(size_t n) {
  (void)n;
  return NULL;
}
static void *no_realloc(void *p, size_t n) {
  (void)p;
  (void)n;
  return NULL;
}

TEST(compare_without_memory) {
  load_cases();
  uint8_t *deep[NSHAPES][3];
  for (int s = 0; s < NSHAPES; s++) {
    deep[s][0] = deep_term(s, LEAF_ONE, false);
    deep[s][1] = deep_term(s, LEAF_ONE_INT, true);
    deep[s][2] = deep_term(s, LEAF_TWO, true);
  }
  otpc_allocator_t none = {no_malloc, no_realloc, free};
  otpc_set_allocator(&none);
  int bad = 0;
  /* every pair among the maps and tuples (the terms that hold maps);
   * without memory a big map costs n^2 key comparisons, so only some
   * pairs of the 300-key maps */
  size_t big_seen = 0;
  for (size_t i = 0; i < NCASES; i++) {
    uint8_t t = cases[i][1];
    if (t != ETF_MAP && t != ETF_SMALL_TUPLE) continue;
    bool big_i = t == ETF_MAP && get_be32(cases[i] + 2) > 100;
    if (big_i && big_seen++ >= 2) continue;
    for (size_t k = 0; k < NCASES; k++) {
      uint8_t u = cases[k][1];
      if (u != ETF_MAP && u != ETF_SMALL_TUPLE) continue;
      bool big_k = u == ETF_MAP && get_be32(cases[k] + 2) > 100;
      if (big_i || !big_k) bad += check_pair(i, k);
    }
  }
  for (int s = 0; s < NSHAPES; s++) {
    otpc_term_t a = term_at(deep[s][0] + 1), b = term_at(deep[s][1] + 1);
    otpc_term_t t = term_at(deep[s][2] + 1);
    bad += !otpc_term_equal(a, b);
    bad += otpc_term_compare(a, t) != -1;
  }
  otpc_set_allocator(NULL);
  CHECK_INT_EQ(bad, 0);
  for (int s = 0; s < NSHAPES; s++)
    for (int v = 0; v < 3; v++) free(deep[s][v]);
}

/* ------------------------------------------------------------------------
 * Views
 * ------------------------------------------------------------------------ */

TEST(compare_string_elements) {
  static const uint8_t abc[] = {131, ETF_STRING, 0, 3, 'a', 'b', 'c'};
  static const uint8_t int_b[] = {131, ETF_INTEGER, 0, 0, 0, 'b'};
  static const uint8_t float_b[] = {
      131, ETF_NEW_FLOAT, 0x40, 0x58, 0x80, 0, 0, 0, 0, 0};
  otpc_list_iter_t it;
  otpc_term_t a, b;
  CHECK_INT_EQ(otpc_term_list_iter(term_at(abc + 1), &it), 0);
  CHECK(otpc_list_next(&it, &a));
  CHECK(otpc_list_next(&it, &b));
  CHECK_INT_EQ(otpc_term_compare(a, b), -1);
  CHECK_INT_EQ(otpc_term_compare(b, a), 1);
  CHECK_INT_EQ(otpc_term_compare(b, b), 0);
  CHECK(otpc_term_equal(b, term_at(int_b + 1)));
  CHECK_INT_EQ(otpc_term_compare(term_at(int_b + 1), b), 0);
  CHECK_INT_EQ(otpc_term_compare(b, term_at(float_b + 1)), 0); /* 98.0 */
  CHECK(!otpc_term_equal(b, term_at(float_b + 1)));
  CHECK_INT_EQ(otpc_term_compare(a, term_at(abc + 1)), -1); /* number < list */
}

TEST(compare_none_views) {
  static const uint8_t nil[] = {131, ETF_NIL};
  otpc_term_t none = {NULL, 0, 0};
  CHECK_INT_EQ(otpc_term_compare(none, none), 0);
  CHECK(otpc_term_equal(none, none));
  CHECK_INT_EQ(otpc_term_compare(none, term_at(nil + 1)), -1);
  CHECK_INT_EQ(otpc_term_compare(term_at(nil + 1), none), 1);
  CHECK(!otpc_term_equal(none, term_at(nil + 1)));
}

/* ------------------------------------------------------------------------
 * Other encodings of the same values
 *
 * reencode() writes a term again choosing other encodings wherever ETF
 * has a choice (variant 1 and 2 choose differently): integers as bigs or
 * INTEGER_EXT, bigs with high zero bytes, old float text, Latin-1 or
 * UTF-8 atoms, LARGE_TUPLE, lists split into segments or strings made
 * lists, maps in reverse, old pid/port/reference formats, references
 * with an extra zero word, binaries as BIT_BINARY_EXT. The copy must
 * compare equal (=:=), keep its place in the order and hash the same.
 * Recursive, which is fine for the shallow terms of term_cases.h.
 * ------------------------------------------------------------------------ */

static void put_be16w(wbuf_t *w, uint16_t v) {
  uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
  put(w, b, 2);
}

static void put_be32w(wbuf_t *w, uint32_t v) {
  uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8),
                  (uint8_t)v};
  put(w, b, 4);
}

static const uint8_t *reencode(wbuf_t *w, const uint8_t *p, int v);

/* An atom: Latin-1 when every character fits (variant 1), else UTF-8. */
static const uint8_t *reencode_atom(wbuf_t *w, const uint8_t *p, int v) {
  const uint8_t *s;
  size_t len;
  bool latin1;
  otpc__term_atom_raw(term_at(p), &s, &len, &latin1);
  uint8_t text[1024];
  size_t n = 0;
  bool to_latin1 = v == 1;
  if (latin1) {
    for (size_t i = 0; i < len; i++) {
      if (s[i] < 0x80 || to_latin1) {
        text[n++] = s[i];
      } else {
        text[n++] = (uint8_t)(0xC0 | (s[i] >> 6));
        text[n++] = (uint8_t)(0x80 | (s[i] & 0x3F));
      }
    }
  } else {
    for (size_t i = 0; i < len && to_latin1;) { /* all <= U+00FF? */
      if (s[i] < 0x80)
        i++;
      else if ((s[i] & 0xFE) == 0xC2)
        i += 2;
      else
        to_latin1 = false;
    }
    for (size_t i = 0; i < len; i++) {
      if (to_latin1 && (s[i] & 0xFE) == 0xC2) {
        text[n++] = (uint8_t)((s[i] << 6) | (s[i + 1] & 0x3F));
        i++;
      } else {
        text[n++] = s[i];
      }
    }
  }
  if (!latin1 && !to_latin1) to_latin1 = false;
  bool small = v == 2 && n < 256;
  put1(w, to_latin1 ? (small ? ETF_SMALL_ATOM : ETF_ATOM)
                    : (small ? ETF_SMALL_ATOM_UTF8 : ETF_ATOM_UTF8));
  if (small)
    put1(w, (uint8_t)n);
  else
    put_be16w(w, (uint16_t)n);
  put(w, text, n);
  return otpc__term_skip(p);
}

/* An integer as sign and magnitude, in another encoding. */
static void put_int(wbuf_t *w, bool neg, const uint8_t *mag, size_t n, int v,
                    uint8_t orig_tag) {
  uint64_t m = 0;
  for (size_t i = n; i-- > 0 && n <= 8;) m = (m << 8) | mag[i];
  if (n <= 1 && !neg && orig_tag != ETF_SMALL_INTEGER && v == 2) {
    put1(w, ETF_SMALL_INTEGER);
    put1(w, (uint8_t)m);
  } else if (n <= 4 && orig_tag != ETF_INTEGER && v == 1 &&
             (neg ? m <= 0x80000000u : m < 0x80000000u)) {
    put1(w, ETF_INTEGER);
    put_be32w(w, neg ? (uint32_t)(0 - m) : (uint32_t)m);
  } else if (v == 1 || n > 250) { /* LARGE_BIG with two high zero bytes */
    put1(w, ETF_LARGE_BIG);
    put_be32w(w, (uint32_t)n + 2);
    put1(w, neg);
    put(w, mag, n);
    put(w, "\0\0", 2);
  } else {
    put1(w, ETF_SMALL_BIG);
    put1(w, (uint8_t)(n + 1));
    put1(w, neg);
    put(w, mag, n);
    put1(w, 0);
  }
}

static const uint8_t *reencode_node_and(wbuf_t *w, const uint8_t *q, int v) {
  return reencode_atom(w, q, v);
}

static const uint8_t *reencode(wbuf_t *w, const uint8_t *p, int v) {
  switch (p[0]) {
    case ETF_SMALL_INTEGER:
    case ETF_INTEGER:
    case ETF_SMALL_BIG:
    case ETF_LARGE_BIG: {
      bool neg;
      const uint8_t *mag;
      size_t n;
      uint8_t scratch[8];
      otpc__term_int_parts(term_at(p), &neg, &mag, &n, scratch);
      put_int(w, neg, mag, n, v, p[0]);
      return otpc__term_skip(p);
    }
    case ETF_NEW_FLOAT:
      if (v == 1) { /* the old text format */
        double d;
        otpc_term_get_double(term_at(p), &d);
        char text[32] = {0};
        snprintf(text, sizeof text, "%.20e", d);
        put1(w, ETF_FLOAT);
        put(w, text, 31);
      } else {
        put(w, p, 9);
      }
      return p + 9;
    case ETF_ATOM:
    case ETF_SMALL_ATOM:
    case ETF_ATOM_UTF8:
    case ETF_SMALL_ATOM_UTF8: return reencode_atom(w, p, v);
    case ETF_SMALL_TUPLE:
    case ETF_LARGE_TUPLE: {
      uint32_t n = p[0] == ETF_SMALL_TUPLE ? p[1] : get_be32(p + 1);
      if (v == 1 || n > 255) {
        put1(w, ETF_LARGE_TUPLE);
        put_be32w(w, n);
      } else {
        put1(w, ETF_SMALL_TUPLE);
        put1(w, (uint8_t)n);
      }
      p += p[0] == ETF_SMALL_TUPLE ? 2 : 5;
      for (uint32_t i = 0; i < n; i++) p = reencode(w, p, v);
      return p;
    }
    case ETF_STRING: { /* as a list of integers in one or two segments */
      uint32_t n = get_be16(p + 1);
      if (n == 0) {
        put1(w, ETF_NIL);
        return p + 3;
      }
      uint32_t first = v == 1 && n > 1 ? n / 2 : n;
      put1(w, ETF_LIST);
      put_be32w(w, first);
      for (uint32_t i = 0; i < n; i++) {
        if (i == first) {
          put1(w, ETF_LIST);
          put_be32w(w, n - first);
        }
        put_int(w, false, p + 3 + i, p[3 + i] ? 1 : 0, v, 0);
      }
      put1(w, ETF_NIL);
      return p + 3 + n;
    }
    case ETF_LIST: { /* split: [e0 | [e1 ... | tail]] (variant 1) */
      uint32_t n = get_be32(p + 1);
      p += 5;
      if (v == 1 && n > 1) {
        put1(w, ETF_LIST);
        put_be32w(w, 1);
        p = reencode(w, p, v);
        put1(w, ETF_LIST);
        put_be32w(w, n - 1);
        for (uint32_t i = 1; i < n; i++) p = reencode(w, p, v);
      } else {
        put1(w, ETF_LIST);
        put_be32w(w, n);
        for (uint32_t i = 0; i < n; i++) p = reencode(w, p, v);
      }
      return reencode(w, p, v); /* the tail */
    }
    case ETF_MAP: { /* pairs in reverse order */
      uint32_t n = get_be32(p + 1);
      const uint8_t **pairs = malloc((n + 1) * sizeof *pairs);
      const uint8_t *q = p + 5;
      for (uint32_t i = 0; i < n; i++) {
        pairs[i] = q;
        q = otpc__term_skip(otpc__term_skip(q));
      }
      put1(w, ETF_MAP);
      put_be32w(w, n);
      for (uint32_t i = n; i-- > 0;) reencode(w, reencode(w, pairs[i], v), v);
      free(pairs);
      return q;
    }
    case ETF_BINARY:
      if (v == 1) {
        uint32_t n = get_be32(p + 1);
        put1(w, ETF_BIT_BINARY);
        put_be32w(w, n);
        put1(w, 8);
        put(w, p + 5, n);
        return p + 5 + n;
      }
      break;
    case ETF_NEW_PID:
    case ETF_PID: {
      const uint8_t *q = p + 1;
      uint32_t cre = p[0] == ETF_PID ? q[0] : 0;
      const uint8_t *after = otpc__term_skip(q);
      cre = p[0] == ETF_PID ? after[8] : get_be32(after + 8);
      bool old = p[0] == ETF_NEW_PID && cre < 256;
      put1(w, old ? ETF_PID : ETF_NEW_PID);
      reencode_node_and(w, q, v);
      put(w, after, 8);
      if (old)
        put1(w, (uint8_t)cre);
      else
        put_be32w(w, cre);
      return after + (p[0] == ETF_PID ? 9 : 12);
    }
    case ETF_V4_PORT:
    case ETF_NEW_PORT:
    case ETF_PORT: {
      const uint8_t *after = otpc__term_skip(p + 1);
      uint64_t id = p[0] == ETF_V4_PORT ? get_be64(after) : get_be32(after);
      const uint8_t *c = after + (p[0] == ETF_V4_PORT ? 8 : 4);
      uint32_t cre = p[0] == ETF_PORT ? c[0] : get_be32(c);
      bool v4 = p[0] != ETF_V4_PORT || id > UINT32_MAX;
      put1(w, v4 ? ETF_V4_PORT : ETF_NEW_PORT);
      reencode_node_and(w, p + 1, v);
      if (v4) {
        uint8_t b[8];
        put_be64(b, id);
        put(w, b, 8);
      } else {
        put_be32w(w, (uint32_t)id);
      }
      put_be32w(w, cre);
      return c + (p[0] == ETF_PORT ? 1 : 4);
    }
    case ETF_REFERENCE:
    case ETF_NEW_REFERENCE:
    case ETF_NEWER_REFERENCE: {
      uint32_t words = p[0] == ETF_REFERENCE ? 1 : get_be16(p + 1);
      const uint8_t *node = p + (p[0] == ETF_REFERENCE ? 1 : 3);
      const uint8_t *q = otpc__term_skip(node), *ids;
      uint32_t cre;
      if (p[0] == ETF_NEWER_REFERENCE) {
        cre = get_be32(q);
        ids = q + 4;
      } else if (p[0] == ETF_NEW_REFERENCE) {
        cre = q[0];
        ids = q + 1;
      } else {
        ids = q;
        cre = q[4];
      }
      bool extra = v == 2 && words < 5; /* a zero word more changes nothing */
      put1(w, ETF_NEWER_REFERENCE);
      put_be16w(w, (uint16_t)(words + extra));
      reencode_node_and(w, node, v);
      put_be32w(w, cre);
      put(w, ids, 4 * words);
      if (extra) put_be32w(w, 0);
      return p[0] == ETF_REFERENCE ? ids + 5 : ids + 4 * words;
    }
    case ETF_EXPORT: {
      put1(w, ETF_EXPORT);
      const uint8_t *q = reencode_atom(w, p + 1, v);
      q = reencode_atom(w, q, v);
      put(w, q, 2); /* arity stays a SMALL_INTEGER_EXT */
      return q + 2;
    }
    case ETF_NEW_FUN: {
      size_t start = w->len;
      put(w, p, 30); /* Size is fixed below */
      uint32_t num_free = get_be32(p + 26);
      const uint8_t *q = reencode_atom(w, p + 30, v);
      const uint8_t *olds = q; /* OldIndex, OldUniq: small integers only */
      q = otpc__term_skip(otpc__term_skip(q));
      put(w, olds, (size_t)(q - olds));
      q = reencode(w, q, v); /* Pid */
      for (uint32_t i = 0; i < num_free; i++) q = reencode(w, q, v);
      put_be32(w->p + start + 1, (uint32_t)(w->len - start - 1));
      return q;
    }
    default: break;
  }
  const uint8_t *end = otpc__term_skip(p);
  put(w, p, (size_t)(end - p));
  return end;
}

TEST(compare_other_encodings) {
  load_cases();
  int bad = 0;
  for (size_t i = 0; i < NCASES; i++) {
    for (int v = 1; v <= 2; v++) {
      wbuf_t w = {NULL, 0, 0};
      put1(&w, ETF_VERSION);
      reencode(&w, cases[i] + 1, v);
      otpc_term_t a = case_term(i), b = term_at(w.p + 1);
      bool ok = otpc_term_equal(a, b) && otpc_term_equal(b, a) &&
                otpc_term_compare(a, b) == 0 &&
                otpc_phash2_range(b, 1ull << 32) == term_cases[i].full;
      for (size_t k = 0; ok && k < NCASES; k += 7) {
        int want = sign(term_cases[i].rank - term_cases[k].rank);
        ok = otpc_term_compare(b, case_term(k)) == want &&
             otpc_term_compare(case_term(k), b) == -want;
      }
      if (!ok) {
        fprintf(stderr, "case %zu variant %d: %s\n", i, v, term_cases[i].etf);
        bad++;
      }
      free(w.p);
    }
  }
  CHECK_INT_EQ(bad, 0);
}

/* ------------------------------------------------------------------------
 * Duplicate map keys
 *
 * binary_to_term refuses a map with two =:= keys (badarg), and so does
 * otpc_term_validate(): OTPC_EBADARG at the map's tag.
 * ------------------------------------------------------------------------ */

/* term_to_binary(M) in OTP 25, M a map of 40 keys (so in hash order):
 * atoms k1..k24, 1, 1.0, 2, -5, 1 bsl 70, <<"bin">>, <<>>, "str", [],
 * {t, 1}, #{a => 1}, #{a => 1.0}, 'é', self(), 3.5 and {}. */
static const char erl_map40[] =
    "8374000000286b000373747261206400036b323361176400026b346104680264000174"
    "610161226400036b313861126400036b3133610d6400036b3134610e6400026b326102"
    "6400026b3861086400036b3135610f640001e9612562fffffffb611c6400036b313661"
    "106400026b3661066400036b3132610c6d0000000362696e611e6400026b3361036400"
    "036b323461186102611b6400026b3761076d00000000611f6400026b35610561016119"
    "6400036b323161156e0900000000000000000040611d6400036b3131610b463ff00000"
    "00000000611a740000000164000161610161235864000d6e6f6e6f6465406e6f686f73"
    "7400000009000000000000000061266a61216400036b3232611646400c000000000000"
    "6127680061286400026b3961096400036b323061146400036b313761116400036b3130"
    "610a6400036b31396113740000000164000161463ff000000000000061246400026b31"
    "6101";

/* term_to_binary(#{1 => a, 1.0 => b}): two keys, 1 =/= 1.0. */
static const char erl_int_float[] =
    "837400000002610164000161463ff000000000000064000162";

/* Validates n bytes (no version byte): 0 when they are one whole term,
 * else the error code, with its offset in *off. */
static int validate_at(const uint8_t *p, size_t n, size_t *off) {
  otpc_decode_error_t e = {0, 0};
  long rc = otpc_term_validate(p, n, NULL, &e);
  *off = e.offset;
  if (rc >= 0) {
    CHECK_INT_EQ(rc, (long)n);
    return 0;
  }
  CHECK_INT_EQ(e.code, rc);
  return (int)rc;
}

#define CHECK_VALIDATE(w, code, off)                                           \
  do {                                                                         \
    size_t off_ = 0;                                                           \
    int rc_ = validate_at((w)->p, (w)->len, &off_);                            \
    if (rc_ != (code) || (rc_ != 0 && off_ != (size_t)(off)))                  \
      otpc_test_fail(__FILE__, __LINE__, "got %d at %zu, want %d at %zu", rc_, \
                     off_, (int)(code), (size_t)(off));                        \
    free((w)->p);                                                              \
    *(w) = (wbuf_t){NULL, 0, 0};                                               \
  } while (0)

static void put_small(wbuf_t *w, uint8_t v) {
  put1(w, ETF_SMALL_INTEGER);
  put1(w, v);
}

static void put_hex(wbuf_t *w, const char *hex) {
  uint8_t b[512];
  size_t n = unhex(hex, b);
  put(w, b, n);
}

TEST(map_duplicate_keys) {
  wbuf_t w = {NULL, 0, 0};

  /* #{a => 1, a => 2} */
  put_be32x(&w, ETF_MAP, 2);
  put_atom(&w, "a", false);
  put_small(&w, 1);
  put_atom(&w, "a", false);
  put_small(&w, 2);
  CHECK_VALIDATE(&w, OTPC_EBADARG, 0);

  /* #{a, b, a}: not next to each other */
  put_be32x(&w, ETF_MAP, 3);
  put_atom(&w, "a", false);
  put_small(&w, 1);
  put_atom(&w, "b", false);
  put_small(&w, 2);
  put_atom(&w, "a", false);
  put_small(&w, 3);
  CHECK_VALIDATE(&w, OTPC_EBADARG, 0);

  /* #{b, a, c}: out of order is fine */
  put_be32x(&w, ETF_MAP, 3);
  put_atom(&w, "b", false);
  put_small(&w, 1);
  put_atom(&w, "a", false);
  put_small(&w, 2);
  put_atom(&w, "c", true);
  put_small(&w, 3);
  CHECK_VALIDATE(&w, 0, 0);

  /* #{1 => a, 1.0 => b}, as Erlang writes it and reversed */
  put_hex(&w, erl_int_float + 2);
  CHECK_VALIDATE(&w, 0, 0);
  put_be32x(&w, ETF_MAP, 2);
  put_hex(&w, "463ff000000000000064000162");
  put_hex(&w, "610164000161");
  CHECK_VALIDATE(&w, 0, 0);

  /* 1 as SMALL_INTEGER_EXT, INTEGER_EXT, SMALL_BIG_EXT: one key */
  static const char *const ones[] = {"6101", "6200000001", "6e010001"};
  for (int i = 0; i < 3; i++) {
    for (int k = 0; k < 3; k++) {
      put_be32x(&w, ETF_MAP, 2);
      put_hex(&w, ones[i]);
      put_small(&w, 0);
      put_hex(&w, ones[k]);
      put_small(&w, 0);
      CHECK_VALIDATE(&w, OTPC_EBADARG, 0);
    }
  }

  /* the Latin-1 and UTF-8 forms of an atom are one atom */
  static const char *const ab[] = {"6400026162", "73026162", "7600026162",
                                   "77026162"};
  for (int i = 0; i < 4; i++) {
    for (int k = 0; k < 4; k++) {
      put_be32x(&w, ETF_MAP, 2);
      put_hex(&w, ab[i]);
      put_small(&w, 0);
      put_hex(&w, ab[k]);
      put_small(&w, 0);
      CHECK_VALIDATE(&w, OTPC_EBADARG, 0);
    }
  }
  put_be32x(&w, ETF_MAP, 2); /* 'é' in Latin-1, then in UTF-8 */
  put_hex(&w, "7301e9");
  put_small(&w, 0);
  put_hex(&w, "7702c3a9");
  put_small(&w, 0);
  CHECK_VALIDATE(&w, OTPC_EBADARG, 0);
  put_be32x(&w, ETF_MAP, 2); /* 'é' and 'e' */
  put_hex(&w, "7301e9");
  put_small(&w, 0);
  put_hex(&w, "770165");
  put_small(&w, 0);
  CHECK_VALIDATE(&w, 0, 0);

  /* "ab" as STRING_EXT and as LIST_EXT */
  put_be32x(&w, ETF_MAP, 2);
  put_hex(&w, "6b00026162");
  put_small(&w, 0);
  put_hex(&w,
          "6c0000000261616162"
          "6a");
  put_small(&w, 0);
  CHECK_VALIDATE(&w, OTPC_EBADARG, 0);

  /* maps as keys: #{a => 1, b => 2} and the same written in reverse */
  put_be32x(&w, ETF_MAP, 2);
  put_hex(&w,
          "7400000002"
          "7701616101"
          "7701626102");
  put_atom(&w, "x", false);
  put_hex(&w,
          "7400000002"
          "7701626102"
          "6400016161"
          "01");
  put_atom(&w, "y", false);
  CHECK_VALIDATE(&w, OTPC_EBADARG, 0);
  /* #{a => 1} and #{a => 1.0} are different keys */
  put_be32x(&w, ETF_MAP, 2);
  put_hex(&w,
          "7400000001"
          "7701616101");
  put_atom(&w, "x", false);
  put_hex(&w,
          "7400000001"
          "770161"
          "463ff0000000000000");
  put_atom(&w, "y", false);
  CHECK_VALIDATE(&w, 0, 0);

  /* the offset is the map's: [x, #{a => 1, a => 1}] */
  put_be32x(&w, ETF_LIST, 2);
  put_atom(&w, "x", false);
  put_be32x(&w, ETF_MAP, 2);
  put_atom(&w, "a", false);
  put_small(&w, 1);
  put_atom(&w, "a", false);
  put_small(&w, 1);
  put1(&w, ETF_NIL);
  {
    size_t off;
    CHECK_INT_EQ(validate_at(w.p, w.len, &off), OTPC_EBADARG);
    CHECK_INT_EQ(off, 8);
    /* and with the version byte, one more */
    wbuf_t v = {NULL, 0, 0};
    put1(&v, ETF_VERSION);
    put(&v, w.p, w.len);
    otpc_term_t t;
    otpc_buf_t *owned;
    otpc_decode_error_t e = {0, 0};
    CHECK_INT_EQ(otpc_term_decode(v.p, v.len, NULL, &t, &owned, &e),
                 OTPC_EBADARG);
    CHECK_INT_EQ(e.code, OTPC_EBADARG);
    CHECK_INT_EQ(e.offset, 9);
    free(v.p);
  }
  free(w.p);
  w = (wbuf_t){NULL, 0, 0};

  /* a duplicate in a map that is a key: the inner map's offset */
  put_be32x(&w, ETF_MAP, 2);
  put_be32x(&w, ETF_MAP, 2);
  put_atom(&w, "a", false);
  put_small(&w, 1);
  put_atom(&w, "a", true);
  put_small(&w, 1);
  put_atom(&w, "x", false);
  put_atom(&w, "b", false);
  put_atom(&w, "y", false);
  CHECK_VALIDATE(&w, OTPC_EBADARG, 5);

  /* found when the map closes, before what follows it: [#{..} | <bad>] */
  put_be32x(&w, ETF_LIST, 1);
  put_be32x(&w, ETF_MAP, 2);
  put_atom(&w, "a", false);
  put_small(&w, 1);
  put_atom(&w, "a", false);
  put_small(&w, 1);
  put1(&w, ETF_ATOM_CACHE_REF);
  put1(&w, 0);
  CHECK_VALIDATE(&w, OTPC_EBADARG, 5);

  /* a map of one pair needs no check; an error inside a map is its own */
  put_be32x(&w, ETF_MAP, 1);
  put_atom(&w, "a", false);
  put_small(&w, 1);
  CHECK_VALIDATE(&w, 0, 0);
  put_be32x(&w, ETF_MAP, 2);
  put_atom(&w, "a", false);
  put_small(&w, 1);
  put_atom(&w, "a", false);
  put1(&w, ETF_LOCAL);
  CHECK_VALIDATE(&w, OTPC_EBADTAG, 13);
}

/* Erlang's 40-key map (hash order) is accepted; a copy with its 3rd key
 * written again as its 20th is not. */
TEST(map_duplicate_keys_erlang_large) {
  uint8_t bytes[sizeof erl_map40 / 2];
  size_t n = unhex(erl_map40, bytes);
  otpc_term_t t;
  otpc_buf_t *owned;
  otpc_decode_error_t e = {0, 0};
  CHECK_INT_EQ(otpc_term_decode(bytes, n, NULL, &t, &owned, &e), 0);
  CHECK(owned == NULL);
  size_t pairs;
  otpc_term_t first;
  CHECK_INT_EQ(otpc_term_get_map(t, &pairs, &first), 0);
  CHECK_INT_EQ(pairs, 40);
  CHECK_INT_EQ(otpc__map_check_keys(t), 0);
  bool sorted = true; /* the point: Erlang did not sort them */
  const uint8_t *k = t.p + 5;
  for (size_t i = 0; i + 1 < pairs; i++) {
    const uint8_t *next = otpc__term_skip(otpc__term_skip(k));
    if (otpc_term_compare(term_at(k), term_at(next)) >= 0) sorted = false;
    k = next;
  }
  CHECK(!sorted);

  /* {ok, Map'} */
  wbuf_t w = {NULL, 0, 0};
  put1(&w, ETF_SMALL_TUPLE);
  put1(&w, 2);
  put_atom(&w, "ok", false);
  size_t map_at = w.len;
  put(&w, t.p, 5);
  const uint8_t *key[40];
  k = t.p + 5;
  for (size_t i = 0; i < 40; i++) {
    key[i] = k;
    k = otpc__term_skip(otpc__term_skip(k));
  }
  for (size_t i = 0; i < 40; i++) {
    const uint8_t *src = i == 19 ? key[2] : key[i];
    const uint8_t *val = otpc__term_skip(key[i]);
    put(&w, src, (size_t)(otpc__term_skip(src) - src));
    put(&w, val, (size_t)(otpc__term_skip(val) - val));
  }
  CHECK_VALIDATE(&w, OTPC_EBADARG, map_at);
}

/* A little random generator, the same every run. */
static uint64_t rng_state = 0x9E3779B97F4A7C15u;
static uint64_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* Key number i, in one of several types: distinct numbers are distinct
 * keys (the float i + 0.5 never equals an integer). */
static void put_nth_key(wbuf_t *w, uint32_t i) {
  char text[16];
  switch (i % 5) {
    case 0: put_be32x(w, ETF_INTEGER, i); break;
    case 1:
      snprintf(text, sizeof text, "k%u", i);
      put_atom(w, text, i % 2);
      break;
    case 2:
      put_be32x(w, ETF_BINARY, 4);
      put_be32w(w, i);
      break;
    case 3: {
      double d = i + 0.5;
      uint64_t bits;
      memcpy(&bits, &d, sizeof bits);
      uint8_t b[9] = {ETF_NEW_FLOAT};
      put_be64(b + 1, bits);
      put(w, b, 9);
      break;
    }
    default: /* {i} */
      put1(w, ETF_SMALL_TUPLE);
      put1(w, 1);
      put_be32x(w, ETF_INTEGER, i);
      break;
  }
}

/* Key number i as [0, 0, 0, 0, i]: keys that differ past the elements
 * the check hashes, so that it must fall back to sorting. */
static void put_colliding_key(wbuf_t *w, uint32_t i) {
  put_be32x(w, ETF_LIST, 5);
  for (int k = 0; k < 4; k++) put_small(w, 0);
  put_be32x(w, ETF_INTEGER, i);
  put1(w, ETF_NIL);
}

/* A map of n keys in random order; with dup, key number b is written
 * again in place of key number a. */
static void put_random_map_of(wbuf_t *w, uint32_t n, bool dup, uint32_t *a,
                              uint32_t *b,
                              void (*put_key)(wbuf_t *, uint32_t)) {
  uint32_t *ord = malloc(n * sizeof *ord);
  CHECK(ord != NULL);
  for (uint32_t i = 0; i < n; i++) ord[i] = i;
  for (uint32_t i = n; i > 1; i--) {
    uint32_t j = (uint32_t)(rng() % i), x = ord[i - 1];
    ord[i - 1] = ord[j];
    ord[j] = x;
  }
  *a = (uint32_t)(rng() % n);
  do *b = (uint32_t)(rng() % n);
  while (*b == *a);
  put_be32x(w, ETF_MAP, n);
  for (uint32_t i = 0; i < n; i++) {
    put_key(w, dup && ord[i] == *a ? *b : ord[i]);
    put1(w, ETF_NIL);
  }
  free(ord);
}

static void put_random_map(wbuf_t *w, uint32_t n, bool dup, uint32_t *a,
                           uint32_t *b) {
  put_random_map_of(w, n, dup, a, b, put_nth_key);
}

/* Random maps on both sides of each size limit in compare.c (pairs
 * compared up to 4 keys, the 64-key buffer, the on-stack hash table up to
 * 128 keys; with colliding keys, binary insertion up to 128 keys, then
 * heapsort), with and without one duplicate anywhere; validate and
 * otpc__map_check_keys, that one also without memory. */
TEST(map_duplicate_keys_random) {
  static const uint32_t sizes[] = {2,  3,  4,   5,   32,  33,  40,
                                   64, 65, 128, 129, 256, 257, 1000};
  for (size_t s = 0; s < 2 * sizeof sizes / sizeof sizes[0]; s++) {
    bool colliding = s % 2;
    uint32_t size = sizes[s / 2];
    int rounds = size > 256 ? 10 : colliding ? 30 : 100;
    for (int r = 0; r < rounds; r++) {
      for (int dup = 0; dup <= 1; dup++) {
        wbuf_t w = {NULL, 0, 0};
        uint32_t a, b;
        put_random_map_of(&w, size, dup, &a, &b,
                          colliding ? put_colliding_key : put_nth_key);
        size_t off;
        int rc = validate_at(w.p, w.len, &off);
        if (rc != (dup ? OTPC_EBADARG : 0) || (rc && off != 0))
          otpc_test_fail(__FILE__, __LINE__,
                         "n %u colliding %d dup %d (%u as %u): %d", size,
                         colliding, dup, a, b, rc);
        CHECK_INT_EQ(otpc__map_check_keys(term_at(w.p)), rc);
        if (r < 3) { /* no memory: walks and pairs instead */
          otpc_allocator_t none = {no_malloc, no_realloc, free};
          otpc_set_allocator(&none);
          int rc2 = otpc__map_check_keys(term_at(w.p));
          int rc3 = validate_at(w.p, w.len, &off);
          otpc_set_allocator(NULL);
          CHECK_INT_EQ(rc2, rc);
          CHECK_INT_EQ(rc3, rc);
        }
        free(w.p);
      }
    }
  }
  /* sorted with a duplicate at the end, and at the start */
  for (int where = 0; where < 2; where++) {
    wbuf_t w = {NULL, 0, 0};
    put_be32x(&w, ETF_MAP, 100);
    for (uint32_t i = 0; i < 100; i++) {
      uint32_t v = where ? (i == 0 ? 1 : i) : (i == 99 ? 98 : i);
      put_be32x(&w, ETF_INTEGER, v);
      put1(&w, ETF_NIL);
    }
    CHECK_VALIDATE(&w, OTPC_EBADARG, 0);
  }
}

/* Small maps drawn from keys with several encodings each: a map must be
 * refused exactly when two of its keys are the same value. */
TEST(map_duplicate_keys_encodings) {
  /* class (equal values share one), then the term's bytes */
  static const struct {
    int cls;
    const char *hex;
  } pool[] = {
      /* clang-format off */
      {0, "6101"},                     /* 1 */
      {0, "6200000001"},               /* 1, INTEGER_EXT */
      {0, "6e010001"},                 /* 1, SMALL_BIG_EXT */
      {1, "463ff0000000000000"},       /* 1.0 */
      {1, "63312e3030303030303030303030303030303030303030652b"
          "30300000000000"},           /* 1.0, FLOAT_EXT */
      {2, "6102"},                     /* 2 */
      {3, "6400026162"},               /* 'ab', ATOM_EXT */
      {3, "77026162"},                 /* 'ab', SMALL_ATOM_UTF8_EXT */
      {4, "7301e9"},                   /* 'é', Latin-1 */
      {4, "7702c3a9"},                 /* 'é', UTF-8 */
      {5, "6b00026162"},               /* "ab" */
      {5, "6c00000002616161626a"},     /* [$a, $b] */
      {6, "6a"},                       /* [] */
      {6, "6b0000"},                   /* "" */
      {7, "74000000017701616101"},     /* #{a => 1} */
      {7, "7400000001640001616200000001"},
      {8, "7400000001770161463ff0000000000000"}, /* #{a => 1.0} */
      {9, "6d000000026162"},           /* <<"ab">> */
      {9, "4d00000002086162"},         /* as BIT_BINARY_EXT */
      {10, "6801770161"},              /* {a} */
      {10, "6900000001730161"},        /* LARGE_TUPLE_EXT, Latin-1 'a' */
      {11, "6c0000000161016c0000000161026a"}, /* [1 | [2]] */
      {11, "6c00000002610161026a"},    /* [1, 2] */
      {11, "6b00020102"},              /* [1, 2] as a string */
      {12, "64000261e9"},              /* 'aé', Latin-1 */
      {12, "770361c3a9"},              /* 'aé', UTF-8 */
      {13, "64000b6162636465666768696a6b"}, /* 'abcdefghijk' */
      {13, "770b6162636465666768696a6b"},
      {14, "770b6162636465666768696a6c"},   /* 'abcdefghijl' */
      {15, "64001b6162636465666768696a6b6c6d6e6f707172737475767778797ae9"},
      {15, "771c6162636465666768696a6b6c6d6e6f707172737475767778797ac3a9"},
      /* clang-format on */
  };
  enum { NPOOL = sizeof pool / sizeof pool[0] };
  int bad = 0;
  /* the classes agree with =:= */
  for (int i = 0; i < NPOOL; i++) {
    uint8_t x[128], y[128];
    unhex(pool[i].hex, x);
    for (int k = 0; k < NPOOL; k++) {
      unhex(pool[k].hex, y);
      if (otpc_term_equal(term_at(x), term_at(y)) !=
          (pool[i].cls == pool[k].cls)) {
        fprintf(stderr, "%s vs %s\n", pool[i].hex, pool[k].hex);
        bad++;
      }
    }
  }
  CHECK_INT_EQ(bad, 0);
  for (int trial = 0; trial < 3000; trial++) {
    int n = 2 + (int)(rng() % 7), pick[8];
    bool want_dup = false;
    for (int i = 0; i < n; i++) {
      pick[i] = (int)(rng() % NPOOL);
      for (int k = 0; k < i; k++)
        if (pool[pick[k]].cls == pool[pick[i]].cls) want_dup = true;
    }
    wbuf_t w = {NULL, 0, 0};
    put_be32x(&w, ETF_MAP, (uint32_t)n);
    for (int i = 0; i < n; i++) {
      put_hex(&w, pool[pick[i]].hex);
      put_small(&w, (uint8_t)i);
    }
    size_t off;
    int rc = validate_at(w.p, w.len, &off);
    if (rc != (want_dup ? OTPC_EBADARG : 0) && bad++ < 5) {
      fprintf(stderr, "trial %d: %d, want dup %d:", trial, rc, want_dup);
      for (int i = 0; i < n; i++) fprintf(stderr, " %s", pool[pick[i]].hex);
      fprintf(stderr, "\n");
    }
    free(w.p);
  }
  CHECK_INT_EQ(bad, 0);
}

/* Every term Erlang gave us (maps of up to 300 keys among them) passes. */
TEST(map_duplicate_keys_erlang_cases) {
  load_cases();
  for (size_t i = 0; i < NCASES; i++) {
    size_t n = strlen(term_cases[i].etf) / 2, off;
    int rc = validate_at(cases[i] + 1, n - 1, &off);
    if (rc != 0 && cases[i][1 + off] == ETF_MAP) /* hand-made ones may fail */
      otpc_test_fail(__FILE__, __LINE__, "case %zu: %d at %zu: %.200s", i, rc,
                     off, term_cases[i].etf);
  }
}

/* Without memory, validate still checks maps with more keys than its
 * stack of keys holds: #{a => #{100 keys}, a => 1} and the like. */
TEST(map_duplicate_keys_without_memory) {
  for (int inner_dup = 0; inner_dup <= 1; inner_dup++) {
    for (int outer_dup = 0; outer_dup <= 1; outer_dup++) {
      wbuf_t w = {NULL, 0, 0};
      put_be32x(&w, ETF_MAP, 3);
      put_atom(&w, "a", false);
      uint32_t a, b;
      put_random_map(&w, 100, inner_dup, &a, &b);
      put_atom(&w, "b", false);
      put_random_map(&w, 60, false, &a, &b);
      put_atom(&w, outer_dup ? "a" : "c", true);
      put1(&w, ETF_NIL);
      size_t off = 0;
      int want = inner_dup || outer_dup ? OTPC_EBADARG : 0;
      size_t want_off = inner_dup ? 8 : 0;
      CHECK_INT_EQ(validate_at(w.p, w.len, &off), want);
      if (want) CHECK_INT_EQ(off, want_off);
      otpc_allocator_t none = {no_malloc, no_realloc, free};
      otpc_set_allocator(&none);
      int rc = validate_at(w.p, w.len, &off);
      otpc_set_allocator(NULL);
      CHECK_INT_EQ(rc, want);
      if (want) CHECK_INT_EQ(off, want_off);
      free(w.p);
    }
  }
}
