/*
 * signal.c: what happens when signals arrive, and when a process dies.
 *
 * Every signal (message, exit, link, unlink, monitor, demonitor, down)
 * travels in the receiver's one inbox, so everything A sends to B arrives
 * in the order A sent it. The receiver acts on signals when it takes its
 * inbox in (otpc__take_inbox), which it does before every receive and
 * every handler dispatch: messages go to its private queue (one sent to
 * an alias only while the alias is active, alias.c), the rest change its
 * links and monitors or end it.
 *
 * Exit semantics are Erlang's (erlang:exit/2 and the "Processes" chapter):
 *   - 'kill' sent with exit/2 cannot be trapped: the process dies 'killed';
 *   - a trapping process gets {'EXIT', From, Reason} instead of dying;
 *   - 'normal' is ignored unless the process sent it to itself;
 *   - anything else ends the process with that reason.
 * Exit signals from links carry SIGF_LINKED; they count only while the
 * link exists, and 'kill' through a link is an ordinary reason.
 *
 * Links and monitors are kept in arrays in the process's extension (most
 * processes have none), indexed when big (below). Only the owner touches
 * them.
 */
#include "rt_int.h"

/*
 * Links and monitors of a process: arrays, and once one is big (a
 * supervisor of many children, a driver linked to thousands, a server
 * watched by many callers) a hash index after the array in the same
 * block, so that adding, finding and removing stay O(1). The index has
 * 2 * cap slots holding position + 1 (0: empty), linear probing, and
 * deletion by backward shift (no tombstones).
 */
#define INDEX_MIN 32

typedef struct otpc__link {
  uint32_t n, cap;
  otpc_pid_t pids[]; /* cap of them, then the index from INDEX_MIN on */
} otpc__link_t;

typedef struct mon_entry {
  otpc_ref_t ref;
  otpc_pid_t other;
  otpc_buf_t *name; /* WATCHING by name: {Name, Node} */
  uint32_t dir;
} mon_entry_t;

typedef struct otpc__mon {
  uint32_t n, cap;
  mon_entry_t e[]; /* cap of them, then the index from INDEX_MIN on */
} otpc__mon_t;

static size_t index_bytes(uint32_t cap) {
  return cap >= INDEX_MIN ? 2 * (size_t)cap * sizeof(uint32_t) : 0;
}

/* Monitor tables: the smallest from a pool, bigger ones from the heap. */
#define MON_SMALL 4

static size_t mon_bytes(uint32_t cap) {
  return sizeof(otpc__mon_t) + cap * sizeof(mon_entry_t) + index_bytes(cap);
}

size_t otpc__mon_small_bytes(void) { return mon_bytes(MON_SMALL); }

/* A table with room for cap, its count not set. */
static otpc__mon_t *mon_table_new(uint32_t cap) {
  return cap == MON_SMALL ? otpc__slab_alloc(OTPC__SLAB_MONS)
                          : otpc__malloc(mon_bytes(cap));
}

void otpc__mon_table_free(otpc__mon_t *m) {
  if (m != NULL && m->cap == MON_SMALL)
    otpc__slab_free(OTPC__SLAB_MONS, m);
  else
    otpc__free(m);
}

void otpc__ext_free(otpc__proc_ext_t *x) {
  if (x != NULL) otpc__slab_free(OTPC__SLAB_EXT, x);
}

static uint32_t mix(uint64_t h, uint32_t mask) {
  return (uint32_t)((h * 0x9e3779b97f4a7c15u) >> 32) & mask;
}

static uint32_t pid_home(otpc_pid_t pid, uint32_t mask) {
  return mix(((uint64_t)pid.serial << 32 | pid.id) ^ ((uint64_t)pid.node << 7), mask);
}

static uint32_t ref_home(const otpc_ref_t *r, uint32_t mask) {
  uint64_t h = r->node;
  for (uint32_t i = 0; i < r->len; i++) h = (h << 5 | h >> 59) ^ r->id[i];
  return mix(h, mask);
}

/* The home slot of the element at pos, for the index of table t. */
typedef uint32_t (*home_fn)(const void *t, uint32_t pos, uint32_t mask);

static uint32_t link_home_at(const void *t, uint32_t pos, uint32_t mask) {
  return pid_home(((const otpc__link_t *)t)->pids[pos], mask);
}

static uint32_t mon_home_at(const void *t, uint32_t pos, uint32_t mask) {
  return ref_home(&((const otpc__mon_t *)t)->e[pos].ref, mask);
}

static void index_put(uint32_t *idx, uint32_t mask, uint32_t home, uint32_t pos) {
  uint32_t i = home;
  while (idx[i] != 0) i = (i + 1) & mask;
  idx[i] = pos + 1;
}

static void index_build(uint32_t *idx, uint32_t cap, uint32_t n, const void *t,
                        home_fn home) {
  memset(idx, 0, index_bytes(cap));
  for (uint32_t pos = 0; pos < n; pos++)
    index_put(idx, 2 * cap - 1, home(t, pos, 2 * cap - 1), pos);
}

/* The slot that holds pos (it is there). */
static uint32_t index_slot(const uint32_t *idx, uint32_t mask, uint32_t home,
                           uint32_t pos) {
  uint32_t i = home;
  while (idx[i] != pos + 1) i = (i + 1) & mask;
  return i;
}

/* Removes the element at pos from the index, and notes that the last
 * element (at last) moves to pos, as the array's swap-remove does. */
static void index_remove(uint32_t *idx, uint32_t cap, const void *t,
                         home_fn home, uint32_t pos, uint32_t last) {
  uint32_t mask = 2 * cap - 1;
  uint32_t i = index_slot(idx, mask, home(t, pos, mask), pos);
  for (uint32_t j = (i + 1) & mask; idx[j] != 0; j = (j + 1) & mask) {
    uint32_t k = home(t, idx[j] - 1, mask);
    /* idx[j] may move to i unless its home is cyclically in (i, j]. */
    bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
    if (!stays) {
      idx[i] = idx[j];
      i = j;
    }
  }
  idx[i] = 0;
  if (pos != last) idx[index_slot(idx, mask, home(t, last, mask), last)] = pos + 1;
}

/* ------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------ */

static otpc_buf_t *new_atom_buf(otpc_atom_t a) {
  otpc_builder_t b;
  otpc_builder_init(&b);
  otpc_build_atom_id(&b, a);
  return otpc_builder_finish(&b, NULL);
}

/* The reasons every exit uses are made once and shared (buffers are
 * immutable); others are made on demand. */
otpc_buf_t *otpc__atom_buf(otpc_atom_t a) {
  static otpc_buf_t *_Atomic common[OTPC_ATOM_FIRST_FREE_];
  if (a >= OTPC_ATOM_FIRST_FREE_ || a == OTPC_ATOM_NONE) return new_atom_buf(a);
  otpc_buf_t *b = atomic_load_explicit(&common[a], memory_order_acquire);
  if (b == NULL) {
    otpc_buf_t *fresh = new_atom_buf(a), *expected = NULL;
    if (fresh == NULL) return NULL;
    if (atomic_compare_exchange_strong(&common[a], &expected, fresh)) {
      b = fresh;
    } else {
      otpc_buf_unref(fresh);
      b = expected;
    }
  }
  return otpc_buf_ref(b);
}

bool otpc_pid_eq(otpc_pid_t a, otpc_pid_t b) {
  return a.id == b.id && a.serial == b.serial && a.node == b.node &&
         a.creation == b.creation;
}

bool otpc_ref_eq(const otpc_ref_t *a, const otpc_ref_t *b) {
  return otpc__ref_eq(a, b);
}

/* Appends a message (built here) to p's private queue. */
static void enqueue_message(otpc__proc_t *p, otpc_buf_t *buf) {
  if (buf == NULL) return; /* out of memory: the notice is lost */
  otpc__sig_t *m = otpc__sig_new(SIG_MESSAGE);
  if (m == NULL) {
    otpc_buf_unref(buf);
    return;
  }
  m->buf = buf;
  atomic_store_explicit(&m->link.next, NULL, memory_order_relaxed);
  *p->mq_last = m;
  p->mq_last = (otpc__sig_t **)&m->link.next;
  otpc__mq_len_set(p, p->mq_len + 1);
}

/* ------------------------------------------------------------------------
 * Links
 * ------------------------------------------------------------------------ */

static uint32_t *link_index(const otpc__link_t *l) {
  return l->cap >= INDEX_MIN ? (uint32_t *)&l->pids[l->cap] : NULL;
}

static int link_find(const otpc__link_t *l, otpc_pid_t pid) {
  if (l == NULL) return -1;
  const uint32_t *idx = link_index(l);
  if (idx == NULL) {
    for (uint32_t i = 0; i < l->n; i++)
      if (otpc_pid_eq(l->pids[i], pid)) return (int)i;
    return -1;
  }
  uint32_t mask = 2 * l->cap - 1;
  for (uint32_t i = pid_home(pid, mask); idx[i] != 0; i = (i + 1) & mask)
    if (otpc_pid_eq(l->pids[idx[i] - 1], pid)) return (int)(idx[i] - 1);
  return -1;
}

int otpc__link_add(otpc__proc_t *p, otpc_pid_t pid) {
  otpc__proc_ext_t *x = otpc__proc_ext(p);
  if (x == NULL) return OTPC_ENOMEM;
  otpc__link_t *l = x->links;
  if (link_find(l, pid) >= 0) return 0;
  if (l == NULL || l->n == l->cap) {
    uint32_t cap = l ? l->cap * 2 : 4;
    otpc__link_t *bigger = otpc__realloc(
        l, sizeof *l + cap * sizeof(otpc_pid_t) + index_bytes(cap));
    if (bigger == NULL) return OTPC_ENOMEM;
    if (l == NULL) bigger->n = 0;
    bigger->cap = cap;
    x->links = l = bigger;
    if (link_index(l)) index_build(link_index(l), cap, l->n, l, link_home_at);
  }
  l->pids[l->n] = pid;
  uint32_t *idx = link_index(l);
  if (idx != NULL) index_put(idx, 2 * l->cap - 1, pid_home(pid, 2 * l->cap - 1), l->n);
  l->n++;
  return 0;
}

bool otpc__link_remove(otpc__proc_t *p, otpc_pid_t pid) {
  otpc__link_t *l = p->ext ? p->ext->links : NULL;
  int i = link_find(l, pid);
  if (i < 0) return false;
  uint32_t last = l->n - 1;
  if (link_index(l))
    index_remove(link_index(l), l->cap, l, link_home_at, (uint32_t)i, last);
  l->pids[i] = l->pids[last];
  l->n--;
  return true;
}

/* ------------------------------------------------------------------------
 * Monitors
 * ------------------------------------------------------------------------ */

static uint32_t *mon_index(const otpc__mon_t *m) {
  return m->cap >= INDEX_MIN ? (uint32_t *)&m->e[m->cap] : NULL;
}

static int mon_find(const otpc__mon_t *m, const otpc_ref_t *ref, uint32_t dir) {
  if (m == NULL) return -1;
  const uint32_t *idx = mon_index(m);
  if (idx == NULL) {
    for (uint32_t i = 0; i < m->n; i++)
      if (m->e[i].dir == dir && otpc__ref_eq(&m->e[i].ref, ref)) return (int)i;
    return -1;
  }
  uint32_t mask = 2 * m->cap - 1;
  for (uint32_t i = ref_home(ref, mask); idx[i] != 0; i = (i + 1) & mask) {
    const mon_entry_t *e = &m->e[idx[i] - 1];
    if (e->dir == dir && otpc__ref_eq(&e->ref, ref)) return (int)(idx[i] - 1);
  }
  return -1;
}

int otpc__mon_add(otpc__proc_t *p, const otpc_ref_t *ref, otpc_pid_t other,
                  uint32_t dir, otpc_buf_t *name) {
  otpc__proc_ext_t *x = otpc__proc_ext(p);
  if (x == NULL) return OTPC_ENOMEM;
  otpc__mon_t *m = x->monitors;
  if (m == NULL || m->n == m->cap) {
    uint32_t cap = m ? m->cap * 2 : MON_SMALL;
    otpc__mon_t *bigger = mon_table_new(cap);
    if (bigger == NULL) return OTPC_ENOMEM;
    if (m != NULL) {
      memcpy(bigger, m, sizeof *m + m->n * sizeof(mon_entry_t));
      otpc__mon_table_free(m);
    } else {
      bigger->n = 0;
    }
    bigger->cap = cap;
    x->monitors = m = bigger;
    if (mon_index(m)) index_build(mon_index(m), cap, m->n, m, mon_home_at);
  }
  mon_entry_t *e = &m->e[m->n];
  e->ref = *ref;
  e->other = other;
  e->dir = dir;
  e->name = name;
  uint32_t *idx = mon_index(m);
  if (idx != NULL) index_put(idx, 2 * m->cap - 1, ref_home(ref, 2 * m->cap - 1), m->n);
  m->n++;
  return 0;
}

/* Removes a monitor entry; returns whether it was there, and hands over
 * its name buffer (if any) through *name. */
static bool mon_remove(otpc__proc_t *p, const otpc_ref_t *ref, uint32_t dir,
                       otpc_pid_t *other, otpc_buf_t **name) {
  otpc__mon_t *m = p->ext ? p->ext->monitors : NULL;
  int i = mon_find(m, ref, dir);
  if (i < 0) return false;
  if (other) *other = m->e[i].other;
  if (name)
    *name = m->e[i].name;
  else
    otpc_buf_unref(m->e[i].name);
  uint32_t last = m->n - 1;
  if (mon_index(m))
    index_remove(mon_index(m), m->cap, m, mon_home_at, (uint32_t)i, last);
  if ((uint32_t)i != last) m->e[i] = m->e[last];
  m->n--;
  return true;
}

bool otpc__mon_remove_watching(otpc__proc_t *p, const otpc_ref_t *ref,
                               otpc_pid_t *target) {
  return mon_remove(p, ref, MON_WATCHING, target, NULL);
}

size_t otpc__mon_count(const otpc__proc_t *p, unsigned dir) {
  const otpc__mon_t *m = p->ext ? p->ext->monitors : NULL;
  size_t n = 0;
  for (uint32_t i = 0; m && i < m->n; i++) n += m->e[i].dir == dir;
  return n;
}

size_t otpc__link_count(const otpc__proc_t *p) {
  return p->ext && p->ext->links ? p->ext->links->n : 0;
}

size_t otpc__ext_bytes(const otpc__proc_t *p) {
  const otpc__proc_ext_t *x = p->ext;
  if (x == NULL) return 0;
  size_t n = sizeof *x;
  if (x->links)
    n += sizeof *x->links + x->links->cap * sizeof(otpc_pid_t) +
         index_bytes(x->links->cap);
  if (x->monitors)
    n += mon_bytes(x->monitors->cap);
  return n + otpc__alias_bytes(p);
}

/* A handler between messages gives back what it holds for nothing: empty
 * link and monitor tables, and the extension itself when nothing in it is
 * in use. This is what keeps an idle gen_server (monitored by every
 * caller, for the length of each call) as small as one never called. */
void otpc__ext_trim(otpc__proc_t *p) {
  otpc__proc_ext_t *x = p->ext;
  if (x == NULL) return;
  if (x->links && x->links->n == 0) {
    otpc__free(x->links);
    x->links = NULL;
  }
  if (x->monitors && x->monitors->n == 0) {
    otpc__mon_table_free(x->monitors);
    x->monitors = NULL;
  }
  if (x->aliases && otpc__alias_none(p)) otpc__alias_free_all(p);
  if (x->links || x->monitors || x->resources || x->saved || x->parked ||
      x->tsan_fiber || x->aliases || x->wait_timer.armed || x->wait_seq ||
      x->dirty_job)
    return;
  p->ext = NULL;
  otpc__ext_free(x);
}

/* ------------------------------------------------------------------------
 * Taking the inbox in
 * ------------------------------------------------------------------------ */

static otpc_buf_t *exit_message(otpc_pid_t from, otpc_term_t reason) {
  otpc_builder_t b;
  otpc_builder_init(&b);
  otpc_build_tuple(&b, 3);
  otpc_build_atom_id(&b, OTPC_ATOM_EXIT);
  otpc_build_pid(&b, &from);
  otpc_build_term(&b, reason);
  return otpc_builder_finish(&b, NULL);
}

static otpc_buf_t *down_message(const otpc_ref_t *ref, otpc_pid_t from,
                                otpc_buf_t *name, otpc_term_t reason) {
  otpc_builder_t b;
  otpc_builder_init(&b);
  otpc_build_tuple(&b, 5);
  otpc_build_atom_id(&b, OTPC_ATOM_DOWN);
  otpc_build_ref(&b, ref);
  otpc_build_atom_id(&b, OTPC_ATOM_PROCESS);
  if (name != NULL)
    otpc_build_term(&b, otpc_buf_term(name));
  else
    otpc_build_pid(&b, &from);
  otpc_build_term(&b, reason);
  return otpc_builder_finish(&b, NULL);
}

/* The process must end with the reason in sig->buf (or `atom`). */
static void decide_exit(otpc__proc_t *p, otpc_buf_t *reason) {
  p->flags |= PF_EXITING;
  otpc_buf_unref(p->exit_reason);
  p->exit_reason = reason;
}

/* Returns false if the signal ends the process. */
static bool on_exit_signal(otpc__proc_t *p, otpc__sig_t *sig) {
  otpc_term_t reason = otpc_buf_term(sig->buf);
  bool linked = sig->flags & SIGF_LINKED;
  if (linked && !otpc__link_remove(p, sig->from)) return true; /* unlinked */
  if (!linked && otpc_term_is_atom(reason, OTPC_ATOM_KILL)) {
    decide_exit(p, otpc__atom_buf(OTPC_ATOM_KILLED));
    return false;
  }
  if (p->flags & PF_TRAP) {
    enqueue_message(p, exit_message(sig->from, reason));
    return true;
  }
  if (otpc_term_is_atom(reason, OTPC_ATOM_NORMAL)) {
    if (linked || !otpc_pid_eq(sig->from, otpc__proc_pid(p))) return true;
  }
  decide_exit(p, otpc_buf_ref(sig->buf));
  return false;
}

/* sig's sender now monitors p (a monitor signal or a call's); false if
 * there is no memory to keep it: p's exit is decided (system_limit). */
static bool watched_add(otpc__proc_t *p, const otpc__sig_t *sig) {
  if (otpc__mon_add(p, &sig->ref, sig->from, MON_WATCHED, NULL) == 0)
    return true;
  decide_exit(p, otpc__atom_buf(otpc_atom("system_limit")));
  return false;
}

static void on_down(otpc__proc_t *p, otpc__sig_t *sig) {
  otpc_buf_t *name = NULL;
  if (!mon_remove(p, &sig->ref, MON_WATCHING, NULL, &name)) return;
  otpc__alias_monitor_gone(p, &sig->ref);
  enqueue_message(p, down_message(&sig->ref, sig->from, name,
                                  otpc_buf_term(sig->buf)));
  otpc_buf_unref(name);
}

/* process_info from another process: what only the owner may read. */
static void answer_info(otpc__proc_t *p, const otpc__sig_t *sig) {
  size_t bytes = otpc__ext_bytes(p);
  otpc_buf_t *info = otpc_term_fmt(
      "{'" OTPC__INFO_TAG "', ~r, ~l, ~l, ~l}", &sig->ref,
      (int64_t)otpc__link_count(p), (int64_t)otpc__mon_count(p, 1),
      (int64_t)bytes);
  otpc__sig_t *m = info ? otpc__sig_new(SIG_MESSAGE) : NULL;
  if (m == NULL) {
    otpc_buf_unref(info);
    return; /* the asker gets noproc when we die, or waits */
  }
  m->buf = info;
  m->from = otpc__proc_pid(p);
  otpc__deliver_pid(sig->from, m);
}

/*
 * A handler's call monitors, made late. A call's request carries its
 * monitor (SIGF_MONITOR). A handler that takes one into an empty queue
 * does not make the entry yet (SIGF_MON_PENDING): if its callback answers
 * the call as it handles it (otpc__dispatch_answered, gen_server's reply)
 * the monitor is dropped there and the reply tells the caller so
 * (SIGF_DEMONITORED), which then sends no demonitor: no entry made and
 * removed, no demonitor signal, no extension for a server called one
 * call at a time. Otherwise the entry is made when the message leaves the
 * queue by any other way (the callback did not answer, a receive took
 * it), and a process that dies holding one answers it with a DOWN as it
 * would the entry (otpc__finish_exit).
 *
 * At most one message in the queue is pending, the first (only a message
 * taken into an empty queue is, and one taken out from anywhere is made
 * then), and one more while it is dispatched: a demonitor that finds no
 * entry looks at those two only.
 */
bool otpc__mon_pending_make(otpc__proc_t *p, otpc__sig_t *m) {
  m->flags &= (uint16_t)~SIGF_MON_PENDING;
  return watched_add(p, m);
}

static bool pending_for(const otpc__sig_t *m, const otpc__sig_t *demon) {
  return m != NULL && (m->flags & SIGF_MON_PENDING) &&
         otpc_pid_eq(m->from, demon->from) &&
         otpc__ref_eq(&m->ref, &demon->ref);
}

/* A demonitor that found no entry: the call may still be pending. */
static void pending_drop(otpc__proc_t *p, const otpc__sig_t *demon) {
  if (pending_for(p->mq_first, demon))
    p->mq_first->flags &= (uint16_t)~SIGF_MON_PENDING;
  else if ((p->flags & PF_HANDLER) && pending_for(p->h.dispatching, demon))
    p->h.dispatching->flags &= (uint16_t)~SIGF_MON_PENDING;
}

bool otpc__dispatch_answered(otpc_pid_t caller) {
  otpc__proc_t *p = otpc__current();
  otpc__sig_t *m =
      p != NULL && (p->flags & PF_HANDLER) ? p->h.dispatching : NULL;
  if (m == NULL || !(m->flags & SIGF_MON_PENDING) ||
      !otpc_pid_eq(m->from, caller))
    return false;
  m->flags &= (uint16_t)~SIGF_MON_PENDING;
  return true;
}

static inline void mq_append(otpc__proc_t *p, otpc__sig_t *sig) {
  atomic_store_explicit(&sig->link.next, NULL, memory_order_relaxed);
  *p->mq_last = sig;
  p->mq_last = (otpc__sig_t **)&sig->link.next;
  otpc__mq_len_set(p, p->mq_len + 1);
}

bool otpc__take_inbox_any(otpc__proc_t *p) {
  return otpc__take_inbox_upto(p, UINT32_MAX);
}

bool otpc__take_inbox_upto(otpc__proc_t *p, uint32_t max) {
  otpc__qlink_t *l;
  uint32_t taken = 0;
  if (p->flags & PF_EXITING) return false;
  /* Messages from other cores: the head is written back once (its line
   * is the senders'), and the next node is fetched for writing while
   * this one is linked in (docs/internals/performance.md). */
  otpc__qlink_t *head = p->inbox.head;
  while ((l = otpc__mpsc_pop_at(&p->inbox, &head)) != NULL) {
    otpc__sig_t *sig = (otpc__sig_t *)l;
    bool alive = true;
    __builtin_prefetch(atomic_load_explicit(&l->next, memory_order_relaxed), 1);
    if (sig->kind == SIG_MESSAGE && !(sig->flags & (SIGF_ALIAS | SIGF_MONITOR))) {
      mq_append(p, sig); /* the common case */
      if (++taken == max) break;
      continue;
    }
    p->inbox.head = head;
    switch (sig->kind) {
      case SIG_MESSAGE:
        if (sig->flags & SIGF_MONITOR) { /* a call: its monitor first */
          if ((p->flags & PF_HANDLER) && p->mq_first == NULL) {
            sig->flags |= SIGF_MON_PENDING; /* made if it is not answered */
            mq_append(p, sig);
            continue;
          }
          if (!(alive = watched_add(p, sig))) break;
          mq_append(p, sig);
          continue;
        }
        /* to an alias */
        if (!otpc__alias_accept(p, &sig->ref))
          break; /* to an inactive alias: dropped */
        mq_append(p, sig);
        continue; /* kept, not freed */
      case SIG_EXIT: alive = on_exit_signal(p, sig); break;
      case SIG_LINK:
        if (otpc__link_add(p, sig->from) != 0) {
          /* No memory to keep the link: the linker sees us die. */
          decide_exit(p, otpc__atom_buf(otpc_atom("system_limit")));
          alive = false;
        }
        break;
      case SIG_UNLINK: otpc__link_remove(p, sig->from); break;
      case SIG_MONITOR: alive = watched_add(p, sig); break;
      case SIG_DEMONITOR:
        if (!mon_remove(p, &sig->ref, MON_WATCHED, NULL, NULL))
          pending_drop(p, sig);
        break;
      case SIG_DOWN: on_down(p, sig); break;
      case SIG_WAKE: otpc__on_wake(p, sig); break;
      case SIG_INFO: answer_info(p, sig); break;
      default: break;
    }
    otpc__sig_free(sig);
    if (!alive) return false;
    head = p->inbox.head;
  }
  p->inbox.head = head;
  /* Stopped with more to come: senders are charged a take more. */
  otpc__backlog_publish_as(p, taken == max ? p->mq_len + max : p->mq_len);
  return true;
}

/* ------------------------------------------------------------------------
 * Death
 * ------------------------------------------------------------------------ */

/* Answers what a signal to the dead process needs answered: a link with
 * an EXIT noproc, an info request, a monitor (alone or with a call) with
 * a DOWN whose reason is `reason` (one reference taken), or noproc if
 * NULL. Frees sig. */
static void answer_dead(otpc__sig_t *sig, otpc_pid_t dead, otpc_buf_t *reason) {
  otpc__sig_t *answer = NULL;
  bool monitor = sig->kind == SIG_MONITOR ||
                 (sig->kind == SIG_MESSAGE && (sig->flags & SIGF_MONITOR));
  if (sig->kind == SIG_LINK) {
    answer = otpc__sig_new(SIG_EXIT);
    if (answer) answer->flags = SIGF_LINKED;
  } else if (monitor) {
    answer = otpc__sig_new(SIG_DOWN);
    if (answer) answer->ref = sig->ref;
  } else if (sig->kind == SIG_INFO) {
    answer = otpc__sig_new(SIG_MESSAGE);
    if (answer != NULL) {
      answer->from = dead;
      answer->buf = otpc_term_fmt("{'" OTPC__INFO_TAG "', ~r, noproc}", &sig->ref);
      otpc_pid_t to = sig->from;
      otpc__sig_free(sig);
      if (answer->buf == NULL) {
        otpc__sig_free(answer);
        return;
      }
      otpc__deliver_pid(to, answer);
      return;
    }
  }
  if (answer != NULL) {
    answer->from = dead;
    answer->buf = monitor && reason != NULL ? otpc_buf_ref(reason)
                                            : otpc__atom_buf(OTPC_ATOM_NOPROC);
    otpc_pid_t to = sig->from;
    otpc__sig_free(sig);
    otpc__deliver_pid(to, answer);
    return;
  }
  otpc__sig_free(sig);
}

void otpc__answer_noproc(otpc__sig_t *sig, otpc_pid_t dead) {
  answer_dead(sig, dead, NULL);
}

/* p->exit_reason, made now if it is NULL, which stands for 'normal': a
 * process that ends normally with nobody to tell needs no buffer (nor
 * the two atomic operations on the shared one's count). */
static otpc_buf_t *exit_reason(otpc__proc_t *p) {
  if (p->exit_reason == NULL) p->exit_reason = otpc__atom_buf(OTPC_ATOM_NORMAL);
  if (p->exit_reason == NULL) abort(); /* cannot tell anyone why */
  return p->exit_reason;
}

/* Tells everyone linked to or monitoring p that it died, and drops the
 * monitors p held. */
static void notify(otpc__proc_t *p, otpc_pid_t self) {
  otpc__proc_ext_t *x = p->ext;
  if (x == NULL) return;
  exit_reason(p);
  for (uint32_t i = 0; x->links && i < x->links->n; i++) {
    otpc__sig_t *s = otpc__sig_new(SIG_EXIT);
    if (s == NULL) continue;
    s->flags = SIGF_LINKED;
    s->from = self;
    s->buf = otpc_buf_ref(p->exit_reason);
    otpc__deliver_pid(x->links->pids[i], s);
  }
  otpc__free(x->links);
  x->links = NULL;
  otpc__mon_t *m = x->monitors;
  for (uint32_t i = 0; m && i < m->n; i++) {
    mon_entry_t *e = &m->e[i];
    otpc__sig_t *s = otpc__sig_new(e->dir == MON_WATCHED ? SIG_DOWN
                                                         : SIG_DEMONITOR);
    if (s != NULL) {
      s->from = self;
      s->ref = e->ref;
      if (e->dir == MON_WATCHED) s->buf = otpc_buf_ref(p->exit_reason);
      otpc__deliver_pid(e->other, s);
    }
    otpc_buf_unref(e->name);
  }
  otpc__mon_table_free(m);
  x->monitors = NULL;
}

/* A message the dying process still held: a pending call monitor is
 * answered as its entry would have been. */
static void drop_held(otpc__proc_t *p, otpc__sig_t *m, otpc_pid_t self) {
  if (m->flags & SIGF_MON_PENDING)
    answer_dead(m, self, exit_reason(p));
  else
    otpc__sig_free(m);
}

void otpc__finish_exit(otpc__sched_t *s, otpc__proc_t *p) {
  p->flags |= PF_EXITING;
  if (p->home >= 0) otpc__unpin(p);
  const otpc_handler_t *h = (p->flags & PF_HANDLER) ? p->u.handler.h : NULL;
  if (p->stack != NULL) otpc__stack_release(s, p); /* abandoned frames */
  if (h != NULL && h->terminate != NULL && (p->flags & PF_STARTED)) {
    exit_reason(p);
    s->current = p;
    otpc__run_terminate(p); /* an exit in it replaces the reason */
    s->current = NULL;
  }
  otpc_pid_t self = otpc__proc_pid(p);
  /* What it owned is released before anyone hears of the death (all of
   * it in the extension, which most processes do not have). */
  if (p->ext != NULL) {
    otpc__wheel_cancel(&s->wheel, &p->ext->wait_timer);
    otpc__dirty_abandon(p);
    otpc__resources_release(p);
    otpc__alias_free_all(p);
  }
  if (__atomic_load_n(&p->reg_name, __ATOMIC_ACQUIRE) != 0)
    otpc__registry_drop(p);
  otpc__timers_cancel_for(self);
  /* Out of the process table before anyone hears of the death, so that
   * whoever got the DOWN or EXIT finds it gone (is_alive false, noproc).
   * Signals sent meanwhile are answered below or when the block is freed. */
  atomic_store_explicit(&otpc__rt.slots[p->index], NULL, memory_order_release);
  notify(p, self);
  /* A message whose callback ended the process. */
  if (h != NULL && (p->flags & PF_STARTED) && p->h.dispatching != NULL) {
    drop_held(p, p->h.dispatching, self);
    p->h.dispatching = NULL;
  }
  /* Messages never received. */
  for (otpc__sig_t *m = p->mq_first; m != NULL;) {
    otpc__sig_t *next =
        (otpc__sig_t *)atomic_load_explicit(&m->link.next, memory_order_relaxed);
    drop_held(p, m, self);
    m = next;
  }
  p->mq_first = NULL;
  /* Signals that came in since the last look: answer what needs it. A
   * monitor that reached the process before it died (alone, or with a
   * call's request) is answered with the exit reason, as Erlang answers
   * the monitors an exiting process still had in its queue; one sent
   * after the pid stopped resolving gets noproc. */
  otpc__qlink_t *l;
  while ((l = otpc__mpsc_pop(&p->inbox)) != NULL)
    answer_dead((otpc__sig_t *)l, self, exit_reason(p));
  if (p->exit_reason != NULL) otpc_buf_unref(p->exit_reason);
  p->exit_reason = NULL;
  /* Its inbox is never marked idle again: nobody queues it. */
  otpc__proc_retire(p);
}
