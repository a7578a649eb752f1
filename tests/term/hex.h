/*
 * hex.h: hex text to bytes and back, for the term tests, whose expected
 * ETF is captured from Erlang as hex.
 */
#ifndef OTPC_TEST_HEX_H
#define OTPC_TEST_HEX_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Bytes of hex (two digits each) into out; returns how many. */
static inline size_t unhex(const char *hex, uint8_t *out) {
  size_t n = strlen(hex) / 2;
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    sscanf(hex + 2 * i, "%2x", &v);
    out[i] = (uint8_t)v;
  }
  return n;
}

/* n bytes as upper-case hex into out (2n + 1 chars). */
static inline void to_hex(const uint8_t *d, size_t n, char *out) {
  static const char digits[] = "0123456789ABCDEF";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[d[i] >> 4];
    out[2 * i + 1] = digits[d[i] & 15];
  }
  out[2 * n] = 0;
}

#endif
