/*
 * kv_app.c: a key-value cache as an OTP application, whole. This is the
 * program docs/guide.md builds step by step; the guide quotes it, and the
 * test example_kv_app_guide checks that the quotes still match this file.
 *
 *   kv                the application; environment: max_keys, ttl_ms,
 *    |                sweep_ms
 *    '- kv_sup        one_for_one supervisor
 *        |- kv_stats  gen_server: counts hits, misses, puts, ...
 *        '- kv_store  gen_server: the cache
 *
 * kv_store holds at most max_keys entries. Each expires ttl_ms after it
 * was put (or after the TTL its put gave); a get finds an expired entry
 * gone, and a sweep every sweep_ms frees the ones nobody asks for. The
 * three processes are registered under their names.
 *
 * main() runs a short scripted demo, printing each step and checking its
 * outcome, and exits 1 if any check failed. It expects the configuration
 * ctest gives it:
 *
 *   example_kv_app -config kv_app.config -kv max_keys 3
 */
#include <otpc.h>
#include <stdio.h>
#include <string.h>

/* ---- kv_stats: counts what happens in the cache ------------------------- */

typedef struct stats {
  int64_t hits, misses, puts, expired, full, store_starts;
} stats_t;

static void stats_init(void *arg, void **state, otpc_gs_result_t *r) {
  stats_t *s = otpc_palloc(sizeof *s); /* freed with the process */
  if (s == NULL) {
    otpc_gs_stop(r, otpc_term_fmt("enomem"));
    return;
  }
  memset(s, 0, sizeof *s);
  *state = s;
}

/* One cast per event, an atom: hit, miss, put, expired, full, started. */
static void stats_cast(void **state, otpc_term_t event, otpc_gs_result_t *r) {
  stats_t *s = *state;
  if (otpc_term_atom_eq(event, "hit", 3)) s->hits++;
  if (otpc_term_atom_eq(event, "miss", 4)) s->misses++;
  if (otpc_term_atom_eq(event, "put", 3)) s->puts++;
  if (otpc_term_atom_eq(event, "expired", 7)) s->expired++;
  if (otpc_term_atom_eq(event, "full", 4)) s->full++;
  if (otpc_term_atom_eq(event, "started", 7)) s->store_starts++;
}

/* get: the counts, as a map. */
static void stats_call(void **state, otpc_term_t req, const otpc_from_t *from,
                       otpc_gs_result_t *r) {
  stats_t *s = *state;
  otpc_gs_replyf(r,
                 "#{hits => ~l, misses => ~l, puts => ~l, expired => ~l, "
                 "full => ~l, store_starts => ~l}",
                 s->hits, s->misses, s->puts, s->expired, s->full,
                 s->store_starts);
}

static const otpc_gen_server_t stats_server = {.name = "kv_stats",
                                               .init = stats_init,
                                               .handle_call = stats_call,
                                               .handle_cast = stats_cast};

/* Tells kv_stats that something happened. A cast never blocks and never
 * fails, even when kv_stats is not running. */
static void count(const char *event) {
  otpc_buf_t *msg = otpc_term_fmt("~a", event);
  if (msg != NULL) otpc_gen_server_cast_name(otpc_atom("kv_stats"), msg);
  otpc_buf_unref(msg);
}

/* ---- kv_store: the cache ------------------------------------------------ */

#define NEVER INT64_MAX /* the expiry time of an entry without a TTL */

typedef struct entry {
  otpc_buf_t *key, *value; /* copies of the terms put */
  int64_t expires;         /* otpc_now_ms() time it expires, or NEVER */
} entry_t;

typedef struct store {
  entry_t *entries; /* n in use, room for max_keys; in no order */
  int64_t n, max_keys;
  int64_t ttl_ms;   /* the default TTL; -1: infinity */
  int64_t sweep_ms; /* time between sweeps; -1: infinity (no sweeps) */
  otpc_ref_t sweep_timer;
} store_t;

/* The requests, compiled once by main() before the node starts. */
static otpc_pattern_t *put_p, *put_ttl_p, *get_p, *delete_p, *crash_p;

/* The entry under key, or NULL. A linear scan keeps the example short; a
 * big cache would hash the key with otpc_phash2(). */
static entry_t *store_find(store_t *s, otpc_term_t key) {
  for (int64_t i = 0; i < s->n; i++)
    if (otpc_term_equal(otpc_buf_term(s->entries[i].key), key))
      return &s->entries[i];
  return NULL;
}

static void store_remove(store_t *s, entry_t *e) {
  otpc_buf_unref(e->key);
  otpc_buf_unref(e->value);
  *e = s->entries[--s->n]; /* the last one takes its place */
}

/* Removes every entry that has expired by now. */
static void store_sweep(store_t *s, int64_t now) {
  for (int64_t i = s->n - 1; i >= 0; i--)
    if (s->entries[i].expires <= now) {
      store_remove(s, &s->entries[i]);
      count("expired");
    }
}

/* The application's parameter key, as a count or milliseconds: an integer
 * >= 0, or infinity (-1). Not set: *out is left as it is. false if it is
 * set to anything else. */
static bool env_ms(const char *key, int64_t *out) {
  otpc_buf_t *v;
  if (otpc_app_get_env(otpc_atom("kv"), otpc_atom(key), &v) != 1) return true;
  otpc_term_t t = otpc_buf_term(v);
  bool ok = true;
  if (otpc_term_is_atom(t, OTPC_ATOM_INFINITY))
    *out = -1;
  else
    ok = otpc_term_get_int64(t, out) == 0 && *out >= 0;
  otpc_buf_unref(v);
  return ok;
}

/* The configuration, from the environment; the name of a key whose
 * value is wrong, or NULL. Outside the application nothing is set and
 * the defaults below are kept. */
static const char *store_configure(store_t *s) {
  s->max_keys = 1000;
  s->ttl_ms = -1;
  s->sweep_ms = 1000;
  if (!env_ms("max_keys", &s->max_keys) || s->max_keys < 1) return "max_keys";
  if (!env_ms("ttl_ms", &s->ttl_ms)) return "ttl_ms";
  if (!env_ms("sweep_ms", &s->sweep_ms) || s->sweep_ms == 0) return "sweep_ms";
  return NULL;
}

/* Asks the runtime for a `sweep` message in sweep_ms (erlang:send_after). */
static void store_arm_sweep(store_t *s) {
  if (s->sweep_ms < 0) return;
  otpc_buf_t *msg = otpc_term_fmt("sweep");
  if (msg != NULL)
    otpc_send_after(s->sweep_ms, otpc_self(), msg, &s->sweep_timer);
  otpc_buf_unref(msg);
}

static void store_init(void *arg, void **state, otpc_gs_result_t *r) {
  store_t *s = otpc_palloc(sizeof *s);
  if (s == NULL) {
    otpc_gs_stop(r, otpc_term_fmt("enomem"));
    return;
  }
  const char *bad = store_configure(s);
  if (bad != NULL) { /* {stop, {bad_config, Key}}: the start fails */
    otpc_gs_stop(r, otpc_term_fmt("{bad_config, ~a}", bad));
    return;
  }
  s->n = 0;
  s->entries = otpc_palloc((size_t)s->max_keys * sizeof *s->entries);
  if (s->entries == NULL) {
    otpc_gs_stop(r, otpc_term_fmt("enomem"));
    return;
  }
  *state = s;
  /* Take the supervisor's shutdown as a message, so that terminate runs
   * and releases the entries (process_flag(trap_exit, true)). */
  otpc_trap_exit(true);
  store_arm_sweep(s);
  count("started");
}

/* {put, Key, Value} and {put, Key, Value, TtlMs}: ok or {error, full}.
 * ttl_ms < 0 is infinity. */
static void store_put(store_t *s, otpc_term_t key, otpc_term_t value,
                      int64_t ttl_ms, otpc_gs_result_t *r) {
  int64_t now = otpc_now_ms();
  entry_t *e = store_find(s, key);
  if (e == NULL && s->n == s->max_keys) store_sweep(s, now); /* make room */
  if (e == NULL && s->n == s->max_keys) {
    count("full");
    otpc_gs_replyf(r, "{error, full}");
    return;
  }
  otpc_buf_t *v = otpc_term_fmt("~t", value);
  otpc_buf_t *k = e != NULL ? NULL : otpc_term_fmt("~t", key);
  if (v == NULL || (e == NULL && k == NULL)) {
    otpc_buf_unref(v);
    otpc_buf_unref(k);
    otpc_gs_replyf(r, "{error, enomem}");
    return;
  }
  if (e == NULL) {
    e = &s->entries[s->n++];
    e->key = k;
  } else {
    otpc_buf_unref(e->value);
  }
  e->value = v;
  e->expires = ttl_ms < 0 || ttl_ms > NEVER - now ? NEVER : now + ttl_ms;
  count("put");
  otpc_gs_replyf(r, "ok");
}

/* {get, Key}: {ok, Value} or not_found. */
static void store_get(store_t *s, otpc_term_t key, otpc_gs_result_t *r) {
  entry_t *e = store_find(s, key);
  if (e != NULL && e->expires <= otpc_now_ms()) { /* expired, not swept */
    store_remove(s, e);
    count("expired");
    e = NULL;
  }
  if (e == NULL) {
    count("miss");
    otpc_gs_replyf(r, "not_found");
    return;
  }
  count("hit");
  otpc_gs_replyf(r, "{ok, ~t}", otpc_buf_term(e->value));
}

static void store_call(void **state, otpc_term_t req, const otpc_from_t *from,
                       otpc_gs_result_t *r) {
  store_t *s = *state;
  otpc_term_t key, value;
  int64_t ttl;
  if (otpc_match(put_p, req, &key, &value) == 1) {
    store_put(s, key, value, s->ttl_ms, r);
  } else if (otpc_match(put_ttl_p, req, &key, &value, &ttl) == 1 && ttl >= 0) {
    store_put(s, key, value, ttl, r);
  } else if (otpc_match(get_p, req, &key) == 1) {
    store_get(s, key, r);
  } else if (otpc_match(delete_p, req, &key) == 1) {
    entry_t *e = store_find(s, key);
    if (e != NULL) store_remove(s, e);
    otpc_gs_replyf(r, "ok");
  } else if (otpc_term_atom_eq(req, "size", 4)) {
    otpc_gs_replyf(r, "~l", s->n);
  } else {
    otpc_gs_replyf(r, "{error, {unknown_call, ~t}}", req);
  }
}

/* {crash, Reason}: a bug on purpose. A callback that calls otpc_exit()
 * ends the server with that reason, as an exception that nobody catches
 * ends an Erlang one; terminate still runs. */
static void store_cast(void **state, otpc_term_t msg, otpc_gs_result_t *r) {
  otpc_term_t reason;
  if (otpc_match(crash_p, msg, &reason) == 1) otpc_exit(reason);
}

/* The sweep timer's message; everything else is ignored. */
static void store_info(void **state, otpc_term_t msg, otpc_gs_result_t *r) {
  store_t *s = *state;
  if (!otpc_term_atom_eq(msg, "sweep", 5)) return;
  store_sweep(s, otpc_now_ms());
  store_arm_sweep(s);
}

/* However the server ends, except by kill: release the entries. The
 * memory from otpc_palloc goes with the process. */
static void store_terminate(void **state, otpc_term_t reason) {
  store_t *s = *state;
  if (s->sweep_ms >= 0) otpc_cancel_timer(&s->sweep_timer);
  while (s->n > 0) store_remove(s, &s->entries[s->n - 1]);
}

static const otpc_gen_server_t store_server = {.name = "kv_store",
                                               .init = store_init,
                                               .handle_call = store_call,
                                               .handle_cast = store_cast,
                                               .handle_info = store_info,
                                               .terminate = store_terminate};

/* ---- kv_sup: the supervisor --------------------------------------------- */

/* What otpc_sup_start_gen_server starts: the callbacks, init's arg and
 * the name to register (set in kv_sup_start: an atom is no C constant). */
static otpc_sup_gs_child_t stats_child = {&stats_server, NULL, 0};
static otpc_sup_gs_child_t store_child = {&store_server, NULL, 0};

/* kv_stats starts first, so that it runs before kv_store counts anything;
 * at shutdown they stop in reverse order. */
static const otpc_child_spec_t kv_children[] = {
    {.id = "kv_stats",
     .start = otpc_sup_start_gen_server,
     .arg = &stats_child,
     .restart = OTPC_PERMANENT, /* always restarted */
     .shutdown = 5000,          /* ms to finish terminate, then kill */
     .type = OTPC_WORKER},
    {.id = "kv_store",
     .start = otpc_sup_start_gen_server,
     .arg = &store_child,
     .restart = OTPC_PERMANENT,
     .shutdown = 5000,
     .type = OTPC_WORKER}};

/* At most 3 restarts in 5 s, or kv_sup gives up and ends. */
static const otpc_sup_spec_t kv_sup_spec = {.strategy = OTPC_ONE_FOR_ONE,
                                            .intensity = 3,
                                            .period_ms = 5000,
                                            .children = kv_children,
                                            .nchildren = 2};

/* supervisor:start_link({local, kv_sup}, ...): starts kv_sup and its
 * children, linked to the caller, and returns once they run. */
static int kv_sup_start(otpc_pid_t *sup, otpc_buf_t **reason) {
  stats_child.name = otpc_atom("kv_stats"); /* registered names */
  store_child.name = otpc_atom("kv_store");
  return otpc_supervisor_start(&kv_sup_spec, otpc_atom("kv_sup"), sup, reason);
}

/* ---- kv: the application ------------------------------------------------ */

/* Module:start(normal, []): the application master calls it, and the
 * supervisor it starts is linked to the master. */
static int kv_start(otpc_app_start_type_t type, void *arg, otpc_pid_t *top,
                    void **state, otpc_buf_t **reason) {
  return kv_sup_start(top, reason);
}

static const otpc_app_spec_t kv_app = {
    .name = "kv",
    .description = "A key-value cache",
    .vsn = "1.0.0",
    .env = "[{max_keys, 1000}, {ttl_ms, infinity}, {sweep_ms, 1000}]",
    .registered = (const char *const[]){"kv_sup", "kv_stats", "kv_store", NULL},
    .start = kv_start};

/* ---- the demo ----------------------------------------------------------- */

static int failures;

/* The term written in Erlang syntax, as a buffer (NULL if it is wrong). */
static otpc_buf_t *term(const char *text) {
  otpc_buf_t *t = NULL;
  otpc_term_parse(text, strlen(text), &t, NULL);
  return t;
}

/* Checks that got (NULL: nothing) is the term want; prints why not. */
static void check(otpc_buf_t *got, const char *want) {
  otpc_buf_t *w = term(want);
  bool ok = got != NULL && w != NULL &&
            otpc_term_equal(otpc_buf_term(got), otpc_buf_term(w));
  otpc_buf_unref(w);
  if (ok) return;
  printf("  FAILED: expected %s\n", want);
  failures++;
}

/* Calls server with request (Erlang syntax), prints "request -> reply"
 * and checks the reply. */
static void expect(const char *server, const char *request, const char *want) {
  otpc_buf_t *req = term(request), *reply = NULL;
  int rc = req == NULL ? OTPC_EINVAL
                       : otpc_gen_server_call_name(otpc_atom(server), req, 1000,
                                                   &reply);
  printf("%s: %s -> ", server, request);
  if (rc == 0)
    otpc_term_fprint(stdout, otpc_buf_term(reply));
  else
    printf("error %s", otpc_err_name(rc));
  printf("\n");
  check(rc == 0 ? reply : NULL, want);
  otpc_buf_unref(req);
  otpc_buf_unref(reply);
}

/* Prints the application's parameter key as the node sees it. */
static void show_env(const char *key, const char *want) {
  otpc_buf_t *v = NULL;
  otpc_app_get_env(otpc_atom("kv"), otpc_atom(key), &v);
  printf("kv: %s = ", key);
  if (v != NULL) otpc_term_fprint(stdout, otpc_buf_term(v));
  printf("\n");
  check(v, want);
  otpc_buf_unref(v);
}

/* Waits until size is n: the sweep runs every sweep_ms. */
static void wait_size(const char *n) {
  otpc_buf_t *size = term("size"), *want = term(n), *reply = NULL;
  for (int i = 0; i < 200; i++) { /* 2 s at most */
    otpc_buf_unref(reply);
    reply = NULL;
    int rc =
        otpc_gen_server_call_name(otpc_atom("kv_store"), size, 1000, &reply);
    if (rc == 0 && otpc_term_equal(otpc_buf_term(reply), otpc_buf_term(want)))
      break;
    otpc_sleep(10);
  }
  printf("kv_store: size -> ");
  if (reply != NULL) otpc_term_fprint(stdout, otpc_buf_term(reply));
  printf("\n");
  check(reply, n);
  otpc_buf_unref(size);
  otpc_buf_unref(want);
  otpc_buf_unref(reply);
}

/* Prints a pid as Erlang does: <0.58.0>. */
static void print_pid(otpc_pid_t pid) {
  otpc_buf_t *t = otpc_term_fmt("~p", &pid);
  if (t != NULL) otpc_term_fprint(stdout, otpc_buf_term(t));
  otpc_buf_unref(t);
}

/* Crashes kv_store and waits until kv_sup has started a new one: returns
 * whether the name now belongs to another process. */
static bool crash_store(void) {
  otpc_pid_t old, now = {0};
  otpc_ref_t mon;
  otpc_buf_t *crash = otpc_term_fmt("{crash, boom}"), *down = NULL;
  otpc_pattern_t *down_p = NULL;
  otpc_pattern_compile("{'DOWN', _, process, _, ~t}", &down_p, NULL);
  if (otpc_whereis(otpc_atom("kv_store"), &old) != 0 || crash == NULL ||
      down_p == NULL || otpc_monitor(old, &mon) != 0) {
    otpc_buf_unref(crash);
    otpc_pattern_free(down_p);
    return false;
  }
  otpc_gen_server_cast(old, crash); /* gen_server:cast(Pid, {crash, boom}) */
  otpc_term_t reason = {0};
  if (otpc_receive(down_p, 1000, &down, &reason) == 0) {
    printf("kv_store: ");
    print_pid(old);
    printf(" exited: ");
    otpc_term_fprint(stdout, reason);
    printf("\n");
  }
  bool restarted = false;
  for (int i = 0; i < 1000 && !restarted; i++) {
    restarted = otpc_whereis(otpc_atom("kv_store"), &now) == 0 &&
                !otpc_pid_eq(now, old);
    if (!restarted) otpc_sleep(1);
  }
  if (restarted) {
    printf("kv_sup: restarted kv_store as ");
    print_pid(now);
    printf("\n");
  }
  otpc_buf_unref(crash);
  otpc_buf_unref(down);
  otpc_pattern_free(down_p);
  return down != NULL && restarted;
}

/* kv_sup's children: kv_store must run, as the process that has its name. */
static void check_children(void) {
  otpc_pid_t sup, store;
  otpc_sup_child_info_t kids[2];
  int n = -1;
  if (otpc_whereis(otpc_atom("kv_sup"), &sup) == 0)
    n = otpc_supervisor_which_children(sup, kids, 2);
  bool ok = n == 2 && otpc_whereis(otpc_atom("kv_store"), &store) == 0;
  for (int i = 0; ok && i < n; i++) {
    printf("kv_sup: child %s ", kids[i].id);
    print_pid(kids[i].pid);
    printf(" %s\n", kids[i].running ? "running" : "not running");
    ok = kids[i].running;
  }
  ok = ok && otpc_pid_eq(kids[1].pid, store);
  if (!ok) {
    printf("  FAILED: kv_sup should run kv_stats and kv_store\n");
    failures++;
  }
}

static void demo(void) {
  show_env("max_keys", "3");   /* the command line */
  show_env("ttl_ms", "30000"); /* kv_app.config */
  show_env("sweep_ms", "20");  /* kv_app.config */
  expect("kv_store", "{put, alice, 1}", "ok");
  expect("kv_store", "{put, bob, <<\"two\">>}", "ok");
  expect("kv_store", "{get, alice}", "{ok, 1}");
  expect("kv_store", "{get, carol}", "not_found");
  expect("kv_store", "{put, carol, 3}", "ok");
  expect("kv_store", "{put, dave, 4}", "{error, full}"); /* max_keys 3 */
  expect("kv_store", "{delete, bob}", "ok");
  expect("kv_store", "{get, bob}", "not_found");
  expect("kv_store", "{put, session, [{user, alice}], 50}", "ok"); /* 50 ms */
  wait_size("2"); /* the sweep has removed session */
  expect("kv_store", "{get, session}", "not_found");
  expect("kv_stats", "get",
         "#{hits => 1, misses => 3, puts => 4, expired => 1, full => 1, "
         "store_starts => 1}");

  if (!crash_store()) {
    printf("  FAILED: kv_store was not restarted\n");
    failures++;
  }
  check_children();
  expect("kv_store", "{get, alice}", "not_found"); /* the data died too */
  expect("kv_store", "size", "0");
  expect("kv_stats", "get", /* kv_stats did not crash: it kept its counts */
         "#{hits => 1, misses => 4, puts => 4, expired => 1, full => 1, "
         "store_starts => 2}");
}

/* ---- main --------------------------------------------------------------- */

/* Starts the application controller (which erl starts at boot), then kv
 * and every application it needs: application:ensure_all_started(kv).
 * Prints what was started, or why nothing was. */
static int kv_boot(void) {
  otpc_buf_t *info = NULL;
  int rc = otpc_app_controller_start();
  if (rc == 0)
    rc = otpc_app_ensure_all_started(otpc_atom("kv"), OTPC_PERMANENT, &info);
  fputs(rc == 0 ? "kv: started " : "kv: could not start: ", stdout);
  if (info != NULL) otpc_term_fprint(stdout, otpc_buf_term(info));
  printf("\n");
  otpc_buf_unref(info);
  return rc;
}

static void boot(void *arg) {
  bool started = kv_boot() == 0;
  if (started) demo();
  otpc_app_controller_stop(); /* init:stop(): every application, reversed */
  if (!started) otpc_exit_atom(otpc_atom("start_failed"));
  otpc_pid_t pid;
  bool gone = otpc_whereis(otpc_atom("kv_sup"), &pid) == OTPC_ENONAME &&
              otpc_whereis(otpc_atom("kv_store"), &pid) == OTPC_ENONAME;
  printf("kv: stopped; kv_sup and kv_store %s\n",
         gone ? "are gone" : "are STILL RUNNING");
  if (!gone) failures++;
  if (failures > 0) {
    printf("kv: %d checks FAILED\n", failures);
    otpc_exit_atom(otpc_atom("demo_failed"));
  }
  printf("kv: all checks passed\n");
}

/* The requests kv_store understands, compiled once: a compiled pattern
 * is read-only, so every process may use it. */
static int compile_patterns(void) {
  int rc = otpc_pattern_compile("{put, ~t, ~t}", &put_p, NULL);
  if (rc == 0) rc = otpc_pattern_compile("{put, ~t, ~t, ~l}", &put_ttl_p, NULL);
  if (rc == 0) rc = otpc_pattern_compile("{get, ~t}", &get_p, NULL);
  if (rc == 0) rc = otpc_pattern_compile("{delete, ~t}", &delete_p, NULL);
  if (rc == 0) rc = otpc_pattern_compile("{crash, ~t}", &crash_p, NULL);
  return rc;
}

static void free_patterns(void) {
  otpc_pattern_free(put_p);
  otpc_pattern_free(put_ttl_p);
  otpc_pattern_free(get_p);
  otpc_pattern_free(delete_p);
  otpc_pattern_free(crash_p);
}

int main(int argc, char **argv) {
  otpc_logger_set_primary_level(OTPC_LEVEL_INFO); /* show progress reports */
  otpc_app_register(&kv_app); /* before reading the arguments */
  otpc_app_config_error_t err;
  if (otpc_app_config_args(&argc, argv, &err) != 0) {
    fprintf(stderr, "%s\n", err.message); /* which argument, what is wrong */
    return 2;
  }
  if (compile_patterns() != 0) {
    fprintf(stderr, "kv: a pattern does not compile\n");
    free_patterns();
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0); /* lines in order with the log's */
  int rc = otpc_main(NULL, boot, NULL);
  free_patterns();
  return otpc_app_halted(NULL) ? 1 : rc; /* as erl exits 1 after a halt */
}
