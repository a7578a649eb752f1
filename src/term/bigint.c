/*
 * bigint.c: the little arithmetic the term layer needs on integers of any
 * size, held as little-endian byte magnitudes (the way ETF's SMALL_BIG and
 * LARGE_BIG store them): turning one into decimal text for the printer, and
 * mag = mag * mul + add for the parser, which builds magnitudes digit by
 * digit (or nine decimal digits at a time, with mul = 10^9).
 *
 * Decimal conversion works on 32-bit limbs and peels off nine digits per
 * pass by dividing the whole number by 10^9, so a number of d digits costs
 * about (d/9)^2/2 limb divisions: a few milliseconds for 10^5 digits.
 */
#include "term_int.h"

#define CHUNK 1000000000u /* 10^9: nine decimal digits per limb division */

/* Divides limbs[0..n) (little-endian) by CHUNK in place; returns the
 * remainder. */
static uint32_t limbs_divmod_chunk(uint32_t *limbs, size_t n) {
  uint64_t rem = 0;
  for (size_t i = n; i-- > 0;) {
    uint64_t cur = (rem << 32) | limbs[i];
    limbs[i] = (uint32_t)(cur / CHUNK);
    rem = cur % CHUNK;
  }
  return (uint32_t)rem;
}

/* Packs little-endian bytes into little-endian 32-bit limbs. */
static void bytes_to_limbs(const uint8_t *mag, size_t n, uint32_t *limbs) {
  size_t nl = (n + 3) / 4;
  for (size_t i = 0; i < nl; i++) limbs[i] = 0;
  for (size_t i = 0; i < n; i++)
    limbs[i / 4] |= (uint32_t)mag[i] << (8 * (i % 4));
}

/* Writes the digits of v ending just before end, zero-padded to nine
 * when pad; returns where they start. */
static char *put_chunk(char *end, uint32_t v, bool pad) {
  int i = 0;
  do {
    *--end = (char)('0' + v % 10);
    v /= 10;
    i++;
  } while (v != 0 || (pad && i < 9));
  return end;
}

/* Magnitudes that fit 64 bits: no allocation. */
static void small_to_decimal(const uint8_t *mag, size_t n, otpc__sbuf_t *s) {
  uint64_t v = 0;
  for (size_t i = n; i-- > 0;) v = (v << 8) | mag[i];
  char buf[24], *end = buf + sizeof buf, *p = end;
  do {
    *--p = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  otpc__sbuf_put(s, p, (size_t)(end - p));
}

void otpc__big_to_decimal(const uint8_t *mag, size_t n, otpc__sbuf_t *s) {
  while (n > 0 && mag[n - 1] == 0) n--;
  if (n <= 8) {
    small_to_decimal(mag, n, s);
    return;
  }
  size_t nl = (n + 3) / 4;
  /* Each 32-bit limb gives at most 9.64 digits: 10 per limb is enough. */
  size_t ndig = nl * 10 + 9;
  uint32_t *limbs = otpc__malloc(nl * sizeof *limbs);
  char *digits = otpc__malloc(ndig);
  if (limbs == NULL || digits == NULL) {
    otpc__free(limbs);
    otpc__free(digits);
    s->err = OTPC_ENOMEM;
    return;
  }
  bytes_to_limbs(mag, n, limbs);
  char *end = digits + ndig, *p = end;
  while (nl > 0) {
    uint32_t chunk = limbs_divmod_chunk(limbs, nl);
    while (nl > 0 && limbs[nl - 1] == 0) nl--;
    p = put_chunk(p, chunk, nl > 0);
  }
  otpc__sbuf_put(s, p, (size_t)(end - p));
  otpc__free(limbs);
  otpc__free(digits);
}

long otpc__big_muladd(uint8_t *mag, size_t n, size_t cap, uint32_t mul,
                      uint32_t add) {
  uint64_t carry = add;
  for (size_t i = 0; i < n; i++) {
    uint64_t t = (uint64_t)mag[i] * mul + carry;
    mag[i] = (uint8_t)t;
    carry = t >> 8;
  }
  while (carry != 0) {
    if (n >= cap) return -1;
    mag[n++] = (uint8_t)carry;
    carry >>= 8;
  }
  while (n > 0 && mag[n - 1] == 0) n--;
  return (long)n;
}
