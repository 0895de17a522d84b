/*
 * migrate.c — applies the compiled migrations (see migrate.h).
 *
 * Migration files may hold many statements, so they run through the simple
 * query protocol (PQexec); they are our own compiled-in files, never input.
 */
#include "db/migrate.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "db/db.h"
#include "db/migrations_data.h"

/* "notebookd" as a 64-bit advisory-lock key. */
#define MIGRATE_LOCK_KEY "7236814672361520913"

static const char create_table_sql[] =
	"CREATE TABLE IF NOT EXISTS schema_migrations ("
	" version integer PRIMARY KEY,"
	" name text NOT NULL,"
	" checksum text NOT NULL,"
	" applied_at timestamptz NOT NULL DEFAULT now())";

int nb_migrate_latest(void)
{
	return nb_migrations_count ? nb_migrations[nb_migrations_count - 1].version : 0;
}

static void checksum(const char *sql, char out[65])
{
	unsigned char h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(h, (const unsigned char *)sql, strlen(sql));
	sodium_bin2hex(out, 65, h, sizeof h);
}

static int run(PGconn *pg, const char *sql, char *err, size_t errlen)
{
	PGresult *r = PQexec(pg, sql);
	ExecStatusType s = PQresultStatus(r);
	if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "%s", PQresultErrorMessage(r));
		err[strcspn(err, "\n")] = '\0';
		PQclear(r);
		return -1;
	}
	PQclear(r);
	return 0;
}

/* Is version v recorded? Checks its checksum when it is. 1 yes, 0 no, -1 error. */
static int applied(PGconn *pg, const nb_migration_t *m, char *err, size_t errlen)
{
	char v[16], sum[65];
	snprintf(v, sizeof v, "%d", m->version);
	const char *params[] = {v};
	PGresult *r = PQexecParams(pg, "SELECT checksum FROM schema_migrations WHERE version = $1", 1, NULL,
				   params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "%s", PQresultErrorMessage(r));
		err[strcspn(err, "\n")] = '\0';
		PQclear(r);
		return -1;
	}
	int found = PQntuples(r) > 0;
	if (found) {
		checksum(m->sql, sum);
		if (strcmp(PQgetvalue(r, 0, 0), sum) != 0)
			nb_warn("migration %04d_%s was changed after it was applied (checksum differs)", m->version,
				m->name);
	}
	PQclear(r);
	return found;
}

static int apply(PGconn *pg, const nb_migration_t *m, char *err, size_t errlen)
{
	char v[16], sum[65], e2[256];
	snprintf(v, sizeof v, "%d", m->version);
	checksum(m->sql, sum);
	if (run(pg, "BEGIN", err, errlen) < 0)
		return -1;
	if (run(pg, m->sql, e2, sizeof e2) < 0) {
		snprintf(err, errlen, "migration %04d_%s failed: %s", m->version, m->name, e2);
		run(pg, "ROLLBACK", e2, sizeof e2);
		return -1;
	}
	const char *params[] = {v, m->name, sum};
	PGresult *r = PQexecParams(pg, "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
				   3, NULL, params, NULL, NULL, 0);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok) {
		snprintf(err, errlen, "%s", PQresultErrorMessage(r));
		err[strcspn(err, "\n")] = '\0';
	}
	PQclear(r);
	if (!ok) {
		run(pg, "ROLLBACK", e2, sizeof e2);
		return -1;
	}
	return run(pg, "COMMIT", err, errlen);
}

int nb_migrate_run(PGconn *pg, char *err, size_t errlen)
{
	char e2[256];
	if (run(pg, "SET client_min_messages = warning", err, errlen) < 0)
		return -1;
	if (run(pg, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", err, errlen) < 0)
		return -1;
	int count = 0;
	if (run(pg, create_table_sql, err, errlen) < 0) {
		count = -1;
		goto unlock;
	}
	for (int i = 0; i < nb_migrations_count; i++) {
		const nb_migration_t *m = &nb_migrations[i];
		int a = applied(pg, m, err, errlen);
		if (a < 0) {
			count = -1;
			break;
		}
		if (a)
			continue;
		if (apply(pg, m, err, errlen) < 0) {
			count = -1;
			break;
		}
		nb_info("applied migration %04d_%s", m->version, m->name);
		count++;
	}
unlock:
	run(pg, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")", e2, sizeof e2);
	return count;
}

int nb_migrate_current(PGconn *pg, int *out, char *err, size_t errlen)
{
	*out = 0;
	PGresult *r = PQexec(pg, "SELECT coalesce(max(version), 0) FROM schema_migrations");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		int missing = state && strcmp(state, "42P01") == 0; /* undefined_table */
		if (!missing) {
			snprintf(err, errlen, "%s", PQresultErrorMessage(r));
			err[strcspn(err, "\n")] = '\0';
		}
		PQclear(r);
		return missing ? 0 : -1;
	}
	*out = atoi(PQgetvalue(r, 0, 0));
	PQclear(r);
	return 0;
}

NB_STMT(st_current_version, "SELECT coalesce(max(version), 0) FROM schema_migrations");

int nb_migrate_current_conn(nb_conn_t *c, int *out)
{
	PGresult *r = NULL;
	*out = 0;
	int rc = nb_db_exec(c, &st_current_version, NULL, &r);
	if (rc < 0)
		return rc;
	*out = (int)nb_db_get_int(r, 0, 0);
	PQclear(r);
	return 0;
}
