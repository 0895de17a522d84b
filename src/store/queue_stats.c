/*
 * queue_stats.c — the scrape-time queue query (see queue_stats.h).
 *
 * Counting is bounded by the backlog (the partial indexes hold only waiting
 * and running jobs, never the finished history) and by the statement
 * timeout; the oldest due job is the first entry of jobs_claim_idx.
 */
#include "store/queue_stats.h"

#include <stdio.h>
#include <string.h>

#include "core/err.h"

NB_STMT(st_queue_timeout, "SELECT set_config('statement_timeout', $1::int::text, true)");
NB_STMT(st_queue_stats,
	"SELECT (SELECT count(*) FROM jobs WHERE status = 'pending' AND deleted_at IS NULL),"
	" (SELECT count(*) FROM jobs WHERE status = 'failed' AND deleted_at IS NULL),"
	" (SELECT count(*) FROM jobs WHERE status = 'running'),"
	" (SELECT extract(epoch FROM now() - min(run_at))::float8 FROM jobs"
	"  WHERE status IN ('pending', 'failed') AND deleted_at IS NULL AND run_at <= now())");

int nb_store_queue_stats(nb_conn_t *c, int timeout_ms, nb_store_queue_stats_t *out)
{
	memset(out, 0, sizeof *out);
	int rc = nb_db_begin(c);
	if (rc < 0)
		return rc;
	nb_params_t p;
	nb_params_init(&p);
	nb_p_int(&p, timeout_ms > 0 ? timeout_ms : 1000);
	PGresult *r = NULL;
	rc = nb_db_exec(c, &st_queue_timeout, &p, &r);
	PQclear(r);
	r = NULL;
	if (rc < 0)
		goto fail;
	nb_params_init(&p);
	rc = nb_db_exec(c, &st_queue_stats, &p, &r);
	if (rc < 0)
		goto fail;
	if (PQntuples(r) != 1) {
		rc = NB_EINTERNAL;
		goto fail;
	}
	out->pending = nb_db_get_int(r, 0, 0);
	out->failed = nb_db_get_int(r, 0, 1);
	out->running = nb_db_get_int(r, 0, 2);
	if (!PQgetisnull(r, 0, 3)) {
		out->has_ready = true;
		const char *v = nb_db_get(r, 0, 3);
		double age = 0;
		if (v && sscanf(v, "%lf", &age) == 1 && age > 0)
			out->oldest_ready_age_s = age;
	}
	PQclear(r);
	r = NULL;
	rc = nb_db_commit(c);
	if (rc < 0)
		memset(out, 0, sizeof *out);
	return rc;
fail:
	PQclear(r);
	nb_db_rollback(c);
	memset(out, 0, sizeof *out);
	return rc;
}
