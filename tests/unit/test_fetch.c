/*
 * test_fetch.c — unit tests of URL fetching (src/rag/fetch.c) against a tiny
 * HTTP server run inside the test on 127.0.0.1.
 *
 * The test includes fetch.c to reach fetch_url(), which takes the address
 * policy as a parameter: with a policy that allows only the first test
 * server's exact address and port, a redirect to a second server on
 * 127.0.0.1 (or to 169.254.169.254, or to localhost) shows end to end that
 * redirects are checked, and the second server's connection count shows
 * that nothing connected. Proxy variables pointing nowhere are set for the
 * whole run: every successful fetch also shows that they are ignored.
 */
#include "rag/fetch.c"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "t.h"

/* ---- the test server --------------------------------------------------- */

#define MAX_CONNS 256

typedef struct server {
	int fd, port;
	pthread_t thread;
	atomic_int accepted;
	atomic_bool stop;
	pthread_mutex_t mu;
	pthread_t conns[MAX_CONNS];
	int nconns;
	char last_request[4096];
} server_t;

static server_t srv, srv2; /* srv2: the "private" target of redirects */

typedef struct conn {
	server_t *s;
	int fd;
} conn_t;

/* gzip of "hello, compressed world\n" x 4 */
static const unsigned char gz_hello[] = {
	0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0xd7,
	0x51, 0x48, 0xce, 0xcf, 0x2d, 0x28, 0x4a, 0x2d, 0x2e, 0x4e, 0x4d, 0x51, 0x28, 0xcf, 0x2f, 0xca,
	0x49, 0xe1, 0xca, 0xa0, 0x92, 0x38, 0x00, 0x43, 0xbf, 0x4a, 0x88, 0x60, 0x00, 0x00, 0x00};

/* gzip of 100000 zero bytes (132 bytes: a small "zip bomb") */
static const unsigned char gz_bomb[] = {
	0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0xed, 0xc1, 0x31, 0x01, 0x00, 0x00,
	0x00, 0xc2, 0xa0, 0xf5, 0x4f, 0x6d, 0x0d, 0x0f, 0xa0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x57, 0x03, 0x7d, 0x95, 0x11, 0xd4,
	0xa0, 0x86, 0x01, 0x00,
};

static void send_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
		if (k <= 0)
			return;
		c += k;
		n -= (size_t)k;
	}
}

static void send_head(int fd, const char *status, const char *headers, size_t clen)
{
	char head[1024];
	int n = snprintf(head, sizeof head, "HTTP/1.1 %s\r\n%sContent-Length: %zu\r\nConnection: close\r\n\r\n",
			 status, headers, clen);
	send_all(fd, head, (size_t)n);
}

static void send_simple(int fd, const char *status, const char *headers, const char *body)
{
	send_head(fd, status, headers, strlen(body));
	send_all(fd, body, strlen(body));
}

static void send_redirect(int fd, const char *location)
{
	char h[512];
	snprintf(h, sizeof h, "Location: %s\r\n", location);
	send_simple(fd, "302 Found", h, "moved");
}

static void send_chunked(int fd, size_t total)
{
	static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
				   "Connection: close\r\n\r\n";
	char chunk[1000];
	memset(chunk, 'c', sizeof chunk);
	send_all(fd, head, sizeof head - 1);
	for (size_t sent = 0; sent < total;) {
		size_t n = total - sent < sizeof chunk ? total - sent : sizeof chunk;
		char size[32];
		snprintf(size, sizeof size, "%zx\r\n", n);
		send_all(fd, size, strlen(size));
		send_all(fd, chunk, n);
		send_all(fd, "\r\n", 2);
		sent += n;
	}
	send_all(fd, "0\r\n\r\n", 5);
}

static void send_bytes(int fd, const char *ctype, size_t n, char fill)
{
	char *b = malloc(n);
	memset(b, fill, n);
	char h[128];
	snprintf(h, sizeof h, "Content-Type: %s\r\n", ctype);
	send_head(fd, "200 OK", h, n);
	send_all(fd, b, n);
	free(b);
}

/* Headers now, then one byte every 200 ms for 3 s (a stalling server). */
static void send_slow(int fd)
{
	send_head(fd, "200 OK", "Content-Type: text/plain\r\n", 15);
	for (int i = 0; i < 15; i++) {
		struct timespec ts = {0, 200 * 1000 * 1000};
		nanosleep(&ts, NULL);
		if (send(fd, "x", 1, MSG_NOSIGNAL) != 1)
			return;
	}
}

/* Responses, by path, that do not redirect. */
static bool respond_plain(int fd, const char *path)
{
	if (strcmp(path, "/html") == 0)
		send_simple(fd, "200 OK", "Content-Type: Text/HTML; Charset=\"UTF-8\"\r\n",
			    "<html><body><p>Hello</p></body></html>");
	else if (strcmp(path, "/pdf") == 0)
		send_simple(fd, "200 OK", "Content-Type: application/pdf\r\n", "%PDF-1.4\n%%EOF\n");
	else if (strcmp(path, "/noct") == 0)
		send_simple(fd, "200 OK", "", "no type");
	else if (strcmp(path, "/weirdct") == 0)
		send_simple(fd, "200 OK", "Content-Type: text/plain; format=\"a;charset=evil\"; charset = latin1 \r\n",
			    "x");
	else if (strcmp(path, "/500") == 0)
		send_simple(fd, "500 Internal Server Error", "Content-Type: text/plain\r\n", "oops");
	else if (strcmp(path, "/big-cl") == 0)
		send_bytes(fd, "text/plain", 5000, 'b');
	else if (strcmp(path, "/exact") == 0)
		send_bytes(fd, "text/plain", 1024, 'e');
	else if (strcmp(path, "/big-chunked") == 0)
		send_chunked(fd, 5000);
	else if (strcmp(path, "/exact-chunked") == 0)
		send_chunked(fd, 1024);
	else if (strcmp(path, "/slow") == 0)
		send_slow(fd);
	else if (strcmp(path, "/gzip") == 0) {
		send_head(fd, "200 OK", "Content-Type: text/plain\r\nContent-Encoding: gzip\r\n", sizeof gz_hello);
		send_all(fd, gz_hello, sizeof gz_hello);
	} else if (strcmp(path, "/gzip-bomb") == 0) {
		send_head(fd, "200 OK", "Content-Type: text/plain\r\nContent-Encoding: gzip\r\n", sizeof gz_bomb);
		send_all(fd, gz_bomb, sizeof gz_bomb);
	} else
		return false;
	return true;
}

static void respond(server_t *s, int fd, const char *path)
{
	char loc[256];
	if (respond_plain(fd, path))
		return;
	if (strncmp(path, "/redir/", 7) == 0) {
		int n = atoi(path + 7);
		snprintf(loc, sizeof loc, "/redir/%d", n - 1);
		if (n > 0)
			send_redirect(fd, loc);
		else
			send_simple(fd, "200 OK", "Content-Type: text/plain\r\n", "done");
	} else if (strcmp(path, "/loop") == 0) {
		send_redirect(fd, "/loop");
	} else if (strcmp(path, "/to-file") == 0) {
		send_redirect(fd, "file:///etc/passwd");
	} else if (strcmp(path, "/to-ftp") == 0) {
		snprintf(loc, sizeof loc, "ftp://127.0.0.1:%d/x", s->port);
		send_redirect(fd, loc);
	} else if (strcmp(path, "/to-private") == 0) {
		snprintf(loc, sizeof loc, "http://127.0.0.1:%d/html", srv2.port);
		send_redirect(fd, loc);
	} else if (strcmp(path, "/to-localhost") == 0) {
		snprintf(loc, sizeof loc, "http://localhost:%d/html", srv2.port);
		send_redirect(fd, loc);
	} else if (strcmp(path, "/to-meta") == 0) {
		send_redirect(fd, "http://169.254.169.254/latest/meta-data/");
	} else if (strcmp(path, "/no-location") == 0) {
		send_simple(fd, "302 Found", "", "where?");
	} else {
		send_simple(fd, "404 Not Found", "Content-Type: text/plain\r\n", "not found");
	}
}

static void *conn_main(void *arg)
{
	conn_t *c = arg;
	char req[4096];
	size_t n = 0;
	struct timeval tv = {5, 0};
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	while (n < sizeof req - 1) {
		ssize_t k = recv(c->fd, req + n, sizeof req - 1 - n, 0);
		if (k <= 0)
			break;
		n += (size_t)k;
		req[n] = '\0';
		if (strstr(req, "\r\n\r\n"))
			break;
	}
	req[n] = '\0';
	pthread_mutex_lock(&c->s->mu);
	snprintf(c->s->last_request, sizeof c->s->last_request, "%s", req);
	pthread_mutex_unlock(&c->s->mu);
	char path[512] = "";
	sscanf(req, "GET %511s", path);
	respond(c->s, c->fd, path);
	shutdown(c->fd, SHUT_WR);
	close(c->fd);
	free(c);
	return NULL;
}

static void *accept_main(void *arg)
{
	server_t *s = arg;
	while (!atomic_load(&s->stop)) {
		struct pollfd p = {s->fd, POLLIN, 0};
		if (poll(&p, 1, 50) <= 0)
			continue;
		int fd = accept(s->fd, NULL, NULL);
		if (fd < 0)
			continue;
		atomic_fetch_add(&s->accepted, 1);
		conn_t *c = malloc(sizeof *c);
		c->s = s;
		c->fd = fd;
		pthread_mutex_lock(&s->mu);
		if (s->nconns < MAX_CONNS && pthread_create(&s->conns[s->nconns], NULL, conn_main, c) == 0)
			s->nconns++;
		else
			close(fd), free(c);
		pthread_mutex_unlock(&s->mu);
	}
	return NULL;
}

static int server_start(server_t *s)
{
	struct sockaddr_in a = {0};
	socklen_t alen = sizeof a;
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(s->fd, 64) < 0 ||
	    getsockname(s->fd, (struct sockaddr *)&a, &alen) < 0)
		return -1;
	s->port = ntohs(a.sin_port);
	pthread_mutex_init(&s->mu, NULL);
	return pthread_create(&s->thread, NULL, accept_main, s) == 0 ? 0 : -1;
}

static void server_stop(server_t *s)
{
	atomic_store(&s->stop, true);
	pthread_join(s->thread, NULL);
	for (int i = 0; i < s->nconns; i++)
		pthread_join(s->conns[i], NULL);
	close(s->fd);
	pthread_mutex_destroy(&s->mu);
}

/* ---- helpers ----------------------------------------------------------- */

static nb_fetch_opts_t opts_private(void)
{
	nb_fetch_opts_t o = {1024, 5, 2, 5, true};
	return o;
}

static char *url_to(const char *path)
{
	return nb_xasprintf("http://127.0.0.1:%d%s", srv.port, path);
}

/* Fetches path from the test server with allow_private; returns the rc. */
static int get(const char *path, const nb_fetch_opts_t *o, nb_fetched_t *f, char *err)
{
	char *url = url_to(path);
	int rc = nb_fetch_url(url, o, f, err, 256);
	free(url);
	return rc;
}

static void expect_fetch_error(const char *path, const nb_fetch_opts_t *o, const char *want)
{
	nb_fetched_t f;
	char err[256];
	int rc = get(path, o, &f, err);
	CHECK_INT(rc, -1);
	CHECK_MSG(strcmp(err, want) == 0, "%s: \"%s\" != \"%s\"", path, err, want);
	CHECK(f.data == NULL && f.mime == NULL && f.final_url == NULL && f.len == 0);
	nb_fetched_dispose(&f);
}

static bool ends_with(const char *s, const char *tail)
{
	size_t n = s ? strlen(s) : 0, k = strlen(tail);
	return n >= k && strcmp(s + n - k, tail) == 0;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- fetching ---------------------------------------------------------- */

static void test_fetch_html(void)
{
	nb_fetch_opts_t o = opts_private();
	nb_fetched_t f;
	char err[256];
	CHECK_INT(get("/html", &o, &f, err), 0);
	CHECK_STR(err, "");
	CHECK_INT(f.status, 200);
	CHECK_STR(f.mime, "text/html");
	CHECK_STR(f.charset, "utf-8");
	CHECK_STR((const char *)f.data, "<html><body><p>Hello</p></body></html>");
	CHECK_INT(f.len, strlen("<html><body><p>Hello</p></body></html>"));
	CHECK(ends_with(f.final_url, "/html"));
	CHECK_STR(nb_fetch_kind_for_mime(f.mime), "html");
	nb_fetched_dispose(&f);
	CHECK(f.data == NULL && f.mime == NULL);
	pthread_mutex_lock(&srv.mu);
	CHECK(strstr(srv.last_request, "User-Agent: notebookd/1.0\r\n") != NULL);
	CHECK(strstr(srv.last_request, "Accept-Encoding: ") != NULL);
	CHECK(strstr(srv.last_request, "GET /html HTTP/1.1\r\n") == srv.last_request); /* no proxy */
	pthread_mutex_unlock(&srv.mu);
	nb_fetched_dispose(NULL);
}

static void test_fetch_types(void)
{
	nb_fetch_opts_t o = opts_private();
	nb_fetched_t f;
	char err[256];
	CHECK_INT(get("/pdf", &o, &f, err), 0);
	CHECK_STR(f.mime, "application/pdf");
	CHECK(f.charset == NULL);
	CHECK_STR(nb_fetch_kind_for_mime(f.mime), "pdf");
	nb_fetched_dispose(&f);
	CHECK_INT(get("/noct", &o, &f, err), 0);
	CHECK_STR(f.mime, "");
	CHECK(f.charset == NULL);
	CHECK(nb_fetch_kind_for_mime(f.mime) == NULL);
	nb_fetched_dispose(&f);
	CHECK_INT(get("/weirdct", &o, &f, err), 0); /* a quoted ';' is not a parameter separator */
	CHECK_STR(f.mime, "text/plain");
	CHECK_STR(f.charset, "latin1");
	nb_fetched_dispose(&f);
}

static void test_http_errors(void)
{
	nb_fetch_opts_t o = opts_private();
	expect_fetch_error("/missing", &o, "the server answered 404");
	expect_fetch_error("/500", &o, "the server answered 500");
	expect_fetch_error("/no-location", &o, "the server answered 302");
}

static void test_redirects(void)
{
	nb_fetch_opts_t o = opts_private();
	nb_fetched_t f;
	char err[256];
	CHECK_INT(get("/redir/3", &o, &f, err), 0);
	CHECK(ends_with(f.final_url, "/redir/0"));
	CHECK_STR((const char *)f.data, "done");
	nb_fetched_dispose(&f);
	CHECK_INT(get("/redir/5", &o, &f, err), 0); /* exactly max_redirects */
	nb_fetched_dispose(&f);
	expect_fetch_error("/redir/7", &o, "too many redirects (more than 5)");
	expect_fetch_error("/redir/6", &o, "too many redirects (more than 5)");
	expect_fetch_error("/loop", &o, "too many redirects (more than 5)");
	o.max_redirects = 0;
	expect_fetch_error("/redir/1", &o, "too many redirects (more than 0)");
	CHECK_INT(get("/redir/0", &o, &f, err), 0);
	nb_fetched_dispose(&f);
}

static void test_redirect_to_other_protocols(void)
{
	nb_fetch_opts_t o = opts_private();
	expect_fetch_error("/to-file", &o, "redirected to a URL that is not http or https");
	expect_fetch_error("/to-ftp", &o, "redirected to a URL that is not http or https");
}

static void test_size_cap(void)
{
	nb_fetch_opts_t o = opts_private(); /* max_bytes 1024 */
	nb_fetched_t f;
	char err[256];
	expect_fetch_error("/big-cl", &o, "the page is larger than 1 KB");
	expect_fetch_error("/big-chunked", &o, "the page is larger than 1 KB");
	expect_fetch_error("/gzip-bomb", &o, "the page is larger than 1 KB"); /* decoded bytes count */
	CHECK_INT(get("/exact", &o, &f, err), 0);
	CHECK_INT(f.len, 1024);
	nb_fetched_dispose(&f);
	CHECK_INT(get("/exact-chunked", &o, &f, err), 0);
	CHECK_INT(f.len, 1024);
	nb_fetched_dispose(&f);
	o.max_bytes = 10 * 1024 * 1024;
	CHECK_INT(get("/gzip-bomb", &o, &f, err), 0);
	CHECK_INT(f.len, 100000);
	nb_fetched_dispose(&f);
	o.max_bytes = 1000;
	expect_fetch_error("/big-cl", &o, "the page is larger than 1000 bytes");
	o.max_bytes = 3 * 1024 * 1024 / 2;
	CHECK_INT(get("/big-cl", &o, &f, err), 0);
	nb_fetched_dispose(&f);
	char size[32];
	format_size(3 * 1024 * 1024 / 2, size, sizeof size);
	CHECK_STR(size, "1.5 MB");
	format_size(NB_FETCH_DEFAULT_MAX_BYTES, size, sizeof size);
	CHECK_STR(size, "10 MB");
}

static void test_gzip(void)
{
	nb_fetch_opts_t o = opts_private();
	nb_fetched_t f;
	char err[256];
	CHECK_INT(get("/gzip", &o, &f, err), 0);
	CHECK_INT(f.len, 4 * strlen("hello, compressed world\n"));
	CHECK(f.data && strncmp((const char *)f.data, "hello, compressed world\nhello", 29) == 0);
	nb_fetched_dispose(&f);
}

static void test_timeout(void)
{
	nb_fetch_opts_t o = opts_private();
	o.timeout_s = 1;
	double t0 = now_s();
	expect_fetch_error("/slow", &o, "the server did not respond in time");
	double dt = now_s() - t0;
	CHECK_MSG(dt >= 0.9 && dt < 2.5, "took %.2f s", dt);
}

static void test_closed_port(void)
{
	struct sockaddr_in a = {0};
	socklen_t alen = sizeof a;
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
	CHECK(getsockname(fd, (struct sockaddr *)&a, &alen) == 0);
	close(fd); /* nothing listens there now */
	char *url = nb_xasprintf("http://127.0.0.1:%d/", ntohs(a.sin_port));
	nb_fetch_opts_t o = opts_private();
	nb_fetched_t f;
	char err[256];
	CHECK_INT(nb_fetch_url(url, &o, &f, err, sizeof err), -1);
	CHECK_STR(err, "could not connect to the server");
	free(url);
	CHECK_INT(nb_fetch_url("http://no-such-host.invalid/", &o, &f, err, sizeof err), -1);
	CHECK_STR(err, "could not resolve the host name");
	CHECK_INT(nb_fetch_url("ftp://127.0.0.1/", &o, &f, err, sizeof err), -1);
	CHECK_STR(err, "only http and https URLs are allowed");
	CHECK_INT(nb_fetch_url(NULL, &o, &f, NULL, 0), -1); /* err may be NULL */
}

/* ---- the address policy, end to end ------------------------------------ */

static void test_private_addresses_refused(void)
{
	static const struct {
		const char *host, *reason;
	} cases[] = {
		{"127.0.0.1", "127.0.0.1 is a loopback address"},
		{"2130706433", "127.0.0.1 is a loopback address"},
		{"0x7f.1", "127.0.0.1 is a loopback address"},
		{"[::1]", "::1 is a loopback address"},
		{"[::ffff:127.0.0.1]", "::ffff:127.0.0.1 is a loopback address"},
		{"0.0.0.0", "0.0.0.0 is an unspecified address"},
		{"10.0.0.1", "10.0.0.1 is a private address"},
		{"169.254.169.254", "169.254.169.254 is a link-local address"},
		{"localhost", " is a loopback address"},
	};
	nb_fetch_opts_t o = {1024, 5, 2, 5, false};
	int before = atomic_load(&srv.accepted);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *url = nb_xasprintf("http://%s:%d/html", cases[i].host, srv.port);
		char err[256];
		nb_fetched_t f;
		CHECK_INT(nb_fetch_url(url, &o, &f, err, sizeof err), -1);
		/* the user is told that it was refused, never which address the
		 * name resolved to (issue 8.16: that maps internal DNS) */
		CHECK_MSG(strcmp(err, "address not allowed") == 0 && !strstr(err, cases[i].reason), "%s: %s", url,
			  err);
		CHECK(f.data == NULL);
		/* the check at submission refuses it as well, and connects nowhere */
		CHECK_MSG(nb_fetch_check_host(url, 2) == -1, "check_host let %s through", url);
		free(url);
	}
	CHECK_INT(atomic_load(&srv.accepted), before); /* refused before connecting */
	/* a public address passes the submission check (it connects nowhere) */
	CHECK_INT(nb_fetch_check_host("http://93.184.215.14:9/", 2), 0);
	/* the default options are private-address-safe too */
	char *url = url_to("/html");
	char err[256];
	nb_fetched_t f;
	CHECK_INT(nb_fetch_url(url, NULL, &f, err, sizeof err), -1);
	CHECK_STR(err, "address not allowed");
	CHECK_INT(atomic_load(&srv.accepted), before);
	free(url);
}

/* The test policy: the first server's exact address and port stand for a
 * public server; everything else gets the real policy. */
static bool only_srv_allowed(const struct sockaddr *sa, char *why, size_t whylen)
{
	struct sockaddr_in in;
	if (sa->sa_family == AF_INET) {
		memcpy(&in, sa, sizeof in);
		if (ntohl(in.sin_addr.s_addr) == INADDR_LOOPBACK && ntohs(in.sin_port) == srv.port)
			return true;
	}
	return nb_fetch_addr_allowed(sa, why, whylen);
}

static void test_redirect_to_private_refused(void)
{
	static const struct {
		const char *path, *err;
	} cases[] = {
		{"/to-private", "address not allowed"},
		{"/to-meta", "address not allowed"},
		{"/to-localhost", "address not allowed"},
	};
	nb_fetch_opts_t o = {1024, 5, 2, 5, false};
	nb_fetched_t f;
	char err[256];
	int before = atomic_load(&srv.accepted);
	char *url = url_to("/redir/2");
	CHECK_INT(fetch_url(url, &o, only_srv_allowed, &f, err, sizeof err), 0); /* the policy lets srv through */
	nb_fetched_dispose(&f);
	free(url);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		url = url_to(cases[i].path);
		CHECK_INT(fetch_url(url, &o, only_srv_allowed, &f, err, sizeof err), -1);
		CHECK_MSG(strcmp(err, cases[i].err) == 0, "%s: %s", cases[i].path, err);
		free(url);
	}
	CHECK_INT(atomic_load(&srv.accepted), before + 3 + 3);
	CHECK_INT(atomic_load(&srv2.accepted), 0);
	/* and srv2 does answer when allowed: the refusal above was the policy's */
	url = url_to("/to-private");
	o.allow_private = true;
	CHECK_INT(nb_fetch_url(url, &o, &f, err, sizeof err), 0);
	CHECK_INT(atomic_load(&srv2.accepted), 1);
	nb_fetched_dispose(&f);
	free(url);
}

/* ---- the address policy, directly -------------------------------------- */

static bool addr_allowed(const char *text, char *why, size_t whylen)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
	} else if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
	} else {
		fprintf(stdout, "#   bad test address %s\n", text);
		return true; /* makes the check fail */
	}
	return nb_fetch_addr_allowed((struct sockaddr *)&ss, why, whylen);
}

static void test_addr_policy(void)
{
	static const char *refused[] = {
		"127.0.0.1", "127.255.255.254", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
		"169.254.169.254", "0.0.0.0", "0.1.2.3", "100.64.0.1", "100.127.255.255", "224.0.0.1",
		"239.255.255.250", "255.255.255.255", "240.0.0.1", "192.0.2.1", "198.18.0.1", "198.51.100.7",
		"203.0.113.5", "192.0.0.8", "::", "::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
		"::ffff:169.254.169.254", "::ffff:0.0.0.0", "::ffff:0:127.0.0.1", "::127.0.0.1", "::8.8.8.8",
		"64:ff9b::127.0.0.1", "64:ff9b::a9fe:a9fe", "64:ff9b:1::1", "2002:7f00:1::1", "2002:a00:1::",
		"2002:a9fe:a9fe::1", "fc00::1", "fd12:3456::1", "fe80::1", "febf::1", "fec0::1", "ff02::1",
		"2001:db8::1", "2001::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2", "100::1", "3fff::1", "4000::1",
		"1::"};
	static const char *allowed[] = {
		"8.8.8.8", "1.1.1.1", "172.15.255.255", "172.32.0.1", "100.63.255.255", "100.128.0.1",
		"192.167.1.1", "169.253.0.1", "93.184.216.34", "223.255.255.255", "9.255.255.255", "11.0.0.0",
		"2606:4700:4700::1111", "2001:4860:4860::8888", "::ffff:8.8.8.8", "64:ff9b::808:808",
		"2002:808:808::1", "2a00:1450:4001:81b::200e"};
	char why[128];
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		why[0] = '\0';
		CHECK_MSG(!addr_allowed(refused[i], why, sizeof why), "%s allowed", refused[i]);
		CHECK_MSG(strncmp(why, refused[i], strlen(refused[i])) == 0 || strstr(why, " is "), "%s: %s",
			  refused[i], why);
	}
	for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
		CHECK_MSG(addr_allowed(allowed[i], why, sizeof why), "%s refused: %s", allowed[i], why);
	CHECK(!addr_allowed("127.0.0.1", why, sizeof why));
	CHECK_STR(why, "127.0.0.1 is a loopback address");
	CHECK(!addr_allowed("::ffff:127.0.0.1", why, sizeof why));
	CHECK_STR(why, "::ffff:127.0.0.1 is a loopback address");
	CHECK(!addr_allowed("100.64.1.1", why, sizeof why));
	CHECK_STR(why, "100.64.1.1 is a shared (CGNAT) address");
	CHECK(!addr_allowed("2002:c0a8:101::1", why, sizeof why));
	CHECK_STR(why, "2002:c0a8:101::1 is a private address");
	CHECK(!addr_allowed("fd00::1", NULL, 0)); /* why may be NULL */
	struct sockaddr un = {.sa_family = AF_UNIX};
	CHECK(!nb_fetch_addr_allowed(&un, why, sizeof why));
	CHECK(!nb_fetch_addr_allowed(NULL, why, sizeof why));
}

/* ---- URL checks and kinds ---------------------------------------------- */

static void test_check_url(void)
{
	static const char *good[] = {"http://example.com", "https://example.com/a/b?c=d&e=f#frag",
				     "HTTP://EXAMPLE.COM/", "http://[2001:db8::1]:8080/x", "https://ex\u00e4mple.com/",
				     "http://example.com/caf\u00e9", "https://10.0.0.1/"};
	static const struct {
		const char *url, *err;
	} bad[] = {
		{"", "the URL is empty"},
		{"example.com/page", "the URL must start with http:// or https://"},
		{"ftp://example.com/", "only http and https URLs are allowed"},
		{"file:///etc/passwd", "only http and https URLs are allowed"},
		{"javascript:alert(1)", "only http and https URLs are allowed"},
		{"gopher://example.com/", "only http and https URLs are allowed"},
		{"httpx://example.com/", "only http and https URLs are allowed"},
		{"http://", "the URL has no host"},
		{"http:///path", "the URL has no host"},
		{"http:/example.com", "the URL must start with http:// or https://"},
		{"http:example.com", "the URL must start with http:// or https://"},
		{"https:\\\\example.com", "the URL must start with http:// or https://"},
		{"http://\\example.com", "the URL has no host"},
		{"http://example.com:99999/", "invalid URL"},
		{"http://user:pw@example.com/", "URLs with a user name or password are not allowed"},
		{"http://user@example.com/", "URLs with a user name or password are not allowed"},
		{"http://:pw@example.com/", "URLs with a user name or password are not allowed"},
		{"http://exa mple.com/", "the URL contains spaces or control characters"},
		{" http://example.com/", "the URL contains spaces or control characters"},
		{"http://example.com/\n", "the URL contains spaces or control characters"},
		{"http://example.com/\x7f", "the URL contains spaces or control characters"},
		{"http://example.com/\u00a0", "the URL contains spaces or control characters"},
		{"http://example.com/\u2028", "the URL contains spaces or control characters"},
		{"http://example.com/\xff", "the URL is not valid UTF-8"},
		{"http://exa<mple.com/", "invalid URL"},
	};
	char err[256];
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		CHECK_MSG(nb_fetch_check_url(good[i], err, sizeof err) == 0 && err[0] == '\0', "%s: %s", good[i],
			  err);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK_MSG(nb_fetch_check_url(bad[i].url, err, sizeof err) == -1, "%s accepted", bad[i].url);
		CHECK_MSG(strcmp(err, bad[i].err) == 0, "%s: \"%s\" != \"%s\"", bad[i].url, err, bad[i].err);
	}
	CHECK_INT(nb_fetch_check_url(NULL, err, sizeof err), -1);
	CHECK_INT(nb_fetch_check_url(NULL, NULL, 0), -1);
	/* 2048 bytes pass, 2049 do not */
	char url[2100];
	memset(url, 'a', sizeof url);
	memcpy(url, "http://example.com/", 19);
	url[2048] = '\0';
	CHECK_INT(nb_fetch_check_url(url, err, sizeof err), 0);
	url[2048] = 'a';
	url[2049] = '\0';
	CHECK_INT(nb_fetch_check_url(url, err, sizeof err), -1);
	CHECK_STR(err, "the URL is longer than 2048 bytes");
	CHECK_INT(nb_fetch_check_url("http://example.com/", err, 4), 0); /* tiny err buffers are fine */
	CHECK_INT(nb_fetch_check_url("ftp://x/", err, 4), -1);
	CHECK_STR(err, "onl");
}

static void test_kind_for_mime(void)
{
	CHECK_STR(nb_fetch_kind_for_mime("text/html"), "html");
	CHECK_STR(nb_fetch_kind_for_mime("TEXT/HTML"), "html");
	CHECK_STR(nb_fetch_kind_for_mime("application/xhtml+xml"), "html");
	CHECK_STR(nb_fetch_kind_for_mime("application/pdf"), "pdf");
	CHECK_STR(nb_fetch_kind_for_mime("text/markdown"), "markdown");
	CHECK_STR(nb_fetch_kind_for_mime("text/x-markdown"), "markdown");
	CHECK_STR(nb_fetch_kind_for_mime("text/plain"), "text");
	CHECK_STR(nb_fetch_kind_for_mime("text/csv"), "text");
	CHECK_STR(nb_fetch_kind_for_mime("text/x-c"), "text");
	CHECK(nb_fetch_kind_for_mime("text/") == NULL);
	CHECK(nb_fetch_kind_for_mime("application/json") == NULL);
	CHECK(nb_fetch_kind_for_mime("image/png") == NULL);
	CHECK(nb_fetch_kind_for_mime("application/octet-stream") == NULL);
	CHECK(nb_fetch_kind_for_mime("") == NULL);
	CHECK(nb_fetch_kind_for_mime(NULL) == NULL);
}

int main(void)
{
	/* proxies that do not exist: fetches must not use them */
	setenv("http_proxy", "http://127.0.0.1:9/", 1);
	setenv("HTTPS_PROXY", "http://127.0.0.1:9/", 1);
	setenv("ALL_PROXY", "http://127.0.0.1:9/", 1);
	if (server_start(&srv) < 0 || server_start(&srv2) < 0) {
		fprintf(stdout, "not ok - could not start the test server\n");
		return 1;
	}
	T_RUN(test_fetch_html);
	T_RUN(test_fetch_types);
	T_RUN(test_http_errors);
	T_RUN(test_redirects);
	T_RUN(test_redirect_to_other_protocols);
	T_RUN(test_size_cap);
	T_RUN(test_gzip);
	T_RUN(test_timeout);
	T_RUN(test_closed_port);
	T_RUN(test_private_addresses_refused);
	T_RUN(test_redirect_to_private_refused);
	T_RUN(test_addr_policy);
	T_RUN(test_check_url);
	T_RUN(test_kind_for_mime);
	server_stop(&srv);
	server_stop(&srv2);
	return t_done();
}
