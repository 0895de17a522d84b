/*
 * err.c — the error table (see err.h).
 */
#include "core/err.h"

static const struct {
	const char *code;
	int status;
	const char *message;
} table[] = {
	[0] = {"ok", 200, "ok"},
	[1] = {"bad_request", 400, "malformed request"},
	[2] = {"unauthenticated", 401, "authentication required"},
	[3] = {"not_found", 404, "not found"},
	[4] = {"method_not_allowed", 405, "method not allowed"},
	[5] = {"conflict", 409, "conflict"},
	[6] = {"payload_too_large", 413, "request body too large"},
	[7] = {"unsupported_media_type", 415, "unsupported media type"},
	[8] = {"validation_failed", 422, "validation failed"},
	[9] = {"rate_limited", 429, "too many requests"},
	[10] = {"unavailable", 503, "service unavailable"},
	[11] = {"internal", 500, "internal error"},
	[12] = {"unavailable", 503, "request timed out"},
	[13] = {"internal", 500, "internal error"},
	[14] = {"unavailable", 503, "service busy"},
};

static int idx(int err)
{
	if (err > 0 || err <= NB_ERR_MIN_)
		return 11;
	return -err;
}

const char *nb_err_code(int err)
{
	return table[idx(err)].code;
}

int nb_err_status(int err)
{
	return table[idx(err)].status;
}

const char *nb_err_message(int err)
{
	return table[idx(err)].message;
}
