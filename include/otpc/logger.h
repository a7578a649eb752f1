/*
 * otpc/logger.h: Erlang's logger for C. Levels, log events with structured
 * metadata, formatters and handlers (console, size-rotated files, your
 * own), and the crash report a process exit produces.
 *
 *   OTPC_LOG_ERROR("disk %s is %d%% full", name, pct);
 *
 * An event passes the primary level (notice unless set), then each
 * handler's level and filter; each handler that takes it formats it and
 * writes it. Logging works from any thread, in a process or not. Handlers
 * can be added and removed while other threads log. The logger starts with one
 * handler, "default": text lines on stderr.
 *
 * Writes are synchronous: a handler writes one whole line with one write()
 * under its own lock, so lines never interleave and a rotation never
 * splits or loses one. Nothing is buffered, so nothing is lost in a crash;
 * the price is that a slow disk slows the threads that log to that file
 * (see docs/logger.md for why, and for the limits).
 */
#ifndef OTPC_LOGGER_H
#define OTPC_LOGGER_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "otpc/base.h"
#include "otpc/term.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define OTPC_LOG_PRINTF_(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define OTPC_LOG_PRINTF_(fmt, args)
#endif

/* ------------------------------------------------------------------------
 * Levels: Erlang's (and syslog's), most severe first. An event passes a
 * level setting when it is at least as severe: event level <= setting.
 * ------------------------------------------------------------------------ */

enum {
  OTPC_LEVEL_NONE = -1,   /* a setting that lets nothing pass */
  OTPC_LEVEL_DEFAULT = 0, /* in settings: the default of that setting */
  OTPC_LEVEL_EMERGENCY = 1,
  OTPC_LEVEL_ALERT = 2,
  OTPC_LEVEL_CRITICAL = 3,
  OTPC_LEVEL_ERROR = 4,
  OTPC_LEVEL_WARNING = 5,
  OTPC_LEVEL_NOTICE = 6,
  OTPC_LEVEL_INFO = 7,
  OTPC_LEVEL_DEBUG = 8,
  OTPC_LEVEL_ALL = 8 /* a setting that lets everything pass */
};

/* "error" for OTPC_LEVEL_ERROR, "none" for OTPC_LEVEL_NONE (OTPC_LEVEL_ALL
 * is "debug"); NULL for anything else. */
OTPC_API const char *otpc_log_level_name(int level);
/* The level named (also "none" and "all"); OTPC_EINVAL if none is. */
OTPC_API int otpc_log_level_parse(const char *name);

/* The primary level, checked before any handler (OTPC_LEVEL_DEFAULT:
 * notice, as in Erlang). */
OTPC_API int otpc_logger_set_primary_level(int level);
OTPC_API int otpc_logger_primary_level(void);
/* Whether an event of this level passes the primary level: one atomic
 * load. The OTPC_LOG_* macros check it before evaluating their arguments,
 * as Erlang's ?LOG_* macros do. */
OTPC_API bool otpc_logger_allow(int level);

/* ------------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------------ */

/*
 * What formatters, filters and handlers see. Valid during the call only.
 * The message is either text (printf already applied) or a report term.
 */
typedef struct otpc_log_event {
  int level;            /* OTPC_LEVEL_EMERGENCY .. OTPC_LEVEL_DEBUG */
  int64_t time_us;      /* system time, microseconds since 1970 (UTC) */
  bool has_pid;         /* logged by (or, for crash reports, about) a process */
  otpc_pid_t pid;       /* that process, if has_pid */
  otpc_atom_t node;     /* this node's name */
  const char *module;   /* the call site: OTPC_LOG_MODULE, else the file's */
  const char *file;     /*   base name without extension; the file as */
  int line;             /*   __FILE__ gives it, the line, the function */
  const char *function; /*   (__func__). All NULL (line 0) if unknown. */
  const char *text;     /* the message if it is text (NUL-terminated), */
  size_t text_len;      /*   and its length; NULL for a report */
  otpc_term_t report;   /* the message when it is a report; none for text */
  otpc_term_t meta;     /* the caller's metadata (a map), or none */
} otpc_log_event_t;

/*
 * Writes the event as the term Erlang's logger would hand its handlers:
 *
 *   #{level => error,
 *     msg => {string, <<"text">>} | {report, Report},
 *     meta => #{time => Microseconds, pid => Pid, node => Node,
 *               module => Mod, function => Fun, file => <<"f.c">>,
 *               line => 42, ...the caller's metadata...}}
 *
 * pid only if the event has one, the call site only if known. A key of the
 * caller's metadata replaces the logger's key of the same name, as in
 * Erlang. For shipping events elsewhere in ETF.
 */
OTPC_API int otpc_log_event_build(const otpc_log_event_t *ev,
                                  otpc_builder_t *b);

/* ------------------------------------------------------------------------
 * Formatters: an event in, the bytes a handler writes out (one line,
 * ending with a newline, for the built-in ones).
 * ------------------------------------------------------------------------ */

/* Where a formatter writes: a growable buffer. Errors are sticky: after
 * an out-of-memory every call returns OTPC_ENOMEM and writes nothing. */
typedef struct otpc_log_out otpc_log_out_t;

OTPC_API int otpc_log_out_write(otpc_log_out_t *out, const void *data,
                                size_t len);
OTPC_API int otpc_log_out_puts(otpc_log_out_t *out, const char *s);
OTPC_API int otpc_log_out_printf(otpc_log_out_t *out, const char *fmt, ...)
    OTPC_LOG_PRINTF_(2, 3);
/* The term as io_lib:format("~0tp") prints it (otpc_term_print_p: strings
 * and printable binaries as text), as Erlang's logger formatter does. */
OTPC_API int otpc_log_out_term(otpc_log_out_t *out, otpc_term_t t);

/* Returns 0, or a negative code: the event is then not written by that
 * handler, and the logging call returns the code. */
typedef int (*otpc_log_format_fn)(const otpc_log_event_t *ev,
                                  otpc_log_out_t *out, void *arg);

typedef struct otpc_log_formatter {
  otpc_log_format_fn format; /* NULL: the text formatter */
  void *arg;                 /* handed to format; must outlive the handler */
} otpc_log_formatter_t;

/* Options of the text formatter; zeroed options are the defaults. */
typedef struct otpc_log_text_opts {
  bool multi_line; /* keep the message's newlines (default: one line, as
                      Erlang's single_line => true: ",?\n\s*" becomes ", ") */
  bool local_time; /* local time and its offset (default: UTC, +00:00) */
  bool full_path;  /* the file as __FILE__ gives it (default: base name) */
} otpc_log_text_opts_t;

/*
 * The text formatter, like logger_formatter's single-line template:
 *
 *   2026-11-22T04:50:01.123456+00:00 error: <0.83.0> file.c:42 message
 *
 * The pid only for an event with one, the location only when known. A
 * report prints as "key: value, key: value" (a map or a list of pairs)
 * or as the term; a crash report as "crasher: ...". arg: a
 * const otpc_log_text_opts_t *, or NULL for the defaults.
 */
OTPC_API int otpc_log_text_format(const otpc_log_event_t *ev,
                                  otpc_log_out_t *out, void *arg);
/* The term formatter: otpc_log_event_build()'s term as text, with a final
 * ".\n", so that a file of events reads back with file:consult/1 or
 * otpc_term_parse() line by line. arg is not used. */
OTPC_API int otpc_log_term_format(const otpc_log_event_t *ev,
                                  otpc_log_out_t *out, void *arg);

/* ------------------------------------------------------------------------
 * Handlers
 * ------------------------------------------------------------------------ */

typedef enum otpc_log_type {
  OTPC_LOG_STDERR = 0, /* console: standard error */
  OTPC_LOG_STDOUT = 1, /* console: standard output */
  OTPC_LOG_FILE = 2,   /* a file, rotated by size */
  OTPC_LOG_CUSTOM = 3  /* your write callback */
} otpc_log_type_t;

/* A handler's settings; zeroed settings are a stderr handler taking all
 * levels, with the text formatter. Copied by add_handler (the strings
 * too; the callbacks' args are not). */
typedef struct otpc_log_handler_config {
  otpc_log_type_t type;
  int level;                      /* OTPC_LEVEL_DEFAULT: all */
  otpc_log_formatter_t formatter; /* format NULL: text, with .text */
  otpc_log_text_opts_t text;      /* the text formatter's options */
  /* Called before formatting; false drops the event for this handler. */
  bool (*filter)(const otpc_log_event_t *ev, void *arg);
  void *filter_arg;

  /* OTPC_LOG_FILE, as Erlang's logger_std_h. The file is opened for
   * appending (created 0644). With max_bytes, a line that would take the
   * file past max_bytes first rotates it: file.log becomes file.log.0,
   * file.log.0 becomes file.log.1, ... up to file.log.<max_files - 1>
   * (the oldest goes), and a new file.log is opened. With max_files 0 the
   * file is emptied instead. A file only exceeds max_bytes when one line
   * is longer than that. */
  const char *file;
  uint64_t max_bytes; /* 0: never rotate */
  unsigned max_files; /* archives kept */

  /* OTPC_LOG_CUSTOM: write gets each formatted line (and the event);
   * a negative return disables the handler. close runs once, when the
   * handler is removed and no call is using it any more. */
  int (*write)(void *arg, const otpc_log_event_t *ev, const char *line,
               size_t len);
  void (*close)(void *arg);
  void *arg;
} otpc_log_handler_config_t;

/* Most handlers at once. */
#define OTPC_LOGGER_MAX_HANDLERS 32

/* Adds a handler under an id (1 to 63 bytes). OTPC_EEXIST if the id is
 * taken, OTPC_ESYSLIMIT if there are too many, OTPC_EIO with errno set if
 * the file cannot be opened. */
OTPC_API int otpc_logger_add_handler(const char *id,
                                     const otpc_log_handler_config_t *cfg);
/* Removes it: no event that starts after this returns reaches it, and the
 * file is closed once the events under way are written. OTPC_EINVAL if no
 * handler has the id. */
OTPC_API int otpc_logger_remove_handler(const char *id);
OTPC_API int otpc_logger_set_handler_level(const char *id, int level);
/*
 * 0 while the handler works; once a write failed (disk full, EIO, a
 * failed rotation) the negative code it failed with. A failed handler is
 * disabled: it is reported once on stderr, takes no more events, and stays
 * until removed (add it again to retry). OTPC_EINVAL for an unknown id.
 */
OTPC_API int otpc_logger_handler_status(const char *id);

/* The clock events are stamped with: microseconds of system time. NULL
 * restores the real one. For tests; set it while nothing logs. */
OTPC_API void otpc_logger_set_clock(int64_t (*now_us)(void));

/* ------------------------------------------------------------------------
 * Logging
 *
 * Each returns 0 when every handler that took the event wrote it, or the
 * first error (OTPC_ENOMEM while formatting, the code of a handler that
 * failed and was disabled). An event logged from inside a formatter, a
 * filter or a handler on the same thread is dropped (OTPC_ESTATE) rather
 * than deadlock. meta: a map of metadata, or NULL.
 * ------------------------------------------------------------------------ */

OTPC_API int otpc_log_at(int level, const char *module, const char *file,
                         int line, const char *function,
                         const otpc_term_t *meta, const char *fmt, ...)
    OTPC_LOG_PRINTF_(7, 8);
OTPC_API int otpc_vlog_at(int level, const char *module, const char *file,
                          int line, const char *function,
                          const otpc_term_t *meta, const char *fmt, va_list ap)
    OTPC_LOG_PRINTF_(7, 0);
/* A report: any term; maps and lists of {Key, Value} print best. */
OTPC_API int otpc_log_report_at(int level, const char *module, const char *file,
                                int line, const char *function,
                                const otpc_term_t *meta, otpc_term_t report);

/*
 * The crash report of a process that exited with reason, as proc_lib
 * writes it: one error event about pid, whose report is
 *
 *   #{label => {proc_lib, crash},
 *     report => [[{pid, Pid}, {error_info, {exit, Reason, []}} | Extra], []]}
 *
 * with metadata domain => [otp, sasl]. extra (NULL, a map, or a list of
 * {Key, Value}) adds items such as initial_call, registered_name or
 * last_message. As in proc_lib, exits with reason normal, shutdown or
 * {shutdown, _} are no crash and log nothing. For the runtime and the
 * supervisors; callable from any thread.
 */
OTPC_API int otpc_logger_crash_report(otpc_pid_t pid, otpc_term_t reason,
                                      const otpc_term_t *extra);

/* The call site's module name; define it before including this header to
 * name your module, else the file's base name is used. */
#ifndef OTPC_LOG_MODULE
#define OTPC_LOG_MODULE NULL
#endif

/* OTPC_LOG(level, fmt, ...): the arguments are evaluated only if the
 * level passes the primary level. */
#define OTPC_LOG(level, ...)                                          \
  do {                                                                \
    if (otpc_logger_allow(level))                                     \
      (void)otpc_log_at((level), OTPC_LOG_MODULE, __FILE__, __LINE__, \
                        __func__, NULL, __VA_ARGS__);                 \
  } while (0)

/* With metadata: meta is a const otpc_term_t * to a map (or NULL). */
#define OTPC_LOG_META(level, meta, ...)                               \
  do {                                                                \
    if (otpc_logger_allow(level))                                     \
      (void)otpc_log_at((level), OTPC_LOG_MODULE, __FILE__, __LINE__, \
                        __func__, (meta), __VA_ARGS__);               \
  } while (0)

/* A report term (otpc_term_t), with metadata (or NULL). */
#define OTPC_LOG_REPORT(level, report, meta)                                 \
  do {                                                                       \
    if (otpc_logger_allow(level))                                            \
      (void)otpc_log_report_at((level), OTPC_LOG_MODULE, __FILE__, __LINE__, \
                               __func__, (meta), (report));                  \
  } while (0)

#define OTPC_LOG_EMERGENCY(...) OTPC_LOG(OTPC_LEVEL_EMERGENCY, __VA_ARGS__)
#define OTPC_LOG_ALERT(...) OTPC_LOG(OTPC_LEVEL_ALERT, __VA_ARGS__)
#define OTPC_LOG_CRITICAL(...) OTPC_LOG(OTPC_LEVEL_CRITICAL, __VA_ARGS__)
#define OTPC_LOG_ERROR(...) OTPC_LOG(OTPC_LEVEL_ERROR, __VA_ARGS__)
#define OTPC_LOG_WARNING(...) OTPC_LOG(OTPC_LEVEL_WARNING, __VA_ARGS__)
#define OTPC_LOG_NOTICE(...) OTPC_LOG(OTPC_LEVEL_NOTICE, __VA_ARGS__)
#define OTPC_LOG_INFO(...) OTPC_LOG(OTPC_LEVEL_INFO, __VA_ARGS__)
#define OTPC_LOG_DEBUG(...) OTPC_LOG(OTPC_LEVEL_DEBUG, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif /* OTPC_LOGGER_H */
