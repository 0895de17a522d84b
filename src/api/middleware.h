/*
 * middleware.h — what the API runs around every handler, plugged into the
 * HTTP server's hooks (http/server.h): per-loop database pools and
 * pipelines, authentication as soon as a request's head is routed (before
 * its body is read), the body checks (content type, JSON nesting depth,
 * parse), the request's database connection, and releasing it afterwards.
 */
#ifndef NB_API_MIDDLEWARE_H
#define NB_API_MIDDLEWARE_H

#include <stdbool.h>
#include <stddef.h>

#include "db/pipe.h"
#include "db/pool.h"
#include "http/server.h"

/** JSON bodies nested deeper than this are refused (400) before parsing: the parser recurses. */
#define NB_JSON_MAX_DEPTH 64

/**
 * The request's database connection, acquired on first call (a coroutine
 * takes one of its loop's async pool, through the loop's pipelines; a thread
 * one of the blocking pool) and released after the handler. Returns 0, or
 * NB_EUNAVAIL (pool exhausted or database down).
 */
int nb_req_db(nb_req_t *r, nb_conn_t **out);
/**
 * Marks the request as one whose waits for a database connection are never
 * shed (health checks): called before or after nb_req_db, it waits up to its
 * deadline instead of the fast 503 a loaded pool gives other requests.
 */
void nb_req_db_unshed(nb_req_t *r);

/**
 * Fills the hooks of so: each loop gets an async pool made from loop_pool
 * (conninfo NULL: none; size and overflow split across the loops) with
 * `pipelines` pipelined connections; thread handlers use thread_pool.
 * The option structs are copied.
 */
void nb_api_middleware_install(nb_server_opts_t *so, nb_pool_t *thread_pool, const nb_pool_opts_t *loop_pool,
			       int pipelines);

/**
 * A read replica (api/replica.h): each loop also gets an async pool made from
 * loop_read_pool (size split across the loops) with as many pipelined
 * connections as the primary's; thread handlers of read-only routes use
 * thread_read_pool. Call after nb_api_middleware_install, before the loops
 * start. The option struct is copied; the pool stays the caller's.
 */
void nb_api_middleware_set_replica(const nb_pool_opts_t *loop_read_pool, nb_pool_t *thread_read_pool);

/**
 * The body checks of a request: no body passes; multipart passes on routes
 * that take it; otherwise the content type must be JSON (415), nesting at
 * most NB_JSON_MAX_DEPTH (400), valid JSON (400) and an object (400). Sets
 * req->json. 0, or a negative nb_err_t with the answer set. Pure: used by
 * the hooks and by fuzz/fuzz_http.c.
 */
int nb_api_check_body(nb_req_t *req);

/** True when the JSON text p[0..n) nests arrays/objects deeper than max. */
bool nb_api_json_too_deep(const char *p, size_t n, int max);

/** Sums the counters of the per-loop database pools. */
void nb_api_loop_pool_stats(nb_pool_stats_t *sum);
/** Sums the counters of the read replica's pools (the loops' and the thread pool's; zeros without one). */
void nb_api_read_pool_stats(nb_pool_stats_t *sum);
/** Sums the counters of the per-loop pipelines. */
void nb_api_pipe_stats(nb_pipe_stats_t *sum);
/** Adds the acquire-wait histograms of every loop's pool into sum. */
void nb_api_loop_pool_wait_histo(nb_histo_snap_t *sum);
/** How many event loops have a database pool (0 outside `serve`, e.g. the worker's metrics listener). */
int nb_api_loop_count(void);

#endif
