/*
 * rex.c: the `rex` server, which answers rpc:call/4,5, rpc:cast/4 and
 * rpc:block_call from Erlang with C functions exported by
 * otpc_rpc_export().
 *
 *   {'$gen_call', From, {call | block_call, M, F, Args, GroupLeader}}
 *                              -> {Tag, Result} to From
 *   {From, {call, M, F, Args, GroupLeader}} (hidden C nodes' form)
 *                              -> {rex, Result} to From
 *   {'$gen_cast', {cast, M, F, Args, GroupLeader}}    -> nothing
 *
 * Each call runs in a process of its own, as Erlang's rex spawns one, so
 * a slow function does not hold up the others. An unknown function gets
 * {badrpc, {'EXIT', {undef, [{M, F, Args, []}]}}}, as in Erlang.
 *
 * The exports are a small array under `lock`, looked up by atom pair.
 */
#include "dist_int.h"

typedef struct export {
  otpc_atom_t module, function;
  otpc_rpc_fn fn;
  void *ctx;
}
export_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static export_t *exports;
static size_t nexports, capexports;

int otpc_rpc_export(const char *module, const char *function, otpc_rpc_fn fn,
                    void *ctx) {
  otpc_atom_t m = otpc_atom(module), f = otpc_atom(function);
  if (m == OTPC_ATOM_NONE || f == OTPC_ATOM_NONE) return OTPC_EINVAL;
  int rc = 0;
  pthread_mutex_lock(&lock);
  size_t i = 0;
  while (i < nexports && !(exports[i].module == m && exports[i].function == f))
    i++;
  if (fn == NULL) {
    if (i < nexports) exports[i] = exports[--nexports];
  } else if (i < nexports) {
    exports[i].fn = fn;
    exports[i].ctx = ctx;
  } else {
    if (nexports == capexports) {
      size_t cap = capexports ? capexports * 2 : 16;
      export_t *bigger = otpc__realloc(exports, cap * sizeof *bigger);
      if (bigger == NULL)
        rc = OTPC_ENOMEM;
      else {
        exports = bigger;
        capexports = cap;
      }
    }
    if (rc == 0) exports[nexports++] = (export_t){m, f, fn, ctx};
  }
  pthread_mutex_unlock(&lock);
  return rc;
}

bool otpc__rpc_lookup(otpc_atom_t m, otpc_atom_t f, otpc_rpc_fn *fn,
                      void **ctx) {
  bool found = false;
  pthread_mutex_lock(&lock);
  for (size_t i = 0; i < nexports && !found; i++) {
    if (exports[i].module == m && exports[i].function == f) {
      *fn = exports[i].fn;
      *ctx = exports[i].ctx;
      found = true;
    }
  }
  pthread_mutex_unlock(&lock);
  return found;
}

static bool lookup(otpc_atom_t m, otpc_atom_t f, export_t *out) {
  bool found = false;
  pthread_mutex_lock(&lock);
  for (size_t i = 0; i < nexports && !found; i++) {
    if (exports[i].module == m && exports[i].function == f) {
      *out = exports[i];
      found = true;
    }
  }
  pthread_mutex_unlock(&lock);
  return found;
}

/* One call, in its own process. */
typedef struct job {
  otpc_buf_t *msg;      /* the request, which the views below point into */
  otpc_term_t reply_to; /* From of a gen_server call, or the pid */
  bool gen_call;        /* reply {Tag, R} to From; else {rex, R} to the pid */
  bool cast;            /* no reply */
  otpc_term_t m, f, args;
} job_t;

static otpc_buf_t *run(job_t *j) {
  otpc_atom_t m, f;
  export_t e;
  if (otpc_term_get_atom(j->m, &m) != 0 || otpc_term_get_atom(j->f, &f) != 0 ||
      !lookup(m, f, &e))
    return otpc_term_fmt("{badrpc, {'EXIT', {undef, [{~t, ~t, ~t, []}]}}}",
                         j->m, j->f, j->args);
  otpc_buf_t *reason = NULL;
  otpc_buf_t *r = e.fn(j->args, e.ctx, &reason);
  if (r != NULL) {
    otpc_buf_unref(reason);
    return r;
  }
  otpc_buf_t *bad =
      reason ? otpc_term_fmt("{badrpc, {'EXIT', ~t}}", otpc_buf_term(reason))
             : otpc_term_fmt("{badrpc, {'EXIT', rpc_failed}}");
  otpc_buf_unref(reason);
  return bad;
}

static void reply_to(job_t *j, otpc_buf_t *result) {
  otpc_pid_t pid;
  if (j->gen_call) {
    otpc_term_t e;
    size_t arity;
    if (otpc_term_get_tuple(j->reply_to, &arity, &e) != 0 || arity != 2 ||
        otpc_term_get_pid(e, &pid) != 0)
      return;
    /* To the caller's alias if the tag is [alias | Alias] (OTP 24 and
     * later), as gen_server:reply does: a late answer is then dropped. */
    otpc_term_t tag = otpc_term_next(e);
    otpc_ref_t alias;
    otpc_buf_t *msg = otpc_term_fmt("{~t, ~t}", tag, otpc_buf_term(result));
    if (msg == NULL) return;
    if (otpc_tag_alias(tag, &alias))
      otpc_send_alias(&alias, msg);
    else
      otpc_send(pid, msg);
    otpc_buf_unref(msg);
  } else if (otpc_term_get_pid(j->reply_to, &pid) == 0) {
    otpc_sendf(pid, "{rex, ~t}", otpc_buf_term(result));
  }
}

static void call_main(void *arg) {
  job_t *j = arg;
  otpc_buf_t *result = run(j);
  if (result != NULL && !j->cast) reply_to(j, result);
  otpc_buf_unref(result);
}

static int call_init(void *arg, void **state) {
  *state = arg;
  call_main(arg);
  return OTPC_STOP;
}
static int call_handle(void *state, otpc_buf_t *msg) {
  return OTPC_STOP;
}
static void call_done(void *state, otpc_term_t reason) {
  job_t *j = state;
  if (j == NULL) return;
  otpc_buf_unref(j->msg);
  otpc__free(j);
}
static const otpc_handler_t call_handler = {call_init, call_handle, call_done};

/* {call | block_call | cast, M, F, Args, GL} into j's fields. */
static bool take_request(otpc_term_t req, job_t *j) {
  size_t arity;
  otpc_term_t e;
  if (otpc_term_get_tuple(req, &arity, &e) != 0 || arity != 5) return false;
  bool call =
      otpc_term_atom_eq(e, "call", 4) || otpc_term_atom_eq(e, "block_call", 10);
  j->cast = otpc_term_atom_eq(e, "cast", 4);
  if (!call && !j->cast) return false;
  j->m = otpc_term_next(e);
  j->f = otpc_term_next(j->m);
  j->args = otpc_term_next(j->f);
  return otpc_term_type(j->m) == OTPC_TYPE_ATOM &&
         otpc_term_type(j->f) == OTPC_TYPE_ATOM;
}

static int rex_handle(void *state, otpc_buf_t *msg) {
  otpc_term_t t = otpc_buf_term(msg), e;
  size_t arity;
  if (otpc_term_get_tuple(t, &arity, &e) != 0) return OTPC_CONTINUE;
  job_t *j = otpc__calloc(1, sizeof *j);
  if (j == NULL) return OTPC_CONTINUE;
  bool ok = false;
  if (arity == 3 && otpc_term_atom_eq(e, "$gen_call", 9)) {
    j->gen_call = true;
    j->reply_to = otpc_term_next(e);
    ok = take_request(otpc_term_next(j->reply_to), j) && !j->cast;
  } else if (arity == 2 && otpc_term_atom_eq(e, "$gen_cast", 9)) {
    ok = take_request(otpc_term_next(e), j) && j->cast;
  } else if (arity == 2 && otpc_term_type(e) == OTPC_TYPE_PID) {
    j->reply_to = e;
    ok = take_request(otpc_term_next(e), j) && !j->cast;
  }
  if (!ok) {
    otpc__free(j);
    return OTPC_CONTINUE; /* ignored, as Erlang's rex ignores it */
  }
  j->msg = otpc_buf_ref(msg);
  otpc_spawn_opts_t o = {.name = "rpc call"};
  if (otpc_spawn_handler(&call_handler, j, &o, NULL) != 0) {
    otpc_buf_unref(j->msg);
    otpc__free(j);
  }
  return OTPC_CONTINUE;
}

static const otpc_handler_t rex_handler = {NULL, rex_handle, NULL};

int otpc__rex_start(otpc_pid_t *pid) {
  otpc_spawn_opts_t o = {.name = "rex"};
  int rc = otpc_spawn_handler(&rex_handler, NULL, &o, pid);
  if (rc == 0) rc = otpc_register(otpc_atom("rex"), *pid);
  return rc;
}
