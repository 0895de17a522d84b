/*
 * test_generate.c — citation verification (exact spans, off-by-one,
 * multibyte text, the wrong chunk), the OR query of chat retrieval, and the
 * extractive generator (the right sentence, exact spans, no answer,
 * follow-ups, determinism, cancellation).
 */
#include <stdlib.h>
#include <string.h>

#include "rag/citations.h"
#include "rag/generate.h"
#include "rag/retrieve.h"
#include "t.h"

/* The handler's claim verifier is static: reach it the way h2o's tests do. */
#include "../../src/api/conversations.c"

static const char *k_candle =
    "The flame of a candle is hollow. Melted wax rises up the wick by capillary action. "
    "The bright part of the flame glows because tiny particles of solid carbon are heated white-hot. "
    "When the carbon particles burn away at the edge of the flame, they form carbon dioxide.";
static const char *k_river =
    "A river carries sediment from the mountains to the sea. Where the current slows, sand and silt "
    "settle out and build a delta. The Nile delta is one of the largest in the world.";

static void test_cite_exact(void)
{
	const char *t = "The flame of a candle is hollow.";
	CHECK_INT(nb_cite_check(t, "flame", 4, 9), NB_CITE_OK);
	CHECK_INT(nb_cite_check(t, t, 0, (long)strlen(t)), NB_CITE_OK);
	long s, e;
	CHECK_INT(nb_cite_locate(k_candle, "Melted wax rises up the wick by capillary action.", &s, &e), 0);
	CHECK_INT(nb_cite_check(k_candle, "Melted wax rises up the wick by capillary action.", s, e), NB_CITE_OK);
	CHECK_INT(nb_cite_locate(k_candle, "not in the text", &s, &e), -1);
	CHECK_INT(nb_cite_locate(k_candle, "", &s, &e), -1);
}

static void test_cite_off_by_one(void)
{
	const char *t = "The flame of a candle is hollow.";
	CHECK_INT(nb_cite_check(t, "flame", 3, 8), NB_CITE_MISMATCH);
	CHECK_INT(nb_cite_check(t, "flame", 5, 10), NB_CITE_MISMATCH);
	CHECK_INT(nb_cite_check(t, "flame", 4, 10), NB_CITE_MISMATCH);
	CHECK_INT(nb_cite_check(t, "flame", 4, 8), NB_CITE_MISMATCH);
	/* ranges outside the text or empty */
	CHECK_INT(nb_cite_check(t, "hollow.", 25, 33), NB_CITE_BAD_RANGE);
	CHECK_INT(nb_cite_check(t, "", 3, 3), NB_CITE_BAD_RANGE);
	CHECK_INT(nb_cite_check(t, "The", -1, 2), NB_CITE_BAD_RANGE);
	CHECK_INT(nb_cite_check(t, "The", 3, 0), NB_CITE_BAD_RANGE);
}

static void test_cite_multibyte(void)
{
	/* é (2 bytes), 中 (3 bytes), 😀 (4 bytes): offsets count code points, not bytes */
	const char *t = "Café 中文 😀 smile.";
	CHECK_INT(nb_cite_check(t, "Café", 0, 4), NB_CITE_OK);
	CHECK_INT(nb_cite_check(t, "中文", 5, 7), NB_CITE_OK);
	CHECK_INT(nb_cite_check(t, "😀 smile", 8, 15), NB_CITE_OK);
	/* the byte offsets are wrong as code point offsets */
	CHECK_INT(nb_cite_check(t, "中文", 6, 8), NB_CITE_MISMATCH);
	CHECK(nb_cite_check(t, "中文", 6, 12) != NB_CITE_OK);
	long s, e;
	CHECK_INT(nb_cite_locate(t, "smile", &s, &e), 0);
	CHECK_INT(s, 10);
	CHECK_INT(e, 15);
	/* invalid UTF-8 never verifies */
	CHECK_INT(nb_cite_check("ab\xff", "b", 1, 2), NB_CITE_BAD_UTF8);
	CHECK_INT(nb_cite_byte_offset(t, strlen(t), 5), 6);
	CHECK_INT(nb_cite_byte_offset(t, strlen(t), 100), -1);
}

static void test_cite_wrong_chunk(void)
{
	long s, e;
	CHECK_INT(nb_cite_locate(k_candle, "The flame of a candle is hollow.", &s, &e), 0);
	/* the same span claimed in another chunk's text does not check out */
	CHECK(nb_cite_check(k_river, "The flame of a candle is hollow.", s, e) != NB_CITE_OK);
}

static void test_cite_renumber(void)
{
	int renum[] = {1, 0, 2};
	char *t = nb_cite_renumber("One. [1] Two. [2] Three. [3] Keep [7] and [x] and [1", renum, 3);
	CHECK_STR(t, "One. [1] Two. Three. [2] Keep [7] and [x] and [1");
	free(t);
	int none[] = {0};
	t = nb_cite_renumber("Only. [1]", none, 1);
	CHECK_STR(t, "Only.");
	free(t);
}

static void test_or_query(void)
{
	char *q = nb_rag_or_query("Why does the \"flame\" glow -brightly? (or not)");
	CHECK_STR(q, "Why or does or the or flame or glow or brightly or not");
	free(q);
	q = nb_rag_or_query("?!  ");
	CHECK_STR(q, "");
	free(q);
	q = nb_rag_or_query(NULL);
	CHECK_STR(q, "");
	free(q);
	q = nb_rag_or_query("café au lait");
	CHECK_STR(q, "café or au or lait");
	free(q);
}

static nb_gen_chunk_t k_chunks[] = {
    {"00000000-0000-7000-8000-000000000001", "00000000-0000-7000-8000-0000000000a1", NULL, 0.5},
    {"00000000-0000-7000-8000-000000000002", "00000000-0000-7000-8000-0000000000a2", NULL, 0.4},
};

static nb_generator_t *gen(void)
{
	static nb_generator_t *g;
	char err[128];
	if (!g && nb_gen_create("extractive", &g, err, sizeof err) < 0)
		abort();
	k_chunks[0].text = k_candle;
	k_chunks[1].text = k_river;
	return g;
}

/* Every claim is an exact span of the chunk it names. */
static void check_claims(const nb_gen_result_t *r)
{
	for (size_t i = 0; i < r->nclaims; i++) {
		const nb_gen_claim_t *c = &r->claims[i];
		CHECK(c->chunk >= 0 && c->chunk < 2);
		CHECK_INT(nb_cite_check(k_chunks[c->chunk].text, c->quote, c->char_start, c->char_end), NB_CITE_OK);
	}
}

static void test_extractive_answers(void)
{
	nb_gen_request_t rq = {.kind = NB_GEN_CHAT,
			       .chunks = k_chunks,
			       .nchunks = 2,
			       .question = "Why does the bright part of a candle flame glow?"};
	nb_gen_result_t r;
	CHECK_INT(nb_gen_run(gen(), &rq, &r), 0);
	CHECK(!r.no_answer);
	CHECK(r.nclaims >= 1 && r.nclaims <= 3);
	CHECK(r.nclaims && r.claims[0].chunk == 0);
	CHECK(r.nclaims && strstr(r.claims[0].quote, "particles of solid carbon are heated") != NULL);
	CHECK(strstr(r.text, " [1]") != NULL);
	CHECK_STR(r.provider, "extractive");
	CHECK(r.input_tokens > 0 && r.output_tokens > 0);
	check_claims(&r);
	/* deterministic: the same question, the same answer */
	nb_gen_result_t r2;
	nb_gen_run(gen(), &rq, &r2);
	CHECK_STR(r.text, r2.text);
	nb_gen_result_dispose(&r);
	nb_gen_result_dispose(&r2);

	rq.question = "How is a river delta built?";
	CHECK_INT(nb_gen_run(gen(), &rq, &r), 0);
	CHECK(r.nclaims >= 1 && r.claims[0].chunk == 1);
	check_claims(&r);
	nb_gen_result_dispose(&r);
}

static void test_extractive_no_answer(void)
{
	const char *qs[] = {"What is the capital of Peru?", "Quelle est la couleur du ciel ?", "why?", "中文"};
	for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
		nb_gen_request_t rq = {.kind = NB_GEN_CHAT, .chunks = k_chunks, .nchunks = 2, .question = qs[i]};
		nb_gen_result_t r;
		CHECK_INT(nb_gen_run(gen(), &rq, &r), 0);
		CHECK_MSG(r.no_answer, "%s", qs[i]);
		CHECK_INT(r.nclaims, 0);
		CHECK_STR(r.text, NB_GEN_NO_ANSWER);
		nb_gen_result_dispose(&r);
	}
	/* no chunks at all */
	nb_gen_request_t rq = {.kind = NB_GEN_CHAT, .question = "How does a candle burn?"};
	nb_gen_result_t r;
	CHECK_INT(nb_gen_run(gen(), &rq, &r), 0);
	CHECK(r.no_answer);
	nb_gen_result_dispose(&r);
}

static void test_extractive_follow_up(void)
{
	nb_gen_turn_t hist[] = {
	    {"user", "What happens to the carbon particles in a candle flame?"},
	    {"assistant",
	     "When the carbon particles burn away at the edge of the flame, they form carbon dioxide. [1]"},
	};
	nb_gen_request_t rq = {.kind = NB_GEN_CHAT,
			       .chunks = k_chunks,
			       .nchunks = 2,
			       .question = "And why is that?",
			       .history = hist,
			       .nhistory = 2};
	nb_gen_result_t r;
	CHECK_INT(nb_gen_run(gen(), &rq, &r), 0);
	CHECK(!r.no_answer);
	CHECK(r.nclaims >= 1 && r.claims[0].chunk == 0);
	/* something new first: not the sentence already given */
	CHECK(r.nclaims && strstr(r.claims[0].quote, "form carbon dioxide") == NULL);
	check_claims(&r);
	nb_gen_result_dispose(&r);
}

/* Paragraphs, headings and multibyte text: spans stay exact (and splitting terminates). */
static void test_extractive_paragraphs_and_multibyte(void)
{
	static nb_gen_chunk_t ch[] = {
	    {"00000000-0000-7000-8000-000000000003", "00000000-0000-7000-8000-0000000000a3",
	     "Crème brûlée\n\nThe crème brûlée is a custard dessert from France. Its top is caramelised sugar.\n\n\n"
	     "Café au lait — coffee with hot milk — is drunk at breakfast in França and elsewhere.\n\n",
	     0.3},
	};
	const char *qs[] = {"What is crème brûlée?", "When is café au lait drunk?", "What is the top made of?"};
	for (size_t i = 0; i < 3; i++) {
		nb_gen_request_t rq = {.kind = NB_GEN_CHAT, .chunks = ch, .nchunks = 1, .question = qs[i]};
		nb_gen_result_t r;
		CHECK_INT(nb_gen_run(gen(), &rq, &r), 0);
		CHECK_MSG(r.nclaims >= 1, "%s", qs[i]);
		for (size_t k = 0; k < r.nclaims; k++)
			CHECK_INT(
			    nb_cite_check(ch[0].text, r.claims[k].quote, r.claims[k].char_start, r.claims[k].char_end),
			    NB_CITE_OK);
		nb_gen_result_dispose(&r);
	}
}

static int stop_after_one(void *ud, const char *t, size_t n)
{
	(void)t;
	(void)n;
	return ++*(int *)ud >= 1;
}

static void test_extractive_cancel(void)
{
	int calls = 0;
	nb_gen_request_t rq = {.kind = NB_GEN_CHAT,
			       .chunks = k_chunks,
			       .nchunks = 2,
			       .question = "How is a river delta built?",
			       .on_delta = stop_after_one,
			       .ud = &calls};
	nb_gen_result_t r;
	CHECK_INT(nb_gen_run(gen(), &rq, &r), NB_GEN_ECANCELLED);
	CHECK(r.text == NULL);
	CHECK_INT(calls, 1);
	nb_gen_result_dispose(&r);
}

static void test_generator_choice(void)
{
	nb_generator_t *g = NULL;
	char err[160] = "";
	CHECK_INT(nb_gen_create("gpt", &g, err, sizeof err), -1);
	CHECK(strstr(err, "NOTEBOOKD_GENERATOR") != NULL);
	CHECK_INT(nb_gen_create("openai", &g, err, sizeof err), 0);
	CHECK_STR(nb_gen_provider(g), "openai");
	nb_gen_request_t rq = {.kind = NB_GEN_CHAT, .question = "x"};
	nb_gen_result_t r;
	CHECK_INT(nb_gen_run(g, &rq, &r), NB_GEN_EUNCONFIGURED);
	CHECK(strstr(r.error, "not configured") != NULL);
	nb_gen_result_dispose(&r);
	nb_gen_destroy(g);
}

/*
 * The verifier behind POST …/messages: only claims that name a chunk read
 * back from the database (live, ready, this notebook) at an exact span are
 * kept; the others are dropped and counted.
 */
static void test_verify_claims_drops_what_does_not_check_out(void)
{
	gen();
	nb_retrieved_t ret = {.chunks = k_chunks, .n = 2};
	nb_gen_claim_t claims[] = {
	    {0, (char *)"The flame of a candle is hollow.", 0, 0},		      /* exact (offsets set below) */
	    {0, (char *)"The flame of a candle is hollow.", 1, 0},		      /* off by one (set below) */
	    {1, (char *)"The Nile delta is one of the largest in the world.", 0, 0},  /* chunk not read back */
	    {0, (char *)"Melted wax rises up the wick by capillary action.", -1, -1}, /* quote only: located */
	    {7, (char *)"anything", 0, 8},					      /* no such chunk number */
	    {0, (char *)"a sentence the chunk does not hold", -1, -1},		      /* not in the text */
	};
	long s, e;
	nb_cite_locate(k_candle, claims[0].quote, &s, &e);
	claims[0].char_start = s;
	claims[0].char_end = e;
	claims[1].char_start = s + 1;
	claims[1].char_end = e + 1;
	nb_gen_result_t res = {.claims = claims, .nclaims = 6};
	/* what the store read back: only the candle chunk (the river chunk's source went to the trash) */
	char *ids[] = {(char *)k_chunks[0].chunk_id}, *sids[] = {(char *)k_chunks[0].source_id},
	     *texts[] = {(char *)k_candle};
	nb_chat_chunks_t cc = {.n = 1, .ids = ids, .source_ids = sids, .texts = texts};
	ask_t a = {.ret = &ret, .res = &res};
	int dropped = -1;
	const char *answer = "First. [1] Second. [2] Third. [3] Fourth. [4] Fifth. [5] Sixth. [6]";
	json_t *out = verify_claims(&a, &cc, &dropped, &answer);
	CHECK_INT(json_array_size(out), 2);
	CHECK_INT(dropped, 4);
	/* the markers now number the citations that are shown */
	CHECK_STR(answer, "First. [1] Second. Third. Fourth. [2] Fifth. Sixth.");
	json_t *c0 = json_array_get(out, 0), *c1 = json_array_get(out, 1);
	CHECK_STR(json_string_value(json_object_get(c0, "chunk_id")), k_chunks[0].chunk_id);
	CHECK_STR(json_string_value(json_object_get(c0, "source_id")), k_chunks[0].source_id);
	CHECK_INT(json_integer_value(json_object_get(c0, "char_start")), s);
	CHECK_STR(json_string_value(json_object_get(c1, "quote")), "Melted wax rises up the wick by capillary action.");
	long s1 = (long)json_integer_value(json_object_get(c1, "char_start"));
	long e1 = (long)json_integer_value(json_object_get(c1, "char_end"));
	CHECK_INT(nb_cite_check(k_candle, json_string_value(json_object_get(c1, "quote")), s1, e1), NB_CITE_OK);
	json_decref(out);
	/* nothing checks out: nothing is shown, and the answer says it found nothing */
	cc.n = 0;
	out = verify_claims(&a, &cc, &dropped, &answer);
	CHECK_INT(json_array_size(out), 0);
	CHECK_INT(dropped, 6);
	CHECK_STR(answer, NB_GEN_NO_ANSWER);
	json_decref(out);
	free(a.rewritten);
	/* the ids the store is asked to read back: every claimed chunk that exists in the request */
	json_t *want = claimed_ids(&ret, &res);
	CHECK_INT(json_array_size(want), 5);
	json_decref(want);
}

int main(void)
{
	T_RUN(test_cite_exact);
	T_RUN(test_cite_off_by_one);
	T_RUN(test_cite_multibyte);
	T_RUN(test_cite_wrong_chunk);
	T_RUN(test_cite_renumber);
	T_RUN(test_or_query);
	T_RUN(test_extractive_answers);
	T_RUN(test_extractive_no_answer);
	T_RUN(test_extractive_follow_up);
	T_RUN(test_extractive_paragraphs_and_multibyte);
	T_RUN(test_extractive_cancel);
	T_RUN(test_generator_choice);
	T_RUN(test_verify_claims_drops_what_does_not_check_out);
	return t_done();
}
