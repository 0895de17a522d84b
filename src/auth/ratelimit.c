/*
 * ratelimit.c — token buckets in a fixed-size set-associative table
 * (see ratelimit.h).
 *
 * A key is hashed with SipHash-2-4 under a random per-limiter key (so nobody
 * can aim keys at one group) into 64 bits; the hash selects a group of WAYS
 * slots and is stored as the key's identity (a 64-bit collision between two
 * live keys is negligible). A bucket level is kept in integer units where one
 * token is WINDOW_MS units and each elapsed millisecond adds per_minute units,
 * so refilling is exact and needs no floating point. A group has its own
 * lock, taken from a small array of striped mutexes.
 *
 * On a miss the key takes the slot of its group whose bucket is fullest now
 * (an empty slot counts as full; ties go to the least recently used):
 * forgetting a full bucket loses nothing, and forgetting the fullest loses
 * the least.
 */
#include "auth/ratelimit.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

#define WINDOW_MS INT64_C(60000)
#define WAYS 8
#define GROUPS (NB_RATELIMIT_MAX_KEYS / WAYS)
#define STRIPES 64

typedef struct slot {
	uint64_t h;      /* key hash; 0 = empty */
	int64_t last_ms; /* time of the last update */
	int64_t level;   /* bucket level at last_ms, in units (one token = WINDOW_MS) */
} slot_t;

struct nb_ratelimit {
	int64_t rate;     /* per_minute: units added per millisecond */
	int64_t capacity; /* per_minute tokens, in units */
	unsigned char sipkey[crypto_shorthash_KEYBYTES];
	pthread_mutex_t locks[STRIPES];
	slot_t *slots; /* GROUPS * WAYS; NULL when off */
};

nb_ratelimit_t *nb_ratelimit_create(int per_minute)
{
	nb_ratelimit_t *rl = nb_xcalloc(1, sizeof *rl);
	if (per_minute <= 0)
		return rl;
	rl->rate = per_minute;
	rl->capacity = (int64_t)per_minute * WINDOW_MS;
	randombytes_buf(rl->sipkey, sizeof rl->sipkey);
	for (int i = 0; i < STRIPES; i++)
		pthread_mutex_init(&rl->locks[i], NULL);
	rl->slots = nb_xcalloc(NB_RATELIMIT_MAX_KEYS, sizeof(slot_t));
	return rl;
}

void nb_ratelimit_destroy(nb_ratelimit_t *rl)
{
	if (!rl)
		return;
	if (rl->slots) {
		for (int i = 0; i < STRIPES; i++)
			pthread_mutex_destroy(&rl->locks[i]);
		free(rl->slots);
	}
	free(rl);
}

/* The level of a slot's bucket at now_ms; an empty slot is full. */
static int64_t level_at(const nb_ratelimit_t *rl, const slot_t *s, int64_t now_ms)
{
	if (s->h == 0)
		return rl->capacity;
	int64_t elapsed = now_ms - s->last_ms;
	if (elapsed <= 0)
		return s->level;
	if (elapsed >= WINDOW_MS) /* a whole window refills any bucket */
		return rl->capacity;
	int64_t lvl = s->level + elapsed * rl->rate;
	return lvl < rl->capacity ? lvl : rl->capacity;
}

static slot_t *find_or_claim(nb_ratelimit_t *rl, slot_t *grp, uint64_t h, int64_t now_ms)
{
	slot_t *victim = NULL;
	int64_t victim_level = -1;
	for (int i = 0; i < WAYS; i++) {
		if (grp[i].h == h)
			return &grp[i];
		int64_t lvl = level_at(rl, &grp[i], now_ms);
		if (lvl > victim_level || (lvl == victim_level && grp[i].last_ms < victim->last_ms)) {
			victim = &grp[i];
			victim_level = lvl;
		}
	}
	victim->h = h;
	victim->level = rl->capacity;
	victim->last_ms = now_ms;
	return victim;
}

int nb_ratelimit_hit(nb_ratelimit_t *rl, const char *key, int64_t now_ms)
{
	if (!rl || !rl->slots)
		return 0;

	unsigned char hb[crypto_shorthash_BYTES];
	uint64_t h;
	crypto_shorthash(hb, (const unsigned char *)key, strlen(key), rl->sipkey);
	memcpy(&h, hb, sizeof h);
	if (h == 0)
		h = 1;
	size_t g = (size_t)(h % GROUPS);
	pthread_mutex_t *mu = &rl->locks[g % STRIPES];

	pthread_mutex_lock(mu);
	slot_t *s = find_or_claim(rl, &rl->slots[g * WAYS], h, now_ms);
	int64_t lvl = level_at(rl, s, now_ms);
	if (now_ms > s->last_ms)
		s->last_ms = now_ms;
	int retry = 0;
	if (lvl >= WINDOW_MS) {
		s->level = lvl - WINDOW_MS;
	} else {
		s->level = lvl;
		int64_t wait_ms = (WINDOW_MS - lvl + rl->rate - 1) / rl->rate;
		retry = (int)((wait_ms + 999) / 1000);
		if (retry < 1)
			retry = 1;
	}
	pthread_mutex_unlock(mu);
	return retry;
}

size_t nb_ratelimit_size(nb_ratelimit_t *rl)
{
	size_t n = 0;
	if (!rl || !rl->slots)
		return 0;
	for (size_t g = 0; g < GROUPS; g++) {
		pthread_mutex_t *mu = &rl->locks[g % STRIPES];
		pthread_mutex_lock(mu);
		for (size_t i = 0; i < WAYS; i++)
			n += rl->slots[g * WAYS + i].h != 0;
		pthread_mutex_unlock(mu);
	}
	return n;
}
