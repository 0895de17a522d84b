/*
 * breaker.h — the process's circuit breaker around connecting to PostgreSQL.
 *
 * Design: one breaker per process (every pool, the pipelines and the job
 * workers' pools connect through src/db/pool.c, which reports each connect's
 * outcome here). After NOTEBOOKD_DB_BREAKER_FAILURES consecutive connect
 * failures it opens: for NOTEBOOKD_DB_BREAKER_OPEN_MS no connect is tried and
 * requests that need the database are answered 503 at once (with
 * Retry-After) instead of each waiting on a connect. When that time is up the
 * next connect is let through as the one half-open probe (others still fail
 * fast); its success closes the breaker, its failure opens it again. The
 * pools' own connect backoff stays: it spaces a pool's retries while the
 * breaker is still closed. Lock-free: a few atomics.
 */
#ifndef NB_DB_BREAKER_H
#define NB_DB_BREAKER_H

#include <stdbool.h>

typedef enum { NB_BREAKER_CLOSED = 0, NB_BREAKER_OPEN = 1, NB_BREAKER_HALF_OPEN = 2 } nb_breaker_state_t;

/** Sets the thresholds (from nb_cfg at start; failures <= 0 turns the breaker off). */
void nb_breaker_configure(int failures, int open_ms);

/**
 * May a connect be tried now? True when closed; when open and its time is
 * up, true once (that caller's connect is the half-open probe). Callers that
 * get true must report the outcome with nb_breaker_success/_failure.
 */
bool nb_breaker_allow_connect(void);

/**
 * Should a request needing the database be refused at once? True while open
 * (before its time is up) or half-open; *retry_s is then the seconds to put
 * in Retry-After (>= 1).
 */
bool nb_breaker_rejects(int *retry_s);

/** A connect succeeded: closes the breaker. */
void nb_breaker_success(void);
/** A connect failed: counts it; opens the breaker at the threshold, or again after a failed probe. */
void nb_breaker_failure(void);

/** The current state (for /metrics). */
nb_breaker_state_t nb_breaker_state(void);
/** How many times the breaker opened since start (for /metrics). */
long nb_breaker_opens(void);

#endif
