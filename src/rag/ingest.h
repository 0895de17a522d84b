/*
 * ingest.h — the ingestion job (kind "ingest_source").
 */
#ifndef NB_RAG_INGEST_H
#define NB_RAG_INGEST_H

/** Registers the ingest_source handler with the job queue (before workers start). */
void nb_ingest_register(void);

#endif
