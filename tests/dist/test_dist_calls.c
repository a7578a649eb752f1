/*
 * test_dist_calls.c: otpc_gen_server_call_remote() between two otpc nodes
 * (the second a forked child): the reply (from a gen_server and, with
 * otpc_gen_statem_call_remote, a gen_statem), noproc for a name nobody
 * has, a timeout, {nodedown, Node} for a node that cannot be reached (by
 * name, and by pid with otpc_gen_server_call) and for one killed
 * (SIGKILL) during the call, and the server's exit reason when it dies
 * during the call. gs, gs2 and sm are the peer's servers.
 */
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "otpc.h"
#include "test.h"

static uint16_t calls_port(int salt) {
  return (uint16_t)(20000 + (getpid() * 11 + salt * 173) % 20000);
}

static int start_node(const char *name, uint16_t epmd) {
  otpc_node_opts_t n = {.name = name, .cookie = "calls", .schedulers = 2};
  if (otpc_node_start(&n) != 0) return -1;
  otpc_dist_opts_t d = {.epmd_port = epmd, .listen_addr = "127.0.0.1"};
  return otpc_dist_start(&d);
}

/* The peer's server `gs`: {ok, Req} for most requests; `slow` is never
 * answered; `die` stops the server with reason bye. */
static void gs_init(void *arg, void **state, otpc_gs_result_t *r) {}

static void gs_call(void **state, otpc_term_t req, const otpc_from_t *from,
                    otpc_gs_result_t *r) {
  if (otpc_term_atom_eq(req, "slow", 4)) return;
  if (otpc_term_atom_eq(req, "die", 3)) {
    otpc_gs_stop(r, otpc_term_fmt("bye"));
    return;
  }
  otpc_gs_replyf(r, "{ok, ~t}", req);
}

static const otpc_gen_server_t gs_cb = {
    .name = "gs", .init = gs_init, .handle_call = gs_call};

/* And `sm`, a gen_statem in state `idle` that answers {sm_says, Req}. */
static void sm_idle(const otpc_sm_event_t *ev, void **data,
                    otpc_sm_result_t *r) {
  if (ev->type == OTPC_SM_CALL)
    otpc_sm_replyf(r, ev->from, "{sm_says, ~t}", ev->content);
  otpc_sm_keep_state(r);
}

static void sm_init(void *arg, void **data, otpc_sm_result_t *r) {
  otpc_sm_next_state(r, "idle");
}

static const otpc_sm_state_t sm_states[] = {{"idle", sm_idle}};
static const otpc_gen_statem_t sm_cb = {
    .name = "sm", .init = sm_init, .states = sm_states, .nstates = 1};

static void peer_start(void *arg) {
  otpc_sm_opts_t so = {.name = otpc_atom("sm")};
  otpc_gen_statem_start(&sm_cb, NULL, &so, NULL, NULL);
  otpc_gs_opts_t o = {.name = otpc_atom("gs")}, o2 = {.name = otpc_atom("gs2")};
  otpc_gen_server_start(&gs_cb, NULL, &o, NULL, NULL);
  otpc_gen_server_start(&gs_cb, NULL, &o2, NULL, NULL);
}

static pid_t peer(const char *name, uint16_t epmd) {
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (start_node(name, epmd) != 0) _exit(3);
    otpc_spawn(peer_start, NULL, NULL, NULL);
    sleep(60);
    _exit(0);
  }
  return pid;
}

typedef struct calls {
  pid_t child;
  int ok, statem, noproc, timeout, unreachable, died, nodedown;
} calls_t;

static int call(otpc_atom_t name, otpc_atom_t node, const char *req, int64_t ms,
                otpc_buf_t **reply) {
  otpc_buf_t *q = otpc_term_fmt(req);
  int rc = otpc_gen_server_call_remote(name, node, q, ms, reply);
  otpc_buf_unref(q);
  return rc;
}

static bool reply_is(otpc_buf_t *reply, const char *text) {
  otpc_buf_t *want = otpc_term_fmt(text);
  bool eq = reply && want &&
            otpc_term_equal(otpc_buf_term(reply), otpc_buf_term(want));
  otpc_buf_unref(want);
  return eq;
}

static void killer(void *arg) {
  otpc_sleep(300);
  kill(*(pid_t *)arg, SIGKILL);
}

static void calls_main(void *arg) {
  calls_t *c = arg;
  otpc_atom_t b = otpc_atom("callee@localhost"), gs = otpc_atom("gs");
  otpc_buf_t *r = NULL;
  int rc = -1;
  for (int i = 0; i < 50 && rc != 0; i++) { /* the peer starts */
    rc = call(gs, b, "{hello, [1, 2]}", 2000, &r);
    if (rc != 0) otpc_sleep(100);
  }
  c->ok = rc == 0 && reply_is(r, "{ok, {hello, [1, 2]}}");
  otpc_buf_unref(r);
  otpc_buf_t *q = otpc_term_fmt("[to, sm]");
  c->statem =
      otpc_gen_statem_call_remote(otpc_atom("sm"), b, q, 2000, &r) == 0 &&
      reply_is(r, "{sm_says, [to, sm]}");
  otpc_buf_unref(q);
  otpc_buf_unref(r);
  c->noproc = call(otpc_atom("nobody"), b, "x", 2000, &r) == OTPC_ENOPROC;
  otpc_buf_unref(r);
  c->timeout = call(gs, b, "slow", 200, &r) == OTPC_ETIMEDOUT && r == NULL;
  otpc_atom_t far = otpc_atom("not_running@localhost");
  c->unreachable = call(gs, far, "x", 5000, &r) == OTPC_EEXITED &&
                   reply_is(r, "{nodedown, 'not_running@localhost'}");
  otpc_buf_unref(r);
  /* by pid, the same */
  otpc_pid_t far_pid = {far, 1, 0, 1};
  otpc_buf_t *x = otpc_term_fmt("x");
  c->unreachable &=
      otpc_gen_server_call(far_pid, x, 5000, &r) == OTPC_EEXITED &&
      reply_is(r, "{nodedown, 'not_running@localhost'}");
  otpc_buf_unref(x);
  otpc_buf_unref(r);
  c->died = call(gs, b, "die", 2000, &r) == OTPC_EEXITED && reply_is(r, "bye");
  otpc_buf_unref(r);
  /* The peer is killed while gs2 sits on a call it never answers. */
  otpc_spawn(killer, &c->child, NULL, NULL);
  c->nodedown =
      call(otpc_atom("gs2"), b, "slow", OTPC_INFINITY, &r) == OTPC_EEXITED &&
      reply_is(r, "{nodedown, 'callee@localhost'}");
  otpc_buf_unref(r);
}

TEST(gen_server_call_remote_results) {
  uint16_t epmd = calls_port(1);
  pid_t child = peer("callee@localhost", epmd);
  usleep(300000);
  CHECK_INT_EQ(start_node("caller@localhost", epmd), 0);
  calls_t c = {.child = child};
  otpc_pid_t p;
  otpc_spawn(calls_main, &c, NULL, &p);
  for (int i = 0; i < 600 && otpc_is_alive(p); i++) usleep(50000);
  CHECK_INT_EQ(c.ok, 1);
  CHECK_INT_EQ(c.statem, 1);
  CHECK_INT_EQ(c.noproc, 1);
  CHECK_INT_EQ(c.timeout, 1);
  CHECK_INT_EQ(c.unreachable, 1);
  CHECK_INT_EQ(c.died, 1);
  CHECK_INT_EQ(c.nodedown, 1);
  kill(child, SIGKILL);
  waitpid(child, NULL, 0);
  otpc_dist_stop();
  otpc_node_stop();
}

/* A caller on a node with a long name: the [alias | Ref] tag of its calls
 * carries that name, and must still fit in the server's otpc_from_t. */
#define LONG_CALLER                                                        \
  "caller_on_a_node_with_a_rather_long_name_for_its_alias_tags_0123456789" \
  "@localhost"

static void long_main(void *arg) {
  int *ok = arg;
  otpc_atom_t b = otpc_atom("callee_long@localhost"), gs = otpc_atom("gs");
  otpc_buf_t *r = NULL;
  int rc = -1;
  for (int i = 0; i < 50 && rc != 0; i++) { /* the peer starts */
    rc = call(gs, b, "hello", 2000, &r);
    if (rc != 0) otpc_sleep(100);
  }
  *ok = rc == 0 && reply_is(r, "{ok, hello}");
  otpc_buf_unref(r);
}

TEST(gen_server_call_remote_from_a_long_node_name) {
  uint16_t epmd = calls_port(2);
  pid_t child = peer("callee_long@localhost", epmd);
  usleep(300000);
  CHECK_INT_EQ(start_node(LONG_CALLER, epmd), 0);
  int ok = 0;
  otpc_pid_t p;
  otpc_spawn(long_main, &ok, NULL, &p);
  for (int i = 0; i < 600 && otpc_is_alive(p); i++) usleep(50000);
  CHECK_INT_EQ(ok, 1);
  kill(child, SIGKILL);
  waitpid(child, NULL, 0);
  otpc_dist_stop();
  otpc_node_stop();
}
