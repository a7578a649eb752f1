/*
 * otpc.c: the otpc command line tool. One subcommand per job; it grows
 * with each layer of the library.
 *
 *   otpc term decode     ETF on stdin -> Erlang text on stdout (as ~w)
 *   otpc term encode     Erlang text on stdin -> ETF on stdout
 *   otpc node ...        run a node (otpc_node.c)
 *   otpc load ...        load a module on a running node (otpc_node.c)
 *   otpc heart ...       run a node under a watchdog (heart.c)
 *   otpc demo            a short tour of the term library
 *   otpc names|ping|rpc  distribution (dist_cmds.c)
 *   otpc version
 *
 * Errors go to stderr and the exit status is 1 (2 for a usage error).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist_cmds.h"
#include "heart.h"
#include "otpc.h"
#include "otpc_cmds.h"

static const char usage[] =
    "usage: otpc <command> [options]\n"
    "\n"
    "commands:\n"
    "  term decode [--hex]          read ETF (as term_to_binary/1 writes it)\n"
    "                               from stdin, print it as io:format(\"~w~n\")\n"
    "  term encode [--compressed]   read one Erlang term (ending with '.')\n"
    "                               from stdin, write its ETF to stdout\n"
    "  node --name NAME@HOST [--cookie C] [--config sys.config]\n"
    "       [--load mod.so ...] [--app APP ...]\n"
    "                               run a node: load the modules, start the\n"
    "                               applications; SIGTERM stops them, exit 0\n"
    "  load NODE@HOST mod.so [--cookie C] [--name N] [--purge]\n"
    "                               load or upgrade a module on a running node\n"
    "  heart [--timeout S] [--cmd C] -- PROGRAM [ARGS...]\n"
    "                               run PROGRAM (a node) under a watchdog:\n"
    "                               hung or dead, it is restarted with C\n"
    "                               (docs/heart.md)\n"
    "  demo                         a short tour of the term library\n"
    "  version                      print the version\n";

/* Reads all of f into a new buffer; NULL with errno on failure. */
static char *read_all(FILE *f, size_t *len) {
  size_t cap = 65536, n = 0;
  char *buf = malloc(cap + 1);
  if (buf == NULL) return NULL;
  for (;;) {
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (n < cap) break;
    char *bigger = cap > ((size_t)1 << 34) ? NULL : realloc(buf, cap * 2 + 1);
    if (bigger == NULL) {
      free(buf);
      errno = ENOMEM;
      return NULL;
    }
    buf = bigger;
    cap *= 2;
  }
  if (ferror(f)) {
    free(buf);
    return NULL;
  }
  buf[n] = '\0';
  *len = n;
  return buf;
}

/* "--hex": the input is hex digits (whitespace allowed), as people paste. */
static int unhex(char *s, size_t *len) {
  size_t out = 0;
  int half = -1;
  for (size_t i = 0; i < *len; i++) {
    char c = s[i];
    int v = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                   : -1;
    if (v < 0) {
      if (c == ' ' || c == '\n' || c == '\t' || c == '\r') continue;
      return -1;
    }
    if (half < 0) {
      half = v;
    } else {
      s[out++] = (char)(half << 4 | v);
      half = -1;
    }
  }
  if (half >= 0) return -1;
  *len = out;
  return 0;
}

static int term_decode(int argc, char **argv) {
  int hex = argc > 0 && strcmp(argv[0], "--hex") == 0;
  size_t len;
  char *data = read_all(stdin, &len);
  if (data == NULL) {
    fprintf(stderr, "otpc term decode: reading stdin: %s\n", strerror(errno));
    return 1;
  }
  if (hex && unhex(data, &len) != 0) {
    fprintf(stderr, "otpc term decode: input is not hex\n");
    free(data);
    return 1;
  }
  otpc_term_t t;
  otpc_buf_t *owned;
  otpc_decode_error_t err;
  int rc = otpc_term_decode(data, len, NULL, &t, &owned, &err);
  if (rc != 0) {
    fprintf(stderr, "otpc term decode: %s at byte %zu: %s\n",
            otpc_err_name(rc), err.offset, otpc_strerror(rc));
    free(data);
    return 1;
  }
  char *text;
  size_t tlen;
  rc = otpc_term_print(t, &text, &tlen);
  if (rc == 0) {
    fwrite(text, 1, tlen, stdout);
    fputc('\n', stdout);
    otpc_free(text);
  } else {
    fprintf(stderr, "otpc term decode: %s\n", otpc_strerror(rc));
  }
  otpc_buf_unref(owned);
  free(data);
  return rc == 0 && fflush(stdout) == 0 ? 0 : 1;
}

/* Line and column of a byte offset, for error messages. */
static void position(const char *text, size_t off, size_t *line, size_t *col) {
  *line = 1;
  *col = 1;
  for (size_t i = 0; i < off && text[i]; i++) {
    if (text[i] == '\n') {
      (*line)++;
      *col = 1;
    } else {
      (*col)++;
    }
  }
}

static int term_encode(int argc, char **argv) {
  int compressed = argc > 0 && strcmp(argv[0], "--compressed") == 0;
  size_t len;
  char *text = read_all(stdin, &len);
  if (text == NULL) {
    fprintf(stderr, "otpc term encode: reading stdin: %s\n", strerror(errno));
    return 1;
  }
  otpc_buf_t *buf;
  size_t errpos = 0;
  int rc = otpc_term_parse(text, len, &buf, &errpos);
  if (rc != 0) {
    size_t line, col;
    position(text, errpos, &line, &col);
    fprintf(stderr, "otpc term encode: %s at line %zu, column %zu: %s\n",
            otpc_err_name(rc), line, col, otpc_strerror(rc));
    free(text);
    return 1;
  }
  free(text);
  if (compressed) {
    otpc_buf_t *z;
    rc = otpc_term_compress(otpc_buf_term(buf), -1, &z);
    otpc_buf_unref(buf);
    if (rc != 0) {
      fprintf(stderr, "otpc term encode: %s\n", otpc_strerror(rc));
      return 1;
    }
    buf = z;
  }
  size_t n = otpc_buf_size(buf);
  int ok = fwrite(otpc_buf_data(buf), 1, n, stdout) == n && fflush(stdout) == 0;
  otpc_buf_unref(buf);
  if (!ok) fprintf(stderr, "otpc term encode: writing: %s\n", strerror(errno));
  return ok ? 0 : 1;
}

static void show(const char *label, otpc_term_t t) {
  char *text;
  if (otpc_term_print(t, &text, NULL) != 0) return;
  printf("  %-26s %s\n", label, text);
  otpc_free(text);
}

static int demo(void) {
  printf("otpc %s: Erlang terms in C\n\n", OTPC_VERSION_STRING);

  /* Build a message the way a gen_server call carries it. */
  otpc_pid_t self = {OTPC_ATOM_NONODE, 83, 0, 0};
  otpc_buf_t *msg = otpc_term_fmt("{'$gen_call', {~p, ~i}, {get, ~a, ~s}}",
                                  &self, 42, "user", "alice");
  if (msg == NULL) {
    fprintf(stderr, "otpc demo: building the message failed\n");
    return 1;
  }
  otpc_term_t t = otpc_buf_term(msg);
  printf("1. built from a format string:\n");
  show("term:", t);
  printf("  %-26s", "ETF bytes:");
  for (size_t i = 0; i < otpc_buf_size(msg); i++)
    printf(" %u", otpc_buf_data(msg)[i]);
  printf("\n\n");

  /* Match it against a compiled pattern: the reply-to pid and the key. */
  otpc_pattern_t *p;
  if (otpc_pattern_compile("{'$gen_call', {~p, _}, {get, ~a, ~t}}", &p,
                           NULL) != 0) {
    fprintf(stderr, "otpc demo: pattern failed\n");
    otpc_buf_unref(msg);
    return 1;
  }
  otpc_pid_t from;
  otpc_atom_t table;
  otpc_term_t key;
  printf("2. matched against {'$gen_call', {~p, _}, {get, ~a, ~t}}:\n");
  if (otpc_match(p, t, &from, &table, &key) == 1) {
    printf("  %-26s <0.%u.%u>\n", "~p (from):", from.id, from.serial);
    printf("  %-26s %s\n", "~a (table):", otpc_atom_name(table, NULL));
    show("~t (key):", key);
  }
  otpc_pattern_free(p);

  /* Erlang's hash and order, identical to the BEAM's. */
  printf("\n3. Erlang's own hash and order:\n");
  printf("  %-26s %u\n", "erlang:phash2(Key):", otpc_phash2(key));
  otpc_buf_t *a = otpc_term_fmt("1"), *b = otpc_term_fmt("1.0"),
             *c = otpc_term_fmt("one");
  if (a && b && c) {
    printf("  %-26s %s\n", "1 == 1.0:",
           otpc_term_compare(otpc_buf_term(a), otpc_buf_term(b)) == 0 ? "true"
                                                                      : "false");
    printf("  %-26s %s\n", "1 =:= 1.0:",
           otpc_term_equal(otpc_buf_term(a), otpc_buf_term(b)) ? "true"
                                                               : "false");
    printf("  %-26s %s\n", "1.0 < one:",
           otpc_term_compare(otpc_buf_term(b), otpc_buf_term(c)) < 0 ? "true"
                                                                     : "false");
  }
  otpc_buf_unref(a);
  otpc_buf_unref(b);
  otpc_buf_unref(c);

  printf("\n4. bad input is an error with a position, never a crash:\n");
  static const uint8_t bad[] = {131, 104, 3, 97, 1, 108, 255, 255, 255, 255};
  otpc_term_t bt;
  otpc_buf_t *owned;
  otpc_decode_error_t err;
  int rc = otpc_term_decode(bad, sizeof bad, NULL, &bt, &owned, &err);
  printf("  %-26s %s at byte %zu (%s)\n", "decode:", otpc_err_name(rc),
         err.offset, otpc_strerror(rc));

  printf("\nTry: echo '{hello, [1,2,3], <<\"bin\">>}.' | otpc term encode |"
         " otpc term decode\n");
  otpc_buf_unref(msg);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "term") == 0) {
    if (strcmp(argv[2], "decode") == 0) return term_decode(argc - 3, argv + 3);
    if (strcmp(argv[2], "encode") == 0) return term_encode(argc - 3, argv + 3);
  } else if (argc >= 2 && strcmp(argv[1], "node") == 0) {
    return otpc_cmd_node(argc - 2, argv + 2);
  } else if (argc >= 2 && strcmp(argv[1], "load") == 0) {
    return otpc_cmd_load(argc - 2, argv + 2);
  } else if (argc >= 2 && strcmp(argv[1], "heart") == 0) {
    return otpc__tool_heart(argc - 2, argv + 2);
  } else if (argc == 2 && strcmp(argv[1], "demo") == 0) {
    return demo();
  } else if (argc == 2 && strcmp(argv[1], "version") == 0) {
    printf("otpc %s\n", OTPC_VERSION_STRING);
    return 0;
  } else if (argc >= 2 && strcmp(argv[1], "names") == 0) {
    return otpc__tool_names(argc - 2, argv + 2);
  } else if (argc >= 2 && strcmp(argv[1], "ping") == 0) {
    return otpc__tool_ping(argc - 2, argv + 2);
  } else if (argc >= 2 && strcmp(argv[1], "rpc") == 0) {
    return otpc__tool_rpc(argc - 2, argv + 2);
  } else if (argc == 2 && (strcmp(argv[1], "help") == 0 ||
                           strcmp(argv[1], "--help") == 0)) {
    fputs(usage, stdout);
    fputs(otpc__dist_usage, stdout);
    return 0;
  }
  fputs(usage, stderr);
  fputs(otpc__dist_usage, stderr);
  return 2;
}
