/*
 * test_pool.c — the connection pool and statement layer against a real
 * PostgreSQL (NB_TEST_DATABASE_URL): exhaustion, killed backends, recycling,
 * overflow, statement timeout, prepared statements, statement counting.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/timeutil.h"
#include "db/db.h"
#include "db/pool.h"
#include "t.h"
#include "itest.h"

static const char *url;

NB_STMT(st_pid, "SELECT pg_backend_pid()");
NB_STMT(st_sleep, "SELECT pg_sleep($1::float8)");
/* With a timeout, pg_terminate_backend waits until the backend has exited
 * (its FATAL message sent): no sleep needed after it. */
NB_STMT(st_kill, "SELECT pg_terminate_backend($1::int, 5000)");
NB_STMT(st_prepared, "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'SELECT pg_backend_pid()%'");
NB_STMT(st_setting, "SELECT current_setting($1)");

/* Settings every test starts from; each changes what it is about. */
static void base_opts(nb_pool_opts_t *o, int size, int overflow, int timeout_ms)
{
	memset(o, 0, sizeof *o);
	o->conninfo = url;
	o->application_name = "nb-test-pool";
	o->size = size;
	o->overflow = overflow;
	o->acquire_timeout_ms = timeout_ms;
	o->preping_idle_ms = 60000;
	o->max_age_ms = 600000;
	o->overflow_idle_ms = 60000;
	o->statement_timeout_ms = 5000;
	o->idle_in_tx_timeout_ms = 60000;
	o->connect_timeout_s = 5;
}

static nb_pool_t *make_pool(int size, int overflow, int timeout_ms)
{
	nb_pool_opts_t o;
	base_opts(&o, size, overflow, timeout_ms);
	return nb_pool_create(&o);
}

static int backend_pid(nb_conn_t *c)
{
	PGresult *r = NULL;
	if (nb_db_exec(c, &st_pid, NULL, &r) < 0)
		return -1;
	int pid = (int)nb_db_get_int(r, 0, 0);
	PQclear(r);
	return pid;
}

static void test_exhaustion_times_out(void)
{
	nb_pool_t *p = make_pool(2, 0, 300);
	nb_conn_t *a = NULL, *b = NULL, *c = NULL;
	CHECK_INT(nb_pool_acquire(p, &a), 0);
	CHECK_INT(nb_pool_acquire(p, &b), 0);
	int64_t t0 = nb_mono_ms();
	CHECK_INT(nb_pool_acquire(p, &c), NB_EUNAVAIL);
	int64_t waited = nb_mono_ms() - t0;
	CHECK_MSG(waited >= 250 && waited < 3000, "waited %lld ms", (long long)waited);
	CHECK(c == NULL);
	nb_pool_stats_t s;
	nb_pool_stats(p, &s);
	CHECK_INT(s.timeouts, 1);
	CHECK_INT(s.in_use, 2);
	nb_pool_release(p, a);
	CHECK_INT(nb_pool_acquire(p, &c), 0); /* a freed slot is usable again */
	nb_pool_release(p, b);
	nb_pool_release(p, c);
	nb_pool_destroy(p);
}

typedef struct {
	nb_pool_t *p;
	int rc;
	int64_t waited;
} waiter_t;

static void *wait_thread(void *arg)
{
	waiter_t *w = arg;
	nb_conn_t *c = NULL;
	int64_t t0 = nb_mono_ms();
	w->rc = nb_pool_acquire(w->p, &c);
	w->waited = nb_mono_ms() - t0;
	if (c)
		nb_pool_release(w->p, c);
	return NULL;
}

static void test_waiter_gets_released_connection(void)
{
	nb_pool_t *p = make_pool(1, 0, 5000);
	nb_conn_t *a = NULL;
	CHECK_INT(nb_pool_acquire(p, &a), 0);
	waiter_t w = {p, -99, 0};
	pthread_t th;
	pthread_create(&th, NULL, wait_thread, &w);
	nb_pool_stats_t s;
	int64_t until = nb_mono_ms() + 5000;
	do {
		usleep(2000);
		nb_pool_stats(p, &s);
	} while (s.waiting != 1 && nb_mono_ms() < until);
	CHECK_INT(s.waiting, 1);
	CHECK_INT(__atomic_load_n(&w.rc, __ATOMIC_ACQUIRE), -99); /* still blocked until the release */
	int64_t released = nb_mono_ms();
	nb_pool_release(p, a);
	pthread_join(th, NULL);
	CHECK_INT(w.rc, 0);
	CHECK(w.waited >= 0 && w.waited < 2000 && nb_mono_ms() - released < 2000);
	nb_pool_stats(p, &s);
	CHECK(s.wait_us_total > 0);
	nb_pool_destroy(p);
}

static void test_killed_backend_replaced_transparently(void)
{
	nb_pool_t *p = make_pool(1, 0, 2000);
	nb_pool_t *admin = make_pool(1, 0, 2000);
	nb_conn_t *c = NULL, *k = NULL;
	CHECK_INT(nb_pool_acquire(p, &c), 0);
	int pid = backend_pid(c);
	CHECK(pid > 0);
	nb_pool_release(p, c);

	CHECK_INT(nb_pool_acquire(admin, &k), 0);
	nb_params_t pr;
	nb_params_init(&pr);
	nb_p_int(&pr, pid);
	CHECK_INT(nb_db_exec(k, &st_kill, &pr, NULL), 0);
	nb_pool_release(admin, k);

	/* The caller never sees the dead connection. */
	CHECK_INT(nb_pool_acquire(p, &c), 0);
	int pid2 = backend_pid(c);
	CHECK(pid2 > 0);
	CHECK(pid2 != pid);
	nb_pool_release(p, c);
	nb_pool_stats_t s;
	nb_pool_stats(p, &s);
	CHECK_INT(s.replaced_dead, 1);
	nb_pool_destroy(p);
	nb_pool_destroy(admin);
}

static void test_killed_backend_retried_on_first_statement(void)
{
	/* Kill the backend while the connection is held but unused: the first
	 * statement finds it dead and is retried on a fresh connection. */
	nb_pool_t *p = make_pool(1, 0, 2000);
	nb_pool_t *admin = make_pool(1, 0, 2000);
	nb_conn_t *c = NULL, *k = NULL;
	CHECK_INT(nb_pool_acquire(p, &c), 0);
	int pid = backend_pid(c);
	nb_pool_release(p, c);
	CHECK_INT(nb_pool_acquire(p, &c), 0);
	CHECK_INT(nb_pool_acquire(admin, &k), 0);
	nb_params_t pr;
	nb_params_init(&pr);
	nb_p_int(&pr, pid);
	CHECK_INT(nb_db_exec(k, &st_kill, &pr, NULL), 0);
	nb_pool_release(admin, k);
	int pid2 = backend_pid(c);
	CHECK_MSG(pid2 > 0 && pid2 != pid, "pid %d -> %d", pid, pid2);
	nb_pool_release(p, c);
	nb_pool_destroy(p);
	nb_pool_destroy(admin);
}

static void test_recycling_replaces_old_connections(void)
{
	nb_pool_opts_t o;
	base_opts(&o, 1, 0, 2000);
	o.max_age_ms = 300;
	nb_pool_t *p = nb_pool_create(&o);
	nb_conn_t *c = NULL;
	CHECK_INT(nb_pool_acquire(p, &c), 0);
	int pid = backend_pid(c);
	nb_pool_release(p, c);
	CHECK_INT(nb_pool_acquire(p, &c), 0);
	CHECK_INT(backend_pid(c), pid); /* young: reused */
	nb_pool_release(p, c);
	usleep(400 * 1000); /* not a wait for a state: the connection must grow older than max_age */
	CHECK_INT(nb_pool_acquire(p, &c), 0);
	int pid2 = backend_pid(c);
	CHECK(pid2 > 0 && pid2 != pid);
	nb_pool_release(p, c);
	nb_pool_stats_t s;
	nb_pool_stats(p, &s);
	CHECK(s.created >= 2);
	CHECK_INT(s.total, 1);
	nb_pool_destroy(p);
}

static void test_overflow_opened_and_closed_when_idle(void)
{
	nb_pool_opts_t o;
	base_opts(&o, 1, 2, 200);
	o.overflow_idle_ms = 100;
	nb_pool_t *p = nb_pool_create(&o);
	nb_conn_t *c[4] = {0};
	for (int i = 0; i < 3; i++)
		CHECK_INT(nb_pool_acquire(p, &c[i]), 0);
	CHECK_INT(nb_pool_acquire(p, &c[3]), NB_EUNAVAIL); /* size + overflow reached */
	nb_pool_stats_t s;
	nb_pool_stats(p, &s);
	CHECK_INT(s.total, 3);
	for (int i = 0; i < 3; i++)
		nb_pool_release(p, c[i]);
	int64_t until = nb_mono_ms() + 5000; /* the surplus goes once idle for overflow_idle_ms */
	do {
		usleep(5000);
		nb_pool_reap(p);
		nb_pool_stats(p, &s);
	} while (s.total != 1 && nb_mono_ms() < until);
	CHECK_INT(s.total, 1);
	CHECK_INT(s.idle, 1);
	nb_pool_destroy(p);
}

static void test_statement_timeout_is_set(void)
{
	nb_pool_opts_t o;
	base_opts(&o, 1, 0, 2000);
	o.statement_timeout_ms = 150;
	nb_pool_t *p = nb_pool_create(&o);
	nb_conn_t *c = NULL;
	CHECK_INT(nb_pool_acquire(p, &c), 0);
	nb_params_t pr;
	nb_params_init(&pr);
	nb_p_text(&pr, "statement_timeout");
	PGresult *r = NULL;
	CHECK_INT(nb_db_exec(c, &st_setting, &pr, &r), 0);
	CHECK_STR(r ? nb_db_get(r, 0, 0) : NULL, "150ms");
	PQclear(r);
	nb_params_init(&pr);
	nb_p_text(&pr, "idle_in_transaction_session_timeout");
	CHECK_INT(nb_db_exec(c, &st_setting, &pr, &r), 0);
	CHECK_STR(r ? nb_db_get(r, 0, 0) : NULL, "1min");
	PQclear(r);
	nb_params_init(&pr);
	nb_p_text(&pr, "1");
	int64_t t0 = nb_mono_ms();
	CHECK_INT(nb_db_exec(c, &st_sleep, &pr, NULL), NB_ETIMEOUT);
	CHECK(nb_mono_ms() - t0 < 900);
	CHECK_STR(nb_db_sqlstate(), "57014");
	nb_pool_release(p, c);
	/* the connection is still fine afterwards */
	CHECK_INT(nb_pool_acquire(p, &c), 0);
	CHECK(backend_pid(c) > 0);
	nb_pool_release(p, c);
	nb_pool_destroy(p);
}

static void test_prepared_once_and_counted(void)
{
	nb_pool_t *p = make_pool(1, 0, 2000);
	nb_conn_t *c = NULL;
	CHECK_INT(nb_pool_acquire(p, &c), 0);
	nb_db_stmt_count_reset();
	for (int i = 0; i < 5; i++)
		CHECK(backend_pid(c) > 0);
	CHECK_INT(nb_db_stmt_count(), 5);
	PGresult *r = NULL;
	CHECK_INT(nb_db_exec(c, &st_prepared, NULL, &r), 0);
	CHECK_INT(r ? nb_db_get_int(r, 0, 0) : -1, 1);
	PQclear(r);
	CHECK_INT(nb_db_stmt_count(), 6);
	nb_db_stmt_count_reset();
	CHECK_INT(nb_db_stmt_count(), 0);
	nb_pool_release(p, c);
	nb_pool_destroy(p);
}

static void test_open_transaction_rolled_back_on_release(void)
{
	nb_pool_t *p = make_pool(1, 0, 2000);
	nb_conn_t *c = NULL;
	CHECK_INT(nb_pool_acquire(p, &c), 0);
	CHECK_INT(nb_db_begin(c), 0);
	CHECK(PQtransactionStatus(nb_conn_pg(c)) == PQTRANS_INTRANS);
	nb_pool_release(p, c);
	CHECK_INT(nb_pool_acquire(p, &c), 0);
	CHECK(PQtransactionStatus(nb_conn_pg(c)) == PQTRANS_IDLE);
	nb_pool_release(p, c);
	nb_pool_destroy(p);
}

static void test_unreachable_database_fails_fast_with_backoff(void)
{
	nb_pool_opts_t o;
	base_opts(&o, 2, 0, 5000);
	o.conninfo = "postgresql://nobody@127.0.0.1:1/none";
	o.connect_timeout_s = 2;
	nb_pool_t *p = nb_pool_create(&o);
	nb_conn_t *c = NULL;
	int64_t t0 = nb_mono_ms();
	CHECK_INT(nb_pool_acquire(p, &c), NB_EUNAVAIL);
	CHECK_INT(nb_pool_acquire(p, &c), NB_EUNAVAIL); /* inside the backoff window: no connect */
	CHECK(nb_mono_ms() - t0 < 1000);
	nb_pool_stats_t s;
	nb_pool_stats(p, &s);
	CHECK_INT(s.connect_failures, 1);
	CHECK_INT(s.total, 0);
	nb_pool_destroy(p);
}

#define THREADS 8
#define ROUNDS 150

static void *hammer(void *arg)
{
	nb_pool_t *p = arg;
	long bad = 0;
	for (int i = 0; i < ROUNDS; i++) {
		nb_conn_t *c = NULL;
		if (nb_pool_acquire(p, &c) < 0) {
			bad++;
			continue;
		}
		if (backend_pid(c) <= 0)
			bad++;
		nb_pool_release(p, c);
	}
	return (void *)bad;
}

static void test_many_threads_share_a_small_pool(void)
{
	nb_pool_t *p = make_pool(2, 1, 10000);
	pthread_t th[THREADS];
	for (int i = 0; i < THREADS; i++)
		pthread_create(&th[i], NULL, hammer, p);
	long bad = 0;
	for (int i = 0; i < THREADS; i++) {
		void *rv;
		pthread_join(th[i], &rv);
		bad += (long)rv;
	}
	CHECK_INT(bad, 0);
	nb_pool_stats_t s;
	nb_pool_stats(p, &s);
	CHECK(s.total <= 3);
	CHECK_INT(s.in_use, 0);
	CHECK_INT(s.acquires, THREADS * ROUNDS);
	nb_pool_destroy(p);
}

int main(void)
{
	if (!(url = itest_url()))
		return 2;
	T_RUN(test_exhaustion_times_out);
	T_RUN(test_waiter_gets_released_connection);
	T_RUN(test_killed_backend_replaced_transparently);
	T_RUN(test_killed_backend_retried_on_first_statement);
	T_RUN(test_recycling_replaces_old_connections);
	T_RUN(test_overflow_opened_and_closed_when_idle);
	T_RUN(test_statement_timeout_is_set);
	T_RUN(test_prepared_once_and_counted);
	T_RUN(test_open_transaction_rolled_back_on_release);
	T_RUN(test_unreachable_database_fails_fast_with_backoff);
	T_RUN(test_many_threads_share_a_small_pool);
	return t_done();
}
