/*
 * middleware.c — the API's side of the server hooks (see middleware.h).
 *
 * Design: the HTTP server knows nothing of the database; this file owns the
 * per-loop async pools and pipelines (made on each loop's thread by the
 * loop_start hook, kept in a small table for /metrics) and the per-request
 * slot holding the request's connection (req->app, in the request's arena).
 * Authentication is split in two: the bearer token (pure CPU) is checked on
 * the loop as soon as the head is routed, so an anonymous request to an
 * authenticated route is answered 401 before its body is read; the "user
 * still exists" query runs where the handler runs, just before it.
 * With a read replica, a read-only route's connection (taken at its first
 * statement, once the user is known) comes from the replica's pools when
 * db/replica.h allows it for that user; a write notes its user afterwards.
 */
#include "api/middleware.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/idempotency.h"
#include "api/ratelimit.h"
#include "api/replica.h"
#include "api/util.h"
#include "auth/service.h"
#include "core/alloc.h"
#include "core/config.h"
#include "core/err.h"
#include "core/sched.h"
#include "db/breaker.h"
#include "db/replica.h"
#include "rag/generate.h"

typedef struct api_loop {
	nb_pool_t *pool; /* async, for this loop's coroutines; NULL without one */
	nb_pipe_t *pipe; /* its pipelined connections, or NULL */
	nb_pool_t *rpool; /* the read replica's, or NULL */
	nb_pipe_t *rpipe;
	int index;
} api_loop_t;

typedef struct api_req {
	nb_conn_t *conn;
	nb_pool_t *pool;    /* where conn came from */
	nb_api_idem_t idem; /* Idempotency-Key: its transaction around the handler */
	bool no_shed;       /* nb_req_db_unshed: a health check's waits are never shed */
} api_req_t;

static struct {
	nb_pool_t *thread_pool;
	nb_pool_opts_t loop_pool;
	int pipelines;
	bool replica;              /* a read replica is configured */
	nb_pool_opts_t read_pool;  /* its loop pools */
	nb_pool_t *thread_read_pool;
	pthread_mutex_t mu; /* guards loops */
	api_loop_t **loops;
	int nloops;
} mw = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* ------------------------------------------------------------ body checks */

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

bool nb_api_json_too_deep(const char *p, size_t n, int max)
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
			if (++depth > max)
				return true;
		} else if ((ch == ']' || ch == '}') && depth > 0) {
			depth--;
		}
	}
	return false;
}

int nb_api_check_body(nb_req_t *req)
{
	if (req->body_len == 0)
		return 0;
	const char *ct = nb_req_header(req, "content-type");
	bool multipart_ok = req->route && (req->route->flags & NB_ROUTE_MULTIPART);
	if (multipart_content_type(ct) && multipart_ok)
		return 0;
	if (!json_content_type(ct))
		return nb_resp_error(req, NB_EMEDIATYPE,
				     multipart_ok ? "content type must be application/json or multipart/form-data"
						  : "content type must be application/json",
				     NULL);
	if (nb_api_json_too_deep(req->body, req->body_len, NB_JSON_MAX_DEPTH))
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

/* ---------------------------------------------------------- the database */

static api_req_t *api_req(nb_req_t *req)
{
	api_req_t *a = req->app;
	if (!a) {
		a = nb_arena_alloc(req->arena, sizeof *a);
		memset(a, 0, sizeof *a);
		req->app = a;
	}
	return a;
}

/*
 * A read-only route's connection on the replica, when it may serve this
 * request: the user is known (the user check of authentication always asks
 * the primary) and has no write the replica may not have replayed yet.
 * 1 with a->conn set, 0 to use the primary.
 */
static int replica_conn(nb_req_t *req, api_req_t *a, bool coro, api_loop_t *lp)
{
	if (!mw.replica || !req->authed || !nb_replica_usable_for(req->user_id))
		return 0;
	if (coro && (!lp || !lp->rpool))
		return 0;
	if (coro && lp->rpipe) {
		a->conn = nb_pool_acquire_virtual(lp->rpool, lp->rpipe);
		nb_conn_set_fallback(a->conn, lp->pool, lp->pipe); /* a failure there runs it again on the primary */
		a->pool = lp->rpool;
	} else {
		nb_pool_t *p = coro ? lp->rpool : mw.thread_read_pool;
		if (nb_pool_acquire_by(p, req->deadline_ms, !a->no_shed, &a->conn) < 0) {
			nb_replica_fallback(true);
			return 0;
		}
		a->pool = p;
	}
	nb_conn_set_deadline(a->conn, req->deadline_ms);
	return 1;
}

void nb_req_db_unshed(nb_req_t *req)
{
	api_req_t *a = api_req(req);
	a->no_shed = true;
	nb_conn_set_shed(a->conn, false);
}

int nb_req_db(nb_req_t *req, nb_conn_t **out)
{
	api_req_t *a = api_req(req);
	if (!a->conn) {
		bool coro = nb_sched_in_coro();
		api_loop_t *lp = req->loop_data;
		if (req->route && (req->route->flags & NB_ROUTE_READ)) {
			int on_replica = replica_conn(req, a, coro, lp);
			nb_replica_count_read(on_replica == 1);
			if (on_replica) {
				*out = a->conn;
				return 0; /* the primary's breaker does not concern the replica */
			}
		}
		int retry_s;
		if (nb_breaker_rejects(&retry_s)) {
			req->resp.retry_after = retry_s; /* fail fast: no connect is tried while open */
			return NB_EUNAVAIL;
		}
		nb_pool_t *p = coro ? (lp ? lp->pool : NULL) : mw.thread_pool;
		if (!p)
			return NB_EUNAVAIL;
		if (coro && lp->pipe) {
			a->conn = nb_pool_acquire_virtual(p, lp->pipe);
			nb_conn_set_shed(a->conn, !a->no_shed);
		} else {
			/* a thread's wait for a connection never outlives the request; a
			 * coroutine's is refused at once when it would (pool.c) */
			int rc = nb_pool_acquire_by(p, req->deadline_ms, !a->no_shed, &a->conn);
			if (rc < 0)
				return rc;
		}
		a->pool = p;
		nb_conn_set_deadline(a->conn, req->deadline_ms); /* db waits end at the request's deadline */
	}
	*out = a->conn;
	return 0;
}

/* ------------------------------------------------------------------ hooks */

/* A loop's share of a process-wide pool (size and overflow split over the
 * loops, rounded up), async, with its pipelines when there are any. */
static void loop_pool(const nb_pool_opts_t *whole, int nloops, nb_pool_t **pool, nb_pipe_t **pipe)
{
	nb_pool_opts_t o = *whole;
	o.async = true;
	o.size = (whole->size + nloops - 1) / nloops;
	o.overflow = (whole->overflow + nloops - 1) / nloops;
	*pool = nb_pool_create(&o);
	if (mw.pipelines > 0)
		*pipe = nb_pipe_create(*pool, mw.pipelines);
}

static void *loop_start(void *arg, int index, int nloops)
{
	(void)arg;
	api_loop_t *lp = nb_xcalloc(1, sizeof *lp);
	lp->index = index;
	if (mw.loop_pool.conninfo)
		loop_pool(&mw.loop_pool, nloops, &lp->pool, &lp->pipe);
	if (mw.replica && lp->pool)
		loop_pool(&mw.read_pool, nloops, &lp->rpool, &lp->rpipe);
	pthread_mutex_lock(&mw.mu);
	if (!mw.loops) {
		mw.loops = nb_xcalloc((size_t)nloops, sizeof *mw.loops);
		mw.nloops = nloops;
	}
	if (index < mw.nloops)
		mw.loops[index] = lp;
	pthread_mutex_unlock(&mw.mu);
	return lp;
}

static void loop_stop(void *arg, void *data)
{
	(void)arg;
	api_loop_t *lp = data;
	if (!lp)
		return;
	pthread_mutex_lock(&mw.mu);
	bool last = true;
	for (int i = 0; i < mw.nloops; i++) {
		if (mw.loops[i] == lp)
			mw.loops[i] = NULL;
		else if (mw.loops[i])
			last = false;
	}
	if (last) {
		free(mw.loops);
		mw.loops = NULL;
		mw.nloops = 0;
	}
	pthread_mutex_unlock(&mw.mu);
	nb_pipe_destroy(lp->rpipe);
	nb_pool_destroy(lp->rpool);
	nb_pipe_destroy(lp->pipe);
	nb_pool_destroy(lp->pool); /* closes its socket watchers on the loop */
	nb_gen_loop_cleanup();	   /* the loops' libcurl multi handles (streamed model answers) */
	free(lp);
}

static int on_head(nb_req_t *req)
{
	nb_api_client_addr(req); /* the one place the client's address is decided */
	if (!(req->route->flags & NB_ROUTE_AUTH))
		return nb_api_ratelimit_check(req, NULL);
	char uid[37];
	if (nb_auth_check_bearer(nb_req_header(req, "authorization"), uid) < 0)
		return nb_resp_error(req, NB_EUNAUTH, "missing, invalid or expired access token", NULL);
	return nb_api_ratelimit_check(req, uid);
}

static int before(nb_req_t *req)
{
	int rc = nb_api_check_body(req);
	if (rc == 0 && (req->route->flags & NB_ROUTE_AUTH))
		rc = nb_api_authenticate(req);
	if (rc == 0 && (req->route->flags & NB_ROUTE_IDEMPOTENT) && req->authed)
		rc = nb_api_idem_begin(req, &api_req(req)->idem);
	return rc;
}

static void after(nb_req_t *req)
{
	api_req_t *a = req->app;
	int stmts = 0;
	if (a)
		nb_api_idem_end(req, &a->idem); /* commits the answer with its effect */
	if (a && a->conn) {
		stmts = nb_conn_statements(a->conn);
		nb_pool_release(a->pool, a->conn);
		a->conn = NULL;
		/* after the commit: this user's reads stay on the primary until the replica has it */
		if (mw.replica && req->authed && !(req->route->flags & NB_ROUTE_READ))
			nb_replica_note_write(req->user_id);
	}
	if (nb_cfg.expose_statement_count) {
		char n[16];
		snprintf(n, sizeof n, "%d", stmts);
		nb_resp_header(&req->resp, "X-DB-Statements", n);
	}
}

void nb_api_middleware_install(nb_server_opts_t *so, nb_pool_t *thread_pool, const nb_pool_opts_t *loop_pool,
			       int pipelines)
{
	mw.thread_pool = thread_pool;
	if (loop_pool)
		mw.loop_pool = *loop_pool;
	mw.pipelines = pipelines;
	so->hooks = (nb_server_hooks_t){
		.loop_start = loop_start,
		.loop_stop = loop_stop,
		.on_head = on_head,
		.before = before,
		.after = after,
		.uncapped_peer = nb_api_trusted_proxy, /* a proxy carries many clients */
	};
}

void nb_api_middleware_set_replica(const nb_pool_opts_t *loop_read_pool, nb_pool_t *thread_read_pool)
{
	mw.replica = loop_read_pool != NULL;
	if (loop_read_pool)
		mw.read_pool = *loop_read_pool;
	mw.thread_read_pool = thread_read_pool;
}

/* ------------------------------------------------------------------ stats */

static void add_stats(nb_pool_stats_t *sum, const nb_pool_stats_t *st)
{
	sum->in_use += st->in_use;
	sum->idle += st->idle;
	sum->waiting += st->waiting;
	sum->total += st->total;
	sum->acquires += st->acquires;
	sum->timeouts += st->timeouts;
	sum->created += st->created;
	sum->closed += st->closed;
	sum->replaced_dead += st->replaced_dead;
	sum->connect_failures += st->connect_failures;
	sum->wait_us_total += st->wait_us_total;
	sum->shed += st->shed;
}

void nb_api_read_pool_stats(nb_pool_stats_t *sum)
{
	nb_pool_stats_t st;
	memset(sum, 0, sizeof *sum);
	pthread_mutex_lock(&mw.mu);
	for (int i = 0; i < mw.nloops; i++) {
		if (mw.loops[i] && mw.loops[i]->rpool) {
			nb_pool_stats(mw.loops[i]->rpool, &st);
			add_stats(sum, &st);
		}
	}
	pthread_mutex_unlock(&mw.mu);
	if (mw.thread_read_pool) {
		nb_pool_stats(mw.thread_read_pool, &st);
		add_stats(sum, &st);
	}
}

void nb_api_loop_pool_stats(nb_pool_stats_t *sum)
{
	memset(sum, 0, sizeof *sum);
	pthread_mutex_lock(&mw.mu);
	for (int i = 0; i < mw.nloops; i++) {
		if (!mw.loops[i] || !mw.loops[i]->pool)
			continue;
		nb_pool_stats_t st;
		nb_pool_stats(mw.loops[i]->pool, &st);
		add_stats(sum, &st);
	}
	pthread_mutex_unlock(&mw.mu);
}

void nb_api_loop_pool_wait_histo(nb_histo_snap_t *sum)
{
	pthread_mutex_lock(&mw.mu);
	for (int i = 0; i < mw.nloops; i++)
		if (mw.loops[i] && mw.loops[i]->pool)
			nb_pool_wait_histo(mw.loops[i]->pool, sum);
	pthread_mutex_unlock(&mw.mu);
}

int nb_api_loop_count(void)
{
	pthread_mutex_lock(&mw.mu);
	int n = 0;
	for (int i = 0; i < mw.nloops; i++)
		n += mw.loops[i] && mw.loops[i]->pool;
	pthread_mutex_unlock(&mw.mu);
	return n;
}

void nb_api_pipe_stats(nb_pipe_stats_t *sum)
{
	memset(sum, 0, sizeof *sum);
	pthread_mutex_lock(&mw.mu);
	for (int i = 0; i < mw.nloops; i++) {
		if (!mw.loops[i] || !mw.loops[i]->pipe)
			continue;
		nb_pipe_stats_t st;
		nb_pipe_stats(mw.loops[i]->pipe, &st);
		sum->statements += st.statements;
		sum->flushes += st.flushes;
		sum->syncs += st.syncs;
		sum->resent += st.resent;
		sum->failures += st.failures;
		sum->connections += st.connections;
		sum->pending += st.pending;
	}
	pthread_mutex_unlock(&mw.mu);
}
