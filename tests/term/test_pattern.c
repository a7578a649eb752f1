/*
 * test_pattern.c: otpc_pattern_compile() and otpc_match(): literals against
 * every encoding of the same term (bytes written by hand as term_to_binary
 * or older encoders write them), each hole type binding and failing by
 * type and by range, lists through STRING_EXT and chains, maps as subsets,
 * compile errors with their offsets.
 */
#include <math.h>

#include "otpc.h"
#include "test.h"
#include "hex.h"

/* Terms made for a test live until the test's process ends: kept here,
 * reachable, so LeakSanitizer does not count them. */
static otpc_buf_t *kept[4096];
static uint8_t *kept_bytes[4096];
static size_t nkept_bytes;
static size_t nkept;

static otpc_term_t hex_term(const char *hex) {
  size_t n = strlen(hex) / 2;
  uint8_t *d = malloc(n);
  if (nkept_bytes < sizeof kept_bytes / sizeof kept_bytes[0])
    kept_bytes[nkept_bytes++] = d;
  unhex(hex, d);
  otpc_term_t t;
  otpc_buf_t *owned;
  otpc_decode_error_t e;
  int rc = otpc_term_decode(d, n, NULL, &t, &owned, &e);
  if (rc < 0)
    otpc_test_fail(__FILE__, __LINE__, "decode %s: %s", hex, otpc_err_name(rc));
  return t;
}

static otpc_term_t text_term(const char *text) {
  otpc_buf_t *buf;
  int rc = otpc_term_parse(text, strlen(text), &buf, NULL);
  if (rc < 0)
    otpc_test_fail(__FILE__, __LINE__, "parse %s: %s", text, otpc_err_name(rc));
  if (nkept < sizeof kept / sizeof kept[0]) kept[nkept++] = buf;
  return otpc_buf_term(buf);
}

static otpc_pattern_t *compiled(const char *text) {
  otpc_pattern_t *p = NULL;
  size_t pos = 0;
  int rc = otpc_pattern_compile(text, &p, &pos);
  if (rc < 0)
    otpc_test_fail(__FILE__, __LINE__, "compile %s: %s at %zu", text,
                   otpc_err_name(rc), pos);
  return p;
}

/* Match without holes. */
static int matches(const char *pattern, otpc_term_t t) {
  otpc_pattern_t *p = compiled(pattern);
  int rc = otpc_match_v(p, t, NULL);
  otpc_pattern_free(p);
  return rc;
}

TEST(pattern_literals_match_every_encoding) {
  otpc_term_t ok_atom = hex_term("836400026F6B");  /* ATOM_EXT */
  otpc_term_t ok_utf8 = hex_term("837600026F6B");  /* ATOM_UTF8_EXT */
  otpc_term_t ok_small = hex_term("8377026F6B");   /* SMALL_ATOM_UTF8 */
  otpc_term_t e_latin1 = hex_term("837301E9");     /* SMALL_ATOM 'é' */
  otpc_term_t five_big = hex_term("836E010005");   /* SMALL_BIG 5 */
  otpc_term_t five_int = hex_term("836200000005"); /* INTEGER_EXT 5 */
  otpc_term_t ab_list = hex_term(
      "836C0000000261616162"
      "6A");
  otpc_term_t ab_string = hex_term("836B00026162");
  otpc_term_t large = hex_term(
      "836900000002770161"
      "6101");
  CHECK_INT_EQ(matches("ok", ok_atom), 1);
  CHECK_INT_EQ(matches("ok", ok_utf8), 1);
  CHECK_INT_EQ(matches("'ok'", ok_small), 1);
  CHECK_INT_EQ(matches("okay", ok_small), 0);
  CHECK_INT_EQ(matches("o", ok_small), 0);
  CHECK_INT_EQ(matches("'\xc3\xa9'", e_latin1), 1);
  CHECK_INT_EQ(matches("e", e_latin1), 0);
  CHECK_INT_EQ(matches("5", five_big), 1);
  CHECK_INT_EQ(matches("5", five_int), 1);
  CHECK_INT_EQ(matches("6", five_int), 0);
  CHECK_INT_EQ(matches("5.0", five_int), 0); /* =:=, not == */
  CHECK_INT_EQ(matches("\"ab\"", ab_list), 1);
  CHECK_INT_EQ(matches("[$a, $b]", ab_string), 1);
  CHECK_INT_EQ(matches("\"abc\"", ab_string), 0);
  CHECK_INT_EQ(matches("{a, 1}", large), 1); /* literal tuple */
  CHECK_INT_EQ(matches("{a, _}", large), 1); /* tuple of ops */
  CHECK_INT_EQ(matches("{a, 2}", large), 0);
  CHECK_INT_EQ(matches("{_, _, _}", large), 0);
  CHECK_INT_EQ(matches("1.0", text_term("1.0")), 1);
  CHECK_INT_EQ(matches("1.0", text_term("1")), 0);
  CHECK_INT_EQ(
      matches("18446744073709551616", text_term("18446744073709551616")), 1);
  CHECK_INT_EQ(
      matches("-9223372036854775808", text_term("-9223372036854775808")), 1);
  CHECK_INT_EQ(matches("{<0.1.2>, #Ref<0.1.2.3>, #Port<0.5>, <<1,2:3>>}",
                       text_term("{<0.1.2>, #Ref<0.1.2.3>, #Port<0.5>, "
                                 "<<1,2:3>>}")),
               1);
  CHECK_INT_EQ(matches("fun lists:map/2", text_term("fun lists:map/2")), 1);
  CHECK_INT_EQ(matches("fun lists:map/2", text_term("fun lists:map/3")), 0);
  CHECK_INT_EQ(matches("[]", text_term("[]")), 1);
  CHECK_INT_EQ(matches("[]", text_term("\"a\"")), 0);
  CHECK_INT_EQ(matches("_", text_term("{any, [thing]}")), 1);
  CHECK_INT_EQ(matches("_Name", text_term("x")), 1);
}

TEST(pattern_binds_every_type) {
  otpc_pid_t pid = {OTPC_ATOM_NONODE, 7, 1, 0}, gpid;
  otpc_ref_t ref = {OTPC_ATOM_NONODE, 0, 3, {1, 2, 3}}, gref;
  otpc_buf_t *msg =
      otpc_term_fmt("{x, -5, ~l, ~u, 2.5, <<1,2,3>>, ~p, ~r, [t]}", INT64_MIN,
                    UINT64_MAX, &pid, &ref);
  CHECK(msg != NULL);
  otpc_pattern_t *p = compiled("{~a, ~i, ~l, ~u, ~f, ~b, ~p, ~r, ~t}");
  CHECK_INT_EQ(otpc_pattern_binds(p), 10);
  otpc_atom_t a;
  int i;
  int64_t l;
  uint64_t u;
  double f;
  const uint8_t *bin;
  size_t len;
  otpc_term_t t;
  CHECK_INT_EQ(otpc_match(p, otpc_buf_term(msg), &a, &i, &l, &u, &f, &bin, &len,
                          &gpid, &gref, &t),
               1);
  CHECK_INT_EQ(a, otpc_atom("x"));
  CHECK_INT_EQ(i, -5);
  CHECK(l == INT64_MIN);
  CHECK(u == UINT64_MAX);
  CHECK(f == 2.5);
  CHECK_INT_EQ(len, 3);
  CHECK(memcmp(bin, "\1\2\3", 3) == 0);
  CHECK(gpid.id == 7 && gpid.serial == 1 && gpid.node == OTPC_ATOM_NONODE);
  CHECK(gref.len == 3 && gref.id[0] == 1 && gref.id[2] == 3);
  CHECK_INT_EQ(otpc_term_type(t), OTPC_TYPE_LIST);

  /* The same through an array of pointers, some of them NULL. */
  void *binds[10] = {&a, NULL, NULL, NULL, NULL, NULL, &len, NULL, NULL, &t};
  a = 0, len = 0;
  CHECK_INT_EQ(otpc_match_v(p, otpc_buf_term(msg), binds), 1);
  CHECK_INT_EQ(a, otpc_atom("x"));
  CHECK_INT_EQ(len, 3);
  otpc_pattern_free(p);
  otpc_buf_unref(msg);
}

/* One hole against the term of text: 1 or 0. */
static int hole_match(const char *hole, const char *text) {
  otpc_pattern_t *p = compiled(hole);
  uint64_t space[8] = {0};
  void *binds[2] = {space, space + 4};
  int rc = otpc_match_v(p, text_term(text), binds);
  otpc_pattern_free(p);
  return rc;
}

TEST(pattern_holes_fail_by_type_and_range) {
  CHECK_INT_EQ(hole_match("~i", "2147483647"), 1);
  CHECK_INT_EQ(hole_match("~i", "2147483648"), 0);
  CHECK_INT_EQ(hole_match("~i", "-2147483649"), 0);
  CHECK_INT_EQ(hole_match("~i", "1.0"), 0);
  CHECK_INT_EQ(hole_match("~i", "a"), 0);
  CHECK_INT_EQ(hole_match("~l", "-9223372036854775808"), 1);
  CHECK_INT_EQ(hole_match("~l", "9223372036854775808"), 0);
  CHECK_INT_EQ(hole_match("~u", "18446744073709551615"), 1);
  CHECK_INT_EQ(hole_match("~u", "18446744073709551616"), 0);
  CHECK_INT_EQ(hole_match("~u", "-1"), 0);
  CHECK_INT_EQ(hole_match("~f", "1"), 0);
  CHECK_INT_EQ(hole_match("~f", "-1.5e-3"), 1);
  CHECK_INT_EQ(hole_match("~a", "\"a\""), 0);
  CHECK_INT_EQ(hole_match("~a", "'a b'"), 1);
  CHECK_INT_EQ(hole_match("~b", "<<>>"), 1);
  CHECK_INT_EQ(hole_match("~b", "<<1:3>>"), 0); /* a bit string */
  CHECK_INT_EQ(hole_match("~b", "\"abc\""), 0);
  CHECK_INT_EQ(hole_match("~p", "#Ref<0.1.2.3>"), 0);
  CHECK_INT_EQ(hole_match("~p", "<0.1.2>"), 1);
  CHECK_INT_EQ(hole_match("~r", "<0.1.2>"), 0);
  CHECK_INT_EQ(hole_match("~r", "#Ref<0.1.2.3>"), 1);
  CHECK_INT_EQ(hole_match("~t", "#Port<0.1>"), 1);
  CHECK_INT_EQ(hole_match("{~i}", "{1, 2}"), 0);
  CHECK_INT_EQ(hole_match("{~i, ~t}", "{x, 2}"), 0);
  otpc_term_t none = {NULL, 0, 0};
  otpc_pattern_t *p = compiled("_");
  CHECK_INT_EQ(otpc_match_v(p, none, NULL), 0);
  otpc_pattern_free(p);
}

TEST(pattern_tuples_fail_fast) {
  otpc_pattern_t *p = compiled("{get, ~p, ~t}");
  otpc_pid_t pid;
  otpc_term_t key;
  CHECK_INT_EQ(otpc_match(p, text_term("{get, <0.5.0>, {k, 1}}"), &pid, &key),
               1);
  CHECK_INT_EQ(pid.id, 5);
  CHECK_INT_EQ(otpc_term_type(key), OTPC_TYPE_TUPLE);
  CHECK_INT_EQ(otpc_match(p, text_term("{put, <0.5.0>, k}"), &pid, &key), 0);
  CHECK_INT_EQ(otpc_match(p, text_term("{get, <0.5.0>}"), &pid, &key), 0);
  CHECK_INT_EQ(otpc_match(p, text_term("[get, <0.5.0>, k]"), &pid, &key), 0);
  CHECK_INT_EQ(otpc_match(p, text_term("{get, self, k}"), &pid, &key), 0);
  otpc_pattern_free(p);
  /* Elements after a skipped one, nested. */
  p = compiled("{_, {_, [_ | _], ~i}, ~a}");
  int i;
  otpc_atom_t a;
  CHECK_INT_EQ(
      otpc_match(p, text_term("{#{x => [1]}, {\"s\", [z], 9}, end}"), &i, &a),
      1);
  CHECK_INT_EQ(i, 9);
  CHECK_INT_EQ(a, otpc_atom("end"));
  otpc_pattern_free(p);
}

TEST(pattern_lists_every_encoding) {
  otpc_term_t chain =
      hex_term("836C0000000161016C0000000161026C0000000161036A");
  otpc_term_t one_then_string = hex_term("836C0000000161016B00026162");
  int i, j;
  otpc_term_t t;
  otpc_pattern_t *p = compiled("[~i | ~t]");
  CHECK_INT_EQ(otpc_match(p, text_term("[1]"), &i, &t), 1);
  CHECK_INT_EQ(otpc_term_type(t), OTPC_TYPE_NIL);
  CHECK_INT_EQ(otpc_match(p, chain, &i, &t), 1);
  size_t n;
  CHECK_INT_EQ(otpc_term_list_length(t, &n), 0);
  CHECK_INT_EQ(n, 2);
  CHECK_INT_EQ(otpc_match(p, text_term("[1 | x]"), &i, &t), 1);
  CHECK(otpc_term_atom_eq(t, "x", 1));
  /* The rest of a LIST_EXT or STRING_EXT is no term a view can show. */
  CHECK_INT_EQ(otpc_match(p, text_term("[1, 2, 3]"), &i, &t), OTPC_ERANGE);
  CHECK_INT_EQ(otpc_match(p, text_term("\"ab\""), &i, &t), OTPC_ERANGE);
  CHECK_INT_EQ(otpc_match(p, text_term("\"a\""), &i, &t), 1);
  CHECK_INT_EQ(i, 'a');
  CHECK_INT_EQ(otpc_term_type(t), OTPC_TYPE_NIL);
  CHECK_INT_EQ(otpc_match(p, text_term("[]"), &i, &t), 0);
  otpc_pattern_free(p);

  p = compiled("[~i, ~i]");
  CHECK_INT_EQ(otpc_match(p, text_term("\"ab\""), &i, &j), 1);
  CHECK(i == 'a' && j == 'b');
  CHECK_INT_EQ(otpc_match(p, chain, &i, &j), 0);
  CHECK_INT_EQ(otpc_match(p, text_term("[1]"), &i, &j), 0);
  CHECK_INT_EQ(otpc_match(p, text_term("[1, 2 | 3]"), &i, &j), 0);
  CHECK_INT_EQ(otpc_match(p, text_term("[1, a]"), &i, &j), 0);
  CHECK_INT_EQ(otpc_match(p, one_then_string, &i, &j), 0);
  otpc_pattern_free(p);

  CHECK_INT_EQ(matches("[1, 2, 3 | _]", chain), 1);
  CHECK_INT_EQ(matches("[1, 2, 3, _ | _]", chain), 0);
  CHECK_INT_EQ(matches("[_, _, _]", chain), 1);
  CHECK_INT_EQ(matches("[1 | [2 | [_]]]", chain), 1);
  CHECK_INT_EQ(matches("[_, $a, $b]", one_then_string), 1);
  CHECK_INT_EQ(matches("[_ | \"ab\"]", one_then_string), 1);
  CHECK_INT_EQ(matches("[_ | \"abc\"]", one_then_string), 0);
  CHECK_INT_EQ(matches("[a | _]", text_term("[a, b, c]")), 1);
  CHECK_INT_EQ(matches("[a | _]", text_term("[b]")), 0);
  CHECK_INT_EQ(matches("[a | _]", text_term("[]")), 0);
  CHECK_INT_EQ(matches("[a | _]", text_term("a")), 0);
  CHECK_INT_EQ(matches("[_ | b]", text_term("[a | b]")), 1);
  CHECK_INT_EQ(matches("[_ | b]", text_term("[a, b]")), 0);
  CHECK_INT_EQ(matches("[_ | {_}]", text_term("[a | {b}]")), 1);
  CHECK_INT_EQ(matches("[_, _ | _]", text_term("\"x\"")), 0);

  p = compiled("[_, _ | ~t]");
  CHECK_INT_EQ(otpc_match(p, text_term("[a, b | c]"), &t), 1);
  CHECK(otpc_term_atom_eq(t, "c", 1));
  otpc_pattern_free(p);

  /* A string element bound by ~t carries its value. */
  p = compiled("[_, ~t]");
  CHECK_INT_EQ(otpc_match(p, text_term("\"xy\""), &t), 1);
  CHECK_INT_EQ(otpc_term_get_int(t, &i), 0);
  CHECK_INT_EQ(i, 'y');
  otpc_pattern_free(p);
}

TEST(pattern_maps_match_subsets) {
  otpc_pattern_t *p = compiled("#{a => ~i, {k, \"s\"} => [_ | ~t]}");
  int i;
  otpc_term_t t;
  CHECK_INT_EQ(otpc_match(p,
                          text_term("#{z => 0, {k, \"s\"} => [1 | 2], "
                                    "a => 7}"),
                          &i, &t),
               1);
  CHECK_INT_EQ(i, 7);
  CHECK_INT_EQ(otpc_term_get_int(t, &i), 0);
  CHECK_INT_EQ(i, 2);
  CHECK_INT_EQ(otpc_match(p, text_term("#{a => 7}"), &i, &t), 0);
  CHECK_INT_EQ(otpc_match(p, text_term("#{a => x, {k, \"s\"} => [1]}"), &i, &t),
               0);
  CHECK_INT_EQ(otpc_match(p, text_term("{a, 7}"), &i, &t), 0);
  otpc_pattern_free(p);
  CHECK_INT_EQ(matches("#{}", text_term("#{x => 1}")), 1);
  CHECK_INT_EQ(matches("#{}", text_term("[]")), 0);
  CHECK_INT_EQ(matches("{x, #{}}", text_term("{x, #{}}")), 1);
  CHECK_INT_EQ(matches("[#{a => 1}]", text_term("[#{b => 2, a => 1}]")), 1);
  /* A key that is a map, written in another order. */
  CHECK_INT_EQ(matches("#{#{b => 1, a => 2} => v}",
                       text_term("#{#{a => 2, b => 1} => v}")),
               1);
}

typedef struct perr_case {
  const char *text;
  int code;
  size_t pos;
} perr_case_t;

TEST(pattern_compile_errors) {
  static const perr_case_t cases[] = {
      {"{a,", OTPC_EBADFMT, 3},
      {"X", OTPC_EBADFMT, 0},
      {"{ok, Name}", OTPC_EBADFMT, 5},
      {"~s", OTPC_EBADFMT, 0},
      {"~A", OTPC_EBADFMT, 0},
      {"{~z}", OTPC_EBADFMT, 1},
      {"#{~a => 1}", OTPC_EBADFMT, 2},
      {"#{x => 1, _ => 2}", OTPC_EBADFMT, 10},
      {"#{{~i} => 1}", OTPC_EBADFMT, 2},
      {"<<~i>>", OTPC_EBADFMT, 2},
      {"", OTPC_EBADFMT, 0},
      {"a b", OTPC_EBADFMT, 2},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    otpc_pattern_t *p = NULL;
    size_t pos = 999;
    int rc = otpc_pattern_compile(cases[k].text, &p, &pos);
    if (rc != cases[k].code || pos != cases[k].pos)
      fprintf(stderr, "  %s: %s at %zu\n", cases[k].text, otpc_err_name(rc),
              pos);
    CHECK_INT_EQ(rc, cases[k].code);
    CHECK_INT_EQ(pos, cases[k].pos);
    CHECK(p == NULL);
  }
  /* Containers with holes nest 32 deep at most; literal ones any deep. */
  char text[200];
  memset(text, '{', 33);
  strcpy(text + 33, "_");
  memset(text + 34, '}', 33);
  text[67] = 0;
  otpc_pattern_t *p;
  size_t pos;
  CHECK_INT_EQ(otpc_pattern_compile(text, &p, &pos), OTPC_EDEPTH);
  CHECK_INT_EQ(pos, 32);
  char ok[100];
  memset(ok, '{', 32);
  strcpy(ok + 32, "_");
  memset(ok + 33, '}', 32);
  ok[65] = 0;
  CHECK_INT_EQ(otpc_pattern_compile(ok, &p, &pos), 0);
  otpc_pattern_free(p);
  text[33] = 'x';
  CHECK_INT_EQ(otpc_pattern_compile(text, &p, &pos), 0);
  otpc_pattern_free(p);
  CHECK_INT_EQ(otpc_pattern_compile(NULL, &p, &pos), OTPC_EINVAL);
}

TEST(pattern_many_matches_are_cheap) {
  /* Not a timing test: a smoke test that a loop of matches works and
   * binds nothing it should not. */
  otpc_pattern_t *p = compiled("{'$gen_call', {~p, ~r}, {get, ~t}}");
  otpc_term_t miss = text_term("{'$gen_cast', {put, k, v}}");
  otpc_term_t hit = text_term(
      "{'$gen_call', {<0.9.1>, #Ref<0.1.2.3>}, "
      "{get, key}}");
  otpc_pid_t pid;
  otpc_ref_t ref;
  otpc_term_t key;
  int hits = 0;
  for (int k = 0; k < 100000; k++) {
    hits += otpc_match(p, miss, &pid, &ref, &key);
    hits += otpc_match(p, hit, &pid, &ref, &key);
  }
  CHECK_INT_EQ(hits, 100000);
  CHECK(otpc_term_atom_eq(key, "key", 3));
  otpc_pattern_free(p);
}
