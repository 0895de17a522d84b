/*
 * static.h — the web app (web/), compiled into the binary and served at /
 * and /assets/<version>/… (see tools/embed_web.sh for the build step).
 *
 * Every file exists twice in the binary, as-is and gzip -9n compressed, so
 * serving is a table lookup and one copy: nothing is read from disk and
 * nothing compressed at run time. One binary still runs everything.
 */
#ifndef NB_API_STATIC_H
#define NB_API_STATIC_H

#include <stddef.h>

#include "http/router.h"

typedef struct nb_web_file {
	const char *path;          /* "/" for index.html, else "/assets/<version>/<name>" */
	const char *content_type;
	const unsigned char *data; /* the file */
	size_t len;
	const unsigned char *gz;   /* the file compressed with gzip -9n */
	size_t gz_len;
	const char *etag;          /* a quoted strong validator */
	int immutable;             /* 1: a versioned asset, cacheable for a year */
} nb_web_file_t;

/** The generated table (build/gen/web.c) and its size. */
extern const nb_web_file_t nb_web_files[];
extern const int nb_web_nfiles;
/** The asset version: the first 12 hex digits of the SHA-256 of web/. */
extern const char nb_web_version[];

/**
 * GET / and GET /assets/{version}/{file}: the file with its content type,
 * ETag and Cache-Control (index.html: no-cache; assets: a year, immutable),
 * gzip when the request accepts it, 304 on a matching If-None-Match, and the
 * page's security headers (CSP, nosniff, Referrer-Policy). An unknown asset
 * is 404. No token, no database: runs inline on the event loop.
 */
int nb_api_static(nb_req_t *req);

#endif
