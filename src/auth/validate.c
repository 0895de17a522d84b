/*
 * validate.c — account field validation (see validate.h).
 *
 * The e-mail rules are a deliberately small, unambiguous subset of RFC 5321 /
 * 5322 / 6531: dot-atom local parts and host-name domains, no quoted strings,
 * comments or address literals. What we accept we can always put in an SMTP
 * envelope and a mail header without quoting, and a control character (the
 * way to inject headers) never gets through.
 *
 * The canonical form (ICU): NFC, then full case folding, then NFC again (a
 * fold can denormalise), so "Kim", "KIM", "\u212Aim" (Kelvin sign) and NFD
 * spellings are one address. A local part that mixes scripts in a way
 * ICU's spoof checker calls less than highly restrictive (Latin with a
 * Cyrillic lookalike) is refused; a single-script local part in any script
 * is fine.
 */
#include "auth/validate.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <pthread.h>
#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/uspoof.h>
#include <unicode/ustring.h>

#include "core/err.h"
#include "core/utf8.h"

#define EMAIL_LOCAL_MAX 64
#define EMAIL_DOMAIN_MAX 253
#define EMAIL_LABEL_MAX 63

static int invalid(const char **why, const char *msg)
{
	if (why)
		*why = msg;
	return NB_EINVALID;
}

static bool is_ascii_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static bool is_control(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F);
}

/* Invisible or spacing code points that have no place in an address. */
static bool is_unicode_space_or_format(uint32_t cp)
{
	return cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200F) ||
	       (cp >= 0x2028 && cp <= 0x202F) || (cp >= 0x205F && cp <= 0x206F) || cp == 0x3000 ||
	       cp == 0xFEFF;
}

/*
 * True if s[0..n) is valid UTF-8 with no control character (NUL included)
 * and, if strict, none of the invisible characters above either.
 */
static bool utf8_no_controls(const char *s, size_t n, bool strict)
{
	size_t i = 0;
	while (i < n) {
		uint32_t cp;
		int l = nb_utf8_decode(s + i, n - i, &cp);
		if (l < 0 || is_control(cp) || (strict && is_unicode_space_or_format(cp)))
			return false;
		i += (size_t)l;
	}
	return true;
}

static bool is_atext(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80)
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static const char *check_local(const char *s, size_t n)
{
	if (n == 0 || n > EMAIL_LOCAL_MAX)
		return "local part must be 1 to 64 bytes";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (i == 0 || i == n - 1 || s[i - 1] == '.')
				return "misplaced dot in local part";
		} else if (!is_atext(c)) {
			return "invalid character in local part";
		}
	}
	return NULL;
}

static bool is_label_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c >= 0x80;
}

static const char *check_domain(const char *s, size_t n)
{
	if (n == 0 || n > EMAIL_DOMAIN_MAX)
		return "domain must be 1 to 253 bytes";
	size_t labels = 0, start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && s[i] != '.') {
			if (!is_label_char((unsigned char)s[i]))
				return "invalid character in domain";
			continue;
		}
		size_t ll = i - start;
		if (ll == 0 || ll > EMAIL_LABEL_MAX)
			return "domain labels must be 1 to 63 bytes";
		if (s[start] == '-' || s[i - 1] == '-')
			return "domain labels cannot start or end with '-'";
		labels++;
		start = i + 1;
	}
	if (labels < 2)
		return "domain must contain a dot";
	return NULL;
}

/* Validates the syntax of in[0..len) (trimmed); NULL or the reason. */
static const char *check_syntax(const char *in, size_t len, size_t *local_len)
{
	const char *msg;
	if (len == 0)
		return "is required";
	if (len > NB_EMAIL_MAX)
		return "must be at most 254 bytes";
	if (!utf8_no_controls(in, len, true))
		return "must be valid UTF-8 without control or space characters";
	const char *at = memchr(in, '@', len);
	if (!at || memchr(at + 1, '@', len - (size_t)(at + 1 - in)))
		return "must contain exactly one '@'";
	*local_len = (size_t)(at - in);
	if ((msg = check_local(in, *local_len)) != NULL || (msg = check_domain(at + 1, len - *local_len - 1)) != NULL)
		return msg;
	return NULL;
}

static USpoofChecker *spoof;
static pthread_once_t spoof_once = PTHREAD_ONCE_INIT;

static void spoof_init(void)
{
	UErrorCode st = U_ZERO_ERROR;
	USpoofChecker *sc = uspoof_open(&st);
	if (U_SUCCESS(st)) {
		uspoof_setChecks(sc, USPOOF_RESTRICTION_LEVEL | USPOOF_INVISIBLE | USPOOF_MIXED_NUMBERS, &st);
		uspoof_setRestrictionLevel(sc, USPOOF_HIGHLY_RESTRICTIVE);
	}
	if (U_FAILURE(st)) {
		if (sc)
			uspoof_close(sc);
		sc = NULL;
	}
	spoof = sc;
}

/* True when the (canonical) local part s[0..n) mixes scripts like a lookalike. */
static bool local_is_spoof(const char *s, size_t n)
{
	bool ascii = true;
	for (size_t i = 0; i < n && ascii; i++)
		ascii = (unsigned char)s[i] < 0x80;
	if (ascii)
		return false;
	pthread_once(&spoof_once, spoof_init);
	if (!spoof)
		return true; /* cannot check: refuse rather than let a lookalike in */
	UErrorCode st = U_ZERO_ERROR;
	int32_t r = uspoof_checkUTF8(spoof, s, (int32_t)n, NULL, &st);
	return U_FAILURE(st) || r != 0;
}

/* NFC, case fold, NFC of in[0..len) into out (UTF-8, NUL-terminated). -1 if it does not fit or fails. */
static int canonicalize(const char *in, size_t len, char *out, size_t outlen)
{
	enum { CAP = 4 * (NB_EMAIL_MAX + 1) };
	UChar a[CAP], b[CAP];
	UErrorCode st = U_ZERO_ERROR;
	const UNormalizer2 *nfc = unorm2_getNFCInstance(&st);
	int32_t n = 0;
	u_strFromUTF8(a, CAP, &n, in, (int32_t)len, &st);
	if (U_FAILURE(st) || n >= CAP)
		return -1;
	int32_t m = unorm2_normalize(nfc, a, n, b, CAP, &st);
	if (U_FAILURE(st) || m >= CAP)
		return -1;
	n = u_strFoldCase(a, CAP, b, m, U_FOLD_CASE_DEFAULT, &st);
	if (U_FAILURE(st) || n >= CAP)
		return -1;
	m = unorm2_normalize(nfc, a, n, b, CAP, &st);
	if (U_FAILURE(st) || m >= CAP)
		return -1;
	int32_t olen = 0;
	u_strToUTF8(out, (int32_t)outlen, &olen, b, m, &st);
	if (U_FAILURE(st) || st == U_STRING_NOT_TERMINATED_WARNING || (size_t)olen >= outlen)
		return -1;
	out[olen] = '\0';
	return 0;
}

int nb_email_normalize(const char *in, size_t len, char *out, size_t outlen, const char **why)
{
	const char *msg = NULL;
	size_t local_len = 0;
	if (out && outlen)
		out[0] = '\0';
	if (!in || !out)
		return invalid(why, "is required");
	while (len > 0 && is_ascii_space((unsigned char)in[0])) {
		in++;
		len--;
	}
	while (len > 0 && is_ascii_space((unsigned char)in[len - 1]))
		len--;
	if ((msg = check_syntax(in, len, &local_len)) != NULL)
		return invalid(why, msg);
	char canon[4 * (NB_EMAIL_MAX + 1)];
	if (canonicalize(in, len, canon, sizeof canon) < 0)
		return invalid(why, "must be at most 254 bytes");
	/* The canonical form must itself be a valid address (folding can lengthen or change it). */
	len = strlen(canon);
	if ((msg = check_syntax(canon, len, &local_len)) != NULL)
		return invalid(why, msg);
	if (local_is_spoof(canon, local_len))
		return invalid(why, "local part mixes scripts (looks like another address)");
	if (outlen < len + 1)
		return invalid(why, "must be at most 254 bytes");
	memcpy(out, canon, len + 1);
	if (why)
		*why = NULL;
	return 0;
}

int nb_password_check(const char *pw, size_t len, const char **why)
{
	if (!pw)
		return invalid(why, "is required");
	if (memchr(pw, '\0', len) || !nb_utf8_valid(pw, len))
		return invalid(why, "must be valid UTF-8 without NUL characters");
	size_t n = nb_utf8_count(pw, len);
	if (n < NB_PASSWORD_MIN_CHARS || n > NB_PASSWORD_MAX_CHARS)
		return invalid(why, "must be 10 to 1024 characters");
	if (why)
		*why = NULL;
	return 0;
}

int nb_display_name_check(const char *s, size_t len, const char **why)
{
	if (!s && len)
		return invalid(why, "is required");
	if (len && !nb_utf8_label_ok(s, len))
		return invalid(why, "must be visible text without control characters or bidirectional overrides");
	if (len && nb_utf8_count(s, len) > NB_DISPLAY_NAME_MAX_CHARS)
		return invalid(why, "must be at most 200 characters");
	if (why)
		*why = NULL;
	return 0;
}
