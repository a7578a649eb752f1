/*
 * process.c: the public process API: spawning, sending, receiving, links,
 * monitors, exits, references.
 *
 * Functions that act for "the calling process" find it through the
 * scheduler thread they run on (otpc__current()); called from a plain
 * thread they return OTPC_ENOTPROC, except sending, which works from
 * anywhere (the sender is then 'undefined').
 */
#include "rt_int.h"

#define MAX_BINDS 64


static otpc_pid_t undefined_pid(void) {
  otpc_pid_t pid = {OTPC_ATOM_UNDEFINED, 0, 0, 0};
  return pid;
}

otpc_pid_t otpc_self(void) {
  otpc__proc_t *p = otpc__current();
  return p ? otpc__proc_pid(p) : undefined_pid();
}

bool otpc_is_alive(otpc_pid_t pid) {
  otpc__reclaim_enter();
  otpc__proc_t *p = otpc__proc_lookup(pid);
  bool alive = p != NULL;
  otpc__reclaim_exit();
  return alive;
}

/* Each scheduler takes refs from the node's counter a block at a time:
 * one atomic add per block, not a line the schedulers pass back and forth
 * with every call's monitor. Unique all the same; the order between
 * schedulers is not creation order, which Erlang does not promise either. */
#define REF_BLOCK 4096

otpc_ref_t otpc_make_ref(void) {
  otpc__sched_t *s = otpc__self_sched;
  uint64_t n;
  if (s != NULL) {
    if (s->ref_next == s->ref_end) {
      s->ref_next = atomic_fetch_add_explicit(&otpc__rt.next_ref, REF_BLOCK,
                                              memory_order_relaxed);
      s->ref_end = s->ref_next + REF_BLOCK;
    }
    n = s->ref_next++;
  } else {
    n = atomic_fetch_add_explicit(&otpc__rt.next_ref, 1, memory_order_relaxed);
  }
  otpc_ref_t ref = {otpc__rt.name, otpc__rt.creation, 3, {0}};
  ref.id[0] = (uint32_t)n & 0x3ffff; /* Erlang keeps 18 bits in word 0 */
  ref.id[1] = (uint32_t)(n >> 18);
  ref.id[2] = (uint32_t)(n >> 50);
  return ref;
}

/* ------------------------------------------------------------------------
 * Spawning
 * ------------------------------------------------------------------------ */

/* Counts n reductions; a sequential process that used its turn's budget
 * lets others run. Handlers yield between messages instead. */
static void spend_n(otpc__proc_t *p, uint64_t n) {
  if (p == NULL) return;
  p->reductions += n;
  if (p->reductions - otpc__self_sched->turn_start >= OTPC__REDUCTIONS &&
      !(p->flags & PF_HANDLER))
    otpc__suspend(p, WHY_YIELD);
}

static void spend(otpc__proc_t *p) { spend_n(p, 1); }

static int spawn_common(otpc__proc_t *p, const otpc_spawn_opts_t *opts,
                        otpc_pid_t *out) {
  otpc__proc_t *parent = otpc__current();
  otpc_pid_t pid = otpc__proc_pid(p);
  if (opts && (opts->link || opts->monitor) && parent == NULL)
    return OTPC_ENOTPROC;
  if (opts && opts->link) {
    if (otpc__link_add(p, otpc__proc_pid(parent)) != 0 ||
        otpc__link_add(parent, pid) != 0)
      return OTPC_ENOMEM;
  }
  if (opts && opts->monitor) {
    otpc_ref_t ref = otpc_make_ref();
    if (otpc__mon_add(p, &ref, otpc__proc_pid(parent), MON_WATCHED, NULL) ||
        otpc__mon_add(parent, &ref, pid, MON_WATCHING, NULL))
      return OTPC_ENOMEM;
    if (opts->monitor_ref) *opts->monitor_ref = ref;
  }
  if (otpc__rt.contain_signals || (opts && opts->contain_signals))
    p->flags |= PF_CONTAIN; /* fault.c */
  if (out) *out = pid;
  otpc__proc_publish(p); /* queued by us, not by a sender (otpc__proc_new) */
  otpc__spawn_place(p);
  spend(parent); /* spawning counts as work: a spawning loop yields too */
  return 0;
}


int otpc_spawn(void (*fn)(void *), void *arg, const otpc_spawn_opts_t *opts,
               otpc_pid_t *pid) {
  if (!atomic_load(&otpc__rt.running)) return OTPC_ESTATE;
  if (fn == NULL) return OTPC_EINVAL;
  otpc__proc_t *p;
  int rc = otpc__proc_new(&p, opts);
  if (rc != 0) return rc;
  p->u.seq.fn = fn;
  p->u.seq.arg = arg;
  rc = spawn_common(p, opts, pid);
  if (rc != 0) otpc__proc_undo(p);
  return rc;
}

int otpc_spawn_handler(const otpc_handler_t *h, void *arg,
                       const otpc_spawn_opts_t *opts, otpc_pid_t *pid) {
  if (!atomic_load(&otpc__rt.running)) return OTPC_ESTATE;
  if (h == NULL || h->handle == NULL) return OTPC_EINVAL;
  otpc__proc_t *p;
  int rc = otpc__proc_new(&p, opts);
  if (rc != 0) return rc;
  p->flags |= PF_HANDLER;
  p->u.handler.h = h;
  p->h.init_arg = arg;
  rc = spawn_common(p, opts, pid);
  if (rc != 0) otpc__proc_undo(p);
  return rc;
}

/* ------------------------------------------------------------------------
 * Sending
 * ------------------------------------------------------------------------ */

void otpc_yield(void) {
  otpc__proc_t *p = otpc__current();
  if (p == NULL) return;
  p->reductions++;
  otpc__suspend(p, WHY_YIELD);
}

int otpc_send(otpc_pid_t to, otpc_buf_t *msg) {
  if (msg == NULL) return OTPC_EINVAL;
  return otpc__send_owned(to, otpc_buf_ref(msg));
}

int otpc__send_owned(otpc_pid_t to, otpc_buf_t *msg) {
  return otpc__send_owned_flagged(to, msg, 0);
}

int otpc__send_owned_flagged(otpc_pid_t to, otpc_buf_t *msg, uint16_t flags) {
  if (msg == NULL) return OTPC_EINVAL;
  otpc__sig_t *sig = NULL;
  int rc = 0;
  if (!otpc__pid_is_local(to) && atomic_load(&otpc__remote_route) == NULL)
    rc = OTPC_ENOPROC; /* dist: no route to other nodes */
  else if ((sig = otpc__sig_new_msg()) == NULL)
    rc = OTPC_ENOMEM;
  if (rc != 0) {
    otpc_buf_unref(msg);
    return rc;
  }
  sig->buf = msg;
  sig->flags = flags;
  otpc__proc_t *self = otpc__current();
  sig->from = self ? otpc__proc_pid(self) : undefined_pid();
  /* As in Erlang, a send costs the sender as many reductions as the
   * receiver has messages waiting: a flood slows down to the pace at
   * which the receiver can take it, and its mailbox stays bounded. */
  uint32_t backlog = otpc__deliver_pid(to, sig);
  spend_n(self, 1 + (uint64_t)backlog);
  return 0;
}

int otpc_send_alias(const otpc_ref_t *alias, otpc_buf_t *msg) {
  if (alias == NULL || msg == NULL) return OTPC_EINVAL;
  otpc__proc_t *self = otpc__current();
  otpc_pid_t from = self ? otpc__proc_pid(self) : undefined_pid();
  if (alias->node == otpc__rt.name) { /* alias.c; costs as otpc_send */
    uint32_t backlog = otpc__alias_deliver(alias, otpc_buf_ref(msg), from);
    spend_n(self, 1 + (uint64_t)backlog);
    return 0;
  }
  otpc__alias_route_fn route =
      atomic_load_explicit(&otpc__alias_route, memory_order_acquire);
  if (route == NULL) return 0; /* unreachable: dropped, as to a dead pid */
  route(alias, otpc_buf_ref(msg), from);
  spend(self);
  return 0;
}

int otpc_sendf(otpc_pid_t to, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc;
  otpc_buf_t *msg = otpc_term_vfmt(fmt, ap, &rc);
  va_end(ap);
  if (msg == NULL) return rc;
  rc = otpc_send(to, msg);
  otpc_buf_unref(msg);
  return rc;
}

/* ------------------------------------------------------------------------
 * Receiving
 * ------------------------------------------------------------------------ */

static void stop_wait(otpc__proc_t *p, bool armed) {
  if (armed) otpc__wheel_cancel(&otpc__self_sched->wheel, &p->ext->wait_timer);
  p->flags &= (uint16_t)~PF_TIMEDOUT;
  p->mq_save = &p->mq_first;
}

/* Takes message *pp out of the private queue. */
static otpc__sig_t *unlink_message(otpc__proc_t *p, otpc__sig_t **pp) {
  otpc__sig_t *m = *pp;
  otpc__sig_t *next =
      (otpc__sig_t *)atomic_load_explicit(&m->link.next, memory_order_relaxed);
  *pp = next;
  if (next == NULL) p->mq_last = pp;
  otpc__mq_len_set(p, p->mq_len - 1);
  return m;
}

/*
 * The one receive. Scans the private queue from where this receive last
 * stopped (mq_save), so messages already looked at are not matched again
 * when new ones arrive: waiting for one reply among many messages stays
 * linear. binds is used with a single pattern only.
 */
typedef struct matcher {
  const otpc_pattern_t *const *pats; /* patterns, or */
  size_t npats;
  void *const *binds;
  bool (*accept)(otpc_term_t, void *); /* a predicate */
  void *ctx;
  uint16_t *flags; /* if not NULL: the node's flags of the one received */
} matcher_t;

/* Which of the patterns (or the predicate) accepts msg, or -1. */
static long match_one(const matcher_t *m, const otpc_buf_t *msg) {
  if (m->accept != NULL) return m->accept(otpc_buf_term(msg), m->ctx) ? 0 : -1;
  if (m->npats > 0 && m->pats[0] == NULL) return 0; /* anything */
  otpc_term_t t = otpc_buf_term(msg);
  for (size_t i = 0; i < m->npats; i++)
    if (m->pats[i] == NULL || otpc_match_v(m->pats[i], t, m->binds) == 1)
      return (long)i;
  return -1;
}

static int receive_core(const matcher_t *mt, int64_t timeout_ms,
                        size_t *which, otpc_buf_t **msg) {
  otpc__proc_t *p = otpc__current();
  if (p == NULL) return OTPC_ENOTPROC;
  int64_t deadline = timeout_ms > 0 ? otpc_now_ms() + timeout_ms : 0;
  bool armed = false;
  p->mq_save = &p->mq_first;
  p->flags &= (uint16_t)~PF_TIMEDOUT;
  spend(p);
  for (;;) {
    if (!otpc__take_inbox(p)) {
      stop_wait(p, armed);
      otpc__exit_current(p);
    }
    for (otpc__sig_t **pp = p->mq_save; *pp != NULL;) {
      long i = match_one(mt, (*pp)->buf);
      if (i >= 0) {
        otpc__sig_t *m = unlink_message(p, pp);
        stop_wait(p, armed);
        /* A handler's call, received here: its monitor now (signal.c). */
        if (OTPC_UNLIKELY(m->flags & SIGF_MON_PENDING) &&
            !otpc__mon_pending_make(p, m)) {
          otpc__sig_free(m);
          otpc__exit_current(p);
        }
        if (mt->flags) *mt->flags = m->flags;
        if (which) *which = (size_t)i;
        *msg = m->buf; /* handed over with the node's reference */
        otpc__sig_dealloc(m);
        return 0;
      }
      pp = (otpc__sig_t **)&(*pp)->link.next;
      p->mq_save = pp;
    }
    if (timeout_ms == 0 || (p->flags & PF_TIMEDOUT)) {
      stop_wait(p, armed);
      return OTPC_ETIMEDOUT;
    }
    if (deadline > 0 && !armed) {
      otpc__proc_ext_t *x = otpc__proc_ext(p);
      if (x == NULL) return OTPC_ENOMEM;
      otpc__wheel_add(&otpc__self_sched->wheel, &x->wait_timer, deadline);
      armed = true;
    }
    p->flags |= PF_WAITING;
    otpc__suspend(p, WHY_BLOCKED);
    p->flags &= (uint16_t)~PF_WAITING;
  }
}

int otpc_receive(const otpc_pattern_t *pattern, int64_t timeout_ms,
                 otpc_buf_t **msg, ...) {
  void *binds[MAX_BINDS];
  size_t n = pattern ? otpc_pattern_binds(pattern) : 0;
  if (n > MAX_BINDS || msg == NULL) return OTPC_EINVAL;
  va_list ap;
  va_start(ap, msg);
  for (size_t i = 0; i < n; i++) binds[i] = va_arg(ap, void *);
  va_end(ap);
  const otpc_pattern_t *pats[1] = {pattern};
  matcher_t mt = {pats, 1, binds, NULL, NULL, NULL};
  return receive_core(&mt, timeout_ms, NULL, msg);
}

int otpc_receive_fn(bool (*accept)(otpc_term_t msg, void *ctx), void *ctx,
                    int64_t timeout_ms, otpc_buf_t **msg) {
  if (accept == NULL || msg == NULL) return OTPC_EINVAL;
  matcher_t mt = {NULL, 0, NULL, accept, ctx, NULL};
  return receive_core(&mt, timeout_ms, NULL, msg);
}

int otpc__receive_fn_flags(bool (*accept)(otpc_term_t msg, void *ctx),
                           void *ctx, int64_t timeout_ms, otpc_buf_t **msg,
                           uint16_t *flags) {
  matcher_t mt = {NULL, 0, NULL, accept, ctx, flags};
  return receive_core(&mt, timeout_ms, NULL, msg);
}

int otpc_receive_any(const otpc_pattern_t *const *patterns, size_t n,
                     int64_t timeout_ms, size_t *which, otpc_buf_t **msg) {
  static void *const no_binds[MAX_BINDS];
  if (msg == NULL || (n > 0 && patterns == NULL)) return OTPC_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (patterns[i] && otpc_pattern_binds(patterns[i]) > MAX_BINDS)
      return OTPC_EINVAL;
  matcher_t mt = {patterns, n, no_binds, NULL, NULL, NULL};
  return receive_core(&mt, timeout_ms, which, msg);
}

int otpc_sleep(int64_t ms) {
  static otpc_pattern_t *never;
  otpc__proc_t *p = otpc__current();
  if (p == NULL) return OTPC_ENOTPROC;
  if (never == NULL) {
    /* A pattern no message matches: a ref from no node. */
    otpc_pattern_t *pat;
    if (otpc_pattern_compile("'$otpc_sleep_never'", &pat, NULL) != 0)
      return OTPC_ENOMEM;
    otpc_pattern_t *expected = NULL;
    if (!__atomic_compare_exchange_n(&never, &expected, pat, false,
                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
      otpc_pattern_free(pat);
  }
  otpc_buf_t *msg;
  const otpc_pattern_t *pats[1] = {never};
  matcher_t mt = {pats, 1, NULL, NULL, NULL, NULL};
  int rc = receive_core(&mt, ms, NULL, &msg);
  if (rc == 0) otpc_buf_unref(msg); /* someone sent the sentinel itself */
  return rc == OTPC_ETIMEDOUT ? 0 : rc;
}

/* ------------------------------------------------------------------------
 * Links, monitors, exits
 * ------------------------------------------------------------------------ */

static int send_signal(otpc_pid_t to, otpc__sig_kind_t kind, otpc_pid_t from,
                       const otpc_ref_t *ref, otpc_buf_t *buf) {
  otpc__sig_t *sig = otpc__sig_new(kind);
  if (sig == NULL) {
    otpc_buf_unref(buf);
    return OTPC_ENOMEM;
  }
  sig->from = from;
  if (ref) sig->ref = *ref;
  sig->buf = buf;
  otpc__deliver_pid(to, sig);
  return 0;
}

int otpc_link(otpc_pid_t pid) {
  otpc__proc_t *p = otpc__current();
  if (p == NULL) return OTPC_ENOTPROC;
  otpc_pid_t self = otpc__proc_pid(p);
  if (otpc_pid_eq(pid, self)) return 0;
  if (otpc__pid_is_local(pid) && !otpc_is_alive(pid)) { /* dist: remote ok */
    if (!(p->flags & PF_TRAP)) return OTPC_ENOPROC;
    /* Trapping: the link "dies" at once with noproc. */
    otpc__sig_t *sig = otpc__sig_new(SIG_EXIT);
    if (sig == NULL) return OTPC_ENOMEM;
    if (otpc__link_add(p, pid) != 0) {
      otpc__sig_free(sig);
      return OTPC_ENOMEM;
    }
    sig->flags = SIGF_LINKED;
    sig->from = pid;
    sig->buf = otpc__atom_buf(OTPC_ATOM_NOPROC);
    otpc__deliver(p, sig);
    return 0;
  }
  int rc = otpc__link_add(p, pid);
  if (rc != 0) return rc;
  return send_signal(pid, SIG_LINK, self, NULL, NULL);
}

int otpc_unlink(otpc_pid_t pid) {
  otpc__proc_t *p = otpc__current();
  if (p == NULL) return OTPC_ENOTPROC;
  if (!otpc__link_remove(p, pid)) return 0;
  return send_signal(pid, SIG_UNLINK, otpc__proc_pid(p), NULL, NULL);
}

int otpc_set_priority(otpc_priority_t prio) {
  otpc__proc_t *p = otpc__current();
  if (p == NULL) return OTPC_ENOTPROC;
  if ((unsigned)prio > OTPC_PRIO_MAX) return OTPC_EINVAL;
  int old = p->priority;
  /* Read by whoever queues it next, from any thread. */
  __atomic_store_n(&p->priority, (uint8_t)prio, __ATOMIC_RELAXED);
  return old;
}

int otpc_trap_exit(bool on) {
  otpc__proc_t *p = otpc__current();
  if (p == NULL) return OTPC_ENOTPROC;
  int old = (p->flags & PF_TRAP) != 0;
  if (on)
    p->flags |= PF_TRAP;
  else
    p->flags &= (uint16_t)~PF_TRAP;
  return old;
}

/* Our side of a monitor: the ref and our entry. alias: ALIAS_MON_* to
 * make the ref an alias too (alias.c), or 0. */
static int monitor_ours(otpc__proc_t *p, otpc_pid_t target, otpc_buf_t *name,
                        unsigned alias, otpc_ref_t *out) {
  int rc = 0;
  if (alias != 0)
    rc = otpc__alias_new(p, alias, out);
  else
    *out = otpc_make_ref();
  if (rc == 0) rc = otpc__mon_add(p, out, target, MON_WATCHING, name);
  if (rc != 0) {
    if (alias != 0) otpc__alias_drop(p, out);
    otpc_buf_unref(name);
  }
  return rc;
}

static int monitor_common(otpc__proc_t *p, otpc_pid_t target, otpc_buf_t *name,
                          unsigned alias, otpc_ref_t *out) {
  otpc_ref_t ref;
  int rc = monitor_ours(p, target, name, alias, &ref);
  if (rc != 0) return rc;
  if (out) *out = ref;
  /* A dead target answers with DOWN noproc (see otpc__answer_noproc). */
  return send_signal(target, SIG_MONITOR, otpc__proc_pid(p), &ref, NULL);
}

/* The alias mode (ALIAS_MON_*, or 0) that the options ask for; -1 if
 * they ask for none there is. */
static int alias_mode(const otpc_monitor_opts_t *opts) {
  static const int mode[] = {0, ALIAS_MON_EXPLICIT, ALIAS_MON_DEMONITOR,
                             ALIAS_MON_REPLY_DEMONITOR};
  unsigned a = opts ? (unsigned)opts->alias : 0;
  return a <= OTPC_MONITOR_ALIAS_REPLY_DEMONITOR ? mode[a] : -1;
}

int otpc__monitor_request(otpc_pid_t target, const otpc_monitor_opts_t *opts,
                          otpc_ref_t *ref) {
  otpc__proc_t *p = otpc__current();
  if (p == NULL) return OTPC_ENOTPROC;
  int mode = alias_mode(opts);
  if (mode < 0) return OTPC_EINVAL;
  return monitor_ours(p, target, NULL, (unsigned)mode, ref);
}

int otpc__send_monitored(otpc_pid_t target, const otpc_ref_t *ref,
                         otpc_buf_t *msg) {
  otpc__proc_t *self = otpc__current();
  otpc__sig_t *sig = NULL;
  int rc = 0;
  if (self == NULL) {
    rc = OTPC_ENOTPROC;
  } else if (!otpc__pid_is_local(target)) { /* dist carries the two in order */
    rc = send_signal(target, SIG_MONITOR, otpc__proc_pid(self), ref, NULL);
    if (rc == 0) return otpc__send_owned(target, msg);
  } else if ((sig = otpc__sig_new(SIG_MONITOR)) == NULL) { /* a whole node */
    rc = OTPC_ENOMEM;
  }
  if (rc != 0) {
    otpc_buf_unref(msg);
    return rc;
  }
  sig->kind = SIG_MESSAGE;
  sig->flags = SIGF_MONITOR;
  sig->from = otpc__proc_pid(self);
  sig->ref = *ref;
  sig->buf = msg;
  /* Costs as otpc_send. A dead target answers with DOWN noproc. A server
   * the request woke may run here and now: the caller would only wait
   * for it (sched.c, a call's server run by its caller). */
  otpc__proc_t *woken;
  uint32_t backlog = otpc__deliver_call(target, sig, &woken);
  if (woken != NULL) otpc__run_called(woken);
  spend_n(self, 1 + (uint64_t)backlog);
  return 0;
}

int otpc_monitor(otpc_pid_t pid, otpc_ref_t *ref) {
  return otpc_monitor_opts(pid, NULL, ref);
}

int otpc_monitor_opts(otpc_pid_t pid, const otpc_monitor_opts_t *opts,
                      otpc_ref_t *ref) {
  otpc__proc_t *p = otpc__current();
  if (p == NULL) return OTPC_ENOTPROC;
  int mode = alias_mode(opts);
  if (mode < 0) return OTPC_EINVAL;
  return monitor_common(p, pid, NULL, (unsigned)mode, ref);
}

int otpc_monitor_name(otpc_atom_t name, otpc_ref_t *ref) {
  return otpc__monitor_name(name, 0, ref);
}

int otpc__monitor_name(otpc_atom_t name, unsigned alias, otpc_ref_t *ref) {
  otpc__proc_t *p = otpc__current();
  if (p == NULL) return OTPC_ENOTPROC;
  otpc_builder_t b;
  otpc_builder_init(&b);
  otpc_build_tuple(&b, 2);
  otpc_build_atom_id(&b, name);
  otpc_build_atom_id(&b, otpc__rt.name);
  int rc;
  otpc_buf_t *obj = otpc_builder_finish(&b, &rc);
  if (obj == NULL) return rc;
  otpc_pid_t target;
  if (otpc_whereis(name, &target) != 0) {
    /* Nobody has the name: a pid that resolves to no process. */
    target.node = otpc__rt.name;
    target.creation = otpc__rt.creation;
    target.id = UINT32_MAX;
    target.serial = 0;
  }
  return monitor_common(p, target, obj, alias, ref);
}

int otpc_demonitor(const otpc_ref_t *ref, int flags) {
  otpc__proc_t *p = otpc__current();
  if (p == NULL) return OTPC_ENOTPROC;
  otpc_pid_t target;
  if (otpc__mon_remove_watching(p, ref, &target)) {
    otpc__alias_monitor_gone(p, ref);
    /* Nothing to flush: its DOWN is made only as the entry is taken out
     * (signal.c, on_down), and one that comes now finds no entry and is
     * dropped. So a flush looks only after a monitor already gone. */
    return send_signal(target, SIG_DEMONITOR, otpc__proc_pid(p), ref, NULL);
  }
  if (flags & OTPC_DEMONITOR_FLUSH) {
    /* A DOWN already taken in: {'DOWN', Ref, _, _, _}. */
    if (!otpc__take_inbox(p)) otpc__exit_current(p);
    for (otpc__sig_t **pp = &p->mq_first; *pp != NULL;) {
      otpc_term_t t = otpc_buf_term((*pp)->buf), e;
      size_t arity;
      otpc_ref_t r;
      if (otpc_term_get_tuple(t, &arity, &e) == 0 && arity == 5 &&
          otpc_term_is_atom(e, OTPC_ATOM_DOWN) &&
          otpc_term_get_ref(otpc_term_next(e), &r) == 0 &&
          otpc_ref_eq(&r, ref)) {
        otpc__sig_free(unlink_message(p, pp));
        p->mq_save = &p->mq_first;
        break;
      }
      pp = (otpc__sig_t **)&(*pp)->link.next;
    }
  }
  return 0;
}

int otpc_exit_signal(otpc_pid_t pid, otpc_term_t reason) {
  otpc_builder_t b;
  otpc_builder_init(&b);
  otpc_build_term(&b, reason);
  int rc;
  otpc_buf_t *buf = otpc_builder_finish(&b, &rc);
  if (buf == NULL) return rc;
  otpc__proc_t *p = otpc__current();
  rc = send_signal(pid, SIG_EXIT, p ? otpc__proc_pid(p) : undefined_pid(),
                   NULL, buf);
  /* A signal to oneself takes effect before the call returns. */
  if (rc == 0 && p != NULL && otpc_pid_eq(pid, otpc__proc_pid(p)) &&
      !otpc__take_inbox(p))
    otpc__exit_current(p);
  return rc;
}

_Noreturn void otpc_exit(otpc_term_t reason) {
  otpc__proc_t *p = otpc__current();
  if (p == NULL) abort(); /* documented: only a process can exit */
  otpc_builder_t b;
  otpc_builder_init(&b);
  otpc_build_term(&b, reason);
  otpc_buf_unref(p->exit_reason);
  p->exit_reason = otpc_builder_finish(&b, NULL);
  otpc__exit_current(p);
}

_Noreturn void otpc_exit_atom(otpc_atom_t reason) {
  otpc__proc_t *p = otpc__current();
  if (p == NULL) abort();
  otpc_buf_unref(p->exit_reason);
  /* NULL is normal (otpc__finish_exit makes the buffer if it is needed). */
  p->exit_reason = reason == OTPC_ATOM_NORMAL ? NULL : otpc__atom_buf(reason);
  otpc__exit_current(p);
}
