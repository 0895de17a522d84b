/*
 * test_async_pool.c — coroutines on a libuv loop using an async connection
 * pool: many coroutines sharing few connections, FIFO waiting with a
 * timeout (a released connection handed to the longest waiter, waits that
 * would miss their deadline shed), a killed backend replaced, offloading to a thread pool, and
 * statement errors — all without blocking the loop.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "core/err.h"
#include "core/sched.h"
#include "core/timeutil.h"
#include "db/db.h"
#include "db/pipe.h"
#include "db/pool.h"
#include "t.h"
#include "itest.h"

static const char *url;
static uv_loop_t loop;
static nb_sched_t *sched;

NB_STMT(st_pid, "SELECT pg_backend_pid()");
NB_STMT(st_sleep, "SELECT pg_sleep($1::float8)");
/* With a timeout, pg_terminate_backend waits until the backend has exited
 * (its FATAL message sent): no sleep needed after it. */
NB_STMT(st_kill, "SELECT pg_terminate_backend($1::int, 5000)");
NB_STMT(st_bad, "SELECT 1 / $1::int");

static nb_pool_t *make_pool(int size, int timeout_ms)
{
	nb_pool_opts_t o = {0};
	o.conninfo = url;
	o.application_name = "nb-test-async";
	o.size = size;
	o.acquire_timeout_ms = timeout_ms;
	o.preping_idle_ms = 60000;
	o.max_age_ms = 600000;
	o.overflow_idle_ms = 60000;
	o.statement_timeout_ms = 5000;
	o.idle_in_tx_timeout_ms = 60000;
	o.connect_timeout_s = 5;
	o.async = true;
	return nb_pool_create(&o);
}

typedef struct job {
	nb_pool_t *pool;
	double sleep_s;
	int rc;
	int pid;
	int *done;
} job_t;

static void sleeper(void *arg)
{
	job_t *j = arg;
	nb_conn_t *c = NULL;
	j->rc = nb_pool_acquire(j->pool, &c);
	if (j->rc < 0)
		return;
	nb_params_t p;
	nb_params_init(&p);
	char s[32];
	snprintf(s, sizeof s, "%.3f", j->sleep_s);
	nb_p_text(&p, s);
	j->rc = nb_db_exec(c, &st_sleep, &p, NULL);
	PGresult *r = NULL;
	if (j->rc == 0 && nb_db_exec(c, &st_pid, NULL, &r) == 0) {
		j->pid = (int)nb_db_get_int(r, 0, 0);
		PQclear(r);
	}
	nb_pool_release(j->pool, c);
}

static void job_done(void *arg)
{
	job_t *j = arg;
	(*j->done)++;
}

static void run_until(int *done, int want)
{
	int64_t deadline = nb_mono_ms() + 30000;
	while (*done < want && nb_mono_ms() < deadline)
		uv_run(&loop, UV_RUN_ONCE);
}

static void test_many_coroutines_share_few_connections(void)
{
	nb_pool_t *p = make_pool(3, 10000);
	enum { N = 30 };
	job_t jobs[N];
	int done = 0;
	int64_t t0 = nb_mono_ms();
	for (int i = 0; i < N; i++) {
		jobs[i] = (job_t){p, 0.1, -99, 0, &done};
		nb_sched_spawn(sched, sleeper, &jobs[i], job_done);
	}
	run_until(&done, N);
	int64_t took = nb_mono_ms() - t0;
	CHECK_INT(done, N);
	int ok = 0;
	for (int i = 0; i < N; i++)
		ok += jobs[i].rc == 0 && jobs[i].pid > 0;
	CHECK_INT(ok, N);
	/* 30 sleeps of 100 ms over 3 connections: about 1 s, not 3 s (serial) nor 0.1 s */
	CHECK_MSG(took >= 900 && took < 2500, "took %lld ms", (long long)took);
	nb_pool_stats_t s;
	nb_pool_stats(p, &s);
	CHECK_INT(s.total, 3);
	CHECK_INT(s.in_use, 0);
	nb_pool_destroy(p);
}

static void test_waiting_coroutine_times_out(void)
{
	nb_pool_t *p = make_pool(1, 200);
	int done = 0;
	job_t a = {p, 1.0, -99, 0, &done};
	job_t b = {p, 0.0, -99, 0, &done};
	nb_sched_spawn(sched, sleeper, &a, job_done);
	int64_t t0 = nb_mono_ms();
	nb_sched_spawn(sched, sleeper, &b, job_done);
	run_until(&done, 1);
	int64_t took = nb_mono_ms() - t0;
	CHECK_INT(b.rc, NB_EUNAVAIL);
	CHECK_MSG(took >= 150 && took < 900, "timed out after %lld ms", (long long)took);
	run_until(&done, 2);
	CHECK_INT(a.rc, 0);
	nb_pool_destroy(p);
}

typedef struct killer {
	nb_pool_t *pool;
	nb_pool_t *admin;
	int pid_before, pid_after, rc;
	bool finished;
} killer_t;

/* Runs the loop until *flag is set (or 10 s pass). */
static void run_until_flag(bool *flag)
{
	int64_t deadline = nb_mono_ms() + 10000;
	while (!*flag && nb_mono_ms() < deadline) {
		uv_run(&loop, UV_RUN_NOWAIT);
		usleep(1000);
	}
}

static void kill_and_reuse(void *arg)
{
	killer_t *k = arg;
	nb_conn_t *c = NULL, *a = NULL;
	PGresult *r = NULL;
	if (nb_pool_acquire(k->pool, &c) < 0 || nb_db_exec(c, &st_pid, NULL, &r) < 0)
		return;
	k->pid_before = (int)nb_db_get_int(r, 0, 0);
	PQclear(r);
	nb_pool_release(k->pool, c);
	if (nb_pool_acquire(k->admin, &a) < 0)
		return;
	nb_params_t p;
	nb_params_init(&p);
	nb_p_int(&p, k->pid_before);
	nb_db_exec(a, &st_kill, &p, NULL);
	nb_pool_release(k->admin, a);
	k->rc = nb_pool_acquire(k->pool, &c);
	if (k->rc < 0)
		return;
	k->rc = nb_db_exec(c, &st_pid, NULL, &r);
	if (k->rc == 0) {
		k->pid_after = (int)nb_db_get_int(r, 0, 0);
		PQclear(r);
	}
	nb_pool_release(k->pool, c);
	k->finished = true;
}

static void test_killed_backend_replaced(void)
{
	killer_t k = {make_pool(1, 2000), make_pool(1, 2000), 0, 0, -99, false};
	nb_sched_spawn(sched, kill_and_reuse, &k, NULL);
	run_until_flag(&k.finished);
	CHECK_INT(k.rc, 0);
	CHECK(k.pid_before > 0 && k.pid_after > 0 && k.pid_after != k.pid_before);
	nb_pool_destroy(k.pool);
	nb_pool_destroy(k.admin);
}

typedef struct errjob {
	nb_pool_t *pool;
	int rc1, rc2;
	char state[8];
	bool finished;
} errjob_t;

static void error_then_ok(void *arg)
{
	errjob_t *e = arg;
	nb_conn_t *c = NULL;
	if (nb_pool_acquire(e->pool, &c) < 0)
		return;
	nb_params_t p;
	nb_params_init(&p);
	nb_p_int(&p, 0);
	e->rc1 = nb_db_exec(c, &st_bad, &p, NULL); /* division by zero */
	snprintf(e->state, sizeof e->state, "%s", nb_db_sqlstate());
	nb_params_init(&p);
	nb_p_int(&p, 2);
	e->rc2 = nb_db_exec(c, &st_bad, &p, NULL);
	nb_pool_release(e->pool, c);
	e->finished = true;
}

static void test_sql_error_then_next_statement_works(void)
{
	errjob_t e = {make_pool(1, 2000), -99, -99, "", false};
	nb_sched_spawn(sched, error_then_ok, &e, NULL);
	run_until_flag(&e.finished);
	CHECK_INT(e.rc1, NB_EDB);
	CHECK_STR(e.state, "22012");
	CHECK_INT(e.rc2, 0);
	nb_pool_destroy(e.pool);
}

static void slow_square(void *arg)
{
	int *v = arg;
	usleep(50 * 1000); /* stands for blocking work, not a wait */
	*v = *v * *v;
}

typedef struct off {
	nb_tpool_t *tp;
	int value;
	bool finished;
} off_t_;

static void offloader(void *arg)
{
	off_t_ *o = arg;
	nb_sched_offload(o->tp, slow_square, &o->value);
	o->finished = true;
}

static void test_offload_does_not_block_the_loop(void)
{
	nb_tpool_t *tp = nb_tpool_create("test", 2);
	off_t_ a = {tp, 7, false}, b = {tp, 9, false};
	int64_t t0 = nb_mono_ms();
	nb_sched_spawn(sched, offloader, &a, NULL);
	nb_sched_spawn(sched, offloader, &b, NULL);
	CHECK(nb_mono_ms() - t0 < 40); /* spawning returned before the work was done */
	run_until_flag(&a.finished);
	run_until_flag(&b.finished);
	CHECK(a.finished && b.finished);
	CHECK_INT(a.value, 49);
	CHECK_INT(b.value, 81);
	CHECK(nb_mono_ms() - t0 < 1000);
	nb_tpool_destroy(tp);
}

/* ------------------------------------------------------------ pipelining */

typedef struct pjob {
	nb_pool_t *pool;
	nb_pipe_t *pipe;
	int divisor;
	int rc;
	long value;
	bool finished;
	int *done;
} pjob_t;

NB_STMT(st_div, "SELECT 100 / $1::int");

static void pipelined(void *arg)
{
	pjob_t *j = arg;
	nb_conn_t *c = nb_pool_acquire_virtual(j->pool, j->pipe);
	nb_params_t p;
	nb_params_init(&p);
	nb_p_int(&p, j->divisor);
	PGresult *r = NULL;
	j->rc = nb_db_exec(c, &st_div, &p, &r);
	if (j->rc == 0) {
		j->value = (long)nb_db_get_int(r, 0, 0);
		PQclear(r);
	}
	nb_pool_release(j->pool, c);
	j->finished = true;
	(*j->done)++;
}

static void test_pipeline_many_statements_errors_isolated(void)
{
	nb_pool_t *pool = make_pool(2, 2000);
	nb_pipe_t *pipe = nb_pipe_create(pool, 2);
	enum { N = 200 };
	static pjob_t jobs[N];
	int done = 0;
	for (int i = 0; i < N; i++) {
		jobs[i] = (pjob_t){pool, pipe, i % 10, -99, 0, false, &done};
		nb_sched_spawn(sched, pipelined, &jobs[i], NULL);
	}
	int64_t deadline = nb_mono_ms() + 10000;
	while (done < N && nb_mono_ms() < deadline) {
		uv_run(&loop, UV_RUN_NOWAIT);
		usleep(500);
	}
	CHECK_INT(done, N);
	int ok = 0, errors = 0;
	for (int i = 0; i < N; i++) {
		if (jobs[i].divisor == 0)
			errors += jobs[i].rc == NB_EDB;
		else
			ok += jobs[i].rc == 0 && jobs[i].value == 100 / jobs[i].divisor;
	}
	CHECK_INT(errors, N / 10); /* every division by zero fails alone */
	CHECK_INT(ok, N - N / 10);  /* and nothing else fails with it */
	nb_pipe_stats_t st;
	nb_pipe_stats(pipe, &st);
	/* the reads shared sync points, and the failures made the rest of
	 * their batches run again (each sent a second time, alone) */
	CHECK_MSG(st.flushes < N / 4, "%llu flushes for %llu statements", (unsigned long long)st.flushes,
		  (unsigned long long)st.statements);
	CHECK_MSG(st.syncs < st.statements / 2, "%llu sync points for %llu statements",
		  (unsigned long long)st.syncs, (unsigned long long)st.statements);
	CHECK(st.resent > 0);
	CHECK_INT(st.statements, N + st.resent);
	CHECK_INT(st.pending, 0);
	nb_pipe_destroy(pipe);
	uv_run(&loop, UV_RUN_NOWAIT);
	nb_pool_destroy(pool);
}

/* ------------------------------------------- reads sharing sync points */

typedef struct sjob {
	nb_pool_t *pool;
	nb_pipe_t *pipe;
	int rc;
	int *done;
} sjob_t;

static void pipelined_sleep(void *arg)
{
	sjob_t *j = arg;
	nb_conn_t *c = nb_pool_acquire_virtual(j->pool, j->pipe);
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, "0.3");
	j->rc = nb_db_exec(c, &st_sleep, &p, NULL);
	nb_pool_release(j->pool, c);
	(*j->done)++;
}

/* While a connection's last flush is still being answered, what is queued on
 * it over several loop iterations waits and then goes as one batch: one
 * flush and one sync point for 50 reads queued in 10 iterations (without the
 * hold: one flush and one sync point per iteration). */
static void test_statements_wait_for_the_flush_in_flight(void)
{
	nb_pool_t *pool = make_pool(2, 2000);
	nb_pipe_t *pipe = nb_pipe_create(pool, 1);
	int slept = 0, done = 0;
	sjob_t sj = {pool, pipe, -99, &slept};
	nb_sched_spawn(sched, pipelined_sleep, &sj, NULL);
	nb_pipe_stats_t st;
	int64_t deadline = nb_mono_ms() + 5000;
	do {
		uv_run(&loop, UV_RUN_NOWAIT);
		nb_pipe_stats(pipe, &st);
	} while (st.flushes < 1 && nb_mono_ms() < deadline);
	CHECK_INT(st.flushes, 1);
	enum { ITER = 10, PER = 5 };
	static pjob_t jobs[ITER * PER];
	for (int i = 0; i < ITER; i++) {
		for (int k = 0; k < PER; k++) {
			pjob_t *j = &jobs[i * PER + k];
			*j = (pjob_t){pool, pipe, k + 1, -99, 0, false, &done};
			nb_sched_spawn(sched, pipelined, j, NULL);
		}
		uv_run(&loop, UV_RUN_NOWAIT);
	}
	nb_pipe_stats(pipe, &st);
	CHECK_MSG(slept == 0, "the 0.3 s statement was answered before the others were queued");
	run_until(&done, ITER * PER);
	run_until(&slept, 1);
	CHECK_INT(sj.rc, 0);
	int ok = 0;
	for (int i = 0; i < ITER * PER; i++)
		ok += jobs[i].rc == 0 && jobs[i].value == 100 / jobs[i].divisor;
	CHECK_INT(ok, ITER * PER);
	nb_pipe_stats(pipe, &st);
	CHECK_INT(st.statements, 1 + ITER * PER);
	CHECK_MSG(st.flushes == 2 && st.syncs == 2, "%llu flushes, %llu sync points for 1 + %d statements",
		  (unsigned long long)st.flushes, (unsigned long long)st.syncs, ITER * PER);
	nb_pool_stats_t ps;
	nb_pool_stats(pool, &ps);
	CHECK_INT(ps.acquires, 0); /* none left the pipeline */
	nb_pipe_destroy(pipe);
	uv_run(&loop, UV_RUN_NOWAIT);
	nb_pool_destroy(pool);
}

static void test_read_only_statements_are_recognised(void)
{
	static const char *const reads[] = {
		"SELECT 1",
		"  select id, updated_at, created_at FROM notebooks WHERE owner_id = $1 AND deleted_at IS NULL",
		"WITH n AS (SELECT id FROM notebooks WHERE owner_id = $1) SELECT count(*) FROM n",
		"SELECT 'update me; delete' AS x, \"insert\" FROM t -- for update\n WHERE a = $12",
		"SELECT /* lock */ nb_ts(created_at) FROM sources WHERE notebook_id = $1::uuid",
	};
	static const char *const others[] = {
		"INSERT INTO t VALUES ($1)",
		"UPDATE t SET a = 1",
		"DELETE FROM t",
		"WITH x AS (UPDATE t SET a = 1 RETURNING a) SELECT a FROM x",
		"WITH x AS (DELETE FROM t RETURNING a) SELECT a FROM x",
		"SELECT id FROM jobs WHERE status = 'pending' FOR UPDATE SKIP LOCKED",
		"SELECT id FROM jobs FOR NO KEY UPDATE",
		"SELECT id FROM jobs FOR KEY SHARE",
		"SELECT pg_notify('c', $1)",
		"SELECT nextval('s')",
		"SELECT pg_advisory_xact_lock(1)",
		"SELECT pg_try_advisory_lock(1)",
		"SELECT set_config('x', '1', true)",
		"SELECT 1 FROM t WHERE expires_at > now()",
		"SELECT current_timestamp",
		"SELECT txid_current()",
		"SELECT * INTO t2 FROM t",
		"SELECT $$x$$",
		"VALUES (1)",
		"LOCK TABLE t",
		"SELECT 'unterminated",
		"",
	};
	for (size_t i = 0; i < sizeof reads / sizeof *reads; i++)
		CHECK_MSG(nb_db_sql_read_only(reads[i]), "not taken for a read: %s", reads[i]);
	for (size_t i = 0; i < sizeof others / sizeof *others; i++)
		CHECK_MSG(!nb_db_sql_read_only(others[i]), "taken for a read: %s", others[i]);
}

NB_STMT(st_now, "SELECT now()");
NB_STMT(st_insert, "INSERT INTO nb_test_pipe_writes (i) VALUES ($1)");

typedef struct wjob {
	nb_pool_t *pool;
	nb_pipe_t *pipe;
	int i;
	int rc;
	long value;
	int *done;
} wjob_t;

/* i % 3 == 0: a write; else a read that fails when i % 5 == 0 */
static void write_or_read(void *arg)
{
	wjob_t *j = arg;
	nb_conn_t *c = nb_pool_acquire_virtual(j->pool, j->pipe);
	nb_params_t p;
	nb_params_init(&p);
	PGresult *r = NULL;
	if (j->i % 3 == 0) {
		nb_p_int(&p, j->i);
		j->rc = nb_db_exec(c, &st_insert, &p, NULL);
	} else if (j->i % 7 == 1) {
		j->rc = nb_db_exec(c, &st_now, NULL, &r);
		PQclear(r);
	} else {
		nb_p_int(&p, j->i % 5);
		j->rc = nb_db_exec(c, &st_div, &p, &r);
		if (j->rc == 0) {
			j->value = (long)nb_db_get_int(r, 0, 0);
			PQclear(r);
		}
	}
	nb_pool_release(j->pool, c);
	(*j->done)++;
}

static long count_rows(PGconn *pg, const char *sql)
{
	PGresult *r = PQexec(pg, sql);
	long n = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 0)) : -1;
	PQclear(r);
	return n;
}

/* Writes keep a sync point of their own and are committed when they
 * complete; reads that fail abort only the reads queued after them in their
 * batch, and those run again: no write lost or doubled, every read answered
 * with its own result or its own error. */
static void test_writes_and_failing_reads_share_a_pipeline(void)
{
	PGconn *pg = PQconnectdb(url);
	CHECK(PQstatus(pg) == CONNECTION_OK);
	PQclear(PQexec(pg, "DROP TABLE IF EXISTS nb_test_pipe_writes"));
	PQclear(PQexec(pg, "CREATE TABLE nb_test_pipe_writes (i int NOT NULL)"));
	nb_pool_t *pool = make_pool(2, 2000);
	nb_pipe_t *pipe = nb_pipe_create(pool, 1);
	enum { N = 300 };
	static wjob_t jobs[N];
	int done = 0;
	for (int i = 0; i < N; i++) {
		jobs[i] = (wjob_t){pool, pipe, i, -99, 0, &done};
		nb_sched_spawn(sched, write_or_read, &jobs[i], NULL);
	}
	run_until(&done, N);
	CHECK_INT(done, N);
	int writes = 0, reads_ok = 0, reads_failed = 0, wrong = 0, nows = 0;
	int want_writes = 0, want_nows = 0, want_failed = 0, want_ok = 0;
	for (int i = 0; i < N; i++) {
		if (i % 3 == 0) {
			want_writes++;
			writes += jobs[i].rc == 0;
		} else if (i % 7 == 1) {
			want_nows++;
			nows += jobs[i].rc == 0;
		} else if (i % 5 == 0) {
			want_failed++;
			reads_failed += jobs[i].rc == NB_EDB;
		} else {
			want_ok++;
			if (jobs[i].rc == 0 && jobs[i].value == 100 / (i % 5))
				reads_ok++;
			else
				wrong++;
		}
	}
	CHECK_INT(writes, want_writes);
	CHECK_INT(nows, want_nows);
	CHECK_INT(reads_failed, want_failed);
	CHECK_INT(reads_ok, want_ok);
	CHECK_INT(wrong, 0);
	CHECK_INT(count_rows(pg, "SELECT count(*) FROM nb_test_pipe_writes"), want_writes);
	CHECK_INT(count_rows(pg, "SELECT count(DISTINCT i) FROM nb_test_pipe_writes"), want_writes);
	nb_pipe_stats_t st;
	nb_pipe_stats(pipe, &st);
	CHECK(st.resent > 0);
	/* every write and every now() had its own sync point; the reads shared theirs */
	CHECK_MSG(st.syncs >= (uint64_t)(want_writes + want_nows) && st.syncs < st.statements,
		  "%llu sync points for %llu statements", (unsigned long long)st.syncs,
		  (unsigned long long)st.statements);
	CHECK_INT(st.pending, 0);
	nb_pipe_destroy(pipe);
	uv_run(&loop, UV_RUN_NOWAIT);
	nb_pool_destroy(pool);
	PQclear(PQexec(pg, "DROP TABLE nb_test_pipe_writes"));
	PQfinish(pg);
}

typedef struct txjob {
	nb_pool_t *pool;
	nb_pipe_t *pipe;
	int rc;
	bool in_tx_pid_same;
	bool finished;
} txjob_t;

static void transaction_on_own_connection(void *arg)
{
	txjob_t *j = arg;
	nb_conn_t *c = nb_pool_acquire_virtual(j->pool, j->pipe);
	PGresult *r = NULL;
	int pid1 = 0, pid2 = 0;
	j->rc = nb_db_begin(c);
	if (j->rc == 0 && nb_db_exec(c, &st_pid, NULL, &r) == 0) {
		pid1 = (int)nb_db_get_int(r, 0, 0);
		PQclear(r);
	}
	if (j->rc == 0 && nb_db_exec(c, &st_pid, NULL, &r) == 0) {
		pid2 = (int)nb_db_get_int(r, 0, 0);
		PQclear(r);
	}
	if (j->rc == 0)
		j->rc = nb_db_commit(c);
	j->in_tx_pid_same = pid1 > 0 && pid1 == pid2;
	nb_pool_release(j->pool, c);
	j->finished = true;
}

static void test_pipeline_transactions_take_their_own_connection(void)
{
	nb_pool_t *pool = make_pool(1, 2000);
	nb_pipe_t *pipe = nb_pipe_create(pool, 1);
	txjob_t j = {pool, pipe, -99, false, false};
	nb_sched_spawn(sched, transaction_on_own_connection, &j, NULL);
	run_until_flag(&j.finished);
	CHECK_INT(j.rc, 0);
	CHECK(j.in_tx_pid_same);
	nb_pool_stats_t ps;
	nb_pool_stats(pool, &ps);
	CHECK_INT(ps.in_use, 0);
	CHECK_INT(ps.acquires, 1);
	nb_pipe_destroy(pipe);
	uv_run(&loop, UV_RUN_NOWAIT);
	nb_pool_destroy(pool);
}

typedef struct pkill {
	nb_pool_t *pool, *admin;
	nb_pipe_t *pipe;
	int rc_after;
	bool finished;
} pkill_t;

static void pipeline_survives_killed_backend(void *arg)
{
	pkill_t *k = arg;
	nb_conn_t *c = nb_pool_acquire_virtual(k->pool, k->pipe);
	PGresult *r = NULL;
	int pid = 0;
	if (nb_db_exec(c, &st_pid, NULL, &r) == 0) {
		pid = (int)nb_db_get_int(r, 0, 0);
		PQclear(r);
	}
	nb_conn_t *a = NULL;
	if (pid > 0 && nb_pool_acquire(k->admin, &a) == 0) {
		nb_params_t p;
		nb_params_init(&p);
		nb_p_int(&p, pid);
		nb_db_exec(a, &st_kill, &p, NULL);
		nb_pool_release(k->admin, a);
	}
	/* let the loop notice the dead connection */
	nb_wait_t w;
	nb_wait_init(&w);
	nb_wait_park(&w, 200);
	k->rc_after = nb_db_exec(c, &st_pid, NULL, &r);
	if (k->rc_after == 0) {
		if ((int)nb_db_get_int(r, 0, 0) == pid)
			k->rc_after = -1234; /* must be a new backend */
		PQclear(r);
	}
	nb_pool_release(k->pool, c);
	k->finished = true;
}

static void test_pipeline_reconnects_after_killed_backend(void)
{
	pkill_t k = {make_pool(1, 2000), make_pool(1, 2000), NULL, -99, false};
	k.pipe = nb_pipe_create(k.pool, 1);
	nb_sched_spawn(sched, pipeline_survives_killed_backend, &k, NULL);
	run_until_flag(&k.finished);
	CHECK_INT(k.rc_after, 0);
	nb_pipe_stats_t st;
	nb_pipe_stats(k.pipe, &st);
	CHECK_INT(st.failures, 1);
	nb_pipe_destroy(k.pipe);
	uv_run(&loop, UV_RUN_NOWAIT);
	nb_pool_destroy(k.pool);
	nb_pool_destroy(k.admin);
}

typedef struct hol {
	nb_pool_t *pool;
	nb_pipe_t *pipe;
	double sleep_s;
	int delay_ms;
	int rc;
	int64_t took_ms;
	bool finished;
	int deadline_ms; /* > 0: the handle's deadline, from the start of the statement */
	bool in_tx;	 /* run it inside a transaction: on a connection of its own */
} hol_t;

NB_STMT(st_pipe_sleep, "SELECT pg_sleep($1::float8)"); /* not declared slow: goes into the pipeline */

static void hol_job(void *arg)
{
	hol_t *h = arg;
	if (h->delay_ms) {
		nb_wait_t w;
		nb_wait_init(&w);
		nb_wait_park(&w, h->delay_ms);
	}
	nb_conn_t *c = nb_pool_acquire_virtual(h->pool, h->pipe);
	nb_params_t p;
	nb_params_init(&p);
	char s[16];
	snprintf(s, sizeof s, "%.3f", h->sleep_s);
	nb_p_text(&p, s);
	if (h->in_tx && nb_db_begin(c) < 0) {
		h->rc = -1000;
		nb_pool_release(h->pool, c);
		h->finished = true;
		return;
	}
	int64_t t0 = nb_mono_ms();
	if (h->deadline_ms > 0)
		nb_conn_set_deadline(c, t0 + h->deadline_ms);
	h->rc = nb_db_exec(c, &st_pipe_sleep, &p, NULL);
	h->took_ms = nb_mono_ms() - t0;
	if (h->in_tx)
		nb_db_rollback(c);
	nb_pool_release(h->pool, c);
	h->finished = true;
}

static void test_pipeline_routes_around_a_slow_statement(void)
{
	nb_pool_t *pool = make_pool(2, 2000);
	nb_pipe_t *pipe = nb_pipe_create(pool, 1);
	hol_t slow = {pool, pipe, 1.0, 0, -99, 0, false, 0, false};
	hol_t quick = {pool, pipe, 0.0, 200, -99, 0, false, 0, false};
	nb_sched_spawn(sched, hol_job, &slow, NULL);
	nb_sched_spawn(sched, hol_job, &quick, NULL);
	run_until_flag(&quick.finished);
	CHECK_INT(quick.rc, 0);
	/* the quick statement did not queue behind the one-second one */
	CHECK_MSG(quick.took_ms < 600, "quick statement took %lld ms", (long long)quick.took_ms);
	run_until_flag(&slow.finished);
	CHECK_INT(slow.rc, 0);
	CHECK(slow.took_ms >= 900);
	nb_pipe_destroy(pipe);
	uv_run(&loop, UV_RUN_NOWAIT);
	nb_pool_destroy(pool);
}

/* A pipelined statement whose request passes its deadline is abandoned; the
 * shared connection stays up for the statements of others. */
static void test_pipeline_deadline_abandons_without_failing_the_connection(void)
{
	nb_pool_t *pool = make_pool(2, 2000);
	nb_pipe_t *pipe = nb_pipe_create(pool, 1);
	hol_t late = {pool, pipe, 1.0, 0, -99, 0, false, 300, false};
	hol_t next = {pool, pipe, 0.0, 50, -99, 0, false, 0, false};
	nb_sched_spawn(sched, hol_job, &late, NULL);
	nb_sched_spawn(sched, hol_job, &next, NULL);
	run_until_flag(&late.finished);
	CHECK_INT(late.rc, NB_ETIMEOUT);
	CHECK_MSG(late.took_ms >= 250 && late.took_ms < 900, "abandoned after %lld ms", (long long)late.took_ms);
	run_until_flag(&next.finished);
	CHECK_INT(next.rc, 0);
	/* once the abandoned statement's answer came, the connection serves on */
	hol_t after = {pool, pipe, 0.0, 900, -99, 0, false, 0, false};
	nb_sched_spawn(sched, hol_job, &after, NULL);
	run_until_flag(&after.finished);
	CHECK_INT(after.rc, 0);
	nb_pipe_stats_t ps;
	nb_pipe_stats(pipe, &ps);
	CHECK_INT(ps.failures, 0);
	CHECK_INT(ps.abandoned, 1);
	CHECK_INT(ps.connections, 1);
	CHECK_INT(ps.pending, 0);
	nb_pipe_destroy(pipe);
	uv_run(&loop, UV_RUN_NOWAIT);
	nb_pool_destroy(pool);
}

/* A statement on a connection of its own is cancelled at its deadline, and
 * the connection goes back to the pool clean (not closed). */
static void test_deadline_cancels_a_statement_on_its_own_connection(void)
{
	nb_pool_t *pool = make_pool(1, 2000);
	nb_pipe_t *pipe = nb_pipe_create(pool, 1);
	hol_t late = {pool, pipe, 5.0, 0, -99, 0, false, 300, true};
	nb_sched_spawn(sched, hol_job, &late, NULL);
	run_until_flag(&late.finished);
	CHECK_INT(late.rc, NB_ETIMEOUT);
	CHECK_MSG(late.took_ms >= 250 && late.took_ms < 2000, "cancelled after %lld ms", (long long)late.took_ms);
	nb_pool_stats_t st;
	nb_pool_stats(pool, &st);
	CHECK_INT((int)st.cancels, 1);
	CHECK_INT(st.idle, 1);
	CHECK_INT((int)st.closed, 0);
	/* the same connection serves the next transaction at once */
	hol_t next = {pool, pipe, 0.0, 0, -99, 0, false, 0, true};
	nb_sched_spawn(sched, hol_job, &next, NULL);
	run_until_flag(&next.finished);
	CHECK_INT(next.rc, 0);
	CHECK_MSG(next.took_ms < 500, "next statement took %lld ms", (long long)next.took_ms);
	nb_pool_stats(pool, &st);
	CHECK_INT((int)st.created, 1);
	nb_pipe_destroy(pipe);
	uv_run(&loop, UV_RUN_NOWAIT);
	nb_pool_destroy(pool);
}

NB_STMT(st_locked_count, "SELECT count(*) FROM async_lock_test");
NB_STMT(st_lock_timeout, "SELECT current_setting('lock_timeout')");

typedef struct lockjob {
	nb_pool_t *pool;
	nb_pipe_t *pipe;
	nb_stmt_t *st;
	int delay_ms, deadline_ms;
	int rc;
	int64_t took_ms;
	char value[32];
	bool finished;
} lockjob_t;

static void lock_job(void *arg)
{
	lockjob_t *j = arg;
	if (j->delay_ms) {
		nb_wait_t w;
		nb_wait_init(&w);
		nb_wait_park(&w, j->delay_ms);
	}
	nb_conn_t *c = nb_pool_acquire_virtual(j->pool, j->pipe);
	int64_t t0 = nb_mono_ms();
	if (j->deadline_ms)
		nb_conn_set_deadline(c, t0 + j->deadline_ms);
	PGresult *r = NULL;
	j->rc = nb_db_exec(c, j->st, NULL, &r);
	j->took_ms = nb_mono_ms() - t0;
	if (j->rc == 0) {
		snprintf(j->value, sizeof j->value, "%s", PQgetvalue(r, 0, 0));
		PQclear(r);
	}
	nb_pool_release(j->pool, c);
	j->finished = true;
}

/* A locked table holds up only the statements that read it: on the pipeline
 * such a statement gives up after lock_timeout and runs again on a
 * connection of its own (cancelled at its deadline), while a statement
 * pipelined behind it answers at once. */
static void test_lock_wait_leaves_the_pipeline(void)
{
	PGconn *locker = PQconnectdb(url);
	PGresult *r = PQexec(locker, "CREATE TABLE IF NOT EXISTS async_lock_test (x int)");
	PQclear(r);
	r = PQexec(locker, "BEGIN; LOCK TABLE async_lock_test IN ACCESS EXCLUSIVE MODE");
	CHECK_INT(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);
	nb_pool_opts_t o = {0};
	o.conninfo = url;
	o.application_name = "nb-test-async";
	o.size = 2;
	o.acquire_timeout_ms = 2000;
	o.preping_idle_ms = 60000;
	o.max_age_ms = 600000;
	o.overflow_idle_ms = 60000;
	o.statement_timeout_ms = 5000;
	o.idle_in_tx_timeout_ms = 60000;
	o.connect_timeout_s = 5;
	o.pipe_lock_timeout_ms = 200;
	o.async = true;
	nb_pool_t *pool = nb_pool_create(&o);
	nb_pipe_t *pipe = nb_pipe_create(pool, 1);
	lockjob_t blocked = {pool, pipe, &st_locked_count, 0, 1500, -99, 0, "", false};
	lockjob_t quick = {pool, pipe, &st_lock_timeout, 50, 0, -99, 0, "", false};
	nb_sched_spawn(sched, lock_job, &blocked, NULL);
	nb_sched_spawn(sched, lock_job, &quick, NULL);
	run_until_flag(&quick.finished);
	CHECK_INT(quick.rc, 0);
	CHECK_STR(quick.value, "200ms"); /* the pipelined connections' lock_timeout */
	CHECK_MSG(quick.took_ms < 600, "the statement behind the lock wait took %lld ms", (long long)quick.took_ms);
	run_until_flag(&blocked.finished);
	CHECK_INT(blocked.rc, NB_ETIMEOUT); /* waited on its own connection until its deadline */
	CHECK_MSG(blocked.took_ms >= 1400 && blocked.took_ms < 3000, "blocked statement took %lld ms",
		  (long long)blocked.took_ms);
	nb_pool_stats_t st;
	nb_pool_stats(pool, &st);
	CHECK_INT((int)st.cancels, 1);
	nb_pipe_stats_t ps;
	nb_pipe_stats(pipe, &ps);
	CHECK_INT(ps.failures, 0);
	/* the lock goes: the statement (kept off the pipeline a while) answers */
	r = PQexec(locker, "ROLLBACK");
	PQclear(r);
	lockjob_t after = {pool, pipe, &st_locked_count, 0, 2000, -99, 0, "", false};
	nb_sched_spawn(sched, lock_job, &after, NULL);
	run_until_flag(&after.finished);
	CHECK_INT(after.rc, 0);
	CHECK_STR(after.value, "0");
	nb_pipe_destroy(pipe);
	uv_run(&loop, UV_RUN_NOWAIT);
	nb_pool_destroy(pool);
	r = PQexec(locker, "DROP TABLE async_lock_test");
	PQclear(r);
	PQfinish(locker);
}

/* ------------------------------------------- arrival order and shedding */

typedef struct orderjob {
	nb_pool_t *pool;
	double hold_s;
	bool again; /* after releasing, asks again at once, as a newcomer */
	int order[2];
	int *seq;
	bool finished;
} orderjob_t;

static void order_hold(orderjob_t *o, int slot)
{
	nb_conn_t *c = NULL;
	if (nb_pool_acquire(o->pool, &c) < 0)
		return;
	o->order[slot] = ++*o->seq;
	nb_params_t p;
	nb_params_init(&p);
	char s[32];
	snprintf(s, sizeof s, "%.3f", o->hold_s);
	nb_p_text(&p, s);
	nb_db_exec(c, &st_sleep, &p, NULL);
	nb_pool_release(o->pool, c);
}

static void order_job(void *arg)
{
	orderjob_t *o = arg;
	order_hold(o, 0);
	if (o->again)
		order_hold(o, 1);
	o->finished = true;
}

/* A released connection goes to the longest waiter: a coroutine asking
 * again right after its release (a newcomer) queues behind those already
 * waiting instead of taking it back (before: it did, and the waiter woken
 * for it went back to the end of the queue). */
static void test_waiters_are_served_in_arrival_order(void)
{
	nb_pool_t *p = make_pool(1, 10000);
	int seq = 0;
	orderjob_t a = {p, 0.2, true, {0, 0}, &seq, false};
	orderjob_t b = {p, 0.02, false, {0, 0}, &seq, false};
	orderjob_t c = {p, 0.02, false, {0, 0}, &seq, false};
	orderjob_t d = {p, 0.02, false, {0, 0}, &seq, false};
	nb_sched_spawn(sched, order_job, &a, NULL);
	nb_sched_spawn(sched, order_job, &b, NULL);
	nb_sched_spawn(sched, order_job, &c, NULL);
	nb_sched_spawn(sched, order_job, &d, NULL);
	run_until_flag(&a.finished);
	run_until_flag(&d.finished);
	CHECK_INT(a.order[0], 1);
	CHECK_INT(b.order[0], 2);
	CHECK_INT(c.order[0], 3);
	CHECK_INT(d.order[0], 4);
	CHECK_INT(a.order[1], 5);
	nb_pool_destroy(p);
}

typedef struct shedjob {
	nb_pool_t *pool;
	int deadline_ms;
	bool shed;
	int rc;
	int64_t took_ms;
	bool finished;
} shedjob_t;

static void shed_job(void *arg)
{
	shedjob_t *j = arg;
	nb_conn_t *c = NULL;
	int64_t t0 = nb_mono_ms();
	j->rc = nb_pool_acquire_by(j->pool, t0 + j->deadline_ms, j->shed, &c);
	j->took_ms = nb_mono_ms() - t0;
	if (j->rc == 0)
		nb_pool_release(j->pool, c);
	j->finished = true;
}

/* With the connection held and holds measured at 200 ms, a request with
 * 300 ms left cannot have its turn and its statement in time: refused at
 * once (counted), where one that may not be shed waits to its deadline. */
static void test_a_wait_that_would_miss_its_deadline_is_shed(void)
{
	nb_pool_t *p = make_pool(1, 10000);
	int seq = 0;
	orderjob_t learn = {p, 0.2, false, {0, 0}, &seq, false};
	nb_sched_spawn(sched, order_job, &learn, NULL);
	run_until_flag(&learn.finished);
	orderjob_t hold = {p, 0.8, false, {0, 0}, &seq, false};
	nb_sched_spawn(sched, order_job, &hold, NULL);
	shedjob_t shed = {p, 300, true, -99, 0, false};
	shedjob_t wait = {p, 300, false, -99, 0, false};
	nb_sched_spawn(sched, shed_job, &shed, NULL);
	nb_sched_spawn(sched, shed_job, &wait, NULL);
	run_until_flag(&shed.finished);
	run_until_flag(&wait.finished);
	CHECK_INT(shed.rc, NB_EUNAVAIL);
	CHECK_MSG(shed.took_ms < 150, "shed after %lld ms", (long long)shed.took_ms);
	CHECK_INT(wait.rc, NB_EUNAVAIL);
	CHECK_MSG(wait.took_ms >= 250, "gave up after %lld ms", (long long)wait.took_ms);
	nb_pool_stats_t st;
	nb_pool_stats(p, &st);
	CHECK_INT((int)st.shed, 1);
	CHECK_INT((int)st.timeouts, 1);
	run_until_flag(&hold.finished);
	/* free again: nothing is shed when a connection is idle */
	shedjob_t later = {p, 300, true, -99, 0, false};
	nb_sched_spawn(sched, shed_job, &later, NULL);
	run_until_flag(&later.finished);
	CHECK_INT(later.rc, 0);
	nb_pool_destroy(p);
}

/* its own statement: the earlier tests keep st_pipe_sleep off the pipelines for a while */
NB_STMT(st_pipe_short, "SELECT pg_sleep($1::float8) AS short_sleep");

typedef struct streamjob {
	nb_pool_t *pool;
	nb_pipe_t *pipe;
	int ok;
	int *done;
} streamjob_t;

static void stream_job(void *arg)
{
	streamjob_t *j = arg;
	for (int i = 0; i < 5; i++) {
		nb_conn_t *c = nb_pool_acquire_virtual(j->pool, j->pipe);
		nb_params_t p;
		nb_params_init(&p);
		nb_p_text(&p, "0.004");
		if (nb_db_exec(c, &st_pipe_short, &p, NULL) == 0)
			j->ok++;
		nb_pool_release(j->pool, c);
	}
	(*j->done)++;
}

/* 60 clients in a closed loop on one pipelined connection: its queue holds
 * about 240 ms of 4 ms statements and keeps moving. That is load, not a slow
 * statement: every statement stays on the pipeline, in arrival order (before,
 * any statement sent while the oldest in flight was over 50 ms old went to a
 * pool connection of its own). */
static void test_a_long_moving_pipeline_queue_is_not_stuck(void)
{
	nb_pool_t *pool = make_pool(4, 5000);
	nb_pipe_t *pipe = nb_pipe_create(pool, 1);
	enum { N = 60 };
	streamjob_t jobs[N];
	int done = 0;
	for (int i = 0; i < N; i++) {
		jobs[i] = (streamjob_t){pool, pipe, 0, &done};
		nb_sched_spawn(sched, stream_job, &jobs[i], NULL);
	}
	run_until(&done, N);
	CHECK_INT(done, N);
	int ok = 0;
	for (int i = 0; i < N; i++)
		ok += jobs[i].ok;
	CHECK_INT(ok, N * 5);
	nb_pool_stats_t st;
	nb_pool_stats(pool, &st);
	CHECK_MSG(st.acquires == 0, "%llu statements left the pipeline for a pool connection",
		  (unsigned long long)st.acquires);
	nb_pipe_destroy(pipe);
	uv_run(&loop, UV_RUN_NOWAIT);
	nb_pool_destroy(pool);
}

int main(void)
{
	if (!(url = itest_url()))
		return 2;
	uv_loop_init(&loop);
	sched = nb_sched_create(&loop);
	T_RUN(test_many_coroutines_share_few_connections);
	T_RUN(test_waiting_coroutine_times_out);
	T_RUN(test_killed_backend_replaced);
	T_RUN(test_sql_error_then_next_statement_works);
	T_RUN(test_offload_does_not_block_the_loop);
	T_RUN(test_pipeline_many_statements_errors_isolated);
	T_RUN(test_read_only_statements_are_recognised);
	T_RUN(test_writes_and_failing_reads_share_a_pipeline);
	T_RUN(test_statements_wait_for_the_flush_in_flight);
	T_RUN(test_pipeline_transactions_take_their_own_connection);
	T_RUN(test_pipeline_reconnects_after_killed_backend);
	T_RUN(test_pipeline_routes_around_a_slow_statement);
	T_RUN(test_pipeline_deadline_abandons_without_failing_the_connection);
	T_RUN(test_deadline_cancels_a_statement_on_its_own_connection);
	T_RUN(test_lock_wait_leaves_the_pipeline);
	T_RUN(test_waiters_are_served_in_arrival_order);
	T_RUN(test_a_wait_that_would_miss_its_deadline_is_shed);
	T_RUN(test_a_long_moving_pipeline_queue_is_not_stuck);
	nb_sched_destroy(sched);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	nb_coro_thread_cleanup();
	return t_done();
}
