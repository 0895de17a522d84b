/*
 * config.c — the table of environment variables (see config.h).
 */
#include "core/config.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

nb_config_t nb_cfg;

typedef enum { T_STR, T_INT, T_LONG, T_BOOL } vtype_t;

typedef struct {
	const char *name;
	vtype_t type;
	size_t offset;
	const char *def; /* NULL: unset by default */
	long min, max;   /* for numbers */
	const char *help;
} var_t;

#define OFF(f) offsetof(nb_config_t, f)

static const var_t vars[] = {
	{"NOTEBOOKD_LISTEN", T_STR, OFF(listen), "127.0.0.1:8080", 0, 0, "host:port to serve HTTP on"},
	{"DATABASE_URL", T_STR, OFF(database_url), NULL, 0, 0,
	 "libpq connection string or URI (make run/test point it at a private cluster)"},
	{"NOTEBOOKD_IO_THREADS", T_INT, OFF(io_threads), "0", 0, 64,
	 "event-loop threads accepting, parsing and running handlers as coroutines (0: one per core)"},
	{"NOTEBOOKD_HANDLER_THREADS", T_INT, OFF(handler_threads), "8", 1, 1024,
	 "threads for handlers that must block (CPU-heavy work); most run as coroutines on the loops"},
	{"NOTEBOOKD_HASH_THREADS", T_INT, OFF(hash_threads), "2", 1, 64,
	 "threads reserved for password hashing (register, login, reset)"},
	{"NOTEBOOKD_STREAM_THREADS", T_INT, OFF(stream_threads), "64", 1, 4096,
	 "most threads serving long streamed responses at once"},
	{"NOTEBOOKD_MAX_CONNECTIONS", T_INT, OFF(max_connections), "10000", 16, 1000000,
	 "open HTTP connections; beyond it new ones are closed at once"},
	{"NOTEBOOKD_REQUEST_TIMEOUT_MS", T_INT, OFF(request_timeout_ms), "30000", 100, 3600000,
	 "deadline of a request from the end of its body to its response (503 after)"},
	{"NOTEBOOKD_IDLE_TIMEOUT_MS", T_INT, OFF(idle_timeout_ms), "60000", 100, 3600000,
	 "a keep-alive connection with no request for this long is closed"},
	{"NOTEBOOKD_READ_TIMEOUT_MS", T_INT, OFF(read_timeout_ms), "30000", 100, 3600000,
	 "a request whose headers and body do not arrive within this is dropped"},
	{"NOTEBOOKD_MAX_UPLOAD_BYTES", T_LONG, OFF(max_upload_bytes), "52428800", 1024, 4294967296L,
	 "largest upload body (POST /v1/notebooks/{id}/sources; 413 beyond)"},
	/* http hardening: per-route body limits, client timeouts, per-client cap, metrics listener */
	{"NOTEBOOKD_MAX_JSON_BYTES", T_LONG, OFF(max_json_bytes), "1048576", 1024, 1073741824L,
	 "largest body of every route but the upload (413 beyond, before the body is read)"},
	{"NOTEBOOKD_FIRST_REQUEST_TIMEOUT_MS", T_INT, OFF(first_request_timeout_ms), "5000", 100, 3600000,
	 "a new connection whose first request head does not arrive within this is closed"},
	{"NOTEBOOKD_WRITE_TIMEOUT_MS", T_INT, OFF(write_timeout_ms), "30000", 100, 3600000,
	 "a client that reads nothing of its answer (or stream) for this long is disconnected"},
	{"NOTEBOOKD_MAX_CONNECTIONS_PER_CLIENT", T_INT, OFF(max_connections_per_client), "256", 1, 1000000,
	 "open connections from one client address; beyond it new ones are closed at once (a NOTEBOOKD_TRUSTED_PROXIES peer is not capped)"},
	{"NOTEBOOKD_METRICS_LISTEN", T_STR, OFF(metrics_listen), NULL, 0, 0,
	 "host:port serving /metrics (only there, 404 on the API port); unset: /metrics on the API port;"
	 " `notebookd worker` serves its /metrics there (unset: none)"},
	{"NOTEBOOKD_SHUTDOWN_TIMEOUT_MS", T_INT, OFF(shutdown_timeout_ms), "30000", 0, 3600000,
	 "on SIGTERM, one deadline from the signal for in-flight requests, running jobs and their hand-back"},
	{"NOTEBOOKD_ACCESS_LOG", T_BOOL, OFF(access_log), "1", 0, 1, "1 writes one JSON access-log line per request"},
	{"NOTEBOOKD_EXPOSE_STATEMENT_COUNT", T_BOOL, OFF(expose_statement_count), "0", 0, 1,
	 "1 adds X-DB-Statements (SQL statements the request ran) to responses; for tests"},
	{"NOTEBOOKD_LOG_LEVEL", T_STR, OFF(log_level), "info", 0, 0, "debug, info, warn or error"},
	{"NOTEBOOKD_DB_POOL_SIZE", T_INT, OFF(db_pool_size), "8", 1, 1000,
	 "connections kept open for handlers on the event loops (split across them)"},
	{"NOTEBOOKD_DB_PIPELINES", T_INT, OFF(db_pipelines), "6", 0, 64,
	 "pipelined connections per event loop shared by all its requests' statements outside transactions "
	 "(0: each request takes a pool connection)"},
	{"NOTEBOOKD_DB_THREAD_POOL_SIZE", T_INT, OFF(db_thread_pool_size), "4", 1, 1000,
	 "connections kept open for thread-pool handlers and in-process job workers"},
	{"NOTEBOOKD_DB_POOL_OVERFLOW", T_INT, OFF(db_pool_overflow), "8", 0, 1000,
	 "extra connections each pool may open under load, closed again when idle"},
	{"NOTEBOOKD_DB_ACQUIRE_TIMEOUT_MS", T_INT, OFF(db_acquire_timeout_ms), "10000", 1, 600000,
	 "longest wait for a free connection (then 503 with Retry-After)"},
	{"NOTEBOOKD_DB_PREPING_IDLE_MS", T_INT, OFF(db_preping_idle_ms), "30000", 0, 86400000,
	 "a connection idle longer than this is pinged before use"},
	{"NOTEBOOKD_DB_MAX_AGE_MS", T_INT, OFF(db_max_age_ms), "300000", 1000, 86400000,
	 "connections older than this are closed and replaced (recycling)"},
	{"NOTEBOOKD_DB_OVERFLOW_IDLE_MS", T_INT, OFF(db_overflow_idle_ms), "10000", 0, 86400000,
	 "an overflow connection idle this long is closed"},
	{"NOTEBOOKD_DB_STATEMENT_TIMEOUT_MS", T_INT, OFF(db_statement_timeout_ms), "30000", 0, 86400000,
	 "statement_timeout set on every connection"},
	{"NOTEBOOKD_DB_CONNECT_TIMEOUT_S", T_INT, OFF(db_connect_timeout_s), "5", 1, 600,
	 "libpq connect_timeout"},
	{"NOTEBOOKD_LISTEN_DATABASE_URL", T_STR, OFF(listen_database_url), NULL, 0, 0,
	 "connection string of the job workers' LISTEN connection (default DATABASE_URL); behind a "
	 "transaction-pooling PgBouncer point it straight at PostgreSQL"},
	{"NOTEBOOKD_USER_CACHE_SIZE", T_INT, OFF(user_cache_size), "100000", 0, 100000000,
	 "live user ids cached per process so an authenticated request skips the user check (0: off; "
	 "erasures reach it by LISTEN/NOTIFY on NOTEBOOKD_LISTEN_DATABASE_URL)"},
	{"NOTEBOOKD_USER_CACHE_TTL_MS", T_INT, OFF(user_cache_ttl_ms), "60000", 1, 86400000,
	 "how long a cached live user id serves before the database is asked again"},
	{"NOTEBOOKD_DB_PIPELINE_LOCK_TIMEOUT_MS", T_INT, OFF(db_pipeline_lock_timeout_ms), "500", 0, 600000,
	 "lock_timeout of the pipelined connections: a statement waiting longer for a lock is run again on a "
	 "connection of its own, and kept off the pipelines for 5 s (0: no limit)"},
	{"NOTEBOOKD_JWT_SECRET", T_STR, OFF(jwt_secret), NULL, 0, 0,
	 "HMAC-SHA256 key for access tokens, at least 32 bytes (dev: made once under var/)"},
	{"NOTEBOOKD_JWT_SECRET_PREVIOUS", T_STR, OFF(jwt_secret_previous), NULL, 0, 0,
	 "a second key during a rotation: what it signed (access tokens, codes, cursors) is accepted, nothing is "
	 "signed with it (see docs/operations.md; never set a leaked secret here)"},
	{"NOTEBOOKD_JWT_ISSUER", T_STR, OFF(jwt_issuer), "notebookd", 0, 0, "the iss claim"},
	{"NOTEBOOKD_JWT_AUDIENCE", T_STR, OFF(jwt_audience), "notebookd-api", 0, 0, "the aud claim"},
	{"NOTEBOOKD_ACCESS_TTL_S", T_INT, OFF(access_ttl_s), "900", 10, 86400, "access token lifetime"},
	{"NOTEBOOKD_REFRESH_TTL_S", T_INT, OFF(refresh_ttl_s), "2592000", 60, 315360000,
	 "refresh token lifetime (each rotation starts it again)"},
	{"NOTEBOOKD_REFRESH_ABSOLUTE_TTL_S", T_INT, OFF(refresh_absolute_ttl_s), "7776000", 60, 315360000,
	 "a login's refresh family ends this long after the login, however often rotated"},
	{"NOTEBOOKD_AUTH_RATE_PER_MIN", T_INT, OFF(auth_rate_per_min), "10", 0, 1000000,
	 "login / register / OTP attempts per minute per account; 0 turns the limit off"},
	{"NOTEBOOKD_AUTH_IP_RATE_PER_MIN", T_INT, OFF(auth_ip_rate_per_min), "60", 0, 1000000,
	 "login / register / OTP attempts per minute per client address (many users behind one NAT); 0 turns it off"},
	{"NOTEBOOKD_MAIL_DIR", T_STR, OFF(mail_dir), "var/mail",
	 0, 0, "where mail is written as .eml files when NOTEBOOKD_SMTP_URL is unset"},
	{"NOTEBOOKD_SMTP_URL", T_STR, OFF(smtp_url), NULL, 0, 0,
	 "smtp:// or smtps:// URL (with user:password@ if needed) to send mail through"},
	{"NOTEBOOKD_MAIL_FROM", T_STR, OFF(mail_from), "notebookd@localhost", 0, 0, "sender address of mail"},
	{"NOTEBOOKD_ALLOW_PRIVATE_URLS", T_BOOL, OFF(allow_private_urls), "0", 0, 1,
	 "1 lets URL sources reach loopback and private addresses (tests only)"},
	{"NOTEBOOKD_FETCH_TIMEOUT_S", T_INT, OFF(fetch_timeout_s), "20", 1, 600, "URL source fetch timeout"},
	{"NOTEBOOKD_WORKERS", T_INT, OFF(workers), "2", 0, 256,
	 "job workers inside `serve` (0: none; run `notebookd worker` instead)"},
	{"NOTEBOOKD_JOB_LEASE_S", T_INT, OFF(job_lease_s), "60", 2, 86400,
	 "a running job's lease; heartbeats extend it, a reaper re-queues it once expired"},
	{"NOTEBOOKD_JOB_MAX_ATTEMPTS", T_INT, OFF(job_max_attempts), "5", 1, 100, "attempts before a job is dead"},
	{"NOTEBOOKD_JOB_POLL_MS", T_INT, OFF(job_poll_ms), "5000", 10, 600000,
	 "idle workers poll this often as a safety net behind LISTEN/NOTIFY"},
	{"NOTEBOOKD_CHUNK_CHARS", T_INT, OFF(chunk_target_chars), "1200", 100, 100000,
	 "target chunk size in characters"},
	{"NOTEBOOKD_CHUNK_OVERLAP_CHARS", T_INT, OFF(chunk_overlap_chars), "150", 0, 50000,
	 "characters shared by consecutive chunks"},
	{"NOTEBOOKD_TRASH_RETENTION_DAYS", T_INT, OFF(trash_retention_days), "90", 0, 36500,
	 "the retention (scheduled, and `notebookd purge`) hard-deletes what has been in the trash longer"},
	{"NOTEBOOKD_RETENTION_INTERVAL_S", T_INT, OFF(retention_interval_s), "3600", 0, 604800,
	 "the retention runs by itself once per this many seconds across the deployment (0: off, run purge from cron)"},
	{"NOTEBOOKD_JOB_RETENTION_DAYS", T_INT, OFF(job_retention_days), "30", 1, 36500,
	 "the retention deletes succeeded and dead jobs finished longer ago"},
	{"NOTEBOOKD_RETENTION_BATCH", T_INT, OFF(retention_batch), "500", 1, 100000,
	 "rows per retention statement (a tenth of it for notebooks), so that no lock is held long"},
	{"NOTEBOOKD_GENERATOR", T_STR, OFF(generator), "extractive", 0, 0,
	 "extractive (offline, the default) or openai (an OpenAI-compatible chat-completions server: NOTEBOOKD_LLM_*)"},
	{"NOTEBOOKD_LLM_URL", T_STR, OFF(llm_url), NULL, 0, 0,
	 "base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1 (POST {url}/chat/completions)"},
	{"NOTEBOOKD_LLM_MODEL", T_STR, OFF(llm_model), NULL, 0, 0, "the model name sent to the server"},
	{"NOTEBOOKD_LLM_API_KEY", T_STR, OFF(llm_api_key), NULL, 0, 0,
	 "sent as Authorization: Bearer (unset: no header)"},
	{"NOTEBOOKD_LLM_CONTEXT_TOKENS", T_INT, OFF(llm_context_tokens), "8192", 1024, 10000000,
	 "the model's context window; chunks and history are trimmed so the prompt fits it minus the answer's share"},
	{"NOTEBOOKD_LLM_MAX_TOKENS", T_INT, OFF(llm_max_tokens), "1024", 16, 1000000,
	 "tokens reserved for (and asked of) an answer"},
	{"NOTEBOOKD_LLM_CONNECT_TIMEOUT_MS", T_INT, OFF(llm_connect_timeout_ms), "5000", 100, 600000,
	 "connecting to the model server"},
	{"NOTEBOOKD_LLM_IDLE_TIMEOUT_MS", T_INT, OFF(llm_idle_timeout_ms), "60000", 100, 3600000,
	 "a model server that sends nothing for this long (first token included) fails the generation"},
	{"NOTEBOOKD_LLM_RETRIES", T_INT, OFF(llm_retries), "2", 0, 10,
	 "retries on 429, 5xx, connect errors and timeouts before the first token (backoff 500 ms doubling, with jitter)"},
	{"NOTEBOOKD_CHAT_KEEPALIVE_MS", T_INT, OFF(chat_keepalive_ms), "15000", 100, 600000,
	 "a streamed answer sends a `: keep-alive` comment after this long without an event"},
	/* the database breaker and API-wide limits */
	{"NOTEBOOKD_DB_BREAKER_FAILURES", T_INT, OFF(db_breaker_failures), "3", 0, 1000,
	 "consecutive failed connects that open the database circuit breaker (503 at once, no connect tried); 0: off"},
	{"NOTEBOOKD_DB_BREAKER_OPEN_MS", T_INT, OFF(db_breaker_open_ms), "1000", 50, 600000,
	 "how long the breaker stays open before one half-open connect probes the database"},
	/* read replicas (src/db/replica.h) */
	{"DATABASE_READ_URL", T_STR, OFF(database_read_url), NULL, 0, 0,
	 "libpq connection string of a streaming replica: read-only routes use it (a user's reads right after "
	 "their own write, and reads while it lags or is down, use the primary); unset: none"},
	{"NOTEBOOKD_DB_READ_POOL_SIZE", T_INT, OFF(db_read_pool_size), "8", 1, 1000,
	 "connections to the replica kept open for handlers on the event loops (split across them)"},
	{"NOTEBOOKD_REPLICA_MAX_LAG_MS", T_INT, OFF(replica_max_lag_ms), "5000", 0, 86400000,
	 "a replica further behind the primary than this is skipped (reads go to the primary) until it catches up"},
	{"NOTEBOOKD_RATE_READ_PER_MIN", T_INT, OFF(rate_read_per_min), "1200", 0, 100000000,
	 "GET requests per minute per user (burst as large); 0 turns the limit off"},
	{"NOTEBOOKD_RATE_WRITE_PER_MIN", T_INT, OFF(rate_write_per_min), "300", 0, 100000000,
	 "POST/PATCH/DELETE requests per minute per user (burst as large); 0: off"},
	{"NOTEBOOKD_RATE_UPLOAD_PER_MIN", T_INT, OFF(rate_upload_per_min), "30", 0, 100000000,
	 "source submissions (POST /v1/notebooks/{id}/sources) per minute per user; 0: off"},
	{"NOTEBOOKD_RATE_GENERATE_PER_MIN", T_INT, OFF(rate_generate_per_min), "20", 0, 100000000,
	 "generations (chat questions) per minute per user; 0: off"},
	{"NOTEBOOKD_RATE_IP_MULTIPLIER", T_INT, OFF(rate_ip_multiplier), "25", 1, 100000,
	 "a client address may make this many times a user's rate (users behind one NAT)"},
	{"NOTEBOOKD_RATE_SYNC_MS", T_INT, OFF(rate_sync_ms), "200", 0, 60000,
	 "how often a server adds its spending to the deployment's buckets in PostgreSQL (0: limits per process)"},
	{"NOTEBOOKD_TRUSTED_PROXIES", T_STR, OFF(trusted_proxies), NULL, 0, 0,
	 "comma-separated addresses or CIDRs whose X-Forwarded-For names the client; unset: the peer is the client"},
	{"NOTEBOOKD_VAR_DIR", T_STR, OFF(var_dir), "var", 0, 0, "where dev-mode state lives (secret, mail)"},
	{"NOTEBOOKD_DEBUG_ROUTES", T_BOOL, OFF(debug_routes), "0", 0, 1,
	 "1 adds GET /debug/sleep?ms=N (a handler that waits on PostgreSQL) and the job kinds noop and fail; "
	 "tests and benchmarks only"},
	{"NOTEBOOKD_COOKIE_SECURE", T_BOOL, OFF(cookie_secure), "0", 0, 1,
	 "1 marks the web app's refresh cookie Secure: set it when clients reach notebookd over HTTPS"},
};

#define SERVE NB_CMD_SERVE
#define WORKER NB_CMD_WORKER
#define PURGE NB_CMD_PURGE
#define JOBS (NB_CMD_SERVE | NB_CMD_WORKER)                  /* ingestion and the queue */
#define POOLED (NB_CMD_SERVE | NB_CMD_WORKER | NB_CMD_PURGE) /* connection pools */

/*
 * Which commands read each setting, for `notebookd <command> --help`. Every
 * setting of the table above has a line here (tests/unit/test_config.c
 * checks it); 0 means every command.
 */
static const struct reader {
	const char *name;
	unsigned cmds;
} readers[] = {
	{"NOTEBOOKD_LISTEN", SERVE},
	{"DATABASE_URL", 0},
	{"NOTEBOOKD_IO_THREADS", SERVE},
	{"NOTEBOOKD_HANDLER_THREADS", SERVE},
	{"NOTEBOOKD_HASH_THREADS", SERVE},
	{"NOTEBOOKD_STREAM_THREADS", SERVE},
	{"NOTEBOOKD_MAX_CONNECTIONS", SERVE},
	{"NOTEBOOKD_REQUEST_TIMEOUT_MS", SERVE},
	{"NOTEBOOKD_IDLE_TIMEOUT_MS", SERVE},
	{"NOTEBOOKD_READ_TIMEOUT_MS", SERVE},
	{"NOTEBOOKD_MAX_UPLOAD_BYTES", SERVE},
	{"NOTEBOOKD_SHUTDOWN_TIMEOUT_MS", SERVE | WORKER},
	{"NOTEBOOKD_ACCESS_LOG", SERVE},
	{"NOTEBOOKD_EXPOSE_STATEMENT_COUNT", SERVE},
	{"NOTEBOOKD_LOG_LEVEL", 0},
	{"NOTEBOOKD_DB_POOL_SIZE", SERVE},
	{"NOTEBOOKD_DB_PIPELINES", SERVE},
	{"NOTEBOOKD_DB_THREAD_POOL_SIZE", SERVE},
	{"NOTEBOOKD_DB_POOL_OVERFLOW", POOLED},
	{"NOTEBOOKD_DB_ACQUIRE_TIMEOUT_MS", POOLED},
	{"NOTEBOOKD_DB_PREPING_IDLE_MS", POOLED},
	{"NOTEBOOKD_DB_MAX_AGE_MS", POOLED},
	{"NOTEBOOKD_DB_OVERFLOW_IDLE_MS", POOLED},
	{"NOTEBOOKD_DB_STATEMENT_TIMEOUT_MS", POOLED},
	{"NOTEBOOKD_DB_CONNECT_TIMEOUT_S", 0},
	{"NOTEBOOKD_USER_CACHE_SIZE", SERVE},
	{"NOTEBOOKD_USER_CACHE_TTL_MS", SERVE},
	{"NOTEBOOKD_JWT_SECRET", SERVE},
	{"NOTEBOOKD_JWT_SECRET_PREVIOUS", SERVE},
	{"NOTEBOOKD_JWT_ISSUER", SERVE},
	{"NOTEBOOKD_JWT_AUDIENCE", SERVE},
	{"NOTEBOOKD_ACCESS_TTL_S", SERVE},
	{"NOTEBOOKD_REFRESH_TTL_S", SERVE},
	{"NOTEBOOKD_REFRESH_ABSOLUTE_TTL_S", SERVE},
	{"NOTEBOOKD_AUTH_RATE_PER_MIN", SERVE},
	{"NOTEBOOKD_MAIL_DIR", SERVE},
	{"NOTEBOOKD_SMTP_URL", SERVE},
	{"NOTEBOOKD_MAIL_FROM", SERVE},
	{"NOTEBOOKD_ALLOW_PRIVATE_URLS", JOBS},
	{"NOTEBOOKD_FETCH_TIMEOUT_S", JOBS},
	{"NOTEBOOKD_WORKERS", JOBS},
	{"NOTEBOOKD_JOB_LEASE_S", JOBS},
	{"NOTEBOOKD_JOB_MAX_ATTEMPTS", JOBS},
	{"NOTEBOOKD_JOB_POLL_MS", JOBS},
	{"NOTEBOOKD_CHUNK_CHARS", JOBS},
	{"NOTEBOOKD_CHUNK_OVERLAP_CHARS", JOBS},
	{"NOTEBOOKD_TRASH_RETENTION_DAYS", PURGE | JOBS},
	{"NOTEBOOKD_RETENTION_INTERVAL_S", JOBS},
	{"NOTEBOOKD_JOB_RETENTION_DAYS", PURGE | JOBS},
	{"NOTEBOOKD_RETENTION_BATCH", PURGE | JOBS},
	{"NOTEBOOKD_VAR_DIR", SERVE},
	{"NOTEBOOKD_DEBUG_ROUTES", SERVE},
	{"NOTEBOOKD_COOKIE_SECURE", SERVE},
	{"NOTEBOOKD_MAX_JSON_BYTES", SERVE},
	{"NOTEBOOKD_FIRST_REQUEST_TIMEOUT_MS", SERVE},
	{"NOTEBOOKD_WRITE_TIMEOUT_MS", SERVE},
	{"NOTEBOOKD_MAX_CONNECTIONS_PER_CLIENT", SERVE},
	{"NOTEBOOKD_METRICS_LISTEN", JOBS},
	{"NOTEBOOKD_AUTH_IP_RATE_PER_MIN", SERVE},
	{"NOTEBOOKD_DB_PIPELINE_LOCK_TIMEOUT_MS", SERVE},
	{"NOTEBOOKD_LISTEN_DATABASE_URL", JOBS},
	{"NOTEBOOKD_GENERATOR", JOBS},
	{"NOTEBOOKD_DB_BREAKER_FAILURES", POOLED},
	{"NOTEBOOKD_DB_BREAKER_OPEN_MS", POOLED},
	{"DATABASE_READ_URL", SERVE},
	{"NOTEBOOKD_DB_READ_POOL_SIZE", SERVE},
	{"NOTEBOOKD_REPLICA_MAX_LAG_MS", SERVE},
	{"NOTEBOOKD_RATE_READ_PER_MIN", SERVE},
	{"NOTEBOOKD_RATE_WRITE_PER_MIN", SERVE},
	{"NOTEBOOKD_RATE_UPLOAD_PER_MIN", SERVE},
	{"NOTEBOOKD_RATE_GENERATE_PER_MIN", SERVE},
	{"NOTEBOOKD_RATE_IP_MULTIPLIER", SERVE},
	{"NOTEBOOKD_RATE_SYNC_MS", SERVE},
	{"NOTEBOOKD_TRUSTED_PROXIES", SERVE},
	{"NOTEBOOKD_LLM_URL", JOBS},
	{"NOTEBOOKD_LLM_MODEL", JOBS},
	{"NOTEBOOKD_LLM_API_KEY", JOBS},
	{"NOTEBOOKD_LLM_CONTEXT_TOKENS", JOBS},
	{"NOTEBOOKD_LLM_MAX_TOKENS", JOBS},
	{"NOTEBOOKD_LLM_CONNECT_TIMEOUT_MS", JOBS},
	{"NOTEBOOKD_LLM_IDLE_TIMEOUT_MS", JOBS},
	{"NOTEBOOKD_LLM_RETRIES", JOBS},
	{"NOTEBOOKD_CHAT_KEEPALIVE_MS", SERVE},
};

#define NVARS (sizeof vars / sizeof vars[0])

static int parse_bool(const char *s, bool *out)
{
	if (!strcmp(s, "1") || !strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on")) {
		*out = true;
		return 0;
	}
	if (!strcmp(s, "0") || !strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off") || !*s) {
		*out = false;
		return 0;
	}
	return -1;
}

/* The value as quoted in an error: at most 60 bytes, control characters as '?', so the message stays one line. */
static void quote_value(const char *val, char *out, size_t outlen)
{
	size_t n = 0;
	for (; val[n] && n < 60 && n + 4 < outlen; n++)
		out[n] = (unsigned char)val[n] < 0x20 || val[n] == 0x7f ? '?' : val[n];
	if (val[n] && n + 4 < outlen)
		out[n++] = '.', out[n++] = '.', out[n++] = '.';
	out[n] = '\0';
}

int nb_config_load(char *err, size_t errlen)
{
	char shown[72];
	char *base = (char *)&nb_cfg;
	for (size_t i = 0; i < NVARS; i++) {
		const var_t *v = &vars[i];
		const char *val = getenv(v->name);
		if (!val || (!*val && v->type != T_STR))
			val = v->def;
		if (v->type == T_STR) {
			char **dst = (char **)(base + v->offset);
			free(*dst);
			*dst = (val && *val) ? nb_xstrdup(val) : NULL;
			if (!strcmp(v->name, "NOTEBOOKD_GENERATOR") && *dst && strcmp(*dst, "extractive") &&
			    strcmp(*dst, "openai")) {
				snprintf(err, errlen, "%s: must be extractive or openai, got \"%s\"", v->name, *dst);
				return -1;
			}
			continue;
		}
		if (v->type == T_BOOL) {
			if (parse_bool(val, (bool *)(base + v->offset)) < 0) {
				quote_value(val, shown, sizeof shown);
				snprintf(err, errlen, "%s: must be 0 or 1 (or true/false, yes/no, on/off), got \"%s\"",
					 v->name, shown);
				return -1;
			}
			continue;
		}
		char *end = NULL;
		errno = 0;
		long n = strtol(val, &end, 10);
		/* strtol skips leading blanks and takes a '+': a setting is the digits alone */
		if (errno || end == val || *end || !(val[0] == '-' || (val[0] >= '0' && val[0] <= '9')) ||
		    n < v->min || n > v->max) {
			quote_value(val, shown, sizeof shown);
			snprintf(err, errlen, "%s: must be an integer from %ld to %ld, got \"%s\"", v->name,
				 v->min, v->max, shown);
			return -1;
		}
		if (v->type == T_INT)
			*(int *)(base + v->offset) = (int)n;
		else
			*(long *)(base + v->offset) = n;
	}
	return 0;
}

int nb_config_readers(const char *name, unsigned *commands)
{
	for (size_t i = 0; i < sizeof readers / sizeof readers[0]; i++)
		if (!strcmp(readers[i].name, name)) {
			*commands = readers[i].cmds ? readers[i].cmds : NB_CMD_ALL;
			return 0;
		}
	*commands = NB_CMD_ALL;
	return -1;
}

void nb_config_print_help(FILE *out, unsigned commands)
{
	fprintf(out, "Environment variables (default in brackets):\n");
	for (size_t i = 0; i < NVARS; i++) {
		unsigned readers_of;
		nb_config_readers(vars[i].name, &readers_of);
		if (readers_of & commands)
			fprintf(out, "  %-34s %s [%s]\n", vars[i].name, vars[i].help,
				vars[i].def ? vars[i].def : "unset");
	}
}
