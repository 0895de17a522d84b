/*
 * words.h — splitting text into words for the generators.
 *
 * One definition of a word for every generator (chat answers, quizzes,
 * study and source guides): a run of ASCII letters and digits and of
 * non-ASCII bytes (so UTF-8 letters stay inside words), with an apostrophe
 * kept when a letter follows it ("cell's"). Each generator keeps its own stop
 * words and normalisation on top.
 */
#ifndef NB_RAG_WORDS_H
#define NB_RAG_WORDS_H

#include <stddef.h>

/**
 * Copies the next word of s[*pos..end), lower-cased (ASCII), into out (at
 * most cap - 1 bytes are kept, NUL-terminated) and moves *pos past it.
 * Returns the number of bytes kept, or 0 at the end of the text.
 */
size_t nb_rag_next_word(const char *s, size_t end, size_t *pos, char *out, size_t cap);

#endif
