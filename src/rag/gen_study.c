/*
 * gen_study.c — quizzes, study guides and source guides: the shape (schema,
 * strict validator), the retry on invalid output, citation verification,
 * the Markdown rendering, and the extractive generator's structured output.
 *
 * The extractive generator is deterministic and offline. It splits chunks
 * into sentences kept as exact code-point spans (so every quote checks out
 * by construction) and finds key terms by their defining sentences: "X is
 * …", "X refers to …", "… is called X", "… known as X" (a "This process is
 * called X" sentence takes its previous sentence along as the definition).
 * Quiz questions come from key sentences: the right answer is taken from
 * the sentence (a key term, a number, a name) and blanked in the question;
 * distractors are other answers of the same kind found in the notebook (key
 * terms, numbers, names), never equal to the answer, never empty. Summaries
 * are the most central sentences (words shared with many other sentences),
 * in source order.
 */
#include "rag/gen_study.h"

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/utf8.h"
#include "rag/citations.h"
#include "rag/words.h"

#define MAX_TEXT 2000	   /* characters of a question, answer, definition or summary */
#define MAX_ITEMS 40	   /* key terms / review questions a structured output may hold */
#define MAX_CHOICES 6
#define QUIZ_MAX 20
#define GUIDE_TERMS 10
#define GUIDE_REVIEW 6
#define GUIDE_SUMMARY 5
#define SOURCE_SUMMARY 3
#define SOURCE_TOPICS 8
#define BLANK "_____"

/* ---- shape: schema, instructions, validation ----------------------------- */

static json_t *cite_schema(void)
{
	return json_pack("{s:s, s:{s:{s:s, s:i}, s:{s:s, s:i}}, s:[s, s], s:b}", "type", "object", "properties",
			 "chunk", "type", "integer", "minimum", 1, "quote", "type", "string", "minLength", 1, "required",
			 "chunk", "quote", "additionalProperties", 0);
}

static json_t *cites_schema(void)
{
	return json_pack("{s:s, s:o, s:i}", "type", "array", "items", cite_schema(), "minItems", 1);
}

static json_t *object_schema(json_t *props)
{
	json_t *req = json_array();
	const char *k;
	json_t *v;
	json_object_foreach(props, k, v) json_array_append_new(req, json_string(k));
	return json_pack("{s:s, s:o, s:o, s:b}", "type", "object", "properties", props, "required", req,
			 "additionalProperties", 0);
}

static json_t *str_schema(void)
{
	return json_pack("{s:s, s:i}", "type", "string", "minLength", 1);
}

static json_t *summary_schema(void)
{
	return object_schema(json_pack("{s:o, s:o}", "text", str_schema(), "citations", cites_schema()));
}

json_t *nb_study_schema(nb_gen_kind_t kind, int n)
{
	if (kind == NB_GEN_QUIZ) {
		json_t *q = object_schema(json_pack(
		    "{s:o, s:{s:s, s:o, s:i, s:i}, s:{s:s, s:i}, s:o, s:o}", "question", str_schema(), "choices", "type",
		    "array", "items", str_schema(), "minItems", 2, "maxItems", MAX_CHOICES, "answer_index", "type",
		    "integer", "minimum", 0, "explanation", str_schema(), "citations", cites_schema()));
		return object_schema(
		    json_pack("{s:{s:s, s:o, s:i, s:i}}", "questions", "type", "array", "items", q, "minItems", 1,
			      "maxItems", n < 1 ? 1 : n));
	}
	if (kind == NB_GEN_STUDY_GUIDE) {
		json_t *term = object_schema(json_pack("{s:o, s:o, s:o}", "term", str_schema(), "definition",
						       str_schema(), "citations", cites_schema()));
		json_t *rq = object_schema(json_pack("{s:o, s:o, s:o}", "question", str_schema(), "answer", str_schema(),
						     "citations", cites_schema()));
		return object_schema(json_pack("{s:o, s:{s:s, s:o}, s:{s:s, s:o}}", "summary", summary_schema(),
					       "key_terms", "type", "array", "items", term, "review_questions", "type",
					       "array", "items", rq));
	}
	return object_schema(json_pack("{s:o, s:{s:s, s:o}}", "summary", summary_schema(), "topics", "type", "array",
				       "items", str_schema()));
}

const char *nb_study_instructions(nb_gen_kind_t kind)
{
	switch (kind) {
	case NB_GEN_QUIZ:
		return "Write multiple-choice questions that test understanding of the numbered sources. Answer with "
		       "JSON only: {\"questions\": [{\"question\", \"choices\": [2 to 6 distinct strings], "
		       "\"answer_index\" (0-based index of the right choice), \"explanation\", \"citations\": "
		       "[{\"chunk\": source number, \"quote\": exact text copied from that source}]}]}. The right "
		       "answer must be supported by the quoted text; wrong choices must be plausible and clearly wrong.";
	case NB_GEN_STUDY_GUIDE:
		return "Write a study guide of the numbered sources. Answer with JSON only: {\"summary\": {\"text\", "
		       "\"citations\"}, \"key_terms\": [{\"term\", \"definition\", \"citations\"}], "
		       "\"review_questions\": [{\"question\", \"answer\", \"citations\"}]}, where each citations "
		       "list holds {\"chunk\": source number, \"quote\": exact text copied from that source}.";
	case NB_GEN_SOURCE_GUIDE:
		return "Summarise the numbered source in a few sentences and list its key topics. Answer with JSON "
		       "only: {\"summary\": {\"text\", \"citations\": [{\"chunk\": source number, \"quote\": exact "
		       "text copied from that source}]}, \"topics\": [short strings]}.";
	default:
		return "";
	}
}

typedef struct vctx {
	char *why;
	size_t whylen;
	size_t nchunks;
} vctx_t;

static int bad(vctx_t *v, const char *path, const char *msg)
{
	snprintf(v->why, v->whylen, "%s: %s", path, msg);
	return -1;
}

/* Only these keys. */
static int only_keys(vctx_t *v, const char *path, const json_t *o, const char *const *keys)
{
	const char *k;
	json_t *x;
	json_object_foreach((json_t *)o, k, x)
	{
		bool ok = false;
		for (const char *const *p = keys; *p && !ok; p++)
			ok = !strcmp(*p, k);
		if (!ok) {
			char m[160];
			snprintf(m, sizeof m, "unknown field \"%.60s\"", k);
			return bad(v, path, m);
		}
	}
	return 0;
}

static int text_field(vctx_t *v, const char *path, const json_t *o, const char *key)
{
	char p[128];
	snprintf(p, sizeof p, "%s.%s", path, key);
	const json_t *s = json_object_get(o, key);
	if (!json_is_string(s))
		return bad(v, p, "must be a string");
	const char *t = json_string_value(s);
	size_t n = json_string_length(s);
	if (!nb_utf8_valid(t, n) || memchr(t, '\0', n))
		return bad(v, p, "must be valid text");
	size_t chars = nb_utf8_count(t, n);
	bool blank = true;
	for (size_t i = 0; i < n && blank; i++)
		blank = isspace((unsigned char)t[i]) != 0;
	if (blank || chars > MAX_TEXT)
		return bad(v, p, "must be 1 to 2000 characters");
	return 0;
}

static int check_cites(vctx_t *v, const char *path, const json_t *o)
{
	static const char *const keys[] = {"chunk", "quote", "char_start", "char_end", NULL};
	char p[128];
	snprintf(p, sizeof p, "%s.citations", path);
	const json_t *a = json_object_get(o, "citations");
	if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > 16)
		return bad(v, p, "must be an array of 1 to 16 citations");
	size_t i;
	json_t *c;
	json_array_foreach(a, i, c)
	{
		char q[160];
		snprintf(q, sizeof q, "%s[%zu]", p, i);
		if (!json_is_object(c))
			return bad(v, q, "must be an object");
		if (only_keys(v, q, c, keys) < 0)
			return -1;
		json_t *k = json_object_get(c, "chunk");
		if (!json_is_integer(k) || json_integer_value(k) < 1 || (size_t)json_integer_value(k) > v->nchunks)
			return bad(v, q, "chunk must be the number of a given source chunk");
		if (text_field(v, q, c, "quote") < 0)
			return -1;
		json_t *s = json_object_get(c, "char_start"), *e = json_object_get(c, "char_end");
		if ((s && !json_is_integer(s)) || (e && !json_is_integer(e)) || (!s) != (!e))
			return bad(v, q, "char_start and char_end must be integers, both or neither");
	}
	return 0;
}

static int check_summary(vctx_t *v, const json_t *o)
{
	static const char *const keys[] = {"text", "citations", NULL};
	const json_t *s = json_object_get(o, "summary");
	if (!json_is_object(s))
		return bad(v, "summary", "must be an object");
	if (only_keys(v, "summary", s, keys) < 0 || text_field(v, "summary", s, "text") < 0 ||
	    check_cites(v, "summary", s) < 0)
		return -1;
	return 0;
}

static int check_quiz(vctx_t *v, const json_t *out, int max_items)
{
	static const char *const top[] = {"questions", NULL};
	static const char *const keys[] = {"question", "choices", "answer_index", "answer", "explanation", "citations",
					   NULL};
	if (only_keys(v, "output", out, top) < 0)
		return -1;
	const json_t *qs = json_object_get(out, "questions");
	if (!json_is_array(qs) || json_array_size(qs) == 0)
		return bad(v, "questions", "must be a non-empty array");
	if (json_array_size(qs) > (size_t)max_items)
		return bad(v, "questions", "more questions than asked for");
	size_t i;
	json_t *q;
	json_array_foreach(qs, i, q)
	{
		char p[64];
		snprintf(p, sizeof p, "questions[%zu]", i);
		if (!json_is_object(q))
			return bad(v, p, "must be an object");
		if (only_keys(v, p, q, keys) < 0 || text_field(v, p, q, "question") < 0 ||
		    text_field(v, p, q, "explanation") < 0 || check_cites(v, p, q) < 0)
			return -1;
		const json_t *ch = json_object_get(q, "choices");
		size_t n = json_array_size(ch);
		if (!json_is_array(ch) || n < 2 || n > MAX_CHOICES)
			return bad(v, p, "choices must be an array of 2 to 6 strings");
		for (size_t k = 0; k < n; k++) {
			char pk[80];
			snprintf(pk, sizeof pk, "%s.choices[%zu]", p, k);
			json_t *wrap = json_pack("{s:O}", "c", json_array_get(ch, k));
			int rc = text_field(v, pk, wrap, "c");
			json_decref(wrap);
			if (rc < 0)
				return -1;
			for (size_t m = 0; m < k; m++)
				if (!strcasecmp(json_string_value(json_array_get(ch, k)),
						json_string_value(json_array_get(ch, m))))
					return bad(v, pk, "repeats another choice");
		}
		const json_t *ai = json_object_get(q, "answer_index");
		if (!json_is_integer(ai) || json_integer_value(ai) < 0 || (size_t)json_integer_value(ai) >= n)
			return bad(v, p, "answer_index must index a choice");
		const json_t *ans = json_object_get(q, "answer");
		if (ans && (!json_is_string(ans) || strcmp(json_string_value(ans),
							  json_string_value(json_array_get(ch, (size_t)json_integer_value(ai))))))
			return bad(v, p, "answer must equal choices[answer_index]");
	}
	return 0;
}

static int check_items(vctx_t *v, const json_t *out, const char *name, const char *a, const char *b)
{
	const char *keys[] = {a, b, "citations", NULL};
	const json_t *arr = json_object_get(out, name);
	if (!json_is_array(arr) || json_array_size(arr) > MAX_ITEMS)
		return bad(v, name, "must be an array of at most 40 items");
	size_t i;
	json_t *it;
	json_array_foreach(arr, i, it)
	{
		char p[64];
		snprintf(p, sizeof p, "%s[%zu]", name, i);
		if (!json_is_object(it))
			return bad(v, p, "must be an object");
		if (only_keys(v, p, it, keys) < 0 || text_field(v, p, it, a) < 0 || text_field(v, p, it, b) < 0 ||
		    check_cites(v, p, it) < 0)
			return -1;
	}
	return 0;
}

int nb_study_validate(nb_gen_kind_t kind, const json_t *out, int max_items, size_t nchunks, char *why,
		      size_t whylen)
{
	vctx_t v = {why, whylen, nchunks};
	if (!json_is_object(out))
		return bad(&v, "output", "must be a JSON object");
	if (kind == NB_GEN_QUIZ)
		return check_quiz(&v, out, max_items);
	if (kind == NB_GEN_STUDY_GUIDE) {
		static const char *const top[] = {"summary", "key_terms", "review_questions", NULL};
		if (only_keys(&v, "output", out, top) < 0 || check_summary(&v, out) < 0 ||
		    check_items(&v, out, "key_terms", "term", "definition") < 0 ||
		    check_items(&v, out, "review_questions", "question", "answer") < 0)
			return -1;
		return 0;
	}
	if (kind == NB_GEN_SOURCE_GUIDE) {
		static const char *const top[] = {"summary", "topics", NULL};
		if (only_keys(&v, "output", out, top) < 0 || check_summary(&v, out) < 0)
			return -1;
		const json_t *t = json_object_get(out, "topics");
		if (!json_is_array(t) || json_array_size(t) > MAX_ITEMS)
			return bad(&v, "topics", "must be an array of at most 40 strings");
		for (size_t i = 0; i < json_array_size(t); i++) {
			char p[32];
			snprintf(p, sizeof p, "topics[%zu]", i);
			json_t *wrap = json_pack("{s:O}", "t", json_array_get(t, i));
			int rc = text_field(&v, p, wrap, "t");
			json_decref(wrap);
			if (rc < 0)
				return -1;
		}
		return 0;
	}
	return bad(&v, "output", "not a study kind");
}

int nb_study_generate(nb_study_run_fn run, void *ud, const nb_gen_request_t *req, int max_items, nb_gen_result_t *res,
		      int *attempts)
{
	int in = 0, outt = 0;
	char why[200] = "";
	*attempts = 0;
	for (int attempt = 0; attempt < 2; attempt++) {
		if (attempt)
			nb_gen_result_dispose(res);
		(*attempts)++;
		run(ud, req, res);
		in += res->input_tokens;
		outt += res->output_tokens;
		res->input_tokens = in;
		res->output_tokens = outt;
		if (res->error_code != NB_GEN_OK)
			return res->error_code; /* the generator's own failure: the job decides about retrying */
		if (!res->structured && res->text) { /* no schema support: the text must be the JSON object */
			json_error_t je;
			res->structured = json_loads(res->text, JSON_REJECT_DUPLICATES, &je);
			if (!res->structured)
				snprintf(why, sizeof why, "output is not JSON: %s", je.text);
		} else if (!res->structured) {
			snprintf(why, sizeof why, "output is empty");
		}
		if (res->structured &&
		    nb_study_validate(req->kind, res->structured, max_items, req->nchunks, why, sizeof why) == 0)
			return 0;
		json_decref(res->structured);
		res->structured = NULL;
	}
	res->error_code = NB_GEN_EINVALID;
	snprintf(res->error, sizeof res->error, "the generator's output did not match the expected shape twice: %.190s",
		 why);
	return res->error_code;
}

/* ---- verification ---------------------------------------------------------- */

typedef struct vstate {
	const nb_gen_chunk_t *chunks;
	size_t n;
	json_t *ids; /* distinct chunk ids cited */
	int dropped;
} vstate_t;

static void add_id(vstate_t *s, const char *id)
{
	size_t i;
	json_t *x;
	json_array_foreach(s->ids, i, x) if (!strcmp(json_string_value(x), id)) return;
	json_array_append_new(s->ids, json_string(id));
}

/* The verified citations of item (a new array, maybe empty). */
static json_t *verify_cites(vstate_t *s, const json_t *item)
{
	json_t *out = json_array();
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(item, "citations"), i, c)
	{
		long k = (long)json_integer_value(json_object_get(c, "chunk")) - 1;
		const char *quote = json_string_value(json_object_get(c, "quote"));
		json_t *js = json_object_get(c, "char_start"), *je = json_object_get(c, "char_end");
		long start = js ? (long)json_integer_value(js) : -1, end = je ? (long)json_integer_value(je) : -1;
		bool ok = k >= 0 && (size_t)k < s->n && quote;
		if (ok && !js)
			ok = nb_cite_locate(s->chunks[k].text, quote, &start, &end) == 0;
		if (ok)
			ok = nb_cite_check(s->chunks[k].text, quote, start, end) == NB_CITE_OK;
		if (!ok) {
			s->dropped++;
			continue;
		}
		add_id(s, s->chunks[k].chunk_id);
		json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:I, s:I}", "chunk_id", s->chunks[k].chunk_id,
						     "source_id", s->chunks[k].source_id, "quote", quote, "char_start",
						     (json_int_t)start, "char_end", (json_int_t)end));
	}
	return out;
}

static json_t *verify_summary(vstate_t *s, const json_t *out)
{
	const json_t *sum = json_object_get(out, "summary");
	json_t *cites = verify_cites(s, sum);
	if (json_array_size(cites) == 0) {
		json_decref(cites);
		return NULL;
	}
	return json_pack("{s:O, s:o}", "text", json_object_get(sum, "text"), "citations", cites);
}

/* Items {a, b, citations} whose citations survive. */
static json_t *verify_items(vstate_t *s, const json_t *arr, const char *a, const char *b)
{
	json_t *out = json_array();
	size_t i;
	json_t *it;
	json_array_foreach(arr, i, it)
	{
		json_t *cites = verify_cites(s, it);
		if (json_array_size(cites) == 0) {
			json_decref(cites);
			continue;
		}
		json_array_append_new(out, json_pack("{s:O, s:O, s:o}", a, json_object_get(it, a), b,
						     json_object_get(it, b), "citations", cites));
	}
	return out;
}

int nb_study_verify(nb_gen_kind_t kind, const json_t *out, const nb_gen_chunk_t *chunks, size_t nchunks,
		    const char *title, json_t **content, json_t **cited_ids, int *dropped, char *why, size_t whylen)
{
	vstate_t s = {chunks, nchunks, json_array(), 0};
	json_t *res = NULL;
	*content = *cited_ids = NULL;
	if (kind == NB_GEN_QUIZ) {
		res = json_array();
		size_t i;
		json_t *q;
		json_array_foreach(json_object_get(out, "questions"), i, q)
		{
			json_t *cites = verify_cites(&s, q);
			if (json_array_size(cites) == 0) { /* a question whose every citation was dropped goes too */
				json_decref(cites);
				continue;
			}
			json_t *ch = json_object_get(q, "choices");
			json_int_t ai = json_integer_value(json_object_get(q, "answer_index"));
			json_array_append_new(res, json_pack("{s:O, s:O, s:I, s:O, s:O, s:o}", "question",
							     json_object_get(q, "question"), "choices", ch,
							     "answer_index", ai, "answer",
							     json_array_get(ch, (size_t)ai), "explanation",
							     json_object_get(q, "explanation"), "citations", cites));
		}
		if (json_array_size(res) == 0) {
			snprintf(why, whylen, "no question could be verified against the sources");
			goto fail;
		}
	} else {
		json_t *sum = verify_summary(&s, out);
		if (!sum) {
			snprintf(why, whylen, "the summary could not be verified against the sources");
			goto fail;
		}
		if (kind == NB_GEN_STUDY_GUIDE) {
			res = json_pack("{s:o, s:o, s:o}", "summary", sum, "key_terms",
					verify_items(&s, json_object_get(out, "key_terms"), "term", "definition"),
					"review_questions",
					verify_items(&s, json_object_get(out, "review_questions"), "question", "answer"));
			char *md = nb_study_markdown(title, res);
			json_object_set_new(res, "markdown", json_string(md));
			free(md);
		} else {
			res = json_pack("{s:o, s:O}", "summary", sum, "topics", json_object_get(out, "topics"));
		}
	}
	*content = res;
	*cited_ids = s.ids;
	*dropped = s.dropped;
	return 0;
fail:
	json_decref(res);
	json_decref(s.ids);
	*dropped = s.dropped;
	return -1;
}

/* ---- Markdown ---------------------------------------------------------------- */

char *nb_study_md_escape(const char *text)
{
	nb_buf_t b = NB_BUF_INIT;
	for (const char *p = text ? text : ""; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '\n' || c == '\r' || c == '\t')
			nb_buf_putc(&b, ' ');
		else if (c < 0x80 && ispunct(c)) {
			nb_buf_putc(&b, '\\');
			nb_buf_putc(&b, (char)c);
		} else
			nb_buf_putc(&b, (char)c);
	}
	return nb_buf_steal(&b, NULL);
}

static void md_text(nb_buf_t *b, const char *s)
{
	char *e = nb_study_md_escape(s);
	nb_buf_printf(b, "%s", e);
	free(e);
}

/* " [n]" markers numbering the guide's citations, listed at the end. */
static void md_cites(nb_buf_t *b, const json_t *cites, json_t *all)
{
	size_t i;
	json_t *c;
	json_array_foreach(cites, i, c)
	{
		json_array_append(all, c);
		nb_buf_printf(b, " \\[%zu\\]", json_array_size(all));
	}
}

char *nb_study_markdown(const char *title, const json_t *guide)
{
	nb_buf_t b = NB_BUF_INIT;
	json_t *all = json_array();
	nb_buf_printf(&b, "# ");
	md_text(&b, title && *title ? title : "Study guide");
	nb_buf_printf(&b, "\n\n## Summary\n\n");
	const json_t *sum = json_object_get(guide, "summary");
	md_text(&b, json_string_value(json_object_get(sum, "text")));
	md_cites(&b, json_object_get(sum, "citations"), all);
	size_t i;
	json_t *it;
	const json_t *terms = json_object_get(guide, "key_terms");
	if (json_array_size(terms)) {
		nb_buf_printf(&b, "\n\n## Key terms\n\n");
		json_array_foreach(terms, i, it)
		{
			nb_buf_printf(&b, "- **");
			md_text(&b, json_string_value(json_object_get(it, "term")));
			nb_buf_printf(&b, "**: ");
			md_text(&b, json_string_value(json_object_get(it, "definition")));
			md_cites(&b, json_object_get(it, "citations"), all);
			nb_buf_printf(&b, "\n");
		}
	}
	const json_t *rqs = json_object_get(guide, "review_questions");
	if (json_array_size(rqs)) {
		nb_buf_printf(&b, "\n## Review questions\n\n");
		json_array_foreach(rqs, i, it)
		{
			nb_buf_printf(&b, "%zu. **", i + 1);
			md_text(&b, json_string_value(json_object_get(it, "question")));
			nb_buf_printf(&b, "**  \n   ");
			md_text(&b, json_string_value(json_object_get(it, "answer")));
			md_cites(&b, json_object_get(it, "citations"), all);
			nb_buf_printf(&b, "\n");
		}
	}
	if (json_array_size(all)) {
		nb_buf_printf(&b, "\n## Sources\n\n");
		json_array_foreach(all, i, it)
		{
			nb_buf_printf(&b, "%zu. ", i + 1);
			nb_buf_printf(&b, "> ");
			md_text(&b, json_string_value(json_object_get(it, "quote")));
			nb_buf_printf(&b, "\n");
		}
	}
	json_decref(all);
	return nb_buf_steal(&b, NULL);
}

/* ---- the extractive generator ------------------------------------------------ */

/* Sorted, for bsearch: words that carry no subject. */
static const char *const k_stop[] = {
    "a",     "about", "after", "again", "all",	   "also",  "am",    "an",    "and",   "another", "any",	"are",
    "as",    "at",    "be",    "because", "been",  "before", "being", "between", "both", "but",	   "by",	"can",
    "could", "did",   "do",    "does",	"down",	   "during", "each", "every", "few",   "for",	   "from",	"had",
    "has",   "have",  "he",    "her",	"here",	   "his",   "how",   "i",     "if",    "in",	   "into",	"is",
    "it",    "its",   "just",  "many",	"may",	   "more",  "most",  "much",  "must",  "my",	   "no",	"nor",
    "not",   "now",   "of",    "off",	"often",   "on",    "once",  "one",   "only",  "or",	   "other",	"our",
    "out",   "over",  "own",   "same",	"she",	   "should", "so",   "some",  "such",  "than",	   "that",	"the",
    "their", "them",  "then",  "there", "these",   "they",  "this",  "those", "through", "to",	   "too",	"under",
    "until", "up",    "us",    "very",	"was",	   "we",    "were",  "what",  "when",  "where",   "which",	"while",
    "who",   "whom",  "why",   "will",	"with",	   "would", "you",   "your",
};

static int cmp_cstr(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool is_stop(const char *w)
{
	return bsearch(&w, k_stop, sizeof k_stop / sizeof k_stop[0], sizeof k_stop[0], cmp_cstr) != NULL;
}

static bool wbyte(unsigned char c)
{
	return isalnum(c) || c >= 0x80;
}

typedef struct sent {
	int chunk;
	size_t b0, b1; /* bytes in the chunk text */
	long c0, c1;   /* code points */
	int words;     /* content words */
	bool usable;   /* a whole sentence: not a heading, not a fragment, not a repeat */
	bool used;     /* already asked about */
	double central;
} sent_t;

typedef struct span {
	int chunk;
	size_t b0, b1;
	long c0, c1;
} span_t;

typedef struct term {
	char *text; /* as written in the source */
	int sent;   /* the defining sentence */
	span_t def; /* the definition's span (the sentence, maybe with the one before it) */
} term_t;

typedef struct token {
	char *text;
	int sent;
	double value;
	int kind; /* numbers: 1 a year, 2 another number; names: 3 */
} token_t;

typedef struct ex {
	const nb_gen_request_t *req;
	sent_t *s;
	size_t ns, cap;
	term_t *t;
	size_t nt;
	token_t *num, *name;
	size_t nnum, nname;
	/* word frequencies over usable sentences: a small open-addressing table */
	char **wk;
	int *wv;
	size_t wcap;
} ex_t;

static const char *stext(const ex_t *x, int i)
{
	return x->req->chunks[x->s[i].chunk].text;
}

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static int *word_slot(ex_t *x, const char *w, bool add)
{
	if (!x->wcap) {
		x->wcap = 4096;
		x->wk = nb_xcalloc(x->wcap, sizeof *x->wk);
		x->wv = nb_xcalloc(x->wcap, sizeof *x->wv);
	}
	size_t i = hash_str(w) & (x->wcap - 1);
	for (size_t probes = 0; probes < x->wcap; probes++, i = (i + 1) & (x->wcap - 1)) {
		if (!x->wk[i]) {
			if (!add)
				return NULL;
			x->wk[i] = nb_xstrdup(w);
			return &x->wv[i];
		}
		if (!strcmp(x->wk[i], w))
			return &x->wv[i];
	}
	return NULL; /* full: the word is not counted */
}

/* Next content word (lower-case, a final plural s dropped) of s[*pos..end): 1, or 0 at the end. */
static int next_word(const char *s, size_t end, size_t *pos, char out[48], bool *stop)
{
	size_t k = nb_rag_next_word(s, end, pos, out, 48);
	if (k == 0)
		return 0;
	*stop = is_stop(out) || k < 3;
	if (!*stop && k > 4 && out[k - 1] == 's' && out[k - 2] != 's')
		out[k - 1] = '\0';
	return 1;
}

static bool terminal(unsigned char c)
{
	return c == '.' || c == '!' || c == '?';
}

static void add_sent(ex_t *x, int chunk, const char *s, size_t b0, size_t b1, long c0, bool first, bool last)
{
	while (b0 < b1 && isspace((unsigned char)s[b0])) {
		b0++;
		c0++;
	}
	while (b1 > b0 && isspace((unsigned char)s[b1 - 1]))
		b1--;
	if (b1 <= b0)
		return;
	sent_t st = {.chunk = chunk, .b0 = b0, .b1 = b1, .c0 = c0};
	st.c1 = c0 + (long)nb_utf8_count(s + b0, b1 - b0);
	size_t pos = b0;
	char w[48];
	bool stop;
	int all = 0;
	while (next_word(s, b1, &pos, w, &stop)) {
		all++;
		if (!stop)
			st.words++;
	}
	unsigned char lastc = (unsigned char)s[b1 - 1];
	bool ends = terminal(lastc) || ((lastc == '"' || lastc == ')') && b1 - b0 > 1 && terminal((unsigned char)s[b1 - 2]));
	bool fragment = (first && islower((unsigned char)s[b0])) || (last && !ends);
	st.usable = ends && !fragment && st.words >= 3 && all <= 80 && isupper((unsigned char)s[b0]);
	for (size_t i = 0; st.usable && i < x->ns; i++) { /* chunks overlap: a sentence may come twice */
		const sent_t *o = &x->s[i];
		if (o->usable && o->b1 - o->b0 == b1 - b0 && !memcmp(stext(x, (int)i) + o->b0, s + b0, b1 - b0))
			st.usable = false;
	}
	if (x->ns == x->cap) {
		x->cap = x->cap ? x->cap * 2 : 128;
		x->s = nb_xrealloc(x->s, x->cap * sizeof *x->s);
	}
	x->s[x->ns++] = st;
}

/* Sentences end at . ! ? before white space and a non-lower-case letter, and at line breaks. */
static void split(ex_t *x, int chunk)
{
	const char *s = x->req->chunks[chunk].text;
	size_t len = strlen(s), start = 0, i = 0;
	long cp = 0, start_cp = 0;
	bool first = true;
	while (i < len) {
		uint32_t c;
		int n = nb_utf8_decode(s + i, len - i, &c);
		if (n < 0)
			n = 1;
		size_t cut = 0, resume = 0;
		if (s[i] == '\n') {
			cut = i;
			resume = i + 1;
		} else if (terminal((unsigned char)s[i])) {
			size_t j = i + 1;
			while (j < len && (s[j] == '"' || s[j] == ')' || s[j] == '\''))
				j++;
			size_t k = j;
			while (k < len && (s[k] == ' ' || s[k] == '\t'))
				k++;
			if (j >= len || (k > j && (k >= len || !islower((unsigned char)s[k]))))
				cut = resume = j;
		}
		if (resume) {
			long cut_cp = cp + (long)nb_utf8_count(s + i, cut - i);
			add_sent(x, chunk, s, start, cut, start_cp, first, false);
			first = false;
			cp = cut_cp + (long)nb_utf8_count(s + cut, resume - cut);
			i = start = resume;
			start_cp = cp;
			continue;
		}
		i += (size_t)n;
		cp++;
	}
	if (start < len)
		add_sent(x, chunk, s, start, len, start_cp, first, true);
}

/* Case-insensitive search of needle in s[b0..b1), at word boundaries; byte offset or -1. */
static long find_word(const char *s, size_t b0, size_t b1, const char *needle)
{
	size_t n = strlen(needle);
	for (size_t i = b0; n && i + n <= b1; i++) {
		if (strncasecmp(s + i, needle, n))
			continue;
		bool lb = i == b0 || !wbyte((unsigned char)needle[0]) || !wbyte((unsigned char)s[i - 1]);
		bool rb = i + n == b1 || !wbyte((unsigned char)needle[n - 1]) || !wbyte((unsigned char)s[i + n]);
		if (lb && rb)
			return (long)i;
	}
	return -1;
}

static bool ci_contains(const char *hay, const char *needle)
{
	return find_word(hay, 0, strlen(hay), needle) >= 0;
}

/* Same term: equal but for case and a final plural s ("wick", "Wicks"). */
static bool same_term(const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);
	if (na > 3 && (a[na - 1] == 's' || a[na - 1] == 'S'))
		na--;
	if (nb > 3 && (b[nb - 1] == 's' || b[nb - 1] == 'S'))
		nb--;
	return na == nb && !strncasecmp(a, b, na);
}

static bool term_known(const ex_t *x, const char *t)
{
	for (size_t i = 0; i < x->nt; i++)
		if (same_term(x->t[i].text, t))
			return true;
	return false;
}

/* Words [p, e) as a term: 1 to 4 words of letters, not a stop word at either end. */
static char *term_at(const char *s, size_t p, size_t e)
{
	static const char *const det[] = {"the ", "a ", "an ", "its ", "their ", "this ", "these ", "our ", NULL};
	for (int again = 1; again;) {
		again = 0;
		for (const char *const *d = det; *d; d++)
			if (e - p > strlen(*d) && !strncasecmp(s + p, *d, strlen(*d))) {
				p += strlen(*d);
				again = 1;
			}
	}
	while (e > p && !isalnum((unsigned char)s[e - 1]))
		e--;
	if (e <= p || e - p < 3 || e - p > 60)
		return NULL;
	int words = 1;
	for (size_t i = p; i < e; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == ' ')
			words++;
		else if (!isalpha(c) && c != '-' && c < 0x80)
			return NULL;
	}
	if (words > 4)
		return NULL;
	char *t = nb_xstrndup(s + p, e - p);
	/* neither end a stop word */
	char first[48], last[48];
	size_t pos = 0;
	bool stop1 = false, stop2 = false;
	next_word(t, strlen(t), &pos, first, &stop1);
	const char *sp = strrchr(t, ' ');
	pos = 0;
	next_word(sp ? sp + 1 : t, strlen(sp ? sp + 1 : t), &pos, last, &stop2);
	if (stop1 || stop2) {
		free(t);
		return NULL;
	}
	return t;
}

static void add_term(ex_t *x, char *t, int si, bool with_previous)
{
	if (!t)
		return;
	if (term_known(x, t)) {
		free(t);
		return;
	}
	sent_t *st = &x->s[si];
	span_t d = {st->chunk, st->b0, st->b1, st->c0, st->c1};
	if (with_previous && si > 0 && x->s[si - 1].chunk == st->chunk && x->s[si - 1].usable) {
		d.b0 = x->s[si - 1].b0;
		d.c0 = x->s[si - 1].c0;
	}
	x->t = nb_xrealloc(x->t, (x->nt + 1) * sizeof *x->t);
	x->t[x->nt++] = (term_t){t, si, d};
}

/* Key terms by their defining sentences. */
static void find_terms(ex_t *x)
{
	static const char *const called[] = {" is called ", " are called ", " called ", " known as ", " termed ", NULL};
	static const char *const verbs[] = {" is ", " are ", " refers to ", " refer to ", " means ", NULL};
	static const char *const anaphora[] = {"This ", "These ", "It ", "That ", "Such ", NULL};
	for (size_t i = 0; i < x->ns; i++) {
		sent_t *st = &x->s[i];
		if (!st->usable)
			continue;
		const char *s = stext(x, (int)i);
		char *t = NULL;
		for (const char *const *p = called; *p && !t; p++) {
			long at = find_word(s, st->b0, st->b1, *p + 1);
			if (at < 0)
				continue;
			size_t q = (size_t)at + strlen(*p) - 1, e = q;
			while (e < st->b1 && !strchr(",.;:!?()\"", s[e]))
				e++;
			/* "X, or Y" / "X and Y": the first name */
			for (size_t k = q; k + 4 < e; k++)
				if (!strncmp(s + k, " or ", 4) || !strncmp(s + k, " and ", 5)) {
					e = k;
					break;
				}
			t = term_at(s, q, e);
		}
		if (t) {
			bool ana = false;
			for (const char *const *a = anaphora; *a && !ana; a++)
				ana = !strncmp(s + st->b0, *a, strlen(*a));
			add_term(x, t, (int)i, ana);
			continue;
		}
		for (const char *const *v = verbs; *v && !t; v++) {
			long at = find_word(s, st->b0, st->b1, *v + 1);
			if (at < 0 || at - (long)st->b0 < 3)
				continue;
			size_t pos = (size_t)at + strlen(*v) - 1, rest = 0;
			char w[48];
			bool stop;
			while (next_word(s, st->b1, &pos, w, &stop))
				rest++;
			if (rest < 3)
				continue;
			t = term_at(s, st->b0, (size_t)at - 1 + 1);
			if (t && !isupper((unsigned char)s[st->b0]))
				free(t), t = NULL;
			break; /* only the first verb of the sentence */
		}
		add_term(x, t, (int)i, false);
	}
}

static void add_token(token_t **v, size_t *n, const char *s, size_t b, size_t e, int si, int kind, double value)
{
	*v = nb_xrealloc(*v, (*n + 1) * sizeof **v);
	(*v)[(*n)++] = (token_t){nb_xstrndup(s + b, e - b), si, value, kind};
}

/* Numbers and names of usable sentences. */
static void find_tokens(ex_t *x)
{
	for (size_t i = 0; i < x->ns; i++) {
		sent_t *st = &x->s[i];
		if (!st->usable)
			continue;
		const char *s = stext(x, (int)i);
		for (size_t p = st->b0; p < st->b1;) {
			if (!wbyte((unsigned char)s[p])) {
				p++;
				continue;
			}
			size_t e = p;
			while (e < st->b1 && (wbyte((unsigned char)s[e]) ||
					      ((s[e] == '.' || s[e] == ',') && e + 1 < st->b1 && isdigit((unsigned char)s[e + 1]) &&
					       isdigit((unsigned char)s[p]))))
				e++;
			bool digits = true;
			for (size_t k = p; k < e; k++)
				digits = digits && (isdigit((unsigned char)s[k]) || s[k] == '.' || s[k] == ',');
			if (digits) {
				char buf[32];
				size_t n = 0;
				for (size_t k = p; k < e && n < sizeof buf - 1; k++)
					if (s[k] != ',')
						buf[n++] = s[k];
				buf[n] = '\0';
				double v = atof(buf);
				bool year = e - p == 4 && v >= 1000 && v <= 2100;
				add_token(&x->num, &x->nnum, s, p, e, (int)i, year ? 1 : 2, v);
			} else if (p > st->b0 && isupper((unsigned char)s[p]) && e - p >= 3) {
				/* a run of capitalised words, not the sentence's first */
				size_t q = e;
				while (q + 1 < st->b1 && s[q] == ' ' && isupper((unsigned char)s[q + 1])) {
					size_t r = q + 1;
					while (r < st->b1 && wbyte((unsigned char)s[r]))
						r++;
					q = r;
				}
				char w[48];
				size_t pos = p;
				bool stop;
				next_word(s, e, &pos, w, &stop);
				if (!stop)
					add_token(&x->name, &x->nname, s, p, q, (int)i, 3, 0);
				e = q;
			}
			p = e;
		}
	}
}

/* Word frequencies and each usable sentence's centrality. */
static void centrality(ex_t *x)
{
	char w[48];
	bool stop;
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < x->ns; i++) {
			sent_t *st = &x->s[i];
			if (!st->usable)
				continue;
			const char *s = stext(x, (int)i);
			size_t pos = st->b0;
			double sum = 0;
			while (next_word(s, st->b1, &pos, w, &stop)) {
				if (stop)
					continue;
				int *slot = word_slot(x, w, pass == 0);
				if (pass == 0 && slot)
					(*slot)++;
				else if (slot)
					sum += log(1.0 + (double)*slot);
			}
			if (pass == 1)
				st->central = st->words >= 3 ? sum / sqrt((double)st->words + 4.0) : 0;
		}
	}
}

static void ex_dispose(ex_t *x)
{
	for (size_t i = 0; i < x->nt; i++)
		free(x->t[i].text);
	for (size_t i = 0; i < x->nnum; i++)
		free(x->num[i].text);
	for (size_t i = 0; i < x->nname; i++)
		free(x->name[i].text);
	for (size_t i = 0; i < x->wcap; i++)
		free(x->wk[i]);
	free(x->wk);
	free(x->wv);
	free(x->t);
	free(x->num);
	free(x->name);
	free(x->s);
}

static json_t *cite(const ex_t *x, span_t sp)
{
	const char *s = x->req->chunks[sp.chunk].text;
	return json_pack("{s:i, s:s%, s:I, s:I}", "chunk", sp.chunk + 1, "quote", s + sp.b0, sp.b1 - sp.b0, "char_start",
			 (json_int_t)sp.c0, "char_end", (json_int_t)sp.c1);
}

static span_t sent_span(const ex_t *x, int i)
{
	const sent_t *st = &x->s[i];
	return (span_t){st->chunk, st->b0, st->b1, st->c0, st->c1};
}

/* Folds line breaks: a passage quoted inside a question or definition. */
static char *fold(const char *s, size_t n)
{
	char *t = nb_xstrndup(s, n);
	for (char *p = t; *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
	return t;
}

/* The span's text with every word-bounded occurrence of `answer` blanked. */
static char *blank_out(const char *s, span_t sp, const char *answer)
{
	nb_buf_t b = NB_BUF_INIT;
	size_t p = sp.b0, n = strlen(answer);
	for (;;) {
		long at = find_word(s, p, sp.b1, answer);
		if (at < 0)
			break;
		nb_buf_append(&b, s + p, (size_t)at - p);
		nb_buf_printf(&b, "%s", BLANK);
		p = (size_t)at + n;
	}
	nb_buf_append(&b, s + p, sp.b1 - p);
	char *raw = nb_buf_steal(&b, NULL);
	char *out = fold(raw, strlen(raw));
	free(raw);
	return out;
}

/* Adds a question if it has at least one distractor. */
static void add_question(ex_t *x, json_t *qs, const char *prompt, const char *answer, const char **distractors,
			 int nd, span_t sp, int si)
{
	if (nd < 1)
		return;
	const char *s = x->req->chunks[sp.chunk].text;
	char *passage = blank_out(s, sp, answer);
	char *quote = fold(s + sp.b0, sp.b1 - sp.b0);
	size_t qi = json_array_size(qs);
	int nchoices = nd + 1, at = (int)((qi * 7 + 2) % (size_t)nchoices);
	json_t *choices = json_array();
	for (int k = 0, d = 0; k < nchoices; k++)
		json_array_append_new(choices, json_string(k == at ? answer : distractors[d++]));
	char *question = NULL, *expl = NULL;
	nb_buf_t b = NB_BUF_INIT;
	nb_buf_printf(&b, "%s \"%s\"", prompt, passage);
	question = nb_buf_steal(&b, NULL);
	nb_buf_printf(&b, "The source says: \"%s\"", quote);
	expl = nb_buf_steal(&b, NULL);
	json_array_append_new(qs, json_pack("{s:s, s:o, s:i, s:s, s:[o]}", "question", question, "choices", choices,
					    "answer_index", at, "explanation", expl, "citations", cite(x, sp)));
	x->s[si].used = true;
	free(question);
	free(expl);
	free(passage);
	free(quote);
}

static bool distinct_choice(const char *cand, const char *answer, const char **picked, int np, const char *passage)
{
	if (!*cand || same_term(cand, answer) || ci_contains(cand, answer) || ci_contains(answer, cand))
		return false;
	for (int i = 0; i < np; i++)
		if (same_term(cand, picked[i]))
			return false;
	return !ci_contains(passage, cand);
}

/* Up to 3 distractors among the tokens of the same kind, nearest in value first (numbers) or in order. */
static int pick_tokens(const token_t *v, size_t n, const token_t *ans, const char *passage, const char **out)
{
	int np = 0;
	bool *taken = nb_xcalloc(n + 1, sizeof *taken);
	for (int round = 0; round < 3; round++) {
		size_t best = n;
		double bestd = 0;
		for (size_t i = 0; i < n; i++) {
			if (taken[i] || v[i].kind != ans->kind || !distinct_choice(v[i].text, ans->text, out, np, passage))
				continue;
			double d = ans->kind == 3 ? (double)((i + n - (size_t)(ans - v)) % n) : fabs(v[i].value - ans->value);
			if (best == n || d < bestd) {
				best = i;
				bestd = d;
			}
		}
		if (best == n)
			break;
		taken[best] = true;
		out[np++] = v[best].text;
	}
	free(taken);
	return np;
}

static int pick_terms(const ex_t *x, size_t ti, const char *answer, const char *passage, const char **out)
{
	int np = 0;
	for (size_t k = 1; k < x->nt && np < 3; k++) {
		const char *cand = x->t[(ti + k) % x->nt].text;
		if (distinct_choice(cand, answer, out, np, passage))
			out[np++] = cand;
	}
	return np;
}

static json_t *make_quiz(ex_t *x, int n)
{
	json_t *qs = json_array();
	const char *d[3];
	/* 1. key terms from their definitions */
	for (size_t i = 0; i < x->nt && (int)json_array_size(qs) < n; i++) {
		term_t *t = &x->t[i];
		if (x->s[t->sent].used)
			continue;
		char *passage = blank_out(x->req->chunks[t->def.chunk].text, t->def, t->text);
		int nd = pick_terms(x, i, t->text, passage, d);
		free(passage);
		add_question(x, qs, "Which term completes this passage?", t->text, d, nd, t->def, t->sent);
	}
	/* 2. numbers, 3. names: the first of each sentence not asked about yet */
	for (int pass = 0; pass < 2; pass++) {
		token_t *v = pass ? x->name : x->num;
		size_t nv = pass ? x->nname : x->nnum;
		for (size_t i = 0; i < nv && (int)json_array_size(qs) < n; i++) {
			if (x->s[v[i].sent].used)
				continue;
			span_t sp = sent_span(x, v[i].sent);
			char *passage = blank_out(stext(x, v[i].sent), sp, v[i].text);
			int nd = pick_tokens(v, nv, &v[i], passage, d);
			free(passage);
			add_question(x, qs, pass ? "Which name completes this sentence?" : "Which number completes this sentence?",
				     v[i].text, d, nd, sp, v[i].sent);
		}
	}
	/* 4. other sentences that use a key term */
	for (size_t i = 0; i < x->ns && (int)json_array_size(qs) < n; i++) {
		if (!x->s[i].usable || x->s[i].used)
			continue;
		for (size_t k = 0; k < x->nt; k++) {
			if (find_word(stext(x, (int)i), x->s[i].b0, x->s[i].b1, x->t[k].text) < 0)
				continue;
			span_t sp = sent_span(x, (int)i);
			char *passage = blank_out(stext(x, (int)i), sp, x->t[k].text);
			int nd = pick_terms(x, k, x->t[k].text, passage, d);
			free(passage);
			add_question(x, qs, "Which term completes this sentence?", x->t[k].text, d, nd, sp, (int)i);
			break;
		}
	}
	return qs;
}


/* The k most central usable sentences, in source order: {text, citations}. */
static json_t *make_summary(ex_t *x, int k)
{
	int *pick = nb_xcalloc((size_t)k + 1, sizeof *pick);
	int np = 0;
	for (int r = 0; r < k; r++) {
		int best = -1;
		for (size_t i = 0; i < x->ns; i++) {
			if (!x->s[i].usable || x->s[i].central <= 0)
				continue;
			bool taken = false;
			for (int j = 0; j < np && !taken; j++)
				taken = pick[j] == (int)i;
			if (!taken && (best < 0 || x->s[i].central > x->s[best].central))
				best = (int)i;
		}
		if (best < 0)
			break;
		pick[np++] = best;
	}
	/* no whole sentence (a title, a list of words): the text's first pieces, so a short source still has a guide */
	for (size_t i = 0; np == 0 && i < x->ns && i < (size_t)k; i++)
		pick[np++] = (int)i;
	/* source order: sentences are stored in chunk order, then position */
	for (int i = 1; i < np; i++)
		for (int j = i; j > 0 && pick[j] < pick[j - 1]; j--) {
			int t = pick[j];
			pick[j] = pick[j - 1];
			pick[j - 1] = t;
		}
	nb_buf_t b = NB_BUF_INIT;
	json_t *cites = json_array();
	for (int i = 0; i < np; i++) {
		const sent_t *st = &x->s[pick[i]];
		char *t = fold(stext(x, pick[i]) + st->b0, st->b1 - st->b0);
		nb_buf_printf(&b, "%s%s", i ? " " : "", t);
		free(t);
		json_array_append_new(cites, cite(x, sent_span(x, pick[i])));
	}
	free(pick);
	char *text = nb_buf_steal(&b, NULL);
	json_t *out = json_pack("{s:s, s:o}", "text", text ? text : "", "citations", cites);
	free(text);
	return out;
}

static json_t *make_terms(ex_t *x, int k)
{
	json_t *out = json_array();
	for (size_t i = 0; i < x->nt && (int)i < k; i++) {
		term_t *t = &x->t[i];
		char *def = fold(x->req->chunks[t->def.chunk].text + t->def.b0, t->def.b1 - t->def.b0);
		json_array_append_new(out, json_pack("{s:s, s:s, s:[o]}", "term", t->text, "definition", def, "citations",
						     cite(x, t->def)));
		free(def);
	}
	return out;
}

/* "What does the source say about X?": another sentence that uses the term. */
static json_t *make_review(ex_t *x, int k)
{
	json_t *out = json_array();
	for (size_t i = 0; i < x->nt && (int)json_array_size(out) < k; i++) {
		term_t *t = &x->t[i];
		for (size_t j = 0; j < x->ns; j++) {
			if (!x->s[j].usable || (int)j == t->sent ||
			    (t->def.chunk == x->s[j].chunk && x->s[j].b0 >= t->def.b0 && x->s[j].b1 <= t->def.b1) ||
			    find_word(stext(x, (int)j), x->s[j].b0, x->s[j].b1, t->text) < 0)
				continue;
			char *q = NULL, *a = fold(stext(x, (int)j) + x->s[j].b0, x->s[j].b1 - x->s[j].b0);
			nb_buf_t b = NB_BUF_INIT;
			nb_buf_printf(&b, "What does the source say about %s?", t->text);
			q = nb_buf_steal(&b, NULL);
			json_array_append_new(out, json_pack("{s:s, s:s, s:[o]}", "question", q, "answer", a, "citations",
							     cite(x, sent_span(x, (int)j))));
			free(q);
			free(a);
			break;
		}
	}
	return out;
}

static json_t *make_topics(ex_t *x, int k)
{
	json_t *out = json_array();
	for (size_t i = 0; i < x->nt && (int)i < k; i++)
		json_array_append_new(out, json_string(x->t[i].text));
	while ((int)json_array_size(out) < 3 && x->wcap) { /* few definitions: the most frequent words */
		size_t best = x->wcap;
		for (size_t i = 0; i < x->wcap; i++) {
			if (!x->wk[i] || strlen(x->wk[i]) < 5 || x->wv[i] < 2)
				continue;
			bool have = false;
			for (size_t j = 0; j < json_array_size(out) && !have; j++)
				have = !strcasecmp(json_string_value(json_array_get(out, j)), x->wk[i]);
			if (!have && (best == x->wcap || x->wv[i] > x->wv[best] ||
				      (x->wv[i] == x->wv[best] && strcmp(x->wk[i], x->wk[best]) < 0)))
				best = i;
		}
		if (best == x->wcap)
			break;
		json_array_append_new(out, json_string(x->wk[best]));
	}
	return out;
}

static int requested_questions(const nb_gen_request_t *req)
{
	json_t *mi = json_object_get(
	    json_object_get(json_object_get((json_t *)req->schema, "properties"), "questions"), "maxItems");
	int n = json_is_integer(mi) ? (int)json_integer_value(mi) : 5;
	return n < 1 ? 1 : n > QUIZ_MAX ? QUIZ_MAX : n;
}

int nb_gen__study_extractive_run(const nb_gen_request_t *req, nb_gen_result_t *res)
{
	snprintf(res->model, sizeof res->model, "%s", "extractive-v1");
	ex_t x = {.req = req};
	long chars = 0;
	for (size_t i = 0; i < req->nchunks; i++) {
		split(&x, (int)i);
		chars += (long)strlen(req->chunks[i].text);
	}
	res->input_tokens = (int)(chars / 4 + (chars > 0));
	find_terms(&x);
	find_tokens(&x);
	centrality(&x);
	json_t *out = NULL;
	if (req->kind == NB_GEN_QUIZ) {
		json_t *qs = make_quiz(&x, requested_questions(req));
		if (json_array_size(qs))
			out = json_pack("{s:o}", "questions", qs);
		else
			json_decref(qs);
	} else if (req->kind == NB_GEN_STUDY_GUIDE || req->kind == NB_GEN_SOURCE_GUIDE) {
		bool guide = req->kind == NB_GEN_STUDY_GUIDE;
		json_t *sum = make_summary(&x, guide ? GUIDE_SUMMARY : SOURCE_SUMMARY);
		if (json_array_size(json_object_get(sum, "citations")) == 0)
			json_decref(sum);
		else if (guide)
			out = json_pack("{s:o, s:o, s:o}", "summary", sum, "key_terms", make_terms(&x, GUIDE_TERMS),
					"review_questions", make_review(&x, GUIDE_REVIEW));
		else
			out = json_pack("{s:o, s:o}", "summary", sum, "topics", make_topics(&x, SOURCE_TOPICS));
	}
	ex_dispose(&x);
	if (!out) {
		res->error_code = NB_GEN_EUPSTREAM;
		snprintf(res->error, sizeof res->error, "%s",
			 req->kind == NB_GEN_QUIZ ? "the sources hold too little material for a quiz"
						  : "the sources hold no complete sentence to summarise");
		return res->error_code;
	}
	res->structured = out;
	res->text = json_dumps(out, JSON_COMPACT);
	res->output_tokens = nb_gen_estimate_tokens(res->text);
	return 0;
}
