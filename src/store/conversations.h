/*
 * conversations.h — the chat aggregate: conversations, their messages, the
 * chunks chat retrieves, and generation records.
 *
 * Every read is scoped to an owner: another user's conversation, one in the
 * trash and any conversation of a notebook in the trash are NB_ENOTFOUND,
 * exactly like one that does not exist. Lists are keyset pages (limit + 1
 * binary rows, written by the nb_store_*_write functions) and run one statement however many
 * conversations or messages there are: message_count and last_message are
 * correlated subqueries over messages_conversation_live_idx.
 *
 * An answer is stored by nb_store_chat_save in one transaction: the
 * conversation is locked (and must still be live), the cited chunks are read
 * back inside it for the caller's verifier, then the user message, the
 * assistant message, the generation record and the conversation's activity
 * time are written together — nothing is ever half-stored.
 */
#ifndef NB_STORE_CONVERSATIONS_H
#define NB_STORE_CONVERSATIONS_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>

#include "core/jsonw.h"
#include "db/pool.h"

/** Creates a conversation in a live notebook of the owner (title may be NULL); *out is its JSON. */
int nb_store_conversation_create(nb_conn_t *c, const char *owner, const char *id, const char *notebook_id,
				 const char *title, json_t **out);
/**
 * One live conversation of the owner, in a live notebook: *rows is its binary
 * row for nb_store_conversation_write (caller owns); NB_ENOTFOUND (and NULL)
 * when it is not visible.
 */
int nb_store_conversation_get(nb_conn_t *c, const char *owner, const char *id, PGresult **rows);
/**
 * A page of a notebook's live conversations, most recently active first
 * (last message, else creation). The caller checks the notebook first.
 * *rows: binary rows for nb_store_conversations_write (caller owns).
 */
int nb_store_conversations_list(nb_conn_t *c, const char *owner, const char *notebook_id, int limit,
				const char *after_ts, const char *after_id, PGresult **rows);
/** Moves a live conversation to the trash. NB_ENOTFOUND when not visible. */
int nb_store_conversation_trash(nb_conn_t *c, const char *owner, const char *id);
/** 0 and the conversation's notebook id when it is visible to the owner, else NB_ENOTFOUND. */
int nb_store_conversation_check(nb_conn_t *c, const char *owner, const char *id, char notebook_id[37]);
/** A page of a conversation's messages, oldest first (the caller checks the conversation): binary rows for nb_store_messages_write. */
int nb_store_messages_list(nb_conn_t *c, const char *conversation_id, int limit, const char *after_ts,
			   const char *after_id, PGresult **rows);

/**
 * What an answer needs: the conversation's notebook id and its last
 * `turns` messages as a JSON array of {role, content}, oldest first (*history,
 * owned by the caller). NB_ENOTFOUND when the conversation is not visible.
 */
int nb_store_chat_context(nb_conn_t *c, const char *owner, const char *conversation_id, int turns, char notebook_id[37],
			  json_t **history);

/**
 * Chat retrieval: the notebook's live chunks of live, ready sources that
 * match `query` or `history_query` (websearch syntax, the caller ORs the
 * words), ranked by ts_rank_cd with length normalisation (1|32), history
 * matches counting half. `question` (plain text) finds the chunks holding
 * all its words first, so that capping the candidates (2 × 2,500, to bound
 * the cost on large notebooks) keeps the precise matches. `config` is the
 * text-search configuration, or NULL for the notebook's (nb_ts_config of its language). *items: array of {chunk_id, source_id, text,
 * score}, best first, at most limit.
 */
int nb_store_chat_retrieve(nb_conn_t *c, const char *notebook_id, const char *config, const char *query,
			   const char *history_query, const char *question, int limit, json_t **items);

/** A generation record to store (strings may be NULL where the column allows). */
typedef struct nb_generation_rec {
	const char *kind;     /* chat, quiz, study_guide, source_guide */
	const char *provider; /* extractive, openai */
	const char *model;
	int input_tokens, output_tokens, latency_ms, dropped_citations;
	bool failed;
	const char *error; /* NULL when succeeded */
} nb_generation_rec_t;

/** Chunk texts read back for verification: parallel arrays, owned by the struct. */
typedef struct nb_chat_chunks {
	int n;
	char **ids, **source_ids, **texts;
} nb_chat_chunks_t;
/** Frees what nb_chat_chunks_t holds. */
void nb_chat_chunks_dispose(nb_chat_chunks_t *cc);

/**
 * Verifies claims and builds the assistant's citations: called by
 * nb_store_chat_save inside its transaction with the chunks (among
 * chunk_ids) that belong to live, ready sources of the notebook. Returns the
 * citations array to store (a new reference), writes how many claims it
 * dropped, and may replace *answer (a static or caller-owned string) when
 * nothing that supported it checked out.
 */
typedef json_t *(*nb_chat_verify_fn)(void *ud, const nb_chat_chunks_t *chunks, int *dropped, const char **answer);

/**
 * Stores one question and its answer in one transaction (see the header).
 * chunk_ids: the ids the answer claims to cite (JSON array of strings).
 * *user_msg and *assistant_msg get the stored messages' JSON (caller owns);
 * rec->dropped_citations is set from the verifier. NB_ENOTFOUND when the
 * conversation went to the trash meanwhile; on any error nothing is written.
 */
int nb_store_chat_save(nb_conn_t *c, const char *owner, const char *conversation_id, const char *notebook_id,
		       const char *question, const char *answer, json_t *chunk_ids, nb_chat_verify_fn verify, void *ud,
		       nb_generation_rec_t *rec, json_t **user_msg, json_t **assistant_msg);

/** Stores a generation record alone (a failed generation: no messages are stored). */
int nb_store_generation_insert(nb_conn_t *c, const char *owner, const char *notebook_id, const char *conversation_id,
			       const nb_generation_rec_t *rec);

/**
 * A page of the owner's generation records, newest first, optionally of one
 * kind and/or notebook (NULL: any); records of notebooks in the trash are
 * left out. Rows for nb_resp_list_rows.
 */
int nb_store_generations_list(nb_conn_t *c, const char *owner, const char *kind, const char *notebook_id, int limit,
			      const char *after_ts, const char *after_id, PGresult **rows);

/** Writes the conversation of `row` of a nb_store_conversation_get or _list result. */
void nb_store_conversation_write(nb_jsonw_t *w, const PGresult *r, int row);
/**
 * nb_row_writer_fn callbacks (api/util.h): the conversation / message of
 * `row` of a list result, with its cursor key (activity time / created_at as
 * PostgreSQL prints it under TimeZone UTC) and id.
 */
void nb_store_conversations_write(nb_jsonw_t *w, const PGresult *r, int row, char key_out[40], char id_out[37]);
void nb_store_messages_write(nb_jsonw_t *w, const PGresult *r, int row, char key_out[40], char id_out[37]);

#endif
