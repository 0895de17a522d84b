/*
 * cli.c — `notebookd worker`: a process that only runs jobs.
 *
 * Signals are blocked in every thread and taken with sigwait by the main
 * thread, which is the only one that acts on them: the first SIGTERM or
 * SIGINT drains (nb_workers_stop within NOTEBOOKD_SHUTDOWN_TIMEOUT_MS), a
 * second one exits at once — what was running comes back through the
 * leases. A side service (main.c: /metrics on NOTEBOOKD_METRICS_LISTEN)
 * starts after the mask is set and stops after the runners.
 */
#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "db/connect.h"
#include "db/pool.h"
#include "jobs/worker.h"

static const nb_jobs_cli_side_t *side;

void nb_jobs_cmd_worker_side(const nb_jobs_cli_side_t *s)
{
	side = s;
}

typedef struct stopper {
	nb_workers_t *w;
	int timeout_ms;
	atomic_bool done;
} stopper_t;

static void *stop_main(void *arg)
{
	stopper_t *s = arg;
	nb_workers_stop(s->w, s->timeout_ms);
	atomic_store(&s->done, true);
	return NULL;
}

/* -1 on a bad argument (message printed), else the concurrency. */
static int parse_args(int argc, char **argv)
{
	int n = nb_cfg.workers > 0 ? nb_cfg.workers : 2;
	for (int i = 1; i < argc; i++) {
		const char *v = NULL;
		if (!strcmp(argv[i], "--concurrency") || !strcmp(argv[i], "-c"))
			v = i + 1 < argc ? argv[++i] : "";
		else if (!strncmp(argv[i], "--concurrency=", 14))
			v = argv[i] + 14;
		if (!v) {
			fprintf(stderr, "notebookd worker: unknown argument \"%s\" (see notebookd worker --help)\n",
				argv[i]);
			return -1;
		}
		char *end = NULL;
		errno = 0;
		long l = strtol(v, &end, 10);
		if (errno || !*v || *end || l < 1 || l > 256) {
			fprintf(stderr, "notebookd worker: --concurrency must be an integer from 1 to 256\n");
			return -1;
		}
		n = (int)l;
	}
	return n;
}

/* Checks at start that the database answers, for a clear one-line error. */
static int check_database(void)
{
	nb_db_connect_opts_t co;
	nb_db_connect_opts_init(&co, nb_cfg.database_url, "notebookd-worker");
	char msg[512];
	PGconn *pg = nb_db_connect(&co, msg, sizeof msg);
	if (!pg) {
		fprintf(stderr, "notebookd worker: could not connect to the database: %s\n", msg);
		return -1;
	}
	PQfinish(pg);
	return 0;
}

int nb_jobs_cmd_worker(int argc, char **argv)
{
	int concurrency = parse_args(argc, argv);
	if (concurrency < 0)
		return 2;
	if (!nb_cfg.database_url) {
		fprintf(stderr, "notebookd worker: DATABASE_URL is not set\n");
		return 1;
	}
	if (check_database() < 0)
		return 1;

	/* Before any thread starts, so that all inherit the mask. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	int err = pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (err != 0) {
		fprintf(stderr, "notebookd worker: could not block signals: %s\n", strerror(err));
		return 1;
	}

	nb_pool_opts_t po;
	nb_pool_opts_from_config(&po, nb_cfg.database_url);
	po.application_name = "notebookd-worker";
	po.size = concurrency + NB_WORKERS_EXTRA_CONNS;
	po.async = false;
	nb_pool_t *pool = nb_pool_create(&po);
	void *side_h = NULL;
	if (side && side->start && !(side_h = side->start(pool))) {
		nb_pool_destroy(pool);
		return 1;
	}
	nb_workers_t *w = nb_workers_start(pool, nb_workers_listen_url(), concurrency, "worker");

	int sig = 0;
	while (sigwait(&set, &sig) != 0)
		;
	nb_info("received %s: stopping job workers (up to %d ms for running jobs)",
		sig == SIGTERM ? "SIGTERM" : "SIGINT", nb_cfg.shutdown_timeout_ms);
	stopper_t st = {w, nb_cfg.shutdown_timeout_ms, false};
	pthread_t t;
	if (pthread_create(&t, NULL, stop_main, &st) != 0) {
		stop_main(&st);
	} else {
		struct timespec tick = {0, 100 * 1000000L};
		while (!atomic_load(&st.done)) {
			if (sigtimedwait(&set, NULL, &tick) > 0) {
				nb_warn("second signal: exiting now; running jobs come back when their lease expires");
				_exit(1);
			}
		}
		pthread_join(t, NULL);
	}
	if (side_h && side->stop)
		side->stop(side_h);
	nb_pool_destroy(pool);
	return 0;
}
