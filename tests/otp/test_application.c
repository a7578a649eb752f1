/*
 * test_application.c: applications. Start in dependency order and stop in
 * reverse, missing and circular dependencies, a failed start undone,
 * prep_stop/stop around the tree's shutdown, the environment (spec
 * defaults < sys.config < command line, set/unset/get_all), malformed
 * configuration applying nothing, and what an application's end does:
 * a permanent one (and an abnormal transient one) halts the node after
 * stopping the others in reverse; a normal transient and a temporary one
 * are only reported.
 *
 * Test applications (tapp_t) start a real tree: a one_for_one supervisor
 * with intensity 0 and one gen_server worker that traps exits. Their
 * callbacks append to `events` ("start:a,prep:a,term:a,stop:a,"), which
 * survives the node: a halting test reads it after otpc_main returns.
 * The worker records term:X only for a shutdown, so that order is fixed.
 */
#include <pthread.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#include "otpc.h"
#include "otpc/application.h"
#include "otpc/logger.h"
#include "test.h"

/* ---- events and captured log lines ------------------------------------ */

static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;
static char events[8192];
static char logged[16384];

__attribute__((format(printf, 1, 2))) static void ev(const char *fmt, ...) {
  char one[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(one, sizeof one, fmt, ap);
  va_end(ap);
  pthread_mutex_lock(&ev_lock);
  size_t n = strlen(events);
  snprintf(events + n, sizeof events - n, "%s,", one);
  pthread_mutex_unlock(&ev_lock);
}

static void events_reset(void) {
  pthread_mutex_lock(&ev_lock);
  events[0] = '\0';
  pthread_mutex_unlock(&ev_lock);
}

/* The events so far, copied (the test's own thread reads while others
 * may write). */
static const char *events_now(void) {
  static char copy[sizeof events];
  pthread_mutex_lock(&ev_lock);
  memcpy(copy, events, sizeof copy);
  pthread_mutex_unlock(&ev_lock);
  return copy;
}

static bool log_has(const char *text) {
  pthread_mutex_lock(&ev_lock);
  bool has = strstr(logged, text) != NULL;
  pthread_mutex_unlock(&ev_lock);
  return has;
}

static int cap_write(void *arg, const otpc_log_event_t *e, const char *line,
                     size_t len) {
  (void)arg;
  (void)e;
  pthread_mutex_lock(&ev_lock);
  size_t n = strlen(logged);
  if (n + len < sizeof logged) {
    memcpy(logged + n, line, len);
    logged[n + len] = '\0';
  }
  pthread_mutex_unlock(&ev_lock);
  return 0;
}

/* No stderr output; every event (info included) into `logged`. */
static void capture_log(void) {
  otpc_logger_remove_handler("default");
  otpc_logger_remove_handler("cap");
  otpc_log_handler_config_t c = {.type = OTPC_LOG_CUSTOM, .write = cap_write};
  CHECK_INT_EQ(otpc_logger_add_handler("cap", &c), 0);
  otpc_logger_set_primary_level(OTPC_LEVEL_INFO);
}

/* ---- test applications ------------------------------------------------- */

typedef struct tapp {
  const char *name;
  int fail; /* start fails with this code */
  otpc_pid_t top, worker;
  otpc_sup_gs_child_t gs;
  otpc_child_spec_t child;
  otpc_sup_spec_t sup;
} tapp_t;

static void w_init(void *arg, void **state, otpc_gs_result_t *r) {
  (void)r;
  tapp_t *t = arg;
  *state = t;
  otpc_trap_exit(true);
  t->worker = otpc_self();
  /* An application's processes may read its environment while it
   * starts: the controller is not blocked by a start. */
  otpc_buf_t *v;
  if (otpc_app_get_env(otpc_atom(t->name), otpc_atom("greeting"), &v) == 1) {
    char text[64];
    otpc_term_snprint(text, sizeof text, otpc_buf_term(v));
    ev("env:%s=%s", t->name, text);
    otpc_buf_unref(v);
  }
}

static void w_info(void **state, otpc_term_t msg, otpc_gs_result_t *r) {
  (void)state;
  if (otpc_term_atom_eq(msg, "crash", 5))
    otpc_gs_stop(r, otpc_term_fmt("boom"));
}

static void w_terminate(void **state, otpc_term_t reason) {
  tapp_t *t = *state;
  if (otpc_term_is_atom(reason, OTPC_ATOM_SHUTDOWN)) ev("term:%s", t->name);
}

static const otpc_gen_server_t worker = {.name = "worker",
                                         .init = w_init,
                                         .handle_info = w_info,
                                         .terminate = w_terminate};

static int t_start(otpc_app_start_type_t type, void *arg, otpc_pid_t *top,
                   void **state, otpc_buf_t **reason) {
  tapp_t *t = arg;
  CHECK_INT_EQ(type, OTPC_APP_NORMAL);
  ev("start:%s", t->name);
  if (t->fail) { /* a reason term for EINVAL only */
    if (t->fail == OTPC_EINVAL)
      *reason = otpc_term_fmt("{bad_luck, ~a}", t->name);
    return t->fail;
  }
  t->gs = (otpc_sup_gs_child_t){&worker, t, OTPC_ATOM_NONE};
  t->child = (otpc_child_spec_t){"w",    otpc_sup_start_gen_server,
                                 &t->gs, OTPC_PERMANENT,
                                 5000,   OTPC_WORKER};
  t->sup = (otpc_sup_spec_t){OTPC_ONE_FOR_ONE, 0, 5000, &t->child, 1};
  *state = t;
  int rc = otpc_supervisor_start(&t->sup, OTPC_ATOM_NONE, top, reason);
  if (rc == 0) t->top = *top;
  return rc;
}

static void *t_prep_stop(void *state) {
  tapp_t *t = state;
  ev("prep:%s", t->name);
  return t;
}

static void t_stop(void *state) {
  tapp_t *t = state;
  ev("stop:%s", t->name);
}

#define TAPP(var, deps_, env_)                                    \
  static tapp_t var##_t = {.name = #var};                         \
  static const otpc_app_spec_t var = {.name = #var,               \
                                      .description = "app " #var, \
                                      .vsn = "1.0",               \
                                      .applications = deps_,      \
                                      .env = env_,                \
                                      .start = t_start,           \
                                      .start_arg = &var##_t,      \
                                      .prep_stop = t_prep_stop,   \
                                      .stop = t_stop}

#define DEPS(...) ((const char *const[]){__VA_ARGS__, NULL})

static otpc_atom_t A(const char *name) {
  return otpc_atom(name);
}

static void run(void (*body)(void *), int expect) {
  otpc_node_opts_t o = {.schedulers = 2};
  CHECK_INT_EQ(otpc_main(&o, body, NULL), expect);
}

/* The term in buf printed, for comparisons; buf is released. */
static const char *show(otpc_buf_t *buf) {
  static char text[512];
  if (buf == NULL) return "(none)";
  otpc_term_snprint(text, sizeof text, otpc_buf_term(buf));
  otpc_buf_unref(buf);
  return text;
}

/* Asks until n applications run (the controller learns of an end a
 * little after the end); gives up after many tries. */
static int wait_running(otpc_app_info_t *apps, size_t max, int n) {
  int got = 0;
  for (int tries = 0; tries < 20000; tries++) {
    got = otpc_app_which_applications(apps, max);
    if (got == n) break;
    otpc_sleep(1);
  }
  return got;
}

static void stop_controller(void) {
  CHECK_INT_EQ(otpc_app_controller_stop(), 0);
  otpc_pid_t pid;
  CHECK_INT_EQ(otpc_whereis(A("application_controller"), &pid), OTPC_ENONAME);
}

/* ---- dependency order, stop order, which_applications ------------------ */

TAPP(ap, NULL, "[{greeting, hello}]");
TAPP(bp, DEPS("ap"), NULL);
TAPP(cp, DEPS("bp", "ap"), NULL);
static const otpc_app_spec_t lib = {.name = "lib", .applications = DEPS("ap")};

static void body_order(void *arg) {
  (void)arg;
  capture_log();
  CHECK_INT_EQ(otpc_app_controller_start(), 0);
  CHECK_INT_EQ(otpc_app_controller_start(), OTPC_EEXIST);
  otpc_buf_t *info;

  /* Plain start checks dependencies but starts none of them. */
  CHECK_INT_EQ(otpc_app_start(A("bp"), OTPC_TEMPORARY, &info),
               OTPC_ENOTSTARTED);
  CHECK_STR_EQ(show(info), "{not_started,ap}");

  CHECK_INT_EQ(otpc_app_ensure_all_started(A("cp"), OTPC_TEMPORARY, &info), 0);
  CHECK_STR_EQ(show(info), "[ap,bp,cp]");
  CHECK_STR_EQ(events_now(), "start:ap,env:ap=hello,start:bp,start:cp,");
  CHECK(log_has("application: ap, started_at: nonode@nohost"));
  CHECK_INT_EQ(otpc_app_ensure_all_started(A("cp"), OTPC_TEMPORARY, &info), 0);
  CHECK_STR_EQ(show(info), "[]");
  CHECK_INT_EQ(otpc_app_start(A("bp"), OTPC_TEMPORARY, &info), OTPC_EEXIST);
  CHECK_STR_EQ(show(info), "{already_started,bp}");
  CHECK_INT_EQ(otpc_app_ensure_started(A("bp"), OTPC_TEMPORARY, NULL), 0);
  CHECK_INT_EQ(otpc_app_start(A("lib"), OTPC_PERMANENT, NULL), 0);

  otpc_app_info_t apps[8];
  CHECK_INT_EQ(otpc_app_which_applications(apps, 8), 4);
  CHECK(apps[0].name == A("lib") && apps[0].type == OTPC_PERMANENT);
  CHECK_STR_EQ(apps[0].description, "");
  CHECK(apps[1].name == A("cp") && apps[2].name == A("bp"));
  CHECK(apps[3].name == A("ap") && apps[3].type == OTPC_TEMPORARY);
  CHECK_STR_EQ(apps[3].description, "app ap");
  CHECK_STR_EQ(apps[3].vsn, "1.0");
  CHECK_INT_EQ(otpc_app_which_applications(NULL, 0), 4);

  /* stop_list: dependents first, whatever the list's order. */
  events_reset();
  otpc_atom_t list[] = {A("ap"), A("cp"), A("bp")};
  CHECK_INT_EQ(otpc_app_stop_list(list, 3), 0);
  CHECK_STR_EQ(events_now(),
               "prep:cp,term:cp,stop:cp,prep:bp,term:bp,stop:bp,"
               "prep:ap,term:ap,stop:ap,");
  CHECK(log_has("application: cp, exited: stopped, type: temporary"));
  CHECK_INT_EQ(otpc_app_which_applications(apps, 8), 1); /* lib */
  CHECK_INT_EQ(otpc_app_stop(A("cp")), OTPC_ENOTSTARTED);

  /* A list in dependency order; stop_all in reverse start order. */
  CHECK_INT_EQ(otpc_app_stop(A("lib")), 0);
  events_reset();
  otpc_atom_t two[] = {A("cp"), A("lib")};
  CHECK_INT_EQ(otpc_app_ensure_all_started_list(two, 2, OTPC_TEMPORARY, &info),
               0);
  CHECK_STR_EQ(show(info), "[ap,bp,cp,lib]");
  events_reset();
  CHECK_INT_EQ(otpc_app_stop_all(), 0);
  CHECK_STR_EQ(events_now(),
               "prep:cp,term:cp,stop:cp,prep:bp,term:bp,stop:bp,"
               "prep:ap,term:ap,stop:ap,");
  CHECK_INT_EQ(otpc_app_which_applications(apps, 8), 0);

  /* Stopped applications stay loaded. */
  CHECK_INT_EQ(otpc_app_load(A("ap")), OTPC_EEXIST);
  stop_controller();
  CHECK(!otpc_app_halted(NULL));
}

TEST(app_dependency_order_and_reverse_stop) {
  CHECK_INT_EQ(otpc_app_register(&ap), 0);
  CHECK_INT_EQ(otpc_app_register(&ap), 0); /* again: no-op */
  CHECK_INT_EQ(otpc_app_register(&bp), 0);
  CHECK_INT_EQ(otpc_app_register(&cp), 0);
  CHECK_INT_EQ(otpc_app_register(&lib), 0);
  static const otpc_app_spec_t other_ap = {.name = "ap"};
  CHECK_INT_EQ(otpc_app_register(&other_ap), OTPC_EEXIST);
  run(body_order, 0);
}

/* ---- missing and circular dependencies, a failed start undone ---------- */

TAPP(cy1, DEPS("cy2"), NULL);
TAPP(cy2, DEPS("cy3"), NULL);
TAPP(cy3, DEPS("cy1"), NULL);
TAPP(top1, DEPS("cy2"), NULL);
TAPP(needs, DEPS("base", "nosuch"), NULL);
TAPP(base, NULL, NULL);
TAPP(bad, DEPS("base"), NULL);

static void body_dep_errors(void *arg) {
  (void)arg;
  capture_log();
  otpc_buf_t *info;
  CHECK_INT_EQ(otpc_app_start(A("base"), OTPC_TEMPORARY, &info), OTPC_ENOPROC);
  CHECK_INT_EQ(otpc_app_controller_start(), 0);

  CHECK_INT_EQ(otpc_app_ensure_all_started(A("top1"), OTPC_TEMPORARY, &info),
               OTPC_ECYCLE);
  CHECK_STR_EQ(show(info), "{circular_dependencies,[cy2,cy3,cy1]}");
  CHECK_INT_EQ(otpc_app_ensure_all_started(A("needs"), OTPC_TEMPORARY, &info),
               OTPC_ENOAPP);
  CHECK_STR_EQ(show(info), "{nosuch,{unknown_application,nosuch}}");
  CHECK_INT_EQ(otpc_app_start(A("nosuch"), OTPC_TEMPORARY, &info), OTPC_ENOAPP);
  CHECK_STR_EQ(show(info), "{unknown_application,nosuch}");
  CHECK_INT_EQ(otpc_app_load(A("nosuch")), OTPC_ENOAPP);
  /* The order is known before anything starts: nothing did. */
  CHECK_STR_EQ(events_now(), "");
  CHECK_INT_EQ(otpc_app_which_applications(NULL, 0), 0);

  /* bad's start fails: base, started for it, is stopped again. */
  bad_t.fail = OTPC_EINVAL;
  CHECK_INT_EQ(otpc_app_ensure_all_started(A("bad"), OTPC_PERMANENT, &info),
               OTPC_ESTOPPED);
  CHECK_STR_EQ(show(info), "{bad,{bad_luck,bad}}");
  CHECK_STR_EQ(events_now(),
               "start:base,start:bad,prep:base,term:base,stop:base,");
  CHECK_INT_EQ(otpc_app_which_applications(NULL, 0), 0);
  CHECK(!otpc_app_halted(NULL)); /* a failed start is no termination */

  /* A start that fails without a reason term gives its code's name. */
  CHECK_INT_EQ(otpc_app_start(A("base"), OTPC_TEMPORARY, NULL), 0);
  bad_t.fail = OTPC_ENOMEM;
  CHECK_INT_EQ(otpc_app_start(A("bad"), OTPC_TEMPORARY, &info), OTPC_ESTOPPED);
  CHECK_STR_EQ(show(info), "'ENOMEM'");
  bad_t.fail = 0;
  CHECK_INT_EQ(otpc_app_start(A("bad"), OTPC_TEMPORARY, NULL), 0);
  CHECK_INT_EQ(otpc_app_which_applications(NULL, 0), 2);
  CHECK_INT_EQ(otpc_app_unload(A("bad")), OTPC_EEXIST);
  stop_controller();
  CHECK_INT_EQ(otpc_app_stop(A("bad")), OTPC_ENOPROC);
}

TEST(app_missing_and_circular_dependencies) {
  const otpc_app_spec_t *specs[] = {&cy1,   &cy2,  &cy3, &top1,
                                    &needs, &base, &bad};
  for (size_t i = 0; i < 7; i++) CHECK_INT_EQ(otpc_app_register(specs[i]), 0);
  run(body_dep_errors, 0);
}

/* ---- the environment --------------------------------------------------- */

static char dir[64];

static void make_dir(void) {
  snprintf(dir, sizeof dir, "/tmp/otpc_app_XXXXXX");
  CHECK(mkdtemp(dir) != NULL);
}

/* Writes dir/name; returns the path (static). */
static const char *write_file(const char *name, const char *text) {
  static char path[4][128];
  static int next;
  char *p = path[next++ % 4];
  snprintf(p, 128, "%s/%s", dir, name);
  FILE *f = fopen(p, "w");
  CHECK(f != NULL);
  fputs(text, f);
  fclose(f);
  return p;
}

static void remove_dir(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  CHECK_INT_EQ(system(cmd), 0);
}

static const otpc_app_spec_t envapp = {
    .name = "envapp",
    .env =
        "[{default_only, d}, {both, default}, {all3, default}, "
        "{args_only, default}]"};
static const otpc_app_spec_t later = {.name = "later",
                                      .env = "[{k, from_spec}]"};

static const char *get(const char *app, const char *key) {
  otpc_buf_t *v = NULL;
  int rc = otpc_app_get_env(A(app), A(key), &v);
  if (rc == 0) return "undefined";
  CHECK_INT_EQ(rc, 1);
  return show(v);
}

static void body_env(void *arg) {
  (void)arg;
  capture_log();
  CHECK_INT_EQ(otpc_app_controller_start(), 0);
  CHECK_STR_EQ(get("envapp", "both"), "undefined"); /* not loaded */
  CHECK_INT_EQ(otpc_app_start(A("envapp"), OTPC_TEMPORARY, NULL), 0);
  CHECK_STR_EQ(get("envapp", "default_only"), "d");
  CHECK_STR_EQ(get("envapp", "both"), "file");
  CHECK_STR_EQ(get("envapp", "file_only"), "1");
  CHECK_STR_EQ(get("envapp", "inc_only"), "[120]"); /* ~w prints "x" so */
  CHECK_STR_EQ(get("envapp", "all3"), "{args,3}");
  CHECK_STR_EQ(get("envapp", "args_only"), "[1,2]");
  CHECK_STR_EQ(get("envapp", "neg"), "-5");
  CHECK_STR_EQ(get("envapp", "nope"), "undefined");
  otpc_buf_t *all;
  CHECK_INT_EQ(otpc_app_get_all_env(A("envapp"), &all), 0);
  size_t n;
  CHECK_INT_EQ(otpc_term_list_length(otpc_buf_term(all), &n), 0);
  CHECK_INT_EQ(n, 7);
  otpc_buf_unref(all);

  /* set_env and unset_env on a running application. */
  otpc_buf_t *v = otpc_term_fmt("#{port => 8443}");
  CHECK_INT_EQ(otpc_app_set_env(A("envapp"), A("all3"), otpc_buf_term(v)), 0);
  otpc_buf_unref(v);
  CHECK_STR_EQ(get("envapp", "all3"), "#{port => 8443}");
  CHECK_INT_EQ(otpc_app_unset_env(A("envapp"), A("both")), 0);
  CHECK_INT_EQ(otpc_app_unset_env(A("envapp"), A("both")), 0);
  CHECK_STR_EQ(get("envapp", "both"), "undefined");

  /* set_env before load: the load overrides what the spec sets. */
  v = otpc_term_fmt("early");
  CHECK_INT_EQ(otpc_app_set_env(A("later"), A("k"), otpc_buf_term(v)), 0);
  CHECK_INT_EQ(otpc_app_set_env(A("later"), A("own"), otpc_buf_term(v)), 0);
  otpc_buf_unref(v);
  CHECK_STR_EQ(get("later", "k"), "early");
  CHECK_INT_EQ(otpc_app_load(A("later")), 0);
  CHECK_STR_EQ(get("later", "k"), "from_spec");
  CHECK_STR_EQ(get("later", "own"), "early");
  CHECK_INT_EQ(otpc_app_unload(A("later")), 0);
  CHECK_INT_EQ(otpc_app_unload(A("later")), OTPC_ENOAPP);
  CHECK_INT_EQ(otpc_app_get_all_env(A("later"), &all), 0);
  CHECK_STR_EQ(show(all), "[]");
  stop_controller();
}

TEST(app_env_precedence_default_file_args) {
  CHECK_INT_EQ(otpc_app_register(&envapp), 0);
  CHECK_INT_EQ(otpc_app_register(&later), 0);
  make_dir();
  write_file("inc.config",
             "[{envapp, [{inc_only, \"x\"}, {both, inc}, {all3, inc}]}].\n");
  const char *sys =
      write_file("sys.config",
                 "%% the node's configuration\n"
                 "[{envapp, [{file_only, 1}, {both, included_first}]},\n"
                 " \"inc\",\n" /* relative to this file; .config left out */
                 " {envapp, [{both, file}, {all3, file}]},\n"
                 " {other, [{x, 1}]}].\n");
  char *argv[] = {"prog",    "-v",   "-config",   (char *)sys,
                  "-envapp", "all3", "{args, 3}", "args_only",
                  "[1, 2]",  "neg",  "-5",        "--",
                  "-envapp", "x",    "y",         NULL};
  int argc = 15;
  otpc_app_config_error_t err;
  CHECK_INT_EQ(otpc_app_config_args(&argc, argv, &err), 0);
  CHECK_INT_EQ(argc, 6);
  CHECK_STR_EQ(argv[0], "prog");
  CHECK_STR_EQ(argv[1], "-v");
  CHECK_STR_EQ(argv[2], "--");
  CHECK_STR_EQ(argv[3], "-envapp");
  CHECK_STR_EQ(argv[5], "y");
  CHECK(argv[6] == NULL);
  run(body_env, 0);
  remove_dir();
}

/* ---- malformed configuration applies nothing --------------------------- */

static const otpc_app_spec_t cfgapp = {.name = "cfgapp", .env = "[{port, 80}]"};

static void body_cfg(void *arg) {
  (void)arg;
  capture_log();
  CHECK_INT_EQ(otpc_app_controller_start(), 0);
  CHECK_INT_EQ(otpc_app_load(A("cfgapp")), 0);
  CHECK_STR_EQ(get("cfgapp", "port"), "81"); /* only the good file */
  CHECK_STR_EQ(get("cfgapp", "host"), "undefined");
  stop_controller();
}

TEST(app_malformed_config_reported_and_not_applied) {
  CHECK_INT_EQ(otpc_app_register(&cfgapp), 0);
  make_dir();
  otpc_app_config_error_t err;
  const char *good = write_file("good.config", "[{cfgapp, [{port, 81}]}].");
  CHECK_INT_EQ(otpc_app_config_file(good, &err), 0);

  /* A syntax error: its line and column, and nothing kept. */
  const char *file = write_file("syntax.config",
                                "[{cfgapp, [{host, \"h\"},\n"
                                "           {port, 82}]},\n"
                                "  {cfgapp, [{port 83}]}].\n");
  int rc = otpc_app_config_file(file, &err);
  CHECK(rc < 0);
  CHECK_INT_EQ(err.line, 3);
  CHECK_INT_EQ(err.column, 19);
  CHECK(strstr(err.message, "syntax.config:3:19: ") != NULL);

  /* Well formed but not a configuration: the first entries were fine. */
  file = write_file("shape.config",
                    "[{cfgapp, [{host, h}, {port, 84}]}, {cfgapp, [port]}].");
  CHECK_INT_EQ(otpc_app_config_file(file, &err), OTPC_EINVAL);
  CHECK(strstr(err.message, "application: cfgapp; invalid parameter: port"));
  file = write_file("notlist.config", "{cfgapp, [{port, 85}]}.");
  CHECK_INT_EQ(otpc_app_config_file(file, &err), OTPC_EINVAL);
  CHECK(strstr(err.message, "must be one list") != NULL);
  file = write_file("empty.config", "%% nothing\n");
  CHECK(otpc_app_config_file(file, &err) < 0);

  /* Includes: a missing one, and an included file that includes. */
  file = write_file("inc1.config", "[{cfgapp, [{port, 86}]}, \"nothere\"].");
  CHECK_INT_EQ(otpc_app_config_file(file, &err), OTPC_EIO);
  CHECK(strstr(err.message, "nothere: No such file or directory") != NULL);
  write_file("nest.config", "[\"good\"].");
  file = write_file("inc2.config", "[{cfgapp, [{port, 87}]}, \"nest\"].");
  CHECK_INT_EQ(otpc_app_config_file(file, &err), OTPC_EINVAL);
  CHECK(strstr(err.message, "may not include") != NULL);
  CHECK_INT_EQ(otpc_app_config_file("/nonexistent/sys.config", &err), OTPC_EIO);

  /* A bad command line: argv untouched, nothing kept. */
  char *argv[] = {"prog", "-cfgapp", "port", "88", "host", "[1,", NULL};
  int argc = 6;
  CHECK(otpc_app_config_args(&argc, argv, &err) < 0);
  CHECK_INT_EQ(argc, 6);
  CHECK_STR_EQ(argv[1], "-cfgapp");
  CHECK(strstr(err.message, "argument 5") != NULL);
  char *argv2[] = {"prog", "-cfgapp", "port", NULL};
  argc = 3;
  CHECK_INT_EQ(otpc_app_config_args(&argc, argv2, &err), OTPC_EINVAL);
  CHECK(strstr(err.message, "a value must follow") != NULL);
  char *argv3[] = {"prog", "-cfgapp", "Port", "1", NULL};
  argc = 4;
  CHECK(otpc_app_config_args(&argc, argv3, &err) < 0);
  char *argv4[] = {"prog", "-config", (char *)file, "-cfgapp",
                   "port", "89",      NULL};
  argc = 6;
  CHECK(otpc_app_config_args(&argc, argv4, &err) < 0);
  CHECK_INT_EQ(argc, 6);

  run(body_cfg, 0);
  remove_dir();
}

/* ---- a permanent application's end halts the node ---------------------- */

TAPP(h1, NULL, NULL);
TAPP(h2, NULL, NULL);
TAPP(h3, NULL, NULL);

static otpc_buf_t *hook_reason;

static void hook(otpc_term_t reason, void *arg) {
  CHECK(arg == &hook_reason);
  ev("hook");
  otpc_builder_t b;
  otpc_builder_init(&b);
  otpc_build_term(&b, reason);
  hook_reason = otpc_builder_finish(&b, NULL);
}

static void idle(void *arg) {
  (void)arg;
  otpc_buf_t *m;
  otpc_receive(NULL, OTPC_INFINITY, &m); /* forever: only a kill ends it */
}

/* Waits to be killed by the halt; fails if it does not come. */
static void await_halt(void) {
  otpc_buf_t *m;
  for (;;)
    if (otpc_receive(NULL, 20000, &m) == OTPC_ETIMEDOUT)
      otpc_test_fail(__FILE__, __LINE__, "the node did not halt");
    else
      otpc_buf_unref(m);
}

static void body_permanent(void *arg) {
  (void)arg;
  capture_log();
  CHECK_INT_EQ(otpc_app_controller_start(), 0);
  CHECK_INT_EQ(otpc_app_start(A("h1"), OTPC_TEMPORARY, NULL), 0);
  CHECK_INT_EQ(otpc_app_start(A("h2"), OTPC_PERMANENT, NULL), 0);
  CHECK_INT_EQ(otpc_app_start(A("h3"), OTPC_TRANSIENT, NULL), 0);
  CHECK_INT_EQ(otpc_spawn(idle, NULL, NULL, NULL), 0); /* in no app */
  events_reset();
  otpc_buf_t *kill = otpc_term_fmt("kill");
  otpc_exit_signal(h2_t.top, otpc_buf_term(kill));
  otpc_buf_unref(kill);
  await_halt();
}

TEST(app_permanent_end_halts_node_after_stopping_others) {
  CHECK_INT_EQ(otpc_app_register(&h1), 0);
  CHECK_INT_EQ(otpc_app_register(&h2), 0);
  CHECK_INT_EQ(otpc_app_register(&h3), 0);
  otpc_app_set_halt_hook(hook, &hook_reason);
  run(body_permanent, 1); /* every process was killed */
  /* h2's master runs prep_stop and stop after its tree ended; then the
   * others stop, newest first; then the hook; then the kills. */
  CHECK_STR_EQ(events_now(),
               "prep:h2,stop:h2,prep:h3,term:h3,stop:h3,"
               "prep:h1,term:h1,stop:h1,hook,");
  otpc_buf_t *why;
  CHECK(otpc_app_halted(&why));
  CHECK_STR_EQ(show(why), "{application_terminated,h2,killed}");
  CHECK_STR_EQ(show(hook_reason), "{application_terminated,h2,killed}");
  CHECK(log_has("application: h2, exited: killed, type: permanent"));
  CHECK(log_has("application: h3, exited: stopped, type: transient"));
  CHECK(
      log_has("Kernel pid terminated (application_controller) "
              "({application_terminated,h2,killed})"));
  otpc_app_set_halt_hook(NULL, NULL);
}

/* ---- transient: normal is reported, anything else halts ---------------- */

TAPP(tr, NULL, NULL);
TAPP(tr2, NULL, NULL);
TAPP(keep, NULL, NULL);

static void body_transient_normal(void *arg) {
  (void)arg;
  capture_log();
  CHECK_INT_EQ(otpc_app_controller_start(), 0);
  CHECK_INT_EQ(otpc_app_start(A("keep"), OTPC_PERMANENT, NULL), 0);
  CHECK_INT_EQ(otpc_app_start(A("tr"), OTPC_TRANSIENT, NULL), 0);
  otpc_pid_t ctl;
  CHECK_INT_EQ(otpc_gen_server_stop(tr_t.top, NULL, 10000), 0); /* normal */
  /* Reported, and it no longer runs; nothing else is affected. */
  otpc_app_info_t apps[4];
  CHECK_INT_EQ(wait_running(apps, 4, 1), 1);
  CHECK(apps[0].name == A("keep"));
  CHECK(log_has("application: tr, exited: normal, type: transient"));
  CHECK(!otpc_app_halted(NULL));
  CHECK_INT_EQ(otpc_whereis(A("application_controller"), &ctl), 0);
  /* It can be started again. */
  CHECK_INT_EQ(otpc_app_start(A("tr"), OTPC_TRANSIENT, NULL), 0);
  stop_controller();
}

TEST(app_transient_normal_end_only_reported) {
  CHECK_INT_EQ(otpc_app_register(&tr), 0);
  CHECK_INT_EQ(otpc_app_register(&keep), 0);
  run(body_transient_normal, 0);
  CHECK(!otpc_app_halted(NULL));
  CHECK(strstr(events_now(), "prep:tr,stop:tr,") != NULL);
}

static void body_transient_abnormal(void *arg) {
  (void)arg;
  capture_log();
  CHECK_INT_EQ(otpc_app_controller_start(), 0);
  CHECK_INT_EQ(otpc_app_start(A("keep"), OTPC_TEMPORARY, NULL), 0);
  CHECK_INT_EQ(otpc_app_start(A("tr2"), OTPC_TRANSIENT, NULL), 0);
  events_reset();
  /* The worker crashes; intensity 0: its supervisor gives up with
   * shutdown, which is not normal. */
  CHECK_INT_EQ(otpc_sendf(tr2_t.worker, "crash"), 0);
  await_halt();
}

TEST(app_transient_abnormal_end_halts_node) {
  CHECK_INT_EQ(otpc_app_register(&tr2), 0);
  CHECK_INT_EQ(otpc_app_register(&keep), 0);
  run(body_transient_abnormal, 1);
  CHECK_STR_EQ(events_now(),
               "prep:tr2,stop:tr2,prep:keep,term:keep,stop:keep,");
  otpc_buf_t *why;
  CHECK(otpc_app_halted(&why));
  CHECK_STR_EQ(show(why), "{application_terminated,tr2,shutdown}");
  CHECK(log_has("application: tr2, exited: shutdown, type: transient"));
}

/* ---- temporary: only reported ------------------------------------------ */

TAPP(tmp, NULL, NULL);

static void body_temporary(void *arg) {
  (void)arg;
  capture_log();
  CHECK_INT_EQ(otpc_app_controller_start(), 0);
  CHECK_INT_EQ(otpc_app_start(A("keep"), OTPC_PERMANENT, NULL), 0);
  CHECK_INT_EQ(otpc_app_start(A("tmp"), OTPC_TEMPORARY, NULL), 0);
  otpc_buf_t *kill = otpc_term_fmt("kill");
  otpc_exit_signal(tmp_t.top, otpc_buf_term(kill));
  otpc_buf_unref(kill);
  otpc_app_info_t apps[4];
  CHECK_INT_EQ(wait_running(apps, 4, 1), 1);
  CHECK(apps[0].name == A("keep"));
  CHECK(log_has("application: tmp, exited: killed, type: temporary"));
  CHECK(!otpc_app_halted(NULL));
  CHECK(otpc_is_alive(keep_t.top));
  stop_controller();
}

TEST(app_temporary_end_only_reported) {
  CHECK_INT_EQ(otpc_app_register(&tmp), 0);
  CHECK_INT_EQ(otpc_app_register(&keep), 0);
  run(body_temporary, 0);
  CHECK(!otpc_app_halted(NULL));
}

/* ---- prep_stop, stop, and an application's own stop -------------------- */

static int st_state;
static int st_start(otpc_app_start_type_t type, void *arg, otpc_pid_t *top,
                    void **state, otpc_buf_t **reason) {
  (void)type;
  (void)reason;
  *state = &st_state;
  return otpc_spawn(idle, arg, &(otpc_spawn_opts_t){.link = true}, top);
}
static void *st_prep(void *state) {
  ev("prep:%s", state == &st_state ? "state" : "other");
  return (char *)state + 1;
}
static void st_stop(void *state) {
  ev("stop:%s", state == (char *)&st_state + 1 ? "prepped" : "other");
}
static const otpc_app_spec_t plain = {
    .name = "plain", .start = st_start, .prep_stop = st_prep, .stop = st_stop};

static void body_stop(void *arg) {
  (void)arg;
  capture_log();
  CHECK_INT_EQ(otpc_app_controller_start(), 0);
  CHECK_INT_EQ(otpc_app_start(A("plain"), OTPC_PERMANENT, NULL), 0);
  /* Stopping explicitly never halts, whatever the type. */
  CHECK_INT_EQ(otpc_app_stop(A("plain")), 0);
  CHECK_STR_EQ(events_now(), "prep:state,stop:prepped,");
  CHECK_INT_EQ(otpc_app_stop(A("plain")), OTPC_ENOTSTARTED);
  CHECK(log_has("application: plain, exited: stopped, type: permanent"));
  CHECK_INT_EQ(otpc_app_start(A("plain"), OTPC_PERMANENT, NULL), 0);
  stop_controller(); /* stops it too */
  CHECK(!otpc_app_halted(NULL));
  CHECK_INT_EQ(otpc_app_start(A("plain"), OTPC_PERMANENT, NULL), OTPC_ENOPROC);
  CHECK_INT_EQ(otpc_app_controller_stop(), OTPC_ENOPROC);
}

TEST(app_prep_stop_stop_and_explicit_stop) {
  CHECK_INT_EQ(otpc_app_register(&plain), 0);
  run(body_stop, 0);
  CHECK_STR_EQ(events_now(),
               "prep:state,stop:prepped,prep:state,stop:prepped,");
}

/* ---- registration and calls outside a process -------------------------- */

TEST(app_register_checks_spec_and_needs_a_process) {
  static const otpc_app_spec_t bad_env = {.name = "be", .env = "[{1, x}]"};
  static const otpc_app_spec_t bad_text = {.name = "bt", .env = "[{a, "};
  static const otpc_app_spec_t no_name = {.name = ""};
  const otpc_app_spec_t bad_dep = {.name = "bd", .applications = DEPS("")};
  CHECK_INT_EQ(otpc_app_register(&bad_env), OTPC_EINVAL);
  CHECK(otpc_app_register(&bad_text) < 0);
  CHECK_INT_EQ(otpc_app_register(&no_name), OTPC_EINVAL);
  CHECK_INT_EQ(otpc_app_register(&bad_dep), OTPC_EINVAL);
  CHECK_INT_EQ(otpc_app_register(NULL), OTPC_EINVAL);
  otpc_buf_t *v;
  CHECK(otpc_app_get_env(A("x"), A("y"), &v) < 0); /* no node, no process */
  CHECK_INT_EQ(otpc_app_start(A("x"), (otpc_restart_t)7, NULL), OTPC_EINVAL);
}
