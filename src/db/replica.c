/*
 * replica.c — the replica's health and the read-your-writes table (see
 * replica.h). The checks run on one thread with two blocking connections of
 * their own (never the pools', never through the circuit breaker: a replica
 * that is down must not make the primary look down).
 */
#include "db/replica.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "db/connect.h"
#include "db/replica_lag.h"

#define NBUCKETS 1024
/* A check older than this (the thread is stuck connecting) no longer vouches for the replica. */
#define STALE_MS (4 * NB_REPLICA_CHECK_MS + 500)
#define CHECK_STATEMENT_TIMEOUT_MS 2000
#define CHECK_CONNECT_TIMEOUT_S 2

typedef struct writer {
	char uid[40];
	int64_t t_ms; /* monotonic: when its last write ended */
	struct writer *next;
} writer_t;

static struct {
	pthread_mutex_t mu; /* guards everything below but the atomics */
	pthread_cond_t cv;
	pthread_t thread;
	bool running, stopping;
	char *primary_url, *replica_url;
	int max_lag_ms;
	nb_rlag_t lag;
	uint64_t max_replay; /* the highest replay position seen: a restarted replica must pass it again */
	bool up, forced_down, went_back;
	int64_t last_ok_ms;
	writer_t *buckets[NBUCKETS];
	long nwriters;
	atomic_bool configured;
	atomic_ullong replica_reads, primary_reads, fallbacks;
} rs = {.mu = PTHREAD_MUTEX_INITIALIZER};

static unsigned hash_uid(const char *s)
{
	unsigned h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % NBUCKETS;
}

/* Drops the writers whose writes the replica has replayed. Lock held. */
static void prune_locked(void)
{
	int64_t safe = rs.lag.safe_before_ms;
	for (int i = 0; i < NBUCKETS; i++) {
		writer_t **pp = &rs.buckets[i];
		while (*pp) {
			if ((*pp)->t_ms < safe) {
				writer_t *w = *pp;
				*pp = w->next;
				free(w);
				rs.nwriters--;
			} else {
				pp = &(*pp)->next;
			}
		}
	}
}

static bool usable_locked(int64_t now)
{
	return rs.up && !rs.forced_down && !rs.went_back && now - rs.last_ok_ms <= STALE_MS &&
	       rs.lag.lag_ms <= rs.max_lag_ms;
}

static PGconn *check_connect(const char *url, const char *what, bool *warned)
{
	nb_db_connect_opts_t o;
	nb_db_connect_opts_init(&o, url, "notebookd-replica-check");
	o.connect_timeout_s = CHECK_CONNECT_TIMEOUT_S;
	o.statement_timeout_ms = CHECK_STATEMENT_TIMEOUT_MS;
	char err[256];
	PGconn *pg = nb_db_connect(&o, err, sizeof err);
	if (!pg && !*warned) {
		nb_warn("replica check: could not connect to the %s: %s", what, err);
		*warned = true;
	} else if (pg && *warned) {
		nb_info("replica check: connected to the %s again", what);
		*warned = false;
	}
	return pg;
}

/* One statement returning one row; NULL (the connection closed) on failure. */
static PGresult *check_query(PGconn **pg, const char *sql, int ncols)
{
	PGresult *r = PQexec(*pg, sql);
	if (r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && PQnfields(r) == ncols)
		return r;
	PQclear(r);
	PQfinish(*pg);
	*pg = NULL;
	return NULL;
}

static void *check_main(void *arg)
{
	(void)arg;
	PGconn *prim = NULL, *repl = NULL;
	bool prim_warned = false, repl_warned = false, lag_warned = false, not_standby = false;
	pthread_mutex_lock(&rs.mu);
	while (!rs.stopping) {
		pthread_mutex_unlock(&rs.mu);
		/* the primary first, its time noted before asking: every commit done by then is <= its answer */
		int64_t t_p = nb_mono_ms();
		uint64_t plsn = 0, rlsn = 0;
		bool have_p = false, have_r = false;
		if (!prim)
			prim = check_connect(rs.primary_url, "primary", &prim_warned);
		PGresult *r = prim ? check_query(&prim, "SELECT pg_current_wal_lsn()", 1) : NULL;
		if (r)
			have_p = nb_lsn_parse(PQgetvalue(r, 0, 0), &plsn) == 0;
		PQclear(r);
		if (!repl)
			repl = check_connect(rs.replica_url, "replica", &repl_warned);
		r = repl ? check_query(&repl, "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()", 2) : NULL;
		if (r) {
			bool standby = PQgetvalue(r, 0, 0)[0] == 't' && !PQgetisnull(r, 0, 1);
			if (!standby && !not_standby)
				nb_warn("replica check: DATABASE_READ_URL is not a standby in recovery; reads stay on the primary");
			not_standby = !standby;
			have_r = standby && nb_lsn_parse(PQgetvalue(r, 0, 1), &rlsn) == 0;
		}
		PQclear(r);

		pthread_mutex_lock(&rs.mu);
		int64_t now = nb_mono_ms();
		if (have_p)
			nb_rlag_primary(&rs.lag, t_p, plsn);
		nb_rlag_replica(&rs.lag, now, rlsn, have_r);
		rs.up = have_r;
		if (have_r) {
			rs.last_ok_ms = now;
			rs.forced_down = false;
			rs.went_back = rlsn < rs.max_replay; /* restarted: not before it is where it was */
			if (rlsn > rs.max_replay)
				rs.max_replay = rlsn;
		}
		bool over = rs.lag.lag_ms > rs.max_lag_ms;
		if (over != lag_warned) {
			if (over)
				nb_warn("replica lags %lld ms behind the primary (bound %d ms): reads go to the primary",
					(long long)rs.lag.lag_ms, rs.max_lag_ms);
			else
				nb_info("replica caught up: reads go to it again");
			lag_warned = over;
		}
		prune_locked();
		if (rs.stopping)
			break;
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		int64_t until_ns = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec + NB_REPLICA_CHECK_MS * 1000000LL;
		ts.tv_sec = (time_t)(until_ns / 1000000000LL);
		ts.tv_nsec = (long)(until_ns % 1000000000LL);
		while (!rs.stopping && pthread_cond_timedwait(&rs.cv, &rs.mu, &ts) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&rs.mu);
	if (prim)
		PQfinish(prim);
	if (repl)
		PQfinish(repl);
	return NULL;
}

int nb_replica_start(const char *primary_url, const char *replica_url, int max_lag_ms)
{
	if (rs.running || !primary_url || !replica_url)
		return -1;
	pthread_condattr_t ca;
	if (pthread_condattr_init(&ca) != 0 || pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&rs.cv, &ca) != 0)
		return -1;
	pthread_condattr_destroy(&ca);
	rs.primary_url = nb_xstrdup(primary_url);
	rs.replica_url = nb_xstrdup(replica_url);
	rs.max_lag_ms = max_lag_ms;
	nb_rlag_init(&rs.lag);
	rs.stopping = false;
	if (pthread_create(&rs.thread, NULL, check_main, NULL) != 0) {
		free(rs.primary_url);
		free(rs.replica_url);
		pthread_cond_destroy(&rs.cv);
		return -1;
	}
	rs.running = true;
	atomic_store(&rs.configured, true);
	return 0;
}

void nb_replica_stop(void)
{
	if (!rs.running)
		return;
	pthread_mutex_lock(&rs.mu);
	rs.stopping = true;
	pthread_cond_signal(&rs.cv);
	pthread_mutex_unlock(&rs.mu);
	pthread_join(rs.thread, NULL);
	atomic_store(&rs.configured, false);
	rs.running = false;
	pthread_mutex_lock(&rs.mu);
	for (int i = 0; i < NBUCKETS; i++) {
		while (rs.buckets[i]) {
			writer_t *w = rs.buckets[i];
			rs.buckets[i] = w->next;
			free(w);
		}
	}
	rs.nwriters = 0;
	rs.up = false;
	pthread_mutex_unlock(&rs.mu);
	pthread_cond_destroy(&rs.cv);
	free(rs.primary_url);
	free(rs.replica_url);
	rs.primary_url = rs.replica_url = NULL;
}

bool nb_replica_configured(void)
{
	return atomic_load_explicit(&rs.configured, memory_order_relaxed);
}

bool nb_replica_usable_for(const char *uid)
{
	if (!nb_replica_configured())
		return false;
	bool ok;
	pthread_mutex_lock(&rs.mu);
	ok = usable_locked(nb_mono_ms());
	if (ok && uid && rs.nwriters > 0) {
		for (writer_t *w = rs.buckets[hash_uid(uid)]; w; w = w->next)
			if (!strcmp(w->uid, uid)) {
				ok = w->t_ms < rs.lag.safe_before_ms;
				break;
			}
	}
	pthread_mutex_unlock(&rs.mu);
	return ok;
}

void nb_replica_note_write(const char *uid)
{
	if (!nb_replica_configured() || !uid || strlen(uid) >= sizeof ((writer_t *)0)->uid)
		return;
	int64_t now = nb_mono_ms();
	unsigned b = hash_uid(uid);
	pthread_mutex_lock(&rs.mu);
	writer_t *w = rs.buckets[b];
	while (w && strcmp(w->uid, uid))
		w = w->next;
	if (!w) {
		w = nb_xcalloc(1, sizeof *w);
		strcpy(w->uid, uid);
		w->next = rs.buckets[b];
		rs.buckets[b] = w;
		rs.nwriters++;
	}
	w->t_ms = now;
	pthread_mutex_unlock(&rs.mu);
}

void nb_replica_fallback(bool broken)
{
	atomic_fetch_add(&rs.fallbacks, 1);
	if (!broken)
		return;
	pthread_mutex_lock(&rs.mu);
	if (!rs.forced_down && rs.up)
		nb_warn("a statement on the replica failed: reads go to the primary until its next good check");
	rs.forced_down = true;
	pthread_mutex_unlock(&rs.mu);
}

void nb_replica_count_read(bool replica)
{
	atomic_fetch_add_explicit(replica ? &rs.replica_reads : &rs.primary_reads, 1, memory_order_relaxed);
}

void nb_replica_stats(nb_replica_stats_t *out)
{
	memset(out, 0, sizeof *out);
	out->replica_reads = atomic_load(&rs.replica_reads);
	out->primary_reads = atomic_load(&rs.primary_reads);
	out->fallbacks = atomic_load(&rs.fallbacks);
	if (!nb_replica_configured())
		return;
	out->configured = true;
	pthread_mutex_lock(&rs.mu);
	out->up = rs.up && !rs.forced_down;
	out->usable = usable_locked(nb_mono_ms());
	out->lag_s = (double)rs.lag.lag_ms / 1000.0;
	out->lag_bytes = rs.lag.lag_bytes;
	out->users_tracked = rs.nwriters;
	pthread_mutex_unlock(&rs.mu);
}
