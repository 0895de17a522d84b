/*
 * worker.h — a set of job workers in this process.
 *
 * One set is: `concurrency` handler threads, a fetcher that claims jobs in
 * batches, a completer that records outcomes in batches, a listener on the
 * queue's NOTIFY channel and a maintenance thread (lease heartbeats and the
 * reaper). `notebookd worker` runs one set; `notebookd serve` may run one
 * next to the HTTP server; several processes may run sets against the same
 * database. See queue.h for the delivery guarantee and README.md for the
 * design.
 */
#ifndef NB_JOBS_WORKER_H
#define NB_JOBS_WORKER_H

#include <stdint.h>

#include "db/pool.h"

typedef struct nb_workers nb_workers_t;

/** Tuning of a worker set; nb_workers_opts_default fills it from nb_cfg. */
typedef struct nb_workers_opts {
	int concurrency;      /* handler threads, >= 1 */
	const char *name;     /* prefix of locked_by ("<name>@<host>:<pid>/<random>") */
	int lease_ms;	      /* NOTEBOOKD_JOB_LEASE_S; heartbeats every lease/3 */
	int poll_ms;	      /* NOTEBOOKD_JOB_POLL_MS: the safety net behind LISTEN/NOTIFY */
	int prefetch_max;     /* most jobs claimed beyond free handlers (default 64) ... */
	int prefetch_ms;      /* ... and no more than they should finish within this (default 50; 0: no limit) */
	int backoff_base_ms;  /* retry n waits base * 2^(n-1) ± 50 % (default 1000) */
	int backoff_max_ms;   /* … capped here (default 600000) */
	int reap_interval_ms; /* reaper period (default min(5000, lease/2)) */
} nb_workers_opts_t;

/** Counters since start (approximate while running). */
typedef struct nb_workers_stats {
	uint64_t claimed;
	uint64_t succeeded;    /* recorded succeeded */
	uint64_t failed;       /* recorded failed (will be retried) */
	uint64_t dead;	       /* recorded dead */
	uint64_t lost;	       /* outcomes not recorded: the lease had gone to someone else */
	uint64_t handed_back;  /* re-queued by nb_workers_stop */
	uint64_t deferred;     /* re-queued because the handler lost the database (attempt not counted) */
	uint64_t reaped;       /* expired leases this process's reaper re-queued or buried */
	uint64_t claim_stmts;  /* claim statements run (claimed / claim_stmts: the batch size) */
	uint64_t record_stmts; /* outcome statements run */
} nb_workers_stats_t;

/**
 * The LISTEN connection's conninfo: NOTEBOOKD_LISTEN_DATABASE_URL, else
 * DATABASE_URL (LISTEN needs a session, which a transaction-pooling PgBouncer
 * does not keep: point it straight at PostgreSQL there).
 */
const char *nb_workers_listen_url(void);

/** Fills o from the configuration. name is kept by pointer. */
void nb_workers_opts_default(nb_workers_opts_t *o, int concurrency, const char *name);

/**
 * Starts a worker set. pool must be a blocking pool (opts.async = false)
 * that outlives the set, with room for concurrency + 3 connections
 * (handlers may each hold one; fetcher, completer and maintenance one each
 * while they run a statement). conninfo_for_listen is the libpq connection
 * string of the dedicated LISTEN connection (NULL: no listener, poll only).
 * The listener and the pool reconnect by themselves: starting does not need
 * the database. The set claims only kinds registered (nb_jobs_register)
 * before this call. Never fails (aborts on OOM or when threads cannot start).
 * It also starts the scheduled retention (jobs/retention.h) on the same pool,
 * which takes one more connection while it runs; nb_workers_start_opts does not.
 */
nb_workers_t *nb_workers_start(nb_pool_t *pool, const char *conninfo_for_listen, int concurrency,
			       const char *worker_name);
/** Connections a pool for nb_workers_start needs beyond `concurrency`: fetcher, completer, maintenance, retention. */
#define NB_WORKERS_EXTRA_CONNS 4
/** Same with explicit options (copied). */
nb_workers_t *nb_workers_start_opts(nb_pool_t *pool, const char *conninfo_for_listen, const nb_workers_opts_t *o);

/**
 * Starts stopping without waiting: claims nothing more from now on, and idle
 * handler threads exit (jobs already running go on). Safe from any thread,
 * e.g. the HTTP server's on_shutdown hook, so that workers stop claiming at
 * the signal while requests drain. nb_workers_stop must still follow. Accepts NULL.
 */
void nb_workers_begin_stop(nb_workers_t *w);

/**
 * Stops the set: claims nothing more; jobs claimed but not started are handed
 * back at once; running jobs may finish within timeout_ms, and the rest are
 * handed back (re-queued: status pending, or failed if an earlier attempt
 * failed; attempts not counted; locks cleared) and their handlers told to
 * return (nb_job_ctx_stopping); outcomes already known are written; then
 * every thread is joined and the set freed. Joining waits for handlers to
 * return — a handler that never returns blocks it. Accepts NULL.
 */
void nb_workers_stop(nb_workers_t *w, int timeout_ms);
/**
 * The same with an absolute deadline (monotonic ms, core/timeutil.h), so that
 * one shutdown deadline counted from the signal covers the HTTP drain and the
 * jobs: running jobs may finish until then, hand-backs wait for a connection
 * until then (at least half a second).
 */
void nb_workers_stop_by(nb_workers_t *w, int64_t deadline_mono_ms);

/** A snapshot of the counters. */
void nb_workers_stats(nb_workers_t *w, nb_workers_stats_t *out);

/**
 * `notebookd worker [--concurrency N]`: runs a worker set until SIGTERM or
 * SIGINT, then stops it within NOTEBOOKD_SHUTDOWN_TIMEOUT_MS (a second signal
 * exits at once; leases rescue what was running). N defaults to
 * NOTEBOOKD_WORKERS if > 0, else 2. Expects nb_config_load and sodium_init
 * done. Returns the exit code: 0, 1 when DATABASE_URL is unset or the
 * database unreachable at start, 2 for bad arguments.
 */
int nb_jobs_cmd_worker(int argc, char **argv);

/**
 * What `notebookd worker` runs beside its job runners (main.c: the /metrics
 * listener). start is called once the worker's pool exists and the signals
 * are blocked (so threads it starts leave SIGTERM to the worker's sigwait);
 * it returns a handle, or NULL with a message printed to fail the command.
 * stop is called with that handle after the runners stopped.
 */
typedef struct nb_jobs_cli_side {
	void *(*start)(nb_pool_t *pool);
	void (*stop)(void *handle);
} nb_jobs_cli_side_t;
/** Sets the side service of nb_jobs_cmd_worker (call before it; NULL: none). */
void nb_jobs_cmd_worker_side(const nb_jobs_cli_side_t *side);

#endif
