/*
 * idempotency.h — the statements of Idempotency-Key records (table
 * idempotency_keys, sql/migrations/0007_limits.sql).
 *
 * Design: every call runs on the caller's connection inside the transaction
 * that makes the request's effect (src/api/idempotency.c opens it), so the
 * record and the effect commit or vanish together. Claiming inserts the row
 * first: a second request with the same key waits on the first's row lock
 * until that transaction ends, then sees its committed answer.
 */
#ifndef NB_STORE_IDEMPOTENCY_H
#define NB_STORE_IDEMPOTENCY_H

#include <stdbool.h>
#include <stddef.h>

#include "db/pool.h"

/** How long a key is remembered, as SQL (the claim and the scheduled retention). */
#define NB_IDEM_WINDOW_SQL "interval '24 hours'"

/** A stored answer. Strings are malloc'd; free with nb_store_idem_dispose. */
typedef struct nb_idem_row {
	bool same_request; /* the stored fingerprint is this request's */
	int status;        /* 0 when no answer was recorded */
	char *content_type;
	char *body;
	size_t body_len;
} nb_idem_row_t;

/**
 * Claims (user, key) with the request's fingerprint: inserts the row, or
 * takes over one older than the window. Returns 1 when claimed, 0 when a
 * live row exists (then fills *row), or a negative nb_err_t.
 */
int nb_store_idem_claim(nb_conn_t *c, const char *user_id, const char *key, const unsigned char fp[32],
			nb_idem_row_t *row);

/**
 * Records the answer of a claimed key; body is a JSON or text answer,
 * NUL-terminated with no NUL inside (NULL: empty). 0 or a negative nb_err_t.
 */
int nb_store_idem_complete(nb_conn_t *c, const char *user_id, const char *key, int status, const char *content_type,
			   const char *body);

/** Drops a claimed key (the request failed: a retry runs it again). 0 or a negative nb_err_t. */
int nb_store_idem_forget(nb_conn_t *c, const char *user_id, const char *key);

/* Keys past the window are deleted by the retention (store/retention.c, NB_RET_IDEMPOTENCY_KEYS). */

/** Frees the strings of a row. Accepts a zeroed row. */
void nb_store_idem_dispose(nb_idem_row_t *row);

#endif
