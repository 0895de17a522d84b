/*
 * extract_html.c — HTML to text with libxml2's forgiving HTML parser.
 *
 * The parser builds a tree (it recovers from any markup), which is walked
 * without recursion using the parent/next pointers, so nesting costs no C
 * stack. libxml2 stops building the tree past 256 levels of nesting; that
 * cap is what keeps hostile markup (100k open tags followed by stray end
 * tags, which libxml2 matches against the whole open-tag stack) linear, so
 * it is kept, and the text after such a point is lost.
 *
 * Each element name maps to a class (skip, line break, paragraph, list item
 * "- ", table cell " | ", preformatted); text nodes go to the builder with
 * whitespace collapsed, except inside <pre>. The document's <title> becomes the first paragraph; the rest of
 * <head> and non-content elements (scripts, styles, navigation, form
 * controls, embedded objects) are dropped.
 *
 * nb_extract_html_title parses the same way and walks the same tree for the
 * document's <title>, else its first heading.
 *
 * Encoding: a document that declares a charset other than UTF-8 (or starts
 * with a UTF-16 BOM) is left to libxml2; anything else is cleaned into valid
 * UTF-8 first and parsed as UTF-8, so invalid bytes cannot make libxml2
 * switch to Latin-1 halfway through. In a declared charset, libxml2 stops
 * at the first byte it cannot convert (the text before it is kept).
 */
#include <libxml/HTMLparser.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <limits.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "rag/extract.h"
#include "rag/extract_internal.h"

enum html_class { H_INLINE = 0, H_SKIP, H_HEAD, H_TITLE, H_PARA, H_LINE, H_LI, H_BR, H_PRE, H_CELL };

typedef struct html_elem {
	const char *name;
	enum html_class cls;
} html_elem_t;

/* Sorted by name for bsearch; anything absent is inline. */
static const html_elem_t html_elems[] = {
	{"address", H_PARA},   {"article", H_PARA},   {"aside", H_PARA},
	{"audio", H_SKIP},     {"blockquote", H_PARA}, {"br", H_BR},
	{"button", H_SKIP},    {"canvas", H_SKIP},    {"caption", H_LINE},
	{"datalist", H_SKIP},  {"dd", H_LINE},        {"details", H_PARA},
	{"dialog", H_PARA},    {"div", H_LINE},       {"dl", H_PARA},
	{"dt", H_LINE},        {"embed", H_SKIP},     {"fieldset", H_PARA},
	{"figcaption", H_LINE}, {"figure", H_PARA},   {"footer", H_PARA},
	{"form", H_PARA},      {"frame", H_SKIP},     {"frameset", H_SKIP},
	{"h1", H_PARA},        {"h2", H_PARA},        {"h3", H_PARA},
	{"h4", H_PARA},        {"h5", H_PARA},        {"h6", H_PARA},
	{"head", H_HEAD},      {"header", H_PARA},    {"hr", H_PARA},
	{"iframe", H_SKIP},    {"input", H_SKIP},     {"legend", H_LINE},
	{"li", H_LI},          {"listing", H_PRE},    {"main", H_PARA},
	{"map", H_SKIP},       {"menu", H_PARA},      {"meter", H_SKIP},
	{"nav", H_SKIP},       {"noscript", H_SKIP},  {"object", H_SKIP},
	{"ol", H_PARA},        {"optgroup", H_SKIP},  {"option", H_SKIP},
	{"p", H_PARA},         {"plaintext", H_PRE},  {"pre", H_PRE},
	{"progress", H_SKIP},  {"script", H_SKIP},    {"section", H_PARA},
	{"select", H_SKIP},    {"style", H_SKIP},     {"summary", H_LINE},
	{"svg", H_SKIP},       {"table", H_PARA},     {"td", H_CELL},
	{"template", H_SKIP},  {"textarea", H_SKIP},  {"th", H_CELL},
	{"title", H_TITLE},    {"tr", H_LINE},        {"ul", H_PARA},
	{"video", H_SKIP},     {"xmp", H_PRE},
};

typedef struct html_state {
	nb_extract__tb_t *tb;
	size_t pre; /* depth of open preformatted elements */
} html_state_t;

static int elem_cmp(const void *key, const void *e)
{
	return strcmp(key, ((const html_elem_t *)e)->name);
}

static enum html_class html_class_of(const xmlNode *n)
{
	if (n->type != XML_ELEMENT_NODE || !n->name)
		return H_INLINE;
	const html_elem_t *e = bsearch(n->name, html_elems, sizeof html_elems / sizeof *html_elems,
				       sizeof *html_elems, elem_cmp);
	return e ? e->cls : H_INLINE;
}

/* The first <title> among head's children becomes the first paragraph. */
static void html_title(html_state_t *st, xmlNode *head)
{
	for (xmlNode *c = head->children; c; c = c->next) {
		if (html_class_of(c) != H_TITLE)
			continue;
		xmlChar *t = xmlNodeGetContent(c);
		if (t) {
			nb_extract__tb_text(st->tb, (const char *)t, strlen((const char *)t));
			xmlFree(t);
		}
		nb_extract__tb_break(st->tb, NB_TB_PARA);
		return;
	}
}

static void html_text(html_state_t *st, const xmlNode *n)
{
	if (!n->content)
		return;
	const char *s = (const char *)n->content;
	if (st->pre)
		nb_extract__tb_pre(st->tb, s, strlen(s));
	else
		nb_extract__tb_text(st->tb, s, strlen(s));
}

/* Handles entering node n; returns whether to walk its children. */
static int html_enter(html_state_t *st, xmlNode *n)
{
	if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
		html_text(st, n);
		return 0;
	}
	if (n->type != XML_ELEMENT_NODE)
		return 0;
	switch (html_class_of(n)) {
	case H_SKIP: case H_TITLE: return 0;
	case H_HEAD: html_title(st, n); return 0;
	case H_PARA: nb_extract__tb_break(st->tb, NB_TB_PARA); break;
	case H_LINE: case H_BR: nb_extract__tb_break(st->tb, NB_TB_LINE); break;
	case H_LI:
		nb_extract__tb_break(st->tb, NB_TB_LINE);
		nb_extract__tb_prefix(st->tb, "- ");
		break;
	case H_PRE:
		nb_extract__tb_break(st->tb, NB_TB_PARA);
		st->pre++;
		break;
	case H_CELL: nb_extract__tb_sep(st->tb, " | "); break;
	case H_INLINE: break;
	}
	return 1;
}

/* Handles leaving node n (called for every node once its children are done). */
static void html_leave(html_state_t *st, xmlNode *n)
{
	switch (html_class_of(n)) {
	case H_PARA: nb_extract__tb_break(st->tb, NB_TB_PARA); break;
	case H_LINE: case H_LI: nb_extract__tb_break(st->tb, NB_TB_LINE); break;
	case H_PRE:
		if (st->pre)
			st->pre--;
		nb_extract__tb_break(st->tb, NB_TB_PARA);
		break;
	default: break;
	}
}

/* Depth-first walk without recursion: down via children, up via parent. */
static void html_walk(html_state_t *st, xmlNode *root)
{
	xmlNode *n = root->children;
	while (n) {
		if (html_enter(st, n) && n->children) {
			n = n->children;
			continue;
		}
		while (n) {
			html_leave(st, n);
			if (n->next) {
				n = n->next;
				break;
			}
			n = n->parent;
			if (n == root || !n)
				n = NULL;
		}
	}
}

/* True if the document declares a charset that is not UTF-8 (looks at its start). */
static int html_declares_other_charset(const unsigned char *d, size_t n)
{
	if (n >= 2 && ((d[0] == 0xFF && d[1] == 0xFE) || (d[0] == 0xFE && d[1] == 0xFF)))
		return 1; /* UTF-16 BOM */
	size_t lim = n < 4096 ? n : 4096;
	for (size_t i = 0; i + 7 <= lim; i++) {
		if (strncasecmp((const char *)d + i, "charset", 7) != 0)
			continue;
		size_t j = i + 7;
		while (j < lim && (d[j] == ' ' || d[j] == '=' || d[j] == '"' || d[j] == '\''))
			j++;
		if (j >= lim)
			return 0;
		/* each name is compared only where the document has that many bytes left */
		return !((lim - j >= 5 && strncasecmp((const char *)d + j, "utf-8", 5) == 0) ||
			 (lim - j >= 4 && strncasecmp((const char *)d + j, "utf8", 4) == 0));
	}
	return 0;
}

static pthread_once_t html_once = PTHREAD_ONCE_INIT;

/* libxml2 reports some errors (encoding conversion, I/O) on stderr even with
 * HTML_PARSE_NOERROR; the server's stderr is JSON log lines only. */
static void html_quiet(void *ctx, xmlErrorPtr e)
{
	(void)ctx;
	(void)e;
}

static void html_init(void)
{
	xmlInitParser();
}

/* Parses like every HTML extraction here (see the header); NULL if nothing parsed. */
static htmlDocPtr html_parse(const unsigned char *data, size_t len)
{
	const int opts = HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING |
			 HTML_PARSE_NONET | HTML_PARSE_COMPACT;
	nb_buf_t clean = NB_BUF_INIT;
	const char *src = (const char *)data, *enc = NULL;
	pthread_once(&html_once, html_init);
	if (!html_declares_other_charset(data, len)) {
		nb_extract__clean(&clean, src, len);
		src = clean.data;
		len = clean.len;
		enc = "UTF-8";
	}
	/* The handler is per thread in libxml2: set it around this parse only. */
	xmlStructuredErrorFunc old_handler = xmlStructuredError;
	void *old_ctx = xmlStructuredErrorContext;
	xmlSetStructuredErrorFunc(NULL, html_quiet);
	htmlDocPtr doc = len ? htmlReadMemory(src, (int)len, NULL, enc, opts) : NULL;
	xmlSetStructuredErrorFunc(old_ctx, old_handler);
	nb_buf_dispose(&clean);
	return doc;
}

int nb_extract__html(nb_extract__tb_t *tb, const unsigned char *data, size_t len, char *err,
		     size_t errlen)
{
	if (len > INT_MAX) {
		nb_extract__set_err(err, errlen, "could not read HTML: document is too large");
		return -1;
	}
	htmlDocPtr doc = html_parse(data, len);
	if (!doc)
		return 0; /* nothing parsed: the caller reports that no text was found */
	html_state_t st = {tb, 0};
	html_walk(&st, (xmlNode *)doc);
	xmlFreeDoc(doc);
	return 0;
}

/* The element's text with whitespace runs collapsed to one space, trimmed;
 * NULL when blank. */
static char *collapsed_text(xmlNode *n)
{
	xmlChar *t = xmlNodeGetContent(n);
	if (!t)
		return NULL;
	nb_buf_t b = NB_BUF_INIT;
	bool space = false;
	for (const unsigned char *p = t; *p; p++) {
		if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == '\v') {
			space = b.len > 0;
			continue;
		}
		if (space)
			nb_buf_putc(&b, ' ');
		space = false;
		nb_buf_putc(&b, (char)*p);
	}
	xmlFree(t);
	if (!b.len) {
		nb_buf_dispose(&b);
		return NULL;
	}
	return nb_buf_steal(&b, NULL);
}

static bool is_heading(const xmlNode *n)
{
	const char *name = (const char *)n->name;
	return name && (name[0] == 'h' || name[0] == 'H') && name[1] >= '1' && name[1] <= '6' && !name[2];
}

char *nb_extract_html_title(const unsigned char *data, size_t len)
{
	if (len > NB_HTML_TITLE_SCAN)
		len = NB_HTML_TITLE_SCAN; /* the recovering parser closes what the cut left open */
	htmlDocPtr doc = html_parse(data, len);
	if (!doc)
		return NULL;
	char *title = NULL, *heading = NULL;
	xmlNode *root = (xmlNode *)doc, *n = root->children;
	while (n && !title) {
		bool text_inside = false;
		if (n->type == XML_ELEMENT_NODE && n->name) {
			if (!strcasecmp((const char *)n->name, "title"))
				title = collapsed_text(n);
			else if (!heading && is_heading(n))
				heading = collapsed_text(n);
			else
				text_inside = html_class_of(n) != H_SKIP;
		}
		if (text_inside && n->children) {
			n = n->children;
			continue;
		}
		while (n) {
			if (n->next) {
				n = n->next;
				break;
			}
			n = n->parent;
			if (n == root || !n)
				n = NULL;
		}
	}
	xmlFreeDoc(doc);
	if (title) {
		free(heading);
		return title;
	}
	return heading;
}
