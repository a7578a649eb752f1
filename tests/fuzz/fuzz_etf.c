/*
 * fuzz_etf.c: libFuzzer harness for the ETF decoder. Any bytes go to
 * otpc_term_decode(); whatever it accepts is then read by every reader
 * (print, compare, hash, re-encode, match), which must stay inside the
 * checked bytes and agree with themselves.
 */
#include <stdlib.h>
#include <string.h>

#include "otpc.h"

static otpc_pattern_t *patterns[3];

static void init_patterns(void) {
  static const char *texts[] = {"{~a, ~t}", "{get, ~p, _}", "[~i | ~t]"};
  for (int i = 0; i < 3; i++)
    if (otpc_pattern_compile(texts[i], &patterns[i], NULL) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (patterns[0] == NULL) init_patterns();
  otpc_decode_opts_t opts = {200, 1 << 20};
  otpc_term_t t;
  otpc_buf_t *owned;
  if (otpc_term_decode(data, size, &opts, &t, &owned, NULL) != 0) return 0;

  char *text;
  size_t len;
  if (otpc_term_print(t, &text, &len) == 0) {
    /* What we print parses back to a term that prints the same. (Not
     * always an equal term: as in Erlang, the text of a pid loses its
     * node's creation, and other nodes' identifiers do not parse.) */
    otpc_buf_t *back;
    if (otpc_term_parse(text, len, &back, NULL) == 0) {
      char *again;
      size_t alen;
      if (otpc_term_print(otpc_buf_term(back), &again, &alen) != 0) abort();
      if (alen != len || memcmp(again, text, len) != 0) abort();
      otpc_free(again);
      otpc_buf_unref(back);
    }
    otpc_free(text);
  }
  /* The same for ~0tp's text (strings and printable binaries as text). */
  if (otpc_term_print_p(t, &text, &len) == 0) {
    otpc_buf_t *back;
    if (otpc_term_parse(text, len, &back, NULL) == 0) {
      char *again;
      size_t alen;
      if (otpc_term_print_p(otpc_buf_term(back), &again, &alen) != 0) abort();
      if (alen != len || memcmp(again, text, len) != 0) abort();
      otpc_free(again);
      otpc_buf_unref(back);
    }
    otpc_free(text);
  }
  if (otpc_term_compare(t, t) != 0 || !otpc_term_equal(t, t)) abort();
  (void)otpc_phash2(t);
  (void)otpc_phash2_range(t, 1000);

  otpc_builder_t b;
  otpc_builder_init(&b);
  otpc_build_term(&b, t);
  int rc;
  otpc_buf_t *copy = otpc_builder_finish(&b, &rc);
  if (copy == NULL) abort();
  if (otpc_phash2(otpc_buf_term(copy)) != otpc_phash2(t)) abort();
  otpc_buf_unref(copy);

  otpc_term_t bind1;
  otpc_atom_t a;
  otpc_pid_t pid;
  int i;
  otpc_match(patterns[0], t, &a, &bind1);
  otpc_match(patterns[1], t, &pid);
  otpc_match(patterns[2], t, &i, &bind1);
  otpc_buf_unref(owned);
  return 0;
}
