/*
 * test_chunk.c — unit tests of src/rag/chunk: sizes, boundaries, offsets,
 * overlap, Unicode safety, pages and linear time on pathological input.
 *
 * check_chunks() verifies every invariant chunk.h promises on any input, and
 * the tests add exact expectations where the split is predictable.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/utf8.h"
#include "rag/chunk.h"
#include "t.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint32_t rnd_state = 12345;

static uint32_t rnd(void)
{
	rnd_state = rnd_state * 1103515245u + 12345u;
	return rnd_state >> 8;
}

/* Whitespace as chunk.c sees it (ASCII and the Unicode spaces). */
static int is_ws_at(const char *s, size_t len, size_t i)
{
	uint32_t cp;
	if (nb_utf8_decode(s + i, len - i, &cp) < 0)
		return 0;
	return cp == ' ' || (cp >= '\t' && cp <= '\r') || cp == 0x85 || cp == 0xA0 ||
	       cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
	       cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* True if s[a..b) is whitespace only. */
static int all_ws(const char *s, size_t len, size_t a, size_t b)
{
	while (a < b) {
		if (!is_ws_at(s, len, a))
			return 0;
		a++;
		while (a < b && ((unsigned char)s[a] & 0xC0) == 0x80)
			a++;
	}
	return 1;
}

static int is_boundary(const char *s, size_t len, size_t i)
{
	return i == len || ((unsigned char)s[i] & 0xC0) != 0x80;
}

/* Checks every promise of nb_chunk_text on one result; returns 0 if all hold. */
static int check_chunks(const char *s, size_t len, const nb_chunk_t *c, size_t n, int target,
			int overlap)
{
	size_t cp = 0, at = 0; /* code point index of byte `at` */
	for (size_t i = 0; i < n; i++) {
		size_t bs = c[i].byte_start, be = c[i].byte_end;
		CHECK_MSG(bs < be && be <= len, "chunk %zu span %zu..%zu", i, bs, be);
		if (!(bs < be && be <= len))
			return -1;
		CHECK_MSG(is_boundary(s, len, bs) && is_boundary(s, len, be), "chunk %zu mid code point", i);
		CHECK(nb_utf8_valid(s + bs, be - bs));
		cp += nb_utf8_count(s + at, bs - at);
		at = bs;
		CHECK_MSG((size_t)c[i].char_start == cp, "chunk %zu char_start %d != %zu", i, c[i].char_start, cp);
		CHECK_INT(c[i].char_end - c[i].char_start, nb_utf8_count(s + bs, be - bs));
		int cps = c[i].char_end - c[i].char_start;
		CHECK_MSG(cps >= 1 && cps <= (target < 1 ? 1 : target), "chunk %zu has %d cps", i, cps);
		CHECK_MSG(!is_ws_at(s, len, bs), "chunk %zu starts with whitespace", i);
		CHECK_MSG(!is_ws_at(s, len, nb_utf8_prefix(s + bs, be - bs, (size_t)cps - 1) + bs),
			  "chunk %zu ends with whitespace", i);
		CHECK(c[i].token_count >= 1);
		if (i == 0) {
			CHECK_MSG(all_ws(s, len, 0, bs), "text before the first chunk");
			continue;
		}
		const nb_chunk_t *p = &c[i - 1];
		CHECK_MSG(bs > p->byte_start && be > p->byte_end, "chunk %zu not monotone", i);
		if (bs > p->byte_end)
			CHECK_MSG(all_ws(s, len, p->byte_end, bs), "gap before chunk %zu", i);
		else
			CHECK_MSG(p->char_end - c[i].char_start <= overlap, "overlap %d > %d at chunk %zu",
				  p->char_end - c[i].char_start, overlap, i);
	}
	if (n > 0)
		CHECK_MSG(all_ws(s, len, c[n - 1].byte_end, len), "text after the last chunk");
	else
		CHECK(all_ws(s, len, 0, len));
	return t_cur_failed ? -1 : 0;
}

static void test_empty(void)
{
	nb_chunk_t *c = (nb_chunk_t *)1;
	size_t n = 99;
	CHECK_INT(nb_chunk_text("", 0, NULL, 0, 100, 10, &c, &n), 0);
	CHECK(c == NULL);
	CHECK_INT(n, 0);
	CHECK_INT(nb_chunk_text(NULL, 0, NULL, 0, 100, 10, &c, &n), 0);
	CHECK_INT(n, 0);
}

static void test_whitespace_only(void)
{
	const char *s = "  \n\n\t \r\n\xE3\x80\x80\xC2\xA0  ";
	nb_chunk_t *c = NULL;
	size_t n = 99;
	CHECK_INT(nb_chunk_text(s, strlen(s), NULL, 0, 5, 2, &c, &n), 0);
	CHECK_INT(n, 0);
	free(c);
}

static void test_one_word(void)
{
	const char *s = "  hello \n";
	nb_chunk_t *c = NULL;
	size_t n = 0;
	CHECK_INT(nb_chunk_text(s, strlen(s), NULL, 0, 100, 10, &c, &n), 0);
	CHECK_INT(n, 1);
	if (n == 1) {
		CHECK_INT(c[0].byte_start, 2);
		CHECK_INT(c[0].byte_end, 7);
		CHECK_INT(c[0].char_start, 2);
		CHECK_INT(c[0].char_end, 7);
		CHECK_INT(c[0].page, 0);
		CHECK_INT(c[0].token_count, 1);
	}
	free(c);
}

static void test_exactly_target(void)
{
	const char *s = "abcd efgh ijkl"; /* 14 code points */
	nb_chunk_t *c = NULL;
	size_t n = 0;
	CHECK_INT(nb_chunk_text(s, strlen(s), NULL, 0, 14, 0, &c, &n), 0);
	CHECK_INT(n, 1);
	CHECK_INT(c[0].byte_end, 14);
	free(c);
	/* One less: split at the last space, no overlap. */
	CHECK_INT(nb_chunk_text(s, strlen(s), NULL, 0, 13, 0, &c, &n), 0);
	CHECK_INT(n, 2);
	if (n == 2) {
		CHECK_INT(c[0].byte_end, 9);
		CHECK_INT(c[1].byte_start, 10);
		CHECK_INT(c[1].byte_end, 14);
	}
	check_chunks(s, strlen(s), c, n, 13, 0);
	free(c);
}

static void test_target_one(void)
{
	const char *s = "ab c\xC3\xA9";
	nb_chunk_t *c = NULL;
	size_t n = 0;
	CHECK_INT(nb_chunk_text(s, strlen(s), NULL, 0, 0, 5, &c, &n), 0);
	CHECK_INT(n, 4); /* a, b, c, é: target clamped to 1, overlap to 0 */
	check_chunks(s, strlen(s), c, n, 1, 0);
	if (n == 4)
		CHECK_INT(c[3].byte_end - c[3].byte_start, 2);
	free(c);
}

static void test_prefers_paragraph(void)
{
	/* A paragraph break at 46 cps and sentence ends later: the break wins. */
	const char *s = "First sentence here. Second one is here too.\n\n"
			"Third goes on. Fourth one ends. Fifth sentence is long enough to overflow.";
	nb_chunk_t *c = NULL;
	size_t n = 0;
	CHECK_INT(nb_chunk_text(s, strlen(s), NULL, 0, 80, 0, &c, &n), 0);
	CHECK(n >= 2);
	if (n >= 2) {
		CHECK_INT(c[0].byte_end, 44);
		CHECK_INT(c[1].byte_start, 46);
	}
	check_chunks(s, strlen(s), c, n, 80, 0);
	free(c);
}

static void test_prefers_sentence(void)
{
	const char *s = "One two three four five. Six seven eight nine ten eleven twelve";
	nb_chunk_t *c = NULL;
	size_t n = 0;
	CHECK_INT(nb_chunk_text(s, strlen(s), NULL, 0, 40, 0, &c, &n), 0);
	CHECK(n >= 2);
	if (n >= 2) {
		CHECK_INT(c[0].byte_end, 24); /* ends with "five." */
		CHECK(s[c[0].byte_end - 1] == '.');
		CHECK_INT(c[1].byte_start, 25);
	}
	free(c);
	/* A line break beats a sentence end, whitespace beats a split in a word. */
	const char *t = "alpha beta. gamma delta\nepsilon zeta eta theta";
	CHECK_INT(nb_chunk_text(t, strlen(t), NULL, 0, 30, 0, &c, &n), 0);
	CHECK(n >= 2 && c[0].byte_end == 23);
	free(c);
	const char *u = "aaaa bbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
	CHECK_INT(nb_chunk_text(u, strlen(u), NULL, 0, 10, 0, &c, &n), 0);
	CHECK(n >= 2 && c[0].byte_end == 4);
	check_chunks(u, strlen(u), c, n, 10, 0);
	free(c);
}

static const char *words[] = {"the",    "quick",   "brown",   "fox",     "jumps",   "over",
			      "lazy",   "dog",     "notebook", "source", "retrieval", "chunk",
			      "answer", "question", "model",   "context", "paper",   "result"};

/* Appends realistic prose: sentences of 5–20 words, paragraphs of 1–6 sentences. */
static void make_prose(nb_buf_t *b, size_t bytes)
{
	while (b->len < bytes) {
		int sentences = 1 + (int)(rnd() % 6);
		for (int si = 0; si < sentences; si++) {
			int nw = 5 + (int)(rnd() % 16);
			for (int w = 0; w < nw; w++) {
				nb_buf_puts(b, words[rnd() % (sizeof words / sizeof *words)]);
				nb_buf_puts(b, w + 1 < nw ? (rnd() % 9 ? " " : ", ") : "");
			}
			nb_buf_puts(b, rnd() % 7 ? ". " : "? ");
		}
		nb_buf_puts(b, rnd() % 3 ? "\n\n" : "\n");
	}
}

static void test_huge_prose(void)
{
	nb_buf_t b = NB_BUF_INIT;
	make_prose(&b, 4 * 1024 * 1024);
	nb_chunk_t *c = NULL;
	size_t n = 0;
	double t0 = now_s();
	CHECK_INT(nb_chunk_text(b.data, b.len, NULL, 0, 1000, 200, &c, &n), 0);
	double dt = now_s() - t0;
	CHECK_MSG(dt < 10.0, "took %.2fs", dt);
	CHECK(n > 4 * 1024 * 1024 / 1000);
	check_chunks(b.data, b.len, c, n, 1000, 200);
	size_t small = 0, overlapping = 0;
	for (size_t i = 0; i < n; i++) {
		if (c[i].char_end - c[i].char_start < 490) /* half the target, less trimmed spaces */
			small++;
		if (i > 0 && c[i].byte_start < c[i - 1].byte_end) {
			overlapping++;
			/* Overlaps start at a word start. */
			CHECK(b.data[c[i].byte_start - 1] == ' ' || b.data[c[i].byte_start - 1] == '\n');
		}
	}
	CHECK_MSG(small <= 1, "%zu chunks under half the target", small);
	CHECK_MSG(overlapping > n * 9 / 10, "only %zu of %zu chunks overlap", overlapping, n);
	free(c);
	/* Other sizes on a smaller slice, including tiny targets. */
	static const int sizes[][2] = {{1, 0}, {2, 1}, {3, 1}, {7, 3}, {50, 10}, {64, 32}, {300, 0}};
	for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
		CHECK_INT(nb_chunk_text(b.data, 20000, NULL, 0, sizes[k][0], sizes[k][1], &c, &n), 0);
		check_chunks(b.data, 20000, c, n, sizes[k][0], sizes[k][1]);
		free(c);
	}
	nb_buf_dispose(&b);
}

static void test_unicode(void)
{
	static const char *pieces[] = {
		"😀",        "👩‍👩‍👧",     "e\xCC\x81", "a\xCC\x81\xCC\x82\xCC\x83", "日本語の文章。",
		"中文没有空格！", "한국어", "…", " ", "\xE3\x80\x80", "\n", "Ünïcödé", "?", "🇫🇷",
		"x",         "ß",         "\xC2\xA0",
	};
	nb_buf_t b = NB_BUF_INIT;
	while (b.len < 60000)
		nb_buf_puts(&b, pieces[rnd() % (sizeof pieces / sizeof *pieces)]);
	CHECK(nb_utf8_valid(b.data, b.len));
	for (int target = 1; target <= 41; target += 4) {
		for (int ov = 0; ov <= target / 2; ov += 1 + target / 5) {
			nb_chunk_t *c = NULL;
			size_t n = 0;
			CHECK_INT(nb_chunk_text(b.data, b.len, NULL, 0, target, ov, &c, &n), 0);
			if (check_chunks(b.data, b.len, c, n, target, ov) != 0) {
				fprintf(stdout, "#   target %d overlap %d\n", target, ov);
				free(c);
				nb_buf_dispose(&b);
				return;
			}
			free(c);
		}
	}
	nb_buf_dispose(&b);
}

static void test_combining_and_cjk(void)
{
	/* "é" as e + U+0301 repeated: a split never separates e from its accent. */
	nb_buf_t b = NB_BUF_INIT;
	for (int i = 0; i < 50; i++)
		nb_buf_puts(&b, "e\xCC\x81");
	nb_chunk_t *c = NULL;
	size_t n = 0;
	CHECK_INT(nb_chunk_text(b.data, b.len, NULL, 0, 7, 2, &c, &n), 0);
	check_chunks(b.data, b.len, c, n, 7, 2);
	for (size_t i = 0; i < n; i++)
		CHECK_MSG(b.data[c[i].byte_start] == 'e', "chunk %zu starts with a combining mark", i);
	free(c);
	/* CJK without spaces: splits after 。 when it is in the second half. */
	const char *s = "今日は天気が良いです。明日は雨が降るでしょう。";
	CHECK_INT(nb_chunk_text(s, strlen(s), NULL, 0, 15, 0, &c, &n), 0);
	CHECK_INT(n, 2);
	if (n == 2) {
		CHECK_INT(c[0].char_end, 11);
		CHECK(memcmp(s + c[0].byte_end - 3, "。", 3) == 0);
	}
	check_chunks(s, strlen(s), c, n, 15, 0);
	free(c);
	nb_buf_dispose(&b);
}

static void test_pathological_line(void)
{
	size_t len = 5 * 1024 * 1024;
	char *s = malloc(len);
	memset(s, 'a', len);
	nb_chunk_t *c = NULL;
	size_t n = 0;
	double t0 = now_s();
	CHECK_INT(nb_chunk_text(s, len, NULL, 0, 1000, 100, &c, &n), 0);
	double dt = now_s() - t0;
	CHECK_MSG(dt < 10.0, "took %.2fs", dt);
	check_chunks(s, len, c, n, 1000, 100);
	/* No boundary anywhere: every chunk is full and overlaps by exactly 100. */
	for (size_t i = 0; i + 1 < n; i++) {
		CHECK_INT(c[i].char_end - c[i].char_start, 1000);
		if (i > 0)
			CHECK_INT(c[i - 1].char_end - c[i].char_start, 100);
	}
	CHECK_INT(n, (len - 100 + 899) / 900);
	free(c);
	/* The same with 3-byte code points and no overlap. */
	for (size_t i = 0; i + 3 <= len; i += 3)
		memcpy(s + i, "\xE4\xB8\xAD", 3);
	size_t l3 = len / 3 * 3;
	CHECK_INT(nb_chunk_text(s, l3, NULL, 0, 777, 0, &c, &n), 0);
	check_chunks(s, l3, c, n, 777, 0);
	CHECK_INT(n, (l3 / 3 + 776) / 777);
	free(c);
	free(s);
}

static void test_pages(void)
{
	nb_buf_t b = NB_BUF_INIT;
	int offsets[6];
	size_t cps = 0;
	for (int p = 0; p < 6; p++) {
		if (p > 0) {
			nb_buf_puts(&b, "\n\n");
			cps += 2;
		}
		offsets[p] = (int)cps;
		if (p == 3)
			continue; /* an empty page shares the next page's offset */
		size_t before = b.len;
		make_prose(&b, b.len + 500 + (size_t)p * 300);
		while (b.len > before && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == ' '))
			b.len--;
		cps += nb_utf8_count(b.data + before, b.len - before);
	}
	offsets[3] = offsets[4];
	nb_chunk_t *c = NULL;
	size_t n = 0;
	CHECK_INT(nb_chunk_text(b.data, b.len, offsets, 6, 120, 30, &c, &n), 0);
	check_chunks(b.data, b.len, c, n, 120, 30);
	int seen[7] = {0};
	for (size_t i = 0; i < n; i++) {
		int want = 1;
		for (int p = 0; p < 6; p++)
			if (offsets[p] <= c[i].char_start)
				want = p + 1;
		CHECK_INT(c[i].page, want);
		if (c[i].page >= 0 && c[i].page <= 6)
			seen[c[i].page] = 1;
	}
	CHECK(seen[1] && seen[2] && seen[3] && seen[4] == 0 && seen[5] && seen[6]);
	free(c);
	/* Without offsets: page 0. */
	CHECK_INT(nb_chunk_text(b.data, b.len, NULL, 6, 120, 30, &c, &n), 0);
	CHECK(n > 0 && c[0].page == 0 && c[n - 1].page == 0);
	free(c);
	nb_buf_dispose(&b);
}

static void test_invalid_args(void)
{
	nb_chunk_t *c = (nb_chunk_t *)1;
	size_t n = 7;
	CHECK_INT(nb_chunk_text("ab\xFF", 3, NULL, 0, 10, 0, &c, &n), NB_EINVALID);
	CHECK(c == NULL);
	CHECK_INT(n, 0);
	CHECK_INT(nb_chunk_text(NULL, 3, NULL, 0, 10, 0, &c, &n), NB_EINVALID);
	CHECK(nb_chunk_text("abc", 3, NULL, 0, 10, 0, NULL, &n) < 0);
}

static void test_token_estimate(void)
{
	CHECK_INT(nb_chunk_token_estimate("Hello, world!", 13), 4);
	CHECK_INT(nb_chunk_token_estimate("internationalization", 20), 4);
	CHECK_INT(nb_chunk_token_estimate("日本語", strlen("日本語")), 3);
	CHECK_INT(nb_chunk_token_estimate(" \n\t", 3), 0);
	CHECK_INT(nb_chunk_token_estimate("café 42", strlen("café 42")), 3);
}

int main(void)
{
	T_RUN(test_empty);
	T_RUN(test_whitespace_only);
	T_RUN(test_one_word);
	T_RUN(test_exactly_target);
	T_RUN(test_target_one);
	T_RUN(test_prefers_paragraph);
	T_RUN(test_prefers_sentence);
	T_RUN(test_huge_prose);
	T_RUN(test_unicode);
	T_RUN(test_combining_and_cjk);
	T_RUN(test_pathological_line);
	T_RUN(test_pages);
	T_RUN(test_invalid_args);
	T_RUN(test_token_estimate);
	return t_done();
}
