/*
 * jsonw.h — a small streaming JSON writer straight into an nb_buf_t.
 *
 * For the hot paths that answer rows from the database: no tree is built,
 * values are appended as they are read. The writer tracks commas itself (a
 * bit per nesting level, 64 levels), so callers only say key/value/open/
 * close. Output is compact and escapes strings the way PostgreSQL's JSON
 * does (\b \f \n \r \t \" \\ short, other control characters as \u00xx in
 * lower case, everything else as is), so answers written here are byte for
 * byte those PostgreSQL's json_build_object gave once compacted; upper_hex
 * writes \u00XX the way jansson does instead. Timestamps are RFC 3339 in
 * UTC with milliseconds, truncated — what nb_ts() gave (to_char ... MS).
 */
#ifndef NB_CORE_JSONW_H
#define NB_CORE_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

typedef struct nb_jsonw {
	nb_buf_t *b;
	unsigned depth;	   /* open objects and arrays */
	uint64_t has_item; /* bit d: level d already holds an item (a comma comes next) */
	bool after_key;	   /* a key was written: its value needs no comma */
	bool upper_hex;	   /* \u00XX instead of \u00xx */
} nb_jsonw_t;

/** Starts writing at the end of b (nothing is written yet). */
void nb_jsonw_init(nb_jsonw_t *w, nb_buf_t *b);
/** Opens an object / an array (as a value: after a key, in an array, or at the top). */
void nb_jsonw_obj(nb_jsonw_t *w);
void nb_jsonw_arr(nb_jsonw_t *w);
/** Closes the innermost object / array. */
void nb_jsonw_obj_end(nb_jsonw_t *w);
void nb_jsonw_arr_end(nb_jsonw_t *w);
/**
 * Writes a key of the current object. The key must be a string literal (the
 * "" around it refuse anything else at compile time) of characters JSON needs
 * no escape for: it is copied as it is, its length known at compile time.
 */
#define nb_jsonw_key(w, k) nb_jsonw_keyn((w), "" k "", sizeof(k) - 1)
/** nb_jsonw_key's worker: n bytes of k, copied between quotes as they are. */
void nb_jsonw_keyn(nb_jsonw_t *w, const char *k, size_t n);
/** A string value of n bytes (valid UTF-8 expected; escaped as said above). */
void nb_jsonw_str(nb_jsonw_t *w, const char *s, size_t n);
/** A string value, or null when s is NULL. */
void nb_jsonw_strz(nb_jsonw_t *w, const char *s);
void nb_jsonw_null(nb_jsonw_t *w);
void nb_jsonw_int(nb_jsonw_t *w, int64_t v);
void nb_jsonw_bool(nb_jsonw_t *w, bool v);
/**
 * JSON text s (n bytes, valid JSON as PostgreSQL prints it) as a value,
 * without its insignificant whitespace; with upper_hex its \u00xx escapes
 * get upper-case hex digits, as jansson re-dumping it wrote them.
 */
void nb_jsonw_raw(nb_jsonw_t *w, const char *s, size_t n);
/**
 * A finite real as jansson dumps it with JSON_REAL_PRECISION(precision):
 * "%.*g", ".0" appended when that reads as an integer, the exponent without
 * '+' or leading zeros.
 */
void nb_jsonw_real(nb_jsonw_t *w, double v, int precision);
/** A uuid of 16 bytes as its 36-character lower-case text. */
void nb_jsonw_uuid(nb_jsonw_t *w, const unsigned char u[16]);
/** A timestamp (microseconds since 1970-01-01 UTC) as "YYYY-MM-DDTHH:MM:SS.mmmZ". */
void nb_jsonw_ts(nb_jsonw_t *w, int64_t unix_us);

/** Writes the uuid's text (36 characters and a NUL) into out. */
void nb_uuid_fmt(const unsigned char u[16], char out[37]);
/**
 * Writes a timestamp (microseconds since 1970 UTC) as PostgreSQL prints a
 * timestamptz in ISO style under TimeZone UTC ("2026-01-02 03:04:05.12+00":
 * the fraction without trailing zeros, none when zero) into out (40 bytes).
 */
void nb_ts_pg_fmt(int64_t unix_us, char out[40]);

#endif
