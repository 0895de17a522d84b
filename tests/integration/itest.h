/*
 * itest.h — the start every integration test shares: the throwaway
 * cluster's URL (NB_TEST_DATABASE_URL, set by scripts/test.sh) and, for the
 * tests that use the server's own code, libsodium and the configuration
 * loaded against that database.
 */
#ifndef NB_TESTS_ITEST_H
#define NB_TESTS_ITEST_H

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/config.h"
#include "core/log.h"

/** The test cluster's URL, or NULL (said on stderr) when the runner did not set it. */
static inline const char *itest_url(void)
{
	const char *url = getenv("NB_TEST_DATABASE_URL");
	if (!url)
		fprintf(stderr, "NB_TEST_DATABASE_URL is not set\n");
	return url;
}

/**
 * itest_url, then libsodium, DATABASE_URL and the configuration loaded, and
 * the log level of NB_TEST_LOG_LEVEL (warn by default). NULL on failure.
 */
static inline const char *itest_start(void)
{
	const char *url = itest_url();
	if (!url || sodium_init() < 0)
		return NULL;
	setenv("DATABASE_URL", url, 1);
	char err[256];
	if (nb_config_load(err, sizeof err) < 0) {
		fprintf(stderr, "%s\n", err);
		return NULL;
	}
	nb_log_set_level(getenv("NB_TEST_LOG_LEVEL") ? getenv("NB_TEST_LOG_LEVEL") : "warn");
	return url;
}

#endif
