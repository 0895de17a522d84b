/*
 * router.h — routes with path parameters, 404 and 405.
 *
 * A pattern is a path whose segments are literals or {name}. A parameter
 * whose name ends in "id" must be a UUID, otherwise the path does not match
 * (so a malformed id is 404, never 500). Routing comes before
 * authentication: an unknown path is 404, a known path with another method
 * 405 with the allowed methods.
 */
#ifndef NB_HTTP_ROUTER_H
#define NB_HTTP_ROUTER_H

#include <stddef.h>

#include "http/request.h"

/** Where a handler runs. */
typedef enum nb_exec_class {
	NB_EXEC_DEFAULT = 0, /* a coroutine on the event loop; database waits yield (core/sched.h) */
	NB_EXEC_INLINE,      /* on the event loop itself, no coroutine: must never wait */
	NB_EXEC_HASH,        /* a thread of the password-hashing pool (blocking database calls) */
	NB_EXEC_STREAM,      /* a thread of the streaming pool (long answers) */
	NB_EXEC_THREAD,      /* a thread of the handler pool (CPU-heavy or blocking work) */
	NB_EXEC_CLASSES_
} nb_exec_class_t;

enum {
	NB_ROUTE_AUTH = 1 << 0,      /* requires a bearer token */
	NB_ROUTE_MULTIPART = 1 << 1, /* accepts multipart/form-data besides JSON, up to the upload limit */
	NB_ROUTE_ADMIN = 1 << 2,     /* served only on the admin listener when one is configured */
};

/** A handler fills req->resp; a negative nb_err_t return with no status set gives the standard error. */
typedef int (*nb_handler_fn)(nb_req_t *req);

typedef struct nb_route {
	const char *method;
	const char *pattern;
	nb_handler_fn fn;
	unsigned flags;
	nb_exec_class_t exec;
} nb_route_t;

typedef enum { NB_MATCH_OK, NB_MATCH_NOT_FOUND, NB_MATCH_METHOD } nb_match_t;

/**
 * Finds the route for method and path. On NB_MATCH_OK sets *route and the
 * path parameters (pointers into copies made in arena). On NB_MATCH_METHOD
 * writes the allowed methods, comma-separated, into allow.
 */
nb_match_t nb_router_match(const nb_route_t *routes, int nroutes, const char *method, const char *path,
			   nb_arena_t *arena, const nb_route_t **route, const char **params, int *nparams,
			   char *allow, size_t allowlen);

#endif
