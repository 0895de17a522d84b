/*
 * test_auth.c — unit tests of the pure auth primitives: base64url,
 * Argon2id passwords, refresh tokens and one-time codes, field validation,
 * and the bearer check's table of verified tokens. (JWT and the rate limiter
 * have their own files.)
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/jwt.h"
#include "auth/password.h"
#include "auth/service.h"
#include "auth/secret.h"
#include "auth/validate.h"
#include "core/b64.h"
#include "core/config.h"
#include "core/err.h"
#include "core/timeutil.h"
#include "t.h"

/* Decodes a C string; returns the decoded length or -1. */
static long dec(const char *s, unsigned char *out, size_t outmax)
{
	unsigned char *p;
	size_t n;
	if (nb_b64url_decode(s, strlen(s), &p, &n) != 0) {
		CHECK(p == NULL && n == 0);
		return -1;
	}
	if (n <= outmax)
		memcpy(out, p, n);
	free(p);
	return (long)n;
}

static void test_b64_rfc4648_vectors(void)
{
	/* RFC 4648 §10, padding removed. */
	static const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	static const char *enc[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
	for (int i = 0; i < 7; i++) {
		char *e = nb_b64url_encode(plain[i], strlen(plain[i]));
		CHECK_STR(e, enc[i]);
		CHECK_INT(strlen(e), NB_B64URL_ENCLEN(strlen(plain[i])));
		free(e);
		unsigned char out[16];
		CHECK_INT(dec(enc[i], out, sizeof out), strlen(plain[i]));
		CHECK(memcmp(out, plain[i], strlen(plain[i])) == 0);
	}
	/* The URL-safe alphabet: 0xfb 0xff -> "-_8". */
	unsigned char u[2] = {0xfb, 0xff};
	char *e = nb_b64url_encode(u, 2);
	CHECK_STR(e, "-_8");
	free(e);
	char small[4];
	CHECK_INT(nb_b64url_encode_buf(u, 2, small, sizeof small), 3);
	CHECK_STR(small, "-_8");
	CHECK_INT(nb_b64url_encode_buf(u, 2, small, 3), -1);
}

static void test_b64_strict_decode(void)
{
	unsigned char out[16];
	CHECK_INT(dec("-_8", out, sizeof out), 2);
	CHECK(out[0] == 0xfb && out[1] == 0xff);
	CHECK_INT(dec("+/8", out, sizeof out), -1);     /* standard alphabet */
	CHECK_INT(dec("Zg==", out, sizeof out), -1);    /* padding */
	CHECK_INT(dec("Zg=", out, sizeof out), -1);
	CHECK_INT(dec("Zm9v ", out, sizeof out), -1);   /* whitespace */
	CHECK_INT(dec(" Zm9v", out, sizeof out), -1);
	CHECK_INT(dec("Zm\n9v", out, sizeof out), -1);
	CHECK_INT(dec("Zh", out, sizeof out), -1);      /* non-canonical trailing bits */
	CHECK_INT(dec("Zm9", out, sizeof out), -1);
	CHECK_INT(dec("Z", out, sizeof out), -1);       /* length 1 mod 4 */
	CHECK_INT(dec("Zm9vY", out, sizeof out), -1);
	CHECK_INT(dec("Zm9v.", out, sizeof out), -1);
	/* No byte outside the alphabet is an alias of one inside (libsodium 1.0.18 bug). */
	for (int c = 0; c < 256; c++) {
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
		    c == '_')
			continue;
		char s[5] = {'A', 'A', 'A', (char)c, '\0'};
		unsigned char *q;
		size_t qn;
		CHECK_MSG(nb_b64url_decode(s, 4, &q, &qn) == -1, "byte 0x%02x accepted", c);
		CHECK_MSG(nb_b64url_decode_buf(s, 4, out, sizeof out, &qn) == -1, "byte 0x%02x accepted", c);
	}
	/* An embedded NUL is not silently the end of the input. */
	unsigned char *p;
	size_t n;
	CHECK_INT(nb_b64url_decode("Zm9v\0Zm9v", 9, &p, &n), -1);
	/* Only the first n bytes are read. */
	CHECK_INT(nb_b64url_decode("Zm9vXXXX", 4, &p, &n), 0);
	CHECK_INT(n, 3);
	free(p);
	/* The fixed-buffer form refuses what does not fit. */
	size_t got = 99;
	CHECK_INT(nb_b64url_decode_buf("Zm9vYmFy", 8, out, 5, &got), -1);
	CHECK_INT(nb_b64url_decode_buf("Zm9vYmFy", 8, out, 6, &got), 0);
	CHECK_INT(got, 6);
}

static void test_b64_round_trip_random(void)
{
	unsigned char in[300], *out;
	size_t n;
	for (size_t len = 0; len < sizeof in; len += 7) {
		randombytes_buf(in, len);
		char *e = nb_b64url_encode(in, len);
		CHECK_INT(strlen(e), NB_B64URL_ENCLEN(len));
		CHECK(strspn(e, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
		      strlen(e));
		CHECK_INT(nb_b64url_decode(e, strlen(e), &out, &n), 0);
		CHECK_INT(n, len);
		CHECK(out && memcmp(out, in, len) == 0);
		free(out);
		free(e);
	}
}

static void test_password_hash_verify(void)
{
	char h[NB_PASSWORD_HASH_MAX];
	const char *pw = "correct horse battery staple";
	int64_t t0 = nb_mono_ms();
	CHECK_INT(nb_password_hash(pw, strlen(pw), h), 0);
	int64_t took = nb_mono_ms() - t0;
	CHECK_MSG(strncmp(h, "$argon2id$v=19$m=19456,t=2,p=1$", 31) == 0, "%s", h);
	CHECK_MSG(took < 5000, "hashing took %lld ms", (long long)took);
	CHECK_INT(nb_password_verify(h, pw, strlen(pw)), 0);
	CHECK_INT(nb_password_verify(h, "correct horse battery stapl", strlen(pw) - 1), -1);
	CHECK_INT(nb_password_verify(h, "Correct horse battery staple", strlen(pw)), -1);
	CHECK_INT(nb_password_verify(h, "", 0), -1);
	CHECK(!nb_password_needs_rehash(h));

	/* Two hashes of one password differ (random salt) and both verify. */
	char h2[NB_PASSWORD_HASH_MAX];
	CHECK_INT(nb_password_hash(pw, strlen(pw), h2), 0);
	CHECK(strcmp(h, h2) != 0);
	CHECK_INT(nb_password_verify(h2, pw, strlen(pw)), 0);

	/* Embedded NUL: the length counts, not the C string. */
	char h3[NB_PASSWORD_HASH_MAX];
	CHECK_INT(nb_password_hash("abc\0def", 7, h3), 0);
	CHECK_INT(nb_password_verify(h3, "abc\0def", 7), 0);
	CHECK_INT(nb_password_verify(h3, "abc", 3), -1);
}

static void test_password_bad_hashes(void)
{
	const char *pw = "correct horse battery staple";
	CHECK_INT(nb_password_verify("", pw, strlen(pw)), -1);
	CHECK_INT(nb_password_verify("garbage", pw, strlen(pw)), -1);
	CHECK_INT(nb_password_verify(NULL, pw, strlen(pw)), -1);
	CHECK(nb_password_needs_rehash(""));
	CHECK(nb_password_needs_rehash(NULL));
	CHECK(nb_password_needs_rehash("$argon2id$v=19$m=19456,t=2,p=1$garbage"));

	/* A weaker (argon2i) hash of the right password is refused outright. */
	char weak[crypto_pwhash_STRBYTES];
	CHECK_INT(crypto_pwhash_str_alg(weak, pw, strlen(pw), 3, 8u << 20, crypto_pwhash_ALG_ARGON2I13), 0);
	CHECK_INT(nb_password_verify(weak, pw, strlen(pw)), -1);
	CHECK(nb_password_needs_rehash(weak));
}

static void test_password_needs_rehash_lower_params(void)
{
	const char *pw = "correct horse battery staple";
	char low[crypto_pwhash_STRBYTES];
	CHECK_INT(crypto_pwhash_str_alg(low, pw, strlen(pw), 1, 8u << 20, crypto_pwhash_ALG_ARGON2ID13), 0);
	CHECK_INT(nb_password_verify(low, pw, strlen(pw)), 0); /* still verifies... */
	CHECK(nb_password_needs_rehash(low));                  /* ...but should be upgraded */
	CHECK_INT(crypto_pwhash_str_alg(low, pw, strlen(pw), 2, 8u << 20, crypto_pwhash_ALG_ARGON2ID13), 0);
	CHECK(nb_password_needs_rehash(low));
}

static void test_password_dummy_costs_the_same(void)
{
	char h[NB_PASSWORD_HASH_MAX];
	const char *pw = "correct horse battery staple";
	nb_password_init();
	CHECK_INT(nb_password_hash(pw, strlen(pw), h), 0);
	/* Best of 3 each, to be robust to scheduling noise. */
	int64_t best_real = INT64_MAX, best_dummy = INT64_MAX;
	for (int i = 0; i < 3; i++) {
		int64_t t0 = nb_mono_us();
		(void)nb_password_verify(h, "wrong password!", 15);
		int64_t t1 = nb_mono_us();
		nb_password_verify_dummy("wrong password!", 15);
		int64_t t2 = nb_mono_us();
		if (t1 - t0 < best_real)
			best_real = t1 - t0;
		if (t2 - t1 < best_dummy)
			best_dummy = t2 - t1;
	}
	CHECK_MSG(best_dummy * 2 > best_real && best_real * 2 > best_dummy,
		  "real %lld us, dummy %lld us", (long long)best_real, (long long)best_dummy);
}

static bool all_b64url(const char *s)
{
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == strlen(s);
}

static void test_refresh_tokens(void)
{
	char t1[64], t2[64];
	unsigned char h1[32], h2[32], again[32], want[32];
	nb_refresh_token_new(t1, h1);
	nb_refresh_token_new(t2, h2);
	CHECK_INT(strlen(t1), NB_REFRESH_TOKEN_LEN);
	CHECK(all_b64url(t1));
	CHECK(strcmp(t1, t2) != 0);
	CHECK(memcmp(h1, h2, 32) != 0);
	/* The hash is SHA-256 of the token string. */
	crypto_hash_sha256(want, (const unsigned char *)t1, strlen(t1));
	CHECK(memcmp(h1, want, 32) == 0);
	CHECK_INT(nb_refresh_token_hash(t1, strlen(t1), again), 0);
	CHECK(memcmp(h1, again, 32) == 0);

	CHECK_INT(nb_refresh_token_hash(t1, 42, again), -1);
	CHECK_INT(nb_refresh_token_hash("", 0, again), -1);
	CHECK_INT(nb_refresh_token_hash(NULL, 43, again), -1);
	char bad[64];
	memcpy(bad, t1, 44);
	bad[10] = '+';
	CHECK_INT(nb_refresh_token_hash(bad, 43, again), -1);
	memcpy(bad, t1, 44);
	bad[42] = 'B'; /* 43 chars carry 258 bits: the last char's low 2 must be 0 */
	CHECK_INT(nb_refresh_token_hash(bad, 43, again), -1);
	memcpy(bad, t1, 44);
	strcat(bad, "A");
	CHECK_INT(nb_refresh_token_hash(bad, 44, again), -1);
}

static void test_otp_codes_uniform(void)
{
	int counts[10] = {0};
	for (int i = 0; i < 2000; i++) {
		char c[7];
		memset(c, 'x', sizeof c);
		nb_otp_code_new(c);
		CHECK_INT(strlen(c), 6);
		CHECK_INT(strspn(c, "0123456789"), 6);
		for (int k = 0; k < 6; k++)
			counts[c[k] - '0']++;
	}
	/* 12000 digits, 1200 expected each; 6 sigma is about 200. */
	for (int d = 0; d < 10; d++)
		CHECK_MSG(counts[d] > 1000 && counts[d] < 1400, "digit %d seen %d times", d, counts[d]);
}

static void test_otp_hash(void)
{
	const unsigned char key[32] = "0123456789abcdef0123456789abcdef";
	const unsigned char key2[32] = "0123456789abcdef0123456789abcdeF";
	const char *id = "0190f5a0-0000-7000-8000-000000000001";
	unsigned char h[32], h2[32], want[32];

	nb_otp_hash(key, 32, id, "004217", h);
	/* HMAC-SHA256(key, id ":" code) */
	char msg[64];
	snprintf(msg, sizeof msg, "%s:%s", id, "004217");
	crypto_auth_hmacsha256_state st;
	crypto_auth_hmacsha256_init(&st, key, 32);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)msg, strlen(msg));
	crypto_auth_hmacsha256_final(&st, want);
	CHECK(memcmp(h, want, 32) == 0);

	nb_otp_hash(key2, 32, id, "004217", h2);
	CHECK(memcmp(h, h2, 32) != 0);
	nb_otp_hash(key, 32, "0190f5a0-0000-7000-8000-000000000002", "004217", h2);
	CHECK(memcmp(h, h2, 32) != 0);
	nb_otp_hash(key, 32, id, "004218", h2);
	CHECK(memcmp(h, h2, 32) != 0);

	CHECK_INT(nb_otp_verify(key, 32, id, "004217", 6, h), 0);
	CHECK_INT(nb_otp_verify(key, 32, id, "004218", 6, h), -1);
	CHECK_INT(nb_otp_verify(key2, 32, id, "004217", 6, h), -1);
	CHECK_INT(nb_otp_verify(key, 32, id, "04217", 5, h), -1);
	CHECK_INT(nb_otp_verify(key, 32, id, "0042170", 7, h), -1);
	CHECK_INT(nb_otp_verify(key, 32, id, "00421a", 6, h), -1);
	CHECK_INT(nb_otp_verify(key, 32, id, NULL, 6, h), -1);
}

static void test_hex(void)
{
	unsigned char b[4] = {0x00, 0xab, 0x10, 0xff}, back[4];
	char s[9];
	CHECK_INT(nb_hex_encode(b, 4, s, sizeof s), 0);
	CHECK_STR(s, "00ab10ff");
	CHECK_INT(nb_hex_encode(b, 4, s, 8), -1);
	CHECK_INT(nb_hex_decode("00AB10ff", 8, back, 4), 0);
	CHECK(memcmp(b, back, 4) == 0);
	CHECK_INT(nb_hex_decode("00ab10f", 7, back, 4), -1);
	CHECK_INT(nb_hex_decode("00ab10fg", 8, back, 4), -1);
	CHECK_INT(nb_hex_decode("00ab10f ", 8, back, 4), -1);
	CHECK_INT(nb_hex_decode("00ab10ff00", 10, back, 4), -1);
	for (int c = 0x80; c < 256; c++) {
		char s2[9] = "00ab10f?";
		s2[7] = (char)c;
		CHECK_MSG(nb_hex_decode(s2, 8, back, 4) == -1, "byte 0x%02x accepted", c);
	}
}

/* Normalises a C string; returns the result or NULL (why in *why). */
static const char *em(const char *in, const char **why)
{
	static char out[NB_EMAIL_MAX + 1];
	const char *w = NULL;
	int rc = nb_email_normalize(in, strlen(in), out, sizeof out, &w);
	if (why)
		*why = w;
	if (rc != 0) {
		CHECK_INT(rc, NB_EINVALID);
		CHECK(w != NULL);
		CHECK_STR(out, "");
		return NULL;
	}
	return out;
}

static void test_email_accepts_and_normalizes(void)
{
	CHECK_STR(em("alice@example.com", NULL), "alice@example.com");
	CHECK_STR(em("  Alice.Smith+tag@Example.COM \t\r\n", NULL), "alice.smith+tag@example.com");
	CHECK_STR(em("o'brien@sub.example.co.uk", NULL), "o'brien@sub.example.co.uk");
	CHECK_STR(em("a!#$%&'*+-/=?^_`{|}~@x-y.z9", NULL), "a!#$%&'*+-/=?^_`{|}~@x-y.z9");
	CHECK_STR(em("José@Bücher.DE", NULL), "josé@bücher.de");
	CHECK_STR(em("用户@例子.广告", NULL), "用户@例子.广告");

	/* Lengths at the limits: 64-byte local part, 63-byte label, 254 total. */
	char buf[400], l64[65], lab63[64];
	memset(l64, 'a', 64);
	l64[64] = '\0';
	memset(lab63, 'b', 63);
	lab63[63] = '\0';
	snprintf(buf, sizeof buf, "%s@%s.com", l64, lab63);
	CHECK_STR(em(buf, NULL), buf);
	/* 64 + 1 + (63+1)*2 + 61 = 254 */
	char d61[62];
	memset(d61, 'c', 61);
	d61[61] = '\0';
	snprintf(buf, sizeof buf, "%s@%s.%s.%s", l64, lab63, lab63, d61);
	CHECK_INT(strlen(buf), 254);
	CHECK_STR(em(buf, NULL), buf);
	/* Output buffer too small is an error, not a truncation. */
	char tiny[8];
	const char *w;
	CHECK_INT(nb_email_normalize("alice@example.com", 17, tiny, sizeof tiny, &w), NB_EINVALID);
}

static void test_email_rejects(void)
{
	const char *why;
	static const char *bad[] = {
		"", "   ", "alice", "alice@", "@example.com", "alice@example", "a@b@example.com",
		"alice@example.com.", "alice@.example.com", "alice@example..com", "alice@-example.com",
		"alice@example-.com", "alice@exa_mple.com", "alice@exa mple.com", "al ice@example.com",
		"\"alice\"@example.com", "alice(x)@example.com", "a,b@example.com", "a<b@example.com",
		".alice@example.com", "alice.@example.com", "al..ice@example.com", "alice@[127.0.0.1]",
		"alice@example.com\r\nBcc: x@y.z", "ali\tce@example.com", "alice\x7f@example.com",
		"alice@exam\xc2\x85ple.com", ("ali\xe2\x80\x8b" "ce@example.com"), "alice\xc2\xa0@example.com",
		"alice@ex\xff.com", "alice@ex\xc0\xae.com", "alice\\@example.com",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECK_MSG(em(bad[i], &why) == NULL, "accepted \"%s\"", bad[i]);
	/* Embedded NUL. */
	char out[NB_EMAIL_MAX + 1];
	CHECK_INT(nb_email_normalize("alice@ex\0ample.com", 18, out, sizeof out, &why), NB_EINVALID);

	char buf[400], l65[66], lab64[65];
	memset(l65, 'a', 65);
	l65[65] = '\0';
	memset(lab64, 'b', 64);
	lab64[64] = '\0';
	snprintf(buf, sizeof buf, "%s@example.com", l65);
	CHECK(em(buf, &why) == NULL);
	snprintf(buf, sizeof buf, "alice@%s.com", lab64);
	CHECK(em(buf, &why) == NULL);
	/* 255 bytes in total. */
	char d62[63];
	memset(d62, 'c', 62);
	d62[62] = '\0';
	snprintf(buf, sizeof buf, "%.64s@%.63s.%.63s.%s", l65, lab64, lab64, d62);
	CHECK_INT(strlen(buf), 255);
	CHECK(em(buf, &why) == NULL);
	CHECK_STR(why, "must be at most 254 bytes");
	CHECK(em("nobody", &why) == NULL);
	CHECK_STR(why, "must contain exactly one '@'");
}

static void test_password_check(void)
{
	const char *why = NULL;
	CHECK_INT(nb_password_check("0123456789", 10, &why), 0);
	CHECK(why == NULL);
	CHECK_INT(nb_password_check("012345678", 9, &why), NB_EINVALID);
	CHECK_STR(why, "must be 10 to 1024 characters");
	CHECK_INT(nb_password_check("", 0, &why), NB_EINVALID);
	/* Counted in code points: 10 two-byte characters pass, 9 do not. */
	const char *e10 = "éééééééééé";
	CHECK_INT(nb_password_check(e10, strlen(e10), &why), 0);
	CHECK_INT(nb_password_check(e10, strlen(e10) - 2, &why), NB_EINVALID);
	/* 5 emoji are 20 bytes but 5 characters. */
	const char *emoji = "😀😀😀😀😀";
	CHECK_INT(nb_password_check(emoji, strlen(emoji), &why), NB_EINVALID);
	CHECK_INT(nb_password_check("0123456789\0", 11, &why), NB_EINVALID);
	CHECK_INT(nb_password_check("0123456789\xff", 11, &why), NB_EINVALID);
	CHECK_STR(why, "must be valid UTF-8 without NUL characters");
	CHECK_INT(nb_password_check("pass word with spaces", 21, NULL), 0);

	char *big = malloc(4 * 1025);
	memset(big, 'x', 1025);
	CHECK_INT(nb_password_check(big, 1024, &why), 0);
	CHECK_INT(nb_password_check(big, 1025, &why), NB_EINVALID);
	/* 1024 four-byte characters (4096 bytes) pass. */
	for (int i = 0; i < 1025; i++)
		memcpy(big + 4 * i, "😀", 4);
	CHECK_INT(nb_password_check(big, 4 * 1024, &why), 0);
	CHECK_INT(nb_password_check(big, 4 * 1025, &why), NB_EINVALID);
	free(big);
}

static void test_display_name_check(void)
{
	const char *why = NULL;
	CHECK_INT(nb_display_name_check("", 0, &why), 0);
	CHECK_INT(nb_display_name_check(NULL, 0, &why), 0);
	CHECK_INT(nb_display_name_check("Ada Lovelace", 12, &why), 0);
	CHECK_INT(nb_display_name_check("Zoë 🦊 Ñ", strlen("Zoë 🦊 Ñ"), &why), 0);
	CHECK_INT(nb_display_name_check("Ada\nLovelace", 12, &why), NB_EINVALID);
	CHECK_STR(why, "must be visible text without control characters or bidirectional overrides");
	CHECK_INT(nb_display_name_check("Ada\0", 4, &why), NB_EINVALID);
	CHECK_INT(nb_display_name_check("Ada\x1b[31m", 8, &why), NB_EINVALID);
	CHECK_INT(nb_display_name_check("Ada\x7f", 4, &why), NB_EINVALID);
	CHECK_INT(nb_display_name_check("Ada\xc2\x9b", 5, &why), NB_EINVALID); /* C1 CSI */
	CHECK_INT(nb_display_name_check("Ada\xff", 4, &why), NB_EINVALID);
	char buf[4 * 201];
	for (int i = 0; i < 201; i++)
		memcpy(buf + 4 * i, "🦊", 4);
	CHECK_INT(nb_display_name_check(buf, 4 * 200, &why), 0);
	CHECK_INT(nb_display_name_check(buf, 4 * 201, &why), NB_EINVALID);
	CHECK_STR(why, "must be at most 200 characters");
	/* issue 8.16: bidi overrides and isolates, whitespace only */
	CHECK_INT(nb_display_name_check("Ada \xe2\x80\xae" "ecilA", 10, &why), NB_EINVALID); /* U+202E RLO */
	CHECK_INT(nb_display_name_check("\xe2\x81\xa6" "Ada", 6, &why), NB_EINVALID);         /* U+2066 LRI */
	CHECK_INT(nb_display_name_check("   ", 3, &why), NB_EINVALID);
	CHECK_INT(nb_display_name_check("\xe3\x80\x80", 3, &why), NB_EINVALID); /* ideographic space only */
	CHECK_INT(nb_display_name_check("Ada\tL", 5, &why), NB_EINVALID);
}

/* Issue 8.11: one canonical form — NFC, then case-folded. */
static void test_email_canonical_form(void)
{
	/* case variants are one address */
	CHECK_STR(em("KIM@Example.com", NULL), "kim@example.com");
	CHECK_STR(em("kIm@EXAMPLE.COM", NULL), "kim@example.com");
	/* a Kelvin sign K (U+212A) is the letter k */
	CHECK_STR(em("\xe2\x84\xaaim@example.com", NULL), "kim@example.com");
	/* NFD (e + U+0301) and NFC (U+00E9) spellings are one address */
	CHECK_STR(em("jose\xcc\x81@example.com", NULL), "jos\xc3\xa9@example.com");
	CHECK_STR(em("JOS\xc3\x89@example.com", NULL), "jos\xc3\xa9@example.com");
	/* full case folding: sharp s folds to ss; Greek final sigma to sigma */
	CHECK_STR(em("Stra\xc3\x9f" "e@example.de", NULL), "strasse@example.de");
	/* one script of any kind is fine */
	CHECK_STR(em("\xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd@example.ru", NULL), "\xd0\xb8\xd0\xb2\xd0\xb0\xd0\xbd@example.ru");
	/* the output is already canonical: normalising it again changes nothing */
	const char *again = em("jos\xc3\xa9@example.com", NULL);
	CHECK_STR(again, "jos\xc3\xa9@example.com");
}

/* Issue 8.11: a Latin local part with a Cyrillic lookalike is refused. */
static void test_email_mixed_script_lookalikes(void)
{
	const char *why = NULL;
	/* "pаypal" with U+0430 CYRILLIC SMALL LETTER A */
	CHECK(em("p\xd0\xb0ypal@example.com", &why) == NULL);
	CHECK_STR(why, "local part mixes scripts (looks like another address)");
	/* "kіm" with U+0456 CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I */
	CHECK(em("k\xd1\x96m@example.com", &why) == NULL);
	/* Greek omicron among Latin letters */
	CHECK(em("g\xce\xbf\xce\xbfgle@example.com", &why) == NULL);
	/* Latin with Japanese is a legitimate mix (highly restrictive allows it) */
	CHECK(em("taro\xe5\xa4\xaa\xe9\x83\x8e@example.jp", &why) != NULL);
}

/* The bearer check remembers verified tokens per thread: a hit must be the
 * same bytes, still unexpired, verified under the keys of now. */
static void test_bearer_cache(void)
{
	static const char sub[] = "01937000-0000-7000-8000-000000000001";
	static char a[] = "unit-test-secret-A-unit-test-secret-A-0123456789";
	static char b[] = "unit-test-secret-B-unit-test-secret-B-0123456789";
	nb_cfg.jwt_issuer = (char *)"notebookd";
	nb_cfg.jwt_audience = (char *)"notebookd-api";
	nb_cfg.jwt_secret = a;
	nb_cfg.jwt_secret_previous = NULL;
	char err[256], uid[37], hdr[NB_JWT_MAX_LEN + 16];
	CHECK_INT(nb_auth_init(err, sizeof err), 0);
	int64_t now = nb_now_ms() / 1000;
	char *tok = nb_jwt_sign((const unsigned char *)a, strlen(a), "notebookd", "notebookd-api", sub, now, 600);
	CHECK(tok != NULL);
	snprintf(hdr, sizeof hdr, "Bearer %s", tok);
	for (int i = 0; i < 3; i++) { /* verified, then from the table */
		memset(uid, 0, sizeof uid);
		CHECK_INT(nb_auth_check_bearer(hdr, uid), 0);
		CHECK_STR(uid, sub);
	}
	/* same signature (same slot), one payload byte changed: never a hit */
	char *dot = strchr(hdr + 7, '.');
	dot[3] = dot[3] == 'A' ? 'B' : 'A';
	CHECK_INT(nb_auth_check_bearer(hdr, uid), NB_EUNAUTH);
	dot[3] = tok[dot + 3 - hdr - 7];
	CHECK_INT(nb_auth_check_bearer(hdr, uid), 0);
	/* the keys change: the remembered token is checked again, and refused */
	nb_auth_shutdown();
	nb_cfg.jwt_secret = b;
	CHECK_INT(nb_auth_init(err, sizeof err), 0);
	CHECK_INT(nb_auth_check_bearer(hdr, uid), NB_EUNAUTH);
	free(tok);
	/* a token about to expire: accepted (and remembered), then refused once its exp passes */
	now = nb_now_ms() / 1000;
	tok = nb_jwt_sign((const unsigned char *)b, strlen(b), "notebookd", "notebookd-api", sub, now - 599, 600);
	CHECK(tok != NULL);
	snprintf(hdr, sizeof hdr, "Bearer %s", tok);
	int64_t exp = now + 1;
	int rc = nb_auth_check_bearer(hdr, uid);
	if (nb_now_ms() / 1000 < exp)
		CHECK_INT(rc, 0);
	int64_t t0 = nb_now_ms();
	while (nb_auth_check_bearer(hdr, uid) == 0 && nb_now_ms() - t0 < 5000) {
		struct timespec ms = {0, 1000000}; /* poll the state each millisecond */
		nanosleep(&ms, NULL);
	}
	CHECK_INT(nb_auth_check_bearer(hdr, uid), NB_EUNAUTH);
	CHECK(nb_now_ms() / 1000 >= exp); /* refused only at its exp, not before */
	free(tok);
	nb_auth_shutdown();
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	T_RUN(test_b64_rfc4648_vectors);
	T_RUN(test_b64_strict_decode);
	T_RUN(test_b64_round_trip_random);
	T_RUN(test_password_hash_verify);
	T_RUN(test_password_bad_hashes);
	T_RUN(test_password_needs_rehash_lower_params);
	T_RUN(test_password_dummy_costs_the_same);
	T_RUN(test_refresh_tokens);
	T_RUN(test_otp_codes_uniform);
	T_RUN(test_otp_hash);
	T_RUN(test_hex);
	T_RUN(test_email_accepts_and_normalizes);
	T_RUN(test_email_rejects);
	T_RUN(test_password_check);
	T_RUN(test_display_name_check);
	T_RUN(test_email_canonical_form);
	T_RUN(test_email_mixed_script_lookalikes);
	T_RUN(test_bearer_cache);
	return t_done();
}
