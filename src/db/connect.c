/*
 * connect.c — opening connections (see connect.h).
 *
 * The parameters are built once per call into keyword/value arrays; the
 * session settings travel as `-c name=value` in `options`, which libpq
 * sends in the startup packet.
 */
#include "db/connect.h"

#include <errno.h>

#include <poll.h>

#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"
#include "core/sched.h"
#include "core/timeutil.h"

#define MAX_KEYS 10

typedef struct params {
	const char *keys[MAX_KEYS];
	const char *vals[MAX_KEYS];
	char timeout[16];
	char options[192];
} params_t;

void nb_db_connect_opts_init(nb_db_connect_opts_t *o, const char *conninfo, const char *application_name)
{
	memset(o, 0, sizeof *o);
	o->conninfo = conninfo;
	o->application_name = application_name;
	o->connect_timeout_s = nb_cfg.db_connect_timeout_s;
}

static int timeout_s(const nb_db_connect_opts_t *o)
{
	return o->connect_timeout_s > 0 ? o->connect_timeout_s : 5;
}

static void build(const nb_db_connect_opts_t *o, params_t *p)
{
	int n = 0;
	snprintf(p->timeout, sizeof p->timeout, "%d", timeout_s(o));
	p->options[0] = '\0';
	size_t len = 0;
	if (o->statement_timeout_ms > 0)
		len += (size_t)snprintf(p->options + len, sizeof p->options - len, "-c statement_timeout=%d ",
					o->statement_timeout_ms);
	if (o->idle_in_tx_timeout_ms > 0)
		len += (size_t)snprintf(p->options + len, sizeof p->options - len,
					"-c idle_in_transaction_session_timeout=%d ", o->idle_in_tx_timeout_ms);
	if (o->lock_timeout_ms > 0)
		len += (size_t)snprintf(p->options + len, sizeof p->options - len, "-c lock_timeout=%d ",
					o->lock_timeout_ms);
	p->keys[n] = "dbname";
	p->vals[n++] = o->conninfo ? o->conninfo : "";
	p->keys[n] = "application_name";
	p->vals[n++] = o->application_name ? o->application_name : "notebookd";
	p->keys[n] = "connect_timeout";
	p->vals[n++] = p->timeout;
	if (len > 0) {
		p->keys[n] = "options";
		p->vals[n++] = p->options;
	}
	if (o->keepalives) {
		p->keys[n] = "keepalives_idle";
		p->vals[n++] = "30";
		p->keys[n] = "keepalives_interval";
		p->vals[n++] = "10";
		p->keys[n] = "keepalives_count";
		p->vals[n++] = "3";
	}
	p->keys[n] = NULL;
	p->vals[n] = NULL;
}

static void one_line(char *err, size_t errlen, const char *msg)
{
	if (!err || errlen == 0)
		return;
	snprintf(err, errlen, "%s", msg && msg[0] ? msg : "unknown error");
	err[strcspn(err, "\n")] = '\0';
}

static void notice_quiet(void *arg, const char *msg)
{
	(void)arg;
	nb_debug("postgres notice: %s", msg);
}

PGconn *nb_db_connect(const nb_db_connect_opts_t *o, char *err, size_t errlen)
{
	params_t p;
	build(o, &p);
	PGconn *pg = PQconnectdbParams(p.keys, p.vals, 1);
	if (nb_db_connect_finish(pg, NULL, err, errlen) < 0) {
		PQfinish(pg);
		return NULL;
	}
	return pg;
}

PGconn *nb_db_connect_start(const nb_db_connect_opts_t *o, char *err, size_t errlen)
{
	params_t p;
	build(o, &p);
	PGconn *pg = PQconnectStartParams(p.keys, p.vals, 1);
	if (!pg || PQstatus(pg) == CONNECTION_BAD) {
		one_line(err, errlen, pg ? PQerrorMessage(pg) : "out of memory");
		PQfinish(pg);
		return NULL;
	}
	return pg;
}

int nb_db_connect_finish(PGconn *pg, const char *why, char *err, size_t errlen)
{
	if (!pg) {
		one_line(err, errlen, "out of memory");
		return -1;
	}
	if (why || PQstatus(pg) != CONNECTION_OK) {
		one_line(err, errlen, why ? why : PQerrorMessage(pg));
		return -1;
	}
	PQsetNoticeProcessor(pg, notice_quiet, NULL);
	return 0;
}

PGconn *nb_db_connect_async(const nb_db_connect_opts_t *o, nb_fdwait_t **fw_out, char *err, size_t errlen)
{
	if (fw_out)
		*fw_out = NULL;
	PGconn *pg = nb_db_connect_start(o, err, errlen);
	if (!pg)
		return NULL;
	int64_t deadline = nb_mono_ms() + (int64_t)timeout_s(o) * 1000;
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	nb_fdwait_t *fw = NULL;
	int fd = -1;
	const char *why = NULL;
	while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
		if (PQsocket(pg) != fd) { /* libpq may switch sockets (several hosts) */
			nb_fdwait_destroy(fw);
			fd = PQsocket(pg);
			fw = nb_fdwait_create(fd);
		}
		int left = (int)(deadline - nb_mono_ms());
		if (!fw || left <= 0 ||
		    nb_fdwait_wait(fw, st == PGRES_POLLING_READING ? NB_WAIT_READ : NB_WAIT_WRITE, left) < 0) {
			why = "timeout";
			break;
		}
		st = PQconnectPoll(pg);
	}
	if (!why && st != PGRES_POLLING_OK)
		why = PQerrorMessage(pg)[0] ? PQerrorMessage(pg) : "connection failed";
	if (nb_db_connect_finish(pg, why, err, errlen) < 0)
		goto fail;
	if (PQsetnonblocking(pg, 1) != 0) {
		one_line(err, errlen, PQerrorMessage(pg));
		goto fail;
	}
	if (fw_out)
		*fw_out = fw;
	else
		nb_fdwait_destroy(fw);
	return pg;
fail:
	nb_fdwait_destroy(fw);
	PQfinish(pg);
	return NULL;
}

PGconn *nb_db_connect_stoppable(const nb_db_connect_opts_t *o, int stop_fd, char *err, size_t errlen)
{
	PGconn *pg = nb_db_connect_start(o, err, errlen);
	if (!pg)
		return NULL;
	int64_t deadline = nb_mono_ms() + (int64_t)timeout_s(o) * 1000;
	const char *fail = NULL;
	char pollerr[128];
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
		struct pollfd fds[2] = {
		    {.fd = PQsocket(pg), .events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT},
		    {.fd = stop_fd, .events = POLLIN},
		};
		int left = (int)(deadline - nb_mono_ms());
		if (left <= 0) {
			fail = "timeout";
			break;
		}
		int r = poll(fds, 2, left);
		if (r < 0 && errno != EINTR) {
			snprintf(pollerr, sizeof pollerr, "poll: %s", strerror(errno));
			fail = pollerr;
			break;
		}
		if (r > 0 && fds[1].revents) {
			fail = "stopping";
			break;
		}
		if (r > 0)
			st = PQconnectPoll(pg);
	}
	if (nb_db_connect_finish(pg, fail, err, errlen) < 0) {
		PQfinish(pg);
		return NULL;
	}
	return pg;
}

/* True when stop has been asked (stop_fd is readable); waits up to ms. */
static bool stop_asked(int stop_fd, int ms)
{
	struct pollfd p = {.fd = stop_fd, .events = POLLIN};
	return poll(&p, 1, ms) > 0;
}

/* A live, subscribed connection: hands input to on_input until stop or a drop. */
static void listener_serve(const nb_db_listener_t *l, PGconn *pg)
{
	char msg[200];
	int r;
	while ((r = nb_db_listen_wait(pg, l->stop_fd, msg, sizeof msg)) > 0)
		l->on_input(l->arg, pg);
	if (l->on_down)
		l->on_down(l->arg);
	if (r < 0)
		nb_warn("%s lost its connection (%s); %s", l->name, msg, l->lost_note);
}

void nb_db_listener_run(const nb_db_listener_t *l)
{
	nb_db_connect_opts_t co = l->opts;
	co.keepalives = true; /* it idles for long: notice a dead peer */
	int backoff = l->backoff_min_ms;
	bool down = false;
	while (!stop_asked(l->stop_fd, 0)) {
		char why[256] = "";
		PGconn *pg = nb_db_connect_stoppable(&co, l->stop_fd, why, sizeof why);
		if (pg && l->subscribe(pg) < 0) {
			snprintf(why, sizeof why, "LISTEN failed");
			PQfinish(pg);
			pg = NULL;
		}
		if (!pg) {
			if (!down && !stop_asked(l->stop_fd, 0))
				nb_warn("%s could not connect (%s); %s", l->name, why, l->down_note);
			down = true;
			if (stop_asked(l->stop_fd, backoff))
				break;
			backoff = backoff * 2 > l->backoff_max_ms ? l->backoff_max_ms : backoff * 2;
			continue;
		}
		if (down)
			nb_info("%s connected again", l->name);
		down = false;
		backoff = l->backoff_min_ms;
		l->on_up(l->arg);
		listener_serve(l, pg);
		PQfinish(pg);
	}
}

int nb_db_listen_wait(PGconn *pg, int stop_fd, char *why, size_t whylen)
{
	for (;;) {
		struct pollfd fds[2] = {
		    {.fd = PQsocket(pg), .events = POLLIN},
		    {.fd = stop_fd, .events = POLLIN},
		};
		int r = poll(fds, 2, -1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || fds[1].revents)
			return 0;
		if (!fds[0].revents)
			continue;
		if (!PQconsumeInput(pg) || PQstatus(pg) != CONNECTION_OK) {
			snprintf(why, whylen, "%s", PQerrorMessage(pg));
			why[strcspn(why, "\n")] = '\0';
			return -1;
		}
		return 1;
	}
}
