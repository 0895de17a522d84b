/*
 * auth.c — POST /v1/auth/{register, login, refresh, logout, otp/request,
 * otp/verify}.
 *
 * Register, login and OTP verification hash or verify passwords, so their
 * routes run on the password-hashing pool (router class NB_EXEC_HASH): a
 * burst of logins queues there and never takes the threads or loops that
 * serve everything else. A failed login answers the same bytes (but the
 * request id) and costs the same time whether the email is unknown or the
 * password wrong: an unknown email is verified against a dummy hash.
 *
 * Every email is taken in its canonical form (nb_email_normalize: NFC, case
 * folded) for lookups, uniqueness, mail and every rate-limit key. The door
 * (register, login, both OTP routes) is limited per client address and per
 * account. One-time codes leak nothing by timing: a code request is queued
 * (auth/otpq.h) and answered before the database is touched, and a code is
 * checked with one statement and one HMAC whether or not the account exists.
 *
 * For the browser app every answer carrying tokens also sets the refresh
 * token as an HttpOnly, SameSite=Strict cookie on Path=/v1/auth (Secure with
 * NOTEBOOKD_COOKIE_SECURE), so page script never sees it. Refresh and logout
 * take it from that cookie when the body names none; the body must still be
 * a JSON object sent as application/json (nb_body_required, and the 415 of
 * the middleware), which a cross-site form cannot send: no CSRF. Clients that
 * send refresh_token in the body are served exactly as before.
 */
#include <stdio.h>
#include <string.h>

#include "api/app.h"
#include "api/util.h"
#include "auth/otpq.h"
#include "auth/password.h"
#include "auth/secret.h"
#include "auth/service.h"
#include "auth/validate.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/uuid.h"
#include "db/db.h"
#include "store/users.h"

#define BAD_LOGIN "invalid email or password"
#define BAD_CODE "invalid, expired or used code"

#define REFRESH_COOKIE "nb_refresh"

static const char *const TOKEN_FIELDS[] = {"refresh_token", NULL};

/* Sets (token) or clears (NULL) the refresh cookie. */
static void set_refresh_cookie(nb_req_t *req, const char *token)
{
	char line[768];
	snprintf(line, sizeof line, REFRESH_COOKIE "=%s; Path=/v1/auth; Max-Age=%d; HttpOnly; SameSite=Strict%s",
		 token ? token : "", token ? nb_cfg.refresh_ttl_s : 0, nb_cfg.cookie_secure ? "; Secure" : "");
	nb_resp_header(&req->resp, "Set-Cookie", line);
}

/* The answer of a route that issued tokens: the JSON, and its refresh token as the cookie. */
static void tokens_answer(nb_req_t *req, int status, json_t *tokens)
{
	const char *rt = json_string_value(json_object_get(tokens, "refresh_token"));
	if (rt && strlen(rt) < 512 && strspn(rt, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") ==
					      strlen(rt))
		set_refresh_cookie(req, rt);
	nb_resp_json(&req->resp, status, tokens);
}

/* The refresh cookie's value copied into the arena, or NULL. */
static const char *cookie_token(nb_req_t *req)
{
	const char *h = nb_req_header(req, "cookie");
	size_t n = strlen(REFRESH_COOKIE);
	while (h && *h) {
		h += strspn(h, " \t;");
		if (!strncmp(h, REFRESH_COOKIE, n) && h[n] == '=') {
			const char *v = h + n + 1;
			size_t len = strcspn(v, ";");
			while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
				len--;
			return len > 0 && len < 512 ? nb_arena_strndup(req->arena, v, len) : NULL;
		}
		h = strchr(h, ';');
	}
	return NULL;
}

/* The refresh token from the body or, when the body names none, the cookie. */
static int refresh_token_in(nb_req_t *req, const char **token)
{
	int rc;
	if ((rc = nb_body_required(req)) < 0 || (rc = nb_body_only(req, TOKEN_FIELDS)) < 0)
		return rc;
	json_t *v = json_object_get(req->json, "refresh_token");
	if ((!v || json_is_null(v)) && (*token = cookie_token(req)) != NULL)
		return 0;
	return nb_body_str(req, "refresh_token", true, true, 512, token);
}

static int rate_limited(nb_req_t *req, int retry_after)
{
	req->resp.retry_after = retry_after;
	return nb_resp_error(req, NB_ERATELIMIT, "too many attempts; try again later", NULL);
}

/* Reads and normalises the email field into out (256 bytes). */
static int body_email(nb_req_t *req, char out[256])
{
	const char *raw;
	int rc = nb_body_str(req, "email", true, false, 1024, &raw);
	if (rc < 0)
		return rc;
	const char *why = NULL;
	if (nb_email_normalize(raw, strlen(raw), out, 256, &why) < 0) {
		char msg[160];
		snprintf(msg, sizeof msg, "email: %s", why ? why : "is not a valid address");
		return nb_resp_error(req, NB_EINVALID, msg, "email");
	}
	return 0;
}

static int body_password(nb_req_t *req, const char *field, const char **out)
{
	int rc = nb_body_str(req, field, true, true, 100000, out);
	if (rc < 0)
		return rc;
	const char *why = NULL;
	if (nb_password_check(*out, strlen(*out), &why) < 0) {
		char msg[160];
		snprintf(msg, sizeof msg, "%s: %s", field, why ? why : "must be 10 to 1024 characters");
		return nb_resp_error(req, NB_EINVALID, msg, field);
	}
	return 0;
}

static int body_display_name(nb_req_t *req, const char **out)
{
	int rc = nb_body_str(req, "display_name", false, true, 100000, out);
	if (rc < 0 || !*out)
		return rc;
	const char *why = NULL;
	if (nb_display_name_check(*out, strlen(*out), &why) < 0) {
		char msg[160];
		snprintf(msg, sizeof msg, "display_name: %s", why ? why : "is not valid");
		return nb_resp_error(req, NB_EINVALID, msg, "display_name");
	}
	if (!**out)
		*out = NULL; /* empty means none */
	return 0;
}

static const char *const REGISTER_FIELDS[] = {"email", "password", "display_name", NULL};
static const char *const LOGIN_FIELDS[] = {"email", "password", NULL};
static const char *const OTP_REQUEST_FIELDS[] = {"email", "purpose", NULL};
static const char *const OTP_VERIFY_FIELDS[] = {"email", "purpose", "code", "new_password", NULL};

int nb_api_register(nb_req_t *req)
{
	char email[256];
	const char *password, *name;
	int rc;
	if ((rc = nb_body_required(req)) < 0 || (rc = nb_body_only(req, REGISTER_FIELDS)) < 0 ||
	    (rc = body_email(req, email)) < 0 || (rc = body_password(req, "password", &password)) < 0 ||
	    (rc = body_display_name(req, &name)) < 0)
		return rc;
	int retry = nb_auth_limit(NB_LIMIT_REGISTER, req->remote, email);
	if (retry > 0)
		return rate_limited(req, retry);
	nb_conn_t *c;
	if ((rc = nb_req_db(req, &c)) < 0)
		return nb_fail(req, rc);
	/* A taken address is answered before the (expensive) hash: a flood of them costs no CPU. */
	if ((rc = nb_store_user_email_taken(c, email, NULL)) != 0)
		return rc > 0 ? nb_resp_error(req, NB_ECONFLICT, "email: is already registered", "email")
			      : nb_fail(req, rc);
	char hash[NB_PASSWORD_HASH_MAX];
	if (nb_password_hash(password, strlen(password), hash) < 0)
		return nb_fail(req, NB_EINTERNAL);
	if ((rc = nb_db_begin(c)) < 0)
		return nb_fail(req, rc);
	char id[37];
	nb_uuid_v7_str(id);
	nb_user_row_t u = {0};
	json_t *tokens = NULL;
	rc = nb_store_user_create(c, id, email, hash, name, &u);
	if (rc == 0)
		rc = nb_auth_issue(c, &u, &tokens);
	if (rc == 0)
		rc = nb_db_commit(c);
	nb_user_row_dispose(&u);
	if (rc < 0) {
		nb_db_rollback(c);
		json_decref(tokens);
		if (rc == NB_ECONFLICT)
			return nb_resp_error(req, NB_ECONFLICT, "email: is already registered", "email");
		return nb_fail(req, rc);
	}
	tokens_answer(req, 201, tokens);
	return 0;
}

int nb_api_login(nb_req_t *req)
{
	const char *raw, *password;
	int rc;
	if ((rc = nb_body_required(req)) < 0 || (rc = nb_body_only(req, LOGIN_FIELDS)) < 0 ||
	    (rc = nb_body_str(req, "email", true, true, 1024, &raw)) < 0 ||
	    (rc = nb_body_str(req, "password", true, true, 100000, &password)) < 0)
		return rc;
	char email[256];
	const char *why;
	bool valid = nb_email_normalize(raw, strlen(raw), email, sizeof email, &why) == 0;
	int retry = nb_auth_limit(NB_LIMIT_LOGIN, req->remote, valid ? email : raw);
	if (retry > 0)
		return rate_limited(req, retry);
	nb_conn_t *c;
	if ((rc = nb_req_db(req, &c)) < 0)
		return nb_fail(req, rc);
	nb_user_row_t u = {0};
	rc = valid ? nb_store_user_by_email(c, email, &u) : NB_ENOTFOUND;
	if (rc == NB_ENOTFOUND) {
		nb_password_verify_dummy(password, strlen(password));
		return nb_resp_error(req, NB_EUNAUTH, BAD_LOGIN, NULL);
	}
	if (rc < 0)
		return nb_fail(req, rc);
	if (nb_password_verify(u.password_hash, password, strlen(password)) < 0) {
		nb_user_row_dispose(&u);
		return nb_resp_error(req, NB_EUNAUTH, BAD_LOGIN, NULL);
	}
	if (nb_password_needs_rehash(u.password_hash)) {
		char hash[NB_PASSWORD_HASH_MAX];
		if (nb_password_hash(password, strlen(password), hash) == 0 &&
		    nb_store_user_set_password(c, u.id, hash) == 0)
			nb_info("rehashed the password of user %s with the current parameters", u.id);
	}
	json_t *tokens = NULL;
	rc = nb_auth_issue(c, &u, &tokens);
	nb_user_row_dispose(&u);
	if (rc < 0)
		return nb_fail(req, rc);
	tokens_answer(req, 200, tokens);
	return 0;
}

int nb_api_refresh(nb_req_t *req)
{
	const char *token;
	int rc;
	if ((rc = refresh_token_in(req, &token)) < 0)
		return rc;
	nb_conn_t *c;
	if ((rc = nb_req_db(req, &c)) < 0)
		return nb_fail(req, rc);
	json_t *tokens = NULL;
	rc = nb_auth_refresh(c, token, &tokens);
	if (rc == NB_EUNAUTH) {
		set_refresh_cookie(req, NULL);
		return nb_resp_error(req, NB_EUNAUTH, "refresh token is invalid, expired or revoked", NULL);
	}
	if (rc < 0)
		return nb_fail(req, rc);
	tokens_answer(req, 200, tokens);
	return 0;
}

int nb_api_logout(nb_req_t *req)
{
	const char *token;
	int rc;
	if ((rc = refresh_token_in(req, &token)) < 0)
		return rc;
	unsigned char hash[32];
	if (nb_refresh_token_hash(token, strlen(token), hash) == 0) {
		nb_conn_t *c;
		if ((rc = nb_req_db(req, &c)) < 0 || (rc = nb_store_refresh_revoke_family(c, hash)) < 0)
			return nb_fail(req, rc);
	}
	set_refresh_cookie(req, NULL);
	nb_resp_empty(&req->resp, 204);
	return 0;
}

static int body_purpose(nb_req_t *req, const char **purpose)
{
	int rc = nb_body_str(req, "purpose", true, false, 32, purpose);
	if (rc < 0)
		return rc;
	if (strcmp(*purpose, "login") && strcmp(*purpose, "verify_email") && strcmp(*purpose, "reset_password"))
		return nb_resp_error(req, NB_EINVALID, "purpose: must be login, verify_email or reset_password",
				     "purpose");
	return 0;
}

int nb_api_otp_request(nb_req_t *req)
{
	char email[256];
	const char *purpose;
	int rc;
	if ((rc = nb_body_required(req)) < 0 || (rc = nb_body_only(req, OTP_REQUEST_FIELDS)) < 0 ||
	    (rc = body_email(req, email)) < 0 || (rc = body_purpose(req, &purpose)) < 0)
		return rc;
	int retry = nb_auth_limit(NB_LIMIT_OTP_REQUEST, req->remote, email);
	if (retry > 0)
		return rate_limited(req, retry);
	/* The lookup, the code and the mail happen after the answer, off this request's path. */
	if ((rc = nb_otpq_request(nb_app.pool, email, purpose)) < 0)
		return nb_fail(req, rc);
	nb_resp_json(&req->resp, 202, json_pack("{s:s}", "status", "accepted"));
	return 0;
}

/*
 * Counts the attempt on the account's newest live code (one statement in a
 * transaction of its own, committed whatever follows: a wrong guess must
 * stay counted) and compares the code in constant time. An unknown account
 * or no live code costs the same statements and an HMAC over a dummy id, so
 * verify has no timing oracle either. Writes the owner and the code's id for
 * consumption.
 */
static int check_code(nb_conn_t *c, const char *email, const char *purpose, const char *code, char user_id[37],
		      char otp_id[37])
{
	unsigned char stored[32] = {0};
	/* Counting an attempt writes a row, and a synchronous commit would wait
	 * for the disk only when the account and a code exist: commit without
	 * waiting, in the same statements either way. */
	int rc = nb_db_begin(c);
	if (rc == 0 && (rc = nb_store_txn_async_commit(c)) == 0) {
		rc = nb_store_otp_attempt_by_email(c, email, purpose, NB_OTP_MAX_ATTEMPTS, user_id, otp_id, stored);
		int crc = rc == 0 || rc == NB_EUNAUTH ? nb_db_commit(c) : 0;
		if (crc < 0)
			rc = crc;
	}
	if (rc < 0 && rc != NB_EUNAUTH) {
		nb_db_rollback(c);
		return rc;
	}
	bool ok = nb_auth_otp_verify(rc == 0 ? otp_id : "00000000-0000-0000-0000-000000000000", code, strlen(code),
				     stored) == 0;
	return rc == 0 && ok ? 0 : NB_EUNAUTH;
}

/* After the code: what the purpose does, in one transaction with the consumption. */
static int apply_purpose(nb_req_t *req, nb_conn_t *c, nb_user_row_t *u, const char *purpose, const char *hash,
			 json_t **tokens)
{
	(void)req;
	if (!strcmp(purpose, "login")) {
		/* A code that arrived proves the mailbox. */
		int rc = nb_store_user_mark_verified(c, u->id);
		if (rc == 0) {
			nb_user_row_dispose(u);
			rc = nb_store_user_by_id(c, u->id, u);
		}
		return rc < 0 ? rc : nb_auth_issue(c, u, tokens);
	}
	if (!strcmp(purpose, "verify_email"))
		return nb_store_user_mark_verified(c, u->id);
	int rc = nb_store_user_set_password(c, u->id, hash);
	return rc < 0 ? rc : nb_store_refresh_revoke_user(c, u->id);
}

int nb_api_otp_verify(nb_req_t *req)
{
	char email[256];
	const char *purpose, *code, *new_password = NULL;
	int rc;
	if ((rc = nb_body_required(req)) < 0 || (rc = nb_body_only(req, OTP_VERIFY_FIELDS)) < 0 ||
	    (rc = body_email(req, email)) < 0 || (rc = body_purpose(req, &purpose)) < 0 ||
	    (rc = nb_body_str(req, "code", true, false, 32, &code)) < 0)
		return rc;
	bool reset = !strcmp(purpose, "reset_password");
	if (reset && (rc = body_password(req, "new_password", &new_password)) < 0)
		return rc; /* checked before the code is spent */
	int retry = nb_auth_limit(NB_LIMIT_OTP_VERIFY, req->remote, email);
	if (retry > 0)
		return rate_limited(req, retry);
	char hash[NB_PASSWORD_HASH_MAX] = "";
	if (reset && nb_password_hash(new_password, strlen(new_password), hash) < 0)
		return nb_fail(req, NB_EINTERNAL);
	nb_conn_t *c;
	if ((rc = nb_req_db(req, &c)) < 0)
		return nb_fail(req, rc);
	nb_user_row_t u = {0};
	json_t *tokens = NULL;
	char otp_id[37], user_id[37];
	rc = check_code(c, email, purpose, code, user_id, otp_id);
	if (rc == 0)
		rc = nb_store_user_by_id(c, user_id, &u);
	/* Spending the code and what it does are one transaction. */
	if (rc == 0 && (rc = nb_db_begin(c)) == 0 && (rc = nb_store_otp_consume(c, otp_id)) == 0 &&
	    (rc = apply_purpose(req, c, &u, purpose, hash, &tokens)) == 0)
		rc = nb_db_commit(c);
	nb_user_row_dispose(&u);
	if (rc < 0) {
		nb_db_rollback(c);
		json_decref(tokens);
		if (rc == NB_EUNAUTH || rc == NB_ENOTFOUND)
			return nb_resp_error(req, NB_EUNAUTH, BAD_CODE, NULL);
		return nb_fail(req, rc);
	}
	if (tokens)
		tokens_answer(req, 200, tokens);
	else
		nb_resp_empty(&req->resp, 204);
	return 0;
}
