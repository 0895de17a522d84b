/*
 * export.c — the export's snapshot and cursors (see export.h).
 */
#include "store/export.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "db/db.h"
#include "store/shapes.h"

#define BATCH "200"

/* Cursor names are constants of ours; the owner is a parameter. */
static const char *declare_sql[NB_EXPORT_CURSORS_] = {
	[NB_EXPORT_NOTEBOOKS] = "DECLARE nb_x_notebooks NO SCROLL CURSOR FOR"
				" SELECT n.id, json_build_object(" NB_SQL_NOTEBOOK_FIELDS("n") ")"
				" FROM notebooks n WHERE n.owner_id = $1 ORDER BY n.id",
	[NB_EXPORT_SOURCES] = "DECLARE nb_x_sources NO SCROLL CURSOR FOR"
			      " SELECT s.notebook_id, (" NB_SQL_SOURCE_JSON("s") "::jsonb"
			      "   || jsonb_build_object('deleted_at', nb_ts(s.deleted_at), 'text', d.extracted_text))"
			      " FROM sources s JOIN notebooks n ON n.id = s.notebook_id"
			      " LEFT JOIN documents d ON d.id = s.document_id"
			      " WHERE n.owner_id = $1 ORDER BY s.notebook_id, s.created_at, s.id",
	[NB_EXPORT_CONVERSATIONS] =
		"DECLARE nb_x_conversations NO SCROLL CURSOR FOR"
		" SELECT c.notebook_id, (" NB_SQL_CONVERSATION_JSON("c") "::jsonb"
		"  || jsonb_build_object('deleted_at', nb_ts(c.deleted_at),"
		"  'messages', (SELECT coalesce(json_agg(" NB_SQL_MESSAGE_JSON("m") " ORDER BY m.created_at, m.id), '[]')"
		"               FROM messages m WHERE m.conversation_id = c.id)))"
		" FROM conversations c WHERE c.user_id = $1 ORDER BY c.notebook_id, c.created_at, c.id",
	[NB_EXPORT_QUIZZES] = "DECLARE nb_x_quizzes NO SCROLL CURSOR FOR"
			      " SELECT q.notebook_id, " NB_SQL_QUIZ_JSON("q")
			      " FROM quizzes q JOIN notebooks n ON n.id = q.notebook_id"
			      " WHERE n.owner_id = $1 ORDER BY q.notebook_id, q.created_at, q.id",
	[NB_EXPORT_STUDY_GUIDES] = "DECLARE nb_x_study_guides NO SCROLL CURSOR FOR"
				   " SELECT g.notebook_id, " NB_SQL_STUDY_GUIDE_JSON("g")
				   " FROM study_guides g JOIN notebooks n ON n.id = g.notebook_id"
				   " WHERE n.owner_id = $1 ORDER BY g.notebook_id, g.created_at, g.id",
	[NB_EXPORT_GENERATIONS] = "DECLARE nb_x_generations NO SCROLL CURSOR FOR"
				  " SELECT h.notebook_id, " NB_SQL_GENERATION_JSON("h")
				  " FROM generation_history h WHERE h.user_id = $1 ORDER BY h.created_at, h.id",
};

static const char *fetch_sql[NB_EXPORT_CURSORS_] = {
	[NB_EXPORT_NOTEBOOKS] = "FETCH " BATCH " FROM nb_x_notebooks",
	[NB_EXPORT_SOURCES] = "FETCH " BATCH " FROM nb_x_sources",
	[NB_EXPORT_CONVERSATIONS] = "FETCH " BATCH " FROM nb_x_conversations",
	[NB_EXPORT_QUIZZES] = "FETCH " BATCH " FROM nb_x_quizzes",
	[NB_EXPORT_STUDY_GUIDES] = "FETCH " BATCH " FROM nb_x_study_guides",
	[NB_EXPORT_GENERATIONS] = "FETCH " BATCH " FROM nb_x_generations",
};

NB_STMT(st_export_user, "SELECT json_build_object('id', u.id, 'email', u.email, 'pending_email', u.pending_email,"
			" 'display_name', u.display_name,"
			" 'email_verified_at', nb_ts(u.email_verified_at), 'created_at', nb_ts(u.created_at),"
			" 'updated_at', nb_ts(u.updated_at))::text, nb_ts(now())"
			" FROM users u WHERE u.id = $1 AND u.deleted_at IS NULL");

int nb_store_export_begin(nb_conn_t *c, const char *user_id, char **user_json, char **exported_at)
{
	*user_json = *exported_at = NULL;
	int rc = nb_db_command(c, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY");
	if (rc < 0)
		return rc;
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, user_id);
	PGresult *r = NULL;
	rc = nb_db_exec(c, &st_export_user, &p, &r);
	if (rc == 0 && PQntuples(r) == 0)
		rc = NB_ENOTFOUND;
	if (rc == 0) {
		*user_json = nb_xstrdup(PQgetvalue(r, 0, 0));
		*exported_at = nb_xstrdup(PQgetvalue(r, 0, 1));
	}
	PQclear(r);
	for (int i = 0; rc == 0 && i < NB_EXPORT_CURSORS_; i++)
		rc = nb_db_exec_unprepared(c, declare_sql[i], &p, NULL);
	if (rc < 0) {
		nb_db_rollback(c);
		free(*user_json);
		free(*exported_at);
		*user_json = *exported_at = NULL;
	}
	return rc;
}

void nb_store_export_rows_init(nb_export_rows_t *rows, nb_conn_t *c, nb_export_cursor_t which)
{
	memset(rows, 0, sizeof *rows);
	rows->conn = c;
	rows->which = which;
}

int nb_store_export_peek(nb_export_rows_t *rows, const char **notebook_id, const char **json)
{
	if (rows->done)
		return 0;
	if (!rows->batch || rows->row >= PQntuples(rows->batch)) {
		PQclear(rows->batch);
		rows->batch = NULL;
		rows->row = 0;
		int rc = nb_db_exec_unprepared(rows->conn, fetch_sql[rows->which], NULL, &rows->batch);
		if (rc < 0)
			return rc;
		if (PQntuples(rows->batch) == 0) {
			rows->done = true;
			return 0;
		}
	}
	*notebook_id = PQgetvalue(rows->batch, rows->row, 0);
	*json = PQgetvalue(rows->batch, rows->row, 1);
	return 1;
}

void nb_store_export_next(nb_export_rows_t *rows)
{
	rows->row++;
}

void nb_store_export_rows_dispose(nb_export_rows_t *rows)
{
	PQclear(rows->batch);
	rows->batch = NULL;
}

void nb_store_export_end(nb_conn_t *c)
{
	nb_db_rollback(c); /* read only: nothing to keep */
}
