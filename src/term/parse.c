/*
 * parse.c: Erlang term text to ETF. Owns the syntax tree of scan.h (its
 * parser, its two normalising passes and its emitter) and the public
 * otpc_build_parse() and otpc_term_parse().
 *
 * The tree is a flat array of nodes in prefix order; a container records
 * how many nodes its subtree takes, so a subtree is skipped in O(1). It is
 * built without recursion: an open container keeps its parent's index in
 * its size field until it closes. Nesting deeper than
 * OTPC__TREE_MAX_DEPTH is OTPC_EDEPTH.
 *
 * The emitter writes what term_to_binary(T, [{minor_version, 2}]) writes,
 * byte for byte, for maps of at most 32 pairs too:
 *   - list chains are one list: [1|[2]] and [1|"b"] are [1,2] and [1,98];
 *     a proper list of 0..255 integers is a STRING_EXT (otpc__tree_lists);
 *   - a map of at most 32 pairs is written in Erlang's key order (term
 *     order, except that an integer sorts before any float), duplicate keys
 *     keep the last value (otpc__tree_maps); larger maps are written in the
 *     reverse of the text's order, which is how Erlang's printed order
 *     relates to the order term_to_binary writes (see print.c).
 * Both passes and the emitter are loops over the array; none recurses.
 *
 * Pids, ports and references must name node 0, the local node
 * (otpc__local_node(), otpc__local_creation()); other node numbers are a syntax error,
 * since the number of a remote node only means something inside the Erlang
 * node that printed it.
 */
#include "scan.h"

#define NO_NODE UINT32_MAX
#define SMALL_MAP_PAIRS 32

/* ------------------------------------------------------------------------
 * The tree
 * ------------------------------------------------------------------------ */

void otpc__tree_init(otpc__tree_t *t, otpc__mode_t mode) {
  t->nodes = t->small;
  t->n = 0;
  t->cap = OTPC__TREE_INLINE;
  t->mode = mode;
  t->src = NULL;
  t->len = 0;
  otpc__scratch_init(&t->scratch);
}

void otpc__tree_free(otpc__tree_t *t) {
  if (t->nodes != t->small) otpc__free(t->nodes);
  otpc__scratch_free(&t->scratch);
  t->nodes = t->small;
  t->n = 0;
  t->cap = OTPC__TREE_INLINE;
}

/* Room for more nodes after n. */
static int tree_grow(otpc__tree_t *t, uint32_t more) {
  if (more <= t->cap - t->n) return 0;
  if (more > UINT32_MAX / 4 - t->n) return OTPC_ENOMEM;
  uint32_t cap = t->cap * 2;
  while (cap < t->n + more) cap *= 2;
  bool inl = t->nodes == t->small;
  otpc__node_t *d = inl ? otpc__malloc(cap * sizeof *d)
                        : otpc__realloc(t->nodes, cap * sizeof *d);
  if (!d) return OTPC_ENOMEM;
  if (inl) memcpy(d, t->small, t->n * sizeof *d);
  t->nodes = d;
  t->cap = cap;
  return 0;
}

/* ------------------------------------------------------------------------
 * Parser: tokens to nodes
 * ------------------------------------------------------------------------ */

typedef struct parser {
  otpc__tree_t *t;
  otpc__scanner_t sc;
  otpc__token_t tok; /* the current token */
  uint32_t open;     /* innermost open container, or NO_NODE */
  uint32_t depth;
  size_t errpos;
} parser_t;

static int next(parser_t *p) {
  return otpc__scan_next(&p->sc, &p->tok, &p->errpos);
}

static int bad(parser_t *p, size_t at) {
  p->errpos = at;
  return OTPC_ESYNTAX;
}

/* A new node at the end (NULL when out of memory); the pointer lasts
 * until the next node is added. */
static otpc__node_t *add(parser_t *p, otpc__node_kind_t kind, uint32_t pos) {
  if (tree_grow(p->t, 1) < 0) return NULL;
  otpc__node_t *nd = &p->t->nodes[p->t->n++];
  memset(nd, 0, sizeof *nd);
  nd->kind = (uint8_t)kind;
  nd->pos = pos;
  nd->size = 1;
  return nd;
}

/* A node holding a token's text. */
static int text_node(parser_t *p, otpc__node_kind_t kind,
                     const otpc__token_t *k) {
  otpc__node_t *nd = add(p, kind, k->pos);
  if (!nd) return OTPC_ENOMEM;
  nd->v.blob.off = k->off;
  nd->v.blob.len = k->len;
  nd->count = k->chars;
  nd->flags = k->in_scratch ? NF_SCRATCH : 0;
  if (kind == NODE_STRING && k->maxcp > 255) nd->flags |= NF_WIDE;
  return 0;
}

static int text_leaf(parser_t *p, otpc__node_kind_t kind) {
  int rc = text_node(p, kind, &p->tok);
  return rc < 0 ? rc : next(p);
}

/* A number, with the sign before it if there was one. */
static int number_leaf(parser_t *p) {
  uint32_t pos = p->tok.pos;
  bool neg = false;
  if (p->tok.kind == TOK_MINUS || p->tok.kind == TOK_PLUS) {
    neg = p->tok.kind == TOK_MINUS;
    int rc = next(p);
    if (rc < 0) return rc;
    if (p->tok.kind != TOK_INT && p->tok.kind != TOK_FLOAT)
      return bad(p, p->tok.pos);
  }
  const otpc__token_t *k = &p->tok;
  otpc__node_t *nd = add(p,
                         k->kind == TOK_FLOAT ? NODE_FLOAT
                         : k->big             ? NODE_BIG
                                              : NODE_INT,
                         pos);
  if (!nd) return OTPC_ENOMEM;
  if (k->kind == TOK_FLOAT) {
    nd->v.f = neg ? -k->f : k->f;
  } else if (k->big) {
    nd->v.blob.off = k->off;
    nd->v.blob.len = k->len;
    nd->flags = NF_SCRATCH | (neg ? NF_NEG : 0);
  } else {
    nd->v.u = k->u;
    nd->flags = neg && k->u ? NF_NEG : 0;
  }
  return next(p);
}

/* Adjacent strings are one string, as in Erlang: "ab" "c" is "abc". */
static int string_leaf(parser_t *p) {
  otpc__token_t first = p->tok;
  int rc = next(p);
  if (rc < 0) return rc;
  if (p->tok.kind != TOK_STRING) return text_node(p, NODE_STRING, &first);
  otpc__scratch_t cat;
  otpc__scratch_init(&cat);
  uint32_t chars = first.chars, maxcp = first.maxcp;
  rc = otpc__scratch_put(&cat, otpc__tok_text(&p->sc, &first), first.len);
  while (rc == 0 && p->tok.kind == TOK_STRING) {
    rc = otpc__scratch_put(&cat, otpc__tok_text(&p->sc, &p->tok), p->tok.len);
    chars += p->tok.chars;
    if (p->tok.maxcp > maxcp) maxcp = p->tok.maxcp;
    if (rc == 0) rc = next(p);
  }
  otpc__node_t *nd = rc == 0 ? add(p, NODE_STRING, first.pos) : NULL;
  uint32_t off = (uint32_t)p->t->scratch.len;
  if (nd) {
    nd->v.blob.off = off;
    nd->v.blob.len = (uint32_t)cat.len;
    nd->count = chars;
    nd->flags = NF_SCRATCH | (maxcp > 255 ? NF_WIDE : 0);
    rc = otpc__scratch_put(&p->t->scratch, cat.data, cat.len);
  } else if (rc == 0) {
    rc = OTPC_ENOMEM;
  }
  otpc__scratch_free(&cat);
  return rc;
}

static int id_leaf(parser_t *p) {
  const otpc__token_t *k = &p->tok;
  if (k->num[0] != 0) /* after <, #Ref< or #Port< */
    return bad(p, k->pos + (k->kind == TOK_PID   ? 1
                            : k->kind == TOK_REF ? 5
                                                 : 6));
  for (unsigned i = 1; i < k->nnum; i++)
    if (k->num[i] > UINT32_MAX && k->kind != TOK_PORT) return bad(p, k->pos);
  otpc__node_kind_t kind = k->kind == TOK_PID    ? NODE_PID
                           : k->kind == TOK_PORT ? NODE_PORT
                                                 : NODE_REF;
  uint32_t words[OTPC__TOK_MAX_NUMS - 1];
  size_t nw = k->nnum - 1u;
  for (size_t i = 0; i < nw; i++) /* printed high word first */
    words[i] = (uint32_t)k->num[nw - i];
  uint32_t off = (uint32_t)p->t->scratch.len;
  if (kind == NODE_REF &&
      otpc__scratch_put(&p->t->scratch, words, nw * sizeof words[0]) < 0)
    return OTPC_ENOMEM;
  otpc__node_t *nd = add(p, kind, k->pos);
  if (!nd) return OTPC_ENOMEM;
  if (kind == NODE_PID) {
    nd->v.pid.id = (uint32_t)k->num[1];
    nd->v.pid.serial = (uint32_t)k->num[2];
  } else if (kind == NODE_PORT) {
    nd->v.u = k->num[1];
  } else {
    nd->v.blob.off = off;
    nd->count = (uint32_t)nw;
  }
  return next(p);
}

/* fun Module:Function/Arity */
static int fun_leaf(parser_t *p) {
  uint32_t pos = p->tok.pos, moff = 0, mlen = 0, foff = 0, flen = 0;
  uint8_t flags = 0;
  static const otpc__tok_kind_t want[] = {TOK_ATOM, TOK_COLON, TOK_ATOM,
                                          TOK_SLASH, TOK_INT};
  int rc = 0;
  for (unsigned i = 0; i < 5 && rc == 0; i++) {
    rc = next(p);
    /* Erlang prints funs without quoting reserved words (fun_to_list), so
     * `fun fun:f/1` is the text of a fun of module 'fun': take the keyword
     * as an atom here. */
    bool as_atom = want[i] == TOK_ATOM && p->tok.kind == TOK_FUN;
    if (rc == 0 && p->tok.kind != want[i] && !as_atom) rc = bad(p, p->tok.pos);
    if (rc == 0 && i == 0) {
      moff = p->tok.off, mlen = p->tok.len;
      flags |= p->tok.in_scratch ? NF_SCRATCH : 0;
    } else if (rc == 0 && i == 2) {
      foff = p->tok.off, flen = p->tok.len;
      flags |= p->tok.in_scratch ? NF_SCRATCH2 : 0;
    }
  }
  if (rc < 0) return rc;
  if (p->tok.big || p->tok.u > 255) return bad(p, p->tok.pos);
  otpc__node_t *nd = add(p, NODE_FUN, pos);
  if (!nd) return OTPC_ENOMEM;
  nd->v.fun.moff = moff, nd->v.fun.mlen = mlen;
  nd->v.fun.foff = foff, nd->v.fun.flen = flen;
  nd->flags = flags;
  nd->count = (uint32_t)p->tok.u;
  return next(p);
}

static int hole_leaf(parser_t *p) {
  const char *allowed = p->t->mode == OTPC__MODE_FMT       ? "aAilufsbprt"
                        : p->t->mode == OTPC__MODE_PATTERN ? "ailufbprt"
                                                           : "";
  while (*allowed && *allowed != p->tok.hole) allowed++;
  if (!*allowed) return bad(p, p->tok.pos);
  otpc__node_t *nd = add(p, NODE_HOLE, p->tok.pos);
  if (!nd) return OTPC_ENOMEM;
  nd->hole = p->tok.hole;
  return next(p);
}

static int var_leaf(parser_t *p) {
  const uint8_t *name = otpc__tok_text(&p->sc, &p->tok);
  if (p->t->mode != OTPC__MODE_PATTERN || name[0] != '_')
    return bad(p, p->tok.pos);
  otpc__node_t *nd = add(p, NODE_VAR, p->tok.pos);
  return nd ? next(p) : OTPC_ENOMEM;
}

/* ---- binaries ----------------------------------------------------------- */

#define MAX_SEGMENT_BITS (1u << 24)

typedef struct bits {
  otpc__scratch_t buf;
  uint64_t n; /* bits written */
} bits_t;

static int put_bit(bits_t *b, unsigned bit) {
  if (b->n % 8 == 0) {
    uint8_t zero = 0;
    int rc = otpc__scratch_put(&b->buf, &zero, 1);
    if (rc < 0) return rc;
  }
  if (bit) b->buf.data[b->n / 8] |= (uint8_t)(0x80 >> (b->n % 8));
  b->n++;
  return 0;
}

static unsigned mag_bit(const uint8_t *mag, size_t n, uint64_t i) {
  return i / 8 < n ? (mag[i / 8] >> (i % 8)) & 1u : 0u;
}

/* The low size bits of an integer in two's complement: -m is ~(m - 1),
 * and m - 1 has the bits of m above its lowest set bit, that bit clear
 * and ones below it. */
static int put_int_bits(bits_t *b, bool neg, const uint8_t *mag, size_t n,
                        uint64_t size) {
  uint64_t low = 0;
  while (neg && !mag_bit(mag, n, low)) low++;
  int rc = 0;
  for (uint64_t i = size; i-- > 0 && rc == 0;) {
    unsigned bit = mag_bit(mag, n, i);
    if (neg) bit = i < low ? 0 : i == low ? 1 : !bit;
    rc = put_bit(b, bit);
  }
  return rc;
}

/* The characters of the current string token, 8 bits each. */
static int string_bits(parser_t *p, bits_t *b) {
  const uint8_t *s = otpc__tok_text(&p->sc, &p->tok), *end = s + p->tok.len;
  uint8_t one[1];
  uint32_t cp;
  int rc = 0;
  while (s < end && rc == 0) {
    s += otpc__utf8_decode(s, end, &cp);
    one[0] = (uint8_t)cp;
    rc = put_int_bits(b, false, one, 1, 8);
  }
  return rc;
}

/* Drops the bits from n on. */
static void bits_truncate(bits_t *b, uint64_t n) {
  b->n = n;
  b->buf.len = (size_t)((n + 7) / 8);
  if (n % 8) b->buf.data[n / 8] &= (uint8_t)(0xff00u >> (n % 8));
}

/* Strings ("ab" "c"), a character a byte; with /utf8 after them, in
 * UTF-8 instead, as <<"é"/utf8>> (what ~tp prints) means. */
static int string_segment(parser_t *p, bits_t *b) {
  uint64_t start = b->n;
  otpc__scratch_t utf8;
  otpc__scratch_init(&utf8);
  int rc = 0;
  while (rc == 0 && p->tok.kind == TOK_STRING) {
    rc = otpc__scratch_put(&utf8, otpc__tok_text(&p->sc, &p->tok), p->tok.len);
    if (rc == 0) rc = string_bits(p, b);
    if (rc == 0) rc = next(p);
  }
  if (rc == 0 && p->tok.kind == TOK_SLASH) {
    rc = next(p);
    if (rc == 0 && (p->tok.kind != TOK_ATOM || p->tok.len != 4 ||
                    memcmp(otpc__tok_text(&p->sc, &p->tok), "utf8", 4) != 0))
      rc = bad(p, p->tok.pos);
    if (rc == 0) rc = next(p);
    if (rc == 0) bits_truncate(b, start);
    for (size_t i = 0; rc == 0 && i < utf8.len; i++)
      rc = put_int_bits(b, false, &utf8.data[i], 1, 8);
  }
  otpc__scratch_free(&utf8);
  return rc;
}

/* One segment: an integer (Value or Value:Size) or strings. */
static int segment(parser_t *p, bits_t *b) {
  if (p->tok.kind == TOK_STRING) return string_segment(p, b);
  bool neg = p->tok.kind == TOK_MINUS;
  int rc = neg || p->tok.kind == TOK_PLUS ? next(p) : 0;
  if (rc == 0 && p->tok.kind != TOK_INT) rc = bad(p, p->tok.pos);
  if (rc < 0) return rc;
  otpc__token_t v = p->tok;
  uint64_t size = 8;
  rc = next(p);
  if (rc == 0 && p->tok.kind == TOK_COLON) {
    rc = next(p);
    if (rc == 0 &&
        (p->tok.kind != TOK_INT || p->tok.big || p->tok.u > MAX_SEGMENT_BITS))
      rc = bad(p, p->tok.pos);
    size = p->tok.u;
    if (rc == 0) rc = next(p);
  }
  if (rc < 0) return rc;
  uint8_t small[8];
  for (int i = 0; i < 8; i++) small[i] = (uint8_t)(v.u >> (8 * i));
  const uint8_t *mag = v.big ? otpc__tok_text(&p->sc, &v) : small;
  return put_int_bits(b, neg && (v.big || v.u), mag, v.big ? v.len : 8, size);
}

static int binary_leaf(parser_t *p) {
  uint32_t pos = p->tok.pos;
  bits_t b;
  otpc__scratch_init(&b.buf);
  b.n = 0;
  int rc = next(p);
  bool more = rc == 0 && p->tok.kind != TOK_BINCLOSE;
  while (rc == 0 && more) {
    rc = segment(p, &b);
    if (rc == 0 && p->tok.kind == TOK_COMMA) {
      rc = next(p);
    } else if (rc == 0) {
      more = false;
      if (p->tok.kind != TOK_BINCLOSE) rc = bad(p, p->tok.pos);
    }
  }
  otpc__node_t *nd = rc == 0 ? add(p, NODE_BINARY, pos) : NULL;
  if (rc == 0 && !nd) rc = OTPC_ENOMEM;
  if (nd) {
    nd->v.blob.off = (uint32_t)p->t->scratch.len;
    nd->v.blob.len = (uint32_t)b.buf.len;
    nd->count = b.n % 8 ? (uint32_t)(b.n % 8) : 8;
    rc = otpc__scratch_put(&p->t->scratch, b.buf.data, b.buf.len);
  }
  otpc__scratch_free(&b.buf);
  return rc < 0 ? rc : next(p);
}

static int leaf(parser_t *p) {
  switch (p->tok.kind) {
    case TOK_ATOM: return text_leaf(p, NODE_ATOM);
    case TOK_STRING: return string_leaf(p);
    case TOK_INT:
    case TOK_FLOAT:
    case TOK_MINUS:
    case TOK_PLUS: return number_leaf(p);
    case TOK_PID:
    case TOK_REF:
    case TOK_PORT: return id_leaf(p);
    case TOK_FUN: return fun_leaf(p);
    case TOK_HOLE: return hole_leaf(p);
    case TOK_VAR: return var_leaf(p);
    case TOK_BINOPEN: return binary_leaf(p);
    default: return bad(p, p->tok.pos);
  }
}

/* ---- containers --------------------------------------------------------- */

static int close_container(parser_t *p) {
  uint32_t idx = p->open;
  otpc__node_t *nd = &p->t->nodes[idx];
  p->open = nd->size;
  nd->size = p->t->n - idx;
  nd->hole = 0;
  p->depth--;
  if (nd->kind == NODE_MAP) {
    nd->count /= 2;
    nd->v.pairs = nd->count;
  } else if (nd->kind == NODE_LIST) {
    nd->v.list.total = nd->count;
    nd->v.list.tail = p->t->n - 1 - idx;
  }
  return next(p);
}

/* Opens a container at the current token. Returns 1 if its elements are to
 * be read next, 0 if it closed at once ({}, [], #{}). */
static int open_container(parser_t *p, otpc__node_kind_t kind,
                          otpc__tok_kind_t closer) {
  if (p->depth >= OTPC__TREE_MAX_DEPTH) {
    p->errpos = p->tok.pos;
    return OTPC_EDEPTH;
  }
  otpc__node_t *nd = add(p, kind, p->tok.pos);
  if (!nd) return OTPC_ENOMEM;
  nd->size = p->open;
  p->open = p->t->n - 1;
  p->depth++;
  int rc = next(p);
  if (rc < 0 || p->tok.kind != closer) return rc < 0 ? rc : 1;
  if (kind != NODE_LIST) return close_container(p);
  nd = &p->t->nodes[p->open]; /* [] is nil */
  p->open = nd->size;
  p->depth--;
  nd->kind = NODE_NIL;
  nd->size = 1;
  return next(p);
}

/* Reads one value. 1: a container opened and wants its first element;
 * 0: a whole value was read. */
static int value(parser_t *p) {
  switch (p->tok.kind) {
    case TOK_LBRACE: return open_container(p, NODE_TUPLE, TOK_RBRACE);
    case TOK_LBRACK: return open_container(p, NODE_LIST, TOK_RBRACK);
    case TOK_MAP: return open_container(p, NODE_MAP, TOK_RBRACE);
    default: return leaf(p);
  }
}

static int advance(parser_t *p) {
  int rc = next(p);
  return rc < 0 ? rc : 1;
}

/* A value just ended: closes what the current token closes. 1: another
 * value follows; 0: the outermost term is complete. A list's state "in the
 * tail" is kept in its hole field while it is open. */
static int after_value(parser_t *p) {
  for (;;) {
    if (p->open == NO_NODE) return 0;
    otpc__node_t *c = &p->t->nodes[p->open];
    otpc__tok_kind_t k = p->tok.kind;
    if (c->kind == NODE_TUPLE) {
      c->count++;
      if (k == TOK_COMMA) return advance(p);
      if (k != TOK_RBRACE) return bad(p, p->tok.pos);
    } else if (c->kind == NODE_MAP) {
      c->count++;
      if (c->count & 1) return k == TOK_ARROW ? advance(p) : bad(p, p->tok.pos);
      if (k == TOK_COMMA) return advance(p);
      if (k != TOK_RBRACE) return bad(p, p->tok.pos);
    } else if (c->hole) { /* list, after its tail */
      if (k != TOK_RBRACK) return bad(p, p->tok.pos);
    } else {
      c->count++;
      if (k == TOK_COMMA) return advance(p);
      if (k == TOK_BAR) {
        c->hole = 1;
        return advance(p);
      }
      if (k != TOK_RBRACK) return bad(p, p->tok.pos);
      if (!add(p, NODE_NIL, p->tok.pos)) return OTPC_ENOMEM;
    }
    int rc = close_container(p);
    if (rc < 0) return rc;
  }
}

int otpc__tree_parse(otpc__tree_t *t, const char *text, size_t len,
                     size_t *errpos) {
  parser_t p = {.t = t, .open = NO_NODE, .depth = 0, .errpos = 0};
  int rc = 0;
  if (!text && len) rc = OTPC_EINVAL;
  if (len >= UINT32_MAX) rc = OTPC_ELENGTH;
  t->src = (const uint8_t *)text;
  t->len = len;
  otpc__scan_init(&p.sc, text, len, &t->scratch);
  if (rc == 0) rc = next(&p);
  while (rc >= 0) {
    rc = value(&p);
    if (rc == 0) rc = after_value(&p);
    if (rc == 0) break;
  }
  if (rc == 0 && p.tok.kind == TOK_DOT) rc = next(&p);
  if (rc == 0 && p.tok.kind != TOK_END) rc = bad(&p, p.tok.pos);
  if (rc < 0 && errpos) *errpos = p.errpos;
  return rc;
}

/* ------------------------------------------------------------------------
 * Pass 1: list chains and byte strings
 * ------------------------------------------------------------------------ */

/* Next element of a term list, through tails that are lists again. */
static bool tlist_next(otpc_list_iter_t *it, otpc_term_t *e) {
  while (!otpc_list_next(it, e)) {
    otpc_term_t tail = otpc_list_tail(it);
    if (otpc_term_type(tail) != OTPC_TYPE_LIST) return false;
    otpc_term_list_iter(tail, it);
  }
  return true;
}

static bool term_byte(otpc_term_t t, uint8_t *out) {
  int64_t v;
  if (otpc_term_type(t) != OTPC_TYPE_INTEGER ||
      otpc_term_get_int64(t, &v) < 0 || v < 0 || v > 255)
    return false;
  *out = (uint8_t)v;
  return true;
}

/* Is node a 0..255 integer? Holes have values in formats only. */
static bool node_byte(const otpc__tree_t *t, const otpc__node_t *nd,
                      uint8_t *out) {
  if (nd->kind == NODE_INT && !(nd->flags & NF_NEG) && nd->v.u <= 255) {
    *out = (uint8_t)nd->v.u;
    return true;
  }
  if (nd->kind != NODE_HOLE || t->mode != OTPC__MODE_FMT) return false;
  switch (nd->hole) {
    case 'i':
    case 'l':
      *out = (uint8_t)nd->v.hole.i;
      return nd->v.hole.i >= 0 && nd->v.hole.i <= 255;
    case 'u': *out = (uint8_t)nd->v.hole.u; return nd->v.hole.u <= 255;
    case 't': return term_byte(nd->v.hole.term, out);
    default: return false;
  }
}

/* A bound ~t whose term is a list: its element count, whether they are all
 * bytes and whether it ends in nil. */
static uint64_t term_list_info(otpc_term_t t, bool *bytes) {
  otpc_list_iter_t it;
  otpc_term_t e;
  uint64_t n = 0;
  uint8_t byte;
  otpc_term_list_iter(t, &it);
  while (tlist_next(&it, &e)) {
    n++;
    *bytes = *bytes && term_byte(e, &byte);
  }
  if (otpc_term_type(otpc_list_tail(&it)) != OTPC_TYPE_NIL) *bytes = false;
  return n;
}

/* The final tail of a list chain: marks it and adds what it brings. */
static uint64_t chain_tail(otpc__tree_t *t, otpc__node_t *nd, bool *bytes) {
  bool fmt = t->mode == OTPC__MODE_FMT;
  otpc_type_t type = fmt && nd->kind == NODE_HOLE && nd->hole == 't'
                         ? otpc_term_type(nd->v.hole.term)
                         : OTPC_TYPE_NONE;
  nd->flags |= NF_TAIL;
  if (nd->kind == NODE_NIL) return 0;
  if (nd->kind == NODE_STRING) {
    nd->flags |= NF_SPLICED;
    *bytes = *bytes && !(nd->flags & NF_WIDE);
    return nd->count;
  }
  if (fmt && nd->kind == NODE_HOLE && nd->hole == 's') {
    nd->flags |= NF_SPLICED;
    return nd->v.hole.bin.len;
  }
  if (type == OTPC_TYPE_LIST || type == OTPC_TYPE_NIL) {
    nd->flags |= NF_SPLICED;
    return term_list_info(nd->v.hole.term, bytes);
  }
  *bytes = false; /* an improper list */
  return 0;
}

static void list_chain(otpc__tree_t *t, uint32_t head) {
  uint64_t total = 0;
  bool bytes = true;
  uint8_t byte;
  uint32_t j = head, k;
  for (;;) {
    otpc__node_t *l = &t->nodes[j];
    k = j + 1;
    for (uint32_t e = 0; e < l->count; e++) {
      bytes = bytes && node_byte(t, &t->nodes[k], &byte);
      k += t->nodes[k].size;
    }
    total += l->count;
    if (t->nodes[k].kind != NODE_LIST) break;
    t->nodes[k].flags |= NF_SPLICED;
    j = k;
  }
  total += chain_tail(t, &t->nodes[k], &bytes);
  otpc__node_t *h = &t->nodes[head];
  h->v.list.total = total > UINT32_MAX ? UINT32_MAX : (uint32_t)total;
  h->v.list.tail = k - head;
  if (bytes) h->flags |= NF_STRING;
}

void otpc__tree_lists(otpc__tree_t *t) {
  for (uint32_t i = 0; i < t->n; i++)
    if (t->nodes[i].kind == NODE_LIST && !(t->nodes[i].flags & NF_SPLICED))
      list_chain(t, i);
}

/* ------------------------------------------------------------------------
 * Pass 2: map keys in Erlang's order, without duplicates
 * ------------------------------------------------------------------------ */

/* Map key order: term order, except that in maps an integer is less than
 * any float (erts compares keys exactly). The nested case, {1} against
 * {1.0}, is left to otpc_term_compare. */
static int key_cmp(const uint8_t *a, const uint8_t *b) {
  otpc_term_t x = term_at(a), y = term_at(b);
  otpc_type_t tx = otpc_term_type(x), ty = otpc_term_type(y);
  if (tx == OTPC_TYPE_INTEGER && ty == OTPC_TYPE_FLOAT) return -1;
  if (tx == OTPC_TYPE_FLOAT && ty == OTPC_TYPE_INTEGER) return 1;
  return otpc_term_compare(x, y);
}

/* Stable merge sort of order[0..n) by the keys they index. */
static void sort_keys(uint32_t *order, uint32_t *tmp, uint32_t n,
                      const uint8_t *const *keys) {
  for (uint32_t w = 1; w < n; w *= 2) {
    for (uint32_t lo = 0; lo < n; lo += 2 * w) {
      uint32_t mid = lo + w < n ? lo + w : n,
               hi = lo + 2 * w < n ? lo + 2 * w : n;
      uint32_t a = lo, b = mid, o = lo;
      while (a < mid && b < hi)
        tmp[o++] = key_cmp(keys[order[b]], keys[order[a]]) < 0 ? order[b++]
                                                               : order[a++];
      while (a < mid) tmp[o++] = order[a++];
      while (b < hi) tmp[o++] = order[b++];
    }
    memcpy(order, tmp, n * sizeof *order);
  }
}

/* Marks all but the last of equal keys; returns how many were dropped.
 * Equal keys compare equal, so they sit in one run of the sorted order. */
static uint32_t drop_duplicates(otpc__tree_t *t, const uint32_t *order,
                                uint32_t n, const uint8_t *const *keys,
                                const uint32_t *at) {
  uint32_t dropped = 0;
  for (uint32_t a = 0; a < n; a++) {
    for (uint32_t b = a + 1;
         b < n && key_cmp(keys[order[a]], keys[order[b]]) == 0; b++) {
      uint32_t x = order[a] < order[b] ? order[a] : order[b];
      otpc__node_t *k = &t->nodes[at[x]];
      if (!(k->flags & NF_DROPPED) &&
          otpc_term_equal(term_at(keys[order[a]]), term_at(keys[order[b]]))) {
        k->flags |= NF_DROPPED;
        dropped++;
      }
    }
  }
  return dropped;
}

/* Moves the pairs of the map at i into the sorted order, through room past
 * the end of the array. */
static int reorder_pairs(otpc__tree_t *t, uint32_t i, const uint32_t *order,
                         const uint32_t *at) {
  uint32_t n = t->nodes[i].count, inner = t->nodes[i].size - 1;
  bool sorted = true;
  for (uint32_t k = 0; k < n; k++) sorted = sorted && order[k] == k;
  if (sorted) return 0;
  int rc = tree_grow(t, inner);
  if (rc < 0) return rc;
  otpc__node_t *tmp = t->nodes + t->n;
  uint32_t o = 0;
  for (uint32_t k = 0; k < n; k++) {
    uint32_t key = at[order[k]];
    uint32_t len = t->nodes[key].size + t->nodes[key + t->nodes[key].size].size;
    memcpy(tmp + o, t->nodes + key, len * sizeof *tmp);
    o += len;
  }
  memcpy(t->nodes + i + 1, tmp, inner * sizeof *tmp);
  return 0;
}

/* Key views of the map at i, encoded together as a tuple into kb. */
static int encode_keys(otpc__tree_t *t, uint32_t i, otpc_builder_t *kb,
                       uint32_t *at, const uint8_t **keys) {
  uint32_t n = t->nodes[i].count, k = i + 1;
  int rc = otpc_build_tuple(kb, n);
  for (uint32_t pair = 0; pair < n && rc >= 0; pair++) {
    at[pair] = k;
    uint32_t ksize = t->nodes[k].size;
    rc = otpc__tree_emit(t, kb, k, k + ksize);
    k += ksize + t->nodes[k + ksize].size;
  }
  if (rc < 0) return rc;
  size_t len;
  const uint8_t *p = otpc_builder_data(kb, &len) + 1;
  p += *p == ETF_SMALL_TUPLE ? 2 : 5;
  for (uint32_t pair = 0; pair < n; pair++) {
    keys[pair] = p;
    p = otpc__term_skip(p);
  }
  return 0;
}

static int sort_map(otpc__tree_t *t, uint32_t i) {
  uint32_t n = t->nodes[i].count;
  uint32_t small[3 * SMALL_MAP_PAIRS], *at = small;
  const uint8_t *small_keys[SMALL_MAP_PAIRS], **keys = small_keys;
  if (n > SMALL_MAP_PAIRS) {
    at = otpc__malloc(3 * sizeof *at * n);
    keys = otpc__malloc(sizeof *keys * n);
  }
  otpc_builder_t kb;
  otpc_builder_init(&kb);
  int rc = at && keys ? encode_keys(t, i, &kb, at, keys) : OTPC_ENOMEM;
  if (rc == 0) {
    uint32_t *order = at + n, *tmp = at + 2 * n;
    for (uint32_t k = 0; k < n; k++) order[k] = k;
    sort_keys(order, tmp, n, keys);
    uint32_t pairs = n - drop_duplicates(t, order, n, keys, at);
    t->nodes[i].v.pairs = pairs;
    /* A larger map is written backwards: Erlang prints such a map in the
     * reverse of the order term_to_binary writes it (print.c), so text
     * printed by Erlang comes back as Erlang's own bytes. */
    if (pairs > SMALL_MAP_PAIRS)
      for (uint32_t k = 0; k < n; k++) order[k] = n - 1 - k;
    rc = reorder_pairs(t, i, order, at);
  }
  otpc_builder_dispose(&kb);
  if (at != small) otpc__free(at);
  if (keys != small_keys) otpc__free(keys);
  return rc;
}

/* Inner maps first, so that a key holding a map is written already in
 * order when the keys around it are compared. */
int otpc__tree_maps(otpc__tree_t *t, uint32_t from, uint32_t to) {
  int rc = 0;
  for (uint32_t i = to; i-- > from && rc == 0;)
    if (t->nodes[i].kind == NODE_MAP && t->nodes[i].count >= 2)
      rc = sort_map(t, i);
  return rc;
}

/* ------------------------------------------------------------------------
 * Emitter
 * ------------------------------------------------------------------------ */

static const uint8_t *node_text(const otpc__tree_t *t, const otpc__node_t *nd) {
  return otpc__tree_text(t, nd->v.blob.off, nd->flags & NF_SCRATCH);
}

static int emit_int(otpc_builder_t *b, const otpc__node_t *nd) {
  uint64_t u = nd->v.u;
  if (!(nd->flags & NF_NEG)) return otpc_build_uint(b, u);
  if (u <= (uint64_t)1 << 63) return otpc_build_int(b, (int64_t)(0 - u));
  uint8_t mag[8];
  for (int i = 0; i < 8; i++) mag[i] = (uint8_t)(u >> (8 * i));
  return otpc_build_bigint(b, true, mag, 8);
}

/* A view's term; a string element has no bytes to copy. */
static int emit_term(otpc_builder_t *b, otpc_term_t v) {
  if (v.kind == TERM_CHAR) return otpc_build_int(b, v.chr);
  return otpc_build_term(b, v);
}

/* Each code point of UTF-8 text as an integer element. */
static int emit_chars(otpc_builder_t *b, const uint8_t *s, size_t len) {
  const uint8_t *end = s + len;
  uint32_t cp;
  int rc = 0;
  while (s < end && rc >= 0) {
    s += otpc__utf8_decode(s, end, &cp);
    rc = otpc_build_int(b, cp);
  }
  return rc;
}

/* Code points (all <= 255) of UTF-8 text as bytes, into the scratch. */
static void put_latin1(otpc__scratch_t *sc, const uint8_t *s, size_t len) {
  const uint8_t *end = s + len;
  uint32_t cp;
  while (s < end) {
    s += otpc__utf8_decode(s, end, &cp);
    sc->data[sc->len++] = (uint8_t)cp;
  }
}

static int emit_string(otpc__tree_t *t, otpc_builder_t *b,
                       const otpc__node_t *nd) {
  const uint8_t *s = node_text(t, nd);
  if (nd->flags & NF_WIDE) {
    int rc = otpc_build_list(b, nd->count);
    if (rc >= 0) rc = emit_chars(b, s, nd->v.blob.len);
    return rc < 0 ? rc : otpc_build_nil(b);
  }
  if (nd->count == nd->v.blob.len) /* ASCII */
    return otpc_build_string(b, (const char *)s, nd->count);
  size_t mark = t->scratch.len;
  int rc = otpc__scratch_reserve(&t->scratch, nd->count);
  if (rc < 0) return rc;
  put_latin1(&t->scratch, node_text(t, nd), nd->v.blob.len);
  rc = otpc_build_string(b, (const char *)t->scratch.data + mark, nd->count);
  t->scratch.len = mark;
  return rc;
}

/* The bytes of a list marked NF_STRING, gathered along its chain. */
static int emit_byte_list(otpc__tree_t *t, otpc_builder_t *b, uint32_t head) {
  otpc__node_t *h = &t->nodes[head];
  uint32_t end = head + h->v.list.tail;
  otpc__node_t *tail = &t->nodes[end];
  size_t mark = t->scratch.len;
  int rc = otpc__scratch_reserve(&t->scratch, h->v.list.total);
  if (rc < 0) return rc;
  otpc__scratch_t *sc = &t->scratch;
  for (uint32_t k = head + 1; k < end; k++) {
    otpc__node_t *nd = &t->nodes[k];
    if (nd->kind == NODE_LIST) continue; /* a spliced link of the chain */
    node_byte(t, nd, &sc->data[sc->len++]);
    k += nd->size - 1;
  }
  if (tail->kind == NODE_STRING) {
    put_latin1(sc, node_text(t, tail), tail->v.blob.len);
  } else if (tail->kind == NODE_HOLE && tail->hole == 's') {
    memcpy(sc->data + sc->len, tail->v.hole.bin.ptr, tail->v.hole.bin.len);
    sc->len += tail->v.hole.bin.len;
  } else if (tail->kind == NODE_HOLE) {
    otpc_list_iter_t it;
    otpc_term_t e;
    otpc_term_list_iter(tail->v.hole.term, &it);
    while (tlist_next(&it, &e)) term_byte(e, &sc->data[sc->len++]);
  }
  rc = otpc_build_string(b, (const char *)sc->data + mark, sc->len - mark);
  sc->len = mark;
  return rc;
}

/* The final tail of a chain whose elements it brings: they, then its own
 * tail. */
static int emit_spliced(otpc__tree_t *t, otpc_builder_t *b,
                        const otpc__node_t *nd) {
  int rc = 0;
  if (nd->kind == NODE_STRING) {
    rc = emit_chars(b, node_text(t, nd), nd->v.blob.len);
  } else if (nd->hole == 's') {
    const uint8_t *s = nd->v.hole.bin.ptr;
    for (size_t i = 0; i < nd->v.hole.bin.len && rc >= 0; i++)
      rc = otpc_build_int(b, s[i]);
  } else {
    otpc_list_iter_t it;
    otpc_term_t e;
    otpc_term_list_iter(nd->v.hole.term, &it);
    while (rc >= 0 && tlist_next(&it, &e)) rc = emit_term(b, e);
    otpc_term_t tail = otpc_list_tail(&it);
    if (rc < 0 || otpc_term_type(tail) != OTPC_TYPE_NIL)
      return rc < 0 ? rc : otpc_build_term(b, tail);
  }
  return rc < 0 ? rc : otpc_build_nil(b);
}

static int emit_hole(otpc_builder_t *b, const otpc__node_t *nd) {
  switch (nd->hole) {
    case 'a': return otpc_build_atom(b, nd->v.hole.ptr);
    case 'A': return otpc_build_atom_id(b, nd->v.hole.atom);
    case 'i':
    case 'l': return otpc_build_int(b, nd->v.hole.i);
    case 'u': return otpc_build_uint(b, nd->v.hole.u);
    case 'f': return otpc_build_double(b, nd->v.hole.f);
    case 's':
      return otpc_build_string(b, nd->v.hole.bin.ptr, nd->v.hole.bin.len);
    case 'b':
      return otpc_build_binary(b, nd->v.hole.bin.ptr, nd->v.hole.bin.len);
    case 'p': return otpc_build_pid(b, nd->v.hole.ptr);
    case 'r': return otpc_build_ref(b, nd->v.hole.ptr);
    case 't': return emit_term(b, nd->v.hole.term);
    default: return OTPC_EBADFMT; /* an unbound pattern hole */
  }
}

static int emit_ident(const otpc__tree_t *t, otpc_builder_t *b,
                      const otpc__node_t *nd) {
  otpc_atom_t node = otpc__local_node();
  uint32_t creation = otpc__local_creation();
  if (nd->kind == NODE_PID) {
    otpc_pid_t pid = {node, nd->v.pid.id, nd->v.pid.serial, creation};
    return otpc_build_pid(b, &pid);
  }
  if (nd->kind == NODE_PORT) {
    otpc_port_t port = {node, creation, nd->v.u};
    return otpc_build_port(b, &port);
  }
  otpc_ref_t ref = {node, creation, nd->count, {0}};
  memcpy(ref.id, t->scratch.data + nd->v.blob.off,
         nd->count * sizeof ref.id[0]);
  return otpc_build_ref(b, &ref);
}

static int emit_fun(const otpc__tree_t *t, otpc_builder_t *b,
                    const otpc__node_t *nd) {
  otpc_atom_t m, f;
  const uint8_t *mt =
      otpc__tree_text(t, nd->v.fun.moff, nd->flags & NF_SCRATCH);
  const uint8_t *ft =
      otpc__tree_text(t, nd->v.fun.foff, nd->flags & NF_SCRATCH2);
  int rc = otpc_atom_new((const char *)mt, nd->v.fun.mlen, &m);
  if (rc >= 0) rc = otpc_atom_new((const char *)ft, nd->v.fun.flen, &f);
  return rc < 0 ? rc : otpc_build_export(b, m, f, nd->count);
}

static int emit_binary(const otpc__tree_t *t, otpc_builder_t *b,
                       const otpc__node_t *nd) {
  const uint8_t *data = t->scratch.data + nd->v.blob.off;
  if (nd->count == 8) return otpc_build_binary(b, data, nd->v.blob.len);
  return otpc_build_bitstring(b, data,
                              (size_t)nd->v.blob.len * 8 - (8 - nd->count));
}

static int emit_leaf(otpc__tree_t *t, otpc_builder_t *b,
                     const otpc__node_t *nd) {
  switch (nd->kind) {
    case NODE_INT: return emit_int(b, nd);
    case NODE_BIG:
      return otpc_build_bigint(b, nd->flags & NF_NEG, node_text(t, nd),
                               nd->v.blob.len);
    case NODE_FLOAT: return otpc_build_double(b, nd->v.f);
    case NODE_ATOM:
      return otpc_build_atom_len(b, (const char *)node_text(t, nd),
                                 nd->v.blob.len);
    case NODE_STRING: return emit_string(t, b, nd);
    case NODE_NIL: return otpc_build_nil(b);
    case NODE_BINARY: return emit_binary(t, b, nd);
    case NODE_FUN: return emit_fun(t, b, nd);
    case NODE_HOLE: return emit_hole(b, nd);
    case NODE_VAR: return OTPC_EBADFMT; /* _ is no term */
    default: return emit_ident(t, b, nd);
  }
}

/* Writes node *ip and moves *ip past what it wrote. */
static int emit_node(otpc__tree_t *t, otpc_builder_t *b, uint32_t *ip) {
  uint32_t i = (*ip)++;
  const otpc__node_t *nd = &t->nodes[i];
  if (nd->flags & NF_DROPPED) { /* the key, then its value */
    *ip = i + nd->size + t->nodes[i + nd->size].size;
    return 0;
  }
  if (nd->flags & NF_SPLICED)
    return nd->kind == NODE_LIST ? 0 : emit_spliced(t, b, nd);
  switch (nd->kind) {
    case NODE_TUPLE: return otpc_build_tuple(b, nd->count);
    case NODE_MAP: return otpc_build_map(b, nd->v.pairs);
    case NODE_LIST:
      if (!(nd->flags & NF_STRING)) return otpc_build_list(b, nd->v.list.total);
      *ip = i + nd->size;
      return emit_byte_list(t, b, i);
    default: return emit_leaf(t, b, nd);
  }
}

int otpc__tree_emit(otpc__tree_t *t, otpc_builder_t *b, uint32_t from,
                    uint32_t to) {
  int rc = 0;
  while (from < to && rc >= 0) rc = emit_node(t, b, &from);
  return rc < 0 ? rc : 0;
}

int otpc__tree_build(otpc__tree_t *t, otpc_builder_t *b) {
  otpc__tree_lists(t);
  int rc = otpc__tree_maps(t, 0, t->n);
  return rc < 0 ? rc : otpc__tree_emit(t, b, 0, t->n);
}

/* ------------------------------------------------------------------------
 * Public
 * ------------------------------------------------------------------------ */

int otpc_build_parse(otpc_builder_t *b, const char *text, size_t len,
                     size_t *errpos) {
  if (b->err) return b->err;
  otpc__tree_t t;
  otpc__tree_init(&t, OTPC__MODE_PARSE);
  int rc = otpc__tree_parse(&t, text, len, errpos);
  if (rc == 0) rc = otpc__tree_build(&t, b);
  otpc__tree_free(&t);
  if (rc < 0 && !b->err) b->err = rc; /* errors are sticky */
  return rc;
}

int otpc_term_parse(const char *text, size_t len, otpc_buf_t **out,
                    size_t *errpos) {
  otpc_builder_t b;
  otpc_builder_init(&b);
  int rc = otpc_build_parse(&b, text, len, errpos);
  if (rc < 0) {
    otpc_builder_dispose(&b);
    return rc;
  }
  *out = otpc_builder_finish(&b, &rc);
  return *out ? 0 : rc;
}
