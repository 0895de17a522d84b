/*
 * shapes.h — the API's JSON shapes as SQL expressions (API.md, Resources).
 *
 * PostgreSQL renders each resource with json_build_object, so every endpoint
 * and the export answer the same shape, defined once here. Each macro takes
 * the alias of its table in the query.
 */
#ifndef NB_STORE_SHAPES_H
#define NB_STORE_SHAPES_H

#define NB_SQL_SOURCE_JSON(s)                                                                               \
	"json_build_object('id', " s ".id, 'notebook_id', " s ".notebook_id, 'document_id', " s ".document_id," \
	" 'kind', " s ".kind, 'title', " s ".title, 'url', " s ".url, 'status', " s ".status,"                  \
	" 'error', " s ".error, 'byte_size', " s ".byte_size, 'chunk_count', " s ".chunk_count,"               \
	" 'page_count', " s ".page_count, 'summary', " s ".summary, 'topics', " s ".topics,"                           \
	" 'created_at', nb_ts(" s ".created_at), 'updated_at', nb_ts(" s ".updated_at))"

/* Without source_count and sources: the callers add those. */
#define NB_SQL_NOTEBOOK_FIELDS(n)                                                                         \
	"'id', " n ".id, 'title', " n ".title, 'description', " n ".description, 'language', " n ".language," \
	" 'created_at', nb_ts(" n ".created_at), 'updated_at', nb_ts(" n ".updated_at),"                     \
	" 'deleted_at', nb_ts(" n ".deleted_at)"

#define NB_SQL_MESSAGE_JSON(m)                                                                           \
	"json_build_object('id', " m ".id, 'conversation_id', " m ".conversation_id, 'role', " m ".role,"  \
	" 'content', " m ".content, 'citations', " m ".citations, 'created_at', nb_ts(" m ".created_at))"

/* A conversation with its live message count and last message (correlated subqueries, one statement). */
#define NB_SQL_CONVERSATION_JSON(c)                                                                          \
	"json_build_object('id', " c ".id, 'notebook_id', " c ".notebook_id, 'title', " c ".title,"          \
	" 'message_count', (SELECT count(*) FROM messages m WHERE m.conversation_id = " c ".id"              \
	"                   AND m.deleted_at IS NULL),"                                                          \
	" 'last_message', (SELECT " NB_SQL_MESSAGE_JSON("m") " FROM messages m"                                \
	"                  WHERE m.conversation_id = " c ".id AND m.deleted_at IS NULL"                         \
	"                  ORDER BY m.created_at DESC, m.id DESC LIMIT 1),"                                    \
	" 'created_at', nb_ts(" c ".created_at), 'updated_at', nb_ts(" c ".updated_at))"

/*
 * The reason of a pending quiz's or study guide's job that died without its
 * handler recording it (a worker killed on the last attempt, buried by the
 * reaper), or NULL: a pending resource whose job is dead shows as failed with
 * it. NB_SQL_STUDY_JSON evaluates it once per row, in a sub-select (OFFSET 0
 * keeps the planner from pulling it up into each use), and shapes the
 * object around it as `d.dead`.
 */
#define NB_SQL_DEAD_JOB(col, t)                                                                       \
	"CASE WHEN " t ".status = 'pending' THEN"                                                          \
	" (SELECT coalesce(j.last_error, 'the job gave up') FROM jobs j WHERE j." col " = " t ".id"    \
	" AND j.status = 'dead' ORDER BY j.created_at DESC LIMIT 1) END"

#define NB_SQL_STUDY_JSON(t, col, fields)                                                                  \
	"(SELECT json_build_object('id', " t ".id, 'notebook_id', " t ".notebook_id, 'title', " t ".title," \
	" 'status', CASE WHEN d.dead IS NOT NULL THEN 'failed' ELSE " t ".status END,"                       \
	" 'error', coalesce(" t ".error, d.dead),"                                                              \
	" 'job_id', (SELECT j.id FROM jobs j WHERE j." col " = " t ".id ORDER BY j.created_at DESC LIMIT 1),"  \
	fields ", 'created_at', nb_ts(" t ".created_at), 'updated_at', nb_ts(" t ".updated_at))"                \
	" FROM (SELECT " NB_SQL_DEAD_JOB(col, t) " AS dead OFFSET 0) d)"

#define NB_SQL_QUIZ_JSON(q) NB_SQL_STUDY_JSON(q, "quiz_id", " 'questions', " q ".questions")

#define NB_SQL_STUDY_GUIDE_JSON(g)                                                                          \
	NB_SQL_STUDY_JSON(g, "study_guide_id",                                                              \
			  " 'summary', " g ".summary, 'key_terms', " g ".key_terms,"                           \
			  " 'review_questions', " g ".review_questions, 'markdown', " g ".markdown")

#define NB_SQL_GENERATION_JSON(h)                                                                          \
	"json_build_object('id', " h ".id, 'kind', " h ".kind, 'notebook_id', " h ".notebook_id,"            \
	" 'conversation_id', " h ".conversation_id, 'quiz_id', " h ".quiz_id,"                                \
	" 'study_guide_id', " h ".study_guide_id, 'source_id', " h ".source_id,"                              \
	" 'provider', " h ".provider, 'model', " h ".model,"                                                   \
	" 'input_tokens', " h ".input_tokens, 'output_tokens', " h ".output_tokens,"                         \
	" 'latency_ms', " h ".latency_ms, 'dropped_citations', " h ".dropped_citations,"                      \
	" 'status', " h ".status, 'error', " h ".error,"                                                        \
	" 'created_at', nb_ts(" h ".created_at))"

#endif
