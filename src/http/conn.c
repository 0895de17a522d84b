/*
 * conn.c — connections on a loop: accepting, reading, timers, writes,
 * spooling large bodies, closing.
 *
 * A connection (conn_t) lives on one loop and carries one request at a time
 * (c->cur). Bytes go to the parser (parse.c); the connection acts on what it
 * reports: sends 100 Continue once the head passed its checks, answers a
 * refusal at once (closing after a short linger that drops the unread body,
 * so the client still sees the answer), spools an upload body to a temp file
 * with libuv's asynchronous fs calls while the socket is not read (so a slow
 * disk slows the client, not the loop), and dispatches a complete request.
 *
 * One timer per connection, in one mode at a time: the first-request deadline
 * of a new connection, the idle timeout between requests, the read timeout
 * while a request arrives, the request deadline while it is handled, the
 * write timeout while the client has unread bytes queued (it restarts on
 * every completed write, so only a client that reads nothing is cut), and the
 * linger before a refused connection closes.
 *
 * Accepting: the loops listen on one socket, and the loop that wakes first
 * may accept a whole burst. So a loop keeps a new connection only while it
 * holds no more than any other; otherwise it hands the socket to the loop
 * with the fewest (a dup'd fd in that loop's queue, and a wake-up). The
 * loops then carry equal shares of the clients: without it one loop could
 * end up with most of 1,000 connections and its requests wait for its CPU
 * while the other loop idles.
 *
 * Every write goes through uv_write with a heap buffer (never uv_try_write,
 * whose partial result would leave half an answer). Each connection counts
 * in a per-client-address table shared by the loops; past the cap a new
 * connection from that address is closed at once (a peer the hooks call
 * uncapped — a trusted proxy, which carries many clients — is not counted).
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "http/internal.h"

#define LINGER_MS 2000
#define PENDING_MAX 65536 /* bytes read ahead of the request being answered before reading stops */
#define WRITE_PIECE_MAX (1u << 30) /* uv_buf_t lengths are unsigned: bigger writes go in pieces */

static void conn_next_request(conn_t *c);
static void feed(conn_t *c, const char *data, size_t len);
static void resume_reading(conn_t *c);
static void read_off(conn_t *c);

/* ---------------------------------------------------------- client table */

struct client_count {
	client_count_t *next;
	long n;
	char ip[64];
};

static size_t client_hash(const nb_server_t *s, const char *ip)
{
	size_t h = 1469598103934665603u;
	for (const unsigned char *p = (const unsigned char *)ip; *p; p++)
		h = (h ^ *p) * 1099511628211u;
	return h % s->nclient_buckets;
}

/* Counts one more connection from ip; returns the count. */
static long clients_add(nb_server_t *s, const char *ip)
{
	pthread_mutex_lock(&s->clients_mu);
	client_count_t **slot = &s->clients[client_hash(s, ip)];
	client_count_t *e = *slot;
	while (e && strcmp(e->ip, ip) != 0)
		e = e->next;
	if (!e) {
		e = nb_xcalloc(1, sizeof *e);
		snprintf(e->ip, sizeof e->ip, "%s", ip);
		e->next = *slot;
		*slot = e;
	}
	long n = ++e->n;
	pthread_mutex_unlock(&s->clients_mu);
	return n;
}

static void clients_remove(nb_server_t *s, const char *ip)
{
	pthread_mutex_lock(&s->clients_mu);
	for (client_count_t **pp = &s->clients[client_hash(s, ip)]; *pp; pp = &(*pp)->next) {
		client_count_t *e = *pp;
		if (strcmp(e->ip, ip) == 0) {
			if (--e->n <= 0) {
				*pp = e->next;
				free(e);
			}
			break;
		}
	}
	pthread_mutex_unlock(&s->clients_mu);
}

void nb_http__clients_dispose(nb_server_t *s)
{
	for (size_t i = 0; s->clients && i < s->nclient_buckets; i++) {
		while (s->clients[i]) {
			client_count_t *e = s->clients[i];
			s->clients[i] = e->next;
			free(e);
		}
	}
	free(s->clients);
	s->clients = NULL;
}

/* ---------------------------------------------------------------- timers */

static void on_timer(uv_timer_t *t);

void nb_http__arm(conn_t *c, timer_mode_t mode, int ms)
{
	c->tmode = mode;
	if (mode == T_NONE)
		uv_timer_stop(&c->timer);
	else
		uv_timer_start(&c->timer, on_timer, (uint64_t)(ms > 0 ? ms : 1), 0);
}

/* ---------------------------------------------------------------- writes */

typedef struct wreq {
	uv_write_t w;
	sreq_t *r;          /* the request whose output this is, or NULL for a bare write */
	conn_t *close_conn; /* a bare write after which the connection closes */
	char *data;
	size_t len;
} wreq_t;

void nb_http__wake_producer(sreq_t *r)
{
	pthread_mutex_lock(&r->mu);
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	if (r->waiter) { /* a coroutine: it runs on this loop, like us */
		nb_wait_t *w = r->waiter;
		r->waiter = NULL;
		nb_wait_signal(w);
	}
}

static void on_write(uv_write_t *w, int status)
{
	wreq_t *wr = (wreq_t *)w;
	sreq_t *r = wr->r;
	conn_t *close_conn = wr->close_conn;
	size_t len = wr->len;
	free(wr->data);
	free(wr);
	if (!r) {
		if (close_conn)
			nb_http__conn_close(close_conn);
		return;
	}
	r->writes_inflight--;
	pthread_mutex_lock(&r->mu);
	r->queued = r->queued > len ? r->queued - len : 0;
	pthread_mutex_unlock(&r->mu);
	nb_http__wake_producer(r);
	conn_t *c = r->conn;
	if (status < 0) {
		atomic_store(&r->gone, true);
		nb_http__wake_producer(r);
		if (c)
			nb_http__conn_close(c);
	} else if (c && c->state != S_CLOSED && c->cur == r) {
		/* the client took bytes: the write timeout starts over */
		if (r->writes_inflight > 0)
			nb_http__arm(c, T_WRITE, r->srv->o.write_timeout_ms);
		else if (c->tmode == T_WRITE)
			nb_http__arm(c, T_NONE, 0);
	}
	nb_http__maybe_complete(r);
}

/* Hands data (heap, ownership taken) to libuv. 0 or a negative libuv error (data freed). */
static int write_bytes(conn_t *c, sreq_t *r, conn_t *close_conn, char *data, size_t len)
{
	wreq_t *wr = nb_xmalloc(sizeof *wr);
	wr->r = r;
	wr->close_conn = close_conn;
	wr->data = data;
	wr->len = len;
	size_t nbufs = len / WRITE_PIECE_MAX + 1;
	uv_buf_t one, *bufs = nbufs == 1 ? &one : nb_xcalloc(nbufs, sizeof *bufs);
	for (size_t i = 0, off = 0; i < nbufs; i++) {
		size_t piece = len - off < WRITE_PIECE_MAX ? len - off : WRITE_PIECE_MAX;
		bufs[i] = uv_buf_init(data + off, (unsigned)piece);
		off += piece;
	}
	/* libuv copies the buffer array, not the bytes */
	int rc = uv_write(&wr->w, (uv_stream_t *)&c->tcp, bufs, (unsigned)nbufs, on_write);
	if (bufs != &one)
		free(bufs);
	if (rc < 0) {
		free(data);
		free(wr);
		return rc;
	}
	if (r && ++r->writes_inflight == 1 && (r->finished || r->streaming))
		nb_http__arm(c, T_WRITE, r->srv->o.write_timeout_ms);
	else if (!r && close_conn) {
		c->bare_close = true;
		nb_http__arm(c, T_WRITE, c->lp->srv->o.write_timeout_ms);
	}
	return 0;
}

void nb_http__flush(sreq_t *r)
{
	conn_t *c = r->conn;
	pthread_mutex_lock(&r->mu);
	size_t len = r->out.len;
	char *data = len ? nb_buf_steal(&r->out, NULL) : NULL;
	pthread_mutex_unlock(&r->mu);
	if (!data)
		return;
	if (!c || c->state == S_CLOSED || atomic_load(&r->gone)) {
		free(data);
		pthread_mutex_lock(&r->mu);
		r->queued = 0;
		pthread_mutex_unlock(&r->mu);
		nb_http__wake_producer(r);
		return;
	}
	r->bytes_out += len;
	if (write_bytes(c, r, NULL, data, len) < 0) {
		atomic_store(&r->gone, true);
		nb_http__wake_producer(r);
		nb_http__conn_close(c);
	}
}

/* A short answer not tied to a request's output (100 Continue, the deadline's 503). */
static void write_bare(conn_t *c, const char *s, size_t n, bool then_close)
{
	char *copy = nb_xmalloc(n);
	memcpy(copy, s, n);
	if (write_bytes(c, NULL, then_close ? c : NULL, copy, n) < 0)
		nb_http__conn_close(c);
}

/* ------------------------------------------------------------- closing */

static void on_handle_closed(uv_handle_t *h)
{
	conn_t *c = h->data;
	if (--c->handles_open > 0)
		return;
	if (c->cur) /* a handler still holds the request; maybe_complete frees us later */
		return;
	loop_t *lp = c->lp;
	if (c->prev)
		c->prev->next = c->next;
	else
		lp->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	lp->nconns--;
	atomic_fetch_sub(&lp->owned, 1);
	atomic_fetch_sub(&lp->srv->conns_open, 1);
	if (c->counted)
		clients_remove(lp->srv, c->remote);
	nb_buf_dispose(&c->pending);
	free(c);
	nb_http__stop_if_drained(lp);
}

void nb_http__conn_close(conn_t *c)
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
		nb_http__wake_producer(r);
		if (!r->dispatched && !r->spool_busy) {
			/* Still parsing: nobody else holds it. */
			c->cur = NULL;
			r->conn = NULL;
			nb_http__sreq_free(r);
		}
	}
	uv_timer_stop(&c->timer);
	read_off(c);
	uv_close((uv_handle_t *)&c->timer, on_handle_closed);
	uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

/*
 * The read watcher is switched only when it must change: each switch costs
 * libuv one or two epoll_ctl calls. A keep-alive connection stays read while
 * its request is handled (what arrives waits in c->pending, up to
 * PENDING_MAX), instead of off and on again around every request.
 */
static void read_off(conn_t *c)
{
	if (c->reading) {
		c->reading = false;
		uv_read_stop((uv_stream_t *)&c->tcp);
	}
}

static int read_on(conn_t *c)
{
	if (c->reading)
		return 0;
	int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
	c->reading = rc == 0;
	return rc;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	(void)req;
	(void)status;
}

/* After refusing a request whose body would follow: stop sending, read and
 * drop what the client still sends for a moment, then close. Closing at once
 * with unread bytes would reset the connection and could lose the answer. */
static void start_linger(conn_t *c)
{
	c->state = S_LINGER;
	nb_buf_dispose(&c->pending);
	if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown) < 0 || read_on(c) < 0) {
		nb_http__conn_close(c);
		return;
	}
	int ms = c->lp->srv->o.read_timeout_ms < LINGER_MS ? c->lp->srv->o.read_timeout_ms : LINGER_MS;
	nb_http__arm(c, T_LINGER, ms);
}

void nb_http__maybe_complete(sreq_t *r)
{
	if (r->writes_inflight > 0 || r->spool_busy)
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
	nb_http__sreq_free(r);
	if (!c)
		return;
	if (c->state == S_CLOSED) {
		nb_http__conn_close(c); /* finishes freeing if the handles are closed */
		return;
	}
	if (c->bare_close)
		return; /* a bare answer (the deadline's 503) is still being written; it closes */
	if (c->close_after || c->lp->draining) {
		if (c->linger && !c->lp->draining)
			start_linger(c);
		else
			nb_http__conn_close(c);
	} else {
		conn_next_request(c);
	}
}

void nb_http__respond_now(sreq_t *r, bool close)
{
	conn_t *c = r->conn;
	c->state = S_PROCESSING;
	read_off(c);
	r->dispatched = true; /* owned by the write path now: conn_close must not free it */
	atomic_fetch_add(&r->srv->requests_total, 1);
	if (close) {
		c->close_after = true;
		c->linger = r->body_follows && !r->complete;
		nb_buf_dispose(&c->pending); /* what follows is the refused body */
	}
	if (!r->keep_alive)
		c->close_after = true;
	bool keep = !c->close_after && !c->lp->draining;
	if (!r->req.request_id[0])
		nb_uuid_v7_str(r->req.request_id);
	if (r->req.resp.status == 0)
		nb_resp_error(&r->req, NB_EINTERNAL, NULL, NULL);
	pthread_mutex_lock(&r->mu);
	nb_http__serialize(r, &r->out, keep);
	r->finished = true;
	pthread_mutex_unlock(&r->mu);
	if (!keep)
		c->close_after = true;
	r->status = r->req.resp.status;
	r->bytes_out = r->out.len;
	nb_http__count_answer(r, r->status);
	nb_http__access_log(r);
	r->bytes_out = 0; /* the flush counts what it writes */
	nb_http__flush(r);
	nb_http__maybe_complete(r);
}

/* The deadline passed while the handler runs: answer 503 now, drop the handler's late answer. */
static void deadline_503(conn_t *c, sreq_t *r)
{
	atomic_fetch_add(&c->lp->srv->timeouts, 1);
	nb_warn("request %s %s passed its deadline", r->req.method, r->req.path);
	/* The handler owns r->req.resp; build the answer separately. */
	nb_buf_t body = NB_BUF_INIT;
	nb_buf_puts(&body, "{\"error\":{\"code\":\"unavailable\",\"message\":\"request timed out\",\"request_id\":");
	nb_buf_json_str(&body, r->req.request_id, strlen(r->req.request_id));
	nb_buf_puts(&body, "}}");
	nb_buf_t out = NB_BUF_INIT;
	nb_buf_printf(&out,
		      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
		      "X-Request-Id: %s\r\nConnection: close\r\nRetry-After: 1\r\n"
		      "Cache-Control: no-store\r\nContent-Length: %zu\r\n\r\n",
		      r->req.request_id, body.len);
	nb_buf_append(&out, body.data, body.len);
	nb_buf_dispose(&body);
	nb_http__count_answer(r, 503);
	atomic_store(&r->gone, true); /* the handler's answer goes nowhere */
	nb_http__wake_producer(r);
	c->close_after = true;
	c->linger = false;
	size_t len = out.len;
	char *data = nb_buf_steal(&out, NULL);
	if (write_bytes(c, NULL, c, data, len) < 0)
		nb_http__conn_close(c);
}

static void on_timer(uv_timer_t *t)
{
	conn_t *c = t->data;
	sreq_t *r = c->cur;
	switch (c->tmode) {
	case T_DEADLINE:
		if (c->state == S_PROCESSING && r && !r->streaming && !r->finished && !atomic_load(&r->gone))
			deadline_503(c, r);
		return;
	case T_WRITE:
		atomic_fetch_add(&c->lp->srv->write_timeouts, 1);
		nb_warn("client %s read nothing for %d ms: closing", c->remote, c->lp->srv->o.write_timeout_ms);
		nb_http__conn_close(c);
		return;
	case T_NONE:
		return;
	default: /* first-request, idle, read, linger */
		nb_http__conn_close(c);
	}
}

/* ------------------------------------------------------------- spooling */

typedef struct spool {
	uv_fs_t fs;
	sreq_t *r;
	char *data;
	size_t len, off;
	bool then_dispatch;
	char path[300];
} spool_t;

static void spool_write(spool_t *sp);

/* The spool finished or failed: go on with the request, or drop it if its client left. */
static void spool_done(spool_t *sp, int err)
{
	sreq_t *r = sp->r;
	bool dispatch = sp->then_dispatch;
	free(sp->data);
	free(sp);
	r->spool_busy = false;
	conn_t *c = r->conn;
	if (atomic_load(&r->gone) || !c || c->state == S_CLOSED) {
		if (c) {
			c->cur = NULL;
			r->conn = NULL;
		}
		nb_http__sreq_free(r);
		if (c)
			nb_http__conn_close(c);
		return;
	}
	if (err < 0) {
		nb_error("could not spool a request body to %s: %s", c->lp->srv->tmp_dir, uv_strerror(err));
		r->req.resp.status = 0;
		nb_resp_error(&r->req, NB_EINTERNAL, NULL, NULL);
		nb_http__respond_now(r, true);
		return;
	}
	if (dispatch)
		nb_http__dispatch(r);
	else
		resume_reading(c);
}

static void on_unlinked(uv_fs_t *req)
{
	uv_fs_req_cleanup(req);
	free(req);
}

static void on_spool_written(uv_fs_t *req)
{
	spool_t *sp = req->data;
	ssize_t n = req->result;
	uv_fs_req_cleanup(req);
	if (n <= 0) {
		spool_done(sp, n < 0 ? (int)n : UV_EIO);
		return;
	}
	sp->off += (size_t)n;
	sp->r->spooled += (size_t)n;
	if (sp->off < sp->len)
		spool_write(sp);
	else
		spool_done(sp, 0);
}

static void spool_write(spool_t *sp)
{
	sreq_t *r = sp->r;
	size_t left = sp->len - sp->off;
	uv_buf_t b = uv_buf_init(sp->data + sp->off, (unsigned)(left < WRITE_PIECE_MAX ? left : WRITE_PIECE_MAX));
	sp->fs.data = sp;
	int rc = uv_fs_write(&r->lp->loop, &sp->fs, r->body_fd, &b, 1, (int64_t)r->spooled, on_spool_written);
	if (rc < 0)
		spool_done(sp, rc);
}

static void on_spool_opened(uv_fs_t *req)
{
	spool_t *sp = req->data;
	ssize_t fd = req->result;
	if (fd >= 0 && req->path) /* the name made from the template; cleanup frees it */
		snprintf(sp->path, sizeof sp->path, "%s", req->path);
	uv_fs_req_cleanup(req);
	if (fd < 0) {
		spool_done(sp, (int)fd);
		return;
	}
	sp->r->body_fd = (int)fd;
	/* the name is not needed: the open descriptor keeps the file until it is closed */
	uv_fs_t *u = nb_xcalloc(1, sizeof *u);
	if (uv_fs_unlink(&sp->r->lp->loop, u, sp->path, on_unlinked) < 0)
		free(u);
	spool_write(sp);
}

/* Writes the in-memory body out while the socket is not read (back-pressure). */
static void spool_start(sreq_t *r, bool then_dispatch)
{
	spool_t *sp = nb_xcalloc(1, sizeof *sp);
	sp->r = r;
	sp->then_dispatch = then_dispatch;
	sp->data = nb_buf_steal(&r->body, &sp->len);
	r->spool_busy = true;
	read_off(r->conn);
	sp->fs.data = sp;
	if (r->body_fd >= 0) {
		spool_write(sp);
		return;
	}
	snprintf(sp->path, sizeof sp->path, "%s/notebookd-body-XXXXXX", r->srv->tmp_dir);
	int rc = uv_fs_mkstemp(&r->lp->loop, &sp->fs, sp->path, on_spool_opened);
	if (rc < 0)
		spool_done(sp, rc);
}

/* --------------------------------------------------------------- reading */

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
	if (n == UV_EOF && c->state == S_PROCESSING) {
		/* the client half-closed after its request: answer it, then close */
		c->close_after = true;
		read_off(c);
		return;
	}
	if (n < 0) {
		nb_http__conn_close(c);
		return;
	}
	if (n == 0 || c->state == S_LINGER)
		return; /* lingering: the refused body is dropped */
	if (c->state == S_IDLE || c->state == S_READING) {
		feed(c, buf->base, (size_t)n);
	} else if (c->state == S_PROCESSING) {
		nb_buf_append(&c->pending, buf->base, (size_t)n);
		if (c->pending.len >= PENDING_MAX)
			read_off(c); /* pipelined this far ahead: read again after the answer */
	}
}

static void keep_rest(conn_t *c, const char *data, size_t len)
{
	if (len)
		nb_buf_append(&c->pending, data, len);
}

static void send_continue(conn_t *c)
{
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
	write_bare(c, cont, sizeof cont - 1, false);
}

/* Parses what arrived and acts on it; bytes the parser did not take wait in c->pending. */
static void feed(conn_t *c, const char *data, size_t len)
{
	nb_server_t *s = c->lp->srv;
	while (len > 0 && (c->state == S_IDLE || c->state == S_READING)) {
		if (c->state == S_IDLE) {
			c->state = S_READING;
			if (c->tmode != T_FIRST)
				nb_http__arm(c, T_READ, s->o.read_timeout_ms);
		}
		size_t used = 0;
		nb_parse_result_t pr = nb_http__parse(c, data, len, &used);
		data += used;
		len -= used;
		sreq_t *r = c->cur;
		switch (pr) {
		case NB_PARSE_MORE:
			break;
		case NB_PARSE_HEAD:
			/* the first-request deadline covers the head only; the body has the read timeout */
			if (c->tmode == T_FIRST)
				nb_http__arm(c, T_READ, s->o.read_timeout_ms);
			if (r->expect_continue) {
				r->expect_continue = false;
				send_continue(c);
			}
			break;
		case NB_PARSE_SPOOL:
			keep_rest(c, data, len);
			spool_start(r, false);
			return;
		case NB_PARSE_DONE:
			keep_rest(c, data, len);
			c->state = S_PROCESSING; /* still read: see read_on */
			if (c->pending.len >= PENDING_MAX)
				read_off(c);
			if (!r->keep_alive)
				c->close_after = true;
			if (r->body_fd >= 0 && r->body.len > 0)
				spool_start(r, true);
			else
				nb_http__dispatch(r);
			return;
		case NB_PARSE_EARLY:
		case NB_PARSE_TOO_LARGE:
		case NB_PARSE_BAD:
			if (r->complete && pr == NB_PARSE_EARLY)
				keep_rest(c, data, len);
			nb_http__respond_now(r, !(r->complete && pr == NB_PARSE_EARLY));
			return;
		}
	}
	if (len > 0 && c->state != S_CLOSED && c->state != S_LINGER)
		keep_rest(c, data, len);
}

/* Feeds what waited in c->pending, then reads the socket again if the request still arrives. */
static void resume_reading(conn_t *c)
{
	if (c->pending.len) {
		nb_buf_t p = c->pending;
		nb_buf_init(&c->pending);
		feed(c, p.data, p.len);
		nb_buf_dispose(&p);
	}
	if ((c->state == S_IDLE || c->state == S_READING) && !(c->cur && c->cur->spool_busy))
		read_on(c);
}

static void conn_next_request(conn_t *c)
{
	nb_server_t *s = c->lp->srv;
	c->state = S_IDLE;
	nb_http__parser_reset(c);
	if (c->requests == 0)
		nb_http__arm(c, T_FIRST, s->o.first_request_timeout_ms);
	else
		nb_http__arm(c, T_IDLE, s->o.idle_timeout_ms);
	resume_reading(c);
}

/* ------------------------------------------------------------ accepting */

/*
 * Sets up a connection on lp, from the listener (server) or from a socket
 * another loop accepted for it (fd, when server is NULL). lp->owned already
 * counts it.
 */
static void conn_start(loop_t *lp, uv_stream_t *server, int fd, bool admin)
{
	nb_server_t *s = lp->srv;
	conn_t *c = nb_xcalloc(1, sizeof *c);
	c->lp = lp;
	c->admin = admin;
	int rc = uv_tcp_init(&lp->loop, &c->tcp);
	if (rc < 0) {
		nb_warn("could not accept a connection: %s", uv_strerror(rc));
		atomic_fetch_sub(&lp->owned, 1);
		if (!server)
			close(fd);
		free(c);
		return;
	}
	uv_timer_init(&lp->loop, &c->timer);
	c->tcp.data = c;
	c->timer.data = c;
	c->handles_open = 2;
	c->next = lp->conns;
	if (lp->conns)
		lp->conns->prev = c;
	lp->conns = c;
	lp->nconns++;
	atomic_fetch_add(&s->conns_open, 1);
	atomic_fetch_add(&s->conns_total, 1);
	if (server ? uv_accept(server, (uv_stream_t *)&c->tcp) < 0 : uv_tcp_open(&c->tcp, fd) < 0) {
		if (!server)
			close(fd); /* not the handle's yet */
		nb_http__conn_close(c);
		return;
	}
	struct sockaddr_storage ss;
	int len = sizeof ss;
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET)
			uv_ip4_name((struct sockaddr_in *)&ss, c->remote, sizeof c->remote);
		else if (ss.ss_family == AF_INET6)
			uv_ip6_name((struct sockaddr_in6 *)&ss, c->remote, sizeof c->remote);
	}
	bool over_client = false;
	if (c->remote[0] && !(s->o.hooks.uncapped_peer && s->o.hooks.uncapped_peer(c->remote))) {
		c->counted = true;
		over_client = clients_add(s, c->remote) > s->o.max_connections_per_client;
	}
	if (over_client || atomic_load(&s->conns_open) > s->o.max_connections) {
		atomic_fetch_add(&s->rejected, 1);
		nb_http__conn_close(c);
		return;
	}
	/* Accepted before the drain (another loop's hand-off): the kernel gave it
	 * to us, so its client expects an answer. Closing it unread would reset
	 * the request; serve it once instead. */
	if (lp->draining)
		c->close_after = true;
	uv_tcp_nodelay(&c->tcp, 1);
	conn_next_request(c);
}

static void free_handle(uv_handle_t *h)
{
	free(h);
}

/*
 * The loop that should own a new connection: lp while it holds no more than
 * any other, else the one holding the fewest. Counts it there.
 */
static loop_t *owner_for(loop_t *lp)
{
	nb_server_t *s = lp->srv;
	loop_t *best = lp;
	long fewest = atomic_load(&lp->owned);
	for (int i = 0; i < s->nloops; i++) {
		long n = atomic_load(&s->loops[i].owned);
		if (n < fewest) {
			fewest = n;
			best = &s->loops[i];
		}
	}
	atomic_fetch_add(&best->owned, 1);
	return best;
}

/* Accepts on lp and queues the socket for loop `to`. */
static void hand_off(loop_t *lp, loop_t *to, uv_stream_t *server)
{
	uv_tcp_t *t = nb_xmalloc(sizeof *t);
	int fd = -1;
	if (uv_tcp_init(&lp->loop, t) < 0) {
		free(t);
		atomic_fetch_sub(&to->owned, 1);
		return;
	}
	uv_os_fd_t ofd;
	if (uv_accept(server, (uv_stream_t *)t) == 0 && uv_fileno((uv_handle_t *)t, &ofd) == 0)
		fd = fcntl(ofd, F_DUPFD_CLOEXEC, 0); /* the handle closes its own fd below */
	uv_close((uv_handle_t *)t, free_handle);
	if (fd < 0) {
		atomic_fetch_sub(&to->owned, 1);
		atomic_fetch_add(&lp->srv->rejected, 1);
		return;
	}
	pthread_mutex_lock(&to->mu);
	bool closed = to->handoff_closed;
	if (!closed) {
		if (to->nhandoff == to->handoff_cap) {
			to->handoff_cap = to->handoff_cap ? to->handoff_cap * 2 : 64;
			to->handoff = nb_xrealloc(to->handoff, (size_t)to->handoff_cap * sizeof *to->handoff);
		}
		to->handoff[to->nhandoff++] = fd;
	}
	pthread_mutex_unlock(&to->mu);
	if (closed) { /* `to` stopped while we accepted: serve it here */
		atomic_fetch_sub(&to->owned, 1);
		atomic_fetch_add(&lp->owned, 1);
		conn_start(lp, NULL, fd, false);
		return;
	}
	uv_async_send(&to->wake);
}

void nb_http__stop_if_drained(loop_t *lp)
{
	while (lp->draining && lp->nconns == 0) {
		pthread_mutex_lock(&lp->mu);
		bool queued = lp->nhandoff > 0;
		if (!queued)
			lp->handoff_closed = true;
		pthread_mutex_unlock(&lp->mu);
		if (!queued) {
			uv_stop(&lp->loop);
			return;
		}
		nb_http__take_handoffs(lp, false); /* their close brings us back here */
	}
}

void nb_http__take_handoffs(loop_t *lp, bool drop)
{
	pthread_mutex_lock(&lp->mu);
	int n = lp->nhandoff;
	int *fds = lp->handoff;
	lp->handoff = NULL;
	lp->nhandoff = lp->handoff_cap = 0;
	pthread_mutex_unlock(&lp->mu);
	for (int i = 0; i < n; i++) {
		if (drop) {
			close(fds[i]);
			atomic_fetch_sub(&lp->owned, 1);
		} else {
			conn_start(lp, NULL, fds[i], false);
		}
	}
	free(fds);
}

static void accept_conn(uv_stream_t *server, int status, bool admin)
{
	loop_t *lp = server->data;
	if (status < 0)
		return;
	if (admin) { /* only loop 0 listens there */
		atomic_fetch_add(&lp->owned, 1);
		conn_start(lp, server, -1, true);
		return;
	}
	loop_t *to = owner_for(lp);
	if (to != lp)
		hand_off(lp, to, server);
	else
		conn_start(lp, server, -1, false);
}

void nb_http__on_connection(uv_stream_t *server, int status)
{
	accept_conn(server, status, false);
}

void nb_http__on_admin_connection(uv_stream_t *server, int status)
{
	accept_conn(server, status, true);
}
