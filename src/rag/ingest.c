/*
 * ingest.c — the ingest_source job: fetch (URL sources), extract, chunk,
 * index.
 *
 * Steps, each idempotent so that a retried job simply runs them again:
 * mark the source processing; for a URL, fetch it (SSRF-checked) and attach
 * the document its bytes deduplicate to; extract the document's text unless
 * an earlier source with the same bytes already did (deduplication means no
 * second extraction); chunk; replace the source's chunks and mark it ready in
 * one transaction. A problem with the input itself (a damaged PDF, a refused
 * URL) fails the source with a readable reason and is not retried; a
 * database hiccup is retried with backoff, and the source is failed only when
 * the last attempt fails. A fetched HTML page's <title> replaces a title
 * the server chose (the URL).
 *
 * reindex_notebook (a notebook's language changed) rewrites the stored
 * vectors of the notebook's chunks in one statement.
 */
#include "rag/ingest.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "jobs/queue.h"
#include "rag/chunk.h"
#include "rag/extract.h"
#include "rag/fetch.h"
#include "rag/study_jobs.h"
#include "rag/title.h"
#include "store/notebooks.h"
#include "store/sources.h"
#include "store/study.h"

/* A failure of the input: the source fails and the job is not retried. */
static int input_failed(nb_conn_t *c, const char *source_id, const char *reason, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s", reason);
	nb_store_source_set_status(c, source_id, "failed", reason);
	return NB_JOB_PERMANENT;
}

/* URL sources: fetch and attach the document. Fills kind (what to extract as). */
static int fetch_url(nb_conn_t *c, const char *source_id, nb_ingest_info_t *info, char *kind, size_t kindlen,
		     char *err, size_t errlen)
{
	nb_fetch_opts_t o = {
		.max_bytes = (size_t)nb_cfg.max_upload_bytes,
		.timeout_s = nb_cfg.fetch_timeout_s,
		.connect_timeout_s = nb_cfg.fetch_timeout_s < 10 ? nb_cfg.fetch_timeout_s : 10,
		.max_redirects = 5,
		.allow_private = nb_cfg.allow_private_urls,
	};
	nb_fetched_t f = {0};
	char why[256];
	if (nb_fetch_url(info->url, &o, &f, why, sizeof why) < 0)
		return input_failed(c, source_id, why, err, errlen);
	const char *k = nb_fetch_kind_for_mime(f.mime);
	if (!k) {
		snprintf(why, sizeof why, "unsupported content type: %s", f.mime && *f.mime ? f.mime : "unknown");
		nb_fetched_dispose(&f);
		return input_failed(c, source_id, why, err, errlen);
	}
	snprintf(kind, kindlen, "%s", k);
	unsigned char sha[32];
	crypto_hash_sha256(sha, f.data, f.len);
	bool has_text = false;
	int rc = nb_store_document_upsert(c, info->user_id, sha, nb_extract_mime_for_kind(k), f.data, f.len, info->document_id,
					  &has_text);
	if (rc == 0)
		rc = nb_store_source_set_document(c, source_id, info->document_id, (long)f.len);
	if (rc == 0 && !strcmp(k, "html")) { /* the page's title replaces the URL the server chose */
		char *title = nb_title_from_content("html", f.data, f.len, NB_SOURCE_TITLE_MAX);
		if (title)
			rc = nb_store_source_set_derived_title(c, source_id, title);
		free(title);
	}
	info->has_text = has_text;
	nb_fetched_dispose(&f);
	if (rc < 0)
		snprintf(err, errlen, "could not store the fetched page");
	return rc;
}

/* Extracts the document unless done before; loads its text. */
static int document_text(nb_conn_t *c, const char *source_id, const nb_ingest_info_t *info, const char *kind,
			 nb_extracted_t *out, char *err, size_t errlen)
{
	if (!info->has_text) {
		unsigned char *bytes = NULL;
		size_t len = 0;
		int rc = nb_store_document_content(c, info->document_id, &bytes, &len);
		if (rc < 0) {
			snprintf(err, errlen, "could not read the document");
			return rc;
		}
		char why[256];
		rc = nb_extract(kind, bytes, len, out, why, sizeof why);
		free(bytes);
		if (rc < 0)
			return input_failed(c, source_id, why, err, errlen);
		rc = nb_store_document_set_text(c, info->document_id, out->text, out->page_offsets, out->page_count);
		nb_extracted_dispose(out);
		if (rc < 0) {
			snprintf(err, errlen, "could not store the extracted text");
			return rc;
		}
	}
	memset(out, 0, sizeof *out);
	int rc = nb_store_document_text(c, info->document_id, &out->text, &out->page_offsets, &out->page_count);
	if (rc < 0) {
		snprintf(err, errlen, "could not read the extracted text");
		return rc;
	}
	out->len = strlen(out->text);
	return 0;
}

/* Control characters other than tab and newline become spaces (same length,
 * so offsets hold): snippets use \x01 and \x02 as match markers. */
static void scrub_controls(char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if ((ch < 0x20 && ch != '\n' && ch != '\t') || ch == 0x7f)
			s[i] = ' ';
	}
}

static int ingest(const nb_job_t *job, nb_job_ctx_t *ctx, char *err, size_t errlen)
{
	nb_conn_t *c = nb_job_ctx_conn(ctx);
	if (!c) { /* the database is away: the worker re-queues the job (attempt not counted) */
		snprintf(err, errlen, "database unavailable");
		return NB_EUNAVAIL;
	}
	const char *sid = job->source_id;
	nb_ingest_info_t info;
	int rc = nb_store_ingest_load(c, sid, &info);
	if (rc == NB_ENOTFOUND || (rc == 0 && info.gone)) {
		nb_ingest_info_dispose(&info);
		return 0; /* deleted meanwhile: nothing to do */
	}
	if (rc < 0) {
		snprintf(err, errlen, "could not load the source");
		return rc;
	}
	nb_store_source_set_status(c, sid, "processing", NULL);
	/* the source guide describes the chunks being replaced: it is made again once they are */
	if ((rc = nb_store_source_guide_clear(c, sid)) < 0) {
		snprintf(err, errlen, "could not reset the source guide");
		nb_ingest_info_dispose(&info);
		return rc;
	}
	char kind[16];
	snprintf(kind, sizeof kind, "%s", nb_extract_kind_for_mime(info.mime, info.kind));
	if (!strcmp(info.kind, "url") && !info.document_id[0])
		rc = fetch_url(c, sid, &info, kind, sizeof kind, err, errlen);
	nb_extracted_t ex = {0};
	if (rc == 0)
		rc = document_text(c, sid, &info, kind, &ex, err, errlen);
	nb_chunk_t *chunks = NULL;
	size_t n = 0;
	if (rc == 0) {
		scrub_controls(ex.text, ex.len);
		if (nb_chunk_text(ex.text, ex.len, ex.page_offsets, ex.page_count, nb_cfg.chunk_target_chars,
				  nb_cfg.chunk_overlap_chars, &chunks, &n) < 0)
			rc = input_failed(c, sid, "the text could not be split into chunks", err, errlen);
	}
	if (rc == 0 && n == 0)
		rc = input_failed(c, sid, "no text could be extracted", err, errlen);
	if (rc == 0 && (rc = nb_store_chunks_replace(c, sid, info.notebook_id, ex.text, chunks, n, ex.page_count)) < 0)
		snprintf(err, errlen, "could not store the chunks");
	/*
	 * The source guide's job follows the chunks' commit (nb_store_chunks_replace owns its transaction).
	 * Should enqueueing fail, this job fails and runs again, which replaces the chunks and enqueues
	 * again: at least one guide job follows every ready source; a second one only remakes the guide.
	 */
	bool ready = rc == 0;
	if (ready && (rc = nb_study_enqueue_source_guide(c, job->user_id, sid)) < 0)
		snprintf(err, errlen, "could not enqueue the source guide");
	if (rc < 0 && !ready && rc != NB_JOB_PERMANENT && nb_job_fails_for_good(job, rc))
		nb_store_source_set_status(c, sid, "failed", err);
	else if (rc == 0)
		nb_info("source %s ready: %zu chunks", sid, n);
	free(chunks);
	nb_extracted_dispose(&ex);
	nb_ingest_info_dispose(&info);
	return rc;
}

/* reindex_notebook: the notebook's chunks get vectors in its new language. */
static int reindex(const nb_job_t *job, nb_job_ctx_t *ctx, char *err, size_t errlen)
{
	const char *id = json_string_value(json_object_get(job->payload, "notebook_id"));
	if (!id) {
		snprintf(err, errlen, "the job names no notebook");
		return NB_JOB_PERMANENT;
	}
	nb_conn_t *c = nb_job_ctx_conn(ctx);
	if (!c) {
		snprintf(err, errlen, "the database is unavailable");
		return NB_EUNAVAIL;
	}
	long n = 0;
	int rc = nb_store_notebook_reindex(c, id, &n);
	if (rc < 0)
		snprintf(err, errlen, "could not re-index the notebook");
	else
		nb_info("notebook %s re-indexed: %ld chunks", id, n);
	return rc;
}

void nb_ingest_register(void)
{
	nb_jobs_register("ingest_source", ingest);
	nb_jobs_register("reindex_notebook", reindex);
}
