/*
 * validate.h — checks and normalisation of user-supplied account fields.
 *
 * Pure functions over byte ranges (inputs need not be NUL-terminated). Each
 * returns 0 when the value is acceptable, or NB_EINVALID (422) and, if why is
 * not NULL, a short static message fit for the client ("must be 10 to 1024
 * characters"). Limits are in bytes where the protocol counts bytes (e-mail,
 * RFC 5321) and in code points where a person counts characters.
 */
#ifndef NB_AUTH_VALIDATE_H
#define NB_AUTH_VALIDATE_H

#include <stddef.h>

/** Longest e-mail address accepted, in bytes (RFC 5321 path limit minus "<>"). */
#define NB_EMAIL_MAX 254
/** Password length bounds, in code points. */
#define NB_PASSWORD_MIN_CHARS 10
#define NB_PASSWORD_MAX_CHARS 1024
/** Longest display name, in code points. */
#define NB_DISPLAY_NAME_MAX_CHARS 200

/**
 * Validates and normalises an e-mail address in[0..len) into out (outlen
 * bytes; NB_EMAIL_MAX + 1 always suffices), NUL-terminated.
 * Leading and trailing ASCII whitespace is trimmed; the rest must be valid
 * UTF-8 without control characters or Unicode spaces and invisible format
 * characters (U+00A0, U+2000–U+200F, U+2028–U+202F, U+FEFF, ...), at most NB_EMAIL_MAX bytes, with exactly
 * one '@'. The local part is 1–64 bytes of RFC 5322 "atext" (letters, digits,
 * !#$%&'*+-/=?^_`{|}~) or non-ASCII characters, with dots between them (not
 * first, last or doubled); quoted local parts are not supported. The domain
 * is 1–253 bytes of at least two dot-separated labels of 1–63 bytes each,
 * made of [A-Za-z0-9-] or non-ASCII characters and not starting or ending
 * with '-'. The result is the address's one canonical form: Unicode NFC,
 * then case-folded (ICU full folding), then NFC again; the canonical form
 * must itself pass the rules above. A local part that mixes scripts like a
 * lookalike (ICU spoof checker, highly restrictive level: e.g. a Cyrillic
 * 'а' among Latin letters) is refused. Returns 0 or NB_EINVALID (out then
 * holds "").
 */
int nb_email_normalize(const char *in, size_t len, char *out, size_t outlen, const char **why);

/**
 * Checks a new password pw[0..len): valid UTF-8, no NUL, and
 * NB_PASSWORD_MIN_CHARS to NB_PASSWORD_MAX_CHARS code points. Nothing else
 * (no composition rules, per NIST SP 800-63B). Returns 0 or NB_EINVALID.
 */
int nb_password_check(const char *pw, size_t len, const char **why);

/**
 * Checks a display name s[0..len): nb_utf8_label_ok (valid UTF-8, no
 * control characters, bidi overrides or isolates, not whitespace only), at
 * most NB_DISPLAY_NAME_MAX_CHARS code points. The empty string is valid
 * (the caller stores it as null). Returns 0 or NB_EINVALID.
 */
int nb_display_name_check(const char *s, size_t len, const char **why);

#endif
