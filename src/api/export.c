/*
 * export.c — GET /v1/me/export: everything the user owns as one JSON
 * document, streamed.
 *
 * The store opens one snapshot with a cursor per kind of row, each ordered by
 * notebook; this handler merges them while writing, so memory holds one
 * batch per cursor however large the account, and the statement count grows
 * with batches, not with notebooks. An error after the first byte aborts the
 * stream (the client sees a truncated transfer, never a wrong document).
 */
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/util.h"
#include "core/buf.h"
#include "core/err.h"
#include "store/export.h"

#define FLUSH_AT (64 * 1024)

typedef struct exporter {
	nb_req_t *req;
	nb_buf_t out;
	nb_export_rows_t rows[NB_EXPORT_CURSORS_];
	int err;
} exporter_t;

static void flush(exporter_t *x, bool force)
{
	if (x->err || (!force && x->out.len < FLUSH_AT) || x->out.len == 0)
		return;
	if (nb_stream_write(x->req, x->out.data, x->out.len) < 0)
		x->err = NB_EUNAVAIL; /* the client went away */
	nb_buf_reset(&x->out);
}

/* Writes `"key":[…]` with every row of cursor `which` for this notebook. Returns the count. */
static int write_children(exporter_t *x, const char *key, nb_export_cursor_t which, const char *notebook_id)
{
	nb_buf_printf(&x->out, ",\"%s\":[", key);
	int n = 0;
	const char *nb, *json;
	int rc = 0;
	while (!x->err && (rc = nb_store_export_peek(&x->rows[which], &nb, &json)) > 0) {
		int cmp = strcmp(nb, notebook_id);
		if (cmp > 0)
			break;
		if (cmp == 0) { /* rows of notebooks not in the list (cmp < 0) cannot occur; skip them */
			nb_buf_puts(&x->out, n++ ? "," : "");
			nb_buf_json_compact(&x->out, json, strlen(json));
		}
		nb_store_export_next(&x->rows[which]);
		flush(x, false);
	}
	if (!x->err && rc < 0)
		x->err = rc;
	nb_buf_putc(&x->out, ']');
	return n;
}

static void write_notebooks(exporter_t *x)
{
	nb_buf_puts(&x->out, ",\"notebooks\":[");
	const char *id, *json;
	int rc = 0, n = 0;
	while (!x->err && (rc = nb_store_export_peek(&x->rows[NB_EXPORT_NOTEBOOKS], &id, &json)) > 0) {
		char nid[37];
		snprintf(nid, sizeof nid, "%s", id);
		nb_buf_puts(&x->out, n++ ? "," : "");
		nb_buf_json_compact(&x->out, json, strlen(json));
		x->out.len--; /* drop its closing brace: the object's children follow */
		nb_store_export_next(&x->rows[NB_EXPORT_NOTEBOOKS]);
		int sources = write_children(x, "sources", NB_EXPORT_SOURCES, nid);
		nb_buf_printf(&x->out, ",\"source_count\":%d", sources);
		write_children(x, "conversations", NB_EXPORT_CONVERSATIONS, nid);
		write_children(x, "quizzes", NB_EXPORT_QUIZZES, nid);
		write_children(x, "study_guides", NB_EXPORT_STUDY_GUIDES, nid);
		nb_buf_putc(&x->out, '}');
		flush(x, false);
	}
	if (!x->err && rc < 0)
		x->err = rc;
	nb_buf_putc(&x->out, ']');
}

static void write_generations(exporter_t *x)
{
	nb_buf_puts(&x->out, ",\"generations\":[");
	const char *nb, *json;
	int rc = 0, n = 0;
	while (!x->err && (rc = nb_store_export_peek(&x->rows[NB_EXPORT_GENERATIONS], &nb, &json)) > 0) {
		nb_buf_puts(&x->out, n++ ? "," : "");
		nb_buf_json_compact(&x->out, json, strlen(json));
		nb_store_export_next(&x->rows[NB_EXPORT_GENERATIONS]);
		flush(x, false);
	}
	if (!x->err && rc < 0)
		x->err = rc;
	nb_buf_putc(&x->out, ']');
}

int nb_api_me_export(nb_req_t *req)
{
	nb_conn_t *c;
	int rc = nb_req_db(req, &c);
	if (rc < 0)
		return nb_fail(req, rc);
	char *user = NULL, *at = NULL;
	if ((rc = nb_store_export_begin(c, req->user_id, &user, &at)) < 0)
		return nb_fail(req, rc);
	exporter_t x = {.req = req};
	for (int i = 0; i < NB_EXPORT_CURSORS_; i++)
		nb_store_export_rows_init(&x.rows[i], c, (nb_export_cursor_t)i);
	nb_resp_header(&req->resp, "Content-Disposition", "attachment; filename=\"notebookd-export.json\"");
	if (nb_stream_begin(req, 200, "application/json") < 0)
		x.err = NB_EUNAVAIL;
	nb_buf_printf(&x.out, "{\"exported_at\":\"%s\",\"user\":", at);
	nb_buf_json_compact(&x.out, user, strlen(user));
	write_notebooks(&x);
	write_generations(&x);
	nb_buf_putc(&x.out, '}');
	flush(&x, true);
	for (int i = 0; i < NB_EXPORT_CURSORS_; i++)
		nb_store_export_rows_dispose(&x.rows[i]);
	nb_store_export_end(c);
	if (x.err)
		nb_stream_abort(req);
	nb_buf_dispose(&x.out);
	free(user);
	free(at);
	return 0;
}
