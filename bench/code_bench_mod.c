/*
 * code_bench_mod.c: the module code_bench upgrades under load, built twice
 * (CODE_BENCH_VSN 1 and 2) as bench/code_bench_v1.so and _v2.so. Its
 * gen_server replies Request + 1 and counts the calls; the two versions
 * keep the count in different layouts, and code_change converts, so an
 * upgrade does real work on the state, as bench/code_bench.erl's does.
 */
#include <otpc.h>
#include <string.h>

#ifndef CODE_BENCH_VSN
#error define CODE_BENCH_VSN 1 or 2
#endif

typedef struct v1 {
  int64_t calls;
} v1_t;

typedef struct v2 {
  int64_t upgrades;
  int64_t calls;
} v2_t;

#if CODE_BENCH_VSN == 1
typedef v1_t state_t;
#else
typedef v2_t state_t;
#endif

static void init(void *arg, void **state, otpc_gs_result_t *r) {
  state_t *s = otpc_palloc(sizeof *s);
  if (s == NULL) return otpc_gs_stop(r, otpc_term_fmt("enomem"));
  memset(s, 0, sizeof *s);
  *state = s;
}

static void handle_call(void **state, otpc_term_t req, const otpc_from_t *from,
                        otpc_gs_result_t *r) {
  state_t *s = *state;
  int64_t n = 0;
  otpc_term_get_int64(req, &n);
  s->calls++;
  otpc_gs_replyf(r, "~l", (long long)(n + 1));
}

static int code_change(otpc_term_t old_vsn, void **state, otpc_term_t extra) {
  int from = 0;
  otpc_term_get_int(old_vsn, &from);
  if (from == CODE_BENCH_VSN) return 0;
  state_t *s = otpc_palloc(sizeof *s);
  if (s == NULL) return OTPC_ENOMEM;
  memset(s, 0, sizeof *s);
#if CODE_BENCH_VSN == 1
  s->calls = ((v2_t *)*state)->calls;
#else
  s->calls = ((v1_t *)*state)->calls;
  s->upgrades = 1;
#endif
  otpc_pfree(*state);
  *state = s;
  return 0;
}

static const otpc_gen_server_t server = {.name = "code_bench_srv",
                                         .init = init,
                                         .handle_call = handle_call,
                                         .code_change = code_change};

#define STR_(x) #x
#define STR(x) STR_(x)
OTPC_MODULE(.name = "code_bench", .vsn = STR(CODE_BENCH_VSN),
            .gen_servers = (const otpc_gen_server_t *const[]){&server, NULL});
