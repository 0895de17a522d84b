/*
 * main.c — the notebookd command line: serve, worker, migrate, verify, purge.
 *
 * Thin on purpose: each command loads the configuration, sets up what it
 * needs from the layers below and hands over.
 */
#include <libpq-fe.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/app.h"
#include "api/replica.h"
#include "api/util.h"
#include "auth/service.h"
#include "core/config.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "db/connect.h"
#include "db/migrate.h"
#include "db/pool.h"
#include "db/verify.h"
#include "http/server.h"
#include "jobs/queue.h"
#include "jobs/retention.h"
#include "jobs/worker.h"
#include "rag/ingest.h"
#include "rag/study_jobs.h"
#include "store/notebooks.h"
#include "store/usercache.h"

typedef struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
	const char *usage;  /* its first line is the usage line printed with an argument error */
	unsigned cmd;       /* NB_CMD_*: --help lists the settings this command reads */
	const char *flags;  /* the flags it takes, each followed by a value, space-separated */
} command_t;

static int cmd_serve(int argc, char **argv);
static int cmd_migrate(int argc, char **argv);
static int cmd_verify(int argc, char **argv);
static int cmd_purge(int argc, char **argv);
static int cmd_worker(int argc, char **argv);

static const command_t commands[] = {
	{"serve", cmd_serve, "serve the HTTP API (and run in-process job workers)",
	 "notebookd serve\n\nServes the HTTP API on NOTEBOOKD_LISTEN. If the database is unreachable it keeps\n"
	 "running, answers 503 on /readyz and reconnects with backoff. SIGTERM or SIGINT\n"
	 "stop accepting, let in-flight requests finish, then exit.\n",
	 NB_CMD_SERVE, ""},
	{"worker", cmd_worker, "run job workers only (ingestion, generation)",
	 "notebookd worker [--concurrency N]\n\nClaims jobs from the PostgreSQL queue and runs them with N threads (default\n"
	 "NOTEBOOKD_WORKERS, or 2). Any number of worker processes may run against one\n"
	 "database. SIGTERM or SIGINT stop claiming, let running jobs finish within\n"
	 "NOTEBOOKD_SHUTDOWN_TIMEOUT_MS and hand back the rest. With NOTEBOOKD_METRICS_LISTEN\n"
	 "set it serves /metrics (and /healthz) there.\n",
	 NB_CMD_WORKER, "--concurrency -c"},
	{"migrate", cmd_migrate, "apply pending database migrations",
	 "notebookd migrate\n\nApplies the migrations compiled into this binary that the database lacks, in\n"
	 "order, under an advisory lock. A second run is a no-op. Exits non-zero with a\n"
	 "one-line reason when the database cannot be reached.\n",
	 NB_CMD_MIGRATE, ""},
	{"verify", cmd_verify, "check the live database against every schema guarantee",
	 "notebookd verify\n\nChecks the 13 tables, uuid keys, indexes, deleted_at/created_at/updated_at,\n"
	 "cascading and indexed foreign keys, enum CHECK constraints and the migration\n"
	 "version, then loads sample rows in a transaction it rolls back and runs EXPLAIN\n"
	 "on each critical query, failing any plan that scans a table or sorts instead of\n"
	 "reading its index. Prints one line per check (✓ or ✗) and a summary; exits\n"
	 "non-zero on any failure. It leaves dead rows for autovacuum, and its ANALYZE\n"
	 "statistics stand until the next analyze: prefer a quiet moment in production.\n",
	 NB_CMD_VERIFY, ""},
	{"purge", cmd_purge, "hard-delete what has been in the trash past the retention period",
	 "notebookd purge\n\nHard-deletes notebooks (with everything under them) and sources that have\n"
	 "been in the trash longer than NOTEBOOKD_TRASH_RETENTION_DAYS, then stored documents\n"
	 "older than that which no source uses any more, refresh tokens and one-time codes\n"
	 "expired over a day ago, and jobs finished over NOTEBOOKD_JOB_RETENTION_DAYS ago, in\n"
	 "batches of NOTEBOOKD_RETENTION_BATCH rows. The same run happens by itself every\n"
	 "NOTEBOOKD_RETENTION_INTERVAL_S in the processes that run jobs; this is for cron.\n"
	 "Idempotency-Key records older than 24 hours go too.\n",
	 NB_CMD_PURGE, ""},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out)
{
	fprintf(out, "notebookd — the backend of a NotebookLM-style study app\n\n"
		     "Usage: notebookd <command> [--help]\n\nCommands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\n");
	nb_config_print_help(out, NB_CMD_ALL);
}

/* Is `arg` one of the command's flags (alone, or as --flag=value: *inline_value set)? */
static int known_flag(const command_t *cmd, const char *arg, int *inline_value)
{
	size_t alen = strcspn(arg, "=");
	*inline_value = arg[alen] == '=';
	for (const char *f = cmd->flags; *f;) {
		size_t n = strcspn(f, " ");
		if (n == alen && !strncmp(f, arg, n) && (!*inline_value || !strncmp(arg, "--", 2)))
			return 1;
		f += n;
		f += strspn(f, " ");
	}
	return 0;
}

/*
 * Checks the arguments after the command: 1 when --help/-h is among them, 0
 * when every one is a known flag with its value, -1 (after printing the
 * error and the usage line) otherwise.
 */
static int check_args(const command_t *cmd, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		int inline_value = 0;
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return 1;
		if (known_flag(cmd, argv[i], &inline_value)) {
			if (!inline_value)
				i++; /* its value (checked by the command) */
			continue;
		}
		fprintf(stderr, "notebookd %s: unknown %s \"%s\"\nusage: %.*s (see notebookd %s --help)\n", cmd->name,
			argv[i][0] == '-' ? "flag" : "argument", argv[i], (int)strcspn(cmd->usage, "\n"), cmd->usage,
			cmd->name);
		return -1;
	}
	return 0;
}

static int need_database_url(void)
{
	if (!nb_cfg.database_url) {
		fprintf(stderr, "notebookd: DATABASE_URL is not set (make run starts a private cluster and sets it)\n");
		return -1;
	}
	return 0;
}

/* A one-shot connection for migrate/verify; NULL after printing a one-line error. */
static PGconn *connect_once(void)
{
	if (need_database_url() < 0)
		return NULL;
	nb_db_connect_opts_t co;
	nb_db_connect_opts_init(&co, nb_cfg.database_url, "notebookd-admin");
	char msg[512];
	PGconn *pg = nb_db_connect(&co, msg, sizeof msg);
	if (!pg)
		fprintf(stderr, "notebookd: could not connect to the database: %s\n", msg);
	return pg;
}

static int cmd_migrate(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	PGconn *pg = connect_once();
	if (!pg)
		return 1;
	char err[512];
	int n = nb_migrate_run(pg, err, sizeof err);
	PQfinish(pg);
	if (n < 0) {
		fprintf(stderr, "notebookd: migrate failed: %s\n", err);
		return 1;
	}
	printf("migrations: %d applied, schema at version %d\n", n, nb_migrate_latest());
	return 0;
}

static int cmd_verify(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	PGconn *pg = connect_once();
	if (!pg)
		return 1;
	int failed = nb_verify_run(pg, stdout, isatty(fileno(stdout)));
	PQfinish(pg);
	return failed == 0 ? 0 : 1;
}

static int cmd_purge(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	if (need_database_url() < 0)
		return 1;
	nb_pool_opts_t po;
	nb_pool_opts_from_config(&po, nb_cfg.database_url);
	po.size = 1;
	nb_pool_t *pool = nb_pool_create(&po);
	nb_conn_t *c = NULL;
	nb_retention_counts_t k = {{0}};
	int rc = nb_pool_acquire(pool, &c);
	if (rc == 0) /* the same run as the scheduled retention (jobs/retention.h) */
		rc = nb_retention_run(c, &k);
	nb_pool_release(pool, c);
	nb_pool_destroy(pool);
	if (rc < 0) {
		fprintf(stderr, "notebookd: purge failed (database unreachable or error; see the log)\n");
		return 1;
	}
	printf("purge: %ld notebooks and %ld sources older than %d days in the trash deleted, %ld unused documents,"
	       " %ld expired refresh tokens, %ld expired one-time codes, %ld jobs finished over %d days ago\n",
	       k.deleted[NB_RET_NOTEBOOKS], k.deleted[NB_RET_SOURCES], nb_cfg.trash_retention_days,
	       k.deleted[NB_RET_DOCUMENTS], k.deleted[NB_RET_REFRESH_TOKENS], k.deleted[NB_RET_OTPS],
	       k.deleted[NB_RET_JOBS], nb_cfg.job_retention_days);
	printf("purge: %ld idempotency keys older than 24 hours deleted\n", k.deleted[NB_RET_IDEMPOTENCY_KEYS]);
	return 0;
}

/* What serve's shutdown hook needs: one deadline for everything, counted
 * from the signal, and the workers to stop claiming at once. */
typedef struct serve_stop {
	_Atomic int64_t deadline_ms; /* monotonic; 0 until the signal */
	nb_workers_t *_Atomic workers;
} serve_stop_t;

static void on_serve_shutdown(void *arg)
{
	serve_stop_t *st = arg;
	atomic_store(&st->deadline_ms, nb_mono_ms() + nb_cfg.shutdown_timeout_ms);
	nb_workers_begin_stop(atomic_load(&st->workers));
}

static int cmd_serve(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	if (need_database_url() < 0)
		return 1;
	nb_pool_opts_t po;
	nb_pool_opts_from_config(&po, nb_cfg.database_url);
	po.size = nb_cfg.db_thread_pool_size;
	nb_app.pool = nb_pool_create(&po);
	char err[256];
	if (nb_auth_init(err, sizeof err) < 0) {
		fprintf(stderr, "notebookd: %s\n", err);
		return 1;
	}
	nb_server_opts_t so;
	nb_server_opts_from_config(&so);
	so.routes = nb_api_routes(&so.nroutes);
	nb_pool_opts_t lpo;
	nb_pool_opts_from_config(&lpo, nb_cfg.database_url);
	nb_api_middleware_install(&so, nb_app.pool, &lpo, nb_cfg.db_pipelines);
	if (nb_api_replica_start() < 0) {
		fprintf(stderr, "notebookd: could not start the read replica's checks\n");
		return 1;
	}
	static serve_stop_t stop;
	so.on_shutdown = on_serve_shutdown;
	so.on_shutdown_arg = &stop;
	nb_server_t *srv = nb_server_create(&so, err, sizeof err);
	if (!srv) {
		fprintf(stderr, "notebookd: %s\n", err);
		return 1;
	}
	nb_pool_t *wpool = NULL;
	nb_workers_t *workers = NULL;
	if (nb_cfg.workers > 0) {
		nb_pool_opts_t wo;
		nb_pool_opts_from_config(&wo, nb_cfg.database_url);
		wo.size = nb_cfg.workers + NB_WORKERS_EXTRA_CONNS;
		wo.application_name = "notebookd-worker";
		wpool = nb_pool_create(&wo);
		nb_api_metrics_set_jobs_pool(wpool);
		workers = nb_workers_start(wpool, nb_workers_listen_url(), nb_cfg.workers, "serve");
		atomic_store(&stop.workers, workers);
		if (atomic_load(&stop.deadline_ms)) /* a signal came while they started */
			nb_workers_begin_stop(workers);
	}
	if (nb_usercache_start(nb_workers_listen_url(), nb_cfg.user_cache_size, nb_cfg.user_cache_ttl_ms) < 0)
		nb_warn("user cache could not start: every request checks its user in the database");
	nb_info("listening on http://%s (port %d)", nb_cfg.listen, nb_server_port(srv));
	if (nb_server_admin_port(srv))
		nb_info("serving /metrics on http://%s (port %d)", nb_cfg.metrics_listen, nb_server_admin_port(srv));
	int run_rc = nb_server_run(srv, err, sizeof err);
	if (run_rc < 0)
		fprintf(stderr, "notebookd: %s\n", err);
	int64_t deadline = atomic_load(&stop.deadline_ms);
	nb_workers_stop_by(workers, deadline ? deadline : nb_mono_ms() + nb_cfg.shutdown_timeout_ms);
	nb_api_metrics_set_jobs_pool(NULL);
	nb_pool_destroy(wpool);
	nb_usercache_stop();
	nb_server_destroy(srv);
	nb_api_replica_stop();
	nb_auth_shutdown();
	nb_pool_destroy(nb_app.pool);
	nb_app.pool = NULL;
	return run_rc < 0 ? 1 : 0;
}

/* ---- the worker's /metrics listener ---------------------------------------- */

typedef struct worker_metrics {
	nb_server_t *srv;
	pthread_t thread;
} worker_metrics_t;

static void *worker_metrics_main(void *arg)
{
	worker_metrics_t *m = arg;
	char err[256];
	if (nb_server_run(m->srv, err, sizeof err) < 0)
		nb_error("worker metrics listener: %s", err);
	return NULL;
}

/* Serves /metrics and /healthz on NOTEBOOKD_METRICS_LISTEN beside the job runners (nb_jobs_cli_side_t). */
static void *worker_metrics_start(nb_pool_t *pool)
{
	static worker_metrics_t none;
	nb_api_metrics_set_jobs_pool(pool);
	if (!nb_cfg.metrics_listen || !*nb_cfg.metrics_listen)
		return &none;
	static const nb_route_t routes[] = {
		{"GET", "/metrics", nb_api_metrics_jobs, 0, NB_EXEC_THREAD},
		{"GET", "/healthz", nb_api_healthz, 0, NB_EXEC_INLINE},
	};
	nb_server_opts_t so;
	nb_server_opts_from_config(&so);
	so.listen = nb_cfg.metrics_listen;
	so.admin_listen = NULL;
	so.io_threads = 1;
	so.handler_threads = 1;
	so.routes = routes;
	so.nroutes = (int)(sizeof routes / sizeof routes[0]);
	char err[256];
	worker_metrics_t *m = calloc(1, sizeof *m);
	if (!m || !(m->srv = nb_server_create(&so, err, sizeof err))) {
		fprintf(stderr, "notebookd worker: %s\n", m ? err : "out of memory");
		free(m);
		return NULL;
	}
	if (pthread_create(&m->thread, NULL, worker_metrics_main, m) != 0) {
		fprintf(stderr, "notebookd worker: could not start the metrics listener\n");
		nb_server_destroy(m->srv);
		free(m);
		return NULL;
	}
	nb_info("worker: serving /metrics on http://%s (port %d)", nb_cfg.metrics_listen, nb_server_port(m->srv));
	return m;
}

static void worker_metrics_stop(void *h)
{
	worker_metrics_t *m = h;
	nb_api_metrics_set_jobs_pool(NULL);
	if (!m->srv)
		return;
	nb_server_stop(m->srv);
	pthread_join(m->thread, NULL);
	nb_server_destroy(m->srv);
	free(m);
}

static int cmd_worker(int argc, char **argv)
{
	static const nb_jobs_cli_side_t side = {worker_metrics_start, worker_metrics_stop};
	nb_jobs_cmd_worker_side(&side);
	return nb_jobs_cmd_worker(argc, argv);
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return argc < 2 ? 2 : 0;
	}
	const command_t *cmd = NULL;
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (!strcmp(argv[1], commands[i].name))
			cmd = &commands[i];
	if (!cmd) {
		fprintf(stderr, "notebookd: unknown command \"%s\" (see notebookd --help)\n", argv[1]);
		return 2;
	}
	int a = check_args(cmd, argc - 1, argv + 1);
	if (a < 0)
		return 2;
	if (a > 0) {
		fputs(cmd->usage, stdout);
		fputc('\n', stdout);
		nb_config_print_help(stdout, cmd->cmd);
		return 0;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "notebookd: could not initialise libsodium\n");
		return 1;
	}
	char err[256];
	if (nb_config_load(err, sizeof err) < 0) {
		fprintf(stderr, "notebookd: %s\n", err);
		return 2;
	}
	nb_log_set_level(nb_cfg.log_level);
	nb_ingest_register();
	nb_study_register(); /* quizzes, study guides, source guides */
	if (nb_cfg.debug_routes)
		nb_jobs_register_test_kinds(); /* 'noop' and 'fail': tests and bench/bench_queue.sh */
	return cmd->run(argc - 1, argv + 1);
}
