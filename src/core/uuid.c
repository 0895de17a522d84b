/*
 * uuid.c — UUIDv7 (see uuid.h).
 *
 * Layout (RFC 9562 §5.7): 48 bits unix_ts_ms | 4 bits version (7) |
 * 12 bits rand_a | 2 bits variant (10) | 62 bits rand_b.
 * We use rand_a and the top 30 bits of rand_b as a 42-bit counter. On a new
 * millisecond the counter is reseeded randomly with its top bit clear, which
 * leaves at least 2^41 increments of headroom; if it still overflows, the
 * timestamp is advanced by one (§6.2, "counter rollover"). A clock that steps
 * back keeps the last timestamp, so order is never broken. The remaining
 * 32 bits are fresh random bytes for each id.
 *
 * Random words come from a per-thread pool filled 64 at a time by
 * randombytes_buf (a getrandom call per fill rather than per word: an id per
 * request made the system call show in the server's profile). The process
 * never forks, so no two processes share a pool.
 */
#include "core/uuid.h"

#include <pthread.h>
#include <sodium.h>
#include <string.h>

#include "core/timeutil.h"

#define COUNTER_BITS 42
#define COUNTER_MAX ((UINT64_C(1) << COUNTER_BITS) - 1)

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t last_ms;
static uint64_t counter;

static _Thread_local uint32_t pool[64];
static _Thread_local unsigned pool_left;

/* A random word, uniformly distributed (each is used once). */
static uint32_t random_word(void)
{
	if (pool_left == 0) {
		randombytes_buf(pool, sizeof pool);
		pool_left = sizeof pool / sizeof pool[0];
	}
	uint32_t w = pool[--pool_left];
	pool[pool_left] = 0; /* a used word does not linger */
	return w;
}

void nb_uuid_v7(nb_uuid_t *out)
{
	uint32_t tail = random_word();
	uint64_t ms = (uint64_t)nb_now_ms();

	pthread_mutex_lock(&mu);
	if (ms > last_ms) {
		last_ms = ms;
		counter = ((uint64_t)random_word() << 32 | random_word()) &
			  (COUNTER_MAX >> 1);
	} else {
		counter++;
		if (counter > COUNTER_MAX) {
			last_ms++;
			counter = 0;
		}
	}
	ms = last_ms;
	uint64_t c = counter;
	pthread_mutex_unlock(&mu);

	uint8_t *b = out->b;
	for (int i = 0; i < 6; i++)
		b[i] = (uint8_t)(ms >> (40 - 8 * i));
	uint16_t rand_a = (uint16_t)(c >> 30);          /* top 12 counter bits */
	uint32_t rand_b_hi = (uint32_t)(c & 0x3fffffff); /* low 30 counter bits */
	b[6] = (uint8_t)(0x70 | (rand_a >> 8));
	b[7] = (uint8_t)rand_a;
	b[8] = (uint8_t)(0x80 | (rand_b_hi >> 24));
	b[9] = (uint8_t)(rand_b_hi >> 16);
	b[10] = (uint8_t)(rand_b_hi >> 8);
	b[11] = (uint8_t)rand_b_hi;
	memcpy(b + 12, &tail, 4);
}

void nb_uuid_format(const nb_uuid_t *u, char out[NB_UUID_STR_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	int j = 0;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[j++] = '-';
		out[j++] = hex[u->b[i] >> 4];
		out[j++] = hex[u->b[i] & 15];
	}
	out[j] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int nb_uuid_parse(const char *s, nb_uuid_t *out)
{
	if (!s)
		return -1;
	int bi = 0;
	for (int i = 0; i < NB_UUID_STR_LEN; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return -1;
			continue;
		}
		int hi = hexval(s[i]);
		if (hi < 0)
			return -1;
		i++;
		int lo = hexval(s[i]);
		if (lo < 0)
			return -1;
		if (out)
			out->b[bi] = (uint8_t)(hi << 4 | lo);
		bi++;
	}
	return s[NB_UUID_STR_LEN] == '\0' ? 0 : -1;
}

bool nb_uuid_valid(const char *s)
{
	return nb_uuid_parse(s, NULL) == 0;
}

void nb_uuid_v7_str(char out[NB_UUID_STR_LEN + 1])
{
	nb_uuid_t u;
	nb_uuid_v7(&u);
	nb_uuid_format(&u, out);
}

int64_t nb_uuid_v7_ms(const nb_uuid_t *u)
{
	int64_t ms = 0;
	for (int i = 0; i < 6; i++)
		ms = ms << 8 | u->b[i];
	return ms;
}
