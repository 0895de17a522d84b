/*
 * retention.c — SQL of the retention (see retention.h).
 *
 * Every delete has the shape of the job claim: `id = ANY (ARRAY(SELECT id …
 * LIMIT n FOR UPDATE SKIP LOCKED))`, over an index that finds the rows
 * (the trash indexes, refresh_tokens_expires_idx, otps_expires_idx,
 * jobs_finished_idx), so a batch costs its own rows whatever the table's size.
 */
#include "store/retention.h"

#include <stdlib.h>

#include "core/err.h"
#include "db/db.h"
#include "store/idempotency.h"

#define OLDER(col) col " < now() - make_interval(days => $1)"
#define BATCH(table, cond) \
	"DELETE FROM " table " WHERE id = ANY (ARRAY(SELECT id FROM " table " WHERE " cond \
	" LIMIT $2 FOR UPDATE SKIP LOCKED))"

NB_STMT(st_ret_notebooks, BATCH("notebooks", OLDER("deleted_at")));
NB_STMT(st_ret_sources, BATCH("sources", OLDER("deleted_at")));
/* bytes no source refers to any more (their sources were purged or erased) */
NB_STMT(st_ret_documents, "DELETE FROM documents WHERE id = ANY (ARRAY(SELECT d.id FROM documents d"
			  " WHERE d.created_at < now() - make_interval(days => $1)"
			  " AND NOT EXISTS (SELECT 1 FROM sources s WHERE s.document_id = d.id)"
			  " LIMIT $2 FOR UPDATE OF d SKIP LOCKED))");
/* $1 is unused by the fixed one-day grace; kept so every batch binds the same parameters */
NB_STMT(st_ret_refresh, BATCH("refresh_tokens", "expires_at < now() - interval '1 day' AND $1::int IS NOT NULL"));
NB_STMT(st_ret_otps, BATCH("otps", "expires_at < now() - interval '1 day' AND $1::int IS NOT NULL"));
NB_STMT(st_ret_jobs, BATCH("jobs", OLDER("finished_at") " AND status IN ('succeeded', 'dead')"));
/* keyed by (user, key), no id: batched by ctid within the one statement; the window is the claim's (NB_IDEM_WINDOW_SQL) */
NB_STMT(st_ret_idem, "DELETE FROM idempotency_keys WHERE ctid = ANY (ARRAY(SELECT ctid FROM idempotency_keys"
		     " WHERE created_at < now() - " NB_IDEM_WINDOW_SQL " AND $1::int IS NOT NULL"
		     " LIMIT $2 FOR UPDATE SKIP LOCKED))");

NB_STMT(st_task_take, "UPDATE scheduled_tasks SET next_run_at = now() + make_interval(secs => $2),"
		      " last_started_at = now(), last_started_by = $3, updated_at = now()"
		      " WHERE name = $1 AND (next_run_at <= now() OR next_run_at > now() + make_interval(secs => $2))"
		      " RETURNING 1");
NB_STMT(st_task_done, "UPDATE scheduled_tasks SET last_finished_at = now(), last_result = $2::jsonb,"
		      " updated_at = now() WHERE name = $1");

static nb_stmt_t *const stmts[NB_RET_COUNT] = {&st_ret_notebooks, &st_ret_sources, &st_ret_documents,
					       &st_ret_refresh,	  &st_ret_otps,	   &st_ret_jobs,
					       &st_ret_idem};
static const char *const labels[NB_RET_COUNT] = {"notebooks",	   "sources", "documents",
						 "refresh_tokens", "otps",    "jobs",
						 "idempotency_keys"};

const char *nb_store_retention_label(nb_retention_what_t what)
{
	return what >= 0 && what < NB_RET_COUNT ? labels[what] : "?";
}

int nb_store_retention_batch(nb_conn_t *c, nb_retention_what_t what, int days, int limit, long *deleted)
{
	*deleted = 0;
	if (what < 0 || what >= NB_RET_COUNT)
		return NB_EINVALID;
	nb_params_t p;
	nb_params_init(&p);
	nb_p_int(&p, days);
	nb_p_int(&p, limit);
	PGresult *r = NULL;
	int rc = nb_db_exec(c, stmts[what], &p, &r);
	if (rc < 0)
		return rc;
	*deleted = atol(PQcmdTuples(r));
	PQclear(r);
	return 0;
}

int nb_store_task_take(nb_conn_t *c, const char *name, int interval_s, const char *by, bool *won)
{
	*won = false;
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, name);
	nb_p_int(&p, interval_s);
	nb_p_text(&p, by);
	PGresult *r = NULL;
	int rc = nb_db_exec(c, &st_task_take, &p, &r);
	if (rc < 0)
		return rc;
	*won = PQntuples(r) == 1;
	PQclear(r);
	return 0;
}

int nb_store_task_done(nb_conn_t *c, const char *name, const char *result_json)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, name);
	nb_p_text(&p, result_json);
	return nb_db_exec(c, &st_task_done, &p, NULL);
}
