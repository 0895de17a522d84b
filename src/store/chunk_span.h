/*
 * chunk_span.h — a chunk as a span of a source's extracted text: the shape
 * rag/chunk.c produces and store/sources.c writes.
 *
 * It lives in the store layer, below both, so that the store includes
 * nothing of rag/ (layers, DESIGN.md §4).
 */
#ifndef NB_STORE_CHUNK_SPAN_H
#define NB_STORE_CHUNK_SPAN_H

#include <stddef.h>

/** One chunk: a span of the text, never a copy. */
typedef struct nb_chunk {
	size_t byte_start, byte_end; /* the chunk's text is text[byte_start, byte_end) */
	int char_start, char_end;    /* the same span in code points of the whole text */
	int page;                    /* 1-based page of char_start when page offsets are given, else 0 */
	int token_count;             /* estimated LLM tokens, see nb_chunk_token_estimate */
} nb_chunk_t;

#endif
