/*
 * test_gen_statem.c: gen_statem semantics, one test per promise: calls,
 * casts and infos in both callback modes; state enter calls; postponed
 * events retried in order after a state change (and only then); inserted
 * events before queued and new ones; each timeout kind, when it fires and
 * what cancels it; replies later; a call to a machine that dies mid-call;
 * a call that times out and whose late reply never lands; stop and
 * terminate; the crash report; init's ignore, stop, failure and timeout.
 *
 * Most tests drive one "recording" machine with commands: each event it
 * gets is reported to the test process as {seen, State, Type, Content},
 * then its content, if it is a command (or a list of them), is carried
 * out. So a test sends commands and checks the exact order of events the
 * machine saw. Nothing asserts on elapsed time: a timeout that must not
 * fire is checked against a later "marker" timeout that must.
 */
#include <stdatomic.h>

#include "otpc.h"
#include "otpc/gen_statem.h"
#include "otpc/logger.h"
#include "test.h"

static void run(void (*body)(void *)) {
  otpc_node_opts_t o = {.schedulers = 2};
  CHECK_INT_EQ(otpc_main(&o, body, NULL), 0);
}

static otpc_buf_t *T(const char *text) {
  otpc_buf_t *b = NULL;
  if (otpc_term_parse(text, strlen(text), &b, NULL) != 0)
    otpc_test_fail(__FILE__, __LINE__, "bad term %s", text);
  return b;
}

static bool is(otpc_term_t t, const char *text) {
  otpc_buf_t *want = T(text);
  bool eq = otpc_term_equal(t, otpc_buf_term(want));
  otpc_buf_unref(want);
  return eq;
}

static otpc_buf_t *copy(otpc_term_t t) {
  otpc_builder_t b;
  otpc_builder_init(&b);
  otpc_build_term(&b, t);
  return otpc_builder_finish(&b, NULL);
}

static const char *atom_text(otpc_term_t t) {
  otpc_atom_t a;
  if (otpc_term_get_atom(t, &a) != 0) return "?";
  return otpc_atom_name(a, NULL);
}

static int64_t ms_of(otpc_term_t t) {
  int64_t ms = OTPC_INFINITY;
  if (!otpc_term_is_atom(t, OTPC_ATOM_INFINITY)) otpc_term_get_int64(t, &ms);
  return ms;
}

/* The test process: where the machines report. */
static otpc_pid_t tester;

/* ------------------------------------------------------------------------
 * The recording machine: states a, b and c, one callback for all three
 * ------------------------------------------------------------------------ */

typedef struct rec {
  otpc_from_t held; /* a call answered later */
  bool has_held;
  otpc_buf_t *on_enter[3]; /* commands for the enter calls of a, b, c */
  int64_t counter;
} rec_t;

static _Atomic int terminated;
static char terminate_seen[256]; /* {Reason, State, Counter} as text */

static int state_index(otpc_term_t state) {
  const char *s = atom_text(state);
  return s[0] >= 'a' && s[0] <= 'c' && s[1] == '\0' ? s[0] - 'a' : 0;
}

static void report(const otpc_sm_event_t *ev) {
  otpc_builder_t b;
  otpc_builder_init(&b);
  otpc_build_tuple(&b, 4);
  otpc_build_atom(&b, "seen");
  otpc_build_term(&b, ev->state);
  static const char *const names[] = {
      [OTPC_SM_CALL] = "call",       [OTPC_SM_CAST] = "cast",
      [OTPC_SM_INFO] = "info",       [OTPC_SM_TIMEOUT] = "timeout",
      [OTPC_SM_STATE_TIMEOUT] = "state_timeout",
      [OTPC_SM_GENERIC_TIMEOUT] = "timeout",
      [OTPC_SM_INTERNAL] = "internal", [OTPC_SM_ENTER] = "enter"};
  if (ev->type == OTPC_SM_GENERIC_TIMEOUT) {
    otpc_build_tuple(&b, 2);
    otpc_build_atom(&b, "timeout");
    otpc_build_term(&b, ev->name);
  } else {
    otpc_build_atom(&b, names[ev->type]);
  }
  otpc_build_term(&b, ev->content);
  otpc_buf_t *m = otpc_builder_finish(&b, NULL);
  otpc_send(tester, m);
  otpc_buf_unref(m);
}

/* Carries out one command; false when the rest is not to run (the event
 * was postponed: it runs again later). */
static bool run_cmd(const otpc_sm_event_t *ev, rec_t *d, otpc_sm_result_t *r,
                    otpc_term_t c, bool *answered) {
  size_t arity = 0;
  otpc_term_t op;
  if (otpc_term_type(c) == OTPC_TYPE_ATOM) {
    const char *a = atom_text(c);
    if (!strcmp(a, "postpone")) {
      otpc_sm_postpone(r);
      *answered = true;
      return false;
    }
    if (!strcmp(a, "repeat")) otpc_sm_repeat_state(r);
    if (!strcmp(a, "trap")) otpc_trap_exit(true);
    if (!strcmp(a, "hibernate")) otpc_sm_hibernate(r);
    if (!strcmp(a, "hold") && ev->from) {
      d->held = *ev->from;
      d->has_held = true;
      *answered = true;
    }
    if (!strcmp(a, "release") && d->has_held) {
      otpc_buf_t *v = otpc_term_fmt("{released, ~l}", d->counter);
      otpc_gen_statem_reply(&d->held, v);
      otpc_buf_unref(v);
      d->has_held = false;
    }
    if (!strcmp(a, "get_count") && ev->from) {
      otpc_sm_replyf(r, ev->from, "~l", d->counter);
      *answered = true;
    }
    return true;
  }
  if (otpc_term_get_tuple(c, &arity, &op) != 0 || arity < 2) return true;
  const char *name = atom_text(op);
  otpc_term_t x = otpc_term_next(op), y = arity > 2 ? otpc_term_next(x) : x;
  otpc_term_t z = arity > 3 ? otpc_term_next(y) : y;
  if (!strcmp(name, "goto")) otpc_sm_next_state(r, atom_text(x));
  if (!strcmp(name, "insert")) otpc_sm_next_event(r, OTPC_SM_INTERNAL, copy(x));
  if (!strcmp(name, "insert_cast")) otpc_sm_next_event(r, OTPC_SM_CAST, copy(x));
  if (!strcmp(name, "insert_info")) otpc_sm_next_event(r, OTPC_SM_INFO, copy(x));
  if (!strcmp(name, "timeout")) otpc_sm_event_timeout(r, ms_of(x), copy(y));
  if (!strcmp(name, "state_timeout")) otpc_sm_state_timeout(r, ms_of(x), copy(y));
  if (!strcmp(name, "generic"))
    otpc_sm_generic_timeout(r, atom_text(x), ms_of(y), copy(z));
  if (!strcmp(name, "stop")) otpc_sm_stop(r, copy(x));
  if (!strcmp(name, "exit")) otpc_exit(x);
  if (!strcmp(name, "sleep")) otpc_sleep(ms_of(x));
  if (!strcmp(name, "reply") && ev->from) {
    otpc_sm_reply(r, ev->from, copy(x));
    *answered = true;
  }
  if (!strcmp(name, "postpone_in") && otpc_term_equal(ev->state, x)) {
    otpc_sm_postpone(r);
    *answered = true;
    return false;
  }
  if (!strcmp(name, "on_enter")) {
    int i = state_index(x);
    otpc_buf_unref(d->on_enter[i]);
    d->on_enter[i] = copy(y);
  }
  if (!strcmp(name, "count")) { /* a loop of internal events, unreported */
    int64_t n = 0;
    otpc_term_get_int64(x, &n);
    d->counter++;
    if (n > 1) {
      otpc_sm_next_event(r, OTPC_SM_INTERNAL,
                         otpc_term_fmt("{count, ~l}", n - 1));
    }
  }
  return true;
}

static void run_cmds(const otpc_sm_event_t *ev, rec_t *d, otpc_sm_result_t *r,
                     otpc_term_t cmds, bool *answered) {
  if (otpc_term_type(cmds) != OTPC_TYPE_LIST) {
    run_cmd(ev, d, r, cmds, answered);
    return;
  }
  otpc_list_iter_t it;
  otpc_term_t c;
  otpc_term_list_iter(cmds, &it);
  while (otpc_list_next(&it, &c) && run_cmd(ev, d, r, c, answered)) {
  }
}

static bool is_count(otpc_term_t t) {
  otpc_term_t first;
  size_t arity;
  return otpc_term_get_tuple(t, &arity, &first) == 0 && arity == 2 &&
         otpc_term_atom_eq(first, "count", 5);
}

/* a/3, b/3 and c/3 alike. */
static void rec_state(const otpc_sm_event_t *ev, void **data,
                      otpc_sm_result_t *r) {
  rec_t *d = *data;
  bool answered = false;
  if (ev->type == OTPC_SM_ENTER) {
    report(ev);
    otpc_buf_t *cmds = d->on_enter[state_index(ev->state)];
    if (cmds) run_cmds(ev, d, r, otpc_buf_term(cmds), &answered);
    return;
  }
  if (!is_count(ev->content)) report(ev);
  run_cmds(ev, d, r, ev->content, &answered);
  if (ev->type == OTPC_SM_CALL && !answered) /* the default answer */
    otpc_sm_replyf(r, ev->from, "{ok, ~t}", ev->state);
}

static void rec_init(void *arg, void **data, otpc_sm_result_t *r) {
  const char *mode = arg ? arg : "";
  if (!strcmp(mode, "ignore")) {
    otpc_sm_ignore(r);
    return;
  }
  if (!strcmp(mode, "stop")) {
    otpc_sm_stop(r, T("bad_config"));
    return;
  }
  if (!strcmp(mode, "exit")) otpc_exit_atom(otpc_atom("init_crashed"));
  if (!strcmp(mode, "slow")) otpc_sleep(2000);
  /* Process memory: freed however the machine ends, terminate or not. */
  rec_t *d = otpc_palloc(sizeof *d);
  memset(d, 0, sizeof *d);
  *data = d;
  if (!strcmp(mode, "no_state")) return;
  otpc_sm_next_state(r, "a");
  if (!strcmp(mode, "actions")) { /* init's actions run after the ack */
    otpc_sm_next_event(r, OTPC_SM_INTERNAL, T("from_init"));
    otpc_sm_state_timeout(r, 0, T("init_zero"));
    otpc_sm_postpone(r); /* ignored: no event to postpone */
  }
}

static void rec_terminate(otpc_term_t reason, otpc_term_t state, void **data) {
  rec_t *d = *data;
  otpc_buf_t *t = otpc_term_fmt("{~t, ~t, ~l}", reason, state,
                                d ? d->counter : -1);
  otpc_term_snprint(terminate_seen, sizeof terminate_seen, otpc_buf_term(t));
  otpc_buf_unref(t);
  if (d) {
    for (int i = 0; i < 3; i++) otpc_buf_unref(d->on_enter[i]);
    otpc_pfree(d);
  }
  atomic_fetch_add(&terminated, 1);
}

static otpc_buf_t *rec_format_status(otpc_term_t state, void *data) {
  rec_t *d = data;
  return otpc_term_fmt("{counter, ~l}", d ? d->counter : -1);
}

static const otpc_sm_state_t rec_states[] = {
    {"a", rec_state}, {"b", rec_state}, {"c", rec_state}};

static const otpc_gen_statem_t rec_sm = {
    .name = "rec",
    .callback_mode = OTPC_SM_STATE_FUNCTIONS,
    .init = rec_init,
    .states = rec_states,
    .nstates = 3,
    .terminate = rec_terminate,
    .format_status = rec_format_status};

static const otpc_gen_statem_t rec_enter_sm = {
    .name = "rec_enter",
    .callback_mode = OTPC_SM_STATE_FUNCTIONS,
    .state_enter = true,
    .init = rec_init,
    .states = rec_states,
    .nstates = 3,
    .terminate = rec_terminate,
    .format_status = rec_format_status};

/* ------------------------------------------------------------------------
 * Helpers for the test process
 * ------------------------------------------------------------------------ */

static otpc_pid_t start(const otpc_gen_statem_t *cb, const char *mode) {
  tester = otpc_self();
  otpc_pid_t pid;
  int rc = otpc_gen_statem_start(cb, (void *)mode, NULL, &pid, NULL);
  if (rc != 0) otpc_test_fail(__FILE__, __LINE__, "start: %s", otpc_err_name(rc));
  return pid;
}

static void cast(otpc_pid_t sm, const char *cmds) {
  otpc_buf_t *m = T(cmds);
  CHECK_INT_EQ(otpc_gen_statem_cast(sm, m), 0);
  otpc_buf_unref(m);
}

static void info(otpc_pid_t sm, const char *msg) {
  otpc_buf_t *m = T(msg);
  CHECK_INT_EQ(otpc_send(sm, m), 0);
  otpc_buf_unref(m);
}

/* A call that must succeed with the reply given. */
static void call_expect(otpc_pid_t sm, const char *req, const char *want,
                        int line) {
  otpc_buf_t *r = T(req), *reply = NULL;
  int rc = otpc_gen_statem_call(sm, r, 5000, &reply);
  otpc_buf_unref(r);
  if (rc != 0) otpc_test_fail(__FILE__, line, "call %s: %s", req, otpc_err_name(rc));
  if (!is(otpc_buf_term(reply), want)) {
    char got[256];
    otpc_term_snprint(got, sizeof got, otpc_buf_term(reply));
    otpc_test_fail(__FILE__, line, "call %s: got %s, want %s", req, got, want);
  }
  otpc_buf_unref(reply);
}
#define CALL(sm, req, want) call_expect(sm, req, want, __LINE__)

static otpc_pattern_t *seen_pattern(void) {
  static otpc_pattern_t *p;
  if (p == NULL) otpc_pattern_compile("{seen, _, _, _}", &p, NULL);
  return p;
}

/* The next event the machine reports must be want. */
static void expect_seen(const char *want, int line) {
  otpc_buf_t *m;
  int rc = otpc_receive(seen_pattern(), 5000, &m);
  if (rc != 0) otpc_test_fail(__FILE__, line, "no event; wanted %s", want);
  if (!is(otpc_buf_term(m), want)) {
    char got[256];
    otpc_term_snprint(got, sizeof got, otpc_buf_term(m));
    otpc_test_fail(__FILE__, line, "saw %s, wanted %s", got, want);
  }
  otpc_buf_unref(m);
}
#define SEEN(want) expect_seen(want, __LINE__)

/* No event reported beyond those checked: a call goes through the
 * machine, so whatever it did before is reported before the call is. */
static void expect_no_more(otpc_pid_t sm, int line) {
  otpc_buf_t *r = T("sync"), *reply = NULL, *m;
  if (otpc_gen_statem_call(sm, r, 5000, &reply) != 0)
    otpc_test_fail(__FILE__, line, "sync call failed");
  otpc_buf_unref(r);
  otpc_buf_unref(reply);
  if (otpc_receive(seen_pattern(), 0, &m) != 0)
    otpc_test_fail(__FILE__, line, "the sync call was not reported");
  otpc_term_t call = otpc_term_tuple_elem(otpc_buf_term(m), 2);
  if (!otpc_term_atom_eq(call, "call", 4) ||
      !otpc_term_atom_eq(otpc_term_next(call), "sync", 4)) {
    char got[256];
    otpc_term_snprint(got, sizeof got, otpc_buf_term(m));
    otpc_test_fail(__FILE__, line, "unexpected event %s", got);
  }
  otpc_buf_unref(m);
}
#define NO_MORE(sm) expect_no_more(sm, __LINE__)

/* Stops the machine; then it is gone. (Not otpc_is_alive: the runtime
 * sends the DOWN a moment before it frees the pid.) */
static void stop(otpc_pid_t sm) {
  CHECK_INT_EQ(otpc_gen_statem_stop(sm, NULL, 5000), 0);
  otpc_buf_t *req = T("where"), *reply = NULL;
  CHECK_INT_EQ(otpc_gen_statem_call(sm, req, 5000, &reply), OTPC_ENOPROC);
  otpc_buf_unref(req);
}

/* ------------------------------------------------------------------------
 * Calls, casts, infos; state functions
 * ------------------------------------------------------------------------ */

static void body_basics(void *arg) {
  otpc_pid_t sm = start(&rec_sm, NULL);
  CALL(sm, "hello", "{ok, a}");
  SEEN("{seen, a, call, hello}");
  cast(sm, "{goto, b}");
  info(sm, "plain");
  CALL(sm, "where", "{ok, b}"); /* the cast and info came first */
  SEEN("{seen, a, cast, {goto, b}}");
  SEEN("{seen, b, info, plain}");
  SEEN("{seen, b, call, where}");
  CALL(sm, "[{goto, c}, {reply, moved}]", "moved");
  SEEN("{seen, b, call, [{goto, c}, {reply, moved}]}");
  CALL(sm, "where", "{ok, c}");
  SEEN("{seen, c, call, where}");
  /* Idle, it is a handler process: no stack between events. */
  otpc_proc_info_t pi;
  CHECK_INT_EQ(otpc_process_info(sm, &pi), 0);
  CHECK(pi.handler);
  stop(sm);
  CHECK_INT_EQ(atomic_load(&terminated), 1);
  CHECK_STR_EQ(terminate_seen, "{normal,c,0}");
}

TEST(gen_statem_call_cast_info) { run(body_basics); }

static void body_named(void *arg) {
  tester = otpc_self();
  otpc_atom_t name = otpc_atom("rec_named");
  otpc_sm_opts_t o = {.name = name};
  otpc_pid_t sm, again;
  CHECK_INT_EQ(otpc_gen_statem_start(&rec_sm, NULL, &o, &sm, NULL), 0);
  CHECK_INT_EQ(otpc_gen_statem_start(&rec_sm, NULL, &o, &again, NULL),
               OTPC_EEXIST);
  CHECK(otpc_pid_eq(again, sm));
  otpc_buf_t *go = T("{goto, b}"), *req = T("where"), *reply = NULL;
  CHECK_INT_EQ(otpc_gen_statem_cast_name(name, go), 0);
  CHECK_INT_EQ(otpc_gen_statem_call_name(name, req, 5000, &reply), 0);
  CHECK(is(otpc_buf_term(reply), "{ok, b}"));
  otpc_buf_unref(reply);
  stop(sm);
  CHECK_INT_EQ(otpc_gen_statem_call_name(name, req, 5000, &reply), OTPC_ENOPROC);
  CHECK_INT_EQ(otpc_gen_statem_cast_name(name, go), 0); /* never fails */
  otpc_buf_unref(go);
  otpc_buf_unref(req);
}

TEST(gen_statem_named) { run(body_named); }

/* ------------------------------------------------------------------------
 * handle_event_function: the state is any term
 * ------------------------------------------------------------------------ */

/* A counter whose state is {count, N}; waits for N >= 3 before it
 * answers 'wait_for_3' (postponed until then). */
static void cnt_event(const otpc_sm_event_t *ev, void **data,
                      otpc_sm_result_t *r) {
  int64_t n = 0;
  otpc_term_get_int64(otpc_term_tuple_elem(ev->state, 1), &n);
  if (ev->type == OTPC_SM_ENTER) {
    otpc_sendf(tester, "{entered, ~t, ~t}", ev->content, ev->state);
    return;
  }
  if (ev->type == OTPC_SM_CAST && otpc_term_atom_eq(ev->content, "inc", 3))
    otpc_sm_next_state_term(r, otpc_term_fmt("{count, ~l}", n + 1));
  if (ev->type == OTPC_SM_CAST && otpc_term_atom_eq(ev->content, "same", 4))
    otpc_sm_next_state_term(r, otpc_term_fmt("{count, ~l}", n));
  if (ev->type == OTPC_SM_CALL && otpc_term_atom_eq(ev->content, "wait_for_3", 10)) {
    if (n < 3) otpc_sm_postpone(r);
    else otpc_sm_replyf(r, ev->from, "{reached, ~l}", n);
  }
  if (ev->type == OTPC_SM_CALL && otpc_term_atom_eq(ev->content, "get", 3))
    otpc_sm_replyf(r, ev->from, "~t", ev->state);
}

static void cnt_init(void *arg, void **data, otpc_sm_result_t *r) {
  otpc_sm_next_state_term(r, otpc_term_fmt("{count, 0}"));
}

static const otpc_gen_statem_t cnt_sm = {
    .name = "cnt",
    .callback_mode = OTPC_SM_HANDLE_EVENT_FUNCTION,
    .state_enter = true,
    .init = cnt_init,
    .handle_event = cnt_event};

static void waiter(void *arg) {
  otpc_pid_t sm = *(otpc_pid_t *)arg;
  otpc_buf_t *req = T("wait_for_3"), *reply = NULL;
  if (otpc_gen_statem_call(sm, req, 5000, &reply) == 0)
    otpc_sendf(tester, "{waiter, ~t}", otpc_buf_term(reply));
  otpc_buf_unref(req);
  otpc_buf_unref(reply);
}

static void expect_msg(const char *want, int line) {
  otpc_buf_t *m;
  if (otpc_receive(NULL, 5000, &m) != 0)
    otpc_test_fail(__FILE__, line, "nothing came; wanted %s", want);
  if (!is(otpc_buf_term(m), want)) {
    char got[256];
    otpc_term_snprint(got, sizeof got, otpc_buf_term(m));
    otpc_test_fail(__FILE__, line, "got %s, wanted %s", got, want);
  }
  otpc_buf_unref(m);
}
#define MSG(want) expect_msg(want, __LINE__)

static void body_handle_event(void *arg) {
  static otpc_pid_t sm;
  sm = start(&cnt_sm, NULL);
  MSG("{entered, {count, 0}, {count, 0}}"); /* the first state's enter */
  CHECK_INT_EQ(otpc_spawn(waiter, &sm, NULL, NULL), 0);
  otpc_buf_t *inc = T("inc"), *same = T("same");
  otpc_gen_statem_cast(sm, same); /* the same state: no enter, no retry */
  for (int i = 0; i < 3; i++) otpc_gen_statem_cast(sm, inc);
  MSG("{entered, {count, 0}, {count, 1}}");
  MSG("{entered, {count, 1}, {count, 2}}");
  MSG("{entered, {count, 2}, {count, 3}}");
  MSG("{waiter, {reached, 3}}"); /* postponed until the state allowed */
  CALL(sm, "get", "{count, 3}");
  otpc_buf_unref(inc);
  otpc_buf_unref(same);
  stop(sm);
}

TEST(gen_statem_handle_event_function) { run(body_handle_event); }

/* ------------------------------------------------------------------------
 * State enter calls
 * ------------------------------------------------------------------------ */

static void body_enter(void *arg) {
  otpc_pid_t sm = start(&rec_enter_sm, NULL);
  SEEN("{seen, a, enter, a}"); /* the first state: old state is itself */
  cast(sm, "{goto, b}");
  SEEN("{seen, a, cast, {goto, b}}");
  SEEN("{seen, b, enter, a}");
  cast(sm, "{goto, b}"); /* no state change: no enter call */
  SEEN("{seen, b, cast, {goto, b}}");
  cast(sm, "repeat"); /* repeat_state: enter again, old state itself */
  SEEN("{seen, b, cast, repeat}");
  SEEN("{seen, b, enter, b}");
  /* An enter call's actions: replies and timeouts work; an enter that
   * repeats runs again; insert is refused there (next test). */
  cast(sm, "{on_enter, c, {state_timeout, 0, entered_c}}");
  SEEN("{seen, b, cast, {on_enter, c, {state_timeout, 0, entered_c}}}");
  cast(sm, "{goto, c}");
  SEEN("{seen, b, cast, {goto, c}}");
  SEEN("{seen, c, enter, b}");
  SEEN("{seen, c, state_timeout, entered_c}");
  NO_MORE(sm);
  stop(sm);
}

TEST(gen_statem_state_enter_calls) { run(body_enter); }

static void body_bad_enter(void *arg) {
  otpc_logger_remove_handler("default"); /* the crash report: quiet */
  otpc_pid_t sm = start(&rec_enter_sm, NULL);
  SEEN("{seen, a, enter, a}");
  cast(sm, "{on_enter, b, postpone}");
  /* hold: no reply, which would be sent before the enter call */
  otpc_buf_t *req = T("[{goto, b}, hold]"), *reply = NULL;
  CHECK_INT_EQ(otpc_gen_statem_call(sm, req, 5000, &reply), OTPC_EEXITED);
  CHECK(is(otpc_buf_term(reply),
           "{bad_state_enter_action_from_state_function, postpone}"));
  otpc_buf_unref(reply);
  otpc_buf_unref(req);
  CHECK_INT_EQ(atomic_load(&terminated), 1);

  /* A state change in an enter call is refused too. */
  sm = start(&rec_enter_sm, NULL);
  cast(sm, "{on_enter, b, {goto, c}}");
  req = T("[{goto, b}, hold]");
  CHECK_INT_EQ(otpc_gen_statem_call(sm, req, 5000, &reply), OTPC_EEXITED);
  CHECK(is(otpc_buf_term(reply),
           "{bad_state_enter_return_from_state_function, {next_state, c}}"));
  otpc_buf_unref(reply);
  otpc_buf_unref(req);
}

TEST(gen_statem_state_enter_refuses_postpone_and_change) { run(body_bad_enter); }

/* ------------------------------------------------------------------------
 * Postpone
 * ------------------------------------------------------------------------ */

static void body_postpone(void *arg) {
  otpc_pid_t sm = start(&rec_sm, NULL);
  cast(sm, "[p1, {postpone_in, a}]");
  cast(sm, "[p2, {postpone_in, a}]");
  cast(sm, "stay");                      /* keep_state: nothing retried */
  cast(sm, "[p3, {postpone_in, a}]");
  cast(sm, "{goto, a}");                 /* the same state: nothing either */
  SEEN("{seen, a, cast, [p1, {postpone_in, a}]}");
  SEEN("{seen, a, cast, [p2, {postpone_in, a}]}");
  SEEN("{seen, a, cast, stay}");
  SEEN("{seen, a, cast, [p3, {postpone_in, a}]}");
  SEEN("{seen, a, cast, {goto, a}}");
  cast(sm, "[{goto, b}, {postpone_in, a}]"); /* postponed and a change */
  cast(sm, "after");
  SEEN("{seen, a, cast, [{goto, b}, {postpone_in, a}]}");
  /* Retried in b, oldest first (this event too, postponed last), then
   * what came after. */
  SEEN("{seen, b, cast, [p1, {postpone_in, a}]}");
  SEEN("{seen, b, cast, [p2, {postpone_in, a}]}");
  SEEN("{seen, b, cast, [p3, {postpone_in, a}]}");
  SEEN("{seen, b, cast, [{goto, b}, {postpone_in, a}]}");
  SEEN("{seen, b, cast, after}");
  NO_MORE(sm);
  stop(sm);
}

TEST(gen_statem_postpone_retried_in_order_after_state_change) {
  run(body_postpone);
}

static void caller(void *arg) {
  otpc_pid_t sm = *(otpc_pid_t *)arg;
  otpc_buf_t *req = T("[{postpone_in, a}, {reply, answered_in_b}]"), *reply;
  if (otpc_gen_statem_call(sm, req, 5000, &reply) == 0) {
    otpc_sendf(tester, "{caller, ~t}", otpc_buf_term(reply));
    otpc_buf_unref(reply);
  }
  otpc_buf_unref(req);
}

static void body_postponed_call(void *arg) {
  static otpc_pid_t sm;
  sm = start(&rec_sm, NULL);
  CHECK_INT_EQ(otpc_spawn(caller, &sm, NULL, NULL), 0);
  SEEN("{seen, a, call, [{postpone_in, a}, {reply, answered_in_b}]}");
  cast(sm, "{goto, b}");
  SEEN("{seen, a, cast, {goto, b}}");
  SEEN("{seen, b, call, [{postpone_in, a}, {reply, answered_in_b}]}");
  MSG("{caller, answered_in_b}");
  stop(sm);
}

TEST(gen_statem_postponed_call_answered_after_change) {
  run(body_postponed_call);
}

/* ------------------------------------------------------------------------
 * Inserted events
 * ------------------------------------------------------------------------ */

static void body_next_event(void *arg) {
  otpc_pid_t sm = start(&rec_sm, NULL);
  /* Two casts sent at once: the second is in the mailbox while the first
   * inserts events; the inserted ones run first, in the order given. */
  cast(sm, "[one, {insert, i1}, {insert_cast, i2}, {insert_info, i3}]");
  cast(sm, "two");
  SEEN("{seen, a, cast, [one, {insert, i1}, {insert_cast, i2}, {insert_info, i3}]}");
  SEEN("{seen, a, internal, i1}");
  SEEN("{seen, a, cast, i2}");
  SEEN("{seen, a, info, i3}");
  SEEN("{seen, a, cast, two}");
  /* With a state change: inserted events before the retried postponed. */
  cast(sm, "[p, {postpone_in, a}]");
  cast(sm, "[{goto, b}, {insert, i4}]");
  SEEN("{seen, a, cast, [p, {postpone_in, a}]}");
  SEEN("{seen, a, cast, [{goto, b}, {insert, i4}]}");
  SEEN("{seen, b, internal, i4}");
  SEEN("{seen, b, cast, [p, {postpone_in, a}]}");
  /* Inserted events that insert more still run before the mailbox. */
  cast(sm, "[x, {insert, [{insert, nested}]}]");
  cast(sm, "y");
  SEEN("{seen, b, cast, [x, {insert, [{insert, nested}]}]}");
  SEEN("{seen, b, internal, [{insert, nested}]}");
  SEEN("{seen, b, internal, nested}");
  SEEN("{seen, b, cast, y}");
  NO_MORE(sm);
  stop(sm);
}

TEST(gen_statem_internal_events_before_external) { run(body_next_event); }

static void body_init_actions(void *arg) {
  otpc_pid_t sm = start(&rec_enter_sm, "actions");
  SEEN("{seen, a, enter, a}");
  SEEN("{seen, a, internal, from_init}");
  SEEN("{seen, a, state_timeout, init_zero}");
  NO_MORE(sm);
  stop(sm);
}

TEST(gen_statem_init_actions) { run(body_init_actions); }

/* A long loop of inserted events yields (in slices of the budget) but
 * still runs entirely before a message that came meanwhile. */
static void body_long_loop(void *arg) {
  otpc_pid_t sm = start(&rec_sm, NULL);
  cast(sm, "{count, 1000}");
  CALL(sm, "get_count", "1000");
  SEEN("{seen, a, call, get_count}");
  NO_MORE(sm);
  stop(sm);
}

TEST(gen_statem_long_insert_loop_before_messages) { run(body_long_loop); }

/* ------------------------------------------------------------------------
 * Timeouts
 * ------------------------------------------------------------------------ */

static void body_event_timeout(void *arg) {
  otpc_pid_t sm = start(&rec_sm, NULL);
  /* Idle: it fires. */
  cast(sm, "{timeout, 10, idle}");
  SEEN("{seen, a, cast, {timeout, 10, idle}}");
  SEEN("{seen, a, timeout, idle}");
  /* Any event cancels it: a message that comes before it... */
  cast(sm, "[{timeout, 200, never1}, {generic, marker, 400, marker}]");
  cast(sm, "x");
  SEEN("{seen, a, cast, [{timeout, 200, never1}, {generic, marker, 400, marker}]}");
  SEEN("{seen, a, cast, x}");
  SEEN("{seen, a, {timeout, marker}, marker}");
  NO_MORE(sm);
  /* ...and a queued event, so it does not even start. */
  cast(sm, "[{timeout, 20, never2}, {insert, i}, {generic, marker, 200, marker2}]");
  SEEN("{seen, a, cast, [{timeout, 20, never2}, {insert, i}, {generic, marker, 200, marker2}]}");
  SEEN("{seen, a, internal, i}");
  SEEN("{seen, a, {timeout, marker}, marker2}");
  NO_MORE(sm);
  /* Zero time: queued after what is queued, before the mailbox; infinity
   * does not start it. */
  cast(sm, "[{timeout, 0, zero}]");
  cast(sm, "[{timeout, infinity, inf}, {generic, marker, 100, marker3}]");
  SEEN("{seen, a, cast, [{timeout, 0, zero}]}");
  SEEN("{seen, a, timeout, zero}");
  SEEN("{seen, a, cast, [{timeout, infinity, inf}, {generic, marker, 100, marker3}]}");
  SEEN("{seen, a, {timeout, marker}, marker3}");
  NO_MORE(sm);
  stop(sm);
}

TEST(gen_statem_event_timeout_cancelled_by_any_event) {
  run(body_event_timeout);
}

static void body_state_timeout(void *arg) {
  otpc_pid_t sm = start(&rec_sm, NULL);
  /* Other events in the same state do not cancel it. */
  cast(sm, "{state_timeout, 50, st_a}");
  cast(sm, "x1");
  cast(sm, "x2");
  SEEN("{seen, a, cast, {state_timeout, 50, st_a}}");
  SEEN("{seen, a, cast, x1}");
  SEEN("{seen, a, cast, x2}");
  SEEN("{seen, a, state_timeout, st_a}");
  /* A state change does; one set in the same transition belongs to the
   * new state. */
  cast(sm, "[{state_timeout, 200, never}, {generic, marker, 400, marker}]");
  cast(sm, "{goto, b}");
  SEEN("{seen, a, cast, [{state_timeout, 200, never}, {generic, marker, 400, marker}]}");
  SEEN("{seen, a, cast, {goto, b}}");
  SEEN("{seen, b, {timeout, marker}, marker}");
  NO_MORE(sm);
  cast(sm, "[{goto, c}, {state_timeout, 10, st_c}]");
  SEEN("{seen, b, cast, [{goto, c}, {state_timeout, 10, st_c}]}");
  SEEN("{seen, c, state_timeout, st_c}");
  /* Setting it again restarts it (the last in a result wins); infinity
   * cancels it. */
  cast(sm, "[{state_timeout, 300, first}, {state_timeout, 20, second}]");
  SEEN("{seen, c, cast, [{state_timeout, 300, first}, {state_timeout, 20, second}]}");
  SEEN("{seen, c, state_timeout, second}");
  cast(sm, "[{state_timeout, 100, cancelled}, {generic, marker, 300, marker2}]");
  cast(sm, "{state_timeout, infinity, x}");
  SEEN("{seen, c, cast, [{state_timeout, 100, cancelled}, {generic, marker, 300, marker2}]}");
  SEEN("{seen, c, cast, {state_timeout, infinity, x}}");
  SEEN("{seen, c, {timeout, marker}, marker2}");
  NO_MORE(sm);
  stop(sm);
}

TEST(gen_statem_state_timeout_cancelled_by_state_change) {
  run(body_state_timeout);
}

static void body_generic_timeout(void *arg) {
  otpc_pid_t sm = start(&rec_sm, NULL);
  /* Survives events and state changes; names are independent. */
  cast(sm, "[{generic, g1, 150, {goto, c}}, {generic, g2, 20, g2_fired}]");
  cast(sm, "{goto, b}");
  SEEN("{seen, a, cast, [{generic, g1, 150, {goto, c}}, {generic, g2, 20, g2_fired}]}");
  SEEN("{seen, a, cast, {goto, b}}");
  SEEN("{seen, b, {timeout, g2}, g2_fired}");
  SEEN("{seen, b, {timeout, g1}, {goto, c}}");
  CALL(sm, "where", "{ok, c}"); /* its content moved the machine */
  SEEN("{seen, c, call, where}");
  /* Setting a running one restarts it with the new time and content;
   * infinity cancels one. */
  cast(sm, "[{generic, g3, 100, first}, {generic, g4, 150, cancelled}]");
  cast(sm, "[{generic, g3, 20, second}, {generic, g4, infinity, x}, "
           "{generic, marker, 400, marker}]");
  SEEN("{seen, c, cast, [{generic, g3, 100, first}, {generic, g4, 150, cancelled}]}");
  SEEN("{seen, c, cast, [{generic, g3, 20, second}, {generic, g4, infinity, x}, "
       "{generic, marker, 400, marker}]}");
  SEEN("{seen, c, {timeout, g3}, second}");
  SEEN("{seen, c, {timeout, marker}, marker}");
  NO_MORE(sm);
  stop(sm);
}

TEST(gen_statem_generic_timeouts) { run(body_generic_timeout); }

static void body_zero_timeouts(void *arg) {
  otpc_pid_t sm = start(&rec_sm, NULL);
  /* Zero-time state and generic timeouts are queued behind inserted
   * events and before a message that is already in the mailbox. */
  cast(sm, "[one, {generic, g, 0, g0}, {state_timeout, 0, s0}, {insert, i}]");
  cast(sm, "two");
  SEEN("{seen, a, cast, [one, {generic, g, 0, g0}, {state_timeout, 0, s0}, {insert, i}]}");
  SEEN("{seen, a, internal, i}");
  SEEN("{seen, a, {timeout, g}, g0}");
  SEEN("{seen, a, state_timeout, s0}");
  SEEN("{seen, a, cast, two}");
  NO_MORE(sm);
  stop(sm);
}

TEST(gen_statem_zero_timeouts_queued) { run(body_zero_timeouts); }

static void body_stale_timeouts(void *arg) {
  otpc_pid_t sm = start(&rec_sm, NULL);
  /* The timeouts fire while the next callback sleeps, so their messages
   * are already in the mailbox when that callback cancels them (a state
   * change; setting infinity): they must be dropped, not delivered. */
  cast(sm, "[{state_timeout, 1, stale_st}, {generic, g, 1, stale_g}]");
  cast(sm, "[{sleep, 50}, {goto, b}, {generic, g, infinity, x}, "
           "{generic, marker, 100, marker}]");
  SEEN("{seen, a, cast, [{state_timeout, 1, stale_st}, {generic, g, 1, stale_g}]}");
  SEEN("{seen, a, cast, [{sleep, 50}, {goto, b}, {generic, g, infinity, x}, "
       "{generic, marker, 100, marker}]}");
  SEEN("{seen, b, {timeout, marker}, marker}");
  NO_MORE(sm);
  stop(sm);
}

TEST(gen_statem_cancelled_timeout_already_sent_is_dropped) {
  run(body_stale_timeouts);
}

/* ------------------------------------------------------------------------
 * Calls: replies later, deaths, timeouts
 * ------------------------------------------------------------------------ */

static void holder(void *arg) {
  otpc_pid_t sm = *(otpc_pid_t *)arg;
  otpc_buf_t *req = T("hold"), *reply = NULL;
  int rc = otpc_gen_statem_call(sm, req, 5000, &reply);
  if (rc == 0) otpc_sendf(tester, "{holder, ~t}", otpc_buf_term(reply));
  otpc_buf_unref(req);
  otpc_buf_unref(reply);
}

static void body_reply_later(void *arg) {
  static otpc_pid_t sm;
  sm = start(&rec_sm, NULL);
  CHECK_INT_EQ(otpc_spawn(holder, &sm, NULL, NULL), 0);
  SEEN("{seen, a, call, hold}"); /* held; the machine goes on */
  cast(sm, "{count, 5}");
  CALL(sm, "where", "{ok, a}");
  SEEN("{seen, a, call, where}");
  cast(sm, "release");
  SEEN("{seen, a, cast, release}");
  MSG("{holder, {released, 5}}");
  stop(sm);
}

TEST(gen_statem_reply_later) { run(body_reply_later); }

static void body_dies_mid_call(void *arg) {
  otpc_logger_remove_handler("default");
  otpc_pid_t sm = start(&rec_sm, NULL);
  otpc_buf_t *req = T("{exit, crashed_in_call}"), *reply = NULL;
  CHECK_INT_EQ(otpc_gen_statem_call(sm, req, 5000, &reply), OTPC_EEXITED);
  CHECK(reply != NULL && is(otpc_buf_term(reply), "crashed_in_call"));
  otpc_buf_unref(reply);
  /* The callback's exit ran terminate, as an exception does in OTP. */
  CHECK_INT_EQ(atomic_load(&terminated), 1);
  CHECK_STR_EQ(terminate_seen, "{crashed_in_call,a,0}");
  /* And a call to the dead machine: noproc. */
  CHECK_INT_EQ(otpc_gen_statem_call(sm, req, 5000, &reply), OTPC_ENOPROC);
  otpc_buf_unref(req);
}

TEST(gen_statem_call_to_machine_dying_mid_call) { run(body_dies_mid_call); }

static void body_call_timeout(void *arg) {
  otpc_pid_t sm = start(&rec_sm, NULL);
  otpc_buf_t *req = T("hold"), *reply = NULL;
  CHECK_INT_EQ(otpc_gen_statem_call(sm, req, 30, &reply), OTPC_ETIMEDOUT);
  otpc_buf_unref(req);
  SEEN("{seen, a, call, hold}");
  /* Now the machine answers the call that timed out; then a call after
   * it. Its reply comes from the same process after the late one, so the
   * late one would be here by then: it must have been dropped. */
  cast(sm, "release");
  CALL(sm, "where", "{ok, a}");
  otpc_buf_t *m;
  otpc_pattern_t *late;
  otpc_pattern_compile("{_, {released, _}}", &late, NULL);
  CHECK_INT_EQ(otpc_receive(late, 0, &m), OTPC_ETIMEDOUT);
  otpc_pattern_free(late);
  stop(sm);
}

TEST(gen_statem_call_timeout_drops_late_reply) { run(body_call_timeout); }

/* The same for a reply action ({reply, From, R}) that comes late. */
static void body_call_timeout_action(void *arg) {
  otpc_pid_t sm = start(&rec_sm, NULL);
  otpc_buf_t *req = T("[{sleep, 200}, {reply, too_late}]"), *reply = NULL;
  CHECK_INT_EQ(otpc_gen_statem_call(sm, req, 30, &reply), OTPC_ETIMEDOUT);
  otpc_buf_unref(req);
  /* The machine's next reply comes after the late one (one sender). */
  CALL(sm, "where", "{ok, a}");
  otpc_buf_t *m;
  otpc_pattern_t *late;
  otpc_pattern_compile("{_, too_late}", &late, NULL);
  CHECK_INT_EQ(otpc_receive(late, 0, &m), OTPC_ETIMEDOUT);
  otpc_pattern_free(late);
  stop(sm);
}

TEST(gen_statem_late_reply_action_dropped) {
  run(body_call_timeout_action);
}

/* ------------------------------------------------------------------------
 * Stop, terminate, crash reports
 * ------------------------------------------------------------------------ */

static struct {
  _Atomic int n;
  char line[2048];
} reports;

static int count_crash(void *arg, const otpc_log_event_t *ev, const char *line,
                       size_t len) {
  if (strstr(line, "crasher:") == NULL) return 0;
  if (atomic_fetch_add(&reports.n, 1) == 0)
    snprintf(reports.line, sizeof reports.line, "%.*s", (int)len, line);
  return 0;
}

static void capture_reports(void) {
  otpc_logger_remove_handler("default");
  otpc_log_handler_config_t c = {.type = OTPC_LOG_CUSTOM, .write = count_crash};
  CHECK_INT_EQ(otpc_logger_add_handler("crashes", &c), 0);
}

static void body_stop(void *arg) {
  capture_reports();
  /* gen_statem:stop with a reason: terminate sees it, the state, the data. */
  otpc_pid_t sm = start(&rec_sm, NULL);
  cast(sm, "[{count, 2}, {goto, b}]");
  CALL(sm, "where", "{ok, b}");
  otpc_buf_t *why = T("{shutdown, done}");
  CHECK_INT_EQ(otpc_gen_statem_stop(sm, why, 5000), 0);
  otpc_buf_unref(why);
  CHECK_INT_EQ(atomic_load(&terminated), 1);
  CHECK_STR_EQ(terminate_seen, "{{shutdown,done},b,2}");
  CHECK_INT_EQ(atomic_load(&reports.n), 0); /* no crash */

  /* stop_and_reply: the reply comes, then the exit, terminate once. */
  sm = start(&rec_sm, NULL);
  otpc_ref_t mon;
  otpc_monitor(sm, &mon);
  CALL(sm, "[{reply, bye}, {stop, asked}, {goto, c}]", "bye");
  otpc_pattern_t *down;
  otpc_pattern_compile("{'DOWN', _, process, _, asked}", &down, NULL);
  otpc_buf_t *m;
  CHECK_INT_EQ(otpc_receive(down, 5000, &m), 0);
  otpc_buf_unref(m);
  otpc_pattern_free(down);
  CHECK_INT_EQ(atomic_load(&terminated), 2);
  CHECK_STR_EQ(terminate_seen, "{asked,a,0}"); /* the stop won: still in a */
  /* One crash report, with the state, the data as format_status shows
   * it, and the event it was handling. */
  CHECK_INT_EQ(atomic_load(&reports.n), 1);
  CHECK(strstr(reports.line, "exception exit: asked") != NULL);
  CHECK(strstr(reports.line, "state: a") != NULL);
  CHECK(strstr(reports.line, "data: {counter,0}") != NULL);
  CHECK(strstr(reports.line, "last_event: {{call,{") != NULL);
}

TEST(gen_statem_stop_terminate_and_report) { run(body_stop); }

static void body_parent_exit(void *arg) {
  /* A machine that traps exits stops (terminate) when its parent does. */
  tester = otpc_self();
  otpc_trap_exit(true);
  otpc_sm_opts_t o = {.link = true};
  otpc_pid_t sm;
  CHECK_INT_EQ(otpc_gen_statem_start(&rec_sm, NULL, &o, &sm, NULL), 0);
  otpc_buf_t *why = T("parent_gone");
  otpc_ref_t mon;
  otpc_monitor(sm, &mon);
  /* The machine does not trap exits by default: the exit kills it, no
   * terminate, as in Erlang. */
  CHECK_INT_EQ(otpc_exit_signal(sm, otpc_buf_term(why)), 0);
  otpc_pattern_t *down;
  otpc_pattern_compile("{'DOWN', _, process, _, parent_gone}", &down, NULL);
  otpc_buf_t *m;
  CHECK_INT_EQ(otpc_receive(down, 5000, &m), 0);
  otpc_buf_unref(m);
  CHECK_INT_EQ(atomic_load(&terminated), 0);
  otpc_pattern_free(down);
  otpc_buf_unref(why);
}

TEST(gen_statem_untrapped_exit_skips_terminate) { run(body_parent_exit); }

static void parent(void *arg) {
  otpc_sm_opts_t o = {.link = true};
  otpc_pid_t sm;
  if (otpc_gen_statem_start(&rec_sm, NULL, &o, &sm, NULL) != 0) return;
  otpc_sendf(tester, "{machine, ~p}", &sm);
  otpc_buf_t *m;
  otpc_receive(NULL, 5000, &m); /* go */
  otpc_buf_unref(m);
  otpc_exit_atom(otpc_atom("parent_gone"));
}

static void body_trapped_parent_exit(void *arg) {
  /* A machine that traps exits stops, terminate included, when its
   * parent (its starter, linked) exits. */
  otpc_logger_remove_handler("default"); /* parent_gone is a crash */
  tester = otpc_self();
  otpc_pid_t p, sm;
  CHECK_INT_EQ(otpc_spawn(parent, NULL, NULL, &p), 0);
  otpc_pattern_t *pat;
  otpc_pattern_compile("{machine, ~p}", &pat, NULL);
  otpc_buf_t *m;
  CHECK_INT_EQ(otpc_receive(pat, 5000, &m, &sm), 0);
  otpc_buf_unref(m);
  otpc_pattern_free(pat);
  cast(sm, "trap");
  CALL(sm, "where", "{ok, a}");
  otpc_ref_t mon;
  otpc_monitor(sm, &mon);
  otpc_sendf(p, "go");
  otpc_pattern_compile("{'DOWN', _, process, _, parent_gone}", &pat, NULL);
  CHECK_INT_EQ(otpc_receive(pat, 5000, &m), 0);
  otpc_buf_unref(m);
  otpc_pattern_free(pat);
  CHECK_INT_EQ(atomic_load(&terminated), 1);
  CHECK_STR_EQ(terminate_seen, "{parent_gone,a,0}");
}

TEST(gen_statem_trapped_parent_exit_runs_terminate) {
  run(body_trapped_parent_exit);
}

/* ------------------------------------------------------------------------
 * init: ignore, stop, failures, timeout
 * ------------------------------------------------------------------------ */

static void body_init_results(void *arg) {
  capture_reports();
  tester = otpc_self();
  otpc_pid_t sm;
  otpc_buf_t *why = NULL;
  CHECK_INT_EQ(otpc_gen_statem_start(&rec_sm, "ignore", NULL, &sm, NULL),
               OTPC_EIGNORED);
  CHECK_INT_EQ(otpc_gen_statem_start(&rec_sm, "stop", NULL, &sm, &why),
               OTPC_ESTOPPED);
  CHECK(why != NULL && is(otpc_buf_term(why), "bad_config"));
  otpc_buf_unref(why);
  CHECK_INT_EQ(otpc_gen_statem_start(&rec_sm, "no_state", NULL, &sm, &why),
               OTPC_ESTOPPED);
  CHECK(why != NULL && is(otpc_buf_term(why), "{bad_return_from_init, no_state}"));
  otpc_buf_unref(why);
  CHECK_INT_EQ(otpc_gen_statem_start(&rec_sm, "exit", NULL, &sm, &why),
               OTPC_ESTOPPED);
  CHECK(why != NULL && is(otpc_buf_term(why), "init_crashed"));
  otpc_buf_unref(why);
  CHECK_INT_EQ(atomic_load(&terminated), 0); /* no terminate for init */
  /* Too slow: the starter gives up and the machine is killed. */
  otpc_sm_opts_t o = {.timeout = 50, .name = otpc_atom("slow_sm")};
  CHECK_INT_EQ(otpc_gen_statem_start(&rec_sm, "slow", &o, &sm, NULL),
               OTPC_ETIMEDOUT);
  /* A bad table is refused before anything starts. */
  otpc_gen_statem_t bad = rec_sm;
  bad.nstates = 0;
  CHECK_INT_EQ(otpc_gen_statem_start(&bad, NULL, NULL, &sm, NULL), OTPC_EINVAL);
  bad = cnt_sm;
  bad.handle_event = NULL;
  CHECK_INT_EQ(otpc_gen_statem_start(&bad, NULL, NULL, &sm, NULL), OTPC_EINVAL);
  /* Crashes are reported: the stop and the exit (not ignore, no_state's
   * reason included as it is no normal end). */
  CHECK_INT_EQ(atomic_load(&reports.n), 3);
}

TEST(gen_statem_init_ignore_stop_fail_timeout) { run(body_init_results); }

static void body_undef_state(void *arg) {
  otpc_logger_remove_handler("default");
  otpc_pid_t sm = start(&rec_sm, NULL);
  otpc_buf_t *req = T("{goto, nowhere}"), *reply = NULL;
  CHECK_INT_EQ(otpc_gen_statem_call(sm, req, 5000, &reply), 0);
  otpc_buf_unref(reply);
  otpc_buf_unref(req);
  req = T("where");
  CHECK_INT_EQ(otpc_gen_statem_call(sm, req, 5000, &reply), OTPC_EEXITED);
  CHECK(is(otpc_buf_term(reply), "{undef_state, nowhere}"));
  otpc_buf_unref(reply);
  otpc_buf_unref(req);
}

TEST(gen_statem_state_without_callback) { run(body_undef_state); }
