/*
 * rt_int.h: the runtime's internal structures and the contracts between
 * its files. Read docs/internals/stacks.md first: it explains execution
 * stacks, disposable loop instances and why a handler dispatch is a plain
 * call.
 *
 * Who touches what:
 *   - A process control block (otpc__proc_t) is owned by the scheduler
 *     running it. Other threads touch only its inbox (push; the tail
 *     also says whether it is idle) and its run-queue link, atomically,
 *     and read
 *     `serial` to check a pid. They may hold a pointer to it only inside a
 *     reclamation read section (reclaim.c): schedulers are always inside
 *     one except at their quiescent points between two process runs.
 *   - A scheduler (otpc__sched_t) is touched by its own thread, except its
 *     run queue (push from anywhere) and its sleep word.
 *
 * Lock order (outer first): registry lock, then process-table lock, then
 * atom table lock. Nothing holds a lock while switching contexts.
 *
 * Every file that includes this one takes its mutexes through the
 * wrappers below (rt, otp and dist), which count the locks the thread
 * holds: fault.c contains no fault while the count is not zero, because
 * a lock held by abandoned frames would never be released.
 */
#ifndef OTPC_RT_INT_H
#define OTPC_RT_INT_H

#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "../base/base_int.h"
#include "../term/term_int.h"
#include "ctx.h"
#include "otpc/rt.h"
#include "timer.h"

/* ------------------------------------------------------------------------
 * Locks held by this thread (fault.c). Incremented before the lock is
 * taken and decremented after it is released, so the count errs on the
 * side of "held". pthread_mutex_lock is redefined for the files that
 * include this header, so that no lock site is forgotten; the wrappers
 * call the real functions (the name in parentheses is not expanded).
 * ------------------------------------------------------------------------ */

extern __thread unsigned otpc__locks_held;

static inline int otpc__mutex_lock(pthread_mutex_t *m) {
  otpc__locks_held++;
  int rc = (pthread_mutex_lock)(m);
  if (rc != 0) otpc__locks_held--;
  return rc;
}

static inline int otpc__mutex_trylock(pthread_mutex_t *m) {
  otpc__locks_held++;
  int rc = (pthread_mutex_trylock)(m);
  if (rc != 0) otpc__locks_held--;
  return rc;
}

static inline int otpc__mutex_unlock(pthread_mutex_t *m) {
  int rc = (pthread_mutex_unlock)(m);
  if (rc == 0) otpc__locks_held--;
  return rc;
}

#define pthread_mutex_lock(m) otpc__mutex_lock(m)
#define pthread_mutex_trylock(m) otpc__mutex_trylock(m)
#define pthread_mutex_unlock(m) otpc__mutex_unlock(m)

/* ------------------------------------------------------------------------
 * Intrusive multi-producer single-consumer queue (Vyukov). Producers:
 * any thread, wait-free (one exchange). Consumer: one thread.
 * ------------------------------------------------------------------------ */

typedef struct otpc__qlink {
  _Atomic(struct otpc__qlink *) next;
} otpc__qlink_t;

typedef struct otpc__mpsc {
  _Atomic(otpc__qlink_t *) tail; /* producers */
  otpc__qlink_t *head;           /* consumer */
  otpc__qlink_t stub;
} otpc__mpsc_t;

void otpc__mpsc_init(otpc__mpsc_t *q);

/* The operations run several times per message: they are inline (see
 * queue.c for how the queue works). */

/* Pushes links first..last, already linked through next, in one step. */
static inline void otpc__mpsc_push_chain(otpc__mpsc_t *q, otpc__qlink_t *first,
                                         otpc__qlink_t *last) {
  atomic_store_explicit(&last->next, NULL, memory_order_relaxed);
  /* seq_cst: ordered against a consumer's release of its process and
   * second look at the tail (sched.c, go_idle). */
  otpc__qlink_t *prev =
      atomic_exchange_explicit(&q->tail, last, memory_order_seq_cst);
  atomic_store_explicit(&prev->next, first, memory_order_release);
}

static inline void otpc__mpsc_push(otpc__mpsc_t *q, otpc__qlink_t *n) {
  otpc__mpsc_push_chain(q, n, n);
}

/*
 * An inbox's tail also says whether its owner is idle: go_idle marks the
 * empty inbox's tail (the stub) with OTPC__TAIL_IDLE in the exchange that
 * lets the process go, and the sender whose push swaps a marked tail out
 * learns from that same exchange that the process is its to queue. One
 * locked instruction on each side where a flag beside the queue took two
 * (the idle store and the sender's exchange of it) and ordered them
 * against the pushes. A running or queued process's tail is never marked.
 */
#define OTPC__TAIL_IDLE ((uintptr_t)1)

static inline otpc__qlink_t *otpc__tail_marked(otpc__qlink_t *l) {
  return (otpc__qlink_t *)((uintptr_t)l | OTPC__TAIL_IDLE);
}

/* Pushes n into an inbox; true if its owner was idle and the caller must
 * now queue it. */
static inline bool otpc__inbox_push(otpc__mpsc_t *q, otpc__qlink_t *n) {
  atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
  otpc__qlink_t *prev =
      atomic_exchange_explicit(&q->tail, n, memory_order_acq_rel);
  bool idle = (uintptr_t)prev & OTPC__TAIL_IDLE;
  prev = (otpc__qlink_t *)((uintptr_t)prev & ~OTPC__TAIL_IDLE);
  atomic_store_explicit(&prev->next, n, memory_order_release);
  return idle;
}

/* The owner, with nothing in its inbox: marks it idle, or false if a push
 * came (or is half done) and it must run again. */
static inline bool otpc__inbox_mark_idle(otpc__mpsc_t *q) {
  otpc__qlink_t *stub = &q->stub;
  if (q->head != stub ||
      atomic_load_explicit(&stub->next, memory_order_acquire) != NULL)
    return false;
  return atomic_compare_exchange_strong_explicit(
      &q->tail, &stub, otpc__tail_marked(&q->stub), memory_order_acq_rel,
      memory_order_relaxed);
}

/* Whether the owner is idle (a snapshot, for process_info). */
static inline bool otpc__inbox_marked_idle(otpc__mpsc_t *q) {
  return (uintptr_t)atomic_load_explicit(&q->tail, memory_order_relaxed) &
         OTPC__TAIL_IDLE;
}

/* Takes an idle owner's inbox out of idleness without a push (a timer
 * that fired): true if it was idle and the caller must queue it. */
static inline bool otpc__inbox_claim(otpc__mpsc_t *q) {
  otpc__qlink_t *marked = otpc__tail_marked(&q->stub);
  return atomic_compare_exchange_strong_explicit(
      &q->tail, &marked, &q->stub, memory_order_acq_rel, memory_order_relaxed);
}

/* otpc__mpsc_pop with the consumer's head in *headp, which the caller
 * writes back to q->head when done: a consumer taking many links at once
 * so writes the queue's line once, not once per link (the inbox's head
 * shares its line with the tail that every sender exchanges). */
static inline otpc__qlink_t *otpc__mpsc_pop_at(otpc__mpsc_t *q,
                                               otpc__qlink_t **headp) {
  otpc__qlink_t *head = *headp;
  otpc__qlink_t *next = atomic_load_explicit(&head->next, memory_order_acquire);
  if (head == &q->stub) {
    if (next == NULL) return NULL;
    *headp = next;
    head = next;
    next = atomic_load_explicit(&next->next, memory_order_acquire);
  }
  if (next != NULL) {
    *headp = next;
    return head;
  }
  otpc__qlink_t *tail = atomic_load_explicit(&q->tail, memory_order_acquire);
  if (head != tail) return NULL; /* a push is half done */
  otpc__mpsc_push(q, &q->stub);
  next = atomic_load_explicit(&head->next, memory_order_acquire);
  if (next != NULL) {
    *headp = next;
    return head;
  }
  return NULL;
}

/* The oldest link, or NULL if empty (or a push is half-done: retry
 * later; the pusher makes the consumer runnable after it). */
static inline otpc__qlink_t *otpc__mpsc_pop(otpc__mpsc_t *q) {
  return otpc__mpsc_pop_at(q, &q->head);
}

/* Consumer only: whether the queue is empty, and the tail seen when it
 * was (to tell later, from the tail alone, whether anything came). */
static inline bool otpc__mpsc_empty_at(otpc__mpsc_t *q, otpc__qlink_t **tail) {
  otpc__qlink_t *head = q->head;
  *tail = atomic_load_explicit(&q->tail, memory_order_seq_cst);
  if (atomic_load_explicit(&head->next, memory_order_acquire) != NULL)
    return false;
  /* Empty: the head is the last link and nobody has swapped in after it
   * (a swapped-in but unlinked push shows as tail != head). */
  return *tail == head;
}

/* Whether anything was pushed since the consumer last saw the queue
 * empty. A hint for the consumer: may say non-empty during a push. */
static inline bool otpc__mpsc_nonempty(otpc__mpsc_t *q) {
  otpc__qlink_t *tail;
  return !otpc__mpsc_empty_at(q, &tail);
}

/* ------------------------------------------------------------------------
 * Signals: everything that travels to a process, in one ordered stream.
 * ------------------------------------------------------------------------ */

typedef enum otpc__sig_kind {
  SIG_MESSAGE,   /* buf: the message */
  SIG_EXIT,      /* from: sender, buf: reason; from a link if LINKED */
  SIG_LINK,      /* from wants a link */
  SIG_UNLINK,    /* from removes its link */
  SIG_MONITOR,   /* from monitors us; ref: its id */
  SIG_DEMONITOR, /* from drops monitor ref */
  SIG_DOWN,      /* a process we monitor ended: from, ref, buf reason */
  SIG_WAKE,      /* internal: a timer or an fd woke the process */
  SIG_INFO       /* from asks for what only the owner can read; ref */
} otpc__sig_kind_t;

/* The answer to SIG_INFO, a message to the asker:
 *   {'$otpc_info', Ref, Links, Monitors, Bytes}, or {'$otpc_info', Ref, noproc} */
#define OTPC__INFO_TAG "$otpc_info"

#define SIGF_LINKED 1u /* SIG_EXIT caused by a link */
#define SIGF_NAMED 2u  /* SIG_DOWN of a monitor by name: buf is {Name,Node} */
#define SIGF_ALIAS 4u  /* SIG_MESSAGE sent to an alias: ref is the alias */
#define SIGF_MONITOR 8u /* SIG_MESSAGE that sets up a monitor first: from
                           monitors the receiver with ref (a call) */
/* SIGF_MONITOR taken in by a handler, its entry not made yet (signal.c) */
#define SIGF_MON_PENDING 16u
/* A call's reply: the sender holds no monitor of the caller's for it, and
 * no DOWN of it will come (the caller sends no demonitor) */
#define SIGF_DEMONITORED 32u

/* A message is by far the most common signal, and messages can pile up
 * by the million in a mailbox: its node holds only the fields before
 * `ref` (OTPC__SIG_MSG_SIZE bytes, from a pool of its own); every other
 * kind has the whole struct. Never touch `ref` of a SIG_MESSAGE unless
 * it is flagged SIGF_ALIAS or SIGF_MONITOR: a message to an alias
 * carries the alias, a call its monitor, so their nodes are whole
 * (otpc__sig_new_alias_msg, otpc__send_monitored). */
typedef struct otpc__sig {
  otpc__qlink_t link; /* must be first */
  uint16_t kind;
  uint16_t flags;
  uint32_t aux;       /* SIG_WAKE: the wait it ends */
  otpc_buf_t *buf;    /* message or exit reason (one reference) */
  otpc_pid_t from;
  otpc_ref_t ref;     /* monitors; not in a SIG_MESSAGE node */
} otpc__sig_t;

#define OTPC__SIG_MSG_SIZE offsetof(otpc__sig_t, ref)

otpc__sig_t *otpc__sig_new(otpc__sig_kind_t kind);
/* otpc__sig_new(SIG_MESSAGE), inline for the send path (below). */
static inline otpc__sig_t *otpc__sig_new_msg(void);
/* A SIG_MESSAGE flagged SIGF_ALIAS, in a whole node with ref = *alias. */
otpc__sig_t *otpc__sig_new_alias_msg(const otpc_ref_t *alias);
void otpc__sig_free(otpc__sig_t *sig);
/* Gives the node back without touching its buffer (a receive hands the
 * buffer, with the node's reference, to its caller). */
static inline void otpc__sig_dealloc(otpc__sig_t *sig);

/* ------------------------------------------------------------------------
 * Execution stacks (stack.c)
 * ------------------------------------------------------------------------ */

typedef struct otpc__xstack {
  struct otpc__xstack *next; /* in the scheduler's free list */
  struct otpc__xstack *all_prev, *all_next; /* every stack it made */
  struct otpc__proc *occupant; /* process whose frames are in it, or NULL */
  uint32_t waiters;          /* evicted processes to be restored into it */
  uint8_t *base;             /* lowest usable byte (the guard is below) */
  size_t size;
  uint8_t *map;              /* the whole mapping, guard included */
  size_t map_size;
  void *tsan_fiber;          /* TSan builds */
  unsigned valgrind_id;
} otpc__xstack_t;

/* ------------------------------------------------------------------------
 * Processes
 * ------------------------------------------------------------------------ */

typedef enum otpc__why {
  WHY_NONE,
  WHY_BLOCKED, /* waits for a signal */
  WHY_YIELD,   /* out of reductions: run again later */
  WHY_EXITED   /* finished; reason in exit_reason */
} otpc__why_t;

/* Process flags (owner only). */
#define PF_HANDLER 0x01u  /* a handler process */
#define PF_STARTED 0x02u  /* init ran / function entered */
#define PF_TRAP 0x04u     /* trap_exit */
#define PF_EXITING 0x08u  /* exit decided; no more callbacks */
#define PF_TIMEDOUT 0x10u /* the current wait's timer fired */
#define PF_WAITING 0x20u  /* blocked in receive (for process info) */
#define PF_CONTAIN 0x40u  /* signals in its code end it (fault.c) */
#define PF_FAULTED 0x80u  /* a fault is ending it (fault.c) */

/* What a process has that most processes do not: allocated on demand. */
typedef struct otpc__proc_ext {
  struct otpc__proc *owner;   /* back pointer, for the wait timer */
  struct otpc__link *links;   /* linked pids */
  struct otpc__mon *monitors; /* monitors we hold and monitors on us */
  struct otpc__res *resources;/* owned fds and palloc blocks */
  otpc__timer_t wait_timer;   /* receive timeout */
  void *saved;                /* evicted frames (stack.c), or NULL */
  size_t saved_len;
  struct otpc__proc *park_prev, *park_next; /* LRU of evictable processes */
  bool parked;
  void *tsan_fiber;           /* TSan: the fiber of evicted frames */
  struct otpc__alias_tab *aliases; /* active aliases (alias.c) */
  uint32_t wait_seq;          /* io.c: the current fd or dirty wait */
  uint32_t wake_seq_done;     /* the last wait that ended */
  uint32_t wake_events;       /* what woke it */
  void *dirty_job;            /* a dirty job it waits for */
} otpc__proc_ext_t;

typedef struct otpc__proc {
  /* -- shared with other threads: senders write the inbox tail (marked
   * while the process is idle, OTPC__TAIL_IDLE), and read `serial` and
   * `backlog` with every send -- */
  otpc__mpsc_t inbox;          /* signals, in send order */
  otpc__qlink_t rq_link;       /* run-queue link */
  uint32_t serial;             /* written before publication, then fixed */
  uint16_t backlog;            /* mq_len as published for senders (below) */
  _Atomic uint16_t urgent;     /* 1: an exit signal (or a wake-up, or
                                * process_info's question) waits in the
                                * inbox (proc.c, sched.c take_some) */
  /* -- owner only. The fields written with every message taken or
   * dispatched come last, from byte 96 on: blocks are 16-byte aligned
   * (slab.c), so that is never on a line the senders use, and a receiver
   * working through its queue does not pull those lines away from them
   * (docs/internals/performance.md). -- */
  uint32_t index;
  uint16_t flags;
  uint8_t priority;
  uint8_t why;                 /* otpc__why_t, after a switch out */
  int16_t home;                /* scheduler it is pinned to, or -1 */
  uint16_t wait_id;            /* counts waits, to drop stale wake-ups */
  otpc_buf_t *exit_reason;     /* once exiting; NULL: normal (signal.c) */
  otpc__ctx_t ctx;             /* saved context while suspended, or NULL */
  otpc__xstack_t *stack;       /* stack its frames are on, or NULL; while
                                * it is s->current and runs code, the stack
                                * that code runs on (fault.c relies on it) */
  union {
    struct { void (*fn)(void *); void *arg; } seq;
    struct { const otpc_handler_t *h; void *state; } handler;
    /* once dead and retired (reclaim.c): its place in a retired list */
    struct { struct otpc__proc *next; uint64_t epoch; } retired;
  } u;
  /* -- owner only, per message -- */
  union {
    void *init_arg;            /* handler: init's argument until it ran */
    struct otpc__sig *dispatching; /* then: the message its callback has */
  } h;
  otpc__sig_t *mq_first; /* private queue: messages taken in */
  otpc__sig_t **mq_last;
  otpc__sig_t **mq_save; /* where the current receive scans next */
  uint32_t mq_len;
  uint32_t reg_name; /* registered name or 0 */
  uint64_t reductions;
  otpc__proc_ext_t *ext;       /* the rarely needed rest, or NULL */
  const char *name_hint;       /* spawn option name, fixed at spawn */
} otpc__proc_t;

/* No 64-byte line holds both a byte the senders touch and one written
 * per message, when blocks start at multiples of 16. */
_Static_assert(offsetof(otpc__proc_t, h) >=
                   (offsetof(otpc__proc_t, urgent) + 2 + 15) / 16 * 16 + 48,
               "per-message fields share a line with the senders' fields");

/* ------------------------------------------------------------------------
 * Schedulers
 * ------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------
 * Pools for control blocks and signal nodes (slab.c)
 * ------------------------------------------------------------------------ */

typedef enum otpc__slab_id {
  OTPC__SLAB_PROC,
  OTPC__SLAB_SIG, /* signals other than messages */
  OTPC__SLAB_MSG, /* SIG_MESSAGE nodes (OTPC__SIG_MSG_SIZE bytes) */
  OTPC__SLAB_EXT, /* process extensions (otpc__proc_ext_t) */
  OTPC__SLAB_MONS, /* monitor tables of the smallest size (signal.c) */
  OTPC__SLAB_N
} otpc__slab_id_t;

/* A scheduler's two magazines for one pool, and its counts. */
/* Reductions per turn: runtime calls (sends, receives) of a sequential
 * process, or messages plus sends of a handler, before others get a go. */
#define OTPC__REDUCTIONS 2000

/* A free block in a pool: the first word links it in a magazine. */
struct otpc__free_block {
  struct otpc__free_block *next;       /* within a magazine or batch */
  struct otpc__free_block *next_batch; /* first block of a batch: the next */
};

typedef struct otpc__slab_cache {
  struct otpc__free_block *cur, *spare;
  unsigned cur_n;               /* spare, if any, is full */
  _Atomic int64_t allocs, frees;
} otpc__slab_cache_t;

struct otpc__sched;
void otpc__slab_init(void);
void otpc__slab_destroy(void);
/* Any thread; otpc__slab_alloc and otpc__slab_free below are the same
 * with the common case (a scheduler's magazine) inline. */
void *otpc__slab_alloc_any(otpc__slab_id_t id);
void otpc__slab_free_any(otpc__slab_id_t id, void *ptr);
void otpc__slab_flush(struct otpc__sched *s);
/* Blocks handed out and not given back: exact when the node is quiet. */
int64_t otpc__slab_in_use(otpc__slab_id_t id);

/* Sizes of two of a scheduler's run-queue tables (sched.c). */
#define OTPC__FRESH_MAX 1024
#define OTPC__FIFO_STAMPS 1024

typedef struct otpc__sched {
  unsigned index;
  pthread_t thread;
  otpc__proc_t *current;       /* process running now, or NULL */
  otpc__proc_t *prev;          /* process that just switched out */
  otpc__ctx_t loop_ctx;        /* where the loop waits while a context runs */
  otpc__ctx_t native_ctx;      /* the thread's own stack */
  otpc__xstack_t *loop_stack;  /* stack of the active loop instance */
  otpc__xstack_t *dead_stack;  /* a stack to free once nobody is on it */
  otpc__proc_t *called;        /* a handler its caller runs (sched.c, a
                                * call's server run by its caller), */
  otpc__xstack_t *call_stack;  /* on this stack, while the caller waits */
  otpc__ctx_t caller_ctx;      /* here, on its own stack */
  otpc__xstack_t *caller_stack;
  otpc__xstack_t *free_stacks; /* pool of clean stacks */
  otpc__xstack_t *all_stacks;  /* every stack it made, to free at stop */
  unsigned nstacks;            /* stacks made by this scheduler */
  otpc__proc_t *parked_first;  /* suspended processes holding stacks, */
  otpc__proc_t *parked_last;   /* least recently suspended first */
  otpc__mpsc_t runq[4];        /* queued by other threads, per priority */
  _Atomic int64_t runq_len;    /* all four together, not yet taken over */
  _Atomic int64_t gifts;       /* processes others handed over (sched.c) */
  struct {                     /* queued by this scheduler itself, and */
    otpc__qlink_t *head, *tail;/* those taken over from runq: a plain */
  } lq[4];                     /* FIFO per priority, this thread only */
  int64_t lq_len;              /* all four together, and fresh.n */
  uint32_t low_turn;           /* normal picks over waiting low ones */
  uint64_t fifo_in, fifo_out;  /* appends to and pops from lq[normal] */
  _Atomic uint32_t sleep_word; /* futex: bumped to wake */
  _Atomic uint32_t sleeping;
  _Atomic uint64_t epoch;      /* reclamation: last quiescent epoch seen */
  otpc__wheel_t wheel;         /* timers of processes on this scheduler */
  uint64_t rounds;
  uint64_t ref_next, ref_end;  /* refs this thread may make (process.c) */
  uint64_t turn_start;         /* reductions of the running process then */
  _Atomic int64_t homed;       /* live processes pinned here */
  struct {                     /* whether help was worth it (sched.c), */
    int64_t gifts_then;        /* owner only: gifts when it went idle, */
    int64_t since_ns;          /* when gifted work began (0: none), */
    int64_t ask_after_ns;      /* not hungry again before this, and the */
    int64_t backoff_ns;        /* wait before that after useless help */
  } help;
  otpc__slab_cache_t slab[OTPC__SLAB_N];
  struct otpc__sig *done[16]; /* messages dispatched, to free (sched.c) */
  unsigned ndone;
  /* Big tables last, away from the fields above. */
  jmp_buf loop_base;           /* the active loop instance's first frame:
                                * where an exit from a callback it
                                * dispatched goes (sched.c, exit_current) */
  struct {                     /* normal processes not run yet, the */
    uint32_t bottom, n;        /* newest run first (sched.c): a ring, */
    uint32_t picks;            /* oldest at p[bottom], and the picks */
    otpc__proc_t *p[OTPC__FRESH_MAX]; /* from it; this thread only */
  } fresh;
  uint32_t fifo_round[OTPC__FIFO_STAMPS]; /* s->rounds at each of the last
                                * appends to lq[normal], by fifo_in */
  char pad[64];
} otpc__sched_t;

/* The node: one per OS process. */
typedef struct otpc__rt {
  _Atomic int running;
  _Atomic int stopping;
  otpc_atom_t name;
  uint32_t creation;
  unsigned nsched;
  otpc__sched_t *scheds;
  size_t stack_size;
  size_t max_procs;
  _Atomic(otpc__proc_t *) *slots; /* process table */
  _Atomic uint32_t *serials;      /* next serial per slot */
  _Atomic int64_t nprocs;
  _Atomic uint64_t next_ref;
  pthread_mutex_t wait_lock;
  pthread_cond_t wait_cond;
  _Atomic unsigned rr;            /* round-robin placement */
  char cookie[256];               /* dist: otpc_node_opts_t.cookie, or "" */
  bool contain_signals;           /* otpc_node_opts_t.contain_signals */
} otpc__rt_t;

extern otpc__rt_t otpc__rt;

/* The scheduler of the calling thread, or NULL outside schedulers. */
extern __thread otpc__sched_t *otpc__self_sched;

/* Under AddressSanitizer the pools hand out malloc'd blocks (slab.c). */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define OTPC__SLAB_PLAIN_MALLOC 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define OTPC__SLAB_PLAIN_MALLOC 1
#endif

/* Counts for the owner thread alone: no read-modify-write needed. */
static inline void otpc__slab_bump(_Atomic int64_t *n) {
  atomic_store_explicit(n, atomic_load_explicit(n, memory_order_relaxed) + 1,
                        memory_order_relaxed);
}

#define OTPC__SLAB_BATCH 64

static inline void *otpc__slab_alloc(otpc__slab_id_t id) {
#ifndef OTPC__SLAB_PLAIN_MALLOC
  otpc__sched_t *s = otpc__self_sched;
  if (s != NULL && s->slab[id].cur_n > 0) {
    otpc__slab_cache_t *c = &s->slab[id];
    struct otpc__free_block *b = c->cur;
    c->cur = b->next;
    c->cur_n--;
    otpc__slab_bump(&c->allocs);
    return b;
  }
#endif
  return otpc__slab_alloc_any(id);
}

static inline void otpc__slab_free(otpc__slab_id_t id, void *ptr) {
#ifndef OTPC__SLAB_PLAIN_MALLOC
  otpc__sched_t *s = otpc__self_sched;
  if (ptr != NULL && s != NULL && s->slab[id].cur_n < OTPC__SLAB_BATCH) {
    otpc__slab_cache_t *c = &s->slab[id];
    struct otpc__free_block *b = ptr;
    otpc__slab_bump(&c->frees);
    b->next = c->cur;
    c->cur = b;
    c->cur_n++;
    return;
  }
#endif
  otpc__slab_free_any(id, ptr);
}

_Static_assert(SIG_MESSAGE == 0, "a zeroed node is a message");

static inline otpc__sig_t *otpc__sig_new_msg(void) {
  otpc__sig_t *s = otpc__slab_alloc(OTPC__SLAB_MSG);
  if (s == NULL) return NULL;
  memset(s, 0, OTPC__SIG_MSG_SIZE); /* kind 0: SIG_MESSAGE */
  return s;
}

static inline void otpc__sig_dealloc(otpc__sig_t *sig) {
  bool small =
      sig->kind == SIG_MESSAGE && !(sig->flags & (SIGF_ALIAS | SIGF_MONITOR));
  otpc__slab_free(small ? OTPC__SLAB_MSG : OTPC__SLAB_SIG, sig);
}

static inline otpc__proc_t *otpc__current(void) {
  otpc__sched_t *s = otpc__self_sched;
  return s ? s->current : NULL;
}

/* ---- stack.c ---- */
/* A clean stack for a loop instance (never evicts, never fails). */
otpc__xstack_t *otpc__xstack_get(otpc__sched_t *s);
/* A stack for a process that starts running code: clean if there is one,
 * else a new one up to the cap, else one taken from the least recently
 * suspended process by evicting it. p becomes its occupant. NULL if no
 * stack can be had at all. */
otpc__xstack_t *otpc__xstack_for_proc(otpc__sched_t *s, otpc__proc_t *p);
/* Before switching into p, which has a context: puts its frames back if
 * they were evicted (evicting whoever is in its stack) and makes it the
 * occupant; it is no longer evictable while it runs. */
void otpc__stack_enter(otpc__sched_t *s, otpc__proc_t *p);
/* p stopped running but keeps frames on its stack: it may be evicted. */
void otpc__stack_park(otpc__sched_t *s, otpc__proc_t *p);
/* p is done with its stack for good (it exited). */
void otpc__stack_release(otpc__sched_t *s, otpc__proc_t *p);
void otpc__xstack_put(otpc__sched_t *s, otpc__xstack_t *x);
void otpc__xstack_free_all(otpc__sched_t *s);
/* Switches from the current stack to `to` on stack x (NULL: the thread's
 * own), telling the sanitizers. A NULL `from` abandons the current stack
 * for good. otpc__switch_arrived() is the first call on a fresh context. */
void otpc__switch(otpc__ctx_t *from, otpc__ctx_t to, otpc__xstack_t *x);
void otpc__switch_arrived(void);
/* Calls fn(arg) on stack x from a process on stack `back`, its context
 * saved in *from (otpc__ctx_call), telling the sanitizers; fn's last call
 * before it returns is otpc__call_leave(back). */
void otpc__call_on(otpc__ctx_t *from, otpc__xstack_t *x, otpc__xstack_t *back,
                   void (*fn)(void *), void *arg);
void otpc__call_leave(otpc__xstack_t *back);
/* A clean stack, or NULL if none can be mapped (otpc__xstack_get fails
 * the node instead: a loop must have one). */
otpc__xstack_t *otpc__xstack_try(otpc__sched_t *s);
/* x held frames that were abandoned: clean again for a new context. */
void otpc__xstack_renew(otpc__xstack_t *x);
/* Records the calling thread's own stack; once per scheduler thread. */
void otpc__stack_thread_init(void);

/* ---- dist: the route to other nodes ----
 * Set by the dist layer while distribution runs (NULL otherwise). A
 * signal for a pid of another node goes to it from otpc__deliver_pid(),
 * which hands the signal over. */
typedef void (*otpc__route_fn)(otpc_pid_t to, otpc__sig_t *sig);
extern _Atomic(otpc__route_fn) otpc__remote_route;
/* The same for a message to an alias of another node (otpc_send_alias);
 * takes over msg. */
typedef void (*otpc__alias_route_fn)(const otpc_ref_t *alias, otpc_buf_t *msg,
                                     otpc_pid_t from);
extern _Atomic(otpc__alias_route_fn) otpc__alias_route;

/* ---- proc.c ---- */
int otpc__proc_new(otpc__proc_t **out, const otpc_spawn_opts_t *opts);
/* The live process for a local pid, or NULL. Call inside a read section. */
static inline otpc__proc_t *otpc__proc_lookup(otpc_pid_t pid);
static inline otpc_pid_t otpc__proc_pid(const otpc__proc_t *p);
void otpc__proc_retire(otpc__proc_t *p);
/* Pushes a signal and makes the process runnable if it was idle. */
void otpc__deliver(otpc__proc_t *p, otpc__sig_t *sig);
/* Delivers to a pid: drops the signal (and answers link/monitor
 * requests with noproc) if the process is gone. */
/* Delivers to a local pid (or answers noproc); returns the length of the
 * receiver's message queue as last seen, a hint for send's charge. */
uint32_t otpc__deliver_pid(otpc_pid_t to, otpc__sig_t *sig);
/* The same for a call's request: a receiver that the push woke and that
 * the caller may run at once (otpc__may_run_called) is left in *woken,
 * not queued, for otpc__run_called after the read section; else *woken
 * is NULL. */
uint32_t otpc__deliver_call(otpc_pid_t to, otpc__sig_t *sig,
                            otpc__proc_t **woken);

/* mq_len is written by the owner only; others read it as a hint. */
static inline void otpc__mq_len_set(otpc__proc_t *p, uint32_t n) {
  __atomic_store_n(&p->mq_len, n, __ATOMIC_RELAXED);
}

/* A send costs the sender the receiver's queue length (process.c). The
 * senders read it from `backlog`, on the line they write anyway (the
 * inbox tail); the owner republishes it only when it moved by more than
 * an eighth (and eight): a count rewritten with every message would
 * take that line away from every sender on another core each time. */
static inline void otpc__backlog_publish_as(otpc__proc_t *p, uint32_t len) {
  uint32_t n = len < UINT16_MAX ? len : UINT16_MAX; /* a send yields anyway */
  uint32_t o = __atomic_load_n(&p->backlog, __ATOMIC_RELAXED);
  uint32_t d = n > o ? n - o : o - n;
  if (d > 8 + o / 8)
    __atomic_store_n(&p->backlog, (uint16_t)n, __ATOMIC_RELAXED);
}
static inline void otpc__backlog_publish(otpc__proc_t *p) {
  otpc__backlog_publish_as(p, p->mq_len);
}
otpc__proc_ext_t *otpc__proc_ext(otpc__proc_t *p);
/* Undoes otpc__proc_new for a process that never started. */
void otpc__proc_undo(otpc__proc_t *p);
/* Makes the new process findable by its pid. */
void otpc__proc_publish(otpc__proc_t *p);
static inline bool otpc__pid_is_local(otpc_pid_t pid) {
  return pid.node == otpc__rt.name && pid.creation == otpc__rt.creation;
}

static inline otpc__proc_t *otpc__proc_lookup(otpc_pid_t pid) {
  if (!otpc__pid_is_local(pid) || pid.id >= otpc__rt.max_procs) return NULL;
  otpc__proc_t *p =
      atomic_load_explicit(&otpc__rt.slots[pid.id], memory_order_acquire);
  if (p == NULL || p->serial != pid.serial) return NULL;
  return p;
}

static inline otpc_pid_t otpc__proc_pid(const otpc__proc_t *p) {
  otpc_pid_t pid = {otpc__rt.name, p->index, p->serial, otpc__rt.creation};
  return pid;
}
int otpc__proc_table_init(size_t max);
void otpc__proc_table_free(void);
void otpc__proc_cache_flush(void);
/* One past the highest process index ever used. */
size_t otpc__proc_high_water(void);
/* A signal whose target is gone: a link or monitor request is answered
 * with noproc, anything else is dropped; frees sig. (signal.c) */
void otpc__answer_noproc(otpc__sig_t *sig, otpc_pid_t dead);

/* ---- reclaim.c: quiescent-state reclamation of control blocks ---- */
/* Around lookups on non-scheduler threads (schedulers are always
 * inside a read section: nothing to do). */
void otpc__reclaim_enter_ext(void);
void otpc__reclaim_exit_ext(void);
static inline void otpc__reclaim_enter(void) {
  if (otpc__self_sched == NULL) otpc__reclaim_enter_ext();
}
static inline void otpc__reclaim_exit(void) {
  if (otpc__self_sched == NULL) otpc__reclaim_exit_ext();
}
void otpc__reclaim_quiescent(otpc__sched_t *s);
/* The same between two process runs: frees (and moves the epoch) only
 * every so often. */
void otpc__reclaim_between_runs(otpc__sched_t *s);
void otpc__reclaim_retire(otpc__proc_t *p);
void otpc__reclaim_drain(void); /* at node stop: frees everything retired */
void otpc__reclaim_init(void);
void otpc__reclaim_offline(otpc__sched_t *s); /* going to sleep */
bool otpc__reclaim_pending(void); /* this thread holds retired blocks */
void otpc__reclaim_thread_done(void);         /* a scheduler stops */
/* Frees a block whose grace period is over (proc.c). */
void otpc__proc_free(otpc__proc_t *p);
/* Gives a control block back to its pool (the block only: see proc_free). */
void otpc__proc_dealloc(otpc__proc_t *p);

/* ---- sched.c ---- */
int otpc__sched_start_all(void);
void otpc__sched_stop_all(void);
/* Makes p runnable on a suitable scheduler. */
void otpc__make_runnable(otpc__proc_t *p);
/* Queues a new process on a scheduler (see sched.c for the rule). */
void otpc__spawn_place(otpc__proc_t *p);
/* A process that ends no longer counts where it was pinned. */
void otpc__unpin(otpc__proc_t *p);
/* Whether the running process, whose call's request just woke the
 * handler p (idle until the push), may run p's turn itself, at once,
 * instead of queueing it; then otpc__run_called(p) does, outside any read
 * section (sched.c, a call's server run by its caller). */
bool otpc__may_run_called(const otpc__proc_t *p);
void otpc__run_called(otpc__proc_t *p);
/* Suspends the calling process (in a process, on its own stack) with a
 * reason; returns when it is resumed. */
void otpc__suspend(otpc__proc_t *p, otpc__why_t why);
/* Ends the calling process with p->exit_reason set; never returns. */
_Noreturn void otpc__exit_current(otpc__proc_t *p);

/* otpc_ref_eq, inline for the monitor tables: the first word differs
 * first (it counts up). */
static inline bool otpc__ref_eq(const otpc_ref_t *a, const otpc_ref_t *b) {
  if (a->id[0] != b->id[0] || a->node != b->node ||
      a->creation != b->creation || a->len != b->len)
    return false;
  for (uint32_t i = 1; i < a->len; i++)
    if (a->id[i] != b->id[i]) return false;
  return true;
}

/* ---- signal.c ---- */
/* Takes everything from the inbox into the private queue, acting on
 * signals. Returns false if a signal ended the process (exit decided:
 * PF_EXITING set and exit_reason holds the reason). */
bool otpc__take_inbox_any(otpc__proc_t *p);
/* The same, but stops after `max` messages (signals of other kinds are
 * acted on as they come, and do not count); what is left stays in the
 * inbox, and senders are told the queue is long. */
bool otpc__take_inbox_upto(otpc__proc_t *p, uint32_t max);
/* Nothing to take (the head is the stub with nothing after it, and no
 * exit decided): the common case of a process that has just taken its
 * last message. Owner only. */
static inline bool otpc__inbox_idle(otpc__proc_t *p) {
  otpc__qlink_t *head = p->inbox.head;
  return head == &p->inbox.stub && !(p->flags & PF_EXITING) &&
         atomic_load_explicit(&head->next, memory_order_acquire) == NULL;
}
static inline bool otpc__take_inbox(otpc__proc_t *p) {
  return otpc__inbox_idle(p) || otpc__take_inbox_any(p);
}
/* Finishes the exit of p, which just stopped running for good: runs
 * terminate, tells links and monitors, frees what it owned, retires it. */
void otpc__finish_exit(otpc__sched_t *s, otpc__proc_t *p);
/* A new buffer holding one atom (NULL if out of memory). */
otpc_buf_t *otpc__atom_buf(otpc_atom_t a);
/* Links and monitors of the calling (owning) process. */
enum { MON_WATCHING = 1, MON_WATCHED = 2 };
int otpc__link_add(otpc__proc_t *p, otpc_pid_t pid);
bool otpc__link_remove(otpc__proc_t *p, otpc_pid_t pid);
size_t otpc__link_count(const otpc__proc_t *p);
/* Bytes the extension and its tables take (owner only). */
size_t otpc__ext_bytes(const otpc__proc_t *p);
/* Frees empty tables, and the extension if nothing in it is used. */
void otpc__ext_trim(otpc__proc_t *p);
int otpc__mon_add(otpc__proc_t *p, const otpc_ref_t *ref, otpc_pid_t other,
                  uint32_t dir, otpc_buf_t *name);
bool otpc__mon_remove_watching(otpc__proc_t *p, const otpc_ref_t *ref,
                               otpc_pid_t *target);
/* Makes the entry of a call's monitor that was pending (SIGF_MON_PENDING,
 * cleared): false if there is no memory for it, the exit decided. */
bool otpc__mon_pending_make(otpc__proc_t *p, otpc__sig_t *m);
/* A monitor table's size with room for 4, the smallest: a pool of its
 * own, as the process extension has (a call's monitor comes and goes, and
 * a handler going idle frees empty tables and an unused extension). */
size_t otpc__mon_small_bytes(void);
void otpc__mon_table_free(struct otpc__mon *m);
/* Frees an extension block (not what it points to). */
void otpc__ext_free(otpc__proc_ext_t *x);
size_t otpc__mon_count(const otpc__proc_t *p, unsigned dir);

/* ---- alias.c: process aliases (see its head comment) ---- */
/* How an alias goes: made by otpc_alias (explicit_unalias, reply) or by a
 * monitor (its three modes). */
enum {
  ALIAS_EXPLICIT = 1,
  ALIAS_REPLY,
  ALIAS_MON_EXPLICIT,
  ALIAS_MON_DEMONITOR,
  ALIAS_MON_REPLY_DEMONITOR
};
/* A new active alias of p (the owner), one of the modes above. */
int otpc__alias_new(otpc__proc_t *p, unsigned mode, otpc_ref_t *out);
/* Owner only: deactivates an alias; whether it was active. */
bool otpc__alias_drop(otpc__proc_t *p, const otpc_ref_t *alias);
/* take_inbox: whether a message sent to alias is taken in (the alias is
 * active); deactivates a reply alias, and removes its monitor for
 * reply_demonitor. */
bool otpc__alias_accept(otpc__proc_t *p, const otpc_ref_t *alias);
/* The monitor ref of p is gone (demonitor, or its DOWN): its alias goes
 * too if it was made with the demonitor or reply_demonitor mode. */
void otpc__alias_monitor_gone(otpc__proc_t *p, const otpc_ref_t *ref);
/* otpc_monitor_name, its ref an alias too if alias is an ALIAS_MON_*
 * mode (0: none). (process.c) */
int otpc__monitor_name(otpc_atom_t name, unsigned alias, otpc_ref_t *ref);
/* A monitor that rides with the request that needs it (gen_server's
 * call): otpc__monitor_request is otpc_monitor_opts on our side only (the
 * ref, our entry), and otpc__send_monitored then sends msg to target and
 * has target take the monitor just before it, in one signal; to another
 * node, a monitor signal and the message. It takes over the caller's
 * reference to msg, as otpc__send_owned does. Nothing else may be sent
 * to target in between; to give up instead, otpc_demonitor. (process.c) */
int otpc__monitor_request(otpc_pid_t target, const otpc_monitor_opts_t *opts,
                          otpc_ref_t *ref);
int otpc__send_monitored(otpc_pid_t target, const otpc_ref_t *ref,
                         otpc_buf_t *msg);
/* otpc_send, taking over the caller's reference to msg (released when the
 * send fails too): no count taken for the message and given back after,
 * two locked instructions on a buffer the sender is done with. */
int otpc__send_owned(otpc_pid_t to, otpc_buf_t *msg);
/* The same, the message's node flagged (SIGF_DEMONITORED). */
int otpc__send_owned_flagged(otpc_pid_t to, otpc_buf_t *msg, uint16_t flags);
/* For a handler answering the call it is dispatching, which caller
 * sent: drops the call's monitor if its entry was never made
 * (SIGF_MON_PENDING), and says whether it did, so that the reply can go
 * flagged SIGF_DEMONITORED and the caller need not send a demonitor.
 * (signal.c) */
bool otpc__dispatch_answered(otpc_pid_t caller);
/* otpc_receive_fn that also gives the node's SIGF_* flags of the message
 * received. (process.c) */
int otpc__receive_fn_flags(bool (*accept)(otpc_term_t msg, void *ctx),
                           void *ctx, int64_t timeout_ms, otpc_buf_t **msg,
                           uint16_t *flags);
/* Whether ref has the shape of an alias made on this node. */
bool otpc__ref_is_alias(const otpc_ref_t *ref);
/* Sends msg (taken over) from `from` to an alias of this node: to the
 * process it names, if alive, flagged SIGF_ALIAS; else it is dropped.
 * Returns the receiver's queue length hint, as otpc__deliver_pid. */
uint32_t otpc__alias_deliver(const otpc_ref_t *alias, otpc_buf_t *msg,
                             otpc_pid_t from);
/* Frees p's alias table (it died, or the node stops). */
void otpc__alias_free_all(otpc__proc_t *p);
/* Bytes the table takes; whether it is empty (for otpc__ext_trim). */
size_t otpc__alias_bytes(const otpc__proc_t *p);
bool otpc__alias_none(const otpc__proc_t *p);

/* ---- registry.c ---- */
void otpc__registry_drop(otpc__proc_t *p);
void otpc__registry_clear(void);

/* ---- node.c ---- */
void otpc__resources_release(otpc__proc_t *p);
/* The absolute time on `clock` ms from now, for pthread_cond_timedwait. */
struct timespec otpc__after_ms(clockid_t clock, int64_t ms);

/* ---- fault.c: fault containment (see its head comment) ---- */
/* The handler for SIGSEGV, SIGBUS, SIGFPE and SIGILL, at node start and
 * stop (the previous handlers are chained to, then put back). */
void otpc__fault_install(void);
void otpc__fault_uninstall(void);
/* A scheduler thread's alternate signal stack, at its start and end. */
void otpc__fault_thread_init(void);
void otpc__fault_thread_done(void);
/* Calls p's handler terminate (from otpc__finish_exit); an exit from
 * inside it comes back here through otpc__terminate_exit(), its reason
 * in p->exit_reason. */
void otpc__run_terminate(otpc__proc_t *p);
_Noreturn void otpc__terminate_exit(otpc__proc_t *p);

/* ---- etimer.c ---- */
int otpc__timers_start(void);
void otpc__timers_stop(void);
/* A process died: its timers go with it, as Erlang cancels the timers
 * whose destination is a pid when that process exits. */
void otpc__timers_cancel_for(otpc_pid_t pid);

/* ---- heart.c ---- */
/* Node start (schedulers up): beats begin if a watchdog is found. */
void otpc__heart_start(void);
/* Node stop, first thing: beats end. */
void otpc__heart_pause(void);
/* Node stop, last thing: tells the watchdog the exit to come is clean. */
void otpc__heart_stopped(void);

/* ---- io.c ---- */
int otpc__io_start(void);
void otpc__io_stop(void);
int otpc__dirty_start(unsigned n);
void otpc__dirty_stop(void);
/* Descriptor polling by the schedulers (sched.c's sleep and wake points):
 * poll takes ready descriptors without blocking (poll_busy: only when no
 * scheduler sleeps in the set); sleep blocks s in epoll_wait, unless no
 * descriptor is waited on or another scheduler already does (false: use
 * the futex, for at most *timeout_ms, which it may shorten); after_sleep
 * handles what it took, once s is back online; kick wakes s if it sleeps
 * there (false: it does not). */
int otpc__io_poll(void);
int otpc__io_poll_busy(void);
bool otpc__io_sleep(otpc__sched_t *s, uint32_t word, int64_t *timeout_ms);
void otpc__io_after_sleep(void);
bool otpc__io_kick(otpc__sched_t *s);
/* A SIG_WAKE taken in by p (from take_inbox). */
void otpc__on_wake(otpc__proc_t *p, otpc__sig_t *sig);
/* p dies while its dirty job may still run: drop p's share of it. */
void otpc__dirty_abandon(otpc__proc_t *p);

#endif /* OTPC_RT_INT_H */
