/*
 * debug.c — GET /debug/sleep?ms=N: a handler that waits on PostgreSQL;
 * GET /debug/stream?mb=N: N MiB streamed from a coroutine (the back-pressure
 * path chat's server-sent events take).
 *
 * Registered only with NOTEBOOKD_DEBUG_ROUTES=1 (tests and benchmarks).
 */
#include <stdlib.h>
#include <string.h>

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

int nb_api_debug_stream(nb_req_t *req)
{
	const char *mb_s = nb_req_query(req, "mb");
	char *end = NULL;
	long mb = mb_s ? strtol(mb_s, &end, 10) : -1;
	if (!mb_s || *end || mb < 1 || mb > 4096)
		return nb_resp_error(req, NB_EINVALID, "mb: must be an integer from 1 to 4096", "mb");
	if (nb_stream_begin(req, 200, "text/plain") < 0)
		return 0;
	static char piece[64 * 1024];
	memset(piece, 'x', sizeof piece);
	for (long i = 0; i < mb * 16; i++)
		if (nb_stream_write(req, piece, sizeof piece) < 0) {
			nb_stream_abort(req);
			break;
		}
	return 0;
}
