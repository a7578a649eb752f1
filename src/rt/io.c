/*
 * io.c: waiting on descriptors and running blocking work, without ever
 * blocking a scheduler.
 *
 * Descriptors: one poller thread waits in epoll_wait. A process that waits
 * on a descriptor registers it (one-shot) with its pid and a wait number
 * as the event data, and suspends. The poller turns a ready event into a
 * SIG_WAKE signal for that pid; the process takes it like any signal, so
 * wake-ups keep their order with messages, and one for a wait that has
 * already ended (timed out) is recognised by its number and dropped.
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

/* Event data: the waiting pid's id and serial. The wait number is read
 * from the process when the event comes (see poller_main). */
static uint64_t pack(uint32_t id, uint32_t serial) {
  return (uint64_t)id << 32 | serial;
}

static void wake(uint32_t id, uint32_t serial, uint32_t wait, uint32_t events) {
  otpc__sig_t *sig = otpc__sig_new(SIG_WAKE);
  if (sig == NULL) return; /* the wait times out instead, if it has a timeout */
  sig->aux = events;
  sig->ref.id[0] = wait;
  otpc_pid_t pid = {otpc__rt.name, id, serial, otpc__rt.creation};
  otpc__deliver_pid(pid, sig);
}

/* Sleeps until woken for this wait, a timeout, or death. Returns the
 * events the wake-up carried, or OTPC_ETIMEDOUT. */
static int wait_for_wake(otpc__proc_t *p, int64_t timeout_ms) {
  otpc__proc_ext_t *x = p->ext;
  bool armed = false;
  p->flags &= (uint16_t)~PF_TIMEDOUT;
  for (;;) {
    if (!otpc__take_inbox(p)) {
      if (armed) otpc__wheel_cancel(&otpc__self_sched->wheel, &x->wait_timer);
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

/* ---- the poller ---------------------------------------------------------- */

static int epfd = -1;
static int stopfd = -1;
static pthread_t poller;

static void *poller_main(void *arg) {
  struct epoll_event ev[64];
  for (;;) {
    int n = epoll_wait(epfd, ev, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < n; i++) {
      uint64_t d = ev[i].data.u64;
      if (d == UINT64_MAX) return arg; /* stop */
      uint32_t id = (uint32_t)(d >> 32), serial = (uint32_t)d;
      uint32_t events = 0;
      if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))
        events |= OTPC_FD_READ;
      if (ev[i].events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) events |= OTPC_FD_WRITE;
      otpc__reclaim_enter();
      otpc__proc_t *p = otpc__proc_lookup(
          (otpc_pid_t){otpc__rt.name, id, serial, otpc__rt.creation});
      /* The wait number is read under the read section; a stale one only
       * makes the signal be dropped by its owner. */
      uint32_t wait = p && p->ext ? __atomic_load_n(&p->ext->wait_seq,
                                                    __ATOMIC_ACQUIRE)
                                  : 0;
      otpc__reclaim_exit();
      if (p != NULL) wake(id, serial, wait, events);
    }
  }
  return arg;
}

int otpc__io_start(void) {
  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) return OTPC_EIO;
  stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
  if (stopfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, stopfd, &ev) != 0 ||
      pthread_create(&poller, NULL, poller_main, NULL) != 0) {
    if (stopfd >= 0) close(stopfd);
    close(epfd);
    epfd = stopfd = -1;
    return OTPC_EIO;
  }
  return 0;
}

void otpc__io_stop(void) {
  if (epfd < 0) return;
  uint64_t one = 1;
  if (write(stopfd, &one, sizeof one) < 0) abort(); /* eventfd write */
  pthread_join(poller, NULL);
  close(stopfd);
  close(epfd);
  epfd = stopfd = -1;
}

int otpc_wait_fd(int fd, int events, int64_t timeout_ms) {
  otpc__proc_t *p = otpc__current();
  if (p == NULL) return OTPC_ENOTPROC;
  if (fd < 0 || (events & (OTPC_FD_READ | OTPC_FD_WRITE)) == 0)
    return OTPC_EINVAL;
  if (otpc__proc_ext(p) == NULL) return OTPC_ENOMEM;
  __atomic_store_n(&p->ext->wait_seq, p->ext->wait_seq + 1, __ATOMIC_RELEASE);
  p->ext->wake_events = 0;
  struct epoll_event ev = {.events = EPOLLONESHOT, .data.u64 = pack(p->index, p->serial)};
  if (events & OTPC_FD_READ) ev.events |= EPOLLIN | EPOLLRDHUP;
  if (events & OTPC_FD_WRITE) ev.events |= EPOLLOUT;
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
    if (errno != EEXIST || epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) != 0)
      return errno == EPERM ? OTPC_EINVAL : OTPC_EIO;
  }
  int rc = wait_for_wake(p, timeout_ms);
  epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
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
  wait_for_wake(p, OTPC_INFINITY);
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
