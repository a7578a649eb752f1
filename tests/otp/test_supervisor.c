/*
 * test_supervisor.c: supervisor semantics: start order and reverse stop,
 * one_for_one with which_children/count_children and the child API,
 * rest_for_one and one_for_all restart order, intensity escalating up a
 * tree, shutdown timeouts killing stragglers, brutal_kill, transient and
 * temporary children, simple_one_for_one, and a crash storm.
 *
 * Workers are plain linked processes. The start function reports
 * {started, Name, Pid} to the test process, in the supervisor, so the
 * messages come in start order; "polite" workers trap exits and report
 * {stopped, Name, Pid} before they go, which shows the stop order.
 */
#include <stdatomic.h>

#include "otpc.h"
#include "otpc/logger.h"
#include "otpc/supervisor.h"
#include "test.h"

static otpc_pid_t me; /* the test process */

static void run(void (*body)(void *)) {
  otpc_node_opts_t o = {.schedulers = 2};
  CHECK_INT_EQ(otpc_main(&o, body, NULL), 0);
}

enum { PLAIN, POLITE, STUBBORN };

typedef struct wk {
  const char *name;
  int mode;
} wk_t;

/* Plain and polite workers are gen_servers (crash: stop with boom;
 * normal: stop normal). A polite one traps exits, so its parent's
 * shutdown runs terminate, which reports. A stubborn one is a sequential
 * process that traps exits and ignores them. */
static void w_init(void *arg, void **state, otpc_gs_result_t *r) {
  (void)r;
  const wk_t *w = arg;
  *state = (void *)w;
  if (w->mode == POLITE) otpc_trap_exit(true);
}

static void w_info(void **state, otpc_term_t msg, otpc_gs_result_t *r) {
  (void)state;
  if (otpc_term_atom_eq(msg, "crash", 5))
    otpc_gs_stop(r, otpc_term_fmt("boom"));
  if (otpc_term_atom_eq(msg, "normal", 6)) otpc_gs_stop(r, NULL);
}

static void w_terminate(void **state, otpc_term_t reason) {
  const wk_t *w = *state;
  if (w->mode == POLITE && otpc_term_is_atom(reason, OTPC_ATOM_SHUTDOWN)) {
    otpc_pid_t self = otpc_self();
    otpc_sendf(me, "{stopped, ~a, ~p}", w->name, &self);
  }
}

static const otpc_gen_server_t worker_gs = {.name = "worker",
                                            .init = w_init,
                                            .handle_info = w_info,
                                            .terminate = w_terminate};

static void stubborn(void *arg) {
  (void)arg;
  otpc_trap_exit(true);
  for (;;) {
    otpc_buf_t *m;
    if (otpc_receive(NULL, OTPC_INFINITY, &m) == 0) otpc_buf_unref(m);
  }
}

static int start_worker(void *arg, otpc_pid_t *pid, otpc_buf_t **reason) {
  const wk_t *w = arg;
  int rc;
  if (w->mode == STUBBORN) {
    otpc_spawn_opts_t o = {.link = true};
    rc = otpc_spawn(stubborn, arg, &o, pid);
  } else {
    otpc_sup_gs_child_t c = {&worker_gs, arg, OTPC_ATOM_NONE};
    rc = otpc_sup_start_gen_server(&c, pid, reason);
  }
  if (rc == 0) otpc_sendf(me, "{started, ~a, ~p}", w->name, pid);
  return rc;
}

static int start_failing(void *arg, otpc_pid_t *pid, otpc_buf_t **reason) {
  (void)arg;
  (void)pid;
  return OTPC_ENOMEM;
}

static int start_ignoring(void *arg, otpc_pid_t *pid, otpc_buf_t **reason) {
  (void)arg;
  (void)pid;
  return OTPC_EIGNORED;
}

#define CHILD(id_, wk_, restart_, shutdown_) \
  { (id_), start_worker, (void *)(wk_), (restart_), (shutdown_), OTPC_WORKER }

/* The next message must be {Kind, Name, Pid}; returns Pid. */
static otpc_pid_t expect(const char *kind, const char *name) {
  otpc_buf_t *m;
  if (otpc_receive(NULL, 5000, &m) != 0)
    otpc_test_fail(__FILE__, __LINE__, "no message, expected %s %s", kind,
                   name);
  otpc_term_t t = otpc_buf_term(m);
  otpc_pid_t pid = {0};
  bool ok = otpc_term_atom_eq(otpc_term_tuple_elem(t, 0), kind, strlen(kind)) &&
            otpc_term_atom_eq(otpc_term_tuple_elem(t, 1), name, strlen(name)) &&
            otpc_term_get_pid(otpc_term_tuple_elem(t, 2), &pid) == 0;
  if (!ok) {
    char buf[256];
    otpc_term_snprint(buf, sizeof buf, t);
    otpc_test_fail(__FILE__, __LINE__, "got %s, expected {%s, %s, _}", buf,
                   kind, name);
  }
  otpc_buf_unref(m);
  return pid;
}

static void nothing_more(void) {
  otpc_buf_t *m;
  CHECK_INT_EQ(otpc_receive(NULL, 0, &m), OTPC_ETIMEDOUT);
}

static void send_atom(otpc_pid_t to, const char *atom) {
  CHECK_INT_EQ(otpc_sendf(to, "~a", atom), 0);
}

/* Waits for {'EXIT', Pid, Reason} and checks the reason. */
static void expect_exit(otpc_pid_t pid, const char *reason) {
  otpc_pattern_t *p;
  CHECK_INT_EQ(otpc_pattern_compile("{'EXIT', ~p, ~t}", &p, NULL), 0);
  for (;;) {
    otpc_buf_t *m;
    otpc_pid_t who;
    otpc_term_t why;
    CHECK_INT_EQ(otpc_receive(p, 5000, &m, &who, &why), 0);
    bool it = otpc_pid_eq(who, pid);
    if (it) CHECK(otpc_term_atom_eq(why, reason, strlen(reason)));
    otpc_buf_unref(m);
    if (it) break;
  }
  otpc_pattern_free(p);
}

/* Waits for the DOWN of monitor ref and checks the reason. */
static void expect_down(const otpc_ref_t *ref, const char *reason) {
  otpc_pattern_t *p;
  CHECK_INT_EQ(otpc_pattern_compile("{'DOWN', ~r, process, _, ~t}", &p, NULL),
               0);
  for (;;) {
    otpc_buf_t *m;
    otpc_ref_t got;
    otpc_term_t why;
    CHECK_INT_EQ(otpc_receive(p, 5000, &m, &got, &why), 0);
    bool it = otpc_ref_eq(&got, ref);
    if (it) CHECK(otpc_term_atom_eq(why, reason, strlen(reason)));
    otpc_buf_unref(m);
    if (it) break;
  }
  otpc_pattern_free(p);
}

static void quiet_logger(void) {
  otpc_logger_remove_handler("default");
}

/* ---- one_for_one and the child API ------------------------------------ */

static wk_t wa = {"a", POLITE}, wb = {"b", POLITE}, wc = {"c", POLITE},
            wd = {"d", POLITE};

static void body_one_for_one(void *arg) {
  (void)arg;
  quiet_logger();
  me = otpc_self();
  otpc_trap_exit(true);
  otpc_child_spec_t kids[] = {CHILD("a", &wa, OTPC_PERMANENT, 1000),
                              CHILD("b", &wb, OTPC_PERMANENT, 1000),
                              CHILD("c", &wc, OTPC_PERMANENT, 1000)};
  otpc_sup_spec_t spec = {OTPC_ONE_FOR_ONE, 5, 5000, kids, 3};
  otpc_pid_t sup;
  CHECK_INT_EQ(otpc_supervisor_start(&spec, otpc_atom("sup1"), &sup, NULL), 0);
  expect("started", "a");
  otpc_pid_t b = expect("started", "b");
  expect("started", "c");

  send_atom(b, "crash");
  otpc_pid_t b2 = expect("started", "b"); /* only b */
  CHECK(!otpc_pid_eq(b, b2));

  otpc_sup_child_info_t info[4];
  CHECK_INT_EQ(otpc_supervisor_which_children(sup, info, 4), 3);
  CHECK_STR_EQ(info[0].id, "a");
  CHECK_STR_EQ(info[1].id, "b");
  CHECK(info[1].running && otpc_pid_eq(info[1].pid, b2));
  CHECK_INT_EQ(info[2].type, OTPC_WORKER);

  CHECK_INT_EQ(otpc_supervisor_terminate_child(sup, "b"), 0);
  expect("stopped", "b");
  otpc_sup_counts_t n;
  CHECK_INT_EQ(otpc_supervisor_count_children(sup, &n), 0);
  CHECK(n.specs == 3 && n.active == 2 && n.workers == 3 && n.supervisors == 0);
  CHECK_INT_EQ(otpc_supervisor_restart_child(sup, "b", &b), 0);
  CHECK(otpc_pid_eq(b, expect("started", "b")));
  CHECK_INT_EQ(otpc_supervisor_restart_child(sup, "b", NULL), OTPC_EEXIST);
  CHECK_INT_EQ(otpc_supervisor_delete_child(sup, "b"), OTPC_EEXIST);
  CHECK_INT_EQ(otpc_supervisor_delete_child(sup, "zz"), OTPC_ENOPROC);
  CHECK_INT_EQ(otpc_supervisor_terminate_child(sup, "b"), 0);
  expect("stopped", "b");
  CHECK_INT_EQ(otpc_supervisor_delete_child(sup, "b"), 0);

  otpc_child_spec_t d = CHILD("d", &wd, OTPC_PERMANENT, 1000);
  otpc_pid_t dp;
  CHECK_INT_EQ(otpc_supervisor_start_child(sup, &d, &dp), 0);
  CHECK(otpc_pid_eq(dp, expect("started", "d")));
  CHECK_INT_EQ(otpc_supervisor_start_child(sup, &d, NULL), OTPC_EEXIST);
  CHECK_INT_EQ(otpc_supervisor_which_children(sup, info, 4), 3);
  CHECK_STR_EQ(info[2].id, "d");

  /* Stopped in reverse start order: d, c, a. */
  CHECK_INT_EQ(otpc_gen_server_stop(sup, NULL, 5000), 0);
  expect("stopped", "d");
  expect("stopped", "c");
  expect("stopped", "a");
  expect_exit(sup, "normal");
  nothing_more();
}

TEST(supervisor_one_for_one_and_child_api) {
  run(body_one_for_one);
}

static void body_start_fails(void *arg) {
  (void)arg;
  quiet_logger();
  me = otpc_self();
  otpc_trap_exit(true);
  otpc_child_spec_t kids[] = {
      CHILD("a", &wa, OTPC_PERMANENT, 1000),
      {"bad", start_failing, NULL, OTPC_PERMANENT, 1000, OTPC_WORKER},
      CHILD("c", &wc, OTPC_PERMANENT, 1000)};
  otpc_sup_spec_t spec = {OTPC_ONE_FOR_ONE, 1, 0, kids, 3};
  otpc_pid_t sup;
  otpc_buf_t *why = NULL;
  CHECK_INT_EQ(otpc_supervisor_start(&spec, 0, &sup, &why), OTPC_ESTOPPED);
  otpc_buf_t *want =
      otpc_term_fmt("{shutdown, {failed_to_start_child, bad, 'ENOMEM'}}");
  CHECK(why != NULL &&
        otpc_term_equal(otpc_buf_term(why), otpc_buf_term(want)));
  otpc_buf_unref(want);
  otpc_buf_unref(why);
  expect("started", "a");
  expect("stopped", "a"); /* a was stopped; c never started */
  /* A bad spec: duplicate ids. */
  otpc_child_spec_t dup[] = {CHILD("a", &wa, OTPC_PERMANENT, 0),
                             CHILD("a", &wb, OTPC_PERMANENT, 0)};
  otpc_sup_spec_t bad = {OTPC_ONE_FOR_ONE, 1, 0, dup, 2};
  CHECK_INT_EQ(otpc_supervisor_start(&bad, 0, &sup, NULL), OTPC_EINVAL);
}

TEST(supervisor_child_failing_to_start_fails_init) {
  run(body_start_fails);
}

/* A gen_server child whose init stops: the supervisor fails with init's
 * own reason, as Erlang's does, not just an error code. */
static void bad_init(void *arg, void **state, otpc_gs_result_t *r) {
  (void)arg, (void)state;
  otpc_gs_stop(r, otpc_term_fmt("{bad_config, port}"));
}
static const otpc_gen_server_t bad_gs = {.name = "bad", .init = bad_init};
static otpc_sup_gs_child_t bad_child = {&bad_gs, NULL, OTPC_ATOM_NONE};

static void body_start_reason(void *arg) {
  (void)arg;
  quiet_logger();
  otpc_trap_exit(true);
  otpc_child_spec_t kids[] = {
      {"bad", otpc_sup_start_gen_server, &bad_child, OTPC_PERMANENT, 1000,
       OTPC_WORKER}};
  otpc_sup_spec_t spec = {OTPC_ONE_FOR_ONE, 1, 0, kids, 1};
  otpc_pid_t sup;
  otpc_buf_t *why = NULL;
  CHECK_INT_EQ(otpc_supervisor_start(&spec, 0, &sup, &why), OTPC_ESTOPPED);
  otpc_buf_t *want = otpc_term_fmt(
      "{shutdown, {failed_to_start_child, bad, {bad_config, port}}}");
  CHECK(why != NULL && otpc_term_equal(otpc_buf_term(why), otpc_buf_term(want)));
  otpc_buf_unref(want);
  otpc_buf_unref(why);
}

TEST(supervisor_child_start_reason_is_kept) { run(body_start_reason); }

/* ---- rest_for_one, one_for_all ---------------------------------------- */

static void body_rest_for_one(void *arg) {
  (void)arg;
  quiet_logger();
  me = otpc_self();
  otpc_trap_exit(true);
  otpc_child_spec_t kids[] = {CHILD("a", &wa, OTPC_PERMANENT, 1000),
                              CHILD("b", &wb, OTPC_PERMANENT, 1000),
                              CHILD("c", &wc, OTPC_PERMANENT, 1000),
                              CHILD("d", &wd, OTPC_PERMANENT, 1000)};
  otpc_sup_spec_t spec = {OTPC_REST_FOR_ONE, 5, 5000, kids, 4};
  otpc_pid_t sup;
  CHECK_INT_EQ(otpc_supervisor_start(&spec, 0, &sup, NULL), 0);
  otpc_pid_t a = expect("started", "a");
  otpc_pid_t b = expect("started", "b");
  expect("started", "c");
  expect("started", "d");
  send_atom(b, "crash");
  expect("stopped", "d"); /* those after b, in reverse */
  expect("stopped", "c");
  expect("started", "b"); /* then b and the rest, in order */
  expect("started", "c");
  expect("started", "d");
  otpc_sup_child_info_t info[4];
  CHECK_INT_EQ(otpc_supervisor_which_children(sup, info, 4), 4);
  CHECK(otpc_pid_eq(info[0].pid, a)); /* a untouched */
  nothing_more();
  CHECK_INT_EQ(otpc_gen_server_stop(sup, NULL, 5000), 0);
  expect("stopped", "d");
  expect("stopped", "c");
  expect("stopped", "b");
  expect("stopped", "a");
}

TEST(supervisor_rest_for_one_order) {
  run(body_rest_for_one);
}

static void body_one_for_all(void *arg) {
  (void)arg;
  quiet_logger();
  me = otpc_self();
  otpc_trap_exit(true);
  otpc_child_spec_t kids[] = {CHILD("a", &wa, OTPC_PERMANENT, 1000),
                              CHILD("b", &wb, OTPC_PERMANENT, 1000),
                              CHILD("c", &wc, OTPC_PERMANENT, 1000)};
  otpc_sup_spec_t spec = {OTPC_ONE_FOR_ALL, 5, 5000, kids, 3};
  otpc_pid_t sup;
  CHECK_INT_EQ(otpc_supervisor_start(&spec, 0, &sup, NULL), 0);
  expect("started", "a");
  otpc_pid_t b = expect("started", "b");
  expect("started", "c");
  send_atom(b, "crash");
  expect("stopped", "c");
  expect("stopped", "a");
  expect("started", "a");
  expect("started", "b");
  expect("started", "c");
  nothing_more();
  CHECK_INT_EQ(otpc_gen_server_stop(sup, NULL, 5000), 0);
  expect("stopped", "c");
  expect("stopped", "b");
  expect("stopped", "a");
}

TEST(supervisor_one_for_all_restarts_all) {
  run(body_one_for_all);
}

/* ---- intensity --------------------------------------------------------- */

static wk_t wplain = {"w", PLAIN};

static void body_intensity(void *arg) {
  (void)arg;
  quiet_logger();
  me = otpc_self();
  otpc_trap_exit(true);
  otpc_child_spec_t kids[] = {CHILD("w", &wplain, OTPC_PERMANENT, 1000)};
  otpc_sup_spec_t spec = {OTPC_ONE_FOR_ONE, 2, 5000, kids, 1};
  otpc_pid_t sup;
  CHECK_INT_EQ(otpc_supervisor_start(&spec, 0, &sup, NULL), 0);
  otpc_pid_t w = expect("started", "w");
  for (int i = 0; i < 2; i++) { /* two restarts are allowed */
    send_atom(w, "crash");
    w = expect("started", "w");
  }
  send_atom(w, "crash"); /* the third is one too many */
  expect_exit(sup, "shutdown");
  nothing_more();
}

TEST(supervisor_intensity_exceeded_exits_shutdown) {
  run(body_intensity);
}

/* A tree: top (intensity 0) > mid (intensity 1) > worker. Two crashes of
 * the worker take mid down; mid's exit is one restart too many for top. */
static otpc_child_spec_t mid_kids[] = {
    CHILD("w", &wplain, OTPC_PERMANENT, 1000)};
static otpc_sup_spec_t mid_spec = {OTPC_ONE_FOR_ONE, 1, 5000, mid_kids, 1};

static void body_escalation(void *arg) {
  (void)arg;
  quiet_logger();
  me = otpc_self();
  otpc_trap_exit(true);
  otpc_child_spec_t kids[] = {{"mid", otpc_sup_start_supervisor, &mid_spec,
                               OTPC_PERMANENT, OTPC_SHUTDOWN_INFINITY,
                               OTPC_SUPERVISOR}};
  otpc_sup_spec_t spec = {OTPC_ONE_FOR_ONE, 0, 5000, kids, 1};
  otpc_pid_t top;
  CHECK_INT_EQ(otpc_supervisor_start(&spec, 0, &top, NULL), 0);
  otpc_sup_counts_t n;
  CHECK_INT_EQ(otpc_supervisor_count_children(top, &n), 0);
  CHECK(n.specs == 1 && n.active == 1 && n.supervisors == 1 && n.workers == 0);
  otpc_pid_t w = expect("started", "w");
  send_atom(w, "crash");
  w = expect("started", "w");
  send_atom(w, "crash");
  expect_exit(top, "shutdown"); /* climbed two levels */
  nothing_more();
}

TEST(supervisor_intensity_escalates_up_the_tree) {
  run(body_escalation);
}

/* ---- shutdown ---------------------------------------------------------- */

static wk_t wstub = {"s", STUBBORN}, wstub2 = {"k", STUBBORN};

static void body_shutdown(void *arg) {
  (void)arg;
  quiet_logger();
  me = otpc_self();
  otpc_trap_exit(true);
  otpc_child_spec_t kids[] = {
      CHILD("s", &wstub, OTPC_PERMANENT, 50),
      CHILD("k", &wstub2, OTPC_PERMANENT, OTPC_SHUTDOWN_BRUTAL_KILL)};
  otpc_sup_spec_t spec = {OTPC_ONE_FOR_ONE, 1, 5000, kids, 2};
  otpc_pid_t sup;
  CHECK_INT_EQ(otpc_supervisor_start(&spec, 0, &sup, NULL), 0);
  otpc_pid_t s = expect("started", "s");
  otpc_pid_t k = expect("started", "k");
  otpc_ref_t ms, mk;
  CHECK_INT_EQ(otpc_monitor(s, &ms), 0);
  CHECK_INT_EQ(otpc_monitor(k, &mk), 0);
  int64_t t0 = otpc_now_ms();
  CHECK_INT_EQ(otpc_supervisor_terminate_child(sup, "s"), 0);
  int64_t took = otpc_now_ms() - t0;
  expect_down(&ms, "killed"); /* ignored shutdown: killed after 50 ms */
  CHECK(took >= 45 && took < 3000);
  t0 = otpc_now_ms();
  CHECK_INT_EQ(otpc_supervisor_terminate_child(sup, "k"), 0);
  CHECK(otpc_now_ms() - t0 < 45); /* brutal_kill does not wait */
  expect_down(&mk, "killed");
  otpc_sup_counts_t n;
  CHECK_INT_EQ(otpc_supervisor_count_children(sup, &n), 0);
  CHECK(n.specs == 2 && n.active == 0);
  /* Stopping the supervisor kills a straggler too. */
  CHECK_INT_EQ(otpc_supervisor_restart_child(sup, "s", &s), 0);
  expect("started", "s");
  CHECK_INT_EQ(otpc_monitor(s, &ms), 0);
  CHECK_INT_EQ(otpc_gen_server_stop(sup, NULL, 5000), 0);
  expect_down(&ms, "killed");
  expect_exit(sup, "normal");
}

TEST(supervisor_shutdown_timeout_kills_stragglers) {
  run(body_shutdown);
}

/* ---- transient, temporary ----------------------------------------------- */

static wk_t wt = {"t", PLAIN}, wtmp = {"tmp", PLAIN};

/* Calls count_children until active is `active` (the supervisor handles
 * the EXIT before it answers a later call). */
static otpc_sup_counts_t counts_when(otpc_pid_t sup, size_t active) {
  otpc_sup_counts_t n;
  for (int i = 0; i < 100000; i++) {
    CHECK_INT_EQ(otpc_supervisor_count_children(sup, &n), 0);
    if (n.active == active) return n;
    otpc_yield();
  }
  otpc_test_fail(__FILE__, __LINE__, "active never became %zu", active);
}

static void body_transient(void *arg) {
  (void)arg;
  quiet_logger();
  me = otpc_self();
  otpc_trap_exit(true);
  otpc_child_spec_t kids[] = {CHILD("t", &wt, OTPC_TRANSIENT, 1000),
                              CHILD("tmp", &wtmp, OTPC_TEMPORARY, 1000)};
  otpc_sup_spec_t spec = {OTPC_ONE_FOR_ONE, 5, 5000, kids, 2};
  otpc_pid_t sup;
  CHECK_INT_EQ(otpc_supervisor_start(&spec, 0, &sup, NULL), 0);
  otpc_pid_t t = expect("started", "t");
  otpc_pid_t tmp = expect("started", "tmp");
  send_atom(t, "crash"); /* abnormal: restarted */
  t = expect("started", "t");
  send_atom(t, "normal"); /* normal: not restarted */
  otpc_sup_counts_t n = counts_when(sup, 1);
  CHECK_INT_EQ(n.specs, 2); /* a transient child's spec stays */
  send_atom(tmp, "crash");  /* temporary: never restarted, forgotten */
  n = counts_when(sup, 0);
  CHECK_INT_EQ(n.specs, 1);
  otpc_child_spec_t ign = {"ign", start_ignoring, NULL, OTPC_PERMANENT,
                           0,     OTPC_WORKER};
  CHECK_INT_EQ(otpc_supervisor_start_child(sup, &ign, NULL), OTPC_EIGNORED);
  n = counts_when(sup, 0);
  CHECK_INT_EQ(n.specs, 2); /* kept, not running */
  CHECK_INT_EQ(otpc_supervisor_restart_child(sup, "ign", NULL), OTPC_EIGNORED);
  nothing_more();
  CHECK_INT_EQ(otpc_gen_server_stop(sup, NULL, 5000), 0);
}

TEST(supervisor_transient_normal_exit_not_restarted) {
  run(body_transient);
}

/* ---- simple_one_for_one -------------------------------------------------- */

static wk_t dyn[5] = {{"d0", POLITE},
                      {"d1", POLITE},
                      {"d2", POLITE},
                      {"d3", POLITE},
                      {"d4", POLITE}};

static void body_simple(void *arg) {
  (void)arg;
  quiet_logger();
  me = otpc_self();
  otpc_trap_exit(true);
  otpc_child_spec_t tmpl[] = {CHILD("dyn", &dyn[0], OTPC_PERMANENT, 1000)};
  otpc_sup_spec_t spec = {OTPC_SIMPLE_ONE_FOR_ONE, 5, 5000, tmpl, 1};
  otpc_pid_t sup, pids[5];
  CHECK_INT_EQ(otpc_supervisor_start(&spec, 0, &sup, NULL), 0);
  nothing_more(); /* no child at init */
  for (int i = 0; i < 5; i++) {
    CHECK_INT_EQ(otpc_supervisor_start_dynamic(sup, &dyn[i], &pids[i]), 0);
    CHECK(otpc_pid_eq(pids[i], expect("started", dyn[i].name)));
  }
  otpc_sup_counts_t n;
  CHECK_INT_EQ(otpc_supervisor_count_children(sup, &n), 0);
  CHECK(n.specs == 5 && n.active == 5);
  send_atom(pids[2], "crash");
  expect("started", "d2"); /* restarted with its own arg */
  CHECK_INT_EQ(otpc_supervisor_terminate_pid(sup, pids[4]), 0);
  expect("stopped", "d4");
  CHECK_INT_EQ(otpc_supervisor_terminate_pid(sup, pids[4]), OTPC_ENOPROC);
  CHECK_INT_EQ(otpc_supervisor_count_children(sup, &n), 0);
  CHECK(n.specs == 4 && n.active == 4);
  otpc_sup_child_info_t info[8];
  CHECK_INT_EQ(otpc_supervisor_which_children(sup, info, 8), 4);
  CHECK_STR_EQ(info[0].id, "");
  CHECK_INT_EQ(otpc_supervisor_start_child(sup, &tmpl[0], NULL), OTPC_EINVAL);
  CHECK_INT_EQ(otpc_supervisor_terminate_child(sup, "dyn"), OTPC_EINVAL);
  CHECK_INT_EQ(otpc_gen_server_stop(sup, NULL, 5000), 0);
  /* All told at once: the four stop in any order. */
  otpc_pattern_t *p;
  CHECK_INT_EQ(otpc_pattern_compile("{stopped, ~a, _}", &p, NULL), 0);
  int seen = 0;
  for (int i = 0; i < 4; i++) {
    otpc_buf_t *m;
    otpc_atom_t who;
    CHECK_INT_EQ(otpc_receive(p, 5000, &m, &who), 0);
    for (int j = 0; j < 4; j++)
      if (who == otpc_atom(dyn[j].name)) seen |= 1 << j;
    otpc_buf_unref(m);
  }
  otpc_pattern_free(p);
  CHECK_INT_EQ(seen, 0xf);
  expect_exit(sup, "normal");
}

TEST(supervisor_simple_one_for_one) {
  run(body_simple);
}

/* Dynamic children are stopped all at once: three stragglers with 100 ms
 * each take 100 ms, not 300. */
static void body_simple_parallel_stop(void *arg) {
  (void)arg;
  quiet_logger();
  me = otpc_self();
  otpc_trap_exit(true);
  otpc_child_spec_t tmpl[] = {CHILD("dyn", &wstub, OTPC_TEMPORARY, 100)};
  otpc_sup_spec_t spec = {OTPC_SIMPLE_ONE_FOR_ONE, 5, 5000, tmpl, 1};
  otpc_pid_t sup;
  otpc_ref_t mon[3];
  CHECK_INT_EQ(otpc_supervisor_start(&spec, 0, &sup, NULL), 0);
  for (int i = 0; i < 3; i++) {
    otpc_pid_t pid;
    CHECK_INT_EQ(otpc_supervisor_start_dynamic(sup, NULL, &pid), 0);
    expect("started", "s");
    CHECK_INT_EQ(otpc_monitor(pid, &mon[i]), 0);
  }
  int64_t t0 = otpc_now_ms();
  CHECK_INT_EQ(otpc_gen_server_stop(sup, NULL, 5000), 0);
  int64_t took = otpc_now_ms() - t0;
  CHECK(took >= 95 && took < 290);
  for (int i = 0; i < 3; i++) expect_down(&mon[i], "killed");
}

TEST(supervisor_simple_one_for_one_stops_children_at_once) {
  run(body_simple_parallel_stop);
}

/* ---- crash storm --------------------------------------------------------- */

enum { POOL = 16, CRASHES = 1000 };
static _Atomic int tickets = CRASHES;
static _Atomic int reports;
static _Atomic int starts;

static int count_reports(void *arg, const otpc_log_event_t *ev,
                         const char *line, size_t len) {
  (void)arg;
  (void)ev;
  (void)len;
  if (strstr(line, "child_terminated")) atomic_fetch_add(&reports, 1);
  return 0;
}

/* Takes a crash ticket if any is left and ends right after init (one
 * in five normally, which a permanent child is restarted from without a
 * report); else says it is calm and waits to be shut down. */
static void s_init(void *arg, void **state, otpc_gs_result_t *r) {
  (void)arg;
  int t = atomic_fetch_sub(&tickets, 1);
  *state = (void *)(intptr_t)t;
  if (t > 0) {
    otpc_gs_timeout(r, 0);
    return;
  }
  otpc_pid_t self = otpc_self();
  otpc_sendf(me, "{calm, ~p}", &self);
}

static void s_info(void **state, otpc_term_t msg, otpc_gs_result_t *r) {
  int t = (int)(intptr_t)*state;
  if (!otpc_term_is_atom(msg, OTPC_ATOM_TIMEOUT)) return;
  otpc_gs_stop(
      r, t % 5 == 0 ? NULL : otpc_term_fmt(t % 2 ? "boom" : "{bang, ~i}", t));
}

static const otpc_gen_server_t storm_gs = {
    .name = "storm", .init = s_init, .handle_info = s_info};
static otpc_sup_gs_child_t storm_child = {&storm_gs, NULL, OTPC_ATOM_NONE};

static int start_storm(void *arg, otpc_pid_t *pid, otpc_buf_t **reason) {
  atomic_fetch_add(&starts, 1);
  return otpc_sup_start_gen_server(arg, pid, reason);
}

static void body_storm(void *arg) {
  (void)arg;
  quiet_logger();
  otpc_log_handler_config_t cfg = {.type = OTPC_LOG_CUSTOM,
                                   .write = count_reports};
  CHECK_INT_EQ(otpc_logger_add_handler("count", &cfg), 0);
  me = otpc_self();
  otpc_trap_exit(true);
  otpc_child_spec_t kids[POOL];
  char ids[POOL][8];
  for (int i = 0; i < POOL; i++) {
    snprintf(ids[i], sizeof ids[i], "w%d", i);
    kids[i] = (otpc_child_spec_t){ids[i],         start_storm, &storm_child,
                                  OTPC_PERMANENT, 1000,        OTPC_WORKER};
  }
  otpc_sup_spec_t spec = {OTPC_ONE_FOR_ONE, 2 * CRASHES, 60000, kids, POOL};
  otpc_pid_t sup;
  CHECK_INT_EQ(otpc_supervisor_start(&spec, 0, &sup, NULL), 0);
  /* Every worker that found no ticket says so: POOL of them in the end. */
  otpc_pattern_t *calm;
  otpc_pattern_compile("{calm, _}", &calm, NULL);
  for (int i = 0; i < POOL; i++) {
    otpc_buf_t *m;
    CHECK_INT_EQ(otpc_receive(calm, 5000, &m), 0);
    otpc_buf_unref(m);
  }
  otpc_pattern_free(calm);
  otpc_sup_counts_t n = counts_when(sup, POOL);
  CHECK_INT_EQ(n.specs, POOL);
  CHECK(otpc_is_alive(sup));
  CHECK_INT_EQ(atomic_load(&starts), POOL + CRASHES); /* one restart per exit */
  CHECK_INT_EQ(atomic_load(&reports), CRASHES - CRASHES / 5);
  CHECK_INT_EQ(otpc_gen_server_stop(sup, NULL, 5000), 0);
  expect_exit(sup, "normal");
  CHECK_INT_EQ(otpc_logger_remove_handler("count"), 0);
}

TEST(supervisor_crash_storm) {
  run(body_storm);
}
