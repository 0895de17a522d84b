/*
 * gen_openai.c — the `openai` generator: any OpenAI-compatible
 * chat-completions server (llama.cpp's server, vLLM, Ollama's /v1, a hosted
 * one) over libcurl, streamed.
 *
 * Design choice: one transfer, two drivers. Inside a coroutine (a chat
 * request on an event loop) the transfer joins the loop's own libcurl multi
 * handle, driven by curl_multi_socket_action from a uv_poll_t per socket and
 * a uv_timer_t for curl's timeout (the pattern of curl's multi-uv example):
 * the asking coroutine parks while tokens arrive, so a thousand slow answers
 * cost a thousand parked coroutines and sockets, not a thousand threads. On a
 * plain thread (a job) the same transfer runs on a private multi handle with
 * curl_multi_poll. Either way the bytes go through one parser: SSE `data:`
 * lines, `choices[0].delta.content`, `usage`, `[DONE]` (or a whole JSON
 * completion when the server does not stream).
 *
 * The prompt numbers the retrieved chunks and asks for citations as
 * [n: "exact words"]; a filter turns each marker, as the text streams, into
 * a claim (chunk n, the quote) and a plain "[k]" in the answer, so that
 * what streams and what is stored read the same. The context budget trims
 * chunks (the least relevant first) and history (the oldest first) so the
 * prompt fits NOTEBOOKD_LLM_CONTEXT_TOKENS minus the answer's share; a
 * generation never fails for size. 429, 5xx and connection failures before
 * the first token are retried with exponential backoff and jitter.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/log.h"
#include "core/sched.h"
#include "core/timeutil.h"
#include "core/utf8.h"
#include "rag/generate.h"

#define NO_ANSWER_TOKEN "NO_ANSWER"
#define MARKER_MAX 1200		/* bytes a "[n: "…"]" marker may span before it is taken as plain text */
#define ERRBODY_MAX 2048	/* bytes of an error answer kept for the message */
#define BODY_MAX (8 << 20)	/* a non-streamed completion */
#define TOKENS_PER_MESSAGE 8	/* role and framing, per chat message */

static const char SYSTEM_CHAT[] =
	"You answer questions about the user's documents using ONLY the numbered sources below. "
	"After each statement, cite the source it comes from by its number together with the exact words "
	"you relied on, copied verbatim from that source, in this form: [2: \"the exact words\"]. "
	"Quote a short phrase or sentence (at most about 25 words), never paraphrase inside the quotes, and "
	"never cite a number that is not listed. If the sources do not answer the question, reply with "
	"exactly " NO_ANSWER_TOKEN " and nothing else.";
static const char SYSTEM_TASK[] =
	"You work ONLY from the numbered sources below. When you cite, cite by source number with the exact "
	"words copied verbatim, in this form: [2: \"the exact words\"].";

/* ------------------------------------------------------------ the transfer */

typedef struct call {
	CURL *easy;
	struct curl_slist *headers;
	char *body;
	long status;	 /* HTTP status, once the head is in */
	bool sse;	 /* the answer is an event stream */
	bool typed;	 /* content type looked at */
	nb_buf_t line;	 /* a partial SSE line */
	nb_buf_t raw;	 /* a non-streamed body, or an error answer */
	nb_buf_t text;	 /* content received */
	size_t handed;	 /* bytes of text already handed to the consumer */
	bool got_token;	 /* content arrived */
	bool ended;	 /* [DONE] or a finish_reason */
	bool garbage;	 /* a data line that is not a completion chunk */
	char upstream_err[160];
	int usage_in, usage_out; /* -1: not given */
	int64_t last_rx_ms;
	bool finished; /* curl is done with it */
	CURLcode cres;
	char curl_err[CURL_ERROR_SIZE];
	nb_wait_t *waiter; /* the coroutine parked on this transfer */
} call_t;

static void call_wake(call_t *c)
{
	if (c->waiter) {
		nb_wait_t *w = c->waiter;
		c->waiter = NULL;
		nb_wait_signal(w);
	}
}

/* One SSE line of the answer. */
static void sse_line(call_t *c, char *s, size_t n)
{
	while (n && (s[n - 1] == '\r' || s[n - 1] == '\n'))
		s[--n] = '\0';
	if (n < 5 || strncmp(s, "data:", 5) != 0)
		return; /* comments, event names, ids, blank separators */
	s += 5;
	while (*s == ' ')
		s++;
	if (!strcmp(s, "[DONE]")) {
		c->ended = true;
		return;
	}
	json_t *j = json_loads(s, 0, NULL);
	if (!j || !json_is_object(j)) {
		c->garbage = true;
		json_decref(j);
		return;
	}
	json_t *err = json_object_get(j, "error");
	if (err) {
		const char *m = json_string_value(json_object_get(err, "message"));
		snprintf(c->upstream_err, sizeof c->upstream_err, "%s", m ? m : "the model server reported an error");
		c->garbage = true;
	}
	json_t *ch = json_array_get(json_object_get(j, "choices"), 0);
	if (ch) {
		const char *t = json_string_value(json_object_get(json_object_get(ch, "delta"), "content"));
		if (t && *t) {
			nb_buf_puts(&c->text, t);
			c->got_token = true;
		}
		if (json_string_value(json_object_get(ch, "finish_reason")))
			c->ended = true;
	}
	json_t *u = json_object_get(j, "usage");
	if (json_is_object(u)) {
		json_t *pt = json_object_get(u, "prompt_tokens"), *ct = json_object_get(u, "completion_tokens");
		if (json_is_integer(pt))
			c->usage_in = (int)json_integer_value(pt);
		if (json_is_integer(ct))
			c->usage_out = (int)json_integer_value(ct);
	}
	json_decref(j);
}

static size_t on_body(char *p, size_t sz, size_t nm, void *ud)
{
	call_t *c = ud;
	size_t n = sz * nm;
	c->last_rx_ms = nb_mono_ms();
	if (!c->status)
		curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &c->status);
	if (c->status != 200) {
		if (c->raw.len < ERRBODY_MAX)
			nb_buf_append(&c->raw, p, n < ERRBODY_MAX ? n : ERRBODY_MAX);
		return n;
	}
	if (!c->typed) {
		char *ct = NULL;
		curl_easy_getinfo(c->easy, CURLINFO_CONTENT_TYPE, &ct);
		c->sse = ct && strstr(ct, "event-stream");
		c->typed = true;
	}
	if (!c->sse) {
		if (c->raw.len + n > BODY_MAX)
			return 0;
		nb_buf_append(&c->raw, p, n);
		return n;
	}
	for (size_t i = 0; i < n; i++) {
		nb_buf_append(&c->line, &p[i], 1);
		if (p[i] == '\n') {
			nb_buf_append(&c->line, "", 1);
			sse_line(c, c->line.data, c->line.len - 1);
			c->line.len = 0;
		} else if (c->line.len > BODY_MAX) {
			c->garbage = true;
		}
		if (c->garbage)
			return 0; /* abort: CURLE_WRITE_ERROR */
	}
	if (c->got_token || c->ended)
		call_wake(c);
	return n;
}

/* ------------------------------------------------- the event-loop driver */

/* One per event-loop thread: the loop's multi handle and curl's timer. */
typedef struct uvcurl {
	CURLM *multi;
	uv_loop_t *loop;
	uv_timer_t timer;
	struct uvsock *socks; /* watched sockets (closed at cleanup if curl did not remove them) */
	struct uvcurl *next;  /* every loop's, for nb_gen_loop_cleanup */
} uvcurl_t;

typedef struct uvsock {
	uv_poll_t poll;
	curl_socket_t fd;
	uvcurl_t *u;
	struct uvsock *prev, *next;
} uvsock_t;

static void sock_unlink(uvsock_t *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		s->u->socks = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->prev = s->next = NULL;
}

static _Thread_local uvcurl_t *t_uvc;
static pthread_mutex_t g_uvcs_mu = PTHREAD_MUTEX_INITIALIZER;
static uvcurl_t *g_uvcs;
static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void check_done(CURLM *multi)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		call_t *c = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&c);
		if (c) {
			c->finished = true;
			c->cres = m->data.result;
			call_wake(c);
		}
	}
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	uvsock_t *s = h->data;
	int flags = 0;
	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	int running;
	uvcurl_t *u = s->u;
	curl_multi_socket_action(u->multi, s->fd, flags, &running);
	check_done(u->multi);
}

static void on_curl_timer(uv_timer_t *t)
{
	uvcurl_t *u = t->data;
	int running;
	curl_multi_socket_action(u->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(u->multi);
}

static int start_timeout(CURLM *multi, long ms, void *ud)
{
	(void)multi;
	uvcurl_t *u = ud;
	if (ms < 0)
		uv_timer_stop(&u->timer);
	else
		uv_timer_start(&u->timer, on_curl_timer, (uint64_t)ms, 0);
	return 0;
}

static void free_sock(uv_handle_t *h)
{
	free(h->data);
}

static int handle_socket(CURL *easy, curl_socket_t fd, int action, void *ud, void *sockp)
{
	(void)easy;
	uvcurl_t *u = ud;
	uvsock_t *s = sockp;
	if (action == CURL_POLL_REMOVE) {
		if (s) {
			sock_unlink(s);
			uv_poll_stop(&s->poll);
			uv_close((uv_handle_t *)&s->poll, free_sock);
			curl_multi_assign(u->multi, fd, NULL);
		}
		return 0;
	}
	if (!s) {
		s = nb_xcalloc(1, sizeof *s);
		s->fd = fd;
		s->u = u;
		if (uv_poll_init_socket(u->loop, &s->poll, fd) < 0) {
			free(s);
			return -1;
		}
		s->poll.data = s;
		s->next = u->socks;
		if (u->socks)
			u->socks->prev = s;
		u->socks = s;
		curl_multi_assign(u->multi, fd, s);
	}
	int ev = 0;
	if (action == CURL_POLL_IN || action == CURL_POLL_INOUT)
		ev |= UV_READABLE;
	if (action == CURL_POLL_OUT || action == CURL_POLL_INOUT)
		ev |= UV_WRITABLE;
	uv_poll_start(&s->poll, ev, on_poll);
	return 0;
}

static uvcurl_t *loop_curl(void)
{
	if (t_uvc)
		return t_uvc;
	uvcurl_t *u = nb_xcalloc(1, sizeof *u);
	u->loop = nb_sched_loop(nb_sched_current());
	u->multi = curl_multi_init();
	uv_timer_init(u->loop, &u->timer);
	u->timer.data = u;
	curl_multi_setopt(u->multi, CURLMOPT_SOCKETFUNCTION, handle_socket);
	curl_multi_setopt(u->multi, CURLMOPT_SOCKETDATA, u);
	curl_multi_setopt(u->multi, CURLMOPT_TIMERFUNCTION, start_timeout);
	curl_multi_setopt(u->multi, CURLMOPT_TIMERDATA, u);
	pthread_mutex_lock(&g_uvcs_mu);
	u->next = g_uvcs;
	g_uvcs = u;
	pthread_mutex_unlock(&g_uvcs_mu);
	t_uvc = u;
	return u;
}

static void free_uvc(uv_handle_t *h)
{
	free(h->data);
}

void nb_gen_loop_cleanup(void)
{
	/* the server stops its loops before this runs (on whichever thread): every loop's state goes */
	pthread_mutex_lock(&g_uvcs_mu);
	uvcurl_t *list = g_uvcs;
	g_uvcs = NULL;
	pthread_mutex_unlock(&g_uvcs_mu);
	while (list) {
		uvcurl_t *u = list;
		list = u->next;
		curl_multi_cleanup(u->multi); /* closes its sockets: handle_socket closes their polls */
		while (u->socks) {	      /* any it did not announce */
			uvsock_t *sk = u->socks;
			sock_unlink(sk);
			uv_poll_stop(&sk->poll);
			uv_close((uv_handle_t *)&sk->poll, free_sock);
		}
		uv_timer_stop(&u->timer);
		uv_close((uv_handle_t *)&u->timer, free_uvc);
	}
}

/* ------------------------------------------------------------- running one */

typedef struct run {
	const nb_gen_request_t *req;
	int idle_ms; /* the model server's idle timeout */
	bool cancelled;
	bool idle_timeout;
	/* the marker filter (stream → answer text + claims) */
	nb_buf_t out;  /* the filtered answer */
	nb_buf_t hold; /* a possible marker, or the possible NO_ANSWER opening */
	bool opening;  /* still at the answer's start (NO_ANSWER detection) */
	nb_gen_claim_t *claims;
	size_t nclaims, cap;
	const bool *given; /* chunk i was in the prompt */
} run_t;

static int deliver(run_t *r, const char *s, size_t n)
{
	if (!n)
		return 0;
	nb_buf_append(&r->out, s, n);
	if (r->req->on_delta && r->req->on_delta(r->req->ud, s, n) != 0)
		r->cancelled = true;
	return r->cancelled ? -1 : 0;
}

/* Parses "[n: "quote"]" in s[0..len): 1 and the parts, 0 not a marker, -1 maybe one still arriving. */
static int parse_marker(const char *s, size_t len, int *num, const char **q, size_t *qlen)
{
	size_t i = 1;
	while (i < len && s[i] == ' ')
		i++;
	if (i == len)
		return -1;
	if (s[i] < '0' || s[i] > '9')
		return 0;
	int v = 0, digits = 0;
	while (i < len && s[i] >= '0' && s[i] <= '9' && digits < 5)
		v = v * 10 + (s[i++] - '0'), digits++;
	while (i < len && s[i] == ' ')
		i++;
	if (i == len)
		return -1;
	if (s[i] == ']') {
		*num = v, *q = NULL, *qlen = 0;
		return 1; /* bare [n]: no quote to check */
	}
	if (s[i] != ':' && s[i] != ',')
		return 0;
	i++;
	while (i < len && s[i] == ' ')
		i++;
	if (i == len)
		return -1;
	const char *close;
	size_t clen;
	if (s[i] == '"') {
		close = "\"", clen = 1, i++;
	} else if (len - i >= 3 && !memcmp(s + i, "\xe2\x80\x9c", 3)) { /* “ … ” */
		close = "\xe2\x80\x9d", clen = 3, i += 3;
	} else if (len - i < 3 && !memcmp(s + i, "\xe2\x80\x9c", len - i)) {
		return -1;
	} else {
		return 0;
	}
	size_t qs = i;
	const char *end = NULL;
	for (; i + clen <= len; i++)
		if (!memcmp(s + i, close, clen)) {
			end = s + i;
			break;
		}
	if (!end)
		return -1;
	i += clen;
	while (i < len && s[i] == ' ')
		i++;
	if (i == len)
		return -1;
	if (s[i] != ']' || i + 1 != len)
		return 0;
	*num = v, *q = s + qs, *qlen = (size_t)(end - (s + qs));
	return 1;
}

static int emit_claim(run_t *r, int num, const char *q, size_t qlen)
{
	if (!q || qlen == 0)
		return 0; /* a bare [n] or an empty quote: nothing checkable, left out */
	if (r->nclaims == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 8;
		r->claims = nb_xrealloc(r->claims, r->cap * sizeof *r->claims);
	}
	nb_gen_claim_t *cl = &r->claims[r->nclaims++];
	int idx = num - 1;
	/* a number the model was not given names nothing: -1, dropped and counted by the verifier */
	cl->chunk = idx >= 0 && (size_t)idx < r->req->nchunks && r->given[idx] ? idx : -1;
	cl->quote = nb_xmalloc(qlen + 1);
	memcpy(cl->quote, q, qlen);
	cl->quote[qlen] = '\0';
	cl->char_start = cl->char_end = -1;
	char m[24];
	int n = snprintf(m, sizeof m, "[%zu]", r->nclaims);
	return deliver(r, m, (size_t)n);
}

/* Feeds model text through the filter. -1 when the consumer cancelled. */
static int filter(run_t *r, const char *s, size_t n)
{
	if (r->opening && r->hold.len == sizeof NO_ANSWER_TOKEN - 1)
		return 0; /* the answer opened with NO_ANSWER: the rest does not matter */
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (r->opening) {
			if (r->hold.len == 0 && (ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t'))
				continue;
			nb_buf_append(&r->hold, &ch, 1);
			size_t tl = sizeof NO_ANSWER_TOKEN - 1;
			if (r->hold.len <= tl && !memcmp(r->hold.data, NO_ANSWER_TOKEN, r->hold.len)) {
				if (r->hold.len == tl) /* the rest is ignored: finish() sees the token */
					return 0;
				continue;
			}
			r->opening = false;
			nb_buf_t h = r->hold;
			r->hold = (nb_buf_t)NB_BUF_INIT;
			int rc = filter(r, h.data, h.len);
			nb_buf_dispose(&h);
			if (rc < 0)
				return rc;
			continue;
		}
		if (r->hold.len == 0) {
			if (ch != '[') {
				size_t j = i;
				while (j < n && s[j] != '[')
					j++;
				if (deliver(r, s + i, j - i) < 0)
					return -1;
				i = j - 1;
				continue;
			}
			nb_buf_append(&r->hold, "[", 1);
			continue;
		}
		nb_buf_append(&r->hold, &ch, 1);
		int num;
		const char *q;
		size_t ql;
		int pm = parse_marker(r->hold.data, r->hold.len, &num, &q, &ql);
		if (pm == 1) {
			int rc = emit_claim(r, num, q, ql);
			r->hold.len = 0;
			if (rc < 0)
				return rc;
		} else if (pm == 0 || r->hold.len > MARKER_MAX) {
			/* not a marker: the '[' is text; what followed it is filtered again */
			nb_buf_t h = r->hold;
			r->hold = (nb_buf_t)NB_BUF_INIT;
			int rc = deliver(r, "[", 1);
			if (rc == 0)
				rc = filter(r, h.data + 1, h.len - 1);
			nb_buf_dispose(&h);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

/* Hands what arrived since last time to the filter. */
static int pump(run_t *r, call_t *c)
{
	if (c->handed >= c->text.len)
		return 0;
	size_t from = c->handed;
	c->handed = c->text.len;
	return filter(r, c->text.data + from, c->text.len - from);
}

/* Sleeps ms (retry backoff): parked in a coroutine, nanosleep on a thread. */
static void backoff_sleep(int ms)
{
	if (nb_sched_in_coro()) {
		nb_wait_t w;
		nb_wait_init(&w);
		nb_wait_park(&w, ms);
		return;
	}
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Waits for the transfer to progress (or a timeout). ms >= 0. */
static void wait_progress(call_t *c, CURLM *priv, int ms)
{
	if (priv) {
		int running;
		curl_multi_perform(priv, &running);
		check_done(priv);
		if (!c->finished && c->text.len == c->handed) {
			curl_multi_poll(priv, NULL, 0, ms, NULL);
			curl_multi_perform(priv, &running);
			check_done(priv);
		}
		return;
	}
	if (c->finished || c->text.len > c->handed)
		return;
	nb_wait_t w;
	nb_wait_init(&w);
	c->waiter = &w;
	nb_wait_park(&w, ms);
	if (c->waiter == &w)
		c->waiter = NULL;
}

/* One HTTP exchange: runs until the answer ends, fails, idles out or is cancelled. */
static void transfer(run_t *r, call_t *c, const char *url)
{
	pthread_once(&g_curl_once, curl_init_once);
	c->easy = curl_easy_init();
	c->usage_in = c->usage_out = -1;
	c->headers = curl_slist_append(NULL, "Content-Type: application/json");
	c->headers = curl_slist_append(c->headers, "Accept: text/event-stream, application/json");
	if (nb_cfg.llm_api_key) {
		char *h = nb_xmalloc(strlen(nb_cfg.llm_api_key) + 32);
		sprintf(h, "Authorization: Bearer %s", nb_cfg.llm_api_key);
		c->headers = curl_slist_append(c->headers, h);
		free(h);
	}
	curl_easy_setopt(c->easy, CURLOPT_URL, url);
	curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->headers);
	curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, c->body);
	curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(c->easy, CURLOPT_PRIVATE, (char *)c);
	curl_easy_setopt(c->easy, CURLOPT_ERRORBUFFER, c->curl_err);
	curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)nb_cfg.llm_connect_timeout_ms);
	curl_easy_setopt(c->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c->easy, CURLOPT_ACCEPT_ENCODING, "");
	c->last_rx_ms = nb_mono_ms();

	bool coro = nb_sched_in_coro();
	CURLM *priv = NULL;
	CURLM *multi;
	if (coro) {
		multi = loop_curl()->multi;
	} else {
		priv = multi = curl_multi_init();
	}
	curl_multi_add_handle(multi, c->easy);
	int tick = r->req->on_idle && r->req->idle_ms > 0 ? r->req->idle_ms : 0;
	int64_t last_event = nb_mono_ms();
	size_t seen = r->out.len;
	for (;;) {
		if (pump(r, c) < 0)
			break;
		if (r->out.len != seen) { /* text went out: the keep-alive clock starts over */
			seen = r->out.len;
			last_event = nb_mono_ms();
		}
		if (c->finished)
			break;
		int64_t now = nb_mono_ms();
		if (now - c->last_rx_ms >= r->idle_ms) {
			r->idle_timeout = true;
			break;
		}
		if (tick && now - last_event >= tick) {
			last_event = now;
			if (r->req->on_idle(r->req->ud) != 0) {
				r->cancelled = true;
				break;
			}
		}
		int64_t wait = c->last_rx_ms + r->idle_ms - now;
		if (tick && last_event + tick - now < wait)
			wait = last_event + tick - now;
		if (wait < 1)
			wait = 1;
		wait_progress(c, priv, (int)wait);
	}
	if (!c->finished) /* cancelled or idle: the upstream request is dropped (its connection closed) */
		curl_easy_setopt(c->easy, CURLOPT_FORBID_REUSE, 1L);
	curl_multi_remove_handle(multi, c->easy);
	if (priv)
		curl_multi_cleanup(priv);
	if (!c->status)
		curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &c->status);
	curl_easy_cleanup(c->easy);
	c->easy = NULL;
	curl_slist_free_all(c->headers);
	c->headers = NULL;
}

static void call_dispose(call_t *c)
{
	nb_buf_dispose(&c->line);
	nb_buf_dispose(&c->raw);
	nb_buf_dispose(&c->text);
	free(c->body);
	memset(c, 0, sizeof *c);
}

/* ------------------------------------------------------------- the prompt */

/* The first max_tokens (estimated) of s, cut at a UTF-8 boundary (a new string). */
static char *trim_to_tokens(const char *s, int max_tokens)
{
	size_t want = max_tokens > 0 ? (size_t)max_tokens * 4 : 0;
	size_t len = strlen(s), cut = 0, cps = 0;
	while (cut < len && cps < want) {
		cut++;
		while (cut < len && ((unsigned char)s[cut] & 0xC0) == 0x80)
			cut++;
		cps++;
	}
	char *o = nb_xmalloc(cut + 1);
	memcpy(o, s, cut);
	o[cut] = '\0';
	return o;
}

/*
 * Builds the messages within the budget; given[i] says whether chunk i made
 * it. *in_tokens: the prompt's estimate.
 */
static json_t *build_messages(const nb_gen_request_t *req, bool *given, int *in_tokens)
{
	int budget = nb_cfg.llm_context_tokens - (req->max_output_tokens > 0 ? req->max_output_tokens
									     : nb_cfg.llm_max_tokens);
	budget = budget * 9 / 10; /* the estimate is chars / 4: keep a margin for tokenizers that count more */
	if (budget < 256)
		budget = 256;
	const char *sys = req->kind == NB_GEN_CHAT ? SYSTEM_CHAT : SYSTEM_TASK;
	const char *ask = req->question ? req->question : (req->instructions ? req->instructions : "");
	int used = nb_gen_estimate_tokens(sys) + TOKENS_PER_MESSAGE * 2 + 16;
	if (req->kind != NB_GEN_CHAT && req->instructions && req->question)
		used += nb_gen_estimate_tokens(req->instructions);
	char *q = NULL;
	int qt = nb_gen_estimate_tokens(ask);
	if (used + qt > budget / 2) { /* an over-long question gives way first: half the budget at most */
		q = trim_to_tokens(ask, budget / 2 - used > 16 ? budget / 2 - used : 16);
		qt = nb_gen_estimate_tokens(q);
	}
	used += qt;
	/* chunks, most relevant first: whole ones while they fit; the first is cut to fit rather than left out */
	nb_buf_t src = NB_BUF_INIT;
	for (size_t i = 0; i < req->nchunks; i++) {
		const char *t = req->chunks[i].text ? req->chunks[i].text : "";
		int ct = nb_gen_estimate_tokens(t) + 6;
		char *cut = NULL;
		if (used + ct > budget) {
			if (src.len > 0 || budget - used < 32)
				continue;
			cut = trim_to_tokens(t, budget - used - 6);
			ct = nb_gen_estimate_tokens(cut) + 6;
			t = cut;
		}
		nb_buf_printf(&src, "[%zu] %s\n\n", i + 1, t);
		given[i] = true;
		used += ct;
		free(cut);
	}
	/* history, newest first, while it fits */
	size_t first = req->nhistory;
	while (first > 0) {
		const nb_gen_turn_t *t = &req->history[first - 1];
		int tt = nb_gen_estimate_tokens(t->content) + TOKENS_PER_MESSAGE;
		if (used + tt > budget)
			break;
		used += tt;
		first--;
	}
	json_t *msgs = json_array();
	nb_buf_t s = NB_BUF_INIT;
	nb_buf_puts(&s, sys);
	if (req->kind != NB_GEN_CHAT && req->instructions && req->question) {
		nb_buf_puts(&s, "\n\n");
		nb_buf_puts(&s, req->instructions);
	}
	nb_buf_puts(&s, "\n\nSources:\n\n");
	if (src.len)
		nb_buf_append(&s, src.data, src.len);
	else
		nb_buf_puts(&s, "(none)\n");
	nb_buf_append(&s, "", 1);
	json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "system", "content", s.data));
	nb_buf_dispose(&s);
	nb_buf_dispose(&src);
	for (size_t i = first; i < req->nhistory; i++) {
		const nb_gen_turn_t *t = &req->history[i];
		if (!t->content || !t->role)
			continue;
		json_array_append_new(msgs, json_pack("{s:s, s:s}", "role",
						      !strcmp(t->role, "assistant") ? "assistant" : "user", "content",
						      t->content));
	}
	json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "user", "content", q ? q : ask));
	free(q);
	*in_tokens = used;
	return msgs;
}

/* ------------------------------------------------------------- the generator */

static bool retryable(const call_t *c)
{
	if (c->got_token)
		return false;
	if (c->status == 429 || c->status >= 500)
		return true;
	if (c->status == 0 || c->status == 200) {
		switch (c->cres) {
		case CURLE_COULDNT_CONNECT:
		case CURLE_OPERATION_TIMEDOUT: /* the connect timeout */
		case CURLE_GOT_NOTHING:
		case CURLE_SEND_ERROR:
		case CURLE_RECV_ERROR:
		case CURLE_PARTIAL_FILE:
			return c->finished;
		default:
			return false;
		}
	}
	return false;
}

/* Why a finished exchange failed, or "" when it succeeded. */
static void failure(const run_t *r, const call_t *c, char *err, size_t errlen)
{
	err[0] = '\0';
	if (r->idle_timeout)
		snprintf(err, errlen, "the model server sent nothing for %d ms", r->idle_ms);
	else if (c->status && c->status != 200)
		snprintf(err, errlen, "the model server answered HTTP %ld%s%.120s", c->status, c->raw.len ? ": " : "",
			 c->raw.len ? c->raw.data : "");
	else if (c->garbage)
		snprintf(err, errlen, "%s", c->upstream_err[0] ? c->upstream_err : "the model server answered garbage");
	else if (c->cres != CURLE_OK)
		snprintf(err, errlen, "model server: %.200s", c->curl_err[0] ? c->curl_err : curl_easy_strerror(c->cres));
	else if (c->sse && !c->ended)
		snprintf(err, errlen, "the model server closed the stream before it ended");
	for (char *p = err; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
}

/* A non-streamed completion's content (into c->text), or -1 when it is not one. */
static int parse_whole(call_t *c)
{
	nb_buf_append(&c->raw, "", 1);
	json_t *j = json_loads(c->raw.data, 0, NULL);
	json_t *msg = json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message");
	const char *t = json_string_value(json_object_get(msg, "content"));
	int rc = t ? 0 : -1;
	if (t) {
		nb_buf_puts(&c->text, t);
		c->got_token = true;
		c->ended = true;
	}
	json_t *u = json_object_get(j, "usage");
	if (json_is_integer(json_object_get(u, "prompt_tokens")))
		c->usage_in = (int)json_integer_value(json_object_get(u, "prompt_tokens"));
	if (json_is_integer(json_object_get(u, "completion_tokens")))
		c->usage_out = (int)json_integer_value(json_object_get(u, "completion_tokens"));
	json_decref(j);
	return rc;
}

/* The structured output: the answer parsed as JSON (a ```json fence is tolerated), or NULL. */
static json_t *parse_structured(const char *text)
{
	const char *s = text, *e = text + strlen(text);
	const char *fence = strstr(s, "```");
	if (fence) {
		s = fence + 3;
		while (*s && *s != '\n')
			s++;
		const char *end = strstr(s, "```");
		if (end)
			e = end;
	}
	return json_loadb(s, (size_t)(e - s), 0, NULL);
}

static int64_t jitter_ms(int base)
{
	static _Thread_local unsigned seed;
	if (!seed)
		seed = (unsigned)nb_mono_ms() ^ (unsigned)(uintptr_t)&seed;
	return base + (int64_t)(rand_r(&seed) % (base / 2 + 1));
}

int nb_gen__openai_run(const nb_gen_request_t *req, nb_gen_result_t *res)
{
	snprintf(res->model, sizeof res->model, "%s", nb_cfg.llm_model ? nb_cfg.llm_model : "unconfigured");
	if (!nb_cfg.llm_url || !*nb_cfg.llm_url || !nb_cfg.llm_model || !*nb_cfg.llm_model) {
		res->error_code = NB_GEN_EUNCONFIGURED;
		snprintf(res->error, sizeof res->error,
			 "generator not configured: NOTEBOOKD_LLM_URL and NOTEBOOKD_LLM_MODEL must be set");
		return res->error_code;
	}
	char *url = nb_xmalloc(strlen(nb_cfg.llm_url) + 32);
	size_t ul = strlen(nb_cfg.llm_url);
	while (ul > 0 && nb_cfg.llm_url[ul - 1] == '/')
		ul--;
	sprintf(url, "%.*s/chat/completions", (int)ul, nb_cfg.llm_url);

	bool *given = nb_xcalloc(req->nchunks + 1, sizeof *given);
	int est_in = 0;
	json_t *msgs = build_messages(req, given, &est_in);
	int max_out = req->max_output_tokens > 0 ? req->max_output_tokens : nb_cfg.llm_max_tokens;
	bool structured = req->schema != NULL;
	int rounds = structured ? 2 : 1; /* one retry on invalid structured output */
	run_t r = {.req = req, .idle_ms = nb_cfg.llm_idle_timeout_ms, .given = given};
	for (int round = 0; round < rounds; round++) {
		json_t *body = json_pack("{s:s, s:O, s:i, s:b}", "model", nb_cfg.llm_model, "messages", msgs,
					 "max_tokens", max_out, "stream", !structured);
		if (!structured)
			json_object_set_new(body, "stream_options", json_pack("{s:b}", "include_usage", 1));
		else
			json_object_set_new(body, "response_format",
					    json_pack("{s:s, s:{s:s, s:O, s:b}}", "type", "json_schema", "json_schema",
						      "name", "output", "schema", req->schema, "strict", 1));
		char *payload = json_dumps(body, JSON_COMPACT);
		json_decref(body);
		call_t c = {0};
		char err[256] = "";
		for (int attempt = 0;; attempt++) {
			memset(&c, 0, sizeof c);
			c.body = nb_xstrdup(payload);
			r.out.len = 0;
			r.hold.len = 0;
			r.opening = true;
			r.idle_timeout = false;
			for (size_t i = 0; i < r.nclaims; i++)
				free(r.claims[i].quote);
			r.nclaims = 0;
			transfer(&r, &c, url);
			if (c.status == 200 && !c.sse && !c.garbage && c.cres == CURLE_OK && !r.idle_timeout) {
				if (parse_whole(&c) < 0)
					c.garbage = true;
				else if (!structured && pump(&r, &c) < 0)
					r.cancelled = true;
			}
			failure(&r, &c, err, sizeof err);
			if (r.cancelled || !err[0] || attempt >= nb_cfg.llm_retries || !retryable(&c))
				break;
			int wait = (int)jitter_ms(500 << (attempt < 5 ? attempt : 5));
			nb_warn("openai generator: %s; retrying in %d ms", err, wait);
			call_dispose(&c);
			backoff_sleep(wait);
		}
		free(payload);
		res->input_tokens = c.usage_in >= 0 ? c.usage_in : est_in;
		res->output_tokens = c.usage_out >= 0 ? c.usage_out : nb_gen_estimate_tokens(c.text.data ? c.text.data : "");
		if (r.cancelled) {
			res->error_code = NB_GEN_ECANCELLED;
			snprintf(res->error, sizeof res->error, "cancelled: the client went away");
			call_dispose(&c);
			break;
		}
		if (err[0]) {
			res->error_code = NB_GEN_EUPSTREAM;
			snprintf(res->error, sizeof res->error, "%s", err);
			call_dispose(&c);
			break;
		}
		if (structured) {
			nb_buf_append(&c.text, "", 1);
			json_t *out = parse_structured(c.text.data);
			char verr[160] = "not valid JSON";
			bool ok = out && (json_is_object(out) || json_is_array(out));
			if (ok && req->validate && req->validate(req->ud, out, verr, sizeof verr) != 0)
				ok = false;
			if (ok) {
				res->structured = out;
				res->text = nb_xstrdup(c.text.data);
				res->error_code = NB_GEN_OK;
				call_dispose(&c);
				break;
			}
			json_decref(out);
			res->error_code = NB_GEN_EINVALID;
			snprintf(res->error, sizeof res->error, "the model's structured output was invalid: %.160s", verr);
			if (round + 1 < rounds) {
				json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "assistant", "content", c.text.data));
				char fix[300];
				snprintf(fix, sizeof fix,
					 "That output was invalid (%s). Answer again with only the JSON that matches the schema.",
					 verr);
				json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "user", "content", fix));
			}
			call_dispose(&c);
			continue;
		}
		/* the text: a trailing partial marker is plain text */
		if (r.hold.len && !r.opening) {
			nb_buf_append(&r.out, r.hold.data, r.hold.len);
			if (req->on_delta)
				req->on_delta(req->ud, r.hold.data, r.hold.len);
		}
		nb_buf_append(&r.out, "", 1);
		const char *t = r.out.data;
		while (*t == ' ' || *t == '\n')
			t++;
		if (r.opening || !*t) { /* NO_ANSWER (or nothing): the sources hold no answer */
			res->no_answer = true;
			res->text = nb_xstrdup(NB_GEN_NO_ANSWER);
			if (req->on_delta)
				req->on_delta(req->ud, NB_GEN_NO_ANSWER, strlen(NB_GEN_NO_ANSWER));
			for (size_t i = 0; i < r.nclaims; i++)
				free(r.claims[i].quote);
			r.nclaims = 0;
		} else {
			res->text = nb_xstrdup(t);
			res->claims = r.claims;
			res->nclaims = r.nclaims;
			r.claims = NULL;
			r.nclaims = 0;
		}
		res->error_code = NB_GEN_OK;
		call_dispose(&c);
		break;
	}
	for (size_t i = 0; i < r.nclaims; i++)
		free(r.claims[i].quote);
	free(r.claims);
	nb_buf_dispose(&r.out);
	nb_buf_dispose(&r.hold);
	json_decref(msgs);
	free(given);
	free(url);
	return res->error_code;
}
