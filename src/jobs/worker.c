/*
 * worker.c — a set of job workers: lifecycle and shared helpers (see
 * worker.h; design in README.md; the other threads in worker_*.c).
 *
 * Threads of one set and what they share (all under one mutex):
 *
 *   listener ──notified──▶ fetcher ──queue──▶ runners ×N ──done──▶ completer
 *                              ▲                 │                    │
 *                              └─── room ────────┘      held list ◀───┘
 *   maintenance: heartbeats over the held list; the reaper
 *
 * The fetcher claims a batch of up to concurrency + prefetch jobs in one
 * statement when at most `prefetch` jobs are left in the local queue (so the
 * handlers never wait for a claim) and there is room (at most concurrency +
 * 2 x prefetch jobs held), and only when jobs may be ready: the last batch
 * was full, a NOTIFY arrived, or the time came (the earliest run_at it saw,
 * or the poll interval, the safety net). The batch size is the lever of
 * throughput, but jobs waiting in a local queue are jobs another process
 * could be running: so the prefetch adapts to the handlers' moving-average
 * duration, to what they should finish within prefetch_ms. Fast jobs
 * (no-ops) are claimed 68 at a time by 4 handlers; slow ones (ingestion)
 * one per free handler, as River and Oban do.
 *
 * The completer writes outcomes as they pile up, successes in one UPDATE
 * and failures in another, so under load one statement records many jobs
 * and when idle it records each at once (group commit, no timer). The held
 * list is every job claimed and not yet recorded; heartbeats extend the
 * lease of all of them in one UPDATE.
 *
 * No statement runs under the mutex, and no queue transaction is open while
 * a handler runs: every queue statement is autocommit.
 */
#include "jobs/worker.h"
#include "jobs/stats.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "jobs/queue.h"
#include "jobs/retention.h"
#include "jobs/worker_internal.h"
#include "store/jobs.h"

/* ---- small helpers ------------------------------------------------------ */

void nb_workers__cv_init(pthread_cond_t *cv)
{
	pthread_condattr_t ca;
	if (pthread_condattr_init(&ca) != 0 || pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(cv, &ca) != 0) {
		nb_error("could not initialise a condition variable of the job workers");
		abort();
	}
	pthread_condattr_destroy(&ca);
}

/* Waits on cv until signalled or the monotonic deadline (NEVER: no deadline). */
void nb_workers__cv_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline_ms)
{
	if (deadline_ms == NEVER) {
		pthread_cond_wait(cv, mu);
		return;
	}
	struct timespec ts = {.tv_sec = deadline_ms / 1000, .tv_nsec = (deadline_ms % 1000) * 1000000L};
	pthread_cond_timedwait(cv, mu, &ts);
}

/* Sleeps ms unless an exit flag is raised first. Called with the lock held. */
void nb_workers__nap_locked(nb_workers_t *w, int ms, const bool *exit_flag)
{
	int64_t until = nb_mono_ms() + ms;
	while (!*exit_flag && nb_mono_ms() < until)
		nb_workers__cv_wait_until(&w->stop_cv, &w->mu, until);
}

void nb_workers__held_add(nb_workers_t *w, slot_t *s)
{
	s->hprev = w->held.hprev;
	s->hnext = &w->held;
	w->held.hprev->hnext = s;
	w->held.hprev = s;
	w->nheld++;
}

void nb_workers__held_remove(nb_workers_t *w, slot_t *s)
{
	s->hprev->hnext = s->hnext;
	s->hnext->hprev = s->hprev;
	w->nheld--;
}

void nb_workers__slot_free(slot_t *s)
{
	if (!s)
		return;
	json_decref(s->job.payload);
	free(s);
}

void nb_workers__idl_init(idlist_t *l, int cap)
{
	l->n = 0;
	l->id = nb_xmalloc((size_t)(cap > 0 ? cap : 1) * sizeof *l->id);
	l->p = nb_xmalloc((size_t)(cap > 0 ? cap : 1) * sizeof *l->p);
}

void nb_workers__idl_add(idlist_t *l, const char *id)
{
	memcpy(l->id[l->n], id, 37);
	l->p[l->n] = l->id[l->n];
	l->n++;
}

void nb_workers__idl_dispose(idlist_t *l)
{
	free(l->id);
	free(l->p);
}

/* Hands jobs back (status before the claim, attempt not counted), waiting
 * for a connection at most until the deadline (but at least a moment). */
int nb_workers__handback(nb_workers_t *w, const idlist_t *ids, int64_t deadline_ms)
{
	if (ids->n == 0)
		return 0;
	nb_conn_t *c = NULL;
	int count = 0;
	int64_t left = deadline_ms - nb_mono_ms();
	int rc = nb_pool_acquire_timeout(w->pool, left > DB_RETRY_MS ? (int)left : DB_RETRY_MS, &c);
	if (rc == 0) {
		rc = nb_store_jobs_handback(c, w->name, ids->p, ids->n, 0, &count);
		nb_pool_release(w->pool, c);
	}
	if (rc < 0)
		nb_warn("job workers %s: could not hand back %d jobs (%s); their leases will expire", w->name, ids->n,
			nb_err_code(rc));
	else
		nb_info("job workers %s: handed back %d jobs", w->name, count);
	pthread_mutex_lock(&w->mu);
	w->st.handed_back += (uint64_t)count;
	pthread_mutex_unlock(&w->mu);
	return rc;
}


/* ---- lifecycle ----------------------------------------------------------- */

const char *nb_workers_listen_url(void)
{
	return nb_cfg.listen_database_url && nb_cfg.listen_database_url[0] ? nb_cfg.listen_database_url
									  : nb_cfg.database_url;
}

void nb_workers_opts_default(nb_workers_opts_t *o, int concurrency, const char *name)
{
	memset(o, 0, sizeof *o);
	o->concurrency = concurrency;
	o->name = name;
	o->lease_ms = (nb_cfg.job_lease_s > 0 ? nb_cfg.job_lease_s : 60) * 1000;
	o->poll_ms = nb_cfg.job_poll_ms > 0 ? nb_cfg.job_poll_ms : 5000;
	o->prefetch_max = 64;
	o->prefetch_ms = 50;
	o->backoff_base_ms = 1000;
	o->backoff_max_ms = 600000;
	o->reap_interval_ms = 0;
}

static void spawn(pthread_t *t, void *(*fn)(void *), void *arg, const char *name)
{
	int err = pthread_create(t, NULL, fn, arg);
	if (err) {
		nb_error("could not start job worker thread: %s", strerror(err));
		abort();
	}
	(void)pthread_setname_np(*t, name); /* a name is a debugging aid: failing to set it is harmless */
}

static void make_name(nb_workers_t *w, const char *prefix)
{
	char host[64] = "";
	gethostname(host, sizeof host - 1);
	char u[NB_UUID_STR_LEN + 1];
	nb_uuid_v7_str(u); /* its last 8 hex digits are random */
	snprintf(w->name, sizeof w->name, "%.60s@%.60s:%d/%s", prefix && prefix[0] ? prefix : "worker", host,
		 (int)getpid(), u + 28);
}

nb_workers_t *nb_workers_start_opts(nb_pool_t *pool, const char *conninfo_for_listen, const nb_workers_opts_t *o)
{
	nb_workers_t *w = nb_xcalloc(1, sizeof *w);
	w->pool = pool;
	w->conninfo = nb_xstrdup(conninfo_for_listen);
	w->o = *o;
	w->o.name = NULL; /* not kept */
	if (w->o.concurrency < 1)
		w->o.concurrency = 1;
	if (w->o.prefetch_max < 0)
		w->o.prefetch_max = 0;
	if (w->o.lease_ms < 100)
		w->o.lease_ms = 100;
	if (w->o.poll_ms < 10)
		w->o.poll_ms = 10;
	if (w->o.backoff_base_ms <= 0)
		w->o.backoff_base_ms = 1000;
	if (w->o.backoff_max_ms < w->o.backoff_base_ms)
		w->o.backoff_max_ms = w->o.backoff_base_ms;
	if (w->o.reap_interval_ms <= 0)
		w->o.reap_interval_ms = w->o.lease_ms / 2 < 5000 ? w->o.lease_ms / 2 : 5000;
	make_name(w, o->name);
	w->nkinds = nb_jobs__registered(w->kinds, w->fns, NB_JOBS_MAX_KINDS);
	for (int i = 0; i < w->nkinds; i++) {
		w->kindp[i] = w->kinds[i];
		nb_jobs_stats_register(w->kinds[i]);
	}
	w->rng = (uint64_t)nb_now_ms() * 0x9E3779B97F4A7C15u ^ (uint64_t)getpid() ^ (uint64_t)(uintptr_t)w;
	if (!w->rng)
		w->rng = 1;

	if (pthread_mutex_init(&w->mu, NULL) != 0) {
		nb_error("could not initialise the job workers' lock");
		abort();
	}
	nb_workers__cv_init(&w->work_cv);
	nb_workers__cv_init(&w->fetch_cv);
	nb_workers__cv_init(&w->done_cv);
	nb_workers__cv_init(&w->idle_cv);
	nb_workers__cv_init(&w->stop_cv);
	w->held.hnext = w->held.hprev = &w->held;
	atomic_init(&w->hard_stop, false);
	if (pipe2(w->wake_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		nb_error("could not create a pipe for the job workers: %s", strerror(errno));
		abort();
	}

	spawn(&w->maint, nb_workers__maint_main, w, "nb-job-maint");
	spawn(&w->completer, nb_workers__complete_main, w, "nb-job-done");
	w->runners = nb_xcalloc((size_t)w->o.concurrency, sizeof *w->runners);
	for (int i = 0; i < w->o.concurrency; i++)
		spawn(&w->runners[i], nb_workers__run_main, w, "nb-job-run");
	spawn(&w->fetcher, nb_workers__fetch_main, w, "nb-job-fetch");
	w->has_listener = conninfo_for_listen != NULL;
	if (w->has_listener)
		spawn(&w->listener, nb_workers__listen_main, w, "nb-job-listen");
	nb_info("job workers %s started: %d handlers, prefetch up to %d (%d ms of work), lease %d ms, poll %d ms,"
		" %d kinds",
		w->name, w->o.concurrency, w->o.prefetch_max, w->o.prefetch_ms, w->o.lease_ms, w->o.poll_ms, w->nkinds);
	return w;
}

nb_workers_t *nb_workers_start(nb_pool_t *pool, const char *conninfo_for_listen, int concurrency,
			       const char *worker_name)
{
	nb_workers_opts_t o;
	nb_workers_opts_default(&o, concurrency, worker_name);
	nb_workers_t *w = nb_workers_start_opts(pool, conninfo_for_listen, &o);
	if (w) /* the processes that run jobs also run the retention, once per period across them */
		w->retention = nb_retention_sched_start(pool, w->name);
	return w;
}

/* Takes every queued (unstarted) slot off the local queue into ids. Lock held. */
static void take_queued_locked(nb_workers_t *w, idlist_t *ids)
{
	nb_workers__idl_init(ids, w->queued);
	while (w->q_head) {
		slot_t *s = w->q_head;
		w->q_head = s->next;
		nb_workers__idl_add(ids, s->job.id);
		nb_workers__held_remove(w, s);
		nb_workers__slot_free(s);
	}
	w->q_tail = NULL;
	w->queued = 0;
}

/*
 * The deadline passed with handlers still running (their jobs are handed
 * back): cancel the statements they wait on, so that they return now rather
 * than at statement_timeout. A handler busy outside the database is only
 * told (nb_job_ctx_stopping).
 */
static void cancel_running(nb_workers_t *w)
{
	pthread_mutex_lock(&w->mu);
	for (slot_t *s = w->held.hnext; s != &w->held; s = s->hnext) {
		char why[256];
		if (s->state == SLOT_RUNNING && s->cancel && !PQcancel(s->cancel, why, sizeof why))
			nb_info("job %s: could not cancel its statement: %s", s->job.id, why);
	}
	pthread_mutex_unlock(&w->mu);
}

void nb_workers_begin_stop(nb_workers_t *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stopping = true;
	pthread_cond_broadcast(&w->work_cv);
	pthread_cond_broadcast(&w->fetch_cv);
	pthread_cond_broadcast(&w->stop_cv);
	pthread_mutex_unlock(&w->mu);
}

void nb_workers_stop(nb_workers_t *w, int timeout_ms)
{
	nb_workers_stop_by(w, nb_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0));
}

void nb_workers_stop_by(nb_workers_t *w, int64_t deadline)
{
	if (!w)
		return;
	int64_t left = deadline - nb_mono_ms();
	nb_info("job workers %s stopping (%lld ms left for running jobs)", w->name, (long long)(left > 0 ? left : 0));
	nb_retention_sched_stop(w->retention); /* between two batches */
	w->retention = NULL;

	nb_workers_begin_stop(w);
	pthread_join(w->fetcher, NULL);
	if (write(w->wake_pipe[1], "x", 1) < 0)
		nb_warn("could not wake the job listener: %s", strerror(errno));
	if (w->has_listener)
		pthread_join(w->listener, NULL);

	/* Claimed but never started: back at once, for other workers to take. */
	idlist_t ids;
	pthread_mutex_lock(&w->mu);
	take_queued_locked(w, &ids);
	pthread_mutex_unlock(&w->mu);
	nb_workers__handback(w, &ids, deadline);
	nb_workers__idl_dispose(&ids);

	/* Running: let them finish until the deadline, then hand them back. */
	pthread_mutex_lock(&w->mu);
	while (w->running > 0 && nb_mono_ms() < deadline)
		nb_workers__cv_wait_until(&w->idle_cv, &w->mu, deadline);
	nb_workers__idl_init(&ids, w->running);
	for (slot_t *s = w->held.hnext; s != &w->held; s = s->hnext)
		if (s->state == SLOT_RUNNING) {
			s->handed_back = true;
			nb_workers__idl_add(&ids, s->job.id);
		}
	pthread_mutex_unlock(&w->mu);
	if (ids.n > 0) {
		atomic_store(&w->hard_stop, true);
		nb_workers__handback(w, &ids, deadline);
		cancel_running(w);
	}
	nb_workers__idl_dispose(&ids);
	for (int i = 0; i < w->o.concurrency; i++)
		pthread_join(w->runners[i], NULL);

	/* Write the outcomes still pending, then stop heartbeats. */
	pthread_mutex_lock(&w->mu);
	w->completer_exit = true;
	pthread_cond_broadcast(&w->done_cv);
	pthread_cond_broadcast(&w->stop_cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->completer, NULL);
	pthread_mutex_lock(&w->mu);
	w->maint_exit = true;
	pthread_cond_broadcast(&w->stop_cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->maint, NULL);

	nb_info("job workers %s stopped: %llu claimed (%llu claim statements), %llu succeeded, %llu failed,"
		" %llu dead (%llu outcome statements), %llu handed back, %llu re-queued after losing the database",
		w->name, (unsigned long long)w->st.claimed, (unsigned long long)w->st.claim_stmts,
		(unsigned long long)w->st.succeeded, (unsigned long long)w->st.failed, (unsigned long long)w->st.dead,
		(unsigned long long)w->st.record_stmts, (unsigned long long)w->st.handed_back,
		(unsigned long long)w->st.deferred);
	close(w->wake_pipe[0]);
	close(w->wake_pipe[1]);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->work_cv);
	pthread_cond_destroy(&w->fetch_cv);
	pthread_cond_destroy(&w->done_cv);
	pthread_cond_destroy(&w->idle_cv);
	pthread_cond_destroy(&w->stop_cv);
	free(w->runners);
	free(w->conninfo);
	free(w);
}

void nb_workers_stats(nb_workers_t *w, nb_workers_stats_t *out)
{
	pthread_mutex_lock(&w->mu);
	*out = w->st;
	pthread_mutex_unlock(&w->mu);
}
