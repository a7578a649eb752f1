/*
 * otp_int.h: what the behaviours share inside the otp layer.
 *
 *   - proc_lib's synchronous start: the starter spawns a handler process
 *     and waits for {ack, Ref, Result} from its init, or for its DOWN;
 *   - reading the From of a call, {Pid, Tag}, into an otpc_from_t.
 *
 * gen_server and gen_statem use these.
 */
#ifndef OTPC_OTP_INT_H
#define OTPC_OTP_INT_H

#include "../rt/rt_int.h"
#include "otpc/otp.h"

/* What the new process needs to know to acknowledge its start. It lives
 * in the start context the new process owns: the starter fills it in
 * before the spawn and never reads it afterwards. */
typedef struct otpc__start {
  otpc_pid_t starter;
  otpc_ref_t ack;   /* {ack, Ack, Result} */
  otpc_atom_t name; /* register under it; OTPC_ATOM_NONE: anonymous */
  bool link;        /* linked to the starter (its parent) */
} otpc__start_t;

/*
 * The starter's side, in a process: fills *st (which is inside arg) from
 * opts, spawns the handler h with arg and waits until it acknowledges.
 * Returns as otpc_gen_server_start does: 0, OTPC_EEXIST (*pid: who has
 * the name), OTPC_EIGNORED, OTPC_ESTOPPED (*reason), OTPC_ETIMEDOUT (the
 * process is killed). arg must be one block from otpc__malloc with
 * nothing else to free: the new process owns it, and frees it; if the
 * spawn fails it is freed here.
 */
int otpc__start_handler(const otpc_handler_t *h, void *arg, otpc__start_t *st,
                        const otpc_gs_opts_t *opts, const char *spawn_name,
                        otpc_pid_t *pid, otpc_buf_t **reason);

/* The new process's side. Registers st->name if there is one; if it is
 * taken, tells the starter ({error, {already_started, Pid}}) and returns
 * false. */
bool otpc__start_register(const otpc__start_t *st);
/* Sends {ack, Ref, Result}, Result built from fmt (otpc_build_fmt). */
void otpc__start_ack(const otpc__start_t *st, const char *fmt, ...);

/* {Pid, Tag} into *from, the tag kept as its ETF bytes. Returns the byte
 * after the pair (where a call's request starts), or NULL if the term is
 * no such pair or the tag is larger than OTPC_FROM_TAG_MAX. */
const uint8_t *otpc__from_take(otpc_term_t from_term, otpc_from_t *from);

/* proc_lib's rule (logger.c): whether an exit reason is a crash, that
 * is, not normal, shutdown or {shutdown, _}. */
bool otpc__is_crash(otpc_term_t reason);

/* A new buffer holding a copy of t; NULL if out of memory. */
otpc_buf_t *otpc__term_copy(otpc_term_t t);

/*
 * gen_server.c: the client side of a call, for a server that *mon already
 * monitors (a pid, or {Name, Node} through dist's remote monitor): sends
 * {Label, {Self, Mon}, Request} with send(ctx, Msg), which takes over the
 * reference to Msg, and waits for {Mon, Reply} or the DOWN. Returns as
 * otpc_gen_server_call() does; a DOWN with noconnection gives
 * OTPC_EEXITED and {nodedown, Node} (node) in *reply, as gen:call exits.
 * The monitor is gone when it returns.
 */
int otpc__gen_request(const otpc_ref_t *mon, otpc_atom_t node,
                      int (*send)(void *ctx, otpc_buf_t *msg), void *ctx,
                      otpc_atom_t label, otpc_term_t req, int64_t timeout_ms,
                      otpc_buf_t **reply, bool want_down);

/* otpc__gen_request() to a pid, monitored here: gen:call's path for
 * '$gen_call' and for system messages (sys). */
int otpc__gen_request_pid(otpc_pid_t server, otpc_atom_t label, otpc_term_t req,
                          int64_t timeout_ms, otpc_buf_t **reply,
                          bool want_down);

/* ------------------------------------------------------------------------
 * Hot code (the code layer plugs in here; otp does not depend on it)
 *
 * A behaviour process started from a loaded module carries a binding:
 * the code layer's record of which version of the module it runs. The
 * binding begins with a pointer to the code layer's operations. Only the
 * process itself calls them, in this order:
 *
 *   attach   once, first thing in the new process (before any callback);
 *            false: the starter gave up on it, end at once
 *   stale    before each dispatch: is a newer version current? (one
 *            atomic load; must be cheap)
 *   begin    a newer version is current: *cb gets its table of the same
 *            behaviour, *old_vsn the vsn of the running one (a new
 *            reference); < 0 if there is none to move to
 *   finish   after the new table's code_change: moved or not
 *   release  the process ends (from its cleanup), however it ends
 * ------------------------------------------------------------------------ */

typedef struct otpc__code_bind otpc__code_bind_t;
typedef struct otpc__code_ops {
  bool (*attach)(otpc__code_bind_t *b, otpc_pid_t self);
  bool (*stale)(const otpc__code_bind_t *b);
  int (*begin)(otpc__code_bind_t *b, const void **cb, otpc_buf_t **old_vsn);
  void (*finish)(otpc__code_bind_t *b, bool moved);
  void (*release)(otpc__code_bind_t *b);
  /* The module's name atom, to match sys:change_code's Module. */
  otpc_atom_t (*module)(const otpc__code_bind_t *b);
} otpc__code_ops_t;
struct otpc__code_bind {
  const otpc__code_ops_t *ops;
};

/* otpc_gen_server_start and otpc_gen_statem_start for a bound process.
 * bind may be NULL (a plain start). */
struct otpc_gen_statem;
int otpc__gen_server_start_bound(const otpc_gen_server_t *cb,
                                 otpc__code_bind_t *bind, void *arg,
                                 const otpc_gs_opts_t *opts, otpc_pid_t *pid,
                                 otpc_buf_t **reason);
int otpc__gen_statem_start_bound(const struct otpc_gen_statem *cb,
                                 otpc__code_bind_t *bind, void *arg,
                                 const otpc_gs_opts_t *opts, otpc_pid_t *pid,
                                 otpc_buf_t **reason);

/* sys's system messages, shared by gen_server and gen_statem (sys.c).
 * A behaviour describes itself with these callbacks. */
typedef struct otpc__sys_ops {
  /* {change_code, Module, OldVsn, Extra}: 0, or a negative code / the
   * code_change's result (*why may get a reason term). */
  int (*change_code)(void *self, otpc_atom_t module, otpc_term_t old_vsn,
                     otpc_term_t extra, otpc_buf_t **why);
  /* {terminate, Reason}: stops the behaviour; never returns. */
  void (*terminate)(void *self, otpc_buf_t *reason);
  /* The parent, whose EXIT ends a suspended process; linked or not. */
  bool (*is_parent_exit)(void *self, otpc_term_t msg);
} otpc__sys_ops_t;

/* Serves {system, From, Request} (req is Request, from_term From):
 * replies and, for suspend, waits in a selective receive for system
 * messages only until resume. */
void otpc__sys_handle(const otpc__sys_ops_t *ops, void *self,
                      otpc_term_t from_term, otpc_term_t req);

#endif /* OTPC_OTP_INT_H */
