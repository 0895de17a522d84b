/*
 * words.c — splitting text into words (see words.h).
 */
#include "rag/words.h"

#include <ctype.h>
#include <stdbool.h>

static bool word_byte(unsigned char c)
{
	return isalnum(c) || c >= 0x80;
}

size_t nb_rag_next_word(const char *s, size_t end, size_t *pos, char *out, size_t cap)
{
	size_t i = *pos;
	while (i < end && !word_byte((unsigned char)s[i]))
		i++;
	size_t k = 0;
	while (i < end &&
	       (word_byte((unsigned char)s[i]) || (s[i] == '\'' && i + 1 < end && isalpha((unsigned char)s[i + 1])))) {
		if (k + 1 < cap)
			out[k++] = (char)tolower((unsigned char)s[i]);
		i++;
	}
	if (cap)
		out[k] = '\0';
	*pos = i;
	return k;
}
