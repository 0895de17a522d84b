/*
 * stats.c — per-kind job counters (see stats.h).
 *
 * Kinds are published once (name written, then the count raised with release
 * order) and never removed, so readers need no lock.
 */
#include "jobs/stats.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define KINDS_MAX 32

typedef struct kind_stat {
	char name[48];
	atomic_ullong by_outcome[NB_JOB_OUT_COUNT_];
	nb_histo_t duration;
} kind_stat_t;

static kind_stat_t kinds[KINDS_MAX];
static atomic_int nkinds;
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;

const char *nb_jobs_outcome_label(nb_job_outcome_t o)
{
	static const char *const names[NB_JOB_OUT_COUNT_] = {"succeeded", "retry", "dead", "deferred"};
	return (unsigned)o < NB_JOB_OUT_COUNT_ ? names[o] : "unknown";
}

static kind_stat_t *find(const char *kind)
{
	int n = atomic_load_explicit(&nkinds, memory_order_acquire);
	for (int i = 0; i < n; i++)
		if (strcmp(kinds[i].name, kind) == 0)
			return &kinds[i];
	return NULL;
}

void nb_jobs_stats_register(const char *kind)
{
	pthread_mutex_lock(&reg_mu);
	int n = atomic_load(&nkinds);
	if (!find(kind) && n < KINDS_MAX) {
		snprintf(kinds[n].name, sizeof kinds[n].name, "%s", kind);
		atomic_store_explicit(&nkinds, n + 1, memory_order_release);
	}
	pthread_mutex_unlock(&reg_mu);
}

void nb_jobs_stats_record(const char *kind, nb_job_outcome_t o, int64_t us)
{
	kind_stat_t *k = find(kind);
	if (!k || (unsigned)o >= NB_JOB_OUT_COUNT_)
		return;
	atomic_fetch_add_explicit(&k->by_outcome[o], 1, memory_order_relaxed);
	nb_histo_observe(&k->duration, us);
}

int nb_jobs_stats_kinds(void)
{
	return atomic_load_explicit(&nkinds, memory_order_acquire);
}

bool nb_jobs_stats_get(int i, nb_job_kind_stats_t *out)
{
	memset(out, 0, sizeof *out);
	if (i < 0 || i >= nb_jobs_stats_kinds())
		return false;
	out->kind = kinds[i].name;
	for (int o = 0; o < NB_JOB_OUT_COUNT_; o++)
		out->by_outcome[o] = atomic_load_explicit(&kinds[i].by_outcome[o], memory_order_relaxed);
	nb_histo_snap_add(&out->duration, &kinds[i].duration);
	return true;
}
