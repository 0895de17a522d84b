/*
 * gen_extractive.c — the offline, deterministic generator: answers with the
 * sentences of the context chunks that best match the question.
 *
 * Design: each chunk is split into sentences whose spans are kept in code
 * points of the chunk text, so every sentence is, by construction, an exact
 * quotable span. Words are normalised (ASCII lower-case, possessive and a few
 * English suffixes stripped, stop words dropped) on both sides; a sentence
 * scores the inverse-document-frequency weight of the distinct question terms
 * it contains (terms of the previous question count half: a follow-up such
 * as "and why is that?" inherits its subject), divided by a gentle length
 * factor and scaled by how much of the question it covers. Sentences already
 * quoted in an earlier answer are pushed down so a follow-up says something
 * new. The best sentence and up to two more within reach of it make the
 * answer, each followed by its citation marker [n]. Below a minimum match the
 * answer is the fixed "no answer" sentence with no citation. No randomness,
 * no clock: the same input gives the same answer.
 */
#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/utf8.h"
#include "rag/gen_study.h"
#include "rag/generate.h"
#include "rag/words.h"

#define MAX_TERMS 64
#define MAX_WORD 48
#define MAX_PICK 3
#define MIN_SENTENCE_WORDS 4
#define MAX_SENTENCE_CHARS 800
#define HEADING_WORDS 8 /* a line without final punctuation and fewer content words is a heading */

/* Sorted, for bsearch. Words that carry no subject in a question. */
static const char *const k_stop[] = {
    "a",     "about",	"after",  "again", "all",    "also",   "am",	  "an",	     "and",	"any",	  "are",
    "as",    "at",	"be",	  "been",  "before", "being",  "between", "both",    "but",	"by",	  "can",
    "could", "did",	"do",	  "does",  "doing",  "down",   "during",  "each",    "explain", "few",	  "for",
    "from",  "further", "had",	  "has",   "have",   "having", "he",	  "her",     "here",	"hers",	  "him",
    "his",   "how",	"i",	  "if",	   "in",     "into",   "is",	  "it",	     "its",	"itself", "just",
    "me",    "more",	"most",	  "much",  "my",     "no",     "nor",	  "not",     "now",	"of",	  "off",
    "on",    "once",	"only",	  "or",	   "other",  "our",    "out",	  "over",    "own",	"please", "said",
    "same",  "she",	"should", "so",	   "some",   "such",   "tell",	  "than",    "that",	"the",	  "their",
    "them",  "then",	"there",  "these", "they",   "this",   "those",	  "through", "to",	"too",	  "under",
    "until", "up",	"us",	  "very",  "was",    "we",     "were",	  "what",    "when",	"where",  "which",
    "while", "who",	"whom",	  "why",   "will",   "with",   "would",	  "you",     "your",
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool is_stop(const char *w)
{
	return bsearch(&w, k_stop, sizeof k_stop / sizeof k_stop[0], sizeof k_stop[0], cmp_str) != NULL;
}

static bool ends(const char *w, size_t n, const char *suf)
{
	size_t k = strlen(suf);
	return n > k && memcmp(w + n - k, suf, k) == 0;
}

/* A light English stemmer: enough to meet "burns"/"burning"/"burned". */
static void stem(char *w)
{
	size_t n = strlen(w);
	if (n > 2 && ends(w, n, "'s"))
		w[n -= 2] = '\0';
	if (n > 4 && ends(w, n, "ies")) {
		strcpy(w + n - 3, "y");
		n -= 2;
	} else if (n > 4 && ends(w, n, "sses")) {
		w[n -= 2] = '\0';
	} else if (n > 3 && w[n - 1] == 's' && w[n - 2] != 's' && w[n - 2] != 'u' && w[n - 2] != 'i') {
		w[--n] = '\0';
	}
	if (n > 5 && ends(w, n, "ing"))
		w[n -= 3] = '\0';
	else if (n > 4 && ends(w, n, "ed"))
		w[n -= 2] = '\0';
	else if (n > 4 && ends(w, n, "ly"))
		w[n -= 2] = '\0';
	if (n > 4 && w[n - 1] == 'e')
		w[--n] = '\0';
	if (n > 3 && w[n - 1] == w[n - 2] && !strchr("aeiouls", w[n - 1])) /* "runn" → "run" */
		w[--n] = '\0';
}

/*
 * The next normalised word of s[*pos..len) into out: 1, or 0 at the end.
 * Sets *stop for stop words (still returned, to count a sentence's words).
 */
static int next_word(const char *s, size_t len, size_t *pos, char out[MAX_WORD], bool *stop)
{
	if (nb_rag_next_word(s, len, pos, out, MAX_WORD) == 0)
		return 0;
	*stop = is_stop(out);
	if (!*stop)
		stem(out);
	return 1;
}

typedef struct term {
	char w[MAX_WORD];
	double weight; /* 1 for the question, 0.5 for the previous question */
	int df;	       /* sentences containing it */
	double idf;
} term_t;

typedef struct terms {
	term_t t[MAX_TERMS];
	int n;
} terms_t;

static int term_find(const terms_t *ts, const char *w)
{
	for (int i = 0; i < ts->n; i++)
		if (!strcmp(ts->t[i].w, w))
			return i;
	return -1;
}

/* Adds the content words of text with this weight; returns how many were new. */
static int terms_add(terms_t *ts, const char *text, double weight)
{
	size_t pos = 0, len = strlen(text);
	char w[MAX_WORD];
	bool stop;
	int added = 0;
	while (next_word(text, len, &pos, w, &stop)) {
		if (stop || strlen(w) < 2)
			continue;
		int k = term_find(ts, w);
		if (k >= 0) {
			if (ts->t[k].weight < weight)
				ts->t[k].weight = weight;
			continue;
		}
		if (ts->n == MAX_TERMS)
			break;
		snprintf(ts->t[ts->n].w, MAX_WORD, "%s", w);
		ts->t[ts->n].weight = weight;
		ts->n++;
		added++;
	}
	return added;
}

typedef struct sentence {
	int chunk;
	size_t b0, b1;	 /* bytes in the chunk text */
	long c0, c1;	 /* code points in the chunk text */
	int words;	 /* content words */
	bool fragment;	 /* starts mid-sentence or runs off the chunk's end */
	uint64_t has[1]; /* bitset over terms (MAX_TERMS = 64) */
	double score;
} sentence_t;

typedef struct sentences {
	sentence_t *v;
	size_t n, cap;
} sentences_t;

static bool terminal(unsigned char c)
{
	return c == '.' || c == '!' || c == '?';
}

/* Records s[b0..b1) of chunk `chunk` (trimmed) as a sentence, with its terms. */
static void add_sentence(sentences_t *ss, const terms_t *ts, const char *s, int chunk, size_t b0, size_t b1, long c0,
			 bool at_chunk_start, bool at_chunk_end)
{
	while (b0 < b1 && isspace((unsigned char)s[b0])) {
		b0++;
		c0++;
	}
	while (b1 > b0 && isspace((unsigned char)s[b1 - 1]))
		b1--;
	if (b1 <= b0)
		return;
	long chars = (long)nb_utf8_count(s + b0, b1 - b0);
	if (chars > MAX_SENTENCE_CHARS)
		return;
	sentence_t st = {.chunk = chunk, .b0 = b0, .b1 = b1, .c0 = c0, .c1 = c0 + chars};
	st.fragment = (at_chunk_start && islower((unsigned char)s[b0])) ||
		      (at_chunk_end && !terminal((unsigned char)s[b1 - 1]) && s[b1 - 1] != '"' && s[b1 - 1] != ')');
	size_t pos = b0;
	char w[MAX_WORD];
	bool stop;
	while (next_word(s, b1, &pos, w, &stop)) {
		if (stop)
			continue;
		st.words++;
		int k = term_find(ts, w);
		if (k >= 0)
			st.has[0] |= (uint64_t)1 << k;
	}
	if (st.words < MIN_SENTENCE_WORDS && !st.has[0])
		return;
	/* a heading ("The Printing Press") names a subject but answers nothing */
	unsigned char last = (unsigned char)s[b1 - 1];
	if (!terminal(last) && last != '"' && last != ')' && last != ':' && st.words < HEADING_WORDS && !at_chunk_end)
		return;
	if (ss->n == ss->cap) {
		ss->cap = ss->cap ? ss->cap * 2 : 64;
		ss->v = nb_xrealloc(ss->v, ss->cap * sizeof *ss->v);
	}
	ss->v[ss->n++] = st;
}

/*
 * Splits one chunk into sentences: a sentence ends at . ! or ? followed by
 * whitespace and then not a lower-case letter (so "e.g. the" stays whole), or
 * at a blank line or a line break before a short line (headings).
 */
static void split_chunk(sentences_t *ss, const terms_t *ts, const char *s, int chunk)
{
	size_t len = strlen(s), start = 0, i = 0;
	long cp = 0, start_cp = 0;
	bool first = true;
	while (i < len) {
		uint32_t c;
		int n = nb_utf8_decode(s + i, len - i, &c);
		if (n < 0)
			n = 1;
		size_t next = i + (size_t)n;
		bool end = false;
		size_t cut = next;
		if (terminal((unsigned char)s[i])) {
			size_t j = next;
			while (j < len && (s[j] == '"' || s[j] == ')' || s[j] == '\''))
				j++;
			if (j >= len) {
				end = true;
				cut = j;
			} else if (isspace((unsigned char)s[j])) {
				size_t k = j;
				while (k < len && isspace((unsigned char)s[k]))
					k++;
				if (k >= len || !islower((unsigned char)s[k])) {
					end = true;
					cut = j;
				}
			}
		} else if (s[i] == '\n' && next < len && s[next] == '\n') {
			end = true;
			cut = i;
		}
		if (end) {
			long cut_cp = cp + (long)nb_utf8_count(s + i, cut - i);
			add_sentence(ss, ts, s, chunk, start, cut, start_cp, first, false);
			first = false;
			start = cut;
			start_cp = cut_cp;
			if (cut > i) {
				i = cut;
				cp = cut_cp;
			} else { /* a blank line: the cut is before this character, move past it */
				i = next;
				cp = cut_cp + 1;
			}
			continue;
		}
		i = next;
		cp++;
	}
	if (start < len)
		add_sentence(ss, ts, s, chunk, start, len, start_cp, first, true);
}

static int popcount64(uint64_t x)
{
	int n = 0;
	for (; x; x &= x - 1)
		n++;
	return n;
}

/* Did an earlier answer already quote this sentence? */
static bool already_said(const nb_gen_request_t *req, const char *s, size_t n)
{
	char *needle = NULL;
	bool said = false;
	for (size_t i = 0; i < req->nhistory && !said; i++) {
		const nb_gen_turn_t *t = &req->history[i];
		if (strcmp(t->role, "assistant") != 0 || !t->content)
			continue;
		if (!needle)
			needle = nb_xstrndup(s, n);
		said = strstr(t->content, needle) != NULL;
	}
	free(needle);
	return said;
}

static void score(sentences_t *ss, terms_t *ts, const nb_gen_request_t *req)
{
	for (int k = 0; k < ts->n; k++) {
		ts->t[k].df = 0;
		for (size_t i = 0; i < ss->n; i++)
			if (ss->v[i].has[0] & ((uint64_t)1 << k))
				ts->t[k].df++;
		ts->t[k].idf = log(1.0 + (double)(ss->n + 1) / (double)(ts->t[k].df + 1));
	}
	double total = 0;
	for (int k = 0; k < ts->n; k++)
		total += ts->t[k].weight * ts->t[k].idf;
	for (size_t i = 0; i < ss->n; i++) {
		sentence_t *st = &ss->v[i];
		double sum = 0;
		for (int k = 0; k < ts->n; k++)
			if (st->has[0] & ((uint64_t)1 << k))
				sum += ts->t[k].weight * ts->t[k].idf;
		double coverage = total > 0 ? sum / total : 0;
		st->score = sum * (0.5 + 0.5 * coverage) / (1.0 + 0.3 * log(1.0 + st->words / 8.0));
		st->score *= 1.0 + 0.02 * req->chunks[st->chunk].score; /* ties: the better-ranked chunk */
		if (st->fragment)
			st->score *= 0.5;
		const char *text = req->chunks[st->chunk].text;
		if (already_said(req, text + st->b0, st->b1 - st->b0))
			st->score *= 0.3;
	}
}

/* Does st match enough of the question to be an answer at all? */
static bool relevant(const sentence_t *st, const terms_t *ts, uint64_t question_mask)
{
	if (!st->has[0])
		return false;
	if (question_mask && !(st->has[0] & question_mask))
		return false;
	/* a question of several words needs more than one stray word in common */
	int q = popcount64(question_mask ? question_mask : (ts->n >= 64 ? ~0ULL : ((1ULL << ts->n) - 1)));
	int m = popcount64(st->has[0] & (question_mask ? question_mask : ~0ULL));
	double share = 0, total = 0;
	for (int k = 0; k < ts->n; k++) {
		total += ts->t[k].weight * ts->t[k].idf;
		if (st->has[0] & ((uint64_t)1 << k))
			share += ts->t[k].weight * ts->t[k].idf;
	}
	return q < 3 || m >= 2 || share >= 0.3 * total;
}

static int cmp_score(const void *a, const void *b)
{
	const sentence_t *x = a, *y = b;
	if (x->score != y->score)
		return x->score < y->score ? 1 : -1;
	if (x->chunk != y->chunk)
		return x->chunk - y->chunk;
	return x->b0 < y->b0 ? -1 : x->b0 > y->b0;
}

static int emit(const nb_gen_request_t *req, nb_buf_t *out, const char *s, size_t n)
{
	nb_buf_append(out, s, n);
	if (req->on_delta && req->on_delta(req->ud, s, n) != 0)
		return NB_GEN_ECANCELLED;
	return 0;
}

/* The previous user turn (the subject a follow-up refers to), or NULL. */
static const char *previous_question(const nb_gen_request_t *req)
{
	for (size_t i = req->nhistory; i-- > 0;)
		if (!strcmp(req->history[i].role, "user") && req->history[i].content)
			return req->history[i].content;
	return NULL;
}

int nb_gen__extractive_run(const nb_gen_request_t *req, nb_gen_result_t *res)
{
	if (req->kind != NB_GEN_CHAT) /* quizzes, study guides, source guides: rag/gen_study.c */
		return nb_gen__study_extractive_run(req, res);
	snprintf(res->model, sizeof res->model, "%s", "extractive-v1");
	terms_t ts = {.n = 0};
	nb_buf_t out = NB_BUF_INIT;
	sentences_t ss = {0};
	int rc = 0;
	int nq = terms_add(&ts, req->question ? req->question : "", 1.0);
	uint64_t qmask = nq >= 64 ? ~0ULL : ((1ULL << nq) - 1);
	const char *prev = previous_question(req);
	if (prev)
		terms_add(&ts, prev, nq ? 0.5 : 1.0);
	long input_chars = req->question ? (long)strlen(req->question) : 0;
	for (size_t i = 0; i < req->nhistory; i++)
		input_chars += req->history[i].content ? (long)strlen(req->history[i].content) : 0;
	for (size_t i = 0; i < req->nchunks; i++) {
		split_chunk(&ss, &ts, req->chunks[i].text, (int)i);
		input_chars += (long)strlen(req->chunks[i].text);
	}
	res->input_tokens = (int)(input_chars / 4 + (input_chars > 0));
	score(&ss, &ts, req);
	if (ss.n) /* qsort(NULL, 0, …) is undefined */
		qsort(ss.v, ss.n, sizeof *ss.v, cmp_score);

	sentence_t *pick[MAX_PICK];
	int npick = 0;
	for (size_t i = 0; i < ss.n && npick < MAX_PICK; i++) {
		sentence_t *st = &ss.v[i];
		if (!relevant(st, &ts, nq ? qmask : 0))
			continue;
		if (npick && st->score < 0.6 * pick[0]->score)
			break;
		const char *text = req->chunks[st->chunk].text;
		bool dup = false; /* chunks overlap: the same sentence may come twice */
		for (int k = 0; k < npick && !dup; k++) {
			const char *pt = req->chunks[pick[k]->chunk].text;
			dup = pick[k]->b1 - pick[k]->b0 == st->b1 - st->b0 &&
			      !memcmp(pt + pick[k]->b0, text + st->b0, st->b1 - st->b0);
		}
		if (!dup)
			pick[npick++] = st;
	}

	if (npick == 0) {
		res->no_answer = true;
		rc = emit(req, &out, NB_GEN_NO_ANSWER, strlen(NB_GEN_NO_ANSWER));
	} else {
		res->claims = nb_xcalloc((size_t)npick, sizeof *res->claims);
		for (int k = 0; k < npick && rc == 0; k++) {
			const sentence_t *st = pick[k];
			const char *text = req->chunks[st->chunk].text;
			char marker[16];
			snprintf(marker, sizeof marker, " [%d]", k + 1);
			if (k)
				rc = emit(req, &out, " ", 1);
			if (rc == 0)
				rc = emit(req, &out, text + st->b0, st->b1 - st->b0);
			if (rc == 0)
				rc = emit(req, &out, marker, strlen(marker));
			nb_gen_claim_t *cl = &res->claims[res->nclaims++];
			cl->chunk = st->chunk;
			cl->quote = nb_xstrndup(text + st->b0, st->b1 - st->b0);
			cl->char_start = st->c0;
			cl->char_end = st->c1;
		}
	}
	free(ss.v);
	if (rc != 0) {
		nb_buf_dispose(&out);
		res->error_code = rc;
		snprintf(res->error, sizeof res->error, "generation cancelled");
		return rc;
	}
	res->text = nb_buf_steal(&out, NULL);
	res->output_tokens = nb_gen_estimate_tokens(res->text);
	return 0;
}
