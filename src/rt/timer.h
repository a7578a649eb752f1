/*
 * timer.h: a hierarchical timing wheel, one per scheduler, under every
 * Erlang timer (receive timeouts, send_after, start_timer, cancel_timer).
 *
 * Timers are intrusive: an otpc__timer_t lives inside the caller's object
 * and the wheel only links it, so the wheel never allocates and holds any
 * number of timers. Time is absolute milliseconds on the monotonic clock
 * (any int64_t, negative included). A wheel belongs to one thread, its
 * scheduler: nothing here locks, and no other thread may touch the wheel
 * or a timer armed in it.
 *
 * Costs: add and cancel O(1); next O(1); advance O(timers fired + timers
 * moved down a level), whatever the jump in time; each timer moves down
 * at most OTPC__WHEEL_LEVELS - 1 times in its life. The design and its
 * invariants are in timer.c.
 */
#ifndef OTPC_RT_TIMER_H
#define OTPC_RT_TIMER_H

#include <stddef.h>
#include <stdint.h>

/* A timer, embedded in the caller's object. Zero it (or call
 * otpc__timer_init) before its first use; the wheel owns every field while
 * it is armed, and the caller reads only deadline and armed. */
typedef struct otpc__timer {
  struct otpc__timer *next, *prev; /* list links inside a wheel list */
  int64_t deadline; /* absolute ms; a past one is raised to the wheel's time */
  uint32_t slot;    /* which wheel list it is on, for O(1) cancel */
  uint32_t armed;   /* 1 while in the wheel, until fired or cancelled */
} otpc__timer_t;

/* 64 slots a level, 6 bits of the deadline each: level k slots are 64^k ms
 * wide, and 11 levels cover all 64 bits, so no deadline is too far. */
#define OTPC__WHEEL_BITS 6
#define OTPC__WHEEL_SLOTS 64
#define OTPC__WHEEL_LEVELS 11
/* The wheel's lists: the slots, level by level, then two more. */
#define OTPC__WHEEL_DUE (OTPC__WHEEL_LEVELS * OTPC__WHEEL_SLOTS)
#define OTPC__WHEEL_FIRING (OTPC__WHEEL_DUE + 1)
#define OTPC__WHEEL_LISTS (OTPC__WHEEL_FIRING + 1)

/* Fixed size (about 23 KiB), embedded in the scheduler; no allocation. */
typedef struct otpc__wheel {
  int64_t now;     /* the wheel's time: where the last advance stopped */
  size_t count;    /* armed timers */
  uint32_t levels; /* bit k set iff occupied[k] != 0 */
  int advancing;   /* inside otpc__wheel_advance, which must not recurse */
  uint64_t occupied[OTPC__WHEEL_LEVELS]; /* bit s: slot s of level k used */
  /* Circular list sentinels. Slot k*64+s holds timers of level k, slot s;
   * its sentinel's deadline is a lower bound on theirs (see timer.c).
   * OTPC__WHEEL_DUE holds timers added at or before the wheel's time;
   * OTPC__WHEEL_FIRING those being fired by the running advance. */
  otpc__timer_t lists[OTPC__WHEEL_LISTS];
} otpc__wheel_t;

static inline void otpc__timer_init(otpc__timer_t *t) {
  *t = (otpc__timer_t){0};
}

/* Starts an empty wheel whose time is now_ms. */
void otpc__wheel_init(otpc__wheel_t *w, int64_t now_ms);

/*
 * Arms t to fire at deadline (absolute ms). A deadline at or before the
 * wheel's time is due: it is raised to the wheel's time and the timer fires
 * at the next advance, before any other timer. If t is armed already it is
 * moved, as if cancelled first.
 */
void otpc__wheel_add(otpc__wheel_t *w, otpc__timer_t *t, int64_t deadline);

/* Disarms t in O(1); a no-op if t is not armed (fired, cancelled, or never
 * added). t must not be armed in another wheel. */
void otpc__wheel_cancel(otpc__wheel_t *w, otpc__timer_t *t);

/*
 * Moves the wheel's time to now_ms (an earlier now_ms is taken as the
 * wheel's time: time does not go back) and calls fire(t, arg) once for
 * every timer whose deadline <= now_ms, in deadline order, ties in the
 * order they were added. t is disarmed before its call, which may do
 * anything to the wheel but advance it: add or cancel timers, t included.
 *
 * During a call the wheel's time is t's deadline, as if time went forward
 * one firing at a time: a timer added then with a later deadline <= now_ms
 * fires in this same advance, in order; one added with a deadline at or
 * before t's is due and waits for the next advance (so a callback that
 * re-arms itself in the past cannot loop forever).
 */
void otpc__wheel_advance(otpc__wheel_t *w, int64_t now_ms,
                         void (*fire)(otpc__timer_t *t, void *arg), void *arg);

/*
 * How long the scheduler may sleep, in ms from the wheel's time: 0 if a
 * timer is due, -1 if the wheel is empty, otherwise a lower bound on the
 * time until the earliest deadline, in O(1). The bound is exact unless the
 * timer that was earliest in its slot of level >= 1 was cancelled; then it
 * is that cancelled deadline, and advancing to it fires nothing but makes
 * the next answer exact. So a scheduler that sleeps for next() and
 * advances wakes early at most once per firing.
 */
int64_t otpc__wheel_next(const otpc__wheel_t *w);

/* Armed timers, due and being fired included. */
static inline size_t otpc__wheel_count(const otpc__wheel_t *w) {
  return w->count;
}

#endif /* OTPC_RT_TIMER_H */
