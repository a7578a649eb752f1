/*
 * dist_big.c: a 100 MB message from a real Erlang node to an otpc node,
 * with small messages from another Erlang process sent while it is on its
 * way: they must arrive before it (Erlang cuts it into fragments and
 * sends other processes' messages between them; otpc must put the
 * fragments together and deliver the small ones meanwhile, not after).
 * The other direction is in dist_interop.c (big_to_erl).
 *
 * usage: dist_big WORKDIR   (erl's log goes there; 77 without erl)
 *
 * The erl node runs the code below with -eval; it finds this node through
 * this node's embedded epmd, on a port of its own.
 */
#include <fcntl.h>
#include <openssl/md5.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "otpc.h"

#define SMALLS 20

static const char *erl_code =
    "N = list_to_atom(os:getenv(\"OTPC_NODE\")),"
    "true = net_kernel:connect_node(N),"
    "Big = binary:copy(<<1,2,3,4,5,6,7,8>>, 13107200),"
    "Self = self(),"
    "spawn(fun() -> Self ! started, {control, N} ! {big, Big},"
    "               Self ! big_sent end),"
    "receive started -> ok end,"
    "spawn(fun() -> [{control, N} ! {small, I} ||"
    "                I <- lists:seq(1, 20)] end),"
    "receive big_sent -> ok end,"
    "{control, N} ! {erl_done, erlang:md5(Big)},"
    "receive stop -> ok after 120000 -> ok end,"
    "halt().";

typedef struct result {
  int smalls, before, big_ok, done;
  size_t big_size;
} result_t;

static void md5(const void *d, size_t n, uint8_t out[16]) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  MD5(d, n, out);
#pragma GCC diagnostic pop
}

static bool tagged(otpc_term_t t, const char *tag) {
  otpc_term_t e;
  size_t arity;
  return otpc_term_get_tuple(t, &arity, &e) == 0 && arity == 2 &&
         otpc_term_atom_eq(e, tag, strlen(tag));
}

static void control(void *arg) {
  result_t *r = arg;
  otpc_register(otpc_atom("control"), otpc_self());
  uint8_t got[16] = {0};
  bool have_big = false;
  for (;;) {
    otpc_buf_t *m;
    if (otpc_receive(NULL, 120000, &m) != 0) return;
    otpc_term_t t = otpc_buf_term(m);
    otpc_term_t v = otpc_term_tuple_elem(t, 1);
    const uint8_t *bin;
    size_t n;
    unsigned bits;
    if (tagged(t, "small")) {
      r->smalls++;
    } else if (tagged(t, "big") &&
               otpc_term_get_binary(v, &bin, &n, &bits) == 0) {
      r->before = r->smalls;
      r->big_size = n;
      md5(bin, n, got);
      have_big = true;
    } else if (tagged(t, "erl_done") &&
               otpc_term_get_binary(v, &bin, &n, &bits) == 0 && n == 16) {
      r->done = 1;
      r->big_ok = have_big && memcmp(bin, got, 16) == 0;
    }
    otpc_buf_unref(m);
    if (r->done && r->smalls == SMALLS) return;
  }
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: dist_big WORKDIR\n");
    return 2;
  }
  if (system("command -v erl >/dev/null 2>&1") != 0) return 77;
  mkdir(argv[1], 0755);
  signal(SIGPIPE, SIG_IGN);
  char name[64], erl_name[64], log[1200], port[16];
  snprintf(name, sizeof name, "big_otpc_%d@localhost", (int)getpid());
  snprintf(erl_name, sizeof erl_name, "big_erl_%d@localhost", (int)getpid());
  snprintf(log, sizeof log, "%s/erl.log", argv[1]);
  uint16_t epmd = (uint16_t)(21000 + getpid() % 20000);
  snprintf(port, sizeof port, "%u", epmd);
  otpc_node_opts_t n = {.name = name, .cookie = "big_cookie"};
  otpc_dist_opts_t d = {.epmd_port = epmd, .listen_addr = "127.0.0.1"};
  if (otpc_node_start(&n) != 0 || otpc_dist_start(&d) != 0) {
    fprintf(stderr, "dist_big: cannot start the node\n");
    return 1;
  }
  result_t r = {0};
  otpc_pid_t cp;
  otpc_spawn(control, &r, NULL, &cp);
  pid_t erl = fork();
  if (erl == 0) {
    setenv("ERL_EPMD_PORT", port, 1);
    setenv("OTPC_NODE", name, 1);
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    execlp("erl", "erl", "-noshell", "-sname", erl_name, "-setcookie",
           "big_cookie", "-start_epmd", "false", "-eval", erl_code,
           (char *)NULL);
    _exit(127);
  }
  while (otpc_is_alive(cp)) usleep(20000);
  kill(erl, SIGKILL);
  waitpid(erl, NULL, 0);
  int fails = 0;
  printf("%s big_from_erl_whole: size %zu, md5 %s\n",
         r.big_ok ? "ok  " : "FAIL", r.big_size,
         r.big_ok ? "matches" : "differs or missing");
  fails += !r.big_ok;
  printf("%s small_ones_all_came: %d of %d\n",
         r.smalls == SMALLS ? "ok  " : "FAIL", r.smalls, SMALLS);
  fails += r.smalls != SMALLS;
  printf("%s small_ones_passed_the_big_one: %d before it\n",
         r.before > 0 ? "ok  " : "FAIL", r.before);
  fails += r.before == 0;
  otpc_dist_stop();
  otpc_node_stop();
  printf("%d passed, %d failed\n", 3 - fails, fails);
  return fails ? 1 : 0;
}
