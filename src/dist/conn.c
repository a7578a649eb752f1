/*
 * conn.c: connections to other nodes.
 *
 * One conn_t per node we talk to, in `table` (under `tab_lock`). Its
 * states:
 *
 *   PENDING  a handshake runs (ours as initiator, or the peer's that we
 *            accept); messages for the node wait in the queue. `gen`
 *            names the handshake that owns it: in a simultaneous connect
 *            the acceptor takes over by bumping it, and the initiator
 *            that finds its number gone just closes its socket.
 *   UP       a reader and a writer process serve it.
 *   DOWN     out of the table; whatever is queued is dropped. Final.
 *
 * The reader is the process that ran the handshake: it reads frames,
 * decodes them (frame.c) and delivers signals to local processes, and
 * declares the peer dead when nothing came for net_ticktime. The writer
 * takes the whole queue and writes it in batches, one sendmsg each (small
 * messages copied into its buffer, big ones pointed at in their own),
 * sends a tick when it wrote nothing for a quarter of the ticktime, and
 * puts small messages between the fragments of a large one (never
 * overtaking a message from the same sender, so each pair of processes
 * keeps its order).
 *
 * The writer is `kicked` from the moment something is queued for it
 * until it finds the queue empty; only then does it clear the flag and
 * sleep, so senders send it one kick per time it sleeps.
 *
 * Senders, on any thread, append to the queue under the conn's lock and
 * send the writer a 'kick' message when it is not kicked already. When
 * the writer sleeps with nothing queued, a sender writes a small message
 * to the socket itself (`writing` keeps it the only writer meanwhile, on
 * `sfd`, which lives as long as the conn), so a message and its answer
 * cost no wakeup of a writer; what the socket does not take at once goes
 * to the head of the queue for the writer. After such a write the next
 * messages queue (`direct`), so that a stream of them goes out in the
 * writer's batches, until the writer has emptied the queue or the peer
 * has sent something (an answer: the next request may go direct).
 *
 * Both processes are handler processes whose init runs the whole loop, so
 * that their terminate callback releases the conn however they end (a
 * kill included). References: the table holds one, each process one, and
 * a sender one while it queues.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "dist_int.h"

enum { C_PENDING, C_UP, C_DOWN };

/* A message for the connection. ctrl NULL: a plain message from sender
 * to `to` whose control the writer writes itself (SEND_SENDER or SEND,
 * whichever the peer takes), so a small send builds no control buffer;
 * or, when raw, payload holds bytes to write as they are (the rest of a
 * frame a sender began to write itself). */
typedef struct item {
  struct item *next;
  otpc_buf_t *ctrl, *payload;
  otpc_pid_t sender;
  otpc_pid_t to; /* ctrl NULL */
  bool raw;
} item_t;

static bool real_pid(otpc_pid_t p) {
  return p.node != OTPC_ATOM_UNDEFINED;
}

typedef struct conn {
  struct conn *next; /* in the table (tab_lock) */
  _Atomic int refs;
  otpc_atom_t node;
  pthread_mutex_t lock; /* guards the fields below, up to `rx` */
  int state;
  uint32_t gen;
  uint64_t flags; /* the peer's, once UP */
  uint32_t creation;
  bool hidden;
  int fd;
  otpc_pid_t reader, writer;
  bool has_writer;
  item_t *head, **tail;
  bool kicked;      /* the writer has work: it sends, senders only queue */
  bool writing;     /* a sender writes to sfd (see direct_write) */
  bool direct;      /* a sender wrote last: the next ones queue (batches) */
  int sfd;          /* a dup of fd for senders, closed with the conn */
  otpc__tls_t *tls; /* with TLS: set once UP, freed with the conn */
  uint64_t next_seq;
  uint64_t next_unlink_id;
  struct bonds {
    struct bond *slot; /* cap slots (a power of two, or 0); kind 0: free */
    size_t n, cap;
  } bonds;       /* links and monitors over this connection */
  otpc__rx_t rx; /* reader only */
} conn_t;

/* A link or monitor between a local and a remote process that goes over
 * the connection: when the connection goes down, the local side hears
 * noconnection (EXIT for a link, DOWN for a monitor it holds), and a
 * monitor the peer held on it is dropped. Kept in a hash table under the
 * conn's lock (open addressing, linear probing, deletion by shifting
 * back, so there are no tombstones), keyed by the two pids for a link and
 * by the reference for a monitor: a million cost no more per signal than
 * ten. */
enum { B_LINK = 1, B_MON_OUT = 2, B_MON_IN = 3 };
typedef struct bond {
  int kind;
  otpc_pid_t local, remote;
  otpc_ref_t ref;
  otpc_atom_t name; /* B_MON_OUT by name: the remote registered name */
} bond_t;

/* What a signal does to the bonds: add or remove one. */
typedef struct bond_op {
  bool add;
  bond_t b;
} bond_op_t;
typedef struct bonds bonds_t;

static pthread_mutex_t tab_lock = PTHREAD_MUTEX_INITIALIZER;
static conn_t *table;
static otpc_buf_t *kick_msg;
static _Atomic int live_tasks; /* connection processes not yet cleaned up */

/* ------------------------------------------------------------------------
 * Tasks: processes that always clean up
 * ------------------------------------------------------------------------ */

typedef struct task {
  void (*run)(void *);
  void (*done)(void *);
  void *arg;
} task_t;

static int task_init(void *arg, void **state) {
  *state = arg; /* before anything can block: terminate needs it */
  task_t *t = arg;
  t->run(t->arg);
  return OTPC_STOP;
}
static int task_handle(void *state, otpc_buf_t *msg) {
  return OTPC_STOP;
}
static void task_terminate(void *state, otpc_term_t reason) {
  task_t *t = state;
  if (t == NULL) return;
  if (t->done) t->done(t->arg);
  otpc__free(t);
  atomic_fetch_sub(&live_tasks, 1);
}
static const otpc_handler_t task_handler = {task_init, task_handle,
                                            task_terminate};

/* Runs run(arg) in a new process; done(arg) follows however it ends. */
static int spawn_task(void (*run)(void *), void (*done)(void *), void *arg,
                      const char *name, otpc_pid_t *pid) {
  task_t *t = otpc__malloc(sizeof *t);
  if (t == NULL) return OTPC_ENOMEM;
  t->run = run;
  t->done = done;
  t->arg = arg;
  otpc_spawn_opts_t o = {.name = name};
  atomic_fetch_add(&live_tasks, 1);
  int rc = otpc_spawn_handler(&task_handler, t, &o, pid);
  if (rc != 0) {
    otpc__free(t);
    atomic_fetch_sub(&live_tasks, 1);
  }
  return rc;
}

/* ------------------------------------------------------------------------
 * The table
 * ------------------------------------------------------------------------ */

static void conn_ref(conn_t *c) {
  atomic_fetch_add(&c->refs, 1);
}

static void free_items(item_t *it) {
  while (it != NULL) {
    item_t *next = it->next;
    otpc_buf_unref(it->ctrl);
    otpc_buf_unref(it->payload);
    otpc__free(it);
    it = next;
  }
}

static void conn_unref(conn_t *c) {
  if (atomic_fetch_sub(&c->refs, 1) != 1) return;
  free_items(c->head);
  if (c->sfd >= 0) close(c->sfd);
  otpc__tls_free(c->tls);
  otpc__free(c->bonds.slot);
  otpc__rx_free(&c->rx);
  pthread_mutex_destroy(&c->lock);
  otpc__free(c);
}

static conn_t *find(otpc_atom_t node) {
  for (conn_t *c = table; c != NULL; c = c->next)
    if (c->node == node) return c;
  return NULL;
}

/* A new PENDING conn in the table (tab_lock held), with one reference for
 * the table and one for the caller. */
static conn_t *conn_new(otpc_atom_t node) {
  conn_t *c = otpc__calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  atomic_init(&c->refs, 2);
  c->node = node;
  pthread_mutex_init(&c->lock, NULL);
  c->state = C_PENDING;
  c->gen = 1;
  c->fd = -1;
  c->sfd = -1;
  c->tail = &c->head;
  c->next_unlink_id = 1;
  otpc__rx_init(&c->rx);
  c->next = table;
  table = c;
  return c;
}

static void unlink_from_table(conn_t *c) {
  pthread_mutex_lock(&tab_lock);
  for (conn_t **pp = &table; *pp != NULL; pp = &(*pp)->next) {
    if (*pp == c) {
      *pp = c->next;
      pthread_mutex_unlock(&tab_lock);
      conn_unref(c); /* the table's reference */
      return;
    }
  }
  pthread_mutex_unlock(&tab_lock);
}

static void bonds_break(bonds_t *t);

/* Takes the conn down (once): out of the table, queue dropped, its
 * processes killed (except the caller), nodedown told. */
static void conn_down(conn_t *c, const char *why) {
  pthread_mutex_lock(&c->lock);
  int was = c->state;
  if (was == C_DOWN) {
    pthread_mutex_unlock(&c->lock);
    return;
  }
  c->state = C_DOWN;
  if (c->sfd >= 0) shutdown(c->sfd, SHUT_RDWR); /* it may outlive the conn */
  item_t *q = c->head;
  c->head = NULL;
  c->tail = &c->head;
  otpc_pid_t reader = c->reader, writer = c->writer;
  bool has_writer = c->has_writer, hidden = c->hidden;
  bonds_t bonds = c->bonds;
  memset(&c->bonds, 0, sizeof c->bonds);
  pthread_mutex_unlock(&c->lock);
  conn_ref(c);
  unlink_from_table(c);
  free_items(q);
  bonds_break(&bonds);
  otpc__free(bonds.slot);
  if (was == C_UP)
    OTPC_LOG_INFO("connection to %s down: %s", otpc_atom_name(c->node, NULL),
                  why);
  otpc_pid_t self = otpc_self();
  otpc_buf_t *kill = otpc__atom_buf(OTPC_ATOM_KILL);
  if (kill != NULL) {
    if (has_writer && !otpc_pid_eq(writer, self))
      otpc_exit_signal(writer, otpc_buf_term(kill));
    if (was == C_UP && !otpc_pid_eq(reader, self))
      otpc_exit_signal(reader, otpc_buf_term(kill));
    otpc_buf_unref(kill);
  }
  otpc__node_event(c->node, false, was == C_UP ? hidden : true);
  conn_unref(c);
}

/* A handshake with number gen failed or gave up. */
static void conn_fail(conn_t *c, uint32_t gen, const char *why) {
  pthread_mutex_lock(&c->lock);
  bool mine = c->gen == gen && c->state == C_PENDING;
  pthread_mutex_unlock(&c->lock);
  if (mine) conn_down(c, why);
}

/* ------------------------------------------------------------------------
 * Links and monitors over the connection
 * ------------------------------------------------------------------------ */

static bool bond_same(const bond_t *a, const bond_t *b) {
  if (a->kind != b->kind) return false;
  if (a->kind == B_LINK)
    return otpc_pid_eq(a->local, b->local) && otpc_pid_eq(a->remote, b->remote);
  return otpc_ref_eq(&a->ref, &b->ref);
}

static uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  return h;
}

static size_t bond_hash(const bond_t *b) {
  uint64_t h = (uint64_t)b->kind;
  if (b->kind == B_LINK) {
    h = mix(h, ((uint64_t)b->local.id << 32) | b->local.serial);
    h = mix(h, ((uint64_t)b->remote.id << 32) | b->remote.serial);
    h = mix(h, (uint64_t)b->remote.node);
  } else {
    for (uint32_t i = 0; i < b->ref.len && i < OTPC_REF_MAX_WORDS; i++)
      h = mix(h, b->ref.id[i]);
    h = mix(h, (uint64_t)b->ref.node);
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return (size_t)h;
}

/* The slot of the bond that is key's, or SIZE_MAX. */
static size_t bonds_find(const bonds_t *t, const bond_t *key) {
  if (t->cap == 0) return SIZE_MAX;
  size_t m = t->cap - 1;
  for (size_t i = bond_hash(key) & m;; i = (i + 1) & m) {
    if (t->slot[i].kind == 0) return SIZE_MAX;
    if (bond_same(&t->slot[i], key)) return i;
  }
}

static void bonds_place(bond_t *slot, size_t cap, const bond_t *b) {
  size_t m = cap - 1, i = bond_hash(b) & m;
  while (slot[i].kind != 0) i = (i + 1) & m;
  slot[i] = *b;
}

static bool bonds_grow(bonds_t *t) {
  size_t cap = t->cap ? t->cap * 2 : 16;
  bond_t *slot = otpc__calloc(cap, sizeof *slot);
  if (slot == NULL) return false;
  for (size_t i = 0; i < t->cap; i++)
    if (t->slot[i].kind != 0) bonds_place(slot, cap, &t->slot[i]);
  otpc__free(t->slot);
  t->slot = slot;
  t->cap = cap;
  return true;
}

static void bonds_del(bonds_t *t, size_t i) {
  size_t m = t->cap - 1;
  for (size_t j = (i + 1) & m; t->slot[j].kind != 0; j = (j + 1) & m) {
    size_t k = bond_hash(&t->slot[j]) & m; /* where j's bond wants to be */
    bool stays = i < j ? (k > i && k <= j) : (k > i || k <= j);
    if (!stays) {
      t->slot[i] = t->slot[j];
      i = j;
    }
  }
  t->slot[i].kind = 0;
  t->n--;
}

/* Applies op to c's bonds (c->lock held). Out of memory, a bond is not
 * kept: that link or monitor then hears nothing if the node goes away. */
static void bond_apply(conn_t *c, const bond_op_t *op) {
  bonds_t *t = &c->bonds;
  size_t i = bonds_find(t, &op->b);
  if (!op->add) {
    if (i != SIZE_MAX) bonds_del(t, i);
    return;
  }
  if (i != SIZE_MAX) return;
  if ((t->n + 1) * 4 > t->cap * 3 && !bonds_grow(t)) return;
  bonds_place(t->slot, t->cap, &op->b);
  t->n++;
}

static void deliver(otpc__sig_kind_t kind, otpc_pid_t to, otpc_pid_t from,
                    const otpc_ref_t *ref, otpc_buf_t *buf, uint16_t flags);

/* The connection is gone for b: noconnection to its local end. */
static void bond_break(const bond_t *b) {
  switch (b->kind) {
    case B_LINK:
      deliver(SIG_EXIT, b->local, b->remote, NULL,
              otpc__atom_buf(OTPC_ATOM_NOCONNECTION), SIGF_LINKED);
      break;
    case B_MON_OUT:
      deliver(SIG_DOWN, b->local, b->remote, &b->ref,
              otpc__atom_buf(OTPC_ATOM_NOCONNECTION), 0);
      break;
    case B_MON_IN:
      deliver(SIG_DEMONITOR, b->local, b->remote, &b->ref, NULL, 0);
      break;
    default: break;
  }
}

static void bonds_break(bonds_t *t) {
  for (size_t i = 0; i < t->cap; i++)
    if (t->slot[i].kind != 0) bond_break(&t->slot[i]);
}

/* ------------------------------------------------------------------------
 * Sending
 * ------------------------------------------------------------------------ */

static void connect_start(conn_t *c);

static int enqueue(otpc_atom_t node, otpc_buf_t *ctrl, otpc_buf_t *payload,
                   otpc_pid_t sender, const bond_op_t *bond);

int otpc__dist_enqueue(otpc_atom_t node, otpc_buf_t *ctrl, otpc_buf_t *payload,
                       otpc_pid_t sender) {
  return enqueue(node, ctrl, payload, sender, NULL);
}

static int enqueue_item(otpc_atom_t node, item_t *it, const bond_op_t *bond);

/* The bytes of a small message's whole frame, for a peer with these
 * flags: how many (0: not small), and them, into out. */
#define FLAT_MAX (7 + 2 * (4 + 1024 + 16) + DIST_COPY_MAX)

static bool sends_sender(uint64_t flags, const item_t *it) {
  return (flags & OTPC_DFLAG_SEND_SENDER) && real_pid(it->sender);
}

static size_t flat_size(uint64_t flags, const item_t *it) {
  if (it->raw || it->payload == NULL) return 0;
  size_t clen = it->ctrl ? otpc_buf_size(it->ctrl) - 1
                         : otpc__ctrl_send_size(&it->sender, &it->to,
                                                sends_sender(flags, it));
  size_t n = 7 + clen + otpc_buf_size(it->payload) - 1;
  return clen + otpc_buf_size(it->payload) - 1 <= DIST_COPY_MAX && n <= FLAT_MAX
             ? n
             : 0;
}

static void flat_put(uint8_t *out, size_t n, uint64_t flags, const item_t *it) {
  put_be32(out, (uint32_t)(n - 4));
  out[4] = 131;
  out[5] = 68;
  out[6] = 0; /* no atom cache refs */
  size_t at = 7;
  if (it->ctrl == NULL) {
    at += otpc__ctrl_send_put(out + at, &it->sender, &it->to,
                              sends_sender(flags, it));
  } else {
    memcpy(out + at, otpc_buf_data(it->ctrl) + 1, otpc_buf_size(it->ctrl) - 1);
    at += otpc_buf_size(it->ctrl) - 1;
  }
  memcpy(out + at, otpc_buf_data(it->payload) + 1,
         otpc_buf_size(it->payload) - 1);
}

/* A sender writes its message itself (c->lock held, released here; the
 * writer sleeps and nothing is queued). What the socket does not take
 * goes to the head of the queue, and the writer is kicked whenever
 * something waits once we are done (it may have found us writing). */
static void direct_write(conn_t *c, item_t *it) {
  c->writing = true;
  c->direct = true;
  uint64_t flags = c->flags;
  int fd = c->sfd;
  pthread_mutex_unlock(&c->lock);
  uint8_t frame[FLAT_MAX];
  size_t n = flat_size(flags, it);
  flat_put(frame, n, flags, it);
  size_t put = 0;
  while (put < n) {
    ssize_t k = send(fd, frame + put, n - put, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (k > 0) {
      put += (size_t)k;
    } else if (k < 0 && errno == EINTR) {
      continue;
    } else {
      /* full (the writer takes the rest), or broken (the reader sees it
       * too and takes the conn down; the message is lost with it) */
      if (k == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) put = n;
      break;
    }
  }
  otpc_buf_unref(it->ctrl);
  otpc_buf_unref(it->payload);
  it->ctrl = NULL;
  it->payload = NULL;
  if (put < n) {
    it->raw = true;
    it->payload = otpc_buf_new(frame + put, n - put);
  }
  bool kick = false;
  otpc_pid_t writer = {0};
  pthread_mutex_lock(&c->lock);
  c->writing = false;
  if (put < n && it->payload != NULL && c->state != C_DOWN) {
    it->next = c->head;
    c->head = it;
    if (c->tail == &c->head) c->tail = &it->next;
    it = NULL;
  }
  if (c->head != NULL && c->state == C_UP) {
    c->kicked = true;
    kick = true;
    writer = c->writer;
  }
  pthread_mutex_unlock(&c->lock);
  if (it != NULL) free_items(it);
  if (kick) otpc_send(writer, kick_msg);
}

static int enqueue(otpc_atom_t node, otpc_buf_t *ctrl, otpc_buf_t *payload,
                   otpc_pid_t sender, const bond_op_t *bond) {
  if (ctrl == NULL) {
    otpc_buf_unref(payload);
    return OTPC_ENOMEM;
  }
  item_t *it = otpc__malloc(sizeof *it);
  if (it == NULL) {
    otpc_buf_unref(ctrl);
    otpc_buf_unref(payload);
    return OTPC_ENOMEM;
  }
  it->next = NULL;
  it->ctrl = ctrl;
  it->payload = payload;
  it->sender = sender;
  it->to = (otpc_pid_t){0};
  it->raw = false;
  return enqueue_item(node, it, bond);
}

/* Appends it to node's queue (connecting if needed); takes it over. */
static int enqueue_item(otpc_atom_t node, item_t *it, const bond_op_t *bond) {
  if (!atomic_load(&otpc__dist.running) || node == otpc__dist.node) {
    free_items(it);
    return 0;
  }
  pthread_mutex_lock(&tab_lock);
  conn_t *c = find(node);
  bool created = false;
  if (c != NULL) {
    conn_ref(c);
  } else {
    c = conn_new(node);
    created = c != NULL;
  }
  pthread_mutex_unlock(&tab_lock);
  if (c == NULL) {
    free_items(it);
    return OTPC_ENOMEM;
  }
  if (created) connect_start(c);
  bool kick = false;
  otpc_pid_t writer = {0};
  pthread_mutex_lock(&c->lock);
  if (c->state == C_DOWN) {
    pthread_mutex_unlock(&c->lock);
    free_items(it);
    conn_unref(c);
    /* as to a node that is not there: dropped; a new link or monitor
     * hears noconnection */
    if (bond != NULL && bond->add) bond_break(&bond->b);
    return 0;
  }
  if (bond != NULL) bond_apply(c, bond);
  if (c->state == C_UP && c->has_writer && !c->kicked && !c->writing &&
      !c->direct && c->head == NULL && c->sfd >= 0 && c->tls == NULL &&
      flat_size(c->flags, it) > 0) {
    direct_write(c, it); /* unlocks */
    conn_unref(c);
    return 0;
  }
  *c->tail = it;
  c->tail = &it->next;
  if (c->state == C_UP && c->has_writer && !c->kicked) {
    c->kicked = true;
    kick = true;
    writer = c->writer;
  }
  pthread_mutex_unlock(&c->lock);
  conn_unref(c);
  if (kick) otpc_send(writer, kick_msg);
  return 0;
}

uint64_t otpc__conn_flags(otpc_atom_t node) {
  uint64_t flags = 0;
  pthread_mutex_lock(&tab_lock);
  conn_t *c = find(node);
  if (c != NULL) {
    pthread_mutex_lock(&c->lock);
    if (c->state == C_UP) flags = c->flags;
    pthread_mutex_unlock(&c->lock);
  }
  pthread_mutex_unlock(&tab_lock);
  return flags;
}

int otpc__conn_state(otpc_atom_t node, bool connect) {
  int st = -1;
  bool created = false;
  pthread_mutex_lock(&tab_lock);
  conn_t *c = find(node);
  if (c == NULL && connect && atomic_load(&otpc__dist.running)) {
    c = conn_new(node);
    created = c != NULL;
  }
  if (c != NULL) {
    pthread_mutex_lock(&c->lock);
    st = c->state == C_UP ? 1 : c->state == C_PENDING ? 0 : -1;
    pthread_mutex_unlock(&c->lock);
  }
  pthread_mutex_unlock(&tab_lock);
  if (created) {
    connect_start(c);
    conn_unref(c);
  }
  return st;
}

size_t otpc__conn_nodes(otpc_atom_t *out, size_t max, bool hidden) {
  size_t n = 0;
  pthread_mutex_lock(&tab_lock);
  for (conn_t *c = table; c != NULL; c = c->next) {
    pthread_mutex_lock(&c->lock);
    bool take = c->state == C_UP && (hidden || !c->hidden);
    pthread_mutex_unlock(&c->lock);
    if (!take) continue;
    if (n < max) out[n] = c->node;
    n++;
  }
  pthread_mutex_unlock(&tab_lock);
  return n;
}

int otpc__conn_close(otpc_atom_t node) {
  pthread_mutex_lock(&tab_lock);
  conn_t *c = find(node);
  if (c) conn_ref(c);
  pthread_mutex_unlock(&tab_lock);
  if (c == NULL) return 0;
  conn_down(c, "disconnected");
  conn_unref(c);
  return 1;
}

/* What a connection process holds: the conn (one reference) and the
 * handshake number it owned it with. */
typedef struct role {
  conn_t *c;
  uint32_t gen;
  int fd;            /* acceptor: the accepted socket */
  struct wstate *ws; /* the writer's state, freed with the role */
} role_t;

static role_t *role_new(conn_t *c, uint32_t gen, int fd) {
  role_t *r = otpc__malloc(sizeof *r);
  if (r != NULL) {
    r->c = c;
    r->gen = gen;
    r->fd = fd;
    r->ws = NULL;
  }
  return r;
}

/* ------------------------------------------------------------------------
 * The writer
 * ------------------------------------------------------------------------ */

/* The writer gathers frames into a batch and writes it with one sendmsg:
 * small messages are copied into `out` (length, header, control and
 * message together), the bytes of larger ones are pointed at where they
 * are (an iovec per piece), so a message buffer is never copied for the
 * socket. The items of a batch are kept in `done` until it is written.
 * Over TLS the pieces go into SSL_write calls instead: small ones
 * gathered in `tbuf`, big ones written from where they are, so that the
 * records are full and few. */
#define OUT_CAP ((size_t)128 << 10)     /* bytes copied into one batch */
#define IOV_N 256                       /* pieces of one batch */
#define BATCH_BYTES ((size_t)256 << 10) /* a batch this big is written */
#define TLS_GATHER ((size_t)64 << 10)   /* tbuf: small pieces for TLS */

typedef struct wstate {
  conn_t *c;
  int fd;
  bool frags;           /* the peer takes fragments */
  bool sender;          /* the peer takes SEND_SENDER */
  item_t *head, **tail; /* taken from the queue, not yet written */
  int64_t last_write;
  uint8_t *out; /* OUT_CAP bytes */
  size_t used;  /* of out */
  size_t bytes; /* in the batch */
  struct iovec iov[IOV_N];
  int niov;
  item_t *done;     /* in the batch: freed once it is written */
  otpc__tls_t *tls; /* the conn's, or NULL: plain TCP */
  uint8_t *tbuf;    /* TLS_GATHER bytes, with tls */
} wstate_t;

/* Moves the conn's queue to the writer's list; false once DOWN. While
 * the writer finds work, `kicked` stays set and senders send no kicks. */
static bool take_queue(wstate_t *w, bool idle) {
  conn_t *c = w->c;
  pthread_mutex_lock(&c->lock);
  bool up = c->state == C_UP;
  if (c->writing) {
    /* a sender writes: it kicks us once it is done if anything waits */
  } else if (c->head != NULL) {
    *w->tail = c->head;
    w->tail = c->tail;
    c->head = NULL;
    c->tail = &c->head;
  } else if (idle) {
    c->kicked = false; /* the writer sleeps next: senders kick it */
    c->direct = false;
  }
  pthread_mutex_unlock(&c->lock);
  return up;
}

static int write_iov(int fd, struct iovec *v, int n) {
  while (n > 0) {
    struct msghdr mh = {0};
    mh.msg_iov = v;
    mh.msg_iovlen = (size_t)n;
    ssize_t put = sendmsg(fd, &mh, MSG_NOSIGNAL);
    if (put < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return OTPC_EIO;
      int rc = otpc__sock_wait(fd, OTPC_FD_WRITE, -1);
      if (rc < 0) return rc;
      continue;
    }
    while (n > 0 && (size_t)put >= v->iov_len) {
      put -= (ssize_t)v->iov_len;
      v++;
      n--;
    }
    if (n > 0) {
      v->iov_base = (uint8_t *)v->iov_base + put;
      v->iov_len -= (size_t)put;
    }
  }
  return 0;
}

/* The batch through TLS: pieces up to TLS_GATHER bytes are gathered,
 * bigger ones written as they are. */
static int write_iov_tls(wstate_t *w) {
  size_t have = 0;
  int rc = 0;
  for (int i = 0; i < w->niov && rc == 0; i++) {
    const struct iovec *v = &w->iov[i];
    if (have > 0 && have + v->iov_len > TLS_GATHER) {
      rc = otpc__tls_write(w->tls, w->fd, w->tbuf, have, -1);
      have = 0;
    }
    if (rc != 0) break;
    if (v->iov_len >= TLS_GATHER) {
      rc = otpc__tls_write(w->tls, w->fd, v->iov_base, v->iov_len, -1);
    } else {
      memcpy(w->tbuf + have, v->iov_base, v->iov_len);
      have += v->iov_len;
    }
  }
  if (rc == 0 && have > 0)
    rc = otpc__tls_write(w->tls, w->fd, w->tbuf, have, -1);
  return rc;
}

/* Writes the batch; its items are released. */
static int flush(wstate_t *w) {
  int rc = 0;
  if (w->niov > 0) {
    rc = w->tls ? write_iov_tls(w) : write_iov(w->fd, w->iov, w->niov);
    w->last_write = otpc_now_ms();
  }
  w->niov = 0;
  w->used = 0;
  w->bytes = 0;
  free_items(w->done);
  w->done = NULL;
  return rc;
}

static void put_iov(wstate_t *w, const void *p, size_t n) {
  if (n == 0) return;
  w->bytes += n;
  if (w->niov > 0) {
    struct iovec *last = &w->iov[w->niov - 1];
    if ((const uint8_t *)last->iov_base + last->iov_len == p) {
      last->iov_len += n;
      return;
    }
  }
  w->iov[w->niov].iov_base = (void *)p;
  w->iov[w->niov].iov_len = n;
  w->niov++;
}

static void put_copy(wstate_t *w, const void *p, size_t n) {
  uint8_t *d = w->out + w->used;
  memcpy(d, p, n);
  w->used += n;
  put_iov(w, d, n);
}

static bool lazy_sender(const wstate_t *w, const item_t *it) {
  return w->sender && real_pid(it->sender);
}

static size_t ctrl_size(const wstate_t *w, const item_t *it) {
  if (it->raw) return 0;
  if (it->ctrl != NULL) return otpc_buf_size(it->ctrl) - 1;
  return otpc__ctrl_send_size(&it->sender, &it->to, lazy_sender(w, it));
}

static size_t payload_size(const item_t *it) {
  if (it->raw) return otpc_buf_size(it->payload);
  return it->payload ? otpc_buf_size(it->payload) - 1 : 0;
}

/* Puts a whole message into the batch; false if it does not fit (write
 * the batch first: it always fits an empty one). */
static bool stage_whole(wstate_t *w, const item_t *it) {
  if (it->raw) { /* the rest of a frame a sender began: as it is */
    size_t n = otpc_buf_size(it->payload);
    if (w->niov + 1 > IOV_N || w->used + n > OUT_CAP) return false;
    put_copy(w, otpc_buf_data(it->payload), n);
    return true;
  }
  size_t clen = ctrl_size(w, it), plen = payload_size(it);
  bool copy = clen + plen <= DIST_COPY_MAX;
  size_t need = 7 + (copy || it->ctrl == NULL ? clen : 0) + (copy ? plen : 0);
  if (w->niov + 3 > IOV_N || w->used + need > OUT_CAP) return false;
  uint8_t h[7];
  put_be32(h, (uint32_t)(3 + clen + plen));
  h[4] = 131;
  h[5] = 68;
  h[6] = 0; /* no atom cache refs */
  put_copy(w, h, 7);
  if (it->ctrl == NULL) {
    uint8_t *d = w->out + w->used;
    size_t n = otpc__ctrl_send_put(d, &it->sender, &it->to, lazy_sender(w, it));
    w->used += n;
    put_iov(w, d, n);
  } else if (copy) {
    put_copy(w, otpc_buf_data(it->ctrl) + 1, clen);
  } else {
    put_iov(w, otpc_buf_data(it->ctrl) + 1, clen);
  }
  if (plen > 0) {
    if (copy)
      put_copy(w, otpc_buf_data(it->payload) + 1, plen);
    else
      put_iov(w, otpc_buf_data(it->payload) + 1, plen);
  }
  return true;
}

/* Stages it (writing the batch first if it is full) and keeps it in done;
 * the batch is written once it is big. */
static int stage(wstate_t *w, item_t *it) {
  int rc = 0;
  if (!stage_whole(w, it)) {
    rc = flush(w);
    stage_whole(w, it);
  }
  it->next = w->done;
  w->done = it;
  if (rc == 0 && w->bytes >= BATCH_BYTES) rc = flush(w);
  return rc;
}

#define BLOCKED_MAX 64

static bool pid_in(const otpc_pid_t *set, size_t n, otpc_pid_t p) {
  for (size_t i = 0; i < n; i++)
    if (otpc_pid_eq(set[i], p)) return true;
  return false;
}

/* Between two fragments of a big message: stages the small messages of
 * other senders that wait, keeping each sender's order. An item passed
 * over stays passed over until the big one is done (its sender is
 * blocked, or the set of them is full), so each call looks only at what
 * came after *resume, the link after the last one passed over: the
 * fragments of a big message behind a long queue cost no rescans. */
static int interleave(wstate_t *w, otpc_pid_t *blocked, size_t *nblocked,
                      item_t ***resume) {
  take_queue(w, false);
  item_t **pp = *resume;
  for (; *pp != NULL;) {
    item_t *it = *pp;
    bool go = ctrl_size(w, it) + payload_size(it) <= DIST_FRAG_SIZE &&
              *nblocked < BLOCKED_MAX &&
              !pid_in(blocked, *nblocked, it->sender);
    if (!go) {
      if (*nblocked < BLOCKED_MAX && !pid_in(blocked, *nblocked, it->sender))
        blocked[(*nblocked)++] = it->sender;
      pp = &it->next;
      *resume = pp;
      continue;
    }
    *pp = it->next;
    if (*pp == NULL) w->tail = pp;
    int rc = stage(w, it);
    if (rc != 0) return rc;
  }
  return 0;
}

/* A message too big for one frame, as fragments, with other senders'
 * messages between them. The batch is written before it returns, so the
 * caller may free it. */
static int write_fragments(wstate_t *w, item_t *it) {
  otpc_pid_t blocked[BLOCKED_MAX];
  size_t nblocked = 1;
  blocked[0] = it->sender;
  uint64_t seq = ++w->c->next_seq;
  size_t off = 0;
  otpc__txframe_t f;
  item_t **resume = &w->head;
  for (;;) {
    if (w->niov + 3 > IOV_N || w->used + sizeof f.head > OUT_CAP) {
      int rc = flush(w);
      if (rc != 0) return rc;
    }
    int more = otpc__tx_next(it->ctrl, it->payload, true, seq, &off, &f);
    put_copy(w, f.head, f.head_len);
    put_iov(w, f.a, f.alen);
    put_iov(w, f.b, f.blen);
    int rc = interleave(w, blocked, &nblocked, &resume);
    if (rc != 0 || !more) return rc != 0 ? rc : flush(w);
    if (w->bytes >= BATCH_BYTES && (rc = flush(w)) != 0) return rc;
  }
}

/* Writes everything taken from the queue. */
static int write_list(wstate_t *w) {
  while (w->head != NULL) {
    item_t *it = w->head;
    w->head = it->next;
    if (w->head == NULL) w->tail = &w->head;
    it->next = NULL;
    int rc;
    if (w->frags && it->ctrl != NULL &&
        ctrl_size(w, it) + payload_size(it) > DIST_FRAG_SIZE) {
      rc = write_fragments(w, it);
      free_items(it);
    } else {
      rc = stage(w, it);
    }
    if (rc != 0) return rc;
  }
  return flush(w);
}

/* The idle writer takes the socket from senders for a tick (on), and
 * gives it back (off). false: a sender writes, so no tick is needed. */
static bool claim_socket(conn_t *c, bool on) {
  pthread_mutex_lock(&c->lock);
  bool ok = !on || (!c->writing && c->head == NULL);
  if (ok) c->writing = on;
  pthread_mutex_unlock(&c->lock);
  return ok;
}

static void writer_free(wstate_t *w) {
  if (w == NULL) return;
  free_items(w->head);
  free_items(w->done);
  otpc__free(w->out);
  otpc__free(w->tbuf);
  otpc__free(w);
}

/* The writer's loop. Its state lives in its role, so that a kill (which
 * ends the process wherever it waits) frees it too (proc_done). */
static void writer_run(void *arg) {
  role_t *r = arg;
  conn_t *c = r->c;
  wstate_t *w = otpc__calloc(1, sizeof *w);
  if (w != NULL) w->out = otpc__malloc(OUT_CAP);
  r->ws = w;
  if (w == NULL || w->out == NULL) {
    conn_down(c, "out of memory for the writer");
    return;
  }
  w->c = c;
  w->tail = &w->head;
  w->last_write = otpc_now_ms();
  pthread_mutex_lock(&c->lock);
  c->writer = otpc_self();
  c->has_writer = true;
  bool up = c->state == C_UP;
  w->frags = (c->flags & OTPC_DFLAG_FRAGMENTS) != 0;
  w->sender = (c->flags & OTPC_DFLAG_SEND_SENDER) != 0;
  w->fd = up ? dup(c->fd) : -1;
  w->tls = c->tls;
  pthread_mutex_unlock(&c->lock);
  const char *why = "writer stopped";
  if (w->tls != NULL && (w->tbuf = otpc__malloc(TLS_GATHER)) == NULL) {
    if (w->fd >= 0) close(w->fd);
    conn_down(c, "out of memory for the writer");
    return;
  }
  if (w->fd < 0 || otpc_own_fd(w->fd) != 0) {
    if (w->fd >= 0) close(w->fd);
    why = "writer could not start";
    goto out;
  }
  int64_t tick = (int64_t)otpc__dist.ticktime * 1000 / 4;
  for (;;) {
    if (!take_queue(w, true)) break;
    if (w->head != NULL) {
      if (write_list(w) != 0) {
        why = "write failed";
        break;
      }
      continue; /* more may have come meanwhile */
    }
    int64_t idle = otpc_now_ms() - w->last_write;
    if (idle >= tick && claim_socket(c, true)) {
      static const uint8_t zero[4];
      int rc = w->tls ? otpc__tls_write(w->tls, w->fd, zero, 4, -1)
                      : otpc__sock_write(w->fd, zero, 4, -1);
      claim_socket(c, false);
      if (rc != 0) {
        why = "write failed";
        break;
      }
      w->last_write = otpc_now_ms();
      idle = 0;
    }
    otpc_buf_t *m;
    if (otpc_receive(NULL, tick - idle, &m) == 0) otpc_buf_unref(m);
  }
out:
  conn_down(c, why);
}

/* A connection process ended, however: the conn goes down if it was this
 * process's to serve, and the reference is released. */
static void proc_done(void *arg) {
  role_t *r = arg;
  conn_t *c = r->c;
  if (c != NULL) {
    otpc_pid_t self = otpc_self();
    pthread_mutex_lock(&c->lock);
    bool owner = (c->state == C_PENDING && c->gen == r->gen) ||
                 (c->state == C_UP && otpc_pid_eq(c->reader, self)) ||
                 (c->has_writer && otpc_pid_eq(c->writer, self));
    pthread_mutex_unlock(&c->lock);
    if (owner) conn_down(c, "connection process ended");
    conn_unref(c);
  }
  writer_free(r->ws);
  otpc__free(r);
}

/* ------------------------------------------------------------------------
 * Incoming signals
 * ------------------------------------------------------------------------ */

static void deliver(otpc__sig_kind_t kind, otpc_pid_t to, otpc_pid_t from,
                    const otpc_ref_t *ref, otpc_buf_t *buf, uint16_t flags) {
  if (!otpc__pid_is_local(to)) { /* an old incarnation's pid, or garbage */
    otpc_buf_unref(buf);
    return;
  }
  otpc__sig_t *sig = otpc__sig_new(kind);
  if (sig == NULL) {
    otpc_buf_unref(buf);
    return;
  }
  sig->from = from;
  sig->flags = flags;
  if (ref) sig->ref = *ref;
  sig->buf = buf;
  otpc__deliver_pid(to, sig);
}

static otpc_buf_t *take_payload(otpc__dmsg_t *m) {
  otpc_buf_t *b = m->payload;
  m->payload = NULL;
  return b;
}

/* MONITOR_P on a name nobody has: DOWN noproc at once. */
static void monitor_noproc(conn_t *c, otpc__dmsg_t *m) {
  bool payload = c->flags & OTPC_DFLAG_EXIT_PAYLOAD;
  otpc_buf_t *ctrl = payload ? otpc__ctrl_fmt("{28, ~A, ~p, ~r}", m->to_name,
                                              &m->from, &m->ref)
                             : otpc__ctrl_fmt("{21, ~A, ~p, ~r, noproc}",
                                              m->to_name, &m->from, &m->ref);
  otpc__dist_enqueue(c->node, ctrl,
                     payload ? otpc__atom_buf(OTPC_ATOM_NOPROC) : NULL,
                     otpc_self());
}

/* The bond an incoming signal makes or ends. */
static void bond_incoming(conn_t *c, const otpc__dmsg_t *m, otpc_pid_t local) {
  bond_op_t op = {false, {0, local, m->from, m->ref, OTPC_ATOM_NONE}};
  switch (m->op) {
    case DOP_LINK:
      op.add = true;
      op.b.kind = B_LINK;
      break;
    case DOP_UNLINK:
    case DOP_UNLINK_ID:
    case DOP_EXIT:
    case DOP_EXIT_TT:
    case DOP_PAYLOAD_EXIT:
    case DOP_PAYLOAD_EXIT_TT: op.b.kind = B_LINK; break;
    case DOP_MONITOR_P:
      op.add = true;
      op.b.kind = B_MON_IN;
      op.b.name = m->to_name; /* its DOWN names it, as Erlang's does */
      break;
    case DOP_DEMONITOR_P: op.b.kind = B_MON_IN; break;
    case DOP_MONITOR_P_EXIT:
    case DOP_PAYLOAD_MONITOR_P_EXIT: op.b.kind = B_MON_OUT; break;
    default: return;
  }
  if (!otpc__pid_is_local(local)) return;
  pthread_mutex_lock(&c->lock);
  bond_apply(c, &op);
  pthread_mutex_unlock(&c->lock);
}

/* SPAWN_REQUEST (spawn.c starts the process): the link and monitor the
 * requester asked for, then SPAWN_REPLY, then the process may run. The
 * reply goes out as sent by the new process, so that nothing it sends
 * later (its exit) can overtake it. */
static void spawn_request(conn_t *c, otpc__dmsg_t *m) {
  otpc_pid_t pid;
  unsigned flags;
  otpc_atom_t error;
  if (otpc__spawn_request(m, &pid, &flags, &error) != 0) {
    otpc__dist_enqueue(
        c->node,
        otpc__ctrl_fmt("{31, ~r, ~p, 0, ~A}", &m->ref, &m->from, error), NULL,
        otpc_self());
    return;
  }
  if (flags & 1) {
    bond_op_t op = {true, {B_LINK, pid, m->from, m->ref, OTPC_ATOM_NONE}};
    pthread_mutex_lock(&c->lock);
    bond_apply(c, &op);
    pthread_mutex_unlock(&c->lock);
    deliver(SIG_LINK, pid, m->from, NULL, NULL, 0);
  }
  if (flags & 2) {
    bond_op_t op = {true, {B_MON_IN, pid, m->from, m->ref, OTPC_ATOM_NONE}};
    pthread_mutex_lock(&c->lock);
    bond_apply(c, &op);
    pthread_mutex_unlock(&c->lock);
    deliver(SIG_MONITOR, pid, m->from, &m->ref, NULL, 0);
  }
  otpc__dist_enqueue(c->node,
                     otpc__ctrl_fmt("{31, ~r, ~p, ~i, ~p}", &m->ref, &m->from,
                                    (int)flags, &pid),
                     NULL, pid);
  otpc_buf_t *go = otpc__atom_buf(otpc_atom("go"));
  if (go != NULL) otpc_send(pid, go);
  otpc_buf_unref(go);
}

static void dispatch(conn_t *c, otpc__dmsg_t *m) {
  static const otpc_pid_t nobody = {OTPC_ATOM_UNDEFINED, 0, 0, 0};
  otpc_pid_t target;
  if (m->op != DOP_MONITOR_P && m->op != DOP_DEMONITOR_P)
    bond_incoming(c, m, m->to);
  switch (m->op) {
    case DOP_SEND:
    case DOP_SEND_TT:
      deliver(SIG_MESSAGE, m->to, nobody, NULL, take_payload(m), 0);
      break;
    case DOP_SEND_SENDER:
    case DOP_SEND_SENDER_TT:
      deliver(SIG_MESSAGE, m->to, m->from, NULL, take_payload(m), 0);
      break;
    case DOP_REG_SEND:
    case DOP_REG_SEND_TT:
      if (otpc_whereis(m->to_name, &target) == 0)
        deliver(SIG_MESSAGE, target, m->from, NULL, take_payload(m), 0);
      break;
    case DOP_LINK: deliver(SIG_LINK, m->to, m->from, NULL, NULL, 0); break;
    case DOP_UNLINK: deliver(SIG_UNLINK, m->to, m->from, NULL, NULL, 0); break;
    case DOP_UNLINK_ID:
      deliver(SIG_UNLINK, m->to, m->from, NULL, NULL, 0);
      otpc__dist_enqueue(
          c->node, otpc__ctrl_fmt("{36, ~u, ~p, ~p}", m->id, &m->to, &m->from),
          NULL, m->to);
      break;
    case DOP_EXIT:
    case DOP_EXIT_TT:
    case DOP_PAYLOAD_EXIT:
    case DOP_PAYLOAD_EXIT_TT:
      deliver(SIG_EXIT, m->to, m->from, NULL, take_payload(m), SIGF_LINKED);
      break;
    case DOP_EXIT2:
    case DOP_EXIT2_TT:
    case DOP_PAYLOAD_EXIT2:
    case DOP_PAYLOAD_EXIT2_TT:
      deliver(SIG_EXIT, m->to, m->from, NULL, take_payload(m), 0);
      break;
    case DOP_MONITOR_P:
      if (m->to_name != OTPC_ATOM_NONE) {
        if (otpc_whereis(m->to_name, &target) != 0) {
          monitor_noproc(c, m);
          break;
        }
      } else {
        target = m->to;
      }
      bond_incoming(c, m, target);
      deliver(SIG_MONITOR, target, m->from, &m->ref, NULL, 0);
      break;
    case DOP_DEMONITOR_P:
      if (m->to_name == OTPC_ATOM_NONE)
        target = m->to;
      else if (otpc_whereis(m->to_name, &target) != 0)
        break;
      bond_incoming(c, m, target);
      deliver(SIG_DEMONITOR, target, m->from, &m->ref, NULL, 0);
      break;
    case DOP_MONITOR_P_EXIT:
    case DOP_PAYLOAD_MONITOR_P_EXIT:
      deliver(SIG_DOWN, m->to, m->from, &m->ref, take_payload(m), 0);
      break;
    case DOP_SPAWN_REQUEST:
    case DOP_SPAWN_REQUEST_TT: spawn_request(c, m); break;
    case DOP_ALIAS_SEND:
    case DOP_ALIAS_SEND_TT:
      /* To one of our aliases; an unknown or inactive one drops it. */
      otpc__alias_deliver(&m->ref, take_payload(m), m->from);
      break;
    default:
      /* UNLINK_ID_ACK, GROUP_LEADER, ...: nothing to do. */
      break;
  }
}

/* ------------------------------------------------------------------------
 * The reader
 * ------------------------------------------------------------------------ */

/* The reader's buffer: room for a whole fragment and many small frames,
 * so one recv takes what has come; it grows for a frame bigger than it,
 * and goes back to this size after one over RX_KEEP. */
#define RX_BUF ((size_t)256 << 10)
#define RX_KEEP ((size_t)1 << 20)

static void reader_loop(conn_t *c) {
  size_t cap = RX_BUF, len = 0;
  uint8_t *buf = otpc_palloc(cap);
  int64_t tick_ms = (int64_t)otpc__dist.ticktime * 1000;
  int64_t last = otpc_now_ms();
  char why[200] = "";
  if (buf == NULL) {
    conn_down(c, "out of memory");
    return;
  }
  for (;;) {
    ssize_t got;
    if (c->tls != NULL) {
      got = otpc__tls_recv(c->tls, c->fd, buf + len, cap - len, last + tick_ms);
      if (got == OTPC_ETIMEDOUT) {
        if (otpc_now_ms() - last < tick_ms) continue;
        snprintf(why, sizeof why, "net_tick_timeout");
        break;
      }
      if (got < 0) {
        snprintf(why, sizeof why, "%s", otpc__tls_why(c->tls));
        break;
      }
    } else {
      got = recv(c->fd, buf + len, cap - len, 0);
    }
    if (got == 0) {
      snprintf(why, sizeof why, "connection closed by peer");
      break;
    }
    if (got < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        snprintf(why, sizeof why, "read failed: %s", strerror(errno));
        break;
      }
      int rc = otpc__sock_wait(c->fd, OTPC_FD_READ, last + tick_ms);
      if (rc == OTPC_ETIMEDOUT && otpc_now_ms() - last >= tick_ms) {
        snprintf(why, sizeof why, "net_tick_timeout");
        break;
      }
      continue;
    }
    len += (size_t)got;
    last = otpc_now_ms();
    pthread_mutex_lock(&c->lock);
    c->direct = false; /* the peer answers: a sender may write again */
    pthread_mutex_unlock(&c->lock);
    size_t at = 0;
    int bad = 0;
    while (len - at >= 4) {
      size_t flen = get_be32(buf + at);
      if (flen > DIST_FRAME_MAX) {
        snprintf(why, sizeof why, "frame of %zu bytes", flen);
        bad = 1;
        break;
      }
      if (len - at - 4 < flen) {
        /* Room for the frame, as its bytes come (doubling once the buffer
         * is half full), so that a length is never taken on trust. */
        if (4 + flen > cap && len - at > cap / 2) {
          memmove(buf, buf + at, len - at);
          len -= at;
          at = 0;
          size_t ncap = cap * 2 < 4 + flen ? cap * 2 : 4 + flen;
          uint8_t *bigger = otpc_palloc(ncap);
          if (bigger == NULL) {
            snprintf(why, sizeof why, "out of memory for a frame of %zu bytes",
                     flen);
            bad = 1;
            break;
          }
          memcpy(bigger, buf, len);
          otpc_pfree(buf);
          buf = bigger;
          cap = ncap;
        }
        break;
      }
      otpc__dmsg_t m;
      int rc = otpc__rx_frame(&c->rx, buf + at + 4, flen, &m, why, sizeof why);
      at += 4 + flen;
      if (rc < 0) {
        bad = 1;
        break;
      }
      if (rc == 1) {
        dispatch(c, &m);
        otpc__dmsg_clear(&m);
      }
    }
    if (bad) {
      OTPC_LOG_ERROR("closing the connection to %s: %s",
                     otpc_atom_name(c->node, NULL), why);
      break;
    }
    memmove(buf, buf + at, len - at);
    len -= at;
    if (cap > RX_KEEP && len < RX_BUF) { /* a big frame is done: shrink */
      uint8_t *small = otpc_palloc(RX_BUF);
      if (small != NULL) {
        memcpy(small, buf, len);
        otpc_pfree(buf);
        buf = small;
        cap = RX_BUF;
      }
    }
  }
  otpc_pfree(buf);
  conn_down(c, why);
}

/* The handshake is done: the conn goes UP with fd, the writer starts, and
 * the calling process reads. */
static void become_reader(conn_t *c, uint32_t gen, int fd, otpc__tls_t *tls,
                          const otpc__hs_t *hs) {
  pthread_mutex_lock(&c->lock);
  bool mine = c->gen == gen && c->state == C_PENDING;
  if (mine) {
    c->state = C_UP;
    c->fd = fd;
    c->tls = tls;
    c->sfd = dup(fd);
    c->flags = hs->peer_flags;
    c->creation = hs->peer_creation;
    c->hidden = !(hs->peer_flags & OTPC_DFLAG_PUBLISHED) || otpc__dist.hidden;
    c->reader = otpc_self();
    c->kicked = true; /* the writer looks at the queue as it starts */
  }
  pthread_mutex_unlock(&c->lock);
  if (!mine) { /* another handshake won; our socket closes */
    otpc__tls_free(tls);
    return;
  }
  OTPC_LOG_INFO("connected to %s", hs->peer);
  conn_ref(c);
  role_t *w = role_new(c, gen, -1);
  if (w == NULL ||
      spawn_task(writer_run, proc_done, w, "dist writer", NULL) != 0) {
    otpc__free(w);
    conn_unref(c);
    conn_down(c, "could not start the writer");
    return;
  }
  otpc__node_event(c->node, true, c->hidden);
  reader_loop(c);
}

/* ------------------------------------------------------------------------
 * Handshakes
 * ------------------------------------------------------------------------ */

typedef struct sock_io {
  int fd;
  int64_t deadline;
  otpc__tls_t *tls; /* or NULL: plain TCP */
} sock_io_t;

static int io_read(void *ctx, void *buf, size_t n) {
  sock_io_t *s = ctx;
  return s->tls ? otpc__tls_read(s->tls, s->fd, buf, n, s->deadline)
                : otpc__sock_read(s->fd, buf, n, s->deadline);
}
static int io_write(void *ctx, const void *buf, size_t n) {
  sock_io_t *s = ctx;
  return s->tls ? otpc__tls_write(s->tls, s->fd, buf, n, s->deadline)
                : otpc__sock_write(s->fd, buf, n, s->deadline);
}

static void hs_init(otpc__hs_t *hs) {
  memset(hs, 0, sizeof *hs);
  hs->self = otpc__dist.name;
  hs->flags = otpc__dist.flags;
  hs->creation = otpc__dist.creation;
  hs->cookie = otpc__dist.cookie;
}

/* Whether the initiator's attempt (number 1) still owns its conn. */
static bool connector_wanted(void *ctx) {
  conn_t *c = ctx;
  pthread_mutex_lock(&c->lock);
  bool wanted = c->gen == 1 && c->state == C_PENDING;
  pthread_mutex_unlock(&c->lock);
  return wanted;
}

/* Initiator: runs in the conn's first process. */
static void connect_run(void *arg) {
  conn_t *c = ((role_t *)arg)->c;
  const uint32_t gen = 1;
  int64_t deadline = otpc__deadline(DIST_SETUP_MS);
  const char *node = otpc_atom_name(c->node, NULL);
  const char *at = strchr(node, '@');
  char alive[256];
  otpc__hs_t *hs = otpc_palloc(sizeof *hs);
  if (hs == NULL || at == NULL || at == node ||
      (size_t)(at - node) >= sizeof alive) {
    OTPC_LOG_WARNING("cannot connect to %s: not a node name", node);
    conn_fail(c, gen, "bad node name");
    return;
  }
  memcpy(alive, node, (size_t)(at - node));
  alive[at - node] = 0;
  uint16_t port;
  int rc = otpc__epmd_port_please(at + 1, otpc__dist.epmd_port, alive, deadline,
                                  &port);
  if (rc != 0) {
    OTPC_LOG_NOTICE("cannot connect to %s: epmd on %s: %s", node, at + 1,
                    otpc_strerror(rc));
    conn_fail(c, gen, "no port");
    return;
  }
  int fd;
  rc = otpc__sock_connect(at + 1, port, deadline, &fd);
  if (rc != 0 || otpc_own_fd(fd) != 0) {
    if (rc == 0) close(fd);
    OTPC_LOG_NOTICE("cannot connect to %s: %s", node, otpc_strerror(rc));
    conn_fail(c, gen, "connect failed");
    return;
  }
  sock_io_t sio = {fd, deadline, NULL};
  if (otpc__tls_on()) {
    char why[200];
    rc =
        otpc__tls_start(fd, false, at + 1, deadline, &sio.tls, why, sizeof why);
    if (rc != 0) {
      OTPC_LOG_WARNING("cannot connect to %s: %s", node, why);
      conn_fail(c, gen, "TLS failed");
      return;
    }
  }
  hs_init(hs);
  hs->expect = node;
  hs->still_wanted = connector_wanted;
  hs->ctx = c;
  otpc__hs_io_t io = {io_read, io_write, &sio, sio.tls != NULL};
  rc = otpc__hs_initiate(hs, &io);
  if (rc == 0) {
    become_reader(c, gen, fd, sio.tls, hs);
    return;
  }
  otpc__tls_free(sio.tls);
  if (hs->nok) {
    /* Simultaneous connect, and the peer's attempt wins: it will reach
     * our acceptor, which takes the conn over. Wait for that. */
    for (;;) {
      pthread_mutex_lock(&c->lock);
      bool waiting = c->gen == gen && c->state == C_PENDING;
      pthread_mutex_unlock(&c->lock);
      if (!waiting) return;
      if (otpc_now_ms() >= deadline) break;
      otpc_sleep(20);
    }
  }
  OTPC_LOG_WARNING("handshake with %s failed: %s", node, hs->why);
  conn_fail(c, gen, hs->why);
}

static void connect_start(conn_t *c) {
  conn_ref(c);
  role_t *r = role_new(c, 1, -1);
  if (r == NULL ||
      spawn_task(connect_run, proc_done, r, "dist connection", NULL) != 0) {
    otpc__free(r);
    conn_unref(c);
    conn_fail(c, 1, "could not spawn");
  }
}

/* Acceptor: what to answer a peer that named itself. */
typedef struct accept_ctx {
  conn_t *c; /* the conn this handshake owns, with a reference */
  uint32_t gen;
  conn_t *old; /* after "alive": the conn already up */
  bool fresh;  /* a node never heard of: its atom waits for the cookie */
} accept_ctx_t;

static const char *take_new(accept_ctx_t *a, otpc_atom_t node) {
  a->c = conn_new(node); /* tab_lock held */
  if (a->c == NULL) return "not_allowed";
  a->gen = a->c->gen;
  return "ok";
}

static const char *accept_status(void *ctx, const char *peer, uint64_t flags) {
  accept_ctx_t *a = ctx;
  otpc_atom_t node;
  /* A name we have no atom for has no conn either: its atom is made once
   * the peer has shown the cookie, so that connections that never
   * authenticate cannot fill the atom table. */
  if (otpc_atom_lookup(peer, strlen(peer), &node) != 0) {
    a->fresh = true;
    return "ok";
  }
  if (node == otpc__dist.node) return "not_allowed";
  const char *st;
  pthread_mutex_lock(&tab_lock);
  conn_t *c = find(node);
  if (c == NULL) {
    st = take_new(a, node);
  } else {
    pthread_mutex_lock(&c->lock);
    if (c->state == C_PENDING) {
      if (strcmp(otpc__dist.name, peer) > 0) {
        st = "nok"; /* ours wins */
      } else {
        c->gen++; /* theirs wins: this handshake takes the conn */
        a->gen = c->gen;
        a->c = c;
        conn_ref(c);
        st = "ok_simultaneous";
      }
    } else {
      a->old = c;
      conn_ref(c);
      st = "alive";
    }
    pthread_mutex_unlock(&c->lock);
  }
  pthread_mutex_unlock(&tab_lock);
  return st;
}

static void accept_alive(void *ctx, const char *peer, bool go_on) {
  accept_ctx_t *a = ctx;
  if (!go_on || a->old == NULL) return;
  conn_down(a->old, "the peer reconnected");
  otpc_atom_t node = a->old->node;
  pthread_mutex_lock(&tab_lock);
  if (find(node) == NULL) take_new(a, node);
  pthread_mutex_unlock(&tab_lock);
}

/* After the handshake of a node that had no atom: the conn is made now;
 * should one have appeared meanwhile (we called it at the same moment),
 * a pending one is taken over, one that is up wins. */
static int claim_fresh(accept_ctx_t *a, const char *peer) {
  otpc_atom_t node;
  if (otpc_atom_new(peer, strlen(peer), &node) != 0) return OTPC_EATOM;
  int rc = 0;
  pthread_mutex_lock(&tab_lock);
  conn_t *c = find(node);
  if (c == NULL) {
    if (strcmp(take_new(a, node), "ok") != 0) rc = OTPC_ENOMEM;
  } else {
    pthread_mutex_lock(&c->lock);
    if (c->state == C_PENDING) {
      a->gen = ++c->gen;
      a->c = c;
      conn_ref(c);
    } else {
      rc = OTPC_EEXIST;
    }
    pthread_mutex_unlock(&c->lock);
  }
  pthread_mutex_unlock(&tab_lock);
  return rc;
}

/* "address:port" of the peer on fd, for the log. */
static void peer_text(int fd, char *out, size_t n) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  char host[INET6_ADDRSTRLEN] = "?";
  unsigned port = 0;
  if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0) {
    if (ss.ss_family == AF_INET) {
      struct sockaddr_in *a = (struct sockaddr_in *)&ss;
      inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
      port = ntohs(a->sin_port);
    } else if (ss.ss_family == AF_INET6) {
      struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
      inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
      port = ntohs(a->sin6_port);
    }
  }
  snprintf(out, n, "%s:%u", host, port);
}

static void accept_run(void *arg) {
  role_t *r = arg;
  int fd = r->fd;
  if (otpc_own_fd(fd) != 0) {
    close(fd);
    return;
  }
  accept_ctx_t a = {NULL, 0, NULL, false};
  otpc__hs_t *hs = otpc_palloc(sizeof *hs);
  if (hs == NULL) return;
  hs_init(hs);
  sock_io_t sio = {fd, otpc__deadline(DIST_SETUP_MS), NULL};
  if (otpc__tls_on()) {
    char why[200];
    int rc = otpc__tls_start(fd, true, NULL, sio.deadline, &sio.tls, why,
                             sizeof why);
    if (rc != 0) {
      char from[80];
      peer_text(fd, from, sizeof from);
      OTPC_LOG_WARNING("connection attempt from %s refused: %s", from, why);
      return;
    }
  }
  otpc__hs_io_t io = {io_read, io_write, &sio, sio.tls != NULL};
  otpc__hs_policy_t pol = {accept_status, accept_alive, &a};
  int rc = otpc__hs_accept(hs, &io, &pol);
  if (a.old) conn_unref(a.old);
  /* The conn's reference goes to the role, whose cleanup releases it. */
  r->c = a.c;
  r->gen = a.gen;
  if (rc != 0) {
    OTPC_LOG_WARNING("connection attempt from %s refused: %s",
                     hs->peer[0] ? hs->peer : "unknown node", hs->why);
    if (a.c) conn_fail(a.c, a.gen, hs->why);
    otpc__tls_free(sio.tls);
    return;
  }
  if (a.fresh && claim_fresh(&a, hs->peer) != 0) {
    otpc__tls_free(sio.tls);
    return;
  }
  r->c = a.c;
  r->gen = a.gen;
  if (a.c != NULL)
    become_reader(a.c, a.gen, fd, sio.tls, hs);
  else
    otpc__tls_free(sio.tls);
}

int otpc__conn_accept(int fd) {
  role_t *r = role_new(NULL, 0, fd);
  int rc = r ? spawn_task(accept_run, proc_done, r, "dist connection", NULL)
             : OTPC_ENOMEM;
  if (rc != 0) {
    otpc__free(r);
    close(fd);
  }
  return rc;
}

/* ------------------------------------------------------------------------
 * Routing signals to other nodes
 * ------------------------------------------------------------------------ */

/* The name a monitor by name was set up with (B_MON_OUT: ours, B_MON_IN:
 * the peer's on one of ours), or none. */
static otpc_atom_t bond_name(otpc_atom_t node, const otpc_ref_t *ref,
                             int kind) {
  otpc_atom_t name = OTPC_ATOM_NONE;
  pthread_mutex_lock(&tab_lock);
  conn_t *c = find(node);
  if (c != NULL) {
    bond_t key = {.kind = kind, .ref = *ref};
    pthread_mutex_lock(&c->lock);
    size_t i = bonds_find(&c->bonds, &key);
    if (i != SIZE_MAX) name = c->bonds.slot[i].name;
    pthread_mutex_unlock(&c->lock);
  }
  pthread_mutex_unlock(&tab_lock);
  return name;
}

int otpc__monitor_remote_name(otpc_pid_t self, otpc_atom_t name,
                              otpc_atom_t node, const otpc_ref_t *ref) {
  otpc_pid_t nobody = {node, UINT32_MAX, 0, 0};
  bond_op_t op = {true, {B_MON_OUT, self, nobody, *ref, name}};
  return enqueue(node, otpc__ctrl_fmt("{19, ~p, ~A, ~r}", &self, name, ref),
                 NULL, self, &op);
}

void otpc__dist_route(otpc_pid_t to, otpc__sig_t *sig) {
  if (!atomic_load(&otpc__dist.running) || to.node == otpc__dist.node ||
      to.node == OTPC_ATOM_NONODE ||
      strchr(otpc_atom_name(to.node, NULL), '@') == NULL) {
    /* our old incarnation, or no node at all (nonode@nohost is one, but
     * never a peer) */
    otpc__answer_noproc(sig, to);
    return;
  }
  if (sig->kind == SIG_MESSAGE && sig->buf != NULL &&
      otpc_buf_size(sig->buf) - 1 <= DIST_COPY_MAX) {
    /* the writer writes its control */
    item_t *it = otpc__malloc(sizeof *it);
    if (it != NULL) {
      it->next = NULL;
      it->ctrl = NULL;
      it->payload = sig->buf;
      it->sender = sig->from;
      it->to = to;
      it->raw = false;
      sig->buf = NULL;
    }
    otpc__sig_free(sig);
    if (it != NULL) enqueue_item(to.node, it, NULL);
    return;
  }
  uint64_t fl = otpc__conn_flags(to.node);
  bool payload_exit = fl & OTPC_DFLAG_EXIT_PAYLOAD;
  otpc_buf_t *ctrl = NULL, *payload = NULL;
  otpc_pid_t from = sig->from;
  /* A message node has no ref (rt_int.h): read it only for the others. */
  bond_op_t bond = {false, {0, from, to, {0}, OTPC_ATOM_NONE}};
  if (sig->kind != SIG_MESSAGE) bond.b.ref = sig->ref;
  switch (sig->kind) {
    case SIG_LINK:
      bond.add = true;
      bond.b.kind = B_LINK;
      break;
    case SIG_UNLINK: bond.b.kind = B_LINK; break;
    case SIG_EXIT:
      if (sig->flags & SIGF_LINKED) bond.b.kind = B_LINK;
      break;
    case SIG_MONITOR:
      bond.add = true;
      bond.b.kind = B_MON_OUT;
      break;
    case SIG_DEMONITOR: bond.b.kind = B_MON_OUT; break;
    case SIG_DOWN: bond.b.kind = B_MON_IN; break;
    default: break;
  }
  switch (sig->kind) {
    case SIG_MESSAGE:
      if (real_pid(from) && (fl & OTPC_DFLAG_SEND_SENDER))
        ctrl = otpc__ctrl_fmt("{22, ~p, ~p}", &from, &to);
      else
        ctrl = otpc__ctrl_fmt("{2, '', ~p}", &to);
      payload = sig->buf;
      sig->buf = NULL;
      break;
    case SIG_EXIT: {
      int op = sig->flags & SIGF_LINKED ? (payload_exit ? 24 : 3)
                                        : (payload_exit ? 26 : 8);
      if (!real_pid(from)) from = to; /* exit/2 from outside a process */
      if (payload_exit) {
        ctrl = otpc__ctrl_fmt("{~i, ~p, ~p}", op, &from, &to);
        payload = sig->buf;
        sig->buf = NULL;
      } else {
        ctrl = otpc__ctrl_fmt("{~i, ~p, ~p, ~t}", op, &from, &to,
                              otpc_buf_term(sig->buf));
      }
      break;
    }
    case SIG_LINK: ctrl = otpc__ctrl_fmt("{1, ~p, ~p}", &from, &to); break;
    case SIG_UNLINK:
      if (fl == 0 || (fl & OTPC_DFLAG_UNLINK_ID)) {
        static _Atomic uint64_t unlink_ids = 1;
        uint64_t id = atomic_fetch_add(&unlink_ids, 1);
        ctrl = otpc__ctrl_fmt("{35, ~u, ~p, ~p}", id, &from, &to);
      } else {
        ctrl = otpc__ctrl_fmt("{4, ~p, ~p}", &from, &to);
      }
      break;
    case SIG_MONITOR:
      ctrl = otpc__ctrl_fmt("{19, ~p, ~p, ~r}", &from, &to, &sig->ref);
      break;
    case SIG_DEMONITOR: {
      otpc_atom_t name = bond_name(to.node, &sig->ref, B_MON_OUT);
      if (name != OTPC_ATOM_NONE)
        ctrl = otpc__ctrl_fmt("{20, ~p, ~A, ~r}", &from, name, &sig->ref);
      else
        ctrl = otpc__ctrl_fmt("{20, ~p, ~p, ~r}", &from, &to, &sig->ref);
      break;
    }
    case SIG_DOWN: {
      /* A monitor the peer set by name: FromProc is the name (Erlang's
       * DOWN then shows {Name, OurNode}). */
      otpc_atom_t name = bond_name(to.node, &sig->ref, B_MON_IN);
      if (payload_exit) {
        ctrl = name != OTPC_ATOM_NONE
                   ? otpc__ctrl_fmt("{28, ~A, ~p, ~r}", name, &to, &sig->ref)
                   : otpc__ctrl_fmt("{28, ~p, ~p, ~r}", &from, &to, &sig->ref);
        payload = sig->buf;
        sig->buf = NULL;
      } else {
        ctrl = name != OTPC_ATOM_NONE
                   ? otpc__ctrl_fmt("{21, ~A, ~p, ~r, ~t}", name, &to,
                                    &sig->ref, otpc_buf_term(sig->buf))
                   : otpc__ctrl_fmt("{21, ~p, ~p, ~r, ~t}", &from, &to,
                                    &sig->ref, otpc_buf_term(sig->buf));
      }
      break;
    }
    default: break;
  }
  otpc__sig_free(sig);
  if (ctrl == NULL) {
    otpc_buf_unref(payload);
    return;
  }
  enqueue(to.node, ctrl, payload, from, bond.b.kind ? &bond : NULL);
}

/* ------------------------------------------------------------------------
 * Start and stop
 * ------------------------------------------------------------------------ */

void otpc__conn_init(void) {
  if (kick_msg == NULL) kick_msg = otpc__atom_buf(otpc_atom("$dist_kick"));
}

void otpc__conn_shutdown(void) {
  for (;;) {
    pthread_mutex_lock(&tab_lock);
    conn_t *c = table;
    if (c) conn_ref(c);
    pthread_mutex_unlock(&tab_lock);
    if (c == NULL) break;
    conn_down(c, "distribution stopped");
    conn_unref(c);
  }
  /* The killed processes clean up (release their conns) when their
   * schedulers get to them: wait for that, a little, so that a node
   * stopped right after frees nothing still in use. Handshakes still
   * running end at their deadline. */
  for (int i = 0; i < 400 && atomic_load(&live_tasks) > 0; i++) {
    if (otpc__current() != NULL)
      otpc_sleep(5);
    else
      usleep(5000);
  }
}
