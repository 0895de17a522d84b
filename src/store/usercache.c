/*
 * usercache.c — the live-user cache and its LISTEN thread (see usercache.h).
 *
 * One mutex guards the table, the generation and the listening flag: a
 * lookup is a hash, one set of 4 slots and a few compares, far cheaper than
 * the round trip it saves, so finer locking would not pay. The listener
 * thread is db/connect.c's nb_db_listener_run: it polls its socket beside a
 * stop pipe and reconnects with a doubling back-off (50 ms to 2 s).
 */
#include "store/usercache.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "core/timeutil.h"
#include "db/connect.h"

#define WAYS 4
#define ID_LEN 36
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000

typedef struct slot {
	char id[ID_LEN + 1]; /* "" = empty */
	int64_t expires_ms;  /* monotonic */
} slot_t;

static struct {
	pthread_mutex_t mu;
	slot_t *slots; /* nsets * WAYS */
	size_t nsets;  /* a power of two */
	int ttl_ms;
	uint64_t gen;	/* bumped by every invalidation */
	bool listening; /* the cache serves only while true */
	bool running;	/* the thread exists */
	pthread_t thread;
	int stop_pipe[2];
	char *conninfo;
} uc = {.mu = PTHREAD_MUTEX_INITIALIZER, .stop_pipe = {-1, -1}};

static uint64_t hash_id(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (int i = 0; i < ID_LEN && s[i]; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return h;
}

static bool id_ok(const char *uid)
{
	return uid && strlen(uid) == ID_LEN;
}

/* Empties the table and bumps the generation; mu held. */
static void clear_locked(void)
{
	if (uc.slots)
		memset(uc.slots, 0, uc.nsets * WAYS * sizeof *uc.slots);
	uc.gen++;
}

bool nb_usercache_has(const char *uid, uint64_t *gen)
{
	bool hit = false;
	pthread_mutex_lock(&uc.mu);
	*gen = uc.gen;
	if (uc.listening && uc.slots && id_ok(uid)) {
		slot_t *set = uc.slots + (hash_id(uid) & (uc.nsets - 1)) * WAYS;
		int64_t now = nb_mono_ms();
		for (int i = 0; i < WAYS && !hit; i++)
			hit = set[i].expires_ms > now && !memcmp(set[i].id, uid, ID_LEN);
	}
	pthread_mutex_unlock(&uc.mu);
	return hit;
}

void nb_usercache_put(const char *uid, uint64_t gen)
{
	if (!id_ok(uid))
		return;
	pthread_mutex_lock(&uc.mu);
	if (uc.listening && uc.slots && uc.gen == gen) {
		slot_t *set = uc.slots + (hash_id(uid) & (uc.nsets - 1)) * WAYS;
		slot_t *victim = &set[0];
		for (int i = 0; i < WAYS; i++) {
			if (!memcmp(set[i].id, uid, ID_LEN)) {
				victim = &set[i];
				break;
			}
			if (set[i].expires_ms < victim->expires_ms)
				victim = &set[i]; /* the empty or the oldest */
		}
		memcpy(victim->id, uid, ID_LEN + 1);
		victim->expires_ms = nb_mono_ms() + uc.ttl_ms;
	}
	pthread_mutex_unlock(&uc.mu);
}

void nb_usercache_drop(const char *uid)
{
	pthread_mutex_lock(&uc.mu);
	uc.gen++;
	if (uc.slots && id_ok(uid)) {
		slot_t *set = uc.slots + (hash_id(uid) & (uc.nsets - 1)) * WAYS;
		for (int i = 0; i < WAYS; i++)
			if (!memcmp(set[i].id, uid, ID_LEN))
				memset(&set[i], 0, sizeof set[i]);
	} else if (uc.slots) {
		clear_locked(); /* not an id we could have stored: forget everything */
	}
	pthread_mutex_unlock(&uc.mu);
}

bool nb_usercache_listening(void)
{
	pthread_mutex_lock(&uc.mu);
	bool l = uc.listening;
	pthread_mutex_unlock(&uc.mu);
	return l;
}

static void set_listening(bool on)
{
	pthread_mutex_lock(&uc.mu);
	clear_locked(); /* up: notifications may have been missed; down: stop serving */
	uc.listening = on;
	pthread_mutex_unlock(&uc.mu);
}

/* ---- the listener -------------------------------------------------------- */

static int subscribe(PGconn *pg)
{
	PGresult *r = PQexec(pg, "LISTEN " NB_USERCACHE_CHANNEL);
	int rc = r && PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -1;
	PQclear(r);
	return rc;
}

static void on_up(void *arg)
{
	(void)arg;
	set_listening(true);
}

static void on_down(void *arg)
{
	(void)arg;
	set_listening(false);
}

static void on_input(void *arg, PGconn *pg)
{
	(void)arg;
	PGnotify *n;
	while ((n = PQnotifies(pg)) != NULL) {
		nb_usercache_drop(n->extra);
		PQfreemem(n);
	}
}

static void *listen_main(void *arg)
{
	(void)arg;
	nb_db_listener_t l = {
	    .stop_fd = uc.stop_pipe[0],
	    .backoff_min_ms = BACKOFF_MIN_MS,
	    .backoff_max_ms = BACKOFF_MAX_MS,
	    .name = "user cache listener",
	    .down_note = "retrying",
	    .lost_note = "checking every request in the database until it is back",
	    .subscribe = subscribe,
	    .on_up = on_up,
	    .on_input = on_input,
	    .on_down = on_down,
	};
	nb_db_connect_opts_init(&l.opts, uc.conninfo, "notebookd-usercache");
	nb_db_listener_run(&l);
	return NULL;
}

int nb_usercache_start(const char *conninfo, int capacity, int ttl_ms)
{
	if (capacity <= 0 || !conninfo || uc.running)
		return 0;
	size_t nsets = 1;
	while (nsets * WAYS < (size_t)capacity)
		nsets *= 2;
	slot_t *slots = calloc(nsets * WAYS, sizeof *slots);
	char *ci = strdup(conninfo);
	if (!slots || !ci || pipe(uc.stop_pipe) < 0) {
		free(slots);
		free(ci);
		return -1;
	}
	pthread_mutex_lock(&uc.mu);
	uc.slots = slots;
	uc.nsets = nsets;
	uc.ttl_ms = ttl_ms > 0 ? ttl_ms : 1;
	uc.listening = false;
	pthread_mutex_unlock(&uc.mu);
	uc.conninfo = ci;
	if (pthread_create(&uc.thread, NULL, listen_main, NULL) != 0) {
		nb_usercache_stop();
		return -1;
	}
	uc.running = true;
	return 0;
}

void nb_usercache_stop(void)
{
	if (uc.running) {
		ssize_t w = write(uc.stop_pipe[1], "x", 1);
		(void)w;
		pthread_join(uc.thread, NULL);
		uc.running = false;
	}
	for (int i = 0; i < 2; i++)
		if (uc.stop_pipe[i] >= 0) {
			close(uc.stop_pipe[i]);
			uc.stop_pipe[i] = -1;
		}
	pthread_mutex_lock(&uc.mu);
	free(uc.slots);
	uc.slots = NULL;
	uc.nsets = 0;
	uc.listening = false;
	uc.gen++;
	pthread_mutex_unlock(&uc.mu);
	free(uc.conninfo);
	uc.conninfo = NULL;
}
