/*
 * queue.c: the intrusive multi-producer single-consumer queue under every
 * mailbox and run queue (Dmitry Vyukov's design), and signal nodes.
 *
 * Producers swap themselves in as the new tail with one atomic exchange,
 * then link the old tail to themselves. Between those two steps the queue
 * is briefly cut: the consumer sees the old tail with no next and reports
 * "empty" even though the exchange happened. That is safe because the
 * producer always checks the consumer's `scheduled` flag (or the
 * scheduler's sleep word) after linking, so the consumer is woken and
 * looks again.
 *
 * The stub link lets the queue never be empty of links, so neither side
 * ever handles a NULL tail.
 */
#include "rt_int.h"

void otpc__mpsc_init(otpc__mpsc_t *q) {
  atomic_init(&q->stub.next, NULL);
  atomic_init(&q->tail, &q->stub);
  q->head = &q->stub;
}

void otpc__mpsc_push_chain(otpc__mpsc_t *q, otpc__qlink_t *first,
                           otpc__qlink_t *last) {
  atomic_store_explicit(&last->next, NULL, memory_order_relaxed);
  /* seq_cst: ordered against a consumer's release of its process and
   * second look at the tail (sched.c, go_idle). */
  otpc__qlink_t *prev =
      atomic_exchange_explicit(&q->tail, last, memory_order_seq_cst);
  atomic_store_explicit(&prev->next, first, memory_order_release);
}

void otpc__mpsc_push(otpc__mpsc_t *q, otpc__qlink_t *n) {
  otpc__mpsc_push_chain(q, n, n);
}

otpc__qlink_t *otpc__mpsc_pop(otpc__mpsc_t *q) {
  otpc__qlink_t *head = q->head;
  otpc__qlink_t *next = atomic_load_explicit(&head->next, memory_order_acquire);
  if (head == &q->stub) {
    if (next == NULL) return NULL;
    q->head = next;
    head = next;
    next = atomic_load_explicit(&next->next, memory_order_acquire);
  }
  if (next != NULL) {
    q->head = next;
    return head;
  }
  otpc__qlink_t *tail = atomic_load_explicit(&q->tail, memory_order_acquire);
  if (head != tail) return NULL; /* a push is half done */
  otpc__mpsc_push(q, &q->stub);
  next = atomic_load_explicit(&head->next, memory_order_acquire);
  if (next != NULL) {
    q->head = next;
    return head;
  }
  return NULL;
}

bool otpc__mpsc_nonempty(otpc__mpsc_t *q) {
  otpc__qlink_t *tail;
  return !otpc__mpsc_empty_at(q, &tail);
}

bool otpc__mpsc_empty_at(otpc__mpsc_t *q, otpc__qlink_t **tail) {
  otpc__qlink_t *head = q->head;
  *tail = atomic_load_explicit(&q->tail, memory_order_seq_cst);
  if (atomic_load_explicit(&head->next, memory_order_acquire) != NULL)
    return false;
  /* Empty: the head is the last link and nobody has swapped in after it
   * (a swapped-in but unlinked push shows as tail != head). */
  return *tail == head;
}

/* Signal nodes are made and freed at the rate messages flow: they come
 * from pools (slab.c), messages from a pool of smaller blocks. */
otpc__sig_t *otpc__sig_new(otpc__sig_kind_t kind) {
  bool msg = kind == SIG_MESSAGE;
  otpc__sig_t *s = otpc__slab_alloc(msg ? OTPC__SLAB_MSG : OTPC__SLAB_SIG);
  if (s == NULL) return NULL;
  memset(s, 0, msg ? OTPC__SIG_MSG_SIZE : sizeof *s);
  s->kind = (uint16_t)kind;
  return s;
}

void otpc__sig_free(otpc__sig_t *s) {
  if (s == NULL) return;
  otpc_buf_unref(s->buf);
  otpc__slab_free(s->kind == SIG_MESSAGE ? OTPC__SLAB_MSG : OTPC__SLAB_SIG, s);
}
