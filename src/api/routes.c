/*
 * routes.c — the route table: every endpoint, its handler, whether it needs
 * a token, and which pool runs it.
 */
#include <pthread.h>
#include <string.h>

#include "api/app.h"
#include "api/idempotency.h"
#include "api/openapi.h"
#include "api/static.h"
#include "api/ratelimit.h"
#include "api/replica.h"
#include "core/config.h"

nb_app_t nb_app;

#define AUTH NB_ROUTE_AUTH
/* rate-limit classes beyond read (GET) and write (others): src/api/ratelimit.h */
#define UPLOAD NB_ROUTE_RL_UPLOAD
#define GENERATE NB_ROUTE_RL_GENERATE
/* creates something: takes Idempotency-Key (src/api/idempotency.h) */
#define IDEM NB_ROUTE_IDEMPOTENT
/* only reads: may be served by the read replica (src/api/replica.h); never on a route that writes */
#define READ NB_ROUTE_READ

static const nb_route_t routes[] = {
	{"GET", "/healthz", nb_api_healthz, 0, NB_EXEC_INLINE},
	{"GET", "/readyz", nb_api_readyz, 0, NB_EXEC_DEFAULT},
	/* only on NOTEBOOKD_METRICS_LISTEN when that is set */
	{"GET", "/metrics", nb_api_metrics, NB_ROUTE_ADMIN, NB_EXEC_DEFAULT},
	{"GET", "/openapi.json", nb_api_openapi, 0, NB_EXEC_INLINE},
	/* the web app, compiled in */
	{"GET", "/", nb_api_static, 0, NB_EXEC_INLINE},
	{"GET", "/assets/{version}/{file}", nb_api_static, 0, NB_EXEC_INLINE},

	{"POST", "/v1/auth/register", nb_api_register, 0, NB_EXEC_HASH},
	{"POST", "/v1/auth/login", nb_api_login, 0, NB_EXEC_HASH},
	{"POST", "/v1/auth/refresh", nb_api_refresh, 0, NB_EXEC_DEFAULT},
	{"POST", "/v1/auth/logout", nb_api_logout, 0, NB_EXEC_DEFAULT},
	{"POST", "/v1/auth/otp/request", nb_api_otp_request, 0, NB_EXEC_DEFAULT},
	{"POST", "/v1/auth/otp/verify", nb_api_otp_verify, 0, NB_EXEC_HASH},

	{"GET", "/v1/me", nb_api_me_get, AUTH | READ, NB_EXEC_DEFAULT},
	{"PATCH", "/v1/me", nb_api_me_patch, AUTH, NB_EXEC_DEFAULT},
	{"DELETE", "/v1/me", nb_api_me_delete, AUTH, NB_EXEC_HASH},
	{"POST", "/v1/me/email/confirm", nb_api_me_email_confirm, AUTH, NB_EXEC_DEFAULT},
	{"GET", "/v1/me/export", nb_api_me_export, AUTH | READ, NB_EXEC_STREAM},

	{"POST", "/v1/notebooks", nb_api_notebook_create, AUTH | IDEM, NB_EXEC_DEFAULT},
	{"GET", "/v1/notebooks", nb_api_notebooks_list, AUTH | READ, NB_EXEC_DEFAULT},
	{"GET", "/v1/notebooks/{id}", nb_api_notebook_get, AUTH | READ, NB_EXEC_DEFAULT},
	{"PATCH", "/v1/notebooks/{id}", nb_api_notebook_update, AUTH, NB_EXEC_DEFAULT},
	{"DELETE", "/v1/notebooks/{id}", nb_api_notebook_delete, AUTH, NB_EXEC_DEFAULT},
	{"POST", "/v1/notebooks/{id}/restore", nb_api_notebook_restore, AUTH, NB_EXEC_DEFAULT},
	/* uploads hash and parse tens of MB: a thread, not the loop */
	{"POST", "/v1/notebooks/{id}/sources", nb_api_source_create, AUTH | NB_ROUTE_MULTIPART | UPLOAD | IDEM, NB_EXEC_THREAD},
	{"GET", "/v1/notebooks/{id}/sources", nb_api_sources_list, AUTH | READ, NB_EXEC_DEFAULT},
	{"GET", "/v1/notebooks/{id}/search", nb_api_search, AUTH | READ, NB_EXEC_DEFAULT},
	{"GET", "/v1/sources/{id}", nb_api_source_get, AUTH | READ, NB_EXEC_DEFAULT},
	{"DELETE", "/v1/sources/{id}", nb_api_source_delete, AUTH, NB_EXEC_DEFAULT},
	{"PATCH", "/v1/sources/{id}", nb_api_source_update, AUTH, NB_EXEC_DEFAULT},
	{"POST", "/v1/sources/{id}/restore", nb_api_source_restore, AUTH, NB_EXEC_DEFAULT},
	{"POST", "/v1/sources/{id}/retry", nb_api_source_retry, AUTH, NB_EXEC_DEFAULT},
	{"GET", "/v1/sources/{id}/chunks", nb_api_chunks_list, AUTH | READ, NB_EXEC_DEFAULT},
	{"GET", "/v1/jobs", nb_api_jobs_list, AUTH | READ, NB_EXEC_DEFAULT},
	{"GET", "/v1/jobs/{id}", nb_api_job_get, AUTH | READ, NB_EXEC_DEFAULT},
	{"POST", "/v1/notebooks/{id}/conversations", nb_api_conversation_create, AUTH | IDEM, NB_EXEC_DEFAULT},
	{"GET", "/v1/notebooks/{id}/conversations", nb_api_conversations_list, AUTH | READ, NB_EXEC_DEFAULT},
	{"GET", "/v1/conversations/{id}", nb_api_conversation_get, AUTH | READ, NB_EXEC_DEFAULT},
	{"DELETE", "/v1/conversations/{id}", nb_api_conversation_delete, AUTH, NB_EXEC_DEFAULT},
	{"GET", "/v1/conversations/{id}/messages", nb_api_messages_list, AUTH | READ, NB_EXEC_DEFAULT},
	/* asking: a coroutine (the extractive generator is fast; the openai one parks on the loop's curl multi) */
	{"POST", "/v1/conversations/{id}/messages", nb_api_message_create, AUTH | GENERATE | IDEM, NB_EXEC_DEFAULT},
	{"GET", "/v1/generations", nb_api_generations_list, AUTH | READ, NB_EXEC_DEFAULT},
	{"POST", "/v1/notebooks/{id}/quizzes", nb_api_quiz_create, AUTH | GENERATE | IDEM, NB_EXEC_DEFAULT},
	{"GET", "/v1/quizzes/{id}", nb_api_quiz_get, AUTH | READ, NB_EXEC_DEFAULT},
	{"DELETE", "/v1/quizzes/{id}", nb_api_quiz_delete, AUTH, NB_EXEC_DEFAULT},
	{"POST", "/v1/notebooks/{id}/study-guides", nb_api_study_guide_create, AUTH | GENERATE | IDEM, NB_EXEC_DEFAULT},
	{"GET", "/v1/study-guides/{id}", nb_api_study_guide_get, AUTH | READ, NB_EXEC_DEFAULT},
	{"DELETE", "/v1/study-guides/{id}", nb_api_study_guide_delete, AUTH, NB_EXEC_DEFAULT},
};

static const nb_route_t debug_routes[] = {
	{"GET", "/debug/sleep", nb_api_debug_sleep, 0, NB_EXEC_DEFAULT},
	{"GET", "/debug/stream", nb_api_debug_stream, 0, NB_EXEC_DEFAULT},
	/* the same as /readyz on the thread pool: the two concurrency models side by side */
	{"GET", "/debug/readyz-thread", nb_api_readyz, 0, NB_EXEC_THREAD},
};

#define NROUTES (sizeof routes / sizeof routes[0])
#define NDEBUG_ROUTES (sizeof debug_routes / sizeof debug_routes[0])

static nb_route_t table[NROUTES + NDEBUG_ROUTES];
static int table_len;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void build(void)
{
	memcpy(table, routes, sizeof routes);
	table_len = (int)NROUTES;
	if (nb_cfg.debug_routes) {
		memcpy(table + table_len, debug_routes, sizeof debug_routes);
		table_len += (int)NDEBUG_ROUTES;
	}
}

const nb_route_t *nb_api_routes(int *count)
{
	pthread_once(&once, build);
	*count = table_len;
	return table;
}
