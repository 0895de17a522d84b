/*
 * fuzz_http.c — libFuzzer driver for the HTTP request parser (src/http/parse.c):
 * heads, routing, the head-time checks, body limits (Content-Length and
 * chunked), pipelined requests, then the API's body checks (content type,
 * the JSON nesting limit, JSON parse) on every complete request.
 *
 * The parser touches no socket, so the driver runs it on the input buffer
 * with a connection that has no libuv handles; spooling is simulated by
 * dropping the in-memory part (as if written out).
 *
 *   make fuzz && build/fuzz/fuzz_http -max_total_time=60 build/fuzz/corpus_http
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/middleware.h"
#include "core/err.h"
#include "http/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int handler(nb_req_t *req)
{
	(void)req;
	return 0;
}

static const nb_route_t routes[] = {
	{"GET", "/healthz", handler, 0, NB_EXEC_INLINE},
	{"GET", "/metrics", handler, NB_ROUTE_ADMIN, NB_EXEC_DEFAULT},
	{"POST", "/v1/auth/login", handler, 0, NB_EXEC_HASH},
	{"GET", "/v1/notebooks", handler, NB_ROUTE_AUTH, NB_EXEC_DEFAULT},
	{"POST", "/v1/notebooks", handler, NB_ROUTE_AUTH, NB_EXEC_DEFAULT},
	{"PATCH", "/v1/notebooks/{id}", handler, NB_ROUTE_AUTH, NB_EXEC_DEFAULT},
	{"POST", "/v1/notebooks/{id}/sources", handler, NB_ROUTE_AUTH | NB_ROUTE_MULTIPART, NB_EXEC_THREAD},
};

/* Stands in for the API's bearer check: pure, like the real one. */
static int on_head(nb_req_t *req)
{
	if ((req->route->flags & NB_ROUTE_AUTH) && !nb_req_header(req, "authorization"))
		return nb_resp_error(req, NB_EUNAUTH, NULL, NULL);
	return 0;
}

static nb_server_t srv;
static loop_t lp;

static void setup(void)
{
	srv.o.max_body_bytes = 4 * 1024 * 1024;
	srv.o.max_json_bytes = 64 * 1024;
	srv.o.hooks.on_head = on_head;
	srv.routes = routes;
	srv.nroutes = (int)(sizeof routes / sizeof routes[0]);
	srv.admin_routes = routes + 1;
	srv.nadmin_routes = 1;
	lp.srv = &srv;
}

/* Ends the current request as the server would after answering it. */
static void drop(conn_t *c)
{
	nb_http__sreq_free(c->cur);
	c->cur = NULL;
	nb_http__parser_reset(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	if (!ready) {
		setup();
		ready = 1;
	}
	conn_t c;
	memset(&c, 0, sizeof c);
	c.lp = &lp;
	c.admin = size > 0 && (data[0] & 1);
	nb_http__parser_reset(&c);
	const char *p = (const char *)data;
	size_t left = size;
	for (int steps = 0; steps < 100000 && left > 0; steps++) {
		size_t used = 0;
		nb_parse_result_t pr = nb_http__parse(&c, p, left, &used);
		if (used > left)
			abort();
		p += used;
		left -= used;
		sreq_t *r = c.cur;
		if (pr == NB_PARSE_MORE)
			break;
		if (pr == NB_PARSE_HEAD)
			continue;
		if (pr == NB_PARSE_SPOOL) { /* pretend the part was written to the temp file */
			r->spooled += r->body.len;
			nb_buf_reset(&r->body);
			continue;
		}
		if (pr == NB_PARSE_DONE) {
			if (nb_http__finish_body(r) == 0 && r->req.route && !r->early)
				nb_api_check_body(&r->req);
			drop(&c);
			continue;
		}
		/* refused or malformed: the server answers; the connection goes on only after a complete message */
		bool go_on = pr == NB_PARSE_EARLY && r->complete;
		drop(&c);
		if (!go_on)
			break;
	}
	if (c.cur)
		drop(&c);
	nb_api_json_too_deep((const char *)data, size, NB_JSON_MAX_DEPTH);
	return 0;
}
