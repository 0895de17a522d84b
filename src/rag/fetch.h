/*
 * fetch.h — downloading URL sources with libcurl, safely (OWASP API7 SSRF).
 *
 * A URL source is fetched on a worker thread on behalf of a user, so the
 * user chooses where our server connects. The address policy is enforced on
 * the address libcurl actually connects to, after DNS resolution, for the
 * first request and for every redirect (CURLOPT_OPENSOCKETFUNCTION): a name
 * that resolves — or re-resolves, DNS rebinding — to a loopback, private,
 * link-local or otherwise non-public address is refused before any
 * connection is made. Only http and https are spoken, also on redirects;
 * proxy environment variables are ignored; size, time and redirect count
 * are capped.
 */
#ifndef NB_RAG_FETCH_H
#define NB_RAG_FETCH_H

#include <stdbool.h>
#include <stddef.h>

struct sockaddr;

/* Defaults used for zero (or negative) fields of nb_fetch_opts_t. */
#define NB_FETCH_DEFAULT_MAX_BYTES ((size_t)10 * 1024 * 1024)
#define NB_FETCH_DEFAULT_TIMEOUT_S 30
#define NB_FETCH_DEFAULT_CONNECT_TIMEOUT_S 10
#define NB_FETCH_DEFAULT_MAX_REDIRECTS 5

typedef struct nb_fetch_opts {
	size_t max_bytes;      /* larger (decoded) bodies fail ("the page is larger than N MB"); 0: default */
	int timeout_s;         /* whole transfer, redirects included; <= 0: default */
	int connect_timeout_s; /* each connection; <= 0: default */
	int max_redirects;     /* redirects followed; 0: none; < 0: default (5) */
	bool allow_private;    /* NOTEBOOKD_ALLOW_PRIVATE_URLS=1 (tests only): skip the address policy */
} nb_fetch_opts_t;

typedef struct nb_fetched {
	unsigned char *data; /* owned (free()); never NULL on success; a NUL byte follows data[len] */
	size_t len;          /* decoded body bytes, at most max_bytes */
	char *mime;          /* owned; lower-case media type without parameters ("text/html"); "" if absent or invalid */
	char *charset;       /* owned; lower-case charset parameter of the Content-Type, or NULL */
	char *final_url;     /* owned; the URL after redirects */
	int status;          /* HTTP status of the final response (2xx on success) */
} nb_fetched_t;

/**
 * Downloads url (first checked with nb_fetch_check_url), following at most
 * o->max_redirects redirects (http and https only). o may be NULL for the
 * defaults. Unless o->allow_private, every address connected to must pass
 * nb_fetch_addr_allowed.
 *
 * Returns 0 and fills *out (release it with nb_fetched_dispose), or -1 with
 * *out zeroed and a short lower-case reason meant for the end user in err
 * (err may be NULL; at most errlen bytes, NUL-terminated), e.g.
 * "address not allowed" (never which address: that would map internal
 * DNS for the user; the log has it), "the server
 * answered 404", "the page is larger than 10 MB", "too many redirects (more
 * than 5)", "the server did not respond in time", "could not connect to the
 * server", "redirected to a URL that is not http or https".
 * A final status outside 2xx is a failure. libcurl's own message goes to the
 * log. Thread-safe; never raises signals (CURLOPT_NOSIGNAL).
 */
int nb_fetch_url(const char *url, const nb_fetch_opts_t *o, nb_fetched_t *out, char *err, size_t errlen);

/** Frees what f owns and zeroes it. Accepts NULL. */
void nb_fetched_dispose(nb_fetched_t *f);

/**
 * Validates a URL given for a new source: parses with libcurl's URL API
 * (CURLU); "http://" or "https://" (exactly two slashes: libcurl would
 * read "http:/x" and "http:///x" as http://x/), a host, at most 2048
 * bytes, valid UTF-8, no user name or password, no whitespace or control
 * characters (Unicode spaces included). Returns 0, or
 * -1 with a short lower-case reason in err (err may be NULL). This does not
 * resolve the host: the address policy is applied when fetching.
 */
int nb_fetch_check_url(const char *url, char *err, size_t errlen);

/**
 * The source kind to extract a fetched body as, from its media type (as in
 * nb_fetched_t.mime; case-insensitive): "html" for text/html and
 * application/xhtml+xml, "pdf" for application/pdf, "markdown" for
 * text/markdown and text/x-markdown, "text" for text/plain and any other
 * text/ type; NULL for anything else, NULL and "" included. The result is a
 * static string.
 */
const char *nb_fetch_kind_for_mime(const char *mime);

/**
 * The address policy at submission: resolves url's host (a literal address
 * too) with libcurl's resolver, bounded by timeout_s (<= 0: the default
 * connect timeout), and connects nowhere. -1 if any address it resolves to
 * is refused by nb_fetch_addr_allowed; 0 otherwise, also when the name does
 * not resolve (the fetch then fails with its own reason). url passed
 * nb_fetch_check_url. Blocks: call it where blocking is allowed. Thread-safe.
 */
int nb_fetch_check_host(const char *url, int timeout_s);

/**
 * The address policy: true if our server may connect to sa, which points
 * to a whole sockaddr_in or sockaddr_in6 (the port is ignored); NULL and
 * other families are refused. Refused: loopback (127/8, ::1), private
 * (10/8, 172.16/12, 192.168/16, fc00::/7, fec0::/10), link-local
 * (169.254/16 — cloud metadata —, fe80::/10), unspecified (0/8, ::), shared
 * CGNAT (100.64/10), multicast (224/4, ff00::/8), broadcast and reserved
 * (240/4), documentation and benchmarking ranges, IPv6 outside 2000::/3,
 * 2001::/27 (Teredo, ORCHID…), IPv4-compatible ::a.b.c.d, and the
 * IPv4-mapped (::ffff:0:0/96), IPv4-translated, 6to4 (2002::/16) and NAT64
 * (64:ff9b::/96) forms of refused IPv4 addresses. When refused and why is not NULL,
 * writes "<address> is a <category> address" there (e.g. "127.0.0.1 is a
 * loopback address"). Pure function; thread-safe.
 */
bool nb_fetch_addr_allowed(const struct sockaddr *sa, char *why, size_t whylen);

#endif
