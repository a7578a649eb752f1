/*
 * heart_proto.h: the wire between a node (src/rt/heart.c) and its
 * watchdog, `otpc heart` (tools/heart.c). Both sides include it; nothing
 * else does.
 *
 * The watchdog makes an AF_UNIX SOCK_SEQPACKET socket pair, keeps one end
 * and hands the other to the node program it starts, naming it in the
 * environment:
 *
 *   OTPC_HEART_FD       the node's end of the channel (a descriptor number)
 *   OTPC_HEART_PID      the watchdog's pid; the node checks it against the
 *                       channel's peer (SO_PEERCRED), so a stale variable
 *                       inherited by some other program is ignored
 *   OTPC_HEART_BEAT_MS  how often the node beats
 *
 * Each packet is one message (the socket keeps the boundaries): an op
 * byte, then the payload.
 *
 *   node -> watchdog, no reply:
 *     HELLO     a node started (otpc_node_start); beats are due from now
 *     BEAT      the schedulers ran the beat probe (see heart.c)
 *     STOPPING  otpc_node_stop finished: the exit that follows is clean
 *   node -> watchdog, each with one descriptor attached (SCM_RIGHTS): one
 *   end of a fresh socket pair, on which the watchdog sends the one reply
 *   and which it then closes. So requests from many threads and processes
 *   never share a reader, and a requester that dies leaves nothing behind.
 *     SET_CMD   command bytes (no NUL; empty means clear)
 *     CLEAR_CMD
 *     GET_CMD
 *   watchdog -> node, on the attached socket:
 *     OK        payload (GET_CMD: the temporary command, maybe empty)
 *     ERROR     a message
 */
#ifndef OTPC_RT_HEART_PROTO_H
#define OTPC_RT_HEART_PROTO_H

#define OTPC__HEART_HELLO 'H'
#define OTPC__HEART_BEAT 'B'
#define OTPC__HEART_STOPPING 'S'
#define OTPC__HEART_SET_CMD 'C'
#define OTPC__HEART_CLEAR_CMD 'X'
#define OTPC__HEART_GET_CMD 'G'
#define OTPC__HEART_OK 'A'
#define OTPC__HEART_ERROR 'E'

/* The largest packet either side sends or accepts: op byte, command. */
#define OTPC__HEART_PACKET_MAX (1 + OTPC_HEART_MAX_CMD)

#define OTPC__HEART_ENV_FD "OTPC_HEART_FD"
#define OTPC__HEART_ENV_PID "OTPC_HEART_PID"
#define OTPC__HEART_ENV_BEAT "OTPC_HEART_BEAT_MS"

#endif
