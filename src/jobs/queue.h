/*
 * queue.h — the job queue: enqueueing, job kinds and their handlers.
 *
 * Jobs are rows of the `jobs` table; workers (jobs/worker.h) claim them with
 * FOR UPDATE SKIP LOCKED, run the handler registered for their kind, and
 * record the outcome. The design is in jobs/README.md.
 *
 * Delivery guarantee: AT LEAST ONCE. Here that means:
 *  - A committed job is never lost. It ends succeeded or dead, whatever
 *    happens to workers: a worker that crashes, is killed or loses the
 *    database holds its jobs only under a lease (locked_until, extended by
 *    heartbeats while it lives); once the lease expires a reaper in any worker
 *    process re-queues the job. A graceful stop hands running jobs back.
 *  - A job is run again only when its outcome was not recorded: the worker
 *    died or lost its lease during the handler, or after the handler returned
 *    but before its result was written (the window of one batched UPDATE), or
 *    a shutdown ran out of time and handed the running job back.
 *    Without such a failure every job runs exactly once; in the failure case a
 *    handler may run twice, possibly concurrently with a stalled former
 *    owner. Handlers must therefore be idempotent (write their results keyed
 *    by the job's target, in one transaction, or check before they redo).
 *  - A job is recorded complete at most once, and only by the worker holding
 *    its lease: every completion statement checks locked_by, so a worker whose
 *    job was rescued and re-claimed cannot overwrite the new attempt.
 *  - Failed attempts are retried with exponential backoff and jitter until
 *    max_attempts; a crash counts as an attempt (a job that kills its worker
 *    every time ends dead); a graceful hand-back does not, nor an attempt
 *    cut short by the database going away (see nb_job_ctx_conn).
 * There is no ordering guarantee beyond "roughly by run_at".
 */
#ifndef NB_JOBS_QUEUE_H
#define NB_JOBS_QUEUE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "db/pool.h"
#include "store/jobs.h" /* nb_job_t: the claimed row, as handlers see it */

/** A handler's return value: do not retry, the job is dead now. */
#define NB_JOB_PERMANENT (-1000)

/** Opaque: what a running handler may ask its worker for. */
typedef struct nb_job_ctx nb_job_ctx_t;

/**
 * A connection for the handler, acquired from the workers' pool on first
 * call (blocking, up to the pool's acquire timeout) and released by the
 * worker after the handler returns (a transaction left open is rolled back).
 * NULL when the database is unavailable (the pool is in its reconnect
 * backoff): return a failure then (e.g. NB_EUNAVAIL). A failure while the
 * database was away — no connection, a broken one, or SQLSTATE class 08/57P —
 * is not charged to the job: it is handed back (attempt not counted) to run
 * again a second after the database answers, and the worker set pauses until
 * then.
 */
nb_conn_t *nb_job_ctx_conn(nb_job_ctx_t *ctx);
/**
 * True once a shutdown has asked running jobs to hand back (the stop timeout
 * ran out): the job has already been re-queued, and whatever the handler
 * returns now is discarded. Long handlers should check it between steps and
 * return promptly.
 */
bool nb_job_ctx_stopping(nb_job_ctx_t *ctx);

/**
 * The queue's rule for a failed attempt, the C side of nb_store_jobs_fail's
 * SQL: true when a handler's failure rc (negative) leaves the job dead —
 * NB_JOB_PERMANENT, or its last attempt — and false when it runs again.
 */
bool nb_job_fails_for_good(const nb_job_t *job, int rc);

/**
 * A handler: returns 0 (succeeded) or a negative value with a readable reason
 * in err (retried with backoff, dead after max_attempts); NB_JOB_PERMANENT
 * means dead now. The job and its payload are valid during the call only.
 * Handlers run on worker threads, several at a time.
 */
typedef int (*nb_job_fn)(const nb_job_t *job, nb_job_ctx_t *ctx, char *err, size_t errlen);

/**
 * Sets the handler of a kind (replacing any earlier one). Call before the
 * workers start: they claim only jobs of kinds registered when they started.
 * The kind must also be allowed by the jobs table's CHECK constraint.
 * Aborts when the table of kinds (16) is full.
 */
void nb_jobs_register(const char *kind, nb_job_fn fn);
/**
 * Registers the test kinds 'noop' (succeeds) and 'fail' (always fails), for
 * tests and benchmarks; the binary does so only with NOTEBOOKD_DEBUG_ROUTES=1.
 */
void nb_jobs_register_test_kinds(void);

/** What to enqueue. */
typedef struct nb_job_spec {
	const char *kind, *user_id;
	const char *source_id, *document_id, *quiz_id, *study_guide_id; /* NULL for none */
	const char *payload_json;					/* a JSON object; NULL: {} */
	int max_attempts;						/* 0: NOTEBOOKD_JOB_MAX_ATTEMPTS */
	int delay_ms;							/* run_at = now() + delay */
} nb_job_spec_t;

/**
 * Inserts the job on c — inside the caller's open transaction when there is
 * one (the caller commits; a rollback leaves no job and sends nothing) — and
 * sends NOTIFY on the queue channel when it is due now. PostgreSQL folds
 * identical notifications of one transaction into one, so an enqueueing
 * transaction sends at most one whatever the number of jobs. Writes the new
 * id (a UUIDv7) into id_out. NB_EINVALID for a missing kind or user, a
 * payload that is not a JSON object or max_attempts outside 1–100; database
 * errors as nb_db_exec (an unknown kind or user violates a constraint: NB_EDB).
 */
int nb_jobs_enqueue(nb_conn_t *c, const nb_job_spec_t *spec, char id_out[37]);

/* Internal to jobs/: the registered kinds, copied for a set of workers. */
#define NB_JOBS_MAX_KINDS 16
/** Copies the registered kinds and handlers; returns how many. */
int nb_jobs__registered(char kinds[][32], nb_job_fn *fns, int max);

#endif
