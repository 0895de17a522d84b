/*
 * study_guides.c — POST /v1/notebooks/{id}/study-guides, GET and DELETE
 * /v1/study-guides/{id}: the same path as quizzes (api/quizzes.c), without
 * num_questions.
 */
#include "api/app.h"
#include "store/study.h"

int nb_api_study_guide_create(nb_req_t *req)
{
	return nb_api_study_create(req, NB_STUDY_GUIDE);
}

int nb_api_study_guide_get(nb_req_t *req)
{
	return nb_api_study_get(req, NB_STUDY_GUIDE);
}

int nb_api_study_guide_delete(nb_req_t *req)
{
	return nb_api_study_delete(req, NB_STUDY_GUIDE);
}
