/*
 * server.c — HTTP/1.1 over libuv + http_parser, handlers on thread pools.
 *
 * Ownership. A connection (conn_t) lives on one loop. It parses one request
 * at a time into an sreq_t; when the request is complete it stops reading
 * (pipelined bytes wait in c->pending), routes it and hands it to a pool.
 * From then on the worker owns the nb_req_t side and the loop only touches
 * the shared output queue under sreq->mu. The worker appends response bytes
 * to that queue and posts the sreq to its loop's mailbox (mutex + uv_async);
 * the loop writes them. The sreq is freed by the loop once the worker has
 * finished and every write has completed; the connection once its handles
 * are closed and it has no request in flight.
 *
 * Deadlines. One timer per connection: idle timeout between requests, read
 * timeout while a request arrives, request deadline while it is handled. A
 * request past its deadline gets 503 and the connection is closed; the
 * worker's late answer is dropped.
 */
#include "http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <http_parser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "core/alloc.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/sched.h"
#include "core/timeutil.h"
#include "core/tpool.h"
#include "core/uuid.h"
#include "db/db.h"
#include "db/pipe.h"

#define BODY_MEM_MAX (1024 * 1024) /* bodies beyond this spill to a temp file */
#define STREAM_BACKLOG_MAX (1024 * 1024)

typedef struct loop loop_t;
typedef struct conn conn_t;
typedef struct sreq sreq_t;

typedef enum { S_IDLE, S_READING, S_PROCESSING, S_CLOSED } conn_state_t;

struct sreq {
	nb_req_t req; /* first: a nb_req_t * is a sreq_t * */
	conn_t *conn;
	loop_t *lp;
	nb_server_t *srv;
	/* parsing */
	nb_buf_t url;
	nb_buf_t hname, hval;
	bool in_value;
	nb_buf_t body;
	int body_fd;
	size_t body_len;
	void *body_map;
	bool too_large;
	bool expect_continue;
	bool keep_alive;
	/* output, shared with the worker under mu */
	nb_buf_t out;
	bool finished;   /* the worker is done with the request */
	bool in_mailbox; /* queued on the loop's mailbox */
	bool streaming;
	atomic_bool gone; /* client gone, or the request was abandoned */
	bool aborted;     /* a stream given up midway */
	int status;
	size_t bytes_out;
	/* loop-only */
	int writes_inflight;
	bool dispatched;
	bool done_logged;
	nb_pool_t *conn_pool; /* where req->conn came from */
	long stmts;           /* statements the request ran */
	/* last: kept (not cleared) when the request is recycled */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	sreq_t *mail_next;
};

struct conn {
	uv_tcp_t tcp;
	uv_timer_t timer;
	loop_t *lp;
	http_parser parser;
	conn_state_t state;
	sreq_t *cur;      /* the request being parsed or handled */
	nb_buf_t pending; /* bytes read past the current request */
	int handles_open;
	bool close_after; /* close once the current response is written */
	char remote[64];
	conn_t *prev, *next;
};

struct loop {
	nb_server_t *srv;
	int index;
	uv_loop_t loop;
	uv_tcp_t listener;
	bool listening;
	uv_async_t wake;
	uv_signal_t sigterm, sigint;
	uv_timer_t drain_timer;
	pthread_t thread;
	pthread_mutex_t mu;
	sreq_t *mail_head, *mail_tail;
	conn_t *conns;
	long nconns;
	bool draining;
	nb_sched_t *sched;
	sreq_t *free_sreqs; /* recycled requests (loop thread only) */
	int nfree;
	nb_pool_t *pool; /* async pool for this loop's coroutines */
	nb_pipe_t *pipe; /* their pipelined connections, or NULL */
};

struct nb_server {
	nb_server_opts_t o;
	loop_t *loops;
	int nloops;
	int port;
	nb_tpool_t *pools[NB_EXEC_CLASSES_]; /* thread pools by nb_exec_class_t */
	atomic_bool stopping;
	atomic_long conns_open, conns_total, requests_total, in_flight, timeouts, rejected;
	atomic_long by_class[6];
};

static http_parser_settings parser_settings;
static nb_server_t *current_server;

static void conn_close(conn_t *c);
static void conn_next_request(conn_t *c);
static void feed(conn_t *c, const char *data, size_t len);
static void flush_sreq(sreq_t *r);

/* ---------------------------------------------------------------- options */

void nb_server_opts_from_config(nb_server_opts_t *o)
{
	memset(o, 0, sizeof *o);
	o->listen = nb_cfg.listen;
	o->io_threads = nb_cfg.io_threads;
	o->handler_threads = nb_cfg.handler_threads;
	o->hash_threads = nb_cfg.hash_threads;
	o->stream_threads = nb_cfg.stream_threads;
	o->max_connections = nb_cfg.max_connections;
	o->request_timeout_ms = nb_cfg.request_timeout_ms;
	o->idle_timeout_ms = nb_cfg.idle_timeout_ms;
	o->read_timeout_ms = nb_cfg.read_timeout_ms;
	o->max_body_bytes = (size_t)nb_cfg.max_upload_bytes;
	o->shutdown_timeout_ms = nb_cfg.shutdown_timeout_ms;
	o->pipelines = nb_cfg.db_pipelines;
}

/* --------------------------------------------------------------- requests */

#define FREE_SREQS_MAX 1024
#define BUF_KEEP_MAX (64 * 1024)

static sreq_t *sreq_new(conn_t *c)
{
	loop_t *lp = c->lp;
	sreq_t *r = lp->free_sreqs;
	if (r) {
		lp->free_sreqs = r->mail_next;
		lp->nfree--;
		r->mail_next = NULL;
	} else {
		r = nb_xcalloc(1, sizeof *r);
		r->req.arena = nb_arena_create();
		pthread_mutex_init(&r->mu, NULL);
		pthread_cond_init(&r->cv, NULL);
	}
	r->conn = c;
	r->lp = c->lp;
	r->srv = c->lp->srv;
	r->body_fd = -1;
	atomic_init(&r->gone, false);
	snprintf(r->req.remote, sizeof r->req.remote, "%s", c->remote);
	atomic_fetch_add(&r->srv->in_flight, 1);
	return r;
}

/* Empties a buffer for reuse, giving back memory a large body left behind. */
static void buf_recycle(nb_buf_t *b)
{
	if (b->cap > BUF_KEEP_MAX)
		nb_buf_dispose(b);
	else
		nb_buf_reset(b);
}

static void sreq_destroy(sreq_t *r);

/* Releases what the request holds and keeps the shell for the next request. */
static void sreq_free(sreq_t *r)
{
	if (!r)
		return;
	atomic_fetch_sub(&r->srv->in_flight, 1);
	if (r->req.json)
		json_decref(r->req.json);
	if (r->body_map)
		munmap(r->body_map, r->body_len);
	if (r->body_fd >= 0)
		close(r->body_fd);
	loop_t *lp = r->lp;
	if (!lp || lp->nfree >= FREE_SREQS_MAX) {
		sreq_destroy(r);
		return;
	}
	/* keep: arena (reset), buffers (emptied), mutex, condition variable */
	nb_arena_t *arena = r->req.arena;
	nb_arena_reset(arena);
	nb_buf_t keep[7] = {r->url, r->hname, r->hval, r->body, r->out, r->req.resp.headers, r->req.resp.body};
	for (int i = 0; i < 7; i++)
		buf_recycle(&keep[i]);
	memset(r, 0, offsetof(sreq_t, mu)); /* the mutex and condition variable stay as they are */
	r->req.arena = arena;
	r->url = keep[0], r->hname = keep[1], r->hval = keep[2], r->body = keep[3], r->out = keep[4];
	r->req.resp.headers = keep[5], r->req.resp.body = keep[6];
	r->mail_next = lp->free_sreqs;
	lp->free_sreqs = r;
	lp->nfree++;
}

static void sreq_destroy(sreq_t *r)
{
	nb_buf_dispose(&r->url);
	nb_buf_dispose(&r->hname);
	nb_buf_dispose(&r->hval);
	nb_buf_dispose(&r->body);
	nb_buf_dispose(&r->out);
	nb_buf_dispose(&r->req.resp.headers);
	nb_buf_dispose(&r->req.resp.body);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
	nb_arena_destroy(r->req.arena);
	free(r);
}

static const char *reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Unknown";
	}
}

/* Appends the status line and common headers of a response to out. */
static void head_common(nb_buf_t *out, sreq_t *r, int status, const char *ctype, bool keep_alive)
{
	nb_buf_printf(out, "HTTP/1.1 %d %s\r\n", status, reason(status));
	if (ctype)
		nb_buf_printf(out, "Content-Type: %s\r\n", ctype);
	nb_buf_printf(out, "X-Request-Id: %s\r\n", r->req.request_id);
	nb_buf_puts(out, keep_alive ? "" : "Connection: close\r\n");
	nb_buf_puts(out, "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n");
}

/* Serialises r->req.resp into out (a complete, non-streamed response). */
static void serialize_response(sreq_t *r, nb_buf_t *out, bool keep_alive)
{
	nb_resp_t *resp = &r->req.resp;
	head_common(out, r, resp->status, resp->body.len || resp->content_type ? resp->content_type : NULL,
		    keep_alive);
	if (resp->retry_after > 0)
		nb_buf_printf(out, "Retry-After: %d\r\n", resp->retry_after);
	if (nb_cfg.expose_statement_count)
		nb_buf_printf(out, "X-DB-Statements: %ld\r\n", r->stmts);
	if (resp->headers.len)
		nb_buf_append(out, resp->headers.data, resp->headers.len);
	if (resp->status != 204 && resp->status != 304)
		nb_buf_printf(out, "Content-Length: %zu\r\n", resp->body.len);
	nb_buf_puts(out, "\r\n");
	if (resp->body.len && !(r->req.method && strcmp(r->req.method, "HEAD") == 0))
		nb_buf_append(out, resp->body.data, resp->body.len);
}

static void access_log(sreq_t *r)
{
	if (!nb_cfg.access_log || r->done_logged)
		return;
	r->done_logged = true;
	char ts[32];
	nb_rfc3339_ms(nb_now_ms(), ts);
	nb_buf_t b = NB_BUF_INIT;
	nb_buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"info\",\"msg\":\"access\",\"request_id\":", ts);
	nb_buf_json_str(&b, r->req.request_id, strlen(r->req.request_id));
	nb_buf_puts(&b, ",\"method\":");
	const char *m = r->req.method ? r->req.method : "-";
	nb_buf_json_str(&b, m, strlen(m));
	nb_buf_puts(&b, ",\"path\":");
	const char *p = r->req.path ? r->req.path : "-";
	nb_buf_json_str(&b, p, strlen(p) > 512 ? 512 : strlen(p));
	nb_buf_printf(&b, ",\"status\":%d,\"bytes\":%zu,\"duration_ms\":%.3f,\"remote\":", r->status, r->bytes_out,
		      (double)(nb_mono_us() - r->req.start_us) / 1000.0);
	nb_buf_json_str(&b, r->req.remote, strlen(r->req.remote));
	if (r->req.authed) {
		nb_buf_puts(&b, ",\"user_id\":");
		nb_buf_json_str(&b, r->req.user_id, strlen(r->req.user_id));
	}
	nb_buf_putc(&b, '}');
	nb_log_raw_json(b.data, b.len);
	nb_buf_dispose(&b);
}

/* ------------------------------------------------------ worker → loop mail */

/* Queues r on its loop's mailbox (if not already) and wakes the loop. */
static void post(sreq_t *r)
{
	loop_t *lp = r->lp;
	pthread_mutex_lock(&lp->mu);
	if (!r->in_mailbox) {
		r->in_mailbox = true;
		r->mail_next = NULL;
		if (lp->mail_tail)
			lp->mail_tail->mail_next = r;
		else
			lp->mail_head = r;
		lp->mail_tail = r;
	}
	pthread_mutex_unlock(&lp->mu);
	uv_async_send(&lp->wake);
}

static void count_status(nb_server_t *s, int status)
{
	int cls = status / 100;
	if (cls >= 1 && cls <= 5)
		atomic_fetch_add(&s->by_class[cls], 1);
}

/* The bytes that end a request (the whole answer, or a stream's last chunk), counted and logged. */
static void final_bytes(sreq_t *r, nb_buf_t *tail)
{
	if (r->streaming) {
		if (!r->aborted)
			nb_buf_puts(tail, "0\r\n\r\n");
	} else {
		bool keep = r->keep_alive && !atomic_load(&r->srv->stopping);
		serialize_response(r, tail, keep);
		r->status = r->req.resp.status;
		r->bytes_out = tail->len;
	}
	count_status(r->srv, r->status);
	access_log(r);
}

/*
 * Worker side: the handler is done; hand the final bytes to the loop. Setting
 * `finished` and queueing on the mailbox happen under the loop's lock, so the
 * loop cannot free the request between the two; after this the worker never
 * touches r again.
 */
static void finish_from_worker(sreq_t *r)
{
	nb_buf_t tail = NB_BUF_INIT;
	final_bytes(r, &tail);
	loop_t *lp = r->lp;
	pthread_mutex_lock(&lp->mu);
	pthread_mutex_lock(&r->mu);
	nb_buf_append(&r->out, tail.data, tail.len);
	r->finished = true;
	if (!r->in_mailbox) {
		r->in_mailbox = true;
		r->mail_next = NULL;
		if (lp->mail_tail)
			lp->mail_tail->mail_next = r;
		else
			lp->mail_head = r;
		lp->mail_tail = r;
	}
	pthread_mutex_unlock(&r->mu);
	pthread_mutex_unlock(&lp->mu);
	nb_buf_dispose(&tail);
	uv_async_send(&lp->wake);
}

/* --------------------------------------------------------- the worker side */

static bool json_content_type(const char *ct)
{
	if (!ct)
		return false;
	size_t n = strcspn(ct, ";");
	while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
		n--;
	return n == 16 && strncasecmp(ct, "application/json", 16) == 0;
}

static bool multipart_content_type(const char *ct)
{
	return ct && strncasecmp(ct, "multipart/form-data", 19) == 0;
}

/* Refuses JSON nested deeper than this before parsing it: the parser
 * recurses, and coroutine stacks are small. */
#define JSON_MAX_DEPTH 64

static bool json_too_deep(const char *p, size_t n)
{
	int depth = 0;
	bool in_str = false;
	for (size_t i = 0; i < n; i++) {
		char ch = p[i];
		if (in_str) {
			if (ch == '\\')
				i++;
			else if (ch == '"')
				in_str = false;
		} else if (ch == '"') {
			in_str = true;
		} else if (ch == '[' || ch == '{') {
			if (++depth > JSON_MAX_DEPTH)
				return true;
		} else if (ch == ']' || ch == '}') {
			depth--;
		}
	}
	return false;
}

/* Checks and parses the body. 0, or a negative error with resp set. */
static int prepare_body(nb_req_t *req)
{
	if (req->body_len == 0)
		return 0;
	const char *ct = nb_req_header(req, "content-type");
	if (multipart_content_type(ct) && (req->route->flags & NB_ROUTE_MULTIPART))
		return 0;
	if (!json_content_type(ct))
		return nb_resp_error(req, NB_EMEDIATYPE,
				     (req->route->flags & NB_ROUTE_MULTIPART)
					     ? "content type must be application/json or multipart/form-data"
					     : "content type must be application/json",
				     NULL);
	if (json_too_deep(req->body, req->body_len))
		return nb_resp_error(req, NB_EBADREQ, "body is nested too deeply", NULL);
	json_error_t jerr;
	json_t *j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j)
		return nb_resp_error(req, NB_EBADREQ, "body is not valid JSON", NULL);
	if (!json_is_object(j)) {
		json_decref(j);
		return nb_resp_error(req, NB_EBADREQ, "body must be a JSON object", NULL);
	}
	req->json = j;
	return 0;
}

/* Runs middleware and handler; fills req->resp (or streams). Thread or coroutine. */
static void handle(sreq_t *r)
{
	nb_req_t *req = &r->req;
	nb_server_t *s = r->srv;
	nb_log_set_request_id(req->request_id);
	int rc = prepare_body(req);
	if (rc == 0 && (req->route->flags & NB_ROUTE_AUTH)) {
		rc = s->o.authenticate ? s->o.authenticate(req) : NB_EUNAUTH;
		if (rc < 0 && req->resp.status == 0)
			nb_resp_error(req, rc, NULL, NULL);
	}
	if (rc == 0) {
		rc = req->route->fn(req);
		if (rc < 0 && req->resp.status == 0 && !r->streaming)
			nb_resp_error(req, rc, NULL, NULL);
	}
	if (req->resp.status == 0 && !r->streaming)
		nb_resp_error(req, NB_EINTERNAL, NULL, NULL);
	if (req->conn) {
		r->stmts = nb_conn_statements(req->conn);
		nb_pool_release(r->conn_pool, req->conn);
		req->conn = NULL;
	}
	nb_log_set_request_id(NULL);
}

static void worker_task(void *arg)
{
	sreq_t *r = arg;
	handle(r);
	finish_from_worker(r);
}

static void finish_on_loop(sreq_t *r);

static void coro_entry(void *arg)
{
	handle(arg);
}

static void coro_done(void *arg)
{
	finish_on_loop(arg);
}

/* ------------------------------------------------------------ request API */

int nb_req_db(nb_req_t *req, nb_conn_t **out)
{
	sreq_t *r = (sreq_t *)req;
	if (!req->conn) {
		bool coro = nb_sched_in_coro();
		nb_pool_t *p = coro ? r->lp->pool : r->srv->o.pool;
		if (!p)
			return NB_EUNAVAIL;
		if (coro && r->lp->pipe) {
			req->conn = nb_pool_acquire_virtual(p, r->lp->pipe);
		} else {
			int rc = nb_pool_acquire_by(p, req->deadline_ms, &req->conn); /* h2-db: not past the deadline */
			if (rc < 0)
				return rc;
		}
		r->conn_pool = p;
		nb_conn_set_deadline(req->conn, req->deadline_ms); /* h2-db: db waits end at the request's deadline */
	}
	*out = req->conn;
	return 0;
}

/* Streaming: called from the worker. */
int nb_stream_begin(nb_req_t *req, int status, const char *content_type)
{
	sreq_t *r = (sreq_t *)req;
	if (atomic_load(&r->gone))
		return -1;
	pthread_mutex_lock(&r->mu);
	r->streaming = true;
	r->status = status;
	head_common(&r->out, r, status, content_type, r->keep_alive);
	nb_buf_puts(&r->out, "Transfer-Encoding: chunked\r\n");
	if (req->resp.headers.len)
		nb_buf_append(&r->out, req->resp.headers.data, req->resp.headers.len);
	nb_buf_puts(&r->out, "\r\n");
	pthread_mutex_unlock(&r->mu);
	if (nb_sched_in_coro())
		flush_sreq(r);
	else
		post(r);
	return 0;
}

int nb_stream_write(nb_req_t *req, const char *data, size_t len)
{
	sreq_t *r = (sreq_t *)req;
	if (len == 0)
		return 0;
	pthread_mutex_lock(&r->mu);
	while (!nb_sched_in_coro() && r->out.len > STREAM_BACKLOG_MAX && !atomic_load(&r->gone))
		pthread_cond_wait(&r->cv, &r->mu);
	if (atomic_load(&r->gone)) {
		pthread_mutex_unlock(&r->mu);
		return -1;
	}
	nb_buf_printf(&r->out, "%zx\r\n", len);
	nb_buf_append(&r->out, data, len);
	nb_buf_puts(&r->out, "\r\n");
	pthread_mutex_unlock(&r->mu);
	if (nb_sched_in_coro())
		flush_sreq(r); /* on the loop already; a coroutine streams without backpressure */
	else
		post(r);
	return 0;
}

void nb_stream_abort(nb_req_t *req)
{
	sreq_t *r = (sreq_t *)req;
	r->aborted = true;
}

bool nb_stream_closed(nb_req_t *req)
{
	return atomic_load(&((sreq_t *)req)->gone);
}

/* ------------------------------------------------------------ loop: output */

typedef struct wreq {
	uv_write_t w;
	sreq_t *r;
	char *data;
} wreq_t;

static void maybe_complete(sreq_t *r);

static void on_write(uv_write_t *w, int status)
{
	wreq_t *wr = (wreq_t *)w;
	sreq_t *r = wr->r;
	free(wr->data);
	free(wr);
	r->writes_inflight--;
	if (status < 0) {
		atomic_store(&r->gone, true);
		pthread_mutex_lock(&r->mu);
		pthread_cond_broadcast(&r->cv);
		pthread_mutex_unlock(&r->mu);
		if (r->conn)
			conn_close(r->conn);
	}
	maybe_complete(r);
}

/* Writes whatever the worker queued. Loop thread. */
static void flush_sreq(sreq_t *r)
{
	conn_t *c = r->conn;
	pthread_mutex_lock(&r->mu);
	size_t len = r->out.len;
	char *data = len ? nb_buf_steal(&r->out, NULL) : NULL;
	pthread_cond_broadcast(&r->cv); /* a streaming worker may wait for room */
	pthread_mutex_unlock(&r->mu);
	if (!data)
		return;
	if (!c || c->state == S_CLOSED || atomic_load(&r->gone)) {
		free(data);
		return;
	}
	r->bytes_out += len;
	wreq_t *wr = nb_xmalloc(sizeof *wr);
	wr->r = r;
	wr->data = data;
	uv_buf_t buf = uv_buf_init(data, (unsigned)len);
	r->writes_inflight++;
	int rc = uv_write(&wr->w, (uv_stream_t *)&c->tcp, &buf, 1, on_write);
	if (rc < 0) {
		r->writes_inflight--;
		free(data);
		free(wr);
		atomic_store(&r->gone, true);
		conn_close(c);
	}
}

/* Frees a finished request once its writes are done and moves the connection on. */
static void maybe_complete(sreq_t *r)
{
	if (r->writes_inflight > 0)
		return;
	loop_t *lp = r->lp;
	pthread_mutex_lock(&lp->mu);
	pthread_mutex_lock(&r->mu);
	bool finished = r->finished && r->out.len == 0;
	bool in_mail = r->in_mailbox;
	pthread_mutex_unlock(&r->mu);
	pthread_mutex_unlock(&lp->mu);
	if (!finished || in_mail)
		return;
	conn_t *c = r->conn;
	if (c) {
		c->cur = NULL;
		r->conn = NULL;
		if (r->aborted)
			c->close_after = true;
	}
	sreq_free(r);
	if (!c)
		return;
	if (c->state == S_CLOSED) {
		conn_close(c); /* finishes freeing if the handles are closed */
		return;
	}
	if (c->close_after || c->lp->draining)
		conn_close(c);
	else
		conn_next_request(c);
}

/* A coroutine's handler returned: write the answer from here, no mailbox. */
static void finish_on_loop(sreq_t *r)
{
	nb_buf_t tail = NB_BUF_INIT;
	final_bytes(r, &tail);
	pthread_mutex_lock(&r->mu);
	nb_buf_append(&r->out, tail.data, tail.len);
	r->finished = true;
	pthread_mutex_unlock(&r->mu);
	nb_buf_dispose(&tail);
	if (!r->streaming)
		r->bytes_out = 0; /* flush_sreq counts what it writes */
	flush_sreq(r);
	maybe_complete(r);
}

static void on_wake(uv_async_t *h)
{
	loop_t *lp = h->data;
	pthread_mutex_lock(&lp->mu);
	sreq_t *list = lp->mail_head;
	lp->mail_head = lp->mail_tail = NULL;
	for (sreq_t *r = list; r; r = r->mail_next)
		r->in_mailbox = false;
	pthread_mutex_unlock(&lp->mu);
	while (list) {
		sreq_t *r = list;
		list = r->mail_next; /* read before r may be freed */
		if (r->conn && r->conn->state == S_PROCESSING && r->streaming)
			uv_timer_stop(&r->conn->timer); /* a stream has begun: no deadline on it */
		flush_sreq(r);
		maybe_complete(r);
	}
	if (lp->draining && lp->nconns == 0 && lp->listening == false)
		uv_stop(&lp->loop);
}

/* A response made on the loop (404, 405, 413, parse errors, timeouts). */
static void respond_from_loop(sreq_t *r, int err, const char *message, const char *allow, bool close)
{
	conn_t *c = r->conn;
	r->dispatched = true; /* owned by the write path now: conn_close must not free it */
	if (close)
		c->close_after = true;
	bool keep = !c->close_after && !c->lp->draining && r->keep_alive;
	if (!r->req.request_id[0])
		nb_uuid_v7_str(r->req.request_id);
	nb_resp_error(&r->req, err, message, NULL);
	if (allow)
		nb_resp_header(&r->req.resp, "Allow", allow);
	pthread_mutex_lock(&r->mu);
	serialize_response(r, &r->out, keep);
	r->finished = true;
	pthread_mutex_unlock(&r->mu);
	if (!keep)
		c->close_after = true;
	r->status = r->req.resp.status;
	r->bytes_out = r->out.len;
	count_status(r->srv, r->status);
	access_log(r);
	r->bytes_out = 0; /* flush_sreq counts what it writes */
	flush_sreq(r);
	maybe_complete(r);
}

/* ------------------------------------------------------- loop: connections */

static void on_handle_closed(uv_handle_t *h)
{
	conn_t *c = h->data;
	if (--c->handles_open > 0)
		return;
	if (c->cur) /* a worker still holds the request; maybe_complete frees us later */
		return;
	loop_t *lp = c->lp;
	if (c->prev)
		c->prev->next = c->next;
	else
		lp->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	lp->nconns--;
	atomic_fetch_sub(&lp->srv->conns_open, 1);
	nb_buf_dispose(&c->pending);
	free(c);
	if (lp->draining && lp->nconns == 0)
		uv_stop(&lp->loop);
}

static void conn_close(conn_t *c)
{
	if (c->state == S_CLOSED) {
		/* Handles already closing; if they are closed and nothing holds us, free. */
		if (c->handles_open == 0 && !c->cur) {
			c->handles_open = 1;
			on_handle_closed((uv_handle_t *)&c->tcp);
		}
		return;
	}
	c->state = S_CLOSED;
	if (c->cur) {
		sreq_t *r = c->cur;
		atomic_store(&r->gone, true);
		pthread_mutex_lock(&r->mu);
		pthread_cond_broadcast(&r->cv);
		pthread_mutex_unlock(&r->mu);
		if (!r->dispatched) {
			/* Still parsing: nobody else holds it. */
			c->cur = NULL;
			r->conn = NULL;
			sreq_free(r);
		}
	}
	uv_timer_stop(&c->timer);
	uv_read_stop((uv_stream_t *)&c->tcp);
	uv_close((uv_handle_t *)&c->timer, on_handle_closed);
	uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void on_timer(uv_timer_t *t)
{
	conn_t *c = t->data;
	if (c->state == S_PROCESSING && c->cur && !c->cur->streaming) {
		/* The deadline passed: answer 503 now, drop the worker's late answer. */
		sreq_t *r = c->cur;
		atomic_fetch_add(&c->lp->srv->timeouts, 1);
		nb_warn("request %s %s passed its deadline", r->req.method, r->req.path);
		pthread_mutex_lock(&r->mu);
		bool done = r->finished;
		pthread_mutex_unlock(&r->mu);
		if (done)
			return;
		/* The worker owns r->req.resp; build the answer separately. */
		nb_buf_t out = NB_BUF_INIT;
		nb_buf_printf(&out,
			      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
			      "X-Request-Id: %s\r\nConnection: close\r\nRetry-After: 1\r\n"
			      "Cache-Control: no-store\r\n",
			      r->req.request_id);
		nb_buf_t body = NB_BUF_INIT;
		nb_buf_puts(&body, "{\"error\":{\"code\":\"unavailable\",\"message\":\"request timed out\","
				   "\"request_id\":");
		nb_buf_json_str(&body, r->req.request_id, strlen(r->req.request_id));
		nb_buf_puts(&body, "}}");
		nb_buf_printf(&out, "Content-Length: %zu\r\n\r\n", body.len);
		nb_buf_append(&out, body.data, body.len);
		nb_buf_dispose(&body);
		uv_buf_t buf = uv_buf_init(out.data, (unsigned)out.len);
		uv_try_write((uv_stream_t *)&c->tcp, &buf, 1);
		nb_buf_dispose(&out);
		count_status(c->lp->srv, 503);
		conn_close(c);
		return;
	}
	if (c->state == S_PROCESSING)
		return;
	conn_close(c); /* idle or read timeout */
}

static void arm_timer(conn_t *c, int ms)
{
	uv_timer_start(&c->timer, on_timer, (uint64_t)ms, 0);
}

/* One read buffer per loop thread: on_read consumes it before the next read
 * (the parser copies what it keeps), so idle connections hold no buffer. */
static _Thread_local char tl_readbuf[65536];

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	(void)suggested;
	buf->base = tl_readbuf;
	buf->len = sizeof tl_readbuf;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	conn_t *c = s->data;
	(void)buf;
	if (n < 0) {
		conn_close(c);
		return;
	}
	if (n > 0) {
		if (c->state == S_PROCESSING)
			nb_buf_append(&c->pending, buf->base, (size_t)n);
		else
			feed(c, buf->base, (size_t)n);
	}
}

static void conn_next_request(conn_t *c)
{
	c->state = S_IDLE;
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
	arm_timer(c, c->lp->srv->o.idle_timeout_ms);
	if (c->pending.len) {
		nb_buf_t p = c->pending;
		nb_buf_init(&c->pending);
		feed(c, p.data, p.len);
		nb_buf_dispose(&p);
		if (c->state == S_PROCESSING || c->state == S_CLOSED)
			return;
	}
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_connection(uv_stream_t *server, int status)
{
	loop_t *lp = server->data;
	if (status < 0)
		return;
	conn_t *c = nb_xcalloc(1, sizeof *c);
	c->lp = lp;
	uv_tcp_init(&lp->loop, &c->tcp);
	uv_timer_init(&lp->loop, &c->timer);
	c->tcp.data = c;
	c->timer.data = c;
	c->handles_open = 2;
	c->next = lp->conns;
	if (lp->conns)
		lp->conns->prev = c;
	lp->conns = c;
	lp->nconns++;
	atomic_fetch_add(&lp->srv->conns_open, 1);
	atomic_fetch_add(&lp->srv->conns_total, 1);
	if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
		conn_close(c);
		return;
	}
	if (atomic_load(&lp->srv->conns_open) > lp->srv->o.max_connections || lp->draining) {
		atomic_fetch_add(&lp->srv->rejected, 1);
		conn_close(c);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	struct sockaddr_storage ss;
	int len = sizeof ss;
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET)
			uv_ip4_name((struct sockaddr_in *)&ss, c->remote, sizeof c->remote);
		else if (ss.ss_family == AF_INET6)
			uv_ip6_name((struct sockaddr_in6 *)&ss, c->remote, sizeof c->remote);
	}
	conn_next_request(c);
}

/* -------------------------------------------------------- loop: parsing */

static sreq_t *cur_req(http_parser *p)
{
	conn_t *c = p->data;
	if (!c->cur) {
		c->cur = sreq_new(c);
		c->cur->req.start_us = nb_mono_us();
	}
	return c->cur;
}

static int on_message_begin(http_parser *p)
{
	conn_t *c = p->data;
	cur_req(p);
	if (c->state == S_IDLE) {
		c->state = S_READING;
		arm_timer(c, c->lp->srv->o.read_timeout_ms);
	}
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	sreq_t *r = cur_req(p);
	if (r->url.len + len > 8192)
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

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	sreq_t *r = cur_req(p);
	if (r->in_value) {
		commit_header(r);
		r->in_value = false;
	}
	if (r->req.nheaders >= NB_MAX_HEADERS)
		return -1;
	nb_buf_append(&r->hname, at, len);
	return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	sreq_t *r = cur_req(p);
	r->in_value = true;
	nb_buf_append(&r->hval, at, len);
	return 0;
}

static int on_headers_complete(http_parser *p)
{
	sreq_t *r = cur_req(p);
	commit_header(r);
	r->keep_alive = http_should_keep_alive(p);
	size_t max = r->srv->o.max_body_bytes;
	if (p->content_length != ULLONG_MAX && p->content_length > max) {
		r->too_large = true;
		http_parser_pause(p, 1);
		return 0;
	}
	const char *expect = nb_req_header(&r->req, "expect");
	if (expect && strcasecmp(expect, "100-continue") == 0)
		r->expect_continue = true;
	return 0;
}

static int spill_body(sreq_t *r)
{
	char tmpl[] = "/tmp/notebookd-body-XXXXXX";
	int fd = mkstemp(tmpl);
	if (fd < 0)
		return -1;
	unlink(tmpl);
	if (write(fd, r->body.data, r->body.len) != (ssize_t)r->body.len) {
		close(fd);
		return -1;
	}
	r->body_fd = fd;
	nb_buf_dispose(&r->body);
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	sreq_t *r = cur_req(p);
	if (r->body_len + len > r->srv->o.max_body_bytes) {
		r->too_large = true;
		http_parser_pause(p, 1);
		return 0;
	}
	r->body_len += len;
	if (r->body_fd >= 0)
		return write(r->body_fd, at, len) == (ssize_t)len ? 0 : -1;
	nb_buf_append(&r->body, at, len);
	if (r->body.len > BODY_MEM_MAX)
		return spill_body(r);
	return 0;
}

static int on_message_complete(http_parser *p)
{
	http_parser_pause(p, 1);
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

/* Makes the body contiguous: memory, or the spilled file mapped read-only. */
static int finish_body(sreq_t *r)
{
	if (r->body_fd < 0) {
		r->req.body = r->body.len ? r->body.data : NULL;
		r->req.body_len = r->body.len;
		return 0;
	}
	void *m = mmap(NULL, r->body_len, PROT_READ, MAP_PRIVATE, r->body_fd, 0);
	if (m == MAP_FAILED)
		return -1;
	r->body_map = m;
	r->req.body = m;
	r->req.body_len = r->body_len;
	return 0;
}

static void dispatch(conn_t *c)
{
	sreq_t *r = c->cur;
	nb_server_t *s = c->lp->srv;
	c->state = S_PROCESSING;
	uv_read_stop((uv_stream_t *)&c->tcp);
	atomic_fetch_add(&s->requests_total, 1);
	if (!r->keep_alive)
		c->close_after = true;
	r->req.method = http_method_str((enum http_method)c->parser.method);
	valid_request_id(r);
	nb_buf_putc(&r->url, '\0');
	char *url = nb_arena_strdup(r->req.arena, r->url.data);
	char *q = strchr(url, '?');
	if (q) {
		*q = '\0';
		r->req.query = q + 1;
	}
	r->req.path = url;
	if (c->parser.http_major != 1) {
		respond_from_loop(r, NB_EBADREQ, "unsupported HTTP version", NULL, true);
		return;
	}
	if (url[0] != '/') {
		respond_from_loop(r, NB_EBADREQ, "request target must be a path", NULL, true);
		return;
	}
	if (finish_body(r) < 0) {
		respond_from_loop(r, NB_EINTERNAL, NULL, NULL, true);
		return;
	}
	char allow[64];
	nb_match_t m = nb_router_match(s->o.routes, s->o.nroutes, r->req.method, url, r->req.arena, &r->req.route,
				       r->req.params, &r->req.nparams, allow, sizeof allow);
	if (m == NB_MATCH_NOT_FOUND) {
		respond_from_loop(r, NB_ENOTFOUND, NULL, NULL, false);
		return;
	}
	if (m == NB_MATCH_METHOD) {
		respond_from_loop(r, NB_EMETHOD, NULL, allow, false);
		return;
	}
	r->req.deadline_ms = nb_mono_ms() + s->o.request_timeout_ms;
	arm_timer(c, s->o.request_timeout_ms);
	r->dispatched = true;
	switch (r->req.route->exec) {
	case NB_EXEC_INLINE:
		handle(r);
		finish_on_loop(r);
		break;
	case NB_EXEC_DEFAULT:
		nb_sched_spawn(c->lp->sched, coro_entry, r, coro_done);
		break;
	default:
		nb_tpool_submit(s->pools[r->req.route->exec], worker_task, r);
	}
}

static void feed(conn_t *c, const char *data, size_t len)
{
	if (c->state == S_IDLE) {
		c->state = S_READING;
		arm_timer(c, c->lp->srv->o.read_timeout_ms);
	}
	size_t n = http_parser_execute(&c->parser, &parser_settings, data, len);
	enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
	sreq_t *r = c->cur;
	if (e == HPE_PAUSED) {
		if (n < len)
			nb_buf_append(&c->pending, data + n, len - n);
		if (r && r->too_large) {
			c->state = S_PROCESSING;
			uv_read_stop((uv_stream_t *)&c->tcp);
			r->req.method = http_method_str((enum http_method)c->parser.method);
			valid_request_id(r);
			respond_from_loop(r, NB_ETOOLARGE, "request body too large", NULL, true);
			return;
		}
		dispatch(c);
		return;
	}
	if (e != HPE_OK || c->parser.upgrade) {
		if (!r)
			r = cur_req(&c->parser);
		r->keep_alive = false;
		c->state = S_PROCESSING;
		uv_read_stop((uv_stream_t *)&c->tcp);
		r->req.start_us = r->req.start_us ? r->req.start_us : nb_mono_us();
		respond_from_loop(r, NB_EBADREQ, "malformed HTTP request", NULL, true);
		return;
	}
	if (r && r->expect_continue && c->state == S_READING) {
		r->expect_continue = false;
		static char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
		uv_buf_t b = uv_buf_init(cont, sizeof cont - 1);
		uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
	}
}

/* --------------------------------------------------------- loop threads */

/*
 * Binds one listening socket. Each loop then listens on its own dup of it:
 * the kernel hands each new connection to one of the loops. (SO_REUSEPORT
 * would spread them more evenly, but it would also let a second server bind
 * the same port silently.)
 */
static int bind_socket(const char *listen, const struct addrinfo *ai, char *err, size_t errlen)
{
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "could not create socket: %s", strerror(errno));
		return -1;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		snprintf(err, errlen, "could not bind %s: %s", listen, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int listen_on(loop_t *lp, int fd, char *err, size_t errlen)
{
	uv_tcp_init(&lp->loop, &lp->listener);
	lp->listener.data = lp;
	if (uv_tcp_open(&lp->listener, fd) < 0 ||
	    uv_listen((uv_stream_t *)&lp->listener, 4096, on_connection) < 0) {
		snprintf(err, errlen, "could not listen on %s", lp->srv->o.listen);
		return -1;
	}
	lp->listening = true;
	return 0;
}

static int resolve(const char *listen, struct addrinfo **out, char *err, size_t errlen)
{
	char host[256], port[16];
	const char *colon = strrchr(listen, ':');
	if (!colon || strlen(colon + 1) == 0 || strlen(colon + 1) >= sizeof port ||
	    (size_t)(colon - listen) >= sizeof host) {
		snprintf(err, errlen, "NOTEBOOKD_LISTEN must be host:port, got \"%s\"", listen);
		return -1;
	}
	memcpy(host, listen, (size_t)(colon - listen));
	host[colon - listen] = '\0';
	snprintf(port, sizeof port, "%s", colon + 1);
	char *h = host;
	if (h[0] == '[') { /* [::1]:8080 */
		h++;
		h[strcspn(h, "]")] = '\0';
	}
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
	int rc = getaddrinfo(*h ? h : NULL, port, &hints, out);
	if (rc != 0) {
		snprintf(err, errlen, "could not resolve NOTEBOOKD_LISTEN \"%s\": %s", listen, gai_strerror(rc));
		return -1;
	}
	return 0;
}

static void start_drain(loop_t *lp);

static void on_signal(uv_signal_t *h, int signum)
{
	loop_t *lp = h->data;
	nb_info("received %s: draining", signum == SIGTERM ? "SIGTERM" : "SIGINT");
	nb_server_stop(lp->srv);
}

static void on_drain_timeout(uv_timer_t *t)
{
	loop_t *lp = t->data;
	nb_warn("shutdown timeout: closing %ld connections", lp->nconns);
	for (conn_t *c = lp->conns; c; c = c->next)
		conn_close(c);
	uv_stop(&lp->loop);
}

/* Stop accepting; close idle connections; the rest close after their response. */
static void start_drain(loop_t *lp)
{
	if (lp->draining)
		return;
	lp->draining = true;
	if (lp->listening) {
		lp->listening = false;
		uv_close((uv_handle_t *)&lp->listener, NULL);
	}
	if (lp->index == 0) {
		uv_signal_stop(&lp->sigterm);
		uv_signal_stop(&lp->sigint);
	}
	conn_t *c = lp->conns;
	while (c) {
		conn_t *next = c->next;
		if (c->state == S_IDLE || c->state == S_READING)
			conn_close(c);
		else
			c->close_after = true;
		c = next;
	}
	uv_timer_init(&lp->loop, &lp->drain_timer);
	lp->drain_timer.data = lp;
	uv_timer_start(&lp->drain_timer, on_drain_timeout, (uint64_t)lp->srv->o.shutdown_timeout_ms, 0);
	uv_unref((uv_handle_t *)&lp->drain_timer);
	if (lp->nconns == 0)
		uv_stop(&lp->loop);
}

static void on_wake_or_drain(uv_async_t *h)
{
	loop_t *lp = h->data;
	if (atomic_load(&lp->srv->stopping) && !lp->draining)
		start_drain(lp);
	on_wake(h);
}

static void *loop_main(void *arg)
{
	loop_t *lp = arg;
	lp->sched = nb_sched_create(&lp->loop);
	if (lp->pool && lp->srv->o.pipelines > 0)
		lp->pipe = nb_pipe_create(lp->pool, lp->srv->o.pipelines);
	uv_run(&lp->loop, UV_RUN_DEFAULT);
	return NULL;
}

static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

nb_server_t *nb_server_create(const nb_server_opts_t *o, char *err, size_t errlen)
{
	parser_settings = (http_parser_settings){
		.on_message_begin = on_message_begin,
		.on_url = on_url,
		.on_header_field = on_header_field,
		.on_header_value = on_header_value,
		.on_headers_complete = on_headers_complete,
		.on_body = on_body,
		.on_message_complete = on_message_complete,
	};
	raise_fd_limit();
	signal(SIGPIPE, SIG_IGN);
	struct addrinfo *ai = NULL;
	if (resolve(o->listen, &ai, err, errlen) < 0)
		return NULL;
	int fd = bind_socket(o->listen, ai, err, errlen);
	freeaddrinfo(ai);
	if (fd < 0)
		return NULL;
	nb_server_t *s = nb_xcalloc(1, sizeof *s);
	s->o = *o;
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	s->nloops = o->io_threads > 0 ? o->io_threads : (cores > 0 ? (int)(cores < 64 ? cores : 64) : 1);
	s->loops = nb_xcalloc((size_t)s->nloops, sizeof(loop_t));
	for (int i = 0; i < s->nloops; i++) {
		loop_t *lp = &s->loops[i];
		lp->srv = s;
		lp->index = i;
		uv_loop_init(&lp->loop);
		pthread_mutex_init(&lp->mu, NULL);
		uv_async_init(&lp->loop, &lp->wake, on_wake_or_drain);
		lp->wake.data = lp;
		if (o->loop_pool.conninfo) {
			nb_pool_opts_t po = o->loop_pool;
			po.async = true;
			po.size = (o->loop_pool.size + s->nloops - 1) / s->nloops;
			po.overflow = (o->loop_pool.overflow + s->nloops - 1) / s->nloops;
			lp->pool = nb_pool_create(&po);
		}
		int lfd = i == 0 ? fd : dup(fd);
		if (lfd < 0 || listen_on(lp, lfd, err, errlen) < 0) {
			s->nloops = i + 1;
			nb_server_destroy(s);
			return NULL;
		}
	}
	struct sockaddr_storage ss;
	int len = sizeof ss;
	uv_tcp_getsockname(&s->loops[0].listener, (struct sockaddr *)&ss, &len);
	s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						 : ((struct sockaddr_in *)&ss)->sin_port);
	loop_t *l0 = &s->loops[0];
	uv_signal_init(&l0->loop, &l0->sigterm);
	uv_signal_init(&l0->loop, &l0->sigint);
	l0->sigterm.data = l0->sigint.data = l0;
	uv_signal_start(&l0->sigterm, on_signal, SIGTERM);
	uv_signal_start(&l0->sigint, on_signal, SIGINT);
	s->pools[NB_EXEC_THREAD] = nb_tpool_create("handlers", o->handler_threads);
	s->pools[NB_EXEC_HASH] = nb_tpool_create("hash", o->hash_threads);
	s->pools[NB_EXEC_STREAM] = nb_tpool_create("streams", o->stream_threads);
	current_server = s;
	return s;
}

int nb_server_port(const nb_server_t *s)
{
	return s->port;
}

void nb_server_stop(nb_server_t *s)
{
	bool was = atomic_exchange(&s->stopping, true);
	if (!was && s->o.on_shutdown)
		s->o.on_shutdown(s->o.on_shutdown_arg);
	for (int i = 0; i < s->nloops; i++)
		uv_async_send(&s->loops[i].wake);
}

int nb_server_run(nb_server_t *s)
{
	for (int i = 1; i < s->nloops; i++)
		pthread_create(&s->loops[i].thread, NULL, loop_main, &s->loops[i]);
	loop_main(&s->loops[0]);
	for (int i = 1; i < s->nloops; i++)
		pthread_join(s->loops[i].thread, NULL);
	/* Workers finish what they hold (their answers go nowhere if the
	 * connection is gone); then the loops free what remains. */
	for (int i = 0; i < NB_EXEC_CLASSES_; i++) {
		nb_tpool_destroy(s->pools[i]);
		s->pools[i] = NULL;
	}
	for (int i = 0; i < s->nloops; i++) {
		loop_t *lp = &s->loops[i];
		on_wake(&lp->wake);
		for (conn_t *c = lp->conns; c; c = c->next)
			conn_close(c);
		uv_run(&lp->loop, UV_RUN_NOWAIT);
	}
	nb_info("server stopped");
	return 0;
}

static void close_any(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

void nb_server_destroy(nb_server_t *s)
{
	if (!s)
		return;
	for (int i = 0; i < NB_EXEC_CLASSES_; i++)
		nb_tpool_destroy(s->pools[i]);
	for (int i = 0; i < s->nloops; i++) {
		loop_t *lp = &s->loops[i];
		nb_pipe_destroy(lp->pipe);
		lp->pipe = NULL;
		while (lp->free_sreqs) {
			sreq_t *r = lp->free_sreqs;
			lp->free_sreqs = r->mail_next;
			sreq_destroy(r);
		}
		nb_pool_destroy(lp->pool); /* closes its socket watchers on this loop */
		lp->pool = NULL;
		nb_sched_destroy(lp->sched);
		lp->sched = NULL;
		uv_walk(&lp->loop, close_any, NULL);
		uv_run(&lp->loop, UV_RUN_DEFAULT);
		uv_loop_close(&lp->loop);
		pthread_mutex_destroy(&lp->mu);
	}
	if (current_server == s)
		current_server = NULL;
	free(s->loops);
	free(s);
}

void nb_server_stats(nb_server_t *s, nb_server_stats_t *out)
{
	memset(out, 0, sizeof *out);
	out->connections_open = atomic_load(&s->conns_open);
	out->connections_total = atomic_load(&s->conns_total);
	out->requests_total = atomic_load(&s->requests_total);
	out->requests_in_flight = atomic_load(&s->in_flight);
	out->timeouts = atomic_load(&s->timeouts);
	out->rejected_connections = atomic_load(&s->rejected);
	for (int i = 0; i < 6; i++)
		out->responses_by_class[i] = atomic_load(&s->by_class[i]);
}

void nb_server_loop_pool_stats(nb_server_t *s, nb_pool_stats_t *sum)
{
	memset(sum, 0, sizeof *sum);
	for (int i = 0; i < s->nloops; i++) {
		if (!s->loops[i].pool)
			continue;
		nb_pool_stats_t st;
		nb_pool_stats(s->loops[i].pool, &st);
		sum->in_use += st.in_use;
		sum->idle += st.idle;
		sum->waiting += st.waiting;
		sum->total += st.total;
		sum->acquires += st.acquires;
		sum->timeouts += st.timeouts;
		sum->created += st.created;
		sum->closed += st.closed;
		sum->replaced_dead += st.replaced_dead;
		sum->connect_failures += st.connect_failures;
		sum->wait_us_total += st.wait_us_total;
	}
}

void nb_server_pipe_stats(nb_server_t *s, nb_pipe_stats_t *sum)
{
	memset(sum, 0, sizeof *sum);
	for (int i = 0; i < s->nloops; i++) {
		if (!s->loops[i].pipe)
			continue;
		nb_pipe_stats_t st;
		nb_pipe_stats(s->loops[i].pipe, &st);
		sum->statements += st.statements;
		sum->flushes += st.flushes;
		sum->failures += st.failures;
		sum->connections += st.connections;
		sum->pending += st.pending;
	}
}

nb_server_t *nb_server_current(void)
{
	return current_server;
}
