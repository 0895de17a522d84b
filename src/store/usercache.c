/*
 * usercache.c — the live-user cache and its LISTEN thread (see usercache.h).
 *
 * One mutex guards the table, the generation and the listening flag: a
 * lookup is a hash, one set of 4 slots and a few compares, far cheaper than
 * the round trip it saves, so finer locking would not pay. The listener
 * thread polls its socket beside a stop pipe and reconnects with a doubling
 * back-off (50 ms to 2 s).
 */
#include "store/usercache.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "core/log.h"
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

static bool stop_asked(int ms)
{
	struct pollfd p = {.fd = uc.stop_pipe[0], .events = POLLIN};
	return poll(&p, 1, ms) > 0;
}

static PGconn *listen_connect(char *why, size_t whylen)
{
	nb_db_connect_opts_t co;
	nb_db_connect_opts_init(&co, uc.conninfo, "notebookd-usercache");
	co.keepalives = true;
	PGconn *pg = nb_db_connect_start(&co, why, whylen);
	if (!pg)
		return NULL;
	int timeout_s = co.connect_timeout_s > 0 ? co.connect_timeout_s : 5;
	int64_t deadline = nb_mono_ms() + (int64_t)timeout_s * 1000;
	const char *fail = NULL;
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
		struct pollfd fds[2] = {
		    {.fd = PQsocket(pg), .events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT},
		    {.fd = uc.stop_pipe[0], .events = POLLIN},
		};
		int left = (int)(deadline - nb_mono_ms());
		if (left <= 0) {
			fail = "timeout";
			break;
		}
		int r = poll(fds, 2, left);
		if (r < 0 && errno != EINTR) {
			fail = "poll failed";
			break;
		}
		if (fds[1].revents) {
			fail = "stopping";
			break;
		}
		if (r > 0)
			st = PQconnectPoll(pg);
	}
	if (nb_db_connect_finish(pg, fail, why, whylen) == 0) {
		PGresult *r = PQexec(pg, "LISTEN " NB_USERCACHE_CHANNEL);
		bool ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
		PQclear(r);
		if (ok)
			return pg;
		snprintf(why, whylen, "LISTEN failed");
	}
	PQfinish(pg);
	return NULL;
}

/* Serves notifications until stop or until the connection drops. */
static void listen_loop(PGconn *pg)
{
	char msg[200];
	int r;
	while ((r = nb_db_listen_wait(pg, uc.stop_pipe[0], msg, sizeof msg)) > 0) {
		PGnotify *n;
		while ((n = PQnotifies(pg)) != NULL) {
			nb_usercache_drop(n->extra);
			PQfreemem(n);
		}
	}
	if (r < 0)
		nb_warn("user cache listener lost its connection (%s); checking every request in the database until it"
			" is back",
			msg);
}

static void *listen_main(void *arg)
{
	(void)arg;
	int backoff = BACKOFF_MIN_MS;
	bool down = false;
	while (!stop_asked(0)) {
		char why[256] = "";
		PGconn *pg = listen_connect(why, sizeof why);
		if (!pg) {
			if (!down && !stop_asked(0))
				nb_warn("user cache listener could not connect (%s); retrying", why);
			down = true;
			if (stop_asked(backoff))
				break;
			backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
			continue;
		}
		if (down)
			nb_info("user cache listener connected again");
		down = false;
		backoff = BACKOFF_MIN_MS;
		set_listening(true);
		listen_loop(pg);
		set_listening(false);
		PQfinish(pg);
	}
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
