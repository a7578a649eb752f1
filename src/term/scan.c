/*
 * scan.c: the tokenizer for Erlang term text (the tokens are listed in
 * scan.h), and the scratch buffer the front end keeps decoded data in.
 *
 * It follows erl_scan for what it covers: unquoted atoms and variables
 * (Latin-1 letters too), quoted atoms and strings with every escape
 * erl_scan knows (\n \t \s ... \NNN \xHH \x{H...} \^C, any other character
 * stands for itself), integers with _ between digits, Base#Digits for
 * bases 2..36, $c characters, floats (1.0, 2.5e-3; a digit must follow the
 * point), % comments, white space (0..32 and 128..160). Beyond erl_scan it
 * reads pids <A.B.C>, #Ref<...> and #Port<...> as single tokens, and holes
 * ~x for formats and patterns.
 *
 * The text must be UTF-8; a code point that is a surrogate or above
 * 0x10FFFF is an error, as in erl_scan. Text without escapes stays in the
 * source; escaped text is decoded into the scratch.
 */
#include "scan.h"

#include <errno.h>
#include <locale.h>
#include <pthread.h>
#include <stdlib.h>

/* ------------------------------------------------------------------------
 * Scratch
 * ------------------------------------------------------------------------ */

void otpc__scratch_init(otpc__scratch_t *s) {
  s->data = s->inline_buf;
  s->len = 0;
  s->cap = sizeof s->inline_buf;
}

void otpc__scratch_free(otpc__scratch_t *s) {
  if (s->data != s->inline_buf) otpc__free(s->data);
  otpc__scratch_init(s);
}

int otpc__scratch_reserve(otpc__scratch_t *s, size_t more) {
  if (more <= s->cap - s->len) return 0;
  /* Offsets into the scratch are 32-bit. */
  if (more > UINT32_MAX - s->len) return OTPC_ENOMEM;
  size_t cap = s->cap * 2;
  while (cap < s->len + more) cap *= 2;
  bool inl = s->data == s->inline_buf;
  uint8_t *d = inl ? otpc__malloc(cap) : otpc__realloc(s->data, cap);
  if (!d) return OTPC_ENOMEM;
  if (inl) memcpy(d, s->inline_buf, s->len);
  s->data = d;
  s->cap = cap;
  return 0;
}

int otpc__scratch_put(otpc__scratch_t *s, const void *data, size_t n) {
  int rc = otpc__scratch_reserve(s, n);
  if (rc < 0) return rc;
  if (n) memcpy(s->data + s->len, data, n);
  s->len += n;
  return 0;
}

/* ------------------------------------------------------------------------
 * UTF-8
 * ------------------------------------------------------------------------ */

size_t otpc__utf8_decode(const uint8_t *p, const uint8_t *end, uint32_t *cp) {
  uint32_t c = p[0], min;
  size_t n;
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  if (c < 0xC2) return 0;
  if (c < 0xE0) {
    n = 2, c &= 0x1F, min = 0x80;
  } else if (c < 0xF0) {
    n = 3, c &= 0x0F, min = 0x800;
  } else if (c < 0xF5) {
    n = 4, c &= 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if ((size_t)(end - p) < n) return 0;
  for (size_t i = 1; i < n; i++) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    c = (c << 6) | (p[i] & 0x3F);
  }
  if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
  *cp = c;
  return n;
}

size_t otpc__utf8_encode(uint32_t cp, uint8_t *out) {
  if (cp < 0x80) {
    out[0] = (uint8_t)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (uint8_t)(0xC0 | (cp >> 6));
    out[1] = (uint8_t)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (uint8_t)(0xE0 | (cp >> 12));
    out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (uint8_t)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (uint8_t)(0xF0 | (cp >> 18));
  out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (uint8_t)(0x80 | (cp & 0x3F));
  return 4;
}

/* ------------------------------------------------------------------------
 * Character classes (erl_scan's, on code points)
 * ------------------------------------------------------------------------ */

static bool is_lower(uint32_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 0xDF && c <= 0xFF && c != 0xF7);
}
static bool is_upper(uint32_t c) {
  return (c >= 'A' && c <= 'Z') || c == '_' ||
         (c >= 0xC0 && c <= 0xDE && c != 0xD7);
}
static bool is_namechar(uint32_t c) {
  return is_lower(c) || is_upper(c) || (c >= '0' && c <= '9') || c == '@';
}
static bool is_digit(uint8_t c) {
  return c >= '0' && c <= '9';
}

/* Value of c as a digit, or 99. */
static unsigned digit_value(uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'z') return c - 'a' + 10u;
  if (c >= 'A' && c <= 'Z') return c - 'A' + 10u;
  return 99;
}

static int fail(otpc__scanner_t *s, size_t at) {
  s->errpos = at;
  return OTPC_ESYNTAX;
}

/* The code point at s->pos (s->pos < s->len) and its length; 0 if the
 * bytes there are not UTF-8. */
static size_t peek_char(const otpc__scanner_t *s, uint32_t *cp) {
  return otpc__utf8_decode(s->src + s->pos, s->src + s->len, cp);
}

/* ------------------------------------------------------------------------
 * White space and comments
 * ------------------------------------------------------------------------ */

static void skip_blank(otpc__scanner_t *s) {
  while (s->pos < s->len) {
    uint8_t c = s->src[s->pos];
    if (c <= ' ') {
      s->pos++;
    } else if (c == '%') {
      while (s->pos < s->len && s->src[s->pos] != '\n') s->pos++;
    } else if (c == 0xC2 && s->pos + 1 < s->len && s->src[s->pos + 1] >= 0x80 &&
               s->src[s->pos + 1] <= 0xA0) {
      s->pos += 2; /* U+0080..U+00A0 are white space to erl_scan */
    } else {
      return;
    }
  }
}

/* ------------------------------------------------------------------------
 * Names: atoms, variables, the keyword fun
 * ------------------------------------------------------------------------ */

static int scan_name(otpc__scanner_t *s, otpc__token_t *t,
                     otpc__tok_kind_t kind) {
  size_t start = s->pos;
  uint32_t chars = 0, cp;
  while (s->pos < s->len) {
    size_t n = peek_char(s, &cp);
    if (!n || !is_namechar(cp)) break;
    s->pos += n;
    chars++;
  }
  if (kind == TOK_ATOM && chars > OTPC_ATOM_MAX_CHARS) return fail(s, start);
  t->kind = kind;
  t->off = (uint32_t)start;
  t->len = (uint32_t)(s->pos - start);
  t->chars = chars;
  if (kind == TOK_ATOM && t->len == 3 && memcmp(s->src + start, "fun", 3) == 0)
    t->kind = TOK_FUN;
  return 0;
}

/* ------------------------------------------------------------------------
 * Escapes, quoted atoms, strings, characters
 * ------------------------------------------------------------------------ */

static int scan_hex_braces(otpc__scanner_t *s, uint32_t *cp) {
  size_t start = s->pos;
  uint32_t v = 0;
  s->pos++; /* { */
  while (s->pos < s->len && digit_value(s->src[s->pos]) < 16) {
    v = v * 16 + digit_value(s->src[s->pos++]);
    if (v > 0x10FFFF) return fail(s, start);
  }
  if (s->pos == start + 1 || s->pos >= s->len || s->src[s->pos] != '}')
    return fail(s, start);
  s->pos++;
  if (v >= 0xD800 && v <= 0xDFFF) return fail(s, start);
  *cp = v;
  return 0;
}

static int scan_hex2(otpc__scanner_t *s, uint32_t *cp) {
  if (s->pos + 1 >= s->len || digit_value(s->src[s->pos]) >= 16 ||
      digit_value(s->src[s->pos + 1]) >= 16)
    return fail(s, s->pos);
  *cp = digit_value(s->src[s->pos]) * 16 + digit_value(s->src[s->pos + 1]);
  s->pos += 2;
  return 0;
}

/* One escape; s->pos is just after the backslash. */
static int scan_escape(otpc__scanner_t *s, uint32_t *cp) {
  static const char from[] = "bdefnrstv";
  static const uint8_t to[] = {8, 127, 27, 12, 10, 13, 32, 9, 11};
  if (s->pos >= s->len) return fail(s, s->pos);
  uint8_t c = s->src[s->pos];
  if (c >= '0' && c <= '7') {
    uint32_t v = 0;
    for (int i = 0; i < 3 && s->pos < s->len && s->src[s->pos] >= '0' &&
                    s->src[s->pos] <= '7';
         i++)
      v = v * 8 + (uint32_t)(s->src[s->pos++] - '0');
    *cp = v;
    return 0;
  }
  if (c == 'x') {
    s->pos++;
    if (s->pos < s->len && s->src[s->pos] == '{') return scan_hex_braces(s, cp);
    return scan_hex2(s, cp);
  }
  if (c == '^') {
    s->pos++;
    if (s->pos >= s->len) return fail(s, s->pos);
    size_t n = peek_char(s, cp);
    if (!n) return fail(s, s->pos);
    s->pos += n;
    *cp &= 31;
    return 0;
  }
  const char *hit = c ? strchr(from, c) : NULL;
  if (hit) {
    s->pos++;
    *cp = to[hit - from];
    return 0;
  }
  size_t n = peek_char(s, cp); /* any other character stands for itself */
  if (!n) return fail(s, s->pos);
  s->pos += n;
  return 0;
}

/*
 * A quoted atom or a string; s->pos is at the quote. Until the first
 * escape the text is left in the source; from then on it is copied,
 * decoded, into the scratch.
 */
static int scan_quoted(otpc__scanner_t *s, otpc__token_t *t, uint8_t q) {
  size_t open = s->pos++, text = s->pos;
  size_t mark = s->scratch->len;
  bool copying = false;
  uint32_t chars = 0, maxcp = 0, cp = 0;
  uint8_t enc[4];
  int rc = 0;
  while (rc == 0) {
    if (s->pos >= s->len) return fail(s, open);
    uint8_t c = s->src[s->pos];
    if (c == q) break;
    size_t at = s->pos, n;
    if (c == '\\') {
      if (!copying)
        rc = otpc__scratch_put(s->scratch, s->src + text, at - text);
      copying = true;
      s->pos++;
      if (rc == 0) rc = scan_escape(s, &cp);
      if (rc == 0)
        rc = otpc__scratch_put(s->scratch, enc, otpc__utf8_encode(cp, enc));
    } else {
      n = peek_char(s, &cp);
      if (!n) return fail(s, at);
      s->pos += n;
      if (copying) rc = otpc__scratch_put(s->scratch, s->src + at, n);
    }
    chars++;
    if (cp > maxcp) maxcp = cp;
  }
  if (rc < 0) return rc;
  s->pos++; /* the closing quote */
  t->in_scratch = copying;
  t->off = (uint32_t)(copying ? mark : text);
  t->len = (uint32_t)(copying ? s->scratch->len - mark : s->pos - 1 - text);
  t->chars = chars;
  t->maxcp = maxcp;
  t->kind = q == '"' ? TOK_STRING : TOK_ATOM;
  if (q == '\'' && chars > OTPC_ATOM_MAX_CHARS) return fail(s, open);
  return 0;
}

/* $c: s->pos is at the dollar. */
static int scan_char(otpc__scanner_t *s, otpc__token_t *t) {
  uint32_t cp;
  s->pos++;
  if (s->pos >= s->len) return fail(s, s->pos);
  if (s->src[s->pos] == '\\') {
    s->pos++;
    int rc = scan_escape(s, &cp);
    if (rc < 0) return rc;
  } else {
    size_t n = peek_char(s, &cp);
    if (!n) return fail(s, s->pos);
    s->pos += n;
  }
  t->kind = TOK_INT;
  t->u = cp;
  return 0;
}

/* ------------------------------------------------------------------------
 * Numbers
 * ------------------------------------------------------------------------ */

/* Digits of base, with single underscores between digits. Returns how
 * many digits were read. */
static size_t scan_digits(otpc__scanner_t *s, unsigned base) {
  size_t n = 0;
  while (s->pos < s->len) {
    uint8_t c = s->src[s->pos];
    if (digit_value(c) < base) {
      s->pos++, n++;
    } else if (c == '_' && n && s->pos + 1 < s->len &&
               digit_value(s->src[s->pos + 1]) < base) {
      s->pos++;
    } else {
      break;
    }
  }
  return n;
}

/* Big integer from digits [from, to) (underscores skipped) into the
 * scratch as a little-endian magnitude. */
static int digits_big(otpc__scanner_t *s, otpc__token_t *t, size_t from,
                      size_t to, unsigned base) {
  size_t cap = to - from + 2;
  int rc = otpc__scratch_reserve(s->scratch, cap);
  if (rc < 0) return rc;
  uint8_t *mag = s->scratch->data + s->scratch->len;
  long n = 1;
  mag[0] = 0;
  for (size_t i = from; i < to && n >= 0; i++)
    if (s->src[i] != '_')
      n = otpc__big_muladd(mag, (size_t)n, cap, base, digit_value(s->src[i]));
  if (n < 0) return fail(s, from); /* cannot happen: cap is ample */
  while (n > 0 && mag[n - 1] == 0) n--;
  t->kind = TOK_INT;
  t->big = 1;
  t->in_scratch = 1;
  t->off = (uint32_t)s->scratch->len;
  t->len = (uint32_t)n;
  s->scratch->len += (size_t)n;
  return 0;
}

static int digits_value(otpc__scanner_t *s, otpc__token_t *t, size_t from,
                        size_t to, unsigned base) {
  uint64_t v = 0;
  for (size_t i = from; i < to; i++) {
    if (s->src[i] == '_') continue;
    unsigned d = digit_value(s->src[i]);
    if (v > (UINT64_MAX - d) / base) return digits_big(s, t, from, to, base);
    v = v * base + d;
  }
  t->kind = TOK_INT;
  t->u = v;
  return 0;
}

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static void make_c_locale(void) {
  c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

/* The float written in [from, to): copied without underscores, then read
 * in the C locale. Out of range is an error, as in erl_scan. */
static int float_value(otpc__scanner_t *s, otpc__token_t *t, size_t from,
                       size_t to) {
  otpc__scratch_t *sc = s->scratch;
  size_t mark = sc->len;
  int rc = otpc__scratch_reserve(sc, to - from + 1);
  if (rc < 0) return rc;
  char *buf = (char *)sc->data + mark, *w = buf;
  for (size_t i = from; i < to; i++)
    if (s->src[i] != '_') *w++ = (char)s->src[i];
  *w = 0;
  pthread_once(&c_locale_once, make_c_locale);
  errno = 0;
  double v = c_locale ? strtod_l(buf, NULL, c_locale) : strtod(buf, NULL);
  bool overflow = errno == ERANGE && (v > 1.0 || v < -1.0);
  sc->len = mark;
  if (overflow) return fail(s, from);
  t->kind = TOK_FLOAT;
  t->f = v;
  return 0;
}

/* After the digits of a float's fraction: e, sign, digits, if there. */
static void scan_exponent(otpc__scanner_t *s) {
  size_t p = s->pos;
  if (p >= s->len || (s->src[p] != 'e' && s->src[p] != 'E')) return;
  p++;
  if (p < s->len && (s->src[p] == '+' || s->src[p] == '-')) p++;
  if (p >= s->len || !is_digit(s->src[p])) return;
  s->pos = p;
  scan_digits(s, 10);
}

static int scan_number(otpc__scanner_t *s, otpc__token_t *t) {
  size_t start = s->pos;
  scan_digits(s, 10);
  size_t end = s->pos;
  if (end < s->len && s->src[end] == '#') {
    uint64_t base = 0;
    for (size_t i = start; i < end && base <= 36; i++)
      if (s->src[i] != '_') base = base * 10 + (s->src[i] - '0');
    if (base < 2 || base > 36) return fail(s, start);
    s->pos++;
    size_t from = s->pos;
    if (!scan_digits(s, (unsigned)base)) return fail(s, from);
    return digits_value(s, t, from, s->pos, (unsigned)base);
  }
  if (end + 1 < s->len && s->src[end] == '.' && is_digit(s->src[end + 1])) {
    s->pos++;
    scan_digits(s, 10);
    scan_exponent(s);
    return float_value(s, t, start, s->pos);
  }
  return digits_value(s, t, start, end, 10);
}

/* ------------------------------------------------------------------------
 * Identifiers: <A.B.C>, #Ref<...>, #Port<...>
 * ------------------------------------------------------------------------ */

/* Numbers separated by dots up to '>'; s->pos is just after the '<'. */
static int scan_ids(otpc__scanner_t *s, otpc__token_t *t, otpc__tok_kind_t kind,
                    unsigned min, unsigned max) {
  unsigned n = 0;
  for (;;) {
    size_t from = s->pos;
    uint64_t v = 0;
    while (s->pos < s->len && is_digit(s->src[s->pos])) {
      unsigned d = s->src[s->pos] - '0';
      if (v > (UINT64_MAX - d) / 10) return fail(s, from);
      v = v * 10 + d;
      s->pos++;
    }
    if (s->pos == from || n == max) return fail(s, from);
    t->num[n++] = v;
    if (s->pos >= s->len) return fail(s, s->pos);
    if (s->src[s->pos] == '>') break;
    if (s->src[s->pos] != '.') return fail(s, s->pos);
    s->pos++;
  }
  s->pos++;
  if (n < min) return fail(s, t->pos);
  t->kind = kind;
  t->nnum = (uint8_t)n;
  return 0;
}

static bool has(const otpc__scanner_t *s, const char *word) {
  size_t n = strlen(word);
  return s->len - s->pos >= n && memcmp(s->src + s->pos, word, n) == 0;
}

static int scan_hash(otpc__scanner_t *s, otpc__token_t *t) {
  if (has(s, "#{")) {
    s->pos += 2;
    t->kind = TOK_MAP;
    return 0;
  }
  if (has(s, "#Ref<")) {
    s->pos += 5;
    return scan_ids(s, t, TOK_REF, 2, OTPC__TOK_MAX_NUMS);
  }
  if (has(s, "#Port<")) {
    s->pos += 6;
    return scan_ids(s, t, TOK_PORT, 2, 2);
  }
  return fail(s, s->pos);
}

static int scan_angle(otpc__scanner_t *s, otpc__token_t *t) {
  if (has(s, "<<")) {
    s->pos += 2;
    t->kind = TOK_BINOPEN;
    return 0;
  }
  if (s->pos + 1 < s->len && is_digit(s->src[s->pos + 1])) {
    s->pos++;
    return scan_ids(s, t, TOK_PID, 3, 3);
  }
  return fail(s, s->pos);
}

/* ------------------------------------------------------------------------
 * Punctuation and the dispatcher
 * ------------------------------------------------------------------------ */

static otpc__tok_kind_t punct_kind(uint8_t c) {
  switch (c) {
    case '{': return TOK_LBRACE;
    case '}': return TOK_RBRACE;
    case '[': return TOK_LBRACK;
    case ']': return TOK_RBRACK;
    case ',': return TOK_COMMA;
    case '|': return TOK_BAR;
    case ':': return TOK_COLON;
    case '/': return TOK_SLASH;
    case '.': return TOK_DOT;
    case '-': return TOK_MINUS;
    case '+': return TOK_PLUS;
    default: return TOK_END; /* none */
  }
}

static int scan_punct(otpc__scanner_t *s, otpc__token_t *t) {
  uint8_t c = s->src[s->pos];
  bool pair = s->pos + 1 < s->len && s->src[s->pos + 1] == '>';
  if ((c == '>' || c == '=') && pair) {
    t->kind = c == '>' ? TOK_BINCLOSE : TOK_ARROW;
    s->pos += 2;
    return 0;
  }
  t->kind = punct_kind(c);
  if (t->kind == TOK_END) return fail(s, s->pos);
  s->pos++;
  return 0;
}

static int scan_hole(otpc__scanner_t *s, otpc__token_t *t) {
  s->pos++;
  unsigned d = s->pos < s->len ? digit_value(s->src[s->pos]) : 99;
  if (d < 10 || d == 99) return fail(s, s->pos - 1); /* ~ and a letter */
  t->kind = TOK_HOLE;
  t->hole = s->src[s->pos++];
  return 0;
}

/* A character at or above 0x80 starting a token: a Latin-1 letter. */
static int scan_wide(otpc__scanner_t *s, otpc__token_t *t) {
  uint32_t cp;
  if (!peek_char(s, &cp)) return fail(s, s->pos);
  if (is_lower(cp)) return scan_name(s, t, TOK_ATOM);
  if (is_upper(cp)) return scan_name(s, t, TOK_VAR);
  return fail(s, s->pos);
}

static int scan_token(otpc__scanner_t *s, otpc__token_t *t) {
  uint8_t c = s->src[s->pos];
  if (c >= 'a' && c <= 'z') return scan_name(s, t, TOK_ATOM);
  if ((c >= 'A' && c <= 'Z') || c == '_') return scan_name(s, t, TOK_VAR);
  if (is_digit(c)) return scan_number(s, t);
  switch (c) {
    case '\'':
    case '"': return scan_quoted(s, t, c);
    case '$': return scan_char(s, t);
    case '~': return scan_hole(s, t);
    case '#': return scan_hash(s, t);
    case '<': return scan_angle(s, t);
    default: return c >= 0x80 ? scan_wide(s, t) : scan_punct(s, t);
  }
}

void otpc__scan_init(otpc__scanner_t *s, const char *src, size_t len,
                     otpc__scratch_t *scratch) {
  s->src = (const uint8_t *)src;
  s->len = len;
  s->pos = 0;
  s->errpos = 0;
  s->scratch = scratch;
}

int otpc__scan_next(otpc__scanner_t *s, otpc__token_t *t, size_t *errpos) {
  skip_blank(s);
  t->pos = (uint32_t)s->pos;
  t->in_scratch = 0;
  t->big = 0;
  t->nnum = 0;
  if (s->pos >= s->len) {
    t->kind = TOK_END;
    return 0;
  }
  int rc = scan_token(s, t);
  if (rc < 0 && errpos) *errpos = rc == OTPC_ESYNTAX ? s->errpos : t->pos;
  return rc;
}
