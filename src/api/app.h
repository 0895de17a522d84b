/*
 * app.h — the process-wide state handlers share: the database pools.
 *
 * Set up once by `serve` before the server starts; read-only afterwards.
 */
#ifndef NB_API_APP_H
#define NB_API_APP_H

#include "api/middleware.h"
#include "db/pool.h"
#include "http/router.h"

typedef struct nb_app {
	nb_pool_t *pool; /* the blocking pool of thread-pool handlers */
} nb_app_t;

extern nb_app_t nb_app;

/** The route table of the v1 API and the ops endpoints. */
const nb_route_t *nb_api_routes(int *count);

/* Handlers of src/api/health.c */
int nb_api_healthz(nb_req_t *req);
int nb_api_readyz(nb_req_t *req);
int nb_api_metrics(nb_req_t *req);
/** /metrics of `notebookd worker` (a thread handler): the queue query goes through the jobs pool. */
int nb_api_metrics_jobs(nb_req_t *req);
/** The job runners' pool, shown as pool="jobs" in /metrics (and used by nb_api_metrics_jobs). NULL: none. */
void nb_api_metrics_set_jobs_pool(nb_pool_t *pool);
/* src/api/auth.c */
int nb_api_register(nb_req_t *req);
int nb_api_login(nb_req_t *req);
int nb_api_refresh(nb_req_t *req);
int nb_api_logout(nb_req_t *req);
int nb_api_otp_request(nb_req_t *req);
int nb_api_otp_verify(nb_req_t *req);
/* src/api/me.c */
int nb_api_me_get(nb_req_t *req);
int nb_api_me_patch(nb_req_t *req);
int nb_api_me_delete(nb_req_t *req);
int nb_api_me_email_confirm(nb_req_t *req);
int nb_api_me_export(nb_req_t *req);
/* src/api/notebooks.c */
int nb_api_notebook_create(nb_req_t *req);
int nb_api_notebooks_list(nb_req_t *req);
int nb_api_notebook_get(nb_req_t *req);
int nb_api_notebook_update(nb_req_t *req);
int nb_api_notebook_delete(nb_req_t *req);
int nb_api_notebook_restore(nb_req_t *req);
/* src/api/sources.c */
int nb_api_source_create(nb_req_t *req);
int nb_api_sources_list(nb_req_t *req);
int nb_api_source_get(nb_req_t *req);
int nb_api_source_delete(nb_req_t *req);
int nb_api_source_update(nb_req_t *req);
int nb_api_source_restore(nb_req_t *req);
int nb_api_source_retry(nb_req_t *req);
int nb_api_chunks_list(nb_req_t *req);
/* src/api/search.c */
int nb_api_search(nb_req_t *req);
/* src/api/jobs.c */
int nb_api_job_get(nb_req_t *req);
int nb_api_jobs_list(nb_req_t *req);
/* src/api/conversations.c */
int nb_api_conversation_create(nb_req_t *req);
int nb_api_conversations_list(nb_req_t *req);
int nb_api_conversation_get(nb_req_t *req);
int nb_api_conversation_delete(nb_req_t *req);
int nb_api_messages_list(nb_req_t *req);
int nb_api_message_create(nb_req_t *req);
/* src/api/quizzes.c (kind: nb_study_kind_t of store/study.h; the study-guide routes share them) */
int nb_api_study_create(nb_req_t *req, int kind);
int nb_api_study_get(nb_req_t *req, int kind);
int nb_api_study_delete(nb_req_t *req, int kind);
int nb_api_quiz_create(nb_req_t *req);
int nb_api_quiz_get(nb_req_t *req);
int nb_api_quiz_delete(nb_req_t *req);
/* src/api/study_guides.c */
int nb_api_study_guide_create(nb_req_t *req);
int nb_api_study_guide_get(nb_req_t *req);
int nb_api_study_guide_delete(nb_req_t *req);
/* src/api/generations.c */
int nb_api_generations_list(nb_req_t *req);
/* src/api/debug.c (only with NOTEBOOKD_DEBUG_ROUTES=1) */
int nb_api_debug_sleep(nb_req_t *req);
int nb_api_debug_stream(nb_req_t *req);

#endif
