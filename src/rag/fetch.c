/*
 * fetch.c — downloading URL sources with libcurl (see fetch.h).
 *
 * The SSRF defence sits in CURLOPT_OPENSOCKETFUNCTION, the one place every
 * connection libcurl makes passes through with the resolved address in
 * hand: checking the URL's host name instead would miss redirects, DNS
 * rebinding (a name that resolves to a public address when checked and to
 * 127.0.0.1 when connected) and the many spellings of an address
 * (http://2130706433/, http://0x7f.1/, [::ffff:127.0.0.1]). A refused
 * address never gets a socket, so no packet is sent to it. Each fetch uses
 * its own easy handle (no shared connection or DNS cache), and no proxy is
 * ever used, so the address checked is the address talked to.
 *
 * The body size cap is enforced on decoded bytes in the write callback
 * (CURLOPT_MAXFILESIZE_LARGE only sees a Content-Length, which chunked
 * bodies lack and which counts compressed bytes).
 */
#include "rag/fetch.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/utf8.h"

#define URL_MAX 2048
#define MIME_MAX 127
#define CHARSET_MAX 40

/* The address policy as a parameter, so that tests can exercise the
 * redirect path against a loopback server (NULL: everything allowed). */
typedef bool (*addr_policy_fn)(const struct sockaddr *sa, char *why, size_t whylen);

typedef struct fetch_ctx {
	nb_buf_t body;
	size_t max_bytes;
	bool too_big;          /* the write callback refused more bytes */
	addr_policy_fn policy; /* NULL when private addresses are allowed */
	char refused[160];     /* why the first refused address was refused, "" if none */
} fetch_ctx_t;

static void set_err(char *err, size_t errlen, const char *msg)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", msg);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static bool curl_ready;

static void curl_init_once(void)
{
	curl_ready = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

/* ---- address policy ---------------------------------------------------- */

typedef struct v4_rule {
	uint32_t net, mask;
	const char *what; /* "a loopback" in "… is a loopback address" */
} v4_rule_t;

static const v4_rule_t v4_rules[] = {
	{0x00000000, 0xFF000000, "an unspecified"},   /* 0.0.0.0/8 "this network" */
	{0x7F000000, 0xFF000000, "a loopback"},       /* 127.0.0.0/8 */
	{0x0A000000, 0xFF000000, "a private"},        /* 10.0.0.0/8 */
	{0xAC100000, 0xFFF00000, "a private"},        /* 172.16.0.0/12 */
	{0xC0A80000, 0xFFFF0000, "a private"},        /* 192.168.0.0/16 */
	{0xA9FE0000, 0xFFFF0000, "a link-local"},     /* 169.254.0.0/16, cloud metadata */
	{0x64400000, 0xFFC00000, "a shared (CGNAT)"}, /* 100.64.0.0/10 */
	{0xC0000000, 0xFFFFFF00, "a reserved"},       /* 192.0.0.0/24 IETF protocol assignments */
	{0xC0000200, 0xFFFFFF00, "a documentation"},  /* 192.0.2.0/24 */
	{0xC0586300, 0xFFFFFF00, "a reserved"},       /* 192.88.99.0/24 6to4 relays (deprecated) */
	{0xC6120000, 0xFFFE0000, "a benchmarking"},   /* 198.18.0.0/15 */
	{0xC6336400, 0xFFFFFF00, "a documentation"},  /* 198.51.100.0/24 */
	{0xCB007100, 0xFFFFFF00, "a documentation"},  /* 203.0.113.0/24 */
	{0xE0000000, 0xF0000000, "a multicast"},      /* 224.0.0.0/4 */
	{0xFFFFFFFF, 0xFFFFFFFF, "a broadcast"},      /* 255.255.255.255 */
	{0xF0000000, 0xF0000000, "a reserved"},       /* 240.0.0.0/4 */
};

/* The category of a non-public IPv4 address (host byte order), or NULL. */
static const char *v4_category(uint32_t a)
{
	for (size_t i = 0; i < sizeof v4_rules / sizeof v4_rules[0]; i++)
		if ((a & v4_rules[i].mask) == v4_rules[i].net)
			return v4_rules[i].what;
	return NULL;
}

static uint32_t be32_at(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* IPv6 forms that carry an IPv4 address we must judge instead: mapped
 * (::ffff:a.b.c.d), translated (::ffff:0:a.b.c.d), compatible (::a.b.c.d),
 * NAT64 (64:ff9b::a.b.c.d) and 6to4 (2002:aabb:ccdd::). */
static bool v6_embedded_v4(const uint8_t *b, uint32_t *v4)
{
	static const uint8_t nat64[12] = {0x00, 0x64, 0xff, 0x9b};
	if (all_zero(b, 10) && b[10] == 0xff && b[11] == 0xff)
		*v4 = be32_at(b + 12);
	else if (all_zero(b, 8) && b[8] == 0xff && b[9] == 0xff && b[10] == 0 && b[11] == 0)
		*v4 = be32_at(b + 12);
	else if (memcmp(b, nat64, 12) == 0 || all_zero(b, 12))
		*v4 = be32_at(b + 12);
	else if (b[0] == 0x20 && b[1] == 0x02)
		*v4 = be32_at(b + 2);
	else
		return false;
	return true;
}

/* The category of a non-public IPv6 address, or NULL. */
static const char *v6_category(const uint8_t *b)
{
	uint32_t v4;
	if (all_zero(b, 16))
		return "an unspecified";
	if (all_zero(b, 15) && b[15] == 1)
		return "a loopback";
	if (v6_embedded_v4(b, &v4)) {
		const char *what = v4_category(v4);
		/* ::a.b.c.d (IPv4-compatible) is deprecated and never routed */
		return what ? what : all_zero(b, 12) ? "a reserved" : NULL;
	}
	if (b[0] == 0xff)
		return "a multicast";
	if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
		return "a link-local";
	if ((b[0] & 0xfe) == 0xfc || (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0))
		return "a private"; /* unique local fc00::/7, site-local fec0::/10 */
	if ((b[0] & 0xe0) != 0x20)
		return "a reserved"; /* only 2000::/3 is global unicast */
	if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8)
		return "a documentation"; /* 2001:db8::/32 */
	if (b[0] == 0x3f && b[1] == 0xff && (b[2] & 0xf0) == 0)
		return "a documentation"; /* 3fff::/20 */
	if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0 && (b[3] & 0xe0) == 0)
		return "a reserved"; /* 2001::/27: Teredo (its IPv4 is obfuscated), benchmarking, ORCHID */
	return NULL;
}

bool nb_fetch_addr_allowed(const struct sockaddr *sa, char *why, size_t whylen)
{
	char text[INET6_ADDRSTRLEN] = "?";
	const char *what = ""; /* "" for a family that is neither IPv4 nor IPv6 */
	if (sa && sa->sa_family == AF_INET) {
		struct sockaddr_in in;
		memcpy(&in, sa, sizeof in);
		inet_ntop(AF_INET, &in.sin_addr, text, sizeof text);
		what = v4_category(ntohl(in.sin_addr.s_addr));
	} else if (sa && sa->sa_family == AF_INET6) {
		struct sockaddr_in6 in6;
		memcpy(&in6, sa, sizeof in6);
		inet_ntop(AF_INET6, &in6.sin6_addr, text, sizeof text);
		what = v6_category(in6.sin6_addr.s6_addr);
	}
	if (!what)
		return true;
	if (why && whylen && what[0])
		snprintf(why, whylen, "%s is %s address", text, what);
	else if (why && whylen)
		snprintf(why, whylen, "only IPv4 and IPv6 addresses can be fetched");
	return false;
}

/* ---- URL and media type checks ----------------------------------------- */

/* Whitespace and control characters, C1 and Unicode spaces included. */
static bool has_space_or_control(const char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		int k = nb_utf8_decode(s + i, n - i, &cp);
		if (k < 0)
			return true; /* caller validated UTF-8 already */
		if (cp <= 0x20 || (cp >= 0x7f && cp <= 0xa0) || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200b) ||
		    cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000 || cp == 0xfeff)
			return true;
		i += (size_t)k;
	}
	return false;
}

/* The http/https prefix check, done before libcurl's parser so that the
 * message is precise ("ftp:" and "javascript:" are not "invalid URLs") and
 * the URL means what it says. */
static const char *scheme_problem(const char *url)
{
	const char *colon = strchr(url, ':');
	if (!colon || colon == url)
		return "the URL must start with http:// or https://";
	size_t n = (size_t)(colon - url);
	if (!((n == 4 && strncasecmp(url, "http", 4) == 0) || (n == 5 && strncasecmp(url, "https", 5) == 0)))
		return "only http and https URLs are allowed";
	/* libcurl reads "http:/x" and "http:///x" as http://x/: say no instead */
	if (strncmp(colon + 1, "//", 2) != 0)
		return "the URL must start with http:// or https://";
	if (colon[3] == '/' || colon[3] == '\\')
		return "the URL has no host";
	return NULL;
}

/* The checks libcurl's URL parser makes possible: host and user info. */
static const char *parsed_problem(const char *url)
{
	const char *problem = NULL;
	char *host = NULL, *user = NULL, *password = NULL;
	CURLU *u = curl_url();
	if (!u)
		return "could not parse the URL";
	CURLUcode rc = curl_url_set(u, CURLUPART_URL, url, 0);
	if (rc == CURLUE_NO_HOST)
		problem = "the URL has no host";
	else if (rc != CURLUE_OK)
		problem = "invalid URL";
	else if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host || !host[0])
		problem = "the URL has no host";
	else if (curl_url_get(u, CURLUPART_USER, &user, 0) != CURLUE_NO_USER ||
		 curl_url_get(u, CURLUPART_PASSWORD, &password, 0) != CURLUE_NO_PASSWORD)
		problem = "URLs with a user name or password are not allowed";
	curl_free(host);
	curl_free(user);
	curl_free(password);
	curl_url_cleanup(u);
	return problem;
}

int nb_fetch_check_url(const char *url, char *err, size_t errlen)
{
	const char *problem = NULL;
	size_t n = url ? strlen(url) : 0;
	pthread_once(&curl_once, curl_init_once);
	if (n == 0)
		problem = "the URL is empty";
	else if (n > URL_MAX)
		problem = "the URL is longer than 2048 bytes";
	else if (!nb_utf8_valid(url, n))
		problem = "the URL is not valid UTF-8";
	else if (has_space_or_control(url, n))
		problem = "the URL contains spaces or control characters";
	else if (!curl_ready)
		problem = "could not initialise the HTTP client";
	else if (!(problem = scheme_problem(url)))
		problem = parsed_problem(url);
	if (problem) {
		set_err(err, errlen, problem);
		return -1;
	}
	set_err(err, errlen, "");
	return 0;
}

const char *nb_fetch_kind_for_mime(const char *mime)
{
	if (!mime || !mime[0])
		return NULL;
	if (strcasecmp(mime, "text/html") == 0 || strcasecmp(mime, "application/xhtml+xml") == 0)
		return "html";
	if (strcasecmp(mime, "application/pdf") == 0)
		return "pdf";
	if (strcasecmp(mime, "text/markdown") == 0 || strcasecmp(mime, "text/x-markdown") == 0)
		return "markdown";
	if (strncasecmp(mime, "text/", 5) == 0 && mime[5])
		return "text";
	return NULL;
}

/* RFC 9110 tchar. */
static bool is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* A lower-case copy of s[0..n) trimmed of spaces if it is a token (or, with
 * slash, a type/subtype) of at most max bytes; NULL otherwise. */
static char *token_copy(const char *s, size_t n, bool slash, size_t max)
{
	while (n && (*s == ' ' || *s == '\t'))
		s++, n--;
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	const char *sl = slash ? memchr(s, '/', n) : NULL;
	if (n == 0 || n > max || (slash && (!sl || sl == s || sl == s + n - 1)))
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (!is_tchar((unsigned char)s[i]) && s + i != sl)
			return NULL;
	char *out = nb_xstrndup(s, n);
	for (size_t i = 0; i < n; i++)
		if (out[i] >= 'A' && out[i] <= 'Z')
			out[i] = (char)(out[i] - 'A' + 'a');
	return out;
}

/* The end of the parameter starting at p: the next ';' outside quotes. */
static const char *param_end(const char *p)
{
	bool quoted = false;
	for (; *p && (quoted || *p != ';'); p++) {
		if (*p == '"')
			quoted = !quoted;
		else if (quoted && *p == '\\' && p[1])
			p++;
	}
	return p;
}

/* Fills out->mime ("" when absent or invalid) and out->charset from a
 * Content-Type value such as `Text/HTML; Charset="UTF-8"`. */
static void parse_content_type(const char *ct, nb_fetched_t *out)
{
	const char *end = ct ? param_end(ct) : NULL;
	out->mime = ct ? token_copy(ct, (size_t)(end - ct), true, MIME_MAX) : NULL;
	if (!out->mime)
		out->mime = nb_xstrdup("");
	for (const char *p = end; p && *p == ';' && !out->charset; p = end) {
		p++;
		end = param_end(p);
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncasecmp(p, "charset", 7) != 0)
			continue;
		const char *v = p + 7;
		while (*v == ' ' || *v == '\t')
			v++;
		if (*v++ != '=')
			continue;
		while (*v == ' ' || *v == '\t')
			v++;
		size_t n = (size_t)(end - v);
		while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
			n--;
		if (n >= 2 && v[0] == '"' && v[n - 1] == '"')
			v++, n -= 2;
		out->charset = token_copy(v, n, false, CHARSET_MAX);
	}
}

/* ---- the transfer ------------------------------------------------------ */

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
	fetch_ctx_t *c = ud;
	size_t n = size * nmemb;
	if (n > c->max_bytes - c->body.len) {
		c->too_big = true;
		return 0; /* anything but n aborts the transfer */
	}
	nb_buf_append(&c->body, p, n);
	return n;
}

static curl_socket_t on_open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
	fetch_ctx_t *c = ud;
	char why[sizeof c->refused];
	(void)purpose;
	bool sized = (a->family == AF_INET && a->addrlen >= sizeof(struct sockaddr_in)) ||
		     (a->family == AF_INET6 && a->addrlen >= sizeof(struct sockaddr_in6));
	if (c->policy && (!sized || !c->policy(&a->addr, why, sizeof why))) {
		if (!sized)
			snprintf(why, sizeof why, "only IPv4 and IPv6 addresses can be fetched");
		nb_warn("fetch: refused to connect: %s", why);
		if (!c->refused[0])
			snprintf(c->refused, sizeof c->refused, "%s", why);
		return CURL_SOCKET_BAD;
	}
	return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

typedef struct limits {
	size_t max_bytes;
	long timeout_s, connect_timeout_s, max_redirects;
} limits_t;

static limits_t resolve_limits(const nb_fetch_opts_t *o)
{
	limits_t l = {NB_FETCH_DEFAULT_MAX_BYTES, NB_FETCH_DEFAULT_TIMEOUT_S, NB_FETCH_DEFAULT_CONNECT_TIMEOUT_S,
		      NB_FETCH_DEFAULT_MAX_REDIRECTS};
	if (o && o->max_bytes)
		l.max_bytes = o->max_bytes;
	if (o && o->timeout_s > 0)
		l.timeout_s = o->timeout_s;
	if (o && o->connect_timeout_s > 0)
		l.connect_timeout_s = o->connect_timeout_s;
	if (o && o->max_redirects >= 0)
		l.max_redirects = o->max_redirects;
	return l;
}

/* Every option that matters for safety must take: a libcurl too old for
 * one of them fails the fetch rather than fetching unsafely. */
static bool setup_handle(CURL *h, const char *url, const limits_t *l, fetch_ctx_t *c, char *errbuf)
{
	curl_off_t max = l->max_bytes > (size_t)INT64_MAX ? INT64_MAX : (curl_off_t)l->max_bytes;
	return curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_URL, url) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_MAXREDIRS, l->max_redirects) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_TIMEOUT, l->timeout_s) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, l->connect_timeout_s) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, max) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_PROXY, "") == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_NOPROXY, "*") == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_USERAGENT, "notebookd/1.0") == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "") == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_WRITEDATA, c) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, on_open_socket) == CURLE_OK &&
	       curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, c) == CURLE_OK;
}

/* "10 MB", "1.5 MB", "100 KB", "512 bytes". */
static void format_size(size_t n, char *out, size_t outlen)
{
	const size_t mb = 1024 * 1024, kb = 1024;
	if (n >= mb && n % mb == 0)
		snprintf(out, outlen, "%zu MB", n / mb);
	else if (n >= mb)
		snprintf(out, outlen, "%.1f MB", (double)n / (double)mb);
	else if (n >= kb && n % kb == 0)
		snprintf(out, outlen, "%zu KB", n / kb);
	else if (n >= kb)
		snprintf(out, outlen, "%.1f KB", (double)n / (double)kb);
	else
		snprintf(out, outlen, "%zu bytes", n);
}

/* Reasons for the libcurl errors a user can cause or meet. */
static const char *curl_failure_text(CURLcode rc)
{
	switch (rc) {
	case CURLE_UNSUPPORTED_PROTOCOL:
		return "redirected to a URL that is not http or https";
	case CURLE_URL_MALFORMAT:
		return "invalid URL";
	case CURLE_COULDNT_RESOLVE_HOST:
		return "could not resolve the host name";
	case CURLE_COULDNT_CONNECT:
		return "could not connect to the server";
	case CURLE_OPERATION_TIMEDOUT:
		return "the server did not respond in time";
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		return "could not verify the server's TLS certificate";
	case CURLE_SSL_CONNECT_ERROR:
		return "could not establish a secure connection";
	case CURLE_GOT_NOTHING:
		return "the server sent no response";
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return "the server sent an invalid response";
	case CURLE_BAD_CONTENT_ENCODING:
		return "could not decode the page's content encoding";
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_PARTIAL_FILE:
		return "the connection broke during the download";
	case CURLE_OUT_OF_MEMORY:
		return "out of memory";
	default:
		return "could not download the page";
	}
}

/* The end user's reason for a failed transfer. */
static void describe_failure(CURLcode rc, long status, const fetch_ctx_t *c, const limits_t *l, char *err,
			     size_t errlen)
{
	char size[32];
	if (rc == CURLE_COULDNT_CONNECT && c->refused[0]) {
		/* which address a name resolved to stays in the log: told to the
		 * user, it would map the internal DNS for anyone */
		set_err(err, errlen, "address not allowed");
		return;
	}
	switch (rc) {
	case CURLE_OK: /* a final 1xx/3xx: a redirect without Location, 304… */
	case CURLE_HTTP_RETURNED_ERROR:
		if (err && errlen)
			snprintf(err, errlen, "the server answered %ld", status);
		return;
	case CURLE_WRITE_ERROR:
	case CURLE_FILESIZE_EXCEEDED:
		if (rc == CURLE_FILESIZE_EXCEEDED || c->too_big) {
			format_size(l->max_bytes, size, sizeof size);
			if (err && errlen)
				snprintf(err, errlen, "the page is larger than %s", size);
			return;
		}
		break;
	case CURLE_TOO_MANY_REDIRECTS:
		if (err && errlen)
			snprintf(err, errlen, "too many redirects (more than %ld)", l->max_redirects);
		return;
	default:
		break;
	}
	set_err(err, errlen, curl_failure_text(rc));
}

/* Moves the body and the response's metadata into *out. */
static void take_result(CURL *h, fetch_ctx_t *c, long status, nb_fetched_t *out)
{
	char *ct = NULL, *eff = NULL;
	curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
	curl_easy_getinfo(h, CURLINFO_EFFECTIVE_URL, &eff);
	out->data = (unsigned char *)nb_buf_steal(&c->body, &out->len);
	parse_content_type(ct, out);
	out->final_url = nb_xstrdup(eff ? eff : "");
	out->status = (int)status;
}

/* nb_fetch_url with the address policy as a parameter (NULL: allow all). */
static int fetch_url(const char *url, const nb_fetch_opts_t *o, addr_policy_fn policy, nb_fetched_t *out,
		     char *err, size_t errlen)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	limits_t l = resolve_limits(o);
	fetch_ctx_t c = {NB_BUF_INIT, l.max_bytes, false, policy, ""};
	long status = 0;
	int ret = -1;
	CURL *h = NULL;
	memset(out, 0, sizeof *out);
	if (nb_fetch_check_url(url, err, errlen) < 0)
		goto done;
	h = curl_easy_init();
	if (!h || !setup_handle(h, url, &l, &c, errbuf)) {
		nb_error("fetch: could not set up libcurl (%s)", curl_version());
		set_err(err, errlen, "could not initialise the HTTP client");
		goto done;
	}
	CURLcode rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (rc != CURLE_OK || status < 200 || status > 299) {
		describe_failure(rc, status, &c, &l, err, errlen);
		nb_info("fetch: failed: %s (curl %d: %s)", err && errlen ? err : "", (int)rc,
			errbuf[0] ? errbuf : curl_easy_strerror(rc));
		goto done;
	}
	take_result(h, &c, status, out);
	ret = 0;
done:
	curl_easy_cleanup(h);
	nb_buf_dispose(&c.body);
	return ret;
}

int nb_fetch_url(const char *url, const nb_fetch_opts_t *o, nb_fetched_t *out, char *err, size_t errlen)
{
	return fetch_url(url, o, o && o->allow_private ? NULL : nb_fetch_addr_allowed, out, err, errlen);
}

/* Resolving only: records whether an address is refused, connects nowhere. */
static curl_socket_t on_probe_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
	fetch_ctx_t *c = ud;
	char why[sizeof c->refused];
	(void)purpose;
	bool sized = (a->family == AF_INET && a->addrlen >= sizeof(struct sockaddr_in)) ||
		     (a->family == AF_INET6 && a->addrlen >= sizeof(struct sockaddr_in6));
	if ((!sized || !nb_fetch_addr_allowed(&a->addr, why, sizeof why)) && !c->refused[0]) {
		snprintf(c->refused, sizeof c->refused, "%s", sized ? why : "not an IPv4 or IPv6 address");
		nb_info("fetch: refused at submission: %s", c->refused);
	}
	return CURL_SOCKET_BAD;
}

int nb_fetch_check_host(const char *url, int timeout_s)
{
	fetch_ctx_t c = {NB_BUF_INIT, 1, false, nb_fetch_addr_allowed, ""};
	char errbuf[CURL_ERROR_SIZE] = "";
	long t = timeout_s > 0 ? timeout_s : NB_FETCH_DEFAULT_CONNECT_TIMEOUT_S;
	pthread_once(&curl_once, curl_init_once);
	CURL *h = curl_ready ? curl_easy_init() : NULL;
	if (!h || curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_TIMEOUT, t) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, t) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_PROXY, "") != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_NOPROXY, "*") != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, on_probe_socket) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, &c) != CURLE_OK) {
		curl_easy_cleanup(h);
		return 0; /* the fetch checks every address anyway */
	}
	CURLcode rc = curl_easy_perform(h);
	if (rc != CURLE_COULDNT_CONNECT)
		nb_info("fetch: host check of a new source: curl %d: %s", (int)rc,
			errbuf[0] ? errbuf : curl_easy_strerror(rc));
	curl_easy_cleanup(h);
	return c.refused[0] ? -1 : 0;
}

void nb_fetched_dispose(nb_fetched_t *f)
{
	if (!f)
		return;
	free(f->data);
	free(f->mime);
	free(f->charset);
	free(f->final_url);
	memset(f, 0, sizeof *f);
}
