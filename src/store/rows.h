/*
 * rows.h — writing API resources as JSON straight from binary result rows
 * (db/bin.h, core/jsonw.h), for the hot reads: PostgreSQL returns plain
 * columns and C writes the document, byte for byte what json_build_object
 * with the shapes.h macros gave (tests/integration/test_shapes.c holds the
 * two side by side).
 *
 * A source's columns come in the order of NB_SQL_SOURCE_COLS, from any
 * column index on, so that a source can be a whole row (the sources list)
 * or the tail of a wider one (the sources embedded in a notebook).
 */
#ifndef NB_STORE_ROWS_H
#define NB_STORE_ROWS_H

#include <libpq-fe.h>

#include "core/jsonw.h"

/** Columns of a source, for nb_store_source_row (summary and topics as in NB_SQL_SOURCE_JSON). */
#define NB_SQL_SOURCE_COLS(s)                                                                               \
	s ".id, " s ".notebook_id, " s ".document_id, " s ".kind, " s ".title, " s ".url, " s ".status, " s \
	".error, " s ".byte_size, " s ".chunk_count, " s ".page_count, " s ".summary::json, " s ".topics::json, " s \
	".created_at, " s ".updated_at"
/** How many columns NB_SQL_SOURCE_COLS has. */
#define NB_SOURCE_NCOLS 15

/** Column writers: SQL NULL is null; ts is null for ±infinity too (as nb_ts gave). */
void nb_row_ts(nb_jsonw_t *w, const PGresult *r, int row, int col);
void nb_row_text(nb_jsonw_t *w, const PGresult *r, int row, int col);
void nb_row_uuid(nb_jsonw_t *w, const PGresult *r, int row, int col);
void nb_row_int(nb_jsonw_t *w, const PGresult *r, int row, int col);
/** A json column (its text, compacted). */
void nb_row_json(nb_jsonw_t *w, const PGresult *r, int row, int col);

/** Writes the source whose NB_SQL_SOURCE_COLS start at column col0 of row. */
void nb_store_source_row(nb_jsonw_t *w, const PGresult *r, int row, int col0);

/** A timestamptz column as the text PostgreSQL prints under TimeZone UTC (cursor keys). */
void nb_row_ts_text(const PGresult *r, int row, int col, char out[40]);
/** A uuid column as text. */
void nb_row_uuid_text(const PGresult *r, int row, int col, char out[37]);

#endif
