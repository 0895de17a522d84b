/*
 * test_breaker.c — unit tests of the database circuit breaker's states
 * (src/db/breaker.c): closed, open after the threshold, one half-open probe
 * when the open time is up, closed by a success, open again by a failure.
 */
#include <time.h>

#include "db/breaker.h"
#include "t.h"

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static void test_states(void)
{
	int retry = 0;
	nb_breaker_configure(3, 100);
	CHECK(nb_breaker_state() == NB_BREAKER_CLOSED);
	CHECK(nb_breaker_allow_connect());
	nb_breaker_failure();
	nb_breaker_failure();
	CHECK(nb_breaker_state() == NB_BREAKER_CLOSED); /* below the threshold */
	CHECK(!nb_breaker_rejects(&retry));
	nb_breaker_success(); /* a success resets the count */
	nb_breaker_failure();
	nb_breaker_failure();
	CHECK(nb_breaker_state() == NB_BREAKER_CLOSED);
	nb_breaker_failure();
	CHECK(nb_breaker_state() == NB_BREAKER_OPEN);
	CHECK_INT(nb_breaker_opens(), 1);
	CHECK(!nb_breaker_allow_connect());
	CHECK(nb_breaker_rejects(&retry));
	CHECK_INT(retry, 1);
	sleep_ms(130);
	/* the open time is up: requests pass, and exactly one connect probes */
	CHECK(!nb_breaker_rejects(&retry));
	CHECK(nb_breaker_allow_connect());
	CHECK(nb_breaker_state() == NB_BREAKER_HALF_OPEN);
	CHECK(!nb_breaker_allow_connect());
	CHECK(nb_breaker_rejects(&retry));
	nb_breaker_failure(); /* the probe failed: open again */
	CHECK(nb_breaker_state() == NB_BREAKER_OPEN);
	CHECK_INT(nb_breaker_opens(), 2);
	CHECK(!nb_breaker_allow_connect());
	sleep_ms(130);
	CHECK(nb_breaker_allow_connect());
	nb_breaker_success(); /* the probe succeeded: closed */
	CHECK(nb_breaker_state() == NB_BREAKER_CLOSED);
	CHECK(nb_breaker_allow_connect());
	CHECK(!nb_breaker_rejects(&retry));
}

static void test_off(void)
{
	int retry = 0;
	nb_breaker_configure(0, 100);
	for (int i = 0; i < 10; i++)
		nb_breaker_failure();
	CHECK(nb_breaker_allow_connect());
	CHECK(!nb_breaker_rejects(&retry));
}

int main(void)
{
	T_RUN(test_states);
	T_RUN(test_off);
	return t_done();
}
