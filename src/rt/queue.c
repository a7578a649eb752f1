/*
 * queue.c: the intrusive multi-producer single-consumer queue under every
 * mailbox and run queue (Dmitry Vyukov's design), and signal nodes.
 *
 * Producers swap themselves in as the new tail with one atomic exchange,
 * then link the old tail to themselves. Between those two steps the queue
 * is briefly cut: the consumer sees the old tail with no next and reports
 * "empty" even though the exchange happened. That is safe because an
 * inbox's owner cannot go idle while its tail is not the stub (the
 * producer's exchange tells it whether the owner was idle), and a run
 * queue's producer checks the scheduler's sleep word after linking: the
 * consumer is woken, or runs again, and looks again.
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

/* Signal nodes are made and freed at the rate messages flow: they come
 * from pools (slab.c), messages from a pool of smaller blocks. */
otpc__sig_t *otpc__sig_new(otpc__sig_kind_t kind) {
  otpc__sig_t *s;
  if (kind == SIG_MESSAGE) {
    return otpc__sig_new_msg();
  } else {
    if ((s = otpc__slab_alloc(OTPC__SLAB_SIG)) == NULL) return NULL;
    memset(s, 0, sizeof *s);
  }
  s->kind = (uint16_t)kind;
  return s;
}

otpc__sig_t *otpc__sig_new_alias_msg(const otpc_ref_t *alias) {
  otpc__sig_t *s = otpc__slab_alloc(OTPC__SLAB_SIG);
  if (s == NULL) return NULL;
  memset(s, 0, sizeof *s);
  s->kind = SIG_MESSAGE;
  s->flags = SIGF_ALIAS;
  s->ref = *alias;
  return s;
}

void otpc__sig_free(otpc__sig_t *s) {
  if (s == NULL) return;
  otpc_buf_unref(s->buf);
  otpc__sig_dealloc(s);
}
