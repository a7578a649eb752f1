/*
 * fuzz_dist_frame.c: libFuzzer harness for distribution frames. The input
 * is a run of frames, each a 2-byte length and a body (as after the
 * 4-byte length on the wire), fed to one connection's receive state, so
 * the atom cache and fragment sequences carry over from frame to frame.
 * Whatever is accepted is read back: the control tuple and the payload
 * must be checked ETF that prints and compares.
 */
#include <stdlib.h>
#include <string.h>

#include "dist/dist_int.h"
#include "otpc.h"

static void touch(otpc_buf_t *b) {
  if (b == NULL) return;
  otpc_term_t t = otpc_buf_term(b);
  if (otpc_term_is_none(t)) __builtin_trap();
  char *text;
  if (otpc_term_print(t, &text, NULL) == 0) otpc_free(text);
  if (otpc_term_compare(t, t) != 0) __builtin_trap();
  /* the bytes are valid ETF by themselves */
  if (otpc_term_validate(otpc_buf_data(b) + 1, otpc_buf_size(b) - 1, NULL,
                         NULL) != (long)otpc_buf_size(b) - 1)
    __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static otpc__rx_t *rx;
  if (rx == NULL) rx = malloc(sizeof *rx);
  otpc__rx_init(rx);
  size_t at = 0;
  while (size - at >= 2) {
    size_t n = (size_t)data[at] << 8 | data[at + 1];
    at += 2;
    if (n > size - at) n = size - at;
    otpc__dmsg_t m;
    char why[128];
    int rc = otpc__rx_frame(rx, data + at, n, &m, why, sizeof why);
    at += n;
    if (rc < 0) break; /* the connection would close here */
    if (rc == 1) {
      touch(m.ctrl);
      touch(m.payload);
      otpc__dmsg_clear(&m);
    }
  }
  otpc__rx_free(rx);
  return 0;
}
