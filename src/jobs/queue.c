/*
 * queue.c — the table of job kinds and enqueueing (see queue.h).
 *
 * The table is a small fixed array guarded by a mutex; workers copy it when
 * they start, so a handler lookup on the hot path takes no lock. The test
 * kinds 'noop' and 'fail' are registered only on request (tests, and the
 * binary with NOTEBOOKD_DEBUG_ROUTES=1 for the queue benchmark).
 */
#include "jobs/queue.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/uuid.h"

static int noop_job(const nb_job_t *job, nb_job_ctx_t *ctx, char *err, size_t errlen)
{
	(void)job;
	(void)ctx;
	(void)err;
	(void)errlen;
	return 0;
}

static int fail_job(const nb_job_t *job, nb_job_ctx_t *ctx, char *err, size_t errlen)
{
	(void)ctx;
	snprintf(err, errlen, "the fail job always fails (attempt %d of %d)", job->attempts, job->max_attempts);
	return -1;
}

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char kind[32];
	nb_job_fn fn;
} reg[NB_JOBS_MAX_KINDS];
static int nreg;

void nb_jobs_register(const char *kind, nb_job_fn fn)
{
	if (!kind || !kind[0] || strlen(kind) >= sizeof reg[0].kind || !fn) {
		nb_error("cannot register job kind \"%s\": empty, too long or without handler", kind ? kind : "");
		abort();
	}
	pthread_mutex_lock(&reg_mu);
	int i = 0;
	while (i < nreg && strcmp(reg[i].kind, kind) != 0)
		i++;
	if (i == NB_JOBS_MAX_KINDS) {
		pthread_mutex_unlock(&reg_mu);
		nb_error("cannot register job kind \"%s\": too many kinds", kind);
		abort();
	}
	if (i == nreg) {
		snprintf(reg[i].kind, sizeof reg[i].kind, "%s", kind);
		nreg++;
	}
	reg[i].fn = fn;
	pthread_mutex_unlock(&reg_mu);
}

void nb_jobs_register_test_kinds(void)
{
	nb_jobs_register("noop", noop_job);
	nb_jobs_register("fail", fail_job);
}

int nb_jobs__registered(char kinds[][32], nb_job_fn *fns, int max)
{
	pthread_mutex_lock(&reg_mu);
	int n = nreg < max ? nreg : max;
	for (int i = 0; i < n; i++) {
		memcpy(kinds[i], reg[i].kind, sizeof reg[i].kind);
		fns[i] = reg[i].fn;
	}
	pthread_mutex_unlock(&reg_mu);
	return n;
}

bool nb_job_fails_for_good(const nb_job_t *job, int rc)
{
	return rc == NB_JOB_PERMANENT || job->attempts >= job->max_attempts;
}

int nb_jobs_enqueue(nb_conn_t *c, const nb_job_spec_t *spec, char id_out[37])
{
	id_out[0] = '\0';
	int max_attempts = spec->max_attempts > 0 ? spec->max_attempts : nb_cfg.job_max_attempts;
	if (max_attempts < 1) /* configuration not loaded */
		max_attempts = 5;
	if (!spec->kind || !spec->kind[0] || strlen(spec->kind) >= 32 || !spec->user_id || max_attempts > 100 ||
	    spec->delay_ms < 0)
		return NB_EINVALID;
	if (spec->payload_json) {
		json_t *p = json_loads(spec->payload_json, JSON_REJECT_DUPLICATES, NULL);
		bool object = p && json_is_object(p);
		json_decref(p);
		if (!object)
			return NB_EINVALID;
	}
	char id[NB_UUID_STR_LEN + 1];
	nb_uuid_v7_str(id);
	nb_store_job_new_t row = {
	    .id = id,
	    .user_id = spec->user_id,
	    .kind = spec->kind,
	    .source_id = spec->source_id,
	    .document_id = spec->document_id,
	    .quiz_id = spec->quiz_id,
	    .study_guide_id = spec->study_guide_id,
	    .payload_json = spec->payload_json,
	    .max_attempts = max_attempts,
	    .delay_ms = spec->delay_ms,
	};
	int rc = nb_store_job_insert(c, &row);
	if (rc == 0)
		memcpy(id_out, id, sizeof id);
	return rc;
}
