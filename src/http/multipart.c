/*
 * multipart.c — multipart/form-data parser (see multipart.h).
 *
 * One forward pass: find the first delimiter line (which also fixes the line
 * end, CRLF or a lenient bare LF), then for each part read its header block
 * (bounded, 8 KiB) and memmem for the next "<eol>--boundary". A match not
 * followed by "--" or padding and a line end is data, and the search goes on
 * after it, so the scan stays linear. While parsing, a part's strings live
 * in one growing pool and are referred to by offset; the pointers are made
 * once the pool stops moving.
 */
#include "http/multipart.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/utf8.h"

#define MALFORMED "malformed multipart body: "
#define NOT_MULTIPART "content type is not multipart/form-data"
#define NONE SIZE_MAX

/* A part while parsing: its strings as offsets into the pool. */
typedef struct pending {
	size_t name, filename, filename_ext, content_type; /* NONE when absent */
	bool seen_type; /* a Content-Type header was read (usable or not) */
	const char *data;
	size_t len;
} pending_t;

typedef struct parser {
	const char *body;
	size_t len;
	const char *eol; /* "\r\n" or "\n"; NULL until the first delimiter line is read */
	size_t eol_len;
	char delim[2 + 2 + NB_MULTIPART_MAX_BOUNDARY + 1]; /* eol "--" boundary */
	size_t delim_len;
	char boundary[NB_MULTIPART_MAX_BOUNDARY + 1];
	size_t blen;
	nb_buf_t pool;
	pending_t parts[NB_MULTIPART_MAX_PARTS];
	int nparts;
} parser_t;

/* A parameter as found in a header value; a quoted value still holds its
 * backslash escapes. */
typedef struct param {
	const char *name, *val;
	size_t name_len, val_len;
	bool quoted;
} param_t;

/* ---- lexical helpers --------------------------------------------------- */

static bool is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static const char *skip_ows(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

static const char *skip_token(const char *p, const char *end)
{
	while (p < end && is_tchar((unsigned char)*p))
		p++;
	return p;
}

static bool ieq(const char *s, size_t n, const char *lit)
{
	return strlen(lit) == n && strncasecmp(s, lit, n) == 0;
}

/* A quoted-string starting at p (on the opening quote): sets *close to the
 * closing quote, false if there is none. */
static bool scan_quoted(const char *p, const char *end, const char **close)
{
	for (p++; p < end; p++) {
		if (*p == '\\' && p + 1 < end)
			p++;
		else if (*p == '"') {
			*close = p;
			return true;
		}
	}
	return false;
}

/*
 * The next `; name=value` of a header value at *pp (up to end): 1 and fills
 * *prm, 0 at the end, -1 when malformed. Empty parameters (";;") and a
 * trailing ';' are tolerated; an unquoted value runs to the next ';',
 * space or quote (boundaries often hold characters a token may not).
 */
static int next_param(const char **pp, const char *end, param_t *prm)
{
	const char *p = skip_ows(*pp, end);
	if (p < end && *p != ';')
		return -1;
	while (p < end && *p == ';')
		p = skip_ows(p + 1, end);
	if (p == end)
		return 0;
	prm->name = p;
	p = skip_token(p, end);
	prm->name_len = (size_t)(p - prm->name);
	p = skip_ows(p, end);
	if (prm->name_len == 0 || p == end || *p != '=')
		return -1;
	p = skip_ows(p + 1, end);
	prm->quoted = p < end && *p == '"';
	if (prm->quoted) {
		const char *close;
		if (!scan_quoted(p, end, &close))
			return -1;
		prm->val = p + 1;
		prm->val_len = (size_t)(close - p - 1);
		p = close + 1;
	} else {
		prm->val = p;
		while (p < end && *p != ';' && *p != ' ' && *p != '\t' && *p != '"')
			p++;
		prm->val_len = (size_t)(p - prm->val);
	}
	*pp = p;
	return 1;
}

/* Unescapes a quoted value into out (at most n bytes, the source's length):
 * only \" and \\ are escapes, so that an unescaped Windows path
 * ("C:\dir\f.txt", as old browsers send) survives. Returns the length. */
static size_t unquote(const char *s, size_t n, char *out)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\\' && i + 1 < n && (s[i + 1] == '"' || s[i + 1] == '\\'))
			i++;
		out[k++] = s[i];
	}
	return k;
}

/* Appends a parameter value (unquoted) and a NUL to the pool; returns its offset. */
static size_t pool_add_value(nb_buf_t *pool, const param_t *prm)
{
	size_t off = pool->len;
	nb_buf_reserve(pool, prm->val_len + 1);
	size_t n = prm->quoted ? unquote(prm->val, prm->val_len, pool->data + off) : prm->val_len;
	if (!prm->quoted)
		memcpy(pool->data + off, prm->val, n);
	pool->len += n;
	pool->data[pool->len++] = '\0';
	pool->data[pool->len] = '\0';
	return off;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* ---- the Content-Type of the request ----------------------------------- */

/* RFC 2046 bchars: DIGIT / ALPHA / ' ( ) + _ , - . / : = ? and space, not last. */
static bool valid_boundary(const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)b[i];
		bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
		if (!alnum && !(c && strchr("'()+_,-./:=? ", c)))
			return false;
	}
	return n > 0 && b[n - 1] != ' ';
}

/* Checks the media type and copies the boundary parameter into ps. */
static const char *parse_content_type(const char *ct, parser_t *ps)
{
	if (!ct)
		return NOT_MULTIPART;
	const char *end = ct + strlen(ct), *p = skip_ows(ct, end), *type = p;
	while (p < end && *p != ';' && *p != ' ' && *p != '\t')
		p++;
	if (!ieq(type, (size_t)(p - type), "multipart/form-data"))
		return NOT_MULTIPART;
	param_t prm;
	int r;
	bool found = false;
	while (!found && (r = next_param(&p, end, &prm)) > 0) {
		if (!ieq(prm.name, prm.name_len, "boundary"))
			continue;
		if (prm.val_len == 0 || prm.val_len > NB_MULTIPART_MAX_BOUNDARY)
			return MALFORMED "the boundary must be 1 to 70 characters";
		ps->blen = prm.quoted ? unquote(prm.val, prm.val_len, ps->boundary) : prm.val_len;
		if (!prm.quoted)
			memcpy(ps->boundary, prm.val, prm.val_len);
		found = true;
	}
	if (!found)
		return r < 0 ? MALFORMED "invalid content type parameters" : MALFORMED "missing boundary parameter";
	if (!valid_boundary(ps->boundary, ps->blen))
		return MALFORMED "invalid character in the boundary";
	return NULL;
}

/* ---- delimiters -------------------------------------------------------- */

/*
 * Whether the bytes at `at`, just after a "--boundary", complete a
 * delimiter: "--" (the close delimiter; *close set) or transport padding and
 * the line end. The first delimiter line fixes the line end of the body.
 * *next is set to the offset after the delimiter.
 */
static bool delim_tail(parser_t *ps, size_t at, size_t *next, bool *close)
{
	const char *b = ps->body;
	size_t len = ps->len, i = at;
	*close = len - at >= 2 && b[at] == '-' && b[at + 1] == '-';
	if (*close) {
		*next = at + 2;
		return true;
	}
	while (i < len && (b[i] == ' ' || b[i] == '\t'))
		i++;
	if (!ps->eol) {
		if (len - i >= 2 && b[i] == '\r' && b[i + 1] == '\n')
			ps->eol = "\r\n";
		else if (i < len && b[i] == '\n')
			ps->eol = "\n";
		else
			return false;
		ps->eol_len = strlen(ps->eol);
	} else if (len - i < ps->eol_len || memcmp(b + i, ps->eol, ps->eol_len) != 0) {
		return false;
	}
	*next = i + ps->eol_len;
	return true;
}

/* Finds the first delimiter (the body may start with it, or a preamble
 * precedes it) and fixes ps->eol and ps->delim. Returns false if none. */
static bool find_first_delim(parser_t *ps, size_t *next, bool *close)
{
	char pat[1 + 2 + NB_MULTIPART_MAX_BOUNDARY];
	size_t plen = 3 + ps->blen;
	pat[0] = '\n';
	pat[1] = pat[2] = '-';
	memcpy(pat + 3, ps->boundary, ps->blen);
	bool found = ps->len >= plen - 1 && memcmp(ps->body, pat + 1, plen - 1) == 0 &&
		     delim_tail(ps, plen - 1, next, close);
	for (size_t from = 0; !found && from < ps->len;) {
		const char *q = memmem(ps->body + from, ps->len - from, pat, plen);
		if (!q)
			return false;
		size_t at = (size_t)(q - ps->body);
		found = delim_tail(ps, at + plen, next, close);
		from = at + 1;
	}
	if (!found)
		return false;
	if (!ps->eol) { /* "--boundary--" alone: no line end seen, any will do */
		ps->eol = "\r\n";
		ps->eol_len = 2;
	}
	ps->delim_len = ps->eol_len + 2 + ps->blen;
	snprintf(ps->delim, sizeof ps->delim, "%s--%.*s", ps->eol, (int)ps->blen, ps->boundary);
	return true;
}

/* Finds the delimiter ending a part's data at `from`: sets *dpos to its
 * first byte (the line end) and *next to the offset after it. */
static bool find_next_delim(parser_t *ps, size_t from, size_t *dpos, size_t *next, bool *close)
{
	while (from < ps->len) {
		const char *q = memmem(ps->body + from, ps->len - from, ps->delim, ps->delim_len);
		if (!q)
			return false;
		*dpos = (size_t)(q - ps->body);
		if (delim_tail(ps, *dpos + ps->delim_len, next, close))
			return true;
		from = *dpos + 1;
	}
	return false;
}

/* ---- part headers ------------------------------------------------------ */

/* filename*=UTF-8''caf%C3%A9.txt (RFC 5987 ext-value): appends the decoded
 * name to the pool and returns its offset, or NONE (and leaves the pool as
 * it was) for another charset, a bad escape, invalid UTF-8 or a control. */
static size_t pool_add_ext_value(nb_buf_t *pool, const param_t *prm)
{
	const char *v = prm->val, *end = v + prm->val_len;
	const char *q1 = memchr(v, '\'', prm->val_len);
	const char *q2 = q1 ? memchr(q1 + 1, '\'', (size_t)(end - q1 - 1)) : NULL;
	if (prm->quoted || !q2 || !ieq(v, (size_t)(q1 - v), "utf-8"))
		return NONE;
	size_t off = pool->len;
	for (const char *p = q2 + 1; p < end; p++) {
		int c = (unsigned char)*p;
		if (c == '%') {
			int hi = p + 2 < end ? hexval(p[1]) : -1, lo = hi >= 0 ? hexval(p[2]) : -1;
			if (lo < 0)
				goto bad;
			c = hi << 4 | lo;
			p += 2;
		}
		if (c < 0x20 || c == 0x7f)
			goto bad;
		nb_buf_putc(pool, (char)c);
	}
	if (!nb_utf8_valid(pool->data ? pool->data + off : "", pool->len - off))
		goto bad;
	nb_buf_putc(pool, '\0');
	return off;
bad:
	pool->len = off;
	if (pool->data)
		pool->data[off] = '\0';
	return NONE;
}

/* Content-Disposition: form-data; name="…"; filename="…"; filename*=… */
static const char *parse_disposition(const char *v, const char *end, nb_buf_t *pool, pending_t *pt)
{
	const char *p = skip_token(v, end);
	if (!ieq(v, (size_t)(p - v), "form-data"))
		return MALFORMED "a part is not form-data";
	param_t prm;
	int r;
	while ((r = next_param(&p, end, &prm)) > 0) {
		if (ieq(prm.name, prm.name_len, "name") && pt->name == NONE)
			pt->name = pool_add_value(pool, &prm);
		else if (ieq(prm.name, prm.name_len, "filename") && pt->filename == NONE)
			pt->filename = pool_add_value(pool, &prm);
		else if (ieq(prm.name, prm.name_len, "filename*") && pt->filename_ext == NONE)
			pt->filename_ext = pool_add_ext_value(pool, &prm);
	}
	if (r < 0)
		return MALFORMED "invalid content-disposition header";
	if (pt->name == NONE)
		return MALFORMED "a part has no name";
	if (!nb_utf8_valid(pool->data + pt->name, strlen(pool->data + pt->name)))
		return MALFORMED "a part name is not valid UTF-8";
	if (pt->filename != NONE && !nb_utf8_valid(pool->data + pt->filename, strlen(pool->data + pt->filename)))
		return MALFORMED "a file name is not valid UTF-8";
	return NULL;
}

/* Content-Type of a part: the lower-cased type/subtype, or nothing when it
 * is not one (an unusable type is as good as none). */
static void parse_part_type(const char *v, const char *end, nb_buf_t *pool, pending_t *pt)
{
	const char *slash = skip_token(v, end);
	if (slash == v || slash == end || *slash != '/')
		return;
	const char *p = skip_token(slash + 1, end), *rest = skip_ows(p, end);
	if (p == slash + 1 || (rest < end && *rest != ';'))
		return;
	pt->content_type = pool->len;
	for (const char *c = v; c < p; c++)
		nb_buf_putc(pool, (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c));
	nb_buf_putc(pool, '\0');
}

/* One header line [line, end) without its line end. */
static const char *parse_header_line(const char *line, const char *end, nb_buf_t *pool, pending_t *pt)
{
	for (const char *c = line; c < end; c++)
		if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f)
			return MALFORMED "control character in a part header";
	const char *colon = memchr(line, ':', (size_t)(end - line));
	if (!colon || colon == line || skip_token(line, colon) != colon)
		return MALFORMED "invalid part header";
	const char *v = skip_ows(colon + 1, end), *e = end;
	while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	size_t nlen = (size_t)(colon - line);
	if (ieq(line, nlen, "content-disposition")) {
		if (pt->name != NONE)
			return MALFORMED "duplicate content-disposition header";
		return parse_disposition(v, e, pool, pt);
	}
	if (ieq(line, nlen, "content-type")) {
		if (pt->seen_type)
			return MALFORMED "duplicate content-type header";
		pt->seen_type = true;
		parse_part_type(v, e, pool, pt);
	}
	return NULL;
}

/* The header block of a part at *pos: parses it into pt and moves *pos to
 * the first data byte. */
static const char *parse_headers(parser_t *ps, size_t *pos, pending_t *pt)
{
	const char *b = ps->body + *pos;
	size_t avail = ps->len - *pos, el = ps->eol_len, hlen = 0;
	if (!(avail >= el && memcmp(b, ps->eol, el) == 0)) {
		char blank[4];
		size_t window = NB_MULTIPART_MAX_HEADER_BYTES + el;
		memcpy(blank, ps->eol, el);
		memcpy(blank + el, ps->eol, el);
		const char *q = memmem(b, avail < window ? avail : window, blank, 2 * el);
		if (!q)
			return avail >= window ? MALFORMED "part headers are larger than 8 KiB"
					       : MALFORMED "unterminated part headers";
		hlen = (size_t)(q - b) + el;
	}
	for (size_t i = 0; i < hlen;) {
		const char *line = b + i, *eol = memmem(line, hlen - i, ps->eol, el);
		const char *after = eol + el; /* the next line, or the blank line */
		if (*line == ' ' || *line == '\t' || (after < b + hlen && (*after == ' ' || *after == '\t')))
			return MALFORMED "folded part header";
		const char *why = parse_header_line(line, eol, &ps->pool, pt);
		if (why)
			return why;
		i = (size_t)(eol - b) + el;
	}
	if (pt->name == NONE)
		return MALFORMED "a part has no content-disposition header";
	*pos += hlen + el;
	return NULL;
}

/* ---- the body ---------------------------------------------------------- */

static const char *parse_parts(parser_t *ps)
{
	size_t pos, dpos;
	bool close;
	if (ps->len == 0)
		return MALFORMED "empty body";
	if (!find_first_delim(ps, &pos, &close))
		return MALFORMED "no boundary line found";
	while (!close) {
		if (ps->nparts == NB_MULTIPART_MAX_PARTS)
			return MALFORMED "too many parts (at most 32)";
		pending_t *pt = &ps->parts[ps->nparts++];
		*pt = (pending_t){NONE, NONE, NONE, NONE, false, NULL, 0};
		const char *why = parse_headers(ps, &pos, pt);
		if (why)
			return why;
		/* from the blank line's line end: "…\r\n\r\n--b" is an empty part */
		size_t start = pos;
		if (!find_next_delim(ps, start - ps->eol_len, &dpos, &pos, &close))
			return MALFORMED "missing closing boundary";
		pt->data = ps->body + start;
		pt->len = dpos > start ? dpos - start : 0;
	}
	return NULL;
}

/* Moves the pool and the pending parts into *out. */
static void finish(parser_t *ps, nb_multipart_t *out)
{
	out->nparts = ps->nparts;
	out->strings_ = nb_buf_steal(&ps->pool, NULL);
	out->parts = ps->nparts ? nb_xcalloc((size_t)ps->nparts, sizeof *out->parts) : NULL;
	for (int i = 0; i < ps->nparts; i++) {
		const pending_t *pt = &ps->parts[i];
		nb_part_t *p = &out->parts[i];
		p->name = out->strings_ + pt->name;
		p->filename = pt->filename_ext != NONE ? out->strings_ + pt->filename_ext
			      : pt->filename != NONE   ? out->strings_ + pt->filename
						       : NULL;
		p->content_type = pt->content_type != NONE ? out->strings_ + pt->content_type : NULL;
		p->data = pt->data;
		p->len = pt->len;
	}
}

int nb_multipart_parse(const char *content_type, const char *body, size_t len, nb_multipart_t *out, char *err,
		       size_t errlen)
{
	parser_t *ps = nb_xcalloc(1, sizeof *ps); /* ~2 KiB: not on a coroutine's stack */
	ps->body = body ? body : "";
	ps->len = body ? len : 0;
	nb_buf_init(&ps->pool);
	memset(out, 0, sizeof *out);
	const char *why = parse_content_type(content_type, ps);
	if (!why)
		why = parse_parts(ps);
	if (!why)
		finish(ps, out);
	if (err && errlen)
		snprintf(err, errlen, "%s", why ? why : "");
	nb_buf_dispose(&ps->pool);
	free(ps);
	return why ? -1 : 0;
}

void nb_multipart_dispose(nb_multipart_t *m)
{
	if (!m)
		return;
	free(m->parts);
	free(m->strings_);
	memset(m, 0, sizeof *m);
}

const nb_part_t *nb_multipart_get(const nb_multipart_t *m, const char *name)
{
	if (!m || !name)
		return NULL;
	for (int i = 0; i < m->nparts; i++)
		if (strcmp(m->parts[i].name, name) == 0)
			return &m->parts[i];
	return NULL;
}
