/*
 * test_http_parse.c — the request parser without sockets (src/http/parse.c):
 * what it decides at the head (route, head hook, body limit, 100-continue),
 * body limits while reading, spooling pauses and pipelining.
 */
#include <string.h>

#include "core/err.h"
#include "http/internal.h"
#include "t.h"

static int h(nb_req_t *r)
{
	(void)r;
	return 0;
}

static const nb_route_t routes[] = {
	{"GET", "/healthz", h, 0, NB_EXEC_INLINE},
	{"POST", "/v1/notebooks", h, NB_ROUTE_AUTH, NB_EXEC_DEFAULT},
	{"POST", "/v1/notebooks/{id}/sources", h, NB_ROUTE_AUTH | NB_ROUTE_MULTIPART, NB_EXEC_THREAD},
};

static int head_calls;

static int on_head(nb_req_t *req)
{
	head_calls++;
	if ((req->route->flags & NB_ROUTE_AUTH) && !nb_req_header(req, "authorization"))
		return nb_resp_error(req, NB_EUNAUTH, NULL, NULL);
	return 0;
}

static nb_server_t srv;
static loop_t lp;

static void conn_init(conn_t *c)
{
	srv.o.max_body_bytes = 4 * 1024 * 1024;
	srv.o.max_json_bytes = 1024;
	srv.o.hooks.on_head = on_head;
	srv.routes = routes;
	srv.nroutes = (int)(sizeof routes / sizeof routes[0]);
	lp.srv = &srv;
	memset(c, 0, sizeof *c);
	c->lp = &lp;
	nb_http__parser_reset(c);
}

static void drop(conn_t *c)
{
	nb_http__sreq_free(c->cur);
	c->cur = NULL;
	nb_http__parser_reset(c);
}

/* Parses s until it stops for a reason other than the head; returns that reason. */
static nb_parse_result_t run(conn_t *c, const char *s, size_t *left)
{
	size_t len = strlen(s), used = 0, off = 0;
	nb_parse_result_t pr;
	do {
		pr = nb_http__parse(c, s + off, len - off, &used);
		off += used;
	} while (pr == NB_PARSE_HEAD && off < len);
	if (left)
		*left = len - off;
	return pr;
}

static void test_route_and_auth_before_the_body(void)
{
	conn_t c;
	conn_init(&c);
	head_calls = 0;
	/* no body byte sent: the refusal is decided from the head alone */
	CHECK_INT(run(&c, "POST /v1/notebooks HTTP/1.1\r\nContent-Length: 50000000\r\n\r\n", NULL), NB_PARSE_EARLY);
	CHECK_INT(c.cur->req.resp.status, 401);
	CHECK(!c.cur->complete && c.cur->body_follows);
	CHECK_INT(c.cur->body_len, 0);
	drop(&c);
	CHECK_INT(run(&c, "POST /nowhere HTTP/1.1\r\nAuthorization: x\r\nContent-Length: 5\r\n\r\n", NULL),
		  NB_PARSE_EARLY);
	CHECK_INT(c.cur->req.resp.status, 404);
	drop(&c);
	CHECK_INT(run(&c, "GET /v1/notebooks HTTP/1.1\r\n\r\n", NULL), NB_PARSE_EARLY);
	CHECK_INT(c.cur->req.resp.status, 405);
	CHECK(c.cur->complete); /* no body: the connection can be kept */
	drop(&c);
	CHECK_INT(head_calls, 1); /* the hook runs only on a routed request */
}

static void test_per_route_body_limits(void)
{
	conn_t c;
	conn_init(&c);
	CHECK_INT(run(&c, "POST /v1/notebooks HTTP/1.1\r\nAuthorization: x\r\nContent-Length: 1025\r\n\r\n", NULL),
		  NB_PARSE_EARLY);
	CHECK_INT(c.cur->req.resp.status, 413);
	drop(&c);
	/* the upload route takes the upload limit */
	const char *up = "POST /v1/notebooks/0190a0a0-0000-7000-8000-000000000000/sources HTTP/1.1\r\n"
			 "Authorization: x\r\nContent-Length: 2000\r\n\r\n";
	CHECK_INT(run(&c, up, NULL), NB_PARSE_MORE);
	CHECK(c.cur->head_done && !c.cur->early);
	drop(&c);
	/* a chunked body growing past the JSON limit */
	char big[4096];
	snprintf(big, sizeof big, "POST /v1/notebooks HTTP/1.1\r\nAuthorization: x\r\nTransfer-Encoding: chunked\r\n\r\n"
				  "400\r\n%0*d\r\n400\r\n%0*d\r\n0\r\n\r\n",
		 1024, 0, 1024, 0);
	CHECK_INT(run(&c, big, NULL), NB_PARSE_TOO_LARGE);
	CHECK_INT(c.cur->req.resp.status, 413);
	drop(&c);
}

static void test_expect_continue_only_when_accepted(void)
{
	conn_t c;
	conn_init(&c);
	size_t used;
	const char *ok = "POST /v1/notebooks HTTP/1.1\r\nAuthorization: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
	CHECK_INT(nb_http__parse(&c, ok, strlen(ok), &used), NB_PARSE_HEAD);
	CHECK(c.cur->expect_continue);
	drop(&c);
	const char *no = "POST /v1/notebooks HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
	CHECK_INT(nb_http__parse(&c, no, strlen(no), &used), NB_PARSE_EARLY);
	CHECK(!c.cur->expect_continue);
	drop(&c);
}

static void test_spool_pause_and_pipelining(void)
{
	conn_t c;
	conn_init(&c);
	/* an upload body over the in-memory size pauses for spooling */
	static char req[NB_HTTP_BODY_MEM_MAX + 4096];
	int n = snprintf(req, sizeof req,
			 "POST /v1/notebooks/0190a0a0-0000-7000-8000-000000000000/sources HTTP/1.1\r\n"
			 "Authorization: x\r\nContent-Length: %d\r\n\r\n",
			 NB_HTTP_BODY_MEM_MAX + 10);
	memset(req + n, 'b', NB_HTTP_BODY_MEM_MAX + 10);
	req[n + NB_HTTP_BODY_MEM_MAX + 10] = '\0';
	size_t left = 0;
	CHECK_INT(run(&c, req, &left), NB_PARSE_SPOOL);
	CHECK(c.cur->body.len >= NB_HTTP_BODY_MEM_MAX);
	drop(&c);
	/* two pipelined requests come out one at a time, the second left for later */
	const char *two = "GET /healthz HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n";
	CHECK_INT(run(&c, two, &left), NB_PARSE_DONE);
	CHECK_STR(c.cur->req.path, "/healthz");
	CHECK_INT(left, strlen("GET /healthz HTTP/1.1\r\n\r\n"));
	drop(&c);
	CHECK_INT(run(&c, "GARBAGE\r\n\r\n", NULL), NB_PARSE_BAD);
	CHECK_INT(c.cur->req.resp.status, 400);
	drop(&c);
}

int main(void)
{
	T_RUN(test_route_and_auth_before_the_body);
	T_RUN(test_per_route_body_limits);
	T_RUN(test_expect_continue_only_when_accepted);
	T_RUN(test_spool_pause_and_pipelining);
	return t_done();
}
