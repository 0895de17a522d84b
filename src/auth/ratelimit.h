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
 *
 * Several servers: a limiter made shared (nb_ratelimit_share) hashes its
 * keys alike on every server that has the same secret, and counts what it
 * spends; a sync thread (nb_ratelimit_sync_start) adds that spending to the
 * deployment's buckets in PostgreSQL (rate_buckets, the table of the
 * API-wide limits) every NOTEBOOKD_RATE_SYNC_MS and takes back their
 * balances. Between two syncs a server spends at most a lease of
 * ceil(per_minute / 10) tokens of a key ahead of the shared count (1 for the
 * default 10 a minute per account), so N servers allow at most
 * N * lease attempts more than one server would. A hit never waits for the
 * database; with the database down each server keeps its own counts.
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

/**
 * Makes rl's counts shared by the deployment: keys are hashed with a key
 * derived from secret[0..len) and name (the same on every server given the
 * same secret; name tells limiters apart), and each allowed hit is kept as
 * pending spending for the sync thread. A hit that finds a lease already
 * spent since the last sync is refused with 1 (or more) second. Call before
 * the first hit and before nb_ratelimit_sync_start. No effect on an
 * allow-everything limiter.
 */
void nb_ratelimit_share(nb_ratelimit_t *rl, const unsigned char *secret, size_t len, const char *name);

typedef struct nb_ratelimit_sync nb_ratelimit_sync_t;

/**
 * Starts the thread that, every sync_ms, adds the pending spending of the
 * shared limiters rls[0..n) to the deployment's buckets (one statement per
 * batch, on a connection of its own to database_url) and sets each local
 * balance to the deployment's minus what was spent here meanwhile. Returns
 * NULL (limits stay per process) when sync_ms <= 0, no limiter is shared or
 * the thread cannot start. Stop it with nb_ratelimit_sync_stop before
 * destroying the limiters.
 */
nb_ratelimit_sync_t *nb_ratelimit_sync_start(nb_ratelimit_t *const *rls, int n, const char *database_url, int sync_ms);

/** Stops and joins the sync thread, closes its connection. Accepts NULL. */
void nb_ratelimit_sync_stop(nb_ratelimit_sync_t *s);

/** How many keys are currently tracked (at most NB_RATELIMIT_MAX_KEYS); O(table) — for tests and metrics. */
size_t nb_ratelimit_size(nb_ratelimit_t *rl);

#endif
