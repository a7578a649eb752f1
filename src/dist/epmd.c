/*
 * epmd.c: the Erlang Port Mapper Daemon's protocol (erts "Distribution
 * Protocol", EPMD Protocol), both sides.
 *
 * Client: ALIVE2_REQ registers the node; the registration lasts as long as
 * that socket stays open, so the caller keeps it. PORT_PLEASE2_REQ asks
 * for another node's port, NAMES_REQ for the list.
 *
 * Server: an embedded epmd, started by otpc_dist_start() where nothing
 * answers on the epmd port, so a node needs nothing else installed; real
 * Erlang nodes register with it too. One listener process accepts; each
 * connection is served by its own process: a registration's process waits
 * for its socket to close and then drops the name; the others answer one
 * request and close. The names live in one table under `lock`.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/random.h>
#include <unistd.h>

#include "dist_int.h"

enum {
  EPMD_ALIVE2_REQ = 120,
  EPMD_ALIVE2_X_RESP = 118,
  EPMD_ALIVE2_RESP = 121,
  EPMD_PORT_PLEASE2_REQ = 122,
  EPMD_PORT2_RESP = 119,
  EPMD_NAMES_REQ = 110,
  EPMD_DUMP_REQ = 100
};

#define EPMD_IO_MS 10000 /* a client's whole request must come in this */

/* ------------------------------------------------------------------------
 * Client
 * ------------------------------------------------------------------------ */

static int epmd_open(const char *host, uint16_t epmd_port, int64_t deadline,
                     int *fd) {
  return otpc__sock_connect(host, epmd_port, deadline, fd);
}

static int send_req(int fd, const uint8_t *req, size_t n, int64_t deadline) {
  uint8_t len[2];
  put_be16(len, (uint16_t)n);
  int rc = otpc__sock_write(fd, len, 2, deadline);
  return rc ? rc : otpc__sock_write(fd, req, n, deadline);
}

int otpc__epmd_register(uint16_t epmd_port, const char *alive, uint16_t port,
                        bool hidden, int64_t deadline, int *keep,
                        uint32_t *creation) {
  size_t n = strlen(alive);
  if (n == 0 || n > 255) return OTPC_EINVAL;
  uint8_t req[13 + 255];
  req[0] = EPMD_ALIVE2_REQ;
  put_be16(req + 1, port);
  req[3] = hidden ? 72 : 77;
  req[4] = 0; /* TCP/IPv4 */
  put_be16(req + 5, 6);
  put_be16(req + 7, 5);
  put_be16(req + 9, (uint16_t)n);
  memcpy(req + 11, alive, n);
  put_be16(req + 11 + n, 0); /* no extra */
  int fd;
  int rc = epmd_open("localhost", epmd_port, deadline, &fd);
  if (rc != 0) return rc;
  rc = send_req(fd, req, 13 + n, deadline);
  uint8_t resp[6];
  if (rc == 0) rc = otpc__sock_read(fd, resp, 2, deadline);
  if (rc == 0 && resp[0] == EPMD_ALIVE2_X_RESP) {
    rc = otpc__sock_read(fd, resp + 2, 4, deadline);
    if (rc == 0) *creation = get_be32(resp + 2);
  } else if (rc == 0 && resp[0] == EPMD_ALIVE2_RESP) {
    rc = otpc__sock_read(fd, resp + 2, 2, deadline);
    if (rc == 0) *creation = get_be16(resp + 2);
  } else if (rc == 0) {
    rc = OTPC_EIO;
  }
  if (rc == 0 && resp[1] != 0) rc = OTPC_EEXIST; /* the name is taken */
  if (rc != 0) {
    close(fd);
    return rc;
  }
  *keep = fd;
  return 0;
}

int otpc__epmd_port_please(const char *host, uint16_t epmd_port,
                           const char *alive, int64_t deadline,
                           uint16_t *port) {
  size_t n = strlen(alive);
  if (n == 0 || n > 255) return OTPC_EINVAL;
  uint8_t req[256];
  req[0] = EPMD_PORT_PLEASE2_REQ;
  memcpy(req + 1, alive, n);
  int fd;
  int rc = epmd_open(host, epmd_port, deadline, &fd);
  if (rc != 0) return rc;
  rc = send_req(fd, req, n + 1, deadline);
  uint8_t resp[10];
  if (rc == 0) rc = otpc__sock_read(fd, resp, 2, deadline);
  if (rc == 0 && resp[0] != EPMD_PORT2_RESP) rc = OTPC_EIO;
  if (rc == 0 && resp[1] != 0) rc = OTPC_ENONAME;
  if (rc == 0) rc = otpc__sock_read(fd, resp + 2, 8, deadline);
  if (rc == 0) {
    uint16_t high = get_be16(resp + 6);
    if (high < 6) rc = OTPC_EINVAL; /* before OTP 23: no handshake 6 */
    *port = get_be16(resp + 2);
  }
  close(fd);
  return rc;
}

int otpc__epmd_names(const char *host, uint16_t epmd_port, int64_t deadline,
                     char **text) {
  int fd;
  int rc = epmd_open(host, epmd_port, deadline, &fd);
  if (rc != 0) return rc;
  uint8_t req = EPMD_NAMES_REQ, head[4];
  rc = send_req(fd, &req, 1, deadline);
  if (rc == 0) rc = otpc__sock_read(fd, head, 4, deadline);
  size_t len = 0, cap = 256;
  char *out = rc == 0 ? otpc__malloc(cap) : NULL;
  if (rc == 0 && out == NULL) rc = OTPC_ENOMEM;
  while (rc == 0) {
    if (cap - len < 2) {
      char *bigger = cap < (1u << 20) ? otpc__realloc(out, cap * 2) : NULL;
      if (bigger == NULL) {
        rc = OTPC_ENOMEM;
        break;
      }
      out = bigger;
      cap *= 2;
    }
    ssize_t got = read(fd, out + len, cap - len - 1);
    if (got > 0) {
      len += (size_t)got;
    } else if (got == 0) {
      break;
    } else {
      int w = otpc__sock_wait(fd, OTPC_FD_READ, deadline);
      if (w < 0) rc = w;
    }
  }
  close(fd);
  if (rc != 0) {
    otpc__free(out);
    return rc;
  }
  out[len] = 0;
  *text = out;
  return 0;
}

/* ------------------------------------------------------------------------
 * The embedded server
 * ------------------------------------------------------------------------ */

typedef struct entry {
  char name[256];
  uint16_t port;
  uint8_t type, proto;
  uint16_t high, low;
  otpc_pid_t holder; /* the process serving its registration socket */
} entry_t;

#define EPMD_MAX_NAMES 1024

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static entry_t *entries;
static size_t nentries;
static uint32_t next_creation;
static uint16_t server_port;
static otpc_pid_t server_pid;
static _Atomic int server_on;

static entry_t *find(const char *name, size_t n) {
  for (size_t i = 0; i < nentries; i++)
    if (strlen(entries[i].name) == n && memcmp(entries[i].name, name, n) == 0)
      return &entries[i];
  return NULL;
}

/* A request's fields, checked (the server's only reading of client
 * bytes; the fuzzer calls it too). */
int otpc__epmd_parse(const uint8_t *req, size_t n, otpc__epmd_req_t *r) {
  memset(r, 0, sizeof *r);
  if (n == 0) return OTPC_ETRUNC;
  r->type = req[0];
  size_t nlen;
  switch (req[0]) {
    case EPMD_ALIVE2_REQ:
      if (n < 13) return OTPC_ETRUNC;
      nlen = get_be16(req + 9);
      if (nlen == 0 || nlen > 255) return OTPC_ELENGTH;
      if (11 + nlen + 2 > n) return OTPC_ETRUNC;
      if (get_be16(req + 11 + nlen) > n - 13 - nlen) return OTPC_ETRUNC;
      r->port = get_be16(req + 1);
      r->node_type = req[3];
      r->proto = req[4];
      r->high = get_be16(req + 5);
      r->low = get_be16(req + 7);
      memcpy(r->name, req + 11, nlen);
      break;
    case EPMD_PORT_PLEASE2_REQ:
      nlen = n - 1;
      if (nlen == 0 || nlen > 255) return OTPC_ELENGTH;
      memcpy(r->name, req + 1, nlen);
      break;
    default: return 0; /* NAMES, DUMP: nothing more; others ignored */
  }
  r->name[nlen] = 0;
  if (strlen(r->name) != nlen) return OTPC_EBADARG; /* a NUL inside */
  return 0;
}

/* ALIVE2_REQ: 0 and the creation, or 1 if the name is taken. */
static int alive2(const otpc__epmd_req_t *r, uint32_t *creation) {
  pthread_mutex_lock(&lock);
  int rc = 1;
  if (find(r->name, strlen(r->name)) == NULL && nentries < EPMD_MAX_NAMES) {
    entry_t *e = &entries[nentries++];
    memcpy(e->name, r->name, sizeof e->name);
    e->port = r->port;
    e->type = r->node_type;
    e->proto = r->proto;
    e->high = r->high;
    e->low = r->low;
    e->holder = otpc_self();
    if (++next_creation == 0) next_creation = 1;
    *creation = next_creation;
    rc = 0;
  }
  pthread_mutex_unlock(&lock);
  return rc;
}

static void drop_name(const char *name) {
  pthread_mutex_lock(&lock);
  entry_t *e = find(name, strlen(name));
  if (e != NULL) *e = entries[--nentries];
  pthread_mutex_unlock(&lock);
}

/* Serves a registration until its socket closes. */
static void serve_alive(int fd, const otpc__epmd_req_t *r) {
  uint32_t creation = 0;
  uint8_t resp[6] = {EPMD_ALIVE2_X_RESP, 1, 0, 0, 0, 0};
  int bad = alive2(r, &creation);
  resp[1] = (uint8_t)bad;
  put_be32(resp + 2, creation);
  if (otpc__sock_write(fd, resp, 6, otpc__deadline(EPMD_IO_MS)) != 0 || bad)
    return;
  for (;;) { /* anything more the node says is ignored */
    uint8_t junk[64];
    ssize_t got = read(fd, junk, sizeof junk);
    if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) break;
    if (got < 0) otpc__sock_wait(fd, OTPC_FD_READ, -1);
  }
  drop_name(r->name);
}

static void serve_port_please(int fd, const otpc__epmd_req_t *r) {
  uint8_t resp[12 + 255];
  size_t len = 2;
  resp[0] = EPMD_PORT2_RESP;
  resp[1] = 1;
  pthread_mutex_lock(&lock);
  entry_t *e = find(r->name, strlen(r->name));
  if (e != NULL) {
    size_t nlen = strlen(e->name);
    resp[1] = 0;
    put_be16(resp + 2, e->port);
    resp[4] = e->type;
    resp[5] = e->proto;
    put_be16(resp + 6, e->high);
    put_be16(resp + 8, e->low);
    put_be16(resp + 10, (uint16_t)nlen);
    memcpy(resp + 12, e->name, nlen);
    put_be16(resp + 12 + nlen, 0);
    len = 14 + nlen;
  }
  pthread_mutex_unlock(&lock);
  otpc__sock_write(fd, resp, len, otpc__deadline(EPMD_IO_MS));
}

static void serve_names(int fd, bool dump) {
  otpc__sbuf_t s;
  otpc__sbuf_init(&s);
  uint8_t head[4];
  put_be32(head, server_port);
  otpc__sbuf_put(&s, head, 4);
  pthread_mutex_lock(&lock);
  for (size_t i = 0; i < nentries; i++) {
    if (dump)
      otpc__sbuf_printf(&s, "active name     <%s> at port %u, fd = 0\n",
                        entries[i].name, entries[i].port);
    else
      otpc__sbuf_printf(&s, "name %s at port %u\n", entries[i].name,
                        entries[i].port);
  }
  pthread_mutex_unlock(&lock);
  if (s.err == 0)
    otpc__sock_write(fd, s.data, s.len, otpc__deadline(EPMD_IO_MS));
  otpc__sbuf_free(&s);
}

static void serve(void *arg) {
  int fd = (int)(intptr_t)arg;
  if (otpc_own_fd(fd) != 0) {
    close(fd);
    return;
  }
  int64_t deadline = otpc__deadline(EPMD_IO_MS);
  uint8_t head[2], req[1024];
  if (otpc__sock_read(fd, head, 2, deadline) != 0) return;
  size_t n = get_be16(head);
  if (n == 0 || n > sizeof req || otpc__sock_read(fd, req, n, deadline) != 0)
    return;
  otpc__epmd_req_t *r = otpc_palloc(sizeof *r);
  if (r == NULL || otpc__epmd_parse(req, n, r) != 0) return;
  switch (r->type) {
    case EPMD_ALIVE2_REQ: serve_alive(fd, r); break;
    case EPMD_PORT_PLEASE2_REQ: serve_port_please(fd, r); break;
    case EPMD_NAMES_REQ: serve_names(fd, false); break;
    case EPMD_DUMP_REQ: serve_names(fd, true); break;
    default: break; /* KILL_REQ and STOP_REQ are not obeyed */
  }
}

static void listen_loop(void *arg) {
  int lfd = (int)(intptr_t)arg;
  if (otpc_own_fd(lfd) != 0) {
    close(lfd);
    return;
  }
  for (;;) {
    int fd = otpc__sock_accept(lfd);
    if (fd < 0) {
      otpc__sock_wait(lfd, OTPC_FD_READ, -1);
      continue;
    }
    otpc_spawn_opts_t o = {.name = "epmd connection"};
    if (otpc_spawn(serve, (void *)(intptr_t)fd, &o, NULL) != 0) close(fd);
  }
}

int otpc__epmd_server_start(const char *addr, uint16_t port) {
  int lfd;
  uint16_t bound;
  int rc = otpc__sock_listen(addr, port, &lfd, &bound);
  if (rc != 0) return rc;
  pthread_mutex_lock(&lock);
  if (entries == NULL) entries = otpc__calloc(EPMD_MAX_NAMES, sizeof *entries);
  if (next_creation == 0 &&
      getrandom(&next_creation, sizeof next_creation, 0) < 0)
    next_creation = (uint32_t)otpc_now_ms();
  pthread_mutex_unlock(&lock);
  if (entries == NULL) {
    close(lfd);
    return OTPC_ENOMEM;
  }
  server_port = bound;
  otpc_spawn_opts_t o = {.name = "epmd"};
  rc = otpc_spawn(listen_loop, (void *)(intptr_t)lfd, &o, &server_pid);
  if (rc != 0) {
    close(lfd);
    return rc;
  }
  atomic_store(&server_on, 1);
  return 0;
}

void otpc__epmd_server_stop(void) {
  if (!atomic_exchange(&server_on, 0)) return;
  otpc_buf_t *kill = otpc__atom_buf(OTPC_ATOM_KILL);
  otpc_exit_signal(server_pid, otpc_buf_term(kill));
  pthread_mutex_lock(&lock);
  for (size_t i = 0; i < nentries; i++)
    otpc_exit_signal(entries[i].holder, otpc_buf_term(kill));
  nentries = 0;
  pthread_mutex_unlock(&lock);
  otpc_buf_unref(kill);
}
