/*
 * arena.c — chained-block arena (see arena.h).
 *
 * Small allocations are carved from 8 KiB blocks; an allocation larger than a
 * quarter block gets a block of its own so that big bodies do not waste the
 * tail of a shared block.
 */
#include "core/arena.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

#define BLOCK_SIZE 8192
#define ALIGN 16

typedef struct block {
	struct block *next;
	size_t size;
	size_t used;
	_Alignas(ALIGN) unsigned char data[];
} block_t;

typedef struct defer {
	struct defer *next;
	void (*fn)(void *);
	void *p;
} defer_t;

struct nb_arena {
	block_t *head;
	defer_t *defers;
	size_t total;
};

nb_arena_t *nb_arena_create(void)
{
	return nb_xcalloc(1, sizeof(nb_arena_t));
}

void nb_arena_destroy(nb_arena_t *a)
{
	if (!a)
		return;
	for (defer_t *d = a->defers; d;) {
		defer_t *next = d->next;
		d->fn(d->p);
		d = next;
	}
	for (block_t *b = a->head; b;) {
		block_t *next = b->next;
		free(b);
		b = next;
	}
	free(a);
}

void nb_arena_reset(nb_arena_t *a)
{
	for (defer_t *d = a->defers; d;) {
		defer_t *next = d->next;
		d->fn(d->p);
		d = next;
	}
	a->defers = NULL;
	/* Keep one standard block (the head is one unless an oversized block sits there). */
	block_t *keep = NULL;
	for (block_t *b = a->head; b;) {
		block_t *next = b->next;
		if (!keep && b->size == BLOCK_SIZE)
			keep = b;
		else
			free(b);
		b = next;
	}
	if (keep) {
		keep->next = NULL;
		keep->used = 0;
	}
	a->head = keep;
	a->total = 0;
}

static block_t *new_block(size_t size)
{
	size_t total;
	if (__builtin_add_overflow(sizeof(block_t), size, &total))
		abort();
	block_t *b = nb_xmalloc(total);
	b->next = NULL;
	b->size = size;
	b->used = 0;
	return b;
}

void *nb_arena_alloc(nb_arena_t *a, size_t n)
{
	size_t rounded;
	if (__builtin_add_overflow(n, (size_t)(ALIGN - 1), &rounded))
		abort(); /* a size this large is a bug: fail like an exhausted allocation */
	n = rounded & ~(size_t)(ALIGN - 1);
	if (n == 0)
		n = ALIGN;
	a->total += n;
	if (n > BLOCK_SIZE / 4) {
		/* Own block, linked behind the head so the head keeps its free tail. */
		block_t *b = new_block(n);
		b->used = n;
		if (a->head) {
			b->next = a->head->next;
			a->head->next = b;
		} else {
			a->head = b;
		}
		return b->data;
	}
	if (!a->head || a->head->size - a->head->used < n) {
		block_t *b = new_block(BLOCK_SIZE);
		b->next = a->head;
		a->head = b;
	}
	void *p = a->head->data + a->head->used;
	a->head->used += n;
	return p;
}

char *nb_arena_strndup(nb_arena_t *a, const char *s, size_t n)
{
	size_t size;
	if (__builtin_add_overflow(n, (size_t)1, &size))
		abort();
	char *p = nb_arena_alloc(a, size);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *nb_arena_strdup(nb_arena_t *a, const char *s)
{
	if (!s)
		return NULL;
	return nb_arena_strndup(a, s, strlen(s));
}

char *nb_arena_sprintf(nb_arena_t *a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	char *p = nb_arena_alloc(a, (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

void nb_arena_defer(nb_arena_t *a, void (*fn)(void *), void *p)
{
	defer_t *d = nb_arena_alloc(a, sizeof(*d));
	d->fn = fn;
	d->p = p;
	d->next = a->defers;
	a->defers = d;
}

size_t nb_arena_used(const nb_arena_t *a)
{
	return a->total;
}
