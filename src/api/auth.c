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
 */
#include <stdio.h>
#include <string.h>

#include "api/app.h"
#include "api/util.h"
#include "auth/mail.h"
#include "auth/password.h"
#include "auth/secret.h"
#include "auth/service.h"
#include "auth/validate.h"
#include "core/err.h"
#include "core/log.h"
#include "core/uuid.h"
#include "db/db.h"
#include "store/users.h"

#define OTP_TTL_S 600
#define OTP_MAX_ATTEMPTS 5
#define BAD_LOGIN "invalid email or password"
#define BAD_CODE "invalid, expired or used code"

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

int nb_api_register(nb_req_t *req)
{
	char email[256];
	const char *password, *name;
	int rc;
	if ((rc = nb_body_required(req)) < 0 || (rc = body_email(req, email)) < 0 ||
	    (rc = body_password(req, "password", &password)) < 0 || (rc = body_display_name(req, &name)) < 0)
		return rc;
	char hash[NB_PASSWORD_HASH_MAX];
	if (nb_password_hash(password, strlen(password), hash) < 0)
		return nb_fail(req, NB_EINTERNAL);
	nb_conn_t *c;
	if ((rc = nb_req_db(req, &c)) < 0 || (rc = nb_db_begin(c)) < 0)
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
	nb_resp_json(&req->resp, 201, tokens);
	return 0;
}

int nb_api_login(nb_req_t *req)
{
	const char *raw, *password;
	int rc;
	if ((rc = nb_body_required(req)) < 0 || (rc = nb_body_str(req, "email", true, true, 1024, &raw)) < 0 ||
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
	nb_resp_json(&req->resp, 200, tokens);
	return 0;
}

int nb_api_refresh(nb_req_t *req)
{
	const char *token;
	int rc;
	if ((rc = nb_body_required(req)) < 0 || (rc = nb_body_str(req, "refresh_token", true, true, 512, &token)) < 0)
		return rc;
	nb_conn_t *c;
	if ((rc = nb_req_db(req, &c)) < 0)
		return nb_fail(req, rc);
	json_t *tokens = NULL;
	rc = nb_auth_refresh(c, token, &tokens);
	if (rc == NB_EUNAUTH)
		return nb_resp_error(req, NB_EUNAUTH, "refresh token is invalid, expired or revoked", NULL);
	if (rc < 0)
		return nb_fail(req, rc);
	nb_resp_json(&req->resp, 200, tokens);
	return 0;
}

int nb_api_logout(nb_req_t *req)
{
	const char *token;
	int rc;
	if ((rc = nb_body_required(req)) < 0 || (rc = nb_body_str(req, "refresh_token", true, true, 512, &token)) < 0)
		return rc;
	unsigned char hash[32];
	if (nb_refresh_token_hash(token, strlen(token), hash) == 0) {
		nb_conn_t *c;
		if ((rc = nb_req_db(req, &c)) < 0 || (rc = nb_store_refresh_revoke_family(c, hash)) < 0)
			return nb_fail(req, rc);
	}
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

static void send_code(const char *email, const char *purpose, const char *code)
{
	const char *what = !strcmp(purpose, "login")          ? "sign in"
			   : !strcmp(purpose, "verify_email") ? "confirm your email address"
							      : "reset your password";
	char subject[96], body[512];
	snprintf(subject, sizeof subject, "Your notebookd code: %s", code);
	snprintf(body, sizeof body,
		 "Your code to %s is:\n\n    %s\n\nIt expires in 10 minutes and works once.\n"
		 "If you did not ask for it, ignore this message.\n",
		 what, code);
	nb_mail_send_async(email, subject, body);
}

int nb_api_otp_request(nb_req_t *req)
{
	char email[256];
	const char *purpose;
	int rc;
	if ((rc = nb_body_required(req)) < 0 || (rc = body_email(req, email)) < 0 ||
	    (rc = body_purpose(req, &purpose)) < 0)
		return rc;
	int retry = nb_auth_limit(NB_LIMIT_OTP_REQUEST, req->remote, email);
	if (retry > 0)
		return rate_limited(req, retry);
	nb_conn_t *c;
	if ((rc = nb_req_db(req, &c)) < 0)
		return nb_fail(req, rc);
	nb_user_row_t u = {0};
	rc = nb_store_user_by_email(c, email, &u);
	if (rc == 0) {
		char otp_id[37], code[7];
		unsigned char hash[32];
		size_t keylen;
		const unsigned char *key = nb_auth_key(&keylen);
		nb_uuid_v7_str(otp_id);
		nb_otp_code_new(code);
		nb_otp_hash(key, keylen, otp_id, code, hash);
		if ((rc = nb_db_begin(c)) == 0 &&
		    (rc = nb_store_otp_create(c, otp_id, u.id, purpose, hash, OTP_TTL_S)) == 0)
			rc = nb_db_commit(c);
		if (rc < 0)
			nb_db_rollback(c);
		else
			send_code(json_string_value(json_object_get(u.json, "email")), purpose, code);
		sodium_memzero(code, sizeof code);
	}
	nb_user_row_dispose(&u);
	if (rc < 0 && rc != NB_ENOTFOUND)
		return nb_fail(req, rc);
	nb_resp_json(&req->resp, 202, json_pack("{s:s}", "status", "accepted"));
	return 0;
}

/*
 * Counts the attempt (in its own statement, committed whatever follows: a
 * wrong guess must stay counted) and compares the code in constant time.
 * Writes the code's id for consumption.
 */
static int check_code(nb_conn_t *c, const char *user_id, const char *purpose, const char *code, char otp_id[37])
{
	unsigned char stored[32];
	int rc = nb_store_otp_attempt(c, user_id, purpose, OTP_MAX_ATTEMPTS, otp_id, stored);
	if (rc < 0)
		return rc;
	size_t keylen;
	const unsigned char *key = nb_auth_key(&keylen);
	return nb_otp_verify(key, keylen, otp_id, code, strlen(code), stored) < 0 ? NB_EUNAUTH : 0;
}

/* After the code: what the purpose does, in one transaction with the consumption. */
static int apply_purpose(nb_req_t *req, nb_conn_t *c, nb_user_row_t *u, const char *purpose, const char *hash,
			 json_t **tokens)
{
	(void)req;
	if (!strcmp(purpose, "login"))
		return nb_auth_issue(c, u, tokens);
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
	if ((rc = nb_body_required(req)) < 0 || (rc = body_email(req, email)) < 0 ||
	    (rc = body_purpose(req, &purpose)) < 0 || (rc = nb_body_str(req, "code", true, false, 32, &code)) < 0)
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
	char otp_id[37];
	rc = nb_store_user_by_email(c, email, &u);
	if (rc == 0)
		rc = check_code(c, u.id, purpose, code, otp_id);
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
		nb_resp_json(&req->resp, 200, tokens);
	else
		nb_resp_empty(&req->resp, 204);
	return 0;
}
