/*
 * test_dist_tls.c: TLS distribution between otpc nodes (the second one a
 * forked child): ping, send, rpc, a 10 MB message both ways, a link and a
 * monitor that hear noconnection; a node that presents a certificate from
 * a CA nobody trusts, one that trusts another CA, and a plain TCP node are
 * all refused with the reason logged, and the TLS node goes on serving a
 * good peer; a node we call must name its host in its certificate; bad
 * files are an error; without a CA nothing is verified; client_certfile
 * is what the connections we make present. The key material is made at
 * run time (tls_certs.sh) in a temporary directory; real erl nodes are in
 * tests/interop/dist_tls.c.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dist/dist_int.h"
#include "otpc.h"
#include "peer_util.h"
#include "test.h"

#define BIG ((size_t)10 << 20)

static uint16_t tls_port(int salt) {
  return (uint16_t)(20000 + (getpid() * 11 + salt * 173) % 20000);
}

/* Fresh certificates (see tls_certs.sh) in a new temporary directory. */
static char certs[256];
static void make_certs(void) {
  snprintf(certs, sizeof certs, "/tmp/otpc_tls_XXXXXX");
  CHECK(mkdtemp(certs) != NULL);
  char cmd[768];
  snprintf(cmd, sizeof cmd, "sh %s/dist/tls_certs.sh %s", OTPC_TESTS_DIR,
           certs);
  CHECK_INT_EQ(system(cmd), 0);
}
static void drop_certs(void) {
  char cmd[320];
  snprintf(cmd, sizeof cmd, "rm -rf %s", certs);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", certs);
}

/* The files of one identity: cert "node", "rogue" or "other_host", and
 * the CA "ca" or "rogue_ca" it trusts. */
typedef struct ident {
  char cert[300], key[300], ca[300];
  otpc_dist_tls_t tls;
} ident_t;

static void ident(ident_t *id, const char *cert, const char *ca) {
  snprintf(id->cert, sizeof id->cert, "%s/%s.pem", certs, cert);
  snprintf(id->key, sizeof id->key, "%s/%s.key", certs, cert);
  snprintf(id->ca, sizeof id->ca, "%s/%s.pem", certs, ca);
  id->tls = (otpc_dist_tls_t){.certfile = id->cert,
                              .keyfile = id->key,
                              .cafile = ca[0] ? id->ca : NULL};
}

static int start_dist(uint16_t epmd, const ident_t *id) {
  otpc_dist_opts_t d = {.epmd_port = epmd,
                        .listen_addr = "127.0.0.1",
                        .net_ticktime = 8,
                        .tls = id ? &id->tls : NULL};
  return otpc_dist_start(&d);
}

static int start_node(const char *name, uint16_t epmd, const ident_t *id) {
  otpc_node_opts_t n = {.name = name, .cookie = "tk", .schedulers = 2};
  if (otpc_node_start(&n) != 0) return -1;
  return start_dist(epmd, id);
}

/* A TLS node in a child process with echo and t:args, until killed. */
static pid_t tls_peer(const char *name, uint16_t epmd, const char *cert,
                      const char *ca) {
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    static ident_t id;
    ident(&id, cert, ca);
    if (start_node(name, epmd, &id) != 0) _exit(3);
    otpc_rpc_export("t", "args", dt_rpc_args, NULL);
    otpc_spawn(dt_echo, NULL, NULL, NULL);
    sleep(60);
    _exit(0);
  }
  return pid;
}

/* ------------------------------------------------------------------------
 * Two TLS nodes
 * ------------------------------------------------------------------------ */

typedef struct two {
  const char *peer;
  pid_t child;
  int ping, echoed, rpc, big, linked, exit_noconn, down_noconn;
} two_t;

static int ping_until(otpc_atom_t node, int tries) {
  int r = 0;
  for (int i = 0; i < tries && r != 1; i++) {
    r = otpc_net_ping(node, 2000);
    if (r != 1) otpc_sleep(100);
  }
  return r;
}

static bool echo_back(otpc_atom_t node, otpc_buf_t *msg) {
  otpc_send_remote(otpc_atom("echo"), node, msg);
  otpc_buf_t *back;
  bool ok = false;
  if (otpc_receive(NULL, 30000, &back) == 0) {
    ok = otpc_term_equal(otpc_buf_term(back), otpc_buf_term(msg));
    otpc_buf_unref(back);
  }
  otpc_buf_unref(msg);
  return ok;
}

static void two_main(void *arg) {
  two_t *t = arg;
  otpc_atom_t node = otpc_atom(t->peer);
  if ((t->ping = ping_until(node, 50)) != 1) return;
  otpc_pid_t self = otpc_self();
  t->echoed = echo_back(
      node, otpc_term_fmt("{~p, hello, [1, 2.5, <<\"bin\">>]}", &self));
  otpc_buf_t *args = otpc_term_fmt("[1, two]"), *res = NULL;
  otpc_buf_t *want = otpc_term_fmt("{got, [1, two]}");
  t->rpc =
      otpc_rpc_call(node, "t", "args", otpc_buf_term(args), 5000, &res) == 0 &&
      otpc_term_equal(otpc_buf_term(res), otpc_buf_term(want));
  otpc_buf_unref(args);
  otpc_buf_unref(want);
  otpc_buf_unref(res);
  /* 10 MB there and back, through TLS records and fragments */
  uint8_t *data = malloc(BIG);
  for (size_t i = 0; i < BIG; i++) data[i] = (uint8_t)(i * 7 + (i >> 12));
  t->big = echo_back(node, otpc_term_fmt("{~p, big, ~b}", &self, data, BIG));
  free(data);
  /* A link and a monitor to the peer's echo, then the peer dies. */
  otpc_buf_t *whoami = otpc_term_fmt("{~p, whoami}", &self);
  otpc_send_remote(otpc_atom("echo"), node, whoami);
  otpc_buf_unref(whoami);
  otpc_pattern_t *iam;
  otpc_pattern_compile("{iam, ~p}", &iam, NULL);
  otpc_buf_t *ans;
  otpc_pid_t ep;
  int rc = otpc_receive(iam, 5000, &ans, &ep);
  otpc_pattern_free(iam);
  if (rc != 0) return;
  otpc_buf_unref(ans);
  otpc_trap_exit(true);
  t->linked = otpc_link(ep) == 0;
  otpc_ref_t mref;
  otpc_monitor(ep, &mref);
  otpc_sleep(200); /* the signals reach the peer */
  kill(t->child, SIGKILL);
  /* writes to the dead peer's socket fail with EPIPE, never SIGPIPE
   * (the test binary does not ignore it) */
  uint8_t *chunk = calloc(1, 65536);
  for (int i = 0; i < 20; i++) {
    otpc_buf_t *m = otpc_term_fmt("{~p, ~b}", &self, chunk, (size_t)65536);
    otpc_send_remote(otpc_atom("echo"), node, m);
    otpc_buf_unref(m);
    otpc_sleep(5);
  }
  free(chunk);
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

TEST(tls_two_nodes_ping_send_rpc_big_link_monitor) {
  make_certs();
  uint16_t epmd = tls_port(1);
  pid_t child = tls_peer("tb@localhost", epmd, "node", "ca");
  usleep(300000);
  ident_t id;
  ident(&id, "node", "ca");
  CHECK_INT_EQ(start_node("ta@localhost", epmd, &id), 0);
  two_t t = {.peer = "tb@localhost", .child = child};
  otpc_pid_t p;
  otpc_spawn(two_main, &t, NULL, &p);
  for (int i = 0; i < 1200 && otpc_is_alive(p); i++) usleep(50000);
  dt_stop_peer(child);
  drop_certs();
  CHECK_INT_EQ(t.ping, 1);
  CHECK_INT_EQ(t.echoed, 1);
  CHECK_INT_EQ(t.rpc, 1);
  CHECK_INT_EQ(t.big, 1);
  CHECK_INT_EQ(t.linked, 1);
  CHECK_INT_EQ(t.exit_noconn, 1);
  CHECK_INT_EQ(t.down_noconn, 1);
  otpc_dist_stop();
  otpc_node_stop();
}

/* ------------------------------------------------------------------------
 * Refusals: this node runs TLS with the good certificate; children come
 * with something wrong, then one with the right files.
 * ------------------------------------------------------------------------ */

static _Atomic int refused_lines;
static char refused_text[8][240];

static int log_write(void *arg, const otpc_log_event_t *ev, const char *line,
                     size_t len) {
  if (memmem(line, len, "refused", 7) ||
      memmem(line, len, "cannot connect", 14)) {
    int i = atomic_fetch_add(&refused_lines, 1);
    if (i < 8)
      snprintf(refused_text[i], sizeof refused_text[i], "%.*s", (int)len, line);
  }
  return 0;
}

static bool logged(const char *what) {
  int n = atomic_load(&refused_lines);
  for (int i = 0; i < n && i < 8; i++)
    if (strstr(refused_text[i], what) != NULL) return true;
  return false;
}

/* A child that pings us once with the given files (cert NULL: plain
 * TCP) when told to; its exit status is 0 for pong, 1 for pang. Forked
 * before this node starts (a child of a running node has no threads). */
typedef struct ping_job {
  const char *target;
  int result;
} ping_job_t;

static void pinger(void *arg) {
  ping_job_t *j = arg;
  j->result = ping_until(otpc_atom(j->target), 3);
}

typedef struct child {
  pid_t pid;
  int go; /* write a byte: start and ping */
} child_t;

static child_t child_ping(const char *name, const char *us, uint16_t epmd,
                          const char *cert, const char *ca) {
  int fds[2];
  CHECK(pipe(fds) == 0);
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    close(fds[1]);
    char b;
    if (read(fds[0], &b, 1) != 1) _exit(5);
    static ident_t id;
    if (cert) ident(&id, cert, ca);
    otpc_logger_set_primary_level(OTPC_LEVEL_CRITICAL);
    if (start_node(name, epmd, cert ? &id : NULL) != 0) _exit(3);
    static ping_job_t j;
    j.target = us;
    otpc_pid_t p;
    if (otpc_spawn(pinger, &j, NULL, &p) != 0) _exit(4);
    while (otpc_is_alive(p)) usleep(20000);
    _exit(j.result == 1 ? 0 : 1);
  }
  close(fds[0]);
  return (child_t){pid, fds[1]};
}

static int child_run(child_t c) {
  CHECK(write(c.go, "g", 1) == 1);
  close(c.go);
  int st = 0;
  waitpid(c.pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

TEST(tls_bad_peers_refused_logged_and_the_node_goes_on) {
  make_certs();
  otpc_log_handler_config_t lc = {.type = OTPC_LOG_CUSTOM, .write = log_write};
  uint16_t epmd = tls_port(2);
  const char *us = "tls_srv@localhost";
  /* a certificate from a CA we do not trust; a node that trusts another
   * CA (so not our certificate); plain TCP, whose handshake is no TLS
   * hello; and a good one, that still gets in after them */
  child_t rogue = child_ping("rogue@localhost", us, epmd, "rogue", "ca");
  child_t wary = child_ping("wary@localhost", us, epmd, "node", "rogue_ca");
  child_t plain = child_ping("plain@localhost", us, epmd, NULL, NULL);
  child_t good = child_ping("good@localhost", us, epmd, "node", "ca");
  ident_t id;
  ident(&id, "node", "ca");
  CHECK_INT_EQ(start_node(us, epmd, &id), 0);
  CHECK_INT_EQ(otpc_logger_add_handler("tls_refusals", &lc), 0);
  CHECK_INT_EQ(child_run(rogue), 1);
  CHECK_INT_EQ(child_run(wary), 1);
  CHECK_INT_EQ(child_run(plain), 1);
  CHECK_INT_EQ(child_run(good), 0);
  otpc_logger_remove_handler("tls_refusals");
  drop_certs();
  for (int i = 0; i < atomic_load(&refused_lines) && i < 8; i++)
    fprintf(stderr, "logged: %s\n", refused_text[i]);
  CHECK(logged("certificate verify failed"));
  CHECK(logged("unknown ca"));
  CHECK(logged("wrong version number") || logged("packet length too long"));
  otpc_dist_stop();
  otpc_node_stop();
}

/* The node we call must name its host in its certificate. */
static void ping_other(void *arg) {
  ping_job_t *j = arg;
  j->result = ping_until(otpc_atom(j->target), 30);
}

TEST(tls_peer_certificate_for_another_host_refused) {
  make_certs();
  otpc_log_handler_config_t lc = {.type = OTPC_LOG_CUSTOM, .write = log_write};
  uint16_t epmd = tls_port(3);
  pid_t child = tls_peer("elsewhere@localhost", epmd, "other_host", "ca");
  usleep(300000);
  ident_t id;
  ident(&id, "node", "ca");
  CHECK_INT_EQ(start_node("caller@localhost", epmd, &id), 0);
  CHECK_INT_EQ(otpc_logger_add_handler("tls_refusals", &lc), 0);
  ping_job_t j = {"elsewhere@localhost", -1};
  otpc_pid_t p;
  otpc_spawn(ping_other, &j, NULL, &p);
  for (int i = 0; i < 1200 && otpc_is_alive(p); i++) usleep(50000);
  dt_stop_peer(child);
  otpc_logger_remove_handler("tls_refusals");
  drop_certs();
  CHECK_INT_EQ(j.result, 0);
  CHECK(logged("hostname mismatch") || logged("Hostname mismatch"));
  otpc_dist_stop();
  otpc_node_stop();
}

TEST(tls_bad_files_are_an_error) {
  make_certs();
  otpc_node_opts_t n = {.name = "files@localhost", .cookie = "tk"};
  CHECK_INT_EQ(otpc_node_start(&n), 0);
  ident_t id;
  ident(&id, "node", "ca");
  snprintf(id.key, sizeof id.key, "%s/rogue.key", certs); /* not its key */
  CHECK_INT_EQ(start_dist(tls_port(4), &id), OTPC_EINVAL);
  ident(&id, "node", "missing_ca");
  CHECK_INT_EQ(start_dist(tls_port(4), &id), OTPC_EINVAL);
  otpc_dist_tls_t none = {0};
  otpc_dist_opts_t d = {.epmd_port = tls_port(4), .tls = &none};
  CHECK_INT_EQ(otpc_dist_start(&d), OTPC_EINVAL);
  CHECK(!otpc_dist_running());
  drop_certs();
  otpc_node_stop();
}

/* Without a CA nothing is verified (Erlang's verify_none): a certificate
 * from a CA nobody knows gets in, over TLS all the same. */
TEST(tls_without_ca_does_not_verify) {
  make_certs();
  uint16_t epmd = tls_port(5);
  pid_t child = tls_peer("loose_b@localhost", epmd, "rogue", "");
  usleep(300000);
  ident_t id;
  ident(&id, "node", "");
  CHECK_INT_EQ(start_node("loose_a@localhost", epmd, &id), 0);
  ping_job_t j = {"loose_b@localhost", -1};
  otpc_pid_t p;
  otpc_spawn(ping_other, &j, NULL, &p);
  for (int i = 0; i < 1200 && otpc_is_alive(p); i++) usleep(50000);
  dt_stop_peer(child);
  drop_certs();
  CHECK_INT_EQ(j.result, 1);
  otpc_dist_stop();
  otpc_node_stop();
}

/* client_certfile: the connections we make present that certificate, not
 * the one we accept with (here one nobody trusts). */
TEST(tls_client_certificate_for_connections_we_make) {
  make_certs();
  uint16_t epmd = tls_port(6);
  pid_t child = tls_peer("split_b@localhost", epmd, "node", "ca");
  usleep(300000);
  ident_t id;
  ident(&id, "rogue", "ca");
  char ccert[300], ckey[300];
  snprintf(ccert, sizeof ccert, "%s/node.pem", certs);
  snprintf(ckey, sizeof ckey, "%s/node.key", certs);
  id.tls.client_certfile = ccert;
  id.tls.client_keyfile = ckey;
  CHECK_INT_EQ(start_node("split_a@localhost", epmd, &id), 0);
  ping_job_t j = {"split_b@localhost", -1};
  otpc_pid_t p;
  otpc_spawn(ping_other, &j, NULL, &p);
  for (int i = 0; i < 1200 && otpc_is_alive(p); i++) usleep(50000);
  dt_stop_peer(child);
  drop_certs();
  CHECK_INT_EQ(j.result, 1);
  otpc_dist_stop();
  otpc_node_stop();
}
