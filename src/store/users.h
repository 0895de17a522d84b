/*
 * users.h — the users aggregate: accounts, refresh-token families and
 * one-time codes. All SQL of authentication lives in users.c.
 *
 * Functions take a connection from the caller (who owns transactions) and
 * return 0 or a negative nb_err_t: NB_ENOTFOUND, NB_ECONFLICT (email taken),
 * NB_EUNAVAIL (connection lost), NB_EDB (anything else, logged).
 * JSON results are jansson objects in the API's shapes; the caller owns them.
 */
#ifndef NB_STORE_USERS_H
#define NB_STORE_USERS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "db/pool.h"

/** A user row as the auth service needs it. */
typedef struct nb_user_row {
	char id[37];
	char password_hash[160];
	json_t *json; /* {id, email, pending_email, display_name, email_verified_at, created_at, updated_at}; owned */
} nb_user_row_t;

/** Releases row->json. Accepts NULL. */
void nb_user_row_dispose(nb_user_row_t *row);

/*
 * Emails given to these functions are canonical (nb_email_normalize); they
 * are compared through the unique index on lower(email).
 */

/** Inserts a user. NB_ECONFLICT when the email is taken. */
int nb_store_user_create(nb_conn_t *c, const char *id, const char *email, const char *password_hash,
			 const char *display_name, nb_user_row_t *out);
/** A live user by email (case-insensitive). NB_ENOTFOUND if none. */
int nb_store_user_by_email(nb_conn_t *c, const char *email, nb_user_row_t *out);
/** A live user by id. NB_ENOTFOUND if none. */
int nb_store_user_by_id(nb_conn_t *c, const char *id, nb_user_row_t *out);
/** True (1) when a live user with this id exists, 0 if not, or a negative error. */
int nb_store_user_exists(nb_conn_t *c, const char *id);
/**
 * 1 when a live account other than except_id (NULL: any) has this email,
 * 0 if none, or a negative error. Lets register answer 409 before hashing.
 */
int nb_store_user_email_taken(nb_conn_t *c, const char *email, const char *except_id);
/**
 * Updates display name (set_name: NULL clears it) and/or the pending email
 * (NULL keeps it; the account's own email clears it; any other becomes
 * pending_email until nb_store_user_confirm_email). The email itself does
 * not change here.
 */
int nb_store_user_update(nb_conn_t *c, const char *id, bool set_name, const char *display_name, const char *email,
			 nb_user_row_t *out);
/**
 * Makes the pending email the account's email, verified now, and clears
 * pending_email. NB_ENOTFOUND when nothing is pending, NB_ECONFLICT when the
 * address was taken meanwhile.
 */
int nb_store_user_confirm_email(nb_conn_t *c, const char *id, nb_user_row_t *out);
/** Replaces the password hash. */
int nb_store_user_set_password(nb_conn_t *c, const char *id, const char *password_hash);
/** Sets email_verified_at = now() (if not yet set). */
int nb_store_user_mark_verified(nb_conn_t *c, const char *id);
/**
 * Erases the user and everything the user owns (ON DELETE CASCADE). NB_ENOTFOUND if gone.
 * Notifies nb_user_erased (at commit) and drops the id from this process's user cache.
 */
int nb_store_user_erase(nb_conn_t *c, const char *id);

/* Refresh tokens: only SHA-256 hashes are stored. */

/** Starts a new family (a login) with its first token. */
int nb_store_refresh_create(nb_conn_t *c, const char *user_id, const unsigned char hash[32], int ttl_s);
/**
 * Spends the token with this hash and issues its successor in one statement:
 * the old row is revoked and points at the new one. Writes the owner into
 * user_id. NB_EUNAUTH when the token is unknown, expired, revoked, spent, or
 * its family has outlived absolute_ttl_s; a spent token (reuse) also revokes
 * its whole family.
 */
int nb_store_refresh_rotate(nb_conn_t *c, const unsigned char old_hash[32], const unsigned char new_hash[32],
			    int ttl_s, int absolute_ttl_s, char user_id[37]);
/** Revokes the family of the token with this hash (no error if unknown). */
int nb_store_refresh_revoke_family(nb_conn_t *c, const unsigned char hash[32]);
/** Revokes every family of a user (password reset). */
int nb_store_refresh_revoke_user(nb_conn_t *c, const char *user_id);

/* One-time codes. */

/** Supersedes the user's live codes for purpose and stores a new one (id and keyed hash given). */
int nb_store_otp_create(nb_conn_t *c, const char *otp_id, const char *user_id, const char *purpose,
			const unsigned char code_hash[32], int ttl_s);
/**
 * Counts one attempt on the user's newest live code for purpose, atomically,
 * provided it has not expired and fewer than max_attempts were made. Writes
 * its id and stored hash. NB_EUNAUTH when there is no such code.
 */
int nb_store_otp_attempt(nb_conn_t *c, const char *user_id, const char *purpose, int max_attempts,
			 char otp_id[37], unsigned char code_hash[32]);
/**
 * The same for the account with this email, in one statement (equal work
 * whether or not the account exists). Writes the owner into user_id too.
 * NB_EUNAUTH when there is no such account or code.
 */
int nb_store_otp_attempt_by_email(nb_conn_t *c, const char *email, const char *purpose, int max_attempts,
				  char user_id[37], char otp_id[37], unsigned char code_hash[32]);
/**
 * In the caller's open transaction: its commit does not wait for the WAL
 * flush (SET LOCAL synchronous_commit = off), so a transaction that wrote
 * (a counted attempt) commits in the time of one that did not. A crash may
 * forget the last fraction of a second of such commits.
 */
int nb_store_txn_async_commit(nb_conn_t *c);
/** Marks the code used; NB_EUNAUTH if it was used meanwhile (single use under races). */
int nb_store_otp_consume(nb_conn_t *c, const char *otp_id);

#endif
