/*
 * chunk.c — splitting text into overlapping chunks (see chunk.h).
 *
 * Design: one forward scan per chunk over a window of target_chars code
 * points, remembering the last position of each kind of boundary (paragraph,
 * line, sentence, whitespace) in the window's second half; the best kind
 * wins. The next chunk starts inside the previous one (the overlap) but
 * always at least a quarter of the target further than its start, so every
 * byte is scanned a bounded number of times and the whole run is linear in
 * the text length whatever its content (one 50 MB word included). Code
 * point indexes are kept by counting from a moving anchor, also linear.
 */
#include "rag/chunk.h"

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/utf8.h"

#define NONE ((size_t)-1)
/* How far (in code points) a last-resort split may back off to avoid
 * separating a character from its combining marks. */
#define MAX_EXTEND_BACKOFF 16

/* Kinds of split, best first. B_ANY_SPACE is whitespace in the window's first
 * half: a short chunk is still better than a split inside a word. */
enum { B_PARA, B_LINE, B_SENT, B_SPACE, B_ANY_SPACE, B_KINDS };

typedef struct chunker {
	const char *s;
	size_t len;
	int target, overlap;
	size_t prev_end;          /* trimmed end of the previous chunk (0 before the first) */
	size_t anchor_b, anchor_cp; /* a byte offset and its code point index */
	const int *page_offsets;
	int page_count, page_idx;
	nb_chunk_t *out;
	size_t n, cap;
} chunker_t;

/* ---- code points ------------------------------------------------------- */

static size_t next_cp(const char *s, size_t len, size_t i)
{
	i++;
	while (i < len && ((unsigned char)s[i] & 0xC0) == 0x80)
		i++;
	return i;
}

static size_t prev_cp(const char *s, size_t i)
{
	if (i == 0)
		return 0;
	i--;
	while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80)
		i--;
	return i;
}

static uint32_t cp_at(const char *s, size_t len, size_t i, int *l)
{
	uint32_t cp;
	*l = nb_utf8_decode(s + i, len - i, &cp);
	if (*l < 0) { /* cannot happen on valid UTF-8; be safe anyway */
		*l = 1;
		cp = 0xFFFD;
	}
	return cp;
}

static bool is_space_cp(uint32_t cp)
{
	return cp == ' ' || (cp >= '\t' && cp <= '\r') || cp == 0x85 || cp == 0xA0 ||
	       cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
	       cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* Byte length of the whitespace code point at s[i], 0 if it is not whitespace. */
static size_t ws_len(const char *s, size_t len, size_t i)
{
	unsigned char c = (unsigned char)s[i];
	if (c < 0x80)
		return c == ' ' || (c >= '\t' && c <= '\r') ? 1 : 0;
	if (c != 0xC2 && c != 0xE1 && c != 0xE2 && c != 0xE3)
		return 0;
	int l;
	uint32_t cp = cp_at(s, len, i, &l);
	return is_space_cp(cp) ? (size_t)l : 0;
}

static bool is_sentence_end(uint32_t cp)
{
	return cp == '.' || cp == '!' || cp == '?' || cp == 0x2026;
}

/* Closing quotes and brackets that may follow a sentence end ("end.)"). */
static bool is_closer(uint32_t cp)
{
	return cp == '"' || cp == '\'' || cp == ')' || cp == ']' || cp == 0x2019 ||
	       cp == 0x201D || cp == 0xBB || cp == 0x300D || cp == 0x300F;
}

static bool is_cjk_sentence_end(uint32_t cp)
{
	return cp == 0x3002 || cp == 0xFF01 || cp == 0xFF1F;
}

/* Code points that extend the previous one: do not split before them. */
static bool is_extend(uint32_t cp)
{
	return (cp >= 0x300 && cp <= 0x36F) || (cp >= 0x1AB0 && cp <= 0x1AFF) ||
	       (cp >= 0x1DC0 && cp <= 0x1DFF) || (cp >= 0x20D0 && cp <= 0x20FF) ||
	       (cp >= 0xFE00 && cp <= 0xFE0F) || (cp >= 0xFE20 && cp <= 0xFE2F) ||
	       cp == 0x200D || (cp >= 0x1F3FB && cp <= 0x1F3FF) || (cp >= 0xE0020 && cp <= 0xE01EF);
}

static size_t skip_ws(const char *s, size_t len, size_t i)
{
	size_t w;
	while (i < len && (w = ws_len(s, len, i)) > 0)
		i += w;
	return i;
}

/* End of s[start..end) without its trailing whitespace. */
static size_t trim_end(const char *s, size_t len, size_t start, size_t end)
{
	while (end > start) {
		size_t p = prev_cp(s, end);
		if (p < start || !ws_len(s, len, p))
			break;
		end = p;
	}
	return end;
}

/* Code point index of byte offset b, counted from the anchor (which moves to b). */
static size_t cp_index(chunker_t *c, size_t b)
{
	if (b >= c->anchor_b)
		c->anchor_cp += nb_utf8_count(c->s + c->anchor_b, b - c->anchor_b);
	else
		c->anchor_cp -= nb_utf8_count(c->s + b, c->anchor_b - b);
	c->anchor_b = b;
	return c->anchor_cp;
}

/* Byte offset k code points after i (or len). */
static size_t advance_cps(const char *s, size_t len, size_t i, size_t k)
{
	while (k-- > 0 && i < len)
		i = next_cp(s, len, i);
	return i;
}

/* ---- tokens ------------------------------------------------------------ */

static bool is_ascii_alnum(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

int nb_chunk_token_estimate(const char *s, size_t n)
{
	size_t tokens = 0, run = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (is_ascii_alnum(ch)) {
			run++;
			continue;
		}
		tokens += (run + 5) / 6;
		run = 0;
		if ((ch & 0xC0) == 0x80)
			continue; /* continuation byte: counted with its lead byte */
		if (!ws_len(s, n, i))
			tokens++;
	}
	tokens += (run + 5) / 6;
	return tokens > INT_MAX ? INT_MAX : (int)tokens;
}

/* ---- choosing the split ------------------------------------------------- */

typedef struct window {
	size_t cand[B_KINDS]; /* last split position of each kind, or NONE */
	size_t lim;           /* byte offset target_chars code points after start */
	bool tail;            /* the rest of the text fits: no split needed */
} window_t;

/* A blank line follows the newline at s[i]. */
static bool para_after(const char *s, size_t len, size_t i)
{
	size_t j = i + 1;
	while (j < len && (s[j] == ' ' || s[j] == '\t' || s[j] == '\r'))
		j++;
	return j < len && s[j] == '\n';
}

static void note_space(chunker_t *c, window_t *w, size_t i, bool sentence)
{
	if (c->s[i] == '\n') {
		w->cand[B_LINE] = i;
		if (para_after(c->s, c->len, i))
			w->cand[B_PARA] = i;
	}
	if (sentence)
		w->cand[B_SENT] = i;
	w->cand[B_SPACE] = i;
}

/*
 * Scans target_chars code points from start, noting where the chunk could
 * end. A split at i means the chunk is s[start..i); it is only a candidate
 * when the chunk would reach past the previous chunk's end, and (but for
 * B_ANY_SPACE) in the window's second half.
 */
static void scan_window(chunker_t *c, size_t start, window_t *w)
{
	size_t i = start, content_end = start;
	int k = 0, min_cp = c->target / 2;
	bool term = false;
	for (int b = 0; b < B_KINDS; b++)
		w->cand[b] = NONE;
	w->tail = false;
	for (;;) {
		if (i >= c->len) {
			w->tail = true;
			w->lim = c->len;
			return;
		}
		size_t sp = ws_len(c->s, c->len, i);
		if (sp && content_end > c->prev_end) {
			w->cand[B_ANY_SPACE] = i;
			if (k >= min_cp)
				note_space(c, w, i, term);
		}
		if (k == c->target)
			break;
		if (sp) {
			term = false;
			i += sp;
		} else {
			int l;
			uint32_t cp = cp_at(c->s, c->len, i, &l);
			term = is_sentence_end(cp) || (term && is_closer(cp));
			i += (size_t)l;
			content_end = i;
			if (is_cjk_sentence_end(cp) && k + 1 >= min_cp && content_end > c->prev_end)
				w->cand[B_SENT] = i;
		}
		k++;
	}
	w->lim = i;
}

/* The last-resort split at lim, moved back a little so that a character
 * keeps its combining marks (and a ZWJ sequence stays whole) when it can. */
static size_t split_in_word(chunker_t *c, size_t start, size_t lim)
{
	size_t p = lim;
	for (int steps = 0; steps < MAX_EXTEND_BACKOFF && p < c->len; steps++) {
		int l;
		size_t q = prev_cp(c->s, p);
		bool after_zwj = cp_at(c->s, c->len, q, &l) == 0x200D;
		if (!is_extend(cp_at(c->s, c->len, p, &l)) && !after_zwj)
			return p;
		if (q <= start)
			break;
		p = q;
	}
	return lim; /* a run of marks too long to keep together */
}

static size_t choose_split(chunker_t *c, size_t start, const window_t *w)
{
	for (int b = 0; b < B_KINDS; b++)
		if (w->cand[b] != NONE)
			return w->cand[b];
	size_t p = split_in_word(c, start, w->lim);
	if (trim_end(c->s, c->len, start, p) <= c->prev_end)
		p = w->lim;
	return p;
}

/* ---- overlap ------------------------------------------------------------ */

/*
 * Where the chunk after [start, end) begins: about `ov` code points before
 * end, moved forward to a sentence start in the first half of that overlap,
 * else to the first word start, else left where it is (inside a word, as in
 * CJK text or one huge token).
 */
static size_t overlap_start(chunker_t *c, size_t start, size_t end, size_t ov)
{
	const char *s = c->s;
	size_t back = end, word = NONE, sent = NONE, k = 0;
	for (size_t j = 0; j < ov && back > start; j++)
		back = prev_cp(s, back);
	int l;
	size_t before = prev_cp(s, back);
	bool after_ws = back > start && ws_len(s, c->len, before);
	bool nl = after_ws && s[before] == '\n', term = false, term_before_ws = false;
	bool cjk_prev = back > start && is_cjk_sentence_end(cp_at(s, c->len, before, &l));
	for (size_t i = back; i < end && sent == NONE && (word == NONE || k <= ov / 2); k++) {
		size_t sp = ws_len(s, c->len, i);
		if (sp) {
			if (!after_ws)
				term_before_ws = term;
			after_ws = true;
			nl = nl || s[i] == '\n';
			i += sp;
			continue;
		}
		if ((after_ws || cjk_prev) && word == NONE)
			word = i;
		if (((after_ws && (term_before_ws || nl)) || cjk_prev) && k <= ov / 2)
			sent = i;
		uint32_t cp = cp_at(s, c->len, i, &l);
		term = is_sentence_end(cp) || (term && is_closer(cp));
		cjk_prev = is_cjk_sentence_end(cp);
		after_ws = nl = term_before_ws = false;
		i += (size_t)l;
	}
	if (sent != NONE)
		return sent;
	if (word != NONE)
		return word;
	/* Inside a word: do not start on a combining mark or after a ZWJ. */
	for (int steps = 0; steps < MAX_EXTEND_BACKOFF && back < end; steps++) {
		bool after_zwj = cp_at(s, c->len, prev_cp(s, back), &l) == 0x200D;
		if (!is_extend(cp_at(s, c->len, back, &l)) && !after_zwj)
			break;
		back = next_cp(s, c->len, back);
	}
	return back;
}

/* ---- output ------------------------------------------------------------- */

static int page_of(chunker_t *c, size_t cp)
{
	if (!c->page_offsets || c->page_count <= 0)
		return 0;
	while (c->page_idx + 1 < c->page_count && c->page_offsets[c->page_idx + 1] >= 0 &&
	       (size_t)c->page_offsets[c->page_idx + 1] <= cp)
		c->page_idx++;
	return c->page_idx + 1;
}

static void emit(chunker_t *c, size_t start, size_t end)
{
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 16;
		c->out = nb_xrealloc(c->out, c->cap * sizeof *c->out);
	}
	nb_chunk_t *ch = &c->out[c->n++];
	ch->byte_start = start;
	ch->byte_end = end;
	ch->char_start = (int)cp_index(c, start);
	ch->char_end = (int)cp_index(c, end);
	ch->page = page_of(c, (size_t)ch->char_start);
	ch->token_count = nb_chunk_token_estimate(c->s + start, end - start);
	c->prev_end = end;
}

/* Makes one chunk from start; returns where the next starts (len when done). */
static size_t chunk_one(chunker_t *c, size_t start, size_t *prev_split)
{
	window_t w;
	scan_window(c, start, &w);
	if (w.tail) {
		emit(c, start, trim_end(c->s, c->len, start, c->len));
		return c->len;
	}
	size_t split = choose_split(c, start, &w);
	size_t end = trim_end(c->s, c->len, start, split);
	if (c->n > 0 && end <= c->prev_end) {
		/* Nothing new in this window past the overlap: restart without one. */
		return skip_ws(c->s, c->len, *prev_split);
	}
	emit(c, start, end);
	*prev_split = split;
	size_t next = skip_ws(c->s, c->len, split);
	if (next >= c->len || c->overlap == 0)
		return next;
	size_t chunk_cps = (size_t)(c->out[c->n - 1].char_end - c->out[c->n - 1].char_start);
	size_t ov = (size_t)c->overlap < chunk_cps / 2 ? (size_t)c->overlap : chunk_cps / 2;
	if (ov == 0)
		return next;
	size_t o = overlap_start(c, start, end, ov);
	/* Progress: at least a quarter of the target past this chunk's start
	 * (bounding the total work), but never past the split (coverage). */
	size_t floor = advance_cps(c->s, c->len, start, c->target / 4 > 0 ? (size_t)c->target / 4 : 1);
	if (floor > split)
		floor = split;
	return skip_ws(c->s, c->len, o > floor ? o : floor);
}

int nb_chunk_text(const char *text, size_t len, const int *page_offsets, int page_count,
		  int target_chars, int overlap_chars, nb_chunk_t **out, size_t *n)
{
	if (out)
		*out = NULL;
	if (n)
		*n = 0;
	if (!out || !n || (!text && len > 0) || len > INT_MAX || !nb_utf8_valid(text, len))
		return NB_EINVALID;
	chunker_t c = {0};
	c.s = text;
	c.len = len;
	c.target = target_chars < 1 ? 1 : target_chars;
	c.overlap = overlap_chars < 0 ? 0 : overlap_chars;
	if (c.overlap > c.target / 2)
		c.overlap = c.target / 2;
	c.page_offsets = page_offsets;
	c.page_count = page_offsets ? page_count : 0;
	size_t start = skip_ws(text, len, 0), prev_split = 0;
	while (start < len)
		start = chunk_one(&c, start, &prev_split);
	*out = c.out;
	*n = c.n;
	return 0;
}
