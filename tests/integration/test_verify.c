/*
 * test_verify.c — integration tests of `notebookd verify` (src/db/verify.c).
 *
 * The tests make scratch databases on the cluster of NB_TEST_ADMIN_URL
 * (nbv_<random>), migrate them, break properties of DESIGN.md §3 with DDL,
 * run nb_verify_run into a memory stream and read the report. Four tests share
 * one database broken five ways (one verify run, which loads 242,000 sample
 * rows, instead of four). Every database is dropped when its test ends.
 */
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db/migrate.h"
#include "db/verify.h"
#include "t.h"

static const char *admin_url;
static PGconn *admin;

typedef struct scratch {
	char name[32];
	PGconn *pg;
} scratch_t;

/* Runs SQL on a connection; true when it succeeded. */
static bool sql_ok(PGconn *pg, const char *sql)
{
	PGresult *r = PQexec(pg, sql);
	ExecStatusType s = PQresultStatus(r);
	bool ok = s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
	if (!ok)
		fprintf(stdout, "#   sql failed: %s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
	return ok;
}

/* The first value of a one-row query as a long, or -1. */
static long sql_long(PGconn *pg, const char *sql)
{
	PGresult *r = PQexec(pg, sql);
	long v = -1;
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return v;
}

static PGconn *connect_db(const char *dbname)
{
	const char *keys[] = {"dbname", "dbname", NULL};
	const char *vals[] = {admin_url, dbname, NULL};
	PGconn *pg = PQconnectdbParams(keys, vals, 1);
	if (PQstatus(pg) != CONNECTION_OK) {
		fprintf(stdout, "#   could not connect to %s: %s", dbname, PQerrorMessage(pg));
		PQfinish(pg);
		return NULL;
	}
	return pg;
}

/* Creates a scratch database, migrated unless `empty`. false on failure. */
static bool scratch_open(scratch_t *s, bool empty)
{
	char sql[96], err[256];
	unsigned r = (unsigned)random();
	snprintf(s->name, sizeof s->name, "nbv_%08x", r);
	snprintf(sql, sizeof sql, "CREATE DATABASE %s", s->name);
	s->pg = NULL;
	if (!sql_ok(admin, sql) || !(s->pg = connect_db(s->name)))
		return false;
	if (!empty && nb_migrate_run(s->pg, err, sizeof err) < 0) {
		fprintf(stdout, "#   migrate failed: %s\n", err);
		return false;
	}
	return true;
}

static void scratch_close(scratch_t *s)
{
	char sql[96];
	PQfinish(s->pg);
	s->pg = NULL;
	if (!s->name[0])
		return;
	snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", s->name);
	sql_ok(admin, sql);
}

/* Runs verify; returns its result and hands the report to *report (freed by
 * the caller). */
static int run_verify(PGconn *pg, char **report)
{
	size_t len = 0;
	FILE *f = open_memstream(report, &len);
	int rc = nb_verify_run(pg, f, false);
	fclose(f);
	const char *summary = strstr(*report, "verify: ");
	fprintf(stdout, "#   %.*s\n", summary ? (int)strcspn(summary, "\n") : 0, summary ? summary : "");
	return rc;
}

/* Does some line of the report start with `mark` and contain w1 and w2
 * (each skipped when NULL)? */
static bool has_line(const char *report, const char *mark, const char *w1, const char *w2)
{
	for (const char *p = report; p && *p;) {
		size_t n = strcspn(p, "\n");
		char *line = strndup(p, n);
		bool ok =
		    strncmp(line, mark, strlen(mark)) == 0 && (!w1 || strstr(line, w1)) && (!w2 || strstr(line, w2));
		free(line);
		if (ok)
			return true;
		p += n + (p[n] == '\n');
	}
	return false;
}

/* Counts the lines starting with mark. */
static int count_lines(const char *report, const char *mark)
{
	int n = 0;
	for (const char *p = report; p && *p;) {
		size_t len = strcspn(p, "\n");
		if (strncmp(p, mark, strlen(mark)) == 0)
			n++;
		p += len + (p[len] == '\n');
	}
	return n;
}

/* Prints the failing lines, to explain a failed test. */
static void show_failures(const char *report)
{
	for (const char *p = report; p && *p;) {
		size_t n = strcspn(p, "\n");
		if (strncmp(p, "✗", strlen("✗")) == 0)
			fprintf(stdout, "#   %.*s\n", (int)n, p);
		p += n + (p[n] == '\n');
	}
}

static long live_rows(PGconn *pg)
{
	return sql_long(pg, "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM notebooks)"
			    " + (SELECT count(*) FROM sources) + (SELECT count(*) FROM chunks)"
			    " + (SELECT count(*) FROM documents) + (SELECT count(*) FROM jobs)"
			    " + (SELECT count(*) FROM conversations) + (SELECT count(*) FROM messages)");
}

/* (a) + (f): a freshly migrated database passes every check, and verify
 * leaves no rows behind. */
static void test_fresh_database_passes(void)
{
	scratch_t s = {{0}, NULL};
	char *report = NULL;
	CHECK(scratch_open(&s, false));
	CHECK_INT(live_rows(s.pg), 0);
	int rc = run_verify(s.pg, &report);
	CHECK_INT(rc, 0);
	CHECK_INT(count_lines(report, "✗"), 0);
	int good = count_lines(report, "✓ "), lines = count_lines(report, "");
	CHECK(good > 50);
	CHECK_INT(lines, good + 1); /* every line a ✓ but the summary */
	CHECK(has_line(report, "verify: ", " checks, ", " 0 failed"));
	CHECK(has_line(report, "✓ plan: notebooks of an owner", "using notebooks_owner_live_idx", NULL));
	CHECK(has_line(report, "✓ plan: job claim", "using jobs_claim_idx", NULL));
	CHECK(has_line(report, "✓ table generation_history exists", NULL, NULL));
	CHECK(has_line(report, "✓ uuid is 16 bytes", NULL, NULL));
	CHECK_INT(live_rows(s.pg), 0);
	CHECK_INT(sql_long(s.pg, "SELECT count(*) FROM notebooks"), 0);
	if (rc != 0)
		show_failures(report);
	free(report);
	scratch_close(&s);
}

/* (b) the critical notebooks index: both its index check and its plan fail. */
static void test_dropped_critical_index_fails(void)
{
	scratch_t s = {{0}, NULL};
	char *report = NULL;
	CHECK(scratch_open(&s, false));
	CHECK(sql_ok(s.pg, "DROP INDEX notebooks_owner_live_idx"));
	int rc = run_verify(s.pg, &report);
	CHECK(rc >= 2);
	CHECK(has_line(report, "✗ index notebooks (owner_id, created_at DESC)", "notebooks_owner_live_idx", NULL));
	CHECK(has_line(report, "✗ plan: notebooks of an owner", "notebooks_owner_live_idx", NULL));
	CHECK(has_line(report, "✓ plan: job claim", NULL, NULL));
	CHECK_INT(live_rows(s.pg), 0);
	free(report);
	scratch_close(&s);
}

/*
 * (c), (d), (e) and more share one database broken five ways and one verify
 * run (each run loads 242,000 sample rows; one run instead of four keeps the
 * suite fast). Each test asserts its own line; the last asserts that exactly
 * those five checks failed.
 */
/* clang-format off */
static const char *const k_breakages[] = {
	"ALTER TABLE messages ALTER COLUMN id TYPE varchar(36)",
	"ALTER TABLE messages DROP CONSTRAINT messages_conversation_id_fkey",
	"ALTER TABLE messages ADD CONSTRAINT messages_conversation_id_fkey"
	" FOREIGN KEY (conversation_id) REFERENCES conversations (id)",
	"DROP INDEX messages_conversation_id_idx",
	"ALTER TABLE jobs DROP CONSTRAINT jobs_source_id_fkey",
	"ALTER TABLE sources DROP CONSTRAINT sources_kind_check",
};
/* clang-format on */
static char *broken_report;
static int broken_rc = -2;

static const char *broken(void)
{
	scratch_t s = {{0}, NULL};
	if (broken_report)
		return broken_report;
	bool ok = scratch_open(&s, false);
	for (size_t i = 0; ok && i < sizeof k_breakages / sizeof k_breakages[0]; i++)
		ok = sql_ok(s.pg, k_breakages[i]);
	if (ok)
		broken_rc = run_verify(s.pg, &broken_report);
	scratch_close(&s);
	return broken_report ? broken_report : "";
}

/* (c) an id column that is not uuid. */
static void test_varchar_id_fails(void)
{
	const char *report = broken();
	CHECK(has_line(report, "✗ uuid keys of messages", "messages.id is character varying(36)", NULL));
	CHECK(has_line(report, "✓ uuid keys of notebooks", NULL, NULL));
}

/* (d) a foreign key without ON DELETE CASCADE. */
static void test_fk_without_cascade_fails(void)
{
	const char *report = broken();
	CHECK(has_line(report, "✗ foreign key messages(conversation_id) → conversations", "NO ACTION", "CASCADE"));
	CHECK(has_line(report, "✓ foreign key notebooks(owner_id) → users: ON DELETE CASCADE", NULL, NULL));
}

/* (e) a foreign key without its index (the partial live index does not count). */
static void test_dropped_fk_index_fails(void)
{
	const char *report = broken();
	CHECK(has_line(report, "✗ foreign key messages(conversation_id):", "no index", NULL));
	CHECK(has_line(report, "✓ foreign key notebooks(owner_id): indexed by notebooks_owner_id_idx", NULL, NULL));
}

/* A dropped foreign key is missing from the schema's list; a dropped enum
 * CHECK is missing too. */
static void test_dropped_fk_and_check_fail(void)
{
	const char *report = broken();
	CHECK(has_line(report, "✗ foreign keys of the schema", "jobs(source_id) → sources", NULL));
	CHECK(has_line(report, "✗ check sources.kind", NULL, NULL));
	CHECK(has_line(report, "✓ check sources.status", NULL, NULL));
}

/* Exactly the five broken properties fail, nothing else (the plans pass). */
static void test_broken_fails_exactly_those(void)
{
	const char *report = broken();
	CHECK_INT(broken_rc, 5);
	CHECK_INT(count_lines(report, "✗"), 5);
	CHECK(has_line(report, "✓ plan: messages of a conversation", NULL, NULL));
	if (broken_rc != 5)
		show_failures(report);
}

/* Missing tables: reported, plans skipped, no crash; an empty database is
 * also behind on migrations. */
static void test_missing_tables_reported(void)
{
	scratch_t s = {{0}, NULL};
	char *report = NULL;
	CHECK(scratch_open(&s, true));
	int rc = run_verify(s.pg, &report);
	CHECK(rc >= 15);
	CHECK(has_line(report, "✗ table users: missing", NULL, NULL));
	CHECK(has_line(report, "✗ plans: skipped, tables missing", "users", NULL));
	CHECK(has_line(report, "✗ migrations", "version 0", NULL));
	CHECK(has_line(report, "verify: ", " failed", NULL));
	free(report);
	scratch_close(&s);
}

/* A connection that dies is -1, not a report of failures. */
static void test_lost_connection(void)
{
	scratch_t s = {{0}, NULL};
	char *report = NULL;
	CHECK(scratch_open(&s, false));
	char sql[96];
	snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)", PQbackendPID(s.pg));
	CHECK(sql_ok(admin, sql));
	int rc = run_verify(s.pg, &report);
	CHECK_INT(rc, -1);
	CHECK(has_line(report, "verify: ", NULL, NULL));
	free(report);
	scratch_close(&s);
}

/* Inside the caller's transaction verify refuses, and leaves it open. */
static void test_refuses_inside_transaction(void)
{
	scratch_t s = {{0}, NULL};
	char *report = NULL;
	CHECK(scratch_open(&s, false));
	CHECK(sql_ok(s.pg, "BEGIN"));
	CHECK_INT(run_verify(s.pg, &report), -1);
	CHECK(has_line(report, "verify: cannot run inside a transaction", NULL, NULL));
	CHECK_INT(PQtransactionStatus(s.pg), PQTRANS_INTRANS);
	CHECK(sql_ok(s.pg, "ROLLBACK"));
	free(report);
	scratch_close(&s);
}

int main(void)
{
	admin_url = getenv("NB_TEST_ADMIN_URL");
	if (!admin_url || !*admin_url) {
		t_skip("test_verify", "NB_TEST_ADMIN_URL is not set (scripts/test.sh sets it)");
		return t_done();
	}
	admin = PQconnectdb(admin_url);
	if (PQstatus(admin) != CONNECTION_OK) {
		fprintf(stdout, "not ok - connect admin: %s", PQerrorMessage(admin));
		PQfinish(admin);
		return 1;
	}
	sql_ok(admin, "SET client_min_messages = warning");
	srandom((unsigned)PQbackendPID(admin) ^ (unsigned)time(NULL));
	T_RUN(test_fresh_database_passes);
	T_RUN(test_dropped_critical_index_fails);
	T_RUN(test_varchar_id_fails);
	T_RUN(test_fk_without_cascade_fails);
	T_RUN(test_dropped_fk_index_fails);
	T_RUN(test_dropped_fk_and_check_fail);
	T_RUN(test_broken_fails_exactly_those);
	T_RUN(test_missing_tables_reported);
	T_RUN(test_lost_connection);
	T_RUN(test_refuses_inside_transaction);
	free(broken_report);
	PQfinish(admin);
	return t_done();
}
