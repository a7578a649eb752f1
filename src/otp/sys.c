/*
 * sys.c: the server side of Erlang's sys module for the behaviours:
 * {system, From, Request} messages, answered {Tag, Reply} as sys does.
 *
 *   suspend                            ok; then only system messages (and
 *                                      the parent's EXIT) are taken until
 *                                      resume; the others wait, in order
 *   resume                             ok (also when not suspended)
 *   {change_code, Mod, OldVsn, Extra}  ok | {error, Reason}; only while
 *                                      suspended, as sys requires
 *   {terminate, Reason}                ok, then the behaviour stops
 *   anything else                      {error, {unknown_system_msg, Req}}
 *
 * Suspension runs inside the handler's dispatch: the process blocks in a
 * selective receive and keeps its stack until resumed, so the messages
 * that are not system messages stay in the mailbox exactly as Erlang's
 * suspend_loop leaves them.
 */
#include "otp_int.h"

static void reply_buf(const otpc_from_t *from, otpc_buf_t *reply) {
  if (reply != NULL) otpc_gen_server_reply(from, reply);
  otpc_buf_unref(reply);
}

/* {system, _, _}, or the parent's EXIT. */
typedef struct sys_wait {
  const otpc__sys_ops_t *ops;
  void *self;
} sys_wait_t;

static bool system_or_parent(otpc_term_t msg, void *ctx) {
  sys_wait_t *w = ctx;
  size_t arity;
  otpc_term_t e;
  if (otpc_term_get_tuple(msg, &arity, &e) != 0 || arity != 3) return false;
  if (otpc_term_atom_eq(e, "system", 6)) return true;
  return otpc_term_is_atom(e, OTPC_ATOM_EXIT) &&
         w->ops->is_parent_exit(w->self, msg);
}

/* One request; returns whether the process is (still) suspended. A
 * terminate request puts its reason in *stop (the caller stops). */
static bool serve(const otpc__sys_ops_t *ops, void *self, otpc_term_t from_term,
                  otpc_term_t req, bool suspended, otpc_buf_t **stop) {
  otpc_from_t from;
  if (!otpc__from_take(from_term, &from)) return suspended;
  if (otpc_term_atom_eq(req, "suspend", 7)) {
    reply_buf(&from, otpc__atom_buf(OTPC_ATOM_OK));
    return true;
  }
  if (otpc_term_atom_eq(req, "resume", 6)) {
    reply_buf(&from, otpc__atom_buf(OTPC_ATOM_OK));
    return false;
  }
  size_t arity = 0;
  otpc_term_t op;
  otpc_term_get_tuple(req, &arity, &op);
  if (arity == 2 && otpc_term_atom_eq(op, "terminate", 9)) {
    reply_buf(&from, otpc__atom_buf(OTPC_ATOM_OK));
    *stop = otpc__term_copy(otpc_term_next(op));
    if (*stop == NULL) *stop = otpc__atom_buf(OTPC_ATOM_NORMAL);
    return suspended;
  }
  if (arity == 4 && otpc_term_atom_eq(op, "change_code", 11) && suspended) {
    otpc_term_t mod = otpc_term_next(op);
    otpc_term_t vsn = otpc_term_next(mod);
    otpc_term_t extra = otpc_term_next(vsn);
    otpc_atom_t m = OTPC_ATOM_NONE;
    otpc_term_get_atom(mod, &m);
    otpc_buf_t *why = NULL;
    int rc = ops->change_code(self, m, vsn, extra, &why);
    if (rc == 0) {
      reply_buf(&from, otpc__atom_buf(OTPC_ATOM_OK));
    } else if (why != NULL) {
      reply_buf(&from, otpc_term_fmt("{error, ~t}", otpc_buf_term(why)));
    } else {
      reply_buf(&from,
                otpc_term_fmt("{error, {code_change, ~a}}", otpc_err_name(rc)));
    }
    otpc_buf_unref(why);
    return suspended;
  }
  reply_buf(&from, otpc_term_fmt("{error, {unknown_system_msg, ~t}}", req));
  return suspended;
}

void otpc__sys_handle(const otpc__sys_ops_t *ops, void *self,
                      otpc_term_t from_term, otpc_term_t req) {
  otpc_buf_t *stop = NULL;
  bool suspended = serve(ops, self, from_term, req, false, &stop);
  if (stop != NULL) ops->terminate(self, stop);
  if (!suspended) return;
  sys_wait_t w = {ops, self};
  while (suspended) {
    otpc_buf_t *msg;
    if (otpc_receive_fn(system_or_parent, &w, OTPC_INFINITY, &msg) != 0) return;
    otpc_term_t t = otpc_buf_term(msg);
    otpc_term_t e1 = otpc_term_tuple_elem(t, 0);
    otpc_term_t e2 = otpc_term_tuple_elem(t, 1);
    if (otpc_term_is_atom(e1, OTPC_ATOM_EXIT)) {
      otpc_buf_t *why = otpc__term_copy(otpc_term_tuple_elem(t, 2));
      otpc_buf_unref(msg);
      ops->terminate(self, why);
    }
    suspended = serve(ops, self, e2, otpc_term_next(e2), true, &stop);
    otpc_buf_unref(msg);
    if (stop != NULL) ops->terminate(self, stop);
  }
}
