/*
 * worker_complete.c — the completer, which writes outcomes in batches
 * (group commit), and the maintenance thread: lease heartbeats over the held
 * list and the reaper of expired leases.
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
#include "jobs/worker_internal.h"
#include "store/jobs.h"

/* ---- the completer ------------------------------------------------------- */

static double rand01(uint64_t *s)
{
	/* xorshift64*: jitter needs spread, not secrecy */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return (double)((*s * UINT64_C(2685821657736338717)) >> 11) / 9007199254740992.0;
}

/* base * 2^(attempts-1), capped, then ±50 % jitter. */
static int backoff_ms(nb_workers_t *w, int attempts)
{
	double d = w->o.backoff_base_ms;
	for (int i = 1; i < attempts && d < w->o.backoff_max_ms; i++)
		d *= 2;
	if (d > w->o.backoff_max_ms)
		d = w->o.backoff_max_ms;
	return (int)(d * (0.5 + rand01(&w->rng)));
}

/* Runs one outcome statement, retrying while the database is away; gives up
 * only once the set is exiting (the leases then bring the jobs back). */
static int record_with_retry(nb_workers_t *w, int (*fn)(nb_workers_t *, nb_conn_t *, void *, int *, int *), void *arg,
			     int *done, int *dead)
{
	for (int attempt = 0;; attempt++) {
		nb_conn_t *c = NULL;
		int rc = nb_pool_acquire(w->pool, &c);
		if (rc == 0) {
			rc = fn(w, c, arg, done, dead);
			nb_pool_release(w->pool, c);
		}
		if (rc == 0)
			return 0;
		pthread_mutex_lock(&w->mu);
		bool give_up = w->completer_exit && attempt > 0;
		if (!give_up)
			nb_workers__nap_locked(w, DB_RETRY_MS, &w->completer_exit);
		pthread_mutex_unlock(&w->mu);
		if (give_up)
			return rc;
	}
}

static int succeed_stmt(nb_workers_t *w, nb_conn_t *c, void *arg, int *done, int *dead)
{
	idlist_t *ids = arg;
	*dead = 0;
	return nb_store_jobs_succeed(c, w->name, ids->p, ids->n, done);
}

static int later_stmt(nb_workers_t *w, nb_conn_t *c, void *arg, int *done, int *dead)
{
	idlist_t *ids = arg;
	*dead = 0;
	return nb_store_jobs_handback(c, w->name, ids->p, ids->n, UNAVAIL_DELAY_MS, done);
}

typedef struct failures {
	int n;
	nb_store_job_failure_t *f;
} failures_t;

static int fail_stmt(nb_workers_t *w, nb_conn_t *c, void *arg, int *done, int *dead)
{
	failures_t *fs = arg;
	return nb_store_jobs_fail(c, w->name, fs->f, fs->n, done, dead);
}

/* Writes the outcomes of a list of finished slots: at most two statements. */
static void record(nb_workers_t *w, slot_t *list)
{
	int n = 0;
	for (slot_t *s = list; s; s = s->next)
		n++;
	idlist_t ok, later;
	nb_workers__idl_init(&ok, n);
	nb_workers__idl_init(&later, n);
	failures_t fs = {0, nb_xcalloc((size_t)n, sizeof *fs.f)};
	for (slot_t *s = list; s; s = s->next) {
		if (s->rc == 0) {
			nb_workers__idl_add(&ok, s->job.id);
			continue;
		}
		if (s->db_lost) {
			nb_workers__idl_add(&later, s->job.id);
			continue;
		}
		nb_store_job_failure_t *f = &fs.f[fs.n++];
		f->id = s->job.id;
		f->error = s->err;
		f->permanent = s->rc == NB_JOB_PERMANENT;
		f->backoff_ms = backoff_ms(w, s->job.attempts);
	}
	int ok_done = 0, fail_done = 0, dead = 0, unused = 0;
	int rc_ok = ok.n ? record_with_retry(w, succeed_stmt, &ok, &ok_done, &unused) : 0;
	int rc_fail = fs.n ? record_with_retry(w, fail_stmt, &fs, &fail_done, &dead) : 0;
	int later_done = 0;
	int rc_later = later.n ? record_with_retry(w, later_stmt, &later, &later_done, &unused) : 0;
	if (rc_ok < 0 || rc_fail < 0 || rc_later < 0)
		nb_warn("job workers %s: could not record %d outcomes at exit; the jobs run again after their lease",
			w->name, (rc_ok < 0 ? ok.n : 0) + (rc_fail < 0 ? fs.n : 0) + (rc_later < 0 ? later.n : 0));
	int lost = (rc_ok < 0 ? 0 : ok.n - ok_done) + (rc_fail < 0 ? 0 : fs.n - fail_done);
	pthread_mutex_lock(&w->mu);
	w->st.record_stmts += (uint64_t)((ok.n > 0) + (fs.n > 0) + (later.n > 0));
	w->st.deferred += (uint64_t)later_done;
	if (later_done > 0)
		w->notified = true;
	w->st.succeeded += (uint64_t)ok_done;
	w->st.failed += (uint64_t)(fail_done - dead);
	w->st.dead += (uint64_t)dead;
	w->st.lost += (uint64_t)lost;
	if (fail_done > dead) /* retries were scheduled: let the fetcher learn when */
		w->notified = true;
	pthread_cond_signal(&w->fetch_cv);
	pthread_mutex_unlock(&w->mu);
	if (lost > 0)
		nb_warn("job workers %s: %d outcomes not recorded: their lease had passed to another worker", w->name,
			lost);
	nb_workers__idl_dispose(&ok);
	nb_workers__idl_dispose(&later);
	free(fs.f);
}

void *nb_workers__complete_main(void *arg)
{
	nb_workers_t *w = arg;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->d_head && !w->completer_exit)
			pthread_cond_wait(&w->done_cv, &w->mu);
		if (!w->d_head)
			break;
		slot_t *list = w->d_head;
		w->d_head = w->d_tail = NULL;
		pthread_mutex_unlock(&w->mu);
		record(w, list);
		pthread_mutex_lock(&w->mu);
		while (list) {
			slot_t *next = list->next;
			nb_workers__held_remove(w, list);
			nb_workers__slot_free(list);
			list = next;
		}
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* ---- maintenance: heartbeats and the reaper ------------------------------ */

static int heartbeat(nb_workers_t *w)
{
	idlist_t ids;
	pthread_mutex_lock(&w->mu);
	nb_workers__idl_init(&ids, w->nheld);
	for (slot_t *s = w->held.hnext; s != &w->held; s = s->hnext)
		if (!s->handed_back)
			nb_workers__idl_add(&ids, s->job.id);
	pthread_mutex_unlock(&w->mu);
	int rc = 0, extended = 0;
	if (ids.n > 0) {
		nb_conn_t *c = NULL;
		rc = nb_pool_acquire(w->pool, &c);
		if (rc == 0) {
			rc = nb_store_jobs_heartbeat(c, w->name, ids.p, ids.n, w->o.lease_ms, &extended);
			nb_pool_release(w->pool, c);
		}
		if (rc < 0)
			nb_warn("job workers %s: heartbeat failed (%s); leases run out in %d ms unless one succeeds",
				w->name, nb_err_code(rc), w->o.lease_ms);
	}
	nb_workers__idl_dispose(&ids);
	return rc;
}

static void reap(nb_workers_t *w)
{
	nb_conn_t *c = NULL;
	int requeued = 0, dead = 0;
	int rc = nb_pool_acquire(w->pool, &c);
	if (rc == 0) {
		rc = nb_store_jobs_reap(c, REAP_LIMIT, &requeued, &dead);
		nb_pool_release(w->pool, c);
	}
	if (rc == 0 && requeued + dead > 0)
		nb_warn("job reaper: %d jobs lost their worker (lease expired): %d re-queued, %d dead", requeued + dead,
			requeued, dead);
	pthread_mutex_lock(&w->mu);
	w->st.reaped += (uint64_t)(requeued + dead);
	if (requeued > 0) {
		w->notified = true;
		pthread_cond_signal(&w->fetch_cv);
	}
	pthread_mutex_unlock(&w->mu);
}

void *nb_workers__maint_main(void *arg)
{
	nb_workers_t *w = arg;
	int beat = w->o.lease_ms / 3 > 10 ? w->o.lease_ms / 3 : 10;
	int64_t next_beat = nb_mono_ms() + beat;
	int64_t next_reap = nb_mono_ms(); /* at start: rescue what a crashed predecessor left */
	pthread_mutex_lock(&w->mu);
	while (!w->maint_exit) {
		int64_t now = nb_mono_ms();
		if (now >= next_beat) {
			pthread_mutex_unlock(&w->mu);
			int rc = heartbeat(w);
			pthread_mutex_lock(&w->mu);
			next_beat = now + (rc < 0 && beat > DB_RETRY_MS ? DB_RETRY_MS : beat);
		}
		if (now >= next_reap) {
			pthread_mutex_unlock(&w->mu);
			reap(w);
			pthread_mutex_lock(&w->mu);
			next_reap = now + w->o.reap_interval_ms;
		}
		if (!w->maint_exit)
			nb_workers__cv_wait_until(&w->stop_cv, &w->mu, next_beat < next_reap ? next_beat : next_reap);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

