/*
 * buf.c — growable byte buffer (see buf.h).
 */
#include "core/buf.h"

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

void nb_buf_json_str(nb_buf_t *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	nb_buf_reserve(b, n + 2);
	nb_buf_putc(b, '"');
	size_t run = 0; /* start of the pending run of bytes that need no escape */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		nb_buf_append(b, s + run, i - run);
		run = i + 1;
		switch (c) {
		case '"': nb_buf_puts(b, "\\\""); break;
		case '\\': nb_buf_puts(b, "\\\\"); break;
		case '\n': nb_buf_puts(b, "\\n"); break;
		case '\r': nb_buf_puts(b, "\\r"); break;
		case '\t': nb_buf_puts(b, "\\t"); break;
		default: {
			char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			nb_buf_append(b, e, 6);
		}
		}
	}
	nb_buf_append(b, s + run, n - run);
	nb_buf_putc(b, '"');
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
