/*
 * test_core.c: atoms, buffers, the builder, views and the validator, on
 * bytes written by hand or captured from Erlang/OTP 25's term_to_binary.
 */
#include <math.h>
#include <stdatomic.h>

#include "otpc.h"
#include "term/term_int.h"
#include "test.h"

static otpc_term_t decode_ok(const uint8_t *data, size_t len) {
  otpc_term_t t;
  otpc_buf_t *owned;
  otpc_decode_error_t e;
  int rc = otpc_term_decode(data, len, NULL, &t, &owned, &e);
  if (rc != 0)
    otpc_test_fail(__FILE__, __LINE__, "decode: %s at %zu",
                   otpc_err_name(rc), e.offset);
  CHECK(owned == NULL);
  return t;
}

static int decode_err(const uint8_t *data, size_t len, size_t *offset) {
  otpc_term_t t;
  otpc_buf_t *owned = NULL;
  otpc_decode_error_t e = {0, 0};
  int rc = otpc_term_decode(data, len, NULL, &t, &owned, &e);
  CHECK(owned == NULL);
  CHECK(rc == e.code);
  if (offset) *offset = e.offset;
  return rc;
}

TEST(atoms_intern_once) {
  CHECK_INT_EQ(otpc_atom("ok"), OTPC_ATOM_OK);
  CHECK_INT_EQ(otpc_atom("nonode@nohost"), OTPC_ATOM_NONODE);
  otpc_atom_t a = otpc_atom("hello_world");
  CHECK(a >= OTPC_ATOM_FIRST_FREE_);
  CHECK_INT_EQ(otpc_atom("hello_world"), a);
  CHECK_STR_EQ(otpc_atom_name(a, NULL), "hello_world");
  otpc_atom_t found;
  CHECK_INT_EQ(otpc_atom_lookup("hello_world", 11, &found), 0);
  CHECK_INT_EQ(found, a);
  CHECK_INT_EQ(otpc_atom_lookup("never_made_xyz", 14, &found), OTPC_EINVAL);
  CHECK_INT_EQ(otpc_atom_new("\xff", 1, &found), OTPC_EUTF8);
  CHECK_INT_EQ(otpc_atom_new("\xc0\x80", 2, &found), OTPC_EUTF8); /* overlong */
  char long_name[300];
  memset(long_name, 'a', sizeof long_name);
  CHECK_INT_EQ(otpc_atom_new(long_name, 256, &found), OTPC_EATOM);
  CHECK_INT_EQ(otpc_atom_new(long_name, 255, &found), 0);
  /* 255 characters of two bytes each is still an atom. */
  char wide[510];
  for (int i = 0; i < 255; i++) memcpy(wide + 2 * i, "\xc3\xa9", 2);
  CHECK_INT_EQ(otpc_atom_new(wide, 510, &found), 0);
}

TEST(atoms_many_and_growth) {
  size_t before = otpc_atom_count();
  char name[32];
  otpc_atom_t first = 0;
  for (int i = 0; i < 50000; i++) {
    snprintf(name, sizeof name, "atom_%d", i);
    otpc_atom_t a = otpc_atom(name);
    CHECK(a != OTPC_ATOM_NONE);
    if (i == 0) first = a;
  }
  CHECK_INT_EQ(otpc_atom_count(), before + 50000);
  CHECK_INT_EQ(otpc_atom("atom_0"), first);
  CHECK_STR_EQ(otpc_atom_name(otpc_atom("atom_49999"), NULL), "atom_49999");
}

/* term_to_binary({ok, [1, 2 | 3], <<"hi">>, -1, 70000, 'é'}) in OTP 25
 * (minor version 1: the Latin-1 atom encodings). */
static const uint8_t sample[] = {
    131, 104, 6,   100, 0,   2,   111, 107, 108, 0,   0,   0,  2,  97, 1,
    97,  2,   97,  3,   109, 0,   0,   0,   2,   104, 105, 98, 255, 255, 255,
    255, 98,  0,   1,   17,  112, 100, 0,   1,   233};

TEST(views_read_in_place) {
  otpc_term_t t = decode_ok(sample, sizeof sample);
  CHECK_INT_EQ(otpc_term_type(t), OTPC_TYPE_TUPLE);
  CHECK_INT_EQ(otpc_term_size(t), sizeof sample - 1);
  size_t arity;
  otpc_term_t e;
  CHECK_INT_EQ(otpc_term_get_tuple(t, &arity, &e), 0);
  CHECK_INT_EQ(arity, 6);
  CHECK(otpc_term_is_atom(e, OTPC_ATOM_OK));
  CHECK(otpc_term_atom_eq(e, "ok", 2));
  e = otpc_term_next(e);
  otpc_list_iter_t it;
  otpc_term_t x;
  int v;
  CHECK_INT_EQ(otpc_term_list_iter(e, &it), 0);
  CHECK(otpc_list_next(&it, &x));
  CHECK_INT_EQ(otpc_term_get_int(x, &v), 0);
  CHECK_INT_EQ(v, 1);
  CHECK(otpc_list_next(&it, &x));
  CHECK(!otpc_list_next(&it, &x));
  CHECK_INT_EQ(otpc_term_get_int(otpc_list_tail(&it), &v), 0);
  CHECK_INT_EQ(v, 3);
  size_t len;
  CHECK_INT_EQ(otpc_term_list_length(e, &len), OTPC_ETYPE); /* improper */
  e = otpc_term_next(e);
  const uint8_t *bin;
  size_t n;
  unsigned bits;
  CHECK_INT_EQ(otpc_term_get_binary(e, &bin, &n, &bits), 0);
  CHECK(n == 2 && bits == 8 && memcmp(bin, "hi", 2) == 0);
  CHECK(bin > sample && bin < sample + sizeof sample); /* in place */
  int64_t i64;
  CHECK_INT_EQ(otpc_term_get_int64(otpc_term_tuple_elem(t, 3), &i64), 0);
  CHECK_INT_EQ(i64, -1);
  CHECK_INT_EQ(otpc_term_get_int64(otpc_term_tuple_elem(t, 4), &i64), 0);
  CHECK_INT_EQ(i64, 70000);
  otpc_term_t latin = otpc_term_tuple_elem(t, 5);
  CHECK(otpc_term_atom_eq(latin, "\xc3\xa9", 2)); /* Latin-1 vs UTF-8 */
  otpc_atom_t a;
  CHECK_INT_EQ(otpc_term_get_atom(latin, &a), 0);
  CHECK_INT_EQ(a, otpc_atom("\xc3\xa9"));
  CHECK(otpc_term_is_none(otpc_term_tuple_elem(t, 6)));
  CHECK_INT_EQ(otpc_term_get_int(otpc_term_tuple_elem(t, 0), &v), OTPC_ETYPE);
}

TEST(string_ext_elements) {
  /* term_to_binary("abc") */
  static const uint8_t s[] = {131, 107, 0, 3, 'a', 'b', 'c'};
  otpc_term_t t = decode_ok(s, sizeof s);
  CHECK_INT_EQ(otpc_term_type(t), OTPC_TYPE_LIST);
  otpc_list_iter_t it;
  otpc_term_t x;
  int sum = 0, v;
  CHECK_INT_EQ(otpc_term_list_iter(t, &it), 0);
  while (otpc_list_next(&it, &x)) {
    CHECK_INT_EQ(otpc_term_type(x), OTPC_TYPE_INTEGER);
    CHECK_INT_EQ(otpc_term_get_int(x, &v), 0);
    sum += v;
  }
  CHECK_INT_EQ(sum, 'a' + 'b' + 'c');
  CHECK_INT_EQ(otpc_term_type(otpc_list_tail(&it)), OTPC_TYPE_NIL);
  size_t len;
  CHECK_INT_EQ(otpc_term_list_length(t, &len), 0);
  CHECK_INT_EQ(len, 3);
}

TEST(list_with_list_tail_is_one_list) {
  /* [1 | [2, 3]] written as a LIST_EXT whose tail is a STRING_EXT. */
  static const uint8_t s[] = {131, 108, 0, 0, 0, 1, 97, 1, 107, 0, 2, 2, 3};
  otpc_term_t t = decode_ok(s, sizeof s);
  size_t len;
  CHECK_INT_EQ(otpc_term_list_length(t, &len), 0);
  CHECK_INT_EQ(len, 3);
}

TEST(builder_matches_erlang_bytes) {
  otpc_builder_t b;
  otpc_builder_init(&b);
  otpc_build_tuple(&b, 6);
  otpc_build_atom(&b, "ok");
  otpc_build_list(&b, 2);
  otpc_build_int(&b, 1);
  otpc_build_int(&b, 2);
  otpc_build_int(&b, 3);
  otpc_build_binary(&b, "hi", 2);
  otpc_build_int(&b, -1);
  otpc_build_int(&b, 70000);
  otpc_build_atom(&b, "\xc3\xa9");
  int rc;
  otpc_buf_t *buf = otpc_builder_finish(&b, &rc);
  CHECK_INT_EQ(rc, 0);
  /* term_to_binary(T, [{minor_version, 2}]) in OTP 25. */
  static const uint8_t want[] = {
      131, 104, 6,   119, 2,   111, 107, 108, 0,   0,   0,   2,
      97,  1,   97,  2,   97,  3,   109, 0,   0,   0,   2,   104,
      105, 98,  255, 255, 255, 255, 98,  0,   1,   17,  112, 119,
      2,   195, 169};
  CHECK_INT_EQ(otpc_buf_size(buf), sizeof want);
  CHECK(memcmp(otpc_buf_data(buf), want, sizeof want) == 0);
  otpc_buf_unref(buf);
}

TEST(builder_integers_canonical) {
  /* Each value and the bytes term_to_binary gives it. */
  static const struct {
    int64_t v;
    uint8_t bytes[12];
    size_t n;
  } cases[] = {
      {0, {97, 0}, 2},
      {255, {97, 255}, 2},
      {256, {98, 0, 0, 1, 0}, 5},
      {-1, {98, 255, 255, 255, 255}, 5},
      {2147483647, {98, 127, 255, 255, 255}, 5},
      {-2147483648LL, {98, 128, 0, 0, 0}, 5},
      {2147483648LL, {110, 4, 0, 0, 0, 0, 128}, 7},
      {-2147483649LL, {110, 4, 1, 1, 0, 0, 128}, 7},
      {INT64_MIN, {110, 8, 1, 0, 0, 0, 0, 0, 0, 0, 128}, 11},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    otpc_builder_t b;
    otpc_builder_init(&b);
    otpc_build_int(&b, cases[i].v);
    size_t len;
    const uint8_t *d = otpc_builder_data(&b, &len);
    CHECK_INT_EQ(len, cases[i].n + 1);
    CHECK(memcmp(d + 1, cases[i].bytes, cases[i].n) == 0);
    otpc_term_t t = decode_ok(d, len);
    int64_t back;
    CHECK_INT_EQ(otpc_term_get_int64(t, &back), 0);
    CHECK_INT_EQ(back, cases[i].v);
    otpc_builder_dispose(&b);
  }
  /* A big integer that fits 32 bits is written as a small one. */
  otpc_builder_t b;
  otpc_builder_init(&b);
  static const uint8_t mag[] = {5, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  otpc_build_bigint(&b, true, mag, sizeof mag);
  size_t len;
  const uint8_t *d = otpc_builder_data(&b, &len);
  CHECK_INT_EQ(len, 6);
  CHECK_INT_EQ(d[1], 98);
  otpc_builder_dispose(&b);
}

TEST(builder_large_grows_without_copy_at_finish) {
  otpc_builder_t b;
  otpc_builder_init(&b);
  size_t n = 10000;
  otpc_build_list(&b, n);
  for (size_t i = 0; i < n; i++) otpc_build_int(&b, (int64_t)i * 1000);
  otpc_build_nil(&b);
  int rc;
  otpc_buf_t *buf = otpc_builder_finish(&b, &rc);
  CHECK(buf != NULL);
  otpc_term_t t = otpc_buf_term(buf);
  size_t len;
  CHECK_INT_EQ(otpc_term_list_length(t, &len), 0);
  CHECK_INT_EQ(len, n);
  CHECK_INT_EQ(otpc_term_size(t) + 1, otpc_buf_size(buf));
  otpc_buf_unref(buf);
}

TEST(builder_misuse_is_an_error) {
  otpc_builder_t b;
  int rc;
  otpc_builder_init(&b);
  otpc_build_tuple(&b, 2);
  otpc_build_atom(&b, "only_one");
  CHECK(otpc_builder_finish(&b, &rc) == NULL);
  CHECK_INT_EQ(rc, OTPC_ESTATE);
  otpc_builder_init(&b);
  otpc_build_nil(&b);
  CHECK_INT_EQ(otpc_build_nil(&b), OTPC_ESTATE);
  CHECK(otpc_builder_finish(&b, &rc) == NULL);
  CHECK_INT_EQ(rc, OTPC_ESTATE);
  otpc_builder_init(&b);
  CHECK_INT_EQ(otpc_build_double(&b, NAN), OTPC_EBADARG);
  CHECK_INT_EQ(otpc_build_int(&b, 1), OTPC_EBADARG); /* sticky */
  otpc_builder_dispose(&b);
  otpc_builder_init(&b);
  CHECK_INT_EQ(otpc_build_atom(&b, "\xff"), OTPC_EUTF8);
  otpc_builder_dispose(&b);
}

TEST(identifiers_round_trip) {
  otpc_pid_t pid = {otpc_atom("a@b"), 83, 7, 0x12345678};
  otpc_port_t port = {otpc_atom("a@b"), 9, (uint64_t)1 << 40};
  otpc_ref_t ref = {otpc_atom("a@b"), 3, 3, {1, 2, 3, 0, 0}};
  otpc_builder_t b;
  otpc_builder_init(&b);
  otpc_build_tuple(&b, 4);
  otpc_build_pid(&b, &pid);
  otpc_build_port(&b, &port);
  otpc_build_ref(&b, &ref);
  otpc_build_export(&b, otpc_atom("lists"), otpc_atom("map"), 2);
  int rc;
  otpc_buf_t *buf = otpc_builder_finish(&b, &rc);
  CHECK_INT_EQ(rc, 0);
  otpc_term_t t;
  otpc_buf_t *owned;
  CHECK_INT_EQ(otpc_term_decode(otpc_buf_data(buf), otpc_buf_size(buf), NULL,
                                &t, &owned, NULL),
               0);
  otpc_pid_t p2;
  otpc_port_t o2;
  otpc_ref_t r2;
  CHECK_INT_EQ(otpc_term_get_pid(otpc_term_tuple_elem(t, 0), &p2), 0);
  CHECK(memcmp(&pid, &p2, sizeof pid) == 0);
  CHECK_INT_EQ(otpc_term_get_port(otpc_term_tuple_elem(t, 1), &o2), 0);
  CHECK(o2.node == port.node && o2.id == port.id && o2.creation == 9);
  CHECK_INT_EQ(otpc_term_get_ref(otpc_term_tuple_elem(t, 2), &r2), 0);
  CHECK(memcmp(&ref, &r2, sizeof ref) == 0);
  otpc_atom_t m, f;
  unsigned ar;
  CHECK_INT_EQ(otpc_term_get_export(otpc_term_tuple_elem(t, 3), &m, &f, &ar),
               0);
  CHECK(m == otpc_atom("lists") && f == otpc_atom("map") && ar == 2);
  otpc_buf_unref(buf);
}

/* Pids and refs of the local node are written from its name's ready
 * encoding and recognised by comparing bytes; the node's name may change
 * (a node starting distribution), and every name must keep its own. */
static otpc_buf_t *pid_and_ref(otpc_atom_t node) {
  otpc_pid_t pid = {node, 5, 6, 7};
  otpc_ref_t ref = {node, 7, 3, {1, 2, 3, 0, 0}};
  otpc_builder_t b;
  otpc_builder_init(&b);
  otpc_build_tuple(&b, 2);
  otpc_build_pid(&b, &pid);
  otpc_build_ref(&b, &ref);
  return otpc_builder_finish(&b, NULL);
}

static void check_pid_and_ref(otpc_buf_t *buf, otpc_atom_t node) {
  otpc_term_t t;
  otpc_buf_t *owned;
  CHECK_INT_EQ(otpc_term_decode(otpc_buf_data(buf), otpc_buf_size(buf), NULL,
                                &t, &owned, NULL),
               0);
  otpc_pid_t pid;
  otpc_ref_t ref;
  CHECK_INT_EQ(otpc_term_get_pid(otpc_term_tuple_elem(t, 0), &pid), 0);
  CHECK_INT_EQ(otpc_term_get_ref(otpc_term_tuple_elem(t, 1), &ref), 0);
  CHECK_INT_EQ(pid.node, node);
  CHECK_INT_EQ(ref.node, node);
  CHECK(pid.id == 5 && pid.serial == 6 && pid.creation == 7);
  CHECK(ref.len == 3 && ref.id[2] == 3 && ref.creation == 7);
  otpc_buf_unref(owned);
}

TEST(local_identifiers_follow_the_node_name) {
  otpc_atom_t ab = otpc_atom("a@b"), cd = otpc_atom("c@d");
  otpc_term_set_local_node(ab, 1);
  otpc_buf_t *mine = pid_and_ref(ab), *other = pid_and_ref(cd);
  /* The bytes are Erlang's, whichever way they were written. */
  static const uint8_t want[] = {131, 104, 2, 88, 119, 3, 'a', '@', 'b',
                                 0, 0, 0, 5, 0, 0, 0, 6, 0, 0, 0, 7};
  CHECK(otpc_buf_size(mine) > sizeof want);
  CHECK(memcmp(otpc_buf_data(mine), want, sizeof want) == 0);
  CHECK_INT_EQ(otpc_buf_size(mine), otpc_buf_size(other));
  check_pid_and_ref(mine, ab);
  check_pid_and_ref(other, cd);
  /* Renamed to a name of the same length: each keeps its node. */
  otpc_term_set_local_node(cd, 2);
  check_pid_and_ref(mine, ab);
  check_pid_and_ref(other, cd);
  otpc_buf_t *again = pid_and_ref(ab);
  CHECK_INT_EQ(otpc_buf_size(again), otpc_buf_size(mine));
  CHECK(memcmp(otpc_buf_data(again), otpc_buf_data(mine),
               otpc_buf_size(mine)) == 0);
  otpc_buf_unref(again);
  /* Past the names a node can cache: written and read the long way. */
  char name[32];
  for (int i = 0; i < 40; i++) {
    snprintf(name, sizeof name, "n%d@h", i);
    otpc_term_set_local_node(otpc_atom(name), 1);
    otpc_buf_t *b = pid_and_ref(otpc_atom(name));
    check_pid_and_ref(b, otpc_atom(name));
    check_pid_and_ref(mine, ab);
    otpc_buf_unref(b);
  }
  otpc_term_set_local_node(OTPC_ATOM_NONE, 0);
  check_pid_and_ref(mine, ab);
  otpc_buf_unref(mine);
  otpc_buf_unref(other);
}

TEST(maps_lookup) {
  otpc_builder_t b;
  otpc_builder_init(&b);
  otpc_build_map(&b, 2);
  otpc_build_atom(&b, "a");
  otpc_build_int(&b, 1);
  otpc_build_binary(&b, "k", 1);
  otpc_build_int(&b, 2);
  int rc, v;
  otpc_buf_t *buf = otpc_builder_finish(&b, &rc);
  otpc_term_t m = otpc_buf_term(buf);
  CHECK_INT_EQ(otpc_term_get_int(otpc_term_map_get_atom(m, "a"), &v), 0);
  CHECK_INT_EQ(v, 1);
  CHECK(otpc_term_is_none(otpc_term_map_get_atom(m, "b")));
  otpc_buf_t *key = otpc_term_fmt("<<\"k\">>");
  if (key != NULL) { /* needs the format layer */
    CHECK_INT_EQ(otpc_term_get_int(otpc_term_map_get(m, otpc_buf_term(key)),
                                   &v),
                 0);
    CHECK_INT_EQ(v, 2);
    otpc_buf_unref(key);
  }
  otpc_buf_unref(buf);
}

/* ---- bad input ------------------------------------------------------------ */

TEST(decode_rejects_bad_input_with_position) {
  size_t off;
  static const uint8_t no_version[] = {130, 97, 1};
  CHECK_INT_EQ(decode_err(no_version, sizeof no_version, &off), OTPC_EVERSION);
  static const uint8_t empty[] = {131};
  CHECK_INT_EQ(decode_err(empty, sizeof empty, &off), OTPC_ETRUNC);
  CHECK_INT_EQ(off, 1);
  static const uint8_t trunc_int[] = {131, 98, 0, 0};
  CHECK_INT_EQ(decode_err(trunc_int, sizeof trunc_int, &off), OTPC_ETRUNC);
  CHECK_INT_EQ(off, 1);
  static const uint8_t bad_tag[] = {131, 104, 2, 97, 1, 42};
  CHECK_INT_EQ(decode_err(bad_tag, sizeof bad_tag, &off), OTPC_EBADTAG);
  CHECK_INT_EQ(off, 5);
  static const uint8_t huge_list[] = {131, 108, 255, 255, 255, 255, 106};
  CHECK_INT_EQ(decode_err(huge_list, sizeof huge_list, &off), OTPC_ELENGTH);
  static const uint8_t huge_bin[] = {131, 109, 127, 255, 255, 255, 1};
  CHECK_INT_EQ(decode_err(huge_bin, sizeof huge_bin, &off), OTPC_ELENGTH);
  static const uint8_t bad_utf8[] = {131, 119, 2, 0xc3, 0x28};
  CHECK_INT_EQ(decode_err(bad_utf8, sizeof bad_utf8, &off), OTPC_EUTF8);
  static const uint8_t trailing[] = {131, 106, 106};
  CHECK_INT_EQ(decode_err(trailing, sizeof trailing, &off), OTPC_ETRAIL);
  CHECK_INT_EQ(off, 2);
  static const uint8_t nan[] = {131, 70, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0};
  CHECK_INT_EQ(decode_err(nan, sizeof nan, &off), OTPC_EBADARG);
  static const uint8_t bad_bits[] = {131, 77, 0, 0, 0, 1, 9, 0xff};
  CHECK_INT_EQ(decode_err(bad_bits, sizeof bad_bits, &off), OTPC_EBADARG);
  static const uint8_t cache_ref[] = {131, 82, 0};
  CHECK_INT_EQ(decode_err(cache_ref, sizeof cache_ref, &off), OTPC_EBADTAG);
  static const uint8_t pid_not_atom[] = {131, 88, 97, 1, 0, 0, 0, 0, 0, 0,
                                         0,   0,  0,  0, 0, 0};
  CHECK_INT_EQ(decode_err(pid_not_atom, sizeof pid_not_atom, &off),
               OTPC_EBADTAG);
  CHECK_INT_EQ(off, 2);
}

TEST(decode_depth_limit) {
  size_t depth = 20000;
  uint8_t *deep = malloc(2 * depth + 2);
  deep[0] = 131;
  for (size_t i = 0; i < depth; i++) {
    deep[1 + 2 * i] = 104;
    deep[2 + 2 * i] = 1;
  }
  deep[1 + 2 * depth] = 106;
  size_t off;
  CHECK_INT_EQ(decode_err(deep, 2 * depth + 2, &off), OTPC_EDEPTH);
  otpc_decode_opts_t opts = {30000, 0};
  otpc_term_t t;
  otpc_buf_t *owned;
  CHECK_INT_EQ(
      otpc_term_decode(deep, 2 * depth + 2, &opts, &t, &owned, NULL), 0);
  CHECK_INT_EQ(otpc_term_size(t), 2 * depth + 1);
  free(deep);
}

TEST(validate_reports_used_bytes) {
  /* Two terms back to back, as in a distribution frame. */
  static const uint8_t two[] = {104, 2, 97, 1, 97, 2, 106};
  CHECK_INT_EQ(otpc_term_validate(two, sizeof two, NULL, NULL), 6);
  CHECK_INT_EQ(otpc_term_validate(two + 6, 1, NULL, NULL), 1);
}

TEST(compressed_round_trip) {
  otpc_builder_t b;
  otpc_builder_init(&b);
  otpc_build_list(&b, 1000);
  for (int i = 0; i < 1000; i++) otpc_build_atom(&b, "repeat_me");
  otpc_build_nil(&b);
  int rc;
  otpc_buf_t *plain = otpc_builder_finish(&b, &rc);
  otpc_buf_t *z;
  CHECK_INT_EQ(otpc_term_compress(otpc_buf_term(plain), 6, &z), 0);
  CHECK(otpc_buf_size(z) < otpc_buf_size(plain) / 10);
  CHECK_INT_EQ(otpc_buf_data(z)[1], 80);
  otpc_term_t t;
  otpc_buf_t *owned;
  CHECK_INT_EQ(otpc_term_decode(otpc_buf_data(z), otpc_buf_size(z), NULL, &t,
                                &owned, NULL),
               0);
  CHECK(owned != NULL);
  CHECK_INT_EQ(otpc_buf_size(owned), otpc_buf_size(plain));
  CHECK(memcmp(otpc_buf_data(owned), otpc_buf_data(plain),
               otpc_buf_size(plain)) == 0);
  otpc_buf_unref(owned);
  /* Corrupt stream and a lying size are errors, not crashes. */
  uint8_t *bad = malloc(otpc_buf_size(z));
  memcpy(bad, otpc_buf_data(z), otpc_buf_size(z));
  bad[5] ^= 1; /* the stated size */
  CHECK_INT_EQ(decode_err(bad, otpc_buf_size(z), NULL), OTPC_EZLIB);
  bad[5] ^= 1;
  bad[12] ^= 0x55;
  CHECK(decode_err(bad, otpc_buf_size(z), NULL) < 0);
  free(bad);
  otpc_buf_unref(z);
  otpc_buf_unref(plain);
}

/* ---- allocation failure ---------------------------------------------------- */

static atomic_int allocs_left;
static void *failing_malloc(size_t n) {
  return atomic_fetch_sub(&allocs_left, 1) > 0 ? malloc(n) : NULL;
}
static void *failing_realloc(void *p, size_t n) {
  return atomic_fetch_sub(&allocs_left, 1) > 0 ? realloc(p, n) : NULL;
}

TEST(out_of_memory_is_an_error) {
  otpc_atom("ok"); /* the table exists before allocation starts failing */
  otpc_allocator_t failing = {failing_malloc, failing_realloc, free};
  for (int budget = 0; budget < 8; budget++) {
    atomic_store(&allocs_left, budget);
    otpc_set_allocator(&failing);
    otpc_builder_t b;
    otpc_builder_init(&b);
    otpc_build_list(&b, 100);
    for (int i = 0; i < 100; i++) otpc_build_binary(&b, "0123456789", 10);
    otpc_build_nil(&b);
    int rc;
    otpc_buf_t *buf = otpc_builder_finish(&b, &rc);
    otpc_set_allocator(NULL);
    if (buf == NULL) {
      CHECK_INT_EQ(rc, OTPC_ENOMEM);
    } else {
      CHECK_INT_EQ(rc, 0);
      otpc_buf_unref(buf);
    }
  }
}

TEST(errors_have_text) {
  CHECK_STR_EQ(otpc_strerror(OTPC_ENOMEM), "out of memory");
  CHECK_STR_EQ(otpc_err_name(OTPC_ETRUNC), "ETRUNC");
  CHECK_STR_EQ(otpc_err_name(-9999), "EUNKNOWN");
}

/* A freed big buffer is kept and serves the next one of about its size
 * (memory already touched; see buf.c), and a much smaller one is not
 * served from it. Plain malloc under ASan: nothing is kept there. */
TEST(big_buffers_are_kept_for_reuse) {
#if defined(__SANITIZE_ADDRESS__)
  return;
#endif
  otpc_buf_t *a = otpc_buf_new(NULL, 1 << 20);
  CHECK(a != NULL);
  const uint8_t *at = otpc_buf_data(a);
  otpc_buf_unref(a);
  otpc_buf_t *small = otpc_buf_new(NULL, 300 << 10); /* under half: not it */
  CHECK(small != NULL && otpc_buf_data(small) != at);
  otpc_buf_t *b = otpc_buf_new(NULL, (1 << 20) - 100);
  CHECK(b != NULL && otpc_buf_data(b) == at);
  CHECK(otpc_buf_size(b) == (1 << 20) - 100);
  otpc_buf_unref(b);
  otpc_buf_unref(small);
}

/* otpc__buf_take_sub: the only holder gets its buffer narrowed to the
 * term inside it (no copy); a shared buffer gives a copy and stays as it
 * was. */
TEST(buffer_narrowed_to_a_term_inside_it) {
  otpc_buf_t *m = otpc_term_fmt("{tag, {reply, <<\"text\">>, [1, 2]}, x}");
  CHECK(m != NULL);
  otpc_term_t inner = otpc_term_tuple_elem(otpc_buf_term(m), 1);
  otpc_buf_t *r = otpc__buf_take_sub(m, inner); /* m is taken over */
  CHECK(r == m);
  CHECK_INT_EQ(otpc_buf_data(r)[0], 131);
  CHECK_INT_EQ(otpc_buf_size(r), 1 + otpc_term_size(otpc_buf_term(r)));
  otpc_buf_t *want = otpc_term_fmt("{reply, <<\"text\">>, [1, 2]}");
  CHECK(otpc_term_equal(otpc_buf_term(r), otpc_buf_term(want)));
  CHECK_INT_EQ(otpc_buf_size(r), otpc_buf_size(want));
  CHECK(memcmp(otpc_buf_data(r), otpc_buf_data(want), otpc_buf_size(r)) == 0);

  /* Again, inside the narrowed one: the last element. */
  otpc_buf_t *list =
      otpc__buf_take_sub(r, otpc_term_tuple_elem(otpc_buf_term(r), 2));
  CHECK(list == m);
  otpc_buf_t *want_list = otpc_term_fmt("[1, 2]");
  CHECK(otpc_term_equal(otpc_buf_term(list), otpc_buf_term(want_list)));

  /* Shared: a copy; the original keeps its bytes. */
  otpc_buf_t *shared = otpc_buf_ref(want);
  otpc_buf_t *copy =
      otpc__buf_take_sub(shared, otpc_term_tuple_elem(otpc_buf_term(want), 1));
  CHECK(copy != want);
  otpc_buf_t *bin = otpc_term_fmt("<<\"text\">>");
  CHECK(otpc_term_equal(otpc_buf_term(copy), otpc_buf_term(bin)));
  otpc_buf_t *again = otpc_term_fmt("{reply, <<\"text\">>, [1, 2]}");
  CHECK(memcmp(otpc_buf_data(want), otpc_buf_data(again),
               otpc_buf_size(want)) == 0);

  /* A character of a string is no encoded term of its own: a copy. */
  otpc_buf_t *s = otpc_term_fmt("\"ab\"");
  otpc_list_iter_t it;
  otpc_term_t c;
  CHECK_INT_EQ(otpc_term_list_iter(otpc_buf_term(s), &it), 0);
  CHECK(otpc_list_next(&it, &c));
  otpc_buf_t *ch = otpc__buf_take_sub(s, c);
  CHECK(ch != NULL && ch != s);
  int64_t v = 0;
  CHECK_INT_EQ(otpc_term_get_int64(otpc_buf_term(ch), &v), 0);
  CHECK_INT_EQ(v, 'a');

  otpc_buf_unref(ch);
  otpc_buf_unref(again);
  otpc_buf_unref(bin);
  otpc_buf_unref(copy);
  otpc_buf_unref(want_list);
  otpc_buf_unref(list);
  otpc_buf_unref(want);
}
