/*
 * pool_internal.h — what db.c and pipe.c need of pool.c's connections, and
 * nothing outside src/db/ may use: prepared-statement bookkeeping, the wait
 * for an async connection's results, and the virtual handles of pipelined
 * requests. Not a public interface (like rag/extract_internal.h).
 */
#ifndef NB_DB_POOL_INTERNAL_H
#define NB_DB_POOL_INTERNAL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "db/pool.h"

/** True when the statement `id` has been prepared on this connection. */
bool nb_conn__prepared(nb_conn_t *c, int id);
/** Records that statement `id` is prepared on this connection. */
void nb_conn__set_prepared(nb_conn_t *c, int id);
/** Statements run on this connection since it was acquired. */
int nb_conn__uses(nb_conn_t *c);
void nb_conn__count_use(nb_conn_t *c);
/** Replaces the libpq connection of c with a fresh one (same pool slot). 0 or NB_EUNAVAIL. */
int nb_conn__reconnect(nb_conn_t *c);
/** True for connections of an async pool. */
bool nb_conn__async(nb_conn_t *c);
/**
 * Async connections: flushes what was sent and collects every result of the
 * command in flight, yielding while waiting. Sets *last to the last result
 * (the caller PQclears it). The wait ends at timeout_ms or at c's deadline,
 * whichever comes first: at the deadline the statement is cancelled and its
 * (error) result awaited a few seconds more, so the connection stays usable.
 * 0, or NB_EUNAVAIL when the connection failed or did not answer in time
 * (it is then marked broken).
 */
int nb_conn__await(nb_conn_t *c, PGresult **last, int timeout_ms);
/** The wait bound for one statement on this connection (statement timeout plus a margin). */
int nb_conn__wait_ms(nb_conn_t *c);
/** The same bound for the pool's connections. */
int nb_pool__wait_ms(nb_pool_t *p);
/** The pool's acquire timeout. */
int nb_pool__acquire_timeout_ms(nb_pool_t *p);
/**
 * Opens a non-blocking connection with the pool's settings, yielding while
 * connecting (async pools, from a coroutine), outside the pool's accounting
 * but inside its connect backoff, with lock_timeout = pipe_lock_timeout_ms
 * (for the pipelined connections). NULL when the database cannot be reached.
 */
PGconn *nb_pool__open_async(nb_pool_t *p);

/** The deadline set by nb_conn_set_deadline (0: none). */
int64_t nb_conn__deadline(nb_conn_t *c);
/** True once c's deadline has passed. */
bool nb_conn__expired(nb_conn_t *c);
/** The pipe of a virtual handle with no transaction open, else NULL. */
struct nb_pipe *nb_conn__pipe(nb_conn_t *c);
/** True for a virtual handle. */
bool nb_conn__is_virtual(nb_conn_t *c);
/** Adds delta to the savepoint depth of an outer transaction (nb_conn_set_outer_tx); returns the new depth. */
int nb_conn__inner_depth(nb_conn_t *c, int delta);
/** The real connection a statement on c runs on now (NULL: the pipe). */
nb_conn_t *nb_conn__real(nb_conn_t *c);
/** Virtual handles: takes a connection of the pool until nb_conn__end_exclusive. 0 or NB_EUNAVAIL. */
int nb_conn__begin_exclusive(nb_conn_t *c);
/** Virtual handles: gives the transaction's connection back. */
void nb_conn__end_exclusive(nb_conn_t *c);
/**
 * Virtual handles with a fallback (nb_conn_set_fallback) and no transaction
 * open: moves c to it (broken: the replica's connection failed) and returns
 * true; else false.
 */
bool nb_conn__fall_back(nb_conn_t *c, bool broken);

#endif
