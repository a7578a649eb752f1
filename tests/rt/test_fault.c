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

static void segv(void *arg) {
  volatile char *p = fault_addr;
  (void)*p;
}

static void bus(void *arg) {
  volatile char *p = fault_addr;
  (void)*p;
}

static volatile int zero = 0;

static void fpe(void *arg) {
  volatile int x = 7 / zero;
  (void)x;
}

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
  otpc_pattern_t *fpe_reason = pat("{signal, sigfpe, ~u}");
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

/* The node option: every process contains signals. */
static void body_node_option(void *arg) {
  otpc_ref_t ref = spawn_mon(fpe, NULL, false);
  char *got = down_reason(&ref);
  CHECK(strncmp(got, "{signal,sigfpe,", 15) == 0);
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
#ifdef UNDER_ASAN
  /* ASan reports the fault it was chained to and exits non-zero. */
  (void)sig;
  CHECK(!(WIFEXITED(status) && WEXITSTATUS(status) == 0));
#else
  CHECK(WIFSIGNALED(status));
  CHECK_INT_EQ(WTERMSIG(status), sig);
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
  fault_addr = NULL;
  check_died_of(in_child(&o, body_segv_uncontained), SIGSEGV);
  check_died_of(in_child(&o, body_fpe_uncontained), SIGFPE);
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
  fault_addr = NULL;
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
  fault_addr = NULL;
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
