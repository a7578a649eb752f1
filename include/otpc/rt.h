/*
 * otpc/rt.h: the process runtime. Schedulers, lightweight processes,
 * mailboxes, links, monitors, timers, names, waiting on descriptors and
 * dirty work. Semantics are Erlang's; where Erlang documents a behaviour,
 * that is the specification.
 *
 * A node is one per OS process: otpc_node_start() starts the schedulers,
 * otpc_node_stop() ends every process and joins them. otpc_main() does
 * both around a first process.
 *
 * Two kinds of process, one mechanism underneath:
 *
 *   - sequential: a C function, otpc_spawn(fn, arg, ...), that may block
 *     anywhere (receive, call, sleep). Its stack frames live while it lives.
 *   - handler: callbacks run once per message, otpc_spawn_handler(...).
 *     Between messages it holds no stack at all, which is how ten million
 *     of them fit in a few GiB.
 *
 * Functions documented "in a process" must be called from process code
 * (a sequential function or a handler callback); elsewhere they return
 * OTPC_ENOTPROC. The others may be called from any thread.
 */
#ifndef OTPC_RT_H
#define OTPC_RT_H

#include <stdbool.h>
#include <stdint.h>

#include "otpc/base.h"
#include "otpc/term.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * The node
 * ------------------------------------------------------------------------ */

typedef struct otpc_node_opts {
  const char *name;          /* node name; NULL: nonode@nohost */
  unsigned schedulers;       /* 0: one per online core */
  unsigned dirty_threads;    /* 0: as many as schedulers */
  size_t max_processes;      /* 0: OTPC_DEFAULT_MAX_PROCESSES */
  size_t stack_size;         /* bytes a process may use; 0: 1 MiB */
  const char *cookie;        /* for distribution (later); may be NULL */
  /* Every process starts with otpc_contain_signals(true): SIGSEGV,
   * SIGBUS, SIGFPE and SIGILL raised in its code end it, not the node
   * (see docs/faults.md). A stack overflow ends only the process always. */
  bool contain_signals;
} otpc_node_opts_t;

#define OTPC_DEFAULT_MAX_PROCESSES ((size_t)1 << 22)
#define OTPC_MAX_MAX_PROCESSES ((size_t)1 << 27)

/* Starts the node: schedulers, timers, the I/O poller. opts may be NULL.
 * OTPC_ESTATE if a node is running already. */
OTPC_API int otpc_node_start(const otpc_node_opts_t *opts);
/* Ends every process (reason 'shutdown', as a kill), stops the threads and
 * frees the runtime. Not from process code. */
OTPC_API int otpc_node_stop(void);
/* Blocks the calling thread (not a process) until no process is left, or
 * the timeout passes (ms; < 0 waits forever). 0, or OTPC_ETIMEDOUT. */
OTPC_API int otpc_node_wait(int64_t timeout_ms);
/* Starts a node, runs fn(arg) as its first process, waits until every
 * process has ended, stops the node. Returns 0 if fn's process ended
 * normally, 1 otherwise: a complete main() in one call. */
OTPC_API int otpc_main(const otpc_node_opts_t *opts, void (*fn)(void *),
                       void *arg);
/* The node's name atom ('nonode@nohost' if none was given). */
OTPC_API otpc_atom_t otpc_node_name(void);

/* ------------------------------------------------------------------------
 * heart: the node's side of the `otpc heart` watchdog (docs/heart.md)
 *
 * A program started by `otpc heart -- PROGRAM` finds a beat channel in its
 * environment (OTPC_HEART_FD). While a node runs, it beats on it, but only
 * when its schedulers prove alive: each beat is sent once a probe process
 * spawned after the previous beat has run, so a node whose schedulers are
 * stuck (a process that never yields holds one) stops beating and the
 * watchdog kills it and runs its restart command. otpc_node_stop
 * tells the watchdog that the exit to come is clean. Without the variable
 * nothing here does anything, and the functions below return OTPC_ENOPROC,
 * as Erlang's heart:set_cmd/1 fails with noproc when heart is not running.
 * ------------------------------------------------------------------------ */

/* The longest restart command, in bytes. */
#define OTPC_HEART_MAX_CMD 2047

/* Whether this program runs under a heart watchdog (the channel was found
 * and checked). May be called from any thread, with or without a node. */
OTPC_API bool otpc_heart_enabled(void);
/* heart:set_cmd/1: a temporary restart command, used instead of the
 * watchdog's own (--cmd, HEART_COMMAND) if the node fails from now on.
 * An empty cmd is clear_cmd. OTPC_EINVAL if longer than
 * OTPC_HEART_MAX_CMD; OTPC_EIO or OTPC_ETIMEDOUT if the watchdog does not
 * answer. Waits for the watchdog's answer; a process waits through the
 * runtime (as otpc_wait_fd), so no scheduler blocks. */
OTPC_API int otpc_heart_set_cmd(const char *cmd);
/* heart:clear_cmd/0: drops the temporary command; the watchdog's own is
 * used again. */
OTPC_API int otpc_heart_clear_cmd(void);
/* heart:get_cmd/0: copies the temporary command ("" if none is set) into
 * buf, NUL-terminated and cut to size - 1 bytes, and returns its full
 * length, as snprintf does. */
OTPC_API int otpc_heart_get_cmd(char *buf, size_t size);
/* heart:set_callback/2: check(arg) runs in the probe process before each
 * beat, and the beat is sent only if it returns true; false, an exit, or a
 * check that does not return within the timeout all count as a hung node.
 * It may call servers (it runs in a process), but runs once per beat
 * interval, so keep it short. NULL removes it (heart:remove_callback/0).
 * OTPC_ENOPROC when not run under a watchdog. */
OTPC_API int otpc_heart_set_check(bool (*check)(void *arg), void *arg);

/* ------------------------------------------------------------------------
 * Spawning
 * ------------------------------------------------------------------------ */

typedef enum otpc_priority {
  OTPC_PRIO_NORMAL = 0, /* the default: zeroed options mean normal */
  OTPC_PRIO_LOW = 1,
  OTPC_PRIO_HIGH = 2,
  OTPC_PRIO_MAX = 3
} otpc_priority_t;

typedef struct otpc_spawn_opts {
  bool link;                /* link to the caller (spawn_link) */
  bool monitor;             /* monitor it; the ref goes to *monitor_ref */
  otpc_ref_t *monitor_ref;
  otpc_priority_t priority;
  const char *name;         /* shown by process info as the current function */
  bool contain_signals;     /* starts with otpc_contain_signals(true) */
} otpc_spawn_opts_t;

/* A sequential process running fn(arg). The argument is a plain pointer:
 * what it points to is shared with the caller, so hand over ownership (or
 * pass a term buffer) rather than sharing mutable memory. */
OTPC_API int otpc_spawn(void (*fn)(void *), void *arg,
                        const otpc_spawn_opts_t *opts, otpc_pid_t *pid);

/* What a handler callback asks for next. */
enum {
  OTPC_CONTINUE = 0, /* wait for the next message */
  OTPC_STOP = 1      /* exit with reason normal */
};

/*
 * A handler process: init(arg, &state) runs first, in the new process
 * (may be NULL); then handle(state, msg) once per message, in order;
 * terminate(state, reason) when it ends however it ends (may be NULL).
 * A callback returns OTPC_CONTINUE or OTPC_STOP (exit normal), or calls
 * otpc_exit() to end with a reason; init may also return a negative code,
 * which ends the process with reason init_failed. msg is valid during the
 * call; keep it with otpc_buf_ref() if needed.
 */
typedef struct otpc_handler {
  int (*init)(void *arg, void **state);
  int (*handle)(void *state, otpc_buf_t *msg);
  void (*terminate)(void *state, otpc_term_t reason);
} otpc_handler_t;

OTPC_API int otpc_spawn_handler(const otpc_handler_t *h, void *arg,
                                const otpc_spawn_opts_t *opts,
                                otpc_pid_t *pid);

/* The calling process's pid; in a process. */
OTPC_API otpc_pid_t otpc_self(void);
OTPC_API bool otpc_pid_eq(otpc_pid_t a, otpc_pid_t b);
/* Whether a local process with this pid is alive. */
OTPC_API bool otpc_is_alive(otpc_pid_t pid);

/* ------------------------------------------------------------------------
 * Messages
 * ------------------------------------------------------------------------ */

/* Sends msg (a reference is taken: the caller keeps its own). Sending to a
 * dead process is not an error, as in Erlang. May be called from any
 * thread; from outside a process the sender is 'undefined'. */
OTPC_API int otpc_send(otpc_pid_t to, otpc_buf_t *msg);
/* Sends to a registered name; OTPC_ENONAME (badarg) if nobody has it. */
OTPC_API int otpc_send_name(otpc_atom_t name, otpc_buf_t *msg);
/* Sends msg to a process alias (Erlang's Alias ! Msg, OTP 24 and later):
 * one made by otpc_alias() or otpc_monitor_opts() here, or one of another
 * node (such as the [alias | Alias] tag of a gen_server call from an
 * Erlang node), which goes over distribution (ALIAS_SEND). A message to
 * an alias that is not active when its owner takes it in, or whose owner
 * is dead, is dropped without a word, as in Erlang; so is one to a
 * reference that was never an alias. Never an error for those. May be
 * called from any thread. */
OTPC_API int otpc_send_alias(const otpc_ref_t *alias, otpc_buf_t *msg);
/* Builds a message from a format (see otpc_build_fmt) and sends it. */
OTPC_API int otpc_sendf(otpc_pid_t to, const char *fmt, ...);

#define OTPC_INFINITY (-1)

/*
 * Selective receive, in a process. Takes the first message in the mailbox
 * that matches pattern (NULL: any message), binds its holes (see
 * otpc_match) and hands the message over in *msg (the caller unrefs it).
 * Messages that do not match stay, in order. Waits at most timeout_ms
 * (0: only looks; OTPC_INFINITY: forever); OTPC_ETIMEDOUT if nothing came.
 */
OTPC_API int otpc_receive(const otpc_pattern_t *pattern, int64_t timeout_ms,
                          otpc_buf_t **msg, ...);
/* Several patterns at once: *which gets the index of the one matched. */
OTPC_API int otpc_receive_any(const otpc_pattern_t *const *patterns,
                              size_t n, int64_t timeout_ms, size_t *which,
                              otpc_buf_t **msg);
/* Selective receive by predicate: takes the first message for which
 * accept(msg, ctx) returns true. For what a pattern cannot say (a field
 * equal to a value known only at run time, such as a call's reference). */
OTPC_API int otpc_receive_fn(bool (*accept)(otpc_term_t msg, void *ctx),
                             void *ctx, int64_t timeout_ms, otpc_buf_t **msg);
/* Sleeps (receive after ms -> ok end); in a process. */
OTPC_API int otpc_sleep(int64_t ms);
/* Lets other processes run; in a process. Long C loops should call it. */
OTPC_API void otpc_yield(void);

/* ------------------------------------------------------------------------
 * Links, monitors, exits
 * ------------------------------------------------------------------------ */

OTPC_API int otpc_link(otpc_pid_t pid);
OTPC_API int otpc_unlink(otpc_pid_t pid);
/* process_flag(priority, P): sets the calling process's priority and
 * returns the old one. Max runs before high before normal; low runs with
 * normal but less often. In a process. */
OTPC_API int otpc_set_priority(otpc_priority_t prio);
/* Sets trap_exit; returns the old value (0 or 1). In a process. */
OTPC_API int otpc_trap_exit(bool on);

/* Monitors pid; DOWN arrives as {'DOWN', Ref, process, Pid, Reason}. */
OTPC_API int otpc_monitor(otpc_pid_t pid, otpc_ref_t *ref);
/* Monitors with options (monitor/3). .alias makes the monitor's
 * reference an alias of the caller too (see otpc_alias), deactivated:
 *   OTPC_MONITOR_ALIAS_EXPLICIT_UNALIAS  only by otpc_unalias;
 *   OTPC_MONITOR_ALIAS_DEMONITOR         also when the monitor goes
 *                                        (otpc_demonitor, or its DOWN);
 *   OTPC_MONITOR_ALIAS_REPLY_DEMONITOR   also when a message sent to the
 *                                        alias is taken in, which removes
 *                                        the monitor as well.
 * opts may be NULL (a plain monitor). In a process. */
typedef enum otpc_monitor_alias {
  OTPC_MONITOR_NO_ALIAS = 0,
  OTPC_MONITOR_ALIAS_EXPLICIT_UNALIAS,
  OTPC_MONITOR_ALIAS_DEMONITOR,
  OTPC_MONITOR_ALIAS_REPLY_DEMONITOR
} otpc_monitor_alias_t;
typedef struct otpc_monitor_opts {
  otpc_monitor_alias_t alias;
} otpc_monitor_opts_t;
OTPC_API int otpc_monitor_opts(otpc_pid_t pid, const otpc_monitor_opts_t *opts,
                               otpc_ref_t *ref);
/* Monitors whoever has the name now; DOWN names {Name, Node}. */
OTPC_API int otpc_monitor_name(otpc_atom_t name, otpc_ref_t *ref);
/* Removes a monitor; with flush, also a DOWN already received. */
#define OTPC_DEMONITOR_FLUSH 1
OTPC_API int otpc_demonitor(const otpc_ref_t *ref, int flags);

/* exit(Pid, Reason): sends an exit signal. */
OTPC_API int otpc_exit_signal(otpc_pid_t pid, otpc_term_t reason);
/* exit(Reason): ends the calling process; never returns. In a process. */
OTPC_API _Noreturn void otpc_exit(otpc_term_t reason);
/* exit(Atom), the common case. */
OTPC_API _Noreturn void otpc_exit_atom(otpc_atom_t reason);

/* ------------------------------------------------------------------------
 * Faults (docs/faults.md)
 *
 * A stack overflow in a process ends that process with reason
 * stack_overflow; its links and monitors fire and the node goes on.
 * Always, for every process.
 *
 * With signals contained, SIGSEGV, SIGBUS, SIGFPE and SIGILL raised by
 * the process's own code end it with reason {signal, Name, Addr}: Name is
 * sigsegv, sigbus, sigfpe or sigill, Addr the faulting address as an
 * integer (the data address for sigsegv and sigbus, the instruction's for
 * sigfpe and sigill, as the kernel reports it in si_addr). A fault in the
 * runtime while it holds a lock, in a thread that is not a scheduler
 * (dirty work, your own threads), or in a process that does not contain
 * signals has the default effect: the OS process dies with a core dump.
 * Containment cannot undo what the faulting code did before the fault:
 * read docs/faults.md before relying on it.
 * ------------------------------------------------------------------------ */

/* Sets whether signals raised in the calling process's code end it (a
 * process flag, as process_flag/2; the default comes from the spawn and
 * node options). Returns the old value (0 or 1). In a process. */
OTPC_API int otpc_contain_signals(bool on);

/* otpc_assert(expr): if expr is false, ends the calling process with
 * reason {assert, File, Line, Expr} (File and Expr binaries, Line an
 * integer), which crash reports show. Always checked: NDEBUG does not
 * remove it. Outside a process it prints the same and aborts, as
 * assert() does. */
#define otpc_assert(expr)                                                     \
  ((expr) ? (void)0 : otpc_assert_fail(__FILE__, __LINE__, #expr))
/* otpc_fail(fmt, ...): ends the calling process with reason
 * {fail, File, Line, Text}, Text the printf-formatted message (a binary). */
#define otpc_fail(...) otpc_fail_at(__FILE__, __LINE__, __VA_ARGS__)

OTPC_API _Noreturn void otpc_assert_fail(const char *file, int line,
                                         const char *expr);
#if defined(__GNUC__)
#define OTPC_FAIL_PRINTF_ __attribute__((format(printf, 3, 4)))
#else
#define OTPC_FAIL_PRINTF_
#endif
OTPC_API _Noreturn void otpc_fail_at(const char *file, int line,
                                     const char *fmt, ...) OTPC_FAIL_PRINTF_;

/* ------------------------------------------------------------------------
 * Aliases (erlang:alias/1, unalias/1; OTP 24 and later)
 *
 * An alias is a reference that names the process that made it: a message
 * sent to it (otpc_send_alias, or Alias ! Msg from an Erlang node) lands
 * in that process's mailbox while the alias is active, and is dropped
 * once it is not. Whether it is active is checked when the owner takes
 * the message in, so a message sent before otpc_unalias but arriving
 * after it is dropped too. Aliases end with their process. A reply to a
 * call that timed out never lands, which is what gen_server calls use
 * them for. Sending costs what a send to a pid costs; finding the alias
 * at the owner is a hash lookup.
 * ------------------------------------------------------------------------ */

#define OTPC_ALIAS_EXPLICIT_UNALIAS 0 /* active until otpc_unalias */
#define OTPC_ALIAS_REPLY 1            /* the first message deactivates it */

/* Makes an alias of the calling process (opts: OTPC_ALIAS_*). In a
 * process. */
OTPC_API int otpc_alias(int opts, otpc_ref_t *alias);
/* Deactivates an alias of the calling process: 1 if it was active, 0 if
 * not (never one, another's, or already inactive). A monitor that made
 * the alias stays. In a process. */
OTPC_API int otpc_unalias(const otpc_ref_t *alias);

/* A fresh reference, unique on this node (make_ref()). */
OTPC_API otpc_ref_t otpc_make_ref(void);
OTPC_API bool otpc_ref_eq(const otpc_ref_t *a, const otpc_ref_t *b);

/* ------------------------------------------------------------------------
 * Names
 * ------------------------------------------------------------------------ */

OTPC_API int otpc_register(otpc_atom_t name, otpc_pid_t pid);
OTPC_API int otpc_unregister(otpc_atom_t name);
/* OTPC_ENONAME if nobody has the name. */
OTPC_API int otpc_whereis(otpc_atom_t name, otpc_pid_t *pid);
/* Up to max names into names; returns how many exist. */
OTPC_API size_t otpc_registered(otpc_atom_t *names, size_t max);

/* ------------------------------------------------------------------------
 * Timers
 * ------------------------------------------------------------------------ */

/* erlang:send_after/3: msg arrives at dest after ms. *tref names it. */
OTPC_API int otpc_send_after(int64_t ms, otpc_pid_t dest, otpc_buf_t *msg,
                             otpc_ref_t *tref);
/* erlang:start_timer/3: {timeout, TRef, Msg} arrives at dest after ms. */
OTPC_API int otpc_start_timer(int64_t ms, otpc_pid_t dest, otpc_buf_t *msg,
                              otpc_ref_t *tref);
/* Cancels; returns the ms that were left (>= 0) or OTPC_ENOTIMER if the
 * timer had fired or never existed. */
OTPC_API int64_t otpc_cancel_timer(const otpc_ref_t *tref);
/* Monotonic milliseconds (erlang:monotonic_time(millisecond)). */
OTPC_API int64_t otpc_now_ms(void);

/* ------------------------------------------------------------------------
 * Descriptors and blocking work
 * ------------------------------------------------------------------------ */

#define OTPC_FD_READ 1
#define OTPC_FD_WRITE 2

/* Waits until fd is ready for events, without blocking a scheduler.
 * Returns the ready events, or OTPC_ETIMEDOUT. In a process. One process
 * may wait to read and another to write on the same fd at once. fd stays
 * registered with the node between waits, until it is closed; as with
 * poll(), the data may be gone by the time the process runs (read
 * non-blocking and wait again on EAGAIN). See docs/processes.md. */
OTPC_API int otpc_wait_fd(int fd, int events, int64_t timeout_ms);
/* Hands fd to the calling process: it is closed when the process ends. */
OTPC_API int otpc_own_fd(int fd);
/* Closes an owned fd and forgets it. */
OTPC_API int otpc_close_fd(int fd);

/* Runs fn(arg) on the dirty thread pool and returns its result; the
 * process waits, the schedulers do not. For calls that block the thread
 * (disk, DNS, long computations). In a process. */
OTPC_API intptr_t otpc_dirty(intptr_t (*fn)(void *), void *arg);

/* Memory that belongs to the calling process and is freed when it ends,
 * however it ends. otpc_pfree() gives it back early. In a process. */
OTPC_API void *otpc_palloc(size_t size);
OTPC_API void otpc_pfree(void *ptr);

/* ------------------------------------------------------------------------
 * Introspection
 * ------------------------------------------------------------------------ */

typedef enum otpc_status {
  OTPC_STATUS_RUNNING,
  OTPC_STATUS_RUNNABLE,
  OTPC_STATUS_WAITING,
  OTPC_STATUS_EXITING
} otpc_status_t;

typedef struct otpc_proc_info {
  otpc_status_t status;
  size_t message_queue_len;
  size_t memory;       /* bytes: control block, saved stack, mailbox */
  uint64_t reductions;
  size_t links;        /* linked processes */
  size_t monitors;     /* monitors it holds */
  bool trap_exit;
  bool handler;        /* a handler process (no stack while idle) */
  otpc_priority_t priority;
  otpc_atom_t registered_name; /* OTPC_ATOM_NONE if none */
  const char *current_function;/* the spawn name, or NULL */
} otpc_proc_info_t;

/* Exact for the calling process. For another one, called from a process:
 * links, monitors and the memory they take are asked of that process with
 * a signal, as Erlang's process_info does, and the call waits until it
 * answers (when it next takes its signals in); the other fields are a
 * snapshot of what its scheduler last wrote. Either may be stale by the
 * time it is read, as in Erlang. From a thread that is not a process,
 * only the snapshot (links and monitors 0). OTPC_ENOPROC for a dead or
 * unknown pid. */
OTPC_API int otpc_process_info(otpc_pid_t pid, otpc_proc_info_t *info);
OTPC_API size_t otpc_process_count(void);
/* Up to max pids into pids; returns how many processes exist. */
OTPC_API size_t otpc_processes(otpc_pid_t *pids, size_t max);

#ifdef __cplusplus
}
#endif
#endif /* OTPC_RT_H */
