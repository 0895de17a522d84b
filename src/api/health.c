/*
 * health.c — GET /healthz, /readyz and /metrics.
 *
 * /healthz answers from the event loop without touching the database: the
 * process is alive. /readyz asks the database (one prepared query) whether
 * it is reachable and migrated to the version this binary carries.
 */
#include <stdio.h>

#include "api/app.h"
#include "api/ratelimit.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/tpool.h"
#include "db/breaker.h"
#include "db/migrate.h"
#include "db/pipe.h"
#include "http/server.h"
#include "jobs/retention.h"

int nb_api_healthz(nb_req_t *req)
{
	static const char body[] = "{\"status\":\"ok\"}";
	nb_resp_raw(&req->resp, 200, "application/json", body, sizeof body - 1);
	return 0;
}

int nb_api_readyz(nb_req_t *req)
{
	nb_conn_t *c;
	nb_req_db_unshed(req); /* a health check is never shed under load */
	int rc = nb_req_db(req, &c);
	if (rc < 0)
		return nb_resp_error(req, NB_EUNAVAIL, "database unreachable", NULL);
	int applied = 0;
	rc = nb_migrate_current_conn(c, &applied);
	if (rc < 0)
		return nb_resp_error(req, NB_EUNAVAIL, "database unreachable or not migrated", NULL);
	if (applied != nb_migrate_latest()) {
		char msg[96];
		snprintf(msg, sizeof msg, "database schema is at version %d, this binary needs %d", applied,
			 nb_migrate_latest());
		return nb_resp_error(req, NB_EUNAVAIL, msg, NULL);
	}
	static const char body[] = "{\"status\":\"ready\"}";
	nb_resp_raw(&req->resp, 200, "application/json", body, sizeof body - 1);
	return 0;
}

/* One metric family: its # HELP and # TYPE lines, printed once before its samples. */
static void family(nb_buf_t *b, const char *name, const char *type, const char *help)
{
	nb_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

typedef struct pool_sample {
	const char *name; /* the pool label: loops, threads */
	nb_pool_stats_t s;
} pool_sample_t;

/* The pool families, each with one sample per pool (a family's samples must be together). */
static void pool_metrics(nb_buf_t *b, const pool_sample_t *p, int n)
{
	family(b, "notebookd_db_connections", "gauge", "Open database connections by pool and state.");
	for (int i = 0; i < n; i++) {
		nb_buf_printf(b, "notebookd_db_connections{pool=\"%s\",state=\"in_use\"} %d\n", p[i].name, p[i].s.in_use);
		nb_buf_printf(b, "notebookd_db_connections{pool=\"%s\",state=\"idle\"} %d\n", p[i].name, p[i].s.idle);
	}
	family(b, "notebookd_db_waiting", "gauge", "Requests waiting for a database connection.");
	for (int i = 0; i < n; i++)
		nb_buf_printf(b, "notebookd_db_waiting{pool=\"%s\"} %d\n", p[i].name, p[i].s.waiting);
#define POOL_COUNTER(metric, field, help)                                                                  \
	family(b, metric, "counter", help);                                                                \
	for (int i = 0; i < n; i++)                                                                        \
		nb_buf_printf(b, metric "{pool=\"%s\"} %llu\n", p[i].name, (unsigned long long)p[i].s.field);
	POOL_COUNTER("notebookd_db_acquires_total", acquires, "Connections handed out by the pool.")
	POOL_COUNTER("notebookd_db_acquire_timeouts_total", timeouts,
		     "Waits for a connection that timed out (answered 503).")
	family(b, "notebookd_db_acquire_wait_seconds_total", "counter",
	       "Time spent waiting for a connection, summed over all waits.");
	for (int i = 0; i < n; i++)
		nb_buf_printf(b, "notebookd_db_acquire_wait_seconds_total{pool=\"%s\"} %.6f\n", p[i].name,
			      (double)p[i].s.wait_us_total / 1e6);
	POOL_COUNTER("notebookd_db_connections_created_total", created, "Database connections opened.")
	POOL_COUNTER("notebookd_db_connections_closed_total", closed, "Database connections closed.")
	POOL_COUNTER("notebookd_db_dead_connections_replaced_total", replaced_dead,
		     "Broken connections found and replaced.")
#undef POOL_COUNTER
}

/* The scheduled retention of this process (jobs/retention.h). */
static void retention_metrics(nb_buf_t *b)
{
	nb_retention_stats_t r;
	nb_retention_stats(&r);
	family(b, "notebookd_retention_runs_total", "counter", "Retention runs done by this process.");
	nb_buf_printf(b, "notebookd_retention_runs_total %llu\n", (unsigned long long)r.runs);
	family(b, "notebookd_retention_failures_total", "counter", "Retention runs that stopped on an error.");
	nb_buf_printf(b, "notebookd_retention_failures_total %llu\n", (unsigned long long)r.failures);
	family(b, "notebookd_retention_deleted_total", "counter", "Rows the retention deleted, by kind.");
	for (int w = 0; w < NB_RET_COUNT; w++)
		nb_buf_printf(b, "notebookd_retention_deleted_total{what=\"%s\"} %llu\n",
			      nb_store_retention_label((nb_retention_what_t)w), (unsigned long long)r.deleted[w]);
	family(b, "notebookd_retention_last_success_timestamp_seconds", "gauge",
	       "When this process last finished a retention run (0: never).");
	nb_buf_printf(b, "notebookd_retention_last_success_timestamp_seconds %lld\n", (long long)r.last_success_unix);
}

/* Every family carries # HELP and # TYPE (tests/e2e/test_cli.py checks it). */
int nb_api_metrics(nb_req_t *req)
{
	nb_buf_t b = NB_BUF_INIT;
	pool_sample_t pools[2];
	int npools = 0;
	nb_server_t *srv = nb_server_current();
	if (srv) {
		pools[npools].name = "loops";
		nb_api_loop_pool_stats(&pools[npools++].s);
	}
	if (nb_app.pool) {
		pools[npools].name = "threads";
		nb_pool_stats(nb_app.pool, &pools[npools++].s);
	}
	if (npools) {
		pool_metrics(&b, pools, npools);
		uint64_t shed = 0;
		for (int i = 0; i < npools; i++)
			shed += pools[i].s.shed;
		family(&b, "notebookd_http_shed_total", "counter",
		       "Requests answered 503 at once because their wait for a database connection would have "
		       "outlasted their deadline.");
		nb_buf_printf(&b, "notebookd_http_shed_total %llu\n", (unsigned long long)shed);
	}
	if (srv) {
		nb_pipe_stats_t ps;
		nb_api_pipe_stats(&ps);
		family(&b, "notebookd_db_pipeline_statements_total", "counter",
		       "Statements sent through the per-loop pipelines.");
		nb_buf_printf(&b, "notebookd_db_pipeline_statements_total %llu\n", (unsigned long long)ps.statements);
		family(&b, "notebookd_db_pipeline_flushes_total", "counter", "Pipeline flushes (batches sent).");
		nb_buf_printf(&b, "notebookd_db_pipeline_flushes_total %llu\n", (unsigned long long)ps.flushes);
		family(&b, "notebookd_db_pipeline_failures_total", "counter",
		       "Pipelined statements failed by a broken connection.");
		nb_buf_printf(&b, "notebookd_db_pipeline_failures_total %llu\n", (unsigned long long)ps.failures);
		family(&b, "notebookd_db_pipeline_connections", "gauge", "Open pipelined connections.");
		nb_buf_printf(&b, "notebookd_db_pipeline_connections %d\n", ps.connections);
		family(&b, "notebookd_db_pipeline_pending", "gauge", "Statements in the pipelines awaiting results.");
		nb_buf_printf(&b, "notebookd_db_pipeline_pending %d\n", ps.pending);
		nb_server_stats_t s;
		nb_server_stats(srv, &s);
		family(&b, "notebookd_http_connections_open", "gauge", "Open HTTP connections.");
		nb_buf_printf(&b, "notebookd_http_connections_open %ld\n", s.connections_open);
		family(&b, "notebookd_http_connections_total", "counter", "HTTP connections accepted.");
		nb_buf_printf(&b, "notebookd_http_connections_total %ld\n", s.connections_total);
		family(&b, "notebookd_http_connections_rejected_total", "counter",
		       "HTTP connections closed at once (over NOTEBOOKD_MAX_CONNECTIONS).");
		nb_buf_printf(&b, "notebookd_http_connections_rejected_total %ld\n", s.rejected_connections);
		family(&b, "notebookd_http_requests_total", "counter", "HTTP requests received.");
		nb_buf_printf(&b, "notebookd_http_requests_total %ld\n", s.requests_total);
		family(&b, "notebookd_http_requests_in_flight", "gauge", "HTTP requests being handled.");
		nb_buf_printf(&b, "notebookd_http_requests_in_flight %ld\n", s.requests_in_flight);
		family(&b, "notebookd_http_request_timeouts_total", "counter",
		       "Requests answered 503 at NOTEBOOKD_REQUEST_TIMEOUT_MS.");
		nb_buf_printf(&b, "notebookd_http_request_timeouts_total %ld\n", s.timeouts);
		family(&b, "notebookd_http_write_timeouts_total", "counter",
		       "Streams closed because the client did not read for NOTEBOOKD_WRITE_TIMEOUT_MS.");
		nb_buf_printf(&b, "notebookd_http_write_timeouts_total %ld\n", s.write_timeouts);
		family(&b, "notebookd_http_responses_total", "counter", "HTTP responses by status class.");
		for (int i = 1; i <= 5; i++)
			nb_buf_printf(&b, "notebookd_http_responses_total{class=\"%dxx\"} %ld\n", i,
				      s.responses_by_class[i]);
	}
	/* the database circuit breaker and the API-wide limits */
	family(&b, "notebookd_db_breaker_state", "gauge",
	       "Database circuit breaker: 0 closed, 1 open (requests answered 503 at once), 2 half-open (probing).");
	nb_buf_printf(&b, "notebookd_db_breaker_state %d\n", (int)nb_breaker_state());
	family(&b, "notebookd_db_breaker_opens_total", "counter", "Times the database circuit breaker opened.");
	nb_buf_printf(&b, "notebookd_db_breaker_opens_total %ld\n", nb_breaker_opens());
	family(&b, "notebookd_ratelimit_rejections_total", "counter",
	       "Requests answered 429 by the API-wide limits, by class.");
	for (int c = 0; c < NB_RL_CLASSES; c++)
		nb_buf_printf(&b, "notebookd_ratelimit_rejections_total{class=\"%s\"} %ld\n",
			      nb_api_rl_class_name((nb_rl_class_t)c), nb_api_ratelimit_rejections((nb_rl_class_t)c));
	retention_metrics(&b);
	nb_resp_raw(&req->resp, 200, "text/plain; version=0.0.4", b.data ? b.data : "", b.len);
	nb_buf_dispose(&b);
	return 0;
}
