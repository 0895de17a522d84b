/*
 * jsonw.c — the streaming JSON writer (see jsonw.h).
 */
#include "core/jsonw.h"

#include <stdio.h>
#include <string.h>

#include "core/uuid.h"

void nb_jsonw_init(nb_jsonw_t *w, nb_buf_t *b)
{
	memset(w, 0, sizeof *w);
	w->b = b;
}

/* Before any value or key: the comma that separates it from the previous item. */
static void item(nb_jsonw_t *w)
{
	if (w->after_key) {
		w->after_key = false;
		return;
	}
	uint64_t bit = 1ull << (w->depth & 63);
	if (w->has_item & bit)
		nb_buf_putc(w->b, ',');
	w->has_item |= bit;
}

static void w_open(nb_jsonw_t *w, char c)
{
	item(w);
	nb_buf_putc(w->b, c);
	w->depth++;
	w->has_item &= ~(1ull << (w->depth & 63));
}

static void w_close(nb_jsonw_t *w, char c)
{
	w->depth--;
	nb_buf_putc(w->b, c);
}

void nb_jsonw_obj(nb_jsonw_t *w)
{
	w_open(w, '{');
}

void nb_jsonw_arr(nb_jsonw_t *w)
{
	w_open(w, '[');
}

void nb_jsonw_obj_end(nb_jsonw_t *w)
{
	w_close(w, '}');
}

void nb_jsonw_arr_end(nb_jsonw_t *w)
{
	w_close(w, ']');
}

void nb_jsonw_keyn(nb_jsonw_t *w, const char *k, size_t n)
{
	item(w);
	nb_buf_t *b = w->b;
	nb_buf_reserve(b, n + 3);
	char *o = b->data + b->len;
	o[0] = '"';
	memcpy(o + 1, k, n);
	o[n + 1] = '"';
	o[n + 2] = ':';
	b->len += n + 3;
	b->data[b->len] = '\0';
	w->after_key = true;
}

void nb_jsonw_str(nb_jsonw_t *w, const char *s, size_t n)
{
	item(w);
	/* jansson's escapes (\\b, \\f), in the case the writer was asked for */
	nb_buf_json_escape(w->b, s, n, NB_JSON_SHORT_BF | (w->upper_hex ? NB_JSON_UPPER_HEX : 0));
}

void nb_jsonw_strz(nb_jsonw_t *w, const char *s)
{
	if (s)
		nb_jsonw_str(w, s, strlen(s));
	else
		nb_jsonw_null(w);
}

void nb_jsonw_null(nb_jsonw_t *w)
{
	item(w);
	nb_buf_append(w->b, "null", 4);
}

void nb_jsonw_int(nb_jsonw_t *w, int64_t v)
{
	item(w);
	char tmp[24];
	char *e = tmp + sizeof tmp, *p = e;
	/* digits from the end; through uint64_t so that INT64_MIN negates */
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*--p = '-';
	nb_buf_append(w->b, p, (size_t)(e - p));
}

void nb_jsonw_bool(nb_jsonw_t *w, bool v)
{
	item(w);
	nb_buf_puts(w->b, v ? "true" : "false");
}

void nb_jsonw_raw(nb_jsonw_t *w, const char *s, size_t n)
{
	item(w);
	size_t from = w->b->len;
	nb_buf_json_compact(w->b, s, n);
	if (!w->upper_hex)
		return;
	/* PostgreSQL escapes control characters as \u00xx; jansson re-dumped them as \u00XX */
	char *p = w->b->data + from, *end = w->b->data + w->b->len;
	bool in_str = false;
	for (; p < end; p++) {
		if (*p == '"') {
			in_str = !in_str;
		} else if (in_str && *p == '\\' && p + 1 < end) {
			if (p[1] == 'u')
				for (char *h = p + 2; h < end && h < p + 6; h++)
					if (*h >= 'a' && *h <= 'f')
						*h = (char)(*h - 'a' + 'A');
			p++;
		}
	}
}

void nb_jsonw_real(nb_jsonw_t *w, double v, int precision)
{
	item(w);
	char s[64];
	int n = snprintf(s, sizeof s - 3, "%.*g", precision, v);
	if (n < 0 || n >= (int)sizeof s - 3) {
		nb_buf_puts(w->b, "null");
		return;
	}
	if (!strchr(s, '.') && !strchr(s, 'e')) {
		memcpy(s + n, ".0", 3);
		n += 2;
	}
	char *e = strchr(s, 'e');
	if (e) { /* no '+' and no leading zeros in the exponent */
		char *start = e + 1, *digits = start + 1;
		if (*start == '-')
			start++;
		while (*digits == '0')
			digits++;
		if (digits != start) {
			memmove(start, digits, strlen(digits) + 1);
			n = (int)strlen(s);
		}
	}
	nb_buf_append(w->b, s, (size_t)n);
}

void nb_uuid_fmt(const unsigned char u[16], char out[37])
{
	nb_uuid_t v;
	memcpy(v.b, u, 16);
	nb_uuid_format(&v, out);
}

void nb_jsonw_uuid(nb_jsonw_t *w, const unsigned char u[16])
{
	item(w);
	char s[40];
	s[0] = '"';
	nb_uuid_fmt(u, s + 1);
	s[37] = '"';
	nb_buf_append(w->b, s, 38);
}

typedef struct civil {
	long long y;
	int mo, d, h, mi, s, us;
} civil_t;

/* Splits microseconds since 1970 into the proleptic Gregorian calendar (days-from-civil inverted). */
static void civil(int64_t unix_us, civil_t *c)
{
	int64_t secs = unix_us / 1000000, us = unix_us % 1000000;
	if (us < 0) {
		us += 1000000;
		secs--;
	}
	int64_t days = secs / 86400, sod = secs % 86400;
	if (sod < 0) {
		sod += 86400;
		days--;
	}
	int64_t z = days + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	c->d = (int)(doy - (153 * mp + 2) / 5 + 1);
	c->mo = (int)(mp < 10 ? mp + 3 : mp - 9);
	c->y = yoe + era * 400 + (c->mo <= 2);
	c->h = (int)(sod / 3600);
	c->mi = (int)(sod / 60 % 60);
	c->s = (int)(sod % 60);
	c->us = (int)us;
}

void nb_jsonw_ts(nb_jsonw_t *w, int64_t unix_us)
{
	item(w);
	civil_t c;
	civil(unix_us, &c);
	char s[48];
	if (c.y < 0 || c.y > 9999) { /* outside four digits: as printf writes it */
		int n = snprintf(s, sizeof s, "\"%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ\"", c.y, c.mo, c.d, c.h, c.mi,
				 c.s, c.us / 1000);
		nb_buf_append(w->b, s, (size_t)n);
		return;
	}
	/* "YYYY-MM-DDTHH:MM:SS.mmmZ" without printf: one per timestamp of every row */
	static const char tpl[] = "\"0000-00-00T00:00:00.000Z\"";
	memcpy(s, tpl, sizeof tpl - 1);
	int y = (int)c.y, ms = c.us / 1000;
	s[1] = (char)('0' + y / 1000), s[2] = (char)('0' + y / 100 % 10), s[3] = (char)('0' + y / 10 % 10);
	s[4] = (char)('0' + y % 10);
	s[6] = (char)('0' + c.mo / 10), s[7] = (char)('0' + c.mo % 10);
	s[9] = (char)('0' + c.d / 10), s[10] = (char)('0' + c.d % 10);
	s[12] = (char)('0' + c.h / 10), s[13] = (char)('0' + c.h % 10);
	s[15] = (char)('0' + c.mi / 10), s[16] = (char)('0' + c.mi % 10);
	s[18] = (char)('0' + c.s / 10), s[19] = (char)('0' + c.s % 10);
	s[21] = (char)('0' + ms / 100), s[22] = (char)('0' + ms / 10 % 10), s[23] = (char)('0' + ms % 10);
	nb_buf_append(w->b, s, sizeof tpl - 1);
}

void nb_ts_pg_fmt(int64_t unix_us, char out[40])
{
	civil_t c;
	civil(unix_us, &c);
	int n = snprintf(out, 40, "%04lld-%02d-%02d %02d:%02d:%02d", c.y, c.mo, c.d, c.h, c.mi, c.s);
	if (c.us && n > 0 && n < 24) {
		char frac[8];
		snprintf(frac, sizeof frac, ".%06d", c.us);
		size_t f = strlen(frac);
		while (frac[f - 1] == '0')
			f--;
		frac[f] = '\0';
		n += snprintf(out + n, (size_t)(40 - n), "%s", frac);
	}
	if (n > 0 && n < 37)
		snprintf(out + n, (size_t)(40 - n), "+00");
}
