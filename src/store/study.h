/*
 * study.h — the study aggregate: quizzes, study guides and the source guide
 * (summary, topics) of a source, with their generation records.
 *
 * Design: a quiz or study guide row is created pending by the API together
 * with its job (the caller's transaction); the job reads its inputs here
 * and writes its outcome with one transaction that replaces, never appends:
 * the resource's content and status, and its one generation record (the
 * previous record of the same target is deleted), so a job run twice leaves
 * exactly what one run leaves. Every read is scoped to the owner through the
 * notebook: a resource of another user, in the trash, or in a notebook in
 * the trash is NB_ENOTFOUND.
 */
#ifndef NB_STORE_STUDY_H
#define NB_STORE_STUDY_H

#include <jansson.h>
#include <stdbool.h>

#include "db/pool.h"
#include "store/conversations.h" /* nb_generation_rec_t */

/** What a study output is: the table it lives in and its generation kind. */
typedef enum {
	NB_STUDY_QUIZ = 0,
	NB_STUDY_GUIDE = 1,	   /* a study guide */
	NB_STUDY_SOURCE_GUIDE = 2, /* a source's summary and topics */
} nb_study_kind_t;

/**
 * Checks what a new quiz or study guide may be made from, inside the
 * caller's transaction: the notebook must be a live notebook of the owner
 * (else NB_ENOTFOUND); source_ids (a JSON array of valid UUID strings, or
 * NULL for all) are counted: *unknown gets how many are not live sources of
 * this notebook, *ready how many ready sources the selection has.
 */
int nb_store_study_check(nb_conn_t *c, const char *owner, const char *notebook_id, const json_t *source_ids,
			 int *unknown, int *ready);

/**
 * Inserts a pending quiz (kind NB_STUDY_QUIZ, num_questions 1–20) or study
 * guide (num_questions ignored). source_ids may be NULL.
 */
int nb_store_study_create(nb_conn_t *c, nb_study_kind_t kind, const char *id, const char *notebook_id,
			  const char *title, int num_questions, const json_t *source_ids);

/** One live quiz or study guide of the owner as its API JSON. */
int nb_store_study_get(nb_conn_t *c, nb_study_kind_t kind, const char *owner, const char *id, json_t **out);
/** Moves a live quiz or study guide to the trash. NB_ENOTFOUND when not visible. */
int nb_store_study_trash(nb_conn_t *c, nb_study_kind_t kind, const char *owner, const char *id);

/** What a job needs of its target. */
typedef struct nb_study_target {
	char notebook_id[37];
	char title[801];
	int num_questions;
	json_t *source_ids; /* array of ids, or NULL (owned) */
	bool gone;	    /* deleted, or (source guide) not ready: nothing to do */
} nb_study_target_t;

/** Loads a quiz, study guide or source (by id). NB_ENOTFOUND when the row does not exist. */
int nb_store_study_target(nb_conn_t *c, nb_study_kind_t kind, const char *id, nb_study_target_t *t);
/** Frees what a target holds. */
void nb_store_study_target_dispose(nb_study_target_t *t);

/**
 * The notebook's live chunks of live, ready sources, in reading order
 * (source creation, chunk index), at most limit: of the sources in
 * source_ids when not NULL, of one source when source_id is not NULL.
 * *items: array of {chunk_id, source_id, text} (owned by the caller).
 */
int nb_store_study_chunks(nb_conn_t *c, const char *notebook_id, const json_t *source_ids, const char *source_id,
			  int limit, json_t **items);

/**
 * Writes a finished output in one transaction: for a quiz `content` is the
 * questions array; for a study guide {summary, key_terms, review_questions,
 * markdown}; for a source guide {summary, topics}. Every chunk id in
 * cited_ids (JSON array) must still be a live chunk of a live, ready source,
 * else NB_ECONFLICT (the sources changed meanwhile: run again) and nothing
 * is written. Replaces the target's generation record with rec. NB_ENOTFOUND
 * when the target was deleted (or, for a source, is no longer ready).
 */
int nb_store_study_save(nb_conn_t *c, nb_study_kind_t kind, const char *id, const char *owner, const char *notebook_id,
			const json_t *content, const json_t *cited_ids, const nb_generation_rec_t *rec);

/**
 * Records a failure: a quiz or study guide becomes failed with `reason`
 * (its content emptied); a source keeps no guide. The target's generation
 * record is replaced with rec (failed). One transaction.
 */
int nb_store_study_fail(nb_conn_t *c, nb_study_kind_t kind, const char *id, const char *owner,
			const char *notebook_id, const char *reason, const nb_generation_rec_t *rec);

/** Forgets a source's guide (summary and topics NULL): its chunks are about to be replaced. */
int nb_store_source_guide_clear(nb_conn_t *c, const char *source_id);

#endif
