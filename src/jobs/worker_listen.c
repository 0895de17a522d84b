/*
 * worker_listen.c — the listener: one session-level connection LISTENing on
 * the queue's channel (NOTEBOOKD_LISTEN_DATABASE_URL, which may bypass a
 * transaction-pooling PgBouncer), waking the fetcher on NOTIFY and after
 * every reconnect (a notification may have been missed meanwhile). The
 * connect-wait-reconnect loop is db/connect.c's nb_db_listener_run, which
 * polls the stop pipe beside the socket, so a stop never waits for a connect.
 */
#include <unistd.h>

#include <pthread.h>
#include <stdio.h>

#include "core/config.h"
#include "core/log.h"
#include "jobs/worker_internal.h"
#include "store/jobs.h"
#include "db/connect.h"

/* ---- the listener -------------------------------------------------------- */

static void wake_fetcher(void *arg)
{
	nb_workers_t *w = arg;
	pthread_mutex_lock(&w->mu);
	w->notified = true;
	pthread_cond_signal(&w->fetch_cv);
	pthread_mutex_unlock(&w->mu);
}

/* Drains the notifications that arrived; one wake-up for all of them. */
static void on_input(void *arg, PGconn *pg)
{
	int got = 0;
	PGnotify *n;
	while ((n = PQnotifies(pg)) != NULL) {
		got++;
		PQfreemem(n);
	}
	if (got)
		wake_fetcher(arg);
}

void *nb_workers__listen_main(void *arg)
{
	nb_workers_t *w = arg;
	char down_note[96];
	snprintf(down_note, sizeof down_note, "polling every %d ms meanwhile, retrying", w->o.poll_ms);
	nb_db_listener_t l = {
	    .stop_fd = w->wake_pipe[0],
	    .backoff_min_ms = LISTEN_BACKOFF_MIN_MS,
	    .backoff_max_ms = LISTEN_BACKOFF_MAX_MS,
	    .name = "job listener",
	    .down_note = down_note,
	    .lost_note = "reconnecting",
	    .subscribe = nb_store_jobs_listen,
	    .on_up = wake_fetcher, /* a NOTIFY may have been missed while disconnected */
	    .on_input = on_input,
	    .arg = w,
	};
	nb_db_connect_opts_init(&l.opts, w->conninfo, "notebookd-listen");
	nb_db_listener_run(&l);
	return NULL;
}
