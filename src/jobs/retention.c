/*
 * retention.c — the retention and its scheduler thread (see retention.h).
 *
 * The scheduler is a thread of its own, not a job in the queue: a retention
 * job would need a job row without a user and a kind constraint shared with
 * every other migration; one UPDATE on scheduled_tasks gives the same
 * guarantee (one run per period across the deployment) and the row keeps the
 * last run's counts for the operator. A run stops between batches when the
 * process stops.
 */
#include "jobs/retention.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "jobs/worker_internal.h"

static pthread_mutex_t stats_mu = PTHREAD_MUTEX_INITIALIZER;
static nb_retention_stats_t stats;

struct nb_retention_sched {
	nb_pool_t *pool;
	char by[200];
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;    /* monotonic (nb_workers__cv_init) */
	atomic_bool stopping; /* set under mu; read by the loop under mu and between batches without it */
};

static int run_on(nb_conn_t *c, nb_retention_counts_t *out, const atomic_bool *stopping)
{
	memset(out, 0, sizeof *out);
	int batch = nb_cfg.retention_batch > 0 ? nb_cfg.retention_batch : 500;
	int64_t t0 = nb_mono_ms();
	int rc = 0;
	for (int w = 0; w < NB_RET_COUNT && rc == 0; w++) {
		/* a notebook takes everything under it: smaller batches keep each statement short */
		int limit = w == NB_RET_NOTEBOOKS ? (batch / 10 > 0 ? batch / 10 : 1) : batch;
		int days = w == NB_RET_JOBS ? nb_cfg.job_retention_days : nb_cfg.trash_retention_days;
		long n = 0;
		do {
			if (stopping && atomic_load(stopping))
				break;
			rc = nb_store_retention_batch(c, (nb_retention_what_t)w, days, limit, &n);
			if (rc == 0)
				out->deleted[w] += n;
		} while (rc == 0 && n == limit);
	}
	double secs = (double)(nb_mono_ms() - t0) / 1000.0;
	pthread_mutex_lock(&stats_mu);
	stats.runs++;
	for (int w = 0; w < NB_RET_COUNT; w++)
		stats.deleted[w] += (uint64_t)out->deleted[w];
	if (rc == 0) {
		stats.last_success_unix = (int64_t)time(NULL);
		stats.last_duration_s = secs;
	} else {
		stats.failures++;
	}
	pthread_mutex_unlock(&stats_mu);
	if (rc == 0)
		nb_info("retention: deleted %ld notebooks, %ld sources, %ld documents, %ld refresh tokens, %ld one-time"
			" codes, %ld jobs, %ld idempotency keys in %.3f s",
			out->deleted[NB_RET_NOTEBOOKS], out->deleted[NB_RET_SOURCES], out->deleted[NB_RET_DOCUMENTS],
			out->deleted[NB_RET_REFRESH_TOKENS], out->deleted[NB_RET_OTPS], out->deleted[NB_RET_JOBS],
			out->deleted[NB_RET_IDEMPOTENCY_KEYS], secs);
	else
		nb_warn("retention failed after %.3f s (what was deleted stays deleted; the next run goes on)", secs);
	return rc;
}

int nb_retention_run(nb_conn_t *c, nb_retention_counts_t *out)
{
	return run_on(c, out, NULL);
}

void nb_retention_stats(nb_retention_stats_t *out)
{
	pthread_mutex_lock(&stats_mu);
	*out = stats;
	pthread_mutex_unlock(&stats_mu);
}

static void result_json(const nb_retention_counts_t *k, nb_buf_t *b)
{
	nb_buf_putc(b, '{');
	for (int w = 0; w < NB_RET_COUNT; w++)
		nb_buf_printf(b, "%s\"%s\":%ld", w ? "," : "", nb_store_retention_label((nb_retention_what_t)w),
			      k->deleted[w]);
	nb_buf_putc(b, '}');
}

/* One check: take the period's run if it is due and nobody took it, then run it. */
static void tick(nb_retention_sched_t *s)
{
	nb_conn_t *c = NULL;
	if (nb_pool_acquire(s->pool, &c) < 0)
		return; /* the database is away: next tick */
	bool won = false;
	if (nb_store_task_take(c, "retention", nb_cfg.retention_interval_s, s->by, &won) == 0 && won) {
		nb_log_set_request_id("retention");
		nb_retention_counts_t k;
		if (run_on(c, &k, &s->stopping) == 0) {
			nb_buf_t b = NB_BUF_INIT;
			result_json(&k, &b);
			nb_store_task_done(c, "retention", b.data);
			nb_buf_dispose(&b);
		}
		nb_log_set_request_id(NULL);
	}
	nb_pool_release(s->pool, c);
}

static void *sched_main(void *arg)
{
	nb_retention_sched_t *s = arg;
	int64_t every = (int64_t)nb_cfg.retention_interval_s * 1000;
	if (every > 30000)
		every = 30000;
	pthread_mutex_lock(&s->mu);
	while (!atomic_load(&s->stopping)) {
		pthread_mutex_unlock(&s->mu);
		tick(s);
		pthread_mutex_lock(&s->mu);
		int64_t until = nb_mono_ms() + every; /* a clock step does not move it */
		while (!atomic_load(&s->stopping) && nb_mono_ms() < until)
			nb_workers__cv_wait_until(&s->cv, &s->mu, until);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

nb_retention_sched_t *nb_retention_sched_start(nb_pool_t *pool, const char *by)
{
	if (nb_cfg.retention_interval_s <= 0 || !pool)
		return NULL;
	nb_retention_sched_t *s = nb_xcalloc(1, sizeof *s);
	s->pool = pool;
	snprintf(s->by, sizeof s->by, "%s", by ? by : "?");
	pthread_mutex_init(&s->mu, NULL);
	nb_workers__cv_init(&s->cv);
	atomic_init(&s->stopping, false);
	if (pthread_create(&s->thread, NULL, sched_main, s) != 0) {
		nb_warn("could not start the retention scheduler: retention does not run in this process");
		pthread_mutex_destroy(&s->mu);
		pthread_cond_destroy(&s->cv);
		free(s);
		return NULL;
	}
	nb_info("retention scheduled every %d s (trash %d days, finished jobs %d days, batches of %d)",
		nb_cfg.retention_interval_s, nb_cfg.trash_retention_days, nb_cfg.job_retention_days,
		nb_cfg.retention_batch);
	return s;
}

void nb_retention_sched_stop(nb_retention_sched_t *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	atomic_store(&s->stopping, true);
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s);
}
