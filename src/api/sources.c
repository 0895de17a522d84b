/*
 * sources.c — POST/GET /v1/notebooks/{id}/sources, GET/PATCH/DELETE
 * /v1/sources/{id}, POST /v1/sources/{id}/restore and /retry,
 * GET /v1/sources/{id}/chunks.
 *
 * Adding a source writes the document (deduplicated by SHA-256 per user),
 * the source and its ingestion job in one transaction, then answers 202: the
 * work happens in a job worker. Uploads hash up to tens of megabytes, so the
 * route runs on the handler thread pool, not on an event loop; so does the
 * resolution of a URL source's host at submission (refused when it is a
 * private address; the fetch checks again, on every redirect). A retry
 * sets a failed source back to pending and enqueues its new job in one
 * transaction.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/app.h"
#include "api/util.h"
#include "core/err.h"
#include "core/utf8.h"
#include "core/uuid.h"
#include "db/db.h"
#include "http/multipart.h"
#include "jobs/queue.h"
#include "rag/extract.h"
#include "core/config.h"
#include "rag/fetch.h"
#include "rag/title.h"
#include "store/jobs.h"
#include "store/notebooks.h"
#include "store/sources.h"

#define TITLE_MAX 500
#define DERIVED_TITLE_MAX 80 /* code points of a title made from content */

/* What a new source is made of, from JSON or from a multipart upload. */
typedef struct new_source {
	const char *kind;
	const char *title; /* may be NULL: derived */
	const char *url;
	const char *data;
	size_t len;
	const char *filename; /* an upload's, or NULL */
	bool title_derived;   /* the server chose the title */
} new_source_t;

static const char k_bad_title[] = "title: must not be blank or hold control characters or bidirectional overrides";

/* The default title: a URL, the content's title or first line, the file
 * name, else "Untitled" (a label that never cuts a character). */
static void derive_title(nb_req_t *req, new_source_t *s)
{
	if (s->title)
		return;
	char *t = NULL;
	if (!strcmp(s->kind, "url"))
		t = nb_title_clean(s->url, strlen(s->url), false, TITLE_MAX);
	else if (strcmp(s->kind, "pdf") && s->data && (!s->filename || !strcmp(s->kind, "html")))
		t = nb_title_from_content(s->kind, (const unsigned char *)s->data, s->len, DERIVED_TITLE_MAX);
	if (!t && s->filename)
		t = nb_title_clean(s->filename, strlen(s->filename), false, TITLE_MAX);
	s->title = t ? nb_arena_strdup(req->arena, t) : "Untitled";
	s->title_derived = true;
	free(t);
}

/* The URL's host must not be, or resolve to, a non-public address (unless
 * NOTEBOOKD_ALLOW_PRIVATE_URLS). This route runs on the handler thread pool,
 * where resolving (bounded by the fetch connect timeout) may block. */
static int check_url(nb_req_t *req, const char *url)
{
	char why[200], msg[400];
	if (nb_fetch_check_url(url, why, sizeof why) < 0) {
		snprintf(msg, sizeof msg, "url: %s", why);
		return nb_resp_error(req, NB_EINVALID, msg, "url");
	}
	if (nb_cfg.allow_private_urls)
		return 0;
	int timeout = nb_cfg.fetch_timeout_s < 10 ? nb_cfg.fetch_timeout_s : 10;
	if (nb_fetch_check_host(url, timeout) < 0)
		return nb_resp_error(req, NB_EINVALID,
				     "url: address not allowed: the host is or resolves to a private, loopback or "
				     "link-local address (NOTEBOOKD_ALLOW_PRIVATE_URLS=1 allows it, for tests only)",
				     "url");
	return 0;
}

static int from_json(nb_req_t *req, new_source_t *s)
{
	static const char *const fields[] = {"kind", "title", "content", "url", NULL};
	int rc;
	const char *content;
	if ((rc = nb_body_required(req)) < 0 || (rc = nb_body_only(req, fields)) < 0 ||
	    (rc = nb_body_str(req, "kind", true, false, 16, &s->kind)) < 0 ||
	    (rc = nb_body_str(req, "title", false, false, TITLE_MAX, &s->title)) < 0)
		return rc;
	if (s->title && !nb_utf8_label_ok(s->title, strlen(s->title)))
		return nb_resp_error(req, NB_EINVALID, k_bad_title, "title");
	if (!strcmp(s->kind, "url")) {
		if ((rc = nb_body_str(req, "url", true, false, 2048, &s->url)) < 0)
			return rc;
		return check_url(req, s->url);
	}
	if (strcmp(s->kind, "text") && strcmp(s->kind, "markdown") && strcmp(s->kind, "html"))
		return nb_resp_error(req, NB_EINVALID, "kind: must be text, markdown, html or url "
						       "(upload PDFs as multipart/form-data)",
				     "kind");
	if ((rc = nb_body_str(req, "content", true, false, (size_t)-1, &content)) < 0)
		return rc;
	s->data = content;
	s->len = strlen(content);
	return 0;
}

/* The kind of an uploaded file: its part's content type, else its extension. */
static const char *upload_kind(const nb_part_t *f)
{
	const char *ct = f->content_type;
	if (ct) {
		if (!strcmp(ct, "application/pdf"))
			return "pdf";
		if (!strcmp(ct, "text/plain"))
			return "text";
		if (!strcmp(ct, "text/markdown") || !strcmp(ct, "text/x-markdown"))
			return "markdown";
		if (!strcmp(ct, "text/html") || !strcmp(ct, "application/xhtml+xml"))
			return "html";
	}
	const char *dot = f->filename ? strrchr(f->filename, '.') : NULL;
	if (dot) {
		if (!strcasecmp(dot, ".pdf"))
			return "pdf";
		if (!strcasecmp(dot, ".txt") || !strcasecmp(dot, ".text"))
			return "text";
		if (!strcasecmp(dot, ".md") || !strcasecmp(dot, ".markdown"))
			return "markdown";
		if (!strcasecmp(dot, ".html") || !strcasecmp(dot, ".htm"))
			return "html";
	}
	return NULL;
}

static int from_multipart(nb_req_t *req, nb_multipart_t *m, new_source_t *s)
{
	char why[200], msg[260];
	if (nb_multipart_parse(nb_req_header(req, "content-type"), req->body, req->body_len, m, why, sizeof why) < 0)
		return nb_resp_error(req, NB_EBADREQ, why, NULL);
	for (int i = 0; i < m->nparts; i++) {
		if (strcmp(m->parts[i].name, "file") && strcmp(m->parts[i].name, "title")) {
			snprintf(msg, sizeof msg, "%.200s: unknown part (send file and, optionally, title)",
				 m->parts[i].name);
			return nb_resp_error(req, NB_EINVALID, msg, m->parts[i].name);
		}
	}
	const nb_part_t *f = nb_multipart_get(m, "file");
	if (!f)
		return nb_resp_error(req, NB_EINVALID, "file: is required", "file");
	if (f->len == 0)
		return nb_resp_error(req, NB_EINVALID, "file: is empty", "file");
	s->kind = upload_kind(f);
	if (!s->kind) {
		snprintf(msg, sizeof msg, "unsupported file type%s%s; upload PDF, text, Markdown or HTML",
			 f->content_type ? ": " : "", f->content_type ? f->content_type : "");
		return nb_resp_error(req, NB_EMEDIATYPE, msg, "file");
	}
	s->data = f->data;
	s->len = f->len;
	const nb_part_t *t = nb_multipart_get(m, "title");
	if (t) {
		size_t chars = nb_utf8_valid(t->data, t->len) ? nb_utf8_count(t->data, t->len) : 0;
		if (chars < 1 || chars > TITLE_MAX || memchr(t->data, 0, t->len))
			return nb_resp_error(req, NB_EINVALID, "title: must be 1 to 500 characters", "title");
		if (!nb_utf8_label_ok(t->data, t->len))
			return nb_resp_error(req, NB_EINVALID, k_bad_title, "title");
		s->title = nb_arena_strndup(req->arena, t->data, t->len);
	}
	s->filename = f->filename && *f->filename ? f->filename : NULL;
	return 0;
}

/*
 * The end of a transaction that made or reset a source (rc so far): its
 * ingestion job, then COMMIT, and the answer {source, job}. On any failure
 * everything is rolled back and source is released. Takes ownership of source.
 */
static int enqueue_ingest(nb_req_t *req, nb_conn_t *c, int rc, const char *sid, const char *doc, json_t *source,
			  json_t **out)
{
	char jid[37];
	json_t *job = NULL;
	nb_job_spec_t spec = {.kind = "ingest_source", .user_id = req->user_id, .source_id = sid, .document_id = doc};
	if (rc == 0)
		rc = nb_jobs_enqueue(c, &spec, jid);
	if (rc == 0)
		rc = nb_store_job_get(c, req->user_id, jid, &job);
	if (rc == 0)
		rc = nb_db_commit(c);
	if (rc < 0) {
		nb_db_rollback(c);
		json_decref(source);
		json_decref(job);
		return rc;
	}
	*out = json_pack("{s:o, s:o}", "source", source, "job", job);
	return 0;
}

/* Document, source and job in one transaction. */
static int create(nb_req_t *req, nb_conn_t *c, const char *notebook_id, new_source_t *s, json_t **out)
{
	char doc[37] = "", sid[37];
	bool has_text = false;
	int rc = nb_db_begin(c);
	if (rc == 0)
		rc = nb_store_notebook_check(c, req->user_id, notebook_id);
	if (rc == 0 && s->data) {
		unsigned char sha[32];
		crypto_hash_sha256(sha, (const unsigned char *)s->data, s->len);
		rc = nb_store_document_upsert(c, req->user_id, sha, nb_extract_mime_for_kind(s->kind), s->data, s->len, doc, &has_text);
	}
	json_t *source = NULL;
	nb_uuid_v7_str(sid);
	if (rc == 0)
		rc = nb_store_source_create(c, sid, notebook_id, s->data ? doc : NULL, s->title, s->title_derived,
					    s->kind, s->url, s->data ? (long)s->len : -1, &source);
	return enqueue_ingest(req, c, rc, sid, s->data ? doc : NULL, source, out);
}

int nb_api_source_create(nb_req_t *req)
{
	new_source_t s = {0};
	nb_multipart_t m = {0};
	const char *ct = nb_req_header(req, "content-type");
	bool multipart = ct && !strncasecmp(ct, "multipart/form-data", 19);
	int rc = multipart ? from_multipart(req, &m, &s) : from_json(req, &s);
	if (rc == 0) {
		derive_title(req, &s);
		nb_conn_t *c;
		json_t *out = NULL;
		if ((rc = nb_req_db(req, &c)) == 0 && (rc = create(req, c, nb_req_param(req, 0), &s, &out)) == 0)
			nb_resp_json(&req->resp, 202, out);
		else
			nb_fail(req, rc);
	}
	nb_multipart_dispose(&m);
	return rc;
}

int nb_api_sources_list(nb_req_t *req)
{
	nb_page_t page;
	int rc = nb_page_parse(req, 20, 100, &page);
	if (rc < 0)
		return rc;
	nb_conn_t *c;
	PGresult *rows = NULL;
	const char *nb = nb_req_param(req, 0);
	if ((rc = nb_req_db(req, &c)) < 0 || (rc = nb_store_notebook_check(c, req->user_id, nb)) < 0 ||
	    (rc = nb_store_sources_list(c, req->user_id, nb, page.limit, page.after_ts, page.after_id, &rows)) < 0)
		return nb_fail(req, rc);
	nb_resp_list_write(req, rows, page.limit, nb_store_sources_write);
	return 0;
}

int nb_api_source_get(nb_req_t *req)
{
	nb_conn_t *c;
	json_t *s = NULL;
	int rc = nb_req_db(req, &c);
	if (rc < 0 || (rc = nb_store_source_get(c, req->user_id, nb_req_param(req, 0), &s)) < 0)
		return nb_fail(req, rc);
	nb_resp_json(&req->resp, 200, s);
	return 0;
}

int nb_api_source_delete(nb_req_t *req)
{
	nb_conn_t *c;
	int rc = nb_req_db(req, &c);
	if (rc < 0 || (rc = nb_store_source_trash(c, req->user_id, nb_req_param(req, 0))) < 0)
		return nb_fail(req, rc);
	nb_resp_empty(&req->resp, 204);
	return 0;
}

int nb_api_source_update(nb_req_t *req)
{
	static const char *const fields[] = {"title", NULL};
	const char *title;
	int rc;
	if ((rc = nb_body_required(req)) < 0 || (rc = nb_body_only(req, fields)) < 0 ||
	    (rc = nb_body_str(req, "title", true, false, TITLE_MAX, &title)) < 0)
		return rc;
	if (!nb_utf8_label_ok(title, strlen(title)))
		return nb_resp_error(req, NB_EINVALID, k_bad_title, "title");
	nb_conn_t *c;
	json_t *s = NULL;
	if ((rc = nb_req_db(req, &c)) < 0 ||
	    (rc = nb_store_source_rename(c, req->user_id, nb_req_param(req, 0), title, &s)) < 0)
		return nb_fail(req, rc);
	nb_resp_json(&req->resp, 200, s);
	return 0;
}

static const char *const k_no_fields[] = {NULL};

int nb_api_source_restore(nb_req_t *req)
{
	nb_conn_t *c;
	json_t *s = NULL;
	int rc = nb_body_only(req, k_no_fields);
	if (rc < 0)
		return rc;
	rc = nb_req_db(req, &c);
	if (rc < 0 || (rc = nb_store_source_restore(c, req->user_id, nb_req_param(req, 0), &s)) < 0)
		return nb_fail(req, rc);
	nb_resp_json(&req->resp, 200, s);
	return 0;
}

/* The status change and the new job: one transaction. */
static int retry(nb_req_t *req, nb_conn_t *c, const char *sid, json_t **out)
{
	char doc[37] = "";
	json_t *source = NULL;
	int rc = nb_db_begin(c);
	if (rc == 0)
		rc = nb_store_source_retry(c, req->user_id, sid, &source, doc);
	return enqueue_ingest(req, c, rc, sid, doc[0] ? doc : NULL, source, out);
}

int nb_api_source_retry(nb_req_t *req)
{
	nb_conn_t *c;
	json_t *out = NULL;
	int rc = nb_body_only(req, k_no_fields);
	if (rc < 0)
		return rc;
	rc = nb_req_db(req, &c);
	if (rc == 0)
		rc = retry(req, c, nb_req_param(req, 0), &out);
	if (rc == NB_ECONFLICT)
		return nb_resp_error(req, NB_ECONFLICT, "only a failed source can be retried", NULL);
	if (rc < 0)
		return nb_fail(req, rc);
	nb_resp_json(&req->resp, 202, out);
	return 0;
}

int nb_api_chunks_list(nb_req_t *req)
{
	nb_page_t page;
	int rc = nb_page_parse(req, 20, 100, &page);
	if (rc < 0)
		return rc;
	int after = -1;
	if (page.after_ts) {
		char *end;
		long v = strtol(page.after_ts, &end, 10);
		if (*end || v < 0 || v > 100000000)
			return nb_resp_error(req, NB_EINVALID, "cursor: not a cursor this server made", "cursor");
		after = (int)v;
	}
	nb_conn_t *c;
	PGresult *rows = NULL;
	if ((rc = nb_req_db(req, &c)) < 0 ||
	    (rc = nb_store_chunks_list(c, req->user_id, nb_req_param(req, 0), page.limit, after, &rows)) < 0)
		return nb_fail(req, rc);
	nb_resp_list_write(req, rows, page.limit, nb_store_chunks_write);
	return 0;
}
