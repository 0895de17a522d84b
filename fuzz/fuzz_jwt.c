/*
 * fuzz_jwt.c — libFuzzer driver for the token parsers: nb_b64url_decode and
 * nb_jwt_verify, which read bytes straight from the Authorization header.
 *
 * Besides "no crash, no leak, no UB", it checks properties: a decoded input
 * re-encodes to exactly itself (strictness: one text per byte string), and
 * nothing the fuzzer makes verifies unless it carries a real signature by
 * the key (checked by signing again over the same parts).
 *
 * Build (not part of make):
 *   clang -g -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE -Isrc \
 *     fuzz/fuzz_jwt.c src/auth/jwt.c src/core/b64.c src/core/uuid.c \
 *     src/core/timeutil.c src/core/alloc.c src/core/buf.c \
 *     -ljansson -lsodium -lpthread -o build/fuzz_jwt
 *   ./build/fuzz_jwt -max_total_time=30
 */
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jwt.h"
#include "core/b64.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const unsigned char KEY[32] = "fuzz-key-0123456789abcdefghijklm";

static void check_b64(const char *s, size_t n)
{
	unsigned char *out;
	size_t outlen;
	if (nb_b64url_decode(s, n, &out, &outlen) != 0) {
		if (out || outlen)
			abort();
		return;
	}
	char *again = nb_b64url_encode(out, outlen);
	if (strlen(again) != n || memcmp(again, s, n) != 0)
		abort(); /* two texts for one byte string: decoding is not strict */
	free(again);
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	check_b64(s, size);

	nb_jwt_claims_t c;
	const char *why = NULL;
	int64_t now = 1800000000;
	if (nb_jwt_verify(KEY, sizeof KEY, "iss", "aud", s, size, now, &c, &why) == 0) {
		/* Accepted: the last part must be the HMAC of the rest. */
		const char *d2 = memrchr(s, '.', size);
		unsigned char mac[32], sig[32];
		size_t siglen = 0;
		crypto_auth_hmacsha256_state st;
		crypto_auth_hmacsha256_init(&st, KEY, sizeof KEY);
		crypto_auth_hmacsha256_update(&st, data, (size_t)(d2 - s));
		crypto_auth_hmacsha256_final(&st, mac);
		if (nb_b64url_decode_buf(d2 + 1, size - (size_t)(d2 + 1 - s), sig, sizeof sig, &siglen) != 0 ||
		    siglen != 32 || memcmp(sig, mac, 32) != 0 || c.exp <= now || strlen(c.sub) != 36)
			abort();
	} else if (!why) {
		abort(); /* every refusal has a reason */
	}

	/* Also feed the input as the payload of a correctly signed token. */
	if (size < 2048) {
		char *h = nb_b64url_encode("{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}", 30);
		char *p = nb_b64url_encode(data, size);
		size_t hl = strlen(h), pl = strlen(p);
		char *tok = malloc(hl + pl + 2 + 44);
		memcpy(tok, h, hl);
		tok[hl] = '.';
		memcpy(tok + hl + 1, p, pl);
		unsigned char mac[32];
		crypto_auth_hmacsha256_state st;
		crypto_auth_hmacsha256_init(&st, KEY, sizeof KEY);
		crypto_auth_hmacsha256_update(&st, (unsigned char *)tok, hl + 1 + pl);
		crypto_auth_hmacsha256_final(&st, mac);
		tok[hl + 1 + pl] = '.';
		nb_b64url_encode_buf(mac, 32, tok + hl + pl + 2, 44);
		(void)nb_jwt_verify(KEY, sizeof KEY, "iss", "aud", tok, strlen(tok), now, &c, &why);
		free(tok);
		free(p);
		free(h);
	}
	return 0;
}
