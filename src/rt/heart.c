/*
 * heart.c: the node's side of the heart watchdog (`otpc heart`, in
 * tools/heart.c; the wire is in heart_proto.h, the user's view in
 * docs/heart.md).
 *
 * The channel is found once, the first time anything here needs it: the
 * environment names a descriptor, which must be a SOCK_SEQPACKET socket
 * whose peer is the watchdog pid the environment names too. From then on
 * `chan` is fixed for the life of the program (a node may start and stop
 * many times; each start says HELLO again). If the watchdog goes away,
 * `gone` is set and the node carries on unwatched.
 *
 * Beats. A thread of its own (not a scheduler: it sleeps and writes) runs
 * while a node runs. Each beat interval it looks whether the probe process
 * it spawned one interval ago has run; only then does it send a beat, and
 * it spawns the next probe. So a beat proves that a scheduler took new
 * work within the last interval, not merely that some thread is alive: a
 * node whose scheduler is held by a process that never yields stops
 * beating, and the watchdog kills it. (Probes spawned from this thread go
 * to the schedulers in turn, and a busy scheduler's queue is not taken
 * over, so one stuck scheduler among several also stops the beats, within
 * a round of probes: see docs/heart.md.) A probe that fails to spawn (the
 * process table is full) gives no beat either: such a node cannot do its
 * work. The probe is a plain process that lives a few microseconds; it is
 * the only process this file makes. It also runs the user's health check
 * (otpc_heart_set_check), if any, and proves nothing when that fails.
 *
 * Concurrency: `chan`, `beat_ms` are written once under pthread_once and
 * read-only after. `gone` is atomic. The beat thread alone touches
 * probe_sent and probe_pending; probes store probe_ran. Requests (set_cmd
 * and friends) may come from any thread or process at once, with no lock:
 * each brings its own reply socket (heart_proto.h), and a SEQPACKET send
 * is one whole packet, so they and the beats never interleave. A process
 * waits for its reply through the runtime (otpc_wait_fd) and owns its
 * reply socket, so a process killed while it waits leaks nothing. The
 * thread's start and stop run inside otpc_node_start/stop, which the
 * node's state keeps from overlapping.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "heart_proto.h"
#include "rt_int.h"

/* How long a request waits for the watchdog's answer. It answers at once;
 * this only bounds the wait if it is wedged. */
#define REQUEST_WAIT_MS 5000
#define DEFAULT_BEAT_MS 5000

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int chan = -1;     /* the node's end, or -1: not watched */
static int beat_ms;       /* how often to beat */
static _Atomic bool gone; /* the watchdog closed its end */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond; /* CLOCK_MONOTONIC; made in find_channel */
static bool stop;           /* under lock: the beat thread should end */
static bool thread_on;      /* node start/stop only */
static pthread_t thread;
static _Atomic uint64_t probe_ran; /* the number of the last probe that ran */
static uint64_t probe_sent;        /* beat thread: the last probe spawned */
static bool probe_pending;         /* beat thread: it has not been seen */

/* ------------------------------------------------------------------------
 * The channel
 * ------------------------------------------------------------------------ */

/* A whole decimal number in [lo, hi], or -1. */
static long parse_num(const char *s, long lo, long hi) {
  if (s == NULL || *s == '\0') return -1;
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < lo || v > hi) return -1;
  return v;
}

static const char *check_channel(int fd, long watchdog) {
  struct stat st;
  if (fstat(fd, &st) != 0) return "not an open descriptor";
  if (!S_ISSOCK(st.st_mode)) return "not a socket";
  int type = 0;
  socklen_t len = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 ||
      type != SOCK_SEQPACKET)
    return "not a SOCK_SEQPACKET socket";
  struct ucred cred;
  len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
      (long)cred.pid != watchdog)
    return "its peer is not the watchdog named by " OTPC__HEART_ENV_PID;
  return NULL;
}

static void find_channel(void) {
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&cond, &ca);
  pthread_condattr_destroy(&ca);

  const char *fds = getenv(OTPC__HEART_ENV_FD);
  if (fds == NULL) return;
  long fd = parse_num(fds, 0, 1 << 20);
  long pid = parse_num(getenv(OTPC__HEART_ENV_PID), 1, 1L << 30);
  long ms = parse_num(getenv(OTPC__HEART_ENV_BEAT), 1, 3600L * 1000);
  const char *why = fd < 0    ? "not a descriptor number"
                    : pid < 0 ? OTPC__HEART_ENV_PID " is missing or bad"
                              : check_channel((int)fd, pid);
  if (why != NULL) {
    fprintf(stderr,
            "otpc: heart: ignoring %s=%s: %s; the node is not watched\n",
            OTPC__HEART_ENV_FD, fds, why);
    return;
  }
  /* Programs this one starts must not hold the watchdog's channel. */
  fcntl((int)fd, F_SETFD, FD_CLOEXEC);
  beat_ms = ms > 0 ? (int)ms : DEFAULT_BEAT_MS;
  chan = (int)fd;
}

static int channel(void) {
  pthread_once(&once, find_channel);
  return chan >= 0 && !atomic_load(&gone) ? chan : -1;
}

bool otpc_heart_enabled(void) {
  return channel() >= 0;
}

/* Sends one packet, with the descriptor `pass` attached if >= 0; 0 or
 * OTPC_EIO. A watchdog that went away makes the node unwatched, said
 * once. */
static int send_packet(int fd, char op, const char *data, size_t len, int pass,
                       int flags) {
  char buf[OTPC__HEART_PACKET_MAX];
  if (len > sizeof buf - 1) return OTPC_EINVAL;
  buf[0] = op;
  if (len > 0) memcpy(buf + 1, data, len);
  struct iovec iov = {.iov_base = buf, .iov_len = 1 + len};
  union {
    char space[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } ctl;
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
  if (pass >= 0) {
    memset(&ctl, 0, sizeof ctl);
    m.msg_control = ctl.space;
    m.msg_controllen = sizeof ctl.space;
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &pass, sizeof pass);
  }
  for (;;) {
    ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL | flags);
    if (w == (ssize_t)(1 + len)) return 0;
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return OTPC_EIO;
    break;
  }
  if (!atomic_exchange(&gone, true))
    fprintf(stderr,
            "otpc: heart: the watchdog's channel closed (%s); the "
            "node is no longer watched\n",
            strerror(errno));
  return OTPC_EIO;
}

/* ------------------------------------------------------------------------
 * Beats
 * ------------------------------------------------------------------------ */

/* otpc_heart_set_check's callback; both under check_lock. */
static pthread_mutex_t check_lock = PTHREAD_MUTEX_INITIALIZER;
static bool (*check_fn)(void *);
static void *check_arg;

static void probe(void *arg) {
  pthread_mutex_lock(&check_lock);
  bool (*fn)(void *) = check_fn;
  void *fn_arg = check_arg;
  pthread_mutex_unlock(&check_lock);
  if (fn != NULL && !fn(fn_arg)) return; /* unhealthy: no beat */
  atomic_store(&probe_ran, (uint64_t)(uintptr_t)arg);
}

int otpc_heart_set_check(bool (*check)(void *arg), void *arg) {
  if (channel() < 0) return OTPC_ENOPROC;
  pthread_mutex_lock(&check_lock);
  check_fn = check;
  check_arg = check ? arg : NULL;
  pthread_mutex_unlock(&check_lock);
  return 0;
}

static void spawn_probe(void) {
  otpc_spawn_opts_t o = {.name = "heart probe"};
  uint64_t n = probe_sent + 1;
  if (otpc_spawn(probe, (void *)(uintptr_t)n, &o, NULL) == 0) {
    probe_sent = n;
    probe_pending = true;
  }
}

/* One beat interval has passed: beat if the last probe ran. */
static void beat_round(int fd) {
  if (probe_pending && atomic_load(&probe_ran) == probe_sent) {
    probe_pending = false;
    send_packet(fd, OTPC__HEART_BEAT, NULL, 0, -1, MSG_DONTWAIT);
  }
  if (!probe_pending) spawn_probe();
}

static void *beat_loop(void *arg) {
  int fd = (int)(intptr_t)arg;
  send_packet(fd, OTPC__HEART_HELLO, NULL, 0, -1, 0);
  spawn_probe();
  pthread_mutex_lock(&lock);
  while (!stop) {
    struct timespec at = otpc__after_ms(CLOCK_MONOTONIC, beat_ms);
    int rc = 0;
    while (!stop && rc != ETIMEDOUT)
      rc = pthread_cond_timedwait(&cond, &lock, &at);
    if (stop) break;
    pthread_mutex_unlock(&lock);
    if (!atomic_load(&gone)) beat_round(fd);
    pthread_mutex_lock(&lock);
  }
  pthread_mutex_unlock(&lock);
  return NULL;
}

void otpc__heart_start(void) {
  int fd = channel();
  if (fd < 0) return;
  stop = false;
  probe_sent = 0;
  probe_pending = false;
  atomic_store(&probe_ran, 0);
  int rc = pthread_create(&thread, NULL, beat_loop, (void *)(intptr_t)fd);
  if (rc != 0) {
    fprintf(stderr,
            "otpc: heart: cannot start the beat thread (%s); the "
            "watchdog will take the node as hung\n",
            strerror(rc));
    return;
  }
  thread_on = true;
}

void otpc__heart_pause(void) {
  if (!thread_on) return;
  pthread_mutex_lock(&lock);
  stop = true;
  pthread_cond_signal(&cond);
  pthread_mutex_unlock(&lock);
  pthread_join(thread, NULL);
  thread_on = false;
}

void otpc__heart_stopped(void) {
  int fd = channel();
  if (fd >= 0) send_packet(fd, OTPC__HEART_STOPPING, NULL, 0, -1, 0);
}

/* ------------------------------------------------------------------------
 * Requests: set_cmd, clear_cmd, get_cmd
 * ------------------------------------------------------------------------ */

typedef struct request {
  char op;
  const char *data; /* payload to send */
  size_t len;
  char *out; /* the reply's payload goes here, cut to outsize - 1 */
  size_t outsize;
} request_t;

/* Waits for the reply on the request's own socket; its payload length,
 * or an error. */
static int await_reply(int rfd, bool in_process, request_t *r) {
  char buf[OTPC__HEART_PACKET_MAX + 1];
  int64_t deadline = otpc_now_ms() + REQUEST_WAIT_MS;
  ssize_t got;
  for (;;) {
    got = recv(rfd, buf, sizeof buf, MSG_DONTWAIT);
    if (got >= 0 || (errno != EAGAIN && errno != EINTR)) break;
    int64_t left = deadline - otpc_now_ms();
    if (left <= 0) return OTPC_ETIMEDOUT;
    if (in_process) {
      int rc = otpc_wait_fd(rfd, OTPC_FD_READ, left);
      if (rc < 0) return rc;
    } else {
      struct pollfd p = {.fd = rfd, .events = POLLIN};
      if (poll(&p, 1, (int)left) < 0 && errno != EINTR) return OTPC_EIO;
    }
  }
  if (got <= 0) return OTPC_EIO; /* 0: closed without an answer */
  if (buf[0] == OTPC__HEART_ERROR) return OTPC_EINVAL;
  if (buf[0] != OTPC__HEART_OK) return OTPC_EIO;
  size_t len = (size_t)got - 1;
  if (r->outsize > 0) {
    size_t c = len < r->outsize - 1 ? len : r->outsize - 1;
    memcpy(r->out, buf + 1, c);
    r->out[c] = '\0';
  }
  return (int)len;
}

/* One request and its reply. A process owns its reply socket while it
 * waits (otpc_own_fd), so it is closed however the process ends. */
static int request(request_t *r) {
  int fd = channel();
  if (fd < 0) return OTPC_ENOPROC;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
    return OTPC_EIO;
  bool in_process = otpc__current() != NULL;
  int rc = in_process ? otpc_own_fd(sv[0]) : 0;
  if (rc != 0) {
    close(sv[0]);
    close(sv[1]);
    return rc;
  }
  rc = send_packet(fd, r->op, r->data, r->len, sv[1], MSG_DONTWAIT);
  close(sv[1]);
  if (rc == 0) rc = await_reply(sv[0], in_process, r);
  if (in_process)
    otpc_close_fd(sv[0]);
  else
    close(sv[0]);
  return rc;
}

int otpc_heart_set_cmd(const char *cmd) {
  if (cmd == NULL) return OTPC_EINVAL;
  size_t len = strlen(cmd);
  if (len > OTPC_HEART_MAX_CMD) return OTPC_EINVAL;
  request_t r = {OTPC__HEART_SET_CMD, cmd, len, NULL, 0};
  int rc = request(&r);
  return rc < 0 ? rc : 0;
}

int otpc_heart_clear_cmd(void) {
  request_t r = {OTPC__HEART_CLEAR_CMD, NULL, 0, NULL, 0};
  int rc = request(&r);
  return rc < 0 ? rc : 0;
}

int otpc_heart_get_cmd(char *buf, size_t size) {
  if (buf == NULL && size > 0) return OTPC_EINVAL;
  request_t r = {OTPC__HEART_GET_CMD, NULL, 0, buf, size};
  return request(&r);
}
