/*
 * secret.h — opaque refresh tokens and one-time codes.
 *
 * Neither is ever stored: the database keeps only a hash. A refresh token
 * carries 256 random bits, so a plain SHA-256 of it is enough (nothing to
 * brute-force). A one-time code has only 10^6 values, so its hash is keyed
 * (HMAC-SHA256 with a server secret) and bound to the row id: a leaked
 * database alone does not reveal the codes, and a hash cannot be replayed on
 * another row.
 */
#ifndef NB_AUTH_SECRET_H
#define NB_AUTH_SECRET_H

#include <stddef.h>

/** Length of a refresh token string: base64url of 32 bytes, no padding. */
#define NB_REFRESH_TOKEN_LEN 43
/** Length of a one-time code: six decimal digits. */
#define NB_OTP_CODE_LEN 6
/** Size of every hash produced here (SHA-256 / HMAC-SHA256). */
#define NB_SECRET_HASH_LEN 32

/**
 * Makes a new refresh token: 32 random bytes as 43 base64url characters plus
 * a NUL in token, and hash = SHA-256 of that token string (what the database
 * stores). Never fails.
 */
void nb_refresh_token_new(char token[64], unsigned char hash[32]);

/**
 * Hashes a presented refresh token token[0..len) like nb_refresh_token_new.
 * Returns 0, or -1 (hash untouched) if the token is not exactly 43 strictly
 * valid base64url characters — so garbage never reaches the database.
 */
int nb_refresh_token_hash(const char *token, size_t len, unsigned char hash[32]);

/** Makes a one-time code: six uniformly random digits ("004217") and a NUL. */
void nb_otp_code_new(char code[7]);

/**
 * Computes HMAC-SHA256(key, otp_id || ":" || code) into out: the keyed hash
 * stored for the code of the OTP row otp_id. key should be a server secret
 * of at least 32 bytes. Never fails.
 */
void nb_otp_hash(const unsigned char *key, size_t keylen, const char *otp_id, const char *code,
		 unsigned char out[32]);

/**
 * Checks a presented code code[0..len) against a stored hash: 0 if it is
 * exactly six ASCII digits and nb_otp_hash of it equals expected (compared in
 * constant time), -1 otherwise.
 */
int nb_otp_verify(const unsigned char *key, size_t keylen, const char *otp_id, const char *code,
		  size_t len, const unsigned char expected[32]);

/**
 * Writes p[0..n) as lowercase hex plus a NUL into out, which holds outsize
 * bytes. Returns 0, or -1 (out untouched) if outsize < 2n + 1.
 */
int nb_hex_encode(const void *p, size_t n, char *out, size_t outsize);

/**
 * Decodes exactly 2 * outlen hex digits (either case) from s[0..n) into out.
 * Returns 0, or -1 if n != 2 * outlen or any character is not a hex digit.
 */
int nb_hex_decode(const char *s, size_t n, unsigned char *out, size_t outlen);

#endif
