/*
 * otpq.c — issuing one-time codes and the request queue (see otpq.h).
 *
 * The queue is a core thread pool of two threads; each task takes a
 * connection of the blocking pool for its few statements and gives it back.
 * A full queue refuses new work instead of growing without bound. A task
 * starts no sooner than DELAY_MS after it was queued, so its work (and the
 * CPU it takes) does not overlap the answer of the request that queued it
 * but lands on whatever requests happen to run later.
 */
#include "auth/otpq.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/mail.h"
#include "auth/secret.h"
#include "auth/service.h"
#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "core/tpool.h"
#include "core/uuid.h"
#include "db/db.h"
#include "store/users.h"

#define QUEUE_MAX 4096
#define DELAY_MS 20

static nb_tpool_t *otp_pool;

typedef struct otp_task {
	nb_pool_t *pool;
	struct timespec due; /* CLOCK_MONOTONIC */
	char email[256];
	char purpose[32];
} otp_task_t;

static void send_code(const char *to, const char *purpose, const char *code)
{
	const char *what = !strcmp(purpose, "login")          ? "sign in"
			   : !strcmp(purpose, "verify_email") ? "confirm your email address"
			   : !strcmp(purpose, "change_email") ? "confirm your new email address"
							      : "reset your password";
	char subject[96], body[512];
	snprintf(subject, sizeof subject, "Your notebookd code: %s", code);
	snprintf(body, sizeof body,
		 "Your code to %s is:\n\n    %s\n\nIt expires in 10 minutes and works once.\n"
		 "If you did not ask for it, ignore this message.\n",
		 what, code);
	nb_mail_send_async(to, subject, body);
}

int nb_otp_issue(nb_conn_t *c, const char *user_id, const char *purpose, const char *to)
{
	char otp_id[37], code[7];
	unsigned char hash[32];
	size_t keylen;
	const unsigned char *key = nb_auth_key(&keylen);
	nb_uuid_v7_str(otp_id);
	nb_otp_code_new(code);
	nb_otp_hash(key, keylen, otp_id, code, hash);
	int rc = nb_store_otp_create(c, otp_id, user_id, purpose, hash, NB_OTP_TTL_S);
	if (rc == 0)
		send_code(to, purpose, code);
	sodium_memzero(code, sizeof code);
	return rc;
}

void nb_otp_notify_email_change(const char *to, const char *new_email)
{
	char body[768];
	snprintf(body, sizeof body,
		 "Someone signed in to your notebookd account asked to change its email address to\n\n"
		 "    %s\n\nThe change takes effect only when the code sent to that address is confirmed.\n"
		 "If this was not you, change your password now.\n",
		 new_email);
	nb_mail_send_async(to, "Your notebookd email address is being changed", body);
}

static void otp_task(void *arg)
{
	otp_task_t *t = arg;
	nb_conn_t *c = NULL;
	nb_user_row_t u = {0};
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t->due, NULL) == EINTR)
		;
	int rc = nb_pool_acquire(t->pool, &c);
	if (rc == 0)
		rc = nb_store_user_by_email(c, t->email, &u);
	if (rc == 0 && (rc = nb_db_begin(c)) == 0) {
		const char *to = json_string_value(json_object_get(u.json, "email"));
		if ((rc = nb_otp_issue(c, u.id, t->purpose, to ? to : t->email)) == 0)
			rc = nb_db_commit(c);
		if (rc < 0)
			nb_db_rollback(c);
	}
	if (rc < 0 && rc != NB_ENOTFOUND)
		nb_warn("one-time code request (%s) failed: %s", t->purpose, nb_err_code(rc));
	nb_user_row_dispose(&u);
	if (c)
		nb_pool_release(t->pool, c);
	sodium_memzero(t, sizeof *t);
	free(t);
}

void nb_otpq_init(void)
{
	if (!otp_pool)
		otp_pool = nb_tpool_create("otp", 2);
}

void nb_otpq_shutdown(void)
{
	nb_tpool_destroy(otp_pool);
	otp_pool = NULL;
}

int nb_otpq_request(nb_pool_t *pool, const char *email, const char *purpose)
{
	if (!otp_pool || !pool)
		return NB_EUNAVAIL;
	if (nb_tpool_queued(otp_pool) >= QUEUE_MAX)
		return NB_EUNAVAIL;
	otp_task_t *t = nb_xcalloc(1, sizeof *t);
	t->pool = pool;
	clock_gettime(CLOCK_MONOTONIC, &t->due);
	t->due.tv_nsec += DELAY_MS * 1000000L;
	if (t->due.tv_nsec >= 1000000000L) {
		t->due.tv_sec++;
		t->due.tv_nsec -= 1000000000L;
	}
	snprintf(t->email, sizeof t->email, "%s", email);
	snprintf(t->purpose, sizeof t->purpose, "%s", purpose);
	nb_tpool_submit(otp_pool, otp_task, t);
	return 0;
}
