/*
 * ratelimit.c — token buckets in a fixed-size set-associative table, and the
 * process's one sync thread (see ratelimit.h).
 *
 * A key is hashed with SipHash-2-4 under a per-limiter key (random, or
 * derived from the deployment's secret when shared) into 64 bits; the hash
 * selects a group of WAYS slots and is stored as the key's identity (a
 * 64-bit collision between two live keys is negligible). A bucket level is
 * kept in integer units where one token is WINDOW_MS units and each elapsed
 * millisecond adds per_minute units, so refilling is exact and needs no
 * floating point. A group has its own lock, one of STRIPES striped mutexes.
 *
 * On a miss the key takes the slot of its group whose bucket is fullest now
 * (an empty slot counts as full; ties go to the least recently used):
 * forgetting a full bucket loses nothing, and forgetting the fullest loses
 * the least.
 *
 * Shared limiters keep, per slot, the hits allowed since the last sync
 * (`pending`, the lease's count) and the spending of failed syncs (`owed`),
 * and per stripe a list of the slots that have some. A round of the sync
 * thread empties the lists of every shared limiter under their stripe locks
 * into one batch, runs one statement with no stripe lock held, then writes
 * the deployment's balances back, or on failure keeps the batch as `owed`
 * (a slot reused meanwhile by another key is left alone). The registry of
 * shared limiters is locked through a round, so a limiter is never destroyed
 * under it.
 */
#include "auth/ratelimit.h"

#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
#define MAX_SHARED 32       /* shared limiters per process (the doors' 8, the API's 8) */
#define SYNC_BATCH 2048     /* keys per statement */
#define IDLE_PURGE_S 600    /* longer than any bucket takes to refill (at least 1 a minute) */

typedef struct slot {
	uint64_t h;      /* key hash; 0 = empty */
	int64_t last_ms; /* time of the last update */
	int64_t level;   /* bucket level at last_ms, in units (one token = WINDOW_MS); < 0: debt */
	uint32_t pending; /* shared: hits allowed since the last sync began (the lease's count) */
	unsigned owed : 31; /* shared: spending of failed syncs, for the next one (at most per_minute) */
	unsigned dirty : 1; /* shared: listed in its stripe's dirty list */
} slot_t;
_Static_assert(sizeof(slot_t) == 32, "a slot is 32 bytes (ratelimit.h)");

struct nb_ratelimit {
	int64_t rate;     /* per_minute: units added per millisecond */
	int64_t capacity; /* per_minute tokens, in units */
	unsigned char sipkey[crypto_shorthash_KEYBYTES];
	pthread_mutex_t locks[STRIPES];
	slot_t *slots; /* GROUPS * WAYS; NULL when off */
	/* shared (nb_ratelimit_share) */
	bool shared;
	uint32_t lease;           /* hits a server may allow per key between two syncs */
	uint32_t *dirty[STRIPES]; /* per stripe: slot indices with spending to sync (in dirty_mem) */
	uint32_t *dirty_mem;      /* every stripe's list, one mapping touched only where used */
	int ndirty[STRIPES];
};

/* The process's sync: one thread, one connection, every shared limiter. */
static struct {
	pthread_once_t once;
	pthread_mutex_t reg_mu; /* the registry and the thread's state; held through a round */
	nb_ratelimit_t *rls[MAX_SHARED];
	int n;
	int next; /* the limiter a round starts with (a full batch leaves the others for later) */
	bool running;
	int sync_ms;
	nb_pool_t *pool;
	pthread_t thread;
	int64_t last_purge;
	pthread_mutex_t mu; /* the thread's wake-up */
	pthread_cond_t cv;
	bool stop;
	atomic_bool kicked; /* a lease was spent: run a round now */
	/* the batch of a round (the thread's) */
	struct {
		nb_ratelimit_t *rl;
		uint32_t idx;
	} items[SYNC_BATCH];
	int64_t keys[SYNC_BATCH];
	double spent[SYNC_BATCH], caps[SYNC_BATCH], tokens[SYNC_BATCH];
} eng = {.once = PTHREAD_ONCE_INIT};

static void eng_init(void)
{
	pthread_mutex_init(&eng.reg_mu, NULL);
	pthread_mutex_init(&eng.mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&eng.cv, &ca);
	pthread_condattr_destroy(&ca);
}

static void sync_kick(void)
{
	if (atomic_load_explicit(&eng.kicked, memory_order_relaxed))
		return;
	pthread_mutex_lock(&eng.mu);
	if (!atomic_exchange(&eng.kicked, true))
		pthread_cond_signal(&eng.cv);
	pthread_mutex_unlock(&eng.mu);
}

nb_ratelimit_t *nb_ratelimit_create(int per_minute)
{
	pthread_once(&eng.once, eng_init);
	nb_ratelimit_t *rl = nb_xcalloc(1, sizeof *rl);
	if (per_minute <= 0)
		return rl;
	rl->rate = per_minute;
	rl->capacity = (int64_t)per_minute * WINDOW_MS;
	randombytes_buf(rl->sipkey, sizeof rl->sipkey);
	for (int i = 0; i < STRIPES; i++)
		pthread_mutex_init(&rl->locks[i], NULL);
	rl->slots = nb_xzalloc_pages(NB_RATELIMIT_MAX_KEYS * sizeof(slot_t)); /* pages cost memory once keys land */
	return rl;
}

void nb_ratelimit_destroy(nb_ratelimit_t *rl)
{
	if (!rl)
		return;
	if (rl->shared) {
		pthread_mutex_lock(&eng.reg_mu);
		for (int i = 0; i < eng.n; i++)
			if (eng.rls[i] == rl)
				eng.rls[i] = eng.rls[--eng.n];
		pthread_mutex_unlock(&eng.reg_mu);
	}
	if (rl->slots) {
		for (int i = 0; i < STRIPES; i++)
			pthread_mutex_destroy(&rl->locks[i]);
		nb_free_pages(rl->dirty_mem, NB_RATELIMIT_MAX_KEYS * sizeof *rl->dirty_mem);
		nb_free_pages(rl->slots, NB_RATELIMIT_MAX_KEYS * sizeof(slot_t));
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
	if (elapsed >= 2 * WINDOW_MS) /* refills any bucket, even one a bucket in debt */
		return rl->capacity;
	int64_t lvl = s->level + elapsed * rl->rate;
	return lvl < rl->capacity ? lvl : rl->capacity;
}

static uint64_t key_hash(const nb_ratelimit_t *rl, const char *key)
{
	unsigned char hb[crypto_shorthash_BYTES];
	uint64_t h;
	crypto_shorthash(hb, (const unsigned char *)key, strlen(key), rl->sipkey);
	memcpy(&h, hb, sizeof h);
	return h ? h : 1;
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
	victim->owed = 0;
	return victim;
}

/* Lists slot s of stripe st for the sync; under the stripe's lock. */
static void mark_dirty(nb_ratelimit_t *rl, int st, slot_t *s)
{
	if (!s->dirty) {
		rl->dirty[st][rl->ndirty[st]++] = (uint32_t)(s - rl->slots);
		s->dirty = 1;
	}
}

int nb_ratelimit_take(nb_ratelimit_t *rl, const char *key, int64_t now_ms, int *left, int *full_s)
{
	if (left)
		*left = *full_s = 0;
	if (!rl || !rl->slots)
		return 0;
	uint64_t h = key_hash(rl, key);
	size_t g = (size_t)(h % GROUPS);
	int st = (int)(g % STRIPES);

	pthread_mutex_lock(&rl->locks[st]);
	slot_t *s = find_or_claim(rl, &rl->slots[g * WAYS], h, now_ms);
	int64_t lvl = level_at(rl, s, now_ms);
	if (now_ms > s->last_ms)
		s->last_ms = now_ms;
	s->level = lvl;
	int retry = 0;
	bool kick = false;
	if (lvl < WINDOW_MS) {
		int64_t wait_ms = (WINDOW_MS - lvl + rl->rate - 1) / rl->rate;
		retry = (int)((wait_ms + 999) / 1000);
		if (retry < 1)
			retry = 1;
	} else if (rl->shared && s->pending >= rl->lease) {
		retry = 1; /* this server spent its lease: wait for the deployment's count */
		kick = true;
	} else {
		s->level = lvl - WINDOW_MS;
		if (rl->shared) {
			kick = ++s->pending >= rl->lease;
			mark_dirty(rl, st, s);
		}
		if (left) {
			*left = (int)(s->level / WINDOW_MS);
			int64_t full_ms = (rl->capacity - s->level + rl->rate - 1) / rl->rate;
			*full_s = (int)((full_ms + 999) / 1000);
		}
	}
	pthread_mutex_unlock(&rl->locks[st]);
	if (kick)
		sync_kick(); /* sync now rather than at the next tick: the next hit sees the shared count */
	return retry;
}

int nb_ratelimit_hit(nb_ratelimit_t *rl, const char *key, int64_t now_ms)
{
	return nb_ratelimit_take(rl, key, now_ms, NULL, NULL);
}

void nb_ratelimit_give(nb_ratelimit_t *rl, const char *key, int64_t now_ms)
{
	if (!rl || !rl->slots)
		return;
	uint64_t h = key_hash(rl, key);
	size_t g = (size_t)(h % GROUPS);
	pthread_mutex_t *mu = &rl->locks[g % STRIPES];
	pthread_mutex_lock(mu);
	for (slot_t *s = &rl->slots[g * WAYS]; s < &rl->slots[(g + 1) * WAYS]; s++) {
		if (s->h != h)
			continue;
		int64_t lvl = level_at(rl, s, now_ms) + WINDOW_MS;
		s->level = lvl < rl->capacity ? lvl : rl->capacity;
		if (now_ms > s->last_ms)
			s->last_ms = now_ms;
		if (s->pending > 0)
			s->pending--;
		break;
	}
	pthread_mutex_unlock(mu);
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

void nb_ratelimit_share(nb_ratelimit_t *rl, const unsigned char *secret, size_t len, const char *name,
			int lease_div)
{
	if (!rl || !rl->slots || rl->shared)
		return;
	/* sipkey = BLAKE2b-128(secret || NUL || name): alike on every server with the secret */
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, sizeof rl->sipkey);
	crypto_generichash_update(&st, secret, len);
	crypto_generichash_update(&st, (const unsigned char *)"", 1);
	crypto_generichash_update(&st, (const unsigned char *)name, strlen(name));
	crypto_generichash_final(&st, rl->sipkey, sizeof rl->sipkey);
	if (lease_div < 1)
		lease_div = 1;
	rl->lease = (uint32_t)((rl->rate + lease_div - 1) / lease_div);
	/* every slot of a stripe fits its list: no allocation on a hit; untouched pages cost nothing */
	rl->dirty_mem = nb_xzalloc_pages(NB_RATELIMIT_MAX_KEYS * sizeof *rl->dirty_mem);
	for (int i = 0; i < STRIPES; i++)
		rl->dirty[i] = rl->dirty_mem + (size_t)i * STRIPE_SLOTS;
	pthread_mutex_lock(&eng.reg_mu);
	if (eng.n < MAX_SHARED) {
		eng.rls[eng.n++] = rl;
		rl->shared = true;
	} else {
		nb_warn("rate limits: more than %d shared limiters; \"%s\" counts per process", MAX_SHARED, name);
	}
	pthread_mutex_unlock(&eng.reg_mu);
}

/* Moves the spending of rl's listed slots into the batch from position n; returns the new size. */
static int collect(nb_ratelimit_t *rl, int n)
{
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
			if (!sl->h || (!sl->pending && !sl->owed))
				continue;
			eng.items[n].rl = rl;
			eng.items[n].idx = i;
			eng.keys[n] = (int64_t)sl->h;
			eng.spent[n] = (double)sl->pending + sl->owed;
			eng.caps[n] = (double)rl->rate; /* per_minute tokens */
			sl->pending = 0;
			sl->owed = 0;
			n++;
		}
		for (int j = 0; j < keep; j++)
			rl->slots[rl->dirty[st][j]].dirty = 1;
		rl->ndirty[st] = keep;
		pthread_mutex_unlock(&rl->locks[st]);
	}
	return n;
}

/*
 * Settles item k of the batch. Synced: level = the deployment's tokens minus
 * what was spent here since the snapshot. Failed: the spending is owed to
 * the next sync, at most one bucket of it (older spending has refilled), and
 * the lease starts again (pending counts only what came since).
 */
static void settle(int k, bool synced, int64_t now)
{
	nb_ratelimit_t *rl = eng.items[k].rl;
	uint32_t i = eng.items[k].idx;
	int st = (int)((i / WAYS) % STRIPES);
	pthread_mutex_lock(&rl->locks[st]);
	slot_t *sl = &rl->slots[i];
	if (sl->h == (uint64_t)eng.keys[k]) {
		if (synced) {
			double lvl = (eng.tokens[k] - (double)sl->pending) * (double)WINDOW_MS;
			if (lvl > (double)rl->capacity)
				lvl = (double)rl->capacity;
			if (lvl < -(double)rl->capacity) /* a debt of more than a bucket is repaid within a minute anyway */
				lvl = -(double)rl->capacity;
			sl->level = (int64_t)lvl;
			if (now > sl->last_ms)
				sl->last_ms = now;
		} else {
			double owed = eng.spent[k] < eng.caps[k] ? eng.spent[k] : eng.caps[k];
			sl->owed = (unsigned)owed;
			mark_dirty(rl, st, sl);
		}
	}
	pthread_mutex_unlock(&rl->locks[st]);
}

static void sync_round(void)
{
	pthread_mutex_lock(&eng.reg_mu);
	int n = 0;
	for (int j = 0; j < eng.n && n < SYNC_BATCH; j++)
		n = collect(eng.rls[(eng.next + j) % eng.n], n);
	if (eng.n > 0)
		eng.next = (eng.next + 1) % eng.n;
	if (n > 0) {
		nb_conn_t *c = NULL;
		int rc = nb_pool_acquire(eng.pool, &c);
		if (rc == 0) {
			rc = nb_store_limits_sync(c, n, eng.keys, eng.spent, eng.caps, eng.tokens);
			nb_pool_release(eng.pool, c);
		}
		if (rc < 0) /* database down: local counts stand, and the spending waits for the next sync */
			nb_debug("rate limits: sync failed (%d); %d keys kept for the next one", rc, n);
		int64_t now = nb_mono_ms();
		for (int k = 0; k < n; k++)
			settle(k, rc == 0, now);
	}
	if (nb_mono_ms() - eng.last_purge > IDLE_PURGE_S * 1000) {
		/* rows idle that long are full again: forgetting them loses nothing */
		eng.last_purge = nb_mono_ms();
		nb_conn_t *c = NULL;
		if (nb_pool_acquire(eng.pool, &c) == 0) {
			nb_store_limits_purge(c, IDLE_PURGE_S);
			nb_pool_release(eng.pool, c);
		}
	}
	pthread_mutex_unlock(&eng.reg_mu);
}

static void *sync_main(void *arg)
{
	(void)arg;
	struct timespec next;
	clock_gettime(CLOCK_MONOTONIC, &next);
	pthread_mutex_lock(&eng.mu);
	while (!eng.stop) {
		next.tv_nsec += (long)(eng.sync_ms % 1000) * 1000000L;
		next.tv_sec += eng.sync_ms / 1000 + next.tv_nsec / 1000000000L;
		next.tv_nsec %= 1000000000L;
		while (!eng.stop && !atomic_load(&eng.kicked) && pthread_cond_timedwait(&eng.cv, &eng.mu, &next) == 0)
			;
		if (eng.stop)
			break;
		atomic_store(&eng.kicked, false);
		pthread_mutex_unlock(&eng.mu);
		sync_round();
		pthread_mutex_lock(&eng.mu);
		/* a slow round does not make the next ones run back to back */
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > next.tv_sec || (now.tv_sec == next.tv_sec && now.tv_nsec > next.tv_nsec))
			next = now;
	}
	pthread_mutex_unlock(&eng.mu);
	return NULL;
}

int nb_ratelimit_sync_start(const char *database_url, int sync_ms)
{
	if (sync_ms <= 0 || !database_url)
		return -1;
	pthread_once(&eng.once, eng_init);
	int rc = 0;
	pthread_mutex_lock(&eng.reg_mu);
	if (!eng.running) {
		nb_pool_opts_t po;
		nb_pool_opts_from_config(&po, database_url);
		po.application_name = "notebookd rate limits";
		po.size = 1;
		po.overflow = 0;
		po.acquire_timeout_ms = 1000;
		eng.pool = nb_pool_create(&po);
		eng.sync_ms = sync_ms;
		eng.stop = false;
		atomic_store(&eng.kicked, false);
		eng.last_purge = nb_mono_ms();
		if (pthread_create(&eng.thread, NULL, sync_main, NULL) == 0) {
			eng.running = true;
		} else {
			nb_warn("rate limits: could not start the sync thread; they stay per process");
			nb_pool_destroy(eng.pool);
			eng.pool = NULL;
			rc = -1;
		}
	}
	pthread_mutex_unlock(&eng.reg_mu);
	return rc;
}

void nb_ratelimit_sync_stop(void)
{
	pthread_once(&eng.once, eng_init);
	pthread_mutex_lock(&eng.reg_mu);
	bool running = eng.running;
	pthread_mutex_unlock(&eng.reg_mu);
	if (running) {
		pthread_mutex_lock(&eng.mu);
		eng.stop = true;
		pthread_cond_signal(&eng.cv);
		pthread_mutex_unlock(&eng.mu);
		pthread_join(eng.thread, NULL);
	}
	pthread_mutex_lock(&eng.reg_mu);
	for (int i = 0; i < eng.n; i++)
		eng.rls[i]->shared = false; /* no lease: nobody would give it back (no hit runs: destroy's rule) */
	eng.n = 0;
	eng.running = false;
	nb_pool_destroy(eng.pool);
	eng.pool = NULL;
	pthread_mutex_unlock(&eng.reg_mu);
}
