/*
 * test_gen_server.c: gen_server semantics: start (named, already started,
 * ignore, stop in init), call, cast, info, deferred replies, timeouts and
 * continue, stop with terminate, a call to a server that dies mid-call,
 * a call that times out and whose late reply never lands.
 */
#include <stdatomic.h>

#include "otpc.h"
#include "otpc/logger.h"
#include "rt/rt_int.h" /* a test peeks at a server's inbox */
#include "test.h"

static void run(void (*body)(void *)) {
  otpc_node_opts_t o = {.schedulers = 2};
  CHECK_INT_EQ(otpc_main(&o, body, NULL), 0);
}

static otpc_buf_t *T(const char *text) {
  otpc_buf_t *b = otpc_term_fmt(text);
  if (b == NULL) otpc_test_fail(__FILE__, __LINE__, "bad term %s", text);
  return b;
}

static bool is(otpc_buf_t *b, const char *text) {
  otpc_buf_t *want = T(text);
  bool eq = otpc_term_equal(otpc_buf_term(b), otpc_buf_term(want));
  otpc_buf_unref(want);
  return eq;
}

static int64_t call_int(otpc_pid_t s, const char *req) {
  otpc_buf_t *r = T(req), *reply = NULL;
  int rc = otpc_gen_server_call(s, r, 5000, &reply);
  otpc_buf_unref(r);
  if (rc != 0) otpc_test_fail(__FILE__, __LINE__, "call %s: %s", req, otpc_err_name(rc));
  int64_t v = -1;
  otpc_term_get_int64(otpc_buf_term(reply), &v);
  otpc_buf_unref(reply);
  return v;
}

/* ---- a counter server ------------------------------------------------------ */

typedef struct counter {
  int64_t n;
  otpc_from_t parked; /* a call answered later */
  bool has_parked;
} counter_t;

static _Atomic int terminated;

static void c_init(void *arg, void **state, otpc_gs_result_t *r) {
  const char *mode = arg;
  if (mode && strcmp(mode, "ignore") == 0) {
    r->action = OTPC_GS_IGNORE;
    return;
  }
  if (mode && strcmp(mode, "stop") == 0) {
    otpc_gs_stop(r, T("bad_config"));
    return;
  }
  counter_t *c = calloc(1, sizeof *c);
  *state = c;
  if (mode && strcmp(mode, "continue") == 0) otpc_gs_continue(r, T("{set, 100}"));
}

static void c_call(void **state, otpc_term_t req, const otpc_from_t *from,
                   otpc_gs_result_t *r) {
  counter_t *c = *state;
  if (otpc_term_atom_eq(req, "get", 3)) {
    otpc_gs_replyf(r, "~l", c->n);
  } else if (otpc_term_atom_eq(req, "park", 4)) {
    c->parked = *from; /* answered by a later cast */
    c->has_parked = true;
  } else if (otpc_term_atom_eq(req, "crash", 5)) {
    otpc_exit_atom(otpc_atom("crashed_in_call"));
  } else if (otpc_term_atom_eq(req, "slow", 4)) {
    otpc_sleep(200);
    otpc_gs_replyf(r, "late");
  } else if (otpc_term_atom_eq(req, "tag", 3)) {
    otpc_term_t tag = {from->tag, 0, 1}; /* the call's tag, as it came */
    otpc_gs_replyf(r, "~t", tag);
  } else if (otpc_term_atom_eq(req, "stop_me", 7)) {
    otpc_gs_replyf(r, "stopping");
    otpc_gs_stop(r, T("asked"));
  } else if (otpc_term_atom_eq(req, "idle_soon", 9)) {
    otpc_gs_replyf(r, "ok");
    otpc_gs_timeout(r, 20);
  } else {
    otpc_gs_replyf(r, "{error, unknown}");
  }
}

static void c_cast(void **state, otpc_term_t msg, otpc_gs_result_t *r) {
  counter_t *c = *state;
  if (otpc_term_atom_eq(msg, "inc", 3)) c->n++;
  if (otpc_term_atom_eq(msg, "release", 7) && c->has_parked) {
    otpc_buf_t *v = otpc_term_fmt("{released, ~l}", c->n);
    otpc_gen_server_reply(&c->parked, v);
    otpc_buf_unref(v);
    c->has_parked = false;
  }
}

static void c_info(void **state, otpc_term_t msg, otpc_gs_result_t *r) {
  counter_t *c = *state;
  if (otpc_term_is_atom(msg, OTPC_ATOM_TIMEOUT)) c->n = 1000; /* timed out */
  if (otpc_term_atom_eq(msg, "bump", 4)) c->n += 10;
}

static void c_continue(void **state, otpc_term_t cont, otpc_gs_result_t *r) {
  counter_t *c = *state;
  otpc_term_get_int64(otpc_term_tuple_elem(cont, 1), &c->n);
}

static void c_terminate(void **state, otpc_term_t reason) {
  atomic_fetch_add(&terminated, 1);
  free(*state);
}

static const otpc_gen_server_t counter = {
    "counter", c_init, c_call, c_cast, c_info, c_continue, c_terminate,
    NULL, NULL};

/* ---- tests ------------------------------------------------------------------ */

static void body_basics(void *arg) {
  otpc_pid_t s;
  CHECK_INT_EQ(otpc_gen_server_start(&counter, NULL, NULL, &s, NULL), 0);
  CHECK_INT_EQ(call_int(s, "get"), 0);
  otpc_buf_t *inc = T("inc");
  for (int i = 0; i < 5; i++) CHECK_INT_EQ(otpc_gen_server_cast(s, inc), 0);
  otpc_buf_unref(inc);
  CHECK_INT_EQ(call_int(s, "get"), 5); /* casts arrive before the call */
  otpc_sendf(s, "bump"); /* plain message: handle_info */
  CHECK_INT_EQ(call_int(s, "get"), 15);
  CHECK_INT_EQ(otpc_gen_server_stop(s, NULL, 5000), 0);
  CHECK(!otpc_is_alive(s));
  CHECK_INT_EQ(atomic_load(&terminated), 1);
}

TEST(gen_server_call_cast_info_stop) { run(body_basics); }

static void body_named(void *arg) {
  otpc_atom_t name = otpc_atom("counter_srv");
  otpc_gs_opts_t o = {.name = name};
  otpc_pid_t s, again;
  CHECK_INT_EQ(otpc_gen_server_start(&counter, NULL, &o, &s, NULL), 0);
  CHECK_INT_EQ(otpc_gen_server_start(&counter, NULL, &o, &again, NULL),
               OTPC_EEXIST);
  CHECK(otpc_pid_eq(again, s));
  otpc_buf_t *inc = T("inc"), *get = T("get"), *reply = NULL;
  CHECK_INT_EQ(otpc_gen_server_cast_name(name, inc), 0);
  CHECK_INT_EQ(otpc_gen_server_call_name(name, get, 5000, &reply), 0);
  CHECK(is(reply, "1"));
  otpc_buf_unref(reply);
  otpc_gen_server_stop(s, NULL, 5000);
  CHECK_INT_EQ(otpc_gen_server_call_name(name, get, 5000, &reply), OTPC_ENOPROC);
  otpc_buf_unref(inc);
  otpc_buf_unref(get);
}

TEST(gen_server_named) { run(body_named); }

static void body_init_results(void *arg) {
  otpc_pid_t s;
  otpc_buf_t *why = NULL;
  CHECK_INT_EQ(otpc_gen_server_start(&counter, "ignore", NULL, &s, NULL),
               OTPC_EIGNORED);
  CHECK_INT_EQ(otpc_gen_server_start(&counter, "stop", NULL, &s, &why),
               OTPC_ESTOPPED);
  CHECK(why != NULL && is(why, "bad_config"));
  otpc_buf_unref(why);
  CHECK_INT_EQ(otpc_gen_server_start(&counter, "continue", NULL, &s, NULL), 0);
  CHECK_INT_EQ(call_int(s, "get"), 100); /* handle_continue ran first */
  otpc_gen_server_stop(s, NULL, 5000);
}

TEST(gen_server_init_ignore_stop_continue) { run(body_init_results); }

static void body_dies_mid_call(void *arg) {
  otpc_pid_t s;
  CHECK_INT_EQ(otpc_gen_server_start(&counter, NULL, NULL, &s, NULL), 0);
  otpc_buf_t *req = T("crash"), *reply = NULL;
  CHECK_INT_EQ(otpc_gen_server_call(s, req, 5000, &reply), OTPC_EEXITED);
  CHECK(reply != NULL && is(reply, "crashed_in_call"));
  otpc_buf_unref(reply);
  /* And a call to the dead server: noproc. */
  CHECK_INT_EQ(otpc_gen_server_call(s, req, 5000, &reply), OTPC_ENOPROC);
  otpc_buf_unref(req);
}

TEST(gen_server_call_to_server_dying_mid_call) { run(body_dies_mid_call); }

/* A call that reached the server but was never taken in (the server was
 * busy in a callback that then crashed) returns the exit reason, not
 * noproc: its monitor came with it and is answered as Erlang answers the
 * monitors left in a dying process's queue. The busy callback yields
 * (which does not take the inbox in) until the call, made once it is in
 * the callback, is the last signal in its inbox: the call is there,
 * untaken, when it crashes. */
static void sp_init(void *arg, void **state, otpc_gs_result_t *r) {}

static _Atomic int spinning;

static void sp_cast(void **state, otpc_term_t msg, otpc_gs_result_t *r) {
  otpc__proc_t *p = otpc__current();
  atomic_store(&spinning, 1);
  for (;;) {
    otpc__qlink_t *last = atomic_load(&p->inbox.tail);
    const otpc__sig_t *sig = (const otpc__sig_t *)last;
    if (last != &p->inbox.stub && sig->kind == SIG_MESSAGE &&
        (sig->flags & SIGF_MONITOR))
      break;
    otpc_yield();
  }
  otpc_exit_atom(otpc_atom("crashed_busy"));
}

static void sp_call(void **state, otpc_term_t req, const otpc_from_t *from,
                    otpc_gs_result_t *r) {
  otpc_gs_replyf(r, "ok");
}

static const otpc_gen_server_t spinner = {.name = "spinner",
                                          .init = sp_init,
                                          .handle_call = sp_call,
                                          .handle_cast = sp_cast};

static void body_call_queued_at_death(void *arg) {
  otpc_pid_t s;
  CHECK_INT_EQ(otpc_gen_server_start(&spinner, NULL, NULL, &s, NULL), 0);
  otpc_buf_t *spin = T("spin"), *get = T("get"), *reply = NULL;
  CHECK_INT_EQ(otpc_gen_server_cast(s, spin), 0);
  while (!atomic_load(&spinning)) otpc_sleep(1); /* in the callback */
  CHECK_INT_EQ(otpc_gen_server_call(s, get, 5000, &reply), OTPC_EEXITED);
  CHECK(reply != NULL && is(reply, "crashed_busy"));
  otpc_buf_unref(reply);
  otpc_buf_unref(spin);
  otpc_buf_unref(get);
}

TEST(gen_server_call_queued_when_the_server_dies_gets_its_reason) {
  run(body_call_queued_at_death);
}

/* A crash makes one report, with the message the server was handling;
 * a normal stop makes none. */
static _Atomic int crash_reports, with_last_message;

static int catch_reports(void *arg, const otpc_log_event_t *ev,
                         const char *line, size_t len) {
  (void)arg, (void)ev, (void)len;
  if (strstr(line, "crashed_in_call") == NULL) return 0;
  atomic_fetch_add(&crash_reports, 1);
  if (strstr(line, "last_message: {'$gen_call',") && strstr(line, "},crash}") &&
      strstr(line, "initial call: {counter,init,1}"))
    atomic_fetch_add(&with_last_message, 1);
  return 0;
}

static void body_crash_report(void *arg) {
  otpc_logger_remove_handler("default");
  otpc_log_handler_config_t cfg = {.type = OTPC_LOG_CUSTOM,
                                   .write = catch_reports};
  CHECK_INT_EQ(otpc_logger_add_handler("catch", &cfg), 0);
  otpc_pid_t s;
  CHECK_INT_EQ(otpc_gen_server_start(&counter, NULL, NULL, &s, NULL), 0);
  otpc_buf_t *req = T("crash"), *reply = NULL;
  CHECK_INT_EQ(otpc_gen_server_call(s, req, 5000, &reply), OTPC_EEXITED);
  otpc_buf_unref(reply);
  otpc_buf_unref(req);
  CHECK_INT_EQ(otpc_gen_server_start(&counter, NULL, NULL, &s, NULL), 0);
  CHECK_INT_EQ(otpc_gen_server_stop(s, NULL, 5000), 0); /* normal: silent */
  CHECK_INT_EQ(otpc_logger_remove_handler("catch"), 0); /* flushes */
  CHECK_INT_EQ(atomic_load(&crash_reports), 1);
  CHECK_INT_EQ(atomic_load(&with_last_message), 1);
}

TEST(gen_server_crash_report_has_last_message) { run(body_crash_report); }

static void body_timeout(void *arg) {
  otpc_pid_t s;
  CHECK_INT_EQ(otpc_gen_server_start(&counter, NULL, NULL, &s, NULL), 0);
  otpc_buf_t *req = T("slow"), *reply = NULL;
  CHECK_INT_EQ(otpc_gen_server_call(s, req, 30, &reply), OTPC_ETIMEDOUT);
  otpc_buf_unref(req);
  /* The late reply comes at 200 ms: it must never land in our mailbox. */
  otpc_sleep(300);
  otpc_buf_t *m;
  CHECK_INT_EQ(otpc_receive(NULL, 0, &m), OTPC_ETIMEDOUT);
  CHECK_INT_EQ(call_int(s, "get"), 0); /* and the server still works */
  otpc_gen_server_stop(s, NULL, 5000);
}

TEST(gen_server_call_timeout_drops_late_reply) { run(body_timeout); }

/* As OTP 25's gen:call: a call with a timeout sends the tag [alias | Mref],
 * Mref being the monitor's reference and an alias of the caller that the
 * reply goes to; one without a timeout to a local server a plain Mref. */
static void body_call_tags(void *arg) {
  otpc_pid_t s;
  CHECK_INT_EQ(otpc_gen_server_start(&counter, NULL, NULL, &s, NULL), 0);
  otpc_buf_t *req = T("tag"), *reply = NULL;
  CHECK_INT_EQ(otpc_gen_server_call(s, req, 5000, &reply), 0);
  otpc_ref_t alias;
  CHECK(otpc_tag_alias(otpc_buf_term(reply), &alias));
  CHECK(alias.len == 5 && alias.node == otpc_node_name());
  /* The call is over: its alias is inactive (demonitor took it). */
  CHECK_INT_EQ(otpc_unalias(&alias), 0);
  otpc_buf_t *stray = T("stray");
  CHECK_INT_EQ(otpc_send_alias(&alias, stray), 0);
  otpc_buf_unref(stray);
  otpc_buf_unref(reply);
  CHECK_INT_EQ(otpc_gen_server_call(s, req, OTPC_INFINITY, &reply), 0);
  CHECK_INT_EQ(otpc_term_type(otpc_buf_term(reply)), OTPC_TYPE_REF);
  otpc_buf_unref(reply);
  otpc_buf_unref(req);
  otpc_buf_t *m;
  CHECK_INT_EQ(otpc_receive(NULL, 0, &m), OTPC_ETIMEDOUT); /* nothing left */
  otpc_proc_info_t info;
  CHECK_INT_EQ(otpc_process_info(otpc_self(), &info), 0);
  CHECK_INT_EQ(info.monitors, 0);
  otpc_gen_server_stop(s, NULL, 5000);
}

TEST(gen_server_call_tags_as_gen_call) {
  run(body_call_tags);
}

/* Many calls time out, one after another; every late reply is dropped
 * (the old stand-in remembered only the last 16 tags). */
static void body_many_timeouts(void *arg) {
  enum { N = 40 };
  otpc_pid_t s[N];
  otpc_buf_t *req = T("park"), *reply = NULL;
  for (int i = 0; i < N; i++) {
    CHECK_INT_EQ(otpc_gen_server_start(&counter, NULL, NULL, &s[i], NULL), 0);
    CHECK_INT_EQ(otpc_gen_server_call(s[i], req, 1, &reply), OTPC_ETIMEDOUT);
  }
  otpc_buf_unref(req);
  otpc_buf_t *rel = T("release");
  for (int i = 0; i < N; i++) CHECK_INT_EQ(otpc_gen_server_cast(s[i], rel), 0);
  otpc_buf_unref(rel);
  /* Each server replied before it answers this call (one sender's
   * messages arrive in order): the late replies would be here by now. */
  for (int i = 0; i < N; i++) CHECK_INT_EQ(call_int(s[i], "get"), 0);
  otpc_buf_t *m;
  CHECK_INT_EQ(otpc_receive(NULL, 0, &m), OTPC_ETIMEDOUT);
  for (int i = 0; i < N; i++) otpc_gen_server_stop(s[i], NULL, 5000);
}

TEST(gen_server_many_timed_out_calls_drop_every_late_reply) {
  run(body_many_timeouts);
}

static void parker(void *arg) {
  otpc_pid_t *report = arg;
  otpc_pid_t s;
  otpc_whereis(otpc_atom("parking"), &s);
  otpc_buf_t *req = T("park"), *reply = NULL;
  int rc = otpc_gen_server_call(s, req, 5000, &reply);
  otpc_buf_unref(req);
  if (rc == 0) otpc_sendf(*report, "{parker, ~t}", otpc_buf_term(reply));
  otpc_buf_unref(reply);
}

static void body_deferred(void *arg) {
  static otpc_pid_t me;
  me = otpc_self();
  otpc_gs_opts_t o = {.name = otpc_atom("parking")};
  otpc_pid_t s;
  CHECK_INT_EQ(otpc_gen_server_start(&counter, NULL, &o, &s, NULL), 0);
  CHECK_INT_EQ(otpc_spawn(parker, &me, NULL, NULL), 0);
  otpc_sleep(30); /* the parker waits; the server keeps serving */
  otpc_buf_t *inc = T("inc"), *rel = T("release");
  otpc_gen_server_cast(s, inc);
  CHECK_INT_EQ(call_int(s, "get"), 1);
  otpc_gen_server_cast(s, rel);
  otpc_pattern_t *p;
  otpc_pattern_compile("{parker, {released, ~i}}", &p, NULL);
  otpc_buf_t *m;
  int v = -1;
  CHECK_INT_EQ(otpc_receive(p, 5000, &m, &v), 0);
  CHECK_INT_EQ(v, 1);
  otpc_buf_unref(m);
  otpc_pattern_free(p);
  otpc_buf_unref(inc);
  otpc_buf_unref(rel);
  otpc_gen_server_stop(s, NULL, 5000);
}

TEST(gen_server_deferred_reply) { run(body_deferred); }

static void body_stop_and_timeout(void *arg) {
  otpc_pid_t s;
  CHECK_INT_EQ(otpc_gen_server_start(&counter, NULL, NULL, &s, NULL), 0);
  otpc_buf_t *req = T("idle_soon"), *reply = NULL;
  CHECK_INT_EQ(otpc_gen_server_call(s, req, 5000, &reply), 0);
  otpc_buf_unref(reply);
  otpc_buf_unref(req);
  otpc_sleep(80); /* no message for 20 ms: 'timeout' as info */
  CHECK_INT_EQ(call_int(s, "get"), 1000);
  /* {stop, Reason, Reply, State}: the reply comes, then the exit. */
  otpc_ref_t mon;
  otpc_monitor(s, &mon);
  req = T("stop_me");
  CHECK_INT_EQ(otpc_gen_server_call(s, req, 5000, &reply), 0);
  CHECK(is(reply, "stopping"));
  otpc_buf_unref(reply);
  otpc_buf_unref(req);
  otpc_pattern_t *down;
  otpc_pattern_compile("{'DOWN', _, process, _, asked}", &down, NULL);
  otpc_buf_t *m;
  CHECK_INT_EQ(otpc_receive(down, 5000, &m), 0);
  otpc_buf_unref(m);
  otpc_pattern_free(down);
}

TEST(gen_server_timeout_and_stop_reply) { run(body_stop_and_timeout); }

static void body_many_clients(void *arg);

static void client(void *arg) {
  otpc_pid_t *pair = arg; /* server, report */
  otpc_buf_t *inc = T("inc");
  for (int i = 0; i < 100; i++) otpc_gen_server_cast(pair[0], inc);
  otpc_buf_unref(inc);
  int64_t v = call_int(pair[0], "get");
  otpc_sendf(pair[1], "{done, ~l}", v);
}

static void body_many_clients(void *arg) {
  static otpc_pid_t pair[2];
  CHECK_INT_EQ(otpc_gen_server_start(&counter, NULL, NULL, &pair[0], NULL), 0);
  pair[1] = otpc_self();
  enum { CLIENTS = 100 };
  for (int i = 0; i < CLIENTS; i++) CHECK_INT_EQ(otpc_spawn(client, pair, NULL, NULL), 0);
  otpc_pattern_t *p;
  otpc_pattern_compile("{done, ~l}", &p, NULL);
  for (int i = 0; i < CLIENTS; i++) {
    otpc_buf_t *m;
    int64_t v;
    CHECK_INT_EQ(otpc_receive(p, 10000, &m, &v), 0);
    CHECK(v >= 100 && v <= 100 * CLIENTS);
    otpc_buf_unref(m);
  }
  otpc_pattern_free(p);
  CHECK_INT_EQ(call_int(pair[0], "get"), 100 * CLIENTS);
  otpc_gen_server_stop(pair[0], NULL, 5000);
}

TEST(gen_server_many_clients) { run(body_many_clients); }

/* ---- a call's monitor, on the server's side -------------------------------
 * A handler takes a call into an empty queue without making the entry of
 * the monitor that came with it (SIGF_MON_PENDING, signal.c): answered as
 * it is handled, the monitor is dropped with the reply and the caller
 * sends no demonitor; otherwise the entry is made as the callback
 * returns, and a death before that answers the call with a DOWN all the
 * same. These look at the server's monitor table from inside it. */

static _Atomic int holding, release_hold, saw_pending, dying;

/* The call's monitor, in the queue's first message: not made yet. */
static bool first_pending(void) {
  const otpc__sig_t *m = otpc__current()->mq_first;
  return m != NULL && (m->flags & SIGF_MON_PENDING);
}

static void w_init(void *arg, void **state, otpc_gs_result_t *r) {}

static void w_call(void **state, otpc_term_t req, const otpc_from_t *from,
                   otpc_gs_result_t *r) {
  if (otpc_term_atom_eq(req, "park", 4)) return; /* never answered */
  if (otpc_term_atom_eq(req, "hold", 4)) {
    atomic_store(&holding, 1);
    while (!atomic_load(&release_hold)) {
      otpc_sleep(1); /* takes the inbox in */
      if (first_pending()) atomic_store(&saw_pending, 1);
    }
  } else if (otpc_term_atom_eq(req, "die_soon", 8)) {
    atomic_store(&dying, 1);
    while (otpc__current()->mq_len < 2) otpc_sleep(1);
    if (first_pending()) atomic_store(&saw_pending, 1);
    otpc_exit_atom(otpc_atom("died_soon"));
  }
  otpc_gs_replyf(r, "ok");
}

/* {watchers, Pid}: how many monitors of callers the server holds. */
static void w_cast(void **state, otpc_term_t msg, otpc_gs_result_t *r) {
  otpc_pid_t to;
  if (otpc_term_get_pid(otpc_term_tuple_elem(msg, 1), &to) == 0)
    otpc_sendf(to, "{watchers, ~l}",
               (int64_t)otpc__mon_count(otpc__current(), MON_WATCHED));
}

static const otpc_gen_server_t watched = {.name = "watched",
                                          .init = w_init,
                                          .handle_call = w_call,
                                          .handle_cast = w_cast};

static int64_t watchers(otpc_pid_t s) {
  otpc_pid_t self = otpc_self();
  otpc_buf_t *q = otpc_term_fmt("{watchers, ~p}", &self), *m;
  otpc_gen_server_cast(s, q);
  otpc_buf_unref(q);
  otpc_pattern_t *p;
  otpc_pattern_compile("{watchers, ~l}", &p, NULL);
  int64_t n = -1;
  CHECK_INT_EQ(otpc_receive(p, 5000, &m, &n), 0);
  otpc_buf_unref(m);
  otpc_pattern_free(p);
  return n;
}

/* A process that calls, and reports {called, Rc, Reply}. */
typedef struct call_job {
  otpc_pid_t server, report;
  const char *req;
  int64_t timeout;
} call_job_t;

static void caller(void *arg) {
  const call_job_t *j = arg;
  otpc_buf_t *req = T(j->req), *reply = NULL;
  int rc = otpc_gen_server_call(j->server, req, j->timeout, &reply);
  otpc_buf_t *none = reply ? NULL : T("none");
  otpc_sendf(j->report, "{called, ~l, ~t}", (int64_t)rc,
             otpc_buf_term(reply ? reply : none));
  otpc_buf_unref(none);
  otpc_buf_unref(reply);
  otpc_buf_unref(req);
}

static void await_called(int rc_want, const char *reply_want) {
  otpc_pattern_t *p;
  otpc_pattern_compile("{called, ~l, _}", &p, NULL);
  otpc_buf_t *m;
  int64_t rc = 0;
  CHECK_INT_EQ(otpc_receive(p, 5000, &m, &rc), 0);
  CHECK_INT_EQ(rc, rc_want);
  otpc_buf_t *want = T(reply_want);
  CHECK(otpc_term_equal(otpc_term_tuple_elem(otpc_buf_term(m), 2),
                        otpc_buf_term(want)));
  otpc_buf_unref(want);
  otpc_buf_unref(m);
  otpc_pattern_free(p);
}

static void body_monitors_dropped_with_reply(void *arg) {
  otpc_pid_t s;
  CHECK_INT_EQ(otpc_gen_server_start(&watched, NULL, NULL, &s, NULL), 0);
  otpc_buf_t *get = T("get"), *reply = NULL;
  for (int i = 0; i < 100; i++) {
    CHECK_INT_EQ(
        otpc_gen_server_call(s, get, i % 2 ? 5000 : OTPC_INFINITY, &reply), 0);
    CHECK(is(reply, "ok"));
    otpc_buf_unref(reply);
  }
  otpc_buf_unref(get);
  CHECK_INT_EQ(watchers(s), 0);
  otpc_proc_info_t info;
  CHECK_INT_EQ(otpc_process_info(otpc_self(), &info), 0);
  CHECK_INT_EQ(info.monitors, 0);
  /* A call left unanswered keeps its monitor, which its caller then
   * hears the server's death through. */
  static call_job_t j;
  j = (call_job_t){s, otpc_self(), "park", OTPC_INFINITY};
  CHECK_INT_EQ(otpc_spawn(caller, &j, NULL, NULL), 0);
  for (int i = 0; i < 5000 && watchers(s) != 1; i++) otpc_sleep(1);
  CHECK_INT_EQ(watchers(s), 1);
  otpc_buf_t *kill = T("kill");
  otpc_exit_signal(s, otpc_buf_term(kill));
  otpc_buf_unref(kill);
  await_called(OTPC_EEXITED, "killed");
}

TEST(gen_server_call_monitor_goes_with_the_reply) {
  run(body_monitors_dropped_with_reply);
}

/* Calls taken in while the server is busy in a callback that then
 * crashes: the first, whose monitor is not made yet, gets the reason as
 * the second (made) does. */
static void body_pending_call_at_death(void *arg) {
  otpc_pid_t s;
  CHECK_INT_EQ(otpc_gen_server_start(&watched, NULL, NULL, &s, NULL), 0);
  static call_job_t a, b, c;
  a = (call_job_t){s, otpc_self(), "die_soon", OTPC_INFINITY};
  b = (call_job_t){s, otpc_self(), "get", OTPC_INFINITY};
  c = (call_job_t){s, otpc_self(), "get", 5000};
  CHECK_INT_EQ(otpc_spawn(caller, &a, NULL, NULL), 0);
  while (!atomic_load(&dying)) otpc_sleep(1);
  CHECK_INT_EQ(otpc_spawn(caller, &b, NULL, NULL), 0);
  CHECK_INT_EQ(otpc_spawn(caller, &c, NULL, NULL), 0);
  for (int i = 0; i < 3; i++) await_called(OTPC_EEXITED, "died_soon");
  CHECK_INT_EQ(atomic_load(&saw_pending), 1);
}

TEST(gen_server_call_taken_by_a_dying_server_gets_its_reason) {
  run(body_pending_call_at_death);
}

/* A call that times out in the queue, behind a busy callback, and is then
 * left unanswered: its demonitor found the monitor not made yet, and it
 * is not made later either. */
static void body_timed_out_pending(void *arg) {
  otpc_pid_t s;
  CHECK_INT_EQ(otpc_gen_server_start(&watched, NULL, NULL, &s, NULL), 0);
  static call_job_t a;
  a = (call_job_t){s, otpc_self(), "hold", OTPC_INFINITY};
  CHECK_INT_EQ(otpc_spawn(caller, &a, NULL, NULL), 0);
  while (!atomic_load(&holding)) otpc_sleep(1);
  otpc_buf_t *park = T("park"), *reply = NULL;
  CHECK_INT_EQ(otpc_gen_server_call(s, park, 20, &reply), OTPC_ETIMEDOUT);
  otpc_buf_unref(park);
  otpc_sleep(20); /* the demonitor taken in by the busy callback */
  atomic_store(&release_hold, 1);
  await_called(0, "ok");
  CHECK_INT_EQ(atomic_load(&saw_pending), 1);
  CHECK_INT_EQ(watchers(s), 0);
  otpc_gen_server_stop(s, NULL, 5000);
}

TEST(gen_server_timed_out_call_leaves_no_monitor_behind) {
  run(body_timed_out_pending);
}

/* ---- a call's server run by its caller ----------------------------------- */

/* A call to an idle server runs the server's turn in the caller, on the
 * scheduler's call stack (sched.c): the callback sees itself as the
 * server, and the turn is charged to the caller. A callback that blocks
 * there (a call of its own, to a server run the usual way since only
 * one is run so at a time) lets its caller go on waiting, and finishes
 * later: the answers are right, and the server serves on. */
static _Atomic int ran_by_caller, ran_by_loop, self_ok;

static void rc_note(void) {
  otpc__proc_t *p = otpc__current();
  if (otpc__self_sched->called == p) atomic_fetch_add(&ran_by_caller, 1);
  else atomic_fetch_add(&ran_by_loop, 1);
}

static void rc_init(void *arg, void **state, otpc_gs_result_t *r) {
  *state = arg; /* the pid of the server to relay to, or NULL */
}

static void rc_call(void **state, otpc_term_t req, const otpc_from_t *from,
                    otpc_gs_result_t *r) {
  rc_note();
  if (otpc_pid_eq(otpc_self(), otpc__proc_pid(otpc__current())))
    atomic_fetch_add(&self_ok, 1);
  int64_t n = 0;
  otpc_term_get_int64(req, &n);
  otpc_pid_t *next = *state;
  if (next != NULL) { /* blocks in the callback */
    otpc_buf_t *q = otpc_term_fmt("~l", n), *reply = NULL;
    if (otpc_gen_server_call(*next, q, 5000, &reply) == 0)
      otpc_term_get_int64(otpc_buf_term(reply), &n);
    otpc_buf_unref(q);
    otpc_buf_unref(reply);
  }
  otpc_gs_replyf(r, "~l", n + 1);
}

static const otpc_gen_server_t relay = {
    .name = "relay", .init = rc_init, .handle_call = rc_call};

static void body_run_by_caller(void *arg) {
  static otpc_pid_t inner;
  otpc_pid_t outer;
  CHECK_INT_EQ(otpc_gen_server_start(&relay, NULL, NULL, &inner, NULL), 0);
  CHECK_INT_EQ(otpc_gen_server_start(&relay, &inner, NULL, &outer, NULL), 0);
  otpc_sleep(10); /* both idle */
  /* One call to the inner server alone: run by its caller, and charged:
   * the caller's reductions count the server's message and reply too. */
  otpc__proc_t *me = otpc__current();
  uint64_t r0 = me->reductions;
  CHECK_INT_EQ(call_int(inner, "7"), 8);
  CHECK(me->reductions - r0 >= 3);
  CHECK_INT_EQ(atomic_load(&ran_by_caller), 1);
  /* Through the outer one, which blocks in its callback for the inner. */
  for (int i = 0; i < 100; i++) {
    char req[16];
    snprintf(req, sizeof req, "%d", i);
    CHECK_INT_EQ(call_int(outer, req), i + 2);
  }
  CHECK_INT_EQ(atomic_load(&self_ok), 201);
  /* Every outer call ran in its caller; every inner one, called from a
   * callback run so, ran from the loop. */
  CHECK_INT_EQ(atomic_load(&ran_by_caller), 101);
  CHECK_INT_EQ(atomic_load(&ran_by_loop), 100);
  otpc_gen_server_stop(outer, NULL, 5000);
  otpc_gen_server_stop(inner, NULL, 5000);
}

TEST(gen_server_call_runs_an_idle_server_in_its_caller) {
  run(body_run_by_caller);
}
