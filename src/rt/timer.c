/*
 * timer.c: the timing wheel of timer.h.
 *
 * Deadlines are compared as 64-bit keys (the int64_t with its sign bit
 * flipped, which keeps the order) cut into 6-bit digits; digit k selects a
 * slot of level k. Where a timer sits depends only on its deadline d and
 * the wheel's time `now`:
 *
 *   - d <= now: on the DUE list (d raised to now), fired first by the next
 *     advance;
 *   - d > now: at level k = the highest digit in which d and now differ,
 *     slot s = digit k of d. So d agrees with now above digit k and
 *     s > digit k of now.
 *
 * Consequences the code relies on:
 *
 *   1. Every timer on level j is earlier than every timer on level k > j,
 *      and within a level, slot order is deadline order (no wrap-around).
 *      So the earliest timer is in the lowest used slot of the lowest used
 *      level, found with two count-trailing-zeros on the occupancy bits.
 *   2. A level-0 slot holds a single deadline; with (3) it holds all the
 *      timers of that deadline, in the order they were added.
 *   3. Timers of equal deadline are always on one list, in order: they are
 *      placed by the same rule, lists are FIFO, and a slot is moved down
 *      (cascaded) whole, in order, onto lists that hold none of them yet.
 *   4. When now reaches the start of a level-k slot's range, that slot must
 *      be cascaded, and only it: lower levels are empty then, since their
 *      ranges all end before it starts.
 *
 * So advance never walks time: it jumps from event to event, an event being
 * the start of the earliest used slot (a deadline, on level 0). At each it
 * either fires a level-0 slot or cascades a slot, whose timers go down to
 * lower levels (or fire, if their deadline is that very start). Empty slots
 * cost nothing, however far time jumps; each timer is cascaded at most
 * once per level.
 *
 * The sentinel of a slot of level >= 1 keeps in its deadline field the
 * lowest deadline added to the slot since it was last empty: a lower bound
 * on the slot's timers (exact until that timer is cancelled), which is
 * what otpc__wheel_next reports for such a slot instead of scanning it.
 *
 * Timers being fired are moved to the FIRING list first, so a callback may
 * cancel any of them; a timer is disarmed just before its callback.
 */
#include "timer.h"

#include <assert.h>

#define LEVEL_OF(slot) ((slot) / OTPC__WHEEL_SLOTS)
#define DIGIT_OF(slot) ((slot) % OTPC__WHEEL_SLOTS)

/* ------------------------------------------------------------------------
 * Keys and lists
 * ------------------------------------------------------------------------ */

static uint64_t key(int64_t ms) {
  return (uint64_t)ms ^ (UINT64_C(1) << 63);
}

static int64_t unkey(uint64_t k) {
  return (int64_t)(k ^ (UINT64_C(1) << 63));
}

static int list_empty(const otpc__timer_t *head) {
  return head->next == head;
}

static void list_init(otpc__timer_t *head) {
  head->next = head->prev = head;
}

static void list_append(otpc__timer_t *head, otpc__timer_t *t) {
  t->prev = head->prev;
  t->next = head;
  head->prev->next = t;
  head->prev = t;
}

static void list_unlink(otpc__timer_t *t) {
  t->prev->next = t->next;
  t->next->prev = t->prev;
  t->next = t->prev = NULL;
}

/* Moves every timer of src to the end of dst, in order, as `slot`. */
static void list_move_all(otpc__timer_t *dst, otpc__timer_t *src,
                          uint32_t slot) {
  for (otpc__timer_t *t = src->next; t != src; t = t->next) t->slot = slot;
  if (list_empty(src)) return;
  src->next->prev = dst->prev;
  dst->prev->next = src->next;
  src->prev->next = dst;
  dst->prev = src->prev;
  list_init(src);
}

/* ------------------------------------------------------------------------
 * Slots
 * ------------------------------------------------------------------------ */

static void mark_used(otpc__wheel_t *w, unsigned level, unsigned digit) {
  w->occupied[level] |= UINT64_C(1) << digit;
  w->levels |= 1u << level;
}

static void mark_empty(otpc__wheel_t *w, unsigned level, unsigned digit) {
  w->occupied[level] &= ~(UINT64_C(1) << digit);
  if (w->occupied[level] == 0) w->levels &= ~(1u << level);
}

/* Links t, whose deadline is after the wheel's time, into its slot. */
static void place(otpc__wheel_t *w, otpc__timer_t *t) {
  uint64_t k = key(t->deadline), diff = k ^ key(w->now);
  assert(k > key(w->now));
  unsigned level = (unsigned)(63 - __builtin_clzll(diff)) / OTPC__WHEEL_BITS;
  unsigned digit =
      (unsigned)(k >> (level * OTPC__WHEEL_BITS)) & (OTPC__WHEEL_SLOTS - 1);
  uint32_t slot = level * OTPC__WHEEL_SLOTS + digit;
  otpc__timer_t *head = &w->lists[slot];
  if (list_empty(head)) {
    head->deadline = t->deadline;
    mark_used(w, level, digit);
  } else if (t->deadline < head->deadline) {
    head->deadline = t->deadline;
  }
  t->slot = slot;
  list_append(head, t);
}

/* The start of the range of slot `digit` of `level`, given the wheel's
 * time: now's digits above level, then digit, then zeros. */
static int64_t slot_start(const otpc__wheel_t *w, unsigned level,
                          unsigned digit) {
  unsigned shift = level * OTPC__WHEEL_BITS;
  unsigned above = shift + OTPC__WHEEL_BITS;
  uint64_t base = above >= 64 ? 0 : key(w->now) & ~((UINT64_C(1) << above) - 1);
  return unkey(base | (uint64_t)digit << shift);
}

/* Empties slot `digit` of `level` (>= 1), the wheel's time being its
 * start: its timers go down a level or more, or to FIRING if due now. */
static void cascade(otpc__wheel_t *w, unsigned level, unsigned digit) {
  otpc__timer_t *head = &w->lists[level * OTPC__WHEEL_SLOTS + digit];
  while (!list_empty(head)) {
    otpc__timer_t *t = head->next;
    list_unlink(t);
    if (t->deadline == w->now) {
      t->slot = OTPC__WHEEL_FIRING;
      list_append(&w->lists[OTPC__WHEEL_FIRING], t);
    } else {
      place(w, t);
    }
  }
  mark_empty(w, level, digit);
}

/* Fires FIRING, front to back, until it is empty. */
static void fire_all(otpc__wheel_t *w,
                     void (*fire)(otpc__timer_t *t, void *arg), void *arg) {
  otpc__timer_t *head = &w->lists[OTPC__WHEEL_FIRING];
  while (!list_empty(head)) {
    otpc__timer_t *t = head->next;
    list_unlink(t);
    t->armed = 0;
    w->count--;
    fire(t, arg);
  }
}

/* ------------------------------------------------------------------------
 * The interface
 * ------------------------------------------------------------------------ */

void otpc__wheel_init(otpc__wheel_t *w, int64_t now_ms) {
  w->now = now_ms;
  w->count = 0;
  w->levels = 0;
  w->advancing = 0;
  for (unsigned i = 0; i < OTPC__WHEEL_LEVELS; i++) w->occupied[i] = 0;
  for (unsigned i = 0; i < OTPC__WHEEL_LISTS; i++) {
    list_init(&w->lists[i]);
    w->lists[i].deadline = 0;
    w->lists[i].slot = i;
    w->lists[i].armed = 0;
  }
}

void otpc__wheel_add(otpc__wheel_t *w, otpc__timer_t *t, int64_t deadline) {
  otpc__wheel_cancel(w, t);
  t->armed = 1;
  w->count++;
  if (deadline <= w->now) {
    t->deadline = w->now;
    t->slot = OTPC__WHEEL_DUE;
    list_append(&w->lists[OTPC__WHEEL_DUE], t);
  } else {
    t->deadline = deadline;
    place(w, t);
  }
}

void otpc__wheel_cancel(otpc__wheel_t *w, otpc__timer_t *t) {
  if (!t->armed) return;
  assert(t->slot < OTPC__WHEEL_LISTS && w->count > 0);
  list_unlink(t);
  t->armed = 0;
  w->count--;
  if (t->slot < OTPC__WHEEL_DUE && list_empty(&w->lists[t->slot]))
    mark_empty(w, LEVEL_OF(t->slot), DIGIT_OF(t->slot));
}

void otpc__wheel_advance(otpc__wheel_t *w, int64_t now_ms,
                         void (*fire)(otpc__timer_t *t, void *arg), void *arg) {
  assert(!w->advancing);
  w->advancing = 1;
  if (now_ms < w->now) now_ms = w->now;
  /* What was due before this call fires first, at the old time; what the
   * callbacks make due goes to DUE afresh and waits for the next call. */
  list_move_all(&w->lists[OTPC__WHEEL_FIRING], &w->lists[OTPC__WHEEL_DUE],
                OTPC__WHEEL_FIRING);
  fire_all(w, fire, arg);
  while (w->levels != 0) {
    unsigned level = (unsigned)__builtin_ctz(w->levels);
    unsigned digit = (unsigned)__builtin_ctzll(w->occupied[level]);
    int64_t at = slot_start(w, level, digit);
    if (at > now_ms) break;
    w->now = at;
    if (level == 0) {
      uint32_t slot = digit;
      list_move_all(&w->lists[OTPC__WHEEL_FIRING], &w->lists[slot],
                    OTPC__WHEEL_FIRING);
      mark_empty(w, 0, digit);
    } else {
      cascade(w, level, digit);
    }
    fire_all(w, fire, arg);
  }
  /* No slot starts in (w->now, now_ms], so moving there needs no cascade. */
  w->now = now_ms;
  w->advancing = 0;
}

int64_t otpc__wheel_next(const otpc__wheel_t *w) {
  if (!list_empty(&w->lists[OTPC__WHEEL_DUE]) ||
      !list_empty(&w->lists[OTPC__WHEEL_FIRING]))
    return 0;
  if (w->levels == 0) return -1;
  unsigned level = (unsigned)__builtin_ctz(w->levels);
  unsigned digit = (unsigned)__builtin_ctzll(w->occupied[level]);
  int64_t at = level == 0
                   ? slot_start(w, level, digit)
                   : w->lists[level * OTPC__WHEEL_SLOTS + digit].deadline;
  uint64_t wait = (uint64_t)at - (uint64_t)w->now;
  return wait > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)wait;
}

