/*
 * replica.h — the API's side of read replicas (DATABASE_READ_URL): the route
 * flag of the read-only routes, starting the replica's pools and checks, and
 * its /metrics families.
 *
 * Design: a route flagged NB_ROUTE_READ only reads (the route table says so
 * explicitly; no route that writes carries it). Its request's connection
 * comes from the replica's pools when db/replica.h says the replica is usable
 * for the request's user (src/api/middleware.c decides, at the request's
 * first statement, with no statement of its own); everything else — writes,
 * the user check of authentication, the user cache, job workers, LISTEN,
 * migrations — uses the primary.
 */
#ifndef NB_API_REPLICA_H
#define NB_API_REPLICA_H

#include "core/buf.h"

/** The route only reads: it may be served by the read replica. */
#define NB_ROUTE_READ (1u << 12)

/**
 * When DATABASE_READ_URL is set: starts the replica's checks and hands its
 * pools to the middleware (before the server's loops start). 0 (also when
 * not configured), or -1 when the checks cannot start.
 */
int nb_api_replica_start(void);
/** Stops the checks and closes the replica's thread pool (after the server stopped). */
void nb_api_replica_stop(void);
/** Appends the notebookd_db_replica_* and read-routing families (always, configured or not). */
void nb_api_replica_metrics(nb_buf_t *b);

#endif
