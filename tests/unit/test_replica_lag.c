/*
 * test_replica_lag.c — unit tests of the replica's lag and read-your-writes
 * bound from sampled WAL positions (src/db/replica_lag.c): pg_lsn parsing,
 * covered samples advancing safe_before, the lag's lower bound while replay
 * is behind (paused), an idle primary (lag 0 however long), a failover
 * (positions going back), a full table, and a replica never reached.
 */
#include <stdint.h>

#include "db/replica_lag.h"
#include "t.h"

static void test_lsn_parse(void)
{
	uint64_t v = 0;
	CHECK_INT(nb_lsn_parse("0/0", &v), 0);
	CHECK(v == 0);
	CHECK_INT(nb_lsn_parse("16/B374D848", &v), 0);
	CHECK(v == ((uint64_t)0x16 << 32 | 0xB374D848u));
	CHECK_INT(nb_lsn_parse("ffffffff/ffffffff", &v), 0);
	CHECK(v == UINT64_MAX);
	CHECK_INT(nb_lsn_parse("0/3000148", &v), 0);
	CHECK(v == 0x3000148u);
	const char *bad[] = {"", "/", "0/", "/0", "1/2/3", "x/1", "1/x", "123456789/0", "0/123456789", "1 /2",
			     "1/2 ", "-1/2", NULL};
	for (int i = 0; bad[i]; i++)
		CHECK_MSG(nb_lsn_parse(bad[i], &v) < 0, "\"%s\" parsed", bad[i]);
	CHECK(nb_lsn_parse(NULL, &v) < 0);
}

static void test_caught_up_and_safe_before(void)
{
	nb_rlag_t t;
	nb_rlag_init(&t);
	CHECK(t.safe_before_ms == 0 && t.lag_ms == 0);
	nb_rlag_primary(&t, 1000, 100);
	nb_rlag_replica(&t, 1005, 100, true); /* replayed what the primary had at 1000 */
	CHECK(t.safe_before_ms == 1000);
	CHECK(t.lag_ms == 0 && t.lag_bytes == 0);
	/* a write ends at 1200 (LSN 150); the sample at 1500 sees 200 */
	nb_rlag_primary(&t, 1500, 200);
	nb_rlag_replica(&t, 1502, 150, true); /* not all of it yet */
	CHECK(t.safe_before_ms == 1000);       /* a write ended at 1200 may be missing: not safe */
	CHECK(t.lag_ms == 2 && t.lag_bytes == 50);
	nb_rlag_primary(&t, 2000, 200);       /* no new WAL: the sample at 1500 stays the reference */
	nb_rlag_replica(&t, 2003, 150, true);
	CHECK(t.lag_ms == 503);               /* behind what the primary had at 1500 */
	nb_rlag_replica(&t, 2100, 200, true); /* caught up */
	CHECK(t.safe_before_ms == 1500);
	CHECK(t.lag_ms == 0 && t.lag_bytes == 0);
}

static void test_idle_primary_moves_safe_before(void)
{
	nb_rlag_t t;
	nb_rlag_init(&t);
	nb_rlag_primary(&t, 1000, 500);
	nb_rlag_replica(&t, 1001, 500, true);
	for (int64_t now = 1500; now <= 60000; now += 500) {
		nb_rlag_primary(&t, now, 500); /* nothing written for a minute */
		nb_rlag_replica(&t, now + 1, 500, true);
		CHECK(t.lag_ms == 0);
		CHECK(t.safe_before_ms == now); /* a user who wrote nothing new reads from the replica */
	}
}

static void test_paused_replay_lag_grows(void)
{
	nb_rlag_t t;
	nb_rlag_init(&t);
	nb_rlag_primary(&t, 0, 1000);
	nb_rlag_replica(&t, 1, 1000, true);
	/* replay paused at 1000 while the primary writes on */
	for (int i = 1; i <= 20; i++) {
		nb_rlag_primary(&t, i * 500, 1000 + (uint64_t)i * 10);
		nb_rlag_replica(&t, i * 500 + 1, 1000, true);
	}
	CHECK(t.lag_ms == 20 * 500 + 1 - 500); /* behind the first sample it never reached */
	CHECK(t.lag_bytes == 200);
	CHECK(t.safe_before_ms == 0);
	/* replay resumes halfway: the lag is the age of the oldest missing sample */
	nb_rlag_replica(&t, 10002, 1100, true);
	CHECK(t.safe_before_ms == 5000);
	CHECK(t.lag_ms == 10002 - 5500);
	nb_rlag_replica(&t, 10003, 1200, true);
	CHECK(t.safe_before_ms == 10000 && t.lag_ms == 0);
}

static void test_replica_unreachable(void)
{
	nb_rlag_t t;
	nb_rlag_init(&t);
	nb_rlag_primary(&t, 100, 10);
	nb_rlag_replica(&t, 101, 0, false); /* never reached: no lag to speak of, nothing safe */
	CHECK(t.lag_ms == 0 && t.safe_before_ms == 0);
	nb_rlag_replica(&t, 200, 10, true);
	CHECK(t.safe_before_ms == 100);
	/* down now: the primary writes, the last known position ages */
	nb_rlag_primary(&t, 700, 20);
	nb_rlag_replica(&t, 900, 0, false);
	CHECK(t.lag_ms == 200 && t.safe_before_ms == 100);
	CHECK(t.replay_lsn == 10);
}

static void test_failover_and_full_table(void)
{
	nb_rlag_t t;
	nb_rlag_init(&t);
	for (int i = 0; i < NB_RLAG_SAMPLES + 10; i++)
		nb_rlag_primary(&t, i, (uint64_t)i + 1);
	CHECK(t.n == NB_RLAG_SAMPLES); /* full: newer samples are not kept */
	nb_rlag_replica(&t, 1000, UINT64_MAX, true);
	CHECK(t.safe_before_ms == NB_RLAG_SAMPLES - 1); /* never past a sample it has: not too early */
	nb_rlag_primary(&t, 2000, 5); /* another primary, its positions lower: start again */
	CHECK(t.n == 1 && t.s[0].lsn == 5);
	nb_rlag_replica(&t, 2001, 5, true);
	CHECK(t.safe_before_ms == 2000 && t.lag_ms == 0);
}

int main(void)
{
	T_RUN(test_lsn_parse);
	T_RUN(test_caught_up_and_safe_before);
	T_RUN(test_idle_primary_moves_safe_before);
	T_RUN(test_paused_replay_lag_grows);
	T_RUN(test_replica_unreachable);
	T_RUN(test_failover_and_full_table);
	return t_done();
}
