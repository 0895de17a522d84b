/*
 * debug.c — GET /debug/sleep?ms=N: a handler that waits on PostgreSQL.
 *
 * Registered only with NOTEBOOKD_DEBUG_ROUTES=1 (tests and benchmarks).
 */
#include <stdlib.h>

#include "api/app.h"
#include "core/err.h"
#include "store/debug.h"

int nb_api_debug_sleep(nb_req_t *req)
{
	const char *ms_s = nb_req_query(req, "ms");
	char *end = NULL;
	long ms = ms_s ? strtol(ms_s, &end, 10) : -1;
	if (!ms_s || *end || ms < 0 || ms > 600000)
		return nb_resp_error(req, NB_EINVALID, "ms: must be an integer from 0 to 600000", "ms");
	nb_conn_t *c;
	int rc = nb_req_db(req, &c);
	if (rc < 0)
		return rc;
	rc = nb_store_debug_sleep(c, (int)ms);
	if (rc < 0)
		return rc;
	nb_resp_json(&req->resp, 200, json_pack("{s:i}", "slept_ms", (int)ms));
	return 0;
}
