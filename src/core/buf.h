/*
 * buf.h — a growable byte buffer.
 *
 * The buffer always keeps a NUL byte after its contents, so `data` can be
 * used as a C string when the contents hold no NUL. Growth is geometric.
 */
#ifndef NB_CORE_BUF_H
#define NB_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct nb_buf {
	char *data; /* owned; NULL until the first append */
	size_t len;
	size_t cap;
} nb_buf_t;

#define NB_BUF_INIT {NULL, 0, 0}

/** Initialises an empty buffer (no allocation). */
void nb_buf_init(nb_buf_t *b);
/** Frees the contents; the buffer can be reused after nb_buf_init. Accepts NULL. */
void nb_buf_dispose(nb_buf_t *b);
/** Makes room for at least `extra` more bytes (plus the trailing NUL). */
void nb_buf_reserve(nb_buf_t *b, size_t extra);
/** Appends n bytes. */
void nb_buf_append(nb_buf_t *b, const void *p, size_t n);
/** Appends a NUL-terminated string. */
void nb_buf_puts(nb_buf_t *b, const char *s);
/** Appends one byte. */
void nb_buf_putc(nb_buf_t *b, char c);
/** Appends formatted text. */
void nb_buf_printf(nb_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Appends formatted text (va_list form). */
void nb_buf_vprintf(nb_buf_t *b, const char *fmt, va_list ap);
/** Appends s[0..n) as a JSON string literal, quotes included (\u00xx for control characters). */
void nb_buf_json_str(nb_buf_t *b, const char *s, size_t n);
/** Flags of nb_buf_json_escape. */
enum { NB_JSON_UPPER_HEX = 1, NB_JSON_SHORT_BF = 2 };
/**
 * Appends s[0..n) as a JSON string literal, quotes included. Escapes '"', '\\' and bytes below 0x20 (\n \r \t, \b \f
 * with NB_JSON_SHORT_BF, else \u00xx; hex digits in upper case with
 * NB_JSON_UPPER_HEX); other bytes are copied (UTF-8 passes).
 */
void nb_buf_json_escape(nb_buf_t *b, const char *s, size_t n, unsigned flags);
/**
 * Appends the JSON text s (n bytes) without its insignificant whitespace:
 * spaces, tabs and newlines outside strings are dropped, strings are copied
 * as they are. For JSON PostgreSQL built (json_build_object prints
 * `"id" : 1, "x" : 2`), so every answer is compact. s must be valid JSON.
 */
void nb_buf_json_compact(nb_buf_t *b, const char *s, size_t n);
/** Empties the buffer, keeping its memory. */
void nb_buf_reset(nb_buf_t *b);
/** Hands the contents to the caller (who frees them) and empties the buffer. */
char *nb_buf_steal(nb_buf_t *b, size_t *len);

#endif
