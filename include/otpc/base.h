/*
 * otpc/base.h: what every layer shares: the version, the error convention
 * and the allocation hook.
 *
 * Errors: every function that can fail returns 0 (or a positive value) on
 * success and a negative OTPC_E* code on failure. otpc_strerror() gives the
 * text and otpc_err_name() the symbol, both from the single table below.
 */
#ifndef OTPC_BASE_H
#define OTPC_BASE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(OTPC_BUILDING) && defined(__GNUC__)
#define OTPC_API __attribute__((visibility("default")))
#else
#define OTPC_API
#endif

#define OTPC_VERSION_MAJOR 0
#define OTPC_VERSION_MINOR 1
#define OTPC_VERSION_PATCH 0
#define OTPC_VERSION_STRING "0.1.0"

/* The error table: symbol, text. Codes are negative and stable. */
#define OTPC_ERRNO_MAP(X)                                                     \
  X(EINVAL, -1, "invalid argument")                                           \
  X(ENOMEM, -2, "out of memory")                                              \
  X(ETRUNC, -3, "term data ends too early")                                   \
  X(EBADTAG, -4, "unknown or misplaced term tag")                             \
  X(EVERSION, -5, "term data does not start with version byte 131")           \
  X(ELENGTH, -6, "a length is larger than the data or the limits allow")      \
  X(EDEPTH, -7, "terms are nested too deeply")                                \
  X(EUTF8, -8, "invalid UTF-8 in an atom")                                    \
  X(EATOM, -9, "atom too long, or the atom table is full")                    \
  X(EZLIB, -10, "compressed term is corrupt")                                 \
  X(ETRAIL, -11, "bytes follow the term")                                     \
  X(ERANGE, -12, "value does not fit the requested C type")                   \
  X(ETYPE, -13, "term is of another type")                                    \
  X(ESYNTAX, -14, "syntax error in term text")                                \
  X(EBADFMT, -15, "malformed format or pattern")                              \
  X(EBADARG, -16, "bad value for a term field")                               \
  X(ESTATE, -17, "builder misuse: too many or too few terms")                \
  X(EIO, -18, "input or output failed")                                      \
  X(ENOTPROC, -19, "only a process can do this")                              \
  X(ETIMEDOUT, -20, "timed out")                                              \
  X(ENONAME, -21, "no process has that name")                                 \
  X(ENOPROC, -22, "no such process")                                          \
  X(ENOTIMER, -23, "no such timer: it fired or was cancelled")                \
  X(ESYSLIMIT, -24, "a system limit was reached")                             \
  X(EEXIST, -25, "already exists")                                           \
  X(EEXITED, -26, "the process exited")                                       \
  X(EIGNORED, -27, "init returned ignore")                                    \
  X(ESTOPPED, -28, "init stopped")                                            \
  X(ENOAPP, -29, "no such application")                                       \
  X(ENOTSTARTED, -30, "the application, or one it needs, is not started")     \
  X(ECYCLE, -31, "applications depend on each other in a cycle")            \
  X(EBADMODULE, -50, "not a loadable otpc module")                            \
  X(ENOTPURGED, -51, "the module's old code must be purged first")            \
  X(EINUSE, -52, "processes still run the module's old code")                 \
  X(ENOMODULE, -53, "no such module is loaded")

enum {
#define OTPC_ERRNO_ENUM_(name, code, text) OTPC_##name = (code),
  OTPC_ERRNO_MAP(OTPC_ERRNO_ENUM_)
#undef OTPC_ERRNO_ENUM_
};

/* Text for an error code, e.g. "out of memory"; never NULL. */
OTPC_API const char *otpc_strerror(int err);
/* Symbol for an error code, e.g. "ENOMEM"; never NULL. */
OTPC_API const char *otpc_err_name(int err);

/*
 * Allocation hook. All memory otpc allocates goes through these three
 * functions, so tests can make allocation fail on purpose. Set it before
 * anything else runs; NULL restores the C library's.
 */
typedef struct otpc_allocator {
  void *(*malloc)(size_t size);
  void *(*realloc)(void *ptr, size_t size);
  void (*free)(void *ptr);
} otpc_allocator_t;

OTPC_API void otpc_set_allocator(const otpc_allocator_t *allocator);

#ifdef __cplusplus
}
#endif
#endif /* OTPC_BASE_H */
