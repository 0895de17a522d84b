/*
 * notebooks.h — the notebooks aggregate: notebooks with their sources, the
 * trash, and the ownership checks everything under a notebook goes through.
 *
 * Every function is scoped to an owner: another user's notebook and a
 * notebook in the trash are NB_ENOTFOUND, exactly like one that does not
 * exist. Lists are keyset pages (limit + 1 rows, see api/util.h) and run one
 * statement whatever the number of notebooks and sources.
 */
#ifndef NB_STORE_NOTEBOOKS_H
#define NB_STORE_NOTEBOOKS_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>

#include "core/jsonw.h"
#include "db/pool.h"

/** Sources embedded in a notebook (oldest first); the rest via the sources list. */
#define NB_NOTEBOOK_EMBEDDED_SOURCES 50

/**
 * Creates a notebook; *out is its JSON (with source_count 0 and no
 * sources). language: a valid ISO 639-1 code (the caller checked it).
 */
int nb_store_notebook_create(nb_conn_t *c, const char *owner, const char *id, const char *title,
			     const char *description, const char *language, json_t **out);
/**
 * One live notebook with its sources: *rows (binary, the caller PQclears it)
 * for nb_store_notebook_write from row 0. NB_ENOTFOUND (and *rows NULL) when
 * there is none.
 */
int nb_store_notebook_get(nb_conn_t *c, const char *owner, const char *id, PGresult **rows);
/**
 * Writes the notebook whose rows start at `row` of a get or list result as
 * its JSON object (API.md: with source_count and up to
 * NB_NOTEBOOK_EMBEDDED_SOURCES sources); returns the row of the next
 * notebook (PQntuples when none).
 */
int nb_store_notebook_write(nb_jsonw_t *w, const PGresult *r, int row);
/**
 * The cursor key of the notebook at `row` of a list result: its created_at
 * (trashed: deleted_at) as PostgreSQL prints a timestamptz, and its id.
 */
void nb_store_notebook_key(const PGresult *r, int row, bool trashed, char ts_out[40], char id_out[37]);
/** What a PATCH changes: NULL (and set_description false) keeps a field. */
typedef struct nb_notebook_patch {
	const char *title;
	bool set_description;	 /* replace the description with `description` (NULL clears it) */
	const char *description;
	const char *language;	 /* a valid ISO 639-1 code, or NULL */
} nb_notebook_patch_t;

/**
 * Applies patch to a live notebook of the owner; *out is the notebook with
 * its sources, *language_changed true when its language is now another one
 * (the caller then enqueues the re-index, in the same transaction).
 */
int nb_store_notebook_update(nb_conn_t *c, const char *owner, const char *id, const nb_notebook_patch_t *patch,
			     json_t **out, bool *language_changed);
/**
 * Recomputes the stored full-text vectors of the notebook's chunks with its
 * current language (the reindex_notebook job). Writes how many in *chunks
 * (may be NULL).
 */
int nb_store_notebook_reindex(nb_conn_t *c, const char *id, long *chunks);
/**
 * A page of notebooks, newest first (trashed: the trash, most recently
 * trashed first). after_ts/after_id: the cursor, or NULL for the first page.
 * *rows gets up to limit + 1 notebooks (binary rows, one per embedded source)
 * for nb_store_notebook_write and nb_store_notebook_key; the caller owns it.
 */
int nb_store_notebooks_list(nb_conn_t *c, const char *owner, bool trashed, int limit, const char *after_ts,
			    const char *after_id, PGresult **rows);
/** Moves a live notebook to the trash. */
int nb_store_notebook_trash(nb_conn_t *c, const char *owner, const char *id);
/** Takes a notebook out of the trash (no-op if it is live); returns it. */
int nb_store_notebook_restore(nb_conn_t *c, const char *owner, const char *id, json_t **out);
/** 0 when the notebook is the owner's and live, else NB_ENOTFOUND. */
int nb_store_notebook_check(nb_conn_t *c, const char *owner, const char *id);
/**
 * Hard-deletes notebooks (and, by cascade, all under them) and sources that
 * have been in the trash longer than `days`, then documents older than that
 * which no source refers to any more. Writes the counts.
 */
int nb_store_purge_trash(nb_conn_t *c, int days, long *notebooks, long *sources);

#endif
