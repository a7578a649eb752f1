/*
 * otpc_node.c: the `otpc node` and `otpc load` commands (tools/otpc.c
 * dispatches to them).
 *
 *   otpc node --name NAME [--cookie C] [--config sys.config]
 *             [--load mod.so ...] [--app APP ...]
 *
 * starts a node: distribution (an embedded epmd when none runs), the
 * code server's rpc functions (so `otpc load` reaches it), the
 * configuration, the modules, then the applications with
 * ensure_all_started, as permanent applications (as a release boots
 * them). It runs until SIGTERM or SIGINT, which stop the applications in
 * reverse start order (init:stop) and exit 0; or until a permanent
 * application ends, which halts the node with exit status 1, as Erlang's
 * does.
 *
 *   otpc load NODE path/to/module.so [--cookie C] [--name NAME] [--purge]
 *
 * starts a hidden node, connects to NODE and calls otpc_code:load(Path)
 * there: the module is loaded or upgraded on the running node (a soft
 * purge of unused old code first; --purge kills processes that still run
 * old code, as code:purge does).
 *
 * The otpc program exports its symbols (it is linked with -rdynamic and
 * the whole library), so the modules it loads link against it.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "otpc.h"
#include "otpc_cmds.h"

#define MAX_ITEMS 64

typedef struct node_args {
  const char *name, *cookie, *config;
  const char *loads[MAX_ITEMS];
  size_t nloads;
  const char *apps[MAX_ITEMS];
  size_t napps;
} node_args_t;

/* What the boot process reports: 0 running, 1 booted, -1 failed. */
static _Atomic int boot_state;
static _Atomic int stop_state; /* 0 not asked, 1 stopping, 2 stopped */

static int usage_error(const char *cmd, const char *what) {
  fprintf(stderr, "otpc %s: %s (see otpc help)\n", cmd, what);
  return 2;
}

static int parse_node_args(int argc, char **argv, node_args_t *a) {
  memset(a, 0, sizeof *a);
  for (int i = 0; i < argc; i++) {
    const char *opt = argv[i];
    if (i + 1 >= argc) return usage_error("node", "an option lacks its value");
    const char *val = argv[++i];
    if (strcmp(opt, "--name") == 0) {
      a->name = val;
    } else if (strcmp(opt, "--cookie") == 0) {
      a->cookie = val;
    } else if (strcmp(opt, "--config") == 0) {
      a->config = val;
    } else if (strcmp(opt, "--load") == 0 && a->nloads < MAX_ITEMS) {
      a->loads[a->nloads++] = val;
    } else if (strcmp(opt, "--app") == 0 && a->napps < MAX_ITEMS) {
      a->apps[a->napps++] = val;
    } else {
      fprintf(stderr, "otpc node: unknown option %s\n", opt);
      return 2;
    }
  }
  if (a->name == NULL || strchr(a->name, '@') == NULL)
    return usage_error("node", "--name name@host is required");
  return 0;
}

/* The first process: distribution, modules, applications. */
static void node_boot(void *arg) {
  const node_args_t *a = arg;
  otpc_dist_opts_t d = {.cookie = a->cookie};
  int rc = otpc_dist_start(&d);
  if (rc != 0) {
    fprintf(stderr, "otpc node: distribution: %s\n", otpc_strerror(rc));
    atomic_store(&boot_state, -1);
    return;
  }
  otpc_code_serve_rpc();
  for (size_t i = 0; i < a->nloads; i++) {
    otpc_code_error_t err;
    rc = otpc_code_load(a->loads[i], &err);
    if (rc != 0) {
      fprintf(stderr, "otpc node: --load %s: %s\n", a->loads[i], err.message);
      atomic_store(&boot_state, -1);
      return;
    }
  }
  rc = otpc_app_controller_start();
  for (size_t i = 0; rc == 0 && i < a->napps; i++) {
    otpc_buf_t *info = NULL;
    rc = otpc_app_ensure_all_started(otpc_atom(a->apps[i]), OTPC_PERMANENT,
                                     &info);
    if (rc != 0) {
      char text[512] = "";
      if (info != NULL)
        otpc_term_snprint(text, sizeof text, otpc_buf_term(info));
      fprintf(stderr, "otpc node: --app %s: %s %s\n", a->apps[i],
              otpc_strerror(rc), text);
    }
    otpc_buf_unref(info);
  }
  if (rc != 0) {
    atomic_store(&boot_state, -1);
    return;
  }
  printf("otpc node %s: up (os pid %d, distribution port %u)", a->name,
         (int)getpid(), (unsigned)otpc_dist_port());
  for (size_t i = 0; i < a->napps; i++)
    printf("%s %s", i ? "," : "; apps:", a->apps[i]);
  printf("; stop with SIGTERM or Ctrl-C\n");
  fflush(stdout);
  atomic_store(&boot_state, 1);
}

/* init:stop: the applications in reverse start order. */
static void node_shutdown(void *arg) {
  otpc_app_controller_stop();
  atomic_store(&stop_state, 2);
}

/* Waits for a signal of set for up to ms; returns it, or 0. */
static int wait_signal(const sigset_t *set, long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  int sig = sigtimedwait(set, NULL, &ts);
  return sig > 0 ? sig : 0;
}

static int node_stop(int status) {
  if (otpc_dist_running()) otpc_dist_stop();
  otpc_node_stop();
  return status;
}

int otpc_cmd_node(int argc, char **argv) {
  node_args_t a;
  int rc = parse_node_args(argc, argv, &a);
  if (rc != 0) return rc;
  if (a.config != NULL) {
    otpc_app_config_error_t err;
    if (otpc_app_config_file(a.config, &err) != 0) {
      fprintf(stderr, "otpc node: --config: %s\n", err.message);
      return 1;
    }
  }
  /* SIGTERM and SIGINT are taken by this thread alone, with
   * sigtimedwait: blocked before any thread starts, so all inherit it. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  otpc_node_opts_t o = {.name = a.name, .cookie = a.cookie};
  rc = otpc_node_start(&o);
  if (rc != 0) {
    fprintf(stderr, "otpc node: %s\n", otpc_strerror(rc));
    return 1;
  }
  otpc_pid_t boot;
  if (otpc_spawn(node_boot, &a, NULL, &boot) != 0) return node_stop(1);
  for (;;) {
    int sig = wait_signal(&set, 50);
    if (atomic_load(&boot_state) < 0) return node_stop(1);
    if (otpc_app_halted(NULL)) {
      fprintf(stderr, "otpc node %s: an application ended; halted\n", a.name);
      return node_stop(1);
    }
    if (sig != 0) {
      printf("otpc node %s: %s: stopping the applications\n", a.name,
             sig == SIGTERM ? "SIGTERM" : "SIGINT");
      fflush(stdout);
      break;
    }
  }
  otpc_pid_t stopper;
  atomic_store(&stop_state, 1);
  if (otpc_spawn(node_shutdown, NULL, NULL, &stopper) != 0) return node_stop(1);
  /* Bounded: a stop that hangs (a terminate that never returns) gives
   * up after a minute with status 1; a second signal gives up at once. */
  for (int i = 0; i < 60 * 20 && atomic_load(&stop_state) != 2; i++)
    if (wait_signal(&set, 50) != 0) return node_stop(1);
  int status = atomic_load(&stop_state) == 2 ? 0 : 1;
  printf("otpc node %s: stopped\n", a.name);
  fflush(stdout);
  return node_stop(status);
}

/* ------------------------------------------------------------------------
 * otpc load
 * ------------------------------------------------------------------------ */

typedef struct load_job {
  const char *node;
  char path[PATH_MAX];
  bool purge;
  int status;
} load_job_t;

static void load_remote(void *arg) {
  load_job_t *j = arg;
  otpc_atom_t node = otpc_atom(j->node);
  if (otpc_net_connect(node, 10000) != 1) {
    fprintf(stderr,
            "otpc load: cannot connect to %s (is it running, with "
            "this cookie?)\n",
            j->node);
    j->status = 1;
    return;
  }
  otpc_buf_t *args = j->purge ? otpc_term_fmt("[~s, purge]", j->path)
                              : otpc_term_fmt("[~s]", j->path);
  otpc_buf_t *result = NULL;
  int rc = otpc_rpc_call(node, "otpc_code", "load", otpc_buf_term(args), 60000,
                         &result);
  otpc_buf_unref(args);
  if (rc != 0) {
    fprintf(stderr, "otpc load: rpc: %s\n", otpc_strerror(rc));
    j->status = 1;
    return;
  }
  otpc_term_t r = otpc_buf_term(result);
  if (otpc_term_is_atom(r, OTPC_ATOM_OK)) {
    printf("otpc load: %s loaded on %s\n", j->path, j->node);
    j->status = 0;
  } else {
    /* {error, Why, Text}, or {badrpc, ...} from a node that has no code
     * server for rpc */
    char text[1024] = "";
    otpc_term_t msg = otpc_term_tuple_elem(r, 2);
    const uint8_t *bin;
    size_t len = 0;
    unsigned bits;
    otpc_list_iter_t it;
    otpc_term_t c;
    int ch;
    if (otpc_term_list_iter(msg, &it) == 0) {
      while (otpc_list_next(&it, &c) && len + 1 < sizeof text &&
             otpc_term_get_int(c, &ch) == 0)
        text[len++] = (char)ch;
      text[len] = '\0';
    } else if (otpc_term_get_binary(msg, &bin, &len, &bits) == 0) {
      snprintf(text, sizeof text, "%.*s", (int)len, (const char *)bin);
    } else {
      otpc_term_snprint(text, sizeof text, r);
    }
    fprintf(stderr, "otpc load: %s on %s: %s\n", j->path, j->node, text);
    j->status = 1;
  }
  otpc_buf_unref(result);
}

int otpc_cmd_load(int argc, char **argv) {
  const char *node = NULL, *path = NULL, *cookie = NULL, *name = NULL;
  bool purge = false;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--purge") == 0) {
      purge = true;
    } else if ((strcmp(argv[i], "--cookie") == 0 ||
                strcmp(argv[i], "--name") == 0) &&
               i + 1 < argc) {
      *(argv[i][2] == 'c' ? &cookie : &name) = argv[i + 1];
      i++;
    } else if (argv[i][0] == '-') {
      return usage_error("load", "unknown option");
    } else if (node == NULL) {
      node = argv[i];
    } else if (path == NULL) {
      path = argv[i];
    } else {
      return usage_error("load", "too many arguments");
    }
  }
  if (node == NULL || path == NULL || strchr(node, '@') == NULL)
    return usage_error("load", "usage: otpc load NODE@HOST path/to/module.so");
  static load_job_t job;
  job.node = node;
  job.purge = purge;
  job.status = 1;
  /* The node resolves the path: make it absolute here. */
  if (realpath(path, job.path) == NULL) {
    fprintf(stderr, "otpc load: %s: %s\n", path, strerror(errno));
    return 1;
  }
  char self[300];
  if (name == NULL) {
    snprintf(self, sizeof self, "otpc_load_%d%s", (int)getpid(),
             strchr(node, '@'));
    name = self;
  }
  otpc_node_opts_t o = {.name = name, .cookie = cookie};
  int rc = otpc_node_start(&o);
  otpc_dist_opts_t d = {.cookie = cookie, .hidden = true};
  if (rc == 0) rc = otpc_dist_start(&d);
  if (rc != 0) {
    fprintf(stderr, "otpc load: starting a node: %s\n", otpc_strerror(rc));
    if (otpc_dist_running()) otpc_dist_stop();
    otpc_node_stop();
    return 1;
  }
  otpc_pid_t p;
  if (otpc_spawn(load_remote, &job, NULL, &p) == 0)
    while (otpc_is_alive(p)) {
      struct timespec ts = {0, 5000000};
      nanosleep(&ts, NULL);
    }
  otpc_dist_stop();
  otpc_node_stop();
  return job.status;
}
