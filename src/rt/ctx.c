/*
 * ctx.c: preparing a fresh context (see ctx.h); the switch itself is in
 * ctx_<arch>.S. The frame written here is the one otpc__ctx_switch pops.
 */
#include "ctx.h"

#include <stdint.h>
#include <string.h>

void otpc__ctx_trampoline(void);

otpc__ctx_t otpc__ctx_make(void *stack, size_t size, void (*entry)(void *),
                           void *arg) {
  uintptr_t top = ((uintptr_t)stack + size) & ~(uintptr_t)15;
#if defined(__x86_64__)
  /* After the switch pops 8 + 6*8 bytes and rets (8 more), the trampoline
   * starts with rsp = top, 16-byte aligned. */
  uint64_t *sp = (uint64_t *)top;
  *--sp = (uint64_t)(uintptr_t)otpc__ctx_trampoline; /* return address */
  *--sp = 0;                                          /* rbp */
  *--sp = 0;                                          /* rbx */
  *--sp = (uint64_t)(uintptr_t)entry;                 /* r12 */
  *--sp = (uint64_t)(uintptr_t)arg;                   /* r13 */
  *--sp = 0;                                          /* r14 */
  *--sp = 0;                                          /* r15 */
  *--sp = 0x037F00001F80ull; /* mxcsr 0x1f80, x87 control word 0x37f */
  return sp;
#elif defined(__aarch64__)
  uint64_t *sp = (uint64_t *)(top - 176);
  memset(sp, 0, 176);
  sp[0] = (uint64_t)(uintptr_t)entry;                  /* x19 */
  sp[1] = (uint64_t)(uintptr_t)arg;                    /* x20 */
  sp[11] = (uint64_t)(uintptr_t)otpc__ctx_trampoline;  /* x30 */
  return sp;
#else
#error "otpc: no context switch for this architecture"
#endif
}
