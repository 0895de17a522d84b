/*
 * extract.c — the entry point of text extraction, the normal form every kind
 * ends in, and the text builder the structured kinds write into.
 *
 * Design: a pipeline of whole-buffer passes rather than one clever streaming
 * pass. Raw input is first made safe (nb_extract__clean: valid UTF-8, no NUL,
 * no BOM, LF only), a kind-specific extractor turns it into rough text with
 * line and paragraph breaks, and nb_extract__normalize produces the final
 * form. Each pass is linear, so any input costs a few copies of its size.
 * The per-kind extractors live in extract_md.c, extract_html.c and
 * extract_pdf.c.
 */
#include "rag/extract.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/utf8.h"
#include "rag/extract_internal.h"

/* ---- text builder ------------------------------------------------------ */

void nb_extract__tb_init(nb_extract__tb_t *tb)
{
	nb_buf_init(&tb->out);
	tb->brk = 0;
	tb->space = false;
	tb->line_empty = true;
	tb->prefix[0] = '\0';
	tb->sep = NULL;
}

void nb_extract__tb_break(nb_extract__tb_t *tb, int level)
{
	if (level > tb->brk)
		tb->brk = level;
}

void nb_extract__tb_prefix(nb_extract__tb_t *tb, const char *prefix)
{
	snprintf(tb->prefix, sizeof tb->prefix, "%s", prefix);
}

void nb_extract__tb_sep(nb_extract__tb_t *tb, const char *sep)
{
	if (!tb->line_empty && !tb->brk)
		tb->sep = sep;
}

/* Emits what is pending before the next piece of text. */
static void tb_flush(nb_extract__tb_t *tb)
{
	if (tb->brk && tb->out.len > 0) {
		nb_buf_append(&tb->out, "\n\n", tb->brk == NB_TB_PARA ? 2 : 1);
		tb->line_empty = true;
	} else if (!tb->line_empty && tb->sep) {
		nb_buf_puts(&tb->out, tb->sep);
	} else if (!tb->line_empty && tb->space) {
		nb_buf_putc(&tb->out, ' ');
	}
	if (tb->line_empty && tb->prefix[0])
		nb_buf_puts(&tb->out, tb->prefix);
	tb->prefix[0] = '\0';
	tb->brk = 0;
	tb->space = false;
	tb->sep = NULL;
	tb->line_empty = false;
}

/* Byte length of the collapsible whitespace at s[0..n), 0 if none. */
static size_t inline_space_len(const char *s, size_t n)
{
	switch (s[0]) {
	case ' ': case '\t': case '\n': case '\r': case '\f': case '\v':
		return 1;
	case '\xC2':
		return n >= 2 && s[1] == '\xA0' ? 2 : 0; /* U+00A0, &nbsp; */
	default:
		return 0;
	}
}

void nb_extract__tb_text(nb_extract__tb_t *tb, const char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		size_t w = inline_space_len(s + i, n - i);
		if (w) {
			tb->space = true;
			i += w;
			continue;
		}
		size_t j = i + 1;
		while (j < n && !inline_space_len(s + j, n - j))
			j++;
		tb_flush(tb);
		nb_buf_append(&tb->out, s + i, j - i);
		i = j;
	}
}

void nb_extract__tb_pre(nb_extract__tb_t *tb, const char *s, size_t n)
{
	if (n == 0)
		return;
	tb_flush(tb);
	nb_buf_append(&tb->out, s, n);
	tb->line_empty = s[n - 1] == '\n';
}

/* ---- normal form ------------------------------------------------------- */

void nb_extract__clean(nb_buf_t *out, const char *s, size_t n)
{
	size_t start = out->len;
	nb_utf8_sanitize(out, s, n);
	char *p = out->data + start;
	size_t m = out->len - start, r = 0, w = 0;
	/* In place: dropping bytes only ever shrinks the text. */
	while (r < m) {
		char c = p[r++];
		if (c == '\0')
			continue;
		if (c == '\xEF' && r + 1 < m && p[r] == '\xBB' && p[r + 1] == '\xBF') {
			r += 2; /* U+FEFF: a BOM, also where files were concatenated */
			continue;
		}
		if (c == '\r') {
			c = '\n';
			if (r < m && p[r] == '\n')
				r++;
		}
		p[w++] = c;
	}
	out->len = start + w;
	out->data[out->len] = '\0';
}

static int is_hspace(char c)
{
	return c == ' ' || c == '\t' || c == '\f' || c == '\v';
}

/* Unicode spaces (the set chunk.c treats as whitespace), so that a line of
 * only U+00A0 or U+3000 counts as blank. */
static int is_unicode_space(uint32_t cp)
{
	return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
	       cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* End of s[start..end) without trailing spaces (ASCII or Unicode). */
static size_t trim_line_end(const char *s, size_t start, size_t end)
{
	while (end > start) {
		if (is_hspace(s[end - 1])) {
			end--;
			continue;
		}
		size_t p = end - 1;
		while (p > start && ((unsigned char)s[p] & 0xC0) == 0x80)
			p--;
		uint32_t cp;
		if (nb_utf8_decode(s + p, end - p, &cp) != (int)(end - p) || !is_unicode_space(cp))
			break;
		end = p;
	}
	return end;
}

void nb_extract__normalize(nb_buf_t *out, const char *s, size_t n)
{
	size_t newlines = 0, i = 0;
	int any = 0;
	while (i < n) {
		const char *nl = memchr(s + i, '\n', n - i);
		size_t end = nl ? (size_t)(nl - s) : n, t = trim_line_end(s, i, end);
		if (t > i) {
			if (any)
				nb_buf_append(out, "\n\n", newlines >= 2 ? 2 : 1);
			nb_buf_append(out, s + i, t - i);
			any = 1;
			newlines = 0;
		}
		if (nl)
			newlines++;
		i = end + 1;
	}
}

void nb_extract__set_err(char *err, size_t errlen, const char *msg)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", msg);
}

/* ---- entry point ------------------------------------------------------- */

/* Puts rough text into normal form as out->text; -1 when nothing is left. */
static int finish(const char *rough, size_t n, nb_extracted_t *out, char *err, size_t errlen)
{
	nb_buf_t b = NB_BUF_INIT, clean = NB_BUF_INIT;
	nb_extract__clean(&clean, rough, n);
	nb_extract__normalize(&b, clean.data ? clean.data : "", clean.len);
	nb_buf_dispose(&clean);
	if (b.len == 0) {
		nb_buf_dispose(&b);
		nb_extract__set_err(err, errlen, "no text could be extracted");
		return -1;
	}
	out->text = nb_buf_steal(&b, &out->len);
	return 0;
}

static int extract_markdown(const unsigned char *data, size_t len, nb_extracted_t *out,
			    char *err, size_t errlen)
{
	nb_buf_t clean = NB_BUF_INIT;
	nb_extract__tb_t tb;
	nb_extract__clean(&clean, (const char *)data, len);
	nb_extract__tb_init(&tb);
	nb_extract__markdown(&tb, clean.data ? clean.data : "", clean.len);
	nb_buf_dispose(&clean);
	int rc = finish(tb.out.data ? tb.out.data : "", tb.out.len, out, err, errlen);
	nb_buf_dispose(&tb.out);
	return rc;
}

static int extract_html(const unsigned char *data, size_t len, nb_extracted_t *out, char *err,
			size_t errlen)
{
	nb_extract__tb_t tb;
	nb_extract__tb_init(&tb);
	int rc = nb_extract__html(&tb, data, len, err, errlen);
	if (rc == 0)
		rc = finish(tb.out.data ? tb.out.data : "", tb.out.len, out, err, errlen);
	nb_buf_dispose(&tb.out);
	return rc;
}

int nb_extract(const char *kind, const unsigned char *data, size_t len, nb_extracted_t *out,
	       char *err, size_t errlen)
{
	nb_extract__set_err(err, errlen, "");
	memset(out, 0, sizeof *out);
	if (!data)
		len = 0;
	if (!data || len == 0)
		data = (const unsigned char *)"";
	int rc;
	if (!kind) {
		nb_extract__set_err(err, errlen, "unsupported document type");
		rc = -1;
	} else if (strcmp(kind, "text") == 0) {
		rc = finish((const char *)data, len, out, err, errlen);
	} else if (strcmp(kind, "markdown") == 0) {
		rc = extract_markdown(data, len, out, err, errlen);
	} else if (strcmp(kind, "html") == 0) {
		rc = extract_html(data, len, out, err, errlen);
	} else if (strcmp(kind, "pdf") == 0) {
		rc = nb_extract__pdf(data, len, out, err, errlen);
	} else {
		nb_extract__set_err(err, errlen, "unsupported document type");
		rc = -1;
	}
	if (rc != 0) {
		nb_extracted_dispose(out);
		return -1;
	}
	return 0;
}

void nb_extracted_dispose(nb_extracted_t *e)
{
	if (!e)
		return;
	free(e->text);
	free(e->page_offsets);
	memset(e, 0, sizeof *e);
}

const char *nb_extract_mime_for_kind(const char *kind)
{
	if (!strcmp(kind, "pdf"))
		return "application/pdf";
	if (!strcmp(kind, "html"))
		return "text/html";
	if (!strcmp(kind, "markdown"))
		return "text/markdown";
	return "text/plain";
}

const char *nb_extract_kind_for_mime(const char *mime, const char *fallback)
{
	if (!mime)
		return fallback;
	if (!strcmp(mime, "application/pdf"))
		return "pdf";
	if (!strcmp(mime, "text/html"))
		return "html";
	if (!strcmp(mime, "text/markdown"))
		return "markdown";
	return "text";
}
