/*
 * test_ratelimit_sync.c — the rate-limit engine's sync (src/auth/ratelimit.c)
 * against a real PostgreSQL (NB_TEST_DATABASE_URL): the one rule for a
 * failed sync. While the statement fails (rate_buckets renamed away), a
 * shared limiter's lease starts again after each failed round, so the server
 * keeps limiting on its own counts, and the spending is kept: the first sync
 * that succeeds adds every allowed hit to the deployment's bucket (dropped,
 * the row would show only the hits since the last failure).
 */
#include <libpq-fe.h>
#include <math.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/ratelimit.h"
#include "core/config.h"
#include "core/timeutil.h"
#include "t.h"
#include "itest.h"

static const char *url;
static PGconn *admin;

static bool sql(const char *q)
{
	PGresult *r = PQexec(admin, q);
	bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
	CHECK_MSG(ok, "%s: %s", q, PQerrorMessage(admin));
	PQclear(r);
	return ok;
}

/* The tokens of the one shared row of capacity cap, or NAN when there is none. */
static double row_tokens(int cap)
{
	char q[128];
	snprintf(q, sizeof q, "SELECT tokens FROM rate_buckets WHERE cap = %d", cap);
	PGresult *r = PQexec(admin, q);
	double t = NAN;
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		t = strtod(PQgetvalue(r, 0, 0), NULL);
	PQclear(r);
	return t;
}

static void pause_ms(long ms)
{
	struct timespec ts = {0, ms * 1000000L};
	nanosleep(&ts, NULL);
}

static void test_a_failed_sync_keeps_its_spending(void)
{
	enum { CAP = 117, LEASE = 12, HITS = 30 }; /* lease ceil(117 / 10); more than two leases */
	static const unsigned char secret[] = "itest-secret-itest-secret-itest-secret-0123";
	CHECK(sql("DELETE FROM rate_buckets WHERE cap = 117"));
	CHECK_INT(nb_ratelimit_sync_start(url, 20), 0);
	nb_ratelimit_t *rl = nb_ratelimit_create(CAP);
	nb_ratelimit_share(rl, secret, sizeof secret - 1, "itest replay", NB_RATELIMIT_DOOR_LEASE_DIV);
	if (!sql("ALTER TABLE rate_buckets RENAME TO rate_buckets_away"))
		goto out;
	/* The sync fails from now on. Each failed round starts the lease again: HITS pass in time. */
	int allowed = 0, refused = 0;
	int64_t deadline = nb_mono_ms() + 20000;
	while (allowed < HITS && nb_mono_ms() < deadline) {
		if (nb_ratelimit_hit(rl, "k", nb_mono_ms()) == 0) {
			allowed++;
		} else {
			refused++; /* the lease is spent: the next failed round gives it back */
			pause_ms(1);
		}
	}
	CHECK_MSG(allowed == HITS, "%d of %d hits allowed while the sync failed (%d refused)", allowed, HITS,
		  refused);
	CHECK_MSG(refused > 0, "the lease of %d was never spent", LEASE);
	sql("ALTER TABLE rate_buckets_away RENAME TO rate_buckets");
	/* The first sync that succeeds adds all HITS: the new row holds CAP - HITS tokens. */
	double t = NAN;
	deadline = nb_mono_ms() + 10000;
	while (isnan(t) && nb_mono_ms() < deadline) {
		pause_ms(10);
		t = row_tokens(CAP);
	}
	CHECK_MSG(!isnan(t) && fabs(t - (CAP - HITS)) < 0.01, "the shared bucket holds %g tokens, not %d", t,
		  CAP - HITS);
out:
	nb_ratelimit_destroy(rl);
	nb_ratelimit_sync_stop();
	sql("DELETE FROM rate_buckets WHERE cap = 117");
}

int main(void)
{
	if (!(url = itest_start()))
		return 2;
	admin = PQconnectdb(url);
	if (PQstatus(admin) != CONNECTION_OK) {
		fprintf(stderr, "%s", PQerrorMessage(admin));
		return 2;
	}
	T_RUN(test_a_failed_sync_keeps_its_spending);
	PQfinish(admin);
	return t_done();
}
