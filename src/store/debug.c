/*
 * debug.c — a statement that holds a connection for a while, so tests can
 * show that a handler waiting on PostgreSQL does not stall other requests,
 * and exercise deadlines and graceful shutdown.
 */
#include "store/debug.h"

#include "db/db.h"

NB_STMT_SLOW(st_sleep, "SELECT pg_sleep($1::float8 / 1000)");

int nb_store_debug_sleep(nb_conn_t *c, int ms)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_int(&p, ms);
	return nb_db_exec(c, &st_sleep, &p, NULL);
}
