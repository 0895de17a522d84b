/*
 * util.h — what every handler needs: reading fields of the JSON body with
 * clear 422s, pagination parameters and cursors, the authentication
 * middleware, and mapping errors to answers.
 */
#ifndef NB_API_UTIL_H
#define NB_API_UTIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "api/middleware.h"
#include "core/jsonw.h"
#include "http/request.h"

/**
 * The auth middleware (the server calls it for NB_ROUTE_AUTH routes): checks
 * the bearer token, then that the user still exists (an erased account's
 * tokens stop working at once): from the live-user cache when it holds the
 * user (store/usercache.h: no statement), else in the database. Sets
 * req->user_id. 0 or NB_EUNAUTH (with the 401 answer set).
 */
int nb_api_authenticate(nb_req_t *req);

/**
 * Reads a string field of the body. Missing or null: *out = NULL and 0 if
 * optional, 422 if required. Wrong type, empty (when !allow_empty) or longer
 * than max_chars code points: 422 naming the field. Returns 0 or the error
 * (with the answer set).
 */
int nb_body_str(nb_req_t *req, const char *field, bool required, bool allow_empty, size_t max_chars,
		const char **out);
/** True when the body has this key (even null). */
bool nb_body_has(nb_req_t *req, const char *field);
/** 400 when the request has no JSON body (for endpoints that need one). */
int nb_body_required(nb_req_t *req);
/**
 * Refuses a body field the route does not know: `fields` is a NULL-terminated
 * list of the accepted names. 0, or 422 naming the first unknown field (answer
 * set), so that a typo is never silently ignored. A request without a body passes.
 */
int nb_body_only(nb_req_t *req, const char *const *fields);

/** Pagination: limit (1..max, default def) and an opaque cursor of two strings (time, id). */
typedef struct nb_page {
	int limit;
	const char *after_ts; /* NULL on the first page */
	const char *after_id;
} nb_page_t;
/** Parses ?limit and ?cursor. 0 or 422 (answer set). */
int nb_page_parse(nb_req_t *req, int def, int max, nb_page_t *page);
/** Makes the cursor for the item after (ts, id): base64url, in the arena. */
const char *nb_cursor_make(nb_req_t *req, const char *ts, const char *id);
/**
 * Answers a list straight from database rows, without parsing them: column 0
 * of each row is an item's JSON text, column 1 its cursor key and column 2
 * its id. Up to limit + 1 rows (the extra one only tells that a next page
 * exists). Takes ownership of r.
 */
void nb_resp_list_rows(nb_req_t *req, PGresult *r, int limit);

/** Writes the item of `row` as JSON and gives its cursor key and id (a store's *_write function). */
typedef void (*nb_row_writer_fn)(nb_jsonw_t *w, const PGresult *r, int row, char key_out[40], char id_out[37]);
/**
 * Answers a list from binary rows, one item per row, written by fn straight
 * into the response (no JSON built by PostgreSQL, no tree): up to limit + 1
 * rows, the extra one only tells that a next page exists. Takes ownership of r.
 */
void nb_resp_list_write(nb_req_t *req, PGresult *r, int limit, nb_row_writer_fn fn);
/** The same, escaping control characters in strings as jansson does (\u00XX): for a list that jansson wrote before. */
void nb_resp_list_write_jansson(nb_req_t *req, PGresult *r, int limit, nb_row_writer_fn fn);

/**
 * Starts a 200 application/json answer written straight into the response
 * body by w; upper_hex escapes control characters as jansson did (\u00XX),
 * for answers that jansson wrote before.
 */
void nb_resp_json_begin(nb_req_t *req, nb_jsonw_t *w, bool upper_hex);

/** Answers an error code with its default message (for `return nb_fail(req, rc)`). */
int nb_fail(nb_req_t *req, int err);

#endif
