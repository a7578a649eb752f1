/*
 * scan.h: the front end for Erlang term text, shared by the parser
 * (otpc_build_parse), the format builder (otpc_build_fmt) and the pattern
 * compiler (otpc_pattern_compile).
 *
 * Two stages:
 *   - scan.c turns UTF-8 text into tokens, as erl_scan does for the part of
 *     Erlang that writes terms, plus holes (~a) and patterns' `_Name`;
 *   - parse.c turns tokens into a syntax tree: a flat array of nodes in
 *     prefix order (each node records the size of its subtree), built
 *     without recursion. The tree is what the emitter (parse.c), the hole
 *     binder (fmt.c) and the pattern compiler (pattern.c) walk.
 *
 * Decoded text (escaped atoms and strings), big integer magnitudes, binary
 * contents and reference words live in a scratch buffer with inline room,
 * so a small format such as "{~a, ~i}" needs no allocation at all. Data is
 * addressed by offset, since the scratch may move when it grows.
 */
#ifndef OTPC_TERM_SCAN_H
#define OTPC_TERM_SCAN_H

#include <stdarg.h>

#include "term_int.h"

/* ------------------------------------------------------------------------
 * Scratch: a growable byte buffer that starts in place
 * ------------------------------------------------------------------------ */

#define OTPC__SCRATCH_INLINE 128

typedef struct otpc__scratch {
  uint8_t *data; /* inline_buf or the heap */
  size_t len;
  size_t cap;
  uint8_t inline_buf[OTPC__SCRATCH_INLINE];
} otpc__scratch_t;

void otpc__scratch_init(otpc__scratch_t *s);
void otpc__scratch_free(otpc__scratch_t *s);
/* Room for more bytes after len; OTPC_ENOMEM or 0. */
int otpc__scratch_reserve(otpc__scratch_t *s, size_t more);
/* Appends bytes; OTPC_ENOMEM or 0. */
int otpc__scratch_put(otpc__scratch_t *s, const void *data, size_t n);

/* ------------------------------------------------------------------------
 * Tokens (scan.c)
 * ------------------------------------------------------------------------ */

typedef enum otpc__tok_kind {
  TOK_END,      /* end of the text */
  TOK_ATOM,     /* text: UTF-8, chars: code points */
  TOK_VAR,      /* text: the name (_ or _Name, or an uppercase name) */
  TOK_INT,      /* u, or (big) magnitude as text; $c gives TOK_INT too */
  TOK_FLOAT,    /* f */
  TOK_STRING,   /* text: UTF-8, chars, maxcp */
  TOK_PID,      /* <A.B.C>: num[0..2] */
  TOK_REF,      /* #Ref<A.B...>: num[0..nnum) */
  TOK_PORT,     /* #Port<A.B>: num[0..1] */
  TOK_HOLE,     /* ~x: hole = 'x' */
  TOK_FUN,      /* the keyword fun */
  TOK_LBRACE,   /* { */
  TOK_RBRACE,   /* } */
  TOK_LBRACK,   /* [ */
  TOK_RBRACK,   /* ] */
  TOK_MAP,      /* #{ */
  TOK_BINOPEN,  /* << */
  TOK_BINCLOSE, /* >> */
  TOK_COMMA,
  TOK_BAR,   /* | */
  TOK_ARROW, /* => */
  TOK_COLON,
  TOK_SLASH,
  TOK_DOT,
  TOK_MINUS,
  TOK_PLUS
} otpc__tok_kind_t;

#define OTPC__TOK_MAX_NUMS 6 /* a reference: node and five words */

typedef struct otpc__token {
  otpc__tok_kind_t kind;
  uint32_t pos;       /* offset of the token's first byte */
  uint32_t off, len;  /* text or magnitude: offset and bytes */
  uint8_t in_scratch; /* text is in the scratch, else in the source */
  uint8_t big;        /* TOK_INT: magnitude (little-endian) in scratch */
  uint8_t hole;       /* TOK_HOLE: the letter */
  uint8_t nnum;       /* TOK_PID/REF/PORT: numbers read */
  uint32_t chars;     /* TOK_ATOM, TOK_STRING: code points */
  uint32_t maxcp;     /* TOK_STRING: largest code point */
  uint64_t u;         /* TOK_INT that fits */
  double f;           /* TOK_FLOAT */
  uint64_t num[OTPC__TOK_MAX_NUMS];
} otpc__token_t;

typedef struct otpc__scanner {
  const uint8_t *src;
  size_t len;
  size_t pos;
  size_t errpos; /* where the last error was found */
  otpc__scratch_t *scratch;
} otpc__scanner_t;

void otpc__scan_init(otpc__scanner_t *s, const char *src, size_t len,
                     otpc__scratch_t *scratch);
/* Reads the next token into *t: 0, or OTPC_ESYNTAX (or OTPC_ENOMEM) with
 * the offset of the offending byte in *errpos. */
int otpc__scan_next(otpc__scanner_t *s, otpc__token_t *t, size_t *errpos);

/* Where a token's text lives (valid until the scratch grows). */
static inline const uint8_t *otpc__tok_text(const otpc__scanner_t *s,
                                            const otpc__token_t *t) {
  return t->in_scratch ? s->scratch->data + t->off : s->src + t->off;
}

/* Decodes one UTF-8 character at p (p < end) into *cp; returns its length
 * in bytes, or 0 if the bytes are not valid UTF-8 (overlong forms and
 * surrogates included). */
size_t otpc__utf8_decode(const uint8_t *p, const uint8_t *end, uint32_t *cp);
/* Encodes cp (<= 0x10FFFF) into out (room for 4); returns its length. */
size_t otpc__utf8_encode(uint32_t cp, uint8_t *out);

/* ------------------------------------------------------------------------
 * Syntax tree (parse.c)
 * ------------------------------------------------------------------------ */

typedef enum otpc__node_kind {
  NODE_INT,    /* v.u magnitude, NF_NEG */
  NODE_BIG,    /* v.blob magnitude in scratch, NF_NEG */
  NODE_FLOAT,  /* v.f */
  NODE_ATOM,   /* v.blob text (NF_SCRATCH: in scratch, else source) */
  NODE_STRING, /* v.blob text; count: code points; NF_WIDE: some > 255 */
  NODE_NIL,
  NODE_BINARY, /* v.blob bytes in scratch; count: bits in the last byte */
  NODE_PID,    /* v.pid */
  NODE_PORT,   /* v.u id */
  NODE_REF,    /* v.blob: count words (uint32, wire order) in scratch */
  NODE_FUN,    /* v.fun: module and function texts; count: arity */
  NODE_VAR,    /* _ or _Name (patterns only) */
  NODE_HOLE,   /* ~x: hole = 'x'; v.hole once bound (fmt) */
  NODE_TUPLE,  /* count elements follow */
  NODE_LIST,   /* count elements, then the tail (a NIL node if none) */
  NODE_MAP     /* count pairs follow: key, value, key, value... */
} otpc__node_kind_t;

/* Node flags. */
enum {
  NF_NEG = 1 << 0,      /* NODE_INT, NODE_BIG, NODE_FLOAT(unused) */
  NF_SCRATCH = 1 << 1,  /* text in scratch; NODE_FUN: module's */
  NF_SCRATCH2 = 1 << 2, /* NODE_FUN: function's text in scratch */
  NF_WIDE = 1 << 3,     /* NODE_STRING: a code point above 255 */
  NF_SPLICED = 1 << 4,  /* list tail whose elements join the list before */
  NF_TAIL = 1 << 5,     /* the final tail of a list */
  NF_STRING = 1 << 6,   /* NODE_LIST head that encodes as a byte string */
  NF_DROPPED = 1 << 7   /* map key whose pair a later equal key replaces */
};

typedef struct otpc__node {
  uint8_t kind;   /* otpc__node_kind_t */
  uint8_t flags;  /* NF_* */
  uint8_t hole;   /* NODE_HOLE: the letter */
  uint8_t dyn;    /* pattern.c: the subtree holds holes or _ (1), maps (2) */
  uint32_t pos;   /* offset in the text, for errors */
  uint32_t count; /* see the kinds */
  uint32_t size;  /* nodes in the subtree, this one included */
  union {
    uint64_t u;
    double f;
    struct {
      uint32_t off, len;
    } blob;
    struct {
      uint32_t id, serial;
    } pid;
    struct {
      uint32_t moff, mlen, foff, flen;
    } fun;
    struct {
      uint32_t total; /* elements across the spliced chain */
      uint32_t tail;  /* final tail node, counted from this one (maps move
                         subtrees, so no absolute index) */
    } list;
    uint64_t pairs; /* NODE_MAP: pairs left after dropping duplicates */
    union {         /* NODE_HOLE after binding (fmt.c) */
      int64_t i;
      uint64_t u;
      double f;
      otpc_atom_t atom;
      const void *ptr;
      struct {
        const void *ptr;
        size_t len;
      } bin;
      otpc_term_t term;
    } hole;
  } v;
} otpc__node_t;

/* What the text may hold beyond plain terms. */
typedef enum otpc__mode {
  OTPC__MODE_PARSE,  /* terms only */
  OTPC__MODE_FMT,    /* holes ~a ~A ~i ~l ~u ~f ~s ~b ~p ~r ~t */
  OTPC__MODE_PATTERN /* holes ~a ~i ~l ~u ~f ~b ~p ~r ~t, and _ */
} otpc__mode_t;

#define OTPC__TREE_INLINE 16
#define OTPC__TREE_MAX_DEPTH OTPC_TERM_DEFAULT_MAX_DEPTH

typedef struct otpc__tree {
  otpc__node_t *nodes; /* small or the heap */
  uint32_t n;
  uint32_t cap;
  otpc__mode_t mode;
  const uint8_t *src;
  size_t len;
  otpc__scratch_t scratch;
  otpc__node_t small[OTPC__TREE_INLINE];
} otpc__tree_t;

void otpc__tree_init(otpc__tree_t *t, otpc__mode_t mode);
void otpc__tree_free(otpc__tree_t *t);
/* Parses one term (an optional trailing '.') into the tree. Errors:
 * OTPC_ESYNTAX, OTPC_EDEPTH (deeper than OTPC__TREE_MAX_DEPTH),
 * OTPC_ENOMEM; *errpos (may be NULL) gets the offset. */
int otpc__tree_parse(otpc__tree_t *t, const char *text, size_t len,
                     size_t *errpos);
/* Text of a node's blob (atoms, strings, fun parts with their flag). */
static inline const uint8_t *otpc__tree_text(const otpc__tree_t *t,
                                             uint32_t off, bool scratch) {
  return scratch ? t->scratch.data + off : t->src + off;
}

/* Marks list chains ([a|[b]] is [a,b]) and byte strings; holes must be
 * bound first in format mode. */
void otpc__tree_lists(otpc__tree_t *t);
/* Orders the keys of small maps (<= 32 pairs) in nodes [from, to) as
 * Erlang does and drops duplicate keys (the last one wins). */
int otpc__tree_maps(otpc__tree_t *t, uint32_t from, uint32_t to);
/* Writes nodes [from, to) to b (after the two passes above). */
int otpc__tree_emit(otpc__tree_t *t, otpc_builder_t *b, uint32_t from,
                    uint32_t to);
/* All three: a whole term, canonically encoded. */
int otpc__tree_build(otpc__tree_t *t, otpc_builder_t *b);

#endif /* OTPC_TERM_SCAN_H */
