/*
 * verify.h — `notebookd verify`: checks a live database against DESIGN.md §3.
 *
 * The checks read the catalogs of the current schema (tables, column types,
 * primary keys, foreign keys and the indexes behind them, the critical-path
 * indexes by definition, enum CHECK constraints, the migration version) and
 * then prove the query plans: inside one transaction that is always rolled
 * back, they load a few hundred thousand sample rows, ANALYZE, and EXPLAIN
 * each critical query with real parameter values, failing any plan that scans
 * its table sequentially or sorts what its index should deliver in order.
 */
#ifndef NB_DB_VERIFY_H
#define NB_DB_VERIFY_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>

/**
 * Verifies the database behind pg (an idle connection, outside a transaction;
 * the caller keeps ownership) and writes a report to out: one line per check,
 * "✓ description" or "✗ description: what is wrong", then the summary line
 * "verify: N checks, N passed, N failed (T s)". With color the marks are
 * green and red (ANSI escapes).
 *
 * The sample rows of the plan checks are rolled back, so the data is left as
 * it was (dead tuples remain for VACUUM to reclaim, as after any aborted
 * transaction). Missing tables are reported as failures, not errors; the plan
 * checks are then skipped with a failing line saying why.
 *
 * Returns the number of failed checks (0 when all passed), or -1 when it could
 * not run at all: no connection, a connection inside a transaction (the final
 * ROLLBACK would undo the caller's work), or a connection lost on the way. The
 * reason is then written to out instead of the summary line.
 */
int nb_verify_run(PGconn *pg, FILE *out, bool color);

#endif
