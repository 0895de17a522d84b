/*
 * jobs.c — GET /v1/jobs/{id} and GET /v1/jobs?status=&limit=&cursor=: the
 * user's own jobs, newest first.
 */
#include <string.h>

#include "api/app.h"
#include "api/util.h"
#include "core/err.h"
#include "store/jobs.h"

int nb_api_job_get(nb_req_t *req)
{
	nb_conn_t *c;
	json_t *j = NULL;
	int rc = nb_req_db(req, &c);
	if (rc < 0 || (rc = nb_store_job_get(c, req->user_id, nb_req_param(req, 0), &j)) < 0)
		return nb_fail(req, rc);
	nb_resp_json(&req->resp, 200, j);
	return 0;
}

int nb_api_jobs_list(nb_req_t *req)
{
	nb_page_t page;
	int rc = nb_page_parse(req, 20, 100, &page);
	if (rc < 0)
		return rc;
	const char *status = nb_req_query(req, "status");
	if (status && !nb_store_jobs_status_known(status))
		return nb_resp_error(req, NB_EINVALID, "status: must be pending, running, succeeded, failed or dead",
				     "status");
	nb_conn_t *c;
	PGresult *rows = NULL;
	if ((rc = nb_req_db(req, &c)) < 0 ||
	    (rc = nb_store_jobs_list_rows(c, req->user_id, status, page.limit, page.after_id, &rows)) < 0)
		return nb_fail(req, rc);
	nb_resp_list_write_jansson(req, rows, page.limit, nb_store_jobs_write);
	return 0;
}
