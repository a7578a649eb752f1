/*
 * app_counter.c: an application, whole. The counter application has a
 * supervisor with one gen_server, a counter that starts at `start` and
 * goes up by `step`; both come from its environment: the spec's
 * defaults, a sys.config file, and the command line, in that order of
 * precedence. docs/application.md walks through it. Build and run:
 *
 *   cc app_counter.c $(pkg-config --cflags --libs otpc)
 *   ./a.out -config app_counter.config -counter step 5
 *
 * prints "counter: 100 105 110" with the sys.config beside this file.
 */
#include <otpc.h>
#include <otpc/application.h>
#include <otpc/logger.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- the gen_server: counter ------------------------------------------ */

typedef struct counter {
  int64_t next, step;
} counter_t;

/* The application's parameter key, or dflt. */
static int64_t env_int(const char *key, int64_t dflt) {
  otpc_buf_t *v;
  int64_t n = dflt;
  if (otpc_app_get_env(otpc_atom("counter"), otpc_atom(key), &v) == 1) {
    otpc_term_get_int64(otpc_buf_term(v), &n);
    otpc_buf_unref(v);
  }
  return n;
}

static void counter_init(void *arg, void **state, otpc_gs_result_t *r) {
  (void)arg;
  counter_t *c = otpc_palloc(sizeof *c); /* freed with the process */
  if (c == NULL) {
    otpc_gs_stop(r, otpc_term_fmt("enomem"));
    return;
  }
  c->next = env_int("start", 0);
  c->step = env_int("step", 1);
  *state = c;
}

static void counter_call(void **state, otpc_term_t req, const otpc_from_t *from,
                         otpc_gs_result_t *r) {
  (void)from;
  counter_t *c = *state;
  if (otpc_term_atom_eq(req, "next", 4)) {
    otpc_gs_replyf(r, "~l", c->next);
    c->next += c->step;
  } else {
    otpc_gs_replyf(r, "{error, unknown_call}");
  }
}

static const otpc_gen_server_t counter_server = {
    .name = "counter", .init = counter_init, .handle_call = counter_call};

/* ---- the supervisor and the application ------------------------------- */

static otpc_sup_gs_child_t counter_child = {&counter_server, NULL, 0};

static otpc_child_spec_t children[] = {{"counter", otpc_sup_start_gen_server,
                                        &counter_child, OTPC_PERMANENT, 5000,
                                        OTPC_WORKER}};

static const otpc_sup_spec_t counter_sup = {.strategy = OTPC_ONE_FOR_ONE,
                                            .intensity = 3,
                                            .period_ms = 5000,
                                            .children = children,
                                            .nchildren = 1};

/* Module:start(normal, Args): start the top supervisor, linked to the
 * caller (the application master). */
static int counter_start(otpc_app_start_type_t type, void *arg, otpc_pid_t *top,
                         void **state, otpc_buf_t **reason) {
  (void)type;
  (void)arg;
  (void)state;
  counter_child.name = otpc_atom("counter");
  return otpc_supervisor_start(&counter_sup, otpc_atom("counter_sup"), top,
                               reason);
}

static const otpc_app_spec_t counter_app = {
    .name = "counter",
    .description = "A counter that counts by steps",
    .vsn = "1.0.0",
    .env = "[{start, 0}, {step, 1}]",
    .registered = (const char *const[]){"counter_sup", "counter", NULL},
    .start = counter_start};

/* ---- main ------------------------------------------------------------- */

static void boot(void *arg) {
  (void)arg;
  otpc_buf_t *info = NULL, *next = otpc_term_fmt("next"), *reply;
  if (otpc_app_controller_start() != 0 ||
      otpc_app_ensure_all_started(otpc_atom("counter"), OTPC_PERMANENT,
                                  &info) != 0) {
    fprintf(stderr, "counter: could not start: ");
    if (info) otpc_term_fprint(stderr, otpc_buf_term(info));
    fputc('\n', stderr);
    otpc_buf_unref(info);
    otpc_buf_unref(next);
    otpc_app_controller_stop();
    otpc_exit_atom(otpc_atom("start_failed"));
  }
  otpc_buf_unref(info);
  printf("counter:");
  for (int i = 0; i < 3; i++)
    if (otpc_gen_server_call_name(otpc_atom("counter"), next, 5000, &reply) ==
        0) {
      printf(" ");
      otpc_term_fprint(stdout, otpc_buf_term(reply));
      otpc_buf_unref(reply);
    }
  printf("\n");
  otpc_buf_unref(next);
  otpc_app_controller_stop(); /* init:stop(): every application, in reverse */
}

int main(int argc, char **argv) {
  otpc_logger_set_primary_level(OTPC_LEVEL_INFO); /* show progress reports */
  otpc_app_register(&counter_app);
  otpc_app_config_error_t err;
  if (otpc_app_config_args(&argc, argv, &err) != 0) {
    fprintf(stderr, "%s\n", err.message);
    return 2;
  }
  int rc = otpc_main(NULL, boot, NULL);
  return otpc_app_halted(NULL) ? 1 : rc; /* as erl exits 1 after a halt */
}
