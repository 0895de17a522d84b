/*
 * err.h — the one table of error codes.
 *
 * Functions return 0 on success or a negative nb_err_t. Each code has a
 * stable name (the JSON `error.code`), an HTTP status and a default message.
 */
#ifndef NB_CORE_ERR_H
#define NB_CORE_ERR_H

typedef enum nb_err {
	NB_OK = 0,
	NB_EBADREQ = -1,      /* 400 bad_request */
	NB_EUNAUTH = -2,      /* 401 unauthenticated */
	NB_ENOTFOUND = -3,    /* 404 not_found */
	NB_EMETHOD = -4,      /* 405 method_not_allowed */
	NB_ECONFLICT = -5,    /* 409 conflict */
	NB_ETOOLARGE = -6,    /* 413 payload_too_large */
	NB_EMEDIATYPE = -7,   /* 415 unsupported_media_type */
	NB_EINVALID = -8,     /* 422 validation_failed */
	NB_ERATELIMIT = -9,   /* 429 rate_limited */
	NB_EUNAVAIL = -10,    /* 503 unavailable */
	NB_EINTERNAL = -11,   /* 500 internal */
	NB_ETIMEOUT = -12,    /* 503 unavailable (a deadline passed) */
	NB_EDB = -13,         /* 500 internal (a database error; details logged) */
	NB_EBUSY = -14,       /* 503 unavailable (internal: every pipelined connection is held up) */
	NB_ERR_MIN_ = -15
} nb_err_t;

/** The stable code string of an error ("not_found"), "internal" for unknown. */
const char *nb_err_code(int err);
/** The HTTP status for an error. */
int nb_err_status(int err);
/** A short lower-case default message. */
const char *nb_err_message(int err);

#endif
