/*
 * extract_pdf.c — PDF to text with poppler-glib, one page at a time.
 *
 * Each page's text (poppler_page_get_text) is put in normal form on its own
 * and pages are joined with a paragraph break, so the offset of every page
 * in the final text is known as it is appended; offsets are counted in code
 * points because that is what citations and chunks use. An empty page gets
 * the offset where the next page's text starts (or the end of the text), so
 * offsets never decrease.
 *
 * The user sees a short reason ("could not read PDF: file is damaged");
 * poppler's own message goes to the log. Note that poppler itself may print
 * syntax warnings on stderr for damaged files; poppler-glib has no way to
 * silence them.
 */
#include <limits.h>
#include <poppler.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/utf8.h"
#include "rag/extract_internal.h"

static pthread_mutex_t pdf_open_lock = PTHREAD_MUTEX_INITIALIZER;

typedef struct pdf_text {
	nb_buf_t text;
	size_t cps;      /* code points in text */
	int *offsets;    /* one per page */
	int pending;     /* first page whose offset is not known yet */
} pdf_text_t;

static int clamp_int(size_t v)
{
	return v > INT_MAX ? INT_MAX : (int)v;
}

/* Appends page `index`'s raw text (may be NULL) to the document text. */
static void pdf_add_page(pdf_text_t *pt, int index, const char *raw)
{
	nb_buf_t clean = NB_BUF_INIT, norm = NB_BUF_INIT;
	if (raw) {
		nb_extract__clean(&clean, raw, strlen(raw));
		nb_extract__normalize(&norm, clean.data, clean.len);
	}
	if (norm.len > 0) {
		if (pt->text.len > 0) {
			nb_buf_append(&pt->text, "\n\n", 2);
			pt->cps += 2;
		}
		for (; pt->pending <= index; pt->pending++)
			pt->offsets[pt->pending] = clamp_int(pt->cps);
		nb_buf_append(&pt->text, norm.data, norm.len);
		pt->cps += nb_utf8_count(norm.data, norm.len);
	}
	nb_buf_dispose(&clean);
	nb_buf_dispose(&norm);
}

/* Maps poppler's failure to a short reason for the user and logs the detail. */
static void pdf_open_error(GError *gerr, char *err, size_t errlen)
{
	if (gerr && gerr->domain == POPPLER_ERROR && gerr->code == POPPLER_ERROR_ENCRYPTED)
		nb_extract__set_err(err, errlen, "could not read PDF: file is password-protected");
	else
		nb_extract__set_err(err, errlen, "could not read PDF: file is damaged");
	nb_info("pdf: could not open document: %s", gerr ? gerr->message : "unknown error");
}

/* PDF files start with "%PDF-" within their first 1024 bytes. */
static int looks_like_pdf(const unsigned char *data, size_t len)
{
	return memmem(data, len < 1024 ? len : 1024, "%PDF-", 5) != NULL;
}

static void pdf_read_pages(PopplerDocument *doc, pdf_text_t *pt, int pages)
{
	for (int i = 0; i < pages; i++) {
		PopplerPage *page = poppler_document_get_page(doc, i);
		char *raw = page ? poppler_page_get_text(page) : NULL;
		pdf_add_page(pt, i, raw);
		g_free(raw);
		if (page)
			g_object_unref(page);
	}
	for (; pt->pending < pages; pt->pending++)
		pt->offsets[pt->pending] = clamp_int(pt->cps);
}

int nb_extract__pdf(const unsigned char *data, size_t len, nb_extracted_t *out, char *err,
		    size_t errlen)
{
	if (!looks_like_pdf(data, len)) {
		nb_extract__set_err(err, errlen, "could not read PDF: not a PDF file");
		return -1;
	}
	GError *gerr = NULL;
	/* Static bytes: the document is released before data goes away. */
	GBytes *bytes = g_bytes_new_static(data, len);
	/* poppler-glib sets up its process-wide parameters on the first open,
	 * not under a lock in every version: opening under ours keeps
	 * concurrent jobs safe at the cost of serialising the (short) open. */
	pthread_mutex_lock(&pdf_open_lock);
	PopplerDocument *doc = poppler_document_new_from_bytes(bytes, NULL, &gerr);
	pthread_mutex_unlock(&pdf_open_lock);
	g_bytes_unref(bytes);
	if (!doc) {
		pdf_open_error(gerr, err, errlen);
		g_clear_error(&gerr);
		return -1;
	}
	int pages = poppler_document_get_n_pages(doc);
	if (pages < 0)
		pages = 0;
	pdf_text_t pt = {NB_BUF_INIT, 0, nb_xcalloc(pages ? (size_t)pages : 1, sizeof(int)), 0};
	pdf_read_pages(doc, &pt, pages);
	g_object_unref(doc);
	if (pt.text.len == 0) {
		nb_buf_dispose(&pt.text);
		free(pt.offsets);
		nb_extract__set_err(err, errlen, "the PDF has no extractable text");
		return -1;
	}
	out->text = nb_buf_steal(&pt.text, &out->len);
	out->page_count = pages;
	out->page_offsets = pt.offsets;
	return 0;
}
