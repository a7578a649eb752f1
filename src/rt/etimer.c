/*
 * etimer.c: Erlang's timers: send_after, start_timer, cancel_timer.
 *
 * They run on one timer thread with its own wheel under `lock`, so that
 * any thread may start or cancel any timer. (Receive timeouts, the
 * frequent kind, use the schedulers' own wheels instead.)
 *
 * An armed timer is found two ways, each through a chained hash table
 * with links in the timer itself: by its reference (cancel_timer), and by
 * its destination (when that process dies its timers are cancelled, as
 * Erlang does for timers whose destination is a pid). Both tables grow
 * with the number of armed timers, so a node with a hundred thousand
 * armed timers starts and cancels each in constant time.
 */
#include "rt_int.h"

typedef struct etimer {
  otpc__timer_t t;                    /* in the wheel */
  struct etimer *ref_next;            /* by_ref chain; the fired list */
  struct etimer *dest_next, *dest_prev; /* by_dest chain */
  otpc_ref_t ref;
  otpc_pid_t dest;
  otpc_buf_t *msg; /* what to send, already wrapped for start_timer */
} etimer_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake;
static pthread_t thread;
static otpc__wheel_t wheel;
static bool stopping;
static etimer_t **by_ref, **by_dest; /* nbuckets each */
static size_t nbuckets, count;
static _Atomic size_t armed; /* count, readable without the lock */
static etimer_t *fired, **fired_end = &fired; /* collected under the lock,
                                               * sent after it, in order */

#define MIN_BUCKETS 64

static size_t ref_hash(const otpc_ref_t *r) {
  uint64_t h = r->creation;
  for (uint32_t i = 0; i < r->len; i++) h = (h ^ r->id[i]) * 0x9e3779b97f4a7c15u;
  return (size_t)(h >> 17);
}

static size_t pid_hash(otpc_pid_t p) {
  return (size_t)((((uint64_t)p.serial << 32) | p.id) * 0x9e3779b97f4a7c15u >> 17);
}

static void link_in(etimer_t *e) {
  size_t r = ref_hash(&e->ref) & (nbuckets - 1);
  e->ref_next = by_ref[r];
  by_ref[r] = e;
  size_t d = pid_hash(e->dest) & (nbuckets - 1);
  e->dest_prev = NULL;
  e->dest_next = by_dest[d];
  if (e->dest_next) e->dest_next->dest_prev = e;
  by_dest[d] = e;
}

static void link_out(etimer_t *e) {
  etimer_t **pp = &by_ref[ref_hash(&e->ref) & (nbuckets - 1)];
  while (*pp != e) pp = &(*pp)->ref_next;
  *pp = e->ref_next;
  if (e->dest_prev)
    e->dest_prev->dest_next = e->dest_next;
  else
    by_dest[pid_hash(e->dest) & (nbuckets - 1)] = e->dest_next;
  if (e->dest_next) e->dest_next->dest_prev = e->dest_prev;
  count--;
  atomic_store_explicit(&armed, count, memory_order_relaxed);
}

/* Every armed timer, taken out of the tables into one list (ref_next). */
static etimer_t *unlink_all(void) {
  etimer_t *all = NULL;
  for (size_t i = 0; i < nbuckets; i++)
    for (etimer_t *e = by_ref[i], *next; e != NULL; e = next) {
      next = e->ref_next;
      e->ref_next = all;
      all = e;
    }
  return all;
}

/* Makes room for one more (doubling when the load passes 2 per bucket). */
static int reserve(void) {
  if (count < 2 * nbuckets) return 0;
  size_t n = nbuckets * 2;
  etimer_t **r = otpc__calloc(n, sizeof *r), **d = otpc__calloc(n, sizeof *d);
  if (r == NULL || d == NULL) {
    otpc__free(r);
    otpc__free(d);
    return count < 8 * nbuckets ? 0 : OTPC_ENOMEM; /* chains may grow */
  }
  etimer_t *all = unlink_all();
  otpc__free(by_ref);
  otpc__free(by_dest);
  by_ref = r;
  by_dest = d;
  nbuckets = n;
  for (etimer_t *e = all, *next; e != NULL; e = next) {
    next = e->ref_next;
    link_in(e);
  }
  return 0;
}

static etimer_t *find(const otpc_ref_t *ref) {
  for (etimer_t *e = by_ref[ref_hash(ref) & (nbuckets - 1)]; e; e = e->ref_next)
    if (otpc_ref_eq(&e->ref, ref)) return e;
  return NULL;
}

static void release(etimer_t *list) {
  while (list != NULL) {
    etimer_t *e = list;
    list = e->ref_next;
    otpc_buf_unref(e->msg);
    otpc__free(e);
  }
}

static void on_fire(otpc__timer_t *t, void *arg) {
  (void)arg;
  etimer_t *e = (etimer_t *)t;
  link_out(e);
  e->ref_next = NULL;
  *fired_end = e;
  fired_end = &e->ref_next;
}

static void *timer_main(void *arg) {
  pthread_mutex_lock(&lock);
  while (!stopping) {
    otpc__wheel_advance(&wheel, otpc_now_ms(), on_fire, NULL);
    etimer_t *list = fired;
    fired = NULL;
    fired_end = &fired;
    if (list != NULL) {
      pthread_mutex_unlock(&lock);
      for (etimer_t *e = list; e != NULL; e = e->ref_next) otpc_send(e->dest, e->msg);
      release(list);
      pthread_mutex_lock(&lock);
      continue;
    }
    int64_t wait = otpc__wheel_next(&wheel);
    if (wait < 0) {
      pthread_cond_wait(&wake, &lock);
    } else {
      struct timespec ts = otpc__after_ms(CLOCK_MONOTONIC, wait);
      pthread_cond_timedwait(&wake, &lock, &ts);
    }
  }
  pthread_mutex_unlock(&lock);
  return arg;
}

int otpc__timers_start(void) {
  by_ref = otpc__calloc(MIN_BUCKETS, sizeof *by_ref);
  by_dest = otpc__calloc(MIN_BUCKETS, sizeof *by_dest);
  if (by_ref == NULL || by_dest == NULL) {
    otpc__free(by_ref);
    otpc__free(by_dest);
    return OTPC_ENOMEM;
  }
  nbuckets = MIN_BUCKETS;
  count = 0;
  atomic_store(&armed, 0);
  otpc__wheel_init(&wheel, otpc_now_ms());
  stopping = false;
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&wake, &attr);
  pthread_condattr_destroy(&attr);
  if (pthread_create(&thread, NULL, timer_main, NULL) != 0) {
    pthread_cond_destroy(&wake);
    otpc__free(by_ref);
    otpc__free(by_dest);
    return OTPC_ENOMEM;
  }
  return 0;
}

void otpc__timers_stop(void) {
  pthread_mutex_lock(&lock);
  stopping = true;
  pthread_cond_signal(&wake);
  pthread_mutex_unlock(&lock);
  pthread_join(thread, NULL);
  release(unlink_all());
  otpc__free(by_ref);
  otpc__free(by_dest);
  by_ref = by_dest = NULL;
  nbuckets = count = 0;
  atomic_store(&armed, 0);
  pthread_cond_destroy(&wake);
}

/* Takes over msg. */
static int timer_start(int64_t ms, otpc_pid_t dest, otpc_buf_t *msg,
                       const otpc_ref_t *ref) {
  if (ms < 0) {
    otpc_buf_unref(msg);
    return OTPC_EINVAL;
  }
  etimer_t *e = otpc__calloc(1, sizeof *e);
  if (e == NULL) {
    otpc_buf_unref(msg);
    return OTPC_ENOMEM;
  }
  e->ref = *ref;
  e->dest = dest;
  e->msg = msg;
  pthread_mutex_lock(&lock);
  int rc = reserve();
  if (rc == 0) {
    link_in(e);
    count++;
    atomic_store_explicit(&armed, count, memory_order_relaxed);
    otpc__wheel_add(&wheel, &e->t, otpc_now_ms() + ms);
    pthread_cond_signal(&wake);
  }
  pthread_mutex_unlock(&lock);
  if (rc != 0) release(e);
  return rc;
}

int otpc_send_after(int64_t ms, otpc_pid_t dest, otpc_buf_t *msg,
                    otpc_ref_t *tref) {
  if (msg == NULL) return OTPC_EINVAL;
  otpc_ref_t ref = otpc_make_ref();
  int rc = timer_start(ms, dest, otpc_buf_ref(msg), &ref);
  if (rc == 0 && tref) *tref = ref;
  return rc;
}

int otpc_start_timer(int64_t ms, otpc_pid_t dest, otpc_buf_t *msg,
                     otpc_ref_t *tref) {
  if (msg == NULL) return OTPC_EINVAL;
  /* {timeout, TRef, Msg}: the timer is known by the ref inside. */
  otpc_ref_t ref = otpc_make_ref();
  otpc_builder_t b;
  otpc_builder_init(&b);
  otpc_build_tuple(&b, 3);
  otpc_build_atom_id(&b, OTPC_ATOM_TIMEOUT);
  otpc_build_ref(&b, &ref);
  otpc_build_term(&b, otpc_buf_term(msg));
  int rc;
  otpc_buf_t *wrapped = otpc_builder_finish(&b, &rc);
  if (wrapped == NULL) return rc;
  rc = timer_start(ms, dest, wrapped, &ref);
  if (rc == 0 && tref) *tref = ref;
  return rc;
}

int64_t otpc_cancel_timer(const otpc_ref_t *tref) {
  int64_t left = OTPC_ENOTIMER;
  pthread_mutex_lock(&lock);
  etimer_t *e = nbuckets ? find(tref) : NULL;
  if (e != NULL) {
    left = e->t.deadline - otpc_now_ms();
    if (left < 0) left = 0;
    otpc__wheel_cancel(&wheel, &e->t);
    link_out(e);
    e->ref_next = NULL;
  }
  pthread_mutex_unlock(&lock);
  release(e);
  return left;
}

void otpc__timers_cancel_for(otpc_pid_t pid) {
  if (atomic_load_explicit(&armed, memory_order_relaxed) == 0) return;
  etimer_t *gone = NULL;
  pthread_mutex_lock(&lock);
  if (nbuckets) {
    etimer_t *e = by_dest[pid_hash(pid) & (nbuckets - 1)], *next;
    for (; e != NULL; e = next) {
      next = e->dest_next;
      if (!otpc_pid_eq(e->dest, pid)) continue;
      otpc__wheel_cancel(&wheel, &e->t);
      link_out(e);
      e->ref_next = gone;
      gone = e;
    }
  }
  pthread_mutex_unlock(&lock);
  release(gone);
}
