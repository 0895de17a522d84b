/*
 * conversations.c — SQL of conversations, messages, chat retrieval and
 * generation records (see conversations.h).
 *
 * A conversation carries message_count (a correlated count) and
 * last_message (a lateral join), so a page of 100 conversations is still one
 * statement; the reads return binary rows and the nb_store_*_write
 * functions at the end write their JSON (store/rows.h). Messages of one answer get clock_timestamp() rather than now():
 * the question and the answer are written in one transaction, and the
 * question must sort first.
 */
#include "store/conversations.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/uuid.h"
#include "db/bin.h"
#include "db/db.h"
#include "store/rows.h"
#include "store/shapes.h"

/* The live messages of conversation c. */
#define LIVE_MSGS(c) " FROM messages m WHERE m.conversation_id = " c ".id AND m.deleted_at IS NULL"

#define CONVERSATION_JSON(c) NB_SQL_CONVERSATION_JSON(c)

/* A conversation the owner may see: live, in a live notebook of theirs. */
#define VISIBLE(c, n) \
	" JOIN notebooks " n " ON " n ".id = " c ".notebook_id AND " n ".owner_id = " c ".user_id" \
	" AND " n ".deleted_at IS NULL WHERE " c ".deleted_at IS NULL"

#define ACTIVE(c) "coalesce(" c ".last_message_at, " c ".created_at)"

NB_STMT(st_conv_create, "INSERT INTO conversations AS c (id, user_id, notebook_id, title)"
			" SELECT $1, $2, n.id, $4 FROM notebooks n"
			" WHERE n.id = $3 AND n.owner_id = $2 AND n.deleted_at IS NULL"
			" RETURNING " CONVERSATION_JSON("c"));
/*
 * The hot reads (get, list, messages) ask for binary rows and write the JSON
 * in C (store/rows.h): CONV_COLS are a conversation's columns with its live
 * message count and its last live message (LAST_MSG, a lateral join: one
 * index probe, NULL columns when there is none), then its activity time, the
 * list's cursor key.
 */
#define MSG_COLS(m) m ".id, " m ".conversation_id, " m ".role, " m ".content, " m ".citations::json, " m ".created_at"
#define CONV_COLS(c)                                                                                   \
	c ".id, " c ".notebook_id, " c ".title, (SELECT count(*)" LIVE_MSGS(c) "), " MSG_COLS("lm") ", " \
	c ".created_at, " c ".updated_at, " ACTIVE(c)
#define LAST_MSG(c)                                                                                         \
	" LEFT JOIN LATERAL (SELECT m.id, m.conversation_id, m.role, m.content, m.citations, m.created_at" \
	LIVE_MSGS(c) " ORDER BY m.created_at DESC, m.id DESC LIMIT 1) lm ON true"
/* Column indexes of CONV_COLS and MSG_COLS. */
enum { CV_ID, CV_NOTEBOOK, CV_TITLE, CV_COUNT, CV_LAST, CV_CREATED = CV_LAST + 6, CV_UPDATED, CV_ACTIVE };
enum { MS_ID, MS_CONV, MS_ROLE, MS_CONTENT, MS_CITATIONS, MS_CREATED };

NB_STMT(st_conv_get, "SELECT " CONV_COLS("c") " FROM conversations c" LAST_MSG("c") VISIBLE(
			     "c", "n") " AND c.id = $1 AND c.user_id = $2");
NB_STMT(st_conv_list_first, "SELECT " CONV_COLS("c") " FROM conversations c" LAST_MSG(
				"c") " WHERE c.user_id = $1 AND c.notebook_id = $2 AND c.deleted_at IS NULL"
				     " ORDER BY " ACTIVE("c") " DESC, c.id DESC LIMIT $3");
NB_STMT(st_conv_list_next, "SELECT " CONV_COLS("c") " FROM conversations c" LAST_MSG(
			       "c") " WHERE c.user_id = $1 AND c.notebook_id = $2 AND c.deleted_at IS NULL"
				    " AND (" ACTIVE("c") ", c.id) < ($4::timestamptz, $5::uuid)"
							 " ORDER BY " ACTIVE("c") " DESC, c.id DESC LIMIT $3");
NB_STMT(st_conv_trash, "UPDATE conversations c SET deleted_at = now() FROM notebooks n"
		       " WHERE c.id = $1 AND c.user_id = $2 AND c.deleted_at IS NULL"
		       " AND n.id = c.notebook_id AND n.deleted_at IS NULL");
NB_STMT(st_conv_check,
	"SELECT c.notebook_id FROM conversations c" VISIBLE("c", "n") " AND c.id = $1 AND c.user_id = $2");
NB_STMT(st_conv_lock,
	"SELECT c.notebook_id FROM conversations c" VISIBLE("c",
							    "n") " AND c.id = $1 AND c.user_id = $2 FOR UPDATE OF c");
NB_STMT(st_msgs_first, "SELECT " MSG_COLS("m") " FROM messages m WHERE m.conversation_id = $1 AND m.deleted_at IS NULL"
		       " ORDER BY m.created_at, m.id LIMIT $2");
NB_STMT(st_msgs_next, "SELECT " MSG_COLS("m") " FROM messages m WHERE m.conversation_id = $1 AND m.deleted_at IS NULL"
		      " AND (m.created_at, m.id) > ($3::timestamptz, $4::uuid) ORDER BY m.created_at, m.id LIMIT $2");
NB_STMT(st_chat_context,
	"SELECT c.notebook_id, coalesce((SELECT json_agg(json_build_object('role', t.role, 'content', t.content)"
	"                                   ORDER BY t.created_at, t.id)"
	"   FROM (SELECT m.role, m.content, m.created_at, m.id" LIVE_MSGS(
	    "c") "         ORDER BY m.created_at DESC, m.id DESC LIMIT $3) t), '[]')::text"
		 " FROM conversations c" VISIBLE("c", "n") " AND c.id = $1 AND c.user_id = $2");
/*
 * language: the config is a parameter; NULL means the notebook's (nb_ts_config(notebooks.language), the
 * configuration its chunks' tsv were built with), so the question is stemmed as the chunks were.
 * Ranking reads every candidate's vector, so candidates are bounded: first the chunks holding all of the
 * question's words (plainto: the precise matches), then any chunk holding any word of the question or of
 * the previous one, each arm capped at CANDIDATES; a notebook of a million chunks costs what 2 × CANDIDATES do.
 */
#define CANDIDATES "2500"
NB_STMT_SLOW(
    st_chat_retrieve,
    "WITH l AS (SELECT coalesce($2::regconfig, (SELECT nb_ts_config(n.language) FROM notebooks n WHERE n.id = $1),"
    "                           'english'::regconfig) AS cfg),"
    " q AS (SELECT websearch_to_tsquery(l.cfg, $3) AS q, websearch_to_tsquery(l.cfg, $4) AS h,"
    "              plainto_tsquery(l.cfg, $6) AS a FROM l),"
    " cand AS ((SELECT c.id FROM chunks c, q WHERE c.notebook_id = $1 AND c.deleted_at IS NULL AND c.tsv @@ q.a"
    "           LIMIT " CANDIDATES ")"
    "   UNION (SELECT c.id FROM chunks c, q WHERE c.notebook_id = $1 AND c.deleted_at IS NULL"
    "          AND (c.tsv @@ q.q OR c.tsv @@ q.h) LIMIT " CANDIDATES ")),"
    " hits AS (SELECT c.id, c.source_id, c.text,"
    "          ts_rank_cd(c.tsv, q.q, 1 | 32) + 0.5 * ts_rank_cd(c.tsv, q.h, 1 | 32) AS score"
    "   FROM cand JOIN chunks c ON c.id = cand.id CROSS JOIN q"
    "   JOIN sources s ON s.id = c.source_id AND s.deleted_at IS NULL AND s.status = 'ready')"
    " SELECT coalesce(json_agg(json_build_object('chunk_id', x.id, 'source_id', x.source_id, 'text', x.text,"
    "                          'score', x.score) ORDER BY x.score DESC, x.id), '[]')::text"
    " FROM (SELECT * FROM hits ORDER BY score DESC, id LIMIT $5) x");
NB_STMT(st_chat_chunks, "SELECT c.id, c.source_id, c.text FROM chunks c"
			" JOIN sources s ON s.id = c.source_id AND s.deleted_at IS NULL AND s.status = 'ready'"
			" WHERE c.id IN (SELECT value::uuid FROM json_array_elements_text($1::json))"
			" AND c.notebook_id = $2 AND c.deleted_at IS NULL");
NB_STMT(st_msg_insert, "INSERT INTO messages AS m (id, conversation_id, role, content, citations, created_at)"
		       " VALUES ($1, $2, $3, $4, $5::jsonb, clock_timestamp()) RETURNING " NB_SQL_MESSAGE_JSON("m"));
NB_STMT(st_conv_touch, "UPDATE conversations SET last_message_at = clock_timestamp() WHERE id = $1");
NB_STMT(st_gen_insert,
	"INSERT INTO generation_history (id, user_id, notebook_id, conversation_id, kind, provider, model,"
	" input_tokens, output_tokens, latency_ms, dropped_citations, status, error)"
	" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)");

#define GEN_FROM \
	" FROM generation_history h WHERE h.user_id = $1 AND h.deleted_at IS NULL" \
	" AND ($2::text IS NULL OR h.kind = $2) AND ($3::uuid IS NULL OR h.notebook_id = $3)" \
	" AND EXISTS (SELECT 1 FROM notebooks n WHERE n.id = h.notebook_id AND n.deleted_at IS NULL)"
NB_STMT(st_gen_first, "SELECT " NB_SQL_GENERATION_JSON("h") ", h.created_at::text, h.id" GEN_FROM
							    " ORDER BY h.created_at DESC, h.id DESC LIMIT $4");
NB_STMT(st_gen_next, "SELECT " NB_SQL_GENERATION_JSON("h") ", h.created_at::text, h.id" GEN_FROM
							   " AND (h.created_at, h.id) < ($5::timestamptz, $6::uuid)"
							   " ORDER BY h.created_at DESC, h.id DESC LIMIT $4");

static void id_owner(nb_params_t *p, const char *id, const char *owner)
{
	nb_params_init(p);
	nb_p_text(p, id);
	nb_p_text(p, owner);
}

int nb_store_conversation_create(nb_conn_t *c, const char *owner, const char *id, const char *notebook_id,
				 const char *title, json_t **out)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, id);
	nb_p_text(&p, owner);
	nb_p_text(&p, notebook_id);
	nb_p_text(&p, title);
	return nb_db_one_json(c, &st_conv_create, &p, out);
}

int nb_store_conversation_get(nb_conn_t *c, const char *owner, const char *id, PGresult **rows)
{
	*rows = NULL;
	nb_params_t p;
	id_owner(&p, id, owner);
	PGresult *r = NULL;
	int rc = nb_db_exec_binary(c, &st_conv_get, &p, &r);
	if (rc < 0)
		return rc;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return NB_ENOTFOUND;
	}
	*rows = r;
	return 0;
}

int nb_store_conversations_list(nb_conn_t *c, const char *owner, const char *notebook_id, int limit,
				const char *after_ts, const char *after_id, PGresult **rows)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, owner);
	nb_p_text(&p, notebook_id);
	nb_p_int(&p, limit + 1);
	if (!after_ts)
		return nb_db_exec_binary(c, &st_conv_list_first, &p, rows);
	nb_p_text(&p, after_ts);
	nb_p_text(&p, after_id);
	return nb_db_exec_binary(c, &st_conv_list_next, &p, rows);
}

int nb_store_conversation_trash(nb_conn_t *c, const char *owner, const char *id)
{
	nb_params_t p;
	id_owner(&p, id, owner);
	PGresult *r = NULL;
	int rc = nb_db_exec(c, &st_conv_trash, &p, &r);
	if (rc < 0)
		return rc;
	rc = atoi(PQcmdTuples(r)) > 0 ? 0 : NB_ENOTFOUND;
	PQclear(r);
	return rc;
}

/* Runs a statement whose one row's first column is a notebook id. */
static int one_notebook_id(nb_conn_t *c, nb_stmt_t *st, const nb_params_t *p, char notebook_id[37])
{
	PGresult *r = NULL;
	int rc = nb_db_exec(c, st, p, &r);
	if (rc < 0)
		return rc;
	if (PQntuples(r) == 0) {
		rc = NB_ENOTFOUND;
	} else if (notebook_id) {
		snprintf(notebook_id, 37, "%s", PQgetvalue(r, 0, 0));
	}
	PQclear(r);
	return rc;
}

int nb_store_conversation_check(nb_conn_t *c, const char *owner, const char *id, char notebook_id[37])
{
	nb_params_t p;
	id_owner(&p, id, owner);
	return one_notebook_id(c, &st_conv_check, &p, notebook_id);
}

int nb_store_messages_list(nb_conn_t *c, const char *conversation_id, int limit, const char *after_ts,
			   const char *after_id, PGresult **rows)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, conversation_id);
	nb_p_int(&p, limit + 1);
	if (!after_ts)
		return nb_db_exec_binary(c, &st_msgs_first, &p, rows);
	nb_p_text(&p, after_ts);
	nb_p_text(&p, after_id);
	return nb_db_exec_binary(c, &st_msgs_next, &p, rows);
}

int nb_store_chat_context(nb_conn_t *c, const char *owner, const char *conversation_id, int turns, char notebook_id[37],
			  json_t **history)
{
	*history = NULL;
	nb_params_t p;
	id_owner(&p, conversation_id, owner);
	nb_p_int(&p, turns);
	PGresult *r = NULL;
	int rc = nb_db_exec(c, &st_chat_context, &p, &r);
	if (rc < 0)
		return rc;
	if (PQntuples(r) == 0) {
		rc = NB_ENOTFOUND;
	} else {
		snprintf(notebook_id, 37, "%s", PQgetvalue(r, 0, 0));
		*history = json_loads(PQgetvalue(r, 0, 1), 0, NULL);
		if (!*history)
			rc = NB_EINTERNAL;
	}
	PQclear(r);
	return rc;
}

int nb_store_chat_retrieve(nb_conn_t *c, const char *notebook_id, const char *config, const char *query,
			   const char *history_query, const char *question, int limit, json_t **items)
{
	*items = NULL;
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, notebook_id);
	nb_p_text(&p, config);
	nb_p_text(&p, query);
	nb_p_text(&p, history_query);
	nb_p_int(&p, limit);
	nb_p_text(&p, question);
	PGresult *r = NULL;
	int rc = nb_db_exec(c, &st_chat_retrieve, &p, &r);
	if (rc < 0)
		return rc;
	*items = PQntuples(r) ? json_loads(PQgetvalue(r, 0, 0), 0, NULL) : json_array();
	PQclear(r);
	return *items ? 0 : NB_EINTERNAL;
}

void nb_chat_chunks_dispose(nb_chat_chunks_t *cc)
{
	for (int i = 0; i < cc->n; i++) {
		free(cc->ids[i]);
		free(cc->source_ids[i]);
		free(cc->texts[i]);
	}
	free(cc->ids);
	free(cc->source_ids);
	free(cc->texts);
	memset(cc, 0, sizeof *cc);
}

static int load_chunks(nb_conn_t *c, json_t *chunk_ids, const char *notebook_id, nb_chat_chunks_t *cc)
{
	char *ids = json_dumps(chunk_ids, JSON_COMPACT);
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, ids);
	nb_p_text(&p, notebook_id);
	PGresult *r = NULL;
	int rc = nb_db_exec(c, &st_chat_chunks, &p, &r);
	free(ids);
	if (rc < 0)
		return rc;
	int n = PQntuples(r);
	cc->n = n;
	cc->ids = nb_xcalloc((size_t)n + 1, sizeof(char *));
	cc->source_ids = nb_xcalloc((size_t)n + 1, sizeof(char *));
	cc->texts = nb_xcalloc((size_t)n + 1, sizeof(char *));
	for (int i = 0; i < n; i++) {
		cc->ids[i] = nb_xstrdup(PQgetvalue(r, i, 0));
		cc->source_ids[i] = nb_xstrdup(PQgetvalue(r, i, 1));
		cc->texts[i] = nb_xstrdup(PQgetvalue(r, i, 2));
	}
	PQclear(r);
	return 0;
}

static int insert_message(nb_conn_t *c, const char *conversation_id, const char *role, const char *content,
			  const char *citations, json_t **out)
{
	char id[37];
	nb_uuid_v7_str(id);
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, id);
	nb_p_text(&p, conversation_id);
	nb_p_text(&p, role);
	nb_p_text(&p, content);
	nb_p_text(&p, citations);
	return nb_db_one_json(c, &st_msg_insert, &p, out);
}

int nb_store_generation_insert(nb_conn_t *c, const char *owner, const char *notebook_id, const char *conversation_id,
			       const nb_generation_rec_t *rec)
{
	char id[37];
	nb_uuid_v7_str(id);
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, id);
	nb_p_text(&p, owner);
	nb_p_text(&p, notebook_id);
	nb_p_text(&p, conversation_id);
	nb_p_text(&p, rec->kind);
	nb_p_text(&p, rec->provider);
	nb_p_text(&p, rec->model ? rec->model : "");
	nb_p_int(&p, rec->input_tokens < 0 ? 0 : rec->input_tokens);
	nb_p_int(&p, rec->output_tokens < 0 ? 0 : rec->output_tokens);
	nb_p_int(&p, rec->latency_ms < 0 ? 0 : rec->latency_ms);
	nb_p_int(&p, rec->dropped_citations < 0 ? 0 : rec->dropped_citations);
	nb_p_text(&p, rec->failed ? "failed" : "succeeded");
	nb_p_text(&p, rec->error);
	return nb_db_exec(c, &st_gen_insert, &p, NULL);
}

int nb_store_chat_save(nb_conn_t *c, const char *owner, const char *conversation_id, const char *notebook_id,
		       const char *question, const char *answer, json_t *chunk_ids, nb_chat_verify_fn verify, void *ud,
		       nb_generation_rec_t *rec, json_t **user_msg, json_t **assistant_msg)
{
	*user_msg = *assistant_msg = NULL;
	nb_chat_chunks_t cc = {0};
	json_t *cites = NULL;
	char *cites_text = NULL;
	char nb[37];
	int rc = nb_db_begin(c);
	if (rc < 0)
		return rc;
	nb_params_t p;
	id_owner(&p, conversation_id, owner);
	if ((rc = one_notebook_id(c, &st_conv_lock, &p, nb)) < 0)
		goto out;
	if (strcmp(nb, notebook_id) != 0) { /* cannot happen: a conversation never moves */
		rc = NB_EINTERNAL;
		goto out;
	}
	if ((rc = load_chunks(c, chunk_ids, notebook_id, &cc)) < 0)
		goto out;
	cites = verify(ud, &cc, &rec->dropped_citations, &answer);
	cites_text = json_dumps(cites, JSON_COMPACT);
	nb_params_init(&p);
	nb_p_text(&p, conversation_id);
	if ((rc = insert_message(c, conversation_id, "user", question, "[]", user_msg)) < 0 ||
	    (rc = insert_message(c, conversation_id, "assistant", answer, cites_text, assistant_msg)) < 0 ||
	    (rc = nb_store_generation_insert(c, owner, notebook_id, conversation_id, rec)) < 0 ||
	    (rc = nb_db_exec(c, &st_conv_touch, &p, NULL)) < 0)
		goto out;
	rc = nb_db_commit(c);
out:
	if (rc < 0) {
		nb_db_rollback(c);
		json_decref(*user_msg);
		json_decref(*assistant_msg);
		*user_msg = *assistant_msg = NULL;
	}
	free(cites_text);
	json_decref(cites);
	nb_chat_chunks_dispose(&cc);
	return rc;
}

int nb_store_generations_list(nb_conn_t *c, const char *owner, const char *kind, const char *notebook_id, int limit,
			      const char *after_ts, const char *after_id, PGresult **rows)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, owner);
	nb_p_text(&p, kind);
	nb_p_text(&p, notebook_id);
	nb_p_int(&p, limit + 1);
	if (!after_ts)
		return nb_db_exec(c, &st_gen_first, &p, rows);
	nb_p_text(&p, after_ts);
	nb_p_text(&p, after_id);
	return nb_db_exec(c, &st_gen_next, &p, rows);
}

/* The message whose MSG_COLS start at column c0 of row. */
static void message_row(nb_jsonw_t *w, const PGresult *r, int row, int c0)
{
	nb_jsonw_obj(w);
	nb_jsonw_key(w, "id");
	nb_row_uuid(w, r, row, c0 + MS_ID);
	nb_jsonw_key(w, "conversation_id");
	nb_row_uuid(w, r, row, c0 + MS_CONV);
	nb_jsonw_key(w, "role");
	nb_row_text(w, r, row, c0 + MS_ROLE);
	nb_jsonw_key(w, "content");
	nb_row_text(w, r, row, c0 + MS_CONTENT);
	nb_jsonw_key(w, "citations");
	nb_row_json(w, r, row, c0 + MS_CITATIONS);
	nb_jsonw_key(w, "created_at");
	nb_row_ts(w, r, row, c0 + MS_CREATED);
	nb_jsonw_obj_end(w);
}

void nb_store_conversation_write(nb_jsonw_t *w, const PGresult *r, int row)
{
	nb_jsonw_obj(w);
	nb_jsonw_key(w, "id");
	nb_row_uuid(w, r, row, CV_ID);
	nb_jsonw_key(w, "notebook_id");
	nb_row_uuid(w, r, row, CV_NOTEBOOK);
	nb_jsonw_key(w, "title");
	nb_row_text(w, r, row, CV_TITLE);
	nb_jsonw_key(w, "message_count");
	nb_row_int(w, r, row, CV_COUNT);
	nb_jsonw_key(w, "last_message");
	if (nb_bin_null(r, row, CV_LAST + MS_ID))
		nb_jsonw_null(w);
	else
		message_row(w, r, row, CV_LAST);
	nb_jsonw_key(w, "created_at");
	nb_row_ts(w, r, row, CV_CREATED);
	nb_jsonw_key(w, "updated_at");
	nb_row_ts(w, r, row, CV_UPDATED);
	nb_jsonw_obj_end(w);
}

void nb_store_conversations_write(nb_jsonw_t *w, const PGresult *r, int row, char key_out[40], char id_out[37])
{
	nb_store_conversation_write(w, r, row);
	nb_row_ts_text(r, row, CV_ACTIVE, key_out);
	nb_row_uuid_text(r, row, CV_ID, id_out);
}

void nb_store_messages_write(nb_jsonw_t *w, const PGresult *r, int row, char key_out[40], char id_out[37])
{
	message_row(w, r, row, 0);
	nb_row_ts_text(r, row, MS_CREATED, key_out);
	nb_row_uuid_text(r, row, MS_ID, id_out);
}
