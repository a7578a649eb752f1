/*
 * spawn.c: SPAWN_REQUEST from other nodes, which is how erpc and OTP 23+
 * rpc run a function on this node (erts "Distribution Protocol",
 * SPAWN_REQUEST and SPAWN_REPLY).
 *
 * An otpc node runs no Erlang code, so of the functions another node may
 * ask it to spawn it takes the two that erpc uses, and runs C functions
 * exported with otpc_rpc_export() in them:
 *
 *   erpc:execute_call(Ref, M, F, Args)   exits {Ref, return, Result};
 *                                        {Ref, exit, Reason} when the C
 *                                        function fails; {Ref, error,
 *                                        undef, [{M, F, Args, []}]} when
 *                                        nothing is exported as M:F
 *   erpc:execute_cast(M, F, Args)        runs it, nothing comes back
 *
 * Anything else is refused with the error notsup in SPAWN_REPLY.
 *
 * The new process starts by waiting for a `go` message: the link and
 * monitor the requester asked for reach it before that, and the
 * SPAWN_REPLY is queued on the connection before it, so the requester
 * hears of the pid before it hears of the exit (conn.c does the
 * sequencing).
 */
#include "dist_int.h"

typedef struct sjob {
  otpc_buf_t *args;   /* the ArgList payload */
  otpc_buf_t *reason; /* the exit reason once decided */
  bool call;          /* execute_call (else execute_cast) */
  otpc_term_t ref, m, f, a;
} sjob_t;

static otpc_buf_t *call_reason(sjob_t *j) {
  otpc_atom_t m, f;
  otpc_rpc_fn fn;
  void *ctx;
  if (otpc_term_get_atom(j->m, &m) != 0 || otpc_term_get_atom(j->f, &f) != 0 ||
      !otpc__rpc_lookup(m, f, &fn, &ctx)) {
    if (!j->call) return NULL;
    return otpc_term_fmt("{~t, error, undef, [{~t, ~t, ~t, []}]}", j->ref, j->m,
                         j->f, j->a);
  }
  otpc_buf_t *why = NULL;
  otpc_buf_t *r = fn(j->a, ctx, &why);
  otpc_buf_t *reason = NULL;
  if (j->call && r != NULL)
    reason = otpc_term_fmt("{~t, return, ~t}", j->ref, otpc_buf_term(r));
  else if (j->call)
    reason = why ? otpc_term_fmt("{~t, exit, ~t}", j->ref, otpc_buf_term(why))
                 : otpc_term_fmt("{~t, exit, rpc_failed}", j->ref);
  otpc_buf_unref(r);
  otpc_buf_unref(why);
  return reason;
}

static int sjob_init(void *arg, void **state) {
  *state = arg;
  return OTPC_CONTINUE;
}

static int sjob_handle(void *state, otpc_buf_t *msg) {
  sjob_t *j = state;
  if (!otpc_term_is_atom(otpc_buf_term(msg), otpc_atom("go")))
    return OTPC_CONTINUE;
  j->reason = call_reason(j);
  if (j->reason == NULL) return OTPC_STOP; /* a cast: ends normally */
  otpc_exit(otpc_buf_term(j->reason));
}

static void sjob_terminate(void *state, otpc_term_t reason) {
  sjob_t *j = state;
  if (j == NULL) return;
  otpc_buf_unref(j->args);
  otpc_buf_unref(j->reason);
  otpc__free(j);
}

static const otpc_handler_t sjob_handler = {sjob_init, sjob_handle,
                                            sjob_terminate};

/* Whether an option list holds the atom name (or {name, _}). */
static bool has_opt(otpc_term_t opts, const char *name) {
  otpc_list_iter_t it;
  otpc_term_t e;
  size_t n = strlen(name), arity;
  if (otpc_term_list_iter(opts, &it) != 0) return false;
  while (otpc_list_next(&it, &e)) {
    otpc_term_t first;
    if (otpc_term_atom_eq(e, name, n)) return true;
    if (otpc_term_get_tuple(e, &arity, &first) == 0 && arity == 2 &&
        otpc_term_atom_eq(first, name, n))
      return true;
  }
  return false;
}

int otpc__spawn_request(otpc__dmsg_t *m, otpc_pid_t *pid, unsigned *flags,
                        otpc_atom_t *error) {
  /* {29, ReqId, From, GroupLeader, {M, F, Arity}, Opts [, Token]} */
  otpc_term_t ctrl = otpc_buf_term(m->ctrl);
  otpc_term_t mfa = otpc_term_tuple_elem(ctrl, 4);
  otpc_term_t opts = otpc_term_tuple_elem(ctrl, 5);
  otpc_term_t mod = otpc_term_tuple_elem(mfa, 0);
  otpc_term_t fun = otpc_term_tuple_elem(mfa, 1);
  *flags = 0;
  *error = otpc_atom("notsup");
  bool call = otpc_term_atom_eq(fun, "execute_call", 12);
  bool cast = otpc_term_atom_eq(fun, "execute_cast", 12);
  if (!otpc_term_atom_eq(mod, "erpc", 4) || (!call && !cast) ||
      m->payload == NULL)
    return OTPC_EINVAL;
  sjob_t *j = otpc__calloc(1, sizeof *j);
  if (j == NULL) {
    *error = otpc_atom("system_limit");
    return OTPC_ENOMEM;
  }
  j->call = call;
  j->args = m->payload;
  otpc_list_iter_t it;
  otpc_term_t *want[4] = {&j->ref, &j->m, &j->f, &j->a};
  size_t n = 0, need = call ? 4 : 3;
  if (otpc_term_list_iter(otpc_buf_term(j->args), &it) == 0)
    for (otpc_term_t e; n < need && otpc_list_next(&it, &e); n++)
      *want[call ? n : n + 1] = e;
  if (n != need) {
    otpc__free(j);
    *error = otpc_atom("badarg");
    return OTPC_EINVAL;
  }
  m->payload = NULL; /* the job has it now */
  otpc_spawn_opts_t so = {.name = "erpc"};
  int rc = otpc_spawn_handler(&sjob_handler, j, &so, pid);
  if (rc != 0) {
    otpc_buf_unref(j->args);
    otpc__free(j);
    *error = otpc_atom("system_limit");
    return rc;
  }
  if (has_opt(opts, "link")) *flags |= 1;
  if (has_opt(opts, "monitor")) *flags |= 2;
  return 0;
}
