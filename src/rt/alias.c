/*
 * alias.c: process aliases (erlang:alias/1, unalias/1, monitor/3's alias
 * option; OTP 24 and later).
 *
 * An alias is a reference that names its process. It has five words:
 * the first three are an ordinary reference's (make_ref's counter, 18
 * bits in word 0 as Erlang keeps them), word 3 is the process's index
 * in the process table and word 4 its serial. Sending to an alias needs
 * no node-wide table: the words give the pid, and the message goes to
 * that process as any message does, flagged SIGF_ALIAS with the alias
 * in sig->ref. A dead process, or a slot reused by another (the serial
 * differs), drops it as a message to a dead pid is dropped.
 *
 * Whether the alias is still active is the owner's to say, when it takes
 * the message in (otpc__take_inbox): each process keeps its active
 * aliases in a hash set in its extension, keyed by the counter of the
 * first three words (unique on the node), owner only, no locks. So a
 * message sent before otpc_unalias and taken in after it is dropped, as
 * Erlang drops it; one already in the mailbox stays. The set is an open
 * table of 2^k entries, at most half full, linear probing and deletion
 * by backward shift; mode 0 marks a free entry.
 *
 * Modes: ALIAS_EXPLICIT lives until unalias; ALIAS_REPLY goes with the
 * first message taken in; the monitor modes go with unalias and, for
 * demonitor and reply_demonitor, when the monitor goes (demonitor or its
 * DOWN, see otpc__alias_monitor_gone); reply_demonitor also goes with the
 * first message, which removes the monitor (a DOWN behind it is then
 * dropped, as Erlang drops it).
 */
#include "rt_int.h"

typedef struct alias_entry {
  uint64_t key;  /* the reference's counter */
  uint32_t mode; /* ALIAS_*, 0: free */
} alias_entry_t;

typedef struct otpc__alias_tab {
  uint32_t n, mask; /* entries used; size - 1 */
  alias_entry_t e[];
} otpc__alias_tab_t;

#define TAB_MIN 4

/* The make_ref counter in the first three words. */
static uint64_t key_of(const otpc_ref_t *ref) {
  return (uint64_t)ref->id[0] | (uint64_t)ref->id[1] << 18 |
         (uint64_t)ref->id[2] << 50;
}

/* The counter of an alias of this node, and the pid it names; false if
 * ref is no such alias. */
static bool alias_parts(const otpc_ref_t *ref, uint64_t *key, otpc_pid_t *pid) {
  if (ref->node != otpc__rt.name || ref->creation != otpc__rt.creation ||
      ref->len != 5 || ref->id[0] >> 18 != 0 || ref->id[2] >> 14 != 0)
    return false;
  *key = key_of(ref);
  pid->node = otpc__rt.name;
  pid->id = ref->id[3];
  pid->serial = ref->id[4];
  pid->creation = otpc__rt.creation;
  return true;
}

bool otpc__ref_is_alias(const otpc_ref_t *ref) {
  uint64_t key;
  otpc_pid_t pid;
  return alias_parts(ref, &key, &pid);
}

static uint32_t home(uint64_t key, uint32_t mask) {
  return (uint32_t)((key * 0x9e3779b97f4a7c15u) >> 32) & mask;
}

/* The entry of key, or NULL. */
static alias_entry_t *find(otpc__alias_tab_t *t, uint64_t key) {
  if (t == NULL) return NULL;
  for (uint32_t i = home(key, t->mask); t->e[i].mode != 0;
       i = (i + 1) & t->mask)
    if (t->e[i].key == key) return &t->e[i];
  return NULL;
}

static void put(otpc__alias_tab_t *t, uint64_t key, uint32_t mode) {
  uint32_t i = home(key, t->mask);
  while (t->e[i].mode != 0) i = (i + 1) & t->mask;
  t->e[i].key = key;
  t->e[i].mode = mode;
  t->n++;
}

/* Frees entry e, moving back the ones behind it that may move. */
static void erase(otpc__alias_tab_t *t, alias_entry_t *e) {
  uint32_t i = (uint32_t)(e - t->e), mask = t->mask;
  for (uint32_t j = (i + 1) & mask; t->e[j].mode != 0; j = (j + 1) & mask) {
    uint32_t k = home(t->e[j].key, mask);
    /* e[j] may move to i unless its home is cyclically in (i, j]. */
    bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
    if (!stays) {
      t->e[i] = t->e[j];
      i = j;
    }
  }
  t->e[i].mode = 0;
  t->n--;
}

/* Room for one more entry in p's table; NULL if out of memory. */
static otpc__alias_tab_t *room(otpc__proc_ext_t *x) {
  otpc__alias_tab_t *t = x->aliases;
  if (t != NULL && 2 * (t->n + 1) <= t->mask + 1) return t;
  uint32_t size = t ? 2 * (t->mask + 1) : TAB_MIN;
  otpc__alias_tab_t *bigger =
      otpc__calloc(1, sizeof *bigger + size * sizeof(alias_entry_t));
  if (bigger == NULL) return NULL;
  bigger->mask = size - 1;
  for (uint32_t i = 0; t != NULL && i <= t->mask; i++)
    if (t->e[i].mode != 0) put(bigger, t->e[i].key, t->e[i].mode);
  otpc__free(t);
  x->aliases = bigger;
  return bigger;
}

int otpc__alias_new(otpc__proc_t *p, unsigned mode, otpc_ref_t *out) {
  otpc__proc_ext_t *x = otpc__proc_ext(p);
  otpc__alias_tab_t *t = x ? room(x) : NULL;
  if (t == NULL) return OTPC_ENOMEM;
  otpc_ref_t ref = otpc_make_ref();
  ref.len = 5;
  ref.id[3] = p->index;
  ref.id[4] = p->serial;
  put(t, key_of(&ref), mode);
  *out = ref;
  return 0;
}

/* p's entry for alias, or NULL. */
static alias_entry_t *entry_of(otpc__proc_t *p, const otpc_ref_t *alias) {
  uint64_t key;
  otpc_pid_t pid;
  if (p->ext == NULL || p->ext->aliases == NULL ||
      !alias_parts(alias, &key, &pid) || pid.id != p->index ||
      pid.serial != p->serial)
    return NULL;
  return find(p->ext->aliases, key);
}

bool otpc__alias_drop(otpc__proc_t *p, const otpc_ref_t *alias) {
  alias_entry_t *e = entry_of(p, alias);
  if (e == NULL) return false;
  erase(p->ext->aliases, e);
  return true;
}

bool otpc__alias_accept(otpc__proc_t *p, const otpc_ref_t *alias) {
  alias_entry_t *e = entry_of(p, alias);
  if (e == NULL) return false;
  uint32_t mode = e->mode;
  if (mode == ALIAS_REPLY || mode == ALIAS_MON_REPLY_DEMONITOR)
    erase(p->ext->aliases, e);
  otpc_pid_t target;
  if (mode == ALIAS_MON_REPLY_DEMONITOR &&
      otpc__mon_remove_watching(p, alias, &target)) {
    /* The reply came: the monitor goes, as demonitor would remove it. */
    otpc__sig_t *sig = otpc__sig_new(SIG_DEMONITOR);
    if (sig != NULL) {
      sig->from = otpc__proc_pid(p);
      sig->ref = *alias;
      otpc__deliver_pid(target, sig);
    }
  }
  return true;
}

void otpc__alias_monitor_gone(otpc__proc_t *p, const otpc_ref_t *ref) {
  alias_entry_t *e = entry_of(p, ref);
  if (e != NULL &&
      (e->mode == ALIAS_MON_DEMONITOR || e->mode == ALIAS_MON_REPLY_DEMONITOR))
    erase(p->ext->aliases, e);
}

uint32_t otpc__alias_deliver(const otpc_ref_t *alias, otpc_buf_t *msg,
                             otpc_pid_t from) {
  uint64_t key;
  otpc_pid_t to;
  otpc__sig_t *sig = NULL;
  if (msg == NULL) return 0;
  if (!alias_parts(alias, &key, &to) ||
      (sig = otpc__sig_new_alias_msg(alias)) == NULL) {
    otpc_buf_unref(msg); /* no such alias: dropped, as Erlang drops it */
    return 0;
  }
  sig->from = from;
  sig->buf = msg;
  return otpc__deliver_pid(to, sig);
}

void otpc__alias_free_all(otpc__proc_t *p) {
  if (p->ext == NULL) return;
  otpc__free(p->ext->aliases);
  p->ext->aliases = NULL;
}

size_t otpc__alias_bytes(const otpc__proc_t *p) {
  const otpc__alias_tab_t *t = p->ext ? p->ext->aliases : NULL;
  return t ? sizeof *t + (t->mask + 1) * sizeof(alias_entry_t) : 0;
}

bool otpc__alias_none(const otpc__proc_t *p) {
  return p->ext == NULL || p->ext->aliases == NULL || p->ext->aliases->n == 0;
}

/* ------------------------------------------------------------------------
 * The public functions
 * ------------------------------------------------------------------------ */

int otpc_alias(int opts, otpc_ref_t *alias) {
  otpc__proc_t *p = otpc__current();
  if (p == NULL) return OTPC_ENOTPROC;
  if (alias == NULL ||
      (opts != OTPC_ALIAS_EXPLICIT_UNALIAS && opts != OTPC_ALIAS_REPLY))
    return OTPC_EINVAL;
  return otpc__alias_new(
      p, opts == OTPC_ALIAS_REPLY ? ALIAS_REPLY : ALIAS_EXPLICIT, alias);
}

int otpc_unalias(const otpc_ref_t *alias) {
  otpc__proc_t *p = otpc__current();
  if (p == NULL) return OTPC_ENOTPROC;
  if (alias == NULL) return OTPC_EINVAL;
  return otpc__alias_drop(p, alias) ? 1 : 0;
}
