/*
 * pool.c — PostgreSQL connection pool (see pool.h for the design).
 *
 * Locking: one mutex guards the idle stack and the counters. Connecting,
 * pinging and closing happen outside it: a slot is reserved (total++) first
 * so that concurrent callers never exceed size + overflow.
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
#include "core/sched.h"
#include "core/timeutil.h"

#define NB_MAX_STMTS 512
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

struct nb_conn {
	PGconn *pg;
	nb_pool_t *pool;
	struct nb_conn *next; /* idle stack link */
	int64_t created_ms;   /* monotonic */
	int64_t released_ms;  /* monotonic, when it last went idle */
	int uses;             /* statements since acquire */
	bool broken;
	nb_fdwait_t *fw; /* async pools: watches the socket */
	bool is_virtual;          /* a request's handle: pipe + exclusive connection */
	struct nb_pipe *pipe;
	struct nb_conn *excl;     /* virtual: the transaction's real connection */
	unsigned char prepared[NB_MAX_STMTS / 8];
};

struct nb_pool {
	nb_pool_opts_t o;
	char *conninfo;
	char *options; /* "-c statement_timeout=…" */
	char timeout_str[16];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	nb_conn_t *idle; /* LIFO stack */
	int nidle;
	int total;   /* open or being opened */
	int waiting;
	nb_wait_t *wq_head, *wq_tail; /* async pools: coroutines waiting for a connection */
	int64_t down_until_ms; /* connect backoff window (monotonic) */
	int backoff_ms;
	nb_pool_stats_t st;
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
}

nb_pool_t *nb_pool_create(const nb_pool_opts_t *o)
{
	nb_pool_t *p = nb_xcalloc(1, sizeof *p);
	p->o = *o;
	p->conninfo = nb_xstrdup(o->conninfo ? o->conninfo : "");
	p->o.conninfo = p->conninfo;
	if (p->o.size < 1)
		p->o.size = 1;
	p->options = nb_xasprintf("-c statement_timeout=%d -c idle_in_transaction_session_timeout=%d",
				  o->statement_timeout_ms, o->idle_in_tx_timeout_ms);
	snprintf(p->timeout_str, sizeof p->timeout_str, "%d", o->connect_timeout_s > 0 ? o->connect_timeout_s : 5);
	pthread_mutex_init(&p->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cv, &ca);
	pthread_condattr_destroy(&ca);
	return p;
}

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
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p->conninfo);
	free(p->options);
	free(p);
}

static void notice_quiet(void *arg, const char *msg)
{
	(void)arg;
	nb_debug("postgres notice: %s", msg);
}

/* Opens a libpq connection; NULL (and a log line) on failure. */
static PGconn *pg_open(nb_pool_t *p)
{
	const char *keys[] = {"dbname", "application_name", "options", "connect_timeout", NULL};
	const char *vals[] = {p->conninfo, p->o.application_name ? p->o.application_name : "notebookd",
			      p->options, p->timeout_str, NULL};
	PGconn *pg = PQconnectdbParams(keys, vals, 1);
	if (!pg || PQstatus(pg) != CONNECTION_OK) {
		const char *m = pg ? PQerrorMessage(pg) : "out of memory";
		char line[256];
		snprintf(line, sizeof line, "%s", m);
		line[strcspn(line, "\n")] = '\0';
		nb_warn("could not connect to database: %s", line);
		PQfinish(pg);
		return NULL;
	}
	PQsetNoticeProcessor(pg, notice_quiet, NULL);
	return pg;
}

/* Async connect: PQconnectStart/PQconnectPoll, yielding on the socket. */
static PGconn *pg_open_async(nb_pool_t *p, nb_fdwait_t **fw_out)
{
	const char *keys[] = {"dbname", "application_name", "options", "connect_timeout", NULL};
	const char *vals[] = {p->conninfo, p->o.application_name ? p->o.application_name : "notebookd",
			      p->options, p->timeout_str, NULL};
	*fw_out = NULL;
	PGconn *pg = PQconnectStartParams(keys, vals, 1);
	if (!pg || PQstatus(pg) == CONNECTION_BAD) {
		nb_warn("could not connect to database: %s", pg ? PQerrorMessage(pg) : "out of memory");
		PQfinish(pg);
		return NULL;
	}
	int64_t deadline = nb_mono_ms() + (int64_t)(p->o.connect_timeout_s > 0 ? p->o.connect_timeout_s : 5) * 1000;
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	nb_fdwait_t *fw = NULL;
	int fd = -1;
	while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
		if (PQsocket(pg) != fd) {
			nb_fdwait_destroy(fw);
			fd = PQsocket(pg);
			fw = nb_fdwait_create(fd);
		}
		int left = (int)(deadline - nb_mono_ms());
		if (!fw || left <= 0 ||
		    nb_fdwait_wait(fw, st == PGRES_POLLING_READING ? NB_WAIT_READ : NB_WAIT_WRITE, left) < 0) {
			st = PGRES_POLLING_FAILED;
			break;
		}
		st = PQconnectPoll(pg);
	}
	if (st != PGRES_POLLING_OK || PQstatus(pg) != CONNECTION_OK) {
		char line[256];
		snprintf(line, sizeof line, "%s", PQerrorMessage(pg)[0] ? PQerrorMessage(pg) : "timeout");
		line[strcspn(line, "\n")] = '\0';
		nb_warn("could not connect to database: %s", line);
		nb_fdwait_destroy(fw);
		PQfinish(pg);
		return NULL;
	}
	PQsetnonblocking(pg, 1);
	PQsetNoticeProcessor(pg, notice_quiet, NULL);
	*fw_out = fw;
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
	PGconn *pg = p->o.async ? pg_open_async(p, &fw) : pg_open(p);
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
	PGconn *pg = p->o.async ? pg_open_async(p, &fw) : pg_open(p);
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
	PGconn *pg = pg_open_async(p, &fw);
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

nb_conn_t *nb_pool_acquire_virtual(nb_pool_t *p, struct nb_pipe *pipe)
{
	nb_conn_t *c = nb_xcalloc(1, sizeof *c);
	c->pool = p;
	c->pipe = pipe;
	c->is_virtual = true;
	return c;
}

struct nb_pipe *nb_conn__pipe(nb_conn_t *c)
{
	return c->is_virtual && !c->excl ? c->pipe : NULL;
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
	return nb_pool_acquire(c->pool, &c->excl);
}

void nb_conn__end_exclusive(nb_conn_t *c)
{
	if (!c->is_virtual || !c->excl)
		return;
	nb_pool_release(c->pool, c->excl);
	c->excl = NULL;
}

int nb_conn__await(nb_conn_t *c, PGresult **last, int timeout_ms)
{
	PGconn *pg = c->pg;
	int64_t deadline = nb_mono_ms() + timeout_ms;
	*last = NULL;
	for (;;) {
		int f = PQflush(pg);
		if (f < 0)
			goto broken;
		if (f == 0)
			break;
		int left = (int)(deadline - nb_mono_ms());
		if (left <= 0 || nb_fdwait_wait(c->fw, NB_WAIT_READ | NB_WAIT_WRITE, left) < 0)
			goto broken;
		if (!PQconsumeInput(pg))
			goto broken;
	}
	for (;;) {
		while (!PQisBusy(pg)) {
			PGresult *r = PQgetResult(pg);
			if (!r)
				return *last ? 0 : NB_EUNAVAIL;
			PQclear(*last);
			*last = r;
		}
		int left = (int)(deadline - nb_mono_ms());
		if (left <= 0 || nb_fdwait_wait(c->fw, NB_WAIT_READ, left) < 0 || !PQconsumeInput(pg))
			goto broken;
	}
broken:
	PQclear(*last);
	*last = NULL;
	c->broken = true;
	return NB_EUNAVAIL;
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

/*
 * Takes an idle connection, or reserves a slot for a new one (*reserved), or
 * waits. Returns 0 with *c or *reserved set, NB_EUNAVAIL on timeout or
 * while the database is known to be down. Called with the lock held.
 */
static int take_locked(nb_pool_t *p, int64_t deadline, nb_conn_t **c, bool *reserved)
{
	for (;;) {
		if (p->idle) {
			*c = p->idle;
			p->idle = (*c)->next;
			p->nidle--;
			return 0;
		}
		if (p->total < p->o.size + p->o.overflow) {
			if (nb_mono_ms() < p->down_until_ms)
				return NB_EUNAVAIL;
			p->total++;
			*reserved = true;
			return 0;
		}
		if (nb_mono_ms() >= deadline)
			return NB_EUNAVAIL;
		if (p->o.async) {
			/* A coroutine waits in FIFO order; release signals the first. */
			nb_wait_t w;
			nb_wait_init(&w);
			w.next = NULL;
			if (p->wq_tail)
				p->wq_tail->next = &w;
			else
				p->wq_head = &w;
			p->wq_tail = &w;
			p->waiting++;
			pthread_mutex_unlock(&p->mu);
			int rc = nb_wait_park(&w, (int)(deadline - nb_mono_ms()));
			pthread_mutex_lock(&p->mu);
			p->waiting--;
			if (rc < 0) { /* timed out: unlink ourselves */
				nb_wait_t **pp = &p->wq_head;
				while (*pp && *pp != &w)
					pp = &(*pp)->next;
				if (*pp)
					*pp = w.next;
				p->wq_tail = NULL;
				for (nb_wait_t *q = p->wq_head; q; q = q->next)
					p->wq_tail = q;
				if (!p->idle && p->total >= p->o.size + p->o.overflow)
					return NB_EUNAVAIL;
			}
			continue;
		}
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
		nb_wait_t *w = p->wq_head;
		if (w) {
			p->wq_head = w->next;
			if (!p->wq_head)
				p->wq_tail = NULL;
			nb_wait_signal(w);
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

int nb_pool_acquire_timeout(nb_pool_t *p, int timeout_ms, nb_conn_t **out)
{
	int64_t t0 = nb_mono_us();
	int64_t deadline = deadline_after(timeout_ms);
	*out = NULL;
	for (int tries = 0; tries < 4; tries++) {
		nb_conn_t *c = NULL;
		bool reserved = false;
		pthread_mutex_lock(&p->mu);
		int rc = take_locked(p, deadline, &c, &reserved);
		if (rc < 0) {
			p->st.timeouts++;
			p->st.wait_us_total += (uint64_t)(nb_mono_us() - t0);
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
		pthread_mutex_lock(&p->mu);
		p->st.acquires++;
		p->st.wait_us_total += (uint64_t)(nb_mono_us() - t0);
		pthread_mutex_unlock(&p->mu);
		*out = c;
		return 0;
	}
	pthread_mutex_lock(&p->mu);
	p->st.timeouts++;
	pthread_mutex_unlock(&p->mu);
	return NB_EUNAVAIL;
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
	pthread_mutex_lock(&p->mu);
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

void nb_conn__count_use(nb_conn_t *c)
{
	c->uses++;
}
