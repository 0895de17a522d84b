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
 *
 * Shared limiters also keep, per slot, the hits allowed since the last sync
 * (`pending`) and, per stripe, a list of the slots that have some; the sync
 * thread empties the lists under the stripe lock, runs one statement per
 * limiter without any lock held, then writes the deployment's balances back
 * (a slot reused meanwhile by another key is left alone).
 */
#include "auth/ratelimit.h"

#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "db/pool.h"
#include "store/limits.h"

#define WINDOW_MS INT64_C(60000)
#define WAYS 8
#define GROUPS (NB_RATELIMIT_MAX_KEYS / WAYS)
#define STRIPES 64
#define STRIPE_SLOTS (NB_RATELIMIT_MAX_KEYS / STRIPES) /* slots under one lock */
#define LEASE_DIV 10 /* a server may spend per_minute / LEASE_DIV ahead of the shared count */

typedef struct slot {
	uint64_t h;      /* key hash; 0 = empty */
	int64_t last_ms; /* time of the last update */
	int64_t level;   /* bucket level at last_ms, in units (one token = WINDOW_MS); < 0: debt */
	uint32_t pending; /* shared: hits allowed here since the last sync snapshot */
	uint8_t dirty;    /* shared: listed in its stripe's dirty list */
} slot_t;

struct nb_ratelimit {
	int64_t rate;     /* per_minute: units added per millisecond */
	int64_t capacity; /* per_minute tokens, in units */
	unsigned char sipkey[crypto_shorthash_KEYBYTES];
	pthread_mutex_t locks[STRIPES];
	slot_t *slots; /* GROUPS * WAYS; NULL when off */
	/* shared (nb_ratelimit_share) */
	bool shared;
	uint32_t lease;              /* hits a server may allow per key between two syncs */
	int retry_lease_s;           /* Retry-After of a hit refused for the lease */
	uint32_t *dirty[STRIPES];    /* per stripe: slot indices with pending hits */
	int ndirty[STRIPES];
	struct nb_ratelimit_sync *sync; /* woken when a lease is spent; NULL: none running */
};

static void kick(struct nb_ratelimit_sync *s);

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
		for (int i = 0; i < STRIPES; i++) {
			pthread_mutex_destroy(&rl->locks[i]);
			free(rl->dirty[i]);
		}
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
	victim->pending = 0; /* keeps `dirty`: the slot may be listed already */
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
	bool lease_spent = false;
	if (lvl >= WINDOW_MS && rl->shared && s->pending >= rl->lease) {
		/* this server spent its lease: wait for the deployment's count */
		s->level = lvl;
		retry = rl->retry_lease_s;
		lease_spent = true;
	} else if (lvl >= WINDOW_MS) {
		s->level = lvl - WINDOW_MS;
		if (rl->shared) {
			lease_spent = ++s->pending >= rl->lease;
			if (!s->dirty) {
				int st = (int)(g % STRIPES);
				if (!rl->dirty[st])
					rl->dirty[st] = nb_xcalloc(STRIPE_SLOTS, sizeof *rl->dirty[st]);
				rl->dirty[st][rl->ndirty[st]++] = (uint32_t)(s - rl->slots);
				s->dirty = 1;
			}
		}
	} else {
		s->level = lvl;
		int64_t wait_ms = (WINDOW_MS - lvl + rl->rate - 1) / rl->rate;
		retry = (int)((wait_ms + 999) / 1000);
		if (retry < 1)
			retry = 1;
	}
	pthread_mutex_unlock(mu);
	if (lease_spent && rl->sync)
		kick(rl->sync); /* sync now rather than at the next tick: the next hit sees the shared count */
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

/* ------------------------------------------------------------- sharing */

void nb_ratelimit_share(nb_ratelimit_t *rl, const unsigned char *secret, size_t len, const char *name)
{
	if (!rl || !rl->slots)
		return;
	/* sipkey = BLAKE2b-128(secret || NUL || name): alike on every server with the secret */
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, sizeof rl->sipkey);
	crypto_generichash_update(&st, secret, len);
	crypto_generichash_update(&st, (const unsigned char *)"", 1);
	crypto_generichash_update(&st, (const unsigned char *)name, strlen(name));
	crypto_generichash_final(&st, rl->sipkey, sizeof rl->sipkey);
	int64_t per_minute = rl->rate;
	rl->lease = (uint32_t)((per_minute + LEASE_DIV - 1) / LEASE_DIV);
	rl->retry_lease_s = 1;
	rl->shared = true;
}

#define SYNC_BATCH 2048
#define IDLE_PURGE_S 600 /* longer than any bucket takes to refill (at least 1 a minute) */

struct nb_ratelimit_sync {
	nb_ratelimit_t **rls;
	int n;
	int sync_ms;
	nb_pool_t *pool;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	bool kicked; /* a lease was spent: run a round now */
	/* the batch being synced (thread-private) */
	uint32_t idx[SYNC_BATCH];
	int64_t keys[SYNC_BATCH];
	double spent[SYNC_BATCH], caps[SYNC_BATCH], tokens[SYNC_BATCH];
};

/* Takes up to SYNC_BATCH pending slots of rl (their spending moves to the batch); returns how many. */
static int collect(nb_ratelimit_sync_t *s, nb_ratelimit_t *rl)
{
	int n = 0;
	for (int st = 0; st < STRIPES; st++) {
		pthread_mutex_lock(&rl->locks[st]);
		int keep = 0;
		for (int j = 0; j < rl->ndirty[st]; j++) {
			uint32_t i = rl->dirty[st][j];
			slot_t *sl = &rl->slots[i];
			if (n == SYNC_BATCH) { /* the rest waits for the next round */
				rl->dirty[st][keep++] = i;
				continue;
			}
			sl->dirty = 0;
			if (!sl->h || !sl->pending)
				continue;
			s->idx[n] = i;
			s->keys[n] = (int64_t)sl->h;
			s->spent[n] = sl->pending;
			s->caps[n] = (double)rl->rate; /* per_minute tokens */
			sl->pending = 0;
			n++;
		}
		for (int j = 0; j < keep; j++)
			rl->slots[rl->dirty[st][j]].dirty = 1;
		rl->ndirty[st] = keep;
		pthread_mutex_unlock(&rl->locks[st]);
	}
	return n;
}

/* Writes the deployment's balances back: level = shared tokens - what was spent here since the snapshot. */
static void apply(nb_ratelimit_sync_t *s, nb_ratelimit_t *rl, int n)
{
	int64_t now = nb_now_ms();
	for (int k = 0; k < n; k++) {
		uint32_t i = s->idx[k];
		pthread_mutex_t *mu = &rl->locks[(i / WAYS) % STRIPES];
		pthread_mutex_lock(mu);
		slot_t *sl = &rl->slots[i];
		if (sl->h == (uint64_t)s->keys[k]) {
			double lvl = (s->tokens[k] - (double)sl->pending) * (double)WINDOW_MS;
			if (lvl > (double)rl->capacity)
				lvl = (double)rl->capacity;
			if (lvl < -(double)rl->capacity) /* a debt of more than a bucket is repaid within a minute anyway */
				lvl = -(double)rl->capacity;
			sl->level = (int64_t)lvl;
			if (now > sl->last_ms)
				sl->last_ms = now;
		}
		pthread_mutex_unlock(mu);
	}
}

/* A failed round: the spending taken by collect goes back to its slots (unless reused by another key). */
static void restore(nb_ratelimit_t *rl, nb_ratelimit_sync_t *s, int n)
{
	for (int k = 0; k < n; k++) {
		uint32_t i = s->idx[k];
		int st = (int)((i / WAYS) % STRIPES);
		pthread_mutex_lock(&rl->locks[st]);
		slot_t *sl = &rl->slots[i];
		if (sl->h == (uint64_t)s->keys[k]) {
			double p = sl->pending + s->spent[k];
			sl->pending = p > UINT32_MAX ? UINT32_MAX : (uint32_t)p;
			if (!sl->dirty) {
				rl->dirty[st][rl->ndirty[st]++] = i;
				sl->dirty = 1;
			}
		}
		pthread_mutex_unlock(&rl->locks[st]);
	}
}

static void kick(struct nb_ratelimit_sync *s)
{
	pthread_mutex_lock(&s->mu);
	if (!s->kicked) {
		s->kicked = true;
		pthread_cond_signal(&s->cv);
	}
	pthread_mutex_unlock(&s->mu);
}

static void *sync_main(void *arg)
{
	nb_ratelimit_sync_t *s = arg;
	struct timespec next;
	clock_gettime(CLOCK_MONOTONIC, &next);
	int64_t last_purge = nb_mono_ms();
	pthread_mutex_lock(&s->mu);
	while (!s->stop) {
		next.tv_nsec += (long)(s->sync_ms % 1000) * 1000000L;
		next.tv_sec += s->sync_ms / 1000 + next.tv_nsec / 1000000000L;
		next.tv_nsec %= 1000000000L;
		while (!s->stop && !s->kicked && pthread_cond_timedwait(&s->cv, &s->mu, &next) == 0)
			;
		if (s->stop)
			break;
		s->kicked = false;
		pthread_mutex_unlock(&s->mu);
		for (int l = 0; l < s->n; l++) {
			nb_ratelimit_t *rl = s->rls[l];
			int n = collect(s, rl);
			if (n == 0)
				continue;
			nb_conn_t *c = NULL;
			int rc = nb_pool_acquire(s->pool, &c);
			if (rc == 0) {
				rc = nb_store_limits_sync(c, n, s->keys, s->spent, s->caps, s->tokens);
				nb_pool_release(s->pool, c);
			}
			if (rc == 0) {
				apply(s, rl, n);
			} else {
				/* database down: the local counts stand, and the spending waits for the next round */
				nb_debug("door limits: sync failed (%d); %d keys kept for the next round", rc, n);
				restore(rl, s, n);
			}
		}
		if (nb_mono_ms() - last_purge > IDLE_PURGE_S * 1000) {
			/* rows idle that long are full again: forgetting them loses nothing */
			last_purge = nb_mono_ms();
			nb_conn_t *c = NULL;
			if (nb_pool_acquire(s->pool, &c) == 0) {
				nb_store_limits_purge(c, IDLE_PURGE_S);
				nb_pool_release(s->pool, c);
			}
		}
		pthread_mutex_lock(&s->mu);
		/* a slow round does not make the next ones run back to back */
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > next.tv_sec || (now.tv_sec == next.tv_sec && now.tv_nsec > next.tv_nsec))
			next = now;
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

nb_ratelimit_sync_t *nb_ratelimit_sync_start(nb_ratelimit_t *const *rls, int n, const char *database_url, int sync_ms)
{
	if (sync_ms <= 0 || !database_url)
		return NULL;
	nb_ratelimit_sync_t *s = nb_xcalloc(1, sizeof *s);
	s->rls = nb_xcalloc((size_t)(n > 0 ? n : 1), sizeof *s->rls);
	for (int i = 0; i < n; i++)
		if (rls[i] && rls[i]->shared)
			s->rls[s->n++] = rls[i];
	if (s->n == 0) {
		free(s->rls);
		free(s);
		return NULL;
	}
	s->sync_ms = sync_ms;
	nb_pool_opts_t po;
	nb_pool_opts_from_config(&po, database_url);
	po.application_name = "notebookd door limits";
	po.size = 1;
	po.overflow = 0;
	po.acquire_timeout_ms = 1000;
	s->pool = nb_pool_create(&po);
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&s->thread, NULL, sync_main, s) == 0) {
		for (int i = 0; i < s->n; i++)
			s->rls[i]->sync = s;
	} else {
		nb_warn("door limits: could not start the sync thread; they stay per process");
		for (int i = 0; i < s->n; i++)
			s->rls[i]->shared = false; /* no lease: nobody would give it back */
		pthread_cond_destroy(&s->cv);
		pthread_mutex_destroy(&s->mu);
		nb_pool_destroy(s->pool);
		free(s->rls);
		free(s);
		return NULL;
	}
	return s;
}

void nb_ratelimit_sync_stop(nb_ratelimit_sync_t *s)
{
	if (!s)
		return;
	for (int i = 0; i < s->n; i++)
		s->rls[i]->sync = NULL; /* no hit may run concurrently (nb_ratelimit_destroy's rule) */
	pthread_mutex_lock(&s->mu);
	s->stop = true;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	nb_pool_destroy(s->pool);
	free(s->rls);
	free(s);
}
