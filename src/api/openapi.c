/*
 * openapi.c — GET /openapi.json (see openapi.h). The document is a constant
 * compiled into the binary: answered from the event loop, nothing to build.
 */
#include "api/openapi.h"

#include "http/request.h"

int nb_api_openapi(nb_req_t *req)
{
	nb_resp_raw(&req->resp, 200, "application/json", nb_openapi_json, nb_openapi_json_len);
	return 0;
}
