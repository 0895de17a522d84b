/*
 * db.h — running SQL: prepared statements, parameters, transactions.
 *
 * Every statement of the store layer is a static nb_stmt_t, prepared once per
 * connection on first use and then executed by name — parameters only, never
 * SQL built from input. Blocking connections use PQprepare/PQexecPrepared;
 * async and pipelined ones send the same and yield for the results. Each
 * executed statement is counted on the request's handle (nb_conn_statements,
 * which X-DB-Statements reports; the no-N+1 tests read it) and in a
 * thread-local counter (nb_db_stmt_count, for code on one thread).
 *
 * On an event loop a statement normally shares a pipelined connection
 * (pipe.h). One that waited there for a lock longer than the pipelines'
 * lock_timeout, or was abandoned at its request's deadline, runs again on a
 * connection of its own and keeps off the pipelines for a few seconds, so
 * that a locked table holds up only the requests that read it.
 *
 * The first statement on a freshly acquired connection, outside a
 * transaction, is retried once on a fresh connection if the old one turned
 * out dead (the statement never reached a live backend, so this is safe).
 */
#ifndef NB_DB_DB_H
#define NB_DB_DB_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db/pool.h"

typedef struct nb_stmt {
	const char *name; /* unique statement name */
	const char *sql;
	int id;    /* assigned on first use; 0 = not yet */
	bool slow; /* may take long: never pipelined behind other requests' statements */
	int64_t pipe_holdoff_until; /* monotonic ms: kept off the pipelines until then (it waited for a lock) */
	signed char read_only; /* nb_db_sql_read_only(sql), worked out on first use: 1 yes, -1 no, 0 not yet */
} nb_stmt_t;

/** Declares a statement: NB_STMT(st_user_by_id, "SELECT … WHERE id = $1"). */
#define NB_STMT(var, text) static nb_stmt_t var = {#var, text, 0, false, 0, 0}
/**
 * Declares a statement that may run long (ranking, sleeping): on an event
 * loop it takes a pool connection of its own instead of the shared pipeline,
 * where it would hold up every statement queued behind it.
 */
#define NB_STMT_SLOW(var, text) static nb_stmt_t var = {#var, text, 0, true, 0, 0}

/** SQLSTATE lock_not_available (lock_timeout, NOWAIT). */
#define NB_SQLSTATE_LOCK_NOT_AVAILABLE "55P03"

#define NB_MAX_PARAMS 24

/** Parameters of one statement, built on the stack. Text format except bytes. */
typedef struct nb_params {
	int n;
	const char *v[NB_MAX_PARAMS];
	int len[NB_MAX_PARAMS];
	int fmt[NB_MAX_PARAMS];
	char num[NB_MAX_PARAMS][24]; /* storage for integer parameters */
} nb_params_t;

/** Starts an empty parameter list. */
void nb_params_init(nb_params_t *p);
/** Adds a text parameter (NULL adds SQL NULL). The string must outlive the call. */
void nb_p_text(nb_params_t *p, const char *s);
/** Adds an integer parameter. */
void nb_p_int(nb_params_t *p, int64_t v);
/** Adds a boolean parameter. */
void nb_p_bool(nb_params_t *p, bool v);
/** Adds a binary (bytea) parameter. */
void nb_p_bytes(nb_params_t *p, const void *data, size_t n);
/** Adds SQL NULL. */
void nb_p_null(nb_params_t *p);

/**
 * Runs a prepared statement. Returns 0 with *res (the caller PQclears it;
 * res may be NULL to discard), or NB_EDB for an SQL error (logged; the
 * SQLSTATE is kept, see nb_db_sqlstate) or NB_EUNAVAIL when the connection
 * died. On NB_EUNAVAIL the connection is marked broken.
 */
int nb_db_exec(nb_conn_t *c, nb_stmt_t *st, const nb_params_t *p, PGresult **res);
/** As nb_db_exec, with every result column in binary format (bytea without hex escaping). */
int nb_db_exec_binary(nb_conn_t *c, nb_stmt_t *st, const nb_params_t *p, PGresult **res);
/**
 * Runs a statement that cannot be prepared (DECLARE … CURSOR, FETCH), with
 * parameters, through the unnamed statement. Results and errors as nb_db_exec.
 */
int nb_db_exec_unprepared(nb_conn_t *c, const char *sql, const nb_params_t *p, PGresult **res);
/** Runs a parameterless utility command (BEGIN, COMMIT, …); 0 or an error as nb_db_exec. */
int nb_db_command(nb_conn_t *c, const char *sql);
/** BEGIN / COMMIT / ROLLBACK. */
int nb_db_begin(nb_conn_t *c);
int nb_db_commit(nb_conn_t *c);
void nb_db_rollback(nb_conn_t *c);
/**
 * True when sql is a read that may share an implicit transaction with other
 * reads (db/pipe.h): it begins with SELECT or WITH and names no keyword or
 * function that writes, locks rows, takes advisory locks, changes settings,
 * or reads the transaction's clock (now() and the like would report the
 * batch's start). Conservative: a word is matched wherever it stands, so an
 * unusual column name only costs the batching, never correctness.
 */
bool nb_db_sql_read_only(const char *sql);
/** SQLSTATE of this thread's last failed statement ("" if none). */
const char *nb_db_sqlstate(void);
/** True when the last failure was a unique violation (23505). */
bool nb_db_unique_violation(void);

/** Statements executed by this thread since the last reset. */
long nb_db_stmt_count(void);
/** Resets this thread's statement counter. */
void nb_db_stmt_count_reset(void);

/**
 * Runs a statement whose first row's first column is a JSON document and
 * parses it into *out (the caller owns it). NB_ENOTFOUND when there is no row.
 */
int nb_db_one_json(nb_conn_t *c, nb_stmt_t *st, const nb_params_t *p, json_t **out);
/** Helpers for reading results: the value or NULL when SQL NULL. */
const char *nb_db_get(const PGresult *r, int row, int col);
/** Integer value (0 for NULL). */
int64_t nb_db_get_int(const PGresult *r, int row, int col);
/** True for 't'. */
bool nb_db_get_bool(const PGresult *r, int row, int col);

#endif
