/*
 * extract_internal.h — what the files of the extract module share (not a
 * public interface: include extract.h instead).
 *
 * Each kind's extractor writes rough text into a text builder (nb_extract__tb_t)
 * that already knows about paragraphs and lines; extract.c then puts the
 * result in the normal form promised by extract.h. Keeping the normal form in
 * one place means the per-kind code can be sloppy about blank lines and
 * trailing spaces.
 */
#ifndef NB_RAG_EXTRACT_INTERNAL_H
#define NB_RAG_EXTRACT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "rag/extract.h"

/* Break levels a builder can be asked for. */
#define NB_TB_LINE 1
#define NB_TB_PARA 2

/*
 * A text builder: inline text with collapsed whitespace, verbatim text, and
 * line/paragraph breaks that are only emitted once more text follows (so
 * there are never leading or doubled breaks).
 */
typedef struct nb_extract__tb {
	nb_buf_t out;
	int brk;          /* pending break: 0, NB_TB_LINE or NB_TB_PARA */
	bool space;       /* a collapsed space is pending */
	bool line_empty;  /* nothing emitted on the current line yet */
	char prefix[40];  /* emitted before the next line's first text ("- "), "" if none */
	const char *sep;  /* pending separator replacing the space (" | "), NULL if none */
} nb_extract__tb_t;

/** Initialises an empty builder. */
void nb_extract__tb_init(nb_extract__tb_t *tb);
/** Asks for a line (NB_TB_LINE) or paragraph (NB_TB_PARA) break before the next text. */
void nb_extract__tb_break(nb_extract__tb_t *tb, int level);
/** Sets the prefix of the next line (copied, truncated to fit); dropped if no text follows. */
void nb_extract__tb_prefix(nb_extract__tb_t *tb, const char *prefix);
/** Asks for a separator (a static string) between the current line's text and the next text. */
void nb_extract__tb_sep(nb_extract__tb_t *tb, const char *sep);
/** Appends inline text: runs of whitespace (ASCII and U+00A0) become one space. */
void nb_extract__tb_text(nb_extract__tb_t *tb, const char *s, size_t n);
/** Appends text verbatim (preformatted), newlines included. */
void nb_extract__tb_pre(nb_extract__tb_t *tb, const char *s, size_t n);

/**
 * Appends s[0..n) to out made safe: invalid UTF-8 replaced by U+FFFD, NUL
 * bytes removed, every U+FEFF (BOM) dropped, CRLF and CR turned into LF.
 */
void nb_extract__clean(nb_buf_t *out, const char *s, size_t n);
/**
 * Appends clean text s[0..n) to out in the normal form: trailing spaces
 * (ASCII and Unicode) of lines trimmed, blank lines collapsed into one
 * paragraph break, no blank line at the start or the end.
 */
void nb_extract__normalize(nb_buf_t *out, const char *s, size_t n);
/** Copies msg into err[0..errlen) (truncating); err may be NULL. */
void nb_extract__set_err(char *err, size_t errlen, const char *msg);

/** Markdown (clean UTF-8) to rough text in tb. */
void nb_extract__markdown(nb_extract__tb_t *tb, const char *s, size_t n);
/** HTML (raw bytes) to rough text in tb; -1 with a reason in err when it cannot be parsed. */
int nb_extract__html(nb_extract__tb_t *tb, const unsigned char *data, size_t len, char *err,
		     size_t errlen);
/** PDF to normal-form text with page offsets in *out; -1 with a reason in err. */
int nb_extract__pdf(const unsigned char *data, size_t len, nb_extracted_t *out, char *err,
		    size_t errlen);

#endif
