/*
 * worker_run.c — the fetcher, which claims jobs in batches into the local
 * queue, and the runners, which run their handlers (see worker.c for the
 * picture, README.md for the batch sizes).
 *
 * A handler that lost the database (nb_job_ctx_conn found none, or its
 * connection broke) is not charged an attempt: its outcome is a hand-back
 * a second later, and the runners pause until the database answers again
 * instead of burning through the local queue.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "db/db.h"
#include "jobs/stats.h"
#include "jobs/worker_internal.h"
#include "store/jobs.h"

/* ---- the fetcher -------------------------------------------------------- */

static nb_job_fn handler_of(nb_workers_t *w, const char *kind)
{
	for (int i = 0; i < w->nkinds; i++)
		if (strcmp(w->kinds[i], kind) == 0)
			return w->fns[i];
	return NULL;
}

/*
 * One claim of up to `room` jobs into batch[0 .. *n). When the batch is not
 * full, also asks when the next waiting job is due. Returns 0 or an error;
 * *next_ms as nb_store_jobs_next_due (-1: none, or unknown).
 */
static int claim(nb_workers_t *w, nb_job_t *batch, int room, int *n, int64_t *next_ms)
{
	nb_conn_t *c = NULL;
	*n = 0;
	*next_ms = -1;
	int rc = nb_pool_acquire(w->pool, &c);
	if (rc < 0)
		return rc;
	rc = nb_store_jobs_claim(c, w->name, w->o.lease_ms, w->kindp, w->nkinds, room, batch, n);
	if (rc == 0 && *n < room)
		rc = nb_store_jobs_next_due(c, w->kindp, w->nkinds, next_ms);
	nb_pool_release(w->pool, c);
	return *n > 0 ? 0 : rc; /* claimed jobs must run even if the second statement failed */
}

/* Moves claimed rows into slots on the local queue. Called with the lock held. */
static void enqueue_local(nb_workers_t *w, nb_job_t *batch, int n)
{
	for (int i = 0; i < n; i++) {
		slot_t *s = nb_xcalloc(1, sizeof *s);
		s->job = batch[i];
		s->fn = handler_of(w, s->job.kind);
		s->state = SLOT_QUEUED;
		if (w->q_tail)
			w->q_tail->next = s;
		else
			w->q_head = s;
		w->q_tail = s;
		w->queued++;
		nb_workers__held_add(w, s);
	}
	w->st.claimed += (uint64_t)n;
	w->st.claim_stmts++;
	if (n == 1)
		pthread_cond_signal(&w->work_cv);
	else if (n > 1)
		pthread_cond_broadcast(&w->work_cv);
}

/* Jobs to hold beyond the handlers now. Called with the lock held. */
static int prefetch_locked(const nb_workers_t *w)
{
	int max = w->o.prefetch_max;
	if (w->o.prefetch_ms <= 0)
		return max;
	/* Nothing measured yet: one job beyond the handlers. A job held in this
	 * process's local queue waits for this process's handlers, whoever waits
	 * behind it in the table: jobs of unknown duration (a cold worker, large
	 * uploads) must not pile up there ahead of another user's. */
	if (w->avg_us <= 0)
		return max < 1 ? max : 1;
	int64_t n = (int64_t)w->o.concurrency * w->o.prefetch_ms * 1000 / w->avg_us;
	return n < max ? (int)n : max;
}

void *nb_workers__fetch_main(void *arg)
{
	nb_workers_t *w = arg;
	nb_job_t *batch = nb_xcalloc((size_t)(w->o.concurrency + w->o.prefetch_max), sizeof *batch);
	bool more = true; /* nothing known yet: look at once */
	int64_t wake_at = 0;
	pthread_mutex_lock(&w->mu);
	while (!w->stopping) {
		/* Double-buffered: the next batch is claimed while up to `pf` jobs
		 * are still queued, so handlers do not idle during the claim. */
		int pf = prefetch_locked(w);
		/* cold (no duration measured): one buffer, so at most one job waits locally */
		int room = w->o.concurrency + (w->avg_us > 0 ? 2 : 1) * pf - w->queued - w->running;
		if (room > w->o.concurrency + pf)
			room = w->o.concurrency + pf;
		if (w->queued > pf || room <= 0) {
			nb_workers__cv_wait_until(&w->fetch_cv, &w->mu, NEVER); /* a runner signals room */
			continue;
		}
		if (!more && !w->notified && nb_mono_ms() < wake_at) {
			nb_workers__cv_wait_until(&w->fetch_cv, &w->mu, wake_at);
			continue;
		}
		w->notified = false;
		pthread_mutex_unlock(&w->mu);

		int n = 0;
		int64_t next_ms = -1;
		int rc = claim(w, batch, room, &n, &next_ms);
		int64_t now = nb_mono_ms();
		more = rc == 0 && n == room;
		if (rc < 0)
			wake_at = now + (w->o.poll_ms < DB_RETRY_MS ? w->o.poll_ms : DB_RETRY_MS);
		else if (next_ms < 0 || next_ms >= w->o.poll_ms)
			wake_at = now + w->o.poll_ms;
		else
			wake_at = now + (next_ms < RECHECK_MS ? RECHECK_MS : next_ms);

		pthread_mutex_lock(&w->mu);
		enqueue_local(w, batch, n);
	}
	pthread_mutex_unlock(&w->mu);
	free(batch);
	return NULL;
}

/* ---- runners ------------------------------------------------------------- */

nb_conn_t *nb_job_ctx_conn(nb_job_ctx_t *ctx)
{
	if (ctx->conn)
		return ctx->conn;
	if (nb_pool_acquire(ctx->w->pool, &ctx->conn) < 0) {
		ctx->conn = NULL;
		ctx->unavailable = true;
		return NULL;
	}
	/* so that a stop past its deadline can cancel what the handler waits on */
	PGcancel *cn = PQgetCancel(nb_conn_pg(ctx->conn));
	pthread_mutex_lock(&ctx->w->mu);
	ctx->slot->cancel = cn;
	pthread_mutex_unlock(&ctx->w->mu);
	return ctx->conn;
}

bool nb_job_ctx_stopping(nb_job_ctx_t *ctx)
{
	return atomic_load(&ctx->w->hard_stop);
}

static void run_job(nb_workers_t *w, slot_t *s)
{
	char rid[48];
	snprintf(rid, sizeof rid, "job:%s", s->job.id);
	nb_log_set_request_id(rid);
	nb_job_ctx_t ctx = {w, s, NULL, false};
	s->err[0] = '\0';
	int64_t t0 = nb_mono_us();
	if (s->fn) {
		s->rc = s->fn(&s->job, &ctx, s->err, sizeof s->err);
	} else { /* cannot happen: the claim asks only for registered kinds */
		s->rc = NB_JOB_PERMANENT;
		snprintf(s->err, sizeof s->err, "no handler for job kind \"%s\"", s->job.kind);
	}
	/* A failure while the database was away is not the job's: hand it back. */
	const char *state = nb_db_sqlstate(); /* 08: connection exception, 57P: the server shutting down */
	bool conn_error = !strncmp(state, "08", 2) || !strncmp(state, "57P", 3);
	s->db_lost = s->rc < 0 && s->rc != NB_JOB_PERMANENT &&
		     (ctx.unavailable || conn_error || nb_conn_is_broken(ctx.conn));
	pthread_mutex_lock(&w->mu);
	PGcancel *cn = s->cancel;
	s->cancel = NULL;
	pthread_mutex_unlock(&w->mu);
	if (cn)
		PQfreeCancel(cn);
	if (ctx.conn)
		nb_pool_release(w->pool, ctx.conn);
	if (s->rc > 0)
		s->rc = 0;
	if (s->rc < 0 && !s->err[0])
		snprintf(s->err, sizeof s->err, "job handler failed (%d)", s->rc);
	nb_job_outcome_t out = NB_JOB_OUT_RETRY;
	if (s->db_lost)
		out = NB_JOB_OUT_DEFERRED;
	else if (s->rc == 0)
		out = NB_JOB_OUT_SUCCEEDED;
	else if (nb_job_fails_for_good(&s->job, s->rc))
		out = NB_JOB_OUT_DEAD;
	nb_jobs_stats_record(s->job.kind, out, nb_mono_us() - t0);
	if (s->db_lost)
		nb_warn("job %s (%s) lost the database (%s); it runs again once the database answers, attempt not"
			" counted",
			s->job.id, s->job.kind, s->err);
	else if (s->rc < 0)
		nb_warn("job %s (%s) attempt %d of %d failed: %s", s->job.id, s->job.kind, s->job.attempts,
			s->job.max_attempts, s->err);
	else
		nb_debug("job %s (%s) succeeded", s->job.id, s->job.kind);
	nb_log_set_request_id(NULL);
}

/*
 * While a handler has found the database gone, runners take no job: each
 * probes the pool (which backs off its connects) every DB_RETRY_MS until a
 * connection comes, or the set stops. Lock held.
 */
static void wait_for_database_locked(nb_workers_t *w)
{
	while (w->db_down && !w->stopping) {
		pthread_mutex_unlock(&w->mu);
		nb_conn_t *c = NULL;
		bool up = nb_pool_acquire_timeout(w->pool, DB_RETRY_MS, &c) == 0;
		nb_pool_release(w->pool, c);
		pthread_mutex_lock(&w->mu);
		if (up) {
			if (w->db_down)
				nb_info("job workers %s: the database answers again; running jobs", w->name);
			w->db_down = false;
			w->notified = true; /* what was handed back meanwhile is due soon */
			pthread_cond_broadcast(&w->work_cv);
			pthread_cond_signal(&w->fetch_cv);
			break;
		}
		nb_workers__nap_locked(w, DB_RETRY_MS, &w->stopping);
	}
}

void *nb_workers__run_main(void *arg)
{
	nb_workers_t *w = arg;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		wait_for_database_locked(w);
		while (!w->q_head && !w->stopping)
			pthread_cond_wait(&w->work_cv, &w->mu);
		if (w->db_down && !w->stopping)
			continue;
		if (w->stopping) /* jobs still queued are handed back by nb_workers_stop */
			break;
		slot_t *s = w->q_head;
		w->q_head = s->next;
		if (!w->q_head)
			w->q_tail = NULL;
		s->next = NULL;
		w->queued--;
		w->running++;
		s->state = SLOT_RUNNING;
		pthread_cond_signal(&w->fetch_cv);
		pthread_mutex_unlock(&w->mu);

		int64_t t0 = nb_mono_us();
		run_job(w, s);
		int64_t us = nb_mono_us() - t0 + 1;

		pthread_mutex_lock(&w->mu);
		w->running--;
		if (s->db_lost)
			w->db_down = true;
		else
			w->avg_us = w->avg_us ? (w->avg_us * 7 + us) / 8 : us;
		if (s->handed_back) { /* rare: only at a stop that ran out of time */
			nb_info("job %s returned after it was handed back; its outcome is discarded", s->job.id);
			nb_workers__held_remove(w, s);
			nb_workers__slot_free(s);
		} else {
			s->state = SLOT_DONE;
			if (w->d_tail)
				w->d_tail->next = s;
			else
				w->d_head = s;
			w->d_tail = s;
			pthread_cond_signal(&w->done_cv);
		}
		pthread_cond_signal(&w->fetch_cv);
		pthread_cond_signal(&w->idle_cv);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

