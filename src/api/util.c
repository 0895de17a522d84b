/*
 * util.c — body fields, pagination, the auth middleware (see util.h).
 */
#include "api/util.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/service.h"
#include "core/b64.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/utf8.h"
#include "core/uuid.h"
#include "db/replica.h"
#include "store/usercache.h"
#include "store/users.h"

int nb_api_authenticate(nb_req_t *req)
{
	char uid[37];
	if (nb_auth_check_bearer(nb_req_header(req, "authorization"), uid) < 0)
		return nb_resp_error(req, NB_EUNAUTH, "missing, invalid or expired access token", NULL);
	uint64_t gen;
	if (!nb_usercache_has(uid, &gen)) { /* not known live (or the cache is not listening): ask */
		nb_conn_t *c;
		int rc = nb_req_db(req, &c);
		if (rc < 0)
			return nb_fail(req, rc);
		rc = nb_store_user_exists(c, uid);
		if (rc < 0)
			return nb_fail(req, rc);
		if (rc == 0)
			return nb_resp_error(req, NB_EUNAUTH, "missing, invalid or expired access token", NULL);
		nb_usercache_put(uid, gen);
		nb_replica_note_write(uid); /* maybe new (just registered): its reads wait for the replica to have it */
	}
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

/*
 * Cursors. A cursor is base64url(payload || tag): payload is "key|id" (key a
 * timestamp as PostgreSQL prints timestamptz, an integer, or "j"), tag the
 * first CURSOR_TAG bytes of HMAC-SHA-256 under a key derived from the
 * server's key, over the request path and the payload. So a cursor works
 * only on the list that made it, and one the server did not make (or made
 * for another list) is 422 before any of it reaches SQL. The payload is
 * then still type-checked strictly, in case the key ever leaks.
 */
#define CURSOR_TAG 16
#define CURSOR_MAX 512

static void cursor_tag(nb_req_t *req, const unsigned char *key, size_t keylen, const unsigned char *payload, size_t n,
		       unsigned char tag[CURSOR_TAG])
{
	unsigned char sub[crypto_auth_hmacsha256_KEYBYTES], full[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256_state st;
	/* a key of its own for cursors: HMAC(server key, "notebookd cursor v1") */
	crypto_auth_hmacsha256_init(&st, key, keylen);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)"notebookd cursor v1", 19);
	crypto_auth_hmacsha256_final(&st, sub);
	const char *path = req->path ? req->path : "";
	crypto_auth_hmacsha256_init(&st, sub, sizeof sub);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)path, strlen(path) + 1); /* with its NUL */
	crypto_auth_hmacsha256_update(&st, payload, n);
	crypto_auth_hmacsha256_final(&st, full);
	memcpy(tag, full, CURSOR_TAG);
	sodium_memzero(sub, sizeof sub);
}

static bool all_digits(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static int num(const char *s, size_t n)
{
	int v = 0;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (s[i] - '0');
	return v;
}

/* True for a timestamp as PostgreSQL prints timestamptz: "YYYY-MM-DD HH:MM:SS[.f{1,6}]+00[:MM]". */
static bool cursor_ts_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < 22 || n > 35 || s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' || s[16] != ':')
		return false;
	if (!all_digits(s, 4) || !all_digits(s + 5, 2) || !all_digits(s + 8, 2) || !all_digits(s + 11, 2) ||
	    !all_digits(s + 14, 2) || !all_digits(s + 17, 2))
		return false;
	int y = num(s, 4), mo = num(s + 5, 2), d = num(s + 8, 2);
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
	    (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))))
		return false;
	if (num(s + 11, 2) > 23 || num(s + 14, 2) > 59 || num(s + 17, 2) > 59)
		return false;
	const char *p = s + 19;
	if (*p == '.') {
		size_t f = strspn(p + 1, "0123456789");
		if (f < 1 || f > 6)
			return false;
		p += 1 + f;
	}
	if ((*p != '+' && *p != '-') || !all_digits(p + 1, 2) || num(p + 1, 2) > 15)
		return false;
	p += 3;
	if (*p == ':') {
		if (!all_digits(p + 1, 2) || num(p + 1, 2) > 59)
			return false;
		p += 3;
	}
	return *p == '\0';
}

/* True for a key a list makes: "j", an integer of up to 9 digits, or a timestamp. */
static bool cursor_key_ok(const char *k)
{
	size_t n = strlen(k);
	return !strcmp(k, "j") || (n <= 9 && all_digits(k, n)) || cursor_ts_ok(k);
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
	if (strlen(cur) > CURSOR_MAX || nb_b64url_decode(cur, strlen(cur), &raw, &n) < 0)
		return bad_param(req, "cursor", "cursor: not a cursor this server made for this list");
	unsigned char tag[CURSOR_TAG];
	bool signed_ok = n > CURSOR_TAG;
	if (signed_ok) {
		size_t keylen;
		const unsigned char *key = nb_auth_key(&keylen);
		cursor_tag(req, key, keylen, raw, n - CURSOR_TAG, tag);
		signed_ok = sodium_memcmp(tag, raw + n - CURSOR_TAG, CURSOR_TAG) == 0;
		if (!signed_ok && (key = nb_auth_previous_key(&keylen)) != NULL) { /* made before a key rotation */
			cursor_tag(req, key, keylen, raw, n - CURSOR_TAG, tag);
			signed_ok = sodium_memcmp(tag, raw + n - CURSOR_TAG, CURSOR_TAG) == 0;
		}
	}
	char *text = signed_ok ? nb_arena_strndup(req->arena, (const char *)raw, n - CURSOR_TAG) : NULL;
	free(raw);
	if (!text || strlen(text) != n - CURSOR_TAG)
		return bad_param(req, "cursor", "cursor: not a cursor this server made for this list");
	char *bar = strchr(text, '|');
	if (!bar || !nb_uuid_valid(bar + 1) || bar - text < 1 || bar - text > 40)
		return bad_param(req, "cursor", "cursor: not a cursor this server made for this list");
	*bar = '\0';
	if (!cursor_key_ok(text))
		return bad_param(req, "cursor", "cursor: not a cursor this server made for this list");
	page->after_ts = text;
	page->after_id = bar + 1;
	return 0;
}

const char *nb_cursor_make(nb_req_t *req, const char *ts, const char *id)
{
	char *raw = nb_arena_sprintf(req->arena, "%s|%s", ts, id);
	size_t n = strlen(raw);
	unsigned char *buf = nb_arena_alloc(req->arena, n + CURSOR_TAG);
	memcpy(buf, raw, n);
	size_t keylen;
	const unsigned char *key = nb_auth_key(&keylen);
	cursor_tag(req, key, keylen, buf, n, buf + n);
	char *enc = nb_b64url_encode(buf, n + CURSOR_TAG);
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

void nb_resp_json_begin(nb_req_t *req, nb_jsonw_t *w, bool upper_hex)
{
	nb_resp_t *resp = &req->resp;
	resp->status = 200;
	resp->content_type = "application/json";
	nb_buf_reset(&resp->body);
	nb_jsonw_init(w, &resp->body);
	w->upper_hex = upper_hex;
}

static void list_write(nb_req_t *req, PGresult *r, int limit, nb_row_writer_fn fn, bool upper_hex)
{
	int n = PQntuples(r);
	bool more = n > limit;
	if (more)
		n = limit;
	nb_jsonw_t w;
	nb_resp_json_begin(req, &w, upper_hex);
	nb_jsonw_obj(&w);
	nb_jsonw_key(&w, "items");
	nb_jsonw_arr(&w);
	char key[40] = "", id[37] = "";
	for (int i = 0; i < n; i++)
		fn(&w, r, i, key, id);
	nb_jsonw_arr_end(&w);
	nb_jsonw_key(&w, "next_cursor");
	if (more)
		nb_jsonw_strz(&w, nb_cursor_make(req, key, id));
	else
		nb_jsonw_null(&w);
	nb_jsonw_obj_end(&w);
	PQclear(r);
}

void nb_resp_list_write(nb_req_t *req, PGresult *r, int limit, nb_row_writer_fn fn)
{
	list_write(req, r, limit, fn, false);
}

void nb_resp_list_write_jansson(nb_req_t *req, PGresult *r, int limit, nb_row_writer_fn fn)
{
	list_write(req, r, limit, fn, true);
}
