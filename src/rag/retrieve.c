/*
 * retrieve.c — building the OR query and reading the ranked chunks (see
 * retrieve.h). The SQL is in store/conversations.c.
 */
#include "rag/retrieve.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "store/conversations.h"

#define MAX_QUERY_WORDS 64

static int word_byte(unsigned char c)
{
	return isalnum(c) || c >= 0x80;
}

char *nb_rag_or_query(const char *text)
{
	nb_buf_t b = NB_BUF_INIT;
	int words = 0;
	for (const char *s = text ? text : ""; *s && words < MAX_QUERY_WORDS;) {
		while (*s && !word_byte((unsigned char)*s))
			s++;
		const char *w = s;
		while (*s && word_byte((unsigned char)*s))
			s++;
		size_t n = (size_t)(s - w);
		if (n == 0 || (n == 2 && !strncasecmp(w, "or", 2)))
			continue; /* "or" would read as the operator */
		if (words++)
			nb_buf_puts(&b, " or ");
		nb_buf_append(&b, w, n);
	}
	return nb_buf_steal(&b, NULL);
}

int nb_rag_retrieve(nb_conn_t *c, const char *notebook_id, const char *config, const char *question,
		    const char *prev_question, int limit, nb_retrieved_t *out)
{
	memset(out, 0, sizeof *out);
	char *q = nb_rag_or_query(question);
	char *h = nb_rag_or_query(prev_question);
	int rc = nb_store_chat_retrieve(c, notebook_id, config, q, h, question, limit, &out->items);
	free(q);
	free(h);
	if (rc < 0)
		return rc;
	size_t n = json_array_size(out->items);
	out->chunks = nb_xcalloc(n + 1, sizeof *out->chunks);
	for (size_t i = 0; i < n; i++) {
		json_t *it = json_array_get(out->items, i);
		const char *id = json_string_value(json_object_get(it, "chunk_id"));
		const char *sid = json_string_value(json_object_get(it, "source_id"));
		const char *text = json_string_value(json_object_get(it, "text"));
		if (!id || !sid || !text)
			continue;
		nb_gen_chunk_t *ch = &out->chunks[out->n++];
		ch->chunk_id = id;
		ch->source_id = sid;
		ch->text = text;
		ch->score = json_number_value(json_object_get(it, "score"));
	}
	return 0;
}

void nb_retrieved_dispose(nb_retrieved_t *r)
{
	free(r->chunks);
	json_decref(r->items);
	memset(r, 0, sizeof *r);
}
