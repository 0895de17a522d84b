/*
 * db.c — prepared statements and parameters (see db.h).
 *
 * On a request's virtual handle a statement goes through the pipeline when
 * it can (not NB_STMT_SLOW, no transaction open, a pipelined connection not
 * held up), else on a connection of its own; one that failed on the pipeline
 * waiting for a lock (55P03, the pipelines' short lock_timeout) runs again
 * once on a connection of its own, where it may wait up to its deadline.
 */
#include "db/db.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "db/pipe.h"
#include "db/pool_internal.h"

/* How long a statement that waited for a lock on a pipeline keeps off them. */
#define PIPE_HOLDOFF_MS 5000

static atomic_int next_stmt_id = 1;
static _Thread_local long tl_stmt_count;
static _Thread_local char tl_sqlstate[6];

void nb_params_init(nb_params_t *p)
{
	p->n = 0;
}

static int add(nb_params_t *p)
{
	if (p->n >= NB_MAX_PARAMS) {
		nb_error("too many statement parameters");
		abort();
	}
	return p->n++;
}

void nb_p_text(nb_params_t *p, const char *s)
{
	int i = add(p);
	p->v[i] = s;
	p->len[i] = 0;
	p->fmt[i] = 0;
}

void nb_p_int(nb_params_t *p, int64_t v)
{
	int i = add(p);
	snprintf(p->num[i], sizeof p->num[i], "%" PRId64, v);
	p->v[i] = p->num[i];
	p->len[i] = 0;
	p->fmt[i] = 0;
}

void nb_p_bool(nb_params_t *p, bool v)
{
	nb_p_text(p, v ? "t" : "f");
}

void nb_p_bytes(nb_params_t *p, const void *data, size_t n)
{
	int i = add(p);
	p->v[i] = data ? data : "";
	p->len[i] = (int)n;
	p->fmt[i] = 1;
}

void nb_p_null(nb_params_t *p)
{
	nb_p_text(p, NULL);
}

static int stmt_id(nb_stmt_t *st)
{
	int id = __atomic_load_n(&st->id, __ATOMIC_ACQUIRE);
	if (id)
		return id;
	int fresh = atomic_fetch_add(&next_stmt_id, 1);
	int expected = 0;
	if (__atomic_compare_exchange_n(&st->id, &expected, fresh, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return fresh;
	return expected;
}

/* Words that make a statement more than a read (see nb_db_sql_read_only). */
static const char *const writing_words[] = {
	"insert", "update", "delete", "merge", "truncate", "copy", "call", "do", "lock", "share", "notify",
	"listen", "unlisten", "set", "reset", "into", "nextval", "setval", "pg_notify", "set_config", "now",
	"current_timestamp", "current_time", "current_date", "localtime", "localtimestamp", "transaction_timestamp",
	"create", "drop", "alter", "grant", "revoke", "refresh", "vacuum", "analyze", "cluster", "reindex",
	"prepare", "execute", "discard", "begin", "commit", "rollback", "savepoint", "release", "declare",
};
static const char *const writing_prefixes[] = {"pg_advisory", "pg_try_advisory", "lo_", "txid_", "pg_current_xact"};

static bool writing_word(const char *w, size_t n)
{
	for (size_t i = 0; i < sizeof writing_words / sizeof *writing_words; i++)
		if (strlen(writing_words[i]) == n && !memcmp(writing_words[i], w, n))
			return true;
	for (size_t i = 0; i < sizeof writing_prefixes / sizeof *writing_prefixes; i++) {
		size_t k = strlen(writing_prefixes[i]);
		if (n >= k && !memcmp(writing_prefixes[i], w, k))
			return true;
	}
	return false;
}

bool nb_db_sql_read_only(const char *sql)
{
	char w[64];
	bool first = true;
	for (const char *s = sql; *s;) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '-' && s[1] == '-') { /* comment to the end of the line */
			s += strcspn(s, "\n");
			continue;
		}
		if (ch == '/' && s[1] == '*') {
			const char *end = strstr(s + 2, "*/");
			if (!end)
				return false;
			s = end + 2;
			continue;
		}
		if (ch == '$') {
			if (!isdigit((unsigned char)s[1]))
				return false; /* dollar quoting */
			s++; /* a parameter, $1… */
			while (isdigit((unsigned char)*s))
				s++;
			continue;
		}
		if (ch == '\'' || ch == '"') { /* a literal or a quoted name: skipped whole */
			const char *end = strchr(s + 1, (char)ch);
			if (!end)
				return false;
			s = end + 1;
			continue;
		}
		if (isalpha(ch) || ch == '_') {
			size_t n = 0;
			while (isalnum((unsigned char)*s) || *s == '_' || *s == '$') {
				if (n < sizeof w)
					w[n] = (char)tolower((unsigned char)*s);
				n++;
				s++;
			}
			if (n > sizeof w)
				n = sizeof w;
			if (first && !(n == 6 && !memcmp(w, "select", 6)) && !(n == 4 && !memcmp(w, "with", 4)))
				return false;
			first = false;
			if (writing_word(w, n))
				return false;
			continue;
		}
		s++;
	}
	return !first;
}

/* The statement's nb_db_sql_read_only, worked out once. */
static bool stmt_read_only(nb_stmt_t *st)
{
	signed char ro = __atomic_load_n(&st->read_only, __ATOMIC_RELAXED);
	if (!ro) {
		ro = nb_db_sql_read_only(st->sql) ? 1 : -1;
		__atomic_store_n(&st->read_only, ro, __ATOMIC_RELAXED);
	}
	return ro > 0;
}

static void one_line(const char *in, char *out, size_t n)
{
	snprintf(out, n, "%s", in ? in : "");
	out[strcspn(out, "\n")] = '\0';
}

/* Classifies a failed result; logs it. */
static int fail(nb_conn_t *c, PGresult *r, const char *what)
{
	PGconn *pg = nb_conn_pg(c);
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	snprintf(tl_sqlstate, sizeof tl_sqlstate, "%s", state ? state : "");
	char msg[300];
	one_line(r ? PQresultErrorMessage(r) : PQerrorMessage(pg), msg, sizeof msg);
	if (PQstatus(pg) != CONNECTION_OK) {
		nb_conn_mark_broken(c);
		nb_warn("database connection lost during %s: %s", what, msg);
		return NB_EUNAVAIL;
	}
	/* Unique violations are expected outcomes (409), not worth a warning. */
	if (strcmp(tl_sqlstate, "23505") == 0)
		nb_debug("statement %s: %s", what, msg);
	else if (strcmp(tl_sqlstate, "57014") == 0)
		nb_warn("statement %s cancelled (statement_timeout or request deadline): %s", what, msg);
	else
		nb_error("statement %s failed [%s]: %s", what, tl_sqlstate, msg);
	return strcmp(tl_sqlstate, "57014") == 0 ? NB_ETIMEOUT : NB_EDB;
}

static bool ok_status(PGresult *r)
{
	ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	return s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK;
}

/* Async connections: send, then yield until the result is in. */
static int async_prepare(nb_conn_t *c, const char *name, const char *sql)
{
	PGresult *r = NULL;
	if (!PQsendPrepare(nb_conn_pg(c), name, sql, 0, NULL) ||
	    nb_conn__await(c, &r, nb_conn__wait_ms(c)) < 0) {
		nb_conn_mark_broken(c);
		nb_warn("database connection lost while preparing a statement");
		return NB_EUNAVAIL;
	}
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		int rc = fail(c, r, name);
		PQclear(r);
		return rc;
	}
	PQclear(r);
	return 0;
}

static PGresult *async_exec_prepared(nb_conn_t *c, const char *name, const nb_params_t *p, int rfmt, int *rc)
{
	PGresult *r = NULL;
	*rc = 0;
	if (!PQsendQueryPrepared(nb_conn_pg(c), name, p ? p->n : 0, p ? p->v : NULL, p ? p->len : NULL,
				 p ? p->fmt : NULL, rfmt) ||
	    nb_conn__await(c, &r, nb_conn__wait_ms(c)) < 0) {
		nb_conn_mark_broken(c);
		nb_warn("database connection lost during %s", name);
		*rc = NB_EUNAVAIL;
		return NULL;
	}
	return r;
}

/* One attempt: prepare if needed, execute. */
static int exec_once(nb_conn_t *c, nb_stmt_t *st, int id, const nb_params_t *p, PGresult **res, int rfmt)
{
	PGconn *pg = nb_conn_pg(c);
	/* Names come from the global id, so two files may use the same variable name. */
	char name[24];
	snprintf(name, sizeof name, "nb_s%d", id);
	bool async = nb_conn__async(c);
	if (!nb_conn__prepared(c, id) && async) {
		int rc = async_prepare(c, name, st->sql);
		if (rc < 0)
			return rc;
		nb_conn__set_prepared(c, id);
	}
	if (!nb_conn__prepared(c, id)) {
		PGresult *pr = PQprepare(pg, name, st->sql, 0, NULL);
		if (!pr || PQresultStatus(pr) != PGRES_COMMAND_OK) {
			int rc = fail(c, pr, st->name);
			PQclear(pr);
			return rc;
		}
		PQclear(pr);
		nb_conn__set_prepared(c, id);
	}
	tl_stmt_count++;
	nb_conn__count_use(c);
	PGresult *r;
	if (async) {
		int rc;
		r = async_exec_prepared(c, name, p, rfmt, &rc);
		if (rc < 0)
			return rc;
	} else {
		r = PQexecPrepared(pg, name, p ? p->n : 0, p ? p->v : NULL, p ? p->len : NULL, p ? p->fmt : NULL,
				   rfmt);
	}
	if (!ok_status(r)) {
		int rc = fail(c, r, st->name);
		PQclear(r);
		return rc;
	}
	tl_sqlstate[0] = '\0';
	if (res)
		*res = r;
	else
		PQclear(r);
	return 0;
}

/* A pipelined statement's result: classify an error like fail() does. */
static int pipe_result(PGresult *r, const char *what, PGresult **res)
{
	if (ok_status(r)) {
		tl_sqlstate[0] = '\0';
		if (res)
			*res = r;
		else
			PQclear(r);
		return 0;
	}
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	snprintf(tl_sqlstate, sizeof tl_sqlstate, "%s", state ? state : "");
	char msg[300];
	one_line(r ? PQresultErrorMessage(r) : "no result", msg, sizeof msg);
	PQclear(r);
	if (strcmp(tl_sqlstate, "23505") == 0) {
		nb_debug("statement %s: %s", what, msg);
		return NB_EDB;
	}
	if (strcmp(tl_sqlstate, "57014") == 0) {
		nb_warn("statement %s cancelled (statement_timeout): %s", what, msg);
		return NB_ETIMEOUT;
	}
	if (strcmp(tl_sqlstate, NB_SQLSTATE_LOCK_NOT_AVAILABLE) == 0 || strcmp(tl_sqlstate, "26000") == 0) {
		/* the pipelines' lock_timeout: the caller runs it on a connection of its own */
		nb_debug("pipelined statement %s waited too long for a lock: %s", what, msg);
		return NB_EDB;
	}
	nb_error("statement %s failed [%s]: %s", what, tl_sqlstate, msg);
	return NB_EDB;
}

static int exec_pipe(nb_conn_t *c, struct nb_pipe *pipe, nb_stmt_t *st, const nb_params_t *p, PGresult **res,
		     int rfmt)
{
	int id = stmt_id(st);
	char name[24];
	snprintf(name, sizeof name, "nb_s%d", id);
	tl_stmt_count++;
	PGresult *r = NULL;
	int rc = nb_pipe_exec(pipe, id, name, st->sql, stmt_read_only(st), p ? p->n : 0, p ? p->v : NULL,
			      p ? p->len : NULL, p ? p->fmt : NULL, rfmt, nb_conn__deadline(c), &r);
	if (rc < 0) {
		PQclear(r);
		if (rc == NB_ETIMEOUT) {
			snprintf(tl_sqlstate, sizeof tl_sqlstate, "57014");
			nb_warn("statement %s abandoned at its request's deadline", st->name);
		}
		return rc;
	}
	return pipe_result(r, st->name, res);
}

static int exec_fmt_real(nb_conn_t *c, nb_stmt_t *st, const nb_params_t *p, PGresult **res, int rfmt);

/* A statement asked for after its request's deadline fails at once. */
static int expired(nb_conn_t *c, const char *what)
{
	if (!nb_conn__expired(c))
		return 0;
	snprintf(tl_sqlstate, sizeof tl_sqlstate, "57014");
	nb_warn("statement %s not run: its request passed its deadline", what);
	return NB_ETIMEOUT;
}

/*
 * A read-replica handle whose statement failed there outside a transaction:
 * moves it to the primary (true: run the statement again). The connection
 * lost, or a query cancelled by a conflict with recovery (40001).
 */
static bool fall_back(nb_conn_t *c, int rc)
{
	if (rc == NB_EUNAVAIL)
		return nb_conn__fall_back(c, true);
	if (rc == NB_EDB && !strcmp(tl_sqlstate, "40001"))
		return nb_conn__fall_back(c, false);
	return false;
}

/* What one attempt runs: a prepared statement (st) or SQL text (sql). */
typedef struct call {
	nb_stmt_t *st;
	const char *sql;
	const nb_params_t *p;
	PGresult **res;
	int rfmt;
} call_t;

/* One attempt; sets *outside when it failed outside a transaction, so that it may run again elsewhere. */
typedef int (*attempt_fn)(nb_conn_t *c, const call_t *a, bool *outside);

/*
 * The replica fallback, the one place for it: runs the attempt, and once
 * more when it failed outside a transaction and fall_back moved the handle
 * to the primary (which it does once: the handle then has no fallback).
 */
static int with_fallback(nb_conn_t *c, attempt_fn attempt, const call_t *a)
{
	bool outside = false;
	int rc = attempt(c, a, &outside);
	if (rc < 0 && outside && fall_back(c, rc)) {
		outside = false;
		rc = attempt(c, a, &outside);
	}
	return rc;
}

static int exec_attempt(nb_conn_t *c, const call_t *a, bool *outside)
{
	nb_stmt_t *st = a->st;
	if (a->res)
		*a->res = NULL;
	int rc = expired(c, st->name);
	if (rc < 0)
		return rc;
	if (!nb_conn__is_virtual(c))
		return exec_fmt_real(c, st, a->p, a->res, a->rfmt);
	nb_conn__count_use(c);
	struct nb_pipe *pipe = nb_conn__pipe(c);
	int64_t now = nb_mono_ms();
	if (pipe && !st->slow && now >= __atomic_load_n(&st->pipe_holdoff_until, __ATOMIC_RELAXED)) {
		rc = exec_pipe(c, pipe, st, a->p, a->res, a->rfmt);
		if (rc == NB_ETIMEOUT || (rc == NB_EDB && !strcmp(tl_sqlstate, NB_SQLSTATE_LOCK_NOT_AVAILABLE)))
			__atomic_store_n(&st->pipe_holdoff_until, nb_mono_ms() + PIPE_HOLDOFF_MS, __ATOMIC_RELAXED);
		/* 26000: sent behind its own PREPARE, which failed (a lock wait):
		 * it never ran, like the one that waited for the lock */
		bool retry = rc == NB_EDB && (!strcmp(tl_sqlstate, NB_SQLSTATE_LOCK_NOT_AVAILABLE) ||
					      !strcmp(tl_sqlstate, "26000"));
		if (rc != NB_EBUSY && !retry) {
			*outside = true; /* the pipelines run no transaction */
			return rc;
		}
		/* every pipelined connection is held up, or the statement waited
		 * for a lock: run it on a connection of its own */
	}
	bool own = nb_conn__real(c) == NULL;
	*outside = own;
	rc = nb_conn__begin_exclusive(c); /* no-op inside a transaction */
	if (rc < 0)
		return rc;
	rc = exec_fmt_real(nb_conn__real(c), st, a->p, a->res, a->rfmt);
	if (own)
		nb_conn__end_exclusive(c); /* a single statement: give the connection back */
	return rc;
}

static int exec_fmt(nb_conn_t *c, nb_stmt_t *st, const nb_params_t *p, PGresult **res, int rfmt)
{
	call_t a = {.st = st, .p = p, .res = res, .rfmt = rfmt};
	return with_fallback(c, exec_attempt, &a);
}

static int exec_fmt_real(nb_conn_t *c, nb_stmt_t *st, const nb_params_t *p, PGresult **res, int rfmt)
{
	int id = stmt_id(st);
	bool first = nb_conn__uses(c) == 0 && PQtransactionStatus(nb_conn_pg(c)) == PQTRANS_IDLE;
	int rc = exec_once(c, st, id, p, res, rfmt);
	if (rc == NB_EUNAVAIL && first && !nb_conn__expired(c)) {
		/* The connection died while idle; nothing ran. Retry on a new one. */
		if (nb_conn__reconnect(c) == 0)
			rc = exec_once(c, st, id, p, res, rfmt);
	}
	return rc;
}

int nb_db_exec(nb_conn_t *c, nb_stmt_t *st, const nb_params_t *p, PGresult **res)
{
	return exec_fmt(c, st, p, res, 0);
}

int nb_db_exec_binary(nb_conn_t *c, nb_stmt_t *st, const nb_params_t *p, PGresult **res)
{
	return exec_fmt(c, st, p, res, 1);
}

static int unprepared_attempt(nb_conn_t *c, const call_t *a, bool *outside)
{
	const char *sql = a->sql;
	const nb_params_t *p = a->p;
	PGresult **res = a->res;
	if (res)
		*res = NULL;
	int erc = expired(c, "unprepared statement");
	if (erc < 0)
		return erc;
	if (nb_conn__is_virtual(c)) {
		nb_conn__count_use(c);
		*outside = nb_conn__real(c) == NULL;
		int rc = nb_conn__begin_exclusive(c); /* cursors and the like need a session */
		if (rc < 0)
			return rc;
		*outside = false; /* the session stays taken: what runs now runs there */
		c = nb_conn__real(c);
	}
	PGconn *pg = nb_conn_pg(c);
	tl_stmt_count++;
	nb_conn__count_use(c);
	PGresult *r = NULL;
	int n = p ? p->n : 0;
	if (nb_conn__async(c)) {
		if (!PQsendQueryParams(pg, sql, n, NULL, p ? p->v : NULL, p ? p->len : NULL, p ? p->fmt : NULL, 0) ||
		    nb_conn__await(c, &r, nb_conn__wait_ms(c)) < 0) {
			nb_conn_mark_broken(c);
			return NB_EUNAVAIL;
		}
	} else {
		r = PQexecParams(pg, sql, n, NULL, p ? p->v : NULL, p ? p->len : NULL, p ? p->fmt : NULL, 0);
	}
	if (!ok_status(r)) {
		int rc = fail(c, r, "unprepared statement");
		PQclear(r);
		return rc;
	}
	if (res)
		*res = r;
	else
		PQclear(r);
	return 0;
}

int nb_db_exec_unprepared(nb_conn_t *c, const char *sql, const nb_params_t *p, PGresult **res)
{
	call_t a = {.sql = sql, .p = p, .res = res};
	return with_fallback(c, unprepared_attempt, &a);
}

static int command_real(nb_conn_t *c, const char *sql);

/* Virtual handles: BEGIN takes a connection for the transaction, COMMIT and ROLLBACK give it back. */
static int command_virtual(nb_conn_t *c, const call_t *a, bool *outside)
{
	const char *sql = a->sql;
	nb_conn__count_use(c);
	bool ends = !strncmp(sql, "COMMIT", 6) || (!strncmp(sql, "ROLLBACK", 8) && strncmp(sql, "ROLLBACK TO", 11));
	if (ends && !nb_conn__real(c))
		return 0; /* no transaction open */
	bool begins = !nb_conn__real(c) && !strncmp(sql, "BEGIN", 5);
	int rc = nb_conn__begin_exclusive(c);
	if (rc == 0)
		rc = command_real(nb_conn__real(c), sql);
	if (rc < 0 && begins) {
		/* a transaction that could not start on a read replica starts on the primary */
		nb_conn__end_exclusive(c);
		*outside = true;
	}
	if (ends)
		nb_conn__end_exclusive(c);
	return rc;
}

int nb_db_command(nb_conn_t *c, const char *sql)
{
	/* ROLLBACK is clean-up: it runs whatever the deadline */
	bool cleanup = !strncmp(sql, "ROLLBACK", 8);
	int64_t deadline = nb_conn__deadline(c);
	if (cleanup)
		nb_conn_set_deadline(c, 0);
	else if (expired(c, sql) < 0)
		return NB_ETIMEOUT;
	call_t a = {.sql = sql};
	int rc = nb_conn__is_virtual(c) ? with_fallback(c, command_virtual, &a) : command_real(c, sql);
	if (cleanup)
		nb_conn_set_deadline(c, deadline);
	return rc;
}

static int command_real(nb_conn_t *c, const char *sql)
{
	bool first = nb_conn__uses(c) == 0 && PQtransactionStatus(nb_conn_pg(c)) == PQTRANS_IDLE;
	for (int attempt = 0; attempt < 2; attempt++) {
		tl_stmt_count++;
		nb_conn__count_use(c);
		PGresult *r = NULL;
		if (nb_conn__async(c)) {
			if (!PQsendQuery(nb_conn_pg(c), sql) || nb_conn__await(c, &r, nb_conn__wait_ms(c)) < 0) {
				nb_conn_mark_broken(c);
				if (!first || attempt > 0 || nb_conn__reconnect(c) < 0)
					return NB_EUNAVAIL;
				continue;
			}
		} else {
			r = PQexec(nb_conn_pg(c), sql);
		}
		if (ok_status(r)) {
			PQclear(r);
			return 0;
		}
		int rc = fail(c, r, sql);
		PQclear(r);
		if (rc != NB_EUNAVAIL || !first || attempt > 0 || nb_conn__reconnect(c) < 0)
			return rc;
	}
	return NB_EUNAVAIL;
}

/* Inside a transaction the holder opened (nb_conn_set_outer_tx), a handler's
 * transaction is a savepoint of it. */
int nb_db_begin(nb_conn_t *c)
{
	if (nb_conn_outer_tx(c)) {
		nb_conn__inner_depth(c, 1);
		return nb_db_command(c, "SAVEPOINT nb_inner");
	}
	return nb_db_command(c, "BEGIN");
}

int nb_db_commit(nb_conn_t *c)
{
	if (nb_conn_outer_tx(c)) {
		if (nb_conn__inner_depth(c, 0) <= 0)
			return 0;
		nb_conn__inner_depth(c, -1);
		return nb_db_command(c, "RELEASE SAVEPOINT nb_inner");
	}
	return nb_db_command(c, "COMMIT");
}

void nb_db_rollback(nb_conn_t *c)
{
	if (nb_conn_outer_tx(c)) {
		if (nb_conn__inner_depth(c, 0) > 0) {
			nb_conn__inner_depth(c, -1);
			if (nb_db_command(c, "ROLLBACK TO SAVEPOINT nb_inner") == 0)
				nb_db_command(c, "RELEASE SAVEPOINT nb_inner");
		}
		return;
	}
	if (nb_conn__is_virtual(c)) {
		if (nb_conn__real(c))
			nb_db_command(c, "ROLLBACK");
		return;
	}
	if (PQstatus(nb_conn_pg(c)) == CONNECTION_OK && PQtransactionStatus(nb_conn_pg(c)) != PQTRANS_IDLE)
		nb_db_command(c, "ROLLBACK");
}

const char *nb_db_sqlstate(void)
{
	return tl_sqlstate;
}

bool nb_db_unique_violation(void)
{
	return strcmp(tl_sqlstate, "23505") == 0;
}

long nb_db_stmt_count(void)
{
	return tl_stmt_count;
}

void nb_db_stmt_count_reset(void)
{
	tl_stmt_count = 0;
}

int nb_db_one_json(nb_conn_t *c, nb_stmt_t *st, const nb_params_t *p, json_t **out)
{
	PGresult *r = NULL;
	*out = NULL;
	int rc = nb_db_exec(c, st, p, &r);
	if (rc < 0)
		return rc;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return NB_ENOTFOUND;
	}
	*out = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
	PQclear(r);
	return *out ? 0 : NB_EINTERNAL;
}

const char *nb_db_get(const PGresult *r, int row, int col)
{
	if (PQgetisnull(r, row, col))
		return NULL;
	return PQgetvalue(r, row, col);
}

int64_t nb_db_get_int(const PGresult *r, int row, int col)
{
	if (PQgetisnull(r, row, col))
		return 0;
	return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

bool nb_db_get_bool(const PGresult *r, int row, int col)
{
	return !PQgetisnull(r, row, col) && PQgetvalue(r, row, col)[0] == 't';
}
