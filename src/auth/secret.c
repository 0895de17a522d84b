/*
 * secret.c — refresh tokens and one-time codes (see secret.h).
 *
 * Randomness comes from libsodium's randombytes (the kernel CSPRNG);
 * randombytes_uniform avoids modulo bias in the six-digit codes.
 */
#include "auth/secret.h"

#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/b64.h"

void nb_refresh_token_new(char token[64], unsigned char hash[32])
{
	unsigned char raw[32];
	randombytes_buf(raw, sizeof raw);
	nb_b64url_encode_buf(raw, sizeof raw, token, 64);
	sodium_memzero(raw, sizeof raw);
	crypto_hash_sha256(hash, (const unsigned char *)token, NB_REFRESH_TOKEN_LEN);
}

int nb_refresh_token_hash(const char *token, size_t len, unsigned char hash[32])
{
	unsigned char raw[32];
	size_t rawlen = 0;
	if (!token || len != NB_REFRESH_TOKEN_LEN ||
	    nb_b64url_decode_buf(token, len, raw, sizeof raw, &rawlen) != 0 || rawlen != sizeof raw)
		return -1;
	sodium_memzero(raw, sizeof raw);
	crypto_hash_sha256(hash, (const unsigned char *)token, len);
	return 0;
}

void nb_otp_code_new(char code[7])
{
	snprintf(code, NB_OTP_CODE_LEN + 1, "%06u", (unsigned)randombytes_uniform(1000000));
}

void nb_otp_hash(const unsigned char *key, size_t keylen, const char *otp_id, const char *code,
		 unsigned char out[32])
{
	crypto_auth_hmacsha256_state st;
	crypto_auth_hmacsha256_init(&st, key, keylen);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)otp_id, strlen(otp_id));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)":", 1);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)code, strlen(code));
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof st);
}

int nb_otp_verify(const unsigned char *key, size_t keylen, const char *otp_id, const char *code,
		  size_t len, const unsigned char expected[32])
{
	char c[NB_OTP_CODE_LEN + 1];
	unsigned char got[32];
	if (!code || len != NB_OTP_CODE_LEN)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (code[i] < '0' || code[i] > '9')
			return -1;
		c[i] = code[i];
	}
	c[NB_OTP_CODE_LEN] = '\0';
	nb_otp_hash(key, keylen, otp_id, c, got);
	return crypto_verify_32(got, expected) == 0 ? 0 : -1;
}

int nb_hex_encode(const void *p, size_t n, char *out, size_t outsize)
{
	if (n > (SIZE_MAX - 1) / 2 || outsize < 2 * n + 1)
		return -1;
	sodium_bin2hex(out, outsize, p, n);
	return 0;
}

int nb_hex_decode(const char *s, size_t n, unsigned char *out, size_t outlen)
{
	size_t got = 0;
	if (outlen > SIZE_MAX / 2 || n != 2 * outlen)
		return -1;
	if (n == 0)
		return 0;
	/* b64_end == NULL: any non-hex character (NUL included) is an error. */
	if (sodium_hex2bin(out, outlen, s, n, NULL, &got, NULL) != 0 || got != outlen)
		return -1;
	return 0;
}
