/*
 * peer_util.h: what the distribution tests' peer nodes share (one test
 * binary holds all of tests/dist): the registered echo process, the rpc
 * function t:args, and stopping a peer that runs in a child process.
 */
#ifndef OTPC_TESTS_DIST_PEER_UTIL_H
#define OTPC_TESTS_DIST_PEER_UTIL_H

#include <sys/types.h>

#include "otpc.h"

/* Registers `echo`; answers {Pid, whoami} with {iam, Self} and sends
 * every other {Pid, ...} back to Pid as it is. */
void dt_echo(void *arg);
/* rpc t:args(Args) -> {got, Args}. */
otpc_buf_t *dt_rpc_args(otpc_term_t args, void *ctx, otpc_buf_t **why);
/* Kills a peer's child process and reaps it. */
void dt_stop_peer(pid_t pid);

#endif
