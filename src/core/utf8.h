/*
 * utf8.h — UTF-8 validation and code point helpers.
 *
 * Validation is strict (RFC 3629): no overlong forms, no surrogates, nothing
 * above U+10FFFF.
 */
#ifndef NB_CORE_UTF8_H
#define NB_CORE_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/** True if s[0..n) is valid UTF-8. */
bool nb_utf8_valid(const char *s, size_t n);
/**
 * Decodes one code point at s[0..n). Returns the byte length (1–4) and sets
 * *cp, or returns -1 for an invalid or truncated sequence (n == 0 too).
 */
int nb_utf8_decode(const char *s, size_t n, uint32_t *cp);
/** Number of code points in valid UTF-8 s[0..n). */
size_t nb_utf8_count(const char *s, size_t n);
/** Length of the longest prefix of valid UTF-8 s[0..n) holding at most max code points. */
size_t nb_utf8_prefix(const char *s, size_t n, size_t max_cp);
/** Appends s[0..n) to out, replacing each invalid byte with U+FFFD. Returns the number replaced. */
size_t nb_utf8_sanitize(nb_buf_t *out, const char *s, size_t n);
/**
 * True if s[0..n) is fit for a one-line label a person reads (a title, a
 * display name): valid UTF-8, no control character (C0, DEL, C1; tab and
 * newline included), no bidirectional override, embedding or isolate
 * (U+202A–U+202E, U+2066–U+2069), no line or paragraph separator, and not
 * empty or whitespace only. Such characters reorder or hide what another
 * user is shown.
 */
bool nb_utf8_label_ok(const char *s, size_t n);
/** Appends the UTF-8 encoding of cp (U+FFFD if invalid). */
void nb_utf8_encode(nb_buf_t *out, uint32_t cp);

#endif
