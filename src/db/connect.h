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
 * Four variants: blocking (nb_db_connect), started for a caller that drives
 * PQconnectPoll itself (nb_db_connect_start), blocking but given up when a
 * stop descriptor fires (nb_db_connect_stoppable: the LISTEN threads), and
 * yielding from a coroutine (nb_db_connect_async). nb_db_listener_run is the
 * one connect-LISTEN-wait-reconnect loop of the LISTEN threads.
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
 * Connects blocking, like nb_db_connect, but polls stop_fd beside the socket:
 * gives up at once when stop_fd becomes readable (reason "stopping") or after
 * the connect timeout ("timeout"). Returns the connection, or NULL with a
 * one-line reason in err (errlen bytes; err may be NULL).
 */
PGconn *nb_db_connect_stoppable(const nb_db_connect_opts_t *o, int stop_fd, char *err, size_t errlen);

/** What nb_db_listener_run keeps up; every callback gets arg. */
typedef struct nb_db_listener {
	nb_db_connect_opts_t opts; /* keepalives are turned on by nb_db_listener_run */
	int stop_fd;		   /* readable = stop */
	int backoff_min_ms;	   /* the first wait after a failed connect, doubled up to backoff_max_ms */
	int backoff_max_ms;
	const char *name;	  /* for the log: "<name> could not connect (why); <down_note>" */
	const char *down_note; /* e.g. "retrying" */
	const char *lost_note; /* "<name> lost its connection (why); <lost_note>" */
	int (*subscribe)(PGconn *pg);		/* runs the LISTEN: 0, or negative (then reconnects) */
	void (*on_up)(void *arg);		/* subscribed: notifications may have been missed before */
	void (*on_input)(void *arg, PGconn *pg); /* input consumed: drain PQnotifies(pg) */
	void (*on_down)(void *arg);		/* the connection dropped or stop came; may be NULL */
	void *arg;
} nb_db_listener_t;

/**
 * The loop of a LISTEN thread, until l->stop_fd becomes readable: connects
 * (nb_db_connect_stoppable), subscribes, calls on_up, then on_input whenever
 * input arrives; when the connection drops, calls on_down and reconnects
 * with a doubling back-off (the first failure of a run of failures is
 * logged as a warning, the next success as info). Owns every connection it
 * opens; returns once stop is asked.
 */
void nb_db_listener_run(const nb_db_listener_t *l);

/**
 * For a LISTEN connection on its own thread: waits until notifications may be
 * ready on pg (its input consumed: read them with PQnotifies) or stop_fd
 * becomes readable. Returns 1 when there is input, 0 when stop_fd fired, and
 * -1 when the connection dropped (the reason in why, one line).
 */
int nb_db_listen_wait(PGconn *pg, int stop_fd, char *why, size_t whylen);

#endif
