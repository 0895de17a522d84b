/*
 * service.h — the authentication service: the signing key, token pairs,
 * bearer-token checks and the rate limits on the door.
 *
 * The API handlers (src/api/auth.c, me.c) orchestrate; this module owns the
 * secrets and the rules: access tokens are HS256 JWTs checked by
 * auth/jwt.c, refresh tokens are random and stored hashed, the door limits
 * are kept in memory and shared with the other servers through PostgreSQL
 * every NOTEBOOKD_RATE_SYNC_MS (auth/ratelimit.h).
 */
#ifndef NB_AUTH_SERVICE_H
#define NB_AUTH_SERVICE_H

#include <jansson.h>
#include <stddef.h>

#include "db/pool.h"
#include "store/users.h"

/**
 * Loads the JWT key (NOTEBOOKD_JWT_SECRET, at least 32 bytes; without it a
 * random development key is made once and kept in NOTEBOOKD_VAR_DIR/jwt_secret
 * with a warning) and the previous one if set (NOTEBOOKD_JWT_SECRET_PREVIOUS,
 * 32 bytes or more, not the current one), creates the rate limiters and starts the mail thread.
 * 0, or -1 with a one-line reason in err.
 */
int nb_auth_init(char *err, size_t errlen);
/** Stops the mail thread and frees the limiters. */
void nb_auth_shutdown(void);
/** The HMAC key (also the OTP hashing key). */
const unsigned char *nb_auth_key(size_t *len);
/**
 * The key being rotated out (NOTEBOOKD_JWT_SECRET_PREVIOUS): accepted when
 * verifying what the current key would have made (access tokens, one-time
 * codes, list cursors), never used to make anything. NULL (and *len 0) when
 * unset.
 */
const unsigned char *nb_auth_previous_key(size_t *len);
/**
 * nb_otp_verify against the current key, then the previous one: a code
 * mailed just before a rotation still works. 0 on a match, else -1.
 */
int nb_auth_otp_verify(const char *otp_id, const char *code, size_t len, const unsigned char stored[32]);

/**
 * Issues a token pair for u: a new refresh family (stored on c) and an access
 * token. *out = {access_token, refresh_token, token_type, expires_in, user}.
 */
int nb_auth_issue(nb_conn_t *c, const nb_user_row_t *u, json_t **out);
/**
 * Rotates a refresh token (see nb_store_refresh_rotate) and issues the new
 * pair. NB_EUNAUTH for any token that cannot be spent.
 */
int nb_auth_refresh(nb_conn_t *c, const char *refresh_token, json_t **out);
/**
 * Checks an Authorization header value ("Bearer <jwt>") without the
 * database: signature, algorithm, typ, exp, iss, aud. 0 with the subject in
 * user_id, or NB_EUNAUTH.
 */
int nb_auth_check_bearer(const char *header, char user_id[37]);

/** Rate-limit scopes of the door (each has its own buckets). */
typedef enum {
	NB_LIMIT_LOGIN,
	NB_LIMIT_OTP_REQUEST,
	NB_LIMIT_OTP_VERIFY,
	NB_LIMIT_REGISTER,
	NB_LIMIT_SCOPES
} nb_limit_scope_t;
/**
 * Counts one attempt for the client address (NOTEBOOKD_AUTH_IP_RATE_PER_MIN,
 * higher: many users may share one address) and, if given, the account
 * (NOTEBOOKD_AUTH_RATE_PER_MIN; pass the canonical email or the user id).
 * 0 when allowed, else the Retry-After seconds.
 */
int nb_auth_limit(nb_limit_scope_t scope, const char *client, const char *account);

#endif
