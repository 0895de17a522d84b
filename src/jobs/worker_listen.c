/*
 * worker_listen.c — the listener: one session-level connection LISTENing on
 * the queue's channel (NOTEBOOKD_LISTEN_DATABASE_URL, which may bypass a
 * transaction-pooling PgBouncer), waking the fetcher on NOTIFY and after
 * every reconnect (a notification may have been missed meanwhile). It polls
 * the stop pipe beside the socket, so a stop never waits for a connect.
 */
#include <poll.h>
#include <unistd.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "jobs/worker_internal.h"
#include "store/jobs.h"
#include "db/connect.h"

/* ---- the listener -------------------------------------------------------- */

/* True when stop has been asked (the pipe is readable); waits up to ms. */
static bool stop_asked(nb_workers_t *w, int ms)
{
	struct pollfd p = {.fd = w->wake_pipe[0], .events = POLLIN};
	return poll(&p, 1, ms) > 0;
}

/* Connects without blocking past a stop request. NULL on failure (logged by the caller). */
static PGconn *listen_connect(nb_workers_t *w, char *why, size_t whylen)
{
	nb_db_connect_opts_t co;
	nb_db_connect_opts_init(&co, w->conninfo, "notebookd-listen");
	co.keepalives = true; /* it idles for long: notice a dead peer */
	PGconn *pg = nb_db_connect_start(&co, why, whylen);
	if (!pg)
		return NULL;
	int timeout_s = co.connect_timeout_s > 0 ? co.connect_timeout_s : 5;
	int64_t deadline = nb_mono_ms() + (int64_t)timeout_s * 1000;
	const char *fail = NULL;
	char pollerr[128];
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
		struct pollfd fds[2] = {
		    {.fd = PQsocket(pg), .events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT},
		    {.fd = w->wake_pipe[0], .events = POLLIN},
		};
		int left = (int)(deadline - nb_mono_ms());
		if (left <= 0) {
			fail = "timeout";
			break;
		}
		int r = poll(fds, 2, left);
		if (r < 0 && errno != EINTR) {
			snprintf(pollerr, sizeof pollerr, "poll: %s", strerror(errno));
			fail = pollerr;
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
		if (nb_store_jobs_listen(pg) == 0)
			return pg;
		snprintf(why, whylen, "LISTEN failed");
	}
	PQfinish(pg);
	return NULL;
}

static void wake_fetcher(nb_workers_t *w)
{
	pthread_mutex_lock(&w->mu);
	w->notified = true;
	pthread_cond_signal(&w->fetch_cv);
	pthread_mutex_unlock(&w->mu);
}

/* Waits for notifications on a live connection; returns on stop or when it drops. */
static void listen_loop(nb_workers_t *w, PGconn *pg)
{
	char msg[200];
	int r;
	while ((r = nb_db_listen_wait(pg, w->wake_pipe[0], msg, sizeof msg)) > 0) {
		int got = 0;
		PGnotify *n;
		while ((n = PQnotifies(pg)) != NULL) {
			got++;
			PQfreemem(n);
		}
		if (got)
			wake_fetcher(w);
	}
	if (r < 0)
		nb_warn("job listener lost its connection (%s); reconnecting", msg);
}

void *nb_workers__listen_main(void *arg)
{
	nb_workers_t *w = arg;
	int backoff = LISTEN_BACKOFF_MIN_MS;
	bool down = false;
	while (!stop_asked(w, 0)) {
		char why[256] = "";
		PGconn *pg = listen_connect(w, why, sizeof why);
		if (!pg) {
			if (!down && !stop_asked(w, 0))
				nb_warn("job listener could not connect (%s); polling every %d ms meanwhile, retrying",
					why, w->o.poll_ms);
			down = true;
			if (stop_asked(w, backoff))
				break;
			backoff = backoff * 2 > LISTEN_BACKOFF_MAX_MS ? LISTEN_BACKOFF_MAX_MS : backoff * 2;
			continue;
		}
		if (down)
			nb_info("job listener connected again");
		down = false;
		backoff = LISTEN_BACKOFF_MIN_MS;
		wake_fetcher(w); /* a NOTIFY may have been missed while disconnected */
		listen_loop(w, pg);
		PQfinish(pg);
	}
	return NULL;
}

