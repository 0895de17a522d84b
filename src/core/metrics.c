/*
 * metrics.c — atomic histograms and /proc figures (see metrics.h).
 *
 * Observing finds the bucket with a short linear scan (15 bounds, most
 * observations land in the first few) and does two relaxed atomic adds.
 */
#include "core/metrics.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static const double bounds[NB_HISTO_NB] = {NB_HISTO_BOUNDS};
/* the same bounds in microseconds, for the scan */
static const int64_t bounds_us[NB_HISTO_NB] = {500,    1000,    2500,    5000,    10000,
					       25000,  50000,   100000,  250000,  500000,
					       1000000, 2500000, 5000000, 10000000, 30000000};

void nb_histo_observe(nb_histo_t *h, int64_t us)
{
	if (us < 0)
		us = 0;
	int i = 0;
	while (i < NB_HISTO_NB && us > bounds_us[i])
		i++;
	atomic_fetch_add_explicit(&h->b[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_us, (unsigned long long)us, memory_order_relaxed);
}

void nb_histo_snap_add(nb_histo_snap_t *s, const nb_histo_t *h)
{
	for (int i = 0; i <= NB_HISTO_NB; i++)
		s->b[i] += atomic_load_explicit(&h->b[i], memory_order_relaxed);
	s->sum_us += atomic_load_explicit(&h->sum_us, memory_order_relaxed);
}

uint64_t nb_histo_snap_count(const nb_histo_snap_t *s)
{
	uint64_t n = 0;
	for (int i = 0; i <= NB_HISTO_NB; i++)
		n += s->b[i];
	return n;
}

void nb_histo_write(nb_buf_t *b, const char *name, const char *labels, const nb_histo_snap_t *s)
{
	const char *sep = labels && *labels ? "," : "";
	if (!labels)
		labels = "";
	uint64_t cum = 0;
	for (int i = 0; i < NB_HISTO_NB; i++) {
		cum += s->b[i];
		nb_buf_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, bounds[i],
			      (unsigned long long)cum);
	}
	cum += s->b[NB_HISTO_NB];
	nb_buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, (unsigned long long)cum);
	const char *open = *labels ? "{" : "", *close = *labels ? "}" : "";
	nb_buf_printf(b, "%s_sum%s%s%s %.6f\n", name, open, labels, close, (double)s->sum_us / 1e6);
	nb_buf_printf(b, "%s_count%s%s%s %llu\n", name, open, labels, close, (unsigned long long)cum);
}

/* Counts the entries of /proc/self/fd (less the directory's own descriptor). */
static int64_t count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	int64_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n > 0 ? n - 1 : 0;
}

/* The boot time from /proc/stat's btime line, or -1. */
static long long boot_time(void)
{
	FILE *f = fopen("/proc/stat", "r");
	if (!f)
		return -1;
	char line[256];
	long long bt = -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "btime %lld", &bt) == 1)
			break;
	fclose(f);
	return bt;
}

void nb_proc_stats(nb_proc_stats_t *out)
{
	out->resident_bytes = out->virtual_bytes = out->open_fds = out->max_fds = -1;
	out->start_time_unix = -1;
	out->cpu_seconds = -1;
	long page = sysconf(_SC_PAGESIZE);
	long tick = sysconf(_SC_CLK_TCK);
	FILE *f = fopen("/proc/self/statm", "r");
	if (f) {
		long long size = 0, rss = 0;
		if (fscanf(f, "%lld %lld", &size, &rss) == 2) {
			out->virtual_bytes = size * page;
			out->resident_bytes = rss * page;
		}
		fclose(f);
	}
	out->open_fds = count_fds();
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		out->max_fds = rl.rlim_cur == RLIM_INFINITY ? -1 : (int64_t)rl.rlim_cur;
	/* /proc/self/stat: fields after the parenthesised name; utime 14, stime 15, starttime 22 */
	f = fopen("/proc/self/stat", "r");
	if (f) {
		char buf[1024];
		size_t n = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		buf[n] = '\0';
		char *p = strrchr(buf, ')');
		unsigned long long ut = 0, st = 0, start = 0;
		if (p && tick > 0 &&
		    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %llu",
			   &ut, &st, &start) == 3) {
			out->cpu_seconds = (double)(ut + st) / (double)tick;
			long long bt = boot_time();
			if (bt > 0)
				out->start_time_unix = (double)bt + (double)start / (double)tick;
		}
	}
}

void nb_metrics_family(nb_buf_t *b, const char *name, const char *type, const char *help)
{
	nb_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}
