/*
 * gen_study.h — structured study outputs: quizzes, study guides and source
 * guides, from any generator.
 *
 * Design: a generator answers with structured JSON (res.structured, or its
 * text parsed strictly when the server could not apply the schema) in which
 * every claim carries citations {chunk, quote[, char_start, char_end]},
 * chunk numbered from 1 in the request's chunks. nb_study_generate runs the
 * generator, validates the shape strictly and retries once on invalid
 * output; nb_study_verify then checks every citation against the chunk
 * texts (rag/citations), drops what does not check out (counted), drops an
 * item whose every citation was dropped, and builds the API's shape with
 * {chunk_id, source_id, quote, char_start, char_end} citations. Pure
 * functions: no database.
 */
#ifndef NB_RAG_GEN_STUDY_H
#define NB_RAG_GEN_STUDY_H

#include <jansson.h>
#include <stddef.h>

#include "rag/generate.h"

/** The JSON schema of a kind's structured output (a new reference); n: most items (quiz questions). */
json_t *nb_study_schema(nb_gen_kind_t kind, int n);
/** The instructions given to a model for a kind (static text). */
const char *nb_study_instructions(nb_gen_kind_t kind);

/**
 * Checks a structured output's shape for the kind: 0, or -1 with the first
 * problem in why ("questions[2].choices: …"). max_items bounds the quiz's
 * questions (extra questions are invalid); nchunks bounds citation numbers.
 */
int nb_study_validate(nb_gen_kind_t kind, const json_t *out, int max_items, size_t nchunks, char *why,
		      size_t whylen);

/** Runs one generation (a seam for tests: a fake generator). Fills *res like nb_gen_run. */
typedef int (*nb_study_run_fn)(void *ud, const nb_gen_request_t *req, nb_gen_result_t *res);

/**
 * Runs the generator, takes its structured output (or parses its text as a
 * JSON object), validates it; on invalid output runs it once more. 0 with
 * res->structured valid; else res->error_code (NB_GEN_EINVALID after two
 * invalid outputs, or the generator's own error) with the reason in
 * res->error. Token counts add up over the attempts; *attempts gets how many
 * runs were made.
 */
int nb_study_generate(nb_study_run_fn run, void *ud, const nb_gen_request_t *req, int max_items, nb_gen_result_t *res,
		      int *attempts);

/**
 * Verifies a valid structured output's citations against the request's
 * chunks and builds the stored content (see study.h's nb_store_study_save):
 * quiz → questions array (with `answer`); study guide → {summary, key_terms,
 * review_questions, markdown}; source guide → {summary, topics}. *cited_ids
 * gets the distinct chunk ids cited, *dropped the citations dropped. 0, or
 * -1 with the reason when nothing verifiable is left (no question; a
 * summary without a citation).
 */
int nb_study_verify(nb_gen_kind_t kind, const json_t *out, const nb_gen_chunk_t *chunks, size_t nchunks,
		    const char *title, json_t **content, json_t **cited_ids, int *dropped, char *why, size_t whylen);

/**
 * The Markdown rendering of a verified study guide: every text that comes
 * from the sources or the model is escaped (each ASCII punctuation
 * character backslash-escaped, line breaks folded), so CommonMark renders it
 * as text and never as raw HTML, a link or structure. malloc'd.
 */
char *nb_study_markdown(const char *title, const json_t *guide);

/** Escapes text for inline Markdown (see nb_study_markdown). malloc'd. */
char *nb_study_md_escape(const char *text);

/** The extractive generator's structured outputs (called by nb_gen__extractive_run). */
int nb_gen__study_extractive_run(const nb_gen_request_t *req, nb_gen_result_t *res);

#endif
