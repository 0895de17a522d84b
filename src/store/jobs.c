/*
 * jobs.c — SQL of the job queue (see jobs.h; the design is in jobs/README.md).
 *
 * Every statement that picks rows to change does it with FOR UPDATE SKIP
 * LOCKED inside `id = ANY (ARRAY(subquery))`: the subquery runs once (an
 * initplan), locks what it returns, and the outer UPDATE then finds those rows
 * by primary key. Two claimers never wait for each other and never get the
 * same row. Batches (ids, errors) travel as one array parameter each, so a
 * batch is one statement whatever its size.
 */
#include "store/jobs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/utf8.h"
#include "core/uuid.h"
#include "db/db.h"
#include "store/rows.h"

#define JOB_JSON \
	"json_build_object('id', j.id, 'kind', j.kind, 'status', j.status, 'attempts', j.attempts," \
	" 'max_attempts', j.max_attempts, 'last_error', j.last_error, 'run_at', nb_ts(j.run_at)," \
	" 'created_at', nb_ts(j.created_at), 'updated_at', nb_ts(j.updated_at)," \
	" 'finished_at', nb_ts(j.finished_at))"

#define MS "* interval '1 millisecond'"

/* The pg_notify runs once per inserted row, and only when the job is due now. */
NB_STMT(st_job_insert,
	"WITH ins AS (INSERT INTO jobs (id, user_id, kind, source_id, document_id, quiz_id, study_guide_id,"
	" payload, max_attempts, run_at)"
	" VALUES ($1, $2, $3, $4, $5, $6, $7, coalesce($8::jsonb, '{}'), $9, now() + $10::int " MS ")"
	" RETURNING id)"
	" SELECT pg_notify('" NB_JOBS_CHANNEL "', '') FROM ins WHERE $10::int <= 0");

/*
 * The claim is fair across users, still one statement per batch. It looks at
 * the $5 oldest ready jobs (jobs_claim_idx, in run_at order), ranks each by
 * its place among its owner's jobs in that window plus its owner's running
 * jobs (counted over jobs_lease_idx, which holds only running jobs, and only
 * when the window holds more than one owner: one owner's backlog costs no
 * count; an index of running jobs by owner was measured to halve the queue
 * benchmark, every claim and completion updating one hot key), and locks
 * the $4 best-ranked, each through the primary key in a LATERAL subquery (a
 * join would let the planner hash the whole table):
 * an owner's next job goes after every other owner's next one (round robin),
 * an owner with jobs running goes after owners with none, and among equals
 * the owner with the shorter backlog in the window goes first (so the user
 * with one small job is not behind the one with four big ones when both have
 * nothing running). One owner's backlog still fills whole batches when
 * nobody else waits.
 * RETURNING comes in physical order: the outer SELECT restores run_at order
 * so that a batch also runs oldest first.
 */
#define NB_CLAIM_FAIR_MAX 16 /* batches up to this size are claimed fairly */
#define CLAIM_PICK                                                                                             \
	"  WITH c AS (SELECT id, user_id, run_at,"                                                             \
	"    row_number() OVER (PARTITION BY user_id ORDER BY run_at, id) AS rn,"  \
	"    count(*) OVER (PARTITION BY user_id) AS backlog FROM (SELECT id, user_id, run_at" \
	"    FROM jobs WHERE status IN ('pending', 'failed') AND run_at <= now() AND deleted_at IS NULL"      \
	"    AND kind = ANY ($3::text[]) ORDER BY run_at LIMIT $5) w),"                                        \
	"  u AS (SELECT x.user_id, count(*) AS busy FROM jobs x WHERE x.status = 'running'"                     \
	"    AND (SELECT count(DISTINCT user_id) FROM c) > 1 GROUP BY x.user_id),"                            \
	"  r AS (SELECT c.id, c.run_at, c.rn + coalesce(u.busy, 0) AS turn, c.backlog FROM c"                             \
	"    LEFT JOIN u ON u.user_id = c.user_id ORDER BY turn, backlog, run_at, id)"                                  \
	"  SELECT l.id FROM r CROSS JOIN LATERAL (SELECT j.id FROM jobs j WHERE j.id = r.id"                    \
	"   AND j.status IN ('pending', 'failed') AND j.deleted_at IS NULL FOR UPDATE SKIP LOCKED) l LIMIT $4"
#define CLAIM_STMT(pick)                                                                                       \
	"WITH claimed AS (UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_by = $1,"        \
	" locked_until = now() + $2::int " MS ", updated_at = now()"                                          \
	" WHERE id = ANY (ARRAY(" pick "))"                                                                    \
	" RETURNING id, kind, user_id, source_id, document_id, quiz_id, study_guide_id, payload,"             \
	" attempts, max_attempts, run_at)"                                                                     \
	" SELECT id, kind, user_id, source_id, document_id, quiz_id, study_guide_id, payload::text,"          \
	" attempts, max_attempts FROM claimed ORDER BY run_at, id"
NB_STMT(st_jobs_claim_fair, CLAIM_STMT(CLAIM_PICK));
/* Large batches: first in, first out (see nb_store_jobs_claim). $5 is unused. */
NB_STMT(st_jobs_claim, CLAIM_STMT("  SELECT id FROM jobs"
				  "  WHERE status IN ('pending', 'failed') AND run_at <= now() AND deleted_at IS NULL"
				  "   AND kind = ANY ($3::text[]) AND $5::int > 0"
				  "  ORDER BY run_at LIMIT $4 FOR UPDATE SKIP LOCKED"));

NB_STMT(st_jobs_next_due, "SELECT ceil(extract(epoch FROM min(run_at) - now()) * 1000)::bigint FROM jobs"
			  " WHERE status IN ('pending', 'failed') AND deleted_at IS NULL AND kind = ANY ($1::text[])");

NB_STMT(st_jobs_succeed, "UPDATE jobs SET status = 'succeeded', finished_at = now(), updated_at = now(),"
			 " locked_by = NULL, locked_until = NULL"
			 " WHERE id = ANY ($1::uuid[]) AND locked_by = $2 AND status = 'running'");

/* A job whose attempts are spent fails for good (the SQL side of
 * nb_job_fails_for_good in src/jobs/queue.c); p: the table's prefix. */
#define SPENT(p) "(" p "attempts >= " p "max_attempts)"
#define FAIL_DEAD "(f.permanent OR " SPENT("j.") ")"

NB_STMT(st_jobs_fail,
	"UPDATE jobs j SET"
	" status = CASE WHEN " FAIL_DEAD " THEN 'dead' ELSE 'failed' END,"
	" run_at = CASE WHEN " FAIL_DEAD " THEN j.run_at"
	"          ELSE now() + f.backoff_ms " MS " END,"
	" finished_at = CASE WHEN " FAIL_DEAD " THEN now() END,"
	" last_error = f.error, locked_by = NULL, locked_until = NULL, updated_at = now()"
	" FROM unnest($1::uuid[], $2::text[], $3::int[], $4::bool[]) AS f(id, error, backoff_ms, permanent)"
	" WHERE j.id = f.id AND j.locked_by = $5 AND j.status = 'running'"
	" RETURNING j.status = 'dead'");

NB_STMT(st_jobs_heartbeat, "UPDATE jobs SET locked_until = now() + $3::int " MS
			   " WHERE id = ANY ($1::uuid[]) AND locked_by = $2 AND status = 'running'");

NB_STMT(st_jobs_handback,
	"UPDATE jobs SET status = CASE WHEN attempts <= 1 THEN 'pending' ELSE 'failed' END,"
	" attempts = greatest(attempts - 1, 0), locked_by = NULL, locked_until = NULL, updated_at = now(),"
	" run_at = CASE WHEN $3::int > 0 THEN now() + $3::int " MS " ELSE run_at END"
	" WHERE id = ANY ($1::uuid[]) AND locked_by = $2 AND status = 'running'");

NB_STMT(st_jobs_reap, "UPDATE jobs SET"
		      " status = CASE WHEN " SPENT("") " THEN 'dead' ELSE 'failed' END,"
		      " finished_at = CASE WHEN " SPENT("") " THEN now() END,"
		      " run_at = now(), last_error = 'lease expired (worker lost)',"
		      " locked_by = NULL, locked_until = NULL, updated_at = now()"
		      " WHERE id = ANY (ARRAY("
		      "  SELECT id FROM jobs WHERE status = 'running' AND locked_until < now()"
		      "  ORDER BY locked_until LIMIT $1 FOR UPDATE SKIP LOCKED))"
		      " RETURNING status = 'dead'");

NB_STMT(st_jobs_notify, "SELECT pg_notify('" NB_JOBS_CHANNEL "', '')");

NB_STMT(st_job_get, "SELECT " JOB_JSON " FROM jobs j"
		    " WHERE j.id = $1 AND j.user_id = $2 AND j.deleted_at IS NULL");

/* Both list statements read jobs_user_created_idx in order. The cursor's
 * position is looked up once (an initplan), so the row comparison is an
 * index condition and a deep page costs what the first one does. */
/* The list answers binary rows (JOB_COLS) that nb_store_jobs_write writes as JSON. */
#define JOB_COLS                                                                                          \
	"j.id, j.kind, j.status, j.attempts, j.max_attempts, j.last_error, j.run_at, j.created_at, j.updated_at," \
	" j.finished_at"
NB_STMT(st_jobs_list, "SELECT " JOB_COLS " FROM jobs j"
		      " WHERE j.user_id = $1 AND j.deleted_at IS NULL AND ($2::text IS NULL OR j.status = $2)"
		      " ORDER BY j.created_at DESC, j.id DESC LIMIT $3");
NB_STMT(st_jobs_list_after,
	"SELECT " JOB_COLS " FROM jobs j"
	" WHERE j.user_id = $1 AND j.deleted_at IS NULL AND ($2::text IS NULL OR j.status = $2)"
	" AND (j.created_at, j.id) < ((SELECT c.created_at FROM jobs c WHERE c.id = $4 AND c.user_id = $1), $4)"
	" ORDER BY j.created_at DESC, j.id DESC LIMIT $3");

/* Appends one element of a PostgreSQL array literal: quoted, with " and \
 * escaped, invalid UTF-8 replaced (an error text may come from anywhere). */
static void array_elem(nb_buf_t *b, const char *s)
{
	nb_buf_t clean = NB_BUF_INIT;
	nb_utf8_sanitize(&clean, s ? s : "", s ? strlen(s) : 0);
	if (b->len > 1)
		nb_buf_putc(b, ',');
	nb_buf_putc(b, '"');
	for (size_t i = 0; i < clean.len; i++) {
		char ch = clean.data[i];
		if (ch == '"' || ch == '\\')
			nb_buf_putc(b, '\\');
		nb_buf_putc(b, ch);
	}
	nb_buf_putc(b, '"');
	nb_buf_dispose(&clean);
}

/* Builds {"a","b",…} from n strings into b (which must be empty). */
static void array_literal(nb_buf_t *b, const char *const *v, int n)
{
	nb_buf_putc(b, '{');
	for (int i = 0; i < n; i++)
		array_elem(b, v[i]);
	nb_buf_putc(b, '}');
}

static void copy_col(char *dst, size_t n, const PGresult *r, int row, int col)
{
	const char *v = nb_db_get(r, row, col);
	snprintf(dst, n, "%s", v ? v : "");
}

int nb_store_job_insert(nb_conn_t *c, const nb_store_job_new_t *j)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, j->id);
	nb_p_text(&p, j->user_id);
	nb_p_text(&p, j->kind);
	nb_p_text(&p, j->source_id);
	nb_p_text(&p, j->document_id);
	nb_p_text(&p, j->quiz_id);
	nb_p_text(&p, j->study_guide_id);
	nb_p_text(&p, j->payload_json);
	nb_p_int(&p, j->max_attempts);
	nb_p_int(&p, j->delay_ms);
	return nb_db_exec(c, &st_job_insert, &p, NULL);
}

/* One claim statement; appends up to `limit` jobs to out[*n ..]. */
static int claim_with(nb_conn_t *c, nb_stmt_t *st, const char *worker, int lease_ms, const char *kinds, int limit,
		      nb_job_t *out, int *n)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, worker);
	nb_p_int(&p, lease_ms);
	nb_p_text(&p, kinds);
	nb_p_int(&p, limit);
	/* the window the ranking looks at: wide enough that another owner's job
	 * behind a batch of one owner's is seen, small enough to stay cheap */
	nb_p_int(&p, limit * 2 < 64 ? 64 : limit * 2 > 1024 ? 1024 : limit * 2);
	PGresult *r = NULL;
	int rc = nb_db_exec(c, st, &p, &r);
	if (rc < 0)
		return rc;
	int rows = PQntuples(r);
	for (int i = 0; i < rows && i < limit; i++) {
		nb_job_t *j = &out[*n];
		copy_col(j->id, sizeof j->id, r, i, 0);
		copy_col(j->kind, sizeof j->kind, r, i, 1);
		copy_col(j->user_id, sizeof j->user_id, r, i, 2);
		copy_col(j->source_id, sizeof j->source_id, r, i, 3);
		copy_col(j->document_id, sizeof j->document_id, r, i, 4);
		copy_col(j->quiz_id, sizeof j->quiz_id, r, i, 5);
		copy_col(j->study_guide_id, sizeof j->study_guide_id, r, i, 6);
		j->payload = json_loads(PQgetvalue(r, i, 7), 0, NULL);
		if (!j->payload) /* jsonb always parses; keep handlers free of NULL checks anyway */
			j->payload = json_object();
		j->attempts = (int)nb_db_get_int(r, i, 8);
		j->max_attempts = (int)nb_db_get_int(r, i, 9);
		(*n)++;
	}
	PQclear(r);
	return 0;
}

int nb_store_jobs_claim(nb_conn_t *c, const char *worker, int lease_ms, const char *const *kinds, int nkinds, int limit,
			nb_job_t *out, int *n)
{
	*n = 0;
	nb_buf_t k = NB_BUF_INIT;
	array_literal(&k, kinds, nkinds);
	int rc;
	if (limit <= NB_CLAIM_FAIR_MAX) {
		rc = claim_with(c, &st_jobs_claim_fair, worker, lease_ms, k.data, limit, out, n);
		/* Nothing in the window: other claimers may have taken all of it
		 * meanwhile (its rows are read before they are locked) while older
		 * ready jobs remain past it; the plain claim reads on. */
		if (rc == 0 && *n == 0)
			rc = claim_with(c, &st_jobs_claim, worker, lease_ms, k.data, limit, out, n);
	} else {
		/* A batch this large means measured jobs this short (the prefetch
		 * holds 50 ms of work per handler): behind it nobody waits long,
		 * and the plain claim costs a third of the fair one's time. */
		rc = claim_with(c, &st_jobs_claim, worker, lease_ms, k.data, limit, out, n);
	}
	nb_buf_dispose(&k);
	return rc;
}

int nb_store_jobs_next_due(nb_conn_t *c, const char *const *kinds, int nkinds, int64_t *ms)
{
	*ms = -1;
	nb_buf_t k = NB_BUF_INIT;
	array_literal(&k, kinds, nkinds);
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, k.data);
	PGresult *r = NULL;
	int rc = nb_db_exec(c, &st_jobs_next_due, &p, &r);
	nb_buf_dispose(&k);
	if (rc < 0)
		return rc;
	if (PQntuples(r) == 1 && !PQgetisnull(r, 0, 0)) /* NULL: no waiting job */
		*ms = nb_db_get_int(r, 0, 0) > 0 ? nb_db_get_int(r, 0, 0) : 0;
	PQclear(r);
	return 0;
}

/* Runs an UPDATE over an array of ids with the worker's name (and an optional
 * integer third parameter); *count = rows changed. */
static int ids_update(nb_conn_t *c, nb_stmt_t *st, const char *worker, const char *const *ids, int n, int extra,
		      bool with_extra, int *count)
{
	*count = 0;
	if (n <= 0)
		return 0;
	nb_buf_t a = NB_BUF_INIT;
	array_literal(&a, ids, n);
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, a.data);
	nb_p_text(&p, worker);
	if (with_extra)
		nb_p_int(&p, extra);
	PGresult *r = NULL;
	int rc = nb_db_exec(c, st, &p, &r);
	nb_buf_dispose(&a);
	if (rc < 0)
		return rc;
	*count = atoi(PQcmdTuples(r));
	PQclear(r);
	return 0;
}

int nb_store_jobs_succeed(nb_conn_t *c, const char *worker, const char *const *ids, int n, int *done)
{
	return ids_update(c, &st_jobs_succeed, worker, ids, n, 0, false, done);
}

int nb_store_jobs_heartbeat(nb_conn_t *c, const char *worker, const char *const *ids, int n, int lease_ms,
			    int *extended)
{
	return ids_update(c, &st_jobs_heartbeat, worker, ids, n, lease_ms, true, extended);
}

int nb_store_jobs_handback(nb_conn_t *c, const char *worker, const char *const *ids, int n, int delay_ms,
			   int *count)
{
	int rc = ids_update(c, &st_jobs_handback, worker, ids, n, delay_ms, true, count);
	if (rc == 0 && *count > 0)
		rc = nb_db_exec(c, &st_jobs_notify, NULL, NULL);
	return rc;
}

/* Counts the rows of a RETURNING (bool) result that are true. */
static int count_true(const PGresult *r)
{
	int t = 0;
	for (int i = 0; i < PQntuples(r); i++)
		t += nb_db_get_bool(r, i, 0);
	return t;
}

int nb_store_jobs_fail(nb_conn_t *c, const char *worker, const nb_store_job_failure_t *f, int n, int *done, int *dead)
{
	*done = *dead = 0;
	if (n <= 0)
		return 0;
	nb_buf_t ids = NB_BUF_INIT, errs = NB_BUF_INIT, backoffs = NB_BUF_INIT, perms = NB_BUF_INIT;
	nb_buf_putc(&ids, '{');
	nb_buf_putc(&errs, '{');
	nb_buf_putc(&backoffs, '{');
	nb_buf_putc(&perms, '{');
	for (int i = 0; i < n; i++) {
		array_elem(&ids, f[i].id);
		array_elem(&errs, f[i].error);
		nb_buf_printf(&backoffs, "%s%d", i ? "," : "", f[i].backoff_ms);
		nb_buf_printf(&perms, "%s%s", i ? "," : "", f[i].permanent ? "t" : "f");
	}
	nb_buf_putc(&ids, '}');
	nb_buf_putc(&errs, '}');
	nb_buf_putc(&backoffs, '}');
	nb_buf_putc(&perms, '}');
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, ids.data);
	nb_p_text(&p, errs.data);
	nb_p_text(&p, backoffs.data);
	nb_p_text(&p, perms.data);
	nb_p_text(&p, worker);
	PGresult *r = NULL;
	int rc = nb_db_exec(c, &st_jobs_fail, &p, &r);
	nb_buf_dispose(&ids);
	nb_buf_dispose(&errs);
	nb_buf_dispose(&backoffs);
	nb_buf_dispose(&perms);
	if (rc < 0)
		return rc;
	*done = PQntuples(r);
	*dead = count_true(r);
	PQclear(r);
	return 0;
}

int nb_store_jobs_reap(nb_conn_t *c, int limit, int *requeued, int *dead)
{
	*requeued = *dead = 0;
	nb_params_t p;
	nb_params_init(&p);
	nb_p_int(&p, limit);
	PGresult *r = NULL;
	int rc = nb_db_exec(c, &st_jobs_reap, &p, &r);
	if (rc < 0)
		return rc;
	*dead = count_true(r);
	*requeued = PQntuples(r) - *dead;
	PQclear(r);
	if (*requeued > 0)
		rc = nb_db_exec(c, &st_jobs_notify, NULL, NULL);
	return rc;
}

int nb_store_jobs_listen(PGconn *pg)
{
	PGresult *r = PQexec(pg, "LISTEN " NB_JOBS_CHANNEL);
	int rc = r && PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : NB_EUNAVAIL;
	PQclear(r);
	return rc;
}

int nb_store_job_get(nb_conn_t *c, const char *user_id, const char *job_id, json_t **out)
{
	*out = NULL;
	if (!job_id || !nb_uuid_valid(job_id) || !user_id || !nb_uuid_valid(user_id))
		return NB_ENOTFOUND;
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, job_id);
	nb_p_text(&p, user_id);
	PGresult *r = NULL;
	int rc = nb_db_exec(c, &st_job_get, &p, &r);
	if (rc < 0)
		return rc;
	if (PQntuples(r) == 1)
		*out = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
	rc = PQntuples(r) == 0 ? NB_ENOTFOUND : *out ? 0 : NB_EINTERNAL;
	PQclear(r);
	return rc;
}

bool nb_store_jobs_status_known(const char *s)
{
	static const char *const all[] = {"pending", "running", "succeeded", "failed", "dead"};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		if (strcmp(s, all[i]) == 0)
			return true;
	return false;
}

int nb_store_jobs_list_rows(nb_conn_t *c, const char *user_id, const char *status, int limit,
			    const char *after_id, PGresult **rows)
{
	*rows = NULL;
	if ((status && !nb_store_jobs_status_known(status)) || limit < 1 || limit > 100 ||
	    (after_id && !nb_uuid_valid(after_id)))
		return NB_EINVALID;
	if (!user_id || !nb_uuid_valid(user_id))
		return 0;
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, user_id);
	nb_p_text(&p, status);
	nb_p_int(&p, limit + 1); /* one more tells whether a next page exists */
	if (after_id)
		nb_p_text(&p, after_id);
	return nb_db_exec_binary(c, after_id ? &st_jobs_list_after : &st_jobs_list, &p, rows);
}

void nb_store_jobs_write(nb_jsonw_t *w, const PGresult *r, int row, char key_out[40], char id_out[37])
{
	nb_jsonw_obj(w);
	nb_jsonw_key(w, "id");
	nb_row_uuid(w, r, row, 0);
	nb_jsonw_key(w, "kind");
	nb_row_text(w, r, row, 1);
	nb_jsonw_key(w, "status");
	nb_row_text(w, r, row, 2);
	nb_jsonw_key(w, "attempts");
	nb_row_int(w, r, row, 3);
	nb_jsonw_key(w, "max_attempts");
	nb_row_int(w, r, row, 4);
	nb_jsonw_key(w, "last_error");
	nb_row_text(w, r, row, 5);
	nb_jsonw_key(w, "run_at");
	nb_row_ts(w, r, row, 6);
	nb_jsonw_key(w, "created_at");
	nb_row_ts(w, r, row, 7);
	nb_jsonw_key(w, "updated_at");
	nb_row_ts(w, r, row, 8);
	nb_jsonw_key(w, "finished_at");
	nb_row_ts(w, r, row, 9);
	nb_jsonw_obj_end(w);
	snprintf(key_out, 40, "j");
	nb_row_uuid_text(r, row, 0, id_out);
}
