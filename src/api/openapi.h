/*
 * openapi.h — GET /openapi.json: the OpenAPI 3.1 document of the API.
 *
 * docs/openapi.json is the single source: tools/embed_file.sh compiles it into
 * the binary (build/gen/openapi.c), as the migrations are, so the document a
 * server hands out is the one its tests were checked against.
 */
#ifndef NB_API_OPENAPI_H
#define NB_API_OPENAPI_H

#include "http/router.h"

/** docs/openapi.json as built into this binary, NUL-terminated. */
extern const char nb_openapi_json[];
/** Its length in bytes (without the NUL). */
extern const unsigned long nb_openapi_json_len;

/** GET /openapi.json: 200 with the document (no token, no database). */
int nb_api_openapi(nb_req_t *req);

#endif
