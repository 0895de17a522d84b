/*
 * b64.c — strict base64url (see b64.h).
 *
 * A thin layer over libsodium's codec: it sizes buffers and turns its
 * "stop at the first invalid character" interface into an all-or-nothing one
 * by passing b64_end = NULL (any unconsumed character is then an error).
 *
 * libsodium 1.0.18 classifies characters through a plain (signed) char, so
 * some bytes >= 0x80 decode as aliases of alphabet characters ("\xdf" as
 * '_'): the same bytes would have several encodings, and a token's signature
 * part could be altered without being refused. So every input is first
 * checked against the alphabet, without data-dependent branches (tokens are
 * secrets).
 */
#include "core/b64.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/alloc.h"

#define VARIANT sodium_base64_VARIANT_URLSAFE_NO_PADDING

/* 1 if lo <= c <= hi, else 0 (c, lo, hi < 256), without branches. */
static uint32_t in_range(uint32_t c, uint32_t lo, uint32_t hi)
{
	return (((c - lo) | (hi - c)) >> 31) ^ 1;
}

/* 1 if c == x, else 0 (c, x < 256), without branches. */
static uint32_t equals(uint32_t c, uint32_t x)
{
	return ((c ^ x) - 1) >> 31;
}

/* True if every byte of s[0..n) is in the base64url alphabet. */
static bool all_in_alphabet(const char *s, size_t n)
{
	uint32_t bad = 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t c = (unsigned char)s[i];
		uint32_t ok = in_range(c, 'A', 'Z') | in_range(c, 'a', 'z') | in_range(c, '0', '9') |
			      equals(c, '-') | equals(c, '_');
		bad |= ok ^ 1;
	}
	return bad == 0;
}

char *nb_b64url_encode(const void *p, size_t n)
{
	size_t cap = sodium_base64_ENCODED_LEN(n, VARIANT);
	char *out = nb_xmalloc(cap);
	sodium_bin2base64(out, cap, p, n, VARIANT);
	return out;
}

int nb_b64url_encode_buf(const void *p, size_t n, char *out, size_t outsize)
{
	size_t cap = sodium_base64_ENCODED_LEN(n, VARIANT);
	if (outsize < cap || cap - 1 > (size_t)2147483647)
		return -1;
	sodium_bin2base64(out, cap, p, n, VARIANT);
	return (int)(cap - 1);
}

int nb_b64url_decode_buf(const char *s, size_t n, unsigned char *out, size_t outmax, size_t *outlen)
{
	size_t len = 0;
	if (outlen)
		*outlen = 0;
	if (n == 0)
		return 0;
	if (!all_in_alphabet(s, n))
		return -1;
	/*
	 * sodium_base642bin fails when the output does not fit; a NUL or any
	 * character outside the alphabet stops it early, which with
	 * b64_end == NULL is an error too.
	 */
	if (sodium_base642bin(out, outmax, s, n, NULL, &len, NULL, VARIANT) != 0)
		return -1;
	if (outlen)
		*outlen = len;
	return 0;
}

int nb_b64url_decode(const char *s, size_t n, unsigned char **out, size_t *outlen)
{
	size_t cap = n / 4 * 3 + 3; /* >= the decoded size of any valid input */
	unsigned char *buf = nb_xmalloc(cap);
	size_t len = 0;

	*out = NULL;
	*outlen = 0;
	if (nb_b64url_decode_buf(s, n, buf, cap, &len) != 0) {
		free(buf);
		return -1;
	}
	*out = buf;
	*outlen = len;
	return 0;
}
