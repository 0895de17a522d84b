/*
 * log.h — structured logging as JSON lines on stderr.
 *
 * Every line is one JSON object: {"ts", "level", "msg", "request_id"?, ...}.
 * The request id comes from a thread-local set by the HTTP layer (or a job
 * id set by a worker) so that every line a request causes carries it.
 */
#ifndef NB_CORE_LOG_H
#define NB_CORE_LOG_H

typedef enum { NB_LOG_DEBUG = 0, NB_LOG_INFO, NB_LOG_WARN, NB_LOG_ERROR } nb_log_level_t;

/** Sets the minimum level printed ("debug", "info", "warn", "error"); unknown keeps info. */
void nb_log_set_level(const char *name);
/** Sets (or clears with NULL) the current thread's request id; the string is copied. */
void nb_log_set_request_id(const char *id);
/** Logs a formatted message at a level. */
void nb_log(nb_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Writes one pre-built JSON object (without newline) as a log line, atomically. */
void nb_log_raw_json(const char *json, unsigned long len);

#define nb_debug(...) nb_log(NB_LOG_DEBUG, __VA_ARGS__)
#define nb_info(...) nb_log(NB_LOG_INFO, __VA_ARGS__)
#define nb_warn(...) nb_log(NB_LOG_WARN, __VA_ARGS__)
#define nb_error(...) nb_log(NB_LOG_ERROR, __VA_ARGS__)

#endif
