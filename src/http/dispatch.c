/*
 * dispatch.c — running a request's handler and handing its answer back to
 * the loop.
 *
 * Ownership. A complete request is handed to where its route runs: inline on
 * the loop, a coroutine on the loop (core/sched.h), or a thread pool. From
 * then on the handler owns the nb_req_t side and the loop only touches the
 * shared output queue under sreq->mu. A worker thread appends response bytes
 * to that queue and posts the sreq to its loop's mailbox (mutex + uv_async);
 * the loop writes them (conn.c). The sreq is freed by the loop once the
 * handler has finished and every write has completed.
 *
 * The application's hooks (server.h) wrap every handler where it runs:
 * `before` (body checks, authentication), then the handler, then `after`.
 */
#include <malloc.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "http/internal.h"

#define FREE_SREQS_MAX 1024
#define BUF_KEEP_MAX (64 * 1024)

sreq_t *nb_http__sreq_new(conn_t *c)
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
	r->req.loop_data = lp->app;
	atomic_init(&r->gone, false);
	atomic_init(&r->counted, false);
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

void nb_http__sreq_free(sreq_t *r)
{
	if (!r)
		return;
	atomic_fetch_sub(&r->srv->in_flight, 1);
	if (r->req.json)
		json_decref(r->req.json);
	if (r->body_map)
		munmap(r->body_map, r->spooled);
	if (r->body_fd >= 0)
		close(r->body_fd);
	/* a large request leaves freed memory in malloc's arenas: hand it back */
	bool big = r->body_len > NB_HTTP_BODY_MEM_MAX / 2 || r->out.cap > NB_HTTP_BODY_MEM_MAX ||
		   r->req.resp.body.cap > NB_HTTP_BODY_MEM_MAX || nb_arena_used(r->req.arena) > NB_HTTP_BODY_MEM_MAX;
	loop_t *lp = r->lp;
	if (!lp || lp->nfree >= FREE_SREQS_MAX) {
		nb_http__sreq_destroy(r);
	} else {
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
	if (big)
		malloc_trim(0);
}

void nb_http__sreq_destroy(sreq_t *r)
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
	case 304: return "Not Modified";
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

/* Decimal digits of n (no printf: every answer writes a few). */
static void put_uint(nb_buf_t *out, unsigned long long n)
{
	char tmp[24], *e = tmp + sizeof tmp, *p = e;
	do {
		*--p = (char)('0' + n % 10);
		n /= 10;
	} while (n);
	nb_buf_append(out, p, (size_t)(e - p));
}

void nb_http__head_common(nb_buf_t *out, sreq_t *r, int status, const char *ctype, bool keep_alive)
{
	nb_buf_puts(out, "HTTP/1.1 ");
	put_uint(out, (unsigned)status);
	nb_buf_putc(out, ' ');
	nb_buf_puts(out, reason(status));
	nb_buf_puts(out, "\r\n");
	if (ctype) {
		nb_buf_puts(out, "Content-Type: ");
		nb_buf_puts(out, ctype);
		nb_buf_puts(out, "\r\n");
	}
	nb_buf_puts(out, "X-Request-Id: ");
	nb_buf_puts(out, r->req.request_id);
	nb_buf_puts(out, "\r\n");
	nb_buf_puts(out, keep_alive ? "" : "Connection: close\r\n");
	/* no-store unless the handler chose a caching policy (the web app's assets, streams) */
	nb_buf_puts(out, "Cache-Control: ");
	nb_buf_puts(out, r->req.resp.cache_control ? r->req.resp.cache_control : "no-store");
	nb_buf_puts(out, "\r\nX-Content-Type-Options: nosniff\r\n");
}

void nb_http__serialize(sreq_t *r, nb_buf_t *out, bool keep_alive)
{
	nb_resp_t *resp = &r->req.resp;
	nb_http__head_common(out, r, resp->status,
			     resp->body.len || resp->content_type ? resp->content_type : NULL, keep_alive);
	if (resp->retry_after > 0)
		nb_buf_printf(out, "Retry-After: %d\r\n", resp->retry_after);
	if (resp->headers.len)
		nb_buf_append(out, resp->headers.data, resp->headers.len);
	if (resp->status != 204 && resp->status != 304) {
		nb_buf_puts(out, "Content-Length: ");
		put_uint(out, resp->body.len);
		nb_buf_puts(out, "\r\n");
	}
	nb_buf_puts(out, "\r\n");
	if (resp->body.len && !(r->req.method && strcmp(r->req.method, "HEAD") == 0))
		nb_buf_append(out, resp->body.data, resp->body.len);
}

void nb_http__access_log(sreq_t *r)
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

/* Puts r on the mailbox; the caller holds lp->mu. */
static void enqueue_locked(loop_t *lp, sreq_t *r)
{
	if (r->in_mailbox)
		return;
	r->in_mailbox = true;
	r->mail_next = NULL;
	if (lp->mail_tail)
		lp->mail_tail->mail_next = r;
	else
		lp->mail_head = r;
	lp->mail_tail = r;
}

void nb_http__post(sreq_t *r)
{
	loop_t *lp = r->lp;
	pthread_mutex_lock(&lp->mu);
	enqueue_locked(lp, r);
	pthread_mutex_unlock(&lp->mu);
	uv_async_send(&lp->wake);
}

/* The bytes that end a request (the whole answer, or a stream's last chunk), counted and logged. */
static void final_bytes(sreq_t *r, nb_buf_t *tail)
{
	if (r->streaming) {
		if (!r->aborted)
			nb_buf_puts(tail, "0\r\n\r\n");
	} else {
		bool keep = r->keep_alive && !atomic_load(&r->srv->stopping);
		nb_http__serialize(r, tail, keep);
		r->status = r->req.resp.status;
		r->bytes_out = tail->len;
	}
	nb_http__count_answer(r, r->status);
	nb_http__access_log(r);
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
	enqueue_locked(lp, r);
	pthread_mutex_unlock(&r->mu);
	pthread_mutex_unlock(&lp->mu);
	nb_buf_dispose(&tail);
	uv_async_send(&lp->wake);
}

/* A handler on the loop (coroutine or inline) returned: write the answer from here. */
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
		r->bytes_out = 0; /* the flush counts what it writes */
	nb_http__flush(r);
	nb_http__maybe_complete(r);
}

void nb_http__on_wake(loop_t *lp)
{
	pthread_mutex_lock(&lp->mu);
	sreq_t *list = lp->mail_head;
	lp->mail_head = lp->mail_tail = NULL;
	pthread_mutex_unlock(&lp->mu);
	while (list) {
		/* Unlink each one under the lock just before handling it: a request
		 * still marked in_mailbox is not queued again by its worker (its new
		 * bytes are flushed when we reach it), so the links of the taken list
		 * are never rewritten under us (that lost the rest of the list). */
		sreq_t *r = list;
		pthread_mutex_lock(&lp->mu);
		list = r->mail_next;
		r->mail_next = NULL;
		r->in_mailbox = false;
		pthread_mutex_unlock(&lp->mu);
		if (r->conn && r->conn->state == S_PROCESSING && r->streaming && r->conn->tmode == T_DEADLINE)
			nb_http__arm(r->conn, T_NONE, 0); /* a stream has begun: the write timeout watches it now */
		nb_http__flush(r);
		nb_http__maybe_complete(r);
	}
}

/* --------------------------------------------------------- the handler side */

/* Runs the hooks and the handler; fills req->resp (or streams). Thread or coroutine. */
static void handle(sreq_t *r)
{
	nb_req_t *req = &r->req;
	const nb_server_hooks_t *h = &r->srv->o.hooks;
	nb_log_set_request_id(req->request_id);
	int rc = h->before ? h->before(req) : 0;
	if (rc < 0 && req->resp.status == 0)
		nb_resp_error(req, rc, NULL, NULL);
	if (rc == 0) {
		rc = req->route->fn(req);
		if (rc < 0 && req->resp.status == 0 && !r->streaming)
			nb_resp_error(req, rc, NULL, NULL);
	}
	if (req->resp.status == 0 && !r->streaming)
		nb_resp_error(req, NB_EINTERNAL, NULL, NULL);
	if (h->after)
		h->after(req);
	nb_log_set_request_id(NULL);
}

static void worker_task(void *arg)
{
	sreq_t *r = arg;
	handle(r);
	finish_from_worker(r);
}

static void coro_entry(void *arg)
{
	handle(arg);
}

static void coro_done(void *arg)
{
	finish_on_loop(arg);
}

void nb_http__dispatch(sreq_t *r)
{
	conn_t *c = r->conn;
	nb_server_t *s = r->srv;
	atomic_fetch_add(&s->requests_total, 1);
	if (nb_http__finish_body(r) < 0) {
		r->req.resp.status = 0;
		nb_resp_error(&r->req, NB_EINTERNAL, NULL, NULL);
		nb_http__respond_now(r, true);
		return;
	}
	r->req.deadline_ms = nb_mono_ms() + s->o.request_timeout_ms;
	nb_http__arm(c, T_DEADLINE, s->o.request_timeout_ms);
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
