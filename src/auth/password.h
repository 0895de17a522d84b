/*
 * password.h — password hashing with Argon2id (libsodium crypto_pwhash).
 *
 * Parameters follow the OWASP Password Storage Cheat Sheet minimum for
 * Argon2id: m = 19 MiB, t = 2, p = 1 (libsodium always uses p = 1). Hashes
 * are stored in the self-describing PHC string form
 * "$argon2id$v=19$m=19456,t=2,p=1$salt$hash", so raising the parameters later
 * only needs nb_password_needs_rehash at the next successful login.
 *
 * Every function is thread-safe. Hashing and verifying are deliberately slow
 * (tens to hundreds of milliseconds) and use 19 MiB each: run them on a
 * bounded worker pool, never on an I/O thread.
 */
#ifndef NB_AUTH_PASSWORD_H
#define NB_AUTH_PASSWORD_H

#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>

/** Argon2id passes (t). */
#define NB_PASSWORD_OPSLIMIT 2
/** Argon2id memory in bytes (m = 19 MiB = 19456 KiB). */
#define NB_PASSWORD_MEMLIMIT ((size_t)19 * 1024 * 1024)
/** Size of the buffer that receives an encoded hash (NUL included). */
#define NB_PASSWORD_HASH_MAX crypto_pwhash_STRBYTES

/**
 * Initialises libsodium and makes the dummy hash now rather than on the first
 * nb_password_verify_dummy (whose first call would otherwise take twice as
 * long). Optional; call once at startup. Thread-safe and idempotent.
 */
void nb_password_init(void);

/**
 * Hashes pw[0..len) with a fresh random salt into out as a NUL-terminated
 * PHC string. Returns 0, or -1 if libsodium fails (the 19 MiB could not be
 * allocated, or len exceeds crypto_pwhash_PASSWD_MAX); out is then "".
 */
int nb_password_hash(const char *pw, size_t len, char out[crypto_pwhash_STRBYTES]);

/**
 * Checks pw[0..len) against an encoded hash (NUL-terminated, as stored).
 * Returns 0 on a match, -1 on a mismatch, a malformed hash or any failure.
 * Takes the full hashing time whether or not it matches.
 */
int nb_password_verify(const char *encoded, const char *pw, size_t len);

/**
 * True if encoded was not made by Argon2id with the current parameters (or is
 * not a valid hash at all): the caller should rehash the password it has just
 * verified and store the new hash.
 */
bool nb_password_needs_rehash(const char *encoded);

/**
 * Does the work of one nb_password_verify against a dummy hash made once per
 * process, and throws the result away. Call it when the account does not
 * exist so that "unknown email" and "wrong password" take the same time
 * (ASVS 6.3.8).
 */
void nb_password_verify_dummy(const char *pw, size_t len);

#endif
