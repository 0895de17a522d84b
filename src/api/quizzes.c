/*
 * quizzes.c — POST /v1/notebooks/{id}/quizzes, GET and DELETE
 * /v1/quizzes/{id}; and the creation path study guides share.
 *
 * Creating checks everything a job could only fail on later — the body,
 * the notebook (live, the caller's), the source ids (sources of this
 * notebook), that some selected source is ready — then inserts the pending
 * resource and its job in one transaction and answers 202 with the
 * resource (status pending, job_id). The job (rag/study_jobs) does the rest.
 */
#include <stdio.h>
#include <string.h>

#include "api/app.h"
#include "api/util.h"
#include "core/err.h"
#include "core/utf8.h"
#include "core/uuid.h"
#include "db/db.h"
#include "jobs/queue.h"
#include "store/study.h"

#define TITLE_MAX 200
#define MAX_SOURCE_IDS 100

/* source_ids: absent/null → *out NULL; else a non-empty array of UUID strings. */
static int parse_source_ids(nb_req_t *req, json_t **out)
{
	*out = NULL;
	json_t *v = req->json ? json_object_get(req->json, "source_ids") : NULL;
	if (!v || json_is_null(v))
		return 0;
	bool ok = json_is_array(v) && json_array_size(v) >= 1 && json_array_size(v) <= MAX_SOURCE_IDS;
	for (size_t i = 0; ok && i < json_array_size(v); i++) {
		json_t *s = json_array_get(v, i);
		ok = json_is_string(s) && nb_uuid_valid(json_string_value(s));
	}
	if (!ok)
		return nb_resp_error(req, NB_EINVALID, "source_ids: must be a list of 1 to 100 source ids", "source_ids");
	*out = v;
	return 0;
}

static int parse_num_questions(nb_req_t *req, int *n)
{
	*n = 5;
	json_t *v = req->json ? json_object_get(req->json, "num_questions") : NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 20)
		return nb_resp_error(req, NB_EINVALID, "num_questions: must be an integer from 1 to 20", "num_questions");
	*n = (int)json_integer_value(v);
	return 0;
}

int nb_api_study_create(nb_req_t *req, int kind)
{
	static const char *const quiz_fields[] = {"num_questions", "source_ids", "title", NULL};
	static const char *const guide_fields[] = {"source_ids", "title", NULL};
	const char *title = NULL;
	json_t *source_ids = NULL;
	int n = 0, rc;
	if ((rc = nb_body_only(req, kind == NB_STUDY_QUIZ ? quiz_fields : guide_fields)) < 0 ||
	    (kind == NB_STUDY_QUIZ && (rc = parse_num_questions(req, &n)) < 0) ||
	    (rc = parse_source_ids(req, &source_ids)) < 0 ||
	    (rc = nb_body_str(req, "title", false, false, TITLE_MAX, &title)) < 0)
		return rc;
	if (title && !nb_utf8_label_ok(title, strlen(title)))
		return nb_resp_error(req, NB_EINVALID, "title: must be a single line of visible text", "title");
	if (!title)
		title = kind == NB_STUDY_QUIZ ? "Quiz" : "Study guide";
	nb_conn_t *c;
	if ((rc = nb_req_db(req, &c)) < 0)
		return nb_fail(req, rc);
	const char *nb = nb_req_param(req, 0);
	char id[37], jid[37];
	nb_uuid_v7_str(id);
	int unknown = 0, ready = 0;
	json_t *out = NULL;
	if ((rc = nb_db_begin(c)) < 0)
		return nb_fail(req, rc);
	rc = nb_store_study_check(c, req->user_id, nb, source_ids, &unknown, &ready);
	if (rc == 0 && unknown > 0) {
		nb_db_rollback(c);
		return nb_resp_error(req, NB_EINVALID, "source_ids: not sources of this notebook", "source_ids");
	}
	if (rc == 0 && ready == 0) {
		nb_db_rollback(c);
		return nb_resp_error(req, NB_ECONFLICT,
				     source_ids ? "none of the selected sources is ready yet"
						: "the notebook has no ready sources yet: add a source and wait for it",
				     NULL);
	}
	nb_job_spec_t spec = {.kind = kind == NB_STUDY_QUIZ ? "generate_quiz" : "generate_study_guide",
			      .user_id = req->user_id,
			      .quiz_id = kind == NB_STUDY_QUIZ ? id : NULL,
			      .study_guide_id = kind == NB_STUDY_QUIZ ? NULL : id};
	if (rc == 0)
		rc = nb_store_study_create(c, kind, id, nb, title, n, source_ids);
	if (rc == 0)
		rc = nb_jobs_enqueue(c, &spec, jid);
	if (rc == 0)
		rc = nb_store_study_get(c, kind, req->user_id, id, &out);
	if (rc == 0)
		rc = nb_db_commit(c);
	if (rc < 0) {
		nb_db_rollback(c);
		json_decref(out);
		return nb_fail(req, rc);
	}
	nb_resp_json(&req->resp, 202, out);
	return 0;
}

int nb_api_study_get(nb_req_t *req, int kind)
{
	nb_conn_t *c;
	json_t *out = NULL;
	int rc = nb_req_db(req, &c);
	if (rc == 0)
		rc = nb_store_study_get(c, kind, req->user_id, nb_req_param(req, 0), &out);
	if (rc < 0)
		return nb_fail(req, rc);
	nb_resp_json(&req->resp, 200, out);
	return 0;
}

int nb_api_study_delete(nb_req_t *req, int kind)
{
	nb_conn_t *c;
	int rc = nb_req_db(req, &c);
	if (rc == 0)
		rc = nb_store_study_trash(c, kind, req->user_id, nb_req_param(req, 0));
	if (rc < 0)
		return nb_fail(req, rc);
	nb_resp_empty(&req->resp, 204);
	return 0;
}

int nb_api_quiz_create(nb_req_t *req)
{
	return nb_api_study_create(req, NB_STUDY_QUIZ);
}

int nb_api_quiz_get(nb_req_t *req)
{
	return nb_api_study_get(req, NB_STUDY_QUIZ);
}

int nb_api_quiz_delete(nb_req_t *req)
{
	return nb_api_study_delete(req, NB_STUDY_QUIZ);
}
