/*
 * app_config.c: the node's application registry (the specs registered
 * with otpc_app_register, Erlang's .app files on the code path) and its
 * boot configuration (sys.config files and erl-style command line
 * arguments). The application controller reads both when it loads an
 * application; see app_int.h.
 *
 * Everything here is guarded by `lock` and may be used from any thread.
 * Configuration is all or nothing: a file or a command line is read and
 * checked completely into a private list first, and only then appended
 * to the kept values under the lock, so an error leaves nothing behind.
 *
 * Kept values are two lists of {App, Key, Value}: those from files and
 * those from command lines. Loading an application applies its spec
 * defaults, then the file values, then the command line values, each in
 * the order given, which is Erlang's precedence.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../base/base_int.h"
#include "app_int.h"

#define MAX_CONFIG_BYTES ((size_t)64 << 20)
#define MAX_PATH_BYTES 4096

typedef struct conf {
  otpc_atom_t app, key;
  otpc_buf_t *val;
} conf_t;

typedef struct confs {
  conf_t *v;
  size_t n, cap;
} confs_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* guards: */
static otpc__app_entry_t *reg;                           /* the registry */
static size_t nreg, reg_cap;
static confs_t file_conf; /* values from sys.config files, in order */
static confs_t args_conf; /* values from command lines, in order */

/* ------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------ */

static otpc_buf_t *copy_term(otpc_term_t t) {
  otpc_builder_t b;
  otpc_builder_init(&b);
  otpc_build_term(&b, t);
  return otpc_builder_finish(&b, NULL);
}

static int confs_push(confs_t *c, otpc_atom_t app, otpc_atom_t key,
                      otpc_term_t val) {
  if (c->n == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 16;
    conf_t *v = otpc__realloc(c->v, cap * sizeof *v);
    if (v == NULL) return OTPC_ENOMEM;
    c->v = v;
    c->cap = cap;
  }
  otpc_buf_t *b = copy_term(val);
  if (b == NULL) return OTPC_ENOMEM;
  c->v[c->n++] = (conf_t){app, key, b};
  return 0;
}

static void confs_free(confs_t *c) {
  for (size_t i = 0; i < c->n; i++) otpc_buf_unref(c->v[i].val);
  otpc__free(c->v);
  memset(c, 0, sizeof *c);
}

/* Moves every value of from to the end of to (under the lock); from is
 * emptied either way. */
static int confs_move(confs_t *to, confs_t *from) {
  if (from->n == 0) return 0;
  if (to->cap - to->n < from->n) {
    size_t cap = to->n + from->n;
    conf_t *v = otpc__realloc(to->v, cap * sizeof *v);
    if (v == NULL) return OTPC_ENOMEM;
    to->v = v;
    to->cap = cap;
  }
  memcpy(to->v + to->n, from->v, from->n * sizeof *from->v);
  to->n += from->n;
  otpc__free(from->v);
  memset(from, 0, sizeof *from);
  return 0;
}

static int fail(otpc_app_config_error_t *err, int rc, int line, int column,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int fail(otpc_app_config_error_t *err, int rc, int line, int column,
                const char *fmt, ...) {
  if (err == NULL) return rc;
  err->line = line;
  err->column = column;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
  return rc;
}

/* A term for a message, cut short with "..." if long. */
static const char *show(otpc_term_t t, char *buf, size_t size) {
  long n = otpc_term_snprint(buf, size, t);
  if (n < 0)
    snprintf(buf, size, "?");
  else if ((size_t)n >= size && size > 4)
    strcpy(buf + size - 4, "...");
  return buf;
}

/* 1-based line and column of byte offset pos in text. */
static void line_col(const char *text, size_t len, size_t pos, int *line,
                     int *col) {
  int l = 1;
  size_t start = 0;
  if (pos > len) pos = len;
  for (size_t i = 0; i < pos; i++)
    if (text[i] == '\n') {
      l++;
      start = i + 1;
    }
  *line = l;
  *col = (int)(pos - start) + 1;
}

bool otpc__app_env_ok(otpc_term_t t, otpc_term_t *bad) {
  otpc_list_iter_t it;
  otpc_term_t e, first;
  size_t arity;
  *bad = (otpc_term_t){0};
  if (otpc_term_list_iter(t, &it) != 0) return false;
  while (otpc_list_next(&it, &e))
    if (otpc_term_get_tuple(e, &arity, &first) != 0 || arity != 2 ||
        otpc_term_type(first) != OTPC_TYPE_ATOM) {
      *bad = e;
      return false;
    }
  return otpc_term_type(otpc_list_tail(&it)) == OTPC_TYPE_NIL;
}

/* ------------------------------------------------------------------------
 * The registry
 * ------------------------------------------------------------------------ */

static otpc__app_entry_t *reg_find(otpc_atom_t name) {
  for (size_t i = 0; i < nreg; i++)
    if (reg[i].name == name) return &reg[i];
  return NULL;
}

bool otpc__app_lookup(otpc_atom_t name, otpc__app_entry_t *out) {
  pthread_mutex_lock(&lock);
  otpc__app_entry_t *e = reg_find(name);
  if (e) *out = *e;
  pthread_mutex_unlock(&lock);
  return e != NULL;
}

static int name_atom(const char *name, otpc_atom_t *out) {
  if (name == NULL || name[0] == '\0') return OTPC_EINVAL;
  return otpc_atom_new(name, strlen(name), out);
}

/* The spec's dependencies as atoms, in a new array. */
static int spec_deps(const otpc_app_spec_t *spec, otpc_atom_t **deps,
                     size_t *n) {
  size_t k = 0;
  *deps = NULL;
  *n = 0;
  if (spec->applications == NULL) return 0;
  while (spec->applications[k] != NULL) k++;
  if (k == 0) return 0;
  otpc_atom_t *d = otpc__calloc(k, sizeof *d);
  if (d == NULL) return OTPC_ENOMEM;
  for (size_t i = 0; i < k; i++) {
    int rc = name_atom(spec->applications[i], &d[i]);
    if (rc != 0) {
      otpc__free(d);
      return rc;
    }
  }
  *deps = d;
  *n = k;
  return 0;
}

static int spec_env(const otpc_app_spec_t *spec, otpc_buf_t **env) {
  const char *text = spec->env ? spec->env : "[]";
  int rc = otpc_term_parse(text, strlen(text), env, NULL);
  if (rc != 0) return rc;
  otpc_term_t bad;
  if (!otpc__app_env_ok(otpc_buf_term(*env), &bad)) {
    otpc_buf_unref(*env);
    *env = NULL;
    return OTPC_EINVAL;
  }
  return 0;
}

int otpc_app_register(const otpc_app_spec_t *spec) {
  otpc__app_entry_t e = {0};
  if (spec == NULL) return OTPC_EINVAL;
  int rc = name_atom(spec->name, &e.name);
  if (rc == 0) rc = spec_env(spec, &e.env);
  otpc_atom_t *deps = NULL;
  if (rc == 0) rc = spec_deps(spec, &deps, &e.ndeps);
  if (rc != 0) {
    otpc_buf_unref(e.env);
    return rc;
  }
  e.spec = spec;
  e.deps = deps;
  pthread_mutex_lock(&lock);
  otpc__app_entry_t *old = reg_find(e.name);
  if (old != NULL) {
    rc = old->spec == spec ? 0 : OTPC_EEXIST;
  } else if (nreg == reg_cap) {
    size_t cap = reg_cap ? reg_cap * 2 : 16;
    otpc__app_entry_t *r = otpc__realloc(reg, cap * sizeof *r);
    if (r == NULL) {
      rc = OTPC_ENOMEM;
    } else {
      reg = r;
      reg_cap = cap;
    }
  }
  if (rc == 0 && old == NULL) {
    reg[nreg++] = e;
    e.env = NULL;
    deps = NULL;
  }
  pthread_mutex_unlock(&lock);
  otpc_buf_unref(e.env);
  otpc__free(deps);
  return rc;
}

/* ------------------------------------------------------------------------
 * Kept configuration
 * ------------------------------------------------------------------------ */

static size_t count_for(const confs_t *c, otpc_atom_t app) {
  size_t n = 0;
  for (size_t i = 0; i < c->n; i++) n += c->v[i].app == app;
  return n;
}

static void build_for(otpc_builder_t *b, const confs_t *c, otpc_atom_t app) {
  for (size_t i = 0; i < c->n; i++) {
    if (c->v[i].app != app) continue;
    otpc_build_tuple(b, 2);
    otpc_build_atom_id(b, c->v[i].key);
    otpc_build_term(b, otpc_buf_term(c->v[i].val));
  }
}

otpc_buf_t *otpc__app_config_env(otpc_atom_t app) {
  otpc_builder_t b;
  otpc_builder_init(&b);
  pthread_mutex_lock(&lock);
  size_t n = count_for(&file_conf, app) + count_for(&args_conf, app);
  if (n > 0) otpc_build_list(&b, n);
  build_for(&b, &file_conf, app);
  build_for(&b, &args_conf, app);
  pthread_mutex_unlock(&lock);
  otpc_build_nil(&b);
  return otpc_builder_finish(&b, NULL);
}

void otpc_app_config_clear(void) {
  pthread_mutex_lock(&lock);
  confs_free(&file_conf);
  confs_free(&args_conf);
  pthread_mutex_unlock(&lock);
}

/* Appends the checked values of a file and of a command line. */
static int keep(confs_t *files, confs_t *args) {
  pthread_mutex_lock(&lock);
  int rc = 0;
  /* Room first, so that neither move can fail after the other worked. */
  if (file_conf.cap - file_conf.n < files->n) {
    conf_t *v =
        otpc__realloc(file_conf.v, (file_conf.n + files->n) * sizeof *v);
    if (v == NULL)
      rc = OTPC_ENOMEM;
    else {
      file_conf.v = v;
      file_conf.cap = file_conf.n + files->n;
    }
  }
  if (rc == 0 && args_conf.cap - args_conf.n < args->n) {
    conf_t *v = otpc__realloc(args_conf.v, (args_conf.n + args->n) * sizeof *v);
    if (v == NULL)
      rc = OTPC_ENOMEM;
    else {
      args_conf.v = v;
      args_conf.cap = args_conf.n + args->n;
    }
  }
  if (rc == 0) {
    confs_move(&file_conf, files);
    confs_move(&args_conf, args);
  }
  pthread_mutex_unlock(&lock);
  confs_free(files);
  confs_free(args);
  return rc;
}

/* ------------------------------------------------------------------------
 * sys.config files
 * ------------------------------------------------------------------------ */

/* Reads a whole file into a new NUL-terminated buffer. */
static int read_all(const char *path, char **text, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return OTPC_EIO;
  struct stat st;
  int rc = 0;
  char *buf = NULL;
  if (fstat(fileno(f), &st) != 0) {
    rc = OTPC_EIO;
  } else if ((size_t)st.st_size > MAX_CONFIG_BYTES) {
    errno = EFBIG;
    rc = OTPC_EIO;
  } else if ((buf = otpc__malloc((size_t)st.st_size + 1)) == NULL) {
    rc = OTPC_ENOMEM;
  } else {
    size_t n = fread(buf, 1, (size_t)st.st_size, f);
    if (n != (size_t)st.st_size && ferror(f)) {
      rc = OTPC_EIO;
    } else {
      buf[n] = '\0';
      *len = n;
    }
  }
  int saved = errno;
  fclose(f);
  errno = saved;
  if (rc != 0) {
    otpc__free(buf);
    return rc;
  }
  *text = buf;
  return 0;
}

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Reads path, or path.config if path does not exist and has no .config
 * extension (erl's -config sys reads sys.config). *used gets the name
 * read. */
static int read_config(const char *path, char *used, char **text, size_t *len) {
  snprintf(used, MAX_PATH_BYTES, "%s", path);
  int rc = read_all(used, text, len);
  if (rc == OTPC_EIO && errno == ENOENT && !ends_with(path, ".config") &&
      strlen(path) + 8 < MAX_PATH_BYTES) {
    snprintf(used, MAX_PATH_BYTES, "%s.config", path);
    rc = read_all(used, text, len);
    if (rc == OTPC_EIO && errno == ENOENT)
      snprintf(used, MAX_PATH_BYTES, "%s", path); /* report the name given */
  }
  return rc;
}

/* A non-empty list of character codes as UTF-8 into out (a file name in
 * a sys.config); false if t is no such string or it is too long. */
static bool string_of(otpc_term_t t, char *out, size_t size) {
  otpc_list_iter_t it;
  otpc_term_t e;
  size_t n = 0;
  if (otpc_term_type(t) != OTPC_TYPE_LIST || otpc_term_list_iter(t, &it) != 0)
    return false;
  while (otpc_list_next(&it, &e)) {
    int64_t c;
    if (otpc_term_get_int64(e, &c) != 0 || c < 1 || c > 0x10FFFF ||
        n + 5 > size)
      return false;
    if (c < 0x80) {
      out[n++] = (char)c;
    } else if (c < 0x800) {
      out[n++] = (char)(0xC0 | (c >> 6));
      out[n++] = (char)(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
      out[n++] = (char)(0xE0 | (c >> 12));
      out[n++] = (char)(0x80 | ((c >> 6) & 0x3F));
      out[n++] = (char)(0x80 | (c & 0x3F));
    } else {
      out[n++] = (char)(0xF0 | (c >> 18));
      out[n++] = (char)(0x80 | ((c >> 12) & 0x3F));
      out[n++] = (char)(0x80 | ((c >> 6) & 0x3F));
      out[n++] = (char)(0x80 | (c & 0x3F));
    }
  }
  out[n] = '\0';
  return otpc_term_type(otpc_list_tail(&it)) == OTPC_TYPE_NIL;
}

static int read_file_into(const char *path, bool top, confs_t *out,
                          otpc_app_config_error_t *err);

static bool config_exists(const char *path) {
  struct stat st;
  char alt[MAX_PATH_BYTES];
  if (stat(path, &st) == 0) return true;
  return !ends_with(path, ".config") &&
         snprintf(alt, sizeof alt, "%s.config", path) < (int)sizeof alt &&
         stat(alt, &st) == 0;
}

/* An included file: relative names are tried next to the including file
 * first, then from the current directory. */
static int include(const char *from, const char *name, confs_t *out,
                   otpc_app_config_error_t *err) {
  char path[MAX_PATH_BYTES];
  const char *slash = strrchr(from, '/');
  if (name[0] != '/' && slash != NULL &&
      snprintf(path, sizeof path, "%.*s/%s", (int)(slash - from), from, name) <
          (int)sizeof path &&
      config_exists(path))
    return read_file_into(path, false, out, err);
  return read_file_into(name, false, out, err);
}

/* One {App, [{Key, Value}]} entry into out. */
static int take_app(const char *path, otpc_term_t app, otpc_term_t env,
                    confs_t *out, otpc_app_config_error_t *err) {
  char what[200];
  otpc_atom_t a;
  otpc_term_t bad;
  int rc = otpc_term_get_atom(app, &a);
  if (rc != 0) return fail(err, rc, 0, 0, "%s: %s", path, otpc_strerror(rc));
  if (!otpc__app_env_ok(env, &bad)) {
    bool whole = otpc_term_is_none(bad);
    return fail(err, OTPC_EINVAL, 0, 0,
                "%s: invalid config data: application: %s; %s: %s", path,
                otpc_atom_name(a, NULL),
                whole ? "not a list of {Key, Value}" : "invalid parameter",
                show(whole ? env : bad, what, sizeof what));
  }
  otpc_list_iter_t it;
  otpc_term_t pair;
  otpc_term_list_iter(env, &it);
  while (otpc_list_next(&it, &pair)) {
    otpc_term_t k = otpc_term_tuple_elem(pair, 0);
    otpc_atom_t key;
    rc = otpc_term_get_atom(k, &key);
    if (rc == 0) rc = confs_push(out, a, key, otpc_term_next(k));
    if (rc != 0) return fail(err, rc, 0, 0, "%s: %s", path, otpc_strerror(rc));
  }
  return 0;
}

static int parse_into(const char *path, const char *text, size_t len, bool top,
                      confs_t *out, otpc_app_config_error_t *err) {
  otpc_buf_t *buf;
  size_t pos = 0;
  int rc = otpc_term_parse(text, len, &buf, &pos);
  if (rc != 0) {
    int line, col;
    line_col(text, len, pos, &line, &col);
    return fail(err, rc, line, col, "%s:%d:%d: %s", path, line, col,
                otpc_strerror(rc));
  }
  otpc_term_t t = otpc_buf_term(buf), e, first;
  otpc_list_iter_t it;
  char what[200], name[MAX_PATH_BYTES];
  size_t arity;
  if (otpc_term_list_iter(t, &it) != 0) {
    rc = fail(err, OTPC_EINVAL, 0, 0,
              "%s: the configuration must be one list, "
              "[{Application, [{Key, Value}]}]",
              path);
    goto done;
  }
  while (rc == 0 && otpc_list_next(&it, &e)) {
    if (otpc_term_get_tuple(e, &arity, &first) == 0 && arity == 2 &&
        otpc_term_type(first) == OTPC_TYPE_ATOM) {
      rc = take_app(path, first, otpc_term_next(first), out, err);
    } else if (string_of(e, name, sizeof name)) {
      if (top)
        rc = include(path, name, out, err);
      else
        rc = fail(err, OTPC_EINVAL, 0, 0,
                  "%s: an included file may not include another (\"%s\")", path,
                  name);
    } else {
      rc = fail(err, OTPC_EINVAL, 0, 0,
                "%s: invalid config data: %s is neither "
                "{Application, [{Key, Value}]} nor a file name",
                path, show(e, what, sizeof what));
    }
  }
  if (rc == 0 && otpc_term_type(otpc_list_tail(&it)) != OTPC_TYPE_NIL)
    rc = fail(err, OTPC_EINVAL, 0, 0,
              "%s: the configuration is not a proper list", path);
done:
  otpc_buf_unref(buf);
  return rc;
}

static int read_file_into(const char *path, bool top, confs_t *out,
                          otpc_app_config_error_t *err) {
  char used[MAX_PATH_BYTES];
  char *text = NULL;
  size_t len = 0;
  int rc = read_config(path, used, &text, &len);
  if (rc != 0)
    return fail(err, rc, 0, 0, "%s: %s", used,
                rc == OTPC_EIO ? strerror(errno) : otpc_strerror(rc));
  rc = parse_into(used, text, len, top, out, err);
  otpc__free(text);
  return rc;
}

int otpc_app_config_file(const char *path, otpc_app_config_error_t *err) {
  if (err) memset(err, 0, sizeof *err);
  if (path == NULL || path[0] == '\0' || strlen(path) >= MAX_PATH_BYTES)
    return fail(err, OTPC_EINVAL, 0, 0, "no configuration file name");
  confs_t files = {0}, none = {0};
  int rc = read_file_into(path, true, &files, err);
  if (rc != 0) {
    confs_free(&files);
    return rc;
  }
  rc = keep(&files, &none);
  if (rc != 0) return fail(err, rc, 0, 0, "%s: %s", path, otpc_strerror(rc));
  return 0;
}

/* ------------------------------------------------------------------------
 * The command line
 * ------------------------------------------------------------------------ */

/* -App for a registered App: its atom, else 0. Looks the atom up without
 * creating it, so that arbitrary arguments make no atoms. */
static otpc_atom_t app_flag(const char *arg) {
  otpc_atom_t a;
  if (arg[0] != '-' || arg[1] == '\0' ||
      otpc_atom_lookup(arg + 1, strlen(arg + 1), &a) != 0)
    return OTPC_ATOM_NONE;
  otpc__app_entry_t e;
  return otpc__app_lookup(a, &e) ? a : OTPC_ATOM_NONE;
}

/* Parses argument i as a term; err says which on failure. */
static int arg_term(char **argv, int i, otpc_buf_t **out,
                    otpc_app_config_error_t *err) {
  size_t pos = 0;
  int rc = otpc_term_parse(argv[i], strlen(argv[i]), out, &pos);
  if (rc != 0)
    return fail(err, rc, 0, (int)pos + 1,
                "argument %d (\"%s\"): %s at column %d", i, argv[i],
                otpc_strerror(rc), (int)pos + 1);
  return 0;
}

/* -App Key Value ...: the pairs into out; *next gets the argument after
 * them. */
static int app_args(int argc, char **argv, int i, otpc_atom_t app, confs_t *out,
                    int *next, otpc_app_config_error_t *err) {
  int j = i + 1, pairs = 0;
  while (j < argc && argv[j][0] != '-') {
    if (j + 1 >= argc)
      return fail(err, OTPC_EINVAL, 0, 0, "%s %s: a value must follow", argv[i],
                  argv[j]);
    otpc_buf_t *k, *v;
    int rc = arg_term(argv, j, &k, err);
    if (rc != 0) return rc;
    otpc_atom_t key;
    if (otpc_term_get_atom(otpc_buf_term(k), &key) != 0) {
      otpc_buf_unref(k);
      return fail(err, OTPC_EINVAL, 0, 0,
                  "%s %s: a parameter name must be an atom", argv[i], argv[j]);
    }
    otpc_buf_unref(k);
    rc = arg_term(argv, j + 1, &v, err);
    if (rc != 0) return rc;
    rc = confs_push(out, app, key, otpc_buf_term(v));
    otpc_buf_unref(v);
    if (rc != 0) return fail(err, rc, 0, 0, "%s", otpc_strerror(rc));
    j += 2;
    pairs++;
  }
  if (pairs == 0)
    return fail(err, OTPC_EINVAL, 0, 0, "%s: Key Value pairs must follow",
                argv[i]);
  *next = j;
  return 0;
}

/* Marks the arguments to take in take[] and reads what they say. */
static int scan_args(int argc, char **argv, bool *take, confs_t *files,
                     confs_t *args, otpc_app_config_error_t *err) {
  int i = 1;
  while (i < argc) {
    const char *a = argv[i];
    otpc_atom_t app;
    if (strcmp(a, "--") == 0) break;
    if (strcmp(a, "-config") == 0) {
      if (i + 1 >= argc)
        return fail(err, OTPC_EINVAL, 0, 0, "-config: a file name must follow");
      int rc = read_file_into(argv[i + 1], true, files, err);
      if (rc != 0) return rc;
      take[i] = take[i + 1] = true;
      i += 2;
    } else if ((app = app_flag(a)) != OTPC_ATOM_NONE) {
      int next = i + 1;
      int rc = app_args(argc, argv, i, app, args, &next, err);
      if (rc != 0) return rc;
      for (int k = i; k < next; k++) take[k] = true;
      i = next;
    } else {
      i++;
    }
  }
  return 0;
}

int otpc_app_config_args(int *argc, char **argv, otpc_app_config_error_t *err) {
  if (err) memset(err, 0, sizeof *err);
  if (argc == NULL || *argc < 0 || (argv == NULL && *argc > 0))
    return fail(err, OTPC_EINVAL, 0, 0, "no command line");
  if (*argc < 2) return 0;
  bool *take = otpc__calloc((size_t)*argc, sizeof *take);
  if (take == NULL) return fail(err, OTPC_ENOMEM, 0, 0, "out of memory");
  confs_t files = {0}, args = {0};
  int rc = scan_args(*argc, argv, take, &files, &args, err);
  if (rc == 0) {
    rc = keep(&files, &args);
    if (rc != 0) fail(err, rc, 0, 0, "%s", otpc_strerror(rc));
  } else {
    confs_free(&files);
    confs_free(&args);
  }
  if (rc == 0) {
    int n = 0;
    for (int i = 0; i < *argc; i++)
      if (!take[i]) argv[n++] = argv[i];
    if (n < *argc) argv[n] = NULL; /* as argv[argc] is */
    *argc = n;
  }
  otpc__free(take);
  return rc;
}
