/*
 * sched.c: scheduler threads, run queues, and running processes on
 * execution stacks (see docs/internals/stacks.md for the why).
 *
 * Each scheduler runs a loop that takes a runnable process and runs it:
 *
 *   - a handler process between callbacks is dispatched with a plain call
 *     (handler_run) on the loop's own stack;
 *   - a sequential process, or a handler blocked inside a callback, has a
 *     saved context and is entered with a stack switch.
 *
 * When a process stops running it leaves a reason in p->why and sets
 * s->prev; the loop code that gets control next calls settle(), which
 * does what the reason asks: go idle, run again later, or finish an exit.
 *
 * Loop instances are disposable: all scheduling state lives in
 * otpc__sched_t, so when a handler blocks inside a callback (its frames sit
 * on top of the loop's), the scheduler simply starts a fresh loop instance
 * on another stack; and when such a handler later returns from its
 * callback into the old loop's frames, that old loop finishes the dispatch
 * and hands control back to the active loop, ending itself.
 *
 * Stacks are shared by eviction (stack.c): a process that is suspended
 * with frames on a stack is "parked" and may have its frames copied out
 * so that the stack can serve another process; otpc__stack_enter() puts
 * them back, at the same addresses, before it runs again.
 *
 * Runnability: a process is queued or running, or idle with its inbox's
 * tail marked (rt_int.h, OTPC__TAIL_IDLE). A process that goes idle marks
 * the empty inbox's tail in one compare-and-exchange (go_idle), which
 * fails if a push came; a sender's push exchanges the tail, and the one
 * that swaps out a marked tail queues the process. Both act on the one
 * word, so exactly one of them decides and no wake-up is lost. A timer
 * takes the mark off the same way (fire_timer), and process_info reads
 * it.
 *
 * Sleeping: a scheduler with nothing to run announces `sleeping`, looks at
 * its run queue once more, and waits on its futex word; anyone who queues
 * work for it after seeing `sleeping` bumps the word and wakes it.
 * Descriptors are polled by the schedulers (io.c): while spinning, between
 * processes when busy, and one sleeper sleeps in epoll_wait instead of on
 * its futex (wake_sched then kicks it through an eventfd).
 */
#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "rt_int.h"

__thread otpc__sched_t *otpc__self_sched;

/* The loop's base (loop_entry, otpc__exit_current): the compiler's own
 * setjmp, a few stores and no call, unless a sanitizer must see the jump
 * to keep its view of the stack right: then the C library's, which ASan
 * and TSan intercept. Also the C library's where the compiler has none
 * (clang for aarch64). */
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define LIBC_JUMP 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define LIBC_JUMP 1
#endif
#if !defined(__x86_64__) && !(defined(__aarch64__) && !defined(__clang__))
#define LIBC_JUMP 1
#endif
#ifdef LIBC_JUMP
#define base_set(b) setjmp(b)
#define base_go(b) longjmp(b, 1)
#else
#define base_set(b) __builtin_setjmp((void **)(b))
#define base_go(b) __builtin_longjmp((void **)(b), 1)
#endif

#if defined(__x86_64__)
#define cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ volatile("yield")
#else
#define cpu_relax() ((void)0)
#endif

#define SPIN_ROUNDS 2000  /* looks at the run queue before sleeping (~50 us) */
#define RECLAIM_NAP_MS 5  /* longest sleep while retired blocks wait */
#define IO_SPIN_EVERY 100 /* spin rounds between looks at descriptors */
#define IO_BUSY_EVERY 32  /* processes run between looks, when busy */

static void sched_loop(otpc__sched_t *s, otpc__xstack_t *mine);

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t otpc_now_ms(void) { return now_ns() / 1000000; }

static void futex_wait(_Atomic uint32_t *word, uint32_t expected,
                       int64_t timeout_ms) {
  struct timespec ts, *tp = NULL;
  if (timeout_ms >= 0) {
    ts.tv_sec = timeout_ms / 1000;
    ts.tv_nsec = (timeout_ms % 1000) * 1000000;
    tp = &ts;
  }
  syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expected, tp, NULL,
          0);
}

static void futex_wake(_Atomic uint32_t *word) {
  syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* ------------------------------------------------------------------------
 * Run queues
 * ------------------------------------------------------------------------ */

static void wake_sched(otpc__sched_t *s) {
  atomic_fetch_add(&s->sleep_word, 1);
  if (!otpc__io_kick(s)) futex_wake(&s->sleep_word); /* or in epoll_wait */
}

/* Schedulers with nothing to do, one bit each (the first 64): a busy
 * scheduler hands them processes that become runnable. */
static _Atomic uint64_t hungry;

static uint64_t bit_of(const otpc__sched_t *s) {
  return s->index < 64 ? (uint64_t)1 << s->index : 0;
}

/*
 * Each scheduler has two run queues per priority: the shared one (runq,
 * an MPSC queue) that other threads push to, and a local FIFO (lq) that
 * only its own thread touches. A process that the scheduler makes
 * runnable itself (the usual case: a process it runs sent a message)
 * goes to the local queue with no atomic operation; before each pick the
 * scheduler moves whatever others pushed to the end of its local queue,
 * in their order, so both kinds wait their turn in the order they came.
 */
static otpc__proc_t *proc_of(otpc__qlink_t *l) {
  return (otpc__proc_t *)((char *)l - offsetof(otpc__proc_t, rq_link));
}

static void lq_append(otpc__sched_t *s, unsigned prio, otpc__qlink_t *first,
                      otpc__qlink_t *last, int64_t n) {
  if (prio == OTPC_PRIO_NORMAL) { /* when they came (fifo_due, below) */
    uint32_t now = (uint32_t)s->rounds;
    for (int64_t i = 0; i < n; i++)
      s->fifo_round[s->fifo_in++ % OTPC__FIFO_STAMPS] = now;
  }
  atomic_store_explicit(&last->next, NULL, memory_order_relaxed);
  if (s->lq[prio].tail != NULL)
    atomic_store_explicit(&s->lq[prio].tail->next, first, memory_order_relaxed);
  else
    s->lq[prio].head = first;
  s->lq[prio].tail = last;
  s->lq_len += n;
}

static otpc__qlink_t *lq_pop(otpc__sched_t *s, unsigned prio) {
  otpc__qlink_t *l = s->lq[prio].head;
  if (l == NULL) return NULL;
  s->lq[prio].head = atomic_load_explicit(&l->next, memory_order_relaxed);
  if (s->lq[prio].head == NULL) s->lq[prio].tail = NULL;
  s->lq_len--;
  if (prio == OTPC_PRIO_NORMAL) s->fifo_out++;
  return l;
}

/*
 * Fresh processes. A normal process spawned by a process running here,
 * to run here, goes to a small stack of its own (s->fresh), and the
 * newest of those runs first: a tree of processes (each spawning a few
 * that report back) is then walked depth first, and only a path of it,
 * with the siblings along that path, is alive at a time, its memory
 * reused while still in the cache. Put at the back of the FIFO, the
 * whole tree was spawned, level by level, before its first leaf ran
 * (skynet: 1.1 M processes and 310 MiB of fresh memory at once;
 * docs/internals/performance.md).
 *
 * Fairness, as far as Erlang promises it (every runnable process gets
 * its turn, none starves):
 *   - the FIFO's head waits for fresh ones at most FIFO_WAIT picks
 *     (fifo_due); longer, and the FIFO is served until its head is a
 *     newer one. A process in the FIFO is so delayed by at most
 *     FIFO_WAIT picks more than it would be without the stack, however
 *     much is spawned;
 *   - the stack holds OTPC__FRESH_MAX; spawning onto a full one moves its
 *     oldest to the back of the FIFO (a loop spawning thousands runs them
 *     in the FIFO's order, as before);
 *   - every FRESH_OLDEST_EVERY-th pick from it takes its oldest instead,
 *     so that one buried under a steady stream of newer ones still runs.
 * Work sharing hands the oldest ones over first (the largest subtrees).
 * One spawned for another scheduler, from outside the schedulers, or
 * handed over by share_work, becomes fresh there when it is taken in
 * from the shared queue (take_over); one of another priority queues as
 * any runnable process does.
 */
#define FIFO_WAIT 64
#define FRESH_OLDEST_EVERY 4096

/* Whether the normal FIFO's head has waited long enough for fresh ones.
 * A FIFO longer than the stamps kept has. */
static bool fifo_due(const otpc__sched_t *s) {
  if (s->lq[OTPC_PRIO_NORMAL].head == NULL) return false;
  if (s->fifo_in - s->fifo_out > OTPC__FIFO_STAMPS) return true;
  uint32_t came = s->fifo_round[s->fifo_out % OTPC__FIFO_STAMPS];
  return (uint32_t)s->rounds - came >= FIFO_WAIT;
}

static otpc__proc_t *fresh_oldest(otpc__sched_t *s) {
  otpc__proc_t *p = s->fresh.p[s->fresh.bottom];
  s->fresh.bottom = (s->fresh.bottom + 1) % OTPC__FRESH_MAX;
  s->fresh.n--;
  s->lq_len--;
  return p;
}

static otpc__proc_t *fresh_newest(otpc__sched_t *s) {
  s->fresh.n--;
  s->lq_len--;
  return s->fresh.p[(s->fresh.bottom + s->fresh.n) % OTPC__FRESH_MAX];
}

static void fresh_push(otpc__sched_t *s, otpc__proc_t *p) {
  if (s->fresh.n == OTPC__FRESH_MAX) { /* the oldest to the FIFO */
    otpc__proc_t *old = fresh_oldest(s);
    lq_append(s, OTPC_PRIO_NORMAL, &old->rq_link, &old->rq_link, 1);
  }
  s->fresh.p[(s->fresh.bottom + s->fresh.n) % OTPC__FRESH_MAX] = p;
  s->fresh.n++;
  s->lq_len++;
}

/* The next normal process: a fresh one unless the FIFO is due. */
static inline otpc__proc_t *pop_normal(otpc__sched_t *s) {
  if (s->fresh.n > 0 && !fifo_due(s)) {
    return ++s->fresh.picks % FRESH_OLDEST_EVERY == 0 ? fresh_oldest(s)
                                                      : fresh_newest(s);
  }
  otpc__qlink_t *l = lq_pop(s, OTPC_PRIO_NORMAL);
  return l != NULL ? proc_of(l) : NULL;
}

/* Moves what other threads queued to the local queues; a normal process
 * that has not run yet (spawned there for here, or handed over) is a
 * fresh one here (below). */
static void take_over(otpc__sched_t *s) {
  /* Pushers count before they push: nothing counted, nothing to take (a
   * count not seen yet is seen at the next pick, or before sleeping). */
  if (atomic_load_explicit(&s->runq_len, memory_order_relaxed) == 0) return;
  int64_t n = 0;
  for (unsigned prio = 0; prio < 4; prio++) {
    otpc__qlink_t *l;
    while ((l = otpc__mpsc_pop(&s->runq[prio])) != NULL) {
      if (prio == OTPC_PRIO_NORMAL && !(proc_of(l)->flags & PF_STARTED))
        fresh_push(s, proc_of(l));
      else
        lq_append(s, prio, l, l, 1);
      n++;
    }
  }
  if (n > 0) atomic_fetch_sub_explicit(&s->runq_len, n, memory_order_relaxed);
}

static void enqueue(otpc__sched_t *s, otpc__proc_t *p) {
  unsigned prio = __atomic_load_n(&p->priority, __ATOMIC_RELAXED) & 3;
  if (s == otpc__self_sched) { /* awake, and the only one to touch lq */
    lq_append(s, prio, &p->rq_link, &p->rq_link, 1);
    return;
  }
  atomic_fetch_add_explicit(&s->runq_len, 1, memory_order_relaxed);
  otpc__mpsc_push(&s->runq[prio], &p->rq_link);
  /* The push (seq_cst) and this load are ordered against the sleeper's
   * store of `sleeping` and second look at its queues (next_runnable). */
  if (atomic_load(&s->sleeping)) wake_sched(s);
}

/* Processes waiting to run here (an owner's figure: a hint elsewhere). */
static int64_t queued(otpc__sched_t *s) {
  return s->lq_len + atomic_load_explicit(&s->runq_len, memory_order_relaxed);
}

/*
 * Erlang's priorities: max before high before normal, strictly; low
 * shares normal's turn but waits: it gets one pick after normal has been
 * picked eight times over it (and every pick when nothing normal waits),
 * so it is slower, never starved, and a low process never overtakes a
 * normal one that became runnable with it.
 */
static otpc__proc_t *dequeue(otpc__sched_t *s) {
  take_over(s);
  otpc__qlink_t *l = lq_pop(s, OTPC_PRIO_MAX);
  if (l == NULL) l = lq_pop(s, OTPC_PRIO_HIGH);
  if (l != NULL) return proc_of(l);
  otpc__proc_t *p = NULL;
  if (s->low_turn < 8) {
    p = pop_normal(s);
    if (p != NULL && s->lq[OTPC_PRIO_LOW].head != NULL)
      s->low_turn++; /* picked over a waiting low one */
  }
  if (p == NULL) {
    l = lq_pop(s, OTPC_PRIO_LOW);
    if (l != NULL) {
      s->low_turn = 0;
      p = proc_of(l);
    } else {
      p = pop_normal(s);
    }
  }
  return p;
}

/*
 * Work sharing. A scheduler that runs out of work says so in `hungry`
 * (before it spins, so help can come before it sleeps), unless the help
 * it was given lately did not pay (want_help, below). Run queues have
 * one consumer, so nobody steals: the busy scheduler looks at `hungry`
 * between processes and hands over up to half of its normal queue in one
 * push. Only handler processes move in bulk: a sequential process stays
 * on the scheduler where it first runs (its frames belong to that
 * scheduler's stacks), so moving hundreds of new ones at once would pin
 * them all on one side, and a crowd of them blocked there would leave the
 * other side idle; they spread one at a time (otpc__make_runnable). The
 * ones kept go to the back of the queue. Fresh ones (above) are handed
 * over first, oldest first.
 */
#define SHARE_MIN 8   /* fewer waiting: not worth a hand-over */
#define SHARE_MAX 256

static void share_work(otpc__sched_t *s) {
  uint64_t h = atomic_load_explicit(&hungry, memory_order_relaxed) & ~bit_of(s);
  if (h == 0) return;
  take_over(s);
  int64_t len = s->lq_len;
  if (len < SHARE_MIN) return;
  uint64_t b = h & -h;
  if (!(atomic_fetch_and(&hungry, ~b) & b)) return; /* someone else helped */
  otpc__sched_t *to = &otpc__rt.scheds[__builtin_ctzll(b)];
  otpc__qlink_t *give = NULL, *give_last = NULL, *keep = NULL,
                *keep_last = NULL;
  int64_t n = len / 2 < SHARE_MAX ? len / 2 : SHARE_MAX, given = 0, kept = 0;
  for (int64_t i = 0; i < n; i++) {
    otpc__qlink_t *l = s->fresh.n > 0 ? &fresh_oldest(s)->rq_link
                                      : lq_pop(s, OTPC_PRIO_NORMAL);
    if (l == NULL) break;
    otpc__proc_t *p = proc_of(l);
    bool pinned = atomic_load_explicit((_Atomic int16_t *)&p->home,
                                       memory_order_relaxed) >= 0 ||
                  !(p->flags & PF_HANDLER);
    otpc__qlink_t **first = pinned ? &keep : &give, **last = pinned ? &keep_last : &give_last;
    if (*first == NULL)
      *first = l;
    else
      atomic_store_explicit(&(*last)->next, l, memory_order_relaxed);
    *last = l;
    given += !pinned;
    kept += pinned;
  }
  if (keep != NULL)
    lq_append(s, OTPC_PRIO_NORMAL, keep, keep_last, kept);
  if (give == NULL) return;
  atomic_fetch_add_explicit(&to->runq_len, given, memory_order_relaxed);
  atomic_fetch_add_explicit(&to->gifts, given, memory_order_relaxed);
  otpc__mpsc_push_chain(&to->runq[OTPC_PRIO_NORMAL], give, give_last);
  if (atomic_load(&to->sleeping)) wake_sched(to); /* as in enqueue */
}

static bool runq_nonempty(otpc__sched_t *s) {
  if (s->lq_len > 0) return true;
  for (int i = 0; i < 4; i++)
    if (otpc__mpsc_nonempty(&s->runq[i])) return true;
  return false;
}

/* Where a process that became runnable should run: where it is pinned, or
 * with whoever woke it (the message it was sent is hot in that cache), or,
 * from outside the schedulers, round-robin. One process at a time goes to
 * an idle scheduler only while few wait here: with SHARE_MIN or more,
 * share_work hands over a batch after this run, and moving them one by
 * one as well cost each its control block, message and counts crossing
 * between the cores (docs/internals/performance.md). */
static inline otpc__sched_t *runnable_target(otpc__proc_t *p) {
  int16_t home = atomic_load_explicit((_Atomic int16_t *)&p->home,
                                      memory_order_relaxed);
  otpc__sched_t *s;
  if (home >= 0) {
    s = &otpc__rt.scheds[home];
  } else if (otpc__self_sched != NULL) {
    s = otpc__self_sched;
    /* Busy here and someone idle: give it the work instead; with a long
     * queue here, share_work hands over a batch after this run. */
    uint64_t h = atomic_load_explicit(&hungry, memory_order_relaxed) &
                 ~bit_of(s);
    int64_t n = h != 0 ? queued(s) : 0;
    if (n > 0 && n < SHARE_MIN) {
      uint64_t b = h & -h;
      if (atomic_fetch_and(&hungry, ~b) & b) {
        s = &otpc__rt.scheds[__builtin_ctzll(b)];
        atomic_fetch_add_explicit(&s->gifts, 1, memory_order_relaxed);
      }
    }
  } else
    s = &otpc__rt.scheds[atomic_fetch_add(&otpc__rt.rr, 1) % otpc__rt.nsched];
  return s;
}

void otpc__make_runnable(otpc__proc_t *p) { enqueue(runnable_target(p), p); }

static void pin(otpc__sched_t *s, otpc__proc_t *p) {
  if (p->home >= 0) return;
  atomic_fetch_add_explicit(&s->homed, 1, memory_order_relaxed);
  atomic_store_explicit((_Atomic int16_t *)&p->home, (int16_t)s->index,
                        memory_order_relaxed);
}

/*
 * Where a new process starts. A handler goes where a woken process goes
 * (otpc__make_runnable: near the process that will talk to it, unless that
 * scheduler is busy and another idle), and may move between messages
 * later. A sequential process never moves once it has run, so it is
 * placed for good now: on the scheduler with the fewest processes pinned
 * to it, this one on a tie. A crowd of clients spawned in a loop so
 * spreads over the schedulers instead of piling up on the spawner's. One
 * that starts here, at normal priority, is a fresh one (above).
 */
void otpc__spawn_place(otpc__proc_t *p) {
  otpc__sched_t *self = otpc__self_sched;
  if (!(p->flags & PF_HANDLER) && self != NULL) {
    otpc__sched_t *best = self;
    int64_t least = atomic_load_explicit(&self->homed, memory_order_relaxed);
    for (unsigned i = 0; i < otpc__rt.nsched; i++) {
      otpc__sched_t *s = &otpc__rt.scheds[i];
      int64_t n = atomic_load_explicit(&s->homed, memory_order_relaxed);
      if (n < least) {
        least = n;
        best = s;
      }
    }
    pin(best, p);
  }
  otpc__sched_t *s = runnable_target(p);
  unsigned prio = __atomic_load_n(&p->priority, __ATOMIC_RELAXED) & 3;
  if (s == self && prio == OTPC_PRIO_NORMAL)
    fresh_push(s, p); /* runs before older ones (above) */
  else
    enqueue(s, p);
}

void otpc__unpin(otpc__proc_t *p) {
  if (p->home >= 0)
    atomic_fetch_sub_explicit(&otpc__rt.scheds[p->home].homed, 1,
                              memory_order_relaxed);
}

/*
 * Messages a handler has dispatched are freed a batch at a time. Freeing
 * one drops a reference to its buffer, which its sender (often on the
 * other core, sending the same buffer again and again) keeps writing:
 * freed one by one, each waits for that line to come over; a batch asks
 * for all its lines first, and they come together.
 */
#define DONE_BATCH 16

static void done_flush(otpc__sched_t *s) {
  unsigned n = s->ndone;
  for (unsigned i = 0; i < n; i++) __builtin_prefetch(s->done[i]->buf, 1);
  for (unsigned i = 0; i < n; i++) otpc__sig_free(s->done[i]);
  s->ndone = 0;
}

static inline void done_add(otpc__sched_t *s, otpc__sig_t *m) {
  s->done[s->ndone++] = m;
  if (s->ndone == DONE_BATCH) done_flush(s);
}

/* ------------------------------------------------------------------------
 * After a process stops running
 * ------------------------------------------------------------------------ */

/*
 * p waits for a signal: its inbox is marked idle unless something came
 * (a push exchanged the tail, perhaps still half done), and then it runs
 * again. Once marked, p is the next sender's (or timer's) to queue and no
 * longer ours to touch.
 *
 * A receive timeout needs no check here: timers fire in this scheduler's
 * loop, never while p is between running and idle.
 */
static void go_idle(otpc__sched_t *s, otpc__proc_t *p) {
  /* A handler between messages holds no stack: nor empty tables. */
  if (p->ext != NULL && p->stack == NULL) otpc__ext_trim(p);
  otpc__backlog_publish(p); /* what is left for the senders' charge */
  if (otpc__inbox_mark_idle(&p->inbox)) return; /* a sender queues it */
  enqueue(s, p); /* something came: still ours, run it again */
}

static void settle(otpc__sched_t *s) {
  if (s->ndone > 0) done_flush(s); /* nothing waits once a process stops */
  if (s->dead_stack != NULL) { /* a loop instance ended on it */
    otpc__xstack_put(s, s->dead_stack);
    s->dead_stack = NULL;
  }
  otpc__proc_t *p = s->prev;
  s->prev = NULL;
  if (p == NULL) return;
  if (p->why != WHY_EXITED && p->stack != NULL) otpc__stack_park(s, p);
  switch (p->why) {
    case WHY_BLOCKED: go_idle(s, p); break;
    case WHY_YIELD: enqueue(s, p); break;
    case WHY_EXITED: otpc__finish_exit(s, p); break;
    default: break;
  }
}

/* ------------------------------------------------------------------------
 * Entering processes
 * ------------------------------------------------------------------------ */

/* The loop instance itself; apart from loop_entry, because a function
 * that calls setjmp is compiled with little kept in registers across
 * calls, and the loop inlines the whole dispatch. */
static __attribute__((noinline)) void loop_run(otpc__sched_t *s,
                                               otpc__xstack_t *mine) {
  settle(s);
  sched_loop(s, mine);
}

/* First code of a fresh loop instance. An exit from a callback that this
 * instance dispatched comes back to the setjmp (otpc__exit_current): from
 * there on, the stack holds a fresh instance. Neither s nor mine changes
 * after the setjmp. This frame must stay live under loop_run's: the abort
 * after the call (loop_run never returns) keeps a compiler from making it
 * a tail call, which would reuse the frame the setjmp saved (clang did). */
static void loop_entry(void *arg) {
  otpc__switch_arrived();
  otpc__sched_t *s = arg;
  otpc__xstack_t *mine = s->loop_stack;
  (void)base_set(s->loop_base);
  loop_run(s, mine);
  abort();
}

/* First code of a sequential process. */
static void seq_entry(void *arg) {
  otpc__switch_arrived();
  otpc__proc_t *p = arg;
  p->u.seq.fn(p->u.seq.arg);
  otpc_exit_atom(OTPC_ATOM_NORMAL);
}

/*
 * A handler takes its inbox in TAKE_MAX messages at a time, when fewer
 * than TAKE_LOW wait in its private queue. Taken all at once, a long
 * inbox (a receiver flooded by senders on the other core) was walked
 * once to move it and again, long after, to dispatch it: every node came
 * from memory twice. In small takes it is dispatched while it is still
 * in the cache. An exit signal (or a wake-up, or process_info's
 * question) raises `urgent` (proc.c), and the next take takes
 * everything, as a receive does: an exit is acted on after at most
 * TAKE_LOW + TAKE_MAX messages more.
 */
#define TAKE_LOW 64
#define TAKE_MAX 256

static bool take_some(otpc__proc_t *p) {
  if (otpc__inbox_idle(p)) return true;
  uint32_t max = TAKE_MAX;
  if (atomic_load_explicit(&p->urgent, memory_order_relaxed) &&
      atomic_exchange_explicit(&p->urgent, 0, memory_order_acquire))
    max = UINT32_MAX;
  return otpc__take_inbox_upto(p, max);
}

/* Runs a handler's callbacks for the messages it has, up to the budget. */
static void handler_run(otpc__sched_t *s, otpc__proc_t *p) {
  const otpc_handler_t *h = p->u.handler.h;
  if (!(p->flags & PF_STARTED)) {
    p->flags |= PF_STARTED;
    void *arg = p->h.init_arg;
    p->h.dispatching = NULL;
    int rc = h->init ? h->init(arg, &p->u.handler.state) : 0;
    if (rc != OTPC_CONTINUE) {
      p->exit_reason = rc == OTPC_STOP
                           ? NULL /* normal */
                           : otpc__atom_buf(otpc_atom("init_failed"));
      p->why = WHY_EXITED;
      return;
    }
  }
  /* A message counts one reduction, and so does each send its callback
   * makes: the same budget per turn as a sequential process. */
  while (p->reductions - s->turn_start < OTPC__REDUCTIONS) {
    if ((p->mq_first == NULL || p->mq_len < TAKE_LOW) && !take_some(p)) {
      p->why = WHY_EXITED;
      return;
    }
    otpc__sig_t *m = p->mq_first;
    if (m == NULL) {
      p->why = WHY_BLOCKED;
      return;
    }
    p->mq_first = (otpc__sig_t *)atomic_load_explicit(&m->link.next,
                                                      memory_order_relaxed);
    if (p->mq_first == NULL) p->mq_last = &p->mq_first;
    p->mq_save = &p->mq_first;
    otpc__mq_len_set(p, p->mq_len - 1);
    p->reductions++;
    /* The process owns the message while its callback runs: if the
     * callback ends the process, otpc__finish_exit frees it. */
    p->h.dispatching = m;
    int rc = h->handle(p->u.handler.state, m->buf);
    p->h.dispatching = NULL;
    /* A call not answered as it was handled: its monitor now (signal.c). */
    if (OTPC_UNLIKELY(m->flags & SIGF_MON_PENDING) &&
        !otpc__mon_pending_make(p, m)) {
      otpc__sig_free(m);
      p->why = WHY_EXITED;
      return;
    }
    if (p->mq_first == NULL && s->ndone == 0)
      otpc__sig_free(m); /* nothing follows: no batch to gain from */
    else
      done_add(s, m);
    if (rc == OTPC_STOP) {
      otpc_buf_unref(p->exit_reason);
      p->exit_reason = NULL; /* normal */
      p->why = WHY_EXITED;
      return;
    }
  }
  p->why = WHY_YIELD;
}

/* A handler that blocked in a callback on `mine` (a loop instance's
 * stack, or a call stack), was resumed since by the loop instance now
 * active, and has returned from the callback into frames that nothing
 * waits on any more: finishes the dispatch and hands over to the active
 * loop. The stack may be the home of processes evicted from it, so
 * nothing may stay on it; it is freed once off it. */
static _Noreturn void dispatch_done_elsewhere(otpc__sched_t *s,
                                              otpc__proc_t *p,
                                              otpc__xstack_t *mine) {
  p->stack = NULL;
  s->current = NULL;
  s->prev = p;
  mine->occupant = NULL;
  settle(s);
  if (mine->waiters == 0) s->dead_stack = mine;
  otpc__switch(NULL, s->loop_ctx, s->loop_stack);
  abort(); /* never resumed */
}

static void run_proc(otpc__sched_t *s, otpc__proc_t *p,
                     otpc__xstack_t *mine) {
  s->current = p;
  s->turn_start = p->reductions;
  if ((p->flags & PF_HANDLER) && p->ctx == NULL) {
    p->stack = mine;
    handler_run(s, p);
    if (s->loop_stack != mine) dispatch_done_elsewhere(s, p, mine);
    p->stack = NULL; /* the usual case: nothing blocked */
    s->current = NULL;
    s->prev = p;
    mine->occupant = NULL;
    settle(s);
    return;
  }
  if (!(p->flags & PF_STARTED)) {
    p->flags |= PF_STARTED;
    p->stack = otpc__xstack_for_proc(s, p);
    if (p->stack == NULL) { /* no stack to be had: Erlang's system_limit */
      p->exit_reason = otpc__atom_buf(otpc_atom("system_limit"));
      p->why = WHY_EXITED;
      s->current = NULL;
      s->prev = p;
      settle(s);
      return;
    }
    pin(s, p);
    p->ctx = otpc__ctx_make(p->stack->base, p->stack->size, seq_entry, p);
  } else {
    otpc__stack_enter(s, p);
  }
  otpc__switch(&s->loop_ctx, p->ctx, p->stack);
  s->current = NULL;
  settle(s);
}

void otpc__suspend(otpc__proc_t *p, otpc__why_t why) {
  otpc__sched_t *s = otpc__self_sched;
  p->why = (uint8_t)why;
  s->prev = p;
  if (p == s->called) {
    /* A handler run by its caller: it keeps the call stack, and the
     * caller goes on (and settles p: it is in s->prev). */
    otpc__xstack_t *x = s->call_stack;
    pin(s, p);
    x->occupant = p;
    s->called = NULL;
    s->call_stack = NULL;
    otpc__switch(&p->ctx, s->caller_ctx, s->caller_stack);
  } else if (p->stack == s->loop_stack) {
    /* A handler dispatched by the active loop: it keeps this stack (and
     * the loop frames under it); scheduling goes on in a fresh loop. */
    pin(s, p);
    s->loop_stack->occupant = p;
    otpc__xstack_t *x = otpc__xstack_get(s);
    s->loop_stack = x;
    otpc__switch(&p->ctx, otpc__ctx_make(x->base, x->size, loop_entry, s), x);
  } else {
    otpc__switch(&p->ctx, s->loop_ctx, s->loop_stack);
  }
  p->ctx = NULL;
  p->why = WHY_NONE;
}

/* ------------------------------------------------------------------------
 * A call's server run by its caller
 * ------------------------------------------------------------------------
 *
 * A process that calls a server (a request flagged SIGF_MONITOR:
 * gen_server, gen_statem, sys and the supervisor's calls) only waits
 * once it has sent. When its request wakes a handler that is idle
 * between callbacks and may run on this scheduler, the caller runs the
 * handler's turn itself, at once, before it goes on to wait: usually the
 * reply is then in its inbox when it looks, and the call costs no switch
 * to the loop and back, no going idle and no wake-up of the caller, and
 * no pick of either from the run queue (docs/internals/performance.md).
 *
 * The turn runs on the scheduler's call stack (call_stack), not on the
 * caller's, so that the handler's callback can do all it can do when the
 * loop runs it:
 *   - return: the turn ends (handler_run's budget, as from the loop), p
 *     goes idle or is queued, and the caller goes on;
 *   - end the process (otpc_exit, a fault): otpc__exit_current switches
 *     back to the caller, which finishes the exit;
 *   - block (a receive, a call of its own): otpc__suspend gives the
 *     handler the call stack for good, as the loop's stack is given to a
 *     handler that blocks there, and switches back to the caller, which
 *     goes on and settles the handler as the loop would. When the
 *     callback returns later, the handler finishes its turn on that stack
 *     and hands over to the loop (dispatch_done_elsewhere).
 * The caller's turn pays for the handler's: a client calling in a loop
 * still yields after its budget. One handler at a time runs so: a call
 * made by a handler its caller runs is queued as usual. The handler must
 * be free to run here (not pinned elsewhere) and not of lower priority
 * than its caller, whom it would otherwise run ahead of others.
 */

/* Erlang's order of priorities: low, normal, high, max. */
static int prio_rank(unsigned prio) {
  return prio == OTPC_PRIO_LOW ? -1 : (int)prio;
}

bool otpc__may_run_called(const otpc__proc_t *p) {
  const otpc__sched_t *s = otpc__self_sched;
  /* Not from a terminate (no stack: the process has ended), nor from a
   * callback run so itself. */
  if (s == NULL || s->called != NULL || s->current == NULL ||
      s->current->stack == NULL)
    return false;
  /* Blocked in a callback: it needs its own frames. Looked at first: such
   * a process's timer may be setting its flags now (fire_timer), and one
   * idle between callbacks has none armed. */
  if (p->ctx != NULL ||
      (p->flags & (PF_HANDLER | PF_STARTED | PF_EXITING)) !=
          (PF_HANDLER | PF_STARTED))
    return false;
  int16_t home = atomic_load_explicit((_Atomic int16_t *)&p->home,
                                      memory_order_relaxed);
  if (home >= 0 && home != (int16_t)s->index) return false;
  unsigned mine = __atomic_load_n(&s->current->priority, __ATOMIC_RELAXED);
  unsigned its = __atomic_load_n(&p->priority, __ATOMIC_RELAXED);
  return prio_rank(its & 3) >= prio_rank(mine & 3);
}

/* First code on the call stack: the handler's turn. */
static void called_entry(void *arg) {
  otpc__proc_t *p = arg;
  otpc__switch_arrived();
  otpc__sched_t *s = otpc__self_sched;
  handler_run(s, p);
  if (s->called == p) { /* the usual case: back to the caller */
    otpc__call_leave(s->caller_stack);
    return;
  }
  dispatch_done_elsewhere(s, p, p->stack); /* it blocked, see above */
}

void otpc__run_called(otpc__proc_t *p) {
  otpc__sched_t *s = otpc__self_sched;
  otpc__proc_t *me = s->current;
  otpc__xstack_t *x = s->call_stack;
  if (x == NULL && (x = s->call_stack = otpc__xstack_try(s)) == NULL) {
    enqueue(s, p); /* no stack to be had: the loop runs it */
    return;
  }
  uint64_t turn = s->turn_start, r0 = p->reductions;
  s->called = p;
  s->caller_stack = me->stack;
  s->current = p;
  s->turn_start = r0;
  p->stack = x;
  otpc__call_on(&s->caller_ctx, x, me->stack, called_entry, p);
  if (s->called == p) { /* its turn ended */
    p->stack = NULL;
    s->called = NULL;
    s->prev = p;
  } else if (p->why == WHY_EXITED) { /* ended: its frames abandoned */
    otpc__xstack_renew(x);
  } /* else blocked: it has x now, and s->prev is p */
  me->reductions += p->reductions - r0;
  s->current = NULL;
  settle(s);
  s->current = me;
  s->turn_start = turn;
}

_Noreturn void otpc__exit_current(otpc__proc_t *p) {
  otpc__sched_t *s = otpc__self_sched;
  /* No stack: called from a handler's terminate, which runs after the
   * process ended, on the loop's stack (fault.c). */
  if (p->stack == NULL) otpc__terminate_exit(p);
  p->why = WHY_EXITED;
  s->prev = p;
  if (p == s->called) {
    /* A handler run by its caller: back to the caller, which finishes
     * the exit. The call stack stays the scheduler's, its frames gone. */
    p->stack = NULL;
    s->called = NULL;
    otpc__switch(NULL, s->caller_ctx, s->caller_stack);
    abort(); /* never resumed */
  }
  if (p->stack == s->loop_stack && !(p->flags & PF_FAULTED)) {
    /* A callback dispatched by the active loop: the frames under the
     * callback's are that loop instance's, intact, so rather than leave
     * the stack for a fresh instance on another, go back to the first
     * frame of this one (loop_entry), which is a fresh instance on this
     * stack. The stack stays the loop's: p no longer has one. A fault
     * (fault.c) has written over the top of the stack, loop_entry's frame
     * included, and takes the way below. */
    p->stack = NULL;
    s->current = NULL;
    base_go(s->loop_base);
  }
  if (p->stack == s->loop_stack) {
    otpc__xstack_t *x = otpc__xstack_get(s);
    s->loop_stack = x;
    otpc__switch(NULL, otpc__ctx_make(x->base, x->size, loop_entry, s), x);
  } else {
    otpc__switch(NULL, s->loop_ctx, s->loop_stack);
  }
  abort(); /* never resumed */
}

/* ------------------------------------------------------------------------
 * The loop
 * ------------------------------------------------------------------------ */

static void fire_timer(otpc__timer_t *t, void *arg) {
  otpc__sched_t *s = arg;
  otpc__proc_ext_t *ext =
      (otpc__proc_ext_t *)((char *)t - offsetof(otpc__proc_ext_t, wait_timer));
  otpc__proc_t *p = ext->owner;
  p->flags |= PF_TIMEDOUT;
  if (otpc__inbox_claim(&p->inbox)) enqueue(s, p);
}

/*
 * Whether help pays. Handing a process to another scheduler moves its
 * control block, its messages and the counts it changes between the
 * cores: ten to fifteen cache lines, a few hundred nanoseconds, much of
 * it paid again by the giver when it reuses those lines. A process that
 * runs for less than that where it was made (a child that sends one
 * message and ends) is cheaper to run there, and a busy scheduler that
 * keeps handing such work to an idle one runs slower than alone
 * (docs/internals/performance.md). The giver cannot tell beforehand; the
 * helper can tell afterwards: when it runs out of work again, it divides
 * the time it was busy by the processes it was given (measured there:
 * 170-370 ns each for spawn_exit_msg's children, 700 ns for skynet's
 * leaves, 3 us to 500 us for its inner nodes with what they spawn).
 * Below HELP_WORTH_NS each, the help did not pay, and it does not say it
 * is hungry again for a while (half a millisecond, doubling up to
 * HELP_BACKOFF_MAX_NS while help keeps not paying); help that paid resets
 * that. Meanwhile it still runs whatever is queued for it and sleeps as
 * usual; only the hand-overs stop.
 */
#define HELP_WORTH_NS 400
#define HELP_BACKOFF_MIN_NS 500000
#define HELP_BACKOFF_MAX_NS 8000000

/* s ran out of work: judges the help it was given, and says whether to
 * ask for more now. The clock is read only around gifted work and while
 * asking is put off. */
static bool want_help(otpc__sched_t *s) {
  int64_t now = 0,
          gifts = atomic_load_explicit(&s->gifts, memory_order_relaxed);
  if (s->help.since_ns != 0) {
    int64_t got = gifts - s->help.gifts_then;
    now = now_ns();
    if (now - s->help.since_ns < got * (int64_t)HELP_WORTH_NS) {
      int64_t b = s->help.backoff_ns * 2;
      if (b < HELP_BACKOFF_MIN_NS) b = HELP_BACKOFF_MIN_NS;
      if (b > HELP_BACKOFF_MAX_NS) b = HELP_BACKOFF_MAX_NS;
      s->help.backoff_ns = b;
      s->help.ask_after_ns = now + b;
    } else {
      s->help.backoff_ns = 0;
      s->help.ask_after_ns = 0;
    }
    s->help.since_ns = 0;
  }
  s->help.gifts_then = gifts;
  if (s->help.ask_after_ns == 0) return true;
  if (now == 0) now = now_ns();
  if (now < s->help.ask_after_ns) return false;
  s->help.ask_after_ns = 0;
  return true;
}

/* s found work after being idle: if some of it was handed over, the
 * time it takes is judged when s runs out again. */
static void work_came(otpc__sched_t *s) {
  if (atomic_load_explicit(&s->gifts, memory_order_relaxed) !=
      s->help.gifts_then)
    s->help.since_ns = now_ns();
}

static otpc__proc_t *next_runnable(otpc__sched_t *s) {
  bool idle = false;
  for (;;) {
    /* The clock costs as much as a dispatch: read it only for timers. */
    if (otpc__wheel_count(&s->wheel) > 0)
      otpc__wheel_advance(&s->wheel, otpc_now_ms(), fire_timer, s);
    otpc__proc_t *p = dequeue(s);
    if (p != NULL) {
      if (idle) work_came(s);
      return p;
    }
    if (atomic_load(&otpc__rt.stopping)) return NULL;
    bool ask = want_help(s);
    idle = true;
    if (ask) atomic_fetch_or(&hungry, bit_of(s));
    for (int i = 0; i < SPIN_ROUNDS; i++) {
      if (atomic_load_explicit(&s->runq_len, memory_order_relaxed) > 0) break;
      /* Ready descriptors wake their processes from here (io.c); one
       * woken here is in the local queue, which runq_len does not count. */
      if (i % IO_SPIN_EVERY == 0 && otpc__io_poll() > 0) break;
      cpu_relax();
    }
    if ((p = dequeue(s)) != NULL) {
      if (atomic_load_explicit(&hungry, memory_order_relaxed) & bit_of(s))
        atomic_fetch_and(&hungry, ~bit_of(s));
      work_came(s);
      return p;
    }
    uint32_t word = atomic_load(&s->sleep_word);
    atomic_store(&s->sleeping, 1);
    if (ask) atomic_fetch_or(&hungry, bit_of(s));
    atomic_thread_fence(memory_order_seq_cst);
    if (runq_nonempty(s) || atomic_load(&otpc__rt.stopping)) {
      atomic_store(&s->sleeping, 0);
      atomic_fetch_and(&hungry, ~bit_of(s));
      continue;
    }
    /* Blocks retired here are freed at a later quiescent point: do not
     * sleep long on them. */
    int64_t wait = otpc__wheel_next(&s->wheel);
    if (otpc__reclaim_pending() && (wait < 0 || wait > RECLAIM_NAP_MS))
      wait = RECLAIM_NAP_MS;
    if (!ask) { /* up at the time to ask again */
      int64_t left = (s->help.ask_after_ns - now_ns()) / 1000000 + 1;
      if (wait < 0 || wait > left) wait = left;
    }
    otpc__reclaim_offline(s);
    /* While descriptors are waited on, one sleeper sleeps in epoll_wait. */
    if (!otpc__io_sleep(s, word, &wait)) futex_wait(&s->sleep_word, word, wait);
    atomic_store(&s->sleeping, 0);
    atomic_fetch_and(&hungry, ~bit_of(s));
    otpc__reclaim_quiescent(s);
    otpc__io_after_sleep();
  }
}

static void sched_loop(otpc__sched_t *s, otpc__xstack_t *mine) {
  for (;;) {
    otpc__reclaim_between_runs(s);
    otpc__proc_t *p = next_runnable(s);
    if (p == NULL) break;
    run_proc(s, p, mine);
    s->rounds++;
    if (s->rounds % IO_BUSY_EVERY == 0) otpc__io_poll_busy();
    if (atomic_load_explicit(&hungry, memory_order_relaxed) & ~bit_of(s))
      share_work(s);
  }
  /* Stopping: back to the thread's own stack, for good. */
  otpc__switch(NULL, s->native_ctx, NULL);
}

static void *sched_thread(void *arg) {
  otpc__sched_t *s = arg;
  otpc__self_sched = s;
  otpc__stack_thread_init();
  otpc__fault_thread_init();
  otpc__reclaim_quiescent(s);
  otpc__xstack_t *x = otpc__xstack_get(s);
  s->loop_stack = x;
  otpc__switch(&s->native_ctx,
               otpc__ctx_make(x->base, x->size, loop_entry, s), x);
  /* The loop has stopped; its stack is no longer in use. */
  otpc__xstack_put(s, s->loop_stack);
  otpc__reclaim_offline(s);
  done_flush(s);
  otpc__reclaim_thread_done();
  otpc__proc_cache_flush();
  otpc__slab_flush(s);
  otpc__fault_thread_done();
  otpc__self_sched = NULL;
  return NULL;
}

int otpc__sched_start_all(void) {
  for (unsigned i = 0; i < otpc__rt.nsched; i++) {
    otpc__sched_t *s = &otpc__rt.scheds[i];
    s->index = i;
    for (int q = 0; q < 4; q++) otpc__mpsc_init(&s->runq[q]);
    otpc__wheel_init(&s->wheel, otpc_now_ms());
    atomic_store(&s->epoch, UINT64_MAX);
  }
  for (unsigned i = 0; i < otpc__rt.nsched; i++) {
    if (pthread_create(&otpc__rt.scheds[i].thread, NULL, sched_thread,
                       &otpc__rt.scheds[i]) != 0) {
      atomic_store(&otpc__rt.stopping, 1);
      for (unsigned j = 0; j < i; j++) {
        wake_sched(&otpc__rt.scheds[j]);
        pthread_join(otpc__rt.scheds[j].thread, NULL);
      }
      return OTPC_ENOMEM;
    }
  }
  return 0;
}

void otpc__sched_stop_all(void) {
  atomic_store(&otpc__rt.stopping, 1);
  for (unsigned i = 0; i < otpc__rt.nsched; i++) wake_sched(&otpc__rt.scheds[i]);
  for (unsigned i = 0; i < otpc__rt.nsched; i++)
    pthread_join(otpc__rt.scheds[i].thread, NULL);
}
