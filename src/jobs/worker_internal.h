/*
 * worker_internal.h — what the files of a worker set share (not a public
 * interface; see worker.h for that and README.md for the design).
 *
 *   worker.c           lifecycle (start, begin_stop, stop), shared helpers, hand-back
 *   worker_run.c       the fetcher (claims) and the runners (handlers)
 *   worker_complete.c  the completer (outcomes), heartbeats and the reaper
 *   worker_listen.c    the LISTEN connection that wakes the fetcher
 *
 * Every field of nb_workers_t below `mu` is guarded by it; no statement runs
 * under it.
 */
#ifndef NB_JOBS_WORKER_INTERNAL_H
#define NB_JOBS_WORKER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "jobs/queue.h"
#include "jobs/worker.h"

#define DB_RETRY_MS 500		  /* after a failed queue statement */
#define RECHECK_MS 25		  /* ready jobs exist but others hold them */
#define REAP_LIMIT 500		  /* expired leases per reaper statement */
#define LISTEN_BACKOFF_MIN_MS 100 /* listener reconnect backoff */
#define LISTEN_BACKOFF_MAX_MS 5000
#define UNAVAIL_DELAY_MS 1000 /* a job that lost the database runs again after this */
#define NEVER INT64_MAX

typedef enum { SLOT_QUEUED, SLOT_RUNNING, SLOT_DONE } slot_state_t;

typedef struct slot {
	nb_job_t job;
	nb_job_fn fn;
	slot_state_t state;
	int rc;
	bool handed_back;	    /* stop re-queued it: its outcome is discarded */
	bool db_lost;		    /* the handler lost the database: re-queue, attempt not counted */
	PGcancel *cancel;	    /* running with a connection: cancels its statement at a stop's deadline */
	struct slot *next;	    /* in the local queue or the done list */
	struct slot *hprev, *hnext; /* in the held list */
	char err[512];
} slot_t;

struct nb_job_ctx {
	nb_workers_t *w;
	slot_t *slot;
	nb_conn_t *conn;
	bool unavailable; /* nb_job_ctx_conn found no connection */
};

struct nb_workers {
	nb_pool_t *pool;
	struct nb_retention_sched *retention; /* the scheduled retention (retention.h), or NULL */
	char *conninfo;
	nb_workers_opts_t o;
	char name[160];
	char kinds[NB_JOBS_MAX_KINDS][32];
	const char *kindp[NB_JOBS_MAX_KINDS];
	nb_job_fn fns[NB_JOBS_MAX_KINDS];
	int nkinds;

	pthread_mutex_t mu;
	pthread_cond_t work_cv;	 /* runners: a job was queued, or stop */
	pthread_cond_t fetch_cv; /* fetcher: room, a notification, or stop */
	pthread_cond_t done_cv;	 /* completer: an outcome to write, or its exit */
	pthread_cond_t idle_cv;	 /* stop: a running job finished */
	pthread_cond_t stop_cv;	 /* naps and the maintenance thread: exit flags */
	slot_t *q_head, *q_tail;
	int queued;
	slot_t *d_head, *d_tail;
	slot_t held; /* sentinel of the held list */
	int nheld;
	int running;
	int64_t avg_us;	     /* moving average of handler durations (0: none yet) */
	bool stopping;	     /* claim nothing more; idle runners exit */
	bool completer_exit; /* runners are gone: write what is left, then exit */
	bool maint_exit;
	bool notified; /* jobs may be ready: a NOTIFY, a reconnect, a retry scheduled */
	bool db_down;  /* a handler lost the database: runners wait until it answers */
	atomic_bool hard_stop;
	int wake_pipe[2]; /* written once at stop: wakes the listener's poll */
	uint64_t rng;	  /* completer only: backoff jitter */
	nb_workers_stats_t st;

	pthread_t fetcher, completer, maint, listener;
	pthread_t *runners;
	bool has_listener;
};

/* A list of job ids copied out from under the lock. */
typedef struct idlist {
	int n;
	char (*id)[37];
	const char **p;
} idlist_t;

/* worker.c: shared helpers */
void nb_workers__cv_init(pthread_cond_t *cv);
/* Waits on cv until signalled or the monotonic deadline (NEVER: no deadline). */
void nb_workers__cv_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline_ms);
/* Sleeps ms unless an exit flag is raised first. Called with the lock held. */
void nb_workers__nap_locked(nb_workers_t *w, int ms, const bool *exit_flag);
void nb_workers__held_add(nb_workers_t *w, slot_t *s);
void nb_workers__held_remove(nb_workers_t *w, slot_t *s);
void nb_workers__slot_free(slot_t *s);
void nb_workers__idl_init(idlist_t *l, int cap);
void nb_workers__idl_add(idlist_t *l, const char *id);
void nb_workers__idl_dispose(idlist_t *l);
/* Hands jobs back (status before the claim, attempt not counted), waiting
 * for a connection until deadline_ms (monotonic) but at least DB_RETRY_MS. */
int nb_workers__handback(nb_workers_t *w, const idlist_t *ids, int64_t deadline_ms);

/* Thread bodies: worker_run.c, worker_complete.c, worker_listen.c. */
void *nb_workers__fetch_main(void *arg);
void *nb_workers__run_main(void *arg);
void *nb_workers__complete_main(void *arg);
void *nb_workers__maint_main(void *arg);
void *nb_workers__listen_main(void *arg);

#endif
