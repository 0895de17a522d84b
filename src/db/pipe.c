/*
 * pipe.c — pipelined statements for the coroutines of one loop (see pipe.h).
 *
 * Each connection keeps a FIFO of what it was sent, in order: statements
 * ([PREPARE] + EXECUTE) and sync points. Results arrive in the same order,
 * so the reader walks the FIFO. A read-only statement shares its sync point
 * with the reads sent after it in the same loop iteration (one implicit
 * transaction, one commit and one flush by the backend for the batch): its
 * EXECUTE's result completes it. Any other statement carries its own sync
 * point and completes at PGRES_PIPELINE_SYNC, i.e. once committed. A
 * statement that fails aborts what follows it up to the next sync point:
 * those get PGRES_PIPELINE_ABORTED, never ran, and are sent again by their
 * coroutines, alone behind a sync point of their own (so a second attempt
 * can only fail by itself). Writes to the socket are deferred to a
 * uv_prepare callback that runs once per loop iteration, just before the
 * loop polls: it closes the open batch with a sync point, and one flush
 * carries every statement queued since the last.
 *
 * One flush in flight per connection: what is queued while the backend still
 * works on the last flush waits for its answers (the last sync point read
 * re-arms the callback, which runs before the loop polls again). The backend
 * would run those statements only after the ones before them anyway; held
 * back, they reach it as one batch with one sync point. Under load each loop
 * iteration brings a request or two per connection, so without the hold
 * every statement went alone (1.2-1.4 statements per sync point at 1,000
 * connections on the list); with it, about a hundred. An idle connection
 * sends at once: no wait is added when there is nothing to wait for.
 *
 * Entries live on the heap: a coroutine that gives up waiting abandons its
 * entry, and the reader frees it when its results arrive. Giving up at the
 * request's deadline leaves the connection alone (the statements queued with
 * it belong to other requests, and lock_timeout / statement_timeout bound the
 * wait); only a server silent past statement_timeout + 5 s breaks it, which
 * fails everything still queued on it.
 */
#include "db/pipe.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "core/sched.h"
#include "core/timeutil.h"
#include "db/pool_internal.h"

#define MAX_STMTS 512
/* A connection with statements in flight that had answered none of them
 * when the loop polled this long after its last answer is held up by a slow
 * one: new statements go elsewhere (head-of-line blocking). Measured from
 * its last answer, not from when its oldest statement was sent: under load a
 * long queue that keeps moving is not stuck, and sending its statements
 * elsewhere (to a pool connection each) would serve them out of arrival
 * order. And measured at the poll (a uv_check callback notes when the last
 * one returned), not at the moment of the choice: a loop busy for 100 ms
 * parsing requests reads no answer meanwhile, which is not the connection's
 * fault. */
#define STUCK_MS 50

/* What a FIFO entry stands for. */
enum {
	E_OWN,    /* a statement with its own sync point: complete at PGRES_PIPELINE_SYNC */
	E_SHARED, /* a read sharing the next sync point: complete at its result */
	E_SYNC,   /* a sync point closing a batch of reads (no coroutine waits on it) */
};

typedef struct entry {
	struct entry *next;
	nb_wait_t *wait; /* NULL once abandoned, and for E_SYNC */
	PGresult *result;
	int rc;
	int stmt_id;
	unsigned char kind;
	bool expect_prepare, got_prepare;
	bool aborted; /* never ran: an earlier statement of its batch failed */
} entry_t;

typedef struct pconn {
	nb_pipe_t *pp;
	PGconn *pg;
	uv_poll_t *poll; /* heap: outlives the connection until closed */
	entry_t *head, *tail;
	int pending;
	uint64_t progress_ms; /* loop time of its last answer, or of its first statement after being idle */
	bool dirty, want_write, connecting;
	bool batch_open; /* the last statement sent has no sync point after it yet */
	int syncs_queued;   /* sync points appended since the last flush */
	int syncs_inflight; /* flushed, their PGRES_PIPELINE_SYNC not read yet */
	int poll_ev; /* the events the poll watches (0: not started); changed only when they differ */
	unsigned char prepared[MAX_STMTS / 8];
} pconn_t;

struct nb_pipe {
	nb_pool_t *pool;
	uv_loop_t *loop;
	uv_prepare_t *prep;
	bool prep_active;
	uv_check_t *check;  /* notes polled_ms after every poll */
	uint64_t polled_ms; /* loop time at which the last poll returned (its answers all read) */
	pconn_t *conns;
	int n;
	nb_pipe_stats_t st;
};

static void update_poll(pconn_t *pc);
static void arm_flush(nb_pipe_t *pp);

/* One of the connection's sync points came back. */
static void sync_done(pconn_t *pc)
{
	if (pc->syncs_inflight > 0) {
		if (--pc->syncs_inflight == 0 && pc->dirty)
			arm_flush(pc->pp); /* what waited for these answers goes now */
	} else if (pc->syncs_queued > 0) {
		pc->syncs_queued--; /* libpq flushed it early (its 64 KiB threshold) */
	}
}

static void poll_closed(uv_handle_t *h)
{
	free(h);
}

/* The connection is gone (why != NULL: logged and counted) or closed at
 * shutdown (why == NULL): fail what waits on it, close it. */
static void conn_fail(pconn_t *pc, const char *why)
{
	if (!pc->pg)
		return;
	if (why) {
		nb_warn("pipelined database connection lost: %s", why);
		pc->pp->st.failures++;
	}
	entry_t *e = pc->head;
	pc->head = pc->tail = NULL;
	while (e) {
		entry_t *next = e->next;
		if (e->wait) {
			PQclear(e->result);
			e->result = NULL;
			e->rc = NB_EUNAVAIL;
			nb_wait_signal(e->wait);
		} else {
			PQclear(e->result);
			free(e);
		}
		e = next;
	}
	pc->pp->st.pending -= pc->pending;
	pc->pending = 0;
	if (pc->poll) {
		uv_poll_stop(pc->poll);
		uv_close((uv_handle_t *)pc->poll, poll_closed);
		pc->poll = NULL;
		pc->poll_ev = 0;
	}
	PQfinish(pc->pg);
	pc->pg = NULL;
	pc->dirty = pc->want_write = pc->batch_open = false;
	pc->syncs_queued = pc->syncs_inflight = 0;
	memset(pc->prepared, 0, sizeof pc->prepared);
	pc->pp->st.connections--;
}

/* An error that means the backend or its connection is gone, not the statement:
 * no SQLSTATE, class 08, or 57P01-57P03 (administrator/crash shutdown, cannot connect now). */
static bool conn_lost_error(const PGresult *r)
{
	if (PQresultStatus(r) != PGRES_FATAL_ERROR)
		return false;
	const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	if (!st || !*st || !strncmp(st, "08", 2))
		return true;
	return !strcmp(st, "57P01") || !strcmp(st, "57P02") || !strcmp(st, "57P03");
}

static void pop(pconn_t *pc, entry_t *e)
{
	pc->progress_ms = uv_now(pc->pp->loop);
	pc->head = e->next;
	if (!pc->head)
		pc->tail = NULL;
}

static void complete(pconn_t *pc, entry_t *e)
{
	pop(pc, e);
	pc->pending--;
	pc->pp->st.pending--;
	if (e->result == NULL && e->rc == 0 && !e->aborted)
		e->rc = NB_EDB;
	if (e->result && e->rc == 0 && conn_lost_error(e->result)) {
		/* the backend is going away (shutdown, lost connection): the
		 * statement's own error, but the caller should treat it as the
		 * connection failing (retry elsewhere, 503), as it did when every
		 * statement waited for its own sync point */
		PQclear(e->result);
		e->result = NULL;
		e->rc = NB_EUNAVAIL;
	}
	if (!e->wait) { /* abandoned */
		PQclear(e->result);
		free(e);
		return;
	}
	nb_wait_signal(e->wait);
}

/* One result for the head entry. */
static void take_result(pconn_t *pc, PGresult *r)
{
	entry_t *e = pc->head;
	ExecStatusType s = PQresultStatus(r);
	if (e->kind == E_SYNC) {
		PQclear(r);
		if (s != PGRES_PIPELINE_SYNC) { /* cannot happen: libpq answers in the order sent */
			conn_fail(pc, "pipeline results out of step");
			return;
		}
		pop(pc, e);
		free(e);
		sync_done(pc);
		return;
	}
	if (s == PGRES_PIPELINE_SYNC) { /* E_OWN's sync point: committed (or rolled back) */
		PQclear(r);
		complete(pc, e);
		sync_done(pc);
		return;
	}
	if (e->expect_prepare && !e->got_prepare) {
		e->got_prepare = true;
		if (s != PGRES_COMMAND_OK) { /* the EXECUTE will be aborted */
			pc->prepared[e->stmt_id / 8] &= (unsigned char)~(1u << (e->stmt_id % 8));
			if (s == PGRES_PIPELINE_ABORTED) {
				e->aborted = true; /* an earlier statement failed */
				PQclear(r);
			} else { /* its own error: keep it */
				PQclear(e->result);
				e->result = r;
			}
			return;
		}
		PQclear(r);
		return;
	}
	/* the EXECUTE's result */
	if (s == PGRES_PIPELINE_ABORTED && !e->result)
		e->aborted = true;
	if (!e->result && !e->aborted)
		e->result = r;
	else
		PQclear(r); /* aborted, or PIPELINE_ABORTED after its own failed PREPARE: keep that error */
	if (e->kind == E_SHARED)
		complete(pc, e);
}

static void drain(pconn_t *pc)
{
	int nulls = 0;
	while (pc->pg && pc->head && !PQisBusy(pc->pg)) {
		PGresult *r = PQgetResult(pc->pg);
		if (!r) {
			if (++nulls > 1)
				break; /* nothing more buffered */
			continue;
		}
		nulls = 0;
		take_result(pc, r);
	}
}

static void on_io(uv_poll_t *h, int status, int events)
{
	pconn_t *pc = h->data;
	if (status < 0) {
		conn_fail(pc, uv_strerror(status));
		return;
	}
	if ((events & UV_WRITABLE) && pc->pg) {
		int f = PQflush(pc->pg);
		if (f < 0) {
			conn_fail(pc, PQerrorMessage(pc->pg));
			return;
		}
		pc->want_write = f == 1;
	}
	if (events & UV_READABLE) {
		if (!PQconsumeInput(pc->pg) || PQstatus(pc->pg) != CONNECTION_OK) {
			conn_fail(pc, PQerrorMessage(pc->pg));
			return;
		}
		drain(pc);
		if (pc->pg && !pc->head && PQstatus(pc->pg) != CONNECTION_OK)
			conn_fail(pc, "connection closed");
	}
	update_poll(pc);
}

static void update_poll(pconn_t *pc)
{
	if (!pc->pg || !pc->poll)
		return;
	int ev = UV_READABLE | (pc->want_write ? UV_WRITABLE : 0);
	if (ev == pc->poll_ev)
		return; /* libuv would stop and re-add the watch: two epoll_ctl calls for nothing */
	int rc = uv_poll_start(pc->poll, ev, on_io);
	if (rc < 0) {
		conn_fail(pc, uv_strerror(rc));
		return;
	}
	pc->poll_ev = ev;
}

/* Right after every poll: what it brought has been read. */
static void on_check(uv_check_t *h)
{
	nb_pipe_t *pp = h->data;
	pp->polled_ms = uv_now(pp->loop);
}

static void enqueue(pconn_t *pc, entry_t *e)
{
	if (pc->tail) {
		pc->tail->next = e;
	} else {
		pc->head = e;
		pc->progress_ms = uv_now(pc->pp->loop);
	}
	pc->tail = e;
}

/* Appends a sync point; it closes the open batch of reads, if any. */
static int send_sync(pconn_t *pc)
{
	if (!PQpipelineSync(pc->pg))
		return -1;
	pc->batch_open = false;
	pc->pp->st.syncs++;
	pc->syncs_queued++;
	return 0;
}

/* Closes the open batch of reads with a sync point of its own (an E_SYNC entry). */
static int close_batch(pconn_t *pc)
{
	if (!pc->batch_open)
		return 0;
	if (send_sync(pc) < 0)
		return -1;
	entry_t *m = nb_xcalloc(1, sizeof *m);
	m->kind = E_SYNC;
	enqueue(pc, m);
	return 0;
}

/* Once per loop iteration: close the open batches and flush what was queued. */
static void on_prepare(uv_prepare_t *h)
{
	nb_pipe_t *pp = h->data;
	for (int i = 0; i < pp->n; i++) {
		pconn_t *pc = &pp->conns[i];
		if (!pc->dirty || !pc->pg)
			continue;
		if (pc->syncs_inflight > 0)
			continue; /* flushed when its answers are in (sync_done) */
		pc->dirty = false;
		if (close_batch(pc) < 0) {
			conn_fail(pc, PQerrorMessage(pc->pg));
			continue;
		}
		pp->st.flushes++;
		int f = PQflush(pc->pg);
		if (f < 0) {
			conn_fail(pc, PQerrorMessage(pc->pg));
			continue;
		}
		pc->syncs_inflight += pc->syncs_queued;
		pc->syncs_queued = 0;
		pc->want_write = f == 1;
		update_poll(pc);
	}
	uv_prepare_stop(h);
	pp->prep_active = false;
}

static void arm_flush(nb_pipe_t *pp)
{
	if (pp->prep_active)
		return;
	pp->prep_active = true;
	if (uv_prepare_start(pp->prep, on_prepare) < 0) /* only fails on a closing handle */
		pp->prep_active = false;
}

nb_pipe_t *nb_pipe_create(nb_pool_t *pool, int nconns)
{
	nb_sched_t *s = nb_sched_current();
	nb_pipe_t *pp = nb_xcalloc(1, sizeof *pp);
	pp->pool = pool;
	pp->n = nconns > 0 ? nconns : 1;
	pp->conns = nb_xcalloc((size_t)pp->n, sizeof(pconn_t));
	for (int i = 0; i < pp->n; i++)
		pp->conns[i].pp = pp;
	pp->loop = s ? nb_sched_loop(s) : uv_default_loop();
	pp->prep = nb_xmalloc(sizeof(uv_prepare_t));
	int rc = uv_prepare_init(pp->loop, pp->prep);
	if (rc < 0) { /* cannot fail on Linux; a loop without it could never flush */
		nb_error("could not set up the database pipeline: %s", uv_strerror(rc));
		abort();
	}
	pp->prep->data = pp;
	pp->check = nb_xmalloc(sizeof(uv_check_t));
	if (uv_check_init(pp->loop, pp->check) < 0 || uv_check_start(pp->check, on_check) < 0) {
		nb_error("could not set up the database pipeline's poll watch");
		abort();
	}
	pp->check->data = pp;
	uv_unref((uv_handle_t *)pp->check); /* never keeps the loop running by itself */
	return pp;
}

void nb_pipe_destroy(nb_pipe_t *pp)
{
	if (!pp)
		return;
	for (int i = 0; i < pp->n; i++)
		conn_fail(&pp->conns[i], NULL); /* a clean stop is not a failure */
	uv_prepare_stop(pp->prep);
	uv_close((uv_handle_t *)pp->prep, poll_closed);
	uv_check_stop(pp->check);
	uv_close((uv_handle_t *)pp->check, poll_closed);
	free(pp->conns);
	free(pp);
}

/* Opens a connection into slot pc (yields while connecting). */
static int conn_open(pconn_t *pc)
{
	pc->connecting = true;
	PGconn *pg = nb_pool__open_async(pc->pp->pool);
	pc->connecting = false;
	if (!pg)
		return NB_EUNAVAIL;
	if (!PQenterPipelineMode(pg)) {
		PQfinish(pg);
		return NB_EUNAVAIL;
	}
	pc->poll = nb_xmalloc(sizeof(uv_poll_t));
	if (uv_poll_init(pc->pp->loop, pc->poll, PQsocket(pg)) < 0) {
		free(pc->poll);
		pc->poll = NULL;
		PQfinish(pg);
		return NB_EUNAVAIL;
	}
	pc->poll->data = pc;
	pc->poll_ev = 0;
	pc->pg = pg;
	pc->pp->st.connections++;
	update_poll(pc);
	return 0;
}

/*
 * The open connection with the fewest statements in flight, opening one if
 * needed, and never one held up by a slow statement (NB_EBUSY when every
 * connection is: the caller then runs the statement on a connection of its own).
 */
static pconn_t *pick(nb_pipe_t *pp, int *rc)
{
	pconn_t *best = NULL, *closed = NULL;
	bool stuck_seen = false;
	for (int i = 0; i < pp->n; i++) {
		pconn_t *pc = &pp->conns[i];
		if (pc->pg && pc->head && pp->polled_ms > pc->progress_ms + STUCK_MS) {
			stuck_seen = true;
			continue;
		}
		if (pc->pg && (!best || pc->pending < best->pending))
			best = pc;
		else if (!pc->pg && !pc->connecting && !closed)
			closed = pc;
	}
	if (!best && !closed && stuck_seen) {
		*rc = NB_EBUSY;
		return NULL;
	}
	/* Open another connection while the open ones are busy. */
	if (closed && (!best || best->pending > 0)) {
		if (conn_open(closed) == 0)
			return closed;
		if (!best) {
			*rc = NB_EUNAVAIL;
			return NULL;
		}
	}
	if (!best)
		*rc = 1; /* every slot is connecting: the caller waits */
	return best;
}

/* Waits (yielding) for a pipelined connection, up to the pool's acquire
 * timeout or the request's deadline. */
static pconn_t *pick_wait(nb_pipe_t *pp, int64_t deadline_ms, int *rc)
{
	int64_t waited = 0;
	for (;;) {
		*rc = 0;
		pconn_t *pc = pick(pp, rc);
		if (pc || *rc < 0)
			return pc;
		if (deadline_ms > 0 && nb_mono_ms() >= deadline_ms) {
			*rc = NB_ETIMEOUT;
			return NULL;
		}
		if (waited >= nb_pool__acquire_timeout_ms(pp->pool)) {
			*rc = NB_EUNAVAIL;
			return NULL;
		}
		/* every slot is connecting (start-up): wait a little */
		nb_wait_t w;
		nb_wait_init(&w);
		nb_wait_park(&w, 20);
		waited += 20;
	}
}

int nb_pipe_exec(nb_pipe_t *pp, int stmt_id, const char *name, const char *sql, bool read_only, int nparams,
		 const char *const *values, const int *lengths, const int *formats, int rfmt, int64_t deadline_ms,
		 PGresult **res)
{
	int rc = 0;
	*res = NULL;
	for (int attempt = 0;; attempt++) {
		pconn_t *pc = pick_wait(pp, deadline_ms, &rc);
		if (!pc)
			return rc;
		entry_t *e = nb_xcalloc(1, sizeof *e);
		e->stmt_id = stmt_id;
		/* a second attempt goes alone behind a sync point: only its own error can stop it */
		e->kind = read_only && attempt == 0 ? E_SHARED : E_OWN;
		if (attempt > 0 && close_batch(pc) < 0)
			goto send_failed;
		bool prepared = stmt_id < MAX_STMTS && (pc->prepared[stmt_id / 8] & (1u << (stmt_id % 8)));
		if (!prepared) {
			if (!PQsendPrepare(pc->pg, name, sql, 0, NULL))
				goto send_failed;
			if (stmt_id < MAX_STMTS)
				pc->prepared[stmt_id / 8] |= (unsigned char)(1u << (stmt_id % 8));
			e->expect_prepare = true;
		}
		if (!PQsendQueryPrepared(pc->pg, name, nparams, values, lengths, formats, rfmt))
			goto send_failed;
		if (e->kind == E_OWN) {
			if (send_sync(pc) < 0) /* its sync point closes the reads before it too */
				goto send_failed;
		} else {
			pc->batch_open = true;
		}
		enqueue(pc, e);
		pc->pending++;
		pp->st.pending++;
		pp->st.statements++;
		pc->dirty = true;
		arm_flush(pp);
		nb_wait_t w;
		nb_wait_init(&w);
		e->wait = &w;
		int64_t until = nb_mono_ms() + nb_pool__wait_ms(pp->pool);
		bool by_deadline = deadline_ms > 0 && deadline_ms < until;
		int64_t left = (by_deadline ? deadline_ms : until) - nb_mono_ms();
		if (nb_wait_park(&w, left > 0 ? (int)left : 0) < 0) {
			e->wait = NULL; /* the reader frees it when its results arrive */
			if (by_deadline) {
				pp->st.abandoned++;
				return NB_ETIMEOUT;
			}
			conn_fail(pc, "no answer within the statement timeout");
			return NB_EUNAVAIL;
		}
		if (e->aborted && e->rc == 0) {
			free(e); /* it never ran: send it again */
			pp->st.resent++;
			if (attempt >= 2) /* cannot happen: a second attempt has a batch of its own */
				return NB_EDB;
			continue;
		}
		rc = e->rc;
		*res = e->result;
		free(e);
		return rc;
	send_failed:
		free(e);
		conn_fail(pc, PQerrorMessage(pc->pg));
		return NB_EUNAVAIL;
	}
}

void nb_pipe_stats(nb_pipe_t *pp, nb_pipe_stats_t *out)
{
	*out = pp->st;
}
