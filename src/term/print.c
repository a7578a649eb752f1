/*
 * print.c: writes a checked term as Erlang/OTP 25's io_lib:format("~w", [T])
 * does, in UTF-8, without recursion and without interning anything.
 *
 * The walk keeps an explicit stack of open containers (tuple, list, map) in
 * memory from otpc__malloc, so a term 100000 levels deep prints like a flat
 * one. Scalars are printed where they stand and report the byte after them;
 * that end is where the next sibling starts, so nothing is skipped twice.
 *
 * What Erlang's printer does, and so what this file does:
 *
 *   - Integers in decimal. Floats as float_to_list(F, [short]): the shortest
 *     digits that read back as F, the closest to F among those (what Ryu
 *     computes; found here with snprintf and strtod, see shortest_digits()),
 *     in fixed or e-notation by the rules of OTP's Ryu to_chars (see
 *     use_fixed()). Checked against erl on 800000 doubles.
 *   - Atoms as io_lib:write_atom_as_latin1/1: quoted when reserved or not a
 *     plain name (see atom_is_plain()), with \n \t \\ \' ... escapes; code
 *     points above 255 are written \x{3B1}. Latin-1 characters 160-255 are
 *     written as themselves, in UTF-8.
 *   - Funs as erlang:fun_to_list/1 (which io_lib calls): "fun m:f/1" with the
 *     runtime's own quoting (print_atom_name() in erl_printf_term.c: no
 *     reserved words, '@' needs quotes, 127 is not escaped), and local funs
 *     as #Fun<Module.OldIndex.OldUniq> with the module name unquoted. The
 *     runtime writes atom text there as UTF-8 bytes; so do we.
 *   - Lists element by element: strings are integer lists under ~w.
 *     Binaries <<1,2,3>>, bit strings <<1,2:3>>. Maps #{k => v,k2 => v2}
 *     Erlang prints a map in its internal order. For maps of up to 32
 *     pairs that is map-key order (term order, integers before floats),
 *     which is also the order term_to_binary writes, so such maps print in
 *     the order of the encoding, after sorting if it is not sorted (a map
 *     built in C). For larger maps it is the hash order,
 *     which term_to_binary writes backwards: those print their pairs from
 *     the last in the encoding to the first, which is Erlang's order for
 *     any map that came from Erlang.
 *   - Pids <0.83.0>, ports #Port<0.5>, references #Ref<0.3.2.1> with the
 *     words last-first. A reference of the local node with fewer than three
 *     words is padded to three, as the runtime does.
 *
 * otpc_term_print_p() prints as io_lib:format("~0tp", [T]) does with the
 * default printable range (latin1), which is what the logger's formatter
 * uses: the same text as ~w, except that a list of printable characters
 * prints as a string ("abc") and a printable binary as <<"abc">>, or as
 * <<"é"/utf8>> when it is valid UTF-8 with characters beyond ASCII (see
 * put_binary_text()). Printable: io_lib:printable_latin1_list/1's
 * characters, 32-126, 160-255 and \b \t \n \v \f \r \e.
 *
 * Node numbers. Erlang prints 0 for its own node and, for another node, the
 * index of the node name in its atom table, which depends on its history.
 * We print 0 for the local node (otpc_term_set_local_node(), by default
 * 'nonode@nohost') and for any other node 1 + (FNV-1a-32 of the node name's
 * UTF-8 text) mod 16777215: stable across runs and machines, never 0.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "term_int.h"

/* ------------------------------------------------------------------------
 * Local node
 * ------------------------------------------------------------------------ */

static _Atomic uint32_t local_node = OTPC_ATOM_NONODE;
static _Atomic uint32_t local_creation = 0;

/* The name as this node's pids and refs carry it, written once per name
 * the node has had and never changed after, so that a reader holding one
 * reads a whole record (a node has a handful of names in its life: past
 * NODE_NAMES, names are no longer cached and pids are written the long
 * way). */
#define NODE_NAMES 32
static otpc__node_ext_t node_names[NODE_NAMES];
static unsigned node_names_n; /* under names_lock */
static pthread_mutex_t names_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(const otpc__node_ext_t *) local_ext;

static const otpc__node_ext_t *node_ext_for(otpc_atom_t node) {
  size_t len;
  const char *text = otpc_atom_name(node, &len);
  if (text == NULL || len > 255) return NULL;
  const otpc__node_ext_t *found = NULL;
  pthread_mutex_lock(&names_lock);
  for (unsigned i = 0; i < node_names_n && found == NULL; i++)
    if (node_names[i].atom == node) found = &node_names[i];
  if (found == NULL && node_names_n < NODE_NAMES) {
    otpc__node_ext_t *e = &node_names[node_names_n++];
    e->atom = node;
    e->n = (uint32_t)(2 + len);
    e->bytes[0] = ETF_SMALL_ATOM_UTF8;
    e->bytes[1] = (uint8_t)len;
    memcpy(e->bytes + 2, text, len);
    found = e;
  }
  pthread_mutex_unlock(&names_lock);
  return found;
}

void otpc_term_set_local_node(otpc_atom_t node, uint32_t creation) {
  if (node == OTPC_ATOM_NONE) {
    node = OTPC_ATOM_NONODE;
    creation = 0;
  }
  atomic_store_explicit(&local_creation, creation, memory_order_relaxed);
  atomic_store_explicit(&local_node, node, memory_order_relaxed);
  atomic_store_explicit(&local_ext, node_ext_for(node), memory_order_release);
}

const otpc__node_ext_t *otpc__local_node_ext(void) {
  return atomic_load_explicit(&local_ext, memory_order_acquire);
}

otpc_atom_t otpc__local_node(void) {
  return atomic_load_explicit(&local_node, memory_order_relaxed);
}

uint32_t otpc__local_creation(void) {
  return atomic_load_explicit(&local_creation, memory_order_relaxed);
}

void otpc_free(void *p) {
  otpc__free(p);
}

/* ------------------------------------------------------------------------
 * Characters and atom text
 * ------------------------------------------------------------------------ */

/* UTF-8 bytes of a code point into b; returns how many. */
static size_t utf8_encode(uint32_t cp, char b[4]) {
  if (cp < 0x80) {
    b[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    b[0] = (char)(0xC0 | (cp >> 6));
    b[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    b[0] = (char)(0xE0 | (cp >> 12));
    b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    b[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  b[0] = (char)(0xF0 | (cp >> 18));
  b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  b[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

static void put_utf8(otpc__sbuf_t *s, uint32_t cp) {
  char b[4];
  otpc__sbuf_put(s, b, utf8_encode(cp, b));
}

/* Decimal digits of v, without printf (binaries print a number a byte). */
static void put_uint(otpc__sbuf_t *s, uint64_t v) {
  char b[20], *p = b + sizeof b;
  do {
    *--p = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  otpc__sbuf_put(s, p, (size_t)(b + sizeof b - p));
}

/* Code points of an atom's text, Latin-1 (bytes are code points) or UTF-8
 * (checked by validation; a sequence cut short by the end is read as
 * single bytes, so nothing past the text is ever read). */
typedef struct cp_iter {
  const uint8_t *p;
  const uint8_t *end;
  bool latin1;
} cp_iter_t;

static bool cp_next(cp_iter_t *it, uint32_t *cp) {
  if (it->p >= it->end) return false;
  uint8_t c = *it->p++;
  if (it->latin1 || c < 0x80) {
    *cp = c;
    return true;
  }
  size_t more = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : 1;
  uint32_t v = c & (c >= 0xF0 ? 0x07 : c >= 0xE0 ? 0x0F : 0x1F);
  if ((size_t)(it->end - it->p) < more) {
    *cp = c;
    return true;
  }
  while (more-- > 0) v = (v << 6) | (*it->p++ & 0x3F);
  *cp = v;
  return true;
}

typedef struct atom_text {
  const uint8_t *text;
  size_t len;
  bool latin1;
} atom_text_t;

/* Reads the atom term at p; returns the byte after it. */
static const uint8_t *atom_at(const uint8_t *p, atom_text_t *a) {
  if (!otpc__term_atom_raw(term_at(p), &a->text, &a->len, &a->latin1)) {
    a->text = p; /* not reached for checked terms */
    a->len = 0;
    a->latin1 = true;
    return p + 1;
  }
  return a->text + a->len;
}

static cp_iter_t atom_iter(const atom_text_t *a) {
  cp_iter_t it = {a->text, a->text + a->len, a->latin1};
  return it;
}

/* The atom's text in UTF-8, as it is. */
static void put_atom_raw(otpc__sbuf_t *s, const atom_text_t *a) {
  if (!a->latin1) {
    otpc__sbuf_put(s, a->text, a->len);
    return;
  }
  cp_iter_t it = atom_iter(a);
  uint32_t cp;
  while (cp_next(&it, &cp)) put_utf8(s, cp);
}

/* ------------------------------------------------------------------------
 * Atoms as io_lib writes them
 * ------------------------------------------------------------------------ */

/* erl_scan:reserved_word/1 of OTP 25 (maybe and else only with the maybe
 * feature, which is off by default, so they are plain). */
static const char *const reserved_words[] = {
    "after",  "and",     "andalso", "band", "begin", "bnot", "bor",
    "bsl",    "bsr",     "bxor",    "case", "catch", "cond", "div",
    "end",    "fun",     "if",      "let",  "not",   "of",   "or",
    "orelse", "receive", "rem",     "try",  "when",  "xor"};

static bool is_reserved(const atom_text_t *a) {
  for (size_t i = 0; i < sizeof reserved_words / sizeof *reserved_words; i++) {
    size_t n = strlen(reserved_words[i]);
    if (n == a->len && memcmp(reserved_words[i], a->text, n) == 0) return true;
  }
  return false;
}

/* Latin-1 classes of io_lib's quote_atom/2 and name_char/1. */
static bool l1_lower(uint32_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 223 && c <= 255 && c != 247);
}
static bool l1_upper(uint32_t c) {
  return (c >= 'A' && c <= 'Z') || (c >= 192 && c <= 222 && c != 215);
}
static bool l1_alnum(uint32_t c) {
  return l1_lower(c) || l1_upper(c) || (c >= '0' && c <= '9');
}

/* Starts with a Latin-1 lowercase letter and goes on with Latin-1 letters,
 * digits, '_' and '@' (io_lib) or without '@' (the runtime's printer). */
static bool atom_is_plain(const atom_text_t *a, bool at_sign_ok) {
  cp_iter_t it = atom_iter(a);
  uint32_t c;
  if (!cp_next(&it, &c) || !l1_lower(c)) return false;
  while (cp_next(&it, &c)) {
    if (l1_alnum(c) || c == '_' || (at_sign_ok && c == '@')) continue;
    return false;
  }
  return true;
}

static void put_octal_escape(otpc__sbuf_t *s, uint32_t c) {
  char b[4] = {'\\', (char)('0' + ((c >> 6) & 7)), (char)('0' + ((c >> 3) & 7)),
               (char)('0' + (c & 7))};
  otpc__sbuf_put(s, b, 4);
}

/* Letter escapes both printers share; 0 if c has none. */
static char letter_escape(uint32_t c) {
  switch (c) {
    case '\n': return 'n';
    case '\r': return 'r';
    case '\t': return 't';
    case '\v': return 'v';
    case '\b': return 'b';
    case '\f': return 'f';
    case '\'': return '\'';
    case '\\': return '\\';
    default: return 0;
  }
}

/* io_lib:string_char(unicode_as_latin1, C, $', _), or with unicode
 * (~tp: characters above 255 as themselves). */
static void put_iolib_char(otpc__sbuf_t *s, uint32_t c, bool unicode) {
  char e = letter_escape(c);
  if (e == 0 && c == 27) e = 'e';
  if (e == 0 && c == 127) e = 'd';
  if (e != 0) {
    char b[2] = {'\\', e};
    otpc__sbuf_put(s, b, 2);
  } else if (c >= ' ' && c <= '~') {
    otpc__sbuf_putc(s, (char)c);
  } else if (c >= 160 && c <= 255) {
    put_utf8(s, c);
  } else if (c > 255 && unicode) {
    put_utf8(s, c);
  } else if (c > 255) {
    otpc__sbuf_printf(s, "\\x{%X}", (unsigned)c);
  } else {
    put_octal_escape(s, c);
  }
}

static void put_atom_iolib(otpc__sbuf_t *s, const atom_text_t *a,
                           bool unicode) {
  if (!is_reserved(a) && atom_is_plain(a, true)) {
    put_atom_raw(s, a);
    return;
  }
  cp_iter_t it = atom_iter(a);
  uint32_t c;
  otpc__sbuf_putc(s, '\'');
  while (cp_next(&it, &c)) put_iolib_char(s, c, unicode);
  otpc__sbuf_putc(s, '\'');
}

/* The runtime's print_atom_name(), used by erlang:fun_to_list/1. */
static void put_atom_erts(otpc__sbuf_t *s, const atom_text_t *a) {
  bool quote = !atom_is_plain(a, false);
  cp_iter_t it = atom_iter(a);
  uint32_t c;
  if (quote) otpc__sbuf_putc(s, '\'');
  while (cp_next(&it, &c)) {
    char e = letter_escape(c);
    if (e != 0) {
      char b[2] = {'\\', e};
      otpc__sbuf_put(s, b, 2);
    } else if (c < ' ' || (c >= 128 && c < 160)) {
      put_octal_escape(s, c);
    } else {
      put_utf8(s, c);
    }
  }
  if (quote) otpc__sbuf_putc(s, '\'');
}

/* ------------------------------------------------------------------------
 * Numbers
 * ------------------------------------------------------------------------ */

static const uint8_t *put_integer(otpc__sbuf_t *s, const uint8_t *p) {
  bool neg = false;
  const uint8_t *mag = NULL;
  size_t n = 0;
  uint8_t scratch[8];
  otpc__term_int_parts(term_at(p), &neg, &mag, &n, scratch);
  if (neg) otpc__sbuf_putc(s, '-');
  otpc__big_to_decimal(mag, n, s);
  switch (p[0]) {
    case ETF_SMALL_INTEGER: return p + 2;
    case ETF_INTEGER: return p + 5;
    case ETF_SMALL_BIG: return p + 3 + p[1];
    default: return p + 6 + get_be32(p + 1);
  }
}

/* Digits of a decimal text, written "DDDDe-N": strtod reads that the same
 * way in every locale, which "D.DDD" is not. */
static double read_digits(const char *digits, int ndig, int exp10) {
  char buf[48];
  snprintf(buf, sizeof buf, "%.*se%d", ndig, digits, exp10);
  return strtod(buf, NULL);
}

/* Adds delta (+1 or -1) to the last of ndig decimal digits; false if that
 * would change the number of digits. */
static bool bump_digits(char *d, int ndig, int delta) {
  for (int i = ndig - 1; i >= 0; i--) {
    if (delta > 0 && d[i] < '9') {
      d[i]++;
      return true;
    }
    if (delta < 0 && d[i] > '0') {
      d[i]--;
      return d[0] != '0';
    }
    d[i] = delta > 0 ? '0' : '9';
  }
  return false;
}

/* The ndig digits and exponent of v (> 0) correctly rounded, from
 * snprintf's %e (any locale: everything that is no digit before the 'e' is
 * the decimal point). The exponent is that of the last digit. */
static void round_digits(double v, int ndig, char *d, int *exp10) {
  char buf[64];
  snprintf(buf, sizeof buf, "%.*e", ndig - 1, v);
  int k = 0;
  const char *q = buf;
  for (; *q != '\0' && *q != 'e'; q++)
    if (*q >= '0' && *q <= '9' && k < ndig) d[k++] = *q;
  *exp10 = (*q == 'e' ? (int)strtol(q + 1, NULL, 10) : 0) - (ndig - 1);
}

/* The n-digit number closest to v that reads back as v, if there is one:
 * the correctly rounded one, or where that misses (at powers of two, whose
 * rounding interval is lopsided) its neighbour on the other side of v. */
static bool digits_of_length(double v, int n, char *d, int *exp10) {
  round_digits(v, n, d, exp10);
  if (read_digits(d, n, *exp10) == v) return true;
  for (int delta = -1; delta <= 1; delta += 2) {
    char t[18];
    memcpy(t, d, (size_t)n);
    if (bump_digits(t, n, delta) && read_digits(t, n, *exp10) == v) {
      memcpy(d, t, (size_t)n);
      return true;
    }
  }
  return false;
}

/* Shortest digits that read back as v (> 0, finite), and among those the
 * closest to v, as Ryu gives them. Every n-digit number is also an
 * (n+1)-digit one, so "some n-digit number reads back as v" holds from some
 * n on: binary search for it between 1 and 17 (17 always does). */
static int shortest_digits(double v, char d[18], int *exp10) {
  int lo = 1, hi = 17;
  while (lo < hi) {
    int mid = (lo + hi) / 2;
    if (digits_of_length(v, mid, d, exp10))
      hi = mid;
    else
      lo = mid + 1;
  }
  if (!digits_of_length(v, lo, d, exp10)) round_digits(v, 17, d, exp10);
  return lo;
}

/* Strips trailing zeros into the exponent. */
static int trim_zeros(const char *d, int n, int *exp10) {
  while (n > 1 && d[n - 1] == '0') {
    n--;
    (*exp10)++;
  }
  return n;
}

/* OTP's to_chars() (erts/emulator/ryu/to_chars.h): fixed notation when the
 * exponent e of the last digit lies in [lower, upper], except for values
 * from 2^53 up with 0 <= e <= 2 (they could not be read back exactly as
 * integers), and e-notation otherwise. */
static bool use_fixed(const char *d, int n, int e) {
  int sci = e + n - 1;
  int lower = n == 1 ? -4 : -(n + 2);
  int upper = n == 1 || sci >= 10 ? 2 : 1;
  if (e < lower || e > upper) return false;
  uint64_t m = 0;
  for (int i = 0; i < n; i++) m = m * 10 + (uint64_t)(d[i] - '0');
  if (e == 0 && m >= (1ull << 53)) return false;
  if (e == 1 && m > (1ull << 52) / 5) return false;
  if (e == 2 && m > (1ull << 51) / 25) return false;
  return true;
}

static void put_fixed(otpc__sbuf_t *s, const char *d, int n, int e) {
  int whole = n + e;
  if (e >= 0) {
    otpc__sbuf_put(s, d, (size_t)n);
    for (int i = 0; i < e; i++) otpc__sbuf_putc(s, '0');
    otpc__sbuf_puts(s, ".0");
  } else if (whole > 0) {
    otpc__sbuf_put(s, d, (size_t)whole);
    otpc__sbuf_putc(s, '.');
    otpc__sbuf_put(s, d + whole, (size_t)(n - whole));
  } else {
    otpc__sbuf_puts(s, "0.");
    for (int i = 0; i < -whole; i++) otpc__sbuf_putc(s, '0');
    otpc__sbuf_put(s, d, (size_t)n);
  }
}

static void put_scientific(otpc__sbuf_t *s, const char *d, int n, int e) {
  otpc__sbuf_putc(s, d[0]);
  otpc__sbuf_putc(s, '.');
  if (n > 1)
    otpc__sbuf_put(s, d + 1, (size_t)(n - 1));
  else
    otpc__sbuf_putc(s, '0');
  otpc__sbuf_printf(s, "e%d", e + n - 1);
}

/* float_to_list(V, [short]). */
static void format_float(otpc__sbuf_t *s, double v) {
  if (signbit(v)) otpc__sbuf_putc(s, '-');
  v = fabs(v);
  if (v == 0) {
    otpc__sbuf_puts(s, "0.0");
    return;
  }
  if (!isfinite(v)) { /* no Erlang float; Ryu's own spelling */
    otpc__sbuf_puts(s, isnan(v) ? "NaN" : "Infinity");
    return;
  }
  char d[18];
  int e;
  int n = shortest_digits(v, d, &e);
  n = trim_zeros(d, n, &e);
  if (use_fixed(d, n, e))
    put_fixed(s, d, n, e);
  else
    put_scientific(s, d, n, e);
}

/* FLOAT_EXT: 31 bytes of "%.20e" text, NUL padded. Read without the
 * locale: digits and exponent only. */
static double old_float(const uint8_t *text) {
  char digits[40];
  int nd = 0, frac = 0, exp10 = 0;
  bool neg = false, point = false;
  size_t i = 0;
  while (i < 31 && text[i] == ' ') i++;
  if (i < 31 && (text[i] == '-' || text[i] == '+')) neg = text[i++] == '-';
  for (; i < 31 && text[i] != 'e' && text[i] != 'E' && text[i] != 0; i++) {
    if (text[i] == '.') {
      point = true;
    } else if (text[i] >= '0' && text[i] <= '9' && nd < 36) {
      digits[nd++] = (char)text[i];
      frac += point;
    }
  }
  if (i < 31 && (text[i] == 'e' || text[i] == 'E')) {
    char ebuf[32];
    size_t k = 0;
    for (i++; i < 31 && text[i] != 0 && k < sizeof ebuf - 1; i++)
      ebuf[k++] = (char)text[i];
    ebuf[k] = '\0';
    long e = strtol(ebuf, NULL, 10); /* clamped: 0e999999999 is 0 */
    exp10 = e > 100000 ? 100000 : e < -100000 ? -100000 : (int)e;
  }
  if (nd == 0) digits[nd++] = '0';
  double v = read_digits(digits, nd, exp10 - frac);
  return neg ? -v : v;
}

static const uint8_t *put_float(otpc__sbuf_t *s, const uint8_t *p) {
  double v;
  if (p[0] == ETF_NEW_FLOAT) {
    uint64_t bits = get_be64(p + 1);
    memcpy(&v, &bits, sizeof v);
    format_float(s, v);
    return p + 9;
  }
  format_float(s, old_float(p + 1));
  return p + 32;
}

/* ------------------------------------------------------------------------
 * Binaries
 * ------------------------------------------------------------------------ */

/* io_lib:printable_latin1_list/1's characters. */
static bool printable(uint32_t c) {
  return (c >= 32 && c <= 126) || (c >= 160 && c <= 255) ||
         (c >= '\b' && c <= '\r') || c == 27;
}

/* One character of a string or binary text between double quotes. */
static void put_quoted_char(otpc__sbuf_t *s, uint32_t c) {
  if (c == '"')
    otpc__sbuf_puts(s, "\\\"");
  else if (c == '\'')
    otpc__sbuf_putc(s, '\'');
  else
    put_iolib_char(s, c, false);
}

/* The next code point of the strict UTF-8 (no overlong forms, no
 * surrogates, at most 0x10FFFF) at d[*i..n); false if there is none. */
static bool utf8_next(const uint8_t *d, size_t n, size_t *i, uint32_t *cp) {
  uint8_t c = d[*i];
  size_t len = 0;
  if (c < 0x80)
    len = 1;
  else if (c >= 0xc2 && c <= 0xdf)
    len = 2;
  else if (c >= 0xe0 && c <= 0xef)
    len = 3;
  else if (c >= 0xf0 && c <= 0xf4)
    len = 4;
  if (len == 0 || n - *i < len) return false;
  uint32_t v = len == 1 ? c : c & (0x7f >> len);
  for (size_t k = 1; k < len; k++) {
    if ((d[*i + k] & 0xc0) != 0x80) return false;
    v = v << 6 | (d[*i + k] & 0x3f);
  }
  if ((len == 3 && (v < 0x800 || (v >= 0xd800 && v <= 0xdfff))) ||
      (len == 4 && (v < 0x10000 || v > 0x10ffff)))
    return false;
  *i += len;
  *cp = v;
  return true;
}

/* ~tp's text for a binary (io_lib_pretty): valid UTF-8 whose characters
 * are all printable prints as <<"..."/utf8>> (just <<"...">> if it is all
 * ASCII); valid UTF-8 with any other character prints as bytes; anything
 * else as <<"...">> if every byte is printable as a Latin-1 character.
 * Returns false (nothing written) when it prints as bytes. */
static bool put_binary_text(otpc__sbuf_t *s, const uint8_t *d, size_t n) {
  if (n == 0) return false;
  bool valid = true, ok = true, wide = false;
  for (size_t i = 0; i < n && valid;) {
    uint32_t cp;
    wide |= d[i] >= 0x80;
    if (!utf8_next(d, n, &i, &cp))
      valid = false;
    else
      ok &= printable(cp);
  }
  if (valid && !ok) return false;
  if (!valid)
    for (size_t i = 0; i < n; i++)
      if (!printable(d[i])) return false;
  otpc__sbuf_puts(s, "<<\"");
  for (size_t i = 0; i < n;) {
    uint32_t cp = d[i];
    if (valid)
      utf8_next(d, n, &i, &cp);
    else
      i++;
    put_quoted_char(s, cp);
  }
  otpc__sbuf_puts(s, valid && wide ? "\"/utf8>>" : "\">>");
  return true;
}

static const uint8_t *put_bitstring(otpc__sbuf_t *s, const uint8_t *p,
                                    bool text) {
  size_t n = get_be32(p + 1);
  unsigned bits = 8;
  const uint8_t *data = p + 5;
  if (p[0] == ETF_BIT_BINARY) {
    bits = p[5];
    data = p + 6;
    if (bits == 0) bits = 8;
  }
  if (text && bits == 8 && put_binary_text(s, data, n)) return data + n;
  otpc__sbuf_puts(s, "<<");
  for (size_t i = 0; i < n; i++) {
    if (i > 0) otpc__sbuf_putc(s, ',');
    if (i + 1 == n && bits < 8) {
      put_uint(s, data[i] >> (8 - bits));
      otpc__sbuf_putc(s, ':');
      put_uint(s, bits);
    } else {
      put_uint(s, data[i]);
    }
  }
  otpc__sbuf_puts(s, ">>");
  return data + n;
}

/* ------------------------------------------------------------------------
 * Pids, ports, references
 * ------------------------------------------------------------------------ */

static uint32_t fnv1a(uint32_t h, const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
  return h;
}

/* The number printed for a node: 0 for the local node's name, whatever
 * the creation (Erlang prints <0.83.7> for a pid of its own name from
 * another incarnation too, so printing loses the creation, as in Erlang),
 * else a hash of the name in UTF-8 (see the top of the file). */
static unsigned long node_number(const uint8_t *atom_term) {
  size_t llen;
  const char *local = otpc_atom_name(otpc__local_node(), &llen);
  if (local != NULL && otpc_term_atom_eq(term_at(atom_term), local, llen))
    return 0;
  atom_text_t a;
  atom_at(atom_term, &a);
  uint32_t h = 2166136261u;
  cp_iter_t it = atom_iter(&a);
  uint32_t cp;
  while (cp_next(&it, &cp)) {
    char b[4];
    h = fnv1a(h, (const uint8_t *)b, utf8_encode(cp, b));
  }
  return 1 + (unsigned long)(h % 16777215u);
}

static const uint8_t *put_pid(otpc__sbuf_t *s, const uint8_t *p) {
  atom_text_t a;
  const uint8_t *q = atom_at(p + 1, &a);
  otpc__sbuf_printf(s, "<%lu.%lu.%lu>", node_number(p + 1),
                    (unsigned long)get_be32(q), (unsigned long)get_be32(q + 4));
  return q + (p[0] == ETF_PID ? 9 : 12);
}

static const uint8_t *put_port(otpc__sbuf_t *s, const uint8_t *p) {
  atom_text_t a;
  const uint8_t *q = atom_at(p + 1, &a);
  uint64_t id = p[0] == ETF_V4_PORT ? get_be64(q) : get_be32(q);
  otpc__sbuf_printf(s, "#Port<%lu.%llu>", node_number(p + 1),
                    (unsigned long long)id);
  switch (p[0]) {
    case ETF_PORT: return q + 5;
    case ETF_NEW_PORT: return q + 8;
    default: return q + 12;
  }
}

static const uint8_t *put_ref(otpc__sbuf_t *s, const uint8_t *p) {
  atom_text_t a;
  const uint8_t *node = p[0] == ETF_REFERENCE ? p + 1 : p + 3;
  const uint8_t *q = atom_at(node, &a), *words, *end;
  size_t n;
  if (p[0] == ETF_REFERENCE) {
    n = 1;
    words = q;
    end = q + 5;
  } else {
    n = get_be16(p + 1);
    words = q + (p[0] == ETF_NEW_REFERENCE ? 1 : 4);
    end = words + 4 * n;
  }
  unsigned long nodeno = node_number(node);
  otpc__sbuf_printf(s, "#Ref<%lu", nodeno);
  for (size_t i = n; nodeno == 0 && i < 3; i++) otpc__sbuf_puts(s, ".0");
  for (size_t i = n; i-- > 0;) {
    otpc__sbuf_putc(s, '.');
    put_uint(s, get_be32(words + 4 * i));
  }
  otpc__sbuf_putc(s, '>');
  return end;
}

/* ------------------------------------------------------------------------
 * Funs
 * ------------------------------------------------------------------------ */

static const uint8_t *put_export(otpc__sbuf_t *s, const uint8_t *p) {
  atom_text_t mod, fun;
  const uint8_t *q = atom_at(p + 1, &mod);
  q = atom_at(q, &fun);
  otpc__sbuf_puts(s, "fun ");
  put_atom_erts(s, &mod);
  otpc__sbuf_putc(s, ':');
  put_atom_erts(s, &fun);
  otpc__sbuf_printf(s, "/%u", (unsigned)q[1]);
  return q + 2;
}

/* NEW_FUN_EXT: Size Arity Uniq[16] Index NumFree Module OldIndex OldUniq
 * Pid FreeVars; printed #Fun<Module.OldIndex.OldUniq>. */
static const uint8_t *put_new_fun(otpc__sbuf_t *s, const uint8_t *p) {
  atom_text_t mod;
  const uint8_t *q = atom_at(p + 30, &mod);
  otpc__sbuf_puts(s, "#Fun<");
  put_atom_raw(s, &mod);
  otpc__sbuf_putc(s, '.');
  q = put_integer(s, q);
  otpc__sbuf_putc(s, '.');
  put_integer(s, q);
  otpc__sbuf_putc(s, '>');
  return p + 1 + get_be32(p + 1);
}

/* ------------------------------------------------------------------------
 * The walk
 * ------------------------------------------------------------------------ */

enum { F_TUPLE, F_LIST, F_MAP, F_RMAP };

/* Maps with more pairs than this print backwards (see the top). */
#define FLATMAP_MAX 32

typedef struct frame {
  size_t left;  /* items still to print, counting the one being printed */
  uint8_t kind; /* F_TUPLE, F_LIST, F_MAP, F_RMAP */
  uint8_t tail; /* list: the item being printed is an improper tail */
  /* F_RMAP: where each key starts, the pair being printed, the map's end */
  const uint8_t **keys;
  size_t pair;
  const uint8_t *end;
} frame_t;

typedef struct walk {
  otpc__sbuf_t *out;
  bool text;      /* ~0tp: strings and printable binaries as text */
  frame_t *stack; /* frames, innermost last */
  size_t depth;
  size_t cap;
  frame_t small[64];
} walk_t;

static int push(walk_t *w, uint8_t kind, size_t left) {
  if (w->depth == w->cap) {
    size_t cap = w->cap * 2;
    frame_t *bigger = otpc__malloc(cap * sizeof *bigger);
    if (bigger == NULL) return OTPC_ENOMEM;
    memcpy(bigger, w->stack, w->depth * sizeof *bigger);
    if (w->stack != w->small) otpc__free(w->stack);
    w->stack = bigger;
    w->cap = cap;
  }
  frame_t f = {left, kind, 0, NULL, 0, NULL};
  w->stack[w->depth++] = f;
  return 0;
}

/* An empty LIST_EXT stands for its tail. */
static const uint8_t *skip_empty_lists(const uint8_t *p) {
  while (p[0] == ETF_LIST && get_be32(p + 1) == 0) p += 5;
  return p;
}

/* The bytes of a STRING_EXT as ",c,c..." (first: no leading comma). */
static const uint8_t *put_string_elems(otpc__sbuf_t *s, const uint8_t *p,
                                       bool first) {
  size_t n = get_be16(p + 1);
  for (size_t i = 0; i < n; i++) {
    if (!first || i > 0) otpc__sbuf_putc(s, ',');
    put_uint(s, p[3 + i]);
  }
  return p + 3 + n;
}

/* The list at p (LIST_EXT, STRING_EXT, NIL; tails that are lists
 * followed) if it is a non-empty proper list of printable characters: the
 * byte after it; else NULL. */
static const uint8_t *printable_list_end(const uint8_t *p) {
  size_t count = 0;
  for (;;) {
    if (p[0] == ETF_NIL) return count > 0 ? p + 1 : NULL;
    if (p[0] == ETF_STRING) {
      size_t n = get_be16(p + 1);
      for (size_t i = 0; i < n; i++)
        if (!printable(p[3 + i])) return NULL;
      return count + n > 0 ? p + 3 + n : NULL;
    }
    if (p[0] != ETF_LIST) return NULL;
    size_t n = get_be32(p + 1);
    p += 5;
    for (size_t i = 0; i < n; i++) {
      if (p[0] == ETF_SMALL_INTEGER && printable(p[1])) {
        p += 2;
      } else if (p[0] == ETF_INTEGER &&
                 printable((uint32_t)(int32_t)get_be32(p + 1))) {
        p += 5;
      } else {
        return NULL;
      }
    }
    count += n;
  }
}

/* Prints the list at p, which printable_list_end() admitted, as "...". */
static void put_string(otpc__sbuf_t *s, const uint8_t *p, const uint8_t *end) {
  otpc__sbuf_putc(s, '"');
  while (p < end) {
    if (p[0] == ETF_STRING) {
      size_t n = get_be16(p + 1);
      for (size_t i = 0; i < n; i++) put_quoted_char(s, p[3 + i]);
      break;
    }
    if (p[0] == ETF_NIL) break;
    size_t n = get_be32(p + 1);
    p += 5;
    for (size_t i = 0; i < n; i++) {
      bool small = p[0] == ETF_SMALL_INTEGER;
      put_quoted_char(s, small ? p[1] : get_be32(p + 1));
      p += small ? 2 : 5;
    }
  }
  otpc__sbuf_putc(s, '"');
}

/* Prints a term that holds no other term; returns the byte after it. */
static const uint8_t *put_scalar(otpc__sbuf_t *s, const uint8_t *p, bool text) {
  atom_text_t a;
  switch (p[0]) {
    case ETF_SMALL_INTEGER:
    case ETF_INTEGER:
    case ETF_SMALL_BIG:
    case ETF_LARGE_BIG: return put_integer(s, p);
    case ETF_FLOAT:
    case ETF_NEW_FLOAT: return put_float(s, p);
    case ETF_ATOM:
    case ETF_SMALL_ATOM:
    case ETF_ATOM_UTF8:
    case ETF_SMALL_ATOM_UTF8: {
      const uint8_t *end = atom_at(p, &a);
      put_atom_iolib(s, &a, text);
      return end;
    }
    case ETF_PID:
    case ETF_NEW_PID: return put_pid(s, p);
    case ETF_PORT:
    case ETF_NEW_PORT:
    case ETF_V4_PORT: return put_port(s, p);
    case ETF_REFERENCE:
    case ETF_NEW_REFERENCE:
    case ETF_NEWER_REFERENCE: return put_ref(s, p);
    case ETF_BINARY:
    case ETF_BIT_BINARY: return put_bitstring(s, p, text);
    case ETF_EXPORT: return put_export(s, p);
    case ETF_NEW_FUN: return put_new_fun(s, p);
    case ETF_NIL: otpc__sbuf_puts(s, "[]"); return p + 1;
    case ETF_STRING:
      if (text) {
        const uint8_t *end = printable_list_end(p);
        if (end != NULL) {
          put_string(s, p, end);
          return end;
        }
      }
      otpc__sbuf_putc(s, '[');
      p = put_string_elems(s, p, true);
      otpc__sbuf_putc(s, ']');
      return p;
    default: abort(); /* validation admits no other tag here */
  }
}

/* Prints the term at p, or opens it: prints its opening bracket and pushes
 * a frame. Returns the first child (*opened true), or the byte after the
 * term. */
/* Whether the n keys of the map whose first key is at p are in map-key
 * order. */
static bool keys_sorted(const uint8_t *p, size_t n) {
  const uint8_t *prev = p;
  for (size_t i = 1; i < n; i++) {
    p = otpc__term_skip(otpc__term_skip(p));
    if (otpc__term_cmp_mapkey(prev, p) > 0) return false;
    prev = p;
  }
  return true;
}

/* A map printed out of encoding order: records where each key starts, in
 * the reverse of the order to print them (the frame walks them from the
 * last). Large maps print backwards, so that is encoding order; small
 * unsorted ones print sorted, so that is descending key order. */
static const uint8_t *enter_rmap(walk_t *w, const uint8_t *p, size_t n,
                                 bool *opened, int *rc) {
  const uint8_t **keys = otpc__malloc(n * sizeof *keys);
  if (keys == NULL) {
    *rc = OTPC_ENOMEM;
    return p;
  }
  for (size_t i = 0; i < n; i++) {
    keys[i] = p;
    p = otpc__term_skip(otpc__term_skip(p));
  }
  if (n <= FLATMAP_MAX) { /* insertion sort, descending; n is small */
    for (size_t i = 1; i < n; i++) {
      const uint8_t *k = keys[i];
      size_t j = i;
      for (; j > 0 && otpc__term_cmp_mapkey(keys[j - 1], k) < 0; j--)
        keys[j] = keys[j - 1];
      keys[j] = k;
    }
  }
  *rc = push(w, F_RMAP, 2 * n);
  if (*rc != 0) {
    otpc__free(keys);
    return p;
  }
  frame_t *f = &w->stack[w->depth - 1];
  f->keys = keys;
  f->pair = n - 1;
  f->end = p;
  *opened = true;
  return keys[n - 1];
}

static const uint8_t *enter(walk_t *w, const uint8_t *p, bool *opened,
                            int *rc) {
  size_t n;
  *opened = false;
  p = skip_empty_lists(p);
  switch (p[0]) {
    case ETF_SMALL_TUPLE:
    case ETF_LARGE_TUPLE:
      n = p[0] == ETF_SMALL_TUPLE ? p[1] : get_be32(p + 1);
      p += p[0] == ETF_SMALL_TUPLE ? 2 : 5;
      otpc__sbuf_putc(w->out, '{');
      if (n == 0) {
        otpc__sbuf_putc(w->out, '}');
        return p;
      }
      *rc = push(w, F_TUPLE, n);
      break;
    case ETF_MAP:
      n = get_be32(p + 1);
      p += 5;
      otpc__sbuf_puts(w->out, "#{");
      if (n == 0) {
        otpc__sbuf_putc(w->out, '}');
        return p;
      }
      if (n <= FLATMAP_MAX && keys_sorted(p, n)) {
        *rc = push(w, F_MAP, 2 * n);
        break;
      }
      return enter_rmap(w, p, n, opened, rc);
    case ETF_LIST: {
      const uint8_t *end = w->text ? printable_list_end(p) : NULL;
      if (end != NULL) {
        put_string(w->out, p, end);
        return end;
      }
      n = get_be32(p + 1);
      p += 5;
      otpc__sbuf_putc(w->out, '[');
      *rc = push(w, F_LIST, n);
      break;
    }
    default: return put_scalar(w->out, p, w->text);
  }
  *opened = true;
  return p;
}

/* A list's elements are done and its tail starts at q. Goes on into a tail
 * that is again a list; returns the next item to print (frame updated) or
 * NULL when the list is closed (*q moved past it). */
static const uint8_t *list_tail(walk_t *w, frame_t *f, const uint8_t **q) {
  const uint8_t *t = skip_empty_lists(*q);
  if (t[0] == ETF_LIST) {
    f->left = get_be32(t + 1);
    otpc__sbuf_putc(w->out, ',');
    return t + 5;
  }
  if (t[0] == ETF_STRING) {
    t = put_string_elems(w->out, t, false);
  } else if (t[0] == ETF_NIL) {
    t += 1;
  } else {
    otpc__sbuf_putc(w->out, '|');
    f->left = 1;
    f->tail = 1;
    return t;
  }
  otpc__sbuf_putc(w->out, ']');
  *q = t;
  return NULL;
}

/* One item of the innermost frame was printed and ended at *q. Prints the
 * separator and returns where the next item starts, or closes frames
 * (moving *q past each) and returns NULL when the whole term is done. */
static const uint8_t *next_item(walk_t *w, const uint8_t **q) {
  while (w->depth > 0) {
    frame_t *f = &w->stack[w->depth - 1];
    if (--f->left > 0) {
      bool after_key = (f->kind == F_MAP || f->kind == F_RMAP) && (f->left & 1);
      otpc__sbuf_puts(w->out, after_key ? " => " : ",");
      if (f->kind == F_RMAP && !after_key) return f->keys[--f->pair];
      return *q;
    }
    if (f->kind == F_RMAP) {
      otpc__sbuf_putc(w->out, '}');
      otpc__free(f->keys);
      *q = f->end;
    } else if (f->kind == F_LIST && !f->tail) {
      const uint8_t *next = list_tail(w, f, q);
      if (next != NULL) return next;
    } else {
      otpc__sbuf_putc(w->out, f->kind == F_LIST ? ']' : '}');
    }
    w->depth--;
  }
  return NULL;
}

/* Walks the term at p; the end of each item is where the next one starts. */
static int walk_term(otpc__sbuf_t *out, const uint8_t *p, bool text) {
  walk_t w;
  w.out = out;
  w.text = text;
  w.stack = w.small;
  w.depth = 0;
  w.cap = sizeof w.small / sizeof w.small[0];
  int rc = 0;
  while (p != NULL && rc == 0 && out->err == 0) {
    bool opened;
    const uint8_t *q = enter(&w, p, &opened, &rc);
    p = opened ? q : next_item(&w, &q);
  }
  while (w.depth > 0) /* stopped early: free what open frames hold */
    if (w.stack[--w.depth].kind == F_RMAP) otpc__free(w.stack[w.depth].keys);
  if (w.stack != w.small) otpc__free(w.stack);
  return rc != 0 ? rc : out->err;
}

static int print_to(otpc__sbuf_t *s, otpc_term_t t, bool text) {
  if (t.kind == TERM_CHAR) {
    put_uint(s, t.chr);
    return s->err;
  }
  if (t.kind != TERM_ENCODED || t.p == NULL) return OTPC_EINVAL;
  return walk_term(s, t.p, text);
}

/* ------------------------------------------------------------------------
 * Public entry points
 * ------------------------------------------------------------------------ */

static int print_new(otpc_term_t t, bool text, char **out, size_t *len) {
  otpc__sbuf_t s;
  otpc__sbuf_init(&s);
  int rc = print_to(&s, t, text);
  if (rc == 0 && s.data == NULL) rc = otpc__sbuf_reserve(&s, 0);
  if (rc != 0) {
    otpc__sbuf_free(&s);
    return rc;
  }
  s.data[s.len] = '\0';
  *out = s.data;
  if (len) *len = s.len;
  return 0;
}

int otpc_term_print(otpc_term_t t, char **out, size_t *len) {
  return print_new(t, false, out, len);
}

int otpc_term_print_p(otpc_term_t t, char **out, size_t *len) {
  return print_new(t, true, out, len);
}

long otpc_term_snprint(char *buf, size_t size, otpc_term_t t) {
  otpc__sbuf_t s;
  otpc__sbuf_init(&s);
  int rc = print_to(&s, t, false);
  if (rc != 0) {
    otpc__sbuf_free(&s);
    if (size > 0) buf[0] = '\0';
    return rc;
  }
  if (size > 0) {
    size_t n = s.len < size - 1 ? s.len : size - 1;
    if (n > 0) memcpy(buf, s.data, n);
    buf[n] = '\0';
  }
  long len = (long)s.len;
  otpc__sbuf_free(&s);
  return len;
}

int otpc_term_fprint(FILE *f, otpc_term_t t) {
  otpc__sbuf_t s;
  otpc__sbuf_init(&s);
  int rc = print_to(&s, t, false);
  if (rc == 0 && s.len > 0 && fwrite(s.data, 1, s.len, f) != s.len)
    rc = OTPC_EIO;
  otpc__sbuf_free(&s);
  return rc;
}
