/*
 * fault.c: fault containment. A hardware fault raised by process code
 * ends that process, not the node: a stack overflow always (reason
 * stack_overflow), SIGSEGV, SIGBUS, SIGFPE and SIGILL when the process
 * asked for it (reason {signal, Name, Addr}). Also otpc_assert and
 * otpc_fail, which end the calling process with a reason that says where,
 * and the exit from inside a handler's terminate (its own section below).
 * docs/faults.md is the user's page; this is how it works.
 *
 * One handler for the four signals, installed at node start on top of
 * whatever was there (ASan's, a user's, the default), which it chains to
 * for every fault it does not contain. Each scheduler thread has an
 * alternate signal stack, so the handler runs even when the fault is a
 * stack overflow (the stack it happened on has no room left).
 *
 * A fault is contained when all of these hold:
 *   - it was raised by the hardware (si_code > 0), not sent with kill();
 *   - the thread is a scheduler running a process (s->current), and the
 *     stack pointer at the fault lies in that process's execution stack
 *     (p->stack): the code that faulted ran for that process;
 *   - the thread holds none of the runtime's locks (otpc__locks_held,
 *     counted by the wrappers in rt_int.h): a lock held by abandoned
 *     frames would never be released, and the node would hang on it;
 *   - the process has not faulted already (PF_FAULTED): a fault while
 *     ending a faulted process is a runtime bug;
 *   - it is a stack overflow (SIGSEGV on the guard below p->stack), or
 *     the process contains signals (PF_CONTAIN).
 *
 * Leaving the handler: the handler never jumps out. It rewrites the
 * interrupted context (instruction and stack pointer, first argument) so
 * that the return from the handler, through sigreturn, which also
 * restores the signal mask, lands in fault_exit() at the top of the
 * faulting stack. Every frame on that stack belongs to the dead process
 * (or, for a handler dispatched by the active loop, to that loop
 * instance, which is abandoned: its state lives in otpc__sched_t), so
 * the top is free. fault_exit() builds the reason and calls
 * otpc__exit_current(), the path otpc_exit() takes: the scheduler goes on
 * in its loop, or in a fresh loop instance, and otpc__finish_exit()
 * releases what the process owned.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include "rt_int.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define OTPC_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define OTPC_ASAN 1
#endif
#ifdef OTPC_ASAN
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
#endif

__thread unsigned otpc__locks_held;

/* The signals handled, and what was installed before us for each. */
static const int handled[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL};
#define NHANDLED (sizeof handled / sizeof handled[0])
static struct sigaction previous[NHANDLED];
static bool installed;

/* How far below its stack the stack pointer of an overflowing function
 * may be (its frame is larger than the guard). */
#define BIG_FRAME ((uintptr_t)1 << 20)

/* Alternate signal stack of this scheduler thread, if we made it. */
#define ALT_MIN (64 * 1024)
static __thread void *alt_mem;
static __thread size_t alt_len;

/* What the handler saw, for fault_exit() on the same thread. */
static __thread struct {
  int sig;
  uintptr_t addr;
  bool overflow;
} pending;

static const char *signal_name(int sig) {
  switch (sig) {
    case SIGSEGV: return "sigsegv";
    case SIGBUS: return "sigbus";
    case SIGFPE: return "sigfpe";
    case SIGILL: return "sigill";
    default: return "signal";
  }
}

/* ------------------------------------------------------------------------
 * Ending the process, after the handler returned
 * ------------------------------------------------------------------------ */

/* Runs in place of the faulting code, at the top of the faulting stack,
 * as ordinary code (the handler has returned; the signal mask is back). */
static _Noreturn void fault_exit(otpc__proc_t *p) {
  otpc_buf_t *reason;
  if (pending.overflow)
    reason = otpc__atom_buf(otpc_atom("stack_overflow"));
  else
    reason = otpc_term_fmt("{signal, ~a, ~u}", signal_name(pending.sig),
                           (uint64_t)pending.addr);
  if (reason == NULL) /* out of memory: at least the kind of fault */
    reason = otpc__atom_buf(otpc_atom(
        pending.overflow ? "stack_overflow" : signal_name(pending.sig)));
  otpc_buf_unref(p->exit_reason);
  p->exit_reason = reason;
  otpc__exit_current(p);
}

/* ------------------------------------------------------------------------
 * The handler
 * ------------------------------------------------------------------------ */

static uintptr_t context_sp(const ucontext_t *uc) {
#if defined(__x86_64__)
  return (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
  return (uintptr_t)uc->uc_mcontext.sp;
#else
#error "otpc: no fault containment for this architecture"
#endif
}

/* Makes the return from the handler call fault_exit(p) on a fresh frame
 * at the top of stack x, as if called there (ABI stack alignment). */
static void redirect(ucontext_t *uc, otpc__xstack_t *x, otpc__proc_t *p) {
  uintptr_t top = ((uintptr_t)(x->base + x->size) & ~(uintptr_t)15) - 64;
#if defined(__x86_64__)
  uc->uc_mcontext.gregs[REG_RIP] = (greg_t)(uintptr_t)fault_exit;
  uc->uc_mcontext.gregs[REG_RSP] = (greg_t)(top - 8); /* a call pushed 8 */
  uc->uc_mcontext.gregs[REG_RDI] = (greg_t)(uintptr_t)p;
  uc->uc_mcontext.gregs[REG_RBP] = 0;
  uc->uc_mcontext.gregs[REG_EFL] &= ~(greg_t)0x400; /* DF clear, as on entry */
#elif defined(__aarch64__)
  uc->uc_mcontext.pc = (uint64_t)(uintptr_t)fault_exit;
  uc->uc_mcontext.sp = top;
  uc->uc_mcontext.regs[0] = (uint64_t)(uintptr_t)p;
  uc->uc_mcontext.regs[29] = 0;
  uc->uc_mcontext.regs[30] = 0;
#endif
}

/* Whether this fault ends the current process only; if so, arranges it. */
static bool contain(int sig, siginfo_t *si, ucontext_t *uc) {
  if (si->si_code <= 0) return false; /* sent by someone, not a fault */
  otpc__sched_t *s = otpc__self_sched;
  otpc__proc_t *p = s ? s->current : NULL;
  if (p == NULL || otpc__locks_held != 0) return false;
  otpc__xstack_t *x = p->stack;
  if (x == NULL || (p->flags & PF_FAULTED)) return false;
  uintptr_t sp = context_sp(uc), lo = (uintptr_t)x->map,
            hi = (uintptr_t)(x->base + x->size);
  uintptr_t addr = (uintptr_t)si->si_addr;
  bool overflow = sig == SIGSEGV && addr >= lo && addr < (uintptr_t)x->base;
  /* Not on the process's stack: not its code. A function whose frame is
   * larger than the guard may have moved the stack pointer below it
   * before touching the guard: still an overflow of this stack. */
  if (sp >= hi || sp < (overflow ? lo - (lo < BIG_FRAME ? lo : BIG_FRAME) : lo))
    return false;
  if (!overflow && !(p->flags & PF_CONTAIN)) return false;
  p->flags |= PF_FAULTED;
  pending.sig = sig;
  pending.addr = addr;
  pending.overflow = overflow;
#ifdef OTPC_ASAN
  /* fault_exit runs where dead frames left their redzones. */
  __asan_unpoison_memory_region(x->base, x->size);
#endif
  redirect(uc, x, p);
  return true;
}

static int slot_of(int sig) {
  for (size_t i = 0; i < NHANDLED; i++)
    if (handled[i] == sig) return (int)i;
  return -1;
}

/* A fault we do not contain: whatever handled it before us does, or the
 * default action (a core dump) happens as if we were not there. */
static void fall_through(int sig, siginfo_t *si, void *uc) {
  int i = slot_of(sig);
  const struct sigaction *pa = i >= 0 ? &previous[i] : NULL;
  if (pa != NULL && (pa->sa_flags & SA_SIGINFO) && pa->sa_sigaction != NULL &&
      (void *)pa->sa_sigaction != (void *)SIG_IGN) {
    pa->sa_sigaction(sig, si, uc);
    return;
  }
  if (pa != NULL && !(pa->sa_flags & SA_SIGINFO) && pa->sa_handler != SIG_DFL &&
      pa->sa_handler != SIG_IGN) {
    pa->sa_handler(sig);
    return;
  }
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(sig, &dfl, NULL);
  /* A fault happens again when the instruction is retried on return; a
   * sent signal is sent again (it is blocked until we return). */
  if (si->si_code <= 0) raise(sig);
}

static void on_fault(int sig, siginfo_t *si, void *ucv) {
  int saved_errno = errno;
  if (!contain(sig, si, ucv)) fall_through(sig, si, ucv);
  errno = saved_errno;
}

/* ------------------------------------------------------------------------
 * Installing
 * ------------------------------------------------------------------------ */

void otpc__fault_install(void) {
  if (installed) return;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_fault;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < NHANDLED; i++)
    sigaction(handled[i], &sa, &previous[i]);
  installed = true;
}

void otpc__fault_uninstall(void) {
  if (!installed) return;
  for (size_t i = 0; i < NHANDLED; i++) {
    /* Only if nobody replaced ours meanwhile. */
    struct sigaction now;
    if (sigaction(handled[i], NULL, &now) == 0 && (now.sa_flags & SA_SIGINFO) &&
        now.sa_sigaction == on_fault)
      sigaction(handled[i], &previous[i], NULL);
  }
  installed = false;
}

/* A scheduler thread starts: it needs an alternate stack for the handler.
 * One that is there already (ASan makes one per thread) is kept. */
void otpc__fault_thread_init(void) {
  pending.sig = 0; /* touch the thread's block before any fault */
  stack_t old;
  if (sigaltstack(NULL, &old) == 0 && !(old.ss_flags & SS_DISABLE) &&
      old.ss_size >= ALT_MIN)
    return;
  long sys = sysconf(_SC_SIGSTKSZ);
  size_t len = sys > 0 && (size_t)sys * 4 > ALT_MIN ? (size_t)sys * 4 : ALT_MIN;
  void *mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (mem == MAP_FAILED) {
    /* Without it a stack overflow takes the node down, as without otpc. */
    fprintf(stderr,
            "otpc: no alternate signal stack: overflows not contained\n");
    return;
  }
  stack_t ss = {.ss_sp = mem, .ss_size = len, .ss_flags = 0};
  if (sigaltstack(&ss, NULL) != 0) {
    munmap(mem, len);
    return;
  }
  alt_mem = mem;
  alt_len = len;
}

void otpc__fault_thread_done(void) {
  if (alt_mem == NULL) return;
  stack_t ss = {.ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE};
  sigaltstack(&ss, NULL);
  munmap(alt_mem, alt_len);
  alt_mem = NULL;
  alt_len = 0;
}

/* ------------------------------------------------------------------------
 * Exits from inside terminate
 *
 * A handler's terminate runs after the process has ended, as a plain call
 * from otpc__finish_exit() on the scheduler loop's stack, with loop frames
 * under it that must go on: an otpc_exit (or otpc_assert, otpc_fail) from
 * there cannot abandon the stack. As in Erlang, where an exception in
 * terminate becomes the exit reason, it replaces the reason and ends
 * terminate: a longjmp back to where terminate was called, on the same
 * stack, from ordinary code (not from a signal handler).
 * ------------------------------------------------------------------------ */

static __thread jmp_buf *terminate_jmp;

void otpc__run_terminate(otpc__proc_t *p) {
  const otpc_handler_t *h = p->u.handler.h;
  jmp_buf here;
  jmp_buf *outer = terminate_jmp;
  terminate_jmp = &here;
  if (setjmp(here) == 0)
    h->terminate(p->u.handler.state, otpc_buf_term(p->exit_reason));
  terminate_jmp = outer;
}

_Noreturn void otpc__terminate_exit(otpc__proc_t *p) {
  if (terminate_jmp == NULL) {
    fprintf(stderr, "otpc: fatal: a process exits with no stack to leave\n");
    abort();
  }
  longjmp(*terminate_jmp, 1);
}

/* ------------------------------------------------------------------------
 * The public calls
 * ------------------------------------------------------------------------ */

int otpc_contain_signals(bool on) {
  otpc__proc_t *p = otpc__current();
  if (p == NULL) return OTPC_ENOTPROC;
  int old = (p->flags & PF_CONTAIN) != 0;
  uint16_t flags = on ? (uint16_t)(p->flags | PF_CONTAIN)
                      : (uint16_t)(p->flags & ~PF_CONTAIN);
  __atomic_store_n(&p->flags, flags, __ATOMIC_RELAXED); /* process info */
  return old;
}

/* Outside a process there is no process to end: as assert() does. */
static _Noreturn void abort_outside(const char *file, int line,
                                    const char *kind, const char *text) {
  fprintf(stderr, "otpc: %s:%d: %s: %s (not in a process)\n", file, line, kind,
          text);
  abort();
}

static _Noreturn void end_with(otpc__proc_t *p, otpc_buf_t *reason) {
  otpc_buf_unref(p->exit_reason);
  p->exit_reason = reason;
  otpc__exit_current(p);
}

_Noreturn void otpc_assert_fail(const char *file, int line, const char *expr) {
  if (file == NULL) file = "";
  if (expr == NULL) expr = "";
  otpc__proc_t *p = otpc__current();
  if (p == NULL) abort_outside(file, line, "assertion failed", expr);
  otpc_buf_t *reason = otpc_term_fmt("{assert, ~b, ~i, ~b}", file, strlen(file),
                                     line, expr, strlen(expr));
  if (reason == NULL) reason = otpc__atom_buf(otpc_atom("assert"));
  end_with(p, reason);
}

_Noreturn void otpc_fail_at(const char *file, int line, const char *fmt, ...) {
  if (file == NULL) file = "";
  char small[256], *text = small;
  va_list ap;
  va_start(ap, fmt);
  int n = fmt ? vsnprintf(small, sizeof small, fmt, ap) : 0;
  va_end(ap);
  if (n < 0) n = 0, small[0] = '\0';
  if ((size_t)n >= sizeof small) {
    char *big = otpc__malloc((size_t)n + 1);
    if (big != NULL) {
      va_start(ap, fmt);
      vsnprintf(big, (size_t)n + 1, fmt, ap);
      va_end(ap);
      text = big;
    } else {
      n = (int)sizeof small - 1; /* truncated rather than lost */
    }
  }
  otpc_buf_t *reason = otpc_term_fmt("{fail, ~b, ~i, ~b}", file, strlen(file),
                                     line, text, (size_t)n);
  if (reason == NULL) reason = otpc__atom_buf(otpc_atom("fail"));
  otpc__proc_t *p = otpc__current();
  if (p == NULL) abort_outside(file, line, "failed", text);
  if (text != small) otpc__free(text);
  end_with(p, reason);
}
