/*
 * test_extract.c — unit tests of src/rag/extract: the normal form, Markdown,
 * HTML (including hostile markup) and PDF (generated here with cairo).
 *
 * check_normal() verifies the output rules extract.h promises for any kind;
 * the tests also compare exact text where the expected output is clear.
 */
#include <cairo-pdf.h>
#include <cairo.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/utf8.h"
#include "rag/extract.h"
#include "t.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint32_t rnd_state = 777;

static uint32_t rnd(void)
{
	rnd_state = rnd_state * 1103515245u + 12345u;
	return rnd_state >> 8;
}

/* The output rules common to every kind; returns 0 when they hold. */
static int check_normal(const nb_extracted_t *e)
{
	const char *s = e->text;
	CHECK(s != NULL && e->len > 0);
	if (!s || e->len == 0)
		return -1;
	CHECK_INT(strlen(s), e->len); /* no NUL inside */
	CHECK(nb_utf8_valid(s, e->len));
	CHECK(memcmp(s, "\xEF\xBB\xBF", e->len < 3 ? e->len : 3) != 0);
	CHECK(strchr(s, '\r') == NULL);
	CHECK(strstr(s, "\n\n\n") == NULL);
	CHECK(strstr(s, " \n") == NULL && strstr(s, "\t\n") == NULL);
	CHECK(s[0] != '\n' && s[e->len - 1] != '\n');
	CHECK(s[e->len - 1] != ' ' && s[e->len - 1] != '\t');
	return t_cur_failed ? -1 : 0;
}

/* Extracts and checks the normal form; returns the rc. */
static int run(const char *kind, const void *data, size_t len, nb_extracted_t *e, char *err,
	       size_t errlen)
{
	int rc = nb_extract(kind, data, len, e, err, errlen);
	if (rc == 0)
		check_normal(e);
	else
		CHECK(e->text == NULL && e->page_offsets == NULL && err[0] != '\0');
	return rc;
}

/* ---- text -------------------------------------------------------------- */

static void test_text_rules(void)
{
	static const char in[] = "\xEF\xBB\xBF\r\n  \n\xEF\xBB\xBFHello\0 world  \r\nline two\t\r\rpara\xFF"
				 "three\n\n\n\n\nlast   \n \n\n";
	nb_extracted_t e;
	char err[128];
	CHECK_INT(run("text", in, sizeof in - 1, &e, err, sizeof err), 0);
	CHECK_STR(e.text, "Hello world\nline two\n\npara\xEF\xBF\xBDthree\n\nlast");
	CHECK_INT(e.len, strlen(e.text));
	CHECK_INT(e.page_count, 0);
	CHECK(e.page_offsets == NULL);
	nb_extracted_dispose(&e);
	nb_extracted_dispose(&e); /* zeroed: safe twice */
	nb_extracted_dispose(NULL);
	/* Unicode spaces at line ends are trimmed too. */
	CHECK_INT(run("text", "a\xC2\xA0\n\xE3\x80\x80" "b\xE3\x80\x80", 11, &e, err, sizeof err), 0);
	CHECK_STR(e.text, "a\n\xE3\x80\x80" "b");
	nb_extracted_dispose(&e);
	/* Leading indentation is kept, only blank lines go. */
	CHECK_INT(run("text", "\n\n  indented\n", 13, &e, err, sizeof err), 0);
	CHECK_STR(e.text, "  indented");
	nb_extracted_dispose(&e);
}

static void test_text_empty(void)
{
	nb_extracted_t e;
	char err[128];
	static const char *empties[] = {"", "   \n\t\r\n", "\xEF\xBB\xBF", "\0\0\0",
					"\xC2\xA0 \xE3\x80\x80\n\v"};
	static const size_t lens[] = {0, 7, 3, 3, 8};
	for (int i = 0; i < 5; i++) {
		CHECK_INT(run("text", empties[i], lens[i], &e, err, sizeof err), -1);
		CHECK_STR(err, "no text could be extracted");
	}
	CHECK_INT(nb_extract("text", NULL, 0, &e, err, sizeof err), -1);
	CHECK_INT(nb_extract("docx", (const unsigned char *)"x", 1, &e, err, sizeof err), -1);
	CHECK_STR(err, "unsupported document type");
	CHECK_INT(nb_extract("text", (const unsigned char *)"", 0, &e, NULL, 0), -1);
	/* A short err buffer truncates the reason. */
	char tiny[6];
	CHECK_INT(nb_extract("text", (const unsigned char *)" ", 1, &e, tiny, sizeof tiny), -1);
	CHECK_STR(tiny, "no te");
}

/* ---- markdown ---------------------------------------------------------- */

static void test_markdown(void)
{
	static const char md[] =
		"# Main *Title*\n\n"
		"Some *emphasis* and **strong** and `inline code` with [link text](http://example.com/x)\n"
		"and ![alt text](img.png).\n\n"
		"- item one\n"
		"- item **two**\n"
		"  - nested\n\n"
		"3. third\n"
		"4. fourth\n\n"
		"```c\n"
		"int  main(void)\n"
		"    return 0;\n"
		"```\n\n"
		"> quoted text\n> more\n\n"
		"<div class=\"x\">html block</div>\n\n"
		"Setext heading\n--------------\n"
		"End with hard  \nbreak &amp; entity.\n";
	nb_extracted_t e;
	char err[128];
	CHECK_INT(run("markdown", md, sizeof md - 1, &e, err, sizeof err), 0);
	CHECK_STR(e.text, "Main Title\n\n"
			  "Some emphasis and strong and inline code with link text and alt text.\n\n"
			  "- item one\n"
			  "- item two\n"
			  "  - nested\n\n"
			  "3. third\n"
			  "4. fourth\n\n"
			  "int  main(void)\n"
			  "    return 0;\n\n"
			  "quoted text more\n\n"
			  "Setext heading\n\n"
			  "End with hard\nbreak & entity.");
	CHECK(strstr(e.text, "http") == NULL && strstr(e.text, "img.png") == NULL);
	CHECK(strstr(e.text, "html block") == NULL);
	nb_extracted_dispose(&e);
}

static void test_markdown_hostile(void)
{
	nb_extracted_t e;
	char err[128];
	/* Invalid UTF-8, NUL and CRLF go through the same cleaning. */
	static const char md[] = "\xEF\xBB\xBF# T\xFFitle\r\n\r\npara\0graph\r\n";
	CHECK_INT(run("markdown", md, sizeof md - 1, &e, err, sizeof err), 0);
	CHECK_STR(e.text, "T\xEF\xBF\xBDitle\n\nparagraph");
	nb_extracted_dispose(&e);
	/* Only markup, no text. */
	CHECK_INT(run("markdown", "---\n\n<!-- c -->\n", 16, &e, err, sizeof err), -1);
	CHECK_STR(err, "no text could be extracted");
	/* Deep nesting of quotes and lists. */
	nb_buf_t b = NB_BUF_INIT;
	for (int i = 0; i < 20000; i++)
		nb_buf_puts(&b, "> ");
	nb_buf_puts(&b, "deep quote\n\n");
	for (int i = 0; i < 2000; i++) {
		for (int j = 0; j < i % 300; j++)
			nb_buf_puts(&b, "  ");
		nb_buf_puts(&b, "- x\n");
	}
	double t0 = now_s();
	CHECK_INT(run("markdown", b.data, b.len, &e, err, sizeof err), 0);
	CHECK_MSG(now_s() - t0 < 15.0, "took %.2fs", now_s() - t0);
	CHECK(e.text && strstr(e.text, "deep quote") != NULL);
	nb_extracted_dispose(&e);
	nb_buf_dispose(&b);
}

/* ---- html -------------------------------------------------------------- */

static void test_html(void)
{
	static const char html[] =
		"<!DOCTYPE html><html><head><title>The &amp; Title</title>"
		"<style>body{color:red}</style><script>var x = 'script text';</script></head>"
		"<body><nav><a href=\"/\">Home nav</a></nav>"
		"<h1>Main   heading</h1>"
		"<p>First  para with &lt;tag&gt; &eacute; &#x263A; &nbsp;and <b>bold</b>text.</p>"
		"<p>Second<br>line</p>"
		"<ul><li>one</li><li>two <i>2</i></li></ul>"
		"<table><tr><th>a</th><td>b</td></tr><tr><td>c</td><td>d</td></tr></table>"
		"<pre>  x  y\n   z</pre>"
		"<form><input value=\"hidden\"><button>Click</button><textarea>typed</textarea>"
		"<select><option>opt</option></select></form>"
		"<noscript>no script</noscript><template>tmpl</template><svg><text>svg</text></svg>"
		"<iframe>frame</iframe><div>tail</div><!-- comment --></body></html>";
	nb_extracted_t e;
	char err[128];
	CHECK_INT(run("html", html, sizeof html - 1, &e, err, sizeof err), 0);
	CHECK_STR(e.text, "The & Title\n\n"
			  "Main heading\n\n"
			  "First para with <tag> \xC3\xA9 \xE2\x98\xBA and boldtext.\n\n"
			  "Second\nline\n\n"
			  "- one\n- two 2\n\n"
			  "a | b\nc | d\n\n"
			  "  x  y\n   z\n\n"
			  "tail");
	static const char *gone[] = {"script", "color", "nav", "hidden", "Click", "typed", "opt",
				     "no script", "tmpl", "svg", "frame", "comment"};
	for (size_t i = 0; i < sizeof gone / sizeof *gone; i++)
		CHECK_MSG(!e.text || !strstr(e.text, gone[i]), "\"%s\" kept", gone[i]);
	nb_extracted_dispose(&e);
}

static void test_html_encodings(void)
{
	nb_extracted_t e;
	char err[128];
	/* A declared Latin-1 document is decoded by libxml2. */
	static const char latin1[] = "<html><head><meta charset=\"iso-8859-1\"></head>"
				     "<body><p>caf\xE9</p></body></html>";
	CHECK_INT(run("html", latin1, sizeof latin1 - 1, &e, err, sizeof err), 0);
	CHECK_STR(e.text, "caf\xC3\xA9");
	nb_extracted_dispose(&e);
	/* Undeclared: UTF-8, invalid bytes replaced, NUL dropped, the rest kept. */
	static const char bad[] = "<p>na\xC3\xAFve \xFF end\0ing</p><p>\xE6\x97\xA5\xE6\x9C\xAC</p>";
	CHECK_INT(run("html", bad, sizeof bad - 1, &e, err, sizeof err), 0);
	CHECK_STR(e.text, "na\xC3\xAFve \xEF\xBF\xBD ending\n\n\xE6\x97\xA5\xE6\x9C\xAC");
	nb_extracted_dispose(&e);
	/* "charset=utf-" at the very end (fuzz_extract found it): no name is
	 * compared past the document's last byte (ASan sees a read past this
	 * exactly sized copy) */
	static const char tail[] = "<p>x</p>charset=utf-";
	char *exact = malloc(sizeof tail - 1);
	memcpy(exact, tail, sizeof tail - 1);
	CHECK_INT(run("html", exact, sizeof tail - 1, &e, err, sizeof err), 0);
	free(exact);
	nb_extracted_dispose(&e);
	/* An undecodable byte in a declared charset: libxml2 stops there, and
	 * says nothing on stderr (which carries JSON log lines only). */
	static const char eucjp[] = "<meta charset=\"euc-jp\"><p>ok \xD9\xC3\x8B\x8D\xFF\xFF end</p>";
	fflush(stderr);
	int saved = dup(2);
	FILE *tmp = tmpfile();
	dup2(fileno(tmp), 2);
	int rc = run("html", eucjp, sizeof eucjp - 1, &e, err, sizeof err);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	CHECK_INT(rc, 0);
	CHECK(rc != 0 || strncmp(e.text, "ok", 2) == 0);
	CHECK_INT(lseek(fileno(tmp), 0, SEEK_END), 0); /* bytes written to fd 2 */
	fclose(tmp);
	nb_extracted_dispose(&e);
	/* Markup only. */
	CHECK_INT(run("html", "<html><script>x</script></html>", 31, &e, err, sizeof err), -1);
	CHECK_STR(err, "no text could be extracted");
}

static void test_html_huge_tag(void)
{
	nb_buf_t b = NB_BUF_INIT;
	nb_extracted_t e;
	char err[128];
	size_t big = 5 * 1024 * 1024;
	const char *variants[] = {"<div ", "<div title=\"", "<", "<!--", "<p>x</p><a href='"};
	for (size_t v = 0; v < sizeof variants / sizeof *variants; v++) {
		nb_buf_reset(&b);
		nb_buf_puts(&b, "<p>before</p>");
		nb_buf_puts(&b, variants[v]);
		nb_buf_reserve(&b, big);
		for (size_t i = 0; i < big; i++)
			b.data[b.len++] = (char)("abc= \"'x"[i % 8]);
		nb_buf_puts(&b, "\">after</div>");
		double t0 = now_s();
		int rc = run("html", b.data, b.len, &e, err, sizeof err);
		double dt = now_s() - t0;
		CHECK_MSG(dt < 15.0, "variant %zu took %.2fs", v, dt);
		CHECK_MSG(rc == 0 && strncmp(e.text, "before", 6) == 0, "variant %zu", v);
		nb_extracted_dispose(&e);
	}
	nb_buf_dispose(&b);
}

static void test_html_deep_nesting(void)
{
	nb_buf_t b = NB_BUF_INIT;
	nb_extracted_t e;
	char err[128];
	/* Within libxml2's depth limit (256) all text survives. */
	for (int i = 0; i < 100; i++)
		nb_buf_puts(&b, "<div><b>");
	nb_buf_puts(&b, "deep text");
	for (int i = 0; i < 100; i++)
		nb_buf_puts(&b, "</b></div>");
	nb_buf_puts(&b, "<p>after</p>");
	CHECK_INT(run("html", b.data, b.len, &e, err, sizeof err), 0);
	CHECK_STR(e.text, "deep text\n\nafter");
	nb_extracted_dispose(&e);
	/* 100k levels, closed, unclosed, and with stray end tags: no crash, no hang. */
	static const char *open[] = {"<div>", "<span>", "<table><tr><td>", "<li>", "<p><b>"};
	for (size_t v = 0; v < sizeof open / sizeof *open; v++) {
		nb_buf_reset(&b);
		nb_buf_puts(&b, "<p>start</p>");
		for (int i = 0; i < 100000; i++)
			nb_buf_puts(&b, open[v]);
		nb_buf_puts(&b, "deep");
		for (int i = 0; i < 100000; i++)
			nb_buf_puts(&b, v % 2 ? "</i>" : "</div>");
		double t0 = now_s();
		int rc = run("html", b.data, b.len, &e, err, sizeof err);
		double dt = now_s() - t0;
		CHECK_MSG(dt < 15.0, "variant %zu took %.2fs", v, dt);
		CHECK_MSG(rc == 0 && strncmp(e.text, "start", 5) == 0, "variant %zu", v);
		nb_extracted_dispose(&e);
	}
	nb_buf_dispose(&b);
}

static void test_html_garbage(void)
{
	nb_buf_t b = NB_BUF_INIT;
	nb_extracted_t e;
	char err[128];
	static const char alphabet[] = "<>/=\"'&;#!- \n\tabcdefxyzp\0\xFF\xC3\xA9\xE2\x82\xAC";
	for (int round = 0; round < 200; round++) {
		nb_buf_reset(&b);
		size_t n = rnd() % 4000;
		for (size_t i = 0; i < n; i++)
			nb_buf_putc(&b, round % 2 ? (char)rnd()
						   : alphabet[rnd() % (sizeof alphabet - 1)]);
		int rc = run("html", b.data, b.len, &e, err, sizeof err);
		CHECK(rc == 0 || rc == -1);
		nb_extracted_dispose(&e);
		rc = run("markdown", b.data, b.len, &e, err, sizeof err);
		nb_extracted_dispose(&e);
		rc = run("text", b.data, b.len, &e, err, sizeof err);
		nb_extracted_dispose(&e);
	}
	nb_buf_dispose(&b);
}

/* ---- pdf --------------------------------------------------------------- */

static cairo_status_t pdf_write(void *closure, const unsigned char *data, unsigned int len)
{
	nb_buf_append(closure, data, len);
	return CAIRO_STATUS_SUCCESS;
}

/* A PDF whose page i shows the lines of pages[i] ('\n'-separated; NULL: empty,
 * "#rect": only a filled rectangle). */
static void make_pdf(nb_buf_t *out, const char *const *pages, int n)
{
	cairo_surface_t *sf = cairo_pdf_surface_create_for_stream(pdf_write, out, 595, 842);
	cairo_t *cr = cairo_create(sf);
	cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
	cairo_set_font_size(cr, 14);
	for (int i = 0; i < n; i++) {
		if (pages[i] && strcmp(pages[i], "#rect") == 0) {
			cairo_rectangle(cr, 100, 100, 200, 150);
			cairo_fill(cr);
		} else if (pages[i]) {
			char line[256];
			const char *p = pages[i];
			for (double y = 100; *p; y += 24) {
				size_t l = strcspn(p, "\n");
				snprintf(line, sizeof line, "%.*s", (int)l, p);
				cairo_move_to(cr, 72, y);
				cairo_show_text(cr, line);
				p += l + (p[l] == '\n');
			}
		}
		cairo_show_page(cr);
	}
	cairo_destroy(cr);
	cairo_surface_finish(sf);
	cairo_surface_destroy(sf);
}

static void test_pdf_pages(void)
{
	static const char *const pages[] = {"Hello page one", NULL, "Third page text\nsecond line",
					    "D\xC3\xA9j\xC3\xA0 vu"};
	nb_buf_t pdf = NB_BUF_INIT;
	make_pdf(&pdf, pages, 4);
	CHECK(pdf.len > 100 && memcmp(pdf.data, "%PDF-", 5) == 0);
	nb_extracted_t e;
	char err[128];
	CHECK_INT(run("pdf", pdf.data, pdf.len, &e, err, sizeof err), 0);
	CHECK_STR(e.text, "Hello page one\n\nThird page text\nsecond line\n\nD\xC3\xA9j\xC3\xA0 vu");
	CHECK_INT(e.page_count, 4);
	CHECK(e.page_offsets != NULL);
	if (e.page_offsets && e.page_count == 4) {
		CHECK_INT(e.page_offsets[0], 0);
		CHECK_INT(e.page_offsets[1], 16); /* empty: where the next text starts */
		CHECK_INT(e.page_offsets[2], 16);
		CHECK_INT(e.page_offsets[3], 16 + 27 + 2);
		CHECK(strncmp(e.text + 16, "Third", 5) == 0);
	}
	nb_extracted_dispose(&e);
	/* An empty last page gets the text's length. */
	static const char *const two[] = {"Only text", NULL};
	nb_buf_reset(&pdf);
	make_pdf(&pdf, two, 2);
	CHECK_INT(run("pdf", pdf.data, pdf.len, &e, err, sizeof err), 0);
	CHECK_STR(e.text, "Only text");
	CHECK(e.page_count == 2 && e.page_offsets && e.page_offsets[1] == 9);
	nb_extracted_dispose(&e);
	nb_buf_dispose(&pdf);
}

static void test_pdf_no_text(void)
{
	static const char *const pages[] = {"#rect", NULL};
	nb_buf_t pdf = NB_BUF_INIT;
	make_pdf(&pdf, pages, 2);
	nb_extracted_t e;
	char err[128];
	CHECK_INT(run("pdf", pdf.data, pdf.len, &e, err, sizeof err), -1);
	CHECK_STR(err, "the PDF has no extractable text");
	nb_buf_dispose(&pdf);
}

static void test_pdf_corrupt(void)
{
	static const char *const pages[] = {"Some text on a page"};
	nb_buf_t pdf = NB_BUF_INIT;
	make_pdf(&pdf, pages, 1);
	nb_extracted_t e;
	char err[128];
	/* Truncated after the header. */
	CHECK_INT(run("pdf", pdf.data, 60, &e, err, sizeof err), -1);
	CHECK_STR(err, "could not read PDF: file is damaged");
	/* Truncated at every tenth of its length: never a crash, text only if rc is 0. */
	for (int k = 1; k < 10; k++) {
		int rc = run("pdf", pdf.data, pdf.len * (size_t)k / 10, &e, err, sizeof err);
		CHECK(rc == 0 || strncmp(err, "could not read PDF", 18) == 0 ||
		      strcmp(err, "the PDF has no extractable text") == 0);
		nb_extracted_dispose(&e);
	}
	/* Random bytes, with and without a PDF header. */
	nb_buf_t junk = NB_BUF_INIT;
	for (int i = 0; i < 5000; i++)
		nb_buf_putc(&junk, (char)rnd());
	CHECK_INT(run("pdf", junk.data, junk.len, &e, err, sizeof err), -1);
	CHECK_STR(err, "could not read PDF: not a PDF file");
	memcpy(junk.data, "%PDF-1.7\n", 9);
	CHECK_INT(run("pdf", junk.data, junk.len, &e, err, sizeof err), -1);
	CHECK_STR(err, "could not read PDF: file is damaged");
	CHECK_INT(run("pdf", "", 0, &e, err, sizeof err), -1);
	CHECK_STR(err, "could not read PDF: not a PDF file");
	nb_buf_dispose(&junk);
	nb_buf_dispose(&pdf);
}

/* A one-page PDF with a standard security handler whose (wrong) /U entry
 * rejects the empty user password: poppler asks for a password. */
static void make_encrypted_pdf(nb_buf_t *b)
{
	static const char *const objs[] = {
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
		"<< /Filter /Standard /V 1 /R 2 /P -44 "
		"/O <0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef> "
		"/U <fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210> >>",
	};
	size_t offs[4];
	nb_buf_puts(b, "%PDF-1.4\n");
	for (int i = 0; i < 4; i++) {
		offs[i] = b->len;
		nb_buf_printf(b, "%d 0 obj\n%s\nendobj\n", i + 1, objs[i]);
	}
	size_t xref = b->len;
	nb_buf_puts(b, "xref\n0 5\n0000000000 65535 f \n");
	for (int i = 0; i < 4; i++)
		nb_buf_printf(b, "%010zu 00000 n \n", offs[i]);
	nb_buf_printf(b, "trailer\n<< /Size 5 /Root 1 0 R /Encrypt 4 0 R /ID "
			 "[<00112233445566778899aabbccddeeff><00112233445566778899aabbccddeeff>] >>\n"
			 "startxref\n%zu\n%%%%EOF\n",
		      xref);
}

static void test_pdf_encrypted(void)
{
	nb_buf_t pdf = NB_BUF_INIT;
	make_encrypted_pdf(&pdf);
	nb_extracted_t e;
	char err[128];
	CHECK_INT(run("pdf", pdf.data, pdf.len, &e, err, sizeof err), -1);
	CHECK_STR(err, "could not read PDF: file is password-protected");
	nb_buf_dispose(&pdf);
}

/* Under LeakSanitizer: cairo's toy fonts leave fontconfig's caches allocated
 * at exit; that is the test's PDF generator, not the code under test. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libfontconfig.so\n";
}

int main(void)
{
	T_RUN(test_text_rules);
	T_RUN(test_text_empty);
	T_RUN(test_markdown);
	T_RUN(test_markdown_hostile);
	T_RUN(test_html);
	T_RUN(test_html_encodings);
	T_RUN(test_html_huge_tag);
	T_RUN(test_html_deep_nesting);
	T_RUN(test_html_garbage);
	T_RUN(test_pdf_pages);
	T_RUN(test_pdf_no_text);
	T_RUN(test_pdf_corrupt);
	T_RUN(test_pdf_encrypted);
	cairo_debug_reset_static_data();
	return t_done();
}
