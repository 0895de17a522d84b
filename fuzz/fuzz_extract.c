/*
 * fuzz_extract.c — libFuzzer driver for text extraction (nb_extract), which
 * parses uploaded files: plain text, Markdown (libcmark), HTML (libxml2) and
 * PDF (poppler).
 *
 * Input: byte 0 picks the kind (low two bits), the rest is the file. Besides
 * "no crash, no leak, no UB", it checks the output promises of extract.h on
 * success (valid UTF-8, no NUL, normal form, page offsets non-decreasing and
 * within the text) and that a failure leaves a reason and nothing allocated;
 * then it chunks the text, as ingestion does. PDF inputs mostly exercise
 * poppler; a dictionary or seed corpus of small PDFs helps it get further.
 *
 * Build (not part of make):
 *   clang -g -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE -Isrc \
 *     $(pkg-config --cflags poppler-glib libxml-2.0 libcmark) \
 *     fuzz/fuzz_extract.c src/rag/extract*.c src/rag/chunk.c src/core/utf8.c \
 *     src/core/buf.c src/core/alloc.c src/core/log.c src/core/timeutil.c \
 *     $(pkg-config --libs poppler-glib libxml-2.0 libcmark) -lpthread \
 *     -o build/fuzz_extract
 *   ./build/fuzz_extract -max_total_time=60 -rss_limit_mb=4096
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/utf8.h"
#include "rag/chunk.h"
#include "rag/extract.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define REQUIRE(cond)                                                                     \
	do {                                                                              \
		if (!(cond)) {                                                            \
			fprintf(stderr, "fuzz_extract: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                          \
		}                                                                         \
	} while (0)

static const char *const kinds[] = {"text", "markdown", "html", "pdf"};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	nb_log_set_level("error"); /* PDF failures log at info */
	return 0;
}

static void check_text(const nb_extracted_t *e)
{
	const char *s = e->text;
	REQUIRE(s && e->len > 0 && strlen(s) == e->len);
	REQUIRE(nb_utf8_valid(s, e->len));
	REQUIRE(!(e->len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0));
	REQUIRE(!strchr(s, '\r') && !strstr(s, "\n\n\n"));
	REQUIRE(!strstr(s, " \n") && !strstr(s, "\t\n"));
	REQUIRE(s[0] != '\n' && s[e->len - 1] != '\n' && s[e->len - 1] != ' ');
	size_t cps = nb_utf8_count(s, e->len);
	REQUIRE((e->page_count > 0) == (e->page_offsets != NULL));
	for (int i = 0; i < e->page_count; i++) {
		REQUIRE(e->page_offsets[i] >= 0 && (size_t)e->page_offsets[i] <= cps);
		REQUIRE(i == 0 || e->page_offsets[i] >= e->page_offsets[i - 1]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *kind = kinds[data[0] & 3];
	nb_extracted_t e;
	char err[128];
	int rc = nb_extract(kind, data + 1, size - 1, &e, err, sizeof err);
	if (rc != 0) {
		REQUIRE(rc == -1 && err[0] != '\0' && strlen(err) < sizeof err);
		REQUIRE(e.text == NULL && e.page_offsets == NULL);
		return 0;
	}
	check_text(&e);
	nb_chunk_t *c = NULL;
	size_t n = 0;
	REQUIRE(nb_chunk_text(e.text, e.len, e.page_offsets, e.page_count, 64 + (data[0] >> 2), 16,
			      &c, &n) == 0);
	REQUIRE(n > 0); /* the text holds something that is not whitespace */
	for (size_t i = 0; i < n; i++)
		REQUIRE(c[i].byte_end <= e.len && c[i].char_end - c[i].char_start <= 64 + (data[0] >> 2));
	free(c);
	nb_extracted_dispose(&e);
	return 0;
}
