/*
 * util.c — body fields, pagination, the auth middleware (see util.h).
 */
#include "api/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/service.h"
#include "core/b64.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/utf8.h"
#include "core/uuid.h"
#include "store/users.h"

int nb_api_authenticate(nb_req_t *req)
{
	char uid[37];
	if (nb_auth_check_bearer(nb_req_header(req, "authorization"), uid) < 0)
		return nb_resp_error(req, NB_EUNAUTH, "missing, invalid or expired access token", NULL);
	nb_conn_t *c;
	int rc = nb_req_db(req, &c);
	if (rc < 0)
		return nb_fail(req, rc);
	rc = nb_store_user_exists(c, uid);
	if (rc < 0)
		return nb_fail(req, rc);
	if (rc == 0)
		return nb_resp_error(req, NB_EUNAUTH, "missing, invalid or expired access token", NULL);
	memcpy(req->user_id, uid, sizeof uid);
	req->authed = true;
	return 0;
}

int nb_fail(nb_req_t *req, int err)
{
	return nb_resp_error(req, err, NULL, NULL);
}

int nb_body_required(nb_req_t *req)
{
	if (!req->json)
		return nb_resp_error(req, NB_EBADREQ, "a JSON object body is required", NULL);
	return 0;
}

int nb_body_only(nb_req_t *req, const char *const *fields)
{
	if (!req->json)
		return 0;
	const char *key;
	json_t *v;
	json_object_foreach(req->json, key, v) {
		bool known = false;
		for (const char *const *f = fields; *f && !known; f++)
			known = strcmp(*f, key) == 0;
		if (!known) {
			char msg[160];
			snprintf(msg, sizeof msg, "%.100s: unknown field", key);
			return nb_resp_error(req, NB_EINVALID, msg, nb_arena_strdup(req->arena, key));
		}
	}
	return 0;
}

bool nb_body_has(nb_req_t *req, const char *field)
{
	return req->json && json_object_get(req->json, field) != NULL;
}

int nb_body_str(nb_req_t *req, const char *field, bool required, bool allow_empty, size_t max_chars,
		const char **out)
{
	*out = NULL;
	json_t *v = req->json ? json_object_get(req->json, field) : NULL;
	char msg[160];
	if (!v || json_is_null(v)) {
		if (!required)
			return 0;
		snprintf(msg, sizeof msg, "%s: is required", field);
		return nb_resp_error(req, NB_EINVALID, msg, field);
	}
	if (!json_is_string(v)) {
		snprintf(msg, sizeof msg, "%s: must be a string", field);
		return nb_resp_error(req, NB_EINVALID, msg, field);
	}
	const char *s = json_string_value(v);
	size_t len = json_string_length(v);
	size_t chars = nb_utf8_count(s, len);
	if ((!allow_empty && chars == 0) || chars > max_chars) {
		snprintf(msg, sizeof msg, "%s: must be %d to %zu characters", field, allow_empty ? 0 : 1, max_chars);
		return nb_resp_error(req, NB_EINVALID, msg, field);
	}
	*out = s;
	return 0;
}

static int bad_param(nb_req_t *req, const char *name, const char *msg)
{
	return nb_resp_error(req, NB_EINVALID, msg, name);
}

int nb_page_parse(nb_req_t *req, int def, int max, nb_page_t *page)
{
	page->limit = def;
	page->after_ts = page->after_id = NULL;
	const char *l = nb_req_query(req, "limit");
	if (l) {
		char *end = NULL;
		long v = strtol(l, &end, 10);
		if (!*l || *end || v < 1 || v > max) {
			char msg[64];
			snprintf(msg, sizeof msg, "limit: must be an integer from 1 to %d", max);
			return bad_param(req, "limit", msg);
		}
		page->limit = (int)v;
	}
	const char *cur = nb_req_query(req, "cursor");
	if (!cur)
		return 0;
	unsigned char *raw = NULL;
	size_t n = 0;
	if (strlen(cur) > 256 || nb_b64url_decode(cur, strlen(cur), &raw, &n) < 0)
		return bad_param(req, "cursor", "cursor: not a cursor this server made");
	char *text = nb_arena_strndup(req->arena, (const char *)raw, n);
	free(raw);
	char *bar = strchr(text, '|');
	if (!bar || strlen(text) != n || !nb_uuid_valid(bar + 1) || bar - text < 1 || bar - text > 40)
		return bad_param(req, "cursor", "cursor: not a cursor this server made");
	*bar = '\0';
	for (const char *p = text; *p; p++)
		if (!strchr("0123456789-:. +TZj", *p))
			return bad_param(req, "cursor", "cursor: not a cursor this server made");
	page->after_ts = text;
	page->after_id = bar + 1;
	return 0;
}

const char *nb_cursor_make(nb_req_t *req, const char *ts, const char *id)
{
	char *raw = nb_arena_sprintf(req->arena, "%s|%s", ts, id);
	char *enc = nb_b64url_encode(raw, strlen(raw));
	const char *out = nb_arena_strdup(req->arena, enc);
	free(enc);
	return out;
}

void nb_resp_list_rows(nb_req_t *req, PGresult *r, int limit)
{
	int n = PQntuples(r);
	bool more = n > limit;
	if (more)
		n = limit;
	nb_resp_t *resp = &req->resp;
	resp->status = 200;
	resp->content_type = "application/json";
	nb_buf_reset(&resp->body);
	nb_buf_puts(&resp->body, "{\"items\":[");
	for (int i = 0; i < n; i++) {
		if (i)
			nb_buf_putc(&resp->body, ',');
		nb_buf_json_compact(&resp->body, PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0));
	}
	nb_buf_puts(&resp->body, "],\"next_cursor\":");
	if (more) {
		const char *cur = nb_cursor_make(req, PQgetvalue(r, n - 1, 1), PQgetvalue(r, n - 1, 2));
		nb_buf_json_str(&resp->body, cur, strlen(cur));
	} else {
		nb_buf_puts(&resp->body, "null");
	}
	nb_buf_putc(&resp->body, '}');
	PQclear(r);
}
