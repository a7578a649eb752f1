/*
 * ctx.h: switching between execution contexts (stacks), the one piece of
 * otpc written in assembly (ctx_x86_64.S, ctx_aarch64.S).
 *
 * A context is just a saved stack pointer. otpc__ctx_switch() pushes the
 * callee-saved registers (and the floating-point control state) of the
 * caller onto its stack, stores the stack pointer in *from, loads `to` and
 * pops the registers saved there, returning into whatever switched away
 * from that context. Caller-saved registers need no saving: the switch is
 * an ordinary function call as far as the compiler knows.
 *
 * otpc__ctx_make() prepares a fresh stack so that the first switch to it
 * calls entry(arg) on it. entry must never return; it switches away for
 * the last time instead.
 *
 * Layout of a saved context, from the saved stack pointer up (x86-64):
 *
 *     sp ->  mxcsr (4 bytes) | x87 control word (2) | pad (2)
 *            r15, r14, r13, r12, rbx, rbp
 *            return address (where the switch resumes)
 */
#ifndef OTPC_RT_CTX_H
#define OTPC_RT_CTX_H

#include <stddef.h>

typedef void *otpc__ctx_t; /* saved stack pointer */

/* Saves the current context in *from and resumes `to`. */
void otpc__ctx_switch(otpc__ctx_t *from, otpc__ctx_t to);

/* Calls fn(arg) with the stack pointer at top (16-byte aligned), on
 * another stack, and returns when fn does. The caller's context is saved
 * in *from as otpc__ctx_switch saves one, so that fn's frames can also
 * leave for good, or for a while, with a switch to *from: that returns
 * from here as well. Cheaper than two switches: fn's return is an
 * ordinary, predicted one, and no floating-point state is loaded (fn
 * runs in the caller's). */
void otpc__ctx_call(void *arg, void (*fn)(void *), void *top,
                    otpc__ctx_t *from);

/* A context on [stack, stack + size) that will call entry(arg). */
otpc__ctx_t otpc__ctx_make(void *stack, size_t size, void (*entry)(void *),
                           void *arg);

#endif
