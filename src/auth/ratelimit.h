/*
 * ratelimit.h — the one rate-limit engine of notebookd (OWASP API4:
 * unrestricted resource consumption): the door limits of login, OTP and
 * register (auth/service.c) and the API-wide limits per user and per client
 * address (api/ratelimit.c) are limiters of this engine.
 *
 * A limiter allows per_minute hits per key: each key (an address, an
 * account, a user id) has a token bucket of per_minute tokens that refills
 * at per_minute tokens per 60 s. Memory is fixed at creation
 * (NB_RATELIMIT_MAX_KEYS slots of 32 bytes, touched lazily) and a hit is a
 * keyed hash, one of 64 sharded locks and a few integer operations: no
 * allocation, no statement. When the table is full, the entry closest to a
 * full bucket is forgotten, so a flood of fresh keys pushes out harmless
 * entries before throttled ones.
 *
 * Several servers: a limiter made shared (nb_ratelimit_share) hashes its keys
 * alike on every server given the same secret and counts what it spends; the
 * process's one sync thread (nb_ratelimit_sync_start: one thread and one
 * connection for every shared limiter) adds that spending to the
 * deployment's buckets in PostgreSQL (rate_buckets) every sync period, in
 * one statement per round, and takes back their balances. One lease rule:
 * between two syncs a server spends at most ceil(per_minute / 10) tokens of
 * a key (at least 1) ahead of the shared count, and a server that spends a
 * lease syncs at once; so N servers allow at most N * lease hits more than
 * one would. One rule for a failed sync: the spending is kept and added at
 * the next sync that succeeds (at most one bucket of it, what a minute
 * refills anyway), and the lease starts again, so while the database is down
 * each server limits with its own counts. A hit never waits for the
 * database.
 */
#ifndef NB_AUTH_RATELIMIT_H
#define NB_AUTH_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

/** How many keys one limiter tracks at most. */
#define NB_RATELIMIT_MAX_KEYS (1u << 17)
/** Lease of the door limits: a tenth (a brute-force bound: 1 login more per server at 10 a minute). */
#define NB_RATELIMIT_DOOR_LEASE_DIV 10
/** Lease of the API-wide limits: a quarter, so a burst on one server (8 uploads at 30 a minute) is not refused for the sync's sake. */
#define NB_RATELIMIT_API_LEASE_DIV 4

typedef struct nb_ratelimit nb_ratelimit_t;

/**
 * Creates a limiter allowing per_minute hits per key per minute;
 * per_minute <= 0 creates one that allows everything. Never returns NULL
 * (aborts on OOM). Free with nb_ratelimit_destroy.
 */
nb_ratelimit_t *nb_ratelimit_create(int per_minute);

/** Frees the limiter (and takes it out of the sync). Accepts NULL. No hit may be running concurrently. */
void nb_ratelimit_destroy(nb_ratelimit_t *rl);

/**
 * Takes one token of key's bucket (key: a NUL-terminated string) at now_ms
 * (a millisecond clock used consistently; nb_mono_ms() for a shared
 * limiter, whose syncs read that clock; a clock that steps back refills
 * nothing). Returns 0 if the hit is allowed (and counts it), or the number
 * of seconds (>= 1) until one will be, for Retry-After; a refused hit does
 * not count. When allowed and left / full_s are not NULL, sets *left to the
 * whole tokens left and *full_s to the seconds until the bucket is full
 * again. A NULL limiter allows everything. Thread-safe.
 */
int nb_ratelimit_take(nb_ratelimit_t *rl, const char *key, int64_t now_ms, int *left, int *full_s);

/** nb_ratelimit_take without the bucket's state: 0 when allowed, else seconds to wait. */
int nb_ratelimit_hit(nb_ratelimit_t *rl, const char *key, int64_t now_ms);

/** Gives back the token an allowed hit of key took (a request refused by another limit). Thread-safe. */
void nb_ratelimit_give(nb_ratelimit_t *rl, const char *key, int64_t now_ms);

/**
 * Makes rl's counts shared by the deployment: keys are hashed with a key
 * derived from secret[0..len) and name (the same on every server given the
 * same secret; name tells limiters apart), each allowed hit is kept for the
 * sync thread, and a hit that finds the key's lease — ⌈per_minute /
 * lease_div⌉ hits, at least 1 — spent since the last sync is refused for 1
 * second while the spending syncs at once. N servers allow at most N leases
 * beyond the limit: a small lease_div lets one server take bigger bursts, a
 * big one bounds the deployment tighter. Call before the first hit, once the sync
 * runs (nb_ratelimit_sync_start returned 0): nobody else gives a lease
 * back. No effect on an allow-everything limiter.
 */
void nb_ratelimit_share(nb_ratelimit_t *rl, const unsigned char *secret, size_t len, const char *name,
			int lease_div);

/**
 * Starts the process's sync thread, with a connection of its own to
 * database_url, syncing every shared limiter every sync_ms (and at once when
 * a lease is spent). Returns 0 when it runs (started now or before), -1 when
 * sync_ms <= 0, database_url is NULL or the thread cannot start (limits stay
 * per process). Thread-safe.
 */
int nb_ratelimit_sync_start(const char *database_url, int sync_ms);

/** Stops and joins the sync thread, closes its connection; shared limiters count per process again. */
void nb_ratelimit_sync_stop(void);

/** How many keys are currently tracked (at most NB_RATELIMIT_MAX_KEYS); O(table) — for tests and metrics. */
size_t nb_ratelimit_size(nb_ratelimit_t *rl);

#endif
