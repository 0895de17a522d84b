/*
 * replica.c — starting the read replica's pools and checks, and its metrics
 * (see replica.h; the routing itself is in middleware.c, the health and the
 * read-your-writes table in src/db/replica.c).
 */
#include "api/replica.h"

#include <stdio.h>

#include "api/middleware.h"
#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "db/pool.h"
#include "db/replica.h"

static nb_pool_t *thread_read_pool;

int nb_api_replica_start(void)
{
	if (!nb_cfg.database_read_url || !*nb_cfg.database_read_url)
		return 0;
	if (nb_replica_start(nb_cfg.database_url, nb_cfg.database_read_url, nb_cfg.replica_max_lag_ms) < 0)
		return -1;
	nb_pool_opts_t ro;
	nb_pool_opts_from_config(&ro, nb_cfg.database_read_url);
	ro.application_name = "notebookd-read";
	ro.no_breaker = true; /* a replica down is not the database down */
	/* a replica that does not answer is skipped after its checks; no request waits long on it */
	if (ro.acquire_timeout_ms > 2000)
		ro.acquire_timeout_ms = 2000;
	nb_pool_opts_t to = ro;
	to.size = nb_cfg.db_thread_pool_size; /* the streamed export runs on a thread */
	thread_read_pool = nb_pool_create(&to);
	ro.size = nb_cfg.db_read_pool_size;
	nb_api_middleware_set_replica(&ro, thread_read_pool);
	nb_info("read-only routes use the replica at DATABASE_READ_URL (max lag %d ms)", nb_cfg.replica_max_lag_ms);
	return 0;
}

void nb_api_replica_stop(void)
{
	nb_replica_stop();
	if (thread_read_pool)
		nb_api_middleware_set_replica(NULL, NULL);
	nb_pool_destroy(thread_read_pool);
	thread_read_pool = NULL;
}

void nb_api_replica_metrics(nb_buf_t *b)
{
	nb_replica_stats_t s;
	nb_replica_stats(&s);
	nb_metrics_family(b, "notebookd_db_replica_configured", "gauge", "1 when a read replica is configured (DATABASE_READ_URL).");
	nb_buf_printf(b, "notebookd_db_replica_configured %d\n", s.configured);
	nb_metrics_family(b, "notebookd_db_replica_up", "gauge", "1 when the read replica answered its last check (0: down or not configured).");
	nb_buf_printf(b, "notebookd_db_replica_up %d\n", s.up);
	nb_metrics_family(b, "notebookd_db_replica_usable", "gauge",
	       "1 when read-only routes go to the replica (up and within NOTEBOOKD_REPLICA_MAX_LAG_MS).");
	nb_buf_printf(b, "notebookd_db_replica_usable %d\n", s.usable);
	nb_metrics_family(b, "notebookd_db_replica_lag_seconds", "gauge",
	       "How far the replica's replay is behind the primary's WAL (0: caught up or not configured).");
	nb_buf_printf(b, "notebookd_db_replica_lag_seconds %.3f\n", s.lag_s);
	nb_metrics_family(b, "notebookd_db_replica_lag_bytes", "gauge", "WAL bytes the replica has not replayed at its last check.");
	nb_buf_printf(b, "notebookd_db_replica_lag_bytes %llu\n", (unsigned long long)s.lag_bytes);
	nb_metrics_family(b, "notebookd_db_replica_reads_total", "counter", "Read-only requests served by the read replica.");
	nb_buf_printf(b, "notebookd_db_replica_reads_total %llu\n", (unsigned long long)s.replica_reads);
	nb_metrics_family(b, "notebookd_db_primary_reads_total", "counter",
	       "Read-only requests served by the primary (no replica, lagging or down, or the user's own recent write).");
	nb_buf_printf(b, "notebookd_db_primary_reads_total %llu\n", (unsigned long long)s.primary_reads);
	nb_metrics_family(b, "notebookd_db_replica_fallbacks_total", "counter",
	       "Requests moved from the replica to the primary when a statement failed there.");
	nb_buf_printf(b, "notebookd_db_replica_fallbacks_total %llu\n", (unsigned long long)s.fallbacks);
	nb_pool_stats_t ps;
	nb_api_read_pool_stats(&ps);
	nb_metrics_family(b, "notebookd_db_replica_connections", "gauge",
	       "Open connections of the read replica's pools by state (the pipelined ones aside).");
	nb_buf_printf(b, "notebookd_db_replica_connections{state=\"in_use\"} %d\n", ps.in_use);
	nb_buf_printf(b, "notebookd_db_replica_connections{state=\"idle\"} %d\n", ps.idle);
	nb_metrics_family(b, "notebookd_db_replica_users_tracked", "gauge",
	       "Users whose recent writes keep their reads on the primary (read-your-writes).");
	nb_buf_printf(b, "notebookd_db_replica_users_tracked %ld\n", s.users_tracked);
}
