/*
 * coro.c — ucontext coroutines (see coro.h).
 *
 * swapcontext saves the signal mask with a syscall; at a few hundred
 * nanoseconds a switch that is still far cheaper than the futex wake-ups of a
 * thread hand-off, and it keeps the code free of hand-written assembly.
 */
#include "core/coro.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include "core/alloc.h"

#if defined(__SANITIZE_ADDRESS__)
#define NB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NB_ASAN 1
#endif
#endif

#ifdef NB_ASAN
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old, size_t *size_old);
#endif

#define STACK_SIZE (256 * 1024)
#define STACK_CACHE_MAX 4096

struct nb_coro {
	ucontext_t ctx;
	ucontext_t caller;
	nb_coro_fn fn;
	void *arg;
	void *stack; /* mapping including the guard page */
	bool finished;
#ifdef NB_ASAN
	void *fake_stack;
	const void *caller_bottom;
	size_t caller_size;
#endif
};

static _Thread_local nb_coro_t *tl_current;
static _Thread_local void *tl_cache[STACK_CACHE_MAX];
static _Thread_local int tl_ncache;

static size_t page_size(void)
{
	static size_t ps;
	if (!ps)
		ps = (size_t)sysconf(_SC_PAGESIZE);
	return ps;
}

static void *stack_get(void)
{
	if (tl_ncache > 0)
		return tl_cache[--tl_ncache];
	size_t ps = page_size();
	void *m = mmap(NULL, STACK_SIZE + ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1,
		       0);
	if (m == MAP_FAILED)
		abort();
	/* guard page: overflow faults instead of corrupting; without it a stack
	 * overflow would silently corrupt memory, so a failure is fatal */
	if (mprotect(m, ps, PROT_NONE) != 0)
		abort();
	return m;
}

static void stack_put(void *m)
{
	if (tl_ncache < STACK_CACHE_MAX) {
		tl_cache[tl_ncache++] = m;
		return;
	}
	munmap(m, STACK_SIZE + page_size());
}

void nb_coro_thread_cleanup(void)
{
	while (tl_ncache > 0)
		munmap(tl_cache[--tl_ncache], STACK_SIZE + page_size());
}

static void trampoline(unsigned int hi, unsigned int lo)
{
	nb_coro_t *c = (nb_coro_t *)(((uintptr_t)hi << 32) | (uintptr_t)lo);
#ifdef NB_ASAN
	__sanitizer_finish_switch_fiber(NULL, &c->caller_bottom, &c->caller_size);
#endif
	c->fn(c->arg);
	c->finished = true;
#ifdef NB_ASAN
	/* NULL: this fiber's fake stack dies with it. */
	__sanitizer_start_switch_fiber(NULL, c->caller_bottom, c->caller_size);
#endif
	/* returning switches to uc_link (the caller context) */
}

nb_coro_t *nb_coro_create(nb_coro_fn fn, void *arg)
{
	nb_coro_t *c = nb_xcalloc(1, sizeof *c);
	c->fn = fn;
	c->arg = arg;
	c->stack = stack_get();
	getcontext(&c->ctx);
	c->ctx.uc_stack.ss_sp = (char *)c->stack + page_size();
	c->ctx.uc_stack.ss_size = STACK_SIZE;
	c->ctx.uc_link = &c->caller;
	uintptr_t p = (uintptr_t)c;
	makecontext(&c->ctx, (void (*)(void))trampoline, 2, (unsigned int)(p >> 32), (unsigned int)(p & 0xffffffffu));
	return c;
}

bool nb_coro_resume(nb_coro_t *c)
{
	if (c->finished)
		return true;
	nb_coro_t *prev = tl_current;
	tl_current = c;
#ifdef NB_ASAN
	void *fake = NULL;
	__sanitizer_start_switch_fiber(&fake, (char *)c->stack + page_size(), STACK_SIZE);
#endif
	swapcontext(&c->caller, &c->ctx);
#ifdef NB_ASAN
	__sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
	tl_current = prev;
	return c->finished;
}

void nb_coro_yield(void)
{
	nb_coro_t *c = tl_current;
	if (!c)
		abort(); /* yield outside a coroutine is a bug */
#ifdef NB_ASAN
	__sanitizer_start_switch_fiber(&c->fake_stack, c->caller_bottom, c->caller_size);
#endif
	swapcontext(&c->ctx, &c->caller);
#ifdef NB_ASAN
	__sanitizer_finish_switch_fiber(c->fake_stack, &c->caller_bottom, &c->caller_size);
#endif
}

void nb_coro_destroy(nb_coro_t *c)
{
	if (!c)
		return;
	stack_put(c->stack);
	free(c);
}
