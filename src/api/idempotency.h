/*
 * idempotency.h — the Idempotency-Key header (IETF httpapi draft) on the
 * POST routes that create something (route flag NB_ROUTE_IDEMPOTENT).
 *
 * Design: with a key, the middleware opens a transaction on the request's
 * connection before the handler and claims (user, key) in it with the
 * request's fingerprint (src/store/idempotency.h); the handler's own
 * transaction becomes a savepoint of it (db/pool.h nb_conn_set_outer_tx);
 * after the handler, a 2xx answer is recorded in the same transaction and
 * committed with the effect — a crash loses both or neither. A failed
 * request forgets its key (a retry runs it again) and commits whatever the
 * handler itself committed, as without a key. The same key again within
 * 24 hours: the first answer (status and body, Idempotent-Replayed: true),
 * nothing runs; with another body: 422. Two at once: the second waits on
 * the first's row lock, then gets its answer.
 */
#ifndef NB_API_IDEMPOTENCY_H
#define NB_API_IDEMPOTENCY_H

#include <stdbool.h>

#include "db/pool.h"
#include "http/request.h"

/* Route flag (the HTTP server ignores bits above 7): the route creates something and takes Idempotency-Key. */
#define NB_ROUTE_IDEMPOTENT (1u << 10)

/** Longest key accepted. */
#define NB_IDEM_KEY_MAX 255

/** A request's idempotency state, kept by the middleware. */
typedef struct nb_api_idem {
	bool active; /* a key was claimed: the transaction is open */
	nb_conn_t *conn;
	char key[NB_IDEM_KEY_MAX + 1];
} nb_api_idem_t;

/**
 * Before the handler of an authenticated NB_ROUTE_IDEMPOTENT route: without
 * the header does nothing (0). With it: 422 for a malformed key; otherwise
 * opens the transaction and claims the key (0, handler runs), or answers the
 * stored response or 422 (negative with req->resp set: the handler is
 * skipped).
 */
int nb_api_idem_begin(nb_req_t *req, nb_api_idem_t *st);

/**
 * After the handler: records a 2xx answer and commits; forgets the key of
 * any other and commits. If the record cannot be committed, a 2xx answer
 * becomes 503 (its effect was rolled back too). Does nothing when inactive.
 */
void nb_api_idem_end(nb_req_t *req, nb_api_idem_t *st);

#endif
