/*
 * jobs.h — the jobs aggregate: every statement of the job queue.
 *
 * The queue's semantics (claiming, leases, retries, the delivery guarantee)
 * are described in jobs/queue.h and jobs/README.md; this file only runs the
 * statements. Each function is one autocommit statement on the caller's
 * connection (or runs inside the caller's transaction, for enqueueing), so no
 * queue transaction ever stays open while a handler runs.
 *
 * Completion statements take the worker's name and only touch rows whose
 * locked_by still names it: a worker whose lease expired, and whose job was
 * re-claimed by another, cannot complete it.
 *
 * Functions return 0 or a negative nb_err_t: NB_ENOTFOUND, NB_EINVALID,
 * NB_EUNAVAIL (connection lost), NB_ETIMEOUT, NB_EDB (anything else, logged).
 */
#ifndef NB_STORE_JOBS_H
#define NB_STORE_JOBS_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/jsonw.h"
#include "db/pool.h"

/** The LISTEN/NOTIFY channel that announces ready jobs. */
#define NB_JOBS_CHANNEL "nb_jobs"

/** A claimed job, as a handler sees it. */
typedef struct nb_job {
	char id[37], kind[32], user_id[37];
	char source_id[37], document_id[37], quiz_id[37], study_guide_id[37]; /* "" when NULL */
	json_t *payload; /* a jansson object, owned by the worker, valid during the handler */
	int attempts;	 /* including this one */
	int max_attempts;
} nb_job_t;

/** A new job row. Optional ids and payload may be NULL. */
typedef struct nb_store_job_new {
	const char *id, *user_id, *kind;
	const char *source_id, *document_id, *quiz_id, *study_guide_id;
	const char *payload_json; /* a JSON object; NULL: {} */
	int max_attempts;	  /* 1–100 */
	int delay_ms;		  /* run_at = now() + delay */
} nb_store_job_new_t;

/** One failed attempt to record. */
typedef struct nb_store_job_failure {
	const char *id;
	const char *error;
	int backoff_ms; /* retry at now() + backoff (ignored when it becomes dead) */
	bool permanent; /* dead now, whatever the attempts */
} nb_store_job_failure_t;

/**
 * Inserts a job and, unless it is delayed, sends NOTIFY on NB_JOBS_CHANNEL in
 * the same statement. Inside the caller's transaction the notification goes
 * out at commit (and not at all on rollback); identical notifications of one
 * transaction are folded into one by PostgreSQL.
 */
int nb_store_job_insert(nb_conn_t *c, const nb_store_job_new_t *j);

/**
 * Claims up to `limit` ready jobs of the given kinds in one statement
 * (FOR UPDATE SKIP LOCKED). Batches of up to 16 (slow jobs, when fairness
 * matters) are claimed fairly across users: among the oldest
 * max(64, 2 × limit) ready jobs (jobs_claim_idx, in run_at order), an owner's
 * next job goes after every other owner's next one, and owners with jobs
 * running go after those with fewer (round robin); larger batches (jobs
 * measured short) first in, first out. Each becomes
 * running, attempts + 1, locked by `worker` until now() + lease_ms. Fills
 * out[0 .. *n) (out has room for `limit`); each out[i].payload is a new
 * reference the caller releases with json_decref.
 */
int nb_store_jobs_claim(nb_conn_t *c, const char *worker, int lease_ms, const char *const *kinds, int nkinds, int limit,
			nb_job_t *out, int *n);

/**
 * Milliseconds until the earliest waiting (pending or failed) job of these
 * kinds is due: 0 when one is due now (but was locked by another claimer),
 * -1 when there is none.
 */
int nb_store_jobs_next_due(nb_conn_t *c, const char *const *kinds, int nkinds, int64_t *ms);

/** Marks these running jobs of `worker` succeeded. *done = rows changed (the others lost their lease). */
int nb_store_jobs_succeed(nb_conn_t *c, const char *worker, const char *const *ids, int n, int *done);

/**
 * Records failed attempts of `worker`'s running jobs: 'failed' with run_at =
 * now() + backoff, or 'dead' with finished_at when attempts reached
 * max_attempts or the failure is permanent; last_error keeps the reason.
 * *done = rows changed, *dead = of which dead.
 */
int nb_store_jobs_fail(nb_conn_t *c, const char *worker, const nb_store_job_failure_t *f, int n, int *done, int *dead);

/** Extends the lease of `worker`'s running jobs to now() + lease_ms. *extended = rows changed. */
int nb_store_jobs_heartbeat(nb_conn_t *c, const char *worker, const char *const *ids, int n, int lease_ms,
			    int *extended);

/**
 * Hands `worker`'s running jobs back (graceful shutdown, or a handler that
 * lost the database): status back to pending (or failed when an earlier
 * attempt failed), attempts - 1 (the interrupted attempt does not count),
 * locks cleared, run_at unchanged (delay_ms 0) or now() + delay_ms; then
 * NOTIFY so that other workers take them. *count = rows changed.
 */
int nb_store_jobs_handback(nb_conn_t *c, const char *worker, const char *const *ids, int n, int delay_ms,
			   int *count);

/**
 * The reaper: up to `limit` running jobs whose lease expired become 'failed'
 * (run_at = now(), last_error 'lease expired (worker lost)'), or 'dead' when
 * they had no attempts left; NOTIFY when any was re-queued.
 */
int nb_store_jobs_reap(nb_conn_t *c, int limit, int *requeued, int *dead);

/** LISTEN on NB_JOBS_CHANNEL on a dedicated libpq connection (not a pooled one). 0 or NB_EUNAVAIL. */
int nb_store_jobs_listen(PGconn *pg);

/**
 * One job as API JSON {id, kind, status, attempts, max_attempts, last_error,
 * run_at, created_at, updated_at, finished_at} (*out owned by the caller),
 * scoped to its owner: NB_ENOTFOUND when missing, malformed or another user's.
 */
int nb_store_job_get(nb_conn_t *c, const char *user_id, const char *job_id, json_t **out);

/** True for a job status: pending, running, succeeded, failed or dead. */
bool nb_store_jobs_status_known(const char *s);
/**
 * A user's jobs, newest first (created_at DESC, id DESC), at most `limit`
 * (1–100), as binary rows (up to limit + 1: the extra one tells that a next
 * page exists) for nb_store_jobs_write, without a JSON tree (GET /v1/jobs).
 * `status` (NULL: any) filters; NB_EINVALID for an unknown status. Keyset
 * pagination: `after_id` (NULL for the first page) is the id of the last item
 * of the previous page; the page holds the jobs after it in this order (a
 * cursor naming no job of this user gives an empty page; a malformed id is
 * NB_EINVALID). *rows is NULL (an empty page) for a malformed user id; the
 * caller PQclears it.
 */
int nb_store_jobs_list_rows(nb_conn_t *c, const char *user_id, const char *status, int limit,
			    const char *after_id, PGresult **rows);
/** Writes the job of `row` of a nb_store_jobs_list_rows result; its cursor key is "j" and its id. */
void nb_store_jobs_write(nb_jsonw_t *w, const PGresult *r, int row, char key_out[40], char id_out[37]);

#endif
