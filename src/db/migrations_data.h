/*
 * migrations_data.h — the SQL migrations compiled into the binary.
 *
 * tools/embed_sql.sh generates build/gen/migrations.c from
 * sql/migrations/NNNN_name.sql, in version order.
 */
#ifndef NB_DB_MIGRATIONS_DATA_H
#define NB_DB_MIGRATIONS_DATA_H

typedef struct nb_migration {
	int version;      /* the file's leading number */
	const char *name; /* the rest of the file name */
	const char *sql;  /* the whole file */
} nb_migration_t;

/** The migrations, ordered by version. */
extern const nb_migration_t nb_migrations[];
/** How many entries nb_migrations holds. */
extern const int nb_migrations_count;

#endif
