/*
 * dist_int.h: the distribution layer's internals and the contracts between
 * its files.
 *
 *   sock.c       sockets that wait through the runtime in a process (and
 *                with poll() on a plain thread), with absolute deadlines
 *   tls.c        TLS over those sockets (OpenSSL), as inet_tls_dist
 *   epmd.c       the epmd client and the embedded epmd server
 *   handshake.c  the version 6 handshake, both roles, over an I/O callback
 *   frame.c      distribution headers, the atom cache, fragments, control
 *                messages: bytes in, decoded messages out, and back
 *   conn.c       connections: the table of nodes, a reader and a writer
 *                process per connection, the outgoing queue, ticks, and
 *                the routing of signals to pids of other nodes
 *   net.c        starting and stopping, the listener, net_kernel, ping,
 *                nodes(), monitor_node
 *
 * Threads: sending may happen on any thread; it only touches a
 * connection's queue under the connection's lock. The table of
 * connections has its own lock, taken before a connection's lock.
 */
#ifndef OTPC_DIST_INT_H
#define OTPC_DIST_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../rt/rt_int.h"
#include "otpc/dist.h"
#include "otpc/otp.h"

#ifndef OTPC_LOG_MODULE
#define OTPC_LOG_MODULE "dist"
#endif
#include "otpc/logger.h"

/* What we advertise, and what a peer must have (OTP 25 and 26 refuse a
 * peer without their mandatory flags, so we ask the same). */
#define DIST_FLAGS_MANDATORY                                            \
  (OTPC_DFLAG_EXTENDED_REFERENCES | OTPC_DFLAG_FUN_TAGS |               \
   OTPC_DFLAG_NEW_FUN_TAGS | OTPC_DFLAG_EXTENDED_PIDS_PORTS |           \
   OTPC_DFLAG_EXPORT_PTR_TAG | OTPC_DFLAG_BIT_BINARIES |                \
   OTPC_DFLAG_NEW_FLOATS | OTPC_DFLAG_UTF8_ATOMS | OTPC_DFLAG_MAP_TAG | \
   OTPC_DFLAG_BIG_CREATION | OTPC_DFLAG_HANDSHAKE_23)
#define DIST_FLAGS_OURS                                             \
  (DIST_FLAGS_MANDATORY | OTPC_DFLAG_DIST_MONITOR |                 \
   OTPC_DFLAG_DIST_MONITOR_NAME | OTPC_DFLAG_SMALL_ATOM_TAGS |      \
   OTPC_DFLAG_DIST_HDR_ATOM_CACHE | OTPC_DFLAG_SEND_SENDER |        \
   OTPC_DFLAG_BIG_SEQTRACE_LABELS | OTPC_DFLAG_EXIT_PAYLOAD |       \
   OTPC_DFLAG_FRAGMENTS | OTPC_DFLAG_UNLINK_ID | OTPC_DFLAG_V4_NC | \
   OTPC_DFLAG_ALIAS | OTPC_DFLAG_MANDATORY_25_DIGEST | OTPC_DFLAG_SPAWN)

#define DIST_NAME_MAX 1023   /* bytes of a node name we accept */
#define DIST_SETUP_MS 7000   /* Erlang's net_setuptime default */
#define DIST_FRAG_SIZE 65536 /* payload bytes per outgoing fragment */
/* Messages up to this size are copied into the writer's batch (and get
 * their control written there); larger ones are written from their
 * buffers. */
#define DIST_COPY_MAX 2048
#define DIST_FRAME_MAX ((size_t)1 << 31) /* largest incoming frame */

/* ------------------------------------------------------------------------
 * sock.c
 * ------------------------------------------------------------------------ */

/* Absolute deadlines in otpc_now_ms() time; -1: none. */
int64_t otpc__deadline(int64_t timeout_ms);
/* Waits until fd is ready: through the runtime in a process, with poll()
 * elsewhere. Returns the ready events or OTPC_ETIMEDOUT. */
int otpc__sock_wait(int fd, int events, int64_t deadline);
/* Reads or writes exactly n bytes of a non-blocking socket. OTPC_EIO on
 * error or end of stream, OTPC_ETIMEDOUT. */
int otpc__sock_read(int fd, void *buf, size_t n, int64_t deadline);
int otpc__sock_write(int fd, const void *buf, size_t n, int64_t deadline);
/* A non-blocking TCP connection to host:port (name lookup on the dirty
 * pool in a process). */
int otpc__sock_connect(const char *host, uint16_t port, int64_t deadline,
                       int *fd);
/* A non-blocking listening socket; *bound gets the port. */
int otpc__sock_listen(const char *addr, uint16_t port, int *fd,
                      uint16_t *bound);
/* Accepts one connection if one waits (non-blocking): fd, or < 0. */
int otpc__sock_accept(int lfd);

/* ------------------------------------------------------------------------
 * tls.c: a connection's transport is its socket, or, when distribution
 * runs with TLS, an otpc__tls_t over it. Each call takes the descriptor
 * the caller waits on (the reader's and the writer's are dups of the
 * same socket) and may be made by the reader and the writer at once.
 * ------------------------------------------------------------------------ */

typedef struct otpc__tls otpc__tls_t;

/* Loads the certificates and keys (otpc_dist_start) / drops them. */
int otpc__tls_setup(const otpc_dist_tls_t *opts);
void otpc__tls_cleanup(void);
/* Whether connections run TLS. */
bool otpc__tls_on(void);
/* The TLS handshake on a connected socket, as server (accepted) or client
 * (made to a node on host). 0 and *t; else a negative code with the
 * reason (a refused certificate, a peer that does not speak TLS) in why. */
int otpc__tls_start(int fd, bool server, const char *host, int64_t deadline,
                    otpc__tls_t **t, char *why, size_t whylen);
void otpc__tls_free(otpc__tls_t *t);
/* What the last failed call on t met, for the log. */
const char *otpc__tls_why(const otpc__tls_t *t);
/* Reads what has come, up to n bytes, waiting until something has: the
 * count, 0 at the end of the stream, OTPC_EIO, OTPC_ETIMEDOUT. */
ssize_t otpc__tls_recv(otpc__tls_t *t, int fd, void *buf, size_t n,
                       int64_t deadline);
/* Reads or writes exactly n bytes, as otpc__sock_read and _write. */
int otpc__tls_read(otpc__tls_t *t, int fd, void *buf, size_t n,
                   int64_t deadline);
int otpc__tls_write(otpc__tls_t *t, int fd, const void *buf, size_t n,
                    int64_t deadline);

/* ------------------------------------------------------------------------
 * epmd.c
 * ------------------------------------------------------------------------ */

#define EPMD_DEFAULT_PORT 4369

/* ALIVE2_REQ: registers alive (the part before '@') with the port; the
 * registration lasts while *keep stays open. */
int otpc__epmd_register(uint16_t epmd_port, const char *alive, uint16_t port,
                        bool hidden, int64_t deadline, int *keep,
                        uint32_t *creation);
/* PORT_PLEASE2_REQ: the port of alive on host. OTPC_ENONAME if unknown. */
int otpc__epmd_port_please(const char *host, uint16_t epmd_port,
                           const char *alive, int64_t deadline, uint16_t *port);
/* NAMES_REQ: epmd's text ("name N at port P\n"...), otpc_free() it. */
int otpc__epmd_names(const char *host, uint16_t epmd_port, int64_t deadline,
                     char **text);
/* A client's request to the server, checked. */
typedef struct otpc__epmd_req {
  uint8_t type;   /* 120 ALIVE2, 122 PORT_PLEASE2, 110 NAMES, ... */
  char name[256]; /* ALIVE2, PORT_PLEASE2 */
  uint16_t port, high, low;
  uint8_t node_type, proto;
} otpc__epmd_req_t;
/* Reads a request body (without its 2-byte length): 0, or a negative
 * code for bad bytes. */
int otpc__epmd_parse(const uint8_t *req, size_t n, otpc__epmd_req_t *r);
/* The embedded server: listens on addr:port and serves in processes.
 * OTPC_EEXIST if the port is taken (an epmd runs already). */
int otpc__epmd_server_start(const char *addr, uint16_t port);
void otpc__epmd_server_stop(void);

/* ------------------------------------------------------------------------
 * handshake.c
 * ------------------------------------------------------------------------ */

typedef struct otpc__hs_io {
  /* read or write exactly n bytes: 0, or a negative code */
  int (*read)(void *ctx, void *buf, size_t n);
  int (*write)(void *ctx, const void *buf, size_t n);
  void *ctx;
  bool len4; /* 4-byte message lengths (TLS, as inet_tls_dist), not 2 */
} otpc__hs_io_t;

/* The acceptor asks what to answer a peer that named itself: "ok",
 * "ok_simultaneous", "nok", "not_allowed" or "alive". For "alive" the
 * peer's answer (true: go on) is passed to alive_answer. */
typedef struct otpc__hs_policy {
  const char *(*status)(void *ctx, const char *peer, uint64_t flags);
  void (*alive_answer)(void *ctx, const char *peer, bool go_on);
  void *ctx;
} otpc__hs_policy_t;

typedef struct otpc__hs {
  /* in */
  const char *self;  /* our full node name */
  uint64_t flags;    /* ours */
  uint32_t creation; /* ours */
  const char *cookie;
  const char *expect; /* initiator: the node we call */
  /* initiator, when the peer answers "alive" (it still has a connection
   * from us): whether this attempt is still wanted. NULL: yes. */
  bool (*still_wanted)(void *ctx);
  void *ctx;
  /* out */
  char peer[DIST_NAME_MAX + 1];
  uint64_t peer_flags;
  uint32_t peer_creation;
  char why[160]; /* why it failed, for the log */
  bool nok;      /* initiator: the peer said nok (simultaneous) */
} otpc__hs_t;

/* Runs the handshake; 0 when the connection is up. */
int otpc__hs_initiate(otpc__hs_t *hs, const otpc__hs_io_t *io);
int otpc__hs_accept(otpc__hs_t *hs, const otpc__hs_io_t *io,
                    const otpc__hs_policy_t *policy);
/* MD5 of the cookie and the challenge's decimal text. */
void otpc__hs_digest(uint32_t challenge, const char *cookie, uint8_t out[16]);

/* ------------------------------------------------------------------------
 * frame.c
 * ------------------------------------------------------------------------ */

/* Control message operations (erts "Protocol between Connected Nodes"). */
enum {
  DOP_LINK = 1,
  DOP_SEND = 2,
  DOP_EXIT = 3,
  DOP_UNLINK = 4,
  DOP_NODE_LINK = 5,
  DOP_REG_SEND = 6,
  DOP_GROUP_LEADER = 7,
  DOP_EXIT2 = 8,
  DOP_SEND_TT = 12,
  DOP_EXIT_TT = 13,
  DOP_REG_SEND_TT = 16,
  DOP_EXIT2_TT = 18,
  DOP_MONITOR_P = 19,
  DOP_DEMONITOR_P = 20,
  DOP_MONITOR_P_EXIT = 21,
  DOP_SEND_SENDER = 22,
  DOP_SEND_SENDER_TT = 23,
  DOP_PAYLOAD_EXIT = 24,
  DOP_PAYLOAD_EXIT_TT = 25,
  DOP_PAYLOAD_EXIT2 = 26,
  DOP_PAYLOAD_EXIT2_TT = 27,
  DOP_PAYLOAD_MONITOR_P_EXIT = 28,
  DOP_SPAWN_REQUEST = 29,
  DOP_SPAWN_REQUEST_TT = 30,
  DOP_SPAWN_REPLY = 31,
  DOP_SPAWN_REPLY_TT = 32,
  DOP_ALIAS_SEND = 33,
  DOP_ALIAS_SEND_TT = 34,
  DOP_UNLINK_ID = 35,
  DOP_UNLINK_ID_ACK = 36
};

/* A decoded control message and what follows it. Which fields are set
 * depends on op; the kinds of the operations that have *_TT and PAYLOAD
 * variants are folded into the base ones (see dist_kind). */
typedef struct otpc__dmsg {
  int op; /* DOP_* as received */
  otpc_pid_t from, to;
  otpc_atom_t to_name;   /* REG_SEND, and MONITOR_P/DEMONITOR_P by name */
  otpc_atom_t from_name; /* MONITOR_P_EXIT by name */
  otpc_ref_t ref;        /* monitors; ALIAS_SEND's alias */
  uint64_t id;           /* UNLINK_ID, UNLINK_ID_ACK */
  otpc_buf_t *ctrl;      /* the control tuple, version byte first, for
                          * SPAWN_REQUEST (and when it came with atom
                          * cache refs); else NULL: read in place */
  otpc_buf_t *payload;   /* message or exit reason, or NULL */
} otpc__dmsg_t;

void otpc__dmsg_clear(otpc__dmsg_t *m);

/* Incoming state of one connection: the atom cache and the fragmented
 * messages being put together. */
typedef struct otpc__frag otpc__frag_t;
typedef struct otpc__rx {
  otpc_atom_t cache[2048]; /* 8 segments of 256 */
  otpc__frag_t *frags;     /* sequences in progress */
  size_t nfrags;
  size_t frag_bytes; /* bytes held by them */
} otpc__rx_t;

void otpc__rx_init(otpc__rx_t *rx);
void otpc__rx_free(otpc__rx_t *rx);
/* One frame's body (without its 4-byte length). 1: a message in *out (the
 * caller clears it); 0: nothing to do (a tick, a fragment); < 0: bad
 * bytes, with a reason in why. */
int otpc__rx_frame(otpc__rx_t *rx, const uint8_t *data, size_t len,
                   otpc__dmsg_t *out, char *why, size_t whylen);
/* Decodes a control tuple (version byte first) into m's fields. */
int otpc__dmsg_decode_ctrl(otpc__dmsg_t *m);

/* Builds a control tuple from a format (otpc_build_fmt). */
otpc_buf_t *otpc__ctrl_fmt(const char *fmt, ...);

/* How an outgoing message is cut into frames: bytes of header, then the
 * control's and the payload's bytes (without their version bytes). */
typedef struct otpc__txframe {
  uint8_t head[32];
  size_t head_len;
  const uint8_t *a; /* bytes from the control */
  size_t alen;
  const uint8_t *b; /* bytes from the payload */
  size_t blen;
} otpc__txframe_t;

/* The frames of one message: call with *offset 0 first, then again while
 * it returns 1 (more frames follow). seq names the fragment sequence. */
int otpc__tx_next(const otpc_buf_t *ctrl, const otpc_buf_t *payload,
                  bool fragments, uint64_t seq, size_t *offset,
                  otpc__txframe_t *f);

/* The control of a plain message, written straight into the writer's
 * batch: {22, From, To} (SEND_SENDER) when sender, else {2, '', To}
 * (SEND); no version byte. _size says how many bytes _put writes. */
size_t otpc__ctrl_send_size(const otpc_pid_t *from, const otpc_pid_t *to,
                            bool sender);
size_t otpc__ctrl_send_put(uint8_t *out, const otpc_pid_t *from,
                           const otpc_pid_t *to, bool sender);

/* ------------------------------------------------------------------------
 * conn.c and net.c
 * ------------------------------------------------------------------------ */

typedef struct otpc__dist {
  _Atomic int running;
  otpc_atom_t node; /* our name */
  char name[DIST_NAME_MAX + 1];
  char host[256]; /* the part after '@' */
  char cookie[256];
  uint32_t creation;
  uint64_t flags;
  bool hidden;
  unsigned ticktime; /* seconds */
  uint16_t port;     /* we listen on */
  uint16_t epmd_port;
  char listen_addr[64];
  int listen_fd;
  int epmd_fd;      /* our registration */
  bool epmd_server; /* we run the embedded one */
  otpc_pid_t listener, net_kernel, rex;
} otpc__dist_t;

extern otpc__dist_t otpc__dist;

/* Starts the connection machinery / ends every connection. */
void otpc__conn_init(void);
void otpc__conn_shutdown(void);
/* Takes over a socket accepted by the listener (in a new process). */
int otpc__conn_accept(int fd);
/* The route for signals to other nodes' pids (installed in rt). */
void otpc__dist_route(otpc_pid_t to, otpc__sig_t *sig);
/* Sends a control message (and payload) to node; connects if needed.
 * Takes over ctrl and payload. sender orders it among others. */
int otpc__dist_enqueue(otpc_atom_t node, otpc_buf_t *ctrl, otpc_buf_t *payload,
                       otpc_pid_t sender);
/* Connection state for node: 1 up, 0 pending, -1 none. Starts a
 * connection if none and connect is set. */
int otpc__conn_state(otpc_atom_t node, bool connect);
/* MONITOR_P by name for the calling process (conn.c): the monitor is
 * kept as a bond, so that demonitor names the target and noconnection
 * reaches it. */
int otpc__monitor_remote_name(otpc_pid_t self, otpc_atom_t name,
                              otpc_atom_t node, const otpc_ref_t *ref);
/* Starts and registers `rex` (rex.c). */
int otpc__rex_start(otpc_pid_t *pid);
/* The C function exported as m:f (rex.c). */
bool otpc__rpc_lookup(otpc_atom_t m, otpc_atom_t f, otpc_rpc_fn *fn,
                      void **ctx);
/* SPAWN_REQUEST m: starts the process, which waits for a `go` message.
 * 0 with its pid and the SPAWN_REPLY flags asked for (1 link, 2
 * monitor); else the error atom for the reply (spawn.c). */
int otpc__spawn_request(otpc__dmsg_t *m, otpc_pid_t *pid, unsigned *flags,
                        otpc_atom_t *error);
/* Node events for monitor_node subscribers (net.c). */
void otpc__node_event(otpc_atom_t node, bool up, bool hidden);
/* The peer's flags on a connection that is up (0 if none). */
uint64_t otpc__conn_flags(otpc_atom_t node);
size_t otpc__conn_nodes(otpc_atom_t *out, size_t max, bool hidden);
int otpc__conn_close(otpc_atom_t node);

#endif /* OTPC_DIST_INT_H */
