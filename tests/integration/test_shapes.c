/*
 * test_shapes.c — the notebooks written in C from binary rows
 * (store/notebooks.c, core/jsonw.c) are byte for byte what the old path
 * answered: PostgreSQL's json_build_object (the shapes.h macros, and the old
 * NOTEBOOK_JSON kept below as the reference) compacted by nb_buf_json_compact
 * for the lists, and that JSON re-dumped by jansson for GET /v1/notebooks/{id}
 * and GET /v1/jobs.
 * The same for the conversations list and get, the messages list and search
 * (the old json_build_object SQL kept below, and search's old jansson
 * answer rebuilt here as api/search.c built it).
 * The data is made to hurt: every control character, quotes, backslashes,
 * non-ASCII, NULLs, more sources than are embedded, timestamps before 1970
 * and before 2000 (PostgreSQL's epoch) and with sub-millisecond parts, long
 * texts, citations arrays with escapes.
 */
#include <jansson.h>
#include <libpq-fe.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/err.h"
#include "core/jsonw.h"
#include "core/log.h"
#include "db/bin.h"
#include "db/db.h"
#include "db/pool.h"
#include "api/util.h"
#include "store/conversations.h"
#include "store/notebooks.h"
#include "store/jobs.h"
#include "store/sources.h"
#include "store/shapes.h"
#include "t.h"
#include "itest.h"

static const char *url;
static nb_pool_t *pool;
static nb_conn_t *conn;
static const char *owner = "0190a000-0000-7000-8000-00000000aa01";

/* The old answer of a notebook: what st_nb_get / st_nb_list_* returned before. */
#define OLD_NOTEBOOK_JSON(n)                                                                                  \
	"json_build_object(" NB_SQL_NOTEBOOK_FIELDS(n) ","                                                     \
	" 'source_count', (SELECT count(*) FROM sources s WHERE s.notebook_id = " n ".id"                     \
	"                  AND s.deleted_at IS NULL),"                                                          \
	" 'sources', coalesce((SELECT json_agg(x.j ORDER BY x.created_at, x.id) FROM ("                       \
	"    SELECT " NB_SQL_SOURCE_JSON("s") " AS j, s.created_at, s.id FROM sources s"                         \
	"    WHERE s.notebook_id = " n ".id AND s.deleted_at IS NULL"                                            \
	"    ORDER BY s.created_at, s.id LIMIT 50) x), '[]'::json))"

NB_STMT(st_old_list, "SELECT " OLD_NOTEBOOK_JSON("n") ", n.created_at::text, n.deleted_at::text, n.id::text"
		     " FROM notebooks n WHERE n.owner_id = $1 AND (n.deleted_at IS NOT NULL) = $2"
		     " ORDER BY CASE WHEN $2 THEN n.deleted_at ELSE n.created_at END DESC, n.id DESC");
NB_STMT(st_old_sources, "SELECT " NB_SQL_SOURCE_JSON("s") ", s.created_at::text, s.id::text FROM sources s"
			"  WHERE s.notebook_id = $1 AND s.deleted_at IS NULL ORDER BY s.created_at, s.id");
NB_STMT(st_old_chunks,
	"SELECT json_build_object('id', c.id, 'source_id', c.source_id, 'index', c.chunk_index, 'text', c.text,"
	" 'char_start', c.char_start, 'char_end', c.char_end, 'page', c.page, 'token_count', c.token_count),"
	" c.chunk_index::text, c.id::text"
	" FROM chunks c WHERE c.source_id = $1 AND c.deleted_at IS NULL ORDER BY c.chunk_index");
/* The old JOB_JSON of store/jobs.c, which GET /v1/jobs re-dumped through jansson. */
NB_STMT(st_old_jobs,
	"SELECT json_build_object('id', j.id, 'kind', j.kind, 'status', j.status, 'attempts', j.attempts,"
	" 'max_attempts', j.max_attempts, 'last_error', j.last_error, 'run_at', nb_ts(j.run_at),"
	" 'created_at', nb_ts(j.created_at), 'updated_at', nb_ts(j.updated_at),"
	" 'finished_at', nb_ts(j.finished_at)) FROM jobs j WHERE j.user_id = $1 AND j.deleted_at IS NULL"
	" ORDER BY j.created_at DESC, j.id DESC");
NB_STMT(st_old_convs, "SELECT " NB_SQL_CONVERSATION_JSON("c") ", coalesce(c.last_message_at, c.created_at)::text,"
		      " c.id::text FROM conversations c WHERE c.user_id = $1 AND c.notebook_id = $2"
		      " AND c.deleted_at IS NULL ORDER BY coalesce(c.last_message_at, c.created_at) DESC, c.id DESC");
NB_STMT(st_old_conv_all, "SELECT " NB_SQL_CONVERSATION_JSON("c") ", c.id::text FROM conversations c"
			 " WHERE c.user_id = $1 AND c.deleted_at IS NULL ORDER BY c.id");
NB_STMT(st_old_msgs, "SELECT " NB_SQL_MESSAGE_JSON("m") ", m.created_at::text, m.id::text FROM messages m"
		     " WHERE m.conversation_id = $1 AND m.deleted_at IS NULL ORDER BY m.created_at, m.id");
/* The old st_search of store/sources.c: each hit a json_build_object that api/search.c loaded with jansson. */
NB_STMT(st_old_search,
	"WITH q AS (SELECT nb_ts_config(n.language) AS cfg,"
	"             nb_search_query(nb_ts_config(n.language), $2, $4, $5) AS q FROM notebooks n WHERE n.id = $1),"
	" hits AS (SELECT c.id, c.source_id, c.chunk_index, c.page, c.text,"
	"          ts_rank_cd(c.tsv, q.q, 1 | 32) AS score"
	"   FROM chunks c, q WHERE c.notebook_id = $1 AND c.deleted_at IS NULL AND c.tsv @@ q.q"
	"   LIMIT 1000),"
	" top AS (SELECT h.*, s.title FROM hits h JOIN sources s ON s.id = h.source_id AND s.deleted_at IS NULL"
	"   ORDER BY h.score DESC, h.id LIMIT $3)"
	" SELECT json_build_object('chunk_id', t.id, 'source_id', t.source_id, 'source_title', t.title,"
	"  'index', t.chunk_index, 'page', t.page, 'score', round(t.score::numeric, 6),"
	"  'snippet', ts_headline(q.cfg, t.text, q.q,"
	"     'StartSel=\x01, StopSel=\x02, MaxWords=35, MinWords=12, MaxFragments=2, FragmentDelimiter=\" … \"'))"
	" FROM top t, q ORDER BY t.score DESC, t.id");
NB_STMT(st_ts_sample, "SELECT t, nb_ts(t), t::text FROM (SELECT timestamptz '1900-01-01 00:00:00+00'"
		      " + (random() * 300 * 365.25 * 86400) * interval '1 second' AS t"
		      " FROM generate_series(1, 20000) UNION ALL SELECT unnest(ARRAY["
		      " '1970-01-01 00:00:00+00', '1969-12-31 23:59:59.999999+00', '2000-01-01 00:00:00+00',"
		      " '1999-12-31 23:59:59.999500+00', '2000-02-29 12:00:00.0005+00', '2100-03-01 00:00:00.1+00',"
		      " '1600-02-29 23:59:59.99+00', '9999-12-31 23:59:59.999999+00']::timestamptz[])) x");

static const char *setup_sql =
    "SET TimeZone = 'UTC';"
    "DELETE FROM users WHERE id = '0190a000-0000-7000-8000-00000000aa01';"
    "INSERT INTO users (id, email, password_hash) VALUES"
    " ('0190a000-0000-7000-8000-00000000aa01', 'shapes@example.com', 'x');"
    "INSERT INTO documents (id, user_id, sha256, mime_type, byte_size, content) VALUES"
    " ('0190a000-0000-7000-8000-0000000000d1', '0190a000-0000-7000-8000-00000000aa01',"
    "  sha256('x'), 'text/plain', 1, 'x');"
    /* a notebook whose description holds every control character and more */
    "INSERT INTO notebooks (id, owner_id, title, description, language, created_at, updated_at) VALUES"
    " ('0190a000-0000-7000-8000-0000000000b1', '0190a000-0000-7000-8000-00000000aa01',"
    "  'Tïtle \"quoted\" \\ back/slash ✓ 😀', (SELECT string_agg(chr(i), '') FROM generate_series(1, 127) i)"
    "  || ' é ' || chr(8232) || chr(65279), 'de', '2026-01-02 03:04:05.999999+00', '1999-12-31 23:59:59.0005+00'),"
    /* no description, no sources, before 1970 */
    " ('0190a000-0000-7000-8000-0000000000b2', '0190a000-0000-7000-8000-00000000aa01',"
    "  'plain', NULL, 'en', '1969-07-20 20:17:40.123456+00', '1969-07-20 20:17:40+00'),"
    /* 55 sources: 50 embedded, source_count 55 */
    " ('0190a000-0000-7000-8000-0000000000b3', '0190a000-0000-7000-8000-00000000aa01',"
    "  'many', '', 'fr', '2026-01-02 03:04:05.999999+00', '2026-03-04 05:06:07.08+00'),"
    /* the embed's edge: exactly 50 live sources (a full embed: PostgreSQL counts) and 49 (the rows count), each
     * with sources in the trash that must not be counted */
    " ('0190a000-0000-7000-8000-0000000000b6', '0190a000-0000-7000-8000-00000000aa01',"
    "  'fifty', NULL, 'en', '2025-01-01 00:00:00+00', '2025-01-01 00:00:00+00'),"
    " ('0190a000-0000-7000-8000-0000000000b7', '0190a000-0000-7000-8000-00000000aa01',"
    "  'forty-nine', NULL, 'en', '2025-01-01 00:00:00+00', '2025-01-01 00:00:00+00');"
    /* in the trash */
    "INSERT INTO notebooks (id, owner_id, title, created_at, deleted_at) VALUES"
    " ('0190a000-0000-7000-8000-0000000000b4', '0190a000-0000-7000-8000-00000000aa01', 'trashed',"
    "  '2020-05-05 05:05:05+00', '2026-11-28 06:00:00.5+00'),"
    " ('0190a000-0000-7000-8000-0000000000b5', '0190a000-0000-7000-8000-00000000aa01', 'trashed 2',"
    "  '2020-05-05 05:05:05+00', '2026-11-28 06:00:00.000001+00');"
    "INSERT INTO sources (id, notebook_id, document_id, title, kind, url, status, error, byte_size, chunk_count,"
    " page_count, created_at, updated_at, deleted_at) VALUES"
    " ('0190a000-0000-7000-8000-0000000000c1', '0190a000-0000-7000-8000-0000000000b1', NULL,"
    "  e'source \\t\\n\\b\\f\\x01\\x1f \"q\"', 'url', 'https://example.com/a?b=\"c\"&d=\\\\', 'failed',"
    "  e'fetch failed:\\r\\nbad \\x0b', NULL, 0, NULL, '2026-01-02 03:04:06+00', '2026-01-02 03:04:07.0019+00', NULL),"
    " ('0190a000-0000-7000-8000-0000000000c2', '0190a000-0000-7000-8000-0000000000b1',"
    "  '0190a000-0000-7000-8000-0000000000d1', 'a pdf', 'pdf', NULL, 'ready', NULL, 123456789012, 42, 7,"
    "  '2026-01-02 03:04:06+00', '2026-01-02 03:04:06+00', NULL),"
    " ('0190a000-0000-7000-8000-0000000000c3', '0190a000-0000-7000-8000-0000000000b1', NULL, 'gone', 'text',"
    "  NULL, 'ready', NULL, 1, 1, NULL, '2026-01-02 03:04:06+00', '2026-01-02 03:04:06+00', now()),"
    " ('0190a000-0000-7000-8000-0000000000c4', '0190a000-0000-7000-8000-0000000000b4', NULL, 'in trash', 'markdown',"
    "  NULL, 'pending', NULL, NULL, 0, NULL, '2020-05-05 05:05:06+00', '2020-05-05 05:05:06+00', NULL);"
    "INSERT INTO sources (id, notebook_id, title, kind, status, created_at)"
    " SELECT gen_random_uuid(), '0190a000-0000-7000-8000-0000000000b3', 's' || i, 'text', 'processing',"
    "  '2026-01-01 00:00:00+00'::timestamptz + i * interval '1.0001 second' FROM generate_series(1, 55) i;"
    "INSERT INTO sources (id, notebook_id, title, kind, status, created_at, deleted_at)"
    " SELECT gen_random_uuid(), ('0190a000-0000-7000-8000-0000000000b' || (6 + i / 100))::uuid, 's' || i, 'text',"
    "  'ready', '2025-01-01 00:00:00+00'::timestamptz + (i % 100) * interval '1 ms',"
    "  CASE WHEN i % 100 >= 50 - i / 100 THEN now() END"
    "  FROM generate_series(0, 199) i WHERE i % 100 < 52 - i / 100;"
    "INSERT INTO chunks (id, source_id, notebook_id, chunk_index, text, char_start, char_end, page, token_count)"
    " SELECT gen_random_uuid(), '0190a000-0000-7000-8000-0000000000c2', '0190a000-0000-7000-8000-0000000000b1',"
    "  i, 'chunk ' || i || ' ' || chr(i) || ' \"q\" \\ é 😀', i * 10, i * 10 + 9, CASE WHEN i % 2 = 0 THEN i END, i"
    "  FROM generate_series(1, 40) i;"
    "INSERT INTO jobs (id, user_id, kind, status, attempts, max_attempts, last_error, run_at, finished_at, created_at)"
    " SELECT gen_random_uuid(), '0190a000-0000-7000-8000-00000000aa01', 'noop',"
    "  (ARRAY['pending', 'succeeded', 'failed', 'dead'])[i % 4 + 1], i % 6, 5,"
    "  CASE WHEN i % 3 = 0 THEN NULL ELSE 'error ' || chr(i) || chr(i + 10) || ' \"x\" \\ ü' END,"
    "  '2026-05-05 05:05:05.123456+00'::timestamptz + i * interval '1 ms', CASE WHEN i % 2 = 0 THEN now() END,"
    "  '2026-05-05 00:00:00+00'::timestamptz + i * interval '1.5 ms' FROM generate_series(1, 21) i;"
    /* search: hostile chunk texts (every control character, markup, quotes, long) in a source with a hostile title */
    "INSERT INTO chunks (id, source_id, notebook_id, chunk_index, text, char_start, char_end, page, token_count)"
    " SELECT gen_random_uuid(), '0190a000-0000-7000-8000-0000000000c1', '0190a000-0000-7000-8000-0000000000b1',"
    "  i, 'Mitochondrien <b>&amp;</b> \"Energie\" it''s ' || repeat('Zelle Haus ', i * 40) || chr(i) || ' é 😀 \\ '"
    "  || (SELECT string_agg(chr(k), '') FROM generate_series(1, 31) k) || ' Energie Kraftwerk Zelle',"
    "  0, 10, CASE WHEN i % 2 = 1 THEN i END, i FROM generate_series(1, 30) i;"
    /* conversations: hostile titles, no title, one in the trash, many; messages with citations, a trashed last one */
    "INSERT INTO conversations (id, user_id, notebook_id, title, last_message_at, created_at, updated_at, deleted_at)"
    " VALUES ('0190a000-0000-7000-8000-0000000000e1', '0190a000-0000-7000-8000-00000000aa01',"
    "  '0190a000-0000-7000-8000-0000000000b1', (SELECT string_agg(chr(i), '') FROM generate_series(1, 127) i)"
    "  || ' ü ✓ 😀', '2026-02-02 02:02:02.0025+00', '1969-12-31 23:59:59.9995+00', '2026-02-02 02:02:02.0025+00', NULL),"
    " ('0190a000-0000-7000-8000-0000000000e2', '0190a000-0000-7000-8000-00000000aa01',"
    "  '0190a000-0000-7000-8000-0000000000b1', NULL, NULL, '1900-01-01 00:00:00.000001+00', '1900-01-01 00:00:00+00', NULL),"
    " ('0190a000-0000-7000-8000-0000000000e3', '0190a000-0000-7000-8000-00000000aa01',"
    "  '0190a000-0000-7000-8000-0000000000b1', 'trashed', NULL, '2026-01-01 00:00:00+00', '2026-01-01 00:00:00+00', now()),"
    " ('0190a000-0000-7000-8000-0000000000e4', '0190a000-0000-7000-8000-00000000aa01',"
    "  '0190a000-0000-7000-8000-0000000000b1', 'ties', '2026-02-02 02:02:02.0025+00', '2026-01-01 00:00:00+00',"
    "  '2026-01-01 00:00:00+00', NULL);"
    "INSERT INTO conversations (id, user_id, notebook_id, title, last_message_at, created_at)"
    " SELECT gen_random_uuid(), '0190a000-0000-7000-8000-00000000aa01', '0190a000-0000-7000-8000-0000000000b3',"
    "  'c ' || i, CASE WHEN i % 3 = 0 THEN '2026-03-03 00:00:00+00'::timestamptz + i * interval '0.7 ms' END,"
    "  '2026-03-03 00:00:00+00'::timestamptz + (i % 7) * interval '1.0005 ms' FROM generate_series(1, 45) i;"
    "INSERT INTO messages (id, conversation_id, role, content, citations, created_at, deleted_at) VALUES"
    " ('0190a000-0000-7000-8000-0000000000f1', '0190a000-0000-7000-8000-0000000000e1', 'user',"
    "  (SELECT string_agg(chr(i), '') FROM generate_series(1, 127) i) || repeat(' long é 😀 \"q\" \\', 5000),"
    "  '[]', '1969-07-20 20:17:40.123456+00', NULL),"
    " ('0190a000-0000-7000-8000-0000000000f2', '0190a000-0000-7000-8000-0000000000e1', 'assistant',"
    "  'Answer [1] and [2] \u2028 ✓', jsonb_build_array(jsonb_build_object('chunk_id',"
    "  '0190a000-0000-7000-8000-0000000000aa', 'source_id', '0190a000-0000-7000-8000-0000000000c1',"
    "  'quote', e'\\x0b\\x1b\\x1f \"q\" \\\\ é \\t\\n', 'char_start', 1, 'char_end', 12),"
    "  jsonb_build_object('chunk_id', '0190a000-0000-7000-8000-0000000000ab', 'source_id',"
    "  '0190a000-0000-7000-8000-0000000000c2', 'quote', 'plain', 'char_start', 0, 'char_end', 5)),"
    "  '1999-12-31 23:59:59.9995+00', NULL),"
    " ('0190a000-0000-7000-8000-0000000000f3', '0190a000-0000-7000-8000-0000000000e1', 'user', 'trashed',"
    "  '[]', '2026-02-02 02:02:02.0025+00', now()),"
    " ('0190a000-0000-7000-8000-0000000000f4', '0190a000-0000-7000-8000-0000000000e4', 'user', 'same time a',"
    "  '[]', '2026-02-02 02:02:02.0025+00', NULL),"
    " ('0190a000-0000-7000-8000-0000000000f5', '0190a000-0000-7000-8000-0000000000e4', 'assistant', 'same time b',"
    "  '[{\"k\": [1, 2, {\"x\": null}], \"a\": \"\\u001f\\u007f\"}]', '2026-02-02 02:02:02.0025+00', NULL);"
    "INSERT INTO messages (id, conversation_id, role, content, created_at)"
    " SELECT gen_random_uuid(), c.id, CASE WHEN k % 2 = 0 THEN 'user' ELSE 'assistant' END, 'm ' || k || chr(k),"
    "  '2026-03-03 00:00:00+00'::timestamptz + k * interval '0.3 ms'"
    " FROM conversations c, generate_series(1, 3) k WHERE c.notebook_id = '0190a000-0000-7000-8000-0000000000b3'"
    "  AND c.last_message_at IS NOT NULL;";

static void test_timestamps_match_nb_ts_and_timestamptz_text(void)
{
	PGresult *r = NULL;
	CHECK(nb_db_exec_binary(conn, &st_ts_sample, NULL, &r) == 0);
	int bad = 0, n = r ? PQntuples(r) : 0;
	CHECK(n == 20008);
	nb_buf_t b = NB_BUF_INIT;
	for (int i = 0; i < n; i++) {
		int64_t us = nb_bin_ts(r, i, 0);
		nb_buf_reset(&b);
		nb_jsonw_t w;
		nb_jsonw_init(&w, &b);
		nb_jsonw_ts(&w, us);
		char want[64], pg[40];
		snprintf(want, sizeof want, "\"%s\"", PQgetvalue(r, i, 1));
		nb_ts_pg_fmt(us, pg);
		if (strcmp(b.data, want) || strcmp(pg, PQgetvalue(r, i, 2))) {
			if (bad++ < 3)
				printf("#   %s vs %s; %s vs %s\n", b.data, want, pg, PQgetvalue(r, i, 2));
		}
	}
	CHECK(bad == 0);
	nb_buf_dispose(&b);
	PQclear(r);
}

/* The old rows of the owner's live notebooks (trashed: the trash). */
static PGresult *old_rows(bool trashed)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, owner);
	nb_p_bool(&p, trashed);
	PGresult *r = NULL;
	CHECK(nb_db_exec(conn, &st_old_list, &p, &r) == 0);
	return r;
}

static void compare_list(bool trashed, int expect)
{
	PGresult *old = old_rows(trashed), *rows = NULL;
	CHECK(nb_store_notebooks_list(conn, owner, trashed, 100, NULL, NULL, &rows) == 0);
	if (!old || !rows)
		return;
	CHECK(PQntuples(old) == expect);
	nb_buf_t want = NB_BUF_INIT, got = NB_BUF_INIT;
	int row = 0, n = PQntuples(rows);
	for (int i = 0; i < PQntuples(old); i++) {
		CHECK_MSG(row < n, "notebook %d missing", i);
		if (row >= n)
			break;
		nb_buf_reset(&want);
		nb_buf_reset(&got);
		nb_buf_json_compact(&want, PQgetvalue(old, i, 0), (size_t)PQgetlength(old, i, 0));
		nb_jsonw_t w;
		nb_jsonw_init(&w, &got);
		char ts[40], id[37];
		nb_store_notebook_key(rows, row, trashed, ts, id);
		row = nb_store_notebook_write(&w, rows, row);
		CHECK_MSG(got.len == want.len && !memcmp(got.data, want.data, got.len), "notebook %d:\n#  got  %s\n#  want %s",
			  i, got.data, want.data);
		CHECK_MSG(!strcmp(ts, PQgetvalue(old, i, trashed ? 2 : 1)), "key %s vs %s", ts,
			  PQgetvalue(old, i, trashed ? 2 : 1));
		CHECK(!strcmp(id, PQgetvalue(old, i, 3)));
	}
	CHECK(row == n);
	nb_buf_dispose(&want);
	nb_buf_dispose(&got);
	PQclear(old);
	PQclear(rows);
}

static void test_list_bytes_match_the_old_sql(void)
{
	compare_list(false, 5);
}

static void test_trash_bytes_match_the_old_sql(void)
{
	compare_list(true, 2);
}

static void test_get_bytes_match_the_old_jansson_answer(void)
{
	PGresult *old = old_rows(false);
	if (!old)
		return;
	nb_buf_t got = NB_BUF_INIT;
	for (int i = 0; i < PQntuples(old); i++) {
		json_t *j = json_loads(PQgetvalue(old, i, 0), 0, NULL);
		char *want = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
		PGresult *rows = NULL;
		CHECK(nb_store_notebook_get(conn, owner, PQgetvalue(old, i, 3), &rows) == 0);
		nb_buf_reset(&got);
		nb_jsonw_t w;
		nb_jsonw_init(&w, &got);
		w.upper_hex = true;
		if (rows)
			CHECK(nb_store_notebook_write(&w, rows, 0) == PQntuples(rows));
		CHECK_MSG(want && !strcmp(got.data, want), "notebook %d:\n#  got  %s\n#  want %s", i, got.data,
			  want ? want : "(none)");
		free(want);
		json_decref(j);
		PQclear(rows);
	}
	/* another owner's, a trashed and a missing notebook: not found */
	PGresult *rows = NULL;
	CHECK(nb_store_notebook_get(conn, "0190a000-0000-7000-8000-00000000aa02", "0190a000-0000-7000-8000-0000000000b1",
				    &rows) == NB_ENOTFOUND && !rows);
	CHECK(nb_store_notebook_get(conn, owner, "0190a000-0000-7000-8000-0000000000b4", &rows) == NB_ENOTFOUND);
	nb_buf_dispose(&got);
	PQclear(old);
}

/* A whole list's item bytes: the old rows (JSON, key, id) against a writer over the new rows. */
static void compare_items(PGresult *old, PGresult *rows, nb_row_writer_fn fn, int expect)
{
	CHECK(old && rows);
	if (!old || !rows)
		return;
	CHECK_MSG(PQntuples(old) == expect && PQntuples(rows) == expect, "%d / %d rows", PQntuples(old),
		  PQntuples(rows));
	nb_buf_t want = NB_BUF_INIT, got = NB_BUF_INIT;
	for (int i = 0; i < PQntuples(old) && i < PQntuples(rows); i++) {
		nb_buf_reset(&want);
		nb_buf_reset(&got);
		nb_buf_json_compact(&want, PQgetvalue(old, i, 0), (size_t)PQgetlength(old, i, 0));
		nb_jsonw_t w;
		nb_jsonw_init(&w, &got);
		char key[40], id[37];
		fn(&w, rows, i, key, id);
		CHECK_MSG(got.len == want.len && !memcmp(got.data, want.data, got.len), "item %d:\n#  got  %.300s\n#  want %.300s",
			  i, got.data, want.data);
		CHECK_MSG(!strcmp(key, PQgetvalue(old, i, 1)), "key %s vs %s", key, PQgetvalue(old, i, 1));
		CHECK(!strcmp(id, PQgetvalue(old, i, 2)));
	}
	nb_buf_dispose(&want);
	nb_buf_dispose(&got);
}

static PGresult *old_of(nb_stmt_t *st, const char *id)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, id);
	PGresult *r = NULL;
	CHECK(nb_db_exec(conn, st, &p, &r) == 0);
	return r;
}

static void test_sources_list_bytes_match_the_old_sql(void)
{
	const char *nbs[] = {"0190a000-0000-7000-8000-0000000000b1", "0190a000-0000-7000-8000-0000000000b3"};
	int expect[] = {2, 55};
	for (int k = 0; k < 2; k++) {
		PGresult *old = old_of(&st_old_sources, nbs[k]), *rows = NULL;
		CHECK(nb_store_sources_list(conn, owner, nbs[k], 100, NULL, NULL, &rows) == 0);
		compare_items(old, rows, nb_store_sources_write, expect[k]);
		PQclear(old);
		PQclear(rows);
	}
}

static void test_chunks_list_bytes_match_the_old_sql(void)
{
	const char *src = "0190a000-0000-7000-8000-0000000000c2";
	PGresult *old = old_of(&st_old_chunks, src), *rows = NULL;
	CHECK(nb_store_chunks_list(conn, owner, src, 100, -1, &rows) == 0);
	compare_items(old, rows, nb_store_chunks_write, 40);
	PQclear(old);
	PQclear(rows);
}

static void test_jobs_list_bytes_match_the_old_jansson_answer(void)
{
	PGresult *old = old_of(&st_old_jobs, owner), *rows = NULL;
	CHECK(nb_store_jobs_list_rows(conn, owner, NULL, 100, NULL, &rows) == 0);
	CHECK(old && rows && PQntuples(old) == 21 && PQntuples(rows) == 21);
	nb_buf_t got = NB_BUF_INIT;
	for (int i = 0; old && rows && i < PQntuples(old) && i < PQntuples(rows); i++) {
		json_t *j = json_loads(PQgetvalue(old, i, 0), 0, NULL);
		char *want = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
		nb_buf_reset(&got);
		nb_jsonw_t w;
		nb_jsonw_init(&w, &got);
		w.upper_hex = true;
		char key[40], id[37];
		nb_store_jobs_write(&w, rows, i, key, id);
		CHECK_MSG(want && !strcmp(got.data, want), "job %d:\n#  got  %s\n#  want %s", i, got.data,
			  want ? want : "(none)");
		CHECK(!strcmp(key, "j") && strlen(id) == 36);
		free(want);
		json_decref(j);
	}
	/* the status filter over the same rows */
	PGresult *dead = NULL;
	CHECK(nb_store_jobs_list_rows(conn, owner, "dead", 100, NULL, &dead) == 0);
	CHECK(dead && PQntuples(dead) == 5);
	PQclear(dead);
	nb_buf_dispose(&got);
	PQclear(old);
	PQclear(rows);
}

static PGresult *old_of2(nb_stmt_t *st, const char *a, const char *b)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, a);
	nb_p_text(&p, b);
	PGresult *r = NULL;
	CHECK(nb_db_exec(conn, st, &p, &r) == 0);
	return r;
}

static void test_conversations_list_bytes_match_the_old_sql(void)
{
	const char *nbs[] = {"0190a000-0000-7000-8000-0000000000b1", "0190a000-0000-7000-8000-0000000000b3"};
	int expect[] = {3, 45};
	for (int k = 0; k < 2; k++) {
		PGresult *old = old_of2(&st_old_convs, owner, nbs[k]), *rows = NULL;
		CHECK(nb_store_conversations_list(conn, owner, nbs[k], 100, NULL, NULL, &rows) == 0);
		compare_items(old, rows, nb_store_conversations_write, expect[k]);
		PQclear(old);
		PQclear(rows);
	}
	/* a later page starts where the cursor key of the old path said */
	PGresult *old = old_of2(&st_old_convs, owner, nbs[1]), *rows = NULL;
	if (old && PQntuples(old) == 45) {
		CHECK(nb_store_conversations_list(conn, owner, nbs[1], 100, PQgetvalue(old, 9, 1), PQgetvalue(old, 9, 2),
						  &rows) == 0);
		CHECK(rows && PQntuples(rows) == 35);
		char key[40], id[37];
		nb_buf_t b = NB_BUF_INIT;
		nb_jsonw_t w;
		nb_jsonw_init(&w, &b);
		if (rows && PQntuples(rows) > 0)
			nb_store_conversations_write(&w, rows, 0, key, id);
		CHECK(rows && PQntuples(rows) > 0 && !strcmp(id, PQgetvalue(old, 10, 2)));
		nb_buf_dispose(&b);
	}
	PQclear(old);
	PQclear(rows);
}

static void test_conversation_get_bytes_match_the_old_jansson_answer(void)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, owner);
	PGresult *old = NULL;
	CHECK(nb_db_exec(conn, &st_old_conv_all, &p, &old) == 0);
	CHECK(old && PQntuples(old) == 48);
	nb_buf_t got = NB_BUF_INIT;
	for (int i = 0; old && i < PQntuples(old); i++) {
		json_t *j = json_loads(PQgetvalue(old, i, 0), 0, NULL);
		char *want = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
		PGresult *rows = NULL;
		CHECK(nb_store_conversation_get(conn, owner, PQgetvalue(old, i, 1), &rows) == 0);
		nb_buf_reset(&got);
		nb_jsonw_t w;
		nb_jsonw_init(&w, &got);
		w.upper_hex = true;
		if (rows)
			nb_store_conversation_write(&w, rows, 0);
		CHECK_MSG(want && got.data && !strcmp(got.data, want), "conversation %d:\n#  got  %.400s\n#  want %.400s", i,
			  got.data ? got.data : "", want ? want : "(none)");
		free(want);
		json_decref(j);
		PQclear(rows);
	}
	/* another owner's, a trashed and a missing conversation: not found */
	PGresult *rows = NULL;
	CHECK(nb_store_conversation_get(conn, "0190a000-0000-7000-8000-00000000aa02",
					"0190a000-0000-7000-8000-0000000000e1", &rows) == NB_ENOTFOUND && !rows);
	CHECK(nb_store_conversation_get(conn, owner, "0190a000-0000-7000-8000-0000000000e3", &rows) == NB_ENOTFOUND);
	CHECK(nb_store_conversation_get(conn, owner, "0190a000-0000-7000-8000-0000000000ee", &rows) == NB_ENOTFOUND);
	nb_buf_dispose(&got);
	PQclear(old);
}

static void test_messages_list_bytes_match_the_old_sql(void)
{
	const char *convs[] = {"0190a000-0000-7000-8000-0000000000e1", "0190a000-0000-7000-8000-0000000000e2",
			       "0190a000-0000-7000-8000-0000000000e4"};
	int expect[] = {2, 0, 2};
	for (int k = 0; k < 3; k++) {
		PGresult *old = old_of(&st_old_msgs, convs[k]), *rows = NULL;
		CHECK(nb_store_messages_list(conn, convs[k], 100, NULL, NULL, &rows) == 0);
		compare_items(old, rows, nb_store_messages_write, expect[k]);
		PQclear(old);
		PQclear(rows);
	}
}

/* What api/search.c did with the old rows: jansson, the snippet marked up, dumped. */
static char *old_mark_up(const char *s)
{
	nb_buf_t b = NB_BUF_INIT;
	for (; *s; s++) {
		switch (*s) {
		case '\x01': nb_buf_puts(&b, "<mark>"); break;
		case '\x02': nb_buf_puts(&b, "</mark>"); break;
		case '&': nb_buf_puts(&b, "&amp;"); break;
		case '<': nb_buf_puts(&b, "&lt;"); break;
		case '>': nb_buf_puts(&b, "&gt;"); break;
		case '"': nb_buf_puts(&b, "&quot;"); break;
		case '\'': nb_buf_puts(&b, "&#39;"); break;
		default: nb_buf_putc(&b, *s);
		}
	}
	return nb_buf_steal(&b, NULL);
}

static char *old_search(const nb_search_query_t *q, int limit, int *hits)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, "0190a000-0000-7000-8000-0000000000b1");
	nb_p_text(&p, q->head);
	nb_p_int(&p, limit);
	nb_p_text(&p, q->last);
	nb_p_bool(&p, q->match_any);
	PGresult *r = NULL;
	CHECK(nb_db_exec(conn, &st_old_search, &p, &r) == 0);
	json_t *items = json_array();
	for (int i = 0; r && i < PQntuples(r); i++) {
		json_t *o = json_loads(PQgetvalue(r, i, 0), JSON_DECODE_ANY, NULL);
		json_t *sn = json_object_get(o, "snippet");
		if (json_is_string(sn)) {
			char *m = old_mark_up(json_string_value(sn));
			json_object_set_new(o, "snippet", json_string(m));
			free(m);
		}
		json_array_append_new(items, o);
	}
	*hits = r ? PQntuples(r) : -1;
	PQclear(r);
	json_t *doc = json_pack("{s:o, s:n, s:s}", "items", items, "next_cursor", "match", q->match_any ? "any" : "all");
	char *s = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(6));
	json_decref(doc);
	return s;
}

static void test_search_bytes_match_the_old_jansson_answer(void)
{
	const nb_search_query_t qs[] = {
	    {"", "Zell", false},	       {"Energie", NULL, false},	{"Mitochondrien Kraftwerk", NULL, false},
	    {"Haus Ufo", NULL, true},	       {"\"Energie Kraftwerk\" OR chunk", NULL, false},
	    {"Ufo", NULL, false},	       {"chunk", NULL, false},		{"q -Haus", NULL, false},
	};
	int limits[] = {50, 10, 3, 50, 50, 10, 50, 50};
	int total = 0;
	nb_buf_t got = NB_BUF_INIT;
	for (size_t k = 0; k < sizeof qs / sizeof qs[0]; k++) {
		int hits = 0;
		char *want = old_search(&qs[k], limits[k], &hits);
		total += hits;
		PGresult *rows = NULL;
		CHECK(nb_store_search(conn, "0190a000-0000-7000-8000-0000000000b1", &qs[k], limits[k], &rows) == 0);
		CHECK_MSG(rows && PQntuples(rows) == hits, "query %zu: %d vs %d hits", k, rows ? PQntuples(rows) : -1, hits);
		nb_buf_reset(&got);
		nb_jsonw_t w;
		nb_jsonw_init(&w, &got);
		w.upper_hex = true;
		if (rows)
			nb_store_search_write(&w, rows, qs[k].match_any);
		CHECK_MSG(want && got.data && !strcmp(got.data, want), "query %zu:\n#  got  %.600s\n#  want %.600s", k,
			  got.data ? got.data : "", want ? want : "(none)");
		free(want);
		PQclear(rows);
	}
	CHECK_MSG(total > 80, "only %d hits: the queries must find things", total);
	nb_buf_dispose(&got);
}

/* Scores are reals: nb_jsonw_real prints what jansson printed. */
static void test_reals_print_as_jansson_did(void)
{
	double fixed[] = {0, 1, 0.1, 1e-06, 1.5e-05, 0.123457, 0.999999, 100000, 1234567, 1e21, 3.25e-300, 0.5};
	int bad = 0;
	nb_buf_t got = NB_BUF_INIT;
	for (int i = 0; i < 20000 + (int)(sizeof fixed / sizeof fixed[0]); i++) {
		double v = i < (int)(sizeof fixed / sizeof fixed[0]) ? fixed[i]
			   : (double)randombytes_uniform(1000000000) / 1e9 * (i % 3 ? 1 : 1e-4);
		json_t *j = json_real(v);
		char *want = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(6));
		nb_buf_reset(&got);
		nb_jsonw_t w;
		nb_jsonw_init(&w, &got);
		nb_jsonw_real(&w, v, 6);
		if (!want || strcmp(got.data, want)) {
			if (bad++ < 3)
				printf("#   %.17g: %s vs %s\n", v, got.data, want ? want : "(none)");
		}
		free(want);
		json_decref(j);
	}
	CHECK(bad == 0);
	nb_buf_dispose(&got);
}

int main(void)
{
	if (!(url = itest_start()))
		return 2;
	nb_pool_opts_t o;
	nb_pool_opts_from_config(&o, url);
	o.size = 1;
	o.application_name = "nb-test-shapes";
	pool = nb_pool_create(&o);
	if (nb_pool_acquire(pool, &conn) < 0) {
		fprintf(stderr, "cannot acquire a connection\n");
		return 2;
	}
	if (nb_db_command(conn, setup_sql) < 0) {
		fprintf(stderr, "setup failed\n");
		return 2;
	}
	T_RUN(test_timestamps_match_nb_ts_and_timestamptz_text);
	T_RUN(test_list_bytes_match_the_old_sql);
	T_RUN(test_trash_bytes_match_the_old_sql);
	T_RUN(test_get_bytes_match_the_old_jansson_answer);
	T_RUN(test_sources_list_bytes_match_the_old_sql);
	T_RUN(test_chunks_list_bytes_match_the_old_sql);
	T_RUN(test_jobs_list_bytes_match_the_old_jansson_answer);
	T_RUN(test_conversations_list_bytes_match_the_old_sql);
	T_RUN(test_conversation_get_bytes_match_the_old_jansson_answer);
	T_RUN(test_messages_list_bytes_match_the_old_sql);
	T_RUN(test_search_bytes_match_the_old_jansson_answer);
	T_RUN(test_reals_print_as_jansson_did);
	nb_db_command(conn, "DELETE FROM users WHERE id = '0190a000-0000-7000-8000-00000000aa01'");
	nb_pool_release(pool, conn);
	nb_pool_destroy(pool);
	return t_done();
}
