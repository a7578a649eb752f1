/*
 * test_code.c: hot code loading with real shared objects (built from
 * modules/): a gen_server upgraded v1 -> v2 -> v1 ... ten times while
 * clients call it at a steady rate (no call fails, no call or cast is
 * lost, the counts carry over exactly), soft_purge refusing while old
 * code runs, purge killing, a gen_statem moving to a new state table,
 * sys suspend / change_code / resume, and bad shared objects that give a
 * clear error and change nothing.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#include "otpc.h"
#include "otpc/logger.h"
#include "test.h"

#define V1 OTPC_TEST_MODULES "/counter_v1.so"
#define V2 OTPC_TEST_MODULES "/counter_v2.so"

static void run(void (*body)(void *)) {
  otpc_node_opts_t o = {.schedulers = 2};
  CHECK_INT_EQ(otpc_main(&o, body, NULL), 0);
}

static void load_ok(const char *path) {
  otpc_code_error_t err;
  int rc = otpc_code_load(path, &err);
  if (rc != 0)
    otpc_test_fail(__FILE__, __LINE__, "load %s: %s: %s", path,
                   otpc_err_name(rc), err.message);
}

/* A call whose reply is a tuple of integers, into out[]. */
static int call_ints(otpc_pid_t s, otpc_buf_t *req, int64_t *out, size_t n) {
  otpc_buf_t *reply = NULL;
  int rc = otpc_gen_server_call(s, req, 10000, &reply);
  if (rc != 0) return rc;
  otpc_term_t t = otpc_buf_term(reply);
  size_t arity = 0;
  otpc_term_t e;
  if (otpc_term_get_tuple(t, &arity, &e) != 0) {
    arity = 1;
    e = t;
  }
  for (size_t i = 0; i < n; i++, e = otpc_term_next(e))
    if (i >= arity || otpc_term_get_int64(e, &out[i]) != 0) rc = OTPC_ETYPE;
  otpc_buf_unref(reply);
  return rc;
}

static void get(otpc_pid_t s, int64_t out[4]) {
  otpc_buf_t *req = otpc_term_fmt("get");
  CHECK_INT_EQ(call_ints(s, req, out, 4), 0);
  otpc_buf_unref(req);
}

/* Soft purge until it succeeds: each process moves at its next message,
 * and the load keeps sending them. Bounded. */
static void soft_purge_soon(const char *module) {
  for (int i = 0; i < 10000; i++) {
    int rc = otpc_code_soft_purge(module);
    if (rc == 0) return;
    CHECK_INT_EQ(rc, OTPC_EINUSE);
    otpc_sleep(1);
  }
  otpc_test_fail(__FILE__, __LINE__, "old code of %s stays in use", module);
}

/* ---- the upgrade under load ---------------------------------------------- */

#define CLIENTS 16

static otpc_pid_t server;
static _Atomic bool stop_load;
static _Atomic int clients_done;
static _Atomic int64_t calls_ok[CLIENTS], casts_sent[CLIENTS], failures;
static _Atomic int64_t seen_vsn[3]; /* replies from each version */

static void client(void *arg) {
  int id = (int)(intptr_t)arg;
  otpc_buf_t *incr = otpc_term_fmt("{incr, ~i}", id);
  otpc_buf_t *note = otpc_term_fmt("{note, ~i}", id);
  int64_t mine = 0;
  while (!atomic_load(&stop_load)) {
    int64_t r[3];
    int rc = call_ints(server, incr, r, 3);
    /* Every call succeeds, and this client's count is exactly the calls
     * it made: none lost, none doubled, across every upgrade. */
    if (rc != 0 || r[1] != mine + 1 || r[2] < 1 || r[2] > 2) {
      fprintf(stderr, "client %d: rc %s, count %lld after %lld\n", id,
              otpc_err_name(rc), (long long)r[1], (long long)mine);
      atomic_fetch_add(&failures, 1);
      break;
    }
    mine++;
    atomic_fetch_add(&seen_vsn[r[2]], 1);
    if (mine % 4 == 0) {
      otpc_gen_server_cast(server, note);
      atomic_fetch_add(&casts_sent[id], 1);
    }
    otpc_sleep(1); /* a steady rate, about a call per ms per client */
  }
  atomic_store(&calls_ok[id], mine);
  otpc_buf_unref(incr);
  otpc_buf_unref(note);
  atomic_fetch_add(&clients_done, 1);
}

static void upgrade_under_load(void *arg) {
  load_ok(V1);
  CHECK_INT_EQ(otpc_code_start_gen_server("counter", "counter_server", NULL,
                                          NULL, &server, NULL),
               0);
  for (int i = 0; i < CLIENTS; i++) {
    otpc_pid_t c;
    CHECK_INT_EQ(otpc_spawn(client, (void *)(intptr_t)i, NULL, &c), 0);
  }
  otpc_sleep(20);
  for (int i = 1; i <= 10; i++) {
    load_ok(i % 2 ? V2 : V1);   /* v2, v1, v2, ... */
    soft_purge_soon("counter"); /* the server has moved */
    otpc_code_info_t info;
    CHECK_INT_EQ(otpc_code_info("counter", &info), 0);
    CHECK_STR_EQ(info.vsn, i % 2 ? "2" : "1");
    CHECK(!info.has_old);
    CHECK_INT_EQ(info.current_users, 1);
    CHECK_INT_EQ(atomic_load(&clients_done), 0); /* the load still runs */
    otpc_sleep(20);
  }
  atomic_store(&stop_load, true);
  while (atomic_load(&clients_done) < CLIENTS) otpc_sleep(1);
  CHECK_INT_EQ(atomic_load(&failures), 0);

  /* The state carried over ten changes of shape: every count exact. */
  int64_t total = 0, casts = 0;
  for (int i = 0; i < CLIENTS; i++) {
    total += atomic_load(&calls_ok[i]);
    casts += atomic_load(&casts_sent[i]);
    otpc_buf_t *req = otpc_term_fmt("{client, ~i}", i);
    int64_t n;
    CHECK_INT_EQ(call_ints(server, req, &n, 1), 0);
    CHECK_INT_EQ(n, atomic_load(&calls_ok[i]));
    otpc_buf_unref(req);
  }
  int64_t g[4];
  get(server, g);
  CHECK_INT_EQ(g[0], total);
  CHECK_INT_EQ(g[1], casts); /* casts in order before the get */
  CHECK_INT_EQ(g[2], 1);     /* ten upgrades: back on v1 */
  CHECK(atomic_load(&seen_vsn[1]) > 0 && atomic_load(&seen_vsn[2]) > 0);
  CHECK_INT_EQ(otpc_gen_server_stop(server, NULL, 5000), 0);
  otpc_code_info_t info;
  CHECK_INT_EQ(otpc_code_info("counter", &info), 0);
  CHECK_INT_EQ(info.current_users, 0);
  CHECK_INT_EQ(info.loads, 11);
}

TEST(code_upgrade_ten_times_under_load) {
  run(upgrade_under_load);
}

/* ---- old and current, soft purge, purge ------------------------------------
 */

static void soft_purge_and_purge(void *arg) {
  CHECK_INT_EQ(otpc_code_soft_purge("counter"), OTPC_ENOMODULE);
  CHECK_INT_EQ(otpc_code_purge("counter"), OTPC_ENOMODULE);
  CHECK_INT_EQ(otpc_code_modules(NULL, 0), 0);
  load_ok(V1);
  const char *names[4];
  CHECK_INT_EQ(otpc_code_modules(names, 4), 1);
  CHECK_STR_EQ(names[0], "counter");
  otpc_pid_t a, b;
  CHECK_INT_EQ(otpc_code_start_gen_server("counter", "counter_server", NULL,
                                          NULL, &a, NULL),
               0);
  CHECK_INT_EQ(otpc_code_start_gen_server("counter", "counter_server", NULL,
                                          NULL, &b, NULL),
               0);
  CHECK_INT_EQ(
      otpc_code_start_gen_server("counter", "no_such", NULL, NULL, &a, NULL),
      OTPC_ENONAME);
  otpc_buf_t *incr = otpc_term_fmt("{incr, 0}");
  int64_t r[3];
  CHECK_INT_EQ(call_ints(a, incr, r, 3), 0);
  CHECK_INT_EQ(r[2], 1);

  /* v2 loaded: both servers still run v1 until they get a message. */
  load_ok(V2);
  otpc_code_info_t info;
  CHECK_INT_EQ(otpc_code_info("counter", &info), 0);
  CHECK(info.has_old);
  CHECK_INT_EQ(info.old_users, 2);
  CHECK_INT_EQ(info.current_users, 0);
  CHECK_INT_EQ(otpc_code_soft_purge("counter"), OTPC_EINUSE);
  /* A third version while the old one is loaded: not_purged, as Erlang. */
  otpc_code_error_t err;
  CHECK_INT_EQ(otpc_code_load(V1, &err), OTPC_ENOTPURGED);
  CHECK(strstr(err.message, "purge") != NULL);

  /* a moves at its next call (its count carried over); b does not. */
  CHECK_INT_EQ(call_ints(a, incr, r, 3), 0);
  CHECK_INT_EQ(r[1], 2);
  CHECK_INT_EQ(r[2], 2);
  CHECK_INT_EQ(otpc_code_info("counter", &info), 0);
  CHECK_INT_EQ(info.old_users, 1);
  CHECK_INT_EQ(info.current_users, 1);
  CHECK_INT_EQ(otpc_code_soft_purge("counter"), OTPC_EINUSE);

  /* purge kills b, which still runs old code, and unloads it. */
  otpc_ref_t mon;
  CHECK_INT_EQ(otpc_monitor(b, &mon), 0);
  CHECK_INT_EQ(otpc_code_purge("counter"), 1);
  otpc_buf_t *down;
  CHECK_INT_EQ(otpc_receive(NULL, 5000, &down), 0);
  otpc_buf_t *want =
      otpc_term_fmt("{'DOWN', ~r, process, ~p, killed}", &mon, &b);
  CHECK(otpc_term_equal(otpc_buf_term(down), otpc_buf_term(want)));
  otpc_buf_unref(want);
  otpc_buf_unref(down);
  CHECK_INT_EQ(otpc_code_info("counter", &info), 0);
  CHECK(!info.has_old);
  CHECK(otpc_is_alive(a));
  CHECK_INT_EQ(otpc_code_purge("counter"), 0); /* nothing old: nothing */

  /* Now a third version loads, and a moves back to v1 with its count. */
  load_ok(V1);
  CHECK_INT_EQ(call_ints(a, incr, r, 3), 0);
  CHECK_INT_EQ(r[1], 3);
  CHECK_INT_EQ(r[2], 1);
  CHECK_INT_EQ(otpc_code_soft_purge("counter"), 0);
  otpc_buf_unref(incr);
  CHECK_INT_EQ(otpc_gen_server_stop(a, NULL, 5000), 0);
}

TEST(code_soft_purge_refuses_purge_kills) {
  run(soft_purge_and_purge);
}

/* ---- gen_statem ------------------------------------------------------------
 */

static void statem_upgrade(void *arg) {
  load_ok(V1);
  otpc_pid_t m;
  CHECK_INT_EQ(otpc_code_start_gen_statem("counter", "counter_fsm", NULL, NULL,
                                          &m, NULL),
               0);
  otpc_buf_t *toggle = otpc_term_fmt("toggle"), *reply;
  CHECK_INT_EQ(otpc_gen_statem_call(m, toggle, 5000, &reply), 0);
  otpc_buf_t *want = otpc_term_fmt("{on, 1, 1}");
  CHECK(otpc_term_equal(otpc_buf_term(reply), otpc_buf_term(want)));
  otpc_buf_unref(want);
  otpc_buf_unref(reply);
  load_ok(V2); /* its state table is in the other order */
  CHECK_INT_EQ(otpc_gen_statem_call(m, toggle, 5000, &reply), 0);
  want = otpc_term_fmt("{off, 2, 2}");
  CHECK(otpc_term_equal(otpc_buf_term(reply), otpc_buf_term(want)));
  otpc_buf_unref(want);
  otpc_buf_unref(reply);
  CHECK_INT_EQ(otpc_gen_statem_call(m, toggle, 5000, &reply), 0);
  want = otpc_term_fmt("{on, 3, 2}");
  CHECK(otpc_term_equal(otpc_buf_term(reply), otpc_buf_term(want)));
  otpc_buf_unref(want);
  otpc_buf_unref(reply);
  otpc_buf_unref(toggle);
  CHECK_INT_EQ(otpc_code_soft_purge("counter"), 0);
  CHECK_INT_EQ(otpc_gen_statem_stop(m, NULL, 5000), 0);
}

TEST(code_gen_statem_moves_to_new_version) {
  run(statem_upgrade);
}

/* ---- sys: suspend, change_code, resume -------------------------------------
 */

static void sys_explicit(void *arg) {
  load_ok(V1);
  otpc_pid_t s;
  CHECK_INT_EQ(otpc_code_start_gen_server("counter", "counter_server", NULL,
                                          NULL, &s, NULL),
               0);
  otpc_term_t none = {NULL, 0, 0};
  otpc_buf_t *one = otpc_term_fmt("1"), *why = NULL;
  /* change_code while running: sys refuses it. */
  CHECK_INT_EQ(
      otpc_sys_change_code(s, "counter", otpc_buf_term(one), none, 5000, &why),
      OTPC_ESTOPPED);
  CHECK(why != NULL);
  char text[256];
  otpc_term_snprint(text, sizeof text, otpc_buf_term(why));
  CHECK(strstr(text, "unknown_system_msg") != NULL);
  otpc_buf_unref(why);

  CHECK_INT_EQ(otpc_sys_suspend(s, 5000), 0);
  /* While suspended, ordinary messages wait in the mailbox. */
  otpc_buf_t *note = otpc_term_fmt("{note, 0}");
  otpc_gen_server_cast(s, note);
  otpc_gen_server_cast(s, note);
  otpc_buf_unref(note);
  load_ok(V2);
  CHECK_INT_EQ(
      otpc_sys_change_code(s, "counter", otpc_buf_term(one), none, 5000, &why),
      0);
  otpc_code_info_t info;
  CHECK_INT_EQ(otpc_code_info("counter", &info), 0);
  CHECK_INT_EQ(info.current_users, 1); /* moved while suspended */
  CHECK_INT_EQ(otpc_code_soft_purge("counter"), 0);
  CHECK_INT_EQ(otpc_sys_resume(s, 5000), 0);
  int64_t g[4];
  get(s, g);
  CHECK_INT_EQ(g[1], 2); /* both casts, handled by v2 after resume */
  CHECK_INT_EQ(g[2], 2);
  CHECK_INT_EQ(g[3], 1); /* v2's code_change ran once */
  otpc_buf_unref(one);
  CHECK_INT_EQ(otpc_gen_server_stop(s, NULL, 5000), 0);
  CHECK_INT_EQ(otpc_sys_suspend(s, 5000), OTPC_ENOPROC);
}

TEST(code_sys_suspend_change_code_resume) {
  run(sys_explicit);
}

/* ---- bad shared objects ----------------------------------------------------
 */

static void bad_load(const char *path, const char *clue) {
  otpc_code_error_t err;
  CHECK_INT_EQ(otpc_code_load(path, &err), OTPC_EBADMODULE);
  if (strstr(err.message, clue) == NULL)
    otpc_test_fail(__FILE__, __LINE__, "%s: message \"%s\" lacks \"%s\"", path,
                   err.message, clue);
}

static void bad_modules(void *arg) {
  load_ok(V1);
  otpc_pid_t s;
  CHECK_INT_EQ(otpc_code_start_gen_server("counter", "counter_server", NULL,
                                          NULL, &s, NULL),
               0);
  char text_file[] = "/tmp/otpc-test-notelf-XXXXXX";
  int fd = mkstemp(text_file);
  CHECK(fd >= 0);
  CHECK(write(fd, "hello, not ELF\n", 15) == 15);
  close(fd);
  char truncated[] = "/tmp/otpc-test-trunc-XXXXXX";
  fd = mkstemp(truncated);
  CHECK(fd >= 0);
  CHECK(write(fd, "\177ELF\2\1\1", 7) == 7);
  close(fd);

  bad_load(text_file, "not a shared object");
  bad_load(truncated, truncated);
  bad_load(OTPC_TEST_MODULES "/no_descriptor.so", "no descriptor");
  bad_load(OTPC_TEST_MODULES "/bad_abi.so", "ABI");
  otpc_code_error_t err;
  CHECK_INT_EQ(otpc_code_load("/nonexistent/x.so", &err), OTPC_EIO);
  CHECK(strstr(err.message, "No such file") != NULL);
  unlink(text_file);
  unlink(truncated);

  /* Nothing changed: v1 is current, alone, and its server serves. */
  otpc_code_info_t info;
  CHECK_INT_EQ(otpc_code_info("counter", &info), 0);
  CHECK_STR_EQ(info.vsn, "1");
  CHECK(!info.has_old);
  CHECK_INT_EQ(info.loads, 1);
  otpc_buf_t *incr = otpc_term_fmt("{incr, 1}");
  int64_t r[3];
  CHECK_INT_EQ(call_ints(s, incr, r, 3), 0);
  CHECK_INT_EQ(r[1], 1);
  CHECK_INT_EQ(r[2], 1);
  otpc_buf_unref(incr);
  CHECK_INT_EQ(otpc_gen_server_stop(s, NULL, 5000), 0);
}

TEST(code_bad_shared_objects_change_nothing) {
  run(bad_modules);
}

/* ---- supervisor children follow upgrades -----------------------------------
 */

static void supervised(void *arg) {
  load_ok(V1);
  otpc_child_spec_t child = {
      .id = "counter",
      .start = otpc_code_start_child,
      .arg = otpc_code_child("counter", "counter_server", false,
                             otpc_atom("counter_server"), NULL)};
  CHECK(child.arg != NULL);
  CHECK(child.arg == otpc_code_child("counter", "counter_server", false,
                                     otpc_atom("counter_server"), NULL));
  otpc_sup_spec_t spec = {.strategy = OTPC_ONE_FOR_ONE,
                          .intensity = 5,
                          .children = &child,
                          .nchildren = 1};
  otpc_trap_exit(true);
  otpc_pid_t sup, s;
  CHECK_INT_EQ(otpc_supervisor_start(&spec, 0, &sup, NULL), 0);
  load_ok(V2);
  CHECK_INT_EQ(otpc_code_purge("counter"), 1); /* the child ran v1 */
  /* The supervisor restarts it, from the current version. */
  for (int i = 0;
       i < 5000 && otpc_whereis(otpc_atom("counter_server"), &s) != 0; i++)
    otpc_sleep(1);
  otpc_buf_t *incr = otpc_term_fmt("{incr, 0}");
  int64_t r[3] = {0};
  int rc = OTPC_ENOPROC;
  for (int i = 0; i < 5000 && rc != 0; i++) {
    if (otpc_whereis(otpc_atom("counter_server"), &s) == 0)
      rc = call_ints(s, incr, r, 3);
    if (rc != 0) otpc_sleep(1);
  }
  CHECK_INT_EQ(rc, 0);
  CHECK_INT_EQ(r[2], 2);
  otpc_buf_unref(incr);
  otpc_buf_t *shutdown = otpc_term_fmt("shutdown");
  otpc_exit_signal(sup, otpc_buf_term(shutdown));
  otpc_buf_unref(shutdown);
}

TEST(code_supervised_child_restarts_on_current_version) {
  run(supervised);
}

/* ---- a code_change that fails ----------------------------------------------
 */

static void refused(void *arg) {
  otpc_logger_set_primary_level(OTPC_LEVEL_NONE); /* the warning is expected */
  load_ok(V1);
  otpc_pid_t s;
  CHECK_INT_EQ(otpc_code_start_gen_server("counter", "counter_server", NULL,
                                          NULL, &s, NULL),
               0);
  otpc_buf_t *incr = otpc_term_fmt("{incr, 0}");
  int64_t r[3];
  CHECK_INT_EQ(call_ints(s, incr, r, 3), 0);
  load_ok(OTPC_TEST_MODULES "/counter_v3.so");
  /* Its code_change fails: the server goes on with version 1 and its
   * state, and does not try again at every message. */
  for (int i = 2; i <= 4; i++) {
    CHECK_INT_EQ(call_ints(s, incr, r, 3), 0);
    CHECK_INT_EQ(r[1], i);
    CHECK_INT_EQ(r[2], 1);
  }
  CHECK_INT_EQ(otpc_code_soft_purge("counter"), OTPC_EINUSE);
  /* The explicit path says why. */
  otpc_term_t none = {NULL, 0, 0};
  otpc_buf_t *one = otpc_term_fmt("1"), *why = NULL;
  CHECK_INT_EQ(otpc_sys_suspend(s, 5000), 0);
  CHECK_INT_EQ(
      otpc_sys_change_code(s, "counter", otpc_buf_term(one), none, 5000, &why),
      OTPC_ESTOPPED);
  CHECK(why != NULL);
  otpc_buf_unref(why);
  otpc_buf_unref(one);
  CHECK_INT_EQ(otpc_sys_resume(s, 5000), 0);
  CHECK_INT_EQ(call_ints(s, incr, r, 3), 0);
  CHECK_INT_EQ(r[1], 5);
  otpc_buf_unref(incr);
  CHECK_INT_EQ(otpc_code_purge("counter"), 1);
  CHECK(!otpc_is_alive(s));
}

TEST(code_failed_code_change_keeps_old_version) {
  run(refused);
}

/* ---- applications of a module ----------------------------------------------
 */

#define HC1 OTPC_TEST_EXAMPLES "/hot_counter.so"
#define HC2 OTPC_TEST_EXAMPLES "/hot_counter_v2.so"

static int64_t hc_vsn(void) {
  otpc_buf_t *req = otpc_term_fmt("value"), *reply = NULL;
  int rc =
      otpc_gen_server_call_name(otpc_atom("hot_counter"), req, 5000, &reply);
  otpc_buf_unref(req);
  int64_t v = -1;
  if (rc == 0)
    otpc_term_get_int64(otpc_term_tuple_elem(otpc_buf_term(reply), 1), &v);
  otpc_buf_unref(reply);
  return v;
}

static void module_app(void *arg) {
  load_ok(HC1);
  CHECK_INT_EQ(otpc_app_controller_start(), 0);
  otpc_buf_t *info = NULL;
  CHECK_INT_EQ(otpc_app_ensure_all_started(otpc_atom("hot_counter"),
                                           OTPC_TEMPORARY, &info),
               0);
  otpc_buf_unref(info);
  CHECK_INT_EQ(hc_vsn(), 1);
  /* The application's server follows the upgrade; the old version goes,
   * and the application's stop runs through the current version. */
  load_ok(HC2);
  CHECK_INT_EQ(hc_vsn(), 2);
  CHECK_INT_EQ(otpc_code_soft_purge("hot_counter"), 0);
  load_ok(HC1);
  CHECK_INT_EQ(hc_vsn(), 1);
  CHECK_INT_EQ(otpc_code_soft_purge("hot_counter"), 0);
  CHECK_INT_EQ(otpc_app_stop(otpc_atom("hot_counter")), 0);
  otpc_pid_t p;
  CHECK(otpc_whereis(otpc_atom("hot_counter"), &p) != 0);
  CHECK_INT_EQ(otpc_app_controller_stop(), 0);
}

TEST(code_module_application_follows_upgrades) {
  otpc_logger_set_primary_level(OTPC_LEVEL_NONE); /* the stop's notice */
  run(module_app);
}

static const otpc_app_spec_t taken = {.name = "hot_counter"};

static void app_name_taken(void *arg) {
  CHECK_INT_EQ(otpc_app_register(&taken), 0);
  otpc_code_error_t err;
  CHECK_INT_EQ(otpc_code_load(HC1, &err), OTPC_EEXIST);
  CHECK(strstr(err.message, "applications") != NULL);
  otpc_code_info_t info;
  CHECK_INT_EQ(otpc_code_info("hot_counter", &info), 0);
  CHECK_STR_EQ(info.vsn, "1"); /* loaded all the same, as documented */
}

TEST(code_application_name_taken) {
  run(app_name_taken);
}
