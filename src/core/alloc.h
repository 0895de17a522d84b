/*
 * alloc.h — allocation wrappers that abort on out-of-memory.
 *
 * Out of memory is fatal (as Redis zmalloc and PostgreSQL palloc): callers do
 * not check for NULL after these calls.
 */
#ifndef NB_CORE_ALLOC_H
#define NB_CORE_ALLOC_H

#include <stddef.h>

/** malloc that aborts the process when memory is exhausted. */
void *nb_xmalloc(size_t n);
/** calloc that aborts the process when memory is exhausted. */
void *nb_xcalloc(size_t count, size_t size);
/** realloc that aborts the process when memory is exhausted. */
void *nb_xrealloc(void *p, size_t n);
/** strdup that aborts on OOM; NULL in gives NULL out. */
char *nb_xstrdup(const char *s);
/** Copies at most n bytes of s and NUL-terminates; aborts on OOM. */
char *nb_xstrndup(const char *s, size_t n);
/**
 * n zeroed bytes straight from the kernel (an anonymous mapping): a page costs
 * no memory until it is written, whatever malloc's thresholds are. For large
 * tables touched sparsely. Aborts on OOM; free with nb_free_pages(p, n).
 */
void *nb_xzalloc_pages(size_t n);
/** Returns memory of nb_xzalloc_pages (same n). Accepts NULL. */
void nb_free_pages(void *p, size_t n);
/** Allocates and formats like sprintf; the caller frees the result. */
char *nb_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
