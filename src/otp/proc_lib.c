/*
 * proc_lib.c: the synchronous start the behaviours share, as Erlang's
 * proc_lib:start_link does it, and reading a call's From.
 *
 * The starter monitors the new process as it spawns it and waits, with a
 * selective receive, for either {ack, Ref, Result} (init returned) or the
 * monitor's DOWN (init died first). If the wait times out the new process
 * is killed, as gen:start's {error, timeout} does.
 */
#include <stdarg.h>

#include "otp_int.h"

/* ------------------------------------------------------------------------
 * The new process's side
 * ------------------------------------------------------------------------ */

void otpc__start_ack(const otpc__start_t *st, const char *fmt, ...) {
  otpc_builder_t b;
  va_list ap;
  otpc_builder_init(&b);
  otpc_build_tuple(&b, 3);
  otpc_build_atom(&b, "ack");
  otpc_build_ref(&b, &st->ack);
  va_start(ap, fmt);
  otpc_build_vfmt(&b, fmt, ap);
  va_end(ap);
  otpc_buf_t *msg = otpc_builder_finish(&b, NULL);
  if (msg != NULL) otpc_send(st->starter, msg);
  otpc_buf_unref(msg);
}

bool otpc__start_register(const otpc__start_t *st) {
  if (st->name == OTPC_ATOM_NONE || otpc_register(st->name, otpc_self()) == 0)
    return true;
  otpc_pid_t other;
  if (otpc_whereis(st->name, &other) == 0)
    otpc__start_ack(st, "{error, {already_started, ~p}}", &other);
  else
    otpc__start_ack(st, "{error, name_taken}");
  return false;
}

/* ------------------------------------------------------------------------
 * The starter's side
 * ------------------------------------------------------------------------ */

typedef struct starting {
  otpc_ref_t ack; /* {ack, Ack, Result} */
  otpc_ref_t mon; /* {'DOWN', Mon, process, _, Reason} */
} starting_t;

static bool ack_or_down(otpc_term_t msg, void *ctx) {
  starting_t *st = ctx;
  size_t arity;
  otpc_term_t e;
  otpc_ref_t ref;
  if (otpc_term_get_tuple(msg, &arity, &e) != 0) return false;
  if (arity == 3 && otpc_term_atom_eq(e, "ack", 3))
    return otpc_term_get_ref(otpc_term_next(e), &ref) == 0 &&
           otpc_ref_eq(&ref, &st->ack);
  if (arity == 5 && otpc_term_is_atom(e, OTPC_ATOM_DOWN))
    return otpc_term_get_ref(otpc_term_next(e), &ref) == 0 &&
           otpc_ref_eq(&ref, &st->mon);
  return false;
}

/* What init's ack says: 0, OTPC_EIGNORED, OTPC_EEXIST (with the holder of
 * the name in *pid) or OTPC_ESTOPPED (with the reason in *reason). */
static int read_ack(otpc_term_t result, otpc_pid_t *pid, otpc_buf_t **reason) {
  if (otpc_term_is_atom(result, OTPC_ATOM_OK)) return 0;
  if (otpc_term_atom_eq(result, "ignore", 6)) return OTPC_EIGNORED;
  otpc_term_t what = otpc_term_tuple_elem(result, 1), first;
  size_t a;
  if (otpc_term_get_tuple(what, &a, &first) == 0 && a == 2 &&
      otpc_term_atom_eq(first, "already_started", 15)) {
    otpc_term_get_pid(otpc_term_next(first), pid);
    return OTPC_EEXIST;
  }
  if (reason) *reason = otpc__term_copy(what);
  return OTPC_ESTOPPED;
}

int otpc__start_handler(const otpc_handler_t *h, void *arg, otpc__start_t *st,
                        const otpc_gs_opts_t *opts, const char *spawn_name,
                        otpc_pid_t *pid, otpc_buf_t **reason) {
  if (reason) *reason = NULL;
  if (otpc__current() == NULL) {
    otpc__free(arg);
    return OTPC_ENOTPROC;
  }
  starting_t w;
  st->starter = otpc_self();
  st->ack = w.ack = otpc_make_ref();
  st->name = opts ? opts->name : OTPC_ATOM_NONE;
  st->link = opts && opts->link;
  otpc_spawn_opts_t so = {.link = st->link, .monitor = true,
                          .monitor_ref = &w.mon,
                          .priority = opts ? opts->priority : OTPC_PRIO_NORMAL,
                          .name = spawn_name};
  otpc_pid_t child;
  int rc = otpc_spawn_handler(h, arg, &so, &child);
  if (rc != 0) {
    otpc__free(arg);
    return rc;
  }
  /* From here on arg (and st in it) belongs to the new process. */
  int64_t timeout = opts && opts->timeout > 0 ? opts->timeout : OTPC_INFINITY;
  otpc_buf_t *got;
  rc = otpc_receive_fn(ack_or_down, &w, timeout, &got);
  otpc_demonitor(&w.mon, OTPC_DEMONITOR_FLUSH);
  if (rc == OTPC_ETIMEDOUT) {
    otpc_buf_t *kill = otpc__atom_buf(OTPC_ATOM_KILL);
    otpc_exit_signal(child, otpc_buf_term(kill));
    otpc_buf_unref(kill);
    return rc;
  }
  if (rc != 0) return rc;
  otpc_term_t msg = otpc_buf_term(got);
  size_t arity;
  otpc_term_t e;
  otpc_term_get_tuple(msg, &arity, &e);
  if (arity == 5) { /* died before acknowledging */
    if (reason) *reason = otpc__term_copy(otpc_term_tuple_elem(msg, 4));
    rc = OTPC_ESTOPPED;
  } else {
    rc = read_ack(otpc_term_tuple_elem(msg, 2), &child, reason);
  }
  otpc_buf_unref(got);
  if (pid && (rc == 0 || rc == OTPC_EEXIST)) *pid = child;
  return rc;
}

/* ------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------ */

const uint8_t *otpc__from_take(otpc_term_t from_term, otpc_from_t *from) {
  size_t arity;
  otpc_term_t pid;
  if (otpc_term_get_tuple(from_term, &arity, &pid) != 0 || arity != 2 ||
      otpc_term_get_pid(pid, &from->pid) != 0)
    return NULL;
  otpc_term_t tag = otpc_term_next(pid);
  size_t n = otpc_term_size(tag);
  if (n == 0 || n > OTPC_FROM_TAG_MAX || tag.p == NULL) return NULL;
  otpc__copy_small(from->tag, tag.p, n);
  from->tag_len = (uint32_t)n;
  return tag.p + n;
}

otpc_buf_t *otpc__term_copy(otpc_term_t t) {
  otpc_builder_t b;
  otpc_builder_init(&b);
  otpc_build_term(&b, t);
  return otpc_builder_finish(&b, NULL);
}
