/*
 * fuzz_chunk.c — libFuzzer driver for the chunker (nb_chunk_text), which
 * runs on whatever text users upload.
 *
 * Input: byte 0–1 the target size (1..512 code points), byte 2 the overlap,
 * byte 3 a page count, the rest the text (made valid UTF-8 first, as the
 * extractor guarantees). Besides "no crash, no leak, no UB", it checks every
 * promise of chunk.h: spans inside the text on code point boundaries, byte
 * and code point spans agreeing, sizes within the target, no whitespace at
 * either end, strictly increasing spans covering all non-whitespace text,
 * overlaps within the limit, pages in range. Invalid UTF-8 must be refused.
 *
 * Build (not part of make):
 *   clang -g -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE -Isrc \
 *     fuzz/fuzz_chunk.c src/rag/chunk.c src/core/utf8.c src/core/buf.c \
 *     src/core/alloc.c -o build/fuzz_chunk
 *   ./build/fuzz_chunk -max_total_time=60
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/utf8.h"
#include "rag/chunk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                                   \
	do {                                                                            \
		if (!(cond)) {                                                          \
			fprintf(stderr, "fuzz_chunk: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                        \
		}                                                                       \
	} while (0)

static int is_ws(const char *s, size_t len, size_t i)
{
	uint32_t cp;
	if (nb_utf8_decode(s + i, len - i, &cp) < 0)
		return 0;
	return cp == ' ' || (cp >= '\t' && cp <= '\r') || cp == 0x85 || cp == 0xA0 ||
	       cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
	       cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

static int all_ws(const char *s, size_t len, size_t a, size_t b)
{
	for (size_t i = a; i < b; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80 && !is_ws(s, len, i))
			return 0;
	return 1;
}

static int boundary(const char *s, size_t len, size_t i)
{
	return i == len || ((unsigned char)s[i] & 0xC0) != 0x80;
}

static void check(const char *s, size_t len, const nb_chunk_t *c, size_t n, int target,
		  int overlap, const int *offs, int pages)
{
	size_t cp = 0, at = 0;
	for (size_t i = 0; i < n; i++) {
		size_t bs = c[i].byte_start, be = c[i].byte_end;
		REQUIRE(bs < be && be <= len);
		REQUIRE(boundary(s, len, bs) && boundary(s, len, be));
		cp += nb_utf8_count(s + at, bs - at);
		at = bs;
		REQUIRE((size_t)c[i].char_start == cp);
		size_t cps = nb_utf8_count(s + bs, be - bs);
		REQUIRE((size_t)(c[i].char_end - c[i].char_start) == cps);
		REQUIRE(cps >= 1 && cps <= (size_t)target);
		REQUIRE(!is_ws(s, len, bs));
		REQUIRE(!is_ws(s, len, bs + nb_utf8_prefix(s + bs, be - bs, cps - 1)));
		REQUIRE(c[i].token_count >= 1);
		REQUIRE(pages ? c[i].page >= 1 && c[i].page <= pages : c[i].page == 0);
		if (pages && c[i].page > 1)
			REQUIRE(offs[c[i].page - 1] <= c[i].char_start);
		if (pages && c[i].page < pages)
			REQUIRE(offs[c[i].page] > c[i].char_start);
		if (i == 0) {
			REQUIRE(all_ws(s, len, 0, bs));
			continue;
		}
		REQUIRE(bs > c[i - 1].byte_start && be > c[i - 1].byte_end);
		if (bs > c[i - 1].byte_end)
			REQUIRE(all_ws(s, len, c[i - 1].byte_end, bs));
		else
			REQUIRE(c[i - 1].char_end - c[i].char_start <= overlap);
	}
	REQUIRE(all_ws(s, len, n ? c[n - 1].byte_end : 0, len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 4)
		return 0;
	int target = 1 + ((data[0] << 8 | data[1]) % 512);
	int overlap = data[2] % (target + 1);
	int pages = data[3] % 8;
	const char *raw = (const char *)data + 4;
	size_t len = size - 4;
	nb_chunk_t *c = NULL;
	size_t n = 0;
	if (!nb_utf8_valid(raw, len)) {
		REQUIRE(nb_chunk_text(raw, len, NULL, 0, target, overlap, &c, &n) < 0);
		REQUIRE(c == NULL && n == 0);
	}
	nb_buf_t b = NB_BUF_INIT;
	nb_utf8_sanitize(&b, raw, len);
	size_t total = nb_utf8_count(b.data, b.len);
	int offs[8];
	for (int p = 0; p < pages; p++) /* evenly spread page starts */
		offs[p] = (int)(total * (size_t)p / (size_t)pages);
	REQUIRE(nb_chunk_text(b.data, b.len, pages ? offs : NULL, pages, target, overlap, &c, &n) == 0);
	check(b.data, b.len, c, n, target, overlap < target / 2 ? overlap : target / 2, offs, pages);
	free(c);
	nb_buf_dispose(&b);
	return 0;
}
