/*
 * server.h — the HTTP/1.1 server.
 *
 * Concurrency model (docs/architecture.md says why): libuv event loops (one
 * per NOTEBOOKD_IO_THREADS, listening on one shared socket) own the sockets,
 * parse with http_parser and write responses. Handlers run as coroutines on
 * their loop with non-blocking libpq connections of the loop's own pool: a
 * handler waiting on PostgreSQL yields, so it never stalls the loop, and no
 * thread switch is paid per request. Handlers that must block (password
 * hashing, long streamed answers, heavy CPU) are routed to thread pools with
 * a blocking connection pool. A loop holds thousands of idle keep-alive
 * connections for the price of their small state. Every request has a deadline;
 * SIGTERM/SIGINT stop accepting, let in-flight requests finish (up to the
 * shutdown timeout) and return from nb_server_run.
 */
#ifndef NB_HTTP_SERVER_H
#define NB_HTTP_SERVER_H

#include <stddef.h>

#include "db/pool.h"
#include "http/router.h"

typedef struct nb_server nb_server_t;

typedef struct nb_server_opts {
	const char *listen; /* host:port */
	int io_threads;
	int handler_threads;
	int hash_threads;
	int stream_threads;
	int max_connections;
	int request_timeout_ms;
	int idle_timeout_ms;
	int read_timeout_ms;
	size_t max_body_bytes;
	int shutdown_timeout_ms;
	const nb_route_t *routes;
	int nroutes;
	nb_pool_t *pool; /* for nb_req_db on threads; may be NULL */
	/* Template of the per-loop async pools used by coroutine handlers
	 * (conninfo NULL: none); size and overflow are split across the loops. */
	nb_pool_opts_t loop_pool;
	int pipelines; /* pipelined connections per loop (db/pipe.h); 0: none */
	/** Authenticates req (sets req->user_id); returns 0 or a negative nb_err_t. */
	int (*authenticate)(nb_req_t *req);
	/** Called once on SIGTERM/SIGINT, on the loop thread, before draining (may be NULL). */
	void (*on_shutdown)(void *arg);
	void *on_shutdown_arg;
} nb_server_opts_t;

/** Fills opts from nb_cfg. */
void nb_server_opts_from_config(nb_server_opts_t *o);
/**
 * Binds the listening sockets. Returns the server, or NULL with a one-line
 * reason in err (address in use, bad address).
 */
nb_server_t *nb_server_create(const nb_server_opts_t *o, char *err, size_t errlen);
/** The port actually bound (useful with port 0). */
int nb_server_port(const nb_server_t *s);
/** Serves until SIGTERM/SIGINT or nb_server_stop, then drains. Returns 0. */
int nb_server_run(nb_server_t *s);
/** Asks a running server to drain and stop (thread-safe). */
void nb_server_stop(nb_server_t *s);
/** Frees the server after nb_server_run returned. Accepts NULL. */
void nb_server_destroy(nb_server_t *s);

/** Counters for /metrics. */
typedef struct nb_server_stats {
	long connections_open;
	long connections_total;
	long requests_total;
	long requests_in_flight;
	long responses_by_class[6]; /* index status/100 */
	long timeouts;
	long rejected_connections;
} nb_server_stats_t;
void nb_server_stats(nb_server_t *s, nb_server_stats_t *out);
/** Sums the counters of the per-loop database pools. */
void nb_server_loop_pool_stats(nb_server_t *s, nb_pool_stats_t *sum);
struct nb_pipe_stats;
/** Sums the counters of the per-loop pipelines. */
void nb_server_pipe_stats(nb_server_t *s, struct nb_pipe_stats *sum);
/** The running server (one per process), for handlers that need its stats. */
nb_server_t *nb_server_current(void);

#endif
