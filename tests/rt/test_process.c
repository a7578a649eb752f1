/*
 * test_process.c: the runtime's semantics, one test per rule: spawning,
 * messages and selective receive, timeouts, links and exit signals,
 * monitors, names, timers, handlers that block inside a callback.
 * Each test body runs as the first process of a fresh node.
 */
#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/socket.h>
#include <signal.h>
#include <unistd.h>

#include "otpc.h"
#include "test.h"

static void run(void (*body)(void *)) {
  otpc_node_opts_t o = {.schedulers = 2};
  CHECK_INT_EQ(otpc_main(&o, body, NULL), 0);
}

static otpc_pattern_t *pat(const char *text) {
  otpc_pattern_t *p;
  size_t err = 0;
  if (otpc_pattern_compile(text, &p, &err) != 0)
    otpc_test_fail(__FILE__, __LINE__, "pattern %s at %zu", text, err);
  return p;
}

/* A pattern compiled once and shared by processes on any scheduler. */
static otpc_pattern_t *shared_pat(otpc_pattern_t *_Atomic *slot,
                                  const char *text) {
  otpc_pattern_t *p = atomic_load(slot);
  if (p == NULL) {
    otpc_pattern_t *fresh = pat(text), *expected = NULL;
    if (!atomic_compare_exchange_strong(slot, &expected, fresh))
      otpc_pattern_free(fresh);
    p = atomic_load(slot);
  }
  return p;
}

/* Receives a message matching text within a second, or fails. */
static otpc_buf_t *expect(const char *text) {
  otpc_pattern_t *p = pat(text);
  otpc_buf_t *m = NULL;
  int rc = otpc_receive(p, 5000, &m);
  otpc_pattern_free(p);
  if (rc != 0) otpc_test_fail(__FILE__, __LINE__, "no %s: %s", text,
                              otpc_err_name(rc));
  return m;
}

static void expect_none(const char *text, int64_t ms) {
  otpc_pattern_t *p = pat(text);
  otpc_buf_t *m = NULL;
  int rc = otpc_receive(p, ms, &m);
  otpc_pattern_free(p);
  if (rc == 0) {
    char *s;
    otpc_term_print(otpc_buf_term(m), &s, NULL);
    otpc_test_fail(__FILE__, __LINE__, "unexpected %s", s);
  }
  CHECK_INT_EQ(rc, OTPC_ETIMEDOUT);
}

/* ---- messages ------------------------------------------------------------ */

static void echo_proc(void *arg) {
  /* Shared and never freed: an echo process may be killed while it waits,
   * and memory a killed process got from plain malloc is not reclaimed
   * (otpc_palloc memory is). */
  static otpc_pattern_t *_Atomic shared;
  otpc_pattern_t *p = shared_pat(&shared, "{~p, ~t}");
  otpc_buf_t *m;
  otpc_pid_t from;
  otpc_term_t body;
  while (otpc_receive(p, OTPC_INFINITY, &m, &from, &body) == 0) {
    bool stop = otpc_term_is_atom(body, otpc_atom("stop"));
    otpc_sendf(from, "{echo, ~t}", body);
    otpc_buf_unref(m);
    if (stop) break;
  }
}

static void body_send_receive(void *arg) {
  otpc_pid_t echo;
  CHECK_INT_EQ(otpc_spawn(echo_proc, NULL, NULL, &echo), 0);
  otpc_pid_t me = otpc_self();
  for (int i = 0; i < 1000; i++) CHECK_INT_EQ(otpc_sendf(echo, "{~p, ~i}", &me, i), 0);
  otpc_pattern_t *p = pat("{echo, ~i}");
  for (int i = 0; i < 1000; i++) {
    otpc_buf_t *m;
    int v = -1;
    CHECK_INT_EQ(otpc_receive(p, 5000, &m, &v), 0);
    CHECK_INT_EQ(v, i); /* in order */
    otpc_buf_unref(m);
  }
  otpc_pattern_free(p);
  otpc_sendf(echo, "{~p, stop}", &me);
  otpc_buf_unref(expect("{echo, stop}"));
}

TEST(send_and_receive_in_order) { run(body_send_receive); }

static void body_selective(void *arg) {
  otpc_pid_t me = otpc_self();
  otpc_sendf(me, "{a, 1}");
  otpc_sendf(me, "{b, 2}");
  otpc_sendf(me, "{a, 3}");
  otpc_sendf(me, "{c, 4}");
  /* Take b first; the others stay, in order. */
  otpc_buf_unref(expect("{b, _}"));
  otpc_pattern_t *any = pat("{~a, ~i}");
  int want[] = {1, 3, 4};
  for (int i = 0; i < 3; i++) {
    otpc_buf_t *m;
    otpc_atom_t tag;
    int v;
    CHECK_INT_EQ(otpc_receive(any, 0, &m, &tag, &v), 0);
    CHECK_INT_EQ(v, want[i]);
    otpc_buf_unref(m);
  }
  otpc_pattern_free(any);
  otpc_buf_t *m;
  CHECK_INT_EQ(otpc_receive(NULL, 0, &m), OTPC_ETIMEDOUT);
}

TEST(selective_receive_keeps_order) { run(body_selective); }

static void late_sender(void *arg) {
  otpc_pid_t *to = arg;
  otpc_sleep(20);
  otpc_sendf(*to, "noise");
  otpc_sleep(20);
  otpc_sendf(*to, "wanted");
}

static void body_message_during_wait(void *arg) {
  static otpc_pid_t me;
  me = otpc_self();
  CHECK_INT_EQ(otpc_spawn(late_sender, &me, NULL, NULL), 0);
  /* A message that does not match arrives while we wait; we keep waiting
   * and it stays in the mailbox. */
  otpc_buf_unref(expect("wanted"));
  otpc_buf_unref(expect("noise"));
}

TEST(message_arriving_during_selective_receive) {
  run(body_message_during_wait);
}

static void body_timeouts(void *arg) {
  otpc_buf_t *m;
  int64_t t0 = otpc_now_ms();
  CHECK_INT_EQ(otpc_receive(NULL, 0, &m), OTPC_ETIMEDOUT);
  CHECK_INT_EQ(otpc_receive(NULL, 50, &m), OTPC_ETIMEDOUT);
  CHECK(otpc_now_ms() - t0 >= 50); /* waited at least the timeout */
  otpc_sendf(otpc_self(), "here");
  CHECK_INT_EQ(otpc_receive(NULL, 0, &m), 0);
  otpc_buf_unref(m);
  CHECK_INT_EQ(otpc_sleep(10), 0);
}

TEST(receive_timeouts) { run(body_timeouts); }

/* ---- handlers ------------------------------------------------------------- */

static int counter_init(void *arg, void **state) {
  *state = calloc(1, sizeof(long));
  return *state ? 0 : -1;
}

static int counter_handle(void *state, otpc_buf_t *msg) {
  long *n = state;
  otpc_pid_t from;
  static otpc_pattern_t *_Atomic get_slot, *_Atomic add_slot;
  otpc_pattern_t *get = shared_pat(&get_slot, "{get, ~p}");
  otpc_pattern_t *add = shared_pat(&add_slot, "add");
  if (otpc_match(add, otpc_buf_term(msg)) == 1) {
    (*n)++;
    return OTPC_CONTINUE;
  }
  if (otpc_match(get, otpc_buf_term(msg), &from) == 1) {
    otpc_sendf(from, "{count, ~l}", (int64_t)*n);
    return OTPC_CONTINUE;
  }
  return OTPC_STOP;
}

static void counter_terminate(void *state, otpc_term_t reason) { free(state); }

static const otpc_handler_t counter = {counter_init, counter_handle,
                                       counter_terminate};

static void body_handler(void *arg) {
  otpc_pid_t c;
  otpc_ref_t ref;
  otpc_spawn_opts_t o = {.monitor = true, .monitor_ref = &ref};
  CHECK_INT_EQ(otpc_spawn_handler(&counter, NULL, &o, &c), 0);
  for (int i = 0; i < 500; i++) otpc_sendf(c, "add");
  otpc_pid_t me = otpc_self();
  otpc_sendf(c, "{get, ~p}", &me);
  otpc_buf_t *m = expect("{count, _}");
  int64_t n;
  CHECK_INT_EQ(otpc_term_get_int64(otpc_term_tuple_elem(otpc_buf_term(m), 1), &n), 0);
  CHECK_INT_EQ(n, 500);
  otpc_buf_unref(m);
  otpc_proc_info_t info;
  CHECK_INT_EQ(otpc_process_info(c, &info), 0);
  CHECK(info.handler);
  otpc_sendf(c, "quit");
  otpc_buf_unref(expect("{'DOWN', _, process, _, normal}"));
  CHECK(!otpc_is_alive(c));
}

TEST(handler_process_counts_and_stops) { run(body_handler); }

/* process_info of another process: links and monitors are the owner's,
 * so they are asked for with a signal; a dead process answers noproc. */
static void watcher(void *arg) {
  otpc_pid_t *parent = arg;
  otpc_ref_t ref;
  CHECK_INT_EQ(otpc_link(*parent), 0);
  CHECK_INT_EQ(otpc_monitor(*parent, &ref), 0);
  CHECK_INT_EQ(otpc_monitor(*parent, &ref), 0);
  otpc_sendf(*parent, "ready");
  otpc_buf_t *m;
  otpc_receive(NULL, OTPC_INFINITY, &m); /* "go" */
  otpc_buf_unref(m);
}

static void body_info_other(void *arg) {
  static otpc_pid_t me;
  me = otpc_self();
  otpc_pid_t w;
  otpc_trap_exit(true);
  otpc_spawn_opts_t named = {.name = "watcher"};
  CHECK_INT_EQ(otpc_spawn(watcher, &me, &named, &w), 0);
  otpc_buf_unref(expect("ready"));
  otpc_proc_info_t info;
  CHECK_INT_EQ(otpc_process_info(w, &info), 0);
  CHECK_INT_EQ(info.links, 1);
  CHECK_INT_EQ(info.monitors, 2);
  CHECK(!info.handler);
  CHECK_STR_EQ(info.current_function, "watcher");
  otpc_sendf(w, "go");
  otpc_buf_unref(expect("{'EXIT', _, normal}"));
  CHECK_INT_EQ(otpc_process_info(w, &info), OTPC_ENOPROC);
}

TEST(process_info_of_another_process) { run(body_info_other); }

/* Thousands of links on one process (its table gets a hash index):
 * linking twice counts once, unlinking in any order leaves exactly the
 * others, and those all send their EXIT. */
static void link_then_wait(void *arg) {
  otpc_buf_t *m;
  otpc_receive(NULL, OTPC_INFINITY, &m);
  otpc_buf_unref(m);
}

static void body_many_links(void *arg) {
  enum { N = 3000 };
  otpc_pid_t *kids = malloc(N * sizeof *kids);
  otpc_trap_exit(true);
  for (int i = 0; i < N; i++) {
    otpc_spawn_opts_t o = {.link = true};
    CHECK_INT_EQ(otpc_spawn(link_then_wait, NULL, &o, &kids[i]), 0);
    if (i % 3 == 0) CHECK_INT_EQ(otpc_link(kids[i]), 0); /* again: no-op */
  }
  otpc_proc_info_t info;
  CHECK_INT_EQ(otpc_process_info(otpc_self(), &info), 0);
  CHECK_INT_EQ(info.links, N);
  /* Unlink every other one, from the middle outwards. */
  int unlinked = 0;
  for (int d = 0; d < N / 2; d++) {
    int i = d % 2 ? N / 2 + d : N / 2 - d;
    if (i % 2 == 0) {
      CHECK_INT_EQ(otpc_unlink(kids[i]), 0);
      unlinked++;
    }
  }
  CHECK_INT_EQ(otpc_process_info(otpc_self(), &info), 0);
  CHECK_INT_EQ(info.links, N - unlinked);
  /* Every one is still found after all that: linking all again adds
   * just the unlinked ones back. */
  for (int i = 0; i < N; i++) CHECK_INT_EQ(otpc_link(kids[i]), 0);
  CHECK_INT_EQ(otpc_process_info(otpc_self(), &info), 0);
  CHECK_INT_EQ(info.links, N);
  for (int i = 1; i < N; i += 2) CHECK_INT_EQ(otpc_unlink(kids[i]), 0);
  CHECK_INT_EQ(otpc_process_info(otpc_self(), &info), 0);
  CHECK_INT_EQ(info.links, N / 2);
  for (int i = 0; i < N; i++) otpc_sendf(kids[i], "go");
  for (int i = 0; i < N / 2; i++) otpc_buf_unref(expect("{'EXIT', _, normal}"));
  otpc_buf_t *m;
  CHECK_INT_EQ(otpc_receive(NULL, 100, &m), OTPC_ETIMEDOUT); /* no more */
  CHECK_INT_EQ(otpc_process_info(otpc_self(), &info), 0);
  CHECK_INT_EQ(info.links, 0);
  free(kids);
}

TEST(thousands_of_links) { run(body_many_links); }

/* A handler that calls another process from inside its callback: it keeps
 * its stack while it waits, and the scheduler goes on. */
static int caller_handle(void *state, otpc_buf_t *msg) {
  otpc_pid_t server, reply_to;
  static otpc_pattern_t *_Atomic call_slot;
  otpc_pattern_t *call = shared_pat(&call_slot, "{call, ~p, ~p}");
  if (otpc_match(call, otpc_buf_term(msg), &server, &reply_to) != 1)
    return OTPC_STOP;
  otpc_pid_t me = otpc_self();
  otpc_sendf(server, "{get, ~p}", &me);
  otpc_pattern_t *reply = pat("{count, ~l}");
  otpc_buf_t *r;
  int64_t n = -1;
  if (otpc_receive(reply, 5000, &r, &n) == 0) otpc_buf_unref(r);
  otpc_pattern_free(reply);
  otpc_sendf(reply_to, "{called, ~l}", n);
  return OTPC_CONTINUE;
}

static const otpc_handler_t caller = {NULL, caller_handle, NULL};

static void body_handler_blocks(void *arg) {
  otpc_pid_t server, callers[20];
  CHECK_INT_EQ(otpc_spawn_handler(&counter, NULL, NULL, &server), 0);
  for (int i = 0; i < 7; i++) otpc_sendf(server, "add");
  otpc_pid_t me = otpc_self();
  for (int i = 0; i < 20; i++) {
    CHECK_INT_EQ(otpc_spawn_handler(&caller, NULL, NULL, &callers[i]), 0);
    /* Each caller blocks in its callback twice. */
    otpc_sendf(callers[i], "{call, ~p, ~p}", &server, &me);
    otpc_sendf(callers[i], "{call, ~p, ~p}", &server, &me);
  }
  for (int i = 0; i < 40; i++) otpc_buf_unref(expect("{called, 7}"));
  for (int i = 0; i < 20; i++) otpc_sendf(callers[i], "bye");
  otpc_sendf(server, "bye");
}

TEST(handler_blocking_inside_callback) { run(body_handler_blocks); }

/* ---- links and exits --------------------------------------------------- */

static void crasher(void *arg) {
  otpc_sleep(10);
  otpc_exit_atom(otpc_atom("boom"));
}

static void body_link_trap(void *arg) {
  CHECK_INT_EQ(otpc_trap_exit(true), 0);
  otpc_pid_t c;
  otpc_spawn_opts_t o = {.link = true};
  CHECK_INT_EQ(otpc_spawn(crasher, NULL, &o, &c), 0);
  otpc_buf_unref(expect("{'EXIT', _, boom}"));
}

TEST(trap_exit_turns_exit_into_message) { run(body_link_trap); }

static void linked_waiter(void *arg) {
  otpc_pid_t *report = arg;
  otpc_pid_t c;
  otpc_spawn_opts_t o = {.link = true};
  otpc_spawn(crasher, NULL, &o, &c);
  otpc_buf_t *m;
  otpc_receive(NULL, OTPC_INFINITY, &m); /* killed before anything comes */
  otpc_sendf(*report, "survived");
}

static void body_link_kills(void *arg) {
  static otpc_pid_t me;
  me = otpc_self();
  otpc_ref_t ref;
  otpc_spawn_opts_t o = {.monitor = true, .monitor_ref = &ref};
  otpc_pid_t w;
  CHECK_INT_EQ(otpc_spawn(linked_waiter, &me, &o, &w), 0);
  otpc_buf_unref(expect("{'DOWN', _, process, _, boom}"));
  expect_none("survived", 50);
}

TEST(link_propagates_exit) { run(body_link_kills); }

static void normal_child(void *arg) {}

static void body_normal_exit_of_link(void *arg) {
  /* A linked process ending normally does not end us; trapping, we see
   * {'EXIT', Pid, normal}. */
  otpc_pid_t c;
  otpc_spawn_opts_t o = {.link = true};
  CHECK_INT_EQ(otpc_spawn(normal_child, NULL, &o, &c), 0);
  otpc_sleep(30);
  otpc_trap_exit(true);
  CHECK_INT_EQ(otpc_spawn(normal_child, NULL, &o, &c), 0);
  otpc_buf_unref(expect("{'EXIT', _, normal}"));
}

TEST(normal_exit_of_linked_process) { run(body_normal_exit_of_link); }

static void trapper(void *arg) {
  otpc_trap_exit(true);
  otpc_buf_t *m;
  otpc_receive(NULL, OTPC_INFINITY, &m);
  otpc_buf_unref(m);
  otpc_pid_t *report = arg;
  otpc_sendf(*report, "trapped");
}

static void body_kill(void *arg) {
  static otpc_pid_t me;
  me = otpc_self();
  otpc_pid_t t;
  otpc_ref_t ref;
  otpc_spawn_opts_t o = {.monitor = true, .monitor_ref = &ref};
  CHECK_INT_EQ(otpc_spawn(trapper, &me, &o, &t), 0);
  otpc_sleep(10);
  otpc_buf_t *kill = otpc_term_fmt("kill");
  CHECK_INT_EQ(otpc_exit_signal(t, otpc_buf_term(kill)), 0);
  otpc_buf_unref(kill);
  otpc_buf_unref(expect("{'DOWN', _, process, _, killed}"));
  expect_none("trapped", 30);
}

TEST(kill_cannot_be_trapped) { run(body_kill); }

static void body_exit_normal_ignored(void *arg) {
  static otpc_pid_t me;
  me = otpc_self();
  otpc_pid_t t;
  otpc_ref_t ref;
  otpc_spawn_opts_t o = {.monitor = true, .monitor_ref = &ref};
  CHECK_INT_EQ(otpc_spawn(trapper, &me, &o, &t), 0);
  otpc_sleep(10);
  /* A trapping process gets exit(Pid, normal) as a message. */
  otpc_buf_t *normal = otpc_term_fmt("normal");
  otpc_exit_signal(t, otpc_buf_term(normal));
  otpc_buf_unref(expect("trapped"));
  otpc_buf_unref(expect("{'DOWN', _, process, _, normal}"));
  /* A process not trapping ignores exit(Pid, normal). */
  otpc_pid_t e;
  CHECK_INT_EQ(otpc_spawn(echo_proc, NULL, &o, &e), 0);
  otpc_exit_signal(e, otpc_buf_term(normal));
  expect_none("{'DOWN', _, process, _, _}", 30);
  otpc_buf_t *bye = otpc_term_fmt("bye");
  otpc_exit_signal(e, otpc_buf_term(bye));
  otpc_buf_unref(expect("{'DOWN', _, process, _, bye}"));
  otpc_buf_unref(bye);
  otpc_buf_unref(normal);
}

TEST(exit_signal_reasons) { run(body_exit_normal_ignored); }

static void body_link_dead(void *arg) {
  otpc_pid_t c;
  CHECK_INT_EQ(otpc_spawn(normal_child, NULL, NULL, &c), 0);
  otpc_sleep(20);
  CHECK(!otpc_is_alive(c));
  CHECK_INT_EQ(otpc_link(c), OTPC_ENOPROC);
  otpc_trap_exit(true);
  CHECK_INT_EQ(otpc_link(c), 0);
  otpc_buf_unref(expect("{'EXIT', _, noproc}"));
}

TEST(link_to_dead_process) { run(body_link_dead); }

/* ---- monitors ------------------------------------------------------------ */

static void body_monitor(void *arg) {
  otpc_pid_t c;
  CHECK_INT_EQ(otpc_spawn(crasher, NULL, NULL, &c), 0);
  otpc_ref_t ref;
  CHECK_INT_EQ(otpc_monitor(c, &ref), 0);
  otpc_pattern_t *down = pat("{'DOWN', ~r, process, ~p, ~a}");
  otpc_buf_t *m;
  otpc_ref_t r;
  otpc_pid_t who;
  otpc_atom_t why;
  CHECK_INT_EQ(otpc_receive(down, 5000, &m, &r, &who, &why), 0);
  CHECK(otpc_ref_eq(&r, &ref));
  CHECK(otpc_pid_eq(who, c));
  CHECK_INT_EQ(why, otpc_atom("boom"));
  otpc_buf_unref(m);
  /* Monitoring a dead pid: DOWN noproc, once. */
  CHECK_INT_EQ(otpc_monitor(c, &ref), 0);
  otpc_buf_unref(expect("{'DOWN', _, process, _, noproc}"));
  expect_none("{'DOWN', _, _, _, _}", 30);
  /* Demonitor: no DOWN. */
  otpc_pid_t e;
  CHECK_INT_EQ(otpc_spawn(crasher, NULL, NULL, &e), 0);
  CHECK_INT_EQ(otpc_monitor(e, &ref), 0);
  CHECK_INT_EQ(otpc_demonitor(&ref, OTPC_DEMONITOR_FLUSH), 0);
  expect_none("{'DOWN', _, _, _, _}", 50);
  otpc_pattern_free(down);
}

TEST(monitors) { run(body_monitor); }

/* ---- refs ---------------------------------------------------------------- */

/* Refs made at once on every scheduler, and outside them, never repeat
 * (each scheduler takes them from the node's counter in blocks). */
enum { REF_MAKERS = 8, REFS_EACH = 10000 };
static otpc_ref_t made_refs[REF_MAKERS + 1][REFS_EACH];
static otpc_pid_t ref_parent;

static void make_refs(void *arg) {
  otpc_ref_t *out = arg;
  for (int i = 0; i < REFS_EACH; i++) {
    out[i] = otpc_make_ref();
    if (i % 1000 == 0) otpc_yield(); /* let the others interleave */
  }
  otpc_sendf(ref_parent, "made");
}

static int ref_cmp(const void *a, const void *b) {
  return memcmp(a, b, sizeof(otpc_ref_t));
}

/* On a dirty thread: outside the schedulers. */
static intptr_t make_refs_dirty(void *arg) {
  otpc_ref_t *out = arg;
  for (int i = 0; i < REFS_EACH; i++) out[i] = otpc_make_ref();
  return 0;
}

static void body_unique_refs(void *arg) {
  ref_parent = otpc_self();
  for (int i = 0; i < REF_MAKERS; i++)
    CHECK_INT_EQ(otpc_spawn(make_refs, made_refs[i], NULL, NULL), 0);
  otpc_dirty(make_refs_dirty, made_refs[REF_MAKERS]);
  for (int i = 0; i < REF_MAKERS; i++) otpc_buf_unref(expect("made"));
  enum { N = (REF_MAKERS + 1) * REFS_EACH };
  otpc_ref_t *all = &made_refs[0][0];
  qsort(all, N, sizeof *all, ref_cmp);
  for (int i = 1; i < N; i++) CHECK(!otpc_ref_eq(&all[i - 1], &all[i]));
}

TEST(refs_are_unique_across_schedulers) { run(body_unique_refs); }

/* ---- names --------------------------------------------------------------- */

static void body_names(void *arg) {
  otpc_atom_t name = otpc_atom("echo_server");
  otpc_pid_t e, found;
  CHECK_INT_EQ(otpc_whereis(name, &found), OTPC_ENONAME);
  CHECK_INT_EQ(otpc_spawn(echo_proc, NULL, NULL, &e), 0);
  CHECK_INT_EQ(otpc_register(name, e), 0);
  CHECK_INT_EQ(otpc_register(name, otpc_self()), OTPC_EEXIST);
  CHECK_INT_EQ(otpc_whereis(name, &found), 0);
  CHECK(otpc_pid_eq(found, e));
  otpc_atom_t names[8];
  CHECK_INT_EQ(otpc_registered(names, 8), 1);
  otpc_pid_t me = otpc_self();
  otpc_buf_t *msg = otpc_term_fmt("{~p, hi}", &me);
  CHECK_INT_EQ(otpc_send_name(name, msg), 0);
  otpc_buf_unref(msg);
  otpc_buf_unref(expect("{echo, hi}"));
  /* Monitor by name: DOWN names {Name, Node}. */
  otpc_ref_t ref;
  CHECK_INT_EQ(otpc_monitor_name(name, &ref), 0);
  otpc_sendf(e, "{~p, stop}", &me);
  otpc_buf_unref(expect("{'DOWN', _, process, {echo_server, 'nonode@nohost'}, normal}"));
  /* The name is freed when its process dies. */
  CHECK_INT_EQ(otpc_whereis(name, &found), OTPC_ENONAME);
  CHECK_INT_EQ(otpc_monitor_name(name, &ref), 0);
  otpc_buf_unref(expect("{'DOWN', _, process, {echo_server, _}, noproc}"));
}

TEST(registered_names) { run(body_names); }

/* ---- timers -------------------------------------------------------------- */

static void body_timers(void *arg) {
  otpc_pid_t me = otpc_self();
  otpc_buf_t *a = otpc_term_fmt("first"), *b = otpc_term_fmt("second"),
             *c = otpc_term_fmt("cancelled");
  otpc_ref_t ta, tb, tc;
  CHECK_INT_EQ(otpc_send_after(40, me, b, &tb), 0);
  CHECK_INT_EQ(otpc_start_timer(10, me, a, &ta), 0);
  CHECK_INT_EQ(otpc_send_after(1000, me, c, &tc), 0);
  int64_t left = otpc_cancel_timer(&tc);
  CHECK(left > 0 && left <= 1000);
  CHECK_INT_EQ(otpc_cancel_timer(&tc), OTPC_ENOTIMER);
  otpc_buf_t *m = expect("{timeout, _, first}");
  otpc_ref_t got;
  CHECK_INT_EQ(otpc_term_get_ref(otpc_term_tuple_elem(otpc_buf_term(m), 1), &got), 0);
  CHECK(otpc_ref_eq(&got, &ta));
  otpc_buf_unref(m);
  otpc_buf_unref(expect("second"));
  expect_none("cancelled", 30);
  otpc_buf_unref(a);
  otpc_buf_unref(b);
  otpc_buf_unref(c);
}

TEST(timers) { run(body_timers); }

static int quit_handle(void *state, otpc_buf_t *msg) { return OTPC_STOP; }
static const otpc_handler_t quitter = {NULL, quit_handle, NULL};

/* A timer whose destination dies goes with it (Erlang cancels timers to a
 * pid when that process exits): cancel_timer then finds nothing. Many
 * timers at once, so the lookup tables grow and shrink meanwhile. */
static void body_timers_die_with_dest(void *arg) {
  enum { N = 5000 };
  otpc_buf_t *msg = otpc_term_fmt("late");
  otpc_ref_t *refs = malloc(N * sizeof *refs);
  otpc_pid_t victim;
  CHECK_INT_EQ(otpc_spawn_handler(&quitter, NULL, NULL, &victim), 0);
  otpc_pid_t me = otpc_self();
  for (int i = 0; i < N; i++)
    CHECK_INT_EQ(otpc_send_after(60000, i % 2 ? victim : me, msg, &refs[i]), 0);
  otpc_ref_t mon;
  CHECK_INT_EQ(otpc_monitor(victim, &mon), 0);
  otpc_send(victim, msg); /* it stops */
  otpc_buf_unref(expect("{'DOWN', _, process, _, normal}"));
  for (int i = 0; i < N; i++) {
    int64_t left = otpc_cancel_timer(&refs[i]);
    if (i % 2)
      CHECK_INT_EQ(left, OTPC_ENOTIMER); /* went with the process */
    else
      CHECK(left > 0); /* ours: still armed */
  }
  free(refs);
  otpc_buf_unref(msg);
}

TEST(timers_die_with_their_destination) { run(body_timers_die_with_dest); }

/* ---- many processes -------------------------------------------------------- */


static void body_many(void *arg) {
  enum { N = 100000 };
  size_t base = otpc_process_count();
  otpc_pid_t *pids = malloc(N * sizeof *pids);
  for (int i = 0; i < N; i++)
    CHECK_INT_EQ(otpc_spawn_handler(&quitter, NULL, NULL, &pids[i]), 0);
  CHECK(otpc_process_count() >= N);
  otpc_buf_t *go = otpc_term_fmt("go");
  for (int i = 0; i < N; i++) otpc_send(pids[i], go);
  otpc_buf_unref(go);
  for (int tries = 0; tries < 500 && otpc_process_count() > base; tries++)
    otpc_sleep(10);
  CHECK_INT_EQ(otpc_process_count(), base);
  free(pids);
}

TEST(hundred_thousand_handlers_come_and_go) { run(body_many); }

static void seq_child(void *arg) {
  otpc_buf_t *m;
  otpc_receive(NULL, OTPC_INFINITY, &m);
  otpc_buf_unref(m);
}

/* Under TSan each stack also costs TSan mappings, and until idle stacks
 * are evicted (docs/internals/stacks.md) every blocked sequential process
 * keeps one: fewer of them there. */
#if defined(__SANITIZE_THREAD__)
#define MANY_SEQ 2000
#else
#define MANY_SEQ 20000
#endif

static void body_many_seq(void *arg) {
  enum { N = MANY_SEQ };
  size_t base = otpc_process_count();
  otpc_pid_t *pids = malloc(N * sizeof *pids);
  for (int i = 0; i < N; i++)
    CHECK_INT_EQ(otpc_spawn(seq_child, NULL, NULL, &pids[i]), 0);
  otpc_sleep(50);
  otpc_buf_t *go = otpc_term_fmt("go");
  for (int i = 0; i < N; i++) otpc_send(pids[i], go);
  otpc_buf_unref(go);
  for (int tries = 0; tries < 500 && otpc_process_count() > base; tries++)
    otpc_sleep(10);
  CHECK_INT_EQ(otpc_process_count(), base);
  free(pids);
}

TEST(sequential_processes_block_and_end) { run(body_many_seq); }

/* ---- outside the node ---------------------------------------------------- */

TEST(api_outside_a_process) {
  otpc_buf_t *m;
  CHECK_INT_EQ(otpc_receive(NULL, 0, &m), OTPC_ENOTPROC);
  otpc_node_opts_t o = {.schedulers = 1};
  CHECK_INT_EQ(otpc_node_start(&o), 0);
  CHECK_INT_EQ(otpc_node_start(&o), OTPC_ESTATE);
  CHECK_INT_EQ(otpc_link(otpc_self()), OTPC_ENOTPROC);
  otpc_pid_t e;
  CHECK_INT_EQ(otpc_spawn(seq_child, NULL, NULL, &e), 0);
  /* A plain thread may send. */
  CHECK_INT_EQ(otpc_sendf(e, "done"), 0);
  CHECK_INT_EQ(otpc_node_wait(5000), 0);
  CHECK_INT_EQ(otpc_node_stop(), 0);
  /* And a node can be started again. */
  CHECK_INT_EQ(otpc_node_start(&o), 0);
  CHECK_INT_EQ(otpc_spawn(seq_child, NULL, NULL, &e), 0);
  CHECK_INT_EQ(otpc_node_stop(), 0); /* with a live process */
}

/* ---- descriptors and dirty work ------------------------------------------ */

static void pipe_reader(void *arg) {
  int *fds = arg;
  otpc_own_fd(fds[0]);
  /* Nothing to read yet: a timeout. */
  CHECK_INT_EQ(otpc_wait_fd(fds[0], OTPC_FD_READ, 20), OTPC_ETIMEDOUT);
  int rc = otpc_wait_fd(fds[0], OTPC_FD_READ, 5000);
  CHECK(rc > 0 && (rc & OTPC_FD_READ));
  char c;
  CHECK_INT_EQ(read(fds[0], &c, 1), 1);
  CHECK_INT_EQ(c, 'x');
}

static void body_wait_fd(void *arg) {
  static int fds[2];
  CHECK_INT_EQ(pipe(fds), 0);
  otpc_ref_t ref;
  otpc_spawn_opts_t o = {.monitor = true, .monitor_ref = &ref};
  otpc_pid_t r;
  CHECK_INT_EQ(otpc_spawn(pipe_reader, fds, &o, &r), 0);
  /* Meanwhile the schedulers keep running other processes. */
  otpc_sleep(60);
  CHECK(otpc_is_alive(r));
  CHECK_INT_EQ(write(fds[1], "x", 1), 1);
  otpc_buf_unref(expect("{'DOWN', _, process, _, normal}"));
  /* The reader owned fds[0]: it was closed when it ended. */
  CHECK(write(fds[1], "y", 1) < 0);
  close(fds[1]);
}

TEST(wait_fd_without_blocking_a_scheduler) {
  signal(SIGPIPE, SIG_IGN);
  run(body_wait_fd);
}

/* Whether fd is in some epoll set of this OS process (the node's is the
 * only one): the kernel lists every registration in /proc/self/fdinfo. */
static bool fd_registered(int fd) {
  DIR *d = opendir("/proc/self/fdinfo");
  CHECK(d != NULL);
  bool found = false;
  struct dirent *e;
  while (!found && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char path[300], line[256];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%s", e->d_name);
    FILE *f = fopen(path, "r");
    if (f == NULL) continue;
    while (fgets(line, sizeof line, f) != NULL) {
      int tfd;
      if (sscanf(line, "tfd: %d", &tfd) == 1 && tfd == fd) found = true;
    }
    fclose(f);
  }
  closedir(d);
  return found;
}

/* Until a process waits on fd (bounded: a few seconds at most). */
static void until_registered(int fd) {
  for (int i = 0; i < 1000 && !fd_registered(fd); i++) otpc_sleep(5);
  CHECK(fd_registered(fd));
}

static otpc_pid_t io_parent; /* the test body, for the waiters' reports */

static void fd_waiter(void *arg) {
  int fd = (int)(intptr_t)arg;
  int rc = otpc_wait_fd(fd, OTPC_FD_READ, 5000);
  CHECK(rc > 0 && (rc & OTPC_FD_READ));
  otpc_sendf(io_parent, "{woke, ~i}", (int64_t)fd);
}

/* A registration stays across waits, and goes with the descriptor or with
 * a process killed while it waits. */
static void body_fd_registration(void *arg) {
  (void)arg;
  io_parent = otpc_self();
  int fds[2];
  CHECK_INT_EQ(pipe(fds), 0);
  for (int round = 0; round < 3; round++) {
    otpc_pid_t w;
    CHECK_INT_EQ(otpc_spawn(fd_waiter, (void *)(intptr_t)fds[0], NULL, &w), 0);
    otpc_sleep(20);
    CHECK_INT_EQ(write(fds[1], "x", 1), 1);
    otpc_buf_unref(expect("{woke, _}"));
    char c;
    CHECK_INT_EQ(read(fds[0], &c, 1), 1);
    CHECK(fd_registered(fds[0])); /* kept for the next wait */
  }
  /* Closed: the kernel drops it; the number, used again, waits afresh. */
  int old = fds[0];
  close(fds[0]);
  close(fds[1]);
  CHECK(!fd_registered(old));
  CHECK_INT_EQ(pipe(fds), 0);
  otpc_pid_t w;
  CHECK_INT_EQ(otpc_spawn(fd_waiter, (void *)(intptr_t)fds[0], NULL, &w), 0);
  otpc_sleep(20);
  CHECK_INT_EQ(write(fds[1], "x", 1), 1);
  otpc_buf_unref(expect("{woke, _}"));
  char c;
  CHECK_INT_EQ(read(fds[0], &c, 1), 1);
  /* Killed while waiting: its registration is gone. */
  otpc_ref_t ref;
  otpc_spawn_opts_t o = {.monitor = true, .monitor_ref = &ref};
  CHECK_INT_EQ(otpc_spawn(fd_waiter, (void *)(intptr_t)fds[0], &o, &w), 0);
  until_registered(fds[0]);
  otpc_buf_t *kill = otpc_term_fmt("kill");
  CHECK_INT_EQ(otpc_exit_signal(w, otpc_buf_term(kill)), 0);
  otpc_buf_unref(kill);
  otpc_buf_unref(expect("{'DOWN', _, process, _, killed}"));
  CHECK(!fd_registered(fds[0]));
  close(fds[0]);
  close(fds[1]);
}

TEST(wait_fd_registration_kept_and_dropped) { run(body_fd_registration); }

/* The reader and the writer of one socket wait on it at the same time. */
static void sock_writer(void *arg) {
  int fd = (int)(intptr_t)arg;
  char block[4096] = {0};
  while (write(fd, block, sizeof block) > 0) {
  }
  CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
  otpc_sendf(io_parent, "full");
  int rc = otpc_wait_fd(fd, OTPC_FD_WRITE, 5000);
  CHECK(rc > 0 && (rc & OTPC_FD_WRITE));
  otpc_sendf(io_parent, "writable");
}

static void sock_reader(void *arg) {
  int fd = (int)(intptr_t)arg;
  int rc = otpc_wait_fd(fd, OTPC_FD_READ, 5000);
  CHECK(rc > 0 && (rc & OTPC_FD_READ));
  otpc_sendf(io_parent, "readable");
}

static void body_fd_both_sides(void *arg) {
  (void)arg;
  io_parent = otpc_self();
  int sv[2];
  CHECK_INT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
  otpc_pid_t r, w;
  CHECK_INT_EQ(otpc_spawn(sock_reader, (void *)(intptr_t)sv[0], NULL, &r), 0);
  until_registered(sv[0]); /* the reader waits */
  CHECK_INT_EQ(otpc_spawn(sock_writer, (void *)(intptr_t)sv[0], NULL, &w), 0);
  otpc_buf_unref(expect("full"));
  /* Both wait (or the writer is about to): the writer's wait must not take
   * the reader's away. */
  expect_none("readable", 20);
  expect_none("writable", 0);
  char buf[65536];
  while (read(sv[1], buf, sizeof buf) > 0) {
  }
  otpc_buf_unref(expect("writable"));
  CHECK_INT_EQ(write(sv[1], "x", 1), 1);
  otpc_buf_unref(expect("readable"));
  close(sv[0]);
  close(sv[1]);
}

TEST(wait_fd_reader_and_writer_of_one_socket) { run(body_fd_both_sides); }

/* Many processes on many descriptors, some timing out first and waiting
 * again, each woken for its own. */
#define MANY_FDS 200

static void many_waiter(void *arg) {
  int fd = (int)(intptr_t)arg;
  if (fd % 2 == 0)
    CHECK_INT_EQ(otpc_wait_fd(fd, OTPC_FD_READ, 1), OTPC_ETIMEDOUT);
  otpc_sendf(io_parent, "{waiting, ~i}", (int64_t)fd); /* nothing written before */
  int rc = otpc_wait_fd(fd, OTPC_FD_READ, 10000);
  CHECK(rc > 0 && (rc & OTPC_FD_READ));
  char c;
  CHECK_INT_EQ(read(fd, &c, 1), 1);
  otpc_sendf(io_parent, "{woke, ~i}", (int64_t)fd);
}

static void body_fd_many(void *arg) {
  (void)arg;
  io_parent = otpc_self();
  static int fds[MANY_FDS][2];
  for (int i = 0; i < MANY_FDS; i++) {
    CHECK_INT_EQ(pipe(fds[i]), 0);
    otpc_pid_t w;
    CHECK_INT_EQ(
        otpc_spawn(many_waiter, (void *)(intptr_t)fds[i][0], NULL, &w), 0);
  }
  for (int i = 0; i < MANY_FDS; i++) otpc_buf_unref(expect("{waiting, _}"));
  for (int i = MANY_FDS - 1; i >= 0; i--)
    CHECK_INT_EQ(write(fds[i][1], "x", 1), 1);
  for (int i = 0; i < MANY_FDS; i++) {
    char text[32];
    snprintf(text, sizeof text, "{woke, %d}", fds[i][0]);
    otpc_buf_unref(expect(text));
  }
  for (int i = 0; i < MANY_FDS; i++) {
    close(fds[i][0]);
    close(fds[i][1]);
  }
}

TEST(wait_fd_many_processes_many_fds) { run(body_fd_many); }

static intptr_t slow_square(void *arg) {
  usleep(30000); /* a blocking call: would stall a scheduler */
  intptr_t v = (intptr_t)arg;
  return v * v;
}

static void dirty_user(void *arg) {
  otpc_pid_t *report = arg;
  intptr_t r = otpc_dirty(slow_square, (void *)(intptr_t)12);
  otpc_sendf(*report, "{square, ~l}", (int64_t)r);
}

static void body_dirty(void *arg) {
  static otpc_pid_t me;
  me = otpc_self();
  for (int i = 0; i < 8; i++) CHECK_INT_EQ(otpc_spawn(dirty_user, &me, NULL, NULL), 0);
  for (int i = 0; i < 8; i++) otpc_buf_unref(expect("{square, 144}"));
  /* A process killed while its job runs leaves nothing behind. */
  otpc_pid_t v;
  CHECK_INT_EQ(otpc_spawn(dirty_user, &me, NULL, &v), 0);
  otpc_sleep(5);
  otpc_buf_t *kill = otpc_term_fmt("kill");
  otpc_exit_signal(v, otpc_buf_term(kill));
  otpc_buf_unref(kill);
  expect_none("{square, _}", 80);
}

TEST(dirty_work) { run(body_dirty); }

/* ---- stacks shared by eviction ---------------------------------------------- */

/* Keeps a checksum of its frames' locals across blocking receives; with
 * thousands of these the scheduler must evict and restore their stacks,
 * and any mistake shows as a wrong sum or a crash. */
static void stateful(void *arg) {
  uintptr_t seed = (uintptr_t)arg;
  volatile uint32_t local[64];
  for (int i = 0; i < 64; i++) local[i] = (uint32_t)(seed * 2654435761u + i);
  static otpc_pattern_t *_Atomic slot;
  otpc_pattern_t *p = shared_pat(&slot, "{round, ~p}");
  for (int round = 0; round < 3; round++) {
    otpc_buf_t *m;
    otpc_pid_t from;
    if (otpc_receive(p, OTPC_INFINITY, &m, &from) != 0) return;
    otpc_buf_unref(m);
    uint32_t sum = 0;
    for (int i = 0; i < 64; i++) sum += local[i] ^ (uint32_t)i;
    uint32_t want = 0;
    for (int i = 0; i < 64; i++)
      want += (uint32_t)(seed * 2654435761u + i) ^ (uint32_t)i;
    otpc_sendf(from, "{sum, ~i}", sum == want ? 1 : 0);
  }
}

static void body_evict(void *arg) {
  enum { N = MANY_SEQ };
  otpc_pid_t *pids = malloc(N * sizeof *pids);
  for (int i = 0; i < N; i++)
    CHECK_INT_EQ(otpc_spawn(stateful, (void *)(uintptr_t)i, NULL, &pids[i]), 0);
  otpc_pid_t me = otpc_self();
  otpc_pattern_t *sum = pat("{sum, ~i}");
  for (int round = 0; round < 3; round++) {
    /* In reverse order, so that restores do not follow evictions. */
    for (int i = N - 1; i >= 0; i--) otpc_sendf(pids[i], "{round, ~p}", &me);
    for (int i = 0; i < N; i++) {
      otpc_buf_t *m;
      int ok = 0;
      CHECK_INT_EQ(otpc_receive(sum, 10000, &m, &ok), 0);
      CHECK_INT_EQ(ok, 1);
      otpc_buf_unref(m);
    }
  }
  otpc_pattern_free(sum);
  free(pids);
}

TEST(evicted_stacks_keep_their_frames) { run(body_evict); }

/* Handlers blocked inside callbacks, more of them than stacks. */
static int blocker_handle(void *state, otpc_buf_t *msg) {
  otpc_pid_t reply_to;
  volatile uint64_t mark = 0xfeedfacecafebeefull ^ (uintptr_t)state;
  static otpc_pattern_t *_Atomic s1, *_Atomic s2;
  otpc_pattern_t *wait = shared_pat(&s1, "{wait, ~p}");
  if (otpc_match(wait, otpc_buf_term(msg), &reply_to) != 1) return OTPC_STOP;
  otpc_buf_t *m;
  if (otpc_receive(shared_pat(&s2, "release"), OTPC_INFINITY, &m) == 0)
    otpc_buf_unref(m);
  otpc_sendf(reply_to, "{released, ~i}",
             mark == (0xfeedfacecafebeefull ^ (uintptr_t)state) ? 1 : 0);
  return OTPC_CONTINUE;
}

static int blocker_init(void *arg, void **state) {
  *state = arg;
  return 0;
}

static const otpc_handler_t blocker = {blocker_init, blocker_handle, NULL};

static void body_blocked_handlers(void *arg) {
  enum { N = MANY_SEQ / 4 };
  otpc_pid_t *pids = malloc(N * sizeof *pids);
  otpc_pid_t me = otpc_self();
  for (int i = 0; i < N; i++) {
    CHECK_INT_EQ(otpc_spawn_handler(&blocker, (void *)(uintptr_t)i, NULL, &pids[i]), 0);
    otpc_sendf(pids[i], "{wait, ~p}", &me);
  }
  otpc_sleep(100); /* all of them now blocked inside handle() */
  for (int i = 0; i < N; i++) otpc_sendf(pids[i], "release");
  otpc_pattern_t *rel = pat("{released, ~i}");
  for (int i = 0; i < N; i++) {
    otpc_buf_t *m;
    int ok = 0;
    CHECK_INT_EQ(otpc_receive(rel, 10000, &m, &ok), 0);
    CHECK_INT_EQ(ok, 1);
    otpc_buf_unref(m);
  }
  otpc_pattern_free(rel);
  for (int i = 0; i < N; i++) otpc_sendf(pids[i], "bye");
  free(pids);
}

TEST(handlers_blocked_in_callbacks_share_stacks) { run(body_blocked_handlers); }

/* ---- exits from callbacks ----------------------------------------------- */

/*
 * An exit from inside a callback goes back to the first frame of the loop
 * instance that dispatched it (sched.c, otpc__exit_current), when that is
 * the active one. A handler that blocked inside its callback and was
 * resumed runs on the stack of an older instance: its exit must leave
 * that stack to be freed, not jump to the active loop's base. Each round
 * has both kinds: one handler blocks in its callback, handlers exit from
 * init and from handle on the loop that took over meanwhile, then the
 * blocked one is released and exits where it blocked. A stack left behind
 * per round would show as mappings that grow with the rounds.
 */
static otpc_pid_t quit_parent;

static int cb_exit_init(void *arg, void **state) {
  *state = arg;
  if ((uintptr_t)arg == 1) otpc_exit_atom(otpc_atom("from_init"));
  return OTPC_CONTINUE;
}

static int cb_exit_handle(void *state, otpc_buf_t *msg) {
  static otpc_pattern_t *_Atomic s1, *_Atomic s2;
  (void)state;
  if (otpc_match(shared_pat(&s1, "block"), otpc_buf_term(msg)) == 1) {
    otpc_sendf(quit_parent, "blocked");
    otpc_buf_t *m;
    if (otpc_receive(shared_pat(&s2, "release"), OTPC_INFINITY, &m) == 0)
      otpc_buf_unref(m);
    otpc_exit_atom(otpc_atom("after_block"));
  }
  otpc_exit_atom(otpc_atom("from_handle"));
}

static const otpc_handler_t cb_exiter = {cb_exit_init, cb_exit_handle, NULL};

static long mappings(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  if (f == NULL) return -1;
  long n = 0;
  int c;
  while ((c = fgetc(f)) != EOF) n += c == '\n';
  fclose(f);
  return n;
}

/* Spawns a monitored cb_exiter with arg; its ref in *ref. */
static otpc_pid_t cb_exit_spawn(uintptr_t arg, otpc_ref_t *ref) {
  otpc_spawn_opts_t o = {.monitor = true, .monitor_ref = ref};
  otpc_pid_t pid;
  CHECK_INT_EQ(otpc_spawn_handler(&cb_exiter, (void *)arg, &o, &pid), 0);
  return pid;
}

/* n DOWNs, in any order: each for one of refs, with that one's reason. */
static void expect_downs(otpc_pattern_t *down, const otpc_ref_t *refs,
                         const char *const *reasons, int n) {
  bool seen[16] = {false};
  for (int k = 0; k < n; k++) {
    otpc_buf_t *m;
    otpc_ref_t r;
    otpc_atom_t why;
    CHECK_INT_EQ(otpc_receive(down, 5000, &m, &r, &why), 0);
    otpc_buf_unref(m);
    int i = 0;
    while (i < n && !otpc_ref_eq(&r, &refs[i])) i++;
    CHECK(i < n && !seen[i]);
    seen[i] = true;
    CHECK_INT_EQ(why, otpc_atom(reasons[i]));
  }
}

static void body_callback_exits(void *arg) {
  enum { ROUNDS = 300, WARM = 20, K = 10 };
  quit_parent = otpc_self();
  size_t base = otpc_process_count();
  otpc_pattern_t *down = pat("{'DOWN', ~r, process, _, ~a}");
  long before = 0;
  for (int round = 0; round < ROUNDS; round++) {
    if (round == WARM) before = mappings();
    otpc_ref_t bref, refs[K];
    const char *reasons[K];
    otpc_pid_t b = cb_exit_spawn(0, &bref);
    otpc_sendf(b, "block");
    otpc_buf_unref(expect("blocked"));
    for (int i = 0; i < K; i++) {
      otpc_pid_t q = cb_exit_spawn(i % 2 ? 1 : 2, &refs[i]);
      if (i % 2 == 0) otpc_sendf(q, "go");
      reasons[i] = i % 2 ? "from_init" : "from_handle";
    }
    expect_downs(down, refs, reasons, K);
    otpc_sendf(b, "release");
    const char *after_block = "after_block";
    expect_downs(down, &bref, &after_block, 1);
  }
  for (int tries = 0; tries < 500 && otpc_process_count() > base; tries++)
    otpc_sleep(10);
  CHECK_INT_EQ(otpc_process_count(), base);
  long after = mappings();
  printf("  mappings after %d rounds: %ld, after %d more: %ld\n", WARM, before,
         ROUNDS - WARM, after);
  CHECK(before > 0);
  CHECK(after - before < 64);
  otpc_pattern_free(down);
}

TEST(exits_from_callbacks_leave_no_stack_behind) {
  run(body_callback_exits);
}

/* ---- priorities ------------------------------------------------------------ */

static void prio_worker(void *arg) {
  otpc_pid_t *report = arg;
  otpc_buf_t *m;
  otpc_receive(NULL, OTPC_INFINITY, &m); /* the start signal */
  otpc_buf_unref(m);
  otpc_proc_info_t info;
  otpc_process_info(otpc_self(), &info);
  otpc_sendf(*report, "{done, ~i}", (int)info.priority);
}

static void body_priorities(void *arg) {
  static otpc_pid_t me;
  me = otpc_self();
  CHECK_INT_EQ(otpc_set_priority(OTPC_PRIO_MAX), OTPC_PRIO_NORMAL);
  /* On one scheduler, runnable at once: max and high run before normal,
   * normal before low. */
  otpc_pid_t w[4];
  otpc_priority_t order[4] = {OTPC_PRIO_LOW, OTPC_PRIO_NORMAL, OTPC_PRIO_HIGH,
                              OTPC_PRIO_MAX};
  for (int i = 0; i < 4; i++) {
    otpc_spawn_opts_t o = {.priority = order[i]};
    CHECK_INT_EQ(otpc_spawn(prio_worker, &me, &o, &w[i]), 0);
  }
  otpc_sleep(50); /* all four wait for the start signal */
  for (int i = 0; i < 4; i++) otpc_sendf(w[i], "go");
  int got[4];
  otpc_pattern_t *done = pat("{done, ~i}");
  for (int i = 0; i < 4; i++) {
    otpc_buf_t *m;
    CHECK_INT_EQ(otpc_receive(done, 5000, &m, &got[i]), 0);
    otpc_buf_unref(m);
  }
  otpc_pattern_free(done);
  CHECK_INT_EQ(got[0], OTPC_PRIO_MAX);
  CHECK_INT_EQ(got[1], OTPC_PRIO_HIGH);
  CHECK_INT_EQ(got[2], OTPC_PRIO_NORMAL);
  CHECK_INT_EQ(got[3], OTPC_PRIO_LOW);
}

TEST(priorities_order_runnable_processes) {
  otpc_node_opts_t o = {.schedulers = 1};
  CHECK_INT_EQ(otpc_main(&o, body_priorities, NULL), 0);
}

/* ---- fresh processes: newest first, and nobody starves ---------------------
 *
 * On one scheduler a normal process that has not run yet goes on a small
 * stack and the newest runs first (sched.c, "Fresh processes"), so that a
 * spawned tree is walked depth first. Erlang promises no order here; what
 * it promises, and these check, is that every runnable process gets its
 * turn however many new ones keep coming.
 */
static otpc_pid_t fresh_parent;
static _Atomic int chain_stop, chain_runs;

static void report_index(void *arg) {
  otpc_sendf(fresh_parent, "{ran, ~i}", (int)(intptr_t)arg);
}

static void body_newest_first(void *arg) {
  fresh_parent = otpc_self();
  enum { N = 5 };
  for (int i = 0; i < N; i++)
    CHECK_INT_EQ(otpc_spawn(report_index, (void *)(intptr_t)i, NULL, NULL), 0);
  otpc_pattern_t *ran = pat("{ran, ~i}");
  for (int i = N - 1; i >= 0; i--) { /* none has run: this one has not waited */
    otpc_buf_t *m;
    int got = -1;
    CHECK_INT_EQ(otpc_receive(ran, 5000, &m, &got), 0);
    otpc_buf_unref(m);
    CHECK_INT_EQ(got, i);
  }
  otpc_pattern_free(ran);
}

TEST(fresh_processes_run_newest_first) {
  otpc_node_opts_t o = {.schedulers = 1};
  CHECK_INT_EQ(otpc_main(&o, body_newest_first, NULL), 0);
}

/* A chain: each link spawns the next and ends, so there is always a newer
 * fresh process than any other runnable one, until chain_stop. */
static void chain_link(void *arg) {
  atomic_fetch_add(&chain_runs, 1);
  if (!atomic_load(&chain_stop))
    CHECK_INT_EQ(otpc_spawn(chain_link, NULL, NULL, NULL), 0);
}

static void waits_then_reports(void *arg) {
  otpc_buf_t *m;
  if (arg == NULL) { /* woken by a message: it waits in the FIFO */
    otpc_receive(NULL, OTPC_INFINITY, &m);
    otpc_buf_unref(m);
  }
  otpc_sendf(fresh_parent, "{ran, ~i}", atomic_load(&chain_runs));
}

/* Runs the chain while one process waits its turn; how many links ran
 * before it did. */
static int links_before_turn(bool woken) {
  fresh_parent = otpc_self();
  atomic_store(&chain_stop, 0);
  otpc_pid_t w;
  CHECK_INT_EQ(otpc_spawn(waits_then_reports, woken ? NULL : (void *)1, NULL,
                          &w), 0);
  if (woken) otpc_sleep(20); /* w waits for its message */
  CHECK_INT_EQ(otpc_spawn(chain_link, NULL, NULL, NULL), 0);
  int before = atomic_load(&chain_runs);
  if (woken) otpc_sendf(w, "go");
  otpc_pattern_t *ran = pat("{ran, ~i}");
  otpc_buf_t *m;
  int at = -1;
  int rc = otpc_receive(ran, 10000, &m, &at);
  atomic_store(&chain_stop, 1);
  otpc_pattern_free(ran);
  CHECK_INT_EQ(rc, 0); /* it ran */
  otpc_buf_unref(m);
  return at - before;
}

static void body_no_starvation(void *arg) {
  /* Woken, it waits in the FIFO: served after at most 64 picks of fresh
   * ones (FIFO_WAIT), a few more for the parent's own turns. */
  int waited = links_before_turn(true);
  CHECK(waited >= 0 && waited <= 2 * 64);
  /* Spawned before the chain, it lies at the bottom of the stack, under
   * the newest link each time: every 4096th pick takes the oldest. */
  otpc_sleep(20);
  waited = links_before_turn(false);
  CHECK(waited >= 0 && waited <= 2 * 4096);
}

TEST(fresh_processes_starve_no_one) {
  otpc_node_opts_t o = {.schedulers = 1};
  CHECK_INT_EQ(otpc_main(&o, body_no_starvation, NULL), 0);
}

static int init_stop(void *arg, void **state) { return OTPC_STOP; }
static int init_fail(void *arg, void **state) { return -1; }
static int never(void *state, otpc_buf_t *msg) { return OTPC_CONTINUE; }
static const otpc_handler_t stops_at_init = {init_stop, never, NULL};
static const otpc_handler_t fails_at_init = {init_fail, never, NULL};

static void body_init_results(void *arg) {
  otpc_ref_t ref;
  otpc_spawn_opts_t o = {.monitor = true, .monitor_ref = &ref};
  CHECK_INT_EQ(otpc_spawn_handler(&stops_at_init, NULL, &o, NULL), 0);
  otpc_buf_unref(expect("{'DOWN', _, process, _, normal}"));
  CHECK_INT_EQ(otpc_spawn_handler(&fails_at_init, NULL, &o, NULL), 0);
  otpc_buf_unref(expect("{'DOWN', _, process, _, init_failed}"));
}

TEST(handler_init_may_stop_or_fail) { run(body_init_results); }

/* ---- a flooded handler still acts on an exit at once -----------------------
 */

/* A handler takes its inbox in a few hundred messages at a time (sched.c,
 * take_some); an exit behind thousands of messages must not wait for
 * them. The handler is held in its first callback while the messages and
 * the kill pile up behind it; once let go, it must die without handling
 * one more. */
static _Atomic int flood_gate, flood_handled;

static int flood_init(void *arg, void **state) {
  (void)arg;
  *state = NULL;
  return OTPC_CONTINUE;
}

static int flood_handle(void *state, otpc_buf_t *msg) {
  (void)state;
  (void)msg;
  atomic_fetch_add(&flood_handled, 1);
  while (!atomic_load(&flood_gate)) otpc_yield();
  return OTPC_CONTINUE;
}

static const otpc_handler_t flood_handler = {flood_init, flood_handle, NULL};

static void body_flood_then_kill(void *arg) {
  (void)arg;
  enum { N = 20000 };
  atomic_store(&flood_gate, 0);
  atomic_store(&flood_handled, 0);
  otpc_pid_t h;
  CHECK_INT_EQ(otpc_spawn_handler(&flood_handler, NULL, NULL, &h), 0);
  otpc_ref_t ref;
  CHECK_INT_EQ(otpc_monitor(h, &ref), 0);
  otpc_buf_t *m = otpc_term_fmt("{flood, ~i}", 1);
  CHECK(m != NULL);
  CHECK_INT_EQ(otpc_send(h, m), 0);
  while (atomic_load(&flood_handled) == 0) otpc_yield(); /* it is held */
  for (int i = 0; i < N; i++) CHECK_INT_EQ(otpc_send(h, m), 0);
  otpc_buf_unref(m);
  otpc_buf_t *kill = otpc_term_fmt("kill");
  CHECK_INT_EQ(otpc_exit_signal(h, otpc_buf_term(kill)), 0);
  otpc_buf_unref(kill);
  atomic_store(&flood_gate, 1);
  otpc_buf_unref(expect("{'DOWN', _, process, _, killed}"));
  CHECK_INT_EQ(atomic_load(&flood_handled), 1);
}

TEST(flooded_handler_acts_on_an_exit_at_once) {
  run(body_flood_then_kill);
}
