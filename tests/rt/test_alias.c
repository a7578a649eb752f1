/*
 * test_alias.c: process aliases (alias.c) with Erlang's semantics:
 * alias/0,1 (explicit_unalias, reply), unalias/1, monitor/3's alias
 * modes (explicit_unalias, demonitor, reply_demonitor), a message sent
 * before unalias and taken in after it, a dead owner, a stale alias whose
 * slot another process took, a handler owning aliases between messages,
 * and many aliases at once against a model.
 *
 * "Dropped" is shown without waiting on time: messages from one sender
 * arrive in send order, so a marker sent after the message to the alias
 * (by the same sender) must be the first thing that arrives.
 */
#include <stdatomic.h>

#include "otpc.h"
#include "test.h"

static void run_n(void (*body)(void *), unsigned schedulers) {
  otpc_node_opts_t o = {.schedulers = schedulers};
  CHECK_INT_EQ(otpc_main(&o, body, NULL), 0);
}

static void run(void (*body)(void *)) {
  run_n(body, 2);
}

static otpc_pattern_t *pat(const char *text) {
  otpc_pattern_t *p;
  size_t err = 0;
  if (otpc_pattern_compile(text, &p, &err) != 0)
    otpc_test_fail(__FILE__, __LINE__, "pattern %s at %zu", text, err);
  return p;
}

/* The first message in the mailbox (waiting up to 5 s), printed. */
static char *next_msg(int64_t ms) {
  otpc_buf_t *m;
  int rc = otpc_receive(NULL, ms, &m);
  if (rc != 0) return NULL;
  char *s = NULL;
  otpc_term_print(otpc_buf_term(m), &s, NULL);
  otpc_buf_unref(m);
  return s;
}

static void expect_next(const char *text) {
  char *s = next_msg(5000);
  if (s == NULL || strcmp(s, text) != 0)
    otpc_test_fail(__FILE__, __LINE__, "expected %s, got %s", text,
                   s ? s : "nothing");
  free(s);
}

/* Nothing is in the mailbox now (0: only looks). */
static void expect_empty(void) {
  char *s = next_msg(0);
  if (s != NULL) otpc_test_fail(__FILE__, __LINE__, "unexpected %s", s);
}

static void send_alias_f(const otpc_ref_t *alias, const char *text) {
  otpc_buf_t *m = otpc_term_fmt(text);
  CHECK(m != NULL);
  CHECK_INT_EQ(otpc_send_alias(alias, m), 0);
  otpc_buf_unref(m);
}

/* ---- a helper process that sends for us ---------------------------------
 * {send, Alias, Msg}: Msg to Alias, then {marker} to the asker; so the
 * asker sees either Msg then marker, or marker alone (dropped). */

static void kill_proc(otpc_pid_t pid) {
  otpc_buf_t *kill = otpc_term_fmt("kill");
  otpc_exit_signal(pid, otpc_buf_term(kill));
  otpc_buf_unref(kill);
}

static void sender(void *arg) {
  (void)arg;
  /* Kept for good: the sender is killed, and what a killed process got
   * from plain malloc is not freed for it. */
  static otpc_pattern_t *_Atomic shared;
  otpc_pattern_t *p = atomic_load(&shared);
  if (p == NULL) {
    otpc_pattern_t *fresh = pat("{send, ~p, ~r, ~t}"), *expected = NULL;
    if (!atomic_compare_exchange_strong(&shared, &expected, fresh))
      otpc_pattern_free(fresh);
    p = atomic_load(&shared);
  }
  otpc_buf_t *m;
  otpc_pid_t from;
  otpc_ref_t alias;
  otpc_term_t body;
  while (otpc_receive(p, OTPC_INFINITY, &m, &from, &alias, &body) == 0) {
    otpc_buf_t *out = otpc_term_fmt("~t", body);
    otpc_send_alias(&alias, out);
    otpc_buf_unref(out);
    otpc_sendf(from, "marker");
    otpc_buf_unref(m);
  }
}

static void via(otpc_pid_t s, const otpc_ref_t *alias, const char *msg) {
  otpc_pid_t self = otpc_self();
  otpc_buf_t *m = otpc_term_fmt("{send, ~p, ~r, ~a}", &self, alias, msg);
  CHECK_INT_EQ(otpc_send(s, m), 0);
  otpc_buf_unref(m);
}

static otpc_pid_t start_sender(void) {
  otpc_pid_t s;
  otpc_spawn_opts_t o = {.link = true};
  CHECK_INT_EQ(otpc_spawn(sender, NULL, &o, &s), 0);
  return s;
}

/* ---- alias/0 and unalias/1 ---------------------------------------------- */

static void body_alias_unalias(void *arg) {
  (void)arg;
  otpc_trap_exit(true);
  otpc_pid_t s = start_sender();
  otpc_ref_t a;
  CHECK_INT_EQ(otpc_alias(OTPC_ALIAS_EXPLICIT_UNALIAS, &a), 0);
  CHECK_INT_EQ(a.node, otpc_node_name());
  via(s, &a, "one");
  expect_next("one");
  expect_next("marker");
  via(s, &a, "two"); /* explicit_unalias: active until unalias */
  expect_next("two");
  expect_next("marker");
  send_alias_f(&a, "from_self");
  expect_next("from_self");
  CHECK_INT_EQ(otpc_unalias(&a), 1);
  CHECK_INT_EQ(otpc_unalias(&a), 0); /* no longer active */
  via(s, &a, "three");
  expect_next("marker"); /* three was dropped */
  /* An alias is a reference: other refs are no aliases. */
  otpc_ref_t plain = otpc_make_ref();
  CHECK_INT_EQ(otpc_unalias(&plain), 0);
  send_alias_f(&plain, "to_a_plain_ref"); /* dropped, not an error */
  expect_empty();
  kill_proc(s);
}

TEST(alias_send_and_unalias) {
  run(body_alias_unalias);
}

/* Whether the alias is active is decided when the message is taken in:
 * one sent before unalias but taken in after it is dropped; one taken in
 * before unalias stays in the mailbox. */
static void body_unalias_in_flight(void *arg) {
  (void)arg;
  otpc_ref_t a;
  CHECK_INT_EQ(otpc_alias(OTPC_ALIAS_EXPLICIT_UNALIAS, &a), 0);
  send_alias_f(&a, "kept");
  otpc_pattern_t *none = pat("nothing_matches_this");
  otpc_buf_t *m;
  /* A receive takes the inbox in: "kept" is now in the mailbox. */
  CHECK_INT_EQ(otpc_receive(none, 0, &m), OTPC_ETIMEDOUT);
  send_alias_f(&a, "in_flight"); /* in the inbox, not taken in */
  CHECK_INT_EQ(otpc_unalias(&a), 1);
  expect_next("kept");
  expect_empty(); /* in_flight was dropped as it was taken in */
  otpc_pattern_free(none);
}

TEST(alias_message_in_flight_at_unalias_is_dropped) {
  run(body_unalias_in_flight);
}

static void body_alias_reply(void *arg) {
  (void)arg;
  otpc_trap_exit(true);
  otpc_pid_t s = start_sender();
  otpc_ref_t a;
  CHECK_INT_EQ(otpc_alias(OTPC_ALIAS_REPLY, &a), 0);
  via(s, &a, "first");
  via(s, &a, "second");
  expect_next("first");
  expect_next("marker");
  expect_next("marker"); /* the first message deactivated it */
  CHECK_INT_EQ(otpc_unalias(&a), 0);
  /* unalias before any message: nothing comes */
  CHECK_INT_EQ(otpc_alias(OTPC_ALIAS_REPLY, &a), 0);
  CHECK_INT_EQ(otpc_unalias(&a), 1);
  via(s, &a, "third");
  expect_next("marker");
  CHECK_INT_EQ(otpc_alias(7, &a), OTPC_EINVAL);
  kill_proc(s);
}

TEST(alias_reply_mode_takes_one_message) {
  run(body_alias_reply);
}

/* ---- monitor/3's alias modes --------------------------------------------- */

static void idle(void *arg) {
  (void)arg;
  otpc_buf_t *m;
  otpc_pattern_t *p = pat("stop");
  otpc_receive(p, OTPC_INFINITY, &m);
  otpc_buf_unref(m);
  otpc_pattern_free(p);
}

static otpc_pid_t start_idle(void) {
  otpc_pid_t pid;
  CHECK_INT_EQ(otpc_spawn(idle, NULL, NULL, &pid), 0);
  return pid;
}

static size_t my_monitors(void) {
  otpc_proc_info_t info;
  CHECK_INT_EQ(otpc_process_info(otpc_self(), &info), 0);
  return info.monitors;
}

static void body_monitor_alias(void *arg) {
  (void)arg;
  otpc_trap_exit(true);
  otpc_pid_t s = start_sender();
  otpc_ref_t r;

  /* explicit_unalias: the alias outlives demonitor. */
  otpc_pid_t t = start_idle();
  otpc_monitor_opts_t mo = {OTPC_MONITOR_ALIAS_EXPLICIT_UNALIAS};
  CHECK_INT_EQ(otpc_monitor_opts(t, &mo, &r), 0);
  CHECK_INT_EQ(otpc_demonitor(&r, OTPC_DEMONITOR_FLUSH), 0);
  via(s, &r, "after_demonitor");
  expect_next("after_demonitor");
  expect_next("marker");
  CHECK_INT_EQ(otpc_unalias(&r), 1);

  /* demonitor: demonitor deactivates it. */
  mo.alias = OTPC_MONITOR_ALIAS_DEMONITOR;
  CHECK_INT_EQ(otpc_monitor_opts(t, &mo, &r), 0);
  via(s, &r, "while_monitoring");
  expect_next("while_monitoring");
  expect_next("marker");
  CHECK_INT_EQ(otpc_demonitor(&r, 0), 0);
  via(s, &r, "after_demonitor");
  expect_next("marker");
  CHECK_INT_EQ(otpc_unalias(&r), 0);

  /* demonitor: so does the DOWN. */
  CHECK_INT_EQ(otpc_monitor_opts(t, &mo, &r), 0);
  otpc_sendf(t, "stop");
  otpc_pattern_t *down = pat("{'DOWN', ~r, process, _, normal}");
  otpc_buf_t *m;
  otpc_ref_t got;
  CHECK_INT_EQ(otpc_receive(down, 5000, &m, &got), 0);
  otpc_buf_unref(m);
  CHECK(otpc_ref_eq(&got, &r));
  via(s, &r, "after_down");
  expect_next("marker");
  CHECK_INT_EQ(otpc_unalias(&r), 0);

  /* demonitor, of a dead process: DOWN noproc, the alias gone with it. */
  CHECK_INT_EQ(otpc_monitor_opts(t, &mo, &r), 0);
  otpc_pattern_t *noproc = pat("{'DOWN', ~r, process, _, noproc}");
  CHECK_INT_EQ(otpc_receive(noproc, 5000, &m, &got), 0);
  otpc_buf_unref(m);
  CHECK(otpc_ref_eq(&got, &r));
  via(s, &r, "after_noproc");
  expect_next("marker");
  CHECK_INT_EQ(my_monitors(), 0);
  mo.alias = 9;
  CHECK_INT_EQ(otpc_monitor_opts(t, &mo, &r), OTPC_EINVAL);
  otpc_pattern_free(noproc);
  otpc_pattern_free(down);
  kill_proc(s);
}

TEST(monitor_alias_explicit_and_demonitor) {
  run(body_monitor_alias);
}

/* reply_demonitor: the first message through the alias deactivates it and
 * removes the monitor, so the target's later death sends no DOWN; or the
 * DOWN comes first and the alias goes with it. */
static void body_monitor_reply_demonitor(void *arg) {
  (void)arg;
  otpc_trap_exit(true);
  otpc_pid_t s = start_sender();
  otpc_pid_t t = start_idle();
  otpc_monitor_opts_t mo = {OTPC_MONITOR_ALIAS_REPLY_DEMONITOR};
  otpc_ref_t r;
  CHECK_INT_EQ(otpc_monitor_opts(t, &mo, &r), 0);
  CHECK_INT_EQ(my_monitors(), 1);
  via(s, &r, "reply");
  via(s, &r, "second");
  expect_next("reply");
  expect_next("marker");
  expect_next("marker");          /* second dropped */
  CHECK_INT_EQ(my_monitors(), 0); /* the monitor went with the reply */
  CHECK_INT_EQ(otpc_unalias(&r), 0);
  /* t dies: no DOWN for the removed monitor. A second monitor's DOWN,
   * which t sends after the first one's would be, shows it. */
  otpc_ref_t r2;
  CHECK_INT_EQ(otpc_monitor(t, &r2), 0);
  otpc_sendf(t, "stop");
  otpc_pattern_t *down = pat("{'DOWN', ~r, process, _, _}");
  otpc_buf_t *m;
  otpc_ref_t got;
  CHECK_INT_EQ(otpc_receive(down, 5000, &m, &got), 0);
  otpc_buf_unref(m);
  CHECK(otpc_ref_eq(&got, &r2));
  expect_empty();

  /* The DOWN first: the alias goes with it. */
  t = start_idle();
  CHECK_INT_EQ(otpc_monitor_opts(t, &mo, &r), 0);
  otpc_sendf(t, "stop");
  CHECK_INT_EQ(otpc_receive(down, 5000, &m, &got), 0);
  otpc_buf_unref(m);
  CHECK(otpc_ref_eq(&got, &r));
  via(s, &r, "after_down");
  expect_next("marker");
  CHECK_INT_EQ(otpc_unalias(&r), 0);

  /* unalias leaves the monitor. */
  t = start_idle();
  CHECK_INT_EQ(otpc_monitor_opts(t, &mo, &r), 0);
  CHECK_INT_EQ(otpc_unalias(&r), 1);
  via(s, &r, "after_unalias");
  expect_next("marker");
  CHECK_INT_EQ(my_monitors(), 1);
  otpc_sendf(t, "stop");
  CHECK_INT_EQ(otpc_receive(down, 5000, &m, &got), 0);
  otpc_buf_unref(m);
  CHECK(otpc_ref_eq(&got, &r));
  otpc_pattern_free(down);
  kill_proc(s);
}

TEST(monitor_alias_reply_demonitor) {
  run(body_monitor_reply_demonitor);
}

/* ---- the owner dies ------------------------------------------------------ */

/* Makes an alias, sends it to the parent, and ends. */
static void alias_and_die(void *arg) {
  otpc_pid_t parent = *(otpc_pid_t *)arg;
  otpc_ref_t a;
  if (otpc_alias(OTPC_ALIAS_EXPLICIT_UNALIAS, &a) != 0) return;
  otpc_buf_t *m = otpc_term_fmt("{alias, ~r}", &a);
  otpc_send(parent, m);
  otpc_buf_unref(m);
}

/* Reports the first message it gets to the parent, then ends. */
static void first_message(void *arg) {
  otpc_pid_t parent = *(otpc_pid_t *)arg;
  otpc_buf_t *m;
  if (otpc_receive(NULL, OTPC_INFINITY, &m) != 0) return;
  otpc_buf_t *out = otpc_term_fmt("{first, ~t}", otpc_buf_term(m));
  otpc_send(parent, out);
  otpc_buf_unref(out);
  otpc_buf_unref(m);
}

static void body_dead_owner(void *arg) {
  (void)arg;
  otpc_pid_t self = otpc_self(), a_pid;
  otpc_spawn_opts_t o = {.monitor = true};
  otpc_ref_t mon;
  o.monitor_ref = &mon;
  CHECK_INT_EQ(otpc_spawn(alias_and_die, &self, &o, &a_pid), 0);
  otpc_pattern_t *p = pat("{alias, ~r}");
  otpc_buf_t *m;
  otpc_ref_t a;
  CHECK_INT_EQ(otpc_receive(p, 5000, &m, &a), 0);
  otpc_buf_unref(m);
  otpc_pattern_t *down = pat("{'DOWN', _, process, _, normal}");
  CHECK_INT_EQ(otpc_receive(down, 5000, &m), 0);
  otpc_buf_unref(m);
  /* Its owner is dead: dropped, never an error. */
  send_alias_f(&a, "to_the_dead");
  /* Its slot is taken by a new process (one scheduler: the index just
   * freed is the next one handed out, but do not rely on it). */
  enum { TRIES = 64 };
  otpc_pid_t tries[TRIES], reuser = {0, 0, 0, 0};
  int n = 0;
  bool found = false;
  while (n < TRIES && !found) {
    CHECK_INT_EQ(otpc_spawn(first_message, &self, NULL, &tries[n]), 0);
    found = tries[n].id == a_pid.id;
    if (found) reuser = tries[n];
    n++;
  }
  CHECK(found);
  CHECK(reuser.serial != a_pid.serial);
  /* The stale alias names the slot but not the process in it now: the
   * message is dropped, so the marker sent after it comes first. */
  send_alias_f(&a, "stale");
  otpc_sendf(reuser, "marker");
  char want[128];
  snprintf(want, sizeof want, "{first,marker}");
  expect_next(want);
  for (int i = 0; i < n; i++)
    if (!otpc_pid_eq(tries[i], reuser)) otpc_sendf(tries[i], "bye");
  for (int i = 0; i < n - 1; i++) expect_next("{first,bye}");
  otpc_pattern_free(p);
  otpc_pattern_free(down);
}

TEST(alias_of_dead_process_and_reused_slot) {
  run_n(body_dead_owner, 1);
}

/* ---- a handler owns aliases between messages ----------------------------- */

typedef struct hstate {
  otpc_pid_t parent;
  otpc_ref_t alias;
} hstate_t;

static int h_init(void *arg, void **state) {
  hstate_t *h = otpc_palloc(sizeof *h);
  h->parent = *(otpc_pid_t *)arg;
  if (otpc_alias(OTPC_ALIAS_EXPLICIT_UNALIAS, &h->alias) != 0) return -1;
  otpc_buf_t *m = otpc_term_fmt("{alias, ~r}", &h->alias);
  otpc_send(h->parent, m);
  otpc_buf_unref(m);
  *state = h;
  return 0;
}

static int h_handle(void *state, otpc_buf_t *msg) {
  hstate_t *h = state;
  if (otpc_term_is_atom(otpc_buf_term(msg), otpc_atom("unalias")))
    otpc_unalias(&h->alias);
  otpc_buf_t *out = otpc_term_fmt("{got, ~t}", otpc_buf_term(msg));
  otpc_send(h->parent, out);
  otpc_buf_unref(out);
  return OTPC_CONTINUE;
}

static const otpc_handler_t aliased = {h_init, h_handle, NULL};

static void body_handler_alias(void *arg) {
  (void)arg;
  otpc_pid_t self = otpc_self(), h;
  otpc_spawn_opts_t o = {.link = true};
  otpc_trap_exit(true);
  CHECK_INT_EQ(otpc_spawn_handler(&aliased, &self, &o, &h), 0);
  otpc_pattern_t *p = pat("{alias, ~r}");
  otpc_buf_t *m;
  otpc_ref_t a;
  CHECK_INT_EQ(otpc_receive(p, 5000, &m, &a), 0);
  otpc_buf_unref(m);
  for (int i = 0; i < 3; i++) { /* the handler is idle in between */
    send_alias_f(&a, "ping");
    expect_next("{got,ping}");
  }
  otpc_sendf(h, "unalias");
  expect_next("{got,unalias}");
  send_alias_f(&a, "dropped");
  otpc_sendf(h, "marker");
  expect_next("{got,marker}");
  kill_proc(h);
  otpc_pattern_free(p);
}

TEST(handler_keeps_its_aliases_between_messages) {
  run(body_handler_alias);
}

/* ---- many aliases against a model ---------------------------------------- */

static uint64_t rng = 0x2545f4914f6cdd1du;
static uint32_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)rng;
}

static void body_many(void *arg) {
  (void)arg;
  enum { N = 3000 };
  static otpc_ref_t a[N];
  static bool active[N];
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < N; i++) {
      if (!active[i]) {
        CHECK_INT_EQ(otpc_alias(OTPC_ALIAS_EXPLICIT_UNALIAS, &a[i]), 0);
        active[i] = true;
      }
    }
    for (int i = 0; i < N; i++) { /* drop about two thirds */
      if (rnd() % 3 != 0) {
        CHECK_INT_EQ(otpc_unalias(&a[i]), active[i]);
        active[i] = false;
      }
    }
    int expected = 0;
    for (int i = 0; i < N; i++) {
      otpc_buf_t *m = otpc_term_fmt("{n, ~i}", i);
      otpc_send_alias(&a[i], m);
      otpc_buf_unref(m);
      expected += active[i];
    }
    otpc_pattern_t *p = pat("{n, ~i}");
    otpc_buf_t *m;
    int got = 0, v;
    while (otpc_receive(p, 0, &m, &v) == 0) {
      CHECK(v >= 0 && v < N && active[v]);
      got++;
      otpc_buf_unref(m);
    }
    CHECK_INT_EQ(got, expected);
    otpc_pattern_free(p);
  }
  for (int i = 0; i < N; i++) CHECK_INT_EQ(otpc_unalias(&a[i]), active[i]);
}

TEST(many_aliases_agree_with_a_model) {
  run(body_many);
}

TEST(alias_outside_a_process) {
  otpc_node_opts_t o = {.schedulers = 1};
  CHECK_INT_EQ(otpc_node_start(&o), 0);
  otpc_ref_t a = otpc_make_ref();
  CHECK_INT_EQ(otpc_alias(0, &a), OTPC_ENOTPROC);
  CHECK_INT_EQ(otpc_unalias(&a), OTPC_ENOTPROC);
  otpc_monitor_opts_t mo = {OTPC_MONITOR_ALIAS_DEMONITOR};
  CHECK_INT_EQ(otpc_monitor_opts(otpc_self(), &mo, &a), OTPC_ENOTPROC);
  otpc_buf_t *m = otpc_term_fmt("x");
  CHECK_INT_EQ(otpc_send_alias(&a, m), 0); /* not an alias: dropped */
  CHECK_INT_EQ(otpc_send_alias(NULL, m), OTPC_EINVAL);
  otpc_buf_unref(m);
  CHECK_INT_EQ(otpc_node_stop(), 0);
}
