/*
 * io.c: waiting on descriptors and running blocking work, without ever
 * blocking a scheduler.
 *
 * Descriptors: every descriptor a process waits on is registered once in
 * one epoll set (EPOLLONESHOT, the descriptor number as the event data)
 * and stays registered between waits; a wait only re-arms it
 * (EPOLL_CTL_MOD) with the interest of whoever waits on it now. A table
 * indexed by descriptor says who that is: one reader and one writer at a
 * time, each as pid, serial and wait number, so the reader and the
 * writer of one socket wait side by side. The kernel drops the
 * registration when the descriptor is closed; a wait that finds it gone
 * registers it afresh (EPOLL_CTL_ADD).
 *
 * Nobody owns a poller thread: the schedulers poll. One that spins for
 * work looks at the set (epoll_wait, timeout 0) between its looks at the
 * run queue; one that goes to sleep while descriptors are waited on, and
 * finds no other scheduler already doing so, sleeps in epoll_wait instead
 * of on its futex, with `kickfd` (an eventfd in the set) as its wake-up
 * (otpc__io_kick); a busy scheduler looks between processes when nobody
 * sleeps in the set. A ready descriptor turns into a SIG_WAKE signal for
 * its waiter, sent from the scheduler that saw it: the process takes it
 * like any signal, so wake-ups keep their order with messages, and one for
 * a wait that has already ended (timed out) is recognised by its number
 * and dropped. See docs/processes.md (waiting on descriptors).
 *
 * Dirty work: a pool of threads takes jobs from a queue. The job lives on
 * the heap and is shared by the waiting process and the thread that runs
 * it; whichever of the two is done with it last frees it, so a process
 * killed while its job runs leaves nothing behind and nothing dangling.
 * The process's own stack is never handed to the dirty thread.
 */
#include <errno.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "rt_int.h"

/* ---- waking a process from another thread ------------------------------ */

static void wake(uint32_t id, uint32_t serial, uint32_t wait, uint32_t events) {
  otpc__sig_t *sig = otpc__sig_new(SIG_WAKE);
  if (sig == NULL) return; /* the wait times out instead, if it has a timeout */
  sig->aux = events;
  sig->ref.id[0] = wait;
  otpc_pid_t pid = {otpc__rt.name, id, serial, otpc__rt.creation};
  otpc__deliver_pid(pid, sig);
}

/* Sleeps until woken for this wait, a timeout, or death (then `on_death`
 * runs first, with `fd`). Returns the events the wake-up carried, or
 * OTPC_ETIMEDOUT. */
static int wait_for_wake(otpc__proc_t *p, int64_t timeout_ms,
                         void (*on_death)(int fd, otpc__proc_t *p), int fd) {
  otpc__proc_ext_t *x = p->ext;
  bool armed = false;
  p->flags &= (uint16_t)~PF_TIMEDOUT;
  for (;;) {
    if (!otpc__take_inbox(p)) {
      if (armed) otpc__wheel_cancel(&otpc__self_sched->wheel, &x->wait_timer);
      if (on_death != NULL) on_death(fd, p);
      otpc__exit_current(p);
    }
    if (x->wake_events != 0) break;
    if (timeout_ms == 0 || (p->flags & PF_TIMEDOUT)) break;
    if (timeout_ms > 0 && !armed) {
      otpc__wheel_add(&otpc__self_sched->wheel, &x->wait_timer,
                      otpc_now_ms() + timeout_ms);
      armed = true;
    }
    otpc__suspend(p, WHY_BLOCKED);
  }
  if (armed) otpc__wheel_cancel(&otpc__self_sched->wheel, &x->wait_timer);
  p->flags &= (uint16_t)~PF_TIMEDOUT;
  int events = (int)x->wake_events;
  x->wake_seq_done = x->wait_seq; /* later wake-ups for it are stale */
  return events != 0 ? events : OTPC_ETIMEDOUT;
}

void otpc__on_wake(otpc__proc_t *p, otpc__sig_t *sig) {
  if (p->ext != NULL && sig->ref.id[0] == p->ext->wait_seq &&
      p->ext->wake_seq_done != p->ext->wait_seq)
    p->ext->wake_events = sig->aux ? sig->aux : 1;
}

/* ---- who waits on which descriptor --------------------------------------- */

typedef struct waiter {
  uint32_t id, serial, wait; /* wait 0: nobody */
} waiter_t;

typedef struct fdslot {
  pthread_mutex_t lock;
  waiter_t reader, writer;
} fdslot_t;

/* Two levels, so that a slot never moves: chunks of CHUNK slots, made on
 * first use and freed when the node stops. */
#define CHUNK 1024
#define NCHUNKS 1024 /* descriptors below 1,048,576 */

static _Atomic(fdslot_t *) chunks[NCHUNKS];
static pthread_mutex_t chunks_lock = PTHREAD_MUTEX_INITIALIZER;

static fdslot_t *slot_of(int fd) {
  if ((unsigned)fd >= (unsigned)CHUNK * NCHUNKS) return NULL;
  unsigned c = (unsigned)fd / CHUNK;
  fdslot_t *chunk = atomic_load_explicit(&chunks[c], memory_order_acquire);
  if (chunk == NULL) {
    pthread_mutex_lock(&chunks_lock);
    chunk = atomic_load_explicit(&chunks[c], memory_order_relaxed);
    if (chunk == NULL && (chunk = otpc__calloc(CHUNK, sizeof *chunk)) != NULL) {
      for (unsigned i = 0; i < CHUNK; i++)
        pthread_mutex_init(&chunk[i].lock, NULL);
      atomic_store_explicit(&chunks[c], chunk, memory_order_release);
    }
    pthread_mutex_unlock(&chunks_lock);
    if (chunk == NULL) return NULL;
  }
  return &chunk[(unsigned)fd % CHUNK];
}

static int epfd = -1;
static int kickfd = -1;
/* Processes inside otpc_wait_fd: nobody needs to poll while it is 0. */
static _Atomic int nwaiting;
/* The scheduler sleeping in epoll_wait, if any. */
static _Atomic(otpc__sched_t *) sleeper;

#define KICK UINT64_MAX

/* Arms fd for whoever waits on it now (slot locked). */
static int arm(int fd, const fdslot_t *sl) {
  struct epoll_event ev = {.events = EPOLLONESHOT, .data.u64 = (uint64_t)fd};
  if (sl->reader.wait) ev.events |= EPOLLIN | EPOLLRDHUP;
  if (sl->writer.wait) ev.events |= EPOLLOUT;
  if (epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) == 0) return 0;
  if (errno == ENOENT && epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == 0) return 0;
  return errno == EPERM || errno == EBADF ? OTPC_EINVAL : OTPC_EIO;
}

/* A wait that ends without its event (timeout, death): off the slot, and
 * the descriptor re-armed for the other side only. */
static void unwait(int fd, otpc__proc_t *p) {
  fdslot_t *sl = slot_of(fd);
  pthread_mutex_lock(&sl->lock);
  bool mine = false;
  waiter_t *w[2] = {&sl->reader, &sl->writer};
  for (int i = 0; i < 2; i++)
    if (w[i]->wait != 0 && w[i]->id == p->index && w[i]->serial == p->serial) {
      w[i]->wait = 0;
      mine = true;
    }
  if (mine) {
    if (sl->reader.wait || sl->writer.wait)
      arm(fd, sl);
    else
      epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL); /* nobody left: leave the set */
  }
  pthread_mutex_unlock(&sl->lock);
  atomic_fetch_sub(&nwaiting, 1);
}

/* One ready event: wake whom it is for, re-arm for whoever still waits. */
static void ready(const struct epoll_event *ev) {
  int fd = (int)ev->data.u64;
  fdslot_t *sl = slot_of(fd);
  if (sl == NULL) return;
  uint32_t got = 0;
  if (ev->events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))
    got |= OTPC_FD_READ;
  if (ev->events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) got |= OTPC_FD_WRITE;
  waiter_t r = {0, 0, 0}, w = {0, 0, 0};
  pthread_mutex_lock(&sl->lock);
  if ((got & OTPC_FD_READ) && sl->reader.wait) {
    r = sl->reader;
    sl->reader.wait = 0;
  }
  if ((got & OTPC_FD_WRITE) && sl->writer.wait) {
    w = sl->writer;
    sl->writer.wait = 0;
  }
  if (sl->reader.wait || sl->writer.wait) arm(fd, sl); /* one-shot: again */
  pthread_mutex_unlock(&sl->lock);
  if (r.wait) wake(r.id, r.serial, r.wait, got);
  if (w.wait) wake(w.id, w.serial, w.wait, got);
}

/* ---- polling, by the schedulers ------------------------------------------ */

#define MAXEV 64

/* Events a sleeping scheduler took, handled once it is back (online for
 * reclamation: only then may it look processes up). */
static __thread struct epoll_event got_ev[MAXEV];
static __thread int got_n;

static void drain_kick(void) {
  uint64_t v;
  if (read(kickfd, &v, sizeof v) < 0) { /* EAGAIN: drained by another */
  }
}

static int handle(struct epoll_event *ev, int n) {
  int woke = 0;
  for (int i = 0; i < n; i++) {
    if (ev[i].data.u64 == KICK) continue;
    ready(&ev[i]);
    woke++;
  }
  return woke;
}

int otpc__io_poll(void) {
  if (atomic_load_explicit(&nwaiting, memory_order_relaxed) == 0) return 0;
  struct epoll_event ev[MAXEV];
  int n = epoll_wait(epfd, ev, MAXEV, 0);
  return n > 0 ? handle(ev, n) : 0;
}

int otpc__io_poll_busy(void) {
  if (atomic_load_explicit(&sleeper, memory_order_relaxed) != NULL) return 0;
  return otpc__io_poll();
}

/* How long a scheduler sleeps on its futex while descriptors are waited
 * on and another sleeps in the set: that one may wake and then run a long
 * process, leaving the set unwatched; the napper then takes over. */
#define WATCH_MS 20

bool otpc__io_sleep(otpc__sched_t *s, uint32_t word, int64_t *timeout_ms) {
  if (atomic_load(&nwaiting) == 0) return false;
  otpc__sched_t *none = NULL;
  if (!atomic_compare_exchange_strong(&sleeper, &none, s)) {
    if (*timeout_ms < 0 || *timeout_ms > WATCH_MS) *timeout_ms = WATCH_MS;
    return false;
  }
  /* Pairs with otpc__io_kick: the waker bumps the word, then looks at
   * `sleeper`; we set `sleeper`, then look at the word. */
  if (atomic_load(&s->sleep_word) == word) {
    int n = epoll_wait(epfd, got_ev, MAXEV,
                       *timeout_ms < 0 ? -1 : (int)*timeout_ms);
    got_n = n > 0 ? n : 0;
  }
  atomic_store(&sleeper, NULL);
  for (int i = 0; i < got_n; i++)
    if (got_ev[i].data.u64 == KICK) drain_kick();
  return true;
}

void otpc__io_after_sleep(void) {
  int n = got_n;
  got_n = 0;
  if (n > 0) handle(got_ev, n);
}

bool otpc__io_kick(otpc__sched_t *s) {
  if (atomic_load(&sleeper) != s) return false;
  uint64_t one = 1;
  if (write(kickfd, &one, sizeof one) < 0) abort(); /* eventfd write */
  return true;
}

int otpc__io_start(void) {
  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) return OTPC_EIO;
  kickfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = KICK};
  if (kickfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, kickfd, &ev) != 0) {
    if (kickfd >= 0) close(kickfd);
    close(epfd);
    epfd = kickfd = -1;
    return OTPC_EIO;
  }
  atomic_store(&nwaiting, 0);
  atomic_store(&sleeper, NULL);
  return 0;
}

void otpc__io_stop(void) {
  if (epfd < 0) return;
  close(kickfd);
  close(epfd);
  epfd = kickfd = -1;
  for (unsigned c = 0; c < NCHUNKS; c++) {
    fdslot_t *chunk = atomic_load(&chunks[c]);
    if (chunk == NULL) continue;
    for (unsigned i = 0; i < CHUNK; i++) pthread_mutex_destroy(&chunk[i].lock);
    otpc__free(chunk);
    atomic_store(&chunks[c], NULL);
  }
}

int otpc_wait_fd(int fd, int events, int64_t timeout_ms) {
  otpc__proc_t *p = otpc__current();
  if (p == NULL) return OTPC_ENOTPROC;
  if (fd < 0 || (events & (OTPC_FD_READ | OTPC_FD_WRITE)) == 0)
    return OTPC_EINVAL;
  if (otpc__proc_ext(p) == NULL) return OTPC_ENOMEM;
  fdslot_t *sl = slot_of(fd);
  if (sl == NULL) return fd >= CHUNK * NCHUNKS ? OTPC_EINVAL : OTPC_ENOMEM;
  otpc__proc_ext_t *x = p->ext;
  __atomic_store_n(&x->wait_seq, x->wait_seq + 1, __ATOMIC_RELEASE);
  if (x->wait_seq == 0) x->wait_seq = 1; /* 0 means nobody in a slot */
  x->wake_events = 0;
  waiter_t me = {p->index, p->serial, x->wait_seq};
  pthread_mutex_lock(&sl->lock);
  if (events & OTPC_FD_READ) sl->reader = me;
  if (events & OTPC_FD_WRITE) sl->writer = me;
  atomic_fetch_add(&nwaiting, 1);
  int rc = arm(fd, sl);
  if (rc != 0) {
    if (events & OTPC_FD_READ) sl->reader.wait = 0;
    if (events & OTPC_FD_WRITE) sl->writer.wait = 0;
  }
  pthread_mutex_unlock(&sl->lock);
  if (rc != 0) {
    atomic_fetch_sub(&nwaiting, 1);
    return rc;
  }
  rc = wait_for_wake(p, timeout_ms, unwait, fd);
  unwait(fd, p); /* after a wake-up, only a side it did not get is left */
  return rc;
}

/* ---- dirty work ---------------------------------------------------------- */

typedef struct job {
  struct job *next;
  intptr_t (*fn)(void *);
  void *arg;
  intptr_t result;
  uint32_t id, serial, wait;
  _Atomic int refs; /* the process and the dirty thread */
} job_t;

static pthread_mutex_t job_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t job_cond = PTHREAD_COND_INITIALIZER;
static job_t *job_head, **job_tail = &job_head;
static bool dirty_stop;
static pthread_t *dirty_threads;
static unsigned ndirty;

static void job_release(job_t *j) {
  if (atomic_fetch_sub(&j->refs, 1) == 1) otpc__free(j);
}

static void *dirty_main(void *arg) {
  pthread_mutex_lock(&job_lock);
  for (;;) {
    while (job_head == NULL && !dirty_stop)
      pthread_cond_wait(&job_cond, &job_lock);
    if (job_head == NULL) break;
    job_t *j = job_head;
    job_head = j->next;
    if (job_head == NULL) job_tail = &job_head;
    pthread_mutex_unlock(&job_lock);
    j->result = j->fn(j->arg);
    wake(j->id, j->serial, j->wait, 1);
    job_release(j);
    pthread_mutex_lock(&job_lock);
  }
  pthread_mutex_unlock(&job_lock);
  return arg;
}

int otpc__dirty_start(unsigned n) {
  dirty_stop = false;
  dirty_threads = otpc__calloc(n, sizeof *dirty_threads);
  if (dirty_threads == NULL) return OTPC_ENOMEM;
  for (ndirty = 0; ndirty < n; ndirty++)
    if (pthread_create(&dirty_threads[ndirty], NULL, dirty_main, NULL) != 0)
      break;
  return ndirty > 0 ? 0 : OTPC_ENOMEM;
}

void otpc__dirty_stop(void) {
  pthread_mutex_lock(&job_lock);
  dirty_stop = true;
  pthread_cond_broadcast(&job_cond);
  pthread_mutex_unlock(&job_lock);
  for (unsigned i = 0; i < ndirty; i++) pthread_join(dirty_threads[i], NULL);
  otpc__free(dirty_threads);
  dirty_threads = NULL;
  ndirty = 0;
  /* Jobs nobody ran: drop the threads' share; the processes' share goes
   * when the node frees them (otpc__dirty_abandon). */
  while (job_head != NULL) {
    job_t *j = job_head;
    job_head = j->next;
    job_release(j);
  }
  job_tail = &job_head;
}

intptr_t otpc_dirty(intptr_t (*fn)(void *), void *arg) {
  otpc__proc_t *p = otpc__current();
  if (p == NULL || fn == NULL) return OTPC_ENOTPROC;
  if (otpc__proc_ext(p) == NULL) return OTPC_ENOMEM;
  job_t *j = otpc__calloc(1, sizeof *j);
  if (j == NULL) return OTPC_ENOMEM;
  j->fn = fn;
  j->arg = arg;
  j->id = p->index;
  j->serial = p->serial;
  __atomic_store_n(&p->ext->wait_seq, p->ext->wait_seq + 1, __ATOMIC_RELEASE);
  p->ext->wake_events = 0;
  j->wait = p->ext->wait_seq;
  atomic_init(&j->refs, 2);
  p->ext->dirty_job = j;
  pthread_mutex_lock(&job_lock);
  *job_tail = j;
  job_tail = &j->next;
  pthread_cond_signal(&job_cond);
  pthread_mutex_unlock(&job_lock);
  wait_for_wake(p, OTPC_INFINITY, NULL, -1);
  intptr_t result = j->result;
  p->ext->dirty_job = NULL;
  job_release(j);
  return result;
}

void otpc__dirty_abandon(otpc__proc_t *p) {
  if (p->ext != NULL && p->ext->dirty_job != NULL) {
    job_release(p->ext->dirty_job);
    p->ext->dirty_job = NULL;
  }
}
