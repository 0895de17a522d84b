/*
 * mhd_readyz.c — the libmicrohttpd spike of docs/architecture.md.
 *
 * The other promising design: libmicrohttpd's internal thread pool with
 * epoll, each pool thread owning one blocking libpq connection and running
 * the same prepared query /readyz runs. Built and measured by
 * bench/bench_http.sh next to notebookd; not part of the product.
 *
 *   mhd_readyz PORT THREADS CONNINFO
 */
#include <libpq-fe.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *conninfo;
static pthread_key_t conn_key;

static PGconn *thread_conn(void)
{
	PGconn *pg = pthread_getspecific(conn_key);
	if (pg && PQstatus(pg) == CONNECTION_OK)
		return pg;
	if (pg)
		PQfinish(pg);
	pg = PQconnectdb(conninfo);
	if (PQstatus(pg) != CONNECTION_OK) {
		PQfinish(pg);
		pg = NULL;
	} else {
		PGresult *r = PQprepare(pg, "ready", "SELECT coalesce(max(version), 0) FROM schema_migrations", 0, NULL);
		PQclear(r);
	}
	pthread_setspecific(conn_key, pg);
	return pg;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url, const char *method,
			      const char *version, const char *data, size_t *size, void **state)
{
	(void)cls, (void)version, (void)data, (void)size;
	static int first;
	if (*state == NULL) { /* headers only: wait for the (empty) body */
		*state = &first;
		return MHD_YES;
	}
	const char *body = "{\"status\":\"ready\"}";
	unsigned status = MHD_HTTP_OK;
	if (strcmp(method, "GET") != 0 || strcmp(url, "/readyz") != 0) {
		body = "{\"error\":\"not found\"}";
		status = MHD_HTTP_NOT_FOUND;
	} else {
		PGconn *pg = thread_conn();
		PGresult *r = pg ? PQexecPrepared(pg, "ready", 0, NULL, NULL, NULL, 0) : NULL;
		if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
			body = "{\"error\":\"unavailable\"}";
			status = MHD_HTTP_SERVICE_UNAVAILABLE;
		}
		PQclear(r);
	}
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
	MHD_add_response_header(resp, "Content-Type", "application/json");
	enum MHD_Result ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: mhd_readyz PORT THREADS CONNINFO\n");
		return 2;
	}
	conninfo = argv[3];
	pthread_key_create(&conn_key, NULL);
	struct MHD_Daemon *d = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, (uint16_t)atoi(argv[1]), NULL, NULL, answer, NULL,
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned)atoi(argv[2]), MHD_OPTION_CONNECTION_LIMIT, 20000u,
		MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_END);
	if (!d) {
		fprintf(stderr, "could not start libmicrohttpd\n");
		return 1;
	}
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	int sig;
	sigwait(&set, &sig);
	MHD_stop_daemon(d);
	return 0;
}
