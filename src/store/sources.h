/*
 * sources.h — sources, their documents (deduplicated bytes and extracted
 * text) and their chunks, plus full-text search over a notebook.
 *
 * Reads are scoped to the owner through the source's notebook: another
 * user's source, a trashed source and any source of a trashed notebook are
 * NB_ENOTFOUND. Documents are per user and unique by SHA-256, so the same
 * bytes are stored, and extracted, once.
 */
#ifndef NB_STORE_SOURCES_H
#define NB_STORE_SOURCES_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/jsonw.h"
#include "db/pool.h"
#include "store/chunk_span.h"

/**
 * The user's document with these bytes: found by SHA-256, or inserted.
 * Writes its id and whether its text is already extracted.
 */
int nb_store_document_upsert(nb_conn_t *c, const char *user_id, const unsigned char sha256[32], const char *mime,
			     const void *bytes, size_t len, char doc_id[37], bool *has_text);
/**
 * Inserts a pending source; *out is its JSON. document_id and url may be
 * NULL. title_derived: the server chose the title (fetching a URL source's
 * page may then replace it with the page's own title).
 */
int nb_store_source_create(nb_conn_t *c, const char *id, const char *notebook_id, const char *document_id,
			   const char *title, bool title_derived, const char *kind, const char *url, long byte_size,
			   json_t **out);
/** Sets a live source's title (the user's from now on); *out is the source. */
int nb_store_source_rename(nb_conn_t *c, const char *owner, const char *id, const char *title, json_t **out);
/**
 * Takes a source out of the trash (a no-op for a live one); *out is the
 * source. NB_ENOTFOUND once purged, for another user's, and while its
 * notebook is in the trash.
 */
int nb_store_source_restore(nb_conn_t *c, const char *owner, const char *id, json_t **out);
/**
 * Sets a failed source back to pending (a URL source forgets its fetched
 * page); *out is the source and document_id its document ("" for none), for
 * the new ingestion job the caller enqueues in the same transaction.
 * NB_ECONFLICT when the source is not failed, NB_ENOTFOUND when not visible.
 */
int nb_store_source_retry(nb_conn_t *c, const char *owner, const char *id, json_t **out, char document_id[37]);
/** Replaces the title of a source whose title the server chose (no-op otherwise). */
int nb_store_source_set_derived_title(nb_conn_t *c, const char *id, const char *title);
/** One source (live, in a live notebook of the owner). */
int nb_store_source_get(nb_conn_t *c, const char *owner, const char *id, json_t **out);
/** A page of a notebook's live sources, oldest first: binary rows for nb_store_sources_write (caller owns). */
int nb_store_sources_list(nb_conn_t *c, const char *owner, const char *notebook_id, int limit, const char *after_ts,
			  const char *after_id, PGresult **rows);
/** Moves a source to the trash (its chunks leave search). */
int nb_store_source_trash(nb_conn_t *c, const char *owner, const char *id);
/** A page of a source's chunks in order (after_index -1: the first): binary rows for nb_store_chunks_write. */
int nb_store_chunks_list(nb_conn_t *c, const char *owner, const char *source_id, int limit, int after_index,
			 PGresult **rows);

/* Ingestion (the worker side; not scoped to an owner: the job names the source). */

typedef struct nb_ingest_info {
	char notebook_id[37], user_id[37], document_id[37]; /* document_id "" when none yet */
	char kind[16];
	char *url;      /* owned, or NULL */
	char *mime;     /* the document's, owned, or NULL */
	bool has_text;  /* the document's text is extracted already */
	bool gone;      /* the source or its notebook is in the trash or deleted */
} nb_ingest_info_t;

/** Loads what the ingestion job needs to know about a source. NB_ENOTFOUND if the row is gone. */
int nb_store_ingest_load(nb_conn_t *c, const char *source_id, nb_ingest_info_t *out);
/** Frees the strings of info. */
void nb_ingest_info_dispose(nb_ingest_info_t *info);
/** The document's bytes (binary, malloc'd copy in *bytes). */
int nb_store_document_content(nb_conn_t *c, const char *doc_id, unsigned char **bytes, size_t *len);
/** The document's extracted text and page offsets (malloc'd). */
int nb_store_document_text(nb_conn_t *c, const char *doc_id, char **text, int **page_offsets, int *page_count);
/** Stores extracted text once (a concurrent extraction of the same document keeps the first). */
int nb_store_document_set_text(nb_conn_t *c, const char *doc_id, const char *text, const int *page_offsets,
			       int page_count);
/** Sets status (and error, for failed). */
int nb_store_source_set_status(nb_conn_t *c, const char *source_id, const char *status, const char *error);
/** Attaches the fetched document of a URL source. */
int nb_store_source_set_document(nb_conn_t *c, const char *source_id, const char *doc_id, long byte_size);
/**
 * Replaces the source's chunks with these (text[byte_start..byte_end) of
 * `text`) and marks the source ready with its counts — one transaction,
 * batched inserts. Safe to re-run (a retried job).
 */
int nb_store_chunks_replace(nb_conn_t *c, const char *source_id, const char *notebook_id, const char *text,
			    const nb_chunk_t *chunks, size_t n, int page_count);

/** A search box query, split by the caller (api/search.c). */
typedef struct nb_search_query {
	const char *head;  /* websearch syntax (all words) or words (any); "" for none */
	const char *last;  /* the word being typed, matched as a prefix; NULL for none */
	bool match_any;	   /* any word may match (ranked), instead of all */
} nb_search_query_t;

/**
 * Full-text search over the notebook's live chunks in the notebook's
 * language, ranked (cover density, length-normalised), at most limit hits,
 * best first, with snippets whose matches are wrapped in \x01 … \x02.
 * *rows: binary rows for nb_store_search_write (caller owns).
 */
int nb_store_search(nb_conn_t *c, const char *notebook_id, const nb_search_query_t *q, int limit, PGresult **rows);
/**
 * Writes the search answer {items: [{chunk_id, source_id, source_title,
 * index, page, score, snippet}], next_cursor: null, match} from those rows:
 * each snippet HTML-escaped with its marks as <mark>…</mark> (safe to insert
 * as HTML), the score as jansson printed it (JSON_REAL_PRECISION(6)).
 */
void nb_store_search_write(nb_jsonw_t *w, const PGresult *r, bool match_any);

/**
 * nb_resp_list_writer callbacks (api/util.h): write the source / chunk of
 * `row` of a list result, with its cursor key (created_at as PostgreSQL
 * prints it / the chunk index) and id.
 */
void nb_store_sources_write(nb_jsonw_t *w, const PGresult *r, int row, char key_out[40], char id_out[37]);
void nb_store_chunks_write(nb_jsonw_t *w, const PGresult *r, int row, char key_out[40], char id_out[37]);

#endif
