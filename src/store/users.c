/*
 * users.c — SQL of accounts, refresh tokens and one-time codes (see users.h).
 *
 * Rows come back as JSON built by PostgreSQL (json_build_object with nb_ts
 * timestamps) so that the API's shapes are defined in one place per
 * aggregate. Races are settled by the statements themselves: a refresh token
 * is spent by a conditional UPDATE that only one caller can win, and an OTP
 * attempt is counted by an UPDATE that locks the code's row.
 */
#include "store/users.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/uuid.h"
#include "db/db.h"
#include "store/usercache.h"

#define USER_JSON                                                                                        \
	"json_build_object('id', u.id, 'email', u.email, 'pending_email', u.pending_email,"              \
	" 'display_name', u.display_name,"                                                               \
	" 'email_verified_at', nb_ts(u.email_verified_at), 'created_at', nb_ts(u.created_at),"          \
	" 'updated_at', nb_ts(u.updated_at))"

NB_STMT(st_user_create, "INSERT INTO users AS u (id, email, password_hash, display_name)"
			" VALUES ($1, $2, $3, $4) RETURNING u.id, u.password_hash, " USER_JSON);
NB_STMT(st_user_by_email, "SELECT u.id, u.password_hash, " USER_JSON
			  " FROM users u WHERE lower(u.email) = lower($1) AND u.deleted_at IS NULL");
NB_STMT(st_user_by_id, "SELECT u.id, u.password_hash, " USER_JSON
		       " FROM users u WHERE u.id = $1 AND u.deleted_at IS NULL");
NB_STMT(st_user_exists, "SELECT 1 FROM users WHERE id = $1 AND deleted_at IS NULL");
NB_STMT(st_email_taken, "SELECT 1 FROM users WHERE lower(email) = lower($1) AND deleted_at IS NULL"
			" AND id IS DISTINCT FROM $2::uuid");
/* A new email only becomes pending; the account's own address clears a pending one. */
NB_STMT(st_user_update,
	"UPDATE users AS u SET"
	" display_name = CASE WHEN $2 THEN $3 ELSE u.display_name END,"
	" pending_email = CASE WHEN $4::text IS NULL THEN u.pending_email"
	"                      WHEN lower($4::text) = lower(u.email) THEN NULL ELSE $4::text END"
	" WHERE u.id = $1 AND u.deleted_at IS NULL RETURNING u.id, u.password_hash, " USER_JSON);
NB_STMT(st_user_confirm_email,
	"UPDATE users AS u SET email = u.pending_email, pending_email = NULL, email_verified_at = now()"
	" WHERE u.id = $1 AND u.deleted_at IS NULL AND u.pending_email IS NOT NULL"
	" RETURNING u.id, u.password_hash, " USER_JSON);
NB_STMT(st_user_set_password, "UPDATE users SET password_hash = $2 WHERE id = $1 AND deleted_at IS NULL");
NB_STMT(st_user_verified, "UPDATE users SET email_verified_at = coalesce(email_verified_at, now())"
			  " WHERE id = $1 AND deleted_at IS NULL");
/* The NOTIFY is delivered at commit, to every server's user cache (usercache.h). */
NB_STMT(st_user_erase, "WITH d AS (DELETE FROM users WHERE id = $1 RETURNING id)"
		       " SELECT pg_notify('" NB_USERCACHE_CHANNEL "', d.id::text) FROM d");

NB_STMT(st_refresh_create,
	"INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at)"
	" VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))");
/* Spend and succeed in one statement: the UPDATE's row lock makes one caller win. */
NB_STMT(st_refresh_rotate,
	"WITH old AS ("
	"  UPDATE refresh_tokens SET revoked_at = now(), replaced_by = $2"
	"  WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > now() AND deleted_at IS NULL"
	"  AND family_issued_at + make_interval(secs => $5) > now()"
	"  RETURNING user_id, family_id, family_issued_at)"
	" INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, family_issued_at, expires_at)"
	" SELECT $2, old.user_id, old.family_id, $3, old.family_issued_at,"
	"        least(now() + make_interval(secs => $4), old.family_issued_at + make_interval(secs => $5))"
	" FROM old RETURNING user_id");
NB_STMT(st_refresh_spent, "SELECT family_id FROM refresh_tokens WHERE token_hash = $1 AND replaced_by IS NOT NULL");
NB_STMT(st_refresh_revoke_family_of,
	"UPDATE refresh_tokens SET revoked_at = now() WHERE revoked_at IS NULL"
	" AND family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)");
NB_STMT(st_refresh_revoke_family,
	"UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL");
NB_STMT(st_refresh_revoke_user,
	"UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL");

NB_STMT(st_otp_supersede, "UPDATE otps SET consumed_at = now()"
			  " WHERE user_id = $1 AND purpose = $2 AND consumed_at IS NULL AND deleted_at IS NULL");
NB_STMT(st_otp_create, "INSERT INTO otps (id, user_id, purpose, code_hash, expires_at)"
		       " VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))");
NB_STMT(st_otp_attempt,
	"UPDATE otps SET attempts = attempts + 1"
	" WHERE id = (SELECT id FROM otps WHERE user_id = $1 AND purpose = $2 AND consumed_at IS NULL"
	"             AND deleted_at IS NULL ORDER BY created_at DESC LIMIT 1)"
	" AND attempts < $3 AND expires_at > now()"
	" RETURNING id, code_hash");
/* The same by email, in one statement: an unknown account costs the same round trip as a known one. */
NB_STMT(st_otp_attempt_email,
	"UPDATE otps SET attempts = attempts + 1"
	" WHERE id = (SELECT o.id FROM users u JOIN otps o ON o.user_id = u.id"
	"             WHERE lower(u.email) = lower($1) AND u.deleted_at IS NULL AND o.purpose = $2"
	"             AND o.consumed_at IS NULL AND o.deleted_at IS NULL ORDER BY o.created_at DESC LIMIT 1)"
	" AND attempts < $3 AND expires_at > now()"
	" RETURNING id, code_hash, user_id");
NB_STMT(st_otp_async_commit, "SELECT set_config('synchronous_commit', 'off', true)");
NB_STMT(st_otp_consume, "UPDATE otps SET consumed_at = now() WHERE id = $1 AND consumed_at IS NULL RETURNING id");

void nb_user_row_dispose(nb_user_row_t *row)
{
	if (!row)
		return;
	if (row->json)
		json_decref(row->json);
	row->json = NULL;
}

/* Fills out from a (id, password_hash, json) row. */
static int read_user(PGresult *r, nb_user_row_t *out)
{
	if (PQntuples(r) == 0)
		return NB_ENOTFOUND;
	if (!out)
		return 0;
	snprintf(out->id, sizeof out->id, "%s", PQgetvalue(r, 0, 0));
	snprintf(out->password_hash, sizeof out->password_hash, "%s", PQgetvalue(r, 0, 1));
	out->json = json_loads(PQgetvalue(r, 0, 2), 0, NULL);
	return out->json ? 0 : NB_EINTERNAL;
}

static int user_query(nb_conn_t *c, nb_stmt_t *st, const nb_params_t *p, nb_user_row_t *out)
{
	PGresult *r = NULL;
	int rc = nb_db_exec(c, st, p, &r);
	if (rc < 0)
		return nb_db_unique_violation() ? NB_ECONFLICT : rc;
	rc = read_user(r, out);
	PQclear(r);
	return rc;
}

int nb_store_user_create(nb_conn_t *c, const char *id, const char *email, const char *password_hash,
			 const char *display_name, nb_user_row_t *out)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, id);
	nb_p_text(&p, email);
	nb_p_text(&p, password_hash);
	nb_p_text(&p, display_name);
	return user_query(c, &st_user_create, &p, out);
}

int nb_store_user_by_email(nb_conn_t *c, const char *email, nb_user_row_t *out)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, email);
	return user_query(c, &st_user_by_email, &p, out);
}

int nb_store_user_by_id(nb_conn_t *c, const char *id, nb_user_row_t *out)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, id);
	return user_query(c, &st_user_by_id, &p, out);
}

int nb_store_user_exists(nb_conn_t *c, const char *id)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, id);
	PGresult *r = NULL;
	int rc = nb_db_exec(c, &st_user_exists, &p, &r);
	if (rc < 0)
		return rc;
	rc = PQntuples(r) > 0;
	PQclear(r);
	return rc;
}

int nb_store_user_update(nb_conn_t *c, const char *id, bool set_name, const char *display_name, const char *email,
			 nb_user_row_t *out)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, id);
	nb_p_bool(&p, set_name);
	nb_p_text(&p, display_name);
	nb_p_text(&p, email);
	return user_query(c, &st_user_update, &p, out);
}

int nb_store_user_email_taken(nb_conn_t *c, const char *email, const char *except_id)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, email);
	nb_p_text(&p, except_id);
	PGresult *r = NULL;
	int rc = nb_db_exec(c, &st_email_taken, &p, &r);
	if (rc < 0)
		return rc;
	rc = PQntuples(r) > 0;
	PQclear(r);
	return rc;
}

int nb_store_user_confirm_email(nb_conn_t *c, const char *id, nb_user_row_t *out)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, id);
	return user_query(c, &st_user_confirm_email, &p, out);
}

static int exec_count(nb_conn_t *c, nb_stmt_t *st, const nb_params_t *p, int *count)
{
	PGresult *r = NULL;
	int rc = nb_db_exec(c, st, p, &r);
	if (rc < 0)
		return rc;
	if (count)
		*count = PQntuples(r) > 0 ? PQntuples(r) : atoi(PQcmdTuples(r));
	PQclear(r);
	return 0;
}

static int one_id(nb_conn_t *c, nb_stmt_t *st, const char *id, bool must_hit)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, id);
	int n = 0;
	int rc = exec_count(c, st, &p, &n);
	if (rc < 0)
		return rc;
	return must_hit && n == 0 ? NB_ENOTFOUND : 0;
}

int nb_store_user_set_password(nb_conn_t *c, const char *id, const char *password_hash)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, id);
	nb_p_text(&p, password_hash);
	int n = 0;
	int rc = exec_count(c, &st_user_set_password, &p, &n);
	return rc < 0 ? rc : (n ? 0 : NB_ENOTFOUND);
}

int nb_store_user_mark_verified(nb_conn_t *c, const char *id)
{
	return one_id(c, &st_user_verified, id, true);
}

int nb_store_user_erase(nb_conn_t *c, const char *id)
{
	int rc = one_id(c, &st_user_erase, id, true);
	nb_usercache_drop(id); /* this server at once; the others on the NOTIFY */
	return rc;
}

int nb_store_refresh_create(nb_conn_t *c, const char *user_id, const unsigned char hash[32], int ttl_s)
{
	char id[37], family[37];
	nb_uuid_v7_str(id);
	nb_uuid_v7_str(family);
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, id);
	nb_p_text(&p, user_id);
	nb_p_text(&p, family);
	nb_p_bytes(&p, hash, 32);
	nb_p_int(&p, ttl_s);
	return nb_db_exec(c, &st_refresh_create, &p, NULL);
}

/* The token was not spendable: if it was spent before, this is reuse — revoke its family. */
static int punish_reuse(nb_conn_t *c, const unsigned char hash[32])
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_bytes(&p, hash, 32);
	PGresult *r = NULL;
	int rc = nb_db_exec(c, &st_refresh_spent, &p, &r);
	if (rc < 0)
		return rc;
	if (PQntuples(r) > 0) {
		nb_params_t q;
		nb_params_init(&q);
		nb_p_text(&q, PQgetvalue(r, 0, 0));
		rc = nb_db_exec(c, &st_refresh_revoke_family, &q, NULL);
	}
	PQclear(r);
	return rc < 0 ? rc : NB_EUNAUTH;
}

int nb_store_refresh_rotate(nb_conn_t *c, const unsigned char old_hash[32], const unsigned char new_hash[32],
			    int ttl_s, int absolute_ttl_s, char user_id[37])
{
	char new_id[37];
	nb_uuid_v7_str(new_id);
	nb_params_t p;
	nb_params_init(&p);
	nb_p_bytes(&p, old_hash, 32);
	nb_p_text(&p, new_id);
	nb_p_bytes(&p, new_hash, 32);
	nb_p_int(&p, ttl_s);
	nb_p_int(&p, absolute_ttl_s);
	PGresult *r = NULL;
	int rc = nb_db_exec(c, &st_refresh_rotate, &p, &r);
	if (rc < 0)
		return rc;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return punish_reuse(c, old_hash);
	}
	snprintf(user_id, 37, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return 0;
}

int nb_store_refresh_revoke_family(nb_conn_t *c, const unsigned char hash[32])
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_bytes(&p, hash, 32);
	return nb_db_exec(c, &st_refresh_revoke_family_of, &p, NULL);
}

int nb_store_refresh_revoke_user(nb_conn_t *c, const char *user_id)
{
	return one_id(c, &st_refresh_revoke_user, user_id, false);
}

int nb_store_otp_create(nb_conn_t *c, const char *otp_id, const char *user_id, const char *purpose,
			const unsigned char code_hash[32], int ttl_s)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, user_id);
	nb_p_text(&p, purpose);
	int rc = nb_db_exec(c, &st_otp_supersede, &p, NULL);
	if (rc < 0)
		return rc;
	nb_params_init(&p);
	nb_p_text(&p, otp_id);
	nb_p_text(&p, user_id);
	nb_p_text(&p, purpose);
	nb_p_bytes(&p, code_hash, 32);
	nb_p_int(&p, ttl_s);
	return nb_db_exec(c, &st_otp_create, &p, NULL);
}

/* Reads (id, code_hash[, user_id]) of an attempt's row. */
static int read_attempt(PGresult *r, char otp_id[37], unsigned char code_hash[32], char *user_id)
{
	if (PQntuples(r) == 0)
		return NB_EUNAUTH;
	snprintf(otp_id, 37, "%s", PQgetvalue(r, 0, 0));
	if (user_id)
		snprintf(user_id, 37, "%s", PQgetvalue(r, 0, 2));
	size_t n = 0;
	unsigned char *h = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 1), &n);
	int rc = h && n == 32 ? 0 : NB_EINTERNAL;
	if (rc == 0)
		memcpy(code_hash, h, 32);
	PQfreemem(h);
	return rc;
}

int nb_store_otp_attempt(nb_conn_t *c, const char *user_id, const char *purpose, int max_attempts,
			 char otp_id[37], unsigned char code_hash[32])
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, user_id);
	nb_p_text(&p, purpose);
	nb_p_int(&p, max_attempts);
	PGresult *r = NULL;
	int rc = nb_db_exec(c, &st_otp_attempt, &p, &r);
	if (rc < 0)
		return rc;
	rc = read_attempt(r, otp_id, code_hash, NULL);
	PQclear(r);
	return rc;
}

int nb_store_otp_attempt_by_email(nb_conn_t *c, const char *email, const char *purpose, int max_attempts,
				  char user_id[37], char otp_id[37], unsigned char code_hash[32])
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, email);
	nb_p_text(&p, purpose);
	nb_p_int(&p, max_attempts);
	PGresult *r = NULL;
	int rc = nb_db_exec(c, &st_otp_attempt_email, &p, &r);
	if (rc < 0)
		return rc;
	rc = read_attempt(r, otp_id, code_hash, user_id);
	PQclear(r);
	return rc;
}

int nb_store_txn_async_commit(nb_conn_t *c)
{
	return nb_db_exec(c, &st_otp_async_commit, NULL, NULL);
}

int nb_store_otp_consume(nb_conn_t *c, const char *otp_id)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, otp_id);
	int n = 0;
	int rc = exec_count(c, &st_otp_consume, &p, &n);
	return rc < 0 ? rc : (n ? 0 : NB_EUNAUTH);
}
