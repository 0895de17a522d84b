/*
 * search.c — GET /v1/notebooks/{id}/search?q=&limit=: ranked chunks with
 * highlighted snippets.
 *
 * The store marks matches with \x01 … \x02 (control characters never present
 * in stored text); here the snippet is HTML-escaped and the markers become
 * <mark>…</mark>, so a client can insert it as HTML safely.
 */
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/util.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/utf8.h"
#include "store/notebooks.h"
#include "store/sources.h"

#define Q_MAX_CHARS 1000

static char *mark_up(const char *s)
{
	nb_buf_t b = NB_BUF_INIT;
	for (; *s; s++) {
		switch (*s) {
		case '\x01': nb_buf_puts(&b, "<mark>"); break;
		case '\x02': nb_buf_puts(&b, "</mark>"); break;
		case '&': nb_buf_puts(&b, "&amp;"); break;
		case '<': nb_buf_puts(&b, "&lt;"); break;
		case '>': nb_buf_puts(&b, "&gt;"); break;
		case '"': nb_buf_puts(&b, "&quot;"); break;
		case '\'': nb_buf_puts(&b, "&#39;"); break;
		default: nb_buf_putc(&b, *s);
		}
	}
	return nb_buf_steal(&b, NULL);
}

int nb_api_search(nb_req_t *req)
{
	const char *q = nb_req_query(req, "q");
	size_t chars = q ? nb_utf8_count(q, strlen(q)) : 0;
	const char *t = q;
	while (t && (*t == ' ' || *t == '\t' || *t == '\n' || *t == '\r'))
		t++;
	if (!q || !*t || chars > Q_MAX_CHARS || !nb_utf8_valid(q, strlen(q)))
		return nb_resp_error(req, NB_EINVALID, "q: must be 1 to 1000 characters of text", "q");
	int limit = 10;
	const char *l = nb_req_query(req, "limit");
	if (l) {
		char *end;
		long v = strtol(l, &end, 10);
		if (!*l || *end || v < 1 || v > 50)
			return nb_resp_error(req, NB_EINVALID, "limit: must be an integer from 1 to 50", "limit");
		limit = (int)v;
	}
	nb_conn_t *c;
	json_t *items = NULL;
	int rc;
	const char *nb = nb_req_param(req, 0);
	if ((rc = nb_req_db(req, &c)) < 0 || (rc = nb_store_notebook_check(c, req->user_id, nb)) < 0 ||
	    (rc = nb_store_search(c, nb, q, limit, &items)) < 0)
		return nb_fail(req, rc);
	size_t i;
	json_t *it;
	json_array_foreach(items, i, it)
	{
		json_t *sn = json_object_get(it, "snippet");
		if (json_is_string(sn)) {
			char *m = mark_up(json_string_value(sn));
			json_object_set_new(it, "snippet", json_string(m));
			free(m);
		}
	}
	nb_resp_json(&req->resp, 200, json_pack("{s:o, s:n}", "items", items, "next_cursor"));
	return 0;
}
