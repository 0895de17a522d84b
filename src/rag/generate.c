/*
 * generate.c — choosing and running a generator (see generate.h).
 *
 * A generator is a provider name and a run function; the implementations
 * live in rag/gen_*.c: gen_extractive.c (offline) and gen_openai.c (an
 * OpenAI-compatible server; without NOTEBOOKD_LLM_URL/MODEL its generations
 * fail with NB_GEN_EUNCONFIGURED, which the API answers as 503 "generator
 * not configured" and records as a failed generation).
 */
#include "rag/generate.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/config.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/utf8.h"

struct nb_generator {
	const char *provider;
	int index; /* in the stats tables */
	int (*run)(const nb_gen_request_t *req, nb_gen_result_t *res);
};

int nb_gen_create(const char *name, nb_generator_t **out, char *err, size_t errlen)
{
	*out = NULL;
	nb_generator_t *g = nb_xcalloc(1, sizeof *g);
	if (!name || !strcmp(name, "extractive")) {
		g->provider = "extractive";
		g->run = nb_gen__extractive_run;
	} else if (!strcmp(name, "openai")) {
		g->provider = "openai";
		g->run = nb_gen__openai_run;
		g->index = 1;
	} else {
		snprintf(err, errlen, "NOTEBOOKD_GENERATOR: must be extractive or openai, got \"%s\"", name);
		free(g);
		return -1;
	}
	*out = g;
	return 0;
}

static nb_generator_t *g_configured;
static pthread_once_t g_configured_once = PTHREAD_ONCE_INIT;

static void configured_init(void)
{
	char err[160];
	/* the setting was checked at start-up (core/config.c); an unknown name cannot reach here */
	if (nb_gen_create(nb_cfg.generator, &g_configured, err, sizeof err) < 0) {
		nb_error("%s", err);
		nb_gen_create("extractive", &g_configured, err, sizeof err);
	}
}

nb_generator_t *nb_gen_configured(void)
{
	pthread_once(&g_configured_once, configured_init);
	return g_configured;
}

void nb_gen_destroy(nb_generator_t *g)
{
	free(g);
}

const char *nb_gen_provider(const nb_generator_t *g)
{
	return g->provider;
}

static nb_histo_t latency[NB_GEN_PROVIDERS][NB_GEN_USES];
static atomic_ullong errors[NB_GEN_PROVIDERS][NB_GEN_USES];

int nb_gen_run(const nb_generator_t *g, const nb_gen_request_t *req, nb_gen_result_t *res)
{
	memset(res, 0, sizeof *res);
	res->provider = g->provider;
	int64_t t0 = nb_mono_us();
	int rc = g->run(req, res);
	int use = req->kind == NB_GEN_CHAT ? 0 : 1;
	nb_histo_observe(&latency[g->index][use], nb_mono_us() - t0);
	if (rc != 0 && rc != NB_GEN_ECANCELLED) /* a client that left is not the provider's error */
		atomic_fetch_add_explicit(&errors[g->index][use], 1, memory_order_relaxed);
	return rc;
}

const char *nb_gen_provider_label(int i)
{
	return i == 1 ? "openai" : "extractive";
}

const char *nb_gen_use_label(int u)
{
	return u == 1 ? "study" : "chat";
}

void nb_gen_stats_get(int provider, int use, nb_gen_stats_t *out)
{
	memset(out, 0, sizeof *out);
	if (provider < 0 || provider >= NB_GEN_PROVIDERS || use < 0 || use >= NB_GEN_USES)
		return;
	nb_histo_snap_add(&out->latency, &latency[provider][use]);
	out->errors = atomic_load_explicit(&errors[provider][use], memory_order_relaxed);
}

void nb_gen_result_dispose(nb_gen_result_t *res)
{
	if (!res)
		return;
	free(res->text);
	json_decref(res->structured);
	for (size_t i = 0; i < res->nclaims; i++)
		free(res->claims[i].quote);
	free(res->claims);
	memset(res, 0, sizeof *res);
}

int nb_gen_estimate_tokens(const char *text)
{
	if (!text || !*text)
		return 0;
	size_t n = nb_utf8_count(text, strlen(text));
	return (int)(n / 4 + 1);
}
