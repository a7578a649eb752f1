/*
 * handshake.c: the distribution handshake, version 6 (OTP 23 and later),
 * as initiator (A) and as acceptor (B). Every message is a 2-byte length
 * and a body (erts "Distribution Protocol", Distribution Handshake):
 *
 *   A: send_name 'N' flags:8 creation:4 nlen:2 name
 *   B: status 's' ok | ok_simultaneous | nok | not_allowed | alive
 *   (A, after alive: status 's' true | false)
 *   B: challenge 'N' flags:8 challenge:4 creation:4 nlen:2 name
 *   A: challenge_reply 'r' challenge:4 digest:16
 *   B: challenge_ack 'a' digest:16
 *
 * As acceptor we also take the older send_name 'n' version:2 flags:4 name
 * from a node that knows handshake 23: it then sends a complement
 * 'c' flags_high:4 creation:4 after our challenge.
 *
 * A digest is MD5 of the cookie followed by the challenge as decimal text
 * (dist_util:gen_digest/2; the protocol page names them the other way
 * round, and the code is what peers check); digests are compared in constant
 * time. Challenges come from the OpenSSL random generator. Nothing here touches
 * a socket: the caller passes an I/O callback, which is how the fuzzer drives
 * both roles from bytes.
 */
#include <openssl/crypto.h>
#include <openssl/md5.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>

#include "dist_int.h"

#define HS_MSG_MAX (DIST_NAME_MAX + 64)

static int why(otpc__hs_t *hs, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int why(otpc__hs_t *hs, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(hs->why, sizeof hs->why, fmt, ap);
  va_end(ap);
  return rc;
}

void otpc__hs_digest(uint32_t challenge, const char *cookie, uint8_t out[16]) {
  char text[16];
  int n = snprintf(text, sizeof text, "%u", challenge);
  MD5_CTX c;
  /* MD5 is what the protocol fixes; OpenSSL 3 marks the call deprecated. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  MD5_Init(&c);
  MD5_Update(&c, cookie, strlen(cookie));
  MD5_Update(&c, text, (size_t)n);
  MD5_Final(out, &c);
#pragma GCC diagnostic pop
}

static uint32_t challenge(void) {
  uint32_t c;
  if (RAND_bytes((unsigned char *)&c, sizeof c) != 1) abort(); /* no entropy */
  return c;
}

/* ---- messages ------------------------------------------------------------ */

/* Each message goes with its length in 2 bytes (TCP), or in 4 (over TLS,
 * as inet_tls_dist frames its whole connection). */
static int send_msg(const otpc__hs_io_t *io, const uint8_t *body, size_t n) {
  uint8_t len[4];
  size_t w = io->len4 ? 4 : 2;
  if (io->len4)
    put_be32(len, (uint32_t)n);
  else
    put_be16(len, (uint16_t)n);
  int rc = io->write(io->ctx, len, w);
  return rc ? rc : io->write(io->ctx, body, n);
}

/* Reads one message into buf (HS_MSG_MAX bytes); *n gets its length. */
static int recv_msg(otpc__hs_t *hs, const otpc__hs_io_t *io, uint8_t *buf,
                    size_t *n) {
  uint8_t len[4];
  int rc = io->read(io->ctx, len, io->len4 ? 4 : 2);
  if (rc == OTPC_ETIMEDOUT) return why(hs, rc, "the handshake timed out");
  if (rc != 0) return why(hs, rc, "connection closed during the handshake");
  *n = io->len4 ? get_be32(len) : get_be16(len);
  if (*n == 0 || *n > HS_MSG_MAX)
    return why(hs, OTPC_ELENGTH, "handshake message of %zu bytes", *n);
  rc = io->read(io->ctx, buf, *n);
  if (rc == OTPC_ETIMEDOUT) return why(hs, rc, "the handshake timed out");
  if (rc != 0) return why(hs, rc, "connection closed during the handshake");
  return 0;
}

static int send_status(const otpc__hs_io_t *io, const char *status) {
  uint8_t body[32];
  size_t n = strlen(status);
  body[0] = 's';
  memcpy(body + 1, status, n);
  return send_msg(io, body, n + 1);
}

/* A node name as the peer sends it: printable, with one '@' inside. */
static int take_name(otpc__hs_t *hs, const uint8_t *p, size_t n) {
  if (n == 0 || n > DIST_NAME_MAX)
    return why(hs, OTPC_EINVAL, "node name of %zu bytes", n);
  const uint8_t *at = memchr(p, '@', n);
  if (at == NULL || at == p || at == p + n - 1)
    return why(hs, OTPC_EINVAL, "node name without name@host form");
  for (size_t i = 0; i < n; i++)
    if (p[i] < 0x21 || p[i] == 0x7f)
      return why(hs, OTPC_EINVAL, "node name with a control character");
  memcpy(hs->peer, p, n);
  hs->peer[n] = 0;
  return 0;
}

static int check_flags(otpc__hs_t *hs) {
  uint64_t missing = DIST_FLAGS_MANDATORY & ~hs->peer_flags;
  if (missing != 0)
    return why(hs, OTPC_EINVAL, "%s lacks mandatory distribution flags 0x%llx",
               hs->peer[0] ? hs->peer : "peer", (unsigned long long)missing);
  return 0;
}

/* 'N' flags:8 [challenge:4] creation:4 nlen:2 name; extra bytes ignored. */
static size_t put_name_msg(const otpc__hs_t *hs, uint8_t *b, bool with_ch,
                           uint32_t ch) {
  size_t n = strlen(hs->self), at = 0;
  b[at++] = 'N';
  put_be64(b + at, hs->flags);
  at += 8;
  if (with_ch) {
    put_be32(b + at, ch);
    at += 4;
  }
  put_be32(b + at, hs->creation);
  at += 4;
  put_be16(b + at, (uint16_t)n);
  at += 2;
  memcpy(b + at, hs->self, n);
  return at + n;
}

static int parse_name_msg(otpc__hs_t *hs, const uint8_t *b, size_t n,
                          bool with_ch, uint32_t *ch) {
  size_t head = with_ch ? 19 : 15;
  if (n < head || b[0] != 'N')
    return why(hs, OTPC_EBADTAG, "expected a version 6 %s message",
               with_ch ? "challenge" : "name");
  size_t at = 1;
  hs->peer_flags = get_be64(b + at);
  at += 8;
  if (with_ch) {
    *ch = get_be32(b + at);
    at += 4;
  }
  hs->peer_creation = get_be32(b + at);
  at += 4;
  size_t nlen = get_be16(b + at);
  at += 2;
  if (nlen > n - at) return why(hs, OTPC_ETRUNC, "name longer than message");
  return take_name(hs, b + at, nlen);
}

/* ---- initiator ----------------------------------------------------------- */

int otpc__hs_initiate(otpc__hs_t *hs, const otpc__hs_io_t *io) {
  uint8_t b[HS_MSG_MAX];
  size_t n;
  hs->nok = false;
  hs->why[0] = 0;
  int rc = send_msg(io, b, put_name_msg(hs, b, false, 0));
  if (rc != 0) return why(hs, rc, "could not send our name");
  if ((rc = recv_msg(hs, io, b, &n)) != 0) return rc;
  if (b[0] != 's') return why(hs, OTPC_EBADTAG, "expected a status message");
  size_t sl = n - 1;
  const char *st = (const char *)b + 1;
  if (sl == 5 && memcmp(st, "alive", 5) == 0) {
    /* The peer still has a connection from us. If we have none, that
     * one is dead and this one goes on; if we do (another handshake won
     * meanwhile), this attempt was a mistake. */
    bool go_on = hs->still_wanted == NULL || hs->still_wanted(hs->ctx);
    if ((rc = send_status(io, go_on ? "true" : "false")) != 0) return rc;
    if (!go_on) {
      hs->nok = true;
      return why(hs, OTPC_EEXIST, "%s is connected already", hs->expect);
    }
  } else if (sl == 3 && memcmp(st, "nok", 3) == 0) {
    hs->nok = true;
    return why(hs, OTPC_EEXIST, "simultaneous connect: the peer's wins");
  } else if (!(sl == 2 && memcmp(st, "ok", 2) == 0) &&
             !(sl == 15 && memcmp(st, "ok_simultaneous", 15) == 0)) {
    return why(hs, OTPC_EINVAL, "refused with status %.*s",
               (int)(sl > 32 ? 32 : sl), st);
  }
  if ((rc = recv_msg(hs, io, b, &n)) != 0) return rc;
  uint32_t ch_b;
  if ((rc = parse_name_msg(hs, b, n, true, &ch_b)) != 0) return rc;
  if ((rc = check_flags(hs)) != 0) return rc;
  if (hs->expect != NULL && strcmp(hs->expect, hs->peer) != 0)
    return why(hs, OTPC_EINVAL, "called %s but %s answered", hs->expect,
               hs->peer);
  uint32_t ch_a = challenge();
  b[0] = 'r';
  put_be32(b + 1, ch_a);
  otpc__hs_digest(ch_b, hs->cookie, b + 5);
  if ((rc = send_msg(io, b, 21)) != 0)
    return why(hs, rc, "could not send the challenge reply");
  rc = recv_msg(hs, io, b, &n);
  if (rc != 0) {
    /* A node that dislikes our digest just closes. */
    return why(hs, rc, "%s closed the connection: wrong cookie?", hs->peer);
  }
  uint8_t want[16];
  otpc__hs_digest(ch_a, hs->cookie, want);
  if (n != 17 || b[0] != 'a')
    return why(hs, OTPC_EBADTAG, "expected the challenge ack");
  if (CRYPTO_memcmp(want, b + 1, 16) != 0)
    return why(hs, OTPC_EINVAL,
               "%s answered with a wrong digest: cookies differ", hs->peer);
  return 0;
}

/* ---- acceptor ------------------------------------------------------------ */

/* The old 'n' name: version:2 flags:4 name. Only from a node that knows
 * handshake 23 (its complement follows our challenge). */
static int parse_old_name(otpc__hs_t *hs, const uint8_t *b, size_t n) {
  if (n < 7) return why(hs, OTPC_ETRUNC, "short name message");
  hs->peer_flags = get_be32(b + 3);
  if (!(hs->peer_flags & OTPC_DFLAG_HANDSHAKE_23))
    return why(hs, OTPC_EINVAL,
               "peer speaks only handshake version 5 (before OTP 23)");
  return take_name(hs, b + 7, n - 7);
}

int otpc__hs_accept(otpc__hs_t *hs, const otpc__hs_io_t *io,
                    const otpc__hs_policy_t *policy) {
  uint8_t b[HS_MSG_MAX];
  size_t n;
  hs->why[0] = 0;
  int rc = recv_msg(hs, io, b, &n);
  if (rc != 0) return rc;
  bool old = false;
  if (b[0] == 'n') {
    old = true;
    rc = parse_old_name(hs, b, n);
  } else {
    rc = parse_name_msg(hs, b, n, false, NULL);
  }
  if (rc != 0) return rc;
  if ((rc = check_flags(hs)) != 0) {
    send_status(io, "not_allowed");
    return rc;
  }
  const char *status =
      policy ? policy->status(policy->ctx, hs->peer, hs->peer_flags) : "ok";
  if ((rc = send_status(io, status)) != 0)
    return why(hs, rc, "could not send the status");
  if (strcmp(status, "alive") == 0) {
    if ((rc = recv_msg(hs, io, b, &n)) != 0) return rc;
    bool go_on = n == 5 && memcmp(b, "strue", 5) == 0;
    if (policy && policy->alive_answer)
      policy->alive_answer(policy->ctx, hs->peer, go_on);
    if (!go_on)
      return why(hs, OTPC_EEXIST, "%s gave up its new connection", hs->peer);
  } else if (strcmp(status, "ok") != 0 &&
             strcmp(status, "ok_simultaneous") != 0) {
    return why(hs, OTPC_EEXIST, "answered %s to %s", status, hs->peer);
  }
  uint32_t ch_b = challenge();
  if ((rc = send_msg(io, b, put_name_msg(hs, b, true, ch_b))) != 0)
    return why(hs, rc, "could not send the challenge");
  if (old) {
    if ((rc = recv_msg(hs, io, b, &n)) != 0) return rc;
    if (n < 9 || b[0] != 'c')
      return why(hs, OTPC_EBADTAG, "expected the name complement");
    hs->peer_flags |= (uint64_t)get_be32(b + 1) << 32;
    hs->peer_creation = get_be32(b + 5);
  }
  if ((rc = recv_msg(hs, io, b, &n)) != 0) return rc;
  if (n != 21 || b[0] != 'r')
    return why(hs, OTPC_EBADTAG, "expected the challenge reply");
  uint8_t want[16];
  otpc__hs_digest(ch_b, hs->cookie, want);
  if (CRYPTO_memcmp(want, b + 5, 16) != 0)
    return why(hs, OTPC_EINVAL,
               "%s answered with a wrong digest: cookies differ", hs->peer);
  uint32_t ch_a = get_be32(b + 1);
  b[0] = 'a';
  otpc__hs_digest(ch_a, hs->cookie, b + 1);
  if ((rc = send_msg(io, b, 17)) != 0)
    return why(hs, rc, "could not send the challenge ack");
  return 0;
}
