/*
 * test_fmt.c: otpc_build_fmt() and friends: every hole type, the canonical
 * encodings formats must share with term_to_binary (checked against the
 * parser, whose output test_parse.c checks against Erlang/OTP 25, and
 * against bytes captured from erl), errors, and that a small format does
 * not allocate.
 */
#include <math.h>

#include "otpc.h"
#include "test.h"
#include "hex.h"

/* ETF of a buffer as hex, into static storage (one of two, so two results
 * can be compared); "NULL" for none. Releases the buffer. */
static const char *hex_of(otpc_buf_t *buf) {
  static char out[2][4096];
  static int which;
  char *o = out[which ^= 1];
  if (!buf) return "NULL";
  to_hex(otpc_buf_data(buf), otpc_buf_size(buf), o);
  otpc_buf_unref(buf);
  return o;
}

static otpc_buf_t *parsed(const char *text) {
  otpc_buf_t *buf = NULL;
  int rc = otpc_term_parse(text, strlen(text), &buf, NULL);
  if (rc < 0)
    otpc_test_fail(__FILE__, __LINE__, "parse %s: %s", text, otpc_err_name(rc));
  return buf;
}

#define CHECK_FMT_AS(text, ...) \
  CHECK_STR_EQ(hex_of(otpc_term_fmt(__VA_ARGS__)), hex_of(parsed(text)))

TEST(fmt_every_hole) {
  otpc_pid_t pid = {OTPC_ATOM_NONODE, 1, 2, 0};
  otpc_ref_t ref = {OTPC_ATOM_NONODE, 0, 3, {3, 2, 1}};
  CHECK_FMT_AS("{ok, 'hello world'}", "{ok, ~a}", "hello world");
  CHECK_FMT_AS("{ok, error}", "{ok, ~A}", (otpc_atom_t)OTPC_ATOM_ERROR);
  CHECK_FMT_AS("[-5, 2147483647, -2147483648]", "[~i, ~i, ~i]", -5, INT32_MAX,
               INT32_MIN);
  CHECK_FMT_AS("{-9223372036854775808, 9223372036854775807}", "{~l, ~l}",
               INT64_MIN, INT64_MAX);
  CHECK_FMT_AS("{18446744073709551615, 0}", "{~u, ~u}", UINT64_MAX,
               (uint64_t)0);
  CHECK_FMT_AS("{1.5, -0.0, 1.0e300}", "{~f, ~f, ~f}", 1.5, -0.0, 1e300);
  CHECK_FMT_AS("{\"abc\", [], \"h\\303\\251\"}", "{~s, ~s, ~s}", "abc", "",
               "h\xc3\xa9"); /* ~s: bytes */
  CHECK_FMT_AS("{<<1,2,3>>, <<>>}", "{~b, ~b}", "\1\2\3", (size_t)3,
               (const void *)NULL, (size_t)0);
  CHECK_FMT_AS("{<0.1.2>, #Ref<0.1.2.3>}", "{~p, ~r}", &pid, &ref);
  otpc_buf_t *inner = parsed("{x, [1, 2.0]}");
  CHECK_FMT_AS("[{x, [1, 2.0]}]", "[~t]", otpc_buf_term(inner));
  otpc_buf_unref(inner);
}

TEST(fmt_literals_and_holes_mix) {
  /* The example of term.h. */
  otpc_ref_t ref = {OTPC_ATOM_NONODE, 0, 3, {7, 0, 9}};
  otpc_buf_t *tail = parsed("[b, c]");
  CHECK_FMT_AS("{reply, #Ref<0.9.0.7>, [42, ok, b, c]}",
               "{reply, ~r, [~i, ~a | ~t]}", &ref, 42, "ok",
               otpc_buf_term(tail));
  otpc_buf_unref(tail);
  CHECK_FMT_AS("{'quoted ~a', \"~i\", 1}", "{'quoted ~a', \"~i\", ~i}", 1);
  CHECK_FMT_AS("#{a => 1, b => {x, 2}}", "#{~a => ~i, b => {x, ~i}} % c\n.",
               "a", 1, 2);
  CHECK_FMT_AS("<<1,2:3>>", "<<1, 2:3>>");
}

TEST(fmt_canonical_lists) {
  /* Direct from term_to_binary([1,2], [{minor_version,2}]) and friends. */
  CHECK_STR_EQ(hex_of(otpc_term_fmt("[~i, ~i]", 1, 2)), "836B00020102");
  CHECK_STR_EQ(hex_of(otpc_term_fmt("[~i, ~i]", 1, 256)),
               "836C00000002610162000001006A");
  CHECK_STR_EQ(hex_of(otpc_term_fmt("[~u | ~s]", (uint64_t)1, "ab")),
               "836B0003016162");
  CHECK_STR_EQ(hex_of(otpc_term_fmt("[a | ~s]", "")),
               "836C00000001770161"
               "6A");
  otpc_buf_t *t = parsed("[b | c]"), *n = parsed("[]"), *five = parsed("5");
  /* A tail from a term joins the list, its own tail included. */
  CHECK_FMT_AS("[a, b | c]", "[a | ~t]", otpc_buf_term(t));
  CHECK_FMT_AS("[a]", "[a | ~t]", otpc_buf_term(n));
  CHECK_FMT_AS("[a | 5]", "[a | ~t]", otpc_buf_term(five));
  CHECK_FMT_AS("[5]", "[~t | ~t]", otpc_buf_term(five), otpc_buf_term(n));
  CHECK_FMT_AS("[5 | 5]", "[~t | ~t]", otpc_buf_term(five),
               otpc_buf_term(five));
  /* Elements of a STRING_EXT have no bytes: ~t of one still works. */
  otpc_buf_t *s = parsed("\"xy\"");
  otpc_list_iter_t it;
  otpc_term_t e;
  CHECK_INT_EQ(otpc_term_list_iter(otpc_buf_term(s), &it), 0);
  CHECK(otpc_list_next(&it, &e));
  CHECK_FMT_AS("{120, \"zxy\"}", "{~t, [$z | ~t]}", e, otpc_buf_term(s));
  otpc_buf_unref(s);
  otpc_buf_unref(t);
  otpc_buf_unref(n);
  otpc_buf_unref(five);
}

TEST(fmt_canonical_maps) {
  /* term_to_binary(#{a => 2, b => 1}) */
  CHECK_STR_EQ(hex_of(otpc_term_fmt("#{~a => ~i, ~a => ~i}", "b", 1, "a", 2)),
               "83740000000277016161027701626101");
  /* Equal keys from holes: the last one wins. */
  CHECK_FMT_AS("#{k => 2}", "#{~a => 1, k => ~i}", "k", 2);
  otpc_buf_t *f = parsed("1.0");
  CHECK_FMT_AS("#{1 => a, 1.0 => b}", "#{~t => b, ~i => a}", otpc_buf_term(f),
               1);
  otpc_buf_unref(f);
}

TEST(fmt_into_builder) {
  otpc_builder_t b;
  otpc_builder_init(&b);
  CHECK_INT_EQ(otpc_build_tuple(&b, 2), 0);
  CHECK_INT_EQ(otpc_build_fmt(&b, "~a", "x"), 0);
  CHECK_INT_EQ(otpc_build_fmt(&b, "[~i]", 7), 0);
  int rc;
  CHECK_STR_EQ(hex_of(otpc_builder_finish(&b, &rc)), "8368027701786B000107");
}

TEST(fmt_errors) {
  otpc_builder_t b;
  const char *bad[] = {"~z", "{~a",  "~",      "{a,,}", "X",
                       "_",  "[1|]", "<<~i>>", "#{~a}", "~a ~a"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    otpc_builder_init(&b);
    int rc = otpc_build_fmt(&b, bad[i], "a", "b");
    if (rc != OTPC_EBADFMT) fprintf(stderr, "  %s: %d\n", bad[i], rc);
    CHECK_INT_EQ(rc, OTPC_EBADFMT);
    /* Sticky: the builder reports it until disposed. */
    CHECK_INT_EQ(otpc_build_nil(&b), OTPC_EBADFMT);
    CHECK(otpc_builder_finish(&b, &rc) == NULL);
    CHECK_INT_EQ(rc, OTPC_EBADFMT);
  }
  CHECK(otpc_term_fmt("{~a, ~i}", (const char *)NULL, 1) == NULL);
  CHECK(otpc_term_fmt("~s", (const char *)NULL) == NULL);
  CHECK(otpc_term_fmt("~p", (const otpc_pid_t *)NULL) == NULL);
  CHECK(otpc_term_fmt("~b", (const void *)NULL, (size_t)1) == NULL);
  CHECK(otpc_term_fmt("~a", "\xff") == NULL); /* not UTF-8 */
  CHECK(otpc_term_fmt(NULL) == NULL);
  otpc_builder_init(&b);
  CHECK_INT_EQ(otpc_build_fmt(&b, "~a", (const char *)NULL), OTPC_EBADARG);
  otpc_builder_dispose(&b);
  /* Too deep. */
  enum { D = OTPC_TERM_DEFAULT_MAX_DEPTH + 1 };
  char *deep = malloc(2 * D + 1);
  memset(deep, '{', D);
  memset(deep + D, '}', D);
  deep[2 * D] = 0;
  otpc_builder_init(&b);
  CHECK_INT_EQ(otpc_build_fmt(&b, deep), OTPC_EDEPTH);
  otpc_builder_dispose(&b);
  free(deep);
}

/* ---- allocation ---------------------------------------------------------- */

static int mallocs;
static void *count_malloc(size_t n) {
  mallocs++;
  return malloc(n);
}
static void *count_realloc(void *p, size_t n) {
  mallocs++;
  return realloc(p, n);
}

TEST(fmt_small_format_does_not_allocate) {
  otpc_atom_t ok = otpc_atom("ok"); /* atoms interned before counting */
  CHECK(otpc_atom("v w") != OTPC_ATOM_NONE);
  CHECK(otpc_atom("reply") != OTPC_ATOM_NONE);
  CHECK(otpc_atom("k") != OTPC_ATOM_NONE);
  otpc_allocator_t a = {count_malloc, count_realloc, free};
  otpc_builder_t b;
  otpc_pid_t pid = {OTPC_ATOM_NONODE, 5, 0, 0};
  otpc_set_allocator(&a);
  mallocs = 0;
  otpc_builder_init(&b);
  int rc = otpc_build_fmt(&b, "{~a, ~i}", "ok", 12);
  CHECK_INT_EQ(rc, 0);
  otpc_builder_dispose(&b);
  otpc_builder_init(&b);
  rc = otpc_build_fmt(&b, "{reply, ~p, [~A, 1, 2 | ~s], #{k => 'v w'}}", &pid,
                      ok, "xy");
  CHECK_INT_EQ(rc, 0);
  otpc_builder_dispose(&b);
  int seen = mallocs;
  otpc_set_allocator(NULL);
  CHECK_INT_EQ(seen, 0);
}

static int budget; /* allocations allowed before they fail */
static void *fail_malloc(size_t n) {
  return budget-- > 0 ? malloc(n) : NULL;
}
static void *fail_realloc(void *p, size_t n) {
  return budget-- > 0 ? realloc(p, n) : NULL;
}

TEST(fmt_out_of_memory_is_an_error) {
  /* Big enough for the heap: more nodes than fit inline, escaped text. */
  char text[600], *w = text;
  w += sprintf(w, "{");
  for (int i = 0; i < 40; i++) w += sprintf(w, "%s\"a\\n%d\"", i ? "," : "", i);
  sprintf(w, ", #{b => 1, a => ~i}}");
  otpc_allocator_t a = {fail_malloc, fail_realloc, free};
  int failures = 0, rc = -1;
  for (int n = 0; n < 50 && rc != 0; n++) {
    otpc_builder_t b;
    otpc_builder_init(&b);
    budget = n;
    otpc_set_allocator(&a);
    rc = otpc_build_fmt(&b, text, 3);
    otpc_set_allocator(NULL);
    if (rc != 0) {
      CHECK_INT_EQ(rc, OTPC_ENOMEM);
      failures++;
    }
    otpc_builder_dispose(&b);
  }
  CHECK_INT_EQ(rc, 0);
  CHECK(failures > 0);
}

TEST(fmt_cache_never_confuses_formats) {
  /* The same buffer holding one format, then another: the parsed-format
   * cache is keyed by address but must check the text. */
  char buf[64];
  for (int round = 0; round < 3; round++) {
    snprintf(buf, sizeof buf, "{a, ~i}");
    otpc_buf_t *x = otpc_term_fmt(buf, 7);
    snprintf(buf, sizeof buf, "[~i, b]");
    otpc_buf_t *y = otpc_term_fmt(buf, 8);
    char *tx, *ty;
    CHECK_INT_EQ(otpc_term_print(otpc_buf_term(x), &tx, NULL), 0);
    CHECK_INT_EQ(otpc_term_print(otpc_buf_term(y), &ty, NULL), 0);
    CHECK_STR_EQ(tx, "{a,7}");
    CHECK_STR_EQ(ty, "[8,b]");
    otpc_free(tx);
    otpc_free(ty);
    otpc_buf_unref(x);
    otpc_buf_unref(y);
  }
  /* A cached format with a list of holes still becomes a string or not
   * by the values bound each time. */
  const char *f = "[~i, ~i]";
  for (int v = 250; v < 260; v++) {
    otpc_buf_t *t = otpc_term_fmt(f, v, v);
    CHECK_INT_EQ(otpc_buf_data(t)[1], v < 256 ? 107 : 108); /* STRING/LIST */
    otpc_buf_unref(t);
  }
}
