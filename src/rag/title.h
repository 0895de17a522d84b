/*
 * title.h — default titles for sources: a one-line label made from text the
 * user did not write as a title (a first line, a page's <title>, a URL, a
 * file name).
 *
 * The result always passes nb_utf8_label_ok (or is NULL): controls and line
 * or paragraph separators become spaces, bidirectional controls are
 * dropped, whitespace runs collapse, and it is cut after whole code points,
 * never inside a UTF-8 sequence.
 */
#ifndef NB_RAG_TITLE_H
#define NB_RAG_TITLE_H

#include <stdbool.h>
#include <stddef.h>

/** The longest source title (code points; the sources table's CHECK). */
#define NB_SOURCE_TITLE_MAX 500

/**
 * A title from s[0..n) (invalid UTF-8 bytes become U+FFFD): with
 * first_line, only its first line that is not blank (leading Markdown '#'
 * marks dropped); at most max_cp code points. malloc'd, or NULL when
 * nothing printable is left.
 */
char *nb_title_clean(const char *s, size_t n, bool first_line, size_t max_cp);

/**
 * The default title of a source of this kind ("text", "markdown", "html")
 * from its content: for HTML the document's <title>, else its first
 * heading, else the first line of its text; for the others the first line.
 * malloc'd, or NULL when there is none. Reads at most the first 256 KiB.
 */
char *nb_title_from_content(const char *kind, const unsigned char *data, size_t len, size_t max_cp);

#endif
