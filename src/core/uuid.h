/*
 * uuid.h — UUIDv7 (RFC 9562) generation, parsing and formatting.
 *
 * Ids are made by the application so that new rows land at the right edge of
 * each B-tree. Within one process ids are strictly increasing, also inside one
 * millisecond and across threads (RFC 9562 §6.2 method 1: a 42-bit counter in
 * rand_a and the top of rand_b, reseeded each millisecond).
 */
#ifndef NB_CORE_UUID_H
#define NB_CORE_UUID_H

#include <stdbool.h>
#include <stdint.h>

typedef struct nb_uuid {
	uint8_t b[16];
} nb_uuid_t;

#define NB_UUID_STR_LEN 36

/** Makes a new UUIDv7, greater than every one made before in this process. Thread-safe. */
void nb_uuid_v7(nb_uuid_t *out);
/** Formats as 36 lowercase characters plus NUL. */
void nb_uuid_format(const nb_uuid_t *u, char out[NB_UUID_STR_LEN + 1]);
/** Parses the canonical 8-4-4-4-12 hex form (either case); 0 on success, -1 otherwise. */
int nb_uuid_parse(const char *s, nb_uuid_t *out);
/** True if s is a canonical UUID string (any version). */
bool nb_uuid_valid(const char *s);
/** Convenience: a new UUIDv7 formatted into out. */
void nb_uuid_v7_str(char out[NB_UUID_STR_LEN + 1]);
/** The 48-bit Unix-millisecond timestamp of a v7 id. */
int64_t nb_uuid_v7_ms(const nb_uuid_t *u);

#endif
