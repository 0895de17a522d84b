/*
 * citations.c — span checks in code points (see citations.h).
 *
 * Offsets are converted by walking the UTF-8 once with the strict decoder of
 * core/utf8, so a span that would start or end inside a multibyte sequence
 * cannot exist: offsets count whole code points.
 */
#include "rag/citations.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/utf8.h"

long nb_cite_byte_offset(const char *text, size_t len, long cp)
{
	if (cp < 0)
		return -1;
	size_t i = 0;
	for (long k = 0; k < cp; k++) {
		if (i >= len)
			return -1;
		uint32_t c;
		int n = nb_utf8_decode(text + i, len - i, &c);
		if (n < 0)
			return -1;
		i += (size_t)n;
	}
	return (long)i;
}

int nb_cite_check(const char *text, const char *quote, long char_start, long char_end)
{
	if (!text || !quote)
		return NB_CITE_MISMATCH;
	size_t tlen = strlen(text), qlen = strlen(quote);
	if (!nb_utf8_valid(text, tlen) || !nb_utf8_valid(quote, qlen))
		return NB_CITE_BAD_UTF8;
	if (char_start < 0 || char_end <= char_start)
		return NB_CITE_BAD_RANGE;
	long b0 = nb_cite_byte_offset(text, tlen, char_start);
	if (b0 < 0)
		return NB_CITE_BAD_RANGE;
	long b1 = nb_cite_byte_offset(text + b0, tlen - (size_t)b0, char_end - char_start);
	if (b1 < 0)
		return NB_CITE_BAD_RANGE;
	if ((size_t)b1 != qlen || memcmp(text + b0, quote, qlen) != 0)
		return NB_CITE_MISMATCH;
	return NB_CITE_OK;
}

int nb_cite_locate(const char *text, const char *quote, long *char_start, long *char_end)
{
	size_t tlen = strlen(text), qlen = strlen(quote);
	if (qlen == 0 || !nb_utf8_valid(text, tlen) || !nb_utf8_valid(quote, qlen))
		return -1;
	const char *at = strstr(text, quote);
	if (!at)
		return -1;
	long start = (long)nb_utf8_count(text, (size_t)(at - text));
	*char_start = start;
	*char_end = start + (long)nb_utf8_count(quote, qlen);
	return 0;
}

char *nb_cite_renumber(const char *text, const int *renum, int n)
{
	nb_buf_t b = NB_BUF_INIT;
	const char *p = text;
	while (*p) {
		/* a marker: " [" digits "]" */
		if (p[0] == ' ' && p[1] == '[' && isdigit((unsigned char)p[2])) {
			char *end = NULL;
			long k = strtol(p + 2, &end, 10);
			if (*end == ']' && k >= 1 && k <= n) {
				if (renum[k - 1] > 0)
					nb_buf_printf(&b, " [%d]", renum[k - 1]);
				p = end + 1;
				continue;
			}
		}
		nb_buf_putc(&b, *p++);
	}
	return nb_buf_steal(&b, NULL);
}
