/*
 * fuzz_multipart.c — libFuzzer driver for the multipart/form-data parser
 * (nb_multipart_parse), which reads every upload body as sent.
 *
 * Input: if byte 0 is odd, the Content-Type header is the bytes after it up
 * to the first '\n' (at most 200), so boundary parsing is fuzzed too;
 * otherwise the Content-Type is fixed (boundary "XyZ") and the fuzzer spends
 * its time on the body. The body is copied into an exactly sized buffer so
 * that ASan sees any read past its end. Besides "no crash, no leak, no UB",
 * it checks what multipart.h promises: at most 32 parts, data inside the
 * body, names valid UTF-8, lower-case content types, get() finding a part
 * of each name, and on failure a zeroed result and a reason with the
 * documented prefix.
 *
 * Build and run:
 *   make -f fuzz/Makefile build/fuzz/fuzz_multipart
 *   build/fuzz/fuzz_multipart -max_total_time=60 build/fuzz/corpus_multipart
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"
#include "http/multipart.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                                       \
	do {                                                                                \
		if (!(cond)) {                                                              \
			fprintf(stderr, "fuzz_multipart: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                            \
		}                                                                           \
	} while (0)

static void check_part(const nb_multipart_t *m, const nb_part_t *p, const char *body, size_t len)
{
	REQUIRE(p->name != NULL);
	REQUIRE(nb_utf8_valid(p->name, strlen(p->name)));
	REQUIRE(!p->filename || nb_utf8_valid(p->filename, strlen(p->filename)));
	if (p->content_type) {
		REQUIRE(strchr(p->content_type, '/') != NULL);
		for (const char *c = p->content_type; *c; c++)
			REQUIRE(!(*c >= 'A' && *c <= 'Z') && *c != ' ' && *c != ';');
	}
	REQUIRE(p->data >= body && p->len <= len && (size_t)(p->data - body) <= len - p->len);
	const nb_part_t *g = nb_multipart_get(m, p->name);
	REQUIRE(g != NULL && g <= p && strcmp(g->name, p->name) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char ct[256] = "multipart/form-data; boundary=XyZ";
	size_t skip = 0;
	if (size > 0 && (data[0] & 1)) {
		const uint8_t *nl = memchr(data + 1, '\n', size - 1 < 200 ? size - 1 : 200);
		size_t n = nl ? (size_t)(nl - data - 1) : (size - 1 < 200 ? size - 1 : 200);
		memcpy(ct, data + 1, n);
		ct[n] = '\0'; /* a NUL inside just shortens it */
		skip = 1 + n + (nl ? 1 : 0);
	} else if (size > 0) {
		skip = 1;
	}
	size_t len = size - skip;
	char *body = malloc(len ? len : 1);
	if (len)
		memcpy(body, data + skip, len);
	nb_multipart_t m;
	char err[128];
	if (nb_multipart_parse(ct, body, len, &m, err, sizeof err) == 0) {
		REQUIRE(err[0] == '\0');
		REQUIRE(m.nparts >= 0 && m.nparts <= NB_MULTIPART_MAX_PARTS);
		REQUIRE((m.nparts == 0) == (m.parts == NULL));
		for (int i = 0; i < m.nparts; i++)
			check_part(&m, &m.parts[i], body, len);
	} else {
		REQUIRE(m.parts == NULL && m.nparts == 0 && m.strings_ == NULL);
		REQUIRE(strncmp(err, "malformed multipart body: ", 26) == 0 ||
			strcmp(err, "content type is not multipart/form-data") == 0);
	}
	nb_multipart_dispose(&m);
	free(body);
	return 0;
}
