/*
 * pool.c — PostgreSQL connection pool (see pool.h for the design).
 *
 * Locking: one mutex guards the idle stack and the counters. Connecting,
 * pinging and closing happen outside it: a slot is reserved (total++) first
 * so that concurrent callers never exceed size + overflow.
 *
 * Async pools serve waiting coroutines in arrival order: a released
 * connection is handed straight to the first waiter (never put back on the
 * idle stack for a newcomer to take), a newcomer queues behind those already
 * waiting, and a waiter woken by a freed slot that loses it goes back to the
 * head of the queue, not the tail. A request whose wait would outlast its
 * deadline is refused at once (shed: NB_EUNAVAIL, counted) instead of
 * queueing to be cut at the deadline: the predicted wait is (its position + 1)
 * × the moving average of how long a connection is held ÷ the connections in
 * use, plus one hold for its own statement.
 */
#include "db/pool.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/sched.h"
#include "core/timeutil.h"
#include "core/tpool.h"
#include "db/breaker.h"
#include "db/connect.h"
#include "db/pool_internal.h"
#include "db/replica.h"

#define NB_MAX_STMTS 512
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 1000 /* short: the breaker (db/breaker.h) is what stops a storm process-wide */
/* After a cancel at a request's deadline: how long the server may take to
 * answer it before the connection is given up as broken. */
#define CANCEL_GRACE_MS 5000

struct nb_conn {
	PGconn *pg;
	nb_pool_t *pool;
	struct nb_conn *next; /* idle stack link */
	int64_t created_ms;   /* monotonic */
	int64_t released_ms;  /* monotonic, when it last went idle */
	int64_t acquired_us;  /* monotonic, when it was last handed out (0: never) */
	int uses;             /* statements since acquire */
	bool broken;
	nb_fdwait_t *fw; /* async pools: watches the socket */
	bool is_virtual;          /* a request's handle: pipe + exclusive connection */
	struct nb_pipe *pipe;
	struct nb_conn *excl;     /* virtual: the transaction's real connection */
	nb_pool_t *fb_pool;       /* virtual on a replica: the primary's pool and pipe (nb_conn_set_fallback) */
	struct nb_pipe *fb_pipe;
	int64_t deadline_ms;      /* the request's deadline (monotonic; 0: none) */
	bool outer_tx;            /* its holder opened a transaction: BEGIN/COMMIT/ROLLBACK nest as savepoints */
	bool no_shed;             /* virtual: its waits for a connection are never shed (health checks) */
	int inner_depth;          /* savepoints opened by nb_db_begin inside it */
	unsigned char prepared[NB_MAX_STMTS / 8];
};

struct nb_pool {
	nb_pool_opts_t o;
	char *conninfo;
	char *appname;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	nb_conn_t *idle; /* LIFO stack */
	int nidle;
	int total;   /* open or being opened */
	int waiting;
	struct waiter *wq_head, *wq_tail; /* async pools: coroutines waiting for a connection, FIFO */
	int64_t hold_ewma_us; /* moving average of how long a connection is held (0: no sample yet) */
	int64_t down_until_ms; /* connect backoff window (monotonic) */
	int backoff_ms;
	nb_pool_stats_t st;
	nb_histo_t wait_hist; /* acquire waits (nb_pool_wait_histo) */
	pthread_once_t cancel_once;
	nb_tpool_t *cancel_tp; /* async pools: PQcancel blocks, so it runs here */
};

void nb_pool_opts_from_config(nb_pool_opts_t *o, const char *conninfo)
{
	memset(o, 0, sizeof *o);
	o->conninfo = conninfo;
	o->application_name = "notebookd";
	o->size = nb_cfg.db_pool_size;
	o->overflow = nb_cfg.db_pool_overflow;
	o->acquire_timeout_ms = nb_cfg.db_acquire_timeout_ms;
	o->preping_idle_ms = nb_cfg.db_preping_idle_ms;
	o->max_age_ms = nb_cfg.db_max_age_ms;
	o->overflow_idle_ms = nb_cfg.db_overflow_idle_ms;
	o->statement_timeout_ms = nb_cfg.db_statement_timeout_ms;
	o->idle_in_tx_timeout_ms = 60000;
	o->connect_timeout_s = nb_cfg.db_connect_timeout_s;
	o->pipe_lock_timeout_ms = nb_cfg.db_pipeline_lock_timeout_ms;
	nb_breaker_configure(nb_cfg.db_breaker_failures, nb_cfg.db_breaker_open_ms);
}

nb_pool_t *nb_pool_create(const nb_pool_opts_t *o)
{
	nb_pool_t *p = nb_xcalloc(1, sizeof *p);
	p->o = *o;
	p->conninfo = nb_xstrdup(o->conninfo ? o->conninfo : "");
	p->o.conninfo = p->conninfo;
	if (p->o.size < 1)
		p->o.size = 1;
	p->appname = nb_xstrdup(o->application_name ? o->application_name : "notebookd");
	p->o.application_name = p->appname;
	p->cancel_once = (pthread_once_t)PTHREAD_ONCE_INIT;
	pthread_condattr_t ca;
	if (pthread_mutex_init(&p->mu, NULL) != 0 || pthread_condattr_init(&ca) != 0 ||
	    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 || pthread_cond_init(&p->cv, &ca) != 0) {
		nb_error("could not initialise the connection pool's lock");
		abort();
	}
	pthread_condattr_destroy(&ca);
	return p;
}

/* A coroutine waiting for a connection of an async pool (on its stack). */
typedef struct waiter {
	nb_wait_t w;
	nb_conn_t *given; /* handed over by release */
	struct waiter *next;
} waiter_t;

static void conn_close(nb_conn_t *c)
{
	if (!c)
		return;
	nb_fdwait_destroy(c->fw); /* stop watching before libpq closes the socket */
	c->fw = NULL;
	if (c->pg)
		PQfinish(c->pg);
	free(c);
}

void nb_pool_destroy(nb_pool_t *p)
{
	if (!p)
		return;
	nb_conn_t *c = p->idle;
	while (c) {
		nb_conn_t *next = c->next;
		conn_close(c);
		c = next;
	}
	nb_tpool_destroy(p->cancel_tp);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p->conninfo);
	free(p->appname);
	free(p);
}

/* The connection parameters of this pool's connections. */
static void connect_opts(nb_pool_t *p, nb_db_connect_opts_t *co, int lock_timeout_ms)
{
	nb_db_connect_opts_init(co, p->conninfo, p->appname);
	co->connect_timeout_s = p->o.connect_timeout_s;
	co->statement_timeout_ms = p->o.statement_timeout_ms;
	co->idle_in_tx_timeout_ms = p->o.idle_in_tx_timeout_ms;
	co->lock_timeout_ms = lock_timeout_ms;
}

/* Opens a libpq connection (yielding on async pools); NULL (and a log line) on failure. */
static PGconn *pg_open(nb_pool_t *p, nb_fdwait_t **fw_out, int lock_timeout_ms)
{
	nb_db_connect_opts_t co;
	connect_opts(p, &co, lock_timeout_ms);
	char err[256];
	*fw_out = NULL;
	bool breaker = !p->o.no_breaker;
	if (breaker && !nb_breaker_allow_connect())
		return NULL; /* the breaker is open: fail fast, no connect */
	PGconn *pg = p->o.async ? nb_db_connect_async(&co, fw_out, err, sizeof err) : nb_db_connect(&co, err, sizeof err);
	if (!pg) {
		if (breaker)
			nb_breaker_failure();
		nb_warn("could not connect to %s: %s", breaker ? "database" : "the read replica", err);
	} else if (breaker) {
		nb_breaker_success();
	}
	return pg;
}

static void backoff_failed(nb_pool_t *p)
{
	p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : BACKOFF_MIN_MS;
	if (p->backoff_ms > BACKOFF_MAX_MS)
		p->backoff_ms = BACKOFF_MAX_MS;
	p->down_until_ms = nb_mono_ms() + p->backoff_ms;
	p->st.connect_failures++;
}

/* Connects a new connection into a reserved slot. Called without the lock. */
static nb_conn_t *conn_new(nb_pool_t *p)
{
	nb_fdwait_t *fw = NULL;
	PGconn *pg = pg_open(p, &fw, 0);
	pthread_mutex_lock(&p->mu);
	if (!pg) {
		backoff_failed(p);
		pthread_mutex_unlock(&p->mu);
		return NULL;
	}
	p->backoff_ms = 0;
	p->down_until_ms = 0;
	p->st.created++;
	pthread_mutex_unlock(&p->mu);
	nb_conn_t *c = nb_xcalloc(1, sizeof *c);
	c->pg = pg;
	c->fw = fw;
	c->pool = p;
	c->created_ms = nb_mono_ms();
	return c;
}

int nb_conn__reconnect(nb_conn_t *c)
{
	nb_pool_t *p = c->pool;
	nb_fdwait_destroy(c->fw);
	c->fw = NULL;
	nb_fdwait_t *fw = NULL;
	PGconn *pg = pg_open(p, &fw, 0);
	pthread_mutex_lock(&p->mu);
	p->st.closed++;
	if (!pg) {
		backoff_failed(p);
		pthread_mutex_unlock(&p->mu);
		c->broken = true;
		return NB_EUNAVAIL;
	}
	p->st.created++;
	p->backoff_ms = 0;
	pthread_mutex_unlock(&p->mu);
	PQfinish(c->pg);
	c->pg = pg;
	c->fw = fw;
	c->broken = false;
	c->created_ms = nb_mono_ms();
	memset(c->prepared, 0, sizeof c->prepared);
	return 0;
}

int nb_pool__wait_ms(nb_pool_t *p)
{
	return p->o.statement_timeout_ms > 0 ? p->o.statement_timeout_ms + 5000 : 600000;
}

int nb_pool__acquire_timeout_ms(nb_pool_t *p)
{
	return p->o.acquire_timeout_ms;
}

int nb_conn__wait_ms(nb_conn_t *c)
{
	return nb_pool__wait_ms(c->pool);
}

PGconn *nb_pool__open_async(nb_pool_t *p)
{
	pthread_mutex_lock(&p->mu);
	bool down = nb_mono_ms() < p->down_until_ms;
	pthread_mutex_unlock(&p->mu);
	if (down)
		return NULL;
	nb_fdwait_t *fw = NULL;
	PGconn *pg = pg_open(p, &fw, p->o.pipe_lock_timeout_ms);
	nb_fdwait_destroy(fw); /* the caller watches the socket its own way */
	pthread_mutex_lock(&p->mu);
	if (pg) {
		p->backoff_ms = 0;
		p->st.created++;
	} else {
		backoff_failed(p);
	}
	pthread_mutex_unlock(&p->mu);
	return pg;
}

static int acquire_until(nb_pool_t *p, int64_t deadline, bool shed, nb_conn_t **out);

nb_conn_t *nb_pool_acquire_virtual(nb_pool_t *p, struct nb_pipe *pipe)
{
	nb_conn_t *c = nb_xcalloc(1, sizeof *c);
	c->pool = p;
	c->pipe = pipe;
	c->is_virtual = true;
	return c;
}

void nb_conn_set_fallback(nb_conn_t *c, nb_pool_t *pool, struct nb_pipe *pipe)
{
	if (c && c->is_virtual) {
		c->fb_pool = pool;
		c->fb_pipe = pipe;
	}
}

bool nb_conn__fall_back(nb_conn_t *c, bool broken)
{
	if (!c->is_virtual || !c->fb_pool || c->excl || c->outer_tx)
		return false;
	c->pool = c->fb_pool;
	c->pipe = c->fb_pipe;
	c->fb_pool = NULL;
	c->fb_pipe = NULL;
	nb_replica_fallback(broken);
	return true;
}

struct nb_pipe *nb_conn__pipe(nb_conn_t *c)
{
	return c->is_virtual && !c->excl ? c->pipe : NULL;
}

void nb_conn_set_outer_tx(nb_conn_t *c, bool on)
{
	if (c) {
		c->outer_tx = on;
		c->inner_depth = 0;
	}
}

bool nb_conn_outer_tx(const nb_conn_t *c)
{
	return c && c->outer_tx;
}

int nb_conn__inner_depth(nb_conn_t *c, int delta)
{
	c->inner_depth += delta;
	return c->inner_depth;
}

void nb_conn_set_shed(nb_conn_t *c, bool on)
{
	if (c)
		c->no_shed = !on;
}

bool nb_conn__is_virtual(nb_conn_t *c)
{
	return c->is_virtual;
}

nb_conn_t *nb_conn__real(nb_conn_t *c)
{
	return c->is_virtual ? c->excl : c;
}

int nb_conn__begin_exclusive(nb_conn_t *c)
{
	if (!c->is_virtual || c->excl)
		return 0;
	int64_t until = nb_mono_ms() + c->pool->o.acquire_timeout_ms;
	if (c->deadline_ms > 0 && c->deadline_ms < until)
		until = c->deadline_ms; /* never wait past the request's deadline */
	int rc = acquire_until(c->pool, until, c->deadline_ms > 0 && !c->no_shed, &c->excl);
	if (rc == 0)
		c->excl->deadline_ms = c->deadline_ms;
	return rc;
}

void nb_conn__end_exclusive(nb_conn_t *c)
{
	if (!c->is_virtual || !c->excl)
		return;
	c->excl->deadline_ms = 0; /* the clean-up below must not be cut short */
	nb_pool_release(c->pool, c->excl);
	c->excl = NULL;
}

/*
 * Flushes and collects results until `until` (monotonic ms). 0 with *last,
 * NB_ETIMEOUT when time ran out (nothing marked: the caller decides),
 * NB_EUNAVAIL when the connection failed.
 */
static int await_until(nb_conn_t *c, PGresult **last, int64_t until)
{
	PGconn *pg = c->pg;
	for (;;) {
		int f = PQflush(pg);
		if (f < 0)
			return NB_EUNAVAIL;
		if (f == 0)
			break;
		int left = (int)(until - nb_mono_ms());
		if (left <= 0 || nb_fdwait_wait(c->fw, NB_WAIT_READ | NB_WAIT_WRITE, left) < 0)
			return NB_ETIMEOUT;
		if (!PQconsumeInput(pg))
			return NB_EUNAVAIL;
	}
	for (;;) {
		while (!PQisBusy(pg)) {
			PGresult *r = PQgetResult(pg);
			if (!r)
				return *last ? 0 : NB_EUNAVAIL;
			PQclear(*last);
			*last = r;
		}
		int left = (int)(until - nb_mono_ms());
		if (left <= 0 || nb_fdwait_wait(c->fw, NB_WAIT_READ, left) < 0)
			return NB_ETIMEOUT;
		if (!PQconsumeInput(pg))
			return NB_EUNAVAIL;
	}
}

static void cancel_run(void *arg)
{
	PGcancel *cn = arg;
	char why[256];
	if (!PQcancel(cn, why, sizeof why)) {
		why[strcspn(why, "\n")] = '\0';
		nb_warn("could not cancel a statement at its request's deadline: %s", why);
	}
	PQfreeCancel(cn);
}

/* Asks the server to cancel what c runs; PQcancel blocks (a new connection),
 * so on a loop it runs on the pool's cancel threads while this coroutine yields. */
static void cancel_statement(nb_conn_t *c)
{
	nb_pool_t *p = c->pool;
	PGcancel *cn = PQgetCancel(c->pg);
	if (!cn)
		return;
	pthread_mutex_lock(&p->mu);
	if (!p->cancel_tp)
		p->cancel_tp = nb_tpool_create("pg-cancel", 2);
	p->st.cancels++;
	nb_tpool_t *tp = p->cancel_tp;
	pthread_mutex_unlock(&p->mu);
	nb_sched_offload(tp, cancel_run, cn);
}

int nb_conn__await(nb_conn_t *c, PGresult **last, int timeout_ms)
{
	*last = NULL;
	int64_t until = nb_mono_ms() + timeout_ms;
	bool by_deadline = c->deadline_ms > 0 && c->deadline_ms < until;
	if (by_deadline)
		until = c->deadline_ms;
	int rc = await_until(c, last, until);
	if (rc == NB_ETIMEOUT && by_deadline) {
		/* The request's deadline: cancel the statement and collect its
		 * (error) result, so the connection goes back to the pool clean. */
		cancel_statement(c);
		rc = await_until(c, last, nb_mono_ms() + CANCEL_GRACE_MS);
	}
	if (rc == 0)
		return 0;
	PQclear(*last);
	*last = NULL;
	c->broken = true;
	return NB_EUNAVAIL;
}

void nb_conn_set_deadline(nb_conn_t *c, int64_t deadline_mono_ms)
{
	if (!c)
		return;
	c->deadline_ms = deadline_mono_ms > 0 ? deadline_mono_ms : 0;
	if (c->is_virtual && c->excl)
		c->excl->deadline_ms = c->deadline_ms;
}

int64_t nb_conn__deadline(nb_conn_t *c)
{
	return c->deadline_ms;
}

bool nb_conn__expired(nb_conn_t *c)
{
	return c->deadline_ms > 0 && nb_mono_ms() >= c->deadline_ms;
}

bool nb_conn_is_broken(nb_conn_t *c)
{
	if (c && c->is_virtual)
		c = c->excl;
	return c && (c->broken || !c->pg || PQstatus(c->pg) != CONNECTION_OK);
}

/* A parameterless command in either mode; NULL when the connection failed. */
static PGresult *simple_query(nb_conn_t *c, const char *sql)
{
	if (!c->pool->o.async)
		return PQexec(c->pg, sql);
	PGresult *r = NULL;
	if (!PQsendQuery(c->pg, sql) || nb_conn__await(c, &r, nb_conn__wait_ms(c)) < 0)
		return NULL;
	return r;
}

bool nb_conn__async(nb_conn_t *c)
{
	return c->pool->o.async;
}

/*
 * Is an idle connection still usable? First without a round trip: an idle
 * connection's socket must be silent; pending bytes mean an error message
 * (a terminated backend) or EOF. Then, if it sat idle long, a real ping.
 */
static bool conn_healthy(nb_pool_t *p, nb_conn_t *c, int64_t now)
{
	if (PQstatus(c->pg) != CONNECTION_OK)
		return false;
	struct pollfd pfd = {.fd = PQsocket(c->pg), .events = POLLIN};
	if (pfd.fd < 0)
		return false;
	/* An idle session receives nothing (we never LISTEN on pooled
	 * connections): anything readable is a FATAL message or EOF. */
	if (poll(&pfd, 1, 0) != 0)
		return false;
	if (now - c->released_ms >= p->o.preping_idle_ms) {
		PGresult *r = simple_query(c, "");
		bool ok = r && PQresultStatus(r) == PGRES_EMPTY_QUERY;
		PQclear(r);
		if (!ok)
			return false;
	}
	return PQtransactionStatus(c->pg) == PQTRANS_IDLE;
}

static int64_t deadline_after(int timeout_ms)
{
	return nb_mono_ms() + timeout_ms;
}

static void timespec_at(int64_t mono_ms, struct timespec *ts)
{
	ts->tv_sec = mono_ms / 1000;
	ts->tv_nsec = (mono_ms % 1000) * 1000000L;
}

/* Unlinks w from the wait queue if it is still there. Lock held. */
static void unqueue_locked(nb_pool_t *p, waiter_t *w)
{
	waiter_t **pp = &p->wq_head;
	while (*pp && *pp != w)
		pp = &(*pp)->next;
	if (*pp)
		*pp = w->next;
	p->wq_tail = NULL;
	for (waiter_t *q = p->wq_head; q; q = q->next)
		p->wq_tail = q;
}

/*
 * True when a coroutine queueing now behind the `ahead` waiters would not
 * have its connection and its statement done by `deadline`: the predicted
 * wait is (ahead + 1) holds spread over the connections in use, plus one hold
 * for its own work. No sample yet: never. Lock held.
 */
static bool would_miss_locked(nb_pool_t *p, int ahead, int64_t deadline)
{
	if (p->hold_ewma_us <= 0)
		return false;
	int busy = p->total - p->nidle;
	if (busy < 1)
		busy = 1;
	int64_t need_us = (int64_t)(ahead + 1) * p->hold_ewma_us / busy + p->hold_ewma_us;
	return need_us > (deadline - nb_mono_ms()) * 1000;
}

/*
 * Takes an idle connection, or reserves a slot for a new one (*reserved), or
 * waits. Returns 0 with *c or *reserved set, NB_EUNAVAIL on timeout or
 * while the database is known to be down, or when `shed` allows refusing a
 * wait that would outlast the deadline (*was_shed set). Called with the lock
 * held.
 */
static int take_locked(nb_pool_t *p, int64_t deadline, bool shed, nb_conn_t **c, bool *reserved, bool *was_shed)
{
	bool first = true;
	for (;;) {
		if (p->idle) {
			*c = p->idle;
			p->idle = (*c)->next;
			p->nidle--;
			return 0;
		}
		/* a newcomer does not take a freed slot ahead of coroutines already waiting for it */
		bool behind = p->o.async && first && p->wq_head;
		if (!behind && p->total < p->o.size + p->o.overflow) {
			if (nb_mono_ms() < p->down_until_ms)
				return NB_EUNAVAIL;
			p->total++;
			*reserved = true;
			return 0;
		}
		if (nb_mono_ms() >= deadline)
			return NB_EUNAVAIL;
		if (p->o.async) {
			if (first && shed && would_miss_locked(p, p->waiting, deadline)) {
				*was_shed = true;
				return NB_EUNAVAIL;
			}
			/* Coroutines wait in arrival order; one that was woken and
			 * lost its slot keeps its place at the head. */
			waiter_t w;
			nb_wait_init(&w.w);
			w.given = NULL;
			w.next = NULL;
			if (first || !p->wq_head) {
				if (p->wq_tail)
					p->wq_tail->next = &w;
				else
					p->wq_head = &w;
				p->wq_tail = &w;
			} else {
				w.next = p->wq_head;
				p->wq_head = &w;
			}
			first = false;
			p->waiting++;
			pthread_mutex_unlock(&p->mu);
			int64_t left = deadline - nb_mono_ms();
			int rc = nb_wait_park(&w.w, left > 0 ? (int)left : 0);
			pthread_mutex_lock(&p->mu);
			p->waiting--;
			if (w.given) { /* handed over by release (even if the timer fired meanwhile) */
				*c = w.given;
				return 0;
			}
			if (rc < 0) {
				unqueue_locked(p, &w);
				if (!p->idle && p->total >= p->o.size + p->o.overflow)
					return NB_EUNAVAIL;
			}
			continue;
		}
		first = false;
		struct timespec ts;
		timespec_at(deadline, &ts);
		p->waiting++;
		int rc = pthread_cond_timedwait(&p->cv, &p->mu, &ts);
		p->waiting--;
		if (rc == ETIMEDOUT && !p->idle && p->total >= p->o.size + p->o.overflow)
			return NB_EUNAVAIL;
	}
}

/* Drops a slot (a connection that was closed or never opened). */
/* Wakes one waiter: a thread on the condition variable, or the first parked coroutine. Lock held. */
static void wake_one_locked(nb_pool_t *p)
{
	if (p->o.async) {
		waiter_t *w = p->wq_head;
		if (w) {
			p->wq_head = w->next;
			if (!p->wq_head)
				p->wq_tail = NULL;
			nb_wait_signal(&w->w);
		}
		return;
	}
	pthread_cond_signal(&p->cv);
}

static void slot_free(nb_pool_t *p)
{
	pthread_mutex_lock(&p->mu);
	p->total--;
	p->st.closed++;
	wake_one_locked(p);
	pthread_mutex_unlock(&p->mu);
}

static int acquire_until(nb_pool_t *p, int64_t deadline, bool shed, nb_conn_t **out)
{
	int64_t t0 = nb_mono_us();
	*out = NULL;
	for (int tries = 0; tries < 4; tries++) {
		nb_conn_t *c = NULL;
		bool reserved = false, was_shed = false;
		pthread_mutex_lock(&p->mu);
		int rc = take_locked(p, deadline, shed && tries == 0, &c, &reserved, &was_shed);
		if (rc < 0) {
			if (was_shed)
				p->st.shed++;
			else
				p->st.timeouts++;
			p->st.wait_us_total += (uint64_t)(nb_mono_us() - t0);
			nb_histo_observe(&p->wait_hist, nb_mono_us() - t0);
			pthread_mutex_unlock(&p->mu);
			return rc;
		}
		pthread_mutex_unlock(&p->mu);

		if (reserved) {
			c = conn_new(p);
			if (!c) {
				pthread_mutex_lock(&p->mu);
				p->total--;
				p->st.timeouts++;
				wake_one_locked(p);
				pthread_mutex_unlock(&p->mu);
				return NB_EUNAVAIL;
			}
		} else {
			int64_t now = nb_mono_ms();
			bool expired = now - c->created_ms >= p->o.max_age_ms;
			if (expired || !conn_healthy(p, c, now)) {
				if (!expired) {
					pthread_mutex_lock(&p->mu);
					p->st.replaced_dead++;
					pthread_mutex_unlock(&p->mu);
				}
				if (nb_conn__reconnect(c) < 0) {
					conn_close(c);
					slot_free(p);
					continue; /* maybe another idle one is fine; backoff stops a storm */
				}
			}
		}
		c->uses = 0;
		c->acquired_us = nb_mono_us();
		c->deadline_ms = 0;
		c->outer_tx = false;
		c->inner_depth = 0;
		pthread_mutex_lock(&p->mu);
		p->st.acquires++;
		int64_t waited = nb_mono_us() - t0;
		p->st.wait_us_total += (uint64_t)waited;
		nb_histo_observe(&p->wait_hist, waited);
		pthread_mutex_unlock(&p->mu);
		*out = c;
		return 0;
	}
	pthread_mutex_lock(&p->mu);
	p->st.timeouts++;
	pthread_mutex_unlock(&p->mu);
	return NB_EUNAVAIL;
}

int nb_pool_acquire_timeout(nb_pool_t *p, int timeout_ms, nb_conn_t **out)
{
	return acquire_until(p, deadline_after(timeout_ms), false, out);
}

int nb_pool_acquire_by(nb_pool_t *p, int64_t deadline_mono_ms, bool shed, nb_conn_t **out)
{
	int64_t until = deadline_after(p->o.acquire_timeout_ms);
	if (deadline_mono_ms > 0 && deadline_mono_ms < until)
		until = deadline_mono_ms;
	int rc = acquire_until(p, until, shed && deadline_mono_ms > 0, out);
	if (rc == 0)
		nb_conn_set_deadline(*out, deadline_mono_ms);
	return rc;
}

int nb_pool_acquire(nb_pool_t *p, nb_conn_t **out)
{
	return nb_pool_acquire_timeout(p, p->o.acquire_timeout_ms, out);
}

void nb_pool_release(nb_pool_t *p, nb_conn_t *c)
{
	if (!c)
		return;
	if (c->is_virtual) {
		nb_conn__end_exclusive(c); /* rolls back a transaction left open */
		free(c);
		return;
	}
	c->deadline_ms = 0;
	if (!c->broken && PQstatus(c->pg) == CONNECTION_OK &&
	    PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
		/* A handler left a transaction open (an error path): roll it back. */
		PGresult *r = simple_query(c, "ROLLBACK");
		if (!r || PQresultStatus(r) != PGRES_COMMAND_OK)
			c->broken = true;
		PQclear(r);
	}
	int64_t now = nb_mono_ms();
	if (c->broken || PQstatus(c->pg) != CONNECTION_OK || now - c->created_ms >= p->o.max_age_ms) {
		conn_close(c);
		slot_free(p);
		nb_pool_reap(p);
		return;
	}
	c->released_ms = now;
	int64_t held_us = c->acquired_us > 0 ? nb_mono_us() - c->acquired_us : -1;
	pthread_mutex_lock(&p->mu);
	if (held_us >= 0) /* moving average over about the last 8 holds */
		p->hold_ewma_us = p->hold_ewma_us <= 0 ? held_us : p->hold_ewma_us + (held_us - p->hold_ewma_us) / 8;
	if (p->o.async && p->wq_head) { /* straight to the longest waiter: no newcomer takes it first */
		waiter_t *w = p->wq_head;
		p->wq_head = w->next;
		if (!p->wq_head)
			p->wq_tail = NULL;
		w->given = c;
		nb_wait_signal(&w->w);
		pthread_mutex_unlock(&p->mu);
		return;
	}
	c->next = p->idle;
	p->idle = c;
	p->nidle++;
	wake_one_locked(p);
	pthread_mutex_unlock(&p->mu);
	nb_pool_reap(p);
}

/*
 * Closes surplus connections (beyond `size`) idle for overflow_idle_ms.
 * The idle stack is LIFO, so the longest idle ones sit at its bottom.
 */
void nb_pool_reap(nb_pool_t *p)
{
	nb_conn_t *victims = NULL;
	int64_t now = nb_mono_ms();
	pthread_mutex_lock(&p->mu);
	while (p->total > p->o.size && p->nidle > 0 && p->waiting == 0) {
		nb_conn_t **pp = &p->idle;
		while ((*pp)->next)
			pp = &(*pp)->next;
		nb_conn_t *last = *pp;
		if (now - last->released_ms < p->o.overflow_idle_ms)
			break;
		*pp = NULL;
		p->nidle--;
		p->total--;
		p->st.closed++;
		last->next = victims;
		victims = last;
	}
	pthread_mutex_unlock(&p->mu);
	while (victims) {
		nb_conn_t *next = victims->next;
		conn_close(victims);
		victims = next;
	}
}

void nb_pool_wait_histo(nb_pool_t *p, nb_histo_snap_t *s)
{
	nb_histo_snap_add(s, &p->wait_hist);
}

void nb_pool_stats(nb_pool_t *p, nb_pool_stats_t *s)
{
	pthread_mutex_lock(&p->mu);
	*s = p->st;
	s->idle = p->nidle;
	s->total = p->total;
	s->in_use = p->total - p->nidle;
	s->waiting = p->waiting;
	pthread_mutex_unlock(&p->mu);
}

PGconn *nb_conn_pg(nb_conn_t *c)
{
	if (c->is_virtual)
		return c->excl ? c->excl->pg : NULL;
	return c->pg;
}

void nb_conn_mark_broken(nb_conn_t *c)
{
	if (c->is_virtual)
		c = c->excl;
	if (c)
		c->broken = true;
}

bool nb_conn__prepared(nb_conn_t *c, int id)
{
	return id < NB_MAX_STMTS && (c->prepared[id / 8] & (1u << (id % 8)));
}

void nb_conn__set_prepared(nb_conn_t *c, int id)
{
	if (id < NB_MAX_STMTS)
		c->prepared[id / 8] |= (unsigned char)(1u << (id % 8));
}

int nb_conn__uses(nb_conn_t *c)
{
	return c->uses;
}

int nb_conn_statements(nb_conn_t *c)
{
	return c ? c->uses : 0;
}

void nb_conn__count_use(nb_conn_t *c)
{
	c->uses++;
}
