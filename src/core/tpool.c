/*
 * tpool.c — on-demand thread pool (see tpool.h).
 */
#include "core/tpool.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"

typedef struct task {
	struct task *next;
	nb_task_fn fn;
	void *arg;
} task_t;

struct nb_tpool {
	char *name;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	task_t *head, *tail;
	int queued;
	int max_threads;
	int nthreads;
	int idle;
	int busy;
	bool stopping;
	pthread_t *threads;
};

static void *worker(void *arg)
{
	nb_tpool_t *p = arg;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->head && !p->stopping) {
			p->idle++;
			pthread_cond_wait(&p->cv, &p->mu);
			p->idle--;
		}
		if (!p->head && p->stopping)
			break;
		task_t *t = p->head;
		p->head = t->next;
		if (!p->head)
			p->tail = NULL;
		p->queued--;
		p->busy++;
		pthread_mutex_unlock(&p->mu);
		t->fn(t->arg);
		free(t);
		pthread_mutex_lock(&p->mu);
		p->busy--;
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

nb_tpool_t *nb_tpool_create(const char *name, int max_threads)
{
	nb_tpool_t *p = nb_xcalloc(1, sizeof *p);
	p->name = nb_xstrdup(name);
	p->max_threads = max_threads > 0 ? max_threads : 1;
	p->threads = nb_xcalloc((size_t)p->max_threads, sizeof(pthread_t));
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	return p;
}

void nb_tpool_submit(nb_tpool_t *p, nb_task_fn fn, void *arg)
{
	task_t *t = nb_xmalloc(sizeof *t);
	t->next = NULL;
	t->fn = fn;
	t->arg = arg;
	pthread_mutex_lock(&p->mu);
	if (p->tail)
		p->tail->next = t;
	else
		p->head = t;
	p->tail = t;
	p->queued++;
	if (p->idle < p->queued && p->nthreads < p->max_threads) {
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setstacksize(&attr, 1024 * 1024);
		int rc = pthread_create(&p->threads[p->nthreads], &attr, worker, p);
		if (rc == 0)
			p->nthreads++;
		else /* the task waits for a running thread; the next submit tries again */
			nb_warn("%s: could not start a thread (%d running): %s", p->name, p->nthreads, strerror(rc));
		pthread_attr_destroy(&attr);
	}
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

int nb_tpool_queued(nb_tpool_t *p)
{
	pthread_mutex_lock(&p->mu);
	int n = p->queued;
	pthread_mutex_unlock(&p->mu);
	return n;
}

void nb_tpool_destroy(nb_tpool_t *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	pthread_cond_broadcast(&p->cv);
	int n = p->nthreads;
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < n; i++)
		pthread_join(p->threads[i], NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p->threads);
	free(p->name);
	free(p);
}
