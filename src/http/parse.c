/*
 * parse.c — bytes to a request: http_parser callbacks, and the decisions
 * taken as soon as the head is complete.
 *
 * Design: this file touches no socket, timer or file, so it can be driven on
 * a plain buffer (fuzz/fuzz_http.c). It pauses the parser whenever the caller
 * must act — the head is in, the in-memory body is full and must be spooled,
 * the message is complete — and reports why (nb_parse_result_t).
 *
 * The head decides everything before a body byte is read: the route (404,
 * 405), the application's head check (authentication: 401), the route's
 * body limit (413 on an announced Content-Length over it). A request refused
 * there has its body never buffered, spooled or parsed.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>

#include "core/arena.h"
#include "core/err.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "http/internal.h"

#define URL_MAX 8192

sreq_t *nb_http__cur(conn_t *c)
{
	if (!c->cur) {
		c->cur = nb_http__sreq_new(c);
		c->cur->req.start_us = nb_mono_us();
	}
	return c->cur;
}

static int on_message_begin(http_parser *p)
{
	conn_t *c = p->data;
	nb_http__cur(c);
	c->requests++;
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	sreq_t *r = nb_http__cur(p->data);
	if (len > URL_MAX || r->url.len + len > URL_MAX)
		return -1;
	nb_buf_append(&r->url, at, len);
	return 0;
}

static void commit_header(sreq_t *r)
{
	if (!r->hname.len)
		return;
	if (r->req.nheaders < NB_MAX_HEADERS) {
		nb_header_t *h = &r->req.headers[r->req.nheaders++];
		h->name = nb_arena_strndup(r->req.arena, r->hname.data, r->hname.len);
		for (char *q = h->name; *q; q++)
			if (*q >= 'A' && *q <= 'Z')
				*q = (char)(*q + 32);
		h->value = nb_arena_strndup(r->req.arena, r->hval.data ? r->hval.data : "", r->hval.len);
	}
	nb_buf_reset(&r->hname);
	nb_buf_reset(&r->hval);
}

/* Header names and values together stay under this (http_parser bounds the whole head at 80 KB too). */
#define HEADER_BYTES_MAX (64 * 1024)

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	sreq_t *r = nb_http__cur(p->data);
	if (r->in_value) {
		commit_header(r);
		r->in_value = false;
	}
	if (r->req.nheaders >= NB_MAX_HEADERS || len > HEADER_BYTES_MAX || r->hname.len + len > HEADER_BYTES_MAX)
		return -1;
	nb_buf_append(&r->hname, at, len);
	return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	sreq_t *r = nb_http__cur(p->data);
	r->in_value = true;
	if (len > HEADER_BYTES_MAX || r->hval.len + len > HEADER_BYTES_MAX)
		return -1;
	nb_buf_append(&r->hval, at, len);
	return 0;
}

static void valid_request_id(sreq_t *r)
{
	const char *h = nb_req_header(&r->req, "x-request-id");
	size_t n = h ? strlen(h) : 0;
	bool ok = n >= 1 && n <= 64;
	for (size_t i = 0; ok && i < n; i++) {
		char ch = h[i];
		ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
		     ch == '_' || ch == '-';
	}
	if (ok)
		memcpy(r->req.request_id, h, n + 1);
	else
		nb_uuid_v7_str(r->req.request_id);
}

/* Sets an answer decided at the head. */
static void early(sreq_t *r, int err, const char *message)
{
	r->early = true;
	if (r->req.resp.status == 0)
		nb_resp_error(&r->req, err, message, NULL);
}

/* The head is complete: route, check, size the body. Sets r->early on a refusal. */
static void decide_head(http_parser *p, sreq_t *r)
{
	conn_t *c = p->data;
	nb_server_t *s = r->srv;
	r->req.method = http_method_str((enum http_method)p->method);
	valid_request_id(r);
	nb_buf_putc(&r->url, '\0');
	char *url = nb_arena_strdup(r->req.arena, r->url.data);
	char *q = strchr(url, '?');
	if (q) {
		*q = '\0';
		r->req.query = q + 1;
	}
	r->req.path = url;
	if (p->http_major != 1) {
		r->keep_alive = false;
		early(r, NB_EBADREQ, "unsupported HTTP version");
		return;
	}
	if (url[0] != '/') {
		r->keep_alive = false;
		early(r, NB_EBADREQ, "request target must be a path");
		return;
	}
	char allow[64];
	const nb_route_t *routes = c->admin ? s->admin_routes : s->routes;
	int nroutes = c->admin ? s->nadmin_routes : s->nroutes;
	nb_match_t m = nb_router_match(routes, nroutes, r->req.method, url, r->req.arena, &r->req.route,
				       r->req.params, &r->req.nparams, allow, sizeof allow);
	if (m == NB_MATCH_NOT_FOUND) {
		early(r, NB_ENOTFOUND, NULL);
		return;
	}
	if (m == NB_MATCH_METHOD) {
		early(r, NB_EMETHOD, NULL);
		nb_resp_header(&r->req.resp, "Allow", allow);
		return;
	}
	if (s->o.hooks.on_head && s->o.hooks.on_head(&r->req) < 0) {
		early(r, NB_EINTERNAL, NULL);
		return;
	}
	r->body_limit = (r->req.route->flags & NB_ROUTE_MULTIPART) ? s->o.max_body_bytes : s->o.max_json_bytes;
	if (r->body_follows && p->content_length != ULLONG_MAX && p->content_length > r->body_limit) {
		r->too_large = true;
		early(r, NB_ETOOLARGE, "request body too large");
		return;
	}
	const char *expect = nb_req_header(&r->req, "expect");
	if (expect && strcasecmp(expect, "100-continue") == 0 && r->body_follows)
		r->expect_continue = true;
}

static int on_headers_complete(http_parser *p)
{
	sreq_t *r = nb_http__cur(p->data);
	commit_header(r);
	r->keep_alive = http_should_keep_alive(p);
	r->body_follows = (p->flags & F_CHUNKED) || (p->content_length > 0 && p->content_length != ULLONG_MAX);
	r->head_done = true;
	decide_head(p, r);
	/* Stop here when the caller must act before the body: answer a refusal,
	 * or send 100 Continue / switch timers. A refused request without a body
	 * runs on to message complete so the connection can be kept. */
	if (!r->early || r->body_follows)
		http_parser_pause(p, 1);
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	sreq_t *r = nb_http__cur(p->data);
	size_t total;
	if (__builtin_add_overflow(r->body_len, len, &total) || total > r->body_limit) {
		r->too_large = true;
		http_parser_pause(p, 1);
		return 0;
	}
	r->body_len = total;
	nb_buf_append(&r->body, at, len);
	/* Only a route allowed more than memory keeps spools; the others stay under their limit. */
	if (r->body.len >= NB_HTTP_BODY_MEM_MAX && r->body_limit > NB_HTTP_BODY_MEM_MAX)
		http_parser_pause(p, 1);
	return 0;
}

static int on_message_complete(http_parser *p)
{
	sreq_t *r = nb_http__cur(p->data);
	r->complete = true;
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings settings = {
	.on_message_begin = on_message_begin,
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

void nb_http__parser_reset(conn_t *c)
{
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
}

nb_parse_result_t nb_http__parse(conn_t *c, const char *data, size_t len, size_t *used)
{
	if (HTTP_PARSER_ERRNO(&c->parser) == HPE_PAUSED)
		http_parser_pause(&c->parser, 0);
	bool head_before = c->cur && c->cur->head_done;
	size_t n = http_parser_execute(&c->parser, &settings, data, len);
	*used = n;
	enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
	sreq_t *r = c->cur;
	if (e != HPE_OK && e != HPE_PAUSED) {
		r = nb_http__cur(c);
		r->keep_alive = false;
		if (!r->req.request_id[0])
			nb_uuid_v7_str(r->req.request_id);
		r->req.resp.status = 0;
		nb_buf_reset(&r->req.resp.headers);
		nb_resp_error(&r->req, NB_EBADREQ, "malformed HTTP request", NULL);
		*used = len;
		return NB_PARSE_BAD;
	}
	if (c->parser.upgrade) {
		r = nb_http__cur(c);
		r->keep_alive = false;
		if (!r->head_done) {
			nb_uuid_v7_str(r->req.request_id);
			nb_resp_error(&r->req, NB_EBADREQ, "malformed HTTP request", NULL);
		} else {
			r->req.resp.status = 0;
			nb_buf_reset(&r->req.resp.headers);
			nb_resp_error(&r->req, NB_EBADREQ, "protocol upgrades are not supported", NULL);
		}
		*used = len;
		return NB_PARSE_BAD;
	}
	if (!r)
		return NB_PARSE_MORE;
	if (r->early)
		return NB_PARSE_EARLY; /* refused at the head (or at the end of a bodiless message) */
	if (r->too_large) {
		early(r, NB_ETOOLARGE, "request body too large");
		return NB_PARSE_TOO_LARGE;
	}
	if (r->complete)
		return NB_PARSE_DONE;
	if (r->head_done && !head_before)
		return NB_PARSE_HEAD;
	if (e == HPE_PAUSED)
		return NB_PARSE_SPOOL;
	return NB_PARSE_MORE;
}

int nb_http__finish_body(sreq_t *r)
{
	if (r->body_fd < 0) {
		r->req.body = r->body.len ? r->body.data : NULL;
		r->req.body_len = r->body.len;
		return 0;
	}
	if (r->spooled == 0)
		return -1;
	/* mmap reads nothing now: pages come in as the handler (on its thread) touches them */
	void *m = mmap(NULL, r->spooled, PROT_READ, MAP_PRIVATE, r->body_fd, 0);
	if (m == MAP_FAILED)
		return -1;
	r->body_map = m;
	r->req.body = m;
	r->req.body_len = r->spooled;
	return 0;
}
