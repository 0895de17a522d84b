/*
 * arena.h — a per-unit-of-work memory arena (h2o's per-request pool,
 * PostgreSQL's memory contexts).
 *
 * Everything allocated from an arena is freed at once by nb_arena_destroy.
 * Non-memory resources (a PGresult, a json_t) can be tied to the arena with
 * nb_arena_defer: their release function runs at destroy, in reverse order.
 * An arena is used by one thread at a time.
 */
#ifndef NB_CORE_ARENA_H
#define NB_CORE_ARENA_H

#include <stdarg.h>
#include <stddef.h>

typedef struct nb_arena nb_arena_t;

/** Creates an empty arena. Never fails (aborts on OOM). */
nb_arena_t *nb_arena_create(void);
/** Runs deferred releases, frees every allocation and the arena. Accepts NULL. */
void nb_arena_destroy(nb_arena_t *a);
/**
 * Runs deferred releases and forgets every allocation, keeping one block for
 * reuse (recycling an arena is cheaper than destroying and creating one).
 */
void nb_arena_reset(nb_arena_t *a);
/** Allocates n bytes aligned for any type; valid until the arena dies. */
void *nb_arena_alloc(nb_arena_t *a, size_t n);
/** Copies a string into the arena; NULL gives NULL. */
char *nb_arena_strdup(nb_arena_t *a, const char *s);
/** Copies n bytes of s into the arena and NUL-terminates. */
char *nb_arena_strndup(nb_arena_t *a, const char *s, size_t n);
/** Formats into the arena. */
char *nb_arena_sprintf(nb_arena_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Registers fn(p) to run when the arena is destroyed (the arena takes ownership of p). */
void nb_arena_defer(nb_arena_t *a, void (*fn)(void *), void *p);
/** Bytes handed out so far (for tests and metrics). */
size_t nb_arena_used(const nb_arena_t *a);

#endif
