/*
 * health.c — GET /healthz, /readyz and /metrics.
 *
 * /healthz answers from the event loop without touching the database: the
 * process is alive. /readyz asks the database (one prepared query) whether
 * it is reachable and migrated to the version this binary carries.
 *
 * /metrics prints what this process counts (lock-free counters and
 * histograms kept by the server, the pools, the job runners and the
 * generators) plus the queue as the database sees it: one bounded query per
 * scrape, never per request. `notebookd worker` serves the same page on
 * NOTEBOOKD_METRICS_LISTEN (nb_api_metrics_jobs, from a handler thread).
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "api/app.h"
#include "api/ratelimit.h"
#include "api/replica.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/tpool.h"
#include "db/breaker.h"
#include "db/migrate.h"
#include "db/pipe.h"
#include "http/server.h"
#include "jobs/retention.h"
#include "jobs/stats.h"
#include "rag/generate.h"
#include "store/queue_stats.h"

/* The bound of the scrape-time queue query (statement_timeout, and the worker listener's connection wait). */
#define QUEUE_QUERY_TIMEOUT_MS 1000

/* The job pool whose acquire waits are shown as pool="jobs" (nb_api_metrics_set_jobs_pool). */
static nb_pool_t *jobs_pool;

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

typedef struct pool_sample {
	const char *name; /* the pool label: loops, threads, jobs */
	nb_pool_stats_t s;
	nb_histo_snap_t wait;
} pool_sample_t;

/* The pool families, each with one sample per pool (a family's samples must be together). */
static void pool_metrics(nb_buf_t *b, const pool_sample_t *p, int n)
{
	nb_metrics_family(b, "notebookd_db_connections", "gauge", "Open database connections by pool and state.");
	for (int i = 0; i < n; i++) {
		nb_buf_printf(b, "notebookd_db_connections{pool=\"%s\",state=\"in_use\"} %d\n", p[i].name, p[i].s.in_use);
		nb_buf_printf(b, "notebookd_db_connections{pool=\"%s\",state=\"idle\"} %d\n", p[i].name, p[i].s.idle);
	}
	nb_metrics_family(b, "notebookd_db_waiting", "gauge", "Requests waiting for a database connection.");
	for (int i = 0; i < n; i++)
		nb_buf_printf(b, "notebookd_db_waiting{pool=\"%s\"} %d\n", p[i].name, p[i].s.waiting);
#define POOL_COUNTER(metric, field, help)                                                                  \
	nb_metrics_family(b, metric, "counter", help);                                                                \
	for (int i = 0; i < n; i++)                                                                        \
		nb_buf_printf(b, metric "{pool=\"%s\"} %llu\n", p[i].name, (unsigned long long)p[i].s.field);
	POOL_COUNTER("notebookd_db_acquires_total", acquires, "Connections handed out by the pool.")
	POOL_COUNTER("notebookd_db_acquire_timeouts_total", timeouts,
		     "Waits for a connection that timed out (answered 503).")
	nb_metrics_family(b, "notebookd_db_acquire_wait_seconds_total", "counter",
	       "Time spent waiting for a connection, summed over all waits.");
	for (int i = 0; i < n; i++)
		nb_buf_printf(b, "notebookd_db_acquire_wait_seconds_total{pool=\"%s\"} %.6f\n", p[i].name,
			      (double)p[i].s.wait_us_total / 1e6);
	nb_metrics_family(b, "notebookd_db_acquire_wait_duration_seconds", "histogram",
	       "How long each acquire waited for a connection (timed-out waits included).");
	for (int i = 0; i < n; i++) {
		char labels[48];
		snprintf(labels, sizeof labels, "pool=\"%s\"", p[i].name);
		nb_histo_write(b, "notebookd_db_acquire_wait_duration_seconds", labels, &p[i].wait);
	}
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
	nb_metrics_family(b, "notebookd_retention_runs_total", "counter", "Retention runs done by this process.");
	nb_buf_printf(b, "notebookd_retention_runs_total %llu\n", (unsigned long long)r.runs);
	nb_metrics_family(b, "notebookd_retention_failures_total", "counter", "Retention runs that stopped on an error.");
	nb_buf_printf(b, "notebookd_retention_failures_total %llu\n", (unsigned long long)r.failures);
	nb_metrics_family(b, "notebookd_retention_deleted_total", "counter", "Rows the retention deleted, by kind.");
	for (int w = 0; w < NB_RET_COUNT; w++)
		nb_buf_printf(b, "notebookd_retention_deleted_total{what=\"%s\"} %llu\n",
			      nb_store_retention_label((nb_retention_what_t)w), (unsigned long long)r.deleted[w]);
	nb_metrics_family(b, "notebookd_retention_last_success_timestamp_seconds", "gauge",
	       "When this process last finished a retention run (0: never).");
	nb_buf_printf(b, "notebookd_retention_last_success_timestamp_seconds %lld\n", (long long)r.last_success_unix);
}


/* Requests by route template and status, and latency by route (http/server.h); routes never hit are left out. */
static void route_metrics(nb_buf_t *b, nb_server_t *srv)
{
	int n = nb_server_route_slots(srv);
	bool any = false; /* a family is printed only with samples */
	for (int i = 0; i < n && !any; i++) {
		nb_route_stats_t rs;
		any = nb_server_route_stats(srv, i, &rs) && nb_histo_snap_count(&rs.latency) > 0;
	}
	if (!any)
		return;
	nb_metrics_family(b, "notebookd_http_route_requests_total", "counter",
	       "HTTP answers by route template (\"unmatched\": no route) and status.");
	for (int i = 0; i < n; i++) {
		nb_route_stats_t rs;
		if (!nb_server_route_stats(srv, i, &rs))
			continue;
		for (int k = 0; k < NB_HTTP_STATUS_SLOTS; k++)
			if (rs.by_status[k])
				nb_buf_printf(b, "notebookd_http_route_requests_total{method=\"%s\",route=\"%s\",status=\"%s\"} %llu\n",
					      rs.method, rs.pattern ? rs.pattern : "unmatched", nb_server_status_label(k),
					      (unsigned long long)rs.by_status[k]);
	}
	nb_metrics_family(b, "notebookd_http_request_duration_seconds", "histogram",
	       "Time from a request's first byte to its answer's last byte queued, by route template.");
	for (int i = 0; i < n; i++) {
		nb_route_stats_t rs;
		if (!nb_server_route_stats(srv, i, &rs) || !nb_histo_snap_count(&rs.latency))
			continue;
		char labels[320];
		snprintf(labels, sizeof labels, "method=\"%s\",route=\"%s\"", rs.method,
			 rs.pattern ? rs.pattern : "unmatched");
		nb_histo_write(b, "notebookd_http_request_duration_seconds", labels, &rs.latency);
	}
}

/* Job attempts by kind and outcome, and their durations (jobs/stats.h): every kind this process runs. */
static void job_metrics(nb_buf_t *b)
{
	int n = nb_jobs_stats_kinds();
	if (n == 0) /* no job runner in this process: no family without samples */
		return;
	nb_metrics_family(b, "notebookd_jobs_total", "counter",
	       "Job attempts run by this process, by kind and outcome (succeeded, retry, dead, deferred).");
	for (int i = 0; i < n; i++) {
		nb_job_kind_stats_t k;
		if (!nb_jobs_stats_get(i, &k))
			continue;
		for (int o = 0; o < NB_JOB_OUT_COUNT_; o++)
			nb_buf_printf(b, "notebookd_jobs_total{kind=\"%s\",status=\"%s\"} %llu\n", k.kind,
				      nb_jobs_outcome_label((nb_job_outcome_t)o), (unsigned long long)k.by_outcome[o]);
	}
	nb_metrics_family(b, "notebookd_job_duration_seconds", "histogram", "How long job attempts ran, by kind.");
	for (int i = 0; i < n; i++) {
		nb_job_kind_stats_t k;
		if (!nb_jobs_stats_get(i, &k))
			continue;
		char labels[80];
		snprintf(labels, sizeof labels, "kind=\"%s\"", k.kind);
		nb_histo_write(b, "notebookd_job_duration_seconds", labels, &k.duration);
	}
}

/* The queue as the database sees it (the whole deployment), or the scrape error when it did not answer. */
static void queue_metrics(nb_buf_t *b, int rc, const nb_store_queue_stats_t *q)
{
	nb_metrics_family(b, "notebookd_jobs_queue_scrape_error", "gauge",
	       "1 when the queue query of this scrape failed or timed out (the queue gauges are then absent).");
	nb_buf_printf(b, "notebookd_jobs_queue_scrape_error %d\n", rc < 0 ? 1 : 0);
	if (rc < 0)
		return;
	nb_metrics_family(b, "notebookd_jobs_queue_depth", "gauge",
	       "Jobs in the queue by status: pending (not run yet), failed (waiting for a retry), running.");
	nb_buf_printf(b, "notebookd_jobs_queue_depth{status=\"pending\"} %lld\n", (long long)q->pending);
	nb_buf_printf(b, "notebookd_jobs_queue_depth{status=\"failed\"} %lld\n", (long long)q->failed);
	nb_buf_printf(b, "notebookd_jobs_queue_depth{status=\"running\"} %lld\n", (long long)q->running);
	nb_metrics_family(b, "notebookd_jobs_oldest_ready_age_seconds", "gauge",
	       "How long the oldest job that is due has waited to be claimed (0: none is due).");
	nb_buf_printf(b, "notebookd_jobs_oldest_ready_age_seconds %.3f\n", q->oldest_ready_age_s);
}

/* Generation latency and errors by provider and use (rag/generate.h). */
static void generation_metrics(nb_buf_t *b)
{
	nb_metrics_family(b, "notebookd_generation_duration_seconds", "histogram",
	       "How long generations took, by provider and use (chat answers, study outputs).");
	nb_gen_stats_t g[NB_GEN_PROVIDERS][NB_GEN_USES];
	for (int p = 0; p < NB_GEN_PROVIDERS; p++)
		for (int u = 0; u < NB_GEN_USES; u++) {
			nb_gen_stats_get(p, u, &g[p][u]);
			char labels[64];
			snprintf(labels, sizeof labels, "provider=\"%s\",use=\"%s\"", nb_gen_provider_label(p),
				 nb_gen_use_label(u));
			nb_histo_write(b, "notebookd_generation_duration_seconds", labels, &g[p][u].latency);
		}
	nb_metrics_family(b, "notebookd_generation_errors_total", "counter",
	       "Generations that failed (a client that left is not counted), by provider and use.");
	for (int p = 0; p < NB_GEN_PROVIDERS; p++)
		for (int u = 0; u < NB_GEN_USES; u++)
			nb_buf_printf(b, "notebookd_generation_errors_total{provider=\"%s\",use=\"%s\"} %llu\n",
				      nb_gen_provider_label(p), nb_gen_use_label(u), (unsigned long long)g[p][u].errors);
}

/* The standard process_* families (what /proc tells; a figure it did not tell is left out). */
static void process_metrics(nb_buf_t *b)
{
	nb_proc_stats_t p;
	nb_proc_stats(&p);
#define PROC(name, type, help, fmt, v, ok)                                                                 \
	if (ok) {                                                                                          \
		nb_metrics_family(b, name, type, help);                                                               \
		nb_buf_printf(b, name " " fmt "\n", v);                                                    \
	}
	PROC("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", "%lld",
	     (long long)p.resident_bytes, p.resident_bytes >= 0)
	PROC("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", "%lld",
	     (long long)p.virtual_bytes, p.virtual_bytes >= 0)
	PROC("process_open_fds", "gauge", "Open file descriptors.", "%lld", (long long)p.open_fds, p.open_fds >= 0)
	PROC("process_max_fds", "gauge", "The limit of open file descriptors (RLIMIT_NOFILE).", "%lld",
	     (long long)p.max_fds, p.max_fds >= 0)
	PROC("process_start_time_seconds", "gauge", "When the process started, in seconds since the epoch.", "%.2f",
	     p.start_time_unix, p.start_time_unix >= 0)
	PROC("process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds.", "%.2f",
	     p.cpu_seconds, p.cpu_seconds >= 0)
#undef PROC
}

void nb_api_metrics_set_jobs_pool(nb_pool_t *pool)
{
	jobs_pool = pool;
}

/* Everything but the queue: what this process counts. */
static void process_wide(nb_buf_t *b)
{
	pool_sample_t pools[3];
	int npools = 0;
	nb_server_t *srv = nb_server_current();
	memset(pools, 0, sizeof pools);
	if (srv && nb_api_loop_count() > 0) {
		pools[npools].name = "loops";
		nb_api_loop_pool_stats(&pools[npools].s);
		nb_api_loop_pool_wait_histo(&pools[npools++].wait);
	}
	if (nb_app.pool) {
		pools[npools].name = "threads";
		nb_pool_stats(nb_app.pool, &pools[npools].s);
		nb_pool_wait_histo(nb_app.pool, &pools[npools++].wait);
	}
	if (jobs_pool) {
		pools[npools].name = "jobs";
		nb_pool_stats(jobs_pool, &pools[npools].s);
		nb_pool_wait_histo(jobs_pool, &pools[npools++].wait);
	}
	if (npools) {
		pool_metrics(b, pools, npools);
		uint64_t shed = 0;
		for (int i = 0; i < npools; i++)
			shed += pools[i].s.shed;
		nb_metrics_family(b, "notebookd_http_shed_total", "counter",
		       "Requests answered 503 at once because their wait for a database connection would have "
		       "outlasted their deadline.");
		nb_buf_printf(b, "notebookd_http_shed_total %llu\n", (unsigned long long)shed);
	}
	if (srv && nb_api_loop_count() > 0) {
		nb_pipe_stats_t ps;
		nb_api_pipe_stats(&ps);
		nb_metrics_family(b, "notebookd_db_pipeline_statements_total", "counter",
		       "Statements sent through the per-loop pipelines.");
		nb_buf_printf(b, "notebookd_db_pipeline_statements_total %llu\n", (unsigned long long)ps.statements);
		nb_metrics_family(b, "notebookd_db_pipeline_flushes_total", "counter", "Pipeline flushes (batches sent).");
		nb_buf_printf(b, "notebookd_db_pipeline_flushes_total %llu\n", (unsigned long long)ps.flushes);
		nb_metrics_family(b, "notebookd_db_pipeline_syncs_total", "counter",
		       "Pipeline sync points sent: one per batch of reads, one per other statement.");
		nb_buf_printf(b, "notebookd_db_pipeline_syncs_total %llu\n", (unsigned long long)ps.syncs);
		nb_metrics_family(b, "notebookd_db_pipeline_resent_total", "counter",
		       "Pipelined statements sent again because an earlier statement of their batch failed.");
		nb_buf_printf(b, "notebookd_db_pipeline_resent_total %llu\n", (unsigned long long)ps.resent);
		nb_metrics_family(b, "notebookd_db_pipeline_failures_total", "counter",
		       "Pipelined statements failed by a broken connection.");
		nb_buf_printf(b, "notebookd_db_pipeline_failures_total %llu\n", (unsigned long long)ps.failures);
		nb_metrics_family(b, "notebookd_db_pipeline_connections", "gauge", "Open pipelined connections.");
		nb_buf_printf(b, "notebookd_db_pipeline_connections %d\n", ps.connections);
		nb_metrics_family(b, "notebookd_db_pipeline_pending", "gauge", "Statements in the pipelines awaiting results.");
		nb_buf_printf(b, "notebookd_db_pipeline_pending %d\n", ps.pending);
	}
	if (srv) {
		nb_server_stats_t s;
		nb_server_stats(srv, &s);
		nb_metrics_family(b, "notebookd_http_connections_open", "gauge", "Open HTTP connections.");
		nb_buf_printf(b, "notebookd_http_connections_open %ld\n", s.connections_open);
		nb_metrics_family(b, "notebookd_http_connections_total", "counter", "HTTP connections accepted.");
		nb_buf_printf(b, "notebookd_http_connections_total %ld\n", s.connections_total);
		nb_metrics_family(b, "notebookd_http_connections_rejected_total", "counter",
		       "HTTP connections closed at once (over NOTEBOOKD_MAX_CONNECTIONS).");
		nb_buf_printf(b, "notebookd_http_connections_rejected_total %ld\n", s.rejected_connections);
		nb_metrics_family(b, "notebookd_http_requests_total", "counter", "HTTP requests received.");
		nb_buf_printf(b, "notebookd_http_requests_total %ld\n", s.requests_total);
		nb_metrics_family(b, "notebookd_http_requests_in_flight", "gauge", "HTTP requests being handled.");
		nb_buf_printf(b, "notebookd_http_requests_in_flight %ld\n", s.requests_in_flight);
		nb_metrics_family(b, "notebookd_http_request_timeouts_total", "counter",
		       "Requests answered 503 at NOTEBOOKD_REQUEST_TIMEOUT_MS.");
		nb_buf_printf(b, "notebookd_http_request_timeouts_total %ld\n", s.timeouts);
		nb_metrics_family(b, "notebookd_http_write_timeouts_total", "counter",
		       "Streams closed because the client did not read for NOTEBOOKD_WRITE_TIMEOUT_MS.");
		nb_buf_printf(b, "notebookd_http_write_timeouts_total %ld\n", s.write_timeouts);
		nb_metrics_family(b, "notebookd_http_responses_total", "counter", "HTTP responses by status class.");
		for (int i = 1; i <= 5; i++)
			nb_buf_printf(b, "notebookd_http_responses_total{class=\"%dxx\"} %ld\n", i,
				      s.responses_by_class[i]);
	}
	/* the database circuit breaker and the API-wide limits */
	nb_metrics_family(b, "notebookd_db_breaker_state", "gauge",
	       "Database circuit breaker: 0 closed, 1 open (requests answered 503 at once), 2 half-open (probing).");
	nb_buf_printf(b, "notebookd_db_breaker_state %d\n", (int)nb_breaker_state());
	nb_metrics_family(b, "notebookd_db_breaker_opens_total", "counter", "Times the database circuit breaker opened.");
	nb_buf_printf(b, "notebookd_db_breaker_opens_total %ld\n", nb_breaker_opens());
	nb_metrics_family(b, "notebookd_ratelimit_rejections_total", "counter",
	       "Requests answered 429 by the API-wide limits, by class.");
	for (int c = 0; c < NB_RL_CLASSES; c++)
		nb_buf_printf(b, "notebookd_ratelimit_rejections_total{class=\"%s\"} %ld\n",
			      nb_api_rl_class_name((nb_rl_class_t)c), nb_api_ratelimit_rejections((nb_rl_class_t)c));
	retention_metrics(b);
	nb_api_replica_metrics(b); /* read replica: always present */
	if (srv)
		route_metrics(b, srv);
	job_metrics(b);
	generation_metrics(b);
	process_metrics(b);
}

static void answer(nb_req_t *req, nb_buf_t *b)
{
	nb_resp_raw(&req->resp, 200, "text/plain; version=0.0.4", b->data ? b->data : "", b->len);
	nb_buf_dispose(b);
}

/*
 * Every family carries # HELP and # TYPE (tests/e2e/test_cli.py checks it).
 * The queue query goes through the request's connection; when the database
 * does not answer (breaker open, timeout) the scrape still answers, with
 * notebookd_jobs_queue_scrape_error 1.
 */
int nb_api_metrics(nb_req_t *req)
{
	nb_buf_t b = NB_BUF_INIT;
	process_wide(&b);
	nb_store_queue_stats_t q;
	nb_conn_t *c = NULL;
	int rc = req->loop_data ? nb_req_db(req, &c) : NB_EUNAVAIL; /* no loop data: no middleware, no pools */
	if (rc == 0)
		rc = nb_store_queue_stats(c, QUEUE_QUERY_TIMEOUT_MS, &q);
	if (rc < 0)
		nb_warn("metrics: the queue query failed (%s, sqlstate %s): notebookd_jobs_queue_scrape_error is 1",
			nb_err_code(rc), nb_db_sqlstate());
	req->resp.retry_after = 0; /* an open breaker's hint is not for a scrape that answered 200 */
	queue_metrics(&b, rc, &q);
	answer(req, &b);
	return 0;
}

int nb_api_metrics_jobs(nb_req_t *req)
{
	nb_buf_t b = NB_BUF_INIT;
	process_wide(&b);
	nb_store_queue_stats_t q;
	nb_conn_t *c = NULL;
	int rc = NB_EUNAVAIL;
	int retry_s = 0;
	if (jobs_pool && !nb_breaker_rejects(&retry_s)) {
		rc = nb_pool_acquire_timeout(jobs_pool, QUEUE_QUERY_TIMEOUT_MS, &c);
		if (rc == 0) {
			rc = nb_store_queue_stats(c, QUEUE_QUERY_TIMEOUT_MS, &q);
			nb_pool_release(jobs_pool, c);
		}
	}
	if (rc < 0)
		nb_warn("metrics: the queue query failed (%s, sqlstate %s): notebookd_jobs_queue_scrape_error is 1",
			nb_err_code(rc), nb_db_sqlstate());
	queue_metrics(&b, rc, &q);
	answer(req, &b);
	return 0;
}
