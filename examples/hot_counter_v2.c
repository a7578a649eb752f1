/*
 * hot_counter_v2.c: version 2 of the example module hot_counter (see
 * hot_counter_v1.c). Its state also counts the ticks since it took over
 * and remembers the value it took over at; code_change builds that state
 * from version 1's, so the value goes on where version 1 left it.
 */
#include "hot_counter.h"

static void init(void *arg, void **state, otpc_gs_result_t *r) {
  hc_v2_t *s = hc_zalloc(sizeof *s);
  if (s == NULL) return otpc_gs_stop(r, otpc_term_fmt("enomem"));
  s->value = hc_env("start", 0);
  s->step = hc_env("step", 1);
  s->tick_ms = hc_env("tick_ms", 1000);
  *state = s;
  hc_tick_later(s->tick_ms);
}

static void handle_info(void **state, otpc_term_t msg, otpc_gs_result_t *r) {
  hc_v2_t *s = *state;
  if (!otpc_term_atom_eq(msg, "tick", 4)) return;
  s->value += s->step;
  s->ticks++;
  printf(
      "hot_counter vsn 2: value %lld (tick %lld since vsn 2 took over at "
      "%lld)\n",
      (long long)s->value, (long long)s->ticks, (long long)s->upgraded_at);
  fflush(stdout);
  hc_tick_later(s->tick_ms);
}

static void handle_call(void **state, otpc_term_t req, const otpc_from_t *from,
                        otpc_gs_result_t *r) {
  hc_v2_t *s = *state;
  otpc_gs_replyf(r, "{~l, 2}", (long long)s->value);
}

static void terminate(void **state, otpc_term_t reason) {
  otpc_pfree(*state);
}

/* From version 1: the same value, step and tick, and the new fields. */
static int code_change(otpc_term_t old_vsn, void **state, otpc_term_t extra) {
  int from = 0;
  otpc_term_get_int(old_vsn, &from);
  if (from != 1) return 0; /* the same layout */
  hc_v1_t *o = *state;
  hc_v2_t *s = hc_zalloc(sizeof *s);
  if (s == NULL) return OTPC_ENOMEM; /* the server stays on version 1 */
  s->value = o->value;
  s->step = o->step;
  s->tick_ms = o->tick_ms;
  s->upgraded_at = o->value;
  otpc_pfree(o);
  *state = s;
  printf("hot_counter: now vsn 2, value %lld carried over\n",
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
    .vsn = "2",
    .env = "[{start, 0}, {step, 1}, {tick_ms, 1000}]",
    .start = hc_app_start};

static const otpc_module_export_t exports[] = {{"value", hc_rpc_value},
                                               {NULL, NULL}};

OTPC_MODULE(.name = "hot_counter", .vsn = "2",
            .gen_servers = (const otpc_gen_server_t *const[]){&server, NULL},
            .apps = (const otpc_app_spec_t *const[]){&app, NULL},
            .exports = exports);
