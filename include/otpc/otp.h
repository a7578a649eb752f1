/*
 * otpc/otp.h: OTP behaviours on the process runtime. This part:
 * gen_server.
 *
 * A gen_server is a handler process (no stack while idle) that runs a
 * table of C callbacks. Its messages are Erlang's own, so Erlang code can
 * call an otpc server and otpc code can call an Erlang one once
 * distribution is there:
 *
 *   call    {'$gen_call', {Pid, Tag}, Request}   reply  {Tag, Reply}
 *   cast    {'$gen_cast', Msg}
 *   stop    {system, From, {terminate, Reason}}
 *
 * Callbacks get the server state as `void **state` (they may change what
 * it points to or replace it) and say what comes next by filling an
 * otpc_gs_result_t with the otpc_gs_* helpers: reply or not, stop,
 * continue, a timeout.
 */
#ifndef OTPC_OTP_H
#define OTPC_OTP_H

#include "otpc/rt.h"
#include "otpc/term.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Who called: the caller's pid and the call's tag, kept as the ETF of the
 * tag so that any tag (a reference, or OTP 24's [alias | Ref]) is
 * answered as it came. Plain data: copy it to reply later. The room is
 * enough for [alias | Ref] with a five-word reference (otpc's aliases)
 * of a node whose name is as long as an atom can be (297 bytes). */
#define OTPC_FROM_TAG_MAX 320
typedef struct otpc_from {
  otpc_pid_t pid;
  uint32_t tag_len;
  uint8_t tag[OTPC_FROM_TAG_MAX];
} otpc_from_t;

enum {
  OTPC_GS_NOREPLY = 0, /* {noreply, State}: also "ok" for init */
  OTPC_GS_REPLY,       /* {reply, Reply, State} */
  OTPC_GS_STOP,        /* {stop, Reason, [Reply,] State} */
  OTPC_GS_IGNORE       /* init only: ignore */
};

/* What a callback asks for next. Start from the zero value (noreply,
 * no timeout) and use the helpers below. */
typedef struct otpc_gs_result {
  int action;
  otpc_buf_t *reply;   /* REPLY, or STOP with a reply */
  otpc_buf_t *reason;  /* STOP: NULL means normal */
  otpc_buf_t *cont;    /* {continue, C}: handle_continue(C) runs next */
  int64_t timeout;     /* ms until 'timeout' comes as info; < 0: none */
  bool hibernate;
} otpc_gs_result_t;

/* The helpers take over the buffers they are given (one reference). */
OTPC_API void otpc_gs_reply(otpc_gs_result_t *r, otpc_buf_t *reply);
OTPC_API void otpc_gs_noreply(otpc_gs_result_t *r);
OTPC_API void otpc_gs_stop(otpc_gs_result_t *r, otpc_buf_t *reason);
OTPC_API void otpc_gs_continue(otpc_gs_result_t *r, otpc_buf_t *cont);
OTPC_API void otpc_gs_timeout(otpc_gs_result_t *r, int64_t ms);
OTPC_API void otpc_gs_hibernate(otpc_gs_result_t *r);
/* A reply or a reason from a format, in one step. */
OTPC_API void otpc_gs_replyf(otpc_gs_result_t *r, const char *fmt, ...);

typedef struct otpc_gen_server {
  const char *name; /* the "module", for reports */
  /* init(Args): fill *state; r: noreply (ok), stop, ignore, continue,
   * timeout. Runs in the new process while the starter waits. */
  void (*init)(void *arg, void **state, otpc_gs_result_t *r);
  void (*handle_call)(void **state, otpc_term_t request,
                      const otpc_from_t *from, otpc_gs_result_t *r);
  void (*handle_cast)(void **state, otpc_term_t msg, otpc_gs_result_t *r);
  void (*handle_info)(void **state, otpc_term_t msg, otpc_gs_result_t *r);
  void (*handle_continue)(void **state, otpc_term_t cont,
                          otpc_gs_result_t *r);
  /* Called when the server stops (a stop result, a stop request, or an
   * exit signal from its parent while trapping exits); may be NULL. */
  void (*terminate)(void **state, otpc_term_t reason);
  /* code_change(OldVsn, State, Extra): a server started from a loaded
   * module (otpc/code.h) calls the new version's when it moves to it,
   * and sys:change_code calls it. May replace *state. 0, or a negative
   * code: the server keeps the code it runs. May be NULL: the state is
   * kept as it is. */
  int (*code_change)(otpc_term_t old_vsn, void **state, otpc_term_t extra);
  /* What crash reports show of the state; may be NULL. */
  otpc_buf_t *(*format_status)(void *state);
} otpc_gen_server_t;

typedef struct otpc_gs_opts {
  otpc_atom_t name;    /* register under this name (0: none) */
  bool link;           /* start_link: link to the caller */
  int64_t timeout;     /* ms for init; 0 means infinity */
  otpc_priority_t priority;
} otpc_gs_opts_t;

/*
 * Starts a server and waits until its init has returned (gen_server:start
 * and start_link). In a process. Returns 0 and the pid; OTPC_EEXIST if the
 * name is taken (*pid is then who has it); OTPC_EIGNORED for ignore;
 * OTPC_ESTOPPED if init stopped (the reason is in *reason if given);
 * OTPC_ETIMEDOUT if init took too long (the server is killed).
 */
OTPC_API int otpc_gen_server_start(const otpc_gen_server_t *cb, void *arg,
                                   const otpc_gs_opts_t *opts,
                                   otpc_pid_t *pid, otpc_buf_t **reason);

/*
 * gen_server:call: sends Request and waits for the reply (timeout in ms,
 * OTPC_INFINITY for none). 0 and *reply (release it); OTPC_ENOPROC if
 * there is no such server; OTPC_EEXITED if it died during the call (*reply
 * then holds its exit reason, or {nodedown, Node} if the server's node
 * went away, as gen:call exits); OTPC_ETIMEDOUT if no reply came in time
 * (a reply that comes later is dropped, never delivered). In a process.
 * A server by {Name, Node}: otpc_gen_server_call_remote() (otpc/dist.h).
 */
OTPC_API int otpc_gen_server_call(otpc_pid_t server, otpc_buf_t *request,
                                  int64_t timeout_ms, otpc_buf_t **reply);
OTPC_API int otpc_gen_server_call_name(otpc_atom_t name, otpc_buf_t *request,
                                       int64_t timeout_ms,
                                       otpc_buf_t **reply);
/* gen_server:cast: sends and returns; never fails for a dead server. */
OTPC_API int otpc_gen_server_cast(otpc_pid_t server, otpc_buf_t *msg);
OTPC_API int otpc_gen_server_cast_name(otpc_atom_t name, otpc_buf_t *msg);
/* Whether a call's tag is OTP 24's [alias | Alias], and the alias. */
OTPC_API bool otpc_tag_alias(otpc_term_t tag, otpc_ref_t *alias);
/* gen_server:reply: answers a call later, from any process. To the
 * caller's alias if its tag has one, else to its pid. */
OTPC_API int otpc_gen_server_reply(const otpc_from_t *from,
                                   otpc_buf_t *reply);
/* gen_server:stop: asks the server to stop with reason (NULL: normal) and
 * waits until it has (terminate included). In a process. */
OTPC_API int otpc_gen_server_stop(otpc_pid_t server, otpc_buf_t *reason,
                                  int64_t timeout_ms);

#ifdef __cplusplus
}
#endif
#endif /* OTPC_OTP_H */
