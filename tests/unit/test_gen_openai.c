/*
 * test_gen_openai.c — the openai generator's parts: the citation-marker
 * filter (markers split anywhere across deltas, numbers not given, text that
 * only looks like a marker, NO_ANSWER), the context budget, and — against
 * tests/e2e/fake_llm.py started as a program — the thread driver (a job's
 * path, no event loop): a streamed answer and structured JSON output with
 * its one retry.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "t.h"

/* The filter and the prompt builder are static: reach them as test_generate.c does. */
#include "../../src/rag/gen_openai.c"

static nb_buf_t g_streamed;

static int collect(void *ud, const char *text, size_t len)
{
	(void)ud;
	nb_buf_append(&g_streamed, text, len);
	return 0;
}

static void run_filter(const char *in, size_t piece, run_t *r, const nb_gen_request_t *req, const bool *given)
{
	memset(r, 0, sizeof *r);
	r->req = req;
	r->given = given;
	r->opening = true;
	size_t n = strlen(in);
	for (size_t i = 0; i < n; i += piece)
		filter(r, in + i, i + piece <= n ? piece : n - i);
}

static void run_dispose(run_t *r)
{
	for (size_t i = 0; i < r->nclaims; i++)
		free(r->claims[i].quote);
	free(r->claims);
	nb_buf_dispose(&r->out);
	nb_buf_dispose(&r->hold);
}

static void test_markers_split_anywhere(void)
{
	nb_gen_chunk_t chunks[2] = {{"a", "s", "x", 1}, {"b", "s", "y", 1}};
	bool given[2] = {true, true};
	nb_gen_request_t req = {.chunks = chunks, .nchunks = 2, .on_delta = collect};
	const char *in = "Wax melts [1: \"heat melts the wax\"], rises [2: \xe2\x80\x9c" "capillary action\xe2\x80\x9d] "
			 "and [99: \"nowhere\"] burns [see below] [3].";
	for (size_t piece = 1; piece <= 9; piece++) {
		run_t r;
		nb_buf_reset(&g_streamed);
		run_filter(in, piece, &r, &req, given);
		nb_buf_append(&r.out, "", 1);
		CHECK_STR(r.out.data, "Wax melts [1], rises [2] and [3] burns [see below] .");
		CHECK_INT(g_streamed.len, r.out.len - 1); /* what streamed is the answer */
		CHECK_INT(r.nclaims, 3);
		if (r.nclaims == 3) {
			CHECK_INT(r.claims[0].chunk, 0);
			CHECK_STR(r.claims[0].quote, "heat melts the wax");
			CHECK_INT(r.claims[1].chunk, 1);
			CHECK_STR(r.claims[1].quote, "capillary action");
			CHECK_INT(r.claims[2].chunk, -1); /* a number it was not given */
		}
		run_dispose(&r);
	}
	/* a chunk trimmed out of the prompt is not citable either */
	bool partly[2] = {true, false};
	run_t r;
	run_filter("x [2: \"y\"]", 3, &r, &req, partly);
	CHECK_INT(r.nclaims, 1);
	CHECK_INT(r.claims[0].chunk, -1);
	run_dispose(&r);
}

static void test_no_answer_token(void)
{
	nb_gen_request_t req = {.on_delta = collect};
	bool given[1] = {false};
	run_t r;
	nb_buf_reset(&g_streamed);
	run_filter("  NO_ANS", 2, &r, &req, given);
	filter(&r, "WER. nothing here", 17);
	CHECK(r.opening);		 /* finish() turns this into the no-answer sentence */
	CHECK_INT(g_streamed.len, 0); /* and the token never streamed */
	run_dispose(&r);
	run_filter("NOT an answer token", 4, &r, &req, given);
	CHECK(!r.opening);
	nb_buf_append(&r.out, "", 1);
	CHECK_STR(r.out.data, "NOT an answer token");
	run_dispose(&r);
}

static void test_context_budget(void)
{
	nb_cfg.llm_context_tokens = 1024;
	nb_cfg.llm_max_tokens = 256;
	char *big = malloc(4001);
	memset(big, 'w', 4000);
	big[4000] = '\0';
	for (int i = 0; i < 4000; i += 10)
		big[i] = ' ';
	nb_gen_chunk_t chunks[16];
	for (int i = 0; i < 16; i++)
		chunks[i] = (nb_gen_chunk_t){"id", "s", i == 0 ? big : "A short chunk about candles.", 1};
	nb_gen_turn_t hist[2] = {{"user", big}, {"assistant", "short"}};
	nb_gen_request_t req = {.kind = NB_GEN_CHAT, .chunks = chunks, .nchunks = 16, .question = big,
				.history = hist, .nhistory = 2};
	bool given[17] = {false};
	int est = 0;
	json_t *m = build_messages(&req, given, &est);
	size_t chars = 0;
	for (size_t i = 0; i < json_array_size(m); i++)
		chars += strlen(json_string_value(json_object_get(json_array_get(m, i), "content")));
	CHECK_MSG(chars / 4 <= 1024 - 256, "%zu chars for a 768-token budget", chars);
	CHECK(given[0]); /* the most relevant chunk is cut to fit, never left out */
	CHECK(est <= 768);
	/* the over-long question was cut, the long old turn left out, the short one kept */
	CHECK_STR(json_string_value(json_object_get(json_array_get(m, 0), "role")), "system");
	json_t *last = json_array_get(m, json_array_size(m) - 1);
	CHECK(strlen(json_string_value(json_object_get(last, "content"))) < 4000);
	json_decref(m);
	free(big);
}

static int g_fake_out = -1; /* the fake's stdout, kept open while it runs */

/* Starts the fake server in a mode; returns its pid, *port set. */
static pid_t fake_start(const char *mode, int *port)
{
	int fds[2];
	if (pipe(fds) < 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		execlp("python3", "python3", "tests/e2e/fake_llm.py", "--port", "0", "--mode", mode, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	char buf[32] = "";
	size_t got = 0;
	while (got < sizeof buf - 1 && !memchr(buf, '\n', got)) {
		ssize_t n = read(fds[0], buf + got, sizeof buf - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	g_fake_out = fds[0];
	*port = atoi(buf);
	return pid;
}

static void fake_stop(pid_t pid)
{
	if (pid > 0) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
	}
	if (g_fake_out >= 0)
		close(g_fake_out);
	g_fake_out = -1;
}

static void test_thread_driver_streams_and_structured_output(void)
{
	int port = 0;
	pid_t pid = fake_start("ok", &port);
	CHECK(port > 0);
	char url[64];
	snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", port);
	nb_cfg.llm_url = url;
	nb_cfg.llm_model = "fake-model";
	nb_cfg.llm_context_tokens = 8192;
	nb_cfg.llm_max_tokens = 512;
	nb_cfg.llm_connect_timeout_ms = 2000;
	nb_cfg.llm_idle_timeout_ms = 5000;
	nb_cfg.llm_retries = 0;
	nb_gen_chunk_t chunks[1] = {{"c1", "s1", "Melted wax rises up the wick by capillary action.", 1}};
	nb_gen_request_t req = {.kind = NB_GEN_CHAT, .chunks = chunks, .nchunks = 1, .question = "How?",
				.on_delta = collect};
	nb_gen_result_t res = {0};
	nb_buf_reset(&g_streamed);
	nb_gen__openai_run(&req, &res);
	CHECK_MSG(res.error_code == NB_GEN_OK, "%s", res.error);
	CHECK(res.text && strstr(res.text, "[1]"));
	CHECK_INT(res.nclaims, 1);
	CHECK_INT(res.input_tokens, 321); /* the server's usage */
	nb_buf_append(&g_streamed, "", 1);
	CHECK_STR(g_streamed.data, res.text);
	nb_gen_result_dispose(&res);

	json_t *schema = json_pack("{s:s, s:{s:{s:s}}}", "type", "object", "properties", "answer", "type", "string");
	nb_gen_request_t sreq = {.kind = NB_GEN_QUIZ, .chunks = chunks, .nchunks = 1, .instructions = "Make a quiz.",
				 .schema = schema};
	CHECK_INT(nb_gen__openai_run(&sreq, &res), NB_GEN_OK);
	CHECK(json_is_string(json_object_get(res.structured, "answer")));
	nb_gen_result_dispose(&res);
	fake_stop(pid);

	pid = fake_start("badjson", &port); /* invalid twice: asked once more, then NB_GEN_EINVALID */
	snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", port);
	nb_gen__openai_run(&sreq, &res);
	CHECK_MSG(res.error_code == NB_GEN_EINVALID, "%d %s", res.error_code, res.error);
	CHECK(strstr(res.error, "invalid") != NULL);
	nb_gen_result_dispose(&res);
	fake_stop(pid);

	/* nothing listening: a clear upstream error */
	snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", port);
	CHECK_INT(nb_gen__openai_run(&req, &res), NB_GEN_EUPSTREAM);
	CHECK(strstr(res.error, "model server") != NULL);
	nb_gen_result_dispose(&res);
	json_decref(schema);
	nb_cfg.llm_url = nb_cfg.llm_model = NULL;
}

int main(void)
{
	T_RUN(test_markers_split_anywhere);
	T_RUN(test_no_answer_token);
	T_RUN(test_context_budget);
	T_RUN(test_thread_driver_streams_and_structured_output);
	nb_buf_dispose(&g_streamed);
	return t_done();
}
