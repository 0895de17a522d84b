/*
 * timeutil.c — clocks and RFC 3339 formatting (see timeutil.h).
 */
#include "core/timeutil.h"

#include <stdio.h>
#include <time.h>

int64_t nb_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t nb_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t nb_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void nb_rfc3339_ms(int64_t ms, char out[32])
{
	time_t secs = (time_t)(ms / 1000);
	int millis = (int)(ms % 1000);
	if (millis < 0) {
		millis += 1000;
		secs -= 1;
	}
	struct tm tm;
	gmtime_r(&secs, &tm);
	/* Years beyond 9999 are clamped so the output always fits. */
	int year = tm.tm_year + 1900;
	if (year > 9999)
		year = 9999;
	if (year < 0)
		year = 0;
	snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", year % 10000, (tm.tm_mon + 1) % 100,
		 tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100, tm.tm_sec % 100, millis % 1000);
}
