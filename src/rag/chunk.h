/*
 * chunk.h — splitting extracted text into overlapping chunks for embedding
 * and retrieval.
 *
 * A chunk is a span of the source text (byte and code point offsets), never
 * a copy, so citations can point back into the stored text exactly.
 */
#ifndef NB_RAG_CHUNK_H
#define NB_RAG_CHUNK_H

#include <stddef.h>

#include "store/chunk_span.h" /* nb_chunk_t, shared with the store */

/**
 * Splits text[0..len) (valid UTF-8) into chunks of at most target_chars code
 * points (target_chars < 1 counts as 1), consecutive chunks sharing about
 * overlap_chars code points (clamped to [0, target_chars / 2]).
 *
 * A chunk ends, by preference, at a paragraph break, a line break, a sentence
 * end (. ! ? … followed by whitespace, or CJK 。！？), whitespace, and only as
 * a last resort inside a word — never inside a code point (and, when it can,
 * not before a combining mark). Boundaries are only looked for in the second
 * half of the target length, so chunks are not tiny. Chunks never start or
 * end with whitespace; spans are strictly increasing (each chunk starts after
 * the previous one's start and ends after its end) and together cover every
 * non-whitespace character. The next chunk starts about overlap_chars before
 * the previous one's end, moved forward to a sentence or word start when one
 * is near. Time is linear in len.
 *
 * page_offsets (may be NULL) holds page_count non-decreasing code point
 * offsets where pages 1..page_count start, as nb_extract gives for PDFs; a
 * chunk's page is the last page starting at or before its char_start.
 *
 * Returns 0 with *out a malloc'd array of *n chunks (NULL when *n is 0; the
 * caller frees it). Empty or whitespace-only text gives 0 chunks. Returns
 * NB_EINVALID (negative) with *out NULL and *n 0 when text is not valid
 * UTF-8, is longer than INT_MAX bytes, or an argument is NULL.
 */
int nb_chunk_text(const char *text, size_t len, const int *page_offsets, int page_count,
		  int target_chars, int overlap_chars, nb_chunk_t **out, size_t *n);

/**
 * The token estimate used for token_count: each run of ASCII letters and
 * digits counts ceil(length / 6) tokens (common English words are one token,
 * long ones several), each other ASCII non-space character (punctuation,
 * symbols) one, each non-ASCII non-space code point one (a CJK character is
 * about one token; accented letters are over-counted, the safe side for
 * budgeting), whitespace nothing. s[0..n) is UTF-8.
 */
int nb_chunk_token_estimate(const char *s, size_t n);

#endif
