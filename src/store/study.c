/*
 * study.c — SQL of quizzes, study guides and source guides (see study.h).
 *
 * Statements come in pairs or triples indexed by nb_study_kind_t, so the
 * handlers share one code path. Id lists travel as JSON text and become
 * uuid[] in SQL (the API checked every id's syntax first).
 */
#include "store/study.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/uuid.h"
#include "db/db.h"
#include "store/shapes.h"

/* A JSON array of ids (text parameter) as uuid[], NULL for NULL; and as a set for IN. */
#define IDS(p) "(SELECT array_agg(value::uuid) FROM json_array_elements_text(" p "::json))"
#define IN_IDS(p) " IN (SELECT value::uuid FROM json_array_elements_text(" p "::json))"

NB_STMT(st_check,
	"SELECT (SELECT count(*) FROM json_array_elements_text($3::json) u"
	"        WHERE NOT EXISTS (SELECT 1 FROM sources s WHERE s.id = u.value::uuid AND s.notebook_id = n.id"
	"                          AND s.deleted_at IS NULL)),"
	"       (SELECT count(*) FROM sources s WHERE s.notebook_id = n.id AND s.deleted_at IS NULL"
	"        AND s.status = 'ready' AND ($3::json IS NULL OR s.id" IN_IDS("$3") "))"
	" FROM notebooks n WHERE n.id = $1 AND n.owner_id = $2 AND n.deleted_at IS NULL FOR SHARE OF n");

NB_STMT(st_quiz_create, "INSERT INTO quizzes (id, notebook_id, title, num_questions, source_ids)"
			" VALUES ($1, $2, $3, $4, " IDS("$5") ")");
NB_STMT(st_guide_create, "INSERT INTO study_guides (id, notebook_id, title, source_ids)"
			 " VALUES ($1, $2, $3, " IDS("$4") ")");

#define VISIBLE(t, n) \
	" JOIN notebooks " n " ON " n ".id = " t ".notebook_id AND " n ".owner_id = $2 AND " n ".deleted_at IS NULL" \
	" WHERE " t ".id = $1 AND " t ".deleted_at IS NULL"
NB_STMT(st_quiz_get, "SELECT " NB_SQL_QUIZ_JSON("q") " FROM quizzes q" VISIBLE("q", "n"));
NB_STMT(st_guide_get, "SELECT " NB_SQL_STUDY_GUIDE_JSON("g") " FROM study_guides g" VISIBLE("g", "n"));
NB_STMT(st_quiz_trash, "UPDATE quizzes q SET deleted_at = now() FROM notebooks n"
		       " WHERE q.id = $1 AND q.deleted_at IS NULL AND n.id = q.notebook_id AND n.owner_id = $2"
		       " AND n.deleted_at IS NULL");
NB_STMT(st_guide_trash, "UPDATE study_guides g SET deleted_at = now() FROM notebooks n"
			" WHERE g.id = $1 AND g.deleted_at IS NULL AND n.id = g.notebook_id AND n.owner_id = $2"
			" AND n.deleted_at IS NULL");

NB_STMT(st_quiz_target, "SELECT notebook_id, title, num_questions, array_to_json(source_ids)::text,"
			" deleted_at IS NOT NULL FROM quizzes WHERE id = $1");
NB_STMT(st_guide_target, "SELECT notebook_id, title, 0, array_to_json(source_ids)::text,"
			 " deleted_at IS NOT NULL FROM study_guides WHERE id = $1");
NB_STMT(st_source_target, "SELECT notebook_id, title, 0, NULL,"
			  " deleted_at IS NOT NULL OR status <> 'ready' FROM sources WHERE id = $1");

NB_STMT(st_chunks, "SELECT coalesce(json_agg(json_build_object('chunk_id', x.id, 'source_id', x.source_id,"
		   " 'text', x.text) ORDER BY x.o1, x.o2, x.o3), '[]')::text"
		   " FROM (SELECT c.id, c.source_id, c.text, s.created_at AS o1, s.id AS o2, c.chunk_index AS o3"
		   "       FROM chunks c JOIN sources s ON s.id = c.source_id AND s.deleted_at IS NULL"
		   "       AND s.status = 'ready'"
		   "       WHERE c.notebook_id = $1 AND c.deleted_at IS NULL"
		   "       AND ($2::json IS NULL OR c.source_id" IN_IDS("$2") ")"
		   "       AND ($3::uuid IS NULL OR c.source_id = $3)"
		   "       ORDER BY c.chunk_index, s.created_at, s.id LIMIT $4) x");

NB_STMT(st_quiz_lock, "SELECT 1 FROM quizzes WHERE id = $1 AND deleted_at IS NULL FOR UPDATE");
NB_STMT(st_guide_lock, "SELECT 1 FROM study_guides WHERE id = $1 AND deleted_at IS NULL FOR UPDATE");
NB_STMT(st_source_lock,
	"SELECT 1 FROM sources WHERE id = $1 AND deleted_at IS NULL AND status = 'ready' FOR UPDATE");

NB_STMT(st_cited_live, "SELECT count(*) FROM chunks c JOIN sources s ON s.id = c.source_id"
		       " AND s.deleted_at IS NULL AND s.status = 'ready'"
		       " WHERE c.id" IN_IDS("$1") " AND c.deleted_at IS NULL");

NB_STMT(st_quiz_ready, "UPDATE quizzes SET status = 'ready', error = NULL, questions = $2::jsonb WHERE id = $1");
NB_STMT(st_guide_ready, "UPDATE study_guides SET status = 'ready', error = NULL,"
			" summary = $2::jsonb -> 'summary', key_terms = $2::jsonb -> 'key_terms',"
			" review_questions = $2::jsonb -> 'review_questions', markdown = $2::jsonb ->> 'markdown'"
			" WHERE id = $1");
NB_STMT(st_source_ready,
	"UPDATE sources SET summary = $2::jsonb -> 'summary', topics = $2::jsonb -> 'topics' WHERE id = $1");

NB_STMT(st_quiz_failed, "UPDATE quizzes SET status = 'failed', error = $2, questions = '[]' WHERE id = $1");
NB_STMT(st_guide_failed, "UPDATE study_guides SET status = 'failed', error = $2, summary = NULL,"
			 " key_terms = '[]', review_questions = '[]', markdown = NULL WHERE id = $1");
NB_STMT(st_source_failed, "UPDATE sources SET summary = NULL, topics = NULL WHERE id = $1 AND $2::text IS NOT NULL");

NB_STMT(st_quiz_gen_del, "DELETE FROM generation_history WHERE quiz_id = $1");
NB_STMT(st_guide_gen_del, "DELETE FROM generation_history WHERE study_guide_id = $1");
NB_STMT(st_source_gen_del, "DELETE FROM generation_history WHERE source_id = $1 AND kind = 'source_guide'");

NB_STMT(st_gen_insert,
	"INSERT INTO generation_history (id, user_id, notebook_id, quiz_id, study_guide_id, source_id, kind,"
	" provider, model, input_tokens, output_tokens, latency_ms, dropped_citations, status, error)"
	" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)");

NB_STMT(st_guide_clear, "UPDATE sources SET summary = NULL, topics = NULL WHERE id = $1"
			" AND (summary IS NOT NULL OR topics IS NOT NULL)");

static nb_stmt_t *const k_get[] = {&st_quiz_get, &st_guide_get, NULL};
static nb_stmt_t *const k_trash[] = {&st_quiz_trash, &st_guide_trash, NULL};
static nb_stmt_t *const k_target[] = {&st_quiz_target, &st_guide_target, &st_source_target};
static nb_stmt_t *const k_lock[] = {&st_quiz_lock, &st_guide_lock, &st_source_lock};
static nb_stmt_t *const k_ready[] = {&st_quiz_ready, &st_guide_ready, &st_source_ready};
static nb_stmt_t *const k_failed[] = {&st_quiz_failed, &st_guide_failed, &st_source_failed};
static nb_stmt_t *const k_gen_del[] = {&st_quiz_gen_del, &st_guide_gen_del, &st_source_gen_del};
static const char *const k_gen_kind[] = {"quiz", "study_guide", "source_guide"};

/* A JSON value as a text parameter (NULL stays NULL). */
static void p_json(nb_params_t *p, const json_t *v, char **keep)
{
	*keep = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	nb_p_text(p, *keep);
}

int nb_store_study_check(nb_conn_t *c, const char *owner, const char *notebook_id, const json_t *source_ids,
			 int *unknown, int *ready)
{
	*unknown = *ready = 0;
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, notebook_id);
	nb_p_text(&p, owner);
	char *ids;
	p_json(&p, source_ids, &ids);
	PGresult *r = NULL;
	int rc = nb_db_exec(c, &st_check, &p, &r);
	free(ids);
	if (rc < 0)
		return rc;
	if (PQntuples(r) == 0) {
		rc = NB_ENOTFOUND;
	} else {
		*unknown = (int)nb_db_get_int(r, 0, 0);
		*ready = (int)nb_db_get_int(r, 0, 1);
	}
	PQclear(r);
	return rc;
}

int nb_store_study_create(nb_conn_t *c, nb_study_kind_t kind, const char *id, const char *notebook_id,
			  const char *title, int num_questions, const json_t *source_ids)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, id);
	nb_p_text(&p, notebook_id);
	nb_p_text(&p, title);
	if (kind == NB_STUDY_QUIZ)
		nb_p_int(&p, num_questions);
	char *ids;
	p_json(&p, source_ids, &ids);
	int rc = nb_db_exec(c, kind == NB_STUDY_QUIZ ? &st_quiz_create : &st_guide_create, &p, NULL);
	free(ids);
	return rc;
}

int nb_store_study_get(nb_conn_t *c, nb_study_kind_t kind, const char *owner, const char *id, json_t **out)
{
	if (kind == NB_STUDY_SOURCE_GUIDE)
		return NB_EINTERNAL;
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, id);
	nb_p_text(&p, owner);
	return nb_db_one_json(c, k_get[kind], &p, out);
}

int nb_store_study_trash(nb_conn_t *c, nb_study_kind_t kind, const char *owner, const char *id)
{
	if (kind == NB_STUDY_SOURCE_GUIDE)
		return NB_EINTERNAL;
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, id);
	nb_p_text(&p, owner);
	PGresult *r = NULL;
	int rc = nb_db_exec(c, k_trash[kind], &p, &r);
	if (rc < 0)
		return rc;
	rc = atoi(PQcmdTuples(r)) > 0 ? 0 : NB_ENOTFOUND;
	PQclear(r);
	return rc;
}

int nb_store_study_target(nb_conn_t *c, nb_study_kind_t kind, const char *id, nb_study_target_t *t)
{
	memset(t, 0, sizeof *t);
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, id);
	PGresult *r = NULL;
	int rc = nb_db_exec(c, k_target[kind], &p, &r);
	if (rc < 0)
		return rc;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return NB_ENOTFOUND;
	}
	snprintf(t->notebook_id, sizeof t->notebook_id, "%s", PQgetvalue(r, 0, 0));
	snprintf(t->title, sizeof t->title, "%s", PQgetvalue(r, 0, 1));
	t->num_questions = (int)nb_db_get_int(r, 0, 2);
	if (!PQgetisnull(r, 0, 3))
		t->source_ids = json_loads(PQgetvalue(r, 0, 3), 0, NULL);
	t->gone = nb_db_get_bool(r, 0, 4);
	PQclear(r);
	return 0;
}

void nb_store_study_target_dispose(nb_study_target_t *t)
{
	json_decref(t->source_ids);
	t->source_ids = NULL;
}

int nb_store_study_chunks(nb_conn_t *c, const char *notebook_id, const json_t *source_ids, const char *source_id,
			  int limit, json_t **items)
{
	*items = NULL;
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, notebook_id);
	char *ids;
	p_json(&p, source_ids, &ids);
	nb_p_text(&p, source_id);
	nb_p_int(&p, limit);
	PGresult *r = NULL;
	int rc = nb_db_exec(c, &st_chunks, &p, &r);
	free(ids);
	if (rc < 0)
		return rc;
	*items = PQntuples(r) ? json_loads(PQgetvalue(r, 0, 0), 0, NULL) : json_array();
	PQclear(r);
	return *items ? 0 : NB_EINTERNAL;
}

/* Locks the target; NB_ENOTFOUND when it is gone. */
static int lock_target(nb_conn_t *c, nb_study_kind_t kind, const char *id)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, id);
	PGresult *r = NULL;
	int rc = nb_db_exec(c, k_lock[kind], &p, &r);
	if (rc == 0 && PQntuples(r) == 0)
		rc = NB_ENOTFOUND;
	PQclear(r);
	return rc;
}

/* Replaces the target's generation record. */
static int put_record(nb_conn_t *c, nb_study_kind_t kind, const char *id, const char *owner, const char *notebook_id,
		      const nb_generation_rec_t *rec)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, id);
	int rc = nb_db_exec(c, k_gen_del[kind], &p, NULL);
	if (rc < 0)
		return rc;
	char gid[37];
	nb_uuid_v7_str(gid);
	nb_params_init(&p);
	nb_p_text(&p, gid);
	nb_p_text(&p, owner);
	nb_p_text(&p, notebook_id);
	nb_p_text(&p, kind == NB_STUDY_QUIZ ? id : NULL);
	nb_p_text(&p, kind == NB_STUDY_GUIDE ? id : NULL);
	nb_p_text(&p, kind == NB_STUDY_SOURCE_GUIDE ? id : NULL);
	nb_p_text(&p, k_gen_kind[kind]);
	nb_p_text(&p, rec->provider ? rec->provider : "extractive");
	nb_p_text(&p, rec->model ? rec->model : "");
	nb_p_int(&p, rec->input_tokens < 0 ? 0 : rec->input_tokens);
	nb_p_int(&p, rec->output_tokens < 0 ? 0 : rec->output_tokens);
	nb_p_int(&p, rec->latency_ms < 0 ? 0 : rec->latency_ms);
	nb_p_int(&p, rec->dropped_citations < 0 ? 0 : rec->dropped_citations);
	nb_p_text(&p, rec->failed ? "failed" : "succeeded");
	nb_p_text(&p, rec->failed ? rec->error : NULL);
	return nb_db_exec(c, &st_gen_insert, &p, NULL);
}

int nb_store_study_save(nb_conn_t *c, nb_study_kind_t kind, const char *id, const char *owner, const char *notebook_id,
			const json_t *content, const json_t *cited_ids, const nb_generation_rec_t *rec)
{
	char *ids = NULL, *body = NULL;
	PGresult *r = NULL;
	int rc = nb_db_begin(c);
	if (rc < 0)
		return rc;
	if ((rc = lock_target(c, kind, id)) < 0)
		goto out;
	nb_params_t p;
	nb_params_init(&p);
	p_json(&p, cited_ids, &ids);
	if ((rc = nb_db_exec(c, &st_cited_live, &p, &r)) < 0)
		goto out;
	if (nb_db_get_int(r, 0, 0) != (int64_t)json_array_size(cited_ids)) {
		rc = NB_ECONFLICT; /* a cited chunk was replaced or its source trashed meanwhile */
		goto out;
	}
	nb_params_init(&p);
	nb_p_text(&p, id);
	p_json(&p, content, &body);
	if ((rc = nb_db_exec(c, k_ready[kind], &p, NULL)) < 0 ||
	    (rc = put_record(c, kind, id, owner, notebook_id, rec)) < 0)
		goto out;
	rc = nb_db_commit(c);
out:
	if (rc < 0)
		nb_db_rollback(c);
	PQclear(r);
	free(ids);
	free(body);
	return rc;
}

int nb_store_study_fail(nb_conn_t *c, nb_study_kind_t kind, const char *id, const char *owner,
			const char *notebook_id, const char *reason, const nb_generation_rec_t *rec)
{
	int rc = nb_db_begin(c);
	if (rc < 0)
		return rc;
	if (kind == NB_STUDY_SOURCE_GUIDE) {
		nb_params_t p; /* the source itself may be gone or retried: only the record matters */
		nb_params_init(&p);
		nb_p_text(&p, id);
		PGresult *r = NULL;
		rc = nb_db_exec(c, &st_source_target, &p, &r);
		if (rc == 0 && PQntuples(r) == 0)
			rc = NB_ENOTFOUND;
		PQclear(r);
	} else {
		rc = lock_target(c, kind, id);
	}
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, id);
	nb_p_text(&p, reason);
	if (rc == 0)
		rc = nb_db_exec(c, k_failed[kind], &p, NULL);
	if (rc == 0)
		rc = put_record(c, kind, id, owner, notebook_id, rec);
	if (rc == 0)
		rc = nb_db_commit(c);
	if (rc < 0)
		nb_db_rollback(c);
	return rc;
}

int nb_store_source_guide_clear(nb_conn_t *c, const char *source_id)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, source_id);
	return nb_db_exec(c, &st_guide_clear, &p, NULL);
}
