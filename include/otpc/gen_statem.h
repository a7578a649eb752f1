/*
 * otpc/gen_statem.h: the gen_statem behaviour, Erlang's state machine
 * server, on handler processes (no stack while idle).
 *
 * A state machine is a state (an atom, or any term), the user's data, and
 * callbacks that get one event at a time and say what comes next: the
 * next state, replies, postponing the event, inserting events, timeouts.
 * The semantics are those of OTP's gen_statem (its reference page is the
 * specification); docs/gen_statem.md maps one to the other.
 *
 * Two callback modes, as in Erlang:
 *
 *   state functions         one callback per state; states are atoms and
 *                           the table otpc_gen_statem_t.states names them
 *   handle event function   one callback, handle_event; states are terms
 *
 * and, with state_enter, a call to the new state's callback (event type
 * OTPC_SM_ENTER) whenever the state changes and on entering the first one.
 *
 * Messages are Erlang's own, the same as gen_server's, so an Erlang
 * process can gen_statem:call an otpc state machine once distribution is
 * there:
 *
 *   call    {'$gen_call', {Pid, Tag}, Request}   reply  {Tag, Reply}
 *   cast    {'$gen_cast', Msg}
 *   stop    {system, From, {terminate, Reason}}
 *
 * A callback fills an otpc_sm_result_t with the otpc_sm_* functions below.
 * They take over the buffers they are given (one reference). Nothing a
 * callback asks for happens before it returns: replies are sent, then
 * state enter calls run, then the events and timeouts are carried out.
 */
#ifndef OTPC_GEN_STATEM_H
#define OTPC_GEN_STATEM_H

#include "otpc/otp.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Event types: Erlang's event_type(), plus the state enter call. */
typedef enum otpc_sm_event_type {
  OTPC_SM_CALL = 1,        /* {call, From}: ev->from says whom to answer */
  OTPC_SM_CAST,            /* cast */
  OTPC_SM_INFO,            /* info: any other message */
  OTPC_SM_TIMEOUT,         /* timeout: the event timeout */
  OTPC_SM_STATE_TIMEOUT,   /* state_timeout */
  OTPC_SM_GENERIC_TIMEOUT, /* {timeout, Name}: ev->name is Name */
  OTPC_SM_INTERNAL,        /* internal: inserted with otpc_sm_next_event */
  OTPC_SM_ENTER            /* a state enter call: content is the old state */
} otpc_sm_event_type_t;

/* What a callback gets. The views are valid during the call only. */
typedef struct otpc_sm_event {
  otpc_sm_event_type_t type;
  otpc_term_t content;     /* the event content (ENTER: the old state) */
  otpc_term_t state;       /* the current state */
  const otpc_from_t *from; /* CALL: the caller, for otpc_sm_reply; else NULL */
  otpc_term_t name;        /* GENERIC_TIMEOUT: the timeout's name (an atom) */
} otpc_sm_event_t;

/* What the callback asks for; filled with the functions below. */
typedef struct otpc_sm_result otpc_sm_result_t;

/* A state callback: Module:StateName/3 or Module:handle_event/4. The data
 * is the user's, as a gen_server's state is: change what it points to or
 * replace it. */
typedef void (*otpc_sm_callback_t)(const otpc_sm_event_t *ev, void **data,
                                   otpc_sm_result_t *r);

/* State functions: the callback of the state named by an atom. */
typedef struct otpc_sm_state {
  const char *name; /* the state's atom, UTF-8 */
  otpc_sm_callback_t fn;
} otpc_sm_state_t;

typedef enum otpc_sm_callback_mode {
  OTPC_SM_STATE_FUNCTIONS = 0,
  OTPC_SM_HANDLE_EVENT_FUNCTION = 1
} otpc_sm_callback_mode_t;

typedef struct otpc_gen_statem {
  const char *name;                      /* the "module", for reports */
  otpc_sm_callback_mode_t callback_mode; /* callback_mode() */
  bool state_enter;                      /* [.., state_enter] */
  /* init(Args): set *data, and the first state with otpc_sm_next_state
   * (or _term); actions as from a state callback (postpone is ignored).
   * Or otpc_sm_stop, otpc_sm_ignore. Runs in the new process while the
   * starter waits; state enter calls and actions run after it is told. */
  void (*init)(void *arg, void **data, otpc_sm_result_t *r);
  /* OTPC_SM_STATE_FUNCTIONS: the states, one callback each. */
  const otpc_sm_state_t *states;
  size_t nstates;
  /* OTPC_SM_HANDLE_EVENT_FUNCTION: the one callback (ev->state). */
  otpc_sm_callback_t handle_event;
  /* terminate(Reason, State, Data): when the machine stops (a stop
   * result, a stop request, its parent's exit while trapping exits, a
   * callback that exits); may be NULL. Free the data here. */
  void (*terminate)(otpc_term_t reason, otpc_term_t state, void **data);
  /* code_change(OldVsn, State, Data, Extra): a machine started from a
   * loaded module (otpc/code.h) calls the new version's when it moves
   * to it, and sys:change_code calls it. May replace *state and *data.
   * 0, or a negative code: the machine keeps the code it runs. May be
   * NULL: state and data are kept as they are. */
  int (*code_change)(otpc_term_t old_vsn, otpc_buf_t **state, void **data,
                     otpc_term_t extra);
  /* What crash reports show of the data; may be NULL (not shown). */
  otpc_buf_t *(*format_status)(otpc_term_t state, void *data);
} otpc_gen_statem_t;

/* ------------------------------------------------------------------------
 * Results: the transition (one of these; keep_state is the default)
 * ------------------------------------------------------------------------ */

/* {next_state, Name, Data}: a state named by an atom (any callback mode). */
OTPC_API void otpc_sm_next_state(otpc_sm_result_t *r, const char *name);
/* {next_state, State, Data}: any term (handle event function mode). */
OTPC_API void otpc_sm_next_state_term(otpc_sm_result_t *r, otpc_buf_t *state);
/* {keep_state, Data}: the default when nothing is said. */
OTPC_API void otpc_sm_keep_state(otpc_sm_result_t *r);
/* {repeat_state, Data}: keep the state, and call its enter again. */
OTPC_API void otpc_sm_repeat_state(otpc_sm_result_t *r);
/* {stop, Reason, Data} (NULL: normal). Replies given before are sent
 * first, as stop_and_reply sends them; other actions are dropped. */
OTPC_API void otpc_sm_stop(otpc_sm_result_t *r, otpc_buf_t *reason);
/* init only: ignore. */
OTPC_API void otpc_sm_ignore(otpc_sm_result_t *r);

/* ------------------------------------------------------------------------
 * Results: actions, carried out in the order given
 * ------------------------------------------------------------------------ */

/* {reply, From, Reply}. To answer later, keep a copy of *from and call
 * otpc_gen_statem_reply. */
OTPC_API void otpc_sm_reply(otpc_sm_result_t *r, const otpc_from_t *from,
                            otpc_buf_t *reply);
OTPC_API void otpc_sm_replyf(otpc_sm_result_t *r, const otpc_from_t *from,
                             const char *fmt, ...);
/* postpone: retry this event after the next state change, in the order
 * the postponed events came. Not in enter calls; ignored in init. */
OTPC_API void otpc_sm_postpone(otpc_sm_result_t *r);
/* {next_event, Type, Content}: handled before any other queued or new
 * event, in the order given. Type: INTERNAL, CAST, INFO, TIMEOUT or
 * STATE_TIMEOUT. Not in enter calls. content NULL: undefined. */
OTPC_API void otpc_sm_next_event(otpc_sm_result_t *r,
                                 otpc_sm_event_type_t type,
                                 otpc_buf_t *content);

/*
 * Timeouts. ms: 0 queues the timeout event after the events already
 * queued, before any new message; OTPC_INFINITY cancels (Erlang's
 * infinity and {..., cancel}). Setting one that runs restarts it. The
 * last of each kind in a result wins. content NULL: undefined.
 *
 *   event timeout    {timeout, T, Msg}: cancelled by any event (so only
 *                    started when no event is queued)
 *   state timeout    {state_timeout, T, Msg}: cancelled by a state change
 *   generic timeout  {{timeout, Name}, T, Msg}: by name, atom name; only
 *                    cancelled by setting it again
 */
OTPC_API void otpc_sm_event_timeout(otpc_sm_result_t *r, int64_t ms,
                                    otpc_buf_t *content);
OTPC_API void otpc_sm_state_timeout(otpc_sm_result_t *r, int64_t ms,
                                    otpc_buf_t *content);
OTPC_API void otpc_sm_generic_timeout(otpc_sm_result_t *r, const char *name,
                                      int64_t ms, otpc_buf_t *content);
/* hibernate: accepted; an idle state machine holds no stack anyway. */
OTPC_API void otpc_sm_hibernate(otpc_sm_result_t *r);

/* ------------------------------------------------------------------------
 * Starting, calling, stopping
 * ------------------------------------------------------------------------ */

/* The same start options as a gen_server's: name, link, init timeout. */
typedef otpc_gs_opts_t otpc_sm_opts_t;

/*
 * gen_statem:start and start_link: starts the machine and waits until its
 * init has returned. In a process. 0 and the pid; OTPC_EEXIST if the name
 * is taken (*pid is then who has it); OTPC_EIGNORED for ignore;
 * OTPC_ESTOPPED if init stopped or failed (the reason in *reason if
 * given); OTPC_ETIMEDOUT if init took too long (the machine is killed);
 * OTPC_EINVAL for a callback table that lacks what its mode needs.
 */
OTPC_API int otpc_gen_statem_start(const otpc_gen_statem_t *cb, void *arg,
                                   const otpc_sm_opts_t *opts,
                                   otpc_pid_t *pid, otpc_buf_t **reason);

/*
 * gen_statem:call, with gen_server's contract: 0 and *reply (release it);
 * OTPC_ENOPROC if there is no such machine; OTPC_EEXITED if it died
 * during the call (*reply holds its exit reason); OTPC_ETIMEDOUT if no
 * reply came in time (a late reply is dropped, never delivered). In a
 * process. A machine by {Name, Node}: otpc_gen_statem_call_remote()
 * (otpc/dist.h).
 */
OTPC_API int otpc_gen_statem_call(otpc_pid_t sm, otpc_buf_t *request,
                                  int64_t timeout_ms, otpc_buf_t **reply);
OTPC_API int otpc_gen_statem_call_name(otpc_atom_t name, otpc_buf_t *request,
                                       int64_t timeout_ms,
                                       otpc_buf_t **reply);
/* gen_statem:cast: sends and returns; never fails for a dead machine. */
OTPC_API int otpc_gen_statem_cast(otpc_pid_t sm, otpc_buf_t *msg);
OTPC_API int otpc_gen_statem_cast_name(otpc_atom_t name, otpc_buf_t *msg);
/* gen_statem:reply: answers a call later, from any process. */
OTPC_API int otpc_gen_statem_reply(const otpc_from_t *from,
                                   otpc_buf_t *reply);
/* gen_statem:stop: asks the machine to stop with reason (NULL: normal)
 * and waits until it has (terminate included). In a process. */
OTPC_API int otpc_gen_statem_stop(otpc_pid_t sm, otpc_buf_t *reason,
                                  int64_t timeout_ms);

#ifdef __cplusplus
}
#endif
#endif /* OTPC_GEN_STATEM_H */
