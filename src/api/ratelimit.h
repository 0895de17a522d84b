/*
 * ratelimit.h — limits for the whole API: token buckets per authenticated
 * user and per client address, per class of route, checked on the loop as
 * soon as a request's head is routed (before its body is read).
 *
 * Design: a route's class comes from its method and two route flags (one
 * table, src/api/routes.c): GET is a read, other methods writes, and a route
 * flagged NB_ROUTE_RL_UPLOAD or NB_ROUTE_RL_GENERATE counts as an upload or a
 * generation. Each class has its own rate (NOTEBOOKD_RATE_*_PER_MIN: the
 * bucket holds that many tokens and refills at that many per minute); a
 * client address gets NOTEBOOKD_RATE_IP_MULTIPLIER times the user's rate (many
 * users behind one NAT). The buckets are two limiters per class of the
 * rate-limit engine (auth/ratelimit.h), which the door limits of
 * login/OTP/register use too (and apply on top): a check costs a hash, a
 * lock and a few integer operations and the RateLimit fields formatted into
 * the answer's header buffer — no statement, no allocation.
 *
 * The client address (nb_api_client_addr) is the one place that decides who
 * a request comes from: the peer, or — only when the peer is listed in
 * NOTEBOOKD_TRUSTED_PROXIES — the right-most address of X-Forwarded-For that
 * is not itself a trusted proxy. It rewrites req->remote, which the access
 * log, the door limits and the buckets all read.
 */
#ifndef NB_API_RATELIMIT_H
#define NB_API_RATELIMIT_H

#include <stdbool.h>

#include "http/request.h"

/* Route flags the HTTP server ignores (its own use bits 0-7). */
#define NB_ROUTE_RL_UPLOAD (1u << 8)   /* counts as an upload */
#define NB_ROUTE_RL_GENERATE (1u << 9) /* counts as a generation (chat asks, quizzes, study guides) */

typedef enum { NB_RL_READ, NB_RL_WRITE, NB_RL_UPLOAD, NB_RL_GENERATE, NB_RL_CLASSES } nb_rl_class_t;

/** The class name used in the RateLimit headers and /metrics: read, write, upload, generate. */
const char *nb_api_rl_class_name(nb_rl_class_t c);

/**
 * Sets req->remote to the client's address: the peer's, or, when the peer is
 * a trusted proxy, the right-most untrusted address of X-Forwarded-For.
 */
void nb_api_client_addr(nb_req_t *req);

/**
 * Takes one token from the request's buckets (its client address, and its
 * user when user_id is not NULL). 0 when allowed, with RateLimit and
 * RateLimit-Policy added to the answer's headers (whatever its status will
 * be); otherwise NB_ERATELIMIT with the 429 answer set (Retry-After,
 * RateLimit, RateLimit-Policy).
 * Routes outside /v1/ are not limited. Thread-safe.
 */
int nb_api_ratelimit_check(nb_req_t *req, const char *user_id);

/** How many requests of class c were refused since start (for /metrics). */
long nb_api_ratelimit_rejections(nb_rl_class_t c);

/** True when addr (text) is one of NOTEBOOKD_TRUSTED_PROXIES; for tests. */
bool nb_api_trusted_proxy(const char *addr);

#endif
