/*
 * counter_v1.c: version 1 of the test module `counter` (see counter.h):
 * a gen_server counter_server, a gen_statem counter_fsm and an rpc export
 * vsn/0. Its code_change turns version 2's state back into its own.
 */
#include "counter.h"

static void srv_init(void *arg, void **state, otpc_gs_result_t *r) {
  counter_v1_t *s = pzalloc(sizeof *s);
  if (s == NULL) otpc_gs_stop(r, otpc_term_fmt("enomem"));
  *state = s;
}

static void srv_call(void **state, otpc_term_t req, const otpc_from_t *from,
                     otpc_gs_result_t *r) {
  counter_v1_t *s = *state;
  if (otpc_term_atom_eq(otpc_term_tuple_elem(req, 0), "incr", 4)) {
    int c = counter_client(req);
    if (c < 0) return otpc_gs_replyf(r, "badarg");
    s->total++;
    s->per_client[c]++;
    otpc_gs_replyf(r, "{~l, ~l, 1}", (long long)s->total,
                   (long long)s->per_client[c]);
  } else if (otpc_term_atom_eq(otpc_term_tuple_elem(req, 0), "client", 6)) {
    int c = counter_client(req);
    otpc_gs_replyf(r, "~l", c < 0 ? -1LL : (long long)s->per_client[c]);
  } else if (otpc_term_atom_eq(req, "get", 3)) {
    otpc_gs_replyf(r, "{~l, ~l, 1, 0}", (long long)s->total,
                   (long long)s->casts);
  } else {
    otpc_gs_replyf(r, "{error, unknown}");
  }
}

static void srv_cast(void **state, otpc_term_t msg, otpc_gs_result_t *r) {
  counter_v1_t *s = *state;
  if (otpc_term_atom_eq(otpc_term_tuple_elem(msg, 0), "note", 4)) s->casts++;
}

static void srv_terminate(void **state, otpc_term_t reason) {
  otpc_pfree(*state);
}

/* From version 2: its fields back into version 1's layout. */
static int srv_code_change(otpc_term_t old_vsn, void **state,
                           otpc_term_t extra) {
  int from = 0;
  otpc_term_get_int(old_vsn, &from);
  if (from == 1) return 0; /* sys:change_code on the same version */
  counter_v2_t *o = *state;
  if (from != 2 || o->magic != COUNTER_V2_MAGIC) return OTPC_EINVAL;
  counter_v1_t *s = pzalloc(sizeof *s);
  if (s == NULL) return OTPC_ENOMEM;
  s->total = o->total;
  s->casts = o->casts;
  for (size_t i = 0; i < o->nclients && i < COUNTER_CLIENTS; i++)
    s->per_client[i] = o->per_client[i];
  otpc_pfree(o->per_client);
  otpc_pfree(o);
  *state = s;
  return 0;
}

static const otpc_gen_server_t server = {.name = "counter_server",
                                         .init = srv_init,
                                         .handle_call = srv_call,
                                         .handle_cast = srv_cast,
                                         .terminate = srv_terminate,
                                         .code_change = srv_code_change};

/* counter_fsm: off <-> on; toggle replies {NewState, Toggles, Vsn}. */
static void fsm_init(void *arg, void **data, otpc_sm_result_t *r) {
  *data = pzalloc(sizeof(fsm_v1_t));
  otpc_sm_next_state(r, "off");
}

static void fsm_toggle(const otpc_sm_event_t *ev, void **data,
                       otpc_sm_result_t *r, const char *next) {
  fsm_v1_t *d = *data;
  if (ev->type != OTPC_SM_CALL) return;
  d->toggles++;
  otpc_sm_next_state(r, next);
  otpc_sm_replyf(r, ev->from, "{~a, ~l, 1}", next, (long long)d->toggles);
}

static void fsm_off(const otpc_sm_event_t *ev, void **data,
                    otpc_sm_result_t *r) {
  fsm_toggle(ev, data, r, "on");
}

static void fsm_on(const otpc_sm_event_t *ev, void **data,
                   otpc_sm_result_t *r) {
  fsm_toggle(ev, data, r, "off");
}

static void fsm_terminate(otpc_term_t reason, otpc_term_t state, void **data) {
  otpc_pfree(*data);
}

static int fsm_code_change(otpc_term_t old_vsn, otpc_buf_t **state, void **data,
                           otpc_term_t extra) {
  int from = 0;
  otpc_term_get_int(old_vsn, &from);
  if (from == 1) return 0;
  fsm_v2_t *o = *data;
  if (from != 2 || o->magic != COUNTER_V2_MAGIC) return OTPC_EINVAL;
  fsm_v1_t *d = pzalloc(sizeof *d);
  if (d == NULL) return OTPC_ENOMEM;
  d->toggles = o->toggles;
  otpc_pfree(o);
  *data = d;
  return 0;
}

static const otpc_sm_state_t fsm_states[] = {{"off", fsm_off}, {"on", fsm_on}};

static const otpc_gen_statem_t fsm = {.name = "counter_fsm",
                                      .init = fsm_init,
                                      .states = fsm_states,
                                      .nstates = 2,
                                      .terminate = fsm_terminate,
                                      .code_change = fsm_code_change};

static otpc_buf_t *rpc_vsn(otpc_term_t args, otpc_buf_t **reason) {
  return otpc_term_fmt("1");
}

static const otpc_module_export_t exports[] = {{"vsn", rpc_vsn}, {NULL, NULL}};

OTPC_MODULE(.name = "counter", .vsn = "1",
            .gen_servers = (const otpc_gen_server_t *const[]){&server, NULL},
            .gen_statems = (const otpc_gen_statem_t *const[]){&fsm, NULL},
            .exports = exports);
