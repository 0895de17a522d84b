/*
 * lang.h — a notebook's language: an ISO 639-1 code, and whether
 * PostgreSQL stems it.
 *
 * The code decides the text-search configuration its chunks are indexed
 * and searched with (the SQL function nb_ts_config, migration 0003, maps
 * codes to configurations; this file only knows which codes exist and which
 * of them stem, for validation and for documentation).
 */
#ifndef NB_RAG_LANG_H
#define NB_RAG_LANG_H

#include <stdbool.h>

/** The language of a notebook made without one. */
#define NB_LANG_DEFAULT "en"

/** True if code is one of the 183 two-letter ISO 639-1 codes (lower case). */
bool nb_lang_valid(const char *code);

/**
 * The PostgreSQL 15 text-search configuration for a valid code
 * ("english", "german", …), or "simple" for a language PostgreSQL does not
 * stem. Static string. Agrees with nb_ts_config() in SQL.
 */
const char *nb_lang_ts_config(const char *code);

#endif
