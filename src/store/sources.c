/*
 * sources.c — SQL of sources, documents, chunks and search (see sources.h).
 *
 * Chunks are inserted in batches with unnest() over parallel arrays — one
 * statement per few hundred chunks instead of one per chunk. Search ranks
 * only a capped set of candidates of one notebook (rank cost follows the
 * number of matches) and runs ts_headline on the final page only.
 */
#include "store/sources.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/uuid.h"
#include "db/bin.h"
#include "db/db.h"
#include "store/rows.h"
#include "store/shapes.h"

#define CHUNK_BATCH 400
#define SEARCH_CANDIDATES "1000"
/* A notebook of at most this many chunks is searched through its rows (the
 * notebook_id btree, then the vectors), not the GIN index: a prefix term
 * ('candl':*) is a partial match, which GIN answers by collecting the
 * posting lists of every notebook's matching lexemes before it intersects
 * them with this notebook's — 29 ms instead of 0.3 ms for a 20-chunk notebook
 * among a million chunks (bench/loadtest.sh). */
#define SEARCH_SMALL_CHUNKS "2000"

NB_STMT(st_doc_upsert,
	"WITH ins AS (INSERT INTO documents (id, user_id, sha256, mime_type, byte_size, content)"
	"  VALUES ($1, $2, $3, $4, $5, $6)"
	"  ON CONFLICT (user_id, sha256) WHERE deleted_at IS NULL DO NOTHING RETURNING id, false AS has_text)"
	" SELECT id, has_text FROM ins"
	" UNION ALL SELECT id, extracted_text IS NOT NULL FROM documents"
	"  WHERE user_id = $2 AND sha256 = $3 AND deleted_at IS NULL"
	" LIMIT 1");
NB_STMT(st_source_create,
	"INSERT INTO sources AS s (id, notebook_id, document_id, title, kind, url, byte_size, title_derived)"
	" VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING " NB_SQL_SOURCE_JSON("s"));
NB_STMT(st_source_rename, "UPDATE sources s SET title = $3, title_derived = false FROM notebooks n"
			  " WHERE s.id = $1 AND n.id = s.notebook_id AND n.owner_id = $2"
			  " AND s.deleted_at IS NULL AND n.deleted_at IS NULL RETURNING " NB_SQL_SOURCE_JSON("s"));
NB_STMT(st_source_restore, "UPDATE sources s SET deleted_at = NULL FROM notebooks n"
			   " WHERE s.id = $1 AND n.id = s.notebook_id AND n.owner_id = $2"
			   " AND n.deleted_at IS NULL RETURNING " NB_SQL_SOURCE_JSON("s"));
/* A URL source forgets its page, so that the retry fetches it again. */
NB_STMT(st_source_retry, "UPDATE sources s SET status = 'pending', error = NULL,"
			 " document_id = CASE WHEN s.kind = 'url' THEN NULL ELSE s.document_id END,"
			 " byte_size = CASE WHEN s.kind = 'url' THEN NULL ELSE s.byte_size END"
			 " FROM notebooks n WHERE s.id = $1 AND n.id = s.notebook_id AND n.owner_id = $2"
			 " AND s.status = 'failed' AND s.deleted_at IS NULL AND n.deleted_at IS NULL"
			 " RETURNING " NB_SQL_SOURCE_JSON("s") ", s.document_id");
NB_STMT(st_source_derived_title, "UPDATE sources SET title = $2 WHERE id = $1 AND title_derived");
NB_STMT(st_source_get, "SELECT " NB_SQL_SOURCE_JSON("s") " FROM sources s JOIN notebooks n ON n.id = s.notebook_id"
		       " WHERE s.id = $1 AND n.owner_id = $2 AND s.deleted_at IS NULL AND n.deleted_at IS NULL");
/* The lists answer binary rows that store/rows.c writes as JSON (no JSON built in PostgreSQL). */
NB_STMT(st_sources_first, "SELECT " NB_SQL_SOURCE_COLS("s") " FROM sources s"
			  " WHERE s.notebook_id = $1 AND s.deleted_at IS NULL"
			  " ORDER BY s.created_at, s.id LIMIT $2");
NB_STMT(st_sources_next, "SELECT " NB_SQL_SOURCE_COLS("s") " FROM sources s"
			 " WHERE s.notebook_id = $1 AND s.deleted_at IS NULL"
			 " AND (s.created_at, s.id) > ($3::timestamptz, $4::uuid)"
			 " ORDER BY s.created_at, s.id LIMIT $2");
NB_STMT(st_source_trash, "UPDATE sources s SET deleted_at = now() FROM notebooks n"
			 " WHERE s.id = $1 AND n.id = s.notebook_id AND n.owner_id = $2"
			 " AND s.deleted_at IS NULL AND n.deleted_at IS NULL");
NB_STMT(st_source_visible, "SELECT 1 FROM sources s JOIN notebooks n ON n.id = s.notebook_id"
			   " WHERE s.id = $1 AND n.owner_id = $2 AND s.deleted_at IS NULL AND n.deleted_at IS NULL");
NB_STMT(st_chunks_page,
	"SELECT c.id, c.source_id, c.chunk_index, c.text, c.char_start, c.char_end, c.page, c.token_count"
	" FROM chunks c WHERE c.source_id = $1 AND c.deleted_at IS NULL AND c.chunk_index > $2"
	" ORDER BY c.chunk_index LIMIT $3");

NB_STMT(st_ingest_load,
	"SELECT n.id, n.owner_id, s.document_id, s.kind, s.url, d.mime_type, d.extracted_text IS NOT NULL,"
	" s.deleted_at IS NOT NULL OR n.deleted_at IS NOT NULL"
	" FROM sources s JOIN notebooks n ON n.id = s.notebook_id LEFT JOIN documents d ON d.id = s.document_id"
	" WHERE s.id = $1");
NB_STMT(st_doc_content, "SELECT content FROM documents WHERE id = $1");
NB_STMT(st_doc_text, "SELECT extracted_text, coalesce(array_to_string(page_offsets, ','), ''), page_count"
		     " FROM documents WHERE id = $1");
NB_STMT(st_doc_set_text, "UPDATE documents SET extracted_text = $2, page_offsets = string_to_array($3, ',')::int[],"
			 " page_count = $4, extracted_at = now() WHERE id = $1 AND extracted_text IS NULL");
NB_STMT(st_source_status, "UPDATE sources SET status = $2, error = $3 WHERE id = $1");
NB_STMT(st_source_document, "UPDATE sources SET document_id = $2, byte_size = $3 WHERE id = $1");
NB_STMT(st_chunks_delete, "DELETE FROM chunks WHERE source_id = $1");
/* The vectors in the notebook's language, looked up once per batch. */
NB_STMT(st_chunks_insert,
	"INSERT INTO chunks (id, source_id, notebook_id, chunk_index, text, char_start, char_end, page, token_count,"
	" tsv)"
	" SELECT u.id, $1, $2, u.idx, u.text, u.cs, u.ce, u.page, u.tokens, to_tsvector(l.cfg, u.text)"
	" FROM (SELECT nb_ts_config(language) AS cfg FROM notebooks WHERE id = $2) l,"
	" unnest($3::uuid[], $4::int[], $5::text[], $6::int[], $7::int[], $8::int[], $9::int[])"
	" AS u(id, idx, text, cs, ce, page, tokens)");
NB_STMT(st_source_ready, "UPDATE sources SET status = 'ready', error = NULL, chunk_count = $2, page_count = $3"
			 " WHERE id = $1");

/* The notebook's language picks the configuration; nb_search_query
 * (migration 0003) builds the all-words or any-word query with the prefix.
 * Ranking and snippets stay in SQL; the hits come back as binary rows
 * (chunk id, source id, source title, index, page, score rounded to 6
 * decimals as text, snippet) and nb_store_search_write writes the JSON. */
NB_STMT_SLOW(st_search,
	"WITH q AS (SELECT nb_ts_config(n.language) AS cfg,"
	"             nb_search_query(nb_ts_config(n.language), $2, $4, $5) AS q,"
	"             (SELECT coalesce(sum(s.chunk_count), 0) FROM sources s WHERE s.notebook_id = $1)"
	"               <= " SEARCH_SMALL_CHUNKS " AS small"
	"           FROM notebooks n WHERE n.id = $1),"
	/* (SELECT small FROM q): an InitPlan, so each branch is one-time filtered and the other never runs */
	" hits AS ((SELECT c.id, c.source_id, c.chunk_index, c.page, c.text, ts_rank_cd(c.tsv, q.q, 1 | 32) AS score"
	"   FROM chunks c, q WHERE (SELECT small FROM q)" /* IS TRUE: a condition the GIN index cannot take */
	"     AND c.notebook_id = $1 AND c.deleted_at IS NULL AND (c.tsv @@ q.q) IS TRUE LIMIT " SEARCH_CANDIDATES ")"
	"  UNION ALL (SELECT c.id, c.source_id, c.chunk_index, c.page, c.text, ts_rank_cd(c.tsv, q.q, 1 | 32) AS score"
	"   FROM chunks c, q WHERE NOT (SELECT small FROM q)"
	"     AND c.notebook_id = $1 AND c.deleted_at IS NULL AND c.tsv @@ q.q LIMIT " SEARCH_CANDIDATES ")),"
	" top AS (SELECT h.*, s.title FROM hits h JOIN sources s ON s.id = h.source_id AND s.deleted_at IS NULL"
	"   ORDER BY h.score DESC, h.id LIMIT $3)"
	" SELECT t.id, t.source_id, t.title, t.chunk_index, t.page, round(t.score::numeric, 6)::text,"
	"  ts_headline(q.cfg, t.text, q.q,"
	"     'StartSel=\x01, StopSel=\x02, MaxWords=35, MinWords=12, MaxFragments=2, FragmentDelimiter=\" … \"')"
	" FROM top t, q ORDER BY t.score DESC, t.id");

int nb_store_document_upsert(nb_conn_t *c, const char *user_id, const unsigned char sha256[32], const char *mime,
			     const void *bytes, size_t len, char doc_id[37], bool *has_text)
{
	char id[37];
	nb_uuid_v7_str(id);
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, id);
	nb_p_text(&p, user_id);
	nb_p_bytes(&p, sha256, 32);
	nb_p_text(&p, mime);
	nb_p_int(&p, (int64_t)len);
	nb_p_bytes(&p, bytes, len);
	/* A concurrent insert of the same bytes may hide from this statement's
	 * snapshot: one more try then sees it. */
	for (int attempt = 0; attempt < 2; attempt++) {
		PGresult *r = NULL;
		int rc = nb_db_exec(c, &st_doc_upsert, &p, &r);
		if (rc < 0)
			return rc;
		if (PQntuples(r) > 0) {
			snprintf(doc_id, 37, "%s", PQgetvalue(r, 0, 0));
			*has_text = nb_db_get_bool(r, 0, 1);
			PQclear(r);
			return 0;
		}
		PQclear(r);
	}
	return NB_EDB;
}

int nb_store_source_create(nb_conn_t *c, const char *id, const char *notebook_id, const char *document_id,
			   const char *title, bool title_derived, const char *kind, const char *url, long byte_size,
			   json_t **out)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, id);
	nb_p_text(&p, notebook_id);
	nb_p_text(&p, document_id);
	nb_p_text(&p, title);
	nb_p_text(&p, kind);
	nb_p_text(&p, url);
	if (byte_size >= 0)
		nb_p_int(&p, byte_size);
	else
		nb_p_null(&p);
	nb_p_bool(&p, title_derived);
	return nb_db_one_json(c, &st_source_create, &p, out);
}

int nb_store_source_rename(nb_conn_t *c, const char *owner, const char *id, const char *title, json_t **out)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, id);
	nb_p_text(&p, owner);
	nb_p_text(&p, title);
	return nb_db_one_json(c, &st_source_rename, &p, out);
}

int nb_store_source_restore(nb_conn_t *c, const char *owner, const char *id, json_t **out)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, id);
	nb_p_text(&p, owner);
	return nb_db_one_json(c, &st_source_restore, &p, out);
}

int nb_store_source_retry(nb_conn_t *c, const char *owner, const char *id, json_t **out, char document_id[37])
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, id);
	nb_p_text(&p, owner);
	PGresult *r = NULL;
	*out = NULL;
	document_id[0] = 0;
	int rc = nb_db_exec(c, &st_source_retry, &p, &r);
	if (rc < 0)
		return rc;
	if (PQntuples(r) == 0) {
		PQclear(r);
		/* not failed, or not there at all: tell them apart */
		rc = nb_db_exec(c, &st_source_visible, &p, &r);
		if (rc < 0)
			return rc;
		rc = PQntuples(r) > 0 ? NB_ECONFLICT : NB_ENOTFOUND;
		PQclear(r);
		return rc;
	}
	*out = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
	snprintf(document_id, 37, "%s", PQgetisnull(r, 0, 1) ? "" : PQgetvalue(r, 0, 1));
	PQclear(r);
	return *out ? 0 : NB_EDB;
}

int nb_store_source_set_derived_title(nb_conn_t *c, const char *id, const char *title)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, id);
	nb_p_text(&p, title);
	return nb_db_exec(c, &st_source_derived_title, &p, NULL);
}

int nb_store_source_get(nb_conn_t *c, const char *owner, const char *id, json_t **out)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, id);
	nb_p_text(&p, owner);
	return nb_db_one_json(c, &st_source_get, &p, out);
}

int nb_store_sources_list(nb_conn_t *c, const char *owner, const char *notebook_id, int limit, const char *after_ts,
			  const char *after_id, PGresult **rows)
{
	(void)owner; /* the caller checked the notebook (nb_store_notebook_check) */
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, notebook_id);
	nb_p_int(&p, limit + 1);
	if (after_ts) {
		nb_p_text(&p, after_ts);
		nb_p_text(&p, after_id);
	}
	return nb_db_exec_binary(c, after_ts ? &st_sources_next : &st_sources_first, &p, rows);
}

int nb_store_source_trash(nb_conn_t *c, const char *owner, const char *id)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, id);
	nb_p_text(&p, owner);
	PGresult *r = NULL;
	int rc = nb_db_exec(c, &st_source_trash, &p, &r);
	if (rc < 0)
		return rc;
	rc = atoi(PQcmdTuples(r)) > 0 ? 0 : NB_ENOTFOUND;
	PQclear(r);
	return rc;
}

int nb_store_chunks_list(nb_conn_t *c, const char *owner, const char *source_id, int limit, int after_index,
			 PGresult **rows)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, source_id);
	nb_p_text(&p, owner);
	PGresult *r = NULL;
	int rc = nb_db_exec(c, &st_source_visible, &p, &r);
	if (rc < 0)
		return rc;
	bool visible = PQntuples(r) > 0;
	PQclear(r);
	if (!visible)
		return NB_ENOTFOUND;
	nb_params_init(&p);
	nb_p_text(&p, source_id);
	nb_p_int(&p, after_index);
	nb_p_int(&p, limit + 1);
	return nb_db_exec_binary(c, &st_chunks_page, &p, rows);
}

void nb_store_sources_write(nb_jsonw_t *w, const PGresult *r, int row, char key_out[40], char id_out[37])
{
	nb_store_source_row(w, r, row, 0);
	nb_row_ts_text(r, row, 13, key_out);
	nb_row_uuid_text(r, row, 0, id_out);
}

void nb_store_chunks_write(nb_jsonw_t *w, const PGresult *r, int row, char key_out[40], char id_out[37])
{
	nb_jsonw_obj(w);
	nb_jsonw_key(w, "id");
	nb_row_uuid(w, r, row, 0);
	nb_jsonw_key(w, "source_id");
	nb_row_uuid(w, r, row, 1);
	nb_jsonw_key(w, "index");
	nb_row_int(w, r, row, 2);
	nb_jsonw_key(w, "text");
	nb_row_text(w, r, row, 3);
	nb_jsonw_key(w, "char_start");
	nb_row_int(w, r, row, 4);
	nb_jsonw_key(w, "char_end");
	nb_row_int(w, r, row, 5);
	nb_jsonw_key(w, "page");
	nb_row_int(w, r, row, 6);
	nb_jsonw_key(w, "token_count");
	nb_row_int(w, r, row, 7);
	nb_jsonw_obj_end(w);
	snprintf(key_out, 40, "%lld", (long long)nb_bin_int(r, row, 2));
	nb_row_uuid_text(r, row, 0, id_out);
}

void nb_ingest_info_dispose(nb_ingest_info_t *info)
{
	free(info->url);
	free(info->mime);
	info->url = info->mime = NULL;
}

int nb_store_ingest_load(nb_conn_t *c, const char *source_id, nb_ingest_info_t *out)
{
	memset(out, 0, sizeof *out);
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, source_id);
	PGresult *r = NULL;
	int rc = nb_db_exec(c, &st_ingest_load, &p, &r);
	if (rc < 0)
		return rc;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return NB_ENOTFOUND;
	}
	snprintf(out->notebook_id, 37, "%s", PQgetvalue(r, 0, 0));
	snprintf(out->user_id, 37, "%s", PQgetvalue(r, 0, 1));
	snprintf(out->document_id, 37, "%s", PQgetvalue(r, 0, 2));
	snprintf(out->kind, sizeof out->kind, "%s", PQgetvalue(r, 0, 3));
	out->url = nb_xstrdup(nb_db_get(r, 0, 4));
	out->mime = nb_xstrdup(nb_db_get(r, 0, 5));
	out->has_text = nb_db_get_bool(r, 0, 6);
	out->gone = nb_db_get_bool(r, 0, 7);
	PQclear(r);
	return 0;
}

int nb_store_document_content(nb_conn_t *c, const char *doc_id, unsigned char **bytes, size_t *len)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, doc_id);
	PGresult *r = NULL;
	int rc = nb_db_exec_binary(c, &st_doc_content, &p, &r);
	if (rc < 0)
		return rc;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return NB_ENOTFOUND;
	}
	*len = (size_t)PQgetlength(r, 0, 0);
	*bytes = nb_xmalloc(*len + 1);
	memcpy(*bytes, PQgetvalue(r, 0, 0), *len);
	(*bytes)[*len] = 0;
	PQclear(r);
	return 0;
}

int nb_store_document_text(nb_conn_t *c, const char *doc_id, char **text, int **page_offsets, int *page_count)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, doc_id);
	PGresult *r = NULL;
	int rc = nb_db_exec(c, &st_doc_text, &p, &r);
	if (rc < 0)
		return rc;
	if (PQntuples(r) == 0 || PQgetisnull(r, 0, 0)) {
		PQclear(r);
		return NB_ENOTFOUND;
	}
	*text = nb_xstrdup(PQgetvalue(r, 0, 0));
	*page_count = (int)nb_db_get_int(r, 0, 2);
	*page_offsets = NULL;
	if (*page_count > 0) {
		*page_offsets = nb_xcalloc((size_t)*page_count, sizeof(int));
		const char *s = PQgetvalue(r, 0, 1);
		for (int i = 0; i < *page_count && *s; i++) {
			(*page_offsets)[i] = (int)strtol(s, (char **)&s, 10);
			if (*s == ',')
				s++;
		}
	}
	PQclear(r);
	return 0;
}

int nb_store_document_set_text(nb_conn_t *c, const char *doc_id, const char *text, const int *page_offsets,
			       int page_count)
{
	nb_buf_t offs = NB_BUF_INIT;
	for (int i = 0; i < page_count; i++)
		nb_buf_printf(&offs, "%s%d", i ? "," : "", page_offsets[i]);
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, doc_id);
	nb_p_text(&p, text);
	if (page_count > 0)
		nb_p_text(&p, offs.data);
	else
		nb_p_null(&p);
	if (page_count > 0)
		nb_p_int(&p, page_count);
	else
		nb_p_null(&p);
	int rc = nb_db_exec(c, &st_doc_set_text, &p, NULL);
	nb_buf_dispose(&offs);
	return rc;
}

int nb_store_source_set_status(nb_conn_t *c, const char *source_id, const char *status, const char *error)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, source_id);
	nb_p_text(&p, status);
	nb_p_text(&p, error);
	return nb_db_exec(c, &st_source_status, &p, NULL);
}

int nb_store_source_set_document(nb_conn_t *c, const char *source_id, const char *doc_id, long byte_size)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, source_id);
	nb_p_text(&p, doc_id);
	nb_p_int(&p, byte_size);
	return nb_db_exec(c, &st_source_document, &p, NULL);
}

/* Appends a PostgreSQL array literal element: "…" with \ and " escaped. */
static void array_text(nb_buf_t *b, const char *s, size_t n)
{
	nb_buf_putc(b, '"');
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '"' && s[i] != '\\')
			continue;
		nb_buf_append(b, s + run, i - run);
		nb_buf_putc(b, '\\');
		run = i;
	}
	nb_buf_append(b, s + run, n - run);
	nb_buf_putc(b, '"');
}

/* One batch of chunks as array literals (parameters, not SQL: escaping is the array syntax's). */
static int insert_batch(nb_conn_t *c, const char *source_id, const char *notebook_id, const char *text,
			const nb_chunk_t *ch, size_t from, size_t to)
{
	nb_buf_t a[7];
	for (int k = 0; k < 7; k++) {
		nb_buf_init(&a[k]);
		nb_buf_putc(&a[k], '{');
	}
	for (size_t i = from; i < to; i++) {
		const char *sep = i > from ? "," : "";
		char id[37];
		nb_uuid_v7_str(id);
		nb_buf_printf(&a[0], "%s%s", sep, id);
		nb_buf_printf(&a[1], "%s%zu", sep, i);
		nb_buf_puts(&a[2], sep);
		array_text(&a[2], text + ch[i].byte_start, ch[i].byte_end - ch[i].byte_start);
		nb_buf_printf(&a[3], "%s%d", sep, ch[i].char_start);
		nb_buf_printf(&a[4], "%s%d", sep, ch[i].char_end);
		if (ch[i].page > 0)
			nb_buf_printf(&a[5], "%s%d", sep, ch[i].page);
		else
			nb_buf_printf(&a[5], "%sNULL", sep);
		nb_buf_printf(&a[6], "%s%d", sep, ch[i].token_count);
	}
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, source_id);
	nb_p_text(&p, notebook_id);
	for (int k = 0; k < 7; k++) {
		nb_buf_putc(&a[k], '}');
		nb_p_text(&p, a[k].data);
	}
	int rc = nb_db_exec(c, &st_chunks_insert, &p, NULL);
	for (int k = 0; k < 7; k++)
		nb_buf_dispose(&a[k]);
	return rc;
}

int nb_store_chunks_replace(nb_conn_t *c, const char *source_id, const char *notebook_id, const char *text,
			    const nb_chunk_t *chunks, size_t n, int page_count)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, source_id);
	int rc = nb_db_begin(c);
	if (rc == 0)
		rc = nb_db_exec(c, &st_chunks_delete, &p, NULL);
	for (size_t i = 0; rc == 0 && i < n; i += CHUNK_BATCH)
		rc = insert_batch(c, source_id, notebook_id, text, chunks, i, i + CHUNK_BATCH < n ? i + CHUNK_BATCH : n);
	if (rc == 0) {
		nb_p_int(&p, (int64_t)n);
		if (page_count > 0)
			nb_p_int(&p, page_count);
		else
			nb_p_null(&p);
		rc = nb_db_exec(c, &st_source_ready, &p, NULL);
	}
	if (rc == 0)
		rc = nb_db_commit(c);
	if (rc < 0)
		nb_db_rollback(c);
	return rc;
}

int nb_store_search(nb_conn_t *c, const char *notebook_id, const nb_search_query_t *q, int limit, PGresult **rows)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, notebook_id);
	nb_p_text(&p, q->head);
	nb_p_int(&p, limit);
	nb_p_text(&p, q->last);
	nb_p_bool(&p, q->match_any);
	return nb_db_exec_binary(c, &st_search, &p, rows);
}

/* A snippet HTML-escaped, its \x01 … \x02 marks as <mark>…</mark>, as a JSON string. */
static void snippet(nb_jsonw_t *w, nb_buf_t *tmp, const char *s, size_t n)
{
	nb_buf_reset(tmp);
	for (size_t i = 0; i < n; i++) {
		switch (s[i]) {
		case '\x01': nb_buf_puts(tmp, "<mark>"); break;
		case '\x02': nb_buf_puts(tmp, "</mark>"); break;
		case '&': nb_buf_puts(tmp, "&amp;"); break;
		case '<': nb_buf_puts(tmp, "&lt;"); break;
		case '>': nb_buf_puts(tmp, "&gt;"); break;
		case '"': nb_buf_puts(tmp, "&quot;"); break;
		case '\'': nb_buf_puts(tmp, "&#39;"); break;
		default: nb_buf_putc(tmp, s[i]);
		}
	}
	nb_jsonw_str(w, tmp->data ? tmp->data : "", tmp->len);
}

void nb_store_search_write(nb_jsonw_t *w, const PGresult *r, bool match_any)
{
	nb_buf_t tmp = NB_BUF_INIT;
	nb_jsonw_obj(w);
	nb_jsonw_key(w, "items");
	nb_jsonw_arr(w);
	for (int i = 0; i < PQntuples(r); i++) {
		nb_jsonw_obj(w);
		nb_jsonw_key(w, "chunk_id");
		nb_row_uuid(w, r, i, 0);
		nb_jsonw_key(w, "source_id");
		nb_row_uuid(w, r, i, 1);
		nb_jsonw_key(w, "source_title");
		nb_row_text(w, r, i, 2);
		nb_jsonw_key(w, "index");
		nb_row_int(w, r, i, 3);
		nb_jsonw_key(w, "page");
		nb_row_int(w, r, i, 4);
		nb_jsonw_key(w, "score");
		if (nb_bin_null(r, i, 5))
			nb_jsonw_null(w);
		else /* the numeric's text, as jansson read and re-dumped it */
			nb_jsonw_real(w, strtod(PQgetvalue(r, i, 5), NULL), 6);
		nb_jsonw_key(w, "snippet");
		if (nb_bin_null(r, i, 6))
			nb_jsonw_null(w);
		else
			snippet(w, &tmp, PQgetvalue(r, i, 6), (size_t)PQgetlength(r, i, 6));
		nb_jsonw_obj_end(w);
	}
	nb_jsonw_arr_end(w);
	nb_jsonw_key(w, "next_cursor");
	nb_jsonw_null(w);
	nb_jsonw_key(w, "match");
	nb_jsonw_strz(w, match_any ? "any" : "all");
	nb_jsonw_obj_end(w);
	nb_buf_dispose(&tmp);
}
