/*
 * internal.h — the server's private types, shared by its files (not for
 * other modules): parse.c (bytes → request, no sockets), conn.c
 * (connections, timers, reads, writes, spooling), dispatch.c (running
 * handlers, the worker → loop mailbox, serialising answers), stream.c
 * (streamed answers with back-pressure) and server.c (listeners, loops,
 * lifecycle). README.md in this folder gives the ownership rules.
 */
#ifndef NB_HTTP_INTERNAL_H
#define NB_HTTP_INTERNAL_H

#include <http_parser.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <uv.h>

#include "core/buf.h"
#include "core/sched.h"
#include "core/tpool.h"
#include "http/server.h"

typedef struct loop loop_t;
typedef struct conn conn_t;
typedef struct sreq sreq_t;

/* In-memory body bytes kept before an upload body is written to its temp file. */
#define NB_HTTP_BODY_MEM_MAX (1024 * 1024)
/* Bytes of a stream queued and not yet taken by the socket before the producer waits. */
#define NB_HTTP_STREAM_QUEUE_MAX (512 * 1024)

typedef enum { S_IDLE, S_READING, S_PROCESSING, S_LINGER, S_CLOSED } conn_state_t;
typedef enum { T_NONE, T_FIRST, T_IDLE, T_READ, T_DEADLINE, T_WRITE, T_LINGER } timer_mode_t;

struct sreq {
	nb_req_t req; /* first: a nb_req_t * is a sreq_t * */
	conn_t *conn;
	loop_t *lp;
	nb_server_t *srv;
	/* parsing (parse.c) */
	nb_buf_t url;
	nb_buf_t hname, hval;
	bool in_value;
	bool head_done;
	bool early;          /* answered at the head (req.resp set): no handler runs */
	bool body_follows;   /* the head announced a body */
	bool too_large;      /* the body grew past its limit */
	bool complete;       /* the whole message is in */
	size_t body_limit;
	nb_buf_t body;       /* in memory: the whole body, or the part not yet spooled */
	size_t body_len;     /* bytes received */
	bool expect_continue;
	bool keep_alive;
	/* spooling (conn.c) */
	int body_fd;
	size_t spooled;  /* bytes written to body_fd */
	bool spool_busy; /* an fs request is outstanding */
	void *body_map;
	/* output, shared with a worker under mu */
	nb_buf_t out;
	bool finished;   /* the handler is done with the request */
	bool in_mailbox; /* queued on the loop's mailbox */
	bool streaming;
	atomic_bool gone; /* client gone, or the request was abandoned */
	atomic_bool counted; /* counted in /metrics (a deadline's 503 and the late answer count once) */
	bool aborted;     /* a stream given up midway */
	size_t queued;    /* stream bytes appended and not yet written by the socket */
	nb_wait_t *waiter; /* a coroutine producer parked for room (loop thread only) */
	int status;
	size_t bytes_out;
	/* loop-only */
	int writes_inflight;
	bool dispatched;
	bool done_logged;
	/* last: kept (not cleared) when the request is recycled */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	sreq_t *mail_next;
};

struct conn {
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_shutdown_t shut;
	loop_t *lp;
	http_parser parser;
	conn_state_t state;
	timer_mode_t tmode;
	sreq_t *cur;      /* the request being parsed or handled */
	nb_buf_t pending; /* bytes read past what the parser took */
	int handles_open;
	long requests;    /* requests begun on this connection */
	bool close_after; /* close once the current response is written */
	bool linger;      /* ... after reading and dropping what the client still sends */
	bool bare_close;  /* a bare answer is being written, then the connection closes */
	bool admin;       /* accepted on the admin listener */
	bool counted;     /* counted in the per-client table */
	bool reading;     /* the read watcher is on (conn.c's read_on/read_off) */
	char remote[64];
	conn_t *prev, *next;
};

struct loop {
	nb_server_t *srv;
	int index;
	uv_loop_t loop;
	bool loop_ok;
	uv_tcp_t listener;
	bool listening;
	uv_tcp_t admin_listener;
	bool admin_listening;
	uv_async_t wake;
	bool wake_ok;
	uv_signal_t sigterm, sigint;
	uv_timer_t drain_timer;
	pthread_t thread;
	pthread_mutex_t mu;
	sreq_t *mail_head, *mail_tail;
	conn_t *conns;
	long nconns;
	atomic_long owned; /* connections of this loop, counting those handed to it and not yet taken */
	int *handoff;      /* sockets accepted by another loop for this one (under mu) */
	int nhandoff, handoff_cap;
	bool handoff_closed; /* (under mu) this loop has stopped: other loops serve what they accept */
	bool draining;
	nb_sched_t *sched;
	sreq_t *free_sreqs; /* recycled requests (loop thread only) */
	int nfree;
	void *app; /* the application's per-loop pointer (hooks.loop_start) */
	bool app_started;
};

typedef struct client_count client_count_t;

/* One route's counters (stats.c): answers by status slot and the latency histogram. */
typedef struct route_stat {
	atomic_ulong by_status[NB_HTTP_STATUS_SLOTS];
	nb_histo_t latency;
} route_stat_t;

struct nb_server {
	nb_server_opts_t o;
	loop_t *loops;
	int nloops;
	int port, admin_port;
	const nb_route_t *routes;       /* served on the main listener */
	int nroutes;
	const nb_route_t *admin_routes; /* served on the admin listener */
	int nadmin_routes;
	nb_route_t *route_copy; /* owns the two tables above */
	route_stat_t *rstats;   /* one per route_copy entry, then the unmatched slot (stats.c) */
	int nrstats;
	char tmp_dir[256];
	nb_tpool_t *pools[NB_EXEC_CLASSES_]; /* thread pools by nb_exec_class_t */
	atomic_bool stopping;
	atomic_long conns_open, conns_total, requests_total, in_flight, timeouts, rejected, write_timeouts;
	atomic_long by_class[6];
	/* open connections per client address, shared by the loops */
	pthread_mutex_t clients_mu;
	client_count_t **clients;
	size_t nclient_buckets;
};

/* What one call of the parser ended with (parse.c). */
typedef enum {
	NB_PARSE_MORE,  /* everything was taken; more bytes are needed */
	NB_PARSE_HEAD,  /* the head is in and passed its checks; the body (if any) follows */
	NB_PARSE_EARLY, /* answered at the head (req.resp set) */
	NB_PARSE_SPOOL, /* the in-memory body is full: write it out before going on */
	NB_PARSE_TOO_LARGE, /* the body grew past its limit */
	NB_PARSE_DONE,  /* the message is complete */
	NB_PARSE_BAD    /* malformed (req.resp set) */
} nb_parse_result_t;

/* parse.c */
/** Resets c->parser for a new request. */
void nb_http__parser_reset(conn_t *c);
/**
 * Feeds bytes to the connection's parser. *used is how many were taken; the
 * rest must be fed again once the caller has acted on the result. Touches no
 * socket, timer or file: callable on a plain buffer (fuzz/fuzz_http.c).
 */
nb_parse_result_t nb_http__parse(conn_t *c, const char *data, size_t len, size_t *used);
/** The request being parsed (created on first use). */
sreq_t *nb_http__cur(conn_t *c);
/** Makes the body contiguous for the handler: memory, or the spooled file mapped. 0 or -1. */
int nb_http__finish_body(sreq_t *r);

/* dispatch.c */
/** A request for c (recycled from the loop's cache when it can be); counted in flight. */
sreq_t *nb_http__sreq_new(conn_t *c);
/** Releases what the request holds and recycles its shell. */
void nb_http__sreq_free(sreq_t *r);
/** Frees a request shell for good (its buffers, arena, mutex). */
void nb_http__sreq_destroy(sreq_t *r);
/** Runs the request's handler where its route says (the request is complete). */
void nb_http__dispatch(sreq_t *r);
/** Serialises req.resp into out. */
void nb_http__serialize(sreq_t *r, nb_buf_t *out, bool keep_alive);
/** Appends the status line and the common headers. */
void nb_http__head_common(nb_buf_t *out, sreq_t *r, int status, const char *ctype, bool keep_alive);
/** Counts an answer in /metrics: by class, by route and status, and its latency (stats.c). */
void nb_http__count_answer(sreq_t *r, int status);
/** Writes the request's access-log line once (NOTEBOOKD_ACCESS_LOG). */
void nb_http__access_log(sreq_t *r);
/** Queues r on its loop's mailbox and wakes the loop (any thread). */
void nb_http__post(sreq_t *r);
/** The loop's mailbox callback: writes what workers queued. */
void nb_http__on_wake(loop_t *lp);

/* conn.c */
/** libuv's connection callbacks of the main and the admin listener. */
void nb_http__on_connection(uv_stream_t *server, int status);
/** Takes the sockets other loops accepted for this one (from its wake-up); closes them when `drop`. */
void nb_http__take_handoffs(loop_t *lp, bool drop);
/* Stops a draining loop once it holds no connection and none is queued for it. */
void nb_http__stop_if_drained(loop_t *lp);
void nb_http__on_admin_connection(uv_stream_t *server, int status);
/** Closes c; it is freed once its handles are closed and no request holds it. Idempotent. */
void nb_http__conn_close(conn_t *c);
/** Writes what r->out holds (loop thread). */
void nb_http__flush(sreq_t *r);
/** Frees a finished request once its writes are done and moves the connection on. */
void nb_http__maybe_complete(sreq_t *r);
/** An answer made on the loop from req.resp (errors found while reading). */
void nb_http__respond_now(sreq_t *r, bool close);
/** Wakes whatever waits for room in r's output (a worker or a parked coroutine). */
void nb_http__wake_producer(sreq_t *r);
/** Starts the connection timer in a mode. */
void nb_http__arm(conn_t *c, timer_mode_t mode, int ms);
/** Drops the per-client table. */
void nb_http__clients_dispose(nb_server_t *s);

#endif
