/*
 * utf8.c — UTF-8 helpers (see utf8.h).
 */
#include "core/utf8.h"

int nb_utf8_decode(const char *str, size_t n, uint32_t *cp)
{
	const unsigned char *s = (const unsigned char *)str;
	if (n == 0)
		return -1;
	unsigned char c = s[0];
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	int len;
	uint32_t v, min;
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2;
		v = c & 0x1F;
		min = 0x80;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		v = c & 0x0F;
		min = 0x800;
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		v = c & 0x07;
		min = 0x10000;
	} else {
		return -1;
	}
	if (n < (size_t)len)
		return -1;
	for (int i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return -1;
		v = v << 6 | (s[i] & 0x3F);
	}
	if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
		return -1;
	*cp = v;
	return len;
}

bool nb_utf8_valid(const char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		if ((unsigned char)s[i] < 0x80) {
			i++;
			continue;
		}
		uint32_t cp;
		int l = nb_utf8_decode(s + i, n - i, &cp);
		if (l < 0)
			return false;
		i += (size_t)l;
	}
	return true;
}

size_t nb_utf8_count(const char *s, size_t n)
{
	size_t count = 0;
	for (size_t i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			count++;
	return count;
}

size_t nb_utf8_prefix(const char *s, size_t n, size_t max_cp)
{
	size_t i = 0, cps = 0;
	while (i < n && cps < max_cp) {
		uint32_t cp;
		int l = nb_utf8_decode(s + i, n - i, &cp);
		if (l < 0)
			break;
		i += (size_t)l;
		cps++;
	}
	return i;
}

void nb_utf8_encode(nb_buf_t *out, uint32_t cp)
{
	char b[4];
	if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		cp = 0xFFFD;
	if (cp < 0x80) {
		nb_buf_putc(out, (char)cp);
	} else if (cp < 0x800) {
		b[0] = (char)(0xC0 | cp >> 6);
		b[1] = (char)(0x80 | (cp & 0x3F));
		nb_buf_append(out, b, 2);
	} else if (cp < 0x10000) {
		b[0] = (char)(0xE0 | cp >> 12);
		b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		b[2] = (char)(0x80 | (cp & 0x3F));
		nb_buf_append(out, b, 3);
	} else {
		b[0] = (char)(0xF0 | cp >> 18);
		b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		b[3] = (char)(0x80 | (cp & 0x3F));
		nb_buf_append(out, b, 4);
	}
}

size_t nb_utf8_sanitize(nb_buf_t *out, const char *s, size_t n)
{
	size_t replaced = 0, i = 0, run = 0;
	nb_buf_reserve(out, n);
	while (i < n) {
		if ((unsigned char)s[i] < 0x80) {
			i++;
			continue;
		}
		uint32_t cp;
		int l = nb_utf8_decode(s + i, n - i, &cp);
		if (l > 0) {
			i += (size_t)l;
			continue;
		}
		nb_buf_append(out, s + run, i - run);
		nb_utf8_encode(out, 0xFFFD);
		replaced++;
		i++;
		run = i;
	}
	nb_buf_append(out, s + run, n - run);
	return replaced;
}

static bool label_space(uint32_t cp)
{
	return cp == ' ' || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200B) || cp == 0x202F ||
	       cp == 0x205F || cp == 0x3000 || cp == 0xFEFF || cp == 0x200C || cp == 0x200D || cp == 0x200E ||
	       cp == 0x200F || cp == 0x2060;
}

bool nb_utf8_label_ok(const char *s, size_t n)
{
	bool visible = false;
	size_t i = 0;
	while (i < n) {
		uint32_t cp;
		int l = nb_utf8_decode(s + i, n - i, &cp);
		if (l < 0)
			return false;
		if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F))
			return false; /* C0, DEL, C1 */
		if ((cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0x2028 || cp == 0x2029)
			return false; /* bidi overrides and isolates, line and paragraph separators */
		if (!label_space(cp))
			visible = true;
		i += (size_t)l;
	}
	return visible;
}
