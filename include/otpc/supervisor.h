/*
 * otpc/supervisor.h: Erlang's supervisor for C. A supervisor is a
 * gen_server that traps exits, is linked to its children and restarts
 * them when they end, by a strategy (one_for_one, one_for_all,
 * rest_for_one, simple_one_for_one) within a restart intensity. When more
 * than `intensity` restarts happen within `period_ms`, it shuts its
 * children down and exits with reason shutdown, so the failure climbs the
 * tree.
 *
 * Children are described by plain C child specs: a start function that
 * starts the child linked to the caller (the supervisor) and returns its
 * pid. otpc_sup_start_gen_server and otpc_sup_start_supervisor are ready
 * made start functions for gen_server and supervisor children.
 *
 * Every API call below is a gen_server call to the supervisor, made from
 * a process. Child ids are strings of 1 to OTPC_SUP_ID_MAX - 1 bytes,
 * copied by the supervisor; the args are plain pointers, kept as they are
 * (they must live as long as the child may be restarted).
 */
#ifndef OTPC_SUPERVISOR_H
#define OTPC_SUPERVISOR_H

#include "otpc/otp.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum otpc_sup_strategy {
  OTPC_ONE_FOR_ONE = 0,       /* restart the child that ended */
  OTPC_ONE_FOR_ALL = 1,       /* stop the others, restart all */
  OTPC_REST_FOR_ONE = 2,      /* stop those started after it, restart them */
  OTPC_SIMPLE_ONE_FOR_ONE = 3 /* one template, children added at run time */
} otpc_sup_strategy_t;

typedef enum otpc_restart {
  OTPC_PERMANENT = 0, /* always restarted */
  OTPC_TRANSIENT = 1, /* restarted unless it ends normal/shutdown */
  OTPC_TEMPORARY = 2  /* never restarted; forgotten when it ends */
} otpc_restart_t;

typedef enum otpc_child_type {
  OTPC_WORKER = 0,
  OTPC_SUPERVISOR = 1
} otpc_child_type_t;

/* Child spec shutdown values; any value > 0 is a timeout in ms. */
#define OTPC_SHUTDOWN_DEFAULT \
  0 /* 5000 for a worker, infinity for a supervisor */
#define OTPC_SHUTDOWN_INFINITY (-1)    /* wait for it as long as it takes */
#define OTPC_SHUTDOWN_BRUTAL_KILL (-2) /* exit(Child, kill) */

#define OTPC_SUP_ID_MAX 64

/* All calls below fail with OTPC_EINVAL for an operation the strategy
 * does not have (start_child on simple_one_for_one, terminate_pid on the
 * others), and with otpc_gen_server_call's errors (OTPC_ENOPROC,
 * OTPC_EEXITED) when the supervisor is gone. */

typedef struct otpc_child_spec {
  const char *id; /* unique among the supervisor's children (copied) */
  /* Starts the child linked to the caller: 0 and *pid; OTPC_EIGNORED to
   * start nothing (the child stays in the list, not running); a negative
   * code for a failure, and then, if it likes, the reason as a term in
   * *reason (handed over; {failed_to_start_child, Id, Reason} and the
   * start_error report show it; without one, the code's name). Runs in
   * the supervisor. */
  int (*start)(void *arg, otpc_pid_t *pid, otpc_buf_t **reason);
  void *arg;
  otpc_restart_t restart;
  int64_t shutdown; /* OTPC_SHUTDOWN_* or ms */
  otpc_child_type_t type;
} otpc_child_spec_t;

typedef struct otpc_sup_spec {
  otpc_sup_strategy_t strategy;
  int intensity;     /* restarts allowed within period (0: none) */
  int64_t period_ms; /* 0: 5000 */
  /* Started in this order at init; for simple_one_for_one exactly one
   * spec, the template (its arg is replaced by start_child's). */
  const otpc_child_spec_t *children;
  size_t nchildren;
} otpc_sup_spec_t;

/*
 * Starts a supervisor linked to the caller (supervisor:start_link), with
 * a registered name if name is not 0, and waits until every child has
 * started. The spec is read during the call only. 0 and *pid;
 * OTPC_EEXIST if the name is taken; OTPC_ESTOPPED if a child failed to
 * start (the reason, {shutdown, {failed_to_start_child, Id, Error}}, in
 * *reason if given; the children already started have been stopped);
 * OTPC_EINVAL for a bad spec. In a process.
 */
OTPC_API int otpc_supervisor_start(const otpc_sup_spec_t *spec,
                                   otpc_atom_t name, otpc_pid_t *pid,
                                   otpc_buf_t **reason);

/* Adds and starts a child (not simple_one_for_one). OTPC_EEXIST if the
 * id is taken; the start function's error if it fails (nothing is kept);
 * OTPC_EIGNORED if it ignored (the spec is kept, not running). *pid is
 * written when a child was started (may be NULL). */
OTPC_API int otpc_supervisor_start_child(otpc_pid_t sup,
                                         const otpc_child_spec_t *spec,
                                         otpc_pid_t *pid);
/* simple_one_for_one: starts a child from the template with arg (NULL:
 * the template's arg), which must outlive the child. Errors as above;
 * a child that ignores is not kept. */
OTPC_API int otpc_supervisor_start_dynamic(otpc_pid_t sup, void *arg,
                                           otpc_pid_t *pid);
/* Stops a child by its shutdown, keeping its spec (a temporary child is
 * forgotten). OTPC_ENOPROC if no child has the id. */
OTPC_API int otpc_supervisor_terminate_child(otpc_pid_t sup, const char *id);
/* simple_one_for_one: stops the dynamic child pid and forgets it. */
OTPC_API int otpc_supervisor_terminate_pid(otpc_pid_t sup, otpc_pid_t pid);
/* Starts a stopped child again. OTPC_EEXIST if it runs; OTPC_ENOPROC if
 * no child has the id; OTPC_EIGNORED if its start ignored. */
OTPC_API int otpc_supervisor_restart_child(otpc_pid_t sup, const char *id,
                                           otpc_pid_t *pid);
/* Forgets a stopped child. OTPC_EEXIST if it runs; OTPC_ENOPROC if no
 * child has the id. */
OTPC_API int otpc_supervisor_delete_child(otpc_pid_t sup, const char *id);

typedef struct otpc_sup_child_info {
  char id[OTPC_SUP_ID_MAX]; /* "" for a dynamic child */
  otpc_pid_t pid;           /* valid if running */
  bool running;
  otpc_child_type_t type;
} otpc_sup_child_info_t;

/* Up to max children into out, in start order; returns how many there
 * are (>= 0) or a negative code. */
OTPC_API int otpc_supervisor_which_children(otpc_pid_t sup,
                                            otpc_sup_child_info_t *out,
                                            size_t max);

typedef struct otpc_sup_counts {
  size_t specs;       /* children known */
  size_t active;      /* running */
  size_t supervisors; /* of type supervisor */
  size_t workers;     /* of type worker */
} otpc_sup_counts_t;

OTPC_API int otpc_supervisor_count_children(otpc_pid_t sup,
                                            otpc_sup_counts_t *counts);

/* A start function for gen_server children: arg is a
 * const otpc_sup_gs_child_t * (which must outlive the child). Starts it
 * linked, registered if name is not 0. */
typedef struct otpc_sup_gs_child {
  const otpc_gen_server_t *cb;
  void *arg;
  otpc_atom_t name;
} otpc_sup_gs_child_t;
OTPC_API int otpc_sup_start_gen_server(void *arg, otpc_pid_t *pid,
                                       otpc_buf_t **reason);
/* A start function for supervisor children: arg is a
 * const otpc_sup_spec_t * (which must outlive the child). */
OTPC_API int otpc_sup_start_supervisor(void *arg, otpc_pid_t *pid,
                                       otpc_buf_t **reason);

#ifdef __cplusplus
}
#endif
#endif /* OTPC_SUPERVISOR_H */
