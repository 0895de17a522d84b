/*
 * test_queue.c — the PostgreSQL job queue against a real cluster
 * (NB_TEST_DATABASE_URL): transactional enqueue and NOTIFY, two sessions
 * racing for jobs (PostgreSQL's skip-locked.spec), four worker processes
 * racing for 2,000 jobs, kill -9 of a worker mid-job, retries with backoff
 * until dead, the reaper on back-dated rows, graceful stop and hand-back,
 * heartbeats, the worker command, and the API's job reads.
 *
 * 'noop' and 'fail' come from nb_jobs_register_test_kinds (the production
 * binary registers them only with NOTEBOOKD_DEBUG_ROUTES=1). Handlers of the
 * tests' own (the jobs table's CHECK constraint allows only the kinds it
 * names, so tests borrow two product kinds for them):
 *   generate_quiz        records each run in queue_test_runs; its payload may
 *                        ask it to sleep ({"sleep_ms"}), to ignore shutdown
 *                        ({"ignore_stop"}) or to fail for good ({"permanent"});
 *   generate_study_guide fails, remembering when each attempt ran.
 * Worker processes are fork()ed children, each with its own pool.
 */
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "db/db.h"
#include "db/pool.h"
#include "jobs/queue.h"
#include "jobs/worker.h"
#include "store/jobs.h"
#include "store/rows.h"
#include "t.h"
#include "itest.h"

static const char *url;
static nb_pool_t *pool; /* the test's own connections */
static char user_id[37], other_user_id[37];

NB_STMT(st_user_new, "INSERT INTO users (id, email, password_hash) VALUES ($1, $2, 'x')");
NB_STMT(st_run_insert, "INSERT INTO queue_test_runs (job_id, pid) VALUES ($1, $2)");
NB_STMT(st_count_status, "SELECT count(*) FROM jobs WHERE status = $1");
NB_STMT(st_count_all, "SELECT count(*) FROM jobs WHERE $1::text IS NULL");
NB_STMT(st_count_running_by, "SELECT count(*) FROM jobs WHERE status = 'running' AND locked_by LIKE $1 || '@%'");
NB_STMT(st_count_attempts_not_1, "SELECT count(*) FROM jobs WHERE attempts <> 1 AND $1::text IS NULL");
NB_STMT(st_count_rescued, "SELECT count(*) FROM jobs WHERE attempts >= 2 AND last_error = 'lease expired (worker lost)'"
			  " AND $1::text IS NULL");
NB_STMT(st_runs_total, "SELECT count(*) FROM queue_test_runs WHERE $1::text IS NULL");
NB_STMT(st_runs_distinct, "SELECT count(DISTINCT job_id) FROM queue_test_runs WHERE $1::text IS NULL");
NB_STMT(st_runs_of, "SELECT count(*) FROM queue_test_runs WHERE job_id = $1");
NB_STMT(st_runs_pids, "SELECT count(DISTINCT pid) FROM queue_test_runs WHERE $1::text IS NULL");
NB_STMT(st_runs_never, "SELECT count(*) FROM jobs j WHERE NOT EXISTS"
		       " (SELECT 1 FROM queue_test_runs r WHERE r.job_id = j.id) AND $1::text IS NULL");
NB_STMT(st_runs_by_pid, "SELECT string_agg(n::text, ' ' ORDER BY n DESC) FROM"
			" (SELECT count(*) n FROM queue_test_runs GROUP BY pid) x");
NB_STMT(st_job_row, "SELECT status, attempts, max_attempts, coalesce(last_error, ''), locked_by IS NULL,"
		    " finished_at IS NOT NULL, payload::text, locked_until IS NULL FROM jobs WHERE id = $1");
NB_STMT(st_lease_left_ms, "SELECT extract(epoch FROM locked_until - now()) * 1000 FROM jobs WHERE id = $1");
NB_STMT(st_insert_running,
	"INSERT INTO jobs (id, user_id, kind, status, attempts, max_attempts, locked_by, locked_until, run_at)"
	" VALUES ($1, $2, 'noop', 'running', $3, $4, 'ghost', now() + $5::int * interval '1 second',"
	" now() - interval '2 minutes')");
NB_STMT(st_listener_pid, "SELECT coalesce(max(pid), 0) FROM pg_stat_activity"
			 " WHERE application_name = 'notebookd-listen' AND $1::text IS NULL");
NB_STMT(st_count_listeners, "SELECT count(*) FROM pg_stat_activity"
			    " WHERE application_name = 'notebookd-listen' AND $1::text IS NULL");
NB_STMT(st_kill_listener, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
			  " WHERE application_name = 'notebookd-listen' AND $1::text IS NULL");
NB_STMT(st_backdate_created, "UPDATE jobs SET created_at = created_at - $2::int * interval '1 second' WHERE id = $1");

/* ---- helpers ------------------------------------------------------------- */

static nb_pool_t *make_pool(int size)
{
	nb_pool_opts_t o = {0};
	o.conninfo = url;
	o.application_name = "nb-test-queue";
	o.size = size;
	o.overflow = 4;
	o.acquire_timeout_ms = 5000;
	o.preping_idle_ms = 60000;
	o.max_age_ms = 600000;
	o.overflow_idle_ms = 60000;
	o.statement_timeout_ms = 10000;
	o.idle_in_tx_timeout_ms = 60000;
	o.connect_timeout_s = 5;
	return nb_pool_create(&o);
}

static nb_conn_t *conn(void)
{
	nb_conn_t *c = NULL;
	if (nb_pool_acquire(pool, &c) < 0) {
		fprintf(stderr, "cannot acquire a connection\n");
		exit(2);
	}
	return c;
}

/* One bigint from a statement with one text parameter (NULL allowed). */
static long long scalar(nb_stmt_t *st, const char *arg)
{
	nb_conn_t *c = conn();
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, arg);
	PGresult *r = NULL;
	long long v = -1;
	if (nb_db_exec(c, st, &p, &r) == 0 && PQntuples(r) == 1)
		v = (long long)nb_db_get_int(r, 0, 0);
	PQclear(r);
	nb_pool_release(pool, c);
	return v;
}

static long long count_status(const char *status)
{
	return scalar(&st_count_status, status);
}

/* Polls until the statement gives `want` (at least `want` if at_least) or
 * timeout_ms passes; true if it did. */
static bool wait_until(nb_stmt_t *st, const char *arg, long long want, bool at_least, int timeout_ms)
{
	int64_t until = nb_mono_ms() + timeout_ms;
	for (;;) {
		long long v = scalar(st, arg);
		if (v == want || (at_least && v > want))
			return true;
		if (nb_mono_ms() >= until)
			return false;
		usleep(20 * 1000);
	}
}

static bool wait_for(nb_stmt_t *st, const char *arg, long long want, int timeout_ms)
{
	return wait_until(st, arg, want, false, timeout_ms);
}

/* The counters of a worker set once the one at offset `off` reaches `want`
 * (or timeout_ms passes). A set counts an outcome just after its statement
 * commits, so a test that saw the rows change waits for the count too. */
static nb_workers_stats_t stats_when(nb_workers_t *w, size_t off, uint64_t want, int timeout_ms)
{
	int64_t until = nb_mono_ms() + timeout_ms;
	nb_workers_stats_t st;
	for (;;) {
		nb_workers_stats(w, &st);
		uint64_t v;
		memcpy(&v, (const char *)&st + off, sizeof v);
		if (v >= want || nb_mono_ms() >= until)
			return st;
		usleep(5 * 1000);
	}
}

typedef struct job_row {
	char status[16];
	int attempts, max_attempts;
	char last_error[256];
	bool unlocked, finished, lease_cleared;
	char payload[256];
} job_row_t;

static int get_row(const char *id, job_row_t *out)
{
	memset(out, 0, sizeof *out);
	nb_conn_t *c = conn();
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, id);
	PGresult *r = NULL;
	int rc = nb_db_exec(c, &st_job_row, &p, &r);
	if (rc == 0 && PQntuples(r) == 1) {
		snprintf(out->status, sizeof out->status, "%s", PQgetvalue(r, 0, 0));
		out->attempts = (int)nb_db_get_int(r, 0, 1);
		out->max_attempts = (int)nb_db_get_int(r, 0, 2);
		snprintf(out->last_error, sizeof out->last_error, "%s", PQgetvalue(r, 0, 3));
		out->unlocked = nb_db_get_bool(r, 0, 4);
		out->finished = nb_db_get_bool(r, 0, 5);
		snprintf(out->payload, sizeof out->payload, "%s", PQgetvalue(r, 0, 6));
		out->lease_cleared = nb_db_get_bool(r, 0, 7);
	} else if (rc == 0) {
		rc = NB_ENOTFOUND;
	}
	PQclear(r);
	nb_pool_release(pool, c);
	return rc;
}

static void reset(void)
{
	nb_conn_t *c = conn();
	if (nb_db_command(c, "TRUNCATE jobs, queue_test_runs") < 0)
		fprintf(stdout, "# reset failed\n");
	nb_pool_release(pool, c);
}

/* Enqueues n jobs, per_tx in each transaction; ids (if not NULL) get the ids. */
static int enqueue_n(int n, int per_tx, const char *kind, const char *payload, int max_attempts, char (*ids)[37])
{
	nb_conn_t *c = conn();
	int rc = 0;
	for (int i = 0; i < n && rc == 0; i += per_tx) {
		rc = nb_db_begin(c);
		for (int k = i; k < i + per_tx && k < n && rc == 0; k++) {
			char id[37];
			nb_job_spec_t s = {
			    .kind = kind, .user_id = user_id, .payload_json = payload, .max_attempts = max_attempts};
			rc = nb_jobs_enqueue(c, &s, id);
			if (ids)
				memcpy(ids[k], id, 37);
		}
		if (rc == 0)
			rc = nb_db_commit(c);
		else
			nb_db_rollback(c);
	}
	nb_pool_release(pool, c);
	return rc;
}

static int enqueue1(const char *kind, const char *payload, int max_attempts, char id[37])
{
	char ids[1][37];
	int rc = enqueue_n(1, 1, kind, payload, max_attempts, ids);
	memcpy(id, ids[0], 37);
	return rc;
}

/* Notifications that arrive on a LISTENing connection within ms. */
static int notifications(PGconn *l, int ms)
{
	int got = 0;
	int64_t until = nb_mono_ms() + ms;
	for (;;) {
		int left = (int)(until - nb_mono_ms());
		if (left <= 0)
			break;
		struct pollfd p = {.fd = PQsocket(l), .events = POLLIN};
		if (poll(&p, 1, left) <= 0)
			continue;
		if (!PQconsumeInput(l))
			return -1;
		PGnotify *n;
		while ((n = PQnotifies(l)) != NULL) {
			if (strcmp(n->relname, NB_JOBS_CHANNEL) == 0)
				got++;
			PQfreemem(n);
		}
	}
	return got;
}

/* ---- handlers ------------------------------------------------------------ */

static atomic_int handler_starts;

static int recording_job(const nb_job_t *job, nb_job_ctx_t *ctx, char *err, size_t errlen)
{
	atomic_fetch_add(&handler_starts, 1);
	json_t *p = job->payload;
	if (json_is_true(json_object_get(p, "permanent"))) {
		snprintf(err, errlen, "permanent failure");
		return NB_JOB_PERMANENT;
	}
	int64_t until = nb_mono_ms() + json_integer_value(json_object_get(p, "sleep_ms"));
	bool ignore_stop = json_is_true(json_object_get(p, "ignore_stop"));
	while (nb_mono_ms() < until) {
		if (!ignore_stop && nb_job_ctx_stopping(ctx)) {
			snprintf(err, errlen, "interrupted by shutdown");
			return -1;
		}
		usleep(5 * 1000);
	}
	nb_conn_t *c = nb_job_ctx_conn(ctx);
	if (!c) {
		snprintf(err, errlen, "no database connection");
		return -1;
	}
	nb_params_t pr;
	nb_params_init(&pr);
	nb_p_text(&pr, job->id);
	nb_p_int(&pr, getpid());
	if (nb_db_exec(c, &st_run_insert, &pr, NULL) < 0) {
		snprintf(err, errlen, "could not record the run");
		return -1;
	}
	return 0;
}

static int64_t fail_times[16];
static atomic_int nfail_times;

static int timed_failing_job(const nb_job_t *job, nb_job_ctx_t *ctx, char *err, size_t errlen)
{
	(void)ctx;
	int i = atomic_fetch_add(&nfail_times, 1);
	if (i < 16)
		fail_times[i] = nb_mono_ms();
	snprintf(err, errlen, "boom %d", job->attempts);
	return -1;
}

/* ---- worker sets and processes ------------------------------------------ */

typedef struct wconf {
	const char *name;
	int concurrency, lease_ms, poll_ms, reap_ms, prefetch;
} wconf_t;

static nb_workers_t *start_workers(nb_pool_t *p, const wconf_t *wc)
{
	nb_workers_opts_t o;
	nb_workers_opts_default(&o, wc->concurrency, wc->name);
	o.lease_ms = wc->lease_ms;
	o.poll_ms = wc->poll_ms;
	o.reap_interval_ms = wc->reap_ms;
	o.backoff_base_ms = 100;
	o.backoff_max_ms = 2000;
	if (wc->prefetch >= 0)
		o.prefetch_max = wc->prefetch;
	return nb_workers_start_opts(p, url, &o);
}

/* A child process running a worker set until SIGTERM. */
static pid_t spawn_worker_process(const wconf_t *wc)
{
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	/* The parent's pooled connections are never touched here. */
	nb_pool_t *p = make_pool(wc->concurrency + 3);
	nb_workers_t *w = start_workers(p, wc);
	int sig = 0;
	sigwait(&set, &sig);
	nb_workers_stop(w, 5000);
	nb_pool_destroy(p);
	_exit(0);
}

/* SIGTERM, then the exit status (or -signal). */
static int stop_process(pid_t pid)
{
	kill(pid, SIGTERM);
	int st = 0;
	if (waitpid(pid, &st, 0) != pid)
		return -1000;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
}

/* ---- 1. enqueue ---------------------------------------------------------- */

static void test_enqueue_is_transactional_and_notifies_once(void)
{
	reset();
	PGconn *l = PQconnectdb(url);
	CHECK(PQstatus(l) == CONNECTION_OK);
	CHECK_INT(nb_store_jobs_listen(l), 0);
	nb_conn_t *c = conn();
	char id[37];
	nb_job_spec_t s = {.kind = "noop", .user_id = user_id};

	CHECK_INT(nb_db_begin(c), 0);
	CHECK_INT(nb_jobs_enqueue(c, &s, id), 0);
	CHECK(nb_uuid_valid(id));
	nb_db_rollback(c);
	CHECK_INT(scalar(&st_count_all, NULL), 0);
	CHECK_INT(notifications(l, 300), 0);

	CHECK_INT(nb_db_begin(c), 0);
	for (int i = 0; i < 3; i++)
		CHECK_INT(nb_jobs_enqueue(c, &s, id), 0);
	CHECK_INT(notifications(l, 100), 0); /* nothing before commit */
	CHECK_INT(nb_db_commit(c), 0);
	CHECK_INT(scalar(&st_count_all, NULL), 3);
	CHECK_INT(notifications(l, 500), 1); /* three jobs, one notification */

	job_row_t row;
	CHECK_INT(get_row(id, &row), 0);
	CHECK_STR(row.status, "pending");
	CHECK_INT(row.attempts, 0);
	CHECK_INT(row.max_attempts, nb_cfg.job_max_attempts);
	CHECK_STR(row.payload, "{}");

	/* A delayed job is not announced (nobody could take it yet). */
	nb_job_spec_t later = {.kind = "noop",
			       .user_id = user_id,
			       .delay_ms = 60000,
			       .payload_json = "{\"a\": [1, 2]}",
			       .max_attempts = 7};
	CHECK_INT(nb_jobs_enqueue(c, &later, id), 0);
	CHECK_INT(notifications(l, 300), 0);
	CHECK_INT(get_row(id, &row), 0);
	CHECK_INT(row.max_attempts, 7);
	CHECK_STR(row.payload, "{\"a\": [1, 2]}");

	/* Outside a transaction it commits (and announces) by itself. */
	CHECK_INT(nb_jobs_enqueue(c, &s, id), 0);
	CHECK_INT(notifications(l, 500), 1);

	nb_job_spec_t bad = s;
	bad.payload_json = "[1]";
	CHECK_INT(nb_jobs_enqueue(c, &bad, id), NB_EINVALID);
	bad.payload_json = "{";
	CHECK_INT(nb_jobs_enqueue(c, &bad, id), NB_EINVALID);
	bad = s;
	bad.max_attempts = 101;
	CHECK_INT(nb_jobs_enqueue(c, &bad, id), NB_EINVALID);
	bad = s;
	bad.kind = "no_such_kind"; /* the CHECK constraint */
	CHECK_INT(nb_jobs_enqueue(c, &bad, id), NB_EDB);
	CHECK_INT(scalar(&st_count_all, NULL), 5);
	nb_pool_release(pool, c);
	PQfinish(l);
}

/* ---- 2. two sessions racing ---------------------------------------------- */

static const char *const test_kinds[] = {"noop", "fail", "generate_quiz", "generate_study_guide"};

static int claim_ids(nb_conn_t *c, const char *worker, int limit, char (*ids)[37], int *n)
{
	nb_job_t *jobs = calloc((size_t)limit, sizeof *jobs);
	int rc = nb_store_jobs_claim(c, worker, 60000, test_kinds, 4, limit, jobs, n);
	for (int i = 0; i < *n; i++) {
		memcpy(ids[i], jobs[i].id, 37);
		json_decref(jobs[i].payload);
	}
	free(jobs);
	return rc;
}

typedef struct claimer {
	const char *name;
	char (*ids)[37];
	int n;
	int rc;
} claimer_t;

static void *claim_thread(void *arg)
{
	claimer_t *cl = arg;
	nb_conn_t *c = conn();
	for (;;) {
		int got = 0;
		cl->rc = claim_ids(c, cl->name, 7, cl->ids + cl->n, &got);
		if (cl->rc < 0 || got == 0)
			break;
		cl->n += got;
	}
	nb_pool_release(pool, c);
	return NULL;
}

static int cmp_id(const void *a, const void *b)
{
	return memcmp(a, b, 36);
}

static void test_two_sessions_never_claim_the_same_job(void)
{
	reset();
	CHECK_INT(enqueue_n(10, 10, "noop", NULL, 0, NULL), 0);
	nb_conn_t *a = conn(), *b = conn();
	char ida[10][37], idb[10][37];
	int na = 0, nb = 0;
	/* A claims inside an open transaction and keeps its row locks... */
	CHECK_INT(nb_db_begin(a), 0);
	CHECK_INT(claim_ids(a, "A", 5, ida, &na), 0);
	CHECK_INT(na, 5);
	/* ...B neither waits for them nor gets them. */
	int64_t t0 = nb_mono_ms();
	CHECK_INT(claim_ids(b, "B", 10, idb, &nb), 0);
	CHECK_MSG(nb_mono_ms() - t0 < 1000, "B waited %lld ms", (long long)(nb_mono_ms() - t0));
	CHECK_INT(nb, 5);
	for (int i = 0; i < na; i++)
		for (int k = 0; k < nb; k++)
			CHECK(strcmp(ida[i], idb[k]) != 0);
	CHECK_INT(nb_db_commit(a), 0);
	CHECK_INT(claim_ids(b, "B", 10, idb, &nb), 0);
	CHECK_INT(nb, 0);
	CHECK_INT(count_status("running"), 10);
	nb_pool_release(pool, a);
	nb_pool_release(pool, b);

	/* Free-running: two threads claim 2,000 jobs in batches of 7. */
	reset();
	enum { N = 2000 };
	CHECK_INT(enqueue_n(N, 500, "noop", NULL, 0, NULL), 0);
	claimer_t c1 = {"one", calloc(N + 8, 37), 0, 0}, c2 = {"two", calloc(N + 8, 37), 0, 0};
	pthread_t t1, t2;
	pthread_create(&t1, NULL, claim_thread, &c1);
	pthread_create(&t2, NULL, claim_thread, &c2);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	CHECK_INT(c1.rc, 0);
	CHECK_INT(c2.rc, 0);
	CHECK_INT(c1.n + c2.n, N);
	CHECK_MSG(c1.n > 0 && c2.n > 0, "one %d, two %d", c1.n, c2.n);
	char(*all)[37] = calloc(N + 16, 37);
	memcpy(all, c1.ids, (size_t)c1.n * 37);
	memcpy(all + c1.n, c2.ids, (size_t)c2.n * 37);
	qsort(all, (size_t)(c1.n + c2.n), 37, cmp_id);
	int dups = 0;
	for (int i = 1; i < c1.n + c2.n; i++)
		dups += memcmp(all[i - 1], all[i], 36) == 0;
	CHECK_INT(dups, 0);
	CHECK_INT(count_status("running"), N);
	CHECK_INT(scalar(&st_count_attempts_not_1, NULL), 0);
	fprintf(stdout, "# claim race: %d and %d jobs\n", c1.n, c2.n);
	free(all);
	free(c1.ids);
	free(c2.ids);
}

/* ---- 3. four worker processes -------------------------------------------- */

static void test_four_processes_run_each_job_exactly_once(void)
{
	reset();
	enum { N = 2000, PROCS = 4 };
	/* A long poll: waking up has to come from LISTEN/NOTIFY. */
	wconf_t wc = {"race", 2, 30000, 60000, 5000, -1};
	pid_t pids[PROCS];
	for (int i = 0; i < PROCS; i++)
		pids[i] = spawn_worker_process(&wc);
	/* every process listening: from now on only NOTIFY brings the jobs in time */
	CHECK(wait_until(&st_count_listeners, NULL, PROCS, true, 10000));
	int64_t t0 = nb_mono_ms();
	CHECK_INT(enqueue_n(N, 100, "generate_quiz", NULL, 0, NULL), 0);
	bool all_done = wait_for(&st_count_status, "succeeded", N, 30000);
	int64_t ms = nb_mono_ms() - t0;
	for (int i = 0; i < PROCS; i++)
		CHECK_INT(stop_process(pids[i]), 0);
	CHECK_MSG(all_done, "%lld of %d succeeded", count_status("succeeded"), N);
	CHECK_INT(scalar(&st_runs_total, NULL), N);    /* N runs ... */
	CHECK_INT(scalar(&st_runs_distinct, NULL), N); /* ... one per job */
	CHECK_INT(scalar(&st_count_attempts_not_1, NULL), 0);
	CHECK_INT(count_status("pending") + count_status("running") + count_status("failed"), 0);
	long long procs = scalar(&st_runs_pids, NULL);
	CHECK_MSG(procs >= 2, "only %lld process(es) ran jobs", procs);
	nb_conn_t *c = conn();
	PGresult *r = NULL;
	if (nb_db_exec(c, &st_runs_by_pid, NULL, &r) == 0)
		fprintf(stdout, "# %d jobs in %lld ms by %d processes (runs per process: %s)\n", N, (long long)ms,
			PROCS, PQgetvalue(r, 0, 0));
	PQclear(r);
	nb_pool_release(pool, c);
}

/* ---- 4. kill -9 ---------------------------------------------------------- */

static void test_killed_worker_jobs_are_rescued(void)
{
	reset();
	enum { N = 30 };
	CHECK_INT(enqueue_n(N, N, "generate_quiz", "{\"sleep_ms\": 200}", 0, NULL), 0);
	wconf_t victim = {"victim", 4, 1500, 200, 300, -1};
	wconf_t survivor = {"survivor", 2, 1500, 200, 300, -1};
	pid_t v = spawn_worker_process(&victim);
	/* a cold set prefetches one job (no more before a duration is measured): 4 running + 1 */
	CHECK_MSG(wait_until(&st_count_running_by, "victim", 5, true, 5000), "the victim never held 5 jobs");
	pid_t s = spawn_worker_process(&survivor);
	CHECK(wait_until(&st_count_listeners, NULL, 2, true, 5000)); /* the survivor is up */
	long long held = scalar(&st_count_running_by, "victim");
	kill(v, SIGKILL);
	int st = 0;
	waitpid(v, &st, 0);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	int64_t t0 = nb_mono_ms();
	bool all_done = wait_for(&st_count_status, "succeeded", N, 20000);
	int64_t ms = nb_mono_ms() - t0;
	CHECK_INT(stop_process(s), 0);
	CHECK_MSG(all_done, "%lld of %d succeeded", count_status("succeeded"), N);
	CHECK_INT(scalar(&st_runs_never, NULL), 0); /* none lost */
	long long rescued = scalar(&st_count_rescued, NULL);
	CHECK_MSG(rescued >= 1 && rescued <= held, "rescued %lld, the victim held %lld", rescued, held);
	fprintf(stdout, "# victim held %lld jobs when killed; %lld rescued; all done %lld ms after the kill\n", held,
		rescued, (long long)ms);
}

/* ---- 5. retries ---------------------------------------------------------- */

static void test_failing_jobs_back_off_then_die(void)
{
	reset();
	atomic_store(&nfail_times, 0);
	char a[37], b[37], p[37];
	CHECK_INT(enqueue1("fail", NULL, 3, a), 0);
	CHECK_INT(enqueue1("generate_study_guide", NULL, 3, b), 0);
	CHECK_INT(enqueue1("generate_quiz", "{\"permanent\": true}", 5, p), 0);
	/* Backoff base 100 ms; the poll is long, so retries must be woken on time. */
	nb_pool_t *wp = make_pool(5);
	wconf_t wc = {"retry", 2, 10000, 60000, 5000, -1};
	nb_workers_t *w = start_workers(wp, &wc);
	bool dead = wait_for(&st_count_status, "dead", 3, 10000);
	nb_workers_stats_t st = stats_when(w, offsetof(nb_workers_stats_t, dead), 3, 5000);
	nb_workers_stop(w, 1000);
	nb_pool_destroy(wp);
	CHECK(dead);

	job_row_t r;
	CHECK_INT(get_row(a, &r), 0);
	CHECK_STR(r.status, "dead");
	CHECK_INT(r.attempts, 3);
	CHECK_STR(r.last_error, "the fail job always fails (attempt 3 of 3)");
	CHECK(r.finished && r.unlocked && r.lease_cleared);

	CHECK_INT(get_row(b, &r), 0);
	CHECK_STR(r.status, "dead");
	CHECK_INT(r.attempts, 3);
	CHECK_STR(r.last_error, "boom 3");
	CHECK_INT(atomic_load(&nfail_times), 3);
	int64_t g1 = fail_times[1] - fail_times[0], g2 = fail_times[2] - fail_times[1];
	/* 100 ms then 200 ms, each ±50 %; the upper bounds leave room for a busy machine. */
	CHECK_MSG(g1 >= 50 && g1 <= 600, "first gap %lld ms", (long long)g1);
	CHECK_MSG(g2 >= 100 && g2 <= 900, "second gap %lld ms", (long long)g2);
	fprintf(stdout, "# retry gaps: %lld ms, %lld ms\n", (long long)g1, (long long)g2);

	CHECK_INT(get_row(p, &r), 0);
	CHECK_STR(r.status, "dead");
	CHECK_INT(r.attempts, 1);
	CHECK_STR(r.last_error, "permanent failure");
	CHECK(r.finished);

	CHECK_INT(st.dead, 3);
	CHECK_INT(st.failed, 4);
	CHECK_INT(st.succeeded, 0);
}

/* ---- 6. the reaper --------------------------------------------------------- */

static void insert_running(char id[37], int attempts, int max_attempts, int lease_left_s)
{
	nb_uuid_v7_str(id);
	nb_conn_t *c = conn();
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, id);
	nb_p_text(&p, user_id);
	nb_p_int(&p, attempts);
	nb_p_int(&p, max_attempts);
	nb_p_int(&p, lease_left_s);
	CHECK_INT(nb_db_exec(c, &st_insert_running, &p, NULL), 0);
	nb_pool_release(pool, c);
}

static void test_reaper_requeues_expired_leases(void)
{
	reset();
	char lost[37], hopeless[37], alive[37];
	insert_running(lost, 1, 5, -60);
	insert_running(hopeless, 5, 5, -60);
	insert_running(alive, 1, 5, 60);
	nb_conn_t *c = conn();
	int requeued = -1, dead = -1;
	CHECK_INT(nb_store_jobs_reap(c, 100, &requeued, &dead), 0);
	CHECK_INT(requeued, 1);
	CHECK_INT(dead, 1);
	job_row_t r;
	CHECK_INT(get_row(lost, &r), 0);
	CHECK_STR(r.status, "failed");
	CHECK_STR(r.last_error, "lease expired (worker lost)");
	CHECK(r.unlocked && r.lease_cleared && !r.finished);
	CHECK_INT(get_row(hopeless, &r), 0);
	CHECK_STR(r.status, "dead");
	CHECK(r.finished && r.unlocked);
	CHECK_INT(get_row(alive, &r), 0);
	CHECK_STR(r.status, "running");
	CHECK(!r.unlocked);
	/* A second pass finds nothing; the rescued job is claimable again. */
	CHECK_INT(nb_store_jobs_reap(c, 100, &requeued, &dead), 0);
	CHECK_INT(requeued + dead, 0);
	char ids[4][37];
	int n = 0;
	CHECK_INT(claim_ids(c, "rescuer", 4, ids, &n), 0);
	CHECK_INT(n, 1);
	CHECK_STR(ids[0], lost);
	CHECK_INT(get_row(lost, &r), 0);
	CHECK_INT(r.attempts, 2);
	/* The lost owner comes back: it can complete nothing of the new attempt. */
	const char *mine[] = {lost};
	int done = -1;
	CHECK_INT(nb_store_jobs_succeed(c, "ghost", mine, 1, &done), 0);
	CHECK_INT(done, 0);
	nb_store_job_failure_t f = {lost, "late failure", 0, true};
	CHECK_INT(nb_store_jobs_fail(c, "ghost", &f, 1, &done, &dead), 0);
	CHECK_INT(done, 0);
	CHECK_INT(nb_store_jobs_heartbeat(c, "ghost", mine, 1, 60000, &done), 0);
	CHECK_INT(done, 0);
	CHECK_INT(get_row(lost, &r), 0);
	CHECK_STR(r.status, "running");
	CHECK_INT(nb_store_jobs_succeed(c, "rescuer", mine, 1, &done), 0);
	CHECK_INT(done, 1);
	CHECK_INT(get_row(lost, &r), 0);
	CHECK_STR(r.status, "succeeded");
	nb_pool_release(pool, c);

	/* A starting worker set reaps at once and runs what it rescued. */
	reset();
	insert_running(lost, 1, 5, -60);
	nb_pool_t *wp = make_pool(4);
	wconf_t wc = {"reaper", 1, 10000, 60000, 60000, -1};
	nb_workers_t *w = start_workers(wp, &wc);
	CHECK(wait_for(&st_count_status, "succeeded", 1, 5000));
	nb_workers_stats_t st = stats_when(w, offsetof(nb_workers_stats_t, reaped), 1, 5000);
	CHECK_INT(st.reaped, 1);
	nb_workers_stop(w, 1000);
	nb_pool_destroy(wp);
	CHECK_INT(get_row(lost, &r), 0);
	CHECK_INT(r.attempts, 2);
}

/* ---- 7. graceful stop ------------------------------------------------------ */

static void test_stop_drains_then_hands_back(void)
{
	reset();
	nb_pool_t *wp = make_pool(4);
	wconf_t wc = {"stop", 1, 10000, 50, 5000, 1};

	/* Within the timeout: the running job finishes. */
	char a[37];
	CHECK_INT(enqueue1("generate_quiz", "{\"sleep_ms\": 400}", 0, a), 0);
	atomic_store(&handler_starts, 0);
	nb_workers_t *w = start_workers(wp, &wc);
	int64_t until = nb_mono_ms() + 5000;
	while (atomic_load(&handler_starts) < 1 && nb_mono_ms() < until)
		usleep(5000);
	int64_t t0 = nb_mono_ms();
	nb_workers_stop(w, 5000);
	int64_t ms = nb_mono_ms() - t0;
	job_row_t r;
	CHECK_INT(get_row(a, &r), 0);
	CHECK_STR(r.status, "succeeded");
	CHECK(r.unlocked && r.finished);
	CHECK_MSG(ms < 3000, "stop took %lld ms", (long long)ms);

	/* Too short: the running job and the prefetched one are handed back. */
	reset();
	char b[37], c[37];
	CHECK_INT(enqueue1("generate_quiz", "{\"sleep_ms\": 1200}", 0, b), 0);
	usleep(2000); /* not a wait for a state: c's run_at must be later, so that b runs first */
	CHECK_INT(enqueue1("generate_quiz", NULL, 0, c), 0);
	atomic_store(&handler_starts, 0);
	w = start_workers(wp, &wc);
	until = nb_mono_ms() + 5000;
	while (atomic_load(&handler_starts) < 1 && nb_mono_ms() < until)
		usleep(5000);
	CHECK_INT(count_status("running"), 2); /* b runs, c waits in the local queue */
	t0 = nb_mono_ms();
	nb_workers_stop(w, 200);
	ms = nb_mono_ms() - t0;
	CHECK_MSG(ms < 1000, "stop took %lld ms", (long long)ms);
	CHECK_INT(get_row(b, &r), 0);
	CHECK_STR(r.status, "pending");
	CHECK_INT(r.attempts, 0);
	CHECK(r.unlocked && r.lease_cleared && !r.finished);
	CHECK_INT(get_row(c, &r), 0);
	CHECK_STR(r.status, "pending");
	CHECK_INT(r.attempts, 0);
	CHECK(r.unlocked);

	/* Then everything runs to completion on a fresh set. */
	w = start_workers(wp, &wc);
	bool done = wait_for(&st_count_status, "succeeded", 2, 8000);
	nb_workers_stop(w, 5000);
	nb_pool_destroy(wp);
	CHECK_MSG(done, "%lld of 2 succeeded", count_status("succeeded"));
	CHECK_INT(scalar(&st_runs_of, b), 1);
	CHECK_INT(scalar(&st_runs_of, c), 1);
}

static void test_stop_hands_back_a_handler_that_ignores_it(void)
{
	reset();
	nb_pool_t *wp = make_pool(4);
	wconf_t wc = {"stubborn", 1, 10000, 50, 5000, 0};
	char d[37];
	CHECK_INT(enqueue1("generate_quiz", "{\"sleep_ms\": 600, \"ignore_stop\": true}", 0, d), 0);
	atomic_store(&handler_starts, 0);
	nb_workers_t *w = start_workers(wp, &wc);
	int64_t until = nb_mono_ms() + 5000;
	while (atomic_load(&handler_starts) < 1 && nb_mono_ms() < until)
		usleep(5000);
	int64_t t0 = nb_mono_ms();
	nb_workers_stop(w, 100);
	int64_t ms = nb_mono_ms() - t0;
	CHECK_MSG(ms >= 300, "stop returned after %lld ms, before the handler", (long long)ms);
	job_row_t r;
	CHECK_INT(get_row(d, &r), 0);
	CHECK_STR(r.status, "pending"); /* its late success was not recorded */
	CHECK_INT(r.attempts, 0);
	CHECK(r.unlocked);
	CHECK_INT(scalar(&st_runs_of, d), 1); /* it did run: at least once */
	w = start_workers(wp, &wc);
	CHECK(wait_for(&st_count_status, "succeeded", 1, 5000));
	nb_workers_stop(w, 5000);
	nb_pool_destroy(wp);
	CHECK_INT(scalar(&st_runs_of, d), 2);
}

/* ---- 8. heartbeats ----------------------------------------------------------- */

static double lease_left_ms(const char *id)
{
	nb_conn_t *c = conn();
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, id);
	PGresult *r = NULL;
	double v = -1e9;
	if (nb_db_exec(c, &st_lease_left_ms, &p, &r) == 0 && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
		v = atof(PQgetvalue(r, 0, 0));
	PQclear(r);
	nb_pool_release(pool, c);
	return v;
}

static void test_heartbeats_keep_a_long_job(void)
{
	reset();
	char e[37];
	CHECK_INT(enqueue1("generate_quiz", "{\"sleep_ms\": 5000}", 0, e), 0);
	nb_pool_t *p1 = make_pool(4), *p2 = make_pool(4);
	/* Lease 2 s, beats every 667 ms; the other set reaps every 200 ms. A beat
	 * may come up to 1.3 s late (a loaded or ASan machine) before the lease
	 * runs out: with a 1 s lease, 667 ms of slack, a loaded run lost it. */
	wconf_t owner = {"owner", 1, 2000, 50, 200, 0};
	wconf_t rival = {"rival", 2, 2000, 50, 200, 0};
	atomic_store(&handler_starts, 0);
	nb_workers_t *w1 = start_workers(p1, &owner);
	int64_t until = nb_mono_ms() + 5000;
	while (atomic_load(&handler_starts) < 1 && nb_mono_ms() < until)
		usleep(5000);
	nb_workers_t *w2 = start_workers(p2, &rival);
	usleep(4000 * 1000); /* not a wait for a state: the job must outlive twice its lease */
	double left = lease_left_ms(e);
	CHECK_MSG(left > 0, "lease left %.0f ms at 4 s", left);
	bool done = wait_for(&st_count_status, "succeeded", 1, 8000);
	nb_workers_stats_t s1 = stats_when(w1, offsetof(nb_workers_stats_t, succeeded), 1, 5000), s2;
	nb_workers_stats(w2, &s2);
	nb_workers_stop(w2, 1000);
	nb_workers_stop(w1, 1000);
	nb_pool_destroy(p1);
	nb_pool_destroy(p2);
	CHECK(done);
	job_row_t r;
	CHECK_INT(get_row(e, &r), 0);
	CHECK_STR(r.status, "succeeded");
	CHECK_INT(r.attempts, 1);
	CHECK_INT(scalar(&st_runs_of, e), 1);
	CHECK_INT(s1.succeeded, 1);
	CHECK_INT(s1.lost, 0);
	CHECK_INT(s2.claimed, 0);
	CHECK_INT(s2.reaped, 0);
}

/* ---- the listener ------------------------------------------------------------ */

static void test_listener_reconnects(void)
{
	reset();
	nb_pool_t *wp = make_pool(4);
	/* A long poll: only NOTIFY can bring the jobs in time. */
	wconf_t wc = {"listen", 1, 10000, 60000, 60000, -1};
	nb_workers_t *w = start_workers(wp, &wc);
	CHECK(wait_until(&st_listener_pid, NULL, 1, true, 5000));
	long long pid = scalar(&st_listener_pid, NULL);
	char id[37];
	CHECK_INT(enqueue1("noop", NULL, 0, id), 0);
	CHECK(wait_for(&st_count_status, "succeeded", 1, 3000));

	CHECK_INT(scalar(&st_kill_listener, NULL), 1);
	int64_t until = nb_mono_ms() + 5000;
	long long pid2 = 0;
	while (nb_mono_ms() < until && ((pid2 = scalar(&st_listener_pid, NULL)) == 0 || pid2 == pid))
		usleep(20 * 1000);
	CHECK_MSG(pid2 != 0 && pid2 != pid, "listener pid %lld -> %lld", pid, pid2);
	/* the reconnect wakes the fetcher once by itself; let that claim pass (it
	 * leaves no trace to poll for), so that the next job must come by NOTIFY */
	usleep(100 * 1000);
	CHECK_INT(enqueue1("noop", NULL, 0, id), 0);
	CHECK(wait_for(&st_count_status, "succeeded", 2, 3000));
	nb_workers_stop(w, 1000);
	nb_pool_destroy(wp);
}

/* ---- the worker command ---------------------------------------------------- */

static pid_t spawn_cli(char **argv)
{
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid == 0) {
		int argc = 0;
		while (argv[argc])
			argc++;
		_exit(nb_jobs_cmd_worker(argc, argv));
	}
	return pid;
}

static int wait_exit(pid_t pid, int timeout_ms)
{
	int64_t until = nb_mono_ms() + timeout_ms;
	int st = 0;
	while (waitpid(pid, &st, WNOHANG) == 0) {
		if (nb_mono_ms() > until) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return -1000;
		}
		usleep(10 * 1000);
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
}

static void test_worker_command(void)
{
	reset();
	char *args[] = {"worker", "--concurrency", "3", NULL};
	pid_t pid = spawn_cli(args);
	CHECK_INT(enqueue_n(200, 50, "noop", NULL, 0, NULL), 0);
	CHECK(wait_for(&st_count_status, "succeeded", 200, 10000));
	kill(pid, SIGTERM);
	CHECK_INT(wait_exit(pid, 10000), 0);

	char *bad[] = {"worker", "--concurrency", "0", NULL};
	CHECK_INT(wait_exit(spawn_cli(bad), 5000), 2);
	char *unknown[] = {"worker", "--frobnicate", NULL};
	CHECK_INT(wait_exit(spawn_cli(unknown), 5000), 2);

	char *saved = nb_cfg.database_url;
	nb_cfg.database_url = "postgresql:///nope?host=/nonexistent-socket-dir&port=1";
	char *plain[] = {"worker", NULL};
	CHECK_INT(wait_exit(spawn_cli(plain), 10000), 1);
	nb_cfg.database_url = NULL;
	CHECK_INT(wait_exit(spawn_cli(plain), 5000), 1);
	nb_cfg.database_url = saved;

	/* The real binary's worker command. */
	const char *bin = getenv("NOTEBOOKD_BIN");
	if (!bin || access(bin, X_OK) != 0)
		T_SKIP("NOTEBOOKD_BIN is not set to an executable notebookd: real-binary check not run");
	{
		char cmd[1024];
		snprintf(cmd, sizeof cmd, "'%s' worker --help >/dev/null 2>&1", bin);
		CHECK_MSG(system(cmd) == 0, "%s worker --help failed", bin);
		reset();
		pid = fork();
		if (pid == 0) {
			setenv("DATABASE_URL", url, 1);
			setenv("NOTEBOOKD_DEBUG_ROUTES", "1", 1); /* registers the 'noop' kind */
			execl(bin, bin, "worker", "--concurrency", "2", (char *)NULL);
			_exit(127);
		}
		CHECK_INT(enqueue_n(100, 100, "noop", NULL, 0, NULL), 0);
		CHECK(wait_for(&st_count_status, "succeeded", 100, 10000));
		kill(pid, SIGTERM);
		CHECK_INT(wait_exit(pid, 10000), 0);
	}
}

/* ---- the API's reads --------------------------------------------------------- */


/* A page of nb_store_jobs_list_rows, the path of GET /v1/jobs: the ids in
 * order (at most limit) in ids[0..*n), and whether another page follows. */
static int list_page(nb_conn_t *c, const char *uid, const char *status, int limit, const char *after,
		     char ids[][37], int *n, bool *more)
{
	*n = 0;
	*more = false;
	PGresult *r = NULL;
	int rc = nb_store_jobs_list_rows(c, uid, status, limit, after, &r);
	if (rc < 0)
		return rc;
	int rows = r ? PQntuples(r) : 0;
	*more = rows > limit;
	for (int i = 0; i < rows && i < limit; i++)
		nb_row_uuid_text(r, i, 0, ids[(*n)++]);
	PQclear(r);
	return 0;
}
static void test_job_get_and_list_are_scoped_and_paginated(void)
{
	reset();
	char ids[5][37];
	CHECK_INT(enqueue_n(5, 5, "noop", NULL, 0, ids), 0);
	nb_conn_t *c = conn();
	/* Distinct created_at, oldest first: ids[0] is 5 s old ... ids[4] 1 s. */
	for (int i = 0; i < 5; i++) {
		nb_params_t p;
		nb_params_init(&p);
		nb_p_text(&p, ids[i]);
		nb_p_int(&p, 5 - i);
		CHECK_INT(nb_db_exec(c, &st_backdate_created, &p, NULL), 0);
	}
	json_t *j = NULL;
	CHECK_INT(nb_store_job_get(c, user_id, ids[0], &j), 0);
	CHECK_STR(json_string_value(json_object_get(j, "id")), ids[0]);
	CHECK_STR(json_string_value(json_object_get(j, "kind")), "noop");
	CHECK_STR(json_string_value(json_object_get(j, "status")), "pending");
	CHECK_INT(json_integer_value(json_object_get(j, "attempts")), 0);
	CHECK(json_is_null(json_object_get(j, "last_error")));
	CHECK(json_is_null(json_object_get(j, "finished_at")));
	const char *created = json_string_value(json_object_get(j, "created_at"));
	CHECK(created && strlen(created) == 24 && created[10] == 'T' && created[19] == '.' && created[23] == 'Z');
	CHECK_INT(json_object_size(j), 10);
	json_decref(j);
	CHECK_INT(nb_store_job_get(c, other_user_id, ids[0], &j), NB_ENOTFOUND);
	CHECK(j == NULL);
	CHECK_INT(nb_store_job_get(c, user_id, "not-a-uuid", &j), NB_ENOTFOUND);

	/* Pages of two, newest first. */
	char got[100][37];
	int n = 0;
	bool more = false;
	const char *after = NULL;
	char last[37] = "";
	int seen = 0, pages = 0;
	do {
		CHECK_INT(list_page(c, user_id, NULL, 2, after, got, &n, &more), 0);
		for (int i = 0; i < n; i++, seen++)
			CHECK_STR(got[i], ids[4 - seen]);
		if (n)
			snprintf(last, sizeof last, "%s", got[n - 1]);
		after = last;
		pages++;
	} while (more && pages < 10);
	CHECK_INT(seen, 5);
	CHECK_INT(pages, 3);

	CHECK_INT(list_page(c, user_id, "pending", 100, NULL, got, &n, &more), 0);
	CHECK_INT(n, 5);
	CHECK(!more);
	CHECK_INT(list_page(c, user_id, "dead", 100, NULL, got, &n, &more), 0);
	CHECK_INT(n, 0);
	CHECK_INT(list_page(c, other_user_id, NULL, 100, NULL, got, &n, &more), 0);
	CHECK_INT(n, 0);
	/* Another user's job as a cursor reveals nothing. */
	CHECK_INT(list_page(c, other_user_id, NULL, 100, ids[4], got, &n, &more), 0);
	CHECK_INT(n, 0);
	CHECK_INT(list_page(c, user_id, "bogus", 10, NULL, got, &n, &more), NB_EINVALID);
	CHECK_INT(list_page(c, user_id, NULL, 0, NULL, got, &n, &more), NB_EINVALID);
	CHECK_INT(list_page(c, user_id, NULL, 10, "nope", got, &n, &more), NB_EINVALID);
	nb_pool_release(pool, c);
}

static void make_user(char id[37])
{
	nb_uuid_v7_str(id);
	char email[80];
	snprintf(email, sizeof email, "queue-%s@example.com", id);
	nb_conn_t *c = conn();
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, id);
	nb_p_text(&p, email);
	if (nb_db_exec(c, &st_user_new, &p, NULL) < 0) {
		fprintf(stderr, "cannot create a user\n");
		exit(2);
	}
	nb_pool_release(pool, c);
}

int main(void)
{
	setenv("NOTEBOOKD_SHUTDOWN_TIMEOUT_MS", "5000", 1);
	if (!(url = itest_start()))
		return 2;
	nb_jobs_register_test_kinds();
	nb_jobs_register("generate_quiz", recording_job);
	nb_jobs_register("generate_study_guide", timed_failing_job);
	pool = make_pool(4);
	nb_conn_t *c = conn();
	if (nb_db_command(c, "CREATE TABLE IF NOT EXISTS queue_test_runs (job_id uuid NOT NULL,"
			     " pid int NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())") < 0)
		return 2;
	nb_pool_release(pool, c);
	make_user(user_id);
	make_user(other_user_id);

	T_RUN(test_enqueue_is_transactional_and_notifies_once);
	T_RUN(test_two_sessions_never_claim_the_same_job);
	T_RUN(test_four_processes_run_each_job_exactly_once);
	T_RUN(test_killed_worker_jobs_are_rescued);
	T_RUN(test_failing_jobs_back_off_then_die);
	T_RUN(test_reaper_requeues_expired_leases);
	T_RUN(test_stop_drains_then_hands_back);
	T_RUN(test_stop_hands_back_a_handler_that_ignores_it);
	T_RUN(test_heartbeats_keep_a_long_job);
	T_RUN(test_listener_reconnects);
	T_RUN(test_worker_command);
	T_RUN(test_job_get_and_list_are_scoped_and_paginated);

	reset();
	c = conn();
	nb_db_command(c, "DROP TABLE queue_test_runs");
	nb_pool_release(pool, c);
	nb_pool_destroy(pool);
	return t_done();
}
