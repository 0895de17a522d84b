/*
 * connect.h — the one way notebookd opens a PostgreSQL connection.
 *
 * Every connection (the pools, the pipelines, the job listener, migrate,
 * verify and the worker's start-up check) is opened here, so that they share
 * the same parameters: application_name, connect_timeout, and the session
 * settings passed in the startup packet's `options` (statement_timeout,
 * idle_in_transaction_session_timeout, lock_timeout) — no extra round trip,
 * and nothing a transaction-pooling PgBouncer could lose. Keepalives are
 * turned on where a connection idles for long (the LISTEN connection).
 *
 * Three variants: blocking (nb_db_connect), started for a caller that drives
 * PQconnectPoll itself (nb_db_connect_start: the listener polls its stop pipe
 * beside the socket), and yielding from a coroutine (nb_db_connect_async).
 */
#ifndef NB_DB_CONNECT_H
#define NB_DB_CONNECT_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/sched.h"

typedef struct nb_db_connect_opts {
	const char *conninfo;	      /* libpq connection string or URI */
	const char *application_name; /* NULL: "notebookd" */
	int connect_timeout_s;	      /* <= 0: 5 */
	int statement_timeout_ms;     /* 0: the server's default */
	int idle_in_tx_timeout_ms;    /* 0: the server's default */
	int lock_timeout_ms;	      /* 0: the server's default */
	bool keepalives;	      /* TCP keepalives (idle 30 s, every 10 s, 3 probes) */
} nb_db_connect_opts_t;

/** Fills o with conninfo, application_name and the configured connect timeout; no session setting. */
void nb_db_connect_opts_init(nb_db_connect_opts_t *o, const char *conninfo, const char *application_name);

/**
 * Connects, blocking up to the connect timeout. Returns the connection, or
 * NULL with a one-line reason in err (errlen bytes; err may be NULL).
 * Notices go to the debug log.
 */
PGconn *nb_db_connect(const nb_db_connect_opts_t *o, char *err, size_t errlen);

/**
 * Starts a connection (PQconnectStartParams) with the same parameters; the
 * caller drives PQconnectPoll and then calls nb_db_connect_finish. NULL (and
 * a reason in err) when it cannot even start.
 */
PGconn *nb_db_connect_start(const nb_db_connect_opts_t *o, char *err, size_t errlen);

/**
 * After the caller's PQconnectPoll loop: 0 when pg is connected (notices
 * routed to the debug log), else -1 with a one-line reason in err (`why`,
 * when not NULL, overrides libpq's message, e.g. "timeout"); the caller
 * PQfinishes pg on failure.
 */
int nb_db_connect_finish(PGconn *pg, const char *why, char *err, size_t errlen);

/**
 * From a coroutine (core/sched.h): connects, yielding while libpq waits on
 * the socket, and puts the connection in non-blocking mode. NULL with a reason
 * in err on failure (also when non-blocking mode cannot be set). When fw_out
 * is not NULL it receives the socket's watcher (the caller destroys it before
 * PQfinish); else the watcher is destroyed.
 */
PGconn *nb_db_connect_async(const nb_db_connect_opts_t *o, nb_fdwait_t **fw_out, char *err, size_t errlen);

/**
 * For a LISTEN connection on its own thread: waits until notifications may be
 * ready on pg (its input consumed: read them with PQnotifies) or stop_fd
 * becomes readable. Returns 1 when there is input, 0 when stop_fd fired, and
 * -1 when the connection dropped (the reason in why, one line).
 */
int nb_db_listen_wait(PGconn *pg, int stop_fd, char *why, size_t whylen);

#endif
