/*
 * test_fault_reports.c: faults in gen_server callbacks (docs/faults.md).
 * A server whose handle_call fails an otpc_assert, calls otpc_fail,
 * overflows its stack or (containing signals) touches a page it may not
 * dies with the fault's reason: the caller's call returns OTPC_EEXITED
 * with it, and the crash report shows it. Under a supervisor, such a
 * server is restarted, and the supervisor's report names the fault.
 */
#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>

#include "otpc.h"
#include "otpc/logger.h"
#include "otpc/supervisor.h"
#include "test.h"

static otpc_buf_t *T(const char *text) {
  otpc_buf_t *b = otpc_term_fmt(text);
  if (b == NULL) otpc_test_fail(__FILE__, __LINE__, "bad term %s", text);
  return b;
}

static volatile int limit = 1 << 30;

static __attribute__((noinline)) int recurse(int n) {
  volatile char pad[512];
  pad[n % 512] = (char)n;
  if (n >= limit) return pad[0];
  return recurse(n + 1) + pad[n % 512];
}

static char *volatile no_access;

static void f_init(void *arg, void **state, otpc_gs_result_t *r) {
  otpc_contain_signals(true);
  *state = NULL;
  r->action = OTPC_GS_NOREPLY; /* ok */
}

static void f_call(void **state, otpc_term_t req, const otpc_from_t *from,
                   otpc_gs_result_t *r) {
  if (otpc_term_is_atom(req, otpc_atom("assert"))) {
    int answer = 41;
    otpc_assert(answer == 42);
  } else if (otpc_term_is_atom(req, otpc_atom("fail"))) {
    otpc_fail("no %s today", "luck");
  } else if (otpc_term_is_atom(req, otpc_atom("overflow"))) {
    recurse(0);
  } else if (otpc_term_is_atom(req, otpc_atom("segv"))) {
    (void)*(volatile char *)no_access;
  }
  otpc_gs_reply(r, T("ok"));
}

static const otpc_gen_server_t faulty = {
    .name = "faulty", .init = f_init, .handle_call = f_call};

/* The crash reports seen, one line each. */
#define MAX_LINES 64
static char lines[MAX_LINES][2048];
static _Atomic int nlines;

static int catch_reports(void *arg, const otpc_log_event_t *ev,
                         const char *line, size_t len) {
  int i = atomic_fetch_add(&nlines, 1);
  if (i < MAX_LINES)
    snprintf(lines[i], sizeof lines[i], "%.*s", (int)len, line);
  return 0;
}

/* Whether a line has both texts. */
static bool seen(const char *a, const char *b) {
  int n = atomic_load(&nlines);
  for (int i = 0; i < n && i < MAX_LINES; i++)
    if (strstr(lines[i], a) && strstr(lines[i], b)) return true;
  return false;
}

static bool reported(const char *what) {
  return seen("crasher", what);
}

/* Calls the server with req; it must die with a reason that starts as
 * want, and the crash report must show that reason whole. */
static void call_dies(const char *req, const char *want) {
  otpc_pid_t s;
  CHECK_INT_EQ(otpc_gen_server_start(&faulty, NULL, NULL, &s, NULL), 0);
  otpc_buf_t *r = T(req), *reply = NULL;
  CHECK_INT_EQ(otpc_gen_server_call(s, r, 10000, &reply), OTPC_EEXITED);
  char *text = NULL;
  CHECK_INT_EQ(otpc_term_print_p(otpc_buf_term(reply), &text, NULL), 0);
  if (strncmp(text, want, strlen(want)) != 0)
    otpc_test_fail(__FILE__, __LINE__, "%s: reason %s", req, text);
  otpc_buf_unref(reply);
  otpc_buf_unref(r);
  /* Reports are written by the handler as they are logged: the report
   * came before the call returned, since it precedes the DOWN. */
  char exit[1200];
  snprintf(exit, sizeof exit, "exception exit: %s,", text);
  if (!reported(exit))
    otpc_test_fail(__FILE__, __LINE__, "no crash report with %s", exit);
  free(text);
}

static void body(void *arg) {
  no_access = mmap(NULL, (size_t)sysconf(_SC_PAGESIZE), PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(no_access != MAP_FAILED);
  otpc_logger_remove_handler("default");
  otpc_log_handler_config_t cfg = {.type = OTPC_LOG_CUSTOM,
                                   .write = catch_reports};
  CHECK_INT_EQ(otpc_logger_add_handler("catch", &cfg), 0);
  call_dies("assert", "{assert,<<");
  call_dies("fail", "{fail,<<");
  call_dies("overflow", "stack_overflow");
  char addr[64];
  snprintf(addr, sizeof addr, "{signal,sigsegv,%llu}",
           (unsigned long long)(uintptr_t)no_access);
  call_dies("segv", addr);
  CHECK_INT_EQ(otpc_logger_remove_handler("catch"), 0);
}

TEST(gen_server_faults_show_in_crash_reports) {
  otpc_node_opts_t o = {.schedulers = 2};
  CHECK_INT_EQ(otpc_main(&o, body, NULL), 0);
}

/* ---- under a supervisor -------------------------------------------------- */

static int start_faulty(void *arg, otpc_pid_t *pid, otpc_buf_t **reason) {
  otpc_gs_opts_t o = {.name = otpc_atom("faulty_srv"), .link = true};
  return otpc_gen_server_start(&faulty, NULL, &o, pid, reason);
}

/* The registered server once it is another than old. */
static otpc_pid_t restarted(otpc_pid_t old) {
  otpc_pid_t now;
  for (int i = 0; i < 2000; i++) {
    if (otpc_whereis(otpc_atom("faulty_srv"), &now) == 0 &&
        !otpc_pid_eq(now, old))
      return now;
    otpc_sleep(5);
  }
  otpc_test_fail(__FILE__, __LINE__, "the server was not restarted");
}

static void body_supervised(void *arg) {
  no_access = mmap(NULL, (size_t)sysconf(_SC_PAGESIZE), PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(no_access != MAP_FAILED);
  otpc_logger_remove_handler("default");
  otpc_log_handler_config_t cfg = {.type = OTPC_LOG_CUSTOM,
                                   .write = catch_reports};
  CHECK_INT_EQ(otpc_logger_add_handler("catch", &cfg), 0);
  otpc_child_spec_t child = {.id = "faulty", .start = start_faulty};
  otpc_sup_spec_t spec = {.strategy = OTPC_ONE_FOR_ONE,
                          .intensity = 100,
                          .period_ms = 60000,
                          .children = &child,
                          .nchildren = 1};
  otpc_pid_t sup, server;
  CHECK_INT_EQ(otpc_supervisor_start(&spec, 0, &sup, NULL), 0);
  CHECK_INT_EQ(otpc_whereis(otpc_atom("faulty_srv"), &server), 0);
  const char *faults[] = {"overflow", "segv", "assert", "fail", "overflow"};
  for (int i = 0; i < 5; i++) {
    otpc_buf_t *r = T(faults[i]), *reply = NULL;
    CHECK_INT_EQ(otpc_gen_server_call(server, r, 10000, &reply), OTPC_EEXITED);
    otpc_buf_unref(reply);
    otpc_buf_unref(r);
    server = restarted(server);
  }
  otpc_buf_t *r = T("ping"), *reply = NULL;
  CHECK_INT_EQ(otpc_gen_server_call(server, r, 10000, &reply), 0);
  otpc_buf_unref(reply);
  otpc_buf_unref(r);
  CHECK_INT_EQ(otpc_logger_remove_handler("catch"), 0);
  CHECK(seen("child_terminated", "stack_overflow"));
  CHECK(seen("child_terminated", "{signal,sigsegv,"));
  otpc_unlink(sup);
  otpc_exit_signal(sup, otpc_buf_term(r = T("shutdown")));
  otpc_buf_unref(r);
}

TEST(supervisor_restarts_a_server_after_each_fault) {
  otpc_node_opts_t o = {.schedulers = 2};
  CHECK_INT_EQ(otpc_main(&o, body_supervised, NULL), 0);
}
