/*
 * retention.h — the retention: what has outlived its keeping (the trash past
 * NOTEBOOKD_TRASH_RETENTION_DAYS, stored bytes nothing uses, expired refresh
 * tokens and one-time codes, finished jobs past NOTEBOOKD_JOB_RETENTION_DAYS)
 * deleted in batches of NOTEBOOKD_RETENTION_BATCH rows.
 *
 * It runs by itself: every process with job workers starts a scheduler
 * thread that, every min(interval, 30 s), tries to take this period's run
 * (store/retention.h: one UPDATE on scheduled_tasks, won by one process per
 * NOTEBOOKD_RETENTION_INTERVAL_S across the deployment) and, when it wins,
 * runs it and logs the counts. `notebookd purge` runs the same thing at once
 * (for cron).
 */
#ifndef NB_JOBS_RETENTION_H
#define NB_JOBS_RETENTION_H

#include <stdint.h>

#include "db/pool.h"
#include "store/retention.h"

/** Rows deleted by one run, by kind (nb_retention_what_t). */
typedef struct nb_retention_counts {
	long deleted[NB_RET_COUNT];
} nb_retention_counts_t;

/** Process-wide totals since start, for /metrics. */
typedef struct nb_retention_stats {
	uint64_t runs, failures;
	uint64_t deleted[NB_RET_COUNT];
	int64_t last_success_unix; /* 0: none yet */
	double last_duration_s;
} nb_retention_stats_t;

/**
 * Runs the retention once on c with the configured ages and batch size:
 * every kind, batch after batch until a batch comes back short. Logs one
 * line with the counts and adds them to the process's stats. Returns 0 or
 * the first error (what was deleted before it stays deleted).
 */
int nb_retention_run(nb_conn_t *c, nb_retention_counts_t *out);

/** Copies the process's retention totals. */
void nb_retention_stats(nb_retention_stats_t *out);

typedef struct nb_retention_sched nb_retention_sched_t;

/**
 * Starts the scheduler thread on `pool` (NULL when NOTEBOOKD_RETENTION_INTERVAL_S
 * is 0: retention off, `notebookd purge` from cron instead). `by` names this
 * process in scheduled_tasks.last_started_by.
 */
nb_retention_sched_t *nb_retention_sched_start(nb_pool_t *pool, const char *by);

/** Stops the scheduler (waits for a run in progress to finish its batch). NULL is a no-op. */
void nb_retention_sched_stop(nb_retention_sched_t *s);

#endif
