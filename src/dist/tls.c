/*
 * tls.c: TLS for the distribution (OpenSSL), as Erlang's inet_tls_dist
 * speaks it: the TCP connection is made as usual, TLS is set up over it
 * first, and then the distribution handshake and the 4-byte-framed
 * distribution frames go through it unchanged. epmd knows nothing of it.
 *
 * Two contexts: `server_ctx` for the connections we accept and
 * `client_ctx` for the ones we make, made by otpc_dist_start() and kept
 * until the next one (a handshake may still run after otpc_dist_stop();
 * each SSL holds its context too). With a CA
 * file and verification on, both sides check the peer: an accepted peer
 * must present a certificate that chains to the CA, and the node we call
 * must present one that chains to it and names its host.
 *
 * One otpc__tls_t per connection, shared by the connection's reader and
 * writer processes, which may run on two threads at once: an SSL object
 * takes one caller at a time, so every OpenSSL call on it runs under the
 * object's `lock`, and no one waits while holding it (the sockets are
 * non-blocking; WANT_READ and WANT_WRITE turn into waits on the caller's
 * own descriptor through otpc__sock_wait, after the lock is released).
 * A wait follows only WANT_READ or WANT_WRITE, which OpenSSL gives after
 * the socket itself said EAGAIN, never while decrypted bytes or a whole
 * record wait in the SSL (SSL_pending): the reader takes those first.
 * Renegotiation is off, so a write never has to read: the bytes the
 * reader waits for are never taken off the socket by the writer. The SSL
 * has a descriptor of its own (a dup, closed with the object), so it
 * stays valid for the writer after the reader's process, which owned the
 * first one, has ended; it reaches it through a BIO of ours that sends
 * with MSG_NOSIGNAL (a reset connection must not raise SIGPIPE).
 */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dist_int.h"

struct otpc__tls {
  pthread_mutex_t lock; /* every call on ssl */
  SSL *ssl;
  char why[200]; /* the last failure, for the log */
};

/* What step_result says besides a byte count: wait, or closed cleanly
 * by the peer (an end of stream, not an error). */
enum { STEP_WAIT = 0, STEP_CLOSED = -1000 };

static SSL_CTX *server_ctx, *client_ctx;

/* ---- the socket under an SSL -------------------------------------------- */

/* OpenSSL's own socket BIO writes with write(), which raises SIGPIPE on a
 * connection the peer has reset; this one sends with MSG_NOSIGNAL, as the
 * TCP paths do, and closes its descriptor when freed. */
static BIO_METHOD *sock_method;
static pthread_once_t sock_method_once = PTHREAD_ONCE_INIT;

static int bio_fd(BIO *b) {
  return (int)(intptr_t)BIO_get_data(b);
}

static int sock_bwrite(BIO *b, const char *buf, int n) {
  BIO_clear_retry_flags(b);
  ssize_t k;
  do k = send(bio_fd(b), buf, (size_t)n, MSG_NOSIGNAL);
  while (k < 0 && errno == EINTR);
  if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    BIO_set_retry_write(b);
  return (int)k;
}

static int sock_bread(BIO *b, char *buf, int n) {
  BIO_clear_retry_flags(b);
  ssize_t k;
  do k = recv(bio_fd(b), buf, (size_t)n, 0);
  while (k < 0 && errno == EINTR);
  if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_read(b);
  return (int)k;
}

static long sock_ctrl(BIO *b, int cmd, long num, void *ptr) {
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int sock_destroy(BIO *b) {
  if (BIO_get_init(b)) close(bio_fd(b));
  BIO_set_init(b, 0);
  return 1;
}

static void sock_method_make(void) {
  BIO_METHOD *m = BIO_meth_new(
      BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
      "otpc dist socket");
  if (m == NULL) return;
  BIO_meth_set_write(m, sock_bwrite);
  BIO_meth_set_read(m, sock_bread);
  BIO_meth_set_ctrl(m, sock_ctrl);
  BIO_meth_set_destroy(m, sock_destroy);
  sock_method = m;
}

/* A BIO over fd, which it owns from now on (closed also on failure). */
static BIO *sock_bio(int fd) {
  pthread_once(&sock_method_once, sock_method_make);
  BIO *b = sock_method ? BIO_new(sock_method) : NULL;
  if (b == NULL) {
    close(fd);
    return NULL;
  }
  BIO_set_data(b, (void *)(intptr_t)fd);
  BIO_set_init(b, 1);
  return b;
}
static bool check_host = true;

/* The first error on OpenSSL's queue (this thread's), as text, and the
 * queue emptied. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif
static void ssl_why(char *why, size_t n, const char *what) {
  unsigned long e = ERR_get_error();
  char text[160] = "";
  if (e != 0) ERR_error_string_n(e, text, sizeof text);
  ERR_clear_error();
  /* A reason longer than the caller's buffer is cut on purpose: it is
   * for a log line (hence the pragma: GCC's -O3 sees the sizes). */
  snprintf(why, n, "%s%s%s", what, text[0] ? ": " : "", text);
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

static SSL_CTX *ctx_new(bool server, const char *cert, const char *key,
                        const char *ca, bool verify, char *why, size_t n) {
  SSL_CTX *ctx =
      SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (ctx == NULL) {
    ssl_why(why, n, "cannot make a TLS context");
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(
      ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  if (server) SSL_CTX_set_num_tickets(ctx, 0);
  if (cert != NULL) {
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
      char what[1200];
      snprintf(what, sizeof what, "certificate file %s", cert);
      ssl_why(why, n, what);
      goto fail;
    }
    const char *k = key ? key : cert;
    if (SSL_CTX_use_PrivateKey_file(ctx, k, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
      char what[1200];
      snprintf(what, sizeof what, "key file %s", k);
      ssl_why(why, n, what);
      goto fail;
    }
  } else if (server) {
    snprintf(why, n, "TLS needs a certificate to accept connections");
    goto fail;
  }
  if (ca != NULL && SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
    char what[1200];
    snprintf(what, sizeof what, "CA file %s", ca);
    ssl_why(why, n, what);
    goto fail;
  }
  if (verify)
    SSL_CTX_set_verify(
        ctx, SSL_VERIFY_PEER | (server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
        NULL);
  else
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  return ctx;
fail:
  SSL_CTX_free(ctx);
  return NULL;
}

int otpc__tls_setup(const otpc_dist_tls_t *o) {
  char why[600] = "";
  bool verify = o->cafile != NULL && !o->verify_none;
  const char *ccert = o->client_certfile ? o->client_certfile : o->certfile;
  const char *ckey = o->client_certfile ? o->client_keyfile : o->keyfile;
  otpc__tls_cleanup();
  check_host = !o->no_host_check;
  server_ctx = ctx_new(true, o->certfile, o->keyfile, o->cafile, verify, why,
                       sizeof why);
  if (server_ctx != NULL)
    client_ctx =
        ctx_new(false, ccert, ckey, o->cafile, verify, why, sizeof why);
  if (client_ctx == NULL) {
    OTPC_LOG_ERROR("TLS distribution: %s", why);
    otpc__tls_cleanup();
    return OTPC_EINVAL;
  }
  return 0;
}

void otpc__tls_cleanup(void) {
  SSL_CTX_free(server_ctx);
  SSL_CTX_free(client_ctx);
  server_ctx = client_ctx = NULL;
}

bool otpc__tls_on(void) {
  return client_ctx != NULL;
}

/* One step's outcome: > 0 done (the call's result), STEP_WAIT for
 * *events, STEP_CLOSED, or OTPC_EIO (t->why says why). Under t->lock. */
static int step_result(otpc__tls_t *t, int r, int *events, const char *what) {
  if (r > 0) return r;
  int e = SSL_get_error(t->ssl, r);
  switch (e) {
    case SSL_ERROR_WANT_READ: *events = OTPC_FD_READ; return 0;
    case SSL_ERROR_WANT_WRITE: *events = OTPC_FD_WRITE; return 0;
    case SSL_ERROR_ZERO_RETURN:
      snprintf(t->why, sizeof t->why, "closed by peer (TLS close_notify)");
      return STEP_CLOSED;
    case SSL_ERROR_SYSCALL:
      if (ERR_peek_error() == 0) {
        snprintf(t->why, sizeof t->why, "connection closed by peer");
        return STEP_CLOSED;
      }
      /* fall through */
    default: {
      long v = SSL_get_verify_result(t->ssl);
      ssl_why(t->why, sizeof t->why, what);
      if (v != X509_V_OK) {
        size_t len = strlen(t->why);
        snprintf(t->why + len, sizeof t->why - len, " (%s)",
                 X509_verify_cert_error_string(v));
      }
      return OTPC_EIO;
    }
  }
}

int otpc__tls_start(int fd, bool server, const char *host, int64_t deadline,
                    otpc__tls_t **out, char *why, size_t whylen) {
  *out = NULL;
  otpc__tls_t *t = otpc__calloc(1, sizeof *t);
  int own = t ? dup(fd) : -1;
  if (t == NULL || own < 0) {
    snprintf(why, whylen, "out of memory or descriptors for TLS");
    otpc__free(t);
    return OTPC_ENOMEM;
  }
  pthread_mutex_init(&t->lock, NULL);
  t->ssl = SSL_new(server ? server_ctx : client_ctx);
  BIO *bio = NULL;
  if (t->ssl != NULL)
    bio = sock_bio(own);
  else
    close(own);
  if (bio == NULL) {
    snprintf(why, whylen, "cannot make a TLS connection");
    otpc__tls_free(t);
    return OTPC_ENOMEM;
  }
  SSL_set_bio(t->ssl, bio, bio);
  if (server) {
    SSL_set_accept_state(t->ssl);
  } else {
    SSL_set_connect_state(t->ssl);
    SSL_set_tlsext_host_name(t->ssl, host);
    if (check_host) SSL_set1_host(t->ssl, host);
  }
  for (;;) {
    int events = 0;
    ERR_clear_error();
    int rc = step_result(t, SSL_do_handshake(t->ssl), &events, "TLS handshake");
    if (rc > 0) break;
    if (rc == STEP_CLOSED) rc = OTPC_EIO;
    if (rc == STEP_WAIT) rc = otpc__sock_wait(fd, events, deadline);
    if (rc == OTPC_ETIMEDOUT)
      snprintf(t->why, sizeof t->why, "TLS handshake timed out");
    if (rc < 0) {
      snprintf(why, whylen, "%s", t->why);
      otpc__tls_free(t);
      return rc;
    }
  }
  *out = t;
  return 0;
}

void otpc__tls_free(otpc__tls_t *t) {
  if (t == NULL) return;
  if (t->ssl != NULL) {
    /* a close_notify if the socket takes it now; no wait for the answer */
    if (SSL_is_init_finished(t->ssl)) SSL_shutdown(t->ssl);
    ERR_clear_error();
    SSL_free(t->ssl);
  }
  pthread_mutex_destroy(&t->lock);
  otpc__free(t);
}

const char *otpc__tls_why(const otpc__tls_t *t) {
  return t->why;
}

ssize_t otpc__tls_recv(otpc__tls_t *t, int fd, void *buf, size_t n,
                       int64_t deadline) {
  int cap = n > INT32_MAX ? INT32_MAX : (int)n;
  for (;;) {
    int events = 0;
    pthread_mutex_lock(&t->lock);
    ERR_clear_error();
    int rc = step_result(t, SSL_read(t->ssl, buf, cap), &events, "TLS read");
    pthread_mutex_unlock(&t->lock);
    if (rc > 0) return rc;
    if (rc == STEP_CLOSED) return 0;
    if (rc < 0) return rc;
    rc = otpc__sock_wait(fd, events, deadline);
    if (rc < 0) return rc;
  }
}

int otpc__tls_read(otpc__tls_t *t, int fd, void *buf, size_t n,
                   int64_t deadline) {
  uint8_t *p = buf;
  while (n > 0) {
    ssize_t got = otpc__tls_recv(t, fd, p, n, deadline);
    if (got == 0) return OTPC_EIO;
    if (got < 0) return (int)got;
    p += got;
    n -= (size_t)got;
  }
  return 0;
}

int otpc__tls_write(otpc__tls_t *t, int fd, const void *buf, size_t n,
                    int64_t deadline) {
  const uint8_t *p = buf;
  while (n > 0) {
    int events = 0;
    int chunk = n > INT32_MAX ? INT32_MAX : (int)n;
    pthread_mutex_lock(&t->lock);
    ERR_clear_error();
    int rc = step_result(t, SSL_write(t->ssl, p, chunk), &events, "TLS write");
    pthread_mutex_unlock(&t->lock);
    if (rc > 0) {
      p += rc;
      n -= (size_t)rc;
      continue;
    }
    if (rc < 0) return OTPC_EIO; /* closed or broken alike */
    rc = otpc__sock_wait(fd, events, deadline);
    if (rc < 0) return rc;
  }
  return 0;
}
