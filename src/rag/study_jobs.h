/*
 * study_jobs.h — the jobs that make quizzes, study guides and source guides
 * (kinds generate_quiz, generate_study_guide, generate_source_guide).
 */
#ifndef NB_RAG_STUDY_JOBS_H
#define NB_RAG_STUDY_JOBS_H

#include "db/pool.h"

/** Most chunks given to one generation (the first chunks of every source first). */
#define NB_STUDY_MAX_CHUNKS 64

/** Registers the three handlers with the job queue (before workers start). */
void nb_study_register(void);

/**
 * Enqueues the source guide of a source that just became ready, on c (inside
 * the caller's transaction when one is open). 0 or a negative nb_err_t.
 */
int nb_study_enqueue_source_guide(nb_conn_t *c, const char *user_id, const char *source_id);

#endif
