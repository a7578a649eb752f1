/*
 * test_dist.c: the distribution layer without Erlang: the handshake in
 * both roles over a socket pair, distribution frames (the atom cache and
 * fragments, from the example in erts' External Term Format page), the
 * embedded epmd, and two otpc nodes (the second one a forked child) that
 * ping, send and see each other go down.
 */
#include <fcntl.h>
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

/* A port for this test's epmd, away from the system's and other runs'. */
static uint16_t test_port(int salt) {
  return (uint16_t)(20000 + (getpid() * 7 + salt * 131) % 20000);
}

/* ------------------------------------------------------------------------
 * Handshake
 * ------------------------------------------------------------------------ */

typedef struct side {
  int fd;
  otpc__hs_t hs;
  int rc;
  bool accept;
} side_t;

static int rd(void *ctx, void *buf, size_t n) {
  return otpc__sock_read(*(int *)ctx, buf, n, otpc__deadline(5000));
}
static int wr(void *ctx, const void *buf, size_t n) {
  return otpc__sock_write(*(int *)ctx, buf, n, otpc__deadline(5000));
}

static void *run_side(void *arg) {
  side_t *s = arg;
  otpc__hs_io_t io = {rd, wr, &s->fd, false};
  s->rc = s->accept ? otpc__hs_accept(&s->hs, &io, NULL)
                    : otpc__hs_initiate(&s->hs, &io);
  shutdown(s->fd, SHUT_RDWR);
  return NULL;
}

static void nonblock_pair(int sv[2]) {
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  for (int i = 0; i < 2; i++) fcntl(sv[i], F_SETFL, O_NONBLOCK);
}

static void handshake(const char *cookie_a, const char *cookie_b, side_t *a,
                      side_t *b) {
  int sv[2];
  nonblock_pair(sv);
  memset(a, 0, sizeof *a);
  memset(b, 0, sizeof *b);
  a->fd = sv[0];
  b->fd = sv[1];
  b->accept = true;
  a->hs.self = "a@host";
  a->hs.expect = "b@host";
  a->hs.cookie = cookie_a;
  a->hs.creation = 11;
  a->hs.flags = DIST_FLAGS_OURS;
  b->hs.self = "b@host";
  b->hs.cookie = cookie_b;
  b->hs.creation = 22;
  b->hs.flags = DIST_FLAGS_OURS | OTPC_DFLAG_PUBLISHED;
  pthread_t t;
  pthread_create(&t, NULL, run_side, a);
  run_side(b);
  pthread_join(t, NULL);
  close(sv[0]);
  close(sv[1]);
}

TEST(handshake_both_roles) {
  side_t a, b;
  handshake("secret", "secret", &a, &b);
  CHECK_INT_EQ(a.rc, 0);
  CHECK_INT_EQ(b.rc, 0);
  CHECK_STR_EQ(a.hs.peer, "b@host");
  CHECK_STR_EQ(b.hs.peer, "a@host");
  CHECK_INT_EQ(a.hs.peer_creation, 22);
  CHECK_INT_EQ(b.hs.peer_creation, 11);
  CHECK(a.hs.peer_flags & OTPC_DFLAG_PUBLISHED);
  CHECK(!(b.hs.peer_flags & OTPC_DFLAG_PUBLISHED));
}

TEST(handshake_wrong_cookie_refused_both_sides) {
  side_t a, b;
  handshake("secret", "other", &a, &b);
  CHECK(a.rc < 0);
  CHECK(b.rc < 0);
  CHECK(strstr(b.hs.why, "cookies differ") != NULL);
  CHECK(strstr(a.hs.why, "cookie") != NULL);
}

TEST(handshake_digest_is_erlangs) {
  /* erlang:md5(["secret" | integer_to_list(123456)]) */
  static const uint8_t want[16] = {0xe7, 0x70, 0x3b, 0x45, 0x37, 0x78,
                                   0x9d, 0x70, 0x55, 0xf5, 0x50, 0x48,
                                   0xe8, 0xf9, 0xd2, 0x5c};
  uint8_t got[16];
  otpc__hs_digest(123456, "secret", got);
  CHECK(memcmp(got, want, 16) == 0);
}

/* A peer written by hand: the old 'n' name, then the complement. */
static void put_msg(int fd, const uint8_t *b, size_t n) {
  uint8_t len[2] = {(uint8_t)(n >> 8), (uint8_t)n};
  CHECK_INT_EQ(otpc__sock_write(fd, len, 2, -1), 0);
  CHECK_INT_EQ(otpc__sock_write(fd, b, n, -1), 0);
}
static size_t get_msg(int fd, uint8_t *b) {
  uint8_t len[2];
  CHECK_INT_EQ(otpc__sock_read(fd, len, 2, otpc__deadline(5000)), 0);
  size_t n = (size_t)len[0] << 8 | len[1];
  CHECK_INT_EQ(otpc__sock_read(fd, b, n, otpc__deadline(5000)), 0);
  return n;
}

TEST(handshake_accepts_old_name_and_complement) {
  int sv[2];
  nonblock_pair(sv);
  side_t b;
  memset(&b, 0, sizeof b);
  b.fd = sv[1];
  b.accept = true;
  b.hs.self = "b@host";
  b.hs.cookie = "c";
  b.hs.creation = 5;
  b.hs.flags = DIST_FLAGS_OURS;
  pthread_t t;
  pthread_create(&t, NULL, run_side, &b);
  uint64_t fl = DIST_FLAGS_MANDATORY | OTPC_DFLAG_V4_NC;
  uint8_t m[300];
  m[0] = 'n';
  put_be16(m + 1, 6);
  put_be32(m + 3, (uint32_t)fl);
  memcpy(m + 7, "old@host", 8);
  put_msg(sv[0], m, 15);
  size_t n = get_msg(sv[0], m);
  CHECK(n == 3 && memcmp(m, "sok", 3) == 0);
  n = get_msg(sv[0], m);
  CHECK(m[0] == 'N');
  uint32_t ch_b = get_be32(m + 9);
  uint8_t c[9] = {'c'};
  put_be32(c + 1, (uint32_t)(fl >> 32));
  put_be32(c + 5, 77);
  put_msg(sv[0], c, 9);
  uint8_t r[21] = {'r'};
  put_be32(r + 1, 4242);
  otpc__hs_digest(ch_b, "c", r + 5);
  put_msg(sv[0], r, 21);
  n = get_msg(sv[0], m);
  uint8_t want[16];
  otpc__hs_digest(4242, "c", want);
  CHECK(n == 17 && m[0] == 'a' && memcmp(m + 1, want, 16) == 0);
  pthread_join(t, NULL);
  CHECK_INT_EQ(b.rc, 0);
  CHECK_STR_EQ(b.hs.peer, "old@host");
  CHECK_INT_EQ(b.hs.peer_creation, 77);
  CHECK(b.hs.peer_flags & OTPC_DFLAG_V4_NC);
  close(sv[0]);
  close(sv[1]);
}

TEST(handshake_refuses_missing_mandatory_flags) {
  int sv[2];
  nonblock_pair(sv);
  side_t b;
  memset(&b, 0, sizeof b);
  b.fd = sv[1];
  b.accept = true;
  b.hs.self = "b@host";
  b.hs.cookie = "c";
  b.hs.flags = DIST_FLAGS_OURS;
  pthread_t t;
  pthread_create(&t, NULL, run_side, &b);
  uint8_t m[64] = {'N'};
  put_be64(m + 1, DIST_FLAGS_MANDATORY & ~OTPC_DFLAG_MAP_TAG);
  put_be32(m + 9, 1);
  put_be16(m + 13, 6);
  memcpy(m + 15, "x@host", 6);
  put_msg(sv[0], m, 21);
  size_t n = get_msg(sv[0], m);
  CHECK(n == 12 && memcmp(m, "snot_allowed", 12) == 0);
  pthread_join(t, NULL);
  CHECK(b.rc < 0);
  CHECK(strstr(b.hs.why, "mandatory") != NULL);
  close(sv[0]);
  close(sv[1]);
}

/* ------------------------------------------------------------------------
 * Frames
 * ------------------------------------------------------------------------ */

/* The example of erts' "Distribution Header for fragmented messages":
 * {6, Pid, '', reg} then {call, Pid, {set_get_state, <<0:1024>>}}, with
 * five atom cache refs (two cached before, three new), in two fragments. */
TEST(frame_doc_example_fragments_and_atom_cache) {
  static const uint8_t head[] = {
      131, 69, 0, 0, 2, 168, 0, 0, 5, 83, 0, 0, 0, 0, 0, 0, 0, 2, 5, 4, 137, 9,
      10, 5, 236, 3, 114, 101, 103, 9, 4, 99, 97, 108, 108, 238, 13, 115, 101,
      116, 95, 103, 101, 116, 95, 115, 116, 97, 116, 101,
      /* control */
      104, 4, 97, 6, 103, 82, 0, 0, 0, 0, 85, 0, 0, 0, 0, 2, 82, 1, 82, 2,
      /* message, up to the binary's bytes */
      104, 3, 82, 3, 103, 82, 0, 0, 0, 0, 245, 0, 0, 0, 2, 2, 104, 2, 82, 4,
      109, 0, 0, 0, 128};
  uint8_t f1[sizeof head + 100], f2[18 + 28];
  memcpy(f1, head, sizeof head);
  memset(f1 + sizeof head, 0, 100);
  static const uint8_t cont[18] = {131, 70, 0, 0, 2, 168, 0, 0, 5,
                                   83,  0,  0, 0, 0, 0,   0, 0, 1};
  memcpy(f2, cont, 18);
  memset(f2 + 18, 0, 28);
  otpc__rx_t *rx = malloc(sizeof *rx);
  otpc__rx_init(rx);
  otpc_atom_t me = otpc_atom("me@host"), empty = otpc_atom("");
  rx->cache[4 * 256 + 10] = me; /* cached by earlier messages */
  rx->cache[0 * 256 + 5] = empty;
  otpc__dmsg_t m;
  char why[128];
  CHECK_INT_EQ(otpc__rx_frame(rx, f1, sizeof f1, &m, why, sizeof why), 0);
  int rc = otpc__rx_frame(rx, f2, sizeof f2, &m, why, sizeof why);
  if (rc < 0) fprintf(stderr, "%s\n", why);
  CHECK_INT_EQ(rc, 1);
  CHECK_INT_EQ(m.op, DOP_REG_SEND);
  CHECK(m.to_name == otpc_atom("reg"));
  CHECK(m.from.node == me);
  CHECK_INT_EQ(m.from.id, 85);
  otpc_buf_t *want = otpc_term_fmt(
      "{call, ~p, {set_get_state, ~b}}", &(otpc_pid_t){me, 245, 2, 2},
      (const void *)(uint8_t[128]){0}, (size_t)128);
  CHECK(otpc_term_equal(otpc_buf_term(m.payload), otpc_buf_term(want)));
  otpc_buf_unref(want);
  otpc__dmsg_clear(&m);
  /* A new header reusing slot (1, 236) does not disturb old atoms. */
  CHECK(rx->cache[1 * 256 + 236] == otpc_atom("reg"));
  otpc__rx_free(rx);
  free(rx);
}

static void roundtrip(size_t payload_bytes, bool fragments) {
  uint8_t *data = malloc(payload_bytes);
  for (size_t i = 0; i < payload_bytes; i++) data[i] = (uint8_t)(i * 7);
  otpc_pid_t from = {otpc_atom("a@h"), 1, 2, 3},
             to = {otpc_atom("b@h"), 4, 5, 6};
  otpc_buf_t *ctrl = otpc__ctrl_fmt("{22, ~p, ~p}", &from, &to);
  otpc_buf_t *msg = otpc_term_fmt("{big, ~b}", data, payload_bytes);
  otpc__rx_t *rx = malloc(sizeof *rx);
  otpc__rx_init(rx);
  size_t off = 0;
  int frames = 0, got = 0;
  otpc__dmsg_t m = {0};
  for (int more = 1; more;) {
    otpc__txframe_t f;
    more = otpc__tx_next(ctrl, msg, fragments, 99, &off, &f);
    size_t n = f.head_len - 4 + f.alen + f.blen;
    CHECK_INT_EQ(get_be32(f.head), n);
    uint8_t *frame = malloc(n);
    memcpy(frame, f.head + 4, f.head_len - 4);
    if (f.alen) memcpy(frame + f.head_len - 4, f.a, f.alen);
    if (f.blen) memcpy(frame + f.head_len - 4 + f.alen, f.b, f.blen);
    char why[128];
    int rc = otpc__rx_frame(rx, frame, n, &m, why, sizeof why);
    CHECK(rc >= 0);
    got += rc;
    frames++;
    free(frame);
  }
  CHECK_INT_EQ(got, 1);
  CHECK(frames ==
        (fragments ? (int)((payload_bytes + 40) / DIST_FRAG_SIZE) + 1 : 1));
  CHECK_INT_EQ(m.op, DOP_SEND_SENDER);
  CHECK(otpc_pid_eq(m.from, from) && otpc_pid_eq(m.to, to));
  CHECK(otpc_term_equal(otpc_buf_term(m.payload), otpc_buf_term(msg)));
  otpc__dmsg_clear(&m);
  otpc_buf_unref(ctrl);
  otpc_buf_unref(msg);
  otpc__rx_free(rx);
  free(rx);
  free(data);
}

TEST(frame_roundtrip_whole_and_fragmented) {
  roundtrip(10, false);
  roundtrip(10, true);
  roundtrip(300000, true);
  roundtrip(300000, false);
}

TEST(frame_bad_bytes_are_errors) {
  otpc__rx_t *rx = malloc(sizeof *rx);
  otpc__rx_init(rx);
  otpc__dmsg_t m;
  char why[128];
  static const uint8_t bad[][12] = {
      {130, 68, 0},                      /* version */
      {131, 71, 0},                      /* header tag */
      {131, 68, 1, 8, 0, 1, 'x'},        /* atom, then no control */
      {131, 68, 0, 104, 1, 97, 2},       /* SEND without its message */
      {131, 68, 0, 104, 1, 100},         /* truncated */
      {131, 68, 1, 0, 7, 104, 1, 82, 0}, /* empty cache slot */
      {131, 70, 0, 0, 0, 0, 0, 0, 0, 1}, /* unknown sequence */
  };
  static const size_t len[] = {3, 3, 7, 7, 6, 9, 10};
  for (size_t i = 0; i < sizeof len / sizeof len[0]; i++)
    CHECK(otpc__rx_frame(rx, bad[i], len[i], &m, why, sizeof why) < 0);
  CHECK_INT_EQ(otpc__rx_frame(rx, NULL, 0, &m, why, sizeof why), 0); /* tick */
  otpc__rx_free(rx);
  free(rx);
}

TEST(term_uncache_rewrites_refs_inside_funs_and_pids) {
  /* fun with Module = cache ref 0 and a pid whose node is ref 1 */
  otpc_atom_t refs[2] = {otpc_atom("mod"), otpc_atom("n@h")};
  uint8_t t[] = {112,
                 0,
                 0,
                 0,
                 0,
                 1, /* arity */
                 0,
                 1,
                 2,
                 3,
                 4,
                 5,
                 6,
                 7,
                 8,
                 9,
                 10,
                 11,
                 12,
                 13,
                 14,
                 15,
                 0,
                 0,
                 0,
                 1,
                 /* index */ 0,
                 0,
                 0,
                 1, /* nfree */
                 82,
                 0,
                 97,
                 1,
                 97,
                 2,
                 88,
                 82,
                 1,
                 0,
                 0,
                 0,
                 1,
                 0,
                 0,
                 0,
                 0,
                 0,
                 0,
                 0,
                 1,
                 /* pid */ 82,
                 0 /* free var: 'mod' */};
  put_be32(t + 1, sizeof t - 1);
  size_t nrefs;
  CHECK_INT_EQ(otpc__term_validate_cached(t, sizeof t, refs, 2, &nrefs, NULL),
               sizeof t);
  CHECK_INT_EQ(nrefs, 3);
  CHECK(otpc_term_validate(t, sizeof t, NULL, NULL) < 0);
  int err;
  otpc_buf_t *b = otpc__term_uncache(t, sizeof t, refs, &err);
  CHECK(b != NULL);
  otpc_term_t view;
  otpc_buf_t *owned;
  CHECK_INT_EQ(otpc_term_decode(otpc_buf_data(b), otpc_buf_size(b), NULL, &view,
                                &owned, NULL),
               0);
  char *text;
  CHECK_INT_EQ(otpc_term_print(view, &text, NULL), 0);
  CHECK(strstr(text, "mod") != NULL);
  otpc_free(text);
  otpc_buf_unref(b);
}

/* ------------------------------------------------------------------------
 * Nodes
 * ------------------------------------------------------------------------ */

static int start_node(const char *name, const char *cookie, uint16_t epmd) {
  otpc_node_opts_t n = {.name = name, .cookie = cookie, .schedulers = 2};
  if (otpc_node_start(&n) != 0) return -1;
  otpc_dist_opts_t d = {
      .epmd_port = epmd, .listen_addr = "127.0.0.1", .net_ticktime = 8};
  return otpc_dist_start(&d);
}

/* A second node in a child process: echo registered, t:args exported to
 * rpc, lives until killed. */
static pid_t peer(const char *name, const char *cookie, uint16_t epmd) {
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (start_node(name, cookie, epmd) != 0) _exit(3);
    otpc_rpc_export("t", "args", dt_rpc_args, NULL);
    otpc_spawn(dt_echo, NULL, NULL, NULL);
    sleep(60);
    _exit(0);
  }
  return pid;
}

typedef struct two {
  const char *peer;
  int ping, echoed, nodes, down;
  int linked, exit_noconn, down_noconn, nodedown, rpc;
  pid_t child;
} two_t;

static void two_nodes_main(void *arg) {
  two_t *t = arg;
  otpc_atom_t node = otpc_atom(t->peer);
  for (int i = 0; i < 50 && t->ping != 1; i++) { /* the peer starts */
    t->ping = otpc_net_ping(node, 2000);
    if (t->ping != 1) otpc_sleep(100);
  }
  if (t->ping != 1) return;
  otpc_buf_t *msg =
      otpc_term_fmt("{~p, hello, [1, 2.5, <<\"bin\">>]}",
                    &(otpc_pid_t){otpc_self().node, otpc_self().id,
                                  otpc_self().serial, otpc_self().creation});
  otpc_send_remote(otpc_atom("echo"), node, msg);
  otpc_buf_t *back;
  if (otpc_receive(NULL, 5000, &back) == 0) {
    t->echoed = otpc_term_equal(otpc_buf_term(back), otpc_buf_term(msg));
    otpc_buf_unref(back);
  }
  otpc_buf_unref(msg);
  otpc_atom_t nodes[4];
  t->nodes = (int)otpc_nodes(nodes, 4, false);
  otpc_buf_t *args = otpc_term_fmt("[1, two]"), *res = NULL;
  otpc_buf_t *want = otpc_term_fmt("{got, [1, two]}");
  t->rpc =
      otpc_rpc_call(node, "t", "args", otpc_buf_term(args), 5000, &res) == 0 &&
      otpc_term_equal(otpc_buf_term(res), otpc_buf_term(want));
  otpc_buf_unref(args);
  otpc_buf_unref(want);
  otpc_buf_unref(res);
  otpc_monitor_node(node, true);
  /* A link and a monitor to the peer's echo, then the peer dies. */
  otpc_pid_t self = otpc_self(), ep;
  otpc_buf_t *whoami = otpc_term_fmt("{~p, whoami}", &self);
  otpc_send_remote(otpc_atom("echo"), node, whoami);
  otpc_buf_unref(whoami);
  otpc_pattern_t *iam;
  otpc_pattern_compile("{iam, ~p}", &iam, NULL);
  otpc_buf_t *ans;
  if (otpc_receive(iam, 5000, &ans, &ep) != 0) return;
  otpc_buf_unref(ans);
  otpc_pattern_free(iam);
  otpc_trap_exit(true);
  t->linked = otpc_link(ep) == 0;
  otpc_ref_t mref;
  otpc_monitor(ep, &mref);
  otpc_sleep(200); /* the signals reach the peer */
  kill(t->child, SIGKILL);
  otpc_pattern_t *pe, *pd, *pn;
  otpc_pattern_compile("{'EXIT', _, noconnection}", &pe, NULL);
  otpc_pattern_compile("{'DOWN', _, process, _, noconnection}", &pd, NULL);
  otpc_pattern_compile("{nodedown, _}", &pn, NULL);
  otpc_buf_t *m;
  if (otpc_receive(pe, 10000, &m) == 0) {
    t->exit_noconn = 1;
    otpc_buf_unref(m);
  }
  if (otpc_receive(pd, 10000, &m) == 0) {
    t->down_noconn = 1;
    otpc_buf_unref(m);
  }
  if (otpc_receive(pn, 10000, &m) == 0) {
    t->nodedown = 1;
    otpc_buf_unref(m);
  }
  otpc_pattern_free(pe);
  otpc_pattern_free(pd);
  otpc_pattern_free(pn);
}

TEST(two_nodes_ping_send_and_nodedown) {
  uint16_t epmd = test_port(1);
  pid_t child = peer("b@localhost", "k", epmd);
  usleep(300000);
  CHECK_INT_EQ(start_node("a@localhost", "k", epmd), 0);
  two_t t = {"b@localhost", 0, 0, 0, 0, 0, 0, 0, 0, 0, child};
  otpc_pid_t p;
  otpc_spawn(two_nodes_main, &t, NULL, &p);
  for (int i = 0; i < 600 && otpc_is_alive(p); i++) usleep(50000);
  CHECK_INT_EQ(t.ping, 1);
  CHECK_INT_EQ(t.echoed, 1);
  CHECK_INT_EQ(t.nodes, 1);
  CHECK_INT_EQ(t.rpc, 1);
  CHECK_INT_EQ(t.linked, 1);
  CHECK_INT_EQ(t.exit_noconn, 1);
  CHECK_INT_EQ(t.down_noconn, 1);
  CHECK_INT_EQ(t.nodedown, 1);
  dt_stop_peer(child);
  for (int i = 0; i < 100 && otpc_nodes(NULL, 0, true) > 0; i++) usleep(50000);
  CHECK_INT_EQ(otpc_nodes(NULL, 0, true), 0);
  otpc_dist_stop();
  otpc_node_stop();
}

static void ping_once(void *arg) {
  two_t *t = arg;
  otpc_sleep(500); /* the peer starts */
  t->ping = otpc_net_ping(otpc_atom(t->peer), 3000);
  /* A link and a monitor to a node we cannot get into: noconnection. */
  otpc_trap_exit(true);
  otpc_pid_t far = {otpc_atom(t->peer), 1, 0, 1};
  otpc_ref_t ref;
  otpc_link(far);
  otpc_monitor(far, &ref);
  otpc_pattern_t *pe, *pd;
  otpc_pattern_compile("{'EXIT', _, noconnection}", &pe, NULL);
  otpc_pattern_compile("{'DOWN', _, process, _, noconnection}", &pd, NULL);
  otpc_buf_t *m;
  if (otpc_receive(pe, 10000, &m) == 0) {
    t->exit_noconn = 1;
    otpc_buf_unref(m);
  }
  if (otpc_receive(pd, 10000, &m) == 0) {
    t->down_noconn = 1;
    otpc_buf_unref(m);
  }
  otpc_pattern_free(pe);
  otpc_pattern_free(pd);
}

TEST(two_nodes_wrong_cookie_pang) {
  uint16_t epmd = test_port(2);
  pid_t child = peer("c@localhost", "right", epmd);
  usleep(300000);
  CHECK_INT_EQ(start_node("d@localhost", "wrong", epmd), 0);
  two_t t = {"c@localhost", -1, 0, 0, 0, 0, 0, 0, 0, 0, child};
  otpc_pid_t p;
  otpc_spawn(ping_once, &t, NULL, &p);
  for (int i = 0; i < 400 && otpc_is_alive(p); i++) usleep(50000);
  CHECK_INT_EQ(t.ping, 0);
  CHECK_INT_EQ(t.exit_noconn, 1);
  CHECK_INT_EQ(t.down_noconn, 1);
  dt_stop_peer(child);
  otpc_dist_stop();
  otpc_node_stop();
}

TEST(embedded_epmd_names_and_port) {
  uint16_t epmd = test_port(3);
  CHECK_INT_EQ(start_node("solo@localhost", "k", epmd), 0);
  char *text = NULL;
  CHECK_INT_EQ(otpc__epmd_names("localhost", epmd, otpc__deadline(3000), &text),
               0);
  CHECK(strstr(text, "name solo at port") != NULL);
  otpc_free(text);
  uint16_t port = 0;
  CHECK_INT_EQ(otpc__epmd_port_please("localhost", epmd, "solo",
                                      otpc__deadline(3000), &port),
               0);
  CHECK_INT_EQ(port, otpc_dist_port());
  CHECK_INT_EQ(otpc__epmd_port_please("localhost", epmd, "nobody",
                                      otpc__deadline(3000), &port),
               OTPC_ENONAME);
  otpc_dist_stop();
  otpc_node_stop();
}

/* A raw peer that completes the handshake, ticks for a while (the
 * connection stays), then falls silent (it is declared dead after
 * net_ticktime). Our node's ticks must come meanwhile. */
TEST(ticks_keep_a_connection_and_silence_ends_it) {
  uint16_t epmd = test_port(4);
  otpc_node_opts_t n = {.name = "t@localhost", .cookie = "k", .schedulers = 2};
  CHECK_INT_EQ(otpc_node_start(&n), 0);
  otpc_dist_opts_t d = {
      .epmd_port = epmd, .listen_addr = "127.0.0.1", .net_ticktime = 4};
  CHECK_INT_EQ(otpc_dist_start(&d), 0);
  int fd;
  CHECK_INT_EQ(otpc__sock_connect("127.0.0.1", otpc_dist_port(),
                                  otpc__deadline(3000), &fd),
               0);
  otpc__hs_t hs;
  memset(&hs, 0, sizeof hs);
  hs.self = "raw@localhost";
  hs.flags = DIST_FLAGS_OURS | OTPC_DFLAG_PUBLISHED;
  hs.creation = 3;
  hs.cookie = "k";
  hs.expect = "t@localhost";
  otpc__hs_io_t io = {rd, wr, &fd, false};
  CHECK_INT_EQ(otpc__hs_initiate(&hs, &io), 0);
  int ticks = 0;
  bool closed = false;
  int64_t start = otpc_now_ms();
  while (!closed && otpc_now_ms() - start < 20000) {
    bool talking = otpc_now_ms() - start < 6000;
    if (talking) {
      static const uint8_t tick[4];
      CHECK_INT_EQ(otpc__sock_write(fd, tick, 4, otpc__deadline(1000)), 0);
    }
    uint8_t b[4];
    int rc = otpc__sock_read(fd, b, 4, otpc__deadline(500));
    if (rc == 0) {
      CHECK(get_be32(b) == 0); /* only ticks come */
      ticks++;
    } else if (rc != OTPC_ETIMEDOUT) {
      closed = true;
      CHECK(otpc_now_ms() - start > 6000); /* not while we ticked */
    }
    if (talking) CHECK_INT_EQ(otpc_nodes(NULL, 0, true), 1);
  }
  CHECK(ticks >= 3);
  CHECK(closed);
  close(fd);
  otpc_dist_stop();
  otpc_node_stop();
}

/* Both nodes connect to each other at the same moment: one handshake
 * wins (the greater name keeps its own), and both pings get pong. */
typedef struct simul {
  int go_fd; /* a byte here starts the ping */
  const char *peer;
  int result;
} simul_t;

static void simul_ping(void *arg) {
  simul_t *s = arg;
  char c;
  while (read(s->go_fd, &c, 1) != 1) otpc_sleep(1);
  s->result = otpc_net_ping(otpc_atom(s->peer), 8000);
}

TEST(simultaneous_connect_both_pong) {
  uint16_t epmd = test_port(5);
  int go[2], back[2];
  CHECK(pipe(go) == 0 && pipe(back) == 0);
  fcntl(go[0], F_SETFL, O_NONBLOCK);
  pid_t child = fork();
  if (child == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (start_node("sb@localhost", "k", epmd) != 0) _exit(3);
    simul_t s = {go[0], "sa@localhost", -1};
    otpc_pid_t p;
    otpc_spawn(simul_ping, &s, NULL, &p);
    while (otpc_is_alive(p)) usleep(10000);
    char r = (char)s.result;
    if (write(back[1], &r, 1) != 1) _exit(4);
    sleep(5);
    _exit(0);
  }
  usleep(300000);
  CHECK_INT_EQ(start_node("sa@localhost", "k", epmd), 0);
  int mygo[2];
  CHECK(pipe(mygo) == 0);
  fcntl(mygo[0], F_SETFL, O_NONBLOCK);
  simul_t s = {mygo[0], "sb@localhost", -1};
  otpc_pid_t p;
  otpc_spawn(simul_ping, &s, NULL, &p);
  usleep(500000); /* both nodes are up and registered */
  CHECK(write(go[1], "g", 1) == 1 && write(mygo[1], "g", 1) == 1);
  while (otpc_is_alive(p)) usleep(10000);
  char theirs = -1;
  CHECK(read(back[0], &theirs, 1) == 1);
  CHECK_INT_EQ(s.result, 1);
  CHECK_INT_EQ(theirs, 1);
  CHECK_INT_EQ(otpc_nodes(NULL, 0, true), 1);
  dt_stop_peer(child);
  otpc_dist_stop();
  otpc_node_stop();
}

TEST(epmd_requests_are_checked) {
  otpc__epmd_req_t r;
  uint8_t alive[] = {120, 0x11, 0x12, 77, 0, 0, 6, 0, 5, 0, 2, 'a', 'b', 0, 0};
  CHECK_INT_EQ(otpc__epmd_parse(alive, sizeof alive, &r), 0);
  CHECK_STR_EQ(r.name, "ab");
  CHECK_INT_EQ(r.port, 0x1112);
  CHECK_INT_EQ(r.high, 6);
  CHECK(otpc__epmd_parse(alive, sizeof alive - 1, &r) < 0); /* no Elen */
  alive[14] = 1;                                            /* Elen 1, none */
  CHECK(otpc__epmd_parse(alive, sizeof alive, &r) < 0);
  alive[14] = 0;
  alive[12] = 0; /* a NUL in the name */
  CHECK(otpc__epmd_parse(alive, sizeof alive, &r) < 0);
  uint8_t pp[300] = {122};
  CHECK(otpc__epmd_parse(pp, 1, &r) < 0);
  memset(pp + 1, 'x', 256);
  CHECK(otpc__epmd_parse(pp, 257, &r) < 0); /* name too long */
  CHECK_INT_EQ(otpc__epmd_parse(pp, 256, &r), 0);
  uint8_t names[] = {110};
  CHECK_INT_EQ(otpc__epmd_parse(names, 1, &r), 0);
  CHECK(otpc__epmd_parse(names, 0, &r) < 0);
}
