/*
 * sys.c: the client side of Erlang's sys module: suspend, resume and
 * change_code, as system messages {system, {Self, Ref}, Request} to a
 * monitored process, answered {Ref, Reply} (the server side is
 * src/otp/sys.c). The wait ends with the reply, the process's DOWN, or
 * the timeout.
 */
#include "code_int.h"

typedef struct sys_wait {
  otpc_ref_t ref;
} sys_wait_t;

static bool reply_or_down(otpc_term_t msg, void *ctx) {
  sys_wait_t *w = ctx;
  size_t arity;
  otpc_term_t e;
  otpc_ref_t ref;
  if (otpc_term_get_tuple(msg, &arity, &e) != 0) return false;
  if (arity == 5 && otpc_term_is_atom(e, OTPC_ATOM_DOWN))
    e = otpc_term_next(e);
  else if (arity != 2)
    return false;
  return otpc_term_get_ref(e, &ref) == 0 && otpc_ref_eq(&ref, &w->ref);
}

/* Sends {system, {Self, Ref}, Request} and waits: 0 and *reply. */
static int sys_request(otpc_pid_t pid, otpc_buf_t *req, int64_t timeout_ms,
                       otpc_buf_t **reply) {
  *reply = NULL;
  if (req == NULL) return OTPC_ENOMEM;
  if (otpc__current() == NULL) {
    otpc_buf_unref(req);
    return OTPC_ENOTPROC;
  }
  sys_wait_t w;
  int rc = otpc_monitor(pid, &w.ref);
  if (rc != 0) {
    otpc_buf_unref(req);
    return rc;
  }
  otpc_pid_t self = otpc_self();
  otpc_buf_t *msg = otpc_term_fmt("{system, {~p, ~r}, ~t}", &self, &w.ref,
                                  otpc_buf_term(req));
  otpc_buf_unref(req);
  if (msg == NULL) {
    otpc_demonitor(&w.ref, OTPC_DEMONITOR_FLUSH);
    return OTPC_ENOMEM;
  }
  otpc_send(pid, msg);
  otpc_buf_unref(msg);
  otpc_buf_t *got;
  rc = otpc_receive_fn(reply_or_down, &w, timeout_ms, &got);
  otpc_demonitor(&w.ref, OTPC_DEMONITOR_FLUSH);
  if (rc != 0) {
    otpc__forget_reply(otpc__current(), &w.ref);
    return rc;
  }
  size_t arity;
  otpc_term_t e;
  otpc_term_get_tuple(otpc_buf_term(got), &arity, &e);
  if (arity == 5) {
    bool noproc = otpc_term_is_atom(otpc_term_tuple_elem(otpc_buf_term(got), 4),
                                    OTPC_ATOM_NOPROC);
    otpc_buf_unref(got);
    return noproc ? OTPC_ENOPROC : OTPC_EEXITED;
  }
  *reply = otpc__term_copy(otpc_term_next(e));
  otpc_buf_unref(got);
  return *reply != NULL ? 0 : OTPC_ENOMEM;
}

/* ok -> 0; {error, Why} -> OTPC_ESTOPPED and Why in *error. */
static int sys_result(int rc, otpc_buf_t *reply, otpc_buf_t **error) {
  if (error != NULL) *error = NULL;
  if (rc != 0) return rc;
  otpc_term_t r = otpc_buf_term(reply);
  if (otpc_term_is_atom(r, OTPC_ATOM_OK)) {
    otpc_buf_unref(reply);
    return 0;
  }
  if (error != NULL) {
    size_t arity;
    otpc_term_t e;
    if (otpc_term_get_tuple(r, &arity, &e) == 0 && arity == 2)
      *error = otpc__term_copy(otpc_term_next(e));
    else
      *error = otpc_buf_ref(reply);
  }
  otpc_buf_unref(reply);
  return OTPC_ESTOPPED;
}

int otpc_sys_suspend(otpc_pid_t pid, int64_t timeout_ms) {
  otpc_buf_t *reply;
  int rc = sys_request(pid, otpc_term_fmt("suspend"), timeout_ms, &reply);
  return sys_result(rc, reply, NULL);
}

int otpc_sys_resume(otpc_pid_t pid, int64_t timeout_ms) {
  otpc_buf_t *reply;
  int rc = sys_request(pid, otpc_term_fmt("resume"), timeout_ms, &reply);
  return sys_result(rc, reply, NULL);
}

int otpc_sys_change_code(otpc_pid_t pid, const char *module,
                         otpc_term_t old_vsn, otpc_term_t extra,
                         int64_t timeout_ms, otpc_buf_t **error) {
  if (error != NULL) *error = NULL;
  if (module == NULL) return OTPC_EINVAL;
  otpc_buf_t *undef = otpc__atom_buf(OTPC_ATOM_UNDEFINED);
  if (undef == NULL) return OTPC_ENOMEM;
  otpc_buf_t *req =
      otpc_term_fmt("{change_code, ~a, ~t, ~t}", module,
                    old_vsn.kind != 0 ? old_vsn : otpc_buf_term(undef),
                    extra.kind != 0 ? extra : otpc_buf_term(undef));
  otpc_buf_unref(undef);
  otpc_buf_t *reply;
  int rc = sys_request(pid, req, timeout_ms, &reply);
  return sys_result(rc, reply, error);
}
