/*
 * coro.h — stackful coroutines (ucontext) for handlers on the event loop.
 *
 * A request handler runs as a coroutine on its loop thread. When it must wait
 * (a PostgreSQL result, a free connection, a task on a thread pool) it
 * yields; the loop resumes it when the wait is over. Handler and store code
 * stays plain sequential C, and no thread switch is paid per request.
 *
 * Stacks are 256 KiB mmap'd regions with a guard page, cached per thread.
 * Code that recurses on untrusted input must bound its depth (the JSON body
 * nesting is checked before parsing). Builds under AddressSanitizer announce
 * each stack switch to it.
 */
#ifndef NB_CORE_CORO_H
#define NB_CORE_CORO_H

#include <stdbool.h>

typedef struct nb_coro nb_coro_t;
typedef void (*nb_coro_fn)(void *arg);

/** Creates a coroutine that will run fn(arg) on its first resume. */
nb_coro_t *nb_coro_create(nb_coro_fn fn, void *arg);
/**
 * Runs the coroutine until it yields or returns. Returns true when fn has
 * returned (the coroutine is then finished and must be destroyed).
 * Must not be called from inside a coroutine.
 */
bool nb_coro_resume(nb_coro_t *c);
/** From inside a coroutine: switches back to whoever resumed it. */
void nb_coro_yield(void);
/** Frees a finished (or never started) coroutine; its stack goes back to the cache. Accepts NULL. */
void nb_coro_destroy(nb_coro_t *c);
/** Frees this thread's cached stacks (at thread exit). */
void nb_coro_thread_cleanup(void);

#endif
