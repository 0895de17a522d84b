/*
 * test_multipart.c — unit tests of the multipart/form-data parser
 * (src/http/multipart.c): well-formed bodies, boundary handling, limits,
 * malformed input, random input and the speed on a large part.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "http/multipart.h"
#include "t.h"

#define CT "multipart/form-data; boundary=XyZ"

/* Each near miss is one memmem call, and a sanitizer's memmem interceptor
 * checks the whole remaining haystack on every call: quadratic under ASan
 * only (the parser's own work stays linear). So under ASan the body is
 * smaller and the bound looser: 2 MB took 10.5 s under ASan on a loaded
 * machine, past the old 10 s bound; 512 KB costs a sixteenth of that
 * interceptor work. The release build keeps 2 MB within 0.5 s. */
#if defined(__SANITIZE_ADDRESS__)
#define NEAR_MISS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NEAR_MISS_ASAN 1
#endif
#endif
#ifdef NEAR_MISS_ASAN
#define NEAR_MISS_LIMIT_S 10.0
#define NEAR_MISS_BYTES (512u * 1024)
#else
#define NEAR_MISS_LIMIT_S 0.5
#define NEAR_MISS_BYTES (2u * 1024 * 1024)
#endif

static int parse(const char *ct, const char *body, size_t len, nb_multipart_t *m, char *err)
{
	return nb_multipart_parse(ct, body, len, m, err, 256);
}

static int parse_str(const char *ct, const char *body, nb_multipart_t *m, char *err)
{
	return parse(ct, body, strlen(body), m, err);
}

/* Expects a failure whose reason contains want. */
static void expect_fail(const char *ct, const char *body, size_t len, const char *want)
{
	nb_multipart_t m;
	char err[256];
	int rc = parse(ct, body, len, &m, err);
	CHECK_INT(rc, -1);
	CHECK_MSG(strstr(err, want) != NULL, "\"%s\" lacks \"%s\"", err, want);
	CHECK(m.parts == NULL && m.nparts == 0 && m.strings_ == NULL);
}

static void expect_fail_str(const char *ct, const char *body, const char *want)
{
	expect_fail(ct, body, strlen(body), want);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_well_formed(void)
{
	const char *body = "--XyZ\r\n"
			   "Content-Disposition: form-data; name=\"file\"; filename=\"notes.txt\"\r\n"
			   "Content-Type: Text/Plain; charset=utf-8\r\n"
			   "\r\n"
			   "line one\r\nline two\r\n"
			   "--XyZ\r\n"
			   "content-disposition: FORM-DATA; name=title\r\n"
			   "\r\n"
			   "My notes\r\n"
			   "--XyZ--\r\n";
	nb_multipart_t m;
	char err[256];
	CHECK_INT(parse_str(CT, body, &m, err), 0);
	CHECK_STR(err, "");
	CHECK_INT(m.nparts, 2);
	if (m.nparts != 2)
		return;
	CHECK_STR(m.parts[0].name, "file");
	CHECK_STR(m.parts[0].filename, "notes.txt");
	CHECK_STR(m.parts[0].content_type, "text/plain");
	CHECK_INT(m.parts[0].len, strlen("line one\r\nline two")); /* the last CRLF is the delimiter's */
	CHECK(memcmp(m.parts[0].data, "line one\r\nline two", m.parts[0].len) == 0);
	CHECK(m.parts[0].data > body && m.parts[0].data < body + strlen(body)); /* zero-copy */
	CHECK_STR(m.parts[1].name, "title");
	CHECK(m.parts[1].filename == NULL);
	CHECK(m.parts[1].content_type == NULL);
	CHECK_INT(m.parts[1].len, 8);
	CHECK(memcmp(m.parts[1].data, "My notes", 8) == 0);
	CHECK(nb_multipart_get(&m, "title") == &m.parts[1]);
	CHECK(nb_multipart_get(&m, "file") == &m.parts[0]);
	CHECK(nb_multipart_get(&m, "File") == NULL);
	CHECK(nb_multipart_get(&m, "nope") == NULL);
	nb_multipart_dispose(&m);
	CHECK(m.parts == NULL && m.nparts == 0);
	nb_multipart_dispose(&m); /* twice is harmless */
	nb_multipart_dispose(NULL);
	CHECK(nb_multipart_get(NULL, "file") == NULL);
}

static void test_quoted_boundary(void)
{
	const char *body = "--a b:c=d\r\nContent-Disposition: form-data; name=x\r\n\r\nv\r\n--a b:c=d--";
	nb_multipart_t m;
	char err[256];
	CHECK_INT(parse_str("Multipart/Form-Data; charset=utf-8; BOUNDARY=\"a b:c=d\"", body, &m, err), 0);
	CHECK_INT(m.nparts, 1);
	CHECK(m.nparts == 1 && m.parts[0].len == 1 && m.parts[0].data[0] == 'v');
	nb_multipart_dispose(&m);
	/* a typical browser boundary, unquoted, with spaces around the '=' */
	const char *b2 = "------WebKitFormBoundary7MA4YWxk\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n"
			 "------WebKitFormBoundary7MA4YWxk--\r\n";
	CHECK_INT(parse_str("multipart/form-data;boundary = ----WebKitFormBoundary7MA4YWxk", b2, &m, err), 0);
	CHECK_INT(m.nparts, 1);
	nb_multipart_dispose(&m);
}

static void test_boundary_like_data(void)
{
	/* "--XyZ" not after a line end, after a bare LF, and "\r\n--XyZ" followed by
	 * other characters are all data */
	static const char data[] = "a--XyZ b\n--XyZ\r\nc\r\n--XyZabc\r\n--XyZ -\r\nend";
	nb_buf_t b = NB_BUF_INIT;
	nb_buf_puts(&b, "--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.bin\"\r\n\r\n");
	nb_buf_append(&b, data, sizeof data - 1);
	nb_buf_puts(&b, "\r\n--XyZ--");
	nb_multipart_t m;
	char err[256];
	CHECK_INT(parse(CT, b.data, b.len, &m, err), 0);
	CHECK_INT(m.nparts, 1);
	if (m.nparts == 1) {
		CHECK_INT(m.parts[0].len, sizeof data - 1);
		CHECK(memcmp(m.parts[0].data, data, sizeof data - 1) == 0);
	}
	nb_multipart_dispose(&m);
	nb_buf_dispose(&b);
}

static void test_nul_bytes(void)
{
	static const char data[] = "\0\0\x01\xff\0--XyZ\0";
	nb_buf_t b = NB_BUF_INIT;
	nb_buf_puts(&b, "--XyZ\r\nContent-Disposition: form-data; name=\"bin\"\r\n"
			"Content-Type: application/octet-stream\r\n\r\n");
	nb_buf_append(&b, data, sizeof data - 1);
	nb_buf_puts(&b, "\r\n--XyZ--\r\n");
	nb_multipart_t m;
	char err[256];
	CHECK_INT(parse(CT, b.data, b.len, &m, err), 0);
	CHECK(m.nparts == 1 && m.parts[0].len == sizeof data - 1 &&
	      memcmp(m.parts[0].data, data, sizeof data - 1) == 0);
	CHECK(m.nparts == 1 && strcmp(m.parts[0].content_type, "application/octet-stream") == 0);
	nb_multipart_dispose(&m);
	/* a NUL in a header line is refused */
	static const char bad[] = "--XyZ\r\nContent-Disposition: form-data; name=\"a\0b\"\r\n\r\nx\r\n--XyZ--";
	expect_fail(CT, bad, sizeof bad - 1, "control character");
	nb_buf_dispose(&b);
}

static void test_preamble_epilogue(void)
{
	const char *body = "This is a preamble.\r\n--XyZ is not here\r\n"
			   "--XyZ  \t\r\n" /* transport padding */
			   "Content-Disposition: form-data; name=\"a\"\r\n\r\n"
			   "A\r\n--XyZ--   epilogue\r\n--XyZ\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\nB\r\n";
	nb_multipart_t m;
	char err[256];
	CHECK_INT(parse_str(CT, body, &m, err), 0);
	CHECK_INT(m.nparts, 1);
	CHECK(m.nparts == 1 && m.parts[0].len == 1 && m.parts[0].data[0] == 'A');
	nb_multipart_dispose(&m);
}

static void test_lf_only(void)
{
	const char *body = "--XyZ\nContent-Disposition: form-data; name=\"a\"\n\nfirst\n--XyZ\n"
			   "Content-Disposition: form-data; name=\"b\"\n\n\n--XyZ--\n";
	nb_multipart_t m;
	char err[256];
	CHECK_INT(parse_str(CT, body, &m, err), 0);
	CHECK_INT(m.nparts, 2);
	if (m.nparts == 2) {
		CHECK_INT(m.parts[0].len, 5);
		CHECK(memcmp(m.parts[0].data, "first", 5) == 0);
		CHECK_INT(m.parts[1].len, 0);
	}
	nb_multipart_dispose(&m);
	/* mixing: a CRLF body does not end a part at a bare LF delimiter */
	expect_fail_str(CT, "--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\nx\n--XyZ--\n",
			"missing closing boundary");
}

static void test_empty_parts(void)
{
	nb_multipart_t m;
	char err[256];
	/* the blank line's CRLF doubles as the delimiter's */
	CHECK_INT(parse_str(CT, "--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\n--XyZ--", &m, err), 0);
	CHECK(m.nparts == 1 && m.parts[0].len == 0);
	nb_multipart_dispose(&m);
	CHECK_INT(parse_str(CT, "--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\n\r\n--XyZ--", &m, err), 0);
	CHECK(m.nparts == 1 && m.parts[0].len == 0);
	nb_multipart_dispose(&m);
	/* no parts at all */
	CHECK_INT(parse_str(CT, "--XyZ--\r\n", &m, err), 0);
	CHECK_INT(m.nparts, 0);
	CHECK(m.parts == NULL);
	nb_multipart_dispose(&m);
}

static void test_names_and_filenames(void)
{
	const char *body = "--XyZ\r\n"
			   "Content-Disposition: form-data; name=\"a\\\"b\"; filename=\"C:\\dir\\f \\\"q\\\".txt\"\r\n\r\n"
			   "1\r\n--XyZ\r\n"
			   "Content-Disposition: form-data; name=\"u\"; filename=\"fallback.txt\"; "
			   "filename*=UTF-8''caf%C3%A9%20%E2%82%AC.txt\r\n\r\n"
			   "2\r\n--XyZ\r\n"
			   "Content-Disposition: form-data; name=\"v\"; filename=\"keep.txt\"; filename*=UTF-8''bad%ZZ\r\n\r\n"
			   "3\r\n--XyZ\r\n"
			   "Content-Disposition: form-data; name=\"w\"; filename=\"k2.txt\"; filename*=ISO-8859-1''x%E9\r\n\r\n"
			   "4\r\n--XyZ\r\n"
			   "Content-Disposition: form-data;name=\"\u00e9t\u00e9\";filename=\"\u65e5\u672c.pdf\";\r\n\r\n"
			   "5\r\n--XyZ--";
	nb_multipart_t m;
	char err[256];
	CHECK_INT(parse_str(CT, body, &m, err), 0);
	CHECK_INT(m.nparts, 5);
	if (m.nparts != 5)
		return;
	CHECK_STR(m.parts[0].name, "a\"b");
	CHECK_STR(m.parts[0].filename, "C:\\dir\\f \"q\".txt");
	CHECK_STR(m.parts[1].filename, "caf\u00e9 \u20ac.txt");
	CHECK_STR(m.parts[2].filename, "keep.txt"); /* a bad ext-value is ignored */
	CHECK_STR(m.parts[3].filename, "k2.txt");   /* only UTF-8 ext-values are used */
	CHECK_STR(m.parts[4].name, "\u00e9t\u00e9");
	CHECK_STR(m.parts[4].filename, "\u65e5\u672c.pdf");
	nb_multipart_dispose(&m);
}

static void test_content_type_errors(void)
{
	const char *body = "--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--XyZ--";
	expect_fail_str(NULL, body, "content type is not multipart/form-data");
	expect_fail_str("application/json", body, "content type is not multipart/form-data");
	expect_fail_str("multipart/mixed; boundary=XyZ", body, "content type is not multipart/form-data");
	expect_fail_str("multipart/form-data", body, "missing boundary parameter");
	expect_fail_str("multipart/form-data; charset=utf-8", body, "missing boundary parameter");
	expect_fail_str("multipart/form-data; boundary=", body, "1 to 70");
	expect_fail_str("multipart/form-data; boundary=\"\"", body, "1 to 70");
	expect_fail_str("multipart/form-data; boundary=\"unterminated", body, "invalid content type parameters");
	char ct[160], b71[72];
	memset(b71, 'b', 71);
	b71[71] = '\0';
	snprintf(ct, sizeof ct, "multipart/form-data; boundary=%s", b71);
	expect_fail_str(ct, body, "1 to 70");
	snprintf(ct, sizeof ct, "multipart/form-data; boundary=%.70s", b71); /* 70 is fine */
	nb_multipart_t m;
	char err[256];
	char b70body[256];
	snprintf(b70body, sizeof b70body, "--%.70s\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--%.70s--",
		 b71, b71);
	CHECK_INT(parse_str(ct, b70body, &m, err), 0);
	nb_multipart_dispose(&m);
	expect_fail_str("multipart/form-data; boundary=\"a<b\"", body, "invalid character in the boundary");
	expect_fail_str("multipart/form-data; boundary=\"ab \"", body, "invalid character in the boundary");
}

static void test_body_errors(void)
{
	expect_fail(CT, "", 0, "empty body");
	expect_fail(CT, NULL, 0, "empty body");
	expect_fail_str(CT, "no delimiter here", "no boundary line found");
	expect_fail_str(CT, "--XyZZ\r\n", "no boundary line found");
	expect_fail_str(CT, "--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\ndata without end",
			"missing closing boundary");
	expect_fail_str(CT, "--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\ndata\r\n--XyZ",
			"missing closing boundary");
	expect_fail_str(CT, "--XyZ\r\nContent-Disposition: form-data; name=a\r\n", "unterminated part headers");
	expect_fail_str(CT, "--XyZ\r\n\r\nx\r\n--XyZ--", "no content-disposition");
	expect_fail_str(CT, "--XyZ\r\nContent-Disposition: attachment; name=a\r\n\r\nx\r\n--XyZ--",
			"not form-data");
	expect_fail_str(CT, "--XyZ\r\nContent-Disposition: form-data; filename=a\r\n\r\nx\r\n--XyZ--", "no name");
	expect_fail_str(CT, "--XyZ\r\nContent-Disposition: form-data; name=\"a\r\n\r\nx\r\n--XyZ--",
			"invalid content-disposition");
	expect_fail_str(CT, "--XyZ\r\nno colon here\r\n\r\nx\r\n--XyZ--", "invalid part header");
	expect_fail_str(CT, "--XyZ\r\nBad Name: v\r\n\r\nx\r\n--XyZ--", "invalid part header");
	expect_fail_str(CT, "--XyZ\r\nContent-Disposition: form-data;\r\n name=a\r\n\r\nx\r\n--XyZ--", "folded");
	expect_fail_str(CT,
			"--XyZ\r\nContent-Disposition: form-data; name=a\r\nContent-Disposition: form-data; "
			"name=b\r\n\r\nx\r\n--XyZ--",
			"duplicate content-disposition");
	expect_fail_str(CT, "--XyZ\r\nContent-Disposition: form-data; name=\"\xff\"\r\n\r\nx\r\n--XyZ--",
			"not valid UTF-8");
	expect_fail_str(CT, "--XyZ\r\nContent-Disposition: form-data; name=a; filename=\"\xc3\"\r\n\r\nx\r\n--XyZ--",
			"not valid UTF-8");
}

static void add_part(nb_buf_t *b, int i)
{
	nb_buf_printf(b, "--XyZ\r\nContent-Disposition: form-data; name=\"p%d\"\r\n\r\nv%d\r\n", i, i);
}

static void test_part_limit(void)
{
	nb_buf_t b = NB_BUF_INIT;
	for (int i = 0; i < 32; i++)
		add_part(&b, i);
	nb_buf_puts(&b, "--XyZ--\r\n");
	nb_multipart_t m;
	char err[256];
	CHECK_INT(parse(CT, b.data, b.len, &m, err), 0);
	CHECK_INT(m.nparts, 32);
	const nb_part_t *p = nb_multipart_get(&m, "p31");
	CHECK(p && p->len == 3 && memcmp(p->data, "v31", 3) == 0);
	nb_multipart_dispose(&m);
	nb_buf_reset(&b);
	for (int i = 0; i < 33; i++)
		add_part(&b, i);
	nb_buf_puts(&b, "--XyZ--\r\n");
	expect_fail(CT, b.data, b.len, "too many parts");
	nb_buf_dispose(&b);
}

/* A part whose header lines (line ends included) take exactly `size` bytes. */
static void header_of_size(nb_buf_t *b, size_t size)
{
	const char *cd = "Content-Disposition: form-data; name=a\r\n";
	nb_buf_reset(b);
	nb_buf_puts(b, "--XyZ\r\n");
	nb_buf_puts(b, cd);
	nb_buf_puts(b, "X-Pad: ");
	size_t pad = size - strlen(cd) - strlen("X-Pad: ") - 2;
	for (size_t i = 0; i < pad; i++)
		nb_buf_putc(b, 'p');
	nb_buf_puts(b, "\r\n\r\nx\r\n--XyZ--");
}

static void test_header_limit(void)
{
	nb_buf_t b = NB_BUF_INIT;
	nb_multipart_t m;
	char err[256];
	header_of_size(&b, 8192);
	CHECK_INT(parse(CT, b.data, b.len, &m, err), 0);
	CHECK(m.nparts == 1 && m.parts[0].len == 1);
	nb_multipart_dispose(&m);
	header_of_size(&b, 8193);
	expect_fail(CT, b.data, b.len, "larger than 8 KiB");
	header_of_size(&b, 100000);
	expect_fail(CT, b.data, b.len, "larger than 8 KiB");
	nb_buf_dispose(&b);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint32_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 32);
}

/* Random bytes and fragments of valid syntax; the parser must neither crash
 * nor (under ASan) read outside the body, and results must point into it. */
static void test_random_garbage(void)
{
	static const char *frags[] = {"--XyZ", "\r\n", "\n", "--", "Content-Disposition: form-data; name=",
				      "\"", "\\", ";", "filename*=UTF-8''%C3", "Content-Type: a/b", ":", " ",
				      "\r\n\r\n", "--XyZ--", "\0"};
	int ok = 0;
	for (int iter = 0; iter < 20000; iter++) {
		size_t n = rnd() % 300;
		char *body = malloc(n ? n : 1);
		for (size_t i = 0; i < n;) {
			if (rnd() % 3 == 0) {
				body[i++] = (char)rnd();
				continue;
			}
			const char *f = frags[rnd() % (sizeof frags / sizeof frags[0])];
			size_t k = f[0] ? strlen(f) : 1;
			for (size_t j = 0; j < k && i < n; j++)
				body[i++] = f[j];
		}
		nb_multipart_t m;
		char err[64];
		if (nb_multipart_parse(CT, body, n, &m, err, sizeof err) == 0) {
			ok++;
			for (int p = 0; p < m.nparts; p++)
				CHECK(m.parts[p].data >= body && m.parts[p].data + m.parts[p].len <= body + n);
		} else {
			CHECK(err[0] != '\0');
		}
		nb_multipart_dispose(&m);
		free(body);
	}
	printf("# random bodies parsed successfully: %d of 20000\n", ok);
}

static void test_large_part_is_fast(void)
{
	const size_t size = 20u * 1024 * 1024;
	nb_buf_t b = NB_BUF_INIT;
	nb_buf_puts(&b, "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n\r\n");
	size_t start = b.len;
	nb_buf_reserve(&b, size + 64);
	for (size_t i = 0; i < size; i++) /* lots of '-' and line ends, never a delimiter */
		b.data[start + i] = "ab-\r\n-X"[(i * 2654435761u >> 7) % 7];
	b.len += size;
	nb_buf_puts(&b, "\r\n--XyZ--\r\n");
	nb_multipart_t m;
	char err[256];
	double t0 = now_s();
	CHECK_INT(parse(CT, b.data, b.len, &m, err), 0);
	double dt = now_s() - t0;
	CHECK(m.nparts == 1 && m.parts[0].len == size && m.parts[0].data == b.data + start);
	CHECK_MSG(dt < 0.5, "20 MB took %.3f s", dt);
	printf("# 20 MB part parsed in %.1f ms\n", dt * 1000);
	nb_multipart_dispose(&m);

	/* adversarial: a near-miss delimiter every 9 bytes for 2 MB (512 KB under ASan) */
	nb_buf_reset(&b);
	nb_buf_puts(&b, "--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n");
	while (b.len < NEAR_MISS_BYTES)
		nb_buf_puts(&b, "\r\n--XyZx!");
	nb_buf_puts(&b, "\r\n--XyZ--");
	t0 = now_s();
	CHECK_INT(parse(CT, b.data, b.len, &m, err), 0);
	dt = now_s() - t0;
	CHECK(m.nparts == 1);
	CHECK_MSG(dt < NEAR_MISS_LIMIT_S, "near misses took %.3f s", dt);
	printf("# %u KB of near-miss delimiters parsed in %.1f ms\n", NEAR_MISS_BYTES / 1024, dt * 1000);
	nb_multipart_dispose(&m);
	nb_buf_dispose(&b);
}

int main(void)
{
	T_RUN(test_well_formed);
	T_RUN(test_quoted_boundary);
	T_RUN(test_boundary_like_data);
	T_RUN(test_nul_bytes);
	T_RUN(test_preamble_epilogue);
	T_RUN(test_lf_only);
	T_RUN(test_empty_parts);
	T_RUN(test_names_and_filenames);
	T_RUN(test_content_type_errors);
	T_RUN(test_body_errors);
	T_RUN(test_part_limit);
	T_RUN(test_header_limit);
	T_RUN(test_random_garbage);
	T_RUN(test_large_part_is_fast);
	return t_done();
}
