/*
 * buf.c — growable byte buffer (see buf.h).
 */
#include "core/buf.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

void nb_buf_init(nb_buf_t *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void nb_buf_dispose(nb_buf_t *b)
{
	if (!b)
		return;
	free(b->data);
	nb_buf_init(b);
}

void nb_buf_reserve(nb_buf_t *b, size_t extra)
{
	size_t need;
	if (__builtin_add_overflow(b->len, extra, &need) || __builtin_add_overflow(need, (size_t)1, &need))
		abort(); /* a size that wraps is a bug: fail like an exhausted allocation */
	if (need <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		if (__builtin_mul_overflow(cap, (size_t)2, &cap))
			cap = need; /* doubling would wrap: take exactly what is needed */
	b->data = nb_xrealloc(b->data, cap);
	b->cap = cap;
}

void nb_buf_append(nb_buf_t *b, const void *p, size_t n)
{
	nb_buf_reserve(b, n);
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void nb_buf_puts(nb_buf_t *b, const char *s)
{
	nb_buf_append(b, s, strlen(s));
}

void nb_buf_putc(nb_buf_t *b, char c)
{
	nb_buf_reserve(b, 1);
	b->data[b->len++] = c;
	b->data[b->len] = '\0';
}

void nb_buf_vprintf(nb_buf_t *b, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	/* Usually it fits in the room there is: one pass instead of measure + write. */
	size_t room = b->data ? b->cap - b->len : 0;
	int n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, ap2);
	va_end(ap2);
	if (n >= 0 && (size_t)n < room) {
		b->len += (size_t)n; /* vsnprintf wrote the trailing NUL */
		return;
	}
	if (room)
		b->data[b->len] = '\0'; /* the truncated attempt is not part of the contents */
	if (n <= 0)
		return;
	nb_buf_reserve(b, (size_t)n);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
}

void nb_buf_printf(nb_buf_t *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	nb_buf_vprintf(b, fmt, ap);
	va_end(ap);
}

/* Non-zero when one of the 8 bytes of x is below 0x20, '"' or '\\' (bytes of
 * 0x80 and above are UTF-8 and pass). A borrow can only flag a byte above
 * one that is truly flagged, so "any" is exact. */
static inline uint64_t needs_escape8(uint64_t x)
{
	const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
	uint64_t q = x ^ (ones * '"'), bs = x ^ (ones * '\\');
	return (((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((bs - ones) & ~bs)) & high;
}

static inline bool clean_byte(unsigned char c)
{
	return c >= 0x20 && c != '"' && c != '\\';
}

/* Most strings need no escape: that is found a word at a time and they are
 * copied in one piece. */
void nb_buf_json_escape(nb_buf_t *b, const char *s, size_t n, unsigned flags)
{
	size_t i = 0;
	for (uint64_t x; i + 8 <= n; i += 8) {
		memcpy(&x, s + i, 8);
		if (needs_escape8(x))
			break;
	}
	while (i < n && clean_byte((unsigned char)s[i]))
		i++;
	nb_buf_reserve(b, n + 2);
	char *o = b->data + b->len;
	*o++ = '"';
	if (i)
		memcpy(o, s, i);
	b->len += i + 1;
	if (i < n) { /* the rest, byte by byte, from the first that needs an escape */
		const char *hex = flags & NB_JSON_UPPER_HEX ? "0123456789ABCDEF" : "0123456789abcdef";
		size_t run = i; /* start of the pending run of bytes that need no escape */
		for (; i < n; i++) {
			unsigned char c = (unsigned char)s[i];
			if (clean_byte(c))
				continue;
			nb_buf_append(b, s + run, i - run);
			run = i + 1;
			char e[6] = {'\\', 0, 0, 0, 0, 0};
			size_t len = 2;
			switch (c) {
			case '"': e[1] = '"'; break;
			case '\\': e[1] = '\\'; break;
			case '\n': e[1] = 'n'; break;
			case '\r': e[1] = 'r'; break;
			case '\t': e[1] = 't'; break;
			case '\b':
			case '\f':
				if (flags & NB_JSON_SHORT_BF) {
					e[1] = c == '\b' ? 'b' : 'f';
					break;
				}
				/* fall through */
			default:
				e[1] = 'u', e[2] = '0', e[3] = '0', e[4] = hex[c >> 4], e[5] = hex[c & 15];
				len = 6;
			}
			nb_buf_append(b, e, len);
		}
		nb_buf_append(b, s + run, n - run);
		nb_buf_reserve(b, 1);
	}
	b->data[b->len++] = '"';
	b->data[b->len] = '\0';
}

void nb_buf_json_str(nb_buf_t *b, const char *s, size_t n)
{
	nb_buf_json_escape(b, s, n, 0);
}

void nb_buf_reset(nb_buf_t *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

char *nb_buf_steal(nb_buf_t *b, size_t *len)
{
	char *p = b->data ? b->data : nb_xstrdup("");
	if (len)
		*len = b->len;
	nb_buf_init(b);
	return p;
}

void nb_buf_json_compact(nb_buf_t *b, const char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		/* a run outside strings: copy it without whitespace */
		size_t start = i;
		while (i < n && s[i] != '"' && s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
			i++;
		nb_buf_append(b, s + start, i - start);
		if (i >= n)
			break;
		if (s[i] != '"') {
			i++;
			continue;
		}
		/* a string: copy up to its closing quote, skipping escaped characters */
		start = i++;
		while (i < n && s[i] != '"')
			i += s[i] == '\\' ? 2 : 1;
		if (i < n)
			i++;
		if (i > n)
			i = n;
		nb_buf_append(b, s + start, i - start);
	}
}
