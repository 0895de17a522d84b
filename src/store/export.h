/*
 * export.h — reading everything a user owns, for GET /v1/me/export.
 *
 * The export runs in one REPEATABLE READ, READ ONLY transaction (one
 * consistent snapshot) over server-side cursors, each ordered by notebook,
 * so the caller can merge them while streaming and hold only one batch of
 * rows per cursor in memory: a fixed set of cursors and one FETCH per batch,
 * never a statement per notebook.
 */
#ifndef NB_STORE_EXPORT_H
#define NB_STORE_EXPORT_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "db/pool.h"

/** The cursors, in the order the document needs them. */
typedef enum {
	NB_EXPORT_NOTEBOOKS,
	NB_EXPORT_SOURCES,
	NB_EXPORT_CONVERSATIONS,
	NB_EXPORT_QUIZZES,
	NB_EXPORT_STUDY_GUIDES,
	NB_EXPORT_GENERATIONS,
	NB_EXPORT_CURSORS_
} nb_export_cursor_t;

/** A cursor being read: rows are (notebook_id, json text). */
typedef struct nb_export_rows {
	nb_conn_t *conn;
	nb_export_cursor_t which;
	PGresult *batch;
	int row;
	bool done;
} nb_export_rows_t;

/**
 * Begins the snapshot and declares every cursor for user_id. Writes the
 * user's JSON and the snapshot time into *user_json / *exported_at (the
 * caller frees both with free()). 0 or a negative nb_err_t.
 */
int nb_store_export_begin(nb_conn_t *c, const char *user_id, char **user_json, char **exported_at);
/** Starts reading one cursor. */
void nb_store_export_rows_init(nb_export_rows_t *rows, nb_conn_t *c, nb_export_cursor_t which);
/**
 * The current row (fetching the next batch when needed): 1 with *notebook_id
 * and *json pointing into the batch (valid until the next call), 0 at the
 * end, or a negative nb_err_t.
 */
int nb_store_export_peek(nb_export_rows_t *rows, const char **notebook_id, const char **json);
/** Moves past the current row. */
void nb_store_export_next(nb_export_rows_t *rows);
/** Frees the batch. */
void nb_store_export_rows_dispose(nb_export_rows_t *rows);
/** Ends the snapshot. */
void nb_store_export_end(nb_conn_t *c);

#endif
