/*
 * verify.c — `notebookd verify` (see verify.h).
 *
 * Design: the catalog of the current schema is read once, in five queries
 * (tables, columns, foreign keys with the index that serves each, indexes
 * with their key definitions and predicates, CHECK constraints), and every
 * structural check then runs in C over those results. What the schema must
 * look like is written down here as tables of expectations (the thirteen
 * tables, the foreign keys, the critical-path indexes by definition, the enum
 * CHECKs), so the report says what is missing rather than only what exists.
 *
 * The plan checks load sample rows with set-based INSERT … SELECT
 * generate_series inside one transaction that always ends in ROLLBACK. Ids
 * are md5(salt || letter || n)::uuid, with a random salt per run, so each
 * table can reference the rows of another without joins and without any
 * chance of colliding with real rows. Nothing changes planner settings: the
 * point is that the planner picks the index on its own.
 *
 * Every value travels as a parameter; the SQL text is only our constants.
 */
#include "db/verify.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "db/migrate.h"

/* ---- what the schema must hold ----------------------------------------- */

/* clang-format off */
static const char *const k_tables[] = {
	"users",    "refresh_tokens", "otps",          "notebooks", "documents",    "sources",           "chunks",
	"jobs",     "conversations",  "messages",      "quizzes",   "study_guides", "generation_history",
};
/* clang-format on */
#define N_TABLES (sizeof k_tables / sizeof k_tables[0])

typedef struct fk_spec {
	const char *table, *column, *ref;
} fk_spec_t;

/* clang-format off */
static const fk_spec_t k_fks[] = {
	{"refresh_tokens", "user_id", "users"},
	{"refresh_tokens", "replaced_by", "refresh_tokens"},
	{"otps", "user_id", "users"},
	{"notebooks", "owner_id", "users"},
	{"documents", "user_id", "users"},
	{"sources", "notebook_id", "notebooks"},
	{"sources", "document_id", "documents"},
	{"chunks", "source_id", "sources"},
	{"chunks", "notebook_id", "notebooks"},
	{"conversations", "user_id", "users"},
	{"conversations", "notebook_id", "notebooks"},
	{"messages", "conversation_id", "conversations"},
	{"quizzes", "notebook_id", "notebooks"},
	{"study_guides", "notebook_id", "notebooks"},
	{"jobs", "user_id", "users"},
	{"jobs", "document_id", "documents"},
	{"jobs", "source_id", "sources"},
	{"jobs", "quiz_id", "quizzes"},
	{"jobs", "study_guide_id", "study_guides"},
	{"generation_history", "user_id", "users"},
	{"generation_history", "notebook_id", "notebooks"},
	{"generation_history", "conversation_id", "conversations"},
	{"generation_history", "quiz_id", "quizzes"},
	{"generation_history", "study_guide_id", "study_guides"},
};
/* clang-format on */

/*
 * An index by definition: its access method, uniqueness, leading key columns
 * as pg_get_indexdef prints them (" DESC" appended for descending keys), and
 * fragments its predicate must contain. `where` shows the predicate in the
 * report when the fragments alone would read badly; `name` is what the
 * migration calls the index, also only for the report.
 */
typedef struct idx_spec {
	const char *table, *am;
	bool unique;
	const char *keys;
	const char *pred[2];
	const char *name;
	const char *where;
} idx_spec_t;

#define LIVE "deleted_at IS NULL"

/* clang-format off */
static const idx_spec_t k_indexes[] = {
	{"users", "btree", true, "lower(email)", {LIVE, NULL}, "users_email_live_key", NULL},
	{"notebooks", "btree", false, "owner_id, created_at DESC", {LIVE, NULL}, "notebooks_owner_live_idx", NULL},
	{"notebooks", "btree", false, "owner_id, deleted_at DESC", {"deleted_at IS NOT NULL", NULL},
	 "notebooks_owner_trash_idx", NULL},
	{"jobs", "btree", false, "run_at", {"ARRAY['pending'::text, 'failed'::text]", LIVE}, "jobs_claim_idx",
	 "status IN ('pending', 'failed') AND deleted_at IS NULL"},
	{"jobs", "btree", false, "locked_until", {"status = 'running'", NULL}, "jobs_lease_idx", NULL},
	{"jobs", "btree", false, "user_id, created_at DESC", {LIVE, NULL}, "jobs_user_created_idx", NULL},
	{"chunks", "btree", false, "source_id, chunk_index", {LIVE, NULL}, "chunks_source_live_idx", NULL},
	{"chunks", "gin", false, "notebook_id, tsv", {LIVE, NULL}, "chunks_notebook_tsv_idx", NULL},
	{"conversations", "btree", false, "user_id, notebook_id", {LIVE, NULL},
	 "conversations_user_notebook_live_idx", NULL},
	{"messages", "btree", false, "conversation_id, created_at", {LIVE, NULL}, "messages_conversation_live_idx",
	 NULL},
	{"documents", "btree", true, "user_id, sha256", {LIVE, NULL}, "documents_user_sha256_key", NULL},
	{"documents", "btree", false, "user_id, created_at DESC", {LIVE, NULL}, "documents_user_created_idx", NULL},
	{"sources", "btree", false, "notebook_id, created_at", {LIVE, NULL}, "sources_notebook_live_idx", NULL},
	{"quizzes", "btree", false, "notebook_id, created_at DESC", {LIVE, NULL}, "quizzes_notebook_live_idx", NULL},
	{"study_guides", "btree", false, "notebook_id, created_at DESC", {LIVE, NULL},
	 "study_guides_notebook_live_idx", NULL},
	{"refresh_tokens", "btree", true, "token_hash", {NULL, NULL}, "refresh_tokens_token_hash_key", NULL},
	{"refresh_tokens", "btree", false, "family_id", {NULL, NULL}, "refresh_tokens_family_id_idx", NULL},
	{"otps", "btree", false, "user_id, purpose, created_at DESC", {"consumed_at IS NULL", LIVE}, "otps_live_idx",
	 NULL},
	{"generation_history", "btree", false, "user_id, created_at DESC", {LIVE, NULL},
	 "generation_history_user_created_idx", NULL},
};
/* clang-format on */

/* An enum column: some CHECK constraint on it must name every value. */
typedef struct enum_spec {
	const char *table, *column;
	const char *values[6];
} enum_spec_t;

/* clang-format off */
static const enum_spec_t k_enums[] = {
	{"sources", "kind", {"text", "markdown", "html", "pdf", "url", NULL}},
	{"sources", "status", {"pending", "processing", "ready", "failed", NULL}},
	{"jobs", "kind", {"ingest_source", "generate_quiz", "generate_study_guide", "noop", "fail", NULL}},
	{"jobs", "status", {"pending", "running", "succeeded", "failed", "dead", NULL}},
	{"messages", "role", {"user", "assistant", NULL}},
	{"otps", "purpose", {"login", "verify_email", "reset_password", "change_email", NULL}},
	{"quizzes", "status", {"pending", "ready", "failed", NULL}},
	{"study_guides", "status", {"pending", "ready", "failed", NULL}},
	{"generation_history", "kind", {"chat", "quiz", "study_guide", NULL}},
	{"generation_history", "provider", {"extractive", "openai", NULL}},
	{"generation_history", "status", {"succeeded", "failed", NULL}},
};
/* clang-format on */

/* ---- catalog queries ----------------------------------------------------- */

/* clang-format off */
#define NS "(SELECT oid FROM pg_namespace WHERE nspname = current_schema())"

static const char q_tables[] = "SELECT relname FROM pg_class WHERE relnamespace = " NS " AND relkind IN ('r', 'p')";

static const char q_columns[] =
	"SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull"
	" FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid"
	" WHERE c.relnamespace = " NS " AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped"
	" ORDER BY c.relname, a.attnum";

/* Each foreign key with the first valid non-partial index whose leading key
 * columns are exactly the key's columns (in any order), or NULL. */
static const char q_fks[] =
	"SELECT t.relname,"
	" (SELECT string_agg(a.attname, ',' ORDER BY k.o) FROM unnest(c.conkey) WITH ORDINALITY k(n, o)"
	"   JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n),"
	" r.relname, c.confdeltype,"
	" (SELECT ic.relname FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid"
	"   WHERE i.indrelid = c.conrelid AND i.indpred IS NULL AND i.indisvalid"
	"   AND i.indnkeyatts >= cardinality(c.conkey)"
	"   AND (SELECT array_agg(k ORDER BY k) FROM unnest(c.conkey) k)"
	"     = (SELECT array_agg(k ORDER BY k) FROM unnest(i.indkey) WITH ORDINALITY u(k, o)"
	"        WHERE o <= cardinality(c.conkey))"
	"   ORDER BY i.indnkeyatts, ic.relname LIMIT 1)"
	" FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid JOIN pg_class r ON r.oid = c.confrelid"
	" WHERE c.contype = 'f' AND t.relnamespace = " NS " ORDER BY 1, 2";

static const char q_indexes[] =
	"SELECT t.relname, ic.relname, am.amname, i.indisunique, i.indisprimary,"
	" (SELECT string_agg(pg_get_indexdef(i.indexrelid, k, true)"
	"   || CASE WHEN i.indoption[k - 1] & 1 = 1 THEN ' DESC' ELSE '' END, ', ' ORDER BY k)"
	"   FROM generate_series(1, i.indnkeyatts) k),"
	" coalesce(pg_get_expr(i.indpred, i.indrelid, true), '')"
	" FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid"
	" JOIN pg_am am ON am.oid = ic.relam"
	" WHERE t.relnamespace = " NS " AND i.indisvalid ORDER BY 1, 2";

static const char q_checks[] =
	"SELECT t.relname, a.attname, pg_get_constraintdef(c.oid)"
	" FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid"
	" JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)"
	" WHERE c.contype = 'c' AND t.relnamespace = " NS " ORDER BY 1, 2";
/* clang-format on */

/* Column numbers of the results above. */
enum { COL_TABLE = 0, COL_NAME = 1, COL_TYPE = 2, COL_NOTNULL = 3 };
enum { FK_TABLE = 0, FK_COLS = 1, FK_REF = 2, FK_DELTYPE = 3, FK_INDEX = 4 };
enum { IX_TABLE = 0, IX_NAME = 1, IX_AM = 2, IX_UNIQUE = 3, IX_PRIMARY = 4, IX_KEYS = 5, IX_PRED = 6 };
enum { CK_TABLE = 0, CK_COLUMN = 1, CK_DEF = 2 };

/* ---- the run ------------------------------------------------------------ */

typedef struct vctx {
	PGconn *pg;
	FILE *out;
	bool color;
	int checks, failed;
	bool lost;     /* the connection died: stop at once */
	char err[512]; /* the last SQL error, first line only */
	PGresult *tables, *cols, *fks, *idx, *cks;
} vctx_t;

static void report(vctx_t *v, bool ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void report(vctx_t *v, bool ok, const char *fmt, ...)
{
	va_list ap;
	v->checks++;
	if (!ok)
		v->failed++;
	if (v->color)
		fputs(ok ? "\033[32m✓\033[0m " : "\033[31m✗\033[0m ", v->out);
	else
		fputs(ok ? "✓ " : "✗ ", v->out);
	va_start(ap, fmt);
	vfprintf(v->out, fmt, ap);
	va_end(ap);
	fputc('\n', v->out);
}

/* Runs one statement with text parameters. Returns the result (the caller
 * clears it), or NULL with the reason in v->err (and v->lost set when the
 * connection is gone). */
static PGresult *vq(vctx_t *v, const char *sql, int n, const char *const *params)
{
	PGresult *r = PQexecParams(v->pg, sql, n, NULL, params, NULL, NULL, 0);
	ExecStatusType s = PQresultStatus(r);
	if (s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK)
		return r;
	const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	if (!msg || !*msg)
		msg = r && *PQresultErrorMessage(r) ? PQresultErrorMessage(r) : PQerrorMessage(v->pg);
	snprintf(v->err, sizeof v->err, "%s", msg && *msg ? msg : "unknown error");
	v->err[strcspn(v->err, "\n")] = '\0';
	PQclear(r);
	if (PQstatus(v->pg) != CONNECTION_OK)
		v->lost = true;
	return NULL;
}

/* Runs a parameterless command and discards its result. 0 or -1. */
static int vcmd(vctx_t *v, const char *sql)
{
	PGresult *r = vq(v, sql, 0, NULL);
	if (!r)
		return -1;
	PQclear(r);
	return 0;
}

/* The next row at or after `from` whose column c0 is s0 and (when c1 >= 0)
 * column c1 is s1; -1 when none. */
static int find_row(const PGresult *r, int from, int c0, const char *s0, int c1, const char *s1)
{
	for (int i = from; r && i < PQntuples(r); i++)
		if (strcmp(PQgetvalue(r, i, c0), s0) == 0 && (c1 < 0 || strcmp(PQgetvalue(r, i, c1), s1) == 0))
			return i;
	return -1;
}

static bool has_table(const vctx_t *v, const char *table)
{
	return find_row(v->tables, 0, 0, table, -1, NULL) >= 0;
}

/* Is item one of the comma-separated names of list? */
static bool list_has(const char *list, const char *item)
{
	size_t n = strlen(item);
	for (const char *p = list; p && *p;) {
		size_t len = strcspn(p, ",");
		if (len == n && strncmp(p, item, n) == 0)
			return true;
		p += len + (p[len] == ',');
	}
	return false;
}

/* Appends "; " (when not first) and formatted text to a list of problems. */
static void add_problem(nb_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add_problem(nb_buf_t *b, const char *fmt, ...)
{
	va_list ap;
	if (b->len)
		nb_buf_puts(b, "; ");
	va_start(ap, fmt);
	nb_buf_vprintf(b, fmt, ap);
	va_end(ap);
}

static int load_catalog(vctx_t *v)
{
	if (!(v->tables = vq(v, q_tables, 0, NULL)) || !(v->cols = vq(v, q_columns, 0, NULL)) ||
	    !(v->fks = vq(v, q_fks, 0, NULL)) || !(v->idx = vq(v, q_indexes, 0, NULL)) ||
	    !(v->cks = vq(v, q_checks, 0, NULL)))
		return -1;
	return 0;
}

/* ---- tables and columns -------------------------------------------------- */

/* A key column: id, any *_id, or a column of a foreign key. */
static bool is_key_column(const vctx_t *v, const char *table, const char *col)
{
	size_t n = strlen(col);
	if (strcmp(col, "id") == 0 || (n > 3 && strcmp(col + n - 3, "_id") == 0))
		return true;
	for (int i = find_row(v->fks, 0, FK_TABLE, table, -1, NULL); i >= 0;
	     i = find_row(v->fks, i + 1, FK_TABLE, table, -1, NULL))
		if (list_has(PQgetvalue(v->fks, i, FK_COLS), col))
			return true;
	return false;
}

static void check_uuid_keys(vctx_t *v, const char *table)
{
	nb_buf_t bad = NB_BUF_INIT, good = NB_BUF_INIT;
	for (int i = find_row(v->cols, 0, COL_TABLE, table, -1, NULL); i >= 0;
	     i = find_row(v->cols, i + 1, COL_TABLE, table, -1, NULL)) {
		const char *col = PQgetvalue(v->cols, i, COL_NAME), *type = PQgetvalue(v->cols, i, COL_TYPE);
		if (!is_key_column(v, table, col))
			continue;
		if (strcmp(type, "uuid") == 0)
			nb_buf_printf(&good, "%s%s", good.len ? ", " : "", col);
		else
			add_problem(&bad, "%s.%s is %s, not uuid", table, col, type);
	}
	if (bad.len)
		report(v, false, "uuid keys of %s: %s", table, bad.data);
	else
		report(v, good.len > 0, "uuid keys of %s: %s", table, good.len ? good.data : "no id column");
	nb_buf_dispose(&bad);
	nb_buf_dispose(&good);
}

static void check_primary_key(vctx_t *v, const char *table)
{
	int i = find_row(v->idx, 0, IX_TABLE, table, IX_PRIMARY, "t");
	if (i < 0)
		report(v, false, "primary key of %s: none", table);
	else if (strcmp(PQgetvalue(v->idx, i, IX_KEYS), "id") != 0)
		report(v, false, "primary key of %s: (%s), want (id)", table, PQgetvalue(v->idx, i, IX_KEYS));
	else
		report(v, true, "primary key of %s: (id) by %s", table, PQgetvalue(v->idx, i, IX_NAME));
}

static void check_timestamps(vctx_t *v, const char *table)
{
	static const char *const names[] = {"created_at", "updated_at", "deleted_at"};
	nb_buf_t bad = NB_BUF_INIT;
	for (int k = 0; k < 3; k++) {
		int i = find_row(v->cols, 0, COL_TABLE, table, COL_NAME, names[k]);
		if (i < 0) {
			add_problem(&bad, "no %s column", names[k]);
			continue;
		}
		const char *type = PQgetvalue(v->cols, i, COL_TYPE);
		bool notnull = PQgetvalue(v->cols, i, COL_NOTNULL)[0] == 't';
		if (strcmp(type, "timestamp with time zone") != 0)
			add_problem(&bad, "%s is %s, not timestamptz", names[k], type);
		else if (k < 2 && !notnull)
			add_problem(&bad, "%s may be NULL", names[k]);
		else if (k == 2 && notnull)
			add_problem(&bad, "deleted_at is NOT NULL, so no row can be live");
	}
	report(v, bad.len == 0,
	       "timestamps of %s: created_at, updated_at timestamptz NOT NULL, deleted_at timestamptz%s%s", table,
	       bad.len ? ": " : "", bad.len ? bad.data : "");
	nb_buf_dispose(&bad);
}

static void check_tables(vctx_t *v)
{
	for (size_t t = 0; t < N_TABLES; t++) {
		const char *table = k_tables[t];
		if (!has_table(v, table)) {
			report(v, false, "table %s: missing", table);
			continue;
		}
		report(v, true, "table %s exists", table);
		check_primary_key(v, table);
		check_uuid_keys(v, table);
		check_timestamps(v, table);
	}
}

static void check_uuid_size(vctx_t *v)
{
	PGresult *r = vq(v,
			 "SELECT (SELECT typlen FROM pg_type WHERE oid = 'uuid'::regtype),"
			 " pg_column_size(gen_random_uuid())",
			 0, NULL);
	if (!r) {
		report(v, false, "uuid size: %s", v->err);
		return;
	}
	const char *typlen = PQgetvalue(r, 0, 0), *size = PQgetvalue(r, 0, 1);
	report(v, strcmp(typlen, "16") == 0 && strcmp(size, "16") == 0,
	       "uuid is 16 bytes on disk (pg_type.typlen %s, pg_column_size %s)", typlen, size);
	PQclear(r);
}

/* ---- foreign keys ---------------------------------------------------------- */

static const char *deltype_name(char c)
{
	switch (c) {
	case 'c':
		return "CASCADE";
	case 'r':
		return "RESTRICT";
	case 'n':
		return "SET NULL";
	case 'd':
		return "SET DEFAULT";
	default:
		return "NO ACTION";
	}
}

/* Every foreign key found, expected or not: cascades, and has its index. */
static void check_fk_rows(vctx_t *v)
{
	for (int i = 0; i < PQntuples(v->fks); i++) {
		const char *table = PQgetvalue(v->fks, i, FK_TABLE), *cols = PQgetvalue(v->fks, i, FK_COLS);
		const char *ref = PQgetvalue(v->fks, i, FK_REF);
		char del = PQgetvalue(v->fks, i, FK_DELTYPE)[0];
		report(v, del == 'c', "foreign key %s(%s) → %s: ON DELETE %s%s", table, cols, ref, deltype_name(del),
		       del == 'c' ? "" : ", want CASCADE");
		if (!PQgetisnull(v->fks, i, FK_INDEX))
			report(v, true, "foreign key %s(%s): indexed by %s", table, cols,
			       PQgetvalue(v->fks, i, FK_INDEX));
		else
			report(v, false,
			       "foreign key %s(%s): no index (non-partial) leads with (%s), so a delete from %s "
			       "scans %s",
			       table, cols, cols, ref, table);
	}
}

static void check_fks_expected(vctx_t *v)
{
	nb_buf_t missing = NB_BUF_INIT;
	size_t n = sizeof k_fks / sizeof k_fks[0];
	for (size_t k = 0; k < n; k++) {
		const fk_spec_t *f = &k_fks[k];
		int i = find_row(v->fks, 0, FK_TABLE, f->table, FK_COLS, f->column);
		for (; i >= 0; i = find_row(v->fks, i + 1, FK_TABLE, f->table, FK_COLS, f->column))
			if (strcmp(PQgetvalue(v->fks, i, FK_REF), f->ref) == 0)
				break;
		if (i < 0)
			add_problem(&missing, "%s(%s) → %s", f->table, f->column, f->ref);
	}
	if (missing.len)
		report(v, false, "foreign keys of the schema: missing %s", missing.data);
	else
		report(v, true, "foreign keys of the schema: all %zu present", n);
	nb_buf_dispose(&missing);
}

/* ---- indexes and CHECK constraints ----------------------------------------- */

static bool index_matches(const PGresult *r, int i, const idx_spec_t *s)
{
	const char *keys = PQgetvalue(r, i, IX_KEYS), *pred = PQgetvalue(r, i, IX_PRED);
	size_t n = strlen(s->keys);
	if (strcmp(PQgetvalue(r, i, IX_AM), s->am) != 0)
		return false;
	if (s->unique && PQgetvalue(r, i, IX_UNIQUE)[0] != 't')
		return false;
	/* the expected keys must lead: "a, b" matches "a, b" and "a, b, c", not "a, bc" */
	if (strncmp(keys, s->keys, n) != 0 || (keys[n] != '\0' && keys[n] != ','))
		return false;
	for (int k = 0; k < 2; k++)
		if (s->pred[k] && !strstr(pred, s->pred[k]))
			return false;
	return true;
}

static void describe_index(nb_buf_t *b, const idx_spec_t *s)
{
	nb_buf_printf(b, "%s%s (%s)", s->unique ? "unique " : "", s->table, s->keys);
	if (strcmp(s->am, "btree") != 0)
		nb_buf_printf(b, " using %s", s->am);
	if (s->where) {
		nb_buf_printf(b, " where %s", s->where); /* a description for the report, not SQL */
		return;
	}
	for (int k = 0; k < 2; k++)
		if (s->pred[k])
			nb_buf_printf(b, "%s%s", k ? " and " : " where ", s->pred[k]);
}

static void check_indexes(vctx_t *v)
{
	nb_buf_t d = NB_BUF_INIT;
	for (size_t k = 0; k < sizeof k_indexes / sizeof k_indexes[0]; k++) {
		const idx_spec_t *s = &k_indexes[k];
		int i = find_row(v->idx, 0, IX_TABLE, s->table, -1, NULL);
		for (; i >= 0; i = find_row(v->idx, i + 1, IX_TABLE, s->table, -1, NULL))
			if (index_matches(v->idx, i, s))
				break;
		nb_buf_reset(&d);
		describe_index(&d, s);
		if (i >= 0)
			report(v, true, "index %s → %s", d.data, PQgetvalue(v->idx, i, IX_NAME));
		else
			report(v, false, "index %s: missing (the migration creates it as %s)", d.data, s->name);
	}
	nb_buf_dispose(&d);
}

static bool check_names_all(const char *def, const enum_spec_t *e)
{
	char quoted[64];
	for (int k = 0; e->values[k]; k++) {
		snprintf(quoted, sizeof quoted, "'%s'", e->values[k]);
		if (!strstr(def, quoted))
			return false;
	}
	return true;
}

static void check_enums(vctx_t *v)
{
	nb_buf_t vals = NB_BUF_INIT;
	for (size_t k = 0; k < sizeof k_enums / sizeof k_enums[0]; k++) {
		const enum_spec_t *e = &k_enums[k];
		int i = find_row(v->cks, 0, CK_TABLE, e->table, CK_COLUMN, e->column);
		for (; i >= 0; i = find_row(v->cks, i + 1, CK_TABLE, e->table, CK_COLUMN, e->column))
			if (check_names_all(PQgetvalue(v->cks, i, CK_DEF), e))
				break;
		nb_buf_reset(&vals);
		for (int j = 0; e->values[j]; j++)
			nb_buf_printf(&vals, "%s%s", j ? ", " : "", e->values[j]);
		if (i >= 0)
			report(v, true, "check %s.%s IN (%s)", e->table, e->column, vals.data);
		else
			report(v, false, "check %s.%s IN (%s): no CHECK constraint on %s.%s names every value",
			       e->table, e->column, vals.data, e->table, e->column);
	}
	nb_buf_dispose(&vals);
}

static void check_migrations(vctx_t *v)
{
	int applied = 0, latest = nb_migrate_latest();
	char err[256];
	if (nb_migrate_current(v->pg, &applied, err, sizeof err) < 0) {
		if (PQstatus(v->pg) != CONNECTION_OK) {
			v->lost = true;
			snprintf(v->err, sizeof v->err, "%s", err);
		}
		report(v, false, "migrations: could not read schema_migrations: %s", err);
	} else if (applied == latest) {
		report(v, true, "migrations: database at version %d, the latest this binary knows", applied);
	} else if (applied < latest) {
		report(v, false,
		       "migrations: database at version %d, this binary's latest is %d (run `notebookd migrate`)",
		       applied, latest);
	} else {
		report(v, false, "migrations: database at version %d, newer than this binary's latest (%d)", applied,
		       latest);
	}
}

/* ---- plans ----------------------------------------------------------------- */

/*
 * Sample rows, each statement with $1 = the run's salt; U(n) is user n's id
 * md5(salt || 'u' || n)::uuid, N(n) notebook n's, and so on. The data is
 * skewed on purpose: U(0) owns 2,000 notebooks, N(0) holds 1,000 sources,
 * S(0) 2,000 chunks, V(0) 2,000 messages and (U(0), N(0)) 1,000
 * conversations; every other key has a handful of rows. The ordered queries
 * are explained for those heavy keys, because that is where reading an index
 * in order matters: for ten rows a bitmap scan and a sort are as good, and
 * the planner rightly prefers them. One job in 1,000 is pending.
 */
#define ID(letter, n) "md5($1::text || '" letter "' || (" n "))::uuid"
#define OWNER(n) "CASE WHEN " n " < 2000 THEN 0 ELSE " n " % 2000 END" /* the owner of notebook n */

typedef struct load_step {
	const char *table;
	long rows;
	const char *sql;
} load_step_t;

/* clang-format off */
static const load_step_t k_load[] = {
	{"users", 2000,
	 "INSERT INTO users (id, email, password_hash)"
	 " SELECT " ID("u", "g") ", 'nbv-' || $1::text || '-' || g || '@verify.invalid', 'x'"
	 " FROM generate_series(0, 1999) g"},
	{"notebooks", 20000,
	 "INSERT INTO notebooks (id, owner_id, title, created_at)"
	 " SELECT " ID("n", "g") ", " ID("u", OWNER("g")) ", 'notebook ' || g, now() - g * interval '1 second'"
	 " FROM generate_series(0, 19999) g"},
	{"documents", 20000,
	 "INSERT INTO documents (id, user_id, sha256, mime_type, byte_size, content, created_at)"
	 " SELECT " ID("d", "g") ", " ID("u", "g % 2000") ", sha256(convert_to($1::text || 'd' || g, 'UTF8')),"
	 " 'text/plain', 0, ''::bytea, now() - g * interval '1 second'"
	 " FROM generate_series(0, 19999) g"},
	{"sources", 20000,
	 "INSERT INTO sources (id, notebook_id, document_id, title, kind, status, chunk_count, created_at)"
	 " SELECT " ID("s", "g") ", " ID("n", "CASE WHEN g < 1000 THEN 0 ELSE g % 5000 END") ", " ID("d", "g")
	 ", 'source ' || g, 'text', 'ready', 5, now() - g * interval '1 second'"
	 " FROM generate_series(0, 19999) g"},
	{"chunks", 100000,
	 "INSERT INTO chunks (id, source_id, notebook_id, chunk_index, text, char_start, char_end, token_count)"
	 " SELECT " ID("c", "g") ", " ID("s", "s") ", " ID("n", "CASE WHEN s < 1000 THEN 0 ELSE s % 5000 END")
	 ", i, 'sample chunk ' || g || ' about ' || (ARRAY['photosynthesis', 'mitochondria', 'glaciers',"
	 " 'volcanoes', 'tides', 'orbits', 'enzymes', 'proteins'])[g % 8 + 1], 0, 64, 6"
	 " FROM (SELECT g, CASE WHEN g < 2000 THEN 0 ELSE 1 + (g - 2000) % 19999 END AS s,"
	 "       CASE WHEN g < 2000 THEN g ELSE (g - 2000) / 19999 END AS i"
	 "       FROM generate_series(0, 99999) g) x"},
	{"jobs", 20000,
	 "INSERT INTO jobs (id, user_id, kind, status, attempts, run_at, finished_at)"
	 " SELECT " ID("j", "g") ", " ID("u", "g % 2000") ", 'noop',"
	 " CASE WHEN g % 1000 = 0 THEN 'pending' ELSE 'succeeded' END, 1, now() - g * interval '1 second',"
	 " CASE WHEN g % 1000 = 0 THEN NULL ELSE now() END"
	 " FROM generate_series(0, 19999) g"},
	{"conversations", 10000,
	 "INSERT INTO conversations (id, user_id, notebook_id, title, last_message_at)"
	 " SELECT " ID("v", "g") ", " ID("u", OWNER("n")) ", " ID("n", "n") ", 'conversation ' || g,"
	 " now() - g * interval '1 second'"
	 " FROM (SELECT g, CASE WHEN g < 1000 THEN 0 ELSE 2000 + g % 3000 END AS n"
	 "       FROM generate_series(0, 9999) g) x"},
	{"messages", 50000,
	 "INSERT INTO messages (id, conversation_id, role, content, created_at)"
	 " SELECT " ID("m", "g") ", " ID("v", "CASE WHEN g < 2000 THEN 0 ELSE 1 + g % 9999 END")
	 ", CASE WHEN g % 2 = 0 THEN 'user' ELSE 'assistant' END, 'message ' || g,"
	 " now() + g * interval '1 millisecond'"
	 " FROM generate_series(0, 49999) g"},
};
/* clang-format on */

#define EXPLAIN "EXPLAIN (FORMAT JSON) "
/* Finds sample row n by its id, whatever the id column's type (a verify of a
 * schema whose ids are not uuid still explains its plans). */
#define PICK(letter, n) "id::text = (" ID(letter, n) ")::text"

/*
 * A critical query: `pick` reads its parameter values from the sample rows
 * ($1 = salt; NULL when it takes none); `ordered` means its index must
 * deliver the rows in order (a Sort node fails it); `want` names the index
 * the schema gives it, for the report.
 */
typedef struct plan_spec {
	const char *what, *table, *want;
	bool ordered;
	int nparams;
	const char *pick, *sql;
} plan_spec_t;

/* clang-format off */
static const plan_spec_t k_plans[] = {
	{"notebooks of an owner", "notebooks", "notebooks_owner_live_idx", true, 1,
	 "SELECT owner_id FROM notebooks WHERE " PICK("n", "0"),
	 EXPLAIN "SELECT id, title, created_at FROM notebooks WHERE owner_id = $1 AND deleted_at IS NULL"
		 " ORDER BY created_at DESC, id DESC LIMIT 21"},
	/* the fair claim of store/jobs.c: its window reads jobs_claim_idx in order; only the window is sorted */
	{"job claim", "jobs", "jobs_claim_idx", false, 0, NULL,
	 EXPLAIN "WITH c AS (SELECT id, user_id, run_at, row_number() OVER (PARTITION BY user_id ORDER BY run_at, id)"
		 " AS rn, count(*) OVER (PARTITION BY user_id) AS backlog FROM (SELECT id, user_id, run_at FROM jobs WHERE status IN ('pending', 'failed')"
		 " AND run_at <= now() AND deleted_at IS NULL AND kind = ANY ('{noop}'::text[]) ORDER BY run_at LIMIT 64) w),"
		 " u AS (SELECT x.user_id, count(*) AS busy FROM jobs x WHERE x.status = 'running'"
		 " AND (SELECT count(DISTINCT user_id) FROM c) > 1 GROUP BY x.user_id),"
		 " r AS (SELECT c.id, c.run_at, c.rn + coalesce(u.busy, 0) AS turn, c.backlog FROM c"
		 " LEFT JOIN u ON u.user_id = c.user_id ORDER BY turn, backlog, run_at, id)"
		 " SELECT l.id FROM r CROSS JOIN LATERAL (SELECT j.id FROM jobs j WHERE j.id = r.id"
		 " AND j.status IN ('pending', 'failed') AND j.deleted_at IS NULL FOR UPDATE SKIP LOCKED) l LIMIT 16"},
	{"chunks of a source", "chunks", "chunks_source_live_idx", true, 1,
	 "SELECT source_id FROM chunks WHERE " PICK("c", "0"),
	 EXPLAIN "SELECT id, chunk_index, text FROM chunks WHERE source_id = $1 AND deleted_at IS NULL"
		 " ORDER BY chunk_index LIMIT 50"},
	{"conversations of a user's notebook", "conversations", "conversations_user_notebook_live_idx", true, 2,
	 "SELECT user_id, notebook_id FROM conversations WHERE " PICK("v", "0"),
	 EXPLAIN "SELECT id, title FROM conversations WHERE user_id = $1 AND notebook_id = $2"
		 " AND deleted_at IS NULL ORDER BY coalesce(last_message_at, created_at) DESC, id DESC LIMIT 21"},
	{"messages of a conversation", "messages", "messages_conversation_live_idx", true, 1,
	 "SELECT conversation_id FROM messages WHERE " PICK("m", "0"),
	 EXPLAIN "SELECT id, role, content FROM messages WHERE conversation_id = $1 AND deleted_at IS NULL"
		 " ORDER BY created_at, id LIMIT 50"},
	{"document by hash", "documents", "documents_user_sha256_key", false, 2,
	 "SELECT user_id, sha256 FROM documents WHERE " PICK("d", "7"),
	 EXPLAIN "SELECT id FROM documents WHERE user_id = $1 AND sha256 = $2 AND deleted_at IS NULL"},
	{"user by email", "users", "users_email_live_key", false, 1,
	 "SELECT upper(email) FROM users WHERE " PICK("u", "7"),
	 EXPLAIN "SELECT id, password_hash FROM users WHERE lower(email) = lower($1) AND deleted_at IS NULL"},
	{"sources of a notebook", "sources", "sources_notebook_live_idx", true, 1,
	 "SELECT notebook_id FROM sources WHERE " PICK("s", "0"),
	 EXPLAIN "SELECT id, title FROM sources WHERE notebook_id = $1 AND deleted_at IS NULL"
		 " ORDER BY created_at, id LIMIT 51"},
	{"full-text search of a notebook", "chunks", "chunks_notebook_tsv_idx", false, 2,
	 "SELECT notebook_id, split_part(text, ' ', 5) FROM chunks WHERE " PICK("c", "0"),
	 EXPLAIN "SELECT id FROM chunks WHERE notebook_id = $1"
		 " AND tsv @@ websearch_to_tsquery('english', $2) AND deleted_at IS NULL"},
};
/* clang-format on */

typedef struct plan_walk {
	const char *table;
	bool seq, sort;
	nb_buf_t shape; /* every node, "Limit > Index Scan on t using i" */
	nb_buf_t used;	/* the index nodes, "Index Scan using i" */
} plan_walk_t;

static void walk_plan(const json_t *node, plan_walk_t *w)
{
	const char *type = json_string_value(json_object_get(node, "Node Type"));
	const char *rel = json_string_value(json_object_get(node, "Relation Name"));
	const char *index = json_string_value(json_object_get(node, "Index Name"));
	if (!type)
		return;
	if (strcmp(type, "Seq Scan") == 0 && rel && strcmp(rel, w->table) == 0)
		w->seq = true;
	if (strstr(type, "Sort"))
		w->sort = true;
	nb_buf_printf(&w->shape, "%s%s", w->shape.len ? " > " : "", type);
	if (rel)
		nb_buf_printf(&w->shape, " on %s", rel);
	if (index) {
		nb_buf_printf(&w->shape, " using %s", index);
		nb_buf_printf(&w->used, "%s%s using %s", w->used.len ? ", " : "", type, index);
	}
	const json_t *kids = json_object_get(node, "Plans");
	size_t i;
	const json_t *kid;
	json_array_foreach(kids, i, kid) walk_plan(kid, w);
}

/* Judges one EXPLAIN (FORMAT JSON) output and reports it. */
static void judge_plan(vctx_t *v, const plan_spec_t *p, const char *text)
{
	json_error_t jerr;
	json_t *root = json_loads(text, 0, &jerr);
	const json_t *plan = json_object_get(json_array_get(root, 0), "Plan");
	plan_walk_t w = {p->table, false, false, NB_BUF_INIT, NB_BUF_INIT};
	if (!plan) {
		report(v, false, "plan: %s: cannot read the EXPLAIN output: %s", p->what, root ? "no Plan" : jerr.text);
		json_decref(root);
		return;
	}
	walk_plan(plan, &w);
	if (w.seq)
		report(v, false, "plan: %s → %s: scans %s sequentially (%s serves this query)", p->what, w.shape.data,
		       p->table, p->want);
	else if (p->ordered && w.sort)
		report(v, false, "plan: %s → %s: sorts instead of reading an index in order (%s serves this query)",
		       p->what, w.shape.data, p->want);
	else if (!w.used.len)
		report(v, false, "plan: %s → %s: uses no index (%s serves this query)", p->what, w.shape.data, p->want);
	else
		report(v, true, "plan: %s → %s", p->what, w.used.data);
	nb_buf_dispose(&w.shape);
	nb_buf_dispose(&w.used);
	json_decref(root);
}

/* Picks the parameters from the sample rows, EXPLAINs, judges. Inside a
 * savepoint, so that one failing query does not abort the others. */
static void explain_one(vctx_t *v, const plan_spec_t *p, const char *salt)
{
	const char *params[2] = {NULL, NULL}, *stage = "set a savepoint";
	PGresult *pick = NULL, *plan = NULL;
	if (vcmd(v, "SAVEPOINT nb_verify_plan") < 0)
		goto fail;
	stage = "pick its parameters";
	if (p->pick) {
		pick = vq(v, p->pick, 1, &salt);
		if (!pick)
			goto fail;
		if (PQntuples(pick) != 1) {
			snprintf(v->err, sizeof v->err, "no sample row to take its parameters from");
			goto fail;
		}
		for (int k = 0; k < p->nparams; k++)
			params[k] = PQgetvalue(pick, 0, k);
	}
	stage = "EXPLAIN";
	if (!(plan = vq(v, p->sql, p->nparams, params)))
		goto fail;
	judge_plan(v, p, PQgetvalue(plan, 0, 0));
	PQclear(plan);
	PQclear(pick);
	vcmd(v, "RELEASE SAVEPOINT nb_verify_plan");
	return;
fail:
	report(v, false, "plan: %s: could not %s: %s", p->what, stage, v->err);
	PQclear(pick);
	if (!v->lost)
		vcmd(v, "ROLLBACK TO SAVEPOINT nb_verify_plan");
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Loads the sample rows and ANALYZEs them; reports one line. 0 or -1. */
static int load_samples(vctx_t *v, const char *salt)
{
	struct timespec t0;
	long rows = 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (size_t k = 0; k < sizeof k_load / sizeof k_load[0]; k++) {
		PGresult *r = vq(v, k_load[k].sql, 1, &salt);
		if (!r) {
			report(v, false, "plans: could not load sample rows into %s: %s", k_load[k].table, v->err);
			return -1;
		}
		PQclear(r);
		rows += k_load[k].rows;
	}
	if (vcmd(v, "ANALYZE users, notebooks, documents, sources, chunks, jobs, conversations, messages") < 0) {
		report(v, false, "plans: could not ANALYZE the sample rows: %s", v->err);
		return -1;
	}
	report(v, true,
	       "plans: loaded and analyzed %ld sample rows in %.1f s (in a transaction rolled back at the end)", rows,
	       seconds_since(&t0));
	return 0;
}

static void check_plans(vctx_t *v)
{
	nb_buf_t missing = NB_BUF_INIT;
	for (size_t t = 0; t < N_TABLES; t++)
		if (!has_table(v, k_tables[t]))
			add_problem(&missing, "%s", k_tables[t]);
	if (missing.len) {
		report(v, false, "plans: skipped, tables missing: %s", missing.data);
		nb_buf_dispose(&missing);
		return;
	}
	if (vcmd(v, "BEGIN") < 0) {
		report(v, false, "plans: could not begin a transaction: %s", v->err);
		return;
	}
	PGresult *s = vq(v, "SELECT gen_random_uuid()::text", 0, NULL);
	if (!s)
		report(v, false, "plans: could not make a salt: %s", v->err);
	else if (load_samples(v, PQgetvalue(s, 0, 0)) == 0)
		for (size_t k = 0; k < sizeof k_plans / sizeof k_plans[0] && !v->lost; k++)
			explain_one(v, &k_plans[k], PQgetvalue(s, 0, 0));
	PQclear(s);
	if (!v->lost && vcmd(v, "ROLLBACK") < 0)
		report(v, false, "plans: could not roll the sample rows back: %s", v->err);
}

/* ---- entry point ------------------------------------------------------------ */

static void dispose(vctx_t *v)
{
	PQclear(v->tables);
	PQclear(v->cols);
	PQclear(v->fks);
	PQclear(v->idx);
	PQclear(v->cks);
}

int nb_verify_run(PGconn *pg, FILE *out, bool color)
{
	vctx_t v = {.pg = pg, .out = out, .color = color};
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (!pg || PQstatus(pg) != CONNECTION_OK) {
		const char *why = pg ? PQerrorMessage(pg) : "no connection";
		fprintf(out, "verify: cannot run: %.*s\n", (int)strcspn(why, "\n"), why);
		return -1;
	}
	if (PQtransactionStatus(pg) != PQTRANS_IDLE) {
		/* the plan checks end in ROLLBACK, which would undo the caller's work */
		fprintf(out, "verify: cannot run inside a transaction\n");
		return -1;
	}
	if (load_catalog(&v) < 0) {
		fprintf(out, "verify: could not read the catalog: %s\n", v.err);
		dispose(&v);
		return -1;
	}
	check_tables(&v);
	check_uuid_size(&v);
	check_fk_rows(&v);
	check_fks_expected(&v);
	check_indexes(&v);
	check_enums(&v);
	if (!v.lost)
		check_migrations(&v);
	if (!v.lost)
		check_plans(&v);
	dispose(&v);
	if (v.lost) {
		fprintf(out, "verify: connection lost: %s\n", v.err);
		return -1;
	}
	fprintf(out, "verify: %d checks, %d passed, %d failed (%.1f s)\n", v.checks, v.checks - v.failed, v.failed,
		seconds_since(&t0));
	return v.failed;
}
