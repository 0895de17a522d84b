/*
 * timeutil.h — clocks and RFC 3339 formatting.
 */
#ifndef NB_CORE_TIMEUTIL_H
#define NB_CORE_TIMEUTIL_H

#include <stdint.h>

/** Wall-clock milliseconds since the Unix epoch. */
int64_t nb_now_ms(void);
/** Monotonic milliseconds (for deadlines and durations). */
int64_t nb_mono_ms(void);
/** Monotonic microseconds. */
int64_t nb_mono_us(void);
/** Formats epoch milliseconds as "2026-11-25T19:01:32.123Z" into out (>= 25 bytes). */
void nb_rfc3339_ms(int64_t ms, char out[32]);

#endif
