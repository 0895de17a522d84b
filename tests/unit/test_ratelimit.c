/*
 * test_ratelimit.c — unit tests of the in-memory token-bucket rate limiter:
 * limits, refill, independence of keys, bounded memory under a flood of
 * keys, and exactness under concurrent hits.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "auth/ratelimit.h"
#include "auth/service.h"
#include "core/config.h"
#include "core/timeutil.h"
#include "t.h"

#define T0 INT64_C(1800000000000)

static void test_eleventh_hit_refused(void)
{
	nb_ratelimit_t *rl = nb_ratelimit_create(10);
	for (int i = 0; i < 10; i++)
		CHECK_INT(nb_ratelimit_hit(rl, "ip:192.0.2.1", T0 + i), 0);
	int r = nb_ratelimit_hit(rl, "ip:192.0.2.1", T0 + 10);
	/* One token comes back every 6 s. */
	CHECK_MSG(r >= 5 && r <= 6, "retry after %d", r);
	/* Refused hits do not count: still 6 s, not more. */
	for (int i = 0; i < 100; i++)
		r = nb_ratelimit_hit(rl, "ip:192.0.2.1", T0 + 10);
	CHECK_MSG(r >= 5 && r <= 6, "retry after %d", r);
	nb_ratelimit_destroy(rl);
}

static void test_refill(void)
{
	nb_ratelimit_t *rl = nb_ratelimit_create(10);
	for (int i = 0; i < 10; i++)
		CHECK_INT(nb_ratelimit_hit(rl, "k", T0), 0);
	CHECK(nb_ratelimit_hit(rl, "k", T0) > 0);
	CHECK(nb_ratelimit_hit(rl, "k", T0 + 5999) > 0);
	CHECK_INT(nb_ratelimit_hit(rl, "k", T0 + 5999), 1); /* 1 ms to go rounds up to 1 s */
	CHECK_INT(nb_ratelimit_hit(rl, "k", T0 + 6000), 0); /* one token back */
	CHECK(nb_ratelimit_hit(rl, "k", T0 + 6000) > 0);
	/* After a full minute the whole burst is available again. */
	for (int i = 0; i < 10; i++)
		CHECK_INT(nb_ratelimit_hit(rl, "k", T0 + 70000), 0);
	CHECK(nb_ratelimit_hit(rl, "k", T0 + 70000) > 0);
	/* Sustained rate: one hit every 6 s is always allowed. */
	for (int i = 1; i <= 50; i++)
		CHECK_INT(nb_ratelimit_hit(rl, "k", T0 + 70000 + i * 6000), 0);
	nb_ratelimit_destroy(rl);
}

static void test_clock_step_back(void)
{
	nb_ratelimit_t *rl = nb_ratelimit_create(3);
	for (int i = 0; i < 3; i++)
		CHECK_INT(nb_ratelimit_hit(rl, "k", T0), 0);
	/* A clock that goes back neither refills nor breaks the bucket. */
	CHECK(nb_ratelimit_hit(rl, "k", T0 - 3600000) > 0);
	CHECK(nb_ratelimit_hit(rl, "k", T0 + 19999) > 0);
	CHECK_INT(nb_ratelimit_hit(rl, "k", T0 + 20000), 0);
	nb_ratelimit_destroy(rl);
}

static void test_off_and_null(void)
{
	nb_ratelimit_t *rl = nb_ratelimit_create(0);
	for (int i = 0; i < 10000; i++)
		CHECK_INT(nb_ratelimit_hit(rl, "k", T0), 0);
	CHECK_INT(nb_ratelimit_size(rl), 0);
	nb_ratelimit_destroy(rl);
	rl = nb_ratelimit_create(-5);
	CHECK_INT(nb_ratelimit_hit(rl, "k", T0), 0);
	nb_ratelimit_destroy(rl);
	CHECK_INT(nb_ratelimit_hit(NULL, "k", T0), 0);
	nb_ratelimit_destroy(NULL);
}

static void test_keys_independent(void)
{
	nb_ratelimit_t *rl = nb_ratelimit_create(2);
	CHECK_INT(nb_ratelimit_hit(rl, "email:a@example.com", T0), 0);
	CHECK_INT(nb_ratelimit_hit(rl, "email:a@example.com", T0), 0);
	CHECK(nb_ratelimit_hit(rl, "email:a@example.com", T0) > 0);
	CHECK_INT(nb_ratelimit_hit(rl, "email:b@example.com", T0), 0);
	CHECK_INT(nb_ratelimit_hit(rl, "email:a@example.co", T0), 0);
	CHECK_INT(nb_ratelimit_hit(rl, "", T0), 0);
	CHECK_INT(nb_ratelimit_hit(rl, "email:b@example.com", T0), 0);
	CHECK(nb_ratelimit_hit(rl, "email:b@example.com", T0) > 0);
	CHECK_INT(nb_ratelimit_size(rl), 4);
	nb_ratelimit_destroy(rl);
}

static void test_one_per_minute_retry_after(void)
{
	nb_ratelimit_t *rl = nb_ratelimit_create(1);
	CHECK_INT(nb_ratelimit_hit(rl, "k", T0), 0);
	CHECK_INT(nb_ratelimit_hit(rl, "k", T0), 60);
	CHECK_INT(nb_ratelimit_hit(rl, "k", T0 + 30500), 30);
	CHECK_INT(nb_ratelimit_hit(rl, "k", T0 + 60000), 0);
	nb_ratelimit_destroy(rl);
	/* A huge limit works without overflow. */
	rl = nb_ratelimit_create(2147483647);
	for (int i = 0; i < 1000; i++)
		CHECK_INT(nb_ratelimit_hit(rl, "k", T0 + i * 1000000), 0);
	nb_ratelimit_destroy(rl);
}

static void test_flood_of_keys_bounded(void)
{
	nb_ratelimit_t *rl = nb_ratelimit_create(10);
	/* A throttled victim... */
	for (int i = 0; i < 10; i++)
		CHECK_INT(nb_ratelimit_hit(rl, "victim", T0), 0);
	CHECK(nb_ratelimit_hit(rl, "victim", T0) > 0);
	/* ...then a million distinct keys, one hit each. */
	char key[32];
	int64_t t0 = nb_mono_ms();
	int refused = 0;
	for (int i = 0; i < 1000000; i++) {
		snprintf(key, sizeof key, "ip:%d", i);
		refused += nb_ratelimit_hit(rl, key, T0 + 1) != 0;
	}
	int64_t took = nb_mono_ms() - t0;
	CHECK_INT(refused, 0);
	size_t n = nb_ratelimit_size(rl);
	CHECK_MSG(n <= NB_RATELIMIT_MAX_KEYS && n > NB_RATELIMIT_MAX_KEYS / 2, "size %zu", n);
	/* The flood pushed out fuller buckets first: the victim is still throttled. */
	CHECK(nb_ratelimit_hit(rl, "victim", T0 + 2) > 0);
	CHECK_MSG(took < 10000, "1M hits took %lld ms", (long long)took);
	nb_ratelimit_destroy(rl);
}

#define THREADS 4
#define HITS_PER_THREAD 20000

struct worker {
	nb_ratelimit_t *rl;
	int allowed;
	int allowed_own;
	int id;
};

static void *hammer(void *arg)
{
	struct worker *w = arg;
	char own[16];
	snprintf(own, sizeof own, "own:%d", w->id);
	for (int i = 0; i < HITS_PER_THREAD; i++) {
		/* The clock advances 1 ms per round, the same for every thread. */
		int64_t now = T0 + i;
		if (nb_ratelimit_hit(w->rl, "shared", now) == 0)
			w->allowed++;
		if (nb_ratelimit_hit(w->rl, own, now) == 0)
			w->allowed_own++;
	}
	return NULL;
}

static void test_concurrent_exact(void)
{
	nb_ratelimit_t *rl = nb_ratelimit_create(600); /* 10 per second */
	pthread_t th[THREADS];
	struct worker w[THREADS];
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){rl, 0, 0, i};
		pthread_create(&th[i], NULL, hammer, &w[i]);
	}
	int total = 0;
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		total += w[i].allowed;
		/* Each own key: burst of 600 + 10/s over ~20 s = at most 800. */
		CHECK_MSG(w[i].allowed_own >= 600 && w[i].allowed_own <= 600 + HITS_PER_THREAD / 100 + 1,
			  "own allowed %d", w[i].allowed_own);
	}
	/* Shared key over at most 20 s of clock: never more than 600 + 200. */
	CHECK_MSG(total >= 600 && total <= 600 + HITS_PER_THREAD / 100 + 1, "allowed %d", total);
	nb_ratelimit_destroy(rl);
}

struct frozen {
	nb_ratelimit_t *rl;
	pthread_barrier_t *start;
	int allowed;
};

static void *hammer_frozen(void *arg)
{
	struct frozen *f = arg;
	pthread_barrier_wait(f->start);
	for (int i = 0; i < 50000; i++)
		if (nb_ratelimit_hit(f->rl, "login:alice@example.com", T0) == 0)
			f->allowed++;
	return NULL;
}

/* With the clock frozen, exactly per_minute hits are allowed, however they race. */
static int frozen_total(int per_minute)
{
	nb_ratelimit_t *rl = nb_ratelimit_create(per_minute);
	pthread_barrier_t start;
	pthread_t th[THREADS];
	struct frozen f[THREADS];
	pthread_barrier_init(&start, NULL, THREADS);
	for (int i = 0; i < THREADS; i++) {
		f[i] = (struct frozen){rl, &start, 0};
		pthread_create(&th[i], NULL, hammer_frozen, &f[i]);
	}
	int total = 0;
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		total += f[i].allowed;
	}
	pthread_barrier_destroy(&start);
	nb_ratelimit_destroy(rl);
	return total;
}

static void test_concurrent_frozen_clock_exact(void)
{
	CHECK_INT(frozen_total(10), 10);
	/* Most of the 200000 hits contend for a token: lost updates would show. */
	CHECK_INT(frozen_total(150000), 150000);
}

/*
 * Issue 8.7: the door's per-address limit is its own setting, separate from
 * (and higher than) the per-account one; each door has its own buckets.
 */
static void test_door_limits_per_address_and_per_account(void)
{
	nb_cfg.jwt_secret = "unit-test-secret-unit-test-secret-0123456789";
	nb_cfg.auth_rate_per_min = 3;
	nb_cfg.auth_ip_rate_per_min = 8;
	char err[256];
	CHECK_INT(nb_auth_init(err, sizeof err), 0);
	/* one account from many addresses: 3, then refused */
	char ip[32];
	for (int i = 0; i < 3; i++) {
		snprintf(ip, sizeof ip, "198.51.100.%d", i + 1);
		CHECK_INT(nb_auth_limit(NB_LIMIT_LOGIN, ip, "kim@example.com"), 0);
	}
	CHECK(nb_auth_limit(NB_LIMIT_LOGIN, "198.51.100.9", "kim@example.com") > 0);
	/* many accounts behind one address: 8 attempts, more than one account's 3 */
	for (int i = 0; i < 8; i++) {
		char acct[32];
		snprintf(acct, sizeof acct, "user%d@example.com", i);
		CHECK_MSG(nb_auth_limit(NB_LIMIT_LOGIN, "203.0.113.1", acct) == 0, "attempt %d", i);
	}
	CHECK(nb_auth_limit(NB_LIMIT_LOGIN, "203.0.113.1", "other@example.com") > 0);
	/* register is a door of its own, with the same limits */
	for (int i = 0; i < 3; i++)
		CHECK_INT(nb_auth_limit(NB_LIMIT_REGISTER, "203.0.113.1", "kim@example.com"), 0);
	CHECK(nb_auth_limit(NB_LIMIT_REGISTER, "203.0.113.2", "kim@example.com") > 0);
	nb_auth_shutdown();
}

/* Shared: between two syncs a server allows a lease of ceil(rate / lease_div) hits per key, then waits for the sync. */
static void test_shared_lease(void)
{
	static const unsigned char secret[] = "unit-test-secret-unit-test-secret-0123456789";
	nb_ratelimit_t *rl = nb_ratelimit_create(20); /* lease 2 */
	nb_ratelimit_share(rl, secret, sizeof secret - 1, "unit door", NB_RATELIMIT_DOOR_LEASE_DIV);
	CHECK_INT(nb_ratelimit_hit(rl, "k", T0), 0);
	CHECK_INT(nb_ratelimit_hit(rl, "k", T0 + 1), 0);
	CHECK_INT(nb_ratelimit_hit(rl, "k", T0 + 2), 1);     /* the lease is spent, not the bucket */
	CHECK_INT(nb_ratelimit_hit(rl, "other", T0 + 3), 0); /* each key has its own lease */
	CHECK_INT(nb_ratelimit_size(rl), 2);
	nb_ratelimit_destroy(rl);
	/* the API-wide limits lease a quarter: a burst of 5 of 20 on one server is not refused for the sync's sake */
	rl = nb_ratelimit_create(20);
	nb_ratelimit_share(rl, secret, sizeof secret - 1, "unit api", NB_RATELIMIT_API_LEASE_DIV);
	for (int i = 0; i < 5; i++)
		CHECK_INT(nb_ratelimit_hit(rl, "k", T0 + i), 0);
	CHECK_INT(nb_ratelimit_hit(rl, "k", T0 + 5), 1);
	nb_ratelimit_destroy(rl);
	/* a limiter that allows everything stays so when shared */
	rl = nb_ratelimit_create(0);
	nb_ratelimit_share(rl, secret, sizeof secret - 1, "unit door", NB_RATELIMIT_DOOR_LEASE_DIV);
	for (int i = 0; i < 100; i++)
		CHECK_INT(nb_ratelimit_hit(rl, "k", T0), 0);
	nb_ratelimit_destroy(rl);
	/* no sync without a database or a period */
	CHECK(nb_ratelimit_sync_start(NULL, 100) < 0);
	CHECK(nb_ratelimit_sync_start("postgresql:///none", 0) < 0);
}

int main(void)
{
	T_RUN(test_eleventh_hit_refused);
	T_RUN(test_refill);
	T_RUN(test_clock_step_back);
	T_RUN(test_off_and_null);
	T_RUN(test_keys_independent);
	T_RUN(test_one_per_minute_retry_after);
	T_RUN(test_flood_of_keys_bounded);
	T_RUN(test_concurrent_exact);
	T_RUN(test_concurrent_frozen_clock_exact);
	T_RUN(test_door_limits_per_address_and_per_account);
	T_RUN(test_shared_lease);
	return t_done();
}
