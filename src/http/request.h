/*
 * request.h — what a handler sees of a request, and the response it builds.
 *
 * A request is owned by the server. Handlers run as coroutines on the
 * request's loop or on a thread of a pool (router.h's exec classes) and may
 * use everything here freely; allocations go to req->arena and die with the
 * request. The database is not the server's business: the application keeps
 * what it needs per request in `app` and per loop in `loop_data`
 * (api/middleware.h gives handlers nb_req_db). A handler fills `resp` (nb_resp_json / nb_resp_error …) or, for a
 * streamed answer, calls nb_stream_begin and writes chunks.
 */
#ifndef NB_HTTP_REQUEST_H
#define NB_HTTP_REQUEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/buf.h"

#define NB_MAX_HEADERS 64
#define NB_MAX_PATH_PARAMS 4

typedef struct nb_header {
	char *name; /* lower-cased */
	char *value;
} nb_header_t;

typedef struct nb_resp {
	int status;
	const char *content_type;
	nb_buf_t headers; /* extra header lines, each ending in \r\n */
	nb_buf_t body;
	int retry_after; /* > 0 adds Retry-After */
	const char *cache_control; /* the Cache-Control value; NULL: no-store */
} nb_resp_t;

typedef struct nb_req nb_req_t;
struct nb_route;

struct nb_req {
	nb_arena_t *arena;
	const char *method;
	char *path;  /* without query, as received */
	char *query; /* after '?', or NULL */
	nb_header_t headers[NB_MAX_HEADERS];
	int nheaders;
	const char *body; /* may hold NUL bytes; NULL when empty */
	size_t body_len;
	char request_id[72];
	char remote[64]; /* client address */
	const char *params[NB_MAX_PATH_PARAMS]; /* path parameters in pattern order */
	int nparams;
	const struct nb_route *route;
	json_t *json; /* the parsed body for JSON requests, or NULL */
	/* set by the auth middleware */
	bool authed;
	char user_id[40];
	/* the application's slot for this request (e.g. its database connection) */
	void *app;
	/* the application's pointer for the request's loop (server hooks), or NULL on none */
	void *loop_data;
	int64_t start_us;
	int64_t deadline_ms; /* monotonic */
	nb_resp_t resp;
};

/** A request header (name in any case) or NULL. */
const char *nb_req_header(const nb_req_t *r, const char *name);
/** A query parameter, percent-decoded into the arena, or NULL when absent. */
const char *nb_req_query(nb_req_t *r, const char *name);
/** Path parameter i (0-based, pattern order). */
const char *nb_req_param(const nb_req_t *r, int i);

/** Sets a JSON response; takes ownership of (steals) `body`. */
void nb_resp_json(nb_resp_t *resp, int status, json_t *body);
/** Sets a raw body response with a content type. */
void nb_resp_raw(nb_resp_t *resp, int status, const char *content_type, const char *body, size_t len);
/** Sets an empty response (e.g. 204). */
void nb_resp_empty(nb_resp_t *resp, int status);
/** Adds a header line. */
void nb_resp_header(nb_resp_t *resp, const char *name, const char *value);
/**
 * Sets the error envelope {"error": {code, message, field?, request_id}} for an
 * nb_err_t code; message NULL uses the code's default. Returns `err` so a
 * handler can `return nb_resp_error(...)`.
 */
int nb_resp_error(nb_req_t *r, int err, const char *message, const char *field);

/* Streaming (server-sent events and other long answers). */

/**
 * Starts a streamed response (chunked transfer encoding) with a status and
 * content type. The headers are sent at once. Returns 0, or -1 if the client
 * is gone.
 */
int nb_stream_begin(nb_req_t *r, int status, const char *content_type);
/**
 * Sends a chunk. While more than a bounded number of bytes of this response
 * are queued and unsent, the caller waits (a thread on a condition variable,
 * a coroutine parked) until the client reads; a client that reads nothing for
 * the write timeout is disconnected. 0, or -1 if the client is gone.
 */
int nb_stream_write(nb_req_t *r, const char *data, size_t len);
/**
 * Gives up a stream that already sent its headers (an error midway): the
 * connection is closed without the final chunk, so the client sees a
 * truncated answer rather than a complete-looking one.
 */
void nb_stream_abort(nb_req_t *r);
/**
 * True once nobody will read this request's answer: the client went away (a
 * stream's write failed) or the deadline already answered 503. Lets a
 * long handler stop early. Any thread.
 */
bool nb_req_gone(const nb_req_t *r);

#endif
