/*
 * extract_md.c — Markdown to text with libcmark.
 *
 * The document is parsed into cmark's tree and walked with cmark_iter (which
 * is iterative, so deeply nested quotes or lists cannot exhaust the C stack).
 * Structure survives as line and paragraph breaks: headings and paragraphs
 * are paragraphs, list items are lines prefixed "- " (or "N. " in ordered
 * lists, indented two spaces per nesting level), code blocks are verbatim
 * paragraphs. Markup disappears: no '#', emphasis markers, URLs or raw HTML;
 * link text, image alt text and inline code text stay.
 */
#include <cmark.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "rag/extract_internal.h"

/* Nested lists deeper than this are indented as if at this depth. */
#define MD_MAX_INDENT 8

typedef struct md_state {
	nb_extract__tb_t *tb;
	int *next_num; /* per open list: the next item number, or -1 for bullets */
	size_t depth, cap;
} md_state_t;

static void md_list_enter(md_state_t *st, cmark_node *list)
{
	if (st->depth == st->cap) {
		st->cap = st->cap ? st->cap * 2 : 16;
		st->next_num = nb_xrealloc(st->next_num, st->cap * sizeof *st->next_num);
	}
	int ordered = cmark_node_get_list_type(list) == CMARK_ORDERED_LIST;
	st->next_num[st->depth++] = ordered ? cmark_node_get_list_start(list) : -1;
}

static void md_item_enter(md_state_t *st)
{
	char prefix[40];
	size_t indent = st->depth > 0 ? st->depth - 1 : 0;
	if (indent > MD_MAX_INDENT)
		indent = MD_MAX_INDENT;
	memset(prefix, ' ', indent * 2);
	int num = st->depth > 0 ? st->next_num[st->depth - 1] : -1;
	if (num >= 0) {
		snprintf(prefix + indent * 2, sizeof prefix - indent * 2, "%d. ", num);
		if (num < 999999999)
			st->next_num[st->depth - 1]++;
	} else {
		snprintf(prefix + indent * 2, sizeof prefix - indent * 2, "- ");
	}
	nb_extract__tb_break(st->tb, NB_TB_LINE);
	nb_extract__tb_prefix(st->tb, prefix);
}

/* Containers: what to do on entering and on leaving. */
static void md_container(md_state_t *st, cmark_node *node, int entering)
{
	nb_extract__tb_t *tb = st->tb;
	cmark_node *parent = cmark_node_parent(node);
	int in_item = parent && cmark_node_get_type(parent) == CMARK_NODE_ITEM;
	switch (cmark_node_get_type(node)) {
	case CMARK_NODE_LIST:
		if (entering)
			md_list_enter(st, node);
		else if (st->depth > 0)
			st->depth--;
		nb_extract__tb_break(tb, in_item ? NB_TB_LINE : NB_TB_PARA);
		break;
	case CMARK_NODE_ITEM:
		if (entering)
			md_item_enter(st);
		else
			nb_extract__tb_break(tb, NB_TB_LINE);
		break;
	case CMARK_NODE_PARAGRAPH:
		nb_extract__tb_break(tb, in_item ? NB_TB_LINE : NB_TB_PARA);
		break;
	case CMARK_NODE_HEADING:
	case CMARK_NODE_BLOCK_QUOTE:
		nb_extract__tb_break(tb, NB_TB_PARA);
		break;
	default: /* document, emphasis, links, images: their text flows through */
		break;
	}
}

/* Leaves (they only get an enter event). */
static void md_leaf(md_state_t *st, cmark_node *node)
{
	nb_extract__tb_t *tb = st->tb;
	const char *lit;
	switch (cmark_node_get_type(node)) {
	case CMARK_NODE_TEXT:
	case CMARK_NODE_CODE:
		lit = cmark_node_get_literal(node);
		if (lit)
			nb_extract__tb_text(tb, lit, strlen(lit));
		break;
	case CMARK_NODE_SOFTBREAK:
		nb_extract__tb_text(tb, " ", 1);
		break;
	case CMARK_NODE_LINEBREAK:
		nb_extract__tb_break(tb, NB_TB_LINE);
		break;
	case CMARK_NODE_CODE_BLOCK:
		lit = cmark_node_get_literal(node);
		nb_extract__tb_break(tb, NB_TB_PARA);
		if (lit)
			nb_extract__tb_pre(tb, lit, strlen(lit));
		nb_extract__tb_break(tb, NB_TB_PARA);
		break;
	case CMARK_NODE_THEMATIC_BREAK:
		nb_extract__tb_break(tb, NB_TB_PARA);
		break;
	default: /* raw HTML blocks and inlines are dropped */
		break;
	}
}

static int md_is_leaf(cmark_node_type t)
{
	return t == CMARK_NODE_TEXT || t == CMARK_NODE_CODE || t == CMARK_NODE_SOFTBREAK ||
	       t == CMARK_NODE_LINEBREAK || t == CMARK_NODE_CODE_BLOCK ||
	       t == CMARK_NODE_THEMATIC_BREAK || t == CMARK_NODE_HTML_BLOCK ||
	       t == CMARK_NODE_HTML_INLINE;
}

void nb_extract__markdown(nb_extract__tb_t *tb, const char *s, size_t n)
{
	md_state_t st = {tb, NULL, 0, 0};
	cmark_node *doc = cmark_parse_document(s, n, CMARK_OPT_DEFAULT);
	if (!doc)
		return;
	cmark_iter *it = cmark_iter_new(doc);
	cmark_event_type ev;
	while ((ev = cmark_iter_next(it)) != CMARK_EVENT_DONE) {
		cmark_node *node = cmark_iter_get_node(it);
		if (md_is_leaf(cmark_node_get_type(node)))
			md_leaf(&st, node);
		else
			md_container(&st, node, ev == CMARK_EVENT_ENTER);
	}
	cmark_iter_free(it);
	cmark_node_free(doc);
	free(st.next_num);
}
