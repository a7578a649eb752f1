/*
 * atom.c: the process-wide atom table.
 *
 * An atom is an index into this table; its text never moves and is never
 * freed, as in Erlang. Two structures:
 *
 *   - names: index -> entry, a two-level array (segments of SEG_SIZE entry
 *     pointers). Entries are written once, then published by a release store
 *     of their slot; readers use acquire loads and no lock.
 *   - the hash index: open addressing over uint32 atom indices (0 = empty).
 *     Lookups read it without a lock. Inserts take `lock`; when the index
 *     fills past half it is rebuilt twice as large and the new one is
 *     published with a release store. Old indexes are kept (not freed) so a
 *     reader still probing one stays safe; they add up to less than the
 *     final one. A reader that misses in an old index retries under the lock.
 *
 * Text is stored as UTF-8; Latin-1 atoms from old encodings are converted
 * before interning, so 'é' is one atom however it arrived.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "term_int.h"

#define SEG_BITS 12
#define SEG_SIZE (1u << SEG_BITS)
#define NSEGS (OTPC_ATOM_MAX_COUNT / SEG_SIZE)
#define ARENA_CHUNK 65536

typedef struct atom_entry {
  uint32_t len;  /* bytes of UTF-8 text */
  uint32_t hash; /* of the text */
  char text[];   /* NUL-terminated */
} atom_entry_t;

typedef struct atom_index {
  uint32_t mask;              /* slots - 1 */
  struct atom_index *retired; /* the index this one replaced */
  _Atomic uint32_t slots[];
} atom_index_t;

static _Atomic(atom_entry_t *) *_Atomic segments[NSEGS];
static _Atomic(atom_index_t *) index_now;
static atomic_uint count; /* atoms published, the next index to use */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
/* Bump arena for entries; guarded by lock. */
static char *arena;
static size_t arena_left;

static uint32_t hash_text(const uint8_t *s, size_t len) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (size_t i = 0; i < len; i++) h = (h ^ s[i]) * 16777619u;
  return h;
}

static atom_entry_t *entry_of(otpc_atom_t a) {
  _Atomic(atom_entry_t *) *seg =
      atomic_load_explicit(&segments[a >> SEG_BITS], memory_order_acquire);
  if (seg == NULL) return NULL;
  return atomic_load_explicit(&seg[a & (SEG_SIZE - 1)], memory_order_acquire);
}

/* Probes idx for the text; returns the atom or 0. */
static otpc_atom_t probe(const atom_index_t *idx, const uint8_t *s,
                         size_t len, uint32_t h) {
  for (uint32_t i = h & idx->mask;; i = (i + 1) & idx->mask) {
    uint32_t a = atomic_load_explicit((_Atomic uint32_t *)&idx->slots[i],
                                      memory_order_acquire);
    if (a == 0) return 0;
    const atom_entry_t *e = entry_of(a);
    if (e->hash == h && e->len == len && memcmp(e->text, s, len) == 0)
      return a;
  }
}

static void place(atom_index_t *idx, otpc_atom_t a, uint32_t h) {
  uint32_t i = h & idx->mask;
  while (atomic_load_explicit(&idx->slots[i], memory_order_relaxed) != 0)
    i = (i + 1) & idx->mask;
  atomic_store_explicit(&idx->slots[i], a, memory_order_release);
}

static atom_index_t *index_new(uint32_t nslots) {
  atom_index_t *idx =
      otpc__calloc(1, sizeof *idx + nslots * sizeof(_Atomic uint32_t));
  if (idx != NULL) idx->mask = nslots - 1;
  return idx;
}

/* Called with lock held: makes room for one more atom in the index. */
static int index_grow_if_needed(uint32_t n) {
  atom_index_t *idx = atomic_load_explicit(&index_now, memory_order_relaxed);
  if (idx != NULL && (uint64_t)(n + 1) * 2 <= (uint64_t)idx->mask + 1)
    return 0;
  uint32_t nslots = idx ? (idx->mask + 1) * 2 : 4096;
  atom_index_t *bigger = index_new(nslots);
  if (bigger == NULL) return OTPC_ENOMEM;
  for (uint32_t a = 1; a < n; a++) place(bigger, a, entry_of(a)->hash);
  bigger->retired = idx;
  atomic_store_explicit(&index_now, bigger, memory_order_release);
  return 0;
}

static atom_entry_t *entry_new(const uint8_t *s, size_t len, uint32_t h) {
  size_t need = (sizeof(atom_entry_t) + len + 1 + 7) & ~(size_t)7;
  if (need > arena_left) {
    arena = otpc__malloc(ARENA_CHUNK);
    if (arena == NULL) {
      arena_left = 0;
      return NULL;
    }
    arena_left = ARENA_CHUNK;
  }
  atom_entry_t *e = (atom_entry_t *)arena;
  arena += need;
  arena_left -= need;
  e->len = (uint32_t)len;
  e->hash = h;
  memcpy(e->text, s, len);
  e->text[len] = '\0';
  return e;
}

/* Called with lock held. */
static int insert_locked(const uint8_t *s, size_t len, uint32_t h,
                         otpc_atom_t *out) {
  uint32_t n = atomic_load_explicit(&count, memory_order_relaxed);
  if (n >= OTPC_ATOM_MAX_COUNT) return OTPC_EATOM;
  int rc = index_grow_if_needed(n);
  if (rc != 0) return rc;
  _Atomic(atom_entry_t *) *seg =
      atomic_load_explicit(&segments[n >> SEG_BITS], memory_order_relaxed);
  if (seg == NULL) {
    seg = otpc__calloc(SEG_SIZE, sizeof *seg);
    if (seg == NULL) return OTPC_ENOMEM;
    atomic_store_explicit(&segments[n >> SEG_BITS], seg,
                          memory_order_release);
  }
  atom_entry_t *e = entry_new(s, len, h);
  if (e == NULL) return OTPC_ENOMEM;
  atomic_store_explicit(&seg[n & (SEG_SIZE - 1)], e, memory_order_release);
  place(atomic_load_explicit(&index_now, memory_order_relaxed), n, h);
  atomic_store_explicit(&count, n + 1, memory_order_release);
  *out = n;
  return 0;
}

static void init_table(void) {
  static const char *const names[] = {
#define OTPC_ATOM_NAME_(sym, text) text,
      OTPC_ATOM_TABLE(OTPC_ATOM_NAME_)
#undef OTPC_ATOM_NAME_
  };
  atomic_store(&count, 1); /* index 0 is OTPC_ATOM_NONE */
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    otpc_atom_t a;
    const uint8_t *s = (const uint8_t *)names[i];
    size_t len = strlen(names[i]);
    if (insert_locked(s, len, hash_text(s, len), &a) != 0) abort();
  }
}

/* Interns valid UTF-8 text. */
/* The atoms a thread met last, by a hash of length and end bytes: the
 * same few atoms (a node name in every pid, a protocol tag in every
 * message) are decoded over and over, and comparing the text with one
 * remembered entry is cheaper than hashing it and probing the table. An
 * entry is an atom id; its text never moves or changes. */
#define RECENT 8
static __thread otpc_atom_t recent[RECENT];

static unsigned recent_slot(const uint8_t *s, size_t len) {
  return len == 0 ? 0 : (unsigned)(len ^ s[0] ^ (s[len - 1] << 1)) & (RECENT - 1);
}

static int intern_utf8(const uint8_t *s, size_t len, bool create,
                       otpc_atom_t *out) {
  unsigned slot = recent_slot(s, len);
  otpc_atom_t a = recent[slot];
  if (a != 0) {
    const atom_entry_t *e = entry_of(a);
    if (e->len == len && memcmp(e->text, s, len) == 0) {
      *out = a;
      return 0;
    }
  }
  pthread_once(&once, init_table);
  uint32_t h = hash_text(s, len);
  a = probe(atomic_load_explicit(&index_now, memory_order_acquire), s, len, h);
  if (a != 0) {
    recent[slot] = a;
    *out = a;
    return 0;
  }
  int rc = 0;
  pthread_mutex_lock(&lock);
  a = probe(atomic_load_explicit(&index_now, memory_order_relaxed), s, len, h);
  if (a != 0)
    *out = a;
  else if (create)
    rc = insert_locked(s, len, h, out);
  else
    rc = OTPC_EINVAL;
  pthread_mutex_unlock(&lock);
  return rc;
}

long otpc__utf8_count(const uint8_t *s, size_t len) {
  long chars = 0;
  size_t i = 0;
  while (i < len) {
    uint8_t c = s[i];
    uint32_t cp;
    size_t n;
    if (c < 0x80) {
      i++;
      chars++;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 4;
      cp = c & 0x07;
    } else {
      return -1;
    }
    if (len - i < n) return -1;
    for (size_t k = 1; k < n; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return -1;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    static const uint32_t min_for_len[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_for_len[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return -1;
    i += n;
    chars++;
  }
  return chars;
}

int otpc__atom_intern(const uint8_t *text, size_t len, bool latin1,
                      otpc_atom_t *out) {
  if (!latin1) return intern_utf8(text, len, true, out);
  uint8_t utf8[OTPC_ATOM_MAX_CHARS * 2];
  size_t n = 0;
  if (len > OTPC_ATOM_MAX_CHARS) return OTPC_EATOM;
  for (size_t i = 0; i < len; i++) {
    if (text[i] < 0x80) {
      utf8[n++] = text[i];
    } else {
      utf8[n++] = (uint8_t)(0xC0 | (text[i] >> 6));
      utf8[n++] = (uint8_t)(0x80 | (text[i] & 0x3F));
    }
  }
  return intern_utf8(utf8, n, true, out);
}

static int check_text(const char *utf8, size_t len) {
  if (utf8 == NULL && len != 0) return OTPC_EINVAL;
  long chars = otpc__utf8_count((const uint8_t *)utf8, len);
  if (chars < 0) return OTPC_EUTF8;
  if (chars > OTPC_ATOM_MAX_CHARS) return OTPC_EATOM;
  return 0;
}

int otpc_atom_new(const char *utf8, size_t len, otpc_atom_t *out) {
  int rc = check_text(utf8, len);
  if (rc != 0) return rc;
  return intern_utf8((const uint8_t *)(utf8 ? utf8 : ""), len, true, out);
}

otpc_atom_t otpc_atom(const char *utf8) {
  otpc_atom_t a;
  if (utf8 == NULL || otpc_atom_new(utf8, strlen(utf8), &a) != 0)
    return OTPC_ATOM_NONE;
  return a;
}

int otpc_atom_lookup(const char *utf8, size_t len, otpc_atom_t *out) {
  int rc = check_text(utf8, len);
  if (rc != 0) return rc;
  return intern_utf8((const uint8_t *)(utf8 ? utf8 : ""), len, false, out);
}

/* The count once the table is set up; out of line, so that the common
 * case of otpc_atom_name saves no registers. */
__attribute__((noinline, cold)) static uint32_t count_set_up(void) {
  pthread_once(&once, init_table);
  return atomic_load_explicit(&count, memory_order_acquire);
}

const char *otpc_atom_name(otpc_atom_t atom, size_t *len) {
  /* An atom below the published count is there: no need to make sure
   * the table was set up (this is on the path of every pid written). */
  uint32_t n = atomic_load_explicit(&count, memory_order_acquire);
  if (OTPC_UNLIKELY(atom >= n)) n = count_set_up();
  const atom_entry_t *e =
      atom != OTPC_ATOM_NONE && atom < n ? entry_of(atom) : NULL;
  if (e == NULL) {
    if (len) *len = 0;
    return NULL;
  }
  if (len) *len = e->len;
  return e->text;
}

size_t otpc_atom_count(void) {
  pthread_once(&once, init_table);
  return atomic_load(&count) - 1;
}
