/*
 * retention.h — SQL of the retention: what has outlived its keeping, deleted
 * in small batches, and the one row that makes it run once per period across
 * every process of a deployment (table scheduled_tasks).
 *
 * Each batch is one autocommitted statement deleting at most `limit` rows it
 * locked with SKIP LOCKED: no batch waits on a row a request holds, and no
 * lock outlives one short statement.
 */
#ifndef NB_STORE_RETENTION_H
#define NB_STORE_RETENTION_H

#include <stdbool.h>

#include "db/pool.h"

/** What one retention batch deletes. */
typedef enum nb_retention_what {
	NB_RET_NOTEBOOKS, /* in the trash longer than `days` (with everything under them) */
	NB_RET_SOURCES,	  /* in the trash longer than `days` */
	NB_RET_DOCUMENTS, /* stored bytes older than `days` no source uses any more */
	NB_RET_REFRESH_TOKENS, /* expired more than a day ago (spent, revoked or not) */
	NB_RET_OTPS,	       /* one-time codes expired more than a day ago (used or not) */
	NB_RET_JOBS,	       /* succeeded or dead jobs finished more than `days` ago */
	NB_RET_IDEMPOTENCY_KEYS, /* Idempotency-Key records past their 24-hour window */
	NB_RET_COUNT
} nb_retention_what_t;

/** The label of a kind of row ("notebooks", …), for logs and metrics. */
const char *nb_store_retention_label(nb_retention_what_t what);

/** Deletes one batch of at most `limit` rows of `what`; *deleted = rows deleted. */
int nb_store_retention_batch(nb_conn_t *c, nb_retention_what_t what, int days, int limit, long *deleted);

/**
 * Takes this period's run of the scheduled task `name`: *won is true for
 * exactly one caller per period across the deployment (the one whose UPDATE
 * moved next_run_at to now + interval_s); `by` is recorded. A next_run_at
 * further away than one interval (the interval was shortened) is due now.
 */
int nb_store_task_take(nb_conn_t *c, const char *name, int interval_s, const char *by, bool *won);

/** Records the end of a run with its result (a JSON object text). */
int nb_store_task_done(nb_conn_t *c, const char *name, const char *result_json);

#endif
