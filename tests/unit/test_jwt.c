/*
 * test_jwt.c — unit tests of HS256 access tokens: round trip, and every way
 * a forged, altered, expired or malformed token must be refused (RFC 8725).
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jwt.h"
#include "core/alloc.h"
#include "core/b64.h"
#include "core/buf.h"
#include "core/uuid.h"
#include "t.h"

static const unsigned char KEY[32] = "k3y-for-tests-0123456789abcdefgh";
static const unsigned char KEY2[32] = "another-key-0123456789abcdefghij";
#define ISS "https://notebookd.test"
#define AUD "notebookd"
#define SUB "0190f5a0-1234-7abc-8def-0123456789ab"
#define JTI "0190f5a0-1234-7abc-8def-ffffffffffff"
#define NOW INT64_C(1800000000)

static int verify(const char *tok, nb_jwt_claims_t *c, const char **why)
{
	return nb_jwt_verify(KEY, sizeof KEY, ISS, AUD, tok, strlen(tok), NOW, c, why);
}

/* Builds b64(header).b64(payload).b64(HMAC(key)) — or no signature part if key is NULL. */
static char *forge(const unsigned char *key, const char *header, const char *payload)
{
	nb_buf_t b = NB_BUF_INIT;
	char *h = nb_b64url_encode(header, strlen(header));
	char *p = nb_b64url_encode(payload, strlen(payload));
	nb_buf_printf(&b, "%s.%s", h, p);
	free(h);
	free(p);
	nb_buf_putc(&b, '.');
	if (key) {
		unsigned char mac[32];
		crypto_auth_hmacsha256_state st;
		crypto_auth_hmacsha256_init(&st, key, 32);
		crypto_auth_hmacsha256_update(&st, (const unsigned char *)b.data, b.len - 1);
		crypto_auth_hmacsha256_final(&st, mac);
		char *s = nb_b64url_encode(mac, sizeof mac);
		nb_buf_puts(&b, s);
		free(s);
	}
	return nb_buf_steal(&b, NULL);
}

/* Joins already encoded parts as h pad "." p "." HMAC(key). */
static char *sign_parts(const unsigned char *key, const char *h, const char *pad, const char *p)
{
	char *signed_part = nb_xasprintf("%s%s.%s", h, pad, p);
	unsigned char mac[32];
	crypto_auth_hmacsha256_state st;
	crypto_auth_hmacsha256_init(&st, key, 32);
	crypto_auth_hmacsha256_update(&st, (unsigned char *)signed_part, strlen(signed_part));
	crypto_auth_hmacsha256_final(&st, mac);
	char *s = nb_b64url_encode(mac, 32);
	char *t = nb_xasprintf("%s.%s", signed_part, s);
	free(s);
	free(signed_part);
	return t;
}

#define GOOD_HEADER "{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}"

/* A payload with the given overrides, for claims tests. */
static char *payload(const char *sub, long long iat, long long exp, const char *extra_iss_aud)
{
	return nb_xasprintf("{\"sub\":\"%s\",\"iat\":%lld,\"exp\":%lld,\"jti\":\"" JTI "\"%s}", sub, iat,
			    exp, extra_iss_aud);
}

#define GOOD_ISS_AUD ",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\""

/* Verifies a forged token (signed with KEY); returns verify's result and sets *why. */
static int check_forged(const char *header, const char *pl, const char **why)
{
	char *t = forge(KEY, header, pl);
	nb_jwt_claims_t c;
	int rc = verify(t, &c, why);
	free(t);
	return rc;
}

static void test_round_trip(void)
{
	char *t = nb_jwt_sign(KEY, sizeof KEY, ISS, AUD, SUB, NOW, 900);
	CHECK(t != NULL);
	nb_jwt_claims_t c;
	const char *why = "unset";
	CHECK_INT(verify(t, &c, &why), 0);
	CHECK(why == NULL);
	CHECK_STR(c.sub, SUB);
	CHECK_INT(c.iat, NOW);
	CHECK_INT(c.exp, NOW + 900);
	CHECK(nb_uuid_valid(c.jti));
	nb_uuid_t u;
	CHECK_INT(nb_uuid_parse(c.jti, &u), 0);
	CHECK_INT(u.b[6] >> 4, 7); /* a v7 id */

	/* The header is exactly the fixed one, and the payload has the claims. */
	const char *d1 = strchr(t, '.');
	unsigned char *raw;
	size_t n;
	CHECK_INT(nb_b64url_decode(t, (size_t)(d1 - t), &raw, &n), 0);
	CHECK(n == strlen(GOOD_HEADER) && memcmp(raw, GOOD_HEADER, n) == 0);
	free(raw);
	const char *d2 = strchr(d1 + 1, '.');
	CHECK_INT(nb_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &raw, &n), 0);
	char *pl = nb_xstrndup((char *)raw, n);
	CHECK(strstr(pl, "\"iss\":\"" ISS "\"") && strstr(pl, "\"aud\":\"" AUD "\"") &&
	      strstr(pl, "\"sub\":\"" SUB "\""));
	free(pl);
	free(raw);

	/* Each token gets a fresh jti. */
	char *t2 = nb_jwt_sign(KEY, sizeof KEY, ISS, AUD, SUB, NOW, 900);
	nb_jwt_claims_t c2;
	CHECK_INT(verify(t2, &c2, NULL), 0);
	CHECK(strcmp(c.jti, c2.jti) != 0);
	free(t2);

	/* Valid until the second before exp, not at exp. */
	CHECK_INT(nb_jwt_verify(KEY, sizeof KEY, ISS, AUD, t, strlen(t), NOW + 899, &c, NULL), 0);
	CHECK_INT(nb_jwt_verify(KEY, sizeof KEY, ISS, AUD, t, strlen(t), NOW + 900, &c, &why), -1);
	CHECK_STR(why, "expired");
	CHECK_STR(c.sub, ""); /* out is cleared on failure */
	free(t);
}

static void test_sign_rejects_bad_arguments(void)
{
	CHECK(nb_jwt_sign(KEY, 31, ISS, AUD, SUB, NOW, 900) == NULL);
	CHECK(nb_jwt_sign(NULL, 32, ISS, AUD, SUB, NOW, 900) == NULL);
	CHECK(nb_jwt_sign(KEY, 32, NULL, AUD, SUB, NOW, 900) == NULL);
	CHECK(nb_jwt_sign(KEY, 32, ISS, NULL, SUB, NOW, 900) == NULL);
	CHECK(nb_jwt_sign(KEY, 32, ISS, AUD, "not-a-uuid", NOW, 900) == NULL);
	CHECK(nb_jwt_sign(KEY, 32, ISS, AUD, SUB, NOW, 0) == NULL);
	char *huge = malloc(5000);
	memset(huge, 'a', 4999);
	huge[4999] = '\0';
	CHECK(nb_jwt_sign(KEY, 32, huge, AUD, SUB, NOW, 900) == NULL);
	free(huge);
	/* A long key (hashed by HMAC) works. */
	unsigned char long_key[100];
	memset(long_key, 7, sizeof long_key);
	char *t = nb_jwt_sign(long_key, sizeof long_key, ISS, AUD, SUB, NOW, 900);
	nb_jwt_claims_t c;
	CHECK_INT(nb_jwt_verify(long_key, sizeof long_key, ISS, AUD, t, strlen(t), NOW, &c, NULL), 0);
	CHECK_INT(verify(t, &c, NULL), -1);
	free(t);
}

static void test_forge_helper_is_faithful(void)
{
	/* The forging helper makes tokens the verifier accepts when all is right. */
	char *pl = payload(SUB, NOW, NOW + 60, GOOD_ISS_AUD);
	const char *why;
	CHECK_INT(check_forged(GOOD_HEADER, pl, &why), 0);
	free(pl);
}

static void test_alg_none(void)
{
	char *pl = payload(SUB, NOW, NOW + 60, GOOD_ISS_AUD);
	nb_jwt_claims_t c;
	const char *why;
	/* Unsigned: "header.payload." */
	char *t = forge(NULL, "{\"alg\":\"none\",\"typ\":\"at+jwt\"}", pl);
	CHECK_INT(verify(t, &c, &why), -1);
	free(t);
	/* Unsigned without the trailing dot. */
	t = forge(NULL, "{\"alg\":\"none\",\"typ\":\"at+jwt\"}", pl);
	t[strlen(t) - 1] = '\0';
	CHECK_INT(verify(t, &c, &why), -1);
	free(t);
	/* "none" (any case) with a valid HMAC over it. */
	CHECK_INT(check_forged("{\"alg\":\"none\",\"typ\":\"at+jwt\"}", pl, &why), -1);
	CHECK_STR(why, "unsupported alg");
	CHECK_INT(check_forged("{\"alg\":\"None\",\"typ\":\"at+jwt\"}", pl, &why), -1);
	free(pl);
}

static void test_other_algs_resigned(void)
{
	char *pl = payload(SUB, NOW, NOW + 60, GOOD_ISS_AUD);
	const char *why;
	static const char *headers[] = {
		"{\"alg\":\"HS512\",\"typ\":\"at+jwt\"}", "{\"alg\":\"RS256\",\"typ\":\"at+jwt\"}",
		"{\"alg\":\"hs256\",\"typ\":\"at+jwt\"}", "{\"alg\":\"HS256 \",\"typ\":\"at+jwt\"}",
		"{\"alg\":[\"HS256\"],\"typ\":\"at+jwt\"}", "{\"alg\":null,\"typ\":\"at+jwt\"}",
		"{\"typ\":\"at+jwt\"}", "{\"alg\":\"HS256\\u0000\",\"typ\":\"at+jwt\"}",
	};
	for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++)
		CHECK_MSG(check_forged(headers[i], pl, &why) == -1, "accepted %s", headers[i]);
	CHECK_INT(check_forged(headers[0], pl, &why), -1);
	CHECK_STR(why, "unsupported alg");
	free(pl);
}

static void test_header_typ_crit_and_shape(void)
{
	char *pl = payload(SUB, NOW, NOW + 60, GOOD_ISS_AUD);
	const char *why;
	CHECK_INT(check_forged("{\"alg\":\"HS256\"}", pl, &why), -1);
	CHECK_STR(why, "wrong typ");
	CHECK_INT(check_forged("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", pl, &why), -1);
	CHECK_INT(check_forged("{\"alg\":\"HS256\",\"typ\":\"AT+JWT\"}", pl, &why), -1);
	CHECK_INT(check_forged("{\"alg\":\"HS256\",\"typ\":\"application/at+jwt\"}", pl, &why), -1);
	CHECK_INT(check_forged("{\"alg\":\"HS256\",\"typ\":\"at+jwt\",\"crit\":[\"exp\"]}", pl, &why), -1);
	CHECK_STR(why, "crit not supported");
	CHECK_INT(check_forged("{\"alg\":\"HS256\",\"alg\":\"HS256\",\"typ\":\"at+jwt\"}", pl, &why), -1);
	CHECK_STR(why, "bad header"); /* duplicate member */
	CHECK_INT(check_forged("[\"HS256\"]", pl, &why), -1);
	CHECK_INT(check_forged("\"HS256\"", pl, &why), -1);
	CHECK_INT(check_forged("{\"alg\":\"HS256\",\"typ\":\"at+jwt\"", pl, &why), -1);
	CHECK_INT(check_forged("{\"alg\":\"HS256\",\"typ\":\"at+jwt\"} x", pl, &why), -1);
	/* Extra harmless members are ignored. */
	CHECK_INT(check_forged("{\"alg\":\"HS256\",\"typ\":\"at+jwt\",\"kid\":\"1\"}", pl, &why), 0);
	free(pl);
}

static void test_wrong_key(void)
{
	char *t = nb_jwt_sign(KEY2, sizeof KEY2, ISS, AUD, SUB, NOW, 900);
	nb_jwt_claims_t c;
	const char *why;
	CHECK_INT(verify(t, &c, &why), -1);
	CHECK_STR(why, "bad signature");
	/* A key that is a prefix of the right one is not the right one. */
	CHECK_INT(nb_jwt_verify(KEY, 31, ISS, AUD, t, strlen(t), NOW, &c, &why), -1);
	free(t);
}

static void test_every_bit_flip(void)
{
	char *t = nb_jwt_sign(KEY, sizeof KEY, ISS, AUD, SUB, NOW, 900);
	size_t n = strlen(t);
	nb_jwt_claims_t c;
	int accepted = 0, tried = 0;
	/* Flip each bit of each character (except the dots): never accepted. */
	for (size_t i = 0; i < n; i++) {
		if (t[i] == '.')
			continue;
		for (int bit = 0; bit < 8; bit++) {
			t[i] ^= (char)(1 << bit);
			if (nb_jwt_verify(KEY, sizeof KEY, ISS, AUD, t, n, NOW, &c, NULL) == 0)
				accepted++;
			t[i] ^= (char)(1 << bit);
			tried++;
		}
	}
	CHECK_INT(accepted, 0);
	CHECK(tried > 8 * 200);
	CHECK_INT(nb_jwt_verify(KEY, sizeof KEY, ISS, AUD, t, n, NOW, &c, NULL), 0);
	free(t);
}

static void test_flip_in_each_part_resigned(void)
{
	/* One altered claim, even with a correct signature over it, changes the outcome. */
	const char *why;
	char *pl = payload(SUB, NOW, NOW + 60, GOOD_ISS_AUD);
	pl[10] ^= 1; /* inside the sub UUID: '0' -> '1' keeps it a UUID */
	CHECK_INT(check_forged(GOOD_HEADER, pl, &why), 0);
	pl[9] ^= 0x40; /* first char of sub: not hex any more */
	CHECK_INT(check_forged(GOOD_HEADER, pl, &why), -1);
	CHECK_STR(why, "bad sub");
	free(pl);
}

static void test_time_claims(void)
{
	const char *why;
	char *pl;
	pl = payload(SUB, NOW - 900, NOW, GOOD_ISS_AUD); /* exp == now: expired, no leeway */
	CHECK_INT(check_forged(GOOD_HEADER, pl, &why), -1);
	CHECK_STR(why, "expired");
	free(pl);
	pl = payload(SUB, NOW - 900, NOW - 1, GOOD_ISS_AUD);
	CHECK_INT(check_forged(GOOD_HEADER, pl, &why), -1);
	free(pl);
	pl = payload(SUB, NOW + 60, NOW + 900, GOOD_ISS_AUD); /* 60 s skew is tolerated */
	CHECK_INT(check_forged(GOOD_HEADER, pl, &why), 0);
	free(pl);
	pl = payload(SUB, NOW + 61, NOW + 900, GOOD_ISS_AUD);
	CHECK_INT(check_forged(GOOD_HEADER, pl, &why), -1);
	CHECK_STR(why, "issued in the future");
	free(pl);
	pl = payload(SUB, NOW + 10, NOW + 10, GOOD_ISS_AUD); /* exp not after iat */
	CHECK_INT(check_forged(GOOD_HEADER, pl, &why), -1);
	free(pl);

	static const char *bad[] = {
		"{\"sub\":\"" SUB "\",\"iat\":1800000000.0,\"exp\":1800000900,\"jti\":\"" JTI "\"" GOOD_ISS_AUD "}",
		"{\"sub\":\"" SUB "\",\"iat\":1800000000,\"exp\":\"1800000900\",\"jti\":\"" JTI "\"" GOOD_ISS_AUD "}",
		"{\"sub\":\"" SUB "\",\"iat\":1800000000,\"jti\":\"" JTI "\"" GOOD_ISS_AUD "}",
		"{\"sub\":\"" SUB "\",\"exp\":1800000900,\"jti\":\"" JTI "\"" GOOD_ISS_AUD "}",
		"{\"sub\":\"" SUB "\",\"iat\":1800000000,\"exp\":1e300,\"jti\":\"" JTI "\"" GOOD_ISS_AUD "}",
		"{\"sub\":\"" SUB "\",\"iat\":1800000000,\"exp\":99999999999999999999999,\"jti\":\"" JTI "\"" GOOD_ISS_AUD "}",
		"{\"sub\":\"" SUB "\",\"iat\":1800000000,\"exp\":1800000900,\"nbf\":1800000900,\"jti\":\"" JTI "\"" GOOD_ISS_AUD "}",
		"{\"sub\":\"" SUB "\",\"iat\":1800000000,\"exp\":1800000900,\"exp\":1900000000,\"jti\":\"" JTI "\"" GOOD_ISS_AUD "}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECK_MSG(check_forged(GOOD_HEADER, bad[i], &why) == -1, "accepted %s", bad[i]);
}

static void test_iss_aud(void)
{
	const char *why;
	char *pl;
	nb_jwt_claims_t c;
	char *t = nb_jwt_sign(KEY, sizeof KEY, ISS, AUD, SUB, NOW, 900);
	CHECK_INT(nb_jwt_verify(KEY, sizeof KEY, "https://other.test", AUD, t, strlen(t), NOW, &c, &why), -1);
	CHECK_STR(why, "wrong issuer");
	CHECK_INT(nb_jwt_verify(KEY, sizeof KEY, ISS, "other", t, strlen(t), NOW, &c, &why), -1);
	CHECK_STR(why, "wrong audience");
	CHECK_INT(nb_jwt_verify(KEY, sizeof KEY, ISS, "notebook", t, strlen(t), NOW, &c, &why), -1);
	free(t);

	pl = payload(SUB, NOW, NOW + 60, ",\"iss\":\"" ISS "\",\"aud\":[\"x\",\"" AUD "\"]");
	CHECK_INT(check_forged(GOOD_HEADER, pl, &why), 0);
	free(pl);
	pl = payload(SUB, NOW, NOW + 60, ",\"iss\":\"" ISS "\",\"aud\":[\"x\",\"y\"]");
	CHECK_INT(check_forged(GOOD_HEADER, pl, &why), -1);
	free(pl);
	pl = payload(SUB, NOW, NOW + 60, ",\"iss\":\"" ISS "\",\"aud\":[]");
	CHECK_INT(check_forged(GOOD_HEADER, pl, &why), -1);
	free(pl);
	pl = payload(SUB, NOW, NOW + 60, ",\"iss\":\"" ISS "\",\"aud\":[[\"" AUD "\"]]");
	CHECK_INT(check_forged(GOOD_HEADER, pl, &why), -1);
	free(pl);
	pl = payload(SUB, NOW, NOW + 60, ",\"iss\":\"" ISS "\"");
	CHECK_INT(check_forged(GOOD_HEADER, pl, &why), -1);
	free(pl);
	pl = payload(SUB, NOW, NOW + 60, ",\"aud\":\"" AUD "\"");
	CHECK_INT(check_forged(GOOD_HEADER, pl, &why), -1);
	CHECK_STR(why, "wrong issuer");
	free(pl);
	pl = payload(SUB, NOW, NOW + 60, ",\"iss\":[\"" ISS "\"],\"aud\":\"" AUD "\"");
	CHECK_INT(check_forged(GOOD_HEADER, pl, &why), -1);
	free(pl);
	pl = payload(SUB, NOW, NOW + 60, ",\"iss\":\"" ISS "/\",\"aud\":\"" AUD "\"");
	CHECK_INT(check_forged(GOOD_HEADER, pl, &why), -1);
	free(pl);
}

static void test_sub_jti(void)
{
	const char *why;
	char *pl;
	static const char *subs[] = {"", "1", "0190f5a0-1234-7abc-8def-0123456789a",
				     "0190f5a0-1234-7abc-8def-0123456789abc", "0190f5a0x1234-7abc-8def-0123456789ab",
				     "' OR 1=1 --"};
	for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
		pl = payload(subs[i], NOW, NOW + 60, GOOD_ISS_AUD);
		CHECK_MSG(check_forged(GOOD_HEADER, pl, &why) == -1, "accepted sub %s", subs[i]);
		free(pl);
	}
	CHECK_INT(check_forged(GOOD_HEADER,
			       "{\"sub\":12,\"iat\":1800000000,\"exp\":1800000900,\"jti\":\"" JTI "\"" GOOD_ISS_AUD "}",
			       &why), -1);
	CHECK_INT(check_forged(GOOD_HEADER,
			       "{\"sub\":\"" SUB "\",\"iat\":1800000000,\"exp\":1800000900" GOOD_ISS_AUD "}", &why), -1);
	CHECK_STR(why, "bad jti");
	CHECK_INT(check_forged(GOOD_HEADER,
			       "{\"sub\":\"" SUB "\",\"iat\":1800000000,\"exp\":1800000900,\"jti\":\"x\"" GOOD_ISS_AUD "}",
			       &why), -1);
	/* An upper-case UUID is accepted and handed back lower-cased. */
	pl = payload("0190F5A0-1234-7ABC-8DEF-0123456789AB", NOW, NOW + 60, GOOD_ISS_AUD);
	char *t = forge(KEY, GOOD_HEADER, pl);
	nb_jwt_claims_t c;
	CHECK_INT(verify(t, &c, &why), 0);
	CHECK_STR(c.sub, SUB);
	free(t);
	free(pl);
	/* Payload must be an object. */
	CHECK_INT(check_forged(GOOD_HEADER, "[1,2]", &why), -1);
	CHECK_STR(why, "bad payload");
	CHECK_INT(check_forged(GOOD_HEADER, "", &why), -1);
}

static void test_malformed(void)
{
	const char *why;
	nb_jwt_claims_t c;
	char *t = nb_jwt_sign(KEY, sizeof KEY, ISS, AUD, SUB, NOW, 900);
	size_t n = strlen(t);
	char *buf = malloc(n + 64);

	CHECK_INT(verify("", &c, &why), -1);
	CHECK_STR(why, "empty token");
	CHECK_INT(nb_jwt_verify(KEY, sizeof KEY, ISS, AUD, NULL, 0, NOW, &c, &why), -1);
	CHECK_INT(verify("garbage", &c, &why), -1);
	CHECK_INT(verify("a.b", &c, &why), -1);
	CHECK_INT(verify("a.b.c.d", &c, &why), -1);
	CHECK_INT(verify("..", &c, &why), -1);
	CHECK_INT(verify("...", &c, &why), -1);
	CHECK_INT(verify("\xff\xfe.\x01.\x02", &c, &why), -1);

	/* Two parts (signature dropped) and four parts (one appended). */
	memcpy(buf, t, n + 1);
	*strrchr(buf, '.') = '\0';
	CHECK_INT(verify(buf, &c, &why), -1);
	snprintf(buf, n + 64, "%s.%s", t, "AAAA");
	CHECK_INT(verify(buf, &c, &why), -1);
	CHECK_STR(why, "malformed token");
	snprintf(buf, n + 64, "%s.", t);
	CHECK_INT(verify(buf, &c, &why), -1);
	/* Empty header or payload with the rest intact. */
	const char *d1 = strchr(t, '.');
	CHECK_INT(nb_jwt_verify(KEY, sizeof KEY, ISS, AUD, d1, strlen(d1), NOW, &c, &why), -1);

	/* Padding, whitespace and the standard alphabet in the signature. */
	snprintf(buf, n + 64, "%s=", t);
	CHECK_INT(verify(buf, &c, &why), -1);
	snprintf(buf, n + 64, "%s ", t);
	CHECK_INT(verify(buf, &c, &why), -1);
	snprintf(buf, n + 64, " %s", t);
	CHECK_INT(verify(buf, &c, &why), -1);
	snprintf(buf, n + 64, "%s\n", t);
	CHECK_INT(verify(buf, &c, &why), -1);
	/*
	 * "=" padding after a header whose encoding is 2 (mod 4) long, re-signed
	 * so that only the padding is wrong; without the padding it passes.
	 */
	const char *hdr31 = "{\"alg\":\"HS256\",\"typ\":\"at+jwt\" }";
	char *h = nb_b64url_encode(hdr31, strlen(hdr31));
	CHECK_INT(strlen(h) % 4, 2);
	char *pl = payload(SUB, NOW, NOW + 60, GOOD_ISS_AUD);
	char *p = nb_b64url_encode(pl, strlen(pl));
	char *unpadded = sign_parts(KEY, h, "", p);
	char *padded = sign_parts(KEY, h, "==", p);
	CHECK_INT(verify(unpadded, &c, &why), 0);
	CHECK_INT(verify(padded, &c, &why), -1);
	CHECK_STR(why, "bad header");
	free(padded);
	free(unpadded);
	free(p);
	free(pl);
	free(h);

	/* The length given is what counts: a valid token followed by junk is not read. */
	memcpy(buf, t, n);
	memcpy(buf + n, "garbage", 8);
	CHECK_INT(nb_jwt_verify(KEY, sizeof KEY, ISS, AUD, buf, n, NOW, &c, &why), 0);
	CHECK_INT(nb_jwt_verify(KEY, sizeof KEY, ISS, AUD, buf, n - 1, NOW, &c, &why), -1);
	/* An embedded NUL. */
	memcpy(buf, t, n + 1);
	buf[5] = '\0';
	CHECK_INT(nb_jwt_verify(KEY, sizeof KEY, ISS, AUD, buf, n, NOW, &c, &why), -1);

	/* Verifier misconfiguration. */
	CHECK_INT(nb_jwt_verify(KEY, 16, ISS, AUD, t, n, NOW, &c, &why), -1);
	CHECK_INT(nb_jwt_verify(KEY, sizeof KEY, NULL, AUD, t, n, NOW, &c, &why), -1);
	CHECK_INT(nb_jwt_verify(KEY, sizeof KEY, ISS, NULL, t, n, NOW, &c, NULL), -1);
	free(buf);
	free(t);
}

static void test_huge_token(void)
{
	const char *why;
	nb_jwt_claims_t c;
	/* A correctly signed token just over the cap is refused for its size. */
	nb_buf_t extra = NB_BUF_INIT;
	nb_buf_puts(&extra, GOOD_ISS_AUD ",\"pad\":\"");
	for (int i = 0; i < 3000; i++)
		nb_buf_putc(&extra, 'x');
	nb_buf_putc(&extra, '"');
	char *pl = payload(SUB, NOW, NOW + 60, extra.data);
	char *t = forge(KEY, GOOD_HEADER, pl);
	CHECK(strlen(t) > NB_JWT_MAX_LEN);
	CHECK_INT(verify(t, &c, &why), -1);
	CHECK_STR(why, "token too long");
	free(t);
	free(pl);
	nb_buf_dispose(&extra);

	/* One under the cap is fine. */
	nb_buf_init(&extra);
	nb_buf_puts(&extra, GOOD_ISS_AUD ",\"pad\":\"");
	for (int i = 0; i < 2000; i++)
		nb_buf_putc(&extra, 'x');
	nb_buf_putc(&extra, '"');
	pl = payload(SUB, NOW, NOW + 60, extra.data);
	t = forge(KEY, GOOD_HEADER, pl);
	CHECK(strlen(t) <= NB_JWT_MAX_LEN);
	CHECK_INT(verify(t, &c, &why), 0);
	free(t);
	free(pl);
	nb_buf_dispose(&extra);

	/* A megabyte of junk. */
	size_t big = 1 << 20;
	char *junk = malloc(big);
	memset(junk, 'A', big);
	junk[1000] = '.';
	junk[2000] = '.';
	CHECK_INT(nb_jwt_verify(KEY, sizeof KEY, ISS, AUD, junk, big, NOW, &c, &why), -1);
	free(junk);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	T_RUN(test_round_trip);
	T_RUN(test_sign_rejects_bad_arguments);
	T_RUN(test_forge_helper_is_faithful);
	T_RUN(test_alg_none);
	T_RUN(test_other_algs_resigned);
	T_RUN(test_header_typ_crit_and_shape);
	T_RUN(test_wrong_key);
	T_RUN(test_every_bit_flip);
	T_RUN(test_flip_in_each_part_resigned);
	T_RUN(test_time_claims);
	T_RUN(test_iss_aud);
	T_RUN(test_sub_jti);
	T_RUN(test_malformed);
	T_RUN(test_huge_token);
	return t_done();
}
