/*
 * replica.h — whether a read may go to the streaming replica
 * (DATABASE_READ_URL), decided without any statement on the request path.
 *
 * Design: one thread per process checks the replica every
 * NB_REPLICA_CHECK_MS on connections of its own: the primary's
 * pg_current_wal_lsn() (its time noted just before asking), then the
 * replica's pg_last_wal_replay_lsn(). db/replica_lag.h turns the samples into
 * the replica's lag and `safe_before`, the latest time before which every
 * commit has been replayed there. The replica is usable while its check
 * succeeds (it answers, is in recovery), its lag is at most the configured
 * bound and the last check is recent; a request that finds it broken marks it
 * down at once (nb_replica_fallback) until the next good check.
 *
 * Read-your-writes: the API notes the end of every write of a user (after
 * its commit, nb_replica_note_write) in a small per-process table; that
 * user's reads go to the primary until safe_before passes that moment, i.e.
 * until the replica has replayed every commit that finished before it.
 * Entries older than safe_before are dropped at each check. Per process:
 * with several servers a user's requests must stick to one (or accept the
 * replica's bounded lag on another). Thread-safe; a mutex, no I/O, on the
 * request path.
 */
#ifndef NB_DB_REPLICA_H
#define NB_DB_REPLICA_H

#include <stdbool.h>
#include <stdint.h>

/** How often the replica is checked (ms). */
#define NB_REPLICA_CHECK_MS 500

typedef struct nb_replica_stats {
	bool configured;
	bool up;              /* the last check succeeded (and no request found it broken since) */
	bool usable;          /* up, recent and within the lag bound: reads go there */
	double lag_s;         /* lower bound of how far it is behind (0 when caught up or not configured) */
	uint64_t lag_bytes;   /* WAL bytes behind at the last check */
	uint64_t replica_reads; /* read-only requests served by the replica */
	uint64_t primary_reads; /* read-only requests served by the primary */
	uint64_t fallbacks;   /* requests moved to the primary when a replica statement failed */
	long users_tracked;   /* users whose recent writes keep their reads on the primary */
} nb_replica_stats_t;

/**
 * Starts checking the replica at replica_url against the primary at
 * primary_url (connections of its own, off the request path); reads are
 * refused the replica until the first good check. max_lag_ms bounds the lag.
 * 0, or -1 when the thread cannot start. Once per process.
 */
int nb_replica_start(const char *primary_url, const char *replica_url, int max_lag_ms);
/** Stops the checks (joins the thread). Safe without a start. */
void nb_replica_stop(void);
/** True between start and stop. */
bool nb_replica_configured(void);

/**
 * May a read of user uid (NULL: no user) go to the replica now? False when
 * the replica is unusable, or when uid wrote after the replica's safe_before
 * (its own writes may not be replayed yet).
 */
bool nb_replica_usable_for(const char *uid);
/** A request of uid that may have written has finished (its commit is done). Call after the commit. */
void nb_replica_note_write(const char *uid);
/**
 * A request moved from the replica to the primary because a statement failed
 * there. broken (the connection was lost): reads go to the primary until the
 * next good check; else (a conflict with recovery) only that request moved.
 */
void nb_replica_fallback(bool broken);
/** Counts a read-only request served by the replica (true) or the primary (false). */
void nb_replica_count_read(bool replica);
/** Snapshot for /metrics. */
void nb_replica_stats(nb_replica_stats_t *out);

#endif
