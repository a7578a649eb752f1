/*
 * application.c: the application controller, the application masters,
 * and the application API (which is calls to the controller).
 *
 * The controller is a gen_server registered as application_controller.
 * It traps exits and is linked to every application master. Its state, a
 * ctl_t in process memory (a killed controller leaks nothing), holds an
 * app_t per application it knows: loaded ones, and ones that only had
 * set_env. An application moves through these states:
 *
 *   (not loaded) --load/start--> LOADED
 *   LOADED   --start-->  STARTING   a master runs the start callback
 *   STARTING --{'$ac_started', Master}--> RUNNING
 *   STARTING --the master exits--> LOADED          start failed
 *   RUNNING  --stop--> STOPPING --the master exits--> LOADED
 *   RUNNING  --the master exits--> LOADED          it terminated: by its
 *                                                  type, report or halt
 *   LOADED   --unload--> (not loaded)
 *
 * A library application (no start callback) has no master and goes from
 * LOADED to RUNNING and back at once. `running` lists the RUNNING and
 * STOPPING applications in start order; it has room for every known
 * application, so adding to it never fails.
 *
 * Nothing the controller does waits for an application: starts and stops
 * are requests to masters whose answers come as messages, and the caller
 * of start or stop is answered then (otpc_gen_server_reply). So the
 * callbacks of an application (start, prep_stop, stop, and the init of
 * the processes they start) may call the controller, for get_env most
 * often, without deadlock.
 *
 * Draining stops every running application, newest first, one at a time,
 * by the same requests: for otpc_app_stop_all, for the controller's stop,
 * and when a permanent (or an abnormally ended transient) application
 * halts the node. While draining, new starts are refused; starts under
 * way finish first, then are stopped. When a halt's drain is done the
 * controller records the reason, runs the halt hook, kills every other
 * process, and exits with {application_terminated, App, Reason}.
 *
 * An application master is a sequential process: it calls start (the
 * top process links to it), traps exits, and waits for one of: the top's
 * EXIT (prep_stop, stop, and exit with the top's reason), '$ac_stop'
 * from the controller (prep_stop, shut the top down, stop, exit normal),
 * or the controller's EXIT (the same, exiting with its reason). This is
 * OTP's application_master with its two processes made one.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../base/base_int.h"
#include "app_int.h"
#include "otpc/logger.h"

#define CONTROLLER "application_controller"

enum { A_LOADED, A_STARTING, A_RUNNING, A_STOPPING };

typedef struct env {
  otpc_atom_t key;
  uint8_t *etf; /* the value as term_to_binary writes it, process memory */
  size_t len;
} env_t;

typedef struct waiters {
  otpc_from_t *v; /* callers to answer when an operation ends */
  size_t n, cap;
} waiters_t;

typedef struct app {
  otpc_atom_t name;
  bool loaded;
  int status; /* A_*, when loaded */
  const otpc_app_spec_t *spec;
  const otpc_atom_t *deps;
  size_t ndeps;
  otpc_restart_t type;
  bool has_master;
  otpc_pid_t master;
  waiters_t waiters; /* of the start or stop under way */
  env_t *env;
  size_t nenv, env_cap;
} app_t;

typedef struct ctl {
  app_t *apps;
  size_t napps, apps_cap;
  otpc_atom_t *running; /* RUNNING and STOPPING, in start order */
  size_t nrunning;      /* room: apps_cap */
  bool draining;        /* stopping everything */
  bool exit_after;      /* ... then the controller ends */
  bool halting;         /* ... then the node halts */
  uint8_t *halt_etf;    /* {application_terminated, App, Reason} */
  size_t halt_len;
  waiters_t drain_waiters;
} ctl_t;

/* What otpc_app_halted reports, and the hook. */
static pthread_mutex_t halt_lock = PTHREAD_MUTEX_INITIALIZER; /* guards: */
static otpc_buf_t *halt_reason;
static otpc_app_halt_fn halt_fn;
static void *halt_arg;

/* ------------------------------------------------------------------------
 * Terms
 * ------------------------------------------------------------------------ */

static otpc_buf_t *copy_term(otpc_term_t t) {
  otpc_builder_t b;
  otpc_builder_init(&b);
  otpc_build_term(&b, t);
  return otpc_builder_finish(&b, NULL);
}

/* A copy of t in process memory (so that a killed process leaks
 * nothing); NULL when out of memory. */
static uint8_t *palloc_term(otpc_term_t t, size_t *len) {
  otpc_buf_t *b = copy_term(t);
  if (b == NULL) return NULL;
  uint8_t *p = otpc_palloc(otpc_buf_size(b));
  if (p != NULL) {
    *len = otpc_buf_size(b);
    memcpy(p, otpc_buf_data(b), *len);
  }
  otpc_buf_unref(b);
  return p;
}

/* The term in bytes palloc_term made. */
static otpc_term_t etf_view(const uint8_t *etf, size_t len) {
  otpc_term_t t = {0};
  otpc_buf_t *owned = NULL; /* stays NULL: never compressed */
  otpc_term_decode(etf, len, NULL, &t, &owned, NULL);
  return t;
}

/* {'EXIT', Pid, Reason} */
static bool is_exit(otpc_term_t msg, otpc_pid_t *who, otpc_term_t *reason) {
  size_t arity;
  otpc_term_t e;
  if (otpc_term_get_tuple(msg, &arity, &e) != 0 || arity != 3 ||
      !otpc_term_is_atom(e, OTPC_ATOM_EXIT))
    return false;
  e = otpc_term_next(e);
  if (otpc_term_get_pid(e, who) != 0) return false;
  *reason = otpc_term_next(e);
  return true;
}

static const char *type_name(otpc_restart_t t) {
  return t == OTPC_PERMANENT   ? "permanent"
         : t == OTPC_TRANSIENT ? "transient"
                               : "temporary";
}

/* ------------------------------------------------------------------------
 * Reports
 * ------------------------------------------------------------------------ */

/* The controller's reports name no C call site, as OTP's name none: the
 * module is the controller, the location unknown. */
static void log_report(int level, otpc_buf_t *report, const char *meta_text) {
  otpc_buf_t *meta = otpc_term_fmt(meta_text);
  if (report != NULL && meta != NULL) {
    otpc_term_t m = otpc_buf_term(meta);
    otpc_log_report_at(level, CONTROLLER, NULL, 0, NULL, &m,
                       otpc_buf_term(report));
  }
  otpc_buf_unref(meta);
  otpc_buf_unref(report);
}

/* application: App, started_at: Node (a progress report, info). */
static void log_started(otpc_atom_t app) {
  if (!otpc_logger_allow(OTPC_LEVEL_INFO)) return;
  log_report(OTPC_LEVEL_INFO,
             otpc_term_fmt("[{application, ~A}, {started_at, ~A}]", app,
                           otpc_node_name()),
             "#{label => {application_controller, progress}, "
             "domain => [otp, sasl]}");
}

/* application: App, exited: Reason, type: Type (notice, as OTP). */
static void log_exited(otpc_atom_t app, otpc_term_t reason,
                       otpc_restart_t type) {
  if (!otpc_logger_allow(OTPC_LEVEL_NOTICE)) return;
  log_report(OTPC_LEVEL_NOTICE,
             otpc_term_fmt("[{application, ~A}, {exited, ~t}, {type, ~a}]", app,
                           reason, type_name(type)),
             "#{label => {application_controller, exit}, domain => [otp]}");
}

static void log_stopped(const app_t *a) {
  otpc_buf_t *stopped = otpc_term_fmt("stopped");
  if (stopped) log_exited(a->name, otpc_buf_term(stopped), a->type);
  otpc_buf_unref(stopped);
}

/* ------------------------------------------------------------------------
 * The controller's tables
 * ------------------------------------------------------------------------ */

/* Room for one more of n elements of size in v (process memory): v
 * itself, a larger copy, or NULL (v is then left as it was). */
static void *grow(void *v, size_t n, size_t *cap, size_t size) {
  if (n < *cap) return v;
  size_t c = *cap ? *cap * 2 : 8;
  void *nv = otpc_palloc(c * size);
  if (nv == NULL) return NULL;
  if (n) memcpy(nv, v, n * size);
  if (v) otpc_pfree(v);
  *cap = c;
  return nv;
}

static app_t *app_find(ctl_t *c, otpc_atom_t name) {
  for (size_t i = 0; i < c->napps; i++)
    if (c->apps[i].name == name) return &c->apps[i];
  return NULL;
}

static app_t *app_by_master(ctl_t *c, otpc_pid_t pid) {
  for (size_t i = 0; i < c->napps; i++)
    if (c->apps[i].has_master && otpc_pid_eq(c->apps[i].master, pid))
      return &c->apps[i];
  return NULL;
}

/* The record for name, made if new; NULL when out of memory. `running`
 * grows with `apps`, so that it always has room for every application. */
static app_t *app_get(ctl_t *c, otpc_atom_t name) {
  app_t *a = app_find(c, name);
  if (a != NULL) return a;
  if (c->napps == c->apps_cap) {
    size_t cap = c->apps_cap ? c->apps_cap * 2 : 8;
    app_t *apps = otpc_palloc(cap * sizeof *apps);
    otpc_atom_t *run = otpc_palloc(cap * sizeof *run);
    if (apps == NULL || run == NULL) {
      if (apps) otpc_pfree(apps);
      if (run) otpc_pfree(run);
      return NULL;
    }
    if (c->napps) memcpy(apps, c->apps, c->napps * sizeof *apps);
    if (c->nrunning) memcpy(run, c->running, c->nrunning * sizeof *run);
    if (c->apps) otpc_pfree(c->apps);
    if (c->running) otpc_pfree(c->running);
    c->apps = apps;
    c->running = run;
    c->apps_cap = cap;
  }
  a = &c->apps[c->napps++];
  memset(a, 0, sizeof *a);
  a->name = name;
  return a;
}

static void running_add(ctl_t *c, otpc_atom_t name) {
  c->running[c->nrunning++] = name; /* room: see app_get */
}

static void running_remove(ctl_t *c, otpc_atom_t name) {
  size_t j = 0;
  for (size_t i = 0; i < c->nrunning; i++)
    if (c->running[i] != name) c->running[j++] = c->running[i];
  c->nrunning = j;
}

static env_t *env_find(app_t *a, otpc_atom_t key) {
  for (size_t i = 0; i < a->nenv; i++)
    if (a->env[i].key == key) return &a->env[i];
  return NULL;
}

static int env_put(app_t *a, otpc_atom_t key, otpc_term_t val) {
  size_t len;
  uint8_t *etf = palloc_term(val, &len);
  if (etf == NULL) return OTPC_ENOMEM;
  env_t *e = env_find(a, key);
  if (e == NULL) {
    env_t *v = grow(a->env, a->nenv, &a->env_cap, sizeof *v);
    if (v == NULL) {
      otpc_pfree(etf);
      return OTPC_ENOMEM;
    }
    a->env = v;
    e = &a->env[a->nenv++];
    e->key = key;
  } else {
    otpc_pfree(e->etf);
  }
  e->etf = etf;
  e->len = len;
  return 0;
}

static void env_del(app_t *a, otpc_atom_t key) {
  env_t *e = env_find(a, key);
  if (e == NULL) return;
  otpc_pfree(e->etf);
  *e = a->env[--a->nenv]; /* order is not kept by Erlang either */
}

static void env_clear(app_t *a) {
  for (size_t i = 0; i < a->nenv; i++) otpc_pfree(a->env[i].etf);
  a->nenv = 0;
}

/* Applies a list of {Key, Value} in order. */
static int env_apply(app_t *a, otpc_term_t list) {
  otpc_list_iter_t it;
  otpc_term_t pair;
  if (otpc_term_list_iter(list, &it) != 0) return OTPC_EINVAL;
  while (otpc_list_next(&it, &pair)) {
    otpc_term_t k = otpc_term_tuple_elem(pair, 0);
    otpc_atom_t key;
    int rc = otpc_term_get_atom(k, &key);
    if (rc == 0) rc = env_put(a, key, otpc_term_next(k));
    if (rc != 0) return rc;
  }
  return 0;
}

static bool waiters_add(waiters_t *w, const otpc_from_t *from) {
  otpc_from_t *v = grow(w->v, w->n, &w->cap, sizeof *v);
  if (v == NULL) return false;
  w->v = v;
  w->v[w->n++] = *from;
  return true;
}

/* Answers every waiter with reply (taken over) and forgets them. */
static void waiters_reply(waiters_t *w, otpc_buf_t *reply) {
  for (size_t i = 0; reply != NULL && i < w->n; i++)
    otpc_gen_server_reply(&w->v[i], reply);
  otpc_buf_unref(reply);
  w->n = 0;
}

/* ------------------------------------------------------------------------
 * Loading
 * ------------------------------------------------------------------------ */

/* Loads name: the spec's defaults, then its boot configuration. */
static int app_load(ctl_t *c, otpc_atom_t name, app_t **out) {
  otpc__app_entry_t e;
  if (!otpc__app_lookup(name, &e)) return OTPC_ENOAPP;
  app_t *a = app_get(c, name);
  if (a == NULL) return OTPC_ENOMEM;
  otpc_buf_t *conf = otpc__app_config_env(name);
  if (conf == NULL) return OTPC_ENOMEM;
  int rc = env_apply(a, otpc_buf_term(e.env));
  if (rc == 0) rc = env_apply(a, otpc_buf_term(conf));
  otpc_buf_unref(conf);
  if (rc != 0) return rc;
  a->loaded = true;
  a->status = A_LOADED;
  a->spec = e.spec;
  a->deps = e.deps;
  a->ndeps = e.ndeps;
  *out = a;
  return 0;
}

/* ------------------------------------------------------------------------
 * The application master
 * ------------------------------------------------------------------------ */

typedef struct master_arg {
  otpc_pid_t ctl;
  const otpc_app_spec_t *spec;
} master_arg_t;

/* exit(Reason) where reason lives in holder: the reason is copied to
 * process memory first, so that holder can be released. */
static _Noreturn void exit_with(otpc_buf_t *holder, otpc_term_t reason) {
  size_t len = 0;
  uint8_t *etf = holder ? palloc_term(reason, &len) : NULL;
  otpc_buf_unref(holder);
  if (etf == NULL) otpc_exit_atom(otpc_atom("enomem"));
  otpc_exit(etf_view(etf, len));
}

static bool is_exit_of(otpc_term_t msg, void *ctx) {
  otpc_pid_t who;
  otpc_term_t reason;
  return is_exit(msg, &who, &reason) && otpc_pid_eq(who, *(otpc_pid_t *)ctx);
}

/* exit(Top, shutdown), and wait for it to end, however long it takes: a
 * supervisor stops its whole tree first. */
static void shutdown_top(otpc_pid_t top) {
  otpc_buf_t *why = otpc_term_fmt("shutdown"), *msg;
  if (why) otpc_exit_signal(top, otpc_buf_term(why));
  otpc_buf_unref(why);
  if (otpc_receive_fn(is_exit_of, &top, OTPC_INFINITY, &msg) == 0)
    otpc_buf_unref(msg);
}

static void *prep_stop(const otpc_app_spec_t *spec, void *state) {
  return spec->prep_stop ? spec->prep_stop(state) : state;
}

static void master_main(void *arg) {
  master_arg_t m = *(master_arg_t *)arg;
  otpc__free(arg);
  otpc_trap_exit(true);
  otpc_pid_t top = {0}, self = otpc_self();
  void *state = NULL;
  otpc_buf_t *why = NULL;
  int rc =
      m.spec->start(OTPC_APP_NORMAL, m.spec->start_arg, &top, &state, &why);
  if (rc < 0) {
    if (why == NULL) why = otpc_term_fmt("~a", otpc_err_name(rc));
    exit_with(why, why ? otpc_buf_term(why) : (otpc_term_t){0});
  }
  otpc_buf_unref(why);
  otpc_link(top); /* it should be already; if it is dead, EXIT noproc */
  otpc_sendf(m.ctl, "{'$ac_started', ~p}", &self);
  for (;;) {
    otpc_buf_t *msg;
    if (otpc_receive(NULL, OTPC_INFINITY, &msg) != 0) continue;
    otpc_term_t t = otpc_buf_term(msg), reason;
    otpc_pid_t who;
    if (is_exit(t, &who, &reason) && otpc_pid_eq(who, top)) {
      state = prep_stop(m.spec, state); /* the application terminated */
      if (m.spec->stop) m.spec->stop(state);
      exit_with(msg, reason);
    }
    bool from_ctl = is_exit(t, &who, &reason) && otpc_pid_eq(who, m.ctl);
    if (from_ctl || otpc_term_atom_eq(t, "$ac_stop", 8)) {
      state = prep_stop(m.spec, state);
      shutdown_top(top);
      if (m.spec->stop) m.spec->stop(state);
      if (from_ctl) exit_with(msg, reason);
      otpc_buf_unref(msg);
      return; /* normal */
    }
    otpc_buf_unref(msg);
  }
}

/* ------------------------------------------------------------------------
 * Halting
 * ------------------------------------------------------------------------ */

static bool is_down_of(otpc_term_t msg, void *ctx) {
  size_t arity;
  otpc_term_t e;
  otpc_ref_t ref;
  return otpc_term_get_tuple(msg, &arity, &e) == 0 && arity == 5 &&
         otpc_term_is_atom(e, OTPC_ATOM_DOWN) &&
         otpc_term_get_ref(otpc_term_next(e), &ref) == 0 &&
         otpc_ref_eq(&ref, ctx);
}

/* Kills every other process and waits until each is gone; again while
 * the dying ones spawned others. */
static void kill_others(void) {
  otpc_pid_t self = otpc_self();
  otpc_buf_t *kill = otpc_term_fmt("kill");
  for (;;) {
    size_t cap = otpc_process_count() + 16, n, others = 0;
    otpc_pid_t *pids = otpc__malloc(cap * sizeof *pids);
    otpc_ref_t *refs = otpc__malloc(cap * sizeof *refs);
    if (pids == NULL || refs == NULL || kill == NULL) { /* try again */
      otpc__free(pids);
      otpc__free(refs);
      otpc_sleep(1);
      if (kill == NULL) kill = otpc_term_fmt("kill");
      continue;
    }
    n = otpc_processes(pids, cap);
    if (n > cap) n = cap; /* the rest next round */
    for (size_t i = 0; i < n; i++) {
      if (otpc_pid_eq(pids[i], self)) continue;
      if (otpc_monitor(pids[i], &refs[others]) != 0) continue;
      otpc_exit_signal(pids[i], otpc_buf_term(kill));
      others++;
    }
    for (size_t i = 0; i < others; i++) {
      otpc_buf_t *down;
      if (otpc_receive_fn(is_down_of, &refs[i], OTPC_INFINITY, &down) == 0)
        otpc_buf_unref(down);
    }
    otpc__free(pids);
    otpc__free(refs);
    if (others == 0) break;
  }
  otpc_buf_unref(kill);
}

static void halt_node(ctl_t *c, otpc_gs_result_t *r) {
  otpc_term_t reason = etf_view(c->halt_etf, c->halt_len);
  otpc_buf_t *keep = copy_term(reason);
  pthread_mutex_lock(&halt_lock);
  otpc_buf_unref(halt_reason);
  halt_reason = keep ? otpc_buf_ref(keep) : NULL;
  otpc_app_halt_fn fn = halt_fn;
  void *arg = halt_arg;
  pthread_mutex_unlock(&halt_lock);
  char text[512];
  if (otpc_term_snprint(text, sizeof text, reason) < 0) text[0] = '\0';
  if (otpc_logger_allow(OTPC_LEVEL_ERROR))
    otpc_log_at(OTPC_LEVEL_ERROR, CONTROLLER, NULL, 0, NULL, NULL,
                "Kernel pid terminated (" CONTROLLER ") (%s)", text);
  if (fn) fn(reason, arg);
  kill_others();
  otpc_gs_stop(r, keep ? keep : otpc_term_fmt("halted"));
}

static void begin_halt(ctl_t *c, otpc_atom_t app, otpc_term_t reason) {
  otpc_buf_t *why =
      otpc_term_fmt("{application_terminated, ~A, ~t}", app, reason);
  c->halting = true;
  c->draining = true;
  if (why) c->halt_etf = palloc_term(otpc_buf_term(why), &c->halt_len);
  otpc_buf_unref(why);
  if (c->halt_etf == NULL) { /* out of memory: halt all the same */
    why = otpc_term_fmt("{application_terminated, ~A, enomem}", app);
    if (why) c->halt_etf = palloc_term(otpc_buf_term(why), &c->halt_len);
    otpc_buf_unref(why);
  }
}

/* ------------------------------------------------------------------------
 * Draining
 * ------------------------------------------------------------------------ */

/* Asks a running application to stop; true if that is done already (a
 * library application), false if its master's exit will say so. */
static bool stop_begin(ctl_t *c, app_t *a) {
  if (!a->has_master) {
    a->status = A_LOADED;
    running_remove(c, a->name);
    log_stopped(a);
    return true;
  }
  otpc_sendf(a->master, "'$ac_stop'");
  a->status = A_STOPPING;
  return false;
}

static void drain_done(ctl_t *c, otpc_gs_result_t *r) {
  if (c->halting) {
    halt_node(c, r);
    return;
  }
  c->draining = false;
  waiters_reply(&c->drain_waiters, otpc_term_fmt("ok"));
  if (c->exit_after) otpc_gs_stop(r, NULL);
}

/* One more step of stopping everything, newest first, one at a time. */
static void drain(ctl_t *c, otpc_gs_result_t *r) {
  for (;;) {
    for (size_t i = 0; i < c->napps; i++)
      if (c->apps[i].loaded &&
          (c->apps[i].status == A_STARTING || c->apps[i].status == A_STOPPING))
        return; /* its end brings us back here */
    if (c->nrunning == 0) {
      drain_done(c, r);
      return;
    }
    if (!stop_begin(c, app_find(c, c->running[c->nrunning - 1]))) return;
  }
}

/* ------------------------------------------------------------------------
 * Messages from masters
 * ------------------------------------------------------------------------ */

static void on_started(ctl_t *c, otpc_pid_t master, otpc_gs_result_t *r) {
  app_t *a = app_by_master(c, master);
  if (a == NULL || a->status != A_STARTING) return;
  a->status = A_RUNNING;
  running_add(c, a->name);
  log_started(a->name);
  waiters_reply(&a->waiters, otpc_term_fmt("ok"));
  if (c->draining) drain(c, r);
}

static void on_master_exit(ctl_t *c, otpc_pid_t master, otpc_term_t reason,
                           otpc_gs_result_t *r) {
  app_t *a = app_by_master(c, master);
  if (a == NULL) return; /* not a master */
  a->has_master = false;
  int was = a->status;
  a->status = A_LOADED;
  if (was == A_STARTING) {
    waiters_reply(&a->waiters,
                  otpc_term_fmt("{error, ~i, ~t}", OTPC_ESTOPPED, reason));
  } else if (was == A_STOPPING) {
    running_remove(c, a->name);
    log_stopped(a);
    waiters_reply(&a->waiters, otpc_term_fmt("ok"));
  } else { /* it terminated by itself */
    running_remove(c, a->name);
    log_exited(a->name, reason, a->type);
    bool normal = otpc_term_is_atom(reason, OTPC_ATOM_NORMAL);
    if (!c->halting &&
        (a->type == OTPC_PERMANENT || (a->type == OTPC_TRANSIENT && !normal)))
      begin_halt(c, a->name, reason);
  }
  if (c->draining) drain(c, r);
}

/* ------------------------------------------------------------------------
 * Requests
 * ------------------------------------------------------------------------ */

static void reply_error(otpc_gs_result_t *r, int code, const char *what,
                        otpc_atom_t app) {
  otpc_gs_replyf(r, "{error, ~i, {~a, ~A}}", code, what, app);
}

static void reply_code(otpc_gs_result_t *r, int rc, otpc_atom_t app) {
  if (rc == 0)
    otpc_gs_replyf(r, "ok");
  else if (rc == OTPC_ENOAPP)
    reply_error(r, rc, "unknown_application", app);
  else
    otpc_gs_replyf(r, "{error, ~i, ~a}", rc, otpc_err_name(rc));
}

static int spawn_master(ctl_t *c, app_t *a) {
  (void)c;
  master_arg_t *m = otpc__malloc(sizeof *m);
  if (m == NULL) return OTPC_ENOMEM;
  m->ctl = otpc_self();
  m->spec = a->spec;
  otpc_spawn_opts_t o = {.link = true, .name = "application_master"};
  int rc = otpc_spawn(master_main, m, &o, &a->master);
  if (rc != 0) {
    otpc__free(m);
    return rc;
  }
  a->has_master = true;
  return 0;
}

/* The first dependency of a that does not run, or 0. */
static otpc_atom_t missing_dep(ctl_t *c, const app_t *a) {
  for (size_t i = 0; i < a->ndeps; i++) {
    app_t *d = app_find(c, a->deps[i]);
    if (d == NULL || !d->loaded || d->status != A_RUNNING) return a->deps[i];
  }
  return OTPC_ATOM_NONE;
}

static void call_start(ctl_t *c, otpc_atom_t name, int type,
                       const otpc_from_t *from, otpc_gs_result_t *r) {
  app_t *a = app_find(c, name);
  int rc = 0;
  if (c->draining) {
    otpc_gs_replyf(r, "{error, ~i, shutting_down}", OTPC_ENOPROC);
    return;
  }
  if (a == NULL || !a->loaded) rc = app_load(c, name, &a);
  if (rc != 0) {
    reply_code(r, rc, name);
    return;
  }
  if (a->status == A_RUNNING || a->status == A_STOPPING) {
    reply_error(r, OTPC_EEXIST, "already_started", name);
    return;
  }
  if (a->status == A_STARTING) { /* answered with the first caller */
    if (!waiters_add(&a->waiters, from)) reply_code(r, OTPC_ENOMEM, name);
    return;
  }
  otpc_atom_t dep = missing_dep(c, a);
  if (dep != OTPC_ATOM_NONE) {
    reply_error(r, OTPC_ENOTSTARTED, "not_started", dep);
    return;
  }
  a->type = (otpc_restart_t)type;
  if (a->spec->start == NULL) { /* a library application */
    a->status = A_RUNNING;
    running_add(c, name);
    log_started(name);
    otpc_gs_replyf(r, "ok");
    return;
  }
  if (!waiters_add(&a->waiters, from)) {
    reply_code(r, OTPC_ENOMEM, name);
    return;
  }
  rc = spawn_master(c, a);
  if (rc != 0) {
    a->waiters.n = 0;
    reply_code(r, rc, name);
    return;
  }
  a->status = A_STARTING;
}

static void call_stop(ctl_t *c, otpc_atom_t name, const otpc_from_t *from,
                      otpc_gs_result_t *r) {
  app_t *a = app_find(c, name);
  if (a == NULL || !a->loaded || a->status == A_LOADED ||
      a->status == A_STARTING) {
    reply_error(r, OTPC_ENOTSTARTED, "not_started", name);
    return;
  }
  if (!waiters_add(&a->waiters, from)) {
    reply_code(r, OTPC_ENOMEM, name);
    return;
  }
  if (a->status == A_STOPPING) return; /* answered with the first caller */
  if (stop_begin(c, a)) waiters_reply(&a->waiters, otpc_term_fmt("ok"));
}

static void call_drain(ctl_t *c, bool exit_after, const otpc_from_t *from,
                       otpc_gs_result_t *r) {
  if (!waiters_add(&c->drain_waiters, from)) {
    reply_code(r, OTPC_ENOMEM, OTPC_ATOM_NONE);
    return;
  }
  c->draining = true;
  if (exit_after) c->exit_after = true;
  if (!c->halting) drain(c, r); /* a halt's drain is under way already */
}

static void call_load(ctl_t *c, otpc_atom_t name, otpc_gs_result_t *r) {
  app_t *a = app_find(c, name);
  if (a != NULL && a->loaded) {
    reply_error(r, OTPC_EEXIST, "already_loaded", name);
    return;
  }
  reply_code(r, app_load(c, name, &a), name);
}

static void call_unload(ctl_t *c, otpc_atom_t name, otpc_gs_result_t *r) {
  app_t *a = app_find(c, name);
  if (a == NULL || !a->loaded) {
    reply_error(r, OTPC_ENOAPP, "not_loaded", name);
  } else if (a->status != A_LOADED) {
    reply_error(r, OTPC_EEXIST, "running", name);
  } else {
    env_clear(a);
    a->loaded = false;
    otpc_gs_replyf(r, "ok");
  }
}

static void call_which(ctl_t *c, otpc_gs_result_t *r) {
  otpc_builder_t b;
  otpc_builder_init(&b);
  if (c->nrunning > 0) otpc_build_list(&b, c->nrunning);
  for (size_t i = c->nrunning; i > 0; i--) { /* newest first */
    app_t *a = app_find(c, c->running[i - 1]);
    otpc_build_tuple(&b, 2);
    otpc_build_atom_id(&b, a->name);
    otpc_build_int(&b, a->type);
  }
  otpc_build_nil(&b);
  otpc_gs_reply(r, otpc_builder_finish(&b, NULL));
}

static void call_get_env(ctl_t *c, otpc_atom_t name, otpc_atom_t key,
                         otpc_gs_result_t *r) {
  app_t *a = app_find(c, name);
  env_t *e = a ? env_find(a, key) : NULL;
  if (e == NULL)
    otpc_gs_replyf(r, "undefined");
  else
    otpc_gs_replyf(r, "{ok, ~t}", etf_view(e->etf, e->len));
}

static void call_get_all_env(ctl_t *c, otpc_atom_t name, otpc_gs_result_t *r) {
  app_t *a = app_find(c, name);
  size_t n = a ? a->nenv : 0;
  otpc_builder_t b;
  otpc_builder_init(&b);
  otpc_build_tuple(&b, 2);
  otpc_build_atom_id(&b, OTPC_ATOM_OK);
  if (n > 0) otpc_build_list(&b, n);
  for (size_t i = 0; i < n; i++) {
    otpc_build_tuple(&b, 2);
    otpc_build_atom_id(&b, a->env[i].key);
    otpc_build_term(&b, etf_view(a->env[i].etf, a->env[i].len));
  }
  otpc_build_nil(&b);
  otpc_gs_reply(r, otpc_builder_finish(&b, NULL));
}

static void call_set_env(ctl_t *c, otpc_atom_t name, otpc_atom_t key,
                         otpc_term_t val, otpc_gs_result_t *r) {
  app_t *a = app_get(c, name);
  reply_code(r, a ? env_put(a, key, val) : OTPC_ENOMEM, name);
}

static void call_unset_env(ctl_t *c, otpc_atom_t name, otpc_atom_t key,
                           otpc_gs_result_t *r) {
  app_t *a = app_find(c, name);
  if (a) env_del(a, key);
  otpc_gs_replyf(r, "ok");
}

static bool op_is(otpc_term_t op, const char *name) {
  return otpc_term_atom_eq(op, name, strlen(name));
}

static void ac_call(void **state, otpc_term_t req, const otpc_from_t *from,
                    otpc_gs_result_t *r) {
  ctl_t *c = *state;
  otpc_term_t op = req, arg[3] = {{0}};
  otpc_atom_t app = OTPC_ATOM_NONE, key = OTPC_ATOM_NONE;
  size_t arity = 0;
  if (otpc_term_get_tuple(req, &arity, &op) == 0) {
    otpc_term_t t = op;
    for (size_t i = 1; i < arity && i <= 3; i++)
      arg[i - 1] = t = otpc_term_next(t);
    if (arity >= 2) otpc_term_get_atom(arg[0], &app);
    if (arity >= 3) otpc_term_get_atom(arg[1], &key);
  }
  int type = 0;
  if (arity == 3 && op_is(op, "start") && otpc_term_get_int(arg[1], &type) == 0)
    call_start(c, app, type, from, r);
  else if (arity == 2 && op_is(op, "stop"))
    call_stop(c, app, from, r);
  else if (arity == 3 && op_is(op, "get_env"))
    call_get_env(c, app, key, r);
  else if (arity == 4 && op_is(op, "set_env"))
    call_set_env(c, app, key, arg[2], r);
  else if (arity == 3 && op_is(op, "unset_env"))
    call_unset_env(c, app, key, r);
  else if (arity == 2 && op_is(op, "get_all_env"))
    call_get_all_env(c, app, r);
  else if (arity == 2 && op_is(op, "load"))
    call_load(c, app, r);
  else if (arity == 2 && op_is(op, "unload"))
    call_unload(c, app, r);
  else if (op_is(req, "which_applications"))
    call_which(c, r);
  else if (op_is(req, "stop_all"))
    call_drain(c, false, from, r);
  else if (op_is(req, "shutdown"))
    call_drain(c, true, from, r);
  else
    reply_code(r, OTPC_EINVAL, OTPC_ATOM_NONE);
}

static void ac_info(void **state, otpc_term_t msg, otpc_gs_result_t *r) {
  ctl_t *c = *state;
  size_t arity;
  otpc_term_t e, reason;
  otpc_pid_t pid;
  if (otpc_term_get_tuple(msg, &arity, &e) == 0 && arity == 2 &&
      otpc_term_atom_eq(e, "$ac_started", 11) &&
      otpc_term_get_pid(otpc_term_next(e), &pid) == 0)
    on_started(c, pid, r);
  else if (is_exit(msg, &pid, &reason))
    on_master_exit(c, pid, reason, r);
}

static void ac_init(void *arg, void **state, otpc_gs_result_t *r) {
  (void)arg;
  otpc_trap_exit(true);
  ctl_t *c = otpc_palloc(sizeof *c);
  if (c == NULL) {
    otpc_gs_stop(r, otpc_term_fmt("enomem"));
    return;
  }
  memset(c, 0, sizeof *c);
  *state = c;
  pthread_mutex_lock(&halt_lock);
  otpc_buf_unref(halt_reason);
  halt_reason = NULL;
  pthread_mutex_unlock(&halt_lock);
}

static const otpc_gen_server_t ac_cb = {
    .name = CONTROLLER,
    .init = ac_init,
    .handle_call = ac_call,
    .handle_info = ac_info,
};

/* ------------------------------------------------------------------------
 * API: the controller
 * ------------------------------------------------------------------------ */

static otpc_atom_t controller_name(void) {
  return otpc_atom(CONTROLLER);
}

int otpc_app_controller_start(void) {
  otpc_gs_opts_t o = {.name = controller_name()};
  otpc_pid_t pid;
  otpc_buf_t *why = NULL;
  int rc = otpc_gen_server_start(&ac_cb, NULL, &o, &pid, &why);
  otpc_buf_unref(why);
  return rc;
}

/* Calls the controller with req (released here). */
static int ac_request(otpc_buf_t *req, otpc_buf_t **reply) {
  *reply = NULL;
  if (req == NULL) return OTPC_ENOMEM;
  int rc =
      otpc_gen_server_call_name(controller_name(), req, OTPC_INFINITY, reply);
  otpc_buf_unref(req);
  if (rc != 0) {
    otpc_buf_unref(*reply); /* an exit reason: it is gone */
    *reply = NULL;
    if (rc == OTPC_EEXITED) rc = OTPC_ENOPROC;
  }
  return rc;
}

/* Reads ok, {ok, X} or {error, Code, Reason}: 0 and X, or Code and
 * Reason, into *out (may be NULL). */
static int ac_result(otpc_buf_t *req, otpc_buf_t **out) {
  otpc_buf_t *reply;
  if (out) *out = NULL;
  int rc = ac_request(req, &reply);
  if (rc != 0) return rc;
  otpc_term_t t = otpc_buf_term(reply), e;
  size_t arity;
  if (otpc_term_get_tuple(t, &arity, &e) == 0) {
    if (arity == 3 && otpc_term_is_atom(e, OTPC_ATOM_ERROR)) {
      e = otpc_term_next(e);
      if (otpc_term_get_int(e, &rc) != 0 || rc >= 0) rc = OTPC_EINVAL;
      if (out) *out = copy_term(otpc_term_next(e));
    } else if (arity == 2 && otpc_term_is_atom(e, OTPC_ATOM_OK) && out) {
      *out = copy_term(otpc_term_next(e));
      if (*out == NULL) rc = OTPC_ENOMEM;
    }
  }
  otpc_buf_unref(reply);
  return rc;
}

int otpc_app_controller_stop(void) {
  otpc_pid_t pid;
  otpc_ref_t ref;
  if (otpc_whereis(controller_name(), &pid) != 0) return OTPC_ENOPROC;
  int rc = otpc_monitor(pid, &ref);
  if (rc != 0) return rc;
  rc = ac_result(otpc_term_fmt("shutdown"), NULL);
  if (rc == 0) {
    otpc_buf_t *down;
    if (otpc_receive_fn(is_down_of, &ref, OTPC_INFINITY, &down) == 0)
      otpc_buf_unref(down);
  } else {
    otpc_demonitor(&ref, OTPC_DEMONITOR_FLUSH);
  }
  return rc;
}

void otpc_app_set_halt_hook(otpc_app_halt_fn fn, void *arg) {
  pthread_mutex_lock(&halt_lock);
  halt_fn = fn;
  halt_arg = arg;
  pthread_mutex_unlock(&halt_lock);
}

bool otpc_app_halted(otpc_buf_t **reason) {
  pthread_mutex_lock(&halt_lock);
  bool halted = halt_reason != NULL;
  if (reason) *reason = halted ? otpc_buf_ref(halt_reason) : NULL;
  pthread_mutex_unlock(&halt_lock);
  return halted;
}

/* ------------------------------------------------------------------------
 * API: loading, starting, stopping
 * ------------------------------------------------------------------------ */

int otpc_app_load(otpc_atom_t app) {
  return ac_result(otpc_term_fmt("{load, ~A}", app), NULL);
}

int otpc_app_unload(otpc_atom_t app) {
  return ac_result(otpc_term_fmt("{unload, ~A}", app), NULL);
}

static bool type_ok(otpc_restart_t type) {
  return type == OTPC_PERMANENT || type == OTPC_TRANSIENT ||
         type == OTPC_TEMPORARY;
}

int otpc_app_start(otpc_atom_t app, otpc_restart_t type, otpc_buf_t **reason) {
  if (reason) *reason = NULL;
  if (!type_ok(type) || app == OTPC_ATOM_NONE) return OTPC_EINVAL;
  return ac_result(otpc_term_fmt("{start, ~A, ~i}", app, (int)type), reason);
}

int otpc_app_ensure_started(otpc_atom_t app, otpc_restart_t type,
                            otpc_buf_t **reason) {
  otpc_buf_t *why = NULL;
  int rc = otpc_app_start(app, type, &why);
  if (rc == OTPC_EEXIST) {
    otpc_buf_unref(why);
    why = NULL;
    rc = 0;
  }
  if (reason)
    *reason = why;
  else
    otpc_buf_unref(why);
  return rc;
}

int otpc_app_stop(otpc_atom_t app) {
  return ac_result(otpc_term_fmt("{stop, ~A}", app), NULL);
}

int otpc_app_stop_all(void) {
  return ac_result(otpc_term_fmt("stop_all"), NULL);
}

int otpc_app_which_applications(otpc_app_info_t *out, size_t max) {
  otpc_buf_t *reply;
  int rc = ac_request(otpc_term_fmt("which_applications"), &reply);
  if (rc != 0) return rc;
  otpc_list_iter_t it;
  otpc_term_t e;
  size_t n = 0;
  if (otpc_term_list_iter(otpc_buf_term(reply), &it) == 0)
    while (otpc_list_next(&it, &e)) {
      if (out != NULL && n < max) {
        otpc_app_info_t *info = &out[n];
        otpc__app_entry_t reg;
        int type = 0;
        memset(info, 0, sizeof *info);
        otpc_term_get_atom(otpc_term_tuple_elem(e, 0), &info->name);
        otpc_term_get_int(otpc_term_tuple_elem(e, 1), &type);
        info->type = (otpc_restart_t)type;
        info->description = info->vsn = "";
        if (otpc__app_lookup(info->name, &reg)) {
          if (reg.spec->description) info->description = reg.spec->description;
          if (reg.spec->vsn) info->vsn = reg.spec->vsn;
        }
      }
      n++;
    }
  otpc_buf_unref(reply);
  return (int)n;
}

/* ------------------------------------------------------------------------
 * API: the environment
 * ------------------------------------------------------------------------ */

int otpc_app_get_env(otpc_atom_t app, otpc_atom_t key, otpc_buf_t **value) {
  if (value == NULL) return OTPC_EINVAL;
  int rc = ac_result(otpc_term_fmt("{get_env, ~A, ~A}", app, key), value);
  if (rc != 0) return rc;
  return *value != NULL;
}

int otpc_app_set_env(otpc_atom_t app, otpc_atom_t key, otpc_term_t value) {
  if (app == OTPC_ATOM_NONE || key == OTPC_ATOM_NONE ||
      otpc_term_is_none(value))
    return OTPC_EINVAL;
  return ac_result(otpc_term_fmt("{set_env, ~A, ~A, ~t}", app, key, value),
                   NULL);
}

int otpc_app_unset_env(otpc_atom_t app, otpc_atom_t key) {
  return ac_result(otpc_term_fmt("{unset_env, ~A, ~A}", app, key), NULL);
}

int otpc_app_get_all_env(otpc_atom_t app, otpc_buf_t **env) {
  if (env == NULL) return OTPC_EINVAL;
  return ac_result(otpc_term_fmt("{get_all_env, ~A}", app), env);
}
