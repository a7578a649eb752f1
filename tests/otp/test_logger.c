/*
 * test_logger.c: the logger, one test per promise: levels filter, events
 * carry their metadata, the text format to the byte (with a fixed clock),
 * the term format parses back, file handlers write and rotate without
 * losing or splitting a line while many threads log, handlers come and go
 * while others log, a failing handler is disabled with one report, out of
 * memory is an error, crash reports are one event.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "otpc/logger.h"
#include "otpc/rt.h"
#include "test.h"

#define FIXED_US INT64_C(1795323001123456) /* 2026-11-22T04:50:01.123456Z */
#define STAMP "2026-11-22T04:50:01.123456+00:00"

static int64_t fixed_clock(void) {
  return FIXED_US;
}

/* ------------------------------------------------------------------------
 * A capturing handler: keeps every line and a copy of the last event.
 * ------------------------------------------------------------------------ */

#define CAP_MAX 4096

static struct {
  pthread_mutex_t lock;
  char *lines[CAP_MAX];
  size_t n;
  int level, line, closes;
  int64_t time_us;
  bool has_pid;
  otpc_pid_t pid;
  otpc_atom_t node;
  char module[64], file[256], function[64], text[256], meta[256];
} cap = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void copy(char *dst, size_t size, const char *src) {
  snprintf(dst, size, "%s", src ? src : "(null)");
}

static int cap_write(void *arg, const otpc_log_event_t *ev, const char *line,
                     size_t len) {
  pthread_mutex_lock(&cap.lock);
  if (cap.n < CAP_MAX) cap.lines[cap.n++] = strndup(line, len);
  cap.level = ev->level;
  cap.line = ev->line;
  cap.time_us = ev->time_us;
  cap.has_pid = ev->has_pid;
  cap.pid = ev->pid;
  cap.node = ev->node;
  copy(cap.module, sizeof cap.module, ev->module);
  copy(cap.file, sizeof cap.file, ev->file);
  copy(cap.function, sizeof cap.function, ev->function);
  copy(cap.text, sizeof cap.text, ev->text);
  cap.meta[0] = '\0';
  if (!otpc_term_is_none(ev->meta))
    otpc_term_snprint(cap.meta, sizeof cap.meta, ev->meta);
  pthread_mutex_unlock(&cap.lock);
  return 0;
}

static void cap_close(void *arg) {
  pthread_mutex_lock(&cap.lock);
  cap.closes++;
  pthread_mutex_unlock(&cap.lock);
}

static size_t cap_count(void) {
  pthread_mutex_lock(&cap.lock);
  size_t n = cap.n;
  pthread_mutex_unlock(&cap.lock);
  return n;
}

static const char *cap_last(void) {
  return cap.n ? cap.lines[cap.n - 1] : "";
}

static otpc_log_handler_config_t cap_config(void) {
  otpc_log_handler_config_t c = {.type = OTPC_LOG_CUSTOM};
  c.write = cap_write;
  c.close = cap_close;
  return c;
}

/* Each test starts with no handler but its own, a fixed clock. */
static void setup(void) {
  CHECK_INT_EQ(otpc_logger_remove_handler("default"), 0);
  otpc_logger_set_clock(fixed_clock);
}

static void add_cap(const char *id, const otpc_log_handler_config_t *c) {
  CHECK_INT_EQ(otpc_logger_add_handler(id, c), 0);
}

static otpc_buf_t *term(const char *text) {
  otpc_buf_t *b = NULL;
  size_t err = 0;
  if (otpc_term_parse(text, strlen(text), &b, &err) != 0)
    otpc_test_fail(__FILE__, __LINE__, "parse %s at %zu", text, err);
  return b;
}

/* ------------------------------------------------------------------------
 * Files: a fresh directory per test, whole files read back.
 * ------------------------------------------------------------------------ */

static char dir[64];

static void make_dir(void) {
  snprintf(dir, sizeof dir, "/tmp/otpc_logger_XXXXXX");
  CHECK(mkdtemp(dir) != NULL);
}

static void remove_dir(void) {
  DIR *d = opendir(dir);
  struct dirent *e;
  char path[512];
  while (d && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    unlink(path);
  }
  if (d) closedir(d);
  rmdir(dir);
}

/* The whole file, NUL-terminated (NULL if it does not exist). */
static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)n + 1);
  CHECK(fread(s, 1, (size_t)n, f) == (size_t)n);
  s[n] = '\0';
  fclose(f);
  if (len) *len = (size_t)n;
  return s;
}

static size_t count_lines(const char *s) {
  size_t n = 0;
  for (; *s; s++) n += *s == '\n';
  return n;
}

/* Runs fn with stderr going to a file; returns what it wrote. */
static char *with_stderr(void (*fn)(void)) {
  char path[128];
  snprintf(path, sizeof path, "%s/stderr", dir);
  int saved = dup(2), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  CHECK(saved >= 0 && fd >= 0);
  dup2(fd, 2);
  close(fd);
  fn();
  dup2(saved, 2);
  close(saved);
  return slurp(path, NULL);
}

/* ========================================================================
 * Levels
 * ======================================================================== */

TEST(logger_levels_filter) {
  setup();
  otpc_log_handler_config_t c = cap_config();
  add_cap("cap", &c);
  CHECK_INT_EQ(otpc_logger_primary_level(), OTPC_LEVEL_NOTICE);
  OTPC_LOG_INFO("info is below notice");
  OTPC_LOG_NOTICE("n1");
  OTPC_LOG_ERROR("e1");
  CHECK_INT_EQ(cap_count(), 2);

  CHECK_INT_EQ(otpc_logger_set_primary_level(OTPC_LEVEL_ALL), 0);
  OTPC_LOG_DEBUG("d1");
  CHECK_INT_EQ(cap_count(), 3);

  CHECK_INT_EQ(otpc_logger_set_handler_level("cap", OTPC_LEVEL_WARNING), 0);
  OTPC_LOG_NOTICE("n2");
  CHECK_INT_EQ(cap_count(), 3);
  OTPC_LOG_WARNING("w1");
  OTPC_LOG_CRITICAL("c1");
  CHECK_INT_EQ(cap_count(), 5);
  CHECK(strstr(cap_last(), " critical: ") != NULL);

  /* Below the primary level the arguments are not even evaluated. */
  int evaluated = 0;
  CHECK_INT_EQ(otpc_logger_set_primary_level(OTPC_LEVEL_NONE), 0);
  OTPC_LOG_EMERGENCY("%d", ++evaluated);
  CHECK_INT_EQ(evaluated, 0);
  CHECK_INT_EQ(cap_count(), 5);
  CHECK(!otpc_logger_allow(OTPC_LEVEL_EMERGENCY));

  CHECK_INT_EQ(otpc_logger_set_primary_level(OTPC_LEVEL_DEFAULT), 0);
  CHECK_INT_EQ(otpc_logger_primary_level(), OTPC_LEVEL_NOTICE);
  CHECK_INT_EQ(otpc_logger_set_primary_level(9), OTPC_EINVAL);
  CHECK_INT_EQ(otpc_logger_set_handler_level("cap", -2), OTPC_EINVAL);
  CHECK_INT_EQ(otpc_logger_set_handler_level("nope", 1), OTPC_EINVAL);
  CHECK_INT_EQ(otpc_log_at(0, NULL, NULL, 0, NULL, NULL, "x"), OTPC_EINVAL);

  CHECK_STR_EQ(otpc_log_level_name(OTPC_LEVEL_EMERGENCY), "emergency");
  CHECK_STR_EQ(otpc_log_level_name(OTPC_LEVEL_WARNING), "warning");
  CHECK_STR_EQ(otpc_log_level_name(OTPC_LEVEL_NONE), "none");
  CHECK(otpc_log_level_name(42) == NULL);
  CHECK_INT_EQ(otpc_log_level_parse("alert"), OTPC_LEVEL_ALERT);
  CHECK_INT_EQ(otpc_log_level_parse("all"), OTPC_LEVEL_DEBUG);
  CHECK_INT_EQ(otpc_log_level_parse("none"), OTPC_LEVEL_NONE);
  CHECK_INT_EQ(otpc_log_level_parse("loud"), OTPC_EINVAL);
}

/* ========================================================================
 * Metadata
 * ======================================================================== */

TEST(logger_metadata) {
  setup();
  otpc_log_handler_config_t c = cap_config();
  add_cap("cap", &c);
  otpc_buf_t *meta = term("#{request_id => 7, user => <<\"ann\">>}");
  otpc_term_t m = otpc_buf_term(meta);
  int line = __LINE__ + 1;
  OTPC_LOG_META(OTPC_LEVEL_ERROR, &m, "hello %s", "world");
  CHECK_INT_EQ(cap_count(), 1);
  CHECK_INT_EQ(cap.level, OTPC_LEVEL_ERROR);
  CHECK_INT_EQ(cap.time_us, FIXED_US);
  CHECK(!cap.has_pid); /* not in a process */
  CHECK(cap.node == OTPC_ATOM_NONODE);
  CHECK_STR_EQ(cap.module, "test_logger");
  CHECK(strstr(cap.file, "test_logger.c") != NULL);
  CHECK_INT_EQ(cap.line, line);
  CHECK_STR_EQ(cap.function, "test_logger_metadata");
  CHECK_STR_EQ(cap.text, "hello world");
  CHECK_STR_EQ(cap.meta, "#{request_id => 7,user => <<97,110,110>>}");

  /* Metadata must be a map. */
  otpc_buf_t *list = term("[a]");
  otpc_term_t l = otpc_buf_term(list);
  CHECK_INT_EQ(otpc_log_at(OTPC_LEVEL_ERROR, NULL, NULL, 0, NULL, &l, "x"),
               OTPC_EINVAL);
  otpc_buf_unref(list);
  otpc_buf_unref(meta);
}

static otpc_pid_t logged_by;

static void log_from_process(void *arg) {
  logged_by = otpc_self();
  OTPC_LOG_ERROR("from a process");
}

TEST(logger_pid_in_process) {
  setup();
  otpc_log_handler_config_t c = cap_config();
  add_cap("cap", &c);
  otpc_node_opts_t o = {.schedulers = 2};
  CHECK_INT_EQ(otpc_main(&o, log_from_process, NULL), 0);
  CHECK_INT_EQ(cap_count(), 1);
  CHECK(cap.has_pid);
  CHECK(otpc_pid_eq(cap.pid, logged_by));
  /* The text line shows the pid as Erlang prints it. */
  otpc_builder_t b;
  otpc_builder_init(&b);
  otpc_build_pid(&b, &logged_by);
  int rc;
  otpc_buf_t *pb = otpc_builder_finish(&b, &rc);
  char pid[64], want[256];
  otpc_term_snprint(pid, sizeof pid, otpc_buf_term(pb));
  otpc_buf_unref(pb);
  CHECK(strncmp(pid, "<0.", 3) == 0);
  snprintf(want, sizeof want,
           STAMP " error: %s test_logger.c:%d from a process\n", pid, cap.line);
  CHECK_STR_EQ(cap_last(), want);
}

/* ========================================================================
 * The text format, exactly
 * ======================================================================== */

TEST(logger_text_format_exact) {
  setup();
  otpc_log_handler_config_t c = cap_config();
  add_cap("cap", &c);
  char want[256];
  int line = __LINE__ + 1;
  OTPC_LOG_ERROR("hello %d", 42);
  snprintf(want, sizeof want, STAMP " error: test_logger.c:%d hello 42\n",
           line);
  CHECK_STR_EQ(cap_last(), want);

  /* One line, as logger_formatter's single_line: ",?\n\s*" -> ", ". */
  line = __LINE__ + 1;
  OTPC_LOG_WARNING("first\n   second,\nthird\r\n\n");
  snprintf(want, sizeof want,
           STAMP " warning: test_logger.c:%d first, second, third\n", line);
  CHECK_STR_EQ(cap_last(), want);

  /* No call site: no location. */
  otpc_log_at(OTPC_LEVEL_NOTICE, NULL, NULL, 0, NULL, NULL, "bare");
  CHECK_STR_EQ(cap_last(), STAMP " notice: bare\n");

  /* Reports: maps and lists of pairs as "key: value", others as ~w. */
  otpc_buf_t *r = term("#{port => 8080, host => db}");
  otpc_log_report_at(OTPC_LEVEL_INFO, NULL, NULL, 0, NULL, NULL,
                     otpc_buf_term(r));
  CHECK_INT_EQ(cap_count(), 3); /* info is below notice */
  otpc_log_report_at(OTPC_LEVEL_ALERT, NULL, NULL, 0, NULL, NULL,
                     otpc_buf_term(r));
  CHECK_STR_EQ(cap_last(), STAMP " alert: host: db, port: 8080\n");
  otpc_buf_unref(r);
  otpc_builder_t b; /* keys written out of order print in order */
  otpc_builder_init(&b);
  otpc_build_map(&b, 3);
  otpc_build_fmt(&b, "z");
  otpc_build_int(&b, 1);
  otpc_build_fmt(&b, "a");
  otpc_build_int(&b, 2);
  otpc_build_int(&b, 3);
  otpc_build_int(&b, 4);
  int rc;
  r = otpc_builder_finish(&b, &rc);
  CHECK(r != NULL);
  otpc_log_report_at(OTPC_LEVEL_ERROR, NULL, NULL, 0, NULL, NULL,
                     otpc_buf_term(r));
  CHECK_STR_EQ(cap_last(), STAMP " error: 3: 4, a: 2, z: 1\n");
  otpc_buf_unref(r);
  r = term("[{a, 1}, {b, [x]}]");
  otpc_log_report_at(OTPC_LEVEL_ERROR, NULL, NULL, 0, NULL, NULL,
                     otpc_buf_term(r));
  CHECK_STR_EQ(cap_last(), STAMP " error: a: 1, b: [x]\n");
  otpc_buf_unref(r);
  r = term("{odd, \"report\"}");
  otpc_log_report_at(OTPC_LEVEL_ERROR, NULL, NULL, 0, NULL, NULL,
                     otpc_buf_term(r));
  CHECK_STR_EQ(cap_last(), STAMP " error: {odd,\"report\"}\n");
  otpc_buf_unref(r);
  CHECK_INT_EQ(otpc_logger_remove_handler("cap"), 0);

  /* Options: several lines, full path, local time. */
  c.text.multi_line = true;
  c.text.full_path = true;
  c.text.local_time = true;
  setenv("TZ", "XYZ-5:30", 1); /* POSIX: 5:30 east of UTC */
  tzset();
  add_cap("cap2", &c);
  otpc_log_at(OTPC_LEVEL_ERROR, NULL, "src/a/b.c", 7, "f", NULL, "x\n  y\n");
  CHECK_STR_EQ(cap_last(),
               "2026-11-22T10:20:01.123456+05:30 error: src/a/b.c:7 x\n  y\n");
}

/* ========================================================================
 * The term format
 * ======================================================================== */

TEST(logger_term_format_parses) {
  setup();
  otpc_log_handler_config_t c = cap_config();
  c.formatter.format = otpc_log_term_format;
  add_cap("cap", &c);
  otpc_buf_t *meta = term("#{trace => 99, line => 1}");
  otpc_term_t m = otpc_buf_term(meta);
  OTPC_LOG_META(OTPC_LEVEL_ERROR, &m, "disk %s", "full");
  const char *line = cap_last();
  size_t len = strlen(line);
  CHECK(len > 2 && strcmp(line + len - 2, ".\n") == 0);

  otpc_buf_t *ev = NULL;
  CHECK_INT_EQ(otpc_term_parse(line, len - 1, &ev, NULL), 0);
  otpc_term_t t = otpc_buf_term(ev);
  CHECK(otpc_term_atom_eq(otpc_term_map_get_atom(t, "level"), "error", 5));
  otpc_buf_t *want = term("{string, <<\"disk full\">>}");
  CHECK(otpc_term_equal(otpc_term_map_get_atom(t, "msg"), otpc_buf_term(want)));
  otpc_buf_unref(want);
  otpc_term_t mt = otpc_term_map_get_atom(t, "meta");
  int64_t v;
  CHECK_INT_EQ(otpc_term_get_int64(otpc_term_map_get_atom(mt, "time"), &v), 0);
  CHECK_INT_EQ(v, FIXED_US);
  CHECK_INT_EQ(otpc_term_get_int64(otpc_term_map_get_atom(mt, "trace"), &v), 0);
  CHECK_INT_EQ(v, 99);
  /* The caller's line replaces the logger's. */
  CHECK_INT_EQ(otpc_term_get_int64(otpc_term_map_get_atom(mt, "line"), &v), 0);
  CHECK_INT_EQ(v, 1);
  CHECK(otpc_term_atom_eq(otpc_term_map_get_atom(mt, "node"), "nonode@nohost",
                          13));
  CHECK(otpc_term_atom_eq(otpc_term_map_get_atom(mt, "module"), "test_logger",
                          11));
  CHECK(otpc_term_atom_eq(otpc_term_map_get_atom(mt, "function"),
                          "test_logger_term_format_parses", 30));
  CHECK(otpc_term_is_none(otpc_term_map_get_atom(mt, "pid")));
  const uint8_t *file;
  size_t flen;
  unsigned bits;
  CHECK_INT_EQ(otpc_term_get_binary(otpc_term_map_get_atom(mt, "file"), &file,
                                    &flen, &bits),
               0);
  CHECK(flen >= 13 && memcmp(file + flen - 13, "test_logger.c", 13) == 0);
  otpc_buf_unref(ev);
  otpc_buf_unref(meta);

  /* A report event too. */
  otpc_buf_t *r = term("#{what => [1, 2.5, \"s\"]}");
  OTPC_LOG_REPORT(OTPC_LEVEL_NOTICE, otpc_buf_term(r), NULL);
  line = cap_last();
  CHECK_INT_EQ(otpc_term_parse(line, strlen(line), &ev, NULL), 0);
  otpc_buf_t *want_msg = term("{report, #{what => [1, 2.5, \"s\"]}}");
  CHECK(otpc_term_equal(otpc_term_map_get_atom(otpc_buf_term(ev), "msg"),
                        otpc_buf_term(want_msg)));
  otpc_buf_unref(want_msg);
  otpc_buf_unref(ev);
  otpc_buf_unref(r);
}

/* A formatter of one's own, and a filter. */
static int short_format(const otpc_log_event_t *ev, otpc_log_out_t *out,
                        void *arg) {
  return otpc_log_out_printf(out, "%s|%s|%s\n", (const char *)arg,
                             otpc_log_level_name(ev->level), ev->text);
}

static bool no_secrets(const otpc_log_event_t *ev, void *arg) {
  return ev->text == NULL || strstr(ev->text, (const char *)arg) == NULL;
}

TEST(logger_custom_formatter_and_filter) {
  setup();
  otpc_log_handler_config_t c = cap_config();
  c.formatter.format = short_format;
  c.formatter.arg = "app";
  c.filter = no_secrets;
  c.filter_arg = "password";
  add_cap("cap", &c);
  OTPC_LOG_ERROR("the password is 1234");
  OTPC_LOG_NOTICE("up %d", 3);
  CHECK_INT_EQ(cap_count(), 1);
  CHECK_STR_EQ(cap_last(), "app|notice|up 3\n");
}

/* ========================================================================
 * Handlers at run time
 * ======================================================================== */

TEST(logger_add_remove_handlers) {
  setup();
  otpc_log_handler_config_t c = cap_config();
  add_cap("cap", &c);
  CHECK_INT_EQ(otpc_logger_add_handler("cap", &c), OTPC_EEXIST);
  CHECK_INT_EQ(otpc_logger_add_handler("", &c), OTPC_EINVAL);
  CHECK_INT_EQ(otpc_logger_remove_handler("nope"), OTPC_EINVAL);
  CHECK_INT_EQ(otpc_logger_handler_status("nope"), OTPC_EINVAL);
  CHECK_INT_EQ(otpc_logger_handler_status("cap"), 0);
  otpc_log_handler_config_t bad = {.type = OTPC_LOG_FILE};
  CHECK_INT_EQ(otpc_logger_add_handler("f", &bad), OTPC_EINVAL);
  bad.file = "/nonexistent/dir/x.log";
  CHECK_INT_EQ(otpc_logger_add_handler("f", &bad), OTPC_EIO);
  CHECK_INT_EQ(otpc_logger_handler_status("f"), OTPC_EINVAL);

  OTPC_LOG_ERROR("one");
  CHECK_INT_EQ(otpc_logger_remove_handler("cap"), 0);
  CHECK_INT_EQ(cap.closes, 1);
  OTPC_LOG_ERROR("two");
  CHECK_INT_EQ(cap_count(), 1);

  /* A stderr handler with no config at all. */
  CHECK_INT_EQ(otpc_logger_add_handler("console", NULL), 0);
  char ids[16];
  int added = 1;
  for (int i = 0; i < OTPC_LOGGER_MAX_HANDLERS; i++) {
    snprintf(ids, sizeof ids, "h%d", i);
    if (otpc_logger_add_handler(ids, &c) == 0) added++;
  }
  CHECK_INT_EQ(added, OTPC_LOGGER_MAX_HANDLERS);
  CHECK_INT_EQ(otpc_logger_add_handler("more", &c), OTPC_ESYSLIMIT);
}

/* Threads log while another adds and removes handlers. */
static atomic_int churn_done;

static void *churn_logger(void *arg) {
  while (!atomic_load(&churn_done)) OTPC_LOG_ERROR("churn %d", 1);
  return NULL;
}

TEST(logger_handlers_churn) {
  setup();
  pthread_t th[3];
  for (int i = 0; i < 3; i++)
    CHECK_INT_EQ(pthread_create(&th[i], NULL, churn_logger, NULL), 0);
  otpc_log_handler_config_t c = cap_config();
  for (int i = 0; i < 300; i++) {
    CHECK_INT_EQ(otpc_logger_add_handler("cap", &c), 0);
    OTPC_LOG_ERROR("main");
    CHECK_INT_EQ(otpc_logger_remove_handler("cap"), 0);
  }
  atomic_store(&churn_done, 1);
  for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
  CHECK_INT_EQ(cap.closes, 300);
  CHECK(cap_count() >= 300);
}

/* A handler that logs: the inner event is dropped, nothing deadlocks. */
static int inner_rc = 1;

static int logging_write(void *arg, const otpc_log_event_t *ev,
                         const char *line, size_t len) {
  inner_rc = otpc_log_at(OTPC_LEVEL_ERROR, NULL, NULL, 0, NULL, NULL, "inner");
  return cap_write(arg, ev, line, len);
}

TEST(logger_recursion_dropped) {
  setup();
  otpc_log_handler_config_t c = cap_config();
  c.write = logging_write;
  add_cap("cap", &c);
  OTPC_LOG_ERROR("outer");
  CHECK_INT_EQ(inner_rc, OTPC_ESTATE);
  CHECK_INT_EQ(cap_count(), 1);
}

/* ========================================================================
 * Files and rotation
 * ======================================================================== */

TEST(logger_file_handler_writes) {
  setup();
  make_dir();
  char path[128];
  snprintf(path, sizeof path, "%s/app.log", dir);
  otpc_log_handler_config_t c = {.type = OTPC_LOG_FILE, .file = path};
  c.level = OTPC_LEVEL_WARNING;
  CHECK_INT_EQ(otpc_logger_add_handler("file", &c), 0);
  otpc_log_at(OTPC_LEVEL_ERROR, NULL, "x.c", 1, "f", NULL, "one");
  otpc_log_at(OTPC_LEVEL_NOTICE, NULL, "x.c", 2, "f", NULL, "filtered");
  otpc_log_at(OTPC_LEVEL_WARNING, NULL, "x.c", 3, "f", NULL, "two");
  CHECK_INT_EQ(otpc_logger_remove_handler("file"), 0);
  /* Adding again appends. */
  CHECK_INT_EQ(otpc_logger_add_handler("file", &c), 0);
  otpc_log_at(OTPC_LEVEL_ALERT, NULL, "x.c", 4, "f", NULL, "three");
  CHECK_INT_EQ(otpc_logger_remove_handler("file"), 0);
  char *s = slurp(path, NULL);
  CHECK_STR_EQ(s, STAMP " error: x.c:1 one\n" STAMP
                        " warning: x.c:3 two\n" STAMP " alert: x.c:4 three\n");
  free(s);
  remove_dir();
}

#define THREADS 8
#define PER_THREAD 400
#define ROT_BYTES 4096
#define ROT_FILES 200

/* The message of line n of thread t: its length varies with n. */
static void message_of(int t, int n, char *buf, size_t size) {
  int pad = (t * 7 + n) % 60;
  snprintf(buf, size, "t%d n%05d |%.*s", t, n, pad,
           "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
}

static void *rot_logger(void *arg) {
  int t = (int)(intptr_t)arg;
  char msg[128];
  for (int n = 0; n < PER_THREAD; n++) {
    message_of(t, n, msg, sizeof msg);
    CHECK_INT_EQ(
        otpc_log_at(OTPC_LEVEL_ERROR, NULL, "r.c", t, "f", NULL, "%s", msg), 0);
  }
  return NULL;
}

/* Checks one file's lines: each whole, each new, each thread in order. */
static void check_rotated(const char *path, unsigned char *seen, int *last,
                          size_t *total) {
  size_t len;
  char *s = slurp(path, &len), *p = s, want[256], msg[128];
  CHECK(s != NULL);
  CHECK(len <= ROT_BYTES);
  CHECK(len == 0 || s[len - 1] == '\n');
  while (*p) {
    char *nl = strchr(p, '\n');
    *nl = '\0';
    int t, n;
    CHECK(sscanf(p, STAMP " error: r.c:%d t%*d n%d", &t, &n) == 2);
    CHECK(t >= 0 && t < THREADS && n >= 0 && n < PER_THREAD);
    message_of(t, n, msg, sizeof msg);
    snprintf(want, sizeof want, STAMP " error: r.c:%d %s", t, msg);
    CHECK_STR_EQ(p, want);
    CHECK(seen[t * PER_THREAD + n]++ == 0);
    CHECK(n > last[t]); /* oldest file first: each thread in order */
    last[t] = n;
    (*total)++;
    p = nl + 1;
  }
  free(s);
}

TEST(logger_rotation_concurrent) {
  setup();
  make_dir();
  char path[128], name[160];
  snprintf(path, sizeof path, "%s/rot.log", dir);
  otpc_log_handler_config_t c = {.type = OTPC_LOG_FILE, .file = path};
  c.max_bytes = ROT_BYTES;
  c.max_files = ROT_FILES;
  CHECK_INT_EQ(otpc_logger_add_handler("rot", &c), 0);
  pthread_t th[THREADS];
  for (int t = 0; t < THREADS; t++)
    CHECK_INT_EQ(pthread_create(&th[t], NULL, rot_logger, (void *)(intptr_t)t),
                 0);
  for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
  CHECK_INT_EQ(otpc_logger_handler_status("rot"), 0);
  CHECK_INT_EQ(otpc_logger_remove_handler("rot"), 0);

  static unsigned char seen[THREADS * PER_THREAD];
  int last[THREADS];
  for (int t = 0; t < THREADS; t++) last[t] = -1;
  size_t total = 0;
  int archives = 0;
  struct stat st;
  snprintf(name, sizeof name, "%s.%d", path, ROT_FILES);
  CHECK(stat(name, &st) != 0); /* never more than max_files archives */
  for (int i = ROT_FILES - 1; i >= 0; i--) {
    snprintf(name, sizeof name, "%s.%d", path, i);
    if (stat(name, &st) != 0) continue;
    archives++;
    check_rotated(name, seen, last, &total);
  }
  check_rotated(path, seen, last, &total);
  CHECK(archives > 20);        /* it did rotate, many times */
  CHECK(archives < ROT_FILES); /* and dropped nothing */
  CHECK_INT_EQ(total, THREADS * PER_THREAD);
  remove_dir();
}

TEST(logger_rotation_keeps_max_files) {
  setup();
  make_dir();
  char path[128], name[160];
  snprintf(path, sizeof path, "%s/small.log", dir);
  otpc_log_handler_config_t c = {.type = OTPC_LOG_FILE, .file = path};
  c.max_bytes = 256;
  c.max_files = 3;
  CHECK_INT_EQ(otpc_logger_add_handler("small", &c), 0);
  for (int i = 0; i < 100; i++)
    otpc_log_at(OTPC_LEVEL_ERROR, NULL, NULL, 0, NULL, NULL, "line %03d", i);
  CHECK_INT_EQ(otpc_logger_remove_handler("small"), 0);
  size_t len;
  for (int i = 0; i < 3; i++) {
    snprintf(name, sizeof name, "%s.%d", path, i);
    char *s = slurp(name, &len);
    CHECK(s != NULL && len > 0 && len <= 256);
    free(s);
  }
  snprintf(name, sizeof name, "%s.3", path);
  CHECK(slurp(name, NULL) == NULL);
  /* Added again over its old archives: still three. */
  CHECK_INT_EQ(otpc_logger_add_handler("small", &c), 0);
  for (int i = 0; i < 100; i++)
    otpc_log_at(OTPC_LEVEL_ERROR, NULL, NULL, 0, NULL, NULL, "line %03d", i);
  CHECK_INT_EQ(otpc_logger_remove_handler("small"), 0);
  CHECK(slurp(name, NULL) == NULL);
  /* The newest line is last in the current file; .0 is just older. */
  char *s = slurp(path, &len);
  CHECK(len <= 256 && strstr(s, "line 099\n") != NULL);
  free(s);
  snprintf(name, sizeof name, "%s.0", path);
  s = slurp(name, &len);
  CHECK(strstr(s, "line 099") == NULL);
  free(s);

  /* max_files 0: the file is emptied instead. */
  snprintf(path, sizeof path, "%s/trunc.log", dir);
  c.file = path;
  c.max_files = 0;
  CHECK_INT_EQ(otpc_logger_add_handler("trunc", &c), 0);
  for (int i = 0; i < 100; i++)
    otpc_log_at(OTPC_LEVEL_ERROR, NULL, NULL, 0, NULL, NULL, "line %03d", i);
  CHECK_INT_EQ(otpc_logger_remove_handler("trunc"), 0);
  s = slurp(path, &len);
  CHECK(len > 0 && len <= 256 && strstr(s, "line 099\n") != NULL);
  free(s);
  snprintf(name, sizeof name, "%s.0", path);
  CHECK(slurp(name, NULL) == NULL);
  remove_dir();
}

/* Processes on a node log to one file at once. */
static void log_lines(void *arg) {
  for (int i = 0; i < 50; i++) {
    OTPC_LOG_ERROR("process line %d", i);
    if (i % 10 == 0) otpc_yield();
  }
}

static void spawn_loggers(void *arg) {
  for (int i = 0; i < 4; i++)
    CHECK_INT_EQ(otpc_spawn(log_lines, NULL, NULL, NULL), 0);
}

TEST(logger_processes_log_to_file) {
  setup();
  make_dir();
  char path[128];
  snprintf(path, sizeof path, "%s/procs.log", dir);
  otpc_log_handler_config_t c = {.type = OTPC_LOG_FILE, .file = path};
  c.max_bytes = 2048;
  c.max_files = 100;
  CHECK_INT_EQ(otpc_logger_add_handler("procs", &c), 0);
  otpc_node_opts_t o = {.schedulers = 2};
  CHECK_INT_EQ(otpc_main(&o, spawn_loggers, NULL), 0);
  CHECK_INT_EQ(otpc_logger_remove_handler("procs"), 0);
  size_t lines = 0;
  char name[160];
  for (int i = -1; i < 100; i++) {
    if (i < 0)
      snprintf(name, sizeof name, "%s", path);
    else
      snprintf(name, sizeof name, "%s.%d", path, i);
    char *s = slurp(name, NULL);
    if (s == NULL) continue;
    lines += count_lines(s);
    for (char *p = s; *p; p = strchr(p, '\n') + 1)
      CHECK(strncmp(p, STAMP " error: <0.", 39) == 0);
    free(s);
  }
  CHECK_INT_EQ(lines, 200);
  remove_dir();
}

/* ========================================================================
 * Failures
 * ======================================================================== */

static int full_rc[3];

static void log_three(void) {
  for (int i = 0; i < 3; i++)
    full_rc[i] =
        otpc_log_at(OTPC_LEVEL_ERROR, NULL, NULL, 0, NULL, NULL, "event %d", i);
}

TEST(logger_failing_handler_disabled) {
  setup();
  make_dir();
  otpc_log_handler_config_t full = {.type = OTPC_LOG_FILE, .file = "/dev/full"};
  CHECK_INT_EQ(otpc_logger_add_handler("full", &full), 0);
  otpc_log_handler_config_t c = cap_config();
  add_cap("cap", &c);
  char *err = with_stderr(log_three);
  CHECK_INT_EQ(full_rc[0], OTPC_EIO);
  CHECK_INT_EQ(full_rc[1], 0);
  CHECK_INT_EQ(full_rc[2], 0);
  CHECK_INT_EQ(cap_count(), 3); /* the other handler goes on */
  CHECK_INT_EQ(count_lines(err), 1);
  CHECK(strstr(err, "handler full disabled: write /dev/full failed") != NULL);
  free(err);
  CHECK_INT_EQ(otpc_logger_handler_status("full"), OTPC_EIO);
  CHECK_INT_EQ(otpc_logger_handler_status("cap"), 0);
  CHECK_INT_EQ(otpc_logger_remove_handler("full"), 0);
  remove_dir();
}

static int refuse(void *arg, const otpc_log_event_t *ev, const char *line,
                  size_t len) {
  return OTPC_EIO;
}

static void log_twice(void) {
  OTPC_LOG_ERROR("a");
  OTPC_LOG_ERROR("b");
}

TEST(logger_failing_custom_handler_disabled) {
  setup();
  make_dir();
  otpc_log_handler_config_t c = {.type = OTPC_LOG_CUSTOM, .write = refuse};
  CHECK_INT_EQ(otpc_logger_add_handler("refuses", &c), 0);
  char *err = with_stderr(log_twice);
  CHECK_INT_EQ(count_lines(err), 1);
  CHECK(strstr(err, "handler refuses disabled") != NULL);
  free(err);
  CHECK_INT_EQ(otpc_logger_handler_status("refuses"), OTPC_EIO);
  remove_dir();
}

/* An allocator that fails while fail is set. */
static atomic_int fail;
static void *fail_malloc(size_t n) {
  return atomic_load(&fail) ? NULL : malloc(n);
}
static void *fail_realloc(void *p, size_t n) {
  return atomic_load(&fail) ? NULL : realloc(p, n);
}

TEST(logger_out_of_memory_is_an_error) {
  setup();
  otpc_log_handler_config_t c = cap_config();
  add_cap("cap", &c);
  otpc_allocator_t a = {fail_malloc, fail_realloc, free};
  otpc_set_allocator(&a);
  atomic_store(&fail, 1);
  char big[2000];
  memset(big, 'z', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  CHECK_INT_EQ(
      otpc_log_at(OTPC_LEVEL_ERROR, NULL, NULL, 0, NULL, NULL, "%s", big),
      OTPC_ENOMEM);
  /* A message that fits the stack buffer but not the line buffer. */
  big[800] = '\0';
  CHECK_INT_EQ(otpc_log_at(OTPC_LEVEL_ERROR, NULL, "f.c", 1, NULL, NULL, "%s%s",
                           big, big),
               OTPC_ENOMEM);
  big[500] = '\0';
  CHECK_INT_EQ(otpc_log_at(OTPC_LEVEL_ERROR, NULL, "f.c", 1, NULL, NULL, "%s%s",
                           big, big),
               OTPC_ENOMEM);
  CHECK_INT_EQ(cap_count(), 0);
  /* Small events need no allocation and still go through. */
  CHECK_INT_EQ(otpc_log_at(OTPC_LEVEL_ERROR, NULL, NULL, 0, NULL, NULL, "ok"),
               0);
  atomic_store(&fail, 0);
  otpc_set_allocator(NULL);
  CHECK_INT_EQ(cap_count(), 1);
  CHECK_INT_EQ(otpc_logger_handler_status("cap"), 0);
  CHECK_STR_EQ(cap_last(), STAMP " error: ok\n");
}

/* ========================================================================
 * Crash reports
 * ======================================================================== */

TEST(logger_crash_report) {
  setup();
  otpc_log_handler_config_t c = cap_config();
  add_cap("cap", &c);
  otpc_log_handler_config_t t = cap_config();
  t.formatter.format = otpc_log_term_format;
  add_cap("term", &t);
  otpc_pid_t pid = {OTPC_ATOM_NONODE, 83, 0, 0};
  otpc_buf_t *reason = term("{badarith, [{calc, add, 2}]}");
  otpc_buf_t *extra =
      term("[{initial_call, {calc, init, 1}}, {registered_name, calc}]");
  otpc_term_t x = otpc_buf_term(extra);
  CHECK_INT_EQ(otpc_logger_crash_report(pid, otpc_buf_term(reason), &x), 0);
  CHECK_INT_EQ(cap_count(), 2); /* one event, through two handlers */
  CHECK_STR_EQ(cap.lines[0], STAMP
               " error: <0.83.0> crasher: pid: <0.83.0>, exception "
               "exit: {badarith,[{calc,add,2}]}, initial call: "
               "{calc,init,1}, registered_name: calc\n");
  otpc_buf_t *ev = NULL;
  CHECK_INT_EQ(otpc_term_parse(cap.lines[1], strlen(cap.lines[1]), &ev, NULL),
               0);
  otpc_buf_t *want = term(
      "{report, #{label => {proc_lib, crash}, report => [[{pid, <0.83.0>}, "
      "{error_info, {exit, {badarith, [{calc, add, 2}]}, []}}, "
      "{initial_call, {calc, init, 1}}, {registered_name, calc}], []]}}");
  otpc_term_t e = otpc_buf_term(ev);
  CHECK(otpc_term_equal(otpc_term_map_get_atom(e, "msg"), otpc_buf_term(want)));
  otpc_buf_t *domain = term("[otp, sasl]");
  CHECK(otpc_term_equal(
      otpc_term_map_get_atom(otpc_term_map_get_atom(e, "meta"), "domain"),
      otpc_buf_term(domain)));
  otpc_buf_unref(domain);
  otpc_buf_unref(want);
  otpc_buf_unref(ev);

  /* A map of extra items, multi-line text. */
  CHECK_INT_EQ(otpc_logger_remove_handler("term"), 0);
  c.text.multi_line = true;
  add_cap("multi", &c);
  otpc_buf_t *xm = term("#{messages => []}");
  x = otpc_buf_term(xm);
  CHECK_INT_EQ(otpc_logger_crash_report(pid, otpc_buf_term(reason), &x), 0);
  CHECK_STR_EQ(cap_last(), STAMP
               " error: <0.83.0> crasher:\n    pid: "
               "<0.83.0>\n    exception exit: "
               "{badarith,[{calc,add,2}]}\n    messages: []\n");
  CHECK_INT_EQ(cap_count(), 4);

  /* No crash, no report. */
  const char *normal[] = {"normal", "shutdown", "{shutdown, restart}"};
  for (int i = 0; i < 3; i++) {
    otpc_buf_t *r = term(normal[i]);
    CHECK_INT_EQ(otpc_logger_crash_report(pid, otpc_buf_term(r), NULL), 0);
    otpc_buf_unref(r);
  }
  CHECK_INT_EQ(cap_count(), 4);
  otpc_buf_t *r = term("killed");
  CHECK_INT_EQ(otpc_logger_crash_report(pid, otpc_buf_term(r), NULL), 0);
  CHECK_INT_EQ(cap_count(), 6);
  CHECK_STR_EQ(cap.lines[4], STAMP
               " error: <0.83.0> crasher: pid: <0.83.0>, exception "
               "exit: killed\n");
  otpc_buf_unref(r);
  otpc_buf_unref(xm);
  otpc_buf_unref(extra);
  otpc_buf_unref(reason);
}
