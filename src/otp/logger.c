/*
 * logger.c: Erlang's logger for C. Owns the primary level and the clock,
 * the handler table, the text and term formatters, the console, file and
 * custom handlers (with size-based rotation), and crash reports.
 *
 * An event goes: primary level check (one atomic load) -> the message is
 * rendered (printf) -> the handlers that want it are copied out of the
 * table with a reference each -> per handler: filter, format (shared
 * between handlers with the same formatter), write -> references dropped.
 *
 * Concurrency (see docs/logger.md for the reasons):
 *   - primary_level and clock_src are atomics, read relaxed: a change of
 *     setting orders nothing else.
 *   - table[] and ntable are guarded by table_lock. An event holds it only
 *     to copy pointers and take references; it formats and writes without.
 *   - A handler's id, type, formatter, filter and callbacks are immutable
 *     after add. level and failed are atomics; failed goes from 0 to an
 *     error code once, under the handler's lock.
 *   - A handler's output (fd, size, the rotation names) is guarded by its
 *     lock, held for the write of one line, plus the rotation when one is
 *     due. So a line goes whole to one file, and lines never interleave.
 *   - refs counts the table's reference plus one per event using the
 *     handler; whoever drops the last one closes the file and frees it.
 *   - Lock order: table_lock and a handler lock are never held together,
 *     except in add_handler, which opens the file under table_lock (a rare
 *     call; it keeps a failed add free of side effects).
 *   - depth (thread-local) catches an event logged from inside a filter,
 *     formatter or handler on the same thread; it is dropped rather than
 *     deadlock on the handler's lock. Process code cannot migrate threads
 *     inside the logger: nothing in it yields.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../base/base_int.h"
#include "otp_int.h"
#include "otpc/logger.h"
#include "otpc/rt.h"

#define MAX_ID_LEN 63
#define MODULE_MAX 64
#define SMALL_LINE 1024 /* formatted line kept on the stack */
#define SMALL_TEXT 512  /* rendered message kept on the stack */

/* ========================================================================
 * Levels and settings
 * ======================================================================== */

static const char *const level_names[] = {NULL,       "emergency", "alert",
                                          "critical", "error",     "warning",
                                          "notice",   "info",      "debug"};

typedef int64_t (*clock_fn)(void);

static atomic_int primary_level = OTPC_LEVEL_NOTICE;
static _Atomic(clock_fn) clock_src; /* NULL: the real clock */
static __thread int depth;          /* logger calls under way, this thread */

static bool is_level(int level) {
  return level >= OTPC_LEVEL_EMERGENCY && level <= OTPC_LEVEL_DEBUG;
}

static bool is_setting(int level) {
  return level == OTPC_LEVEL_NONE || level == OTPC_LEVEL_DEFAULT ||
         is_level(level);
}

const char *otpc_log_level_name(int level) {
  if (level == OTPC_LEVEL_NONE) return "none";
  return is_level(level) ? level_names[level] : NULL;
}

int otpc_log_level_parse(const char *name) {
  if (name == NULL) return OTPC_EINVAL;
  for (int l = OTPC_LEVEL_EMERGENCY; l <= OTPC_LEVEL_DEBUG; l++)
    if (strcmp(name, level_names[l]) == 0) return l;
  if (strcmp(name, "all") == 0) return OTPC_LEVEL_ALL;
  if (strcmp(name, "none") == 0) return OTPC_LEVEL_NONE;
  return OTPC_EINVAL;
}

int otpc_logger_set_primary_level(int level) {
  if (!is_setting(level)) return OTPC_EINVAL;
  if (level == OTPC_LEVEL_DEFAULT) level = OTPC_LEVEL_NOTICE;
  atomic_store_explicit(&primary_level, level, memory_order_relaxed);
  return 0;
}

int otpc_logger_primary_level(void) {
  return atomic_load_explicit(&primary_level, memory_order_relaxed);
}

bool otpc_logger_allow(int level) {
  return level <= atomic_load_explicit(&primary_level, memory_order_relaxed);
}

void otpc_logger_set_clock(int64_t (*now_us)(void)) {
  atomic_store_explicit(&clock_src, now_us, memory_order_relaxed);
}

static int64_t now_us(void) {
  clock_fn f = atomic_load_explicit(&clock_src, memory_order_relaxed);
  if (f != NULL) return f();
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ========================================================================
 * Output buffers: start in caller-provided (stack) memory, grow on the
 * heap. Out of memory is sticky.
 * ======================================================================== */

struct otpc_log_out {
  char *data;  /* small, or the heap once grown; NUL-terminated */
  size_t len;  /* bytes written */
  size_t cap;  /* bytes data holds */
  int err;     /* sticky error */
  char *small; /* the initial memory, not ours to free */
};

static void out_init(otpc_log_out_t *o, char *small, size_t cap) {
  o->data = o->small = small;
  o->len = 0;
  o->cap = cap;
  o->err = 0;
  small[0] = '\0';
}

static void out_reset(otpc_log_out_t *o) {
  o->len = 0;
  o->err = 0;
  o->data[0] = '\0';
}

static void out_free(otpc_log_out_t *o) {
  if (o->data != o->small) otpc__free(o->data);
  o->data = o->small;
}

/* Room for more bytes and a NUL. */
static int out_reserve(otpc_log_out_t *o, size_t more) {
  if (o->err) return o->err;
  if (more < o->cap - o->len) return 0;
  size_t cap = o->cap;
  while (cap - o->len <= more) {
    if (cap > (size_t)-1 / 2) return o->err = OTPC_ENOMEM;
    cap *= 2;
  }
  char *p;
  if (o->data == o->small) {
    p = otpc__malloc(cap);
    if (p != NULL) memcpy(p, o->data, o->len + 1);
  } else {
    p = otpc__realloc(o->data, cap);
  }
  if (p == NULL) return o->err = OTPC_ENOMEM;
  o->data = p;
  o->cap = cap;
  return 0;
}

int otpc_log_out_write(otpc_log_out_t *o, const void *data, size_t len) {
  if (out_reserve(o, len) != 0) return o->err;
  memcpy(o->data + o->len, data, len);
  o->len += len;
  o->data[o->len] = '\0';
  return 0;
}

int otpc_log_out_puts(otpc_log_out_t *o, const char *s) {
  return otpc_log_out_write(o, s, strlen(s));
}

__attribute__((format(printf, 2, 0))) static int out_vprintf(otpc_log_out_t *o,
                                                             const char *fmt,
                                                             va_list ap) {
  if (o->err) return o->err;
  va_list again;
  va_copy(again, ap);
  size_t room = o->cap - o->len;
  int n = vsnprintf(o->data + o->len, room, fmt, ap);
  if (n >= 0 && (size_t)n >= room) {
    o->data[o->len] = '\0';
    if (out_reserve(o, (size_t)n) == 0)
      vsnprintf(o->data + o->len, (size_t)n + 1, fmt, again);
  }
  va_end(again);
  if (n < 0 && o->err == 0) o->err = OTPC_EBADFMT;
  if (o->err) {
    o->data[o->len] = '\0';
    return o->err;
  }
  o->len += (size_t)n;
  return 0;
}

int otpc_log_out_printf(otpc_log_out_t *o, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = out_vprintf(o, fmt, ap);
  va_end(ap);
  return rc;
}

int otpc_log_out_term(otpc_log_out_t *o, otpc_term_t t) {
  if (o->err) return o->err;
  char *s;
  size_t n;
  int rc = otpc_term_print_p(t, &s, &n);
  if (rc != 0) return o->err = rc;
  otpc_log_out_write(o, s, n);
  otpc_free(s);
  return o->err;
}

static void out_putc(otpc_log_out_t *o, char c) {
  otpc_log_out_write(o, &c, 1);
}

/* ========================================================================
 * The text formatter
 * ======================================================================== */

static const char *base_name(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

/* 2026-11-22T04:50:01.123456+00:00 */
static void put_time(otpc_log_out_t *o, int64_t us, bool local) {
  int64_t sec = us / 1000000, frac = us % 1000000;
  if (frac < 0) {
    frac += 1000000;
    sec--;
  }
  time_t t = (time_t)sec;
  struct tm tm;
  long off = 0;
  if (local && localtime_r(&t, &tm) != NULL) {
    off = tm.tm_gmtoff;
  } else if (gmtime_r(&t, &tm) == NULL) {
    memset(&tm, 0, sizeof tm);
  }
  char sign = off < 0 ? '-' : '+';
  if (off < 0) off = -off;
  otpc_log_out_printf(o, "%04d-%02d-%02dT%02d:%02d:%02d.%06d%c%02ld:%02ld",
                      tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                      tm.tm_min, tm.tm_sec, (int)frac, sign, off / 3600,
                      off % 3600 / 60);
}

static void put_pid(otpc_log_out_t *o, const otpc_pid_t *pid) {
  otpc_builder_t b;
  otpc_builder_init(&b);
  int rc = otpc_build_pid(&b, pid);
  size_t len;
  const uint8_t *data = otpc_builder_data(&b, &len);
  otpc_term_t t;
  otpc_buf_t *owned = NULL;
  if (rc == 0) rc = otpc_term_decode(data, len, NULL, &t, &owned, NULL);
  if (rc == 0)
    otpc_log_out_term(o, t);
  else if (o->err == 0)
    o->err = rc;
  otpc_buf_unref(owned);
  otpc_builder_dispose(&b);
}

static bool is_blank(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The message without trailing blanks; in single-line mode each
 * ",?\r?\n\s*" becomes ", ", as logger_formatter's single_line does. */
static void put_text(otpc_log_out_t *o, const char *s, size_t n, bool multi) {
  while (n > 0 && is_blank(s[n - 1])) n--;
  if (multi) {
    otpc_log_out_write(o, s, n);
    return;
  }
  size_t i = 0;
  while (i < n) {
    const char *nl = memchr(s + i, '\n', n - i);
    if (nl == NULL) {
      otpc_log_out_write(o, s + i, n - i);
      return;
    }
    size_t j = (size_t)(nl - s), end = j;
    if (end > i && s[end - 1] == '\r') end--;
    if (end > i && s[end - 1] == ',') end--;
    otpc_log_out_write(o, s + i, end - i);
    otpc_log_out_write(o, ", ", 2);
    for (i = j + 1; i < n && is_blank(s[i]);) i++;
  }
}

/* "key: value" items, separated as the mode wants. */
static void put_sep(otpc_log_out_t *o, bool first, bool multi) {
  if (multi)
    otpc_log_out_puts(o, "\n    ");
  else if (!first)
    otpc_log_out_puts(o, ", ");
}

static void put_pair(otpc_log_out_t *o, otpc_term_t k, otpc_term_t v) {
  otpc_log_out_term(o, k);
  otpc_log_out_puts(o, ": ");
  otpc_log_out_term(o, v);
}

/* A list whose elements are all {Key, Value}. */
static bool is_pair_list(otpc_term_t t) {
  otpc_list_iter_t it;
  otpc_term_t e;
  size_t arity;
  if (otpc_term_list_iter(t, &it) != 0) return false;
  while (otpc_list_next(&it, &e))
    if (otpc_term_get_tuple(e, &arity, &e) != 0 || arity != 2) return false;
  return otpc_term_type(otpc_list_tail(&it)) == OTPC_TYPE_NIL;
}

static void put_pair_list(otpc_log_out_t *o, otpc_term_t list, bool multi) {
  otpc_list_iter_t it;
  otpc_term_t e, k;
  size_t arity;
  bool first = true;
  otpc_term_list_iter(list, &it);
  while (otpc_list_next(&it, &e)) {
    otpc_term_get_tuple(e, &arity, &k);
    put_sep(o, first, multi);
    put_pair(o, k, otpc_term_next(k));
    first = false;
  }
}

/* One item of a crasher list, as proc_lib prints it. */
static void put_crash_item(otpc_log_out_t *o, otpc_term_t item) {
  size_t arity;
  otpc_term_t k, v, info;
  if (otpc_term_get_tuple(item, &arity, &k) != 0 || arity != 2) {
    otpc_log_out_term(o, item);
    return;
  }
  v = otpc_term_next(k);
  if (otpc_term_atom_eq(k, "error_info", 10) &&
      otpc_term_get_tuple(v, &arity, &info) == 0 && arity == 3) {
    otpc_log_out_puts(o, "exception ");
    otpc_log_out_term(o, info);
    otpc_log_out_puts(o, ": ");
    otpc_log_out_term(o, otpc_term_next(info));
  } else if (otpc_term_atom_eq(k, "initial_call", 12)) {
    otpc_log_out_puts(o, "initial call: ");
    otpc_log_out_term(o, v);
  } else {
    put_pair(o, k, v);
  }
}

/* #{label => {proc_lib, crash}, report => [Crasher, Neighbours]}: the
 * crasher list, else a none view. */
static otpc_term_t crash_report_items(otpc_term_t r, otpc_term_t *neighbours) {
  otpc_term_t none = {0}, label, first, items;
  size_t arity;
  if (otpc_term_type(r) != OTPC_TYPE_MAP) return none;
  label = otpc_term_map_get_atom(r, "label");
  if (otpc_term_get_tuple(label, &arity, &first) != 0 || arity != 2 ||
      !otpc_term_atom_eq(first, "proc_lib", 8) ||
      !otpc_term_atom_eq(otpc_term_next(first), "crash", 5))
    return none;
  otpc_list_iter_t it;
  if (otpc_term_list_iter(otpc_term_map_get_atom(r, "report"), &it) != 0 ||
      !otpc_list_next(&it, &items) || !otpc_list_next(&it, neighbours) ||
      otpc_term_type(items) != OTPC_TYPE_LIST)
    return none;
  return items;
}

static void put_crash(otpc_log_out_t *o, otpc_term_t items,
                      otpc_term_t neighbours, bool multi) {
  otpc_list_iter_t it;
  otpc_term_t e;
  bool first = true;
  otpc_log_out_puts(o, "crasher:");
  if (!multi) out_putc(o, ' ');
  otpc_term_list_iter(items, &it);
  while (otpc_list_next(&it, &e)) {
    put_sep(o, first, multi);
    put_crash_item(o, e);
    first = false;
  }
  if (otpc_term_type(neighbours) != OTPC_TYPE_NIL) {
    otpc_log_out_puts(o, multi ? "\n  neighbours: " : "; neighbours: ");
    otpc_log_out_term(o, neighbours);
  }
}

static int compare_keys(const void *a, const void *b) {
  return otpc_term_compare(*(const otpc_term_t *)a, *(const otpc_term_t *)b);
}

/* A map's pairs in key order, as maps:to_list/1 gives them to Erlang's
 * report formatting. */
static void put_map_report(otpc_log_out_t *o, otpc_term_t r, bool multi) {
  otpc_term_t small[32], *keys = small, k;
  size_t pairs;
  otpc_term_get_map(r, &pairs, &k);
  if (pairs > sizeof small / sizeof small[0]) {
    keys = otpc__calloc(pairs, sizeof *keys);
    if (keys == NULL) {
      if (o->err == 0) o->err = OTPC_ENOMEM;
      return;
    }
  }
  for (size_t i = 0; i < pairs; i++) {
    keys[i] = k;
    k = otpc_term_next(otpc_term_next(k));
  }
  qsort(keys, pairs, sizeof *keys, compare_keys);
  for (size_t i = 0; i < pairs; i++) {
    put_sep(o, i == 0, multi);
    put_pair(o, keys[i], otpc_term_next(keys[i]));
  }
  if (keys != small) otpc__free(keys);
}

static void put_report(otpc_log_out_t *o, otpc_term_t r, bool multi) {
  otpc_term_t neighbours, items = crash_report_items(r, &neighbours);
  if (!otpc_term_is_none(items)) {
    put_crash(o, items, neighbours, multi);
  } else if (otpc_term_type(r) == OTPC_TYPE_MAP) {
    put_map_report(o, r, multi);
  } else if (is_pair_list(r) && otpc_term_type(r) == OTPC_TYPE_LIST) {
    put_pair_list(o, r, multi);
  } else {
    otpc_log_out_term(o, r);
  }
}

int otpc_log_text_format(const otpc_log_event_t *ev, otpc_log_out_t *o,
                         void *arg) {
  static const otpc_log_text_opts_t defaults;
  const otpc_log_text_opts_t *opts = arg ? arg : &defaults;
  const char *level = otpc_log_level_name(ev->level);
  if (level == NULL || !is_level(ev->level)) return OTPC_EINVAL;
  put_time(o, ev->time_us, opts->local_time);
  out_putc(o, ' ');
  otpc_log_out_puts(o, level);
  otpc_log_out_puts(o, ": ");
  if (ev->has_pid) {
    put_pid(o, &ev->pid);
    out_putc(o, ' ');
  }
  if (ev->file != NULL) {
    const char *file = opts->full_path ? ev->file : base_name(ev->file);
    otpc_log_out_printf(o, "%s:%d ", file, ev->line);
  }
  if (ev->text != NULL)
    put_text(o, ev->text, ev->text_len, opts->multi_line);
  else
    put_report(o, ev->report, opts->multi_line);
  out_putc(o, '\n');
  return o->err;
}

/* ========================================================================
 * The event as a term, and the term formatter
 * ======================================================================== */

/* The logger's own metadata keys, in the order they are written. */
enum { K_TIME, K_PID, K_NODE, K_MODULE, K_FUNCTION, K_FILE, K_LINE, K_N };
static const char *const meta_keys[K_N] = {"time",     "pid",  "node", "module",
                                           "function", "file", "line"};

static bool has_key(const otpc_log_event_t *ev, int k) {
  switch (k) {
    case K_PID: return ev->has_pid;
    case K_MODULE: return ev->module != NULL;
    case K_FUNCTION: return ev->function != NULL;
    case K_FILE:
    case K_LINE: return ev->file != NULL;
    default: return true;
  }
}

/* Writes one key and its value; returns the builder's (sticky) error. */
static int build_key_value(otpc_builder_t *b, const otpc_log_event_t *ev,
                           int k) {
  otpc_build_atom(b, meta_keys[k]);
  switch (k) {
    case K_TIME: return otpc_build_int(b, ev->time_us);
    case K_PID: return otpc_build_pid(b, &ev->pid);
    case K_NODE: return otpc_build_atom_id(b, ev->node);
    case K_MODULE: return otpc_build_atom(b, ev->module);
    case K_FUNCTION: return otpc_build_atom(b, ev->function);
    case K_FILE: return otpc_build_binary(b, ev->file, strlen(ev->file));
    default: return otpc_build_int(b, ev->line);
  }
}

/* The logger's keys that the caller's metadata does not replace, then the
 * caller's pairs. */
static int build_meta(const otpc_log_event_t *ev, otpc_builder_t *b) {
  size_t user = 0, ours = 0;
  otpc_term_t k = {0};
  bool wanted[K_N];
  if (otpc_term_type(ev->meta) == OTPC_TYPE_MAP)
    otpc_term_get_map(ev->meta, &user, &k);
  for (int i = 0; i < K_N; i++) {
    wanted[i] = has_key(ev, i) &&
                (user == 0 || otpc_term_is_none(otpc_term_map_get_atom(
                                  ev->meta, meta_keys[i])));
    ours += wanted[i];
  }
  int rc = otpc_build_map(b, user + ours);
  for (int i = 0; i < K_N; i++)
    if (wanted[i]) rc = build_key_value(b, ev, i);
  for (size_t i = 0; i < user; i++) {
    otpc_term_t v = otpc_term_next(k);
    otpc_build_term(b, k);
    rc = otpc_build_term(b, v);
    k = otpc_term_next(v);
  }
  return rc;
}

int otpc_log_event_build(const otpc_log_event_t *ev, otpc_builder_t *b) {
  const char *level = otpc_log_level_name(ev->level);
  if (level == NULL || !is_level(ev->level)) return OTPC_EINVAL;
  otpc_build_map(b, 3);
  otpc_build_atom(b, "level");
  otpc_build_atom(b, level);
  otpc_build_atom(b, "msg");
  otpc_build_tuple(b, 2);
  if (ev->text != NULL) {
    otpc_build_atom(b, "string");
    otpc_build_binary(b, ev->text, ev->text_len);
  } else {
    otpc_build_atom(b, "report");
    otpc_build_term(b, ev->report);
  }
  otpc_build_atom(b, "meta");
  return build_meta(ev, b);
}

int otpc_log_term_format(const otpc_log_event_t *ev, otpc_log_out_t *o,
                         void *arg) {
  OTPC_UNUSED(arg);
  otpc_builder_t b;
  otpc_builder_init(&b);
  int rc = otpc_log_event_build(ev, &b);
  size_t len;
  const uint8_t *data = otpc_builder_data(&b, &len);
  otpc_term_t t;
  otpc_buf_t *owned = NULL;
  if (rc == 0) rc = otpc_term_decode(data, len, NULL, &t, &owned, NULL);
  if (rc == 0) rc = otpc_log_out_term(o, t);
  if (rc == 0) rc = otpc_log_out_write(o, ".\n", 2);
  otpc_buf_unref(owned);
  otpc_builder_dispose(&b);
  return rc;
}

/* ========================================================================
 * Handlers
 * ======================================================================== */

typedef struct handler {
  atomic_int refs;   /* the table's, plus one per event using it */
  atomic_int level;  /* events at least this severe pass */
  atomic_int failed; /* 0, or the code it was disabled with */
  char *id;
  otpc_log_type_t type;
  otpc_log_format_fn format;
  void *format_arg; /* &text for the default text formatter */
  otpc_log_text_opts_t text;
  bool (*filter)(const otpc_log_event_t *ev, void *arg);
  void *filter_arg;
  int (*write)(void *arg, const otpc_log_event_t *ev, const char *line,
               size_t len);
  void (*close)(void *arg);
  void *arg;
  pthread_mutex_t lock; /* guards the fields below */
  int fd;               /* console or file; -1 once a file failed */
  bool own_fd;          /* a file: closed with the handler */
  char *path;           /* the file's name */
  char *from, *to;      /* rotation names, path ".N", allocated once */
  size_t name_cap;      /* bytes in from and to */
  uint64_t size;        /* bytes in the current file */
  uint64_t max_bytes;   /* 0: never rotate */
  unsigned max_files;   /* archives kept */
  unsigned archives;    /* path.0 .. path.<archives-1> exist, we think */
} handler_t;

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static handler_t *table[OTPC_LOGGER_MAX_HANDLERS]; /* in order of adding */
static size_t ntable;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static char *dup_string(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = otpc__malloc(n);
  if (p != NULL) memcpy(p, s, n);
  return p;
}

static void handler_free(handler_t *h) {
  if (h->close != NULL) h->close(h->arg);
  if (h->own_fd && h->fd >= 0) close(h->fd);
  pthread_mutex_destroy(&h->lock);
  otpc__free(h->id);
  otpc__free(h->path);
  otpc__free(h->from);
  otpc__free(h->to);
  otpc__free(h);
}

static void handler_unref(handler_t *h) {
  if (atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) == 1)
    handler_free(h);
}

static int open_log(const char *path, uint64_t *size) {
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  struct stat st;
  if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
    *size = (uint64_t)st.st_size;
  else
    *size = 0;
  return fd;
}

static int handler_open_file(handler_t *h, const char *file) {
  h->path = dup_string(file);
  h->name_cap = strlen(file) + 16; /* "." and a 32-bit number */
  h->from = otpc__malloc(h->name_cap);
  h->to = otpc__malloc(h->name_cap);
  if (h->path == NULL || h->from == NULL || h->to == NULL) return OTPC_ENOMEM;
  h->fd = open_log(file, &h->size);
  if (h->fd < 0) return OTPC_EIO;
  h->own_fd = true;
  /* Archives left by an earlier run, so rotation renames only those. */
  struct stat st;
  while (h->archives < h->max_files) {
    snprintf(h->to, h->name_cap, "%s.%u", file, h->archives);
    if (stat(h->to, &st) != 0) break;
    h->archives++;
  }
  return 0;
}

static void handler_setup(handler_t *h, const otpc_log_handler_config_t *c) {
  atomic_init(&h->refs, 1);
  atomic_init(&h->level,
              c->level == OTPC_LEVEL_DEFAULT ? OTPC_LEVEL_ALL : c->level);
  atomic_init(&h->failed, 0);
  h->type = c->type;
  h->text = c->text;
  h->format = c->formatter.format ? c->formatter.format : otpc_log_text_format;
  h->format_arg = c->formatter.format ? c->formatter.arg : &h->text;
  h->filter = c->filter;
  h->filter_arg = c->filter_arg;
  h->write = c->type == OTPC_LOG_CUSTOM ? c->write : NULL;
  h->close = c->type == OTPC_LOG_CUSTOM ? c->close : NULL;
  h->arg = c->arg;
  h->fd = c->type == OTPC_LOG_STDOUT ? STDOUT_FILENO : STDERR_FILENO;
  h->max_bytes = c->max_bytes;
  h->max_files = c->max_files;
  pthread_mutex_init(&h->lock, NULL);
}

static int check_config(const char *id, const otpc_log_handler_config_t *c) {
  if (id == NULL || id[0] == '\0' || strlen(id) > MAX_ID_LEN)
    return OTPC_EINVAL;
  if (!is_setting(c->level)) return OTPC_EINVAL;
  switch (c->type) {
    case OTPC_LOG_STDERR:
    case OTPC_LOG_STDOUT: return 0;
    case OTPC_LOG_FILE: return c->file && c->file[0] ? 0 : OTPC_EINVAL;
    case OTPC_LOG_CUSTOM: return c->write ? 0 : OTPC_EINVAL;
  }
  return OTPC_EINVAL;
}

/* The slot of a handler; ntable if none. Under table_lock. */
static size_t find_locked(const char *id) {
  size_t i = 0;
  while (i < ntable && strcmp(table[i]->id, id) != 0) i++;
  return i;
}

static int add_handler(const char *id, const otpc_log_handler_config_t *c) {
  static const otpc_log_handler_config_t zero;
  if (c == NULL) c = &zero;
  int rc = check_config(id, c);
  if (rc != 0) return rc;
  handler_t *h = otpc__calloc(1, sizeof *h);
  if (h == NULL) return OTPC_ENOMEM;
  handler_setup(h, c);
  h->id = dup_string(id);
  if (h->id == NULL) rc = OTPC_ENOMEM;
  pthread_mutex_lock(&table_lock);
  if (rc == 0 && find_locked(id) < ntable) rc = OTPC_EEXIST;
  if (rc == 0 && ntable == OTPC_LOGGER_MAX_HANDLERS) rc = OTPC_ESYSLIMIT;
  if (rc == 0 && c->type == OTPC_LOG_FILE) rc = handler_open_file(h, c->file);
  if (rc == 0) table[ntable++] = h;
  pthread_mutex_unlock(&table_lock);
  if (rc != 0) {
    int saved = errno;
    h->close = NULL; /* only for handlers that were added */
    handler_free(h);
    errno = saved;
  }
  return rc;
}

static void init_default(void) {
  (void)add_handler("default", NULL);
}

static void init(void) {
  pthread_once(&init_once, init_default);
}

int otpc_logger_add_handler(const char *id,
                            const otpc_log_handler_config_t *cfg) {
  init();
  return add_handler(id, cfg);
}

int otpc_logger_remove_handler(const char *id) {
  if (id == NULL) return OTPC_EINVAL;
  init();
  handler_t *h = NULL;
  pthread_mutex_lock(&table_lock);
  size_t i = find_locked(id);
  if (i < ntable) {
    h = table[i];
    memmove(&table[i], &table[i + 1], (ntable - i - 1) * sizeof table[0]);
    ntable--;
  }
  pthread_mutex_unlock(&table_lock);
  if (h == NULL) return OTPC_EINVAL;
  handler_unref(h);
  return 0;
}

int otpc_logger_set_handler_level(const char *id, int level) {
  if (id == NULL || !is_setting(level)) return OTPC_EINVAL;
  if (level == OTPC_LEVEL_DEFAULT) level = OTPC_LEVEL_ALL;
  init();
  int rc = OTPC_EINVAL;
  pthread_mutex_lock(&table_lock);
  size_t i = find_locked(id);
  if (i < ntable) {
    atomic_store_explicit(&table[i]->level, level, memory_order_relaxed);
    rc = 0;
  }
  pthread_mutex_unlock(&table_lock);
  return rc;
}

int otpc_logger_handler_status(const char *id) {
  if (id == NULL) return OTPC_EINVAL;
  init();
  int rc = OTPC_EINVAL;
  pthread_mutex_lock(&table_lock);
  size_t i = find_locked(id);
  if (i < ntable) rc = atomic_load(&table[i]->failed);
  pthread_mutex_unlock(&table_lock);
  return rc;
}

/* ---- writing ---------------------------------------------------------- */

/* One whole line: retries short writes, interruptions and a full
 * non-blocking descriptor. errno-style cause in *err on failure. */
static int write_all(int fd, const char *p, size_t n, int *err) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w > 0) {
      p += w;
      n -= (size_t)w;
    } else if (w < 0 && errno == EINTR) {
      continue;
    } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      struct pollfd pfd = {fd, POLLOUT, 0};
      (void)poll(&pfd, 1, -1);
    } else {
      *err = w < 0 ? errno : EIO;
      return OTPC_EIO;
    }
  }
  return 0;
}

static int rename_archive(handler_t *h, unsigned from, const char **what,
                          int *err) {
  if (from == (unsigned)-1)
    snprintf(h->from, h->name_cap, "%s", h->path);
  else
    snprintf(h->from, h->name_cap, "%s.%u", h->path, from);
  snprintf(h->to, h->name_cap, "%s.%u", h->path, from + 1);
  if (rename(h->from, h->to) == 0 || errno == ENOENT) return 0;
  *what = "rename";
  *err = errno;
  return OTPC_EIO;
}

/*
 * logger_std_h's rotation, under the handler's lock: file.log.(n-2) ->
 * file.log.(n-1), ..., file.log -> file.log.0, then a new file.log. The
 * descriptor stays on the old file until the new one is open, so a
 * failure leaves a file to write the pending line into.
 */
static int rotate(handler_t *h, const char **what, int *err) {
  if (h->max_files == 0) {
    *what = "truncate";
    if (ftruncate(h->fd, 0) != 0) {
      *err = errno;
      return OTPC_EIO;
    }
    h->size = 0;
    return 0;
  }
  unsigned n = h->archives < h->max_files ? h->archives : h->max_files - 1;
  for (unsigned i = n; i > 0; i--)
    if (rename_archive(h, i - 1, what, err) != 0) return OTPC_EIO;
  if (rename_archive(h, (unsigned)-1, what, err) != 0) return OTPC_EIO;
  h->archives = n + 1;
  int fd =
      open(h->path, O_WRONLY | O_CREAT | O_APPEND | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    *what = "open";
    *err = errno;
    return OTPC_EIO;
  }
  close(h->fd);
  h->fd = fd;
  h->size = 0;
  return 0;
}

static int file_emit(handler_t *h, const char *line, size_t len,
                     const char **what, int *err) {
  if (h->max_bytes != 0 && h->size > 0 && h->size + len > h->max_bytes) {
    int rc = rotate(h, what, err);
    if (rc != 0) {
      int ignored;
      (void)write_all(h->fd, line, len, &ignored); /* keep the line */
      return rc;
    }
  }
  *what = "write";
  int rc = write_all(h->fd, line, len, err);
  if (rc == 0) h->size += len;
  return rc;
}

static const char *errno_text(int e, char *buf, size_t size) {
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
  return strerror_r(e, buf, size);
#else
  return strerror_r(e, buf, size) == 0 ? buf : "unknown error";
#endif
}

/* Marks the handler failed and says so once on stderr. Under its lock. */
static void disable(handler_t *h, int rc, const char *what, int err) {
  char msg[512], etext[128];
  atomic_store(&h->failed, rc);
  const char *cause =
      err ? errno_text(err, etext, sizeof etext) : otpc_strerror(rc);
  int n = snprintf(
      msg, sizeof msg, "otpc logger: handler %s disabled: %s%s%s failed: %s\n",
      h->id, what, h->path ? " " : "", h->path ? h->path : "", cause);
  if (n > (int)sizeof msg - 1) {
    n = (int)sizeof msg - 1;
    msg[n - 1] = '\n';
  }
  int ignored;
  (void)write_all(STDERR_FILENO, msg, (size_t)n, &ignored);
  if (h->own_fd && h->fd >= 0) close(h->fd);
  if (h->own_fd) h->fd = -1;
}

/* Writes one formatted line through the handler: the one place its lock
 * is taken. */
static int emit(handler_t *h, const char *line, size_t len,
                const otpc_log_event_t *ev) {
  int rc = 0, err = 0;
  const char *what = "write";
  pthread_mutex_lock(&h->lock);
  if (atomic_load_explicit(&h->failed, memory_order_relaxed) != 0) {
    pthread_mutex_unlock(&h->lock); /* disabled since the event began */
    return 0;
  }
  switch (h->type) {
    case OTPC_LOG_CUSTOM:
      rc = h->write(h->arg, ev, line, len);
      if (rc > 0) rc = 0;
      break;
    case OTPC_LOG_FILE: rc = file_emit(h, line, len, &what, &err); break;
    default: rc = write_all(h->fd, line, len, &err); break;
  }
  if (rc < 0) disable(h, rc, what, err);
  pthread_mutex_unlock(&h->lock);
  return rc;
}

/* ========================================================================
 * Dispatch
 * ======================================================================== */

static bool same_format(const handler_t *a, const handler_t *b) {
  if (a->format != b->format) return false;
  bool at = a->format_arg == &a->text, bt = b->format_arg == &b->text;
  if (at || bt)
    return at && bt && a->text.multi_line == b->text.multi_line &&
           a->text.local_time == b->text.local_time &&
           a->text.full_path == b->text.full_path;
  return a->format_arg == b->format_arg;
}

/* The handlers that take this level, each with a reference. */
static size_t take_handlers(int level, handler_t **hs) {
  size_t n = 0;
  pthread_mutex_lock(&table_lock);
  for (size_t i = 0; i < ntable; i++) {
    handler_t *h = table[i];
    if (level <= atomic_load_explicit(&h->level, memory_order_relaxed) &&
        atomic_load_explicit(&h->failed, memory_order_relaxed) == 0) {
      atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
      hs[n++] = h;
    }
  }
  pthread_mutex_unlock(&table_lock);
  return n;
}

static int deliver(handler_t **hs, size_t n, const otpc_log_event_t *ev) {
  char small[SMALL_LINE];
  otpc_log_out_t out;
  out_init(&out, small, sizeof small);
  const handler_t *formatted = NULL; /* whose format out holds */
  int frc = 0, rc = 0;
  for (size_t i = 0; i < n; i++) {
    handler_t *h = hs[i];
    int r = 0;
    if (h->filter != NULL && !h->filter(ev, h->filter_arg)) continue;
    if (formatted == NULL || !same_format(formatted, h)) {
      out_reset(&out);
      frc = h->format(ev, &out, h->format_arg);
      if (frc == 0) frc = out.err;
      formatted = h;
    }
    r = frc != 0 ? frc : emit(h, out.data, out.len, ev);
    if (r < 0 && rc == 0) rc = r;
  }
  out_free(&out);
  return rc;
}

/* The module name from the file: base name up to its last dot. */
static const char *module_of(const char *file, char buf[MODULE_MAX]) {
  const char *base = base_name(file), *dot = strrchr(base, '.');
  size_t n = dot && dot != base ? (size_t)(dot - base) : strlen(base);
  if (n >= MODULE_MAX) {
    n = MODULE_MAX - 1;
    while (n > 0 && (base[n] & 0xC0) == 0x80) n--; /* whole characters */
  }
  memcpy(buf, base, n);
  buf[n] = '\0';
  return buf;
}

/* Stamps the event and hands it to the handlers that want it. */
static int log_event(otpc_log_event_t *ev) {
  if (depth > 0) return OTPC_ESTATE;
  init();
  char module[MODULE_MAX];
  if (ev->module == NULL && ev->file != NULL)
    ev->module = module_of(ev->file, module);
  ev->time_us = now_us();
  ev->node = otpc_node_name();
  handler_t *hs[OTPC_LOGGER_MAX_HANDLERS];
  size_t n = take_handlers(ev->level, hs);
  depth++;
  int rc = n ? deliver(hs, n, ev) : 0;
  depth--;
  for (size_t i = 0; i < n; i++) handler_unref(hs[i]);
  return rc;
}

static int event_init(otpc_log_event_t *ev, int level, const char *module,
                      const char *file, int line, const char *function,
                      const otpc_term_t *meta) {
  if (!is_level(level)) return OTPC_EINVAL;
  if (meta != NULL && !otpc_term_is_none(*meta) &&
      otpc_term_type(*meta) != OTPC_TYPE_MAP)
    return OTPC_EINVAL;
  memset(ev, 0, sizeof *ev);
  ev->level = level;
  ev->pid = otpc_self();
  ev->has_pid = ev->pid.node != OTPC_ATOM_UNDEFINED;
  ev->module = module;
  ev->file = file;
  ev->line = line;
  ev->function = function;
  if (meta != NULL) ev->meta = *meta;
  return 0;
}

int otpc_vlog_at(int level, const char *module, const char *file, int line,
                 const char *function, const otpc_term_t *meta, const char *fmt,
                 va_list ap) {
  if (fmt == NULL) return OTPC_EINVAL;
  if (!otpc_logger_allow(level)) return is_level(level) ? 0 : OTPC_EINVAL;
  otpc_log_event_t ev;
  int rc = event_init(&ev, level, module, file, line, function, meta);
  if (rc != 0) return rc;
  char small[SMALL_TEXT];
  otpc_log_out_t text;
  out_init(&text, small, sizeof small);
  rc = out_vprintf(&text, fmt, ap);
  if (rc == 0) {
    ev.text = text.data;
    ev.text_len = text.len;
    rc = log_event(&ev);
  }
  out_free(&text);
  return rc;
}

int otpc_log_at(int level, const char *module, const char *file, int line,
                const char *function, const otpc_term_t *meta, const char *fmt,
                ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = otpc_vlog_at(level, module, file, line, function, meta, fmt, ap);
  va_end(ap);
  return rc;
}

int otpc_log_report_at(int level, const char *module, const char *file,
                       int line, const char *function, const otpc_term_t *meta,
                       otpc_term_t report) {
  if (otpc_term_is_none(report)) return OTPC_EINVAL;
  if (!otpc_logger_allow(level)) return is_level(level) ? 0 : OTPC_EINVAL;
  otpc_log_event_t ev;
  int rc = event_init(&ev, level, module, file, line, function, meta);
  if (rc != 0) return rc;
  ev.report = report;
  return log_event(&ev);
}

/* ========================================================================
 * Crash reports
 * ======================================================================== */

/* proc_lib's rule: normal, shutdown and {shutdown, _} are no crash. */
bool otpc__is_crash(otpc_term_t reason) {
  size_t arity;
  otpc_term_t first;
  if (otpc_term_is_atom(reason, OTPC_ATOM_NORMAL) ||
      otpc_term_is_atom(reason, OTPC_ATOM_SHUTDOWN))
    return false;
  return !(otpc_term_get_tuple(reason, &arity, &first) == 0 && arity == 2 &&
           otpc_term_is_atom(first, OTPC_ATOM_SHUTDOWN));
}

/* Items extra adds: pairs of a map, elements of a proper list. */
static int extra_items(const otpc_term_t *extra, size_t *n) {
  *n = 0;
  if (extra == NULL || otpc_term_is_none(*extra)) return 0;
  otpc_term_t k;
  if (otpc_term_type(*extra) == OTPC_TYPE_MAP)
    return otpc_term_get_map(*extra, n, &k);
  return otpc_term_list_length(*extra, n) == 0 ? 0 : OTPC_EINVAL;
}

static void build_extra(otpc_builder_t *b, const otpc_term_t *extra) {
  if (extra == NULL || otpc_term_is_none(*extra)) return;
  if (otpc_term_type(*extra) == OTPC_TYPE_MAP) {
    size_t pairs;
    otpc_term_t k;
    otpc_term_get_map(*extra, &pairs, &k);
    for (size_t i = 0; i < pairs; i++) {
      otpc_term_t v = otpc_term_next(k);
      otpc_build_tuple(b, 2);
      otpc_build_term(b, k);
      otpc_build_term(b, v);
      k = otpc_term_next(v);
    }
  } else {
    otpc_list_iter_t it;
    otpc_term_t e;
    otpc_term_list_iter(*extra, &it);
    while (otpc_list_next(&it, &e)) otpc_build_term(b, e);
  }
}

/* #{label => {proc_lib, crash},
 *   report => [[{pid, P}, {error_info, {exit, R, []}} | Extra], []]} */
static otpc_buf_t *build_crash(otpc_pid_t pid, otpc_term_t reason,
                               const otpc_term_t *extra, size_t n_extra,
                               int *rc) {
  otpc_builder_t b;
  otpc_builder_init(&b);
  otpc_build_map(&b, 2);
  otpc_build_atom(&b, "label");
  otpc_build_fmt(&b, "{proc_lib, crash}");
  otpc_build_atom(&b, "report");
  otpc_build_list(&b, 2);
  otpc_build_list(&b, 2 + n_extra);
  otpc_build_fmt(&b, "{pid, ~p}", &pid);
  otpc_build_fmt(&b, "{error_info, {exit, ~t, []}}", reason);
  build_extra(&b, extra);
  otpc_build_nil(&b);
  otpc_build_nil(&b); /* neighbours */
  otpc_build_nil(&b);
  return otpc_builder_finish(&b, rc);
}

int otpc_logger_crash_report(otpc_pid_t pid, otpc_term_t reason,
                             const otpc_term_t *extra) {
  size_t n_extra;
  if (otpc_term_is_none(reason)) return OTPC_EINVAL;
  if (!otpc__is_crash(reason) || !otpc_logger_allow(OTPC_LEVEL_ERROR)) return 0;
  int rc = extra_items(extra, &n_extra);
  if (rc != 0) return rc;
  otpc_buf_t *report = build_crash(pid, reason, extra, n_extra, &rc);
  otpc_buf_t *meta = otpc_term_fmt("#{domain => [otp, sasl]}");
  if (report != NULL && meta != NULL) {
    otpc_log_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.level = OTPC_LEVEL_ERROR;
    ev.has_pid = true;
    ev.pid = pid;
    ev.report = otpc_buf_term(report);
    ev.meta = otpc_buf_term(meta);
    rc = log_event(&ev);
  } else if (rc == 0) {
    rc = OTPC_ENOMEM;
  }
  otpc_buf_unref(report);
  otpc_buf_unref(meta);
  return rc;
}
