/*
 * conversations.c — /v1/notebooks/{id}/conversations, /v1/conversations/{id}
 * and its messages: asking a notebook's sources.
 *
 * Asking (POST …/messages) reads the conversation's recent turns, retrieves
 * chunks (rag/retrieve), runs the generator (rag/generate), and hands the
 * answer to the store, which verifies every claimed citation against the
 * chunk text it reads back inside the transaction that stores the question,
 * the answer and the generation record (rag/citations). A claim that does
 * not check out is dropped and counted, never shown. A generator that fails
 * stores nothing but a failed generation record and answers 503.
 *
 * With `Accept: text/event-stream` the same work streams: the checks that
 * can fail with 404/422 (and retrieval) run first and answer plainly; then
 * the stream begins and the generator's deltas go out as `event: delta`, a
 * `: keep-alive` comment after NOTEBOOKD_CHAT_KEEPALIVE_MS of silence, and
 * the stored messages as `event: done` (or the error envelope as `event:
 * error`, with only a failed generation record stored). A write that fails
 * (the client left) cancels the generation, which drops its upstream
 * request. The route runs as a coroutine: the openai generator parks it on
 * the loop's libcurl multi handle while tokens arrive (rag/gen_openai.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/util.h"
#include "core/alloc.h"
#include "core/config.h"
#include "core/err.h"
#include "core/timeutil.h"
#include "core/utf8.h"
#include "core/uuid.h"
#include "db/pool.h"
#include "rag/citations.h"
#include "rag/generate.h"
#include "rag/retrieve.h"
#include "store/conversations.h"
#include "store/notebooks.h"

#define TITLE_MAX 200
#define CONTENT_MAX 10000
#define HISTORY_TURNS 6	   /* messages of context: the last three questions and answers */
#define RETRIEVE_CHUNKS 16 /* chunks given to the generator: ts_rank_cd knows no word rarity, the generator does */

static int answer(nb_req_t *req, int rc, int status, json_t *body)
{
	if (rc < 0)
		return nb_fail(req, rc);
	nb_resp_json(&req->resp, status, body);
	return 0;
}

int nb_api_conversation_create(nb_req_t *req)
{
	static const char *const fields[] = {"title", NULL};
	const char *title;
	int rc;
	if ((rc = nb_body_only(req, fields)) < 0 ||
	    (rc = nb_body_str(req, "title", false, false, TITLE_MAX, &title)) < 0)
		return rc;
	if (title && !nb_utf8_label_ok(title, strlen(title)))
		return nb_resp_error(req, NB_EINVALID, "title: must be a single line of visible text", "title");
	nb_conn_t *c;
	if ((rc = nb_req_db(req, &c)) < 0)
		return nb_fail(req, rc);
	char id[37];
	nb_uuid_v7_str(id);
	json_t *conv = NULL;
	rc = nb_store_conversation_create(c, req->user_id, id, nb_req_param(req, 0), title, &conv);
	return answer(req, rc, 201, conv);
}

int nb_api_conversations_list(nb_req_t *req)
{
	nb_page_t page;
	int rc = nb_page_parse(req, 20, 100, &page);
	if (rc < 0)
		return rc;
	nb_conn_t *c;
	const char *nb = nb_req_param(req, 0);
	PGresult *rows = NULL;
	if ((rc = nb_req_db(req, &c)) < 0 || (rc = nb_store_notebook_check(c, req->user_id, nb)) < 0 ||
	    (rc = nb_store_conversations_list(c, req->user_id, nb, page.limit, page.after_ts, page.after_id, &rows)) <
		0)
		return nb_fail(req, rc);
	nb_resp_list_write(req, rows, page.limit, nb_store_conversations_write);
	return 0;
}

int nb_api_conversation_get(nb_req_t *req)
{
	nb_conn_t *c;
	int rc = nb_req_db(req, &c);
	if (rc < 0)
		return nb_fail(req, rc);
	PGresult *rows = NULL;
	if ((rc = nb_store_conversation_get(c, req->user_id, nb_req_param(req, 0), &rows)) < 0)
		return nb_fail(req, rc);
	nb_jsonw_t w;
	nb_resp_json_begin(req, &w, true); /* byte for byte what jansson wrote here before */
	nb_store_conversation_write(&w, rows, 0);
	PQclear(rows);
	return 0;
}

int nb_api_conversation_delete(nb_req_t *req)
{
	nb_conn_t *c;
	int rc = nb_req_db(req, &c);
	if (rc < 0 || (rc = nb_store_conversation_trash(c, req->user_id, nb_req_param(req, 0))) < 0)
		return nb_fail(req, rc);
	nb_resp_empty(&req->resp, 204);
	return 0;
}

int nb_api_messages_list(nb_req_t *req)
{
	nb_page_t page;
	int rc = nb_page_parse(req, 20, 100, &page);
	if (rc < 0)
		return rc;
	nb_conn_t *c;
	const char *id = nb_req_param(req, 0);
	PGresult *rows = NULL;
	if ((rc = nb_req_db(req, &c)) < 0 || (rc = nb_store_conversation_check(c, req->user_id, id, NULL)) < 0 ||
	    (rc = nb_store_messages_list(c, id, page.limit, page.after_ts, page.after_id, &rows)) < 0)
		return nb_fail(req, rc);
	nb_resp_list_write(req, rows, page.limit, nb_store_messages_write);
	return 0;
}

/* ---- asking ---------------------------------------------------------------- */

typedef struct ask {
	const nb_retrieved_t *ret;
	const nb_gen_result_t *res;
	char *rewritten; /* the answer with its markers renumbered (owned), or NULL */
} ask_t;

/* The stored chunk a claim names, among those read back in the transaction, or -1. */
static int find_chunk(const nb_chat_chunks_t *cc, const char *id)
{
	for (int i = 0; i < cc->n; i++)
		if (!strcmp(cc->ids[i], id))
			return i;
	return -1;
}

/*
 * nb_chat_verify_fn: keeps the claims that are exactly a span of a live chunk
 * of this notebook. An answer whose every claim was dropped has nothing
 * checked behind it: it becomes the "no answer" sentence.
 */
static json_t *verify_claims(void *ud, const nb_chat_chunks_t *cc, int *dropped, const char **answer)
{
	ask_t *a = ud;
	json_t *out = json_array();
	int *renum = nb_xcalloc(a->res->nclaims + 1, sizeof *renum);
	*dropped = 0;
	for (size_t i = 0; i < a->res->nclaims; i++) {
		const nb_gen_claim_t *cl = &a->res->claims[i];
		int k = -1;
		if (cl->chunk >= 0 && (size_t)cl->chunk < a->ret->n)
			k = find_chunk(cc, a->ret->chunks[cl->chunk].chunk_id);
		long start = cl->char_start, end = cl->char_end;
		bool ok = k >= 0 && cl->quote;
		if (ok && start < 0)
			ok = nb_cite_locate(cc->texts[k], cl->quote, &start, &end) == 0;
		if (ok)
			ok = nb_cite_check(cc->texts[k], cl->quote, start, end) == NB_CITE_OK;
		if (!ok) {
			(*dropped)++;
			continue;
		}
		renum[i] = (int)json_array_size(out) + 1;
		json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:I, s:I}", "chunk_id", cc->ids[k], "source_id",
						     cc->source_ids[k], "quote", cl->quote, "char_start",
						     (json_int_t)start, "char_end", (json_int_t)end));
	}
	if (a->res->nclaims > 0 && json_array_size(out) == 0) {
		*answer = NB_GEN_NO_ANSWER;
	} else if (*dropped > 0 && *answer) { /* "[n]" is the n-th citation shown: renumber */
		free(a->rewritten);
		a->rewritten = nb_cite_renumber(*answer, renum, (int)a->res->nclaims);
		*answer = a->rewritten;
	}
	free(renum);
	return out;
}

/* The ids of the chunks the claims name (what the store reads back). */
static json_t *claimed_ids(const nb_retrieved_t *ret, const nb_gen_result_t *res)
{
	json_t *ids = json_array();
	for (size_t i = 0; i < res->nclaims; i++) {
		int k = res->claims[i].chunk;
		if (k >= 0 && (size_t)k < ret->n)
			json_array_append_new(ids, json_string(ret->chunks[k].chunk_id));
	}
	return ids;
}

/* ---- streaming (server-sent events) ----------------------------------------- */

typedef struct sse {
	nb_req_t *req;
	nb_buf_t pending; /* delta bytes that end inside a UTF-8 sequence */
} sse_t;

static bool wants_sse(nb_req_t *req)
{
	const char *a = nb_req_header(req, "accept");
	return a && strstr(a, "text/event-stream") != NULL;
}

/* Sends `event: name` with data (stolen). 0, or -1 when the client is gone. */
static int sse_event(nb_req_t *req, const char *name, json_t *data)
{
	char *d = json_dumps(data, JSON_COMPACT);
	json_decref(data);
	if (!d)
		return 0;
	nb_buf_t b = NB_BUF_INIT;
	nb_buf_printf(&b, "event: %s\ndata: %s\n\n", name, d);
	free(d);
	int rc = nb_stream_write(req, b.data, b.len);
	nb_buf_dispose(&b);
	return rc;
}

/* Bytes of s[0..n) that end on a whole UTF-8 sequence. */
static size_t utf8_whole(const char *s, size_t n)
{
	size_t i = n, back = 0;
	while (i > 0 && back < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
		i--, back++;
	if (i == 0)
		return n;
	unsigned char lead = (unsigned char)s[i - 1];
	size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
	return need == back + 1 || lead < 0x80 ? n : i - 1;
}

/* nb_gen_delta_fn: each piece of text as an `event: delta`; a client that left cancels the generation. */
static int sse_delta(void *ud, const char *text, size_t len)
{
	sse_t *s = ud;
	nb_buf_append(&s->pending, text, len);
	size_t whole = utf8_whole(s->pending.data, s->pending.len);
	if (whole == 0)
		return 0;
	json_t *d = json_pack("{s:s%}", "text", s->pending.data, whole);
	memmove(s->pending.data, s->pending.data + whole, s->pending.len - whole);
	s->pending.len -= whole;
	if (!d) /* not UTF-8 after all: dropped from the stream (the stored answer is what `done` carries) */
		return 0;
	return sse_event(s->req, "delta", d) < 0 ? 1 : 0;
}

/* on_idle: a comment line keeps proxies from cutting a slow stream, and finds a client that left. */
static int sse_keepalive(void *ud)
{
	sse_t *s = ud;
	return nb_stream_write(s->req, ": keep-alive\n\n", 14) < 0 ? 1 : 0;
}

/* An error after the stream began: the usual envelope as `event: error`. */
static void sse_error(nb_req_t *req, int err, const char *message)
{
	nb_resp_error(req, err, message, NULL); /* builds the envelope in resp.body; a stream never sends resp */
	json_t *env = json_loadb(req->resp.body.data, req->resp.body.len, 0, NULL);
	if (env)
		sse_event(req, "error", env);
}

/* Plain answers: a request the deadline already answered (503) stops its generation. */
static int plain_delta(void *ud, const char *text, size_t len)
{
	(void)text, (void)len;
	return nb_req_gone(ud) ? 1 : 0;
}

static int plain_idle(void *ud)
{
	return nb_req_gone(ud) ? 1 : 0;
}

static bool blank(const char *s)
{
	for (; *s; s++)
		if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
			return false;
	return true;
}

int nb_api_message_create(nb_req_t *req)
{
	static const char *const fields[] = {"content", NULL};
	const char *content;
	int rc;
	if ((rc = nb_body_required(req)) < 0 || (rc = nb_body_only(req, fields)) < 0 ||
	    (rc = nb_body_str(req, "content", true, false, CONTENT_MAX, &content)) < 0)
		return rc;
	if (blank(content))
		return nb_resp_error(req, NB_EINVALID, "content: must be 1 to 10000 characters", "content");
	const char *conv = nb_req_param(req, 0);
	nb_conn_t *c;
	char nb[37];
	json_t *history = NULL, *ids = NULL, *user_msg = NULL, *asst_msg = NULL;
	nb_retrieved_t ret = {0};
	nb_gen_result_t res = {0};
	nb_gen_turn_t *turns = NULL;
	ask_t a = {.ret = &ret, .res = &res, .rewritten = NULL};
	bool streamed = wants_sse(req);
	sse_t sse = {.req = req, .pending = NB_BUF_INIT};
	bool begun = false;
	if ((rc = nb_req_db(req, &c)) < 0 ||
	    (rc = nb_store_chat_context(c, req->user_id, conv, HISTORY_TURNS, nb, &history)) < 0)
		goto out;
	size_t nturns = json_array_size(history);
	turns = nb_xcalloc(nturns + 1, sizeof *turns);
	const char *prev = NULL;
	for (size_t i = 0; i < nturns; i++) {
		json_t *t = json_array_get(history, i);
		turns[i].role = json_string_value(json_object_get(t, "role"));
		turns[i].content = json_string_value(json_object_get(t, "content"));
		if (turns[i].role && !strcmp(turns[i].role, "user"))
			prev = turns[i].content;
	}
	/* language: the notebook's (NULL: the configuration its chunks were indexed with) */
	if ((rc = nb_rag_retrieve(c, nb, NULL, content, prev, RETRIEVE_CHUNKS, &ret)) < 0)
		goto out;

	nb_gen_request_t gr = {.kind = NB_GEN_CHAT,
			       .chunks = ret.chunks,
			       .nchunks = ret.n,
			       .question = content,
			       .history = turns,
			       .nhistory = nturns};
	if (streamed) { /* from here on errors are `event: error`: 404 and 422 came as plain answers above */
		req->resp.cache_control = "no-cache";
		nb_resp_header(&req->resp, "X-Accel-Buffering", "no");
		if (nb_stream_begin(req, 200, "text/event-stream") < 0) {
			rc = NB_EUNAVAIL;
			goto out;
		}
		begun = true;
		gr.on_delta = sse_delta;
		gr.ud = &sse;
		gr.on_idle = sse_keepalive;
		gr.idle_ms = nb_cfg.chat_keepalive_ms;
	} else {
		gr.on_delta = plain_delta;
		gr.ud = req;
		gr.on_idle = plain_idle;
		gr.idle_ms = 1000;
	}
	int64_t t0 = nb_mono_ms();
	nb_gen_run(nb_gen_configured(), &gr, &res);
	if (!streamed && res.error_code == NB_GEN_OK && nb_req_gone(req)) { /* the deadline answered 503 meanwhile */
		res.error_code = NB_GEN_ECANCELLED;
		snprintf(res.error, sizeof res.error, "cancelled: the request passed its deadline");
	}
	/* a streamed answer may outlive the request deadline; the record (and the answer) get a fresh window */
	nb_conn_set_deadline(c, nb_mono_ms() + nb_cfg.request_timeout_ms);
	nb_generation_rec_t rec = {.kind = "chat",
				   .provider = res.provider,
				   .model = res.model,
				   .input_tokens = res.input_tokens,
				   .output_tokens = res.output_tokens,
				   .latency_ms = (int)(nb_mono_ms() - t0)};
	if (res.error_code != NB_GEN_OK) {
		rec.failed = true;
		rec.error = res.error;
		rc = nb_store_generation_insert(c, req->user_id, nb, conv, &rec);
		const char *why = res.error_code == NB_GEN_EUNCONFIGURED ? "generator not configured"
									 : "the generator failed; try again";
		if (streamed) {
			if (res.error_code != NB_GEN_ECANCELLED)
				sse_error(req, rc < 0 ? rc : NB_EUNAVAIL, rc < 0 ? NULL : why);
			rc = 0;
		} else if (rc == 0) {
			rc = nb_resp_error(req, NB_EUNAVAIL, why, NULL);
		}
		goto out;
	}
	ids = claimed_ids(&ret, &res);
	rc = nb_store_chat_save(c, req->user_id, conv, nb, content, res.text, ids, verify_claims, &a, &rec, &user_msg,
				&asst_msg);
	if (rc == 0) {
		json_t *both = json_pack("{s:o, s:o}", "user_message", user_msg, "assistant_message", asst_msg);
		user_msg = asst_msg = NULL;
		if (streamed)
			sse_event(req, "done", both);
		else
			nb_resp_json(&req->resp, 201, both);
	} else if (streamed) {
		sse_error(req, rc, NULL);
		rc = 0;
	}
out:
	if (rc < 0 && req->resp.status == 0 && !begun)
		nb_fail(req, rc);
	nb_buf_dispose(&sse.pending);
	free(a.rewritten);
	json_decref(history);
	json_decref(ids);
	json_decref(user_msg);
	json_decref(asst_msg);
	free(turns);
	nb_retrieved_dispose(&ret);
	nb_gen_result_dispose(&res);
	return rc;
}
