/*
 * router.c — linear route matching (see router.h).
 *
 * A few dozen routes: a linear scan over pre-split patterns is faster than
 * any tree at this size and has no state to build.
 */
#include "http/router.h"

#include <stdbool.h>
#include <string.h>

#include "core/uuid.h"

/*
 * Matches one pattern against a path. Fills params (arena copies) on success.
 */
static bool match_one(const char *pattern, const char *path, nb_arena_t *a, const char **params, int *nparams)
{
	const char *p = pattern, *s = path;
	int n = 0;
	while (*p && *s) {
		if (*p != '/' || *s != '/')
			return false;
		p++;
		s++;
		const char *pe = strchr(p, '/');
		const char *se = strchr(s, '/');
		size_t plen = pe ? (size_t)(pe - p) : strlen(p);
		size_t slen = se ? (size_t)(se - s) : strlen(s);
		if (plen >= 2 && p[0] == '{' && p[plen - 1] == '}') {
			if (slen == 0 || n >= NB_MAX_PATH_PARAMS)
				return false;
			bool is_id = plen >= 4 && p[plen - 3] == 'i' && p[plen - 2] == 'd';
			char *val = nb_arena_strndup(a, s, slen);
			if (is_id && !nb_uuid_valid(val))
				return false;
			if (is_id) /* ids are answered in lowercase; compare them so too */
				for (char *c = val; *c; c++)
					if (*c >= 'A' && *c <= 'F')
						*c = (char)(*c - 'A' + 'a');
			params[n++] = val;
		} else if (plen != slen || memcmp(p, s, plen) != 0) {
			return false;
		}
		p += plen;
		s += slen;
	}
	if (*p || *s)
		return false;
	*nparams = n;
	return true;
}

nb_match_t nb_router_match(const nb_route_t *routes, int nroutes, const char *method, const char *path,
			   nb_arena_t *arena, const nb_route_t **route, const char **params, int *nparams,
			   char *allow, size_t allowlen)
{
	bool path_known = false;
	size_t alen = 0;
	if (allowlen)
		allow[0] = '\0';
	for (int i = 0; i < nroutes; i++) {
		const char *tmp[NB_MAX_PATH_PARAMS];
		int n = 0;
		if (!match_one(routes[i].pattern, path, arena, tmp, &n))
			continue;
		if (strcmp(routes[i].method, method) == 0) {
			*route = &routes[i];
			memcpy(params, tmp, sizeof(tmp[0]) * (size_t)n);
			*nparams = n;
			return NB_MATCH_OK;
		}
		path_known = true;
		size_t ml = strlen(routes[i].method);
		if (alen + ml + 3 < allowlen && !strstr(allow, routes[i].method)) {
			if (alen) {
				memcpy(allow + alen, ", ", 2);
				alen += 2;
			}
			memcpy(allow + alen, routes[i].method, ml + 1);
			alen += ml;
		}
	}
	return path_known ? NB_MATCH_METHOD : NB_MATCH_NOT_FOUND;
}
