/*
 * metrics.h — what /metrics needs below the API: a Prometheus histogram made
 * of atomic counters, and the process's own figures read from /proc.
 *
 * A histogram is fixed buckets (0.5 ms to 30 s, the same for every family so
 * that dashboards can sum them) counted with relaxed atomic adds: observing
 * takes no lock and allocates nothing, so it can sit on every request. A
 * scrape copies the counters into a snapshot (possibly a few observations
 * apart from each other, which Prometheus tolerates) and prints it.
 */
#ifndef NB_CORE_METRICS_H
#define NB_CORE_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "core/buf.h"

/** Upper bounds of the finite buckets, in seconds (the +Inf bucket follows). */
#define NB_HISTO_BOUNDS 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30
#define NB_HISTO_NB 15 /* finite buckets */

/** A live histogram: per-bucket (not cumulative) counts and the sum, in microseconds. Zero-initialised. */
typedef struct nb_histo {
	atomic_ullong b[NB_HISTO_NB + 1];
	atomic_ullong sum_us;
} nb_histo_t;

/** A copy of one or more histograms, for printing. */
typedef struct nb_histo_snap {
	uint64_t b[NB_HISTO_NB + 1];
	uint64_t sum_us;
} nb_histo_snap_t;

/** Counts one observation of `us` microseconds (negative counts as 0). Lock-free, any thread. */
void nb_histo_observe(nb_histo_t *h, int64_t us);
/** Writes a metric family's `# HELP` and `# TYPE` lines (Prometheus text format). */
void nb_metrics_family(nb_buf_t *b, const char *name, const char *type, const char *help);
/** Adds h's current counts into s (so several histograms can be summed into one sample). */
void nb_histo_snap_add(nb_histo_snap_t *s, const nb_histo_t *h);
/** The number of observations in s. */
uint64_t nb_histo_snap_count(const nb_histo_snap_t *s);
/**
 * Prints the samples of one histogram: name_bucket{labels,le="…"} (cumulative,
 * ending with le="+Inf"), name_sum (seconds) and name_count. labels is a
 * Prometheus label list without braces (`route="/x",method="GET"`) or "".
 */
void nb_histo_write(nb_buf_t *b, const char *name, const char *labels, const nb_histo_snap_t *s);

/** The process's figures (Prometheus' standard process_* metrics); -1 where /proc did not tell. */
typedef struct nb_proc_stats {
	int64_t resident_bytes;
	int64_t virtual_bytes;
	int64_t open_fds;
	int64_t max_fds;
	double start_time_unix; /* seconds since the epoch */
	double cpu_seconds;     /* user + system */
} nb_proc_stats_t;

/** Reads /proc/self/statm, /proc/self/stat, /proc/self/fd and RLIMIT_NOFILE. Never fails. */
void nb_proc_stats(nb_proc_stats_t *out);

#endif
