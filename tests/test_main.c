/*
 * test_main.c: runs the tests that TEST() registered, each in its own child
 * process (unless OTPC_TEST_NOFORK is set), and prints one line per test
 * and the closing line "N passed, N failed".
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

#define MAX_TESTS 2048

static struct {
  const char *name;
  otpc_test_fn fn;
} tests[MAX_TESTS];
static int ntests;

void otpc_test_register(const char *name, otpc_test_fn fn) {
  if (ntests == MAX_TESTS) {
    fprintf(stderr, "too many tests\n");
    exit(2);
  }
  tests[ntests].name = name;
  tests[ntests].fn = fn;
  ntests++;
}

void otpc_test_fail(const char *file, int line, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "%s:%d: ", file, line);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  fflush(stderr);
  exit(1);
}

static int run_one(int i, int nofork) {
  if (nofork) {
    tests[i].fn();
    return 0;
  }
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    tests[i].fn();
    /* exit, not _exit: LeakSanitizer checks the child at exit. */
    exit(0);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
  if (WIFSIGNALED(status))
    fprintf(stderr, "  killed by signal %d\n", WTERMSIG(status));
  return -1;
}

int main(int argc, char **argv) {
  int nofork = getenv("OTPC_TEST_NOFORK") != NULL;
  int passed = 0, failed = 0;
  for (int i = 0; i < ntests; i++) {
    int wanted = argc < 2;
    for (int a = 1; a < argc; a++)
      if (strcmp(argv[a], tests[i].name) == 0) wanted = 1;
    if (!wanted) continue;
    if (run_one(i, nofork) == 0) {
      printf("ok   %s\n", tests[i].name);
      passed++;
    } else {
      printf("FAIL %s\n", tests[i].name);
      failed++;
    }
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
