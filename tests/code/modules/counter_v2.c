/*
 * counter_v2.c: version 2 of the test module `counter` (see counter.h).
 * Same behaviours as version 1, a new state layout, and replies that say
 * vsn 2; its code_change turns version 1's state into its own and counts
 * the upgrades it has been through.
 *
 * Built a second time with COUNTER_REFUSE as counter_v3.so: vsn 3, whose
 * code_change refuses version 1's state, so a server stays on version 1.
 */
#include "counter.h"

static counter_v2_t *state_new(size_t nclients) {
  counter_v2_t *s = pzalloc(sizeof *s);
  if (s == NULL) return NULL;
  s->per_client = pzalloc(nclients * sizeof *s->per_client);
  if (s->per_client == NULL) {
    otpc_pfree(s);
    return NULL;
  }
  s->magic = COUNTER_V2_MAGIC;
  s->nclients = nclients;
  return s;
}

static void srv_init(void *arg, void **state, otpc_gs_result_t *r) {
  *state = state_new(COUNTER_CLIENTS);
  if (*state == NULL) otpc_gs_stop(r, otpc_term_fmt("enomem"));
}

static void srv_call(void **state, otpc_term_t req, const otpc_from_t *from,
                     otpc_gs_result_t *r) {
  counter_v2_t *s = *state;
  if (otpc_term_atom_eq(otpc_term_tuple_elem(req, 0), "incr", 4)) {
    int c = counter_client(req);
    if (c < 0 || (size_t)c >= s->nclients) return otpc_gs_replyf(r, "badarg");
    s->total++;
    s->per_client[c]++;
    otpc_gs_replyf(r, "{~l, ~l, 2}", (long long)s->total,
                   (long long)s->per_client[c]);
  } else if (otpc_term_atom_eq(otpc_term_tuple_elem(req, 0), "client", 6)) {
    int c = counter_client(req);
    otpc_gs_replyf(r, "~l", c < 0 ? -1LL : (long long)s->per_client[c]);
  } else if (otpc_term_atom_eq(req, "get", 3)) {
    otpc_gs_replyf(r, "{~l, ~l, 2, ~l}", (long long)s->total,
                   (long long)s->casts, (long long)s->upgrades);
  } else {
    otpc_gs_replyf(r, "{error, unknown}");
  }
}

static void srv_cast(void **state, otpc_term_t msg, otpc_gs_result_t *r) {
  counter_v2_t *s = *state;
  if (otpc_term_atom_eq(otpc_term_tuple_elem(msg, 0), "note", 4)) s->casts++;
}

static void srv_terminate(void **state, otpc_term_t reason) {
  counter_v2_t *s = *state;
  if (s != NULL) otpc_pfree(s->per_client);
  otpc_pfree(s);
}

/* From version 1: its fields into version 2's layout. */
static int srv_code_change(otpc_term_t old_vsn, void **state,
                           otpc_term_t extra) {
  int from = 0;
  otpc_term_get_int(old_vsn, &from);
  if (from == 2) return 0; /* sys:change_code on the same version */
  if (from != 1) return OTPC_EINVAL;
#ifdef COUNTER_REFUSE
  return OTPC_EINVAL;
#endif
  counter_v1_t *o = *state;
  counter_v2_t *s = state_new(COUNTER_CLIENTS);
  if (s == NULL) return OTPC_ENOMEM;
  s->total = o->total;
  s->casts = o->casts;
  memcpy(s->per_client, o->per_client, sizeof o->per_client);
  s->upgrades = 1;
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

static void fsm_init(void *arg, void **data, otpc_sm_result_t *r) {
  fsm_v2_t *d = pzalloc(sizeof *d);
  if (d != NULL) d->magic = COUNTER_V2_MAGIC;
  *data = d;
  otpc_sm_next_state(r, "off");
}

static void fsm_toggle(const otpc_sm_event_t *ev, void **data,
                       otpc_sm_result_t *r, const char *next) {
  fsm_v2_t *d = *data;
  if (ev->type != OTPC_SM_CALL) return;
  d->toggles++;
  otpc_sm_next_state(r, next);
  otpc_sm_replyf(r, ev->from, "{~a, ~l, 2}", next, (long long)d->toggles);
}

/* Version 2 lists its states the other way round: the machine must find
 * its state by name in the new table, not by the old index. */
static void fsm_on(const otpc_sm_event_t *ev, void **data,
                   otpc_sm_result_t *r) {
  fsm_toggle(ev, data, r, "off");
}

static void fsm_off(const otpc_sm_event_t *ev, void **data,
                    otpc_sm_result_t *r) {
  fsm_toggle(ev, data, r, "on");
}

static void fsm_terminate(otpc_term_t reason, otpc_term_t state, void **data) {
  otpc_pfree(*data);
}

static int fsm_code_change(otpc_term_t old_vsn, otpc_buf_t **state, void **data,
                           otpc_term_t extra) {
  int from = 0;
  otpc_term_get_int(old_vsn, &from);
  if (from == 2) return 0;
  if (from != 1) return OTPC_EINVAL;
  fsm_v1_t *o = *data;
  fsm_v2_t *d = pzalloc(sizeof *d);
  if (d == NULL) return OTPC_ENOMEM;
  d->magic = COUNTER_V2_MAGIC;
  d->toggles = o->toggles;
  d->upgrades = 1;
  otpc_pfree(o);
  *data = d;
  return 0;
}

static const otpc_sm_state_t fsm_states[] = {{"on", fsm_on}, {"off", fsm_off}};

static const otpc_gen_statem_t fsm = {.name = "counter_fsm",
                                      .init = fsm_init,
                                      .states = fsm_states,
                                      .nstates = 2,
                                      .terminate = fsm_terminate,
                                      .code_change = fsm_code_change};

static otpc_buf_t *rpc_vsn(otpc_term_t args, otpc_buf_t **reason) {
  return otpc_term_fmt("2");
}

static const otpc_module_export_t exports[] = {{"vsn", rpc_vsn}, {NULL, NULL}};

#ifdef COUNTER_REFUSE
#define COUNTER_VSN "3"
#else
#define COUNTER_VSN "2"
#endif
OTPC_MODULE(.name = "counter", .vsn = COUNTER_VSN,
            .gen_servers = (const otpc_gen_server_t *const[]){&server, NULL},
            .gen_statems = (const otpc_gen_statem_t *const[]){&fsm, NULL},
            .exports = exports);
