/*
 * term_interop.c: the C half of the term interop test.
 *
 * Reads the data file that term_interop.escript wrote (random terms with
 * what real Erlang says about each: ETF bytes, ~w text, phash2, order) and
 * checks otpc against it, term by term:
 *
 *   decode     otpc_term_decode() accepts Erlang's bytes
 *   copy       walking the view with the public accessors into a fresh
 *              builder (a deep copy, not otpc_build_term()) gives exactly
 *              Erlang's minor_version 2 bytes
 *   print      otpc_term_print() gives exactly io_lib:format("~w")
 *   parse      otpc_term_parse() of that text is =:= the term
 *   phash2     otpc_phash2() and otpc_phash2_range() give Erlang's values
 *   compare    otpc_term_compare()/otpc_term_equal() agree with Erlang's
 *              order (and ==, =:=) against the next term
 *   alt_*      other encodings (minor_version 0/1, compressed, old
 *              identifier tags) decode to an equal term that copies to the
 *              same bytes and hashes the same
 *   compress   otpc_term_compress() output decodes back to an equal term
 *
 * It writes the deep copies, the parsed terms and the compressed terms to
 * an output file that the escript reads back into Erlang (=:= check).
 * The file formats are described at the top of term_interop.escript.
 *
 * usage: term_interop DATAFILE OUTFILE; exit status 0 when all checks pass.
 * OTPC_INTEROP_SHOW=N in the environment prints N failures of each check
 * (default 5) instead of only counting them; OTPC_INTEROP_VERBOSE=1 names
 * each term before checking it (to find the term behind a crash).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otpc/term.h"

#define SHOW_FAILURES 5    /* failures printed per check (OTPC_INTEROP_SHOW) */
#define SHOW_TEXT_MAX 3000 /* bytes of a term's text shown in a report */
#define MAX_RANGES 16
#define MAX_ALTS 8
/* Flags from the escript: Erlang's text of the term is not comparable.
 * FOREIGN: identifiers of other nodes, which Erlang prints with numbers
 * from its connection history. ODD_FUN: an export fun with a non-ASCII
 * atom, which OTP 25 prints as the atom's UTF-8 bytes taken for
 * characters ("fun Ã©:f/0" for fun 'é':f/0). */
#define FLAG_FOREIGN 1
#define FLAG_ODD_FUN 2
#define ABSENT 0xffffffffu

/* ------------------------------------------------------------------------
 * Checks and their failure reports
 * ------------------------------------------------------------------------ */

enum check {
  CK_DECODE,
  CK_COPY,
  CK_PRINT,
  CK_PARSE,
  CK_PHASH2,
  CK_PHASH2_RANGE,
  CK_COMPARE,
  CK_EXACT,
  CK_SELF,
  CK_ALT_DECODE,
  CK_ALT_EQUAL,
  CK_ALT_COPY,
  CK_ALT_PHASH2,
  CK_COMPRESS,
  CK_COUNT_
};

static const char *const check_names[CK_COUNT_] = {
    "decode",    "copy",     "print",      "parse",      "phash2",
    "phash2/2",  "compare",  "=:= next",   "self order", "alt decode",
    "alt equal", "alt copy", "alt phash2", "compress",
};

static unsigned long show_failures = SHOW_FAILURES;
static unsigned long checked[CK_COUNT_];
static unsigned long failed[CK_COUNT_];
static unsigned long text_skipped[2]; /* foreign identifiers, odd funs */

static const char *const alt_names[] = {
    "minor_version 0", "minor_version 1", "compressed",
    "compressed minor_version 2", "old identifier tags"};

static const char *alt_name(unsigned kind) {
  return kind < sizeof alt_names / sizeof alt_names[0] ? alt_names[kind]
                                                       : "unknown";
}

/* ------------------------------------------------------------------------
 * The data file
 * ------------------------------------------------------------------------ */

typedef struct blob {
  const uint8_t *p;
  uint32_t len;
} blob_t;

typedef struct alt {
  unsigned kind;
  blob_t etf;
} alt_t;

typedef struct record {
  unsigned flags;
  blob_t etf; /* term_to_binary(T, [{minor_version, 2}]) */
  unsigned nalts;
  alt_t alts[MAX_ALTS];
  blob_t text; /* io_lib:format("~w", [T]) in UTF-8 */
  uint32_t hash;
  uint32_t hash_range[MAX_RANGES];
  int cmp_next;      /* -1, 0, 1: T < Next, T == Next, T > Next */
  bool exact_next;   /* T =:= Next */
  otpc_term_t term;  /* decoded view, none if decode failed */
  otpc_buf_t *owned; /* inflated bytes when the etf was compressed */
} record_t;

typedef struct reader {
  const uint8_t *p;
  const uint8_t *end;
  bool bad;
} reader_t;

static const uint8_t *take(reader_t *r, size_t n) {
  if (r->bad || (size_t)(r->end - r->p) < n) {
    r->bad = true;
    return NULL;
  }
  const uint8_t *p = r->p;
  r->p += n;
  return p;
}

static uint32_t take_u8(reader_t *r) {
  const uint8_t *p = take(r, 1);
  return p ? p[0] : 0;
}

static uint32_t take_u32(reader_t *r) {
  const uint8_t *p = take(r, 4);
  return p ? ((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
              (uint32_t)p[2] << 8 | p[3])
           : 0;
}

static uint64_t take_u64(reader_t *r) {
  uint64_t hi = take_u32(r);
  return hi << 32 | take_u32(r);
}

static blob_t take_blob(reader_t *r) {
  blob_t b;
  b.len = take_u32(r);
  b.p = take(r, b.len);
  return b;
}

static uint8_t *read_file(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    return NULL;
  }
  size_t cap = 1 << 20, len = 0;
  uint8_t *data = malloc(cap);
  for (;;) {
    if (!data) break;
    len += fread(data + len, 1, cap - len, f);
    if (len < cap) break;
    cap *= 2;
    uint8_t *bigger = realloc(data, cap);
    if (!bigger) free(data);
    data = bigger;
  }
  if (!data || ferror(f)) {
    fprintf(stderr, "%s: cannot read\n", path);
    free(data);
    data = NULL;
  }
  fclose(f);
  *size = len;
  return data;
}

static bool parse_record(reader_t *r, unsigned nranges, record_t *rec) {
  memset(rec, 0, sizeof *rec);
  rec->flags = take_u8(r);
  rec->etf = take_blob(r);
  rec->nalts = take_u8(r);
  if (rec->nalts > MAX_ALTS) return false;
  for (unsigned i = 0; i < rec->nalts; i++) {
    rec->alts[i].kind = take_u8(r);
    rec->alts[i].etf = take_blob(r);
  }
  rec->text = take_blob(r);
  rec->hash = take_u32(r);
  for (unsigned i = 0; i < nranges; i++) rec->hash_range[i] = take_u32(r);
  rec->cmp_next = (int8_t)take_u8(r);
  rec->exact_next = take_u8(r) != 0;
  return !r->bad;
}

/* ------------------------------------------------------------------------
 * Reporting
 * ------------------------------------------------------------------------ */

static void show_text(const char *label, const void *text, size_t len) {
  size_t n = len < SHOW_TEXT_MAX ? len : SHOW_TEXT_MAX;
  printf("  %s (%zu bytes): %.*s%s\n", label, len, (int)n, (const char *)text,
         n < len ? " ...(truncated)" : "");
}

static void show_hex(const char *label, const uint8_t *p, size_t len,
                     size_t from) {
  size_t start = from > 16 ? from - 16 : 0;
  size_t end = len < start + 64 ? len : start + 64;
  printf("  %s (%zu bytes) from offset %zu:", label, len, start);
  for (size_t i = start; i < end; i++)
    printf("%s%02x", i == from ? " [" : " ", p[i]);
  printf("%s\n", end < len ? " ..." : "");
}

/* Counts a failure and says whether to print it in full. */
static bool fail(enum check ck, size_t index, const record_t *rec,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static bool fail(enum check ck, size_t index, const record_t *rec,
                 const char *fmt, ...) {
  if (++failed[ck] > show_failures) return false;
  va_list ap;
  va_start(ap, fmt);
  printf("FAIL %s, term #%zu: ", check_names[ck], index);
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  show_text("erlang ~w", rec->text.p, rec->text.len);
  return true;
}

static size_t first_diff(const uint8_t *a, size_t alen, const uint8_t *b,
                         size_t blen) {
  size_t i = 0;
  while (i < alen && i < blen && a[i] == b[i]) i++;
  return i;
}

/* ------------------------------------------------------------------------
 * The deep copy: every term rebuilt through the public accessors
 * ------------------------------------------------------------------------ */

static int copy_term(otpc_builder_t *b, otpc_term_t t);

/* Erlang writes a proper list of at most 65535 integers 0..255 as
 * STRING_EXT, whatever encoding it came in; so does this copy. */
static int copy_list(otpc_builder_t *b, otpc_term_t t) {
  otpc_list_iter_t it;
  otpc_term_t e;
  int rc = otpc_term_list_iter(t, &it);
  if (rc < 0) return rc;
  size_t n = 0;
  bool bytes = true;
  while (otpc_list_next(&it, &e)) {
    int64_t v;
    if (bytes && (otpc_term_get_int64(e, &v) < 0 || v < 0 || v > 255))
      bytes = false;
    n++;
  }
  otpc_term_t tail = otpc_list_tail(&it);
  bool proper = otpc_term_type(tail) == OTPC_TYPE_NIL;

  otpc_term_list_iter(t, &it);
  if (proper && bytes && n <= 65535) {
    char *s = malloc(n ? n : 1);
    if (!s) return OTPC_ENOMEM;
    for (size_t i = 0; otpc_list_next(&it, &e); i++) {
      int64_t v = 0;
      otpc_term_get_int64(e, &v);
      s[i] = (char)v;
    }
    rc = otpc_build_string(b, s, n);
    free(s);
    return rc;
  }
  if ((rc = otpc_build_list(b, n)) < 0) return rc;
  while (otpc_list_next(&it, &e))
    if ((rc = copy_term(b, e)) < 0) return rc;
  return copy_term(b, otpc_list_tail(&it));
}

static int copy_integer(otpc_builder_t *b, otpc_term_t t) {
  int64_t v;
  if (otpc_term_get_int64(t, &v) == 0) return otpc_build_int(b, v);
  bool neg;
  const uint8_t *mag;
  size_t n;
  uint8_t scratch[8];
  int rc = otpc_term_get_bigint(t, &neg, &mag, &n, scratch);
  return rc < 0 ? rc : otpc_build_bigint(b, neg, mag, n);
}

static int copy_container(otpc_builder_t *b, otpc_term_t t) {
  size_t n;
  otpc_term_t e;
  int rc;
  if (otpc_term_type(t) == OTPC_TYPE_TUPLE) {
    if ((rc = otpc_term_get_tuple(t, &n, &e)) < 0 ||
        (rc = otpc_build_tuple(b, n)) < 0)
      return rc;
    for (size_t i = 0; i < n; i++, e = otpc_term_next(e))
      if ((rc = copy_term(b, e)) < 0) return rc;
    return 0;
  }
  if ((rc = otpc_term_get_map(t, &n, &e)) < 0 ||
      (rc = otpc_build_map(b, n)) < 0)
    return rc;
  for (size_t i = 0; i < n; i++) {
    otpc_term_t v = otpc_term_next(e);
    if ((rc = copy_term(b, e)) < 0 || (rc = copy_term(b, v)) < 0) return rc;
    e = otpc_term_next(v);
  }
  return 0;
}

static int copy_term(otpc_builder_t *b, otpc_term_t t) {
  int rc;
  switch (otpc_term_type(t)) {
    case OTPC_TYPE_INTEGER: return copy_integer(b, t);
    case OTPC_TYPE_FLOAT: {
      double d;
      rc = otpc_term_get_double(t, &d);
      return rc < 0 ? rc : otpc_build_double(b, d);
    }
    case OTPC_TYPE_ATOM: {
      otpc_atom_t a;
      rc = otpc_term_get_atom(t, &a);
      return rc < 0 ? rc : otpc_build_atom_id(b, a);
    }
    case OTPC_TYPE_REF: {
      otpc_ref_t r;
      rc = otpc_term_get_ref(t, &r);
      return rc < 0 ? rc : otpc_build_ref(b, &r);
    }
    case OTPC_TYPE_FUN: {
      otpc_atom_t m, f;
      unsigned arity;
      rc = otpc_term_get_export(t, &m, &f, &arity);
      return rc < 0 ? rc : otpc_build_export(b, m, f, arity);
    }
    case OTPC_TYPE_PORT: {
      otpc_port_t p;
      rc = otpc_term_get_port(t, &p);
      return rc < 0 ? rc : otpc_build_port(b, &p);
    }
    case OTPC_TYPE_PID: {
      otpc_pid_t p;
      rc = otpc_term_get_pid(t, &p);
      return rc < 0 ? rc : otpc_build_pid(b, &p);
    }
    case OTPC_TYPE_TUPLE:
    case OTPC_TYPE_MAP: return copy_container(b, t);
    case OTPC_TYPE_NIL: return otpc_build_nil(b);
    case OTPC_TYPE_LIST: return copy_list(b, t);
    case OTPC_TYPE_BITSTRING: {
      const uint8_t *data;
      size_t bytes;
      unsigned bits;
      rc = otpc_term_get_binary(t, &data, &bytes, &bits);
      if (rc < 0) return rc;
      if (bits == 8) return otpc_build_binary(b, data, bytes);
      return otpc_build_bitstring(b, data, (bytes - 1) * 8 + bits);
    }
    case OTPC_TYPE_NONE: break;
  }
  return OTPC_ETYPE;
}

/* Deep copy of t into a new buffer; NULL (and *err) on failure. */
static otpc_buf_t *deep_copy(otpc_term_t t, int *err) {
  otpc_builder_t b;
  otpc_builder_init(&b);
  int rc = copy_term(&b, t);
  if (rc < 0) {
    otpc_builder_dispose(&b);
    *err = rc;
    return NULL;
  }
  return otpc_builder_finish(&b, err);
}

/* ------------------------------------------------------------------------
 * Checks on one term
 * ------------------------------------------------------------------------ */

typedef struct output {
  otpc_buf_t *copy;
  otpc_buf_t *parsed;
  otpc_buf_t *compressed;
} output_t;

static void check_decode(size_t i, record_t *rec) {
  otpc_decode_error_t e = {0, 0};
  checked[CK_DECODE]++;
  int rc = otpc_term_decode(rec->etf.p, rec->etf.len, NULL, &rec->term,
                            &rec->owned, &e);
  if (rc < 0) {
    memset(&rec->term, 0, sizeof rec->term);
    if (fail(CK_DECODE, i, rec, "otpc_term_decode: %s at offset %zu",
             otpc_err_name(rc), e.offset))
      show_hex("erlang etf", rec->etf.p, rec->etf.len, e.offset);
    return;
  }
  long n = otpc_term_validate(rec->etf.p + 1, rec->etf.len - 1, NULL, &e);
  size_t size = otpc_term_size(rec->term);
  if (n != (long)rec->etf.len - 1 || size != rec->etf.len - 1)
    fail(CK_DECODE, i, rec,
         "otpc_term_validate gave %ld (%s), otpc_term_size %zu, expected %u", n,
         n < 0 ? otpc_err_name((int)n) : "ok", size, rec->etf.len - 1);
}

static void check_copy(size_t i, const record_t *rec, output_t *out) {
  int err = 0;
  checked[CK_COPY]++;
  otpc_buf_t *copy = deep_copy(rec->term, &err);
  if (!copy) {
    fail(CK_COPY, i, rec, "deep copy failed: %s", otpc_err_name(err));
    return;
  }
  out->copy = copy;
  const uint8_t *p = otpc_buf_data(copy);
  size_t len = otpc_buf_size(copy);
  if (len == rec->etf.len && memcmp(p, rec->etf.p, len) == 0) return;
  size_t at = first_diff(p, len, rec->etf.p, rec->etf.len);
  if (fail(CK_COPY, i, rec, "re-encoded bytes differ at offset %zu", at)) {
    show_hex("erlang etf", rec->etf.p, rec->etf.len, at);
    show_hex("otpc etf  ", p, len, at);
  }
}

static void check_print(size_t i, const record_t *rec, output_t *out) {
  if (rec->flags & (FLAG_FOREIGN | FLAG_ODD_FUN)) {
    text_skipped[rec->flags & FLAG_FOREIGN ? 0 : 1]++;
    return;
  }
  char *s = NULL;
  size_t len = 0;
  checked[CK_PRINT]++;
  int rc = otpc_term_print(rec->term, &s, &len);
  if (rc < 0) {
    fail(CK_PRINT, i, rec, "otpc_term_print: %s", otpc_err_name(rc));
  } else if (len != rec->text.len || memcmp(s, rec->text.p, len) != 0) {
    size_t at = first_diff((const uint8_t *)s, len, rec->text.p, rec->text.len);
    if (fail(CK_PRINT, i, rec, "text differs at byte %zu", at)) {
      show_text("otpc print", s, len);
      size_t from = at > 40 ? at - 40 : 0;
      printf("  around byte %zu: erlang \"%.*s\" otpc \"%.*s\"\n", at,
             (int)(rec->text.len - from < 80 ? rec->text.len - from : 80),
             (const char *)rec->text.p + from,
             (int)(len - from < 80 ? len - from : 80), s + from);
    }
  }
  otpc_free(s);

  /* Parse Erlang's text back: it must be the same term. */
  otpc_buf_t *parsed = NULL;
  size_t errpos = 0;
  checked[CK_PARSE]++;
  rc = otpc_term_parse((const char *)rec->text.p, rec->text.len, &parsed,
                       &errpos);
  if (rc < 0) {
    if (fail(CK_PARSE, i, rec, "otpc_term_parse: %s at byte %zu",
             otpc_err_name(rc), errpos)) {
      size_t from = errpos > 40 ? errpos - 40 : 0;
      size_t n = rec->text.len - from < 80 ? rec->text.len - from : 80;
      printf("  near: \"%.*s\"\n", (int)n, (const char *)rec->text.p + from);
    }
    return;
  }
  out->parsed = parsed;
  if (!otpc_term_equal(otpc_buf_term(parsed), rec->term) &&
      fail(CK_PARSE, i, rec, "parsed term is not =:= the original")) {
    char *ps = NULL;
    otpc_term_print(otpc_buf_term(parsed), &ps, NULL);
    show_text("parsed, printed by otpc", ps ? ps : "?", ps ? strlen(ps) : 1);
    otpc_free(ps);
  }
}

static void check_phash2(size_t i, const record_t *rec, const uint64_t *ranges,
                         unsigned nranges) {
  checked[CK_PHASH2]++;
  uint32_t h = otpc_phash2(rec->term);
  if (h != rec->hash)
    fail(CK_PHASH2, i, rec, "otpc_phash2 %" PRIu32 ", erlang %" PRIu32, h,
         rec->hash);
  for (unsigned k = 0; k < nranges; k++) {
    checked[CK_PHASH2_RANGE]++;
    h = otpc_phash2_range(rec->term, ranges[k]);
    if (h != rec->hash_range[k])
      fail(CK_PHASH2_RANGE, i, rec,
           "otpc_phash2_range(T, %" PRIu64 ") %" PRIu32 ", erlang %" PRIu32,
           ranges[k], h, rec->hash_range[k]);
  }
}

static void check_alts(size_t i, const record_t *rec) {
  for (unsigned k = 0; k < rec->nalts; k++) {
    const alt_t *alt = &rec->alts[k];
    otpc_term_t t;
    otpc_buf_t *owned = NULL;
    otpc_decode_error_t e = {0, 0};
    checked[CK_ALT_DECODE]++;
    int rc = otpc_term_decode(alt->etf.p, alt->etf.len, NULL, &t, &owned, &e);
    if (rc < 0) {
      if (fail(CK_ALT_DECODE, i, rec, "%s: otpc_term_decode: %s at %zu",
               alt_name(alt->kind), otpc_err_name(rc), e.offset))
        show_hex("erlang etf", alt->etf.p, alt->etf.len,
                 alt->kind == 2 || alt->kind == 3 ? 0 : e.offset);
      continue;
    }
    checked[CK_ALT_EQUAL]++;
    if (!otpc_term_equal(t, rec->term) || otpc_term_compare(t, rec->term) != 0)
      fail(CK_ALT_EQUAL, i, rec, "%s decodes to a term not =:= the original",
           alt_name(alt->kind));
    checked[CK_ALT_PHASH2]++;
    if (otpc_phash2(t) != rec->hash)
      fail(CK_ALT_PHASH2, i, rec, "%s: phash2 %" PRIu32 ", erlang %" PRIu32,
           alt_name(alt->kind), otpc_phash2(t), rec->hash);
    int err = 0;
    checked[CK_ALT_COPY]++;
    otpc_buf_t *copy = deep_copy(t, &err);
    if (!copy) {
      fail(CK_ALT_COPY, i, rec, "%s: deep copy failed: %s", alt_name(alt->kind),
           otpc_err_name(err));
    } else {
      const uint8_t *p = otpc_buf_data(copy);
      size_t len = otpc_buf_size(copy);
      if (len != rec->etf.len || memcmp(p, rec->etf.p, len) != 0) {
        size_t at = first_diff(p, len, rec->etf.p, rec->etf.len);
        if (fail(CK_ALT_COPY, i, rec,
                 "%s: copy differs from minor_version 2 bytes at %zu",
                 alt_name(alt->kind), at)) {
          show_hex("erlang etf", rec->etf.p, rec->etf.len, at);
          show_hex("otpc etf  ", p, len, at);
        }
      }
      otpc_buf_unref(copy);
    }
    otpc_buf_unref(owned);
  }
}

/* Returns 1 when otpc's compressed bytes equal Erlang's (information). */
static int check_compress(size_t i, const record_t *rec, output_t *out) {
  otpc_buf_t *z = NULL;
  checked[CK_COMPRESS]++;
  int rc = otpc_term_compress(rec->term, -1, &z);
  if (rc < 0) {
    fail(CK_COMPRESS, i, rec, "otpc_term_compress: %s", otpc_err_name(rc));
    return 0;
  }
  out->compressed = z;
  otpc_term_t t;
  otpc_buf_t *owned = NULL;
  otpc_decode_error_t e = {0, 0};
  rc = otpc_term_decode(otpc_buf_data(z), otpc_buf_size(z), NULL, &t, &owned,
                        &e);
  if (rc < 0)
    fail(CK_COMPRESS, i, rec, "own compressed output: decode %s at %zu",
         otpc_err_name(rc), e.offset);
  else if (!otpc_term_equal(t, rec->term))
    fail(CK_COMPRESS, i, rec, "own compressed output is not =:= the term");
  otpc_buf_unref(owned);
  for (unsigned k = 0; k < rec->nalts; k++)
    if (rec->alts[k].kind == 3)
      return rec->alts[k].etf.len == otpc_buf_size(z) &&
             memcmp(rec->alts[k].etf.p, otpc_buf_data(z), otpc_buf_size(z)) ==
                 0;
  return 0;
}

static int sign(int v) {
  return (v > 0) - (v < 0);
}

static void check_order(size_t i, const record_t *a, const record_t *b) {
  checked[CK_SELF]++;
  if (otpc_term_compare(a->term, a->term) != 0 ||
      !otpc_term_equal(a->term, a->term))
    fail(CK_SELF, i, a, "a term does not compare equal to itself");
  if (!b || otpc_term_is_none(b->term)) return;
  checked[CK_COMPARE]++;
  int c = sign(otpc_term_compare(a->term, b->term));
  int back = sign(otpc_term_compare(b->term, a->term));
  if (c != a->cmp_next || back != -a->cmp_next)
    fail(CK_COMPARE, i, a,
         "compare with next: otpc %d (reversed %d), erlang %d; next term: "
         "%.*s",
         c, back, a->cmp_next,
         (int)(b->text.len < SHOW_TEXT_MAX ? b->text.len : SHOW_TEXT_MAX),
         (const char *)b->text.p);
  checked[CK_EXACT]++;
  bool eq = otpc_term_equal(a->term, b->term);
  if (eq != a->exact_next)
    fail(CK_EXACT, i, a, "=:= with next: otpc %s, erlang %s; next term: %.*s",
         eq ? "true" : "false", a->exact_next ? "true" : "false",
         (int)(b->text.len < SHOW_TEXT_MAX ? b->text.len : SHOW_TEXT_MAX),
         (const char *)b->text.p);
}

/* ------------------------------------------------------------------------
 * Output file and main
 * ------------------------------------------------------------------------ */

static void put_u32(FILE *f, uint32_t v) {
  uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8),
                  (uint8_t)v};
  fwrite(b, 1, 4, f);
}

static void put_buf(FILE *f, const otpc_buf_t *buf) {
  if (!buf) {
    put_u32(f, ABSENT);
    return;
  }
  put_u32(f, (uint32_t)otpc_buf_size(buf));
  fwrite(otpc_buf_data(buf), 1, otpc_buf_size(buf), f);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s DATAFILE OUTFILE\n", argv[0]);
    return 2;
  }
  const char *show = getenv("OTPC_INTEROP_SHOW");
  if (show && *show) show_failures = strtoul(show, NULL, 10);
  size_t size;
  uint8_t *data = read_file(argv[1], &size);
  if (!data) return 2;
  reader_t r = {data, data + size, false};
  const uint8_t *magic = take(&r, 8);
  uint32_t count = take_u32(&r);
  uint32_t nranges = take_u32(&r);
  uint64_t ranges[MAX_RANGES];
  if (!magic || memcmp(magic, "OTPCTRM1", 8) != 0 || nranges > MAX_RANGES) {
    fprintf(stderr, "%s: not a term interop data file\n", argv[1]);
    return 2;
  }
  for (unsigned k = 0; k < nranges; k++) ranges[k] = take_u64(&r);
  record_t *recs = calloc(count ? count : 1, sizeof *recs);
  output_t *outs = calloc(count ? count : 1, sizeof *outs);
  if (!recs || !outs) return 2;
  for (size_t i = 0; i < count; i++) {
    if (!parse_record(&r, nranges, &recs[i])) {
      fprintf(stderr, "%s: record %zu is malformed\n", argv[1], i);
      return 2;
    }
  }

  unsigned long same_zlib = 0;
  const char *verbose = getenv("OTPC_INTEROP_VERBOSE");
  bool trace = verbose && *verbose && strcmp(verbose, "0") != 0;
  for (size_t i = 0; i < count; i++) {
    record_t *rec = &recs[i];
    if (trace) {
      printf("term #%zu: %.*s\n", i,
             (int)(rec->text.len < 200 ? rec->text.len : 200),
             (const char *)rec->text.p);
      fflush(stdout);
    }
    check_decode(i, rec);
    if (otpc_term_is_none(rec->term)) continue;
    check_copy(i, rec, &outs[i]);
    check_print(i, rec, &outs[i]);
    check_phash2(i, rec, ranges, nranges);
    check_alts(i, rec);
    same_zlib += (unsigned long)check_compress(i, rec, &outs[i]);
    fflush(stdout);
  }
  for (size_t i = 0; i < count; i++)
    if (!otpc_term_is_none(recs[i].term))
      check_order(i, &recs[i], i + 1 < count ? &recs[i + 1] : NULL);

  FILE *f = fopen(argv[2], "wb");
  if (!f) {
    perror(argv[2]);
    return 2;
  }
  fwrite("OTPCOUT1", 1, 8, f);
  put_u32(f, count);
  for (size_t i = 0; i < count; i++) {
    put_buf(f, outs[i].copy);
    put_buf(f, outs[i].parsed);
    put_buf(f, outs[i].compressed);
  }
  if (fclose(f) != 0) {
    perror(argv[2]);
    return 2;
  }

  unsigned long total_failed = 0;
  printf("otpc checks on %" PRIu32 " terms:\n", count);
  for (int k = 0; k < CK_COUNT_; k++) {
    printf("  %-12s %8lu checked %6lu failed\n", check_names[k], checked[k],
           failed[k]);
    total_failed += failed[k];
  }
  printf(
      "  print and parse skipped for %lu terms with identifiers of other "
      "nodes and %lu with export funs with non-ASCII atoms\n",
      text_skipped[0], text_skipped[1]);
  printf(
      "  (otpc's compressed bytes identical to Erlang's for %lu terms; "
      "not required)\n",
      same_zlib);

  for (size_t i = 0; i < count; i++) {
    otpc_buf_unref(outs[i].copy);
    otpc_buf_unref(outs[i].parsed);
    otpc_buf_unref(outs[i].compressed);
    otpc_buf_unref(recs[i].owned);
  }
  free(outs);
  free(recs);
  free(data);
  return total_failed ? 1 : 0;
}
