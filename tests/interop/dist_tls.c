/*
 * dist_tls.c: TLS distribution between an otpc node and real Erlang
 * nodes started with `-proto_dist inet_tls -ssl_dist_optfile FILE`
 * (inet_tls_dist, peers verified both ways against a CA made for the
 * run). Checks:
 *
 *   untrusted_erl_refused  an erl whose certificate comes from another CA
 *                          gets pang, and we log why
 *   plain_erl_refused      an erl without TLS gets pang, and we log why
 *   erl_pings_us           net_adm:ping from a TLS erl: pong (erl made the
 *                          connection, so this node survived the others)
 *   erl_sends_to_us        {control, Node} ! Msg arrives
 *   erl_calls_gen_server   gen_server:call({echo, Node}, Req) = Req
 *   erl_rpc_to_us          rpc:call(Node, tls, echo, Args) = {tls_echo, Args}
 *   we_ping_erl            after a disconnect, otpc_net_ping makes the
 *                          connection (we are the TLS client): pong
 *   we_send_to_erl         a message to an erl pid comes back
 *   we_rpc_erl             otpc_rpc_call(lists:reverse) on erl
 *   we_call_erl_gen_server gen_server:call({application_controller, Erl},
 *                          which_applications) lists kernel
 *
 * usage: dist_tls SRCDIR WORKDIR  (tls_certs.sh is SRCDIR/../dist; erl's
 * logs and the run's certificates go to WORKDIR, the certificates are
 * removed at the end). 0 if all passed, 77 (skipped) without erl or
 * openssl.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "otpc.h"

static char node_name[64], erl_name[64], workdir[1024], certs[1100];
static uint16_t epmd_port;
static const char *cookie = "tls_cookie";

static int fails, passes;
static void check(const char *name, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void check(const char *name, bool ok, const char *fmt, ...) {
  char note[300];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(note, sizeof note, fmt, ap);
  va_end(ap);
  printf("%s %s: %s\n", ok ? "ok  " : "FAIL", name, note);
  fflush(stdout);
  if (ok)
    passes++;
  else
    fails++;
}

/* ---- our log: why connections were refused ----------------------------- */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char refusals[4096];

static int log_write(void *arg, const otpc_log_event_t *ev, const char *line,
                     size_t len) {
  if (memmem(line, len, "refused", 7) == NULL) return 0;
  pthread_mutex_lock(&log_lock);
  size_t have = strlen(refusals);
  if (have + len + 1 < sizeof refusals) memcpy(refusals + have, line, len);
  pthread_mutex_unlock(&log_lock);
  return 0;
}

static bool refused_for(const char *what) {
  pthread_mutex_lock(&log_lock);
  bool found = strstr(refusals, what) != NULL;
  pthread_mutex_unlock(&log_lock);
  return found;
}

/* ---- erl ---------------------------------------------------------------- */

/* The options file for erl's inet_tls_dist: this identity both ways,
 * peers verified against ca. */
static void write_optfile(const char *path, const char *cert, const char *ca) {
  FILE *f = fopen(path, "w");
  if (f == NULL) return;
  const char *side[2] = {"server", "client"};
  fprintf(f, "[");
  for (int i = 0; i < 2; i++)
    fprintf(f,
            "%s{%s, [{certfile, \"%s/%s.pem\"}, {keyfile, \"%s/%s.key\"},\n"
            "  {cacertfile, \"%s/%s.pem\"}, {verify, verify_peer}%s]}\n",
            i ? "," : "", side[i], certs, cert, certs, cert, certs, ca,
            i ? "" : ", {fail_if_no_peer_cert, true}");
  fprintf(f, "].\n");
  fclose(f);
}

/* erl -eval code, with TLS from optfile (NULL: plain TCP). */
static pid_t start_erl(const char *name, const char *optfile, const char *code,
                       const char *log) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  char port[16];
  snprintf(port, sizeof port, "%u", epmd_port);
  setenv("ERL_EPMD_PORT", port, 1);
  setenv("OTPC_NODE", node_name, 1);
  int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    dup2(fd, 1);
    dup2(fd, 2);
  }
  const char *argv[20];
  int n = 0;
  argv[n++] = "erl";
  argv[n++] = "-noshell";
  argv[n++] = "-sname";
  argv[n++] = name;
  argv[n++] = "-setcookie";
  argv[n++] = cookie;
  argv[n++] = "-start_epmd";
  argv[n++] = "false";
  if (optfile) {
    argv[n++] = "-proto_dist";
    argv[n++] = "inet_tls";
    argv[n++] = "-ssl_dist_optfile";
    argv[n++] = optfile;
  }
  argv[n++] = "-eval";
  argv[n++] = code;
  argv[n] = NULL;
  execvp("erl", (char *const *)argv);
  _exit(127);
}

static int wait_exit(pid_t pid, int seconds) {
  for (int i = 0; i < seconds * 20; i++) {
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid)
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    usleep(50000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  return -1;
}

/* An erl that pings us and exits 0 for pong, 3 for pang. */
static const char *ping_code =
    "N = list_to_atom(os:getenv(\"OTPC_NODE\")),"
    "halt(case net_adm:ping(N) of pong -> 0; pang -> 3 end).";

/* The main erl: it calls us, tells control, then serves echoes until
 * told to stop. */
static const char *main_code =
    "N = list_to_atom(os:getenv(\"OTPC_NODE\")),"
    "P = net_adm:ping(N),"
    "C = (catch gen_server:call({echo, N}, {hello, [1, <<\"two\">>]})),"
    "R = rpc:call(N, tls, echo, [1, <<\"two\">>]),"
    "{control, N} ! {from_erl, self(), P, C, R},"
    "Loop = fun L() -> receive"
    "  {echo, From, X} -> From ! {echoed, X}, L();"
    "  stop -> ok"
    "  after 60000 -> ok end end,"
    "Loop(),"
    "halt().";

/* ---- this node ----------------------------------------------------------- */

static void echo_init(void *arg, void **state, otpc_gs_result_t *r) {}
static void echo_call(void **state, otpc_term_t req, const otpc_from_t *from,
                      otpc_gs_result_t *r) {
  otpc_gs_replyf(r, "~t", req);
}
static const otpc_gen_server_t echo_server = {
    .name = "echo", .init = echo_init, .handle_call = echo_call};

static otpc_buf_t *tls_echo(otpc_term_t args, void *ctx, otpc_buf_t **why) {
  return otpc_term_fmt("{tls_echo, ~t}", args);
}

static otpc_buf_t *recv_match(const char *pattern, int64_t ms,
                              otpc_term_t *bind) {
  otpc_pattern_t *p;
  if (otpc_pattern_compile(pattern, &p, NULL) != 0) return NULL;
  otpc_buf_t *m = NULL;
  int rc = bind ? otpc_receive(p, ms, &m, bind) : otpc_receive(p, ms, &m);
  otpc_pattern_free(p);
  return rc == 0 ? m : NULL;
}

static bool term_is(otpc_term_t t, const char *text) {
  otpc_buf_t *want = otpc_term_fmt(text);
  bool eq = want && otpc_term_equal(t, otpc_buf_term(want));
  otpc_buf_unref(want);
  return eq;
}

static void erl_to_us(otpc_pid_t *erl_pid) {
  otpc_term_t b[4];
  otpc_pattern_t *p;
  otpc_buf_t *m = NULL;
  if (otpc_pattern_compile("{from_erl, ~t, ~t, ~t, ~t}", &p, NULL) == 0) {
    if (otpc_receive(p, 60000, &m, &b[0], &b[1], &b[2], &b[3]) != 0) m = NULL;
    otpc_pattern_free(p);
  }
  check("erl_pings_us", m && term_is(b[1], "pong"), "%s",
        m ? "net_adm:ping" : "no word from erl");
  check("erl_sends_to_us", m != NULL, "{control, Node} ! Msg");
  check("erl_calls_gen_server", m && term_is(b[2], "{hello, [1, <<\"two\">>]}"),
        "gen_server:call({echo, Node}, Req)");
  check("erl_rpc_to_us", m && term_is(b[3], "{tls_echo, [1, <<\"two\">>]}"),
        "rpc:call(Node, tls, echo, Args)");
  if (m) otpc_term_get_pid(b[0], erl_pid);
  otpc_buf_unref(m);
}

static void us_to_erl(otpc_pid_t erl_pid) {
  otpc_atom_t erl = otpc_atom(erl_name);
  /* drop erl's connection: the next one is ours */
  otpc_net_disconnect(erl);
  for (int i = 0; i < 100 && otpc_nodes(NULL, 0, true) > 0; i++) otpc_sleep(20);
  int ping = otpc_net_ping(erl, 10000);
  check("we_ping_erl", ping == 1, "otpc_net_ping = %d", ping);
  otpc_pid_t self = otpc_self();
  otpc_sendf(erl_pid, "{echo, ~p, {over, tls, 42}}", &self);
  otpc_term_t x;
  otpc_buf_t *m = recv_match("{echoed, ~t}", 10000, &x);
  check("we_send_to_erl", m && term_is(x, "{over, tls, 42}"), "echoed");
  otpc_buf_unref(m);
  otpc_buf_t *args = otpc_term_fmt("[[1, 2, 3]]"), *res = NULL;
  int rc =
      otpc_rpc_call(erl, "lists", "reverse", otpc_buf_term(args), 10000, &res);
  check("we_rpc_erl", rc == 0 && term_is(otpc_buf_term(res), "[3, 2, 1]"),
        "rc=%d", rc);
  otpc_buf_unref(args);
  otpc_buf_unref(res);
  otpc_buf_t *q = otpc_term_fmt("which_applications"), *reply = NULL;
  rc = otpc_gen_server_call_remote(otpc_atom("application_controller"), erl, q,
                                   10000, &reply);
  bool kernel = false;
  if (rc == 0) {
    char *text = NULL;
    otpc_term_print(otpc_buf_term(reply), &text, NULL);
    kernel = text && strstr(text, "{kernel") != NULL;
    otpc_free(text);
  }
  check("we_call_erl_gen_server", rc == 0 && kernel,
        "rc=%d, which_applications %s kernel", rc, kernel ? "has" : "lacks");
  otpc_buf_unref(q);
  otpc_buf_unref(reply);
  otpc_sendf(erl_pid, "stop");
}

typedef struct run {
  const char *optfile;
  pid_t erl;
} run_t;

static void control(void *arg) {
  run_t *r = arg;
  otpc_register(otpc_atom("control"), otpc_self());
  otpc_gs_opts_t o = {.name = otpc_atom("echo")};
  otpc_pid_t gs;
  if (otpc_gen_server_start(&echo_server, NULL, &o, &gs, NULL) != 0) {
    check("echo_server_starts", false, "otpc_gen_server_start");
    return;
  }
  char log[1200];
  snprintf(log, sizeof log, "%s/erl_main.log", workdir);
  r->erl = start_erl(erl_name, r->optfile, main_code, log);
  otpc_pid_t erl_pid = {0};
  erl_to_us(&erl_pid);
  if (erl_pid.node != 0) us_to_erl(erl_pid);
  otpc_gen_server_stop(gs, NULL, 5000);
}

static void refusals_first(void) {
  char opt[1200], log[1200], name[64];
  snprintf(opt, sizeof opt, "%s/rogue.conf", workdir);
  write_optfile(opt, "rogue", "ca");
  snprintf(log, sizeof log, "%s/erl_rogue.log", workdir);
  snprintf(name, sizeof name, "tls_rogue_%d@localhost", (int)getpid());
  int st = wait_exit(start_erl(name, opt, ping_code, log), 60);
  check("untrusted_erl_refused",
        st == 3 && refused_for("certificate verify failed"),
        "erl exit %d (3: pang), our log %s", st,
        refused_for("certificate verify failed") ? "says why" : "is silent");
  snprintf(log, sizeof log, "%s/erl_plain.log", workdir);
  snprintf(name, sizeof name, "tls_plain_%d@localhost", (int)getpid());
  st = wait_exit(start_erl(name, NULL, ping_code, log), 60);
  check("plain_erl_refused", st == 3 && refused_for("wrong version number"),
        "erl exit %d (3: pang), our log %s", st,
        refused_for("wrong version number") ? "says why" : "is silent");
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: dist_tls SRCDIR WORKDIR\n");
    return 2;
  }
  if (system("command -v erl >/dev/null 2>&1") != 0) return 77;
  if (system("command -v openssl >/dev/null 2>&1") != 0) return 77;
  signal(SIGPIPE, SIG_IGN);
  snprintf(workdir, sizeof workdir, "%s", argv[2]);
  mkdir(workdir, 0755);
  snprintf(certs, sizeof certs, "%s/certs", workdir);
  char cmd[2400];
  snprintf(cmd, sizeof cmd, "sh %s/../dist/tls_certs.sh %s", argv[1], certs);
  if (system(cmd) != 0) {
    fprintf(stderr, "dist_tls: could not make certificates\n");
    return 1;
  }
  int id = (int)getpid();
  snprintf(node_name, sizeof node_name, "tls_otpc_%d@localhost", id);
  snprintf(erl_name, sizeof erl_name, "tls_erl_%d@localhost", id);
  epmd_port = (uint16_t)(22000 + id % 20000);
  char ours_cert[1200], ours_key[1200], ours_ca[1200], optfile[1200];
  snprintf(ours_cert, sizeof ours_cert, "%s/node.pem", certs);
  snprintf(ours_key, sizeof ours_key, "%s/node.key", certs);
  snprintf(ours_ca, sizeof ours_ca, "%s/ca.pem", certs);
  snprintf(optfile, sizeof optfile, "%s/ssl_dist.conf", workdir);
  write_optfile(optfile, "node", "ca");

  otpc_node_opts_t n = {.name = node_name, .cookie = cookie};
  otpc_dist_tls_t tls = {
      .certfile = ours_cert, .keyfile = ours_key, .cafile = ours_ca};
  otpc_dist_opts_t d = {
      .epmd_port = epmd_port, .listen_addr = "127.0.0.1", .tls = &tls};
  if (otpc_node_start(&n) != 0 || otpc_dist_start(&d) != 0) {
    fprintf(stderr, "dist_tls: cannot start the node\n");
    return 1;
  }
  otpc_log_handler_config_t lc = {.type = OTPC_LOG_CUSTOM, .write = log_write};
  otpc_logger_add_handler("tls_refusals", &lc);
  otpc_rpc_export("tls", "echo", tls_echo, NULL);
  refusals_first();
  run_t r = {optfile, -1};
  otpc_pid_t cp;
  otpc_spawn(control, &r, NULL, &cp);
  for (int i = 0; i < 3000 && otpc_is_alive(cp); i++) usleep(50000);
  if (r.erl > 0 && wait_exit(r.erl, 20) != 0)
    fprintf(stderr, "dist_tls: the main erl did not end cleanly\n");
  otpc_logger_remove_handler("tls_refusals");
  otpc_dist_stop();
  otpc_node_stop();
  snprintf(cmd, sizeof cmd, "rm -rf %s", certs);
  if (system(cmd) != 0) fprintf(stderr, "dist_tls: %s stays\n", certs);
  printf("%d passed, %d failed\n", passes, fails);
  return fails ? 1 : 0;
}
