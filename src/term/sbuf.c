/*
 * sbuf.c: the growable byte string the printer and the parser write into.
 * Out of memory is sticky: after it, writes are dropped and err is set.
 */
#include <stdarg.h>
#include <stdio.h>

#include "term_int.h"

void otpc__sbuf_init(otpc__sbuf_t *s) {
  s->data = NULL;
  s->len = 0;
  s->cap = 0;
  s->err = 0;
}

void otpc__sbuf_free(otpc__sbuf_t *s) {
  otpc__free(s->data);
  otpc__sbuf_init(s);
}

int otpc__sbuf_reserve(otpc__sbuf_t *s, size_t more) {
  if (s->err) return s->err;
  if (s->cap - s->len > more) return 0; /* keep room for a NUL */
  size_t cap = s->cap ? s->cap : 64;
  while (cap - s->len <= more) {
    if (cap > ((size_t)-1) / 2) return s->err = OTPC_ENOMEM;
    cap *= 2;
  }
  char *p = otpc__realloc(s->data, cap);
  if (p == NULL) return s->err = OTPC_ENOMEM;
  s->data = p;
  s->cap = cap;
  return 0;
}

void otpc__sbuf_put(otpc__sbuf_t *s, const void *data, size_t len) {
  if (otpc__sbuf_reserve(s, len) != 0) return;
  memcpy(s->data + s->len, data, len);
  s->len += len;
  s->data[s->len] = '\0';
}

void otpc__sbuf_putc(otpc__sbuf_t *s, char c) {
  if (otpc__sbuf_reserve(s, 1) != 0) return;
  s->data[s->len++] = c;
  s->data[s->len] = '\0';
}

void otpc__sbuf_puts(otpc__sbuf_t *s, const char *str) {
  otpc__sbuf_put(s, str, strlen(str));
}

void otpc__sbuf_printf(otpc__sbuf_t *s, const char *fmt, ...) {
  char small[128];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof small) {
    otpc__sbuf_put(s, small, (size_t)n);
    return;
  }
  if (otpc__sbuf_reserve(s, (size_t)n) != 0) return;
  va_start(ap, fmt);
  vsnprintf(s->data + s->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  s->len += (size_t)n;
}
