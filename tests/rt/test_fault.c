/*
 * test_fault.c: fault containment (src/rt/fault.c, docs/faults.md).
 *
 * A stack overflow ends only the process that overflowed, whatever kind
 * of process it is and wherever its frames are (its own stack, a loop
 * stack it blocked on, a stack it was evicted from and restored into);
 * with signals contained, SIGSEGV, SIGBUS, SIGFPE and SIGILL end only the
 * faulting process with {signal, Name, Addr}; faults that must not be
 * contained (not asked for, in a dirty thread, while the runtime holds a
 * lock) still kill the OS process, checked in a forked child; assert and
 * fail reasons have the documented shapes; and whatever way processes
 * die, a million times over, memory and descriptors come back.
 */
#include <dirent.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "otpc.h"
#include "test.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SCALE 10 /* the sanitizers are slow: a tenth of the load */
#else
#define SCALE 1
#endif
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
/* From the ASan runtime (sanitizer/allocator_interface.h). */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

static void run_opts(const otpc_node_opts_t *o, void (*body)(void *)) {
  CHECK_INT_EQ(otpc_main(o, body, NULL), 0);
}

static void run(void (*body)(void *)) {
  otpc_node_opts_t o = {.schedulers = 2};
  run_opts(&o, body);
}

static otpc_pattern_t *pat(const char *text) {
  otpc_pattern_t *p = NULL;
  CHECK_INT_EQ(otpc_pattern_compile(text, &p, NULL), 0);
  return p;
}

/* Whether msg is {'DOWN', Ref, process, _, _} for the ref in ctx. */
static bool is_down(otpc_term_t msg, void *ctx) {
  size_t arity;
  otpc_term_t e;
  otpc_ref_t got;
  return otpc_term_get_tuple(msg, &arity, &e) == 0 && arity == 5 &&
         otpc_term_is_atom(e, OTPC_ATOM_DOWN) &&
         otpc_term_get_ref(otpc_term_next(e), &got) == 0 &&
         otpc_ref_eq(&got, ctx);
}

/* The DOWN of monitor ref (the caller unrefs it); its reason in *reason. */
static otpc_buf_t *down_of(const otpc_ref_t *ref, otpc_term_t *reason) {
  otpc_buf_t *m;
  CHECK_INT_EQ(otpc_receive_fn(is_down, (void *)ref, 20000, &m), 0);
  *reason = otpc_term_tuple_elem(otpc_buf_term(m), 4);
  return m;
}

/* The reason in the DOWN of monitor ref, printed (caller frees). */
static char *down_reason(const otpc_ref_t *ref) {
  otpc_term_t reason;
  otpc_buf_t *m = down_of(ref, &reason);
  char *text = NULL;
  CHECK_INT_EQ(otpc_term_print(reason, &text, NULL), 0);
  otpc_buf_unref(m);
  return text;
}

static void expect_down(const otpc_ref_t *ref, const char *want) {
  char *got = down_reason(ref);
  CHECK_STR_EQ(got, want);
  free(got);
}

/* Spawns fn(arg) monitored; returns the ref. */
static otpc_ref_t spawn_mon(void (*fn)(void *), void *arg, bool contain) {
  otpc_ref_t ref;
  otpc_spawn_opts_t o = {
      .monitor = true, .monitor_ref = &ref, .contain_signals = contain};
  CHECK_INT_EQ(otpc_spawn(fn, arg, &o, NULL), 0);
  return ref;
}

/* Recursion the compiler cannot turn into a loop, with a frame big enough
 * to reach any guard quickly. `limit` is read each time so that it is not
 * "infinite" to the compiler. */
static volatile int limit = 1 << 30;

static __attribute__((noinline)) int recurse(int n) {
  volatile char pad[512];
  pad[n % 512] = (char)n;
  if (n >= limit) return pad[0];
  return recurse(n + 1) + pad[n % 512];
}

static void overflow(void *arg) {
  recurse(0);
}

/* A process that the node still serves after the others overflowed. */
static void echo(void *arg) {
  otpc_pid_t *to = arg;
  otpc_sendf(*to, "alive");
}

static void check_node_goes_on(void) {
  static otpc_pid_t me;
  me = otpc_self();
  CHECK_INT_EQ(otpc_spawn(echo, &me, NULL, NULL), 0);
  otpc_pattern_t *alive = pat("alive");
  otpc_buf_t *m;
  CHECK_INT_EQ(otpc_receive(alive, 10000, &m), 0);
  otpc_buf_unref(m);
  otpc_pattern_free(alive);
}

/* ---- stack overflow ------------------------------------------------------ */

static void body_overflow_seq(void *arg) {
  for (int i = 0; i < 20; i++) {
    otpc_ref_t ref = spawn_mon(overflow, NULL, false);
    expect_down(&ref, "stack_overflow");
  }
  /* A link fires too: a trapping parent gets the EXIT. */
  otpc_trap_exit(true);
  otpc_pid_t child;
  otpc_spawn_opts_t o = {.link = true};
  CHECK_INT_EQ(otpc_spawn(overflow, NULL, &o, &child), 0);
  otpc_pattern_t *ex = pat("{'EXIT', ~p, stack_overflow}");
  otpc_buf_t *m;
  otpc_pid_t from;
  CHECK_INT_EQ(otpc_receive(ex, 10000, &m, &from), 0);
  CHECK(otpc_pid_eq(from, child));
  otpc_buf_unref(m);
  otpc_pattern_free(ex);
  check_node_goes_on();
}

TEST(stack_overflow_ends_a_sequential_process) {
  run(body_overflow_seq);
}

/* A handler: the callback overflows the loop stack it was dispatched on;
 * terminate sees the reason; the scheduler goes on in a fresh loop. */
static _Atomic int terminated_overflow;

static int deep_handle(void *state, otpc_buf_t *msg) {
  if (otpc_term_is_atom(otpc_buf_term(msg), otpc_atom("deep"))) recurse(0);
  return OTPC_CONTINUE;
}

static void deep_terminate(void *state, otpc_term_t reason) {
  if (otpc_term_is_atom(reason, otpc_atom("stack_overflow")))
    atomic_fetch_add(&terminated_overflow, 1);
}

static const otpc_handler_t deep_h = {NULL, deep_handle, deep_terminate};

static void body_overflow_handler(void *arg) {
  enum { N = 50 };
  for (int i = 0; i < N; i++) {
    otpc_ref_t ref;
    otpc_pid_t pid;
    otpc_spawn_opts_t o = {.monitor = true, .monitor_ref = &ref};
    CHECK_INT_EQ(otpc_spawn_handler(&deep_h, NULL, &o, &pid), 0);
    otpc_sendf(pid, "shallow");
    otpc_sendf(pid, "deep");
    expect_down(&ref, "stack_overflow");
  }
  CHECK_INT_EQ(atomic_load(&terminated_overflow), N);
  check_node_goes_on();
}

TEST(stack_overflow_ends_a_handler_process) {
  run(body_overflow_handler);
}

/* A handler blocked inside its callback keeps the loop stack it was on;
 * resumed, it overflows there. Others dispatch meanwhile. */
static int blocked_deep_handle(void *state, otpc_buf_t *msg) {
  otpc_pid_t from;
  static otpc_pattern_t *_Atomic slot;
  otpc_pattern_t *p = atomic_load(&slot);
  if (p == NULL) {
    otpc_pattern_t *fresh = pat("{wait, ~p}");
    if (!atomic_compare_exchange_strong(&slot, &p, fresh))
      otpc_pattern_free(fresh);
    p = atomic_load(&slot);
  }
  if (otpc_match(p, otpc_buf_term(msg), &from) != 1) return OTPC_CONTINUE;
  otpc_sendf(from, "waiting");
  otpc_buf_t *m;
  otpc_pattern_t *go = pat("go");
  int rc = otpc_receive(go, OTPC_INFINITY, &m); /* blocks mid-callback */
  otpc_pattern_free(go);
  if (rc == 0) otpc_buf_unref(m);
  recurse(0);
  return OTPC_CONTINUE;
}

static const otpc_handler_t blocked_deep_h = {NULL, blocked_deep_handle, NULL};

static void body_overflow_blocked(void *arg) {
  enum { N = 40 };
  otpc_pid_t pids[N], me = otpc_self();
  otpc_ref_t refs[N];
  otpc_pattern_t *waiting = pat("waiting");
  for (int i = 0; i < N; i++) {
    otpc_spawn_opts_t o = {.monitor = true, .monitor_ref = &refs[i]};
    CHECK_INT_EQ(otpc_spawn_handler(&blocked_deep_h, NULL, &o, &pids[i]), 0);
    otpc_sendf(pids[i], "{wait, ~p}", &me);
    otpc_buf_t *m;
    CHECK_INT_EQ(otpc_receive(waiting, 10000, &m), 0);
    otpc_buf_unref(m);
  }
  otpc_pattern_free(waiting);
  check_node_goes_on(); /* all N blocked, the schedulers go on */
  for (int i = N - 1; i >= 0; i--) otpc_sendf(pids[i], "go");
  for (int i = 0; i < N; i++) expect_down(&refs[i], "stack_overflow");
  check_node_goes_on();
}

TEST(stack_overflow_in_a_handler_blocked_mid_callback) {
  otpc_node_opts_t o = {.schedulers = 1};
  run_opts(&o, body_overflow_blocked);
}

/* More blocked sequential processes than a scheduler has stacks (256), so
 * that most are evicted and restored before they overflow; half of them
 * end normally instead, and check that their frames came back intact. */
static void evictee(void *arg) {
  uintptr_t seed = (uintptr_t)arg;
  volatile uint32_t local[64];
  for (int i = 0; i < 64; i++) local[i] = (uint32_t)(seed * 2654435761u + i);
  otpc_buf_t *m;
  otpc_pid_t from;
  otpc_pattern_t *p = pat("{go, ~p}");
  int rc = otpc_receive(p, OTPC_INFINITY, &m, &from);
  otpc_pattern_free(p);
  if (rc != 0) return;
  otpc_buf_unref(m);
  if (seed % 2 == 0) recurse(0);
  uint32_t bad = 0;
  for (int i = 0; i < 64; i++)
    bad |= local[i] ^ (uint32_t)(seed * 2654435761u + i);
  if (bad != 0) otpc_exit_atom(otpc_atom("frames_corrupted"));
}

static void body_overflow_evicted(void *arg) {
  enum { N = 1000 };
  otpc_pid_t *pids = malloc(N * sizeof *pids);
  otpc_ref_t *refs = malloc(N * sizeof *refs);
  otpc_pid_t me = otpc_self();
  for (int i = 0; i < N; i++) {
    otpc_spawn_opts_t o = {.monitor = true, .monitor_ref = &refs[i]};
    CHECK_INT_EQ(otpc_spawn(evictee, (void *)(uintptr_t)i, &o, &pids[i]), 0);
  }
  otpc_sleep(100); /* all blocked in receive: most of them evicted */
  for (int i = N - 1; i >= 0; i--) otpc_sendf(pids[i], "{go, ~p}", &me);
  for (int i = 0; i < N; i++)
    expect_down(&refs[i], i % 2 == 0 ? "stack_overflow" : "normal");
  free(pids);
  free(refs);
  check_node_goes_on();
}

TEST(stack_overflow_of_evicted_and_restored_processes) {
  otpc_node_opts_t o = {.schedulers = 1};
  run_opts(&o, body_overflow_evicted);
}

/* Frames nearly as large as the guard (a big local array), whose lowest
 * byte is touched first: the fault lands deep in the guard, the stack
 * pointer too. */
static __attribute__((noinline)) int recurse_big(int n) {
  volatile char big[48 * 1024];
  big[0] = (char)n;
  big[sizeof big - 1] = (char)n;
  if (n >= limit) return big[0];
  return recurse_big(n + 1) + big[sizeof big - 1];
}

static void overflow_big(void *arg) {
  recurse_big(0);
}

static void body_overflow_big(void *arg) {
  for (int i = 0; i < 20; i++) {
    otpc_ref_t ref = spawn_mon(overflow_big, NULL, false);
    expect_down(&ref, "stack_overflow");
  }
  check_node_goes_on();
}

TEST(stack_overflow_with_big_frames) {
  run(body_overflow_big);
}

/* Many processes alive while some overflow: only those go. */
static int idle_handle(void *state, otpc_buf_t *msg) {
  return OTPC_STOP;
}
static const otpc_handler_t idle_h = {NULL, idle_handle, NULL};

static void body_overflow_crowd(void *arg) {
  enum { IDLE = 50000, DEEP = 200 };
  otpc_pid_t *idle = malloc(IDLE * sizeof *idle);
  size_t base = otpc_process_count();
  for (int i = 0; i < IDLE; i++)
    CHECK_INT_EQ(otpc_spawn_handler(&idle_h, NULL, NULL, &idle[i]), 0);
  otpc_ref_t refs[DEEP];
  for (int i = 0; i < DEEP; i++) refs[i] = spawn_mon(overflow, NULL, false);
  for (int i = 0; i < DEEP; i++) expect_down(&refs[i], "stack_overflow");
  CHECK_INT_EQ(otpc_process_count(), base + IDLE);
  for (int i = 0; i < IDLE; i++) otpc_sendf(idle[i], "stop");
  free(idle);
}

TEST(stack_overflow_among_many_processes) {
  run(body_overflow_crowd);
}

/* ---- signals, contained when asked --------------------------------------- */

static void *volatile fault_addr; /* where the next fault is made */

/* A page nobody may touch: faults there are real faults (a NULL pointer
 * would be caught by UBSan first). */
static char *no_access_page(void) {
  char *p = mmap(NULL, (size_t)sysconf(_SC_PAGESIZE), PROT_NONE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(p != MAP_FAILED);
  return p;
}

static void segv(void *arg) {
  volatile char *p = fault_addr;
  (void)*p;
}

static void bus(void *arg) {
  volatile char *p = fault_addr;
  (void)*p;
}

/* An integer division by zero, in assembly: in C, UBSan would catch it
 * first. AArch64 does not trap on it (the result is 0) and has no other
 * common source of SIGFPE: there the "fpe" cases raise SIGILL instead. */
static void ill(void *arg);
#if defined(__x86_64__)
#define FPE_SIG SIGFPE
#define FPE_NAME "sigfpe"
static void fpe(void *arg) {
  __asm__ volatile("xorl %%ecx, %%ecx\n\tmovl $7, %%eax\n\tcltd\n\tidivl %%ecx"
                   :
                   :
                   : "eax", "ecx", "edx", "cc");
}
#else
#define FPE_SIG SIGILL
#define FPE_NAME "sigill"
static void fpe(void *arg) {
  ill(arg);
}
#endif

static void ill(void *arg) {
#if defined(__x86_64__)
  __asm__ volatile("ud2");
#elif defined(__aarch64__)
  __asm__ volatile(".inst 0x00000000"); /* udf #0 */
#endif
}

/* Contains signals by the process flag rather than the spawn option. */
static void segv_by_flag(void *arg) {
  CHECK_INT_EQ(otpc_contain_signals(true), 0);
  CHECK_INT_EQ(otpc_contain_signals(true), 1);
  segv(arg);
}

static char *expected_signal(const char *name, void *addr) {
  char *s = malloc(64);
  snprintf(s, 64, "{signal,%s,%llu}", name,
           (unsigned long long)(uintptr_t)addr);
  return s;
}

static void body_signals(void *arg) {
  long page = sysconf(_SC_PAGESIZE);
  /* SIGSEGV at a known address: a page nobody may touch. */
  char *none =
      mmap(NULL, (size_t)page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(none != MAP_FAILED);
  fault_addr = none + 24;
  char *want = expected_signal("sigsegv", none + 24);
  otpc_ref_t ref = spawn_mon(segv, NULL, true);
  expect_down(&ref, want);
  ref = spawn_mon(segv_by_flag, NULL, false);
  expect_down(&ref, want);
  free(want);
  /* SIGBUS at a known address: a mapped file page past the file's end. */
  char path[] = "/tmp/otpc_fault_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  unlink(path);
  CHECK_INT_EQ(ftruncate(fd, page), 0);
  char *file = mmap(NULL, (size_t)page, PROT_READ, MAP_SHARED, fd, 0);
  CHECK(file != MAP_FAILED);
  CHECK_INT_EQ(ftruncate(fd, 0), 0);
  close(fd);
  fault_addr = file + 100;
  want = expected_signal("sigbus", file + 100);
  ref = spawn_mon(bus, NULL, true);
  expect_down(&ref, want);
  free(want);
  /* SIGFPE and SIGILL: the address is the instruction's. */
  otpc_pattern_t *fpe_reason = pat("{signal, " FPE_NAME ", ~u}");
  otpc_pattern_t *ill_reason = pat("{signal, sigill, ~u}");
  const struct {
    void (*fn)(void *);
    otpc_pattern_t *pat;
  } cases[] = {{fpe, fpe_reason}, {ill, ill_reason}};
  for (int i = 0; i < 2; i++) {
    ref = spawn_mon(cases[i].fn, NULL, true);
    char *got = down_reason(&ref);
    otpc_buf_t *t = NULL;
    CHECK_INT_EQ(otpc_term_parse(got, strlen(got), &t, NULL), 0);
    uint64_t addr = 0;
    CHECK_INT_EQ(otpc_match(cases[i].pat, otpc_buf_term(t), &addr), 1);
    CHECK(addr != 0);
    otpc_buf_unref(t);
    free(got);
  }
  otpc_pattern_free(fpe_reason);
  otpc_pattern_free(ill_reason);
  munmap(none, (size_t)page);
  munmap(file, (size_t)page);
  check_node_goes_on();
}

TEST(signals_end_the_process_that_contains_them) {
#ifdef UNDER_ASAN
  /* ASan's own checks see the SIGSEGV and SIGBUS cases first: its
   * instrumentation reads the shadow of the faulting address, which is
   * mapped, and then the access faults; that is ours. Nothing to skip. */
#endif
  run(body_signals);
}

/* After faults were contained on a scheduler, its thread's signal mask
 * is what it was (the handler returned through sigreturn): the same
 * signals, raised again, are contained again. */
static void report_mask(void *arg) {
  otpc_pid_t *to = arg;
  sigset_t set;
  pthread_sigmask(SIG_BLOCK, NULL, &set);
  otpc_sendf(*to, "{mask, ~i}",
             sigismember(&set, SIGSEGV) || sigismember(&set, SIGFPE) ||
                 sigismember(&set, SIGILL) || sigismember(&set, SIGBUS));
}

static void body_mask(void *arg) {
  static otpc_pid_t me;
  me = otpc_self();
  fault_addr = no_access_page();
  for (int round = 0; round < 50; round++) {
    otpc_ref_t a = spawn_mon(segv, NULL, true), b = spawn_mon(fpe, NULL, true);
    free(down_reason(&a));
    free(down_reason(&b));
  }
  otpc_pattern_t *mask = pat("{mask, ~i}");
  for (int i = 0; i < 20; i++) { /* on both schedulers, most likely */
    CHECK_INT_EQ(otpc_spawn(report_mask, &me, NULL, NULL), 0);
    otpc_buf_t *m;
    int blocked = -1;
    CHECK_INT_EQ(otpc_receive(mask, 10000, &m, &blocked), 0);
    CHECK_INT_EQ(blocked, 0);
    otpc_buf_unref(m);
  }
  otpc_pattern_free(mask);
}

TEST(signal_mask_is_restored_after_a_contained_fault) {
  run(body_mask);
}

/* The node option: every process contains signals. */
static void body_node_option(void *arg) {
  otpc_ref_t ref = spawn_mon(fpe, NULL, false);
  char *got = down_reason(&ref);
  CHECK(strncmp(got, "{signal," FPE_NAME ",", strlen(FPE_NAME) + 9) == 0);
  free(got);
  /* and a process may turn it off for itself */
  CHECK_INT_EQ(otpc_contain_signals(false), 1);
  check_node_goes_on();
}

TEST(node_option_contains_signals_in_every_process) {
  otpc_node_opts_t o = {.schedulers = 2, .contain_signals = true};
  run_opts(&o, body_node_option);
}

/* ---- faults that are not contained --------------------------------------- */

/* Runs body on a node in a child process and returns how the child
 * ended. It must not get past the fault: reaching the end exits 0. */
static int in_child(const otpc_node_opts_t *o, void (*body)(void *)) {
  fflush(NULL);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    struct rlimit none = {0, 0};
    setrlimit(RLIMIT_CORE, &none); /* no core files from the tests */
    alarm(120); /* a child that hangs dies of SIGALRM: a failure */
    int fd = open("/dev/null", O_WRONLY);
    if (fd >= 0) dup2(fd, STDERR_FILENO); /* ASan's report, if any */
    otpc_main(o, body, NULL);
    _exit(0);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0) {
  }
  return status;
}

static void check_died_of(int status, int sig) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  /* The sanitizer's handler, which ours chains to, reports the fault and
   * exits with an error status instead of dying of the signal. */
  (void)sig;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
    otpc_test_fail(__FILE__, __LINE__, "the fault was contained");
#else
  if (!WIFSIGNALED(status) || WTERMSIG(status) != sig)
    otpc_test_fail(__FILE__, __LINE__, "status %#x, not killed by signal %d",
                   status, sig);
#endif
}

static void body_segv_uncontained(void *arg) {
  otpc_ref_t ref = spawn_mon(segv, NULL, false);
  (void)down_reason(&ref); /* never comes: the OS process dies */
}

static void body_fpe_uncontained(void *arg) {
  otpc_ref_t ref = spawn_mon(fpe, NULL, false);
  (void)down_reason(&ref);
}

TEST(signals_kill_the_node_unless_contained) {
  otpc_node_opts_t o = {.schedulers = 2};
  fault_addr = no_access_page();
  check_died_of(in_child(&o, body_segv_uncontained), SIGSEGV);
  check_died_of(in_child(&o, body_fpe_uncontained), FPE_SIG);
}

/* Dirty work runs on threads that are not schedulers: not contained. */
static intptr_t dirty_segv(void *arg) {
  volatile char *p = fault_addr;
  return *p;
}

static void dirty_faulter(void *arg) {
  otpc_dirty(dirty_segv, NULL);
}

static void body_dirty_fault(void *arg) {
  otpc_ref_t ref = spawn_mon(dirty_faulter, NULL, true);
  (void)down_reason(&ref);
}

TEST(fault_in_dirty_work_is_not_contained) {
  otpc_node_opts_t o = {.schedulers = 2, .contain_signals = true};
  fault_addr = no_access_page();
  check_died_of(in_child(&o, body_dirty_fault), SIGSEGV);
}

/* The logger calls a custom handler with its handler lock held: a fault
 * there, even in a process that contains signals, would leave the lock
 * held for ever, so it is not contained. */
static int faulting_write(void *arg, const otpc_log_event_t *ev,
                          const char *line, size_t len) {
  volatile char *p = fault_addr;
  return *p;
}

static void log_faulter(void *arg) {
  otpc_log_at(OTPC_LEVEL_ERROR, "test", __FILE__, __LINE__, NULL, NULL, "x");
}

static void body_fault_under_lock(void *arg) {
  otpc_log_handler_config_t cfg = {.type = OTPC_LOG_CUSTOM,
                                   .write = faulting_write};
  CHECK_INT_EQ(otpc_logger_add_handler("faulty", &cfg), 0);
  otpc_ref_t ref = spawn_mon(log_faulter, NULL, true);
  (void)down_reason(&ref);
}

TEST(fault_while_the_runtime_holds_a_lock_is_not_contained) {
  otpc_node_opts_t o = {.schedulers = 2};
  fault_addr = no_access_page();
  check_died_of(in_child(&o, body_fault_under_lock), SIGSEGV);
}

/* ---- assert and fail ----------------------------------------------------- */

static int assert_line, fail_line, long_fail_line;

static void asserter(void *arg) {
  int two = (int)(uintptr_t)arg;
  otpc_assert(two == 2); /* holds */
  assert_line = __LINE__ + 1;
  otpc_assert(two == 3 && "two is three");
}

static void failer(void *arg) {
  fail_line = __LINE__ + 1;
  otpc_fail("bad %s: %d", "value", 42);
}

static void long_failer(void *arg) {
  char big[1000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  long_fail_line = __LINE__ + 1;
  otpc_fail("%s", big);
}

/* The reason equals the term want (which is unreffed). */
static void check_reason(otpc_term_t reason, otpc_buf_t *want) {
  CHECK(want != NULL);
  if (!otpc_term_equal(reason, otpc_buf_term(want))) {
    char *a = NULL, *b = NULL;
    otpc_term_print(reason, &a, NULL);
    otpc_term_print(otpc_buf_term(want), &b, NULL);
    otpc_test_fail(__FILE__, __LINE__, "reason %s, want %s", a, b);
  }
  otpc_buf_unref(want);
}

static void body_assert(void *arg) {
  const char *file = __FILE__, *expr = "two == 3 && \"two is three\"";
  otpc_term_t reason;
  /* The lines are known once the processes ran: build after the DOWN. */
  otpc_ref_t ref = spawn_mon(asserter, (void *)(uintptr_t)2, false);
  otpc_buf_t *m = down_of(&ref, &reason);
  check_reason(reason, otpc_term_fmt("{assert, ~b, ~i, ~b}", file, strlen(file),
                                     assert_line, expr, strlen(expr)));
  otpc_buf_unref(m);
  ref = spawn_mon(failer, NULL, false);
  m = down_of(&ref, &reason);
  check_reason(reason, otpc_term_fmt("{fail, ~b, ~i, ~b}", file, strlen(file),
                                     fail_line, "bad value: 42", (size_t)13));
  otpc_buf_unref(m);
  char big[1000];
  memset(big, 'x', sizeof big - 1);
  ref = spawn_mon(long_failer, NULL, false);
  m = down_of(&ref, &reason);
  check_reason(reason, otpc_term_fmt("{fail, ~b, ~i, ~b}", file, strlen(file),
                                     long_fail_line, big, sizeof big - 1));
  otpc_buf_unref(m);
}

TEST(assert_and_fail_reasons) {
  run(body_assert);
}

/* A handler's terminate runs after the process ended, on the scheduler
 * loop's stack: an assert or exit there replaces the reason, as an
 * exception in terminate does in Erlang, and the node goes on. */
static int crash_handle(void *state, otpc_buf_t *msg) {
  otpc_exit_atom(otpc_atom("first"));
}

static void asserting_terminate(void *state, otpc_term_t reason) {
  if (state != NULL) otpc_exit_atom(otpc_atom("second"));
  otpc_assert(otpc_term_is_atom(reason, otpc_atom("other")));
}

static int crash_init(void *arg, void **state) {
  *state = arg;
  return OTPC_CONTINUE;
}

static const otpc_handler_t bad_terminate_h = {crash_init, crash_handle,
                                               asserting_terminate};

static void body_terminate(void *arg) {
  for (int i = 0; i < 100; i++) {
    otpc_ref_t ref;
    otpc_pid_t pid;
    otpc_spawn_opts_t o = {.monitor = true, .monitor_ref = &ref};
    void *exit_instead = i % 2 ? (void *)1 : NULL;
    CHECK_INT_EQ(otpc_spawn_handler(&bad_terminate_h, exit_instead, &o, &pid),
                 0);
    otpc_sendf(pid, "go");
    char *got = down_reason(&ref);
    if (exit_instead)
      CHECK_STR_EQ(got, "second");
    else
      CHECK(strncmp(got, "{assert,", 8) == 0);
    free(got);
  }
  check_node_goes_on();
}

TEST(exit_or_assert_in_terminate_replaces_the_reason) {
  run(body_terminate);
}

/* ---- what a process owns goes with it, however it dies ------------------- */

/* The runtime's own count of pool blocks in use (src/rt/slab.c). */
enum { SLAB_PROC, SLAB_SIG, SLAB_MSG, SLAB_EXT, SLAB_MONS };
int64_t otpc__slab_in_use(int pool);

static int open_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  CHECK(d != NULL);
  int n = 0;
  while (readdir(d) != NULL) n++;
  closedir(d);
  return n;
}

typedef struct usage {
  size_t heap;
  int64_t procs, sigs, exts; /* exts: extensions and monitor tables */
  int fds;
} usage_t;

static size_t heap_in_use(void) {
#ifdef UNDER_ASAN
  return __sanitizer_get_current_allocated_bytes(); /* ASan's malloc */
#else
  return mallinfo2().uordblks;
#endif
}

static usage_t in_use(void) {
  usage_t u = {heap_in_use(), otpc__slab_in_use(SLAB_PROC),
               otpc__slab_in_use(SLAB_SIG),
               otpc__slab_in_use(SLAB_EXT) + otpc__slab_in_use(SLAB_MONS),
               open_fds()};
  return u;
}

/* The heap may drift by glibc's thread caches; the rest must be exact. */
#define SLACK (64 * 1024)

typedef enum kind {
  K_RETURN, /* cheap ones: */
  K_EXIT,
  K_KILL,
  K_ASSERT,
  K_FAIL,
  K_OVERFLOW, /* slow ones: a fault each */
  K_SEGV,
  K_FPE,
  K_N
} kind_t;

static const char *const kind_names[K_N] = {
    "return", "exit",           "kill",    "assert",
    "fail",   "stack overflow", "sigsegv", "sigfpe"};

/* How many of each die in the test: a million in all of the cheap kinds;
 * of the kinds that take a signal each, 20,000. */
#define CHEAP_EACH (200000 / SCALE)
#define SLOW_EACH (20000 / SCALE)
#define BATCH 1000

static otpc_pid_t keeper;
static otpc_atom_t names[BATCH];
static otpc_pattern_t *never;

/* Everything a process can own, taken by each one: process memory, a
 * descriptor, a timer, a monitor, a link, a name. */
static void take_everything(int slot) {
  char *mem = otpc_palloc(200);
  CHECK(mem != NULL);
  memset(mem, slot, 200);
  int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  CHECK(fd >= 0);
  CHECK_INT_EQ(otpc_own_fd(fd), 0);
  otpc_buf_t *msg = otpc_term_fmt("late");
  otpc_ref_t tref, mref;
  CHECK_INT_EQ(otpc_send_after(3600 * 1000, otpc_self(), msg, &tref), 0);
  otpc_buf_unref(msg);
  CHECK_INT_EQ(otpc_monitor(keeper, &mref), 0);
  CHECK_INT_EQ(otpc_link(keeper), 0);
  CHECK_INT_EQ(otpc_register(names[slot], otpc_self()), 0);
}

static void die(kind_t k) {
  switch (k) {
    case K_RETURN: return;
    case K_EXIT: otpc_exit_atom(otpc_atom("gone"));
    case K_KILL: { /* waits for the kill (a shared pattern: the
                    * process's own mallocs are not released for it) */
      otpc_buf_t *m;
      otpc_receive(never, OTPC_INFINITY, &m);
      return;
    }
    case K_ASSERT: otpc_assert(k != K_ASSERT); return;
    case K_FAIL: otpc_fail("kind %d", (int)k);
    case K_OVERFLOW: recurse(0); return;
    case K_SEGV: segv(NULL); return;
    case K_FPE: fpe(NULL); return;
    default: return;
  }
}

/* arg: kind << 16 | slot */
static void worker(void *arg) {
  uintptr_t a = (uintptr_t)arg;
  take_everything((int)(a & 0xffff));
  die((kind_t)(a >> 16));
}

static int worker_init(void *arg, void **state) {
  *state = arg;
  take_everything((int)((uintptr_t)arg & 0xffff));
  return OTPC_CONTINUE;
}

static int worker_handle(void *state, otpc_buf_t *msg) {
  kind_t k = (kind_t)((uintptr_t)state >> 16);
  if (k == K_RETURN) return OTPC_STOP;
  if (k == K_KILL) return OTPC_CONTINUE; /* waits for the kill */
  die(k);
  return OTPC_CONTINUE;
}

static const otpc_handler_t worker_h = {worker_init, worker_handle, NULL};

/* Traps the EXITs of every worker linked to it and drops them. A handler:
 * between messages it holds no tables it does not use, so what it holds
 * when the counts are taken does not depend on timing. (A sequential
 * keeper frees its emptied monitor table only when its stack is taken
 * for another process, and the baseline then came out one table more or
 * less from run to run.) */
static int keeper_init(void *arg, void **state) {
  otpc_trap_exit(true);
  return OTPC_CONTINUE;
}

static int keeper_handle(void *state, otpc_buf_t *msg) {
  return otpc_term_atom_eq(otpc_buf_term(msg), "stop", 4) ? OTPC_STOP
                                                          : OTPC_CONTINUE;
}

static const otpc_handler_t keeper_h = {keeper_init, keeper_handle, NULL};

static bool reason_fits(kind_t k, otpc_term_t r) {
  size_t arity;
  otpc_term_t first;
  switch (k) {
    case K_RETURN: return otpc_term_is_atom(r, OTPC_ATOM_NORMAL);
    case K_EXIT: return otpc_term_is_atom(r, otpc_atom("gone"));
    case K_KILL: return otpc_term_is_atom(r, otpc_atom("killed"));
    case K_OVERFLOW: return otpc_term_is_atom(r, otpc_atom("stack_overflow"));
    default: break;
  }
  if (otpc_term_get_tuple(r, &arity, &first) != 0) return false;
  if (k == K_ASSERT)
    return arity == 4 && otpc_term_is_atom(first, otpc_atom("assert"));
  if (k == K_FAIL)
    return arity == 4 && otpc_term_is_atom(first, otpc_atom("fail"));
  otpc_atom_t sig = otpc_atom(k == K_SEGV ? "sigsegv" : FPE_NAME);
  return arity == 3 && otpc_term_is_atom(first, otpc_atom("signal")) &&
         otpc_term_is_atom(otpc_term_next(first), sig);
}

/* One batch of `n` processes dying of kind k, half sequential, half
 * handlers; every DOWN must carry the kind's reason. */
static void batch(kind_t k, int n) {
  static otpc_ref_t refs[BATCH];
  static otpc_pid_t pids[BATCH];
  otpc_buf_t *kill = otpc_term_fmt("kill");
  for (int i = 0; i < n; i++) {
    void *arg = (void *)((uintptr_t)k << 16 | (uintptr_t)i);
    otpc_spawn_opts_t o = {
        .monitor = true, .monitor_ref = &refs[i], .contain_signals = true};
    if (i % 2 == 0)
      CHECK_INT_EQ(otpc_spawn(worker, arg, &o, &pids[i]), 0);
    else
      CHECK_INT_EQ(otpc_spawn_handler(&worker_h, arg, &o, &pids[i]), 0);
    if (i % 2 == 1 && k != K_KILL) otpc_sendf(pids[i], "die");
  }
  if (k == K_KILL)
    for (int i = 0; i < n; i++)
      CHECK_INT_EQ(otpc_exit_signal(pids[i], otpc_buf_term(kill)), 0);
  otpc_buf_unref(kill);
  for (int i = 0; i < n; i++) {
    otpc_term_t reason;
    otpc_buf_t *m = down_of(&refs[i], &reason);
    if (!reason_fits(k, reason)) {
      char *text = NULL;
      otpc_term_print(reason, &text, NULL);
      otpc_test_fail(__FILE__, __LINE__, "%s: reason %s", kind_names[k], text);
    }
    otpc_buf_unref(m);
  }
}

/* Waits until only `base` processes are left and retired blocks are
 * freed (the schedulers free them within a few naps). */
static void settle_to(size_t base) {
  for (int i = 0; i < 1000 && otpc_process_count() > base; i++) otpc_sleep(5);
  CHECK_INT_EQ(otpc_process_count(), base);
  otpc_sleep(50);
}

static void body_release(void *arg) {
  char name[32];
  for (int i = 0; i < BATCH; i++) {
    snprintf(name, sizeof name, "fault_worker_%d", i);
    names[i] = otpc_atom(name);
  }
  never = pat("never");
  fault_addr = no_access_page();
  CHECK_INT_EQ(otpc_spawn_handler(&keeper_h, NULL, NULL, &keeper), 0);
  size_t base = otpc_process_count();
  /* Warm-up: a batch of each kind, twice, fills what stays allocated on
   * purpose up to fixed bounds (pools, caches, the process table's free
   * list, the stacks' pool); the baseline is taken after it. */
  for (int round = 0; round < 2; round++)
    for (int k = 0; k < K_N; k++) batch((kind_t)k, BATCH);
  settle_to(base);
  usage_t before = in_use();
  long total = 0;
  for (int k = 0; k < K_N; k++) {
    long each = k < K_OVERFLOW ? CHEAP_EACH : SLOW_EACH;
    for (long done = 0; done < each; done += BATCH) {
      int n = each - done < BATCH ? (int)(each - done) : BATCH;
      batch((kind_t)k, n);
      total += n;
    }
  }
  settle_to(base);
  usage_t after = in_use();
  printf(
      "  %ld processes died (%d of each cheap kind, %d of each fault); "
      "heap %zu -> %zu, fds %d -> %d\n",
      total, CHEAP_EACH, SLOW_EACH, before.heap, after.heap, before.fds,
      after.fds);
  if (after.heap > before.heap + SLACK)
    otpc_test_fail(__FILE__, __LINE__, "heap grew %zu -> %zu", before.heap,
                   after.heap);
  CHECK_INT_EQ(after.procs, before.procs);
  CHECK_INT_EQ(after.sigs, before.sigs);
  CHECK_INT_EQ(after.exts, before.exts);
  CHECK_INT_EQ(after.fds, before.fds);
  /* The keeper's tables are back to empty too: every link and monitor
   * the workers had on it went with them. */
  otpc_proc_info_t info;
  CHECK_INT_EQ(otpc_process_info(keeper, &info), 0);
  CHECK_INT_EQ(info.links, 0);
  CHECK_INT_EQ(info.message_queue_len, 0);
  otpc_sendf(keeper, "stop");
  otpc_pattern_free(never);
}

TEST(whatever_the_death_a_process_leaks_nothing) {
  /* Small stacks: an overflow costs what the stack holds. */
  otpc_node_opts_t o = {.schedulers = 2, .stack_size = 128 * 1024};
  run_opts(&o, body_release);
}
