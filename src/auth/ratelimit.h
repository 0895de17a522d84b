/*
 * ratelimit.h — an in-memory, thread-safe rate limiter for the login and OTP
 * doors (OWASP API4: unrestricted resource consumption).
 *
 * Each key (a client address, an account e-mail, ...) has a token bucket of
 * per_minute tokens that refills at per_minute tokens per 60 s: a burst of
 * per_minute hits is allowed, then one more every 60/per_minute s. Memory is
 * fixed at creation (NB_RATELIMIT_MAX_KEYS entries, about 3 MiB, touched
 * lazily) and every hit is O(1), whatever the number of distinct keys. When
 * the table is full, the entry closest to a full bucket is forgotten, so a
 * flood of fresh keys pushes out harmless entries before throttled ones.
 * Limits are per process: behind several servers each applies its own.
 */
#ifndef NB_AUTH_RATELIMIT_H
#define NB_AUTH_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

/** How many keys one limiter tracks at most. */
#define NB_RATELIMIT_MAX_KEYS (1u << 17)

typedef struct nb_ratelimit nb_ratelimit_t;

/**
 * Creates a limiter allowing per_minute hits per key per minute;
 * per_minute <= 0 creates one that allows everything. Never returns NULL
 * (aborts on OOM). Free with nb_ratelimit_destroy.
 */
nb_ratelimit_t *nb_ratelimit_create(int per_minute);

/** Frees the limiter. Accepts NULL. No hit may be running concurrently. */
void nb_ratelimit_destroy(nb_ratelimit_t *rl);

/**
 * Records one attempt for key (a NUL-terminated string) at now_ms (any
 * millisecond clock, wall or monotonic, used consistently; a clock that steps
 * back refills nothing). Returns 0 if the attempt is allowed (and counts it),
 * or the number of seconds (>= 1) until one will be, for Retry-After; a
 * refused attempt does not count. A NULL limiter allows everything.
 * Thread-safe.
 */
int nb_ratelimit_hit(nb_ratelimit_t *rl, const char *key, int64_t now_ms);

/** How many keys are currently tracked (at most NB_RATELIMIT_MAX_KEYS); O(table) — for tests and metrics. */
size_t nb_ratelimit_size(nb_ratelimit_t *rl);

#endif
