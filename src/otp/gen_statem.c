/*
 * gen_statem.c: the gen_statem behaviour on handler processes.
 *
 * A state machine is a handler process whose handler state is an sm_t:
 * the callback table, the user's data, the current state (a buffer), the
 * engine's event queue, the postponed events and the armed timeouts.
 * Idle, that is all it holds: no stack, no result, no event.
 *
 * The event queue. Erlang's gen_statem keeps a queue of events that it
 * runs before it receives again: inserted events (next_event), postponed
 * events being retried, zero-time timeouts. Here that queue is
 * sm_t.queue; the mailbox is the runtime's. A message becomes an event
 * and joins the tail of the queue, then the queue runs. So everything
 * queued runs before any message that comes later, as in Erlang. The
 * queue is normally empty between messages; a callback that keeps
 * inserting events runs SM_BUDGET of them per message, then the machine
 * sends itself '$gen_statem_resume' so that other processes get their
 * turn, and goes on when that message comes.
 *
 * One event, start to end (dispatch, then transition):
 *
 *   1. the event timeout is cancelled (any event cancels it);
 *   2. the state's callback runs and fills a result (heap, one per event,
 *      so that whatever it holds is freed even if the callback exits);
 *   3. replies are sent, in order; a stop (replies first, as
 *      stop_and_reply) or a misuse ends the machine here;
 *   4. with state_enter, if the state changed (or repeat_state), the new
 *      state's callback runs with ENTER and old state; again from 3;
 *   5. the event is postponed or dropped; on a state change the postponed
 *      events go back to the head of the queue, oldest first, and the
 *      state timeout is cancelled;
 *   6. next_event events go to the head of the queue, in the order given;
 *   7. timeouts: the last of each kind wins; a zero time queues its event
 *      at the tail; the event timeout starts only if the queue is empty.
 *
 * Timeouts are the runtime's send_after timers with the message
 * {'$gen_statem_timeout', Seq, Type, Content}. Each armed one has a
 * record with its Seq; a message whose Seq has no record is stale (it was
 * cancelled while on its way) and is dropped.
 *
 * Hot code, as gen_server's: a machine started from a loaded module
 * moves to the module's current version before it handles a message,
 * through the new table's code_change (move_code); sys.c serves the
 * system messages.
 *
 * The client side (call, cast, stop, reply) is gen_server's: the messages
 * are the same, and so is the error contract.
 */
#include <stdarg.h>

#include "otp_int.h"
#include "otpc/gen_statem.h"
#include "otpc/logger.h"

#define SM_BUDGET 64     /* queued events run per message */
#define INLINE_ACTS 6    /* actions a result holds without allocating */

/* ------------------------------------------------------------------------
 * Types
 * ------------------------------------------------------------------------ */

/* An event in the queue, or postponed, or being handled. */
typedef struct ev {
  struct ev *next;
  otpc_buf_t *buf;     /* holds content and aux (one reference) */
  otpc_term_t content;
  otpc_term_t aux;     /* CALL: {Pid, Tag}; GENERIC_TIMEOUT: the name */
  uint8_t type;        /* otpc_sm_event_type_t */
} ev_t;

typedef struct evq {
  ev_t *head, *last;
} evq_t;

/* An armed timeout. */
typedef struct tmr {
  struct tmr *next;
  otpc_ref_t tref;  /* the runtime's timer, to cancel it */
  uint32_t seq;     /* in its message */
  otpc_atom_t name; /* GENERIC_TIMEOUT: its name */
  uint8_t type;     /* TIMEOUT, STATE_TIMEOUT or GENERIC_TIMEOUT */
} tmr_t;

enum { CTX_INIT, CTX_EVENT, CTX_ENTER };               /* who fills it */
enum { TR_KEEP, TR_NEXT, TR_REPEAT, TR_STOP, TR_IGNORE }; /* transition */
enum { ACT_DONE, ACT_REPLY, ACT_NEXT_EVENT, ACT_TIMEOUT };

typedef struct act {
  uint8_t kind;     /* ACT_* */
  uint8_t type;     /* NEXT_EVENT, TIMEOUT: the event type */
  otpc_atom_t name; /* a generic timeout's name */
  int64_t ms;       /* TIMEOUT */
  otpc_pid_t to;    /* REPLY */
  otpc_buf_t *buf;  /* REPLY: {Tag, Reply}; else the content, NULL: undefined */
} act_t;

/* One event's result, and what the engine holds while it carries it out.
 * Enter calls add their actions to the same list. */
struct otpc_sm_result {
  uint8_t ctx;        /* CTX_* */
  uint8_t transition; /* TR_* of the last callback */
  bool postpone;
  otpc_buf_t *state;  /* TR_NEXT: the next state */
  otpc_buf_t *reason; /* TR_STOP: NULL is normal */
  otpc_buf_t *bad;    /* a misuse: the reason to exit with */
  ev_t *ev;           /* the event being handled (NULL: init) */
  otpc_buf_t *old;    /* the state when the event came */
  size_t n, cap;
  act_t *acts;
  act_t small[INLINE_ACTS];
};

/* Flags of an sm_t. */
#define SM_LINKED 0x01u      /* started linked: its parent's EXIT stops it */
#define SM_IN_CALLBACK 0x02u /* a user callback runs */
#define SM_TERMINATED 0x04u  /* terminate has run (or must not) */
#define SM_RESUMING 0x08u    /* '$gen_statem_resume' is on its way */
#define SM_IN_INIT 0x10u     /* init runs: its end is no terminate's */

typedef struct sm {
  const otpc_gen_statem_t *cb;
  void *data;                 /* the user's */
  otpc_buf_t *state;          /* the current state; NULL until init set it */
  evq_t queue;                /* events to run before the next message */
  evq_t postponed;            /* oldest first */
  tmr_t *timers;              /* armed timeouts */
  otpc_sm_result_t *active;   /* the result being filled or carried out */
  /* The starter, always a local process: its number and serial are
   * enough (and keep the record at 104 bytes with the binding). */
  uint32_t parent_id, parent_serial;
  otpc__code_bind_t *bind;    /* the module version it runs; NULL: none */
  uint32_t seq;               /* the last timeout's number */
  int32_t state_ix;           /* state functions: the state's entry; -1 */
  uint32_t flags;             /* SM_* */
} sm_t;

typedef struct start_ctx {
  otpc__start_t st; /* filled by otpc__start_handler */
  const otpc_gen_statem_t *cb;
  otpc__code_bind_t *bind; /* NULL: not from a module */
  void *arg;
} start_ctx_t;

static _Noreturn void stop_machine(sm_t *m, otpc_buf_t *reason);
static bool table_ok(const otpc_gen_statem_t *cb);

/* ------------------------------------------------------------------------
 * State atoms: buffers made once per atom and kept for the program's life,
 * so that entering a state named by an atom allocates nothing. Two levels
 * of 1024 slots indexed by the atom; a slot is set once, by CAS.
 * ------------------------------------------------------------------------ */

#define ABUF_SLOTS 1024
static otpc_buf_t *_Atomic *_Atomic abuf_dir[OTPC_ATOM_MAX_COUNT / ABUF_SLOTS];

static otpc_buf_t *atom_state_buf(otpc_atom_t a) {
  if (a == OTPC_ATOM_NONE || a >= OTPC_ATOM_MAX_COUNT) return NULL;
  otpc_buf_t *_Atomic *_Atomic *dirp = &abuf_dir[a / ABUF_SLOTS];
  otpc_buf_t *_Atomic *slots = atomic_load_explicit(dirp, memory_order_acquire);
  if (slots == NULL) {
    otpc_buf_t *_Atomic *fresh = otpc__calloc(ABUF_SLOTS, sizeof *fresh);
    if (fresh == NULL) return NULL;
    otpc_buf_t *_Atomic *expected = NULL;
    if (atomic_compare_exchange_strong(dirp, &expected, fresh)) {
      slots = fresh;
    } else {
      otpc__free(fresh);
      slots = expected;
    }
  }
  otpc_buf_t *_Atomic *slot = &slots[a % ABUF_SLOTS];
  otpc_buf_t *b = atomic_load_explicit(slot, memory_order_acquire);
  if (b == NULL) {
    otpc_buf_t *fresh = otpc__atom_buf(a), *expected = NULL;
    if (fresh == NULL) return NULL;
    if (atomic_compare_exchange_strong(slot, &expected, fresh)) {
      b = fresh;
    } else {
      otpc_buf_unref(fresh);
      b = expected;
    }
  }
  return otpc_buf_ref(b); /* the slot keeps its own reference for good */
}

/* ------------------------------------------------------------------------
 * Events and the queue
 * ------------------------------------------------------------------------ */

static otpc_term_t none_term(void) {
  otpc_term_t t = {NULL, 0, 0};
  return t;
}

/* A new event viewing into buf, of which it takes a reference. */
static ev_t *ev_new(uint8_t type, otpc_buf_t *buf, otpc_term_t content,
                    otpc_term_t aux) {
  ev_t *e = otpc__malloc(sizeof *e);
  if (e == NULL) return NULL;
  e->next = NULL;
  e->buf = otpc_buf_ref(buf);
  e->content = content;
  e->aux = aux;
  e->type = type;
  return e;
}

static void ev_free(ev_t *e) {
  if (e == NULL) return;
  otpc_buf_unref(e->buf);
  otpc__free(e);
}

static void evq_push(evq_t *q, ev_t *e) {
  e->next = NULL;
  if (q->last) q->last->next = e;
  else q->head = e;
  q->last = e;
}

static ev_t *evq_pop(evq_t *q) {
  ev_t *e = q->head;
  if (e == NULL) return NULL;
  q->head = e->next;
  if (q->head == NULL) q->last = NULL;
  e->next = NULL;
  return e;
}

/* q becomes front ++ q; front is left empty. */
static void evq_prepend(evq_t *q, evq_t *front) {
  if (front->head == NULL) return;
  front->last->next = q->head;
  if (q->head == NULL) q->last = front->last;
  q->head = front->head;
  front->head = front->last = NULL;
}

static void evq_free(evq_t *q) {
  ev_t *e;
  while ((e = evq_pop(q)) != NULL) ev_free(e);
}

static size_t evq_len(const evq_t *q) {
  size_t n = 0;
  for (const ev_t *e = q->head; e != NULL; e = e->next) n++;
  return n;
}

/* The event type as Erlang writes it, into b. */
static void build_event_type(otpc_builder_t *b, uint8_t type, otpc_term_t aux) {
  static const char *const names[] = {
      [OTPC_SM_CAST] = "cast",       [OTPC_SM_INFO] = "info",
      [OTPC_SM_TIMEOUT] = "timeout", [OTPC_SM_STATE_TIMEOUT] = "state_timeout",
      [OTPC_SM_INTERNAL] = "internal", [OTPC_SM_ENTER] = "enter"};
  if (type == OTPC_SM_CALL || type == OTPC_SM_GENERIC_TIMEOUT) {
    otpc_build_tuple(b, 2); /* {call, From}, {timeout, Name} */
    otpc_build_atom(b, type == OTPC_SM_CALL ? "call" : "timeout");
    otpc_build_term(b, aux);
    return;
  }
  otpc_build_atom(b, names[type]);
}

/* ------------------------------------------------------------------------
 * Results
 * ------------------------------------------------------------------------ */

static void result_bad(otpc_sm_result_t *r, const char *fmt, ...) {
  if (r->bad != NULL) return; /* the first misuse is the one reported */
  va_list ap;
  va_start(ap, fmt);
  r->bad = otpc_term_vfmt(fmt, ap, NULL);
  va_end(ap);
  if (r->bad == NULL) r->bad = otpc_term_fmt("enomem");
}

static act_t *act_push(otpc_sm_result_t *r, uint8_t kind) {
  if (r->n == r->cap) {
    size_t cap = r->cap * 2;
    act_t *more = otpc__malloc(cap * sizeof *more);
    if (more == NULL) {
      result_bad(r, "enomem");
      return NULL;
    }
    memcpy(more, r->acts, r->n * sizeof *more);
    if (r->acts != r->small) otpc__free(r->acts);
    r->acts = more;
    r->cap = cap;
  }
  act_t *a = &r->acts[r->n++];
  memset(a, 0, sizeof *a);
  a->kind = kind;
  return a;
}

static otpc_sm_result_t *result_new(sm_t *m, uint8_t ctx) {
  otpc_sm_result_t *r = otpc__malloc(sizeof *r);
  if (r == NULL) return NULL;
  memset(r, 0, offsetof(otpc_sm_result_t, small));
  r->ctx = ctx;
  r->acts = r->small;
  r->cap = INLINE_ACTS;
  m->active = r;
  return r;
}

static void result_free(sm_t *m, otpc_sm_result_t *r) {
  if (r == NULL) return;
  for (size_t i = 0; i < r->n; i++)
    if (r->acts[i].kind != ACT_DONE) otpc_buf_unref(r->acts[i].buf);
  if (r->acts != r->small) otpc__free(r->acts);
  otpc_buf_unref(r->state);
  otpc_buf_unref(r->reason);
  otpc_buf_unref(r->bad);
  otpc_buf_unref(r->old);
  ev_free(r->ev);
  if (m->active == r) m->active = NULL;
  otpc__free(r);
}

static void set_transition(otpc_sm_result_t *r, uint8_t tr, otpc_buf_t *state) {
  otpc_buf_unref(r->state);
  r->state = state;
  if (r->transition != TR_STOP) r->transition = tr;
}

void otpc_sm_next_state(otpc_sm_result_t *r, const char *name) {
  otpc_buf_t *s = atom_state_buf(name ? otpc_atom(name) : OTPC_ATOM_NONE);
  if (s == NULL) {
    result_bad(r, "{bad_state_name, ~s}", name ? name : "");
    return;
  }
  set_transition(r, TR_NEXT, s);
}

void otpc_sm_next_state_term(otpc_sm_result_t *r, otpc_buf_t *state) {
  if (state == NULL) {
    result_bad(r, "{bad_action_from_state_function, next_state}");
    return;
  }
  set_transition(r, TR_NEXT, state);
}

void otpc_sm_keep_state(otpc_sm_result_t *r) { set_transition(r, TR_KEEP, NULL); }

void otpc_sm_repeat_state(otpc_sm_result_t *r) {
  if (r->ctx == CTX_INIT) {
    result_bad(r, "{bad_return_from_init, repeat_state}");
    return;
  }
  set_transition(r, TR_REPEAT, NULL);
}

void otpc_sm_stop(otpc_sm_result_t *r, otpc_buf_t *reason) {
  otpc_buf_unref(r->reason);
  r->reason = reason;
  r->transition = TR_STOP;
}

void otpc_sm_ignore(otpc_sm_result_t *r) {
  if (r->ctx != CTX_INIT) {
    result_bad(r, "{bad_return_from_state_function, ignore}");
    return;
  }
  r->transition = TR_IGNORE;
}

/* {Tag, Reply}: the tag written back exactly as it came. */
static otpc_buf_t *reply_msg(const otpc_from_t *from, otpc_term_t reply) {
  otpc_builder_t b;
  otpc_builder_init(&b);
  otpc_build_tuple(&b, 2);
  otpc_term_t tag = {from->tag, 0, 1};
  otpc_build_term(&b, tag);
  otpc_build_term(&b, reply);
  return otpc_builder_finish(&b, NULL);
}

void otpc_sm_reply(otpc_sm_result_t *r, const otpc_from_t *from,
                   otpc_buf_t *reply) {
  if (from == NULL || reply == NULL || from->tag_len == 0 ||
      from->tag_len > OTPC_FROM_TAG_MAX) {
    otpc_buf_unref(reply);
    result_bad(r, "{bad_action_from_state_function, reply}");
    return;
  }
  otpc_buf_t *msg = reply_msg(from, otpc_buf_term(reply));
  otpc_buf_unref(reply);
  act_t *a = msg ? act_push(r, ACT_REPLY) : NULL;
  if (a == NULL) {
    otpc_buf_unref(msg);
    result_bad(r, "enomem");
    return;
  }
  a->to = from->pid;
  a->buf = msg;
}

void otpc_sm_replyf(otpc_sm_result_t *r, const otpc_from_t *from,
                    const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  otpc_buf_t *reply = otpc_term_vfmt(fmt, ap, NULL);
  va_end(ap);
  if (reply == NULL) {
    result_bad(r, "{bad_reply_format, ~s}", fmt);
    return;
  }
  otpc_sm_reply(r, from, reply);
}

void otpc_sm_postpone(otpc_sm_result_t *r) {
  if (r->ctx == CTX_ENTER)
    result_bad(r, "{bad_state_enter_action_from_state_function, postpone}");
  else if (r->ctx == CTX_EVENT)
    r->postpone = true; /* in init there is no event: ignored */
}

void otpc_sm_next_event(otpc_sm_result_t *r, otpc_sm_event_type_t type,
                        otpc_buf_t *content) {
  if (r->ctx == CTX_ENTER) {
    otpc_buf_unref(content);
    result_bad(r, "{bad_state_enter_action_from_state_function, next_event}");
    return;
  }
  if (type != OTPC_SM_INTERNAL && type != OTPC_SM_CAST &&
      type != OTPC_SM_INFO && type != OTPC_SM_TIMEOUT &&
      type != OTPC_SM_STATE_TIMEOUT) {
    otpc_buf_unref(content);
    result_bad(r, "{bad_action_from_state_function, {next_event, ~i}}",
               (int)type);
    return;
  }
  act_t *a = act_push(r, ACT_NEXT_EVENT);
  if (a == NULL) {
    otpc_buf_unref(content);
    return;
  }
  a->type = (uint8_t)type;
  a->buf = content;
}

static void timeout_action(otpc_sm_result_t *r, uint8_t type, otpc_atom_t name,
                           int64_t ms, otpc_buf_t *content) {
  act_t *a = act_push(r, ACT_TIMEOUT);
  if (a == NULL) {
    otpc_buf_unref(content);
    return;
  }
  a->type = type;
  a->name = name;
  a->ms = ms < 0 ? OTPC_INFINITY : ms;
  a->buf = content;
}

void otpc_sm_event_timeout(otpc_sm_result_t *r, int64_t ms,
                           otpc_buf_t *content) {
  timeout_action(r, OTPC_SM_TIMEOUT, OTPC_ATOM_NONE, ms, content);
}

void otpc_sm_state_timeout(otpc_sm_result_t *r, int64_t ms,
                           otpc_buf_t *content) {
  timeout_action(r, OTPC_SM_STATE_TIMEOUT, OTPC_ATOM_NONE, ms, content);
}

void otpc_sm_generic_timeout(otpc_sm_result_t *r, const char *name,
                             int64_t ms, otpc_buf_t *content) {
  otpc_atom_t a = name ? otpc_atom(name) : OTPC_ATOM_NONE;
  if (a == OTPC_ATOM_NONE) {
    otpc_buf_unref(content);
    result_bad(r, "{bad_action_from_state_function, {timeout, ~s}}",
               name ? name : "");
    return;
  }
  timeout_action(r, OTPC_SM_GENERIC_TIMEOUT, a, ms, content);
}

void otpc_sm_hibernate(otpc_sm_result_t *r) {
  (void)r; /* between events a handler process holds no stack at all */
}

/* ------------------------------------------------------------------------
 * Timeouts
 * ------------------------------------------------------------------------ */

/* {'$gen_statem_timeout', Seq, Type, Content} */
static otpc_buf_t *timeout_msg(uint32_t seq, uint8_t type, otpc_atom_t name,
                               otpc_buf_t *content) {
  otpc_builder_t b;
  otpc_builder_init(&b);
  otpc_build_tuple(&b, 4);
  otpc_build_atom(&b, "$gen_statem_timeout");
  otpc_build_uint(&b, seq);
  if (type == OTPC_SM_GENERIC_TIMEOUT) {
    otpc_build_tuple(&b, 2);
    otpc_build_atom_id(&b, OTPC_ATOM_TIMEOUT);
    otpc_build_atom_id(&b, name);
  } else {
    otpc_build_atom(&b, type == OTPC_SM_TIMEOUT ? "timeout" : "state_timeout");
  }
  if (content) otpc_build_term(&b, otpc_buf_term(content));
  else otpc_build_atom_id(&b, OTPC_ATOM_UNDEFINED);
  return otpc_builder_finish(&b, NULL);
}

/* The event a timeout message stands for. */
static ev_t *timeout_event(otpc_buf_t *msg, uint8_t type) {
  otpc_term_t t = otpc_buf_term(msg);
  otpc_term_t aux = none_term();
  if (type == OTPC_SM_GENERIC_TIMEOUT)
    aux = otpc_term_tuple_elem(otpc_term_tuple_elem(t, 2), 1);
  return ev_new(type, msg, otpc_term_tuple_elem(t, 3), aux);
}

static tmr_t **tmr_find(sm_t *m, uint8_t type, otpc_atom_t name) {
  tmr_t **link = &m->timers;
  while (*link != NULL && !((*link)->type == type && (*link)->name == name))
    link = &(*link)->next;
  return link;
}

static void tmr_cancel(sm_t *m, uint8_t type, otpc_atom_t name) {
  tmr_t **link = tmr_find(m, type, name), *t = *link;
  if (t == NULL) return;
  *link = t->next;
  /* If it fired already, its message is stale and dropped on arrival. */
  otpc_cancel_timer(&t->tref);
  otpc__free(t);
}

static void tmr_cancel_all(sm_t *m) {
  while (m->timers != NULL) tmr_cancel(m, m->timers->type, m->timers->name);
}

static void tmr_arm(sm_t *m, const act_t *a) {
  tmr_t *t = otpc__calloc(1, sizeof *t);
  if (++m->seq == 0) m->seq = 1;
  otpc_buf_t *msg = timeout_msg(m->seq, a->type, a->name, a->buf);
  if (t == NULL || msg == NULL ||
      otpc_send_after(a->ms, otpc_self(), msg, &t->tref) != 0) {
    otpc_buf_unref(msg);
    otpc__free(t);
    stop_machine(m, otpc_term_fmt("enomem"));
  }
  otpc_buf_unref(msg);
  t->seq = m->seq;
  t->type = a->type;
  t->name = a->name;
  t->next = m->timers;
  m->timers = t;
}

/* A zero-time timeout: its event joins the tail of the queue. */
static void tmr_queue(sm_t *m, const act_t *a) {
  otpc_buf_t *msg = timeout_msg(0, a->type, a->name, a->buf);
  ev_t *e = msg ? timeout_event(msg, a->type) : NULL;
  otpc_buf_unref(msg);
  if (e == NULL) stop_machine(m, otpc_term_fmt("enomem"));
  evq_push(&m->queue, e);
}

/* A timeout message came: the event, or NULL if it is stale. */
static ev_t *tmr_fired(sm_t *m, otpc_buf_t *msg, otpc_term_t seq_term) {
  uint64_t seq;
  if (otpc_term_get_uint64(seq_term, &seq) != 0) return NULL;
  tmr_t **link = &m->timers;
  while (*link != NULL && (*link)->seq != seq) link = &(*link)->next;
  tmr_t *t = *link;
  if (t == NULL) return NULL;
  *link = t->next;
  uint8_t type = t->type;
  otpc__free(t);
  return timeout_event(msg, type);
}

/* Whether a later action sets the same timeout: the last one wins. */
static bool superseded(const otpc_sm_result_t *r, size_t i) {
  for (size_t j = i + 1; j < r->n; j++)
    if (r->acts[j].kind == ACT_TIMEOUT && r->acts[j].type == r->acts[i].type &&
        r->acts[j].name == r->acts[i].name)
      return true;
  return false;
}

/* Step 7: the timeouts a transition asked for, in order. */
static void set_timeouts(sm_t *m, otpc_sm_result_t *r) {
  const act_t *event_timeout = NULL;
  for (size_t i = 0; i < r->n; i++) {
    const act_t *a = &r->acts[i];
    if (a->kind != ACT_TIMEOUT || superseded(r, i)) continue;
    if (a->type == OTPC_SM_TIMEOUT) {
      /* A queued event would cancel it at once: only when none is. */
      if (m->queue.head != NULL || a->ms < 0) continue;
      if (a->ms == 0) tmr_queue(m, a);
      else event_timeout = a;
      continue;
    }
    tmr_cancel(m, a->type, a->name); /* setting a running one restarts it */
    if (a->ms == 0) tmr_queue(m, a);
    else if (a->ms > 0) tmr_arm(m, a);
  }
  if (event_timeout != NULL && m->queue.head == NULL) tmr_arm(m, event_timeout);
}

/* ------------------------------------------------------------------------
 * The end
 * ------------------------------------------------------------------------ */

/* One proc_lib crash report, with what gen_statem's own report tells:
 * the state, the data (as format_status shows it), the event it was
 * handling, how many it had postponed. Nothing for normal ends. It runs
 * before terminate, which may free the data format_status looks at. */
static void crash_report(sm_t *m, otpc_term_t reason) {
  if (!otpc__is_crash(reason) || !otpc_logger_allow(OTPC_LEVEL_ERROR)) return;
  otpc_proc_info_t info;
  otpc_pid_t self = otpc_self();
  memset(&info, 0, sizeof info);
  otpc_process_info(self, &info);
  otpc_buf_t *status = NULL;
  if (m->cb->format_status && m->state)
    status = m->cb->format_status(otpc_buf_term(m->state), m->data);
  const ev_t *ev = m->active ? m->active->ev : NULL;
  otpc_builder_t b;
  otpc_builder_init(&b);
  otpc_build_list(&b, 5 + (status != NULL) + (ev != NULL));
  otpc_build_fmt(&b, "{initial_call, {~a, init, 1}}",
                 m->cb->name ? m->cb->name : "gen_statem");
  if (info.registered_name != OTPC_ATOM_NONE)
    otpc_build_fmt(&b, "{registered_name, ~A}", info.registered_name);
  else
    otpc_build_fmt(&b, "{registered_name, []}");
  otpc_build_fmt(&b, "{callback_mode, ~a}",
                 m->cb->callback_mode == OTPC_SM_HANDLE_EVENT_FUNCTION
                     ? "handle_event_function"
                     : "state_functions");
  otpc_build_tuple(&b, 2);
  otpc_build_atom(&b, "state");
  if (m->state) otpc_build_term(&b, otpc_buf_term(m->state));
  else otpc_build_atom_id(&b, OTPC_ATOM_UNDEFINED);
  if (status != NULL) {
    otpc_build_tuple(&b, 2);
    otpc_build_atom(&b, "data");
    otpc_build_term(&b, otpc_buf_term(status));
  }
  if (ev != NULL) {
    otpc_build_tuple(&b, 2);
    otpc_build_atom(&b, "last_event");
    otpc_build_tuple(&b, 2);
    build_event_type(&b, ev->type, ev->aux);
    otpc_build_term(&b, ev->content);
  }
  otpc_build_fmt(&b, "{postponed, ~u}", (uint64_t)evq_len(&m->postponed));
  otpc_build_nil(&b);
  otpc_buf_t *extra = otpc_builder_finish(&b, NULL);
  otpc_buf_unref(status);
  otpc_term_t x = extra ? otpc_buf_term(extra) : none_term();
  otpc_logger_crash_report(self, reason, extra ? &x : NULL);
  otpc_buf_unref(extra);
}

/* Reports a crash and runs terminate, once, however the machine ends. */
static void terminate_once(sm_t *m, otpc_term_t reason) {
  if (m->flags & SM_TERMINATED) return;
  m->flags |= SM_TERMINATED;
  crash_report(m, reason);
  if (m->cb->terminate) {
    otpc_term_t state = m->state ? otpc_buf_term(m->state) : none_term();
    m->flags |= SM_IN_CALLBACK;
    m->cb->terminate(reason, state, &m->data);
    m->flags &= ~SM_IN_CALLBACK;
  }
}

/* Ends the machine: terminate, then exit with reason (normal if NULL),
 * whose buffer becomes the exit reason. What it holds is freed by
 * sm_cleanup, which runs however the process ends. */
static _Noreturn void stop_machine(sm_t *m, otpc_buf_t *reason) {
  otpc_buf_t *why = reason ? reason : otpc__atom_buf(OTPC_ATOM_NORMAL);
  tmr_cancel_all(m);
  terminate_once(m, otpc_buf_term(why));
  otpc__proc_t *p = otpc__current();
  otpc_buf_unref(p->exit_reason);
  p->exit_reason = why;
  otpc__exit_current(p);
}

/* ------------------------------------------------------------------------
 * Callbacks and transitions
 * ------------------------------------------------------------------------ */

static bool same_term(otpc_buf_t *a, otpc_buf_t *b) {
  return a == b || otpc_term_equal(otpc_buf_term(a), otpc_buf_term(b));
}

/* The callback for the current state; ends the machine if there is none. */
static otpc_sm_callback_t state_callback(sm_t *m) {
  const otpc_gen_statem_t *cb = m->cb;
  if (cb->callback_mode == OTPC_SM_HANDLE_EVENT_FUNCTION)
    return cb->handle_event;
  if (m->state_ix < 0) {
    otpc_term_t s = otpc_buf_term(m->state);
    for (size_t i = 0; i < cb->nstates; i++) {
      const char *name = cb->states[i].name;
      if (name && cb->states[i].fn && otpc_term_atom_eq(s, name, strlen(name))) {
        m->state_ix = (int32_t)i;
        break;
      }
    }
  }
  if (m->state_ix < 0)
    stop_machine(m, otpc_term_fmt("{undef_state, ~t}", otpc_buf_term(m->state)));
  return cb->states[m->state_ix].fn;
}

static void run_callback(sm_t *m, otpc_sm_event_t *e, otpc_sm_result_t *r) {
  otpc_sm_callback_t fn = state_callback(m);
  e->state = otpc_buf_term(m->state);
  m->flags |= SM_IN_CALLBACK;
  fn(e, &m->data, r);
  m->flags &= ~SM_IN_CALLBACK;
}

/* The new state (taken); the current one if they are equal. */
static void set_state(sm_t *m, otpc_buf_t *s) {
  if (m->state != NULL && same_term(m->state, s)) {
    otpc_buf_unref(s);
    return;
  }
  otpc_buf_unref(m->state);
  m->state = s;
  m->state_ix = -1;
}

/* Step 3: what one callback said, up to the new state. Returns whether
 * the state enter call is (again) due because of repeat_state. */
static bool settle_callback(sm_t *m, otpc_sm_result_t *r) {
  for (size_t i = 0; i < r->n; i++) {
    act_t *a = &r->acts[i];
    if (a->kind != ACT_REPLY) continue;
    /* {Tag, Reply}: to the caller's alias for [alias | Alias] (OTP 24
     * and later), so a reply after the caller gave up is dropped. */
    otpc_ref_t alias;
    if (otpc_tag_alias(otpc_term_tuple_elem(otpc_buf_term(a->buf), 0),
                       &alias)) {
      otpc_send_alias(&alias, a->buf);
      otpc_buf_unref(a->buf);
    } else {
      otpc__send_owned(a->to, a->buf);
    }
    a->buf = NULL;
    a->kind = ACT_DONE;
  }
  if (r->bad != NULL) {
    otpc_buf_t *why = r->bad;
    r->bad = NULL;
    stop_machine(m, why);
  }
  uint8_t tr = r->transition;
  r->transition = TR_KEEP;
  if (tr == TR_STOP) {
    otpc_buf_t *why = r->reason;
    r->reason = NULL;
    stop_machine(m, why);
  }
  if (tr == TR_NEXT) {
    otpc_buf_t *s = r->state;
    r->state = NULL;
    if (r->ctx == CTX_ENTER && !same_term(s, m->state)) {
      otpc_buf_t *why = otpc_term_fmt(
          "{bad_state_enter_return_from_state_function, {next_state, ~t}}",
          otpc_buf_term(s));
      otpc_buf_unref(s);
      stop_machine(m, why);
    }
    set_state(m, s);
  }
  return tr == TR_REPEAT;
}

/* Step 6: next_event events to the head of the queue, in order. */
static void insert_next_events(sm_t *m, otpc_sm_result_t *r) {
  evq_t front = {NULL, NULL};
  for (size_t i = 0; i < r->n; i++) {
    act_t *a = &r->acts[i];
    if (a->kind != ACT_NEXT_EVENT) continue;
    otpc_buf_t *content = a->buf ? a->buf : otpc__atom_buf(OTPC_ATOM_UNDEFINED);
    ev_t *e = content ? ev_new(a->type, content, otpc_buf_term(content), none_term())
                      : NULL;
    otpc_buf_unref(content);
    a->buf = NULL;
    a->kind = ACT_DONE;
    if (e == NULL) {
      evq_prepend(&m->queue, &front); /* freed with the machine */
      stop_machine(m, otpc_term_fmt("enomem"));
    }
    evq_push(&front, e);
  }
  evq_prepend(&m->queue, &front);
}

/* Steps 3 to 7 for a result filled by init or by an event's callback. */
static void transition(sm_t *m, otpc_sm_result_t *r) {
  bool first = r->ctx == CTX_INIT;
  bool repeat = settle_callback(m, r);
  if (m->cb->state_enter) {
    /* The old state the enter call gets: the one before the event, or
     * the state itself for the first state and for repeat_state. */
    otpc_buf_t *old = first ? m->state : r->old;
    bool enter = first || repeat || !same_term(old, m->state);
    while (enter) {
      if (repeat) old = m->state;
      r->ctx = CTX_ENTER;
      otpc_sm_event_t e = {.type = OTPC_SM_ENTER, .content = otpc_buf_term(old)};
      run_callback(m, &e, r);
      repeat = enter = settle_callback(m, r);
    }
  }
  bool changed = !first && !same_term(r->old, m->state);
  ev_t *ev = r->ev;
  r->ev = NULL;
  if (ev != NULL && r->postpone) evq_push(&m->postponed, ev);
  else ev_free(ev);
  if (changed) {
    evq_prepend(&m->queue, &m->postponed); /* retried, oldest first */
    tmr_cancel(m, OTPC_SM_STATE_TIMEOUT, OTPC_ATOM_NONE);
  }
  insert_next_events(m, r);
  set_timeouts(m, r);
}

/* Steps 1 and 2: one event through the current state's callback. */
static void dispatch(sm_t *m, ev_t *ev) {
  tmr_cancel(m, OTPC_SM_TIMEOUT, OTPC_ATOM_NONE); /* any event cancels it */
  otpc_sm_result_t *r = result_new(m, CTX_EVENT);
  if (r == NULL) {
    ev_free(ev);
    stop_machine(m, otpc_term_fmt("enomem"));
  }
  r->ev = ev;
  r->old = otpc_buf_ref(m->state);
  otpc_from_t from;
  otpc_sm_event_t e = {.type = (otpc_sm_event_type_t)ev->type,
                       .content = ev->content};
  if (ev->type == OTPC_SM_CALL && otpc__from_take(ev->aux, &from))
    e.from = &from; /* checked when the call came */
  if (ev->type == OTPC_SM_GENERIC_TIMEOUT) e.name = ev->aux;
  run_callback(m, &e, r);
  transition(m, r);
  result_free(m, r);
}

/* Runs the queue, up to the budget; then asks to be woken to go on. */
static void run_queue(sm_t *m) {
  for (int budget = SM_BUDGET; budget > 0; budget--) {
    ev_t *ev = evq_pop(&m->queue);
    if (ev == NULL) return;
    dispatch(m, ev);
  }
  if (m->queue.head != NULL && !(m->flags & SM_RESUMING)) {
    otpc_buf_t *resume = otpc_term_fmt("'$gen_statem_resume'");
    if (resume == NULL) stop_machine(m, otpc_term_fmt("enomem"));
    otpc_send(otpc_self(), resume);
    otpc_buf_unref(resume);
    m->flags |= SM_RESUMING;
  }
}

/* ------------------------------------------------------------------------
 * The state machine process
 * ------------------------------------------------------------------------ */

/* init's stop or failure: the starter is told, the process exits with
 * the reason; no terminate, as in OTP, but a crash is reported. */
static _Noreturn void init_failed(sm_t *m, const otpc__start_t *st,
                                  otpc_buf_t *reason) {
  crash_report(m, otpc_buf_term(reason)); /* logged when start returns */
  otpc__start_ack(st, "{error, ~t}", otpc_buf_term(reason));
  otpc__proc_t *p = otpc__current();
  otpc_buf_unref(p->exit_reason);
  p->exit_reason = reason;
  otpc__exit_current(p);
}

static int sm_init(void *arg, void **state) {
  start_ctx_t *c = arg;
  otpc__start_t st = c->st;
  const otpc_gen_statem_t *cb = c->cb;
  void *user_arg = c->arg;
  otpc__code_bind_t *bind = c->bind;
  otpc__free(c);
  if (bind != NULL && !bind->ops->attach(bind, otpc_self())) return OTPC_STOP;
  sm_t *m = otpc__calloc(1, sizeof *m);
  if (m == NULL) {
    if (bind != NULL) bind->ops->release(bind);
    otpc__start_ack(&st, "{error, enomem}");
    return OTPC_STOP;
  }
  m->cb = cb;
  m->bind = bind;
  m->parent_id = st.starter.id;
  m->parent_serial = st.starter.serial;
  m->state_ix = -1;
  m->flags = (st.link ? SM_LINKED : 0) | SM_IN_INIT;
  *state = m;
  if (!otpc__start_register(&st)) return OTPC_STOP;
  otpc_sm_result_t *r = result_new(m, CTX_INIT);
  if (r == NULL) init_failed(m, &st, otpc_term_fmt("enomem"));
  m->flags |= SM_IN_CALLBACK;
  cb->init(user_arg, &m->data, r);
  m->flags &= ~SM_IN_CALLBACK;
  if (r->transition == TR_IGNORE) {
    otpc__start_ack(&st, "ignore");
    result_free(m, r);
    return OTPC_STOP;
  }
  if (r->transition == TR_STOP) {
    otpc_buf_t *why = r->reason ? r->reason : otpc__atom_buf(OTPC_ATOM_NORMAL);
    r->reason = NULL;
    init_failed(m, &st, why);
  }
  if (r->bad != NULL || r->transition != TR_NEXT) {
    otpc_buf_t *why = r->bad ? r->bad : otpc_term_fmt("{bad_return_from_init, no_state}");
    r->bad = NULL;
    init_failed(m, &st, why);
  }
  m->state = r->state;
  r->state = NULL;
  r->transition = TR_KEEP;
  m->flags &= ~SM_IN_INIT;
  otpc__start_ack(&st, "ok");
  /* As gen_statem does after init_ack: the first enter call, then the
   * actions of init. */
  transition(m, r);
  result_free(m, r);
  run_queue(m);
  return OTPC_CONTINUE;
}

/* ------------------------------------------------------------------------
 * Hot code and system messages
 * ------------------------------------------------------------------------ */

/* Moves a bound machine to its module's current version: the new table's
 * code_change(OldVsn, State, Data, Extra), OldVsn being the running
 * version's vsn unless old_vsn is given (kind 0: not). 0 if it moved, 1
 * if it runs the current version already; else it keeps the version it
 * runs. */
static int move_code(sm_t *m, otpc_term_t old_vsn, otpc_term_t extra) {
  const void *next;
  otpc_buf_t *running_vsn = NULL;
  int rc = m->bind->ops->begin(m->bind, &next, &running_vsn);
  if (rc != 0) return rc; /* 1: it runs the current version */
  const otpc_gen_statem_t *cb = next;
  if (!table_ok(cb) || cb->callback_mode != m->cb->callback_mode) rc = OTPC_EINVAL;
  otpc_buf_t *undef = NULL;
  if (extra.kind == 0) {
    undef = otpc__atom_buf(OTPC_ATOM_UNDEFINED);
    extra = otpc_buf_term(undef);
  }
  if (old_vsn.kind == 0) old_vsn = otpc_buf_term(running_vsn);
  if (rc == 0 && cb->code_change != NULL) {
    m->flags |= SM_IN_CALLBACK;
    rc = cb->code_change(old_vsn, &m->state, &m->data, extra);
    m->flags &= ~SM_IN_CALLBACK;
  }
  m->bind->ops->finish(m->bind, rc == 0);
  if (rc == 0) {
    m->cb = cb;
    m->state_ix = -1; /* the new table has its own order */
  }
  otpc_buf_unref(undef);
  otpc_buf_unref(running_vsn);
  return rc;
}

static int sm_sys_change_code(void *self, otpc_atom_t module,
                              otpc_term_t old_vsn, otpc_term_t extra,
                              otpc_buf_t **why) {
  sm_t *m = self;
  /* Bound to module: move to its current version, even one whose
   * code_change failed at a dispatch before (sys retries it). */
  if (m->bind != NULL && m->bind->ops->module(m->bind) == module) {
    int rc = move_code(m, old_vsn, extra);
    if (rc != 1) return rc;
  }
  int rc = 0;
  if (m->cb->code_change != NULL) {
    m->flags |= SM_IN_CALLBACK;
    rc = m->cb->code_change(old_vsn, &m->state, &m->data, extra);
    m->flags &= ~SM_IN_CALLBACK;
    m->state_ix = -1;
  }
  return rc;
}

static void sm_sys_terminate(void *self, otpc_buf_t *reason) {
  stop_machine(self, reason);
}

static bool is_parent(const sm_t *m, otpc_pid_t who) {
  return who.id == m->parent_id && who.serial == m->parent_serial &&
         who.node == otpc_node_name();
}

static bool sm_is_parent_exit(void *self, otpc_term_t msg) {
  sm_t *m = self;
  otpc_pid_t who;
  return (m->flags & SM_LINKED) &&
         otpc_term_get_pid(otpc_term_tuple_elem(msg, 1), &who) == 0 &&
         is_parent(m, who);
}

static const otpc__sys_ops_t sm_sys_ops = {sm_sys_change_code,
                                           sm_sys_terminate, sm_is_parent_exit};

/* Messages the machine acts on itself rather than make events of: system
 * messages (sys.c) and its parent's exit. Returns whether msg was one. */
static bool system_message(sm_t *m, otpc_term_t tag, otpc_term_t e2) {
  if (otpc_term_atom_eq(tag, "system", 6)) {
    otpc__sys_handle(&sm_sys_ops, m, e2, otpc_term_next(e2));
    return true;
  }
  if (otpc_term_is_atom(tag, OTPC_ATOM_EXIT) && (m->flags & SM_LINKED)) {
    /* The parent's exit, while trapping: terminate with its reason. */
    otpc_pid_t who;
    if (otpc_term_get_pid(e2, &who) == 0 && is_parent(m, who))
      stop_machine(m, otpc__term_copy(otpc_term_next(e2)));
  }
  return false;
}

/* An event, or the end of the machine if there is no memory for it. */
static ev_t *must(sm_t *m, ev_t *ev) {
  if (ev == NULL) stop_machine(m, otpc_term_fmt("enomem"));
  return ev;
}

/* The event a message stands for; NULL for none (stale, dropped). */
static ev_t *message_event(sm_t *m, otpc_buf_t *msg) {
  otpc_term_t t = otpc_buf_term(msg), e1, e2;
  size_t arity = 0;
  otpc_term_get_tuple(t, &arity, &e1);
  e2 = arity >= 2 ? otpc_term_next(e1) : e1;
  if (arity == 4 && otpc_term_atom_eq(e1, "$gen_statem_timeout", 19))
    return tmr_fired(m, msg, e2);
  if (arity == 3 && otpc_term_atom_eq(e1, "$gen_call", 9)) {
    otpc_from_t from;
    if (!otpc__from_take(e2, &from)) return NULL; /* no way to answer */
    return must(m, ev_new(OTPC_SM_CALL, msg, otpc_term_next(e2), e2));
  }
  if (arity == 2 && otpc_term_atom_eq(e1, "$gen_cast", 9))
    return must(m, ev_new(OTPC_SM_CAST, msg, e2, none_term()));
  if (arity == 3 && system_message(m, e1, e2)) return NULL;
  if ((m->flags & SM_RESUMING) && otpc_term_atom_eq(t, "$gen_statem_resume", 18)) {
    m->flags &= ~SM_RESUMING;
    return NULL; /* the queue goes on below */
  }
  return must(m, ev_new(OTPC_SM_INFO, msg, t, none_term()));
}

static int sm_handle(void *state, otpc_buf_t *msg) {
  sm_t *m = state;
  /* A newer version of its module: move before this message. */
  if (m->bind != NULL && m->bind->ops->stale(m->bind)) {
    otpc_term_t none = {NULL, 0, 0};
    move_code(m, none, none);
  }
  ev_t *ev = message_event(m, msg);
  if (ev != NULL) evq_push(&m->queue, ev);
  run_queue(m);
  return OTPC_CONTINUE;
}

/* The handler's terminate: runs however the process ends; frees ours. */
static void sm_cleanup(void *state, otpc_term_t reason) {
  sm_t *m = state;
  if (m == NULL) return;
  tmr_cancel_all(m);
  /* A callback ended the process (otpc_exit from inside): OTP catches
   * that and calls terminate (not for init: a report only). Not for
   * 'killed', which no code sees. */
  bool from_code = (m->flags & SM_IN_CALLBACK) &&
                   !otpc_term_is_atom(reason, OTPC_ATOM_KILLED);
  if (from_code && (m->flags & SM_IN_INIT)) crash_report(m, reason);
  else if (from_code) terminate_once(m, reason);
  result_free(m, m->active);
  evq_free(&m->queue);
  evq_free(&m->postponed);
  otpc_buf_unref(m->state);
  if (m->bind != NULL) m->bind->ops->release(m->bind);
  otpc__free(m);
}

static const otpc_handler_t sm_handler = {sm_init, sm_handle, sm_cleanup};

/* ------------------------------------------------------------------------
 * Client side: gen_server's protocol, so gen_server's functions
 * ------------------------------------------------------------------------ */

static bool table_ok(const otpc_gen_statem_t *cb) {
  if (cb == NULL || cb->init == NULL) return false;
  if (cb->callback_mode == OTPC_SM_HANDLE_EVENT_FUNCTION)
    return cb->handle_event != NULL;
  return cb->callback_mode == OTPC_SM_STATE_FUNCTIONS && cb->states != NULL &&
         cb->nstates > 0 && cb->nstates <= INT32_MAX;
}

int otpc_gen_statem_start(const otpc_gen_statem_t *cb, void *arg,
                          const otpc_sm_opts_t *opts, otpc_pid_t *pid,
                          otpc_buf_t **reason) {
  return otpc__gen_statem_start_bound(cb, NULL, arg, opts, pid, reason);
}

int otpc__gen_statem_start_bound(const otpc_gen_statem_t *cb,
                                 otpc__code_bind_t *bind, void *arg,
                                 const otpc_gs_opts_t *opts, otpc_pid_t *pid,
                                 otpc_buf_t **reason) {
  if (reason) *reason = NULL;
  if (!table_ok(cb)) return OTPC_EINVAL;
  if (otpc__current() == NULL) return OTPC_ENOTPROC;
  start_ctx_t *c = otpc__calloc(1, sizeof *c);
  if (c == NULL) return OTPC_ENOMEM;
  c->cb = cb;
  c->bind = bind;
  c->arg = arg;
  return otpc__start_handler(&sm_handler, c, &c->st, opts,
                             cb->name ? cb->name : "gen_statem", pid, reason);
}

int otpc_gen_statem_call(otpc_pid_t sm, otpc_buf_t *request,
                         int64_t timeout_ms, otpc_buf_t **reply) {
  return otpc_gen_server_call(sm, request, timeout_ms, reply);
}

int otpc_gen_statem_call_name(otpc_atom_t name, otpc_buf_t *request,
                              int64_t timeout_ms, otpc_buf_t **reply) {
  return otpc_gen_server_call_name(name, request, timeout_ms, reply);
}

int otpc_gen_statem_cast(otpc_pid_t sm, otpc_buf_t *msg) {
  return otpc_gen_server_cast(sm, msg);
}

int otpc_gen_statem_cast_name(otpc_atom_t name, otpc_buf_t *msg) {
  return otpc_gen_server_cast_name(name, msg);
}

int otpc_gen_statem_reply(const otpc_from_t *from, otpc_buf_t *reply) {
  return otpc_gen_server_reply(from, reply);
}

int otpc_gen_statem_stop(otpc_pid_t sm, otpc_buf_t *reason,
                         int64_t timeout_ms) {
  return otpc_gen_server_stop(sm, reason, timeout_ms);
}
