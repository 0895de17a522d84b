/*
 * worker.c — a set of job workers (see worker.h; design in README.md).
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

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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
#include "store/jobs.h"

#define DB_RETRY_MS 500		  /* after a failed queue statement */
#define RECHECK_MS 25		  /* ready jobs exist but others hold them */
#define REAP_LIMIT 500		  /* expired leases per reaper statement */
#define LISTEN_BACKOFF_MIN_MS 100 /* listener reconnect backoff */
#define LISTEN_BACKOFF_MAX_MS 5000
#define NEVER INT64_MAX

typedef enum { SLOT_QUEUED, SLOT_RUNNING, SLOT_DONE } slot_state_t;

typedef struct slot {
	nb_job_t job;
	nb_job_fn fn;
	slot_state_t state;
	int rc;
	bool handed_back;	    /* stop re-queued it: its outcome is discarded */
	struct slot *next;	    /* in the local queue or the done list */
	struct slot *hprev, *hnext; /* in the held list */
	char err[512];
} slot_t;

struct nb_job_ctx {
	nb_workers_t *w;
	nb_conn_t *conn;
};

struct nb_workers {
	nb_pool_t *pool;
	char *conninfo;
	nb_workers_opts_t o;
	char name[160];
	char kinds[NB_JOBS_MAX_KINDS][32];
	const char *kindp[NB_JOBS_MAX_KINDS];
	nb_job_fn fns[NB_JOBS_MAX_KINDS];
	int nkinds;

	pthread_mutex_t mu;
	pthread_cond_t work_cv;	 /* runners: a job was queued, or stop */
	pthread_cond_t fetch_cv; /* fetcher: room, a notification, or stop */
	pthread_cond_t done_cv;	 /* completer: an outcome to write, or its exit */
	pthread_cond_t idle_cv;	 /* stop: a running job finished */
	pthread_cond_t stop_cv;	 /* naps and the maintenance thread: exit flags */
	slot_t *q_head, *q_tail;
	int queued;
	slot_t *d_head, *d_tail;
	slot_t held; /* sentinel of the held list */
	int nheld;
	int running;
	int64_t avg_us;	     /* moving average of handler durations (0: none yet) */
	bool stopping;	     /* claim nothing more; idle runners exit */
	bool completer_exit; /* runners are gone: write what is left, then exit */
	bool maint_exit;
	bool notified; /* jobs may be ready: a NOTIFY, a reconnect, a retry scheduled */
	atomic_bool hard_stop;
	int wake_pipe[2]; /* written once at stop: wakes the listener's poll */
	uint64_t rng;	  /* completer only: backoff jitter */
	nb_workers_stats_t st;

	pthread_t fetcher, completer, maint, listener;
	pthread_t *runners;
	bool has_listener;
};

/* ---- small helpers ------------------------------------------------------ */

static void cv_init(pthread_cond_t *cv)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &ca);
	pthread_condattr_destroy(&ca);
}

/* Waits on cv until signalled or the monotonic deadline (NEVER: no deadline). */
static void cv_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline_ms)
{
	if (deadline_ms == NEVER) {
		pthread_cond_wait(cv, mu);
		return;
	}
	struct timespec ts = {.tv_sec = deadline_ms / 1000, .tv_nsec = (deadline_ms % 1000) * 1000000L};
	pthread_cond_timedwait(cv, mu, &ts);
}

/* Sleeps ms unless an exit flag is raised first. Called with the lock held. */
static void nap_locked(nb_workers_t *w, int ms, const bool *exit_flag)
{
	int64_t until = nb_mono_ms() + ms;
	while (!*exit_flag && nb_mono_ms() < until)
		cv_wait_until(&w->stop_cv, &w->mu, until);
}

static void held_add(nb_workers_t *w, slot_t *s)
{
	s->hprev = w->held.hprev;
	s->hnext = &w->held;
	w->held.hprev->hnext = s;
	w->held.hprev = s;
	w->nheld++;
}

static void held_remove(nb_workers_t *w, slot_t *s)
{
	s->hprev->hnext = s->hnext;
	s->hnext->hprev = s->hprev;
	w->nheld--;
}

static void slot_free(slot_t *s)
{
	if (!s)
		return;
	json_decref(s->job.payload);
	free(s);
}

/* A list of job ids copied out from under the lock. */
typedef struct idlist {
	int n;
	char (*id)[37];
	const char **p;
} idlist_t;

static void idl_init(idlist_t *l, int cap)
{
	l->n = 0;
	l->id = nb_xmalloc((size_t)(cap > 0 ? cap : 1) * sizeof *l->id);
	l->p = nb_xmalloc((size_t)(cap > 0 ? cap : 1) * sizeof *l->p);
}

static void idl_add(idlist_t *l, const char *id)
{
	memcpy(l->id[l->n], id, 37);
	l->p[l->n] = l->id[l->n];
	l->n++;
}

static void idl_dispose(idlist_t *l)
{
	free(l->id);
	free(l->p);
}

/* Hands jobs back (status before the claim, attempt not counted). */
static int handback(nb_workers_t *w, const idlist_t *ids)
{
	if (ids->n == 0)
		return 0;
	nb_conn_t *c = NULL;
	int count = 0;
	int rc = nb_pool_acquire(w->pool, &c);
	if (rc == 0) {
		rc = nb_store_jobs_handback(c, w->name, ids->p, ids->n, &count);
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
		held_add(w, s);
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
	if (w->avg_us <= 0) /* nothing measured yet */
		return w->o.concurrency < max ? w->o.concurrency : max;
	int64_t n = (int64_t)w->o.concurrency * w->o.prefetch_ms * 1000 / w->avg_us;
	return n < max ? (int)n : max;
}

static void *fetch_main(void *arg)
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
		int room = w->o.concurrency + 2 * pf - w->queued - w->running;
		if (room > w->o.concurrency + pf)
			room = w->o.concurrency + pf;
		if (w->queued > pf || room <= 0) {
			cv_wait_until(&w->fetch_cv, &w->mu, NEVER); /* a runner signals room */
			continue;
		}
		if (!more && !w->notified && nb_mono_ms() < wake_at) {
			cv_wait_until(&w->fetch_cv, &w->mu, wake_at);
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
	if (!ctx->conn && nb_pool_acquire(ctx->w->pool, &ctx->conn) < 0)
		ctx->conn = NULL;
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
	nb_job_ctx_t ctx = {w, NULL};
	s->err[0] = '\0';
	if (s->fn) {
		s->rc = s->fn(&s->job, &ctx, s->err, sizeof s->err);
	} else { /* cannot happen: the claim asks only for registered kinds */
		s->rc = NB_JOB_PERMANENT;
		snprintf(s->err, sizeof s->err, "no handler for job kind \"%s\"", s->job.kind);
	}
	if (ctx.conn)
		nb_pool_release(w->pool, ctx.conn);
	if (s->rc > 0)
		s->rc = 0;
	if (s->rc < 0 && !s->err[0])
		snprintf(s->err, sizeof s->err, "job handler failed (%d)", s->rc);
	if (s->rc < 0)
		nb_warn("job %s (%s) attempt %d of %d failed: %s", s->job.id, s->job.kind, s->job.attempts,
			s->job.max_attempts, s->err);
	else
		nb_debug("job %s (%s) succeeded", s->job.id, s->job.kind);
	nb_log_set_request_id(NULL);
}

static void *run_main(void *arg)
{
	nb_workers_t *w = arg;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->q_head && !w->stopping)
			pthread_cond_wait(&w->work_cv, &w->mu);
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
		w->avg_us = w->avg_us ? (w->avg_us * 7 + us) / 8 : us;
		if (s->handed_back) { /* rare: only at a stop that ran out of time */
			nb_info("job %s returned after it was handed back; its outcome is discarded", s->job.id);
			held_remove(w, s);
			slot_free(s);
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
			nap_locked(w, DB_RETRY_MS, &w->completer_exit);
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
	idlist_t ok;
	idl_init(&ok, n);
	failures_t fs = {0, nb_xcalloc((size_t)n, sizeof *fs.f)};
	for (slot_t *s = list; s; s = s->next) {
		if (s->rc == 0) {
			idl_add(&ok, s->job.id);
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
	if (rc_ok < 0 || rc_fail < 0)
		nb_warn("job workers %s: could not record %d outcomes at exit; the jobs run again after their lease",
			w->name, (rc_ok < 0 ? ok.n : 0) + (rc_fail < 0 ? fs.n : 0));
	int lost = (rc_ok < 0 ? 0 : ok.n - ok_done) + (rc_fail < 0 ? 0 : fs.n - fail_done);
	pthread_mutex_lock(&w->mu);
	w->st.record_stmts += (uint64_t)((ok.n > 0) + (fs.n > 0));
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
	idl_dispose(&ok);
	free(fs.f);
}

static void *complete_main(void *arg)
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
			held_remove(w, list);
			slot_free(list);
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
	idl_init(&ids, w->nheld);
	for (slot_t *s = w->held.hnext; s != &w->held; s = s->hnext)
		if (!s->handed_back)
			idl_add(&ids, s->job.id);
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
	idl_dispose(&ids);
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

static void *maint_main(void *arg)
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
			cv_wait_until(&w->stop_cv, &w->mu, next_beat < next_reap ? next_beat : next_reap);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* ---- the listener -------------------------------------------------------- */

/* True when stop has been asked (the pipe is readable); waits up to ms. */
static bool stop_asked(nb_workers_t *w, int ms)
{
	struct pollfd p = {.fd = w->wake_pipe[0], .events = POLLIN};
	return poll(&p, 1, ms) > 0;
}

/* Connects without blocking past a stop request. NULL on failure (logged by the caller). */
static PGconn *listen_connect(nb_workers_t *w, char *why, size_t whylen)
{
	char timeout[16];
	int timeout_s = nb_cfg.db_connect_timeout_s > 0 ? nb_cfg.db_connect_timeout_s : 5;
	snprintf(timeout, sizeof timeout, "%d", timeout_s);
	const char *keys[] = {"dbname",
			      "application_name",
			      "connect_timeout",
			      "keepalives_idle",
			      "keepalives_interval",
			      "keepalives_count",
			      NULL};
	const char *vals[] = {w->conninfo, "notebookd-listen", timeout, "30", "10", "3", NULL};
	PGconn *pg = PQconnectStartParams(keys, vals, 1);
	int64_t deadline = nb_mono_ms() + (int64_t)timeout_s * 1000;
	PostgresPollingStatusType st =
	    pg && PQstatus(pg) != CONNECTION_BAD ? PGRES_POLLING_WRITING : PGRES_POLLING_FAILED;
	while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
		struct pollfd fds[2] = {
		    {.fd = PQsocket(pg), .events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT},
		    {.fd = w->wake_pipe[0], .events = POLLIN},
		};
		int left = (int)(deadline - nb_mono_ms());
		if (left <= 0) {
			snprintf(why, whylen, "timeout");
			break;
		}
		int r = poll(fds, 2, left);
		if (r < 0 && errno != EINTR) {
			snprintf(why, whylen, "poll: %s", strerror(errno));
			break;
		}
		if (fds[1].revents) {
			snprintf(why, whylen, "stopping");
			break;
		}
		if (r > 0)
			st = PQconnectPoll(pg);
	}
	if (st == PGRES_POLLING_OK && PQstatus(pg) == CONNECTION_OK && nb_store_jobs_listen(pg) == 0)
		return pg;
	if (pg && st != PGRES_POLLING_OK && PQerrorMessage(pg)[0])
		snprintf(why, whylen, "%s", PQerrorMessage(pg));
	else if (!why[0])
		snprintf(why, whylen, "%s", pg ? PQerrorMessage(pg) : "out of memory");
	why[strcspn(why, "\n")] = '\0';
	PQfinish(pg);
	return NULL;
}

static void wake_fetcher(nb_workers_t *w)
{
	pthread_mutex_lock(&w->mu);
	w->notified = true;
	pthread_cond_signal(&w->fetch_cv);
	pthread_mutex_unlock(&w->mu);
}

/* Waits for notifications on a live connection; returns on stop or when it drops. */
static void listen_loop(nb_workers_t *w, PGconn *pg)
{
	for (;;) {
		struct pollfd fds[2] = {
		    {.fd = PQsocket(pg), .events = POLLIN},
		    {.fd = w->wake_pipe[0], .events = POLLIN},
		};
		int r = poll(fds, 2, -1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || fds[1].revents)
			return;
		if (!fds[0].revents)
			continue;
		if (!PQconsumeInput(pg) || PQstatus(pg) != CONNECTION_OK) {
			char msg[200];
			snprintf(msg, sizeof msg, "%s", PQerrorMessage(pg));
			msg[strcspn(msg, "\n")] = '\0';
			nb_warn("job listener lost its connection (%s); reconnecting", msg);
			return;
		}
		int got = 0;
		PGnotify *n;
		while ((n = PQnotifies(pg)) != NULL) {
			got++;
			PQfreemem(n);
		}
		if (got)
			wake_fetcher(w);
	}
}

static void *listen_main(void *arg)
{
	nb_workers_t *w = arg;
	int backoff = LISTEN_BACKOFF_MIN_MS;
	bool down = false;
	while (!stop_asked(w, 0)) {
		char why[256] = "";
		PGconn *pg = listen_connect(w, why, sizeof why);
		if (!pg) {
			if (!down && !stop_asked(w, 0))
				nb_warn("job listener could not connect (%s); polling every %d ms meanwhile, retrying",
					why, w->o.poll_ms);
			down = true;
			if (stop_asked(w, backoff))
				break;
			backoff = backoff * 2 > LISTEN_BACKOFF_MAX_MS ? LISTEN_BACKOFF_MAX_MS : backoff * 2;
			continue;
		}
		if (down)
			nb_info("job listener connected again");
		down = false;
		backoff = LISTEN_BACKOFF_MIN_MS;
		wake_fetcher(w); /* a NOTIFY may have been missed while disconnected */
		listen_loop(w, pg);
		PQfinish(pg);
	}
	return NULL;
}

/* ---- lifecycle ----------------------------------------------------------- */

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
	pthread_setname_np(*t, name);
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
	for (int i = 0; i < w->nkinds; i++)
		w->kindp[i] = w->kinds[i];
	w->rng = (uint64_t)nb_now_ms() * 0x9E3779B97F4A7C15u ^ (uint64_t)getpid() ^ (uint64_t)(uintptr_t)w;
	if (!w->rng)
		w->rng = 1;

	pthread_mutex_init(&w->mu, NULL);
	cv_init(&w->work_cv);
	cv_init(&w->fetch_cv);
	cv_init(&w->done_cv);
	cv_init(&w->idle_cv);
	cv_init(&w->stop_cv);
	w->held.hnext = w->held.hprev = &w->held;
	atomic_init(&w->hard_stop, false);
	if (pipe2(w->wake_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		nb_error("could not create a pipe for the job workers: %s", strerror(errno));
		abort();
	}

	spawn(&w->maint, maint_main, w, "nb-job-maint");
	spawn(&w->completer, complete_main, w, "nb-job-done");
	w->runners = nb_xcalloc((size_t)w->o.concurrency, sizeof *w->runners);
	for (int i = 0; i < w->o.concurrency; i++)
		spawn(&w->runners[i], run_main, w, "nb-job-run");
	spawn(&w->fetcher, fetch_main, w, "nb-job-fetch");
	w->has_listener = conninfo_for_listen != NULL;
	if (w->has_listener)
		spawn(&w->listener, listen_main, w, "nb-job-listen");
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
	return nb_workers_start_opts(pool, conninfo_for_listen, &o);
}

/* Takes every queued (unstarted) slot off the local queue into ids. Lock held. */
static void take_queued_locked(nb_workers_t *w, idlist_t *ids)
{
	idl_init(ids, w->queued);
	while (w->q_head) {
		slot_t *s = w->q_head;
		w->q_head = s->next;
		idl_add(ids, s->job.id);
		held_remove(w, s);
		slot_free(s);
	}
	w->q_tail = NULL;
	w->queued = 0;
}

void nb_workers_stop(nb_workers_t *w, int timeout_ms)
{
	if (!w)
		return;
	int64_t deadline = nb_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	nb_info("job workers %s stopping (%d ms for running jobs)", w->name, timeout_ms);

	pthread_mutex_lock(&w->mu);
	w->stopping = true;
	pthread_cond_broadcast(&w->work_cv);
	pthread_cond_broadcast(&w->fetch_cv);
	pthread_mutex_unlock(&w->mu);
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
	handback(w, &ids);
	idl_dispose(&ids);

	/* Running: let them finish until the deadline, then hand them back. */
	pthread_mutex_lock(&w->mu);
	while (w->running > 0 && nb_mono_ms() < deadline)
		cv_wait_until(&w->idle_cv, &w->mu, deadline);
	idl_init(&ids, w->running);
	for (slot_t *s = w->held.hnext; s != &w->held; s = s->hnext)
		if (s->state == SLOT_RUNNING) {
			s->handed_back = true;
			idl_add(&ids, s->job.id);
		}
	pthread_mutex_unlock(&w->mu);
	if (ids.n > 0) {
		atomic_store(&w->hard_stop, true);
		handback(w, &ids);
	}
	idl_dispose(&ids);
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
		" %llu dead (%llu outcome statements), %llu handed back",
		w->name, (unsigned long long)w->st.claimed, (unsigned long long)w->st.claim_stmts,
		(unsigned long long)w->st.succeeded, (unsigned long long)w->st.failed, (unsigned long long)w->st.dead,
		(unsigned long long)w->st.record_stmts, (unsigned long long)w->st.handed_back);
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

const char *nb_workers_name(const nb_workers_t *w)
{
	return w->name;
}
