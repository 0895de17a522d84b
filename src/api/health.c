/*
 * health.c — GET /healthz, /readyz and /metrics.
 *
 * /healthz answers from the event loop without touching the database: the
 * process is alive. /readyz asks the database (one prepared query) whether
 * it is reachable and migrated to the version this binary carries.
 */
#include <stdio.h>

#include "api/app.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/tpool.h"
#include "db/migrate.h"
#include "db/pipe.h"
#include "http/server.h"

int nb_api_healthz(nb_req_t *req)
{
	static const char body[] = "{\"status\":\"ok\"}";
	nb_resp_raw(&req->resp, 200, "application/json", body, sizeof body - 1);
	return 0;
}

int nb_api_readyz(nb_req_t *req)
{
	nb_conn_t *c;
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

static void pool_stats_metrics(nb_buf_t *b, const char *name, const nb_pool_stats_t *ps)
{
	nb_pool_stats_t s = *ps;
	nb_buf_printf(b, "notebookd_db_connections{pool=\"%s\",state=\"in_use\"} %d\n", name, s.in_use);
	nb_buf_printf(b, "notebookd_db_connections{pool=\"%s\",state=\"idle\"} %d\n", name, s.idle);
	nb_buf_printf(b, "notebookd_db_waiting{pool=\"%s\"} %d\n", name, s.waiting);
	nb_buf_printf(b, "notebookd_db_acquires_total{pool=\"%s\"} %llu\n", name, (unsigned long long)s.acquires);
	nb_buf_printf(b, "notebookd_db_acquire_timeouts_total{pool=\"%s\"} %llu\n", name,
		      (unsigned long long)s.timeouts);
	nb_buf_printf(b, "notebookd_db_acquire_wait_seconds_total{pool=\"%s\"} %.6f\n", name,
		      (double)s.wait_us_total / 1e6);
	nb_buf_printf(b, "notebookd_db_connections_created_total{pool=\"%s\"} %llu\n", name,
		      (unsigned long long)s.created);
	nb_buf_printf(b, "notebookd_db_connections_closed_total{pool=\"%s\"} %llu\n", name,
		      (unsigned long long)s.closed);
	nb_buf_printf(b, "notebookd_db_dead_connections_replaced_total{pool=\"%s\"} %llu\n", name,
		      (unsigned long long)s.replaced_dead);
}

static void pool_metrics(nb_buf_t *b, const char *name, nb_pool_t *p)
{
	nb_pool_stats_t s;
	nb_pool_stats(p, &s);
	pool_stats_metrics(b, name, &s);
}

int nb_api_metrics(nb_req_t *req)
{
	nb_buf_t b = NB_BUF_INIT;
	nb_server_t *srv = nb_server_current();
	if (srv) {
		nb_pool_stats_t ls;
		nb_api_loop_pool_stats(&ls);
		pool_stats_metrics(&b, "loops", &ls);
		nb_pipe_stats_t ps;
		nb_api_pipe_stats(&ps);
		nb_buf_printf(&b, "notebookd_db_pipeline_statements_total %llu\n", (unsigned long long)ps.statements);
		nb_buf_printf(&b, "notebookd_db_pipeline_flushes_total %llu\n", (unsigned long long)ps.flushes);
		nb_buf_printf(&b, "notebookd_db_pipeline_failures_total %llu\n", (unsigned long long)ps.failures);
		nb_buf_printf(&b, "notebookd_db_pipeline_connections %d\n", ps.connections);
		nb_buf_printf(&b, "notebookd_db_pipeline_pending %d\n", ps.pending);
		nb_server_stats_t s;
		nb_server_stats(srv, &s);
		nb_buf_printf(&b, "# TYPE notebookd_http_connections_open gauge\n");
		nb_buf_printf(&b, "notebookd_http_connections_open %ld\n", s.connections_open);
		nb_buf_printf(&b, "notebookd_http_connections_total %ld\n", s.connections_total);
		nb_buf_printf(&b, "notebookd_http_connections_rejected_total %ld\n", s.rejected_connections);
		nb_buf_printf(&b, "notebookd_http_requests_total %ld\n", s.requests_total);
		nb_buf_printf(&b, "notebookd_http_requests_in_flight %ld\n", s.requests_in_flight);
		nb_buf_printf(&b, "notebookd_http_request_timeouts_total %ld\n", s.timeouts);
		nb_buf_printf(&b, "notebookd_http_write_timeouts_total %ld\n", s.write_timeouts);
		for (int i = 1; i <= 5; i++)
			nb_buf_printf(&b, "notebookd_http_responses_total{class=\"%dxx\"} %ld\n", i,
				      s.responses_by_class[i]);
	}
	if (nb_app.pool)
		pool_metrics(&b, "threads", nb_app.pool);
	nb_resp_raw(&req->resp, 200, "text/plain; version=0.0.4", b.data ? b.data : "", b.len);
	nb_buf_dispose(&b);
	return 0;
}
