/*
 * sched.c — coroutines on a libuv loop (see sched.h).
 *
 * Ready coroutines (signalled waits) are kept in a local FIFO drained by a
 * uv_idle handle, which is active only while the FIFO is non-empty; waits
 * signalled from other threads go through a mutex-protected FIFO and a
 * uv_async. Timeouts use one uv_timer per coroutine, created on first use.
 */
#include "core/sched.h"

#include <pthread.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "core/log.h"

typedef struct task {
	nb_coro_t *coro;
	nb_coro_fn fn;
	void *arg;
	void (*done)(void *arg);
	uv_timer_t *timer; /* lazily created; freed on close */
	nb_wait_t *timer_wait;
} task_t;

struct nb_sched {
	uv_loop_t *loop;
	uv_idle_t idle;
	uv_async_t async;
	pthread_mutex_t mu;
	nb_wait_t *ready_head, *ready_tail;   /* loop thread only */
	nb_wait_t *remote_head, *remote_tail; /* under mu */
	bool idle_active;
	int open_handles;
	int remote_pending; /* offloaded tasks not yet back: they keep the loop alive */
};

struct nb_fdwait {
	uv_poll_t poll;
	nb_sched_t *sched;
	nb_wait_t *waiter;
	int ready;
};

static _Thread_local nb_sched_t *tl_sched;
static _Thread_local task_t *tl_task; /* the task whose coroutine runs now */

static void resume(nb_sched_t *s, task_t *t);

static void run_ready(uv_idle_t *h)
{
	nb_sched_t *s = h->data;
	nb_wait_t *list = s->ready_head;
	s->ready_head = s->ready_tail = NULL;
	while (list) {
		nb_wait_t *w = list;
		list = w->next;
		task_t *t = (task_t *)(void *)w->coro; /* see nb_wait_init */
		resume(s, t);
	}
	if (!s->ready_head) {
		uv_idle_stop(&s->idle);
		s->idle_active = false;
	}
}

static void push_ready(nb_sched_t *s, nb_wait_t *w)
{
	w->next = NULL;
	if (s->ready_tail)
		s->ready_tail->next = w;
	else
		s->ready_head = w;
	s->ready_tail = w;
	if (!s->idle_active) {
		s->idle_active = true;
		uv_idle_start(&s->idle, run_ready);
	}
}

static void on_async(uv_async_t *h)
{
	nb_sched_t *s = h->data;
	pthread_mutex_lock(&s->mu);
	nb_wait_t *list = s->remote_head;
	s->remote_head = s->remote_tail = NULL;
	pthread_mutex_unlock(&s->mu);
	while (list) {
		nb_wait_t *w = list;
		list = w->next;
		w->signalled = true;
		push_ready(s, w);
		if (--s->remote_pending == 0)
			uv_unref((uv_handle_t *)&s->async);
	}
}

nb_sched_t *nb_sched_create(uv_loop_t *loop)
{
	nb_sched_t *s = nb_xcalloc(1, sizeof *s);
	s->loop = loop;
	uv_idle_init(loop, &s->idle);
	s->idle.data = s;
	uv_async_init(loop, &s->async, on_async);
	s->async.data = s;
	uv_unref((uv_handle_t *)&s->async);
	s->open_handles = 2;
	pthread_mutex_init(&s->mu, NULL);
	tl_sched = s;
	return s;
}

static void sched_handle_closed(uv_handle_t *h)
{
	nb_sched_t *s = h->data;
	if (--s->open_handles == 0) {
		pthread_mutex_destroy(&s->mu);
		free(s);
	}
}

void nb_sched_destroy(nb_sched_t *s)
{
	if (!s)
		return;
	/* The handles are embedded; the struct is freed when both have closed. */
	uv_close((uv_handle_t *)&s->idle, sched_handle_closed);
	uv_close((uv_handle_t *)&s->async, sched_handle_closed);
	if (tl_sched == s)
		tl_sched = NULL;
}

nb_sched_t *nb_sched_current(void)
{
	return tl_sched;
}

uv_loop_t *nb_sched_loop(nb_sched_t *s)
{
	return s->loop;
}

bool nb_sched_in_coro(void)
{
	return tl_task != NULL;
}

static void task_timer_closed(uv_handle_t *h)
{
	free(h);
}

static void task_finish(task_t *t)
{
	if (t->timer) {
		uv_timer_stop(t->timer);
		uv_close((uv_handle_t *)t->timer, task_timer_closed);
	}
	nb_coro_destroy(t->coro);
	void (*done)(void *) = t->done;
	void *arg = t->arg;
	free(t);
	if (done)
		done(arg);
}

static void resume(nb_sched_t *s, task_t *t)
{
	(void)s;
	task_t *prev = tl_task;
	tl_task = t;
	bool finished = nb_coro_resume(t->coro);
	tl_task = prev;
	if (finished)
		task_finish(t);
}

static void trampoline(void *arg)
{
	task_t *t = arg;
	t->fn(t->arg);
}

void nb_sched_spawn(nb_sched_t *s, nb_coro_fn fn, void *arg, void (*done)(void *arg))
{
	task_t *t = nb_xcalloc(1, sizeof *t);
	t->arg = arg;
	t->done = done;
	t->fn = fn;
	t->coro = nb_coro_create(trampoline, t);
	resume(s, t);
}

void nb_wait_init(nb_wait_t *w)
{
	/* coro holds the task: run_ready needs the task to resume it */
	w->coro = (nb_coro_t *)(void *)tl_task;
	w->sched = tl_sched;
	w->signalled = false;
	w->timed_out = false;
	w->next = NULL;
}

static void on_wait_timeout(uv_timer_t *h)
{
	task_t *t = h->data;
	nb_wait_t *w = t->timer_wait;
	if (!w || w->signalled)
		return;
	w->timed_out = true;
	w->signalled = true;
	resume(w->sched, t);
}

int nb_wait_park(nb_wait_t *w, int timeout_ms)
{
	task_t *t = tl_task;
	if (!t)
		abort();
	if (w->signalled)
		return w->timed_out ? -1 : 0;
	if (timeout_ms >= 0) {
		if (!t->timer) {
			t->timer = nb_xmalloc(sizeof(uv_timer_t));
			uv_timer_init(w->sched->loop, t->timer);
			t->timer->data = t;
		}
		t->timer_wait = w;
		uv_timer_start(t->timer, on_wait_timeout, (uint64_t)timeout_ms, 0);
	}
	while (!w->signalled)
		nb_coro_yield();
	if (t->timer)
		uv_timer_stop(t->timer);
	t->timer_wait = NULL;
	return w->timed_out ? -1 : 0;
}

void nb_wait_signal(nb_wait_t *w)
{
	if (w->signalled)
		return;
	w->signalled = true;
	push_ready(w->sched, w);
}

/* Only for waits without a timeout, which stay parked until signalled
 * (their nb_wait_t must still exist when the signal lands), and counted in
 * remote_pending by whoever parks them (nb_sched_offload). */
void nb_wait_signal_remote(nb_wait_t *w)
{
	nb_sched_t *s = w->sched;
	pthread_mutex_lock(&s->mu);
	w->next = NULL;
	if (s->remote_tail)
		s->remote_tail->next = w;
	else
		s->remote_head = w;
	s->remote_tail = w;
	pthread_mutex_unlock(&s->mu);
	uv_async_send(&s->async);
}

/* ---------------------------------------------------------------- fd waits */

static void on_poll(uv_poll_t *h, int status, int events)
{
	nb_fdwait_t *f = h->data;
	uv_poll_stop(h);
	f->ready = status < 0 ? (NB_WAIT_READ | NB_WAIT_WRITE) : events;
	nb_wait_t *w = f->waiter;
	f->waiter = NULL;
	if (w && !w->signalled) {
		w->signalled = true;
		resume(w->sched, (task_t *)(void *)w->coro);
	}
}

nb_fdwait_t *nb_fdwait_create(int fd)
{
	nb_sched_t *s = tl_sched;
	if (!s)
		return NULL;
	nb_fdwait_t *f = nb_xcalloc(1, sizeof *f);
	f->sched = s;
	if (uv_poll_init(s->loop, &f->poll, fd) < 0) {
		free(f);
		return NULL;
	}
	f->poll.data = f;
	return f;
}

int nb_fdwait_wait(nb_fdwait_t *f, int events, int timeout_ms)
{
	nb_wait_t w;
	nb_wait_init(&w);
	f->waiter = &w;
	int ev = ((events & NB_WAIT_READ) ? UV_READABLE : 0) | ((events & NB_WAIT_WRITE) ? UV_WRITABLE : 0);
	uv_poll_start(&f->poll, ev, on_poll);
	int rc = nb_wait_park(&w, timeout_ms);
	if (rc < 0) {
		uv_poll_stop(&f->poll);
		f->waiter = NULL;
	}
	return rc;
}

static void fdwait_closed(uv_handle_t *h)
{
	free(h->data);
}

void nb_fdwait_destroy(nb_fdwait_t *f)
{
	if (!f)
		return;
	uv_poll_stop(&f->poll);
	uv_close((uv_handle_t *)&f->poll, fdwait_closed);
}

/* ---------------------------------------------------------------- offload */

typedef struct offload {
	void (*fn)(void *);
	void *arg;
	nb_wait_t wait;
} offload_t;

static void offload_run(void *arg)
{
	offload_t *o = arg;
	o->fn(o->arg);
	nb_wait_signal_remote(&o->wait);
}

void nb_sched_offload(nb_tpool_t *pool, void (*fn)(void *arg), void *arg)
{
	if (!tl_task || !pool) {
		fn(arg);
		return;
	}
	offload_t o = {fn, arg, {0}};
	nb_wait_init(&o.wait);
	/* on_async will mark it ready; park until then (no timeout: the
	 * task always finishes, and o lives on this stack until it does) */
	nb_sched_t *s = o.wait.sched;
	if (s->remote_pending++ == 0)
		uv_ref((uv_handle_t *)&s->async);
	nb_tpool_submit(pool, offload_run, &o);
	while (!o.wait.signalled) {
		nb_coro_yield();
	}
}
