/*
 * otpc/dist.h: Erlang distribution. An otpc node with a name ("name@host",
 * from otpc_node_opts_t.name) becomes a member of an Erlang cluster: it
 * registers with epmd (or runs an embedded one), accepts and makes
 * connections with the version 6 handshake, and carries messages and
 * signals to pids of other nodes as Erlang does.
 *
 *   otpc_node_opts_t n = {.name = "calc@localhost", .cookie = "secret"};
 *   otpc_node_start(&n);
 *   otpc_dist_start(NULL);            // listen, register with epmd
 *   ...
 *   otpc_send(remote_pid, msg);       // connects on first use
 *   otpc_send_remote(name, node, msg) // {Name, Node} ! Msg
 *   ...
 *   otpc_dist_stop();                 // before otpc_node_stop()
 *
 * Once distribution runs, otpc_send() and the other signal functions of
 * otpc/rt.h reach pids of other nodes (links and monitors included, with
 * noconnection when a node goes away); a registered process `net_kernel`
 * answers pings, so net_adm:ping/1 from Erlang gets pong; `rex` and erpc's
 * spawn requests run C functions exported with otpc_rpc_export(). Guide:
 * docs/distribution.md.
 */
#ifndef OTPC_DIST_H
#define OTPC_DIST_H

#include <stdbool.h>
#include <stdint.h>

#include "otpc/base.h"
#include "otpc/rt.h"
#include "otpc/term.h"

#ifdef __cplusplus
extern "C" {
#endif

/* TLS for the distribution, compatible with Erlang's inet_tls_dist
 * (`erl -proto_dist inet_tls -ssl_dist_optfile FILE`): every connection,
 * accepted or made, runs TLS (1.2 or later) first, then the usual
 * handshake and frames inside it. Files are PEM. Guide:
 * docs/distribution.md, "TLS distribution". */
typedef struct otpc_dist_tls {
  const char *certfile; /* this node's certificate (and chain); required */
  const char *keyfile;  /* its private key; NULL: in certfile */
  /* The CAs a peer's certificate must chain to. With one, peers are
   * verified both ways (unless verify_none): a node that connects must
   * present a certificate, and the node we connect to must present one
   * that also names its host (the part after '@'; unless no_host_check).
   * NULL: peers are not verified (as Erlang's verify_none). */
  const char *cafile;
  bool verify_none;
  bool no_host_check;
  /* For the connections this node makes (Erlang's client_certfile and
   * client_keyfile); NULL: certfile and keyfile. */
  const char *client_certfile;
  const char *client_keyfile;
} otpc_dist_tls_t;

typedef struct otpc_dist_opts {
  /* The cookie; NULL: otpc_node_opts_t.cookie, else ~/.erlang.cookie
   * (created with random content and mode 0400 when missing). */
  const char *cookie;
  uint16_t listen_port;    /* 0: any free port */
  const char *listen_addr; /* NULL: all interfaces ("0.0.0.0") */
  bool hidden;             /* a hidden node (not in others' nodes()) */
  unsigned net_ticktime;   /* seconds; 0: 60, as Erlang's default */
  uint16_t epmd_port;      /* 0: $ERL_EPMD_PORT or 4369 */
  bool no_epmd_server;     /* never start the embedded epmd */
  /* TLS on every connection; NULL: plain TCP. Read by otpc_dist_start()
   * (the files are loaded then; OTPC_EINVAL, logged, if one is bad). */
  const otpc_dist_tls_t *tls;
} otpc_dist_opts_t;

/* Starts distribution on the running node, whose name must be
 * "name@host". Listens, registers with the host's epmd, or starts an
 * embedded epmd where none answers, and registers `net_kernel`. From a
 * process or a plain thread. OTPC_ESTATE if the node has no such name or
 * distribution runs already. */
OTPC_API int otpc_dist_start(const otpc_dist_opts_t *opts);
/* Closes every connection (nodedown for each), unregisters from epmd and
 * ends the distribution processes. Call before otpc_node_stop(). */
OTPC_API int otpc_dist_stop(void);
/* Whether distribution runs. */
OTPC_API bool otpc_dist_running(void);
/* The port the node listens on, or 0. */
OTPC_API uint16_t otpc_dist_port(void);

/* {Name, Node} ! Msg. Connects on first use (the message waits in the
 * connection's queue meanwhile); to this node it is otpc_send_name()
 * without the error for a missing name. */
OTPC_API int otpc_send_remote(otpc_atom_t name, otpc_atom_t node,
                              otpc_buf_t *msg);

/* net_adm:ping(Node): connects if needed and asks the node's net_kernel.
 * 1 for pong, 0 for pang. In a process. */
OTPC_API int otpc_net_ping(otpc_atom_t node, int64_t timeout_ms);
/* Sets up a connection (net_kernel:connect_node/1): 1 if up, 0 if not. In
 * a process. */
OTPC_API int otpc_net_connect(otpc_atom_t node, int64_t timeout_ms);
/* Closes the connection to node (erlang:disconnect_node/1). 1 if there
 * was one. */
OTPC_API int otpc_net_disconnect(otpc_atom_t node);
/* nodes(): the connected visible nodes (with hidden: all of them). Up to
 * max into out; returns how many there are. */
OTPC_API size_t otpc_nodes(otpc_atom_t *out, size_t max, bool hidden);

/* erlang:monitor(process, {Name, Node}): monitors whoever has the name
 * on that node; DOWN comes as {'DOWN', Ref, process, {Name, Node},
 * Reason} (noproc if nobody has it, noconnection if the node cannot be
 * reached or goes away). otpc_demonitor() ends it. For this node it is
 * otpc_monitor_name(). In a process. */
OTPC_API int otpc_monitor_remote(otpc_atom_t name, otpc_atom_t node,
                                 otpc_ref_t *ref);

/* gen_server:call({Name, Node}, Request, Timeout): monitors {Name, Node}
 * (connecting if needed), sends the call and waits, as Erlang's gen:call
 * does. Returns as otpc_gen_server_call(): 0 and *reply; OTPC_ENOPROC if
 * nobody has the name there; OTPC_ETIMEDOUT (a late reply is dropped);
 * OTPC_EEXITED with *reply {nodedown, Node} if the node cannot be reached
 * or goes away during the call, or with the server's exit reason if it
 * dies. For this node it is otpc_gen_server_call_name(). In a process.
 * The _statem one is the same call (gen_statem:call speaks the same
 * protocol). */
OTPC_API int otpc_gen_server_call_remote(otpc_atom_t name, otpc_atom_t node,
                                         otpc_buf_t *request,
                                         int64_t timeout_ms,
                                         otpc_buf_t **reply);
OTPC_API int otpc_gen_statem_call_remote(otpc_atom_t name, otpc_atom_t node,
                                         otpc_buf_t *request,
                                         int64_t timeout_ms,
                                         otpc_buf_t **reply);

/* erlang:monitor_node(Node, Flag): the calling process gets {nodeup, Node}
 * and {nodedown, Node} messages for node (OTPC_ATOM_NONE: every node, as
 * net_kernel:monitor_nodes/1). As in Erlang, monitoring a node that is not
 * connected tries to connect and sends nodedown if that fails. In a
 * process; a process's subscriptions end when it does. */
OTPC_API int otpc_monitor_node(otpc_atom_t node, bool on);

/* rpc:call(Node, Module, Function, Args): runs the function on node (an
 * Erlang node's `rex`, or an otpc node's exports) and puts what it
 * returned in *result, or {badrpc, Reason} as Erlang does: {badrpc,
 * nodedown}, {badrpc, timeout}, {badrpc, {'EXIT', Why}}. args must be a
 * list. 0, or OTPC_EINVAL, OTPC_ENOMEM, OTPC_ENOTPROC. In a process. */
OTPC_API int otpc_rpc_call(otpc_atom_t node, const char *module,
                           const char *function, otpc_term_t args,
                           int64_t timeout_ms, otpc_buf_t **result);

/* A C function that Erlang calls with rpc:call(Node, Module, Function,
 * Args). It runs in a process of its own and returns the result (a new
 * buffer, which rex releases), or NULL to fail the call: the caller then
 * gets {badrpc, {'EXIT', Reason}}, Reason being *reason if the function
 * set it (rex releases it) or 'rpc_failed'. args is the list Args. */
typedef otpc_buf_t *(*otpc_rpc_fn)(otpc_term_t args, void *ctx,
                                   otpc_buf_t **reason);
/* Makes Module:Function callable through rpc (the `rex` server). Any
 * arity: the function gets the argument list. A second export of the same
 * name replaces the first; fn NULL removes it. Any thread. */
OTPC_API int otpc_rpc_export(const char *module, const char *function,
                             otpc_rpc_fn fn, void *ctx);

/* The flags of the handshake (erts "Distribution Protocol"). */
#define OTPC_DFLAG_PUBLISHED 0x1ull
#define OTPC_DFLAG_ATOM_CACHE 0x2ull
#define OTPC_DFLAG_EXTENDED_REFERENCES 0x4ull
#define OTPC_DFLAG_DIST_MONITOR 0x8ull
#define OTPC_DFLAG_FUN_TAGS 0x10ull
#define OTPC_DFLAG_DIST_MONITOR_NAME 0x20ull
#define OTPC_DFLAG_HIDDEN_ATOM_CACHE 0x40ull
#define OTPC_DFLAG_NEW_FUN_TAGS 0x80ull
#define OTPC_DFLAG_EXTENDED_PIDS_PORTS 0x100ull
#define OTPC_DFLAG_EXPORT_PTR_TAG 0x200ull
#define OTPC_DFLAG_BIT_BINARIES 0x400ull
#define OTPC_DFLAG_NEW_FLOATS 0x800ull
#define OTPC_DFLAG_UNICODE_IO 0x1000ull
#define OTPC_DFLAG_DIST_HDR_ATOM_CACHE 0x2000ull
#define OTPC_DFLAG_SMALL_ATOM_TAGS 0x4000ull
#define OTPC_DFLAG_UTF8_ATOMS 0x10000ull
#define OTPC_DFLAG_MAP_TAG 0x20000ull
#define OTPC_DFLAG_BIG_CREATION 0x40000ull
#define OTPC_DFLAG_SEND_SENDER 0x80000ull
#define OTPC_DFLAG_BIG_SEQTRACE_LABELS 0x100000ull
#define OTPC_DFLAG_EXIT_PAYLOAD 0x400000ull
#define OTPC_DFLAG_FRAGMENTS 0x800000ull
#define OTPC_DFLAG_HANDSHAKE_23 0x1000000ull
#define OTPC_DFLAG_UNLINK_ID 0x2000000ull
#define OTPC_DFLAG_SPAWN (1ull << 32)
#define OTPC_DFLAG_NAME_ME (1ull << 33)
#define OTPC_DFLAG_V4_NC (1ull << 34)
#define OTPC_DFLAG_ALIAS (1ull << 35)
#define OTPC_DFLAG_MANDATORY_25_DIGEST (1ull << 36)

#ifdef __cplusplus
}
#endif
#endif /* OTPC_DIST_H */
