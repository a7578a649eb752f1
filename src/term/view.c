/*
 * view.c: reading checked ETF in place.
 *
 * Every function here takes views into bytes that otpc_term_validate()
 * accepted, so lengths are trusted and nothing is bounds-checked again.
 * Nothing here allocates, except interning an atom that is new.
 *
 * Lists: a list may be written as LIST_EXT, as STRING_EXT (bytes that are
 * small integers), or as a LIST_EXT whose tail is again a list. The iterator
 * hides all three: it yields the elements of the whole chain and then the
 * final tail. Everything that walks lists (printing, order, hashing) goes
 * through it so that all three forms behave as the one Erlang term.
 */
#include <locale.h>
#include <math.h>
#include <stdlib.h>

#include "term_int.h"

static const uint8_t nil_byte = ETF_NIL;

/* Size of an atom term at p (any atom tag). */
static inline size_t atom_size(const uint8_t *p) {
  if (p[0] == ETF_SMALL_ATOM || p[0] == ETF_SMALL_ATOM_UTF8) return 2 + p[1];
  return 3 + (size_t)get_be16(p + 1);
}

const uint8_t *otpc__term_skip(const uint8_t *p) {
  /* The commonest leaves first, without the loop. */
  if (p[0] == ETF_SMALL_INTEGER) return p + 2;
  if (p[0] == ETF_INTEGER) return p + 5;
  if (p[0] == ETF_SMALL_ATOM_UTF8) return p + 2 + p[1];
  /* and the pids and refs of calls, replies and monitors */
  if (p[0] == ETF_NEWER_REFERENCE && p[3] == ETF_SMALL_ATOM_UTF8)
    return p + 5 + p[4] + 4 + 4 * (size_t)get_be16(p + 1);
  if (p[0] == ETF_NEW_PID && p[1] == ETF_SMALL_ATOM_UTF8)
    return p + 3 + p[2] + 12;
  uint64_t todo = 1;
  while (todo != 0) {
    todo--;
    switch (p[0]) {
      case ETF_SMALL_INTEGER: p += 2; break;
      case ETF_INTEGER: p += 5; break;
      case ETF_FLOAT: p += 32; break;
      case ETF_NEW_FLOAT: p += 9; break;
      case ETF_ATOM:
      case ETF_SMALL_ATOM:
      case ETF_ATOM_UTF8:
      case ETF_SMALL_ATOM_UTF8: p += atom_size(p); break;
      case ETF_PID: p += 1 + atom_size(p + 1) + 9; break;
      case ETF_NEW_PID: p += 1 + atom_size(p + 1) + 12; break;
      case ETF_PORT: p += 1 + atom_size(p + 1) + 5; break;
      case ETF_NEW_PORT: p += 1 + atom_size(p + 1) + 8; break;
      case ETF_V4_PORT: p += 1 + atom_size(p + 1) + 12; break;
      case ETF_REFERENCE: p += 1 + atom_size(p + 1) + 5; break;
      case ETF_NEW_REFERENCE:
        p += 3 + atom_size(p + 3) + 1 + 4 * (size_t)get_be16(p + 1);
        break;
      case ETF_NEWER_REFERENCE:
        p += 3 + atom_size(p + 3) + 4 + 4 * (size_t)get_be16(p + 1);
        break;
      case ETF_SMALL_TUPLE: todo += p[1]; p += 2; break;
      case ETF_LARGE_TUPLE: todo += get_be32(p + 1); p += 5; break;
      case ETF_MAP: todo += 2 * (uint64_t)get_be32(p + 1); p += 5; break;
      case ETF_NIL: p += 1; break;
      case ETF_STRING: p += 3 + (size_t)get_be16(p + 1); break;
      case ETF_LIST: todo += (uint64_t)get_be32(p + 1) + 1; p += 5; break;
      case ETF_BINARY: p += 5 + (size_t)get_be32(p + 1); break;
      case ETF_BIT_BINARY: p += 6 + (size_t)get_be32(p + 1); break;
      case ETF_SMALL_BIG: p += 3 + p[1]; break;
      case ETF_LARGE_BIG: p += 6 + (size_t)get_be32(p + 1); break;
      case ETF_NEW_FUN: p += 1 + (size_t)get_be32(p + 1); break;
      case ETF_EXPORT:
        p += 1;
        p += atom_size(p);
        p += atom_size(p);
        p += 2; /* SMALL_INTEGER arity */
        break;
      default: abort(); /* validation admits no other tag */
    }
  }
  return p;
}

otpc_type_t otpc_term_type(otpc_term_t t) {
  if (t.kind == TERM_CHAR) return OTPC_TYPE_INTEGER;
  if (t.kind != TERM_ENCODED) return OTPC_TYPE_NONE;
  switch (t.p[0]) {
    case ETF_SMALL_INTEGER:
    case ETF_INTEGER:
    case ETF_SMALL_BIG:
    case ETF_LARGE_BIG: return OTPC_TYPE_INTEGER;
    case ETF_FLOAT:
    case ETF_NEW_FLOAT: return OTPC_TYPE_FLOAT;
    case ETF_ATOM:
    case ETF_SMALL_ATOM:
    case ETF_ATOM_UTF8:
    case ETF_SMALL_ATOM_UTF8: return OTPC_TYPE_ATOM;
    case ETF_REFERENCE:
    case ETF_NEW_REFERENCE:
    case ETF_NEWER_REFERENCE: return OTPC_TYPE_REF;
    case ETF_NEW_FUN:
    case ETF_EXPORT: return OTPC_TYPE_FUN;
    case ETF_PORT:
    case ETF_NEW_PORT:
    case ETF_V4_PORT: return OTPC_TYPE_PORT;
    case ETF_PID:
    case ETF_NEW_PID: return OTPC_TYPE_PID;
    case ETF_SMALL_TUPLE:
    case ETF_LARGE_TUPLE: return OTPC_TYPE_TUPLE;
    case ETF_MAP: return OTPC_TYPE_MAP;
    case ETF_NIL: return OTPC_TYPE_NIL;
    case ETF_STRING:
    case ETF_LIST: return OTPC_TYPE_LIST;
    case ETF_BINARY:
    case ETF_BIT_BINARY: return OTPC_TYPE_BITSTRING;
    default: return OTPC_TYPE_NONE;
  }
}

bool otpc_term_is_none(otpc_term_t t) { return t.kind == TERM_NONE; }

size_t otpc_term_size(otpc_term_t t) {
  if (t.kind == TERM_CHAR) return t.chr < 256 ? 2 : 5;
  if (t.kind != TERM_ENCODED) return 0;
  return (size_t)(otpc__term_skip(t.p) - t.p);
}

otpc_term_t otpc_term_next(otpc_term_t t) {
  if (t.kind != TERM_ENCODED) return term_none();
  return term_at(otpc__term_skip(t.p));
}

/* ---- integers ----------------------------------------------------------- */

bool otpc__term_int_parts(otpc_term_t t, bool *neg, const uint8_t **mag,
                          size_t *n, uint8_t scratch[8]) {
  int64_t v;
  if (t.kind == TERM_CHAR) {
    v = t.chr;
  } else if (t.kind != TERM_ENCODED) {
    return false;
  } else if (t.p[0] == ETF_SMALL_INTEGER) {
    v = t.p[1];
  } else if (t.p[0] == ETF_INTEGER) {
    v = (int32_t)get_be32(t.p + 1);
  } else if (t.p[0] == ETF_SMALL_BIG || t.p[0] == ETF_LARGE_BIG) {
    size_t len, off;
    if (t.p[0] == ETF_SMALL_BIG) {
      len = t.p[1];
      off = 2;
    } else {
      len = get_be32(t.p + 1);
      off = 5;
    }
    *mag = t.p + off + 1;
    while (len > 0 && (*mag)[len - 1] == 0) len--;
    *n = len;
    *neg = len != 0 && t.p[off] != 0;
    return true;
  } else {
    return false;
  }
  *neg = v < 0;
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  size_t len = 0;
  while (u != 0) {
    scratch[len++] = (uint8_t)u;
    u >>= 8;
  }
  *mag = scratch;
  *n = len;
  return true;
}

int otpc_term_get_bigint(otpc_term_t t, bool *negative, const uint8_t **mag,
                         size_t *nbytes, uint8_t scratch[8]) {
  return otpc__term_int_parts(t, negative, mag, nbytes, scratch) ? 0
                                                                 : OTPC_ETYPE;
}

/* Magnitude as uint64 if it fits. */
static int int_parts_u64(otpc_term_t t, bool *neg, uint64_t *u) {
  const uint8_t *mag;
  size_t n;
  uint8_t scratch[8];
  if (!otpc__term_int_parts(t, neg, &mag, &n, scratch)) return OTPC_ETYPE;
  if (n > 8) return OTPC_ERANGE;
  uint64_t v = 0;
  for (size_t i = n; i-- > 0;) v = (v << 8) | mag[i];
  *u = v;
  return 0;
}

int otpc_term_get_int64(otpc_term_t t, int64_t *out) {
  /* The common encodings first, without the big-integer path. */
  if (t.kind == TERM_ENCODED && t.p[0] == ETF_SMALL_INTEGER) {
    *out = t.p[1];
    return 0;
  }
  if (t.kind == TERM_ENCODED && t.p[0] == ETF_INTEGER) {
    *out = (int32_t)get_be32(t.p + 1);
    return 0;
  }
  if (t.kind == TERM_CHAR) {
    *out = t.chr;
    return 0;
  }
  bool neg;
  uint64_t u;
  int rc = int_parts_u64(t, &neg, &u);
  if (rc != 0) return rc;
  if (!neg && u > (uint64_t)INT64_MAX) return OTPC_ERANGE;
  if (neg && u > (uint64_t)INT64_MAX + 1) return OTPC_ERANGE;
  *out = neg ? (int64_t)(0 - u) : (int64_t)u;
  return 0;
}

int otpc_term_get_uint64(otpc_term_t t, uint64_t *out) {
  bool neg;
  uint64_t u;
  int rc = int_parts_u64(t, &neg, &u);
  if (rc != 0) return rc;
  if (neg) return OTPC_ERANGE;
  *out = u;
  return 0;
}

int otpc_term_get_int(otpc_term_t t, int *out) {
  int64_t v;
  int rc = otpc_term_get_int64(t, &v);
  if (rc != 0) return rc;
  if (v < INT32_MIN || v > INT32_MAX) return OTPC_ERANGE;
  *out = (int)v;
  return 0;
}

int otpc_term_get_double(otpc_term_t t, double *out) {
  if (t.kind != TERM_ENCODED) return OTPC_ETYPE;
  if (t.p[0] == ETF_NEW_FLOAT) {
    uint64_t bits = get_be64(t.p + 1);
    memcpy(out, &bits, sizeof *out);
    return 0;
  }
  if (t.p[0] == ETF_FLOAT) return otpc__float_text(t.p + 1, out);
  return OTPC_ETYPE;
}

/* The 31 bytes of an old FLOAT_EXT: "%.20e" text, NUL padded. Only plain
 * decimal notation is taken (no hex, inf or nan), and it is read in the C
 * locale whatever the program's locale is. */
int otpc__float_text(const uint8_t *text31, double *out) {
  static locale_t c_locale;
  char text[32];
  size_t n = 0;
  memcpy(text, text31, 31);
  text[31] = '\0';
  while (n < 31 && text[n] != '\0') {
    char c = text[n++];
    if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' ||
          c == '+' || c == '-' || c == ' '))
      return OTPC_EBADARG;
  }
  locale_t loc = __atomic_load_n(&c_locale, __ATOMIC_ACQUIRE);
  if (loc == (locale_t)0) {
    locale_t fresh = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (fresh == (locale_t)0) return OTPC_ENOMEM;
    locale_t expected = (locale_t)0;
    if (!__atomic_compare_exchange_n(&c_locale, &expected, fresh, false,
                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
      freelocale(fresh);
      loc = expected;
    } else {
      loc = fresh;
    }
  }
  char *end;
  double d = strtod_l(text, &end, loc);
  if (end == text || !isfinite(d)) return OTPC_EBADARG;
  for (; *end; end++)
    if (*end != ' ') return OTPC_EBADARG;
  *out = d;
  return 0;
}

/* ---- atoms -------------------------------------------------------------- */

bool otpc__term_atom_raw(otpc_term_t t, const uint8_t **text, size_t *len,
                         bool *latin1) {
  if (t.kind != TERM_ENCODED) return false;
  switch (t.p[0]) {
    case ETF_SMALL_ATOM_UTF8:
    case ETF_SMALL_ATOM:
      *len = t.p[1];
      *text = t.p + 2;
      *latin1 = t.p[0] == ETF_SMALL_ATOM;
      return true;
    case ETF_ATOM_UTF8:
    case ETF_ATOM:
      *len = get_be16(t.p + 1);
      *text = t.p + 3;
      *latin1 = t.p[0] == ETF_ATOM;
      return true;
    default: return false;
  }
}

int otpc_term_get_atom(otpc_term_t t, otpc_atom_t *out) {
  const uint8_t *text;
  size_t len;
  bool latin1;
  if (!otpc__term_atom_raw(t, &text, &len, &latin1)) return OTPC_ETYPE;
  return otpc__atom_intern(text, len, latin1, out);
}

/* Latin-1 bytes against UTF-8 text. */
static bool latin1_eq_utf8(const uint8_t *l, size_t ln, const uint8_t *u,
                           size_t un) {
  size_t j = 0;
  for (size_t i = 0; i < ln; i++) {
    if (l[i] < 0x80) {
      if (j >= un || u[j] != l[i]) return false;
      j++;
    } else {
      if (j + 1 >= un || u[j] != (uint8_t)(0xC0 | (l[i] >> 6)) ||
          u[j + 1] != (uint8_t)(0x80 | (l[i] & 0x3F)))
        return false;
      j += 2;
    }
  }
  return j == un;
}

bool otpc_term_atom_eq(otpc_term_t t, const char *utf8, size_t len) {
  /* As this node and current Erlang write atoms: */
  if (t.kind == TERM_ENCODED && t.p[0] == ETF_SMALL_ATOM_UTF8)
    return t.p[1] == len && memcmp(t.p + 2, utf8, len) == 0;
  const uint8_t *text;
  size_t n;
  bool latin1;
  if (!otpc__term_atom_raw(t, &text, &n, &latin1)) return false;
  if (!latin1) return n == len && memcmp(text, utf8, len) == 0;
  return latin1_eq_utf8(text, n, (const uint8_t *)utf8, len);
}

bool otpc_term_is_atom(otpc_term_t t, otpc_atom_t atom) {
  size_t len;
  const char *name = otpc_atom_name(atom, &len);
  return name != NULL && otpc_term_atom_eq(t, name, len);
}

int otpc_term_get_bool(otpc_term_t t, bool *out) {
  if (otpc_term_atom_eq(t, "true", 4)) {
    *out = true;
    return 0;
  }
  if (otpc_term_atom_eq(t, "false", 5)) {
    *out = false;
    return 0;
  }
  return OTPC_ETYPE;
}

/* ---- binaries ----------------------------------------------------------- */

int otpc_term_get_binary(otpc_term_t t, const uint8_t **data, size_t *bytes,
                         unsigned *bits) {
  if (t.kind != TERM_ENCODED) return OTPC_ETYPE;
  if (t.p[0] == ETF_BINARY) {
    *bytes = get_be32(t.p + 1);
    *data = t.p + 5;
    *bits = 8;
    return 0;
  }
  if (t.p[0] == ETF_BIT_BINARY) {
    *bytes = get_be32(t.p + 1);
    *data = t.p + 6;
    *bits = *bytes == 0 ? 8 : t.p[5];
    return 0;
  }
  return OTPC_ETYPE;
}

/* ---- tuples ------------------------------------------------------------- */

int otpc_term_get_tuple(otpc_term_t t, size_t *arity, otpc_term_t *first) {
  if (t.kind != TERM_ENCODED) return OTPC_ETYPE;
  if (t.p[0] == ETF_SMALL_TUPLE) {
    *arity = t.p[1];
    if (first) *first = *arity ? term_at(t.p + 2) : term_none();
    return 0;
  }
  if (t.p[0] == ETF_LARGE_TUPLE) {
    *arity = get_be32(t.p + 1);
    if (first) *first = *arity ? term_at(t.p + 5) : term_none();
    return 0;
  }
  return OTPC_ETYPE;
}

otpc_term_t otpc_term_tuple_elem(otpc_term_t t, size_t i) {
  size_t arity;
  otpc_term_t e;
  if (otpc_term_get_tuple(t, &arity, &e) != 0 || i >= arity)
    return term_none();
  while (i-- > 0) e = term_at(otpc__term_skip(e.p));
  return e;
}

/* ---- lists -------------------------------------------------------------- */

/* Points the iterator at the list or string at p, or leaves it done with p
 * as the tail when p is anything else. */
static void iter_enter(otpc_list_iter_t *it, const uint8_t *p) {
  if (p[0] == ETF_LIST) {
    it->left = get_be32(p + 1);
    it->p = p + 5;
    it->is_string = 0;
  } else if (p[0] == ETF_STRING) {
    it->left = get_be16(p + 1);
    it->p = p + 3;
    it->is_string = 1;
  } else {
    it->left = 0;
    it->p = p;
    it->is_string = 0;
  }
}

int otpc_term_list_iter(otpc_term_t t, otpc_list_iter_t *it) {
  if (t.kind != TERM_ENCODED ||
      (t.p[0] != ETF_LIST && t.p[0] != ETF_STRING && t.p[0] != ETF_NIL))
    return OTPC_ETYPE;
  iter_enter(it, t.p);
  return 0;
}

bool otpc_list_next(otpc_list_iter_t *it, otpc_term_t *elem) {
  if (it->left == 0) {
    /* A string's end, or a tail that is itself a list: go on into it. */
    if (it->is_string) {
      it->is_string = 0;
      it->p = &nil_byte;
      return false;
    }
    if (it->p[0] != ETF_LIST && it->p[0] != ETF_STRING) return false;
    iter_enter(it, it->p);
    if (it->left == 0) return otpc_list_next(it, elem);
  }
  it->left--;
  if (it->is_string) {
    *elem = term_char(*it->p++);
    if (it->left == 0) {
      it->is_string = 0;
      it->p = &nil_byte;
    }
  } else {
    *elem = term_at(it->p);
    it->p = otpc__term_skip(it->p);
  }
  return true;
}

otpc_term_t otpc_list_tail(const otpc_list_iter_t *it) {
  return term_at(it->is_string ? &nil_byte : it->p);
}

int otpc_term_list_length(otpc_term_t t, size_t *len) {
  otpc_list_iter_t it;
  otpc_term_t e;
  size_t n = 0;
  if (otpc_term_list_iter(t, &it) != 0) return OTPC_ETYPE;
  while (otpc_list_next(&it, &e)) n++;
  if (otpc_list_tail(&it).p[0] != ETF_NIL) return OTPC_ETYPE;
  *len = n;
  return 0;
}

/* ---- maps --------------------------------------------------------------- */

int otpc_term_get_map(otpc_term_t t, size_t *pairs, otpc_term_t *first_key) {
  if (t.kind != TERM_ENCODED || t.p[0] != ETF_MAP) return OTPC_ETYPE;
  *pairs = get_be32(t.p + 1);
  if (first_key) *first_key = *pairs ? term_at(t.p + 5) : term_none();
  return 0;
}

otpc_term_t otpc_term_map_get(otpc_term_t map, otpc_term_t key) {
  size_t n;
  otpc_term_t k;
  if (otpc_term_get_map(map, &n, &k) != 0) return term_none();
  while (n-- > 0) {
    otpc_term_t v = term_at(otpc__term_skip(k.p));
    if (otpc_term_equal(k, key)) return v;
    k = term_at(otpc__term_skip(v.p));
  }
  return term_none();
}

otpc_term_t otpc_term_map_get_atom(otpc_term_t map, const char *key) {
  size_t n, len = strlen(key);
  otpc_term_t k;
  if (otpc_term_get_map(map, &n, &k) != 0) return term_none();
  while (n-- > 0) {
    otpc_term_t v = term_at(otpc__term_skip(k.p));
    if (otpc_term_atom_eq(k, key, len)) return v;
    k = term_at(otpc__term_skip(v.p));
  }
  return term_none();
}

/* ---- identifiers -------------------------------------------------------- */

/* Interns the node atom at p and returns the byte after it. Most pids and
 * refs name this node, written as this node writes it: that text is
 * compared, not looked up. */
static const uint8_t *node_at(const uint8_t *p, otpc_atom_t *node, int *rc) {
  const otpc__node_ext_t *e = otpc__local_node_ext();
  if (e != NULL && p[1] + 2u == e->n && memcmp(p, e->bytes, e->n) == 0) {
    *node = e->atom;
    *rc = 0;
    return p + e->n;
  }
  *rc = otpc_term_get_atom(term_at(p), node);
  return p + atom_size(p);
}

int otpc_term_get_pid(otpc_term_t t, otpc_pid_t *out) {
  int rc;
  if (t.kind != TERM_ENCODED || (t.p[0] != ETF_PID && t.p[0] != ETF_NEW_PID))
    return OTPC_ETYPE;
  const uint8_t *q = node_at(t.p + 1, &out->node, &rc);
  if (rc != 0) return rc;
  out->id = get_be32(q);
  out->serial = get_be32(q + 4);
  out->creation = t.p[0] == ETF_PID ? q[8] : get_be32(q + 8);
  return 0;
}

int otpc_term_get_port(otpc_term_t t, otpc_port_t *out) {
  int rc;
  if (t.kind != TERM_ENCODED) return OTPC_ETYPE;
  uint8_t tag = t.p[0];
  if (tag != ETF_PORT && tag != ETF_NEW_PORT && tag != ETF_V4_PORT)
    return OTPC_ETYPE;
  const uint8_t *q = node_at(t.p + 1, &out->node, &rc);
  if (rc != 0) return rc;
  if (tag == ETF_V4_PORT) {
    out->id = get_be64(q);
    out->creation = get_be32(q + 8);
  } else {
    out->id = get_be32(q);
    out->creation = tag == ETF_PORT ? q[4] : get_be32(q + 4);
  }
  return 0;
}

int otpc_term_get_ref(otpc_term_t t, otpc_ref_t *out) {
  int rc;
  if (t.kind != TERM_ENCODED) return OTPC_ETYPE;
  uint8_t tag = t.p[0];
  const uint8_t *q;
  if (tag == ETF_REFERENCE) {
    q = node_at(t.p + 1, &out->node, &rc);
    out->len = 1;
    out->id[0] = get_be32(q);
    out->creation = q[4];
    return rc;
  }
  if (tag != ETF_NEW_REFERENCE && tag != ETF_NEWER_REFERENCE)
    return OTPC_ETYPE;
  out->len = get_be16(t.p + 1);
  q = node_at(t.p + 3, &out->node, &rc);
  if (rc != 0) return rc;
  if (tag == ETF_NEW_REFERENCE) {
    out->creation = q[0];
    q += 1;
  } else {
    out->creation = get_be32(q);
    q += 4;
  }
  for (uint32_t i = 0; i < out->len; i++) out->id[i] = get_be32(q + 4 * i);
  for (uint32_t i = out->len; i < OTPC_REF_MAX_WORDS; i++) out->id[i] = 0;
  return 0;
}

int otpc_term_get_export(otpc_term_t t, otpc_atom_t *module,
                         otpc_atom_t *function, unsigned *arity) {
  if (t.kind != TERM_ENCODED || t.p[0] != ETF_EXPORT) return OTPC_ETYPE;
  const uint8_t *p = t.p + 1;
  int rc = otpc_term_get_atom(term_at(p), module);
  if (rc != 0) return rc;
  p += atom_size(p);
  rc = otpc_term_get_atom(term_at(p), function);
  if (rc != 0) return rc;
  p += atom_size(p);
  *arity = p[1];
  return 0;
}
