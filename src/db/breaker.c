/*
 * breaker.c — the circuit breaker around connecting (see breaker.h).
 *
 * State lives in atomics: the consecutive failure count, the state, and the
 * monotonic time the open state ends. Transitions that must happen once
 * (open -> half-open: one probe) use compare-and-swap.
 */
#include "db/breaker.h"

#include <stdatomic.h>
#include <stdint.h>

#include "core/timeutil.h"

static atomic_int threshold = 5;
static atomic_int open_ms = 1000;
static atomic_int failures;
static atomic_int state = NB_BREAKER_CLOSED;
static _Atomic int64_t open_until_ms;
static atomic_long opens;

void nb_breaker_configure(int n, int ms)
{
	atomic_store(&threshold, n);
	atomic_store(&open_ms, ms > 0 ? ms : 1000);
}

/* Moves from `from` to open; the end of the open time is written first so
 * that no reader sees the new state with an old deadline. */
static void open_from(int from)
{
	atomic_store(&open_until_ms, nb_mono_ms() + atomic_load(&open_ms));
	int expect = from;
	if (atomic_compare_exchange_strong(&state, &expect, NB_BREAKER_OPEN))
		atomic_fetch_add(&opens, 1);
}

bool nb_breaker_allow_connect(void)
{
	if (atomic_load(&threshold) <= 0)
		return true;
	int s = atomic_load(&state);
	if (s == NB_BREAKER_CLOSED)
		return true;
	if (s == NB_BREAKER_HALF_OPEN)
		return false;
	if (nb_mono_ms() < atomic_load(&open_until_ms))
		return false;
	int expect = NB_BREAKER_OPEN;
	return atomic_compare_exchange_strong(&state, &expect, NB_BREAKER_HALF_OPEN);
}

bool nb_breaker_rejects(int *retry_s)
{
	if (atomic_load(&threshold) <= 0)
		return false;
	int s = atomic_load(&state);
	if (s == NB_BREAKER_CLOSED)
		return false;
	int64_t left = atomic_load(&open_until_ms) - nb_mono_ms();
	if (s == NB_BREAKER_OPEN && left <= 0)
		return false; /* this request may carry the probe */
	*retry_s = left > 1000 ? (int)((left + 999) / 1000) : 1;
	return true;
}

void nb_breaker_success(void)
{
	atomic_store(&failures, 0);
	atomic_store(&state, NB_BREAKER_CLOSED);
}

void nb_breaker_failure(void)
{
	int n = atomic_load(&threshold);
	if (n <= 0)
		return;
	int f = atomic_fetch_add(&failures, 1) + 1;
	int s = atomic_load(&state);
	if (s == NB_BREAKER_HALF_OPEN)
		open_from(NB_BREAKER_HALF_OPEN); /* the probe failed */
	else if (s == NB_BREAKER_CLOSED && f >= n)
		open_from(NB_BREAKER_CLOSED);
}

nb_breaker_state_t nb_breaker_state(void)
{
	return (nb_breaker_state_t)atomic_load(&state);
}

long nb_breaker_opens(void)
{
	return atomic_load(&opens);
}
