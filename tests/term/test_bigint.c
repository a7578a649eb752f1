/*
 * test_bigint.c: otpc__big_to_decimal() and otpc__big_muladd(), checked
 * against decimal arithmetic done the slow, obvious way on digit strings.
 */
#include <stdlib.h>

#include "term/term_int.h"
#include "test.h"

static char *to_decimal(const uint8_t *mag, size_t n) {
  otpc__sbuf_t s;
  otpc__sbuf_init(&s);
  otpc__big_to_decimal(mag, n, &s);
  CHECK_INT_EQ(s.err, 0);
  CHECK(s.data != NULL);
  return s.data; /* NUL-terminated by the sbuf */
}

static void check_decimal(const uint8_t *mag, size_t n, const char *want) {
  char *got = to_decimal(mag, n);
  CHECK_STR_EQ(got, want);
  otpc__free(got);
}

/* Decimal digit string times two, in place (the slow, obvious way). */
static void dec_double(char *d) {
  size_t n = strlen(d);
  int carry = 0;
  for (size_t i = n; i-- > 0;) {
    int v = (d[i] - '0') * 2 + carry;
    d[i] = (char)('0' + v % 10);
    carry = v / 10;
  }
  if (carry) {
    memmove(d + 1, d, n + 1);
    d[0] = (char)('0' + carry);
  }
}

TEST(big_to_decimal_small_values) {
  check_decimal(NULL, 0, "0");
  check_decimal((const uint8_t *)"\x00\x00", 2, "0"); /* high zeros */
  check_decimal((const uint8_t *)"\x01", 1, "1");
  check_decimal((const uint8_t *)"\xff", 1, "255");
  check_decimal((const uint8_t *)"\x00\x01", 2, "256");
  check_decimal((const uint8_t *)"\x00\xca\x9a\x3b", 4, "1000000000");
  check_decimal((const uint8_t *)"\xff\xc9\x9a\x3b", 4, "999999999");
  uint8_t ff[9];
  memset(ff, 0xff, 8);
  check_decimal(ff, 8, "18446744073709551615");
  memset(ff, 0, 8);
  ff[8] = 1;
  check_decimal(ff, 9, "18446744073709551616");
  ff[0] = 1;
  ff[8] = 0; /* 9 bytes with a high zero: still the small path's value */
  check_decimal(ff, 9, "1");
}

TEST(big_to_decimal_powers_of_two) {
  /* 2^k for every k up to 4000: all limb and chunk boundaries. */
  char *want = calloc(1300, 1);
  uint8_t mag[501];
  want[0] = '1';
  for (int k = 0; k <= 4000; k++) {
    memset(mag, 0, sizeof mag);
    mag[k / 8] = (uint8_t)(1u << (k % 8));
    char *got = to_decimal(mag, (size_t)k / 8 + 1);
    if (strcmp(got, want) != 0)
      otpc_test_fail(__FILE__, __LINE__, "2^%d: %s != %s", k, got, want);
    otpc__free(got);
    dec_double(want);
  }
  free(want);
}

TEST(big_muladd_builds_powers_of_ten) {
  /* 10^k by repeated *10, then back to text: "1" and k zeros. Crosses
   * every 9-digit chunk boundary of the conversion. */
  uint8_t mag[200] = {1};
  long n = 1;
  char want[500] = "1";
  for (int k = 1; k <= 450; k++) {
    n = otpc__big_muladd(mag, (size_t)n, sizeof mag, 10, 0);
    CHECK(n > 0);
    want[k] = '0';
    want[k + 1] = '\0';
    char *got = to_decimal(mag, (size_t)n);
    CHECK_STR_EQ(got, want);
    otpc__free(got);
  }
}

TEST(big_muladd_round_trips_digit_strings) {
  /* Pseudo-random digit strings, parsed a digit at a time and nine digits
   * at a time (mul 10^9), both printed back. */
  uint32_t seed = 12345;
  char digits[3001];
  uint8_t a[1300], b[1300];
  for (int round = 0; round < 40; round++) {
    size_t len = 1 + (size_t)(round * 75);
    for (size_t i = 0; i < len; i++) {
      seed = seed * 1103515245u + 12345u;
      digits[i] = (char)('0' + (seed >> 16) % 10);
    }
    if (digits[0] == '0') digits[0] = '7';
    digits[len] = '\0';
    long na = 0, nb = 0;
    for (size_t i = 0; i < len; i++)
      na = otpc__big_muladd(a, (size_t)na, sizeof a, 10,
                            (uint32_t)(digits[i] - '0'));
    for (size_t i = 0; i < len;) {
      size_t take = len - i < 9 ? len - i : 9;
      uint32_t mul = 1, add = 0;
      for (size_t j = 0; j < take; j++, i++) {
        mul *= 10;
        add = add * 10 + (uint32_t)(digits[i] - '0');
      }
      nb = otpc__big_muladd(b, (size_t)nb, sizeof b, mul, add);
    }
    CHECK(na > 0);
    CHECK_INT_EQ(na, nb);
    CHECK(memcmp(a, b, (size_t)na) == 0);
    CHECK(a[na - 1] != 0);
    char *got = to_decimal(a, (size_t)na);
    CHECK_STR_EQ(got, digits);
    otpc__free(got);
  }
}

TEST(big_muladd_edges) {
  uint8_t m[4] = {0};
  /* From nothing: 0 * x + 5. */
  CHECK_INT_EQ(otpc__big_muladd(m, 0, sizeof m, 10, 5), 1);
  CHECK_INT_EQ(m[0], 5);
  /* Zero stays empty. */
  CHECK_INT_EQ(otpc__big_muladd(m, 0, sizeof m, 10, 0), 0);
  /* Multiplying by zero drops to nothing. */
  m[0] = 9;
  CHECK_INT_EQ(otpc__big_muladd(m, 1, sizeof m, 0, 0), 0);
  /* 0xffffffff * 0xffffffff + 0xffffffff = 0xffffffff00000000: 8 bytes. */
  memset(m, 0xff, 4);
  CHECK_INT_EQ(otpc__big_muladd(m, 4, sizeof m, 0xffffffffu, 0xffffffffu), -1);
  uint8_t w[8] = {0xff, 0xff, 0xff, 0xff};
  CHECK_INT_EQ(otpc__big_muladd(w, 4, sizeof w, 0xffffffffu, 0xffffffffu), 8);
  static const uint8_t want[8] = {0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
  CHECK(memcmp(w, want, 8) == 0);
  /* Exactly at capacity is fine; one byte more is not. */
  uint8_t c[2] = {0xff, 0};
  CHECK_INT_EQ(otpc__big_muladd(c, 1, 2, 256, 0), 2);
  CHECK_INT_EQ(otpc__big_muladd(c, 2, 2, 256, 0), -1);
}

TEST(big_to_decimal_is_fast_for_long_numbers) {
  /* 2^100000 - 1: 30103 digits. Quadratic, but in limbs of 9 digits. */
  size_t n = 12500;
  uint8_t *mag = malloc(n);
  memset(mag, 0xff, n);
  char *got = to_decimal(mag, n);
  CHECK_INT_EQ(strlen(got), 30103);
  CHECK(strncmp(got, "9990020930143845079440327643300335909804291390541816",
                52) == 0);
  CHECK_STR_EQ(got + strlen(got) - 6, "109375"); /* 2^100000 ends ...109376 */
  otpc__free(got);
  free(mag);
}
