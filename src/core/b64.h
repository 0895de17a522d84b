/*
 * b64.h — base64url without padding (RFC 4648 §5), as JWTs and our opaque
 * tokens use it.
 *
 * Decoding is strict so that one byte string has exactly one text form: it
 * rejects '=' padding, the '+' and '/' of the standard alphabet, whitespace,
 * NUL, a length of 1 (mod 4), and non-zero unused trailing bits. The work is
 * done by libsodium's constant-time codec (sodium_bin2base64 /
 * sodium_base642bin, variant URLSAFE_NO_PADDING), which is strict in exactly
 * these ways when no "ignore" set is given, after our own check that every
 * byte is in the alphabet (libsodium 1.0.18 lets some bytes >= 0x80 through
 * as aliases; see b64.c).
 */
#ifndef NB_CORE_B64_H
#define NB_CORE_B64_H

#include <stddef.h>

/** Length of the base64url (no padding) text for n bytes, without the NUL. */
#define NB_B64URL_ENCLEN(n) (((n) / 3) * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))

/**
 * Encodes p[0..n) as base64url without padding. Returns a NUL-terminated
 * string the caller frees; never fails (aborts on OOM).
 */
char *nb_b64url_encode(const void *p, size_t n);

/**
 * Encodes p[0..n) into out, which must hold NB_B64URL_ENCLEN(n) + 1 bytes.
 * Returns the text length, or -1 (out untouched) if outsize is too small.
 */
int nb_b64url_encode_buf(const void *p, size_t n, char *out, size_t outsize);

/**
 * Strictly decodes s[0..n) (s need not be NUL-terminated). On success returns
 * 0, sets *out to a malloc'd buffer the caller frees (non-NULL even for an
 * empty input, which decodes to zero bytes) and *outlen to its length. On any
 * malformed input returns -1 and sets *out = NULL, *outlen = 0.
 */
int nb_b64url_decode(const char *s, size_t n, unsigned char **out, size_t *outlen);

/**
 * Strictly decodes s[0..n) into out[0..outmax). Returns 0 and sets *outlen,
 * or -1 when the input is malformed or decodes to more than outmax bytes.
 * outlen may be NULL.
 */
int nb_b64url_decode_buf(const char *s, size_t n, unsigned char *out, size_t outmax, size_t *outlen);

#endif
