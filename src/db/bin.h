/*
 * bin.h — reading columns of a result in binary format (nb_db_exec_binary):
 * integers are big-endian, uuid is 16 bytes, timestamptz is an int8 of
 * microseconds since 2000-01-01 UTC, text is its bytes. Used by the hot
 * paths that write JSON from rows in C (core/jsonw.h).
 */
#ifndef NB_DB_BIN_H
#define NB_DB_BIN_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

/** Microseconds from 1970-01-01 to 2000-01-01 (PostgreSQL's epoch). */
#define NB_PG_EPOCH_US INT64_C(946684800000000)

/** True when the value is SQL NULL. */
static inline bool nb_bin_null(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col);
}

/** A big-endian integer column of 2, 4 or 8 bytes (0 for NULL). */
static inline int64_t nb_bin_int(const PGresult *r, int row, int col)
{
	const unsigned char *p = (const unsigned char *)PQgetvalue(r, row, col);
	int n = PQgetlength(r, row, col);
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	if (n == 2)
		return (int16_t)v;
	if (n == 4)
		return (int32_t)v;
	return n == 8 ? (int64_t)v : 0;
}

/** A timestamptz column as microseconds since 1970 UTC. */
static inline int64_t nb_bin_ts(const PGresult *r, int row, int col)
{
	return nb_bin_int(r, row, col) + NB_PG_EPOCH_US;
}

/** A uuid column's 16 bytes (NULL for SQL NULL or a wrong length). */
static inline const unsigned char *nb_bin_uuid(const PGresult *r, int row, int col)
{
	if (PQgetisnull(r, row, col) || PQgetlength(r, row, col) != 16)
		return NULL;
	return (const unsigned char *)PQgetvalue(r, row, col);
}

#endif
