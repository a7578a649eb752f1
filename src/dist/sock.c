/*
 * sock.c: TCP sockets for the distribution. Every socket is non-blocking;
 * waiting goes through the runtime's otpc_wait_fd() when the caller is a
 * process (a scheduler never blocks), and through poll() on a plain
 * thread, so the same code serves otpc_dist_start() called from main()
 * and the connection processes. Deadlines are absolute (otpc_now_ms()).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dist_int.h"

int64_t otpc__deadline(int64_t timeout_ms) {
  return timeout_ms < 0 ? -1 : otpc_now_ms() + timeout_ms;
}

static int64_t left_ms(int64_t deadline) {
  if (deadline < 0) return OTPC_INFINITY;
  int64_t left = deadline - otpc_now_ms();
  return left > 0 ? left : 0;
}

int otpc__sock_wait(int fd, int events, int64_t deadline) {
  int64_t left = left_ms(deadline);
  if (otpc__current() != NULL) {
    if (left == 0) left = 1; /* 0 would only look; give it one tick */
    return otpc_wait_fd(fd, events, left);
  }
  struct pollfd p = {fd, 0, 0};
  if (events & OTPC_FD_READ) p.events |= POLLIN;
  if (events & OTPC_FD_WRITE) p.events |= POLLOUT;
  for (;;) {
    int n = poll(&p, 1, left < 0 ? -1 : (int)left);
    if (n > 0) {
      int got = 0;
      if (p.revents & (POLLIN | POLLHUP | POLLERR)) got |= OTPC_FD_READ;
      if (p.revents & (POLLOUT | POLLHUP | POLLERR)) got |= OTPC_FD_WRITE;
      return got ? got : events;
    }
    if (n == 0) return OTPC_ETIMEDOUT;
    if (errno != EINTR) return OTPC_EIO;
    left = left_ms(deadline);
  }
}

int otpc__sock_read(int fd, void *buf, size_t n, int64_t deadline) {
  uint8_t *p = buf;
  while (n > 0) {
    ssize_t got = recv(fd, p, n, 0);
    if (got > 0) {
      p += got;
      n -= (size_t)got;
      continue;
    }
    if (got == 0) return OTPC_EIO;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return OTPC_EIO;
    int rc = otpc__sock_wait(fd, OTPC_FD_READ, deadline);
    if (rc < 0) return rc;
  }
  return 0;
}

int otpc__sock_write(int fd, const void *buf, size_t n, int64_t deadline) {
  const uint8_t *p = buf;
  while (n > 0) {
    ssize_t put = send(fd, p, n, MSG_NOSIGNAL);
    if (put > 0) {
      p += put;
      n -= (size_t)put;
      continue;
    }
    if (put < 0 && errno == EINTR) continue;
    if (put < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return OTPC_EIO;
    int rc = otpc__sock_wait(fd, OTPC_FD_WRITE, deadline);
    if (rc < 0) return rc;
  }
  return 0;
}

static void tune(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int fl = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* A name lookup on the dirty pool. It lives on the heap, shared by the
 * process and the dirty thread (a process's stack may be lent to another
 * process while it waits, and it may be killed meanwhile): whoever is
 * done with it last frees it. */
typedef struct lookup {
  _Atomic int refs;
  char host[256];
  char port[8];
  struct addrinfo *res;
  int rc;
} lookup_t;

static void lookup_release(lookup_t *l) {
  if (atomic_fetch_sub(&l->refs, 1) == 1) {
    if (l->res) freeaddrinfo(l->res);
    otpc__free(l);
  }
}

static intptr_t do_lookup(void *arg) {
  lookup_t *l = arg;
  struct addrinfo hints = {0};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  l->rc = getaddrinfo(l->host, l->port, &hints, &l->res);
  lookup_release(l);
  return 0;
}

int otpc__sock_connect(const char *host, uint16_t port, int64_t deadline,
                       int *out) {
  lookup_t *l = otpc__calloc(1, sizeof *l);
  if (l == NULL) return OTPC_ENOMEM;
  atomic_init(&l->refs, 2);
  snprintf(l->host, sizeof l->host, "%s", host);
  snprintf(l->port, sizeof l->port, "%u", port);
  if (otpc__current() != NULL) {
    /* getaddrinfo blocks the thread; a job that could not be queued
     * never takes its share */
    if (otpc_dirty(do_lookup, l) < 0) {
      l->rc = -1;
      lookup_release(l);
    }
  } else
    do_lookup(l);
  if (l->rc != 0 || l->res == NULL) {
    lookup_release(l);
    return OTPC_ENONAME;
  }
  int rc = OTPC_EIO;
  for (struct addrinfo *a = l->res; a != NULL; a = a->ai_next) {
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    tune(fd);
    if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
      *out = fd;
      rc = 0;
      break;
    }
    if (errno == EINPROGRESS) {
      int w = otpc__sock_wait(fd, OTPC_FD_WRITE, deadline);
      int err = 0;
      socklen_t len = sizeof err;
      if (w >= 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 &&
          err == 0) {
        *out = fd;
        rc = 0;
        break;
      }
      if (w == OTPC_ETIMEDOUT) rc = OTPC_ETIMEDOUT;
    }
    close(fd);
  }
  lookup_release(l);
  return rc;
}

int otpc__sock_listen(const char *addr, uint16_t port, int *out,
                      uint16_t *bound) {
  struct addrinfo hints = {0}, *res = NULL;
  char ps[8];
  snprintf(ps, sizeof ps, "%u", port);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST;
  if (getaddrinfo(addr, ps, &hints, &res) != 0 || res == NULL)
    return OTPC_EINVAL;
  int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, 0);
  int rc = fd < 0 ? OTPC_EIO : 0;
  if (rc == 0) {
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0)
      rc = errno == EADDRINUSE ? OTPC_EEXIST : OTPC_EIO;
    else if (listen(fd, 128) != 0)
      rc = OTPC_EIO;
  }
  freeaddrinfo(res);
  if (rc != 0) {
    if (fd >= 0) close(fd);
    return rc;
  }
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  getsockname(fd, (struct sockaddr *)&ss, &len);
  *bound =
      ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                     : ((struct sockaddr_in *)&ss)->sin_port);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  *out = fd;
  return 0;
}

int otpc__sock_accept(int lfd) {
  int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
  if (fd >= 0) tune(fd);
  return fd;
}
