/*
 * otpc/term.h: Erlang terms in the external term format (ETF).
 *
 * A term lives in a byte buffer exactly as Erlang's term_to_binary/1 writes
 * it. Nothing is converted into another representation:
 *
 *   - otpc_buf_t is an immutable, reference-counted buffer holding one
 *     encoded term (with its version byte 131). It is what a message is.
 *   - otpc_term_t is a small view that points into such bytes. Reading a
 *     term walks the bytes in place and never allocates.
 *   - otpc_builder_t writes a new term, by calls or by a format string,
 *     and hands back an otpc_buf_t.
 *   - otpc_pattern_t is a compiled pattern ("{get, ~p, _}") that matches a
 *     view and binds pieces of it to C variables.
 *
 * Outside input is checked once by otpc_term_decode()/otpc_term_validate();
 * every other function assumes the bytes under a view were checked and never
 * reads outside them.
 *
 * Atoms are interned in a process-wide table (otpc_atom_t is an index), so
 * comparing two interned atoms is one integer compare. Atoms are never freed,
 * as in Erlang.
 */
#ifndef OTPC_TERM_H
#define OTPC_TERM_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "otpc/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * Atoms
 * ------------------------------------------------------------------------ */

typedef uint32_t otpc_atom_t;

/* Atoms every node uses, interned at fixed indices. 0 is "no atom". */
#define OTPC_ATOM_TABLE(X)                                                    \
  X(OK, "ok")                                                                 \
  X(ERROR, "error")                                                           \
  X(TRUE, "true")                                                             \
  X(FALSE, "false")                                                           \
  X(UNDEFINED, "undefined")                                                   \
  X(NORMAL, "normal")                                                         \
  X(KILL, "kill")                                                             \
  X(KILLED, "killed")                                                         \
  X(NOPROC, "noproc")                                                         \
  X(NOCONNECTION, "noconnection")                                             \
  X(EXIT, "EXIT")                                                             \
  X(DOWN, "DOWN")                                                             \
  X(PROCESS, "process")                                                       \
  X(TIMEOUT, "timeout")                                                       \
  X(SHUTDOWN, "shutdown")                                                     \
  X(INFINITY, "infinity")                                                     \
  X(NONODE, "nonode@nohost")                                                  \
  X(EMPTY, "")

enum {
  OTPC_ATOM_NONE = 0,
#define OTPC_ATOM_ENUM_(sym, text) OTPC_ATOM_##sym,
  OTPC_ATOM_TABLE(OTPC_ATOM_ENUM_)
#undef OTPC_ATOM_ENUM_
  OTPC_ATOM_FIRST_FREE_
};

/* Longest atom, in characters (Erlang's limit). */
#define OTPC_ATOM_MAX_CHARS 255
/* Most atoms the table holds (Erlang's default). */
#define OTPC_ATOM_MAX_COUNT (1u << 20)

/* Interns the UTF-8 text (len bytes) and stores its atom in *out.
 * Errors: OTPC_EUTF8, OTPC_EATOM (too long or table full), OTPC_ENOMEM. */
OTPC_API int otpc_atom_new(const char *utf8, size_t len, otpc_atom_t *out);
/* Like otpc_atom_new() for a NUL-terminated string; returns OTPC_ATOM_NONE
 * on error. Convenient for literals: otpc_atom("ok"). */
OTPC_API otpc_atom_t otpc_atom(const char *utf8);
/* Finds an atom that already exists; OTPC_EINVAL if it does not. */
OTPC_API int otpc_atom_lookup(const char *utf8, size_t len, otpc_atom_t *out);
/* The atom's UTF-8 text, NUL-terminated; *len (if not NULL) gets its length
 * in bytes. The pointer stays valid for the life of the program. */
OTPC_API const char *otpc_atom_name(otpc_atom_t atom, size_t *len);
/* How many atoms exist. */
OTPC_API size_t otpc_atom_count(void);

/* ------------------------------------------------------------------------
 * Identifiers: pids, ports, references
 *
 * These are Erlang's own identifiers: a node name, numbers and the node's
 * creation. A local process's pid has this node's name and creation.
 * ------------------------------------------------------------------------ */

typedef struct otpc_pid {
  otpc_atom_t node;  /* node name, e.g. 'nonode@nohost' */
  uint32_t id;       /* process number */
  uint32_t serial;   /* generation of that number */
  uint32_t creation; /* incarnation of the node */
} otpc_pid_t;

typedef struct otpc_port {
  otpc_atom_t node;
  uint32_t creation;
  uint64_t id;
} otpc_port_t;

#define OTPC_REF_MAX_WORDS 5
typedef struct otpc_ref {
  otpc_atom_t node;
  uint32_t creation;
  uint32_t len;                    /* words used in id, 1..5 */
  uint32_t id[OTPC_REF_MAX_WORDS]; /* id[0] is the first word on the wire */
} otpc_ref_t;

/* ------------------------------------------------------------------------
 * Buffers: immutable, reference-counted encoded terms
 * ------------------------------------------------------------------------ */

typedef struct otpc_buf otpc_buf_t;

/* A new buffer holding a copy of size bytes (NULL data: uninitialised, for
 * the caller to fill before sharing). NULL when out of memory. */
OTPC_API otpc_buf_t *otpc_buf_new(const void *data, size_t size);
OTPC_API otpc_buf_t *otpc_buf_ref(otpc_buf_t *buf);
OTPC_API void otpc_buf_unref(otpc_buf_t *buf);
OTPC_API const uint8_t *otpc_buf_data(const otpc_buf_t *buf);
OTPC_API uint8_t *otpc_buf_mutable_data(otpc_buf_t *buf); /* before sharing */
OTPC_API size_t otpc_buf_size(const otpc_buf_t *buf);

/* ------------------------------------------------------------------------
 * Views
 * ------------------------------------------------------------------------ */

/* Term types, listed in Erlang's term order: number < atom < reference <
 * fun < port < pid < tuple < map < nil < list < bit string. */
typedef enum otpc_type {
  OTPC_TYPE_NONE = 0, /* an empty view: nothing found */
  OTPC_TYPE_INTEGER,
  OTPC_TYPE_FLOAT,
  OTPC_TYPE_ATOM,
  OTPC_TYPE_REF,
  OTPC_TYPE_FUN,
  OTPC_TYPE_PORT,
  OTPC_TYPE_PID,
  OTPC_TYPE_TUPLE,
  OTPC_TYPE_MAP,
  OTPC_TYPE_NIL,
  OTPC_TYPE_LIST,
  OTPC_TYPE_BITSTRING /* binaries and bit strings */
} otpc_type_t;

/*
 * A view of one term. Usually it points at the term's tag byte; an element
 * of a list written compactly as a string (STRING_EXT) has no bytes of its
 * own, so such a view carries the character's value instead. Treat the
 * fields as private; copy views freely, they own nothing.
 */
typedef struct otpc_term {
  const uint8_t *p; /* the tag byte, or NULL */
  uint32_t chr;     /* value, when this is a string element */
  uint32_t kind;    /* 0 none, 1 encoded at p, 2 string element */
} otpc_term_t;

/* The term held by a buffer that holds checked ETF (version byte first). */
OTPC_API otpc_term_t otpc_buf_term(const otpc_buf_t *buf);
OTPC_API otpc_type_t otpc_term_type(otpc_term_t t);
OTPC_API bool otpc_term_is_none(otpc_term_t t);
/* Bytes the term takes in ETF (without a version byte). */
OTPC_API size_t otpc_term_size(otpc_term_t t);
/* The term stored right after t: the next tuple element, the value after a
 * map key, and so on. Undefined for string elements (use a list iterator). */
OTPC_API otpc_term_t otpc_term_next(otpc_term_t t);

/* Integers. OTPC_ETYPE if t is no integer, OTPC_ERANGE if it does not fit. */
OTPC_API int otpc_term_get_int64(otpc_term_t t, int64_t *out);
OTPC_API int otpc_term_get_uint64(otpc_term_t t, uint64_t *out);
OTPC_API int otpc_term_get_int(otpc_term_t t, int *out);
/* Any integer as sign and magnitude, the magnitude little-endian bytes
 * without high zero bytes (zero has nbytes 0). For big integers *mag points
 * into the term; for small ones into scratch (at least 8 bytes). */
OTPC_API int otpc_term_get_bigint(otpc_term_t t, bool *negative,
                                  const uint8_t **mag, size_t *nbytes,
                                  uint8_t scratch[8]);
OTPC_API int otpc_term_get_double(otpc_term_t t, double *out);

/* Atoms. get_atom interns the atom (creating it if new, as binary_to_term
 * does). atom_eq compares with UTF-8 text and never allocates. */
OTPC_API int otpc_term_get_atom(otpc_term_t t, otpc_atom_t *out);
OTPC_API bool otpc_term_atom_eq(otpc_term_t t, const char *utf8, size_t len);
OTPC_API bool otpc_term_is_atom(otpc_term_t t, otpc_atom_t atom);
/* A bool is the atom true or false. */
OTPC_API int otpc_term_get_bool(otpc_term_t t, bool *out);

/* Binaries and bit strings: *data points into the term. *bits is the
 * number of bits used in the last byte, 1..8 (8 for a binary; 8 for an
 * empty one too). */
OTPC_API int otpc_term_get_binary(otpc_term_t t, const uint8_t **data,
                                  size_t *bytes, unsigned *bits);

/* Tuples: arity, and a view of the first element (none if empty). The
 * following elements are reached with otpc_term_next(). */
OTPC_API int otpc_term_get_tuple(otpc_term_t t, size_t *arity,
                                 otpc_term_t *first);
/* Element i (0-based) of a tuple, or a none view. O(i). */
OTPC_API otpc_term_t otpc_term_tuple_elem(otpc_term_t t, size_t i);

/* Lists, proper or improper, however encoded. */
typedef struct otpc_list_iter {
  const uint8_t *p;   /* next element, or the tail once done */
  uint32_t left;      /* elements still to come */
  uint32_t is_string; /* elements are bytes of a STRING_EXT */
} otpc_list_iter_t;

/* Starts iterating t, which must be a list or nil (else OTPC_ETYPE). */
OTPC_API int otpc_term_list_iter(otpc_term_t t, otpc_list_iter_t *it);
/* Next element into *elem; false when no elements are left. */
OTPC_API bool otpc_list_next(otpc_list_iter_t *it, otpc_term_t *elem);
/* Once otpc_list_next() returned false: the tail (nil for a proper list). */
OTPC_API otpc_term_t otpc_list_tail(const otpc_list_iter_t *it);
/* Length of a proper list; OTPC_ETYPE for anything else. */
OTPC_API int otpc_term_list_length(otpc_term_t t, size_t *len);

/* Maps: the number of pairs and a view of the first key. Keys and values
 * alternate: value = otpc_term_next(key), next key = otpc_term_next(value).
 * Pairs are in the order of the encoding. */
OTPC_API int otpc_term_get_map(otpc_term_t t, size_t *pairs,
                               otpc_term_t *first_key);
/* The value stored under a key equal (=:=) to key, or a none view. */
OTPC_API otpc_term_t otpc_term_map_get(otpc_term_t map, otpc_term_t key);
/* The value stored under an atom key, or a none view. */
OTPC_API otpc_term_t otpc_term_map_get_atom(otpc_term_t map, const char *key);

/* Identifiers (the node name is interned). */
OTPC_API int otpc_term_get_pid(otpc_term_t t, otpc_pid_t *out);
OTPC_API int otpc_term_get_port(otpc_term_t t, otpc_port_t *out);
OTPC_API int otpc_term_get_ref(otpc_term_t t, otpc_ref_t *out);
/* An export fun, fun M:F/A. */
OTPC_API int otpc_term_get_export(otpc_term_t t, otpc_atom_t *module,
                                  otpc_atom_t *function, unsigned *arity);

/* ------------------------------------------------------------------------
 * Checking and decoding outside input
 * ------------------------------------------------------------------------ */

typedef struct otpc_decode_opts {
  /* Deepest nesting of tuples, lists and maps accepted; 0 means the
   * default, OTPC_TERM_DEFAULT_MAX_DEPTH. */
  uint32_t max_depth;
  /* Largest inflated size accepted for a compressed term; 0 means the
   * default, OTPC_TERM_DEFAULT_MAX_INFLATE. */
  size_t max_inflate;
} otpc_decode_opts_t;

#define OTPC_TERM_DEFAULT_MAX_DEPTH 10000u
#define OTPC_TERM_DEFAULT_MAX_INFLATE ((size_t)1 << 31)

/* What went wrong and where: the byte offset in the input where the bad
 * data was found (for a compressed term, in the inflated data). */
typedef struct otpc_decode_error {
  int code;
  size_t offset;
} otpc_decode_error_t;

/*
 * Checks one encoded term with no version byte at data[0..len) and returns
 * the number of bytes it takes (> 0), or a negative OTPC_E* code with the
 * position in *err (may be NULL). Bytes after the term are not looked at:
 * this is for framed data holding several terms. Compressed terms are not
 * accepted here (OTPC_EBADTAG). opts may be NULL.
 */
OTPC_API long otpc_term_validate(const void *data, size_t len,
                                 const otpc_decode_opts_t *opts,
                                 otpc_decode_error_t *err);

/*
 * Decodes what term_to_binary/1,2 wrote: version byte 131, then one term,
 * possibly compressed, and nothing after it. On success *term views the
 * term and 0 is returned. If the term was compressed it is inflated into a
 * new buffer stored in *owned (release it with otpc_buf_unref() when done
 * with the view); otherwise *owned is NULL and the view points into data.
 */
OTPC_API int otpc_term_decode(const void *data, size_t len,
                              const otpc_decode_opts_t *opts,
                              otpc_term_t *term, otpc_buf_t **owned,
                              otpc_decode_error_t *err);

/* Copies and checks ETF (version byte first) into a new buffer. */
OTPC_API int otpc_buf_decode(const void *data, size_t len,
                             const otpc_decode_opts_t *opts, otpc_buf_t **out,
                             otpc_decode_error_t *err);

/* term_to_binary(T, [compressed]): a new buffer holding t compressed with
 * zlib at level (0-9, -1 for zlib's default). */
OTPC_API int otpc_term_compress(otpc_term_t t, int level, otpc_buf_t **out);

/* ------------------------------------------------------------------------
 * Building terms
 *
 * ETF is written in prefix order, so a term is built by announcing a
 * container and then writing its contents:
 *
 *     otpc_builder_t b;
 *     otpc_builder_init(&b);
 *     otpc_build_tuple(&b, 2);           // {
 *     otpc_build_atom(&b, "ok");         //   ok,
 *     otpc_build_list(&b, 2);            //   [
 *     otpc_build_int(&b, 1);             //     1,
 *     otpc_build_int(&b, 2);             //     2
 *     otpc_build_nil(&b);                //   | []]
 *     otpc_buf_t *msg = otpc_builder_finish(&b, &rc);   // }
 *
 * Errors are sticky: the calls return the first error, and finish returns
 * NULL with it. Finish also checks that exactly one whole term was written.
 * ------------------------------------------------------------------------ */

typedef struct otpc_builder {
  /* private */
  uint8_t *data;
  size_t len;
  size_t cap;
  uint64_t pending; /* terms still owed to open containers */
  int err;
  uint8_t small[112];
} otpc_builder_t;

OTPC_API void otpc_builder_init(otpc_builder_t *b);
/* Frees what the builder holds; after finish this is not needed. */
OTPC_API void otpc_builder_dispose(otpc_builder_t *b);
/* The encoded term so far (version byte first). */
OTPC_API const uint8_t *otpc_builder_data(const otpc_builder_t *b,
                                          size_t *len);
/* Hands the finished term over as a buffer; resets the builder. */
OTPC_API otpc_buf_t *otpc_builder_finish(otpc_builder_t *b, int *err);

OTPC_API int otpc_build_int(otpc_builder_t *b, int64_t v);
OTPC_API int otpc_build_uint(otpc_builder_t *b, uint64_t v);
/* Magnitude little-endian, nbytes long (high zero bytes are dropped). */
OTPC_API int otpc_build_bigint(otpc_builder_t *b, bool negative,
                               const uint8_t *mag, size_t nbytes);
OTPC_API int otpc_build_double(otpc_builder_t *b, double v);
OTPC_API int otpc_build_atom(otpc_builder_t *b, const char *utf8);
OTPC_API int otpc_build_atom_len(otpc_builder_t *b, const char *utf8,
                                 size_t len);
OTPC_API int otpc_build_atom_id(otpc_builder_t *b, otpc_atom_t atom);
OTPC_API int otpc_build_bool(otpc_builder_t *b, bool v);
OTPC_API int otpc_build_binary(otpc_builder_t *b, const void *data,
                               size_t bytes);
/* A bit string of nbits bits taken from the high end of each byte. */
OTPC_API int otpc_build_bitstring(otpc_builder_t *b, const void *data,
                                  size_t nbits);
/* A tuple of arity elements; write the elements next. */
OTPC_API int otpc_build_tuple(otpc_builder_t *b, size_t arity);
/* A list of n elements (n >= 1); write the n elements, then the tail
 * (otpc_build_nil() for a proper list). For n == 0 write nil instead. */
OTPC_API int otpc_build_list(otpc_builder_t *b, size_t n);
OTPC_API int otpc_build_nil(otpc_builder_t *b);
/* A list of the bytes of s (like Erlang's "abc"). */
OTPC_API int otpc_build_string(otpc_builder_t *b, const char *s, size_t len);
/* A map of n pairs; write key, value, key, value, ... next. */
OTPC_API int otpc_build_map(otpc_builder_t *b, size_t pairs);
OTPC_API int otpc_build_pid(otpc_builder_t *b, const otpc_pid_t *pid);
OTPC_API int otpc_build_port(otpc_builder_t *b, const otpc_port_t *port);
OTPC_API int otpc_build_ref(otpc_builder_t *b, const otpc_ref_t *ref);
OTPC_API int otpc_build_export(otpc_builder_t *b, otpc_atom_t module,
                               otpc_atom_t function, unsigned arity);
/* Copies an existing term (a view into checked bytes). */
OTPC_API int otpc_build_term(otpc_builder_t *b, otpc_term_t t);

/*
 * Builds from a format: Erlang term syntax with holes filled from the
 * arguments, in order.
 *
 *   ~a  atom from const char * (UTF-8)   ~A  atom from otpc_atom_t
 *   ~i  int                              ~l  int64_t
 *   ~u  uint64_t                         ~f  double
 *   ~s  string (list) from const char *  ~b  binary: const void *, size_t
 *   ~p  pid: const otpc_pid_t *          ~r  ref: const otpc_ref_t *
 *   ~t  term: otpc_term_t                ~~  a literal tilde is not needed
 *
 *   otpc_build_fmt(&b, "{reply, ~r, [~i, ~a | ~t]}", &ref, 42, "ok", tail);
 *
 * The format is parsed on each call; OTPC_EBADFMT names a bad format.
 */
OTPC_API int otpc_build_fmt(otpc_builder_t *b, const char *fmt, ...);
OTPC_API int otpc_build_vfmt(otpc_builder_t *b, const char *fmt, va_list ap);
/* Shorthand: a new buffer from a format; NULL on any error. */
OTPC_API otpc_buf_t *otpc_term_fmt(const char *fmt, ...);
/* The same from a va_list; *err (may be NULL) gets the error code. */
OTPC_API otpc_buf_t *otpc_term_vfmt(const char *fmt, va_list ap, int *err);

/* ------------------------------------------------------------------------
 * Text: parse and print Erlang term syntax
 * ------------------------------------------------------------------------ */

/*
 * Parses one term written in Erlang syntax (as io:format("~w") or the shell
 * would write it, with an optional trailing '.') and appends it to b.
 * Accepts atoms (plain and quoted), integers of any size (with base#digits
 * and $c), floats, strings, binaries (<<1,2>>, <<"text">>, <<5:3>>), lists,
 * tuples, maps, pids <A.B.C>, refs #Ref<A.B.C.D>, ports #Port<A.B> and
 * fun M:F/A. *errpos (may be NULL) gets the offset of a syntax error.
 */
OTPC_API int otpc_build_parse(otpc_builder_t *b, const char *text, size_t len,
                              size_t *errpos);
/* Shorthand: parse into a new buffer. */
OTPC_API int otpc_term_parse(const char *text, size_t len, otpc_buf_t **out,
                             size_t *errpos);

/*
 * Prints t exactly as Erlang's io_lib:format("~w", [T]) does. Pids, ports
 * and references of the local node's name ('nonode@nohost', or the node set
 * with otpc_term_set_local_node()) print with node number 0 whatever their
 * creation, as Erlang prints its own; those of other nodes print with the node's name hashed to a number,
 * since Erlang's numbers for other nodes depend on its connection history.
 *
 * otpc_term_print() returns a new NUL-terminated string (free it with
 * otpc_free()) and its length in *len (may be NULL).
 */
OTPC_API int otpc_term_print(otpc_term_t t, char **out, size_t *len);
/* As io_lib:format("~0tp", [T]) prints t (what Erlang's logger prints
 * terms with): the text of otpc_term_print(), except that a list of
 * printable characters prints as a string, "abc", and a printable binary
 * as <<"abc">> (<<"é"/utf8>> for valid UTF-8 beyond ASCII). Printable is
 * Erlang's default range: Latin-1 (32-126, 160-255, \b \t \n \v \f \r
 * \e). Same ownership as otpc_term_print(). */
OTPC_API int otpc_term_print_p(otpc_term_t t, char **out, size_t *len);
/* Like snprintf: writes at most size bytes including the NUL and returns
 * the length the whole text needs, or a negative error. */
OTPC_API long otpc_term_snprint(char *buf, size_t size, otpc_term_t t);
OTPC_API int otpc_term_fprint(FILE *f, otpc_term_t t);
/* The node whose identifiers print with node number 0 and which parsed
 * identifiers belong to: its name and creation (OTPC_ATOM_NONE: back to
 * 'nonode@nohost', creation 0). The runtime sets it when a node starts. */
OTPC_API void otpc_term_set_local_node(otpc_atom_t node, uint32_t creation);
/* Frees memory that otpc handed to the caller. */
OTPC_API void otpc_free(void *p);

/* ------------------------------------------------------------------------
 * Order and hashing
 * ------------------------------------------------------------------------ */

/* Erlang's total order: < 0, 0 or > 0. Integers and floats compare by
 * value, so 1 and 1.0 compare equal, as with ==. Within funs, local funs
 * sort before export funs (as in OTP 25). An empty view sorts before
 * every term. */
OTPC_API int otpc_term_compare(otpc_term_t a, otpc_term_t b);
/* Exact equality, =:=. Same term however it was encoded. */
OTPC_API bool otpc_term_equal(otpc_term_t a, otpc_term_t b);
/* erlang:phash2(T), in 0..2^27-1, identical to Erlang's. */
OTPC_API uint32_t otpc_phash2(otpc_term_t t);
/* erlang:phash2(T, Range), range 1..2^32; identical to Erlang's. A range
 * of 0 gives 0; a range above 2^32 gives the whole 32-bit hash. */
OTPC_API uint32_t otpc_phash2_range(otpc_term_t t, uint64_t range);

/* ------------------------------------------------------------------------
 * Patterns
 *
 * A pattern is Erlang term syntax where
 *   _        (or _Name) matches anything,
 *   ~a       binds an atom              (otpc_atom_t *)
 *   ~i ~l ~u binds an integer           (int *, int64_t *, uint64_t *)
 *   ~f       binds a float              (double *)
 *   ~b       binds a binary             (const uint8_t **, size_t *)
 *   ~p ~r    binds a pid, a ref         (otpc_pid_t *, otpc_ref_t *)
 *   ~t       binds any term             (otpc_term_t *)
 * and everything else must be equal (=:=) to the term at that place.
 * A typed hole fails to match a term of another type or one out of range.
 *
 *   otpc_pattern_t *p;
 *   otpc_pattern_compile("{get, ~p, ~t}", &p, NULL);
 *   if (otpc_match(p, msg, &from, &key) == 1) ...
 * ------------------------------------------------------------------------ */

typedef struct otpc_pattern otpc_pattern_t;

OTPC_API int otpc_pattern_compile(const char *text, otpc_pattern_t **out,
                                  size_t *errpos);
OTPC_API void otpc_pattern_free(otpc_pattern_t *p);
/* Number of C pointers the pattern binds (~b counts two). */
OTPC_API size_t otpc_pattern_binds(const otpc_pattern_t *p);
/* 1 and the holes filled if t matches; 0 if not (the holes may have been
 * written partly). */
OTPC_API int otpc_match(const otpc_pattern_t *p, otpc_term_t t, ...);
OTPC_API int otpc_match_v(const otpc_pattern_t *p, otpc_term_t t,
                          void *const *binds);

#ifdef __cplusplus
}
#endif
#endif /* OTPC_TERM_H */
