/*
 * notebooks.c — /v1/notebooks: create, list (with sources), get, update,
 * trash, restore.
 *
 * Every call is scoped to the authenticated user in the store: another
 * user's notebook is the same 404 as a missing one.
 */
#include <string.h>

#include "api/app.h"
#include "api/util.h"
#include "core/err.h"
#include "core/uuid.h"
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

int nb_api_notebook_create(nb_req_t *req)
{
	const char *title, *desc;
	int rc;
	if ((rc = nb_body_required(req)) < 0 || (rc = nb_body_str(req, "title", true, false, TITLE_MAX, &title)) < 0 ||
	    (rc = nb_body_str(req, "description", false, true, DESCRIPTION_MAX, &desc)) < 0)
		return rc;
	nb_conn_t *c;
	if ((rc = nb_req_db(req, &c)) < 0)
		return nb_fail(req, rc);
	char id[37];
	nb_uuid_v7_str(id);
	json_t *nb = NULL;
	rc = nb_store_notebook_create(c, req->user_id, id, title, desc, &nb);
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
	PGresult *rows = NULL;
	rc = nb_store_notebooks_list(c, req->user_id, trashed && !strcmp(trashed, "true"), page.limit, page.after_ts,
				     page.after_id, &rows);
	if (rc < 0)
		return nb_fail(req, rc);
	nb_resp_list_rows(req, rows, page.limit);
	return 0;
}

int nb_api_notebook_get(nb_req_t *req)
{
	nb_conn_t *c;
	int rc = nb_req_db(req, &c);
	if (rc < 0)
		return nb_fail(req, rc);
	json_t *nb = NULL;
	rc = nb_store_notebook_get(c, req->user_id, nb_req_param(req, 0), &nb);
	return answer(req, rc, 200, nb);
}

int nb_api_notebook_update(nb_req_t *req)
{
	const char *title, *desc;
	int rc;
	if ((rc = nb_body_required(req)) < 0 ||
	    (rc = nb_body_str(req, "title", false, false, TITLE_MAX, &title)) < 0 ||
	    (rc = nb_body_str(req, "description", false, true, DESCRIPTION_MAX, &desc)) < 0)
		return rc;
	nb_conn_t *c;
	if ((rc = nb_req_db(req, &c)) < 0)
		return nb_fail(req, rc);
	json_t *nb = NULL;
	rc = nb_store_notebook_update(c, req->user_id, nb_req_param(req, 0), title, nb_body_has(req, "description"),
				      desc, &nb);
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
	nb_conn_t *c;
	int rc = nb_req_db(req, &c);
	if (rc < 0)
		return nb_fail(req, rc);
	json_t *nb = NULL;
	rc = nb_store_notebook_restore(c, req->user_id, nb_req_param(req, 0), &nb);
	return answer(req, rc, 200, nb);
}
