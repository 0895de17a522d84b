/*
 * request.c — what handlers read from a request and how they answer it
 * (see request.h); the server's own side of requests is in parse.c and
 * conn.c (see README.md).
 */
#include "http/request.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "core/timeutil.h"

const char *nb_req_header(const nb_req_t *r, const char *name)
{
	for (int i = 0; i < r->nheaders; i++)
		if (strcasecmp(r->headers[i].name, name) == 0)
			return r->headers[i].value;
	return NULL;
}

static int hexv(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes s[0..n) ('+' is a space) into the arena. */
static char *pct_decode(nb_arena_t *a, const char *s, size_t n)
{
	char *out = nb_arena_alloc(a, n + 1);
	size_t j = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '+') {
			out[j++] = ' ';
		} else if (s[i] == '%' && i + 2 < n && hexv(s[i + 1]) >= 0 && hexv(s[i + 2]) >= 0) {
			out[j++] = (char)(hexv(s[i + 1]) << 4 | hexv(s[i + 2]));
			i += 2;
		} else {
			out[j++] = s[i];
		}
	}
	out[j] = '\0';
	return out;
}

const char *nb_req_query(nb_req_t *r, const char *name)
{
	if (!r->query)
		return NULL;
	size_t nl = strlen(name);
	const char *p = r->query;
	while (*p) {
		const char *amp = strchr(p, '&');
		size_t len = amp ? (size_t)(amp - p) : strlen(p);
		const char *eq = memchr(p, '=', len);
		size_t klen = eq ? (size_t)(eq - p) : len;
		if (klen == nl && memcmp(p, name, nl) == 0)
			return eq ? pct_decode(r->arena, eq + 1, len - klen - 1) : "";
		if (!amp)
			break;
		p = amp + 1;
	}
	return NULL;
}

const char *nb_req_param(const nb_req_t *r, int i)
{
	return i < r->nparams ? r->params[i] : NULL;
}

void nb_resp_json(nb_resp_t *resp, int status, json_t *body)
{
	resp->status = status;
	resp->content_type = "application/json";
	nb_buf_reset(&resp->body);
	if (body) {
		char *s = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(6));
		if (s) {
			nb_buf_puts(&resp->body, s);
			free(s);
		}
		json_decref(body);
	}
}

void nb_resp_raw(nb_resp_t *resp, int status, const char *content_type, const char *body, size_t len)
{
	resp->status = status;
	resp->content_type = content_type;
	nb_buf_reset(&resp->body);
	nb_buf_append(&resp->body, body, len);
}

void nb_resp_empty(nb_resp_t *resp, int status)
{
	resp->status = status;
	resp->content_type = NULL;
	nb_buf_reset(&resp->body);
}

void nb_resp_header(nb_resp_t *resp, const char *name, const char *value)
{
	nb_buf_printf(&resp->headers, "%s: %s\r\n", name, value);
}

int nb_resp_error(nb_req_t *r, int err, const char *message, const char *field)
{
	nb_resp_t *resp = &r->resp;
	resp->status = nb_err_status(err);
	resp->content_type = "application/json";
	nb_buf_reset(&resp->body);
	const char *code = nb_err_code(err);
	const char *msg = message ? message : nb_err_message(err);
	nb_buf_puts(&resp->body, "{\"error\":{\"code\":");
	nb_buf_json_str(&resp->body, code, strlen(code));
	nb_buf_puts(&resp->body, ",\"message\":");
	nb_buf_json_str(&resp->body, msg, strlen(msg));
	if (field) {
		nb_buf_puts(&resp->body, ",\"field\":");
		nb_buf_json_str(&resp->body, field, strlen(field));
	}
	nb_buf_puts(&resp->body, ",\"request_id\":");
	nb_buf_json_str(&resp->body, r->request_id, strlen(r->request_id));
	nb_buf_puts(&resp->body, "}}");
	if (resp->status == 503 || resp->status == 429) {
		if (resp->retry_after <= 0)
			resp->retry_after = 1;
	}
	return err;
}

