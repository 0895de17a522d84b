/*
 * test_metrics.c — unit tests of the /metrics building blocks: the atomic
 * histogram (bucket edges are inclusive upper bounds, the printed buckets are
 * cumulative and end with +Inf == _count), the per-kind job counters, the
 * route status labels and the /proc figures.
 */
#include <string.h>

#include "core/buf.h"
#include "core/metrics.h"
#include "http/server.h"
#include "jobs/stats.h"
#include "t.h"

static void test_histogram_buckets(void)
{
	static nb_histo_t h; /* zero-initialised, as in a calloc'ed struct */
	nb_histo_observe(&h, 500);     /* exactly 0.5 ms: the first bucket (le is inclusive) */
	nb_histo_observe(&h, 501);     /* just above: the second */
	nb_histo_observe(&h, -3);      /* a clock step back counts as 0 */
	nb_histo_observe(&h, 40000000); /* 40 s: only +Inf */
	nb_histo_snap_t s;
	memset(&s, 0, sizeof s);
	nb_histo_snap_add(&s, &h);
	CHECK_INT(s.b[0], 2);
	CHECK_INT(s.b[1], 1);
	CHECK_INT(s.b[NB_HISTO_NB], 1);
	CHECK_INT(nb_histo_snap_count(&s), 4);
	CHECK_INT(s.sum_us, 40001001);
	nb_buf_t b = NB_BUF_INIT;
	nb_histo_write(&b, "x_seconds", "k=\"v\"", &s);
	nb_buf_putc(&b, '\0');
	CHECK(strstr(b.data, "x_seconds_bucket{k=\"v\",le=\"0.0005\"} 2\n") != NULL);
	CHECK(strstr(b.data, "x_seconds_bucket{k=\"v\",le=\"0.001\"} 3\n") != NULL);
	CHECK(strstr(b.data, "x_seconds_bucket{k=\"v\",le=\"30\"} 3\n") != NULL);
	CHECK(strstr(b.data, "x_seconds_bucket{k=\"v\",le=\"+Inf\"} 4\n") != NULL);
	CHECK(strstr(b.data, "x_seconds_sum{k=\"v\"} 40.001001\n") != NULL);
	CHECK(strstr(b.data, "x_seconds_count{k=\"v\"} 4\n") != NULL);
	nb_buf_dispose(&b);
	/* without labels: no empty braces on _sum and _count */
	nb_histo_write(&b, "y", "", &s);
	nb_buf_putc(&b, '\0');
	CHECK(strstr(b.data, "y_bucket{le=\"+Inf\"} 4\n") != NULL);
	CHECK(strstr(b.data, "y_count 4\n") != NULL);
	nb_buf_dispose(&b);
}

static void test_job_stats_by_kind(void)
{
	int before = nb_jobs_stats_kinds();
	nb_jobs_stats_register("unit_a");
	nb_jobs_stats_register("unit_a"); /* idempotent */
	nb_jobs_stats_register("unit_b");
	CHECK_INT(nb_jobs_stats_kinds(), before + 2);
	nb_jobs_stats_record("unit_a", NB_JOB_OUT_SUCCEEDED, 1000);
	nb_jobs_stats_record("unit_a", NB_JOB_OUT_DEAD, 2000);
	nb_jobs_stats_record("unit_b", NB_JOB_OUT_RETRY, 3000);
	nb_jobs_stats_record("never_registered", NB_JOB_OUT_SUCCEEDED, 1); /* ignored: bounded labels */
	CHECK_INT(nb_jobs_stats_kinds(), before + 2);
	nb_job_kind_stats_t k;
	CHECK(nb_jobs_stats_get(before, &k));
	CHECK_STR(k.kind, "unit_a");
	CHECK_INT(k.by_outcome[NB_JOB_OUT_SUCCEEDED], 1);
	CHECK_INT(k.by_outcome[NB_JOB_OUT_DEAD], 1);
	CHECK_INT(nb_histo_snap_count(&k.duration), 2);
	CHECK(!nb_jobs_stats_get(before + 2, &k));
	CHECK_STR(nb_jobs_outcome_label(NB_JOB_OUT_DEFERRED), "deferred");
}

static void test_status_labels(void)
{
	CHECK_STR(nb_server_status_label(0), "200");
	CHECK_STR(nb_server_status_label(NB_HTTP_STATUS_SLOTS - 1), "5xx");
	CHECK_STR(nb_server_status_label(NB_HTTP_STATUS_SLOTS), "");
	for (int i = 0; i < NB_HTTP_STATUS_SLOTS; i++) /* every label is a code or a class */
		CHECK(strlen(nb_server_status_label(i)) == 3);
}

static void test_proc_stats(void)
{
	nb_proc_stats_t p;
	nb_proc_stats(&p);
	CHECK(p.resident_bytes > 0);
	CHECK(p.virtual_bytes >= p.resident_bytes);
	CHECK(p.open_fds >= 3); /* stdin, stdout, stderr */
	CHECK(p.max_fds < 0 || p.max_fds >= p.open_fds);
	CHECK(p.start_time_unix > 1.6e9);
	CHECK(p.cpu_seconds >= 0);
}

int main(void)
{
	T_RUN(test_histogram_buckets);
	T_RUN(test_job_stats_by_kind);
	T_RUN(test_status_labels);
	T_RUN(test_proc_stats);
	return t_done();
}
