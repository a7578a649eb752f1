/*
 * hot_counter_v1.c: version 1 of the example module hot_counter, an
 * application built as a shared object for `otpc node`:
 *
 *   hot_counter          the application; environment start, step,
 *    |                   tick_ms (hot_counter.config sets them)
 *    '- hot_counter_sup  one_for_one supervisor
 *        '- hot_counter  gen_server: adds step to its value every tick_ms
 *                        and prints it; `value` calls get {Value, Vsn}
 *
 * Build: cc -shared -fPIC -o hot_counter.so hot_counter_v1.c (CMake does
 * it). Run: otpc node --name demo@localhost --config hot_counter.config
 * --load hot_counter.so --app hot_counter. Upgrade it while it runs:
 * otpc load demo@localhost hot_counter_v2.so. docs/code.md explains.
 */
#include "hot_counter.h"

static void init(void *arg, void **state, otpc_gs_result_t *r) {
  hc_v1_t *s = otpc_palloc(sizeof *s);
  if (s == NULL) return otpc_gs_stop(r, otpc_term_fmt("enomem"));
  s->value = hc_env("start", 0);
  s->step = hc_env("step", 1);
  s->tick_ms = hc_env("tick_ms", 1000);
  *state = s;
  hc_tick_later(s->tick_ms);
}

static void handle_info(void **state, otpc_term_t msg, otpc_gs_result_t *r) {
  hc_v1_t *s = *state;
  if (!otpc_term_atom_eq(msg, "tick", 4)) return;
  s->value += s->step;
  printf("hot_counter vsn 1: value %lld\n", (long long)s->value);
  fflush(stdout);
  hc_tick_later(s->tick_ms);
}

static void handle_call(void **state, otpc_term_t req, const otpc_from_t *from,
                        otpc_gs_result_t *r) {
  hc_v1_t *s = *state;
  otpc_gs_replyf(r, "{~l, 1}", (long long)s->value);
}

static void terminate(void **state, otpc_term_t reason) {
  otpc_pfree(*state);
}

/* Back from version 2 (a downgrade, or version 1 loaded again): drop
 * what version 1 does not keep. */
static int code_change(otpc_term_t old_vsn, void **state, otpc_term_t extra) {
  int from = 0;
  otpc_term_get_int(old_vsn, &from);
  if (from != 2) return 0; /* the same layout */
  hc_v2_t *o = *state;
  hc_v1_t *s = otpc_palloc(sizeof *s);
  if (s == NULL) return OTPC_ENOMEM;
  s->value = o->value;
  s->step = o->step;
  s->tick_ms = o->tick_ms;
  otpc_pfree(o);
  *state = s;
  printf("hot_counter: now vsn 1, value %lld carried over\n",
         (long long)s->value);
  fflush(stdout);
  return 0;
}

static const otpc_gen_server_t server = {.name = "hot_counter",
                                         .init = init,
                                         .handle_call = handle_call,
                                         .handle_info = handle_info,
                                         .terminate = terminate,
                                         .code_change = code_change};

static const otpc_app_spec_t app = {
    .name = "hot_counter",
    .description = "a counter that is upgraded while it runs",
    .vsn = "1",
    .env = "[{start, 0}, {step, 1}, {tick_ms, 1000}]",
    .start = hc_app_start};

static const otpc_module_export_t exports[] = {{"value", hc_rpc_value},
                                               {NULL, NULL}};

OTPC_MODULE(.name = "hot_counter", .vsn = "1",
            .gen_servers = (const otpc_gen_server_t *const[]){&server, NULL},
            .apps = (const otpc_app_spec_t *const[]){&app, NULL},
            .exports = exports);
