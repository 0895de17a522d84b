/*
 * pool.h — a PostgreSQL connection pool over libpq.
 *
 * Design: a mutex-protected LIFO stack of idle connections (the most recently
 * used is reused first, so the oldest surplus ones go idle and get closed),
 * `size` connections kept, up to `overflow` more opened under load and closed
 * once idle for `overflow_idle_ms`. Acquire waits on a condition variable
 * until `acquire_timeout_ms`, then fails with NB_EUNAVAIL (never hangs).
 *
 * On acquire an idle connection is checked without a round trip (its socket
 * must be silent: a backend killed by pg_terminate_backend has already sent
 * its FATAL message and EOF), pinged with an empty query when idle longer
 * than `preping_idle_ms`, and replaced when older than `max_age_ms`. A dead
 * connection is replaced transparently. When connecting fails, the pool backs
 * off (100 ms doubling to 5 s) and fails fast meanwhile, so an unreachable
 * database costs callers no connect timeout each.
 *
 * Every connection has statement_timeout and
 * idle_in_transaction_session_timeout set at connect time (db/connect.h).
 * Internals shared with db.c and pipe.c are in pool_internal.h.
 * Thread-safe.
 */
#ifndef NB_DB_POOL_H
#define NB_DB_POOL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/metrics.h"

typedef struct nb_pool nb_pool_t;
typedef struct nb_conn nb_conn_t;

typedef struct nb_pool_opts {
	const char *conninfo;  /* libpq connection string or URI (copied) */
	const char *application_name;
	int size;              /* connections kept open */
	int overflow;          /* extra connections allowed under load */
	int acquire_timeout_ms;
	int preping_idle_ms;   /* ping connections idle longer than this (0: always) */
	int max_age_ms;        /* recycle connections older than this */
	int overflow_idle_ms;  /* close surplus connections idle this long */
	int statement_timeout_ms;
	int idle_in_tx_timeout_ms;
	int connect_timeout_s;
	int pipe_lock_timeout_ms; /* lock_timeout of the pipelined connections (pipe.h); 0: none */
	/*
	 * Async pools belong to one event-loop thread and are used only from
	 * coroutines on it (core/sched.h): connecting, waiting for a free
	 * connection and every statement yield instead of blocking, and the
	 * connections are in libpq's non-blocking mode.
	 */
	bool async;
	/*
	 * Connect failures of this pool are not the primary's (a read replica's
	 * pools): they neither consult nor feed the circuit breaker (db/breaker.h).
	 */
	bool no_breaker;
} nb_pool_opts_t;

typedef struct nb_pool_stats {
	int in_use;
	int idle;
	int waiting;
	int total;
	uint64_t acquires;
	uint64_t timeouts;         /* acquires that gave up */
	uint64_t created;
	uint64_t closed;
	uint64_t replaced_dead;    /* dead connections found and replaced on acquire */
	uint64_t connect_failures;
	uint64_t wait_us_total;    /* total time callers waited in acquire */
	uint64_t cancels;          /* statements cancelled at their request's deadline */
	uint64_t shed;             /* waits refused at once: they would have outlasted their deadline */
} nb_pool_stats_t;

/** Fills opts from nb_cfg (the environment) with the given conninfo. */
void nb_pool_opts_from_config(nb_pool_opts_t *o, const char *conninfo);
/** Creates a pool; opens no connection yet. Never fails (aborts on OOM). */
nb_pool_t *nb_pool_create(const nb_pool_opts_t *o);
/** Closes every connection and frees the pool. All connections must be released. Accepts NULL. */
void nb_pool_destroy(nb_pool_t *p);
/**
 * Hands out a healthy connection in *out. Returns 0, or NB_EUNAVAIL when the
 * wait exceeded the acquire timeout or the database cannot be reached.
 * The caller must nb_pool_release it on every path.
 */
int nb_pool_acquire(nb_pool_t *p, nb_conn_t **out);
/** Same with an explicit timeout (ms). */
int nb_pool_acquire_timeout(nb_pool_t *p, int timeout_ms, nb_conn_t **out);
/**
 * Same, waiting no longer than the acquire timeout nor past deadline_mono_ms
 * (a request's deadline; 0: none), and setting that deadline on the
 * connection (nb_conn_set_deadline). With `shed` and a deadline, an async
 * pool refuses at once (NB_EUNAVAIL, counted in `shed`) a wait it predicts
 * would outlast the deadline (see pool.c).
 */
int nb_pool_acquire_by(nb_pool_t *p, int64_t deadline_mono_ms, bool shed, nb_conn_t **out);
/**
 * Gives a connection back. A connection left inside a transaction is rolled
 * back; a broken or expired one is closed. Accepts NULL.
 */
void nb_pool_release(nb_pool_t *p, nb_conn_t *c);
/** Snapshot of the counters. */
void nb_pool_stats(nb_pool_t *p, nb_pool_stats_t *s);
/** Adds the pool's acquire-wait histogram (every acquire, timed-out ones included) into s. Lock-free. */
void nb_pool_wait_histo(nb_pool_t *p, nb_histo_snap_t *s);
/** Closes idle surplus and expired connections now (also done on release). */
void nb_pool_reap(nb_pool_t *p);

/** The libpq connection inside (owned by the pool). */
PGconn *nb_conn_pg(nb_conn_t *c);
/** Marks a connection broken so release closes it. */
void nb_conn_mark_broken(nb_conn_t *c);
/**
 * Sets the deadline (monotonic ms, core/timeutil.h; 0: none) of the request
 * that holds c. Every wait of a statement on c — taking a connection of the
 * pool, a pipelined statement's answer, an exclusive connection's answer —
 * ends by then: a pipelined statement is abandoned (its connection, shared
 * with other requests, stays up), a statement on a connection of its own is
 * cancelled (PQcancel, off the loop) and its result collected so that the
 * connection goes back to the pool clean. A statement started after the
 * deadline fails at once. Those fail with NB_ETIMEOUT (SQLSTATE 57014).
 * Clean-up (ROLLBACK, release) is never cut short. Accepts NULL.
 */
void nb_conn_set_deadline(nb_conn_t *c, int64_t deadline_mono_ms);
/** True when the connection under c has failed (the database went away). Accepts NULL (false). */
bool nb_conn_is_broken(nb_conn_t *c);
/** Statements run through c since it was acquired (the X-DB-Statements count). Accepts NULL (0). */
int nb_conn_statements(nb_conn_t *c);

/**
 * Marks c as inside a transaction its holder opened (the API's idempotency
 * record wraps a handler's writes): while set, nb_db_begin / nb_db_commit /
 * nb_db_rollback become SAVEPOINT / RELEASE / ROLLBACK TO, so a handler's own
 * transaction nests inside the holder's, which commits or rolls back the
 * whole. The holder clears it before its own COMMIT or ROLLBACK. Accepts NULL.
 */
void nb_conn_set_outer_tx(nb_conn_t *c, bool on);
/** True while c is marked by nb_conn_set_outer_tx. Accepts NULL (false). */
bool nb_conn_outer_tx(const nb_conn_t *c);

struct nb_pipe;
/**
 * A request's handle on an async pool with pipelining: statements outside a
 * transaction go through the pipe (shared connections); BEGIN takes a
 * connection of the pool for the request until COMMIT or ROLLBACK. Never
 * fails; release it with nb_pool_release.
 */
nb_conn_t *nb_pool_acquire_virtual(nb_pool_t *p, struct nb_pipe *pipe);
/**
 * Virtual handles: whether a wait for a pool connection that would outlast
 * the request's deadline is refused at once (the default, on) or waits to
 * the deadline (off: health checks, which must never be shed). Accepts NULL.
 */
void nb_conn_set_shed(nb_conn_t *c, bool on);

/**
 * A virtual handle on a read replica's pool: where its statements go instead
 * when one fails on the replica outside a transaction (the connection lost,
 * or a conflict with recovery, SQLSTATE 40001): the handle moves for good to
 * pool and pipe (the primary's), the statement runs again there, and
 * db/replica.h is told (nb_replica_fallback). Accepts NULL.
 */
void nb_conn_set_fallback(nb_conn_t *c, nb_pool_t *pool, struct nb_pipe *pipe);

#endif
