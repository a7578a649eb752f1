/*
 * heart.c: `otpc heart`, an external watchdog for a node, as Erlang's heart
 * program is for an Erlang node (user's guide: docs/heart.md; the wire:
 * src/rt/heart_proto.h).
 *
 *   otpc heart [--timeout SECONDS] [--cmd COMMAND] [--] PROGRAM [ARGS...]
 *
 * It starts PROGRAM as its child with one end of a socket pair named in
 * the child's environment, then watches, in one poll loop over the socket
 * and a self-pipe that the signal handlers write to:
 *
 *   WATCHING  a beat (or the node's HELLO) is due by `deadline`; from the
 *             start too, so a program that never starts a node is hung.
 *   STOPPED   the node said STOPPING (otpc_node_stop returned): no beat is
 *             due; a HELLO (the program starts a node again) goes back to
 *             WATCHING; the child's exit is clean.
 *
 * Outcomes, checked in this order:
 *   - the child exited with status 0 after STOPPING, or ended in any way
 *     after the watchdog passed on a terminating signal to it: clean; the
 *     watchdog exits with the child's status and restarts nothing.
 *   - the child ended otherwise (a crash, kill -9, an exit without
 *     stopping the node, or a failure status after stopping it, as
 *     otpc_main returns when its first process failed): "died".
 *   - no beat by the deadline: "hung"; the child gets SIGKILL (a hung node
 *     may not act on SIGTERM; HEART_KILL_SIGNAL=SIGABRT for a core dump,
 *     HEART_NO_KILL=TRUE to leave it to the command) and is reaped.
 * For died and hung the restart command runs (the node's temporary one set
 * with otpc_heart_set_cmd, else --cmd, else HEART_COMMAND) through
 * /bin/sh -c, and the watchdog exits when it finishes: as in Erlang, the
 * command is what starts a new node (and its new watchdog). With no
 * command nothing is restarted.
 *
 * Exit status: the child's own (0) after a clean stop; 3 hung, 4 died (the
 * command, if any, ran and succeeded); 5 the restart command failed; 1 the
 * program could not be started; 2 a usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../src/rt/heart_proto.h"
#include "heart.h"
#include "otpc.h"

enum {
  EXIT_START = 1,
  EXIT_USAGE = 2,
  EXIT_HUNG = 3,
  EXIT_DIED = 4,
  EXIT_CMD_FAILED = 5
};

#define DEFAULT_TIMEOUT_S 60.0
#define MAX_TIMEOUT_S 65535.0
/* A beat every quarter of the timeout, at most every 5 s (Erlang's heart
 * beats every 5 s against its 60 s default). */
#define MAX_BEAT_MS 5000

typedef struct watch {
  int64_t timeout_ms;
  const char *cmd;                      /* --cmd or HEART_COMMAND; NULL: none */
  char tmp_cmd[OTPC_HEART_MAX_CMD + 1]; /* the node's set_cmd; "" if none */
  char **argv;                          /* the program and its arguments */
  pid_t child;
  int sock;        /* our end; -1 once the node's end is closed */
  bool watching;   /* a beat is due by deadline */
  bool stopping;   /* the node said STOPPING */
  bool forwarded;  /* a terminating signal was passed on to the child */
  int kill_signal; /* for a hung node: SIGKILL, or SIGABRT */
  bool no_kill;    /* HEART_NO_KILL=TRUE: the command deals with it */
  int64_t deadline;
} watch_t;

static const char usage[] =
    "usage: otpc heart [--timeout SECONDS] [--cmd COMMAND] [--] PROGRAM "
    "[ARGS...]\n"
    "  runs PROGRAM (an otpc node) and watches its beats; if it hangs (no\n"
    "  beat for SECONDS, default $HEART_BEAT_TIMEOUT or 60) it is killed;\n"
    "  if it hangs or dies, COMMAND (default $HEART_COMMAND) runs with\n"
    "  /bin/sh -c. A node stopped with otpc_node_stop is not restarted.\n";

static int sig_write = -1; /* the self-pipe's write end */

static void on_signal(int sig) {
  int saved = errno;
  unsigned char c = (unsigned char)sig;
  ssize_t w = write(sig_write, &c, 1);
  (void)w; /* a full pipe already holds a wake-up */
  errno = saved;
}

static const int forwarded_signals[] = {SIGTERM, SIGINT,  SIGHUP,
                                        SIGQUIT, SIGUSR1, SIGUSR2};

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------------
 * Starting the program and the restart command
 * ------------------------------------------------------------------------ */

static void default_signals(void) {
  for (size_t i = 0; i < sizeof forwarded_signals / sizeof *forwarded_signals;
       i++)
    signal(forwarded_signals[i], SIG_DFL);
  signal(SIGCHLD, SIG_DFL);
  signal(SIGPIPE, SIG_DFL); /* ignored here; an exec would keep that */
}

/* Forks and execs the program with the node's end of the channel; 0, or
 * -1 with a message. */
static int start_child(watch_t *w, int64_t beat_ms) {
  int sv[2], ep[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0 ||
      pipe2(ep, O_CLOEXEC) != 0) {
    fprintf(stderr, "otpc heart: %s\n", strerror(errno));
    return -1;
  }
  pid_t me = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "otpc heart: fork: %s\n", strerror(errno));
    return -1;
  }
  if (pid == 0) {
    default_signals();
    close(sv[0]);
    close(ep[0]);
    char fd[16], owner[24], beat[24];
    snprintf(fd, sizeof fd, "%d", sv[1]);
    snprintf(owner, sizeof owner, "%ld", (long)me);
    snprintf(beat, sizeof beat, "%lld", (long long)beat_ms);
    fcntl(sv[1], F_SETFD, 0); /* the one descriptor the program keeps */
    setenv(OTPC__HEART_ENV_FD, fd, 1);
    setenv(OTPC__HEART_ENV_PID, owner, 1);
    setenv(OTPC__HEART_ENV_BEAT, beat, 1);
    execvp(w->argv[0], w->argv);
    int e = errno;
    ssize_t n = write(ep[1], &e, sizeof e);
    (void)n;
    _exit(127);
  }
  close(sv[1]);
  close(ep[1]);
  int e = 0;
  ssize_t n;
  while ((n = read(ep[0], &e, sizeof e)) < 0 && errno == EINTR) {
  }
  close(ep[0]);
  if (n == (ssize_t)sizeof e) {
    fprintf(stderr, "otpc heart: cannot run %s: %s\n", w->argv[0], strerror(e));
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    close(sv[0]);
    return -1;
  }
  w->child = pid;
  w->sock = sv[0];
  return 0;
}

/* Runs cmd with /bin/sh -c and waits; its wait status, or -1. */
static int run_command(const char *cmd, const char *reason, pid_t node) {
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    default_signals();
    char p[24];
    snprintf(p, sizeof p, "%ld", (long)node);
    /* Only the watched program has a channel (this may be a watchdog
     * started by a watched node). */
    unsetenv(OTPC__HEART_ENV_FD);
    unsetenv(OTPC__HEART_ENV_PID);
    unsetenv(OTPC__HEART_ENV_BEAT);
    setenv("OTPC_HEART_REASON", reason, 1);
    setenv("OTPC_HEART_NODE_PID", p, 1);
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return status;
}

/* "exited with status 1", "was killed by signal 9 (Killed)" */
static void describe(int status, char *buf, size_t size) {
  if (WIFEXITED(status))
    snprintf(buf, size, "exited with status %d", WEXITSTATUS(status));
  else if (WIFSIGNALED(status))
    snprintf(buf, size, "was killed by signal %d (%s)", WTERMSIG(status),
             strsignal(WTERMSIG(status)));
  else
    snprintf(buf, size, "ended (wait status %d)", status);
}

/* The node hung or died: run the restart command, if there is one. */
static int restart(watch_t *w, const char *reason, const char *how, int code) {
  fprintf(stderr, "otpc heart: %s (pid %ld) %s\n", w->argv[0], (long)w->child,
          how);
  const char *cmd = w->tmp_cmd[0] != '\0' ? w->tmp_cmd : w->cmd;
  if (cmd == NULL || cmd[0] == '\0') {
    fprintf(stderr,
            "otpc heart: no restart command (--cmd, HEART_COMMAND): "
            "not restarting\n");
    return code;
  }
  fprintf(stderr, "otpc heart: running the restart command: %s\n", cmd);
  int status = run_command(cmd, reason, w->child);
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    char what[64] = "could not be started";
    if (status != -1) describe(status, what, sizeof what);
    fprintf(stderr, "otpc heart: the restart command %s\n", what);
    return EXIT_CMD_FAILED;
  }
  return code;
}

/* ------------------------------------------------------------------------
 * The channel
 * ------------------------------------------------------------------------ */

/* Answers a request on the socket it brought, then closes that. */
static void reply(int rfd, char op, const char *data, size_t len) {
  char buf[OTPC__HEART_PACKET_MAX];
  buf[0] = op;
  if (len > sizeof buf - 1) len = sizeof buf - 1;
  if (len > 0) memcpy(buf + 1, data, len);
  /* The node waits for this; if it cannot take it now it has given up. */
  send(rfd, buf, 1 + len, MSG_NOSIGNAL | MSG_DONTWAIT);
  close(rfd);
}

static void request(watch_t *w, const char *buf, size_t n, int rfd) {
  const char *arg = buf + 1;
  size_t len = n - 1;
  switch (buf[0]) {
    case OTPC__HEART_SET_CMD:
      if (memchr(arg, '\0', len) != NULL) {
        static const char bad[] = "the command holds a NUL byte";
        reply(rfd, OTPC__HEART_ERROR, bad, sizeof bad - 1);
        return;
      }
      memcpy(w->tmp_cmd, arg, len);
      w->tmp_cmd[len] = '\0';
      reply(rfd, OTPC__HEART_OK, NULL, 0);
      return;
    case OTPC__HEART_CLEAR_CMD:
      w->tmp_cmd[0] = '\0';
      reply(rfd, OTPC__HEART_OK, NULL, 0);
      return;
    case OTPC__HEART_GET_CMD:
      reply(rfd, OTPC__HEART_OK, w->tmp_cmd, strlen(w->tmp_cmd));
      return;
  }
  static const char unknown[] = "unknown request";
  reply(rfd, OTPC__HEART_ERROR, unknown, sizeof unknown - 1);
}

/* One packet; rfd is the descriptor that came with it, or -1. */
static void packet(watch_t *w, const char *buf, ssize_t n, int rfd) {
  switch (buf[0]) {
    case OTPC__HEART_HELLO:
      w->stopping = false;
      w->watching = true;
      w->deadline = now_ms() + w->timeout_ms;
      break;
    case OTPC__HEART_BEAT:
      if (w->stopping) break; /* a stopped node does not beat */
      w->watching = true;
      w->deadline = now_ms() + w->timeout_ms;
      break;
    case OTPC__HEART_STOPPING:
      w->stopping = true;
      w->watching = false;
      break;
    default:
      if (rfd >= 0) {
        request(w, buf, (size_t)n, rfd);
        return;
      }
      fprintf(stderr,
              "otpc heart: ignored a request without a reply socket from "
              "the node (op %d)\n",
              (unsigned char)buf[0]);
  }
  if (rfd >= 0) close(rfd);
}

/* recv of one packet and the descriptor that may come with it (-1 if
 * none); MSG_TRUNC: the length returned is the packet's, whatever fits. */
static ssize_t recv_packet(int sock, char *buf, size_t size, int *rfd) {
  union {
    char space[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } ctl;
  struct iovec iov = {.iov_base = buf, .iov_len = size};
  struct msghdr m = {.msg_iov = &iov,
                     .msg_iovlen = 1,
                     .msg_control = ctl.space,
                     .msg_controllen = sizeof ctl.space};
  *rfd = -1;
  ssize_t n = recvmsg(sock, &m, MSG_DONTWAIT | MSG_TRUNC | MSG_CMSG_CLOEXEC);
  if (n < 0) return n;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
        c->cmsg_len == CMSG_LEN(sizeof(int)))
      memcpy(rfd, CMSG_DATA(c), sizeof *rfd);
  return n;
}

/* Takes in every packet waiting on the socket. */
static void read_packets(watch_t *w) {
  char buf[OTPC__HEART_PACKET_MAX];
  while (w->sock >= 0) {
    int rfd;
    ssize_t n = recv_packet(w->sock, buf, sizeof buf, &rfd);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) { /* the node's end is closed: no more beats */
      close(w->sock);
      w->sock = -1;
      return;
    }
    if (n > (ssize_t)sizeof buf) {
      fprintf(stderr,
              "otpc heart: ignored a packet of %zd bytes from the "
              "node (at most %zu)\n",
              n, sizeof buf);
      if (rfd >= 0) close(rfd);
      continue;
    }
    packet(w, buf, n, rfd);
  }
}

/* ------------------------------------------------------------------------
 * Watching
 * ------------------------------------------------------------------------ */

/* The child ended with status: clean, or died. */
static int child_ended(watch_t *w, int status) {
  read_packets(w); /* a STOPPING sent just before the exit */
  bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if ((w->stopping && ok) || w->forwarded) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  }
  char how[128];
  describe(status, how, sizeof how);
  strncat(
      how,
      w->stopping ? " after stopping its node" : " without stopping its node",
      sizeof how - strlen(how) - 1);
  return restart(w, "died", how, EXIT_DIED);
}

/* Kills the hung child with sig and reaps it. A SIGABRT the child
 * catches or ignores gets SIGKILL after one more timeout. */
static void kill_child(watch_t *w, int sig) {
  kill(w->child, sig);
  for (int64_t waited = 0; sig != SIGKILL; waited += 10) {
    if (waitpid(w->child, NULL, WNOHANG) == w->child) return;
    if (waited >= w->timeout_ms) {
      kill(w->child, SIGKILL);
      break;
    }
    struct timespec ten = {0, 10 * 1000000};
    nanosleep(&ten, NULL);
  }
  while (waitpid(w->child, NULL, 0) < 0 && errno == EINTR) {
  }
}

static int hung(watch_t *w) {
  char how[128];
  int n = snprintf(how, sizeof how,
                   "sent no beat for %.3g s: ", (double)w->timeout_ms / 1000);
  if (w->no_kill) {
    snprintf(how + n, sizeof how - n, "left running (HEART_NO_KILL)");
  } else {
    snprintf(how + n, sizeof how - n, "killed it with %s",
             w->kill_signal == SIGABRT ? "SIGABRT" : "SIGKILL");
    kill_child(w, w->kill_signal);
  }
  if (w->forwarded) { /* it was asked to stop: kill it, restart nothing */
    fprintf(stderr, "otpc heart: %s (pid %ld) %s\n", w->argv[0], (long)w->child,
            how);
    return EXIT_HUNG;
  }
  return restart(w, "hung", how, EXIT_HUNG);
}

/* One signal taken from the self-pipe; a status >= 0 once the child has
 * ended, else -1. */
static int on_sig(watch_t *w, int sig) {
  if (sig == SIGCHLD) {
    int status;
    pid_t r = waitpid(w->child, &status, WNOHANG);
    return r == w->child ? child_ended(w, status) : -1;
  }
  if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP || sig == SIGQUIT)
    w->forwarded = true;
  kill(w->child, sig);
  return -1;
}

static int watch_loop(watch_t *w, int sig_read) {
  w->watching = true;
  w->deadline = now_ms() + w->timeout_ms;
  for (;;) {
    int wait = -1;
    if (w->watching) {
      int64_t left = w->deadline - now_ms();
      wait = left > 0 ? (int)left : 0;
    }
    struct pollfd p[2] = {{.fd = sig_read, .events = POLLIN},
                          {.fd = w->sock, .events = POLLIN}};
    int n = poll(p, w->sock >= 0 ? 2 : 1, wait);
    if (n < 0 && errno != EINTR) {
      fprintf(stderr, "otpc heart: poll: %s\n", strerror(errno));
      return hung(w);
    }
    if (n > 0 && p[0].revents) {
      unsigned char sigs[64];
      ssize_t got = read(sig_read, sigs, sizeof sigs);
      for (ssize_t i = 0; i < got; i++) {
        int rc = on_sig(w, sigs[i]);
        if (rc >= 0) return rc;
      }
    }
    if (n > 0 && w->sock >= 0 && p[1].revents) read_packets(w);
    if (w->watching && now_ms() >= w->deadline) {
      /* The child may have ended just now: that comes first. */
      int status;
      if (waitpid(w->child, &status, WNOHANG) == w->child)
        return child_ended(w, status);
      return hung(w);
    }
  }
}

/* ------------------------------------------------------------------------
 * The command line
 * ------------------------------------------------------------------------ */

/* Seconds as a positive number up to MAX_TIMEOUT_S (fractions allowed);
 * milliseconds, or -1. */
static int64_t parse_timeout(const char *s) {
  if (s == NULL || *s == '\0') return -1;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno != 0 || *end != '\0' || !isfinite(v) || v <= 0 || v > MAX_TIMEOUT_S)
    return -1;
  int64_t ms = (int64_t)llround(v * 1000);
  return ms > 0 ? ms : 1;
}

static int usage_error(const char *what, const char *arg) {
  fprintf(stderr, "otpc heart: %s%s%s\n%s", what, arg ? ": " : "",
          arg ? arg : "", usage);
  return EXIT_USAGE;
}

static int parse_args(watch_t *w, int argc, char **argv) {
  const char *timeout = getenv("HEART_BEAT_TIMEOUT");
  const char *from = "HEART_BEAT_TIMEOUT";
  w->cmd = getenv("HEART_COMMAND");
  /* Erlang's: SIGABRT for a core dump, anything else is SIGKILL; and only
   * TRUE turns killing off. */
  const char *ks = getenv("HEART_KILL_SIGNAL");
  w->kill_signal = ks && strcmp(ks, "SIGABRT") == 0 ? SIGABRT : SIGKILL;
  const char *nk = getenv("HEART_NO_KILL");
  w->no_kill = nk && strcmp(nk, "TRUE") == 0;
  int i = 0;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) {
      i++;
      break;
    }
    if (a[0] != '-') break;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(usage, stdout);
      return 0;
    }
    if ((strcmp(a, "--timeout") == 0 || strcmp(a, "--cmd") == 0) &&
        i + 1 >= argc)
      return usage_error("missing value after", a);
    if (strcmp(a, "--timeout") == 0) {
      timeout = argv[++i];
      from = "--timeout";
    } else if (strcmp(a, "--cmd") == 0) {
      w->cmd = argv[++i];
    } else {
      return usage_error("unknown option", a);
    }
  }
  if (i >= argc) return usage_error("no program to run", NULL);
  w->argv = argv + i;
  w->timeout_ms =
      timeout ? parse_timeout(timeout) : (int64_t)(DEFAULT_TIMEOUT_S * 1000);
  if (w->timeout_ms < 0) {
    fprintf(stderr,
            "otpc heart: bad %s %s: seconds, more than 0 and at "
            "most %.0f\n",
            from, timeout, MAX_TIMEOUT_S);
    return EXIT_USAGE;
  }
  if (w->cmd != NULL && strlen(w->cmd) > OTPC_HEART_MAX_CMD) {
    fprintf(stderr,
            "otpc heart: the restart command is longer than %d "
            "bytes\n",
            OTPC_HEART_MAX_CMD);
    return EXIT_USAGE;
  }
  return -1; /* go on */
}

static int install_signals(int *sig_read) {
  int sp[2];
  if (pipe2(sp, O_CLOEXEC | O_NONBLOCK) != 0) return -1;
  *sig_read = sp[0];
  sig_write = sp[1];
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  /* A closed stderr must not kill the watchdog and orphan the node. */
  signal(SIGPIPE, SIG_IGN);
  if (sigaction(SIGCHLD, &sa, NULL) != 0) return -1;
  for (size_t i = 0; i < sizeof forwarded_signals / sizeof *forwarded_signals;
       i++)
    if (sigaction(forwarded_signals[i], &sa, NULL) != 0) return -1;
  return 0;
}

int otpc__tool_heart(int argc, char **argv) {
  watch_t w = {.sock = -1};
  int rc = parse_args(&w, argc, argv);
  if (rc >= 0) return rc;
  int sig_read;
  if (install_signals(&sig_read) != 0) {
    fprintf(stderr, "otpc heart: signals: %s\n", strerror(errno));
    return EXIT_START;
  }
  int64_t beat = w.timeout_ms / 4;
  if (beat > MAX_BEAT_MS) beat = MAX_BEAT_MS;
  if (beat < 1) beat = 1;
  if (start_child(&w, beat) != 0) return EXIT_START;
  return watch_loop(&w, sig_read);
}
