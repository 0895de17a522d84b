/*
 * queue_stats.h — the job queue's depth and the age of its oldest ready job,
 * read at scrape time by /metrics.
 *
 * One statement over the queue's partial indexes (jobs_claim_idx holds the
 * pending and to-be-retried jobs, jobs_lease_idx the running ones), run in a
 * short transaction with its own statement_timeout so that a slow or locked
 * database makes the scrape report an error instead of hanging it.
 */
#ifndef NB_STORE_QUEUE_STATS_H
#define NB_STORE_QUEUE_STATS_H

#include <stdbool.h>
#include <stdint.h>

#include "db/db.h"

typedef struct nb_store_queue_stats {
	int64_t pending; /* waiting for their first run (due or not) */
	int64_t failed;  /* failed an attempt, waiting for a retry */
	int64_t running;
	bool has_ready;              /* some pending or failed job is due now */
	double oldest_ready_age_s;   /* how long the oldest due job has been due (0 without one) */
} nb_store_queue_stats_t;

/**
 * Fills *out with one statement bounded by timeout_ms (statement_timeout,
 * local to its transaction). 0, or a negative nb_err_t (out then zeroed); the
 * connection is left outside any transaction either way.
 */
int nb_store_queue_stats(nb_conn_t *c, int timeout_ms, nb_store_queue_stats_t *out);

#endif
