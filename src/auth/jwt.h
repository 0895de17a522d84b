/*
 * jwt.h — HS256 access tokens (RFC 7519, profiled after RFC 9068 and
 * hardened after RFC 8725).
 *
 * The verifier fixes everything the token could otherwise choose: the
 * algorithm is HS256 and only HS256, the type is "at+jwt", "crit" is refused,
 * and iss, aud, exp, iat, sub and jti must all be present and right. The
 * signature is checked (in constant time) before any JSON is parsed, so an
 * unauthenticated sender never reaches the JSON parser. The HMAC key is a
 * random server secret of at least NB_JWT_MIN_KEY bytes — never a password.
 *
 * Both functions are pure (no I/O, no global state but libsodium and the
 * UUID generator) and thread-safe.
 */
#ifndef NB_AUTH_JWT_H
#define NB_AUTH_JWT_H

#include <stddef.h>
#include <stdint.h>

/** Longest token accepted or produced, in bytes. */
#define NB_JWT_MAX_LEN 4096
/** Shortest HMAC key accepted, in bytes (RFC 7518 §3.2: at least the hash size). */
#define NB_JWT_MIN_KEY 32
/** How far in the future "iat" may be (clock skew between servers), in seconds. */
#define NB_JWT_IAT_SKEW_S 60

/** The claims of a verified token. */
typedef struct nb_jwt_claims {
	char sub[37]; /* the user id, a lowercase canonical UUID */
	char jti[37]; /* the token id, a lowercase canonical UUID */
	int64_t iat, exp; /* seconds since the Unix epoch */
} nb_jwt_claims_t;

/**
 * Signs an access token for user `sub` (a canonical UUID string), issued at
 * now_s and valid for ttl_s seconds, with a fresh UUIDv7 as jti.
 * Header {"alg":"HS256","typ":"at+jwt"}, payload
 * {"sub","iat","exp","jti","iss","aud"}. Returns a NUL-terminated token the
 * caller frees, or NULL if an argument is invalid (NULL, keylen below
 * NB_JWT_MIN_KEY, sub not a UUID, ttl_s <= 0) or the token would exceed
 * NB_JWT_MAX_LEN.
 */
char *nb_jwt_sign(const unsigned char *key, size_t keylen, const char *iss, const char *aud,
		  const char *sub, int64_t now_s, int ttl_s);

/**
 * Verifies token[0..len) (need not be NUL-terminated) at time now_s.
 * Accepts only: three strictly base64url parts; an HS256 signature by key;
 * a header object with "alg" "HS256", "typ" "at+jwt" and no "crit"; a payload
 * object with sub and jti canonical UUID strings, integer iat and exp with
 * iat < exp, exp > now_s (no leeway), iat <= now_s + NB_JWT_IAT_SKEW_S, an
 * integer nbf (if any) <= now_s + NB_JWT_IAT_SKEW_S, iss equal to `iss`, and
 * aud equal to `aud` or an array containing it; at most NB_JWT_MAX_LEN bytes.
 * Returns 0 and fills *out, or -1 (and zeroes *out). If why is not NULL it
 * receives a short static reason for the operator's log — never for the
 * client, who should only see "unauthenticated".
 */
int nb_jwt_verify(const unsigned char *key, size_t keylen, const char *iss, const char *aud,
		  const char *token, size_t len, int64_t now_s, nb_jwt_claims_t *out, const char **why);

#endif
