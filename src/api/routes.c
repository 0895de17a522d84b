/*
 * routes.c — the route table: every endpoint, its handler, whether it needs
 * a token, and which pool runs it.
 */
#include "api/app.h"

nb_app_t nb_app;

static const nb_route_t routes[] = {
	{"GET", "/healthz", nb_api_healthz, 0, NB_EXEC_INLINE},
	{"GET", "/readyz", nb_api_readyz, 0, NB_EXEC_DEFAULT},
	{"GET", "/metrics", nb_api_metrics, 0, NB_EXEC_DEFAULT},
};

const nb_route_t *nb_api_routes(int *count)
{
	*count = (int)(sizeof routes / sizeof routes[0]);
	return routes;
}
