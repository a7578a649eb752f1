/*
 * otpc/application.h: Erlang's applications for C. An application is a
 * named component that starts as one unit (usually a supervision tree),
 * depends on other applications, has an environment of configuration
 * parameters, and is stopped as one unit.
 *
 *   - A spec (otpc_app_spec_t) describes an application, as its .app file
 *     does in Erlang; otpc_app_register() makes it known to the node, as
 *     putting the .app file on the code path does.
 *   - The application controller, a registered process
 *     (application_controller), owns the state: which applications are
 *     loaded and running, and their environments. Every call below that
 *     says "in a process" is a gen_server call to it.
 *   - Each running application with a start callback has an application
 *     master, a process that calls start, is linked to the top process
 *     that start returns, calls prep_stop and stop, and tells the
 *     controller when the application ends.
 *
 * Configuration comes, lowest precedence first, from the spec's default
 * environment, sys.config files (Erlang's syntax) and the command line
 * (erl's `-App Key Value`): see otpc_app_config_file() and
 * otpc_app_config_args(). They are read when an application is loaded.
 *
 * When the top process of an application ends by itself, the application
 * has terminated. What then happens depends on how it was started, as in
 * Erlang:
 *
 *   permanent  the other applications are stopped, in reverse start
 *              order, and the node halts (see "Halting" below);
 *   transient  the same, unless the reason is normal: then reported only;
 *   temporary  reported only.
 *
 * Each end is logged as OTP logs it, a notice report
 * "application: App, exited: Reason, type: Type". otpc_app_stop() stops
 * an application of any type without affecting the others.
 *
 * Halting: an Erlang node halts (status 1, "Kernel pid terminated
 * (application_controller) ({application_terminated, App, Reason})"). An
 * otpc node halts the same way in otpc's terms: once the other
 * applications are stopped, the controller runs the halt hook if one is
 * set, then kills every other process on the node and ends itself, so
 * that otpc_node_wait() returns and otpc_main() returns 1.
 * otpc_app_halted() then tells why.
 */
#ifndef OTPC_APPLICATION_H
#define OTPC_APPLICATION_H

#include "otpc/supervisor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * Specs
 * ------------------------------------------------------------------------ */

/* How an application is started: Module:start/2's StartType. Only normal
 * for now; takeover and failover belong to distributed applications. */
typedef enum otpc_app_start_type { OTPC_APP_NORMAL = 0 } otpc_app_start_type_t;

/*
 * An application, as its .app file and callback module describe it in
 * Erlang. Strings are UTF-8; the spec and everything it points to must
 * live as long as the program (static data is the usual case).
 *
 *   static const otpc_app_spec_t web = {
 *     .name = "web", .description = "Web front end", .vsn = "1.2.0",
 *     .applications = (const char *const[]){"db", NULL},
 *     .env = "[{port, 8080}, {acceptors, 16}]",
 *     .start = web_start, .stop = web_stop};
 */
typedef struct otpc_app_spec {
  const char *name;        /* the application's name, an atom */
  const char *description; /* may be NULL: "" */
  const char *vsn;         /* may be NULL: "" */
  /* Applications that must run before this one starts (Erlang's
   * applications key), NULL-terminated; NULL for none. */
  const char *const *applications;
  /* The default environment, Erlang term text: a list of
   * {Key, Value} with atom keys, "[{port, 8080}]". NULL for none. */
  const char *env;
  /* Names its processes register (informational, as in Erlang),
   * NULL-terminated; may be NULL. */
  const char *const *registered;

  /*
   * Module:start(StartType, StartArgs): starts the application's
   * processes, usually its top supervisor, linked to the caller (the
   * application master), and returns 0 with its pid in *top. *state
   * (initially NULL) is handed to prep_stop and stop. On failure a
   * negative code and, if it likes, a reason term in *reason (it is
   * handed over); otpc_supervisor_start() has just this shape:
   *
   *   return otpc_supervisor_start(&sup, otpc_atom("web_sup"), top, reason);
   *
   * NULL makes a library application: it has no processes, starts and
   * stops at once, and never terminates by itself.
   */
  int (*start)(otpc_app_start_type_t type, void *arg, otpc_pid_t *top,
               void **state, otpc_buf_t **reason);
  void *start_arg; /* StartArgs */
  /* Module:prep_stop(State): before the processes are stopped; returns
   * the state for stop. May be NULL. */
  void *(*prep_stop)(void *state);
  /* Module:stop(State): after the processes have stopped. May be NULL. */
  void (*stop)(void *state);
} otpc_app_spec_t;

/*
 * Makes an application known to the node. Any thread, any time (before
 * the node starts too). The spec is checked (name, dependency names, the
 * env text: OTPC_EINVAL or the parse error) and kept by pointer.
 * Registering the same spec again is a no-op; another spec with a name
 * already registered is OTPC_EEXIST.
 */
OTPC_API int otpc_app_register(const otpc_app_spec_t *spec);

/* ------------------------------------------------------------------------
 * Configuration: sys.config and the command line
 *
 * Both are kept node-wide (they are the node's boot configuration, like
 * erl's arguments) and read when an application is loaded: the spec's
 * default environment, then every sys.config value for it (files in the
 * order given), then every command line value. A file or command line
 * given after an application was loaded applies from its next load; use
 * otpc_app_set_env() to change a loaded application's environment.
 * ------------------------------------------------------------------------ */

/* What went wrong in a configuration, for a person to read. */
typedef struct otpc_app_config_error {
  int line;          /* 1-based line of a syntax error, 0 if none applies */
  int column;        /* 1-based column (bytes) of it, 0 if none applies */
  char message[512]; /* e.g. "sys.config:3:14: syntax error in term text" */
} otpc_app_config_error_t;

/*
 * Reads a configuration file in Erlang's sys.config syntax:
 *
 *   %% comments as in Erlang
 *   [{web, [{port, 8443}, {hosts, ["a.example", "b.example"]}]},
 *    {db, [{pool_size, 4}]},
 *    "extra.config"].
 *
 * A string names another configuration file, included at that place (as
 * OTP does: relative to this file's directory first, then to the current
 * directory; ".config" may be left out, here and for path itself); an
 * included file may not include others. Later values override earlier
 * ones. Any thread.
 *
 * All or nothing: on any error (the file cannot be read, a syntax error,
 * an entry that is not {App, [{Key, Value}]}) nothing is kept, err (may
 * be NULL) says what and where, and the result is OTPC_EIO (errno set),
 * OTPC_ESYNTAX or another parse code, or OTPC_EINVAL.
 */
OTPC_API int otpc_app_config_file(const char *path,
                                  otpc_app_config_error_t *err);

/*
 * Takes the configuration arguments out of a command line, as erl reads
 * them, and keeps what they say:
 *
 *   -config File            a sys.config file, as otpc_app_config_file()
 *   -App Key Value ...      for a registered application App: Key and
 *                           Value in Erlang term syntax (an atom, a term),
 *                           as many pairs as follow before the next
 *                           argument that starts with '-' (a value is
 *                           always taken whole, so "-5" is a value)
 *
 *   ./server -config /etc/server/sys.config -web port 8443 -db pool_size 8
 *
 * Other arguments are left, in order; "--" ends the scan and is left
 * too. On success *argc and argv lose the arguments taken. All or
 * nothing: on an error argv is untouched, nothing is kept, and err (may
 * be NULL) says which argument is wrong; the result is OTPC_EINVAL,
 * the parse error, or the file's error. Register the applications
 * first: flags that name no registered application are left alone. Any
 * thread.
 */
OTPC_API int otpc_app_config_args(int *argc, char **argv,
                                  otpc_app_config_error_t *err);

/* Forgets every configuration value kept by the two functions above.
 * Any thread. */
OTPC_API void otpc_app_config_clear(void);

/* ------------------------------------------------------------------------
 * The application controller
 * ------------------------------------------------------------------------ */

/* Starts the controller, registered as application_controller, not
 * linked to the caller: it lives until otpc_app_controller_stop() or a
 * halt. OTPC_EEXIST if it runs already. In a process. */
OTPC_API int otpc_app_controller_start(void);

/* What init:stop() does to applications: stops every running
 * application in reverse start order, then ends the controller, and
 * returns once it has. In a process. */
OTPC_API int otpc_app_controller_stop(void);

/*
 * The halt hook (Kernel's shutdown_func): called in the controller with
 * {application_terminated, App, Reason} when an application's end halts
 * the node, after the other applications have stopped and before every
 * process is killed. It may, for instance, record an exit status or call
 * exit(). NULL removes it. Any thread.
 */
typedef void (*otpc_app_halt_fn)(otpc_term_t reason, void *arg);
OTPC_API void otpc_app_set_halt_hook(otpc_app_halt_fn fn, void *arg);

/* Whether an application's end halted the node since the controller last
 * started; if so and reason is not NULL, *reason gets
 * {application_terminated, App, Reason} (release it). Any thread, also
 * after the node has stopped: a main() can turn it into an exit status. */
OTPC_API bool otpc_app_halted(otpc_buf_t **reason);

/* ------------------------------------------------------------------------
 * Loading, starting, stopping
 *
 * Errors common to the calls below: OTPC_ENOPROC if the controller does
 * not run (or is shutting down), OTPC_ENOTPROC outside a process. Where
 * a call takes otpc_buf_t **reason (may be NULL), a failure puts there
 * the term Erlang's application module would return as {error, Reason}
 * (release it); it is NULL on success.
 * ------------------------------------------------------------------------ */

/* application:load: reads the application's spec and configuration into
 * the controller. OTPC_ENOAPP if it is not registered; OTPC_EEXIST if it
 * is loaded already. */
OTPC_API int otpc_app_load(otpc_atom_t app);
/* application:unload: forgets it and its environment. OTPC_ENOAPP if it
 * is not loaded; OTPC_EEXIST if it runs. */
OTPC_API int otpc_app_unload(otpc_atom_t app);

/*
 * application:start(App, Type): loads the application if needed, checks
 * that the applications it depends on run, starts an application master
 * that calls start, and returns once start has. Type says what its end
 * will mean (see the top of this file). Errors, with their reasons:
 *
 *   OTPC_ENOAPP       not registered       {unknown_application, App}
 *   OTPC_ENOTSTARTED  a dependency is not  {not_started, Dep}
 *                     running
 *   OTPC_EEXIST       it runs already      {already_started, App}
 *   OTPC_ESTOPPED     start failed         start's reason (or the name of
 *                                          its error code as an atom), or
 *                                          the master's exit reason
 */
OTPC_API int otpc_app_start(otpc_atom_t app, otpc_restart_t type,
                            otpc_buf_t **reason);
/* application:ensure_started: otpc_app_start, with 0 for one running. */
OTPC_API int otpc_app_ensure_started(otpc_atom_t app, otpc_restart_t type,
                                     otpc_buf_t **reason);

/*
 * application:ensure_all_started(App, Type): starts, with the same type,
 * every application App needs that does not run yet, dependencies before
 * their dependents, then App. The order is worked out before anything
 * starts, so a missing or circular dependency starts nothing:
 *
 *   OTPC_ENOAPP   {Missing, {unknown_application, Missing}}
 *   OTPC_ECYCLE   {circular_dependencies, [A, B, ...]} (the cycle's path)
 *
 * If a start fails, the applications this call started are stopped again
 * (in reverse) and its error is returned with {App, Reason}. On success
 * *info (may be NULL) gets the list of the applications this call
 * started, in start order (release it); on failure it gets the reason.
 */
OTPC_API int otpc_app_ensure_all_started(otpc_atom_t app, otpc_restart_t type,
                                         otpc_buf_t **info);
/* The same for several applications at once (OTP 26's list form): the
 * order satisfies every dependency and otherwise keeps the list's. */
OTPC_API int otpc_app_ensure_all_started_list(const otpc_atom_t *apps, size_t n,
                                              otpc_restart_t type,
                                              otpc_buf_t **info);

/*
 * application:stop: the master calls prep_stop, shuts the top process
 * down (exit(Top, shutdown), and waits for it: a supervisor stops its
 * tree in reverse start order), calls stop, and ends. The application
 * stays loaded. Logged as "exited: stopped". No other application is
 * affected, whatever the type. OTPC_ENOTSTARTED if it does not run.
 */
OTPC_API int otpc_app_stop(otpc_atom_t app);
/* Stops those of apps that run, dependents before what they depend on
 * (the reverse of the order ensure_all_started_list would start them). */
OTPC_API int otpc_app_stop_list(const otpc_atom_t *apps, size_t n);
/* Stops every running application, in reverse start order. */
OTPC_API int otpc_app_stop_all(void);

typedef struct otpc_app_info {
  otpc_atom_t name;
  const char *description; /* the spec's ("" if none) */
  const char *vsn;         /* the spec's ("" if none) */
  otpc_restart_t type;     /* how it was started */
} otpc_app_info_t;

/* application:which_applications: the running applications, the most
 * recently started first, up to max into out; returns how many run
 * (>= 0) or a negative code. In a process. */
OTPC_API int otpc_app_which_applications(otpc_app_info_t *out, size_t max);

/* ------------------------------------------------------------------------
 * The environment
 * ------------------------------------------------------------------------ */

/* application:get_env(App, Key): 1 and the value in *value (release it);
 * 0 and NULL if the key is not set (Erlang's undefined). */
OTPC_API int otpc_app_get_env(otpc_atom_t app, otpc_atom_t key,
                              otpc_buf_t **value);
/* application:set_env: sets one parameter. Before the application is
 * loaded, its load overrides the parameters it sets (as in Erlang). */
OTPC_API int otpc_app_set_env(otpc_atom_t app, otpc_atom_t key,
                              otpc_term_t value);
/* application:unset_env. Unsetting an unset key is not an error. */
OTPC_API int otpc_app_unset_env(otpc_atom_t app, otpc_atom_t key);
/* application:get_all_env(App): *env gets [{Key, Value}] (release it):
 * [] for an application that is not loaded (unless set_env set some). */
OTPC_API int otpc_app_get_all_env(otpc_atom_t app, otpc_buf_t **env);

#ifdef __cplusplus
}
#endif
#endif /* OTPC_APPLICATION_H */
