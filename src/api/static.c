/*
 * static.c — serves the compiled-in web app (see static.h). A linear lookup
 * over a dozen entries; the only decisions are gzip or not, and 304 or 200.
 * The Content-Security-Policy allows nothing but this origin: no inline
 * script or style, no frames, no plugins; the page talks to /v1 only.
 */
#include "api/static.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "http/request.h"

#define CSP                                                                                                      \
	"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "         \
	"font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

/* Does the Accept-Encoding header list gzip with a non-zero quality? */
static bool accepts_gzip(const char *ae)
{
	while (ae && *ae) {
		ae += strspn(ae, " \t,");
		size_t n = strcspn(ae, ",;");
		if (n == 4 && strncasecmp(ae, "gzip", 4) == 0) {
			const char *q = ae + n;
			q += strspn(q, " \t");
			if (*q == ';') {
				q = strstr(q, "q=");
				if (q && strtod(q + 2, NULL) <= 0.0)
					return false;
			}
			return true;
		}
		ae = strchr(ae, ',');
	}
	return false;
}

/* Does If-None-Match name this ETag (or "*")? */
static bool etag_matches(const char *inm, const char *etag)
{
	if (!inm)
		return false;
	size_t n = strlen(etag);
	for (const char *p = inm; (p = strstr(p, "\"")) != NULL; p++) {
		if (strncmp(p, etag, n) == 0)
			return true;
	}
	return strchr(inm, '*') != NULL;
}

int nb_api_static(nb_req_t *req)
{
	const nb_web_file_t *f = NULL;
	for (int i = 0; i < nb_web_nfiles && !f; i++)
		if (strcmp(nb_web_files[i].path, req->path) == 0)
			f = &nb_web_files[i];
	if (!f)
		return nb_resp_error(req, NB_ENOTFOUND, "no such file", NULL);
	nb_resp_t *resp = &req->resp;
	resp->cache_control = f->immutable ? "public, max-age=31536000, immutable" : "no-cache";
	nb_resp_header(resp, "ETag", f->etag);
	nb_resp_header(resp, "Vary", "Accept-Encoding");
	nb_resp_header(resp, "Content-Security-Policy", CSP);
	nb_resp_header(resp, "Referrer-Policy", "no-referrer");
	nb_resp_header(resp, "Cross-Origin-Opener-Policy", "same-origin");
	if (etag_matches(nb_req_header(req, "if-none-match"), f->etag)) {
		nb_resp_empty(resp, 304);
		return 0;
	}
	if (accepts_gzip(nb_req_header(req, "accept-encoding"))) {
		nb_resp_header(resp, "Content-Encoding", "gzip");
		nb_resp_raw(resp, 200, f->content_type, (const char *)f->gz, f->gz_len);
	} else {
		nb_resp_raw(resp, 200, f->content_type, (const char *)f->data, f->len);
	}
	return 0;
}
