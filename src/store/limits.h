/*
 * limits.h — the shared token buckets of the rate limits (API-wide and door)
 * (table rate_buckets, sql/migrations/0007_limits.sql).
 *
 * Design: one statement per sync adds a batch of local spending to the
 * deployment's buckets (refilling each at cap per minute first) and returns
 * their balances; the caller (the rate-limit engine, src/auth/ratelimit.c)
 * runs it from its one sync thread, never on a request's path.
 */
#ifndef NB_STORE_LIMITS_H
#define NB_STORE_LIMITS_H

#include <stdint.h>

#include "db/pool.h"

/**
 * Adds spent[i] tokens to the spending of bucket keys[i] (capacity caps[i],
 * refilled at caps[i] per minute), creating missing buckets full; the
 * spending of a key given twice is added up. On success fills tokens_out[i]
 * with each bucket's balance after the batch (may be negative: debt) and
 * returns 0; otherwise a negative nb_err_t. n <= 0 does nothing.
 */
int nb_store_limits_sync(nb_conn_t *c, int n, const int64_t *keys, const double *spent, const double *caps,
			 double *tokens_out);

/** Deletes buckets untouched for idle_s seconds; returns how many, or a negative nb_err_t. */
int nb_store_limits_purge(nb_conn_t *c, int idle_s);

#endif
