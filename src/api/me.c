/*
 * me.c — GET, PATCH, DELETE /v1/me, POST /v1/me/email/confirm and
 * GET /v1/me/export.
 *
 * Changes that could take the account away need proof beyond an access
 * token: a new email only becomes pending until the code mailed to it is
 * confirmed (the old address is told), and erasure needs the password (the
 * route runs on the hashing pool for the verification).
 *
 * DELETE is the GDPR erasure path: one DELETE of the user row, and the
 * foreign keys' ON DELETE CASCADE erase everything the user owns in the same
 * statement — for real, not to the trash. The export streams.
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
#include "core/err.h"
#include "db/db.h"
#include "store/users.h"

#define BAD_CODE "invalid, expired or used code"

static const char *const PATCH_FIELDS[] = {"display_name", "email", NULL};
static const char *const CONFIRM_FIELDS[] = {"code", NULL};
static const char *const DELETE_FIELDS[] = {"password", NULL};

static int rate_limited(nb_req_t *req, int retry_after)
{
	req->resp.retry_after = retry_after;
	return nb_resp_error(req, NB_ERATELIMIT, "too many attempts; try again later", NULL);
}

int nb_api_me_get(nb_req_t *req)
{
	nb_conn_t *c;
	int rc = nb_req_db(req, &c);
	if (rc < 0)
		return nb_fail(req, rc);
	nb_user_row_t u = {0};
	rc = nb_store_user_by_id(c, req->user_id, &u);
	if (rc < 0)
		return nb_fail(req, rc);
	nb_resp_json(&req->resp, 200, json_incref(u.json));
	nb_user_row_dispose(&u);
	return 0;
}

/* Makes email pending on the account, issues its code and tells the old address; one transaction. */
static int start_email_change(nb_conn_t *c, const char *user_id, bool set_name, const char *name, const char *email,
			      nb_user_row_t *u)
{
	nb_user_row_t old = {0};
	int rc = nb_store_user_by_id(c, user_id, &old);
	if (rc < 0)
		return rc;
	const char *old_email = json_string_value(json_object_get(old.json, "email"));
	bool same = old_email && !strcmp(old_email, email);
	if (!same && (rc = nb_store_user_email_taken(c, email, user_id)) != 0) {
		nb_user_row_dispose(&old);
		return rc > 0 ? NB_ECONFLICT : rc;
	}
	if ((rc = nb_db_begin(c)) == 0 && (rc = nb_store_user_update(c, user_id, set_name, name, email, u)) == 0 &&
	    (same || (rc = nb_otp_issue(c, user_id, "change_email", email)) == 0))
		rc = nb_db_commit(c);
	if (rc < 0)
		nb_db_rollback(c);
	else if (!same && old_email)
		nb_otp_notify_email_change(old_email, email);
	nb_user_row_dispose(&old);
	return rc;
}

int nb_api_me_patch(nb_req_t *req)
{
	int rc;
	if ((rc = nb_body_required(req)) < 0 || (rc = nb_body_only(req, PATCH_FIELDS)) < 0)
		return rc;
	const char *name = NULL, *raw_email = NULL, *why = NULL;
	bool set_name = nb_body_has(req, "display_name");
	if ((rc = nb_body_str(req, "display_name", false, true, 100000, &name)) < 0 ||
	    (rc = nb_body_str(req, "email", false, false, 1024, &raw_email)) < 0)
		return rc;
	char msg[160];
	if (name && nb_display_name_check(name, strlen(name), &why) < 0) {
		snprintf(msg, sizeof msg, "display_name: %s", why ? why : "is not valid");
		return nb_resp_error(req, NB_EINVALID, msg, "display_name");
	}
	if (name && !*name)
		name = NULL;
	char email[256];
	if (raw_email && nb_email_normalize(raw_email, strlen(raw_email), email, sizeof email, &why) < 0) {
		snprintf(msg, sizeof msg, "email: %s", why ? why : "is not a valid address");
		return nb_resp_error(req, NB_EINVALID, msg, "email");
	}
	if (raw_email) { /* each change mails a code: limited like a code request */
		int retry = nb_auth_limit(NB_LIMIT_OTP_REQUEST, req->remote, req->user_id);
		if (retry > 0)
			return rate_limited(req, retry);
	}
	nb_conn_t *c;
	if ((rc = nb_req_db(req, &c)) < 0)
		return nb_fail(req, rc);
	nb_user_row_t u = {0};
	if (raw_email)
		rc = start_email_change(c, req->user_id, set_name, name, email, &u);
	else
		rc = nb_store_user_update(c, req->user_id, set_name, name, NULL, &u);
	if (rc == NB_ECONFLICT)
		return nb_resp_error(req, NB_ECONFLICT, "email: is already registered", "email");
	if (rc < 0)
		return nb_fail(req, rc);
	nb_resp_json(&req->resp, 200, json_incref(u.json));
	nb_user_row_dispose(&u);
	return 0;
}

int nb_api_me_email_confirm(nb_req_t *req)
{
	int rc;
	const char *code;
	if ((rc = nb_body_required(req)) < 0 || (rc = nb_body_only(req, CONFIRM_FIELDS)) < 0 ||
	    (rc = nb_body_str(req, "code", true, false, 32, &code)) < 0)
		return rc;
	int retry = nb_auth_limit(NB_LIMIT_OTP_VERIFY, req->remote, req->user_id);
	if (retry > 0)
		return rate_limited(req, retry);
	nb_conn_t *c;
	if ((rc = nb_req_db(req, &c)) < 0)
		return nb_fail(req, rc);
	char otp_id[37];
	unsigned char stored[32];
	/* The attempt is counted in its own statement, kept whatever follows. */
	rc = nb_store_otp_attempt(c, req->user_id, "change_email", NB_OTP_MAX_ATTEMPTS, otp_id, stored);
	if (rc == 0) {
		if (nb_auth_otp_verify(otp_id, code, strlen(code), stored) < 0)
			rc = NB_EUNAUTH;
	}
	nb_user_row_t u = {0};
	if (rc == 0 && (rc = nb_db_begin(c)) == 0 && (rc = nb_store_otp_consume(c, otp_id)) == 0 &&
	    (rc = nb_store_user_confirm_email(c, req->user_id, &u)) == 0)
		rc = nb_db_commit(c);
	if (rc < 0) {
		nb_db_rollback(c);
		nb_user_row_dispose(&u);
		if (rc == NB_ECONFLICT)
			return nb_resp_error(req, NB_ECONFLICT, "email: was registered by another account meanwhile",
					     "email");
		if (rc == NB_EUNAUTH || rc == NB_ENOTFOUND)
			return nb_resp_error(req, NB_EUNAUTH, BAD_CODE, NULL);
		return nb_fail(req, rc);
	}
	nb_resp_json(&req->resp, 200, json_incref(u.json));
	nb_user_row_dispose(&u);
	return 0;
}

int nb_api_me_delete(nb_req_t *req)
{
	int rc;
	const char *password;
	if ((rc = nb_body_only(req, DELETE_FIELDS)) < 0 ||
	    (rc = nb_body_str(req, "password", true, true, 100000, &password)) < 0)
		return rc;
	int retry = nb_auth_limit(NB_LIMIT_LOGIN, req->remote, req->user_id);
	if (retry > 0)
		return rate_limited(req, retry);
	nb_conn_t *c;
	if ((rc = nb_req_db(req, &c)) < 0)
		return nb_fail(req, rc);
	nb_user_row_t u = {0};
	if ((rc = nb_store_user_by_id(c, req->user_id, &u)) < 0)
		return nb_fail(req, rc == NB_ENOTFOUND ? NB_EUNAUTH : rc);
	bool ok = nb_password_verify(u.password_hash, password, strlen(password)) == 0;
	nb_user_row_dispose(&u);
	if (!ok)
		return nb_resp_error(req, NB_EUNAUTH, "password: is wrong", NULL);
	if ((rc = nb_store_user_erase(c, req->user_id)) < 0)
		return nb_fail(req, rc);
	nb_resp_empty(&req->resp, 204);
	return 0;
}
