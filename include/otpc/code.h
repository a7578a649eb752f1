/*
 * otpc/code.h: modules as shared objects, and upgrading them while they
 * run (Erlang's code server, code:load_file, soft_purge, purge, and the
 * sys module's suspend / change_code / resume).
 *
 * A module is a shared object (.so) that exports one descriptor, an
 * otpc_module_t named `otpc_module` (OTPC_MODULE() defines it): its name,
 * its version, the gen_server and gen_statem callback tables it has, the
 * applications it defines and the functions it exports for rpc.
 *
 * As in Erlang, a module has at most two versions loaded: current and
 * old. otpc_code_load() of a module that is loaded makes the loaded
 * version old and the new one current. Behaviour processes started from
 * the module (otpc_code_start_gen_server and friends) run the version
 * they were started with until their next dispatch: before handling the
 * next message each moves to the current version, calling the new
 * version's code_change(OldVsn, State, Extra) with the old version's vsn
 * and Extra = undefined. A process that has not yet moved (it got no
 * message since the load) still runs old code. otpc_code_soft_purge()
 * unloads the old version if no process runs it; otpc_code_purge() kills
 * those processes first, as Erlang's does. Loading a third version while
 * an old one is still loaded fails with OTPC_ENOTPURGED, as
 * code:load_file returns {error, not_purged}: purge first.
 *
 * Everything the rest of the node keeps of a module points into the code
 * layer, not into the .so: application specs and rpc exports go through
 * the module's current version when called, and supervisor children made
 * with otpc_code_child() start the current version's callbacks. So an old
 * version can be unloaded (dlclose) without leaving a dangling pointer.
 *
 * A module is built without linking libotpc (the host program provides
 * the symbols: `otpc node`, or a program linked with -rdynamic):
 *
 *   cc -shared -fPIC -o counter.so counter.c
 *
 * Guide: docs/code.md.
 */
#ifndef OTPC_CODE_H
#define OTPC_CODE_H

#include "otpc/application.h"
#include "otpc/gen_statem.h"
#include "otpc/otp.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The descriptor's layout version; a module built for another one is
 * refused (OTPC_EBADMODULE). */
#define OTPC_MODULE_ABI 1
/* The name of the descriptor symbol. */
#define OTPC_MODULE_SYMBOL "otpc_module"

/* A function exported for rpc:call(Node, Module, Name, Args): gets the
 * argument list; returns the result (a new buffer) or NULL to fail the
 * call, with *reason if it likes (see otpc_rpc_fn in otpc/dist.h). */
typedef struct otpc_module_export {
  const char *name;
  otpc_buf_t *(*fn)(otpc_term_t args, otpc_buf_t **reason);
} otpc_module_export_t;

typedef struct otpc_module {
  uint32_t abi;     /* OTPC_MODULE_ABI */
  const char *name; /* the module's name, an atom (UTF-8) */
  /* Its version, Erlang term text: "1", "\"1.2.0\"", "{2, 0}". It is
   * the OldVsn that the next version's code_change gets. */
  const char *vsn;
  /* Behaviours, each found by its table's name field; NULL-terminated
   * arrays, or NULL for none. */
  const otpc_gen_server_t *const *gen_servers;
  const otpc_gen_statem_t *const *gen_statems;
  /* Applications (`otpc node --app NAME` finds them here), registered
   * with the application controller when the module is first loaded;
   * NULL-terminated or NULL. A later version's spec of the same name is
   * the one whose start and stop run from then on. */
  const otpc_app_spec_t *const *apps;
  /* rpc exports, ended by an entry with name NULL; or NULL. */
  const otpc_module_export_t *exports;
} otpc_module_t;

#if defined(__GNUC__)
#define OTPC_MODULE_VISIBLE __attribute__((visibility("default"), used))
#else
#define OTPC_MODULE_VISIBLE
#endif

/* Defines the module's descriptor:
 *   OTPC_MODULE(.name = "counter", .vsn = "2", .gen_servers = servers); */
#define OTPC_MODULE(...)                                  \
  OTPC_MODULE_VISIBLE const otpc_module_t otpc_module = { \
      .abi = OTPC_MODULE_ABI, __VA_ARGS__}

/* What went wrong in a load, for a person to read. */
typedef struct otpc_code_error {
  char message[512];
} otpc_code_error_t;

/*
 * Loads the module in the shared object at path, or a new version of a
 * loaded one (code:load_file). The file is copied to a private temporary
 * file that is opened (RTLD_NOW | RTLD_LOCAL), so loading the same path
 * again after it was rebuilt gets the new code. Any thread, or a process.
 *
 * 0 on success, and then: the module's applications are registered (the
 * first time), its rpc exports point to the new version, and its
 * behaviour processes move at their next dispatch. On failure nothing
 * has changed, err (may be NULL) says why, and the result is:
 *
 *   OTPC_EBADMODULE  not a shared object, no `otpc_module` symbol, a
 *                    descriptor of another ABI, a bad name or vsn
 *   OTPC_ENOTPURGED  an old version is still loaded (purge it first)
 *   OTPC_EIO         the file cannot be read or copied (errno set)
 *
 * One failure comes after the switch: if an application of the module
 * has the name of one that another module (or the program) registered,
 * the new version is loaded and current, but that application is not
 * registered; the result is then the controller's (OTPC_EEXIST) and err
 * says so.
 */
OTPC_API int otpc_code_load(const char *path, otpc_code_error_t *err);

/* code:soft_purge: unloads the module's old version if no process runs
 * it. 0 if it was unloaded or there was none; OTPC_EINUSE if processes
 * (or rpc calls) still run it (nothing changes); OTPC_ENOMODULE if no
 * such module is loaded. */
OTPC_API int otpc_code_soft_purge(const char *module);

/* code:purge: kills (exit reason killed) every process that runs the
 * module's old version, waits until they have ended and rpc calls into
 * it have returned, and unloads it. Returns how many processes it
 * killed (>= 0), or OTPC_ENOMODULE, or OTPC_ETIMEDOUT if they did not
 * end within a few seconds (the old version then stays). Not from a
 * process that runs the old version itself. */
OTPC_API int otpc_code_purge(const char *module);

typedef struct otpc_code_info {
  bool loaded;          /* a current version exists */
  bool has_old;         /* an old version is loaded too */
  size_t current_users; /* processes running the current version */
  size_t old_users;     /* processes (and rpc calls) in the old one */
  uint64_t loads;       /* versions loaded so far */
  char vsn[64];         /* the current vsn as written, cut to fit */
  char old_vsn[64];     /* the old one's, "" if none */
} otpc_code_info_t;

/* code:is_loaded and more: what the code layer knows of a module.
 * OTPC_ENOMODULE if it was never loaded. Any thread. */
OTPC_API int otpc_code_info(const char *module, otpc_code_info_t *info);

/* Up to max module names (pointers valid for the program's life) into
 * names; returns how many modules are loaded. */
OTPC_API size_t otpc_code_modules(const char **names, size_t max);

/* ------------------------------------------------------------------------
 * Behaviour processes of a module
 * ------------------------------------------------------------------------ */

/*
 * Starts the gen_server named server (its table's name) of the module's
 * current version, as otpc_gen_server_start() does; the process follows
 * the module's upgrades. OTPC_ENOMODULE if the module is not loaded,
 * OTPC_ENONAME if its current version has no such server; else
 * otpc_gen_server_start()'s results. In a process.
 */
OTPC_API int otpc_code_start_gen_server(const char *module, const char *server,
                                        void *arg, const otpc_gs_opts_t *opts,
                                        otpc_pid_t *pid, otpc_buf_t **reason);
/* The same for a gen_statem. */
OTPC_API int otpc_code_start_gen_statem(const char *module, const char *statem,
                                        void *arg, const otpc_sm_opts_t *opts,
                                        otpc_pid_t *pid, otpc_buf_t **reason);

/*
 * A supervisor child that starts a behaviour of a module's current
 * version (a gen_server, or a gen_statem with is_statem), linked,
 * registered under name if it is not 0, with arg. The record belongs to
 * the code layer and lives as long as the program (the same arguments
 * give the same record), so a supervisor may keep it across upgrades and
 * purges:
 *
 *   otpc_child_spec_t c = {.id = "store", .start = otpc_code_start_child,
 *       .arg = otpc_code_child("kv", "kv_store", false, otpc_atom("kv_store"),
 * NULL)};
 *
 * arg is kept as a plain pointer: it must outlive the child and must not
 * point into the module's own .so (which an upgrade may unload). NULL if
 * out of memory.
 */
typedef struct otpc_code_child otpc_code_child_t;
OTPC_API otpc_code_child_t *otpc_code_child(const char *module,
                                            const char *behaviour,
                                            bool is_statem, otpc_atom_t name,
                                            void *arg);
/* The otpc_child_spec_t start function for such a record. */
OTPC_API int otpc_code_start_child(void *child, otpc_pid_t *pid,
                                   otpc_buf_t **reason);

/* ------------------------------------------------------------------------
 * sys: suspend, change_code, resume
 *
 * The system messages of Erlang's sys module, so an Erlang node can send
 * them too (sys:suspend({Name, Node}) from erl works): {system, {Pid, Tag},
 * suspend | resume | {change_code, Module, OldVsn, Extra}}, answered {Tag,
 * Reply}. gen_server and gen_statem processes (module-bound or not) serve them.
 * While suspended a process takes only system messages (and its parent's EXIT);
 * others wait in its mailbox, in order. In a process; timeout in ms.
 * ------------------------------------------------------------------------ */

/* sys:suspend. 0, OTPC_ENOPROC, OTPC_ETIMEDOUT, OTPC_EEXITED. */
OTPC_API int otpc_sys_suspend(otpc_pid_t pid, int64_t timeout_ms);
/* sys:resume. */
OTPC_API int otpc_sys_resume(otpc_pid_t pid, int64_t timeout_ms);
/*
 * sys:change_code(Pid, Module, OldVsn, Extra): the suspended process
 * calls code_change(OldVsn, State, Extra). A process bound to module
 * that still runs an older version moves to the current one with it.
 * old_vsn and extra: views (a zero otpc_term_t means undefined).
 * 0; OTPC_ESTOPPED if the process answered {error, Reason} (it is not
 * suspended, or its code_change failed; Reason in *error if given);
 * else as otpc_sys_suspend.
 */
OTPC_API int otpc_sys_change_code(otpc_pid_t pid, const char *module,
                                  otpc_term_t old_vsn, otpc_term_t extra,
                                  int64_t timeout_ms, otpc_buf_t **error);

/* ------------------------------------------------------------------------
 * Loading from outside
 * ------------------------------------------------------------------------ */

/*
 * Exports the code server's functions for rpc (dist layer), so that
 * another node, `otpc load` among them, can upgrade this one:
 *
 *   otpc_code:load(Path)        soft purge of unused old code, then
 *                               load: ok | {error, Why, Text}, Why one
 *                               of not_purged, badfile, enoent, failed
 *                               and Text the message (a string)
 *   otpc_code:load(Path, purge) the same after a purge (kills processes
 *                               that still run old code)
 *   otpc_code:purge(Module)     {ok, Killed} | {error, Why}
 *   otpc_code:soft_purge(Mod)   true | false
 *   otpc_code:which(Module)     {Vsn, OldVsn | none} | non_existing
 *
 * Anyone holding the cookie can then run code on this node, as with
 * Erlang's rpc. Any thread.
 */
OTPC_API int otpc_code_serve_rpc(void);

#ifdef __cplusplus
}
#endif
#endif /* OTPC_CODE_H */
