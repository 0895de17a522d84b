/*
 * test_title.c — unit tests of src/rag/title (default source titles) and
 * src/rag/lang (notebook languages): HTML titles come from <title>, else the
 * first heading, else the first line of text, never markup; truncation
 * never cuts a UTF-8 character; a title is always a clean label.
 */
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"
#include "rag/lang.h"
#include "rag/title.h"
#include "t.h"

static char *from(const char *kind, const char *s, size_t max)
{
	return nb_title_from_content(kind, (const unsigned char *)s, strlen(s), max);
}

static void check_title(const char *kind, const char *content, size_t max, const char *want)
{
	char *t = from(kind, content, max);
	CHECK_MSG(t && !strcmp(t, want), "%s: got [%s], want [%s]", content, t ? t : "(null)", want);
	free(t);
}

static void test_html_title(void)
{
	/* the reproduction: the default was the raw first line of markup */
	check_title("html", "<!doctype html><html><head><title>Cell  biology\n notes</title></head>"
			    "<body><h1>Chapter 1</h1><p>Text</p></body></html>",
		    80, "Cell biology notes");
	check_title("html", "<!doctype html><html><body><p>intro</p><h2>The <em>Krebs</em> cycle</h2></body></html>", 80,
		    "The Krebs cycle");
	check_title("html", "<html><body>\n\n<p>  First line of text</p><p>second</p></body></html>", 80,
		    "First line of text");
	check_title("html", "<html><head><title>   </title></head><body><h1>Heading</h1></body></html>", 80,
		    "Heading");
	check_title("html", "<html><head><script>var title = 1;</script></head><body><nav><h1>Menu</h1></nav>"
			    "<p>Body</p></body></html>",
		    80, "Body");
	CHECK(from("html", "<html><body></body></html>", 80) == NULL);
}

static void test_text_first_line(void)
{
	check_title("text", "\n\n   Photosynthesis basics  \nmore", 80, "Photosynthesis basics");
	check_title("markdown", "# Osmosis\n\nWater moves.", 80, "Osmosis");
	check_title("text", "a\tb\x01" "c", 80, "a b c");
	CHECK(from("text", " \n\t\n", 80) == NULL);
}

static void test_truncation_keeps_characters(void)
{
	/* 100 four-byte characters: 80 of them are 320 bytes; the old code cut
	 * that into a 256-byte buffer mid-character and fell back to "Untitled" */
	char s[401];
	for (int i = 0; i < 100; i++)
		memcpy(s + 4 * i, "\xF0\x9F\x98\x80", 4);
	s[400] = 0;
	char *t = from("text", s, 80);
	CHECK(t != NULL);
	if (t) {
		CHECK_INT(strlen(t), 320);
		CHECK(nb_utf8_valid(t, strlen(t)));
		CHECK_INT(nb_utf8_count(t, strlen(t)), 80);
	}
	free(t);
	/* two-byte characters cut at an odd limit */
	t = nb_title_clean("ééééé", strlen("ééééé"), false, 3);
	CHECK_STR(t, "ééé");
	free(t);
	/* a space is never the last character after a cut */
	t = nb_title_clean("ab cd", 5, false, 3);
	CHECK_STR(t, "ab");
	free(t);
}

static void test_labels_are_clean(void)
{
	/* bidi overrides are dropped, invalid bytes replaced, controls spaced */
	char *t = nb_title_clean("evil\xE2\x80\xAEgnp.exe", strlen("evil\xE2\x80\xAEgnp.exe"), false, 80);
	CHECK_STR(t, "evilgnp.exe");
	free(t);
	t = nb_title_clean("a\xFF" "b", 3, false, 80);
	CHECK(t && nb_utf8_label_ok(t, strlen(t)));
	free(t);
	t = nb_title_clean("\xE2\x80\xAE\xE2\x80\xA8 ", strlen("\xE2\x80\xAE\xE2\x80\xA8 "), false, 80);
	CHECK(t == NULL);
	free(t);
	t = nb_title_clean("http://example.com/a b", strlen("http://example.com/a b"), false, 500);
	CHECK_STR(t, "http://example.com/a b");
	free(t);
}

static void test_languages(void)
{
	CHECK(nb_lang_valid("en"));
	CHECK(nb_lang_valid("de"));
	CHECK(nb_lang_valid("ja"));
	CHECK(!nb_lang_valid("EN"));
	CHECK(!nb_lang_valid("xx"));
	CHECK(!nb_lang_valid("eng"));
	CHECK(!nb_lang_valid(""));
	CHECK(!nb_lang_valid(NULL));
	CHECK_STR(nb_lang_ts_config("en"), "english");
	CHECK_STR(nb_lang_ts_config("de"), "german");
	CHECK_STR(nb_lang_ts_config("nb"), "norwegian");
	CHECK_STR(nb_lang_ts_config("ja"), "simple");
	CHECK_STR(nb_lang_ts_config("zz"), "simple");
}

int main(void)
{
	T_RUN(test_html_title);
	T_RUN(test_text_first_line);
	T_RUN(test_truncation_keeps_characters);
	T_RUN(test_labels_are_clean);
	T_RUN(test_languages);
	return t_done();
}
