/*
 * extract.h — plain text out of uploaded documents (text, Markdown, HTML, PDF).
 *
 * Every kind ends in the same normal form, so that the chunker and the
 * citations see one shape of text: valid UTF-8 (invalid bytes become U+FFFD),
 * no NUL byte (PostgreSQL text cannot hold one), no BOM (U+FEFF is dropped
 * wherever it is, as files are often concatenated with theirs), LF line ends,
 * no trailing spaces on a line, paragraphs separated by exactly one blank
 * line, no blank line at the start or the end.
 */
#ifndef NB_RAG_EXTRACT_H
#define NB_RAG_EXTRACT_H

#include <stddef.h>

typedef struct nb_extracted {
	char *text;        /* owned (free()), NUL-terminated, valid UTF-8, holds no NUL byte */
	size_t len;        /* bytes, without the terminating NUL */
	int page_count;    /* PDF: number of pages; other kinds: 0 */
	int *page_offsets; /* PDF: page_count entries, the code point offset in text where
	                      page i+1 starts (an empty page gets the offset of the next
	                      text, or the text's length); other kinds: NULL. owned */
} nb_extracted_t;

/**
 * Extracts the text of a document of the given kind: "text", "markdown",
 * "html" or "pdf". data[0..len) is the raw file and is not kept.
 *
 * Returns 0 and fills *out (release it with nb_extracted_dispose), or -1 and
 * writes a short lower-case reason meant for the end user into err (at most
 * errlen bytes, NUL-terminated; err may be NULL), e.g. "no text could be
 * extracted" or "could not read PDF: file is damaged". *out is zeroed on
 * failure. Never crashes on any input; the details of a parser failure go to
 * the log, not into err.
 */
int nb_extract(const char *kind, const unsigned char *data, size_t len, nb_extracted_t *out,
	       char *err, size_t errlen);

/** Frees the text and page offsets of e and zeroes it. Accepts NULL. */
void nb_extracted_dispose(nb_extracted_t *e);
/** The media type a document of this kind is stored under ("text/plain" for unknown kinds). */
const char *nb_extract_mime_for_kind(const char *kind);
/** The kind to extract a stored document as, from its media type (fallback when NULL). */
const char *nb_extract_kind_for_mime(const char *mime, const char *fallback);

/** How much of an HTML document nb_extract_html_title reads: its start. */
#define NB_HTML_TITLE_SCAN ((size_t)256 * 1024)

/**
 * The title of an HTML document: its <title>, else its first heading
 * (h1–h6), whitespace collapsed; malloc'd, valid UTF-8 (control characters
 * may remain: the caller cleans a title up), or NULL when it has neither.
 * Reads the first NB_HTML_TITLE_SCAN bytes. Thread-safe.
 */
char *nb_extract_html_title(const unsigned char *data, size_t len);

#endif
