/*
 * tpool.h — a thread pool with a FIFO queue.
 *
 * Threads are started on demand up to `max_threads` (a submit that finds no
 * idle thread starts one) and then stay. nb_tpool_destroy runs every queued
 * task before joining, so shutdown drains instead of dropping work.
 */
#ifndef NB_CORE_TPOOL_H
#define NB_CORE_TPOOL_H

typedef struct nb_tpool nb_tpool_t;
typedef void (*nb_task_fn)(void *arg);

/** Creates a pool named `name` (for logs) running at most max_threads tasks at once. */
nb_tpool_t *nb_tpool_create(const char *name, int max_threads);
/** Queues fn(arg). Thread-safe. */
void nb_tpool_submit(nb_tpool_t *p, nb_task_fn fn, void *arg);
/** Tasks queued and not yet started (a bound for callers that must not pile work up). */
int nb_tpool_queued(nb_tpool_t *p);
/** Finishes every queued task, joins the threads and frees the pool. Accepts NULL. */
void nb_tpool_destroy(nb_tpool_t *p);

#endif
