/*
 * notebooks.c — /v1/notebooks: create, list (with sources), get, update,
 * trash, restore.
 *
 * Every call is scoped to the authenticated user in the store: another
 * user's notebook is the same 404 as a missing one. A change of language
 * re-indexes the notebook's chunks in a reindex_notebook job enqueued in the
 * same transaction as the change (rag/ingest.c runs it).
 */
#include <stdio.h>
#include <string.h>

#include "api/app.h"
#include "api/util.h"
#include "core/err.h"
#include "core/jsonw.h"
#include "core/utf8.h"
#include "core/uuid.h"
#include "db/db.h"
#include "jobs/queue.h"
#include "rag/lang.h"
#include "store/notebooks.h"

#define TITLE_MAX 200
#define DESCRIPTION_MAX 10000

static int answer(nb_req_t *req, int rc, int status, json_t *body)
{
	if (rc < 0)
		return nb_fail(req, rc);
	nb_resp_json(&req->resp, status, body);
	return 0;
}

static const char *const k_fields[] = {"title", "description", "language", NULL};

/* The title, the description and the language of a body: each optional
 * here (create requires the title). 0 or 422 (answer set). */
static int read_fields(nb_req_t *req, bool title_required, const char **title, const char **desc,
		       const char **lang)
{
	int rc;
	if ((rc = nb_body_required(req)) < 0 || (rc = nb_body_only(req, k_fields)) < 0 ||
	    (rc = nb_body_str(req, "title", title_required, false, TITLE_MAX, title)) < 0 ||
	    (rc = nb_body_str(req, "description", false, true, DESCRIPTION_MAX, desc)) < 0 ||
	    (rc = nb_body_str(req, "language", false, false, 16, lang)) < 0)
		return rc;
	if (*title && !nb_utf8_label_ok(*title, strlen(*title)))
		return nb_resp_error(req, NB_EINVALID,
				     "title: must not be blank or hold control characters or bidirectional overrides",
				     "title");
	if (*lang && !nb_lang_valid(*lang))
		return nb_resp_error(req, NB_EINVALID, "language: must be an ISO 639-1 code in lower case, e.g. en, de",
				     "language");
	return 0;
}

int nb_api_notebook_create(nb_req_t *req)
{
	const char *title, *desc, *lang;
	int rc;
	if ((rc = read_fields(req, true, &title, &desc, &lang)) < 0)
		return rc;
	nb_conn_t *c;
	if ((rc = nb_req_db(req, &c)) < 0)
		return nb_fail(req, rc);
	char id[37];
	nb_uuid_v7_str(id);
	json_t *nb = NULL;
	rc = nb_store_notebook_create(c, req->user_id, id, title, desc, lang ? lang : NB_LANG_DEFAULT, &nb);
	return answer(req, rc, 201, nb);
}

int nb_api_notebooks_list(nb_req_t *req)
{
	nb_page_t page;
	int rc = nb_page_parse(req, 20, 100, &page);
	if (rc < 0)
		return rc;
	const char *trashed = nb_req_query(req, "trashed");
	if (trashed && strcmp(trashed, "true") && strcmp(trashed, "false"))
		return nb_resp_error(req, NB_EINVALID, "trashed: must be true or false", "trashed");
	nb_conn_t *c;
	if ((rc = nb_req_db(req, &c)) < 0)
		return nb_fail(req, rc);
	bool trash = trashed && !strcmp(trashed, "true");
	PGresult *rows = NULL;
	rc = nb_store_notebooks_list(c, req->user_id, trash, page.limit, page.after_ts, page.after_id, &rows);
	if (rc < 0)
		return nb_fail(req, rc);
	/* written straight from the rows: {"items":[...],"next_cursor":...} */
	nb_jsonw_t w;
	nb_resp_json_begin(req, &w, false);
	nb_jsonw_obj(&w);
	nb_jsonw_key(&w, "items");
	nb_jsonw_arr(&w);
	int n = PQntuples(rows), row = 0, last = -1;
	for (int count = 0; row < n && count < page.limit; count++) {
		last = row;
		row = nb_store_notebook_write(&w, rows, row);
	}
	nb_jsonw_arr_end(&w);
	nb_jsonw_key(&w, "next_cursor");
	if (row < n && last >= 0) { /* a notebook beyond the page: there is a next one */
		char ts[40], id[37];
		nb_store_notebook_key(rows, last, trash, ts, id);
		nb_jsonw_strz(&w, nb_cursor_make(req, ts, id));
	} else {
		nb_jsonw_null(&w);
	}
	nb_jsonw_obj_end(&w);
	PQclear(rows);
	return 0;
}

int nb_api_notebook_get(nb_req_t *req)
{
	nb_conn_t *c;
	int rc = nb_req_db(req, &c);
	if (rc < 0)
		return nb_fail(req, rc);
	PGresult *rows = NULL;
	rc = nb_store_notebook_get(c, req->user_id, nb_req_param(req, 0), &rows);
	if (rc < 0)
		return nb_fail(req, rc);
	nb_jsonw_t w;
	nb_resp_json_begin(req, &w, true); /* byte for byte what jansson wrote here before */
	nb_store_notebook_write(&w, rows, 0);
	PQclear(rows);
	return 0;
}

/* The update and, when the language changed, its re-index job: one transaction. */
static int update(nb_req_t *req, nb_conn_t *c, const nb_notebook_patch_t *patch, json_t **nb)
{
	const char *id = nb_req_param(req, 0);
	bool changed = false;
	char jid[37], payload[80];
	int rc = nb_db_begin(c);
	if (rc == 0)
		rc = nb_store_notebook_update(c, req->user_id, id, patch, nb, &changed);
	if (rc == 0 && changed) {
		snprintf(payload, sizeof payload, "{\"notebook_id\": \"%s\"}", id);
		nb_job_spec_t spec = {.kind = "reindex_notebook", .user_id = req->user_id, .payload_json = payload};
		rc = nb_jobs_enqueue(c, &spec, jid);
	}
	if (rc == 0)
		rc = nb_db_commit(c);
	if (rc < 0) {
		nb_db_rollback(c);
		json_decref(*nb);
		*nb = NULL;
	}
	return rc;
}

int nb_api_notebook_update(nb_req_t *req)
{
	nb_notebook_patch_t patch = {0};
	int rc;
	if ((rc = read_fields(req, false, &patch.title, &patch.description, &patch.language)) < 0)
		return rc;
	patch.set_description = nb_body_has(req, "description");
	nb_conn_t *c;
	if ((rc = nb_req_db(req, &c)) < 0)
		return nb_fail(req, rc);
	json_t *nb = NULL;
	rc = update(req, c, &patch, &nb);
	return answer(req, rc, 200, nb);
}

int nb_api_notebook_delete(nb_req_t *req)
{
	nb_conn_t *c;
	int rc = nb_req_db(req, &c);
	if (rc < 0 || (rc = nb_store_notebook_trash(c, req->user_id, nb_req_param(req, 0))) < 0)
		return nb_fail(req, rc);
	nb_resp_empty(&req->resp, 204);
	return 0;
}

int nb_api_notebook_restore(nb_req_t *req)
{
	static const char *const none[] = {NULL};
	nb_conn_t *c;
	int rc = nb_body_only(req, none);
	if (rc < 0)
		return rc;
	rc = nb_req_db(req, &c);
	if (rc < 0)
		return nb_fail(req, rc);
	json_t *nb = NULL;
	rc = nb_store_notebook_restore(c, req->user_id, nb_req_param(req, 0), &nb);
	return answer(req, rc, 200, nb);
}
