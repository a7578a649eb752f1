/*
 * fuzz_handshake.c: libFuzzer harness for the distribution handshake.
 * The input is what the peer says, byte for byte (2-byte lengths and
 * message bodies); it is played to our acceptor and to our initiator in
 * turn, whose own messages go nowhere. Both must refuse or finish without
 * reading or writing out of bounds, whatever the bytes.
 */
#include <string.h>

#include "dist/dist_int.h"
#include "otpc.h"

typedef struct feed {
  const uint8_t *p;
  size_t left;
} feed_t;

static int feed_read(void *ctx, void *buf, size_t n) {
  feed_t *f = ctx;
  if (n > f->left) return OTPC_EIO;
  memcpy(buf, f->p, n);
  f->p += n;
  f->left -= n;
  return 0;
}

static int feed_write(void *ctx, const void *buf, size_t n) {
  return 0;
}

static const char *status(void *ctx, const char *peer, uint64_t flags) {
  /* Cover both answers that go on. */
  return (flags & 1) ? "alive" : "ok";
}

static void alive(void *ctx, const char *peer, bool go_on) {}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  otpc__hs_policy_t pol = {status, alive, NULL};
  for (int role = 0; role < 2; role++) {
    feed_t f = {data, size};
    otpc__hs_io_t io = {feed_read, feed_write, &f, false};
    otpc__hs_t hs;
    memset(&hs, 0, sizeof hs);
    hs.self = "fuzz@host";
    hs.flags = DIST_FLAGS_OURS;
    hs.creation = 1;
    hs.cookie = "cookie";
    hs.expect = role ? "peer@host" : NULL;
    int rc =
        role ? otpc__hs_initiate(&hs, &io) : otpc__hs_accept(&hs, &io, &pol);
    if (rc == 0 && hs.peer[0] == 0) __builtin_trap(); /* up with no peer */
    if (rc != 0 && hs.why[0] == 0) __builtin_trap();  /* refused silently */
  }
  return 0;
}
