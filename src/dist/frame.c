/*
 * frame.c: what travels on a connection once it is up (erts "External Term
 * Format", Distribution Header; "Distribution Protocol", Protocol between
 * Connected Nodes). Pure functions of bytes, so the fuzzer drives them.
 *
 * Incoming frame bodies (the 4-byte length already taken off):
 *   empty                            a tick
 *   131 68 header ctrl [msg]         a whole message
 *   131 69 seq:8 frag:8 header data  the first of `frag` fragments
 *   131 70 seq:8 frag:8 data         the next one (frag counts down to 1)
 *   112 131 ctrl [131 msg]           pass-through, without a header
 *
 * A header names up to 255 atoms for the terms that follow (ATOM_CACHE_REF
 * index i means its i-th atom); each is either new (its text follows, and
 * it is stored in the connection's cache of 8 x 256 slots) or a slot set
 * by an earlier header. The atoms of a fragmented message are resolved
 * when its first fragment comes, since later headers may reuse the slots
 * before its last fragment arrives.
 *
 * Terms are checked by the term layer (otpc__term_validate_cached) and,
 * when they use cache refs, rewritten with the atoms written out
 * (otpc__term_uncache), so what reaches a process is plain ETF.
 *
 * Outgoing messages use no cache refs: 131 68 0, then the control and the
 * payload. One whose bytes pass DIST_FRAG_SIZE goes as fragments when the
 * peer takes them, so the writer can put other messages between them.
 */
#include <stdarg.h>
#include <stdio.h>

#include "dist_int.h"

#define FRAG_SEQ_MAX 1024 /* sequences in progress on one connection */

/* A fragmented message being put together. When the first fragment holds
 * the whole control (as it does from Erlang and from otpc), the control is
 * kept apart and `buf` collects the message itself after a version byte,
 * so that buf becomes the message's buffer without another copy;
 * otherwise buf collects every byte and the message is cut out at the
 * end. */
struct otpc__frag {
  uint64_t seq;
  uint64_t left; /* fragments still to come */
  uint32_t nrefs;
  otpc_atom_t refs[255];
  uint8_t *ctrl; /* the control (without version byte), or NULL */
  size_t clen;
  otpc_buf_t *buf; /* a version byte, then the bytes so far */
  size_t len;      /* bytes after the version byte */
  size_t cap;      /* room after the version byte */
};

static void frag_release(otpc__frag_t *f) {
  otpc__free(f->ctrl);
  if (f->buf != NULL) otpc_buf_unref(f->buf);
}

void otpc__rx_init(otpc__rx_t *rx) {
  memset(rx, 0, sizeof *rx);
}

void otpc__rx_free(otpc__rx_t *rx) {
  for (size_t i = 0; i < rx->nfrags; i++) frag_release(&rx->frags[i]);
  otpc__free(rx->frags);
  rx->frags = NULL;
  rx->nfrags = 0;
}

void otpc__dmsg_clear(otpc__dmsg_t *m) {
  otpc_buf_unref(m->ctrl);
  otpc_buf_unref(m->payload);
  memset(m, 0, sizeof *m);
}

static int bad(char *why, size_t whylen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int bad(char *why, size_t whylen, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (why && whylen) vsnprintf(why, whylen, fmt, ap);
  va_end(ap);
  return rc;
}

/* ---- the header ---------------------------------------------------------- */

static unsigned nibble(const uint8_t *flags, size_t i) {
  return (flags[i / 2] >> (4 * (i & 1))) & 0xf;
}

/* Parses a header at p (NumberOfAtomCacheRefs first): the atoms into refs,
 * its length into *hlen. */
static int parse_header(otpc__rx_t *rx, const uint8_t *p, size_t n,
                        otpc_atom_t refs[255], uint32_t *nrefs, size_t *hlen,
                        char *why, size_t wl) {
  if (n < 1) return bad(why, wl, OTPC_ETRUNC, "empty distribution header");
  size_t nref = p[0];
  *nrefs = (uint32_t)nref;
  if (nref == 0) {
    *hlen = 1;
    return 0;
  }
  size_t nflags = nref / 2 + 1;
  if (n < 1 + nflags) return bad(why, wl, OTPC_ETRUNC, "short header flags");
  const uint8_t *flags = p + 1;
  bool long_atoms = nibble(flags, nref) & 1;
  size_t at = 1 + nflags;
  for (size_t i = 0; i < nref; i++) {
    unsigned f = nibble(flags, i);
    if (at >= n) return bad(why, wl, OTPC_ETRUNC, "short header");
    size_t slot = (f & 7) * 256 + p[at++];
    if (f & 8) {
      size_t len;
      if (long_atoms) {
        if (n - at < 2) return bad(why, wl, OTPC_ETRUNC, "short header");
        len = get_be16(p + at);
        at += 2;
      } else {
        if (n - at < 1) return bad(why, wl, OTPC_ETRUNC, "short header");
        len = p[at++];
      }
      if (n - at < len) return bad(why, wl, OTPC_ETRUNC, "short atom text");
      otpc_atom_t a;
      int rc = otpc_atom_new((const char *)p + at, len, &a);
      if (rc != 0) return bad(why, wl, rc, "bad atom in header");
      at += len;
      rx->cache[slot] = a;
    } else if (rx->cache[slot] == OTPC_ATOM_NONE) {
      return bad(why, wl, OTPC_EBADARG, "reference to empty cache slot %zu",
                 slot);
    }
    refs[i] = rx->cache[slot];
  }
  *hlen = at;
  return 0;
}

/* ---- control and payload ------------------------------------------------- */

/* A checked term as a plain buffer (version byte first). */
static otpc_buf_t *plain(const uint8_t *p, size_t n, size_t nrefs,
                         const otpc_atom_t *refs, int *rc) {
  if (nrefs > 0) return otpc__term_uncache(p, n, refs, rc);
  otpc_buf_t *b = otpc_buf_new(NULL, n + 1);
  if (b == NULL) {
    *rc = OTPC_ENOMEM;
    return NULL;
  }
  uint8_t *d = otpc_buf_mutable_data(b);
  d[0] = 131;
  memcpy(d + 1, p, n);
  return b;
}

static otpc_buf_t *copy_term(otpc_term_t t) {
  otpc_builder_t b;
  otpc_builder_init(&b);
  otpc_build_term(&b, t);
  return otpc_builder_finish(&b, NULL);
}

static bool has_payload(int op) {
  switch (op) {
    case DOP_SEND:
    case DOP_REG_SEND:
    case DOP_SEND_TT:
    case DOP_REG_SEND_TT:
    case DOP_SEND_SENDER:
    case DOP_SEND_SENDER_TT:
    case DOP_PAYLOAD_EXIT:
    case DOP_PAYLOAD_EXIT_TT:
    case DOP_PAYLOAD_EXIT2:
    case DOP_PAYLOAD_EXIT2_TT:
    case DOP_PAYLOAD_MONITOR_P_EXIT:
    case DOP_SPAWN_REQUEST:
    case DOP_SPAWN_REQUEST_TT:
    case DOP_ALIAS_SEND:
    case DOP_ALIAS_SEND_TT: return true;
    default: return false;
  }
}

/* Control tuple shapes: one letter per element after the op. f from
 * pid, t to pid, a to name, x to pid or name, y from pid or name, r ref,
 * i unlink id, _ not needed. *reason_at: the element (1-based after the
 * op) that is the reason, for the ops that carry it in the control. */
static const char *shape(int op, size_t *reason_at) {
  *reason_at = 0;
  switch (op) {
    case DOP_LINK:
    case DOP_UNLINK:
    case DOP_GROUP_LEADER:
    case DOP_SEND_SENDER:
    case DOP_PAYLOAD_EXIT:
    case DOP_PAYLOAD_EXIT2: return "ft";
    case DOP_SEND: return "_t";
    case DOP_SEND_TT: return "_t_";
    case DOP_SEND_SENDER_TT:
    case DOP_PAYLOAD_EXIT_TT:
    case DOP_PAYLOAD_EXIT2_TT: return "ft_";
    case DOP_EXIT:
    case DOP_EXIT2: *reason_at = 3; return "ft_";
    case DOP_EXIT_TT:
    case DOP_EXIT2_TT: *reason_at = 4; return "ft__";
    case DOP_REG_SEND: return "f_a";
    case DOP_REG_SEND_TT: return "f_a_";
    case DOP_MONITOR_P:
    case DOP_DEMONITOR_P: return "fxr";
    case DOP_MONITOR_P_EXIT: *reason_at = 4; return "ytr_";
    case DOP_PAYLOAD_MONITOR_P_EXIT: return "ytr";
    case DOP_ALIAS_SEND: return "fr";
    case DOP_ALIAS_SEND_TT: return "fr_";
    case DOP_UNLINK_ID:
    case DOP_UNLINK_ID_ACK: return "ift";
    case DOP_SPAWN_REQUEST: return "rf___";
    case DOP_SPAWN_REQUEST_TT: return "rf____";
    default: return NULL;
  }
}

/* A pid, or an atom (a registered name). */
static int pid_or_name(otpc_term_t e, otpc_pid_t *pid, otpc_atom_t *name) {
  if (otpc_term_type(e) == OTPC_TYPE_ATOM) return otpc_term_get_atom(e, name);
  return otpc_term_get_pid(e, pid);
}

static int decode_ctrl_term(otpc__dmsg_t *m, otpc_term_t t);

int otpc__dmsg_decode_ctrl(otpc__dmsg_t *m) {
  return decode_ctrl_term(m, otpc_buf_term(m->ctrl));
}

static int decode_ctrl_term(otpc__dmsg_t *m, otpc_term_t t) {
  otpc_term_t e;
  size_t arity;
  int op;
  if (otpc_term_get_tuple(t, &arity, &e) != 0 || arity < 1 ||
      otpc_term_get_int(e, &op) != 0)
    return OTPC_EBADARG;
  m->op = op;
  size_t reason_at;
  const char *s = shape(op, &reason_at);
  if (s == NULL) return 0; /* an operation we do not act on */
  if (arity != strlen(s) + 1) return OTPC_EBADARG;
  for (size_t i = 0; s[i]; i++) {
    e = otpc_term_next(e);
    int rc = 0;
    switch (s[i]) {
      case 'f': rc = otpc_term_get_pid(e, &m->from); break;
      case 't': rc = otpc_term_get_pid(e, &m->to); break;
      case 'a': rc = otpc_term_get_atom(e, &m->to_name); break;
      case 'x': rc = pid_or_name(e, &m->to, &m->to_name); break;
      case 'y': rc = pid_or_name(e, &m->from, &m->from_name); break;
      case 'r': rc = otpc_term_get_ref(e, &m->ref); break;
      case 'i': rc = otpc_term_get_uint64(e, &m->id); break;
      default: break;
    }
    if (rc != 0) return OTPC_EBADARG;
    if (reason_at == i + 1) {
      m->payload = copy_term(e);
      if (m->payload == NULL) return OTPC_ENOMEM;
    }
  }
  return 0;
}

/* The control at p (clen bytes, checked) into out; rest: bytes of
 * message that follow it. */
static int take_ctrl(const uint8_t *p, size_t clen, size_t crefs, size_t rest,
                     const otpc_atom_t *refs, otpc__dmsg_t *out, char *why,
                     size_t wl) {
  int rc = 0;
  if (crefs == 0) {
    /* read where it is (checked bytes); only a spawn request keeps its
     * control, for spawn.c */
    rc = decode_ctrl_term(out, term_at(p));
    if (rc == 0 &&
        (out->op == DOP_SPAWN_REQUEST || out->op == DOP_SPAWN_REQUEST_TT)) {
      out->ctrl = plain(p, clen, 0, refs, &rc);
      if (out->ctrl == NULL) return bad(why, wl, rc, "out of memory");
    }
  } else {
    out->ctrl = plain(p, clen, crefs, refs, &rc);
    if (out->ctrl == NULL) return bad(why, wl, rc, "out of memory");
    rc = otpc__dmsg_decode_ctrl(out);
  }
  if (rc != 0) return bad(why, wl, rc, "malformed control message");
  bool want = has_payload(out->op);
  if (want != (rest > 0) && !(out->payload != NULL && rest == 0))
    return bad(why, wl, OTPC_EBADARG, "control %d %s a message", out->op,
               want ? "without" : "with");
  return 0;
}

/* Checks the message at p (n bytes, exactly one term). */
static int check_payload(const uint8_t *p, size_t n, const otpc_atom_t *refs,
                         uint32_t nrefs, size_t *prefs, char *why, size_t wl) {
  otpc_decode_error_t err;
  long plen = otpc__term_validate_cached(p, n, refs, nrefs, prefs, &err);
  if (plen < 0)
    return bad(why, wl, (int)plen, "bad message: %s at byte %zu",
               otpc_strerror((int)plen), err.offset);
  if ((size_t)plen != n)
    return bad(why, wl, OTPC_ETRAIL, "bytes after the message");
  return 0;
}

/* Control and payload of one whole message at p, n bytes. */
static int take_message(const uint8_t *p, size_t n, uint32_t nrefs,
                        const otpc_atom_t *refs, otpc__dmsg_t *out, char *why,
                        size_t wl) {
  otpc_decode_error_t err;
  size_t crefs = 0, prefs = 0;
  long clen = otpc__term_validate_cached(p, n, refs, nrefs, &crefs, &err);
  if (clen < 0)
    return bad(why, wl, (int)clen, "bad control message: %s at byte %zu",
               otpc_strerror((int)clen), err.offset);
  size_t rest = n - (size_t)clen;
  int rc = take_ctrl(p, (size_t)clen, crefs, rest, refs, out, why, wl);
  if (rc != 0) return rc;
  if (rest == 0) return 1;
  rc = check_payload(p + clen, rest, refs, nrefs, &prefs, why, wl);
  if (rc != 0) return rc;
  out->payload = plain(p + clen, rest, prefs, refs, &rc);
  if (out->payload == NULL) return bad(why, wl, rc, "out of memory");
  return 1;
}

static int pass_through(const uint8_t *p, size_t n, otpc__dmsg_t *out,
                        char *why, size_t wl) {
  if (n < 1 || p[0] != 131)
    return bad(why, wl, OTPC_EVERSION, "pass-through without 131");
  otpc_decode_error_t err;
  long clen = otpc_term_validate(p + 1, n - 1, NULL, &err);
  if (clen < 0) return bad(why, wl, (int)clen, "bad control message");
  size_t at = 1 + (size_t)clen;
  if (at < n) {
    if (p[at] != 131) return bad(why, wl, OTPC_EVERSION, "message without 131");
    long plen = otpc_term_validate(p + at + 1, n - at - 1, NULL, &err);
    if (plen < 0) return bad(why, wl, (int)plen, "bad message");
    if ((size_t)plen != n - at - 1)
      return bad(why, wl, OTPC_ETRAIL, "trailing bytes");
  }
  /* The same checks again on the exact slices, as take_message does. */
  uint8_t *both = otpc__malloc(n);
  if (both == NULL) return bad(why, wl, OTPC_ENOMEM, "out of memory");
  memcpy(both, p + 1, (size_t)clen);
  size_t m = (size_t)clen;
  if (at < n) {
    memcpy(both + m, p + at + 1, n - at - 1);
    m += n - at - 1;
  }
  int rc = take_message(both, m, 0, NULL, out, why, wl);
  otpc__free(both);
  return rc;
}

/* ---- fragments ----------------------------------------------------------- */

static otpc__frag_t *frag_find(otpc__rx_t *rx, uint64_t seq) {
  for (size_t i = 0; i < rx->nfrags; i++)
    if (rx->frags[i].seq == seq) return &rx->frags[i];
  return NULL;
}

static void frag_drop(otpc__rx_t *rx, otpc__frag_t *f) {
  rx->frag_bytes -= f->len;
  frag_release(f);
  *f = rx->frags[--rx->nfrags];
}

/* Room for n more bytes; the buffer grows by doubling (a large one is
 * remapped, not copied, by the allocator). */
static int frag_room(otpc__frag_t *f, size_t n) {
  if (n <= f->cap - f->len && f->buf != NULL) return 0;
  /* The first room is what was asked (the message's likely size), so
   * that the buffer is not cut down at the end: the allocator keeps
   * big blocks of one size warm, not ones that shrink. */
  size_t cap = f->cap ? f->cap : n > 65536 ? n : 65536;
  while (cap - f->len < n) cap *= 2;
  otpc_buf_t *bigger = otpc__buf_resize(f->buf, 1 + cap);
  if (bigger == NULL) return OTPC_ENOMEM;
  f->buf = bigger;
  f->cap = cap;
  return 0;
}

static int frag_append(otpc__rx_t *rx, otpc__frag_t *f, const uint8_t *p,
                       size_t n) {
  if (n > DIST_FRAME_MAX - f->len) return OTPC_ELENGTH;
  int rc = frag_room(f, n);
  if (rc != 0) return rc;
  memcpy(otpc_buf_mutable_data(f->buf) + 1 + f->len, p, n);
  f->len += n;
  rx->frag_bytes += n;
  return 0;
}

/* The last fragment came: the message, as take_message gives it. */
static int frag_finish(otpc__frag_t *f, otpc__dmsg_t *out, char *why,
                       size_t wl) {
  uint8_t *d = otpc_buf_mutable_data(f->buf);
  if (f->ctrl == NULL)
    return take_message(d + 1, f->len, f->nrefs, f->refs, out, why, wl);
  otpc_decode_error_t err;
  size_t crefs = 0, prefs = 0;
  otpc__term_validate_cached(f->ctrl, f->clen, f->refs, f->nrefs, &crefs, &err);
  int rc = take_ctrl(f->ctrl, f->clen, crefs, f->len, f->refs, out, why, wl);
  if (rc != 0 || f->len == 0) return rc != 0 ? rc : 1;
  rc = check_payload(d + 1, f->len, f->refs, f->nrefs, &prefs, why, wl);
  if (rc != 0) return rc;
  if (prefs > 0) {
    out->payload = otpc__term_uncache(d + 1, f->len, f->refs, &rc);
    if (out->payload == NULL) return bad(why, wl, rc, "out of memory");
    return 1;
  }
  d[0] = 131; /* the collected bytes are the message's buffer */
  out->payload = otpc__buf_shrink(f->buf, 1 + f->len);
  f->buf = NULL;
  return 1;
}

static int frag_start(otpc__rx_t *rx, const uint8_t *p, size_t n,
                      otpc__dmsg_t *out, char *why, size_t wl) {
  if (n < 16) return bad(why, wl, OTPC_ETRUNC, "short fragment header");
  uint64_t seq = get_be64(p), fid = get_be64(p + 8);
  if (fid == 0) return bad(why, wl, OTPC_EBADARG, "fragment id 0");
  otpc_atom_t refs[255];
  uint32_t nrefs;
  size_t hlen;
  int rc = parse_header(rx, p + 16, n - 16, refs, &nrefs, &hlen, why, wl);
  if (rc != 0) return rc;
  const uint8_t *data = p + 16 + hlen;
  size_t dlen = n - 16 - hlen;
  if (fid == 1) return take_message(data, dlen, nrefs, refs, out, why, wl);
  if (frag_find(rx, seq) != NULL)
    return bad(why, wl, OTPC_EEXIST, "fragment sequence %llu started twice",
               (unsigned long long)seq);
  if (rx->nfrags == FRAG_SEQ_MAX)
    return bad(why, wl, OTPC_ESYSLIMIT, "too many fragmented messages at once");
  if (fid - 1 > DIST_FRAME_MAX)
    return bad(why, wl, OTPC_ELENGTH, "absurd fragment count");
  if ((rx->nfrags & (rx->nfrags - 1)) == 0 || rx->nfrags == 0) {
    size_t cap = rx->nfrags ? rx->nfrags * 2 : 4;
    otpc__frag_t *bigger = otpc__realloc(rx->frags, cap * sizeof *bigger);
    if (bigger == NULL) return bad(why, wl, OTPC_ENOMEM, "out of memory");
    rx->frags = bigger;
  }
  otpc__frag_t *f = &rx->frags[rx->nfrags++];
  memset(f, 0, sizeof *f);
  f->seq = seq;
  f->left = fid - 1;
  f->nrefs = nrefs;
  memcpy(f->refs, refs, nrefs * sizeof refs[0]);
  /* The control whole in this fragment: kept apart (see otpc__frag). */
  otpc_decode_error_t err;
  long clen = otpc__term_validate_cached(data, dlen, refs, nrefs, NULL, &err);
  if (clen > 0) {
    f->ctrl = otpc__malloc((size_t)clen);
    if (f->ctrl == NULL) {
      frag_drop(rx, f);
      return bad(why, wl, OTPC_ENOMEM, "out of memory");
    }
    memcpy(f->ctrl, data, (size_t)clen);
    f->clen = (size_t)clen;
    data += clen;
    dlen -= (size_t)clen;
  }
  /* Room for as many fragments as this one, up to 8 MiB at first (a
   * peer cannot make us reserve much before it sends it). */
  size_t guess = (dlen > 4096 ? dlen : 4096) * (size_t)fid;
  rc = frag_room(f, guess < ((size_t)8 << 20) ? guess : (size_t)8 << 20);
  if (rc == 0) rc = frag_append(rx, f, data, dlen);
  if (rc != 0) {
    frag_drop(rx, f);
    return bad(why, wl, rc, "fragment too large");
  }
  return 0;
}

static int frag_more(otpc__rx_t *rx, const uint8_t *p, size_t n,
                     otpc__dmsg_t *out, char *why, size_t wl) {
  if (n < 16) return bad(why, wl, OTPC_ETRUNC, "short fragment header");
  uint64_t seq = get_be64(p), fid = get_be64(p + 8);
  otpc__frag_t *f = frag_find(rx, seq);
  if (f == NULL)
    return bad(why, wl, OTPC_EBADARG, "fragment of unknown sequence %llu",
               (unsigned long long)seq);
  if (fid != f->left)
    return bad(why, wl, OTPC_EBADARG, "fragment %llu where %llu was due",
               (unsigned long long)fid, (unsigned long long)f->left);
  int rc = frag_append(rx, f, p + 16, n - 16);
  if (rc != 0) return bad(why, wl, rc, "fragmented message too large");
  if (--f->left > 0) return 0;
  rc = frag_finish(f, out, why, wl);
  frag_drop(rx, f);
  return rc;
}

int otpc__rx_frame(otpc__rx_t *rx, const uint8_t *data, size_t len,
                   otpc__dmsg_t *out, char *why, size_t wl) {
  memset(out, 0, sizeof *out);
  if (len == 0) return 0; /* tick */
  int rc;
  if (data[0] == 112) {
    rc = pass_through(data + 1, len - 1, out, why, wl);
  } else if (len < 2 || data[0] != 131) {
    rc = bad(why, wl, OTPC_EVERSION, "frame starts with %u, not 131", data[0]);
  } else if (data[1] == 68) {
    otpc_atom_t refs[255];
    uint32_t nrefs;
    size_t hlen;
    rc = parse_header(rx, data + 2, len - 2, refs, &nrefs, &hlen, why, wl);
    if (rc == 0)
      rc = take_message(data + 2 + hlen, len - 2 - hlen, nrefs, refs, out, why,
                        wl);
  } else if (data[1] == 69) {
    rc = frag_start(rx, data + 2, len - 2, out, why, wl);
  } else if (data[1] == 70) {
    rc = frag_more(rx, data + 2, len - 2, out, why, wl);
  } else {
    rc = bad(why, wl, OTPC_EBADTAG, "unknown distribution header %u", data[1]);
  }
  if (rc < 0) otpc__dmsg_clear(out);
  return rc;
}

/* ---- outgoing ------------------------------------------------------------ */

otpc_buf_t *otpc__ctrl_fmt(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  otpc_buf_t *b = otpc_term_vfmt(fmt, ap, NULL);
  va_end(ap);
  return b;
}

int otpc__tx_next(const otpc_buf_t *ctrl, const otpc_buf_t *payload,
                  bool fragments, uint64_t seq, size_t *offset,
                  otpc__txframe_t *f) {
  size_t clen = otpc_buf_size(ctrl) - 1;
  size_t plen = payload ? otpc_buf_size(payload) - 1 : 0;
  size_t total = clen + plen, off = *offset, chunk;
  uint8_t *h = f->head;
  if (!fragments || total <= DIST_FRAG_SIZE) {
    put_be32(h, (uint32_t)(3 + total));
    h[4] = 131;
    h[5] = 68;
    h[6] = 0;
    f->head_len = 7;
    chunk = total;
  } else {
    uint64_t nfrag = (total + DIST_FRAG_SIZE - 1) / DIST_FRAG_SIZE;
    uint64_t fid = nfrag - off / DIST_FRAG_SIZE;
    chunk = total - off < DIST_FRAG_SIZE ? total - off : DIST_FRAG_SIZE;
    h[4] = 131;
    h[5] = off == 0 ? 69 : 70;
    put_be64(h + 6, seq);
    put_be64(h + 14, fid);
    f->head_len = 22;
    if (off == 0) h[f->head_len++] = 0; /* no atom cache refs */
    put_be32(h, (uint32_t)(f->head_len - 4 + chunk));
  }
  const uint8_t *a = otpc_buf_data(ctrl) + 1;
  const uint8_t *b = payload ? otpc_buf_data(payload) + 1 : NULL;
  f->a = NULL;
  f->alen = 0;
  f->b = NULL;
  f->blen = 0;
  if (off < clen) {
    f->a = a + off;
    f->alen = clen - off < chunk ? clen - off : chunk;
  }
  if (off + chunk > clen) {
    size_t from = off > clen ? off - clen : 0;
    f->b = b + from;
    f->blen = off + chunk - clen - from;
  }
  *offset = off + chunk;
  return *offset < total ? 1 : 0;
}

/* The control of a message, written by the writer itself (no buffer, no
 * format): {22, From, To} (SEND_SENDER) or {2, '', To} (SEND). */
static size_t pid_size(const otpc_pid_t *p) {
  size_t len;
  otpc_atom_name(p->node, &len);
  return 1 + (len < 256 ? 2 : 3) + len + 12;
}

static uint8_t *put_pid(uint8_t *o, const otpc_pid_t *p) {
  size_t len;
  const char *name = otpc_atom_name(p->node, &len);
  *o++ = 88; /* NEW_PID_EXT */
  if (len < 256) {
    *o++ = 119; /* SMALL_ATOM_UTF8_EXT */
    *o++ = (uint8_t)len;
  } else {
    *o++ = 118; /* ATOM_UTF8_EXT */
    put_be16(o, (uint16_t)len);
    o += 2;
  }
  memcpy(o, name, len);
  o += len;
  put_be32(o, p->id);
  put_be32(o + 4, p->serial);
  put_be32(o + 8, p->creation);
  return o + 12;
}

size_t otpc__ctrl_send_size(const otpc_pid_t *from, const otpc_pid_t *to,
                            bool sender) {
  return 4 + (sender ? pid_size(from) : 2) + pid_size(to);
}

size_t otpc__ctrl_send_put(uint8_t *out, const otpc_pid_t *from,
                           const otpc_pid_t *to, bool sender) {
  uint8_t *o = out;
  *o++ = 104; /* SMALL_TUPLE_EXT */
  *o++ = 3;
  *o++ = 97; /* SMALL_INTEGER_EXT */
  if (sender) {
    *o++ = DOP_SEND_SENDER;
    o = put_pid(o, from);
  } else {
    *o++ = DOP_SEND;
    *o++ = 119; /* '' */
    *o++ = 0;
  }
  o = put_pid(o, to);
  return (size_t)(o - out);
}
