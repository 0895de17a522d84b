/*
 * multipart.h — a multipart/form-data (RFC 7578, RFC 2046 §5.1) parser for
 * upload bodies.
 *
 * Zero-copy: each part's data points into the request body, which must
 * outlive the result; only the few header strings are copied. The body is
 * scanned once, with memmem for the delimiter, so a 50 MB upload costs
 * about one pass over its bytes.
 */
#ifndef NB_HTTP_MULTIPART_H
#define NB_HTTP_MULTIPART_H

#include <stddef.h>

#define NB_MULTIPART_MAX_PARTS 32
#define NB_MULTIPART_MAX_HEADER_BYTES 8192 /* the header lines of one part, line ends included */
#define NB_MULTIPART_MAX_BOUNDARY 70

typedef struct nb_part {
	const char *name;         /* Content-Disposition name; NUL-terminated, valid UTF-8, may be "" */
	const char *filename;     /* Content-Disposition filename (filename*=UTF-8'' preferred), or NULL;
	                             as sent: valid UTF-8 without control characters, but it may hold a
	                             path or be "" — never use it as a file system path */
	const char *content_type; /* lower-cased media type without parameters ("image/png"), or NULL */
	const char *data;         /* points INTO the body (zero-copy); may hold any bytes, NUL included */
	size_t len;
} nb_part_t;

typedef struct nb_multipart {
	nb_part_t *parts; /* nparts entries in body order; owned */
	int nparts;       /* 0 to NB_MULTIPART_MAX_PARTS */
	char *strings_;   /* private: the copies the parts' strings point into; owned */
} nb_multipart_t;

/**
 * Parses a multipart/form-data body. content_type is the request's
 * Content-Type header: "multipart/form-data" (any case) with a boundary
 * parameter, quoted or not, of 1 to 70 RFC 2046 characters.
 *
 * Accepted: a preamble and an epilogue (ignored), transport padding after a
 * delimiter, and LF-only line ends when the first delimiter line ends with
 * a bare LF (the whole body is then read with LF line ends). Only a line
 * end followed by "--boundary" and then "--" or the line end is a
 * delimiter, so boundary-like bytes elsewhere are data. Every part needs a
 * Content-Disposition "form-data" with a name. At most 32 parts and 8 KiB
 * of headers per part; header lines hold no control characters (no NUL)
 * and no folding; names and filenames must be valid UTF-8.
 *
 * Returns 0 and fills *out (release with nb_multipart_dispose; the parts'
 * data point into body, the strings belong to *out), or -1 with *out zeroed
 * and a short lower-case reason in err (err may be NULL): "content type is
 * not multipart/form-data" or "malformed multipart body: …". Never crashes
 * on any input; linear time.
 */
int nb_multipart_parse(const char *content_type, const char *body, size_t len, nb_multipart_t *out, char *err,
		       size_t errlen);

/** Frees what m owns (not the body) and zeroes it. Accepts NULL. */
void nb_multipart_dispose(nb_multipart_t *m);

/** The first part named name (exact, case-sensitive), or NULL. Accepts a NULL m or name. */
const nb_part_t *nb_multipart_get(const nb_multipart_t *m, const char *name);

#endif
