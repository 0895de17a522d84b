/*
 * stream.c — streamed answers (chunked transfer encoding) that follow their
 * reader.
 *
 * A producer (a worker thread, or a coroutine on the loop: chat streams
 * server-sent events from coroutines) appends chunks to the request's output
 * queue. r->queued counts the bytes appended and not yet taken by the socket
 * (conn.c's on_write subtracts what completed); past NB_HTTP_STREAM_QUEUE_MAX
 * the producer waits — a thread on r->cv, a coroutine parked on an nb_wait_t
 * — until the client reads. A client that reads nothing for the write
 * timeout is disconnected (conn.c), which wakes the producer with "gone".
 */
#include "core/sched.h"
#include "http/internal.h"

/* Waits (mu held) until the queue has room or the client is gone. */
static void wait_room(sreq_t *r)
{
	if (nb_sched_in_coro()) {
		while (r->queued > NB_HTTP_STREAM_QUEUE_MAX && !atomic_load(&r->gone)) {
			pthread_mutex_unlock(&r->mu);
			nb_wait_t w;
			nb_wait_init(&w);
			r->waiter = &w; /* loop thread only: on_write runs on this loop too */
			nb_wait_park(&w, -1);
			if (r->waiter == &w)
				r->waiter = NULL;
			pthread_mutex_lock(&r->mu);
		}
		return;
	}
	while (r->queued > NB_HTTP_STREAM_QUEUE_MAX && !atomic_load(&r->gone))
		pthread_cond_wait(&r->cv, &r->mu);
}

/* Gets the queued bytes written: from the loop itself, or through the mailbox. */
static void kick(sreq_t *r)
{
	if (nb_sched_in_coro())
		nb_http__flush(r);
	else
		nb_http__post(r);
}

int nb_stream_begin(nb_req_t *req, int status, const char *content_type)
{
	sreq_t *r = (sreq_t *)req;
	if (atomic_load(&r->gone))
		return -1;
	pthread_mutex_lock(&r->mu);
	r->streaming = true;
	r->status = status;
	size_t before = r->out.len;
	nb_http__head_common(&r->out, r, status, content_type, r->keep_alive);
	nb_buf_puts(&r->out, "Transfer-Encoding: chunked\r\n");
	if (req->resp.headers.len)
		nb_buf_append(&r->out, req->resp.headers.data, req->resp.headers.len);
	nb_buf_puts(&r->out, "\r\n");
	r->queued += r->out.len - before;
	pthread_mutex_unlock(&r->mu);
	kick(r);
	return 0;
}

int nb_stream_write(nb_req_t *req, const char *data, size_t len)
{
	sreq_t *r = (sreq_t *)req;
	if (len == 0)
		return 0;
	pthread_mutex_lock(&r->mu);
	wait_room(r);
	if (atomic_load(&r->gone)) {
		pthread_mutex_unlock(&r->mu);
		return -1;
	}
	size_t before = r->out.len;
	nb_buf_printf(&r->out, "%zx\r\n", len);
	nb_buf_append(&r->out, data, len);
	nb_buf_puts(&r->out, "\r\n");
	r->queued += r->out.len - before;
	pthread_mutex_unlock(&r->mu);
	kick(r);
	return 0;
}

void nb_stream_abort(nb_req_t *req)
{
	sreq_t *r = (sreq_t *)req;
	r->aborted = true;
}

bool nb_req_gone(const nb_req_t *req)
{
	const sreq_t *r = (const sreq_t *)req;
	return atomic_load(&r->gone);
}
