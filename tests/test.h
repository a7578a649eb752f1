/*
 * test.h: the project's test runner, in the manner of libuv's: a test is a
 * function declared with TEST(name); the runner (test_main.c) runs each in
 * a child process, so a crash fails that test alone, and ends with the line
 * "N passed, N failed".
 *
 *   TEST(atom_interning) {
 *     CHECK(otpc_atom("ok") == OTPC_ATOM_OK);
 *     CHECK_INT_EQ(otpc_term_get_int(t, &v), 0);
 *   }
 *
 * Run one test: ./otpc_test_term atom_interning. Run in-process (for a
 * debugger): OTPC_TEST_NOFORK=1.
 */
#ifndef OTPC_TEST_H
#define OTPC_TEST_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*otpc_test_fn)(void);
void otpc_test_register(const char *name, otpc_test_fn fn);
void otpc_test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

#define TEST(name)                                                            \
  static void test_##name(void);                                              \
  __attribute__((constructor)) static void test_register_##name(void) {      \
    otpc_test_register(#name, test_##name);                                   \
  }                                                                           \
  static void test_##name(void)

#define CHECK(cond)                                                           \
  do {                                                                        \
    if (!(cond)) otpc_test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);      \
  } while (0)

#define CHECK_INT_EQ(a, b)                                                    \
  do {                                                                        \
    long long a_ = (long long)(a), b_ = (long long)(b);                       \
    if (a_ != b_)                                                             \
      otpc_test_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b,    \
                     a_, b_);                                                 \
  } while (0)

#define CHECK_STR_EQ(a, b)                                                    \
  do {                                                                        \
    const char *a_ = (a), *b_ = (b);                                          \
    if (!a_ || !b_ || strcmp(a_, b_) != 0)                                    \
      otpc_test_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a,    \
                     #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)");             \
  } while (0)

#endif
