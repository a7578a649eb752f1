/*
 * fuzz_text.c: libFuzzer harness for the Erlang term text parser and the
 * pattern compiler. Whatever parses must be valid ETF that prints and
 * parses back to an equal term.
 */
#include <stdlib.h>
#include <string.h>

#include "otpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  memcpy(text, data, size);
  text[size] = '\0';

  otpc_buf_t *buf;
  size_t errpos;
  if (otpc_term_parse(text, size, &buf, &errpos) == 0) {
    const uint8_t *d = otpc_buf_data(buf);
    if (otpc_term_validate(d + 1, otpc_buf_size(buf) - 1, NULL, NULL) !=
        (long)otpc_buf_size(buf) - 1)
      abort();
    char *out;
    size_t len;
    if (otpc_term_print(otpc_buf_term(buf), &out, &len) == 0) {
      otpc_buf_t *back;
      if (otpc_term_parse(out, len, &back, NULL) != 0) abort();
      if (!otpc_term_equal(otpc_buf_term(back), otpc_buf_term(buf))) abort();
      otpc_buf_unref(back);
      otpc_free(out);
    }
    otpc_buf_unref(buf);
  } else if (errpos > size) {
    abort();
  }

  otpc_pattern_t *p;
  if (otpc_pattern_compile(text, &p, &errpos) == 0) otpc_pattern_free(p);
  free(text);
  return 0;
}
