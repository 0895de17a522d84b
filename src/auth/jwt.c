/*
 * jwt.c — HS256 access tokens (see jwt.h).
 *
 * Verification order is chosen so that untrusted bytes are touched as little
 * as possible: length cap, split on exactly two dots, strict base64url of the
 * signature, HMAC and constant-time compare over "header.payload"; only then
 * are header and payload decoded and parsed (jansson, duplicates rejected)
 * and every claim checked. The algorithm is never read from the token to
 * decide how to verify it — the header is only checked to say "HS256".
 */
#include "auth/jwt.h"

#include <jansson.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/b64.h"
#include "core/buf.h"
#include "core/uuid.h"

#define SIG_LEN crypto_auth_hmacsha256_BYTES   /* 32 */
#define SIG_B64_LEN NB_B64URL_ENCLEN(SIG_LEN) /* 43 */

static const char header_json[] = "{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}";

static void hmac256(const unsigned char *key, size_t keylen, const char *msg, size_t n,
		    unsigned char out[SIG_LEN])
{
	crypto_auth_hmacsha256_state st;
	crypto_auth_hmacsha256_init(&st, key, keylen);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)msg, n);
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof st);
}

static void append_b64(nb_buf_t *b, const void *p, size_t n)
{
	char *s = nb_b64url_encode(p, n);
	nb_buf_puts(b, s);
	free(s);
}

char *nb_jwt_sign(const unsigned char *key, size_t keylen, const char *iss, const char *aud,
		  const char *sub, int64_t now_s, int ttl_s)
{
	if (!key || keylen < NB_JWT_MIN_KEY || !iss || !aud || !sub || !nb_uuid_valid(sub) ||
	    ttl_s <= 0)
		return NULL;

	char jti[NB_UUID_STR_LEN + 1];
	nb_uuid_v7_str(jti);

	nb_buf_t payload = NB_BUF_INIT;
	nb_buf_puts(&payload, "{\"sub\":");
	nb_buf_json_str(&payload, sub, strlen(sub));
	nb_buf_printf(&payload, ",\"iat\":%lld,\"exp\":%lld,\"jti\":\"%s\",\"iss\":", (long long)now_s,
		      (long long)(now_s + ttl_s), jti);
	nb_buf_json_str(&payload, iss, strlen(iss));
	nb_buf_puts(&payload, ",\"aud\":");
	nb_buf_json_str(&payload, aud, strlen(aud));
	nb_buf_putc(&payload, '}');

	nb_buf_t tok = NB_BUF_INIT;
	append_b64(&tok, header_json, sizeof header_json - 1);
	nb_buf_putc(&tok, '.');
	append_b64(&tok, payload.data, payload.len);
	nb_buf_dispose(&payload);

	unsigned char mac[SIG_LEN];
	hmac256(key, keylen, tok.data, tok.len, mac);
	nb_buf_putc(&tok, '.');
	append_b64(&tok, mac, sizeof mac);

	if (tok.len > NB_JWT_MAX_LEN) {
		nb_buf_dispose(&tok);
		return NULL;
	}
	return nb_buf_steal(&tok, NULL);
}

/* Decodes one base64url part and parses it as a JSON object; NULL if not. */
static json_t *decode_object(const char *s, size_t n)
{
	unsigned char *raw;
	size_t rawlen;
	if (nb_b64url_decode(s, n, &raw, &rawlen) != 0)
		return NULL;
	json_t *j = json_loadb((const char *)raw, rawlen, JSON_REJECT_DUPLICATES, NULL);
	free(raw);
	if (j && !json_is_object(j)) {
		json_decref(j);
		j = NULL;
	}
	return j;
}

static bool str_is(const json_t *v, const char *want)
{
	return json_is_string(v) && json_string_length(v) == strlen(want) &&
	       memcmp(json_string_value(v), want, json_string_length(v)) == 0;
}

static const char *check_header(const json_t *h)
{
	if (!str_is(json_object_get(h, "alg"), "HS256"))
		return "unsupported alg";
	if (!str_is(json_object_get(h, "typ"), "at+jwt"))
		return "wrong typ";
	if (json_object_get(h, "crit"))
		return "crit not supported";
	return NULL;
}

/* Copies a canonical UUID string claim, lower-cased; false if absent or bad. */
static bool get_uuid(const json_t *p, const char *name, char out[NB_UUID_STR_LEN + 1])
{
	const json_t *v = json_object_get(p, name);
	if (!json_is_string(v) || json_string_length(v) != NB_UUID_STR_LEN ||
	    !nb_uuid_valid(json_string_value(v)))
		return false;
	const char *s = json_string_value(v);
	for (int i = 0; i <= NB_UUID_STR_LEN; i++)
		out[i] = (s[i] >= 'A' && s[i] <= 'F') ? (char)(s[i] - 'A' + 'a') : s[i];
	return true;
}

static bool aud_matches(const json_t *v, const char *aud)
{
	if (json_is_string(v))
		return str_is(v, aud);
	if (!json_is_array(v))
		return false;
	size_t i;
	const json_t *e;
	json_array_foreach(v, i, e) {
		if (str_is(e, aud))
			return true;
	}
	return false;
}

static const char *check_payload(const json_t *p, const char *iss, const char *aud, int64_t now_s,
				 nb_jwt_claims_t *out)
{
	if (!get_uuid(p, "sub", out->sub))
		return "bad sub";
	if (!get_uuid(p, "jti", out->jti))
		return "bad jti";
	const json_t *iat = json_object_get(p, "iat"), *exp = json_object_get(p, "exp");
	if (!json_is_integer(iat) || !json_is_integer(exp))
		return "bad iat or exp";
	out->iat = json_integer_value(iat);
	out->exp = json_integer_value(exp);
	if (out->exp <= out->iat)
		return "exp not after iat";
	if (out->exp <= now_s)
		return "expired";
	if (out->iat > now_s + NB_JWT_IAT_SKEW_S)
		return "issued in the future";
	const json_t *nbf = json_object_get(p, "nbf");
	if (nbf && (!json_is_integer(nbf) || json_integer_value(nbf) > now_s + NB_JWT_IAT_SKEW_S))
		return "not yet valid";
	if (!str_is(json_object_get(p, "iss"), iss))
		return "wrong issuer";
	if (!aud_matches(json_object_get(p, "aud"), aud))
		return "wrong audience";
	return NULL;
}

int nb_jwt_verify(const unsigned char *key, size_t keylen, const char *iss, const char *aud,
		  const char *token, size_t len, int64_t now_s, nb_jwt_claims_t *out, const char **why)
{
	const char *reason = NULL;
	json_t *header = NULL, *payload = NULL;

	memset(out, 0, sizeof *out);
	if (!key || keylen < NB_JWT_MIN_KEY || !iss || !aud) {
		reason = "verifier not configured";
		goto fail;
	}
	if (!token || len == 0) {
		reason = "empty token";
		goto fail;
	}
	if (len > NB_JWT_MAX_LEN) {
		reason = "token too long";
		goto fail;
	}

	const char *d1 = memchr(token, '.', len);
	const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
	if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)) || d1 == token ||
	    d2 == d1 + 1) {
		reason = "malformed token";
		goto fail;
	}
	size_t signed_len = (size_t)(d2 - token), sig_b64_len = len - signed_len - 1;

	unsigned char sig[SIG_LEN], mac[SIG_LEN];
	size_t siglen = 0;
	if (sig_b64_len != SIG_B64_LEN ||
	    nb_b64url_decode_buf(d2 + 1, sig_b64_len, sig, sizeof sig, &siglen) != 0 ||
	    siglen != SIG_LEN) {
		reason = "bad signature";
		goto fail;
	}
	hmac256(key, keylen, token, signed_len, mac);
	if (sodium_memcmp(sig, mac, SIG_LEN) != 0) {
		reason = "bad signature";
		goto fail;
	}

	header = decode_object(token, (size_t)(d1 - token));
	if (!header) {
		reason = "bad header";
		goto fail;
	}
	if ((reason = check_header(header)) != NULL)
		goto fail;
	payload = decode_object(d1 + 1, (size_t)(d2 - d1 - 1));
	if (!payload) {
		reason = "bad payload";
		goto fail;
	}
	if ((reason = check_payload(payload, iss, aud, now_s, out)) != NULL)
		goto fail;

	json_decref(payload);
	json_decref(header);
	if (why)
		*why = NULL;
	return 0;

fail:
	json_decref(payload);
	json_decref(header);
	memset(out, 0, sizeof *out);
	if (why)
		*why = reason;
	return -1;
}
