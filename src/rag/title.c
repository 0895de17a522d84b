/*
 * title.c — default titles for sources (title.h).
 *
 * One pass over code points with a small state (pending space, count);
 * HTML goes through the extractor (rag/extract.h), so a title is what a
 * reader sees, never markup.
 */
#include "rag/title.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/utf8.h"
#include "rag/extract.h"

#define SCAN_BYTES ((size_t)256 * 1024)

static bool is_line_break(uint32_t cp)
{
	return cp == '\n' || cp == '\r' || cp == 0x0B || cp == 0x0C || cp == 0x85 || cp == 0x2028 || cp == 0x2029;
}

/* Spaces in a label: C0/C1 controls, Unicode spaces. */
static bool is_spacing(uint32_t cp)
{
	return cp <= 0x20 || (cp >= 0x7F && cp <= 0xA0) || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
	       cp == 0x202F || cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

/* Dropped: bidirectional embeddings, overrides, isolates and marks. */
static bool is_bidi(uint32_t cp)
{
	return (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200E || cp == 0x200F ||
	       cp == 0x061C;
}

char *nb_title_clean(const char *s, size_t n, bool first_line, size_t max_cp)
{
	nb_buf_t valid = NB_BUF_INIT, out = NB_BUF_INIT;
	nb_utf8_sanitize(&valid, s ? s : "", s ? n : 0);
	const char *p = valid.data ? valid.data : "", *end = p + valid.len;
	if (first_line) { /* skip blank lines and Markdown heading marks */
		for (;;) {
			const char *q = p;
			while (q < end && (*q == ' ' || *q == '\t' || *q == '#'))
				q++;
			const char *e = q;
			while (e < end && *e != '\n' && *e != '\r')
				e++;
			bool blank = true;
			for (const char *k = q; k < e && blank; k++)
				blank = *k == ' ' || *k == '\t' || (unsigned char)*k < 0x20;
			if (!blank || e >= end) {
				p = q;
				break;
			}
			p = e + 1;
		}
	}
	size_t count = 0;
	bool space = false;
	while (p < end && count < max_cp) {
		uint32_t cp;
		int k = nb_utf8_decode(p, (size_t)(end - p), &cp);
		if (k < 0)
			break; /* cannot happen after sanitizing */
		if (first_line && is_line_break(cp))
			break;
		p += k;
		if (is_bidi(cp))
			continue;
		if (is_spacing(cp) || is_line_break(cp)) {
			space = out.len > 0;
			continue;
		}
		if (space) {
			if (++count >= max_cp)
				break;
			nb_buf_putc(&out, ' ');
		}
		space = false;
		nb_utf8_encode(&out, cp);
		count++;
	}
	nb_buf_dispose(&valid);
	if (!out.len || !nb_utf8_label_ok(out.data, out.len)) {
		nb_buf_dispose(&out);
		return NULL;
	}
	return nb_buf_steal(&out, NULL);
}

char *nb_title_from_content(const char *kind, const unsigned char *data, size_t len, size_t max_cp)
{
	if (!data || !kind)
		return NULL;
	if (len > SCAN_BYTES)
		len = SCAN_BYTES;
	if (strcmp(kind, "html") != 0)
		return nb_title_clean((const char *)data, len, true, max_cp);
	char *title = NULL, *t = nb_extract_html_title(data, len);
	if (t) {
		title = nb_title_clean(t, strlen(t), false, max_cp);
		free(t);
		if (title)
			return title;
	}
	nb_extracted_t ex = {0};
	char why[64];
	if (nb_extract("html", data, len, &ex, why, sizeof why) == 0 && ex.text)
		title = nb_title_clean(ex.text, ex.len, true, max_cp);
	nb_extracted_dispose(&ex);
	return title;
}
