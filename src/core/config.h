/*
 * config.h — configuration from environment variables.
 *
 * Every setting is one environment variable with a documented default; the
 * table in config.c is the single list (it also prints `--help` and the
 * README table). nb_config_load fills the process-wide `nb_cfg` once at start;
 * after that it is read-only and safe to read from any thread.
 */
#ifndef NB_CORE_CONFIG_H
#define NB_CORE_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

typedef struct nb_config {
	/* http */
	char *listen;
	int io_threads;
	int handler_threads;
	int hash_threads;
	int stream_threads;
	int max_connections;
	int request_timeout_ms;
	int idle_timeout_ms;
	int read_timeout_ms;
	long max_upload_bytes;
	long max_json_bytes;
	int first_request_timeout_ms;
	int write_timeout_ms;
	int max_connections_per_client;
	char *metrics_listen;
	int shutdown_timeout_ms;
	bool access_log;
	bool expose_statement_count;
	char *log_level;
	/* database */
	char *database_url;
	int db_pool_size;
	int db_thread_pool_size;
	int db_pipelines;
	int db_pool_overflow;
	int db_acquire_timeout_ms;
	int db_preping_idle_ms;
	int db_max_age_ms;
	int db_overflow_idle_ms;
	int db_statement_timeout_ms;
	int db_connect_timeout_s;
	char *listen_database_url;	  /* the job listener's LISTEN connection (NULL: database_url) */
	int db_pipeline_lock_timeout_ms; /* lock_timeout of the pipelined connections */
	int db_breaker_failures; /* consecutive connect failures that open the breaker (0: off) */
	int db_breaker_open_ms;  /* how long it stays open before a half-open probe */
	char *database_read_url; /* a streaming replica for read-only routes (NULL: none; db/replica.h) */
	int db_read_pool_size;   /* its connections for the event loops */
	int replica_max_lag_ms;  /* a replica further behind is skipped */
	/* API-wide limits (src/api/ratelimit.c) */
	int rate_read_per_min;
	int rate_write_per_min;
	int rate_upload_per_min;
	int rate_generate_per_min;
	int rate_ip_multiplier;
	int rate_sync_ms;
	char *trusted_proxies;
	int user_cache_size;		  /* live user ids cached per process (0: off) */
	int user_cache_ttl_ms;		  /* how long one serves */
	/* auth */
	char *jwt_secret;
	char *jwt_secret_previous; /* also accepted when verifying, during a rotation */
	char *jwt_issuer;
	char *jwt_audience;
	int access_ttl_s;
	int refresh_ttl_s;
	int refresh_absolute_ttl_s;
	int auth_rate_per_min;
	int auth_ip_rate_per_min;
	char *mail_dir;
	char *smtp_url;
	char *mail_from;
	/* sources and jobs */
	bool allow_private_urls;
	int fetch_timeout_s;
	int workers;
	int job_lease_s;
	int job_max_attempts;
	int job_poll_ms;
	int chunk_target_chars;
	int chunk_overlap_chars;
	int trash_retention_days;
	int retention_interval_s; /* 0: the scheduled retention is off */
	int job_retention_days;
	int retention_batch;
	/* chat */
	char *generator;
	char *llm_url, *llm_model, *llm_api_key;
	int llm_context_tokens, llm_max_tokens, llm_connect_timeout_ms, llm_idle_timeout_ms, llm_retries;
	int chat_keepalive_ms;
	/* dev */
	char *var_dir;
	bool debug_routes;
	bool cookie_secure; /* the refresh cookie carries Secure (served over HTTPS) */
} nb_config_t;

/** The process-wide configuration, valid after nb_config_load. */
extern nb_config_t nb_cfg;

/**
 * Reads every variable (or its default) into nb_cfg. On a malformed value
 * writes a one-line message into err (size errlen) and returns -1.
 */
int nb_config_load(char *err, size_t errlen);
/* The commands a setting is read by (a mask; see nb_config_print_help). */
enum {
	NB_CMD_SERVE = 1u << 0,
	NB_CMD_WORKER = 1u << 1,
	NB_CMD_MIGRATE = 1u << 2,
	NB_CMD_VERIFY = 1u << 3,
	NB_CMD_PURGE = 1u << 4,
	NB_CMD_ALL = 0x1fu,
};

/**
 * The commands that read setting `name` (a mask of NB_CMD_*) in *commands.
 * Returns -1 (and NB_CMD_ALL) when the readers table of config.c lacks it.
 */
int nb_config_readers(const char *name, unsigned *commands);
/**
 * Prints the variables read by any of `commands` (a mask of NB_CMD_*; a
 * setting marked for every command is always printed), with their defaults
 * and meanings (for --help).
 */
void nb_config_print_help(FILE *out, unsigned commands);

#endif
