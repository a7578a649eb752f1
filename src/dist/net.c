/*
 * net.c: distribution as a whole: otpc_dist_start/stop, the cookie, the
 * listener, the `net_kernel` process, ping, nodes(), monitor_node and
 * sending to {Name, Node}.
 *
 * net_kernel answers what Erlang's net_adm:ping/1 asks of it:
 * {'$gen_call', {Pid, Tag}, {is_auth, Node}} gets {Tag, yes}, sent to the
 * caller's alias when Tag is [alias | Alias] (OTP 24 and later), else to
 * Pid. Other calls get {Tag, error}... as an unknown request would.
 *
 * Subscriptions (monitor_node) are a small array under `sub_lock`;
 * a subscriber that died is dropped when an event finds it gone.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../otp/otp_int.h"
#include "dist_int.h"

otpc__dist_t otpc__dist;
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;

/* ------------------------------------------------------------------------
 * The cookie
 * ------------------------------------------------------------------------ */

static void trim(char *s) {
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' ||
                   s[n - 1] == '\t'))
    s[--n] = 0;
}

/* ~/.erlang.cookie, created (20 random capitals, mode 0400) if missing. */
static int home_cookie(char *out, size_t size) {
  const char *home = getenv("HOME");
  if (home == NULL || home[0] == 0) return OTPC_EINVAL;
  char path[4096];
  snprintf(path, sizeof path, "%s/.erlang.cookie", home);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    uint8_t rnd[20];
    char text[21];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) return OTPC_EIO;
    for (int i = 0; i < 20; i++) text[i] = (char)('A' + rnd[i] % 26);
    text[20] = 0;
    int w = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0400);
    if (w >= 0) {
      ssize_t put = write(w, text, 20);
      close(w);
      if (put != 20) return OTPC_EIO;
      OTPC_LOG_NOTICE("created %s", path);
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
  }
  if (fd < 0) return OTPC_EIO;
  ssize_t got = read(fd, out, size - 1);
  close(fd);
  if (got <= 0) return OTPC_EIO;
  out[got] = 0;
  trim(out);
  return out[0] ? 0 : OTPC_EINVAL;
}

/* ------------------------------------------------------------------------
 * Node monitoring
 * ------------------------------------------------------------------------ */

typedef struct sub {
  otpc_pid_t pid;
  otpc_atom_t node; /* OTPC_ATOM_NONE: every node */
} sub_t;

static pthread_mutex_t sub_lock = PTHREAD_MUTEX_INITIALIZER;
static sub_t *subs;
static size_t nsubs, capsubs;

void otpc__node_event(otpc_atom_t node, bool up, bool hidden) {
  pthread_mutex_lock(&sub_lock);
  size_t n = 0;
  otpc_pid_t *to = nsubs ? otpc__malloc(nsubs * sizeof *to) : NULL;
  for (size_t i = 0; to && i < nsubs;) {
    if (!otpc_is_alive(subs[i].pid)) {
      subs[i] = subs[--nsubs];
      continue;
    }
    /* monitor_nodes subscribers hear of visible nodes only */
    if (subs[i].node == node || (subs[i].node == OTPC_ATOM_NONE && !hidden))
      to[n++] = subs[i].pid;
    /* erlang:monitor_node is one-shot for nodedown */
    if (!up && subs[i].node == node) {
      subs[i] = subs[--nsubs];
      continue;
    }
    i++;
  }
  pthread_mutex_unlock(&sub_lock);
  if (n == 0) {
    otpc__free(to);
    return;
  }
  otpc_buf_t *msg = otpc_term_fmt("{~a, ~A}", up ? "nodeup" : "nodedown", node);
  for (size_t i = 0; msg && i < n; i++) otpc_send(to[i], msg);
  otpc_buf_unref(msg);
  otpc__free(to);
}

int otpc_monitor_node(otpc_atom_t node, bool on) {
  otpc_pid_t self = otpc_self();
  if (otpc__current() == NULL) return OTPC_ENOTPROC;
  int rc = 0;
  pthread_mutex_lock(&sub_lock);
  if (!on) {
    for (size_t i = 0; i < nsubs;) {
      if (otpc_pid_eq(subs[i].pid, self) && subs[i].node == node)
        subs[i] = subs[--nsubs];
      else
        i++;
    }
  } else {
    if (nsubs == capsubs) {
      size_t cap = capsubs ? capsubs * 2 : 16;
      sub_t *bigger = otpc__realloc(subs, cap * sizeof *bigger);
      if (bigger == NULL) {
        rc = OTPC_ENOMEM;
      } else {
        subs = bigger;
        capsubs = cap;
      }
    }
    if (rc == 0) subs[nsubs++] = (sub_t){self, node};
  }
  pthread_mutex_unlock(&sub_lock);
  if (rc == 0 && on && node != OTPC_ATOM_NONE && node != otpc__dist.node) {
    /* Erlang connects, and tells nodedown at once when it cannot. */
    if (!atomic_load(&otpc__dist.running) || otpc__conn_state(node, true) < 0)
      otpc__node_event(node, false, true);
  }
  return rc;
}

/* ------------------------------------------------------------------------
 * net_kernel
 * ------------------------------------------------------------------------ */

/* Replies to a gen_server call: to the alias in [alias | Alias], else to
 * the caller's pid. */
static void reply(otpc_term_t from, otpc_term_t reply_term) {
  size_t arity;
  otpc_term_t e;
  otpc_pid_t pid;
  if (otpc_term_get_tuple(from, &arity, &e) != 0 || arity != 2 ||
      otpc_term_get_pid(e, &pid) != 0)
    return;
  otpc_term_t tag = otpc_term_next(e);
  otpc_buf_t *msg = otpc_term_fmt("{~t, ~t}", tag, reply_term);
  if (msg == NULL) return;
  otpc_ref_t alias;
  if (otpc_tag_alias(tag, &alias))
    otpc_send_alias(&alias, msg);
  else
    otpc_send(pid, msg);
  otpc_buf_unref(msg);
}

/* otpc_send_alias's way out: ALIAS_SEND to the alias's node. */
static void alias_route(const otpc_ref_t *alias, otpc_buf_t *msg,
                        otpc_pid_t from) {
  otpc__dist_enqueue(alias->node, otpc__ctrl_fmt("{33, ~p, ~r}", &from, alias),
                     msg, from);
}

static int nk_handle(void *state, otpc_buf_t *msg) {
  static otpc_pattern_t *call;
  if (call == NULL &&
      otpc_pattern_compile("{'$gen_call', ~t, ~t}", &call, NULL) != 0)
    return OTPC_CONTINUE;
  otpc_term_t from, req;
  if (otpc_match(call, otpc_buf_term(msg), &from, &req) != 1)
    return OTPC_CONTINUE;
  size_t arity;
  otpc_term_t e;
  bool is_auth = otpc_term_get_tuple(req, &arity, &e) == 0 && arity == 2 &&
                 otpc_term_atom_eq(e, "is_auth", 7);
  otpc_buf_t *ans = otpc_term_fmt(is_auth ? "yes" : "error");
  if (ans) reply(from, otpc_buf_term(ans));
  otpc_buf_unref(ans);
  return OTPC_CONTINUE;
}

static const otpc_handler_t nk_handler = {NULL, nk_handle, NULL};

/* ------------------------------------------------------------------------
 * The listener
 * ------------------------------------------------------------------------ */

static void listen_loop(void *arg) {
  int lfd = (int)(intptr_t)arg;
  if (otpc_own_fd(lfd) != 0) {
    close(lfd);
    return;
  }
  for (;;) {
    int fd = otpc__sock_accept(lfd);
    if (fd < 0) {
      if (otpc__sock_wait(lfd, OTPC_FD_READ, -1) < 0) otpc_sleep(10);
      continue;
    }
    otpc__conn_accept(fd);
  }
}

/* ------------------------------------------------------------------------
 * Start and stop
 * ------------------------------------------------------------------------ */

static void kill_pid(otpc_pid_t pid) {
  otpc_buf_t *k = otpc__atom_buf(OTPC_ATOM_KILL);
  if (k) otpc_exit_signal(pid, otpc_buf_term(k));
  otpc_buf_unref(k);
}

static int setup(const otpc_dist_opts_t *o) {
  otpc__dist_t *d = &otpc__dist;
  const char *name = otpc_atom_name(otpc_node_name(), NULL);
  const char *at = strchr(name, '@');
  if (at == NULL || at == name || at[1] == 0 || strlen(name) > DIST_NAME_MAX)
    return OTPC_ESTATE;
  d->node = otpc_node_name();
  snprintf(d->name, sizeof d->name, "%s", name);
  snprintf(d->host, sizeof d->host, "%s", at + 1);
  d->creation = otpc__rt.creation;
  d->hidden = o->hidden;
  d->flags = DIST_FLAGS_OURS | (o->hidden ? 0 : OTPC_DFLAG_PUBLISHED);
  d->ticktime = o->net_ticktime ? o->net_ticktime : 60;
  if (d->ticktime < 4) d->ticktime = 4;
  const char *env = getenv("ERL_EPMD_PORT");
  d->epmd_port = o->epmd_port           ? o->epmd_port
                 : env && atoi(env) > 0 ? (uint16_t)atoi(env)
                                        : EPMD_DEFAULT_PORT;
  snprintf(d->listen_addr, sizeof d->listen_addr, "%s",
           o->listen_addr ? o->listen_addr : "0.0.0.0");
  const char *cookie = o->cookie            ? o->cookie
                       : otpc__rt.cookie[0] ? otpc__rt.cookie
                                            : NULL;
  if (cookie != NULL) {
    snprintf(d->cookie, sizeof d->cookie, "%s", cookie);
  } else {
    int rc = home_cookie(d->cookie, sizeof d->cookie);
    if (rc != 0) return rc;
  }
  return 0;
}

static int start(const otpc_dist_opts_t *o) {
  otpc__dist_t *d = &otpc__dist;
  int rc = setup(o);
  if (rc != 0) return rc;
  /* TLS contexts stay after otpc_dist_stop() (a handshake still running
   * may use one); the next start replaces them. */
  otpc__tls_cleanup();
  if (o->tls != NULL && (rc = otpc__tls_setup(o->tls)) != 0) return rc;
  otpc__conn_init();
  rc = otpc__sock_listen(d->listen_addr, o->listen_port, &d->listen_fd,
                         &d->port);
  if (rc != 0) return rc;
  /* epmd: the host's, else our own. */
  int64_t deadline = otpc__deadline(DIST_SETUP_MS);
  char alive[256];
  snprintf(alive, sizeof alive, "%.*s", (int)(strchr(d->name, '@') - d->name),
           d->name);
  uint32_t creation;
  rc = otpc__epmd_register(d->epmd_port, alive, d->port, d->hidden, deadline,
                           &d->epmd_fd, &creation);
  if (rc == OTPC_EIO && !o->no_epmd_server) {
    rc = otpc__epmd_server_start(d->listen_addr, d->epmd_port);
    if (rc == 0) {
      d->epmd_server = true;
      OTPC_LOG_INFO("no epmd on port %u: started the embedded one",
                    d->epmd_port);
      rc = otpc__epmd_register(d->epmd_port, alive, d->port, d->hidden,
                               deadline, &d->epmd_fd, &creation);
    } else if (rc == OTPC_EEXIST) { /* another one started meanwhile */
      rc = otpc__epmd_register(d->epmd_port, alive, d->port, d->hidden,
                               deadline, &d->epmd_fd, &creation);
    }
  }
  if (rc != 0) {
    OTPC_LOG_ERROR("could not register %s with epmd on port %u: %s", alive,
                   d->epmd_port, otpc_strerror(rc));
    close(d->listen_fd);
    if (d->epmd_server) otpc__epmd_server_stop();
    d->epmd_server = false;
    return rc;
  }
  otpc_spawn_opts_t lo = {.name = "dist listener"};
  rc = otpc_spawn(listen_loop, (void *)(intptr_t)d->listen_fd, &lo,
                  &d->listener);
  if (rc == 0) {
    otpc_spawn_opts_t no = {.name = "net_kernel"};
    rc = otpc_spawn_handler(&nk_handler, NULL, &no, &d->net_kernel);
    if (rc == 0) rc = otpc_register(otpc_atom("net_kernel"), d->net_kernel);
    if (rc == 0) rc = otpc__rex_start(&d->rex);
  }
  if (rc != 0) {
    kill_pid(d->listener);
    kill_pid(d->net_kernel);
    kill_pid(d->rex);
    close(d->epmd_fd);
    if (d->epmd_server) otpc__epmd_server_stop();
    return rc;
  }
  atomic_store(&otpc__remote_route, otpc__dist_route);
  atomic_store(&otpc__alias_route, alias_route);
  atomic_store(&d->running, 1);
  OTPC_LOG_INFO("distribution up: %s on port %u%s", d->name, d->port,
                otpc__tls_on() ? " (TLS)" : "");
  return 0;
}

int otpc_dist_start(const otpc_dist_opts_t *opts) {
  otpc_dist_opts_t o = {0};
  if (opts) o = *opts;
  pthread_mutex_lock(&start_lock);
  int rc = atomic_load(&otpc__dist.running) ? OTPC_ESTATE : start(&o);
  pthread_mutex_unlock(&start_lock);
  return rc;
}

int otpc_dist_stop(void) {
  pthread_mutex_lock(&start_lock);
  otpc__dist_t *d = &otpc__dist;
  if (!atomic_exchange(&d->running, 0)) {
    pthread_mutex_unlock(&start_lock);
    return OTPC_ESTATE;
  }
  atomic_store(&otpc__remote_route, NULL);
  atomic_store(&otpc__alias_route, NULL);
  otpc_unregister(otpc_atom("net_kernel"));
  otpc_unregister(otpc_atom("rex"));
  kill_pid(d->net_kernel);
  kill_pid(d->rex);
  kill_pid(d->listener);
  otpc__conn_shutdown();
  close(d->epmd_fd);
  if (d->epmd_server) otpc__epmd_server_stop();
  d->epmd_server = false;
  /* Let the killed processes go before the caller stops the node. */
  for (int i = 0;
       i < 200 && (otpc_is_alive(d->listener) || otpc_is_alive(d->net_kernel) ||
                   otpc_is_alive(d->rex));
       i++) {
    if (otpc__current() != NULL)
      otpc_sleep(5);
    else
      usleep(5000);
  }
  pthread_mutex_lock(&sub_lock);
  otpc__free(subs);
  subs = NULL;
  nsubs = capsubs = 0;
  pthread_mutex_unlock(&sub_lock);
  d->port = 0;
  pthread_mutex_unlock(&start_lock);
  return 0;
}

bool otpc_dist_running(void) {
  return atomic_load(&otpc__dist.running) != 0;
}
uint16_t otpc_dist_port(void) {
  return atomic_load(&otpc__dist.running) ? otpc__dist.port : 0;
}

/* ------------------------------------------------------------------------
 * Using it
 * ------------------------------------------------------------------------ */

int otpc_send_remote(otpc_atom_t name, otpc_atom_t node, otpc_buf_t *msg) {
  if (msg == NULL) return OTPC_EINVAL;
  if (node == otpc_node_name()) {
    int rc = otpc_send_name(name, msg);
    return rc == OTPC_ENONAME ? 0 : rc;
  }
  if (!atomic_load(&otpc__dist.running)) return OTPC_ESTATE;
  otpc_pid_t self = otpc_self();
  otpc_buf_t *ctrl;
  if (self.node == OTPC_ATOM_UNDEFINED)
    ctrl = otpc__ctrl_fmt(
        "{6, ~p, '', ~A}",
        &(otpc_pid_t){otpc__dist.node, 0, 0, otpc__dist.creation}, name);
  else
    ctrl = otpc__ctrl_fmt("{6, ~p, '', ~A}", &self, name);
  return otpc__dist_enqueue(node, ctrl, otpc_buf_ref(msg), self);
}

int otpc_net_connect(otpc_atom_t node, int64_t timeout_ms) {
  if (otpc__current() == NULL) return OTPC_ENOTPROC;
  if (node == otpc_node_name()) return 1;
  if (!atomic_load(&otpc__dist.running)) return 0;
  int64_t deadline = otpc__deadline(timeout_ms);
  bool first = true;
  for (int wait = 1;; wait = wait < 50 ? wait * 2 : 50) {
    int st = otpc__conn_state(node, first);
    first = false;
    if (st != 0) return st > 0;
    if (deadline >= 0 && otpc_now_ms() >= deadline) return 0;
    otpc_sleep(wait);
  }
}

/* {[alias | Alias], _} for our alias. */
static bool is_pong(otpc_term_t msg, void *ctx) {
  size_t arity;
  otpc_term_t e;
  otpc_ref_t ref;
  return otpc_term_get_tuple(msg, &arity, &e) == 0 && arity == 2 &&
         otpc_tag_alias(e, &ref) && otpc_ref_eq(&ref, ctx);
}

static int ping_wait(otpc_atom_t node, const otpc_ref_t *alias,
                     int64_t deadline) {
  for (;;) {
    int64_t left = deadline < 0 ? 1000 : deadline - otpc_now_ms();
    if (left <= 0) return 0;
    otpc_buf_t *ans;
    if (otpc_receive_fn(is_pong, (void *)alias, left < 200 ? left : 200,
                        &ans) == 0) {
      bool yes = otpc_term_is_atom(otpc_term_tuple_elem(otpc_buf_term(ans), 1),
                                   otpc_atom("yes"));
      otpc_buf_unref(ans);
      return yes;
    }
    if (otpc__conn_state(node, false) < 0) return 0; /* the node went away */
  }
}

int otpc_net_ping(otpc_atom_t node, int64_t timeout_ms) {
  if (otpc__current() == NULL) return OTPC_ENOTPROC;
  if (node == otpc_node_name()) return 1;
  int64_t deadline = otpc__deadline(timeout_ms);
  if (otpc_net_connect(node, timeout_ms) != 1) return 0;
  /* The pong comes to an alias, so one after we gave up is dropped. */
  otpc_ref_t alias;
  int rc = otpc_alias(OTPC_ALIAS_EXPLICIT_UNALIAS, &alias);
  if (rc != 0) return rc;
  otpc_pid_t self = otpc_self();
  otpc_buf_t *req =
      otpc_term_fmt("{'$gen_call', {~p, [alias | ~r]}, {is_auth, ~A}}", &self,
                    &alias, otpc__dist.node);
  rc = req ? otpc_send_remote(otpc_atom("net_kernel"), node, req) : OTPC_ENOMEM;
  otpc_buf_unref(req);
  if (rc == 0) rc = ping_wait(node, &alias, deadline);
  otpc_unalias(&alias);
  return rc;
}

int otpc_net_disconnect(otpc_atom_t node) {
  return otpc__conn_close(node);
}

size_t otpc_nodes(otpc_atom_t *out, size_t max, bool hidden) {
  return otpc__conn_nodes(out, max, hidden);
}

/* monitor(process, {Name, Node}), its ref an alias too if alias is one
 * of rt's ALIAS_MON_* modes (0: none). Node is another node. */
static int monitor_remote(otpc__proc_t *p, otpc_atom_t name, otpc_atom_t node,
                          unsigned alias, otpc_ref_t *ref) {
  otpc_buf_t *obj = otpc_term_fmt("{~A, ~A}", name, node);
  if (obj == NULL) return OTPC_ENOMEM;
  otpc_ref_t r;
  int rc = 0;
  if (alias != 0)
    rc = otpc__alias_new(p, alias, &r);
  else
    r = otpc_make_ref();
  /* The entry that DOWN and demonitor find: its pid is no process of that
   * node (id UINT32_MAX), its name what DOWN shows. */
  otpc_pid_t nobody = {node, UINT32_MAX, 0, 0};
  if (rc == 0) rc = otpc__mon_add(p, &r, nobody, MON_WATCHING, obj);
  if (rc != 0) {
    if (alias != 0) otpc__alias_drop(p, &r);
    otpc_buf_unref(obj);
    return rc;
  }
  if (ref) *ref = r;
  if (!atomic_load(&otpc__dist.running)) {
    /* no distribution: the node cannot be reached */
    otpc__sig_t *sig = otpc__sig_new(SIG_DOWN);
    if (sig == NULL) return OTPC_ENOMEM;
    sig->from = nobody;
    sig->ref = r;
    sig->buf = otpc__atom_buf(OTPC_ATOM_NOCONNECTION);
    otpc__deliver(p, sig);
    return 0;
  }
  return otpc__monitor_remote_name(otpc__proc_pid(p), name, node, &r);
}

int otpc_monitor_remote(otpc_atom_t name, otpc_atom_t node, otpc_ref_t *ref) {
  otpc__proc_t *p = otpc__current();
  if (p == NULL) return OTPC_ENOTPROC;
  if (node == otpc_node_name()) return otpc_monitor_name(name, ref);
  return monitor_remote(p, name, node, 0, ref);
}

/* ------------------------------------------------------------------------
 * gen_server:call({Name, Node}, Request)
 * ------------------------------------------------------------------------ */

typedef struct named {
  otpc_atom_t name, node;
} named_t;

/* Takes over the reference to msg, as otpc__gen_request's send does. */
static int send_named(void *ctx, otpc_buf_t *msg) {
  named_t *n = ctx;
  int rc = otpc_send_remote(n->name, n->node, msg);
  otpc_buf_unref(msg);
  return rc;
}

/* As gen:call does: monitor {Name, Node} with {alias, demonitor} (which
 * connects), send the call by name with the tag [alias | Mon], wait for
 * the reply or the DOWN (noproc, noconnection, or the server's exit
 * reason). */
int otpc_gen_server_call_remote(otpc_atom_t name, otpc_atom_t node,
                                otpc_buf_t *req, int64_t timeout_ms,
                                otpc_buf_t **reply) {
  if (req == NULL || reply == NULL) return OTPC_EINVAL;
  *reply = NULL;
  if (otpc__current() == NULL) return OTPC_ENOTPROC;
  if (node == otpc_node_name())
    return otpc_gen_server_call_name(name, req, timeout_ms, reply);
  otpc_ref_t mon;
  int rc =
      monitor_remote(otpc__current(), name, node, ALIAS_MON_DEMONITOR, &mon);
  if (rc != 0) return rc;
  named_t to = {name, node};
  return otpc__gen_request(&mon, node, send_named, &to, otpc_atom("$gen_call"),
                           otpc_buf_term(req), timeout_ms, reply, false);
}

int otpc_gen_statem_call_remote(otpc_atom_t name, otpc_atom_t node,
                                otpc_buf_t *req, int64_t timeout_ms,
                                otpc_buf_t **reply) {
  return otpc_gen_server_call_remote(name, node, req, timeout_ms, reply);
}

/* ------------------------------------------------------------------------
 * rpc:call
 * ------------------------------------------------------------------------ */

/* {[alias | Mon], Result}, or {'DOWN', Mon, _, _, _}. */
static bool rpc_answer(otpc_term_t msg, void *ctx) {
  const otpc_ref_t *mon = ctx;
  size_t arity;
  otpc_term_t e;
  otpc_ref_t r;
  if (otpc_term_get_tuple(msg, &arity, &e) != 0) return false;
  if (arity == 2) return otpc_tag_alias(e, &r) && otpc_ref_eq(&r, mon);
  return arity == 5 && otpc_term_is_atom(e, OTPC_ATOM_DOWN) &&
         otpc_term_get_ref(otpc_term_next(e), &r) == 0 && otpc_ref_eq(&r, mon);
}

int otpc_rpc_call(otpc_atom_t node, const char *module, const char *function,
                  otpc_term_t args, int64_t timeout_ms, otpc_buf_t **result) {
  otpc__proc_t *p = otpc__current();
  if (p == NULL) return OTPC_ENOTPROC;
  if (result == NULL || module == NULL || function == NULL ||
      (otpc_term_type(args) != OTPC_TYPE_LIST &&
       otpc_term_type(args) != OTPC_TYPE_NIL))
    return OTPC_EINVAL;
  *result = NULL;
  otpc_ref_t mon;
  otpc_pid_t self = otpc_self();
  otpc_atom_t rex = otpc_atom("rex");
  /* As gen_server:call({rex, Node}, {call, M, F, A, user}): user as the
   * group leader keeps the function's output on that node. The monitor's
   * alias is the tag: demonitor deactivates it, so a late answer is
   * dropped. */
  int rc = node == otpc_node_name()
               ? otpc__monitor_name(rex, ALIAS_MON_DEMONITOR, &mon)
               : monitor_remote(p, rex, node, ALIAS_MON_DEMONITOR, &mon);
  if (rc != 0) return rc;
  otpc_buf_t *req = otpc_term_fmt(
      "{'$gen_call', {~p, [alias | ~r]}, {call, ~a, ~a, ~t, user}}", &self,
      &mon, module, function, args);
  if (req == NULL) {
    otpc_demonitor(&mon, OTPC_DEMONITOR_FLUSH);
    return OTPC_ENOMEM;
  }
  rc = otpc_send_remote(rex, node, req);
  otpc_buf_unref(req);
  otpc_buf_t *ans = NULL;
  if (rc == 0) rc = otpc_receive_fn(rpc_answer, &mon, timeout_ms, &ans);
  otpc_demonitor(&mon, OTPC_DEMONITOR_FLUSH);
  if (rc == OTPC_ETIMEDOUT) {
    *result = otpc_term_fmt("{badrpc, timeout}");
  } else if (rc != 0) {
    return rc;
  } else if (otpc_term_is_atom(otpc_term_tuple_elem(otpc_buf_term(ans), 0),
                               OTPC_ATOM_DOWN)) {
    otpc_term_t why = otpc_term_tuple_elem(otpc_buf_term(ans), 4);
    *result = otpc_term_is_atom(why, OTPC_ATOM_NOCONNECTION)
                  ? otpc_term_fmt("{badrpc, nodedown}")
                  : otpc_term_fmt("{badrpc, {'EXIT', ~t}}", why);
  } else {
    *result = otpc_term_fmt("~t", otpc_term_tuple_elem(otpc_buf_term(ans), 1));
  }
  otpc_buf_unref(ans);
  return *result ? 0 : OTPC_ENOMEM;
}
