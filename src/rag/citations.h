/*
 * citations.h — checking that a claimed citation is exactly what it says.
 *
 * A citation names a chunk and a quote at [char_start, char_end) counted in
 * Unicode code points of the chunk's stored text. Nothing a generator claims
 * is shown unchecked: the span must lie inside the text, be non-empty, and
 * its bytes must equal the quote's. Pure functions over UTF-8 strings (no
 * database): the caller reads the stored chunk text inside the transaction
 * that stores the answer, so what is checked is what is stored.
 */
#ifndef NB_RAG_CITATIONS_H
#define NB_RAG_CITATIONS_H

#include <stdbool.h>
#include <stddef.h>

/** Why a claimed span does not check out (0: it does). */
enum {
	NB_CITE_OK = 0,
	NB_CITE_BAD_RANGE = -1, /* start < 0, end <= start, or end past the text */
	NB_CITE_MISMATCH = -2,	/* the span's text is not the quote */
	NB_CITE_BAD_UTF8 = -3,	/* the text or quote is not valid UTF-8 */
};

/**
 * Checks that quote equals text[char_start, char_end) in code points. text
 * and quote are NUL-terminated UTF-8. Returns NB_CITE_OK or the reason.
 */
int nb_cite_check(const char *text, const char *quote, long char_start, long char_end);

/**
 * Finds quote in text (the first occurrence) and writes its code-point span:
 * for a generator that quotes without offsets. 0, or -1 when the quote is
 * empty or not in the text.
 */
int nb_cite_locate(const char *text, const char *quote, long *char_start, long *char_end);

/**
 * Byte offset of code point `cp` in text[0..len) (len when cp is the end),
 * or -1 when the text has fewer code points. Invalid UTF-8 gives -1.
 */
long nb_cite_byte_offset(const char *text, size_t len, long cp);

/**
 * Rewrites the citation markers of an answer after verification: each
 * " [k]" (k from 1 to n, the k-th claimed citation) becomes " [new[k-1]]",
 * or disappears when new[k-1] is 0 (the claim was dropped). Other bracketed
 * text is kept. Returns a malloc'd string.
 */
char *nb_cite_renumber(const char *text, const int *renum, int n);

#endif
