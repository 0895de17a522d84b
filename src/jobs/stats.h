/*
 * stats.h — job counts by kind and outcome, and job durations by kind, for
 * /metrics (process-wide: every worker set of the process adds to them).
 *
 * The kinds are the registered ones (a fixed, small set), entered when a
 * worker set starts; recording an outcome is a short scan of that set and
 * relaxed atomic adds, no lock.
 */
#ifndef NB_JOBS_STATS_H
#define NB_JOBS_STATS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/metrics.h"

/** How an attempt of a job ended. */
typedef enum nb_job_outcome {
	NB_JOB_OUT_SUCCEEDED, /* done */
	NB_JOB_OUT_RETRY,     /* failed; it runs again after a backoff */
	NB_JOB_OUT_DEAD,      /* failed for good (permanent error or last attempt) */
	NB_JOB_OUT_DEFERRED,  /* the database went away: handed back, attempt not counted */
	NB_JOB_OUT_COUNT_
} nb_job_outcome_t;

/** The metric label of an outcome: succeeded, retry, dead, deferred. */
const char *nb_jobs_outcome_label(nb_job_outcome_t o);
/** Enters a kind (idempotent; at most 32 kinds, more are ignored). */
void nb_jobs_stats_register(const char *kind);
/** Counts one attempt of a job of `kind` that took `us` microseconds and ended as `o`. Lock-free. */
void nb_jobs_stats_record(const char *kind, nb_job_outcome_t o, int64_t us);

typedef struct nb_job_kind_stats {
	const char *kind;
	uint64_t by_outcome[NB_JOB_OUT_COUNT_];
	nb_histo_snap_t duration;
} nb_job_kind_stats_t;

/** The number of kinds entered so far. */
int nb_jobs_stats_kinds(void);
/** Copies kind i's counters into out; false past the end. */
bool nb_jobs_stats_get(int i, nb_job_kind_stats_t *out);

#endif
