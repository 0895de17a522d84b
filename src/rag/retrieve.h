/*
 * retrieve.h — chat retrieval: the chunks of a notebook that best match a
 * question and the question before it.
 *
 * DESIGN.md §6: a question is not search syntax. Its words are OR-ed (stop
 * words are dropped and words stemmed by the text-search configuration),
 * so a chunk that shares any meaningful word can be found, and ranking
 * (ts_rank_cd with length normalisation) puts the chunks sharing the most
 * first. The previous question's words are OR-ed in at half weight, which is
 * what lets "and why is that?" find what "that" was about.
 */
#ifndef NB_RAG_RETRIEVE_H
#define NB_RAG_RETRIEVE_H

#include <jansson.h>
#include <stddef.h>

#include "db/pool.h"
#include "rag/generate.h"

/** The retrieved chunks, best first; `chunks` points into `items`. */
typedef struct nb_retrieved {
	json_t *items;		/* [{chunk_id, source_id, text, score}] (owned) */
	nb_gen_chunk_t *chunks; /* n entries (owned array; strings owned by items) */
	size_t n;
} nb_retrieved_t;

/**
 * Turns free text into a websearch query that ORs its words ("a or b or c"):
 * operators and quotes of the input are not passed through. Malloc'd; an
 * empty string when the text has no word.
 */
char *nb_rag_or_query(const char *text);

/**
 * Retrieves up to limit chunks of the notebook's live, ready sources for
 * question (and prev_question, may be NULL) with the text-search config (NULL: the notebook's language).
 * 0 and *out (dispose with nb_retrieved_dispose), or a negative nb_err_t.
 */
int nb_rag_retrieve(nb_conn_t *c, const char *notebook_id, const char *config, const char *question,
		    const char *prev_question, int limit, nb_retrieved_t *out);
/** Frees what a retrieval holds. */
void nb_retrieved_dispose(nb_retrieved_t *r);

#endif
