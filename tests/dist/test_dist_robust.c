/*
 * test_dist_robust.c: bad peers against a running node. A flood of raw
 * sockets (closing at once, sending garbage, claiming absurd lengths,
 * stalling halfway through the handshake) while a good peer (an otpc node
 * in a forked child) keeps talking to us; then peers that complete the
 * handshake and send an absurd frame length, a truncated frame, garbage
 * and fragments of nothing. Every bad connection is closed by the node;
 * the good one goes on throughout.
 */
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dist/dist_int.h"
#include "otpc.h"
#include "peer_util.h"
#include "test.h"

#define FLOOD 160 /* raw sockets at once */

static const char *cookie = "robust";

static uint16_t rob_port(void) {
  return (uint16_t)(20000 + (getpid() * 13 + 977) % 20000);
}

static int start_node(const char *name, uint16_t epmd) {
  otpc_node_opts_t n = {.name = name, .cookie = cookie, .schedulers = 2};
  if (otpc_node_start(&n) != 0) return -1;
  otpc_dist_opts_t d = {.epmd_port = epmd, .listen_addr = "127.0.0.1"};
  return otpc_dist_start(&d);
}

static pid_t good_peer(const char *name, uint16_t epmd) {
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (start_node(name, epmd) != 0) _exit(3);
    otpc_spawn(dt_echo, NULL, NULL, NULL);
    sleep(120);
    _exit(0);
  }
  return pid;
}

/* A raw TCP connection to our node's distribution port (blocking). */
static int raw_conn(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons(otpc_dist_port());
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Whether the node closes fd within ms (reads what it says meanwhile). */
static bool closed_within(int fd, int ms) {
  int64_t end = otpc_now_ms() + ms;
  for (;;) {
    int64_t left = end - otpc_now_ms();
    if (left <= 0) return false;
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, (int)left) <= 0) continue;
    uint8_t b[512];
    ssize_t n = recv(fd, b, sizeof b, 0);
    if (n <= 0) return true;
  }
}

/* ------------------------------------------------------------------------
 * The good peer, talked to from a process throughout
 * ------------------------------------------------------------------------ */

typedef struct talk {
  otpc_atom_t peer;
  _Atomic int stop;
  int rounds, ok;
} talk_t;

static bool echo_once(otpc_atom_t node, int i) {
  otpc_pid_t self = otpc_self();
  otpc_buf_t *m = otpc_term_fmt("{~p, ~i}", &self, i), *back;
  otpc_send_remote(otpc_atom("echo"), node, m);
  bool ok = otpc_receive(NULL, 5000, &back) == 0;
  if (ok) {
    ok = otpc_term_equal(otpc_buf_term(back), otpc_buf_term(m));
    otpc_buf_unref(back);
  }
  otpc_buf_unref(m);
  return ok;
}

static void talker(void *arg) {
  talk_t *t = arg;
  for (int i = 0; !atomic_load(&t->stop); i++) {
    t->rounds++;
    if (otpc_net_ping(t->peer, 5000) == 1 && echo_once(t->peer, i)) t->ok++;
    otpc_sleep(20);
  }
}

typedef struct pinger {
  otpc_atom_t node;
  int pong;
} pinger_t;

static void ping_proc(void *arg) {
  pinger_t *p = arg;
  for (int i = 0; i < 50 && p->pong != 1; i++) {
    p->pong = otpc_net_ping(p->node, 2000);
    if (p->pong != 1) otpc_sleep(100);
  }
}

/* Pings node from a process (the test's thread is not one) until pong. */
static bool peer_up(otpc_atom_t node) {
  pinger_t p = {node, 0};
  otpc_pid_t pid;
  if (otpc_spawn(ping_proc, &p, NULL, &pid) != 0) return false;
  while (otpc_is_alive(pid)) usleep(10000);
  return p.pong == 1;
}

/* ------------------------------------------------------------------------
 * Before the handshake: a flood
 * ------------------------------------------------------------------------ */

/* What raw socket i sends: nothing, garbage, an absurd name length, half
 * a name message (and then it stalls), or a name and nothing more. */
static void misbehave(int fd, int i) {
  uint8_t m[64] = {0};
  switch (i % 5) {
    case 0: break; /* closed at once by the caller */
    case 1:
      for (int k = 0; k < 64; k++) m[k] = (uint8_t)(k * 37 + i);
      send(fd, m, sizeof m, MSG_NOSIGNAL);
      break;
    case 2:
      m[0] = 0xff;
      m[1] = 0xff;
      m[2] = 'N';
      send(fd, m, 3, MSG_NOSIGNAL);
      break;
    case 3:
      m[1] = 19;
      m[2] = 'N';
      send(fd, m, 9, MSG_NOSIGNAL);
      break;
    default:
      m[1] = 21;
      m[2] = 'N';
      put_be64(m + 3, DIST_FLAGS_OURS);
      put_be32(m + 11, 9);
      put_be16(m + 15, 6);
      memcpy(m + 17, "x@host", 6);
      send(fd, m, 23, MSG_NOSIGNAL);
      break;
  }
}

TEST(flood_of_bad_connections_leaves_the_node_and_good_peer_alone) {
  uint16_t epmd = rob_port();
  pid_t child = good_peer("good_b@localhost", epmd);
  usleep(300000);
  CHECK_INT_EQ(start_node("rob_a@localhost", epmd), 0);
  otpc_atom_t b = otpc_atom("good_b@localhost");
  CHECK(peer_up(b));
  talk_t t = {b, 0, 0, 0};
  otpc_pid_t tp;
  otpc_spawn(talker, &t, NULL, &tp);
  int fds[FLOOD], opened = 0;
  for (int i = 0; i < FLOOD; i++) {
    fds[i] = raw_conn();
    if (fds[i] < 0) continue;
    opened++;
    misbehave(fds[i], i);
    if (i % 5 == 0) {
      close(fds[i]);
      fds[i] = -1;
    }
  }
  CHECK_INT_EQ(opened, FLOOD);
  /* Every one left open is closed by the node: garbage at once, a stalled
   * handshake at net_setuptime. */
  int closed = 0, open_ones = 0;
  for (int i = 0; i < FLOOD; i++) {
    if (fds[i] < 0) continue;
    open_ones++;
    if (closed_within(fds[i], DIST_SETUP_MS + 8000)) closed++;
    close(fds[i]);
  }
  CHECK_INT_EQ(closed, open_ones);
  atomic_store(&t.stop, 1);
  for (int i = 0; i < 200 && otpc_is_alive(tp); i++) usleep(50000);
  CHECK(t.rounds > 0);
  CHECK_INT_EQ(t.ok, t.rounds); /* the good peer never missed a beat */
  /* and the node still takes new connections */
  otpc_net_disconnect(b);
  CHECK(peer_up(b));
  kill(child, SIGKILL);
  waitpid(child, NULL, 0);
  otpc_dist_stop();
  otpc_node_stop();
}

/* ------------------------------------------------------------------------
 * After the handshake: bad frames
 * ------------------------------------------------------------------------ */

static int sio_read(void *ctx, void *buf, size_t n) {
  return otpc__sock_read(*(int *)ctx, buf, n, otpc__deadline(5000));
}
static int sio_write(void *ctx, const void *buf, size_t n) {
  return otpc__sock_write(*(int *)ctx, buf, n, otpc__deadline(5000));
}

/* A raw connection through the handshake as node `name`: the fd, or -1. */
static int handshaken(const char *name) {
  int fd = raw_conn();
  if (fd < 0) return -1;
  otpc__hs_t hs;
  memset(&hs, 0, sizeof hs);
  hs.self = name;
  hs.flags = DIST_FLAGS_OURS;
  hs.creation = 7;
  hs.cookie = cookie;
  hs.expect = "rob_c@localhost";
  otpc__hs_io_t io = {sio_read, sio_write, &fd, false};
  if (otpc__hs_initiate(&hs, &io) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

TEST(bad_frames_after_the_handshake_close_that_connection_only) {
  uint16_t epmd = rob_port();
  pid_t child = good_peer("good_d@localhost", epmd);
  usleep(300000);
  CHECK_INT_EQ(start_node("rob_c@localhost", epmd), 0);
  otpc_atom_t d = otpc_atom("good_d@localhost");
  CHECK(peer_up(d));
  talk_t t = {d, 0, 0, 0};
  otpc_pid_t tp;
  otpc_spawn(talker, &t, NULL, &tp);
  static const uint8_t absurd[] = {0xff, 0xff, 0xff, 0xf0, 131, 68, 0};
  static const uint8_t huge[] = {0x7f, 0xff, 0xff, 0xff, 131, 68, 0, 104};
  static const uint8_t truncated[] = {0, 0, 0, 100, 131, 68, 0, 104, 2};
  static const uint8_t garbage[] = {0, 0, 0, 5, 131, 68, 0, 104, 250};
  static const uint8_t no_such_seq[] = {0, 0, 0, 18, 131, 70, 0, 0, 0, 0, 0,
                                        0, 0, 9, 0,  0,   0,  0, 0, 0, 0, 1};
  static const uint8_t bad_version[] = {0, 0, 0, 3, 7, 7, 7};
  struct {
    const uint8_t *b;
    size_t n;
    bool half_close; /* then the peer stops sending */
  } cases[] = {
      {absurd, sizeof absurd, false},
      {huge, sizeof huge, true},
      {truncated, sizeof truncated, true},
      {garbage, sizeof garbage, false},
      {no_such_seq, sizeof no_such_seq, false},
      {bad_version, sizeof bad_version, false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char name[64];
    snprintf(name, sizeof name, "raw%zu_%d@localhost", i, (int)getpid());
    int fd = handshaken(name);
    CHECK(fd >= 0);
    CHECK(send(fd, cases[i].b, cases[i].n, MSG_NOSIGNAL) ==
          (ssize_t)cases[i].n);
    if (cases[i].half_close) shutdown(fd, SHUT_WR);
    CHECK(closed_within(fd, 10000));
    close(fd);
    /* gone from the node's connections */
    otpc_atom_t a;
    bool gone = false;
    for (int k = 0; k < 100 && !gone; k++) {
      gone = otpc_atom_lookup(name, strlen(name), &a) == 0 &&
             otpc__conn_state(a, false) < 0;
      if (!gone) usleep(20000);
    }
    CHECK(gone);
  }
  atomic_store(&t.stop, 1);
  for (int i = 0; i < 200 && otpc_is_alive(tp); i++) usleep(50000);
  CHECK(t.rounds > 0);
  CHECK_INT_EQ(t.ok, t.rounds);
  kill(child, SIGKILL);
  waitpid(child, NULL, 0);
  otpc_dist_stop();
  otpc_node_stop();
}
