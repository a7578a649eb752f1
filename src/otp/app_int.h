/*
 * app_int.h: what the application controller (application.c) reads from
 * the node-wide application registry and boot configuration
 * (app_config.c).
 *
 * Both are plain data behind one mutex in app_config.c, written by any
 * thread (registering specs, reading sys.config and the command line)
 * and read by the controller when it loads an application. Nothing is
 * ever removed from the registry, so what a lookup hands out stays valid
 * for the life of the program.
 */
#ifndef OTPC_APP_INT_H
#define OTPC_APP_INT_H

/* rt_int.h counts the locks a thread holds (fault containment needs it). */
#include "../rt/rt_int.h"
#include "otpc/application.h"

/* A registered application. */
typedef struct otpc__app_entry {
  otpc_atom_t name;
  const otpc_app_spec_t *spec;
  const otpc_atom_t *deps; /* spec->applications as atoms */
  size_t ndeps;
  otpc_buf_t *env; /* the default environment, checked: [{Key, Value}] */
} otpc__app_entry_t;

/* Copies the entry registered under name into *out; false if none. */
bool otpc__app_lookup(otpc_atom_t name, otpc__app_entry_t *out);

/* The boot configuration of app as one list [{Key, Value}]: sys.config
 * values first, then command line values, each in the order given, so
 * that applying them in order gives the right precedence. NULL when out
 * of memory. */
otpc_buf_t *otpc__app_config_env(otpc_atom_t app);

/* Checks that t is a proper list of {Key, Value} with atom keys; false
 * if not, with the first offending element in *bad (none if t is not a
 * list at all). */
bool otpc__app_env_ok(otpc_term_t t, otpc_term_t *bad);

#endif /* OTPC_APP_INT_H */
