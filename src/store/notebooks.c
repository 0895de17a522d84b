/*
 * notebooks.c — SQL of notebooks (see notebooks.h).
 *
 * A notebook with its sources is one statement: the sources come from a
 * lateral join over sources_notebook_live_idx (the hot reads) or a
 * correlated json_agg (the writes' answers), so a page of 100 notebooks is
 * still one round trip and one statement.
 */
#include "store/notebooks.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/jsonw.h"
#include "core/uuid.h"
#include "db/bin.h"
#include "db/db.h"
#include "store/rows.h"
#include "store/shapes.h"

#define NB_EMBED "50"

#define NOTEBOOK_JSON(n)                                                                                      \
	"json_build_object(" NB_SQL_NOTEBOOK_FIELDS(n) ","                                                     \
	" 'source_count', (SELECT count(*) FROM sources s WHERE s.notebook_id = " n ".id"                     \
	"                  AND s.deleted_at IS NULL),"                                                          \
	" 'sources', coalesce((SELECT json_agg(x.j ORDER BY x.created_at, x.id) FROM ("                       \
	"    SELECT " NB_SQL_SOURCE_JSON("s") " AS j, s.created_at, s.id FROM sources s"                         \
	"    WHERE s.notebook_id = " n ".id AND s.deleted_at IS NULL"                                            \
	"    ORDER BY s.created_at, s.id LIMIT " NB_EMBED ") x), '[]'::json))"

NB_STMT(st_nb_create, "INSERT INTO notebooks AS n (id, owner_id, title, description, language)"
		      " VALUES ($1, $2, $3, $4, $5)"
		      " RETURNING json_build_object(" NB_SQL_NOTEBOOK_FIELDS("n")
		      ", 'source_count', 0, 'sources', '[]'::json)");
/* The old language comes from a locking subquery: the caller re-indexes
 * when it changed, and two concurrent changes queue behind each other. */
NB_STMT(st_nb_update, "WITH u AS (UPDATE notebooks x SET title = coalesce($3, x.title),"
		      " description = CASE WHEN $4 THEN $5 ELSE x.description END,"
		      " language = coalesce($6, x.language)"
		      " FROM (SELECT id, language AS old_language FROM notebooks"
		      "       WHERE id = $1 AND owner_id = $2 AND deleted_at IS NULL FOR UPDATE) o"
		      " WHERE x.id = o.id RETURNING x.*, o.old_language)"
		      " SELECT " NOTEBOOK_JSON("n") ", n.language IS DISTINCT FROM n.old_language FROM u n");
NB_STMT(st_nb_reindex, "UPDATE chunks c SET tsv = to_tsvector(nb_ts_config(n.language), c.text)"
		       " FROM notebooks n WHERE n.id = $1 AND c.notebook_id = n.id");
/*
 * The hot reads (get, the list, the trash) ask for plain rows in binary
 * format and nb_store_notebook_write renders them (no JSON built by
 * PostgreSQL, no to_char per timestamp): one row per embedded source, the
 * notebook's columns repeated, a notebook without sources once with NULL
 * source columns. Column order: ROW_* below, then NB_SQL_SOURCE_COLS.
 *
 * source_count: a notebook's embedded sources are all its live sources
 * unless the embed is full, so the writer counts its rows and PostgreSQL
 * counts only for the last row of a full embed (the CASE on the row's
 * number; the same snapshot as the rows). pgbench -M prepared -c 8 on the
 * statement alone, 10k users x 5 notebooks x 4 sources: 7,180 -> 8,170 tps
 * (median of 4 alternating runs) against a count for every notebook.
 */
#define ROWS_SELECT                                                                                           \
	"SELECT n.id, n.title, n.description, n.language, n.created_at, n.updated_at, n.deleted_at,"        \
	" CASE WHEN s.rn = " NB_EMBED " THEN (SELECT count(*) FROM sources c"                                \
	"   WHERE c.notebook_id = n.id AND c.deleted_at IS NULL) END, " NB_SQL_SOURCE_COLS("s")             \
	" FROM (SELECT n.id, n.title, n.description, n.language, n.created_at, n.updated_at, n.deleted_at" \
	"       FROM notebooks n WHERE "
#define ROWS_SOURCES                                                                                           \
	") n LEFT JOIN LATERAL (SELECT s.*, row_number() OVER () AS rn FROM (SELECT * FROM sources s"          \
	"  WHERE s.notebook_id = n.id AND s.deleted_at IS NULL ORDER BY s.created_at, s.id LIMIT " NB_EMBED \
	") s) s ON true"
enum { ROW_ID, ROW_TITLE, ROW_DESCRIPTION, ROW_LANGUAGE, ROW_CREATED, ROW_UPDATED, ROW_DELETED, ROW_SOURCE_COUNT, ROW_S };

NB_STMT(st_nb_get_rows, ROWS_SELECT "n.id = $1 AND n.owner_id = $2 AND n.deleted_at IS NULL"
	ROWS_SOURCES " ORDER BY s.created_at, s.id");
NB_STMT(st_nb_list_first, ROWS_SELECT "n.owner_id = $1 AND n.deleted_at IS NULL"
			  " ORDER BY n.created_at DESC, n.id DESC LIMIT $2" ROWS_SOURCES
			  " ORDER BY n.created_at DESC, n.id DESC, s.created_at, s.id");
NB_STMT(st_nb_list_next, ROWS_SELECT "n.owner_id = $1 AND n.deleted_at IS NULL"
			 " AND (n.created_at, n.id) < ($3::timestamptz, $4::uuid)"
			 " ORDER BY n.created_at DESC, n.id DESC LIMIT $2" ROWS_SOURCES
			 " ORDER BY n.created_at DESC, n.id DESC, s.created_at, s.id");
NB_STMT(st_nb_trash_first, ROWS_SELECT "n.owner_id = $1 AND n.deleted_at IS NOT NULL"
			   " ORDER BY n.deleted_at DESC, n.id DESC LIMIT $2" ROWS_SOURCES
			   " ORDER BY n.deleted_at DESC, n.id DESC, s.created_at, s.id");
NB_STMT(st_nb_trash_next, ROWS_SELECT "n.owner_id = $1 AND n.deleted_at IS NOT NULL"
			  " AND (n.deleted_at, n.id) < ($3::timestamptz, $4::uuid)"
			  " ORDER BY n.deleted_at DESC, n.id DESC LIMIT $2" ROWS_SOURCES
			  " ORDER BY n.deleted_at DESC, n.id DESC, s.created_at, s.id");
NB_STMT(st_nb_trash, "UPDATE notebooks SET deleted_at = now()"
		     " WHERE id = $1 AND owner_id = $2 AND deleted_at IS NULL");
NB_STMT(st_nb_restore, "WITH u AS (UPDATE notebooks SET deleted_at = NULL"
		       " WHERE id = $1 AND owner_id = $2 RETURNING *)"
		       " SELECT " NOTEBOOK_JSON("n") " FROM u n");
NB_STMT(st_nb_check, "SELECT 1 FROM notebooks WHERE id = $1 AND owner_id = $2 AND deleted_at IS NULL");
NB_STMT(st_purge_notebooks, "DELETE FROM notebooks WHERE deleted_at < now() - make_interval(days => $1)");
NB_STMT(st_purge_sources, "DELETE FROM sources WHERE deleted_at < now() - make_interval(days => $1)");
/* Bytes no source refers to any more (their sources were purged or erased). */
NB_STMT(st_purge_documents, "DELETE FROM documents d WHERE d.created_at < now() - make_interval(days => $1)"
			    " AND NOT EXISTS (SELECT 1 FROM sources s WHERE s.document_id = d.id)");

static void owner_id(nb_params_t *p, const char *id, const char *owner)
{
	nb_params_init(p);
	nb_p_text(p, id);
	nb_p_text(p, owner);
}

int nb_store_notebook_create(nb_conn_t *c, const char *owner, const char *id, const char *title,
			     const char *description, const char *language, json_t **out)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, id);
	nb_p_text(&p, owner);
	nb_p_text(&p, title);
	nb_p_text(&p, description);
	nb_p_text(&p, language);
	return nb_db_one_json(c, &st_nb_create, &p, out);
}

int nb_store_notebook_get(nb_conn_t *c, const char *owner, const char *id, PGresult **rows)
{
	*rows = NULL;
	if (!nb_uuid_valid(id))
		return NB_ENOTFOUND;
	nb_params_t p;
	owner_id(&p, id, owner);
	int rc = nb_db_exec_binary(c, &st_nb_get_rows, &p, rows);
	if (rc == 0 && PQntuples(*rows) == 0) {
		PQclear(*rows);
		*rows = NULL;
		rc = NB_ENOTFOUND;
	}
	return rc;
}

int nb_store_notebook_update(nb_conn_t *c, const char *owner, const char *id, const nb_notebook_patch_t *patch,
			     json_t **out, bool *language_changed)
{
	nb_params_t p;
	owner_id(&p, id, owner);
	nb_p_text(&p, patch->title);
	nb_p_bool(&p, patch->set_description);
	nb_p_text(&p, patch->description);
	nb_p_text(&p, patch->language);
	PGresult *r = NULL;
	*out = NULL;
	*language_changed = false;
	int rc = nb_db_exec(c, &st_nb_update, &p, &r);
	if (rc < 0)
		return rc;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return NB_ENOTFOUND;
	}
	*out = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
	*language_changed = nb_db_get_bool(r, 0, 1);
	PQclear(r);
	return *out ? 0 : NB_EDB;
}

int nb_store_notebook_reindex(nb_conn_t *c, const char *id, long *chunks)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, id);
	PGresult *r = NULL;
	int rc = nb_db_exec(c, &st_nb_reindex, &p, &r);
	if (rc < 0)
		return rc;
	if (chunks)
		*chunks = atol(PQcmdTuples(r));
	PQclear(r);
	return 0;
}

int nb_store_notebooks_list(nb_conn_t *c, const char *owner, bool trashed, int limit, const char *after_ts,
			    const char *after_id, PGresult **rows)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, owner);
	nb_p_int(&p, limit + 1);
	nb_stmt_t *st = trashed ? &st_nb_trash_first : &st_nb_list_first;
	if (after_ts) {
		nb_p_text(&p, after_ts);
		nb_p_text(&p, after_id);
		st = trashed ? &st_nb_trash_next : &st_nb_list_next;
	}
	return nb_db_exec_binary(c, st, &p, rows);
}

/* The same notebook as the row before? (its rows are consecutive) */
static bool same_notebook(const PGresult *r, int a, int b)
{
	return !memcmp(PQgetvalue(r, a, ROW_ID), PQgetvalue(r, b, ROW_ID), 16);
}

int nb_store_notebook_write(nb_jsonw_t *w, const PGresult *r, int row)
{
	int n = PQntuples(r);
	nb_jsonw_obj(w);
	nb_jsonw_key(w, "id");
	nb_row_uuid(w, r, row, ROW_ID);
	nb_jsonw_key(w, "title");
	nb_row_text(w, r, row, ROW_TITLE);
	nb_jsonw_key(w, "description");
	nb_row_text(w, r, row, ROW_DESCRIPTION);
	nb_jsonw_key(w, "language");
	nb_row_text(w, r, row, ROW_LANGUAGE);
	nb_jsonw_key(w, "created_at");
	nb_row_ts(w, r, row, ROW_CREATED);
	nb_jsonw_key(w, "updated_at");
	nb_row_ts(w, r, row, ROW_UPDATED);
	nb_jsonw_key(w, "deleted_at");
	nb_row_ts(w, r, row, ROW_DELETED);
	int end = row + 1;
	while (end < n && same_notebook(r, row, end))
		end++;
	bool none = nb_bin_null(r, row, ROW_S); /* a notebook without sources: one row of NULLs */
	nb_jsonw_key(w, "source_count");
	if (!nb_bin_null(r, end - 1, ROW_SOURCE_COUNT)) /* a full embed: counted by PostgreSQL */
		nb_jsonw_int(w, nb_bin_int(r, end - 1, ROW_SOURCE_COUNT));
	else
		nb_jsonw_int(w, none ? 0 : end - row);
	nb_jsonw_key(w, "sources");
	nb_jsonw_arr(w);
	for (int i = row; i < end && !none; i++)
		nb_store_source_row(w, r, i, ROW_S);
	nb_jsonw_arr_end(w);
	nb_jsonw_obj_end(w);
	return end;
}

void nb_store_notebook_key(const PGresult *r, int row, bool trashed, char ts_out[40], char id_out[37])
{
	nb_row_ts_text(r, row, trashed ? ROW_DELETED : ROW_CREATED, ts_out);
	nb_row_uuid_text(r, row, ROW_ID, id_out);
}

int nb_store_notebook_trash(nb_conn_t *c, const char *owner, const char *id)
{
	nb_params_t p;
	owner_id(&p, id, owner);
	PGresult *r = NULL;
	int rc = nb_db_exec(c, &st_nb_trash, &p, &r);
	if (rc < 0)
		return rc;
	rc = atoi(PQcmdTuples(r)) > 0 ? 0 : NB_ENOTFOUND;
	PQclear(r);
	return rc;
}

int nb_store_notebook_restore(nb_conn_t *c, const char *owner, const char *id, json_t **out)
{
	nb_params_t p;
	owner_id(&p, id, owner);
	return nb_db_one_json(c, &st_nb_restore, &p, out);
}

int nb_store_notebook_check(nb_conn_t *c, const char *owner, const char *id)
{
	nb_params_t p;
	owner_id(&p, id, owner);
	PGresult *r = NULL;
	int rc = nb_db_exec(c, &st_nb_check, &p, &r);
	if (rc < 0)
		return rc;
	rc = PQntuples(r) > 0 ? 0 : NB_ENOTFOUND;
	PQclear(r);
	return rc;
}

int nb_store_purge_trash(nb_conn_t *c, int days, long *notebooks, long *sources)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_int(&p, days);
	PGresult *r = NULL;
	int rc = nb_db_exec(c, &st_purge_notebooks, &p, &r);
	if (rc < 0)
		return rc;
	*notebooks = atol(PQcmdTuples(r));
	PQclear(r);
	rc = nb_db_exec(c, &st_purge_sources, &p, &r);
	if (rc < 0)
		return rc;
	*sources = atol(PQcmdTuples(r));
	PQclear(r);
	return nb_db_exec(c, &st_purge_documents, &p, NULL);
}
