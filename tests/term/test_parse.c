/*
 * test_parse.c: otpc_build_parse() and otpc_term_parse(): every piece of
 * term syntax, errors with their offsets, and round trips whose ETF must be
 * byte-identical to Erlang/OTP 25's term_to_binary(T, [{minor_version, 2}]).
 *
 * The expected bytes were captured from erl: for each text,
 *   {ok, Ts, _} = erl_scan:string(Text),
 *   {ok, T} = erl_parse:parse_term(Ts ++ [{dot, 1}]),
 *   binary:encode_hex(term_to_binary(T, [{minor_version, 2}]))
 * and for pids, references and ports list_to_pid/1, list_to_ref/1 and
 * list_to_port/1 of the same text in a node started without a name.
 */
#include "otpc.h"
#include "test.h"
#include "hex.h"

typedef struct parse_case {
  const char *text;
  const char *hex; /* term_to_binary, version byte first */
} parse_case_t;

static const parse_case_t parse_cases[] = {
    {"0", "836100"},
    {"1", "836101"},
    {"255", "8361FF"},
    {"256", "836200000100"},
    {"-1", "8362FFFFFFFF"},
    {"-256", "8362FFFFFF00"},
    {"2147483647", "83627FFFFFFF"},
    {"2147483648", "836E040000000080"},
    {"-2147483648", "836280000000"},
    {"-2147483649", "836E040101000080"},
    {"18446744073709551615", "836E0800FFFFFFFFFFFFFFFF"},
    {"18446744073709551616", "836E0900000000000000000001"},
    {"-18446744073709551616", "836E0901000000000000000001"},
    {"12345678901234567890123456789", "836E0C001581396EB1C9BE46321BE427"},
    {"-9223372036854775808", "836E08010000000000000080"},
    {"9223372036854775808", "836E08000000000000000080"},
    {"1_000_000", "8362000F4240"},
    {"16#FF", "8361FF"},
    {"2#1010", "83610A"},
    {"36#zz", "83620000050F"},
    {"-16#10", "8362FFFFFFF0"},
    {"16#ffff_ffff_ffff_ffff_ffff", "836E0A00FFFFFFFFFFFFFFFFFFFF"},
    {"<<\"\xc3\xa9\"/utf8>>", "836D00000002C3A9"},
    {"<<1, \"a\xcf\x80\" / utf8, \"c\">>", "836D000000050161CF8063"},
    {"<<1:3, \"\xc3\xa9\"/utf8>>", "834D0000000303387520"},
    {"<<\"a\" \"\xc3\xa9\"/utf8>>", "836D0000000361C3A9"},
    {"$a", "836161"},
    {"$\\n", "83610A"},
    {"$\\x{1F600}", "83620001F600"},
    {"$ ", "836120"},
    {"$\\^A", "836101"},
    {"- 5", "8362FFFFFFFB"},
    {"+7", "836107"},
    {"1.0", "83463FF0000000000000"},
    {"-2.5e-3", "8346BF647AE147AE147B"},
    {"1.0e10", "83464202A05F20000000"},
    {"0.1", "83463FB999999999999A"},
    {"1.5e300", "83467E41EB2D66005835"},
    {"-0.0", "83468000000000000000"},
    {"2.2250738585072014e-308", "83460010000000000000"},
    {"1_0.5e1_0", "83464238727CDA000000"},
    {"1.0E-400", "83460000000000000000"},
    {"123456789.123456789", "8346419D6F34547E6B75"},
    {"ok", "8377026F6B"},
    {"'hello world'", "83770B68656C6C6F20776F726C64"},
    {"'h\303\251llo'", "83770668C3A96C6C6F"},
    {"'\\n'", "8377010A"},
    {"'a\\x{100}b'", "83770461C48062"},
    {"a@b_C9", "8377066140625F4339"},
    {"'ok'", "8377026F6B"},
    {"true", "83770474727565"},
    {"''", "837700"},
    {"'with\\'quote'", "83770A776974682771756F7465"},
    {"'\\^A'", "83770101"},
    {"'\\101\\x41\\s'", "837703414120"},
    {"'\316\261\316\262'", "837704CEB1CEB2"},
    {"\303\251t\303\251", "837705C3A974C3A9"},
    {"\"\"", "836A"},
    {"\"abc\"", "836B0003616263"},
    {"\"h\303\251llo\"", "836B000568E96C6C6F"},
    {"\"a\\x{100}\"", "836C00000002616162000001006A"},
    {"\"a\\nb\"", "836B0003610A62"},
    {"\"ab\" \"cd\"", "836B000461626364"},
    {"\"\\x{1F600}\"", "836C00000001620001F6006A"},
    {"\"\\377\"", "836B0001FF"},
    {"\"a\\\"b\"", "836B0003612262"},
    {"[]", "836A"},
    {"[1,2,3]", "836B0003010203"},
    {"[a,b]", "836C000000027701617701626A"},
    {"[1|2]", "836C0000000161016102"},
    {"[a|[b]]", "836C000000027701617701626A"},
    {"[1|[2]]", "836B00020102"},
    {"[1|\"ab\"]", "836B0003016162"},
    {"[[1,2],3]", "836C000000026B0002010261036A"},
    {"[a,b|c]", "836C00000002770161770162770163"},
    {"[256]", "836C0000000162000001006A"},
    {"[-1]", "836C0000000162FFFFFFFF6A"},
    {"[1,2.0]", "836C0000000261014640000000000000006A"},
    {"[1,[]]", "836C0000000261016A6A"},
    {"[$a,$b]", "836B00026162"},
    {"[1|[a]]", "836C0000000261017701616A"},
    {"[[]]", "836C000000016A6A"},
    {"[\"ab\"|\"\"]", "836C000000016B000261626A"},
    {"[a|[]]", "836C000000017701616A"},
    {"[1,2|[3|[4]]]", "836B000401020304"},
    {"[1|\"\\x{100}\"]", "836C00000002610162000001006A"},
    {"[\"\\x{100}\"]", "836C000000016C0000000162000001006A6A"},
    {"{}", "836800"},
    {"{a}", "836801770161"},
    {"{ok,1}", "83680277026F6B6101"},
    {"{{},{}}", "83680268006800"},
    {"{ok, {error, [1, 2]}, <<\"x\">>}",
     "83680377026F6B680277056572726F726B000201026D0000000178"},
    {"#{}", "837400000000"},
    {"#{b=>1,a=>2}", "83740000000277016161027701626101"},
    {"#{1.0=>a,1=>b}", "8374000000026101770162463FF0000000000000770161"},
    {"#{2=>a,1.0=>b}", "8374000000026102770161463FF0000000000000770162"},
    {"#{a=>1,a=>2}", "8374000000017701616102"},
    {"#{\"a\"=>1, a=>2, 1=>3, {}=>4, []=>5, <<>> =>6}",
     "837400000006610161037701616102680061046A61056B00016161016D000000006106"},
    {"#{#{b=>1,a=>2}=>x, a=>y}",
     "837400000002770161770179740000000277016161027701626101770178"},
    {"#{k=>#{z=>1,y=>2}}", "83740000000177016B7400000002770179610277017A6101"},
    {"#{[1]=>a,[a]=>b,{1,2}=>c,{a}=>d}",
     "83740000000468017701617701646802610161027701636B0001017701616C0000000177"
     "01616A770162"},
    {"#{1=>a, 1.0=>b, 0.5=>c}",
     "8374000000036101770161463FE0000000000000770163463FF0000000000000770162"},
    {"#{-1=>a, 100000000000000000000=>b, 3=>c}",
     "83740000000362FFFFFFFF77016161037701636E0900000010632D5EC76B05770162"},
    {"<<>>", "836D00000000"},
    {"<<1,2,3>>", "836D00000003010203"},
    {"<<\"abc\">>", "836D00000003616263"},
    {"<<1,2:3>>", "834D00000002030140"},
    {"<<-1>>", "836D00000001FF"},
    {"<<256>>", "836D0000000100"},
    {"<<1:12>>", "834D00000002040010"},
    {"<<\"\303\251\">>", "836D00000001E9"},
    {"<<1,\"ab\",2>>", "836D0000000401616202"},
    {"<<5:3, 7:5>>", "836D00000001A7"},
    {"<<0:0>>", "836D00000000"},
    {"<<-1:3>>", "834D0000000103E0"},
    {"<<100000000000000000000:72>>", "836D00000009056BC75E2D63100000"},
    {"<<-100000000000000000000:72>>", "836D00000009FA9438A1D29CF00000"},
    {"<<1:1,0:1>>", "834D000000010280"},
    {"<<\"ab\" \"c\">>", "836D00000003616263"},
    {"fun lists:map/2", "837177056C6973747377036D61706102"},
    {"fun 'a b':c/0", "837177036120627701636100"},
    {"fun erlang:'+'/2", "8371770665726C616E6777012B6102"},
    {"  % comment\n {a , 1 } . ", "8368027701616101"},
    {"ok.", "8377026F6B"},
    {"ok. % done\n", "8377026F6B"},
    {"{a,%c\nb}", "836802770161770162"},
    {"<0.1.2>", "8358770D6E6F6E6F6465406E6F686F7374000000010000000200000000"},
    {"#Ref<0.1.2.3>",
     "835A0003770D6E6F6E6F6465406E6F686F737400000000000000030000000200000001"},
    {"#Ref<0.4294967295.0.7>",
     "835A0003770D6E6F6E6F6465406E6F686F7374000000000000000700000000FFFFFFFF"},
    {"#Port<0.5>", "8359770D6E6F6E6F6465406E6F686F73740000000500000000"},
    {"{<0.1.2>, #Ref<0.1.2.3>, #Port<0.5>}",
     "83680358770D6E6F6E6F6465406E6F686F73740000000100000002000000005A0003770D"
     "6E6F6E6F6465406E6F686F73740000000000000003000000020000000159770D6E6F6E6F"
     "6465406E6F686F73740000000500000000"},
};

/* Parses text and returns its ETF as hex (static storage), or the error
 * name. */
static const char *parse_hex(const char *text, size_t len) {
  static char out[8192];
  otpc_buf_t *buf = NULL;
  size_t pos = 0;
  int rc = otpc_term_parse(text, len, &buf, &pos);
  if (rc < 0) {
    snprintf(out, sizeof out, "%s@%zu", otpc_err_name(rc), pos);
    return out;
  }
  CHECK(otpc_buf_size(buf) * 2 < sizeof out);
  to_hex(otpc_buf_data(buf), otpc_buf_size(buf), out);
  otpc_buf_unref(buf);
  return out;
}

static const char *parse_str(const char *text) {
  return parse_hex(text, strlen(text));
}

TEST(parse_matches_term_to_binary) {
  size_t n = sizeof parse_cases / sizeof parse_cases[0];
  int failed = 0;
  for (size_t i = 0; i < n; i++) {
    const char *got = parse_str(parse_cases[i].text);
    if (strcmp(got, parse_cases[i].hex) != 0) {
      fprintf(stderr, "  %s\n    want %s\n    got  %s\n", parse_cases[i].text,
              parse_cases[i].hex, got);
      failed++;
    }
  }
  CHECK_INT_EQ(failed, 0);
}

/* Each result must also be what the decoder accepts. */
TEST(parse_output_decodes) {
  size_t n = sizeof parse_cases / sizeof parse_cases[0];
  for (size_t i = 0; i < n; i++) {
    otpc_buf_t *buf;
    CHECK_INT_EQ(otpc_term_parse(parse_cases[i].text,
                                 strlen(parse_cases[i].text), &buf, NULL),
                 0);
    otpc_buf_t *again;
    CHECK_INT_EQ(otpc_buf_decode(otpc_buf_data(buf), otpc_buf_size(buf), NULL,
                                 &again, NULL),
                 0);
    otpc_buf_unref(again);
    otpc_buf_unref(buf);
  }
}

TEST(parse_large_tuple_and_long_list) {
  char text[2048], want[4096], *w = text;
  *w++ = '{';
  for (int i = 1; i <= 256; i++) w += sprintf(w, i > 1 ? ",%d" : "%d", i);
  strcpy(w, "}");
  char *h = want + sprintf(want, "836900000100");
  for (int i = 1; i <= 255; i++) h += sprintf(h, "61%02X", i);
  strcpy(h, "6200000100");
  CHECK_STR_EQ(parse_str(text), want);

  w = text + sprintf(text, "[7");
  for (int i = 1; i < 300; i++) w += sprintf(w, ",7");
  strcpy(w, "]");
  h = want + sprintf(want, "836B012C");
  for (int i = 0; i < 300; i++) h += sprintf(h, "07");
  CHECK_STR_EQ(parse_str(text), want);
}

TEST(parse_string_limits) {
  /* A byte list of 65535 is a STRING_EXT; longer is a list of integers,
   * as term_to_binary writes it. */
  size_t n = 65536;
  char *text = malloc(n + 3);
  text[0] = '"';
  memset(text + 1, 'x', n);
  text[n + 1] = '"';
  otpc_buf_t *buf;
  CHECK_INT_EQ(otpc_term_parse(text, n + 2, &buf, NULL), 0);
  const uint8_t *d = otpc_buf_data(buf);
  CHECK_INT_EQ(d[1], 108); /* LIST_EXT */
  CHECK_INT_EQ(otpc_buf_size(buf), 1 + 5 + 2 * n + 1);
  otpc_buf_unref(buf);
  text[n] = '"';
  CHECK_INT_EQ(otpc_term_parse(text, n + 1, &buf, NULL), 0);
  CHECK_INT_EQ(otpc_buf_data(buf)[1], 107); /* STRING_EXT */
  otpc_buf_unref(buf);
  free(text);
}

TEST(parse_large_map_reverses_text_order) {
  /* Over 32 pairs Erlang prints a map in the reverse of the order
   * term_to_binary writes it, so text is written backwards (and what
   * Erlang printed comes back as its bytes). Duplicates still collapse
   * with the last value winning. */
  char text[1024], *w = text;
  w += sprintf(w, "#{");
  for (int i = 40; i > 0; i--) w += sprintf(w, "%d=>%d,", i, i);
  sprintf(w, "40=>last}");
  otpc_buf_t *buf;
  CHECK_INT_EQ(otpc_term_parse(text, strlen(text), &buf, NULL), 0);
  otpc_term_t m = otpc_buf_term(buf), k;
  size_t pairs;
  CHECK_INT_EQ(otpc_term_get_map(m, &pairs, &k), 0);
  CHECK_INT_EQ(pairs, 40);
  int v;
  CHECK_INT_EQ(otpc_term_get_int(k, &v), 0);
  CHECK_INT_EQ(v, 40); /* the last pair of the text comes first */
  CHECK(otpc_term_atom_eq(otpc_term_next(k), "last", 4));
  for (size_t i = 0; i + 1 < pairs; i++) k = otpc_term_next(otpc_term_next(k));
  CHECK_INT_EQ(otpc_term_get_int(k, &v), 0);
  CHECK_INT_EQ(v, 39); /* the first 40 was dropped */
  char *printed;
  CHECK_INT_EQ(otpc_term_print(m, &printed, NULL), 0);
  CHECK(strncmp(printed, "#{39 => 39,38 => 38,", 20) == 0);
  otpc_free(printed);
  otpc_buf_unref(buf);
}

typedef struct err_case {
  const char *text;
  const char *want; /* error name @ offset */
} err_case_t;

static const err_case_t err_cases[] = {
    {"", "ESYNTAX@0"},
    {"   % nothing\n", "ESYNTAX@13"},
    {"{a,", "ESYNTAX@3"},
    {"{a b}", "ESYNTAX@3"},
    {"{a,}", "ESYNTAX@3"},
    {"{a}}", "ESYNTAX@3"},
    {"[1,2", "ESYNTAX@4"},
    {"[1|2|3]", "ESYNTAX@4"},
    {"[1|]", "ESYNTAX@3"},
    {"#{a}", "ESYNTAX@3"},
    {"#{a=>}", "ESYNTAX@5"},
    {"#{a=>1,}", "ESYNTAX@7"},
    {"ok ok", "ESYNTAX@3"},
    {"ok..", "ESYNTAX@3"},
    {"'abc", "ESYNTAX@0"},
    {"{x, \"abc}", "ESYNTAX@4"},
    {"1.0e400", "ESYNTAX@0"},
    {"-1.0e400", "ESYNTAX@1"},
    {"16#", "ESYNTAX@3"},
    {"37#1", "ESYNTAX@0"},
    {"1#1", "ESYNTAX@0"},
    {"1e5", "ESYNTAX@1"},
    {"1_", "ESYNTAX@1"},
    {"X", "ESYNTAX@0"},
    {"_", "ESYNTAX@0"},
    {"{~a}", "ESYNTAX@1"},
    {"- a", "ESYNTAX@2"},
    {"$", "ESYNTAX@1"},
    {"'\\x{D800}'", "ESYNTAX@3"},
    {"\"\\x{110000}\"", "ESYNTAX@3"},
    {"'\\xZ1'", "ESYNTAX@3"},
    {"\"\\", "ESYNTAX@2"},
    {"\xff", "ESYNTAX@0"},
    {"a\xff", "ESYNTAX@1"},
    {"'a\xc3'", "ESYNTAX@2"},
    {"<1.2.3>", "ESYNTAX@1"},
    {"<0.1>", "ESYNTAX@0"},
    {"<0.1.2.3>", "ESYNTAX@7"},
    {"<0.1.4294967296>", "ESYNTAX@0"},
    {"#Ref<1.2.3.4>", "ESYNTAX@5"},
    {"#Ref<0.1.2.3.4.5.6>", "ESYNTAX@17"},
    {"#Port<2.3>", "ESYNTAX@6"},
    {"#Fun<a.b>", "ESYNTAX@0"},
    {"#rec{}", "ESYNTAX@0"},
    {"fun a:b/256", "ESYNTAX@8"},
    {"fun a/1", "ESYNTAX@5"},
    {"fun", "ESYNTAX@3"},
    {"<<a>>", "ESYNTAX@2"},
    {"<<1:16777217>>", "ESYNTAX@4"},
    {"<<1:a>>", "ESYNTAX@4"},
    {"<<1,>>", "ESYNTAX@4"},
    {"<<1", "ESYNTAX@3"},
    {"<<\"a\"/utf16>>", "ESYNTAX@6"},
    {"<<\"a\"/>>", "ESYNTAX@6"},
    {"<<1/utf8>>", "ESYNTAX@3"},
    {"=", "ESYNTAX@0"},
    {">", "ESYNTAX@0"},
    {"{a}.b", "ESYNTAX@4"},
};

TEST(parse_errors_and_offsets) {
  size_t n = sizeof err_cases / sizeof err_cases[0];
  int failed = 0;
  for (size_t i = 0; i < n; i++) {
    const char *got = parse_str(err_cases[i].text);
    if (strcmp(got, err_cases[i].want) != 0) {
      fprintf(stderr, "  %s: want %s, got %s\n", err_cases[i].text,
              err_cases[i].want, got);
      failed++;
    }
  }
  CHECK_INT_EQ(failed, 0);
}

static void parse_ok(const char *text, size_t len) {
  otpc_buf_t *buf = NULL;
  CHECK_INT_EQ(otpc_term_parse(text, len, &buf, NULL), 0);
  otpc_buf_unref(buf);
}

TEST(parse_atom_length_limit) {
  char text[600];
  memset(text, 'a', 256);
  parse_ok(text, 255);
  CHECK_STR_EQ(parse_hex(text, 256), "ESYNTAX@0");
  text[0] = '\'';
  memset(text + 1, 'b', 256);
  text[257] = '\'';
  CHECK_STR_EQ(parse_hex(text, 258), "ESYNTAX@0");
  /* 255 characters of two bytes each are one atom; 256 are not. */
  for (int i = 0; i < 256; i++) memcpy(text + 1 + 2 * i, "\xc3\xa9", 2);
  text[511] = '\'';
  parse_ok(text, 512);
  memcpy(text + 511, "\xc3\xa9'", 3);
  CHECK_STR_EQ(parse_hex(text, 514), "ESYNTAX@0");
}

TEST(parse_depth_limit) {
  /* The decoder's default depth parses; one more level is EDEPTH. */
  enum { D = OTPC_TERM_DEFAULT_MAX_DEPTH };
  char *text = malloc(2 * D + 3);
  memset(text, '[', D);
  memset(text + D, ']', D);
  parse_ok(text, 2 * D);
  memset(text, '{', D + 1);
  memset(text + D + 1, '}', D + 1);
  char want[32];
  snprintf(want, sizeof want, "EDEPTH@%d", D);
  CHECK(strncmp(parse_hex(text, 2 * D + 2), want, strlen(want)) == 0);
  free(text);
  /* Deeply nested maps are written without recursing either. */
  char *big = malloc(20000), *w = big;
  for (int i = 0; i < 999; i++) w += sprintf(w, "#{b=>1,a=>");
  w += sprintf(w, "0");
  for (int i = 0; i < 999; i++) *w++ = '}';
  otpc_buf_t *buf;
  CHECK_INT_EQ(otpc_term_parse(big, (size_t)(w - big), &buf, NULL), 0);
  otpc_term_t k;
  size_t pairs;
  CHECK_INT_EQ(otpc_term_get_map(otpc_buf_term(buf), &pairs, &k), 0);
  CHECK(otpc_term_atom_eq(k, "a", 1)); /* in key order */
  otpc_buf_unref(buf);
  free(big);
}

TEST(parse_into_builder) {
  otpc_builder_t b;
  otpc_builder_init(&b);
  CHECK_INT_EQ(otpc_build_tuple(&b, 2), 0);
  CHECK_INT_EQ(otpc_build_parse(&b, "[1, 2]", 6, NULL), 0);
  CHECK_INT_EQ(otpc_build_parse(&b, "x.", 2, NULL), 0);
  int rc;
  otpc_buf_t *buf = otpc_builder_finish(&b, &rc);
  CHECK(buf != NULL);
  char hex[64];
  to_hex(otpc_buf_data(buf), otpc_buf_size(buf), hex);
  CHECK_STR_EQ(hex,
               "8368026B000201027701"
               "78");
  otpc_buf_unref(buf);

  /* A bad text is a sticky error on the builder. */
  otpc_builder_init(&b);
  size_t pos = 99;
  CHECK_INT_EQ(otpc_build_parse(&b, "{a,,}", 5, &pos), OTPC_ESYNTAX);
  CHECK_INT_EQ(pos, 3);
  CHECK_INT_EQ(otpc_build_atom(&b, "ok"), OTPC_ESYNTAX);
  CHECK(otpc_builder_finish(&b, &rc) == NULL);
  CHECK_INT_EQ(rc, OTPC_ESYNTAX);
}

TEST(parse_text_with_nul_and_length) {
  /* The length is what counts, not a NUL. */
  CHECK_STR_EQ(parse_hex("okay", 2), "8377026F6B");
  CHECK_STR_EQ(parse_hex("\"a\0b\"", 5), "836B0003610062");
  CHECK_STR_EQ(parse_hex("'a\0'", 4), "8377026100"); /* as '\000' */
}

TEST(parse_fun_of_reserved_word_module) {
  /* erl: io_lib:format("~w", [fun 'fun':'fun'/2]) gives "fun fun:fun/2". */
  otpc_buf_t *buf;
  CHECK_INT_EQ(otpc_term_parse("fun fun:fun/2", 13, &buf, NULL), 0);
  otpc_atom_t m, f;
  unsigned arity;
  CHECK_INT_EQ(otpc_term_get_export(otpc_buf_term(buf), &m, &f, &arity), 0);
  CHECK(m == otpc_atom("fun") && f == otpc_atom("fun") && arity == 2);
  char *text;
  CHECK_INT_EQ(otpc_term_print(otpc_buf_term(buf), &text, NULL), 0);
  CHECK_STR_EQ(text, "fun fun:fun/2");
  otpc_free(text);
  otpc_buf_unref(buf);
}
