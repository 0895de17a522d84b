/*
 * replica_lag.h — how far a streaming replica is behind, from WAL positions
 * sampled off the request path (pure logic, no I/O; src/db/replica.c feeds it).
 *
 * Design: every check takes the primary's WAL position P (noting the time t
 * just BEFORE asking, so every commit that finished before t is <= P), then
 * the replica's replay position R. Samples not yet covered by R are kept in
 * time order. From them:
 *   - safe_before: the time of the newest sample with P <= R. Every commit
 *     that finished before it has been replayed on the replica: a user whose
 *     last write ended before safe_before may read from the replica
 *     (read-your-writes without any statement on the request path);
 *   - lag: now minus the time of the oldest sample the replica has not
 *     reached (0 when it has reached them all). The replica is at least that
 *     far behind, and at most one check interval more.
 * An idle primary does not move P, so an idle, caught-up replica has lag 0
 * however old its last replayed transaction is (unlike
 * now() - pg_last_xact_replay_timestamp()).
 */
#ifndef NB_DB_REPLICA_LAG_H
#define NB_DB_REPLICA_LAG_H

#include <stdbool.h>
#include <stdint.h>

#define NB_RLAG_SAMPLES 128

typedef struct nb_rlag {
	struct {
		int64_t t_ms;  /* monotonic, taken before the primary was asked */
		uint64_t lsn;  /* the primary's WAL position then */
	} s[NB_RLAG_SAMPLES];
	int n;                 /* samples not yet covered, oldest first */
	int64_t safe_before_ms; /* 0: none covered yet */
	uint64_t replay_lsn;   /* the replica's last known replay position (0: unknown) */
	int64_t lag_ms;
	uint64_t lag_bytes;    /* the newest sample minus replay_lsn (0 when covered) */
} nb_rlag_t;

/** Parses a pg_lsn text ("16/B374D848") into *out. 0, or -1 when malformed. */
int nb_lsn_parse(const char *text, uint64_t *out);

/** Starts empty (nothing known: safe_before 0, lag 0). */
void nb_rlag_init(nb_rlag_t *t);

/**
 * Records the primary's position lsn asked for at t_ms. A position below the
 * newest sample (another primary: a failover) drops the samples. When the
 * table is full the sample is not kept (safe_before then advances only as
 * older samples are covered: never too early).
 */
void nb_rlag_primary(nb_rlag_t *t, int64_t t_ms, uint64_t lsn);

/**
 * Records the replica's replay position (or, with known false, recomputes
 * the lag at now_ms from the last known one), drops the samples it covers,
 * advances safe_before and sets lag_ms and lag_bytes.
 */
void nb_rlag_replica(nb_rlag_t *t, int64_t now_ms, uint64_t replay_lsn, bool known);

#endif
