/*
 * study_jobs.c — generate_quiz, generate_study_guide, generate_source_guide.
 *
 * Each job reads its target and the chunks it draws on, runs the configured
 * generator through rag/gen_study (structured output, strict validation,
 * one retry on invalid output), verifies every citation against the chunk
 * texts it gave, and stores the result with one transaction that replaces
 * the target's content and its generation record (store/study.h). A re-run
 * (jobs are at-least-once) therefore replaces, never duplicates. Failures:
 * the model server failing is retried with backoff, and on the last attempt
 * the resource becomes failed with the reason; output that stays invalid,
 * or has nothing verifiable, fails the resource at once (retrying the same
 * input would not help an extractive generator, and the one retry already
 * happened for a model). A target deleted meanwhile ends the job quietly.
 */
#include "rag/study_jobs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "jobs/queue.h"
#include "rag/gen_study.h"
#include "rag/generate.h"
#include "store/study.h"

static int run_gen(void *ud, const nb_gen_request_t *req, nb_gen_result_t *res)
{
	return nb_gen_run(ud, req, res);
}

static const nb_gen_kind_t k_gen_kind[] = {NB_GEN_QUIZ, NB_GEN_STUDY_GUIDE, NB_GEN_SOURCE_GUIDE};
static const char *const k_rec_kind[] = {"quiz", "study_guide", "source_guide"};

/* Records the failure on the target; the job's return value. */
static int fail(nb_conn_t *c, const nb_job_t *job, nb_study_kind_t sk, const char *id, const char *notebook_id,
		nb_generation_rec_t *rec, const char *reason, bool permanent, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s", reason);
	if (!nb_job_fails_for_good(job, permanent ? NB_JOB_PERMANENT : NB_EINTERNAL))
		return NB_EINTERNAL; /* retried with backoff */
	rec->failed = true;
	rec->error = reason;
	int rc = nb_store_study_fail(c, sk, id, job->user_id, notebook_id, reason, rec);
	if (rc < 0 && rc != NB_ENOTFOUND)
		nb_warn("%s %s: could not record the failure", k_rec_kind[sk], id);
	return NB_JOB_PERMANENT;
}

static int run(const nb_job_t *job, nb_job_ctx_t *ctx, nb_study_kind_t sk, const char *id, char *err, size_t errlen)
{
	if (!id || !*id) {
		snprintf(err, errlen, "the job names no target");
		return NB_JOB_PERMANENT;
	}
	nb_conn_t *c = nb_job_ctx_conn(ctx);
	if (!c) {
		snprintf(err, errlen, "database unavailable");
		return NB_EUNAVAIL;
	}
	nb_generator_t *gen = nb_gen_configured();
	nb_study_target_t t;
	json_t *items = NULL, *content = NULL, *cited = NULL, *schema = NULL;
	nb_gen_chunk_t *chunks = NULL;
	nb_gen_result_t res = {0};
	int rc = nb_store_study_target(c, sk, id, &t);
	if (rc == NB_ENOTFOUND || (rc == 0 && t.gone)) {
		rc = 0; /* deleted (or, for a source, not ready) meanwhile: nothing to make */
		goto out;
	}
	if (rc < 0) {
		snprintf(err, errlen, "could not load the %s", k_rec_kind[sk]);
		goto out;
	}
	rc = nb_store_study_chunks(c, t.notebook_id, t.source_ids, sk == NB_STUDY_SOURCE_GUIDE ? id : NULL,
				   NB_STUDY_MAX_CHUNKS, &items);
	if (rc < 0) {
		snprintf(err, errlen, "could not read the sources");
		goto out;
	}
	size_t n = json_array_size(items);
	nb_generation_rec_t rec = {.kind = k_rec_kind[sk], .provider = nb_gen_provider(gen), .model = ""};
	if (n == 0) {
		rc = sk == NB_STUDY_SOURCE_GUIDE ? 0 /* the source was emptied meanwhile */
						 : fail(c, job, sk, id, t.notebook_id, &rec,
							"the selected sources have no ready text", true, err, errlen);
		goto out;
	}
	chunks = nb_xcalloc(n, sizeof *chunks);
	for (size_t i = 0; i < n; i++) {
		json_t *it = json_array_get(items, i);
		chunks[i].chunk_id = json_string_value(json_object_get(it, "chunk_id"));
		chunks[i].source_id = json_string_value(json_object_get(it, "source_id"));
		chunks[i].text = json_string_value(json_object_get(it, "text"));
	}
	nb_gen_kind_t kind = k_gen_kind[sk];
	int max_items = sk == NB_STUDY_QUIZ ? t.num_questions : 0;
	schema = nb_study_schema(kind, max_items);
	nb_gen_request_t req = {.kind = kind,
				.chunks = chunks,
				.nchunks = n,
				.instructions = nb_study_instructions(kind),
				.schema = schema};
	int64_t t0 = nb_mono_ms();
	int attempts = 0;
	nb_study_generate(run_gen, gen, &req, max_items, &res, &attempts);
	rec.provider = res.provider ? res.provider : nb_gen_provider(gen);
	rec.model = res.model;
	rec.input_tokens = res.input_tokens;
	rec.output_tokens = res.output_tokens;
	rec.latency_ms = (int)(nb_mono_ms() - t0);
	if (res.error_code != NB_GEN_OK) {
		bool permanent = res.error_code == NB_GEN_EINVALID || res.error_code == NB_GEN_EUNCONFIGURED ||
				 !strcmp(rec.provider, "extractive"); /* deterministic: the same input fails again */
		rc = fail(c, job, sk, id, t.notebook_id, &rec, res.error, permanent, err, errlen);
		goto out;
	}
	char why[200];
	if (nb_study_verify(kind, res.structured, chunks, n, t.title, &content, &cited, &rec.dropped_citations, why,
			    sizeof why) < 0) {
		rc = fail(c, job, sk, id, t.notebook_id, &rec, why, true, err, errlen);
		goto out;
	}
	rc = nb_store_study_save(c, sk, id, job->user_id, t.notebook_id, content, cited, &rec);
	if (rc == NB_ENOTFOUND) {
		rc = 0;
	} else if (rc == NB_ECONFLICT) {
		rc = fail(c, job, sk, id, t.notebook_id, &rec, "the sources changed during generation", false, err,
			  errlen);
	} else if (rc < 0) {
		snprintf(err, errlen, "could not store the %s", k_rec_kind[sk]);
	} else {
		nb_info("%s %s ready (%s, %d citations dropped, %d generator runs)", k_rec_kind[sk], id, rec.provider,
			rec.dropped_citations, attempts);
	}
out:
	nb_gen_result_dispose(&res);
	json_decref(schema);
	json_decref(content);
	json_decref(cited);
	json_decref(items);
	free(chunks);
	nb_store_study_target_dispose(&t);
	return rc;
}

static int quiz_job(const nb_job_t *job, nb_job_ctx_t *ctx, char *err, size_t errlen)
{
	return run(job, ctx, NB_STUDY_QUIZ, job->quiz_id, err, errlen);
}

static int guide_job(const nb_job_t *job, nb_job_ctx_t *ctx, char *err, size_t errlen)
{
	return run(job, ctx, NB_STUDY_GUIDE, job->study_guide_id, err, errlen);
}

static int source_guide_job(const nb_job_t *job, nb_job_ctx_t *ctx, char *err, size_t errlen)
{
	return run(job, ctx, NB_STUDY_SOURCE_GUIDE, job->source_id, err, errlen);
}

void nb_study_register(void)
{
	nb_jobs_register("generate_quiz", quiz_job);
	nb_jobs_register("generate_study_guide", guide_job);
	nb_jobs_register("generate_source_guide", source_guide_job);
}

int nb_study_enqueue_source_guide(nb_conn_t *c, const char *user_id, const char *source_id)
{
	char jid[37];
	nb_job_spec_t spec = {.kind = "generate_source_guide", .user_id = user_id, .source_id = source_id};
	return nb_jobs_enqueue(c, &spec, jid);
}
