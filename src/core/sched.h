/*
 * sched.h — running coroutines on a libuv loop: waiting for sockets, for
 * wake-ups and for work handed to thread pools.
 *
 * One scheduler per event-loop thread (nb_sched_create binds it to the
 * calling thread). A coroutine started with nb_sched_spawn runs until it
 * waits; a wait registers what should resume it (a socket becoming ready, a
 * timer, nb_sched_wake from the same loop, or a thread-pool task finishing
 * on another thread) and yields. Resumes always happen from loop callbacks,
 * never from inside another coroutine.
 *
 * Code that may run either in a coroutine or on a plain thread asks
 * nb_sched_in_coro() and blocks the ordinary way when it is not in one.
 */
#ifndef NB_CORE_SCHED_H
#define NB_CORE_SCHED_H

#include <stdbool.h>
#include <uv.h>

#include "core/coro.h"
#include "core/tpool.h"

typedef struct nb_sched nb_sched_t;
typedef struct nb_fdwait nb_fdwait_t;

enum { NB_WAIT_READ = 1, NB_WAIT_WRITE = 2 };

/** Creates the scheduler of the calling thread's loop. */
nb_sched_t *nb_sched_create(uv_loop_t *loop);
/** Closes its handles (call before the loop's final run). Accepts NULL. */
void nb_sched_destroy(nb_sched_t *s);
/** This thread's scheduler, or NULL. */
nb_sched_t *nb_sched_current(void);
/** The loop a scheduler runs on. */
uv_loop_t *nb_sched_loop(nb_sched_t *s);
/** True when running inside a coroutine of a scheduler. */
bool nb_sched_in_coro(void);

/**
 * Starts fn(arg) as a coroutine on this thread's scheduler, running it at
 * once until its first wait. When fn returns, done(arg) is called from the
 * loop (outside the coroutine) and the coroutine is freed.
 */
void nb_sched_spawn(nb_sched_t *s, nb_coro_fn fn, void *arg, void (*done)(void *arg));

/** A wait object: what a waiting coroutine is parked on. Lives on the coroutine's stack. */
typedef struct nb_wait {
	nb_coro_t *coro;
	nb_sched_t *sched;
	bool signalled;
	bool timed_out;
	struct nb_wait *next; /* for the owner's queues */
} nb_wait_t;

/** Prepares w for the current coroutine. */
void nb_wait_init(nb_wait_t *w);
/**
 * Yields until nb_wait_signal(w) or timeout_ms pass (< 0: no timeout).
 * Returns 0 when signalled, -1 on timeout.
 */
int nb_wait_park(nb_wait_t *w, int timeout_ms);
/** Wakes a parked wait from the same loop thread (resumes it soon, not now). */
void nb_wait_signal(nb_wait_t *w);
/** Wakes a parked wait from any thread. */
void nb_wait_signal_remote(nb_wait_t *w);

/** Watches one file descriptor for the coroutines of this thread's loop. */
nb_fdwait_t *nb_fdwait_create(int fd);
/** Yields until fd is ready for events (NB_WAIT_READ/WRITE) or timeout_ms pass. 0 ready, -1 timeout. */
int nb_fdwait_wait(nb_fdwait_t *w, int events, int timeout_ms);
/** Stops watching and frees (asynchronously). Accepts NULL. */
void nb_fdwait_destroy(nb_fdwait_t *w);

/**
 * Runs fn(arg) on a thread pool and returns when it is done: in a coroutine
 * by yielding meanwhile, on a plain thread by calling fn directly.
 */
void nb_sched_offload(nb_tpool_t *pool, void (*fn)(void *arg), void *arg);

#endif
