/*
 * me.c — GET, PATCH, DELETE /v1/me and GET /v1/me/export.
 *
 * DELETE is the GDPR erasure path: one DELETE of the user row, and the
 * foreign keys' ON DELETE CASCADE erase everything the user owns in the same
 * statement — for real, not to the trash. The export streams.
 */
#include <stdio.h>
#include <string.h>

#include "api/app.h"
#include "api/util.h"
#include "auth/validate.h"
#include "core/err.h"
#include "store/users.h"

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

int nb_api_me_patch(nb_req_t *req)
{
	int rc;
	if ((rc = nb_body_required(req)) < 0)
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
	nb_conn_t *c;
	if ((rc = nb_req_db(req, &c)) < 0)
		return nb_fail(req, rc);
	nb_user_row_t u = {0};
	rc = nb_store_user_update(c, req->user_id, set_name, name, raw_email ? email : NULL, &u);
	if (rc == NB_ECONFLICT)
		return nb_resp_error(req, NB_ECONFLICT, "email: is already registered", "email");
	if (rc < 0)
		return nb_fail(req, rc);
	nb_resp_json(&req->resp, 200, json_incref(u.json));
	nb_user_row_dispose(&u);
	return 0;
}

int nb_api_me_delete(nb_req_t *req)
{
	nb_conn_t *c;
	int rc = nb_req_db(req, &c);
	if (rc < 0 || (rc = nb_store_user_erase(c, req->user_id)) < 0)
		return nb_fail(req, rc);
	nb_resp_empty(&req->resp, 204);
	return 0;
}
