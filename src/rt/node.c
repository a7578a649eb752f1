/*
 * node.c: starting and stopping the node, waiting for it, otpc_main; and
 * the node-wide services that have no better home yet: process-owned
 * memory and descriptors, and process introspection. Erlang's timers are
 * in etimer.c.
 */
#include <unistd.h>

#include "rt_int.h"

otpc__rt_t otpc__rt;


/* The absolute time on `clock` ms from now, for pthread_cond_timedwait. */
struct timespec otpc__after_ms(clockid_t clock, int64_t ms) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (ms % 1000) * 1000000;
  if (ts.tv_nsec >= 1000000000) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000;
  }
  return ts;
}

/* ------------------------------------------------------------------------
 * Process-owned memory and descriptors
 * ------------------------------------------------------------------------ */

typedef struct otpc__res {
  struct otpc__res *next, *prev;
  int fd;       /* an owned descriptor, or -1 for memory */
  size_t size;  /* memory: bytes after this header */
  _Alignas(16) unsigned char data[];
} otpc__res_t;

static void res_link(otpc__proc_ext_t *x, otpc__res_t *r) {
  r->prev = NULL;
  r->next = x->resources;
  if (x->resources) x->resources->prev = r;
  x->resources = r;
}

static void res_unlink(otpc__proc_ext_t *x, otpc__res_t *r) {
  if (r->prev) r->prev->next = r->next;
  else x->resources = r->next;
  if (r->next) r->next->prev = r->prev;
}

void *otpc_palloc(size_t size) {
  otpc__proc_t *p = otpc__current();
  if (p == NULL || size > SIZE_MAX - sizeof(otpc__res_t)) return NULL;
  otpc__proc_ext_t *x = otpc__proc_ext(p);
  otpc__res_t *r = x ? otpc__malloc(sizeof *r + size) : NULL;
  if (r == NULL) return NULL;
  r->fd = -1;
  r->size = size;
  res_link(x, r);
  return r->data;
}

void otpc_pfree(void *ptr) {
  otpc__proc_t *p = otpc__current();
  if (ptr == NULL || p == NULL || p->ext == NULL) return;
  otpc__res_t *r = (otpc__res_t *)((char *)ptr - offsetof(otpc__res_t, data));
  res_unlink(p->ext, r);
  otpc__free(r);
}

int otpc_own_fd(int fd) {
  otpc__proc_t *p = otpc__current();
  if (p == NULL) return OTPC_ENOTPROC;
  if (fd < 0) return OTPC_EINVAL;
  otpc__proc_ext_t *x = otpc__proc_ext(p);
  otpc__res_t *r = x ? otpc__malloc(sizeof *r) : NULL;
  if (r == NULL) return OTPC_ENOMEM;
  r->fd = fd;
  r->size = 0;
  res_link(x, r);
  return 0;
}

int otpc_close_fd(int fd) {
  otpc__proc_t *p = otpc__current();
  if (p == NULL) return OTPC_ENOTPROC;
  for (otpc__res_t *r = p->ext ? p->ext->resources : NULL; r; r = r->next) {
    if (r->fd == fd) {
      res_unlink(p->ext, r);
      otpc__free(r);
      return close(fd) == 0 ? 0 : OTPC_EIO;
    }
  }
  return OTPC_EINVAL;
}

void otpc__resources_release(otpc__proc_t *p) {
  if (p->ext == NULL) return;
  while (p->ext->resources != NULL) {
    otpc__res_t *r = p->ext->resources;
    p->ext->resources = r->next;
    if (r->fd >= 0) close(r->fd);
    otpc__free(r);
  }
}

/* ------------------------------------------------------------------------
 * Introspection
 * ------------------------------------------------------------------------ */


size_t otpc_process_count(void) {
  int64_t n = atomic_load(&otpc__rt.nprocs);
  return n > 0 ? (size_t)n : 0;
}

size_t otpc_processes(otpc_pid_t *pids, size_t max) {
  size_t n = 0, high = otpc__proc_high_water();
  otpc__reclaim_enter();
  for (size_t i = 0; i < high; i++) {
    otpc__proc_t *p =
        atomic_load_explicit(&otpc__rt.slots[i], memory_order_acquire);
    if (p == NULL) continue;
    if (n < max) pids[n] = otpc__proc_pid(p);
    n++;
  }
  otpc__reclaim_exit();
  return n;
}

/* Links and monitors belong to their owner: another process asks for them
 * with a signal, as Erlang's process_info does, and waits for the answer
 * (which comes when the owner next takes its signals in, or as noproc
 * when it dies first). */
typedef struct info_wait {
  const otpc_ref_t *ref;
} info_wait_t;

static bool is_info_answer(otpc_term_t msg, void *ctx) {
  const info_wait_t *w = ctx;
  otpc_ref_t ref;
  size_t arity;
  otpc_term_t tag;
  if (otpc_term_get_tuple(msg, &arity, &tag) != 0 || arity < 3) return false;
  return otpc_term_is_atom(tag, otpc_atom(OTPC__INFO_TAG)) &&
         otpc_term_get_ref(otpc_term_tuple_elem(msg, 1), &ref) == 0 &&
         otpc_ref_eq(&ref, w->ref);
}

static int ask_info(otpc__proc_t *self, otpc_pid_t pid, otpc_proc_info_t *info) {
  otpc__sig_t *q = otpc__sig_new(SIG_INFO);
  if (q == NULL) return OTPC_ENOMEM;
  otpc_ref_t ref = otpc_make_ref();
  q->ref = ref;
  q->from = otpc__proc_pid(self);
  otpc__deliver_pid(pid, q);
  info_wait_t w = {&ref};
  otpc_buf_t *answer;
  int rc = otpc_receive_fn(is_info_answer, &w, OTPC_INFINITY, &answer);
  if (rc != 0) return rc;
  otpc_term_t t = otpc_buf_term(answer);
  int64_t links = 0, monitors = 0, bytes = 0;
  size_t arity = 0;
  otpc_term_t first;
  if (otpc_term_get_tuple(t, &arity, &first) != 0 || arity != 5) {
    otpc_buf_unref(answer);
    return OTPC_ENOPROC; /* it died before it could answer */
  }
  otpc_term_get_int64(otpc_term_tuple_elem(t, 2), &links);
  otpc_term_get_int64(otpc_term_tuple_elem(t, 3), &monitors);
  otpc_term_get_int64(otpc_term_tuple_elem(t, 4), &bytes);
  otpc_buf_unref(answer);
  info->links = (size_t)links;
  info->monitors = (size_t)monitors;
  info->memory += (size_t)bytes;
  return 0;
}

int otpc_process_info(otpc_pid_t pid, otpc_proc_info_t *info) {
  /* Exact for the calling process; for another one, a snapshot of what
   * its owner last wrote, which is what Erlang promises too (the answer
   * may be stale by the time it is read). */
  otpc__proc_t *self = otpc__current();
  otpc__reclaim_enter();
  otpc__proc_t *p = otpc__proc_lookup(pid);
  if (p == NULL) {
    otpc__reclaim_exit();
    return OTPC_ENOPROC;
  }
  memset(info, 0, sizeof *info);
  uint16_t flags = __atomic_load_n(&p->flags, __ATOMIC_RELAXED);
  if (p == self)
    info->status = OTPC_STATUS_RUNNING;
  else if (flags & PF_EXITING)
    info->status = OTPC_STATUS_EXITING;
  else if (otpc__inbox_marked_idle(&p->inbox))
    info->status = OTPC_STATUS_WAITING;
  else
    info->status = OTPC_STATUS_RUNNABLE;
  info->message_queue_len = __atomic_load_n(&p->mq_len, __ATOMIC_RELAXED);
  info->reductions = __atomic_load_n(&p->reductions, __ATOMIC_RELAXED);
  info->trap_exit = (flags & PF_TRAP) != 0;
  info->handler = (flags & PF_HANDLER) != 0;
  info->priority = (otpc_priority_t)p->priority;
  info->registered_name = __atomic_load_n(&p->reg_name, __ATOMIC_RELAXED);
  info->memory = sizeof *p + sizeof(void *) + sizeof(uint32_t);
  info->current_function = p->name_hint; /* fixed at spawn */
  if (p == self) {
    info->links = otpc__link_count(p);
    info->monitors = otpc__mon_count(p, 1);
    info->memory += otpc__ext_bytes(p);
  }
  otpc__reclaim_exit();
  if (p == self || self == NULL) return 0;
  return ask_info(self, pid, info);
}

/* ------------------------------------------------------------------------
 * The node
 * ------------------------------------------------------------------------ */

otpc_atom_t otpc_node_name(void) {
  return otpc__rt.name ? otpc__rt.name : OTPC_ATOM_NONODE;
}

int otpc_node_start(const otpc_node_opts_t *opts) {
  int expected = 0;
  if (!atomic_compare_exchange_strong(&otpc__rt.running, &expected, 2))
    return OTPC_ESTATE;
  otpc_node_opts_t o = {0};
  if (opts) o = *opts;
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  otpc__rt.nsched = o.schedulers ? o.schedulers : (cores > 0 ? (unsigned)cores : 1);
  otpc__rt.stack_size = o.stack_size ? o.stack_size : (size_t)1 << 20;
  size_t max = o.max_processes ? o.max_processes : OTPC_DEFAULT_MAX_PROCESSES;
  if (max > OTPC_MAX_MAX_PROCESSES) max = OTPC_MAX_MAX_PROCESSES;
  otpc__rt.name = OTPC_ATOM_NONODE;
  otpc__rt.creation = 0;
  if (o.name != NULL && otpc_atom_new(o.name, strlen(o.name), &otpc__rt.name) != 0) {
    atomic_store(&otpc__rt.running, 0);
    return OTPC_EINVAL;
  }
  /* dist: a node name ("name@host") gets a random creation, as epmd
   * would hand out one per incarnation; pids and refs carry it. */
  if (o.name != NULL && strchr(o.name, '@') != NULL) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    otpc__rt.creation = ((uint32_t)ts.tv_nsec ^
                         (uint32_t)ts.tv_sec * 2654435761u ^
                         (uint32_t)getpid() << 16) | 1u;
  }
  snprintf(otpc__rt.cookie, sizeof otpc__rt.cookie, "%s",
           o.cookie ? o.cookie : "");
  otpc__rt.contain_signals = o.contain_signals;
  otpc__fault_install(); /* before any scheduler runs process code */
  otpc_term_set_local_node(otpc__rt.name, otpc__rt.creation);
  atomic_store(&otpc__rt.stopping, 0);
  atomic_store(&otpc__rt.nprocs, 0);
  atomic_store(&otpc__rt.next_ref, 1);
  pthread_mutex_init(&otpc__rt.wait_lock, NULL);
  pthread_cond_init(&otpc__rt.wait_cond, NULL);
  otpc__reclaim_init();
  otpc__slab_init();
  int rc = otpc__proc_table_init(max);
  if (rc != 0) goto fail;
  otpc__rt.scheds = otpc__calloc(otpc__rt.nsched, sizeof *otpc__rt.scheds);
  if (otpc__rt.scheds == NULL) {
    rc = OTPC_ENOMEM;
    goto fail_table;
  }
  rc = otpc__timers_start();
  if (rc != 0) goto fail_scheds;
  rc = otpc__io_start();
  if (rc != 0) goto fail_timers;
  rc = otpc__dirty_start(o.dirty_threads ? o.dirty_threads : otpc__rt.nsched);
  if (rc != 0) goto fail_io;
  atomic_store(&otpc__rt.running, 1); /* spawning works from here */
  rc = otpc__sched_start_all();
  if (rc != 0) goto fail_dirty;
  otpc__heart_start(); /* beats, under `otpc heart` (heart.c) */
  return 0;
fail_dirty:
  otpc__dirty_stop();
fail_io:
  otpc__io_stop();
fail_timers:
  otpc__timers_stop();
fail_scheds:
  otpc__free(otpc__rt.scheds);
fail_table:
  otpc__proc_table_free();
fail:
  otpc__slab_destroy();
  otpc__fault_uninstall();
  atomic_store(&otpc__rt.running, 0);
  return rc;
}

int otpc_node_wait(int64_t timeout_ms) {
  if (!atomic_load(&otpc__rt.running)) return OTPC_ESTATE;
  if (otpc__self_sched != NULL) return OTPC_EINVAL; /* would deadlock */
  int rc = 0;
  int64_t deadline = timeout_ms >= 0 ? otpc_now_ms() + timeout_ms : -1;
  pthread_mutex_lock(&otpc__rt.wait_lock);
  while (atomic_load(&otpc__rt.nprocs) > 0) {
    if (deadline < 0) {
      pthread_cond_wait(&otpc__rt.wait_cond, &otpc__rt.wait_lock);
      continue;
    }
    int64_t left = deadline - otpc_now_ms();
    if (left <= 0) {
      rc = OTPC_ETIMEDOUT;
      break;
    }
    struct timespec ts = otpc__after_ms(CLOCK_REALTIME, left);
    pthread_cond_timedwait(&otpc__rt.wait_cond, &otpc__rt.wait_lock, &ts);
  }
  pthread_mutex_unlock(&otpc__rt.wait_lock);
  return rc;
}

/* Frees a process that was still alive when the node stopped. */
static void free_live(otpc__proc_t *p) {
  otpc__resources_release(p);
  otpc__dirty_abandon(p);
  for (otpc__sig_t *m = p->mq_first; m != NULL;) {
    otpc__sig_t *next =
        (otpc__sig_t *)atomic_load_explicit(&m->link.next, memory_order_relaxed);
    otpc__sig_free(m);
    m = next;
  }
  otpc__qlink_t *l;
  while ((l = otpc__mpsc_pop(&p->inbox)) != NULL) otpc__sig_free((otpc__sig_t *)l);
  if (p->ext) {
    otpc__free(p->ext->links);
    otpc__mon_table_free(p->ext->monitors);
    otpc__free(p->ext->saved);
    otpc__alias_free_all(p);
  }
  otpc_buf_unref(p->exit_reason);
  otpc__ext_free(p->ext);
  otpc__proc_dealloc(p);
}

int otpc_node_stop(void) {
  int expected = 1;
  if (!atomic_compare_exchange_strong(&otpc__rt.running, &expected, 2))
    return OTPC_ESTATE;
  if (otpc__self_sched != NULL) return OTPC_EINVAL;
  otpc__heart_pause();
  otpc__sched_stop_all();
  otpc__fault_uninstall();
  otpc__dirty_stop();
  otpc__io_stop();
  otpc__timers_stop();
  /* Single-threaded from here. Processes still alive are freed without
   * running their code again; their stacks go with the pools. */
  size_t high = otpc__proc_high_water();
  for (size_t i = 0; i < high; i++) {
    otpc__proc_t *p = atomic_load(&otpc__rt.slots[i]);
    if (p == NULL) continue;
    atomic_store(&otpc__rt.slots[i], NULL);
    free_live(p); /* stacks are freed with their schedulers below */
  }
  otpc__reclaim_drain();
  for (unsigned i = 0; i < otpc__rt.nsched; i++)
    otpc__xstack_free_all(&otpc__rt.scheds[i]);
  otpc__free(otpc__rt.scheds);
  otpc__rt.scheds = NULL;
  otpc__proc_table_free();
  otpc__registry_clear();
  otpc__slab_destroy();
  atomic_store(&otpc__rt.nprocs, 0);
  atomic_store(&otpc__rt.running, 0);
  otpc__heart_stopped(); /* a clean stop: the watchdog restarts nothing */
  return 0;
}

/* otpc_main: the first process runs fn and reports how it ended. */
typedef struct main_start {
  void (*fn)(void *);
  void *arg;
  _Atomic int normal;
} main_start_t;

/* {'DOWN', Ref, process, _, _} of the watcher's monitor. */
static bool is_main_down(otpc_term_t msg, void *ref) {
  size_t arity;
  otpc_term_t e;
  otpc_ref_t got;
  return otpc_term_get_tuple(msg, &arity, &e) == 0 && arity == 5 &&
         otpc_term_is_atom(e, OTPC_ATOM_DOWN) &&
         otpc_term_get_ref(otpc_term_next(e), &got) == 0 &&
         otpc_ref_eq(&got, ref);
}

/* Holds nothing allocated while it waits, so that a halt that kills
 * every process (an application's, see application.h) leaks nothing. */
static void main_watch(void *arg) {
  main_start_t *m = arg;
  otpc_ref_t ref;
  otpc_spawn_opts_t o = {.monitor = true, .monitor_ref = &ref, .name = "main"};
  if (otpc_spawn(m->fn, m->arg, &o, NULL) != 0) return;
  otpc_buf_t *msg;
  if (otpc_receive_fn(is_main_down, &ref, OTPC_INFINITY, &msg) == 0) {
    otpc_term_t reason = otpc_term_tuple_elem(otpc_buf_term(msg), 4);
    atomic_store(&m->normal, otpc_term_is_atom(reason, OTPC_ATOM_NORMAL));
    otpc_buf_unref(msg);
  }
}

int otpc_main(const otpc_node_opts_t *opts, void (*fn)(void *), void *arg) {
  main_start_t m = {fn, arg, 0};
  if (otpc_node_start(opts) != 0) return 1;
  if (otpc_spawn(main_watch, &m, NULL, NULL) == 0) otpc_node_wait(-1);
  otpc_node_stop();
  return atomic_load(&m.normal) ? 0 : 1;
}
