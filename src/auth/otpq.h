/*
 * otpq.h — one-time codes: issuing them, and the request queue that keeps
 * POST /v1/auth/otp/request free of a timing oracle.
 *
 * The request handler only validates and rate-limits, hands the email to
 * this queue and answers 202: looking the account up, storing a code and
 * mailing it happen afterwards on a small thread pool with its own
 * connections, so an existing and an unknown account take the same time to
 * answer (neither touches the database on the request's path).
 */
#ifndef NB_AUTH_OTPQ_H
#define NB_AUTH_OTPQ_H

#include "db/pool.h"

/** Lifetime of a code, in seconds. */
#define NB_OTP_TTL_S 600
/** Wrong tries a code survives. */
#define NB_OTP_MAX_ATTEMPTS 5

/** Starts the queue's threads (nb_auth_init does). */
void nb_otpq_init(void);
/** Runs what is queued, then stops the threads (nb_auth_shutdown does; before the pool goes). */
void nb_otpq_shutdown(void);

/**
 * Queues "mail a code for purpose to the account with this canonical email,
 * if there is one": the work runs later on a connection from pool. Returns
 * 0, or NB_EUNAVAIL when the queue is full (a flood; nothing queued).
 */
int nb_otpq_request(nb_pool_t *pool, const char *email, const char *purpose);

/**
 * Issues a code now on c (the caller's transaction, if any): supersedes the
 * user's live codes for purpose, stores the new code's keyed hash and, once
 * that worked, queues the mail with the code to `to`. purpose: login,
 * verify_email, reset_password or change_email. 0 or a store error.
 */
int nb_otp_issue(nb_conn_t *c, const char *user_id, const char *purpose, const char *to);

/** Queues a plain notice to `to` that the account's email is being changed to new_email. */
void nb_otp_notify_email_change(const char *to, const char *new_email);

#endif
