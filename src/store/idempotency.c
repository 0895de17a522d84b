/*
 * idempotency.c — Idempotency-Key records (see idempotency.h).
 *
 * The claim is one INSERT … ON CONFLICT: a fresh key inserts, a key past the
 * window is taken over in place (DO UPDATE … WHERE older), a live key
 * returns nothing — after waiting, if another transaction holds that row,
 * for it to end. Only then is the live row read.
 */
#include "store/idempotency.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "db/db.h"

#define WINDOW NB_IDEM_WINDOW_SQL

NB_STMT(st_claim, "INSERT INTO idempotency_keys (user_id, key, fingerprint) VALUES ($1, $2, $3)"
		  " ON CONFLICT (user_id, key) DO UPDATE SET fingerprint = excluded.fingerprint, status = NULL,"
		  "  content_type = NULL, body = NULL, created_at = now()"
		  " WHERE idempotency_keys.created_at < now() - " WINDOW " RETURNING 1");
NB_STMT(st_get, "SELECT fingerprint = $3, coalesce(status, 0), content_type, body FROM idempotency_keys"
		" WHERE user_id = $1 AND key = $2");
NB_STMT(st_complete, "UPDATE idempotency_keys SET status = $3, content_type = $4, body = $5"
		     " WHERE user_id = $1 AND key = $2");
NB_STMT(st_forget, "DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2");

int nb_store_idem_claim(nb_conn_t *c, const char *user_id, const char *key, const unsigned char fp[32],
			nb_idem_row_t *row)
{
	memset(row, 0, sizeof *row);
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, user_id);
	nb_p_text(&p, key);
	nb_p_bytes(&p, fp, 32);
	PGresult *r = NULL;
	int rc = nb_db_exec(c, &st_claim, &p, &r);
	if (rc < 0)
		return rc;
	int claimed = PQntuples(r) == 1;
	PQclear(r);
	if (claimed)
		return 1;
	r = NULL;
	if ((rc = nb_db_exec(c, &st_get, &p, &r)) < 0)
		return rc;
	if (PQntuples(r) != 1) { /* deleted meanwhile: cannot happen inside the claim's wait, but be safe */
		PQclear(r);
		return NB_ECONFLICT;
	}
	row->same_request = nb_db_get_bool(r, 0, 0);
	row->status = (int)nb_db_get_int(r, 0, 1);
	if (!PQgetisnull(r, 0, 2))
		row->content_type = nb_xstrdup(nb_db_get(r, 0, 2));
	if (!PQgetisnull(r, 0, 3)) {
		row->body_len = (size_t)PQgetlength(r, 0, 3);
		row->body = nb_xmalloc(row->body_len + 1);
		memcpy(row->body, PQgetvalue(r, 0, 3), row->body_len + 1);
	}
	PQclear(r);
	return 0;
}

int nb_store_idem_complete(nb_conn_t *c, const char *user_id, const char *key, int status, const char *content_type,
			   const char *body)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, user_id);
	nb_p_text(&p, key);
	nb_p_int(&p, status);
	nb_p_text(&p, content_type);
	nb_p_text(&p, body ? body : "");
	return nb_db_exec(c, &st_complete, &p, NULL);
}

int nb_store_idem_forget(nb_conn_t *c, const char *user_id, const char *key)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, user_id);
	nb_p_text(&p, key);
	return nb_db_exec(c, &st_forget, &p, NULL);
}

void nb_store_idem_dispose(nb_idem_row_t *row)
{
	free(row->content_type);
	free(row->body);
	row->content_type = row->body = NULL;
}
