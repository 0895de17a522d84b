/*
 * migrate.h — versioned migrations compiled into the binary.
 *
 * `nb_migrate_run` takes a session advisory lock (so two processes migrating
 * at once apply each migration exactly once), creates the schema_migrations
 * table if needed, and applies the pending migrations in version order, each
 * in its own transaction together with its record. Running it twice is a
 * no-op. A recorded migration whose checksum no longer matches the compiled
 * file is reported as an error (the file was edited after being applied).
 */
#ifndef NB_DB_MIGRATE_H
#define NB_DB_MIGRATE_H

#include <libpq-fe.h>
#include <stddef.h>

/** The newest compiled migration version. */
int nb_migrate_latest(void);
/**
 * Applies pending migrations on pg. Returns the number applied (>= 0), or -1
 * with a one-line reason in err.
 */
int nb_migrate_run(PGconn *pg, char *err, size_t errlen);
/**
 * Reads the newest applied version into *applied (0 when none or when the
 * table does not exist). Returns 0, or -1 with a reason in err.
 */
int nb_migrate_current(PGconn *pg, int *applied, char *err, size_t errlen);

#include "db/pool.h"

/**
 * The newest applied version over a pooled connection, with a prepared
 * statement (the query /readyz runs). 0 or a negative nb_err_t.
 */
int nb_migrate_current_conn(nb_conn_t *c, int *applied);

#endif
