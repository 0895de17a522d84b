/*
 * search.c — GET /v1/notebooks/{id}/search?q=&limit=: ranked chunks with
 * highlighted snippets.
 *
 * A query in websearch syntax must match with all its words
 * ("match": "all"). A plain query (no quotes, OR or -exclusion) that way
 * finds nothing is asked again with any of its words, stop words dropped,
 * ranked ("match": "any"): a student's question rarely shares every word
 * with the sentence that answers it. In a plain query the last word, when
 * the query does not end in a space, is matched as a prefix (the word being
 * typed). Two statements at most; the second only when the first is empty.
 *
 * The store marks matches with \x01 … \x02 (control characters never present
 * in stored text) and, writing the answer from binary rows, HTML-escapes the
 * snippet and turns the markers into <mark>…</mark>, so a client can insert
 * it as HTML safely.
 */
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/util.h"
#include "core/buf.h"
#include "core/jsonw.h"
#include "core/err.h"
#include "core/utf8.h"
#include "store/notebooks.h"
#include "store/sources.h"

#define Q_MAX_CHARS 1000

static bool is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

/* True if q uses websearch operators: a quote, a word starting with '-', or
 * the word "or" (any case). */
static bool has_operators(const char *q)
{
	if (strchr(q, '"'))
		return true;
	const char *p = q;
	while (*p) {
		while (is_space(*p))
			p++;
		const char *w = p;
		while (*p && !is_space(*p))
			p++;
		if (p > w && (*w == '-' || (p - w == 2 && (w[0] | 0x20) == 'o' && (w[1] | 0x20) == 'r')))
			return true;
	}
	return false;
}

/* Splits a plain query into its head and the word being typed. */
static void split_last(nb_req_t *req, const char *q, nb_search_query_t *sq)
{
	size_t n = strlen(q);
	sq->head = q;
	sq->last = NULL;
	if (n == 0 || is_space(q[n - 1]))
		return;
	size_t w = n;
	while (w > 0 && !is_space(q[w - 1]))
		w--;
	sq->head = nb_arena_strndup(req->arena, q, w);
	sq->last = q + w;
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
	nb_search_query_t sq = {q, NULL, false};
	bool plain = !has_operators(q);
	if (plain)
		split_last(req, q, &sq);
	nb_conn_t *c;
	PGresult *rows = NULL;
	int rc;
	const char *nb = nb_req_param(req, 0);
	if ((rc = nb_req_db(req, &c)) < 0 || (rc = nb_store_notebook_check(c, req->user_id, nb)) < 0 ||
	    (rc = nb_store_search(c, nb, &sq, limit, &rows)) < 0)
		return nb_fail(req, rc);
	if (plain && PQntuples(rows) == 0) {
		PQclear(rows);
		rows = NULL;
		sq.match_any = true;
		if ((rc = nb_store_search(c, nb, &sq, limit, &rows)) < 0)
			return nb_fail(req, rc);
	}
	nb_jsonw_t w;
	nb_resp_json_begin(req, &w, true); /* byte for byte what jansson wrote here before */
	nb_store_search_write(&w, rows, sq.match_any);
	PQclear(rows);
	return 0;
}
