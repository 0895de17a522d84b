/*
 * usercache.h — a per-process cache of live user ids, so that an
 * authenticated request does not ask the database whether its user still
 * exists.
 *
 * The guarantee stays the one of a database check: an erased account's
 * tokens stop working. Erasing an account sends NOTIFY nb_user_erased in the
 * erasing statement; the erasing process drops the id at once
 * (nb_usercache_drop), the others when their LISTEN connection delivers the
 * notification. The cache serves only while that connection is listening:
 * while it is down every request asks the database again, and every
 * (re)connect empties the cache, since notifications may have been missed
 * meanwhile. Entries also expire after a bounded time (ttl), and the table is
 * bounded (capacity ids, 4-way set-associative, the oldest of a set goes).
 *
 * A lookup that missed reads a generation number before it asks the
 * database and stores the answer only if no invalidation came in between, so
 * that a stale "exists" can never be put back after its notification.
 */
#ifndef NB_STORE_USERCACHE_H
#define NB_STORE_USERCACHE_H

#include <stdbool.h>
#include <stdint.h>

/** The notification channel an erase notifies (payload: the user id). */
#define NB_USERCACHE_CHANNEL "nb_user_erased"

/**
 * Starts the listener thread on conninfo (a session-level connection,
 * application_name "notebookd-usercache"). capacity <= 0 turns the cache
 * off (every lookup misses). ttl_ms: how long an entry may serve. Returns 0,
 * or -1 when the thread cannot start (the cache then stays off).
 */
int nb_usercache_start(const char *conninfo, int capacity, int ttl_ms);
/** Stops the listener and frees the cache; lookups miss afterwards. Idempotent. */
void nb_usercache_stop(void);
/**
 * True when uid is known live (cached, unexpired, and the listener is up).
 * Else *gen receives the generation to pass to nb_usercache_put after the
 * database said the user exists.
 */
bool nb_usercache_has(const char *uid, uint64_t *gen);
/** Records uid as live, unless an invalidation happened since gen was read. */
void nb_usercache_put(const char *uid, uint64_t gen);
/** Forgets uid (an erase): later lookups of it go to the database. */
void nb_usercache_drop(const char *uid);
/** True while the LISTEN connection is up (the cache serves). */
bool nb_usercache_listening(void);

#endif
