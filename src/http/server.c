/*
 * server.c — the server's lifecycle: options, listeners, loop threads,
 * draining on SIGTERM, counters.
 *
 * N loops listen on dups of one bound socket (the kernel hands each new
 * connection to one of them). Loop 0 runs on the thread that calls
 * nb_server_run and also owns the signal handlers and the admin listener.
 * Each loop calls the application's loop_start hook on its own thread before
 * serving and loop_stop after (server.h). Every libuv and thread set-up call
 * is checked: a failure is a one-line error from create or run.
 *
 * Zero-downtime restarts: a listening socket may be inherited instead of
 * bound (systemd socket activation: LISTEN_PID is our pid, LISTEN_FDS >= 1,
 * fd 3 is the API socket, fd 4 the admin socket when there is one). The
 * socket then outlives every process that serves it: a new process starts on
 * the same inherited socket, the old one gets SIGTERM and drains, and the
 * kernel's accept queue hands every waiting connection to whichever is
 * accepting. SO_REUSEPORT stays off (it would let a stray second server bind
 * the port silently, and each process would own a queue of its own that dies
 * with it).
 */
#include "http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/config.h"
#include "core/log.h"
#include "http/internal.h"

static nb_server_t *current_server;

void nb_server_opts_from_config(nb_server_opts_t *o)
{
	memset(o, 0, sizeof *o);
	o->listen = nb_cfg.listen;
	o->admin_listen = nb_cfg.metrics_listen;
	o->io_threads = nb_cfg.io_threads;
	o->handler_threads = nb_cfg.handler_threads;
	o->hash_threads = nb_cfg.hash_threads;
	o->stream_threads = nb_cfg.stream_threads;
	o->max_connections = nb_cfg.max_connections;
	o->max_connections_per_client = nb_cfg.max_connections_per_client;
	o->request_timeout_ms = nb_cfg.request_timeout_ms;
	o->idle_timeout_ms = nb_cfg.idle_timeout_ms;
	o->read_timeout_ms = nb_cfg.read_timeout_ms;
	o->first_request_timeout_ms = nb_cfg.first_request_timeout_ms;
	o->write_timeout_ms = nb_cfg.write_timeout_ms;
	o->max_body_bytes = (size_t)nb_cfg.max_upload_bytes;
	o->max_json_bytes = (size_t)nb_cfg.max_json_bytes;
	o->shutdown_timeout_ms = nb_cfg.shutdown_timeout_ms;
}

/* -------------------------------------------------------------- listeners */

/*
 * Binds one listening socket. Each loop then listens on its own dup of it.
 * (SO_REUSEPORT would spread connections more evenly, but it would also let
 * a second server bind the same port silently.)
 */
static int bind_socket(const char *what, const char *listen, char *err, size_t errlen)
{
	char host[256], port[16];
	const char *colon = strrchr(listen, ':');
	if (!colon || strlen(colon + 1) == 0 || strlen(colon + 1) >= sizeof port ||
	    (size_t)(colon - listen) >= sizeof host) {
		snprintf(err, errlen, "%s must be host:port, got \"%s\"", what, listen);
		return -1;
	}
	memcpy(host, listen, (size_t)(colon - listen));
	host[colon - listen] = '\0';
	snprintf(port, sizeof port, "%s", colon + 1);
	char *h = host;
	if (h[0] == '[') { /* [::1]:8080 */
		h++;
		h[strcspn(h, "]")] = '\0';
	}
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
	struct addrinfo *ai = NULL;
	int rc = getaddrinfo(*h ? h : NULL, port, &hints, &ai);
	if (rc != 0) {
		snprintf(err, errlen, "could not resolve %s \"%s\": %s", what, listen, gai_strerror(rc));
		return -1;
	}
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "could not create socket: %s", strerror(errno));
		freeaddrinfo(ai);
		return -1;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		snprintf(err, errlen, "could not bind %s: %s", listen, strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

/* The number of listening sockets passed by socket activation (fds 3, 4, ...), or 0. */
static int inherited_fds(void)
{
	const char *pid = getenv("LISTEN_PID"), *n = getenv("LISTEN_FDS");
	if (!pid || !n)
		return 0;
	char *end;
	long p = strtol(pid, &end, 10);
	if (*end || p != (long)getpid())
		return 0;
	long k = strtol(n, &end, 10);
	if (*end || k <= 0 || k > 16)
		return 0;
	/* like sd_listen_fds(1): our children must not take them for theirs */
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return (int)k;
}

/* Takes inherited fd `fd` if it is a listening stream socket; -1 with err otherwise. */
static int adopt_socket(const char *what, int fd, char *err, size_t errlen)
{
	int type = 0, acc = 0;
	socklen_t len = sizeof type;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM) {
		snprintf(err, errlen, "%s: inherited fd %d is not a stream socket", what, fd);
		return -1;
	}
	len = sizeof acc;
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) < 0 || !acc) {
		/* systemd's Accept=no passes a listening socket; bound but not yet listening is fine too */
		if (listen(fd, 4096) < 0) {
			snprintf(err, errlen, "%s: inherited fd %d cannot listen: %s", what, fd, strerror(errno));
			return -1;
		}
	}
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	nb_info("%s: using the inherited listening socket (fd %d)", what, fd);
	return fd;
}

static int listen_on(loop_t *lp, uv_tcp_t *h, bool *flag, int fd, uv_connection_cb cb, const char *addr, char *err,
		     size_t errlen)
{
	int rc = uv_tcp_init(&lp->loop, h);
	if (rc < 0) {
		close(fd);
		snprintf(err, errlen, "could not listen on %s: %s", addr, uv_strerror(rc));
		return -1;
	}
	h->data = lp;
	*flag = true; /* the handle exists: destroy closes it */
	if ((rc = uv_tcp_open(h, fd)) < 0 || (rc = uv_listen((uv_stream_t *)h, 4096, cb)) < 0) {
		snprintf(err, errlen, "could not listen on %s: %s", addr, uv_strerror(rc));
		return -1;
	}
	return 0;
}

static int bound_port(uv_tcp_t *h)
{
	struct sockaddr_storage ss;
	int len = sizeof ss;
	if (uv_tcp_getsockname(h, (struct sockaddr *)&ss, &len) < 0)
		return 0;
	return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
					      : ((struct sockaddr_in *)&ss)->sin_port);
}

/* ----------------------------------------------------------------- drain */

static void on_signal(uv_signal_t *h, int signum)
{
	loop_t *lp = h->data;
	nb_info("received %s: draining", signum == SIGTERM ? "SIGTERM" : "SIGINT");
	nb_server_stop(lp->srv);
}

static void on_drain_timeout(uv_timer_t *t)
{
	loop_t *lp = t->data;
	nb_warn("shutdown timeout: closing %ld connections", lp->nconns);
	pthread_mutex_lock(&lp->mu);
	lp->handoff_closed = true; /* other loops serve what they accept from now on */
	pthread_mutex_unlock(&lp->mu);
	for (conn_t *c = lp->conns; c; c = c->next)
		nb_http__conn_close(c);
	uv_stop(&lp->loop);
}

static void close_listener(uv_tcp_t *h, bool *flag)
{
	if (*flag) {
		*flag = false;
		uv_close((uv_handle_t *)h, NULL);
	}
}

/* Stop accepting; close idle keep-alive connections; the rest close after
 * their response. A connection accepted but not yet read from is not idle:
 * its client sent (or is sending) a request it expects answered — closing it
 * would reset a request during a restart (under ASan, test_restart saw it).
 * Its first-request timeout bounds the wait. */
static void start_drain(loop_t *lp)
{
	if (lp->draining)
		return;
	lp->draining = true;
	close_listener(&lp->listener, &lp->listening);
	close_listener(&lp->admin_listener, &lp->admin_listening);
	if (lp->index == 0) {
		uv_signal_stop(&lp->sigterm);
		uv_signal_stop(&lp->sigint);
	}
	conn_t *c = lp->conns;
	while (c) {
		conn_t *next = c->next;
		if (c->state == S_LINGER || (c->state == S_IDLE && c->requests > 0))
			nb_http__conn_close(c);
		else
			c->close_after = true;
		c = next;
	}
	uv_timer_init(&lp->loop, &lp->drain_timer);
	lp->drain_timer.data = lp;
	uv_timer_start(&lp->drain_timer, on_drain_timeout, (uint64_t)lp->srv->o.shutdown_timeout_ms, 0);
	uv_unref((uv_handle_t *)&lp->drain_timer);
	nb_http__stop_if_drained(lp);
}

static void on_wake(uv_async_t *h)
{
	loop_t *lp = h->data;
	if (atomic_load(&lp->srv->stopping) && !lp->draining)
		start_drain(lp);
	nb_http__take_handoffs(lp, false);
	nb_http__on_wake(lp);
	nb_http__stop_if_drained(lp);
}

/* ----------------------------------------------------------------- loops */

static void *loop_main(void *arg)
{
	loop_t *lp = arg;
	nb_server_t *s = lp->srv;
	lp->sched = nb_sched_create(&lp->loop);
	if (s->o.hooks.loop_start)
		lp->app = s->o.hooks.loop_start(s->o.hooks.arg, lp->index, s->nloops);
	lp->app_started = true;
	uv_run(&lp->loop, UV_RUN_DEFAULT);
	return NULL;
}

static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* Splits the route table: with an admin listener, NB_ROUTE_ADMIN routes are served there only. */
static void split_routes(nb_server_t *s)
{
	const nb_server_opts_t *o = &s->o;
	s->route_copy = nb_xcalloc((size_t)o->nroutes + 1, sizeof(nb_route_t) * 2);
	nb_route_t *main_r = s->route_copy, *admin_r = s->route_copy + o->nroutes + 1;
	bool split = o->admin_listen && *o->admin_listen;
	for (int i = 0; i < o->nroutes; i++) {
		if (split && (o->routes[i].flags & NB_ROUTE_ADMIN))
			admin_r[s->nadmin_routes++] = o->routes[i];
		else
			main_r[s->nroutes++] = o->routes[i];
	}
	s->routes = main_r;
	s->admin_routes = admin_r;
	s->nrstats = 2 * (o->nroutes + 1) + 1;
	s->rstats = nb_xcalloc((size_t)s->nrstats, sizeof *s->rstats);
}

static int init_loop(nb_server_t *s, int i, int fd, int admin_fd, char *err, size_t errlen)
{
	loop_t *lp = &s->loops[i];
	lp->srv = s;
	lp->index = i;
	int rc = uv_loop_init(&lp->loop);
	if (rc < 0) {
		snprintf(err, errlen, "could not create event loop %d: %s", i, uv_strerror(rc));
		close(fd);
		if (admin_fd >= 0)
			close(admin_fd);
		return -1;
	}
	lp->loop_ok = true;
	pthread_mutex_init(&lp->mu, NULL);
	if ((rc = uv_async_init(&lp->loop, &lp->wake, on_wake)) < 0) {
		snprintf(err, errlen, "could not create the wake-up handle of loop %d: %s", i, uv_strerror(rc));
		close(fd);
		if (admin_fd >= 0)
			close(admin_fd);
		return -1;
	}
	lp->wake_ok = true;
	lp->wake.data = lp;
	if (listen_on(lp, &lp->listener, &lp->listening, fd, nb_http__on_connection, s->o.listen, err, errlen) < 0) {
		if (admin_fd >= 0)
			close(admin_fd);
		return -1;
	}
	if (admin_fd >= 0 && listen_on(lp, &lp->admin_listener, &lp->admin_listening, admin_fd,
				       nb_http__on_admin_connection, s->o.admin_listen, err, errlen) < 0)
		return -1;
	if (i == 0) {
		if ((rc = uv_signal_init(&lp->loop, &lp->sigterm)) < 0 || (rc = uv_signal_init(&lp->loop, &lp->sigint)) < 0 ||
		    (rc = uv_signal_start(&lp->sigterm, on_signal, SIGTERM)) < 0 ||
		    (rc = uv_signal_start(&lp->sigint, on_signal, SIGINT)) < 0) {
			snprintf(err, errlen, "could not install signal handlers: %s", uv_strerror(rc));
			return -1;
		}
		lp->sigterm.data = lp->sigint.data = lp;
	}
	return 0;
}

nb_server_t *nb_server_create(const nb_server_opts_t *o, char *err, size_t errlen)
{
	raise_fd_limit();
	signal(SIGPIPE, SIG_IGN);
	int nfds = inherited_fds();
	int fd = nfds >= 1 ? adopt_socket("NOTEBOOKD_LISTEN", 3, err, errlen)
			   : bind_socket("NOTEBOOKD_LISTEN", o->listen, err, errlen);
	if (fd < 0)
		return NULL;
	int admin_fd = -1;
	if (o->admin_listen && *o->admin_listen) {
		admin_fd = nfds >= 2 ? adopt_socket("NOTEBOOKD_METRICS_LISTEN", 4, err, errlen)
				     : bind_socket("NOTEBOOKD_METRICS_LISTEN", o->admin_listen, err, errlen);
		if (admin_fd < 0) {
			close(fd);
			return NULL;
		}
	}
	nb_server_t *s = nb_xcalloc(1, sizeof *s);
	s->o = *o;
	if (s->o.max_connections_per_client <= 0)
		s->o.max_connections_per_client = s->o.max_connections;
	/* a new connection never waits longer than an idle one */
	if (s->o.first_request_timeout_ms <= 0 || s->o.first_request_timeout_ms > s->o.idle_timeout_ms)
		s->o.first_request_timeout_ms = s->o.idle_timeout_ms;
	if (s->o.write_timeout_ms <= 0)
		s->o.write_timeout_ms = 30000;
	if (s->o.max_json_bytes == 0)
		s->o.max_json_bytes = s->o.max_body_bytes;
	const char *tmp = o->tmp_dir ? o->tmp_dir : getenv("TMPDIR");
	snprintf(s->tmp_dir, sizeof s->tmp_dir, "%s", tmp && *tmp ? tmp : "/tmp");
	split_routes(s);
	pthread_mutex_init(&s->clients_mu, NULL);
	s->nclient_buckets = 4096;
	s->clients = nb_xcalloc(s->nclient_buckets, sizeof *s->clients);
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	s->nloops = o->io_threads > 0 ? o->io_threads : (cores > 0 ? (int)(cores < 64 ? cores : 64) : 1);
	s->loops = nb_xcalloc((size_t)s->nloops, sizeof(loop_t));
	for (int i = 0; i < s->nloops; i++) {
		int lfd = i == 0 ? fd : dup(fd);
		if (lfd < 0) {
			snprintf(err, errlen, "could not duplicate the listening socket: %s", strerror(errno));
			s->nloops = i;
			nb_server_destroy(s);
			return NULL;
		}
		if (init_loop(s, i, lfd, i == 0 ? admin_fd : -1, err, errlen) < 0) {
			s->nloops = i + 1;
			nb_server_destroy(s);
			return NULL;
		}
	}
	s->port = bound_port(&s->loops[0].listener);
	if (s->loops[0].admin_listening)
		s->admin_port = bound_port(&s->loops[0].admin_listener);
	s->pools[NB_EXEC_THREAD] = nb_tpool_create("handlers", o->handler_threads);
	s->pools[NB_EXEC_HASH] = nb_tpool_create("hash", o->hash_threads);
	s->pools[NB_EXEC_STREAM] = nb_tpool_create("streams", o->stream_threads);
	current_server = s;
	return s;
}

int nb_server_port(const nb_server_t *s)
{
	return s->port;
}

int nb_server_admin_port(const nb_server_t *s)
{
	return s->admin_port;
}

void nb_server_stop(nb_server_t *s)
{
	bool was = atomic_exchange(&s->stopping, true);
	if (!was && s->o.on_shutdown)
		s->o.on_shutdown(s->o.on_shutdown_arg);
	for (int i = 0; i < s->nloops; i++)
		uv_async_send(&s->loops[i].wake);
}

int nb_server_run(nb_server_t *s, char *err, size_t errlen)
{
	int started = 1;
	for (int i = 1; i < s->nloops; i++, started++) {
		int rc = pthread_create(&s->loops[i].thread, NULL, loop_main, &s->loops[i]);
		if (rc != 0) {
			snprintf(err, errlen, "could not start event-loop thread %d: %s", i, strerror(rc));
			break;
		}
	}
	if (started < s->nloops) {
		/* the loops already running drain at once and stop */
		atomic_store(&s->stopping, true);
		s->nloops = started;
		for (int i = 1; i < started; i++)
			uv_async_send(&s->loops[i].wake);
		for (int i = 1; i < started; i++)
			pthread_join(s->loops[i].thread, NULL);
		return -1;
	}
	loop_main(&s->loops[0]);
	for (int i = 1; i < s->nloops; i++)
		pthread_join(s->loops[i].thread, NULL);
	/* Workers finish what they hold (their answers go nowhere if the
	 * connection is gone); then the loops free what remains. */
	for (int i = 0; i < NB_EXEC_CLASSES_; i++) {
		nb_tpool_destroy(s->pools[i]);
		s->pools[i] = NULL;
	}
	for (int i = 0; i < s->nloops; i++) {
		loop_t *lp = &s->loops[i];
		nb_http__take_handoffs(lp, true);
		nb_http__on_wake(lp);
		for (conn_t *c = lp->conns; c; c = c->next)
			nb_http__conn_close(c);
		uv_run(&lp->loop, UV_RUN_NOWAIT);
	}
	nb_info("server stopped");
	return 0;
}

static void close_any(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

void nb_server_destroy(nb_server_t *s)
{
	if (!s)
		return;
	for (int i = 0; i < NB_EXEC_CLASSES_; i++)
		nb_tpool_destroy(s->pools[i]);
	for (int i = 0; i < s->nloops; i++) {
		loop_t *lp = &s->loops[i];
		if (!lp->loop_ok)
			continue;
		while (lp->free_sreqs) {
			sreq_t *r = lp->free_sreqs;
			lp->free_sreqs = r->mail_next;
			nb_http__sreq_destroy(r);
		}
		if (lp->app_started && s->o.hooks.loop_stop)
			s->o.hooks.loop_stop(s->o.hooks.arg, lp->app); /* closes its handles on this loop */
		lp->app = NULL;
		nb_sched_destroy(lp->sched);
		lp->sched = NULL;
		uv_walk(&lp->loop, close_any, NULL);
		uv_run(&lp->loop, UV_RUN_DEFAULT);
		uv_loop_close(&lp->loop);
		pthread_mutex_destroy(&lp->mu);
	}
	if (current_server == s)
		current_server = NULL;
	nb_http__clients_dispose(s);
	pthread_mutex_destroy(&s->clients_mu);
	free(s->route_copy);
	free(s->rstats);
	free(s->loops);
	free(s);
}

void nb_server_stats(nb_server_t *s, nb_server_stats_t *out)
{
	memset(out, 0, sizeof *out);
	out->connections_open = atomic_load(&s->conns_open);
	out->connections_total = atomic_load(&s->conns_total);
	out->requests_total = atomic_load(&s->requests_total);
	out->requests_in_flight = atomic_load(&s->in_flight);
	out->timeouts = atomic_load(&s->timeouts);
	out->rejected_connections = atomic_load(&s->rejected);
	out->write_timeouts = atomic_load(&s->write_timeouts);
	for (int i = 0; i < 6; i++)
		out->responses_by_class[i] = atomic_load(&s->by_class[i]);
}

nb_server_t *nb_server_current(void)
{
	return current_server;
}
