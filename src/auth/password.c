/*
 * password.c — Argon2id password hashing (see password.h).
 *
 * libsodium does the work; this file fixes the algorithm and parameters in
 * one place and provides the dummy verification that hides whether an
 * account exists. The dummy hash is made lazily, once (pthread_once), from a
 * random password nobody knows, with the same parameters as real hashes, so
 * verifying against it costs what a real verification costs.
 */
#include "auth/password.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t sodium_once = PTHREAD_ONCE_INIT;
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;
static char dummy_hash[crypto_pwhash_STRBYTES];
static int dummy_ok;

static void sodium_start(void)
{
	if (sodium_init() < 0) {
		fprintf(stderr, "{\"level\":\"fatal\",\"msg\":\"could not initialise libsodium\"}\n");
		abort();
	}
}

static void ensure_sodium(void)
{
	pthread_once(&sodium_once, sodium_start);
}

int nb_password_hash(const char *pw, size_t len, char out[crypto_pwhash_STRBYTES])
{
	ensure_sodium();
	if (crypto_pwhash_str_alg(out, pw, len, NB_PASSWORD_OPSLIMIT, NB_PASSWORD_MEMLIMIT,
				  crypto_pwhash_ALG_ARGON2ID13) != 0) {
		out[0] = '\0';
		return -1;
	}
	return 0;
}

int nb_password_verify(const char *encoded, const char *pw, size_t len)
{
	ensure_sodium();
	if (!encoded || !pw)
		return -1;
	/* Only our algorithm: never let a stored string pick a weaker one. */
	if (strncmp(encoded, "$argon2id$", 10) != 0)
		return -1;
	return crypto_pwhash_str_verify(encoded, pw, len) == 0 ? 0 : -1;
}

bool nb_password_needs_rehash(const char *encoded)
{
	ensure_sodium();
	if (!encoded || strncmp(encoded, "$argon2id$", 10) != 0)
		return true;
	return crypto_pwhash_str_needs_rehash(encoded, NB_PASSWORD_OPSLIMIT, NB_PASSWORD_MEMLIMIT) != 0;
}

static void make_dummy(void)
{
	unsigned char secret[32];
	char pw[sodium_base64_ENCODED_LEN(sizeof secret, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];

	randombytes_buf(secret, sizeof secret);
	sodium_bin2base64(pw, sizeof pw, secret, sizeof secret, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	dummy_ok = nb_password_hash(pw, strlen(pw), dummy_hash) == 0;
	sodium_memzero(secret, sizeof secret);
	sodium_memzero(pw, sizeof pw);
}

void nb_password_init(void)
{
	ensure_sodium();
	pthread_once(&dummy_once, make_dummy);
}

void nb_password_verify_dummy(const char *pw, size_t len)
{
	ensure_sodium();
	pthread_once(&dummy_once, make_dummy);
	if (dummy_ok) {
		(void)nb_password_verify(dummy_hash, pw, len);
	} else {
		/* Could not make the dummy (memory): spend the same time hashing. */
		char scratch[crypto_pwhash_STRBYTES];
		(void)nb_password_hash(pw, len, scratch);
	}
}
