/*
 * test_dist_load.c: the distribution under load, between two otpc nodes
 * (the second one a forked child): 100 MB messages in both directions with
 * small messages from other processes passing them (fragments), and 100k
 * monitors over one connection that all fire once, with noconnection,
 * when the peer dies.
 */
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dist/dist_int.h"
#include "otpc.h"
#include "test.h"

#define BIG ((size_t)100 << 20)
#define SMALLS 30

static uint16_t load_port(int salt) {
  return (uint16_t)(20000 + (getpid() * 11 + salt * 173) % 20000);
}

static int start_node(const char *name, uint16_t epmd) {
  otpc_node_opts_t n = {.name = name, .cookie = "load", .schedulers = 2};
  if (otpc_node_start(&n) != 0) return -1;
  otpc_dist_opts_t d = {.epmd_port = epmd, .listen_addr = "127.0.0.1"};
  return otpc_dist_start(&d);
}

/* A checksum of a big binary, the same on both nodes. */
static uint64_t sum(const uint8_t *p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i += 4099) h = (h ^ p[i]) * 1099511628211ull;
  return h ^ n ^ p[n - 1];
}

static otpc_buf_t *big_msg(const char *tag, otpc_pid_t from, uint64_t *sumv) {
  uint8_t *data = malloc(BIG);
  if (data == NULL) return NULL;
  for (size_t i = 0; i < BIG; i++) data[i] = (uint8_t)(i * 31 + (i >> 13));
  *sumv = sum(data, BIG);
  otpc_builder_t b;
  otpc_builder_init(&b);
  otpc_build_tuple(&b, 3);
  otpc_build_atom(&b, tag);
  otpc_build_pid(&b, &from);
  otpc_build_binary(&b, data, BIG);
  free(data);
  return otpc_builder_finish(&b, NULL);
}

typedef struct smalls {
  otpc_pid_t to, from;
  otpc_atom_t node; /* not NONE: to {sink, node} instead of to */
} smalls_t;

/* SMALLS messages {small, From, I} from a process of its own. */
static void send_smalls(void *arg) {
  smalls_t *s = arg;
  for (int i = 1; i <= SMALLS; i++) {
    otpc_buf_t *m = otpc_term_fmt("{small, ~p, ~i}", &s->from, i);
    if (s->node != OTPC_ATOM_NONE)
      otpc_send_remote(otpc_atom("sink"), s->node, m);
    else
      otpc_send(s->to, m);
    otpc_buf_unref(m);
  }
  free(s);
}

static void spawn_smalls(otpc_pid_t to, otpc_atom_t node, otpc_pid_t from) {
  smalls_t *s = malloc(sizeof *s);
  s->to = to;
  s->node = node;
  s->from = from;
  otpc_spawn(send_smalls, s, NULL, NULL);
}

/* The peer's `sink`: reports each message as it arrives, in order, to the
 * pid in it: {got_small, I}, {got_big, Size, Sum}, {hello_back, Sink} for
 * {hello, From}. {send_big, From}: a 100 MB message to From, then small
 * ones from another process. {seq, From, I, Pad}: I must be 1, 2, ...;
 * {seq_done, From} reports {seq_report, Last, OutOfOrder}. */
static void sink(void *arg) {
  otpc_register(otpc_atom("sink"), otpc_self());
  otpc_pid_t self = otpc_self();
  int next_seq = 1, bad_seq = 0; /* {seq, From, I} in order from 1 */
  for (;;) {
    otpc_buf_t *m;
    if (otpc_receive(NULL, OTPC_INFINITY, &m) != 0) return;
    otpc_term_t t = otpc_buf_term(m), e;
    size_t arity;
    otpc_pid_t from;
    if (otpc_term_get_tuple(t, &arity, &e) == 0 && arity >= 2 &&
        otpc_term_get_pid(otpc_term_next(e), &from) == 0) {
      otpc_term_t last = otpc_term_next(otpc_term_next(e));
      const uint8_t *bin;
      unsigned bits;
      size_t n;
      int i;
      if (otpc_term_atom_eq(e, "hello", 5)) {
        otpc_sendf(from, "{hello_back, ~p}", &self);
      } else if (otpc_term_atom_eq(e, "small", 5) &&
                 otpc_term_get_int(last, &i) == 0) {
        otpc_sendf(from, "{got_small, ~i}", i);
      } else if (otpc_term_atom_eq(e, "big", 3) &&
                 otpc_term_get_binary(last, &bin, &n, &bits) == 0) {
        otpc_sendf(from, "{got_big, ~u, ~u}", (uint64_t)n, sum(bin, n));
      } else if (otpc_term_atom_eq(e, "seq", 3) &&
                 otpc_term_get_int(last, &i) == 0) {
        bad_seq += i != next_seq;
        next_seq = i + 1;
      } else if (otpc_term_atom_eq(e, "seq_done", 8)) {
        otpc_sendf(from, "{seq_report, ~i, ~i}", next_seq - 1, bad_seq);
      } else if (otpc_term_atom_eq(e, "send_big", 8)) {
        uint64_t s;
        otpc_buf_t *b = big_msg("big", self, &s);
        otpc_send(from, b);
        otpc_buf_unref(b);
        spawn_smalls(from, OTPC_ATOM_NONE, self);
      }
    }
    otpc_buf_unref(m);
  }
}

static pid_t load_peer(const char *name, uint16_t epmd) {
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (start_node(name, epmd) != 0) _exit(3);
    otpc_spawn(sink, NULL, NULL, NULL);
    sleep(120);
    _exit(0);
  }
  return pid;
}

static bool wait_pong(otpc_atom_t node) {
  for (int i = 0; i < 50; i++) {
    if (otpc_net_ping(node, 2000) == 1) return true;
    otpc_sleep(100);
  }
  return false;
}

/* ------------------------------------------------------------------------
 * 100 MB both ways
 * ------------------------------------------------------------------------ */

typedef struct bigrun {
  const char *peer;
  int pong, hello;
  int to_whole, to_smalls, to_before;       /* we send the big one */
  int from_whole, from_smalls, from_before; /* the peer does */
} bigrun_t;

static bool is_tagged(otpc_term_t t, const char *tag) {
  otpc_term_t e;
  size_t arity;
  return otpc_term_get_tuple(t, &arity, &e) == 0 && arity >= 1 &&
         otpc_term_atom_eq(e, tag, strlen(tag));
}

/* Reads the answers to one big message and its small followers, in the
 * order they come: how many small ones came before the big one. */
static void collect(const char *small_tag, const char *big_tag, uint64_t want,
                    int *whole, int *smalls, int *before) {
  for (int got = 0; got < SMALLS + 1;) {
    otpc_buf_t *m;
    if (otpc_receive(NULL, 60000, &m) != 0) return;
    otpc_term_t t = otpc_buf_term(m);
    if (is_tagged(t, small_tag)) {
      (*smalls)++;
      got++;
    } else if (is_tagged(t, big_tag)) {
      *before = *smalls;
      otpc_term_t e = otpc_term_tuple_elem(t, 2);
      const uint8_t *bin;
      unsigned bits;
      size_t n;
      uint64_t size = 0, s = 0;
      if (otpc_term_get_binary(e, &bin, &n, &bits) ==
          0) { /* the big one itself */
        size = n;
        s = sum(bin, n);
      } else { /* the sink's report */
        otpc_term_get_uint64(otpc_term_tuple_elem(t, 1), &size);
        otpc_term_get_uint64(e, &s);
      }
      *whole = size == BIG && s == want;
      got++;
    }
    otpc_buf_unref(m);
  }
}

/* The peer's sink, once it is registered. */
static bool hello(otpc_atom_t node, otpc_pid_t *sinkp) {
  otpc_pid_t self = otpc_self();
  otpc_pattern_t *hb;
  otpc_pattern_compile("{hello_back, ~p}", &hb, NULL);
  bool ok = false;
  for (int i = 0; i < 100 && !ok; i++) {
    otpc_buf_t *h = otpc_term_fmt("{hello, ~p}", &self), *m;
    otpc_send_remote(otpc_atom("sink"), node, h);
    otpc_buf_unref(h);
    if (otpc_receive(hb, 100, &m, sinkp) == 0) {
      ok = true;
      otpc_buf_unref(m);
    }
  }
  otpc_pattern_free(hb);
  return ok;
}

static void big_main(void *arg) {
  bigrun_t *r = arg;
  otpc_atom_t node = otpc_atom(r->peer), sinkn = otpc_atom("sink");
  r->pong = wait_pong(node);
  if (!r->pong) return;
  otpc_pid_t self = otpc_self(), sinkp;
  r->hello = hello(node, &sinkp);
  if (!r->hello) return;
  /* To the peer: the big one, then small ones from another process,
   * queued behind it; they may pass it between its fragments. */
  uint64_t want;
  otpc_buf_t *big = big_msg("big", self, &want);
  otpc_send_remote(sinkn, node, big);
  otpc_buf_unref(big);
  spawn_smalls((otpc_pid_t){0}, node, self);
  collect("got_small", "got_big", want, &r->to_whole, &r->to_smalls,
          &r->to_before);
  /* From the peer, the same. */
  otpc_buf_t *ask = otpc_term_fmt("{send_big, ~p}", &self);
  otpc_send_remote(sinkn, node, ask);
  otpc_buf_unref(ask);
  collect("small", "big", want, &r->from_whole, &r->from_smalls,
          &r->from_before);
}

TEST(big_messages_both_ways_with_small_ones_passing) {
  uint16_t epmd = load_port(1);
  pid_t child = load_peer("big_b@localhost", epmd);
  usleep(300000);
  CHECK_INT_EQ(start_node("big_a@localhost", epmd), 0);
  bigrun_t r = {"big_b@localhost", 0, 0, 0, 0, 0, 0, 0, 0};
  otpc_pid_t p;
  otpc_spawn(big_main, &r, NULL, &p);
  for (int i = 0; i < 1800 && otpc_is_alive(p); i++) usleep(50000);
  kill(child, SIGKILL);
  waitpid(child, NULL, 0);
  CHECK_INT_EQ(r.pong, 1);
  CHECK_INT_EQ(r.hello, 1);
  CHECK_INT_EQ(r.to_whole, 1);
  CHECK_INT_EQ(r.to_smalls, SMALLS);
  CHECK(r.to_before > 0); /* not stuck behind the 100 MB */
  CHECK_INT_EQ(r.from_whole, 1);
  CHECK_INT_EQ(r.from_smalls, SMALLS);
  CHECK(r.from_before > 0);
  otpc_dist_stop();
  otpc_node_stop();
}

/* ------------------------------------------------------------------------
 * Many monitors over one connection
 * ------------------------------------------------------------------------ */

#define NMON 100000

typedef struct monrun {
  const char *peer;
  pid_t child;
  int hello, made, down, dup, stray, extra, exit_noconn;
} monrun_t;

/* An index over refs: slot -> index + 1 (0: free). */
static size_t ref_slot(uint32_t *set, size_t cap, const otpc_ref_t *r,
                       const otpc_ref_t *refs) {
  uint64_t h = 14695981039346656037ull;
  for (uint32_t i = 0; i < r->len; i++) h = (h ^ r->id[i]) * 1099511628211ull;
  size_t i = (size_t)h & (cap - 1);
  while (set[i] != 0 && !otpc_ref_eq(&refs[set[i] - 1], r))
    i = (i + 1) & (cap - 1);
  return i;
}

static void mon_main(void *arg) {
  monrun_t *r = arg;
  otpc_atom_t node = otpc_atom(r->peer);
  otpc_pid_t sinkp;
  if (!wait_pong(node) || !(r->hello = hello(node, &sinkp))) return;
  otpc_ref_t *refs = calloc(NMON, sizeof *refs);
  size_t cap = (size_t)1 << 18;
  uint32_t *set = calloc(cap, sizeof *set);
  bool *seen = calloc(NMON, sizeof *seen);
  for (int i = 0; i < NMON; i++)
    if (otpc_monitor(sinkp, &refs[i]) == 0) r->made++;
  /* Half of them end again: those must not fire. */
  for (int i = 1; i < NMON; i += 2) otpc_demonitor(&refs[i], 0);
  for (int i = 0; i < NMON; i += 2)
    set[ref_slot(set, cap, &refs[i], refs)] = (uint32_t)i + 1;
  otpc_trap_exit(true);
  otpc_link(sinkp);
  otpc_sleep(300); /* let some of it reach the peer; it need not all */
  kill(r->child, SIGKILL);
  otpc_pattern_t *down, *ex;
  otpc_pattern_compile("{'DOWN', ~r, process, _, noconnection}", &down, NULL);
  otpc_pattern_compile("{'EXIT', _, noconnection}", &ex, NULL);
  otpc_ref_t ref;
  otpc_buf_t *m;
  while (r->down + r->stray < NMON / 2 &&
         otpc_receive(down, 20000, &m, &ref) == 0) {
    otpc_buf_unref(m);
    uint32_t at = set[ref_slot(set, cap, &ref, refs)];
    if (at == 0) {
      r->stray++;
    } else if (seen[at - 1]) {
      r->dup++;
    } else {
      seen[at - 1] = true;
      r->down++;
    }
  }
  if (otpc_receive(ex, 20000, &m) == 0) {
    r->exit_noconn = 1;
    otpc_buf_unref(m);
  }
  /* Nothing more comes: every monitor fired once. */
  while (otpc_receive(down, 300, &m, &ref) == 0) {
    otpc_buf_unref(m);
    r->extra++;
  }
  otpc_pattern_free(down);
  otpc_pattern_free(ex);
  free(refs);
  free(set);
  free(seen);
}

TEST(many_monitors_over_a_connection_fire_once_on_nodedown) {
  uint16_t epmd = load_port(2);
  pid_t child = load_peer("mon_b@localhost", epmd);
  usleep(300000);
  CHECK_INT_EQ(start_node("mon_a@localhost", epmd), 0);
  monrun_t r = {"mon_b@localhost", child, 0, 0, 0, 0, 0, 0, 0};
  otpc_pid_t p;
  otpc_spawn(mon_main, &r, NULL, &p);
  for (int i = 0; i < 2400 && otpc_is_alive(p); i++) usleep(50000);
  kill(child, SIGKILL);
  waitpid(child, NULL, 0);
  CHECK_INT_EQ(r.hello, 1);
  CHECK_INT_EQ(r.made, NMON);
  CHECK_INT_EQ(r.down, NMON / 2);
  CHECK_INT_EQ(r.dup, 0);
  CHECK_INT_EQ(r.stray, 0);
  CHECK_INT_EQ(r.extra, 0);
  CHECK_INT_EQ(r.exit_noconn, 1);
  otpc_dist_stop();
  otpc_node_stop();
}

/* ------------------------------------------------------------------------
 * Fragments put together, wherever they are cut
 * ------------------------------------------------------------------------ */

/* Feeds the bytes of a message (control and payload, no version bytes) as
 * fragments cut at cuts[]; 1 and the message in *out when it came whole. */
static int feed_cut(otpc__rx_t *rx, const uint8_t *data, size_t n,
                    const size_t *cuts, size_t ncuts, otpc__dmsg_t *out) {
  size_t prev = 0;
  int rc = -1;
  for (size_t k = 0; k <= ncuts; k++) {
    size_t end = k < ncuts ? cuts[k] : n;
    uint8_t *f = malloc(19 + end - prev);
    size_t h = 0;
    f[h++] = 131;
    f[h++] = k == 0 ? 69 : 70;
    put_be64(f + h, 3);
    put_be64(f + h + 8, ncuts + 1 - k);
    h += 16;
    if (k == 0) f[h++] = 0;
    memcpy(f + h, data + prev, end - prev);
    char why[128];
    rc = otpc__rx_frame(rx, f, h + end - prev, out, why, sizeof why);
    free(f);
    prev = end;
    if (rc != 0) break;
  }
  return rc;
}

TEST(fragments_whole_or_split_control_give_the_same_message) {
  otpc_pid_t to = {otpc_atom("x@h"), 5, 0, 1};
  otpc_buf_t *ctrl = otpc__ctrl_fmt("{2, '', ~p}", &to);
  uint8_t bytes[3000];
  for (size_t i = 0; i < sizeof bytes; i++) bytes[i] = (uint8_t)(i * 7);
  otpc_buf_t *pay = otpc_term_fmt("{bin, ~b}", bytes, sizeof bytes);
  size_t clen = otpc_buf_size(ctrl) - 1, plen = otpc_buf_size(pay) - 1;
  uint8_t *all = malloc(clen + plen);
  memcpy(all, otpc_buf_data(ctrl) + 1, clen);
  memcpy(all + clen, otpc_buf_data(pay) + 1, plen);
  size_t cut_sets[][3] = {
      {clen, clen + 100, clen + 2000}, /* the control whole in the first */
      {clen + 1, clen + 2, clen + 3},
      {3, clen - 1, clen + 500}, /* the control cut in two */
      {1, 2, clen},
  };
  for (size_t s = 0; s < sizeof cut_sets / sizeof cut_sets[0]; s++) {
    otpc__rx_t rx;
    otpc__rx_init(&rx);
    otpc__dmsg_t m;
    CHECK_INT_EQ(feed_cut(&rx, all, clen + plen, cut_sets[s], 3, &m), 1);
    CHECK_INT_EQ(m.op, DOP_SEND);
    CHECK(otpc_pid_eq(m.to, to));
    CHECK(m.payload != NULL);
    CHECK(otpc_term_equal(otpc_buf_term(m.payload), otpc_buf_term(pay)));
    CHECK_INT_EQ(rx.nfrags, 0);
    CHECK_INT_EQ(rx.frag_bytes, 0);
    otpc__dmsg_clear(&m);
    otpc__rx_free(&rx);
  }
  /* A bad payload in the last fragment is an error, and nothing stays. */
  all[clen + plen - 1] ^= 0xff;
  all[clen] = 200; /* no such tag */
  otpc__rx_t rx;
  otpc__rx_init(&rx);
  otpc__dmsg_t m;
  CHECK(feed_cut(&rx, all, clen + plen, cut_sets[0], 3, &m) < 0);
  CHECK_INT_EQ(rx.nfrags, 0);
  otpc__rx_free(&rx);
  free(all);
  otpc_buf_unref(ctrl);
  otpc_buf_unref(pay);
}

/* ------------------------------------------------------------------------
 * A peer that stops reading
 * ------------------------------------------------------------------------ */

#define NSEQ 8000

typedef struct seqrun {
  const char *peer;
  pid_t child;
  int hello, last, bad;
} seqrun_t;

static void seq_main(void *arg) {
  seqrun_t *r = arg;
  otpc_atom_t node = otpc_atom(r->peer);
  otpc_pid_t sinkp, self = otpc_self();
  if (!wait_pong(node) || !(r->hello = hello(node, &sinkp))) return;
  uint8_t pad[1900];
  memset(pad, 0x5a, sizeof pad);
  /* The peer stops: the sockets fill, sends queue up (direct writes
   * that only partly go, batches that wait), and nothing may be lost,
   * cut or reordered when it goes on. */
  kill(r->child, SIGSTOP);
  for (int i = 1; i <= NSEQ; i++) {
    otpc_buf_t *m = otpc_term_fmt("{seq, ~p, ~i, ~b}", &self, i, pad,
                                  sizeof pad - (size_t)(i % 300));
    otpc_send(sinkp, m);
    otpc_buf_unref(m);
    /* the writer goes idle between the first ones: each other one is
     * written by its sender, and the socket may fill under one of those */
    if (i < 2500) otpc_sleep(1);
  }
  kill(r->child, SIGCONT);
  otpc_sendf(sinkp, "{seq_done, ~p}", &self);
  otpc_pattern_t *rep;
  otpc_pattern_compile("{seq_report, ~i, ~i}", &rep, NULL);
  otpc_buf_t *m;
  if (otpc_receive(rep, 60000, &m, &r->last, &r->bad) == 0) otpc_buf_unref(m);
  otpc_pattern_free(rep);
}

TEST(a_peer_that_stops_reading_loses_nothing) {
  uint16_t epmd = load_port(3);
  pid_t child = load_peer("seq_b@localhost", epmd);
  usleep(300000);
  CHECK_INT_EQ(start_node("seq_a@localhost", epmd), 0);
  seqrun_t r = {"seq_b@localhost", child, 0, -1, -1};
  otpc_pid_t p;
  otpc_spawn(seq_main, &r, NULL, &p);
  for (int i = 0; i < 1800 && otpc_is_alive(p); i++) usleep(50000);
  kill(child, SIGCONT);
  kill(child, SIGKILL);
  waitpid(child, NULL, 0);
  CHECK_INT_EQ(r.hello, 1);
  CHECK_INT_EQ(r.last, NSEQ);
  CHECK_INT_EQ(r.bad, 0);
  otpc_dist_stop();
  otpc_node_stop();
}
