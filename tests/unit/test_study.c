/*
 * test_study.c — study outputs without a database: the extractive quiz,
 * study guide and source guide on the chat fixture corpus (quality checks,
 * printed per text), the strict validator on malformed and schema-breaking
 * output, the one retry, citation verification (a question whose only
 * citation is dropped goes too), and the Markdown rendering through cmark
 * (no raw HTML from the sources).
 */
#include <cmark.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rag/chunk.h"
#include "rag/citations.h"
#include "rag/gen_study.h"
#include "rag/generate.h"
#include "t.h"

typedef struct corpus {
	char *text;
	nb_chunk_t *spans;
	size_t n;
	char **texts;
	char ids[64][37];
	nb_gen_chunk_t chunks[64];
} corpus_t;

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *b = malloc((size_t)n + 1);
	size_t got = fread(b, 1, (size_t)n, f);
	b[got] = '\0';
	fclose(f);
	return b;
}

static int load(corpus_t *c, const char *name)
{
	memset(c, 0, sizeof *c);
	char path[256];
	snprintf(path, sizeof path, "tests/fixtures/chat/%s", name);
	c->text = slurp(path);
	if (!c->text)
		return -1;
	if (nb_chunk_text(c->text, strlen(c->text), NULL, 0, 1200, 150, &c->spans, &c->n) < 0 || c->n > 64)
		return -1;
	c->texts = calloc(c->n, sizeof *c->texts);
	for (size_t i = 0; i < c->n; i++) {
		c->texts[i] = strndup(c->text + c->spans[i].byte_start, c->spans[i].byte_end - c->spans[i].byte_start);
		snprintf(c->ids[i], 37, "00000000-0000-7000-8000-%012d", (int)i);
		c->chunks[i] = (nb_gen_chunk_t){c->ids[i], "00000000-0000-7000-8000-000000000001", c->texts[i], 0};
	}
	return 0;
}

static void unload(corpus_t *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->texts[i]);
	free(c->texts);
	free(c->spans);
	free(c->text);
}

static int run_gen(void *ud, const nb_gen_request_t *req, nb_gen_result_t *res)
{
	return nb_gen_run(ud, req, res);
}

/* Runs a kind through generate + verify; content owned by the caller. */
static json_t *make(corpus_t *c, nb_gen_kind_t kind, int n, int *dropped)
{
	nb_generator_t *g = NULL;
	char err[128];
	nb_gen_create("extractive", &g, err, sizeof err);
	json_t *schema = nb_study_schema(kind, n);
	nb_gen_request_t req = {.kind = kind, .chunks = c->chunks, .nchunks = c->n,
				.instructions = nb_study_instructions(kind), .schema = schema};
	nb_gen_result_t res;
	int attempts = 0;
	json_t *content = NULL, *ids = NULL;
	char why[256] = "";
	int rc = nb_study_generate(run_gen, g, &req, n, &res, &attempts);
	CHECK_MSG(rc == 0, "generate: %s", res.error);
	CHECK_INT(attempts, 1);
	if (rc == 0)
		CHECK_MSG(nb_study_verify(kind, res.structured, c->chunks, c->n, "Guide", &content, &ids, dropped, why,
					  sizeof why) == 0,
			  "verify: %s", why);
	json_decref(ids);
	json_decref(schema);
	nb_gen_result_dispose(&res);
	nb_gen_destroy(g);
	return content;
}

static const nb_gen_chunk_t *chunk_by_id(const corpus_t *c, const char *id)
{
	for (size_t i = 0; i < c->n; i++)
		if (!strcmp(c->ids[i], id))
			return &c->chunks[i];
	return NULL;
}

/* The citation is an exact span of a given chunk. */
static bool cite_ok(const corpus_t *c, const json_t *cite)
{
	const nb_gen_chunk_t *ch = chunk_by_id(c, json_string_value(json_object_get(cite, "chunk_id")));
	return ch && nb_cite_check(ch->text, json_string_value(json_object_get(cite, "quote")),
				   (long)json_integer_value(json_object_get(cite, "char_start")),
				   (long)json_integer_value(json_object_get(cite, "char_end"))) == NB_CITE_OK;
}

static bool contains_ci(const char *hay, const char *needle)
{
	size_t n = strlen(needle);
	for (; *hay; hay++)
		if (!strncasecmp(hay, needle, n))
			return true;
	return false;
}

/* All checks of the quality bar on one question. */
static bool question_ok(const corpus_t *c, const json_t *q)
{
	const json_t *ch = json_object_get(q, "choices");
	json_int_t ai = json_integer_value(json_object_get(q, "answer_index"));
	const char *answer = json_string_value(json_object_get(q, "answer"));
	if (!answer || !*answer || ai < 0 || (size_t)ai >= json_array_size(ch) || json_array_size(ch) < 2 ||
	    strcmp(json_string_value(json_array_get(ch, (size_t)ai)), answer))
		return false;
	for (size_t i = 0; i < json_array_size(ch); i++) {
		const char *a = json_string_value(json_array_get(ch, i));
		if (!a || !*a)
			return false;
		for (size_t j = 0; j < i; j++)
			if (!strcasecmp(a, json_string_value(json_array_get(ch, j))))
				return false; /* distinct, so no distractor equals the answer */
	}
	const json_t *cites = json_object_get(q, "citations");
	if (json_array_size(cites) < 1)
		return false;
	for (size_t i = 0; i < json_array_size(cites); i++)
		if (!cite_ok(c, json_array_get(cites, i)))
			return false;
	return contains_ci(json_string_value(json_object_get(json_array_get(cites, 0), "quote")), answer);
}

static void test_quiz_quality(void)
{
	const char *files[] = {"candle.txt", "printing.txt", "water_cycle.txt"};
	for (int f = 0; f < 3; f++) {
		corpus_t c;
		CHECK_INT(load(&c, files[f]), 0);
		int dropped = -1;
		json_t *qs = make(&c, NB_GEN_QUIZ, 10, &dropped);
		CHECK_INT(dropped, 0);
		size_t ok = 0;
		for (size_t i = 0; i < json_array_size(qs); i++) {
			bool good = question_ok(&c, json_array_get(qs, i));
			ok += good;
			CHECK_MSG(good, "%s question %zu: %s", files[f], i,
				  json_string_value(json_object_get(json_array_get(qs, i), "question")));
		}
		printf("# quiz %s: %zu of 10 questions pass all checks (%zu made)\n", files[f], ok, json_array_size(qs));
		CHECK_INT(json_array_size(qs), 10);
		/* deterministic */
		json_t *again = make(&c, NB_GEN_QUIZ, 10, &dropped);
		CHECK(json_equal(qs, again));
		json_decref(again);
		json_decref(qs);
		unload(&c);
	}
}

static bool md_has_raw_html(const char *md)
{
	char *html = cmark_markdown_to_html(md, strlen(md), CMARK_OPT_DEFAULT);
	bool raw = strstr(html, "raw HTML omitted") || strstr(html, "<script") || strstr(html, "<img");
	free(html);
	return raw;
}

static void test_guide_quality(void)
{
	const char *files[] = {"candle.txt", "printing.txt", "water_cycle.txt"};
	for (int f = 0; f < 3; f++) {
		corpus_t c;
		CHECK_INT(load(&c, files[f]), 0);
		int dropped = -1;
		json_t *g = make(&c, NB_GEN_STUDY_GUIDE, 0, &dropped);
		const json_t *terms = json_object_get(g, "key_terms");
		CHECK(json_array_size(terms) >= 3);
		for (size_t i = 0; i < json_array_size(terms); i++) {
			const json_t *t = json_array_get(terms, i);
			const json_t *cite = json_array_get(json_object_get(t, "citations"), 0);
			CHECK(cite_ok(&c, cite));
			CHECK_MSG(contains_ci(json_string_value(json_object_get(cite, "quote")),
					      json_string_value(json_object_get(t, "term"))),
				  "%s term %s", files[f], json_string_value(json_object_get(t, "term")));
		}
		const json_t *sum = json_object_get(g, "summary");
		CHECK(json_array_size(json_object_get(sum, "citations")) >= 1);
		for (size_t i = 0; i < json_array_size(json_object_get(sum, "citations")); i++)
			CHECK(cite_ok(&c, json_array_get(json_object_get(sum, "citations"), i)));
		CHECK(json_array_size(json_object_get(g, "review_questions")) >= 1);
		const char *md = json_string_value(json_object_get(g, "markdown"));
		CHECK(md && strstr(md, "## Key terms"));
		CHECK(md && !md_has_raw_html(md));
		printf("# guide %s: %zu key terms, %zu review questions\n", files[f], json_array_size(terms),
		       json_array_size(json_object_get(g, "review_questions")));
		json_decref(g);
		json_t *sg = make(&c, NB_GEN_SOURCE_GUIDE, 0, &dropped);
		CHECK(json_array_size(json_object_get(json_object_get(sg, "summary"), "citations")) >= 1);
		CHECK(json_array_size(json_object_get(sg, "topics")) >= 1);
		json_decref(sg);
		unload(&c);
	}
}

static void test_markdown_escapes_html(void)
{
	json_t *g = json_pack("{s:{s:s, s:[]}, s:[{s:s, s:s, s:[]}], s:[{s:s, s:s, s:[]}]}", "summary", "text",
			      "<script>alert(1)</script> and <img src=x onerror=alert(2)> [a](javascript:x)",
			      "citations", "key_terms", "term", "<b>bold</b>", "definition",
			      "**not bold** `code` <!-- c --> &amp; # not a heading\n\n<div>x</div>", "citations",
			      "review_questions", "question", "1. not a list", "answer", "> not a quote", "citations");
	char *md = nb_study_markdown("<i>Title</i>", g);
	CHECK(!md_has_raw_html(md));
	char *html = cmark_markdown_to_html(md, strlen(md), CMARK_OPT_DEFAULT);
	CHECK(strstr(html, "&lt;script&gt;alert(1)&lt;/script&gt;") != NULL);
	CHECK(strstr(html, "<a ") == NULL);
	CHECK(strstr(html, "<code>") == NULL);
	CHECK(strstr(html, "&lt;div&gt;") != NULL);
	free(html);
	free(md);
	json_decref(g);
}

static void test_validate(void)
{
	char why[200];
	const char *bad[] = {
	    "[]",
	    "{\"questions\": []}",
	    "{\"questions\": [{\"question\": \"Q\", \"choices\": [\"a\", \"b\"], \"answer_index\": 2,"
	    " \"explanation\": \"e\", \"citations\": [{\"chunk\": 1, \"quote\": \"x\"}]}]}",
	    "{\"questions\": [{\"question\": \"Q\", \"choices\": [\"a\", \"A\"], \"answer_index\": 0,"
	    " \"explanation\": \"e\", \"citations\": [{\"chunk\": 1, \"quote\": \"x\"}]}]}",
	    "{\"questions\": [{\"question\": \"Q\", \"choices\": [\"a\", \"b\"], \"answer_index\": 0,"
	    " \"explanation\": \"e\", \"citations\": [{\"chunk\": 9, \"quote\": \"x\"}]}]}",
	    "{\"questions\": [{\"question\": \"Q\", \"choices\": [\"a\", \"b\"], \"answer_index\": 0,"
	    " \"explanation\": \"e\", \"citations\": []}]}",
	    "{\"questions\": [{\"question\": \"\", \"choices\": [\"a\", \"b\"], \"answer_index\": 0,"
	    " \"explanation\": \"e\", \"citations\": [{\"chunk\": 1, \"quote\": \"x\"}]}]}",
	    "{\"questions\": [{\"question\": \"Q\", \"choices\": [\"a\", \"b\"], \"answer_index\": \"0\","
	    " \"explanation\": \"e\", \"citations\": [{\"chunk\": 1, \"quote\": \"x\"}]}]}",
	    "{\"questions\": [{\"question\": \"Q\", \"choices\": [\"a\", \"b\"], \"answer_index\": 0, \"extra\": 1,"
	    " \"explanation\": \"e\", \"citations\": [{\"chunk\": 1, \"quote\": \"x\"}]}]}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		json_t *j = json_loads(bad[i], JSON_DECODE_ANY, NULL);
		CHECK_MSG(j && nb_study_validate(NB_GEN_QUIZ, j, 5, 2, why, sizeof why) < 0, "accepted %s", bad[i]);
		json_decref(j);
	}
	json_t *ok = json_loads("{\"questions\": [{\"question\": \"Q\", \"choices\": [\"a\", \"b\"], \"answer_index\": 1,"
				" \"explanation\": \"e\", \"citations\": [{\"chunk\": 2, \"quote\": \"x\"}]}]}",
				0, NULL);
	CHECK_INT(nb_study_validate(NB_GEN_QUIZ, ok, 5, 2, why, sizeof why), 0);
	CHECK(nb_study_validate(NB_GEN_QUIZ, ok, 0, 2, why, sizeof why) < 0); /* more than asked for */
	json_decref(ok);
	json_t *g = json_loads("{\"summary\": {\"text\": \"s\", \"citations\": [{\"chunk\": 1, \"quote\": \"x\"}]},"
			       " \"key_terms\": [{\"term\": \"t\"}], \"review_questions\": []}",
			       0, NULL);
	CHECK(nb_study_validate(NB_GEN_STUDY_GUIDE, g, 0, 1, why, sizeof why) < 0);
	CHECK(strstr(why, "key_terms[0]") != NULL);
	json_decref(g);
}

/* A fake generator: answers the texts of its script in turn. */
typedef struct script {
	const char *const *texts;
	int n, at;
} script_t;

static int scripted(void *ud, const nb_gen_request_t *req, nb_gen_result_t *res)
{
	script_t *s = ud;
	memset(res, 0, sizeof *res);
	res->provider = "openai";
	snprintf(res->model, sizeof res->model, "fake");
	res->text = strdup(s->texts[s->at < s->n ? s->at : s->n - 1]);
	s->at++;
	res->input_tokens = 10;
	res->output_tokens = 5;
	return 0;
}

static const char *k_chunk = "The wick is a braided cord of cotton threads. Paraffin wax melts at low heat.";

static void test_retry_once(void)
{
	nb_gen_chunk_t ch[1] = {{"00000000-0000-7000-8000-000000000001", "00000000-0000-7000-8000-000000000002", k_chunk, 0}};
	nb_gen_request_t req = {.kind = NB_GEN_QUIZ, .chunks = ch, .nchunks = 1};
	const char *good = "{\"questions\": [{\"question\": \"What is the wick made of?\", \"choices\": [\"cotton\", \"wax\"],"
			   " \"answer_index\": 0, \"explanation\": \"e\","
			   " \"citations\": [{\"chunk\": 1, \"quote\": \"The wick is a braided cord of cotton threads.\"}]}]}";
	/* malformed, then valid: one retry succeeds */
	const char *t1[] = {"{\"questions\": [ oops", good};
	script_t s1 = {t1, 2, 0};
	nb_gen_result_t res;
	int attempts = 0;
	CHECK_INT(nb_study_generate(scripted, &s1, &req, 5, &res, &attempts), 0);
	CHECK_INT(attempts, 2);
	CHECK_INT(res.input_tokens, 20);
	nb_gen_result_dispose(&res);
	/* schema-breaking twice: a failed generation with the reason */
	const char *t2[] = {"{\"questions\": [{\"question\": \"Q\"}]}"};
	script_t s2 = {t2, 1, 0};
	CHECK_INT(nb_study_generate(scripted, &s2, &req, 5, &res, &attempts), NB_GEN_EINVALID);
	CHECK_INT(attempts, 2);
	CHECK(strstr(res.error, "questions[0]") != NULL);
	nb_gen_result_dispose(&res);
	/* not JSON at all, twice */
	const char *t3[] = {"Sure! Here is your quiz."};
	script_t s3 = {t3, 1, 0};
	CHECK_INT(nb_study_generate(scripted, &s3, &req, 5, &res, &attempts), NB_GEN_EINVALID);
	CHECK(strstr(res.error, "not JSON") != NULL);
	nb_gen_result_dispose(&res);
}

static void test_verify_drops(void)
{
	nb_gen_chunk_t ch[1] = {{"00000000-0000-7000-8000-000000000001", "00000000-0000-7000-8000-000000000002", k_chunk, 0}};
	json_t *out = json_loads(
	    "{\"questions\": ["
	    "{\"question\": \"Q1\", \"choices\": [\"cotton\", \"wax\"], \"answer_index\": 0, \"explanation\": \"e\","
	    " \"citations\": [{\"chunk\": 1, \"quote\": \"a braided cord of cotton\"},"
	    "                 {\"chunk\": 1, \"quote\": \"made up\"}]},"
	    "{\"question\": \"Q2\", \"choices\": [\"a\", \"b\"], \"answer_index\": 1, \"explanation\": \"e\","
	    " \"citations\": [{\"chunk\": 1, \"quote\": \"The wick\", \"char_start\": 1, \"char_end\": 9}]}]}",
	    0, NULL);
	json_t *content = NULL, *ids = NULL;
	int dropped = 0;
	char why[128];
	CHECK_INT(nb_study_verify(NB_GEN_QUIZ, out, ch, 1, "t", &content, &ids, &dropped, why, sizeof why), 0);
	CHECK_INT(dropped, 2);
	CHECK_INT(json_array_size(content), 1); /* Q2's only citation was wrong: Q2 is dropped */
	const json_t *q = json_array_get(content, 0);
	CHECK_STR(json_string_value(json_object_get(q, "answer")), "cotton");
	const json_t *cite = json_array_get(json_object_get(q, "citations"), 0);
	CHECK_INT(json_integer_value(json_object_get(cite, "char_start")), 12);
	CHECK_INT(json_array_size(ids), 1);
	json_decref(content);
	json_decref(ids);
	json_decref(out);
	/* nothing verifiable: a failure with its reason */
	out = json_loads("{\"questions\": [{\"question\": \"Q\", \"choices\": [\"a\", \"b\"], \"answer_index\": 1,"
			 " \"explanation\": \"e\", \"citations\": [{\"chunk\": 1, \"quote\": \"invented\"}]}]}",
			 0, NULL);
	CHECK(nb_study_verify(NB_GEN_QUIZ, out, ch, 1, "t", &content, &ids, &dropped, why, sizeof why) < 0);
	CHECK(strstr(why, "no question") != NULL);
	json_decref(out);
}

int main(void)
{
	T_RUN(test_quiz_quality);
	T_RUN(test_guide_quality);
	T_RUN(test_markdown_escapes_html);
	T_RUN(test_validate);
	T_RUN(test_retry_once);
	T_RUN(test_verify_drops);
	return t_done();
}
