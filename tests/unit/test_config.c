/*
 * test_config.c — parsing the environment (src/core/config.c): good values
 * load, defaults apply, and every bad value (not a number, trailing junk,
 * blanks, out of range, overflow, a bad boolean) is refused with one line
 * naming the variable and the value; `--help` of a command lists only the
 * settings that command reads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "t.h"

static char err[256];

/* Loads with one variable set (NULL value: unset); returns nb_config_load's result. */
static int load_with(const char *name, const char *value)
{
	if (value)
		setenv(name, value, 1);
	else
		unsetenv(name);
	err[0] = '\0';
	int rc = nb_config_load(err, sizeof err);
	unsetenv(name);
	return rc;
}

/* The error names the variable first, quotes the value, and is one line. */
#define CHECK_REFUSED(name, value)                                                                   \
	do {                                                                                         \
		CHECK_MSG(load_with(name, value) == -1, "%s=\"%s\" was accepted", name, value);      \
		CHECK_MSG(!strncmp(err, name ": ", strlen(name) + 2), "error \"%s\" does not name %s", \
			  err, name);                                                                \
		CHECK_MSG(!strchr(err, '\n'), "error \"%s\" is not one line", err);                  \
	} while (0)

static void test_defaults_load(void)
{
	CHECK_INT(load_with("NOTEBOOKD_WORKERS", NULL), 0);
	CHECK_STR(nb_cfg.listen, "127.0.0.1:8080");
	CHECK_INT(nb_cfg.workers, 2);
	CHECK_INT(nb_cfg.max_upload_bytes, 52428800L);
	CHECK(nb_cfg.access_log);
	CHECK(!nb_cfg.allow_private_urls);
	CHECK(nb_cfg.smtp_url == NULL);
	/* an empty number or boolean means the default; an empty string means unset */
	CHECK_INT(load_with("NOTEBOOKD_WORKERS", ""), 0);
	CHECK_INT(nb_cfg.workers, 2);
	CHECK_INT(load_with("NOTEBOOKD_SMTP_URL", ""), 0);
	CHECK(nb_cfg.smtp_url == NULL);
}

static void test_good_values_load(void)
{
	CHECK_INT(load_with("NOTEBOOKD_WORKERS", "7"), 0);
	CHECK_INT(nb_cfg.workers, 7);
	CHECK_INT(load_with("NOTEBOOKD_WORKERS", "0"), 0); /* the minimum */
	CHECK_INT(nb_cfg.workers, 0);
	CHECK_INT(load_with("NOTEBOOKD_WORKERS", "256"), 0); /* the maximum */
	CHECK_INT(nb_cfg.workers, 256);
	CHECK_INT(load_with("NOTEBOOKD_MAX_UPLOAD_BYTES", "4294967296"), 0); /* beyond int */
	CHECK_INT(nb_cfg.max_upload_bytes, 4294967296LL);
	CHECK_INT(load_with("NOTEBOOKD_LISTEN", "0.0.0.0:9"), 0);
	CHECK_STR(nb_cfg.listen, "0.0.0.0:9");
	const char *yes[] = {"1", "true", "yes", "on"}, *no[] = {"0", "false", "no", "off"};
	for (int i = 0; i < 4; i++) {
		CHECK_INT(load_with("NOTEBOOKD_ALLOW_PRIVATE_URLS", yes[i]), 0);
		CHECK_MSG(nb_cfg.allow_private_urls, "%s", yes[i]);
		CHECK_INT(load_with("NOTEBOOKD_ACCESS_LOG", no[i]), 0);
		CHECK_MSG(!nb_cfg.access_log, "%s", no[i]);
	}
}

static void test_non_numbers_refused(void)
{
	CHECK_REFUSED("NOTEBOOKD_WORKERS", "abc");
	CHECK(strstr(err, "must be an integer from 0 to 256") && strstr(err, "\"abc\""));
	CHECK_REFUSED("NOTEBOOKD_WORKERS", "12abc");
	CHECK_REFUSED("NOTEBOOKD_WORKERS", "1.5");
	CHECK_REFUSED("NOTEBOOKD_WORKERS", " 5");
	CHECK_REFUSED("NOTEBOOKD_WORKERS", "+5");
	CHECK_REFUSED("NOTEBOOKD_WORKERS", "5 ");
	CHECK_REFUSED("NOTEBOOKD_WORKERS", "0x10");
	CHECK_REFUSED("NOTEBOOKD_MAX_UPLOAD_BYTES", "50M");
}

static void test_out_of_range_refused(void)
{
	CHECK_REFUSED("NOTEBOOKD_WORKERS", "-1");
	CHECK_REFUSED("NOTEBOOKD_WORKERS", "257");
	CHECK_REFUSED("NOTEBOOKD_MAX_CONNECTIONS", "15");
	CHECK(strstr(err, "from 16 to 1000000") != NULL);
	CHECK_REFUSED("NOTEBOOKD_MAX_UPLOAD_BYTES", "4294967297");
	/* beyond long: strtol's ERANGE, not a wrapped number */
	CHECK_REFUSED("NOTEBOOKD_REQUEST_TIMEOUT_MS", "99999999999999999999999");
	CHECK_REFUSED("NOTEBOOKD_REQUEST_TIMEOUT_MS", "-99999999999999999999999");
}

static void test_bad_booleans_refused(void)
{
	CHECK_REFUSED("NOTEBOOKD_ACCESS_LOG", "maybe");
	CHECK(strstr(err, "must be 0 or 1") && strstr(err, "\"maybe\""));
	CHECK_REFUSED("NOTEBOOKD_ALLOW_PRIVATE_URLS", "2");
	CHECK_REFUSED("NOTEBOOKD_DEBUG_ROUTES", "TRUE ");
}

static void test_error_is_one_line_whatever_the_value(void)
{
	CHECK_REFUSED("NOTEBOOKD_WORKERS", "1\n2");
	CHECK(strstr(err, "\"1?2\"") != NULL);
	char longv[300];
	memset(longv, '9', sizeof longv - 1);
	longv[sizeof longv - 1] = '\0';
	CHECK_REFUSED("NOTEBOOKD_WORKERS", longv);
	CHECK(strlen(err) < 160);
}

static char *help_for(unsigned commands)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	nb_config_print_help(f, commands);
	fclose(f);
	return text;
}

static void test_help_lists_what_a_command_reads(void)
{
	char *migrate = help_for(NB_CMD_MIGRATE), *serve = help_for(NB_CMD_SERVE);
	char *purge = help_for(NB_CMD_PURGE), *worker = help_for(NB_CMD_WORKER), *all = help_for(NB_CMD_ALL);
	CHECK(strstr(migrate, "DATABASE_URL") && strstr(migrate, "NOTEBOOKD_DB_CONNECT_TIMEOUT_S"));
	CHECK(!strstr(migrate, "NOTEBOOKD_LISTEN ") && !strstr(migrate, "NOTEBOOKD_JWT_SECRET"));
	CHECK(!strstr(migrate, "NOTEBOOKD_DB_POOL_SIZE"));
	CHECK(strstr(serve, "NOTEBOOKD_LISTEN ") && strstr(serve, "NOTEBOOKD_WORKERS"));
	CHECK(strstr(serve, "NOTEBOOKD_RETENTION_INTERVAL_S") && !strstr(purge, "NOTEBOOKD_RETENTION_INTERVAL_S"));
	CHECK(strstr(purge, "NOTEBOOKD_TRASH_RETENTION_DAYS") && !strstr(purge, "NOTEBOOKD_LISTEN "));
	CHECK(strstr(worker, "NOTEBOOKD_JOB_LEASE_S") && strstr(worker, "NOTEBOOKD_FETCH_TIMEOUT_S"));
	CHECK(!strstr(worker, "NOTEBOOKD_LISTEN ") && !strstr(worker, "NOTEBOOKD_JWT_SECRET"));
	/* every setting is read by some command: the full list is the union */
	int lines_all = 0, lines_union = 0;
	for (char *p = all; (p = strstr(p, "\n  ")); p++)
		lines_all++;
	char *each[] = {serve, worker, migrate, help_for(NB_CMD_VERIFY), purge};
	for (char *p = all; (p = strstr(p, "\n  ")); p++) {
		char name[64];
		sscanf(p + 3, "%63s", name);
		for (int i = 0; i < 5; i++)
			if (strstr(each[i], name)) {
				lines_union++;
				break;
			}
	}
	CHECK(lines_all > 40);
	CHECK_INT(lines_union, lines_all);
	/* every setting has its line in config.c's readers table */
	for (char *p = all; (p = strstr(p, "\n  ")); p++) {
		char name[64];
		unsigned mask;
		sscanf(p + 3, "%63s", name);
		CHECK_MSG(nb_config_readers(name, &mask) == 0, "%s has no line in the readers table of config.c", name);
		CHECK_MSG(mask && (mask & ~NB_CMD_ALL) == 0, "%s: mask %#x", name, mask);
	}
	unsigned mask = 0;
	CHECK_INT(nb_config_readers("NOTEBOOKD_NO_SUCH_THING", &mask), -1);
	CHECK_INT(mask, NB_CMD_ALL);
	free(each[3]);
	free(migrate);
	free(serve);
	free(purge);
	free(worker);
	free(all);
}

int main(void)
{
	T_RUN(test_defaults_load);
	T_RUN(test_good_values_load);
	T_RUN(test_non_numbers_refused);
	T_RUN(test_out_of_range_refused);
	T_RUN(test_bad_booleans_refused);
	T_RUN(test_error_is_one_line_whatever_the_value);
	T_RUN(test_help_lists_what_a_command_reads);
	return t_done();
}
