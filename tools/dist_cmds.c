/*
 * dist_cmds.c: the otpc tool's distribution subcommands.
 *
 *   otpc names                      the names registered with the host's
 *                                   epmd (or an otpc node's embedded one),
 *                                   as `epmd -names` prints them
 *   otpc ping NODE                  pong (exit 0) or pang (exit 1)
 *   otpc rpc NODE MOD FUN ARGS      rpc:call(NODE, MOD, FUN, ARGS), ARGS in
 *                                   Erlang syntax ("[1, <<\"x\">>]"); prints
 *                                   the result (exit 1 for {badrpc, _})
 *
 * ping and rpc start a short-lived hidden node (as erl_call does): its name
 * is --name or otpc_<pid>, at NODE's host so that long and short names
 * match; its cookie is --cookie or ~/.erlang.cookie. epmd is found at
 * $ERL_EPMD_PORT, else 4369. With --tls-cert (and --tls-key, --tls-ca)
 * the node speaks TLS distribution, for nodes started with Erlang's
 * -proto_dist inet_tls. Errors go to stderr; usage errors exit 2.
 */
#include "dist_cmds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dist/dist_int.h"
#include "otpc.h"

const char otpc__dist_usage[] =
    "  names                        list the names registered with epmd\n"
    "                               ($ERL_EPMD_PORT, else 4369)\n"
    "  ping [OPTS] NODE             net_adm:ping(NODE): prints pong (exit 0)\n"
    "                               or pang (exit 1)\n"
    "  rpc [OPTS] NODE MOD FUN ARGS rpc:call(NODE, MOD, FUN, ARGS), ARGS a\n"
    "                               list in Erlang syntax; prints the result\n"
    "                               (exit 1 for {badrpc, Reason})\n"
    "    OPTS: --cookie C (default ~/.erlang.cookie), --name N (default\n"
    "          otpc_<pid>, hidden), --timeout MS (default 10000),\n"
    "          --tls-cert PEM [--tls-key PEM] [--tls-ca PEM] (TLS\n"
    "          distribution, as erl -proto_dist inet_tls)\n";

/* ---- options ---------------------------------------------------------- */

typedef struct cmd_opts {
  const char *cookie, *name;
  int64_t timeout_ms;
  otpc_dist_tls_t tls; /* certfile NULL: plain TCP */
  char *pos[4];        /* positional arguments */
  int npos;
} cmd_opts_t;

/* Options anywhere before or between the positional arguments. -1 on a
 * usage error (reported). */
static int parse_opts(const char *cmd, int argc, char **argv, int want,
                      cmd_opts_t *o) {
  memset(o, 0, sizeof *o);
  o->timeout_ms = 10000;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    bool has_value = i + 1 < argc;
    if (strcmp(a, "--cookie") == 0 && has_value) {
      o->cookie = argv[++i];
    } else if (strcmp(a, "--name") == 0 && has_value) {
      o->name = argv[++i];
    } else if (strcmp(a, "--tls-cert") == 0 && has_value) {
      o->tls.certfile = argv[++i];
    } else if (strcmp(a, "--tls-key") == 0 && has_value) {
      o->tls.keyfile = argv[++i];
    } else if (strcmp(a, "--tls-ca") == 0 && has_value) {
      o->tls.cafile = argv[++i];
    } else if (strcmp(a, "--timeout") == 0 && has_value) {
      char *end;
      long long ms = strtoll(argv[++i], &end, 10);
      if (*end != 0 || ms <= 0) {
        fprintf(stderr, "otpc %s: --timeout wants milliseconds > 0\n", cmd);
        return -1;
      }
      o->timeout_ms = ms;
    } else if (a[0] == '-' && a[1] == '-') {
      fprintf(stderr, "otpc %s: unknown option %s\n", cmd, a);
      return -1;
    } else if (o->npos < want) {
      o->pos[o->npos++] = argv[i];
    } else {
      fprintf(stderr, "otpc %s: too many arguments\n", cmd);
      return -1;
    }
  }
  if ((o->tls.keyfile || o->tls.cafile) && !o->tls.certfile) {
    fprintf(stderr, "otpc %s: --tls-key and --tls-ca need --tls-cert\n", cmd);
    return -1;
  }
  if (o->npos != want) {
    fprintf(stderr, "otpc %s: missing arguments (see otpc help)\n", cmd);
    return -1;
  }
  return 0;
}

/* "name" becomes "name@HOST" with this host's short name, as -sname does. */
static void full_name(const char *name, const char *host, char *out,
                      size_t size) {
  if (strchr(name, '@') != NULL) {
    snprintf(out, size, "%s", name);
    return;
  }
  char here[256] = "localhost";
  if (host == NULL) {
    gethostname(here, sizeof here - 1);
    here[strcspn(here, ".")] = 0;
    host = here;
  }
  snprintf(out, size, "%s@%s", name, host);
}

/* ---- a short-lived client node ---------------------------------------- */

typedef struct job {
  int (*run)(struct job *j);
  cmd_opts_t *o;
  otpc_atom_t target;
  otpc_buf_t *args; /* rpc */
  int status;       /* the exit status */
} job_t;

static void job_proc(void *arg) {
  job_t *j = arg;
  j->status = j->run(j);
}

/* Starts a hidden node named for the target's host, runs j in a process,
 * stops the node. */
static int with_node(const char *cmd, const char *target, job_t *j) {
  char node[256], self[256], own[64];
  full_name(target, NULL, node, sizeof node);
  const char *host = strchr(node, '@') + 1;
  snprintf(own, sizeof own, "otpc_%d", (int)getpid());
  full_name(j->o->name ? j->o->name : own, host, self, sizeof self);
  otpc_node_opts_t no = {.name = self,
                         .cookie = j->o->cookie,
                         .schedulers = 1,
                         .dirty_threads = 1};
  int rc = otpc_node_start(&no);
  if (rc != 0) {
    fprintf(stderr, "otpc %s: starting node %s: %s\n", cmd, self,
            otpc_strerror(rc));
    return 1;
  }
  otpc_dist_opts_t d = {.hidden = true,
                        .listen_addr = "127.0.0.1",
                        .tls = j->o->tls.certfile ? &j->o->tls : NULL};
  rc = otpc_dist_start(&d);
  if (rc != 0) {
    fprintf(stderr, "otpc %s: starting distribution as %s: %s\n", cmd, self,
            otpc_strerror(rc));
    otpc_node_stop();
    return 1;
  }
  j->target = otpc_atom(node);
  j->status = 1;
  otpc_pid_t p;
  rc = otpc_spawn(job_proc, j, NULL, &p);
  while (rc == 0 && otpc_is_alive(p)) usleep(1000);
  otpc_dist_stop();
  otpc_node_stop();
  return j->status;
}

/* ---- names ------------------------------------------------------------ */

int otpc__tool_names(int argc, char **argv) {
  if (argc != 0) {
    fprintf(stderr, "otpc names: takes no arguments\n");
    return 2;
  }
  const char *env = getenv("ERL_EPMD_PORT");
  uint16_t port =
      env && atoi(env) > 0 ? (uint16_t)atoi(env) : EPMD_DEFAULT_PORT;
  char *text = NULL;
  int rc = otpc__epmd_names("localhost", port, otpc__deadline(5000), &text);
  if (rc != 0) {
    fprintf(stderr, "otpc names: no epmd answers on port %u: %s\n", port,
            otpc_strerror(rc));
    return 1;
  }
  printf("epmd: up and running on port %u with data:\n%s", port, text);
  otpc_free(text);
  return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- ping ------------------------------------------------------------- */

static int ping_run(job_t *j) {
  int pong = otpc_net_ping(j->target, j->o->timeout_ms);
  printf("%s\n", pong == 1 ? "pong" : "pang");
  fflush(stdout);
  return pong == 1 ? 0 : 1;
}

int otpc__tool_ping(int argc, char **argv) {
  cmd_opts_t o;
  if (parse_opts("ping", argc, argv, 1, &o) != 0) return 2;
  job_t j = {.run = ping_run, .o = &o};
  return with_node("ping", o.pos[0], &j);
}

/* ---- rpc -------------------------------------------------------------- */

static int rpc_run(job_t *j) {
  otpc_buf_t *result = NULL;
  int rc = otpc_rpc_call(j->target, j->o->pos[1], j->o->pos[2],
                         otpc_buf_term(j->args), j->o->timeout_ms, &result);
  if (rc != 0) {
    fprintf(stderr, "otpc rpc: %s\n", otpc_strerror(rc));
    return 1;
  }
  otpc_term_t t = otpc_buf_term(result);
  char *text;
  rc = otpc_term_print_p(t, &text, NULL);
  if (rc == 0) {
    printf("%s\n", text);
    otpc_free(text);
  }
  fflush(stdout);
  size_t arity;
  otpc_term_t first;
  bool bad = otpc_term_get_tuple(t, &arity, &first) == 0 && arity == 2 &&
             otpc_term_atom_eq(first, "badrpc", 6);
  otpc_buf_unref(result);
  return rc == 0 && !bad ? 0 : 1;
}

int otpc__tool_rpc(int argc, char **argv) {
  cmd_opts_t o;
  if (parse_opts("rpc", argc, argv, 4, &o) != 0) return 2;
  /* ARGS: one term, the final '.' optional. */
  const char *src = o.pos[3];
  size_t n = strlen(src);
  char *text = malloc(n + 2);
  if (text == NULL) return 1;
  memcpy(text, src, n);
  while (n > 0 && (text[n - 1] == ' ' || text[n - 1] == '\n')) n--;
  if (n == 0 || text[n - 1] != '.') text[n++] = '.';
  text[n] = 0;
  otpc_buf_t *args = NULL;
  size_t errpos = 0;
  int rc = otpc_term_parse(text, n, &args, &errpos);
  free(text);
  if (rc != 0) {
    fprintf(stderr, "otpc rpc: ARGS at column %zu: %s\n", errpos + 1,
            otpc_strerror(rc));
    return 2;
  }
  size_t len;
  if (otpc_term_list_length(otpc_buf_term(args), &len) != 0) {
    fprintf(stderr, "otpc rpc: ARGS must be a list, such as [] or [1, a]\n");
    otpc_buf_unref(args);
    return 2;
  }
  job_t j = {.run = rpc_run, .o = &o, .args = args};
  int status = with_node("rpc", o.pos[0], &j);
  otpc_buf_unref(args);
  return status;
}
