/*
 * sys.c: the client side of Erlang's sys module: suspend, resume and
 * change_code, as system messages {system, {Self, Ref}, Request} to a
 * monitored process, answered {Ref, Reply} (the server side is
 * src/otp/sys.c). The wait ends with the reply, the process's DOWN, or
 * the timeout.
 */
#include "code_int.h"

/* Sends {system, {Self, Ref}, Request} as gen:call does and waits: 0 and
 * *reply, or the call's error (the exit reason is dropped). Takes req. */
static int sys_request(otpc_pid_t pid, otpc_buf_t *req, int64_t timeout_ms,
                       otpc_buf_t **reply) {
  *reply = NULL;
  if (req == NULL) return OTPC_ENOMEM;
  int rc = otpc__gen_request_pid(pid, otpc_atom("system"), otpc_buf_term(req),
                                 timeout_ms, reply, false);
  otpc_buf_unref(req);
  if (rc != 0) {
    otpc_buf_unref(*reply);
    *reply = NULL;
  }
  return rc;
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
