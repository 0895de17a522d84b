/*
 * generate.h — the generator interface: chat answers now, quizzes, study
 * guides and source guides next, from an offline extractive generator or an
 * OpenAI-compatible server.
 *
 * A request carries numbered context chunks (id, source id, text), the task
 * (a question and recent turns for chat; instructions and an optional JSON
 * schema for structured outputs), and an optional delta callback through
 * which a streaming implementation hands out text as it arrives — returning
 * non-zero from it cancels the generation (a client that went away). The
 * result holds the answer text, the citations the generator *claims*
 * (chunk number, quote, code-point span; unverified — see rag/citations.h),
 * token counts, the provider and model names, and an error.
 *
 * Generators are stateless and thread-safe: one is made at start-up from
 * NOTEBOOKD_GENERATOR and shared by every request and job.
 */
#ifndef NB_RAG_GENERATE_H
#define NB_RAG_GENERATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/metrics.h"

/** What is being generated. */
typedef enum {
	NB_GEN_CHAT,
	NB_GEN_QUIZ,
	NB_GEN_STUDY_GUIDE,
	NB_GEN_SOURCE_GUIDE,
} nb_gen_kind_t;

/** A context chunk; its number in prompts and claims is its index + 1. */
typedef struct nb_gen_chunk {
	const char *chunk_id;
	const char *source_id;
	const char *text; /* the stored chunk text, UTF-8 */
	double score;	  /* retrieval rank (higher is better), 0 if none */
} nb_gen_chunk_t;

/** A previous turn of the conversation. */
typedef struct nb_gen_turn {
	const char *role; /* "user" or "assistant" */
	const char *content;
} nb_gen_turn_t;

/**
 * Receives text as it is generated. Return 0 to go on, non-zero to cancel
 * (the generator then stops and fails with NB_GEN_ECANCELLED).
 */
typedef int (*nb_gen_delta_fn)(void *ud, const char *text, size_t len);

typedef struct nb_gen_request {
	nb_gen_kind_t kind;
	const nb_gen_chunk_t *chunks;
	size_t nchunks;
	const char *question;	      /* chat: the user's message */
	const nb_gen_turn_t *history; /* chat: earlier turns, oldest first */
	size_t nhistory;
	const char *instructions; /* quizzes/guides: what to make (NULL for chat) */
	const json_t *schema;	  /* a JSON schema for structured output, or NULL */
	int max_output_tokens;	  /* 0: the generator's default */
	nb_gen_delta_fn on_delta; /* may be NULL */
	void *ud;
	/* Additions (a zero-initialised field keeps the earlier behaviour). */
	/**
	 * While waiting on a model server: called after idle_ms without text
	 * (a streamed answer sends its keep-alive). Non-zero cancels. May be NULL.
	 */
	int (*on_idle)(void *ud);
	int idle_ms;
	/**
	 * Structured output: checks the parsed JSON against what the caller needs
	 * (the schema's meaning). 0 accepts; non-zero rejects with a reason in err,
	 * and the generator asks once more before failing with NB_GEN_EINVALID.
	 * May be NULL (then any JSON object or array is accepted).
	 */
	int (*validate)(void *ud, const json_t *out, char *err, size_t errlen);
} nb_gen_request_t;

/** A citation as the generator claims it: unverified until checked. */
typedef struct nb_gen_claim {
	int chunk;	 /* index into request.chunks (number - 1); may be out of range */
	char *quote;	 /* owned */
	long char_start; /* code points in the chunk text; -1 when the generator gave only the quote */
	long char_end;
} nb_gen_claim_t;

/** Generator errors (result.error_code). */
enum {
	NB_GEN_OK = 0,
	NB_GEN_EUNCONFIGURED = -1, /* the generator cannot run (not configured / not built) */
	NB_GEN_EUPSTREAM = -2,	   /* the model server failed, hung or answered garbage */
	NB_GEN_ECANCELLED = -3,	   /* on_delta asked to stop */
	NB_GEN_EINVALID = -4,	   /* structured output did not match the schema */
};

typedef struct nb_gen_result {
	char *text;		/* the answer (owned); NULL on failure */
	json_t *structured;	/* parsed structured output when a schema was given, else NULL */
	nb_gen_claim_t *claims; /* owned */
	size_t nclaims;
	bool no_answer;			 /* nothing in the context answers the question */
	int input_tokens, output_tokens; /* counted, or estimated (chars / 4) */
	const char *provider;		 /* "extractive" or "openai" (static) */
	char model[64];
	int error_code;	 /* NB_GEN_OK or an NB_GEN_E… */
	char error[256]; /* readable reason when error_code != 0 */
} nb_gen_result_t;

typedef struct nb_generator nb_generator_t;

/**
 * Makes the generator named `name` ("extractive" or "openai"). 0 and *out
 * (destroy with nb_gen_destroy), or -1 with a one-line reason in err for an
 * unknown name. "openai" reads NOTEBOOKD_LLM_* (core/config.h); without a URL
 * and a model its generations fail with NB_GEN_EUNCONFIGURED.
 */
int nb_gen_create(const char *name, nb_generator_t **out, char *err, size_t errlen);
/**
 * The process's generator, named by NOTEBOOKD_GENERATOR (nb_cfg.generator):
 * made on the first call (thread-safe) and kept for the process's life; the
 * caller does not destroy it. The setting is checked at start-up; a name
 * nb_gen_create refuses all the same is logged and "extractive" serves.
 */
nb_generator_t *nb_gen_configured(void);
/** Frees a generator (NULL is fine). */
void nb_gen_destroy(nb_generator_t *g);
/** The provider name ("extractive", "openai"). */
const char *nb_gen_provider(const nb_generator_t *g);
/**
 * Runs a generation. Always fills *res (dispose it with
 * nb_gen_result_dispose); returns res->error_code.
 */
int nb_gen_run(const nb_generator_t *g, const nb_gen_request_t *req, nb_gen_result_t *res);
/** Frees what a result owns. */
void nb_gen_result_dispose(nb_gen_result_t *res);

/*
 * Generation figures for /metrics, counted by nb_gen_run (relaxed atomics):
 * by provider (index 0 extractive, 1 openai) and use (0 chat answers, 1 study
 * outputs: quizzes and guides).
 */
#define NB_GEN_PROVIDERS 2
#define NB_GEN_USES 2
typedef struct nb_gen_stats {
	nb_histo_snap_t latency; /* every run, failed ones included */
	uint64_t errors;         /* runs that returned an error */
} nb_gen_stats_t;
/** The label of provider index i ("extractive", "openai"). */
const char *nb_gen_provider_label(int i);
/** The label of use index u ("chat", "study"). */
const char *nb_gen_use_label(int u);
/** Copies the figures of one provider and use into out. */
void nb_gen_stats_get(int provider, int use, nb_gen_stats_t *out);

/** The answer given when nothing in the sources answers the question. */
#define NB_GEN_NO_ANSWER "I could not find anything in this notebook's sources that answers this question."

/** Estimated tokens of a text (chars / 4, at least 1 for non-empty text). */
int nb_gen_estimate_tokens(const char *text);

/* Implementations (rag/gen_*.c). */
/** The extractive generator's run function (offline, deterministic). */
int nb_gen__extractive_run(const nb_gen_request_t *req, nb_gen_result_t *res);
/**
 * The OpenAI-compatible generator's run function (rag/gen_openai.c). In a
 * coroutine it parks while the answer streams in (the loop's libcurl multi
 * handle); on a plain thread it blocks.
 */
int nb_gen__openai_run(const nb_gen_request_t *req, nb_gen_result_t *res);
/**
 * Frees every event loop's libcurl multi handle and closes its libuv handles
 * (call once the loops stopped serving, before they close — the server's
 * loop_stop hook; later calls do nothing).
 */
void nb_gen_loop_cleanup(void);

#endif
