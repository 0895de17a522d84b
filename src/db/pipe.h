/*
 * pipe.h — statements of many coroutines pipelined on a few shared
 * connections (libpq pipeline mode).
 *
 * On an event loop, most requests run a handful of autocommit statements.
 * Instead of giving each request a connection of its own, a coroutine
 * appends its statement (and, on first use on that connection, the PREPARE)
 * plus a sync point to the least-loaded pipelined connection of its loop and
 * parks. Everything appended during one loop iteration is flushed with one
 * write; the backend answers them back to back, and the results are handed
 * out in order as they arrive. One round trip and one wake-up of each side
 * then serve many requests.
 *
 * Read-only statements (nb_db_sql_read_only) sent in one loop iteration to
 * one connection share one sync point: the backend runs them in one
 * implicit transaction and commits and flushes once for the batch instead of
 * once per statement. Any other statement has a sync point of its own, and
 * completes only once committed. A statement that fails aborts the rest of
 * its batch: those never ran and are sent again, each behind its own sync
 * point, so one request's error costs another request a second round trip,
 * never its answer. A backend answers in order, so one slow
 * statement holds up those behind it: statements declared NB_STMT_SLOW never
 * come here, and a connection that had answered nothing when the loop polled
 * 50 ms after its last answer is passed over (NB_EBUSY when all are, and the
 * caller then uses a connection of its own); a long queue that keeps moving
 * is load, not a slow statement, and stays. The pipelined connections have a short lock_timeout
 * (NOTEBOOKD_DB_PIPELINE_LOCK_TIMEOUT_MS), so a statement waiting on a lock
 * holds a pipeline briefly: it fails with 55P03 and db.c runs it again on a
 * connection of its own. A coroutine whose request passes its deadline
 * abandons its statement (NB_ETIMEOUT) without disturbing the connection or
 * the statements queued with it. Only a server that does not answer within
 * statement_timeout + 5 s breaks the connection: that fails the statements
 * waiting on it (NB_EUNAVAIL), and it is reconnected on next use. Transactions
 * need a connection of their own and do not come here (see pool.h,
 * nb_pool_acquire_virtual).
 */
#ifndef NB_DB_PIPE_H
#define NB_DB_PIPE_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "db/pool.h"

typedef struct nb_pipe nb_pipe_t;

typedef struct nb_pipe_stats {
	uint64_t statements; /* sent */
	uint64_t flushes;    /* writes that carried them */
	uint64_t syncs;      /* sync points sent (one per batch of reads, one per other statement) */
	uint64_t resent;     /* statements sent again: an earlier one of their batch failed */
	uint64_t failures;   /* connections lost */
	uint64_t abandoned;  /* statements given up at their request's deadline */
	int connections;     /* open now */
	int pending;         /* statements waiting for results now */
} nb_pipe_stats_t;

/**
 * Creates the pipelined connections of the calling thread's loop (opened on
 * first use, from a coroutine): nconns of them, connected like the pool's.
 */
nb_pipe_t *nb_pipe_create(nb_pool_t *pool, int nconns);
/** Closes the connections quietly (their waiters get NB_EUNAVAIL). Loop thread. Accepts NULL. */
void nb_pipe_destroy(nb_pipe_t *pp);
/**
 * Runs a prepared statement through the pipeline, from a coroutine of the
 * pipe's loop, yielding until its result is in or deadline_ms (monotonic;
 * 0: none) passes (NB_ETIMEOUT; the statement is abandoned, its connection
 * kept). read_only: it writes nothing, takes no row lock and reads no
 * transaction clock, so it may share a sync point with other reads. Results
 * and errors as nb_db_exec (rfmt 1: binary results); NB_EBUSY when every
 * pipelined connection is held up by a slow statement.
 */
int nb_pipe_exec(nb_pipe_t *pp, int stmt_id, const char *name, const char *sql, bool read_only, int nparams,
		 const char *const *values, const int *lengths, const int *formats, int rfmt, int64_t deadline_ms,
		 PGresult **res);
/** Counters. */
void nb_pipe_stats(nb_pipe_t *pp, nb_pipe_stats_t *out);

#endif
