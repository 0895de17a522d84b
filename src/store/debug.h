/*
 * debug.h — statements used only by the debug routes (tests, benchmarks).
 */
#ifndef NB_STORE_DEBUG_H
#define NB_STORE_DEBUG_H

#include "db/pool.h"

/** Makes the database wait ms milliseconds (pg_sleep). 0 or a negative nb_err_t. */
int nb_store_debug_sleep(nb_conn_t *c, int ms);

#endif
