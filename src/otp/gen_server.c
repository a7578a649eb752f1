/*
 * gen_server.c: the gen_server behaviour on handler processes.
 *
 * A server is a handler process whose state is a gs_t: the callback table,
 * the user's state, and the pending timeout. Each message is sorted as
 * gen_server sorts it ($gen_call, $gen_cast, system, the parent's EXIT,
 * our own timeout, anything else is info), the matching callback runs, and
 * its result is carried out: reply, stop, continue, arm a timeout.
 *
 * Starting is synchronous, as proc_lib's is: the new process registers its
 * name, runs init, and sends {ack, Ref, Result} to the starter, which
 * waits for it with a selective receive (or for the process's DOWN).
 *
 * The client side (call, stop) is OTP 25's gen:call: it monitors the
 * server with {alias, demonitor} and sends the tag [alias | Mref], to
 * which the server replies ({[alias | Mref], Reply} sent to the alias).
 * A timeout removes the monitor, which deactivates the alias, so a reply
 * that comes later is dropped by the runtime as it is taken in (alias.c).
 * A call to a local server without a timeout uses the plain monitor
 * reference as its tag, as gen:call does: it waits until the reply or
 * the DOWN, so no reply can come late.
 *
 * Hot code: a server started from a loaded module (src/code) carries a
 * binding. Before each dispatch it asks the binding whether a newer
 * version of its module is current; if so it moves there first, through
 * the new table's code_change (see move_code). System messages
 * (suspend, resume, change_code, terminate) are sys.c's.
 *
 * Calls are the hot path: the protocol's atoms are interned once, and the
 * client knows its reply by the bytes of the tag it sent before it decodes
 * anything. An idle server costs its control block and a small gs_t: what
 * only servers with timeouts need is allocated on first use.
 */
#include <stdarg.h>
#include <stdatomic.h>

#include "otp_int.h"
#include "otpc/logger.h"
#include "otpc/otp.h"

/* What only some servers need, allocated on first use: a pending timeout
 * ({timeout, Ms} results), and the binding of a server started from a
 * loaded module (from its init). */
typedef struct gs_ext {
  otpc_ref_t timer;        /* the timeout's timer, to cancel */
  otpc_ref_t tag;          /* in its message {'$gen_timeout', Tag} */
  otpc__code_bind_t *bind; /* the module version it runs; NULL: none */
} gs_ext_t;

/* A server's state; only its own process touches it. */
typedef struct gs {
  const otpc_gen_server_t *cb;
  void *state;   /* the user's */
  gs_ext_t *ext; /* NULL until a timeout is first armed or a binding set */
  /* The starter, always a local process: its number and serial are
   * enough (a whole pid would make an idle server 16 bytes bigger). */
  uint32_t parent_id, parent_serial;
  bool linked;
  bool timer_armed; /* ext->timer runs */
  bool in_callback; /* a user callback is running */
  bool terminated;  /* terminate has been called */
} gs_t;

/* The protocol's atoms, interned on first use (an atom's id never
 * changes, so racing threads store the same value). */
static otpc_atom_t protocol_atom(_Atomic otpc_atom_t *slot, const char *name) {
  otpc_atom_t a = atomic_load_explicit(slot, memory_order_relaxed);
  if (a == OTPC_ATOM_NONE) {
    a = otpc_atom(name);
    atomic_store_explicit(slot, a, memory_order_relaxed);
  }
  return a;
}

static otpc_atom_t atom_gen_call(void) {
  static _Atomic otpc_atom_t a;
  return protocol_atom(&a, "$gen_call");
}

static otpc_atom_t atom_alias(void) {
  static _Atomic otpc_atom_t a;
  return protocol_atom(&a, "alias");
}

static otpc_atom_t atom_system(void) {
  static _Atomic otpc_atom_t a;
  return protocol_atom(&a, "system");
}

typedef struct start_ctx {
  otpc__start_t st; /* filled by otpc__start_handler */
  const otpc_gen_server_t *cb;
  otpc__code_bind_t *bind; /* NULL: not from a module */
  void *arg;
} start_ctx_t;

/* ------------------------------------------------------------------------
 * Results
 * ------------------------------------------------------------------------ */

static void result_clear(otpc_gs_result_t *r) {
  otpc_buf_unref(r->reply);
  otpc_buf_unref(r->reason);
  otpc_buf_unref(r->cont);
  memset(r, 0, sizeof *r);
  r->timeout = -1;
}

void otpc_gs_reply(otpc_gs_result_t *r, otpc_buf_t *reply) {
  otpc_buf_unref(r->reply);
  r->reply = reply;
  if (r->action != OTPC_GS_STOP) r->action = OTPC_GS_REPLY;
}

void otpc_gs_replyf(otpc_gs_result_t *r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  otpc_gs_reply(r, otpc_term_vfmt(fmt, ap, NULL));
  va_end(ap);
}

void otpc_gs_noreply(otpc_gs_result_t *r) { r->action = OTPC_GS_NOREPLY; }

void otpc_gs_stop(otpc_gs_result_t *r, otpc_buf_t *reason) {
  otpc_buf_unref(r->reason);
  r->reason = reason;
  r->action = OTPC_GS_STOP;
}

void otpc_gs_continue(otpc_gs_result_t *r, otpc_buf_t *cont) {
  otpc_buf_unref(r->cont);
  r->cont = cont;
}

void otpc_gs_timeout(otpc_gs_result_t *r, int64_t ms) { r->timeout = ms; }
void otpc_gs_hibernate(otpc_gs_result_t *r) { r->hibernate = true; }

/* ------------------------------------------------------------------------
 * Replies and the server's end
 * ------------------------------------------------------------------------ */

bool otpc_tag_alias(otpc_term_t tag, otpc_ref_t *alias) {
  otpc_list_iter_t it;
  otpc_term_t head;
  return otpc_term_list_iter(tag, &it) == 0 && otpc_list_next(&it, &head) &&
         otpc_term_atom_eq(head, "alias", 5) &&
         otpc_term_get_ref(otpc_list_tail(&it), alias) == 0;
}

/* The reply to from; handling: this is the call being handled, so its
 * monitor can be dropped with the reply (signal.c, SIGF_MON_PENDING). */
static int reply_to(const otpc_from_t *from, otpc_buf_t *reply, bool handling);

int otpc_gen_server_reply(const otpc_from_t *from, otpc_buf_t *reply) {
  return reply_to(from, reply, false);
}

static int reply_to(const otpc_from_t *from, otpc_buf_t *reply, bool handling) {
  if (from == NULL || reply == NULL || from->tag_len == 0 ||
      from->tag_len > OTPC_FROM_TAG_MAX)
    return OTPC_EINVAL;
  otpc_term_t r = otpc_buf_term(reply);
  if (r.kind != TERM_ENCODED) return OTPC_EINVAL;
  /* {Tag, Reply}, written at once: the tag exactly as it came (it was
   * checked when the call arrived), then the reply's bytes. */
  size_t rn = otpc_term_size(r);
  otpc_buf_t *msg = otpc_buf_new(NULL, 3 + from->tag_len + rn);
  if (msg == NULL) return OTPC_ENOMEM;
  uint8_t *q = otpc_buf_mutable_data(msg);
  q[0] = ETF_VERSION;
  q[1] = ETF_SMALL_TUPLE;
  q[2] = 2;
  otpc__copy_small(q + 3, from->tag, from->tag_len);
  otpc__copy_small(q + 3 + from->tag_len, r.p, rn);
  /* An Erlang caller (OTP 24+) waits on an alias: [alias | Alias]. Sent
   * there, a reply that comes after the caller gave up is dropped by its
   * node instead of landing in its mailbox. */
  otpc_ref_t alias;
  if (from->tag[0] == ETF_LIST && otpc_tag_alias(term_at(from->tag), &alias)) {
    int rc = otpc_send_alias(&alias, msg);
    otpc_buf_unref(msg);
    return rc;
  }
  bool dropped = handling && otpc__dispatch_answered(from->pid);
  return otpc__send_owned_flagged(from->pid, msg,
                                  dropped ? SIGF_DEMONITORED : 0);
}

/* Runs a user callback, noting that it runs: if it ends the process (an
 * exit from inside), the cleanup calls terminate as OTP does. */
#define CALLBACK(g, call)     \
  do {                        \
    (g)->in_callback = true;  \
    call;                     \
    (g)->in_callback = false; \
  } while (0)

static void cancel_timeout(gs_t *g) {
  if (!g->timer_armed) return;
  otpc_cancel_timer(&g->ext->timer);
  g->timer_armed = false;
}

/* Arms the timeout of a result: 'timeout' comes as info after ms unless
 * another message comes first. Out of memory: no timeout. */
static void arm_timeout(gs_t *g, int64_t ms) {
  if (g->ext == NULL) {
    g->ext = otpc__calloc(1, sizeof *g->ext);
    if (g->ext == NULL) return;
  }
  gs_ext_t *t = g->ext;
  t->tag = otpc_make_ref();
  otpc_buf_t *msg = otpc_term_fmt("{'$gen_timeout', ~r}", &t->tag);
  if (msg != NULL && otpc_send_after(ms, otpc_self(), msg, &t->timer) == 0)
    g->timer_armed = true;
  otpc_buf_unref(msg);
}

/* The one report of a crashed server, as proc_lib writes it with what
 * gen_server's own report tells: its name, the last message it took in
 * (the one its callback was handling), and its state as format_status
 * shows it. Before terminate, which may free the state. */
static void crash_report(gs_t *g, otpc_term_t reason) {
  if (!otpc__is_crash(reason) || !otpc_logger_allow(OTPC_LEVEL_ERROR)) return;
  otpc__proc_t *p = otpc__current();
  otpc_pid_t self = otpc_self();
  otpc_proc_info_t info;
  memset(&info, 0, sizeof info);
  otpc_process_info(self, &info);
  otpc_atom_t name = info.registered_name;
  const otpc__sig_t *last = (p->flags & PF_STARTED) ? p->h.dispatching : NULL;
  otpc_buf_t *status = g->cb->format_status && g->state
                           ? g->cb->format_status(g->state)
                           : NULL;
  otpc_builder_t b;
  otpc_builder_init(&b);
  otpc_build_list(&b, 2 + (last != NULL) + (status != NULL));
  otpc_build_fmt(&b, "{initial_call, {~a, init, 1}}",
                 g->cb->name ? g->cb->name : "gen_server");
  if (name != OTPC_ATOM_NONE)
    otpc_build_fmt(&b, "{registered_name, ~A}", name);
  else
    otpc_build_fmt(&b, "{registered_name, []}");
  if (last != NULL)
    otpc_build_fmt(&b, "{last_message, ~t}", otpc_buf_term(last->buf));
  if (status != NULL) otpc_build_fmt(&b, "{state, ~t}", otpc_buf_term(status));
  otpc_build_nil(&b);
  otpc_buf_t *extra = otpc_builder_finish(&b, NULL);
  otpc_buf_unref(status);
  if (extra != NULL) {
    otpc_term_t x = otpc_buf_term(extra);
    otpc_logger_crash_report(self, reason, &x);
  } else {
    otpc_logger_crash_report(self, reason, NULL);
  }
  otpc_buf_unref(extra);
}

/* Ends the server: terminate, then exit with the reason (normal if
 * NULL), whose buffer becomes the exit reason. Never returns. */
static _Noreturn void stop_server(gs_t *g, otpc_buf_t *reason) {
  otpc_buf_t *why = reason ? reason : otpc__atom_buf(OTPC_ATOM_NORMAL);
  cancel_timeout(g);
  g->terminated = true;
  crash_report(g, otpc_buf_term(why));
  if (g->cb->terminate)
    CALLBACK(g, g->cb->terminate(&g->state, otpc_buf_term(why)));
  /* The gs_t itself is freed by the handler's terminate (gs_cleanup). */
  otpc__proc_t *p = otpc__current();
  otpc_buf_unref(p->exit_reason);
  p->exit_reason = why;
  otpc__exit_current(p);
}

/* Carries out what a callback asked for. from: the call being handled
 * (taken from the message being dispatched). */
static void apply(gs_t *g, otpc_gs_result_t *r, const otpc_from_t *from) {
  for (;;) {
    if (r->reply != NULL && from != NULL) reply_to(from, r->reply, true);
    if (r->action == OTPC_GS_STOP) {
      otpc_buf_t *reason = r->reason;
      r->reason = NULL;
      result_clear(r);
      stop_server(g, reason);
    }
    if (r->cont == NULL) break;
    otpc_buf_t *cont = r->cont;
    r->cont = NULL;
    int64_t keep = r->timeout;
    result_clear(r);
    r->timeout = keep;
    from = NULL;
    if (g->cb->handle_continue)
      CALLBACK(g, g->cb->handle_continue(&g->state, otpc_buf_term(cont), r));
    otpc_buf_unref(cont);
  }
  if (r->timeout >= 0) arm_timeout(g, r->timeout);
  result_clear(r);
}

/* ------------------------------------------------------------------------
 * The server process
 * ------------------------------------------------------------------------ */

static int gs_init(void *arg, void **state) {
  start_ctx_t *c = arg;
  otpc__start_t st = c->st;
  const otpc_gen_server_t *cb = c->cb;
  void *init_arg = c->arg;
  otpc__code_bind_t *bind = c->bind;
  otpc__free(c); /* ours (proc_lib.c): copied out, nothing else in it */
  if (bind != NULL && !bind->ops->attach(bind, otpc_self())) return -1;
  gs_t *g = otpc__calloc(1, sizeof *g);
  if (g != NULL && bind != NULL &&
      (g->ext = otpc__calloc(1, sizeof *g->ext)) == NULL) {
    otpc__free(g);
    g = NULL;
  }
  if (g == NULL) {
    if (bind != NULL) bind->ops->release(bind);
    otpc__start_ack(&st, "{error, enomem}");
    return -1;
  }
  g->cb = cb;
  if (bind != NULL) g->ext->bind = bind;
  g->parent_id = st.starter.id;
  g->parent_serial = st.starter.serial;
  g->linked = st.link;
  *state = g;
  if (!otpc__start_register(&st)) return OTPC_STOP;
  otpc_gs_result_t r = {.timeout = -1};
  g->terminated = true; /* init's exit is no reason to terminate */
  CALLBACK(g, g->cb->init(init_arg, &g->state, &r));
  g->terminated = false;
  if (r.action == OTPC_GS_IGNORE) {
    otpc__start_ack(&st, "ignore");
    result_clear(&r);
    return OTPC_STOP;
  }
  if (r.action == OTPC_GS_STOP) {
    otpc_buf_t *reason = r.reason ? otpc_buf_ref(r.reason)
                                  : otpc__atom_buf(OTPC_ATOM_NORMAL);
    otpc__start_ack(&st, "{error, ~t}", otpc_buf_term(reason));
    result_clear(&r);
    /* init's stop: no terminate; the reason becomes the exit reason */
    otpc__proc_t *p = otpc__current();
    otpc_buf_unref(p->exit_reason);
    p->exit_reason = reason;
    otpc__exit_current(p);
  }
  otpc__start_ack(&st, "ok");
  apply(g, &r, NULL);
  return OTPC_CONTINUE;
}

/* ------------------------------------------------------------------------
 * Hot code and system messages
 * ------------------------------------------------------------------------ */

/* The server's binding, or NULL. */
static otpc__code_bind_t *bound(const gs_t *g) {
  return g->ext != NULL ? g->ext->bind : NULL;
}

/* Moves a bound server to its module's current version: the new table's
 * code_change(OldVsn, State, Extra), OldVsn being the running version's
 * vsn unless old_vsn says otherwise (kind 0: not given). 0 if it moved,
 * 1 if it runs the current version already; else it keeps the version it
 * runs and the result says why. */
static int move_code(gs_t *g, otpc_term_t old_vsn, otpc_term_t extra) {
  const void *next;
  otpc_buf_t *running_vsn = NULL;
  otpc__code_bind_t *b = bound(g);
  int rc = b->ops->begin(b, &next, &running_vsn);
  if (rc != 0) return rc; /* 1: it runs the current version */
  const otpc_gen_server_t *cb = next;
  otpc_buf_t *undef = NULL;
  if (extra.kind == 0) {
    undef = otpc__atom_buf(OTPC_ATOM_UNDEFINED);
    extra = otpc_buf_term(undef);
  }
  if (old_vsn.kind == 0) old_vsn = otpc_buf_term(running_vsn);
  if (cb->code_change != NULL)
    CALLBACK(g, rc = cb->code_change(old_vsn, &g->state, extra));
  b->ops->finish(b, rc == 0);
  if (rc == 0) g->cb = cb;
  otpc_buf_unref(undef);
  otpc_buf_unref(running_vsn);
  return rc;
}

static int gs_sys_change_code(void *self, otpc_atom_t module,
                              otpc_term_t old_vsn, otpc_term_t extra,
                              otpc_buf_t **why) {
  gs_t *g = self;
  /* Bound to module: move to its current version, even one whose
   * code_change failed at a dispatch before (sys retries it). */
  otpc__code_bind_t *b = bound(g);
  if (b != NULL && b->ops->module(b) == module) {
    int rc = move_code(g, old_vsn, extra);
    if (rc != 1) return rc;
  }
  /* The code it runs is current: its own code_change, as sys calls it. */
  int rc = 0;
  if (g->cb->code_change != NULL)
    CALLBACK(g, rc = g->cb->code_change(old_vsn, &g->state, extra));
  return rc;
}

static void gs_sys_terminate(void *self, otpc_buf_t *reason) {
  stop_server(self, reason);
}

static bool gs_is_parent_exit(void *self, otpc_term_t msg) {
  gs_t *g = self;
  otpc_pid_t who;
  return g->linked &&
         otpc_term_get_pid(otpc_term_tuple_elem(msg, 1), &who) == 0 &&
         who.id == g->parent_id && who.serial == g->parent_serial &&
         who.node == otpc_node_name();
}

static const otpc__sys_ops_t gs_sys_ops = {gs_sys_change_code,
                                           gs_sys_terminate, gs_is_parent_exit};

static int gs_handle(void *state, otpc_buf_t *msg) {
  gs_t *g = state;
  otpc_term_t t = otpc_buf_term(msg), e1, e2;
  size_t arity = 0;
  otpc_gs_result_t r = {.timeout = -1};
  /* A newer version of its module: move before this message. */
  otpc__code_bind_t *bind = bound(g);
  if (bind != NULL && bind->ops->stale(bind)) {
    otpc_term_t none = {NULL, 0, 0};
    move_code(g, none, none);
  }
  otpc_term_get_tuple(t, &arity, &e1);
  e2 = arity >= 2 ? otpc_term_next(e1) : e1;

  /* Our own timeout: only the current one counts. */
  if (arity == 2 && otpc_term_atom_eq(e1, "$gen_timeout", 12)) {
    otpc_ref_t tag;
    if (!g->timer_armed || otpc_term_get_ref(e2, &tag) != 0 ||
        !otpc_ref_eq(&tag, &g->ext->tag))
      return OTPC_CONTINUE; /* stale */
    g->timer_armed = false;
    otpc_buf_t *timeout = otpc__atom_buf(OTPC_ATOM_TIMEOUT);
    if (g->cb->handle_info)
      CALLBACK(g, g->cb->handle_info(&g->state, otpc_buf_term(timeout), &r));
    otpc_buf_unref(timeout);
    apply(g, &r, NULL);
    return OTPC_CONTINUE;
  }
  cancel_timeout(g); /* any other message ends a pending timeout */

  if (arity == 3 && otpc_term_atom_eq(e1, "$gen_call", 9)) {
    otpc_from_t from;
    const uint8_t *req = otpc__from_take(e2, &from);
    if (req == NULL) return OTPC_CONTINUE;
    if (g->cb->handle_call)
      CALLBACK(g, g->cb->handle_call(&g->state, term_at(req), &from, &r));
    apply(g, &r, &from);
    return OTPC_CONTINUE;
  }
  if (arity == 2 && otpc_term_atom_eq(e1, "$gen_cast", 9)) {
    if (g->cb->handle_cast) CALLBACK(g, g->cb->handle_cast(&g->state, e2, &r));
    apply(g, &r, NULL);
    return OTPC_CONTINUE;
  }
  if (arity == 3 && otpc_term_atom_eq(e1, "system", 6)) {
    /* sys: suspend, resume, change_code, terminate (gen_server:stop) */
    otpc__sys_handle(&gs_sys_ops, g, e2, otpc_term_next(e2));
    return OTPC_CONTINUE;
  }
  if (arity == 3 && otpc_term_atom_eq(e1, "EXIT", 4) && g->linked) {
    /* The parent's exit, while trapping: terminate with its reason. */
    otpc_pid_t who;
    if (otpc_term_get_pid(e2, &who) == 0 && who.id == g->parent_id &&
        who.serial == g->parent_serial && who.node == otpc_node_name()) {
      otpc_builder_t b;
      otpc_builder_init(&b);
      otpc_build_term(&b, otpc_term_next(e2));
      stop_server(g, otpc_builder_finish(&b, NULL));
    }
  }
  if (g->cb->handle_info) CALLBACK(g, g->cb->handle_info(&g->state, t, &r));
  apply(g, &r, NULL);
  return OTPC_CONTINUE;
}

/* The handler's terminate: runs however the process ends; frees ours. */
static void gs_cleanup(void *state, otpc_term_t reason) {
  gs_t *g = state;
  if (g == NULL) return;
  cancel_timeout(g);
  /* A callback ended the process (otpc_exit from inside): OTP catches
   * that and calls terminate. Not for 'killed', which no code sees. */
  if (g->in_callback && !g->terminated &&
      !otpc_term_is_atom(reason, OTPC_ATOM_KILLED)) {
    g->terminated = true;
    crash_report(g, reason);
    if (g->cb->terminate) g->cb->terminate(&g->state, reason);
  }
  if (bound(g) != NULL) g->ext->bind->ops->release(g->ext->bind);
  otpc__free(g->ext);
  otpc__free(g);
}

static const otpc_handler_t gs_handler = {gs_init, gs_handle, gs_cleanup};

/* ------------------------------------------------------------------------
 * Client side
 * ------------------------------------------------------------------------ */

typedef struct waiting {
  otpc_ref_t ref;   /* the monitor's, the call's tag (or its alias) */
  bool alias;       /* the tag is [alias | Ref] */
  otpc_atom_t node; /* the server's node, for {nodedown, Node} */
  size_t tag_len;   /* bytes of the tag as sent (0: more than fit) */
  uint8_t tag[OTPC_FROM_TAG_MAX];
} waiting_t;

/* Whether t is our tag (the reply's; down: the DOWN's ref). A reply
 * echoes the bytes we sent, so comparing bytes settles it at once,
 * without decoding the ref (which interns its node's atom); a tag written
 * some other way is compared by value. */
static bool is_our_tag(otpc_term_t t, const waiting_t *w, bool down) {
  otpc_ref_t ref;
  if (!down && t.kind == TERM_ENCODED && w->tag_len > 0 &&
      otpc_term_size(t) == w->tag_len && memcmp(t.p, w->tag, w->tag_len) == 0)
    return true;
  if (down || !w->alias)
    return otpc_term_get_ref(t, &ref) == 0 && otpc_ref_eq(&ref, &w->ref);
  return otpc_tag_alias(t, &ref) && otpc_ref_eq(&ref, &w->ref);
}

/* {Tag, _} for our tag. */
static bool our_reply(otpc_term_t msg, void *ctx) {
  size_t arity;
  otpc_term_t e;
  return otpc_term_get_tuple(msg, &arity, &e) == 0 && arity == 2 &&
         is_our_tag(e, ctx, false);
}

/* {Tag, _} or {'DOWN', Ref, process, _, _} for our tag and ref. */
static bool reply_or_down(otpc_term_t msg, void *ctx) {
  waiting_t *w = ctx;
  size_t arity;
  otpc_term_t e;
  if (otpc_term_get_tuple(msg, &arity, &e) != 0) return false;
  if (arity == 2) return is_our_tag(e, w, false);
  if (arity == 5 && otpc_term_is_atom(e, OTPC_ATOM_DOWN))
    return is_our_tag(otpc_term_next(e), w, true);
  return false;
}

/* Waits for the reply to a request sent with w's tag, or the DOWN. */
static int await(otpc__proc_t *p, waiting_t *w, int64_t timeout_ms,
                 otpc_buf_t **reply, bool want_down) {
  otpc_buf_t *got;
  for (;;) {
    uint16_t flags = 0;
    int rc = otpc__receive_fn_flags(reply_or_down, w, timeout_ms, &got, &flags);
    if (rc != 0) {
      /* Deactivates the alias too ({alias, demonitor}): a reply sent
       * from now on is dropped. As gen:call, one that is here already
       * is still the answer. */
      otpc_demonitor(&w->ref, OTPC_DEMONITOR_FLUSH);
      if (rc != OTPC_ETIMEDOUT || want_down ||
          otpc_receive_fn(our_reply, w, 0, &got) != 0)
        return rc;
      otpc_term_t r = otpc_term_tuple_elem(otpc_buf_term(got), 1);
      *reply = otpc__buf_take_sub(got, r);
      return *reply ? 0 : OTPC_ENOMEM;
    }
    size_t arity;
    otpc_term_t e;
    otpc_term_get_tuple(otpc_buf_term(got), &arity, &e);
    if (arity == 2 && !want_down) { /* the reply */
      /* The server dropped its end with the reply: no DOWN will come. */
      if (flags & SIGF_DEMONITORED) {
        otpc__mon_remove_watching(p, &w->ref, NULL);
        if (w->alias) otpc__alias_monitor_gone(p, &w->ref);
      } else {
        otpc_demonitor(&w->ref, OTPC_DEMONITOR_FLUSH);
      }
      *reply = otpc__buf_take_sub(got, otpc_term_next(e)); /* no copy */
      return *reply ? 0 : OTPC_ENOMEM;
    }
    /* stop: the ok before the DOWN we wait for (sys.c answers it with
     * otpc_gen_server_reply, which keeps the monitor: the DOWN comes). */
    if (arity == 2) {
      otpc_buf_unref(got);
      continue;
    }
    otpc_term_t reason = otpc_term_tuple_elem(otpc_buf_term(got), 4);
    bool noproc = otpc_term_is_atom(reason, OTPC_ATOM_NOPROC);
    if (noproc)
      *reply = NULL;
    else if (otpc_term_is_atom(reason, OTPC_ATOM_NOCONNECTION) && !want_down)
      *reply = otpc_term_fmt("{nodedown, ~A}", w->node); /* as gen:call */
    else
      *reply = otpc__term_copy(reason);
    otpc_buf_unref(got);
    return noproc ? OTPC_ENOPROC : OTPC_EEXITED;
  }
}

/* The call to a pid: the monitor rides with the request. */
typedef struct to_pid {
  otpc_pid_t pid;
  otpc_ref_t mon;
} to_pid_t;

static int send_monitored(void *ctx, otpc_buf_t *msg) {
  to_pid_t *to = ctx;
  return otpc__send_monitored(to->pid, &to->mon, msg);
}

/* Sends {Label, {Self, Tag}, Request} with send(ctx, Msg) to a server
 * that *mon monitors, and waits for {Tag, Reply} or the monitor's DOWN.
 * Tag is [alias | Mon] if *mon is an alias (otpc_monitor_opts), else
 * Mon. */
int otpc__gen_request(const otpc_ref_t *mon, otpc_atom_t node,
                      int (*send)(void *ctx, otpc_buf_t *msg), void *ctx,
                      otpc_atom_t label, otpc_term_t req, int64_t timeout_ms,
                      otpc_buf_t **reply, bool want_down) {
  otpc__proc_t *p = otpc__current();
  if (p == NULL) return OTPC_ENOTPROC;
  waiting_t w;
  w.ref = *mon;
  w.node = node;
  otpc_pid_t self = otpc__proc_pid(p);
  otpc_buf_t *own = NULL; /* req as a buffer, if it came as no bytes */
  if (req.kind != TERM_ENCODED) {
    if ((own = otpc__term_copy(req)) == NULL) {
      otpc_demonitor(&w.ref, OTPC_DEMONITOR_FLUSH);
      return OTPC_EINVAL;
    }
    req = otpc_buf_term(own);
  }
  /* {Label, {Self, Tag}, Request}, sized and written at once; Tag is
   * [alias | Mon] when Mon is an alias. */
  bool alias = w.alias = otpc__ref_is_alias(&w.ref);
  size_t label_len;
  const char *label_text = otpc_atom_name(label, &label_len);
  size_t label_n = label_text ? otpc__atom_text_bytes(label_len) : 0;
  size_t pid_n = otpc__pid_bytes(&self);
  size_t ref_n = otpc__ref_bytes(&w.ref), req_n = otpc_term_size(req);
  size_t alias_n = alias ? 5 + otpc__atom_bytes(atom_alias()) : 0;
  otpc_buf_t *msg = NULL;
  int rc = OTPC_EINVAL; /* an atom or ref that cannot be written */
  if (label_n != 0 && pid_n != 0 && ref_n != 0) {
    msg = otpc_buf_new(NULL, 5 + label_n + pid_n + alias_n + ref_n + req_n);
    rc = OTPC_ENOMEM;
  }
  if (msg == NULL) {
    otpc_buf_unref(own);
    otpc_demonitor(&w.ref, OTPC_DEMONITOR_FLUSH);
    return rc;
  }
  uint8_t *q = otpc_buf_mutable_data(msg);
  *q++ = ETF_VERSION;
  *q++ = ETF_SMALL_TUPLE;
  *q++ = 3;
  q = otpc__put_atom_text(q, label_text, label_len);
  *q++ = ETF_SMALL_TUPLE;
  *q++ = 2;
  q = otpc__put_pid(q, &self);
  uint8_t *tag = q;
  w.tag_len = alias_n + ref_n;
  if (alias) {
    *q = ETF_LIST;
    put_be32(q + 1, 1);
    q = otpc__put_atom(q + 5, atom_alias());
  }
  q = otpc__put_ref(q, &w.ref);
  otpc__copy_small(q, req.p, req_n);
  otpc_buf_unref(own);
  /* The tag's bytes, to know the reply by: msg goes with the send. */
  if (w.tag_len > sizeof w.tag) w.tag_len = 0; /* then compared by value */
  otpc__copy_small(w.tag, tag, w.tag_len);
  send(ctx, msg);
  return await(p, &w, timeout_ms, reply, want_down);
}

/* The same to a pid, monitored here: with {alias, demonitor} unless the
 * server is local and the call waits forever (gen:call's rule). */
int otpc__gen_request_pid(otpc_pid_t server, otpc_atom_t label,
                          otpc_term_t req, int64_t timeout_ms,
                          otpc_buf_t **reply, bool want_down) {
  if (otpc__current() == NULL) return OTPC_ENOTPROC;
  otpc_monitor_opts_t mo = {OTPC_MONITOR_ALIAS_DEMONITOR};
  if (timeout_ms < 0 && otpc__pid_is_local(server))
    mo.alias = OTPC_MONITOR_NO_ALIAS;
  to_pid_t to = {.pid = server};
  int rc = otpc__monitor_request(server, &mo, &to.mon);
  if (rc != 0) return rc;
  return otpc__gen_request(&to.mon, server.node, send_monitored, &to, label,
                           req, timeout_ms, reply, want_down);
}

int otpc_gen_server_call(otpc_pid_t server, otpc_buf_t *req,
                         int64_t timeout_ms, otpc_buf_t **reply) {
  if (req == NULL || reply == NULL) return OTPC_EINVAL;
  *reply = NULL;
  return otpc__gen_request_pid(server, atom_gen_call(), otpc_buf_term(req),
                               timeout_ms, reply, false);
}

int otpc_gen_server_call_name(otpc_atom_t name, otpc_buf_t *req,
                              int64_t timeout_ms, otpc_buf_t **reply) {
  otpc_pid_t pid;
  if (otpc_whereis(name, &pid) != 0) return OTPC_ENOPROC;
  return otpc_gen_server_call(pid, req, timeout_ms, reply);
}

int otpc_gen_server_cast(otpc_pid_t server, otpc_buf_t *msg) {
  otpc_buf_t *m = otpc_term_fmt("{'$gen_cast', ~t}", otpc_buf_term(msg));
  if (m == NULL) return OTPC_ENOMEM;
  int rc = otpc_send(server, m);
  otpc_buf_unref(m);
  return rc;
}

int otpc_gen_server_cast_name(otpc_atom_t name, otpc_buf_t *msg) {
  otpc_pid_t pid;
  if (otpc_whereis(name, &pid) != 0) return 0; /* cast never fails */
  return otpc_gen_server_cast(pid, msg);
}

int otpc_gen_server_stop(otpc_pid_t server, otpc_buf_t *reason,
                         int64_t timeout_ms) {
  otpc_buf_t *r = reason ? otpc_buf_ref(reason) : otpc__atom_buf(OTPC_ATOM_NORMAL);
  otpc_buf_t *req = otpc_term_fmt("{terminate, ~t}", otpc_buf_term(r));
  otpc_buf_unref(r);
  if (req == NULL) return OTPC_ENOMEM;
  otpc_buf_t *why = NULL;
  int rc = otpc__gen_request_pid(server, atom_system(), otpc_buf_term(req),
                                 timeout_ms, &why, true);
  otpc_buf_unref(req);
  otpc_buf_unref(why);
  return rc == OTPC_EEXITED ? 0 : rc; /* it ended: that was the point */
}

int otpc_gen_server_start(const otpc_gen_server_t *cb, void *arg,
                          const otpc_gs_opts_t *opts, otpc_pid_t *pid,
                          otpc_buf_t **reason) {
  return otpc__gen_server_start_bound(cb, NULL, arg, opts, pid, reason);
}

int otpc__gen_server_start_bound(const otpc_gen_server_t *cb,
                                 otpc__code_bind_t *bind, void *arg,
                                 const otpc_gs_opts_t *opts, otpc_pid_t *pid,
                                 otpc_buf_t **reason) {
  if (reason) *reason = NULL;
  if (cb == NULL || cb->init == NULL) return OTPC_EINVAL;
  start_ctx_t *c = otpc__calloc(1, sizeof *c);
  if (c == NULL) return OTPC_ENOMEM;
  c->cb = cb;
  c->bind = bind;
  c->arg = arg;
  return otpc__start_handler(&gs_handler, c, &c->st, opts, cb->name, pid,
                             reason);
}
