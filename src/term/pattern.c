/*
 * pattern.c: compiled patterns (otpc_pattern_compile, otpc_match). The
 * runtime's selective receive runs them on every message it looks at, so
 * matching is a flat loop over a small program that never allocates and
 * never recurses.
 *
 * The pattern's text is read into the syntax tree of scan.h and compiled
 * into an array of 16-byte ops in prefix order, one per node that matters.
 * A term is matched by walking its bytes along the program. Containers
 * push a frame (at most MATCH_DEPTH of them, on the C stack) that hands
 * out their elements; a tuple element is found by skipping the one before
 * it, so a pattern like {get, ~p, _} that fails on its first element costs
 * a tag, an arity and an atom compare.
 *
 * What matches what:
 *   - a literal atom compares by its text (no interning), a literal integer
 *     by value, so every encoding of the same term matches (Latin-1 or
 *     UTF-8 atoms, a small value in a SMALL_BIG, ...);
 *   - tuples and lists holding holes, _ or maps are matched element by
 *     element; lists through every encoding (LIST_EXT, STRING_EXT, chains);
 *     other literal subterms (literal tuples and lists, strings, floats,
 *     binaries, big integers, pids...) are compared with otpc_term_equal();
 *   - a map matches a map that holds at least its keys with values that
 *     match, as in Erlang's #{K := V}; keys must be literal terms;
 *   - a list tail ~t binds the rest of the list when the rest is a term of
 *     its own in the encoding (the tail of the last LIST_EXT, or nil); the
 *     middle of a LIST_EXT or STRING_EXT is not a term a view can show, and
 *     matching that is OTPC_ERANGE. [~t | _] and [_, ~t | _] always work.
 *   - ~a interns the atom it binds, as otpc_term_get_atom() does; that may
 *     allocate (once per new atom name); its errors are returned.
 */
#include "scan.h"

#define MATCH_DEPTH 32 /* containers with holes nested in a pattern */

enum {
  OP_ANY,       /* _ */
  OP_ATOM,      /* i: text offset in the blob, a: its length */
  OP_INT,       /* i: the value */
  OP_NIL,       /* [] */
  OP_EQ,        /* a: offset of an encoded literal, compared =:= */
  OP_TUPLE,     /* a: arity; pushes a frame */
  OP_LIST,      /* pushes a frame */
  OP_MAP,       /* pushes a frame */
  OP_MAP_KEY,   /* a: offset of the encoded key; its value is the next term */
  OP_LIST_TAIL, /* pops the list; the rest of it is the next term */
  OP_LIST_NIL,  /* pops the list, whose rest must be [] */
  OP_END,       /* pops a tuple, a map, or a list with any rest */
  OP_BIND       /* a: the hole's letter */
};

typedef struct op {
  uint8_t code;
  uint8_t fetch; /* take the next element from the top frame first */
  uint16_t pad_;
  uint32_t a;
  int64_t i;
} op_t;

struct otpc_pattern {
  uint32_t nops;
  uint32_t nbinds;
  op_t ops[]; /* then the blob: atom texts and encoded literals */
};

static const uint8_t nil_byte[1] = {ETF_NIL};

/* ------------------------------------------------------------------------
 * Compiler
 * ------------------------------------------------------------------------ */

enum { DYN_HOLE = 1, DYN_MAP = 2 };

typedef struct open_item {
  uint32_t end;      /* node index where the container ends */
  uint32_t next_key; /* maps: index of the next key */
  int end_op;        /* op to write at the end, or -1 */
} open_item_t;

typedef struct compiler {
  otpc__tree_t *t;
  op_t *ops;
  uint32_t nops, cap;
  otpc__scratch_t blob;
  uint32_t nbinds;
  bool nofetch; /* the next term op gets its term without fetching */
  unsigned sp;
  open_item_t open[MATCH_DEPTH];
  size_t errpos;
} compiler_t;

/* Marks subtrees holding holes, _ or maps, bottom-up. */
static void mark_dynamic(otpc__tree_t *t) {
  for (uint32_t i = t->n; i-- > 0;) {
    otpc__node_t *nd = &t->nodes[i];
    nd->dyn = nd->kind == NODE_HOLE || nd->kind == NODE_VAR ? DYN_HOLE
              : nd->kind == NODE_MAP                        ? DYN_MAP
                                                            : 0;
    if (nd->kind == NODE_TUPLE || nd->kind == NODE_LIST || nd->kind == NODE_MAP)
      for (uint32_t j = i + 1; j < i + nd->size; j += t->nodes[j].size)
        nd->dyn |= t->nodes[j].dyn;
  }
}

static bool consumes(int code) {
  return code != OP_MAP_KEY && code != OP_LIST_TAIL && code != OP_LIST_NIL &&
         code != OP_END;
}

static int put_op(compiler_t *c, int code, uint32_t a, int64_t i) {
  if (c->nops == c->cap) {
    uint32_t cap = c->cap ? 2 * c->cap : 16;
    op_t *ops = otpc__realloc(c->ops, cap * sizeof *ops);
    if (!ops) return OTPC_ENOMEM;
    c->ops = ops;
    c->cap = cap;
  }
  op_t *op = &c->ops[c->nops++];
  op->code = (uint8_t)code;
  op->fetch = consumes(code) && !c->nofetch;
  op->pad_ = 0;
  op->a = a;
  op->i = i;
  if (consumes(code)) c->nofetch = false;
  if (code == OP_MAP_KEY || code == OP_LIST_TAIL) c->nofetch = true;
  return 0;
}

static int fail_at(compiler_t *c, const otpc__node_t *nd, int code) {
  c->errpos = nd->pos;
  return code;
}

/* Encodes nodes [i, i + size) into the blob; *off gets where. */
static int put_literal(compiler_t *c, uint32_t i, uint32_t *off) {
  otpc__tree_t *t = c->t;
  uint32_t end = i + t->nodes[i].size;
  otpc_builder_t kb;
  otpc_builder_init(&kb);
  int rc = otpc__tree_maps(t, i, end);
  if (rc == 0) rc = otpc__tree_emit(t, &kb, i, end);
  if (rc == 0) {
    size_t len;
    const uint8_t *data = otpc_builder_data(&kb, &len);
    *off = (uint32_t)c->blob.len;
    rc = otpc__scratch_put(&c->blob, data + 1, len - 1);
  }
  otpc_builder_dispose(&kb);
  return rc;
}

static int push(compiler_t *c, uint32_t i, int code, int end_op) {
  const otpc__node_t *nd = &c->t->nodes[i];
  if (c->sp == MATCH_DEPTH) return fail_at(c, nd, OTPC_EDEPTH);
  int rc = put_op(c, code, code == OP_TUPLE ? nd->count : 0, 0);
  open_item_t *o = &c->open[c->sp++];
  o->end = i + nd->size;
  o->next_key = code == OP_MAP ? i + 1 : UINT32_MAX;
  o->end_op = end_op;
  return rc;
}

/* What ends a list: decided by its final tail. */
static int list_end_op(const otpc__tree_t *t, uint32_t head) {
  const otpc__node_t *tail = &t->nodes[head + t->nodes[head].v.list.tail];
  if (tail->kind == NODE_NIL || tail->kind == NODE_STRING) return OP_LIST_NIL;
  if (tail->kind == NODE_VAR) return OP_END;
  return -1; /* OP_LIST_TAIL pops it */
}

static bool small_int(const otpc__node_t *nd, int64_t *v) {
  uint64_t u = nd->v.u;
  if (nd->kind != NODE_INT) return false;
  if (!(nd->flags & NF_NEG)) {
    *v = (int64_t)u;
    return u <= INT64_MAX;
  }
  *v = (int64_t)(0 - u);
  return u <= (uint64_t)1 << 63;
}

/* One term at node *ip. */
static int term_node(compiler_t *c, uint32_t *ip) {
  uint32_t i = (*ip)++, off;
  const otpc__node_t *nd = &c->t->nodes[i];
  int64_t v;
  if (nd->kind == NODE_VAR) return put_op(c, OP_ANY, 0, 0);
  if (nd->kind == NODE_NIL) return put_op(c, OP_NIL, 0, 0);
  if (small_int(nd, &v)) return put_op(c, OP_INT, 0, v);
  if (nd->kind == NODE_HOLE) {
    c->nbinds += nd->hole == 'b' ? 2 : 1;
    return put_op(c, OP_BIND, nd->hole, 0);
  }
  if (nd->kind == NODE_ATOM) {
    off = (uint32_t)c->blob.len;
    const uint8_t *s =
        otpc__tree_text(c->t, nd->v.blob.off, nd->flags & NF_SCRATCH);
    int rc = otpc__scratch_put(&c->blob, s, nd->v.blob.len);
    return rc < 0 ? rc : put_op(c, OP_ATOM, nd->v.blob.len, off);
  }
  if (nd->dyn && nd->kind == NODE_TUPLE) return push(c, i, OP_TUPLE, OP_END);
  if (nd->dyn && nd->kind == NODE_MAP) return push(c, i, OP_MAP, OP_END);
  if (nd->dyn && nd->kind == NODE_LIST)
    return push(c, i, OP_LIST, list_end_op(c->t, i));
  *ip = i + nd->size;
  int rc = put_literal(c, i, &off);
  return rc < 0 ? rc : put_op(c, OP_EQ, off, 0);
}

/* The final tail of a list that is matched element by element. */
static int tail_node(compiler_t *c, uint32_t *ip) {
  const otpc__node_t *nd = &c->t->nodes[*ip];
  if (nd->kind == NODE_NIL || nd->kind == NODE_VAR) {
    (*ip)++;
    return 0;
  }
  if (nd->kind == NODE_STRING) { /* [a | "bc"]: more elements */
    const uint8_t *s =
        otpc__tree_text(c->t, nd->v.blob.off, nd->flags & NF_SCRATCH);
    const uint8_t *end = s + nd->v.blob.len;
    uint32_t cp;
    int rc = 0;
    while (s < end && rc == 0) {
      s += otpc__utf8_decode(s, end, &cp);
      rc = put_op(c, OP_INT, 0, cp);
    }
    (*ip)++;
    return rc;
  }
  int rc = put_op(c, OP_LIST_TAIL, 0, 0);
  return rc < 0 ? rc : term_node(c, ip);
}

/* A key of the innermost open map, at node *ip; its value comes next. */
static int map_key(compiler_t *c, uint32_t *ip) {
  uint32_t i = *ip, off;
  const otpc__node_t *nd = &c->t->nodes[i];
  if (nd->dyn & DYN_HOLE) return fail_at(c, nd, OTPC_EBADFMT);
  int rc = put_literal(c, i, &off);
  if (rc == 0) rc = put_op(c, OP_MAP_KEY, off, 0);
  uint32_t value = i + c->t->nodes[i].size;
  c->open[c->sp - 1].next_key = value + c->t->nodes[value].size;
  *ip = value;
  return rc;
}

static int compile(compiler_t *c) {
  otpc__tree_t *t = c->t;
  uint32_t i = 0;
  int rc = 0;
  c->nofetch = true; /* the first op gets the term itself */
  while (rc == 0 && (i < t->n || c->sp)) {
    open_item_t *o = c->sp ? &c->open[c->sp - 1] : NULL;
    const otpc__node_t *nd = &t->nodes[i];
    if (o && o->end == i) {
      c->sp--;
      if (o->end_op >= 0) rc = put_op(c, o->end_op, 0, 0);
    } else if (o && o->next_key == i) {
      rc = map_key(c, &i);
    } else if ((nd->flags & NF_SPLICED) && nd->kind == NODE_LIST) {
      i++; /* a link of a list chain: its elements go on the same list */
    } else if (nd->flags & NF_TAIL) {
      rc = tail_node(c, &i);
    } else {
      rc = term_node(c, &i);
    }
  }
  return rc;
}

static otpc_pattern_t *finish(compiler_t *c) {
  size_t ops = c->nops * sizeof(op_t);
  otpc_pattern_t *p = otpc__malloc(sizeof *p + ops + c->blob.len);
  if (!p) return NULL;
  p->nops = c->nops;
  p->nbinds = c->nbinds;
  memcpy(p->ops, c->ops, ops);
  memcpy((uint8_t *)p->ops + ops, c->blob.data, c->blob.len);
  return p;
}

int otpc_pattern_compile(const char *text, otpc_pattern_t **out,
                         size_t *errpos) {
  otpc__tree_t t;
  otpc__tree_init(&t, OTPC__MODE_PATTERN);
  compiler_t c = {.t = &t};
  otpc__scratch_init(&c.blob);
  int rc =
      text ? otpc__tree_parse(&t, text, strlen(text), &c.errpos) : OTPC_EINVAL;
  if (rc == OTPC_ESYNTAX) rc = OTPC_EBADFMT;
  if (rc == 0) {
    otpc__tree_lists(&t);
    mark_dynamic(&t);
    rc = compile(&c);
  }
  if (rc == 0) {
    *out = finish(&c);
    if (!*out) rc = OTPC_ENOMEM;
  }
  if (rc < 0 && errpos) *errpos = c.errpos;
  otpc__free(c.ops);
  otpc__scratch_free(&c.blob);
  otpc__tree_free(&t);
  return rc;
}

void otpc_pattern_free(otpc_pattern_t *p) {
  otpc__free(p);
}

size_t otpc_pattern_binds(const otpc_pattern_t *p) {
  return p->nbinds;
}

/* ------------------------------------------------------------------------
 * Matcher
 * ------------------------------------------------------------------------ */

enum { FR_TUPLE, FR_LIST, FR_MAP };

typedef struct frame {
  const uint8_t *p; /* next element, or (pending) the last one handed out;
                       a map: the map */
  uint32_t left;    /* list: elements left in this part of the chain */
  uint8_t kind;
  uint8_t pending; /* p is at the element handed out last */
  uint8_t str;     /* p is in a STRING_EXT's bytes */
} frame_t;

typedef struct matcher {
  void *const *binds; /* or NULL: take them from ap */
  va_list *ap;
  size_t nb;
} matcher_t;

static void *next_bind(matcher_t *m) {
  return m->binds ? m->binds[m->nb++] : va_arg(*m->ap, void *);
}

static bool open_tuple(frame_t *f, otpc_term_t t, uint32_t arity) {
  if (t.kind != TERM_ENCODED) return false;
  const uint8_t *p = t.p;
  if (p[0] == ETF_SMALL_TUPLE && p[1] == arity) {
    f->p = p + 2;
  } else if (p[0] == ETF_LARGE_TUPLE && get_be32(p + 1) == arity) {
    f->p = p + 5;
  } else {
    return false;
  }
  f->kind = FR_TUPLE;
  f->pending = 0;
  return true;
}

/* Enters the list part at f->p, if it is one; false when it is a tail. */
static bool enter_part(frame_t *f) {
  if (*f->p == ETF_LIST) {
    f->left = get_be32(f->p + 1);
    f->p += 5;
    f->str = 0;
  } else if (*f->p == ETF_STRING) {
    f->left = get_be16(f->p + 1);
    f->p += 3;
    f->str = 1;
  } else {
    return false;
  }
  return true;
}

static bool open_list(frame_t *f, otpc_term_t t) {
  if (t.kind != TERM_ENCODED) return false;
  f->p = t.p;
  f->kind = FR_LIST;
  f->pending = 0;
  return enter_part(f);
}

/* Moves past the element handed out last and into the next part of the
 * chain; afterwards left == 0 means f->p is the list's tail. */
static void list_settle(frame_t *f) {
  if (f->pending) {
    f->p = otpc__term_skip(f->p);
    f->pending = 0;
  }
  while (f->left == 0) {
    if (f->str) { /* a STRING_EXT ends in an implicit nil */
      f->p = nil_byte;
      f->str = 0;
      return;
    }
    if (!enter_part(f)) return;
  }
}

static bool fetch(frame_t *f, otpc_term_t *cur) {
  if (f->kind == FR_TUPLE) {
    if (f->pending) f->p = otpc__term_skip(f->p);
    f->pending = 1;
    *cur = term_at(f->p);
    return true;
  }
  list_settle(f);
  if (f->left == 0) return false;
  f->left--;
  if (f->str) {
    *cur = term_char(*f->p++);
  } else {
    *cur = term_at(f->p);
    f->pending = 1;
  }
  return true;
}

static bool atom_eq(otpc_term_t t, const uint8_t *text, uint32_t len) {
  if (t.kind != TERM_ENCODED) return false;
  if (t.p[0] == ETF_SMALL_ATOM_UTF8)
    return t.p[1] == len && memcmp(t.p + 2, text, len) == 0;
  return otpc_term_atom_eq(t, (const char *)text, len);
}

static bool int_eq(otpc_term_t t, int64_t v) {
  int64_t x;
  if (t.kind == TERM_CHAR) return v == (int64_t)t.chr;
  if (t.kind != TERM_ENCODED) return false;
  switch (t.p[0]) {
    case ETF_SMALL_INTEGER: return v == t.p[1];
    case ETF_INTEGER: return v == (int32_t)get_be32(t.p + 1);
    case ETF_SMALL_BIG:
    case ETF_LARGE_BIG: return otpc_term_get_int64(t, &x) == 0 && x == v;
    default: return false;
  }
}

/* A typed hole: 1 bound, 0 another type or out of range, < 0 an error. */
static int bind(matcher_t *m, int hole, otpc_term_t t) {
  void *dst = next_bind(m);
  otpc_type_t type = otpc_term_type(t);
  union {
    otpc_atom_t a;
    int i;
    int64_t l;
    uint64_t u;
    double f;
    otpc_pid_t pid;
    otpc_ref_t ref;
  } v;
  size_t size = 0;
  int rc;
  switch (hole) {
    case 't':
      if (dst) *(otpc_term_t *)dst = t;
      return 1;
    case 'i': rc = otpc_term_get_int(t, &v.i), size = sizeof v.i; break;
    case 'l': rc = otpc_term_get_int64(t, &v.l), size = sizeof v.l; break;
    case 'u': rc = otpc_term_get_uint64(t, &v.u), size = sizeof v.u; break;
    case 'f':
      rc = type == OTPC_TYPE_FLOAT ? otpc_term_get_double(t, &v.f) : OTPC_ETYPE;
      size = sizeof v.f;
      break;
    case 'a':
      rc = type == OTPC_TYPE_ATOM ? otpc_term_get_atom(t, &v.a) : OTPC_ETYPE;
      size = sizeof v.a;
      break;
    case 'p':
      rc = type == OTPC_TYPE_PID ? otpc_term_get_pid(t, &v.pid) : OTPC_ETYPE;
      size = sizeof v.pid;
      break;
    case 'r':
      rc = type == OTPC_TYPE_REF ? otpc_term_get_ref(t, &v.ref) : OTPC_ETYPE;
      size = sizeof v.ref;
      break;
    default: { /* b */
      const uint8_t *data;
      size_t bytes;
      unsigned bits;
      void *dst2 = next_bind(m);
      rc = type == OTPC_TYPE_BITSTRING
               ? otpc_term_get_binary(t, &data, &bytes, &bits)
               : OTPC_ETYPE;
      if (rc < 0 || bits != 8) return rc == 0 || rc == OTPC_ETYPE ? 0 : rc;
      if (dst) *(const uint8_t **)dst = data;
      if (dst2) *(size_t *)dst2 = bytes;
      return 1;
    }
  }
  if (rc == OTPC_ETYPE || rc == OTPC_ERANGE) return 0;
  if (rc < 0) return rc;
  if (dst) memcpy(dst, &v, size);
  return 1;
}

/* The rest of a list, as the next term; it must be a term of its own: the
 * tail after the current part of the chain (a list again, perhaps). */
static int list_rest(frame_t *f, otpc_term_t *cur, bool binds_it) {
  if (f->pending) {
    f->p = otpc__term_skip(f->p);
    f->pending = 0;
  }
  if (f->left) return binds_it ? OTPC_ERANGE : 0;
  *cur = term_at(f->str ? nil_byte : f->p);
  return 1;
}

static bool list_ends(frame_t *f) {
  list_settle(f);
  return f->left == 0 && *f->p == ETF_NIL;
}

static int run(const otpc_pattern_t *pat, otpc_term_t cur, matcher_t *m) {
  frame_t fr[MATCH_DEPTH];
  unsigned sp = 0;
  const op_t *op = pat->ops, *end = op + pat->nops;
  const uint8_t *blob = (const uint8_t *)end;
  int rc = cur.kind == TERM_NONE ? 0 : 1;
  for (; op < end && rc == 1; op++) {
    if (op->fetch && !fetch(&fr[sp - 1], &cur)) return 0;
    switch (op->code) {
      case OP_ANY: break;
      case OP_ATOM: rc = atom_eq(cur, blob + op->i, op->a); break;
      case OP_INT: rc = int_eq(cur, op->i); break;
      case OP_NIL: rc = cur.kind == TERM_ENCODED && cur.p[0] == ETF_NIL; break;
      case OP_EQ: rc = otpc_term_equal(cur, term_at(blob + op->a)); break;
      case OP_TUPLE: rc = open_tuple(&fr[sp++], cur, op->a); break;
      case OP_LIST: rc = open_list(&fr[sp++], cur); break;
      case OP_MAP:
        rc = otpc_term_type(cur) == OTPC_TYPE_MAP;
        fr[sp].kind = FR_MAP;
        fr[sp++].p = cur.p;
        break;
      case OP_MAP_KEY:
        cur = otpc_term_map_get(term_at(fr[sp - 1].p), term_at(blob + op->a));
        rc = cur.kind != TERM_NONE;
        break;
      case OP_LIST_TAIL:
        rc =
            list_rest(&fr[--sp], &cur, op[1].code == OP_BIND && op[1].a == 't');
        break;
      case OP_LIST_NIL: rc = list_ends(&fr[--sp]); break;
      case OP_END: sp--; break;
      default: rc = bind(m, (int)op->a, cur); break;
    }
  }
  return rc;
}

int otpc_match_v(const otpc_pattern_t *p, otpc_term_t t, void *const *binds) {
  matcher_t m = {binds, NULL, 0};
  return run(p, t, &m);
}

int otpc_match(const otpc_pattern_t *p, otpc_term_t t, ...) {
  va_list ap;
  va_start(ap, t);
  matcher_t m = {NULL, &ap, 0};
  int rc = run(p, t, &m);
  va_end(ap);
  return rc;
}
