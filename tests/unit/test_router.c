/*
 * test_router.c — route matching, path parameters, 404 and 405.
 */
#include <string.h>

#include "http/router.h"
#include "t.h"

static int h(nb_req_t *r)
{
	(void)r;
	return 0;
}

static const nb_route_t routes[] = {
	{"GET", "/v1/notebooks", h, 0, 0},
	{"POST", "/v1/notebooks", h, 0, 0},
	{"GET", "/v1/notebooks/{id}", h, 0, 0},
	{"PATCH", "/v1/notebooks/{id}", h, 0, 0},
	{"DELETE", "/v1/notebooks/{id}", h, 0, 0},
	{"GET", "/v1/notebooks/{id}/sources", h, 0, 0},
	{"GET", "/v1/files/{name}", h, 0, 0},
};
#define N ((int)(sizeof routes / sizeof routes[0]))

static nb_match_t match(const char *m, const char *path, const nb_route_t **r, const char **params, int *np,
			char *allow)
{
	static nb_arena_t *a;
	if (!a)
		a = nb_arena_create();
	return nb_router_match(routes, N, m, path, a, r, params, np, allow, 64);
}

static void test_literal_and_params(void)
{
	const nb_route_t *r = NULL;
	const char *p[4];
	int np = -1;
	char allow[64];
	CHECK_INT(match("GET", "/v1/notebooks", &r, p, &np, allow), NB_MATCH_OK);
	CHECK(r == &routes[0]);
	CHECK_INT(np, 0);
	CHECK_INT(match("GET", "/v1/notebooks/0193A5B0-7E1C-7ABC-8DEF-0123456789AB/sources", &r, p, &np, allow),
		  NB_MATCH_OK);
	CHECK(r == &routes[5]);
	CHECK_INT(np, 1);
	CHECK_STR(p[0], "0193a5b0-7e1c-7abc-8def-0123456789ab"); /* lower-cased */
	CHECK_INT(match("GET", "/v1/files/readme", &r, p, &np, allow), NB_MATCH_OK);
	CHECK_STR(p[0], "readme"); /* only *id parameters must be UUIDs */
}

static void test_bad_id_is_not_found(void)
{
	const nb_route_t *r = NULL;
	const char *p[4];
	int np;
	char allow[64];
	CHECK_INT(match("GET", "/v1/notebooks/123", &r, p, &np, allow), NB_MATCH_NOT_FOUND);
	CHECK_INT(match("GET", "/v1/notebooks/' OR 1=1 --", &r, p, &np, allow), NB_MATCH_NOT_FOUND);
	CHECK_INT(match("DELETE", "/v1/notebooks/0193a5b0-7e1c-7abc-8def-0123456789abc", &r, p, &np, allow),
		  NB_MATCH_NOT_FOUND);
	CHECK_INT(match("GET", "/v1/notebooks/", &r, p, &np, allow), NB_MATCH_NOT_FOUND);
	CHECK_INT(match("GET", "/v1/notebooks//sources", &r, p, &np, allow), NB_MATCH_NOT_FOUND);
	CHECK_INT(match("GET", "/v1/notebookss", &r, p, &np, allow), NB_MATCH_NOT_FOUND);
	CHECK_INT(match("GET", "", &r, p, &np, allow), NB_MATCH_NOT_FOUND);
	CHECK_INT(match("GET", "/", &r, p, &np, allow), NB_MATCH_NOT_FOUND);
}

static void test_method_not_allowed_lists_methods(void)
{
	const nb_route_t *r = NULL;
	const char *p[4];
	int np;
	char allow[64];
	CHECK_INT(match("PUT", "/v1/notebooks", &r, p, &np, allow), NB_MATCH_METHOD);
	CHECK_STR(allow, "GET, POST");
	CHECK_INT(match("POST", "/v1/notebooks/0193a5b0-7e1c-7abc-8def-0123456789ab", &r, p, &np, allow),
		  NB_MATCH_METHOD);
	CHECK_STR(allow, "GET, PATCH, DELETE");
}

int main(void)
{
	T_RUN(test_literal_and_params);
	T_RUN(test_bad_id_is_not_found);
	T_RUN(test_method_not_allowed_lists_methods);
	return t_done();
}
