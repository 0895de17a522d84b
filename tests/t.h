/*
 * t.h — the tiny test harness shared by the C unit and integration tests.
 *
 * A test file defines `static void test_x(void)` functions and a main that
 * calls T_RUN(test_x) for each, then `return t_done();`. Every test prints one
 * TAP-like line ("ok - name" or "not ok - name"); t_done prints
 * "# N passed, N failed, N skipped" which scripts/test.sh adds up. A test
 * fails when any CHECK in it fails; the first failing check of a test is
 * printed.
 *
 * A test that cannot run here (a missing environment variable, say) calls
 * T_SKIP("reason"): it returns from the test, which is counted as skipped and
 * printed "ok - name # SKIP reason" (TAP's skip directive). A check that
 * failed before the skip still fails the test. t_skip(name, reason) reports a
 * test (or a whole file) skipped without running it. CI fails on any skip
 * (NB_NO_SKIP=1 in scripts/test.sh), so a skip is never a silent pass.
 */
#ifndef NB_TESTS_T_H
#define NB_TESTS_T_H

#include <stdio.h>
#include <string.h>

static int t_passed, t_failed, t_skipped, t_cur_failed;
static const char *t_cur_name;
static const char *t_cur_skip; /* the reason, once T_SKIP ran */

#define CHECK(cond)                                                                   \
	do {                                                                          \
		if (!(cond)) {                                                        \
			if (!t_cur_failed)                                            \
				fprintf(stdout, "#   %s:%d: check failed: %s\n", __FILE__, \
					__LINE__, #cond);                             \
			t_cur_failed = 1;                                             \
		}                                                                     \
	} while (0)

#define CHECK_MSG(cond, ...)                                                         \
	do {                                                                         \
		if (!(cond)) {                                                       \
			if (!t_cur_failed) {                                         \
				fprintf(stdout, "#   %s:%d: check failed: %s: ",      \
					__FILE__, __LINE__, #cond);                  \
				fprintf(stdout, __VA_ARGS__);                        \
				fputc('\n', stdout);                                 \
			}                                                            \
			t_cur_failed = 1;                                            \
		}                                                                    \
	} while (0)

#define CHECK_STR(a, b)                                                               \
	do {                                                                          \
		const char *t_a = (a), *t_b = (b);                                    \
		CHECK_MSG(t_a && t_b && strcmp(t_a, t_b) == 0, "\"%s\" != \"%s\"", \
			  t_a ? t_a : "(null)", t_b ? t_b : "(null)");              \
	} while (0)

#define CHECK_INT(a, b)                                                           \
	do {                                                                      \
		long long t_a = (long long)(a), t_b = (long long)(b);             \
		CHECK_MSG(t_a == t_b, "%lld != %lld", t_a, t_b);                  \
	} while (0)

/* Ends the current test as skipped (use inside a test function returning void). */
#define T_SKIP(reason)                                                       \
	do {                                                                 \
		t_cur_skip = (reason);                                       \
		return;                                                      \
	} while (0)

#define T_RUN(fn)                                                            \
	do {                                                                 \
		t_cur_name = #fn;                                            \
		t_cur_failed = 0;                                            \
		t_cur_skip = NULL;                                           \
		fn();                                                        \
		if (!t_cur_failed && t_cur_skip) {                           \
			t_skipped++;                                         \
			fprintf(stdout, "ok - %s # SKIP %s\n", t_cur_name,   \
				t_cur_skip);                                 \
		} else if (t_cur_failed) {                                   \
			t_failed++;                                          \
			fprintf(stdout, "not ok - %s\n", t_cur_name);        \
		} else {                                                     \
			t_passed++;                                          \
			fprintf(stdout, "ok - %s\n", t_cur_name);            \
		}                                                            \
		fflush(stdout);                                              \
	} while (0)

/* Reports `name` skipped without running it (e.g. a whole file whose setting is missing). */
static inline void t_skip(const char *name, const char *reason)
{
	t_skipped++;
	fprintf(stdout, "ok - %s # SKIP %s\n", name, reason);
	fflush(stdout);
}

static inline int t_done(void)
{
	fprintf(stdout, "# %d passed, %d failed, %d skipped\n", t_passed, t_failed, t_skipped);
	return t_failed ? 1 : 0;
}

#endif
