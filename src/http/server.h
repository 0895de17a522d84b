/*
 * server.h — the HTTP/1.1 server, a library on core alone.
 *
 * Concurrency model (docs/architecture.md says why): libuv event loops (one
 * per NOTEBOOKD_IO_THREADS, listening on one shared socket) own the sockets,
 * parse with http_parser and write responses. Handlers run as coroutines on
 * their loop, inline on it, or on thread pools (router.h's exec classes).
 * Every request has a deadline; SIGTERM/SIGINT stop accepting, let in-flight
 * requests finish (up to the shutdown timeout) and return from nb_server_run.
 *
 * The server knows nothing of databases or of the API: the application plugs
 * in through hooks — per-loop start/stop (where it keeps its per-loop
 * resources, handed to each request as req->loop_data), a check that runs
 * as soon as a request's head is routed (before any body byte is read), and
 * a wrap around every handler (body checks, authentication, releasing what
 * the request took). src/http/README.md describes the parts.
 */
#ifndef NB_HTTP_SERVER_H
#define NB_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/metrics.h"
#include "http/router.h"

typedef struct nb_server nb_server_t;

/** What the application plugs into the server. Every hook may be NULL. */
typedef struct nb_server_hooks {
	void *arg; /* passed to loop_start and loop_stop */
	/**
	 * Called on each event-loop thread before it serves (index 0..nloops-1).
	 * Returns the loop's application pointer, given to each request of the
	 * loop as req->loop_data.
	 */
	void *(*loop_start)(void *arg, int index, int nloops);
	/** Called once per loop after serving stopped, before its loop closes; frees loop_data. */
	void (*loop_stop)(void *arg, void *loop_data);
	/**
	 * Called on the loop as soon as a request's head is complete and routed,
	 * before any body byte is read. Must not wait. Returns 0, or a negative
	 * nb_err_t with req->resp set: the answer goes out at once and the body is
	 * never read (the connection closes if one would follow).
	 */
	int (*on_head)(nb_req_t *req);
	/** Runs where the handler runs, just before it. 0, or a negative nb_err_t (answer set or standard). */
	int (*before)(nb_req_t *req);
	/** Runs where the handler ran, just after it, even on failure: release what the request took. */
	void (*after)(nb_req_t *req);
	/**
	 * May be NULL. True for a peer address that carries many clients (a
	 * trusted proxy): its connections are not held to
	 * max_connections_per_client. Called once per accepted connection.
	 */
	bool (*uncapped_peer)(const char *addr);
} nb_server_hooks_t;

typedef struct nb_server_opts {
	const char *listen;       /* host:port */
	const char *admin_listen; /* host:port of a second listener serving only NB_ROUTE_ADMIN routes; NULL: none */
	int io_threads;
	int handler_threads;
	int hash_threads;
	int stream_threads;
	int max_connections;
	int max_connections_per_client; /* open connections per client address */
	int request_timeout_ms;
	int idle_timeout_ms;
	int read_timeout_ms;
	int first_request_timeout_ms; /* a new connection's first request head must arrive within this */
	int write_timeout_ms;         /* a client that reads nothing this long is disconnected */
	size_t max_body_bytes;        /* routes with NB_ROUTE_MULTIPART */
	size_t max_json_bytes;        /* every other route */
	int shutdown_timeout_ms;
	const char *tmp_dir; /* where large bodies are spooled; NULL: $TMPDIR or /tmp */
	const nb_route_t *routes;
	int nroutes;
	nb_server_hooks_t hooks;
	/** Called once on SIGTERM/SIGINT, on the loop thread, before draining (may be NULL). */
	void (*on_shutdown)(void *arg);
	void *on_shutdown_arg;
} nb_server_opts_t;

/** Fills opts from nb_cfg (no routes, no hooks). */
void nb_server_opts_from_config(nb_server_opts_t *o);
/**
 * Binds the listening sockets and prepares the loops. Returns the server, or
 * NULL with a one-line reason in err (address in use, bad address, a libuv or
 * thread resource that could not be set up).
 */
nb_server_t *nb_server_create(const nb_server_opts_t *o, char *err, size_t errlen);
/** The port actually bound (useful with port 0). */
int nb_server_port(const nb_server_t *s);
/** The admin listener's port, or 0 without one. */
int nb_server_admin_port(const nb_server_t *s);
/**
 * Serves until SIGTERM/SIGINT or nb_server_stop, then drains. Returns 0, or
 * -1 when a loop thread could not be started (err says why).
 */
int nb_server_run(nb_server_t *s, char *err, size_t errlen);
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
	long write_timeouts; /* clients disconnected for not reading */
} nb_server_stats_t;
/** Reads the counters (any thread). */
void nb_server_stats(nb_server_t *s, nb_server_stats_t *out);
/*
 * Requests by route and status, and latency by route. Every route of the table
 * has a slot (its pattern, never the raw path), plus one for requests that
 * matched no route (404, 405, malformed). A status is counted exactly when it
 * is one of a fixed list, otherwise as its class: the label set is bounded.
 * Counting is two relaxed atomic adds and one histogram observation.
 */
#define NB_HTTP_STATUS_SLOTS 36
/** The label of status slot i: "200", …, or a class "5xx". */
const char *nb_server_status_label(int i);
typedef struct nb_route_stats {
	const char *method;  /* the route's method; "" for the unmatched slot */
	const char *pattern; /* the route's pattern; NULL for the unmatched slot */
	uint64_t by_status[NB_HTTP_STATUS_SLOTS];
	nb_histo_snap_t latency; /* from the request's first byte to its last response byte queued */
} nb_route_stats_t;
/** The number of route slots (routes of both listeners, and the unmatched one). */
int nb_server_route_slots(const nb_server_t *s);
/** Copies slot i's counts into out. Returns false when the slot holds no route (an unused spare). */
bool nb_server_route_stats(nb_server_t *s, int i, nb_route_stats_t *out);

/** The running server (one per process), for handlers that need its stats. */
nb_server_t *nb_server_current(void);

#endif
